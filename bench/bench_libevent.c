/*
 * The libevent column, written as libevent 2.1's documentation recommends.
 *
 * "Run this soon" is event_active() on an event with no fd.  libevent runs
 * an event activated from a callback in the same pass over its active
 * queue, without polling in between (its own deferred callbacks rely on
 * this), so a chain runs at queue speed; the docs call event_base_once()
 * with no timeout "one idiom for scheduling a callback", but it allocates
 * per call, and event_active() on an event the caller holds is the cheaper
 * documented form.  Events live in caller memory through event_assign()
 * (sized by event_get_struct_event_size()), which the docs offer for
 * exactly this: avoiding a heap allocation per event.
 *
 * The same chain and fan-out are also measured with 0-timeout timers
 * (w1_timer, w2_timer), libevent's way to run a callback at the next
 * iteration, after a poll.
 *
 * Timers: evtimer_add(), relative to the loop's cached time; adding an
 * event that is already pending reschedules it (the reset of W4), and
 * W4 is also run on a common timeout (w4_common).  W9 is also run with
 * EVENT_BASE_FLAG_PRECISE_TIMER (w9_precise).  fd readiness is a
 * persistent EV_READ event.  The servers use plain events
 * and read()/write() rather than bufferevents: a bufferevent arms and
 * disarms its write event around every reply (two epoll_ctl calls per
 * message), which would measure its buffering rather than the loop.
 * Cross-thread posts (W6) are a locked queue woken by event_active() from
 * the producer thread, which libevent allows once evthread_use_pthreads()
 * has been called.
 */
#include "common.h"

#include <event2/event.h>
#include <event2/thread.h>

static uint64_t count, target, sum;
static struct event_base *base;

/* A base on epoll; flags are event_config's (EVENT_BASE_FLAG_PRECISE_TIMER). */
static void init_base_with(int flags)
{
    struct event_config *cfg = event_config_new();
    CHECK_PTR(cfg);
    CHECK(event_config_set_flag(cfg, flags));
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    CHECK_PTR(base);
    if (strcmp(event_base_get_method(base), "epoll"))
        die("libevent chose %s, not epoll", event_base_get_method(base));
}

static void init_base(void)
{
    init_base_with(0);
}

static void run(int flags)
{
    CHECK(event_base_loop(base, flags));
}

/* n events in one caller-owned block. */
static struct event *ev_at(void *block, uint64_t i)
{
    return (struct event *)((char *)block + i * event_get_struct_event_size());
}

static void *ev_block(uint64_t n)
{
    void *p = malloc(n * event_get_struct_event_size());
    CHECK_PTR(p);
    return p;
}

static struct timeval tv_ns_up(uint64_t ns)
{
    uint64_t us = (ns + 999) / 1000;
    return (struct timeval){(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
}

/* ---- W1: a call-soon chain ------------------------------------------------ */

static void w1_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    if (++count < target)
        event_active(arg, EV_TIMEOUT, 1);
}

static void w1(void)
{
    init_base();
    target = param("n", 10000000);
    struct event *ev = event_new(base, -1, 0, w1_cb, event_self_cbarg());
    CHECK_PTR(ev);
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    event_active(ev, EV_TIMEOUT, 1);
    run(0);
    uint64_t t1 = now_ns();
    REGION_END();
    EXPECT_EQ(count, target);
    event_free(ev);
    event_base_free(base);
    result("n=%llu ns_per_op=%.2f ops=%llu", (unsigned long long)target,
           (double)(t1 - t0) / (double)target, (unsigned long long)target);
}

/* ---- W2: fan-out ---------------------------------------------------------- */

static void w2_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    count++;
    sum += (uintptr_t)arg;
}

static void w2(void)
{
    uint64_t n = param("n", 1000000);
    void *evs = ev_block(n);
    init_base();
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        CHECK(event_assign(ev_at(evs, i), base, -1, 0, w2_cb, (void *)(uintptr_t)i));
        event_active(ev_at(evs, i), EV_TIMEOUT, 1);
    }
    uint64_t t1 = now_ns();
    run(0);
    uint64_t t2 = now_ns();
    REGION_END();
    EXPECT_EQ(count, n);
    EXPECT_EQ(sum, n * (n - 1) / 2);
    event_base_free(base);
    free(evs);
    result("n=%llu ns_per_op=%.2f schedule_ns=%.2f run_ns=%.2f ops=%llu", (unsigned long long)n,
           (double)(t2 - t0) / (double)n, (double)(t1 - t0) / (double)n,
           (double)(t2 - t1) / (double)n, (unsigned long long)n);
}

/*
 * The same chain and fan-out with 0-timeout timers: libevent's
 * next-iteration primitive.  A timer added from a callback is due at the
 * cached time, and runs after the next poll (a zero-timeout one, since a
 * timer is due).
 */
