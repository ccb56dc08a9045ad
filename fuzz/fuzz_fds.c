/*
 * The fuzz target's fds: ends of socketpairs and their duplicates, watched
 * and unwatched, written to, drained, shut down, filled, closed (properly,
 * and also while still watched, which the API forbids but must survive),
 * dup'd and dup2'd over; calls on numbers that are not pollable or not
 * open.  Registrations go through the reference model, which learns each
 * fd's readiness from poll(2) at every poll: the kernel's own answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

struct ent {
    int fd;   /* -1: closed */
    int peer; /* entry index of the other end of the socketpair */
};

static struct ent ents[MAXENT];
static int nents;

void fds_reset(void)
{
    nents = 0;
}

static void io_cb(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    (void)arg;
}

/* What fd has now, as the loop's poll would report it for this interest. */
unsigned fds_readiness(int fd, unsigned interest)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
    if (poll(&p, 1, 0) != 1)
        return 0;
    if (p.revents & POLLNVAL)
        fail("fd %d is watched and not misused, yet closed", fd);
    unsigned ev = (p.revents & POLLIN ? LOOP_READABLE : 0) |
                  (p.revents & POLLOUT ? LOOP_WRITABLE : 0) | (p.revents & POLLHUP ? LOOP_HUP : 0) |
                  (p.revents & POLLERR ? LOOP_ERROR : 0);
    return ev & (interest | LOOP_HUP | LOOP_ERROR);
}

static bool watched(int fd)
{
    return fd >= 0 && fd < MODEL_MAXFD && (model.cur[fd][0] || model.cur[fd][1]);
}

static struct ent *pick_ent(void)
{
    if (!nents)
        return NULL;
    return &ents[take() % (unsigned)nents];
}

void op_add(unsigned dir, bool inside)
{
    struct ent *e = pick_ent();
    if (!e || e->fd < 0 || model.nreg >= MAXREG || !spend(inside))
        return;
    TRACE("  add %s fd %d\n", dir == LOOP_READABLE ? "reader" : "writer", e->fd);
    model_add(e->fd, dir);
}

void op_remove_fd(int fd, unsigned dir)
{
    if (fd < 0 || fd >= MAXFDNUM)
        return;
    TRACE("  remove %s fd %d\n", dir == LOOP_READABLE ? "reader" : "writer", fd);
    model_remove(fd, dir);
}

void op_remove(unsigned dir)
{
    struct ent *e = pick_ent();
    if (e && e->fd >= 0)
        op_remove_fd(e->fd, dir);
}

/* Close an entry; proper: remove its handlers first, as the API asks. */
static void close_ent(struct ent *e, bool proper)
{
    if (!e || e->fd < 0)
        return;
    if (proper) {
        op_remove_fd(e->fd, LOOP_READABLE);
        op_remove_fd(e->fd, LOOP_WRITABLE);
    }
    TRACE("  close fd %d%s\n", e->fd, proper ? "" : " (still watched)");
    if (!proper && watched(e->fd)) {
        misused = true;
        model_fd_misused(e->fd);
    }
    close(e->fd);
    e->fd = -1;
}

void op_close(bool proper)
{
    close_ent(pick_ent(), proper);
}

static int add_ent(int fd, int peer)
{
    if (fd < 0)
        return -1;
    if (fd >= MODEL_MAXFD || nents >= MAXENT) {
        close(fd);
        return -1;
    }
    /* The number may be one closed while still watched: its registration
     * lingers in the loop, as the API says it does. */
    ents[nents] = (struct ent){fd, peer};
    return nents++;
}

void op_socketpair(void)
{
    int sv[2];
    if (nents + 2 > MAXENT)
        return;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
        return;
    int a = nents, b = nents + 1;
    TRACE("  socketpair %d %d\n", sv[0], sv[1]);
    add_ent(sv[0], b);
    add_ent(sv[1], a);
}

