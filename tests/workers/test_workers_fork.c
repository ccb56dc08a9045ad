/*
 * Processes mode: each worker's setup in a process of its own, the
 * supervisor's events, the graceful stop through SIGTERM, the deadline
 * and SIGKILL, restarts and their back-off, failures of the start, and no
 * zombie, fd or child left behind.  Worker processes tell the test what
 * they did through a pipe (struct wlog); the parent reads it once they
 * have ended.
 */
#include "workers_testing.h"

#include "watchdog.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define N 2
#define MAX_EVENTS 32

/* What a test runs and sees; 9 KB, so kept in static storage: valgrind
 * cannot grow the main stack while it delivers a signal. */
struct run {
    struct wlog log;
    loop_workers *w;
    loop_workers_event ev[MAX_EVENTS];
    int nev;
    int ready;             /* READY events so far */
    int stop_after_ready;  /* loop_workers_stop() once this many READY (0: never) */
    int kill_at_ready;     /* SIGKILL the worker of this READY event (1-based; 0: none) */
    int stop_after_exits;  /* loop_workers_stop() at this EXITED event (0: never) */
    int sigterm_at_ready;  /* raise SIGTERM in the parent at this READY (0: none) */
    int fail_when_ready;   /* setups fail with -EIO once this many READY were seen */
    bool die_after_ready;  /* each worker _exit(3)s right after its setup */
    bool endless_drain;    /* drain leaves a repeating timer behind */
    bool die_in_setup;     /* setup _exit(7)s before it returns */
    int busy_port;         /* setup of worker 1 listens on it (0: no) */
    bool sigterm_in_setup; /* the first worker process raises SIGTERM in its setup */
    loop_t *parents_loop;  /* a loop of the parent's that setup frees (NULL: none) */
};

static void run_event(loop_workers *w, const loop_workers_event *e, void *arg)
{
    struct run *r = arg;
    assert_ptr_equal(w, r->w ? r->w : w);
    if (r->nev < MAX_EVENTS)
        r->ev[r->nev++] = *e;
    if (e->kind == LOOP_WORKERS_READY) {
        r->ready++;
        if (r->ready == r->kill_at_ready)
            assert_int_equal(kill(e->pid, SIGKILL), 0);
        if (r->ready == r->sigterm_at_ready)
            assert_int_equal(kill(getpid(), SIGTERM), 0);
        if (r->ready == r->stop_after_ready)
            assert_int_equal(loop_workers_stop(w), 0);
    } else {
        int exits = 0;
        for (int i = 0; i < r->nev; i++)
            exits += r->ev[i].kind == LOOP_WORKERS_EXITED;
        if (exits == r->stop_after_exits)
            assert_int_equal(loop_workers_stop(w), 0);
    }
}

static void die(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    _exit(3);
}

static int run_setup(loop_t *loop, unsigned index, void *arg)
{
    struct run *r = arg;
    loop_workers *w = loop_workers_of(loop);
    int fd = -1;

    if (r->die_in_setup)
        _exit(7);
    if (r->parents_loop)
        assert_int_equal(loop_free(r->parents_loop), 0);
    if (r->sigterm_in_setup && r->ready == 0)
        kill(getpid(), SIGTERM); /* as if the supervisor stopped it now */
    if (r->fail_when_ready && r->ready >= r->fail_when_ready)
        return -EIO; /* r->ready is the parent's, as it was at the fork */
    if (r->busy_port && index == 1) {
        fd = loop_workers_listen_reuseport("127.0.0.1", r->busy_port, 0);
        if (fd < 0)
            return fd;
        close(fd);
    }
    wlog_put(&r->log, "setup %u pid %d ppid %d index %d count %d eperm %d", index, (int)getpid(),
             (int)getppid(), loop_workers_index(loop), loop_workers_count(loop),
             loop_workers_stop(w) == -EPERM && loop_workers_wait(w) == -EPERM &&
                 loop_workers_free(w) == -EPERM && loop_workers_post(w, 0, nop_cb, NULL) == -EPERM);
    if (r->die_after_ready)
        assert_int_equal(loop_call_soon(loop, die, NULL, NULL), 0);
    return 0;
}

