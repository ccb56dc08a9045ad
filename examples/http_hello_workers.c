/*
 * http_hello --workers N: options, the held port, the workers' reports
 * (see http_hello_workers.h).
 */
#include "http_hello_workers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static _Noreturn void bad_usage(const char *what)
{
    fprintf(stderr, "http_hello: %s\n", what);
    exit(2);
}

void hello_workers_take_args(int *argc, char **argv, hello_workers_args *out)
{
    bool mode_seen = false;
    int kept = 1;

    *out = (hello_workers_args){.mode = LOOP_WORKERS_PROCESSES};
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], *v = i + 1 < *argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--workers") == 0) {
            char *end;
            errno = 0;
            long n = v ? strtol(v, &end, 10) : 0;
            if (!v || errno || end == v || *end || n < 1 || n > LOOP_WORKERS_MAX)
                bad_usage("--workers wants a number from 1 to 1024");
            out->count = (unsigned)n;
            i++;
        } else if (strcmp(a, "--mode") == 0) {
            if (v && strcmp(v, "threads") == 0)
                out->mode = LOOP_WORKERS_THREADS;
            else if (v && strcmp(v, "processes") == 0)
                out->mode = LOOP_WORKERS_PROCESSES;
            else
                bad_usage("--mode wants threads or processes");
            mode_seen = true;
            i++;
        } else {
            if (strcmp(a, "--virtual-time") == 0)
                out->loop_options.clock = LOOP_CLOCK_VIRTUAL;
            argv[kept++] = argv[i];
        }
    }
    if (mode_seen && out->count == 0)
        bad_usage("--mode goes with --workers N");
    argv[kept] = NULL;
    *argc = kept;
}

/* The held port: bound, never listening (see http_hello_workers.h). */
static int held_fd = -1;
static bool processes;
static loop_workers_setup_fn *user_setup;

static int hold_port(uint16_t *port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(*port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* In a worker process the held port is the supervisor's: let it go. */
static int setup(loop_t *loop, unsigned index, void *arg)
{
    if (processes && held_fd >= 0) {
        close(held_fd);
        held_fd = -1;
    }
    return user_setup(loop, index, arg);
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
}

int hello_workers_run(loop_workers_options *o, uint16_t *port)
{
    loop_workers *w;
    const char *mode = o->mode == LOOP_WORKERS_THREADS ? "threads" : "processes";

    held_fd = hold_port(port);
    if (held_fd < 0) {
        fprintf(stderr, "http_hello: cannot listen on 127.0.0.1:%u: %s\n", *port,
                strerror(-held_fd));
        return EXIT_FAILURE;
    }
    processes = o->mode == LOOP_WORKERS_PROCESSES;
    user_setup = o->setup;
    o->setup = setup;
    o->on_event = on_event;
    int err = loop_workers_start(&w, o);
    if (err) {
        fprintf(stderr, "http_hello: cannot start the workers: %s\n", strerror(-err));
        close(held_fd);
        return EXIT_FAILURE;
    }
    printf("Serving on http://127.0.0.1:%u/ with %u %s\n", *port, o->count, mode);
    err = loop_workers_wait(w);
    loop_workers_free(w);
    close(held_fd);
    if (err) /* -ETIMEDOUT: a drain was cut short; -ECHILD: a worker failed */
        fprintf(stderr, "http_hello: the workers did not all end cleanly: %s\n", strerror(-err));
    printf("stopped\n");
    return err ? EXIT_FAILURE : EXIT_SUCCESS;
}
