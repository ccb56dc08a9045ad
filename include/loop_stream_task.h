/*
 * libloop streams in task form: asyncio's StreamReader / StreamWriter,
 * start_server and open_connection, for tasks (loop_task.h).
 *
 *     static int handle(loop_stream *s, void *arg)          // one task per client
 *     {
 *         const char *line;
 *         size_t n;
 *         int err = loop_stream_task_read_until(s, "\r\n", 2, &line, &n);
 *         if (err)                       // await reader.readuntil(b'\r\n')
 *             return err;
 *         loop_stream_write(s, reply, len);                   // writer.write(...)
 *         return loop_stream_task_drain(s);                   // await writer.drain()
 *     }                                                        // closed on return
 *     loop_stream_task_start_server(loop, "127.0.0.1", 8080, NULL, handle, NULL, &srv);
 *
 * Why a layer of its own (libloop_stream_task, pkg-config
 * libloop-stream_task, CMake libloop::stream_task), on top of
 * libloop_stream, libloop_task and libloop_pool: the callback form needs
 * only the core, and a program that never awaits should link no
 * coroutines, tasks, futures or threads.  (The pool starts no thread
 * until a name needs resolving.)
 *
 * Host names.  Numbers and "localhost" are taken as the callback form
 * takes them, without a thread.  Any other name is resolved as asyncio
 * resolves it, by getaddrinfo() on a thread of the loop's default pool
 * (loop_pool_getaddrinfo() on loop_pool_default(), as a slow job: at most
 * half the pool's threads resolve at once), while the task waits; the
 * addresses are then tried in the resolver's order (see each function).
 * A resolution that fails gives its error, as loop_pool_getaddrinfo()
 * lists them: -ENXIO for a name that is not known, -EAGAIN when no name
 * server answered (RES_OPTIONS="timeout:1 attempts:1" bounds that wait),
 * -ENODATA for a name without an address, ...
 *
 * This layer uses nothing of the stream layer but its public header: a
 * stream in task form is a stream whose callbacks are this layer's, which
 * turn on_data, on_drain, on_connect and on_error into the completion of
 * the futures the tasks await.
 *
 * Writing needs no task: loop_stream_write() never blocks (it is
 * writer.write); close with loop_stream_close().
 *
 * The functions below wait: they are for tasks (-EPERM elsewhere).  The
 * first of them used on a stream makes it a task-form stream: its
 * callbacks are replaced by this layer's (streams made here are so from
 * the start).  Their hops: a read that finds what it needs buffered does
 * not suspend; otherwise the task suspends on a future that the stream's
 * on_data completes, and runs one hop after that, as asyncio's
 * StreamReader does.
 *
 * Errors, beside those of the callback form's calls they wrap (-EAGAIN
 * never comes back: they wait instead): -EPERM outside a task; -EBUSY if
 * another task is already reading the stream (asyncio's RuntimeError);
 * -ECANCELED if the task was cancelled while it waited (nothing was
 * consumed); -EBADF if the stream was closed (by another task) while it
 * waited, or is a husk of a freed loop; -ENOMEM.
 */
#ifndef LOOP_STREAM_TASK_H
#define LOOP_STREAM_TASK_H

#include "loop.h"
#include "loop_future.h"
#include "loop_stream.h"
#include "loop_task.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A connection handler: runs as a task of its own for one connection (the
 * client_connected_cb of asyncio's start_server).  Its return value is the
 * task's outcome (0, or a negative errno).  When it returns, the stream is
 * closed if it is still open (what is queued is still sent).
 */
typedef int loop_stream_handler_fn(loop_stream *s, void *arg);

/* ---- Servers and clients ---------------------------------------------- */

/*
 * asyncio's start_server: listen as loop_server_listen() does, and spawn
 * a task running handler(s, arg) for each connection.  A connection whose
 * task cannot be spawned (memory) is closed and counted as refused.
 *
 * With a number, "localhost", NULL or "" for host it needs no task.  With
 * a name it must be called from a task, which waits while the name is
 * resolved (getaddrinfo with AI_PASSIVE; see "Host names"); the listener
 * is bound to the first address that it can be bound to.  (asyncio binds
 * one socket to each address; a listener here is one socket: for every
 * IPv4 and IPv6 address, listen on "::".)
 *
 * Returns as loop_server_listen(), without -ENOSYS: for a name, -EPERM
 * outside a task, the resolution's error, -ECANCELED if the task was
 * cancelled while it waited, or, if no address could be bound, the last
 * one's error (-EADDRINUSE, ...).
 */
