/*
 * daemon_check: examples/daemon, driven as its users would drive it.
 *
 *   usage: daemon_check SCENARIO DAEMON
 *
 * Each scenario starts DAEMON with a config file and a control socket in a
 * fresh temporary directory, talks to the socket, sends signals, and checks
 * the replies, the log and the exit status:
 *
 *   sighup_sigterm  status answers; SIGHUP after a config change reloads it
 *                   and logs each change; SIGTERM exits 0, socket removed
 *   stop_command    `stop` on the socket answers "ok stopping", exits 0
 *   sigint          SIGINT shuts down like SIGTERM: exit 0
 *   inflight        SIGTERM while a job runs: no new connections, idle ones
 *                   closed, the job finishes, then exit 0
 *   bad_reload      SIGHUP with a broken config logs why, keeps the old one
 *   log_rotation    SIGHUP reopens --log FILE after it was renamed away
 *   second_signal   a second SIGTERM during a shutdown gives up: exit 1
 *   usage           bad command lines exit 2, an unreadable config exits 1
 *
 * Nothing here asserts on time: waits poll for a condition, and a watchdog
 * (tests/support/watchdog.h) turns a hang into a failure that says what it
 * was waiting for, and kills the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/watchdog.h"

#define WATCHDOG_SECONDS 60

static const char *daemon_path;
static char dir[64], config_path[128], socket_path[128], log_path[128];
static pid_t daemon_pid = -1;

/* ---- plumbing ---------------------------------------------------------- */

static void cleanup(void)
{
    if (daemon_pid > 0)
        kill(daemon_pid, SIGKILL);
    unlink(config_path);
    unlink(socket_path);
    unlink(log_path);
    char rotated[160];
    snprintf(rotated, sizeof(rotated), "%s.1", log_path);
    unlink(rotated);
    rmdir(dir);
}

static void dump_log(void)
{
    FILE *f = fopen(log_path, "r");
    if (!f)
        return;
    fprintf(stderr, "---- the daemon's log:\n");
    char line[512];
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "daemon_check: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    dump_log();
    cleanup();
    exit(1);
}

/* When the watchdog fires: no daemon outlives the check. */
static void kill_daemon(void)
{
    if (daemon_pid > 0)
        kill(daemon_pid, SIGKILL);
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void write_file(const char *path, const char *text)
{
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        fail("cannot write %s: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0) /* atomically: the daemon never reads half a file */
        fail("rename %s: %s", tmp, strerror(errno));
}

static char *read_file(const char *path)
{
    static char buf[1 << 20];
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* ---- the daemon ---------------------------------------------------------- */

/* Start the daemon; logs go to log_path either through --log or stderr. */
static void start_daemon(bool use_log_option)
{
    daemon_pid = fork();
    if (daemon_pid < 0)
        fail("fork: %s", strerror(errno));
    if (daemon_pid == 0) {
        if (!use_log_option) {
            int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (fd < 0 || dup2(fd, 2) < 0)
                _exit(126);
        }
        if (use_log_option)
            execl(daemon_path, "daemon", "--config", config_path, "--socket", socket_path, "--log",
                  log_path, (char *)NULL);
        else
            execl(daemon_path, "daemon", "--config", config_path, "--socket", socket_path,
                  (char *)NULL);
        _exit(127);
    }
}

/* Wait for the daemon to exit; its exit status (or 128 + signal). */
static int wait_daemon(void)
{
    watchdog_what("the daemon to exit");
    int status;
    pid_t r;
    do
        r = waitpid(daemon_pid, &status, 0);
    while (r < 0 && errno == EINTR);
    if (r != daemon_pid)
        fail("waitpid: %s", strerror(errno));
    daemon_pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void send_signal(int signo)
{
    if (kill(daemon_pid, signo) != 0)
        fail("kill(%d): %s", signo, strerror(errno));
}

/* Connect to the control socket: the fd, or -1 with errno set. */
static int try_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail("socket: %s", strerror(errno));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, socket_path);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int connect_when_ready(void)
{
    watchdog_what("the control socket to accept a connection");
    for (;;) {
        int fd = try_connect();
        if (fd >= 0)
            return fd;
        int status;
        if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
            daemon_pid = -1;
            fail("the daemon exited (status 0x%x) before its socket was ready", status);
        }
        pause_ms(10);
    }
}

/* Send text, finish our side, and read the whole answer until the daemon closes. */
static char *talk(const char *text)
{
    static char buf[8192];
    int fd = connect_when_ready();
    watchdog_what("a reply on the control socket");
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len)
        fail("write to the control socket: %s", strerror(errno));
    shutdown(fd, SHUT_WR);
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    return buf;
}

static void expect_contains(const char *what, const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail("%s: no \"%s\" in:\n%s", what, needle, text);
}

/* Ask for status until it contains needle. */
static char *wait_status(const char *needle, const char *why)
{
    for (;;) {
        char *r = talk("status\n");
        if (strncmp(r, "ok ", 3) != 0)
            fail("status: bad reply: %s", r);
        if (strstr(r, needle))
            return r;
        watchdog_what(why);
        pause_ms(10);
    }
}

/* The number after " key=" in a status reply. */
static unsigned long long status_number(const char *reply, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), " %s=", key);
    const char *p = strstr(reply, pat);
    if (!p)
        fail("status: no %s in: %s", key, reply);
    return strtoull(p + strlen(pat), NULL, 10);
}

