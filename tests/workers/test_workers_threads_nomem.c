/*
 * Threads mode under failure and contention: every allocation of a start,
 * a run with posts and a stop is failed in turn (each failure is -ENOMEM
 * from the call that met it, and nothing is left: memory, fds, threads);
 * and posts from other threads racing with a worker's end either run
 * exactly once or are refused with -ESHUTDOWN.
 */
#include "workers_testing.h"

#define N 2

struct prog {
    int setups[N], teardowns[N]; /* atomic */
    int ran;                     /* posted calls that ran (atomic) */
};

static int prog_setup(loop_t *loop, unsigned index, void *arg)
{
    struct prog *p = arg;
    /* Something of its own on the loop, so that setup can fail too. */
    int err = loop_call_later(loop, LOOP_SEC(3600), nop_cb, NULL, NULL);
    if (!err)
        __atomic_add_fetch(&p->setups[index], 1, __ATOMIC_RELAXED);
    return err;
}

static void prog_drain(loop_t *loop, unsigned index, void *arg)
{
    (void)index;
    (void)arg;
    loop_stop(loop); /* the hour-long timer is not work to wait for */
}

static void prog_teardown(loop_t *loop, unsigned index, void *arg)
{
    struct prog *p = arg;
    (void)loop;
    __atomic_add_fetch(&p->teardowns[index], 1, __ATOMIC_RELAXED);
}

static void prog_call(loop_t *loop, void *arg)
{
    struct prog *p = arg;
    (void)loop;
    __atomic_add_fetch(&p->ran, 1, __ATOMIC_RELAXED);
}

/* One run of the program; returns the first error met (0 if none). */
static int run_program(struct locked_alloc *la, struct prog *p, int *posted)
{
    loop_options lo = {.realloc = locked_realloc, .alloc_ctx = la};
    loop_workers_options o = {.mode = LOOP_WORKERS_THREADS,
                              .count = N,
                              .setup = prog_setup,
                              .drain = prog_drain,
                              .teardown = prog_teardown,
                              .loop_options = &lo,
                              .arg = p};
    loop_workers *w = NULL;
    int err = loop_workers_start(&w, &o);
    if (err) {
        assert_null(w);
        return err;
    }
    for (int i = 0; i < 8; i++) {
        /* -ESHUTDOWN: that worker's loop already met the failure and ended. */
        int e = loop_workers_post(w, (unsigned)i % N, prog_call, p);
        assert_true(e == 0 || e == -ENOMEM || e == -ESHUTDOWN);
        *posted += e == 0;
        if (!err && e != -ESHUTDOWN)
            err = e;
    }
    assert_int_equal(loop_workers_stop(w), 0);
    int e = loop_workers_wait(w);
    assert_int_equal(loop_workers_free(w), 0);
    return err ? err : e;
}

static void test_each_failed_allocation_is_enomem_and_leaves_nothing(void **state)
{
    (void)state;
    static struct fdlist before;
    fdlist_take(&before);
    for (long at = 1;; at++) {
        struct locked_alloc la = {.lock = PTHREAD_MUTEX_INITIALIZER};
        struct prog p = {0};
        int posted = 0;
        la.a.fail_at = at;
        int err = run_program(&la, &p, &posted);
        if (err != 0 && err != -ENOMEM)
            fail_msg("allocation %ld failed: %s, not -ENOMEM", at, loop_strerror(err));
        assert_int_equal(la.a.live_blocks, 0);
        assert_int_equal(la.a.bad_frees, 0);
        assert_same_fds(&before, "after a run with a failed allocation");
        assert_int_equal(extra_threads_settled(), 0);
        assert_int_equal(p.ran, posted); /* every call accepted ran, once */
        for (int i = 0; i < N; i++)
            assert_int_equal(p.teardowns[i], p.setups[i]);
        if (la.a.failures == 0) {
            assert_int_equal(err, 0);
            assert_true(at > 5); /* the sweep did meet allocations */
            break;
        }
    }
}

/* ---- posts racing with the end ---------------------------------------------- */

struct race {
    loop_workers *w;
    int go; /* atomic */
    long accepted[2], refused[2];
    int ran; /* atomic */
};

static void race_call(loop_t *loop, void *arg)
{
    struct race *r = arg;
    (void)loop;
    __atomic_add_fetch(&r->ran, 1, __ATOMIC_RELAXED);
}

struct poster {
    struct race *r;
    int id;
};

static void *post_until_refused(void *arg)
{
    struct poster *ps = arg;
    struct race *r = ps->r;
    while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
        sched_yield();
    for (;;) {
        int err = loop_workers_post(r->w, 0, race_call, r);
        if (err == -ESHUTDOWN)
            break;
        assert_int_equal(err, 0);
        r->accepted[ps->id]++;
    }
    r->refused[ps->id]++;
    return NULL;
}

static int race_setup(loop_t *loop, unsigned index, void *arg)
{
    (void)loop;
    (void)index;
    (void)arg;
    return 0;
}

static void test_posts_racing_with_the_end_run_once_or_are_refused(void **state)
{
    (void)state;
    struct race r = {0};
    struct poster ps[2] = {{&r, 0}, {&r, 1}};
    loop_workers_options o = {
        .mode = LOOP_WORKERS_THREADS, .count = 1, .setup = race_setup, .arg = &r};
    pthread_t t[2];

    assert_int_equal(loop_workers_start(&r.w, &o), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, post_until_refused, &ps[i]), 0);
    __atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
    assert_int_equal(loop_workers_stop(r.w), 0);
    assert_int_equal(loop_workers_wait(r.w), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(r.refused[0] + r.refused[1], 2);
    assert_int_equal(r.ran, r.accepted[0] + r.accepted[1]);
    assert_int_equal(loop_workers_free(r.w), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_failed_allocation_is_enomem_and_leaves_nothing),
        cmocka_unit_test(test_posts_racing_with_the_end_run_once_or_are_refused),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, threads_suite_setup, NULL);
}
