/*
 * examples/adapters/glib/loop_glib.h, direction 1: libloop runs a
 * GMainContext (loop_glib_attach()).  No server: pipes, timers and idles
 * on both sides, threads that own the context or attach to it, and
 * allocations failed in turn.  glib_source.c tests direction 2.
 */
#include "glib_both.h"

/* ---- 1. libloop runs a GMainContext ---------------------------------------- */

static void test_attach_rejects_null_arguments_and_a_second_context(void **state)
{
    (void)state;
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new(), *other = g_main_context_new();
    loop_glib *lg = (loop_glib *)&lg, *second = NULL;

    assert_int_equal(loop_glib_attach(NULL, ctx, &lg), -EINVAL);
    assert_int_equal(loop_glib_attach(loop, NULL, &lg), -EINVAL);
    assert_int_equal(loop_glib_attach(loop, ctx, NULL), -EINVAL);
    assert_int_equal(loop_glib_detach(NULL), -EINVAL);
    assert_int_equal(loop_glib_attach(loop, ctx, &lg), 0);
    assert_true(g_main_context_is_owner(ctx));
    assert_int_equal(loop_glib_attach(loop, other, &second), -EEXIST);
    assert_null(second);
    assert_false(g_main_context_is_owner(other));

    assert_int_equal(loop_glib_detach(lg), 0);
    assert_false(g_main_context_is_owner(ctx));
    assert_int_equal(loop_run(loop), 0); /* nothing of GLib's is left in the loop */
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(ctx);
    g_main_context_unref(other);
    assert_same_fds(&fds_before, "by the test");
}

struct owner {
    GMainContext *ctx;
    int acquired[2], release[2]; /* pipes: "I own it", "let it go" */
};

static void *own_context(void *arg)
{
    struct owner *o = arg;
    char c = 0;
    assert_true(g_main_context_acquire(o->ctx));
    assert_int_equal(write(o->acquired[1], &c, 1), 1);
    assert_int_equal(read(o->release[0], &c, 1), 1);
    g_main_context_release(o->ctx);
    return NULL;
}

