/*
 * examples/adapters/cares/loop_cares.h against a real dnsmasq that each
 * test starts on a free loopback port (dnsmasq-base, in the foreground, as
 * this process's user) and stops by its pid.  It knows example.test (and
 * every name under it) as 10.1.2.3 and other.test as 10.9.8.7, answers
 * NXDOMAIN for any other name under .test, and has no upstream server.
 * Every channel is pointed at it before its first query.  The last test
 * runs cares_demo, whose path is argv[1].
 *
 *   cares_adapter CARES_DEMO        (exits 77, skipped, without dnsmasq)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <sys/uio.h>

#include "counting_alloc.h"
#include "fdleak.h"
#include "local_server.h"
#include "loop_cares.h"
#include "watchdog.h"

static const char *demo_path;
static char dnsmasq_path[256];
static struct local_server dns;

static void start_dnsmasq(void)
{
    char port[32], pid_file[128], user[128], group[128];
    struct passwd *pw = getpwuid(getuid());
    struct group *gr = getgrgid(getgid());
    assert_non_null(pw);
    assert_non_null(gr);
    server_dir(&dns, "dnsmasq");
    snprintf(pid_file, sizeof(pid_file), "--pid-file=%s/dnsmasq.pid", dns.dir);
    snprintf(user, sizeof(user), "--user=%s", pw->pw_name);
    snprintf(group, sizeof(group), "--group=%s", gr->gr_name);
    for (int attempt = 0; attempt < 5; attempt++) {
        dns.port = server_free_port();
        snprintf(port, sizeof(port), "--port=%d", dns.port);
        char *argv[] = {dnsmasq_path,
                        "--keep-in-foreground",
                        "--conf-file=/dev/null",
                        "--no-resolv",
                        "--no-hosts",
                        port,
                        "--listen-address=127.0.0.1",
                        "--bind-interfaces",
                        "--local=/test/",
                        "--address=/example.test/10.1.2.3",
                        "--address=/other.test/10.9.8.7",
                        "--cache-size=0",
                        "--log-facility=-",
                        pid_file,
                        user,
                        group,
                        NULL};
        if (server_start(&dns, argv) == 0)
            return;
    }
    fail_msg("dnsmasq found its port taken five times");
}

static void stop_dnsmasq(void)
{
    server_stop(&dns);
    server_dir_remove(&dns);
}

static void kill_servers(void)
{
    if (dns.pid > 0)
        kill(dns.pid, SIGKILL);
}

/* ---- channels and lookups --------------------------------------------------- */

/* Short timeouts, no search domains, DNS only (no /etc/hosts). */
static loop_cares *new_channel_with(loop_t *loop, int timeout_ms, int tries, int flags)
{
    struct ares_options o;
    loop_cares *lc = NULL;
    char lookups[] = "b";
    memset(&o, 0, sizeof(o));
    o.timeout = timeout_ms;
    o.tries = tries;
    o.flags = flags | ARES_FLAG_NOSEARCH;
    o.ndomains = 0;
    o.lookups = lookups;
    int mask =
        ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS;
    int err = loop_cares_new(loop, &o, mask, &lc);
    if (err)
        return NULL;
    return lc;
}

static void use_server(loop_cares *lc, int port)
{
    char csv[64];
    snprintf(csv, sizeof(csv), "127.0.0.1:%d", port);
    assert_int_equal(ares_set_servers_ports_csv(loop_cares_channel(lc), csv), ARES_SUCCESS);
}

static loop_cares *new_channel(loop_t *loop, int timeout_ms, int tries, int flags)
{
    loop_cares *lc = new_channel_with(loop, timeout_ms, tries, flags);
    assert_non_null(lc);
    use_server(lc, dns.port);
    return lc;
}

struct lookup {
    char name[64];
    int dones;
    int status;
    int timeouts;
    char addr[INET_ADDRSTRLEN];
    loop_cares *lc;
    int free_status; /* what loop_cares_free() said from the callback */
    bool stop;       /* loop_stop() when done */
    loop_t *loop;
};

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct lookup *l = arg;
    l->dones++;
    l->status = status;
    l->timeouts = timeouts;
    if (status == ARES_SUCCESS) {
        assert_non_null(res->nodes);
        const struct sockaddr_in *sin = (const void *)res->nodes->ai_addr;
        inet_ntop(AF_INET, &sin->sin_addr, l->addr, sizeof(l->addr));
    }
    if (res)
        ares_freeaddrinfo(res);
    if (l->lc)
        l->free_status = loop_cares_free(l->lc);
    if (l->stop)
        loop_stop(l->loop);
}

