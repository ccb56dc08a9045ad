/* ctest-link-options: -Wl,--wrap=getaddrinfo,--wrap=freeaddrinfo */
/* ctest-layers: task */
/*
 * Names resolved on a pool (loop_pool_getaddrinfo): the list the future
 * gives, the errors and their EAI codes, the slow class, cancelling
 * before and while getaddrinfo() runs, and who frees the list in every
 * ending -- read and freed, never read, cancelled, the loop freed first.
 * Names under .test are answered by tests/support/resolver_stub.h;
 * "localhost", numbers and malformed names go to the real getaddrinfo(),
 * which answers them from /etc/hosts or rejects them without a name
 * server.
 */
#include "pool_testing.h"

#include "fdleak.h"
#include "loop_task.h"
#include "resolver_stub.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static pthread_t loop_thread;

static loop_t *counted_loop(struct counting_alloc *a)
{
    return new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = a});
}

static loop_future *resolve(loop_pool *p, const char *host, const char *service,
                            const struct addrinfo *hints)
{
    loop_future *f = NULL;
    assert_int_equal(loop_pool_getaddrinfo(p, host, service, hints, &f), 0);
    assert_non_null(f);
    return f;
}

static void assert_same_node(const struct addrinfo *a, const struct addrinfo *b)
{
    assert_int_equal(a->ai_flags, b->ai_flags);
    assert_int_equal(a->ai_family, b->ai_family);
    assert_int_equal(a->ai_socktype, b->ai_socktype);
    assert_int_equal(a->ai_protocol, b->ai_protocol);
    assert_int_equal(a->ai_addrlen, b->ai_addrlen);
    assert_memory_equal(a->ai_addr, b->ai_addr, a->ai_addrlen);
    assert_ptr_not_equal(a->ai_addr, b->ai_addr);
    if (b->ai_canonname) {
        assert_non_null(a->ai_canonname);
        assert_string_equal(a->ai_canonname, b->ai_canonname);
    } else {
        assert_null(a->ai_canonname);
    }
}

/* The future's list is getaddrinfo's, node by node, in its order. */
static void check_against_libc(loop_t *l, loop_pool *p, const char *host, const char *service,
                               const struct addrinfo *hints, int nodes_at_least)
{
    struct addrinfo *want = NULL;
    assert_int_equal(__real_getaddrinfo(host, service, hints, &want), 0);
    loop_future *f = resolve(p, host, service, hints);
    void *r = NULL;
    assert_int_equal(loop_run_until_complete(l, f, &r), 0);
    int n = 0;
    const struct addrinfo *a = r, *b = want;
    for (; a && b; a = a->ai_next, b = b->ai_next, n++)
        assert_same_node(a, b);
    assert_null(a);
    assert_null(b);
    assert_true(n >= nodes_at_least);
    loop_pool_freeaddrinfo(l, r);
    loop_future_unref(f);
    __real_freeaddrinfo(want);
}

static void test_the_future_gives_getaddrinfos_list_copied_node_by_node(void **s)
{
    (void)s;
    struct counting_alloc a = {0};
    loop_t *l = counted_loop(&a);
    loop_pool *p = new_pool(l, 2);
    int made = atomic_load(&stub_resolver()->made);
    struct addrinfo canon = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_CANONNAME};
    check_against_libc(l, p, "localhost", "80", &canon, 1);
    /* No hints: one node per socket type (stream, datagram, raw). */
    check_against_libc(l, p, "127.0.0.1", "8080", NULL, 3);
    struct addrinfo v6 = {.ai_family = AF_INET6, .ai_flags = AI_NUMERICHOST};
    check_against_libc(l, p, "::1", NULL, &v6, 1);
    struct addrinfo passive = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    check_against_libc(l, p, NULL, "8080", &passive, 1);
    assert_int_equal(atomic_load(&stub_resolver()->made) - made, 4);
    assert_int_equal(stub_lists_alive(), 0); /* getaddrinfo's own lists freed at once */
    assert_int_equal(loop_pool_free(p), 0);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.bad_frees, 0);
}

