/*
 * http_hello: seed 002's asyncio server, which answers "Hello, world!", as
 * a callback-driven HTTP/1.1 server on libloop:
 *
 *   async def handle_request(reader, writer):
 *       data = await reader.readuntil(b'\r\n')
 *       ...
 *       writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: ...\r\n\r\n...")
 *       await writer.drain()
 *       writer.close()
 *
 *   coro = asyncio.start_server(handle_request, 'localhost', 8080, loop=loop)
 *
 * Unlike the seed (whose Content-Length is wrong and which answers one
 * request per connection), every request gets a correct response and
 * connections are kept alive:
 *
 *   usage: http_hello [--virtual-time] [PORT]
 *
 * It listens on 127.0.0.1, PORT (default 8080; 0 picks a free port), and
 * prints the address it got.  It runs until SIGINT or SIGTERM, then closes
 * every connection and exits 0.  With --virtual-time the loop runs on its
 * virtual clock; the only effect is that its two timeouts (lingering close,
 * the accept back-off after EMFILE) expire as soon as the loop goes idle.
 *
 * How a connection works, all on level-triggered readiness callbacks:
 *
 *   - the reader appends what arrives to a fixed input buffer; every
 *     complete request head ("\r\n\r\n") is parsed, its body (Content-Length)
 *     skipped as it arrives, and the response appended to a fixed output
 *     buffer, so split and pipelined requests both work;
 *   - output is sent at once; what the kernel does not take waits for the
 *     writer callback.  While the output buffer is too full for one more
 *     response, requests are not parsed and the reader is off: a client
 *     that sends without reading cannot make the server buffer without end;
 *   - "Connection: close", HTTP/1.0 without keep-alive and bad requests
 *     (answered with 4xx/5xx) end the connection once the output is sent:
 *     the server shuts down its side and discards input until the client
 *     closes (at most LINGER_MS), so that unread input never turns the
 *     close into a reset that would destroy the last response;
 *   - end of file from the client: pending responses are sent, then the
 *     socket is closed; an error closes it at once.  A connection is always
 *     removed from the loop before its fd is closed.
 */
#include "example.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP 8192      /* a request head must fit; a longer one gets 431 */
#define OUT_CAP 8192     /* responses not yet taken by the kernel */
#define RESPONSE_MAX 256 /* room needed for one more response */
#define LINGER_MS 2000   /* lingering close: how long to wait for the client */
#define ACCEPT_RETRY_MS 100

struct server {
    loop_t *loop;
    int listen_fd;
    bool accepting;
    struct conn *conns; /* every open connection, to close them at exit */
};

enum conn_state {
    CONN_OPEN,    /* reading and answering requests */
    CONN_CLOSING, /* no more requests: send what is left, then end */
    CONN_LINGER,  /* all sent and our side shut down: wait for the client */
};

/* What a request asks of its response. */
struct request {
    bool keep_alive;
    bool http10;
    bool head; /* HEAD: no body in the response */
    uint64_t content_length;
};

struct conn {
    struct server *srv;
    struct conn *prev, *next;
    int fd;
    enum conn_state state;
    bool peer_done;         /* read end of file */
    bool reading, writing;  /* reader / writer registered with the loop */
    bool blocked;           /* parsing stopped: no room for another response */
    uint64_t body_left;     /* bytes of the current request's body to skip */
    struct request pending; /* the request whose body is being skipped */
    loop_handle linger_timer;
    size_t in_len;
    size_t out_off, out_len; /* unsent output is out[out_off, out_len) */
    char in[IN_CAP];
    char out[OUT_CAP];
};

static void on_readable(loop_t *loop, int fd, unsigned events, void *arg);
static void on_writable(loop_t *loop, int fd, unsigned events, void *arg);

/* ---- Connections ------------------------------------------------------ */

