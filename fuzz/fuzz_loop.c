/*
 * Fuzz target: the bytes of an input are decoded into a sequence of
 * operations on one loop (virtual clock): call_soon/later/at/every, cancel,
 * reschedule, stop, advance, run_once, run, threadsafe posts, a signal, and fd
 * operations on socketpairs: add and remove readers and writers, close
 * (properly, and improperly while still watched), dup, dup2 over a watched
 * number, reuse of fd numbers, writes, drains, shutdowns and full buffers
 * from either end, plus allocation failures.  Callbacks consume bytes of
 * the input too, to decide what they do from inside the loop.
 *
 * After every operation, and inside every callback, loop__verify() must
 * hold.  A shadow of the registrations and of the scheduled callbacks checks
 * what can be checked exactly:
 *  - no callback runs before its deadline by loop_now(), or after it was
 *    cancelled, and a one-shot runs at most once;
 *  - loop_cancel, loop_add_*, loop_remove_* return what the shadow predicts
 *    (or -ENOMEM while allocations fail, and then change nothing);
 *  - an fd handler only runs for its current registration, with events
 *    that concern its direction, never for a removed or replaced one;
 *  - within one loop_run_once, callbacks run in the order: ready before the
 *    iteration, then I/O (and threadsafe posts), then timers; none
 *    scheduled or registered during that iteration runs in it;
 *  - loop_run, loop_run_once and loop_free are -EBUSY from a callback.
 * A failed check prints what broke and aborts.  After a watched fd was
 * closed behind the loop's back (see `misused`), three things are
 * tolerated; nothing else is.
 *
 * Built two ways: with clang -fsanitize=fuzzer (scripts/fuzz.sh) and, for
 * ctest, with fuzz/replay.c, which feeds it every file of the corpus.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXTOK 256 /* scheduled callbacks per input */
#define MAXREG 512 /* fd registrations per input */
#define MAXENT 24  /* fd entries (ends of socketpairs and their dups) */
#define MAXFDNUM 4096
#define MAXSTEPS 600 /* operations per input */
#define BUDGET 16    /* callbacks may schedule this many per operation */
#define FUZZ_SIGNAL SIGWINCH

/* ---- input ---------------------------------------------------------------- */

static const uint8_t *in_p;
static size_t in_n;

static unsigned take(void)
{
    if (!in_n)
        return 0;
    in_n--;
    return *in_p++;
}

static unsigned take16(void)
{
    unsigned lo = take();
    return lo | take() << 8;
}

/* ---- checks ---------------------------------------------------------------- */

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_loop: check failed: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static loop_t *L;
static int trace = -1; /* FUZZ_TRACE=1: print every operation */

#define TRACE(...)                                                                                 \
    do {                                                                                           \
        if (trace > 0)                                                                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
    } while (0)

/*
 * Set once a watched fd was closed behind the loop's back (which the API
 * forbids): the kernel then no longer holds what the fd table says, and
 * only that one rule of loop__verify() cannot hold.
 */
static bool misused;

static void verify(const char *where)
{
    const char *why;
    if (!loop__verify(L, &why))
        return;
    if (!misused || strcmp(why, "fds: change not queued") != 0)
        fail("loop__verify %s: %s", where, why);
    TRACE("  tolerated after misuse: loop__verify %s: %s\n", where, why);
}

/* ---- allocation failures ------------------------------------------------- */

static unsigned fail_allocs; /* the next n growing allocations fail */

static void *fuzz_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    if (fail_allocs) {
        fail_allocs--;
        return NULL;
    }
    return realloc(ptr, size);
}

/* ---- shadow state ------------------------------------------------------------ */

enum { K_SOON, K_TIMER, K_EVERY, K_POST, K_SIGNAL };

struct tok {
    int kind;
    bool pending;  /* may still run */
    bool handle;   /* cancellable through h */
    uint64_t when; /* earliest time it may run (timers) */
    uint64_t period;
    bool moved;     /* a repeating timer was rescheduled: `when` stays a lower bound */
    int created_in; /* the run_once serial it was made in, or -1 */
    loop_handle h;
    int runs;
};

struct reg {
    int fd;
    unsigned dir;
    int created_in;
};

struct ent {
    int fd;   /* -1: closed */
    int peer; /* entry index of the other end of the socketpair */
};

static struct tok toks[MAXTOK];
static int ntoks;
static struct reg regs[MAXREG];
static int nregs;
static int cur_reg[MAXFDNUM][2]; /* registration id watching fd, by direction; 0: none */
static struct ent ents[MAXENT];
static int nents;
static int budget;
static bool sig_added;