/* Ask for status until the number `key` is at least `min`. */
static void wait_status_at_least(const char *key, unsigned long long min, const char *why)
{
    for (;;) {
        char *r = talk("status\n");
        if (strncmp(r, "ok ", 3) != 0)
            fail("status: bad reply: %s", r);
        if (status_number(r, key) >= min)
            return;
        watchdog_what(why);
        pause_ms(10);
    }
}

static void wait_log(const char *path, const char *needle, const char *why)
{
    watchdog_what(why);
    for (;;) {
        const char *t = read_file(path);
        if (t && strstr(t, needle))
            return;
        pause_ms(10);
    }
}

/* In the log, `first` appears, and `then` appears after it. */
static void expect_log_order(const char *log, const char *first, const char *then)
{
    const char *a = strstr(log, first);
    if (!a)
        fail("log: no \"%s\"", first);
    if (!strstr(a + strlen(first), then))
        fail("log: no \"%s\" after \"%s\"", then, first);
}

static void expect_exit(int want)
{
    int got = wait_daemon();
    if (got != want)
        fail("the daemon exited with %d, want %d", got, want);
}

static void expect_socket_gone(void)
{
    struct stat sb;
    if (lstat(socket_path, &sb) == 0)
        fail("%s still exists after the daemon exited", socket_path);
}

/* ---- scenarios ----------------------------------------------------------- */

static void sighup_sigterm(void)
{
    write_file(config_path, "# the first config\nname = alpha\ninterval_ms = 20\n");
    start_daemon(false);
    char *r = talk("status\n");
    expect_contains("status", r, "ok name=alpha ");
    expect_contains("status", r, " uptime_ms=");
    expect_contains("status", r, " interval_ms=20 ");
    expect_contains("status", r, " iterations=");
    expect_contains("status", r, " polls=");
    expect_contains("status", r, " callbacks=");
    expect_contains("status", r, " wait_ns=");
    expect_contains("status", r, " busy_ns=");
    r = talk("nonsense\n");
    expect_contains("unknown command", r, "error unknown command 'nonsense'");
    wait_status_at_least("jobs", 2, "the periodic job to run twice");

    write_file(config_path, "name = beta\ninterval_ms = 30\njob_ms = 1\n");
    send_signal(SIGHUP);
    wait_status("ok name=beta ", "the new config to show in status");
    r = wait_status(" interval_ms=30 ", "the new period to show in status");
    wait_log(log_path, "(beta) done", "a job run under the new config");

    send_signal(SIGTERM);
    expect_exit(0);
    expect_socket_gone();
    const char *log = read_file(log_path);
    expect_contains("log", log, "started: name=alpha interval_ms=20");
    expect_contains("log", log, "job 1 (alpha) done");
    expect_log_order(log, "SIGHUP: reloading", "config: name alpha -> beta");
    expect_contains("log", log, "config: interval_ms 20 -> 30");
    expect_contains("log", log, "config: job_ms 0 -> 1");
    expect_contains("log", log, "config: reloaded from");
    expect_contains("log", log, "3 changes");
    expect_log_order(log, "SIGTERM: shutting down", "shutdown complete");
    expect_contains("log", log, "exiting with status 0");
}

