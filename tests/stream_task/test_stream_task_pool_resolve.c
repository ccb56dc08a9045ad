/* ctest-link-options: -Wl,--wrap=getaddrinfo,--wrap=freeaddrinfo */
/*
 * Host names in the task form: open_connection and start_server resolve
 * a name on the loop's default pool and try its addresses in order;
 * numbers and "localhost" take no thread; a name that does not resolve
 * gives the resolver's error; a cancel or loop_free() during a resolution
 * leaves nothing behind; and every allocation of a connect by name may
 * fail.  Names under .test are answered by tests/support/resolver_stub.h
 * (no /etc/hosts edit, no network): its addresses are real loopback ones,
 * 127.0.0.2 refusing where only 127.0.0.1 listens.
 */
#include "../pool/pool_testing.h"
#include "../stream/stream_testing.h"

#include "fdleak.h"
#include "loop_stream_task.h"
#include "resolver_stub.h"

#include <stdio.h>
#include <sys/un.h>

static const struct stub_name names[] = {
    {.name = "server.test", .addrs = "127.0.0.1"},
    {.name = "refuse-first.test", .addrs = "127.0.0.2 127.0.0.1"},
    {.name = "refused-then-enoent.test", .addrs = "127.0.0.2 unix:/nonexistent/libloop.sock"},
    {.name = "enoent-then-refused.test", .addrs = "unix:/nonexistent/libloop.sock 127.0.0.2"},
    {.name = "nxdomain.test", .eai = EAI_NONAME},
    {.name = "servfail.test", .eai = EAI_AGAIN},
    {.name = "listen.test", .addrs = "192.0.2.1 127.0.0.1"}, /* TEST-NET-1: not ours */
    {.name = "listen-nowhere.test", .addrs = "192.0.2.1"},
    {.name = "gated.test", .addrs = "127.0.0.1", .gated = true},
};

static void answer_names(bool shut)
{
    stub_resolver_set(names, sizeof names / sizeof names[0], shut);
}

static int echo_handler(loop_stream *s, void *arg)
{
    (void)arg;
    const char *d;
    size_t n;
    int err;
    while ((err = loop_stream_task_read(s, 0, &d, &n)) == 0 && n > 0)
        if ((err = loop_stream_write(s, d, n)) != 0)
            break;
    return err;
}

static loop_server *echo_server(loop_t *l, const char *host)
{
    loop_server *srv = NULL;
    assert_int_equal(loop_stream_task_start_server(l, host, 0, NULL, echo_handler, NULL, &srv), 0);
    return srv;
}

/* A client task: connect to host:port, say "hi", read it back. */
struct client {
    const char *host;
    uint16_t port;
    int err;
    char peer[INET6_ADDRSTRLEN];
};

static int client_task(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct client *c = arg;
    loop_stream *s;
    if ((c->err = loop_stream_task_open_connection(loop, c->host, c->port, NULL, &s)) != 0)
        return c->err;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (loop_stream_peer_addr(s, &ss, &len) == 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer, sizeof c->peer);
    const char *d;
    size_t n;
    c->err = loop_stream_write(s, "hi\n", 3);
    if (!c->err)
        c->err = loop_stream_task_read_until(s, "\n", 1, &d, &n);
    if (!c->err && (n != 3 || memcmp(d, "hi\n", 3) != 0))
        c->err = -EPROTO;
    loop_stream_close(s);
    return c->err;
}

static int run_client(loop_t *l, const char *host, uint16_t port, struct client *c)
{
    *c = (struct client){.host = host, .port = port};
    loop_task *t;
    assert_int_equal(loop_task_spawn(l, client_task, c, &t), 0);
    int err = loop_run_until_complete(l, loop_task_future(t), NULL);
    loop_task_unref(t);
    assert_int_equal(err, c->err);
    return err;
}

static loop_pool_stats_t default_pool_stats(loop_t *l)
{
    loop_pool *p;
    assert_int_equal(loop_pool_default(l, &p), 0);
    return pool_stats(p);
}

/* ---- numbers and names ------------------------------------------------------ */

static void test_numbers_and_localhost_connect_and_listen_without_a_thread(void **s)
{
    (void)s;
    int threads = process_threads();
    int calls = atomic_load(&stub_resolver()->calls);
    loop_t *l = new_real_loop();
    loop_server *a = echo_server(l, "127.0.0.1"), *b = echo_server(l, "localhost");
    struct client c;
    assert_int_equal(run_client(l, "127.0.0.1", loop_server_port(a), &c), 0);
    assert_int_equal(run_client(l, "localhost", loop_server_port(b), &c), 0);
    run_client(l, "::1", 1, &c); /* refused, or no IPv6 here: a number either way */
    assert_int_equal(atomic_load(&stub_resolver()->calls), calls);
    assert_int_equal(process_threads(), threads);
    loop_pool_stats_t st = default_pool_stats(l);
    assert_int_equal(st.threads, 0);
    assert_int_equal(st.outstanding, 0);
    loop_server_free(a);
    loop_server_free(b);
    loop_free(l);
}

