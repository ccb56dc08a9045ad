/*
 * libloop processes: child processes watched through pidfds, and a pool of
 * worker processes that run registered functions on bytes (asyncio's
 * create_subprocess_exec, and concurrent.futures' ProcessPoolExecutor).
 *
 * Link with libloop_process (pkg-config libloop-process; CMake
 * libloop::process).  It needs Linux 5.4 or later (pidfds, and waitid()
 * on a pidfd); on an older kernel loop_process_spawn() returns -ENOSYS.
 * Everything here is for the loop's thread only.
 *
 * Errors: every call returns 0 (or a documented value) or a negative errno,
 * and leaves nothing behind when it fails: no fd, no child, no memory.
 *
 * How a child is made.  The child is started with clone(CLONE_VM |
 * CLONE_VFORK | CLONE_PIDFD) on a small stack of its own, not with fork():
 * nothing of the parent's memory is copied, so a spawn costs the same in a
 * 10 MiB program and in a 10 GiB one (bench/process/RESULTS.md).  Between
 * the clone and the exec the child makes system calls only (no malloc, no
 * lock): it moves the fds it was given into place, closes every other fd
 * (close_range(), or one close() per fd on kernels without it), sets every
 * signal the parent handles or ignores back to its default action, empties
 * its signal mask and calls execve().  If any step fails, the child sends
 * the errno to the parent through a close-on-exec pipe and exits, and
 * loop_process_spawn() returns that errno: a program that cannot run is
 * -ENOENT or -EACCES from the call, never a child that exits with 127.
 *
 * How a child is watched.  No SIGCHLD handler is installed, replaced or
 * needed: the pidfd becomes readable when the child exits, the loop watches
 * it like any fd (so a running child keeps loop_run() alive), and the loop
 * reaps the child with waitid() on the pidfd, which reaps that child and no
 * other.  A program's own SIGCHLD handler is left alone; if it reaps our
 * child first (waitpid(-1, ...)), or SIGCHLD is set to SIG_IGN (the kernel
 * then reaps every child at once), the exit status is lost and the exit
 * future fails with -ECHILD.
 *
 * A child never outlives the watch of its loop: loop_free() sends SIGKILL
 * to every child of the loop that is still running and reaps it before it
 * returns, so no child is left running unwatched and none is left a
 * zombie.  (A program meant to outlive its parent's loop should detach
 * itself, as daemons do: fork, setsid, and let the first child exit.)
 */
#ifndef LOOP_PROCESS_H
#define LOOP_PROCESS_H

#include "loop.h"
#include "loop_future.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Child processes ----------------------------------------------------- */

/* What the child gets as its fd 0, 1 or 2. */
enum loop_process_stdio_mode {
    LOOP_PROCESS_INHERIT = 0, /* the parent's fd of the same number, as it is */
    LOOP_PROCESS_DEVNULL = 1, /* /dev/null, opened read-write */
    LOOP_PROCESS_PIPE = 2,    /* a pipe; the parent's end: loop_process_take_pipe() */
    LOOP_PROCESS_FD = 3,      /* a copy of the parent's fd given in .fd */
};

typedef struct {
    enum loop_process_stdio_mode mode;
    int fd; /* for LOOP_PROCESS_FD: the parent's fd (it stays the caller's) */
} loop_process_stdio;

/* One more fd for the child: a copy of parent_fd, numbered child_fd there. */
typedef struct {
    int parent_fd; /* stays open in the parent, and the caller's */
    int child_fd;  /* 3 or more; each number at most once */
} loop_process_fd;

/*
 * What to run.  Zero-initialise and set what you need: a zeroed stdio
 * entry is LOOP_PROCESS_INHERIT.
 */