static void stop_command(void)
{
    write_file(config_path, "name = gamma\ninterval_ms = 1000\n");
    start_daemon(true);
    char *r = talk("status\n");
    expect_contains("status", r, "ok name=gamma ");
    /* One connection, two commands: the reply to each, then the close. */
    r = talk("status\nstop\n");
    expect_contains("status then stop", r, "ok name=gamma ");
    expect_contains("status then stop", r, "\nok stopping\n");
    expect_exit(0);
    expect_socket_gone();
    const char *log = read_file(log_path);
    expect_log_order(log, "control: stop requested", "stop command: shutting down");
    expect_log_order(log, "stop command: shutting down", "shutdown complete");
}

static void sigint(void)
{
    write_file(config_path, "interval_ms = 50\n");
    start_daemon(false);
    expect_contains("status", talk("status\n"), "ok name=daemon ");
    send_signal(SIGINT);
    expect_exit(0);
    expect_socket_gone();
    expect_log_order(read_file(log_path), "SIGINT: shutting down", "shutdown complete");
}

/*
 * One run of `inflight` with a job of job_ms; false if it proved nothing
 * because the job was over before SIGTERM came (a machine so loaded that
 * the few status round trips below took longer than the job).
 */
static bool inflight_try(unsigned job_ms)
{
    char config[160];
    snprintf(config, sizeof(config),
             "name = slow\ninterval_ms = 10\njob_ms = %u\nshutdown_ms = 600000\n", job_ms);
    write_file(config_path, config);
    unlink(log_path);
    watchdog_start("the scenario to start", WATCHDOG_SECONDS);
    /* The first job starts after 10 ms and takes job_ms: SIGTERM comes
     * while it runs (status just said so), unless the machine stalls. */
    start_daemon(true);
    wait_status(" jobs=0 job_running=1 ", "the first job to be running");
    /* A client that never says anything, accepted (counted) before SIGTERM. */
    int idle = connect_when_ready();
    wait_status(" connections=2 ", "the idle connection to be accepted");
    send_signal(SIGTERM);
    wait_log(log_path, "SIGTERM: shutting down", "the daemon to log its shutdown");

    /* Not accepting any more: the socket is closed and its file removed. */
    int fd = try_connect();
    if (fd >= 0)
        fail("a connection was accepted during the shutdown");
    /* The idle client is closed without waiting for it. */
    watchdog_what("the idle connection to be closed");
    char c;
    if (read(idle, &c, 1) != 0)
        fail("the idle connection got data or an error instead of EOF");
    close(idle);

    expect_exit(0);
    const char *log = read_file(log_path);
    const char *term = strstr(log, "SIGTERM: shutting down");
    const char *done = strstr(log, "job 1 (slow) done");
    if (done && term && done < term)
        return false;
    expect_contains("log", log, "SIGTERM: shutting down, waiting for the running job");
    expect_log_order(log, "SIGTERM: shutting down", "job 1 (slow) done");
    expect_log_order(log, "job 1 (slow) done", "shutdown complete");
    if (strstr(log, "job 2 (slow) done"))
        fail("a job started after the shutdown began");
    return true;
}

static void inflight(void)
{
    unsigned job_ms = 2000;
    while (!inflight_try(job_ms)) {
        if (job_ms >= 32000)
            fail("the job was over before SIGTERM, even when it took %u ms", job_ms);
        job_ms *= 4;
        fprintf(stderr, "daemon_check: the job ended before SIGTERM came; again with %u ms\n",
                job_ms);
    }
}

