/*
 * The process pool: jobs run in worker processes (this binary, run again)
 * and their replies come back as bytes; a function's error, a worker's
 * crash, a refused worker, cancels, shutdown, and the pool or the loop
 * freed while jobs run; no process, fd or byte is left behind.
 */
#include "process_testing.h"

#include "counting_alloc.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

/* ---- the functions the workers run --------------------------------------- */

static int echo(const void *in, size_t len, void **out, size_t *out_len)
{
    *out = len ? malloc(len) : NULL;
    if (len && !*out)
        return -ENOMEM;
    if (len)
        memcpy(*out, in, len);
    *out_len = len;
    return 0;
}

static int sum(const void *in, size_t len, void **out, size_t *out_len)
{
    uint64_t total = 0;
    const uint32_t *v = in;
    for (size_t i = 0; i < len / sizeof(*v); i++)
        total += v[i];
    if (!(*out = malloc(sizeof(total))))
        return -ENOMEM;
    memcpy(*out, &total, sizeof(total));
    *out_len = sizeof(total);
    return 0;
}

static int fail_edom(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    return -EDOM;
}

static int crash(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    raise(SIGKILL);
    return 0;
}

/* Wait until the FIFO named by the input is opened and closed by the test. */
static int block(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)len, (void)out, (void)out_len;
    int fd = open(in, O_RDONLY | O_CLOEXEC);
    char c;
    while (fd >= 0 && read(fd, &c, 1) > 0)
        ;
    if (fd >= 0)
        close(fd);
    return fd >= 0 ? 0 : -errno;
}

static const loop_process_work table[] = {
    {"echo", echo}, {"sum", sum}, {"fail", fail_edom}, {"crash", crash}, {"block", block},
};
enum { ECHO, SUM, FAIL, CRASH, BLOCK, NFNS };

/* ---- helpers ------------------------------------------------------------- */

static loop_t *loop;
static char fifo[64];

static int setup(void **state)
{
    (void)state;
    loop = new_real_loop();
    snprintf(fifo, sizeof(fifo), "/tmp/loop-pool-%d", (int)getpid());
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    watchdog_start("a process pool test", 120);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    watchdog_stop();
    unlink(fifo);
    assert_int_equal(loop_free(loop), 0);
    assert_no_children();
    return 0;
}

static loop_process_pool *new_pool(unsigned workers)
{
    loop_process_pool *pool = NULL;
    loop_process_pool_options o = {.table = table, .n = NFNS, .workers = workers};
    assert_int_equal(loop_process_pool_new(loop, &o, &pool), 0);
    return pool;
}

static loop_future *submit(loop_process_pool *pool, int id, const void *data, size_t len)
{
    loop_future *f = NULL;
    assert_int_equal(loop_process_pool_submit(pool, id, data, len, &f), 0);
    assert_non_null(f);
    return f;
}

/* Wait for a job; its outcome, and its reply (freed here) checked against
 * want if it succeeded. */
static int outcome(loop_future *f, const void *want, size_t want_len)
{
    void *r = NULL;
    int err = loop_run_until_complete(loop, f, &r);
    if (err == 0) {
        loop_process_bytes *b = r;
        assert_int_equal(b->len, want_len);
        if (want_len)
            assert_memory_equal(b->data, want, want_len);
        loop_process_bytes_free(b);
    }
    loop_future_unref(f);
    return err;
}

static void release_block(void)
{
    int fd = open(fifo, O_WRONLY | O_CLOEXEC); /* waits for the job to open it */
    assert_true(fd >= 0);
    close(fd);
}

/* A pool whose worker is known to be idle: a job went through it. */
static loop_process_pool *ready_pool(unsigned workers)
{
    loop_process_pool *pool = new_pool(workers);
    assert_int_equal(outcome(submit(pool, ECHO, "x", 1), "x", 1), 0);
    return pool;
}

/* ---- the tests ------------------------------------------------------------ */

