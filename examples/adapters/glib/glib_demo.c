/*
 * glib_demo: GLib and libloop in one thread, through the adapter in
 * loop_glib.h, one driving the other.
 *
 *   glib_demo loop-runs-glib     libloop's loop_run() dispatches a GMainContext
 *   glib_demo glib-runs-loop     a GMainLoop runs libloop's loop as a GSource
 *
 * Either way, each side schedules the same three things: a callback to run
 * soon (GLib: an idle source; libloop: loop_call_soon()), a timer
 * (g_timeout_source_new(); loop_call_later()), and a watch on the read end
 * of a pipe of its own, which the other side's timer writes to.  Each
 * prints one line when it runs:
 *
 *     glib: idle ran
 *     loop: call_soon ran
 *     glib: timeout ran, wrote to the loop's pipe
 *     loop: timer ran, wrote to GLib's pipe
 *     loop: pipe readable: "from glib"
 *     glib: pipe readable: "from loop"
 *
 * in whatever order they happen to run, then "all 6 events seen" once all
 * have run, and the program exits 0 (1 on a failure, 2 for bad usage).
 */
#include "loop_glib.h"

#include <fcntl.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct demo {
    loop_t *loop;
    GMainContext *ctx;
    GMainLoop *main_loop; /* glib-runs-loop */
    bool glib_runs_loop;
    int glib_pipe[2], loop_pipe[2];
    int seen;
};

static void seen(struct demo *d, const char *line)
{
    printf("%s\n", line);
    fflush(stdout);
    if (++d->seen < 6)
        return;
    printf("all 6 events seen\n");
    if (d->glib_runs_loop)
        g_main_loop_quit(d->main_loop);
    else
        loop_stop(d->loop);
}

static gboolean on_glib_idle(gpointer arg)
{
    seen(arg, "glib: idle ran");
    return G_SOURCE_REMOVE;
}

static gboolean on_glib_timeout(gpointer arg)
{
    struct demo *d = arg;
    if (write(d->loop_pipe[1], "from glib", 9) != 9)
        perror("glib_demo: write");
    seen(d, "glib: timeout ran, wrote to the loop's pipe");
    return G_SOURCE_REMOVE;
}

static gboolean on_glib_fd(gint fd, GIOCondition condition, gpointer arg)
{
    char buf[32] = {0}, line[64];
    (void)condition;
    if (read(fd, buf, sizeof(buf) - 1) < 0)
        perror("glib_demo: read");
    snprintf(line, sizeof(line), "glib: pipe readable: \"%s\"", buf);
    seen(arg, line);
    return G_SOURCE_REMOVE;
}

static void on_loop_soon(loop_t *loop, void *arg)
{
    (void)loop;
    seen(arg, "loop: call_soon ran");
}

static void on_loop_timer(loop_t *loop, void *arg)
{
    struct demo *d = arg;
    (void)loop;
    if (write(d->glib_pipe[1], "from loop", 9) != 9)
        perror("glib_demo: write");
    seen(d, "loop: timer ran, wrote to GLib's pipe");
}

static void on_loop_fd(loop_t *loop, int fd, unsigned events, void *arg)
{
    char buf[32] = {0}, line[64];
    (void)events;
    if (read(fd, buf, sizeof(buf) - 1) < 0)
        perror("glib_demo: read");
    loop_remove_reader(loop, fd);
    snprintf(line, sizeof(line), "loop: pipe readable: \"%s\"", buf);
    seen(arg, line);
}

/* What each side schedules, whichever drives the other. */
static int schedule(struct demo *d)
{
    GSource *s;
    int err;

    s = g_idle_source_new();
    g_source_set_callback(s, on_glib_idle, d, NULL);
    g_source_attach(s, d->ctx);
    g_source_unref(s);
    s = g_timeout_source_new(20);
    g_source_set_callback(s, on_glib_timeout, d, NULL);
    g_source_attach(s, d->ctx);
    g_source_unref(s);
    s = g_unix_fd_source_new(d->glib_pipe[0], G_IO_IN);
    g_source_set_callback(s, G_SOURCE_FUNC(on_glib_fd), d, NULL);
    g_source_attach(s, d->ctx);
    g_source_unref(s);

    if ((err = loop_call_soon(d->loop, on_loop_soon, d, NULL)) < 0 ||
        (err = loop_call_later(d->loop, LOOP_MS(10), on_loop_timer, d, NULL)) < 0 ||
        (err = loop_add_reader(d->loop, d->loop_pipe[0], on_loop_fd, d)) < 0)
        return err;
    return 0;
}

int main(int argc, char **argv)
{
    struct demo d = {0};
    loop_glib *lg = NULL;
    GSource *source = NULL;
    int err;

    if (argc != 2 ||
        (strcmp(argv[1], "loop-runs-glib") != 0 && strcmp(argv[1], "glib-runs-loop") != 0)) {
        fprintf(stderr, "usage: glib_demo loop-runs-glib | glib-runs-loop\n");
        return 2;
    }
    d.glib_runs_loop = strcmp(argv[1], "glib-runs-loop") == 0;
    if (pipe2(d.glib_pipe, O_CLOEXEC | O_NONBLOCK) != 0 ||
        pipe2(d.loop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        perror("glib_demo: pipe");
        return 1;
    }
    d.ctx = g_main_context_new();
    if ((err = loop_new(&d.loop)) < 0)
        goto fail;
    if (d.glib_runs_loop) {
        d.main_loop = g_main_loop_new(d.ctx, FALSE);
        if ((err = loop_glib_source_new(d.loop, &source)) < 0)
            goto fail;
        g_source_attach(source, d.ctx);
        if ((err = schedule(&d)) < 0)
            goto fail;
        g_main_loop_run(d.main_loop);
        g_source_destroy(source);
        g_source_unref(source);
        g_main_loop_unref(d.main_loop);
    } else {
        if ((err = loop_glib_attach(d.loop, d.ctx, &lg)) < 0 || (err = schedule(&d)) < 0)
            goto fail;
        if ((err = loop_run(d.loop)) < 0)
            goto fail;
        loop_glib_detach(lg);
    }
    loop_free(d.loop);
    g_main_context_unref(d.ctx);
    for (int i = 0; i < 2; i++) {
        close(d.glib_pipe[i]);
        close(d.loop_pipe[i]);
    }
    return d.seen == 6 ? 0 : 1;
fail:
    fprintf(stderr, "glib_demo: %s\n", loop_strerror(err));
    return 1;
}
