/*
 * redis_check: examples/adapters/hiredis/redis_demo against a real
 * redis-server that this program starts, on a free loopback port, and
 * always stops.
 *
 *   usage: redis_check SCENARIO REDIS_DEMO
 *          redis_check --skip REASON      (says why, exits 77: skipped)
 *
 *   pipeline         1000 INCRs at once: every reply right, in order; the
 *                    server saw exactly 1000 INCRs and is left empty; a
 *                    clean disconnect, exit 0, no fd left open
 *   pipeline_large   the same with 200000 INCRs, more than the socket
 *                    buffers hold: hiredis must wait to write, many times
 *   idle_between     one INCR every 5 ms from a timer: the loop must sleep
 *                    between them (a few iterations per command, where a
 *                    socket still watched for writing spins the loop)
 *   server_killed    while a timer keeps sending, the server is stopped after
 *                    the first reply and killed once a command has reached
 *                    it: the demo reports the lost connection through the
 *                    disconnect callback, the commands in flight get no
 *                    reply, and it exits 1, promptly, with no fd left open
 *   connect_refused  a port nobody listens on: the connect callback reports
 *                    "Connection refused", exit 1, no fd left open
 *   command_timeout  (hiredis >= 1.0) with --timeout, one INCR every 500 ms:
 *                    the timeout fires idle after each reply, and after the
 *                    first reply the server is stopped (SIGSTOP): the next
 *                    command's re-armed timeout must report "Timeout"
 *
 * Exits 77 (ctest's skip) when redis-server is not installed.  The server
 * is stopped on every way out: at exit, on failure, by the watchdog, and by
 * the kernel if this program is killed (PR_SET_PDEATHSIG).
 */
#include <arpa/inet.h>
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

#define SKIP 77
#define WATCHDOG_SECONDS 100
#define DEMO_DEADLINE_MS 30000 /* far above what any scenario takes */
#define READY_TRIES 500        /* 10 ms apart: redis-server gets 5 s to answer */

static const char *demo_path;
static pid_t redis_pid = -1, demo_pid = -1;
static int redis_port;
static char redis_log[] = "/tmp/redis_check.XXXXXX";
static bool have_log;

/* ---- plumbing ---------------------------------------------------------- */

static void stop_redis(void)
{
    if (redis_pid <= 0)
        return;
    kill(redis_pid, SIGCONT); /* a stopped server cannot act on SIGTERM */
    kill(redis_pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(redis_pid, NULL, WNOHANG) == redis_pid) {
            redis_pid = -1;
            return;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = -1;
}

static void cleanup(void)
{
    if (demo_pid > 0) {
        kill(demo_pid, SIGKILL);
        waitpid(demo_pid, NULL, 0);
        demo_pid = -1;
    }
    stop_redis();
    if (have_log)
        unlink(redis_log);
}

static void dump_redis_log(void)
{
    char buf[4096];
    FILE *f = have_log ? fopen(redis_log, "r") : NULL;
    if (!f)
        return;
    fprintf(stderr, "---- redis-server's output:\n");
    while (fgets(buf, sizeof(buf), f))
        fputs(buf, stderr);
    fclose(f);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "redis_check: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    dump_redis_log();
    exit(1); /* cleanup() runs at exit */
}

static void on_alarm(int signo)
{
    static const char msg[] = "redis_check: FAIL: watchdog: the scenario hung\n";
    (void)signo;
    ssize_t n = write(2, msg, sizeof(msg) - 1);
    (void)n;
    if (demo_pid > 0)
        kill(demo_pid, SIGKILL);
    if (redis_pid > 0)
        kill(redis_pid, SIGKILL);
    _exit(1);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A loopback port that was free a moment ago (bind to 0, read, close). */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        fail("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* In the child: die with this program, even if it is killed. */
static void die_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
}

/* ---- the server ---------------------------------------------------------- */

static bool redis_installed(void)
{
    const char *path = getenv("PATH");
    char dir[4096], file[4200];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof(dir), "%.*s", (int)n, path);
        snprintf(file, sizeof(file), "%s/redis-server", n ? dir : ".");
        if (access(file, X_OK) == 0)
            return true;
        path += n + (path[n] == ':');
    }
    return false;
}

/*
 * Send one inline command on a fresh connection and read the reply into
 * buf; false if the server is not answering (yet).
 */
