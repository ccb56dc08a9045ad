/*
 * redis_demo: hiredis's asynchronous API on a libloop loop, through the
 * adapter in loop_hiredis.h.
 *
 *   redis_demo [--every MS] [--timeout MS] [--check-fds] [HOST [PORT [COUNT]]]
 *
 * Connects to HOST:PORT (default 127.0.0.1 6379) and sends COUNT (default
 * 1000) INCR commands on a key of its own, then a SET and a GET of a second
 * key, then a DEL of both.  Every reply is checked: the INCRs must answer
 * 1, 2, ... COUNT, in that order, and the GET what the SET stored.  Then it
 * disconnects, prints a summary and exits 0.
 *
 * By default every command is queued before the loop starts, so they leave
 * pipelined, in as few writes as the socket takes.  With --every MS, a
 * libloop timer sends one INCR every MS milliseconds instead, and the loop
 * sleeps in between.  --timeout MS gives each command MS milliseconds to be
 * answered (hiredis 1.0 or later).  --check-fds counts the process's open
 * fds before connecting and after disconnecting, and fails if they differ.
 *
 * Any failure (the connect refused, the connection lost, a wrong reply, an
 * fd leaked) is reported on stderr through hiredis's callbacks, and the
 * exit status is 1; bad usage exits 2.
 */
#include "loop_hiredis.h"

#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define GREETING "hello from libloop"

static const char *program = "redis_demo";

struct demo {
    loop_t *loop;
    redisAsyncContext *ac; /* NULL once hiredis has freed it */
    const char *host;
    int port;
    long count;      /* INCRs to send */
    long every_ms;   /* 0: all at once */
    long timeout_ms; /* 0: none */
    bool check_fds;
    char counter_key[64], greeting_key[64];
    loop_handle ticker; /* --every: the timer that sends the INCRs */
    long sent;          /* INCRs sent */
    long incr_replies;  /* INCR replies received and checked */
    long lost;          /* commands answered with no reply: the connection ended first */
    bool incr_wrong, got_greeting, deleted, disconnected_cleanly;
    bool failed; /* an error was reported */
};

static void report(struct demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An error: say it on stderr, and remember to exit 1. */
static void report(struct demo *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "%s: ", program);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    d->failed = true;
}

/* Open fds below the soft limit (valgrind keeps its own above it). */
static int count_fds(void)
{
    struct rlimit rl;
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (dir == NULL || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        if (dir)
            closedir(dir);
        return -1;
    }
    while ((e = readdir(dir)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != dirfd(dir) && (rlim_t)fd < rl.rlim_cur)
            n++;
    }
    closedir(dir);
    return n;
}

static void stop_ticker(struct demo *d)
{
    loop_cancel(d->loop, d->ticker);
    d->ticker = (loop_handle){0};
}

/* ---- hiredis's callbacks ------------------------------------------------ */

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct demo *d = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns. */
        report(d, "cannot connect to %s:%d: %s", d->host, d->port, ac->errstr);
        d->ac = NULL;
        stop_ticker(d);
        return;
    }
    printf("connected to %s:%d\n", d->host, d->port);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct demo *d = ac->data;

    d->ac = NULL;
    stop_ticker(d);
    if (status == REDIS_OK)
        d->disconnected_cleanly = true;
    else
        report(d, "connection to %s:%d lost: %s", d->host, d->port, ac->errstr);
}

/*
 * A reply, or NULL when the connection ended before it came (hiredis then
 * calls every pending callback so, and the disconnect callback says why).
 */
static bool got_reply(struct demo *d, const redisReply *r, int type, const char *command)
{
    if (r == NULL) {
        d->lost++;
        return false;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        report(d, "%s: the server answered: %s", command, r->str);
        return false;
    }
    if (r->type != type) {
        report(d, "%s: unexpected reply type %d", command, r->type);
        return false;
    }
    return true;
}

static void on_incr(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct demo *d = ac->data;
    const redisReply *r = reply;
    long want = d->incr_replies + 1;

    (void)privdata;
    if (!got_reply(d, r, REDIS_REPLY_INTEGER, "INCR"))
        return;
    d->incr_replies = want;
    if (r->integer != want) {
        if (!d->incr_wrong) /* the first one says enough */
            report(d, "INCR reply %ld is %lld, expected %ld", want, r->integer, want);
        d->incr_wrong = true;
        return;
    }
    if (want == 1)
        printf("first INCR reply: %lld\n", r->integer);
}

