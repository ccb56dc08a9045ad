/* ctest-layers: process stream_task */
/*
 * A child's pipes as streams (loop_process_take_pipe() + loop_stream_open_fd()):
 * hundreds of KiB through /bin/cat and back with backpressure, in callback
 * and in task form; and a child whose stdin reader is gone, where a write
 * (at once or from the queue) is -EPIPE through the stream's error path,
 * never SIGPIPE: SIGPIPE stays at its default action here, so a write that
 * raised it would end this process.  A SIGPIPE the program blocked and
 * had pending before stays pending; none of the writes' is left.
 */
#include "stream_testing.h"

#include "../process/process_testing.h"
#include "loop_stream_task.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

#define BIG ((size_t)512 * 1024) /* eight times a pipe's buffer */
#define CHUNK ((size_t)16 * 1024)

static char sent[BIG];
static char got[BIG + 1];

static int setup(void **state)
{
    (void)state;
    watchdog_start("a pipe stream test", 120);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    watchdog_stop();
    assert_no_children();
    return 0;
}

static bool sigpipe_blocked(void)
{
    sigset_t mask;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
    return sigismember(&mask, SIGPIPE) == 1;
}

/* SIGPIPE at its default action and not blocked: if a write raised it,
 * this process would end there and the suite fail. */
static void assert_sigpipe_would_kill(void)
{
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_DFL);
    assert_false(sigpipe_blocked());
}

static bool sigpipe_pending(void)
{
    sigset_t pending;
    assert_int_equal(sigpending(&pending), 0);
    return sigismember(&pending, SIGPIPE) == 1;
}

static void fill_pattern(void)
{
    for (size_t i = 0; i < BIG; i++)
        sent[i] = (char)(i * 7 + i / 251);
    memset(got, 0, sizeof got);
}

/* Spawn argv with the given stdio modes. */
static loop_process *spawn(loop_t *l, const char *const *argv, int in, int out)
{
    loop_process_options o = {.argv = (char *const *)argv};
    o.stdio[0].mode = in;
    o.stdio[1].mode = out;
    loop_process *p = NULL;
    int err = loop_process_spawn(l, &o, &p);
    if (err)
        fail_msg("spawn %s: %s", argv[0], loop_strerror(err));
    return p;
}

/* A stream on the parent's end of the child's fd n. */
static loop_stream *pipe_stream(loop_t *l, loop_process *p, int n, const loop_stream_callbacks *cb,
                                void *arg)
{
    int fd = loop_process_take_pipe(p, n);
    assert_true(fd >= 0);
    loop_stream *s = NULL;
    int err = loop_stream_open_fd(l, fd, NULL, cb, arg, &s);
    if (err) {
        close(fd);
        fail_msg("open_fd: %s", loop_strerror(err));
    }
    return s;
}

static const char *const cat_argv[] = {"/bin/cat", NULL};
static const char *const true_argv[] = {"/bin/true", NULL};
static const char *const sleep_argv[] = {"/bin/sleep", "1000", NULL};

/* ---- callback form -------------------------------------------------------- */

/* Writes BIG bytes while the stream is not paused, on_drain resumes, and
 * closes the stream (the queue still leaves) once all are written. */
struct writer {
    loop_stream *s;
    size_t off;
    int drains, pauses;
    bool closed;
};

static void pump(loop_stream *s, void *arg)
{
    struct writer *w = arg;
    while (w->off < BIG && !loop_stream_write_paused(s)) {
        assert_int_equal(loop_stream_write(s, sent + w->off, CHUNK), 0);
        w->off += CHUNK;
        w->pauses += loop_stream_write_paused(s);
    }
    if (w->off == BIG && !w->closed) {
        w->closed = true;
        assert_int_equal(loop_stream_close(s), 0);
    }
}

static void writer_drained(loop_stream *s, void *arg)
{
    ((struct writer *)arg)->drains++;
    pump(s, arg);
}

/* Takes everything into got[]. */
struct reader_cb {
    size_t len;
    bool eof;
};

