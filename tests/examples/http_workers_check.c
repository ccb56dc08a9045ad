/*
 * http_workers_check: an HTTP hello server on 2 workers against raw-socket
 * clients: examples/http_workers, and examples/http_hello --workers.
 *
 *   usage: http_workers_check [--body TEXT] SCENARIO threads|processes
 *                             SERVER [ARG...]
 *
 * Runs "SERVER --workers 2 --mode threads|processes ARG..." where the ARGs
 * ask for a free port of 127.0.0.1 ("--port 0" for http_workers, "0" for
 * http_hello), and, as a child subreaper, adopts any worker process the
 * server would leave behind.  The server must print "worker I pid P ready"
 * for each worker, then "Serving on http://127.0.0.1:PORT/", "worker I
 * draining" when a stop reaches worker I and "worker I: N requests" with
 * the responses it sent; every 200 has the body TEXT ("Hello, World!\n"
 * unless --body says otherwise).  Scenarios:
 *
 *   protocol      pipelined GET, HEAD and GET with "Connection: close" are
 *                 answered in order, then the connection ends; a request
 *                 split in small writes, a body, HTTP/1.0 with and without
 *                 keep-alive; 400 for malformed request lines, 505 for
 *                 HTTP/2.0, 431 for a head over 8 KiB, each ending the
 *                 connection cleanly
 *   crash         (processes) 32 keep-alive clients in rounds; worker 1 is
 *                 stopped (SIGSTOP), 32 more clients connect and send a
 *                 request, until each is answered (by worker 0) or waits
 *                 in a listener's backlog (/proc/net/tcp), some of them in
 *                 worker 1's; then worker 1 is killed with SIGKILL: its
 *                 connections end, the others are answered in every later
 *                 round, the supervisor starts a new worker 1 (a new pid),
 *                 every client that waited in the killed worker's backlog
 *                 is answered (none is reset: the supervisor holds the
 *                 listeners, and the new worker 1 takes its predecessor's)
 *                 and new connections are served
 *   sigterm_load  32 clients, each always with one request in flight,
 *                 one that has sent half a request, and one idle after a
 *                 request; SIGTERM: every request gets its whole response
 *                 or the connection ends cleanly (FIN at a response
 *                 boundary, never a reset or a partial response), the half
 *                 request completed after every worker said it is draining
 *                 is answered (with "Connection: close"), the idle
 *                 connection is closed cleanly without waiting for the
 *                 drain deadline, and the requests the workers counted are
 *                 exactly the responses the clients got
 *
 * protocol and crash then wait until every process of the server (the
 * supervisor, each worker's current pid) holds exactly the fds it held
 * when it was ready, all clients having closed.  Every scenario ends with
 * SIGTERM to the server by its pid: it must exit 0, every worker pid it
 * announced must be gone, and no process may be left to this subreaper.
 * The server runs in a process group of its own, which a failing check
 * kills.  Time limits are hang detectors, not measures.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 2
#define LIMIT_MS 30000
#define BODY_MAX 64 /* room for a response body, its NUL included */
#define MAX_LINES 256

static pid_t server = -1;
static int server_out = -1; /* the server's stdout */
static char lines[MAX_LINES][160];
static int nlines;
static char partial[160];
static size_t partial_len;
static int port;
static const char *hello = "Hello, World!\n"; /* the body of a 200 */
static size_t hello_len;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (server > 0)
        kill(-server, SIGKILL); /* its process group: the workers too */
    exit(1);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- the server's output ---------------------------------------------------- */

/* Take what the server printed; wait up to ms for more.  false at its end. */
static bool read_output(int ms)
{
    struct pollfd p = {server_out, POLLIN, 0};
    char buf[512];
    if (poll(&p, 1, ms) <= 0)
        return true;
    ssize_t n = read(server_out, buf, sizeof buf);
    if (n <= 0)
        return false;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] != '\n') {
            if (partial_len < sizeof partial - 1)
                partial[partial_len++] = buf[i];
            continue;
        }
        partial[partial_len] = 0;
        if (nlines < MAX_LINES)
            snprintf(lines[nlines++], sizeof lines[0], "%s", partial);
        printf("server: %s\n", partial);
        partial_len = 0;
    }
    return true;
}

