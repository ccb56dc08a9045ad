/*
 * What the two GLib suites share (glib_adapter.c: libloop runs GLib;
 * glib_source.c: GLib runs libloop): on each side a callback to run soon,
 * a timer and an fd, the idle limits, and small callbacks.
 *
 * The "sleeps instead of spinning" tests are resource checks, not timing
 * claims: a program with nothing to do for IDLE_WALL_MS of wall time must
 * have run a handful of loop iterations and used little CPU time (under
 * 30 ms, a bound a spinning loop exceeds tenfold, and an idle one misses
 * by as much); neither assertion is about when anything ran.
 */
#ifndef TESTS_GLIB_BOTH_H
#define TESTS_GLIB_BOTH_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <glib-unix.h>
#include <pthread.h>
#include <sys/wait.h>

#include "counting_alloc.h"
#include "fdleak.h"
#include "loop_glib.h"
#include "watchdog.h"

#define IDLE_WALL_MS 300
#define IDLE_CPU_LIMIT_NS LOOP_MS(30)
#define IDLE_ITERATIONS_LIMIT 10

static struct fdlist fds_before;

static inline int setup(void **state)
{
    (void)state;
    watchdog_start("a GLib adapter test", 30);
    fdlist_take(&fds_before);
    return 0;
}

static inline int teardown(void **state)
{
    (void)state;
    watchdog_stop();
    return 0;
}

static inline loop_t *new_loop(void)
{
    loop_t *loop = NULL;
    assert_int_equal(loop_new(&loop), 0);
    return loop;
}

static inline uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t iterations(loop_t *loop)
{
    loop_stats_t s;
    assert_int_equal(loop_stats(loop, &s), 0);
    return s.iterations;
}

/* ---- what both sides schedule ---------------------------------------------- */

/*
 * Each side: a callback to run soon, a timer, and a watch on a pipe of its
 * own that the other side's timer writes to.  `want` events in all; when
 * the last one runs, the driving loop is stopped.
 */
struct both {
    loop_t *loop;
    GMainContext *ctx;
    GMainLoop *main_loop; /* set when GLib runs the loop */
    int glib_pipe[2], loop_pipe[2];
    int glib_idle, glib_timeout, glib_fd, loop_soon, loop_timer, loop_fd;
    int seen, want;
};

static inline void saw(struct both *b)
{
    if (++b->seen < b->want)
        return;
    if (b->main_loop)
        g_main_loop_quit(b->main_loop);
    else
        loop_stop(b->loop);
}

static inline gboolean on_glib_idle(gpointer arg)
{
    struct both *b = arg;
    b->glib_idle++;
    saw(b);
    return G_SOURCE_REMOVE;
}

static inline gboolean on_glib_timeout(gpointer arg)
{
    struct both *b = arg;
    assert_int_equal(write(b->loop_pipe[1], "g", 1), 1);
    b->glib_timeout++;
    saw(b);
    return G_SOURCE_REMOVE;
}

static inline gboolean on_glib_fd(gint fd, GIOCondition condition, gpointer arg)
{
    struct both *b = arg;
    char c;
    assert_true(condition & G_IO_IN);
    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(c, 'l');
    b->glib_fd++;
    saw(b);
    return G_SOURCE_REMOVE;
}

static inline void on_loop_soon(loop_t *loop, void *arg)
{
    struct both *b = arg;
    (void)loop;
    b->loop_soon++;
    saw(b);
}

static inline void on_loop_timer(loop_t *loop, void *arg)
{
    struct both *b = arg;
    (void)loop;
    assert_int_equal(write(b->glib_pipe[1], "l", 1), 1);
    b->loop_timer++;
    saw(b);
}

static inline void on_loop_fd(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct both *b = arg;
    char c;
    assert_true(events & LOOP_READABLE);
    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(c, 'g');
    assert_int_equal(loop_remove_reader(loop, fd), 0);
    b->loop_fd++;
    saw(b);
}

static inline void attach_source(GMainContext *ctx, GSource *s, GSourceFunc fn, void *arg)
{
    g_source_set_callback(s, fn, arg, NULL);
    g_source_attach(s, ctx);
    g_source_unref(s);
}

static inline void both_init(struct both *b, loop_t *loop, GMainContext *ctx)
{
    memset(b, 0, sizeof(*b));
    b->loop = loop;
    b->ctx = ctx;
    b->want = 6;
    assert_int_equal(pipe2(b->glib_pipe, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pipe2(b->loop_pipe, O_CLOEXEC | O_NONBLOCK), 0);
    attach_source(ctx, g_idle_source_new(), on_glib_idle, b);
    attach_source(ctx, g_timeout_source_new(20), on_glib_timeout, b);
    attach_source(ctx, g_unix_fd_source_new(b->glib_pipe[0], G_IO_IN), G_SOURCE_FUNC(on_glib_fd),
                  b);
    assert_int_equal(loop_call_soon(loop, on_loop_soon, b, NULL), 0);
    assert_int_equal(loop_call_later(loop, LOOP_MS(10), on_loop_timer, b, NULL), 0);
    assert_int_equal(loop_add_reader(loop, b->loop_pipe[0], on_loop_fd, b), 0);
}

static inline void both_check_and_close(struct both *b)
{
    assert_int_equal(b->glib_idle, 1);
    assert_int_equal(b->glib_timeout, 1);
    assert_int_equal(b->glib_fd, 1);
    assert_int_equal(b->loop_soon, 1);
    assert_int_equal(b->loop_timer, 1);
    assert_int_equal(b->loop_fd, 1);
    for (int i = 0; i < 2; i++) {
        close(b->glib_pipe[i]);
        close(b->loop_pipe[i]);
    }
}

static inline gboolean never(gpointer arg)
{
    (void)arg;
    fail_msg("a source that must not run ran");
    return G_SOURCE_REMOVE;
}

static inline void stop_loop(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static inline gboolean count_run(gpointer arg)
{
    (*(int *)arg)++;
    return G_SOURCE_REMOVE;
}

static inline gboolean count_fd_run(gint fd, GIOCondition condition, gpointer arg)
{
    (void)fd;
    assert_true(condition & G_IO_IN);
    (*(int *)arg)++;
    return G_SOURCE_REMOVE;
}

#endif /* TESTS_GLIB_BOTH_H */