static void w1_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    static const struct timeval zero = {0, 0};
    if (++count < target)
        CHECK(evtimer_add((struct event *)arg, &zero));
}

static void w1_timer(void)
{
    init_base();
    target = param("n", 10000000);
    struct event *ev = evtimer_new(base, w1_timer_cb, event_self_cbarg());
    CHECK_PTR(ev);
    const struct timeval zero = {0, 0};
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    CHECK(evtimer_add(ev, &zero));
    run(0);
    uint64_t t1 = now_ns();
    REGION_END();
    EXPECT_EQ(count, target);
    event_free(ev);
    event_base_free(base);
    result("n=%llu ns_per_op=%.2f ops=%llu", (unsigned long long)target,
           (double)(t1 - t0) / (double)target, (unsigned long long)target);
}

static void w2_timer(void)
{
    uint64_t n = param("n", 1000000);
    void *evs = ev_block(n);
    init_base();
    const struct timeval zero = {0, 0};
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        CHECK(evtimer_assign(ev_at(evs, i), base, w2_cb, (void *)(uintptr_t)i));
        CHECK(evtimer_add(ev_at(evs, i), &zero));
    }
    uint64_t t1 = now_ns();
    run(0);
    uint64_t t2 = now_ns();
    REGION_END();
    EXPECT_EQ(count, n);
    EXPECT_EQ(sum, n * (n - 1) / 2);
    event_base_free(base);
    free(evs);
    result("n=%llu ns_per_op=%.2f schedule_ns=%.2f run_ns=%.2f ops=%llu", (unsigned long long)n,
           (double)(t2 - t0) / (double)n, (double)(t1 - t0) / (double)n,
           (double)(t2 - t1) / (double)n, (unsigned long long)n);
}

/* ---- W3: a million one-shot timers --------------------------------------- */

static void w3_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    UNUSED(arg);
    count++;
}

static void w3(void)
{
    uint64_t n = param("n", 1000000), spread = param("spread_ms", 1000) * 1000000;
    uint64_t rng = 1;
    init_base();
    uint64_t rss0 = status_bytes("VmRSS");
    void *evs = ev_block(n);
    bool count_run = param("count_run", 0); /* callgrind: the run phase, not the setup */
    if (!count_run)
        REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        struct timeval tv = tv_ns_up(rng_next(&rng) % (spread + 1));
        CHECK(evtimer_assign(ev_at(evs, i), base, w3_cb, NULL));
        CHECK(evtimer_add(ev_at(evs, i), &tv));
    }
    uint64_t t1 = now_ns(), c1 = cpu_ns();
    REGION_END(); /* the setup's end, or the run phase's start */
    run(0);
    uint64_t t2 = now_ns(), c2 = cpu_ns();
    if (count_run)
        REGION_END();
    uint64_t hwm = status_bytes("VmHWM");
    EXPECT_EQ(count, n);
    event_base_free(base);
    free(evs);
    result("n=%llu setup_ns=%.2f run_cpu_ns=%.2f run_wall_ms=%.1f rss_per_timer=%.1f ops=%llu",
           (unsigned long long)n, (double)(t1 - t0) / (double)n, (double)(c2 - c1) / (double)n,
           (double)(t2 - t1) / 1e6, (double)(hwm - rss0) / (double)n, (unsigned long long)n);
}

/* ---- W4: timer reset churn ----------------------------------------------- */

/*
 * Two ways to reset: evtimer_add() with a plain 30 s timeval (the min-heap;
 * re-adding a pending event moves it), or with the timeval that
 * event_base_init_common_timeout() returned for 30 s (w4_common): events
 * added with it go on one list per duration, in deadline order, so a reset
 * is an unlink and an append.  That is libevent's answer to many timers of
 * one duration, which W4 is.
 */
static void *w4_evs;
static const struct timeval *w4_tv;

static void w4_never(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    UNUSED(arg);
    die("a 30 s timer fired");
}

/*
 * One batch per iteration (see common.h); only the timed batches count.
 * The next batch is a zero timeout: an event activated from a callback
 * would run in this same pass, under this iteration's cached time.
 */
static void w4_body(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    const struct timeval zero = {0, 0};
    bool timed;
    uint64_t b = w4_next(&timed);
    if (timed)
        REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < b; r++)
        CHECK(evtimer_add(ev_at(w4_evs, w4_pick()), w4_tv));
    uint64_t t1 = now_ns();
    if (timed)
        REGION_END();
    w4_took(timed, b, t1 - t0);
    if (!w4_done()) {
        CHECK(evtimer_add((struct event *)arg, &zero));
        return;
    }
    for (uint64_t i = 0; i < W4.timers; i++) {
        if (!evtimer_pending(ev_at(w4_evs, i), NULL))
            die("timer %llu is not armed", (unsigned long long)i);
        CHECK(evtimer_del(ev_at(w4_evs, i)));
    }
    count++;
}

