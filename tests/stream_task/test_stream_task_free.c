/*
 * loop_free() with connection handlers and a client suspended in reads,
 * whichever of the stream and task layers attached to the loop first:
 * every task unwinds, every stream and fd is released, every byte comes
 * back.  And every allocation of a task-form program failed in turn.
 */
#include "../stream/stream_testing.h"

#include "counting_alloc.h"
#include "fdleak.h"
#include "loop_stream_task.h"

static int waiting_handler(loop_stream *s, void *arg)
{
    int *entered = arg;
    ++*entered;
    const char *d;
    size_t n;
    int err = loop_stream_task_read_until(s, "\n", 1, &d, &n); /* never comes */
    loop_stream_write(s, "bye\n", 4);                          /* a husk: -EBADF, harmless */
    return err;
}

struct client {
    uint16_t port;
    int err;
    bool connected;
};

static int waiting_client(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct client *c = arg;
    loop_stream *s;
    c->err = loop_stream_task_open_connection(loop, "127.0.0.1", c->port, NULL, &s);
    if (c->err)
        return c->err;
    c->connected = true;
    const char *d;
    size_t n;
    c->err = loop_stream_task_read(s, 0, &d, &n); /* the server says nothing */
    loop_stream_close(s);
    return c->err;
}

static int nothing(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)arg;
    (void)result;
    return 0;
}

static void free_with_handlers_waiting(bool tasks_first)
{
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
    loop_task *first = NULL;
    if (tasks_first) { /* the task layer attaches to the loop before the streams */
        assert_int_equal(loop_task_spawn(l, nothing, NULL, &first), 0);
        assert_int_equal(loop_run_until_complete(l, loop_task_future(first), NULL), 0);
    }
    int entered = 0;
    loop_server *srv;
    assert_int_equal(
        loop_stream_task_start_server(l, "127.0.0.1", 0, NULL, waiting_handler, &entered, &srv), 0);
    struct client c[2] = {{.port = loop_server_port(srv)}, {.port = loop_server_port(srv)}};
    loop_task *t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(loop_task_spawn(l, waiting_client, &c[i], &t[i]), 0);
    RUN_UNTIL(l, entered == 2 && c[0].connected && c[1].connected);
    assert_int_equal(loop_free(l), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c[i].err, -ECANCELED);
        loop_task_unref(t[i]);
    }
    loop_task_unref(first);
    loop_server_free(srv); /* a husk since loop_free() */
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.bad_frees, 0);
}

static void test_loop_free_unwinds_handlers_when_streams_attached_first(void **state)
{
    (void)state;
    free_with_handlers_waiting(false);
}

static void test_loop_free_unwinds_handlers_when_tasks_attached_first(void **state)
{
    (void)state;
    free_with_handlers_waiting(true);
}

/* ---- every allocation failed in turn ------------------------------------ */

static int answer_handler(loop_stream *s, void *arg)
{
    (void)arg;
    const char *d;
    size_t n;
    int err;
    while ((err = loop_stream_task_read_until(s, "\n", 1, &d, &n)) == 0) {
        if ((err = loop_stream_write(s, "ok\n", 3)) != 0 || (err = loop_stream_task_drain(s)))
            break;
    }
    return err;
}

struct asker {
    uint16_t port;
    int answers;
    bool done;
};

static int asker(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct asker *k = arg;
    loop_stream *s = NULL;
    int err = loop_stream_task_open_connection(loop, "127.0.0.1", k->port, NULL, &s);
    for (int i = 0; i < 3 && !err; i++) {
        const char *d;
        size_t n;
        if (!(err = loop_stream_write(s, "q\n", 2)))
            err = loop_stream_task_read_until(s, "\n", 1, &d, &n);
        if (!err)
            k->answers++;
    }
    if (err && err != -ENOMEM && err != -EPIPE && err != -ECONNRESET)
        fail_msg("unexpected error %d", err);
    if (s)
        loop_stream_close(s);
    k->done = true;
    return err;
}

static void test_each_failed_allocation_of_a_task_program_is_enomem_and_nothing_leaks(void **state)
{
    (void)state;
    long at = 1;
    for (;; at++) {
        struct counting_alloc a = {0};
        loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at;
        loop_server *srv = NULL;
        int err =
            loop_stream_task_start_server(l, "127.0.0.1", 0, NULL, answer_handler, NULL, &srv);
        bool whole = false;
        if (err) {
            assert_int_equal(err, -ENOMEM);
        } else {
            struct asker k = {.port = loop_server_port(srv)};
            loop_task *t = NULL;
            err = loop_task_spawn(l, asker, &k, &t);
            if (err) {
                assert_int_equal(err, -ENOMEM);
            } else {
                uint64_t t0 = mono_ns();
                while (!k.done) {
                    int e = loop_run_once(l, LOOP_MS(50));
                    assert_true(e == 0 || e == -ENOMEM);
                    if (mono_ns() - t0 > LOOP_SEC(20))
                        fail_msg("the program hangs when allocation %ld fails", at);
                }
                whole = k.answers == 3;
                loop_task_unref(t);
            }
            loop_server_free(srv);
        }
        assert_int_equal(loop_free(l), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        if (a.failures == 0) {
            assert_true(whole);
            break;
        }
        assert_true(at < 500);
    }
    print_message("each of %ld allocations failed in turn\n", at - 1);
    assert_true(at > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_free_unwinds_handlers_when_streams_attached_first),
        cmocka_unit_test(test_loop_free_unwinds_handlers_when_tasks_attached_first),
        cmocka_unit_test(test_each_failed_allocation_of_a_task_program_is_enomem_and_nothing_leaks),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