static void bad_reload(void)
{
    write_file(config_path, "name = keep\ninterval_ms = 1000\n");
    start_daemon(false);
    expect_contains("status", talk("status\n"), "ok name=keep ");
    write_file(config_path, "name = lost\ninterval_ms = soon\n");
    send_signal(SIGHUP);
    wait_log(log_path, "config: reload failed", "the reload to fail");
    expect_contains("status", talk("status\n"), "ok name=keep ");
    write_file(config_path, "name = keep\ninterval_ms = 1000\ncolour = blue\n");
    send_signal(SIGHUP);
    wait_log(log_path, "unknown key 'colour'", "the second reload to fail");
    expect_contains("status", talk("status\n"), "ok name=keep ");
    send_signal(SIGTERM);
    expect_exit(0);
    const char *log = read_file(log_path);
    expect_contains("log", log, ":2: bad value for 'interval_ms'; keeping the old config");
}

static void log_rotation(void)
{
    write_file(config_path, "name = rot\ninterval_ms = 1000\n");
    start_daemon(true);
    expect_contains("status", talk("status\n"), "ok name=rot ");
    char rotated[160];
    snprintf(rotated, sizeof(rotated), "%s.1", log_path);
    if (rename(log_path, rotated) != 0)
        fail("rename the log: %s", strerror(errno));
    send_signal(SIGHUP);
    wait_log(log_path, "config: reloaded", "the reopened log to get the reload's lines");
    send_signal(SIGTERM);
    expect_exit(0);
    expect_contains("old log", read_file(rotated), "started: name=rot");
    expect_contains("new log", read_file(log_path), "shutdown complete");
    unlink(rotated);
}

static void second_signal(void)
{
    write_file(config_path, "name = stuck\ninterval_ms = 10\njob_ms = 600000\n");
    start_daemon(true);
    wait_status(" job_running=1 ", "a job to be running");
    send_signal(SIGTERM);
    wait_log(log_path, "SIGTERM: shutting down", "the first SIGTERM to be handled");
    send_signal(SIGTERM);
    expect_exit(1);
    const char *log = read_file(log_path);
    expect_contains("log", log, "second signal: dropping 0 connections and the running job");
    expect_contains("log", log, "exiting with status 1");
    if (strstr(log, "shutdown complete"))
        fail("a forced shutdown logged a complete one");
}

static int run_quiet(const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execv(daemon_path, (char *const *)argv);
        _exit(127);
    }
    daemon_pid = pid;
    return wait_daemon();
}

static void usage(void)
{
    const char *const none[] = {"daemon", NULL};
    const char *const no_socket[] = {"daemon", "--config", config_path, NULL};
    const char *const dangling[] = {"daemon", "--config", NULL};
    const char *const unknown[] = {"daemon", "--frobnicate", NULL};
    const char *const missing[] = {"daemon",   "--config",  "/nonexistent/daemon.conf",
                                   "--socket", socket_path, NULL};
    write_file(config_path, "name = x\n");
    if (run_quiet(none) != 2 || run_quiet(no_socket) != 2 || run_quiet(dangling) != 2 ||
        run_quiet(unknown) != 2)
        fail("a bad command line did not exit 2");
    if (run_quiet(missing) != 1)
        fail("a missing config file did not exit 1");
    expect_socket_gone();
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*run)(void);
    } scenarios[] = {
        {"sighup_sigterm", sighup_sigterm},
        {"stop_command", stop_command},
        {"sigint", sigint},
        {"inflight", inflight},
        {"bad_reload", bad_reload},
        {"log_rotation", log_rotation},
        {"second_signal", second_signal},
        {"usage", usage},
    };
    if (argc != 3) {
        fprintf(stderr, "usage: daemon_check SCENARIO DAEMON\n");
        return 2;
    }
    daemon_path = argv[2];
    void (*run)(void) = NULL;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        if (strcmp(argv[1], scenarios[i].name) == 0)
            run = scenarios[i].run;
    if (!run) {
        fprintf(stderr, "daemon_check: unknown scenario '%s'\n", argv[1]);
        return 2;
    }
    snprintf(dir, sizeof(dir), "/tmp/daemon_check.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(config_path, sizeof(config_path), "%s/daemon.conf", dir);
    snprintf(socket_path, sizeof(socket_path), "%s/control.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/daemon.log", dir);
    signal(SIGPIPE, SIG_IGN);
    watchdog_on_fire(kill_daemon);
    watchdog_start("the scenario to start", WATCHDOG_SECONDS);
    run();
    watchdog_stop();
    cleanup();
    printf("daemon_check %s: ok\n", argv[1]);
    return 0;
}