static void test_jobs_run_in_workers_and_their_replies_come_back(void **state)
{
    (void)state;
    loop_process_pool *pool = new_pool(2);
    assert_int_equal(loop_process_pool_find(pool, "sum"), SUM);
    assert_int_equal(loop_process_pool_find(pool, "nope"), -ENOENT);
    assert_int_equal(loop_process_pool_find(pool, NULL), -EINVAL);
    loop_future *fs[10];
    uint32_t in[10][3];
    for (int i = 0; i < 10; i++) {
        in[i][0] = (uint32_t)i, in[i][1] = 1000, in[i][2] = (uint32_t)i * 7;
        fs[i] = submit(pool, SUM, in[i], sizeof(in[i]));
    }
    for (int i = 0; i < 10; i++) {
        uint64_t want = (uint64_t)i * 8 + 1000;
        assert_int_equal(outcome(fs[i], &want, sizeof(want)), 0);
    }
    assert_int_equal(outcome(submit(pool, ECHO, NULL, 0), NULL, 0), 0); /* empty both ways */
    loop_process_pool_stats_t st;
    assert_int_equal(loop_process_pool_stats(pool, &st), 0);
    assert_int_equal(st.workers, 2);
    assert_u64_eq(st.started, 2);
    assert_u64_eq(st.died, 0);
    assert_u64_eq(st.jobs_done, 11);
    loop_process_pool_free(pool);
}

static void test_a_functions_error_fails_its_job(void **state)
{
    (void)state;
    loop_process_pool *pool = new_pool(1);
    assert_int_equal(outcome(submit(pool, FAIL, "a", 1), NULL, 0), -EDOM);
    assert_int_equal(outcome(submit(pool, ECHO, "ok", 2), "ok", 2), 0);
    loop_process_pool_free(pool);
}

static void test_a_crashed_worker_fails_its_job_and_is_replaced(void **state)
{
    (void)state;
    loop_process_pool *pool = new_pool(1);
    loop_future *dies = submit(pool, CRASH, NULL, 0);
    loop_future *after = submit(pool, ECHO, "next", 4);
    assert_int_equal(outcome(dies, NULL, 0), -ECHILD);
    assert_int_equal(outcome(after, "next", 4), 0); /* on the replacement */
    loop_process_pool_stats_t st;
    loop_process_pool_stats(pool, &st);
    assert_u64_eq(st.died, 1);
    assert_int_equal(st.last_returncode, -SIGKILL);
    assert_u64_eq(st.started, 2);
    assert_int_equal(st.workers, 1);
    loop_process_pool_free(pool);
}

/* The pid of our one child (the pool's one worker), from /proc. */
static int only_child(void)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int found = 0, n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], buf[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = e->d_name[0] >= '0' && e->d_name[0] <= '9' ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *p = strrchr(buf, ')');
        int ppid;
        if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == getpid()) {
            found = atoi(e->d_name);
            n++;
        }
    }
    closedir(d);
    assert_int_equal(n, 1);
    return found;
}

static void test_a_job_sent_to_a_worker_that_died_is_echild_never_sigpipe(void **state)
{
    (void)state;
    /* SIGPIPE at its default and not blocked: raised, it ends the suite. */
    signal(SIGPIPE, SIG_DFL);
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    assert_int_equal(pthread_sigmask(SIG_UNBLOCK, &pipe_only, NULL), 0);
    loop_process_pool *pool = ready_pool(1);
    /* The worker dies while the loop does not run: the pool still takes
     * it for idle and writes the next job to a pipe nobody reads. */
    int pid = only_child();
    assert_int_equal(kill(pid, SIGKILL), 0);
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0); /* not reaped */
    assert_int_equal(outcome(submit(pool, ECHO, "lost", 4), NULL, 0), -ECHILD);
    assert_int_equal(outcome(submit(pool, ECHO, "next", 4), "next", 4), 0); /* replaced */
    sigset_t pending;
    assert_int_equal(sigpending(&pending), 0);
    assert_false(sigismember(&pending, SIGPIPE));
    loop_process_pool_stats_t st;
    loop_process_pool_stats(pool, &st);
    assert_u64_eq(st.died, 1);
    assert_int_equal(st.last_returncode, -SIGKILL);
    loop_process_pool_free(pool);
}

static void test_large_payloads_cross_both_ways(void **state)
{
    (void)state;
    loop_process_pool *pool = new_pool(2);
    size_t len = 8u << 20; /* far above a pipe's buffer */
    unsigned char *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (unsigned char)(i * 31 + 7);
    loop_future *a = submit(pool, ECHO, big, len), *b = submit(pool, ECHO, big, len / 3);
    assert_int_equal(outcome(a, big, len), 0);
    assert_int_equal(outcome(b, big, len / 3), 0);
    free(big);
    loop_process_pool_free(pool);
}

