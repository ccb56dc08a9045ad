/*
 * Embedding libloop in another main loop: loop_fd() is readable exactly
 * when a watched fd is ready, a threadsafe call is queued or a signal
 * arrived; loop_timeout_ns() says how long the host may sleep (0 while
 * callbacks are ready, a stop is pending, fd changes are queued or a timer
 * is due); a poll()-based host that follows both runs timers, fd handlers
 * and threadsafe calls; and examples/embed does the same as a program.
 */
#include "fixtures.h"
#include "poster.h"
#include "sockets.h"
#include "watchdog.h"

#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- loop_fd -------------------------------------------------------------- */

static void test_loop_fd_and_timeout_of_null_are_einval_and_minus_one(void **state)
{
    (void)state;
    assert_int_equal(loop_fd(NULL), -EINVAL);
    assert_true(loop_timeout_ns(NULL) == -1);
}

static void test_loop_fd_is_readable_only_while_a_watched_fd_is_ready(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    int sv[2], reads = 0;
    make_socketpair(sv);
    assert_true(loop_fd(l) >= 0);
    assert_false(fd_readable(loop_fd(l)));
    assert_int_equal(loop_add_reader(l, sv[0], drain_io, &reads), 0);
    assert_false(fd_readable(loop_fd(l)));

    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_true(fd_readable(loop_fd(l)));
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(reads, 1);
    assert_false(fd_readable(loop_fd(l))); /* drained */

    /* A writer on a socket with room is ready at once. */
    int writes = 0;
    assert_int_equal(loop_add_writer(l, sv[1], count_io, &writes), 0);
    assert_true(fd_readable(loop_fd(l)));
    assert_int_equal(loop_remove_writer(l, sv[1]), 0);
    assert_false(fd_readable(loop_fd(l)));

    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_loop_fd_is_readable_while_a_threadsafe_call_is_queued(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    int runs = 0;
    struct poster p = {.loop = l, .fn = count_cb, .arg = &runs};
    assert_int_equal(poster_start(&p), 0);
    assert_int_equal(poster_join(&p), 0);
    assert_true(fd_readable(loop_fd(l)));
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(runs, 1);
    assert_false(fd_readable(loop_fd(l)));
    assert_int_equal(loop_free(l), 0);
}

static void test_loop_fd_is_readable_after_a_handled_signal_arrives(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    int runs = 0;
    assert_int_equal(loop_add_signal(l, SIGUSR2, count_cb, &runs), 0);
    assert_false(fd_readable(loop_fd(l)));
    raise(SIGUSR2);
    assert_true(fd_readable(loop_fd(l)));
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(runs, 1);
    assert_false(fd_readable(loop_fd(l)));
    assert_int_equal(loop_free(l), 0);
}

/* ---- loop_timeout_ns ------------------------------------------------------ */

static void test_timeout_is_minus_one_when_only_fds_signals_or_threads_can_bring_work(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    assert_true(loop_timeout_ns(l) == -1); /* nothing at all */
    int sv[2], n = 0;
    make_socketpair(sv);
    assert_int_equal(loop_add_reader(l, sv[0], count_io, &n), 0);
    assert_int_equal(loop_add_signal(l, SIGUSR2, count_cb, &n), 0);
    loop_ref(l);
    assert_true(loop_timeout_ns(l) == -1);
    /* A queued threadsafe call is announced by loop_fd, not by the timeout. */
    assert_int_equal(loop_call_soon_threadsafe(l, count_cb, &n), 0);
    assert_true(fd_readable(loop_fd(l)));
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(n, 1);
    assert_true(loop_timeout_ns(l) == -1);
    loop_unref(l);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_timeout_is_zero_while_callbacks_are_ready(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    int runs = 0;
    assert_int_equal(loop_call_later(l, LOOP_SEC(100), count_cb, &runs, NULL), 0);
    assert_true(loop_timeout_ns(l) > 0);
    assert_int_equal(loop_call_soon(l, count_cb, &runs, NULL), 0);
    assert_true(loop_timeout_ns(l) == 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(runs, 1);
    assert_true(loop_timeout_ns(l) > 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_timeout_is_zero_while_a_stop_is_pending(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    loop_ref(l);
    assert_true(loop_timeout_ns(l) == -1);
    loop_stop(l);
    assert_true(loop_timeout_ns(l) == 0);
    assert_int_equal(loop_run_once(l, -1), 0); /* consumes the stop, without waiting */
    assert_true(loop_timeout_ns(l) == -1);
    loop_unref(l);
    assert_int_equal(loop_free(l), 0);
}

static void test_timeout_is_zero_while_fd_changes_are_queued(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    int sv[2], n = 0;
    make_socketpair(sv);
    assert_int_equal(loop_add_reader(l, sv[0], count_io, &n), 0);
    assert_true(loop_timeout_ns(l) == -1);
    /* A second direction on a watched fd is batched until the next poll:
     * the host must let the loop poll before it sleeps on loop_fd. */
    assert_int_equal(loop_add_writer(l, sv[0], count_io, &n), 0);
    assert_true(loop_timeout_ns(l) == 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(n, 1); /* the writer: the socket has room */
    assert_int_equal(loop_remove_writer(l, sv[0]), 0);
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close_pair(sv);
    assert_int_equal(loop_free(l), 0);
}

static void test_timeout_is_the_time_to_the_earliest_timer(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    int runs = 0;
    assert_int_equal(loop_call_later(l, LOOP_SEC(100), count_cb, &runs, NULL), 0);
    assert_int_equal(loop_call_later(l, LOOP_SEC(50), count_cb, &runs, NULL), 0);
    int64_t t = loop_timeout_ns(l);
    assert_true(t > 0);
    assert_true(t <= (int64_t)LOOP_SEC(50));
    /* A timer already due: 0. */
    assert_int_equal(loop_call_at(l, loop_now(l), count_cb, &runs, NULL), 0);
    assert_true(loop_timeout_ns(l) == 0);
    assert_int_equal(loop_free(l), 0);
}

static void test_timeout_on_the_virtual_clock_is_zero_while_a_timer_is_pending(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){.clock = LOOP_CLOCK_VIRTUAL});
    int runs = 0;
    assert_true(loop_timeout_ns(l) == -1);
    assert_int_equal(loop_call_later(l, LOOP_SEC(100), count_cb, &runs, NULL), 0);
    assert_true(loop_timeout_ns(l) == 0);
    assert_int_equal(loop_run_once(l, 0), 0); /* a cap of 0: no jump */
    assert_int_equal(runs, 0);
    assert_int_equal(loop_run_once(l, -1), 0); /* jumps to the timer */
    assert_int_equal(runs, 1);
    assert_true(loop_timeout_ns(l) == -1);
    assert_int_equal(loop_free(l), 0);
}

/* ---- a host main loop ------------------------------------------------------ */

struct host {
    loop_t *loop;
    int sv[2]; /* the host writes [1]; the loop reads [0] */
    int timer_runs, reads, posted_runs;
    bool early; /* a timer ran before its deadline */
    uint64_t deadline;
    unsigned long host_iterations;
};

static void host_timer_cb(loop_t *loop, void *arg)
{
    struct host *h = arg;
    if (loop_now(loop) < h->deadline)
        h->early = true;
    h->timer_runs++;
    /* The timer answers through the fd the loop reads. */
    assert_int_equal(write(h->sv[1], "t", 1), 1);
}

static void host_post_cb(loop_t *loop, void *arg)
{
    (void)loop;
    ((struct host *)arg)->posted_runs++;
}

static int poll_ms(int64_t ns)
{
    if (ns < 0)
        return -1;
    int64_t ms = ns / 1000000 + (ns % 1000000 != 0);
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Run a poll()-based host loop until `done` says so. */
static void host_run(struct host *h, bool (*done)(const struct host *))
{
    while (!done(h)) {
        struct pollfd p = {.fd = loop_fd(h->loop), .events = POLLIN};
        int n = poll(&p, 1, poll_ms(loop_timeout_ns(h->loop)));
        assert_true(n >= 0 || errno == EINTR);
        assert_int_equal(loop_run_once(h->loop, 0), 0);
        h->host_iterations++;
    }
}

static bool timer_and_read_done(const struct host *h)
{
    return h->timer_runs == 1 && h->reads == 1;
}

static bool posted_done(const struct host *h)
{
    return h->posted_runs == 1;
}

static void test_a_poll_based_host_runs_timers_fds_and_threadsafe_calls(void **state)
{
    (void)state;
    struct host h = {0};
    h.loop = new_loop_with((loop_options){0});
    make_socketpair(h.sv);
    assert_int_equal(loop_add_reader(h.loop, h.sv[0], drain_io, &h.reads), 0);
    h.deadline = loop_now(h.loop) + LOOP_MS(20);
    assert_int_equal(loop_call_at(h.loop, h.deadline, host_timer_cb, &h, NULL), 0);

    watchdog_start("the host loop waiting for a timer and an fd", 60);
    /* The timer fires, writes to the socket; the reader sees it. */
    host_run(&h, timer_and_read_done);
    assert_false(h.early);

    /* Now only the reader is left: the host would sleep forever on
     * loop_fd but for the threadsafe call that wakes it. */
    assert_true(loop_timeout_ns(h.loop) == -1);
    /* Posted only once the host sleeps in poll(): the post must wake it. */
    struct poster p = {.loop = h.loop, .fn = host_post_cb, .arg = &h, .wait_for = test_gettid()};
    assert_int_equal(poster_start(&p), 0);
    watchdog_start("the host loop waiting for a threadsafe call", 60);
    host_run(&h, posted_done);
    watchdog_stop();
    assert_int_equal(poster_join(&p), 0);
    assert_int_equal(h.timer_runs, 1);
    assert_int_equal(h.reads, 1);
    assert_int_equal(h.posted_runs, 1);

    assert_int_equal(loop_remove_reader(h.loop, h.sv[0]), 0);
    close_pair(h.sv);
    assert_int_equal(loop_free(h.loop), 0);
}

struct hook_count {
    int before, after;
};

static void before_cb(loop_t *loop, void *arg)
{
    (void)loop;
    ((struct hook_count *)arg)->before++;
}

static void after_cb(loop_t *loop, void *arg)
{
    (void)loop;
    ((struct hook_count *)arg)->after++;
}

static void test_hooks_run_around_the_poll_of_every_run_once_of_a_host(void **state)
{
    (void)state;
    loop_t *l = new_loop_with((loop_options){0});
    struct hook_count hc = {0};
    assert_int_equal(loop_on_before_poll(l, before_cb, &hc), 0);
    assert_int_equal(loop_on_after_poll(l, after_cb, &hc), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(loop_run_once(l, 0), 0);
    loop_stats_t st;
    assert_int_equal(loop_stats(l, &st), 0);
    assert_int_equal(hc.before, 5);
    assert_int_equal(hc.after, 5);
    assert_true(st.polls == 5);
    assert_int_equal(loop_free(l), 0);
}

/* ---- examples/embed ------------------------------------------------------- */

/*
 * The example's path: $LOOP_EMBED_EXAMPLE, else examples/embed in the build
 * tree this test runs from (build/tests/test_embed -> build/examples/embed).
 */
static bool example_path(char *out, size_t size)
{
    const char *env = getenv("LOOP_EMBED_EXAMPLE");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return access(out, X_OK) == 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *tests_dir = dirname(self);      /* build/tests */
    char *build_dir = dirname(tests_dir); /* build */
    snprintf(out, size, "%s/examples/embed", build_dir);
    return access(out, X_OK) == 0;
}

static void test_embed_example_runs_timers_fds_and_threadsafe_calls_in_its_host_loop(void **state)
{
    (void)state;
    char path[PATH_MAX + 32];
    if (!example_path(path, sizeof(path))) {
        print_message("examples/embed not built (LOOP_BUILD_EXAMPLES=OFF?): skipped\n");
        skip();
    }
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        execl(path, "embed", "--ticks", "4", "--jobs", "5", "--interval-ms", "5", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    watchdog_start("examples/embed", 120);
    static char text[16384];
    size_t len = 0;
    ssize_t n;
    while ((n = read(out[0], text + len, sizeof(text) - 1 - len)) > 0)
        len += (size_t)n;
    text[len] = '\0';
    close(out[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    watchdog_stop();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("embed exited with status 0x%x; output:\n%s", status, text);

    static const char *const want[] = {
        "host: polling loop_fd() beside its own pipe\n",
        "loop: tick 4\n",
        "host: heard \"tick 4\" from the loop\n",
        "loop: read \"hello from the host\"\n",
        "loop: job 5 done, result ",
        "host: done: 4 ticks heard, 5 jobs done, 1 line read\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(text, want[i]))
            fail_msg("no \"%s\" in the output:\n%s", want[i], text);
    if (strstr(text, "WRONG THREAD"))
        fail_msg("a threadsafe call ran off the loop thread:\n%s", text);
    /* Every tick the loop sent, the host heard, in order. */
    const char *p = text;
    for (int i = 1; i <= 4; i++) {
        char line[64];
        snprintf(line, sizeof(line), "host: heard \"tick %d\"", i);
        p = strstr(p, line);
        if (!p)
            fail_msg("\"%s\" missing or out of order:\n%s", line, text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_fd_and_timeout_of_null_are_einval_and_minus_one),
        cmocka_unit_test(test_loop_fd_is_readable_only_while_a_watched_fd_is_ready),
        cmocka_unit_test(test_loop_fd_is_readable_while_a_threadsafe_call_is_queued),
        cmocka_unit_test(test_loop_fd_is_readable_after_a_handled_signal_arrives),
        cmocka_unit_test(test_timeout_is_minus_one_when_only_fds_signals_or_threads_can_bring_work),
        cmocka_unit_test(test_timeout_is_zero_while_callbacks_are_ready),
        cmocka_unit_test(test_timeout_is_zero_while_a_stop_is_pending),
        cmocka_unit_test(test_timeout_is_zero_while_fd_changes_are_queued),
        cmocka_unit_test(test_timeout_is_the_time_to_the_earliest_timer),
        cmocka_unit_test(test_timeout_on_the_virtual_clock_is_zero_while_a_timer_is_pending),
        cmocka_unit_test(test_a_poll_based_host_runs_timers_fds_and_threadsafe_calls),
        cmocka_unit_test(test_hooks_run_around_the_poll_of_every_run_once_of_a_host),
        cmocka_unit_test(test_embed_example_runs_timers_fds_and_threadsafe_calls_in_its_host_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
