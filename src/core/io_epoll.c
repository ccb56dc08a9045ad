/*
 * fds: an fd-indexed table of readers and writers over one epoll set.
 *
 * epoll's traps, and what this file does about each:
 *  - ADD fails on a regular file or directory (EPERM) and on a closed fd
 *    (EBADF): an fd's first registration is made at once, so the caller
 *    gets the error.
 *  - The kernel drops an fd from the set when its last duplicate closes,
 *    not when this fd number closes: a full removal is a DEL made at once,
 *    before the user can close the fd, so a dup'd fd never keeps firing.
 *  - Other interest changes (adding a writer to a reader, removing one of
 *    two) are only batched: an fd is queued on the change list and brought
 *    in line with one MOD just before the next wait, so an fd toggled many
 *    times in an iteration costs at most one epoll_ctl.
 *  - A program may close a watched fd without removing its handlers, get
 *    the number back from socket() or accept(), and add a handler again:
 *    the kernel dropped the old registration at the close, though the
 *    table still shows it.  So adding a handler where one is registered
 *    never trusts the table: a new callback re-registers at once (MOD, or
 *    ADD when the kernel says ENOENT), so the caller sees any error, and
 *    the same callback and argument again (an idempotent re-add, as
 *    hiredis makes) marks the fd to be checked the same way at the next
 *    flush: one epoll_ctl per fd and iteration, however many re-adds.
 *  - A number can be closed and reused between two waits: epoll data
 *    carries (kernel generation << 32 | fd) and events from an older
 *    registration are dropped.  Queued dispatches carry the reader's or
 *    writer's registration generation, so removing or replacing one drops
 *    its dispatch even when it is already queued in this iteration.
 */
#include "io_epoll.h"
#include "callback.h"
#include "ready_queue.h"
#include "wakeup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/*
 * Timed waits.  The kernel lets a poll's timeout expire late by the
 * thread's timer slack (50 us by default), but fires a timerfd at its
 * deadline: a loop that waits for a timer arms the timerfd at the deadline
 * and gives the poll that deadline plus a millisecond, as a backstop.  The
 * timerfd is edge-triggered, so it is never read, and re-arming it for the
 * same deadline is skipped: an idle loop pays one timerfd_settime per timer
 * it waits for.  Waits shorter than LOOP__PRECISE_WAIT are not worth that
 * second syscall: they happen when timers are dense, and there the
 * kernel's slack batches them (a million timers in a second then wake the
 * loop some 20,000 times instead of 80,000).  Without a timerfd (none
 * left, say), the poll's own timeout is used, as before.
 */
static void open_timerfd(loop_t *loop)
{
    loop->io.armed = 0;
    loop->io.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (loop->io.timerfd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = LOOP__TIMER_DATA};
    if (epoll_ctl(loop->io.epfd, EPOLL_CTL_ADD, loop->io.timerfd, &ev)) {
        close(loop->io.timerfd);
        loop->io.timerfd = -1;
    }
}

/*
 * Arm the timerfd for deadline (0: disarm); false if it cannot be used.
 * Armed already at or before the deadline, it is left alone: a deadline
 * pushed back (loop_reschedule of a timeout, which hiredis and curl make
 * on every command) then costs one early wake-up when the old deadline
 * passes, and one re-arm there, instead of a timerfd_settime in every
 * iteration.  Only a deadline that moves earlier re-arms at once.
 */
static bool arm(loop_t *loop, uint64_t deadline)
{
    if (loop->io.timerfd < 0)
        return false;
    uint64_t armed = loop->io.armed;
    if (deadline == armed || (deadline && armed && armed <= deadline))
        return true;
    loop->stats.syscalls++;
    struct itimerspec its = {
        .it_value = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)},
    };
    if (timerfd_settime(loop->io.timerfd, TFD_TIMER_ABSTIME, &its, NULL))
        return false;
    loop->io.armed = deadline;
    return true;
}

int loop__io_init(loop_t *loop)
{
    loop->io.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->io.epfd < 0)
        return -errno;
    open_timerfd(loop);
    return 0;
}

