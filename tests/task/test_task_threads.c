/*
 * Other threads posting to tasks: a thread may not touch a future or a
 * task, but it may post a callback with loop_call_soon_threadsafe(), and
 * that callback (on the loop's thread) completes what the task awaits.
 * Many threads posting to many tasks at once: every task gets its own
 * value exactly once, and the loop ends when all have.  Run under TSan.
 */
#include "task_testing.h"

#include <pthread.h>

#define THREADS 4
#define TASKS_PER_THREAD 64

struct slot {
    loop_t *loop;
    loop_future *f; /* created by the task; read by the poster only on the loop thread */
    intptr_t value;
    void *got;
    int err;
};

static struct slot slots[THREADS * TASKS_PER_THREAD];
static pthread_barrier_t ready;

static void complete_on_loop(loop_t *loop, void *arg)
{
    (void)loop;
    struct slot *s = arg;
    assert_int_equal(loop_future_set_result(s->f, (void *)s->value), 0);
}

static int awaiting_task(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct slot *s = arg;
    s->f = new_future(loop);
    s->err = loop_task_await(s->f, &s->got);
    loop_future_unref(s->f);
    return s->err;
}

/* Every task is suspended before the threads start: it awaits s->f. */
static void *poster(void *arg)
{
    intptr_t first = (intptr_t)arg;
    pthread_barrier_wait(&ready);
    for (intptr_t i = first; i < first + TASKS_PER_THREAD; i++)
        while (loop_call_soon_threadsafe(slots[i].loop, complete_on_loop, &slots[i]) == -ENOMEM)
            ;
    return NULL;
}

static void test_threads_posting_completions_wake_each_task_once_with_its_value(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0}); /* real clock: threads wake it */
    loop_task *tasks[THREADS * TASKS_PER_THREAD];
    for (int i = 0; i < THREADS * TASKS_PER_THREAD; i++) {
        slots[i] = (struct slot){.loop = l, .value = 1000 + i, .err = 1};
        tasks[i] = spawn(l, awaiting_task, &slots[i]);
    }
    /* One pass runs every first step: each task creates its future and suspends. */
    assert_int_equal(loop_run_once(l, 0), 0);
    for (int i = 0; i < THREADS * TASKS_PER_THREAD; i++)
        assert_false(loop_future_done(loop_task_future(tasks[i])));
    pthread_t th[THREADS];
    assert_int_equal(pthread_barrier_init(&ready, NULL, THREADS), 0);
    for (intptr_t t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, poster, (void *)(t * TASKS_PER_THREAD)), 0);
    /* Until every task is done: the posts arrive while the loop waits (a
     * reference keeps it waiting, as for any work expected from outside). */
    loop_ref(l);
    for (int i = 0; i < THREADS * TASKS_PER_THREAD; i++)
        while (!loop_future_done(loop_task_future(tasks[i])))
            assert_int_equal(loop_run_once(l, -1), 0);
    loop_unref(l);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    pthread_barrier_destroy(&ready);
    for (int i = 0; i < THREADS * TASKS_PER_THREAD; i++) {
        assert_int_equal(slots[i].err, 0);
        assert_int_equal((intptr_t)slots[i].got, 1000 + i);
        loop_task_unref(tasks[i]);
    }
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_posting_completions_wake_each_task_once_with_its_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