/* The index of the first line from `from` on that starts with prefix. */
static int find_line(int from, const char *prefix)
{
    for (int i = from; i < nlines; i++)
        if (strncmp(lines[i], prefix, strlen(prefix)) == 0)
            return i;
    return -1;
}

/* Wait (up to the limit) for `count` lines starting with prefix. */
static void wait_lines(const char *prefix, int count)
{
    long long end = now_ms() + LIMIT_MS;
    for (;;) {
        int seen = 0;
        for (int i = find_line(0, prefix); i >= 0; i = find_line(i + 1, prefix))
            seen++;
        if (seen >= count)
            return;
        if (now_ms() > end || !read_output(100))
            fail("the server did not print %d lines starting with '%s'", count, prefix);
    }
}

static pid_t worker_pid(int index, int nth)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "worker %d pid ", index);
    for (int i = find_line(0, prefix); i >= 0; i = find_line(i + 1, prefix)) {
        int pid;
        if (strstr(lines[i], " ready") && sscanf(lines[i] + strlen(prefix), "%d", &pid) == 1 &&
            nth-- == 0)
            return pid;
    }
    return -1;
}

/* Start exe --workers 2 --mode mode args... */
static void start_server(const char *exe, const char *mode, char **args, int nargs)
{
    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        fail("pipe: %s", strerror(errno));
    server = fork();
    if (server < 0)
        fail("fork: %s", strerror(errno));
    if (server == 0) {
        setpgid(0, 0);
        dup2(out[1], 1);
        char *argv[16] = {(char *)exe, "--workers", "2", "--mode", (char *)mode};
        for (int i = 0; i < nargs && i < 10; i++)
            argv[5 + i] = args[i];
        execv(exe, argv);
        _exit(127);
    }
    setpgid(server, server); /* as the child does: whichever runs first */
    close(out[1]);
    server_out = out[0];
    wait_lines("Serving on ", 1);
    int i = find_line(0, "Serving on ");
    if (sscanf(lines[i], "Serving on http://127.0.0.1:%d/", &port) != 1)
        fail("cannot read the port in '%s'", lines[i]);
}

/* ---- fds ------------------------------------------------------------------ */

static bool threads;              /* the mode: one process, or a supervisor and its workers */
static int base_fds[1 + WORKERS]; /* when ready: the server's, then each worker's */

/* How many fds process pid has open, -1 if it is gone. */
static int fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The process of worker i now: its latest pid (threads: the server). */
static pid_t current_worker(int i)
{
    pid_t pid = -1;
    for (int nth = 0; !threads && worker_pid(i, nth) > 0; nth++)
        pid = worker_pid(i, nth);
    return threads ? server : pid;
}

static void record_fds(void)
{
    base_fds[0] = fd_count(server);
    for (int i = 0; i < WORKERS; i++)
        base_fds[1 + i] = fd_count(current_worker(i));
}

/*
 * Once every client has closed, every process of the server must come back
 * to the fds it had when it was ready: each connection closed, nothing
 * leaked by a crash and its restart (the lingering close may take a while:
 * poll, up to the limit).
 */
static void expect_fds_back(void)
{
    long long end = now_ms() + LIMIT_MS;
    for (int i = 0; i <= WORKERS; i++) {
        pid_t pid = i == 0 ? server : current_worker(i - 1);
        int n;
        while ((n = fd_count(pid)) != base_fds[i]) {
            if (now_ms() > end)
                fail("%s (pid %d) has %d fds open, %d when it was ready",
                     i == 0 ? "the server" : "a worker", (int)pid, n, base_fds[i]);
            read_output(50);
        }
    }
    printf("ok: the server's processes hold the fds they had when ready\n");
}

