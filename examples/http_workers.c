/*
 * http_workers: the seed's "multi-process + coroutines" server shape on
 * every core: N workers, each with its own loop and its own SO_REUSEPORT
 * listener, answering "Hello, World!\n" over HTTP/1.1 with raw fd
 * callbacks (loop_add_reader / loop_add_writer).
 *
 *   usage: http_workers [--workers N] [--mode threads|processes] [--host H]
 *                       [--port P] [--drain-ms MS] [--pin]
 *
 * Defaults: one worker per CPU, processes, 127.0.0.1, port 8080 (0 picks a
 * free one), a 10 s drain.  It prints "worker I pid P ready" as each
 * worker becomes ready (and "worker I pid P exited ..." if one dies; in
 * processes mode it is started again), then "Serving on http://H:P/",
 * and runs until SIGTERM or SIGINT.  Then each worker stops accepting,
 * answers the requests it has received, closes its idle connections, and
 * prints "worker I: N requests"; the program exits 0 once every worker is
 * done (1 if the drain deadline cut one short).
 *
 * Listeners: worker I accepts on listener I of one SO_REUSEPORT group.
 * In processes mode all are opened here, before the fork, as nginx does
 * (bind errors come out at once; a restarted worker finds its socket and
 * its backlog).  In threads mode listener 0 is opened here (it fixes the
 * port when 0 was asked for) and the other workers open theirs in setup.
 *
 * HTTP: requests up to 8 KiB of head (else 431), pipelined requests
 * answered in order, bodies (Content-Length) skipped, keep-alive for
 * HTTP/1.1 unless "Connection: close", and for HTTP/1.0 only with
 * "Connection: keep-alive"; a malformed request gets 400 and the
 * connection ends.  Ending a connection is a lingering close: shut down
 * our side, discard input until the client closes (or 2 s), so that a
 * request in flight never turns the close into a reset.
 */
#include "http_parse.h"
#include "loop_workers.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP 8192      /* a request head must fit; a longer one gets 431 */
#define OUT_CAP 8192     /* responses not yet taken by the kernel */
#define RESPONSE_MAX 256 /* room needed for one more response */
#define LINGER_MS 2000
#define ACCEPT_RETRY_MS 100

struct worker;

enum conn_state { CONN_OPEN, CONN_CLOSING, CONN_LINGER };

struct conn {
    struct worker *wk;
    struct conn *prev, *next;
    int fd;
    enum conn_state state;
    bool peer_done, reading, writing, blocked;
    uint64_t body_left;
    struct request pending;
    loop_handle linger_timer;
    size_t in_len, out_off, out_len;
    char in[IN_CAP];
    char out[OUT_CAP];
};

struct worker {
    loop_t *loop;
    unsigned index;
    int lfd;
    bool accepting, draining;
    struct conn *conns;
    unsigned long long requests;
    char date[40];
    uint64_t date_at; /* loop_now() when date was made */
    char hello[RESPONSE_MAX];
    size_t hello_len;
};

static struct app {
    const char *host;
    int port;
    unsigned count;
    bool threads;
    int *lfd;           /* listener i of worker i (processes: all, threads: 0) */
    struct worker *wks; /* worker i's state, touched by worker i only */
} app;

static void on_readable(loop_t *loop, int fd, unsigned events, void *arg);
static void on_writable(loop_t *loop, int fd, unsigned events, void *arg);
static void conn_progress(struct conn *c);

/* ---- connections ---------------------------------------------------------- */

