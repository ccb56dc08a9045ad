/*
 * http_load: real clients against examples/http_hello.
 *
 *   usage: http_load [--conns N] [--flood N] [--fd-limit N] SERVER
 *
 * Starts SERVER on port 0 (127.0.0.1), reads the port it prints, counts its
 * open fds (/proc/PID/fd), then opens N connections at once (default 200)
 * and sends every request byte by byte, round robin over the connections:
 *
 *   i % 4 == 0  two pipelined requests, the second with a body and
 *               "Connection: close": two responses, then the server closes
 *   i % 4 == 1  one request; after its response, half a request head, then
 *               close (FIN) mid-request
 *   i % 4 == 2  two pipelined requests, the first with a body: two
 *               responses; then the client shuts down its side and the
 *               server must close without sending anything more
 *   i % 4 == 3  one request; after its response, a head and part of its
 *               body, then an abortive close (RST) mid-request
 *
 * plus --flood connections (default 2) that send 100000 pipelined requests
 * in big writes, with a small receive window, and read nothing for the
 * first 500 ms: their 7.8 MB of responses exceed the most the kernel will
 * buffer (net.ipv4.tcp_wmem's 4 MB), so the server's sends come up short
 * and it must stop reading and wait for its writer callback.
 *
 * Every complete request must get exactly one correct response, no
 * connection may fail, the server's fd count must come back to where it
 * started, and SIGTERM must make it exit 0.  --fd-limit lowers the server's
 * RLIMIT_NOFILE, so that it runs out of fds (EMFILE) under the same load
 * and must keep serving.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FLOOD_REQUESTS 100000
#define FLOOD_QUIET_MS 500
#define TIMEOUT_MS 60000

static const char GET_A[] = "GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
static const char POST_CLOSE[] = "POST /b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                                 "Connection: close\r\n\r\nhello";
static const char POST_KEEP[] = "POST /c HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                "Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world";
static const char GET_UA[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: http_load\r\n\r\n";
static const char HALF_HEAD[] = "GET /never HTTP/1.1\r\nHost: 12";
static const char HALF_BODY[] = "POST /never HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"
                                "\r\nabc";
static const char RESPONSE_HEAD[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                    "Content-Length: 13\r\n";
static const char BODY[] = "Hello, world!";

enum kind { K_CLOSE, K_ABANDON, K_KEEP, K_RESET, K_FLOOD };

static const char *const kind_names[] = {"close", "abandon", "keep-alive", "reset", "flood"};

struct client {
    enum kind kind;
    int fd;
    char *part1, *part2; /* sent before and after the first response */
    size_t len1, len2, sent;
    int part;      /* 1 or 2: what is being sent */
    int expected;  /* responses expected in all */
    int responses; /* correct responses received */
    bool shut;     /* our write side is shut down */
    bool done;
    char rbuf[4096];
    size_t rlen;
};

static pid_t server_pid;
static int nclients;
static struct client *clients;

static void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "http_load: FAIL: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (server_pid > 0)
        kill(server_pid, SIGKILL);
    exit(1);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int count_fds(pid_t pid)
{
    char path[64];
    int n = 0;
    struct dirent *e;

    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        fail("cannot open %s: %s", path, strerror(errno));
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Start the server on port 0 and return the port it prints. */
static int start_server(const char *exe, long fd_limit)
{
    int out[2];
    char line[256] = "";
    size_t len = 0;
    long long deadline = now_ms() + 10000;

    if (pipe(out) < 0)
        fail("pipe: %s", strerror(errno));
    server_pid = fork();
    if (server_pid < 0)
        fail("fork: %s", strerror(errno));
    if (server_pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        if (fd_limit > 0) {
            struct rlimit rl = {(rlim_t)fd_limit, (rlim_t)fd_limit};
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                perror("setrlimit");
        }
        execl(exe, exe, "0", (char *)NULL);
        perror(exe);
        _exit(127);
    }
    close(out[1]);
    /* Read the first line: "Serving on http://127.0.0.1:PORT/". */
    while (!memchr(line, '\n', len)) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        long long left = deadline - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            fail("the server printed no port within 10 s");
        ssize_t n = read(out[0], line + len, sizeof line - 1 - len);
        if (n <= 0)
            fail("the server exited before printing its port");
        len += (size_t)n;
        if (len == sizeof line - 1)
            break;
    }
    line[len] = '\0';
    const char *p = strstr(line, "http://127.0.0.1:");
    int port = p ? atoi(p + strlen("http://127.0.0.1:")) : 0;
    if (port <= 0 || port > 65535)
        fail("no port in the server's first line: %s", line);
    /* The pipe stays open (the server prints nothing more) and is left to exit. */
    return port;
}

static char *repeat(const char *s, int times, size_t *len)
{
    size_t n = strlen(s);
    char *buf = malloc(n * (size_t)times);
    if (!buf)
        fail("out of memory");
    for (int i = 0; i < times; i++)
        memcpy(buf + n * (size_t)i, s, n);
    *len = n * (size_t)times;
    return buf;
}

