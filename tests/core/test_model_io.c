/*
 * Model-based test of fds, on the virtual clock.
 *
 * The operations of test_model.c, mixed with operations on pipes whose
 * readiness the test controls and predicts itself: a pipe's read end is
 * readable while it holds bytes (write one: readable; read them all back:
 * not), its write end writable unless it was filled.  Readers and writers
 * are added, replaced and removed on both ends (a reader on a write end is
 * never ready, nor a writer on a read end), from outside and from inside
 * callbacks and fd handlers, and pipes are closed and opened again, which
 * gives the new pipe the numbers of the old one.  Sometimes a watched end
 * is closed before its handlers are removed while a duplicate keeps the
 * old file open, and bytes are then written to that old file: the loop's
 * kernel registration of it lives on, and its events must never reach the
 * next registration of the number.
 *
 * The reference model (tests/support/model.h) checks, besides all that
 * test_model.c checks: level-triggered liveness (a handler whose fd is
 * ready at a poll runs in that iteration, in its I/O phase, after the
 * callbacks queued before the poll and before the timers, with exactly the
 * events the fd had), no handler for an fd or direction that was not ready,
 * none for a removed or replaced registration (even one queued in the same
 * iteration), and an fd's reader before its writer.  The test's own
 * prediction of readiness is checked against poll(2) at every poll.
 *
 *   LOOP_MODEL_SEEDS=N   run seeds 1..N (default 1500; 150 under valgrind)
 *   LOOP_MODEL_SEED=N    replay one seed, printing every step
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#define MODEL_IMPLEMENTATION
#include "fdleak.h"
#include "model_driver.h"

#define NCHAN 4
#define GHOST_FLOOR 100 /* duplicates that keep an old pipe open live up here */

struct chan {
    int r, w;             /* -1: closed */
    size_t bytes;         /* in the pipe */
    bool full;            /* filled until a write failed with EAGAIN */
    int ghost_r, ghost_w; /* the previous pipe, closed behind the loop's back */
};

static struct chan chans[NCHAN];

static struct chan *chan_of(int fd)
{
    for (int i = 0; i < NCHAN; i++)
        if (chans[i].r == fd || chans[i].w == fd)
            return &chans[i];
    return NULL;
}

/* What the test expects fd to report, and what poll(2) says it does. */
static unsigned pipe_readiness(int fd, unsigned interest)
{
    const struct chan *c = chan_of(fd);
    unsigned want = 0;
    if (c && fd == c->r && c->bytes)
        want = LOOP_READABLE;
    if (c && fd == c->w && !c->full)
        want = LOOP_WRITABLE;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
    unsigned got = poll(&p, 1, 0) == 1 ? (unsigned)p.revents : 0;
    got = (got & POLLIN ? LOOP_READABLE : 0) | (got & POLLOUT ? LOOP_WRITABLE : 0) |
          (got & (POLLHUP | POLLERR | POLLNVAL) ? LOOP_HUP : 0);
    if (!c || got != want)
        model_fail("the test says fd %d has events 0x%x; poll(2) says 0x%x", fd, want, got);
    return want & (interest | LOOP_HUP | LOOP_ERROR);
}

static void chan_open(struct chan *c)
{
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
        model_fail("pipe2: %s", strerror(errno));
        c->r = c->w = -1;
        return;
    }
    c->r = p[0];
    c->w = p[1];
    c->bytes = 0;
    c->full = false;
}

static void close_ghosts(struct chan *c)
{
    if (c->ghost_r >= 0)
        close(c->ghost_r);
    if (c->ghost_w >= 0)
        close(c->ghost_w);
    c->ghost_r = c->ghost_w = -1;
}

static void remove_all(int fd)
{
    if (fd >= 0 && model.cur[fd][0])
        model_remove(fd, LOOP_READABLE);
    if (fd >= 0 && model.cur[fd][1])
        model_remove(fd, LOOP_WRITABLE);
}

/* Close a pipe and open a new one (it gets the lowest free numbers, which
 * are the old ones).  Properly: handlers removed first.  Otherwise the way
 * include/loop.h asks not to: closed first, with duplicates keeping the old
 * files open, then the handlers removed. */
static void chan_reopen(struct chan *c, bool proper)
{
    close_ghosts(c);
    if (proper) {
        remove_all(c->r);
        remove_all(c->w);
        close(c->r);
        close(c->w);
    } else {
        c->ghost_r = fcntl(c->r, F_DUPFD_CLOEXEC, GHOST_FLOOR);
        c->ghost_w = fcntl(c->w, F_DUPFD_CLOEXEC, GHOST_FLOOR);
        close(c->r);
        close(c->w);
        model_remove(c->r, LOOP_READABLE); /* 0 if it had one, else -ENOENT */
        model_remove(c->r, LOOP_WRITABLE);
        model_remove(c->w, LOOP_READABLE);
        model_remove(c->w, LOOP_WRITABLE);
    }
    chan_open(c);
}

/* One byte, or (fill) as many as fit: the write end is then not writable. */
static void chan_write(struct chan *c, bool fill)
{
    static char buf[65536];
    while (!c->full) {
        ssize_t w = write(c->w, buf, fill ? sizeof(buf) : 1);
        if (w > 0)
            c->bytes += (size_t)w;
        else if (fill && w < 0 && errno == EAGAIN)
            c->full = true;
        else
            model_fail("write to a pipe: %s", w < 0 ? strerror(errno) : "nothing written");
        if (!fill || w <= 0)
            break;
    }
}