static void conn_close(struct conn *c)
{
    loop_t *loop = c->wk->loop;
    if (c->reading)
        loop_remove_reader(loop, c->fd);
    if (c->writing)
        loop_remove_writer(loop, c->fd);
    loop_cancel(loop, c->linger_timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->wk->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static bool conn_watch(struct conn *c)
{
    loop_t *loop = c->wk->loop;
    bool want_read = (c->state == CONN_OPEN && !c->blocked) || c->state == CONN_LINGER;
    bool want_write = c->out_off < c->out_len;

    if (want_read != c->reading) {
        if (want_read ? loop_add_reader(loop, c->fd, on_readable, c) < 0
                      : loop_remove_reader(loop, c->fd) < 0)
            return false;
        c->reading = want_read;
    }
    if (want_write != c->writing) {
        if (want_write ? loop_add_writer(loop, c->fd, on_writable, c) < 0
                       : loop_remove_writer(loop, c->fd) < 0)
            return false;
        c->writing = want_write;
    }
    return true;
}

static size_t out_room(struct conn *c)
{
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    return OUT_CAP - c->out_len;
}

static int format_response(char *out, size_t room, struct worker *wk, int status,
                           const char *reason, const char *body, bool keep_alive, bool head)
{
    return snprintf(out, room,
                    "HTTP/1.1 %d %s\r\nServer: libloop\r\nDate: %s\r\nContent-Type: text/plain\r\n"
                    "Content-Length: %zu\r\nConnection: %s\r\n\r\n%s",
                    status, reason, wk->date, strlen(body), keep_alive ? "keep-alive" : "close",
                    head ? "" : body);
}

/*
 * The Date header, made again at most once a second, and with it the
 * response almost every request gets (200, keep-alive, a body), which is
 * then copied rather than formatted.
 */
static void refresh_date(struct worker *wk)
{
    uint64_t now = loop_now(wk->loop);
    if (wk->date[0] && now - wk->date_at < LOOP_SEC(1))
        return;
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(wk->date, sizeof wk->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    wk->date_at = now;
    int n =
        format_response(wk->hello, sizeof wk->hello, wk, 200, "OK", "Hello, World!\n", true, false);
    wk->hello_len = n > 0 && (size_t)n < sizeof wk->hello ? (size_t)n : 0;
}

static void respond(struct conn *c, int status, const struct request *rq)
{
    const char *reason = "OK", *body = "Hello, World!\n";
    size_t room = out_room(c);
    int n;

    refresh_date(c->wk);
    switch (status) {
    case 400:
        reason = "Bad Request", body = "Bad Request\n";
        break;
    case 431:
        reason = "Request Header Fields Too Large", body = "Request Header Fields Too Large\n";
        break;
    case 501:
        reason = "Not Implemented", body = "Not Implemented\n";
        break;
    case 505:
        reason = "HTTP Version Not Supported", body = "HTTP Version Not Supported\n";
        break;
    }
    if (status == 200 && rq->keep_alive && !rq->head && c->wk->hello_len <= room) {
        memcpy(c->out + c->out_len, c->wk->hello, c->wk->hello_len);
        n = (int)c->wk->hello_len;
    } else {
        n = format_response(c->out + c->out_len, room, c->wk, status, reason, body, rq->keep_alive,
                            rq->head);
    }
    if (n > 0 && (size_t)n < room)
        c->out_len += (size_t)n;
    c->wk->requests++;
    if (!rq->keep_alive)
        c->state = CONN_CLOSING;
}

/* While draining, the last request received completely ends its connection. */
static void drain_close(struct conn *c, size_t off, struct request *rq)
{
    if (c->wk->draining && !memmem(c->in + off, c->in_len - off, "\r\n\r\n", 4))
        rq->keep_alive = false;
}

/* Answer every complete request in the input, in order, while there is room. */
static void process_input(struct conn *c)
{
    size_t off = 0;

    c->blocked = false;
    while (c->state == CONN_OPEN) {
        if (out_room(c) < RESPONSE_MAX) {
            c->blocked = true;
            break;
        }
        if (c->body_left > 0) {
            size_t n = c->in_len - off < c->body_left ? c->in_len - off : (size_t)c->body_left;
            off += n;
            c->body_left -= n;
            if (c->body_left > 0)
                break;
            drain_close(c, off, &c->pending);
            respond(c, 200, &c->pending);
            continue;
        }
        off += http_skip_empty_lines(c->in + off, c->in_len - off);
        const char *head = c->in + off;
        const char *end = memmem(head, c->in_len - off, "\r\n\r\n", 4);
        if (!end)
            break;
        struct request rq;
        int status = http_parse_head(head, (size_t)(end + 4 - head), &rq);
        off += (size_t)(end + 4 - head);
        if (status) {
            rq.keep_alive = false;
            respond(c, status, &rq);
            break;
        }
        c->pending = rq;
        c->body_left = rq.content_length;
        if (c->body_left == 0) {
            drain_close(c, off, &rq);
            respond(c, 200, &rq);
        }
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    if (c->state == CONN_OPEN && !c->blocked && c->in_len == IN_CAP) {
        struct request rq = {0};
        respond(c, 431, &rq);
    }
}

/* ---- I/O ------------------------------------------------------------------ */

/* Send what is pending: 1 all sent, 0 the kernel is full, -1 error. */
static int flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n >= 0)
            c->out_off += (size_t)n;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        else if (errno != EINTR)
            return -1;
    }
    c->out_off = c->out_len = 0;
    return 1;
}

static void linger_expired(loop_t *loop, void *arg)
{
    struct conn *c = arg;
    (void)loop;
    c->linger_timer = (loop_handle){0};
    conn_close(c);
}

/* All sent and no more requests will be read: shut our side, then wait. */
static bool conn_finish(struct conn *c)
{
    if (c->peer_done || shutdown(c->fd, SHUT_WR) < 0)
        return false;
    c->state = CONN_LINGER;
    return loop_call_later(c->wk->loop, LOOP_MS(LINGER_MS), linger_expired, c, &c->linger_timer) ==
           0;
}

static void conn_progress(struct conn *c)
{
    for (;;) {
        if (c->state == CONN_OPEN)
            process_input(c);
        int sent = flush(c);
        if (sent < 0) {
            conn_close(c);
            return;
        }
        if (sent == 0 || c->state != CONN_OPEN || !c->blocked)
            break; /* sending made room: parse what was waiting */
    }
    if (c->state == CONN_CLOSING && c->out_off == c->out_len && !conn_finish(c))
        conn_close(c);
    else if (!conn_watch(c))
        conn_close(c);
}

/* Read what is there: 1 got data or end of file, 0 nothing now, -1 error. */
static int conn_read(struct conn *c)
{
    if (c->state == CONN_LINGER) {
        char buf[4096];
        ssize_t n;
        while ((n = recv(c->fd, buf, sizeof buf, 0)) > 0 || (n < 0 && errno == EINTR))
            ;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
    } else if (n == 0) {
        c->peer_done = true; /* answer what it sent completely, then close */
        c->state = CONN_CLOSING;
    } else {
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    }
    return 1;
}

static void on_readable(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct conn *c = arg;
    (void)loop;
    (void)fd;
    (void)events;
    int r = conn_read(c);
    if (r < 0)
        conn_close(c);
    else if (r > 0)
        conn_progress(c);
}

static void on_writable(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    conn_progress(arg);
}

static void conn_open(struct worker *wk, int fd)
{
    struct conn *c = malloc(sizeof *c);
    int one = 1;
    if (!c) {
        close(fd); /* out of memory: refuse this client, keep serving */
        return;
    }
    memset(c, 0, offsetof(struct conn, in));
    c->wk = wk;
    c->fd = fd;
    c->next = wk->conns;
    if (c->next)
        c->next->prev = c;
    wk->conns = c;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!conn_watch(c))
        conn_close(c);
}

