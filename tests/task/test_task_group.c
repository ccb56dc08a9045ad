/*
 * Task groups (hop rule 9, asyncio 3.11's TaskGroup): the end waits for
 * every child (without suspending if all are done); the first child error
 * cancels the siblings in spawn order and the parent's await; the block's
 * own error comes after the children's; a cancel of the parent from
 * outside is passed on.
 */
#include "task_testing.h"

#include "counting_alloc.h"

struct child {
    char letter;
    uint64_t ns;
    int fail; /* returned after the sleep */
    int err;
};

static int child(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct child *c = arg;
    c->err = loop_task_sleep(c->ns);
    if (c->err == -ECANCELED)
        mark(c->letter);
    return c->err ? c->err : c->fail;
}

struct parent {
    struct child *kids;
    size_t nkids;
    uint64_t body_ns;  /* the block's own await; 0: none */
    int body_override; /* if nonzero, the block ends with this error */
    int body_err, end_err;
    uint64_t end_now, hops_in_end;
};

static int parent(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct parent *p = arg;
    loop_task_group *g;
    assert_int_equal(loop_task_group_new(&g), 0);
    for (size_t i = 0; i < p->nkids; i++)
        assert_int_equal(loop_task_group_spawn(g, child, &p->kids[i], NULL), 0);
    p->body_err = p->body_ns ? loop_task_sleep(p->body_ns) : 0;
    int body = p->body_override ? p->body_override : p->body_err;
    uint64_t before = hops(loop);
    p->end_err = loop_task_group_end(g, body);
    p->hops_in_end = hops(loop) - before;
    p->end_now = loop_now(loop);
    return p->end_err;
}

static void test_the_end_of_a_group_waits_for_every_child(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct child kids[] = {{'a', LOOP_SEC(1), 0, 0}, {'b', LOOP_SEC(2), 0, 0}};
    struct parent p = {.kids = kids, .nkids = 2};
    loop_task *t = spawn(l, parent, &p);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_int_equal(p.end_err, 0);
    assert_u64_eq(p.end_now, LOOP_SEC(2));
    assert_int_equal(kids[0].err, 0);
    assert_int_equal(kids[1].err, 0);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void test_the_end_does_not_suspend_when_every_child_is_done(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    struct child kids[] = {{'a', LOOP_MS(1), 0, 0}};
    struct parent p = {.kids = kids, .nkids = 1, .body_ns = LOOP_SEC(1)};
    loop_task *t = spawn(l, parent, &p);
    assert_int_equal(run_task(l, t, NULL), 0);
    assert_u64_eq(p.hops_in_end, 0);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void test_the_first_child_error_cancels_the_siblings_in_order_and_the_parent(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct child kids[] = {{'b', LOOP_SEC(10), 0, 0},
                           {'f', LOOP_SEC(1), -EPIPE, 0},
                           {'c', LOOP_SEC(10), 0, 0},
                           {'d', LOOP_SEC(10), 0, 0}};
    struct parent p = {.kids = kids, .nkids = 4, .body_ns = LOOP_SEC(60)};
    reset_trace();
    loop_task *t = spawn(l, parent, &p);
    assert_int_equal(run_task(l, t, NULL), -EPIPE);
    assert_int_equal(p.body_err, -ECANCELED); /* the parent's await was cancelled */
    assert_int_equal(p.end_err, -EPIPE);      /* and that cancel is not reported */
    assert_string_equal(trace, "bcd");        /* siblings cancelled in spawn order */
    assert_u64_eq(p.end_now, LOOP_SEC(1));
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void test_the_blocks_own_error_comes_after_the_childrens(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct child kids[] = {{'f', LOOP_SEC(1), -EPIPE, 0}};
    struct parent p = {.kids = kids, .nkids = 1, .body_ns = LOOP_SEC(60), .body_override = -EIO};
    loop_task *t = spawn(l, parent, &p);
    assert_int_equal(run_task(l, t, NULL), -EPIPE);
    loop_task_unref(t);

    /* The block's error alone cancels the children and is reported. */
    struct child kids2[] = {{'x', LOOP_SEC(10), 0, 0}};
    struct parent p2 = {.kids = kids2, .nkids = 1, .body_override = -EIO};
    uint64_t start = loop_now(l);
    t = spawn(l, parent, &p2);
    assert_int_equal(run_task(l, t, NULL), -EIO);
    assert_u64_eq(p2.end_now, start); /* the child was cancelled before it started */
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void cancel_cb(loop_t *loop, void *arg)
{
    (void)loop;
    assert_int_equal(loop_task_cancel(arg), 1);
}

static void test_a_cancel_of_the_parent_is_passed_on_and_cancels_the_children(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    struct child kids[] = {{'a', LOOP_SEC(10), 0, 0}};
    struct parent p = {.kids = kids, .nkids = 1, .body_ns = LOOP_SEC(60)};
    loop_task *t = spawn(l, parent, &p);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), cancel_cb, t, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), -ECANCELED);
    assert_int_equal(p.end_err, -ECANCELED);
    assert_int_equal(kids[0].err, -ECANCELED);
    loop_task_unref(t);

    /* The same while the parent waits in the end. */
    struct child kids2[] = {{'a', LOOP_SEC(10), 0, 0}};
    struct parent p2 = {.kids = kids2, .nkids = 1};
    t = spawn(l, parent, &p2);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), cancel_cb, t, NULL), 0);
    assert_int_equal(run_task(l, t, NULL), -ECANCELED);
    assert_int_equal(p2.body_err, 0);
    assert_int_equal(p2.end_err, -ECANCELED);
    assert_int_equal(kids2[0].err, -ECANCELED);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

