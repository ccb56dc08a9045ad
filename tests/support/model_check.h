/*
 * The reference model's trampolines: every callback the loop runs comes
 * through here, and must be one the rules allow at that moment.  Part of
 * model.h (compiled where MODEL_IMPLEMENTATION is defined); see there.
 */
#ifndef LOOP_TESTS_MODEL_CHECK_H
#define LOOP_TESTS_MODEL_CHECK_H

/* ---- matching what runs against what the rules allow ---------------------- */

static bool model_idx_before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

/* The first entry of the iteration that must still run. */
static uint32_t model_first_pending(void)
{
    while (model.scan != model.snap_end) {
        const struct model_entry *e = model_entry_at(model.scan);
        if (!e->consumed && !e->maybe && model_entry_valid(e))
            break;
        model.scan++;
    }
    return model.scan;
}

static bool model_find(uint8_t type, int id, uint64_t post, uint32_t *out)
{
    for (uint32_t i = model.head; i != model.snap_end; i++) {
        const struct model_entry *e = model_entry_at(i);
        if (e->type == type && e->id == id && !e->consumed && model_entry_valid(e) &&
            (type != MODEL_E_FOREIGN || e->lo == post)) {
            *out = i;
            return true;
        }
    }
    return false;
}

/* Must y run before x?  Only if its deadline certainly comes first, or is
 * certainly the same and it was certainly scheduled first. */
static bool model_certainly_before(const struct model_entry *y, const struct model_entry *x)
{
    if (y->hi < x->lo)
        return true;
    return y->hi <= x->lo && y->seq < x->seq && !(y->batch && y->batch == x->batch);
}

static void model_out_of_order(uint32_t want, uint32_t got)
{
    char a[160], b[160];
    model_describe(a, sizeof(a), model_entry_at(want));
    model_describe(b, sizeof(b), model_entry_at(got));
    model_fail("in iteration %" PRIu64 " %s ran before %s, which the rules run first", model.iters,
               b, a);
}

/* Could something of the I/O phase that the model cannot list run now? */
static bool model_io_phase_open(void)
{
    uint32_t first = model_first_pending();
    return model.polled && !model.timer_consumed &&
           !(first != model.snap_end && model_idx_before(first, model.io_start));
}

/* Entry i runs now: is it its turn? */
static void model_take(uint32_t i)
{
    struct model_entry *e = model_entry_at(i);
    uint32_t first = model_first_pending();
    if (e->seg == MODEL_SEG_PRE) {
        if (first != i)
            model_out_of_order(first, i);
    } else if (e->seg == MODEL_SEG_IO) {
        if (model_idx_before(first, model.io_start))
            model_out_of_order(first, i);
        for (uint32_t j = model.io_start; j != model.timer_start; j++) {
            const struct model_entry *y = model_entry_at(j);
            if (j == i || y->consumed || !model_entry_valid(y) || y->type != e->type)
                continue;
            bool same_fd = e->type == MODEL_E_IO && model.reg[y->id].fd == model.reg[e->id].fd &&
                           model.reg[y->id].dir == LOOP_READABLE;
            bool earlier_post = e->type == MODEL_E_TOK && model_idx_before(j, i);
            if (same_fd || earlier_post)
                model_out_of_order(j, i);
        }
    } else {
        if (model_idx_before(first, model.timer_start))
            model_out_of_order(first, i);
        for (uint32_t j = model.timer_start; j != model.snap_end; j++) {
            const struct model_entry *y = model_entry_at(j);
            if (j != i && !y->consumed && model_entry_valid(y) && model_certainly_before(y, e))
                model_out_of_order(j, i);
        }
        model.timer_consumed = true;
    }
    e->consumed = true;
}

/* Once a rule is broken, the test's callbacks stop doing anything and every
 * run ends at the end of its iteration. */
static bool model_stop_if_failed(loop_t *loop)
{
    if (model.failed)
        loop_stop(loop);
    return model.failed;
}

/* Before any callback: catch up with iterations, check the clock. */
static void model_enter(void)
{
    model_sync();
    if (model.desync)
        return;
    if (!model.iter_open)
        model_fail("a callback ran outside an iteration");
    else if (loop_now(model.loop) != model.now)
        model_fail("loop_now() is %" PRIu64 " in a callback of iteration %" PRIu64
                   "; the rules say %" PRIu64,
                   loop_now(model.loop), model.iters, model.now);
}

static void model_no_entry(const char *what)
{
    uint32_t first = model_first_pending();
    char want[160] = "nothing more";
    if (first != model.snap_end)
        model_describe(want, sizeof(want), model_entry_at(first));
    model_fail("%s ran in iteration %" PRIu64 " (now %" PRIu64 "), where the rules run %s next",
               what, model.iters, model.now, want);
}

/* A maybe-due timer ran: it was due, so it was queued and re-armed then. */
static void model_resolve(const struct model_entry *e)
{
    struct model_tok *k = &model.tok[e->id];
    if (!e->maybe || !k->armed || k->armgen != e->armgen)
        return;
    if (!k->period) {
        model_disarm(e->id);
        return;
    }
    uint64_t lo, hi;
    model_next_deadline(k, e->lo, e->hi, &lo, &hi);
    model_arm(e->id, lo, hi);
    k->seq = e->next_seq;
}