static void run_drain(loop_t *loop, unsigned index, void *arg)
{
    struct run *r = arg;
    wlog_put(&r->log, "drain %u", index);
    /* A second SIGTERM while draining is ignored. */
    kill(getpid(), SIGTERM);
    if (r->endless_drain)
        assert_int_equal(loop_call_every(loop, LOOP_MS(1), nop_cb, NULL, NULL), 0);
    else
        assert_int_equal(loop_call_later(loop, LOOP_MS(2), nop_cb, NULL, NULL), 0);
}

static void run_teardown(loop_t *loop, unsigned index, void *arg)
{
    struct run *r = arg;
    (void)loop;
    wlog_put(&r->log, "teardown %u", index);
}

static loop_workers_options run_options(struct run *r)
{
    memset(r, 0, sizeof *r);
    wlog_open(&r->log);
    return (loop_workers_options){
        .mode = LOOP_WORKERS_PROCESSES,
        .count = N,
        .setup = run_setup,
        .drain = run_drain,
        .teardown = run_teardown,
        .on_event = run_event,
        .arg = r,
    };
}

/* Start, then wait; returns wait's result (start must succeed). */
static int start_and_wait(struct run *r, loop_workers_options *o)
{
    assert_int_equal(loop_workers_start(&r->w, o), 0);
    int err = loop_workers_wait(r->w);
    assert_int_equal(loop_workers_free(r->w), 0);
    assert_no_child_left();
    return err;
}

static int count_events(const struct run *r, loop_workers_event_kind kind)
{
    int n = 0;
    for (int i = 0; i < r->nev; i++)
        n += r->ev[i].kind == kind;
    return n;
}

static void test_each_setup_runs_in_a_child_and_a_stop_drains_each_then_tears_down(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);
    char line[128];

    r.stop_after_ready = N;
    assert_int_equal(start_and_wait(&r, &o), 0);
    assert_int_equal(count_events(&r, LOOP_WORKERS_READY), N);
    assert_int_equal(count_events(&r, LOOP_WORKERS_EXITED), N);
    for (int i = 0; i < r.nev; i++) {
        loop_workers_event *e = &r.ev[i];
        assert_true(e->pid > 0 && e->pid != getpid());
        if (e->kind == LOOP_WORKERS_READY) {
            snprintf(line, sizeof line, "setup %u pid %d ppid %d index %u count %d eperm 1",
                     e->index, e->pid, (int)getpid(), e->index, N);
            assert_int_equal(wlog_count(&r.log, line), 1);
        } else {
            assert_int_equal(e->code, CLD_EXITED);
            assert_int_equal(e->status, 0);
            assert_true(e->restart_in_ns == UINT64_MAX);
        }
    }
    assert_int_equal(wlog_count(&r.log, "drain 0"), 1);
    assert_int_equal(wlog_count(&r.log, "drain 1"), 1);
    assert_int_equal(wlog_count(&r.log, "teardown 0"), 1);
    assert_int_equal(wlog_count(&r.log, "teardown 1"), 1);
    wlog_close(&r.log);
}

static void test_a_killed_worker_is_restarted_with_a_new_pid(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);

    r.kill_at_ready = N;        /* the last one to be ready */
    r.stop_after_ready = N + 1; /* its replacement */
    o.restart_reset_ns = 1;     /* it lived long enough: at once */
    assert_int_equal(start_and_wait(&r, &o), 0);
    /* READY, READY, EXITED (killed, restart now), READY, then the stop. */
    assert_int_equal(r.ev[N].kind, LOOP_WORKERS_EXITED);
    assert_int_equal(r.ev[N].index, r.ev[N - 1].index);
    assert_int_equal(r.ev[N].pid, r.ev[N - 1].pid);
    assert_int_equal(r.ev[N].code, CLD_KILLED);
    assert_int_equal(r.ev[N].status, SIGKILL);
    assert_u64_eq(r.ev[N].restart_in_ns, 0);
    assert_int_equal(r.ev[N + 1].kind, LOOP_WORKERS_READY);
    assert_int_equal(r.ev[N + 1].index, r.ev[N].index);
    assert_int_not_equal(r.ev[N + 1].pid, r.ev[N].pid);
    assert_int_equal(count_events(&r, LOOP_WORKERS_EXITED), N + 1);
    assert_int_equal(wlog_count(&r.log, "teardown 0") + wlog_count(&r.log, "teardown 1"), N);
    wlog_close(&r.log);
}