static void chan_drain(struct chan *c)
{
    char buf[65536];
    while (read(c->r, buf, sizeof(buf)) > 0)
        ;
    c->bytes = 0;
    c->full = false;
}

/* One random operation on the pipes; self_reg: the running handler, or 0. */
static void pipes_action(struct rng *r, int self_reg)
{
    struct chan *c = &chans[rng_below(r, NCHAN)];
    const struct model_reg *self = self_reg ? &model.reg[self_reg] : NULL;
    if (self && rng_below(r, 3) == 0 && chan_of(self->fd))
        c = chan_of(self->fd);
    bool wrong = rng_below(r, 8) == 0; /* a reader on the write end, or the reverse */
    int fd = rng_below(r, 2) ? c->r : c->w;
    unsigned dir = (fd == c->r) != wrong ? LOOP_READABLE : LOOP_WRITABLE;
    uint64_t k = rng_below(r, 100);
    if (k < 25 && driver_spend())
        model_add(fd, dir);
    else if (k < 33)
        model_remove(fd, dir);
    else if (k < 40 && self)
        model_remove(self->fd,
                     rng_below(r, 2) ? self->dir : self->dir ^ (LOOP_READABLE | LOOP_WRITABLE));
    else if (k < 55)
        chan_write(c, false);
    else if (k < 68)
        chan_drain(c);
    else if (k < 72)
        chan_write(c, true);
    else if (k < 80)
        chan_reopen(c, true);
    else if (k < 85)
        chan_reopen(c, false);
    else if (k < 95 && c->ghost_w >= 0 && write(c->ghost_w, "g", 1) != 1 && errno != EAGAIN)
        model_fail("write to an old pipe: %s", strerror(errno)); /* (it may be full) */
}

static void pipes_begin(struct rng *r)
{
    (void)r;
    for (int i = 0; i < NCHAN; i++) {
        chans[i].ghost_r = chans[i].ghost_w = -1;
        chan_open(&chans[i]);
    }
}

static void pipes_end(void)
{
    for (int i = 0; i < NCHAN; i++) {
        remove_all(chans[i].r);
        remove_all(chans[i].w);
        close(chans[i].r);
        close(chans[i].w);
        close_ghosts(&chans[i]);
    }
}

static void test_fd_handlers_agree_with_the_reference_model(void **state)
{
    (void)state;
    const struct driver d = {
        .name = "test_model_io",
        .tick = 1000,
        .steps = 250,
        .seeds = 1500,
        .valgrind_seeds = 150,
        .readiness = pipe_readiness,
        .fds_begin = pipes_begin,
        .fds_end = pipes_end,
        .fd_action = pipes_action,
        .fd_share = 40,
    };
    driver_main(&d);
}

/*
 * The close-and-reopen case, reduced: a watched number closed behind the
 * loop's back while a duplicate keeps its file (and so the loop's kernel
 * registration of it) alive, then released and given to a new pipe.  Bytes
 * written to the old file must not wake the new registration.
 */
static int reads;
static unsigned read_events;

static void count_reader(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)arg;
    reads++;
    read_events = events;
}

static void test_events_of_a_closed_file_never_reach_the_next_owner_of_its_number(void **state)
{
    (void)state;
    loop_t *loop;
    int old[2], now[2];
    loop_options o = {.clock = LOOP_CLOCK_VIRTUAL, .strict_poll = true};
    assert_int_equal(loop_new_with(&loop, &o), 0);
    assert_int_equal(pipe2(old, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(loop_add_reader(loop, old[0], count_reader, NULL), 0);
    int ghost = fcntl(old[0], F_DUPFD_CLOEXEC, GHOST_FLOOR);
    assert_true(ghost >= 0);
    close(old[0]);
    assert_int_equal(loop_remove_reader(loop, old[0]), 0);
    assert_int_equal(pipe2(now, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(now[0], old[0]); /* the lowest free number */
    assert_int_equal(loop_add_reader(loop, now[0], count_reader, NULL), 0);

    reads = 0;
    assert_int_equal(write(old[1], "x", 1), 1); /* the old file is readable, the new one not */
    assert_int_equal(loop_run_once(loop, 0), 0);
    int stale = reads;
    assert_int_equal(write(now[1], "y", 1), 1);
    assert_int_equal(loop_run_once(loop, 0), 0);
    int fresh = reads;
    unsigned events = read_events;

    assert_int_equal(loop_free(loop), 0);
    close(old[1]);
    close(ghost);
    close(now[0]);
    close(now[1]);
    assert_int_equal(stale, 0);
    assert_int_equal(fresh, 1);
    assert_int_equal(events, LOOP_READABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_handlers_agree_with_the_reference_model),
        cmocka_unit_test(test_events_of_a_closed_file_never_reach_the_next_owner_of_its_number),
        cmocka_unit_test(test_the_suite_leaked_no_fd),
    };
    return cmocka_run_group_tests(tests, snapshot_fds, NULL);
}