static void test_open_connection_to_a_name_resolves_it_on_the_pool_and_connects(void **s)
{
    (void)s;
    answer_names(false);
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
    loop_server *srv = echo_server(l, "127.0.0.1");
    int answered = atomic_load(&stub_resolver()->answered);
    struct client c;
    assert_int_equal(run_client(l, "server.test", loop_server_port(srv), &c), 0);
    assert_string_equal(c.peer, "127.0.0.1");
    assert_int_equal(atomic_load(&stub_resolver()->answered), answered + 1);
    assert_true(default_pool_stats(l).threads >= 1); /* resolved on a thread */
    assert_int_equal(stub_lists_alive(), 0);
    loop_server_free(srv);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0); /* the copy of the list was freed too */
}

static void test_a_name_whose_first_address_refuses_connects_to_the_next(void **s)
{
    (void)s;
    answer_names(false);
    loop_t *l = new_real_loop();
    loop_server *srv = echo_server(l, "127.0.0.1");
    struct client c;
    assert_int_equal(run_client(l, "127.0.0.2", loop_server_port(srv), &c), -ECONNREFUSED);
    assert_int_equal(run_client(l, "refuse-first.test", loop_server_port(srv), &c), 0);
    assert_string_equal(c.peer, "127.0.0.1");
    loop_server_info_t info;
    assert_int_equal(loop_server_info(srv, &info), 0);
    assert_u64_eq(info.accepted, 1);
    loop_server_free(srv);
    loop_free(l);
}

static void test_a_name_whose_every_address_fails_gives_the_last_ones_error(void **s)
{
    (void)s;
    answer_names(false);
    loop_t *l = new_real_loop();
    loop_server *srv = echo_server(l, "127.0.0.1"); /* on 127.0.0.1 only */
    uint16_t port = loop_server_port(srv);
    struct client c;
    assert_int_equal(run_client(l, "refused-then-enoent.test", port, &c), -ENOENT);
    assert_int_equal(run_client(l, "enoent-then-refused.test", port, &c), -ECONNREFUSED);
    assert_int_equal(stub_lists_alive(), 0);
    loop_server_free(srv);
    loop_free(l);
}

static void test_a_name_that_does_not_resolve_gives_the_resolvers_error(void **s)
{
    (void)s;
    answer_names(false);
    loop_t *l = new_real_loop();
    struct client c;
    assert_int_equal(run_client(l, "nxdomain.test", 80, &c), -ENXIO);
    assert_int_equal(run_client(l, "servfail.test", 80, &c), -EAGAIN);
    /* The real resolver: .invalid never resolves (RFC 6761).  Without a
     * name server (RES_OPTIONS bounds the wait: see main) it cannot say
     * so, only that it got no answer. */
    int err = run_client(l, "no-such-host.invalid", 80, &c);
    if (err != -ENXIO && err != -EAGAIN)
        fail_msg("no-such-host.invalid gave %d (%s)", err, loop_strerror(err));
    loop_free(l);
}

/* ---- servers ------------------------------------------------------------------ */

struct listen_job {
    const char *host;
    int err;
    loop_server *srv;
};

static int listen_task(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct listen_job *j = arg;
    j->err = loop_stream_task_start_server(loop, j->host, 0, NULL, echo_handler, NULL, &j->srv);
    return j->err;
}

static int listen_in_a_task(loop_t *l, const char *host, loop_server **srv)
{
    struct listen_job j = {.host = host};
    loop_task *t;
    assert_int_equal(loop_task_spawn(l, listen_task, &j, &t), 0);
    int err = loop_run_until_complete(l, loop_task_future(t), NULL);
    assert_int_equal(err, j.err);
    loop_task_unref(t);
    *srv = j.srv;
    return j.err;
}

