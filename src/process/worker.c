/*
 * A worker process of a pool: the same program, started again with
 * LOOP__WORKER_ARG, reading jobs on fd LOOP__WORKER_IN and writing replies
 * on fd LOOP__WORKER_OUT, in plain blocking I/O (a worker does one thing at
 * a time and needs no loop).  Its first reply is a hello with the hash of
 * its table, which the pool checks against its own.
 */
#include "process_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* FNV-1a over the count and the names, each with its terminating NUL. */
uint64_t loop__worker_table_hash(const loop_process_work *table, size_t n)
{
    uint64_t h = 14695981039346656037u;
    for (size_t k = 0; k < sizeof(n); k++)
        h = (h ^ ((n >> (8 * k)) & 0xff)) * 1099511628211u;
    for (size_t i = 0; i < n; i++) {
        const char *s = table[i].name ? table[i].name : "";
        do
            h = (h ^ (unsigned char)*s) * 1099511628211u;
        while (*s++);
    }
    return h;
}

/* Read exactly len bytes: 1, 0 at EOF before the first byte, -1 otherwise. */
static int read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 && got == 0 ? 0 : -1;
        got += (size_t)n;
    }
    return 1;
}

static int write_all(int fd, const void *buf, size_t len)
{
    size_t put = 0;
    while (put < len) {
        ssize_t n = write(fd, (const char *)buf + put, len - put);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        put += (size_t)n;
    }
    return 0;
}

static int reply(int status, const void *data, size_t len)
{
    struct loop__worker_header h = {.word = status, .len = len};
    if (write_all(LOOP__WORKER_OUT, &h, sizeof(h)) != 0)
        return -1;
    return len ? write_all(LOOP__WORKER_OUT, data, len) : 0;
}

/* Run one job; -1 when the pool is gone or broke the protocol. */
static int serve(const loop_process_work *table, size_t n, const struct loop__worker_header *h)
{
    if (h->len > LOOP__WORKER_MAX_LEN)
        return -1;
    void *in = malloc(h->len ? (size_t)h->len : 1);
    if (!in)
        return -1;
    if (h->len && read_all(LOOP__WORKER_IN, in, (size_t)h->len) != 1) {
        free(in);
        return -1;
    }
    void *out = NULL;
    size_t out_len = 0;
    int status;
    if (h->word < 0 || (size_t)h->word >= n)
        status = -EBADMSG;
    else
        status = table[h->word].fn(in, (size_t)h->len, &out, &out_len);
    free(in);
    if (status > 0)
        status = 0;
    if (status < 0 || out_len > LOOP__WORKER_MAX_LEN || (out_len && !out)) {
        free(out);
        out = NULL;
        out_len = 0;
        if (status == 0)
            status = -EMSGSIZE;
    }
    int rc = reply(status, out, out_len);
    free(out);
    return rc;
}

static int run_worker(const loop_process_work *table, size_t n)
{
    /* A pool that goes away mid-reply ends the worker through EPIPE, not a
     * signal that would read as a crash. */
    signal(SIGPIPE, SIG_IGN);
    /* Programs the functions start must not hold the pool's pipes open. */
    fcntl(LOOP__WORKER_IN, F_SETFD, FD_CLOEXEC);
    fcntl(LOOP__WORKER_OUT, F_SETFD, FD_CLOEXEC);
    struct loop__worker_header hello = {.word = (int32_t)LOOP__WORKER_MAGIC,
                                        .len = loop__worker_table_hash(table, n)};
    if (write_all(LOOP__WORKER_OUT, &hello, sizeof(hello)) != 0)
        return 2;
    for (;;) {
        struct loop__worker_header h;
        int got = read_all(LOOP__WORKER_IN, &h, sizeof(h));
        if (got == 0)
            return 0; /* the pool closed: done */
        if (got < 0 || serve(table, n, &h) != 0)
            return 2;
    }
}

bool loop_process_worker_main(int argc, char **argv, const loop_process_work *table, size_t n,
                              int *status)
{
    if (argc < 2 || !argv || !argv[1] || strcmp(argv[1], LOOP__WORKER_ARG) != 0)
        return false;
    int rc = table || n == 0 ? run_worker(table, n) : 2;
    if (status)
        *status = rc;
    return true;
}
