/*
 * examples/adapters/curl/loop_curl.h against a real nginx that each test
 * starts on a free loopback port (nginx-light, run in the foreground as one
 * process from a temporary directory) and stops by its pid; where no
 * server is wanted, a listening socket of this process that never answers
 * stands in.  The last test runs curl_demo, whose path is argv[1].
 *
 *   curl_adapter CURL_DEMO         (exits 77, skipped, without nginx)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "counting_alloc.h"
#include "fdleak.h"
#include "local_server.h"
#include "loop_curl.h"
#include "watchdog.h"

#define LARGE_SIZE (2u << 20) /* a body larger than the socket buffers */
#define HUGE_SIZE (64u << 20) /* more than the kernel can buffer: cut short by a kill */

static const char *demo_path;
static char nginx_path[256];
static struct local_server nginx;

/* The byte at offset i of the large body. */
static unsigned char large_byte(size_t i)
{
    return (unsigned char)((i * 31u + i / 4096u) % 251u);
}

static void write_bodies(void)
{
    char path[256];
    static unsigned char buf[1 << 16];
    snprintf(path, sizeof(path), "%s/large.bin", nginx.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t off = 0; off < LARGE_SIZE; off += sizeof(buf)) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = large_byte(off + i);
        assert_int_equal(fwrite(buf, 1, sizeof(buf), f), sizeof(buf));
    }
    assert_int_equal(fclose(f), 0);
    snprintf(path, sizeof(path), "%s/huge.bin", nginx.dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, HUGE_SIZE), 0); /* sparse: zeros */
    close(fd);
}

/* Start nginx on a free port, with the locations the tests fetch. */
static void start_nginx(void)
{
    char conf[2048], conf_path[256], log[256];
    server_dir(&nginx, "nginx");
    write_bodies();
    snprintf(conf_path, sizeof(conf_path), "%s/nginx.conf", nginx.dir);
    snprintf(log, sizeof(log), "%s/error.log", nginx.dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        nginx.port = server_free_port();
        snprintf(conf, sizeof(conf),
                 "daemon off;\n"
                 "master_process off;\n"
                 "pid %s/nginx.pid;\n"
                 "error_log %s/error.log;\n"
                 "events { worker_connections 512; }\n"
                 "http {\n"
                 "  access_log off;\n"
                 "  client_body_temp_path %s/client_body;\n"
                 "  proxy_temp_path %s/proxy;\n"
                 "  fastcgi_temp_path %s/fastcgi;\n"
                 "  uwsgi_temp_path %s/uwsgi;\n"
                 "  scgi_temp_path %s/scgi;\n"
                 "  server {\n"
                 "    listen 127.0.0.1:%d;\n"
                 "    location = /hello { return 200 \"hello from nginx\\n\"; }\n"
                 "    location ~ ^/echo/([0-9]+)$ { return 200 \"echo $1\\n\"; }\n"
                 "    location = /missing { return 404 \"no such thing\\n\"; }\n"
                 "    location = /large { alias %s/large.bin; }\n"
                 "    location = /huge { alias %s/huge.bin; }\n"
                 "  }\n"
                 "}\n",
                 nginx.dir, nginx.dir, nginx.dir, nginx.dir, nginx.dir, nginx.dir, nginx.dir,
                 nginx.port, nginx.dir, nginx.dir);
        server_write_file(&nginx, "nginx.conf", conf);
        char *argv[] = {nginx_path, "-p", nginx.dir, "-e", log, "-c", conf_path, NULL};
        if (server_start(&nginx, argv) == 0)
            return;
    }
    fail_msg("nginx found its port taken five times");
}

static void stop_nginx(void)
{
    server_stop(&nginx);
    server_dir_remove(&nginx);
}

static void kill_servers(void)
{
    if (nginx.pid > 0)
        kill(nginx.pid, SIGKILL);
}

