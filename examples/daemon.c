/*
 * daemon: a small service whose main loop is libloop and nothing else.
 *
 *   daemon --config FILE --socket PATH [--log FILE]
 *
 *  - A periodic job runs every interval_ms (loop_call_every).  A run takes
 *    job_ms to finish (simulated asynchronous work, finished by a timer);
 *    a tick that finds the previous run still going skips.
 *  - SIGHUP re-reads the config file and logs each change (a bad file is
 *    logged and the old config kept), and reopens the log file, so that
 *    log rotation works.
 *  - SIGTERM and SIGINT shut down gracefully: stop accepting, let the job
 *    in flight finish and every pending reply go out, then exit 0.  If
 *    that takes longer than shutdown_ms, or a second SIGTERM/SIGINT
 *    arrives, it gives up on what is left and exits 1.
 *  - A Unix-socket control channel takes one command per line:
 *      status   ok name=... uptime_ms=... jobs=... and the loop's counters
 *      stop     ok stopping, then the same graceful shutdown
 *
 * The config file holds `key = value` lines; `#` starts a comment:
 *
 *   name = demo          # up to 63 characters, shown by status and the job
 *   interval_ms = 1000   # the job's period
 *   job_ms = 0           # how long one run of the job takes
 *   shutdown_ms = 5000   # how long a graceful shutdown may take
 *
 * Logs go to stderr (line-buffered), or appended to --log FILE.
 */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define LINE_MAX_ 256 /* longest command line */
#define OUT_MAX 1024  /* pending reply bytes per connection */

struct config {
    char name[64];
    uint32_t interval_ms, job_ms, shutdown_ms;
};

struct conn {
    struct daemon *d;
    int fd;
    char in[LINE_MAX_];
    size_t inlen;
    char out[OUT_MAX];
    size_t outlen, outoff;
    bool closing; /* close once the reply is out */
    struct conn *next;
};

struct daemon {
    loop_t *loop;
    const char *config_path, *socket_path, *log_path;
    FILE *log;
    struct config cfg;
    uint64_t started; /* loop_now() at start */

    int listen_fd; /* -1 once closed */
    bool accepting;
    loop_handle accept_retry;
    struct conn *conns;
    unsigned nconns;

    loop_handle tick;
    uint64_t jobs_started, jobs_done;
    bool job_running;
    loop_handle job_timer;

    bool shutting_down, forced;
    bool finished; /* loop_stop() called: nothing more to wait for */
    loop_handle grace;
};

/* ---- logging ---------------------------------------------------------- */

