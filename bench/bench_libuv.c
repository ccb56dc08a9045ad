/*
 * The libuv column, written as libuv's documentation recommends.
 *
 * "Run this next iteration" is a uv_idle_t.  The docs: idle handles "run
 * the given callback once per loop iteration" and, while one is active,
 * "the loop will perform a zero timeout poll instead of blocking for i/o".
 * uv_check_t or uv_prepare_t alone would let the loop block in the poll;
 * Node's setImmediate() is a check handle kept non-blocking by an idle
 * handle, which is the same iteration with one more callback in it, and a
 * uv_async_t sent to itself costs an eventfd write and read per callback.
 * A handle stays active until stopped, so a chain is one active idle handle
 * whose callback counts; fan-out is one idle handle per callback, each
 * stopping itself (w1, w2).  0 ms timers are measured too (w1_timer,
 * w2_timer, below): in this libuv they chain within one pass.
 *
 * Timers: uv_timer_t, whose timeouts are whole milliseconds counted from
 * the loop's cached time; delays are rounded up.  A reset is
 * uv_timer_start() on the active timer ("if the timer is already active,
 * it is simply updated").  fd readiness (W5) is uv_poll_t; the servers use
 * uv_tcp_t streams (uv_read_start, uv_try_write).  Cross-thread posts (W6)
 * are a locked queue woken by uv_async_send(), which coalesces.
 *
 * Handles are allocated by the caller (libuv's model), outside the timed
 * part, but they count in the memory rows.
 */
#include "common.h"

#include <uv.h>

static uint64_t count, target, sum;
static uv_loop_t loop_storage, *loop = &loop_storage;

static void init_loop(void)
{
    CHECK(uv_loop_init(loop));
}

static void on_closed(uv_handle_t *h)
{
    UNUSED(h);
}

/* Close every handle left and free the loop. */
static void walk_close(uv_handle_t *h, void *arg)
{
    UNUSED(arg);
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

static void free_loop(void)
{
    uv_walk(loop, walk_close, NULL);
    CHECK(uv_run(loop, UV_RUN_DEFAULT));
    CHECK(uv_loop_close(loop));
}

static void run_default(void)
{
    int r = uv_run(loop, UV_RUN_DEFAULT);
    CHECK(r);
}

static uint64_t ms_up(uint64_t ns)
{
    return (ns + 999999) / 1000000;
}

/* ---- W1: a chain of next-iteration callbacks ---------------------------- */

static void w1_cb(uv_idle_t *h)
{
    if (++count == target)
        CHECK(uv_idle_stop(h));
}

static void w1(void)
{
    uv_idle_t idle;
    init_loop();
    target = param("n", 10000000);
    CHECK(uv_idle_init(loop, &idle));
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    CHECK(uv_idle_start(&idle, w1_cb));
    run_default();
    uint64_t t1 = now_ns();
    REGION_END();
    EXPECT_EQ(count, target);
    free_loop();
    result("n=%llu ns_per_op=%.2f ops=%llu", (unsigned long long)target,
           (double)(t1 - t0) / (double)target, (unsigned long long)target);
}

/* ---- W2: fan-out ---------------------------------------------------------- */

static void w2_cb(uv_idle_t *h)
{
    count++;
    sum += (uintptr_t)h->data;
    CHECK(uv_idle_stop(h));
}

static void w2(void)
{
    uint64_t n = param("n", 1000000);
    uv_idle_t *h = xcalloc(n, sizeof *h);
    init_loop();
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        CHECK(uv_idle_init(loop, &h[i]));
        h[i].data = (void *)(uintptr_t)i;
        CHECK(uv_idle_start(&h[i], w2_cb));
    }
    uint64_t t1 = now_ns();
    run_default();
    uint64_t t2 = now_ns();
    REGION_END();
    EXPECT_EQ(count, n);
    EXPECT_EQ(sum, n * (n - 1) / 2);
    free_loop();
    free(h);
    result("n=%llu ns_per_op=%.2f schedule_ns=%.2f run_ns=%.2f ops=%llu", (unsigned long long)n,
           (double)(t2 - t0) / (double)n, (double)(t1 - t0) / (double)n,
           (double)(t2 - t1) / (double)n, (unsigned long long)n);
}