/* The current loop_run_once, for ordering checks. */
static int run_serial;
static bool in_once;
static int last_class;

static unsigned dir_index(unsigned dir)
{
    return dir == LOOP_READABLE ? 0 : 1;
}

static int new_tok(int kind, bool inside)
{
    if (ntoks >= MAXTOK || (inside && budget <= 0))
        return -1;
    if (inside)
        budget--;
    int t = ntoks++;
    toks[t] = (struct tok){.kind = kind, .pending = true, .created_in = in_once ? run_serial : -1};
    return t;
}

/* Ordering inside one iteration: 0 ready before it, 1 I/O, 2 timers. */
static void check_order(int cls, int created_in, const char *what)
{
    if (!in_once || cls < 0)
        return;
    if (created_in == run_serial)
        fail("%s made during an iteration ran in that same iteration", what);
    if (cls < last_class)
        fail("%s (phase %d) ran after a callback of phase %d in one iteration", what, cls,
             last_class);
    last_class = cls;
}

/* ---- operations shared by the driver and the callbacks -------------------- */

static void on_tok(loop_t *loop, void *arg);
static void on_io(loop_t *loop, int fd, unsigned events, void *arg);

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

static uint64_t rand_delay(void)
{
    unsigned b = take();
    switch (b & 7) {
    case 0:
        return 0;
    case 1:
        return (uint64_t)take16() * 1000 + take();
    case 2:
        return UINT64_MAX - take();
    default:
        return (uint64_t)(b >> 3) * 1000;
    }
}

static void expect_rc(int rc, int expected, const char *what)
{
    if (rc != expected)
        fail("%s returned %d, expected %d", what, rc, expected);
}

static void op_schedule(unsigned which, bool inside)
{
    int kind = which == 0 ? K_SOON : which == 3 ? K_EVERY : which == 4 ? K_POST : K_TIMER;
    int t = new_tok(kind, inside);
    if (t < 0)
        return;
    struct tok *k = &toks[t];
    k->handle = (take() & 3) != 0 && kind != K_POST;
    loop_handle *out = k->handle ? &k->h : NULL;
    void *arg = (void *)(intptr_t)t;
    int rc;
    uint64_t now = loop_now(L);
    switch (which) {
    case 0:
        rc = loop_call_soon(L, on_tok, arg, out);
        break;
    case 1: {
        uint64_t d = rand_delay();
        k->when = sat_add(now, d);
        rc = loop_call_later(L, d, on_tok, arg, out);
        break;
    }
    case 2: {
        unsigned b = take();
        if (b < 32)
            k->when = now >= b * 1000u ? now - b * 1000u : 0; /* in the past */
        else if (b < 250)
            k->when = sat_add(now, rand_delay());
        else
            k->when = UINT64_MAX;
        rc = loop_call_at(L, k->when, on_tok, arg, out);
        break;
    }
    case 3:
        k->period = (uint64_t)(1 + take()) * 500;
        k->when = sat_add(now, k->period);
        rc = loop_call_every(L, k->period, on_tok, arg, out);
        break;
    default:
        rc = loop_call_soon_threadsafe(L, on_tok, arg);
        break;
    }
    if (rc == -ENOMEM) {
        k->pending = false;
        if (out && out->id)
            fail("a failed schedule left a handle");
        return;
    }
    expect_rc(rc, 0, "schedule");
}

static void op_cancel(void)
{
    if (!ntoks)
        return;
    int t = (int)(take() % (unsigned)ntoks);
    struct tok *k = &toks[t];
    int rc = loop_cancel(L, k->handle ? k->h : (loop_handle){0});
    expect_rc(rc, k->handle && k->pending ? 0 : -ENOENT, "loop_cancel");
    if (k->handle)
        k->pending = false;
}