static void log_msg(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_msg(struct daemon *d, const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    FILE *f = d->log ? d->log : stderr;
    fprintf(f, "%s.%03ldZ daemon[%ld]: ", when, ts.tv_nsec / 1000000, (long)getpid());
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

/* Open (or reopen, after rotation) the log file; stderr if there is none. */
static int open_log(struct daemon *d)
{
    if (!d->log_path) {
        setvbuf(stderr, NULL, _IOLBF, 0);
        return 0;
    }
    FILE *f = fopen(d->log_path, "ae");
    if (!f)
        return -errno;
    setvbuf(f, NULL, _IOLBF, 0);
    if (d->log)
        fclose(d->log);
    d->log = f;
    return 0;
}

/* ---- config ----------------------------------------------------------- */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v < min || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

static int set_key(struct config *c, const char *key, const char *value)
{
    if (strcmp(key, "name") == 0) {
        if (strlen(value) >= sizeof(c->name) || strpbrk(value, " \t"))
            return -1;
        strcpy(c->name, value);
    } else if (strcmp(key, "interval_ms") == 0) {
        return parse_u32(value, 1, 86400000, &c->interval_ms) ? 0 : -1;
    } else if (strcmp(key, "job_ms") == 0) {
        return parse_u32(value, 0, 86400000, &c->job_ms) ? 0 : -1;
    } else if (strcmp(key, "shutdown_ms") == 0) {
        return parse_u32(value, 1, 86400000, &c->shutdown_ms) ? 0 : -1;
    } else {
        return -2;
    }
    return 0;
}

/* Read the config file into *c; on error, say why in err and leave *c alone. */
static int load_config(const char *path, struct config *c, char *err, size_t errsize)
{
    struct config n = {.name = "daemon", .interval_ms = 1000, .job_ms = 0, .shutdown_ms = 5000};
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errsize, "%s:%d: expected key = value", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        int r = set_key(&n, key, value);
        if (r) {
            snprintf(err, errsize, "%s:%d: %s '%s'", path, lineno,
                     r == -2 ? "unknown key" : "bad value for", key);
            rc = -1;
        }
    }
    fclose(f);
    if (rc == 0)
        *c = n;
    return rc;
}

/* ---- the periodic job --------------------------------------------------- */

static void maybe_finish(struct daemon *d);

static void job_done(struct daemon *d)
{
    d->job_running = false;
    d->jobs_done++;
    log_msg(d, "job %" PRIu64 " (%s) done", d->jobs_done, d->cfg.name);
    maybe_finish(d);
}

static void on_job_timer(loop_t *loop, void *arg)
{
    (void)loop;
    struct daemon *d = arg;
    d->job_timer = (loop_handle){0};
    job_done(d);
}

static void on_tick(loop_t *loop, void *arg)
{
    struct daemon *d = arg;
    if (d->job_running) {
        log_msg(d, "job %" PRIu64 " still running: tick skipped", d->jobs_started);
        return;
    }
    d->jobs_started++;
    d->job_running = true;
    if (d->cfg.job_ms == 0) {
        job_done(d);
        return;
    }
    int err = loop_call_later(loop, LOOP_MS(d->cfg.job_ms), on_job_timer, d, &d->job_timer);
    if (err) {
        log_msg(d, "job %" PRIu64 ": cannot start: %s", d->jobs_started, loop_strerror(err));
        d->job_running = false;
    }
}

static int start_ticking(struct daemon *d)
{
    return loop_call_every(d->loop, LOOP_MS(d->cfg.interval_ms), on_tick, d, &d->tick);
}

/* ---- SIGHUP: reload ----------------------------------------------------- */

static void reload(struct daemon *d)
{
    if (d->log_path) {
        int err = open_log(d);
        if (err)
            log_msg(d, "cannot reopen log %s: %s; keeping the old one", d->log_path,
                    strerror(-err));
    }
    struct config n;
    char why[512];
    if (load_config(d->config_path, &n, why, sizeof(why))) {
        log_msg(d, "config: reload failed: %s; keeping the old config", why);
        return;
    }
    int changes = 0;
    if (strcmp(n.name, d->cfg.name) != 0) {
        log_msg(d, "config: name %s -> %s", d->cfg.name, n.name);
        changes++;
    }
    if (n.interval_ms != d->cfg.interval_ms) {
        log_msg(d, "config: interval_ms %" PRIu32 " -> %" PRIu32, d->cfg.interval_ms,
                n.interval_ms);
        changes++;
    }
    if (n.job_ms != d->cfg.job_ms) {
        log_msg(d, "config: job_ms %" PRIu32 " -> %" PRIu32, d->cfg.job_ms, n.job_ms);
        changes++;
    }
    if (n.shutdown_ms != d->cfg.shutdown_ms) {
        log_msg(d, "config: shutdown_ms %" PRIu32 " -> %" PRIu32, d->cfg.shutdown_ms,
                n.shutdown_ms);
        changes++;
    }
    bool new_period = n.interval_ms != d->cfg.interval_ms;
    d->cfg = n;
    if (new_period && !d->shutting_down) {
        loop_cancel(d->loop, d->tick);
        int err = start_ticking(d);
        if (err)
            log_msg(d, "config: cannot reschedule the job: %s", loop_strerror(err));
    }
    log_msg(d, "config: reloaded from %s, %d change%s", d->config_path, changes,
            changes == 1 ? "" : "s");
}

static void on_sighup(loop_t *loop, void *arg)
{
    (void)loop;
    struct daemon *d = arg;
    log_msg(d, "SIGHUP: reloading");
    reload(d);
}

/* ---- shutdown ----------------------------------------------------------- */

static void close_conn(struct daemon *d, struct conn *c);
static void stop_accepting(struct daemon *d);

/* Everything in flight is done: leave loop_run(). */
static void maybe_finish(struct daemon *d)
{
    if (!d->shutting_down || d->finished || d->job_running || d->nconns)
        return;
    d->finished = true;
    loop_cancel(d->loop, d->grace);
    d->grace = (loop_handle){0};
    log_msg(d, "shutdown complete");
    loop_stop(d->loop);
}

/* Give up on what is still in flight. */
static void force_stop(struct daemon *d, const char *why)
{
    log_msg(d, "%s: dropping %u connection%s%s", why, d->nconns, d->nconns == 1 ? "" : "s",
            d->job_running ? " and the running job" : "");
    d->forced = true;
    d->finished = true;
    while (d->conns)
        close_conn(d, d->conns);
    if (d->job_running) {
        loop_cancel(d->loop, d->job_timer);
        d->job_running = false;
    }
    loop_cancel(d->loop, d->grace);
    loop_stop(d->loop);
}

static void on_grace_over(loop_t *loop, void *arg)
{
    (void)loop;
    struct daemon *d = arg;
    d->grace = (loop_handle){0};
    force_stop(d, "shutdown took too long");
}

static void close_idle(loop_t *loop, void *arg)
{
    (void)loop;
    struct daemon *d = arg;
    for (struct conn *c = d->conns, *next; c; c = next) {
        next = c->next;
        if (c->outoff == c->outlen)
            close_conn(d, c);
    }
}

static void begin_shutdown(struct daemon *d, const char *why)
{
    if (d->shutting_down) {
        if (strncmp(why, "SIG", 3) == 0)
            force_stop(d, "second signal");
        return;
    }
    d->shutting_down = true;
    loop_cancel(d->loop, d->tick);
    stop_accepting(d);
    log_msg(d, "%s: shutting down%s", why, d->job_running ? ", waiting for the running job" : "");
    /* No more commands: idle connections close now, the others once their
     * reply is out.  Closing waits for the next iteration, so that the
     * connection whose command got us here is not freed under its handler. */
    for (struct conn *c = d->conns; c; c = c->next) {
        loop_remove_reader(d->loop, c->fd);
        c->closing = true;
    }
    int err = loop_call_soon(d->loop, close_idle, d, NULL);
    if (err)
        log_msg(d, "cannot close idle connections: %s", loop_strerror(err));
    err = loop_call_later(d->loop, LOOP_MS(d->cfg.shutdown_ms), on_grace_over, d, &d->grace);
    if (err)
        log_msg(d, "no shutdown deadline: %s", loop_strerror(err));
    maybe_finish(d);
}

static void on_sigterm(loop_t *loop, void *arg)
{
    (void)loop;
    begin_shutdown(arg, "SIGTERM");
}

static void on_sigint(loop_t *loop, void *arg)
{
    (void)loop;
    begin_shutdown(arg, "SIGINT");
}

/* ---- control connections -------------------------------------------------- */

static void on_conn_readable(loop_t *loop, int fd, unsigned events, void *arg);
static void on_conn_writable(loop_t *loop, int fd, unsigned events, void *arg);

static void close_conn(struct daemon *d, struct conn *c)
{
    loop_remove_reader(d->loop, c->fd); /* -ENOENT if already removed: fine */
    loop_remove_writer(d->loop, c->fd);
    close(c->fd);
    for (struct conn **p = &d->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    d->nconns--;
    free(c);
    maybe_finish(d);
}

static void reply(struct daemon *d, struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply(struct daemon *d, struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->out + c->outlen, sizeof(c->out) - c->outlen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(c->out) - c->outlen) {
        c->closing = true; /* a client that never reads its replies */
        return;
    }
    c->outlen += (size_t)n;
    int err = loop_add_writer(d->loop, c->fd, on_conn_writable, c);
    if (err) {
        log_msg(d, "control: cannot reply: %s", loop_strerror(err));
        c->outlen = c->outoff = 0;
        c->closing = true;
    }
}

static void reply_status(struct daemon *d, struct conn *c)
{
    loop_stats_t st;
    loop_stats(d->loop, &st);
    uint64_t uptime_ms = (loop_now(d->loop) - d->started) / 1000000u;
    reply(d, c,
          "ok name=%s uptime_ms=%" PRIu64 " jobs=%" PRIu64 " job_running=%d interval_ms=%" PRIu32
          " connections=%u iterations=%" PRIu64 " polls=%" PRIu64 " callbacks=%" PRIu64
          " events=%" PRIu64 " wait_ns=%" PRIu64 " busy_ns=%" PRIu64 "\n",
          d->cfg.name, uptime_ms, d->jobs_done, d->job_running, d->cfg.interval_ms, d->nconns,
          st.iterations, st.polls, st.callbacks, st.events, st.wait_ns, st.busy_ns);
}

static void command(struct daemon *d, struct conn *c, char *line)
{
    char *cmd = trim(line);
    if (strcmp(cmd, "status") == 0) {
        reply_status(d, c);
    } else if (strcmp(cmd, "stop") == 0) {
        reply(d, c, "ok stopping\n");
        c->closing = true;
        log_msg(d, "control: stop requested");
        begin_shutdown(d, "stop command");
    } else if (*cmd) {
        reply(d, c, "error unknown command '%.32s' (try status or stop)\n", cmd);
    }
}

/* Run every complete line in c->in; the rest waits for more bytes. */
static void run_lines(struct daemon *d, struct conn *c)
{
    char *nl;
    while (!c->closing && (nl = memchr(c->in, '\n', c->inlen)) != NULL) {
        *nl = '\0';
        command(d, c, c->in);
        size_t used = (size_t)(nl + 1 - c->in);
        memmove(c->in, nl + 1, c->inlen - used);
        c->inlen -= used;
    }
    if (c->inlen == sizeof(c->in)) {
        reply(d, c, "error line too long\n");
        c->closing = true;
    }
}

/* Close c if it is done: asked to close and nothing left to send. */
static bool finish_if_done(struct daemon *d, struct conn *c)
{
    if (c->closing && c->outoff == c->outlen) {
        close_conn(d, c);
        return true;
    }
    return false;
}

static void on_conn_readable(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct conn *c = arg;
    struct daemon *d = c->d;
    ssize_t n = read(fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) { /* the client is gone, or finished sending: answer, then close */
        c->closing = true;
        loop_remove_reader(loop, fd);
        finish_if_done(d, c);
        return;
    }
    c->inlen += (size_t)n;
    run_lines(d, c);
    if (c->closing)
        loop_remove_reader(loop, fd);
    finish_if_done(d, c);
}

static void on_conn_writable(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct conn *c = arg;
    struct daemon *d = c->d;
    ssize_t n = send(fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) { /* the client went away: nothing more to send */
        c->outoff = c->outlen;
        c->closing = true;
    } else {
        c->outoff += (size_t)n;
    }
    if (c->outoff == c->outlen) {
        c->outoff = c->outlen = 0;
        loop_remove_writer(loop, fd);
    }
    finish_if_done(d, c);
}

/* ---- the listening socket ------------------------------------------------- */

static void on_listen_readable(loop_t *loop, int fd, unsigned events, void *arg);

static void on_accept_retry(loop_t *loop, void *arg)
{
    struct daemon *d = arg;
    d->accept_retry = (loop_handle){0};
    if (!d->shutting_down && loop_add_reader(loop, d->listen_fd, on_listen_readable, d) == 0)
        d->accepting = true;
}

static void accept_one(struct daemon *d, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c || d->nconns >= MAX_CONNS) {
        static const char busy[] = "error busy\n";
        ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
        close(fd);
        free(c);
        return;
    }
    c->d = d;
    c->fd = fd;
    int err = loop_add_reader(d->loop, fd, on_conn_readable, c);
    if (err) {
        log_msg(d, "control: cannot watch a connection: %s", loop_strerror(err));
        close(fd);
        free(c);
        return;
    }
    c->next = d->conns;
    d->conns = c;
    d->nconns++;
}

static void on_listen_readable(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct daemon *d = arg;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd >= 0) {
            accept_one(d, cfd);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of fds: the listener stays readable; pause instead of spinning. */
            log_msg(d, "control: accept: %s; pausing for 100 ms", strerror(errno));
            loop_remove_reader(loop, fd);
            d->accepting = false;
            loop_call_later(loop, LOOP_MS(100), on_accept_retry, d, &d->accept_retry);
        }
        return; /* EAGAIN, or a connection that failed before we took it */
    }
}