/*
 * The same chain and fan-out with 0 ms timers.  In the libuv packaged by
 * Debian 12 (1.44), a due timer started from a timer callback runs in the
 * same uv__run_timers() pass, with no poll and no clock update in between
 * (libuv issue #4245; libuv's PR #4250 later made it wait for the next
 * iteration), so here a chain of 0 ms timers is libuv's fastest way to run
 * a callback soon.  Fan-out this way
 * pays a heap pop per callback, which uv_idle_t does not.
 */
static void w1_timer_cb(uv_timer_t *t)
{
    if (++count < target)
        CHECK(uv_timer_start(t, w1_timer_cb, 0, 0));
}

static void w1_timer(void)
{
    uv_timer_t t;
    init_loop();
    target = param("n", 10000000);
    CHECK(uv_timer_init(loop, &t));
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    CHECK(uv_timer_start(&t, w1_timer_cb, 0, 0));
    run_default();
    uint64_t t1 = now_ns();
    REGION_END();
    EXPECT_EQ(count, target);
    free_loop();
    result("n=%llu ns_per_op=%.2f ops=%llu", (unsigned long long)target,
           (double)(t1 - t0) / (double)target, (unsigned long long)target);
}

static void w2_timer_cb(uv_timer_t *t)
{
    count++;
    sum += (uintptr_t)t->data;
}

static void w2_timer(void)
{
    uint64_t n = param("n", 1000000);
    uv_timer_t *t = xcalloc(n, sizeof *t);
    init_loop();
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        CHECK(uv_timer_init(loop, &t[i]));
        t[i].data = (void *)(uintptr_t)i;
        CHECK(uv_timer_start(&t[i], w2_timer_cb, 0, 0));
    }
    uint64_t t1 = now_ns();
    run_default();
    uint64_t t2 = now_ns();
    REGION_END();
    EXPECT_EQ(count, n);
    EXPECT_EQ(sum, n * (n - 1) / 2);
    free_loop();
    free(t);
    result("n=%llu ns_per_op=%.2f schedule_ns=%.2f run_ns=%.2f ops=%llu", (unsigned long long)n,
           (double)(t2 - t0) / (double)n, (double)(t1 - t0) / (double)n,
           (double)(t2 - t1) / (double)n, (unsigned long long)n);
}

/* ---- W3: a million one-shot timers --------------------------------------- */

static void w3_cb(uv_timer_t *t)
{
    UNUSED(t);
    count++;
}

static void w3(void)
{
    uint64_t n = param("n", 1000000), spread = param("spread_ms", 1000) * 1000000;
    uint64_t rng = 1;
    init_loop();
    uint64_t rss0 = status_bytes("VmRSS");
    uv_timer_t *t = malloc(n * sizeof *t);
    CHECK_PTR(t);
    bool count_run = param("count_run", 0); /* callgrind: the run phase, not the setup */
    if (!count_run)
        REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        CHECK(uv_timer_init(loop, &t[i]));
        CHECK(uv_timer_start(&t[i], w3_cb, ms_up(rng_next(&rng) % (spread + 1)), 0));
    }
    uint64_t t1 = now_ns(), c1 = cpu_ns();
    REGION_END(); /* the setup's end, or the run phase's start */
    run_default();
    uint64_t t2 = now_ns(), c2 = cpu_ns();
    if (count_run)
        REGION_END();
    uint64_t hwm = status_bytes("VmHWM");
    EXPECT_EQ(count, n);
    free_loop();
    free(t);
    result("n=%llu setup_ns=%.2f run_cpu_ns=%.2f run_wall_ms=%.1f rss_per_timer=%.1f ops=%llu",
           (unsigned long long)n, (double)(t1 - t0) / (double)n, (double)(c2 - c1) / (double)n,
           (double)(t2 - t1) / 1e6, (double)(hwm - rss0) / (double)n, (unsigned long long)n);
}

/* ---- W4: timer reset churn ----------------------------------------------- */

static uv_timer_t *w4_t;

