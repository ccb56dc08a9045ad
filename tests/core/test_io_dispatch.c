/*
 * fd registrations changed while their dispatches are queued: a reader or
 * writer removed or replaced by a handler that ran first in the same
 * iteration, an fd number closed and reused, handlers added from inside
 * I/O callbacks, and nothing stale left in the kernel after a removal.
 */
#include "fixtures.h"
#include "io_probe.h"
#include "sockets.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

/* ---- removal and replacement within a batch ------------------------------- */

struct pair_ctx {
    int fd[2]; /* the two watched fds */
    int runs[2];
    int new_runs; /* runs of a replacement handler */
    int mode;     /* what the first handler to run does to the other */
    int extra[2]; /* a socketpair made by the first handler */
    int first;    /* index of the first handler that ran, or -1 */
};

enum {
    REMOVE_OTHER,
    REPLACE_OTHER,
    CLOSE_AND_REUSE_OTHER,
    REMOVE_OTHER_WRITER,
    REPLACE_OTHER_WRITER
};

static void replacement_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct pair_ctx *c = arg;
    c->new_runs++;
}

static void pair_handler(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct pair_ctx *c = arg;
    int me = fd == c->fd[0] ? 0 : 1, other = 1 - me;
    assert_int_equal(fd, c->fd[me]);
    c->runs[me]++;
    if (c->first != -1)
        return;
    c->first = me;
    int ofd = c->fd[other];
    switch (c->mode) {
    case REMOVE_OTHER:
        assert_int_equal(loop_remove_reader(loop, ofd), 0);
        break;
    case REMOVE_OTHER_WRITER:
        assert_int_equal(loop_remove_writer(loop, ofd), 0);
        break;
    case REPLACE_OTHER:
        assert_int_equal(loop_add_reader(loop, ofd, replacement_reader, c), 0);
        break;
    case REPLACE_OTHER_WRITER:
        assert_int_equal(loop_add_writer(loop, ofd, replacement_reader, c), 0);
        break;
    case CLOSE_AND_REUSE_OTHER:
        /* Remove, close, and give the number to a new socket that is
         * itself readable, then watch it. */
        assert_int_equal(loop_remove_reader(loop, ofd), 0);
        make_socketpair(c->extra); /* before the close: other numbers */
        assert_int_equal(close(ofd), 0);
        assert_int_equal(dup2(c->extra[0], ofd), ofd);
        close(c->extra[0]);
        c->extra[0] = ofd;
        put(c->extra[1], "n");
        assert_int_equal(loop_add_reader(loop, ofd, replacement_reader, c), 0);
        break;
    }
}

static void test_removing_a_reader_drops_its_queued_dispatch(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    put(a[1], "x");
    put(b[1], "x");
    struct pair_ctx c = {.fd = {a[0], b[0]}, .mode = REMOVE_OTHER, .first = -1};
    assert_int_equal(loop_add_reader(l, a[0], pair_handler, &c), 0);
    assert_int_equal(loop_add_reader(l, b[0], pair_handler, &c), 0);

    /* Both were ready at the poll; the first to run removes the other. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.first == 0 || c.first == 1, 1);
    assert_int_equal(c.runs[c.first], 1);
    assert_int_equal(c.runs[1 - c.first], 0);

    /* And in later iterations, too. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.runs[c.first], 2);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(loop_remove_reader(l, c.fd[1 - c.first]), -ENOENT);
    assert_int_equal(loop_remove_reader(l, c.fd[c.first]), 0);
    close_pair(a);
    close_pair(b);
    assert_int_equal(loop_free(l), 0);
}

static void test_removing_a_writer_drops_its_queued_dispatch(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    struct pair_ctx c = {.fd = {a[0], b[0]}, .mode = REMOVE_OTHER_WRITER, .first = -1};
    assert_int_equal(loop_add_writer(l, a[0], pair_handler, &c), 0);
    assert_int_equal(loop_add_writer(l, b[0], pair_handler, &c), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_true(c.first == 0 || c.first == 1);
    assert_int_equal(c.runs[c.first], 1);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(loop_remove_writer(l, c.fd[c.first]), 0);
    close_pair(a);
    close_pair(b);
    assert_int_equal(loop_free(l), 0);
}

static void test_replacing_a_reader_drops_the_old_readers_queued_dispatch(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    put(a[1], "x");
    put(b[1], "x");
    struct pair_ctx c = {.fd = {a[0], b[0]}, .mode = REPLACE_OTHER, .first = -1};
    assert_int_equal(loop_add_reader(l, a[0], pair_handler, &c), 0);
    assert_int_equal(loop_add_reader(l, b[0], pair_handler, &c), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_true(c.first == 0 || c.first == 1);
    assert_int_equal(c.runs[1 - c.first], 0); /* the old reader never runs */
    assert_int_equal(c.new_runs, 0);          /* the new one waits for a poll */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(c.new_runs, 1);
    assert_int_equal(loop_remove_reader(l, a[0]), 0);
    assert_int_equal(loop_remove_reader(l, b[0]), 0);
    close_pair(a);
    close_pair(b);
    assert_int_equal(loop_free(l), 0);
}

