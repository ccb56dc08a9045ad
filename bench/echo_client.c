/*
 * The load generator of W7, shared by every column: a raw-epoll client with
 * `conns` connections, each sending a message and waiting for all of it to
 * come back before sending the next, until `total` round trips are done.
 *
 *     echo_client port=P [conns=50] [size=64] [total=200000] [http=0]
 *
 * With http=1 each message is a GET and the reply must be exactly the
 * servers' "Hello, world!" response (the smoke test of W8's servers; the
 * timed W8 uses wrk).  Every byte received is checked.
 */
#include "common.h"

#include <sys/epoll.h>

static const char http_request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

struct cconn {
    int fd;
    size_t got;
};

int main(int argc, char **argv)
{
    bench_lib = "client";
    bench_argc = argc;
    bench_argv = argv;
    bench_workload = param("http", 0) ? "w8" : "w7";
    unsigned port = (unsigned)param("port", 0), conns = (unsigned)param("conns", 50);
    uint64_t size = param("size", 64), total = param("total", 200000);
    bool http = param("http", 0);
    if (!port || !conns || !size || size > 65536)
        die("usage: echo_client port=P [conns=50] [size=64] [total=200000] [http=0]");

    char *msg = xcalloc(size, 1), *in = xcalloc(65536, 1);
    const char *expect = msg;
    size_t out_len = size, in_len = size;
    for (uint64_t i = 0; i < size; i++)
        msg[i] = (char)('a' + i % 26);
    if (http) {
        expect = http_response;
        out_len = sizeof http_request - 1;
        in_len = HTTP_RESPONSE_LEN;
    }
    const char *out = http ? http_request : msg;

    raise_fd_limit();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep);
    struct cconn *c = xcalloc(conns, sizeof *c);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (unsigned i = 0; i < conns; i++) {
        c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(c[i].fd);
        CHECK(connect(c[i].fd, (struct sockaddr *)&a, sizeof a));
        int one = 1;
        CHECK(setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev));
    }

    uint64_t sent = 0, done = 0;
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < conns && sent < total; i++, sent++)
        write_all(c[i].fd, out, out_len);
    struct epoll_event evs[64];
    while (done < total) {
        int n = epoll_wait(ep, evs, 64, 10000);
        if (n == 0)
            die("no reply for 10 s (%llu of %llu round trips done)", (unsigned long long)done,
                (unsigned long long)total);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n);
        for (int k = 0; k < n; k++) {
            struct cconn *cc = &c[evs[k].data.u32];
            ssize_t r = read(cc->fd, in, in_len - cc->got);
            if (r <= 0)
                die("read: %zd (errno %d): the server closed or failed", r, errno);
            if (memcmp(in, expect + cc->got, (size_t)r))
                die("wrong bytes in a reply");
            cc->got += (size_t)r;
            if (cc->got < in_len)
                continue;
            cc->got = 0;
            done++;
            if (sent < total) {
                write_all(cc->fd, out, out_len);
                sent++;
            }
        }
    }
    uint64_t t1 = now_ns();
    for (unsigned i = 0; i < conns; i++)
        close(c[i].fd);
    close(ep);
    result("conns=%u size=%llu round_trips=%llu rt_per_s=%.0f", conns, (unsigned long long)size,
           (unsigned long long)done, (double)done * 1e9 / (double)(t1 - t0));
    free(c);
    free(msg);
    free(in);
    return 0;
}
