/*
 * Signals: loop_add_signal() and loop_remove_signal().  The callback runs
 * on the loop thread, never in signal context, whichever thread the kernel
 * delivers the signal to; bad numbers are -EINVAL, a signal owned by
 * another loop is -EBUSY, removing one not handled is -ENOENT; removal and
 * loop_free() restore the previous disposition; deliveries between two
 * iterations coalesce into one run; a signal wakes a blocked loop.
 */
#include "fixtures.h"
#include "sockets.h"
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

/* What one run of a signal callback saw. */
struct seen {
    int runs;
    pthread_t thread;
    int blocked_in_mask; /* the signal was blocked: we were inside its handler */
    int signo;
    int stop;
};

static void seen_cb(loop_t *loop, void *arg)
{
    struct seen *s = arg;
    s->runs++;
    s->thread = pthread_self();
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    s->blocked_in_mask = sigismember(&cur, s->signo);
    /* Not async-signal-safe, and fine here: this is not a signal handler. */
    void *p = malloc(64);
    assert_non_null(p);
    free(p);
    if (s->stop)
        loop_stop(loop);
}

/*
 * The kernel reports SA_RESTORER for a disposition set through glibc (it
 * supplies the return trampoline) but not for one inherited untouched, so
 * a default restored by sigaction() differs in that bit alone.
 */
#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

static void assert_same_disposition(const struct sigaction *a, const struct sigaction *b)
{
    if (a->sa_handler != b->sa_handler)
        fail_msg("handler %p != %p", (void *)(uintptr_t)a->sa_handler,
                 (void *)(uintptr_t)b->sa_handler);
    assert_int_equal(a->sa_flags & ~SA_RESTORER, b->sa_flags & ~SA_RESTORER);
    /* The mask only matters to a handler (and ThreadSanitizer reports a
     * stale one for SIG_DFL). */
    if (a->sa_handler == SIG_DFL || a->sa_handler == SIG_IGN)
        return;
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&a->sa_mask, s) != sigismember(&b->sa_mask, s))
            fail_msg("sa_mask differs for signal %d", s);
}

static void query(int signo, struct sigaction *out)
{
    memset(out, 0, sizeof(*out));
    assert_int_equal(sigaction(signo, NULL, out), 0);
}

/* A handler of the program's own, to see that it comes back. */
static volatile sig_atomic_t own_handler_runs;

static void own_handler(int signo)
{
    (void)signo;
    own_handler_runs++;
}

/* ---- argument checks ------------------------------------------------- */

