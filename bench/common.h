/*
 * What every benchmark adapter shares: clocks, CPU and memory readings,
 * parameters, result lines, and the workload logic that does not depend on
 * the event library (ping-pong bookkeeping, timer lateness, a closure queue,
 * the echo and HTTP protocol handling).
 *
 * An adapter is one program per library, `bench_<lib> <workload> [k=v ...]`.
 * It prints exactly one machine-readable line on success:
 *
 *     RESULT <workload> <lib> key=value key=value ...
 *
 * and exits 0, or prints "FAIL ..." to stderr and exits 1.  Every adapter
 * checks its counts before printing, so a broken adapter cannot post a
 * number.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef BENCH_HAVE_CALLGRIND
#include <valgrind/callgrind.h>
/*
 * The measured region.  Under `valgrind --tool=callgrind --collect-atstart=no`
 * only the instructions between these two marks are counted; outside
 * valgrind each is a handful of no-op instructions.
 */
#define REGION_BEGIN() CALLGRIND_TOGGLE_COLLECT
#define REGION_END() CALLGRIND_TOGGLE_COLLECT
#else
#define REGION_BEGIN() ((void)0)
#define REGION_END() ((void)0)
#endif

#define UNUSED(x) ((void)(x))

static const char *bench_lib = "?";
static const char *bench_workload = "?";

static inline void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static inline void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s %s: ", bench_workload, bench_lib);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Every call whose failure is a negative number (libloop, libuv: -errno;
 * libevent, libc: -1) goes through CHECK. */
#define CHECK(expr)                                                                                \
    do {                                                                                           \
        long check_rc_ = (long)(expr);                                                             \
        if (check_rc_ < 0)                                                                         \
            die("%s:%d: %s returned %ld (errno %d)", __FILE__, __LINE__, #expr, check_rc_, errno); \
    } while (0)

#define CHECK_PTR(expr)                                                                            \
    do {                                                                                           \
        if (!(expr))                                                                               \
            die("%s:%d: %s returned NULL", __FILE__, __LINE__, #expr);                             \
    } while (0)

/* A count that must come out exactly as planned. */
#define EXPECT_EQ(got, want)                                                                       \
    do {                                                                                           \
        unsigned long long g_ = (unsigned long long)(got), w_ = (unsigned long long)(want);        \
        if (g_ != w_)                                                                              \
            die("%s:%d: %s is %llu, expected %llu", __FILE__, __LINE__, #got, g_, w_);             \
    } while (0)

static inline void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- Clocks and resources ------------------------------------------------ */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of this process, user + system. */
static inline uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

/* A field of /proc/self/status in bytes ("VmRSS", "VmHWM"). */
static inline uint64_t status_bytes(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        die("cannot open /proc/self/status");
    char line[256];
    size_t len = strlen(field);
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, field, len) && line[len] == ':') {
            kb = strtoull(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

/* W5 needs 2 x 9,000 socket ends: lift the soft fd limit to the hard one. */
static inline void raise_fd_limit(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl));
    rl.rlim_cur = rl.rlim_max;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl));
}

/* xorshift64*: the same pseudo-random sequence in every adapter. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---- Parameters and results ---------------------------------------------- */

static int bench_argc;
static char **bench_argv;

/* The value of key=value among the arguments, or dflt. */
static inline uint64_t param(const char *key, uint64_t dflt)
{
    size_t len = strlen(key);
    for (int i = 1; i < bench_argc; i++)
        if (!strncmp(bench_argv[i], key, len) && bench_argv[i][len] == '=')
            return strtoull(bench_argv[i] + len + 1, NULL, 10);
    return dflt;
}

