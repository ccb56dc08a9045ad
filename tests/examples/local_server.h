/*
 * A server process for the adapter suites (nginx, dnsmasq): started on a
 * free loopback port with its files in a temporary directory of its own,
 * ready when its TCP port accepts, stopped by its pid on every way out
 * (the suite's teardown, the watchdog, and the kernel if the suite dies:
 * PR_SET_PDEATHSIG).  Plain C plus cmocka's fail_msg.
 *
 *     struct local_server s;
 *     server_dir(&s, "nginx");                    // s.dir: a new temp dir
 *     ...write s.dir/nginx.conf with port s.port...
 *     server_start(&s, argv);                     // 0, or -EADDRINUSE: pick a new port
 *     ...
 *     server_stop(&s);                            // SIGTERM, then SIGKILL; reaped
 *     server_dir_remove(&s);
 */
#ifndef TESTS_LOCAL_SERVER_H
#define TESTS_LOCAL_SERVER_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SERVER_READY_TRIES 1000 /* 5 ms apart: a server gets 5 s to listen */

struct local_server {
    char dir[64];  /* its temporary directory */
    char log[128]; /* dir/server.log: its stdout and stderr */
    int port;
    pid_t pid; /* 0 when not running */
};

/* Find program in PATH, /usr/sbin or /sbin (servers live there); the path, or false. */
static inline bool server_find_program(const char *name, char *path, size_t size)
{
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin", getenv("PATH") ? getenv("PATH") : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, size, "%s/%s", d, name);
        if (access(path, X_OK) == 0)
            return true;
    }
    return false;
}

/* A loopback port free for both TCP and UDP a moment ago. */
static inline int server_free_port(void)
{
    for (;;) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (t < 0 || u < 0 || bind(t, (struct sockaddr *)&a, sizeof(a)) != 0 ||
            getsockname(t, (struct sockaddr *)&a, &len) != 0)
            fail_msg("cannot find a free port: %s", strerror(errno));
        bool udp_free = bind(u, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(t);
        close(u);
        if (udp_free)
            return ntohs(a.sin_port);
    }
}

/* Make s->dir, a new temporary directory for a server called name. */
static inline void server_dir(struct local_server *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/loop_%s.XXXXXX", name);
    if (mkdtemp(s->dir) == NULL)
        fail_msg("mkdtemp: %s", strerror(errno));
    snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
}

/* Write text into s->dir/name. */
static inline void server_write_file(const struct local_server *s, const char *name,
                                     const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", s->dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        fail_msg("cannot write %s: %s", path, strerror(errno));
}

/* Does the server's log contain text? */
static inline bool server_log_has(const struct local_server *s, const char *text)
{
    char line[1024];
    bool found = false;
    FILE *f = fopen(s->log, "r");
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return found;
}

static inline void server_dump_log(const struct local_server *s)
{
    char line[1024];
    FILE *f = fopen(s->log, "r");
    fprintf(stderr, "---- %s:\n", s->log);
    while (f && fgets(line, sizeof(line), f))
        fputs(line, stderr);
    if (f)
        fclose(f);
}

static inline bool server_accepts(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/*
 * Run argv (argv[0] a full path) with its output in s->log, and wait until
 * s->port accepts TCP connections.  Returns 0; -EADDRINUSE if the server
 * exited saying its address was taken (pick a new port and try again);
 * fails the test for anything else.
 */
static inline int server_start(struct local_server *s, char *const argv[])
{
    pid_t parent = getpid();
    int status;

    fflush(NULL);
    s->pid = fork();
    if (s->pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || chdir(s->dir) != 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; i < SERVER_READY_TRIES; i++) {
        if (server_accepts(s->port))
            return 0;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            if (server_log_has(s, "in use"))
                return -EADDRINUSE;
            server_dump_log(s);
            fail_msg("%s exited (status 0x%x) before listening", argv[0], status);
        }
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    server_dump_log(s);
    fail_msg("%s did not listen on port %d in time", argv[0], s->port);
    return -ETIMEDOUT;
}

/* Kill the server with signo and reap it (SIGKILL after 5 s of SIGTERM). */
static inline void server_kill(struct local_server *s, int signo)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT); /* a stopped server cannot act on SIGTERM */
    kill(s->pid, signo);
    for (int i = 0; i < 500; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

static inline void server_stop(struct local_server *s)
{
    server_kill(s, SIGTERM);
}

/* Remove s->dir and the files in it. */
static inline void server_dir_remove(struct local_server *s)
{
    char path[512];
    DIR *d = s->dir[0] ? opendir(s->dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
        if (unlink(path) != 0)
            rmdir(path); /* the empty temporary directories nginx makes */
    }
    if (d) {
        closedir(d);
        rmdir(s->dir);
    }
    s->dir[0] = '\0';
}

#endif /* TESTS_LOCAL_SERVER_H */