static void test_replacing_a_writer_drops_the_old_writers_queued_dispatch(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    struct pair_ctx c = {.fd = {a[0], b[0]}, .mode = REPLACE_OTHER_WRITER, .first = -1};
    assert_int_equal(loop_add_writer(l, a[0], pair_handler, &c), 0);
    assert_int_equal(loop_add_writer(l, b[0], pair_handler, &c), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_true(c.first == 0 || c.first == 1);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(c.new_runs, 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(c.new_runs, 1);
    assert_int_equal(loop_remove_writer(l, a[0]), 0);
    assert_int_equal(loop_remove_writer(l, b[0]), 0);
    close_pair(a);
    close_pair(b);
    assert_int_equal(loop_free(l), 0);
}

static void test_reused_fd_number_never_gets_the_old_registrations_event(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    put(a[1], "x");
    put(b[1], "x");
    struct pair_ctx c = {.fd = {a[0], b[0]}, .mode = CLOSE_AND_REUSE_OTHER, .first = -1};
    assert_int_equal(loop_add_reader(l, a[0], pair_handler, &c), 0);
    assert_int_equal(loop_add_reader(l, b[0], pair_handler, &c), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_true(c.first == 0 || c.first == 1);
    assert_int_equal(c.runs[1 - c.first], 0);
    assert_int_equal(c.new_runs, 0); /* the event was the old socket's */

    /* The new socket is readable in its own right: next iteration. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(c.new_runs, 1);
    assert_int_equal(c.runs[1 - c.first], 0);

    int reused = c.fd[1 - c.first];
    assert_int_equal(loop_remove_reader(l, reused), 0);
    assert_int_equal(loop_remove_reader(l, c.fd[c.first]), 0);
    close(c.extra[0]); /* == reused */
    close(c.extra[1]);
    if (c.first == 0) {
        close_pair(a);
        close(b[1]);
    } else {
        close_pair(b);
        close(a[1]);
    }
    assert_int_equal(loop_free(l), 0);
}

static void test_add_reader_twice_replaces_the_callback(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    struct io_probe first = {0}, second = {0};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &first), 0);
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &second), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(first.runs, 0);
    assert_int_equal(second.runs, 1);
    assert_ptr_equal(second.arg_seen, &second);
    /* One registration: one removal empties it. */
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    assert_int_equal(loop_run(l), 0); /* nothing keeps it alive */

    struct io_probe w1 = {0}, w2 = {0};
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w1), 0);
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w2), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(w1.runs, 0);
    assert_int_equal(w2.runs, 1);
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_removing_one_direction_keeps_the_other(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    struct io_probe r = {0}, w = {0};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &r), 0);
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.runs, 1);
    assert_int_equal(w.runs, 1);

    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    assert_int_equal(loop_remove_writer(l, sv[0]), -ENOENT);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.runs, 2);
    assert_int_equal(w.runs, 1);

    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.runs, 2);
    assert_int_equal(w.runs, 2);
    assert_true(w.events & LOOP_WRITABLE);

    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.runs, 2);
    assert_int_equal(w.runs, 2);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- handlers changed from inside I/O callbacks ------------------------- */

struct adder {
    int target_fd;
    struct io_probe *target;
    int runs;
};

