/*
 * A reference model of one loop, checked in lockstep against the real one.
 *
 * The model is the rules of one iteration as include/loop.h ("One
 * iteration" at the top, and the comment of each function) and README.md
 * ("One iteration") state them, written as plainly as possible: a list of
 * timers searched linearly for the smallest (deadline, schedule order), a
 * ready list, the registrations of fds, the threadsafe posts.  It never
 * looks inside the loop: it sees only what any user sees (return codes,
 * loop_now(), which callback runs with which arguments, the public
 * before/after-poll hooks and loop_stats()).
 *
 * Every operation goes through a model_*() function below, which makes the
 * real call, applies the rule to the model and checks the return code
 * against the model's.  Every callback the loop runs goes through the
 * model's trampolines, which check that the rules allowed exactly that
 * callback at that moment, with that loop_now() (and, for an fd handler,
 * with the events the fd had), before the test's own body runs.  At the end
 * of each iteration every callback the rules put in it must have run
 * (liveness); at the end of each loop_run/loop_run_once the model checks
 * that the call made as many iterations as the rules say.  So the trace the
 * loop produces (each callback with its loop_now(), each return code) is
 * compared step by step with the one the rules allow.
 *
 * What the rules leave open, the model leaves open, and no more:
 *  - The order of fds reported by one poll is the kernel's: within the I/O
 *    part of an iteration any order is accepted, except that an fd's reader
 *    runs before its writer and posts of one thread keep their order.
 *  - Posts from other threads arrive when they arrive: each must run
 *    exactly once, in its thread's order, in the I/O part of an iteration
 *    that polled; once the thread is joined, all that are left must run in
 *    the next iteration that polls.
 *  - Poll skipping (not strict_poll): include/loop.h says an iteration
 *    *may* skip its zero-timeout poll while callbacks are ready and fewer
 *    than poll_interval callbacks ran since the last poll.  The model does
 *    not guess whether it will: it sees each poll through the public
 *    before/after-poll hooks (which run in every iteration: loop_stats()'s
 *    poll count, read in both, tells an iteration that polled from one that
 *    skipped its poll) and each iteration through loop_stats().iterations,
 *    checks that
 *    every skip was allowed (strict_poll allows none), and then predicts the
 *    iteration exactly, as it does one that polled.
 *  - On the real clock (LOOP_CLOCK_MONOTONIC) a deadline counted from a
 *    clock read inside the call (call_later, call_every, reschedule) is
 *    known only to lie between two reads made around it: [lo, hi].  A timer
 *    is certainly due when hi <= loop_now(), maybe due when lo <= loop_now()
 *    < hi; a maybe-due timer may run or not, and one timer must run before
 *    another only when the intervals and the schedule order say so.  Never
 *    early (lo <= loop_now() when it runs) and order are exact; times are
 *    not.  On the virtual clock lo == hi and everything is exact, including
 *    the clock itself after each poll.
 *  - An fd number closed or dup2'd over while watched (which the API
 *    forbids) makes that number's events unknowable until all its handlers
 *    are removed (model_fd_misused): its current handlers may then run in
 *    the I/O part with any events (stale kernel registrations of the
 *    number can even report it twice).
 *
 * Use: define MODEL_IMPLEMENTATION in exactly one file of the program
 * before including this header.
 */
#ifndef LOOP_TESTS_MODEL_H
#define LOOP_TESTS_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "loop.h"

#define MODEL_MAXTOK 4096  /* scheduled callbacks per run of the model */
#define MODEL_MAXREG 4096  /* fd registrations (reader or writer) */
#define MODEL_MAXFD 1024   /* fd numbers the model can follow */
#define MODEL_MAXQ 32768   /* ready-list entries (a power of two) */
#define MODEL_MAXTHREADS 4 /* other threads that post */
#define MODEL_NEVER UINT64_MAX

enum model_kind { MODEL_SOON, MODEL_TIMER, MODEL_EVERY, MODEL_POST };

/* One scheduled callback ("token"). */
struct model_tok {
    uint8_t kind;
    bool live;   /* pending: cancel says 0 (a one-shot stops being live as it starts) */
    bool handle; /* the caller holds h */
    bool armed;  /* on the timer list */
    loop_handle h;
    uint64_t lo, hi; /* its deadline lies in [lo, hi] */
    uint64_t seq;    /* schedule order: ties of equal deadlines */
    uint32_t batch;  /* real clock: re-armed in this phase-4 batch (order within it unknown) */
    uint64_t period;
    uint32_t epoch;  /* bumped when a queued run of it is dropped (reschedule) */
    uint32_t armgen; /* bumped whenever it is armed anew */
    int runs;
};

/* One reader or writer registration. */
struct model_reg {
    int fd;
    unsigned dir; /* LOOP_READABLE or LOOP_WRITABLE */
    bool current; /* not removed, not replaced */
    int runs;
};

/* One entry of the ready list. */
enum { MODEL_E_TOK, MODEL_E_IO, MODEL_E_SIG, MODEL_E_FOREIGN };
enum { MODEL_SEG_PRE, MODEL_SEG_IO, MODEL_SEG_TIMER };

struct model_entry {
    uint8_t type;
    uint8_t seg; /* queued before the poll, by the I/O phase, or by the timer phase */
    bool consumed;
    bool maybe; /* a timer only maybe due (real clock) */
    int id;     /* token, registration, signal generation, or thread */
    uint32_t epoch, armgen;
    unsigned events;      /* an fd dispatch: what the poll reported */
    uint64_t lo, hi, seq; /* a timer: the deadline it was queued for; a post: its number */
    uint32_t batch;
    uint64_t next_seq; /* a maybe-due repeating timer: the order of its re-arm */
};