/* Move a callback; a one-shot (call_soon'd or timed) becomes a timer. */
static void op_reschedule(void)
{
    if (!ntoks)
        return;
    struct tok *k = &toks[take() % (unsigned)ntoks];
    bool relative = take() & 1;
    uint64_t now = loop_now(L), arg, when;
    if (relative) {
        arg = rand_delay();
        when = sat_add(now, arg);
    } else {
        unsigned b = take();
        when = arg =
            b < 40 ? now - (now < b * 1000u ? now : b * 1000u) : sat_add(now, rand_delay());
    }
    loop_handle h = k->handle ? k->h : (loop_handle){0};
    int rc = relative ? loop_reschedule(L, h, arg) : loop_reschedule_at(L, h, when);
    bool live = k->handle && k->pending;
    TRACE("  reschedule #%d to %llu: %d\n", (int)(k - toks), (unsigned long long)when, rc);
    if (rc == -ENOMEM && live)
        return; /* left as it was */
    expect_rc(rc, live ? 0 : -ENOENT, "loop_reschedule");
    if (!live)
        return;
    if (k->kind == K_EVERY) {
        k->when = when < k->when ? when : k->when;
        k->moved = true;
    } else {
        k->kind = K_TIMER;
        k->when = when;
        k->created_in = in_once ? run_serial : -1;
    }
}

static struct ent *pick_ent(void)
{
    if (!nents)
        return NULL;
    return &ents[take() % (unsigned)nents];
}

static void op_add(unsigned dir, bool inside)
{
    struct ent *e = pick_ent();
    if (!e || e->fd < 0 || nregs >= MAXREG || (inside && budget <= 0))
        return;
    if (inside)
        budget--;
    int id = ++nregs; /* ids from 1 */
    regs[id - 1] = (struct reg){e->fd, dir, in_once ? run_serial : -1};
    void *arg = (void *)(intptr_t)id;
    int rc = dir == LOOP_READABLE ? loop_add_reader(L, e->fd, on_io, arg)
                                  : loop_add_writer(L, e->fd, on_io, arg);
    TRACE("  add %s fd %d as registration %d: %d\n", dir == LOOP_READABLE ? "reader" : "writer",
          e->fd, id, rc);
    if (rc == -ENOMEM)
        return;
    /* After misuse the kernel may still hold an item for this (file, number)
     * pair from a registration the loop has forgotten: epoll says EEXIST. */
    if (rc == -EEXIST && misused) {
        TRACE("  tolerated after misuse: -EEXIST\n");
        return;
    }
    expect_rc(rc, 0, "loop_add_*");
    cur_reg[e->fd][dir_index(dir)] = id;
}

static void op_remove_fd(int fd, unsigned dir)
{
    if (fd < 0 || fd >= MAXFDNUM)
        return;
    int rc = dir == LOOP_READABLE ? loop_remove_reader(L, fd) : loop_remove_writer(L, fd);
    TRACE("  remove %s fd %d: %d\n", dir == LOOP_READABLE ? "reader" : "writer", fd, rc);
    expect_rc(rc, cur_reg[fd][dir_index(dir)] ? 0 : -ENOENT, "loop_remove_*");
    cur_reg[fd][dir_index(dir)] = 0;
}

static void op_remove(unsigned dir)
{
    struct ent *e = pick_ent();
    if (e && e->fd >= 0)
        op_remove_fd(e->fd, dir);
}

/* Close an entry; `proper`: remove its handlers first, as the API asks. */
static void close_ent(struct ent *e, bool proper)
{
    if (!e || e->fd < 0)
        return;
    if (proper) {
        op_remove_fd(e->fd, LOOP_READABLE);
        op_remove_fd(e->fd, LOOP_WRITABLE);
    }
    TRACE("  close fd %d%s\n", e->fd, proper ? "" : " (still watched)");
    if (!proper && (cur_reg[e->fd][0] || cur_reg[e->fd][1]))
        misused = true;
    close(e->fd);
    e->fd = -1;
}

static int add_ent(int fd, int peer)
{
    if (fd < 0)
        return -1;
    if (fd >= MAXFDNUM || nents >= MAXENT) {
        close(fd);
        return -1;
    }
    /* The number may be one closed while still watched: its registration
     * lingers in the loop, as the API says it does. */
    ents[nents] = (struct ent){fd, peer};
    return nents++;
}

static void op_socketpair(void)
{
    int sv[2];
    if (nents + 2 > MAXENT)
        return;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
        return;
    int a = nents, b = nents + 1;
    TRACE("  socketpair %d %d\n", sv[0], sv[1]);
    add_ent(sv[0], b);
    add_ent(sv[1], a);
}

static void op_dup(void)
{
    struct ent *e = pick_ent();
    if (!e || e->fd < 0 || nents >= MAXENT)
        return;
    int fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
    TRACE("  dup fd %d as %d\n", e->fd, fd);
    add_ent(fd, e->peer);
}

/* dup2 over a (maybe watched) number: the old file there is closed
 * without the loop knowing.  Misuse, but the loop must survive it. */