/* A loopback listener that never accepts (the kernel completes connects). */
static int listener(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- one fetch ------------------------------------------------------------ */

enum body_kind { BODY_TEXT, BODY_LARGE, BODY_IGNORE };

struct fetch {
    CURL *easy;
    enum body_kind kind;
    char text[256]; /* BODY_TEXT: the body */
    size_t bytes;
    size_t wrong_bytes; /* BODY_LARGE: bytes that differ from large_byte() */
    int dones;
    CURLcode result;
    long status;
    void (*on_first_bytes)(struct fetch *f); /* called once, from the write callback */
    loop_curl *lc;
    int busy_add, busy_free; /* what the adapter said from inside libcurl */
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct fetch *f = arg;
    size_t len = size * n;
    if (f->kind == BODY_TEXT && f->bytes + len < sizeof(f->text))
        memcpy(f->text + f->bytes, data, len);
    if (f->kind == BODY_LARGE)
        for (size_t i = 0; i < len; i++)
            f->wrong_bytes += (unsigned char)data[i] != large_byte(f->bytes + i);
    bool first = f->bytes == 0;
    f->bytes += len;
    if (first && f->on_first_bytes)
        f->on_first_bytes(f);
    return len;
}

static void on_done(loop_curl *lc, CURL *easy, CURLcode result, void *arg)
{
    struct fetch *f = arg;
    (void)lc;
    assert_ptr_equal(easy, f->easy);
    f->dones++;
    f->result = result;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &f->status);
}

static void fetch_init(struct fetch *f, const char *path, int port, enum body_kind kind)
{
    char url[128];
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    f->easy = curl_easy_init();
    assert_non_null(f->easy);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(f->easy, CURLOPT_URL, url);
    curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->easy, CURLOPT_NOSIGNAL, 1L);
}

static void fetch_cleanup(struct fetch *f)
{
    curl_easy_cleanup(f->easy);
    f->easy = NULL;
}

static loop_t *new_loop(void)
{
    loop_t *loop;
    assert_int_equal(loop_new(&loop), 0);
    return loop;
}

static loop_curl *new_adapter(loop_t *loop)
{
    loop_curl *lc = NULL;
    assert_int_equal(loop_curl_new(loop, &lc), 0);
    return lc;
}

static struct fdlist fds_before;

static int setup(void **state)
{
    (void)state;
    watchdog_start("a curl adapter test", 30);
    watchdog_on_fire(kill_servers);
    fdlist_take(&fds_before);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop_nginx();
    watchdog_stop();
    return 0;
}

/* ---- the tests ------------------------------------------------------------- */

static void test_functions_reject_null_arguments_with_einval(void **state)
{
    (void)state;
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop), *out = lc;
    CURL *easy = curl_easy_init();

    assert_int_equal(loop_curl_new(NULL, &out), -EINVAL);
    assert_int_equal(loop_curl_new(loop, NULL), -EINVAL);
    assert_null(loop_curl_multi(NULL));
    assert_non_null(loop_curl_multi(lc));
    assert_int_equal(loop_curl_add(NULL, easy, on_done, NULL), -EINVAL);
    assert_int_equal(loop_curl_add(lc, NULL, on_done, NULL), -EINVAL);
    assert_int_equal(loop_curl_add(lc, easy, NULL, NULL), -EINVAL);
    assert_int_equal(loop_curl_remove(NULL, easy), -EINVAL);
    assert_int_equal(loop_curl_remove(lc, NULL), -EINVAL);
    assert_int_equal(loop_curl_remove(lc, easy), -ENOENT);
    assert_int_equal(loop_curl_free(NULL), -EINVAL);

    curl_easy_cleanup(easy);
    assert_int_equal(loop_curl_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
    assert_same_fds(&fds_before, "by the test");
}

/*
 * 60 transfers at once, each URL with a body of its own and ten of them
 * larger than the socket buffers: every one ends once, with its own body;
 * loop_run() returns by itself when the last has ended; nothing is left
 * open once the adapter is freed.
 */
static void test_concurrent_transfers_all_end_once_with_their_own_bodies(void **state)
{
    (void)state;
    enum { N = 60, LARGE_EVERY = 6 };
    static struct fetch f[N];
    char path[32];
    start_nginx();
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop);

    for (int i = 0; i < N; i++) {
        bool large = i % LARGE_EVERY == 0;
        snprintf(path, sizeof(path), large ? "/large" : "/echo/%d", i);
        fetch_init(&f[i], path, nginx.port, large ? BODY_LARGE : BODY_TEXT);
        assert_int_equal(loop_curl_add(lc, f[i].easy, on_done, &f[i]), 0);
    }
    assert_int_equal(loop_run(loop), 0);

    for (int i = 0; i < N; i++) {
        char want[32];
        assert_int_equal(f[i].dones, 1);
        assert_int_equal(f[i].result, CURLE_OK);
        assert_int_equal(f[i].status, 200);
        if (f[i].kind == BODY_LARGE) {
            assert_int_equal(f[i].bytes, LARGE_SIZE);
            assert_int_equal(f[i].wrong_bytes, 0);
        } else {
            snprintf(want, sizeof(want), "echo %d\n", i);
            assert_string_equal(f[i].text, want);
        }
        fetch_cleanup(&f[i]);
    }
    assert_int_equal(loop_curl_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
    assert_same_fds(&fds_before, "by the transfers");
}