static void conn_close(struct conn *c)
{
    loop_t *loop = c->srv->loop;

    /* Off the loop first: nothing more may be delivered for this fd. */
    if (c->reading)
        loop_remove_reader(loop, c->fd);
    if (c->writing)
        loop_remove_writer(loop, c->fd);
    loop_cancel(loop, c->linger_timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

/* Register the reader and writer this state needs; false if that failed. */
static bool conn_watch(struct conn *c)
{
    loop_t *loop = c->srv->loop;
    bool want_read = (c->state == CONN_OPEN && !c->blocked) || c->state == CONN_LINGER;
    bool want_write = c->out_off < c->out_len;

    if (want_read != c->reading) {
        if (want_read && loop_add_reader(loop, c->fd, on_readable, c) < 0)
            return false;
        if (!want_read)
            loop_remove_reader(loop, c->fd);
        c->reading = want_read;
    }
    if (want_write != c->writing) {
        if (want_write && loop_add_writer(loop, c->fd, on_writable, c) < 0)
            return false;
        if (!want_write)
            loop_remove_writer(loop, c->fd);
        c->writing = want_write;
    }
    return true;
}

/* Room left in the output buffer, after moving unsent bytes to its start. */
static size_t out_room(struct conn *c)
{
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    return OUT_CAP - c->out_len;
}

/* Append a response (the caller made sure there is RESPONSE_MAX room). */
static void respond(struct conn *c, int status, const struct request *rq)
{
    const char *reason = "OK", *body = "Hello, world!";
    const char *connection = "";

    switch (status) {
    case 400:
        reason = body = "Bad Request";
        break;
    case 431:
        reason = body = "Request Header Fields Too Large";
        break;
    case 501:
        reason = body = "Not Implemented";
        break;
    case 505:
        reason = body = "HTTP Version Not Supported";
        break;
    }
    if (!rq->keep_alive)
        connection = "Connection: close\r\n";
    else if (rq->http10)
        connection = "Connection: keep-alive\r\n";

    size_t room = out_room(c);
    int n = snprintf(c->out + c->out_len, room,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "%s\r\n%s",
                     status, reason, strlen(body), connection, rq->head ? "" : body);
    if (n > 0 && (size_t)n < room)
        c->out_len += (size_t)n;
    if (!rq->keep_alive)
        c->state = CONN_CLOSING;
}

/* ---- Parsing ---------------------------------------------------------- */

static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static size_t token_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && is_tchar(p[i]))
        i++;
    return i;
}

/* Does the comma-separated list [p, p+n) hold `token` (case-insensitive)? */
static bool list_has(const char *p, size_t n, const char *token)
{
    size_t tl = strlen(token);

    while (n > 0) {
        while (n > 0 && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
            n--;
        }
        size_t len = token_len(p, n);
        if (len == tl && strncasecmp(p, token, tl) == 0)
            return true;
        while (n > 0 && *p != ',') {
            p++;
            n--;
        }
    }
    return false;
}

static int parse_content_length(const char *v, size_t n, struct request *rq, bool *seen)
{
    uint64_t value = 0;

    if (n == 0 || n > 18)
        return 400;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 400;
        value = value * 10 + (uint64_t)(v[i] - '0');
    }
    if (*seen && value != rq->content_length)
        return 400;
    *seen = true;
    rq->content_length = value;
    return 0;
}

/* One header line [p, p+n), without its CRLF. */
static int parse_header(const char *p, size_t n, struct request *rq, bool *length_seen, bool *close,
                        bool *keep_alive)
{
    size_t name = token_len(p, n);

    if (name == 0 || name == n || p[name] != ':')
        return 400; /* also rejects obsolete line folding */
    const char *v = p + name + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vn = (size_t)(end - v);

    if (name == 14 && strncasecmp(p, "Content-Length", 14) == 0)
        return parse_content_length(v, vn, rq, length_seen);
    if (name == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0)
        return 501; /* chunked bodies are not supported: the framing is unknown */
    if (name == 10 && strncasecmp(p, "Connection", 10) == 0) {
        *close = *close || list_has(v, vn, "close");
        *keep_alive = *keep_alive || list_has(v, vn, "keep-alive");
    }
    return 0;
}

/*
 * Parse a request head [p, p+n), which ends with "\r\n\r\n".  Returns 0, or
 * the status of the error response.
 */