/* SIGTERM by pid: exit 0, its workers gone, nothing left to us. */
static void stop_server(void)
{
    int status;
    expect_fds_back();
    if (kill(server, SIGTERM) != 0)
        fail("the server is gone before SIGTERM");
    long long end = now_ms() + LIMIT_MS;
    while (read_output(50) && now_ms() < end)
        ;
    while (waitpid(server, &status, 0) < 0)
        if (errno != EINTR)
            fail("waitpid: %s", strerror(errno));
    server = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("the server ended with status %#x after SIGTERM, not 0", status);
    for (int i = 0; i < nlines; i++) {
        int index, pid;
        if (sscanf(lines[i], "worker %d pid %d", &index, &pid) == 2 && kill(pid, 0) == 0)
            fail("worker %d (pid %d) outlived the server", index, pid);
    }
    errno = 0;
    pid_t left = waitpid(-1, NULL, WNOHANG);
    if (left != -1 || errno != ECHILD)
        fail("a process of the server was left behind (waitpid says %d)", (int)left);
    printf("ok: SIGTERM: exit 0, no worker left\n");
}

/* ---- clients ---------------------------------------------------------------- */

static int connect_server(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        fail("connect: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            fail("send: %s", strerror(errno));
        s += w;
        n -= (size_t)w;
    }
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

struct response {
    int status;
    bool close; /* "Connection: close" */
    char body[BODY_MAX];
};

/* Read one byte; 1, 0 at end of file, -1 for an error (errno). */
static int read_byte(int fd, char *c)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, LIMIT_MS) != 1)
        fail("no answer within %d ms", LIMIT_MS);
    ssize_t n = recv(fd, c, 1, 0);
    return n < 0 ? -1 : (int)n;
}

/*
 * Read one response (a HEAD's has no body): 1, or 0 for a clean end of file
 * before its first byte; anything else (a reset, a partial response) fails.
 */
static int read_response(int fd, bool head, struct response *r)
{
    char h[1024];
    size_t n = 0;
    memset(r, 0, sizeof *r);
    while (n < 4 || memcmp(h + n - 4, "\r\n\r\n", 4) != 0) {
        int got = read_byte(fd, &h[n]);
        if (got == 0 && n == 0)
            return 0;
        if (got <= 0)
            fail("response cut after %zu bytes: %s", n, got ? strerror(errno) : "end of file");
        if (++n == sizeof h)
            fail("response head too long");
    }
    h[n] = 0;
    int length = -1;
    if (sscanf(h, "HTTP/1.1 %d ", &r->status) != 1)
        fail("bad status line in '%s'", h);
    const char *cl = strcasestr(h, "\r\nContent-Length: ");
    if (!cl || sscanf(cl + 18, "%d", &length) != 1 || length >= (int)sizeof r->body)
        fail("no usable Content-Length in '%s'", h);
    r->close = strcasestr(h, "\r\nConnection: close\r\n") != NULL;
    for (int i = 0; !head && i < length; i++)
        if (read_byte(fd, &r->body[i]) != 1)
            fail("body cut after %d of %d bytes", i, length);
    return 1;
}

static void expect(int fd, bool head, int status, bool close, const char *what)
{
    struct response r;
    if (read_response(fd, head, &r) != 1)
        fail("%s: the connection ended before the response", what);
    if (r.status != status || r.close != close)
        fail("%s: got %d%s, want %d%s", what, r.status, r.close ? " close" : "", status,
             close ? " close" : "");
    if (status == 200 && !head && strcmp(r.body, hello) != 0)
        fail("%s: body '%s'", what, r.body);
}

/* After a response with "Connection: close": end of file, not a reset. */
static void expect_eof(int fd, const char *what)
{
    char c;
    int got = read_byte(fd, &c);
    if (got != 0)
        fail("%s: %s instead of end of file", what, got < 0 ? strerror(errno) : "more bytes");
    close(fd);
}

/* ---- protocol ---------------------------------------------------------------- */

static void expect_refused(const char *request, int status, const char *what)
{
    int fd = connect_server();
    send_str(fd, request);
    expect(fd, false, status, true, what);
    expect_eof(fd, what);
    printf("ok: %s: %d, then the connection ends\n", what, status);
}

