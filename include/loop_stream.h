/*
 * libloop streams: buffered TCP (IPv4, IPv6) and Unix-socket connections,
 * listeners and client connects, in callback form.  asyncio's transports
 * and protocols, with the StreamReader's buffer built in:
 *
 *     static void on_data(loop_stream *s, void *arg)        // echo
 *     {
 *         const char *p;
 *         size_t n;
 *         while (loop_stream_read(s, 0, &p, &n) == 0 && n > 0)
 *             loop_stream_write(s, p, n);                    // never blocks
 *         if (loop_stream_eof(s))
 *             loop_stream_close(s);
 *     }
 *     static void on_conn(loop_server *srv, loop_stream *s, void *arg)
 *     {
 *         loop_stream_set_callbacks(s, &(loop_stream_callbacks){.on_data = on_data,
 *                                                              .on_error = on_error}, NULL);
 *     }
 *     loop_server_listen(loop, "127.0.0.1", 8888, NULL, on_conn, NULL, &srv);
 *
 * The task form (await read_until, drain, start_server with a task per
 * connection, open_connection) is in loop_stream_task.h, a layer of its
 * own (libloop_stream_task) on top of this one and of the task layer:
 * a program that only uses callbacks links neither tasks nor coroutines
 * and pays nothing for them.  This layer needs only the core.
 *
 * Link with libloop_stream (pkg-config libloop-stream; CMake
 * libloop::stream).  Everything here is for the loop's thread only.
 *
 * Reading.  Bytes are read as they arrive (one read of at most 64 KiB
 * per readiness) and kept in the stream's buffer until the application
 * takes them.  The read calls below never wait: they return what is
 * buffered, or -EAGAIN, and on_data says when to try again.  They lend
 * the bytes in place (no copy): *data stays valid until the next read
 * call on the stream, the return of the on_data call it was made in (the
 * bytes may sit in a buffer the loop shares between streams until then),
 * or loop_stream_close().  Bytes lent are consumed.  Reading pauses (the
 * fd is no longer watched) while more than twice the read limit is
 * buffered, or more than a read_exactly() asked for, and resumes once the
 * application has taken enough, so a peer that sends faster than the
 * application reads costs at most that much memory.
 *
 * Writing.  loop_stream_write() never blocks and never drops: when
 * nothing is queued it sends at once, and queues what the kernel did not
 * take; data written while some is queued is appended.  The queue is one
 * buffer and leaves in one system call per stream when the socket is
 * writable again, so writes queued during one iteration leave together.
 * (No hook of the loop is taken for this: the loop has one hook of each
 * kind, which belongs to the program, and setting one would end its
 * fast path for chains of callbacks; a write that finds nothing queued
 * needs no flush, and a queue exists only while the kernel is full, when
 * writability is the moment to flush anyway.)  While
 * more than the high watermark is queued the stream is "paused"
 * (loop_stream_write_paused()); once the queue falls to the low watermark,
 * on_drain is called.  A stream never raises SIGPIPE, whatever its fd and
 * whatever the program does with SIGPIPE: a peer or reader that has gone
 * is -EPIPE or -ECONNRESET, through the stream's error path (the write
 * call or on_error, a failing drain), and the loop and the other streams
 * go on.  Sockets are written with MSG_NOSIGNAL; other fds (pipes) with
 * SIGPIPE blocked in the writing thread for the write, and the SIGPIPE a
 * failed write raised taken back before the mask is restored (three more
 * system calls per write: see loop_stream_open_fd()).
 *
 * Memory.  Buffers are allocated when data must be kept and returned to
 * the loop's allocator (loop_realloc()) as soon as they are empty: an
 * idle connection costs the stream alone (well under 1 KiB).  Every
 * allocation may fail; the call that needed it returns -ENOMEM and
 * nothing changed, except where noted.
 *
 * Errors (negative errno, as everywhere in libloop):
 *   -EINVAL   a NULL or bad argument, a malformed address, a closed stream;
 *   -EAGAIN   nothing (or not enough) is buffered yet: wait for on_data;
 *   -ENOBUFS  read_until() found no delimiter within the read limit
 *             (asyncio's LimitOverrunError); the bytes stay buffered;
 *   -EPIPE    end of file came before what a read asked for (asyncio's
 *             IncompleteReadError; the partial bytes are returned), a
 *             write after loop_stream_shutdown_write(), or a write to a
 *             peer or a pipe whose reader has gone (never SIGPIPE);
 *   -ENOSYS   a host name, which needs a resolver (see "Addresses");
 *   -ETIMEDOUT a connect timeout or loop_stream_set_timeout() expired;
 *   -ENOMEM, and the kernel's errors: -ECONNREFUSED, -ECONNRESET,
 *   -EADDRINUSE, -EACCES, -EMFILE, ...
 *
 * Addresses.  A host is a numeric IPv4 address ("127.0.0.1"), a numeric
 * IPv6 address ("::1", also in brackets), or "localhost" (127.0.0.1):
 * none of these needs a thread.  Any other name returns -ENOSYS: resolving
 * it means getaddrinfo(), which may block, so on a thread, and this layer
 * needs only the core.  Two ways to connect to a name:
 *   - the task form (loop_stream_task.h): open_connection and start_server
 *     resolve names through the loop's default thread pool and try each
 *     address in turn, as asyncio does;
 *   - in callback form, resolve through the pool (loop_pool_getaddrinfo()
 *     in loop_pool.h, libloop_pool) and connect to an address:
 *
 *     static void resolved(loop_future *f, void *arg)      // a done callback
 *     {
 *         void *r;
 *         if (loop_future_result(f, &r) != 0)
 *             return;                   // -ENXIO: no such name; see loop_pool.h
 *         struct addrinfo *ai = r;      // the first address (try the next on failure)
 *         loop_stream_connect_addr(loop_future_loop(f), ai->ai_addr, ai->ai_addrlen,
 *                                  NULL, &callbacks, arg, &stream);
 *         loop_pool_freeaddrinfo(loop_future_loop(f), r);
 *     }
 *     struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
 *     loop_pool_default(loop, &pool);
 *     loop_pool_getaddrinfo(pool, "example.com", "80", &hints, &f);
 *     loop_future_add_done(f, resolved, arg);
 *     loop_future_unref(f);
 *
 * A Unix path is at most 107 bytes (-EINVAL beyond).
 *
 * Lifetime.  A stream or server is owned by the program until it calls
 * loop_stream_close() / loop_server_free().  loop_free() closes the fds
 * of every stream and server still open, without calling any callback;
 * their pointers then accept nothing but loop_stream_close() /
 * loop_server_free(), which release them (any other call returns
 * -EBADF).
 */
