/*
 * fd readiness: readers and writers over real pipes and socketpairs,
 * level-triggering, hang-ups and errors, the phase order of an iteration,
 * flow control, many fds at once, and what keeps a loop with fds alive.
 * Queued dispatches of changed registrations: test_io_dispatch.c; bad fds:
 * test_io_errors.c.
 */
#include "fixtures.h"
#include "io_probe.h"
#include "record.h"
#include "sockets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- readiness ---------------------------------------------------------- */

static void test_readable_fd_runs_its_reader_with_fd_and_arg(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    struct io_probe p = {.read_each = 1};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);

    /* Not readable yet: nothing runs. */
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(p.runs, 0);

    put(sv[1], "x");
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(p.fd_seen, sv[0]);
    assert_ptr_equal(p.arg_seen, &p);
    assert_true(p.events & LOOP_READABLE);

    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_writable_fd_runs_its_writer(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    struct io_probe p = {0};
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &p), 0);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(p.runs, 1);
    assert_int_equal(p.fd_seen, sv[0]);
    assert_true(p.events & LOOP_WRITABLE);
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_reader_is_level_triggered(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "ab");
    struct io_probe p = {0}; /* never reads */
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
        assert_int_equal(p.runs, i);
    }
    /* Reading one byte at a time: two more runs, then silence. */
    p.read_each = 1;
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(p.runs, 7);
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(p.runs, 7);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_peer_close_delivers_hup_to_the_reader(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);

    int sv[2];
    make_socketpair(sv);
    struct io_probe ps = {0};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &ps), 0);
    close(sv[1]);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_true(ps.runs >= 1);
    assert_true(ps.events & (LOOP_HUP | LOOP_READABLE));
    char c;
    assert_int_equal(read(sv[0], &c, 1), 0); /* end of file, as the bit said */
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close(sv[0]);

    int p[2];
    make_pipe(p);
    struct io_probe pp = {0};
    assert_int_equal(loop_add_reader(l, p[0], probe_reader, &pp), 0);
    close(p[1]);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(pp.runs, 1);
    assert_true(pp.events & LOOP_HUP); /* a pipe reports only EPOLLHUP */
    assert_int_equal(loop_remove_reader(l, p[0]), 0);
    close(p[0]);
    assert_int_equal(loop_free(l), 0);
}

static void test_closed_read_end_delivers_an_error_to_the_writer(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);

    /* A full pipe: not writable, so the writer waits... */
    int p[2];
    make_pipe(p);
    char buf[4096];
    memset(buf, 'z', sizeof buf);
    while (write(p[1], buf, sizeof buf) > 0) {
    }
    assert_true(errno == EAGAIN);
    struct io_probe w = {0};
    assert_int_equal(loop_add_writer(l, p[1], probe_writer, &w), 0);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(w.runs, 0);
    /* ...until its reader goes away: an error, with still no room. */
    close(p[0]);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(w.runs, 1);
    assert_true(w.events & LOOP_ERROR);
    assert_int_equal(loop_remove_writer(l, p[1]), 0);
    close(p[1]);

    int sv[2];
    make_socketpair(sv);
    struct io_probe ws = {0};
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &ws), 0);
    close(sv[1]);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(ws.runs, 1);
    assert_true(ws.events & (LOOP_HUP | LOOP_ERROR | LOOP_WRITABLE));
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    close(sv[0]);
    assert_int_equal(loop_free(l), 0);
}

static void test_pending_socket_error_runs_the_reader(void **state)
{
    (void)state;
    /* A connection refused on loopback: EPOLLERR with nothing to read. */
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        skip();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(probe, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(probe, (struct sockaddr *)&a, &alen) != 0) {
        close(probe);
        skip();
    }
    close(probe); /* the port is now closed: nothing listens there */

    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    int rc = connect(s, (struct sockaddr *)&a, sizeof a);
    assert_true(rc == -1 && (errno == EINPROGRESS || errno == ECONNREFUSED));

    loop_t *l = new_real_loop();
    struct io_probe p = {0};
    assert_int_equal(loop_add_reader(l, s, probe_reader, &p), 0);
    assert_int_equal(loop_run_once(l, LOOP_SEC(5)), 0);
    assert_int_equal(p.runs, 1);
    assert_true(p.events & (LOOP_ERROR | LOOP_HUP));
    assert_int_equal(loop_remove_reader(l, s), 0);
    close(s);
    assert_int_equal(loop_free(l), 0);
}

