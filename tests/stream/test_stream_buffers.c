/*
 * The two buffers of a stream: read_until / read_exactly and the read
 * limit (LimitOverrun, IncompleteRead, pausing above twice the limit),
 * and the write queue (never blocks, never drops, pauses above the high
 * watermark, drains at the low one, one system call per flush), and the
 * memory an idle connection holds.
 */
#include "stream_testing.h"

#include "counting_alloc.h"
#include "fdleak.h"

/* A server-side stream of l connected to a raw client socket *fd. */
struct pair {
    struct echo_server e; /* only its on_conn is used: it records e.last */
    loop_stream *s;
    int fd;
};

static void grab_conn(loop_server *srv, loop_stream *s, void *arg)
{
    (void)srv;
    struct pair *p = arg;
    p->s = s;
}

static void make_pair(loop_t *l, struct pair *p, const loop_stream_options *o)
{
    memset(p, 0, sizeof *p);
    assert_int_equal(loop_server_listen(l, "127.0.0.1", 0, o, grab_conn, p, &p->e.srv), 0);
    p->fd = raw_connect(loop_server_port(p->e.srv));
    RUN_UNTIL(l, p->s != NULL);
}

static void free_pair(struct pair *p)
{
    if (p->s)
        loop_stream_close(p->s);
    if (p->fd >= 0)
        close(p->fd);
    loop_server_free(p->e.srv);
}

static void test_read_until_waits_for_a_delimiter_split_across_reads(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct pair p;
    make_pair(l, &p, NULL);
    struct rec r = {0}; /* counts on_data, takes nothing */
    loop_stream_set_callbacks(p.s, &rec_cb, &r);
    const char *d;
    size_t n;
    assert_int_equal(loop_stream_read_until(p.s, "\r\n", 2, &d, &n), -EAGAIN);
    assert_int_equal(write(p.fd, "GET / HTTP/1.1\r", 15), 15);
    RUN_UNTIL(l, r.data_calls == 1);
    assert_int_equal(loop_stream_read_until(p.s, "\r\n", 2, &d, &n), -EAGAIN);
    assert_int_equal(write(p.fd, "\nHost: x\r\n", 10), 10);
    RUN_UNTIL(l, r.data_calls == 2);
    assert_int_equal(loop_stream_read_until(p.s, "\r\n", 2, &d, &n), 0);
    assert_int_equal(n, 16);
    assert_memory_equal(d, "GET / HTTP/1.1\r\n", 16);
    assert_int_equal(loop_stream_read_until(p.s, "\r\n", 2, &d, &n), 0);
    assert_int_equal(n, 9);
    assert_memory_equal(d, "Host: x\r\n", 9);
    assert_int_equal(loop_stream_read_until(p.s, "\r\n", 2, &d, &n), -EAGAIN);
    free_pair(&p);
    assert_int_equal(loop_free(l), 0);
}

static void test_an_owner_set_late_gets_on_data_soon_for_bytes_and_eof_already_there(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct pair p;
    make_pair(l, &p, NULL);
    assert_int_equal(write(p.fd, "early", 5), 5);
    close(p.fd);
    p.fd = -1;
    loop_stream_info_t info;
    RUN_UNTIL(l, loop_stream_eof(p.s) && loop_stream_info(p.s, &info) == 0 && info.buffered == 5);
    struct rec r = {.consume = true};
    assert_int_equal(loop_stream_set_callbacks(p.s, &rec_cb, &r), 0);
    assert_int_equal(r.data_calls, 0); /* never inside the call */
    RUN_UNTIL(l, r.data_calls == 1);
    assert_string_equal(r.buf, "early");
    assert_true(r.eof);
    free_pair(&p);
    assert_int_equal(loop_free(l), 0);
}

static void test_read_until_past_the_limit_is_enobufs_and_keeps_the_data(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct pair p;
    loop_stream_options o = {.limit = 100};
    make_pair(l, &p, &o);
    char junk[150];
    memset(junk, 'a', sizeof junk);
    assert_int_equal(write(p.fd, junk, sizeof junk), (ssize_t)sizeof junk);
    loop_stream_info_t info;
    RUN_UNTIL(l, loop_stream_info(p.s, &info) == 0 && info.buffered == sizeof junk);
    const char *d;
    size_t n;
    assert_int_equal(loop_stream_read_until(p.s, "\n", 1, &d, &n), -ENOBUFS);
    assert_int_equal(loop_stream_read_until(p.s, "\n", 1, &d, &n), -ENOBUFS); /* kept */
    assert_int_equal(loop_stream_read(p.s, 0, &d, &n), 0);
    assert_int_equal(n, sizeof junk);
    assert_memory_equal(d, junk, sizeof junk);
    /* A delimiter found past the limit is an overrun too (as asyncio). */
    assert_int_equal(write(p.fd, junk, 120), 120);
    assert_int_equal(write(p.fd, "\n", 1), 1);
    RUN_UNTIL(l, loop_stream_info(p.s, &info) == 0 && info.buffered == 121);
    assert_int_equal(loop_stream_read_until(p.s, "\n", 1, &d, &n), -ENOBUFS);
    free_pair(&p);
    assert_int_equal(loop_free(l), 0);
}