#ifndef LOOP_STREAM_H
#define LOOP_STREAM_H

#include "loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loop_stream loop_stream;
typedef struct loop_server loop_server;

#define LOOP_STREAM_LIMIT_DEFAULT ((size_t)64 * 1024)      /* read limit */
#define LOOP_STREAM_HIGH_WATER_DEFAULT ((size_t)64 * 1024) /* write queue: pause above */
#define LOOP_STREAM_LOW_WATER_DEFAULT ((size_t)16 * 1024)  /* write queue: drained at */
#define LOOP_STREAM_ACCEPTS_DEFAULT 64u                    /* accepts per wake-up */

/*
 * Options for connects and listeners (a listener passes its own on to
 * every connection it accepts).  Zero-initialise and set what you need;
 * NULL means all defaults.
 */
typedef struct {
    size_t limit;                /* read limit, bytes; 0: 64 KiB */
    size_t high_water;           /* 0: 64 KiB */
    size_t low_water;            /* 0: 16 KiB, or high_water if smaller */
    uint64_t connect_timeout_ns; /* 0: none (the kernel's own, minutes) */
    int backlog;                 /* listen(); 0: SOMAXCONN */
    unsigned accepts_per_wakeup; /* 0: 64 */
    bool reuse_port;             /* SO_REUSEPORT on the listener */
    bool nagle;                  /* keep Nagle's algorithm: no TCP_NODELAY */
    bool emfile_wait;            /* out of fds: clients wait (see listen) */
} loop_stream_options;

