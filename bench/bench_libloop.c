/*
 * The libloop column: every workload through include/loop.h only.
 *
 *     bench_libloop <workload> [key=value ...]
 *
 * Workloads: w1a w1b w2 w3 w3at w4 w4at w4re w4ra w5 w6 w7 w8 w9 mem_timer mem_fd mem_cb,
 * and W7 and W8 on the stream layers: w7s w8s (callbacks), w7t w8t (tasks),
 * in stream/stream_servers.h.
 */
#include "common.h"

#include "loop.h"

static uint64_t count, target, sum;

static loop_t *new_loop(bool strict)
{
    loop_options o = {0};
    o.strict_poll = strict;
    loop_t *loop;
    CHECK(loop_new_with(&loop, &o));
    return loop;
}

#ifdef BENCH_HAVE_STREAM
#include "stream/stream_servers.h"
#endif

/* ---- W1: a call_soon chain ---------------------------------------------- */

static void w1_cb(loop_t *loop, void *arg)
{
    if (++count < target)
        CHECK(loop_call_soon(loop, w1_cb, arg, NULL));
}

static void w1(bool strict)
{
    loop_t *loop = new_loop(strict);
    target = param("n", 10000000);
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    CHECK(loop_call_soon(loop, w1_cb, NULL, NULL));
    CHECK(loop_run(loop));
    uint64_t t1 = now_ns();
    REGION_END();
    EXPECT_EQ(count, target);
    CHECK(loop_free(loop));
    result("n=%llu ns_per_op=%.2f ops=%llu", (unsigned long long)target,
           (double)(t1 - t0) / (double)target, (unsigned long long)target);
}

/* ---- W2: fan-out ---------------------------------------------------------- */

static void w2_cb(loop_t *loop, void *arg)
{
    UNUSED(loop);
    count++;
    sum += (uintptr_t)arg;
}

static void w2(void)
{
    loop_t *loop = new_loop(false);
    uint64_t n = param("n", 1000000);
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        CHECK(loop_call_soon(loop, w2_cb, (void *)(uintptr_t)i, NULL));
    uint64_t t1 = now_ns();
    CHECK(loop_run(loop));
    uint64_t t2 = now_ns();
    REGION_END();
    EXPECT_EQ(count, n);
    EXPECT_EQ(sum, n * (n - 1) / 2);
    CHECK(loop_free(loop));
    result("n=%llu ns_per_op=%.2f schedule_ns=%.2f run_ns=%.2f ops=%llu", (unsigned long long)n,
           (double)(t2 - t0) / (double)n, (double)(t1 - t0) / (double)n,
           (double)(t2 - t1) / (double)n, (unsigned long long)n);
}

/* ---- W3: a million one-shot timers --------------------------------------- */

static void w3_cb(loop_t *loop, void *arg)
{
    UNUSED(loop);
    UNUSED(arg);
    count++;
}

static void w3(bool at)
{
    uint64_t n = param("n", 1000000), spread = param("spread_ms", 1000) * 1000000;
    uint64_t rng = 1;
    loop_t *loop = new_loop(false);
    uint64_t rss0 = status_bytes("VmRSS");
    bool count_run = param("count_run", 0); /* callgrind: the run phase, not the setup */
    if (!count_run)
        REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t d = rng_next(&rng) % (spread + 1);
        if (at) /* counts from the iteration's start: no clock read per call */
            CHECK(loop_call_at(loop, loop_now(loop) + d, w3_cb, NULL, NULL));
        else
            CHECK(loop_call_later(loop, d, w3_cb, NULL, NULL));
    }
    uint64_t t1 = now_ns(), c1 = cpu_ns();
    REGION_END(); /* the setup's end, or the run phase's start */
    CHECK(loop_run(loop));
    uint64_t t2 = now_ns(), c2 = cpu_ns();
    if (count_run)
        REGION_END();
    uint64_t hwm = status_bytes("VmHWM");
    EXPECT_EQ(count, n);
    CHECK(loop_free(loop));
    result("n=%llu setup_ns=%.2f run_cpu_ns=%.2f run_wall_ms=%.1f rss_per_timer=%.1f ops=%llu",
           (unsigned long long)n, (double)(t1 - t0) / (double)n, (double)(c2 - c1) / (double)n,
           (double)(t2 - t1) / 1e6, (double)(hwm - rss0) / (double)n, (unsigned long long)n);
}

/* ---- W4: timer reset churn ----------------------------------------------- */

static loop_handle *w4_handles;
static bool w4_at, w4_re;

static void w4_never(loop_t *loop, void *arg)
{
    UNUSED(loop);
    UNUSED(arg);
    die("a 30 s timer fired");
}

static int w4_arm(loop_t *loop, loop_handle *h)
{
    if (w4_at)
        return loop_call_at(loop, loop_now(loop) + LOOP_SEC(30), w4_never, NULL, h);
    return loop_call_later(loop, LOOP_SEC(30), w4_never, NULL, h);
}

