/*
 * examples/adapters/hiredis/loop_hiredis.h without a Redis server: the
 * promises of loop_hiredis_attach() and what the adapter does when the
 * loop fails it.  A listening socket of this process stands in for the
 * server (the kernel completes the connect; nothing is ever answered).
 * redis_check.c runs the adapter against a real redis-server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop_hiredis.h"
#include "watchdog.h"

/* A loopback listener that never accepts: its port, and its fd to close. */
static int listener(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static redisAsyncContext *connect_to(int port)
{
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", port);
    assert_non_null(ac);
    assert_int_equal(ac->err, 0);
    return ac;
}

/* An allocator that fails the next `fail` calls that allocate. */
struct allocator {
    int fail;
    int failed;
};

static void *flaky_realloc(void *ctx, void *ptr, size_t size)
{
    struct allocator *a = ctx;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    if (a->fail > 0) {
        a->fail--;
        a->failed++;
        return NULL;
    }
    return realloc(ptr, size);
}

/* What hiredis reported, through the callbacks the user gives it. */
struct seen {
    int connects, connect_status;
    int disconnects, disconnect_status;
    char errstr[128];
    int replies, null_replies;
};

static struct seen seen;

static void on_connect(const redisAsyncContext *ac, int status)
{
    seen.connects++;
    seen.connect_status = status;
    if (status != REDIS_OK)
        snprintf(seen.errstr, sizeof(seen.errstr), "%s", ac->errstr);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    seen.disconnects++;
    seen.disconnect_status = status;
    if (status != REDIS_OK)
        snprintf(seen.errstr, sizeof(seen.errstr), "%s", ac->errstr);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    (void)privdata;
    seen.replies++;
    if (reply == NULL)
        seen.null_replies++;
}

static int setup(void **state)
{
    (void)state;
    memset(&seen, 0, sizeof(seen));
    watchdog_start("a hiredis adapter test", 60);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    watchdog_stop();
    return 0;
}

static void test_attach_rejects_null_arguments(void **state)
{
    (void)state;
    int port, lfd = listener(&port);
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    redisAsyncContext *ac = connect_to(port);

    assert_int_equal(loop_hiredis_attach(NULL, ac), -EINVAL);
    assert_int_equal(loop_hiredis_attach(loop, NULL), -EINVAL);
    assert_null(ac->ev.data);

    redisAsyncFree(ac);
    assert_int_equal(loop_free(loop), 0);
    close(lfd);
}

static void test_attach_to_an_attached_context_is_eexist_and_changes_nothing(void **state)
{
    (void)state;
    int port, lfd = listener(&port);
    loop_t *loop, *other;
    assert_int_equal(loop_new(&loop), 0);
    assert_int_equal(loop_new(&other), 0);
    redisAsyncContext *ac = connect_to(port);

    assert_int_equal(loop_hiredis_attach(loop, ac), 0);
    void *data = ac->ev.data;
    assert_non_null(data);
    assert_int_equal(loop_hiredis_attach(other, ac), -EEXIST);
    assert_ptr_equal(ac->ev.data, data);
    assert_ptr_equal(((struct loop_hiredis *)ac->ev.data)->loop, loop);

    redisAsyncFree(ac);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(loop_free(other), 0);
    assert_int_equal(loop_free(loop), 0);
    close(lfd);
}

static void test_attach_to_a_context_without_a_socket_is_ebadf(void **state)
{
    (void)state;
    int port, lfd = listener(&port);
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    redisAsyncContext *ac = connect_to(port);

    int fd = ac->c.fd; /* as after a connect that failed at once */
    ac->c.fd = -1;
    assert_int_equal(loop_hiredis_attach(loop, ac), -EBADF);
    assert_null(ac->ev.data);
    ac->c.fd = fd;

    redisAsyncFree(ac);
    assert_int_equal(loop_free(loop), 0);
    close(lfd);
}

static void test_attach_out_of_memory_is_enomem_and_changes_nothing(void **state)
{
    (void)state;
    int port, lfd = listener(&port);
    struct allocator a = {0};
    loop_t *loop;
    assert_int_equal(
        loop_new_with(&loop, &(loop_options){.realloc = flaky_realloc, .alloc_ctx = &a}), 0);
    redisAsyncContext *ac = connect_to(port);

    a.fail = 1; /* the loop's first timer needs memory */
    assert_int_equal(loop_hiredis_attach(loop, ac), -ENOMEM);
    assert_int_equal(a.failed, 1);
    assert_null(ac->ev.data);
    assert_null(ac->ev.addWrite);

    assert_int_equal(loop_hiredis_attach(loop, ac), 0);
    redisAsyncFree(ac);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(loop_free(loop), 0);
    close(lfd);
}

/*
 * Freed from outside any callback, the context must leave nothing in the
 * loop: loop_run() has nothing to wait for and returns at once (a socket
 * or timer left behind would block it until the watchdog fires).
 */
static void test_freeing_the_context_leaves_nothing_in_the_loop(void **state)
{
    (void)state;
    int port, lfd = listener(&port);
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    redisAsyncContext *ac = connect_to(port);

    assert_int_equal(loop_hiredis_attach(loop, ac), 0);
    redisAsyncSetConnectCallback(ac, on_connect); /* hiredis asks to write */
    assert_int_equal(redisAsyncCommand(ac, on_reply, NULL, "PING"), REDIS_OK);
    redisAsyncFree(ac);

    assert_int_equal(seen.null_replies, 1);
    assert_int_equal(loop_run(loop), 0);
    loop_stats_t stats;
    assert_int_equal(loop_stats(loop, &stats), 0);
    assert_true(stats.callbacks == 0);
    assert_int_equal(loop_free(loop), 0);
    close(lfd);
}

static void noop(loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

/*
 * The hooks cannot return an error, so when the loop cannot watch the
 * socket because it is out of memory, the connection must still fail
 * through hiredis's callbacks, with a "libloop: " message, the command
 * waiting must get a NULL reply, and nothing may hang, although from then
 * on every allocation of the loop fails.  (The loop has run once, so its
 * ready queue exists; the socket is moved to a high number, so that
 * watching it needs the loop's fd table to grow.)
 */
static void test_out_of_memory_when_watching_fails_the_connection_through_hiredis(void **state)
{
    (void)state;
    int port, lfd = listener(&port);
    struct allocator a = {0};
    loop_t *loop;
    assert_int_equal(
        loop_new_with(&loop, &(loop_options){.realloc = flaky_realloc, .alloc_ctx = &a}), 0);
    assert_int_equal(loop_call_soon(loop, noop, NULL, NULL), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    redisAsyncContext *ac = connect_to(port);
    int high = fcntl(ac->c.fd, F_DUPFD_CLOEXEC, 900);
    assert_true(high >= 900);
    close(ac->c.fd);
    ac->c.fd = high;

    assert_int_equal(loop_hiredis_attach(loop, ac), 0);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    a.fail = INT_MAX;
    redisAsyncSetConnectCallback(ac, on_connect); /* hiredis asks to write: it fails */
    assert_int_equal(redisAsyncCommand(ac, on_reply, NULL, "PING"), REDIS_OK);
    assert_true(a.failed >= 1);

    assert_int_equal(loop_run(loop), 0);
    a.fail = 0;
    assert_int_equal(seen.null_replies, 1);
    assert_true((seen.connects && seen.connect_status == REDIS_ERR) ||
                (seen.disconnects && seen.disconnect_status == REDIS_ERR));
    char want[128];
    snprintf(want, sizeof(want), "libloop: %s", loop_strerror(-ENOMEM));
    assert_string_equal(seen.errstr, want);
    assert_int_equal(fcntl(high, F_GETFD), -1); /* hiredis closed it */
    assert_int_equal(loop_free(loop), 0);
    close(lfd);
}

/*
 * hiredis >= 1.0: a command that gets no answer times out on the loop's
 * clock; on a virtual clock the loop jumps to the deadline at once.
 */
static void test_command_timeout_runs_on_the_loops_clock(void **state)
{
    (void)state;
#if LOOP_HIREDIS_TIMERS
    int port, lfd = listener(&port);
    loop_t *loop;
    assert_int_equal(loop_new_with(&loop, &(loop_options){.clock = LOOP_CLOCK_VIRTUAL}), 0);
    redisAsyncContext *ac = connect_to(port);

    assert_int_equal(loop_hiredis_attach(loop, ac), 0);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redisAsyncSetTimeout(ac, (struct timeval){5, 0});
    assert_int_equal(redisAsyncCommand(ac, on_reply, NULL, "PING"), REDIS_OK);

    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(seen.connects, 1);
    assert_int_equal(seen.connect_status, REDIS_OK);
    assert_int_equal(seen.null_replies, 1);
    assert_int_equal(seen.disconnects, 1);
    assert_int_equal(seen.disconnect_status, REDIS_ERR);
    assert_string_equal(seen.errstr, "Timeout");
    assert_true(loop_now(loop) >= LOOP_SEC(5));
    assert_true(loop_now(loop) < LOOP_SEC(6));
    assert_int_equal(loop_free(loop), 0);
    close(lfd);
#else
    skip(); /* hiredis 0.14 has no timeouts */
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_attach_rejects_null_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_attach_to_an_attached_context_is_eexist_and_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_to_a_context_without_a_socket_is_ebadf, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_attach_out_of_memory_is_enomem_and_changes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_freeing_the_context_leaves_nothing_in_the_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_out_of_memory_when_watching_fails_the_connection_through_hiredis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_timeout_runs_on_the_loops_clock, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