static inline void bench_init(const char *lib, int argc, char **argv)
{
    bench_lib = lib;
    bench_argc = argc;
    bench_argv = argv;
    if (argc < 2) {
        fprintf(stderr, "usage: %s <workload> [key=value ...]\n", argv[0]);
        exit(2);
    }
    bench_workload = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline void result(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void result(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("RESULT %s %s ", bench_workload, bench_lib);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
}

/* ---- W4: timer reset churn ---------------------------------------------- */

/*
 * `timers` armed 30 s timers and `n` resets of a pseudo-random one (the same
 * sequence in every adapter), `batch` resets per loop iteration, as a server
 * resets the idle timers of the connections that were readable: the loop's
 * time moves between batches.
 *
 * The first `warmup` resets (one per timer by default) are not timed: they
 * bring every column to its steady state first (the heap reordered by
 * resets instead of by arming, lazily allocated side arrays grown, caches
 * warm).  Each timed batch is timed on its own, and the figure is the
 * median batch, in ns per reset, with the mean beside it.  On a shared
 * machine a batch that a preemption lands in takes milliseconds instead of
 * microseconds; a handful of those moves a mean by tens of percent, run to
 * run, and not the median.  Under callgrind only the timed batches count.
 */
struct w4 {
    uint64_t timers, batch, resets, warm_left, timed_left, rng;
    float *per_reset; /* ns per reset, one per timed batch */
    uint64_t nbatches, timed, elapsed;
};

static struct w4 W4;

static inline void w4_init(void)
{
    W4.timers = param("timers", 100000);
    W4.resets = W4.timed_left = param("n", 10000000);
    W4.batch = param("batch", 100);
    W4.warm_left = param("warmup", W4.timers);
    W4.rng = 7;
    if (!W4.timers || !W4.batch)
        die("w4: timers and batch must be positive");
    W4.per_reset = xcalloc(W4.resets / W4.batch + 1, sizeof(float));
}

/* The index of the timer to reset next. */
static inline uint64_t w4_pick(void)
{
    return rng_next(&W4.rng) % W4.timers;
}

/* The size of the next batch (0: all done), and whether it is timed. */
static inline uint64_t w4_next(bool *timed)
{
    uint64_t *left = W4.warm_left ? &W4.warm_left : &W4.timed_left;
    uint64_t b = *left < W4.batch ? *left : W4.batch;
    *left -= b;
    *timed = left == &W4.timed_left;
    return b;
}

static inline bool w4_done(void)
{
    return !W4.warm_left && !W4.timed_left;
}

/* A batch of b resets took ns. */
static inline void w4_took(bool timed, uint64_t b, uint64_t ns)
{
    if (!timed || !b)
        return;
    W4.per_reset[W4.nbatches++] = (float)ns / (float)b;
    W4.timed += b;
    W4.elapsed += ns;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static inline void w4_finish(void)
{
    EXPECT_EQ(W4.timed, W4.resets);
    EXPECT_EQ(W4.warm_left + W4.timed_left, 0);
    qsort(W4.per_reset, W4.nbatches, sizeof(float), cmp_float);
    double median = W4.nbatches ? W4.per_reset[W4.nbatches / 2] : 0;
    double p90 = W4.nbatches ? W4.per_reset[W4.nbatches * 9 / 10] : 0;
    result("timers=%llu n=%llu warmup=%llu ns_per_op=%.2f mean_ns=%.2f p90_ns=%.2f ops=%llu",
           (unsigned long long)W4.timers, (unsigned long long)W4.resets,
           (unsigned long long)param("warmup", W4.timers), median,
           (double)W4.elapsed / (double)W4.resets, p90, (unsigned long long)W4.resets);
    free(W4.per_reset);
}

/* ---- W5: ping-pong over socketpairs (libevent's test/bench.c) ------------ */

/*
 * n socketpairs; a byte read from pair i is written on to pair i+1 while
 * writes remain.  A round starts `active` chains spread evenly over the
 * pairs and ends when `per_round` bytes were written and as many read.
 */
struct w5 {
    int n, active;
    int *fds; /* pair i: fds[2i] is watched for reading, fds[2i+1] written */
    uint64_t per_round, writes_left, fired, count, total;
};

static inline void w5_init(struct w5 *w, int n, int active, uint64_t per_round)
{
    raise_fd_limit();
    memset(w, 0, sizeof *w);
    w->n = n;
    w->active = active;
    w->per_round = per_round;
    w->fds = xcalloc(2 * (size_t)n, sizeof(int));
    for (int i = 0; i < n; i++)
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, &w->fds[2 * i]));
}

static inline void w5_kick(struct w5 *w)
{
    int space = w->n / w->active;
    w->writes_left = w->per_round;
    w->fired = w->count = 0;
    for (int i = 0; i < w->active; i++) {
        CHECK(write(w->fds[2 * (i * space) + 1], "e", 1));
        w->writes_left--;
        w->fired++;
    }
}

/* The read handler's work for pair i; true when the round is over. */
static inline bool w5_readable(struct w5 *w, int i)
{
    char ch;
    ssize_t r = read(w->fds[2 * i], &ch, 1);
    if (r != 1)
        die("w5: read on pair %d returned %zd (errno %d)", i, r, errno);
    w->count++;
    w->total++;
    if (w->writes_left) {
        int next = i + 1 == w->n ? 0 : i + 1;
        CHECK(write(w->fds[2 * next + 1], "e", 1));
        w->writes_left--;
        w->fired++;
    }
    return !w->writes_left && w->count == w->fired;
}

static inline void w5_close(struct w5 *w)
{
    for (int i = 0; i < 2 * w->n; i++)
        close(w->fds[i]);
    free(w->fds);
    w->fds = NULL;
}

static inline void w5_finish(struct w5 *w, uint64_t rounds, uint64_t elapsed_ns)
{
    EXPECT_EQ(w->total, rounds * w->per_round);
    for (int i = 0; i < w->n; i++) { /* every byte was consumed */
        char ch;
        if (read(w->fds[2 * i], &ch, 1) != -1 || errno != EAGAIN)
            die("w5: pair %d still holds data", i);
    }
    result("n=%d active=%d rounds=%llu events=%llu us_per_round=%.2f ns_per_event=%.2f ops=%llu",
           w->n, w->active, (unsigned long long)rounds, (unsigned long long)w->total,
           elapsed_ns / 1e3 / (double)rounds, (double)elapsed_ns / (double)w->total,
           (unsigned long long)w->total);
    w5_close(w);
}

/* ---- W9: timer lateness ------------------------------------------------- */

/*
 * rounds x batch timers, each of a pseudo-random delay in [min_ns, max_ns];
 * a round starts from the callback of the previous round's last timer.
 * Lateness is measured against the moment of the call that armed it.
 */
struct w9 {
    uint64_t rng;
    unsigned batch, rounds, round, pending;
    uint64_t min_ns, max_ns;
    uint64_t *due; /* per timer of the current round */
    int64_t *late; /* per timer fired, ns */
    uint64_t nlate;
};

static inline void w9_init(struct w9 *w)
{
    memset(w, 0, sizeof *w);
    w->rng = 0x9E3779B97F4A7C15ull;
    w->batch = (unsigned)param("batch", 50);
    w->rounds = (unsigned)param("rounds", 200);
    w->min_ns = param("min_us", 100) * 1000;
    w->max_ns = param("max_us", 20000) * 1000;
    w->due = xcalloc(w->batch, sizeof(uint64_t));
    w->late = xcalloc((size_t)w->batch * w->rounds, sizeof(int64_t));
}

/* Start the next round: arm(ctx, i, delay) for each timer of the batch.
 * Returns false when every round has run. */
static inline bool w9_round(struct w9 *w, void (*arm)(void *ctx, unsigned i, uint64_t delay_ns),
                            void *ctx)
{
    if (w->round == w->rounds)
        return false;
    w->round++;
    w->pending = w->batch;
    for (unsigned i = 0; i < w->batch; i++) {
        uint64_t d = w->min_ns + rng_next(&w->rng) % (w->max_ns - w->min_ns + 1);
        w->due[i] = now_ns() + d;
        arm(ctx, i, d);
    }
    return true;
}

/* Timer i fired.  Returns true when it was the last of its round. */
static inline bool w9_fired(struct w9 *w, unsigned i)
{
    uint64_t t = now_ns();
    w->late[w->nlate++] = (int64_t)(t - w->due[i]);
    return --w->pending == 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static inline void w9_finish(struct w9 *w)
{
    EXPECT_EQ(w->nlate, (uint64_t)w->batch * w->rounds);
    uint64_t early = 0;
    for (uint64_t i = 0; i < w->nlate; i++)
        early += w->late[i] < 0;
    qsort(w->late, w->nlate, sizeof(int64_t), cmp_i64);
    double p50 = (double)w->late[w->nlate / 2] / 1e3;
    double p99 = (double)w->late[w->nlate * 99 / 100] / 1e3;
    double max = (double)w->late[w->nlate - 1] / 1e3;
    result("timers=%llu p50_us=%.1f p99_us=%.1f max_us=%.1f min_us=%.1f early=%llu",
           (unsigned long long)w->nlate, p50, p99, max, (double)w->late[0] / 1e3,
           (unsigned long long)early);
    free(w->due);
    free(w->late);
}

/* ---- W6: a closure queue for the peers that only have a wake-up ---------- */

/*
 * libuv (uv_async_t), libev (ev_async) and libevent (event_active from
 * another thread) wake a loop but coalesce wake-ups and carry no payload.
 * Their documented way to post work is a mutex-protected queue drained by
 * the wake-up callback; the wake-up is sent only when the queue goes from
 * empty to non-empty, which is also what libloop does internally.
 */
struct closure {
    void (*fn)(void *arg);
    void *arg;
};

struct postq {
    pthread_mutex_t mu;
    struct closure *items, *spare;
    size_t len, cap, spare_cap;
};

static inline void postq_init(struct postq *q)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
}

/* Queue fn(arg); returns true if the consumer must be woken. */
static inline bool postq_push(struct postq *q, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&q->mu);
    if (q->len == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 256;
        struct closure *p = realloc(q->items, cap * sizeof *p);
        if (!p)
            die("out of memory");
        q->items = p;
        q->cap = cap;
    }
    q->items[q->len++] = (struct closure){fn, arg};
    bool wake = q->len == 1;
    pthread_mutex_unlock(&q->mu);
    return wake;
}

