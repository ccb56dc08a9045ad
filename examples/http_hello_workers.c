/*
 * http_hello --workers N: options, the listeners, the workers' reports
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

/* Listener i of worker i, opened before the start; -1 once a worker's
 * server has it (threads), or in a worker process for the others'. */
static int *listeners;
static unsigned nlisteners;
static bool processes;
static loop_workers_setup_fn *user_setup;

static void close_listeners(void)
{
    for (unsigned i = 0; i < nlisteners; i++)
        if (listeners[i] >= 0)
            close(listeners[i]);
    free(listeners);
    listeners = NULL;
    nlisteners = 0;
}

/* One SO_REUSEPORT listener per worker, all on one port; the first fixes
 * *port when it is 0. */
static int open_listeners(unsigned n, uint16_t *port)
{
    listeners = malloc(n * sizeof *listeners);
    if (!listeners)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        int fd = loop_workers_listen_reuseport("127.0.0.1", *port, 0);
        if (fd < 0)
            return fd;
        listeners[nlisteners++] = fd;
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
            return -errno;
        *port = ntohs(a.sin_port);
    }
    return 0;
}

int hello_workers_listener(unsigned index)
{
    return index < nlisteners ? listeners[index] : -1;
}

/* A worker process closes the other workers' listeners (the supervisor
 * keeps them all); a setup that succeeded has given its own to its server. */
static int setup(loop_t *loop, unsigned index, void *arg)
{
    for (unsigned i = 0; processes && i < nlisteners; i++) {
        if (i != index && listeners[i] >= 0) {
            close(listeners[i]);
            listeners[i] = -1;
        }
    }
    int err = user_setup(loop, index, arg);
    if (!err)
        listeners[index] = -1;
    return err;
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

int hello_workers_run(loop_workers_options *o, uint16_t port)
{
    loop_workers *w;
    const char *mode = o->mode == LOOP_WORKERS_THREADS ? "threads" : "processes";

    int err = open_listeners(o->count, &port);
    if (err) {
        fprintf(stderr, "http_hello: cannot listen on 127.0.0.1:%u: %s\n", port, strerror(-err));
        close_listeners();
        return EXIT_FAILURE;
    }
    processes = o->mode == LOOP_WORKERS_PROCESSES;
    user_setup = o->setup;
    o->setup = setup;
    o->on_event = on_event;
    err = loop_workers_start(&w, o);
    if (err) {
        fprintf(stderr, "http_hello: cannot start the workers: %s\n", strerror(-err));
        close_listeners();
        return EXIT_FAILURE;
    }
    printf("Serving on http://127.0.0.1:%u/ with %u %s\n", port, o->count, mode);
    err = loop_workers_wait(w);
    loop_workers_free(w);
    close_listeners();
    if (err) /* -ETIMEDOUT: a drain was cut short; -ECHILD: a worker failed */
        fprintf(stderr, "http_hello: the workers did not all end cleanly: %s\n", strerror(-err));
    printf("stopped\n");
    return err ? EXIT_FAILURE : EXIT_SUCCESS;
}
