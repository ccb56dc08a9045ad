/*
 * Submitting jobs: where they run, what their futures get, how threads
 * are started, the slow class, the bounded queue, batched completions,
 * and the errors of bad arguments.
 */
#include "pool_testing.h"

#include "fdleak.h"
#include "watchdog.h"

#include <sched.h>
#include <unistd.h>

static pthread_t loop_thread;

static int whoami_job(void *arg, void **result)
{
    *(pthread_t *)arg = pthread_self();
    *result = arg;
    return 0;
}

static void on_done_note_thread(loop_future *f, void *arg)
{
    (void)f;
    *(pthread_t *)arg = pthread_self();
}

static void test_a_job_runs_on_a_pool_thread_and_its_future_completes_on_the_loop_thread(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 2);
    pthread_t job_thread = pthread_self(), done_thread = 0;
    loop_future *f = NULL;
    assert_int_equal(loop_pool_submit(p, whoami_job, &job_thread, &f), 0);
    assert_int_equal(loop_future_add_done(f, on_done_note_thread, &done_thread), 0);
    void *result = NULL;
    assert_int_equal(loop_run_until_complete(l, f, &result), 0);
    assert_ptr_equal(result, &job_thread);
    assert_false(pthread_equal(job_thread, loop_thread));
    loop_run_once(l, 0); /* the done callback's iteration */
    assert_true(pthread_equal(done_thread, loop_thread));
    loop_future_unref(f);
    assert_int_equal(loop_pool_free(p), 0);
    loop_free(l);
}

static void test_a_job_that_fails_fails_its_future_with_its_errno(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    struct gated bad = {.status = -ENOENT, .result = &bad};
    struct gated positive = {.status = 7, .result = &positive};
    loop_future *f1 = submit(p, &bad), *f2 = submit(p, &positive);
    void *r = NULL;
    assert_int_equal(loop_run_until_complete(l, f1, &r), -ENOENT);
    assert_int_equal(loop_future_state(f1), LOOP_FUTURE_FAILED);
    assert_int_equal(loop_run_until_complete(l, f2, &r), 0); /* above 0 counts as 0 */
    assert_ptr_equal(r, &positive);
    assert_int_equal(atomic_load(&bad.dropped) + atomic_load(&positive.dropped), 0);
    loop_future_unref(f1);
    loop_future_unref(f2);
    loop_pool_free(p);
    loop_free(l);
}

static int order[16];
static _Atomic int norder;

static int append_job(void *arg, void **result)
{
    (void)result;
    order[atomic_fetch_add(&norder, 1)] = (int)(intptr_t)arg;
    return 0;
}

static void test_jobs_start_in_the_order_they_were_submitted(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    loop_future *fs[16];
    atomic_store(&norder, 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(loop_pool_submit(p, append_job, (void *)(intptr_t)i, &fs[i]), 0);
    assert_int_equal(loop_run_until_complete(l, fs[15], NULL), 0);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(order[i], i);
        loop_future_unref(fs[i]);
    }
    loop_pool_free(p);
    loop_free(l);
}

static void test_threads_start_lazily_one_per_job_up_to_the_size(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 4);
    assert_int_equal(pool_stats(p).threads, 0); /* none before the first submit */
    struct gated quick = {0};
    loop_future *f = submit(p, &quick);
    assert_int_equal(loop_run_until_complete(l, f, NULL), 0);
    loop_future_unref(f);
    assert_int_equal(pool_stats(p).threads, 1);
    wait_until(pool_idle_asleep, p, "the idle thread to sleep");
    f = submit(p, &quick); /* the sleeping thread is woken for it: none is started */
    assert_int_equal(loop_run_until_complete(l, f, NULL), 0);
    loop_future_unref(f);
    assert_int_equal(pool_stats(p).threads, 1);
    wait_until(pool_idle_asleep, p, "the idle thread to sleep");

    struct gate g;
    gate_init(&g);
    struct gated x[6];
    loop_future *fs[6];
    for (int i = 0; i < 6; i++) {
        x[i] = (struct gated){.gate = &g};
        fs[i] = submit(p, &x[i]);
        loop_pool_stats_t st = pool_stats(p);
        assert_int_equal(st.threads, i < 4 ? i + 1 : 4); /* one for each job at once */
    }
    gate_wait_started(&g, 4);
    loop_pool_stats_t st = pool_stats(p);
    assert_int_equal(st.queued, 2);
    assert_int_equal(st.outstanding, 6);
    gate_open(&g);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(loop_run_until_complete(l, fs[i], NULL), 0);
        loop_future_unref(fs[i]);
    }
    assert_int_equal(pool_stats(p).threads, 4);
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