static void scenario_protocol(void)
{
    int fd = connect_server();
    send_str(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(fd, false, 200, false, "pipelined GET");
    expect(fd, true, 200, false, "pipelined HEAD, answered second");
    expect(fd, false, 200, true, "pipelined GET with Connection: close, answered third");
    expect_eof(fd, "after Connection: close");
    printf("ok: pipelined requests answered in order; Connection: close honoured\n");

    fd = connect_server();
    const char *split = "GET /split HTTP/1.1\r\nHost: x\r\n\r\n";
    for (const char *p = split; *p; p++)
        send_all(fd, p, 1);
    expect(fd, false, 200, false, "a request sent a byte at a time");
    send_str(fd, "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                 "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(fd, false, 200, false, "a request with a body");
    expect(fd, false, 200, false, "the request after the body");
    close(fd);
    printf("ok: split requests and bodies on a kept-alive connection\n");

    fd = connect_server();
    send_str(fd, "GET / HTTP/1.0\r\n\r\n");
    expect(fd, false, 200, true, "HTTP/1.0");
    expect_eof(fd, "HTTP/1.0 without keep-alive");
    fd = connect_server();
    for (int i = 0; i < 2; i++) {
        send_str(fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        expect(fd, false, 200, false, "HTTP/1.0 with keep-alive");
    }
    close(fd);
    printf("ok: HTTP/1.0 closes unless asked to keep alive\n");

    expect_refused("GARBAGE\r\n\r\n", 400, "a request line without target or version");
    expect_refused("GET  / HTTP/1.1\r\n\r\n", 400, "two spaces after the method");
    expect_refused("GET / HTTP/1.1 x\r\n\r\n", 400, "words after the version");
    expect_refused("GET / HTTX/1.1\r\n\r\n", 400, "a version that is not HTTP");
    expect_refused("GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400, "a header line without a colon");
    expect_refused("GET / HTTP/2.0\r\n\r\n", 505, "HTTP/2.0 in an HTTP/1 request line");

    static char big[9200];
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'a', 8000 - (size_t)n);
    memcpy(big + 8000, "\r\n\r\n", 5);
    fd = connect_server();
    send_str(fd, big);
    expect(fd, false, 200, false, "a head just under 8 KiB");
    close(fd);
    memset(big + 8000, 'a', 1100); /* the same head, now over 8 KiB and unfinished */
    big[9100] = 0;
    expect_refused(big, 431, "a head over 8 KiB");
}

/* ---- crash --------------------------------------------------------------------- */

#define CLIENTS 32

/* One request on fd; false if the connection ended or was reset instead. */
static bool ask(int fd)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)sizeof req - 1)
        return false;
    char c;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, LIMIT_MS) != 1)
        fail("no answer within %d ms", LIMIT_MS);
    if (recv(fd, &c, 1, MSG_PEEK) <= 0)
        return false; /* end of file or reset, before any byte */
    expect(fd, false, 200, false, "a request of the load");
    return true;
}

/* The state letter of process pid ('T': stopped), 0 if it is gone. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* after the command's name */
    return p && p[1] == ' ' ? p[2] : 0;
}

/* Connections the kernel accepted on the server's port that no worker has
 * taken yet: the accept queues of its listeners, from /proc/net/tcp. */
static int queued_on_port(void)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[256];
    int total = 0;
    if (!f)
        fail("/proc/net/tcp: %s", strerror(errno));
    while (fgets(line, sizeof line, f)) {
        unsigned lport, state, tx, rx;
        if (sscanf(line, " %*d: %*X:%X %*X:%*X %X %X:%X", &lport, &state, &tx, &rx) == 4 &&
            lport == (unsigned)port && state == 0x0A) /* TCP_LISTEN: rx is the accept queue */
            total += (int)rx;
    }
    fclose(f);
    return total;
}

/*
 * With worker 1 stopped, CLIENTS clients connect and send a request each;
 * wait until each is answered (worker 0) or waits in a backlog, some in
 * worker 1's.  done[i] says which were answered.
 */
static void fill_backlog(pid_t victim, int *fds, bool *done)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    long long end = now_ms() + LIMIT_MS;
    int answered = 0, queued;
    if (victim <= 0 || kill(victim, SIGSTOP) != 0)
        fail("cannot stop worker 1 (pid %d)", (int)victim);
    while (proc_state(victim) != 'T')
        if (now_ms() > end || !read_output(10))
            fail("worker 1 did not stop");
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = connect_server();
        done[i] = false;
        send_str(fds[i], req);
    }
    while ((queued = queued_on_port()) + answered < CLIENTS || queued == 0) {
        struct pollfd p[CLIENTS];
        if (now_ms() > end)
            fail("of %d clients, %d answered and %d in a backlog: none in the stopped worker's?",
                 CLIENTS, answered, queued);
        for (int i = 0; i < CLIENTS; i++)
            p[i] = (struct pollfd){done[i] ? -1 : fds[i], POLLIN, 0};
        poll(p, CLIENTS, 50);
        for (int i = 0; i < CLIENTS; i++) {
            if (!done[i] && p[i].revents) {
                expect(fds[i], false, 200, false, "a client of the worker that runs");
                done[i] = true;
                answered++;
            }
        }
    }
    printf("worker 1 stopped: %d clients answered, %d wait in a backlog\n", answered, queued);
}

