/*
 * stop_on_signals in threads mode: SIGTERM or SIGINT, whichever thread the
 * kernel gives it to, makes the supervisor stop the workers gracefully;
 * the worker threads run with both blocked; the signals belong to the
 * group only while it lives, and not at all if another loop has them.
 */
#include "workers_testing.h"

#define N 2

struct run {
    int signo; /* what a worker raises once every worker is ready */
    int ready; /* atomic */
    int drains[N], teardowns[N];
    int blocked[N]; /* SIGTERM and SIGINT were blocked on the worker thread */
};

static void raise_it(loop_t *loop, void *arg)
{
    struct run *r = arg;
    (void)loop;
    kill(getpid(), r->signo); /* to the process: the kernel picks the thread */
}

static int note_mask(loop_t *loop, unsigned index, void *arg)
{
    struct run *r = arg;
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    r->blocked[index] = sigismember(&mask, SIGTERM) && sigismember(&mask, SIGINT);
    if (__atomic_add_fetch(&r->ready, 1, __ATOMIC_ACQ_REL) == N)
        assert_int_equal(loop_call_soon(loop, raise_it, r, NULL), 0);
    return 0;
}

static void count_drain(loop_t *loop, unsigned index, void *arg)
{
    struct run *r = arg;
    (void)loop;
    r->drains[index]++;
}

static void count_teardown(loop_t *loop, unsigned index, void *arg)
{
    struct run *r = arg;
    (void)loop;
    r->teardowns[index]++;
}

static void stop_on(int signo)
{
    struct run r = {.signo = signo};
    loop_workers_options o = {.mode = LOOP_WORKERS_THREADS,
                              .count = N,
                              .setup = note_mask,
                              .drain = count_drain,
                              .teardown = count_teardown,
                              .stop_on_signals = true,
                              .arg = &r};
    loop_workers *w = NULL;

    assert_ptr_equal(disposition(signo), SIG_DFL);
    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_ptr_not_equal(disposition(signo), SIG_DFL);
    assert_int_equal(loop_workers_wait(w), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r.drains[i], 1);
        assert_int_equal(r.teardowns[i], 1);
        assert_true(r.blocked[i]);
    }
    assert_int_equal(loop_workers_free(w), 0);
    assert_ptr_equal(disposition(signo), SIG_DFL); /* given back */
}

static void test_sigterm_stops_the_workers_gracefully(void **state)
{
    (void)state;
    stop_on(SIGTERM);
}

static void test_sigint_stops_the_workers_gracefully(void **state)
{
    (void)state;
    stop_on(SIGINT);
}

static int plain_setup(loop_t *loop, unsigned index, void *arg)
{
    int *unblocked = arg;
    sigset_t mask;
    (void)loop;
    (void)index;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    if (!sigismember(&mask, SIGTERM))
        __atomic_add_fetch(unblocked, 1, __ATOMIC_RELAXED);
    return 0;
}

static void test_without_stop_on_signals_the_signals_are_left_alone(void **state)
{
    (void)state;
    int unblocked = 0;
    loop_workers_options o = {
        .mode = LOOP_WORKERS_THREADS, .count = N, .setup = plain_setup, .arg = &unblocked};
    loop_workers *w = NULL;

    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_ptr_equal(disposition(SIGTERM), SIG_DFL);
    assert_ptr_equal(disposition(SIGINT), SIG_DFL);
    assert_int_equal(loop_workers_free(w), 0);
    assert_int_equal(unblocked, N);
}

static void test_stop_on_signals_is_ebusy_while_another_loop_owns_sigterm(void **state)
{
    (void)state;
    int unblocked = 0;
    loop_workers_options o = {.mode = LOOP_WORKERS_THREADS,
                              .count = N,
                              .setup = plain_setup,
                              .stop_on_signals = true,
                              .arg = &unblocked};
    loop_workers *w = (loop_workers *)&o;
    loop_t *l = new_real_loop();

    assert_int_equal(loop_add_signal(l, SIGTERM, nop_cb, NULL), 0);
    assert_int_equal(loop_workers_start(&w, &o), -EBUSY);
    assert_null(w);
    assert_int_equal(unblocked, 0); /* no worker started */
    assert_int_equal(extra_threads_settled(), 0);
    assert_int_equal(loop_free(l), 0);
    assert_ptr_equal(disposition(SIGINT), SIG_DFL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_stops_the_workers_gracefully),
        cmocka_unit_test(test_sigint_stops_the_workers_gracefully),
        cmocka_unit_test(test_without_stop_on_signals_the_signals_are_left_alone),
        cmocka_unit_test(test_stop_on_signals_is_ebusy_while_another_loop_owns_sigterm),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, threads_suite_setup, NULL);
}