static void test_the_default_pool_has_min_32_cores_plus_4_threads_and_is_made_once(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = NULL, *q = NULL;
    assert_int_equal(loop_pool_default(l, &p), 0);
    assert_int_equal(loop_pool_default(l, &q), 0);
    assert_ptr_equal(p, q);
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    unsigned want = CPU_COUNT(&set) + 4 < 32 ? (unsigned)CPU_COUNT(&set) + 4 : 32;
    loop_pool_stats_t st = pool_stats(p);
    assert_int_equal(st.max_threads, want);
    assert_int_equal(st.slow_threads, (want + 1) / 2);
    assert_int_equal(st.capacity, 65536);
    assert_int_equal(st.threads, 0);
    assert_int_equal(loop_free(l), 0); /* frees the default pool */
}

static _Atomic int slow_now, slow_most;

static int slow_job(void *arg, void **result)
{
    int now = atomic_fetch_add(&slow_now, 1) + 1;
    for (int most = atomic_load(&slow_most); now > most;)
        if (atomic_compare_exchange_weak(&slow_most, &most, now))
            break;
    int err = gated_job(arg, result);
    atomic_fetch_sub(&slow_now, 1);
    return err;
}

static void test_slow_jobs_never_hold_more_than_slow_threads_and_others_pass_them(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = NULL;
    loop_pool_options o = {.threads = 4, .slow_threads = 2};
    assert_int_equal(loop_pool_new(l, &o, &p), 0);
    struct gate g;
    gate_init(&g);
    struct gated x[5];
    loop_future *fs[5];
    atomic_store(&slow_most, 0);
    for (int i = 0; i < 4; i++) {
        x[i] = (struct gated){.gate = &g};
        assert_int_equal(loop_pool_submit_with(p, slow_job, &x[i], LOOP_POOL_SLOW, NULL, &fs[i]),
                         0);
    }
    gate_wait_started(&g, 2);
    loop_pool_stats_t st = pool_stats(p);
    assert_int_equal(st.slow_running, 2);
    assert_int_equal(st.queued, 2);
    assert_int_equal(st.threads, 2); /* no thread started for a job held back */
    x[4] = (struct gated){.gate = &g};
    fs[4] = submit(p, &x[4]); /* a normal job starts past the slow ones */
    gate_wait_started(&g, 3);
    assert_int_equal(atomic_load(&x[4].ran), 1);
    gate_open(&g);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(loop_run_until_complete(l, fs[i], NULL), 0);
        loop_future_unref(fs[i]);
    }
    assert_int_equal(atomic_load(&slow_most), 2);
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