static void scenario_crash(void)
{
    int fds[CLIENTS], waiting[CLIENTS], dead = 0;
    bool answered[CLIENTS];
    pid_t victim = worker_pid(1, 0);

    for (int i = 0; i < CLIENTS; i++)
        fds[i] = connect_server();
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < CLIENTS; i++)
            if (!ask(fds[i]))
                fail("connection %d failed before any crash", i);
    fill_backlog(victim, waiting, answered);
    if (kill(victim, SIGKILL) != 0)
        fail("cannot kill worker 1 (pid %d)", (int)victim);
    printf("killed worker 1, pid %d\n", (int)victim);
    /* The victim's connections end at their first request; the others
     * must be answered in this round and every later one. */
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < CLIENTS; i++) {
            if (fds[i] < 0 || ask(fds[i]))
                continue;
            if (round > 0)
                fail("connection %d of a worker that lives failed", i);
            close(fds[i]);
            fds[i] = -1;
            dead++;
        }
    }
    if (dead == 0 || dead == CLIENTS)
        fail("%d of %d connections ended: the crash did not hit exactly one worker", dead, CLIENTS);
    printf("ok: %d connections of the killed worker ended, %d others answered 20 rounds\n", dead,
           CLIENTS - dead);
    wait_lines("worker 1 pid ", 3); /* ready, exited, ready again */
    pid_t again = worker_pid(1, 1);
    if (again <= 0 || again == victim)
        fail("worker 1 was not started again (pid %d, was %d)", (int)again, (int)victim);
    if (kill(victim, 0) == 0 || errno != ESRCH)
        fail("the killed worker %d was not reaped", (int)victim);
    for (int i = 0; i < CLIENTS; i++) {
        if (!answered[i])
            expect(waiting[i], false, 200, false, "a client in the killed worker's backlog");
        close(waiting[i]);
    }
    printf("ok: every client that waited in a backlog was answered, none reset\n");
    for (int i = 0; i < CLIENTS; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = connect_server();
    }
    for (int i = 0; i < CLIENTS; i++) {
        if (!ask(fds[i]))
            fail("new connection %d was not served after the restart", i);
        close(fds[i]);
    }
    printf("ok: worker 1 restarted as pid %d; %d new connections served\n", (int)again, CLIENTS);
}

/* ---- SIGTERM under load -------------------------------------------------------- */

#define LOAD 32

struct loaded {
    int fd;
    char buf[4096];
    size_t len;
    bool closing; /* got "Connection: close": the end of file comes next */
    long answered;
};

static const char load_req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/* Take the whole responses in c->buf; each must be a 200 with the hello body. */
static int take_responses(struct loaded *c)
{
    int n = 0;
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            return n;
        size_t head = (size_t)(end + 4 - c->buf);
        if (c->len < head + hello_len)
            return n;
        if (strncmp(c->buf, "HTTP/1.1 200 OK\r\n", 17) != 0 ||
            memcmp(c->buf + head, hello, hello_len) != 0)
            fail("a bad response under load: '%.*s'", (int)(head + hello_len), c->buf);
        if (c->closing)
            fail("a response after one that said Connection: close");
        c->closing = memmem(c->buf, head, "\r\nConnection: close\r\n", 21) != NULL;
        memmove(c->buf, c->buf + head + hello_len, c->len - head - hello_len);
        c->len -= head + hello_len;
        c->answered++;
        n++;
    }
}

