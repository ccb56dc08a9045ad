/*
 * Fuzz target: the bytes of an input are decoded into a sequence of
 * operations on one loop (virtual clock): call_soon/later/at/every, cancel,
 * reschedule, stop, advance, run_once, run, threadsafe posts, a signal, and fd
 * operations on socketpairs (fuzz_fds.c): add and remove readers and
 * writers, close (properly, and improperly while still watched), dup, dup2
 * over a watched number, reuse of fd numbers, writes, drains, shutdowns and
 * full buffers from either end, plus allocation failures.  Callbacks
 * consume bytes of the input too, to decide what they do from inside the
 * loop.
 *
 * The oracle is the reference model of tests/support/model.h, which every
 * operation and every callback goes through: return codes, which callback
 * runs when (FIFO, then I/O, then timers by (deadline, schedule order),
 * never early, never after a cancel, a one-shot once), the clock after
 * each poll, liveness (what the rules put in an iteration runs in it; a
 * handler whose fd is ready at a poll runs then, with the fd's events as
 * poll(2) reports them), posts and signals in the I/O phase, handlers only
 * for their current registration.  loop__verify() must also hold after
 * every operation and inside every callback.  A failed check prints what
 * broke and the events that led to it, and aborts.
 *
 * What the model leaves open: the numbers of fds closed or dup2'd over
 * while watched (their events are unknowable until all their handlers are
 * removed; then they are checked again, old kernel registrations and all),
 * and everything about timing after a loop_run/loop_run_once that failed
 * with -ENOMEM (then only that no callback runs after a cancel or twice,
 * no one-shot timer early, no handler for an old registration).
 *
 * Built two ways: with clang -fsanitize=fuzzer (scripts/fuzz.sh) and, for
 * ctest, with fuzz/replay.c, which feeds it every file of the corpus.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_IMPLEMENTATION
#define LOOP_TESTS_NO_CMOCKA
#include "fuzz.h"
#include "internals.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXTOK 256   /* scheduled callbacks per input */
#define MAXSTEPS 600 /* operations per input */
#define BUDGET 16    /* callbacks may schedule this many per operation */
#define FUZZ_SIGNAL SIGWINCH

int trace = -1;
bool misused;

/* ---- input ---------------------------------------------------------------- */

static const uint8_t *in_p;
static size_t in_n;

unsigned take(void)
{
    if (!in_n)
        return 0;
    in_n--;
    return *in_p++;
}

unsigned take16(void)
{
    unsigned lo = take();
    return lo | take() << 8;
}

/* ---- checks ---------------------------------------------------------------- */

void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_loop: check failed: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    model_print_recent(stderr);
    abort();
}

static void model_failed(void)
{
    fail("%s", model_failure());
}

void expect_rc(int rc, int expected, const char *what)
{
    if (rc != expected)
        fail("%s returned %d, expected %d", what, rc, expected);
}

static int no_verify = -1; /* LOOP_MODEL_NO_VERIFY=1: see what the model alone catches */

static void verify(const char *where)
{
    const char *why;
    if (no_verify < 0)
        no_verify = getenv("LOOP_MODEL_NO_VERIFY") && *getenv("LOOP_MODEL_NO_VERIFY") == '1';
    if (no_verify || !test_loop_verify(model.loop, &why))
        return;
    /* After misuse only this rule cannot hold: the kernel no longer holds
     * what the fd table says. */
    if (!misused || strcmp(why, "fds: change not queued") != 0)
        fail("loop__verify %s: %s", where, why);
    TRACE("  tolerated after misuse: loop__verify %s: %s\n", where, why);
}

static int budget;

bool spend(bool inside)
{
    if (!inside)
        return true;
    if (budget <= 0)
        return false;
    budget--;
    return true;
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
        model.may_fail = true; /* -ENOMEM is a legal answer from now on in this step */
        return NULL;
    }
    return realloc(ptr, size);
}

/* ---- scheduling --------------------------------------------------------- */

static bool stopper[MODEL_MAXTOK]; /* the callback calls loop_stop (op_run's) */
static bool sig_added;

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

static void op_schedule(unsigned which, bool inside)
{
    if (model.ntok >= MAXTOK || !spend(inside))
        return;
    bool handle = (take() & 3) != 0 && which != 4;
    uint64_t now = model_now(), when;
    switch (which) {
    case 0:
        model_call_soon(handle);
        break;
    case 1:
        model_call_later(rand_delay(), handle);
        break;
    case 2: {
        unsigned b = take();
        if (b < 32)
            when = now >= b * 1000u ? now - b * 1000u : 0; /* in the past */
        else if (b < 250)
            when = model_sat_add(now, rand_delay());
        else
            when = UINT64_MAX;
        model_call_at(when, handle);
        break;
    }
    case 3:
        model_call_every((uint64_t)(1 + take()) * 500, handle);
        break;
    default:
        model_post();
        break;
    }
}