void loop__io_free(loop_t *loop)
{
    if (loop->io.timerfd >= 0)
        close(loop->io.timerfd);
    close(loop->io.epfd);
    loop__realloc(loop, loop->io.fds, 0);
    loop__realloc(loop, loop->io.changes, 0);
    loop->io.fds = NULL;
    loop->io.changes = NULL;
}

static unsigned wanted(const struct loop__fd *f)
{
    return (f->rfn ? LOOP_READABLE : 0) | (f->wfn ? LOOP_WRITABLE : 0);
}

static uint32_t next_gen(loop_t *loop)
{
    if (++loop->io.gen == 0) /* 0 means "none" */
        ++loop->io.gen;
    return loop->io.gen;
}

static int ctl(loop_t *loop, int op, int fd, unsigned mask)
{
    struct epoll_event ev = {
        .events = mask, /* LOOP_READABLE and LOOP_WRITABLE are EPOLLIN and EPOLLOUT */
        .data.u64 = (uint64_t)loop->io.fds[fd].kgen << 32 | (uint32_t)fd,
    };
    loop->stats.syscalls++;
    return epoll_ctl(loop->io.epfd, op, fd, &ev) ? -errno : 0;
}

/* Bring the kernel's view of fd in line with the table, now. */
static int sync_fd(loop_t *loop, int fd)
{
    struct loop__fd *f = &loop->io.fds[fd];
    unsigned mask = wanted(f);
    int err = 0;

    if (!mask) {
        if (f->inkernel)
            ctl(loop, EPOLL_CTL_DEL, fd, 0); /* fails only if already closed: gone anyway */
        f->inkernel = 0;
        f->kmask = 0;
        return 0;
    }
    if (f->inkernel && f->kmask == mask && !f->verify)
        return 0;
    f->verify = 0;
    if (f->inkernel)
        err = ctl(loop, EPOLL_CTL_MOD, fd, mask);
    if (!f->inkernel || err == -ENOENT) { /* ENOENT: closed and reopened */
        f->kgen = next_gen(loop);
        err = ctl(loop, EPOLL_CTL_ADD, fd, mask);
        if (err == -EEXIST) /* the file outlived a close elsewhere (dup) */
            err = ctl(loop, EPOLL_CTL_MOD, fd, mask);
    }
    if (err)
        return err;
    f->inkernel = 1;
    f->kmask = (uint8_t)mask;
    return 0;
}

/*
 * In a forked child: the epoll set is shared with the parent, so changing
 * it would change the parent's.  Move to the child's own set (epfd) and
 * register every watched fd in it again; pending changes are subsumed.
 */
void loop__io_fork(loop_t *loop, int epfd)
{
    close(loop->io.epfd);
    loop->io.epfd = epfd;
    loop->io.nchanges = 0;
    if (loop->io.timerfd >= 0)
        close(loop->io.timerfd);
    open_timerfd(loop);
    for (uint32_t fd = 0; fd < loop->io.fds_cap; fd++) {
        struct loop__fd *f = &loop->io.fds[fd];
        f->dirty = 0;
        f->inkernel = 0;
        if (wanted(f))
            sync_fd(loop, (int)fd); /* fails only for an fd the child closed */
    }
}

/* Defer an interest change to the next wait; if the list cannot grow, do it now. */
static void queue_change(loop_t *loop, int fd)
{
    if (loop->io.fds[fd].dirty)
        return;
    if (loop__grow(loop, (void **)&loop->io.changes, &loop->io.changes_cap,
                   sizeof(*loop->io.changes), loop->io.nchanges + 1)) {
        sync_fd(loop, fd);
        return;
    }
    loop->io.changes[loop->io.nchanges++] = fd;
    loop->io.fds[fd].dirty = 1;
}

static void flush_changes(loop_t *loop)
{
    for (uint32_t i = 0; i < loop->io.nchanges; i++) {
        int fd = loop->io.changes[i];
        loop->io.fds[fd].dirty = 0;
        sync_fd(loop, fd); /* an error here means the user closed a watched fd */
    }
    loop->io.nchanges = 0;
}

