/*
 * http_hello --workers N: the glue between examples/http_hello.c and the
 * workers layer (loop_workers.h).  http_hello.c says what one worker does
 * (setup: serve its listener; drain; teardown); this file reads the
 * options, opens the listeners, reports the workers and waits for the stop.
 */
#ifndef HTTP_HELLO_WORKERS_H
#define HTTP_HELLO_WORKERS_H

#include "loop_workers.h"

typedef struct {
    unsigned count;            /* --workers N; 0 when not given: one loop, no workers */
    loop_workers_mode mode;    /* --mode threads|processes; processes by default */
    loop_options loop_options; /* each worker's loop: the virtual clock with --virtual-time */
} hello_workers_args;

/*
 * Take "--workers N" and "--mode threads|processes" out of argv (*argc
 * shrinks; the rest, --virtual-time included, is left for example_start()),
 * and note --virtual-time.  Exits 2 with a message on a bad value, on a
 * --mode without --workers.
 */
void hello_workers_take_args(int *argc, char **argv, hello_workers_args *out);

/*
 * Run the workers o describes (its mode, count, setup, drain, teardown and
 * arg are the caller's; on_event is set here) on 127.0.0.1:port (0: a port
 * the kernel picks), and return the program's exit status once a signal
 * has stopped them.
 *
 * First the listeners are opened, one per worker, each bound with
 * SO_REUSEPORT to the same port (loop_workers_listen_reuseport(); the
 * first one fixes the port when port is 0), so that a bind error comes
 * out here, before any worker starts, and the kernel spreads the
 * connections over the workers.  Worker I serves listener I, which its
 * setup takes with hello_workers_listener(I).  In processes mode the
 * supervisor keeps every listener open for the whole run, as nginx does:
 * a worker that crashes takes only its own copy with it, and when it is
 * started again it finds its socket, and the connections the kernel
 * accepted meanwhile still waiting in its backlog.
 *
 * Prints "worker I pid P ready" as each worker becomes ready, "worker I
 * pid P exited (...); restart in N ms" when one dies (processes), then
 * "Serving on http://127.0.0.1:PORT/ with N processes|threads", and
 * "stopped" at the end.  Returns 0 when every worker ended cleanly, 1
 * otherwise (with a message on stderr).
 */
int hello_workers_run(loop_workers_options *o, uint16_t port);

/*
 * In worker index's setup: its listener, bound and listening.  A setup
 * that returns 0 has given it to its server (which closes it: in
 * processes mode that is the worker's copy only); one that fails leaves
 * it here, to be closed with the others at the end.
 */
int hello_workers_listener(unsigned index);

#endif /* HTTP_HELLO_WORKERS_H */