static void test_shutdown_waits_for_the_jobs_and_reaps_every_worker(void **state)
{
    (void)state;
    loop_process_pool *pool = new_pool(2);
    loop_future *fs[6], *done, *again;
    for (int i = 0; i < 6; i++)
        fs[i] = submit(pool, ECHO, "job", 3);
    assert_int_equal(loop_process_pool_shutdown(pool, false, &done), 0);
    loop_future *late = (loop_future *)&done;
    assert_int_equal(loop_process_pool_submit(pool, ECHO, "x", 1, &late), -ESHUTDOWN);
    assert_null(late);
    assert_int_equal(loop_run_until_complete(loop, done, NULL), 0);
    assert_no_children(); /* every worker exited and was reaped */
    for (int i = 0; i < 6; i++) {
        assert_true(loop_future_done(fs[i]));
        assert_int_equal(outcome(fs[i], "job", 3), 0);
    }
    assert_int_equal(loop_process_pool_shutdown(pool, true, &again), 0);
    assert_true(again == done && loop_future_done(again));
    loop_process_pool_stats_t st;
    loop_process_pool_stats(pool, &st);
    assert_int_equal(st.workers, 0);
    assert_u64_eq(st.died, 0); /* asked to go: not counted as deaths */
    loop_future_unref(done);
    loop_future_unref(again);
    loop_process_pool_free(pool);
}

static void test_shutdown_with_cancel_cancels_what_has_not_started(void **state)
{
    (void)state;
    loop_process_pool *pool = ready_pool(1);
    loop_future *running = submit(pool, BLOCK, fifo, strlen(fifo) + 1);
    loop_future *queued[2] = {submit(pool, ECHO, "b", 1), submit(pool, ECHO, "c", 1)};
    loop_future *done;
    assert_int_equal(loop_process_pool_shutdown(pool, true, &done), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(loop_future_state(queued[i]), LOOP_FUTURE_CANCELLED);
        loop_future_unref(queued[i]);
    }
    assert_false(loop_future_done(done));
    release_block();
    assert_int_equal(outcome(running, NULL, 0), 0); /* the running one finished */
    assert_int_equal(loop_run_until_complete(loop, done, NULL), 0);
    loop_future_unref(done);
    assert_no_children();
    loop_process_pool_free(pool);
}

static void test_cancel_takes_only_jobs_not_started(void **state)
{
    (void)state;
    loop_process_pool *pool = ready_pool(1);
    loop_future *running = submit(pool, BLOCK, fifo, strlen(fifo) + 1);
    loop_future *queued = submit(pool, ECHO, "q", 1);
    assert_int_equal(loop_future_cancel(queued), 1);
    assert_int_equal(loop_future_state(queued), LOOP_FUTURE_CANCELLED);
    assert_int_equal(loop_future_cancel(running), 0); /* running: it cannot be */
    release_block();
    assert_int_equal(outcome(running, NULL, 0), 0);
    loop_future_unref(queued);
    assert_int_equal(outcome(submit(pool, ECHO, "z", 1), "z", 1), 0);
    loop_process_pool_free(pool);
}

