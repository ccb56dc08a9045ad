/*
 * http_hello --workers N: the glue between examples/http_hello.c and the
 * workers layer (loop_workers.h).  http_hello.c says what one worker does
 * (setup: start serving on the port; drain; teardown); this file reads the
 * options, holds the port, reports the workers and waits for the stop.
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
 * arg are the caller's; on_event is set here) on 127.0.0.1:*port, and
 * return the program's exit status once a signal has stopped them.
 *
 * First the port is held: a socket bound to it with SO_REUSEPORT that never
 * listens.  A bound socket takes no connections (only listening ones do),
 * but no other program can take the port, and when *port is 0 it tells
 * which port the kernel chose: *port holds it before any setup runs, for
 * each worker to open its listener there with SO_REUSEPORT.  A bind error
 * comes out here, before any worker starts; and a worker process that is
 * started again after a crash opens its listener on the same port.
 *
 * Prints "worker I pid P ready" as each worker becomes ready, "worker I
 * pid P exited (...); restart in N ms" when one dies (processes), then
 * "Serving on http://127.0.0.1:PORT/ with N processes|threads", and
 * "stopped" at the end.  Returns 0 when every worker ended cleanly, 1
 * otherwise (with a message on stderr).
 */
int hello_workers_run(loop_workers_options *o, uint16_t *port);

#endif /* HTTP_HELLO_WORKERS_H */
