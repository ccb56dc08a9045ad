/*
 * The baseline column: each workload written by hand on epoll, with no
 * library.  It is what the workload costs when nothing is general: a ring
 * of (fn, arg), an intrusive binary heap of timers, one epoll set.  The
 * semantics follow libloop's where a workload depends on them (W1a polls
 * every iteration, W1b every 64 callbacks; call_later counts from the call).
 */
#include "common.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

static uint64_t count, target, sum;
static int ep = -1;
static struct epoll_event events[512];

static void init_ep(void)
{
    ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep);
}

/* ---- The ready ring -------------------------------------------------------- */

struct task {
    void (*fn)(void *arg);
    void *arg;
};

static struct {
    struct task *a;
    uint32_t head, len, cap; /* cap: 0 or a power of two */
} rq;

static void rq_push(void (*fn)(void *), void *arg)
{
    if (rq.len == rq.cap) {
        uint32_t cap = rq.cap ? 2 * rq.cap : 64;
        struct task *a = realloc(rq.a, cap * sizeof *a);
        CHECK_PTR(a);
        if (rq.head + rq.len > rq.cap) /* unwrap */
            memcpy(a + rq.cap, a, (rq.head + rq.len - rq.cap) * sizeof *a);
        rq.a = a;
        rq.cap = cap;
    }
    rq.a[(rq.head + rq.len++) & (rq.cap - 1)] = (struct task){fn, arg};
}

/* Run what is queued now; what that queues waits for the next call. */
static void rq_run(void)
{
    for (uint32_t n = rq.len; n; n--) {
        struct task t = rq.a[rq.head];
        rq.head = (rq.head + 1) & (rq.cap - 1);
        rq.len--;
        t.fn(t.arg);
    }
}

/* ---- Timers: an intrusive binary heap -------------------------------------- */

struct btimer {
    uint64_t when;
    uint32_t pos; /* UINT32_MAX: not armed */
    void (*fn)(struct btimer *t);
};

static struct btimer **heap;
static uint32_t nheap, heap_cap;

static void heap_set(uint32_t i, struct btimer *t)
{
    heap[i] = t;
    t->pos = i;
}

static void sift_up(uint32_t i, struct btimer *t)
{
    while (i > 0 && t->when < heap[(i - 1) / 2]->when) {
        heap_set(i, heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, t);
}

static void sift_down(uint32_t i, struct btimer *t)
{
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= nheap)
            break;
        if (c + 1 < nheap && heap[c + 1]->when < heap[c]->when)
            c++;
        if (heap[c]->when >= t->when)
            break;
        heap_set(i, heap[c]);
        i = c;
    }
    heap_set(i, t);
}

static void timer_start(struct btimer *t, uint64_t when)
{
    if (nheap == heap_cap) {
        heap_cap = heap_cap ? 2 * heap_cap : 64;
        heap = realloc(heap, heap_cap * sizeof *heap);
        CHECK_PTR(heap);
    }
    t->when = when;
    sift_up(nheap++, t);
}

static void timer_stop(struct btimer *t)
{
    uint32_t i = t->pos;
    struct btimer *last = heap[--nheap];
    t->pos = UINT32_MAX;
    if (i == nheap)
        return;
    if (i > 0 && last->when < heap[(i - 1) / 2]->when)
        sift_up(i, last);
    else
        sift_down(i, last);
}

/* Move an armed timer to a new deadline. */
static void timer_reset(struct btimer *t, uint64_t when)
{
    uint64_t old = t->when;
    t->when = when;
    if (when < old)
        sift_up(t->pos, t);
    else
        sift_down(t->pos, t);
}

/* Poll (waiting at most timeout_ns; -1 forever) and return the event count.
 * epoll_pwait2 takes nanoseconds; where it is missing (valgrind 3.19),
 * epoll_wait's milliseconds are rounded up. */