static void note_thread(loop_future *f, void *arg)
{
    (void)f;
    *(pthread_t *)arg = pthread_self();
}

static void test_the_future_completes_on_the_loop_thread_and_the_address_is_right(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 1);
    struct addrinfo h = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    loop_future *f = resolve(p, "localhost", "8080", &h);
    pthread_t done_thread = 0;
    assert_int_equal(loop_future_add_done(f, note_thread, &done_thread), 0);
    void *r = NULL;
    assert_int_equal(loop_run_until_complete(l, f, &r), 0);
    loop_run_once(l, 0);
    assert_true(pthread_equal(done_thread, loop_thread));
    const struct addrinfo *ai = r;
    assert_int_equal(ai->ai_family, AF_INET);
    const struct sockaddr_in *in = (const struct sockaddr_in *)ai->ai_addr;
    assert_int_equal(ntohs(in->sin_port), 8080);
    assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
    loop_pool_freeaddrinfo(l, r);
    loop_future_unref(f);
    loop_free(l);
}

/* ---- errors -------------------------------------------------------------- */

static const struct {
    int eai, sys, err;
} mapped[] = {
    {EAI_NONAME, 0, -ENXIO},
    {EAI_NODATA, 0, -ENODATA},
    {EAI_ADDRFAMILY, 0, -EADDRNOTAVAIL},
    {EAI_AGAIN, 0, -EAGAIN},
    {EAI_FAIL, 0, -EREMOTEIO},
    {EAI_FAMILY, 0, -EAFNOSUPPORT},
    {EAI_SOCKTYPE, 0, -ESOCKTNOSUPPORT},
    {EAI_SERVICE, 0, -ENOENT},
    {EAI_BADFLAGS, 0, -EINVAL},
    {EAI_MEMORY, 0, -ENOMEM},
    {EAI_OVERFLOW, 0, -EOVERFLOW},
    {EAI_IDN_ENCODE, 0, -EILSEQ},
    {EAI_SYSTEM, EMFILE, -EMFILE},
    {EAI_SYSTEM, 0, -EIO},
    {-999, 0, -EIO},
};
#define NMAPPED (sizeof(mapped) / sizeof(mapped[0]))

static void test_each_eai_code_fails_the_future_with_its_errno_which_reads_back(void **s)
{
    (void)s;
    static char names[NMAPPED][32];
    static struct stub_name table[NMAPPED];
    for (size_t i = 0; i < NMAPPED; i++) {
        snprintf(names[i], sizeof names[i], "eai%zu.test", i);
        table[i] =
            (struct stub_name){.name = names[i], .eai = mapped[i].eai, .sys_errno = mapped[i].sys};
    }
    stub_resolver_set(table, NMAPPED, false);
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 4);
    loop_future *f[NMAPPED];
    for (size_t i = 0; i < NMAPPED; i++)
        f[i] = resolve(p, names[i], "80", NULL);
    for (size_t i = 0; i < NMAPPED; i++) {
        void *r = &r;
        int err = loop_run_until_complete(l, f[i], &r);
        if (err != mapped[i].err)
            fail_msg("EAI %d (errno %d) gave %d, not %d", mapped[i].eai, mapped[i].sys, err,
                     mapped[i].err);
        assert_int_equal(loop_future_state(f[i]), LOOP_FUTURE_FAILED);
        int back = mapped[i].eai == -999 || (mapped[i].eai == EAI_SYSTEM && !mapped[i].sys)
                       ? EAI_SYSTEM /* -EIO: not the table's */
                       : mapped[i].eai;
        assert_int_equal(loop_pool_eai_code(err), back);
        loop_future_unref(f[i]);
    }
    assert_int_equal(loop_pool_eai_code(0), 0);
    assert_int_equal(loop_pool_eai_code(-ECANCELED), EAI_SYSTEM);
    stub_resolver_set(NULL, 0, false);
    loop_free(l);
}

