/*
 * The seeded driver of the model-based suites (tests/core/test_model*.c):
 * random operations, from outside and from inside callbacks, applied
 * through the reference model (model.h), which checks every return code
 * and every callback the loop runs.  loop__verify() is called after every
 * step and inside every callback as an extra check.
 *
 * What a callback does is a function of (seed, callback, how many times it
 * ran), so a seed replays the same way.  Posts from other threads (the
 * threads suite) come when they come: a replay repeats the loop thread's
 * operations, not their timing.
 *
 *   LOOP_MODEL_SEEDS=N   run seeds 1..N (default: the suite's, fewer under valgrind)
 *   LOOP_MODEL_SEED=N    run seed N alone, printing every step
 *   LOOP_MODEL_NO_VERIFY=1  leave loop__verify() out, to see what the model
 *                        alone catches
 *
 * Include after <cmocka.h>, with MODEL_IMPLEMENTATION defined.
 */
#ifndef LOOP_TESTS_MODEL_DRIVER_H
#define LOOP_TESTS_MODEL_DRIVER_H

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "internals.h"
#include "model.h"

#define DRIVER_BUDGET 10      /* what callbacks may schedule per outside step */
#define DRIVER_MAXPERIODIC 10 /* repeating timers live at once */
#define DRIVER_POSTS 200      /* posts per other thread per seed */

/* ---- randomness: splitmix64 ------------------------------------------- */

struct rng {
    uint64_t s;
};