/* Run everything queued so far (on the loop thread). */
static inline void postq_drain(struct postq *q)
{
    pthread_mutex_lock(&q->mu);
    struct closure *items = q->items;
    size_t len = q->len, cap = q->cap;
    q->items = q->spare;
    q->cap = q->spare_cap;
    q->len = 0;
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < len; i++)
        items[i].fn(items[i].arg);
    q->spare = items; /* only the loop thread touches spare */
    q->spare_cap = cap;
}

static inline void postq_free(struct postq *q)
{
    free(q->items);
    free(q->spare);
    pthread_mutex_destroy(&q->mu);
}

/* W6's bookkeeping, shared by every adapter: closure i carries i as its
 * argument, and must run exactly once. */
struct w6 {
    uint64_t n, ran;
    uint8_t *seen;
    uint64_t t_first, t_posted, t_last; /* first post, after the last post, last run */
};

static struct w6 w6;

static inline void w6_init(void)
{
    w6.n = param("n", 1000000);
    w6.seen = xcalloc(w6.n, 1);
}

/* Closure i ran; true for the last one. */
static inline bool w6_ran(uintptr_t i)
{
    if (i >= w6.n || w6.seen[i])
        die("w6: closure %lu ran twice or was never posted", (unsigned long)i);
    w6.seen[i] = 1;
    if (++w6.ran < w6.n)
        return false;
    w6.t_last = now_ns();
    return true;
}

