/*
 * The loop goes first: loop_free() kills and reaps every child still
 * running (and reaps those that exited unseen), so no process of ours is
 * left running unwatched or as a zombie; handles still held become shells
 * that loop_process_free() frees.
 */
#include "process_testing.h"

#include "counting_alloc.h"

static int setup(void **state)
{
    (void)state;
    watchdog_start("a process free test", 60);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    watchdog_stop();
    assert_no_children();
    return 0;
}

static void test_loop_free_kills_and_reaps_a_running_child(void **state)
{
    (void)state;
    struct counting_alloc mem = {0};
    loop_t *loop = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &mem});
    struct helper_argv a = HELPER("sleep");
    loop_process_options o = {0};
    o.stdio[1].mode = LOOP_PROCESS_PIPE;
    loop_process *p = spawn_helper(loop, o, &a), *q = spawn_helper(loop, o, &a);
    int pids[] = {loop_process_pid(p), loop_process_pid(q)};
    loop_process_free(q); /* released, still running: the loop's alone */
    assert_int_equal(count_children(false), 2);
    assert_int_equal(loop_free(loop), 0);
    /* Gone, reaped, and not zombies: no child of ours at all. */
    assert_int_equal(count_children(false), 0);
    assert_false(is_unreaped_child(pids[0]));
    assert_false(is_unreaped_child(pids[1]));
    /* The handle held is a shell: nothing to signal, no future. */
    assert_int_equal(loop_process_signal(p, SIGTERM), -ESRCH);
    assert_null(loop_process_exit(p));
    assert_int_equal(loop_process_pid(p), pids[0]);
    int fd = loop_process_take_pipe(p, 1); /* its pipe is still the handle's */
    assert_true(fd >= 0);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof(buf)), 0); /* the writer is dead */
    close(fd);
    loop_process_free(p);
    assert_int_equal(mem.live_blocks, 0);
    assert_int_equal(mem.bad_frees, 0);
}

static void test_a_child_that_exited_unseen_is_reaped_by_loop_free(void **state)
{
    (void)state;
    loop_t *loop = new_real_loop();
    struct helper_argv a = HELPER("exit", "3");
    loop_process *p = spawn_helper(loop, (loop_process_options){0}, &a);
    int pid = loop_process_pid(p);
    siginfo_t si; /* wait until it is a zombie, without reaping it */
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    assert_int_equal(count_children(true), 1);
    loop_process_free(p);
    assert_int_equal(loop_free(loop), 0);
    assert_int_equal(count_children(true), 0);
    assert_false(is_unreaped_child(pid));
}

static void test_futures_taken_from_a_freed_loop_only_unref(void **state)
{
    (void)state;
    struct counting_alloc mem = {0};
    loop_t *loop = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &mem});
    struct helper_argv a = HELPER("sleep");
    loop_process *p = spawn_helper(loop, (loop_process_options){0}, &a);
    loop_future *f = loop_process_exit(p);
    loop_future_ref(f); /* a holder the loop does not know of */
    loop_process_free(p);
    assert_int_equal(loop_free(loop), 0);
    (void)f; /* the futures' registry freed it with the loop: nothing to unref */
    assert_int_equal(mem.live_blocks, 0);
    assert_no_children();
}

int main(int argc, char **argv)
{
    int rc = process_helper(argc, argv);
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loop_free_kills_and_reaps_a_running_child, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_child_that_exited_unseen_is_reaped_by_loop_free,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_futures_taken_from_a_freed_loop_only_unref, setup,
                                        teardown),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
