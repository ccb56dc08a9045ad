/*
 * The stream layers beside plain blocking sockets, for bench/stream/run.sh:
 *
 *   bench_stream transfer mode=blocking|cb|task [mib=1024]
 *       a one-way transfer over TCP loopback, sender and receiver in two
 *       processes (one per core): blocking write()/read() loops of 64 KiB,
 *       or both ends on the stream layer (callback form: the sender writes
 *       while not paused and goes on from on_drain, the receiver takes
 *       every byte in on_data; task form: write + drain, read).  Reports
 *       MiB/s, timed by the receiver from accept to end of file.
 *   bench_stream idle mode=cb|task [n=10000]
 *       n idle connections to a server of the stream layer (a child holds
 *       the clients): the server's RSS growth per connection and the
 *       library memory (the loop's allocator) per connection, after one
 *       round trip on each.
 *
 * One RESULT line each, as the other benchmark programs print.
 */
#include "../common.h"

#include "loop_stream_task.h"

#include <sys/wait.h>

#define CHUNK (64 * 1024)

static char chunk[CHUNK];
static uint64_t total, moved;

/* ---- the sender (a child process) --------------------------------------- */

static void send_blocking(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a));
    for (uint64_t sent = 0; sent < total; sent += CHUNK)
        write_all(fd, chunk, CHUNK);
    close(fd);
}

static void cb_fill(loop_stream *s, void *arg)
{
    UNUSED(arg);
    while (moved < total && !loop_stream_write_paused(s)) {
        CHECK(loop_stream_write(s, chunk, CHUNK));
        moved += CHUNK;
    }
    if (moved == total) {
        moved++;              /* once */
        loop_stream_close(s); /* what is queued is still sent */
    }
}

static void cb_connected(loop_stream *s, int err, void *arg)
{
    CHECK(err);
    cb_fill(s, arg);
}

static int task_sender(loop_t *loop, void *arg, void **result)
{
    UNUSED(result);
    loop_stream *s;
    CHECK(loop_stream_task_open_connection(loop, "127.0.0.1", *(uint16_t *)arg, NULL, &s));
    for (uint64_t sent = 0; sent < total; sent += CHUNK) {
        CHECK(loop_stream_write(s, chunk, CHUNK));
        CHECK(loop_stream_task_drain(s));
    }
    loop_stream_close(s);
    return 0;
}

static void send_stream(uint16_t port, bool task)
{
    loop_t *loop;
    CHECK(loop_new(&loop));
    if (task) {
        loop_task *t;
        CHECK(loop_task_spawn(loop, task_sender, &port, &t));
        CHECK(loop_run_until_complete(loop, loop_task_future(t), NULL));
        loop_task_unref(t);
    } else {
        loop_stream_callbacks cb = {.on_drain = cb_fill, .on_connect = cb_connected};
        loop_stream *s;
        CHECK(loop_stream_connect(loop, "127.0.0.1", port, NULL, &cb, NULL, &s));
    }
    CHECK(loop_run(loop)); /* until the last queued bytes are sent */
    CHECK(loop_free(loop));
}

/* ---- the receiver ------------------------------------------------------- */

static uint64_t t_start, t_end;
static loop_t *rloop;

static void cb_take(loop_stream *s, void *arg)
{
    UNUSED(arg);
    const char *d;
    size_t n;
    while (loop_stream_read(s, 0, &d, &n) == 0 && n > 0)
        moved += n;
    if (loop_stream_eof(s)) {
        t_end = now_ns();
        loop_stream_close(s);
        loop_stop(rloop);
    }
}

static void cb_accept(loop_server *srv, loop_stream *s, void *arg)
{
    UNUSED(srv);
    UNUSED(arg);
    t_start = now_ns();
    loop_stream_callbacks cb = {.on_data = cb_take};
    CHECK(loop_stream_set_callbacks(s, &cb, NULL));
}

static int task_receiver(loop_stream *s, void *arg)
{
    UNUSED(arg);
    const char *d;
    size_t n;
    t_start = now_ns();
    while (loop_stream_task_read(s, 0, &d, &n) == 0 && n > 0)
        moved += n;
    t_end = now_ns();
    loop_stop(rloop);
    return 0;
}

static void transfer(void)
{
    total = param("mib", 1024) << 20;
    uint64_t mode = !strcmp(bench_argv[2], "mode=blocking") ? 0
                    : !strcmp(bench_argv[2], "mode=cb")     ? 1
                    : !strcmp(bench_argv[2], "mode=task")   ? 2
                                                            : 9;
    if (mode == 9)
        die("mode=blocking|cb|task");
    uint16_t port;
    int lfd = -1;
    loop_server *srv = NULL;
    if (mode == 0) {
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a));
        CHECK(listen(lfd, 8));
        CHECK(getsockname(lfd, (struct sockaddr *)&a, &len));
        port = ntohs(a.sin_port);
    } else {
        CHECK(loop_new(&rloop));
        if (mode == 1)
            CHECK(loop_server_listen(rloop, "127.0.0.1", 0, NULL, cb_accept, NULL, &srv));
        else
            CHECK(loop_stream_task_start_server(rloop, "127.0.0.1", 0, NULL, task_receiver, NULL,
                                                &srv));
        port = loop_server_port(srv);
    }
    pid_t pid = fork();
    CHECK(pid);
    if (pid == 0) {
        if (mode == 0)
            send_blocking(port);
        else
            send_stream(port, mode == 2);
        _exit(0);
    }
    if (mode == 0) {
        int fd = accept(lfd, NULL, NULL);
        CHECK(fd);
        t_start = now_ns();
        ssize_t n;
        static char buf[CHUNK];
        while ((n = read(fd, buf, sizeof buf)) > 0)
            moved += (uint64_t)n;
        CHECK(n);
        t_end = now_ns();
        close(fd);
        close(lfd);
    } else {
        CHECK(loop_run(rloop));
        loop_server_close(srv);
        CHECK(loop_free(rloop));
        loop_server_free(srv);
    }
    int status;
    CHECK(waitpid(pid, &status, 0));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("the sender failed");
    EXPECT_EQ(moved, total);
    double s = (double)(t_end - t_start) / 1e9;
    result("mib=%llu mib_per_s=%.0f seconds=%.3f", (unsigned long long)(total >> 20),
           (double)(total >> 20) / s, s);
}

