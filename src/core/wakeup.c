/*
 * The loop's eventfd and the threadsafe queue.
 *
 * Other threads append to `posts` under post_lock and write the eventfd
 * only when the queue goes from empty to non-empty.  The loop thread, woken
 * by the eventfd, first reads it (resetting the counter) and then swaps
 * `posts` with its spare array under the lock: a post that comes after the
 * swap finds the queue empty and writes again, one that comes between the
 * read and the swap is taken by this swap, so no wake-up is ever lost.
 * The lock is held for an append or a pointer swap, never while callbacks
 * run; the arrays only grow, so steady state allocates nothing.
 */
#include "wakeup.h"
#include "callback.h"
#include "ready_queue.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* A new eventfd, registered in epfd; or a negative errno. */
int loop__wakeup_open(int epfd)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LOOP__WAKE_DATA};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int loop__wakeup_init(loop_t *loop)
{
    int err = pthread_mutex_init(&loop->wakeup.lock, NULL);
    if (err)
        return -err;
    loop->wakeup.fd = loop__wakeup_open(loop->io.epfd);
    if (loop->wakeup.fd >= 0)
        return 0;
    pthread_mutex_destroy(&loop->wakeup.lock);
    return loop->wakeup.fd;
}

/*
 * In a forked child, with the child's own eventfd: the parent's threads are
 * gone, and a holder of the lock may have gone with them, so the lock is
 * made anew (with default attributes this cannot fail on Linux).
 */
void loop__wakeup_fork(loop_t *loop, int wakefd)
{
    pthread_mutex_init(&loop->wakeup.lock, NULL);
    close(loop->wakeup.fd);
    loop->wakeup.fd = wakefd;
    if (loop->wakeup.nposts)
        loop__wakeup_signal(loop); /* posts inherited from the parent */
}

void loop__wakeup_free(loop_t *loop)
{
    close(loop->wakeup.fd);
    pthread_mutex_destroy(&loop->wakeup.lock);
    loop__realloc(loop, loop->wakeup.posts, 0);
    loop__realloc(loop, loop->wakeup.drain, 0);
    loop->wakeup.posts = loop->wakeup.drain = NULL;
}

/* Async-signal-safe.  EAGAIN means the counter is full: it is non-zero, so
 * the loop wakes anyway. */
void loop__wakeup_signal(loop_t *loop)
{
    uint64_t one = 1;
    ssize_t n = write(loop->wakeup.fd, &one, sizeof(one));
    (void)n;
}

bool loop__wakeup_pending(loop_t *loop)
{
    return __atomic_load_n(&loop->wakeup.nposts, __ATOMIC_RELAXED) != 0;
}

int loop_call_soon_threadsafe(loop_t *loop, loop_fn *fn, void *arg)
{
    if (!loop || !fn)
        return -EINVAL;
    pthread_mutex_lock(&loop->wakeup.lock);
    uint32_t n = loop->wakeup.nposts;
    int err = n < loop->wakeup.posts_cap
                  ? 0
                  : loop__grow(loop, (void **)&loop->wakeup.posts, &loop->wakeup.posts_cap,
                               sizeof(*loop->wakeup.posts), n + 1);
    if (!err) {
        loop->wakeup.posts[n] = (struct loop__post){fn, arg};
        __atomic_store_n(&loop->wakeup.nposts, n + 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&loop->wakeup.lock);
    if (!err && n == 0)
        loop__wakeup_signal(loop);
    return err;
}

/*
 * The eventfd fired: read it, and take the threadsafe calls: into the
 * ring, or with direct set (the ring was empty at the poll, see
 * loop__io_poll) left in the drain array, for loop__wakeup_run_taken().
 */
int loop__wakeup_drain(loop_t *loop, bool direct)
{
    uint64_t count;
    loop->stats.syscalls++;
    ssize_t r = read(loop->wakeup.fd, &count, sizeof(count));
    (void)r; /* EAGAIN: a spurious wake-up; nothing else can fail here */

    struct loop__wakeup *w = &loop->wakeup;
    pthread_mutex_lock(&w->lock);
    uint32_t n = w->nposts;
    int err = n && !direct ? loop__ready_reserve(loop, n) : 0;
    if (!err && n) {
        /* The spare must be able to take the next posts without a gap. */
        struct loop__post *spare = w->drain;
        uint32_t spare_cap = w->drain_cap;
        w->drain = w->posts;
        w->drain_cap = w->posts_cap;
        w->posts = spare;
        w->posts_cap = spare_cap;
        __atomic_store_n(&w->nposts, 0, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&w->lock);
    if (err) {
        loop__wakeup_signal(loop); /* try again at the next iteration */
        return err;
    }
    if (direct) {
        w->ntaken = n;
        return 0;
    }
    for (uint32_t i = 0; i < n; i++)
        loop__ready_put(loop, w->drain[i].fn, w->drain[i].arg, 0, 0);
    return 0;
}

/*
 * Run the calls taken by a direct drain, in the order they were posted.
 * Only the loop thread touches the drain array, and only a poll swaps it
 * (never one of these callbacks), so it stays put while they run.
 * Returns how many ran.
 */
uint32_t loop__wakeup_run_taken(loop_t *loop)
{
    struct loop__wakeup *w = &loop->wakeup;
    uint32_t n = w->ntaken;
    w->ntaken = 0;
    for (uint32_t i = 0; i < n; i++)
        loop__run_callback(loop, w->drain[i].fn, w->drain[i].arg);
    return n;
}