static int resolve_error(loop_t *l, loop_pool *p, const char *host, const char *service,
                         struct addrinfo hints)
{
    loop_future *f = resolve(p, host, service, &hints);
    int err = loop_run_until_complete(l, f, NULL);
    loop_future_unref(f);
    return err;
}

/* What the system's resolver says of these needs no name server. */
static void test_the_system_resolvers_own_errors_arrive_mapped(void **s)
{
    (void)s;
    loop_t *l = new_real_loop();
    loop_pool *p = new_pool(l, 2);
    struct addrinfo tcp = {.ai_socktype = SOCK_STREAM};
    assert_int_equal(resolve_error(l, p, "bad name", "80", tcp), -ENXIO);
    assert_int_equal(
        resolve_error(l, p, "localhost", "80", (struct addrinfo){.ai_flags = AI_NUMERICHOST}),
        -ENXIO);
    assert_int_equal(resolve_error(l, p, "127.0.0.1", "80", (struct addrinfo){.ai_family = 12345}),
                     -EAFNOSUPPORT);
    assert_int_equal(
        resolve_error(l, p, "127.0.0.1", "80", (struct addrinfo){.ai_socktype = 12345}),
        -ESOCKTNOSUPPORT);
    assert_int_equal(
        resolve_error(l, p, "127.0.0.1", "80", (struct addrinfo){.ai_flags = 0x40000000}), -EINVAL);
    assert_int_equal(resolve_error(l, p, "127.0.0.1", "no-such-service", tcp), -ENOENT);
    assert_int_equal(stub_lists_alive(), 0);
    loop_free(l);
}

static void test_bad_arguments_are_einval_and_a_shut_pool_eshutdown_and_nothing_is_queued(void **s)
{
    (void)s;
    struct counting_alloc a = {0};
    loop_t *l = counted_loop(&a);
    loop_pool *p = new_pool(l, 1);
    loop_future *f = (loop_future *)&f;
    assert_int_equal(loop_pool_getaddrinfo(NULL, "localhost", "80", NULL, &f), -EINVAL);
    assert_null(f);
    assert_int_equal(loop_pool_getaddrinfo(p, "localhost", "80", NULL, NULL), -EINVAL);
    f = (loop_future *)&f;
    assert_int_equal(loop_pool_getaddrinfo(p, NULL, NULL, NULL, &f), -EINVAL);
    assert_null(f);
    assert_int_equal(loop_pool_shutdown(p, LOOP_POOL_WAIT, NULL), 0);
    long blocks = a.live_blocks;
    f = (loop_future *)&f;
    assert_int_equal(loop_pool_getaddrinfo(p, "localhost", "80", NULL, &f), -ESHUTDOWN);
    assert_null(f);
    assert_int_equal(a.live_blocks, blocks); /* refused before anything was made */
    assert_int_equal(pool_stats(p).outstanding, 0);
    loop_pool_freeaddrinfo(l, NULL); /* ignored */
    loop_free(l);
    assert_int_equal(a.live_blocks, 0);
}

static void test_resolutions_are_slow_jobs_held_to_slow_threads(void **s)
{
    (void)s;
    static const struct stub_name gated[] = {
        {.name = "gated.test", .addrs = "127.0.0.1", .gated = true}};
    stub_resolver_set(gated, 1, true);
    loop_t *l = new_real_loop();
    loop_pool *p = NULL;
    assert_int_equal(loop_pool_new(l, &(loop_pool_options){.threads = 2, .slow_threads = 1}, &p),
                     0);
    loop_future *f1 = resolve(p, "gated.test", "80", NULL);
    loop_future *f2 = resolve(p, "gated.test", "80", NULL);
    assert_true(stub_gate_wait(1));
    loop_pool_stats_t st = pool_stats(p);
    assert_int_equal(st.slow_running, 1);
    assert_int_equal(st.queued, 1); /* a thread is free, but not for a slow job */
    stub_gate_open();
    void *r = NULL;
    assert_int_equal(loop_run_until_complete(l, f1, &r), 0);
    loop_pool_freeaddrinfo(l, r);
    assert_int_equal(loop_run_until_complete(l, f2, &r), 0);
    loop_pool_freeaddrinfo(l, r);
    loop_future_unref(f1);
    loop_future_unref(f2);
    stub_resolver_set(NULL, 0, false);
    loop_free(l);
}

