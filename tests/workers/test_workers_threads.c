/*
 * Threads mode: each worker's setup on its own thread and loop, posts to a
 * given worker, index and count from inside, the graceful stop (drain, the
 * loop runs its work out, teardown), its deadline, failures of the start,
 * and that no thread or fd is left behind.
 */
#include "workers_testing.h"

#include <sched.h>

#define N 3

struct seen {
    pthread_t tid[N];
    loop_t *loop[N];
    int index[N], count[N];
    loop_workers *of[N];
    int drains[N], teardowns[N], finished[N];
    int drain_order[N], teardown_order[N]; /* finished[] when each ran */
    bool teardown_on_own_thread[N];
    int fail_with[N];   /* what each setup returns */
    bool endless_drain; /* drain leaves a repeating timer behind */
};

static int record_setup(loop_t *loop, unsigned index, void *arg)
{
    struct seen *s = arg;
    s->tid[index] = pthread_self();
    s->loop[index] = loop;
    s->index[index] = loop_workers_index(loop);
    s->count[index] = loop_workers_count(loop);
    s->of[index] = loop_workers_of(loop);
    return s->fail_with[index];
}

static void finish_work(loop_t *loop, void *arg)
{
    struct seen *s = arg;
    s->finished[loop_workers_index(loop)]++;
}

/* In-flight work that outlives the drain call: a timer. */
static void record_drain(loop_t *loop, unsigned index, void *arg)
{
    struct seen *s = arg;
    s->drains[index]++;
    s->drain_order[index] = s->finished[index];
    if (s->endless_drain)
        assert_int_equal(loop_call_every(loop, LOOP_MS(1), nop_cb, NULL, NULL), 0);
    else
        assert_int_equal(loop_call_later(loop, LOOP_MS(2), finish_work, s, NULL), 0);
}

static void record_teardown(loop_t *loop, unsigned index, void *arg)
{
    struct seen *s = arg;
    (void)loop;
    s->teardowns[index]++;
    s->teardown_order[index] = s->finished[index];
    s->teardown_on_own_thread[index] = pthread_equal(pthread_self(), s->tid[index]);
}

static loop_workers_options options(struct seen *s)
{
    memset(s, 0, sizeof *s);
    return (loop_workers_options){
        .mode = LOOP_WORKERS_THREADS,
        .count = N,
        .setup = record_setup,
        .drain = record_drain,
        .teardown = record_teardown,
        .arg = s,
    };
}

static void test_start_rejects_bad_options_with_einval(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    loop_workers *w = (loop_workers *)&s;
    loop_options bad_clock = {.clock = 7};

    assert_int_equal(loop_workers_start(NULL, &o), -EINVAL);
    assert_int_equal(loop_workers_start(&w, NULL), -EINVAL);
    assert_null(w);
    o.count = 0;
    assert_int_equal(loop_workers_start(&w, &o), -EINVAL);
    o.count = LOOP_WORKERS_MAX + 1;
    assert_int_equal(loop_workers_start(&w, &o), -EINVAL);
    o = options(&s);
    o.setup = NULL;
    assert_int_equal(loop_workers_start(&w, &o), -EINVAL);
    o = options(&s);
    o.mode = 2;
    assert_int_equal(loop_workers_start(&w, &o), -EINVAL);
    o = options(&s);
    o.loop_options = &bad_clock;
    assert_int_equal(loop_workers_start(&w, &o), -EINVAL);
    assert_null(w);
    assert_int_equal(s.index[0] + s.index[1] + s.index[2], 0); /* no setup ran */
    assert_int_equal(extra_threads_settled(), 0);
}

static void test_each_setup_runs_on_its_own_thread_and_loop_and_knows_its_index(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    loop_workers *w = NULL;

    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_int_equal(extra_threads(), N);
    for (int i = 0; i < N; i++) {
        assert_false(pthread_equal(s.tid[i], pthread_self()));
        assert_int_equal(s.index[i], i);
        assert_int_equal(s.count[i], N);
        assert_ptr_equal(s.of[i], w);
        for (int j = 0; j < i; j++) {
            assert_false(pthread_equal(s.tid[i], s.tid[j]));
            assert_ptr_not_equal(s.loop[i], s.loop[j]);
        }
    }
    assert_int_equal(loop_workers_stop(w), 0);
    assert_int_equal(loop_workers_wait(w), 0);
    assert_int_equal(extra_threads_settled(), 0);
    assert_int_equal(loop_workers_free(w), 0);
}