static void w4(bool common)
{
    w4_init();
    w4_evs = ev_block(W4.timers);
    init_base();
    static const struct timeval thirty = {30, 0};
    w4_tv = &thirty;
    if (common) {
        w4_tv = event_base_init_common_timeout(base, &thirty);
        CHECK_PTR(w4_tv);
    }
    for (uint64_t i = 0; i < W4.timers; i++) {
        CHECK(evtimer_assign(ev_at(w4_evs, i), base, w4_never, NULL));
        CHECK(evtimer_add(ev_at(w4_evs, i), w4_tv));
    }
    struct event *body = evtimer_new(base, w4_body, event_self_cbarg());
    CHECK_PTR(body);
    event_active(body, EV_TIMEOUT, 1);
    run(0);
    EXPECT_EQ(count, 1);
    event_free(body);
    event_base_free(base);
    free(w4_evs);
    w4_finish();
}

/* ---- W5: ping-pong over socketpairs --------------------------------------- */

static struct w5 W5;

static void w5_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    if (w5_readable(&W5, (int)(intptr_t)arg))
        CHECK(event_base_loopbreak(base));
}

static void w5(void)
{
    uint64_t n = param("n", 1000), rounds = param("rounds", 100);
    w5_init(&W5, (int)n, (int)param("active", 100), param("writes", n));
    init_base();
    void *evs = ev_block(n);
    for (int i = 0; i < W5.n; i++) {
        CHECK(event_assign(ev_at(evs, (uint64_t)i), base, W5.fds[2 * i], EV_READ | EV_PERSIST,
                           w5_cb, (void *)(intptr_t)i));
        CHECK(event_add(ev_at(evs, (uint64_t)i), NULL));
    }
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < rounds; r++) {
        w5_kick(&W5);
        run(0);
    }
    uint64_t t1 = now_ns();
    REGION_END();
    for (int i = 0; i < W5.n; i++)
        CHECK(event_del(ev_at(evs, (uint64_t)i)));
    event_base_free(base);
    free(evs);
    w5_finish(&W5, rounds, t1 - t0);
}

/* ---- W6: cross-thread posts ------------------------------------------------ */

static struct postq w6_q;
static struct event *w6_wake_ev;

static void w6_closure(void *arg)
{
    if (w6_ran((uintptr_t)arg))
        CHECK(event_base_loopbreak(base));
}

static void w6_wake(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    UNUSED(arg);
    postq_drain(&w6_q);
}

static void *w6_producer(void *arg)
{
    UNUSED(arg);
    w6.t_first = now_ns();
    for (uint64_t i = 0; i < w6.n; i++)
        if (postq_push(&w6_q, w6_closure, (void *)(uintptr_t)i))
            event_active(w6_wake_ev, EV_READ, 1);
    w6.t_posted = now_ns();
    return NULL;
}

static void w6_run(void)
{
    CHECK(evthread_use_pthreads());
    w6_init();
    postq_init(&w6_q);
    init_base();
    w6_wake_ev = event_new(base, -1, 0, w6_wake, NULL);
    CHECK_PTR(w6_wake_ev);
    pthread_t t;
    if (pthread_create(&t, NULL, w6_producer, NULL))
        die("pthread_create");
    run(EVLOOP_NO_EXIT_ON_EMPTY);
    if (pthread_join(t, NULL))
        die("pthread_join");
    event_free(w6_wake_ev);
    event_base_free(base);
    postq_free(&w6_q);
    w6_finish();
}

/* ---- W7, W8: echo and HTTP servers ------------------------------------------ */

static struct server_stats st;
static bool http;

struct evconn {
    struct event *ev;
    struct conn c;
};

static void conn_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    struct evconn *e = arg;
    if (serve_readable(&e->c, http, &st))
        return;
    event_free(e->ev); /* deletes it first */
    conn_free(&e->c, offsetof(struct evconn, c));
    st.closed++;
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    UNUSED(what);
    UNUSED(arg);
    int fd;
    while ((fd = accept_one(lfd)) >= 0) {
        struct evconn *e = conn_new(fd, sizeof *e, offsetof(struct evconn, c));
        e->ev = event_new(base, fd, EV_READ | EV_PERSIST, conn_cb, e);
        CHECK_PTR(e->ev);
        CHECK(event_add(e->ev, NULL));
        st.accepted++;
    }
}

/* The driver closes our stdin when the client is done. */
static void stdin_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(what);
    UNUSED(arg);
    char buf[64];
    if (read(fd, buf, sizeof buf) <= 0)
        CHECK(event_base_loopbreak(base));
}