static int parse_head(const char *p, size_t n, struct request *rq)
{
    const char *end = p + n - 2; /* the final empty line's CRLF */
    const char *eol = memchr(p, '\r', n);
    bool length_seen = false, close = false, keep_alive = false;

    *rq = (struct request){0};
    if (eol[1] != '\n')
        return 400; /* a CR alone */
    /* Request line: method SP target SP HTTP/1.x */
    size_t method = token_len(p, (size_t)(eol - p));
    if (method == 0 || p[method] != ' ')
        return 400;
    const char *target = p + method + 1;
    const char *sp = memchr(target, ' ', (size_t)(eol - target));
    if (!sp || sp == target)
        return 400;
    const char *version = sp + 1;
    size_t vlen = (size_t)(eol - version);
    if (vlen != 8 || strncmp(version, "HTTP/", 5) != 0 || version[6] != '.')
        return 400;
    if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
        return 505;
    rq->http10 = version[7] == '0';
    rq->head = method == 4 && strncmp(p, "HEAD", 4) == 0;

    /* Header lines, up to the empty line. */
    for (const char *line = eol + 2; line < end;) {
        const char *next = memchr(line, '\r', (size_t)(end + 2 - line));
        if (next[1] != '\n')
            return 400;
        int status =
            parse_header(line, (size_t)(next - line), rq, &length_seen, &close, &keep_alive);
        if (status)
            return status;
        line = next + 2;
    }
    rq->keep_alive = !close && (!rq->http10 || keep_alive);
    return 0;
}

/*
 * Answer every complete request in the input buffer, in order, while there
 * is room for the responses.
 */
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
            size_t n = c->in_len - off;
            if (n > c->body_left)
                n = (size_t)c->body_left;
            off += n;
            c->body_left -= n;
            if (c->body_left > 0)
                break;
            respond(c, 200, &c->pending); /* the request is complete now */
            continue;
        }
        /* Empty lines before a request line are ignored (RFC 9112, 2.2). */
        while (c->in_len - off >= 2 && c->in[off] == '\r' && c->in[off + 1] == '\n')
            off += 2;
        const char *head = c->in + off;
        const char *end = memmem(head, c->in_len - off, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t head_len = (size_t)(end + 4 - head);
        struct request rq;
        int status = parse_head(head, head_len, &rq);
        off += head_len;
        if (status) {
            rq.keep_alive = false;
            respond(c, status, &rq);
            break;
        }
        c->pending = rq;
        c->body_left = rq.content_length;
        if (c->body_left == 0)
            respond(c, 200, &rq);
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    if (c->state == CONN_OPEN && !c->blocked && c->in_len == IN_CAP) {
        struct request rq = {0};
        respond(c, 431, &rq);
    }
}

/* ---- I/O -------------------------------------------------------------- */

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

/* Everything is sent and no more requests will be read: end politely. */
static bool conn_finish(struct conn *c)
{
    if (c->peer_done || shutdown(c->fd, SHUT_WR) < 0)
        return false;
    c->state = CONN_LINGER;
    return loop_call_later(c->srv->loop, LOOP_MS(LINGER_MS), linger_expired, c, &c->linger_timer) ==
           0;
}

/* After any event: answer what can be answered, send, and re-arm. */
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
        /* Sending made room: parse the requests that were waiting. */
        if (sent == 0 || c->state != CONN_OPEN || !c->blocked)
            break;
    }
    if (c->state == CONN_CLOSING && c->out_off == c->out_len && !conn_finish(c)) {
        conn_close(c);
        return;
    }
    if (!conn_watch(c))
        conn_close(c);
}

/* Discard input while lingering; close when the client has closed. */
static void linger_read(struct conn *c)
{
    char buf[4096];

    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(c);
        return;
    }
}

static void on_readable(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct conn *c = arg;

    (void)loop;
    (void)events;
    if (c->state == CONN_LINGER) {
        linger_read(c);
        return;
    }
    if (c->in_len == IN_CAP)
        return; /* cannot happen: a full buffer is answered with 431 */
    ssize_t n = recv(fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
    } else if (n == 0) {
        /* The client is done: answer what it sent completely, then close. */
        c->peer_done = true;
        c->state = CONN_CLOSING;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return;
    } else {
        conn_close(c);
        return;
    }
    conn_progress(c);
}

static void on_writable(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    conn_progress(arg);
}

