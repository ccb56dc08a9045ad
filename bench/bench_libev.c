/*
 * The libev column, written as libev's documentation (ev.pod) recommends.
 *
 * "Run this next iteration" is an ev_idle watcher: "as long as your process
 * is busy handling sockets or timeouts (or even signals) of the same or
 * higher priority it will not be triggered", and while one is active the
 * loop polls without blocking.  A watcher stays active until stopped, so a
 * chain is one active idle watcher whose callback counts; fan-out is one
 * idle watcher per callback, each stopping itself (w1, w2).
 *
 * ev_feed_event() is not a next-iteration primitive: a watcher fed from a
 * callback is invoked in the same ev_invoke_pending() pass, without a poll
 * in between.  It is libev's fastest way to have a callback run soon, so the
 * chain and the fan-out are measured that way too (w1_feed, w2_feed), and
 * the table compares against whichever is faster.
 *
 * Timers: ev_timer, relative to the loop's cached ev_now().  A reset is
 * ev_timer_again() on a watcher whose repeat is the timeout, the second
 * technique of ev.pod's "Be smart about timeouts" (the third, checking a
 * last-activity time lazily, would skip the heap and so not be measuring
 * the same thing).  fd readiness is ev_io.  Cross-thread posts (W6) are a
 * locked queue woken by ev_async_send(), which coalesces.
 *
 * The loop is ev_loop_new(EVBACKEND_EPOLL), checked, so that every column
 * polls with epoll.  Watchers are allocated by the caller (libev's model),
 * outside the timed part, but they count in the memory rows.
 */
#include "common.h"

#include <ev.h>

static uint64_t count, target, sum;
static struct ev_loop *loop;

static void init_loop(void)
{
    loop = ev_loop_new(EVBACKEND_EPOLL);
    CHECK_PTR(loop);
    if (ev_backend(loop) != EVBACKEND_EPOLL)
        die("libev did not choose epoll");
}

/* ev_run() returns true while watchers are still active (after ev_break). */
static void run(void)
{
    (void)ev_run(loop, 0);
}

/* ---- W1: a chain of next-iteration callbacks ---------------------------- */

static void w1_cb(struct ev_loop *l, ev_idle *w, int revents)
{
    UNUSED(revents);
    if (++count == target)
        ev_idle_stop(l, w);
}

static void w1(void)
{
    ev_idle idle;
    init_loop();
    target = param("n", 10000000);
    ev_idle_init(&idle, w1_cb);
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    ev_idle_start(loop, &idle);
    run();
    uint64_t t1 = now_ns();
    REGION_END();
    EXPECT_EQ(count, target);
    ev_loop_destroy(loop);
    result("n=%llu ns_per_op=%.2f ops=%llu", (unsigned long long)target,
           (double)(t1 - t0) / (double)target, (unsigned long long)target);
}

/* ---- W2: fan-out ---------------------------------------------------------- */

static void w2_cb(struct ev_loop *l, ev_idle *w, int revents)
{
    UNUSED(revents);
    count++;
    sum += (uintptr_t)w->data;
    ev_idle_stop(l, w);
}

static void w2(void)
{
    uint64_t n = param("n", 1000000);
    ev_idle *w = xcalloc(n, sizeof *w);
    init_loop();
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        ev_idle_init(&w[i], w2_cb);
        w[i].data = (void *)(uintptr_t)i;
        ev_idle_start(loop, &w[i]);
    }
    uint64_t t1 = now_ns();
    run();
    uint64_t t2 = now_ns();
    REGION_END();
    EXPECT_EQ(count, n);
    EXPECT_EQ(sum, n * (n - 1) / 2);
    ev_loop_destroy(loop);
    free(w);
    result("n=%llu ns_per_op=%.2f schedule_ns=%.2f run_ns=%.2f ops=%llu", (unsigned long long)n,
           (double)(t2 - t0) / (double)n, (double)(t1 - t0) / (double)n,
           (double)(t2 - t1) / (double)n, (unsigned long long)n);
}

/*
 * The same chain and fan-out through ev_feed_event(): libev's fastest way to
 * have a callback run soon.  It is not a next-iteration primitive: a watcher
 * fed from a callback joins the pending array that ev_invoke_pending() is
 * draining, so it runs in the same pass, with no poll and no clock update in
 * between (and the pending array is a stack: fed watchers of one priority
 * run last in, first out).  The watcher need not be started.
 */
