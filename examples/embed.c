/*
 * embed: libloop inside another program's main loop.
 *
 * The host here is a plain poll() loop with an fd of its own (the read end
 * of a pipe).  It adds loop_fd() to its poll set, sleeps no longer than
 * loop_timeout_ms() allows, and calls loop_run_once(loop, 0) after every
 * wake-up; libloop never blocks and never owns the thread.  Through libloop
 * run three kinds of work:
 *
 *   - a repeating timer, which writes "tick N" into the host's pipe;
 *   - a reader on a socketpair, which receives a line the host sends;
 *   - calls posted from a worker thread with loop_call_soon_threadsafe().
 *
 * When all of it is done, the host takes its handlers out of the loop,
 * frees it and exits 0.  Lines starting "host:" are printed by the host's
 * own code, "loop:" by callbacks that libloop runs.
 *
 *   usage: embed [--ticks N] [--jobs N] [--interval-ms N]
 */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct app {
    loop_t *loop;
    int ticks_wanted, jobs_wanted;
    int host_pipe[2]; /* the host reads [0]; the loop's timer writes [1] */
    int chan[2];      /* the host writes [1]; the loop's reader reads [0] */
    loop_handle timer;
    int ticks_sent, ticks_heard, jobs_done, lines_read;
    pthread_t loop_thread;
};

static void die(const char *what, int err)
{
    fprintf(stderr, "embed: %s: %s\n", what, err < 0 ? loop_strerror(err) : strerror(err));
    exit(EXIT_FAILURE);
}

static void check(int err, const char *what)
{
    if (err < 0)
        die(what, err);
}

/* ---- work done through libloop -------------------------------------- */

static void on_tick(loop_t *loop, void *arg)
{
    (void)loop;
    struct app *app = arg;
    if (app->ticks_sent == app->ticks_wanted)
        return;
    char line[32];
    int n = snprintf(line, sizeof(line), "tick %d\n", ++app->ticks_sent);
    printf("loop: tick %d\n", app->ticks_sent);
    if (write(app->host_pipe[1], line, (size_t)n) != n)
        die("write to the host's pipe", errno);
    if (app->ticks_sent == app->ticks_wanted) {
        loop_cancel(loop, app->timer);
        app->timer = (loop_handle){0};
    }
}

static void on_chan_readable(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    struct app *app = arg;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    printf("loop: read \"%s\"\n", buf);
    app->lines_read++;
}

struct job {
    struct app *app;
    int id;
    long result;
};

static void on_job_done(loop_t *loop, void *arg)
{
    (void)loop;
    struct job *job = arg;
    bool here = pthread_equal(pthread_self(), job->app->loop_thread);
    printf("loop: job %d done, result %ld, %s\n", job->id, job->result,
           here ? "on the loop thread" : "ON THE WRONG THREAD");
    job->app->jobs_done++;
    free(job);
}

/* The worker: some computing, each result handed to the loop thread. */
static void *worker_main(void *arg)
{
    struct app *app = arg;
    for (int id = 1; id <= app->jobs_wanted; id++) {
        struct job *job = malloc(sizeof(*job));
        if (!job)
            die("malloc", ENOMEM);
        job->app = app;
        job->id = id;
        job->result = 0;
        for (long i = 1; i <= 100000L * id; i++)
            job->result += i % 7;
        int err = loop_call_soon_threadsafe(app->loop, on_job_done, job);
        if (err) {
            free(job);
            die("loop_call_soon_threadsafe", err);
        }
    }
    return NULL;
}

/* ---- the host's own main loop ----------------------------------------- */

static bool all_done(const struct app *app)
{
    return app->ticks_heard == app->ticks_wanted && app->jobs_done == app->jobs_wanted &&
           app->lines_read == 1;
}

/* The host reads the lines the loop's timer wrote into its pipe. */
static void host_read_pipe(struct app *app)
{
    static char buf[256];
    static size_t len;
    ssize_t n = read(app->host_pipe[0], buf + len, sizeof(buf) - 1 - len);
    if (n <= 0)
        return;
    len += (size_t)n;
    char *nl;
    while ((nl = memchr(buf, '\n', len)) != NULL) {
        *nl = '\0';
        printf("host: heard \"%s\" from the loop\n", buf);
        app->ticks_heard++;
        len -= (size_t)(nl + 1 - buf);
        memmove(buf, nl + 1, len);
    }
}

static void host_main_loop(struct app *app)
{
    unsigned long iterations = 0;
    bool greeted = false;
    while (!all_done(app)) {
        struct pollfd fds[2] = {
            {.fd = loop_fd(app->loop), .events = POLLIN},
            {.fd = app->host_pipe[0], .events = POLLIN},
        };
        int n = poll(fds, 2, loop_timeout_ms(app->loop));
        if (n < 0 && errno != EINTR)
            die("poll", errno);
        iterations++;
        if (n > 0 && (fds[1].revents & POLLIN))
            host_read_pipe(app);
        if (!greeted) {
            static const char hello[] = "hello from the host\n";
            if (write(app->chan[1], hello, sizeof(hello) - 1) != (ssize_t)sizeof(hello) - 1)
                die("write to the loop's socket", errno);
            greeted = true;
        }
        /* Whatever woke the host, let libloop take its turn, without waiting. */
        check(loop_run_once(app->loop, 0), "loop_run_once");
    }
    printf("host: all work done after %lu host iterations\n", iterations);
}

static int parse_count(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > 1000) {
        fprintf(stderr, "embed: %s: want a number from 1 to 1000, not '%s'\n", what, s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    static const char usage[] = "usage: embed [--ticks N] [--jobs N] [--interval-ms N]\n";
    struct app app = {.ticks_wanted = 3, .jobs_wanted = 3};
    int interval_ms = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(argv[i], "--ticks") == 0) {
            app.ticks_wanted = parse_count(argv[++i], "--ticks");
        } else if (i + 1 < argc && strcmp(argv[i], "--jobs") == 0) {
            app.jobs_wanted = parse_count(argv[++i], "--jobs");
        } else if (i + 1 < argc && strcmp(argv[i], "--interval-ms") == 0) {
            interval_ms = parse_count(argv[++i], "--interval-ms");
        } else {
            fprintf(stderr, "embed: unexpected argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (pipe2(app.host_pipe, O_CLOEXEC) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, app.chan))
        die("pipe/socketpair", errno);
    check(loop_new(&app.loop), "loop_new");
    app.loop_thread = pthread_self();
    printf("host: polling loop_fd() beside its own pipe\n");

    check(loop_call_every(app.loop, LOOP_MS(interval_ms), on_tick, &app, &app.timer),
          "loop_call_every");
    check(loop_add_reader(app.loop, app.chan[0], on_chan_readable, &app), "loop_add_reader");
    pthread_t worker;
    int err = pthread_create(&worker, NULL, worker_main, &app);
    if (err)
        die("pthread_create", err);

    host_main_loop(&app);

    /* Tear down: take our handlers out, let the worker finish, free. */
    pthread_join(worker, NULL);
    loop_cancel(app.loop, app.timer); /* -ENOENT if the timer already ended itself */
    check(loop_remove_reader(app.loop, app.chan[0]), "loop_remove_reader");
    check(loop_free(app.loop), "loop_free");
    close(app.host_pipe[0]);
    close(app.host_pipe[1]);
    close(app.chan[0]);
    close(app.chan[1]);
    printf("host: done: %d ticks heard, %d jobs done, %d line read\n", app.ticks_heard,
           app.jobs_done, app.lines_read);
    return 0;
}