static int reserve_fd(loop_t *loop, int fd)
{
    uint32_t old = loop->io.fds_cap;
    if ((uint32_t)fd < old)
        return 0;
    /* Don't grow the table for a number that is not an open fd. */
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    int err = loop__grow(loop, (void **)&loop->io.fds, &loop->io.fds_cap, sizeof(*loop->io.fds),
                         (uint32_t)fd + 1);
    if (!err)
        memset(loop->io.fds + old, 0, (loop->io.fds_cap - old) * sizeof(*loop->io.fds));
    return err;
}

/* An fd number a handler may be added for: 0, or the error to return. */
static int check_fd(loop_t *loop, int fd)
{
    if (fd < 0)
        return -EBADF;
    if (fd == loop->io.epfd || fd == loop__wakeup_fd(loop) || fd == loop->io.timerfd)
        return -EINVAL; /* the loop's own */
    return reserve_fd(loop, fd);
}

/*
 * Set one direction's handler.  The same fn and arg again keeps the
 * registration (and its generation), so a dispatch already queued for it
 * still runs; anything else is a new registration.  Returns whether the
 * direction was registered before.
 */
static bool set_dir(loop_t *loop, struct loop__fd *f, unsigned dir, loop_io_fn *fn, void *arg)
{
    loop_io_fn **pfn = dir == LOOP_READABLE ? &f->rfn : &f->wfn;
    void **parg = dir == LOOP_READABLE ? &f->rarg : &f->warg;
    uint32_t *pgen = dir == LOOP_READABLE ? &f->rgen : &f->wgen;
    bool had = *pfn != NULL;
    if (!fn) {
        *pfn = NULL;
        *parg = NULL;
        *pgen = 0;
    } else if (!had || *pfn != fn || *parg != arg) {
        *pfn = fn;
        *parg = arg;
        *pgen = next_gen(loop);
    }
    return had;
}

/*
 * The kernel's side of a change to f made by add or watch: before is the
 * entry as it was; renewed is true if a handler was registered again.
 */
static int apply(loop_t *loop, int fd, const struct loop__fd *before, bool renewed)
{
    struct loop__fd *f = &loop->io.fds[fd];
    bool same = f->rfn == before->rfn && f->rarg == before->rarg && f->wfn == before->wfn &&
                f->warg == before->warg;
    int err = 0;
    if (!wanted(f)) {
        sync_fd(loop, fd); /* DEL now: the user may close the fd next */
    } else if (!f->inkernel || (renewed && !same)) {
        f->verify = f->inkernel; /* a new handler where one was: the kernel may have lost it */
        err = sync_fd(loop, fd);
    } else {
        f->verify |= renewed;
        if (f->verify || wanted(f) != f->kmask)
            queue_change(loop, fd);
    }
    if (err) {
        *f = *before;
        return err;
    }
    bool one = f->rfn && f->rfn == f->wfn && f->rarg == f->warg; /* loop_watch_fd's kind */
    f->all = one ? RMASK | WMASK : 0;
    loop->io.nwatched += (wanted(f) != 0) - (wanted(before) != 0);
    return 0;
}

static int add(loop_t *loop, int fd, unsigned dir, loop_io_fn *fn, void *arg)
{
    if (!loop || !fn)
        return -EINVAL;
    int err = check_fd(loop, fd);
    if (err)
        return err;
    struct loop__fd *f = &loop->io.fds[fd];
    struct loop__fd before = *f;
    bool renewed = set_dir(loop, f, dir, fn, arg);
    return apply(loop, fd, &before, renewed);
}

static int remove_(loop_t *loop, int fd, unsigned dir)
{
    if (!loop)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    if ((uint32_t)fd >= loop->io.fds_cap || !(wanted(&loop->io.fds[fd]) & dir))
        return -ENOENT;
    struct loop__fd *f = &loop->io.fds[fd];
    struct loop__fd before = *f;
    set_dir(loop, f, dir, NULL, NULL);
    return apply(loop, fd, &before, false);
}