static void on_first_del(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    got_reply(ac->data, reply, REDIS_REPLY_INTEGER, "DEL");
}

static void on_set(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct demo *d = ac->data;
    const redisReply *r = reply;

    (void)privdata;
    if (got_reply(d, r, REDIS_REPLY_STATUS, "SET") && strcmp(r->str, "OK") != 0)
        report(d, "SET: the server answered %s, expected OK", r->str);
}

static void on_get(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct demo *d = ac->data;
    const redisReply *r = reply;

    (void)privdata;
    if (!got_reply(d, r, REDIS_REPLY_STRING, "GET"))
        return;
    if (strcmp(r->str, GREETING) != 0)
        report(d, "GET returned \"%s\", expected \"%s\"", r->str, GREETING);
    else
        d->got_greeting = true;
}

static void on_last_del(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct demo *d = ac->data;
    const redisReply *r = reply;

    (void)privdata;
    if (!got_reply(d, r, REDIS_REPLY_INTEGER, "DEL"))
        return;
    if (r->integer != 2)
        report(d, "DEL of both keys removed %lld, expected 2", r->integer);
    else
        d->deleted = true;
}

/* ---- sending ------------------------------------------------------------- */

static void sent(struct demo *d, int status, const char *command)
{
    if (status != REDIS_OK)
        report(d, "cannot send %s: %s", command, d->ac->errstr ? d->ac->errstr : "disconnecting");
}

static void send_incr(struct demo *d)
{
    sent(d, redisAsyncCommand(d->ac, on_incr, NULL, "INCR %s", d->counter_key), "INCR");
    d->sent++;
}

/* SET, GET and DEL, then a disconnect that waits for their replies. */
static void send_the_rest(struct demo *d)
{
    redisAsyncContext *ac = d->ac;

    sent(d, redisAsyncCommand(ac, on_set, NULL, "SET %s %s", d->greeting_key, GREETING), "SET");
    sent(d, redisAsyncCommand(ac, on_get, NULL, "GET %s", d->greeting_key), "GET");
    sent(d, redisAsyncCommand(ac, on_last_del, NULL, "DEL %s %s", d->counter_key, d->greeting_key),
         "DEL");
    redisAsyncDisconnect(ac);
}

/* --every: one INCR per tick, the rest after the last one. */
static void tick(loop_t *loop, void *arg)
{
    struct demo *d = arg;

    (void)loop;
    if (d->ac == NULL)
        return;
    send_incr(d);
    if (d->sent == d->count) {
        stop_ticker(d);
        send_the_rest(d);
    }
}

/* Connect, attach, queue the commands.  False if there is nothing to run. */
static bool start(struct demo *d)
{
    redisAsyncContext *ac = redisAsyncConnect(d->host, d->port);
    int err;

    if (ac == NULL) {
        report(d, "cannot connect to %s:%d: out of memory", d->host, d->port);
        return false;
    }
    if (ac->err) {
        report(d, "cannot connect to %s:%d: %s", d->host, d->port, ac->errstr);
        redisAsyncFree(ac);
        return false;
    }
    err = loop_hiredis_attach(d->loop, ac);
    if (err < 0) {
        report(d, "loop_hiredis_attach: %s", loop_strerror(err));
        redisAsyncFree(ac);
        return false;
    }
    d->ac = ac;
    ac->data = d;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
#if LOOP_HIREDIS_TIMERS
    if (d->timeout_ms > 0) {
        struct timeval tv = {d->timeout_ms / 1000, (d->timeout_ms % 1000) * 1000};
        redisAsyncSetTimeout(ac, tv);
    }
#endif

    /* Start from a fresh counter, so the INCRs answer 1, 2, ... */
    sent(d, redisAsyncCommand(ac, on_first_del, NULL, "DEL %s", d->counter_key), "DEL");
    if (d->every_ms > 0) {
        err = loop_call_every(d->loop, LOOP_MS(d->every_ms), tick, d, &d->ticker);
        if (err < 0) {
            report(d, "loop_call_every: %s", loop_strerror(err));
            redisAsyncFree(ac); /* pending callbacks get NULL replies */
            d->ac = NULL;
            return false;
        }
        return true;
    }
    while (d->sent < d->count)
        send_incr(d);
    send_the_rest(d);
    return true;
}