static void take_all(loop_stream *s, void *arg)
{
    struct reader_cb *r = arg;
    const char *p;
    size_t n;
    while (loop_stream_read(s, 0, &p, &n) == 0 && n > 0) {
        assert_true(n <= BIG - r->len);
        memcpy(got + r->len, p, n);
        r->len += n;
    }
    r->eof = loop_stream_eof(s);
}

static void test_a_child_cats_back_512_kib_written_through_a_pipe_stream_that_drains(void **state)
{
    (void)state;
    assert_sigpipe_would_kill();
    fill_pattern();
    loop_t *l = new_real_loop();
    loop_process *p = spawn(l, cat_argv, LOOP_PROCESS_PIPE, LOOP_PROCESS_PIPE);
    struct writer w = {0};
    struct reader_cb r = {0};
    loop_stream_callbacks wcb = {.on_drain = writer_drained};
    loop_stream_callbacks rcb = {.on_data = take_all};
    w.s = pipe_stream(l, p, 0, &wcb, &w);
    loop_stream *out = pipe_stream(l, p, 1, &rcb, &r);
    pump(w.s, &w);
    assert_true(w.pauses > 0); /* more than the pipe takes: the queue grew */
    RUN_UNTIL(l, r.eof);
    assert_true(w.closed);
    assert_true(w.drains > 0);
    assert_int_equal(r.len, BIG);
    assert_memory_equal(got, sent, BIG);
    assert_int_equal(wait_exit(l, p), 0);
    loop_stream_close(out);
    loop_process_free(p);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(count_children(true), 0);
}

/* A stdin pipe whose reader is gone: the child exited and was reaped. */
static loop_stream *dead_stdin(loop_t *l, struct rec *r, loop_process **p)
{
    *p = spawn(l, true_argv, LOOP_PROCESS_PIPE, LOOP_PROCESS_DEVNULL);
    assert_int_equal(wait_exit(l, *p), 0);
    return pipe_stream(l, *p, 0, &rec_cb, r);
}

static void
test_writing_to_a_child_that_exited_is_epipe_through_on_error_never_sigpipe(void **state)
{
    (void)state;
    assert_sigpipe_would_kill();
    loop_t *l = new_real_loop();
    struct rec r = {0};
    loop_process *p;
    loop_stream *s = dead_stdin(l, &r, &p);
    assert_int_equal(loop_stream_write(s, "x", 1), -EPIPE); /* we are still here */
    RUN_UNTIL(l, r.errors == 1);
    assert_int_equal(r.error, -EPIPE);
    assert_int_equal(loop_stream_error(s), -EPIPE);
    assert_int_equal(loop_stream_write(s, "y", 1), -EPIPE); /* from then on, at once */
    assert_false(loop_stream_write_paused(s));
    assert_false(sigpipe_pending());
    assert_sigpipe_would_kill(); /* the mask is back as it was */
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(r.errors, 1); /* once */
    loop_stream_close(s);
    loop_process_free(p);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(count_children(true), 0);
}

static void
test_a_failed_pipe_write_leaves_no_sigpipe_pending_but_the_programs_own_stays(void **state)
{
    (void)state;
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &pipe_only, &old), 0);
    loop_t *l = new_real_loop();
    /* The program blocks SIGPIPE: the write's is not left for it. */
    struct rec r1 = {0};
    loop_process *p1;
    loop_stream *s1 = dead_stdin(l, &r1, &p1);
    assert_false(sigpipe_pending());
    assert_int_equal(loop_stream_write(s1, "x", 1), -EPIPE);
    assert_false(sigpipe_pending());
    assert_true(sigpipe_blocked()); /* as the program left it */
    /* It has one pending of its own: that one is not taken. */
    struct rec r2 = {0};
    loop_process *p2;
    loop_stream *s2 = dead_stdin(l, &r2, &p2);
    assert_int_equal(raise(SIGPIPE), 0);
    assert_true(sigpipe_pending());
    assert_int_equal(loop_stream_write(s2, "x", 1), -EPIPE);
    assert_true(sigpipe_pending());
    const struct timespec zero = {0, 0};
    assert_int_equal(sigtimedwait(&pipe_only, NULL, &zero), SIGPIPE);
    assert_false(sigpipe_pending());
    RUN_UNTIL(l, r1.errors == 1 && r2.errors == 1);
    assert_int_equal(r1.error, -EPIPE);
    assert_int_equal(r2.error, -EPIPE);
    loop_stream_close(s1);
    loop_stream_close(s2);
    loop_process_free(p1);
    loop_process_free(p2);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    assert_sigpipe_would_kill();
}