typedef struct {
    /*
     * The program: a path, or a name without '/' looked up in the PATH of
     * the child's environment (envp's PATH=, else the parent's; if neither
     * has one, "/bin:/usr/bin"), as execvpe() looks it up.  NULL means
     * argv[0].
     */
    const char *file;
    char *const *argv;           /* the arguments, NULL-terminated; argv[0] is required */
    char *const *envp;           /* the environment, NULL-terminated; NULL: the parent's environ */
    const char *cwd;             /* the child's working directory; NULL: the parent's */
    loop_process_stdio stdio[3]; /* fds 0, 1 and 2 */
    const loop_process_fd *fds;  /* nfds more fds for the child */
    size_t nfds;
} loop_process_options;

typedef struct loop_process loop_process;

/*
 * Start a child process running opts->file with opts->argv, and store a
 * handle for it in *out.  The child's fds are exactly 0, 1, 2 (as
 * opts->stdio says) and the child_fd numbers of opts->fds: every other fd
 * of the parent is closed in the child, close-on-exec or not.  Its signal
 * mask is empty and every signal has its default action.  The child is
 * watched by loop from the moment it exists: see loop_process_exit().
 *
 * Pipes (LOOP_PROCESS_PIPE) give the parent the other end of each, non-
 * blocking and close-on-exec: the write end for fd 0, the read end for
 * fds 1 and 2.  The handle keeps them until loop_process_take_pipe().
 *
 * Returns 0, or:
 *  -EINVAL  loop, opts or out is NULL; argv is NULL or empty (argv[0]
 *           NULL); a stdio mode is unknown; nfds is not 0 and fds is
 *           NULL; a child_fd is below 3, repeated, or INT_MAX - 1 or more;
 *  -EBADF   a parent fd given (LOOP_PROCESS_FD, or in fds) is not open;
 *  -ENOENT  the program was not found, or cwd does not exist;
 *  -EACCES  the program (or a directory on its path) may not be executed:
 *           not executable, a directory, or on a noexec mount;
 *  -ENOEXEC, -ENOTDIR, -E2BIG, -ELOOP, -ENAMETOOLONG, ...: what execve()
 *           or chdir() said in the child, as it said it;
 *  -EMFILE, -ENFILE  no fd for a pipe, the pidfd or a move in the child;
 *  -EAGAIN  the process limit (RLIMIT_NPROC) was reached;
 *  -ENOMEM  memory ran out.  If that happens when the child exists
 *           already (registering its pidfd with the loop), the child is
 *           killed and reaped before this returns;
 *  -ENOSYS  the kernel has no pidfds (Linux before 5.3).
 * On failure *out is NULL and no child remains.
 */
LOOP_API int loop_process_spawn(loop_t *loop, const loop_process_options *opts, loop_process **out);

/*
 * The child's exit, as a future of the loop: done once the loop has seen
 * the child exit and reaped it.  Its result, read as
 * loop_process_returncode(result), is asyncio's returncode:
 *
 *     0 to 255   the child exited with that status (exit(3) gives 3);
 *     -N         signal N killed the child (SIGKILL gives -9).
 *
 * It fails with -ECHILD if the child was reaped by someone else (see the
 * top of this file).  The future is borrowed: it lives as long as p (take
 * a loop_future_ref() to keep it longer).  Cancelling it changes nothing
 * for the child, which is still watched and reaped.  NULL for NULL, or
 * after the loop was freed.
 */
LOOP_API loop_future *loop_process_exit(const loop_process *p);

/* The result of the exit future as asyncio's returncode (see above). */
static inline int loop_process_returncode(const void *result)
{
    return (int)(intptr_t)result;
}

/* The child's process id (valid until it is reaped), or -EINVAL for NULL. */
LOOP_API int loop_process_pid(const loop_process *p);

/*
 * Send signal signo to the child, through its pidfd (or kill() on its pid
 * where the kernel or a tool lacks pidfd_send_signal: that is safe too,
 * since only the loop reaps the child, so its pid cannot be reused before).
 * signo 0 sends nothing and only checks, as kill() does.  Returns 0, also
 * for a child that has exited but whose exit the loop has not seen yet
 * (the signal is then lost); -ESRCH once the exit future is done (or after
 * the loop was freed); -EINVAL for NULL or a number that is not a signal;
 * -EPERM as kill().
 */