int loop_watch_fd(loop_t *loop, int fd, unsigned events, loop_io_fn *fn, void *arg)
{
    if (!loop || (events & ~(LOOP_READABLE | LOOP_WRITABLE)) || (events && !fn))
        return -EINVAL;
    if (!events) { /* nothing to watch: no table entry needed */
        if (fd < 0)
            return -EBADF;
        if ((uint32_t)fd >= loop->io.fds_cap || !wanted(&loop->io.fds[fd]))
            return 0;
    } else {
        int err = check_fd(loop, fd);
        if (err)
            return err;
    }
    struct loop__fd *f = &loop->io.fds[fd];
    struct loop__fd before = *f;
    bool had_r = set_dir(loop, f, LOOP_READABLE, events & LOOP_READABLE ? fn : NULL, arg);
    bool had_w = set_dir(loop, f, LOOP_WRITABLE, events & LOOP_WRITABLE ? fn : NULL, arg);
    bool renewed = (had_r && (events & LOOP_READABLE)) || (had_w && (events & LOOP_WRITABLE));
    return apply(loop, fd, &before, renewed);
}

int loop_add_reader(loop_t *loop, int fd, loop_io_fn *fn, void *arg)
{
    return add(loop, fd, LOOP_READABLE, fn, arg);
}

int loop_add_writer(loop_t *loop, int fd, loop_io_fn *fn, void *arg)
{
    return add(loop, fd, LOOP_WRITABLE, fn, arg);
}

int loop_remove_reader(loop_t *loop, int fd)
{
    return remove_(loop, fd, LOOP_READABLE);
}

int loop_remove_writer(loop_t *loop, int fd)
{
    return remove_(loop, fd, LOOP_WRITABLE);
}

/*
 * epoll_pwait2 takes a timespec, so timers are precise below a millisecond.
 * Where the kernel (or valgrind) lacks it, epoll_wait's timeout is rounded
 * up to whole milliseconds: waking early would run nothing and cost a poll.
 */
static int wait_events(loop_t *loop, int64_t timeout_ns)
{
    loop->stats.syscalls++;
#ifdef SYS_epoll_pwait2
    if (timeout_ns > 0 && !loop->io.no_pwait2) {
        struct timespec ts = {(time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000)};
        long n = syscall(SYS_epoll_pwait2, loop->io.epfd, loop->io.events, LOOP__MAX_EVENTS, &ts,
                         NULL, 0);
        if (n >= 0 || errno != ENOSYS)
            return n < 0 ? -errno : (int)n;
        loop->io.no_pwait2 = 1;
    }
#endif
    int ms = -1;
    if (timeout_ns >= 0) {
        int64_t up = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
        ms = up > INT_MAX ? INT_MAX : (int)up;
    }
    int n = epoll_wait(loop->io.epfd, loop->io.events, LOOP__MAX_EVENTS, ms);
    return n < 0 ? -errno : n;
}

_Static_assert(LOOP_READABLE == EPOLLIN && LOOP_WRITABLE == EPOLLOUT && LOOP_HUP == EPOLLHUP &&
                   LOOP_ERROR == EPOLLERR,
               "the LOOP_ event bits are epoll's, so events need no translation");

/* Is an event with this epoll data from f's kernel registration as it is
 * now?  Not if the fd was removed, or closed and registered again. */
static inline bool current(const struct loop__fd *f, uint64_t data)
{
    return f->inkernel && f->kgen == (uint32_t)(data >> 32);
}

/* An event of the loop's own eventfd or timerfd (their epoll data are out
 * of the fd range): note it. */
static inline void own_event(loop_t *loop, uint64_t data, bool *woken)
{
    if (data == LOOP__WAKE_DATA)
        *woken = true; /* the caller drains it */
    else if (data == LOOP__TIMER_DATA)
        loop->io.armed = 0; /* expired: the next wait must arm it again */
}

/*
 * The fd entry an event is for, with the event recorded in it, or NULL
 * for the loop's own fds and for registrations that no longer exist.
 */
static inline struct loop__fd *event_fd(loop_t *loop, const struct epoll_event *e)
{
    uint32_t fd = (uint32_t)e->data.u64;
    if (fd >= loop->io.fds_cap)
        return NULL;
    struct loop__fd *f = &loop->io.fds[fd];
    if (!current(f, e->data.u64))
        return NULL;
    f->revents = (uint8_t)(e->events & (RMASK | WMASK));
    loop->stats.events++;
    return f;
}

