/*
 * Signals.  Dispositions are process-wide, so this is the one place with
 * state shared between loops: which loop owns each signal, the eventfd to
 * wake it, and a pending flag, all set under sig_lock and read by the
 * handler with atomics.  The handler only sets the flag and writes the
 * eventfd (both async-signal-safe), so it works whichever thread the kernel
 * picks; the callback runs on the loop thread, from the ring.
 */
#include "signals.h"
#include "callback.h"
#include "ready_queue.h"
#include "wakeup.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

static struct {
    loop_t *owner; /* under sig_lock */
    int wakefd;    /* atomic: the owner's eventfd, or -1 */
    int pending;   /* atomic */
    int inflight;  /* atomic: handlers between reading wakefd and writing it */
    struct sigaction old;
} sigtab[LOOP__NSIG];

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int signo)
{
    int saved = errno;
    __atomic_add_fetch(&sigtab[signo].inflight, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&sigtab[signo].pending, 1, __ATOMIC_SEQ_CST);
    int fd = __atomic_load_n(&sigtab[signo].wakefd, __ATOMIC_SEQ_CST);
    if (fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(fd, &one, sizeof(one));
        (void)n;
    }
    __atomic_sub_fetch(&sigtab[signo].inflight, 1, __ATOMIC_SEQ_CST);
    errno = saved;
}

/*
 * Stop handlers from writing to the wakefd, and wait for any that read it
 * already (on another thread) to be done with it, so that the fd may be
 * closed and its number reused.  A handler is a few instructions long.
 */
static void quiesce(int signo)
{
    __atomic_store_n(&sigtab[signo].wakefd, -1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&sigtab[signo].inflight, __ATOMIC_SEQ_CST))
        sched_yield();
}

static bool is_signal(int signo)
{
    return signo > 0 && signo < LOOP__NSIG && signo < NSIG;
}

static bool handleable(int signo)
{
    return is_signal(signo) && signo != SIGKILL && signo != SIGSTOP && signo != SIGSEGV &&
           signo != SIGBUS && signo != SIGFPE && signo != SIGILL;
}

static uint64_t bit(int signo)
{
    return (uint64_t)1 << (signo - 1);
}

int loop_add_signal(loop_t *loop, int signo, loop_fn *fn, void *arg)
{
    if (!loop || !fn || !handleable(signo))
        return -EINVAL;
    int err = 0;
    pthread_mutex_lock(&sig_lock);
    if (sigtab[signo].owner && sigtab[signo].owner != loop) {
        err = -EBUSY;
    } else if (!sigtab[signo].owner) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigfillset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART | SA_ONSTACK;
        __atomic_store_n(&sigtab[signo].pending, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&sigtab[signo].wakefd, loop__wakeup_fd(loop), __ATOMIC_RELEASE);
        if (sigaction(signo, &sa, &sigtab[signo].old)) {
            err = -errno;
            __atomic_store_n(&sigtab[signo].wakefd, -1, __ATOMIC_RELEASE);
        } else {
            sigtab[signo].owner = loop;
        }
    }
    pthread_mutex_unlock(&sig_lock);
    if (err)
        return err;
    struct loop__signal *s = &loop->signals.v[signo];
    if (!s->fn) { /* new: a generation of its own; replaced: a queued run stays valid */
        if (++loop->signals.gen == 0)
            ++loop->signals.gen;
        s->gen = loop->signals.gen;
    }
    s->fn = fn;
    s->arg = arg;
    loop->signals.set |= bit(signo);
    return 0;
}

int loop_remove_signal(loop_t *loop, int signo)
{
    if (!loop || !is_signal(signo))
        return -EINVAL;
    if (!(loop->signals.set & bit(signo)))
        return -ENOENT;
    pthread_mutex_lock(&sig_lock);
    sigaction(signo, &sigtab[signo].old, NULL); /* restoring what we read cannot fail */
    quiesce(signo);
    __atomic_store_n(&sigtab[signo].pending, 0, __ATOMIC_RELAXED);
    sigtab[signo].owner = NULL;
    pthread_mutex_unlock(&sig_lock);
    loop->signals.v[signo] = (struct loop__signal){NULL, NULL, 0};
    loop->signals.set &= ~bit(signo);
    return 0;
}

/* Queue a dispatch for every signal of this loop that arrived. */
int loop__signal_collect(loop_t *loop)
{
    for (uint64_t m = loop->signals.set; m; m &= m - 1) {
        int signo = __builtin_ctzll(m) + 1;
        if (!__atomic_exchange_n(&sigtab[signo].pending, 0, __ATOMIC_ACQ_REL))
            continue;
        int err = loop__ready_push(loop, NULL, (void *)(uintptr_t)LOOP__DISPATCH_SIGNAL,
                                   (uint32_t)signo, loop->signals.v[signo].gen);
        if (err) {
            __atomic_store_n(&sigtab[signo].pending, 1, __ATOMIC_RELEASE);
            return err;
        }
    }
    return 0;
}

void loop__signal_dispatch(loop_t *loop, int signo, uint32_t gen)
{
    struct loop__signal *s = &loop->signals.v[signo];
    if (s->fn && s->gen == gen)
        loop__run_callback(loop, s->fn, s->arg);
}

/* In a forked child: its handlers wake its own eventfd, and what was
 * delivered to the parent before the fork is the parent's to handle. */
void loop__signal_fork(loop_t *loop)
{
    for (uint64_t m = loop->signals.set; m; m &= m - 1) {
        int signo = __builtin_ctzll(m) + 1;
        __atomic_store_n(&sigtab[signo].pending, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&sigtab[signo].wakefd, loop__wakeup_fd(loop), __ATOMIC_SEQ_CST);
    }
}

void loop__signal_free(loop_t *loop)
{
    for (uint64_t m = loop->signals.set; m; m &= m - 1)
        loop_remove_signal(loop, __builtin_ctzll(m) + 1);
}