static void test_start_server_on_a_name_listens_on_its_first_address_that_binds(void **s)
{
    (void)s;
    answer_names(false);
    loop_t *l = new_real_loop();
    loop_server *srv = NULL;
    int answered = atomic_load(&stub_resolver()->answered);
    assert_int_equal(
        loop_stream_task_start_server(l, "listen.test", 0, NULL, echo_handler, NULL, &srv),
        -EPERM); /* a name waits: from a task only */
    assert_null(srv);
    assert_int_equal(atomic_load(&stub_resolver()->answered), answered);
    assert_int_equal(default_pool_stats(l).threads, 0); /* nothing was asked of the pool */
    assert_int_equal(listen_in_a_task(l, "listen.test", &srv), 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(loop_server_addr(srv, &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);
    struct client c;
    assert_int_equal(run_client(l, "127.0.0.1", loop_server_port(srv), &c), 0);
    loop_server_free(srv);
    assert_int_equal(listen_in_a_task(l, "listen-nowhere.test", &srv), -EADDRNOTAVAIL);
    assert_null(srv);
    assert_int_equal(listen_in_a_task(l, "nxdomain.test", &srv), -ENXIO);
    assert_int_equal(stub_lists_alive(), 0);
    loop_free(l);
}

/* ---- cancels and loop_free() during a resolution -------------------------------- */

static bool pool_done(void *arg)
{
    loop_t *l = arg;
    loop_run_once(l, LOOP_MS(1));
    return default_pool_stats(l).outstanding == 0;
}

static void test_a_task_cancelled_while_its_name_resolves_gets_ecanceled_and_nothing_leaks(void **s)
{
    (void)s;
    answer_names(true);
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
    struct client c = {.host = "gated.test", .port = 80};
    loop_task *t;
    assert_int_equal(loop_task_spawn(l, client_task, &c, &t), 0);
    RUN_UNTIL(l, stub_at_gate() == 1); /* getaddrinfo is running */
    assert_int_equal(loop_task_cancel(t), 1);
    assert_int_equal(loop_run_until_complete(l, loop_task_future(t), NULL), -ECANCELED);
    assert_int_equal(c.err, -ECANCELED);
    loop_task_unref(t);
    stub_gate_open();
    wait_until(pool_done, l, "the cancelled resolution to end");
    assert_int_equal(stub_lists_alive(), 0);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
}

static bool all_freed(void *arg)
{
    return locked_live_blocks(arg) == 0 && stub_lists_alive() == 0;
}

static void test_a_loop_freed_while_a_task_resolves_a_name_leaves_nothing(void **s)
{
    (void)s;
    answer_names(true);
    struct locked_alloc la = {.mu = PTHREAD_MUTEX_INITIALIZER};
    loop_t *l = new_loop_with((loop_options){.realloc = locked_realloc, .alloc_ctx = &la});
    struct client c = {.host = "gated.test", .port = 80};
    assert_int_equal(loop_task_spawn(l, client_task, &c, NULL), 0);
    RUN_UNTIL(l, stub_at_gate() == 1);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(c.err, -ECANCELED); /* the task was unwound */
    stub_gate_open();
    wait_until(all_freed, &la, "the orphaned resolution to free what it holds");
}

/* ---- allocation failure ------------------------------------------------------------ */

static int connect_task(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct client *c = arg;
    loop_stream *s;
    if ((c->err = loop_stream_task_open_connection(loop, c->host, c->port, NULL, &s)) == 0)
        loop_stream_close(s);
    return c->err;
}

static void test_each_failed_allocation_of_a_connect_by_name_is_enomem_and_nothing_leaks(void **s)
{
    (void)s;
    answer_names(false);
    long at = 1;
    for (;; at++) {
        struct counting_alloc a = {0};
        loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at;
        loop_server *srv = NULL;
        int err = loop_stream_task_start_server(l, "127.0.0.1", 0, NULL, echo_handler, NULL, &srv);
        assert_true(err == 0 || err == -ENOMEM);
        struct client c = {.host = "server.test", .port = srv ? loop_server_port(srv) : 0};
        loop_task *t = NULL;
        if (srv && (err = loop_task_spawn(l, connect_task, &c, &t)) != 0)
            assert_int_equal(err, -ENOMEM);
        if (t) {
            RUN_UNTIL(l, loop_future_done(loop_task_future(t)));
            if (c.err != 0 && c.err != -ENOMEM)
                fail_msg("failing allocation %ld: the client got %d", at, c.err);
            loop_task_unref(t);
        }
        loop_server_free(srv);
        assert_int_equal(loop_free(l), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        assert_int_equal(stub_lists_alive(), 0);
        if (a.failures == 0)
            break; /* past the last allocation: the program ran whole */
        assert_true(at < 2000);
    }
    assert_true(at > 10);
}

int main(void)
{
    /* A query for a name under .invalid that no name server answers waits
     * one second, once, instead of the default 5 s twice per family. */
    setenv("RES_OPTIONS", "timeout:1 attempts:1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_and_localhost_connect_and_listen_without_a_thread),
        cmocka_unit_test(test_open_connection_to_a_name_resolves_it_on_the_pool_and_connects),
        cmocka_unit_test(test_a_name_whose_first_address_refuses_connects_to_the_next),
        cmocka_unit_test(test_a_name_whose_every_address_fails_gives_the_last_ones_error),
        cmocka_unit_test(test_a_name_that_does_not_resolve_gives_the_resolvers_error),
        cmocka_unit_test(test_start_server_on_a_name_listens_on_its_first_address_that_binds),
        cmocka_unit_test(
            test_a_task_cancelled_while_its_name_resolves_gets_ecanceled_and_nothing_leaks),
        cmocka_unit_test(test_a_loop_freed_while_a_task_resolves_a_name_leaves_nothing),
        cmocka_unit_test(
            test_each_failed_allocation_of_a_connect_by_name_is_enomem_and_nothing_leaks),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