/* Through a cat child: len bytes of text there and back. */
static void assert_cat_echoes(loop_t *l, loop_stream *in, struct rec *back, const char *text)
{
    size_t len = strlen(text), before = back->len;
    assert_int_equal(loop_stream_write(in, text, len), 0);
    RUN_UNTIL(l, back->len == before + len);
    assert_memory_equal(back->buf + before, text, len);
}

static void test_a_child_killed_while_writes_are_queued_fails_the_flush_with_epipe_and_others_go_on(
    void **state)
{
    (void)state;
    assert_sigpipe_would_kill();
    fill_pattern();
    loop_t *l = new_real_loop();
    /* Another child, served all along. */
    loop_process *cat = spawn(l, cat_argv, LOOP_PROCESS_PIPE, LOOP_PROCESS_PIPE);
    struct rec back = {.consume = true};
    loop_stream *cat_in = pipe_stream(l, cat, 0, NULL, NULL);
    loop_stream *cat_out = pipe_stream(l, cat, 1, &rec_cb, &back);
    assert_cat_echoes(l, cat_in, &back, "before");
    /* A child that never reads: the pipe fills and the rest is queued. */
    loop_process *sleeper = spawn(l, sleep_argv, LOOP_PROCESS_PIPE, LOOP_PROCESS_DEVNULL);
    struct rec r = {0};
    loop_stream *s = pipe_stream(l, sleeper, 0, &rec_cb, &r);
    assert_int_equal(loop_stream_write(s, sent, BIG), 0);
    loop_stream_info_t info;
    assert_int_equal(loop_stream_info(s, &info), 0);
    assert_true(info.queued > 0 && info.queued < BIG);
    assert_true(loop_stream_write_paused(s));
    assert_int_equal(loop_process_signal(sleeper, SIGKILL), 0);
    assert_int_equal(wait_exit(l, sleeper), -SIGKILL);
    RUN_UNTIL(l, r.errors == 1); /* the flush found the reader gone */
    assert_int_equal(r.error, -EPIPE);
    assert_int_equal(loop_stream_info(s, &info), 0);
    assert_int_equal(info.queued, 0);
    assert_false(loop_stream_write_paused(s)); /* a drain would not wait */
    assert_int_equal(r.drains, 0);
    assert_false(sigpipe_pending());
    assert_sigpipe_would_kill();
    assert_cat_echoes(l, cat_in, &back, "and after");
    loop_stream_close(s);
    loop_stream_close(cat_in); /* cat reads end of file and exits */
    RUN_UNTIL(l, back.eof);
    assert_int_equal(wait_exit(l, cat), 0);
    loop_stream_close(cat_out);
    loop_process_free(sleeper);
    loop_process_free(cat);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(count_children(true), 0);
}

/* ---- task form ------------------------------------------------------------ */

struct task_io {
    loop_stream *s;
    size_t len;
    int err;
    bool waiting; /* the writer is in its drain */
};

static int write_task(loop_t *loop, void *arg, void **result)
{
    (void)loop, (void)result;
    struct task_io *t = arg;
    for (size_t off = 0; off < BIG && !t->err; off += CHUNK) {
        t->err = loop_stream_write(t->s, sent + off, CHUNK);
        t->waiting = true;
        if (!t->err)
            t->err = loop_stream_task_drain(t->s);
        t->waiting = false;
    }
    loop_stream_close(t->s);
    t->s = NULL;
    return t->err;
}

