/*
 * chat_check: examples/chat against real clients, for backpressure.
 *
 *   usage: chat_check CHAT
 *
 * Starts CHAT on a free port and connects three clients: A sends 30 MB of
 * 1000-byte lines as fast as the server takes them, B reads nothing at
 * first, C reads everything.  The server must stop taking A's lines (A's
 * sends stall for a second) once the kernel's socket buffers are full, long
 * before 30 MB, and its "/stats" must show
 * that no client ever had more than the high watermark (64 KiB) plus one
 * line queued.  Then B reads: every line A sent must reach B and C, in
 * order, none dropped; and SIGTERM must make the server exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINE 1000
#define LINES 30000
#define HIGH_WATER (64 * 1024)

static pid_t server = -1;

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chat_check: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (server > 0)
        kill(server, SIGKILL);
    exit(1);
}

static int start(const char *exe)
{
    int p[2];
    if (pipe(p))
        fail("pipe");
    server = fork();
    if (server == 0) {
        dup2(p[1], 1);
        close(p[0]);
        execl(exe, exe, "0", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char line[128] = {0};
    size_t n = 0;
    while (n < sizeof line - 1 && read(p[0], line + n, 1) == 1 && line[n] != '\n')
        n++;
    unsigned port;
    if (sscanf(line, "Serving on 127.0.0.1:%u", &port) != 1)
        fail("no port from the server: %s", line);
    close(p[0]);
    return (int)port;
}

static int client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS)
        fail("connect: %s", strerror(errno));
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    if (poll(&pf, 1, 10000) != 1)
        fail("connect timed out");
    return fd;
}

/* A reader that checks the lines it gets: LINE bytes, the sequence number
 * first, in order. */
struct reader {
    int fd;
    char buf[LINE + 256];
    size_t len;
    int lines;
    char stats[256]; /* the last "/stats" answer */
};

static void read_some(struct reader *r)
{
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, MSG_DONTWAIT);
    if (n == 0)
        fail("the server closed a reader");
    if (n < 0) {
        if (errno == EAGAIN)
            return;
        fail("recv: %s", strerror(errno));
    }
    r->len += (size_t)n;
    char *nl;
    while ((nl = memchr(r->buf, '\n', r->len)) != NULL) {
        size_t l = (size_t)(nl - r->buf) + 1;
        if (strncmp(r->buf, "queued ", 7) == 0) {
            memcpy(r->stats, r->buf, l < sizeof r->stats ? l : sizeof r->stats - 1);
            r->stats[l < sizeof r->stats ? l - 1 : sizeof r->stats - 1] = 0;
        } else {
            if (l != LINE || atoi(r->buf) != r->lines)
                fail("line %d arrived wrong or out of order (%zu bytes: %.20s)", r->lines, l,
                     r->buf);
            r->lines++;
        }
        memmove(r->buf, r->buf + l, r->len - l);
        r->len -= l;
    }
}

/* The sender: whole lines, numbered. */
struct sender {
    int fd, lines;
    char line[LINE];
    size_t off; /* of the current line, sent */
};

static bool send_some(struct sender *s)
{
    if (s->lines == LINES)
        return false;
    if (s->off == 0) {
        memset(s->line, 'x', LINE);
        int n = snprintf(s->line, 16, "%d ", s->lines);
        s->line[n] = 'x';
        s->line[LINE - 1] = '\n';
    }
    ssize_t n = send(s->fd, s->line + s->off, LINE - s->off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN)
            return false;
        fail("send: %s", strerror(errno));
    }
    s->off += (size_t)n;
    if (s->off == LINE) {
        s->off = 0;
        s->lines++;
    }
    return true;
}

static void ask_stats(struct reader *c)
{
    c->stats[0] = 0;
    if (send(c->fd, "/stats\n", 7, MSG_NOSIGNAL) != 7)
        fail("send /stats");
    for (int i = 0; i < 1000 && !c->stats[0]; i++) {
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        poll(&pf, 1, 10);
        read_some(c);
    }
    if (!c->stats[0])
        fail("no answer to /stats");
}

static void check_bounded(const char *when, struct reader *c)
{
    size_t now, most, n;
    ask_stats(c);
    if (sscanf(c->stats, "queued %zu %zu clients %zu", &now, &most, &n) != 3)
        fail("bad /stats answer: %s", c->stats);
    printf("chat_check: %s: %s\n", when, c->stats);
    if (most > HIGH_WATER + LINE)
        fail("%s: a client had %zu bytes queued, over %d", when, most, HIGH_WATER + LINE);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: chat_check CHAT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = start(argv[1]);
    struct sender a = {.fd = client(port)};
    static struct reader b, c;
    b.fd = client(port);
    c.fd = client(port);
    /* Everyone has joined once /stats counts three. */
    for (int i = 0; i < 100; i++) {
        ask_stats(&c);
        if (strstr(c.stats, "clients 3"))
            break;
    }
    /* A sends while C reads and B does not: A must stall. */
    for (;;) {
        struct pollfd pf[2] = {{.fd = a.fd, .events = POLLOUT}, {.fd = c.fd, .events = POLLIN}};
        if (poll(pf, 2, 1000) <= 0)
            break; /* a second without progress: A stalls */
        if (pf[1].revents)
            read_some(&c);
        if (pf[0].revents && !send_some(&a) && a.lines == LINES)
            fail("the server took all %d lines while a client read nothing", LINES);
    }
    printf("chat_check: the sender stalled after %d of %d lines\n", a.lines, LINES);
    if (a.lines == LINES)
        fail("the sender never stalled");
    check_bounded("while a client reads nothing", &c);
    /* B reads now: everything A sends reaches B and C. */
    while (b.lines < LINES || c.lines < LINES) {
        struct pollfd pf[3] = {{.fd = a.fd, .events = a.lines < LINES ? POLLOUT : 0},
                               {.fd = b.fd, .events = POLLIN},
                               {.fd = c.fd, .events = POLLIN}};
        if (poll(pf, 3, 20000) <= 0)
            fail("no progress for 20 s: B has %d lines, C %d", b.lines, c.lines);
        if (pf[0].revents)
            while (send_some(&a)) {
            }
        if (pf[1].revents)
            read_some(&b);
        if (pf[2].revents)
            read_some(&c);
    }
    printf("chat_check: all %d lines reached both readers, in order\n", LINES);
    check_bounded("after the slow reader caught up", &c);
    close(a.fd);
    close(b.fd);
    close(c.fd);
    kill(server, SIGTERM);
    int status;
    if (waitpid(server, &status, 0) != server || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("the server did not exit 0 on SIGTERM");
    printf("chat_check: the server exited 0 on SIGTERM\n");
    return 0;
}
