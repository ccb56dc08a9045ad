/*
 * examples/adapters/glib/loop_glib.h, direction 2: GLib runs a loop
 * (loop_glib_source_new()), and glib_demo, whose path is argv[1], each way
 * round.  glib_adapter.c tests direction 1.
 */
#include "glib_both.h"

#include <sys/wait.h>

static const char *demo_path;

/* ---- 2. GLib runs a loop ---------------------------------------------------- */

static void test_source_new_rejects_null_arguments(void **state)
{
    (void)state;
    loop_t *loop = new_loop();
    GSource *s = (GSource *)&s;
    assert_int_equal(loop_glib_source_new(NULL, &s), -EINVAL);
    assert_int_equal(loop_glib_source_new(loop, NULL), -EINVAL);
    assert_int_equal(loop_free(loop), 0);
}

static void count_loop_run(loop_t *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

static GSource *attach_loop_source(loop_t *loop, GMainContext *ctx)
{
    GSource *s = NULL;
    assert_int_equal(loop_glib_source_new(loop, &s), 0);
    assert_non_null(s);
    g_source_attach(s, ctx);
    return s;
}

static void
test_glib_and_loop_callbacks_timers_and_fds_all_run_when_glib_runs_the_loop(void **state)
{
    (void)state;
    struct both b;
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new();
    GSource *s = attach_loop_source(loop, ctx);

    both_init(&b, loop, ctx);
    b.main_loop = g_main_loop_new(ctx, FALSE);
    g_main_loop_run(b.main_loop);
    both_check_and_close(&b);

    g_main_loop_unref(b.main_loop);
    g_source_destroy(s);
    g_source_unref(s); /* finalized: it lets go of the loop */
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(ctx);
    assert_same_fds(&fds_before, "by the test");
}

static gboolean quit_main_loop(gpointer arg)
{
    g_main_loop_quit(arg);
    return G_SOURCE_REMOVE;
}

static void never_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    (void)arg;
    fail_msg("a pipe nobody writes was readable");
}

static void never_cb(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    fail_msg("a timer an hour away ran");
}

/*
 * GLib has nothing of its own: one blocking iteration of the context must
 * sleep until the loop's timer is due (the source's timeout), and run it
 * in that same iteration (the source's check).
 */
static void test_one_blocking_glib_iteration_runs_a_due_loop_timer(void **state)
{
    (void)state;
    int ran = 0;
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new();
    GSource *s = attach_loop_source(loop, ctx);
    assert_int_equal(loop_call_later(loop, LOOP_MS(20), count_loop_run, &ran, NULL), 0);
    /* The first iteration of each: GLib's consumes the wake-up that
     * attaching the source made. */
    assert_int_equal(loop_run_once(loop, 0), 0);
    g_main_context_iteration(ctx, FALSE);
    assert_int_equal(ran, 0);

    g_main_context_iteration(ctx, TRUE);
    assert_int_equal(ran, 1);

    g_source_destroy(s);
    g_source_unref(s);
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(ctx);
}

/*
 * Idle: libloop has a timer an hour away and a pipe nobody writes; GLib
 * quits in 300 ms.  GLib must sleep through: the loop runs a handful of
 * iterations, and the process uses little CPU time (see the top).
 */