static char *concat(const char *a, const char *b, size_t *len)
{
    size_t na = strlen(a), nb = strlen(b);
    char *buf = malloc(na + nb + 1);
    if (!buf)
        fail("out of memory");
    memcpy(buf, a, na);
    memcpy(buf + na, b, nb + 1);
    *len = na + nb;
    return buf;
}

static void client_init(struct client *c, enum kind kind, int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->part = 1;
    c->part2 = concat("", "", &c->len2);
    switch (kind) {
    case K_CLOSE:
        c->part1 = concat(GET_A, POST_CLOSE, &c->len1);
        c->expected = 2;
        break;
    case K_KEEP:
        c->part1 = concat(POST_KEEP, GET_UA, &c->len1);
        c->expected = 2;
        break;
    case K_ABANDON:
    case K_RESET:
        free(c->part2);
        c->part1 = concat(GET_A, "", &c->len1);
        c->part2 = concat(kind == K_ABANDON ? HALF_HEAD : HALF_BODY, "", &c->len2);
        c->expected = 1;
        break;
    case K_FLOOD:
        c->part1 = repeat(GET_A, FLOOD_REQUESTS, &c->len1);
        c->expected = FLOOD_REQUESTS;
        break;
    }
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        fail("socket: %s", strerror(errno));
    /* One segment per byte, so that the server sees requests in pieces. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (kind == K_FLOOD) {
        /* A small window: the server's sends come up short long before the
         * 2000 responses are out, so it has to wait for its writer. */
        int small = 4096;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        fail("connect: %s", strerror(errno));
}

static void client_close(struct client *c, bool reset)
{
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c->fd);
    c->fd = -1;
    c->done = true;
}

/* Take the complete responses out of the receive buffer, checking each. */
static void parse_responses(struct client *c, int index)
{
    size_t off = 0;

    for (;;) {
        const char *head = c->rbuf + off;
        size_t avail = c->rlen - off;
        const char *end = memmem(head, avail, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t head_len = (size_t)(end + 4 - head);
        if (avail < head_len + strlen(BODY))
            break;
        if (strncmp(head, RESPONSE_HEAD, strlen(RESPONSE_HEAD)) != 0)
            fail("connection %d (%s): bad response head: %.*s", index, kind_names[c->kind],
                 (int)head_len, head);
        if (memcmp(head + head_len, BODY, strlen(BODY)) != 0)
            fail("connection %d (%s): bad response body", index, kind_names[c->kind]);
        c->responses++;
        bool last_of_close = c->kind == K_CLOSE && c->responses == 2;
        if (last_of_close != (memmem(head, head_len, "Connection: close\r\n", 19) != NULL))
            fail("connection %d (%s): response %d %s \"Connection: close\"", index,
                 kind_names[c->kind], c->responses, last_of_close ? "lacks" : "has");
        if (c->responses > c->expected)
            fail("connection %d (%s): more responses than requests", index, kind_names[c->kind]);
        off += head_len + strlen(BODY);
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    if (c->rlen == sizeof c->rbuf)
        fail("connection %d (%s): unparsable response data", index, kind_names[c->kind]);
}

static void client_read(struct client *c, int index)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, 0);
        if (n > 0) {
            c->rlen += (size_t)n;
            parse_responses(c, index);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail("connection %d (%s): recv: %s", index, kind_names[c->kind], strerror(errno));
        /* End of file: only when every response is in, with nothing left over. */
        if (c->responses != c->expected || c->rlen != 0)
            fail("connection %d (%s): server closed after %d of %d responses (%zu stray bytes)",
                 index, kind_names[c->kind], c->responses, c->expected, c->rlen);
        if (c->kind != K_CLOSE && !c->shut)
            fail("connection %d (%s): server closed a kept-alive connection", index,
                 kind_names[c->kind]);
        client_close(c, false);
        return;
    }
}

/* Send the next piece: one byte, or as much as fits for flood clients. */
static void client_write(struct client *c, int index)
{
    const char *buf = c->part == 1 ? c->part1 : c->part2;
    size_t len = c->part == 1 ? c->len1 : c->len2;
    size_t chunk = c->kind == K_FLOOD ? len - c->sent : 1;

    ssize_t n = send(c->fd, buf + c->sent, chunk, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0)
        fail("connection %d (%s): send: %s", index, kind_names[c->kind], strerror(errno));
    c->sent += (size_t)n;
}

/* What a client does next, once its state has changed. */
static void client_advance(struct client *c)
{
    if (c->done)
        return;
    if (c->part == 1 && c->sent == c->len1 && c->len2 > 0 && c->responses == 1) {
        c->part = 2;
        c->sent = 0;
    }
    if (c->part == 2 && c->sent == c->len2) {
        client_close(c, c->kind == K_RESET); /* gone mid-request */
        return;
    }
    if ((c->kind == K_KEEP || c->kind == K_FLOOD) && !c->shut && c->responses == c->expected) {
        if (shutdown(c->fd, SHUT_WR) < 0)
            fail("shutdown: %s", strerror(errno));
        c->shut = true;
    }
}