static void op_dup2(void)
{
    struct ent *a = pick_ent(), *b = pick_ent();
    if (!a || !b || a == b || a->fd < 0 || b->fd < 0)
        return;
    TRACE("  dup2 fd %d over %d\n", a->fd, b->fd);
    if (cur_reg[b->fd][0] || cur_reg[b->fd][1])
        misused = true;
    if (dup3(a->fd, b->fd, O_CLOEXEC) >= 0)
        b->peer = a->peer;
}

static void op_write(void)
{
    struct ent *e = pick_ent();
    if (!e || e->fd < 0)
        return;
    char buf[512];
    size_t n = 1 + take() % sizeof(buf);
    memset(buf, 'x', n);
    ssize_t w = send(e->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
}

static void drain_fd(int fd)
{
    char buf[4096];
    for (int i = 0; i < 64; i++)
        if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
            break;
}

static void op_flood(void)
{
    struct ent *e = pick_ent();
    if (!e || e->fd < 0)
        return;
    static char buf[65536];
    for (int i = 0; i < 16; i++)
        if (send(e->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL) <= 0)
            break;
}

/* Calls on numbers that are not pollable or not open. */
static void op_bad_fd(void)
{
    int rc;
    switch (take() % 5) {
    case 0:
        rc = loop_add_reader(L, -1 - (int)take(), on_io, NULL);
        expect_rc(rc, -EBADF, "add_reader(negative)");
        break;
    case 1:
        rc = loop_add_writer(L, loop_fd(L), on_io, NULL);
        expect_rc(rc, -EINVAL, "add_writer(loop_fd)");
        break;
    case 2: {
        int fd = memfd_create("fuzz", MFD_CLOEXEC); /* a regular file: not pollable */
        /* Unless the number is one closed while watched: the loop then
         * still believes it watches it (misuse, see `misused`). */
        if (fd >= 0 && fd < MAXFDNUM && !cur_reg[fd][0] && !cur_reg[fd][1]) {
            rc = loop_add_reader(L, fd, on_io, NULL);
            if (rc != -ENOMEM)
                expect_rc(rc, -EPERM, "add_reader(regular file)");
        }
        if (fd >= 0)
            close(fd);
        break;
    }
    case 3:
        rc = loop_add_reader(L, MAXFDNUM + 100 + (int)take16(), on_io, NULL);
        expect_rc(rc, -EBADF, "add_reader(unopened number)");
        break;
    default:
        rc = loop_cancel(L, (loop_handle){(uint64_t)take16() << 33 | take()});
        expect_rc(rc, -ENOENT, "cancel(bogus)");
        break;
    }
}

static void op_signal(void)
{
    switch (take() % 3) {
    case 0:
        if (!sig_added) {
            int rc = loop_add_signal(L, FUZZ_SIGNAL, on_tok, (void *)(intptr_t)-1);
            if (rc == 0)
                sig_added = true;
            else if (rc != -ENOMEM)
                expect_rc(rc, 0, "loop_add_signal");
        }
        break;
    case 1:
        if (sig_added) {
            expect_rc(loop_remove_signal(L, FUZZ_SIGNAL), 0, "loop_remove_signal");
            sig_added = false;
        }
        break;
    default:
        if (sig_added)
            raise(FUZZ_SIGNAL);
        break;
    }
}

/*
 * Could an uncapped iteration block in real time?  A virtual clock does
 * when nothing is ready and no timer has a finite deadline: then only fds
 * can wake it.  (loop_timeout_ns() alone cannot tell: it also says 0 for
 * queued fd changes.)
 */
static bool would_block(void)
{
    if (loop_timeout_ns(L) < 0)
        return true;
    for (int t = 0; t < ntoks; t++) {
        const struct tok *k = &toks[t];
        if (!k->pending)
            continue;
        if (k->kind == K_SOON || k->kind == K_POST)
            return false;
        if ((k->kind == K_TIMER || k->kind == K_EVERY) && k->when < UINT64_MAX / 2)
            return false;
    }
    return true;
}

static void op_run_once(bool inside)
{
    unsigned b = take();
    int64_t cap = b < 100 ? 0 : b < 200 ? (int64_t)take16() * 100 : -1;
    if (inside) {
        expect_rc(loop_run_once(L, cap), -EBUSY, "loop_run_once from a callback");
        return;
    }
    if (cap < 0 && would_block())
        cap = 0;
    run_serial++;
    in_once = true;
    last_class = 0;
    int rc = loop_run_once(L, cap);
    in_once = false;
    if (rc != 0 && rc != -ENOMEM)
        fail("loop_run_once returned %d", rc);
}

static void op_run(bool inside)
{
    if (inside) {
        expect_rc(loop_run(L), -EBUSY, "loop_run from a callback");
        return;
    }
    /* It must end: a stop at a finite time that nothing can cancel. */
    uint64_t when = sat_add(loop_now(L), 1000u * (1 + take()));
    int t = when == UINT64_MAX ? -1 : new_tok(K_TIMER, false);
    if (t < 0)
        return;
    toks[t].when = when;
    toks[t].period = UINT64_MAX; /* marks the stopper */
    if (loop_call_at(L, toks[t].when, on_tok, (void *)(intptr_t)t, NULL)) {
        toks[t].pending = false;
        return;
    }
    int rc = loop_run(L);
    if (rc != 0 && rc != -ENOMEM)
        fail("loop_run returned %d", rc);
}

/* ---- what callbacks do ------------------------------------------------------ */

static void callback_action(int self_fd, unsigned self_dir)
{
    unsigned b = take();
    TRACE("  action %u\n", b % 16);
    switch (b % 16) {
    case 0:
    case 1:
        break;
    case 2:
        if (self_fd >= 0)
            drain_fd(self_fd);
        break;
    case 3:
        if (self_fd >= 0)
            op_remove_fd(self_fd, self_dir);
        break;
    case 4:
        if (self_fd >= 0)
            op_remove_fd(self_fd, self_dir ^ (LOOP_READABLE | LOOP_WRITABLE));
        break;
    case 5:
        op_add(b & 16 ? LOOP_WRITABLE : LOOP_READABLE, true);
        break;
    case 6:
        op_remove(b & 16 ? LOOP_WRITABLE : LOOP_READABLE);
        break;
    case 7:
        close_ent(pick_ent(), true);
        break;
    case 8:
        op_write();
        break;
    case 9:
        op_schedule((b >> 4) % 5, true);
        break;
    case 10:
        if (b & 16)
            op_reschedule();
        else
            op_cancel();
        break;
    case 11:
        loop_stop(L);
        break;
    case 12:
        op_run_once(true);
        break;
    case 13:
        op_run(true);
        break;
    case 14:
        expect_rc(loop_free(L), -EBUSY, "loop_free from a callback");
        break;
    default:
        loop_advance(L, (uint64_t)take() * 100);
        break;
    }
}

static void on_tok(loop_t *loop, void *arg)
{
    int t = (int)(intptr_t)arg;
    TRACE(" callback #%d (now %llu)\n", t, (unsigned long long)loop_now(loop));
    if (loop != L)
        fail("callback got another loop");
    verify("in a callback");
    if (t < 0) { /* the signal handler */
        if (!sig_added)
            fail("a removed signal handler ran");
    } else {
        struct tok *k = &toks[t];
        if (!k->pending)
            fail("callback #%d ran after it was cancelled or had run", t);
        if (k->kind == K_TIMER || k->kind == K_EVERY) {
            if (k->when == UINT64_MAX && k->period != UINT64_MAX)
                fail("timer #%d with an infinite deadline ran", t);
            if (loop_now(loop) < k->when)
                fail("timer #%d ran early: now %llu, deadline %llu", t,
                     (unsigned long long)loop_now(loop), (unsigned long long)k->when);
        }
        int cls = k->kind == K_SOON ? 0 : k->kind == K_POST ? 1 : 2;
        check_order(cls, k->created_in, "callback");
        k->runs++;
        if (k->kind == K_EVERY) {
            /* The next deadline is at least the previous one plus the period. */
            if (!k->moved)
                k->when = sat_add(k->when, k->period);
        } else {
            k->pending = false;
            if (k->handle)
                expect_rc(loop_cancel(loop, k->h), -ENOENT, "cancel of a running one-shot");
        }
        if (k->period == UINT64_MAX) { /* the stopper of op_run */
            loop_stop(loop);
            return;
        }
    }
    for (unsigned n = take() % 3; n > 0; n--)
        callback_action(-1, 0);
}

static void on_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    int id = (int)(intptr_t)arg;
    TRACE(" fd handler: fd %d events 0x%x registration %d\n", fd, events, id);
    if (loop != L)
        fail("fd handler got another loop");
    verify("in an fd handler");
    if (id <= 0 || id > nregs)
        fail("fd handler with an unknown registration %d", id);
    const struct reg *r = &regs[id - 1];
    if (r->fd != fd)
        fail("registration %d is for fd %d, called for fd %d", id, r->fd, fd);
    if (fd < 0 || fd >= MAXFDNUM || cur_reg[fd][dir_index(r->dir)] != id)
        fail("fd %d: a removed or replaced %s ran (registration %d)", fd,
             r->dir == LOOP_READABLE ? "reader" : "writer", id);
    unsigned mine = r->dir | LOOP_HUP | LOOP_ERROR;
    /* After misuse, a stale kernel item can alias the fd's number and
     * report another file's events (see `misused`). */
    if (!(events & mine) && misused)
        TRACE("  tolerated after misuse: events 0x%x for a %s\n", events,
              r->dir == LOOP_READABLE ? "reader" : "writer");
    else if (!(events & mine))
        fail("fd %d: %s called with events 0x%x", fd, r->dir == LOOP_READABLE ? "reader" : "writer",
             events);
    check_order(1, r->created_in, "fd handler");
    for (unsigned n = take() % 3; n > 0; n--)
        callback_action(fd, r->dir);
}