/* ---- cancelling, and who frees what ----------------------------------------- */

static void test_a_resolution_cancelled_before_it_starts_never_runs_and_frees_its_request(void **s)
{
    (void)s;
    static const struct stub_name names[] = {{.name = "queued.test", .addrs = "127.0.0.1"}};
    stub_resolver_set(names, 1, false);
    struct counting_alloc a = {0};
    loop_t *l = counted_loop(&a);
    loop_pool *p = new_pool(l, 1);
    struct gate g;
    gate_init(&g);
    struct gated busy = {.gate = &g};
    loop_future *fb = submit(p, &busy);
    gate_wait_started(&g, 1); /* the only thread is taken */
    int answered = atomic_load(&stub_resolver()->answered);
    loop_future *f = resolve(p, "queued.test", "80", NULL);
    assert_int_equal(pool_stats(p).queued, 1);
    long blocks = a.live_blocks;
    assert_int_equal(loop_future_cancel(f), 1);
    assert_int_equal(loop_future_state(f), LOOP_FUTURE_CANCELLED);
    assert_int_equal(pool_stats(p).queued, 0);
    assert_int_equal(pool_stats(p).outstanding, 1); /* the busy job only */
    assert_int_equal(a.live_blocks, blocks - 1);    /* the request is freed already */
    loop_future_unref(f);
    gate_open(&g);
    assert_int_equal(loop_run_until_complete(l, fb, NULL), 0);
    loop_future_unref(fb);
    assert_int_equal(pool_stats(p).outstanding, 0);
    assert_int_equal(atomic_load(&stub_resolver()->answered), answered); /* never ran */
    stub_resolver_set(NULL, 0, false);
    loop_pool_free(p);
    gate_destroy(&g);
    loop_free(l);
    assert_int_equal(a.live_blocks, 0);
}

static bool nothing_outstanding(void *arg)
{
    loop_t *l = loop_future_loop(arg);
    loop_run_once(l, 1000000);
    loop_pool *p;
    loop_pool_default(l, &p);
    return pool_stats(p).outstanding == 0;
}

static void test_a_resolution_cancelled_while_it_runs_frees_the_list_when_it_returns(void **s)
{
    (void)s;
    static const struct stub_name gated[] = {
        {.name = "gated.test", .addrs = "127.0.0.1 127.0.0.2", .gated = true}};
    stub_resolver_set(gated, 1, true);
    struct counting_alloc a = {0};
    loop_t *l = counted_loop(&a);
    loop_pool *p;
    assert_int_equal(loop_pool_default(l, &p), 0);
    loop_future *f = resolve(p, "gated.test", "80", NULL);
    assert_true(stub_gate_wait(1)); /* getaddrinfo runs */
    assert_int_equal(loop_future_cancel(f), 1);
    assert_int_equal(loop_future_state(f), LOOP_FUTURE_CANCELLED);
    stub_gate_open();
    wait_until(nothing_outstanding, f, "the cancelled resolution to end");
    assert_int_equal(stub_lists_alive(), 0); /* the list was made, and freed */
    assert_true(atomic_load(&stub_resolver()->made) > 0);
    loop_future_unref(f);
    stub_resolver_set(NULL, 0, false);
    loop_free(l);
    assert_int_equal(a.live_blocks, 0); /* nothing else holds the request: it was freed */
}