static int poll_ns(int64_t timeout_ns)
{
    static bool no_pwait2;
    int n = -1;
    if (timeout_ns >= 0 && !no_pwait2) {
        struct timespec ts = {(time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000)};
        n = epoll_pwait2(ep, events, 512, &ts, NULL);
        no_pwait2 = n < 0 && errno == ENOSYS;
    }
    if (timeout_ns < 0 || no_pwait2)
        n = epoll_wait(ep, events, 512,
                       timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000));
    if (n < 0 && errno != EINTR)
        die("epoll wait: errno %d", errno);
    return n < 0 ? 0 : n;
}

/* Run until no timer and no task is left; fds are not watched. */
static void run_timers(void)
{
    while (nheap || rq.len) {
        int64_t timeout = 0;
        if (!rq.len) {
            uint64_t now = now_ns();
            timeout = heap[0]->when > now ? (int64_t)(heap[0]->when - now) : 0;
        }
        poll_ns(timeout);
        uint64_t now = now_ns();
        while (nheap && heap[0]->when <= now) {
            struct btimer *t = heap[0];
            timer_stop(t);
            t->fn(t);
        }
        rq_run();
    }
}

/* ---- W1: a call_soon chain ------------------------------------------------- */

static void w1_cb(void *arg)
{
    if (++count < target)
        rq_push(w1_cb, arg);
}

static void w1(bool strict)
{
    init_ep();
    target = param("n", 10000000);
    unsigned unpolled = 0;
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    rq_push(w1_cb, NULL);
    while (rq.len) {
        if (strict || unpolled >= 64) {
            poll_ns(0);
            (void)now_ns(); /* the iteration's clock read */
            unpolled = 0;
        }
        unpolled += rq.len;
        rq_run();
    }
    uint64_t t1 = now_ns();
    REGION_END();
    EXPECT_EQ(count, target);
    result("n=%llu ns_per_op=%.2f ops=%llu", (unsigned long long)target,
           (double)(t1 - t0) / (double)target, (unsigned long long)target);
}

/* ---- W2: fan-out ------------------------------------------------------------ */

static void w2_cb(void *arg)
{
    count++;
    sum += (uintptr_t)arg;
}

static void w2(void)
{
    uint64_t n = param("n", 1000000);
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        rq_push(w2_cb, (void *)(uintptr_t)i);
    uint64_t t1 = now_ns();
    rq_run();
    uint64_t t2 = now_ns();
    REGION_END();
    EXPECT_EQ(count, n);
    EXPECT_EQ(sum, n * (n - 1) / 2);
    result("n=%llu ns_per_op=%.2f schedule_ns=%.2f run_ns=%.2f ops=%llu", (unsigned long long)n,
           (double)(t2 - t0) / (double)n, (double)(t1 - t0) / (double)n,
           (double)(t2 - t1) / (double)n, (unsigned long long)n);
}

/* ---- W3: a million one-shot timers ------------------------------------------ */

static void w3_cb(struct btimer *t)
{
    UNUSED(t);
    count++;
}

static void w3(void)
{
    uint64_t n = param("n", 1000000), spread = param("spread_ms", 1000) * 1000000;
    uint64_t rng = 1;
    init_ep();
    uint64_t rss0 = status_bytes("VmRSS");
    struct btimer *t = malloc(n * sizeof *t);
    CHECK_PTR(t);
    bool count_run = param("count_run", 0); /* callgrind: the run phase, not the setup */
    if (!count_run)
        REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        t[i].fn = w3_cb;
        timer_start(&t[i], now_ns() + rng_next(&rng) % (spread + 1));
    }
    uint64_t t1 = now_ns(), c1 = cpu_ns();
    REGION_END(); /* the setup's end, or the run phase's start */
    run_timers();
    uint64_t t2 = now_ns(), c2 = cpu_ns();
    if (count_run)
        REGION_END();
    uint64_t hwm = status_bytes("VmHWM");
    EXPECT_EQ(count, n);
    free(t);
    result("n=%llu setup_ns=%.2f run_cpu_ns=%.2f run_wall_ms=%.1f rss_per_timer=%.1f ops=%llu",
           (unsigned long long)n, (double)(t1 - t0) / (double)n, (double)(c2 - c1) / (double)n,
           (double)(t2 - t1) / 1e6, (double)(hwm - rss0) / (double)n, (unsigned long long)n);
}