static void
test_read_exactly_and_read_until_at_eof_return_the_partial_bytes_with_epipe(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct pair p;
    make_pair(l, &p, NULL);
    struct rec r = {0};
    loop_stream_set_callbacks(p.s, &rec_cb, &r);
    assert_int_equal(write(p.fd, "12345", 5), 5);
    close(p.fd);
    p.fd = -1;
    RUN_UNTIL(l, loop_stream_eof(p.s));
    const char *d;
    size_t n;
    assert_int_equal(loop_stream_read_exactly(p.s, 3, &d, &n), 0);
    assert_memory_equal(d, "123", 3);
    assert_int_equal(loop_stream_read_exactly(p.s, 10, &d, &n), -EPIPE);
    assert_int_equal(n, 2); /* IncompleteReadError.partial */
    assert_memory_equal(d, "45", 2);
    assert_int_equal(loop_stream_read_until(p.s, "\n", 1, &d, &n), -EPIPE);
    assert_int_equal(n, 0);
    assert_int_equal(loop_stream_read(p.s, 0, &d, &n), 0); /* EOF: 0 bytes */
    assert_int_equal(n, 0);
    free_pair(&p);
    assert_int_equal(loop_free(l), 0);
}

static void test_reading_pauses_above_twice_the_limit_until_the_program_takes_bytes(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct pair p;
    loop_stream_options o = {.limit = 1000};
    make_pair(l, &p, &o);
    static char big[20000];
    memset(big, 'b', sizeof big);
    assert_int_equal(write(p.fd, big, sizeof big), (ssize_t)sizeof big);
    loop_stream_info_t info;
    RUN_UNTIL(l, loop_stream_info(p.s, &info) == 0 && !info.reading);
    for (int i = 0; i < 10; i++)
        assert_int_equal(loop_run_once(l, 0), 0);
    loop_stream_info(p.s, &info);
    assert_int_equal(info.buffered, 2000); /* exactly 2 x limit, no more */
    assert_false(info.reading);
    const char *d;
    size_t n, total = 0;
    assert_int_equal(loop_stream_read(p.s, 1500, &d, &n), 0);
    total += n;
    loop_stream_info(p.s, &info);
    assert_true(info.reading); /* resumed */
    uint64_t start = mono_ns();
    while (total < sizeof big) {
        assert_int_equal(loop_run_once(l, LOOP_MS(50)), 0);
        if (mono_ns() - start > LOOP_SEC(20))
            fail_msg("only %zu of %zu bytes after 20 s", total, sizeof big);
        loop_stream_info(p.s, &info);
        assert_true(info.buffered <= 2000);
        if (loop_stream_read(p.s, 0, &d, &n) == 0)
            total += n;
    }
    /* read_exactly asks for more than the pause threshold: reading goes on. */
    assert_int_equal(write(p.fd, big, 5000), 5000);
    int err;
    uint64_t t0 = mono_ns();
    while ((err = loop_stream_read_exactly(p.s, 5000, &d, &n)) == -EAGAIN) {
        assert_int_equal(loop_run_once(l, LOOP_MS(50)), 0);
        if (mono_ns() - t0 > LOOP_SEC(20))
            fail_msg("read_exactly(5000) still waits after 20 s");
    }
    assert_int_equal(err, 0);
    assert_int_equal(n, 5000);
    free_pair(&p);
    assert_int_equal(loop_free(l), 0);
}

