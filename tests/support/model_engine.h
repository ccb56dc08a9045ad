/*
 * The reference model's iteration: the timer list, the ready list, what
 * each phase queues and when an iteration may begin.  Part of model.h
 * (compiled where MODEL_IMPLEMENTATION is defined); see there.
 */
#ifndef LOOP_TESTS_MODEL_ENGINE_H
#define LOOP_TESTS_MODEL_ENGINE_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct model model;

#define MODEL_QMASK (MODEL_MAXQ - 1u)
#define MODEL_DISPATCH (LOOP_HUP | LOOP_ERROR) /* wake both readers and writers */

enum { MEV_OP, MEV_RUN, MEV_IO, MEV_SIG, MEV_POST, MEV_POLL, MEV_ITER };

enum model_op {
    OP_SOON,
    OP_LATER,
    OP_AT,
    OP_EVERY,
    OP_POST,
    OP_CANCEL,
    OP_BOGUS,
    OP_RESCHED,
    OP_RESCHED_AT,
    OP_REF,
    OP_UNREF,
    OP_STOP,
    OP_ADVANCE,
    OP_RUN_ONCE,
    OP_RUN,
    OP_FREE,
    OP_ADD_R,
    OP_ADD_W,
    OP_REM_R,
    OP_REM_W,
    OP_MISUSE,
    OP_ADD_SIG,
    OP_REM_SIG,
    OP_RAISE,
    OP_JOIN,
};

static const char *const model_op_name[] = {
    "call_soon", "call_later",    "call_at",       "call_every",    "post",
    "cancel",    "cancel(bogus)", "reschedule",    "reschedule_at", "ref",
    "unref",     "stop",          "advance",       "run_once",      "run",
    "free",      "add_reader",    "add_writer",    "remove_reader", "remove_writer",
    "misuse",    "add_signal",    "remove_signal", "raise",         "threads joined"};

static uint64_t model_sat_add(uint64_t a, uint64_t b)
{
    return b > MODEL_NEVER - a ? MODEL_NEVER : a + b;
}

static void model_print_event(FILE *f, const struct model_event *e)
{
    switch (e->what) {
    case MEV_OP:
        fprintf(f, "    %s #%d (%" PRId64 ") -> %d\n", model_op_name[e->op], e->id, e->x,
                (int)e->y);
        break;
    case MEV_RUN:
        fprintf(f, "  run #%d at %" PRIu64 "\n", e->id, (uint64_t)e->x);
        break;
    case MEV_IO:
        fprintf(f, "  fd %d handler (registration %d) events 0x%x\n", (int)e->x, e->id,
                (unsigned)e->y);
        break;
    case MEV_SIG:
        fprintf(f, "  signal handler\n");
        break;
    case MEV_POST:
        fprintf(f, "  post %" PRId64 " of thread %d\n", e->x, e->id);
        break;
    case MEV_POLL:
        fprintf(f, "  poll, timeout %" PRId64 ": now %" PRIu64 "\n", e->x, (uint64_t)e->y);
        break;
    default:
        fprintf(f, "  iteration %" PRId64 "%s\n", e->x, e->op ? "" : " (poll skipped)");
        break;
    }
}

static void model_log(uint8_t what, uint8_t op, int id, int64_t x, int64_t y)
{
    struct model_event *e = &model.ev[model.nev++ % (sizeof(model.ev) / sizeof(model.ev[0]))];
    *e = (struct model_event){what, op, id, x, y};
    if (model.cfg.trace)
        model_print_event(stderr, e);
}

void model_print_recent(FILE *f)
{
    uint64_t n = sizeof(model.ev) / sizeof(model.ev[0]);
    uint64_t from = model.nev > n ? model.nev - n : 0;
    fprintf(f, "  the last events, oldest first:\n");
    for (uint64_t i = from; i < model.nev; i++)
        model_print_event(f, &model.ev[i % n]);
}

void model_fail(const char *fmt, ...)
{
    if (model.failed)
        return;
    model.failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(model.failure, sizeof(model.failure), fmt, ap);
    va_end(ap);
    if (model.cfg.on_fail)
        model.cfg.on_fail();
}

const char *model_failure(void)
{
    return model.failed ? model.failure : NULL;
}

uint64_t model_now(void)
{
    return model.now;
}