static void test_bad_numbers_sigkill_sigstop_and_fault_signals_are_einval(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int runs = 0;
    const int bad[] = {0,       -1,      -SIGUSR1, NSIG,   65,     1000,
                       SIGKILL, SIGSTOP, SIGSEGV,  SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sigaction before, after;
        if (bad[i] > 0 && bad[i] < NSIG)
            query(bad[i], &before);
        if (loop_add_signal(l, bad[i], count_cb, &runs) != -EINVAL)
            fail_msg("loop_add_signal(%d) is not -EINVAL", bad[i]);
        if (bad[i] > 0 && bad[i] < NSIG) {
            query(bad[i], &after);
            assert_same_disposition(&before, &after);
        }
    }
    /* Nothing registered: nothing keeps the loop alive. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_null_loop_or_fn_is_einval(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int runs = 0;
    assert_int_equal(loop_add_signal(NULL, SIGUSR1, count_cb, &runs), -EINVAL);
    assert_int_equal(loop_add_signal(l, SIGUSR1, NULL, &runs), -EINVAL);
    assert_int_equal(loop_remove_signal(NULL, SIGUSR1), -EINVAL);
    assert_int_equal(loop_free(l), 0);
}

static void test_removing_a_signal_not_handled_is_enoent_and_a_bad_number_einval(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int runs = 0;
    assert_int_equal(loop_remove_signal(l, SIGUSR1), -ENOENT);
    assert_int_equal(loop_remove_signal(l, 0), -EINVAL);
    assert_int_equal(loop_remove_signal(l, 1000), -EINVAL);
    assert_int_equal(loop_remove_signal(l, -1), -EINVAL);

    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &runs), 0);
    assert_int_equal(loop_remove_signal(l, SIGUSR2), -ENOENT);
    assert_int_equal(loop_remove_signal(l, SIGUSR1), 0);
    assert_int_equal(loop_remove_signal(l, SIGUSR1), -ENOENT);
    assert_int_equal(loop_free(l), 0);
}

static void test_a_signal_owned_by_another_loop_is_ebusy_until_released(void **state)
{
    (void)state;
    loop_t *a = new_real_loop(), *b = new_real_loop();
    int runs_a = 0, runs_b = 0;
    assert_int_equal(loop_add_signal(a, SIGUSR1, count_cb, &runs_a), 0);
    assert_int_equal(loop_add_signal(b, SIGUSR1, count_cb, &runs_b), -EBUSY);
    /* b does not own it: removing it there is -ENOENT and changes nothing. */
    assert_int_equal(loop_remove_signal(b, SIGUSR1), -ENOENT);

    raise(SIGUSR1);
    assert_int_equal(loop_run_once(a, -1), 0);
    assert_int_equal(runs_a, 1);

    /* Released by loop_remove_signal ... */
    assert_int_equal(loop_remove_signal(a, SIGUSR1), 0);
    assert_int_equal(loop_add_signal(b, SIGUSR1, count_cb, &runs_b), 0);
    assert_int_equal(loop_add_signal(a, SIGUSR1, count_cb, &runs_a), -EBUSY);
    raise(SIGUSR1);
    assert_int_equal(loop_run_once(b, -1), 0);
    assert_int_equal(runs_b, 1);

    /* ... and by loop_free. */
    assert_int_equal(loop_free(b), 0);
    assert_int_equal(loop_add_signal(a, SIGUSR1, count_cb, &runs_a), 0);
    assert_int_equal(loop_free(a), 0);
    assert_int_equal(runs_a, 1);
}

/* ---- dispositions ------------------------------------------------------ */

static void test_remove_restores_the_previous_disposition(void **state)
{
    (void)state;
    struct sigaction mine, orig, during, after;
    query(SIGUSR1, &orig);

    /* A handler of our own, with flags and a mask of its own. */
    memset(&mine, 0, sizeof(mine));
    mine.sa_handler = own_handler;
    mine.sa_flags = SA_NODEFER;
    sigemptyset(&mine.sa_mask);
    sigaddset(&mine.sa_mask, SIGUSR2);
    assert_int_equal(sigaction(SIGUSR1, &mine, NULL), 0);
    struct sigaction installed;
    query(SIGUSR1, &installed);

    loop_t *l = new_real_loop();
    int runs = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &runs), 0);
    query(SIGUSR1, &during);
    assert_true(during.sa_handler != own_handler);
    assert_int_equal(loop_remove_signal(l, SIGUSR1), 0);
    query(SIGUSR1, &after);
    assert_same_disposition(&installed, &after);

    /* Ours runs again, and the loop's callback does not. */
    own_handler_runs = 0;
    raise(SIGUSR1);
    assert_int_equal(own_handler_runs, 1);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(runs, 0);

    /* SIG_IGN comes back as SIG_IGN. */
    assert_int_equal(signal(SIGUSR2, SIG_IGN) != SIG_ERR, 1);
    assert_int_equal(loop_add_signal(l, SIGUSR2, count_cb, &runs), 0);
    assert_int_equal(loop_remove_signal(l, SIGUSR2), 0);
    query(SIGUSR2, &after);
    assert_true(after.sa_handler == SIG_IGN);

    assert_int_equal(loop_free(l), 0);
    assert_int_equal(sigaction(SIGUSR1, &orig, NULL), 0);
    signal(SIGUSR2, SIG_DFL);
}

static void test_free_restores_the_previous_disposition_of_every_signal(void **state)
{
    (void)state;
    const int sigs[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGTERM, SIGINT, SIGWINCH, SIGCHLD};
    enum { N = sizeof(sigs) / sizeof(sigs[0]) };
    struct sigaction before[N], after;

    /* One with our handler, one ignored, the rest default. */
    struct sigaction mine;
    memset(&mine, 0, sizeof(mine));
    mine.sa_handler = own_handler;
    assert_int_equal(sigaction(SIGHUP, &mine, NULL), 0);
    signal(SIGWINCH, SIG_IGN);
    for (int i = 0; i < N; i++)
        query(sigs[i], &before[i]);

    loop_t *l = new_real_loop();
    int runs = 0;
    for (int i = 0; i < N; i++)
        assert_int_equal(loop_add_signal(l, sigs[i], count_cb, &runs), 0);
    assert_int_equal(loop_free(l), 0);
    for (int i = 0; i < N; i++) {
        query(sigs[i], &after);
        assert_same_disposition(&before[i], &after);
    }
    signal(SIGHUP, SIG_DFL);
    signal(SIGWINCH, SIG_DFL);
}