static void resolve(loop_cares *lc, struct lookup *l, const char *name)
{
    struct ares_addrinfo_hints hints = {.ai_family = AF_INET};
    memset(l, 0, sizeof(*l));
    snprintf(l->name, sizeof(l->name), "%s", name);
    ares_getaddrinfo(loop_cares_channel(lc), l->name, NULL, &hints, on_addrinfo, l);
}

static loop_t *new_loop(void)
{
    loop_t *loop = NULL;
    assert_int_equal(loop_new(&loop), 0);
    return loop;
}

static struct fdlist fds_before;

static int setup(void **state)
{
    (void)state;
    watchdog_start("a c-ares adapter test", 30);
    watchdog_on_fire(kill_servers);
    fdlist_take(&fds_before);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop_dnsmasq();
    watchdog_stop();
    return 0;
}

/* ---- the tests ------------------------------------------------------------- */

static void test_functions_reject_bad_arguments_with_einval(void **state)
{
    (void)state;
    loop_t *loop = new_loop();
    loop_cares *lc = (loop_cares *)&lc;
    struct ares_options o;
    memset(&o, 0, sizeof(o));

    assert_int_equal(loop_cares_new(NULL, NULL, 0, &lc), -EINVAL);
    assert_int_equal(loop_cares_new(loop, NULL, 0, NULL), -EINVAL);
    assert_int_equal(loop_cares_new(loop, NULL, ARES_OPT_TRIES, &lc), -EINVAL);
    assert_int_equal(loop_cares_new(loop, &o, ARES_OPT_SOCK_STATE_CB, &lc), -EINVAL);
    assert_null(loop_cares_channel(NULL));
    assert_int_equal(loop_cares_free(NULL), -EINVAL);

    assert_int_equal(loop_cares_new(loop, NULL, 0, &lc), 0);
    assert_non_null(loop_cares_channel(lc));
    assert_int_equal(loop_cares_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
    assert_same_fds(&fds_before, "by the test");
}

/*
 * 40 names at once, in two domains: every callback runs once, with the
 * address the server holds for that name; loop_run() returns by itself
 * once the last answer is in (c-ares has closed its socket); no fd is left.
 */
static void test_names_resolve_at_once_to_the_addresses_the_server_holds(void **state)
{
    (void)state;
    enum { N = 40 };
    static struct lookup l[N];
    char name[64];
    start_dnsmasq();
    loop_t *loop = new_loop();
    loop_cares *lc = new_channel(loop, 2000, 2, 0);

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), i % 2 ? "host%d.example.test" : "other.test", i);
        resolve(lc, &l[i], name);
    }
    assert_int_equal(loop_run(loop), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(l[i].dones, 1);
        assert_int_equal(l[i].status, ARES_SUCCESS);
        assert_string_equal(l[i].addr, i % 2 ? "10.1.2.3" : "10.9.8.7");
    }
    assert_int_equal(loop_cares_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
    assert_same_fds(&fds_before, "by the lookups");
}

