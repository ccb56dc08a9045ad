/*
 * The read side: one read per readiness, into the loop's shared scratch
 * buffer when the stream holds nothing (so a program that takes every
 * byte in on_data costs no copy and no memory of its own), else onto the
 * end of the stream's own buffer.  What on_data leaves in the scratch
 * buffer is copied into an own buffer before the next stream may use it.
 *
 * Reads lend bytes in place and consume them; the memory they point at
 * is only moved or freed at the next read call, when on_data returns, or
 * when the loop reads for the stream again, which is what the header
 * promises about *data.
 */
#include "stream_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

size_t loop__stream_pause_at(const loop_stream *s)
{
    size_t at = s->limit > SIZE_MAX / 2 ? SIZE_MAX : 2 * s->limit;
    return s->want > at ? s->want : at;
}

/* No lent bytes are outstanding: an empty own buffer goes back. */
void loop__stream_settle(loop_stream *s)
{
    if ((s->flags & S_SCRATCH) || s->rlen > 0)
        return;
    s->rdata = NULL;
    if (s->rbuf) {
        loop__stream_mem(s->st, s->rbuf, 0);
        s->rbuf = NULL;
        s->rcap = 0;
    }
}

/* At least LOOP__STREAM_MIN_ROOM free bytes after the buffered ones. */
static int make_room(loop_stream *s)
{
    size_t off = (size_t)(s->rdata - s->rbuf);
    if (s->rcap - off - s->rlen >= LOOP__STREAM_MIN_ROOM)
        return 0;
    if (off > 0) {
        memmove(s->rbuf, s->rdata, s->rlen);
        s->rdata = s->rbuf;
        if (s->rcap - s->rlen >= LOOP__STREAM_MIN_ROOM)
            return 0;
    }
    size_t cap = s->rcap * 2;
    if (cap < s->rlen + LOOP__STREAM_MIN_ROOM)
        cap = s->rlen + LOOP__STREAM_MIN_ROOM;
    char *p = loop__stream_mem(s->st, s->rbuf, cap);
    if (!p)
        return -ENOMEM;
    s->rbuf = p;
    s->rdata = p;
    s->rcap = cap;
    return 0;
}

/* After on_data: keep what it left of the scratch buffer. */
static void keep_scratch(loop_stream *s)
{
    s->flags &= ~S_SCRATCH;
    if (loop__stream_gone(s) || s->rlen == 0) {
        s->rdata = NULL;
        s->rlen = 0;
        return;
    }
    /* Just what is left (rounded up): small blocks are the allocator's
     * fastest, and make_room() grows it if more must be appended. */
    size_t cap = (s->rlen + 63) & ~(size_t)63;
    char *p = loop__stream_mem(s->st, NULL, cap);
    if (!p) {
        s->rdata = NULL;
        s->rlen = 0;
        loop__stream_fail(s, -ENOMEM, true);
        return;
    }
    memcpy(p, s->rdata, s->rlen);
    s->rbuf = p;
    s->rcap = cap;
    s->rdata = p;
}

static ssize_t read_fd(loop_stream *s, char *dst, size_t room)
{
    s->reads++;
    if (s->flags & S_SOCKET)
        return recv(s->fd, dst, room, 0);
    return read(s->fd, dst, room);
}

void loop__stream_on_readable(loop_stream *s)
{
    loop__stream_settle(s);
    size_t pause = loop__stream_pause_at(s);
    if (s->rlen >= pause) {
        (void)loop__stream_update(s);
        return;
    }
    struct loop__stream_state *st = s->st;
    bool scratch = s->rlen == 0;
    char *dst;
    size_t room;
    if (scratch) {
        if (!st->scratch && !(st->scratch = loop__stream_mem(st, NULL, LOOP__STREAM_SCRATCH))) {
            loop__stream_fail(s, -ENOMEM, true);
            return;
        }
        dst = st->scratch;
        room = LOOP__STREAM_SCRATCH;
    } else {
        if (make_room(s) < 0) {
            loop__stream_fail(s, -ENOMEM, true);
            return;
        }
        dst = (char *)s->rdata + s->rlen;
        room = s->rcap - (size_t)(s->rdata - s->rbuf) - s->rlen;
    }
    if (room > pause - s->rlen)
        room = pause - s->rlen;
    ssize_t n = read_fd(s, dst, room);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            loop__stream_fail(s, -errno, true);
        return;
    }
    if (n == 0) {
        s->flags |= S_EOF;
        (void)loop__stream_update(s); /* stops reading: a removal does not fail */
    } else {
        s->bytes_in += (uint64_t)n;
        if (scratch) {
            s->rdata = dst;
            s->flags |= S_SCRATCH;
        }
        s->rlen += (size_t)n;
    }
    if (s->cb.on_data) {
        if (s->flags & S_EOF)
            s->flags |= S_EOF_TOLD;
        s->cb.on_data(s, s->arg);
    }
    if (scratch && n > 0)
        keep_scratch(s);
    if (!loop__stream_gone(s)) {
        loop__stream_settle(s);
        (void)loop__stream_update(s); /* pausing is a change of a mask in place */
    }
}

