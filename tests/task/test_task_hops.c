/*
 * The hop rules against asyncio itself: one program exercising spawn,
 * sleep(0), completion wake-ups, done futures, cancel chains, refusal,
 * cancel before start, gather and a task group, whose trace must equal
 * what the same program printed on Python 3.11's asyncio (hops.py beside
 * this file; hops.txt is its output).
 */
#include "task_testing.h"

#include <stdarg.h>
#include <stdio.h>

static char out[4096];
static size_t nout;

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + nout, sizeof out - nout, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n + 1 < sizeof out - nout);
    nout += (size_t)n;
    out[nout++] = '\n';
    out[nout] = 0;
}

static void say_cb(loop_t *loop, void *arg)
{
    (void)loop;
    say("%s", (const char *)arg);
}

struct sleeper {
    const char *name;
    uint64_t ns;
    bool refuse;
    char refused[32];
};

static int sleeper(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    struct sleeper *s = arg;
    say("%s start", s->name);
    int err = loop_task_sleep(s->ns);
    if (err == -ECANCELED) {
        say("%s cancelled", s->name);
        if (s->refuse) {
            snprintf(s->refused, sizeof s->refused, "%s-refused", s->name);
            *result = s->refused;
            return 0;
        }
        return err;
    }
    say("%s woke", s->name);
    *result = (void *)s->name;
    return err;
}

struct zero {
    const char *name;
    int n;
};

static int zero(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    struct zero *z = arg;
    for (int i = 0; i < z->n; i++) {
        say("%s step %d", z->name, i);
        int err = loop_task_sleep(0);
        if (err)
            return err;
    }
    say("%s done", z->name);
    return 0;
}

struct waiter {
    const char *name;
    loop_future *f;
    bool is_int; /* the result is a number, else a string */
};

static int waiter(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    struct waiter *w = arg;
    say("%s awaits", w->name);
    int err = loop_task_await(w->f, result);
    if (err == -ECANCELED) {
        say("%s cancelled", w->name);
        return err;
    }
    if (w->is_int)
        say("%s got %d", w->name, (int)(intptr_t)*result);
    else
        say("%s got %s", w->name, (const char *)*result);
    return err;
}

static int failer(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    (void)result;
    const char *name = arg;
    say("%s start", name);
    int err = loop_task_sleep(LOOP_MS(10));
    if (err)
        return err;
    say("%s fails", name);
    return -EIO;
}

static const char *tf(int cancel_rc)
{
    return cancel_rc == 1 ? "True" : "False";
}

static void complete(loop_t *loop, void *arg)
{
    say("complete");
    assert_int_equal(loop_future_set_result(arg, (void *)(intptr_t)7), 0);
    assert_int_equal(loop_call_soon(loop, say_cb, "after-complete", NULL), 0);
}

static int await_task(loop_task *t, void **result)
{
    int err = loop_task_await(loop_task_future(t), result);
    loop_task_unref(t);
    return err;
}

static void main_spawn_and_sleep0(loop_t *loop)
{
    static struct zero za = {"a", 2}, zb = {"b", 2};
    loop_task *a = spawn(loop, zero, &za);
    assert_int_equal(loop_call_soon(loop, say_cb, "cb1", NULL), 0);
    loop_task *b = spawn(loop, zero, &zb);
    say("main spawned");
    assert_int_equal(loop_task_sleep(0), 0);
    say("main back");
    assert_int_equal(await_task(a, NULL), 0);
    assert_int_equal(await_task(b, NULL), 0);
    say("main joined");
}

static void main_futures(loop_t *loop)
{
    loop_future *fut = new_future(loop);
    static struct waiter ww = {"w", NULL, true};
    ww.f = fut;
    loop_task *w = spawn(loop, waiter, &ww);
    assert_int_equal(loop_call_later(loop, LOOP_MS(10), complete, fut, NULL), 0);
    assert_int_equal(await_task(w, NULL), 0);
    say("main got w");
    assert_int_equal(loop_call_soon(loop, say_cb, "cb2", NULL), 0);
    void *v = NULL;
    assert_int_equal(loop_task_await(fut, &v), 0);
    say("main read %d", (int)(intptr_t)v);
    assert_int_equal(loop_task_sleep(0), 0);
    loop_future_unref(fut);
}