/* ---- the listener ----------------------------------------------------------- */

static void on_accept(loop_t *loop, int fd, unsigned events, void *arg);

static void resume_accepting(loop_t *loop, void *arg)
{
    struct worker *wk = arg;
    if (wk->draining || wk->accepting)
        return;
    if (loop_add_reader(loop, wk->lfd, on_accept, wk) == 0)
        wk->accepting = true;
    else
        loop_call_later(loop, LOOP_MS(ACCEPT_RETRY_MS), resume_accepting, wk, NULL);
}

static void on_accept(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct worker *wk = arg;
    (void)events;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd >= 0) {
            conn_open(wk, cfd);
        } else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of fds: the clients wait in the backlog; look again later. */
            loop_remove_reader(loop, fd);
            wk->accepting = false;
            loop_call_later(loop, LOOP_MS(ACCEPT_RETRY_MS), resume_accepting, wk, NULL);
            return;
        } else if (errno != EINTR && errno != ECONNABORTED && errno != EPROTO && errno != EPERM) {
            return; /* EAGAIN: all taken */
        }
    }
}

/* ---- the workers -------------------------------------------------------------- */

static int worker_setup(loop_t *loop, unsigned index, void *arg)
{
    struct worker *wk = &app.wks[index];
    (void)arg;
    *wk = (struct worker){.loop = loop, .index = index, .lfd = app.lfd[index]};
    if (app.threads && index > 0) { /* its own listener, in the group of listener 0 */
        wk->lfd = loop_workers_listen_reuseport(app.host, app.port, 0);
        if (wk->lfd < 0)
            return wk->lfd;
    } else if (!app.threads) { /* a process: the other workers' listeners are theirs */
        for (unsigned i = 0; i < app.count; i++)
            if (i != index)
                close(app.lfd[i]);
    }
    int err = loop_add_reader(loop, wk->lfd, on_accept, wk);
    if (err) {
        if (app.threads && index > 0)
            close(wk->lfd);
        return err;
    }
    wk->accepting = true;
    return 0;
}

static void worker_drain(loop_t *loop, unsigned index, void *arg)
{
    struct worker *wk = &app.wks[index];
    (void)arg;
    printf("worker %u draining\n", index);
    fflush(stdout);
    wk->draining = true;
    if (wk->accepting)
        loop_remove_reader(loop, wk->lfd);
    wk->accepting = false;
    for (struct conn *c = wk->conns, *next; c; c = next) {
        next = c->next;
        if (c->state != CONN_OPEN)
            continue;
        /* What the client already sent is answered; an idle one is closed. */
        if (conn_read(c) < 0) {
            conn_close(c);
            continue;
        }
        if (c->state == CONN_OPEN && c->in_len == 0 && c->body_left == 0 &&
            c->out_off == c->out_len)
            c->state = CONN_CLOSING;
        conn_progress(c);
    }
}