static void adding_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct adder *a = arg;
    a->runs++;
    if (a->runs == 1) {
        assert_int_equal(loop_add_reader(loop, a->target_fd, probe_reader, a->target), 0);
        /* And re-register itself, which is a replacement: its next run
         * comes from the next poll, as level-triggering requires. */
        assert_int_equal(loop_add_reader(loop, fd, adding_reader, a), 0);
    }
}

static void test_reader_added_from_an_io_callback_runs_from_the_next_iteration(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    put(a[1], "x");
    put(b[1], "x");
    struct io_probe target = {0};
    struct adder ad = {.target_fd = b[0], .target = &target};
    assert_int_equal(loop_add_reader(l, a[0], adding_reader, &ad), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(ad.runs, 1);
    assert_int_equal(target.runs, 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(ad.runs, 2);
    assert_int_equal(target.runs, 1);

    assert_int_equal(loop_remove_reader(l, a[0]), 0);
    assert_int_equal(loop_remove_reader(l, b[0]), 0);
    close_pair(a);
    close_pair(b);
    assert_int_equal(loop_free(l), 0);
}

static void test_reader_removing_itself_runs_no_more_and_lets_run_return(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "xyz"); /* stays readable: it never reads */
    struct io_probe p = {.remove_self = 1};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(loop_remove_reader(l, sv[0]), -ENOENT);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

struct closer {
    int runs;
};

static void remove_and_close_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct closer *c = arg;
    c->runs++;
    assert_int_equal(loop_remove_reader(loop, fd), 0);
    assert_int_equal(close(fd), 0);
}

static void test_reader_may_remove_and_close_its_fd_in_its_callback(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    struct closer c = {0};
    assert_int_equal(loop_add_reader(l, sv[0], remove_and_close_reader, &c), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(c.runs, 1);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

/* ---- the kernel's view: no stale registration survives removal ----------- */

static void test_removed_fd_closed_while_a_dup_stays_readable_delivers_nothing(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    int dup_fd = dup(sv[0]);
    assert_true(dup_fd >= 0);

    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);
    /* Also a writer, removed first, so the fd goes through a partial
     * change before its full removal. */
    struct io_probe w = {0};
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w), 0);
    assert_int_equal(loop_run_once(l, LOOP_SEC(5)), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(w.runs, 1);

    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close(sv[0]); /* the file lives on through dup_fd, still readable */

    /* Keep the loop waiting so that it really polls. */
    loop_ref(l);
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_run_once(l, LOOP_MS(20)), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(w.runs, 1);

    /* The loop's fd, which a host would poll, is not readable: nothing
     * stale is left in the kernel to wake (or spin) the loop. */
    struct pollfd pfd = {.fd = loop_fd(l), .events = POLLIN};
    assert_true(pfd.fd >= 0);
    assert_int_equal(poll(&pfd, 1, 0), 0);

    loop_unref(l);
    assert_int_equal(loop_run(l), 0);
    char c;
    assert_int_equal(read(dup_fd, &c, 1), 1);
    close(dup_fd);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removing_a_reader_drops_its_queued_dispatch),
        cmocka_unit_test(test_removing_a_writer_drops_its_queued_dispatch),
        cmocka_unit_test(test_replacing_a_reader_drops_the_old_readers_queued_dispatch),
        cmocka_unit_test(test_replacing_a_writer_drops_the_old_writers_queued_dispatch),
        cmocka_unit_test(test_reused_fd_number_never_gets_the_old_registrations_event),
        cmocka_unit_test(test_add_reader_twice_replaces_the_callback),
        cmocka_unit_test(test_removing_one_direction_keeps_the_other),
        cmocka_unit_test(test_reader_added_from_an_io_callback_runs_from_the_next_iteration),
        cmocka_unit_test(test_reader_removing_itself_runs_no_more_and_lets_run_return),
        cmocka_unit_test(test_reader_may_remove_and_close_its_fd_in_its_callback),
        cmocka_unit_test(test_removed_fd_closed_while_a_dup_stays_readable_delivers_nothing),
    };
    signal(SIGPIPE, SIG_IGN); /* a broken pipe fails a test, not the run */
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