static void stop_accepting(struct daemon *d)
{
    if (d->listen_fd < 0)
        return;
    if (d->accepting)
        loop_remove_reader(d->loop, d->listen_fd);
    loop_cancel(d->loop, d->accept_retry);
    d->accepting = false;
    close(d->listen_fd);
    d->listen_fd = -1;
    unlink(d->socket_path);
}

/* Bind the control socket; a stale socket file (nobody listening) is replaced. */
static int open_socket(struct daemon *d, char *why, size_t whysize)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(d->socket_path) >= sizeof(addr.sun_path)) {
        snprintf(why, whysize, "%s: path too long for a Unix socket", d->socket_path);
        return -1;
    }
    strcpy(addr.sun_path, d->socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whysize, "socket: %s", strerror(errno));
        return -1;
    }
    struct stat sb;
    if (lstat(d->socket_path, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof(addr)) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            snprintf(why, whysize, "%s: another process is listening there", d->socket_path);
            close(fd);
            return -1;
        }
        unlink(d->socket_path);
    }
    mode_t old = umask(077); /* the socket is for its owner only */
    int r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    umask(old);
    if (r || listen(fd, 16)) {
        snprintf(why, whysize, "%s: %s", d->socket_path, strerror(errno));
        close(fd);
        return -1;
    }
    d->listen_fd = fd;
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: daemon --config FILE --socket PATH [--log FILE]\n"
          "  --config FILE  key = value lines: name, interval_ms, job_ms, shutdown_ms\n"
          "  --socket PATH  the Unix socket for control commands (status, stop)\n"
          "  --log FILE     append the log here instead of writing it to stderr\n"
          "SIGHUP reloads the config (and reopens the log); SIGTERM/SIGINT stop.\n",
          f);
}