LOOP_API int loop_process_signal(loop_process *p, int signo);

/*
 * The parent's end of the pipe made for the child's fd n (0, 1 or 2), which
 * is now the caller's: close it when done, or make a stream of it with
 * loop_stream_open_fd() (loop_stream.h), which then owns it; a write to a
 * child that has gone is then -EPIPE from the stream, never SIGPIPE.
 * Returns the fd; -ENOENT if fd n got no pipe or it was taken already;
 * -EINVAL for NULL or n outside 0..2.
 */
LOOP_API int loop_process_take_pipe(loop_process *p, int n);

/*
 * Release the handle.  Pipes not taken are closed.  The child is not
 * touched: one still running stays watched by the loop, which reaps it
 * when it exits (or kills and reaps it in loop_free()).  The exit future
 * is released with the handle.  Also valid after the loop was freed (it
 * frees what is left, through the loop's allocator).  NULL is ignored.
 */
LOOP_API void loop_process_free(loop_process *p);

/* ---- A pool of worker processes ------------------------------------------ */

/*
 * A function the workers run: it reads len bytes at in, and returns 0 with
 * a reply of *out_len bytes in *out, allocated with malloc() (the worker
 * frees it once sent; *out NULL with *out_len 0 is an empty reply), or a
 * negative errno, with which the job's future fails.  It runs in a worker
 * process: nothing it changes in memory is seen by the parent.
 */
typedef int loop_process_work_fn(const void *in, size_t len, void **out, size_t *out_len);

/* A function of the pool, found by its name (unique in the table). */
typedef struct {
    const char *name;
    loop_process_work_fn *fn;
} loop_process_work;

/*
 * How the workers start.  Each worker is this same program, run again
 * (re-executed from /proc/self/exe) with one argument that says it is a
 * worker, through loop_process_spawn(): so a worker starts clean, with
 * none of the parent's threads, locks, loops or fds, at the same flat cost
 * whatever the size of the parent, and a worker that dies is replaced the
 * same way at any time.  A fork() of the parent would copy its memory
 * (the cost grows with its size), its threads' locks in whatever state
 * they were, and its loop's fds.  The price is this call, which must come
 * first in main(), before anything that should not run in a worker:
 *
 *     int main(int argc, char **argv)
 *     {
 *         int status;
 *         if (loop_process_worker_main(argc, argv, table, n, &status))
 *             return status;
 *         ...
 *
 * In a worker it runs jobs until the pool closes, then returns true with
 * the status main should return (0; 2 if it was not started by a pool or
 * lost its pool mid-message).  In any other process it returns false at
 * once and changes nothing.  The table must be the one the pool was made
 * with (the same names in the same order): a worker whose table differs is
 * refused when it starts, and the pool fails (see
 * loop_process_pool_submit()).
 */
LOOP_API bool loop_process_worker_main(int argc, char **argv, const loop_process_work *table,
                                       size_t n, int *status);

typedef struct {
    const loop_process_work *table; /* the functions, also given to the workers */
    size_t n;
    unsigned workers; /* how many worker processes; 0: one per online CPU */
    /*
     * The program the workers run; NULL: this program (the target of
     * /proc/self/exe when the pool is made).  It must call
     * loop_process_worker_main() with the same table.
     */
    const char *exe;
} loop_process_pool_options;

typedef struct loop_process_pool loop_process_pool;

/*
 * Start a pool of worker processes on loop: they are spawned at once.
 * Returns 0, or -EINVAL (a NULL argument, an empty table, a function or
 * name NULL, a name repeated), -ENOMEM, the error of reading
 * /proc/self/exe (exe NULL), or what loop_process_spawn() returns for the
 * first worker that could not start (then none is left).
 */