/* An HTTP error status is a transfer that worked: CURLE_OK, status 404. */
static void test_http_error_status_ends_the_transfer_with_curle_ok(void **state)
{
    (void)state;
    struct fetch f;
    start_nginx();
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop);

    fetch_init(&f, "/missing", nginx.port, BODY_TEXT);
    assert_int_equal(loop_curl_add(lc, f.easy, on_done, &f), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(f.dones, 1);
    assert_int_equal(f.result, CURLE_OK);
    assert_int_equal(f.status, 404);
    assert_string_equal(f.text, "no such thing\n");

    fetch_cleanup(&f);
    assert_int_equal(loop_curl_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
}

/*
 * With every timeout of libcurl's far away (the happy-eyeballs timer too),
 * only the sockets' readiness can move a transfer on: it must still end,
 * long before the watchdog.
 */
static void test_transfers_advance_on_socket_readiness_not_on_timers(void **state)
{
    (void)state;
    enum { N = 4 };
    struct fetch f[N];
    start_nginx();
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop);

    for (int i = 0; i < N; i++) {
        fetch_init(&f[i], "/large", nginx.port, BODY_LARGE);
        curl_easy_setopt(f[i].easy, CURLOPT_HAPPY_EYEBALLS_TIMEOUT_MS, 600000L);
        curl_easy_setopt(f[i].easy, CURLOPT_CONNECTTIMEOUT_MS, 600000L);
        assert_int_equal(loop_curl_add(lc, f[i].easy, on_done, &f[i]), 0);
    }
    assert_int_equal(loop_run(loop), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(f[i].dones, 1);
        assert_int_equal(f[i].result, CURLE_OK);
        assert_int_equal(f[i].wrong_bytes, 0);
        fetch_cleanup(&f[i]);
    }
    assert_int_equal(loop_curl_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
}

static void kill_nginx(struct fetch *f)
{
    (void)f;
    server_kill(&nginx, SIGKILL);
}

/*
 * nginx is killed (and reaped) as the first bytes of a 64 MB body arrive,
 * more than the kernel can hold: that transfer ends with an error through
 * done, so does a fetch of the dead server started after it, and the
 * same loop and adapter then fetch from a new nginx as if nothing
 * happened.
 */
static void test_server_killed_mid_transfer_ends_it_with_an_error_and_the_loop_goes_on(void **state)
{
    (void)state;
    struct fetch huge, refused, again;
    start_nginx();
    int dead_port = nginx.port;
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop);

    fetch_init(&huge, "/huge", nginx.port, BODY_IGNORE);
    huge.on_first_bytes = kill_nginx;
    assert_int_equal(loop_curl_add(lc, huge.easy, on_done, &huge), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(nginx.pid, 0); /* it was killed mid-body */
    assert_int_equal(huge.dones, 1);
    assert_true(huge.bytes < HUGE_SIZE);
    if (huge.result != CURLE_PARTIAL_FILE && huge.result != CURLE_RECV_ERROR)
        fail_msg("the cut transfer ended with %d: %s", huge.result,
                 curl_easy_strerror(huge.result));

    fetch_init(&refused, "/hello", dead_port, BODY_TEXT);
    assert_int_equal(loop_curl_add(lc, refused.easy, on_done, &refused), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(refused.dones, 1);
    assert_int_equal(refused.result, CURLE_COULDNT_CONNECT);

    stop_nginx();
    start_nginx();
    fetch_init(&again, "/hello", nginx.port, BODY_TEXT);
    assert_int_equal(loop_curl_add(lc, again.easy, on_done, &again), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(again.dones, 1);
    assert_int_equal(again.result, CURLE_OK);
    assert_string_equal(again.text, "hello from nginx\n");

    fetch_cleanup(&huge);
    fetch_cleanup(&refused);
    fetch_cleanup(&again);
    assert_int_equal(loop_curl_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
    assert_same_fds(&fds_before, "by the transfers");
}

/* A server that accepts and never answers: CURLOPT_TIMEOUT_MS runs on the
 * adapter's timer and ends the transfer with CURLE_OPERATION_TIMEDOUT. */
static void test_transfer_timeout_ends_it_with_operation_timedout(void **state)
{
    (void)state;
    struct fetch f;
    int port, lfd = listener(&port);
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop);

    fetch_init(&f, "/hello", port, BODY_TEXT);
    curl_easy_setopt(f.easy, CURLOPT_TIMEOUT_MS, 100L);
    assert_int_equal(loop_curl_add(lc, f.easy, on_done, &f), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(f.dones, 1);
    assert_int_equal(f.result, CURLE_OPERATION_TIMEDOUT);

    fetch_cleanup(&f);
    assert_int_equal(loop_curl_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
    close(lfd);
    assert_same_fds(&fds_before, "by the test");
}

/*
 * Run the loop until n transfers have connected to the listener lfd, and
 * accept those connections into conns (curl then waits for an answer that
 * never comes).
 */
static void run_until_connected(loop_t *loop, int lfd, int *conns, int n)
{
    for (int i = 0; i < n;) {
        assert_int_equal(loop_run_once(loop, LOOP_MS(10)), 0);
        int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0)
            conns[i++] = c;
        else
            assert_int_equal(errno, EAGAIN);
    }
}

static void close_all(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static void test_remove_takes_a_transfer_back_without_calling_done(void **state)
{
    (void)state;
    struct fetch f;
    int port, lfd = listener(&port);
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop);

    fetch_init(&f, "/hello", port, BODY_TEXT);
    int conn;
    assert_int_equal(loop_curl_add(lc, f.easy, on_done, &f), 0);
    run_until_connected(loop, lfd, &conn, 1);
    assert_int_equal(loop_curl_remove(lc, f.easy), 0);
    assert_int_equal(loop_curl_remove(lc, f.easy), -ENOENT);
    assert_int_equal(loop_run(loop), 0); /* nothing is left: it returns */
    assert_int_equal(f.dones, 0);

    /* The easy handle is the caller's again: it can be added anew. */
    assert_int_equal(loop_curl_add(lc, f.easy, on_done, &f), 0);
    assert_int_equal(loop_curl_free(lc), 0);
    assert_int_equal(f.dones, 1);
    fetch_cleanup(&f);
    assert_int_equal(loop_free(loop), 0);
    close(conn);
    close(lfd);
    assert_same_fds(&fds_before, "by the test");
}

static void test_adding_an_easy_handle_twice_is_eexist(void **state)
{
    (void)state;
    struct fetch f;
    int port, lfd = listener(&port);
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop);

    fetch_init(&f, "/hello", port, BODY_TEXT);
    assert_int_equal(loop_curl_add(lc, f.easy, on_done, &f), 0);
    assert_int_equal(loop_curl_add(lc, f.easy, on_done, &f), -EEXIST);
    assert_int_equal(loop_curl_free(lc), 0);
    assert_int_equal(f.dones, 1);

    fetch_cleanup(&f);
    assert_int_equal(loop_free(loop), 0);
    close(lfd);
}

/*
 * loop_curl_free() and loop_free() end the transfers in progress: each
 * done runs once, with CURLE_ABORTED_BY_CALLBACK, and the sockets are
 * closed.
 */
static void free_ends_transfers(bool by_loop_free)
{
    enum { N = 3 };
    struct fetch f[N];
    int port, lfd = listener(&port);
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop);

    for (int i = 0; i < N; i++) {
        fetch_init(&f[i], "/hello", port, BODY_TEXT);
        assert_int_equal(loop_curl_add(lc, f[i].easy, on_done, &f[i]), 0);
    }
    int conns[N];
    run_until_connected(loop, lfd, conns, N);
    if (!by_loop_free)
        assert_int_equal(loop_curl_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(f[i].dones, 1);
        assert_int_equal(f[i].result, CURLE_ABORTED_BY_CALLBACK);
        fetch_cleanup(&f[i]);
    }
    close_all(conns, N);
    close(lfd);
    assert_same_fds(&fds_before, "by the test");
}

static void test_adapter_free_ends_transfers_in_progress_as_aborted(void **state)
{
    (void)state;
    free_ends_transfers(false);
}

static void test_loop_free_ends_transfers_and_frees_the_adapter(void **state)
{
    (void)state;
    free_ends_transfers(true);
}

/* A chain: each done starts the next transfer, reusing its easy handle; the
 * last one frees the adapter from its done, and loop_run() returns. */
static int chain_left;

static void on_done_chain(loop_curl *lc, CURL *easy, CURLcode result, void *arg)
{
    struct fetch *f = arg;
    on_done(lc, easy, result, arg);
    assert_int_equal(result, CURLE_OK);
    if (--chain_left > 0) {
        f->bytes = 0;
        memset(f->text, 0, sizeof(f->text));
        assert_int_equal(loop_curl_add(lc, easy, on_done_chain, f), 0);
    } else {
        assert_int_equal(loop_curl_free(lc), 0);
        assert_int_equal(loop_curl_free(lc), -EBUSY); /* until its handler returns */
    }
}

static void test_done_may_add_transfers_and_free_the_adapter(void **state)
{
    (void)state;
    struct fetch f;
    start_nginx();
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop);

    chain_left = 5;
    fetch_init(&f, "/hello", nginx.port, BODY_TEXT);
    assert_int_equal(loop_curl_add(lc, f.easy, on_done_chain, &f), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(chain_left, 0);
    assert_int_equal(f.dones, 5);
    assert_string_equal(f.text, "hello from nginx\n");

    fetch_cleanup(&f);
    assert_int_equal(loop_free(loop), 0);
    assert_same_fds(&fds_before, "by the test");
}

static void call_adapter_from_write_callback(struct fetch *f)
{
    CURL *other = curl_easy_init();
    f->busy_add = loop_curl_add(f->lc, other, on_done, NULL);
    f->busy_free = loop_curl_free(f->lc);
    curl_easy_cleanup(other);
}

static void test_adapter_calls_from_inside_libcurl_are_ebusy(void **state)
{
    (void)state;
    struct fetch f;
    start_nginx();
    loop_t *loop = new_loop();
    loop_curl *lc = new_adapter(loop);

    fetch_init(&f, "/hello", nginx.port, BODY_TEXT);
    f.lc = lc;
    f.on_first_bytes = call_adapter_from_write_callback;
    assert_int_equal(loop_curl_add(lc, f.easy, on_done, &f), 0);
    assert_int_equal(loop_run(loop), 0);
    assert_int_equal(f.busy_add, -EBUSY);
    assert_int_equal(f.busy_free, -EBUSY);
    assert_int_equal(f.dones, 1);
    assert_int_equal(f.result, CURLE_OK);

    fetch_cleanup(&f);
    assert_int_equal(loop_curl_free(lc), 0);
    assert_int_equal(loop_free(loop), 0);
}

/* Sockets moved to high numbers, so that watching them grows the loop's fd
 * table: an allocation the fault injection can fail. */
static curl_socket_t open_high_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    static int next = 700;
    (void)arg;
    (void)purpose;
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, next);
    close(fd);
    next = next >= 900 ? 700 : next + 17;
    return high < 0 ? CURL_SOCKET_BAD : high;
}