struct misuse {
    int outside_new, spawn_busy, end_other;
    loop_task_group *g;
};

static int end_someone_elses(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct misuse *m = arg;
    m->end_other = loop_task_group_end(m->g, 0);
    return 0;
}

static int misuse_group(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct misuse *m = arg;
    assert_int_equal(loop_task_group_new(NULL), -EINVAL);
    assert_int_equal(loop_task_group_new(&m->g), 0);
    assert_int_equal(loop_task_group_spawn(NULL, child, NULL, NULL), -EINVAL);
    assert_int_equal(loop_task_group_spawn(m->g, NULL, NULL, NULL), -EINVAL);
    loop_task *other = spawn(loop, end_someone_elses, m);
    assert_int_equal(loop_task_await(loop_task_future(other), NULL), 0);
    loop_task_unref(other);
    static struct child fails = {'f', 0, -EPIPE, 0};
    assert_int_equal(loop_task_group_spawn(m->g, child, &fails, NULL), 0);
    int err = loop_task_sleep(LOOP_SEC(1)); /* the child fails: cancelled */
    m->spawn_busy = loop_task_group_spawn(m->g, child, &fails, NULL);
    return loop_task_group_end(m->g, err);
}

static void test_group_misuse_is_reported(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    loop_task_group *g = NULL;
    struct misuse m = {.outside_new = loop_task_group_new(&g)};
    assert_int_equal(m.outside_new, -EPERM);
    assert_null(g);
    assert_int_equal(loop_task_group_end(NULL, 0), -EINVAL);
    loop_task *t = spawn(l, misuse_group, &m);
    assert_int_equal(run_task(l, t, NULL), -EPIPE);
    assert_int_equal(m.end_other, -EPERM);
    assert_int_equal(m.spawn_busy, -EBUSY);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
}

static void test_freeing_the_loop_with_a_group_open_leaks_nothing(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with(
        (loop_options){.clock = LOOP_CLOCK_VIRTUAL, .realloc = counting_realloc, .alloc_ctx = &a});
    struct child kids[] = {{'a', LOOP_SEC(10), 0, 0}, {'b', LOOP_SEC(10), 0, 0}};
    struct parent p = {.kids = kids, .nkids = 2};
    assert_int_equal(loop_task_spawn(l, parent, &p, NULL), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* the parent waits in the end */
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(p.end_err, -ECANCELED);
    assert_int_equal(kids[0].err, -ECANCELED);
    assert_int_equal(kids[1].err, -ECANCELED);
    assert_int_equal(a.live_blocks, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_end_of_a_group_waits_for_every_child),
        cmocka_unit_test(test_the_end_does_not_suspend_when_every_child_is_done),
        cmocka_unit_test(test_the_first_child_error_cancels_the_siblings_in_order_and_the_parent),
        cmocka_unit_test(test_the_blocks_own_error_comes_after_the_childrens),
        cmocka_unit_test(test_a_cancel_of_the_parent_is_passed_on_and_cancels_the_children),
        cmocka_unit_test(test_group_misuse_is_reported),
        cmocka_unit_test(test_freeing_the_loop_with_a_group_open_leaks_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