static void server(bool is_http)
{
    http = is_http;
    init_base();
    struct event *lev = event_new(base, listen_any(), EV_READ | EV_PERSIST, accept_cb, NULL);
    struct event *in = event_new(base, 0, EV_READ | EV_PERSIST, stdin_cb, NULL);
    CHECK_PTR(lev);
    CHECK_PTR(in);
    CHECK(event_add(lev, NULL));
    CHECK(event_add(in, NULL));
    st.cpu0 = cpu_ns();
    run(0);
    server_report(&st);
    for (struct conn *c = conns_open.next; c != &conns_open; c = c->next)
        event_free(((struct evconn *)((char *)c - offsetof(struct evconn, c)))->ev);
    conns_free_all(offsetof(struct evconn, c));
    close(event_get_fd(lev));
    event_free(lev);
    event_free(in);
    event_base_free(base);
}

/* ---- W9: timer lateness ---------------------------------------------------- */

static struct w9 W9;
static void *w9_evs;

static void w9_arm(void *ctx, unsigned i, uint64_t delay_ns)
{
    UNUSED(ctx);
    struct timeval tv = tv_ns_up(delay_ns);
    CHECK(evtimer_add(ev_at(w9_evs, i), &tv));
}

static void w9_cb(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    if (w9_fired(&W9, (unsigned)(uintptr_t)arg))
        w9_round(&W9, w9_arm, NULL);
}

static void w9_start(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    UNUSED(arg);
    w9_round(&W9, w9_arm, NULL);
}

/* precise: EVENT_BASE_FLAG_PRECISE_TIMER, which makes the time cache read
 * CLOCK_MONOTONIC instead of CLOCK_MONOTONIC_COARSE and lets the epoll
 * backend sleep on a timerfd, to the microsecond. */
static void w9(bool precise)
{
    w9_init(&W9);
    init_base_with(precise ? EVENT_BASE_FLAG_PRECISE_TIMER : 0);
    w9_evs = ev_block(W9.batch);
    for (unsigned i = 0; i < W9.batch; i++)
        CHECK(evtimer_assign(ev_at(w9_evs, i), base, w9_cb, (void *)(uintptr_t)i));
    struct event *start = event_new(base, -1, 0, w9_start, NULL);
    CHECK_PTR(start);
    event_active(start, EV_TIMEOUT, 1);
    run(0);
    event_free(start);
    event_base_free(base);
    free(w9_evs);
    w9_finish(&W9);
}

/* ---- Memory per pending timer, registered fd, queued callback --------------- */

static void mem(const char *what)
{
    init_base();
    uint64_t n = param("n", 1000000), rng = 1;
    struct w5 pairs = {0};
    if (!strcmp(what, "fd")) {
        n = param("n", 9000);
        w5_init(&pairs, (int)n, 1, 1);
        n *= 2;
    }
    uint64_t rss0 = status_bytes("VmRSS");
    void *evs = ev_block(n);
    for (uint64_t i = 0; i < n; i++) {
        struct event *ev = ev_at(evs, i);
        if (!strcmp(what, "timer")) {
            struct timeval tv = {100, (suseconds_t)(rng_next(&rng) % 1000000)};
            CHECK(evtimer_assign(ev, base, w3_cb, NULL));
            CHECK(evtimer_add(ev, &tv));
        } else if (!strcmp(what, "cb")) {
            CHECK(event_assign(ev, base, -1, 0, w3_cb, NULL));
            event_active(ev, EV_TIMEOUT, 1);
        } else {
            CHECK(event_assign(ev, base, pairs.fds[i], EV_READ | EV_PERSIST, w3_cb, NULL));
            CHECK(event_add(ev, NULL));
        }
    }
    uint64_t rss1 = status_bytes("VmRSS");
    result("n=%llu bytes_per_item=%.1f", (unsigned long long)n, (double)(rss1 - rss0) / (double)n);
    event_base_free(base); /* pending events are dropped, not freed: they are ours */
    free(evs);
    if (pairs.fds)
        w5_close(&pairs);
}

int main(int argc, char **argv)
{
    bench_init("libevent", argc, argv);
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
        w4(false);
    else if (!strcmp(w, "w4_common"))
        w4(true);
    else if (!strcmp(w, "w5"))
        w5();
    else if (!strcmp(w, "w6"))
        w6_run();
    else if (!strcmp(w, "w7"))
        server(false);
    else if (!strcmp(w, "w8"))
        server(true);
    else if (!strcmp(w, "w9"))
        w9(false);
    else if (!strcmp(w, "w9_precise"))
        w9(true);
    else if (!strncmp(w, "mem_", 4))
        mem(w + 4);
    else {
        fprintf(stderr, "bench_libevent: unknown or unsupported workload %s\n", w);
        return 2;
    }
    return 0;
}