static void w4_never(uv_timer_t *t)
{
    UNUSED(t);
    die("a 30 s timer fired");
}

/* One batch per iteration (see common.h); only the timed batches count. */
static void w4_body(uv_idle_t *idle)
{
    bool timed;
    uint64_t b = w4_next(&timed);
    if (timed)
        REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < b; r++)
        CHECK(uv_timer_start(&w4_t[w4_pick()], w4_never, 30000, 0));
    uint64_t t1 = now_ns();
    if (timed)
        REGION_END();
    w4_took(timed, b, t1 - t0);
    if (!w4_done())
        return; /* the idle handle runs again next iteration */
    CHECK(uv_idle_stop(idle));
    for (uint64_t i = 0; i < W4.timers; i++) {
        if (!uv_is_active((uv_handle_t *)&w4_t[i]))
            die("timer %llu is not armed", (unsigned long long)i);
        CHECK(uv_timer_stop(&w4_t[i]));
    }
    count++;
}

static void w4(void)
{
    w4_init();
    w4_t = xcalloc(W4.timers, sizeof *w4_t);
    init_loop();
    for (uint64_t i = 0; i < W4.timers; i++) {
        CHECK(uv_timer_init(loop, &w4_t[i]));
        CHECK(uv_timer_start(&w4_t[i], w4_never, 30000, 0));
    }
    uv_idle_t idle;
    CHECK(uv_idle_init(loop, &idle));
    CHECK(uv_idle_start(&idle, w4_body));
    run_default();
    EXPECT_EQ(count, 1);
    free_loop();
    free(w4_t);
    w4_finish();
}

/* ---- W5: ping-pong over socketpairs --------------------------------------- */

static struct w5 W5;

static void w5_cb(uv_poll_t *p, int status, int events)
{
    UNUSED(events);
    CHECK(status);
    if (w5_readable(&W5, (int)(intptr_t)p->data))
        uv_stop(loop);
}

static void w5(void)
{
    uint64_t n = param("n", 1000), rounds = param("rounds", 100);
    w5_init(&W5, (int)n, (int)param("active", 100), param("writes", n));
    init_loop();
    uv_poll_t *p = xcalloc(n, sizeof *p);
    for (int i = 0; i < W5.n; i++) {
        CHECK(uv_poll_init(loop, &p[i], W5.fds[2 * i]));
        p[i].data = (void *)(intptr_t)i;
        CHECK(uv_poll_start(&p[i], UV_READABLE, w5_cb));
    }
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < rounds; r++) {
        w5_kick(&W5);
        run_default(); /* returns non-zero after uv_stop: handles are still active */
    }
    uint64_t t1 = now_ns();
    REGION_END();
    for (int i = 0; i < W5.n; i++)
        CHECK(uv_poll_stop(&p[i]));
    free_loop();
    free(p);
    w5_finish(&W5, rounds, t1 - t0);
}

/* ---- W6: cross-thread posts ------------------------------------------------ */

static struct postq w6_q;
static uv_async_t w6_async;

static void w6_closure(void *arg)
{
    if (w6_ran((uintptr_t)arg))
        uv_stop(loop);
}

static void w6_wake(uv_async_t *a)
{
    UNUSED(a);
    postq_drain(&w6_q);
}

static void *w6_producer(void *arg)
{
    UNUSED(arg);
    w6.t_first = now_ns();
    for (uint64_t i = 0; i < w6.n; i++)
        if (postq_push(&w6_q, w6_closure, (void *)(uintptr_t)i))
            CHECK(uv_async_send(&w6_async));
    w6.t_posted = now_ns();
    return NULL;
}

static void w6_run(void)
{
    w6_init();
    postq_init(&w6_q);
    init_loop();
    CHECK(uv_async_init(loop, &w6_async, w6_wake));
    pthread_t t;
    if (pthread_create(&t, NULL, w6_producer, NULL))
        die("pthread_create");
    run_default();
    if (pthread_join(t, NULL))
        die("pthread_join");
    free_loop();
    postq_free(&w6_q);
    w6_finish();
}

/* ---- W7, W8: echo and HTTP servers ------------------------------------------ */