static bool all_freed(void *arg)
{
    return locked_live_blocks(arg) == 0 && stub_lists_alive() == 0;
}

static bool finished_and_waiting(void *arg)
{
    loop_pool_stats_t st = pool_stats(arg);
    return st.queued == 0 && st.slow_running == 1;
}

/* One resolution running (at the gate), one queued behind the slow cap,
 * and one finished whose future the loop has not completed: loop_free()
 * frees the last two, and the first's thread frees it when it returns. */
static void test_a_loop_freed_during_resolutions_leaves_nothing_once_they_return(void **s)
{
    (void)s;
    static const struct stub_name names[] = {
        {.name = "gated.test", .addrs = "127.0.0.1", .gated = true},
        {.name = "quick.test", .addrs = "127.0.0.1"}};
    stub_resolver_set(names, 2, true);
    struct locked_alloc la = {.mu = PTHREAD_MUTEX_INITIALIZER};
    loop_t *l = new_loop_with((loop_options){.realloc = locked_realloc, .alloc_ctx = &la});
    loop_pool *p = NULL;
    assert_int_equal(loop_pool_new(l, &(loop_pool_options){.threads = 3, .slow_threads = 2}, &p),
                     0);
    /* The futures are left to loop_free(). */
    resolve(p, "gated.test", "80", NULL); /* runs */
    assert_true(stub_gate_wait(1));
    resolve(p, "quick.test", "80", NULL); /* finishes */
    wait_until(finished_and_waiting, p, "the quick resolution to finish");
    resolve(p, "gated.test", "80", NULL); /* runs */
    resolve(p, "gated.test", "80", NULL); /* waits for a slow thread */
    assert_true(stub_gate_wait(2));
    assert_int_equal(pool_stats(p).queued, 1);
    assert_int_equal(loop_free(l), 0);
    stub_gate_open();
    wait_until(all_freed, &la, "the orphaned resolutions to free what they hold");
    assert_int_equal(la.a.bad_frees, 0);
    stub_resolver_set(NULL, 0, false);
}

static void test_a_list_never_read_or_never_freed_is_freed_by_loop_free(void **s)
{
    (void)s;
    struct counting_alloc a = {0};
    loop_t *l = counted_loop(&a);
    loop_pool *p = new_pool(l, 2);
    loop_future *unread = resolve(p, "localhost", "80", NULL);
    loop_future *kept = resolve(p, "127.0.0.1", "80", NULL);
    assert_int_equal(loop_run_until_complete(l, unread, NULL), 0);
    void *r = NULL;
    assert_int_equal(loop_run_until_complete(l, kept, &r), 0);
    assert_non_null(r);
    loop_future_unref(unread);
    loop_future_unref(kept);
    assert_int_equal(stub_lists_alive(), 0);
    assert_int_equal(loop_pool_free(p), 0);
    assert_true(a.live_blocks > 0); /* the two copies */
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
    assert_int_equal(a.bad_frees, 0);
}

/* loop_pool_free() completes the futures of jobs that finished: a
 * resolution's too, with its list. */
static void test_a_pool_freed_after_a_resolution_finished_still_gives_its_list(void **s)
{
    (void)s;
    struct counting_alloc a = {0};
    loop_t *l = counted_loop(&a);
    loop_pool *p = new_pool(l, 1);
    loop_future *f = resolve(p, "127.0.0.1", "80", NULL);
    wait_until(pool_all_idle, p, "the resolution to finish");
    assert_int_equal(loop_pool_free(p), 0);
    void *r = NULL;
    assert_int_equal(loop_future_result(f, &r), 0);
    assert_int_equal(((struct addrinfo *)r)->ai_family, AF_INET);
    loop_pool_freeaddrinfo(l, r);
    loop_future_unref(f);
    assert_int_equal(stub_lists_alive(), 0);
    loop_free(l);
    assert_int_equal(a.live_blocks, 0);
}