/* ---- W4: timer reset churn --------------------------------------------------- */

static void w4_never(struct btimer *t)
{
    UNUSED(t);
    die("a 30 s timer fired");
}

/* One batch of resets per iteration (see common.h), under the time read at
 * the iteration's start, as libuv, libev and libevent do. */
static void w4(void)
{
    w4_init();
    struct btimer *t = xcalloc(W4.timers, sizeof *t);
    init_ep();
    for (uint64_t i = 0; i < W4.timers; i++) {
        t[i].fn = w4_never;
        timer_start(&t[i], now_ns() + 30 * 1000000000ull);
    }
    while (!w4_done()) {
        poll_ns(0);
        uint64_t now = now_ns();
        bool timed;
        uint64_t b = w4_next(&timed);
        if (timed)
            REGION_BEGIN();
        uint64_t t0 = now_ns();
        for (uint64_t r = 0; r < b; r++)
            timer_reset(&t[w4_pick()], now + 30 * 1000000000ull);
        uint64_t t1 = now_ns();
        if (timed)
            REGION_END();
        w4_took(timed, b, t1 - t0);
    }
    for (uint64_t i = 0; i < W4.timers; i++) {
        if (t[i].pos == UINT32_MAX)
            die("timer %llu is not armed", (unsigned long long)i);
        timer_stop(&t[i]);
    }
    EXPECT_EQ(nheap, 0);
    free(t);
    w4_finish();
}

/* ---- W5: ping-pong over socketpairs ------------------------------------------ */

static struct w5 W5;

static void w5(void)
{
    uint64_t n = param("n", 1000), rounds = param("rounds", 100);
    w5_init(&W5, (int)n, (int)param("active", 100), param("writes", n));
    init_ep();
    for (int i = 0; i < W5.n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, W5.fds[2 * i], &ev));
    }
    REGION_BEGIN();
    uint64_t t0 = now_ns();
    for (uint64_t r = 0; r < rounds; r++) {
        w5_kick(&W5);
        bool done = false;
        while (!done) {
            int k = poll_ns(-1);
            for (int i = 0; i < k; i++)
                done |= w5_readable(&W5, (int)events[i].data.u32);
        }
    }
    uint64_t t1 = now_ns();
    REGION_END();
    close(ep);
    w5_finish(&W5, rounds, t1 - t0);
}

/* ---- W6: cross-thread posts --------------------------------------------------- */

static struct postq w6_q;
static int w6_efd;
static bool w6_done;

static void w6_closure(void *arg)
{
    if (w6_ran((uintptr_t)arg))
        w6_done = true;
}

static void *w6_producer(void *arg)
{
    UNUSED(arg);
    w6.t_first = now_ns();
    for (uint64_t i = 0; i < w6.n; i++)
        if (postq_push(&w6_q, w6_closure, (void *)(uintptr_t)i))
            CHECK(eventfd_write(w6_efd, 1));
    w6.t_posted = now_ns();
    return NULL;
}

static void w6_run(void)
{
    w6_init();
    postq_init(&w6_q);
    init_ep();
    w6_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(w6_efd);
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, w6_efd, &ev));
    pthread_t t;
    if (pthread_create(&t, NULL, w6_producer, NULL))
        die("pthread_create");
    while (!w6_done) {
        if (poll_ns(-1)) {
            eventfd_t v;
            CHECK(eventfd_read(w6_efd, &v));
            postq_drain(&w6_q);
        }
    }
    if (pthread_join(t, NULL))
        die("pthread_join");
    postq_free(&w6_q);
    w6_finish();
}