static void test_early_deaths_in_a_row_wait_twice_as_long_each_time_up_to_the_cap(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);

    o.count = 1;
    r.die_after_ready = true;
    r.stop_after_exits = 5;
    o.restart_delay_ns = LOOP_MS(1);
    o.restart_delay_max_ns = LOOP_MS(4);
    o.restart_reset_ns = LOOP_SEC(3600);
    assert_int_equal(start_and_wait(&r, &o), 0);
    const uint64_t want[5] = {LOOP_MS(1), LOOP_MS(2), LOOP_MS(4), LOOP_MS(4), LOOP_MS(4)};
    int k = 0;
    for (int i = 0; i < r.nev; i++) {
        if (r.ev[i].kind != LOOP_WORKERS_EXITED)
            continue;
        assert_int_equal(r.ev[i].code, CLD_EXITED);
        assert_int_equal(r.ev[i].status, 3);
        assert_u64_eq(r.ev[i].restart_in_ns, want[k]);
        k++;
    }
    assert_int_equal(k, 5);
    assert_int_equal(count_events(&r, LOOP_WORKERS_READY), 5); /* the sixth was cancelled */
    wlog_close(&r.log);
}

static void test_sigterm_to_the_supervisor_stops_the_workers_gracefully(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);

    o.stop_on_signals = true;
    r.sigterm_at_ready = N;
    assert_int_equal(start_and_wait(&r, &o), 0);
    assert_int_equal(wlog_count(&r.log, "drain 0"), 1);
    assert_int_equal(wlog_count(&r.log, "drain 1"), 1);
    assert_int_equal(wlog_count(&r.log, "teardown 0"), 1);
    assert_int_equal(wlog_count(&r.log, "teardown 1"), 1);
    assert_ptr_equal(disposition(SIGTERM), SIG_DFL);
    assert_ptr_equal(disposition(SIGCHLD), SIG_DFL); /* never touched */
    wlog_close(&r.log);
}

static void test_a_drain_past_the_deadline_is_killed_and_wait_says_etimedout(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);

    r.endless_drain = true;
    r.stop_after_ready = N;
    o.drain_timeout_ns = LOOP_MS(50);
    assert_int_equal(start_and_wait(&r, &o), -ETIMEDOUT);
    assert_int_equal(wlog_count(&r.log, "drain 0") + wlog_count(&r.log, "drain 1"), N);
    assert_int_equal(wlog_count(&r.log, "teardown 0") + wlog_count(&r.log, "teardown 1"), 0);
    for (int i = 0; i < r.nev; i++) {
        if (r.ev[i].kind == LOOP_WORKERS_EXITED) {
            assert_int_equal(r.ev[i].code, CLD_KILLED);
            assert_int_equal(r.ev[i].status, SIGKILL);
        }
    }
    wlog_close(&r.log);
}

static void test_a_setup_that_fails_in_a_child_fails_the_start_with_its_error(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int held = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_int_equal(bind(held, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(held, 1), 0);
    assert_int_equal(getsockname(held, (struct sockaddr *)&a, &len), 0);
    r.busy_port = ntohs(a.sin_port);
    assert_int_equal(loop_workers_start(&r.w, &o), -EADDRINUSE);
    assert_null(r.w);
    assert_no_child_left();
    assert_int_equal(wlog_count(&r.log, "drain 0"), 1); /* the one that started stopped */
    assert_int_equal(wlog_count(&r.log, "teardown 0"), 1);
    close(held);
    wlog_close(&r.log);
}

static void test_a_child_that_dies_before_it_reports_fails_the_start_with_echild(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);

    r.die_in_setup = true;
    assert_int_equal(loop_workers_start(&r.w, &o), -ECHILD);
    assert_null(r.w);
    assert_no_child_left();
    wlog_close(&r.log);
}