/* ---- delivery ------------------------------------------------------------ */

static void test_callback_runs_on_the_loop_thread_outside_signal_context(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct seen s = {.signo = SIGUSR1};
    assert_int_equal(loop_add_signal(l, SIGUSR1, seen_cb, &s), 0);
    raise(SIGUSR1); /* its handler has run when raise returns */
    assert_int_equal(s.runs, 0);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(s.runs, 1);
    assert_true(pthread_equal(s.thread, pthread_self()));
    assert_int_equal(s.blocked_in_mask, 0);
    assert_int_equal(loop_free(l), 0);
}

struct sender {
    pid_t loop_tid;
    int signo;
    int to_self; /* 1: deliver to this thread (pthread_kill); 0: to the process */
};

/* Wait until the loop thread blocks in its poll, then send the signal. */
static void *sender_main(void *arg)
{
    struct sender *s = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, s->signo);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* a new thread inherits its creator's mask */
    wait_until_blocked(s->loop_tid);
    if (s->to_self)
        pthread_kill(pthread_self(), s->signo);
    else
        kill(getpid(), s->signo);
    return NULL;
}

static void run_until_signalled(int to_self, bool masked_here, const char *what)
{
    loop_t *l = new_real_loop();
    struct seen s = {.signo = SIGUSR1, .stop = 1};
    /* The signal alone keeps the loop alive: no ref, no timer, no fd. */
    assert_int_equal(loop_add_signal(l, SIGUSR1, seen_cb, &s), 0);
    struct sender snd = {test_gettid(), SIGUSR1, to_self};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sender_main, &snd), 0);
    watchdog_start(what, 60);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(s.runs, 1);
    assert_true(pthread_equal(s.thread, pthread_self()));
    assert_int_equal(s.blocked_in_mask, masked_here); /* not the handler's mask */

    loop_stats_t st;
    assert_int_equal(loop_stats(l, &st), 0);
    assert_true(st.polls >= 1);
    assert_int_equal(loop_free(l), 0);
}

static void test_signal_arriving_while_the_loop_blocks_is_handled(void **state)
{
    (void)state;
    run_until_signalled(0, false, "SIGUSR1 sent to the process while the loop was blocked");
}

static void test_signal_delivered_to_another_thread_runs_on_the_loop_thread(void **state)
{
    (void)state;
    /* The other thread does not block the signal, and it is the one the
     * kernel runs the handler on. */
    run_until_signalled(1, false, "SIGUSR1 delivered to another thread");
}

static void test_signal_blocked_in_the_loop_thread_is_still_handled(void **state)
{
    (void)state;
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);
    /* Only the sender thread can take it now. */
    run_until_signalled(0, true, "SIGUSR1 blocked in the loop thread, sent to the process");
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

static void test_deliveries_between_two_iterations_coalesce_into_one_run(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int runs = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &runs), 0);
    for (int i = 0; i < 5; i++)
        raise(SIGUSR1);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(runs, 1);
    /* Nothing is left over for later iterations. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(runs, 1);

    /* The next delivery is the next run. */
    raise(SIGUSR1);
    raise(SIGUSR1);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(runs, 2);
    assert_int_equal(loop_free(l), 0);
}

static void test_readding_on_the_same_loop_replaces_fn_and_arg(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int first = 0, second = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &first), 0);
    assert_int_equal(loop_add_signal(l, SIGUSR1, stop_cb, &second), 0);
    raise(SIGUSR1);
    watchdog_start("SIGUSR1 after re-adding", 60);
    assert_int_equal(loop_run(l), 0);
    watchdog_stop();
    assert_int_equal(first, 0);
    assert_int_equal(second, 1);
    assert_int_equal(loop_free(l), 0);
}