static bool redis_query(const char *command, char *buf, size_t size)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)redis_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    size_t got = 0;
    bool ok = false;

    if (fd < 0)
        fail("socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        goto out;
    if (write(fd, command, strlen(command)) != (ssize_t)strlen(command))
        goto out;
    /* A one-line reply ends at its "\r\n"; a bulk string ("$LEN\r\n") has
     * LEN bytes and a "\r\n" after that line. */
    while (got + 1 < size) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 2000) != 1)
            goto out;
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n <= 0)
            goto out;
        got += (size_t)n;
        buf[got] = '\0';
        const char *eol = strstr(buf, "\r\n");
        if (eol && buf[0] != '$') {
            ok = true;
            break;
        }
        if (eol && (size_t)(eol + 2 - buf) + strtoul(buf + 1, NULL, 10) + 2 <= got) {
            ok = true;
            break;
        }
    }
out:
    close(fd);
    return ok;
}

/* Start redis-server on a free port; false if that port was taken meanwhile. */
static bool try_start_redis(void)
{
    char port[16], reply[64];
    pid_t parent = getpid();

    redis_port = free_port();
    snprintf(port, sizeof(port), "%d", redis_port);
    redis_pid = fork();
    if (redis_pid < 0)
        fail("fork: %s", strerror(errno));
    if (redis_pid == 0) {
        die_with_parent(parent);
        int fd = open(redis_log, O_WRONLY | O_TRUNC);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || chdir("/tmp") != 0)
            _exit(126);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < READY_TRIES; i++) {
        int status;
        if (redis_query("PING\r\n", reply, sizeof(reply))) {
            if (strcmp(reply, "+PONG\r\n") != 0)
                fail("PING answered %s", reply);
            return true;
        }
        if (waitpid(redis_pid, &status, WNOHANG) == redis_pid) {
            redis_pid = -1;
            FILE *f = fopen(redis_log, "r");
            char line[512];
            bool in_use = false;
            while (f && fgets(line, sizeof(line), f))
                in_use = in_use || strstr(line, "Address already in use");
            if (f)
                fclose(f);
            if (in_use)
                return false;
            fail("redis-server exited (status 0x%x) before answering", status);
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    fail("redis-server did not answer PING within %d tries", READY_TRIES);
}

static void start_redis(void)
{
    int fd = mkstemp(redis_log);
    if (fd < 0)
        fail("mkstemp: %s", strerror(errno));
    close(fd);
    have_log = true;
    for (int attempt = 0; attempt < 5; attempt++)
        if (try_start_redis()) {
            printf("redis-server (pid %ld) answers on 127.0.0.1:%d\n", (long)redis_pid, redis_port);
            return;
        }
    fail("redis-server found its port taken five times");
}

/* ---- the demo ------------------------------------------------------------ */

struct run {
    char out[1 << 16], err[1 << 16];
    size_t nout, nerr;
    int status; /* exit status, or 128 + signal */
};

/*
 * Run the demo with args (after the program name; NULL-terminated), giving
 * it DEMO_DEADLINE_MS to exit.  When its stdout first contains `trigger`,
 * call action() once.
 */
static void run_demo(struct run *r, const char *const *args, const char *trigger,
                     void (*action)(void))
{
    const char *argv[16] = {"redis_demo"};
    int out[2], err[2];
    pid_t parent = getpid();
    bool triggered = false;
    uint64_t deadline = now_ms() + DEMO_DEADLINE_MS;

    for (int i = 0; args[i] && i < 14; i++)
        argv[i + 1] = args[i];
    memset(r, 0, sizeof(*r));
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
        fail("pipe: %s", strerror(errno));
    fflush(stdout);
    demo_pid = fork();
    if (demo_pid < 0)
        fail("fork: %s", strerror(errno));
    if (demo_pid == 0) {
        die_with_parent(parent);
        if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
            _exit(126);
        execv(demo_path, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);

    struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        int64_t left = (int64_t)(deadline - now_ms());
        if (left <= 0)
            fail("the demo did not exit within %d ms:\n%.*s%.*s", DEMO_DEADLINE_MS, (int)r->nout,
                 r->out, (int)r->nerr, r->err);
        if (poll(p, 2, (int)left) < 0 && errno != EINTR)
            fail("poll: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char *buf = i ? r->err : r->out;
            size_t *n = i ? &r->nerr : &r->nout;
            ssize_t got = read(p[i].fd, buf + *n, sizeof(r->out) - 1 - *n);
            if (got <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                continue;
            }
            *n += (size_t)got;
            buf[*n] = '\0';
        }
        if (trigger && !triggered && strstr(r->out, trigger)) {
            triggered = true;
            action();
        }
    }
    int status;
    if (waitpid(demo_pid, &status, 0) != demo_pid)
        fail("waitpid: %s", strerror(errno));
    demo_pid = -1;
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("---- redis_demo exited %d; stdout:\n%s---- stderr:\n%s----\n", r->status, r->out,
           r->err);
    if (trigger && !triggered)
        fail("the demo never printed \"%s\"", trigger);
}

static void expect(const struct run *r, const char *text)
{
    if (!strstr(r->out, text) && !strstr(r->err, text))
        fail("the demo did not print \"%s\"", text);
}

static void expect_status(const struct run *r, int want)
{
    if (r->status > 128)
        fail("the demo died of signal %d", r->status - 128);
    if (r->status != want)
        fail("the demo exited %d, expected %d", r->status, want);
}

/* The demo's --check-fds line, with the same count before and after. */
static void expect_no_fd_leaked(const struct run *r)
{
    int before, after;
    const char *line = strstr(r->out, "fds: ");
    if (!line || sscanf(line, "fds: %d open before connecting, %d after", &before, &after) != 2)
        fail("the demo printed no fd counts");
    if (before <= 0 || after != before)
        fail("fds leaked: %d open before connecting, %d after disconnecting", before, after);
}

/* The number after "key=" in the demo's output. */
static unsigned long demo_number(const struct run *r, const char *key)
{
    const char *p = strstr(r->out, key);
    if (!p)
        fail("the demo printed no %s", key);
    return strtoul(p + strlen(key), NULL, 10);
}

/* What the server says about itself: its INCR count, and its key count. */
static void expect_server_saw(long incrs)
{
    char reply[8192], want[64];
    if (!redis_query("INFO commandstats\r\n", reply, sizeof(reply)))
        fail("INFO commandstats: no answer");
    snprintf(want, sizeof(want), "cmdstat_incr:calls=%ld,", incrs);
    if (!strstr(reply, want))
        fail("the server did not count %ld INCR calls:\n%s", incrs, reply);
    if (!redis_query("DBSIZE\r\n", reply, sizeof(reply)) || strcmp(reply, ":0\r\n") != 0)
        fail("the demo left keys behind: DBSIZE answered %s", reply);
}

/* ---- scenarios ----------------------------------------------------------- */

static char port_arg[16];

static void pipeline_of(long count)
{
    char n[24], want[96];
    struct run r;
    snprintf(n, sizeof(n), "%ld", count);
    start_redis();
    snprintf(port_arg, sizeof(port_arg), "%d", redis_port);
    const char *const args[] = {"--check-fds", "127.0.0.1", port_arg, n, NULL};
    run_demo(&r, args, NULL, NULL);
    expect_status(&r, 0);
    if (r.nerr)
        fail("the demo wrote to stderr");
    expect(&r, "connected to 127.0.0.1:");
    snprintf(want, sizeof(want), "%ld INCR replies: 1..%ld, in order\n", count, count);
    expect(&r, want);
    expect(&r, "SET then GET: \"hello from libloop\"\n");
    expect(&r, "disconnected cleanly\n");
    expect_no_fd_leaked(&r);
    expect_server_saw(count);
}

static void pipeline(void)
{
    pipeline_of(1000);
}

static void pipeline_large(void)
{
    pipeline_of(200000);
}

static void idle_between(void)
{
    enum { COMMANDS = 40 };
    struct run r;
    start_redis();
    snprintf(port_arg, sizeof(port_arg), "%d", redis_port);
    const char *const args[] = {"--every", "5", "--check-fds", "127.0.0.1", port_arg, "40", NULL};
    run_demo(&r, args, NULL, NULL);
    expect_status(&r, 0);
    expect(&r, "40 INCR replies: 1..40, in order\n");
    expect_no_fd_leaked(&r);
    expect_server_saw(COMMANDS);
    /*
     * Each command takes a timer iteration, a write and a read, so about
     * three; a socket left watched for writing would wake the loop at
     * once, every time, thousands of times per 5 ms.
     */
    unsigned long iterations = demo_number(&r, "iterations=");
    if (iterations > 10 * COMMANDS + 20)
        fail("%lu loop iterations for %d commands: the loop did not sleep between them", iterations,
             COMMANDS);
}

/*
 * Bytes the server has received and not read yet, on its connections
 * (/proc/net/tcp: established sockets whose local port is the server's).
 */
static unsigned long server_unread_bytes(void)
{
    char line[512];
    unsigned long total = 0;
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        fail("cannot read /proc/net/tcp: %s", strerror(errno));
    while (fgets(line, sizeof(line), f)) {
        unsigned local_port, state;
        unsigned long tx, rx;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %lx:%lx", &local_port, &state, &tx, &rx) == 4 &&
            local_port == (unsigned)redis_port && state == 1 /* TCP_ESTABLISHED */)
            total += rx;
    }
    fclose(f);
    return total;
}

