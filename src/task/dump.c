/*
 * The task dump: what each unfinished task of a loop is doing, for
 * debugging a program that hangs.
 */
#include "task_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

struct out {
    char *buf;
    size_t size, len;
};

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->size ? o->size - o->len : 0;
    int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/* The task whose future f is, or NULL. */
static const loop_task *task_of(const struct loop__task_registry *r, const loop_future *f)
{
    for (const loop_task *t = r->head; t; t = t->next)
        if (t->future == f)
            return t;
    return NULL;
}

static void put_waiting(struct out *o, const struct loop__task_registry *r, const loop_task *t)
{
    const loop_task *other = t->waiting ? task_of(r, t->waiting) : NULL;
    if (t->sleeping)
        put(o, "sleeping");
    else if (other)
        put(o, "awaiting %s", loop_task_name(other));
    else if (t->waiting && !loop_future_done(t->waiting))
        put(o, "awaiting a future");
    else
        put(o, "ready");
}

int loop_task_dump(const loop_t *loop, char *buf, size_t size)
{
    if (!loop)
        return -EINVAL;
    struct out o = {.buf = buf, .size = size};
    if (size)
        buf[0] = 0;
    const struct loop__task_registry *r = loop__task_registry(loop);
    for (const loop_task *t = r ? r->head : NULL; t; t = t->next) {
        if (t->state == LOOP__TASK_DONE)
            continue;
        put(&o, "%s ", loop_task_name(t));
        if (t->state == LOOP__TASK_CREATED) {
            put(&o, "not started");
        } else if (t->state == LOOP__TASK_RUNNING) {
            put(&o, "running");
        } else {
            put(&o, "suspended: ");
            put_waiting(&o, r, t);
        }
        put(&o, "%s\n", t->must_cancel ? ", cancel pending" : "");
    }
    return o.len > INT32_MAX ? INT32_MAX : (int)o.len;
}