struct readd_ctx {
    int first, second;
};

static void first_cb(loop_t *loop, void *arg)
{
    (void)loop;
    ((struct readd_ctx *)arg)->first++;
}

static void second_cb(loop_t *loop, void *arg)
{
    (void)loop;
    ((struct readd_ctx *)arg)->second++;
}

static void raise_cb(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    raise(SIGUSR1);
}

static void readd_cb(loop_t *loop, void *arg)
{
    assert_int_equal(loop_add_signal(loop, SIGUSR1, second_cb, arg), 0);
}

static void test_readding_a_signal_keeps_a_run_already_queued(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){.strict_poll = true});
    struct readd_ctx c = {0, 0};
    assert_int_equal(loop_add_signal(l, SIGUSR1, first_cb, &c), 0);
    assert_int_equal(loop_call_soon(l, raise_cb, NULL, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* the signal arrives */
    /* Next iteration: readd_cb is ready before the poll, the poll queues the
     * signal's run behind it, so the re-add happens with that run queued. */
    assert_int_equal(loop_call_soon(l, readd_cb, &c, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.first, 0);
    assert_int_equal(c.second, 1); /* the delivery ran once, with the new callback */
    assert_int_equal(loop_remove_signal(l, SIGUSR1), 0);
    assert_int_equal(loop_free(l), 0);
}

/*
 * Order within one iteration: callbacks queued in the previous iteration run
 * before I/O-phase dispatches (signals are collected there), so `remover`
 * runs just before the dispatch of the signal raised one iteration earlier.
 */
struct remove_ctx {
    int runs;
    int remove_result;
};

static void remover_cb(loop_t *loop, void *arg)
{
    struct remove_ctx *c = arg;
    c->remove_result = loop_remove_signal(loop, SIGUSR1);
}

static void raise_then_queue_remover_cb(loop_t *loop, void *arg)
{
    raise(SIGUSR1);
    assert_int_equal(loop_call_soon(loop, remover_cb, arg, NULL), 0);
}

static void sig_count_cb(loop_t *loop, void *arg)
{
    (void)loop;
    ((struct remove_ctx *)arg)->runs++;
}

static void test_remove_drops_a_run_already_queued(void **state)
{
    (void)state;
    /* Strict: every iteration polls, so collects the signal. */
    loop_t *l = new_loop_with((loop_options){.strict_poll = true});
    struct remove_ctx c = {0, -1};
    struct sigaction before;
    query(SIGUSR1, &before);
    assert_int_equal(loop_add_signal(l, SIGUSR1, sig_count_cb, &c), 0);
    assert_int_equal(loop_call_soon(l, raise_then_queue_remover_cb, &c, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* raises, queues remover */
    assert_int_equal(loop_run_once(l, 0), 0); /* remover, then the signal's dispatch */
    assert_int_equal(c.remove_result, 0);
    assert_int_equal(c.runs, 0);
    assert_int_equal(loop_run(l), 0); /* nothing left: returns */
    assert_int_equal(c.runs, 0);
    struct sigaction after;
    query(SIGUSR1, &after);
    assert_same_disposition(&before, &after);
    assert_int_equal(loop_free(l), 0);
}

static void remove_self_cb(loop_t *loop, void *arg)
{
    (*(int *)arg)++;
    assert_int_equal(loop_remove_signal(loop, SIGUSR2), 0);
}

static void test_a_callback_may_remove_its_own_signal_and_the_loop_then_ends(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int runs = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR2, remove_self_cb, &runs), 0);
    raise(SIGUSR2);
    watchdog_start("SIGUSR2 removing itself", 60);
    assert_int_equal(loop_run(l), 0); /* returns once nothing is registered */
    watchdog_stop();
    assert_int_equal(runs, 1);
    assert_int_equal(loop_free(l), 0);
}

/* A signal that arrives while its own callback runs. */
static void raise_again_cb(loop_t *loop, void *arg)
{
    (void)loop;
    int *runs = arg;
    if (++*runs == 1)
        raise(SIGUSR1);
}

static void test_a_signal_arriving_during_its_callback_runs_it_again_later(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int runs = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR1, raise_again_cb, &runs), 0);
    raise(SIGUSR1);
    assert_int_equal(loop_run_once(l, -1), 0);
    assert_int_equal(runs, 1); /* not again within the same iteration */
    watchdog_start("a signal raised by its own callback", 60);
    assert_int_equal(loop_run_once(l, -1), 0);
    watchdog_stop();
    assert_int_equal(runs, 2);
    assert_int_equal(loop_free(l), 0);
}