/*
 * What the loop tells a stream's owner.  Each may be NULL.  They are
 * called from the loop's callbacks, never from inside a call of this API
 * (on_close excepted), and each but on_close may close the stream.
 *
 *   on_data     new bytes are buffered, or the peer's end of file was
 *               seen (loop_stream_eof() is then true; called once for it);
 *   on_drain    the write queue fell to the low watermark after the stream
 *               had paused (more than the high watermark queued);
 *   on_connect  a connect finished: err 0, or its error (-ECONNREFUSED,
 *               -ETIMEDOUT, ...; the stream is then failed: close it);
 *   on_error    the connection failed (err: -ECONNRESET, -EPIPE for a
 *               peer or a pipe's reader that has gone, -ETIMEDOUT from
 *               loop_stream_set_timeout(), -ENOMEM when a buffer for
 *               received bytes could not be had, ...); called
 *               once, also when the failure was first returned by a call
 *               such as loop_stream_write().  Bytes already buffered can
 *               still be read; nothing more is written.
 *   on_close    the program releases the stream (loop_stream_close() or
 *               loop_stream_abort(), also of a husk after loop_free()):
 *               the last call for it, made from inside that call, for
 *               owners that keep state per stream.  s may only be read
 *               (loop_stream_loop() is NULL for a husk); it must not be
 *               closed again.
 */
typedef struct {
    void (*on_data)(loop_stream *s, void *arg);
    void (*on_drain)(loop_stream *s, void *arg);
    void (*on_connect)(loop_stream *s, int err, void *arg);
    void (*on_error)(loop_stream *s, int err, void *arg);
    void (*on_close)(loop_stream *s, void *arg);
} loop_stream_callbacks;

/* A new connection of a listener: the program owns s (set its callbacks,
 * close it when done). */
typedef void loop_server_fn(loop_server *srv, loop_stream *s, void *arg);

/* ---- Connecting ------------------------------------------------------ */

/*
 * Connect to host:port (see "Addresses"), without blocking.  The stream
 * is stored in *out at once, connecting; on_connect says how it ended.
 * Writes made meanwhile are queued and sent once connected.  With a
 * connect_timeout_ns, a connect not done by then fails with -ETIMEDOUT.
 * TCP_NODELAY is set unless opts asks for Nagle.
 *
 * Returns 0; -EINVAL (NULL loop or out, bad address, low_water >
 * high_water); -ENOSYS (a name); -ENOMEM; or the error of socket() or
 * connect() when it fails at once (-ECONNREFUSED may come either way:
 * at once, or through on_connect).  On failure *out is NULL and no
 * callback will run.
 */
LOOP_API int loop_stream_connect(loop_t *loop, const char *host, uint16_t port,
                                 const loop_stream_options *opts, const loop_stream_callbacks *cb,
                                 void *arg, loop_stream **out);

/* As loop_stream_connect(), to a Unix-socket path. */
LOOP_API int loop_stream_connect_unix(loop_t *loop, const char *path,
                                      const loop_stream_options *opts,
                                      const loop_stream_callbacks *cb, void *arg,
                                      loop_stream **out);

/* As loop_stream_connect(), to a socket address (AF_INET, AF_INET6 or
 * AF_UNIX; -EINVAL for others or a short len). */
LOOP_API int loop_stream_connect_addr(loop_t *loop, const struct sockaddr *addr, socklen_t len,
                                      const loop_stream_options *opts,
                                      const loop_stream_callbacks *cb, void *arg,
                                      loop_stream **out);

/*
 * Make a stream of an fd the program already has: a connected socket, a
 * pipe (such as a child's, from loop_process_take_pipe()) or a terminal;
 * it is made non-blocking.  No write raises SIGPIPE, and the program need
 * not ignore it: a socket is written with send(MSG_NOSIGNAL); any other
 * fd with write() while SIGPIPE is blocked in the calling thread, and if
 * the write fails with EPIPE the SIGPIPE it raised is consumed before the
 * mask is restored.  A SIGPIPE already pending before the write (the
 * program blocked SIGPIPE and had one of its own) is left pending, and
 * the write's, which cannot be told from it, with it.  The error is
 * -EPIPE, as from a socket.  This costs a non-socket three system calls
 * per write beside the write itself (the signal mask set and restored,
 * sigpending()); a socket none.  A pipe has no half-close
 * (loop_stream_shutdown_write() is -ENOTSOCK): close the stream, which
 * sends what is queued first, to give the reader its end of file.  The
 * stream owns fd from then on (loop_stream_close() closes it); on failure
 * the program still owns it.  Returns 0, -EINVAL, -EBADF (fd not open),
 * -EPERM (a regular file: epoll cannot watch it), -ENOMEM.
 */