static void worker_teardown(loop_t *loop, unsigned index, void *arg)
{
    struct worker *wk = &app.wks[index];
    (void)loop;
    (void)arg;
    while (wk->conns) /* the deadline cut the drain short */
        conn_close(wk->conns);
    if (wk->accepting)
        loop_remove_reader(loop, wk->lfd);
    if (app.threads && index > 0)
        close(wk->lfd); /* processes: listener 0 to N-1 are the parent's to close */
    printf("worker %u: %llu requests\n", index, wk->requests);
    fflush(stdout);
}

static void on_event(loop_workers *w, const loop_workers_event *e, void *arg)
{
    (void)w;
    (void)arg;
    if (e->kind == LOOP_WORKERS_READY)
        printf("worker %u pid %d ready\n", e->index, e->pid);
    else if (e->restart_in_ns != UINT64_MAX)
        printf("worker %u pid %d exited (%s %d); restart in %llu ms\n", e->index, e->pid,
               e->code == CLD_EXITED ? "status" : "signal", e->status,
               (unsigned long long)(e->restart_in_ns / LOOP_MS(1)));
    fflush(stdout);
}

/* ---- main ------------------------------------------------------------------------ */

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: http_workers [--workers N] [--mode threads|processes] [--host H]\n"
                    "                    [--port P] [--drain-ms MS] [--pin]\n");
    exit(2);
}

static long number(const char *s, long max)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : -1;
    if (!s || errno || end == s || *end || v < 0 || v > max)
        usage();
    return v;
}

static void parse_args(int argc, char **argv, loop_workers_options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--pin") == 0) {
            o->pin = true;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--workers") == 0)
            o->count = (unsigned)number(v, LOOP_WORKERS_MAX);
        else if (strcmp(a, "--mode") == 0 && strcmp(v, "threads") == 0)
            app.threads = true;
        else if (strcmp(a, "--mode") == 0 && strcmp(v, "processes") == 0)
            app.threads = false;
        else if (strcmp(a, "--host") == 0)
            app.host = v;
        else if (strcmp(a, "--port") == 0)
            app.port = (int)number(v, 65535);
        else if (strcmp(a, "--drain-ms") == 0)
            o->drain_timeout_ns = LOOP_MS(number(v, 3600000));
        else
            usage();
    }
    if (o->count == 0)
        usage();
}

/* Open listener i (all of them in processes mode); fixes app.port. */
static void open_listeners(void)
{
    for (unsigned i = 0; i < (app.threads ? 1 : app.count); i++) {
        int fd = loop_workers_listen_reuseport(app.host, app.port, 0);
        if (fd < 0) {
            fprintf(stderr, "http_workers: cannot listen on %s:%d: %s\n", app.host, app.port,
                    loop_strerror(fd));
            exit(1);
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &len);
        app.port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                 : ((struct sockaddr_in6 *)&ss)->sin6_port);
        app.lfd[i] = fd;
    }
}

int main(int argc, char **argv)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    loop_workers_options o = {.mode = LOOP_WORKERS_PROCESSES,
                              .count = cpus > 0 ? (unsigned)cpus : 1,
                              .setup = worker_setup,
                              .drain = worker_drain,
                              .teardown = worker_teardown,
                              .stop_on_signals = true,
                              .on_event = on_event};
    loop_workers *w;

    setvbuf(stdout, NULL, _IOLBF, 0);
    app.host = "127.0.0.1";
    app.port = 8080;
    parse_args(argc, argv, &o);
    o.mode = app.threads ? LOOP_WORKERS_THREADS : LOOP_WORKERS_PROCESSES;
    app.count = o.count;
    app.lfd = calloc(o.count, sizeof *app.lfd);
    app.wks = calloc(o.count, sizeof *app.wks);
    if (!app.lfd || !app.wks)
        return 1;
    open_listeners();
    int err = loop_workers_start(&w, &o);
    if (err) {
        fprintf(stderr, "http_workers: cannot start the workers: %s\n", loop_strerror(err));
        return 1;
    }
    printf("Serving on http://%s:%d/ with %u %s\n", app.host, app.port, o.count,
           app.threads ? "threads" : "processes");
    err = loop_workers_wait(w);
    loop_workers_free(w);
    for (unsigned i = 0; i < (app.threads ? 1 : app.count); i++)
        close(app.lfd[i]);
    free(app.lfd);
    free(app.wks);
    if (err)
        fprintf(stderr, "http_workers: %s\n", loop_strerror(err));
    printf("stopped\n");
    return err ? 1 : 0;
}