static int read_task(loop_t *loop, void *arg, void **result)
{
    (void)loop, (void)result;
    struct task_io *t = arg;
    const char *d;
    size_t n;
    while ((t->err = loop_stream_task_read(t->s, 0, &d, &n)) == 0 && n > 0) {
        if (n > BIG - t->len)
            return t->err = -EOVERFLOW;
        memcpy(got + t->len, d, n);
        t->len += n;
    }
    return t->err;
}

static void run_task(loop_t *l, loop_task_fn *fn, void *arg, loop_task **t)
{
    assert_int_equal(loop_task_spawn(l, fn, arg, t), 0);
}

static int task_outcome(loop_t *l, loop_task *t)
{
    int err = loop_run_until_complete(l, loop_task_future(t), NULL);
    loop_task_unref(t);
    return err;
}

static void test_in_task_form_a_child_cats_back_512_kib_through_drain_and_read(void **state)
{
    (void)state;
    assert_sigpipe_would_kill();
    fill_pattern();
    loop_t *l = new_real_loop();
    loop_process *p = spawn(l, cat_argv, LOOP_PROCESS_PIPE, LOOP_PROCESS_PIPE);
    struct task_io w = {.s = pipe_stream(l, p, 0, NULL, NULL)};
    struct task_io r = {.s = pipe_stream(l, p, 1, NULL, NULL)};
    loop_task *wt, *rt;
    run_task(l, write_task, &w, &wt);
    run_task(l, read_task, &r, &rt);
    assert_int_equal(task_outcome(l, wt), 0);
    assert_int_equal(task_outcome(l, rt), 0);
    assert_int_equal(r.len, BIG);
    assert_memory_equal(got, sent, BIG);
    assert_int_equal(wait_exit(l, p), 0);
    loop_stream_close(r.s);
    loop_process_free(p);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(count_children(true), 0);
}

static void test_in_task_form_a_drain_waiting_on_a_child_that_dies_is_epipe(void **state)
{
    (void)state;
    assert_sigpipe_would_kill();
    fill_pattern();
    loop_t *l = new_real_loop();
    loop_process *sleeper = spawn(l, sleep_argv, LOOP_PROCESS_PIPE, LOOP_PROCESS_DEVNULL);
    struct task_io w = {.s = pipe_stream(l, sleeper, 0, NULL, NULL)};
    loop_task *wt;
    run_task(l, write_task, &w, &wt);
    RUN_UNTIL(l, w.waiting && loop_stream_write_paused(w.s)); /* the pipe is full */
    assert_int_equal(loop_process_signal(sleeper, SIGKILL), 0);
    assert_int_equal(task_outcome(l, wt), -EPIPE);
    assert_int_equal(w.err, -EPIPE);
    assert_int_equal(wait_exit(l, sleeper), -SIGKILL);
    /* A child gone before the first write: the write itself says so. */
    struct rec r = {0};
    loop_process *p;
    w = (struct task_io){.s = dead_stdin(l, &r, &p)};
    run_task(l, write_task, &w, &wt);
    assert_int_equal(task_outcome(l, wt), -EPIPE);
    assert_false(sigpipe_pending());
    assert_sigpipe_would_kill();
    loop_process_free(sleeper);
    loop_process_free(p);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(count_children(true), 0);
}

int main(void)
{
    /* Whatever the environment gave: the suite needs SIGPIPE's default. */
    signal(SIGPIPE, SIG_DFL);
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &pipe_only, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_a_child_cats_back_512_kib_written_through_a_pipe_stream_that_drains, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_writing_to_a_child_that_exited_is_epipe_through_on_error_never_sigpipe, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_failed_pipe_write_leaves_no_sigpipe_pending_but_the_programs_own_stays, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_child_killed_while_writes_are_queued_fails_the_flush_with_epipe_and_others_go_on,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_in_task_form_a_child_cats_back_512_kib_through_drain_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_in_task_form_a_drain_waiting_on_a_child_that_dies_is_epipe, setup, teardown),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