LOOP_API int loop_stream_open_fd(loop_t *loop, int fd, const loop_stream_options *opts,
                                 const loop_stream_callbacks *cb, void *arg, loop_stream **out);

/* ---- Callbacks and state -------------------------------------------- */

/*
 * Replace the stream's callbacks (copied; NULL: none) and their arg.  If
 * bytes or an end of file are buffered and not yet taken, on_data is
 * called soon (from the loop), so an owner that arrives late misses
 * nothing.  Returns 0, -EINVAL, -EBADF, -ENOMEM (nothing changed).
 */
LOOP_API int loop_stream_set_callbacks(loop_stream *s, const loop_stream_callbacks *cb, void *arg);

/* The callbacks and arg set last, into *cb and *arg (either may be
 * NULL).  Returns 0, -EINVAL (NULL s, or closed), -EBADF (a husk). */
LOOP_API int loop_stream_get_callbacks(const loop_stream *s, loop_stream_callbacks *cb, void **arg);

/* The loop of s (NULL for NULL, or once its loop is freed). */
LOOP_API loop_t *loop_stream_loop(const loop_stream *s);

/* The fd (-1 for NULL, or once closed by loop_free()).  For setsockopt()
 * and the like; do not read, write or close it. */
LOOP_API int loop_stream_fd(const loop_stream *s);

/* True once the peer's end of file was read (buffered bytes may remain). */
LOOP_API bool loop_stream_eof(const loop_stream *s);

/* The error the stream failed with (0 if none): as on_error's. */
LOOP_API int loop_stream_error(const loop_stream *s);

/* Addresses of a socket stream: getpeername()/getsockname() into *addr
 * (*len in: its size; out: the address's).  0, -EINVAL, -ENOTSOCK, or
 * the kernel's error (-ENOTCONN while connecting). */
LOOP_API int loop_stream_peer_addr(const loop_stream *s, struct sockaddr_storage *addr,
                                   socklen_t *len);
LOOP_API int loop_stream_local_addr(const loop_stream *s, struct sockaddr_storage *addr,
                                    socklen_t *len);

/* Counters and sizes of one stream, for tests, monitoring and backpressure. */
typedef struct {
    size_t buffered;    /* received bytes not yet taken */
    size_t queued;      /* bytes written and not yet sent */
    size_t memory;      /* bytes of library memory it holds, itself included */
    uint64_t bytes_in;  /* received in all */
    uint64_t bytes_out; /* sent in all */
    uint64_t reads;     /* read system calls */
    uint64_t writes;    /* send/writev system calls */
    bool reading;       /* the fd is watched for reading (not paused) */
    bool write_paused;  /* more than the high watermark was queued */
} loop_stream_info_t;

/* Fill *out.  Returns 0 or -EINVAL. */
LOOP_API int loop_stream_info(const loop_stream *s, loop_stream_info_t *out);

/*
 * A watchdog for the whole connection: if it is still armed ns from now,
 * the stream fails with -ETIMEDOUT (on_error; a waiting task's read gets
 * it).  Calling it again re-arms it; 0 disarms.  Against slow peers
 * (slowloris): arm it before reading a request, re-arm after each.
 * Returns 0, -EINVAL, -EBADF, -ENOMEM (it then stays as it was).
 */
LOOP_API int loop_stream_set_timeout(loop_stream *s, uint64_t ns);

/* ---- Reading (never waits; see "Reading" above) ---------------------- */

/*
 * Up to max buffered bytes (0: all there are).  Returns 0 with *len > 0;
 * 0 with *len == 0 at end of file once everything was read; -EAGAIN if
 * nothing is buffered yet; the stream's error if it failed and nothing
 * is buffered; -EINVAL, -EBADF.
 */
LOOP_API int loop_stream_read(loop_stream *s, size_t max, const char **data, size_t *len);

/*
 * The bytes up to and including the first occurrence of delim (dlen >
 * 0), as asyncio's readuntil().  Returns 0 with them; -EAGAIN if delim is
 * not buffered yet (and the read limit is not reached); -ENOBUFS if more
 * than the read limit is buffered without delim (nothing is consumed:
 * read the bytes with loop_stream_read(), or close); -EPIPE at end of
 * file without delim: the partial bytes are returned in *data, *len and
 * consumed; the stream's error if it failed; -EINVAL, -EBADF.
 */