static void test_bad_arguments_are_einval_and_emsgsize(void **state)
{
    (void)state;
    loop_process_pool *pool = NULL;
    loop_process_pool_options o = {.table = table, .n = NFNS, .workers = 1};
    assert_int_equal(loop_process_pool_new(NULL, &o, &pool), -EINVAL);
    assert_int_equal(loop_process_pool_new(loop, NULL, &pool), -EINVAL);
    assert_int_equal(loop_process_pool_new(loop, &o, NULL), -EINVAL);
    loop_process_work twice[] = {{"a", echo}, {"a", sum}}, nameless[] = {{NULL, echo}},
                      no_fn[] = {{"a", NULL}};
    loop_process_pool_options bad[] = {{.table = NULL, .n = 1},
                                       {.table = table, .n = 0},
                                       {.table = twice, .n = 2},
                                       {.table = nameless, .n = 1},
                                       {.table = no_fn, .n = 1}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(loop_process_pool_new(loop, &bad[i], &pool), -EINVAL);
        assert_null(pool);
    }
    pool = new_pool(1);
    loop_future *f;
    assert_int_equal(loop_process_pool_submit(pool, NFNS, "x", 1, &f), -EINVAL);
    assert_int_equal(loop_process_pool_submit(pool, -1, "x", 1, &f), -EINVAL);
    assert_int_equal(loop_process_pool_submit(pool, ECHO, NULL, 1, &f), -EINVAL);
    assert_int_equal(loop_process_pool_submit(pool, ECHO, "x", 1, NULL), -EINVAL);
    assert_int_equal(loop_process_pool_submit(NULL, ECHO, "x", 1, &f), -EINVAL);
    assert_int_equal(loop_process_pool_submit(pool, ECHO, "x", (1u << 30) + 1, &f), -EMSGSIZE);
    assert_int_equal(loop_process_pool_stats(NULL, &(loop_process_pool_stats_t){0}), -EINVAL);
    assert_int_equal(loop_process_pool_stats(pool, NULL), -EINVAL);
    assert_int_equal(loop_process_pool_shutdown(NULL, false, &f), -EINVAL);
    loop_process_pool_free(pool);
    loop_process_pool_free(NULL);
    loop_process_bytes_free(NULL);
    assert_no_children();
}

static void test_a_worker_with_another_table_is_refused_and_the_pool_fails(void **state)
{
    (void)state;
    loop_process_pool *pool = NULL;
    loop_process_pool_options o = {.table = table, .n = NFNS - 1, .workers = 1};
    assert_int_equal(loop_process_pool_new(loop, &o, &pool), 0);
    loop_future *f = submit(pool, ECHO, "x", 1);
    assert_int_equal(outcome(f, NULL, 0), -ECHILD);
    assert_int_equal(loop_process_pool_submit(pool, ECHO, "x", 1, &f), -ECHILD);
    loop_process_pool_stats_t st;
    loop_process_pool_stats(pool, &st);
    assert_u64_eq(st.started, 1); /* not replaced */
    assert_u64_eq(st.died, 1);
    loop_process_pool_free(pool);
}

static void test_a_program_that_is_no_worker_fails_the_pool(void **state)
{
    (void)state;
    loop_process_pool *pool = NULL;
    loop_process_pool_options o = {.table = table, .n = NFNS, .workers = 2, .exe = "/bin/true"};
    assert_int_equal(loop_process_pool_new(loop, &o, &pool), 0);
    assert_int_equal(outcome(submit(pool, ECHO, "x", 1), NULL, 0), -ECHILD);
    loop_process_pool_stats_t st;
    loop_process_pool_stats(pool, &st);
    assert_int_equal(st.last_returncode, 0); /* /bin/true exited 0, without a hello */
    loop_process_pool_free(pool);
    o.exe = "/nonexistent/program";
    assert_int_equal(loop_process_pool_new(loop, &o, &pool), -ENOENT);
    assert_null(pool);
}

static void test_pool_free_ends_every_job_and_reaps_every_worker(void **state)
{
    (void)state;
    loop_process_pool *pool = ready_pool(1);
    loop_future *running = submit(pool, BLOCK, fifo, strlen(fifo) + 1);
    loop_future *queued = submit(pool, ECHO, "q", 1);
    loop_future *done;
    assert_int_equal(loop_process_pool_shutdown(pool, false, &done), 0);
    loop_process_pool_free(pool);
    assert_no_children(); /* killed and reaped before it returned */
    assert_int_equal(loop_future_result(running, NULL), -ECANCELED);
    assert_int_equal(loop_future_state(queued), LOOP_FUTURE_CANCELLED);
    assert_int_equal(loop_future_state(done), LOOP_FUTURE_CANCELLED); /* never to be done */
    loop_future_unref(running);
    loop_future_unref(queued);
    loop_future_unref(done);
}