static void model_tok_cb(loop_t *loop, void *arg)
{
    int t = (int)(intptr_t)arg;
    if (loop != model.loop || t < 0 || t >= model.ntok) {
        model_fail("a callback ran with a loop or argument it was never given");
        return;
    }
    struct model_tok *k = &model.tok[t];
    model_enter();
    model_log(MEV_RUN, 0, t, (int64_t)loop_now(loop), 0);
    uint32_t i;
    if (!k->live) {
        model_fail("callback #%d ran after it was %s", t,
                   k->runs && k->kind != MODEL_EVERY ? "run (a one-shot runs once)" : "cancelled");
    } else if (model.desync) {
        if (k->kind == MODEL_TIMER && loop_now(loop) < k->lo)
            model_fail("timer #%d ran at %" PRIu64 ", before its deadline %" PRIu64, t,
                       loop_now(loop), k->lo);
    } else if (!model_find(MODEL_E_TOK, t, 0, &i)) {
        char what[64];
        snprintf(what, sizeof(what), "callback #%d", t);
        model_no_entry(what);
    } else {
        model_take(i);
        model_resolve(model_entry_at(i));
    }
    if (k->kind != MODEL_EVERY) {
        k->live = false; /* stale as soon as it starts */
        if (k->armed)
            model_disarm(t);
    }
    int nth = k->runs++;
    model.runs_since_poll++;
    if (model_stop_if_failed(loop))
        return;
    model.depth++;
    if (model.cfg.tok_body)
        model.cfg.tok_body(t, nth);
    model.depth--;
}

/* A handler of a misused number (or any, once the model lost track): stale
 * kernel registrations of the number may report any file's events, even
 * twice in one poll, but only in the I/O phase of a poll and only to the
 * number's current handlers. */
static void model_io_lenient(struct model_reg *g, int r, unsigned events)
{
    if (model.desync) {
        if (!model.misused[g->fd] && !(events & (g->dir | MODEL_DISPATCH)))
            model_fail("the %s of fd %d ran with events 0x%x",
                       g->dir == LOOP_READABLE ? "reader" : "writer", g->fd, events);
        return;
    }
    if (!model_io_phase_open())
        model_fail("the %s of fd %d (registration %d) ran outside the I/O phase of a poll",
                   g->dir == LOOP_READABLE ? "reader" : "writer", g->fd, r);
}

static void model_io_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    int r = (int)(intptr_t)arg;
    if (loop != model.loop || r <= 0 || r > model.nreg) {
        model_fail("an fd handler ran with a loop or argument it was never given");
        return;
    }
    struct model_reg *g = &model.reg[r];
    const char *name = g->dir == LOOP_READABLE ? "reader" : "writer";
    model_enter();
    model_log(MEV_IO, 0, r, fd, events);
    uint32_t i;
    if (g->fd != fd) {
        model_fail("registration %d is for fd %d; its handler was called for fd %d", r, g->fd, fd);
    } else if (!g->current) {
        model_fail("a removed or replaced %s of fd %d ran (registration %d)", name, fd, r);
    } else if (!model.desync && model_find(MODEL_E_IO, r, 0, &i)) {
        /* Each side sees its own events: the model never makes a reader and
         * a writer one handler (each registration has its own argument). */
        unsigned side = g->dir | LOOP_HUP | LOOP_ERROR;
        if ((model_entry_at(i)->events & side) != events)
            model_fail("the %s of fd %d got events 0x%x; at the poll the fd had 0x%x", name, fd,
                       events, model_entry_at(i)->events);
        model_take(i);
    } else if (model.desync || model.misused[fd]) {
        model_io_lenient(g, r, events);
    } else {
        char what[96];
        snprintf(what, sizeof(what), "the %s of fd %d (events 0x%x, not ready at the poll)", name,
                 fd, events);
        model_no_entry(what);
    }
    int nth = g->runs++;
    model.runs_since_poll++;
    if (model_stop_if_failed(loop))
        return;
    model.depth++;
    if (model.cfg.io_body)
        model.cfg.io_body(r, fd, events, nth);
    model.depth--;
}

static void model_signal_cb(loop_t *loop, void *arg)
{
    (void)arg;
    if (loop != model.loop)
        model_fail("the signal handler got another loop");
    model_enter();
    model_log(MEV_SIG, 0, 0, 0, 0);
    uint32_t i;
    if (!model.sig_registered)
        model_fail("a removed signal handler ran");
    else if (model.desync)
        ;
    else if (!model_find(MODEL_E_SIG, (int)model.sig_gen, 0, &i))
        model_no_entry("the signal handler");
    else
        model_take(i);
    model.runs_since_poll++;
    if (model_stop_if_failed(loop))
        return;
    model.depth++;
    if (model.cfg.signal_body)
        model.cfg.signal_body();
    model.depth--;
}

static void model_foreign_cb(loop_t *loop, void *arg)
{
    uint64_t v = (uint64_t)(uintptr_t)arg;
    int t = (int)(v >> 40);
    uint64_t s = v & ((1ull << 40) - 1);
    if (loop != model.loop || t >= model.cfg.nthreads) {
        model_fail("a post ran with a loop or argument it was never given");
        return;
    }
    model_enter();
    model_log(MEV_POST, 0, t, (int64_t)s, 0);
    uint32_t i;
    if (s != model.fran[t])
        model_fail("post %" PRIu64 " of thread %d ran where post %" PRIu64
                   " was next: a post was lost, repeated or reordered",
                   s, t, model.fran[t]);
    else if (model.desync)
        ;
    else if (model_find(MODEL_E_FOREIGN, t, s, &i))
        model_take(i);
    else if (model.fjoined || !model_io_phase_open())
        model_no_entry("a post of another thread");
    model.fran[t] = s + 1;
    model.runs_since_poll++;
    model_stop_if_failed(loop);
}

#endif /* LOOP_TESTS_MODEL_CHECK_H */