static void test_attach_to_a_context_another_thread_owns_is_ebusy(void **state)
{
    (void)state;
    struct owner o = {.ctx = g_main_context_new()};
    loop_t *loop = new_loop();
    loop_glib *lg = NULL;
    pthread_t t;
    char c = 0;
    assert_int_equal(pipe2(o.acquired, O_CLOEXEC), 0);
    assert_int_equal(pipe2(o.release, O_CLOEXEC), 0);
    assert_int_equal(pthread_create(&t, NULL, own_context, &o), 0);
    assert_int_equal(read(o.acquired[0], &c, 1), 1);

    assert_int_equal(loop_glib_attach(loop, o.ctx, &lg), -EBUSY);
    assert_null(lg);

    assert_int_equal(write(o.release[1], &c, 1), 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(loop_glib_attach(loop, o.ctx, &lg), 0); /* free now */
    assert_int_equal(loop_glib_detach(lg), 0);
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(o.ctx);
    for (int i = 0; i < 2; i++) {
        close(o.acquired[i]);
        close(o.release[i]);
    }
}

static void
test_glib_and_loop_callbacks_timers_and_fds_all_run_when_the_loop_runs_glib(void **state)
{
    (void)state;
    struct both b;
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new();
    loop_glib *lg = NULL;

    assert_int_equal(loop_glib_attach(loop, ctx, &lg), 0);
    both_init(&b, loop, ctx);
    assert_int_equal(loop_run(loop), 0);
    both_check_and_close(&b);

    assert_int_equal(loop_glib_detach(lg), 0);
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(ctx);
    assert_same_fds(&fds_before, "by the test");
}

/*
 * Idle: GLib has a timeout an hour away and a pipe nobody writes; libloop
 * stops itself in 300 ms.  The loop must sleep through: a few iterations,
 * little CPU time (see the top of this file).
 */
static void test_an_idle_loop_running_glib_sleeps_instead_of_spinning(void **state)
{
    (void)state;
    int p[2];
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new();
    loop_glib *lg = NULL;
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(loop_glib_attach(loop, ctx, &lg), 0);
    attach_source(ctx, g_timeout_source_new_seconds(3600), never, NULL);
    attach_source(ctx, g_unix_fd_source_new(p[0], G_IO_IN), never, NULL); /* never runs */
    assert_int_equal(loop_call_later(loop, LOOP_MS(IDLE_WALL_MS), stop_loop, NULL, NULL), 0);
    assert_int_equal(loop_run_once(loop, 0), 0); /* GLib's sources are watched from here on */

    uint64_t cpu0 = cpu_ns(), it0 = iterations(loop);
    assert_int_equal(loop_run(loop), 0);
    uint64_t cpu = cpu_ns() - cpu0, its = iterations(loop) - it0;

    if (its > IDLE_ITERATIONS_LIMIT)
        fail_msg("%" PRIu64 " iterations in %d ms of idling: the loop spins", its, IDLE_WALL_MS);
    if (cpu > IDLE_CPU_LIMIT_NS)
        fail_msg("%" PRIu64 " ns of CPU time in %d ms of idling: the loop spins", cpu,
                 IDLE_WALL_MS);
    assert_int_equal(loop_glib_detach(lg), 0);
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(ctx);
    close(p[0]);
    close(p[1]);
}

struct poster {
    GMainContext *ctx;
    pid_t loop_tid;
    int ran;
};

static gboolean on_posted(gpointer arg)
{
    struct poster *p = arg;
    p->ran++;
    return G_SOURCE_REMOVE;
}

static void *post_when_blocked(void *arg)
{
    struct poster *p = arg;
    wait_until_blocked(p->loop_tid);
    GSource *s = g_idle_source_new();
    g_source_set_callback(s, on_posted, p, NULL);
    g_source_attach(s, p->ctx); /* wakes the context: its wake-up fd */
    g_source_unref(s);
    return NULL;
}

/* A source attached from another thread while the loop sleeps in its poll
 * runs at once: GLib's wake-up fd is one of the fds the loop watches. */
static void test_a_source_attached_from_another_thread_wakes_the_loop_running_glib(void **state)
{
    (void)state;
    struct poster p = {.ctx = g_main_context_new(), .loop_tid = test_gettid()};
    loop_t *loop = new_loop();
    loop_glib *lg = NULL;
    pthread_t t;
    assert_int_equal(loop_glib_attach(loop, p.ctx, &lg), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(pthread_create(&t, NULL, post_when_blocked, &p), 0);

    watchdog_what("the loop to wake for a source attached from another thread");
    while (!p.ran)
        assert_int_equal(loop_run_once(loop, -1), 0);
    assert_int_equal(p.ran, 1);
    assert_int_equal(pthread_join(t, NULL), 0);

    assert_int_equal(loop_glib_detach(lg), 0);
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(p.ctx);
}

struct detacher {
    loop_glib *lg;
    int ran, second;
};

static gboolean detach_from_glib(gpointer arg)
{
    struct detacher *d = arg;
    d->ran++;
    assert_int_equal(loop_glib_detach(d->lg), 0);
    d->second = loop_glib_detach(d->lg);
    return G_SOURCE_REMOVE;
}

/* Detached from one of GLib's callbacks, the context is let go once the
 * dispatch returns: loop_run() then returns, with nothing of GLib left. */
static void test_detach_from_a_glib_callback_completes_after_the_dispatch(void **state)
{
    (void)state;
    struct detacher d = {0};
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new();
    assert_int_equal(loop_glib_attach(loop, ctx, &d.lg), 0);
    attach_source(ctx, g_idle_source_new(), detach_from_glib, &d);
    attach_source(ctx, g_timeout_source_new_seconds(3600), never, NULL);

    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(d.ran, 1);
    assert_int_equal(d.second, -EINVAL);
    assert_false(g_main_context_is_owner(ctx));
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(ctx);
    assert_same_fds(&fds_before, "by the test");
}

/*
 * A source that GLib drops (it returned G_SOURCE_REMOVE, its fd still
 * readable) is no longer watched by the loop from the next iteration on:
 * left watched, a readable fd would wake the loop for nothing, forever.
 */
static void test_the_fd_of_a_source_glib_dropped_is_no_longer_watched(void **state)
{
    (void)state;
    int ran = 0, p[2];
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new();
    loop_glib *lg = NULL;
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(write(p[1], "x", 1), 1); /* never read: p[0] stays readable */
    assert_int_equal(loop_glib_attach(loop, ctx, &lg), 0);
    attach_source(ctx, g_unix_fd_source_new(p[0], G_IO_IN), G_SOURCE_FUNC(count_fd_run), &ran);

    while (ran == 0)
        assert_int_equal(loop_run_once(loop, -1), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(loop_remove_reader(loop, p[0]), -ENOENT);

    assert_int_equal(loop_glib_detach(lg), 0);
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(ctx);
    close(p[0]);
    close(p[1]);
}

/* loop_free() detaches: the context is let go, and GLib can run it alone. */
static void test_loop_free_detaches_the_context_and_glib_can_run_it_alone(void **state)
{
    (void)state;
    int ran = 0;
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new();
    loop_glib *lg = NULL;
    assert_int_equal(loop_glib_attach(loop, ctx, &lg), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(loop_free(loop), 0);
    assert_false(g_main_context_is_owner(ctx));

    attach_source(ctx, g_idle_source_new(), count_run, &ran);
    assert_true(g_main_context_iteration(ctx, FALSE));
    assert_int_equal(ran, 1);
    g_main_context_unref(ctx);
    assert_same_fds(&fds_before, "by the test");
}

/* An fd epoll refuses (a regular file, always readable): the adapter polls
 * it itself, and GLib's source on it runs. */
static void test_an_fd_epoll_refuses_is_polled_by_the_adapter_and_its_source_runs(void **state)
{
    (void)state;
    int ran = 0;
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new();
    loop_glib *lg = NULL;
    assert_int_equal(loop_glib_attach(loop, ctx, &lg), 0);
    attach_source(ctx, g_unix_fd_source_new(fd, G_IO_IN), G_SOURCE_FUNC(count_fd_run), &ran);

    while (ran == 0)
        assert_int_equal(loop_run_once(loop, -1), 0);
    assert_int_equal(loop_glib_detach(lg), 0);
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(ctx);
    close(fd);
}

/*
 * More fds than the adapter's first array holds.  GLib lists them in the
 * order they were attached, and only the last one is ever readable: when
 * the array cannot grow, the adapter must not sleep on the others.  That
 * one is at a high number, so that watching it grows the loop's fd table:
 * when that fails, the adapter must not sleep either.
 */
enum { OOM_FDS = 12, OOM_QUIET = 11 };

struct oom_run {
    loop_t *loop;
    int fds[OOM_FDS][2];
    int ran;
};

static gboolean oom_fd(gint fd, GIOCondition condition, gpointer arg)
{
    struct oom_run *r = arg;
    char c;
    (void)condition;
    assert_int_equal(read(fd, &c, 1), 1);
    if (++r->ran == OOM_FDS - OOM_QUIET)
        loop_stop(r->loop);
    return G_SOURCE_REMOVE;
}

/*
 * Every allocation the adapter and the loop make through the loop's
 * allocator fails in turn (the adapter, its fd array when GLib's fds
 * outgrow it, the loop's fd table for fds at high numbers, ...): the
 * attach fails with -ENOMEM and changes nothing, or GLib's sources on the
 * readable fds still run; nothing is left allocated or open.
 */
static void test_each_failed_allocation_is_enomem_or_glib_still_runs_every_source(void **state)
{
    (void)state;
    static struct oom_run r;
    long at;

    for (at = 1;; at++) {
        struct counting_alloc a = {0};
        loop_t *loop = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        GMainContext *ctx = g_main_context_new();
        loop_glib *lg = NULL;
        a.fail_at = a.calls + at; /* the loop's own first allocations are done */
        int err = loop_glib_attach(loop, ctx, &lg);
        if (err == 0) {
            /* A new context's wake-up fd is readable: consume it now, so
             * that nothing but the adapter's timer can wake the loop. */
            while (loop_run_once(loop, 0) == -ENOMEM)
                ;
            memset(&r, 0, sizeof(r));
            r.loop = loop;
            for (int i = 0; i < OOM_FDS; i++) {
                assert_int_equal(pipe2(r.fds[i], O_CLOEXEC), 0);
                if (i < OOM_QUIET)
                    continue;
                int high = fcntl(r.fds[i][0], F_DUPFD_CLOEXEC, 900);
                close(r.fds[i][0]);
                r.fds[i][0] = high;
                assert_int_equal(write(r.fds[i][1], "x", 1), 1);
            }
            for (int i = 0; i < OOM_FDS; i++) {
                attach_source(ctx, g_unix_fd_source_new(r.fds[i][0], G_IO_IN),
                              G_SOURCE_FUNC(oom_fd), &r);
            }
            while ((err = loop_run(loop)) == -ENOMEM)
                ; /* the loop could not grow its ready queue: run it again */
            assert_int_equal(err, 0);
            assert_int_equal(r.ran, OOM_FDS - OOM_QUIET);
            assert_int_equal(loop_glib_detach(lg), 0);
            for (int i = 0; i < OOM_FDS; i++) {
                close(r.fds[i][0]);
                close(r.fds[i][1]);
            }
        } else {
            assert_int_equal(err, -ENOMEM);
            assert_null(lg);
            assert_false(g_main_context_is_owner(ctx));
        }
        assert_int_equal(loop_free(loop), 0);
        g_main_context_unref(ctx);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        assert_same_fds(&fds_before, "after a failed allocation");
        if (a.failures == 0)
            break; /* the run got past every allocation */
    }
    assert_true(at > 4);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_attach_rejects_null_arguments_and_a_second_context),
        T(test_attach_to_a_context_another_thread_owns_is_ebusy),
        T(test_glib_and_loop_callbacks_timers_and_fds_all_run_when_the_loop_runs_glib),
        T(test_an_idle_loop_running_glib_sleeps_instead_of_spinning),
        T(test_a_source_attached_from_another_thread_wakes_the_loop_running_glib),
        T(test_detach_from_a_glib_callback_completes_after_the_dispatch),
        T(test_loop_free_detaches_the_context_and_glib_can_run_it_alone),
        T(test_the_fd_of_a_source_glib_dropped_is_no_longer_watched),
        T(test_an_fd_epoll_refuses_is_polled_by_the_adapter_and_its_source_runs),
        T(test_each_failed_allocation_is_enomem_or_glib_still_runs_every_source),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
#undef T
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
