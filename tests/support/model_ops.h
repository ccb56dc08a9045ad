/*
 * The reference model's operations: each makes the real call, checks its
 * return code against the rules and applies the rules to the model.  Part
 * of model.h (compiled where MODEL_IMPLEMENTATION is defined); see there.
 */
#ifndef LOOP_TESTS_MODEL_OPS_H
#define LOOP_TESTS_MODEL_OPS_H

#include <signal.h>
#include <time.h>

void model_start(loop_t *loop, const struct model_config *cfg)
{
    memset(&model, 0, offsetof(struct model, tok));
    model.cfg = *cfg;
    model.loop = loop;
    model.virtual_clock = cfg->opts.clock == LOOP_CLOCK_VIRTUAL;
    model.strict = cfg->opts.strict_poll;
    /* include/loop.h: poll_interval 0 means 64. */
    model.poll_interval = cfg->opts.poll_interval ? cfg->opts.poll_interval : 64;
    model.now = loop_now(loop);
    loop_stats_t s;
    if (loop_stats(loop, &s) == 0)
        model.iters = s.iterations;
    if (loop_on_before_poll(loop, model_hook_before, NULL) ||
        loop_on_after_poll(loop, model_hook_after, NULL))
        model_fail("could not install the poll hooks");
}

static uint64_t model_clock(void)
{
    if (model.virtual_clock)
        return model.now;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int model_new_tok(uint8_t kind)
{
    if (model.ntok >= MODEL_MAXTOK)
        return -1;
    model.tok[model.ntok] = (struct model_tok){.kind = kind};
    return model.ntok++;
}

static loop_handle model_handle(int t)
{
    if (t < 0 || t >= model.ntok || !model.tok[t].handle)
        return (loop_handle){0};
    return model.tok[t].h;
}

/* Is t pending, and can its caller name it? */
static bool model_named_live(int t)
{
    return t >= 0 && t < model.ntok && model.tok[t].handle && model.tok[t].live;
}

static void model_expect(int op, int id, int64_t arg, int rc, int want)
{
    model_log(MEV_OP, (uint8_t)op, id, arg, rc);
    if (rc != want)
        model_fail("%s #%d (%" PRId64 ") returned %d; the rules say %d", model_op_name[op], id, arg,
                   rc, want);
}

/* -ENOMEM while allocations are made to fail: the call changed nothing. */
static bool model_enomem(int rc)
{
    return rc == -ENOMEM && model.may_fail;
}

static int model_schedule(int op, uint64_t arg, bool handle)
{
    int t = model_new_tok(op == OP_SOON ? MODEL_SOON : op == OP_EVERY ? MODEL_EVERY : MODEL_TIMER);
    if (t < 0)
        return -1;
    struct model_tok *k = &model.tok[t];
    loop_handle *out = handle ? &k->h : NULL;
    void *a = (void *)(intptr_t)t;
    loop_t *loop = model.loop;
    uint64_t t0 = model_clock();
    int rc;
    if (op == OP_SOON)
        rc = loop_call_soon(loop, model_tok_cb, a, out);
    else if (op == OP_LATER)
        rc = loop_call_later(loop, arg, model_tok_cb, a, out);
    else if (op == OP_AT)
        rc = loop_call_at(loop, arg, model_tok_cb, a, out);
    else
        rc = loop_call_every(loop, arg, model_tok_cb, a, out);
    uint64_t t1 = model_clock();
    if (model_enomem(rc)) {
        model_log(MEV_OP, (uint8_t)op, t, (int64_t)arg, rc);
        if (out && out->id)
            model_fail("a failed %s left a handle", model_op_name[op]);
        return -1;
    }
    model_expect(op, t, (int64_t)arg, rc, op == OP_EVERY && !arg ? -EINVAL : 0);
    if (rc)
        return -1;
    k->live = true;
    k->handle = handle;
    if (op == OP_SOON) {
        model_push(MODEL_E_TOK, MODEL_SEG_PRE, t);
    } else if (op == OP_AT) {
        model_arm(t, arg, arg);
    } else { /* counted from a clock read inside the call */
        k->period = op == OP_EVERY ? arg : 0;
        model_arm(t, model_sat_add(t0, arg), model_sat_add(t1, arg));
    }
    return t;
}

int model_call_soon(bool handle)
{
    return model_schedule(OP_SOON, 0, handle);
}

int model_call_later(uint64_t delay, bool handle)
{
    return model_schedule(OP_LATER, delay, handle);
}

int model_call_at(uint64_t when, bool handle)
{
    return model_schedule(OP_AT, when, handle);
}

int model_call_every(uint64_t period, bool handle)
{
    return model_schedule(OP_EVERY, period, handle);
}

/* Posts of this thread join the I/O phase of the next iteration that polls. */
int model_post(void)
{
    int t = model_new_tok(MODEL_POST);
    if (t < 0)
        return -1;
    int rc = loop_call_soon_threadsafe(model.loop, model_tok_cb, (void *)(intptr_t)t);
    if (model_enomem(rc)) {
        model_log(MEV_OP, OP_POST, t, 0, rc);
        return -1;
    }
    model_expect(OP_POST, t, 0, rc, 0);
    if (rc)
        return -1;
    model.tok[t].live = true;
    model.posts[model.nposts++] = t;
    return t;
}

/* A callback can be cancelled until it starts (a repeating one, forever). */
int model_cancel(int t)
{
    bool live = model_named_live(t);
    int rc = loop_cancel(model.loop, model_handle(t));
    model_expect(OP_CANCEL, t, 0, rc, live ? 0 : -ENOENT);
    if (rc == 0 && live) {
        model.tok[t].live = false;
        if (model.tok[t].armed)
            model_disarm(t);
    }
    return rc;
}

/* A handle that never came from the loop: a generation no slot reaches. */
int model_cancel_bogus(uint64_t bits)
{
    int rc = loop_cancel(model.loop, (loop_handle){bits | 1ull << 63});
    model_expect(OP_BOGUS, -1, (int64_t)(bits >> 1), rc, -ENOENT);
    return rc;
}

/*
 * include/loop.h, loop_reschedule: a pending one-shot (even one already
 * queued in this iteration, whose queued run is dropped, or one made with
 * call_soon) becomes a timer at the new deadline; a repeating timer's next
 * run moves and a queued run of it still happens; either way it counts as
 * scheduled now among equal deadlines.
 */
static int model_move(int op, int t, uint64_t arg)
{
    bool live = model_named_live(t);
    uint64_t t0 = model_clock();
    int rc = op == OP_RESCHED ? loop_reschedule(model.loop, model_handle(t), arg)
                              : loop_reschedule_at(model.loop, model_handle(t), arg);
    uint64_t t1 = model_clock();
    struct model_tok *k = live ? &model.tok[t] : NULL;
    if (model_enomem(rc) && k && (model.desync || (k->kind != MODEL_EVERY && !k->armed))) {
        model_log(MEV_OP, (uint8_t)op, t, (int64_t)arg, rc);
        return rc; /* only a queued one may fail, and it stays queued */
    }
    model_expect(op, t, (int64_t)arg, rc, live ? 0 : -ENOENT);
    if (rc || !k)
        return rc;
    if (k->kind != MODEL_EVERY) {
        k->epoch++;
        k->kind = MODEL_TIMER;
    }
    if (op == OP_RESCHED)
        model_arm(t, model_sat_add(t0, arg), model_sat_add(t1, arg));
    else
        model_arm(t, arg, arg);
    return rc;
}

int model_reschedule(int t, uint64_t delay)
{
    return model_move(OP_RESCHED, t, delay);
}

int model_reschedule_at(int t, uint64_t when)
{
    return model_move(OP_RESCHED_AT, t, when);
}

void model_ref(void)
{
    loop_ref(model.loop);
    model_log(MEV_OP, OP_REF, -1, 0, 0);
    model.refs++;
}

void model_unref(void)
{
    loop_unref(model.loop);
    model_log(MEV_OP, OP_UNREF, -1, 0, 0);
    if (model.refs)
        model.refs--;
}

void model_stop(void)
{
    loop_stop(model.loop);
    model_log(MEV_OP, OP_STOP, -1, 0, 0);
    model.stop = true;
}

/* Virtual clock only; it shows at once, and what falls due runs next iteration. */
int model_advance(uint64_t ns)
{
    int rc = loop_advance(model.loop, ns);
    model_expect(OP_ADVANCE, -1, (int64_t)ns, rc, model.virtual_clock ? 0 : -EINVAL);
    if (rc == 0)
        model.now = model_sat_add(model.now, ns);
    return rc;
}

/* A run is over: was its last iteration the last one the rules allow? */
static void model_run_end(int op, int rc)
{
    model_log(MEV_OP, (uint8_t)op, -1, model.cap, rc);
    model_sync();
    if (model_enomem(rc)) {
        model.desync = true; /* what it got done before failing is not pinned down */
    } else if (model.poll_failed) {
        model_fail("%s returned %d, though its poll left the clock behind", model_op_name[op], rc);
    } else if (rc != 0) {
        model_fail("%s returned %d", model_op_name[op], rc);
    } else if (!model.desync) {
        if (model.iter_open)
            model_end_snapshot();
        if (model.once && model.iters_in_call != 1)
            model_fail("loop_run_once() ran %d iterations", model.iters_in_call);
        if (!model.once && model.iters_in_call == 0 && (model.stop || model_alive()))
            model_fail("loop_run() returned at once, though %s",
                       model.stop ? "a stop was pending" : "callbacks could still run");
        if (!model.once && model.iters_in_call > 0 && !model.stop && model_alive())
            model_fail("loop_run() returned without a stop while callbacks could still run");
    }
    model.iter_open = model.poll_failed = false;
    model.stop = false; /* consumed by the call that honours it */
    model.in_run = false;
}

int model_run_once(int64_t cap)
{
    int rc;
    if (model.depth) {
        rc = loop_run_once(model.loop, cap);
        model_expect(OP_RUN_ONCE, -1, cap, rc, -EBUSY);
        return rc;
    }
    model.in_run = true;
    model.once = true;
    model.cap = cap < 0 ? -1 : cap;
    model.iters_in_call = 0;
    rc = loop_run_once(model.loop, cap);
    model_run_end(OP_RUN_ONCE, rc);
    return rc;
}

int model_run(void)
{
    int rc;
    if (model.depth) {
        rc = loop_run(model.loop);
        model_expect(OP_RUN, -1, 0, rc, -EBUSY);
        return rc;
    }
    model.in_run = true;
    model.once = false;
    model.cap = -1;
    model.iters_in_call = 0;
    rc = loop_run(model.loop);
    model_run_end(OP_RUN, rc);
    return rc;
}

int model_free_inside(void)
{
    int rc = loop_free(model.loop);
    model_expect(OP_FREE, -1, 0, rc, -EBUSY);
    return rc;
}

/* ---- fds ------------------------------------------------------------------ */

/* At most one reader and one writer per fd: adding replaces (and drops the
 * replaced one's queued dispatch). */
int model_add(int fd, unsigned dir)
{
    if (fd < 0 || fd >= MODEL_MAXFD || model.nreg + 1 >= MODEL_MAXREG)
        return -1;
    int r = ++model.nreg, d = dir == LOOP_WRITABLE;
    model.reg[r] = (struct model_reg){.fd = fd, .dir = dir};
    void *a = (void *)(intptr_t)r;
    int rc = d ? loop_add_writer(model.loop, fd, model_io_cb, a)
               : loop_add_reader(model.loop, fd, model_io_cb, a);
    int op = d ? OP_ADD_W : OP_ADD_R;
    if (model_enomem(rc) || (rc == -EEXIST && model.misused[fd])) {
        model_log(MEV_OP, (uint8_t)op, r, fd, rc); /* nothing changed */
        return -1;
    }
    model_expect(op, r, fd, rc, 0);
    if (rc)
        return -1;
    int old = model.cur[fd][d];
    if (old)
        model.reg[old].current = false;
    else if (!model.cur[fd][!d])
        model.nwatched++;
    model.cur[fd][d] = r;
    model.reg[r].current = true;
    if (fd >= model.maxfd)
        model.maxfd = fd + 1;
    return r;
}

/* Removing drops a queued dispatch; with no handler left the number is the
 * user's again (and a misused number is known again). */
int model_remove(int fd, unsigned dir)
{
    int d = dir == LOOP_WRITABLE;
    int r = fd >= 0 && fd < MODEL_MAXFD ? model.cur[fd][d] : 0;
    int rc = d ? loop_remove_writer(model.loop, fd) : loop_remove_reader(model.loop, fd);
    model_expect(d ? OP_REM_W : OP_REM_R, r, fd, rc, fd < 0 ? -EBADF : r ? 0 : -ENOENT);
    if (rc == 0 && r) {
        model.reg[r].current = false;
        model.cur[fd][d] = 0;
        if (!model.cur[fd][!d]) {
            model.nwatched--;
            model.misused[fd] = false;
        }
    }
    return rc;
}

void model_fd_misused(int fd)
{
    if (fd >= 0 && fd < MODEL_MAXFD && (model.cur[fd][0] || model.cur[fd][1])) {
        model_log(MEV_OP, OP_MISUSE, -1, fd, 0);
        model.misused[fd] = true;
    }
}

/* ---- signals ---------------------------------------------------------------- */

int model_add_signal(void)
{
    int rc = loop_add_signal(model.loop, model.cfg.signo, model_signal_cb, NULL);
    model_expect(OP_ADD_SIG, -1, model.cfg.signo, rc, 0);
    if (rc == 0 && !model.sig_registered) {
        model.sig_gen++; /* new; a replaced one keeps its queued run */
        model.sig_pending = false;
    }
    model.sig_registered |= rc == 0;
    return rc;
}

int model_remove_signal(void)
{
    int rc = loop_remove_signal(model.loop, model.cfg.signo);
    model_expect(OP_REM_SIG, -1, model.cfg.signo, rc, model.sig_registered ? 0 : -ENOENT);
    if (rc == 0) {
        model.sig_registered = false;
        model.sig_pending = false;
    }
    return rc;
}

/* Delivered before raise() returns: the next poll sees it, once however many. */
void model_raise(void)
{
    model_log(MEV_OP, OP_RAISE, -1, model.cfg.signo, 0);
    if (model.sig_registered)
        model.sig_pending = true;
    raise(model.cfg.signo);
}

/* ---- other threads ------------------------------------------------------- */

int model_foreign_post(int t)
{
    uint64_t s = __atomic_load_n(&model.fposted[t], __ATOMIC_RELAXED);
    void *arg = (void *)(uintptr_t)((uint64_t)t << 40 | s);
    int rc = loop_call_soon_threadsafe(model.loop, model_foreign_cb, arg);
    if (rc == 0)
        __atomic_store_n(&model.fposted[t], s + 1, __ATOMIC_RELEASE);
    return rc;
}

void model_foreign_joined(void)
{
    model_log(MEV_OP, OP_JOIN, -1, 0, 0);
    model.fjoined = true;
    model.stale_wake = true;
}

uint64_t model_foreign_left(void)
{
    uint64_t n = 0;
    for (int t = 0; t < model.cfg.nthreads; t++)
        n += __atomic_load_n(&model.fposted[t], __ATOMIC_ACQUIRE) - model.fran[t];
    return n;
}

#endif /* LOOP_TESTS_MODEL_OPS_H */