/*
 * Phases 2 and 3: apply queued changes, wait, and take each ready fd's
 * handlers; *woken is set if the loop's eventfd fired.  deadline is the
 * clock value at which a wait of timeout_ns ends, when it is finite and the
 * clock is real; 0 otherwise.
 *
 * With direct set (the ready queue was empty when the loop polled), the
 * handlers are not queued: the events stay in events[] and
 * loop__io_run_pending() calls the handlers from there, before anything
 * queued after the poll runs, which is the order the queue would have
 * given them.
 */
int loop__io_poll(loop_t *loop, int64_t timeout_ns, uint64_t deadline, bool *woken, bool direct)
{
    loop->io.npending = 0;
    flush_changes(loop);
    if (deadline && timeout_ns >= LOOP__PRECISE_WAIT && arm(loop, deadline))
        timeout_ns = timeout_ns > INT64_MAX - 1000000 ? INT64_MAX : timeout_ns + 1000000;
    else if (timeout_ns < 0 && loop->io.armed)
        arm(loop, 0); /* an idle loop gets no stray wake-up */
    int n = wait_events(loop, timeout_ns);
    if (n < 0)
        return n == -EINTR ? 0 : n;
    if (direct) {
        for (int i = 0; i < n; i++)
            if ((uint32_t)loop->io.events[i].data.u64 >= loop->io.fds_cap)
                own_event(loop, loop->io.events[i].data.u64, woken);
        loop->io.npending = (uint32_t)n;
        loop->io.polled_gen = loop->io.gen;
        return 0;
    }
    /* Level-triggered: events not queued now are reported again next time. */
    if (n && loop__ready_reserve(loop, 2 * (uint32_t)n))
        return -ENOMEM; /* so the puts below have room */

    for (int i = 0; i < n; i++) {
        uint32_t fd = (uint32_t)loop->io.events[i].data.u64;
        if (fd >= loop->io.fds_cap)
            own_event(loop, loop->io.events[i].data.u64, woken);
        struct loop__fd *f = event_fd(loop, &loop->io.events[i]);
        if (!f)
            continue;
        unsigned ev = f->revents;
        bool read = f->rgen && (ev & RMASK);
        if (read)
            loop__ready_put(loop, NULL, (void *)(uintptr_t)LOOP__DISPATCH_READ, fd, f->rgen);
        if (f->wgen && (ev & WMASK) && !(read && f->all))
            loop__ready_put(loop, NULL, (void *)(uintptr_t)LOOP__DISPATCH_WRITE, fd, f->wgen);
    }
    return 0;
}

/* Was gen given out since the poll?  (Generations count up, skipping 0.) */
static inline bool registered_since_poll(const loop_t *loop, uint32_t gen)
{
    return gen - loop->io.polled_gen - 1 < loop->io.gen - loop->io.polled_gen;
}

/*
 * The handlers of the events the last poll kept, called in the order the
 * queue would have called them.  A queued dispatch carries its handler's
 * generation and is dropped if that handler was removed or replaced; here
 * the same test is that the handler is still there and was registered
 * before the poll.  (Between the poll and this call, only user code gives
 * out generations: the hooks, and the handlers run here.)  Returns the
 * number of handler calls made.
 */
uint32_t loop__io_run_pending(loop_t *loop)
{
    uint64_t before = loop->stats.callbacks;
    uint32_t n = loop->io.npending;
    loop->io.npending = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct loop__fd *f = event_fd(loop, &loop->io.events[i]); /* own fds: seen at the poll */
        if (!f)
            continue;
        uint32_t fd = (uint32_t)loop->io.events[i].data.u64;
        unsigned ev = f->revents;
        uint32_t rgen = f->rgen, wgen = f->wgen;
        bool read = rgen && (ev & RMASK) && !registered_since_poll(loop, rgen);
        bool write =
            wgen && (ev & WMASK) && !(read && f->all) && !registered_since_poll(loop, wgen);
        if (read)
            loop__run_io(loop, f->rfn, (int)fd, ev & (RMASK | f->all), f->rarg);
        if (write) /* the reader may have removed or replaced the writer */
            loop__io_dispatch(loop, (int)fd, LOOP__DISPATCH_WRITE, wgen);
    }
    return (uint32_t)(loop->stats.callbacks - before);
}