/* One reset: cancel and schedule anew, or move the deadline in place. */
static int w4_reset(loop_t *loop, loop_handle *h)
{
#ifdef BENCH_HAVE_RESCHEDULE
    if (w4_re && w4_at)
        return loop_reschedule_at(loop, *h, loop_now(loop) + LOOP_SEC(30));
    if (w4_re)
        return loop_reschedule(loop, *h, LOOP_SEC(30));
#endif
    int err = loop_cancel(loop, *h);
    return err ? err : w4_arm(loop, h);
}

/*
 * The resets run in callbacks, batch by batch, one batch per iteration, as
 * a server resets the idle timers of the connections that were readable
 * (see common.h).  Only the timed batches count.
 */
static void w4_body(loop_t *loop, void *arg)
{
    UNUSED(arg);
    bool timed;
    uint64_t b = w4_next(&timed);
    if (timed)
        REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < b; r++)
        CHECK(w4_reset(loop, &w4_handles[w4_pick()]));
    uint64_t t1 = now_ns();
    if (timed)
        REGION_END();
    w4_took(timed, b, t1 - t0);
    if (!w4_done()) {
        CHECK(loop_call_soon(loop, w4_body, NULL, NULL));
        return;
    }
    for (uint64_t i = 0; i < W4.timers; i++) /* each one is still armed, once */
        CHECK(loop_cancel(loop, w4_handles[i]));
    count++;
}

static void w4(bool at, bool re)
{
    w4_at = at;
    w4_re = re;
    w4_init();
    w4_handles = xcalloc(W4.timers, sizeof *w4_handles);
    loop_t *loop = new_loop(false);
    for (uint64_t i = 0; i < W4.timers; i++)
        CHECK(w4_arm(loop, &w4_handles[i]));
    CHECK(loop_call_soon(loop, w4_body, NULL, NULL));
    CHECK(loop_run(loop));
    EXPECT_EQ(count, 1);
    CHECK(loop_free(loop));
    free(w4_handles);
    w4_finish();
}

/* ---- W5: ping-pong over socketpairs --------------------------------------- */

static struct w5 W5;

static void w5_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    UNUSED(fd);
    UNUSED(events);
    if (w5_readable(&W5, (int)(intptr_t)arg))
        loop_stop(loop);
}

static void w5(void)
{
    uint64_t n = param("n", 1000), rounds = param("rounds", 100);
    w5_init(&W5, (int)n, (int)param("active", 100), param("writes", n));
    loop_t *loop = new_loop(false);
    for (int i = 0; i < W5.n; i++)
        CHECK(loop_add_reader(loop, W5.fds[2 * i], w5_cb, (void *)(intptr_t)i));
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < rounds; r++) {
        w5_kick(&W5);
        CHECK(loop_run(loop));
    }
    uint64_t t1 = now_ns();
    REGION_END();
    for (int i = 0; i < W5.n; i++)
        CHECK(loop_remove_reader(loop, W5.fds[2 * i]));
    CHECK(loop_free(loop));
    w5_finish(&W5, rounds, t1 - t0);
}

/* ---- W6: cross-thread posts ------------------------------------------------ */

#ifdef BENCH_HAVE_THREADSAFE
static void w6_cb(loop_t *loop, void *arg)
{
    if (w6_ran((uintptr_t)arg)) {
        loop_unref(loop);
        loop_stop(loop);
    }
}

static void *w6_producer(void *arg)
{
    loop_t *loop = arg;
    w6.t_first = now_ns();
    for (uint64_t i = 0; i < w6.n; i++)
        CHECK(loop_call_soon_threadsafe(loop, w6_cb, (void *)(uintptr_t)i));
    w6.t_posted = now_ns();
    return NULL;
}

static void w6_run(void)
{
    w6_init();
    loop_t *loop = new_loop(false);
    loop_ref(loop); /* the threadsafe channel alone does not keep loop_run alive */
    pthread_t t;
    if (pthread_create(&t, NULL, w6_producer, loop))
        die("pthread_create");
    CHECK(loop_run(loop));
    if (pthread_join(t, NULL))
        die("pthread_join");
    CHECK(loop_free(loop));
    w6_finish();
}
#endif

/* ---- W7, W8: echo and HTTP servers ------------------------------------------ */

static struct server_stats st;
static bool http;

static void conn_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    UNUSED(events);
    struct conn *c = arg;
    if (serve_readable(c, http, &st))
        return;
    CHECK(loop_remove_reader(loop, fd));
    conn_free(c, 0);
    st.closed++;
}

static void accept_cb(loop_t *loop, int lfd, unsigned events, void *arg)
{
    UNUSED(events);
    UNUSED(arg);
    int fd;
    while ((fd = accept_one(lfd)) >= 0) {
        struct conn *c = conn_new(fd, sizeof *c, 0);
        CHECK(loop_add_reader(loop, fd, conn_cb, c));
        st.accepted++;
    }
}