LOOP_API int loop_stream_read_until(loop_stream *s, const void *delim, size_t dlen,
                                    const char **data, size_t *len);

/*
 * Exactly n bytes (n > 0).  Returns 0 with them; -EAGAIN if fewer are
 * buffered (reading then goes on, past the pause threshold if need be,
 * until n are); -EPIPE at end of file with fewer: the partial bytes
 * (*len < n) are returned and consumed; the stream's error; -EINVAL,
 * -EBADF.
 */
LOOP_API int loop_stream_read_exactly(loop_stream *s, size_t n, const char **data, size_t *len);

/* Look at every buffered byte without taking any (*len may be 0), then
 * take n of them.  0, -EINVAL (n more than buffered), -EBADF. */
LOOP_API int loop_stream_peek(loop_stream *s, const char **data, size_t *len);
LOOP_API int loop_stream_consume(loop_stream *s, size_t n);

/* ---- Writing --------------------------------------------------------- */

/*
 * Send len bytes, or queue what the kernel does not take now (see
 * "Writing").  Returns 0 (len 0 included); -EPIPE after
 * loop_stream_shutdown_write(); the stream's error if it has failed
 * (-ECONNRESET, -EPIPE: a send that fails reports it here and through
 * on_error); -ENOMEM if the rest could not be queued: if none of the
 * bytes was sent the stream is unchanged, otherwise it fails with
 * -ENOMEM (a hole in the byte stream is never left); -EINVAL, -EBADF.
 */
LOOP_API int loop_stream_write(loop_stream *s, const void *data, size_t len);

/* Is more than the high watermark queued (wait for on_drain)?  False for
 * NULL.  A failed stream is never paused: its writes fail. */
LOOP_API bool loop_stream_write_paused(const loop_stream *s);

/*
 * Half-close: once the queue is sent, shut down the sending side (the
 * peer reads end of file); reading goes on.  Later writes return -EPIPE.
 * Returns 0 (also when already done), -EINVAL, -EBADF, -ENOTSOCK (a pipe
 * or terminal: close it instead), or the stream's error.
 */
LOOP_API int loop_stream_shutdown_write(loop_stream *s);

/*
 * Close the stream: no callback of it runs any more and s must not be
 * used again.  What is queued is still sent (the fd stays open, out of
 * the program's sight, until the queue is sent or fails), then the fd is
 * closed.  Returns 0 or -EINVAL for NULL.
 */
LOOP_API int loop_stream_close(loop_stream *s);

/* Close at once, dropping what is queued; a socket is reset (SO_LINGER
 * 0: the peer gets ECONNRESET, not an end of file).  0 or -EINVAL. */
LOOP_API int loop_stream_abort(loop_stream *s);

/* ---- Listening ------------------------------------------------------- */

/*
 * Listen on host:port (port 0: the kernel picks; NULL or "" host: every
 * IPv4 address; "::" every IPv6 one) and call on_conn for each new
 * connection, with the listener's options.  Accepting uses accept4()
 * (non-blocking, close-on-exec), at most accepts_per_wakeup per
 * readiness so a busy listener cannot starve the loop; SO_REUSEADDR is
 * set, SO_REUSEPORT if asked, TCP_NODELAY on each connection unless
 * Nagle is asked for.  When the process is out of fds (EMFILE, ENFILE),
 * the listener frees a reserve fd, accepts the waiting connection and
 * closes it (the client sees the connection closed), takes the reserve
 * back, and goes on: it neither spins nor stalls.  With emfile_wait, it
 * refuses nobody: it stops accepting until one of its connections closes
 * (or 100 ms have passed), and the clients wait in the backlog.
 *
 * Returns 0; -EINVAL (NULL loop, on_conn or out, bad address);
 * -ENOSYS (a name); -ENOMEM; or the error of socket(), bind() or
 * listen() (-EADDRINUSE, -EACCES, ...).  On failure *out is NULL.
 */
LOOP_API int loop_server_listen(loop_t *loop, const char *host, uint16_t port,
                                const loop_stream_options *opts, loop_server_fn *on_conn, void *arg,
                                loop_server **out);

/* As loop_server_listen(), on a Unix-socket path (which must not exist;
 * it is not removed on close: unlink it yourself). */