static struct server_stats st;
static bool http;

struct uvconn {
    uv_tcp_t tcp;
    size_t len;
    char buf[HTTP_BUF];
};

struct uvwrite {
    uv_write_t req;
    char data[];
};

static void on_conn_closed(uv_handle_t *h)
{
    free(h->data);
    st.closed++;
}

static void on_written(uv_write_t *req, int status)
{
    CHECK(status);
    free(req->data);
}

/* uv_try_write, and uv_write for whatever the socket did not take. */
static void send_bytes(uv_stream_t *s, const char *p, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    int w = uv_try_write(s, &b, 1);
    if (w == UV_EAGAIN)
        w = 0;
    CHECK(w);
    if ((size_t)w == len)
        return;
    struct uvwrite *wr = malloc(sizeof *wr + len - (size_t)w);
    CHECK_PTR(wr);
    memcpy(wr->data, p + w, len - (size_t)w);
    wr->req.data = wr;
    b = uv_buf_init(wr->data, (unsigned)(len - (size_t)w));
    CHECK(uv_write(&wr->req, s, &b, 1, on_written));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    UNUSED(suggested);
    struct uvconn *c = h->data;
    if (http)
        *buf = uv_buf_init(c->buf + c->len, (unsigned)(HTTP_BUF - c->len));
    else
        *buf = uv_buf_init(c->buf, HTTP_BUF);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct uvconn *c = s->data;
    if (nread < 0) {
        if (nread != UV_EOF && nread != UV_ECONNRESET)
            CHECK(nread);
        uv_close((uv_handle_t *)s, on_conn_closed);
        return;
    }
    st.bytes += (uint64_t)nread;
    if (!http) {
        send_bytes(s, buf->base, (size_t)nread);
        return;
    }
    c->len += (size_t)nread;
    size_t n = http_requests(c->buf, &c->len, (size_t)nread);
    char out[16 * HTTP_RESPONSE_LEN];
    while (n) {
        size_t k = n < 16 ? n : 16;
        for (size_t i = 0; i < k; i++)
            memcpy(out + i * HTTP_RESPONSE_LEN, http_response, HTTP_RESPONSE_LEN);
        send_bytes(s, out, k * HTTP_RESPONSE_LEN);
        st.requests += k;
        n -= k;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    CHECK(status);
    struct uvconn *c = xcalloc(1, sizeof *c);
    CHECK(uv_tcp_init(loop, &c->tcp));
    c->tcp.data = c;
    CHECK(uv_accept(server, (uv_stream_t *)&c->tcp));
    CHECK(uv_tcp_nodelay(&c->tcp, 1));
    CHECK(uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read));
    st.accepted++;
}

static char stdin_buf[64];

static void on_stdin_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    UNUSED(h);
    UNUSED(suggested);
    *buf = uv_buf_init(stdin_buf, sizeof stdin_buf);
}

/* The driver closes our stdin when the client is done. */
static void on_stdin(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    UNUSED(s);
    UNUSED(buf);
    if (nread < 0)
        uv_stop(loop);
}

static void server(bool is_http)
{
    http = is_http;
    init_loop();
    uv_tcp_t listener;
    struct sockaddr_in addr;
    CHECK(uv_ip4_addr("127.0.0.1", 0, &addr));
    CHECK(uv_tcp_init(loop, &listener));
    CHECK(uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0));
    CHECK(uv_listen((uv_stream_t *)&listener, 1024, on_connection));
    int alen = sizeof addr;
    CHECK(uv_tcp_getsockname(&listener, (struct sockaddr *)&addr, &alen));
    printf("PORT %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    uv_pipe_t in;
    CHECK(uv_pipe_init(loop, &in, 0));
    CHECK(uv_pipe_open(&in, 0));
    CHECK(uv_read_start((uv_stream_t *)&in, on_stdin_alloc, on_stdin));
    st.cpu0 = cpu_ns();
    run_default();
    server_report(&st);
}

/* ---- W9: timer lateness ---------------------------------------------------- */

static struct w9 W9;
static uv_timer_t *w9_t;

static void w9_cb(uv_timer_t *t);