static void test_a_name_that_does_not_exist_ends_with_enotfound(void **state)
{
    (void)state;
    struct lookup missing, present;
    start_dnsmasq();
    loop_t *loop = new_loop();
    loop_cares *lc = new_channel(loop, 2000, 2, 0);

    resolve(lc, &missing, "missing.test");
    resolve(lc, &present, "example.test");
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(missing.dones, 1);
    assert_int_equal(missing.status, ARES_ENOTFOUND);
    assert_int_equal(present.dones, 1);
    assert_int_equal(present.status, ARES_SUCCESS);

    assert_int_equal(loop_cares_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
}

/* Icmp OutDestUnreachs of /proc/net/snmp, or -1. */
static long icmp_out_dest_unreachs(void)
{
    char names[1024], values[1024];
    long v = -1;
    FILE *f = fopen("/proc/net/snmp", "r");
    while (f && fgets(names, sizeof(names), f) && fgets(values, sizeof(values), f)) {
        if (strncmp(names, "Icmp:", 5) != 0)
            continue;
        char *sn, *sv, *n = strtok_r(names, " \n", &sn), *val = strtok_r(values, " \n", &sv);
        for (; n && val; n = strtok_r(NULL, " \n", &sn), val = strtok_r(NULL, " \n", &sv))
            if (strcmp(n, "OutDestUnreachs") == 0)
                v = atol(val);
        break;
    }
    if (f)
        fclose(f);
    return v;
}

/*
 * What a refusal that did not come depends on, printed before the test
 * fails: whether the kernel sent its port unreachable, and any UDP socket
 * that holds the dead server's port.
 */
static void print_refusal_facts(int port, long unreach_before)
{
    char line[512], hex[16];
    FILE *f = fopen("/proc/net/udp", "r");
    snprintf(hex, sizeof(hex), ":%04X ", port);
    fprintf(stderr, "port %d: %ld ICMP destination unreachable sent during the query\n", port,
            icmp_out_dest_unreachs() - unreach_before);
    while (f && fgets(line, sizeof(line), f))
        if (strstr(line, hex))
            fprintf(stderr, "a UDP socket on that port: %s", line);
    if (f)
        fclose(f);
}

/*
 * A server that died: its port is closed, c-ares is refused, and the query
 * ends with ARES_ECONNREFUSED, long before its timeouts would have run
 * out.  The channel then resolves through a new server.
 */
static void
test_a_killed_server_ends_queries_with_econnrefused_and_the_channel_goes_on(void **state)
{
    (void)state;
    struct lookup dead, alive;
    start_dnsmasq();
    loop_t *loop = new_loop();
    loop_cares *lc = new_channel(loop, 10000, 3, 0);

    for (int attempt = 0;; attempt++) {
        int port = dns.port;
        server_kill(&dns, SIGKILL);
        long unreach_before = icmp_out_dest_unreachs();
        resolve(lc, &dead, "example.test");
        assert_int_equal(loop_run(loop), 0);
        assert_int_equal(dead.dones, 1);
        if (dead.status == ARES_ECONNREFUSED)
            break;
        print_refusal_facts(port, unreach_before);
        /* The kernel refused nothing at all: the query never met a closed
         * port (another process's socket took it), which tests nothing of
         * the adapter.  Once more, with a new server to kill. */
        if (attempt == 0 && icmp_out_dest_unreachs() == unreach_before) {
            stop_dnsmasq();
            start_dnsmasq();
            use_server(lc, dns.port);
            continue;
        }
        assert_int_equal(dead.status, ARES_ECONNREFUSED);
    }

    stop_dnsmasq();
    start_dnsmasq();
    use_server(lc, dns.port);
    resolve(lc, &alive, "example.test");
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(alive.dones, 1);
    assert_int_equal(alive.status, ARES_SUCCESS);

    assert_int_equal(loop_cares_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
    assert_same_fds(&fds_before, "by the test");
}

/*
 * A server that is there but does not answer (stopped): every try times
 * out on the adapter's timer, and the query ends with ARES_ETIMEOUT after
 * its 3 tries (the watchdog bounds the time).  Continued, the server
 * answers the next query on the same channel.
 */
static void test_a_silent_server_ends_queries_with_etimeout_after_every_try(void **state)
{
    (void)state;
    struct lookup silent, answered;
    start_dnsmasq();
    loop_t *loop = new_loop();
    loop_cares *lc = new_channel(loop, 50, 3, 0);

    assert_int_equal(kill(dns.pid, SIGSTOP), 0);
    resolve(lc, &silent, "example.test");
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(silent.dones, 1);
    assert_int_equal(silent.status, ARES_ETIMEOUT);
    assert_int_equal(silent.timeouts, 3);

    assert_int_equal(kill(dns.pid, SIGCONT), 0);
    resolve(lc, &answered, "example.test");
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(answered.status, ARES_SUCCESS);
    assert_string_equal(answered.addr, "10.1.2.3");

    assert_int_equal(loop_cares_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
}

/*
 * With ARES_FLAG_STAYOPEN the socket outlives the first query, so a query
 * sent later goes out on it without c-ares saying anything to the
 * adapter: its timeouts must still be run.
 */
static void test_a_query_sent_on_a_socket_kept_open_still_times_out(void **state)
{
    (void)state;
    struct lookup first, later;
    start_dnsmasq();
    loop_t *loop = new_loop();
    loop_cares *lc = new_channel(loop, 50, 2, ARES_FLAG_STAYOPEN);

    resolve(lc, &first, "example.test");
    first.stop = true; /* the open socket keeps loop_run() running */
    first.loop = loop;
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(first.status, ARES_SUCCESS);
    /* Let the adapter's timer go quiet: no query is pending now. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_run_once(loop, LOOP_MS(60)), 0);

    assert_int_equal(kill(dns.pid, SIGSTOP), 0);
    resolve(lc, &later, "example.test");
    later.stop = true;
    later.loop = loop;
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(later.dones, 1);
    assert_int_equal(later.status, ARES_ETIMEOUT);

    assert_int_equal(loop_cares_free(lc), 0);
    assert_int_equal(loop_run(loop), 0); /* its socket is closed and unwatched */
    assert_int_equal(loop_free(loop), 0);
    assert_same_fds(&fds_before, "by the test");
}

/* Freed with queries pending (the server is stopped): each callback runs
 * once with ARES_EDESTRUCTION, and the socket is closed and unwatched. */
static void free_ends_pending_queries(bool by_loop_free)
{
    enum { N = 3 };
    struct lookup l[N];
    start_dnsmasq();
    loop_t *loop = new_loop();
    loop_cares *lc = new_channel(loop, 10000, 3, 0);

    assert_int_equal(kill(dns.pid, SIGSTOP), 0);
    for (int i = 0; i < N; i++)
        resolve(lc, &l[i], "example.test");
    assert_int_equal(loop_run_once(loop, 0), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(l[i].dones, 0);
    if (!by_loop_free) {
        assert_int_equal(loop_cares_free(lc), 0);
        assert_int_equal(loop_run(loop), 0); /* nothing is left in the loop */
    }
    assert_int_equal(loop_free(loop), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(l[i].dones, 1);
        assert_int_equal(l[i].status, ARES_EDESTRUCTION);
    }
    assert_same_fds(&fds_before, "by the test");
}

static void test_freeing_the_adapter_ends_pending_queries_with_edestruction(void **state)
{
    (void)state;
    free_ends_pending_queries(false);
}

static void test_loop_free_ends_pending_queries_and_frees_the_channel(void **state)
{
    (void)state;
    free_ends_pending_queries(true);
}

/* From a query's callback, freeing the channel is refused: -EBUSY. */
static void test_freeing_from_a_query_callback_is_ebusy(void **state)
{
    (void)state;
    struct lookup l;
    start_dnsmasq();
    loop_t *loop = new_loop();
    loop_cares *lc = new_channel(loop, 2000, 2, 0);

    resolve(lc, &l, "example.test");
    l.lc = lc;
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(l.dones, 1);
    assert_int_equal(l.status, ARES_SUCCESS);
    assert_int_equal(l.free_status, -EBUSY);

    assert_int_equal(loop_cares_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
}

/* Sockets at high numbers, so that watching them grows the loop's fd
 * table: an allocation the fault injection can fail. */
static ares_socket_t high_socket(int domain, int type, int protocol, void *arg)
{
    (void)arg;
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return ARES_SOCKET_BAD;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 800);
    close(fd);
    return high < 0 ? ARES_SOCKET_BAD : high;
}

static int high_close(ares_socket_t fd, void *arg)
{
    (void)arg;
    return close(fd);
}

static int high_connect(ares_socket_t fd, const struct sockaddr *a, ares_socklen_t len, void *arg)
{
    (void)arg;
    return connect(fd, a, len);
}

static ares_ssize_t high_recvfrom(ares_socket_t fd, void *buf, size_t n, int flags,
                                  struct sockaddr *from, ares_socklen_t *len, void *arg)
{
    (void)arg;
    return recvfrom(fd, buf, n, flags, from, len);
}

static ares_ssize_t high_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *arg)
{
    (void)arg;
    return writev(fd, iov, n);
}

static const struct ares_socket_functions high_sockets = {
    high_socket, high_close, high_connect, high_recvfrom, high_sendv,
};

/*
 * Every allocation the adapter and the loop make through the loop's
 * allocator fails in turn: loop_cares_new() is -ENOMEM and changes
 * nothing, or each query ends once: with its address (or, from a silent
 * server, ARES_ETIMEOUT, which needs the adapter's timer), or, when its
 * socket or the timer could not be had, ARES_ECONNREFUSED.  loop_run()
 * always returns, and nothing is left allocated or open.
 */
static void each_allocation_fails_in_turn(bool silent)
{
    enum { N = 3 };
    struct lookup l[N];
    bool saw_refused = false;
    long at;
    start_dnsmasq();
    if (silent)
        assert_int_equal(kill(dns.pid, SIGSTOP), 0);

    for (at = 1;; at++) {
        struct counting_alloc a = {0};
        loop_t *loop = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at; /* the loop's own first allocations are done */
        loop_cares *lc = new_channel_with(loop, silent ? 20 : 2000, 1, 0);
        if (lc != NULL) {
            use_server(lc, dns.port);
            ares_set_socket_functions(loop_cares_channel(lc), &high_sockets, NULL);
            for (int i = 0; i < N; i++)
                resolve(lc, &l[i], "example.test");
            int err;
            while ((err = loop_run(loop)) == -ENOMEM)
                ; /* the loop could not grow its ready queue: run it again */
            assert_int_equal(err, 0);
            for (int i = 0; i < N; i++) {
                assert_int_equal(l[i].dones, 1);
                if (l[i].status == ARES_ECONNREFUSED)
                    saw_refused = true;
                else if (silent)
                    assert_int_equal(l[i].status, ARES_ETIMEOUT);
                else
                    assert_string_equal(l[i].addr, "10.1.2.3");
            }
            assert_int_equal(loop_cares_free(lc), 0);
        }
        assert_int_equal(loop_free(loop), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        assert_same_fds(&fds_before, "after a failed allocation");
        if (a.failures == 0)
            break; /* the run got past every allocation */
    }
    assert_true(at > 3);
    assert_true(saw_refused); /* a socket that could not be watched was refused */
}

static void test_each_failed_allocation_is_enomem_or_a_refused_query(void **state)
{
    (void)state;
    each_allocation_fails_in_turn(false);
}

static void test_each_failed_allocation_with_a_silent_server_still_times_queries_out(void **state)
{
    (void)state;
    each_allocation_fails_in_turn(true);
}

/* ---- the demo -------------------------------------------------------------- */

static int run_demo(const char *const *args, char *out, size_t size)
{
    const char *argv[16] = {demo_path};
    int p[2];
    for (int i = 0; args[i] && i < 14; i++)
        argv[i + 1] = args[i];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(p[1], 1) < 0 || dup2(p[1], 2) < 0)
            _exit(126);
        execv(demo_path, (char *const *)argv);
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

static void test_demo_prints_each_name_and_reports_a_missing_one(void **state)
{
    (void)state;
    static char out[4096];
    char server[64], want[128];
    start_dnsmasq();
    snprintf(server, sizeof(server), "127.0.0.1:%d", dns.port);

    const char *const ok_args[] = {"--check-fds",    "--server",   server,
                                   "a.example.test", "other.test", NULL};
    if (run_demo(ok_args, out, sizeof(out)) != 0)
        fail_msg("cares_demo failed:\n%s", out);
    assert_non_null(strstr(out, "a.example.test: 10.1.2.3\n"));
    assert_non_null(strstr(out, "other.test: 10.9.8.7\n"));
    int before, after;
    const char *fds = strstr(out, "fds: ");
    assert_non_null(fds);
    assert_int_equal(sscanf(fds, "fds: %d before, %d after", &before, &after), 2);
    assert_int_equal(before, after);

    const char *const bad_args[] = {"--server", server, "missing.test", "b.example.test", NULL};
    assert_int_equal(run_demo(bad_args, out, sizeof(out)), 1);
    snprintf(want, sizeof(want), "cares_demo: missing.test: %s\n", ares_strerror(ARES_ENOTFOUND));
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "b.example.test: 10.1.2.3\n"));
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--skip") == 0) {
        printf("SKIP: %s\n", argv[2]);
        return 77;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: cares_adapter CARES_DEMO | --skip REASON\n");
        return 2;
    }
    demo_path = argv[1];
    if (!server_find_program("dnsmasq", dnsmasq_path, sizeof(dnsmasq_path))) {
        printf("SKIP: dnsmasq is not installed (apt-get install dnsmasq-base)\n");
        return 77;
    }
    ares_library_init(ARES_LIB_INIT_ALL);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_functions_reject_bad_arguments_with_einval),
        T(test_names_resolve_at_once_to_the_addresses_the_server_holds),
        T(test_a_name_that_does_not_exist_ends_with_enotfound),
        T(test_a_killed_server_ends_queries_with_econnrefused_and_the_channel_goes_on),
        T(test_a_silent_server_ends_queries_with_etimeout_after_every_try),
        T(test_a_query_sent_on_a_socket_kept_open_still_times_out),
        T(test_freeing_the_adapter_ends_pending_queries_with_edestruction),
        T(test_loop_free_ends_pending_queries_and_frees_the_channel),
        T(test_freeing_from_a_query_callback_is_ebusy),
        T(test_each_failed_allocation_is_enomem_or_a_refused_query),
        T(test_each_failed_allocation_with_a_silent_server_still_times_queries_out),
        T(test_demo_prints_each_name_and_reports_a_missing_one),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, snapshot_fds, NULL);
    ares_library_cleanup();
    return failed;
}