static void test_index_and_count_are_einval_for_null_and_enoent_for_other_loops(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    assert_int_equal(loop_workers_index(NULL), -EINVAL);
    assert_int_equal(loop_workers_count(NULL), -EINVAL);
    assert_int_equal(loop_workers_index(l), -ENOENT);
    assert_int_equal(loop_workers_count(l), -ENOENT);
    assert_null(loop_workers_of(l));
    assert_null(loop_workers_of(NULL));
    assert_int_equal(loop_free(l), 0);
}

/* ---- posts ---------------------------------------------------------------- */

struct posted;

struct call {
    struct posted *p;
    int seq;
};

struct posted {
    loop_workers *w;
    pthread_t tid;
    int next; /* the sequence number the next call must carry */
    int out_of_order, wrong_worker;
    struct call calls[100];
};

static int note_thread(loop_t *loop, unsigned index, void *arg)
{
    struct posted *p = arg;
    (void)loop;
    if (index == 1)
        p->tid = pthread_self();
    return 0;
}

static void posted_call(loop_t *loop, void *arg)
{
    struct call *c = arg;
    struct posted *p = c->p;
    p->out_of_order += c->seq != p->next++;
    p->wrong_worker += loop_workers_index(loop) != 1 || !pthread_equal(pthread_self(), p->tid);
    if (c->seq == 99)
        assert_int_equal(loop_workers_stop(p->w), 0); /* a stop from a worker */
}

static void test_posts_run_on_the_given_worker_in_the_order_posted(void **state)
{
    (void)state;
    struct posted p = {0};
    loop_workers_options o = {
        .mode = LOOP_WORKERS_THREADS, .count = 2, .setup = note_thread, .arg = &p};

    assert_int_equal(loop_workers_start(&p.w, &o), 0);
    for (int i = 0; i < 100; i++) {
        p.calls[i] = (struct call){&p, i};
        assert_int_equal(loop_workers_post(p.w, 1, posted_call, &p.calls[i]), 0);
    }
    assert_int_equal(loop_workers_wait(p.w), 0);
    assert_int_equal(p.next, 100);
    assert_int_equal(p.out_of_order, 0);
    assert_int_equal(p.wrong_worker, 0);
    assert_int_equal(loop_workers_free(p.w), 0);
}

static void test_post_is_einval_for_bad_arguments_and_eshutdown_once_the_worker_ended(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    loop_workers *w = NULL;
    int runs = 0;

    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_int_equal(loop_workers_post(NULL, 0, count_cb, &runs), -EINVAL);
    assert_int_equal(loop_workers_post(w, 0, NULL, &runs), -EINVAL);
    assert_int_equal(loop_workers_post(w, N, count_cb, &runs), -EINVAL);
    assert_int_equal(loop_workers_free(w), 0);
    assert_int_equal(runs, 0);

    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_int_equal(loop_workers_stop(w), 0);
    assert_int_equal(loop_workers_wait(w), 0);
    assert_int_equal(loop_workers_post(w, 0, count_cb, &runs), -ESHUTDOWN);
    assert_int_equal(loop_workers_free(w), 0);
    assert_int_equal(runs, 0);
}

/* ---- the stop ------------------------------------------------------------- */

static void test_stop_drains_then_the_loop_runs_its_work_out_then_teardown(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    loop_workers *w = NULL;

    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_int_equal(loop_workers_stop(w), 0);
    assert_int_equal(loop_workers_stop(w), 0); /* twice is once */
    assert_int_equal(loop_workers_wait(w), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(s.drains[i], 1);
        assert_int_equal(s.drain_order[i], 0);
        assert_int_equal(s.finished[i], 1);       /* the drain's timer ran... */
        assert_int_equal(s.teardown_order[i], 1); /* ...before the teardown */
        assert_int_equal(s.teardowns[i], 1);
        assert_true(s.teardown_on_own_thread[i]);
    }
    assert_int_equal(loop_workers_wait(w), 0); /* again: the same answer */
    assert_int_equal(loop_workers_free(w), 0);
}