void op_dup(void)
{
    struct ent *e = pick_ent();
    if (!e || e->fd < 0 || nents >= MAXENT)
        return;
    int fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
    TRACE("  dup fd %d as %d\n", e->fd, fd);
    add_ent(fd, e->peer);
}

/* dup2 over a (maybe watched) number: the old file there is closed
 * without the loop knowing.  Misuse, but the loop must survive it. */
void op_dup2(void)
{
    struct ent *a = pick_ent(), *b = pick_ent();
    if (!a || !b || a == b || a->fd < 0 || b->fd < 0)
        return;
    TRACE("  dup2 fd %d over %d\n", a->fd, b->fd);
    if (watched(b->fd)) {
        misused = true;
        model_fd_misused(b->fd);
    }
    if (dup3(a->fd, b->fd, O_CLOEXEC) >= 0)
        b->peer = a->peer;
}

void op_write(void)
{
    struct ent *e = pick_ent();
    if (!e || e->fd < 0)
        return;
    char buf[512];
    size_t n = 1 + take() % sizeof(buf);
    memset(buf, 'x', n);
    ssize_t w = send(e->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
}

void drain_fd(int fd)
{
    char buf[4096];
    for (int i = 0; i < 64; i++)
        if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
            break;
}

void op_drain(void)
{
    struct ent *e = pick_ent();
    if (e && e->fd >= 0)
        drain_fd(e->fd);
}

void op_shutdown(void)
{
    struct ent *e = pick_ent();
    if (e && e->fd >= 0)
        shutdown(e->fd, take() & 1 ? SHUT_WR : SHUT_RDWR);
}

void op_flood(void)
{
    struct ent *e = pick_ent();
    if (!e || e->fd < 0)
        return;
    static char buf[65536];
    for (int i = 0; i < 16; i++)
        if (send(e->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL) <= 0)
            break;
}

/* Calls on numbers that are not pollable or not open: they change nothing. */
void op_bad_fd(void)
{
    loop_t *loop = model.loop;
    int rc;
    switch (take() % 5) {
    case 0:
        rc = loop_add_reader(loop, -1 - (int)take(), io_cb, NULL);
        expect_rc(rc, -EBADF, "add_reader(negative)");
        break;
    case 1:
        rc = loop_add_writer(loop, loop_fd(loop), io_cb, NULL);
        expect_rc(rc, -EINVAL, "add_writer(loop_fd)");
        break;
    case 2: {
        int fd = memfd_create("fuzz", MFD_CLOEXEC); /* a regular file: not pollable */
        /* Unless the number is one closed while watched: the loop then
         * still believes it watches it (misuse, see `misused`). */
        if (fd >= 0 && fd < MODEL_MAXFD && !watched(fd)) {
            rc = loop_add_reader(loop, fd, io_cb, NULL);
            if (rc != -ENOMEM || !model.may_fail)
                expect_rc(rc, -EPERM, "add_reader(regular file)");
        }
        if (fd >= 0)
            close(fd);
        break;
    }
    case 3:
        rc = loop_add_reader(loop, MAXFDNUM + 100 + (int)take16(), io_cb, NULL);
        expect_rc(rc, -EBADF, "add_reader(unopened number)");
        break;
    default:
        /* An even generation never names a live slot. */
        rc = loop_cancel(loop, (loop_handle){(uint64_t)take16() << 33 | take()});
        expect_rc(rc, -ENOENT, "cancel(bogus)");
        break;
    }
}

/* Wind down: every fd handler removed before its fd is closed. */
void fds_wind_down(void)
{
    for (int i = 0; i < nents; i++)
        close_ent(&ents[i], true);
    for (int fd = 0; fd < MODEL_MAXFD; fd++) {
        /* numbers closed while still watched */
        if (model.cur[fd][0])
            op_remove_fd(fd, LOOP_READABLE);
        if (model.cur[fd][1])
            op_remove_fd(fd, LOOP_WRITABLE);
    }
}