/* Two loops, two threads, two signals: each runs only its own callback. */
struct thread_loop {
    loop_t *loop;
    int signo;
    struct seen seen;
    pid_t tid;
    pthread_barrier_t *ready;
    int run_result;
};

static void *thread_loop_main(void *arg)
{
    struct thread_loop *t = arg;
    t->tid = test_gettid();
    t->seen.signo = t->signo;
    t->seen.stop = 1;
    t->run_result = loop_add_signal(t->loop, t->signo, seen_cb, &t->seen);
    pthread_barrier_wait(t->ready);
    if (!t->run_result)
        t->run_result = loop_run(t->loop);
    return NULL;
}

static void test_two_loops_in_two_threads_each_run_their_own_signal(void **state)
{
    (void)state;
    pthread_barrier_t ready;
    assert_int_equal(pthread_barrier_init(&ready, NULL, 3), 0);
    struct thread_loop t[2] = {{.signo = SIGUSR1, .ready = &ready},
                               {.signo = SIGUSR2, .ready = &ready}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        t[i].loop = new_real_loop();
        assert_int_equal(pthread_create(&th[i], NULL, thread_loop_main, &t[i]), 0);
    }
    pthread_barrier_wait(&ready);
    watchdog_start("two loops, each waiting for its signal", 60);
    /* A thread whose loop_add_signal failed runs no loop: don't wait for it. */
    for (int i = 0; i < 2; i++) {
        if (t[i].run_result == 0) {
            wait_until_blocked(t[i].tid);
            kill(getpid(), t[i].signo);
        }
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    watchdog_stop();
    for (int i = 0; i < 2; i++) {
        assert_int_equal(t[i].run_result, 0);
        assert_int_equal(t[i].seen.runs, 1);
        assert_true(pthread_equal(t[i].seen.thread, th[i]));
        assert_int_equal(loop_free(t[i].loop), 0);
    }
    pthread_barrier_destroy(&ready);
}

static void test_loop_fd_is_readable_after_a_signal_arrives(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int runs = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR1, count_cb, &runs), 0);
    assert_false(fd_readable(loop_fd(l)));
    raise(SIGUSR1);
    assert_true(fd_readable(loop_fd(l)));
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(runs, 1);
    assert_false(fd_readable(loop_fd(l)));
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_numbers_sigkill_sigstop_and_fault_signals_are_einval),
        cmocka_unit_test(test_null_loop_or_fn_is_einval),
        cmocka_unit_test(test_removing_a_signal_not_handled_is_enoent_and_a_bad_number_einval),
        cmocka_unit_test(test_a_signal_owned_by_another_loop_is_ebusy_until_released),
        cmocka_unit_test(test_remove_restores_the_previous_disposition),
        cmocka_unit_test(test_free_restores_the_previous_disposition_of_every_signal),
        cmocka_unit_test(test_callback_runs_on_the_loop_thread_outside_signal_context),
        cmocka_unit_test(test_signal_arriving_while_the_loop_blocks_is_handled),
        cmocka_unit_test(test_signal_delivered_to_another_thread_runs_on_the_loop_thread),
        cmocka_unit_test(test_signal_blocked_in_the_loop_thread_is_still_handled),
        cmocka_unit_test(test_deliveries_between_two_iterations_coalesce_into_one_run),
        cmocka_unit_test(test_readding_a_signal_keeps_a_run_already_queued),
        cmocka_unit_test(test_readding_on_the_same_loop_replaces_fn_and_arg),
        cmocka_unit_test(test_remove_drops_a_run_already_queued),
        cmocka_unit_test(test_a_callback_may_remove_its_own_signal_and_the_loop_then_ends),
        cmocka_unit_test(test_a_signal_arriving_during_its_callback_runs_it_again_later),
        cmocka_unit_test(test_two_loops_in_two_threads_each_run_their_own_signal),
        cmocka_unit_test(test_loop_fd_is_readable_after_a_signal_arrives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