static void test_a_drain_past_its_deadline_is_cut_short_and_wait_says_etimedout(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    loop_workers *w = NULL;

    s.endless_drain = true;
    o.drain_timeout_ns = LOOP_MS(20);
    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_int_equal(loop_workers_stop(w), 0);
    assert_int_equal(loop_workers_wait(w), -ETIMEDOUT);
    for (int i = 0; i < N; i++) {
        assert_int_equal(s.drains[i], 1);
        assert_int_equal(s.teardowns[i], 1);
    }
    assert_int_equal(extra_threads_settled(), 0);
    assert_int_equal(loop_workers_free(w), 0);
}

static void test_without_drain_a_stop_ends_each_loop_at_once(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    loop_workers *w = NULL;

    o.drain = NULL;
    o.drain_timeout_ns = UINT64_MAX; /* no deadline: the loops must end by themselves */
    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_int_equal(loop_workers_free(w), 0); /* free stops and waits */
    for (int i = 0; i < N; i++)
        assert_int_equal(s.teardowns[i], 1);
}

static int stop_own_loop(loop_t *loop, unsigned index, void *arg)
{
    if (index == 0)
        assert_int_equal(loop_call_soon(loop, stop_cb, NULL, NULL), 0);
    return record_setup(loop, index, arg);
}

static void test_a_worker_loop_that_ends_by_itself_stops_the_others(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    loop_workers *w = NULL;

    o.setup = stop_own_loop;
    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_int_equal(loop_workers_wait(w), 0);
    assert_int_equal(s.drains[0], 0); /* it ended before any stop */
    for (int i = 0; i < N; i++)
        assert_int_equal(s.teardowns[i], 1);
    for (int i = 1; i < N; i++)
        assert_int_equal(s.drains[i], 1);
    assert_int_equal(loop_workers_free(w), 0);
}

static void *stop_from_thread(void *arg)
{
    assert_int_equal(loop_workers_stop(arg), 0);
    return NULL;
}