LOOP_API int loop_process_pool_new(loop_t *loop, const loop_process_pool_options *opts,
                                   loop_process_pool **out);

/* The id of the function of that name (its index in the table), or -ENOENT;
 * -EINVAL for NULL. */
LOOP_API int loop_process_pool_find(const loop_process_pool *pool, const char *name);

/* The reply of a job: len bytes at data (data is NULL when len is 0). */
typedef struct {
    size_t len;
    unsigned char *data;
} loop_process_bytes;

/*
 * Run function id of the table on a copy of the len bytes at data, in the
 * first worker free, and store a new future for it in *out (the caller's
 * reference: unref it).  Jobs start in the order submitted.
 *
 * The future's result is a loop_process_bytes *, made from the loop's
 * allocator, that belongs to whoever reads it: exactly one reader frees it
 * with loop_process_bytes_free() (a future whose result is never read
 * leaks it).  The future fails with the function's negative errno; with
 * -ECHILD if the worker died while running it or while it was being sent
 * to it (the pool replaces the worker; loop_process_pool_stats() says how
 * it died; the pipe left without a reader raises no SIGPIPE in the
 * program), or if the pool failed while the job waited; with -ENOMEM if
 * the job or its reply could not be handled for want of memory; with
 * -EPROTO if its worker wrote something that is no reply (the worker is
 * killed and replaced); or it is cancelled.  Cancelling it cancels a job
 * not yet started (loop_future_cancel() returns 1); a job already running
 * cannot be cancelled (it returns 0).
 *
 * Returns 0; -EINVAL for NULL pool or out, id out of range, or data NULL
 * with len not 0; -EMSGSIZE if len is over 1 GiB; -ESHUTDOWN after
 * loop_process_pool_shutdown() or once the loop was freed; -ECHILD if the
 * pool has failed: a worker exited, or was refused (its table differs),
 * before it said it was ready, or no worker could be started again, so
 * that nothing is left to run jobs; -ENOMEM.
 */
LOOP_API int loop_process_pool_submit(loop_process_pool *pool, int id, const void *data, size_t len,
                                      loop_future **out);

/* Free a reply (also after its loop was freed).  NULL is ignored. */
LOOP_API void loop_process_bytes_free(loop_process_bytes *b);

/*
 * Stop taking jobs: later submits return -ESHUTDOWN.  With cancel_pending
 * the jobs not started yet are cancelled; without, they still run.  The
 * workers then finish their jobs, see the pool close and exit, and are
 * reaped.  If done is not NULL, *done gets a new future (the caller's
 * reference) that completes, with result NULL, once every job has ended
 * and every worker is reaped.  A second call only gives a future.  Returns
 * 0, -EINVAL for NULL pool, -ESHUTDOWN if done is not NULL and the loop
 * was freed, or -ENOMEM (then nothing changed).
 */
LOOP_API int loop_process_pool_shutdown(loop_process_pool *pool, bool cancel_pending,
                                        loop_future **done);

typedef struct {
    unsigned workers;    /* worker processes alive now */
    uint64_t started;    /* workers started, replacements included */
    uint64_t died;       /* workers that died without being asked to */
    int last_returncode; /* how the last of those ended (as loop_process_returncode) */
    uint64_t jobs_done;  /* jobs that got a reply (success or the function's error) */
} loop_process_pool_stats_t;

/* Copy the counters into *out.  Returns 0 or -EINVAL for NULL arguments. */
LOOP_API int loop_process_pool_stats(const loop_process_pool *pool, loop_process_pool_stats_t *out);

/*
 * Free the pool.  Jobs not started are cancelled; jobs running fail with
 * -ECANCELED; a shutdown future not done yet is cancelled; workers still
 * running are sent SIGKILL and reaped before it returns.  After a shutdown
 * whose future is done there is nothing left to stop.  Also valid after the
 * loop was freed.  NULL is ignored.
 */
LOOP_API void loop_process_pool_free(loop_process_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* LOOP_PROCESS_H */