static void test_bad_arguments_are_einval(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = (loop_pool *)&p;
    loop_future *f = (loop_future *)&f;
    assert_int_equal(loop_pool_new(NULL, NULL, &p), -EINVAL);
    assert_null(p);
    assert_int_equal(loop_pool_new(l, NULL, NULL), -EINVAL);
    loop_pool_options o = {.threads = LOOP_POOL_MAX_THREADS + 1};
    assert_int_equal(loop_pool_new(l, &o, &p), -EINVAL);
    o = (loop_pool_options){.threads = 2, .slow_threads = 3};
    assert_int_equal(loop_pool_new(l, &o, &p), -EINVAL);
    assert_int_equal(loop_pool_default(NULL, &p), -EINVAL);
    assert_int_equal(loop_pool_default(l, NULL), -EINVAL);
    p = new_pool(l, 1);
    assert_int_equal(loop_pool_submit(NULL, gated_job, NULL, &f), -EINVAL);
    assert_null(f);
    assert_int_equal(loop_pool_submit(p, NULL, NULL, &f), -EINVAL);
    assert_int_equal(loop_pool_submit_with(p, gated_job, NULL, 0x2, NULL, &f), -EINVAL);
    assert_int_equal(loop_pool_shutdown(NULL, LOOP_POOL_WAIT, NULL), -EINVAL);
    assert_int_equal(loop_pool_shutdown(p, 7, NULL), -EINVAL);
    assert_int_equal(loop_pool_stats(NULL, &(loop_pool_stats_t){0}), -EINVAL);
    assert_int_equal(loop_pool_stats(p, NULL), -EINVAL);
    assert_int_equal(loop_pool_free(NULL), -EINVAL);
    assert_int_equal(pool_stats(p).outstanding, 0);
    loop_pool_free(p);
    loop_free(l);
}

static void test_a_full_pool_says_eagain_until_a_job_is_done(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = NULL;
    loop_pool_options o = {.threads = 1, .capacity = 2};
    assert_int_equal(loop_pool_new(l, &o, &p), 0);
    struct gate g;
    gate_init(&g);
    struct gated x[3] = {{.gate = &g}, {.gate = &g}, {0}};
    loop_future *f0 = submit(p, &x[0]), *f1 = submit(p, &x[1]), *f2 = (loop_future *)&f2;
    assert_int_equal(loop_pool_submit(p, gated_job, &x[2], &f2), -EAGAIN);
    assert_null(f2);
    assert_int_equal(pool_stats(p).outstanding, 2);
    gate_open(&g);
    assert_int_equal(loop_run_until_complete(l, f0, NULL), 0);
    f2 = submit(p, &x[2]);
    assert_int_equal(loop_run_until_complete(l, f2, NULL), 0);
    assert_int_equal(atomic_load(&x[2].ran), 1);
    loop_future_unref(f0);
    loop_future_unref(f1);
    loop_future_unref(f2);
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

/* The eventfd's counter, from /proc/self/fdinfo (printed in hex). */
static unsigned long long eventfd_count(int fd)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unsigned long long n = ~0ull;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "eventfd-count: %llx", &n) == 1)
            break;
    fclose(f);
    return n;
}

static void test_many_completions_make_one_eventfd_write_and_one_wakeup(void **s)
{
    (void)s;
    static struct fdlist before;
    loop_t *l = new_real_loop();
    fdlist_take(&before);
    loop_pool *p = new_pool(l, 4);
    int efd = -1;
    assert_int_equal(fds_opened_since(&before, &efd, 1), 1);
    struct gate g;
    gate_init(&g);
    struct gated x[8];
    loop_future *fs[8];
    for (int i = 0; i < 8; i++) {
        x[i] = (struct gated){.gate = &g, .result = &x[i]};
        fs[i] = submit(p, &x[i]);
    }
    gate_wait_started(&g, 4);
    gate_open(&g);
    wait_until(pool_all_idle, p, "every job to finish"); /* idle: its job is on the list */
    wait_loop_readable(l);                               /* and the first one wrote */
    assert_int_equal(pool_stats(p).queued, 0);
    assert_int_equal((int)eventfd_count(efd), 1); /* written once: when the list was empty */
    loop_stats_t before_run, after_run;
    loop_stats(l, &before_run);
    assert_int_equal(loop_run_once(l, 0), 0);
    loop_stats(l, &after_run);
    assert_u64_eq(after_run.events - before_run.events, 1);
    for (int i = 0; i < 8; i++) { /* one wake-up completed them all */
        void *r = NULL;
        assert_int_equal(loop_future_result(fs[i], &r), 0);
        assert_ptr_equal(r, &x[i]);
        loop_future_unref(fs[i]);
    }
    loop_pool_free(p);
    loop_free(l);
    gate_destroy(&g);
}

