/* ctest-link-options: -Wl,--wrap=pthread_create */
/*
 * When a thread cannot be started (pthread_create fails: EAGAIN, out of
 * threads or memory), a job that no running thread can take is refused
 * with -EAGAIN and nothing of it stays; one that running threads can take
 * is left to them.  The failure is made by wrapping pthread_create at
 * link time (see the first line), so the pool's own call fails.
 */
#include "pool_testing.h"

#include "fdleak.h"

int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

static _Atomic int refuse; /* fail every pthread_create while set */
static _Atomic int refused;

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    if (atomic_load(&refuse)) {
        atomic_fetch_add(&refused, 1);
        return EAGAIN;
    }
    return __real_pthread_create(t, attr, fn, arg);
}

static void test_a_job_no_thread_can_run_is_refused_with_eagain_and_nothing_stays(void **s)
{
    (void)s;
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
    loop_pool *p = new_pool(l, 2);
    struct gated x = {0};
    loop_future *f = (loop_future *)&f;
    atomic_store(&refuse, 1);
    atomic_store(&refused, 0);
    assert_int_equal(loop_pool_submit_with(p, gated_job, &x, 0, gated_drop, &f), -EAGAIN);
    atomic_store(&refuse, 0);
    assert_int_equal(atomic_load(&refused), 1);
    assert_null(f);
    loop_pool_stats_t st = pool_stats(p);
    assert_int_equal(st.threads, 0);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.outstanding, 0);
    assert_int_equal(atomic_load(&x.dropped), 0); /* refused: the caller still owns arg */
    f = submit(p, &x);                            /* threads can start again: the pool works */
    assert_int_equal(loop_run_until_complete(l, f, NULL), 0);
    assert_int_equal(atomic_load(&x.ran), 1);
    loop_future_unref(f);
    loop_pool_free(p);
    loop_free(l);
    assert_int_equal(a.live_blocks, 0); /* no thread record was left behind */
}

static void test_a_job_is_left_to_the_running_threads_when_no_more_can_start(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 4);
    struct gate g;
    gate_init(&g);
    struct gated busy = {.gate = &g}, later = {.result = &later};
    loop_future *fb = submit(p, &busy);
    gate_wait_started(&g, 1);
    atomic_store(&refuse, 1);
    atomic_store(&refused, 0);
    loop_future *fl = submit(p, &later);
    atomic_store(&refuse, 0);
    assert_int_equal(atomic_load(&refused), 1);
    loop_pool_stats_t st = pool_stats(p);
    assert_int_equal(st.threads, 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.queued, 1);
    gate_open(&g);
    void *r = NULL;
    assert_int_equal(loop_run_until_complete(l, fl, &r), 0);
    assert_ptr_equal(r, &later);
    assert_int_equal(pool_stats(p).threads, 1);
    loop_future_unref(fb);
    loop_future_unref(fl);
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_job_no_thread_can_run_is_refused_with_eagain_and_nothing_stays),
        cmocka_unit_test(test_a_job_is_left_to_the_running_threads_when_no_more_can_start),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
