/*
 * Between the stream layer's files: the per-loop state, the stream and
 * the listener.  stream.c owns a stream's lifetime, its fd watch and the
 * I/O dispatch; read.c and write.c its two buffers; connect.c addresses
 * and connects; server.c listeners.
 */
#ifndef LOOP_STREAM_INTERNAL_H
#define LOOP_STREAM_INTERNAL_H

#include "loop_stream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void *loop__stream_realloc_fn(void *ctx, void *ptr, size_t size);

#define LOOP__STREAM_SCRATCH ((size_t)64 * 1024) /* one read's most */
#define LOOP__STREAM_MIN_ROOM ((size_t)2048)     /* least room kept for the next read */

/*
 * Each loop with streams has one, attached with loop_attach_new().  It
 * outlives the loop while streams or servers the program has not
 * released remain (loop_free() turns them into husks that only
 * close/free accept), so it keeps the allocator.
 */
struct loop__stream_state {
    loop__stream_realloc_fn *realloc;
    void *ctx;
    loop_t *loop;         /* NULL once the loop is freed */
    char *scratch;        /* where reads land first; shared by the loop's streams */
    int reserve_fd;       /* for EMFILE at accept; -1 when not held */
    loop_stream *streams; /* every stream not yet released */
    loop_server *servers;
    size_t live; /* streams + servers not yet released */
};

enum {
    S_CONNECTING = 1u << 0, /* connect() in progress */
    S_EOF = 1u << 1,        /* the peer's end of file was read */
    S_EOF_TOLD = 1u << 2,   /* ...and on_data was called for it */
    S_SHUT_ASKED = 1u << 3, /* shutdown_write() asked for */
    S_SHUT_DONE = 1u << 4,  /* shutdown(SHUT_WR) made */
    S_PAUSED = 1u << 5,     /* more than the high watermark was queued */
    S_CLOSED = 1u << 6,     /* the program closed it; may still flush */
    S_SOCKET = 1u << 7,     /* a socket: send() with MSG_NOSIGNAL */
    S_SCRATCH = 1u << 8,    /* rdata points into the shared scratch buffer */
    S_ERR_OWED = 1u << 9,   /* on_error is to be called from `deferred` */
    S_CONN_OWED = 1u << 10, /* on_connect is to be called from `deferred` */
};

struct loop_stream {
    struct loop__stream_state *st;
    loop_t *loop;             /* NULL once the loop is freed: a husk */
    loop_stream *prev, *next; /* in st->streams */
    loop_server *srv;         /* the listener that accepted it, or NULL */
    int fd;
    unsigned flags;
    unsigned mask; /* what loop_watch_fd() was last given */
    int err;       /* the error it failed with, or 0 */
    int depth;     /* dispatches of it on the stack */
    loop_stream_callbacks cb;
    void *arg;
    /* Received bytes not yet taken: [rdata, rdata + rlen), in rbuf or in
     * the scratch buffer while on_data runs. */
    const char *rdata;
    size_t rlen;
    char *rbuf;
    size_t rcap;
    size_t want; /* read_exactly() waits for this many */
    size_t limit, high, low;
    /* Bytes queued to send: wbuf[woff, woff + wlen). */
    char *wbuf;
    size_t wcap, woff, wlen;
    loop_handle watchdog; /* loop_stream_set_timeout() */
    loop_handle conn_timer;
    loop_handle soon; /* a deferred on_connect/on_error/on_data */
    uint64_t bytes_in, bytes_out, reads, writes;
};

struct loop_server {
    struct loop__stream_state *st;
    loop_t *loop; /* NULL once the loop is freed */
    loop_server *prev, *next;
    int fd; /* -1 once closed */
    bool tcp;
    bool accepting; /* the fd is watched */
    bool freed;     /* loop_server_free() ran inside its own on_conn */
    int depth;
    size_t limit, high, low;
    unsigned accepts;
    bool nagle;
    bool emfile_wait;
    loop_server_fn *on_conn;
    void *arg;
    void (*release)(void *arg);
    void *release_arg;
    loop_server_closed_fn *closed_fn;
    void *closed_arg;
    loop_handle closed_soon;
    loop_handle retry; /* accepting again after a failure to accept */
    uint64_t accepted, refused;
    size_t connections;
};

/* stream.c */
struct loop__stream_state *loop__stream_state(loop_t *loop);
void *loop__stream_mem(struct loop__stream_state *st, void *ptr, size_t size);
int loop__stream_options(const loop_stream_options *o, size_t *limit, size_t *high, size_t *low);
int loop__stream_new(loop_t *loop, int fd, unsigned flags, size_t limit, size_t high, size_t low,
                     loop_stream **out);
void loop__stream_release(struct loop__stream_state *st); /* state freed if unused */
int loop__stream_update(loop_stream *s);
void loop__stream_fail(loop_stream *s, int err, bool direct);
void loop__stream_finish_close(loop_stream *s);
bool loop__stream_gone(const loop_stream *s); /* closed by a callback: stop */
int loop__stream_owe_connect(loop_stream *s);
void loop__stream_leave(loop_stream *s);
void loop__stream_io(loop_t *loop, int fd, unsigned events, void *arg);

/* read.c */
void loop__stream_on_readable(loop_stream *s);
void loop__stream_settle(loop_stream *s);
size_t loop__stream_pause_at(const loop_stream *s);

/* write.c */
void loop__stream_flush(loop_stream *s);
int loop__stream_shut(loop_stream *s);

/* connect.c */
void loop__stream_connected(loop_stream *s);
int loop__stream_resolve(const char *host, uint16_t port, bool passive, struct sockaddr_storage *ss,
                         socklen_t *len);
int loop__stream_unix_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len);
int loop__stream_check_addr(const struct sockaddr *addr, socklen_t len);

/* server.c */
void loop__server_release(loop_server *srv); /* at loop_free() */
void loop__server_conn_gone(loop_server *srv);

#endif /* LOOP_STREAM_INTERNAL_H */