/* ---- idle connections ------------------------------------------------- */

struct counter {
    int64_t live;
};

static void *counting(void *ctx, void *ptr, size_t size)
{
    struct counter *c = ctx;
    size_t old = ptr ? ((size_t *)ptr)[-2] : 0;
    if (size == 0) {
        if (ptr) {
            c->live -= (int64_t)old;
            free((size_t *)ptr - 2);
        }
        return NULL;
    }
    size_t *p = realloc(ptr ? (size_t *)ptr - 2 : NULL, size + 2 * sizeof(size_t));
    if (!p)
        return NULL;
    p[0] = size;
    c->live += (int64_t)size - (int64_t)old;
    return p + 2;
}

static int idle_conns;

static void echo_byte(loop_stream *s, void *arg)
{
    UNUSED(arg);
    const char *d;
    size_t n;
    if (loop_stream_read(s, 0, &d, &n) == 0 && n > 0)
        CHECK(loop_stream_write(s, d, n));
}

static void idle_accept(loop_server *srv, loop_stream *s, void *arg)
{
    UNUSED(srv);
    UNUSED(arg);
    loop_stream_callbacks cb = {.on_data = echo_byte};
    CHECK(loop_stream_set_callbacks(s, &cb, NULL));
    idle_conns++;
}

static int idle_handler(loop_stream *s, void *arg)
{
    UNUSED(arg);
    const char *d;
    size_t n;
    idle_conns++;
    while (loop_stream_task_read(s, 0, &d, &n) == 0 && n > 0)
        if (loop_stream_write(s, d, n))
            break;
    return 0;
}

static void idle_clients(uint16_t port, unsigned n, int ready, int go)
{
    int *fds = xcalloc(n, sizeof(int));
    for (unsigned i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(connect(fds[i], (struct sockaddr *)&a, sizeof a));
        write_all(fds[i], "x", 1);
        char c;
        if (read(fds[i], &c, 1) != 1)
            die("no echo");
    }
    char b = 1;
    CHECK(write(ready, &b, 1));
    CHECK(read(go, &b, 1));
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
}

static void ready_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    UNUSED(events);
    UNUSED(arg);
    char b;
    CHECK(read(fd, &b, 1));
    loop_stop(loop);
}

static void idle(void)
{
    unsigned n = (unsigned)param("n", 10000);
    bool task = !strcmp(bench_argv[2], "mode=task");
    raise_fd_limit();
    struct counter mem = {0};
    loop_options o = {.realloc = counting, .alloc_ctx = &mem};
    loop_t *loop;
    CHECK(loop_new_with(&loop, &o));
    loop_server *srv;
    if (task)
        CHECK(loop_stream_task_start_server(loop, "127.0.0.1", 0, NULL, idle_handler, NULL, &srv));
    else
        CHECK(loop_server_listen(loop, "127.0.0.1", 0, NULL, idle_accept, NULL, &srv));
    int ready[2], go[2];
    CHECK(pipe(ready));
    CHECK(pipe(go));
    /* One connection first, so that what every server has once is there. */
    pid_t warm = fork();
    if (warm == 0) {
        idle_clients(loop_server_port(srv), 1, ready[1], go[0]);
        _exit(0);
    }
    CHECK(loop_add_reader(loop, ready[0], ready_cb, NULL));
    CHECK(loop_run(loop));
    uint64_t rss0 = status_bytes("VmRSS");
    int64_t mem0 = mem.live;
    pid_t pid = fork();
    if (pid == 0) {
        idle_clients(loop_server_port(srv), n, ready[1], go[0]);
        _exit(0);
    }
    CHECK(loop_run(loop)); /* until the clients are all echoed */
    uint64_t rss1 = status_bytes("VmRSS");
    int64_t mem1 = mem.live;
    EXPECT_EQ((uint64_t)idle_conns, (uint64_t)n + 1);
    CHECK(write(go[1], "xx", 2));
    int status;
    waitpid(pid, &status, 0);
    waitpid(warm, &status, 0);
    result("n=%u rss_per_conn=%.0f lib_per_conn=%.0f", n, (double)(rss1 - rss0) / n,
           (double)(mem1 - mem0) / n);
    loop_server_close(srv);
    CHECK(loop_remove_reader(loop, ready[0]));
    CHECK(loop_free(loop));
    loop_server_free(srv);
}

int main(int argc, char **argv)
{
    bench_init("stream", argc, argv);
    if (argc < 3)
        die("usage: bench_stream transfer|idle mode=... [key=value ...]");
    if (!strcmp(argv[1], "transfer"))
        transfer();
    else if (!strcmp(argv[1], "idle"))
        idle();
    else
        die("unknown workload %s", argv[1]);
    return 0;
}