static void w1_feed_cb(struct ev_loop *l, ev_idle *w, int revents)
{
    if (!(revents & EV_CUSTOM))
        die("fed with revents %d", revents);
    if (++count < target)
        ev_feed_event(l, w, EV_CUSTOM);
}

static void w1_feed(void)
{
    ev_idle w;
    init_loop();
    target = param("n", 10000000);
    ev_idle_init(&w, w1_feed_cb);
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    ev_feed_event(loop, &w, EV_CUSTOM);
    run();
    uint64_t t1 = now_ns();
    REGION_END();
    EXPECT_EQ(count, target);
    ev_loop_destroy(loop);
    result("n=%llu ns_per_op=%.2f ops=%llu", (unsigned long long)target,
           (double)(t1 - t0) / (double)target, (unsigned long long)target);
}

static void w2_feed_cb(struct ev_loop *l, ev_idle *w, int revents)
{
    UNUSED(l);
    UNUSED(revents);
    count++;
    sum += (uintptr_t)w->data;
}

static void w2_feed(void)
{
    uint64_t n = param("n", 1000000);
    ev_idle *w = xcalloc(n, sizeof *w);
    init_loop();
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        ev_idle_init(&w[i], w2_feed_cb);
        w[i].data = (void *)(uintptr_t)i;
        ev_feed_event(loop, &w[i], EV_CUSTOM);
    }
    uint64_t t1 = now_ns();
    run();
    uint64_t t2 = now_ns();
    REGION_END();
    EXPECT_EQ(count, n);
    EXPECT_EQ(sum, n * (n - 1) / 2);
    ev_loop_destroy(loop);
    free(w);
    result("n=%llu ns_per_op=%.2f schedule_ns=%.2f run_ns=%.2f ops=%llu", (unsigned long long)n,
           (double)(t2 - t0) / (double)n, (double)(t1 - t0) / (double)n,
           (double)(t2 - t1) / (double)n, (unsigned long long)n);
}

/* ---- W3: a million one-shot timers --------------------------------------- */

static void w3_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    UNUSED(l);
    UNUSED(w);
    UNUSED(revents);
    count++;
}

static void w3(void)
{
    uint64_t n = param("n", 1000000), spread = param("spread_ms", 1000) * 1000000;
    uint64_t rng = 1;
    init_loop();
    uint64_t rss0 = status_bytes("VmRSS");
    ev_timer *t = malloc(n * sizeof *t);
    CHECK_PTR(t);
    bool count_run = param("count_run", 0); /* callgrind: the run phase, not the setup */
    if (!count_run)
        REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        ev_timer_init(&t[i], w3_cb, (double)(rng_next(&rng) % (spread + 1)) / 1e9, 0.);
        ev_timer_start(loop, &t[i]);
    }
    uint64_t t1 = now_ns(), c1 = cpu_ns();
    REGION_END(); /* the setup's end, or the run phase's start */
    run();
    uint64_t t2 = now_ns(), c2 = cpu_ns();
    if (count_run)
        REGION_END();
    uint64_t hwm = status_bytes("VmHWM");
    EXPECT_EQ(count, n);
    ev_loop_destroy(loop);
    free(t);
    result("n=%llu setup_ns=%.2f run_cpu_ns=%.2f run_wall_ms=%.1f rss_per_timer=%.1f ops=%llu",
           (unsigned long long)n, (double)(t1 - t0) / (double)n, (double)(c2 - c1) / (double)n,
           (double)(t2 - t1) / 1e6, (double)(hwm - rss0) / (double)n, (unsigned long long)n);
}

/* ---- W4: timer reset churn ----------------------------------------------- */

static ev_timer *w4_t;

static void w4_never(struct ev_loop *l, ev_timer *w, int revents)
{
    UNUSED(l);
    UNUSED(w);
    UNUSED(revents);
    die("a 30 s timer fired");
}

/* One batch per iteration (see common.h); only the timed batches count. */
static void w4_body(struct ev_loop *l, ev_idle *idle, int revents)
{
    UNUSED(revents);
    bool timed;
    uint64_t b = w4_next(&timed);
    if (timed)
        REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < b; r++)
        ev_timer_again(l, &w4_t[w4_pick()]);
    uint64_t t1 = now_ns();
    if (timed)
        REGION_END();
    w4_took(timed, b, t1 - t0);
    if (!w4_done())
        return; /* the idle watcher runs again next iteration */
    ev_idle_stop(l, idle);
    for (uint64_t i = 0; i < W4.timers; i++) {
        if (!ev_is_active(&w4_t[i]))
            die("timer %llu is not armed", (unsigned long long)i);
        ev_timer_stop(l, &w4_t[i]);
    }
    count++;
}