static void w9_arm(void *ctx, unsigned i, uint64_t delay_ns)
{
    UNUSED(ctx);
    CHECK(uv_timer_start(&w9_t[i], w9_cb, ms_up(delay_ns), 0));
}

static void w9_cb(uv_timer_t *t)
{
    if (w9_fired(&W9, (unsigned)(t - w9_t)))
        w9_round(&W9, w9_arm, NULL);
}

static void w9_start(uv_idle_t *idle)
{
    CHECK(uv_idle_stop(idle));
    w9_round(&W9, w9_arm, NULL);
}

static void w9(void)
{
    w9_init(&W9);
    init_loop();
    w9_t = xcalloc(W9.batch, sizeof *w9_t);
    for (unsigned i = 0; i < W9.batch; i++)
        CHECK(uv_timer_init(loop, &w9_t[i]));
    uv_idle_t idle;
    CHECK(uv_idle_init(loop, &idle));
    CHECK(uv_idle_start(&idle, w9_start));
    run_default();
    free_loop();
    free(w9_t);
    w9_finish(&W9);
}

/* ---- Memory per pending timer, registered fd, queued callback --------------- */

static void idle_nop(uv_idle_t *h)
{
    UNUSED(h);
}

static void poll_nop(uv_poll_t *p, int status, int events)
{
    UNUSED(p);
    UNUSED(status);
    UNUSED(events);
}

static void mem(const char *what)
{
    init_loop();
    uint64_t n = param("n", 1000000), rng = 1;
    struct w5 pairs = {0};
    if (!strcmp(what, "fd")) {
        n = param("n", 9000);
        w5_init(&pairs, (int)n, 1, 1);
        n *= 2;
    }
    uint64_t rss0 = status_bytes("VmRSS");
    void *items;
    if (!strcmp(what, "timer")) {
        uv_timer_t *t = items = malloc(n * sizeof *t);
        CHECK_PTR(t);
        for (uint64_t i = 0; i < n; i++) {
            CHECK(uv_timer_init(loop, &t[i]));
            CHECK(uv_timer_start(&t[i], w3_cb, 100000 + rng_next(&rng) % 1000, 0));
        }
    } else if (!strcmp(what, "cb")) {
        uv_idle_t *h = items = malloc(n * sizeof *h);
        CHECK_PTR(h);
        for (uint64_t i = 0; i < n; i++) {
            CHECK(uv_idle_init(loop, &h[i]));
            CHECK(uv_idle_start(&h[i], idle_nop));
        }
    } else {
        uv_poll_t *p = items = malloc(n * sizeof *p);
        CHECK_PTR(p);
        for (uint64_t i = 0; i < n; i++) {
            CHECK(uv_poll_init(loop, &p[i], pairs.fds[i]));
            CHECK(uv_poll_start(&p[i], UV_READABLE, poll_nop));
        }
    }
    uint64_t rss1 = status_bytes("VmRSS");
    result("n=%llu bytes_per_item=%.1f", (unsigned long long)n, (double)(rss1 - rss0) / (double)n);
    free_loop();
    free(items);
    if (pairs.fds)
        w5_close(&pairs);
}

int main(int argc, char **argv)
{
    bench_init("libuv", argc, argv);
    const char *w = argv[1];
    if (!strcmp(w, "w1"))
        w1();
    else if (!strcmp(w, "w1_timer"))
        w1_timer();
    else if (!strcmp(w, "w2"))
        w2();
    else if (!strcmp(w, "w2_timer"))
        w2_timer();
    else if (!strcmp(w, "w3"))
        w3();
    else if (!strcmp(w, "w4"))
        w4();
    else if (!strcmp(w, "w5"))
        w5();
    else if (!strcmp(w, "w6"))
        w6_run();
    else if (!strcmp(w, "w7"))
        server(false);
    else if (!strcmp(w, "w8"))
        server(true);
    else if (!strcmp(w, "w9"))
        w9();
    else if (!strncmp(w, "mem_", 4))
        mem(w + 4);
    else {
        fprintf(stderr, "bench_libuv: unknown or unsupported workload %s\n", w);
        return 2;
    }
    return 0;
}