bool model_in_callback(void)
{
    return model.depth > 0;
}

/* ---- timers ------------------------------------------------------------ */

static void model_arm(int t, uint64_t lo, uint64_t hi)
{
    struct model_tok *k = &model.tok[t];
    k->lo = lo;
    k->hi = hi;
    k->seq = model.seq++;
    k->batch = 0;
    k->armgen++;
    if (!k->armed)
        model.timers[model.ntimers++] = t;
    k->armed = true;
}

static void model_disarm(int t)
{
    for (int i = 0; i < model.ntimers; i++) {
        if (model.timers[i] == t) {
            model.timers[i] = model.timers[--model.ntimers];
            break;
        }
    }
    model.tok[t].armed = false;
}

/*
 * A repeating timer queued for a deadline in [lo, hi] at time now: the next
 * deadline is deadline + period, or now + period if that is not in the
 * future (no burst after a stall).
 */
static void model_next_deadline(const struct model_tok *k, uint64_t lo, uint64_t hi, uint64_t *nlo,
                                uint64_t *nhi)
{
    uint64_t a = model_sat_add(lo, k->period), b = model_sat_add(hi, k->period);
    uint64_t c = model_sat_add(model.snap_now, k->period);
    if (a > model.snap_now) { /* certainly deadline + period */
        *nlo = a;
        *nhi = b;
    } else if (b <= model.snap_now) { /* certainly now + period */
        *nlo = *nhi = c;
    } else { /* either: somewhere after now, up to the larger */
        *nlo = model.snap_now + 1;
        *nhi = b > c ? b : c;
    }
}

/* ---- the ready list ------------------------------------------------------ */

static uint32_t model_ready_len(void)
{
    return model.tail - model.head;
}

static struct model_entry *model_entry_at(uint32_t i)
{
    return &model.q[i & MODEL_QMASK];
}

static struct model_entry *model_push(uint8_t type, uint8_t seg, int id)
{
    static struct model_entry spare;
    if (model.tail - model.head >= MODEL_MAXQ) {
        model_fail("test limits: the model's ready list is full");
        return &spare;
    }
    struct model_entry *e = model_entry_at(model.tail++);
    *e = (struct model_entry){.type = type, .seg = seg, .id = id};
    if (type == MODEL_E_TOK) {
        const struct model_tok *k = &model.tok[id];
        e->epoch = k->epoch;
        e->armgen = k->armgen;
    }
    return e;
}

/* Would the loop still run this entry?  (Cancelled, removed, replaced,
 * rescheduled and one-shots that ran are dropped when their turn comes.) */
static bool model_entry_valid(const struct model_entry *e)
{
    switch (e->type) {
    case MODEL_E_TOK:
        return model.tok[e->id].live && model.tok[e->id].epoch == e->epoch;
    case MODEL_E_IO:
        return model.reg[e->id].current;
    case MODEL_E_SIG:
        return model.sig_registered && model.sig_gen == (uint32_t)e->id;
    default:
        return true;
    }
}

static void model_describe(char *buf, size_t size, const struct model_entry *e)
{
    const struct model_reg *g;
    switch (e->type) {
    case MODEL_E_TOK:
        if (e->seg == MODEL_SEG_TIMER)
            snprintf(buf, size,
                     "timer #%d (deadline in [%" PRIu64 ", %" PRIu64 "], order %" PRIu64 ")", e->id,
                     e->lo, e->hi, e->seq);
        else
            snprintf(buf, size, "%s #%d", e->seg == MODEL_SEG_IO ? "post" : "callback", e->id);
        break;
    case MODEL_E_IO:
        g = &model.reg[e->id];
        snprintf(buf, size, "the %s of fd %d (registration %d, events 0x%x)",
                 g->dir == LOOP_READABLE ? "reader" : "writer", g->fd, e->id, e->events);
        break;
    case MODEL_E_SIG:
        snprintf(buf, size, "the signal handler");
        break;
    default:
        snprintf(buf, size, "post %" PRIu64 " of thread %d", e->lo, e->id);
        break;
    }
}

bool model_alive(void)
{
    uint64_t left = model.fjoined ? model_foreign_left() : 0;
    return model_ready_len() || model.ntimers || model.nwatched || model.refs ||
           model.sig_registered || model.nposts || left;
}