static inline void w6_finish(void)
{
    EXPECT_EQ(w6.ran, w6.n);
    result("n=%llu ns_per_op=%.2f post_ns=%.2f ops=%llu", (unsigned long long)w6.n,
           (double)(w6.t_last - w6.t_first) / (double)w6.n,
           (double)(w6.t_posted - w6.t_first) / (double)w6.n, (unsigned long long)w6.n);
    free(w6.seen);
}

/* ---- W7 and W8: protocol handling on a plain non-blocking fd -------------- */

#define ECHO_BUF 4096
#define HTTP_BUF 4096

static const char http_response[] = "HTTP/1.1 200 OK\r\n"
                                    "Content-Type: text/plain\r\n"
                                    "Content-Length: 13\r\n"
                                    "\r\n"
                                    "Hello, world!";
#define HTTP_RESPONSE_LEN (sizeof http_response - 1)

/* Counters every server reports. */
struct server_stats {
    uint64_t accepted, closed, bytes, requests;
    uint64_t cpu0;
};

/* Write all of buf to a non-blocking socket.  The workloads keep at most
 * a few hundred bytes in flight per connection, so a full send buffer
 * means the adapter is broken. */
static inline void write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            die("write on fd %d: errno %d", fd, errno);
        buf += w;
        len -= (size_t)w;
    }
}

/*
 * Count complete requests in a connection's buffer (of *len bytes, the
 * newest `added` of them just read), keep an unfinished tail, and return
 * how many responses to send.  Requests are GETs without bodies, so one
 * ends at each blank line.
 */