/* ---- the driver ---------------------------------------------------------------- */

static void step(void)
{
    unsigned op = take() % 24;
    budget = BUDGET;
    TRACE("op %u (now %llu)\n", op, (unsigned long long)loop_now(L));
    switch (op) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
        op_schedule(op, false);
        break;
    case 5:
        if (take() & 3)
            op_cancel();
        else
            op_reschedule();
        break;
    case 6:
        loop_stop(L);
        break;
    case 7:
    case 8:
    case 9:
        op_run_once(false);
        break;
    case 10:
        op_run(false);
        break;
    case 11:
        loop_advance(L, (uint64_t)take16() * 100);
        break;
    case 12:
        op_socketpair();
        break;
    case 13:
        op_add(LOOP_READABLE, false);
        break;
    case 14:
        op_add(LOOP_WRITABLE, false);
        break;
    case 15:
        op_remove(take() & 1 ? LOOP_WRITABLE : LOOP_READABLE);
        break;
    case 16:
        close_ent(pick_ent(), take() % 4 != 0); /* sometimes while still watched */
        break;
    case 17:
        op_dup();
        break;
    case 18:
        op_write();
        break;
    case 19: {
        struct ent *e = pick_ent();
        if (e && e->fd >= 0)
            drain_fd(e->fd);
        break;
    }
    case 20: {
        struct ent *e = pick_ent();
        if (e && e->fd >= 0)
            shutdown(e->fd, take() & 1 ? SHUT_WR : SHUT_RDWR);
        break;
    }
    case 21:
        op_flood();
        break;
    case 22:
        switch (take() % 3) {
        case 0:
            fail_allocs = 1 + take() % 4;
            break;
        case 1:
            op_dup2();
            break;
        default:
            op_signal();
            break;
        }
        break;
    default:
        op_bad_fd();
        break;
    }
    fail_allocs = op == 22 ? fail_allocs : 0;
    verify("after an operation");
}