/* Read what came on c; false once it has ended (cleanly: anything else fails). */
static bool pump(struct loaded *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n < 0)
        fail("a load connection failed: %s", strerror(errno));
    if (n == 0) {
        if (c->len > 0)
            fail("a response was cut: %zu bytes then end of file", c->len);
        close(c->fd);
        c->fd = -1;
        return false;
    }
    c->len += (size_t)n;
    int got = take_responses(c);
    if (got > 0 && !c->closing)
        send_str(c->fd, load_req); /* the next request: one always in flight */
    return true;
}

static void check_draining_connections(int slow, int idle)
{
    wait_lines("worker 0 draining", 1);
    wait_lines("worker 1 draining", 1);
    send_str(slow, "\r\n"); /* the rest of the head, once every worker drains */
    expect(slow, false, 200, true, "a request completed while draining");
    expect_eof(slow, "after the draining response");
    expect_eof(idle, "an idle connection when the stop came");
}

static void scenario_sigterm_load(void)
{
    static struct loaded c[LOAD];
    long total = 0;
    int open = LOAD;
    int idle = connect_server();
    send_str(idle, load_req);
    expect(idle, false, 200, false, "a request on the connection that then stays idle");
    int slow = connect_server();
    send_str(slow, "GET /slow HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < LOAD; i++) {
        c[i].fd = connect_server();
        fcntl(c[i].fd, F_SETFL, O_NONBLOCK);
        send_str(c[i].fd, load_req);
    }
    bool signalled = false;
    long long end = now_ms() + LIMIT_MS;
    while (open > 0) {
        struct pollfd p[LOAD];
        for (int i = 0; i < LOAD; i++)
            p[i] = (struct pollfd){c[i].fd, POLLIN, 0};
        if (now_ms() > end || poll(p, LOAD, LIMIT_MS) <= 0)
            fail("the load did not end");
        for (int i = 0; i < LOAD; i++) {
            long before = c[i].answered;
            if (c[i].fd >= 0 && p[i].revents && !pump(&c[i]))
                open--;
            total += c[i].answered - before;
        }
        if (!signalled && total >= 2000) {
            if (kill(server, SIGTERM) != 0)
                fail("cannot send SIGTERM");
            signalled = true;
            printf("SIGTERM after %ld responses\n", total);
            check_draining_connections(slow, idle);
        }
        read_output(0);
    }
    printf("ok: %ld responses, every one whole; every connection ended cleanly\n", total);
    total += 2; /* the idle one's and the slow one's */

    int status;
    while (read_output(100))
        ;
    while (waitpid(server, &status, 0) < 0)
        if (errno != EINTR)
            fail("waitpid: %s", strerror(errno));
    server = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("the server ended with status %#x after SIGTERM, not 0", status);
    long counted = 0;
    for (int w = 0; w < WORKERS; w++) {
        char prefix[32];
        long n;
        snprintf(prefix, sizeof prefix, "worker %d: ", w);
        int i = find_line(0, prefix);
        if (i < 0 || sscanf(lines[i] + strlen(prefix), "%ld", &n) != 1)
            fail("worker %d did not say how many requests it answered", w);
        counted += n;
    }
    if (counted != total)
        fail("the workers answered %ld requests, the clients got %ld responses", counted, total);
    printf("ok: the workers answered exactly the %ld requests the clients got\n", total);
    errno = 0;
    if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
        fail("a process of the server was left behind");
    printf("ok: exit 0, no worker left\n");
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--body") == 0) {
        hello = argv[2];
        argc -= 2;
        argv += 2;
    }
    hello_len = strlen(hello);
    if (argc < 4 || argc > 14 || hello_len == 0 || hello_len >= BODY_MAX) {
        fprintf(stderr, "usage: http_workers_check [--body TEXT] protocol|crash|sigterm_load "
                        "threads|processes SERVER [ARG...]\n");
        return 2;
    }
    /* Orphans of the server come to us: a worker it left would show. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    threads = strcmp(argv[2], "threads") == 0;
    start_server(argv[3], argv[2], argv + 4, argc - 4);
    record_fds();
    if (strcmp(argv[1], "protocol") == 0) {
        scenario_protocol();
    } else if (strcmp(argv[1], "crash") == 0) {
        scenario_crash();
    } else if (strcmp(argv[1], "sigterm_load") == 0) {
        scenario_sigterm_load();
        return 0;
    } else {
        fail("unknown scenario %s", argv[1]);
    }
    stop_server();
    return 0;
}
