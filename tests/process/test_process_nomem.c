/*
 * Allocation failure at every site of a spawn and of the child's reaping:
 * each allocation is failed in turn; the spawn says -ENOMEM and leaves no
 * fd and no child, or succeeds and its exit still reaches the future; the
 * loop stays usable, and every byte comes back when it is freed.
 */
#include "process_testing.h"

#include "counting_alloc.h"

static void test_each_failed_allocation_is_enomem_and_leaves_nothing(void **state)
{
    (void)state;
    watchdog_start("the allocation failure test", 120);
    struct fdlist before;
    fdlist_take(&before);
    int failed = 0;
    for (long at = 1;; at++) {
        struct counting_alloc a = {0};
        loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        struct fdlist with_loop;
        fdlist_take(&with_loop);
        a.fail_at = a.calls + at;
        int pass[2];
        assert_int_equal(pipe2(pass, O_CLOEXEC), 0);
        loop_process_fd fds[] = {{pass[1], 5}, {pass[1], 4}};
        struct helper_argv h = HELPER("exit", "6");
        loop_process_options o = {.argv = h.v, .fds = fds, .nfds = 2};
        o.stdio[0].mode = LOOP_PROCESS_DEVNULL;
        o.stdio[1].mode = o.stdio[2].mode = LOOP_PROCESS_PIPE;
        loop_process *p = NULL;
        int err = loop_process_spawn(l, &o, &p);
        if (err) {
            assert_int_equal(err, -ENOMEM);
            assert_null(p);
            close(pass[0]);
            close(pass[1]);
            assert_same_fds(&with_loop, "by a spawn without memory");
            assert_int_equal(pipe2(pass, O_CLOEXEC), 0);
            fds[0].parent_fd = fds[1].parent_fd = pass[1];
            assert_no_children();
            failed++;
            /* The loop is still usable: the same spawn now succeeds. */
            assert_int_equal(loop_process_spawn(l, &o, &p), 0);
        }
        close(pass[0]);
        close(pass[1]);
        void *r = NULL;
        int rc;
        for (int tries = 0;
             (rc = loop_run_until_complete(l, loop_process_exit(p), &r)) == -ENOMEM && tries < 10;
             tries++)
            ;
        assert_int_equal(rc, 0);
        assert_int_equal(loop_process_returncode(r), 6);
        loop_process_free(p);
        assert_int_equal(loop_free(l), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        assert_same_fds(&before, "by a spawn");
        assert_no_children();
        if (a.failures == 0)
            break; /* every allocation of the program has been failed once */
    }
    assert_true(failed >= 4); /* the registry, the stack, the map, the object, ... */
    watchdog_stop();
}

int main(int argc, char **argv)
{
    int rc = process_helper(argc, argv);
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_failed_allocation_is_enomem_and_leaves_nothing),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