static void conn_open(struct server *srv, int fd)
{
    struct conn *c = malloc(sizeof *c);
    int one = 1;

    if (!c) {
        close(fd); /* out of memory: refuse this client, keep serving */
        return;
    }
    memset(c, 0, offsetof(struct conn, in));
    c->srv = srv;
    c->fd = fd;
    c->next = srv->conns;
    if (c->next)
        c->next->prev = c;
    srv->conns = c;
    /* Responses are whole writes: do not let Nagle hold them back. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!conn_watch(c))
        conn_close(c);
}

/* ---- The listener ----------------------------------------------------- */

static void on_accept(loop_t *loop, int fd, unsigned events, void *arg);

static void resume_accepting(loop_t *loop, void *arg)
{
    struct server *srv = arg;

    if (loop_add_reader(loop, srv->listen_fd, on_accept, srv) == 0)
        srv->accepting = true;
    else
        example_check(loop_call_later(loop, LOOP_MS(ACCEPT_RETRY_MS), resume_accepting, srv, NULL),
                      "call_later");
}

/*
 * Out of fds (or memory): the pending connection would make the listener
 * readable again at once, so stop watching it for a while rather than spin.
 * The clients wait in the backlog and are served when fds are free again.
 */
static void pause_accepting(struct server *srv, int err)
{
    if (srv->accepting) {
        fprintf(stderr, "http_hello: accept: %s; pausing for %d ms\n", strerror(err),
                ACCEPT_RETRY_MS);
        loop_remove_reader(srv->loop, srv->listen_fd);
        srv->accepting = false;
    }
    example_check(loop_call_later(srv->loop, LOOP_MS(ACCEPT_RETRY_MS), resume_accepting, srv, NULL),
                  "call_later");
}

static void on_accept(loop_t *loop, int fd, unsigned events, void *arg)
{
    struct server *srv = arg;

    (void)loop;
    (void)events;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd >= 0) {
            conn_open(srv, cfd);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            pause_accepting(srv, errno);
            return;
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case EPERM:
            continue; /* that client is gone or refused; try the next */
        default:
            /* Network errors of the new connection (accept(2)): next one. */
            if (errno == ENETDOWN || errno == ENOPROTOOPT || errno == EHOSTDOWN ||
                errno == EHOSTUNREACH || errno == EOPNOTSUPP || errno == ENETUNREACH)
                continue;
            fprintf(stderr, "http_hello: accept: %s\n", strerror(errno));
            return;
        }
    }
}

/* SIGINT or SIGTERM, delivered on the loop thread: stop, then clean up. */
static void on_signal(loop_t *loop, void *arg)
{
    (void)arg;
    loop_stop(loop);
}

static int parse_port(const char *s)
{
    char *end;
    unsigned long port;

    if (!s)
        return 8080;
    errno = 0;
    port = strtoul(s, &end, 10);
    if (errno || end == s || *end || port > 65535 || s[0] == '-' || s[0] == '+') {
        fprintf(stderr, "http_hello: bad port '%s' (want 0 to 65535)\n", s);
        exit(2);
    }
    return (int)port;
}

static int listen_on(int port, unsigned *bound)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof addr;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        fprintf(stderr, "http_hello: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        exit(EXIT_FAILURE);
    }
    *bound = ntohs(addr.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    const char *port_arg;
    loop_t *loop = example_start(argc, argv, "[--virtual-time] [PORT]", &port_arg);
    struct server srv = {.loop = loop, .accepting = true};

    unsigned port;

    srv.listen_fd = listen_on(parse_port(port_arg), &port);
    example_check(loop_add_signal(loop, SIGINT, on_signal, NULL), "add_signal");
    example_check(loop_add_signal(loop, SIGTERM, on_signal, NULL), "add_signal");
    example_check(loop_add_reader(loop, srv.listen_fd, on_accept, &srv), "add_reader");
    /* Printed last: once it is out, the server is ready and holds all its fds. */
    printf("Serving on http://127.0.0.1:%u/\n", port);

    int err = loop_run(loop);
    if (err < 0)
        fprintf(stderr, "http_hello: loop_run: %s\n", loop_strerror(err));

    while (srv.conns)
        conn_close(srv.conns);
    if (srv.accepting)
        loop_remove_reader(loop, srv.listen_fd);
    close(srv.listen_fd);
    loop_free(loop);
    return err < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