/*
 * Every allocation the adapter and the loop make through the loop's
 * allocator fails in turn (adapter, transfers, timers, the fd table that
 * sockets need): each call either fails with -ENOMEM and changes nothing,
 * or its transfer ends once, with its body or with CURLE_OUT_OF_MEMORY;
 * loop_run() always returns, and nothing is left allocated or open.
 */
static void test_each_failed_allocation_is_enomem_or_out_of_memory_through_done(void **state)
{
    (void)state;
    enum { N = 3 };
    struct fetch f[N];
    bool saw_oom_done = false;
    long at;
    start_nginx();

    for (at = 1;; at++) {
        struct counting_alloc a = {0};
        loop_t *loop = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
        a.fail_at = a.calls + at; /* the loop's own first allocations are done */
        loop_curl *lc = NULL;
        int added[N] = {0};
        int err = loop_curl_new(loop, &lc);
        if (err == 0) {
            for (int i = 0; i < N; i++) {
                fetch_init(&f[i], "/hello", nginx.port, BODY_TEXT);
                curl_easy_setopt(f[i].easy, CURLOPT_OPENSOCKETFUNCTION, open_high_socket);
                curl_easy_setopt(f[i].easy, CURLOPT_FORBID_REUSE, 1L);
                added[i] = loop_curl_add(lc, f[i].easy, on_done, &f[i]);
                if (added[i] != 0)
                    assert_int_equal(added[i], -ENOMEM);
            }
            while ((err = loop_run(loop)) == -ENOMEM)
                ; /* the loop could not grow its ready queue: run it again */
            assert_int_equal(err, 0);
            for (int i = 0; i < N; i++) {
                assert_int_equal(f[i].dones, added[i] == 0 ? 1 : 0);
                if (added[i] == 0 && f[i].result == CURLE_OUT_OF_MEMORY)
                    saw_oom_done = true;
                else if (added[i] == 0) {
                    assert_int_equal(f[i].result, CURLE_OK);
                    assert_string_equal(f[i].text, "hello from nginx\n");
                }
                fetch_cleanup(&f[i]);
            }
            assert_int_equal(loop_curl_free(lc), 0);
        } else {
            assert_int_equal(err, -ENOMEM);
            assert_null(lc);
        }
        assert_int_equal(loop_free(loop), 0);
        assert_int_equal(a.live_blocks, 0);
        assert_int_equal(a.bad_frees, 0);
        assert_same_fds(&fds_before, "after a failed allocation");
        if (a.failures == 0)
            break; /* the run got past every allocation */
    }
    assert_true(at > 5);
    assert_true(saw_oom_done); /* some failure was reported through done */
}

