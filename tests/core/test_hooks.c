/*
 * The hooks a host loop drives its own work from: where each runs in an
 * iteration, that each runs in every iteration (polling or not), and that
 * an iteration's fd events reach the iteration_end hook in that same
 * iteration (a host such as GLib checks and dispatches its sources there).
 */

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixtures.h"
#include "watchdog.h"

/* What ran, in order, as letters: b before_poll, a after_poll, c callback,
 * r fd reader, t timer, e iteration_end. */
static char trace[256];
static size_t ntrace;

static void mark(char c)
{
    if (ntrace < sizeof(trace) - 1)
        trace[ntrace++] = c;
    trace[ntrace] = 0;
}

static void hook(loop_t *loop, void *arg)
{
    (void)loop;
    mark(*(const char *)arg);
}

static void callback(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    mark('c');
}

static void timer(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    mark('t');
}

static void reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    (void)arg;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    mark('r');
}

static loop_t *hooked_loop(loop_options o)
{
    loop_t *l = new_loop_with(o);
    assert_int_equal(loop_on_before_poll(l, hook, "b"), 0);
    assert_int_equal(loop_on_after_poll(l, hook, "a"), 0);
    assert_int_equal(loop_on_iteration_end(l, hook, "e"), 0);
    ntrace = 0;
    trace[0] = 0;
    return l;
}

static void test_hooks_run_before_the_poll_after_it_and_after_every_callback(void **state)
{
    (void)state;
    loop_t *l = hooked_loop((loop_options){.clock = LOOP_CLOCK_VIRTUAL, .strict_poll = true});
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(loop_add_reader(l, sv[0], reader, NULL), 0);
    assert_int_equal(loop_call_soon(l, callback, NULL, NULL), 0);
    assert_int_equal(loop_call_at(l, 0, timer, NULL, NULL), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(loop_run_once(l, 0), 0);
    /* Ready callbacks, then I/O, then timers (asyncio's order), between
     * the after_poll and iteration_end hooks. */
    assert_string_equal(trace, "bacrte");
    assert_int_equal(loop_remove_reader(l, sv[0]), 0);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

/* A host source in the GLib manner: its fd handler only notes the event;
 * the host checks and dispatches in the iteration_end hook. */
struct host {
    int noted;      /* events noted by the fd handler, not yet dispatched */
    int dispatched; /* in iteration_end, in the iteration of the event */
    int late;       /* events dispatched an iteration after they came */
    uint64_t iteration;
    uint64_t noted_in;
};

static void host_note(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct host *h = arg;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    h->noted++;
    h->noted_in = h->iteration;
    (void)loop;
}

static void host_begin(loop_t *loop, void *arg)
{
    (void)loop;
    ((struct host *)arg)->iteration++;
}

static void host_dispatch(loop_t *loop, void *arg)
{
    (void)loop;
    struct host *h = arg;
    if (!h->noted)
        return;
    if (h->noted_in == h->iteration)
        h->dispatched += h->noted;
    else
        h->late += h->noted;
    h->noted = 0;
}

static void test_a_host_sees_each_fd_event_in_the_iteration_it_came(void **state)
{
    (void)state;
    loop_t *l;
    assert_int_equal(loop_new(&l), 0);
    struct host h = {0};
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(loop_watch_fd(l, sv[0], LOOP_READABLE, host_note, &h), 0);
    assert_int_equal(loop_on_before_poll(l, host_begin, &h), 0);
    assert_int_equal(loop_on_iteration_end(l, host_dispatch, &h), 0);
    watchdog_start("host iterations", 60);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(write(sv[1], "x", 1), 1);
        assert_int_equal(loop_run_once(l, LOOP_SEC(5)), 0);
    }
    watchdog_stop();
    assert_int_equal(h.dispatched, 50);
    assert_int_equal(h.late, 0);
    assert_int_equal(loop_watch_fd(l, sv[0], 0, NULL, NULL), 0);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(loop_free(l), 0);
}

static int chain_left;

static void chain(loop_t *loop, void *arg)
{
    (void)arg;
    mark('c');
    if (--chain_left > 0)
        assert_int_equal(loop_call_soon(loop, chain, NULL, NULL), 0);
}

static void test_every_iteration_runs_every_hook_even_a_chain_that_skips_polls(void **state)
{
    (void)state;
    /* Default mode: a call_soon chain skips polls and, without hooks,
     * runs several iterations in one go. */
    loop_t *l = hooked_loop((loop_options){.clock = LOOP_CLOCK_VIRTUAL});
    chain_left = 20;
    assert_int_equal(loop_call_soon(l, chain, NULL, NULL), 0);
    assert_int_equal(loop_run(l), 0);
    loop_stats_t st;
    assert_int_equal(loop_stats(l, &st), 0);
    assert_true(st.polls < st.iterations);
    char want[256] = "";
    for (int i = 0; i < 20; i++)
        strcat(want, "bace");
    assert_string_equal(trace, want);
    assert_int_equal(st.iterations, 20);

    /* Removed: none runs. */
    assert_int_equal(loop_on_before_poll(l, NULL, NULL), 0);
    assert_int_equal(loop_on_after_poll(l, NULL, NULL), 0);
    assert_int_equal(loop_on_iteration_end(l, NULL, NULL), 0);
    ntrace = 0;
    trace[0] = 0;
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_string_equal(trace, "");
    assert_int_equal(loop_on_iteration_end(NULL, hook, "e"), -EINVAL);
    assert_int_equal(loop_free(l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks_run_before_the_poll_after_it_and_after_every_callback),
        cmocka_unit_test(test_a_host_sees_each_fd_event_in_the_iteration_it_came),
        cmocka_unit_test(test_every_iteration_runs_every_hook_even_a_chain_that_skips_polls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