static void test_write_never_blocks_pauses_above_high_and_drains_at_low_then_shuts(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct pair p;
    loop_stream_options o = {.high_water = 8192, .low_water = 2048};
    make_pair(l, &p, &o);
    struct rec r = {0};
    loop_stream_set_callbacks(p.s, &rec_cb, &r);
    int small = 4096; /* the kernel takes little: the queue fills soon */
    setsockopt(loop_stream_fd(p.s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    static char chunk[4096];
    memset(chunk, 'w', sizeof chunk);
    size_t written = 0;
    /* The peer reads nothing: every write still returns at once. */
    while (!loop_stream_write_paused(p.s)) {
        assert_int_equal(loop_stream_write(p.s, chunk, sizeof chunk), 0);
        written += sizeof chunk;
        assert_true(written < (64u << 20));
    }
    loop_stream_info_t info;
    loop_stream_info(p.s, &info);
    assert_true(info.queued > 8192);
    assert_int_equal(r.drains, 0);
    /* Half-close with bytes queued: it waits for them; writes end now. */
    assert_int_equal(loop_stream_shutdown_write(p.s), 0);
    assert_int_equal(loop_stream_write(p.s, chunk, 1), -EPIPE);
    /* The peer reads everything: every byte arrives, on_drain comes once. */
    size_t got = 0;
    uint64_t t0 = mono_ns();
    while (got < written) {
        if (mono_ns() - t0 > LOOP_SEC(20))
            fail_msg("only %zu of %zu bytes arrived in 20 s", got, written);
        char buf[65536];
        ssize_t n = recv(p.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                assert_int_equal(buf[i], 'w');
            got += (size_t)n;
        }
        assert_int_equal(loop_run_once(l, LOOP_MS(10)), 0);
    }
    RUN_UNTIL(l, loop_stream_info(p.s, &info) == 0 && info.queued == 0);
    assert_int_equal(r.drains, 1);
    assert_false(loop_stream_write_paused(p.s));
    assert_int_equal(info.bytes_out, written);
    char c;
    RUN_UNTIL(l, recv(p.fd, &c, 1, MSG_DONTWAIT) == 0); /* then the end of file */
    free_pair(&p);
    assert_int_equal(loop_free(l), 0);
}

static void test_writes_queued_in_one_iteration_leave_in_one_system_call(void **state)
{
    (void)state;
    loop_t *l = new_real_loop();
    struct pair p;
    make_pair(l, &p, NULL);
    small_buffers(p.fd);
    small_buffers(loop_stream_fd(p.s));
    static char chunk[1024];
    memset(chunk, 'q', sizeof chunk);
    loop_stream_info_t info;
    size_t written = 0;
    do { /* fill the kernel's buffers until a write is queued */
        assert_int_equal(loop_stream_write(p.s, chunk, sizeof chunk), 0);
        written += sizeof chunk;
        loop_stream_info(p.s, &info);
    } while (info.queued == 0);
    for (int i = 0; i < 3; i++) /* appended to the queue: no system call */
        assert_int_equal(loop_stream_write(p.s, "abc", 3), 0);
    written += 9;
    loop_stream_info_t before;
    loop_stream_info(p.s, &before);
    assert_u64_eq(before.writes, info.writes);
    size_t queued = before.queued;
    assert_true(queued <= 64 * 1024);
    /* Make room in the kernel for everything, then let the loop flush. */
    int big = 1 << 20;
    setsockopt(p.fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    size_t got = 0;
    char buf[65536];
    while (got < written - queued) {
        ssize_t n = recv(p.fd, buf, sizeof buf, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    RUN_UNTIL(l, loop_stream_info(p.s, &info) == 0 && info.bytes_out > before.bytes_out);
    /* One flush: one system call took the whole queue, three writes included. */
    assert_u64_eq(info.writes, before.writes + 1);
    assert_int_equal(info.queued, 0);
    while (got < written) {
        ssize_t n = recv(p.fd, buf, sizeof buf, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    free_pair(&p);
    assert_int_equal(loop_free(l), 0);
}

static void test_an_idle_connection_holds_under_one_kib_of_library_memory(void **state)
{
    (void)state;
    struct counting_alloc a = {0};
    loop_t *l = new_loop_with((loop_options){.realloc = counting_realloc, .alloc_ctx = &a});
    struct echo_server e = {0};
    uint16_t port = echo_listen(l, &e, NULL);
    enum { N = 50 };
    int fds[N];
    /* One round trip first: the shared read buffer exists, the fd table
     * has grown. */
    fds[0] = raw_connect(port);
    RUN_UNTIL(l, e.conns == 1);
    assert_int_equal(write(fds[0], "x", 1), 1);
    char c;
    RUN_UNTIL(l, recv(fds[0], &c, 1, MSG_DONTWAIT) == 1);
    long base = a.live_bytes;
    loop_stream_info_t info;
    loop_stream_info(e.last, &info);
    assert_true(info.memory <= 1024);
    for (int i = 1; i < N; i++) {
        fds[i] = raw_connect(port);
        RUN_UNTIL(l, e.conns == i + 1);
        assert_int_equal(write(fds[i], "ping", 4), 4);
        char buf[4];
        RUN_UNTIL(l, recv(fds[i], buf, 4, MSG_DONTWAIT) == 4);
        loop_stream_info(e.last, &info);
        assert_int_equal(info.buffered + info.queued, 0);
        assert_true(info.memory <= 1024);
    }
    /* Everything the loop holds for 49 more idle connections. */
    long per_conn = (a.live_bytes - base) / (N - 1);
    assert_true(per_conn <= 1024);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    RUN_UNTIL(l, e.closed == N);
    loop_server_free(e.srv);
    assert_int_equal(loop_free(l), 0);
    assert_int_equal(a.live_blocks, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_until_waits_for_a_delimiter_split_across_reads),
        cmocka_unit_test(test_an_owner_set_late_gets_on_data_soon_for_bytes_and_eof_already_there),
        cmocka_unit_test(test_read_until_past_the_limit_is_enobufs_and_keeps_the_data),
        cmocka_unit_test(
            test_read_exactly_and_read_until_at_eof_return_the_partial_bytes_with_epipe),
        cmocka_unit_test(test_reading_pauses_above_twice_the_limit_until_the_program_takes_bytes),
        cmocka_unit_test(test_write_never_blocks_pauses_above_high_and_drains_at_low_then_shuts),
        cmocka_unit_test(test_writes_queued_in_one_iteration_leave_in_one_system_call),
        cmocka_unit_test(test_an_idle_connection_holds_under_one_kib_of_library_memory),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