static uint64_t rng_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static uint64_t rng_next(struct rng *r)
{
    r->s += 0x9e3779b97f4a7c15u;
    return rng_mix(r->s);
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

/* ---- what a suite sets ---------------------------------------------------- */

struct driver {
    const char *name; /* the executable, for the replay line */
    bool real_clock;
    int nthreads;  /* other threads that post during each seed */
    uint64_t tick; /* ns: the unit of delays */
    int steps;     /* outside operations per seed */
    uint64_t seeds, valgrind_seeds;
    /* fds, if the suite has them */
    unsigned (*readiness)(int fd, unsigned interest);
    void (*fds_begin)(struct rng *r);
    void (*fds_end)(void);
    void (*fd_action)(struct rng *r, int self_reg); /* self_reg: the running handler, or 0 */
    unsigned fd_share;                              /* percent of operations on fds */
};

static struct driver drv;

static struct {
    uint64_t seed;
    int budget;
    int step;
    bool stopper[MODEL_MAXTOK];
    int poster_error;
    bool no_verify;
} dstate;

/* May the running code make one more callback or registration? */
static bool driver_spend(void)
{
    if (!model_in_callback())
        return true;
    if (dstate.budget <= 0)
        return false;
    dstate.budget--;
    return true;
}

static void driver_verify(const char *where)
{
    const char *why;
    if (!dstate.no_verify && test_loop_verify(model.loop, &why))
        model_fail("loop__verify() %s: %s", where, why);
}

/* ---- random operations ------------------------------------------------- */

static uint64_t driver_delay(struct rng *r)
{
    uint64_t k = rng_below(r, 1000), tick = drv.tick;
    if (k < 100)
        return 0;
    if (k < 800)
        return rng_below(r, 60) * tick;
    if (k < 985 || drv.real_clock)
        return k < 997 ? rng_below(r, 60 * tick) : MODEL_NEVER; /* odd nanoseconds */
    if (k < 993)
        return MODEL_NEVER - rng_below(r, 3);            /* saturates */
    return (uint64_t)INT64_MAX + rng_below(r, 4) * tick; /* finite, beyond one poll */
}

static uint64_t driver_when(struct rng *r)
{
    uint64_t now = model_now(), k = rng_below(r, 100);
    if (k < 12)
        return now - rng_below(r, now < 30 * drv.tick ? now + 1 : 30 * drv.tick); /* past */
    if (k < 96)
        return model_sat_add(now, driver_delay(r));
    if (k < 98 || drv.real_clock)
        return MODEL_NEVER;
    return rng_next(r);
}

static uint64_t driver_period(struct rng *r)
{
    uint64_t k = rng_below(r, 100);
    if (k < 60)
        return (5 + rng_below(r, 40)) * drv.tick;
    if (k < 98 || drv.real_clock)
        return 5 * drv.tick + rng_below(r, 40 * drv.tick);
    return MODEL_NEVER / 2 + rng_below(r, 1000); /* the first deadline saturates */
}

/* How far the earliest deadline is, minus one or not (the edges of "due"). */
static bool driver_edge(struct rng *r, uint64_t *out)
{
    uint64_t lo = model_earliest(), now = model_now();
    if (lo == MODEL_NEVER || lo <= now || lo - now > (uint64_t)INT64_MAX)
        return false;
    *out = lo - now - rng_below(r, 2);
    return true;
}

static int64_t driver_cap(struct rng *r)
{
    uint64_t k = rng_below(r, 100), edge;
    if (k < 10 && !drv.real_clock && driver_edge(r, &edge))
        return (int64_t)edge;
    if (k < 40)
        return -1;
    if (k < 55)
        return 0;
    if (k < 80)
        return (int64_t)(rng_below(r, 60) * drv.tick);
    return (int64_t)rng_below(r, 60 * drv.tick);
}

static int driver_periodic_live(void)
{
    int n = 0;
    for (int i = 0; i < model.ntimers; i++)
        n += model.tok[model.timers[i]].kind == MODEL_EVERY;
    return n;
}

/* A token to cancel or move: often the running one, or a recent one. */
static int driver_target(struct rng *r, int self)
{
    int n = model.ntok;
    if (self >= 0 && rng_below(r, 3) == 0)
        return self;
    if (!n)
        return -1;
    if (rng_below(r, 3) == 0)
        return n - 1 - (int)rng_below(r, (uint64_t)(n < 8 ? n : 8));
    return (int)rng_below(r, (uint64_t)n);
}

static void driver_run(struct rng *r)
{
    if (model_in_callback()) {
        model_run(); /* -EBUSY */
        return;
    }
    /* loop_run must end: a stopper at a finite time that nothing can cancel. */
    uint64_t when = model_sat_add(model_now(), (1 + rng_below(r, 200)) * drv.tick);
    int t = when == MODEL_NEVER ? -1 : model_call_at(when, false);
    if (t < 0) {
        model_run_once(0);
        return;
    }
    dstate.stopper[t] = true;
    model_run();
}

static void driver_run_once(struct rng *r)
{
    int64_t cap = driver_cap(r);
    if (!model_in_callback() && cap < 0) {
        int64_t t = model_timeout(-1);
        /* It would block in real time (virtual clock), or wait for long. */
        if ((t < 0 && !model_fd_ready()) || (drv.real_clock && t > 2000000))
            cap = (int64_t)(rng_below(r, 60) * drv.tick);
    }
    model_run_once(cap);
}

static uint64_t driver_advance(struct rng *r)
{
    uint64_t k = rng_below(r, 200), edge;
    if (k < 60 && driver_edge(r, &edge))
        return edge;
    return k == 199 ? (uint64_t)INT64_MAX : rng_below(r, 80 * drv.tick);
}

/* One random operation; self: the running token, or -1. */
static void driver_action(struct rng *r, int self, int self_reg)
{
    bool inside = model_in_callback();
    if (drv.fd_action && rng_below(r, 100) < drv.fd_share) {
        drv.fd_action(r, self_reg);
        return;
    }
    uint64_t k = rng_below(r, 100);
    if (k < 48 && !inside && model.ntok > MODEL_MAXTOK - 300)
        k = 80; /* out of tokens: run instead */
    if (k < 48 && !driver_spend())
        return;
    if (k < 18)
        model_call_soon(rng_below(r, 5) != 0);
    else if (k < 30)
        model_call_later(driver_delay(r), rng_below(r, 6) != 0);
    else if (k < 41)
        model_call_at(driver_when(r), rng_below(r, 6) != 0);
    else if (k < 45 && driver_periodic_live() < DRIVER_MAXPERIODIC)
        model_call_every(driver_period(r), true);
    else if (k < 48)
        model_post();
    else if (k < 70 && rng_below(r, 4) == 0)
        rng_below(r, 2) ? model_reschedule(driver_target(r, self), driver_delay(r))
                        : model_reschedule_at(driver_target(r, self), driver_when(r));
    else if (k < 70)
        model_cancel(driver_target(r, self));
    else if (k < 72)
        model_cancel_bogus(rng_next(r));
    else if (k < (inside ? 74u : 75u))
        model_stop();
    else if (k < 93)
        driver_run_once(r);
    else if (k < 96 && rng_below(r, 8) == 0)
        rng_below(r, 2) ? model_ref() : model_unref(); /* unref more often than paired */
    else if (k < 96 && inside && rng_below(r, 8) == 0)
        model_free_inside();
    else if (k < 96)
        driver_run(r);
    else if (!drv.real_clock || rng_below(r, 8) == 0)
        model_advance(driver_advance(r));
}

/* ---- what callbacks do ---------------------------------------------------- */

static int driver_nactions(struct rng *r)
{
    uint64_t k = rng_below(r, 16);
    return k < 7 ? 0 : k < 12 ? 1 : k < 15 ? 2 : 3;
}

static void driver_tok_body(int t, int nth)
{
    driver_verify("inside a callback");
    if (dstate.stopper[t]) {
        model_stop();
        return;
    }
    struct rng r = {
        rng_mix(dstate.seed * 0x100000001b3u ^ rng_mix((uint64_t)t << 24 ^ (uint64_t)nth))};
    for (int n = driver_nactions(&r); n > 0; n--)
        driver_action(&r, t, 0);
}

static void driver_io_body(int reg, int fd, unsigned events, int nth)
{
    (void)fd;
    (void)events;
    driver_verify("inside an fd handler");
    struct rng r = {rng_mix(dstate.seed * 0x100000001b3u ^
                            rng_mix((uint64_t)reg << 24 ^ (uint64_t)nth ^ 1ull << 62))};
    for (int n = driver_nactions(&r); n > 0; n--)
        driver_action(&r, -1, reg);
}

/* ---- one seed ----------------------------------------------------------- */

static void *driver_poster(void *arg)
{
    int t = (int)(intptr_t)arg;
    struct rng r = {rng_mix(dstate.seed ^ (uint64_t)t << 50)};
    for (int i = 0; i < DRIVER_POSTS; i++) {
        int rc = model_foreign_post(t);
        if (rc) {
            __atomic_store_n(&dstate.poster_error, rc, __ATOMIC_RELAXED);
            break;
        }
        if (rng_below(&r, 4) == 0)
            sched_yield();
    }
    return NULL;
}

/* After the other threads are joined, the next poll must collect every post left. */
static void driver_join(pthread_t *threads)
{
    for (int t = 0; t < drv.nthreads; t++)
        pthread_join(threads[t], NULL);
    model_foreign_joined();
    if (dstate.poster_error)
        model_fail("loop_call_soon_threadsafe() from another thread returned %d",
                   dstate.poster_error);
    dstate.budget = DRIVER_BUDGET;
    for (uint32_t i = 0; model_foreign_left() && !model.failed && i < model.poll_interval + 3; i++)
        model_run_once(0);
    if (model_foreign_left() && !model.failed)
        model_fail("%" PRIu64 " posts of other threads never ran", model_foreign_left());
}

/* The end of a seed: what is due runs, and every handle is pending exactly
 * when the rules say (cancel says 0 then, -ENOENT otherwise). */
static void driver_finish(struct rng *r)
{
    for (int t = 0; t < model.ntok && !model.failed; t++)
        if (model.tok[t].kind == MODEL_EVERY && model.tok[t].live)
            model_cancel(t);
    dstate.budget = DRIVER_BUDGET;
    uint64_t when = model_sat_add(model_now(), (200 + rng_below(r, 200)) * drv.tick);
    int t = when == MODEL_NEVER ? -1 : model_call_at(when, false);
    if (t >= 0 && !model.failed) {
        dstate.stopper[t] = true;
        model_run();
    }
    for (t = 0; t < model.ntok && !model.failed; t++)
        if (model.tok[t].handle)
            model_cancel(t);
}

static int driver_seed(uint64_t seed, bool trace)
{
    struct rng r = {rng_mix(seed)};
    memset(&dstate, 0, sizeof(dstate));
    dstate.seed = seed;
    dstate.no_verify = getenv("LOOP_MODEL_NO_VERIFY") && *getenv("LOOP_MODEL_NO_VERIFY") == '1';
    loop_options o = {.clock = drv.real_clock ? LOOP_CLOCK_MONOTONIC : LOOP_CLOCK_VIRTUAL,
                      .strict_poll = seed % 2 == 0};
    if (!o.strict_poll)
        o.poll_interval = rng_below(&r, 4) ? (uint32_t)(1 + rng_below(&r, 70)) : 0;
    loop_t *loop;
    int err = loop_new_with(&loop, &o);
    if (err) {
        fprintf(stderr, "model: loop_new_with: %d\n", err);
        return -1;
    }
    struct model_config cfg = {
        .opts = o,
        .readiness = drv.readiness,
        .tok_body = driver_tok_body,
        .io_body = driver_io_body,
        .trace = trace,
        .nthreads = drv.nthreads,
    };
    model_start(loop, &cfg);
    if (trace)
        fprintf(stderr, "seed %" PRIu64 ": %s clock, strict_poll=%d poll_interval=%u\n", seed,
                drv.real_clock ? "real" : "virtual", o.strict_poll, o.poll_interval);
    if (drv.fds_begin)
        drv.fds_begin(&r);
    pthread_t threads[MODEL_MAXTHREADS];
    for (int t = 0; t < drv.nthreads; t++)
        if (pthread_create(&threads[t], NULL, driver_poster, (void *)(intptr_t)t))
            abort();

    for (dstate.step = 0; dstate.step < drv.steps && !model.failed; dstate.step++) {
        dstate.budget = DRIVER_BUDGET;
        if (trace)
            fprintf(stderr, "step %d (now %" PRIu64 ", %d timers, %u queued)\n", dstate.step,
                    model_now(), model.ntimers, model.tail - model.head);
        driver_action(&r, -1, 0);
        driver_verify("after a step");
    }
    if (drv.nthreads)
        driver_join(threads);
    if (!model.failed)
        driver_finish(&r);
    if (drv.fds_end)
        drv.fds_end();
    err = loop_free(loop);
    if (err && !model.failed)
        model_fail("loop_free() returned %d", err);
    if (!model.failed)
        return 0;
    fprintf(stderr, "model: seed %" PRIu64 " FAILED at step %d: %s\n", seed, dstate.step,
            model_failure());
    if (!trace)
        model_print_recent(stderr);
    fprintf(stderr, "  replay: LOOP_MODEL_SEED=%" PRIu64 " ./%s\n", seed, drv.name);
    return -1;
}

/* Run the seeds the environment asks for; fails the cmocka test on any failure. */
static void driver_main(const struct driver *d)
{
    drv = *d;
    const char *one = getenv("LOOP_MODEL_SEED"), *many = getenv("LOOP_MODEL_SEEDS");
    uint64_t first = 1, last = RUNNING_ON_VALGRIND ? drv.valgrind_seeds : drv.seeds;
    if (many && *many)
        last = strtoull(many, NULL, 10);
    if (one && *one)
        first = last = strtoull(one, NULL, 10);
    int failed = 0;
    uint64_t first_failed = 0;
    for (uint64_t seed = first; seed <= last && failed < 3; seed++) {
        if (driver_seed(seed, one && *one) != 0 && !failed++)
            first_failed = seed;
    }
    if (failed)
        fail_msg("%d seed(s) failed, the first is %" PRIu64, failed, first_failed);
    printf("%s: seeds %" PRIu64 "..%" PRIu64 " agree with the reference model\n", drv.name, first,
           last);
}

#endif /* LOOP_TESTS_MODEL_DRIVER_H */