/* ---- the read calls ---------------------------------------------------- */

static int usable(loop_stream *s)
{
    if (!s || (s->flags & S_CLOSED))
        return -EINVAL;
    if (!s->loop)
        return -EBADF;
    loop__stream_settle(s);
    return 0;
}

/* Lend and consume n buffered bytes; reading resumes if it had paused. */
static void take(loop_stream *s, size_t n, const char **data, size_t *len)
{
    *data = s->rdata;
    *len = n;
    s->rdata += n;
    s->rlen -= n;
    if (s->want && s->rlen < s->want)
        s->want = 0;
    if (!(s->mask & LOOP_READABLE) && !s->err)
        (void)loop__stream_update(s);
}

/* Not enough is buffered: the error (no more will come), end of file,
 * or wait. */
static int nothing_more(const loop_stream *s)
{
    if (s->err)
        return s->err;
    return (s->flags & S_EOF) ? -EPIPE : -EAGAIN;
}

int loop_stream_read(loop_stream *s, size_t max, const char **data, size_t *len)
{
    int err = usable(s);
    if (err || !data || !len)
        return err ? err : -EINVAL;
    *data = NULL;
    *len = 0;
    if (s->rlen == 0) {
        err = nothing_more(s);
        return err == -EPIPE ? 0 : err;
    }
    take(s, max && max < s->rlen ? max : s->rlen, data, len);
    return 0;
}

int loop_stream_read_until(loop_stream *s, const void *delim, size_t dlen, const char **data,
                           size_t *len)
{
    int err = usable(s);
    if (err || !delim || !dlen || !data || !len)
        return err ? err : -EINVAL;
    *data = NULL;
    *len = 0;
    const char *hit = s->rlen >= dlen ? memmem(s->rdata, s->rlen, delim, dlen) : NULL;
    if (hit) {
        size_t n = (size_t)(hit - s->rdata) + dlen;
        if (n - dlen > s->limit)
            return -ENOBUFS; /* found, but past the limit: asyncio says so too */
        take(s, n, data, len);
        return 0;
    }
    if (s->rlen > s->limit) {
        *data = s->rdata;
        *len = s->rlen;
        return -ENOBUFS;
    }
    err = nothing_more(s);
    if (err == -EPIPE)
        take(s, s->rlen, data, len);
    return err;
}

int loop_stream_read_exactly(loop_stream *s, size_t n, const char **data, size_t *len)
{
    int err = usable(s);
    if (err || !n || !data || !len)
        return err ? err : -EINVAL;
    *data = NULL;
    *len = 0;
    if (s->rlen >= n) {
        take(s, n, data, len);
        return 0;
    }
    err = nothing_more(s);
    if (err == -EPIPE) {
        take(s, s->rlen, data, len);
    } else if (err == -EAGAIN && n > s->want) {
        s->want = n; /* read on past the pause threshold until n are here */
        if (!(s->mask & LOOP_READABLE))
            (void)loop__stream_update(s);
    }
    return err;
}

int loop_stream_peek(loop_stream *s, const char **data, size_t *len)
{
    if (!s || !data || !len || (s->flags & S_CLOSED))
        return -EINVAL;
    if (!s->loop)
        return -EBADF;
    *data = s->rdata;
    *len = s->rlen;
    return 0;
}

int loop_stream_consume(loop_stream *s, size_t n)
{
    if (!s || (s->flags & S_CLOSED))
        return -EINVAL;
    if (!s->loop)
        return -EBADF;
    if (n > s->rlen)
        return -EINVAL;
    const char *data;
    size_t len;
    take(s, n, &data, &len);
    return 0;
}