LOOP_API int loop_stream_task_start_server(loop_t *loop, const char *host, uint16_t port,
                                           const loop_stream_options *opts,
                                           loop_stream_handler_fn *handler, void *arg,
                                           loop_server **out);

/* As loop_stream_task_start_server(), on a Unix-socket path. */
LOOP_API int loop_stream_task_start_unix_server(loop_t *loop, const char *path,
                                                const loop_stream_options *opts,
                                                loop_stream_handler_fn *handler, void *arg,
                                                loop_server **out);

/*
 * asyncio's start_server(sock=...): serve on fd, a stream socket already
 * bound and listening, as loop_server_listen_fd() does, spawning a task
 * per connection as loop_stream_task_start_server() does.  It needs no
 * task.  The server takes fd on success (loop_server_close() or
 * loop_server_free() closes it; pass a dup() to keep a copy); on failure
 * the program still owns it.  Returns as loop_server_listen_fd(): 0,
 * -EINVAL, -EBADF, -ENOTSOCK, -ENOMEM.
 */
LOOP_API int loop_stream_task_start_server_fd(loop_t *loop, int fd, const loop_stream_options *opts,
                                              loop_stream_handler_fn *handler, void *arg,
                                              loop_server **out);

/*
 * asyncio's open_connection, from a task: connect (as loop_stream_connect()
 * does) and wait until connected.  A name is resolved first (see "Host
 * names"), then each of its addresses is tried in the resolver's order
 * until one connects, as asyncio does without happy eyeballs; a
 * connect_timeout_ns applies to each attempt.  Returns 0 with the stream
 * in *out (the task owns it: loop_stream_close() it), or the connect's
 * error (-ECONNREFUSED, -ETIMEDOUT with opts->connect_timeout_ns,
 * -EINVAL, ...; for a name whose every address failed, the last one's),
 * the resolution's error, or -ECANCELED (while resolving or connecting:
 * no further address is tried); *out is then NULL.
 */
LOOP_API int loop_stream_task_open_connection(loop_t *loop, const char *host, uint16_t port,
                                              const loop_stream_options *opts, loop_stream **out);

/* As loop_stream_task_open_connection(), to a Unix-socket path. */
LOOP_API int loop_stream_task_open_unix_connection(loop_t *loop, const char *path,
                                                   const loop_stream_options *opts,
                                                   loop_stream **out);

/*
 * await server.wait_closed(): wait until srv is closed and every
 * connection it accepted has been closed.  Returns 0, -ECANCELED, -EPERM,
 * -EINVAL, -ENOMEM.
 */
LOOP_API int loop_stream_task_wait_closed(loop_server *srv);

/* ---- Reading: as the callback form's calls, waiting instead of -EAGAIN - */

/*
 * await reader.read(max): at least one byte, at most max (0: all that is
 * buffered).  0 with *len > 0; 0 with *len == 0 at end of file; the
 * stream's error.  *data stays valid until the task's next read call on
 * s or its next await of anything.
 */
LOOP_API int loop_stream_task_read(loop_stream *s, size_t max, const char **data, size_t *len);

/*
 * await reader.readuntil(delim): the bytes through delim.  -ENOBUFS past
 * the read limit (LimitOverrunError: the bytes stay buffered); -EPIPE at
 * end of file first (IncompleteReadError: *data, *len hold the partial
 * bytes).
 */
LOOP_API int loop_stream_task_read_until(loop_stream *s, const void *delim, size_t dlen,
                                         const char **data, size_t *len);

/* await reader.readexactly(n): -EPIPE at end of file first, with the
 * partial bytes (*len < n). */
LOOP_API int loop_stream_task_read_exactly(loop_stream *s, size_t n, const char **data,
                                           size_t *len);

/*
 * await writer.drain(): return at once unless the stream is paused (more
 * than the high watermark queued); then wait until the queue falls to the
 * low watermark.  Returns 0; the stream's error at once if it has failed
 * (a dead peer: -ECONNRESET, -EPIPE), or if it fails while waiting; never
 * spins.  Any number of tasks may drain one stream at once; each returns.
 */
LOOP_API int loop_stream_task_drain(loop_stream *s);

#ifdef __cplusplus
}
#endif

#endif /* LOOP_STREAM_TASK_H */