LOOP_API int loop_server_listen_unix(loop_t *loop, const char *path,
                                     const loop_stream_options *opts, loop_server_fn *on_conn,
                                     void *arg, loop_server **out);

/* As loop_server_listen(), on a socket address. */
LOOP_API int loop_server_listen_addr(loop_t *loop, const struct sockaddr *addr, socklen_t len,
                                     const loop_stream_options *opts, loop_server_fn *on_conn,
                                     void *arg, loop_server **out);

/*
 * Serve on fd, a stream socket the program has already bound and made
 * listen (TCP over IPv4 or IPv6, a Unix socket, ...): asyncio's
 * start_server(sock=...).  For a socket made elsewhere: inherited from a
 * supervisor that binds before it forks (nginx's model, where a worker
 * that is started again finds the connections waiting in its socket's
 * backlog), passed by systemd's socket activation, or received over a
 * Unix socket.  Accepting, its limits, out-of-fds handling and options
 * are loop_server_listen()'s (TCP_NODELAY on each connection of a TCP
 * socket unless Nagle is asked for); backlog and reuse_port are not used,
 * the socket being bound and listening already.  fd is made non-blocking
 * (a flag of the open file, shared with every copy of it: dup(), fork())
 * and close-on-exec (a flag of this fd only).
 *
 * The server takes fd: from a success on, the program must not use or
 * close it; loop_server_close() (or loop_server_free(), or loop_free())
 * closes it.  Closing it ends the listening socket only if no other copy
 * is open: a supervisor that keeps its own keeps the socket, and its
 * backlog.  To serve on a socket and keep it, pass a dup() of it.
 *
 * Returns 0; -EINVAL (NULL loop, on_conn or out, bad options; a socket
 * that is not SOCK_STREAM, such as UDP's; one that is not listening);
 * -EBADF (fd negative or not open); -ENOTSOCK (not a socket); -ENOMEM.
 * On failure *out is NULL and the program still owns fd, unchanged.
 */
LOOP_API int loop_server_listen_fd(loop_t *loop, int fd, const loop_stream_options *opts,
                                   loop_server_fn *on_conn, void *arg, loop_server **out);

/* The address the listener is bound to (to learn a port the kernel
 * picked).  0, -EINVAL, -EBADF once closed. */
LOOP_API int loop_server_addr(const loop_server *srv, struct sockaddr_storage *addr,
                              socklen_t *len);

/* The loop of srv (NULL for NULL, or once its loop is freed). */
LOOP_API loop_t *loop_server_loop(const loop_server *srv);

/* The bound TCP port, or 0 (NULL, Unix socket, closed). */
LOOP_API uint16_t loop_server_port(const loop_server *srv);

/* Counters of a listener. */
typedef struct {
    uint64_t accepted;  /* connections handed to on_conn */
    uint64_t refused;   /* accepted and closed at once: out of fds or memory */
    size_t connections; /* its connections not yet closed */
    bool listening;
} loop_server_info_t;

LOOP_API int loop_server_info(const loop_server *srv, loop_server_info_t *out);

/*
 * Stop accepting: the listening fd is closed at once; connections go on.
 * Returns 0 (also if closed already) or -EINVAL.
 */
LOOP_API int loop_server_close(loop_server *srv);

/*
 * Call fn(srv, arg) once srv is closed and every connection it accepted
 * has been closed (asyncio's wait_closed), from a loop callback: soon if
 * that is so already.  One waiter at a time: a second call replaces the
 * first; fn NULL removes it.  Returns 0, -EINVAL, -EBADF (a husk),
 * -ENOMEM (nothing changed).
 */
typedef void loop_server_closed_fn(loop_server *srv, void *arg);
LOOP_API int loop_server_wait_closed(loop_server *srv, loop_server_closed_fn *fn, void *arg);

/*
 * Call release(arg) when srv is released (loop_server_free()), for
 * whoever keeps state for it (the task form does).  One at a time: a
 * second call replaces the first; NULL removes it.  Returns 0 or -EINVAL.
 */
LOOP_API int loop_server_on_free(loop_server *srv, void (*release)(void *arg), void *arg);

/*
 * Close srv if need be and release it.  Its connections live on, owned
 * by the program; a pending wait_closed callback will not run.  NULL is
 * ignored.
 */
LOOP_API void loop_server_free(loop_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* LOOP_STREAM_H */