/*
 * After the first reply: stop the server, wait until the demo's next
 * command has reached it unanswered, and kill it then, so that the
 * connection dies with a command in flight.
 */
static void kill_redis_mid_command(void)
{
    printf("first reply seen: stopping redis-server (pid %ld)\n", (long)redis_pid);
    if (kill(redis_pid, SIGSTOP) != 0)
        fail("SIGSTOP: %s", strerror(errno));
    for (int i = 0; server_unread_bytes() == 0; i++) {
        if (i == READY_TRIES)
            fail("no command reached the stopped server in %d tries", READY_TRIES);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    printf("a command is in flight: killing redis-server\n");
    if (kill(redis_pid, SIGKILL) != 0 || waitpid(redis_pid, NULL, 0) != redis_pid)
        fail("cannot kill redis-server: %s", strerror(errno));
    redis_pid = -1;
}

static void server_killed(void)
{
    struct run r;
    long received, total, lost;
    start_redis();
    snprintf(port_arg, sizeof(port_arg), "%d", redis_port);
    /* 5000 commands 5 ms apart would take 25 s: the kill comes long before. */
    const char *const args[] = {"--every", "5", "--check-fds", "127.0.0.1", port_arg, "5000", NULL};
    run_demo(&r, args, "first INCR reply: 1\n", kill_redis_mid_command);
    expect_status(&r, 1);
    expect(&r, "redis_demo: connection to 127.0.0.1:");
    /* Killed with unread data, the server's socket resets the connection. */
    if (!strstr(r.err, " lost: Connection reset by peer\n") &&
        !strstr(r.err, " lost: Server closed the connection\n"))
        fail("the demo did not report the lost connection");
    const char *counts = strstr(r.err, "redis_demo: ");
    while (counts && sscanf(counts, "redis_demo: %ld of %ld INCR replies received; %ld commands",
                            &received, &total, &lost) != 3)
        counts = strstr(counts + 1, "redis_demo: ");
    if (!counts)
        fail("the demo did not count its replies");
    if (lost < 1)
        fail("no command was in flight when the server died");
    expect_no_fd_leaked(&r);
}

static void connect_refused(void)
{
    char want[96];
    struct run r;
    snprintf(port_arg, sizeof(port_arg), "%d", free_port());
    const char *const args[] = {"--check-fds", "127.0.0.1", port_arg, NULL};
    run_demo(&r, args, NULL, NULL);
    expect_status(&r, 1);
    snprintf(want, sizeof(want), "redis_demo: cannot connect to 127.0.0.1:%s: Connection refused\n",
             port_arg);
    expect(&r, want);
    expect_no_fd_leaked(&r);
}

static void stop_redis_process(void)
{
    printf("first reply seen: stopping redis-server (pid %ld)\n", (long)redis_pid);
    if (kill(redis_pid, SIGSTOP) != 0)
        fail("SIGSTOP: %s", strerror(errno));
}

/*
 * One INCR every 500 ms, each with 200 ms to be answered.  Each reply
 * leaves the timeout to fire idle (nothing pending) and go stale, so every
 * command after the first re-arms a timer that already fired.  After the
 * first INCR reply the server is stopped: the next command must time out.
 */
static void command_timeout(void)
{
    struct run r;
    start_redis();
    snprintf(port_arg, sizeof(port_arg), "%d", redis_port);
    const char *const args[] = {"--every",   "500",    "--timeout", "200", "--check-fds",
                                "127.0.0.1", port_arg, "100",       NULL};
    run_demo(&r, args, "first INCR reply: 1\n", stop_redis_process);
    expect_status(&r, 1);
    expect(&r, " lost: Timeout\n");
    expect(&r, "redis_demo: 1 of 100 INCR replies received; 1 commands got no reply\n");
    expect_no_fd_leaked(&r);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(void);
        bool needs_redis;
    } scenarios[] = {
        {"pipeline", pipeline, true},
        {"pipeline_large", pipeline_large, true},
        {"idle_between", idle_between, true},
        {"server_killed", server_killed, true},
        {"connect_refused", connect_refused, false},
        {"command_timeout", command_timeout, true},
    };
    if (argc == 3 && strcmp(argv[1], "--skip") == 0) {
        printf("SKIP: %s\n", argv[2]);
        return SKIP;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: redis_check SCENARIO REDIS_DEMO | --skip REASON\n");
        return 2;
    }
    demo_path = argv[2];
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        if (strcmp(argv[1], scenarios[i].name) != 0)
            continue;
        if (scenarios[i].needs_redis && !redis_installed()) {
            printf("SKIP: redis-server is not installed (apt-get install redis-server)\n");
            return SKIP;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGALRM, on_alarm);
        atexit(cleanup);
        alarm(WATCHDOG_SECONDS);
        scenarios[i].run();
        alarm(0);
        stop_redis();
        printf("redis_check %s: ok\n", argv[1]);
        return 0;
    }
    fprintf(stderr, "redis_check: unknown scenario '%s'\n", argv[1]);
    return 2;
}