/* The driver closes our stdin when the client is done. */
static void stdin_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    UNUSED(events);
    UNUSED(arg);
    char buf[64];
    if (read(fd, buf, sizeof buf) <= 0)
        loop_stop(loop);
}

static void server(bool is_http)
{
    http = is_http;
    loop_t *loop = new_loop(false);
    int lfd = listen_any();
    CHECK(loop_add_reader(loop, lfd, accept_cb, NULL));
    CHECK(loop_add_reader(loop, 0, stdin_cb, NULL));
    st.cpu0 = cpu_ns();
    CHECK(loop_run(loop));
    server_report(&st);
    CHECK(loop_free(loop));
    conns_free_all(0);
    close(lfd);
}

/* ---- W9: timer lateness ---------------------------------------------------- */

static struct w9 W9;

static void w9_cb(loop_t *loop, void *arg);

static void w9_arm(void *ctx, unsigned i, uint64_t delay_ns)
{
    CHECK(loop_call_later(ctx, delay_ns, w9_cb, (void *)(uintptr_t)i, NULL));
}

static void w9_cb(loop_t *loop, void *arg)
{
    if (w9_fired(&W9, (unsigned)(uintptr_t)arg))
        w9_round(&W9, w9_arm, loop);
}

static void w9_start(loop_t *loop, void *arg)
{
    UNUSED(arg);
    w9_round(&W9, w9_arm, loop);
}

static void w9(void)
{
    w9_init(&W9);
    loop_t *loop = new_loop(false);
    CHECK(loop_call_soon(loop, w9_start, NULL, NULL));
    CHECK(loop_run(loop));
    CHECK(loop_free(loop));
    w9_finish(&W9);
}

/* ---- Memory per pending timer, registered fd, queued callback --------------- */

static void io_nop(loop_t *loop, int fd, unsigned events, void *arg)
{
    UNUSED(loop);
    UNUSED(fd);
    UNUSED(events);
    UNUSED(arg);
}

static void mem(const char *what)
{
    loop_t *loop = new_loop(false);
    uint64_t n = param("n", 1000000), rng = 1;
    struct w5 pairs = {0};
    if (!strcmp(what, "fd")) {
        n = param("n", 9000);
        w5_init(&pairs, (int)n, 1, 1);
        n *= 2;
    }
    uint64_t rss0 = status_bytes("VmRSS");
    for (uint64_t i = 0; i < n; i++) {
        if (!strcmp(what, "timer"))
            CHECK(loop_call_later(loop, LOOP_SEC(100) + rng_next(&rng) % LOOP_SEC(1), w3_cb, NULL,
                                  NULL));
        else if (!strcmp(what, "cb"))
            CHECK(loop_call_soon(loop, w3_cb, NULL, NULL));
        else
            CHECK(loop_add_reader(loop, pairs.fds[i], io_nop, NULL));
    }
    uint64_t rss1 = status_bytes("VmRSS");
    result("n=%llu bytes_per_item=%.1f", (unsigned long long)n, (double)(rss1 - rss0) / (double)n);
    if (pairs.fds)
        for (uint64_t i = 0; i < n; i++)
            CHECK(loop_remove_reader(loop, pairs.fds[i]));
    CHECK(loop_free(loop));
    if (pairs.fds)
        w5_close(&pairs);
}

int main(int argc, char **argv)
{
    bench_init("libloop", argc, argv);
    const char *w = argv[1];
    if (!strcmp(w, "w1a"))
        w1(true);
    else if (!strcmp(w, "w1b"))
        w1(false);
    else if (!strcmp(w, "w2"))
        w2();
    else if (!strcmp(w, "w3"))
        w3(false);
    else if (!strcmp(w, "w3at"))
        w3(true);
    else if (!strcmp(w, "w4"))
        w4(false, false);
    else if (!strcmp(w, "w4at"))
        w4(true, false);
#ifdef BENCH_HAVE_RESCHEDULE
    else if (!strcmp(w, "w4re"))
        w4(false, true);
    else if (!strcmp(w, "w4ra"))
        w4(true, true);
#endif
    else if (!strcmp(w, "w5"))
        w5();
#ifdef BENCH_HAVE_THREADSAFE
    else if (!strcmp(w, "w6"))
        w6_run();
#endif
    else if (!strcmp(w, "w7"))
        server(false);
    else if (!strcmp(w, "w8"))
        server(true);
#ifdef BENCH_HAVE_STREAM
    else if (!strcmp(w, "w7s") || !strcmp(w, "w8s") || !strcmp(w, "w7t") || !strcmp(w, "w8t"))
        stream_server(w[1] == '8', w[2] == 't');
#endif
    else if (!strcmp(w, "w9"))
        w9();
    else if (!strncmp(w, "mem_", 4))
        mem(w + 4);
    else {
        fprintf(stderr, "bench_libloop: unknown or unsupported workload %s\n", w);
        return 2;
    }
    return 0;
}