/* ---- the demo -------------------------------------------------------------- */

/* Run curl_demo with args; its stdout and stderr into out, its exit status. */
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

static void test_demo_prints_each_fetch_and_reports_a_refused_one(void **state)
{
    (void)state;
    static char out[8192];
    char hello[64], large[64], refused[64], want[160];
    start_nginx();
    snprintf(hello, sizeof(hello), "http://127.0.0.1:%d/hello", nginx.port);
    snprintf(large, sizeof(large), "http://127.0.0.1:%d/large", nginx.port);
    const char *const ok_args[] = {"--check-fds", hello, large, NULL};
    if (run_demo(ok_args, out, sizeof(out)) != 0)
        fail_msg("curl_demo failed:\n%s", out);
    /* FNV-1a of "hello from nginx\n" */
    snprintf(want, sizeof(want), "%s: HTTP 200, 17 bytes, fnv1a 0x", hello);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "%s: HTTP 200, %u bytes, fnv1a 0x", large, LARGE_SIZE);
    assert_non_null(strstr(out, want));
    int before, after;
    const char *fds = strstr(out, "fds: ");
    assert_non_null(fds);
    assert_int_equal(sscanf(fds, "fds: %d before, %d after", &before, &after), 2);
    assert_int_equal(before, after);

    snprintf(refused, sizeof(refused), "http://127.0.0.1:%d/", server_free_port());
    const char *const bad_args[] = {hello, refused, NULL};
    assert_int_equal(run_demo(bad_args, out, sizeof(out)), 1);
    snprintf(want, sizeof(want), "curl_demo: %s: %s", refused,
             curl_easy_strerror(CURLE_COULDNT_CONNECT));
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "%s: HTTP 200, 17 bytes", hello);
    assert_non_null(strstr(out, want));
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--skip") == 0) {
        printf("SKIP: %s\n", argv[2]);
        return 77;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: curl_adapter CURL_DEMO | --skip REASON\n");
        return 2;
    }
    demo_path = argv[1];
    if (!server_find_program("nginx", nginx_path, sizeof(nginx_path))) {
        printf("SKIP: nginx is not installed (apt-get install nginx-light)\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_functions_reject_null_arguments_with_einval),
        T(test_concurrent_transfers_all_end_once_with_their_own_bodies),
        T(test_http_error_status_ends_the_transfer_with_curle_ok),
        T(test_transfers_advance_on_socket_readiness_not_on_timers),
        T(test_server_killed_mid_transfer_ends_it_with_an_error_and_the_loop_goes_on),
        T(test_transfer_timeout_ends_it_with_operation_timedout),
        T(test_remove_takes_a_transfer_back_without_calling_done),
        T(test_adding_an_easy_handle_twice_is_eexist),
        T(test_adapter_free_ends_transfers_in_progress_as_aborted),
        T(test_loop_free_ends_transfers_and_frees_the_adapter),
        T(test_done_may_add_transfers_and_free_the_adapter),
        T(test_adapter_calls_from_inside_libcurl_are_ebusy),
        T(test_each_failed_allocation_is_enomem_or_out_of_memory_through_done),
        T(test_demo_prints_each_fetch_and_reports_a_refused_one),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, snapshot_fds, NULL);
    curl_global_cleanup();
    return failed;
}