static void test_a_loop_freed_under_a_pool_leaves_no_process_and_no_byte(void **state)
{
    (void)state;
    struct counting_alloc mem = {0};
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &mem});
    loop_process_pool *pool = NULL;
    loop_process_pool_options o = {.table = table, .n = NFNS, .workers = 2};
    assert_int_equal(loop_process_pool_new(l, &o, &pool), 0);
    loop_future *f[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            loop_process_pool_submit(pool, i == 0 ? BLOCK : ECHO, fifo, strlen(fifo) + 1, &f[i]),
            0);
    loop_future *done;
    assert_int_equal(loop_process_pool_shutdown(pool, false, &done), 0);
    assert_int_equal(loop_free(l), 0);
    assert_no_children();
    loop_future *g = (loop_future *)&g;
    assert_int_equal(loop_process_pool_submit(pool, ECHO, "x", 1, &g), -ESHUTDOWN);
    assert_int_equal(loop_process_pool_shutdown(pool, false, &g), -ESHUTDOWN);
    loop_process_pool_free(pool);
    assert_int_equal(mem.live_blocks, 0);
    assert_int_equal(mem.bad_frees, 0);
}

static void test_worker_main_is_false_outside_a_worker(void **state)
{
    (void)state;
    char *plain[] = {"prog", "--other", NULL};
    int status = 42;
    assert_false(loop_process_worker_main(2, plain, table, NFNS, &status));
    assert_false(loop_process_worker_main(1, plain, table, NFNS, &status));
    assert_false(loop_process_worker_main(0, NULL, table, NFNS, &status));
    assert_int_equal(status, 42);
}

/* A pool's whole life with each allocation failed in turn. */
static void pool_program(loop_t *l)
{
    loop_process_pool *pool = NULL;
    loop_process_pool_options o = {.table = table, .n = NFNS, .workers = 2};
    if (loop_process_pool_new(l, &o, &pool) != 0)
        return;
    loop_future *f[3] = {NULL};
    for (int i = 0; i < 3; i++) {
        int err = loop_process_pool_submit(pool, ECHO, "abc", 3, &f[i]);
        assert_true(err == 0 || err == -ENOMEM);
    }
    for (int i = 0; i < 3; i++) {
        if (!f[i])
            continue;
        void *r = NULL;
        int err;
        for (int tries = 0; (err = loop_run_until_complete(l, f[i], &r)) == -ENOMEM &&
                            !loop_future_done(f[i]) && tries < 10;
             tries++)
            ;
        /* The run may fail for want of memory in the very pass that
         * completed the future: its outcome is then in the future. */
        if (loop_future_done(f[i]))
            err = loop_future_result(f[i], &r);
        assert_true(err == 0 || err == -ENOMEM);
        if (err == 0)
            loop_process_bytes_free(r);
        loop_future_unref(f[i]);
    }
    loop_future *done = NULL;
    if (loop_process_pool_shutdown(pool, false, &done) == 0) {
        for (int tries = 0; tries < 10 && !loop_future_done(done); tries++)
            loop_run_until_complete(l, done, NULL);
        loop_future_unref(done);
    }
    loop_process_pool_free(pool);
}

static void test_each_failed_allocation_of_a_pool_is_enomem_and_leaves_nothing(void **state)
{
    (void)state;
    struct fdlist before;
    fdlist_take(&before);
    for (long at = 1;; at++) {
        struct counting_alloc a = {0};
        loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at;
        pool_program(l);
        assert_int_equal(loop_free(l), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        assert_same_fds(&before, "by a pool short of memory");
        assert_no_children();
        if (a.failures == 0)
            break;
    }
}

int main(int argc, char **argv)
{
    int status;
    if (loop_process_worker_main(argc, argv, table, NFNS, &status))
        return status;
    int rc = process_helper(argc, argv);
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_jobs_run_in_workers_and_their_replies_come_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_functions_error_fails_its_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_crashed_worker_fails_its_job_and_is_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_job_sent_to_a_worker_that_died_is_echild_never_sigpipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_payloads_cross_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_waits_for_the_jobs_and_reaps_every_worker,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_with_cancel_cancels_what_has_not_started,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_takes_only_jobs_not_started, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_are_einval_and_emsgsize, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_worker_with_another_table_is_refused_and_the_pool_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_program_that_is_no_worker_fails_the_pool, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_free_ends_every_job_and_reaps_every_worker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_loop_freed_under_a_pool_leaves_no_process_and_no_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_main_is_false_outside_a_worker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_each_failed_allocation_of_a_pool_is_enomem_and_leaves_nothing, setup, teardown),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
