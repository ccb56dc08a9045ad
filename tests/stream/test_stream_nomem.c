/*
 * Allocation failure anywhere in a stream program: a listener, a client
 * that connects and sends lines and one write large enough to be queued,
 * a server that answers each line (read_until) and the large block
 * (read_exactly).  Each allocation is failed in turn: the call that
 * needed it says -ENOMEM (or the stream fails with -ENOMEM, through
 * on_error), the program always comes to an end, the loop is freed, and
 * every byte and every fd comes back.
 */
#include "stream_testing.h"

#include "counting_alloc.h"
#include "fdleak.h"

enum { LINES = 3, BLOCK = 200000 };

struct prog {
    loop_server *srv;
    loop_stream *client, *server_side;
    int lines_back;
    bool block_back;
    bool want_block; /* the server reads the block next */
    bool done;       /* the client finished, or gave up */
    int enomem;
    long fail_at;
};

static void note(struct prog *p, int err)
{
    if (err == -ENOMEM)
        p->enomem++;
    else if (err)
        assert_true(err == -EPIPE || err == -ECONNRESET);
}

static void finish(struct prog *p)
{
    p->done = true;
    if (p->client)
        loop_stream_close(p->client);
    p->client = NULL;
}

/* ---- the server: answers "line\n" with "ok\n", a block with "block\n" */

static void serve(loop_stream *s, void *arg)
{
    struct prog *p = arg;
    const char *d;
    size_t n;
    int err;
    for (;;) {
        if (p->want_block) {
            if ((err = loop_stream_read_exactly(s, BLOCK, &d, &n)) != 0)
                break;
            p->want_block = false;
            note(p, loop_stream_write(s, "block\n", 6));
            continue;
        }
        if ((err = loop_stream_read_until(s, "\n", 1, &d, &n)) != 0)
            break;
        if (n == 6 && memcmp(d, "BLOCK\n", 6) == 0)
            p->want_block = true;
        else
            note(p, loop_stream_write(s, "ok\n", 3));
    }
    if (err != -EAGAIN) {
        note(p, err == -EPIPE ? 0 : err);
        p->server_side = NULL;
        loop_stream_close(s);
    }
}

static void server_error(loop_stream *s, int err, void *arg)
{
    struct prog *p = arg;
    note(p, err);
    p->server_side = NULL;
    loop_stream_close(s);
}

static void on_conn(loop_server *srv, loop_stream *s, void *arg)
{
    (void)srv;
    struct prog *p = arg;
    loop_stream_callbacks cb = {.on_data = serve, .on_error = server_error};
    int err = loop_stream_set_callbacks(s, &cb, p);
    if (err) {
        note(p, err);
        loop_stream_close(s);
        return;
    }
    p->server_side = s;
}

/* ---- the client --------------------------------------------------------- */

static void client_data(loop_stream *s, void *arg)
{
    struct prog *p = arg;
    const char *d;
    size_t n;
    int err;
    while ((err = loop_stream_read_until(s, "\n", 1, &d, &n)) == 0) {
        if (n == 3)
            p->lines_back++;
        else
            p->block_back = true;
    }
    if (p->block_back && p->lines_back == LINES)
        finish(p);
    else if (err != -EAGAIN)
        note(p, err == -EPIPE ? 0 : err), finish(p);
}

static void client_error(loop_stream *s, int err, void *arg)
{
    (void)s;
    note(arg, err);
    finish(arg);
}

static void client_connected(loop_stream *s, int err, void *arg)
{
    struct prog *p = arg;
    static char block[BLOCK];
    if (err) {
        note(p, err);
        finish(p);
        return;
    }
    for (int i = 0; i < LINES && !err; i++)
        err = loop_stream_write(s, "line\n", 5);
    if (!err)
        err = loop_stream_write(s, "BLOCK\n", 6);
    if (!err)
        err = loop_stream_write(s, block, sizeof block); /* queued: > the socket takes */
    if (err) {
        note(p, err);
        finish(p);
    }
}

static const loop_stream_callbacks client_cb = {
    .on_data = client_data, .on_connect = client_connected, .on_error = client_error};

static bool run_program(loop_t *l, struct prog *p)
{
    int err = loop_server_listen(l, "127.0.0.1", 0, NULL, on_conn, p, &p->srv);
    if (err) {
        assert_int_equal(err, -ENOMEM);
        return false;
    }
    err = loop_stream_connect(l, "127.0.0.1", loop_server_port(p->srv), NULL, &client_cb, p,
                              &p->client);
    if (err) {
        assert_int_equal(err, -ENOMEM);
        p->client = NULL;
    } else {
        int small = 8192; /* the block is queued, not taken at once */
        setsockopt(loop_stream_fd(p->client), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        uint64_t t0 = mono_ns();
        while (!p->done) { /* the loop's own -ENOMEM: call it again */
            int e = loop_run_once(l, LOOP_MS(50));
            assert_true(e == 0 || e == -ENOMEM);
            if (mono_ns() - t0 > LOOP_SEC(20))
                fail_msg("the program hangs after allocation %ld failed", p->fail_at);
        }
    }
    bool whole = p->block_back && p->lines_back == LINES;
    if (p->server_side)
        loop_stream_close(p->server_side);
    loop_server_free(p->srv);
    return whole;
}

static void test_each_failed_allocation_is_enomem_and_nothing_leaks(void **state)
{
    (void)state;
    long at = 1;
    int failed_runs = 0;
    for (;; at++) {
        struct counting_alloc a = {0};
        loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at;
        struct prog p = {.fail_at = at};
        bool whole = run_program(l, &p);
        if (!whole)
            failed_runs++;
        assert_int_equal(loop_free(l), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        if (a.failures == 0) {
            assert_true(whole); /* past the last allocation: the program ran whole */
            break;
        }
        assert_true(at < 500);
    }
    print_message("each of %ld allocations failed in turn\n", at - 1);
    assert_true(at > 5);
    assert_true(failed_runs > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_failed_allocation_is_enomem_and_nothing_leaks),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