static void test_stop_from_another_thread_stops_all(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    loop_workers *w = NULL;
    pthread_t t;

    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_int_equal(pthread_create(&t, NULL, stop_from_thread, w), 0);
    assert_int_equal(loop_workers_wait(w), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(s.drains[i], 1);
    assert_int_equal(loop_workers_stop(NULL), -EINVAL);
    assert_int_equal(loop_workers_wait(NULL), -EINVAL);
    assert_int_equal(loop_workers_free(NULL), 0);
    assert_int_equal(loop_workers_free(w), 0);
}

struct busy {
    loop_workers *w;
    int wait_err, free_err;
};

static void wait_from_worker(loop_t *loop, void *arg)
{
    struct busy *b = arg;
    (void)loop;
    b->wait_err = loop_workers_wait(b->w);
    b->free_err = loop_workers_free(b->w);
    loop_workers_stop(b->w);
}

static void test_wait_and_free_from_a_worker_thread_are_ebusy(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    struct busy b = {0};

    assert_int_equal(loop_workers_start(&b.w, &o), 0);
    assert_int_equal(loop_workers_post(b.w, 2, wait_from_worker, &b), 0);
    assert_int_equal(loop_workers_wait(b.w), 0);
    assert_int_equal(b.wait_err, -EBUSY);
    assert_int_equal(b.free_err, -EBUSY);
    assert_int_equal(loop_workers_free(b.w), 0);
}

/* ---- failures of the start ------------------------------------------------ */

static void test_a_failed_setup_fails_the_start_and_stops_the_workers_that_started(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    loop_workers *w = (loop_workers *)&s;

    s.fail_with[1] = -EIO;
    assert_int_equal(loop_workers_start(&w, &o), -EIO);
    assert_null(w);
    assert_int_equal(extra_threads_settled(), 0);
    assert_int_equal(s.drains[1] + s.teardowns[1], 0); /* the one that failed: neither */
    for (int i = 0; i < N; i += 2) {
        assert_int_equal(s.drains[i], 1);
        assert_int_equal(s.teardowns[i], 1);
    }
}

static void test_the_lowest_index_setup_error_is_the_one_returned(void **state)
{
    (void)state;
    struct seen s;
    loop_workers_options o = options(&s);
    loop_workers *w = NULL;

    s.fail_with[2] = -EIO;
    s.fail_with[1] = -EPROTO;
    assert_int_equal(loop_workers_start(&w, &o), -EPROTO);
    assert_null(w);
    assert_int_equal(s.teardowns[0], 1);
}

/* ---- events and pinning ----------------------------------------------------- */

struct events {
    int ready[N], exited[N], bad;
};

static void record_event(loop_workers *w, const loop_workers_event *e, void *arg)
{
    struct events *ev = arg;
    assert_non_null(w);
    if (e->index >= N || e->pid != getpid()) {
        ev->bad++;
        return;
    }
    if (e->kind == LOOP_WORKERS_READY)
        ev->ready[e->index]++;
    else if (e->kind == LOOP_WORKERS_EXITED && e->code == CLD_EXITED && e->status == 0 &&
             e->restart_in_ns == UINT64_MAX && ev->ready[e->index] == 1)
        ev->exited[e->index]++;
    else
        ev->bad++;
}

static int ok_setup(loop_t *loop, unsigned index, void *arg)
{
    (void)loop;
    (void)index;
    (void)arg;
    return 0;
}

static void test_events_say_ready_then_exited_once_per_worker(void **state)
{
    (void)state;
    struct events ev = {0};
    loop_workers_options o = {.mode = LOOP_WORKERS_THREADS,
                              .count = N,
                              .setup = ok_setup,
                              .on_event = record_event,
                              .arg = &ev};
    loop_workers *w = NULL;

    assert_int_equal(loop_workers_start(&w, &o), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(ev.ready[i], 1);
    assert_int_equal(loop_workers_free(w), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(ev.exited[i], 1);
    assert_int_equal(ev.bad, 0);
}

static int check_pinned(loop_t *loop, unsigned index, void *arg)
{
    int *wrong = arg;
    cpu_set_t mine, allowed;
    (void)loop;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof mine, &mine), 0);
    assert_int_equal(sched_getaffinity(getpid(), sizeof allowed, &allowed), 0);
    int k = (int)(index % (unsigned)CPU_COUNT(&allowed)), want = -1;
    for (int cpu = 0; cpu < CPU_SETSIZE && want < 0; cpu++)
        if (CPU_ISSET(cpu, &allowed) && k-- == 0)
            want = cpu;
    if (CPU_COUNT(&mine) != 1 || !CPU_ISSET(want, &mine))
        __atomic_add_fetch(wrong, 1, __ATOMIC_RELAXED);
    return 0;
}

static void test_pin_puts_each_worker_thread_on_one_cpu_in_turn(void **state)
{
    (void)state;
    int wrong = 0;
    loop_workers_options o = {.mode = LOOP_WORKERS_THREADS,
                              .count = N,
                              .setup = check_pinned,
                              .pin = true,
                              .arg = &wrong};
    loop_workers *w = NULL;

    assert_int_equal(loop_workers_start(&w, &o), 0);
    assert_int_equal(loop_workers_free(w), 0);
    assert_int_equal(wrong, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_rejects_bad_options_with_einval),
        cmocka_unit_test(test_each_setup_runs_on_its_own_thread_and_loop_and_knows_its_index),
        cmocka_unit_test(test_index_and_count_are_einval_for_null_and_enoent_for_other_loops),
        cmocka_unit_test(test_posts_run_on_the_given_worker_in_the_order_posted),
        cmocka_unit_test(test_post_is_einval_for_bad_arguments_and_eshutdown_once_the_worker_ended),
        cmocka_unit_test(test_stop_drains_then_the_loop_runs_its_work_out_then_teardown),
        cmocka_unit_test(test_a_drain_past_its_deadline_is_cut_short_and_wait_says_etimedout),
        cmocka_unit_test(test_without_drain_a_stop_ends_each_loop_at_once),
        cmocka_unit_test(test_a_worker_loop_that_ends_by_itself_stops_the_others),
        cmocka_unit_test(test_stop_from_another_thread_stops_all),
        cmocka_unit_test(test_wait_and_free_from_a_worker_thread_are_ebusy),
        cmocka_unit_test(test_a_failed_setup_fails_the_start_and_stops_the_workers_that_started),
        cmocka_unit_test(test_the_lowest_index_setup_error_is_the_one_returned),
        cmocka_unit_test(test_events_say_ready_then_exited_once_per_worker),
        cmocka_unit_test(test_pin_puts_each_worker_thread_on_one_cpu_in_turn),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, threads_suite_setup, NULL);
}