static void w4(void)
{
    w4_init();
    w4_t = xcalloc(W4.timers, sizeof *w4_t);
    init_loop();
    for (uint64_t i = 0; i < W4.timers; i++) {
        ev_timer_init(&w4_t[i], w4_never, 0., 30.);
        ev_timer_again(loop, &w4_t[i]);
    }
    ev_idle idle;
    ev_idle_init(&idle, w4_body);
    ev_idle_start(loop, &idle);
    run();
    EXPECT_EQ(count, 1);
    ev_loop_destroy(loop);
    free(w4_t);
    w4_finish();
}

/* ---- W5: ping-pong over socketpairs --------------------------------------- */

static struct w5 W5;

static void w5_cb(struct ev_loop *l, ev_io *w, int revents)
{
    UNUSED(revents);
    if (w5_readable(&W5, (int)(intptr_t)w->data))
        ev_break(l, EVBREAK_ONE);
}

static void w5(void)
{
    uint64_t n = param("n", 1000), rounds = param("rounds", 100);
    w5_init(&W5, (int)n, (int)param("active", 100), param("writes", n));
    init_loop();
    ev_io *w = xcalloc(n, sizeof *w);
    for (int i = 0; i < W5.n; i++) {
        ev_io_init(&w[i], w5_cb, W5.fds[2 * i], EV_READ);
        w[i].data = (void *)(intptr_t)i;
        ev_io_start(loop, &w[i]);
    }
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < rounds; r++) {
        w5_kick(&W5);
        run();
    }
    uint64_t t1 = now_ns();
    REGION_END();
    for (int i = 0; i < W5.n; i++)
        ev_io_stop(loop, &w[i]);
    ev_loop_destroy(loop);
    free(w);
    w5_finish(&W5, rounds, t1 - t0);
}

/* ---- W6: cross-thread posts ------------------------------------------------ */

static struct postq w6_q;
static ev_async w6_async;

static void w6_closure(void *arg)
{
    if (w6_ran((uintptr_t)arg))
        ev_break(loop, EVBREAK_ALL);
}

static void w6_wake(struct ev_loop *l, ev_async *w, int revents)
{
    UNUSED(l);
    UNUSED(w);
    UNUSED(revents);
    postq_drain(&w6_q);
}

static void *w6_producer(void *arg)
{
    UNUSED(arg);
    w6.t_first = now_ns();
    for (uint64_t i = 0; i < w6.n; i++)
        if (postq_push(&w6_q, w6_closure, (void *)(uintptr_t)i))
            ev_async_send(loop, &w6_async);
    w6.t_posted = now_ns();
    return NULL;
}

static void w6_run(void)
{
    w6_init();
    postq_init(&w6_q);
    init_loop();
    ev_async_init(&w6_async, w6_wake);
    ev_async_start(loop, &w6_async);
    pthread_t t;
    if (pthread_create(&t, NULL, w6_producer, NULL))
        die("pthread_create");
    run();
    if (pthread_join(t, NULL))
        die("pthread_join");
    ev_async_stop(loop, &w6_async);
    ev_loop_destroy(loop);
    postq_free(&w6_q);
    w6_finish();
}

/* ---- W7, W8: echo and HTTP servers ------------------------------------------ */

static struct server_stats st;
static bool http;

struct evconn {
    ev_io io;
    struct conn c;
};

static void conn_cb(struct ev_loop *l, ev_io *w, int revents)
{
    UNUSED(revents);
    struct evconn *e = (struct evconn *)w;
    if (serve_readable(&e->c, http, &st))
        return;
    ev_io_stop(l, w);
    conn_free(&e->c, offsetof(struct evconn, c));
    st.closed++;
}

static void accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
    UNUSED(revents);
    int fd;
    while ((fd = accept_one(w->fd)) >= 0) {
        struct evconn *e = conn_new(fd, sizeof *e, offsetof(struct evconn, c));
        ev_io_init(&e->io, conn_cb, fd, EV_READ);
        ev_io_start(l, &e->io);
        st.accepted++;
    }
}