static int parse_args(struct daemon *d, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(argv[i], "--config") == 0) {
            slot = &d->config_path;
        } else if (strcmp(argv[i], "--socket") == 0) {
            slot = &d->socket_path;
        } else if (strcmp(argv[i], "--log") == 0) {
            slot = &d->log_path;
        }
        if (!slot || i + 1 == argc) {
            fprintf(stderr, "daemon: %s '%s'\n", slot ? "missing value after" : "unknown option",
                    argv[i]);
            return -1;
        }
        *slot = argv[++i];
    }
    if (!d->config_path || !d->socket_path) {
        fprintf(stderr, "daemon: --config and --socket are required\n");
        return -1;
    }
    return 0;
}

/* Register what the daemon does with the loop; returns 0 or a libloop error. */
static int setup(struct daemon *d)
{
    int err = loop_add_reader(d->loop, d->listen_fd, on_listen_readable, d);
    if (!err) {
        d->accepting = true;
        err = start_ticking(d);
    }
    if (!err)
        err = loop_add_signal(d->loop, SIGHUP, on_sighup, d);
    if (!err)
        err = loop_add_signal(d->loop, SIGTERM, on_sigterm, d);
    if (!err)
        err = loop_add_signal(d->loop, SIGINT, on_sigint, d);
    return err;
}