/* ---- the phase order of one iteration ------------------------------------ */

static void test_iteration_runs_ready_then_io_then_timers(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x"); /* readable, and writable too */
    struct record o = {0};
    struct mark t = {&o, 'T'}, r = {&o, 'R'}, w = {&o, 'W'}, s = {&o, 'S'};

    /* Registered in the reverse of the order they must run in. */
    assert_int_equal(loop_call_at(l, loop_now(l), record_cb, &t, NULL), 0);
    assert_int_equal(loop_add_writer(l, sv[0], record_io, &w), 0);
    assert_int_equal(loop_add_reader(l, sv[0], record_io, &r), 0);
    assert_int_equal(loop_call_soon(l, record_cb, &s, NULL), 0);

    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(o.n, 4);
    assert_string_equal(record_string(&o), "SRWT");

    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_reader_and_writer_on_one_fd_run_reader_then_writer(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    put(sv[1], "x");
    struct record o = {0};
    struct mark r = {&o, 'R'}, w = {&o, 'W'};
    assert_int_equal(loop_add_writer(l, sv[0], record_io, &w), 0);
    assert_int_equal(loop_add_reader(l, sv[0], record_io, &r), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(o.n, 4);
    assert_string_equal(record_string(&o), "RWRW");
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- flow control --------------------------------------------------------- */

static void test_writer_on_a_full_socket_waits_until_the_peer_reads(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    char buf[4096];
    memset(buf, 'z', sizeof buf);
    size_t total = 0;
    for (;;) {
        ssize_t n = write(sv[0], buf, sizeof buf);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        total += (size_t)n;
    }
    assert_true(total > 0);

    struct io_probe w = {.remove_self = 1};
    assert_int_equal(loop_add_writer(l, sv[0], probe_writer, &w), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(w.runs, 0);

    size_t drained = 0;
    for (;;) {
        ssize_t n = read(sv[1], buf, sizeof buf);
        if (n <= 0)
            break;
        drained += (size_t)n;
    }
    assert_true(drained == total);
    assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    assert_int_equal(w.runs, 1);
    assert_true(w.events & LOOP_WRITABLE);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

/* ---- many fds --------------------------------------------------------------- */

/* want, or as many pairs as the fd limit allows. */
static int usable_pairs(int want)
{
    size_t need = (size_t)want * 2 + 64;
    size_t limit = raise_fd_limit(need);
    return limit >= need ? want : (int)((limit - 64) / 2);
}

struct many {
    int runs;
    int bad_events;
};

static void many_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    struct many *m = arg;
    m->runs++;
    if (!(events & LOOP_READABLE))
        m->bad_events++;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
}

static void many_reader_no_read(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct many *m = arg;
    m->runs++;
}

static void test_every_reader_of_1000_readable_socketpairs_runs(void **state)
{
    (void)state;
    int n = usable_pairs(1000);
    assert_true(n >= 400);
    int(*sv)[2] = calloc((size_t)n, sizeof *sv);
    struct many *m = calloc((size_t)n, sizeof *m);
    assert_non_null(sv);
    assert_non_null(m);
    loop_t *l = new_real_loop();
    for (int i = 0; i < n; i++) {
        make_socketpair(sv[i]);
        put(sv[i][1], "x");
        assert_int_equal(loop_add_reader(l, sv[i][0], many_reader, &m[i]), 0);
    }
    /* A poll may report only so many events at once; every ready fd must
     * still get its turn within a few iterations. */
    for (int it = 0; it < 4; it++)
        assert_int_equal(loop_run_once(l, 0), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(m[i].runs, 1);
        assert_int_equal(m[i].bad_events, 0);
    }

    /* Readers that never read stay ready: none of them starves. */
    for (int i = 0; i < n; i++) {
        m[i].runs = 0;
        put(sv[i][1], "y");
        assert_int_equal(loop_add_reader(l, sv[i][0], many_reader_no_read, &m[i]), 0);
    }
    for (int it = 0; it < 4; it++)
        assert_int_equal(loop_run_once(l, 0), 0);
    for (int i = 0; i < n; i++)
        assert_true(m[i].runs >= 1);

    for (int i = 0; i < n; i++) {
        assert_int_equal(loop_remove_reader(l, sv[i][0]), 0);
        close_pair(sv[i]);
    }
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(loop_free(l), 0);
    free(sv);
    free(m);
}

/* ---- liveness ----------------------------------------------------------------- */

static void write_later_cb(loop_t *loop, void *arg)
{
    (void)loop;
    put(*(int *)arg, "x");
}

static void test_fd_handler_keeps_run_alive_until_removed(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(false);
    int sv[2];
    make_socketpair(sv);
    struct io_probe p = {.read_each = 1, .remove_self = 1};
    assert_int_equal(loop_add_reader(l, sv[0], probe_reader, &p), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(1), write_later_cb, &sv[1], NULL), 0);
    /* After the timer, only the reader keeps the loop going; it then
     * removes itself, and run returns. */
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(p.runs, 1);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static volatile sig_atomic_t signals_seen;

static void on_sigusr1(int signo)
{
    (void)signo;
    signals_seen++;
}

static void test_signal_interrupting_the_poll_is_not_an_error(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = on_sigusr1}, old;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the wait sees EINTR */
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
    timer_t tid;
    assert_int_equal(timer_create(CLOCK_MONOTONIC, &sev, &tid), 0);
    signals_seen = 0;

    loop_t *l = new_loop_with((loop_options){.strict_poll = true});
    loop_ref(l);
    int ran = 0;
    /* The signal comes 10 ms in, while the loop waits for a 100 ms timer. */
    struct itimerspec its = {.it_value = {.tv_nsec = 10 * 1000 * 1000}};
    assert_int_equal(loop_call_later(l, LOOP_MS(100), count_cb, &ran, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_MS(100), stop_cb, NULL, NULL), 0);
    assert_int_equal(timer_settime(tid, 0, &its, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(ran, 1);
    assert_true(signals_seen >= 1);

    /* And loop_run_once: an interrupted wait is an iteration, 0. */
    assert_int_equal(timer_settime(tid, 0, &its, NULL), 0);
    assert_int_equal(loop_run_once(l, LOOP_MS(200)), 0);
    while (signals_seen < 2) /* delivered by now or imminently */
        assert_int_equal(loop_run_once(l, LOOP_MS(200)), 0);

    loop_unref(l);
    timer_delete(tid);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readable_fd_runs_its_reader_with_fd_and_arg),
        cmocka_unit_test(test_writable_fd_runs_its_writer),
        cmocka_unit_test(test_reader_is_level_triggered),
        cmocka_unit_test(test_peer_close_delivers_hup_to_the_reader),
        cmocka_unit_test(test_closed_read_end_delivers_an_error_to_the_writer),
        cmocka_unit_test(test_pending_socket_error_runs_the_reader),
        cmocka_unit_test(test_iteration_runs_ready_then_io_then_timers),
        cmocka_unit_test(test_reader_and_writer_on_one_fd_run_reader_then_writer),
        cmocka_unit_test(test_writer_on_a_full_socket_waits_until_the_peer_reads),
        cmocka_unit_test(test_every_reader_of_1000_readable_socketpairs_runs),
        cmocka_unit_test(test_fd_handler_keeps_run_alive_until_removed),
        cmocka_unit_test(test_signal_interrupting_the_poll_is_not_an_error),
    };
    signal(SIGPIPE, SIG_IGN); /* a broken pipe fails a test, not the run */
    alarm(120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