/* The driver closes our stdin when the client is done. */
static void stdin_cb(struct ev_loop *l, ev_io *w, int revents)
{
    UNUSED(revents);
    char buf[64];
    if (read(w->fd, buf, sizeof buf) <= 0)
        ev_break(l, EVBREAK_ALL);
}

static void server(bool is_http)
{
    http = is_http;
    init_loop();
    ev_io lw, in;
    ev_io_init(&lw, accept_cb, listen_any(), EV_READ);
    ev_io_start(loop, &lw);
    ev_io_init(&in, stdin_cb, 0, EV_READ);
    ev_io_start(loop, &in);
    st.cpu0 = cpu_ns();
    run();
    server_report(&st);
    ev_loop_destroy(loop);
    conns_free_all(offsetof(struct evconn, c));
    close(lw.fd);
}

/* ---- W9: timer lateness ---------------------------------------------------- */

static struct w9 W9;
static ev_timer *w9_t;

static void w9_cb(struct ev_loop *l, ev_timer *w, int revents);

static void w9_arm(void *ctx, unsigned i, uint64_t delay_ns)
{
    UNUSED(ctx);
    ev_timer_set(&w9_t[i], (double)delay_ns / 1e9, 0.);
    ev_timer_start(loop, &w9_t[i]);
}

static void w9_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    UNUSED(l);
    UNUSED(revents);
    if (w9_fired(&W9, (unsigned)(w - w9_t)))
        w9_round(&W9, w9_arm, NULL);
}

static void w9_start(struct ev_loop *l, ev_idle *idle, int revents)
{
    UNUSED(revents);
    ev_idle_stop(l, idle);
    w9_round(&W9, w9_arm, NULL);
}

static void w9(void)
{
    w9_init(&W9);
    init_loop();
    w9_t = xcalloc(W9.batch, sizeof *w9_t);
    for (unsigned i = 0; i < W9.batch; i++)
        ev_timer_init(&w9_t[i], w9_cb, 0., 0.);
    ev_idle idle;
    ev_idle_init(&idle, w9_start);
    ev_idle_start(loop, &idle);
    run();
    ev_loop_destroy(loop);
    free(w9_t);
    w9_finish(&W9);
}

/* ---- Memory per pending timer, registered fd, queued callback --------------- */

static void idle_nop(struct ev_loop *l, ev_idle *w, int revents)
{
    UNUSED(l);
    UNUSED(w);
    UNUSED(revents);
}

static void io_nop(struct ev_loop *l, ev_io *w, int revents)
{
    UNUSED(l);
    UNUSED(w);
    UNUSED(revents);
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
        ev_timer *t = items = malloc(n * sizeof *t);
        CHECK_PTR(t);
        for (uint64_t i = 0; i < n; i++) {
            ev_timer_init(&t[i], w3_cb, 100. + (double)(rng_next(&rng) % 1000) / 1e3, 0.);
            ev_timer_start(loop, &t[i]);
        }
    } else if (!strcmp(what, "cb")) {
        ev_idle *w = items = malloc(n * sizeof *w);
        CHECK_PTR(w);
        for (uint64_t i = 0; i < n; i++) {
            ev_idle_init(&w[i], idle_nop);
            ev_idle_start(loop, &w[i]);
        }
    } else {
        ev_io *w = items = malloc(n * sizeof *w);
        CHECK_PTR(w);
        for (uint64_t i = 0; i < n; i++) {
            ev_io_init(&w[i], io_nop, pairs.fds[i], EV_READ);
            ev_io_start(loop, &w[i]);
        }
        ev_run(loop, EVRUN_NOWAIT); /* libev registers fds with the kernel at the next poll */
    }
    uint64_t rss1 = status_bytes("VmRSS");
    result("n=%llu bytes_per_item=%.1f", (unsigned long long)n, (double)(rss1 - rss0) / (double)n);
    ev_loop_destroy(loop);
    free(items);
    if (pairs.fds)
        w5_close(&pairs);
}

int main(int argc, char **argv)
{
    bench_init("libev", argc, argv);
    const char *w = argv[1];
    if (!strcmp(w, "w1"))
        w1();
    else if (!strcmp(w, "w1_feed"))
        w1_feed();
    else if (!strcmp(w, "w2"))
        w2();
    else if (!strcmp(w, "w2_feed"))
        w2_feed();
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
        fprintf(stderr, "bench_libev: unknown or unsupported workload %s\n", w);
        return 2;
    }
    return 0;
}