static void main_cancels(loop_t *loop)
{
    static struct sleeper ss = {"s", LOOP_SEC(10), false, ""};
    loop_task *s = spawn(loop, sleeper, &ss);
    static struct waiter wt = {"t", NULL, false};
    wt.f = loop_task_future(s);
    loop_task *t = spawn(loop, waiter, &wt);
    assert_int_equal(loop_task_sleep(0), 0);
    say("cancel t %s", tf(loop_task_cancel(t)));
    if (await_task(t, NULL) == -ECANCELED)
        say("t ended cancelled %s",
            loop_future_state(loop_task_future(s)) == LOOP_FUTURE_CANCELLED ? "True" : "False");
    loop_task_unref(s);

    static struct sleeper sr = {"r", LOOP_SEC(10), true, ""};
    loop_task *r = spawn(loop, sleeper, &sr);
    static struct waiter wq = {"q", NULL, false};
    wq.f = loop_task_future(r);
    loop_task *q = spawn(loop, waiter, &wq);
    assert_int_equal(loop_task_sleep(0), 0);
    say("cancel q %s", tf(loop_task_cancel(q)));
    void *v = NULL;
    assert_int_equal(await_task(q, &v), 0);
    say("q got %s", (const char *)v);
    loop_task_unref(r);

    static struct zero zn = {"never", 1};
    loop_task *n = spawn(loop, zero, &zn);
    say("cancel never %s", tf(loop_task_cancel(n)));
    if (await_task(n, NULL) == -ECANCELED)
        say("never cancelled");
}

static void main_gather_and_group(loop_t *loop)
{
    static struct sleeper s1 = {"g1", LOOP_MS(20), false, ""}, s2 = {"g2", LOOP_MS(10), false, ""};
    loop_task *g1 = spawn(loop, sleeper, &s1), *g2 = spawn(loop, sleeper, &s2);
    loop_future *fs[] = {loop_task_future(g1), loop_task_future(g2)};
    assert_int_equal(loop_task_gather(fs, 2), 0);
    void *r1 = NULL, *r2 = NULL;
    assert_int_equal(loop_future_result(fs[0], &r1), 0);
    assert_int_equal(loop_future_result(fs[1], &r2), 0);
    say("gathered %s %s", (const char *)r1, (const char *)r2);
    loop_task_unref(g1);
    loop_task_unref(g2);

    static struct sleeper k1 = {"k1", LOOP_SEC(10), false, ""},
                          k3 = {"k3", LOOP_SEC(10), false, ""};
    loop_task_group *g;
    assert_int_equal(loop_task_group_new(&g), 0);
    assert_int_equal(loop_task_group_spawn(g, sleeper, &k1, NULL), 0);
    assert_int_equal(loop_task_group_spawn(g, failer, "k2", NULL), 0);
    assert_int_equal(loop_task_group_spawn(g, sleeper, &k3, NULL), 0);
    int err = loop_task_sleep(LOOP_SEC(10));
    if (loop_task_group_end(g, err) == -EIO)
        say("group failed");
}

static int main_task(loop_t *loop, void *arg, void **result)
{
    (void)arg;
    (void)result;
    main_spawn_and_sleep0(loop);
    main_futures(loop);
    main_cancels(loop);
    main_gather_and_group(loop);
    say("main done");
    return 0;
}

static char *read_golden(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0),
             "hops.txt");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_tasks_hop_as_asyncio_3_11_does(void **state)
{
    (void)state;
    loop_t *l = new_virtual_loop(true);
    nout = 0;
    out[0] = 0;
    loop_task *t = spawn(l, main_task, NULL);
    assert_int_equal(run_task(l, t, NULL), 0);
    loop_task_unref(t);
    assert_int_equal(loop_free(l), 0);
    assert_string_equal(out, read_golden());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tasks_hop_as_asyncio_3_11_does),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