static void test_idle_glib_running_the_loop_sleeps_instead_of_spinning(void **state)
{
    (void)state;
    int p[2];
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new();
    GMainLoop *main_loop = g_main_loop_new(ctx, FALSE);
    GSource *s = attach_loop_source(loop, ctx);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(loop_add_reader(loop, p[0], never_io, NULL), 0);
    assert_int_equal(loop_call_later(loop, LOOP_SEC(3600), never_cb, NULL, NULL), 0);
    GSource *quit = g_timeout_source_new(IDLE_WALL_MS);
    g_source_set_callback(quit, quit_main_loop, main_loop, NULL);
    g_source_attach(quit, ctx);
    g_source_unref(quit);
    g_main_context_iteration(ctx, FALSE); /* the first iteration of each side */

    uint64_t cpu0 = cpu_ns(), it0 = iterations(loop);
    g_main_loop_run(main_loop);
    uint64_t cpu = cpu_ns() - cpu0, its = iterations(loop) - it0;

    if (its > IDLE_ITERATIONS_LIMIT)
        fail_msg("%" PRIu64 " loop iterations in %d ms of idling: GLib spins", its, IDLE_WALL_MS);
    if (cpu > IDLE_CPU_LIMIT_NS)
        fail_msg("%" PRIu64 " ns of CPU time in %d ms of idling: GLib spins", cpu, IDLE_WALL_MS);
    g_main_loop_unref(main_loop);
    g_source_destroy(s);
    g_source_unref(s);
    assert_int_equal(loop_remove_reader(loop, p[0]), 0);
    assert_int_equal(loop_free(loop), 0);
    g_main_context_unref(ctx);
    close(p[0]);
    close(p[1]);
}

/* loop_free() destroys the source; the caller's reference stays valid and
 * the context goes on without the loop. */
static void test_loop_free_destroys_the_source_and_glib_goes_on(void **state)
{
    (void)state;
    int ran = 0, loop_ran = 0;
    loop_t *loop = new_loop();
    GMainContext *ctx = g_main_context_new();
    GSource *s = attach_loop_source(loop, ctx);
    assert_int_equal(loop_call_soon(loop, count_loop_run, &loop_ran, NULL), 0);
    g_main_context_iteration(ctx, FALSE);
    assert_int_equal(loop_ran, 1); /* GLib ran the loop */

    assert_int_equal(loop_free(loop), 0);
    assert_true(g_source_is_destroyed(s));
    attach_source(ctx, g_idle_source_new(), count_run, &ran);
    while (ran == 0)
        g_main_context_iteration(ctx, TRUE);
    g_source_unref(s);
    g_main_context_unref(ctx);
    assert_same_fds(&fds_before, "by the test");
}

/* ---- the demo -------------------------------------------------------------- */

static int run_demo(const char *mode, char *out, size_t size)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
            _exit(126);
        execl(demo_path, demo_path, mode, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t got;
    while ((got = read(p[0], out + n, size - 1 - n)) > 0)
        n += (size_t)got;
    out[n] = '\0';
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_demo_sees_every_event_each_way_round(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "glib: idle ran\n",
        "loop: call_soon ran\n",
        "glib: timeout ran, wrote to the loop's pipe\n",
        "loop: timer ran, wrote to GLib's pipe\n",
        "loop: pipe readable: \"from glib\"\n",
        "glib: pipe readable: \"from loop\"\n",
        "all 6 events seen\n",
    };
    static char out[4096];
    const char *modes[] = {"loop-runs-glib", "glib-runs-loop"};
    for (int m = 0; m < 2; m++) {
        if (run_demo(modes[m], out, sizeof(out)) != 0)
            fail_msg("glib_demo %s failed:\n%s", modes[m], out);
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
            if (!strstr(out, lines[i]))
                fail_msg("glib_demo %s did not print %s", modes[m], lines[i]);
    }
    assert_int_equal(run_demo("neither", out, sizeof(out)), 2);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--skip") == 0) {
        printf("SKIP: %s\n", argv[2]);
        return 77;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: glib_source GLIB_DEMO | --skip REASON\n");
        return 2;
    }
    demo_path = argv[1];
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_source_new_rejects_null_arguments),
        T(test_glib_and_loop_callbacks_timers_and_fds_all_run_when_glib_runs_the_loop),
        T(test_one_blocking_glib_iteration_runs_a_due_loop_timer),
        T(test_idle_glib_running_the_loop_sleeps_instead_of_spinning),
        T(test_loop_free_destroys_the_source_and_glib_goes_on),
        T(test_demo_sees_every_event_each_way_round),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
#undef T
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
