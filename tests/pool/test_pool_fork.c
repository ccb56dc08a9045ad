/*
 * fork with a running pool: the child has none of its threads, so its
 * copy of the pool cancels the futures of the jobs outstanding at the
 * fork, refuses new work with -ECHILD, and never touches the eventfd it
 * shares with the parent; loop_pool_default() gives the child a new pool.
 * The parent's jobs run once, in the parent, and complete there.
 *
 * The child reports with its exit status: 0, or the line of the first
 * check that failed.
 */
#include "pool_testing.h"

#include "fdleak.h"
#include "watchdog.h"

#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#define CHILD_CHECK(cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            _exit(__LINE__ % 250 + 1);                                                             \
    } while (0)

static volatile pid_t the_child;

/* If the watchdog fires, no child outlives the suite. */
static void kill_the_child(void)
{
    if (the_child > 0)
        kill(the_child, SIGKILL);
}

static int forty_two(void *arg, void **result)
{
    (void)arg;
    *result = (void *)42;
    return 0;
}

struct at_fork {
    loop_t *loop;
    loop_pool *pool;
    loop_future *running, *finished;
    struct gated *xr, *xf, *xc; /* xc: a loop_pool_call job, running at the fork */
};

static void child(const struct at_fork *a)
{
    CHILD_CHECK(loop_fork(a->loop) == 0);
    /* The parent's finished job left the eventfd readable: the child's
     * loop sees it, and must leave it to the parent. */
    CHILD_CHECK(loop_run_once(a->loop, 0) == 0);
    CHILD_CHECK(loop_future_state(a->running) == LOOP_FUTURE_CANCELLED);
    CHILD_CHECK(loop_future_state(a->finished) == LOOP_FUTURE_CANCELLED);
    CHILD_CHECK(atomic_load(&a->xr->dropped) == 1 && a->xr->dropped_result == NULL);
    CHILD_CHECK(atomic_load(&a->xf->dropped) == 1 && a->xf->dropped_result == NULL);
    CHILD_CHECK(atomic_load(&a->xc->called->calls) == 1 && a->xc->called->status == -ECANCELED &&
                a->xc->called->result == NULL);
    loop_future *f = (loop_future *)&f;
    CHILD_CHECK(loop_pool_submit(a->pool, forty_two, NULL, &f) == -ECHILD && f == NULL);
    loop_pool_stats_t st;
    CHILD_CHECK(loop_pool_stats(a->pool, &st) == -ECHILD);
    CHILD_CHECK(loop_pool_shutdown(a->pool, LOOP_POOL_WAIT, NULL) == -ECHILD);
    loop_pool *fresh = NULL;
    CHILD_CHECK(loop_pool_default(a->loop, &fresh) == 0 && fresh != NULL);
#ifndef UNDER_TSAN /* TSan does not let a child of a threaded process start threads */
    CHILD_CHECK(loop_pool_submit(fresh, forty_two, NULL, &f) == 0);
    void *r = NULL;
    CHILD_CHECK(loop_run_until_complete(a->loop, f, &r) == 0 && r == (void *)42);
    loop_future_unref(f);
#endif
    loop_future_unref(a->running);
    loop_future_unref(a->finished);
    CHILD_CHECK(loop_free(a->loop) == 0);
    _exit(0);
}

static bool one_idle_two_running(void *arg)
{
    loop_pool_stats_t s = pool_stats(arg);
    return s.threads == 3 && s.idle == 1 && s.queued == 0;
}

static void test_a_child_cancels_what_was_outstanding_and_the_parent_runs_it_once(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = NULL;
    assert_int_equal(loop_pool_default(l, &p), 0);
    struct gate g;
    gate_init(&g);
    struct called c = {0};
    struct gated xr = {.gate = &g, .result = &xr}, xf = {.result = &xf};
    struct gated xc = {.gate = &g, .result = &xc, .called = &c};
    struct at_fork a = {.loop = l, .pool = p, .xr = &xr, .xf = &xf, .xc = &xc};
    a.running = submit(p, &xr);
    assert_int_equal(loop_pool_call(p, gated_job, &xc, 0, called_done), 0);
    gate_wait_started(&g, 2);
    a.finished = submit(p, &xf);
    wait_until(one_idle_two_running, p, "the third job to finish");
    wait_loop_readable(l); /* the eventfd the child will see was written */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child(&a);
    the_child = pid;
    int status = 0;
    watchdog_start("the child to exit, and the parent's jobs", POOL_TEST_DEADLINE_S);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent: nothing was cancelled or stolen here. */
    void *r = NULL;
    assert_int_equal(loop_run_until_complete(l, a.finished, &r), 0);
    assert_ptr_equal(r, &xf);
    gate_open(&g);
    assert_int_equal(loop_run_until_complete(l, a.running, &r), 0);
    assert_ptr_equal(r, &xr);
    while (atomic_load(&c.calls) == 0)
        assert_int_equal(loop_run_once(l, -1), 0);
    watchdog_stop();
    assert_int_equal(c.status, 0); /* the parent's call job ran, once, here */
    assert_ptr_equal(c.result, &xc);
    assert_int_equal(atomic_load(&xr.ran) + atomic_load(&xf.ran) + atomic_load(&xc.ran), 3);
    assert_int_equal(atomic_load(&xr.dropped) + atomic_load(&xf.dropped), 0);
    loop_future_unref(a.running);
    loop_future_unref(a.finished);
    loop_free(l);
    gate_destroy(&g);
}

static void test_a_child_can_free_an_inherited_pool_without_joining(void **s)
{
    (void)s;
    static struct counting_alloc a; /* the pool's threads never allocate */
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
    loop_pool *p = new_pool(l, 1);
    struct gate g;
    gate_init(&g);
    struct gated x = {.gate = &g};
    loop_future *f = submit(p, &x);
    gate_wait_started(&g, 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        CHILD_CHECK(loop_fork(l) == 0);
        CHILD_CHECK(loop_pool_free(p) == 0); /* would hang if it joined */
        CHILD_CHECK(loop_future_state(f) == LOOP_FUTURE_CANCELLED);
        loop_future_unref(f);
        CHILD_CHECK(loop_free(l) == 0);
        CHILD_CHECK(a.live_blocks == 0 && a.bad_frees == 0); /* the records of the job too */
        _exit(0);
    }
    the_child = pid;
    int status = 0;
    watchdog_start("the child to exit", POOL_TEST_DEADLINE_S);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    watchdog_stop();
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    gate_open(&g);
    assert_int_equal(loop_run_until_complete(l, f, NULL), 0);
    loop_future_unref(f);
    loop_pool_free(p);
    loop_free(l);
    assert_int_equal(a.live_blocks, 0);
    gate_destroy(&g);
}

int main(void)
{
    watchdog_on_fire(kill_the_child);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_child_cancels_what_was_outstanding_and_the_parent_runs_it_once),
        cmocka_unit_test(test_a_child_can_free_an_inherited_pool_without_joining),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