/* A task that holds a list while it waits for a future nobody completes,
 * and frees the list when the wait ends: as loop_free() unwinds it. */
struct holder {
    loop_pool *p;
    loop_future *never;
    bool holding, freed;
    int err;
};

static int hold_a_list(loop_t *loop, void *arg, void **result)
{
    (void)result;
    struct holder *h = arg;
    loop_future *f;
    if ((h->err = loop_pool_getaddrinfo(h->p, "127.0.0.1", "80", NULL, &f)) != 0)
        return h->err;
    void *list = NULL;
    h->err = loop_task_await(f, &list);
    loop_future_unref(f);
    if (h->err)
        return h->err;
    h->holding = true;
    h->err = loop_task_await(h->never, NULL);
    loop_pool_freeaddrinfo(loop, list);
    h->freed = true;
    return h->err;
}

/* The lists' registry is attached after the task layer's (the task made
 * the first resolution), so loop_free() releases it first, and frees the
 * list before the task frees it; or before it (a resolution came first),
 * and the task's free is the one that counts.  Either way, once. */
static void unwind_a_task_holding_a_list(bool registry_first)
{
    struct counting_alloc a = {0};
    loop_t *l = counted_loop(&a);
    struct holder h = {.p = new_pool(l, 1)};
    assert_int_equal(loop_future_new(l, &h.never), 0);
    if (registry_first) {
        loop_future *f = resolve(h.p, "127.0.0.1", "81", NULL);
        void *r = NULL;
        assert_int_equal(loop_run_until_complete(l, f, &r), 0);
        loop_pool_freeaddrinfo(l, r);
        loop_future_unref(f);
    }
    assert_int_equal(loop_task_spawn(l, hold_a_list, &h, NULL), 0);
    for (int i = 0; !h.holding; i++) {
        assert_true(i < 60000);
        assert_int_equal(loop_run_once(l, 1000000), 0);
    }
    assert_int_equal(loop_free(l), 0);
    assert_true(h.freed);
    assert_int_equal(h.err, -ECANCELED);
    assert_int_equal(a.bad_frees, 0);
    assert_int_equal(a.live_blocks, 0);
}

static void test_a_task_unwound_by_loop_free_may_free_its_list_registry_released_first(void **s)
{
    (void)s;
    unwind_a_task_holding_a_list(false);
}

static void test_a_task_unwound_by_loop_free_may_free_its_list_registry_released_last(void **s)
{
    (void)s;
    unwind_a_task_holding_a_list(true);
}

int main(void)
{
    loop_thread = pthread_self();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_future_gives_getaddrinfos_list_copied_node_by_node),
        cmocka_unit_test(test_the_future_completes_on_the_loop_thread_and_the_address_is_right),
        cmocka_unit_test(test_each_eai_code_fails_the_future_with_its_errno_which_reads_back),
        cmocka_unit_test(test_the_system_resolvers_own_errors_arrive_mapped),
        cmocka_unit_test(
            test_bad_arguments_are_einval_and_a_shut_pool_eshutdown_and_nothing_is_queued),
        cmocka_unit_test(test_resolutions_are_slow_jobs_held_to_slow_threads),
        cmocka_unit_test(
            test_a_resolution_cancelled_before_it_starts_never_runs_and_frees_its_request),
        cmocka_unit_test(test_a_resolution_cancelled_while_it_runs_frees_the_list_when_it_returns),
        cmocka_unit_test(test_a_loop_freed_during_resolutions_leaves_nothing_once_they_return),
        cmocka_unit_test(test_a_list_never_read_or_never_freed_is_freed_by_loop_free),
        cmocka_unit_test(test_a_pool_freed_after_a_resolution_finished_still_gives_its_list),
        cmocka_unit_test(
            test_a_task_unwound_by_loop_free_may_free_its_list_registry_released_first),
        cmocka_unit_test(test_a_task_unwound_by_loop_free_may_free_its_list_registry_released_last),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