static void reset(void)
{
    memset(toks, 0, sizeof(toks));
    memset(cur_reg, 0, sizeof(cur_reg));
    ntoks = nregs = nents = 0;
    run_serial = 0;
    in_once = false;
    sig_added = false;
    misused = false;
    fail_allocs = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reset();
    if (trace < 0)
        trace = getenv("FUZZ_TRACE") && *getenv("FUZZ_TRACE") == '1';
    in_p = data;
    in_n = size;
    unsigned mode = take();
    loop_options o = {
        .clock = LOOP_CLOCK_VIRTUAL,
        .strict_poll = !(mode & 1),
        .poll_interval = (mode >> 1) & 7,
        .realloc = fuzz_realloc,
    };
    if (loop_new_with(&L, &o))
        fail("loop_new_with failed");

    for (int i = 0; i < MAXSTEPS && in_n; i++)
        step();

    /* Wind down: every fd handler removed before its fd is closed. */
    fail_allocs = 0;
    for (int i = 0; i < nents; i++)
        close_ent(&ents[i], true);
    for (int fd = 0; fd < MAXFDNUM; fd++) {
        /* numbers closed while still watched */
        if (cur_reg[fd][0])
            op_remove_fd(fd, LOOP_READABLE);
        if (cur_reg[fd][1])
            op_remove_fd(fd, LOOP_WRITABLE);
    }
    verify("at the end");
    if (loop_free(L))
        fail("loop_free failed");
    L = NULL;
    return 0;
}