static int pick_tok(void)
{
    return model.ntok ? (int)(take() % (unsigned)model.ntok) : -1;
}

static void op_cancel(void)
{
    if (model.ntok)
        model_cancel(pick_tok());
}

/* Move a callback; a one-shot (call_soon'd or timed) becomes a timer. */
static void op_reschedule(void)
{
    if (!model.ntok)
        return;
    int t = pick_tok();
    bool relative = take() & 1;
    uint64_t now = model_now();
    if (relative) {
        model_reschedule(t, rand_delay());
    } else {
        unsigned b = take();
        model_reschedule_at(t, b < 40 ? now - (now < b * 1000u ? now : b * 1000u)
                                      : model_sat_add(now, rand_delay()));
    }
}

static void op_signal(void)
{
    switch (take() % 3) {
    case 0:
        if (!sig_added)
            sig_added = model_add_signal() == 0;
        break;
    case 1:
        if (sig_added) {
            model_remove_signal();
            sig_added = false;
        }
        break;
    default:
        if (sig_added)
            model_raise();
        break;
    }
}

static void op_run_once(bool inside)
{
    unsigned b = take();
    int64_t cap = b < 100 ? 0 : b < 200 ? (int64_t)take16() * 100 : -1;
    /* An uncapped iteration of a virtual clock blocks in real time when no
     * timer can fire and no fd is ready. */
    if (!inside && cap < 0 && (model.desync || (model_timeout(-1) < 0 && !model_fd_ready())))
        cap = 0;
    model_run_once(cap);
}

static void op_run(bool inside)
{
    if (inside) {
        model_run(); /* -EBUSY */
        return;
    }
    /* It must end: a stop at a finite time that nothing can cancel. */
    uint64_t when = model_sat_add(model_now(), 1000u * (1 + take()));
    if (when == UINT64_MAX || model.ntok >= MAXTOK)
        return;
    int t = model_call_at(when, false);
    if (t < 0)
        return;
    stopper[t] = true;
    model_run();
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
        op_close(true);
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
        model_stop();
        break;
    case 12:
        op_run_once(true);
        break;
    case 13:
        op_run(true);
        break;
    case 14:
        model_free_inside();
        break;
    default:
        model_advance((uint64_t)take() * 100);
        break;
    }
}

static void tok_body(int t, int nth)
{
    (void)nth;
    verify("in a callback");
    if (stopper[t]) {
        model_stop();
        return;
    }
    if (model.tok[t].kind != MODEL_EVERY && model.tok[t].handle)
        model_cancel(t); /* -ENOENT: a one-shot is stale once it starts */
    for (unsigned n = take() % 3; n > 0; n--)
        callback_action(-1, 0);
}

static void signal_body(void)
{
    verify("in the signal handler");
    for (unsigned n = take() % 3; n > 0; n--)
        callback_action(-1, 0);
}

static void io_body(int reg, int fd, unsigned events, int nth)
{
    (void)events;
    (void)nth;
    verify("in an fd handler");
    for (unsigned n = take() % 3; n > 0; n--)
        callback_action(fd, model.reg[reg].dir);
}

/* ---- the driver ---------------------------------------------------------------- */

static void step(void)
{
    unsigned op = take() % 24;
    budget = BUDGET;
    model.may_fail = false; /* until an allocation fails */
    TRACE("op %u (now %llu)\n", op, (unsigned long long)model_now());
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
        model_stop();
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
        model_advance((uint64_t)take16() * 100);
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
        op_close(take() % 4 != 0); /* sometimes while still watched */
        break;
    case 17:
        op_dup();
        break;
    case 18:
        op_write();
        break;
    case 19:
        op_drain();
        break;
    case 20:
        op_shutdown();
        break;
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (trace < 0)
        trace = getenv("FUZZ_TRACE") && *getenv("FUZZ_TRACE") == '1';
    in_p = data;
    in_n = size;
    misused = sig_added = false;
    fail_allocs = 0;
    memset(stopper, 0, sizeof(stopper));
    fds_reset();
    unsigned mode = take();
    loop_options o = {
        .clock = LOOP_CLOCK_VIRTUAL,
        .strict_poll = !(mode & 1),
        .poll_interval = (mode >> 1) & 7,
        .realloc = fuzz_realloc,
    };
    loop_t *loop;
    if (loop_new_with(&loop, &o))
        fail("loop_new_with failed");
    struct model_config cfg = {
        .opts = o,
        .readiness = fds_readiness,
        .tok_body = tok_body,
        .io_body = io_body,
        .signal_body = signal_body,
        .on_fail = model_failed,
        .trace = trace > 0,
        .signo = FUZZ_SIGNAL,
    };
    model_start(loop, &cfg);

    for (int i = 0; i < MAXSTEPS && in_n; i++)
        step();

    fail_allocs = 0;
    model.may_fail = false;
    fds_wind_down();
    verify("at the end");
    if (loop_free(loop))
        fail("loop_free failed");
    return 0;
}