int main(int argc, char **argv)
{
    struct daemon d = {.listen_fd = -1};
    signal(SIGPIPE, SIG_IGN); /* a client or log reader that goes away is not fatal */
    if (parse_args(&d, argc, argv)) {
        usage(stderr);
        return 2;
    }
    int err = open_log(&d);
    if (err) {
        fprintf(stderr, "daemon: %s: %s\n", d.log_path, strerror(-err));
        return 1;
    }
    char why[512];
    if (load_config(d.config_path, &d.cfg, why, sizeof(why))) {
        log_msg(&d, "config: %s", why);
        return 1;
    }
    if (open_socket(&d, why, sizeof(why))) {
        log_msg(&d, "control socket: %s", why);
        return 1;
    }
    err = loop_new(&d.loop);
    if (!err) {
        d.started = loop_now(d.loop);
        err = setup(&d);
    }
    if (err) {
        log_msg(&d, "cannot start: %s", loop_strerror(err));
        stop_accepting(&d);
        loop_free(d.loop);
        return 1;
    }
    log_msg(&d, "started: name=%s interval_ms=%" PRIu32 " socket=%s", d.cfg.name, d.cfg.interval_ms,
            d.socket_path);

    err = loop_run(d.loop);
    if (err)
        log_msg(&d, "loop_run: %s", loop_strerror(err));
    d.finished = true;

    /* loop_free restores the signal dispositions and drops what is left. */
    while (d.conns)
        close_conn(&d, d.conns);
    stop_accepting(&d);
    loop_free(d.loop);
    log_msg(&d, "exiting with status %d", err || d.forced ? 1 : 0);
    if (d.log)
        fclose(d.log);
    return err || d.forced ? 1 : 0;
}