/* ---- W7, W8: echo and HTTP servers -------------------------------------------- */

static struct server_stats st;

static void server(bool http)
{
    init_ep();
    int lfd = listen_any();
    static struct conn listener, in; /* markers in epoll data */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev));
    ev.data.ptr = &in;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev));
    st.cpu0 = cpu_ns();
    for (bool done = false; !done;) {
        int k = poll_ns(-1);
        for (int i = 0; i < k; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == &in) {
                char buf[64];
                done |= read(0, buf, sizeof buf) <= 0;
            } else if (c == &listener) {
                int fd;
                while ((fd = accept_one(lfd)) >= 0) {
                    c = conn_new(fd, sizeof *c, 0);
                    ev.data.ptr = c;
                    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
                    st.accepted++;
                }
            } else if (!serve_readable(c, http, &st)) {
                CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL));
                conn_free(c, 0);
                st.closed++;
            }
        }
    }
    server_report(&st);
    conns_free_all(0);
    close(lfd);
    close(ep);
}

/* ---- W9: timer lateness ------------------------------------------------------- */

static struct w9 W9;
static struct btimer *w9_t;

static void w9_arm(void *ctx, unsigned i, uint64_t delay_ns)
{
    UNUSED(ctx);
    timer_start(&w9_t[i], now_ns() + delay_ns);
}

static void w9_cb(struct btimer *t)
{
    if (w9_fired(&W9, (unsigned)(t - w9_t)))
        w9_round(&W9, w9_arm, NULL);
}

static void w9(void)
{
    w9_init(&W9);
    init_ep();
    w9_t = xcalloc(W9.batch, sizeof *w9_t);
    for (unsigned i = 0; i < W9.batch; i++)
        w9_t[i].fn = w9_cb;
    w9_round(&W9, w9_arm, NULL);
    run_timers();
    free(w9_t);
    w9_finish(&W9);
}

/* ---- Memory per pending timer, registered fd, queued callback ----------------- */

static void mem(const char *what)
{
    init_ep();
    uint64_t n = param("n", 1000000), rng = 1;
    struct w5 pairs = {0};
    if (!strcmp(what, "fd")) {
        n = param("n", 9000);
        w5_init(&pairs, (int)n, 1, 1);
        n *= 2;
    }
    uint64_t rss0 = status_bytes("VmRSS");
    struct btimer *t = NULL;
    if (!strcmp(what, "timer")) {
        t = malloc(n * sizeof *t);
        CHECK_PTR(t);
        for (uint64_t i = 0; i < n; i++) {
            t[i].fn = w3_cb;
            timer_start(&t[i], now_ns() + 100000000000ull + rng_next(&rng) % 1000000000);
        }
    } else if (!strcmp(what, "cb")) {
        for (uint64_t i = 0; i < n; i++)
            rq_push(w2_cb, NULL);
    } else {
        for (uint64_t i = 0; i < n; i++) {
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
            CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, pairs.fds[i], &ev));
        }
    }
    uint64_t rss1 = status_bytes("VmRSS");
    result("n=%llu bytes_per_item=%.1f", (unsigned long long)n, (double)(rss1 - rss0) / (double)n);
    free(t);
    free(heap);
    free(rq.a);
    close(ep);
    if (pairs.fds)
        w5_close(&pairs);
}

int main(int argc, char **argv)
{
    bench_init("epoll", argc, argv);
    const char *w = argv[1];
    if (!strcmp(w, "w1a"))
        w1(true);
    else if (!strcmp(w, "w1b"))
        w1(false);
    else if (!strcmp(w, "w2"))
        w2();
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
        fprintf(stderr, "bench_epoll: unknown or unsupported workload %s\n", w);
        return 2;
    }
    return 0;
}