static bool client_wants_write(const struct client *c)
{
    if (c->part == 1)
        return c->sent < c->len1;
    return c->sent < c->len2;
}

static void run_clients(long long start)
{
    struct pollfd *pfd = calloc((size_t)nclients, sizeof *pfd);
    int *who = calloc((size_t)nclients, sizeof *who);

    if (!pfd || !who)
        fail("out of memory");
    for (;;) {
        int n = 0;
        bool quiet = now_ms() - start < FLOOD_QUIET_MS;
        for (int i = 0; i < nclients; i++) {
            struct client *c = &clients[i];
            if (c->done)
                continue;
            short ev = 0;
            if (!(c->kind == K_FLOOD && quiet))
                ev |= POLLIN;
            if (client_wants_write(c))
                ev |= POLLOUT;
            pfd[n] = (struct pollfd){.fd = c->fd, .events = ev};
            who[n++] = i;
        }
        if (n == 0)
            break;
        if (now_ms() - start > TIMEOUT_MS) {
            for (int k = 0; k < n; k++) {
                struct client *c = &clients[who[k]];
                fprintf(stderr, "  connection %d (%s): part %d, sent %zu, %d of %d responses\n",
                        who[k], kind_names[c->kind], c->part, c->sent, c->responses, c->expected);
            }
            fail("%d connections not finished after %d s", n, TIMEOUT_MS / 1000);
        }
        if (poll(pfd, (nfds_t)n, 50) < 0 && errno != EINTR)
            fail("poll: %s", strerror(errno));
        for (int k = 0; k < n; k++) {
            struct client *c = &clients[who[k]];
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                client_read(c, who[k]);
            if (!c->done && (pfd[k].revents & POLLOUT) && client_wants_write(c))
                client_write(c, who[k]);
            client_advance(c);
        }
    }
    free(pfd);
    free(who);
}

static int wait_server(int timeout_ms)
{
    int status;
    long long deadline = now_ms() + timeout_ms;

    while (now_ms() < deadline) {
        pid_t r = waitpid(server_pid, &status, WNOHANG);
        if (r == server_pid)
            return status;
        if (r < 0)
            fail("waitpid: %s", strerror(errno));
        usleep(10000);
    }
    return -1;
}

int main(int argc, char **argv)
{
    int conns = 200, flood = 2;
    long fd_limit = 0;
    int i = 1;

    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--conns") == 0)
            conns = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--flood") == 0)
            flood = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--fd-limit") == 0)
            fd_limit = atol(argv[i + 1]);
        else
            break;
    }
    if (i != argc - 1 || conns < 0 || flood < 0) {
        fprintf(stderr, "usage: http_load [--conns N] [--flood N] [--fd-limit N] SERVER\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int port = start_server(argv[i], fd_limit);
    int base_fds = count_fds(server_pid);
    printf("http_load: server pid %d on port %d with %d fds open%s\n", (int)server_pid, port,
           base_fds, fd_limit > 0 ? " (RLIMIT_NOFILE lowered)" : "");
    if (fd_limit > 0)
        printf("http_load: server fd limit %ld, below %d connections\n", fd_limit, conns + flood);

    nclients = conns + flood;
    clients = calloc((size_t)(nclients ? nclients : 1), sizeof *clients);
    if (!clients)
        fail("out of memory");
    long long start = now_ms();
    for (int k = 0; k < nclients; k++)
        client_init(&clients[k], k < conns ? (enum kind)(k % 4) : K_FLOOD, port);
    run_clients(start);
    long long took = now_ms() - start;

    long requests = 0, responses = 0;
    for (int k = 0; k < nclients; k++) {
        requests += clients[k].expected;
        responses += clients[k].responses;
        free(clients[k].part1);
        free(clients[k].part2);
    }
    printf("http_load: %d connections (%d of them flooding, %d dropped mid-request) done in "
           "%lld ms: %ld complete requests, %ld correct responses\n",
           nclients, flood, conns / 2, took, requests, responses);
    if (requests != responses)
        fail("%ld requests but %ld responses", requests, responses);

    /* Every connection is gone: the server must be back to its fds. */
    int fds = count_fds(server_pid);
    for (long long deadline = now_ms() + 5000; fds != base_fds && now_ms() < deadline;) {
        usleep(10000);
        fds = count_fds(server_pid);
    }
    if (fds != base_fds)
        fail("the server has %d fds open, %d at the start", fds, base_fds);
    printf("http_load: server fds back to %d\n", fds);

    if (waitpid(server_pid, NULL, WNOHANG) != 0)
        fail("the server died during the test");
    kill(server_pid, SIGTERM);
    int status = wait_server(5000);
    if (status == -1)
        fail("the server did not exit within 5 s of SIGTERM");
    server_pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("the server did not exit cleanly on SIGTERM (status 0x%x)", status);
    printf("http_load: server exited 0 on SIGTERM\n");
    free(clients);
    return 0;
}