/* What the model logs: the last ones are printed on a failure. */
struct model_event {
    uint8_t what;
    uint8_t op;
    int id;
    int64_t x, y;
};

struct model_config {
    loop_options opts; /* what the loop was created with */
    /* The events fd has now (LOOP_* bits) for the interest given; NULL: no fds. */
    unsigned (*readiness)(int fd, unsigned interest);
    /* The bodies of callbacks, run after the model checked the call. */
    void (*tok_body)(int tok, int nth);
    void (*io_body)(int reg, int fd, unsigned events, int nth);
    void (*signal_body)(void);
    void (*on_fail)(void); /* after a failure is recorded (the fuzzer aborts) */
    bool trace;            /* print every event as it happens */
    int nthreads;          /* other threads that will post (model_foreign_post) */
    int signo;             /* the signal of model_add_signal */
};

struct model {
    /* Reset for each run of the model (model_start): everything up to tok. */
    struct model_config cfg;
    loop_t *loop;
    bool virtual_clock, strict;
    uint32_t poll_interval;
    uint64_t now, seq;
    uint32_t batch;
    int ntok, ntimers, nreg, nposts;
    int nwatched; /* fds with a handler */
    int maxfd;
    uint32_t head, tail; /* the ready list, free-running indices into q */

    /* The current loop_run / loop_run_once call and iteration. */
    bool in_run, once, iter_open, polled, polling, stop, timer_consumed;
    int64_t cap, timeout;
    uint64_t wait_lo;  /* real clock: the poll may not end before this with nothing ready */
    uint64_t wait_for; /* real clock: the earliest deadline the poll waited for (0: none) */
    uint64_t armed_lo; /* a deadline an earlier wait may have left armed (0: none) */
    uint64_t snap_now;
    uint32_t refs;
    uint64_t iters;        /* iterations begun, as loop_stats() counts them */
    uint64_t polls_before; /* loop_stats().polls in this iteration's before-poll hook */
    int iters_in_call;
    uint32_t runs_since_poll;
    uint32_t io_start, timer_start, snap_end, scan;
    int depth; /* callbacks running */

    bool sig_registered, sig_pending;
    uint32_t sig_gen;

    uint64_t fran[MODEL_MAXTHREADS];    /* posts of each other thread that ran */
    uint64_t fposted[MODEL_MAXTHREADS]; /* written by that thread only */
    uint64_t fqueued[MODEL_MAXTHREADS]; /* known to be in the ready list */
    bool fjoined;
    bool stale_wake; /* the first poll after the join may be woken by a late eventfd write */

    bool may_fail; /* allocations may fail now: -ENOMEM is a legal answer */
    bool failed, desync;
    bool poll_failed; /* a poll's queues could not grow: the run must say -ENOMEM */
    char failure[768];
    struct model_event ev[48];
    uint64_t nev;

    int cur[MODEL_MAXFD][2]; /* current registration by fd and direction; 0: none */
    bool misused[MODEL_MAXFD];

    /* Filled as used. */
    struct model_tok tok[MODEL_MAXTOK];
    int timers[MODEL_MAXTOK];           /* armed tokens, unordered */
    struct model_reg reg[MODEL_MAXREG]; /* ids from 1 */
    int posts[MODEL_MAXTOK];            /* this thread's posts not yet collected, in order */
    struct model_entry q[MODEL_MAXQ];
};

extern struct model model;

/* Start following loop (just created, nothing scheduled); installs the poll hooks. */
void model_start(loop_t *loop, const struct model_config *cfg);
/* The first rule found broken, or NULL. */
const char *model_failure(void);
/* Print the last events (what led to the failure). */
void model_print_recent(FILE *f);
/* Record a failure found by the caller, with the model's context. */
void model_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Scheduling: each returns the new token, or -1 if none was made. */
int model_call_soon(bool handle);
int model_call_later(uint64_t delay, bool handle);
int model_call_at(uint64_t when, bool handle);
int model_call_every(uint64_t period, bool handle);
int model_post(void); /* loop_call_soon_threadsafe from this thread */
/* Each returns what the loop returned (checked against the model). */
int model_cancel(int tok); /* tok -1: the {0} handle */
int model_cancel_bogus(uint64_t bits);
int model_reschedule(int tok, uint64_t delay);
int model_reschedule_at(int tok, uint64_t when);
void model_ref(void);
void model_unref(void);
void model_stop(void);
int model_advance(uint64_t ns);
int model_run_once(int64_t cap);
int model_run(void);
int model_free_inside(void); /* loop_free from a callback: -EBUSY */

/* fds: model_add returns the registration, or -1. */
int model_add(int fd, unsigned dir);
int model_remove(int fd, unsigned dir);
/* fd is about to be closed or dup2'd over while maybe watched. */
void model_fd_misused(int fd);

/* Signals (cfg.signo). */
int model_add_signal(void);
int model_remove_signal(void);
void model_raise(void);

/* Posts from other threads: model_foreign_post may be called from thread t
 * (0 <= t < cfg.nthreads) at any time; model_foreign_joined once all of
 * them have returned. */
int model_foreign_post(int t);
void model_foreign_joined(void);
uint64_t model_foreign_left(void);

/* What the next uncapped iteration would do: its timeout (-1: block), and
 * whether an fd is ready (then it does not block). */
int64_t model_timeout(int64_t cap);
bool model_fd_ready(void);
bool model_alive(void);
uint64_t model_now(void);
bool model_in_callback(void);

#ifdef MODEL_IMPLEMENTATION
#include "model_engine.h"
#include "model_check.h"
#include "model_ops.h"
#endif

#endif /* LOOP_TESTS_MODEL_H */