/* Posts of other threads may be queued without the model knowing. */
static bool model_foreign_unknown(void)
{
    return model.cfg.nthreads > 0 && !model.fjoined;
}

/* The earliest deadline's lower bound, MODEL_NEVER if none can come. */
static uint64_t model_earliest(void)
{
    uint64_t lo = MODEL_NEVER;
    for (int i = 0; i < model.ntimers; i++)
        if (model.tok[model.timers[i]].lo < lo)
            lo = model.tok[model.timers[i]].lo;
    return lo;
}

/*
 * Phase 1: 0 if callbacks are queued (a cancelled one counts until its
 * turn, as in asyncio), a stop is pending or nothing keeps the loop alive;
 * else the time to the earliest deadline, capped; -1: block.
 */
int64_t model_timeout(int64_t cap)
{
    if (model_ready_len() || model.stop || !model_alive())
        return 0;
    uint64_t lo = model_earliest();
    int64_t t = -1;
    if (lo != MODEL_NEVER) {
        uint64_t d = lo > model.now ? lo - model.now : 0;
        t = d > INT64_MAX ? INT64_MAX : (int64_t)d;
    }
    if (cap >= 0 && (t < 0 || t > cap))
        t = cap;
    return t;
}

static unsigned model_interest(int fd)
{
    return (model.cur[fd][0] ? LOOP_READABLE : 0) | (model.cur[fd][1] ? LOOP_WRITABLE : 0);
}

bool model_fd_ready(void)
{
    for (int fd = 0; fd < model.maxfd && model.cfg.readiness; fd++) {
        unsigned want = model_interest(fd);
        if (want && !model.misused[fd] && (model.cfg.readiness(fd, want) & (want | MODEL_DISPATCH)))
            return true;
    }
    return false;
}

/* ---- one iteration ------------------------------------------------------- */

/* Phase 3: each ready fd queues its reader, then its writer. */
static void model_collect_io(void)
{
    for (int fd = 0; fd < model.maxfd && model.cfg.readiness; fd++) {
        unsigned want = model_interest(fd);
        if (!want || model.misused[fd])
            continue;
        unsigned ev = model.cfg.readiness(fd, want) & (want | MODEL_DISPATCH);
        if (ev & (LOOP_READABLE | MODEL_DISPATCH) && model.cur[fd][0])
            model_push(MODEL_E_IO, MODEL_SEG_IO, model.cur[fd][0])->events = ev;
        if (ev & (LOOP_WRITABLE | MODEL_DISPATCH) && model.cur[fd][1])
            model_push(MODEL_E_IO, MODEL_SEG_IO, model.cur[fd][1])->events = ev;
    }
    if (model.sig_registered && model.sig_pending) /* deliveries coalesce */
        model_push(MODEL_E_SIG, MODEL_SEG_IO, (int)model.sig_gen);
    model.sig_pending = false;
    for (int i = 0; i < model.nposts; i++) /* every post made so far */
        model_push(MODEL_E_TOK, MODEL_SEG_IO, model.posts[i]);
    model.nposts = 0;
    for (int t = 0; model.fjoined && t < model.cfg.nthreads; t++) {
        uint64_t s = model.fqueued[t] > model.fran[t] ? model.fqueued[t] : model.fran[t];
        for (; s < model.fposted[t]; s++)
            model_push(MODEL_E_FOREIGN, MODEL_SEG_IO, t)->lo = s;
        model.fqueued[t] = s;
    }
}