/* After the loop: was everything answered, and right? */
static void summarize(struct demo *d)
{
    if (d->failed || d->lost) {
        fprintf(stderr, "%s: %ld of %ld INCR replies received; %ld commands got no reply\n",
                program, d->incr_replies, d->count, d->lost);
        d->failed = true;
        return;
    }
    if (d->incr_replies != d->count || !d->got_greeting || !d->deleted ||
        !d->disconnected_cleanly) {
        report(d, "the loop ended before every reply arrived");
        return;
    }
    printf("%ld INCR replies: 1..%ld, in order\n", d->count, d->count);
    printf("SET then GET: \"%s\"\n", GREETING);
    printf("disconnected cleanly\n");
}

/* ---- command line -------------------------------------------------------- */

static void usage(int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s [--every MS] [--timeout MS] [--check-fds] [HOST [PORT [COUNT]]]\n"
            "  HOST PORT    the server (default 127.0.0.1 6379)\n"
            "  COUNT        how many INCR commands to send (default 1000)\n"
            "  --every MS   send one INCR every MS ms from a timer, instead of all at once\n"
            "  --timeout MS fail a command not answered within MS ms (hiredis >= 1.0)\n"
            "  --check-fds  fail if fds are left open after the disconnect\n",
            program);
    exit(status);
}

/* A number in [min, max], or a usage error. */
static long number(const char *text, long min, long max, const char *what)
{
    char *end;
    long n = strtol(text, &end, 10);

    if (*text == '\0' || *end != '\0' || n < min || n > max) {
        fprintf(stderr, "%s: bad %s '%s' (%ld to %ld)\n", program, what, text, min, max);
        usage(2);
    }
    return n;
}

static void parse(struct demo *d, int argc, char **argv)
{
    int operands = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(0);
        } else if (strcmp(a, "--check-fds") == 0) {
            d->check_fds = true;
        } else if (strcmp(a, "--every") == 0 && i + 1 < argc) {
            d->every_ms = number(argv[++i], 1, 60000, "--every");
        } else if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
            d->timeout_ms = number(argv[++i], 1, 3600000, "--timeout");
        } else if (a[0] == '-' || operands == 3) {
            fprintf(stderr, "%s: unexpected argument '%s'\n", program, a);
            usage(2);
        } else if (operands++ == 0) {
            d->host = a;
        } else if (operands == 2) {
            d->port = (int)number(a, 1, 65535, "port");
        } else {
            d->count = number(a, 1, 10000000, "count");
        }
    }
#if !LOOP_HIREDIS_TIMERS
    if (d->timeout_ms > 0) {
        fprintf(stderr, "%s: --timeout needs hiredis 1.0 or later (built with %d.%d.%d)\n", program,
                HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
        exit(2);
    }
#endif
}

int main(int argc, char **argv)
{
    struct demo d = {.host = "127.0.0.1", .port = 6379, .count = 1000};
    loop_stats_t stats = {0};
    int fds_before = -1, err;

    parse(&d, argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* A write to a connection the server just closed must fail, not kill. */
    signal(SIGPIPE, SIG_IGN);
    snprintf(d.counter_key, sizeof(d.counter_key), "redis_demo:%ld:counter", (long)getpid());
    snprintf(d.greeting_key, sizeof(d.greeting_key), "redis_demo:%ld:greeting", (long)getpid());

    err = loop_new(&d.loop);
    if (err < 0) {
        fprintf(stderr, "%s: loop_new: %s\n", program, loop_strerror(err));
        return 1;
    }
    if (d.check_fds)
        fds_before = count_fds();

    if (start(&d)) {
        err = loop_run(d.loop);
        if (err < 0)
            report(&d, "loop_run: %s", loop_strerror(err));
    }
    if (d.ac != NULL) { /* only if loop_run failed: do not leave it behind */
        redisAsyncFree(d.ac);
        d.ac = NULL;
    }

    summarize(&d);
    if (d.check_fds) {
        int fds_after = count_fds();
        printf("fds: %d open before connecting, %d after disconnecting\n", fds_before, fds_after);
        if (fds_before < 0 || fds_after != fds_before)
            report(&d, "fds leaked: %d open before connecting, %d after disconnecting", fds_before,
                   fds_after);
    }
    loop_stats(d.loop, &stats);
    printf("loop: iterations=%llu callbacks=%llu\n", (unsigned long long)stats.iterations,
           (unsigned long long)stats.callbacks);
    loop_free(d.loop);
    return d.failed ? 1 : 0;
}