static void test_an_idle_pool_does_not_keep_loop_run_alive(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 2);
    struct gated x = {0};
    loop_future *f = submit(p, &x);
    watchdog_start("loop_run to return once the pool is idle", POOL_TEST_DEADLINE_S);
    assert_int_equal(loop_run(l), 0); /* the outstanding job kept it alive until done */
    assert_true(loop_future_done(f));
    assert_int_equal(loop_run(l), 0); /* and now nothing does */
    watchdog_stop();
    loop_future_unref(f);
    loop_pool_free(p);
    loop_free(l);
}

static void test_a_job_without_a_future_gives_its_result_to_drop(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    struct gated x = {.result = &x};
    assert_int_equal(loop_pool_submit_with(p, gated_job, &x, 0, gated_drop, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(atomic_load(&x.dropped), 1);
    assert_ptr_equal(x.dropped_result, &x);
    assert_true(pthread_equal(x.drop_thread, loop_thread));
    loop_pool_free(p);
    loop_free(l);
}

static void test_a_called_job_reports_its_outcome_to_done_once_on_the_loop_thread(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 2);
    struct called good_c = {0}, bad_c = {0};
    struct gated good = {.result = &good, .called = &good_c};
    struct gated bad = {.status = -EIO, .result = &bad, .called = &bad_c};
    assert_int_equal(loop_pool_call(p, gated_job, &good, 0, called_done), 0);
    assert_int_equal(loop_pool_call(p, gated_job, &bad, LOOP_POOL_SLOW, called_done), 0);
    assert_int_equal(loop_pool_call(p, gated_job, &good, 0, NULL), -EINVAL);
    assert_int_equal(loop_pool_call(NULL, gated_job, &good, 0, called_done), -EINVAL);
    assert_int_equal(loop_pool_call(p, NULL, &good, 0, called_done), -EINVAL);
    assert_int_equal(loop_pool_call(p, gated_job, &good, 0x4, called_done), -EINVAL);
    assert_int_equal(loop_run(l), 0); /* the two outstanding jobs kept it alive */
    assert_int_equal(atomic_load(&good_c.calls), 1);
    assert_int_equal(good_c.status, 0);
    assert_ptr_equal(good_c.result, &good);
    assert_true(pthread_equal(good_c.thread, loop_thread));
    assert_int_equal(atomic_load(&bad_c.calls), 1);
    assert_int_equal(bad_c.status, -EIO);
    assert_null(bad_c.result);
    assert_int_equal(atomic_load(&good.ran), 1); /* the refused calls ran nothing */
    loop_pool_free(p);
    loop_free(l);
}

int main(void)
{
    loop_thread = pthread_self();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_a_job_runs_on_a_pool_thread_and_its_future_completes_on_the_loop_thread),
        cmocka_unit_test(test_a_job_that_fails_fails_its_future_with_its_errno),
        cmocka_unit_test(test_jobs_start_in_the_order_they_were_submitted),
        cmocka_unit_test(test_threads_start_lazily_one_per_job_up_to_the_size),
        cmocka_unit_test(test_the_default_pool_has_min_32_cores_plus_4_threads_and_is_made_once),
        cmocka_unit_test(test_slow_jobs_never_hold_more_than_slow_threads_and_others_pass_them),
        cmocka_unit_test(test_bad_arguments_are_einval),
        cmocka_unit_test(test_a_full_pool_says_eagain_until_a_job_is_done),
        cmocka_unit_test(test_many_completions_make_one_eventfd_write_and_one_wakeup),
        cmocka_unit_test(test_an_idle_pool_does_not_keep_loop_run_alive),
        cmocka_unit_test(test_a_job_without_a_future_gives_its_result_to_drop),
        cmocka_unit_test(test_a_called_job_reports_its_outcome_to_done_once_on_the_loop_thread),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