static inline size_t http_requests(char *buf, size_t *len, size_t added)
{
    size_t n = 0, start = 0;
    size_t from = *len - added >= 3 ? *len - added - 3 : 0;
    for (;;) {
        const char *end = memmem(buf + from, *len - from, "\r\n\r\n", 4);
        if (!end)
            break;
        n++;
        start = (size_t)(end - buf) + 4;
        from = start;
    }
    if (start) {
        memmove(buf, buf + start, *len - start);
        *len -= start;
    }
    if (*len == HTTP_BUF)
        die("http: request larger than %d bytes", HTTP_BUF);
    return n;
}

/* The HTTP server's reply to n requests, in one write. */
static inline void http_reply(int fd, size_t n, struct server_stats *st)
{
    char out[16 * HTTP_RESPONSE_LEN];
    while (n) {
        size_t k = n < 16 ? n : 16;
        for (size_t i = 0; i < k; i++)
            memcpy(out + i * HTTP_RESPONSE_LEN, http_response, HTTP_RESPONSE_LEN);
        write_all(fd, out, k * HTTP_RESPONSE_LEN);
        st->requests += k;
        n -= k;
    }
}

/* A connection of the servers that read and write the fd themselves. */
struct conn {
    int fd;
    size_t len;               /* bytes of an unfinished request in buf (HTTP) */
    struct conn *prev, *next; /* open connections, freed when the server stops */
    char buf[HTTP_BUF];
};

static struct conn conns_open = {.prev = &conns_open, .next = &conns_open};

/* A zeroed connection on fd, on the open list; size >= sizeof(struct conn)
 * leaves room for a library's watcher in front (see conn_of). */
static inline void *conn_new(int fd, size_t size, size_t offset)
{
    char *p = xcalloc(1, size);
    struct conn *c = (struct conn *)(p + offset);
    c->fd = fd;
    c->next = &conns_open;
    c->prev = conns_open.prev;
    c->prev->next = c;
    conns_open.prev = c;
    return p;
}

static inline void conn_free(struct conn *c, size_t offset)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    close(c->fd);
    free((char *)c - offset);
}

/* When the server stops: close what the clients left open. */
static inline void conns_free_all(size_t offset)
{
    while (conns_open.next != &conns_open)
        conn_free(conns_open.next, offset);
}

/*
 * Serve what is readable on c->fd: echo it back (W7) or answer every
 * complete HTTP request (W8).  One read per readiness, as a level-triggered
 * server does.  Returns false once the peer has closed: the caller stops
 * watching the fd and closes it.
 */
static inline bool serve_readable(struct conn *c, bool http, struct server_stats *st)
{
    char *dst = http ? c->buf + c->len : c->buf;
    size_t room = http ? HTTP_BUF - c->len : HTTP_BUF;
    ssize_t r = read(c->fd, dst, room);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (r < 0 && errno != ECONNRESET)
        die("read on fd %d: errno %d", c->fd, errno);
    if (r <= 0)
        return false;
    st->bytes += (uint64_t)r;
    if (!http) {
        write_all(c->fd, c->buf, (size_t)r);
        return true;
    }
    c->len += (size_t)r;
    http_reply(c->fd, http_requests(c->buf, &c->len, (size_t)r), st);
    return true;
}

/* A listening socket on 127.0.0.1, port 0; prints "PORT <n>" for the driver. */
static inline int listen_any(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd);
    int one = 1;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a));
    CHECK(listen(fd, 1024));
    socklen_t alen = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &alen));
    printf("PORT %d\n", ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

/* Accept one pending connection (non-blocking, no Nagle); -1 when none. */
static inline int accept_one(int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
            return -1;
        die("accept4: errno %d", errno);
    }
    int one = 1;
    CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    return fd;
}

static inline void server_report(const struct server_stats *st)
{
    result("accepted=%llu closed=%llu bytes=%llu requests=%llu cpu_ns=%llu",
           (unsigned long long)st->accepted, (unsigned long long)st->closed,
           (unsigned long long)st->bytes, (unsigned long long)st->requests,
           (unsigned long long)(cpu_ns() - st->cpu0));
}

#endif /* BENCH_COMMON_H */