static int model_cmp_due(const void *a, const void *b)
{
    const struct model_tok *x = &model.tok[*(const int *)a], *y = &model.tok[*(const int *)b];
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Phase 4: every timer due by now is queued, in (deadline, schedule order);
 * a repeating one is re-armed as it is queued.  On the real clock a timer
 * whose deadline interval straddles now is queued as "maybe": it stays
 * armed until it runs (it was due) or the iteration ends (it was not).
 */
static void model_collect_timers(void)
{
    static int due[MODEL_MAXTOK];
    int n = 0;
    for (int i = 0; i < model.ntimers; i++) {
        const struct model_tok *k = &model.tok[model.timers[i]];
        if (k->lo <= model.snap_now && k->lo != MODEL_NEVER)
            due[n++] = model.timers[i];
    }
    qsort(due, (size_t)n, sizeof(int), model_cmp_due);
    uint32_t batch = model.virtual_clock ? 0 : ++model.batch;
    for (int i = 0; i < n; i++) {
        struct model_tok *k = &model.tok[due[i]];
        struct model_entry *e = model_push(MODEL_E_TOK, MODEL_SEG_TIMER, due[i]);
        e->lo = k->lo;
        e->hi = k->hi;
        e->seq = k->seq;
        e->batch = k->batch;
        if (k->hi > model.snap_now) {
            e->maybe = true;
            e->next_seq = model.seq++;
        } else if (k->period) {
            uint64_t lo, hi;
            model_next_deadline(k, k->lo, k->hi, &lo, &hi);
            model_arm(due[i], lo, hi);
            k->batch = batch;
        } else {
            model_disarm(due[i]);
        }
    }
}

/* Phases 2-4 done: the snapshot is everything queued now. */
static void model_begin_snapshot(bool polled)
{
    model.iter_open = true;
    model.polled = polled;
    model.timer_consumed = false;
    model.snap_now = model.now;
    model.iters++;
    model.io_start = model.tail;
    if (polled)
        model_collect_io();
    model.timer_start = model.tail;
    model_collect_timers();
    model.snap_end = model.tail;
    model.scan = model.head;
}

/* The iteration is over: everything the rules put in it must have run. */
static void model_end_snapshot(void)
{
    for (uint32_t i = model.head; i != model.snap_end && !model.failed; i++) {
        struct model_entry *e = model_entry_at(i);
        if (e->consumed || !model_entry_valid(e))
            continue;
        if (e->maybe) { /* it was not due after all */
            struct model_tok *k = &model.tok[e->id];
            if (k->armed && k->armgen == e->armgen && k->lo <= model.snap_now)
                k->lo = model.snap_now + 1;
            continue;
        }
        char what[160];
        model_describe(what, sizeof(what), e);
        model_fail("%s was due in iteration %" PRIu64 " (now %" PRIu64 ") but never ran", what,
                   model.iters, model.snap_now);
    }
    model.head = model.snap_end;
    model.iter_open = false;
}

/* A new iteration begins: was the loop allowed to start one, and to skip its poll? */
static void model_start_iteration(bool polled)
{
    if (model.iter_open)
        model_end_snapshot();
    if (!model.in_run) {
        model_fail("an iteration ran outside loop_run() and loop_run_once()");
        return;
    }
    bool unknown = model_foreign_unknown();
    if (model.iters_in_call > 0 && model.once)
        model_fail("loop_run_once() began a second iteration");
    else if (model.iters_in_call > 0 && model.stop)
        model_fail("loop_run() began an iteration after loop_stop()");
    else if (!model.once && !model.stop && !model_alive() && !unknown)
        model_fail("loop_run() began an iteration with nothing that could run");
    if (!polled) {
        if (model.strict)
            model_fail("strict_poll, yet iteration %" PRIu64 " did not poll", model.iters + 1);
        else if (!model_ready_len())
            model_fail("iteration %" PRIu64 " skipped its poll with no callback queued",
                       model.iters + 1);
        else if (model.stop)
            model_fail("iteration %" PRIu64 " skipped its poll with a stop pending",
                       model.iters + 1);
        else if (model.runs_since_poll >= model.poll_interval)
            model_fail("iteration %" PRIu64
                       " skipped its poll after %u callbacks (poll_interval %u)",
                       model.iters + 1, model.runs_since_poll, model.poll_interval);
    }
    model.iters_in_call++;
    model_log(MEV_ITER, polled, 0, (int64_t)model.iters + 1, 0);
    if (!polled)
        model_begin_snapshot(false);
}

/* Iterations that began without a poll show only in loop_stats(). */
static void model_sync(void)
{
    loop_stats_t s;
    if (loop_stats(model.loop, &s) != 0) {
        model_fail("loop_stats() failed");
        return;
    }
    if (model.desync) {
        model.iters = s.iterations;
        return;
    }
    while (model.iters < s.iterations && !model.failed)
        model_start_iteration(false);
    if (!model.failed && model.iters != s.iterations)
        model_fail("loop_stats() counts %" PRIu64 " iterations where the model began %" PRIu64,
                   s.iterations, model.iters);
}

/* Hooks run in every iteration; whether it polls is known only after. */
static void model_hook_before(loop_t *loop, void *arg)
{
    (void)arg;
    if (loop != model.loop)
        model_fail("the before-poll hook got another loop");
    model_sync();
    model.polling = true;
    loop_stats_t s;
    if (loop_stats(loop, &s) != 0)
        model_fail("loop_stats() failed");
    model.polls_before = s.polls;
}

/* The iteration polled: what the rules said of its poll, from where the
 * model stood before it. */
static void model_poll_began(void)
{
    model_start_iteration(true);
    model.timeout = model_timeout(model.cap);
    model.wait_lo = model.wait_for = 0;
    if (!model.virtual_clock && model.timeout > 0)
        model.wait_for = model_earliest();
    /*
     * On the real clock, an uncapped wait for a timer ends no earlier than
     * its deadline, unless something else woke the loop.  Or unless an
     * earlier wait armed the loop's timerfd for a deadline that has since
     * been cancelled or pushed back: the timerfd is left alone then and
     * fires once at the old deadline (io_epoll.c), so that is the bound.
     */
    if (!model.virtual_clock && model.cap < 0 && model.timeout > 0 && !model_foreign_unknown()) {
        model.wait_lo = model.wait_for;
        if (model.armed_lo && model.armed_lo < model.wait_lo)
            model.wait_lo = model.armed_lo;
    }
}

/* After a wait on the real clock ended at now: what may still be armed. */
static void model_note_arm(uint64_t now)
{
    if (model.armed_lo && now >= model.armed_lo)
        model.armed_lo = 0; /* it fired */
    if (model.wait_for && model.wait_for != MODEL_NEVER && now < model.wait_for &&
        (!model.armed_lo || model.wait_for < model.armed_lo))
        model.armed_lo = model.wait_for;
}

static void model_hook_after(loop_t *loop, void *arg)
{
    (void)arg;
    uint64_t now = loop_now(loop);
    if (!model.polling)
        model_fail("the after-poll hook ran without the before-poll hook");
    model.polling = false;
    loop_stats_t st;
    if (loop_stats(loop, &st) != 0)
        model_fail("loop_stats() failed");
    if (st.polls == model.polls_before)
        return; /* the iteration skipped its poll: model_sync() sees it */
    if (!model.desync)
        model_poll_began();
    if (model.desync) {
        model.now = now;
        return;
    }
    if (model.virtual_clock) {
        uint64_t want = model.now;
        if (model.timeout > 0)
            want = model_sat_add(model.now, (uint64_t)model.timeout);
        if (now != want && now == model.now && model.may_fail) {
            model.desync = model.poll_failed = true; /* see model_run_end */
            return;
        }
        if (now != want)
            model_fail("after the poll loop_now() is %" PRIu64 "; the rules say %" PRIu64
                       " (%" PRIu64 " plus the timeout %" PRId64 ")",
                       now, want, model.now, model.timeout);
    } else if (now < model.now) {
        model_fail("loop_now() went back from %" PRIu64 " to %" PRIu64, model.now, now);
    }
    model.now = now;
    model_log(MEV_POLL, 0, 0, model.timeout, (int64_t)now);
    loop_stats_t s;
    if (loop_stats(loop, &s) == 0 && s.iterations != model.iters)
        model_fail("loop_stats() counts %" PRIu64
                   " iterations before this one's run; the model %" PRIu64,
                   s.iterations, model.iters);
    model.runs_since_poll = 0;
    model_begin_snapshot(true);
    bool misused = false;
    for (int fd = 0; fd < model.maxfd; fd++)
        misused |= model.misused[fd];
    /*
     * A thread's eventfd write may land after the loop has taken its post
     * (include/loop.h allows it).  Such a write is left in the eventfd, so
     * it ends the first poll after the thread was joined, and only that
     * one: the poll drains it.  Any other early return is a defect.
     */
    bool stale = model.stale_wake;
    model.stale_wake = false;
    if (!model.virtual_clock)
        model_note_arm(now);
    if (model.wait_lo && now < model.wait_lo && model.timer_start == model.io_start && !misused &&
        !stale)
        model_fail("the poll returned at %" PRIu64 ", before the earliest deadline %" PRIu64
                   ", with nothing ready",
                   now, model.wait_lo);
}

#endif /* LOOP_TESTS_MODEL_ENGINE_H */