static void test_a_restarted_worker_whose_setup_fails_stops_them_all_with_its_error(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);

    r.kill_at_ready = N;
    r.fail_when_ready = N; /* children forked after N READY fail */
    assert_int_equal(start_and_wait(&r, &o), -EIO);
    assert_int_equal(count_events(&r, LOOP_WORKERS_READY), N);
    wlog_close(&r.log);
}

static void test_a_sigterm_that_comes_during_the_setup_drains_the_worker_once_it_runs(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);

    o.count = 1;
    r.sigterm_in_setup = true;
    r.stop_after_ready = 2; /* the one started after the first drained */
    o.restart_reset_ns = 1;
    watchdog_start("a worker that got SIGTERM during its setup to drain", 60);
    assert_int_equal(start_and_wait(&r, &o), 0);
    watchdog_stop();
    assert_int_equal(r.ev[1].kind, LOOP_WORKERS_EXITED);
    assert_int_equal(r.ev[1].code, CLD_EXITED); /* drained, not killed by the signal */
    assert_int_equal(r.ev[1].status, 0);
    assert_int_equal(wlog_count(&r.log, "drain 0"), 2);
    assert_int_equal(wlog_count(&r.log, "teardown 0"), 2);
    wlog_close(&r.log);
}

static void test_a_parents_loop_owning_sigterm_is_ebusy_unless_setup_frees_it(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);
    loop_t *mine = new_real_loop();

    assert_int_equal(loop_add_signal(mine, SIGTERM, nop_cb, NULL), 0);
    assert_int_equal(loop_workers_start(&r.w, &o), -EBUSY);
    assert_no_child_left();
    assert_int_equal(wlog_count(&r.log, "teardown 0") + wlog_count(&r.log, "teardown 1"), N);

    r.w = NULL;
    r.parents_loop = mine;
    r.stop_after_ready = N;
    assert_int_equal(start_and_wait(&r, &o), 0);
    assert_int_equal(wlog_count(&r.log, "drain 0"), 1);
    assert_int_equal(wlog_count(&r.log, "drain 1"), 1);
    assert_int_equal(loop_free(mine), 0);
    wlog_close(&r.log);
}

static void test_post_is_eopnotsupp_in_processes_mode(void **state)
{
    (void)state;
    static struct run r;
    loop_workers_options o = run_options(&r);

    assert_int_equal(loop_workers_start(&r.w, &o), 0);
    assert_int_equal(loop_workers_post(r.w, 0, nop_cb, NULL), -EOPNOTSUPP);
    assert_int_equal(loop_workers_free(r.w), 0);
    assert_no_child_left();
    wlog_close(&r.log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_setup_runs_in_a_child_and_a_stop_drains_each_then_tears_down),
        cmocka_unit_test(test_a_killed_worker_is_restarted_with_a_new_pid),
        cmocka_unit_test(test_early_deaths_in_a_row_wait_twice_as_long_each_time_up_to_the_cap),
        cmocka_unit_test(test_sigterm_to_the_supervisor_stops_the_workers_gracefully),
        cmocka_unit_test(test_a_drain_past_the_deadline_is_killed_and_wait_says_etimedout),
        cmocka_unit_test(test_a_setup_that_fails_in_a_child_fails_the_start_with_its_error),
        cmocka_unit_test(test_a_child_that_dies_before_it_reports_fails_the_start_with_echild),
        cmocka_unit_test(test_a_restarted_worker_whose_setup_fails_stops_them_all_with_its_error),
        cmocka_unit_test(test_a_sigterm_that_comes_during_the_setup_drains_the_worker_once_it_runs),
        cmocka_unit_test(test_a_parents_loop_owning_sigterm_is_ebusy_unless_setup_frees_it),
        cmocka_unit_test(test_post_is_eopnotsupp_in_processes_mode),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
