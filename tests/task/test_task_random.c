/*
 * Random task programs give asyncio's trace (DESIGN 5.3): hops_random.py
 * ran random programs of sleeps, spawns, awaits, cancels, gathers,
 * wait_fors, task groups, plain callbacks, futures completed by callbacks
 * and failing tasks on Python 3.11's asyncio under a virtual clock and wrote each
 * program with its trace; this suite runs each on the virtual clock and
 * compares the traces line for line.  It reads hops_random.txt beside it
 * (200 programs), or the file named by LOOP_HOPS_FILE (CI makes thousands).
 */
#include "task_testing.h"

#include <stdarg.h>
#include <stdio.h>

#define MAX_TEMPLATES 8
#define MAX_OPS 12
#define MAX_KIDS 8
#define UNIT_NS 15625000u /* 1/64 s, as the Python's UNIT */

struct template
{
    bool stubborn;
    int nops;
    char kind[MAX_OPS];
    int arg[MAX_OPS], arg2[MAX_OPS];
};

struct instance {
    struct program *p;
    int t, me;
};

/* A future that a plain callback completes. */
struct event {
    loop_future *f;
    int n;
};

struct program {
    int n;
    struct template t[MAX_TEMPLATES];
    loop_t *loop;
    int counter;
    struct instance in[256]; /* one per task: some never run their body */
    int nevents;
    struct event events[256];
};

static char got[16384];
static size_t ngot;

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(got + ngot, sizeof got - ngot, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n + 1 < sizeof got - ngot);
    ngot += (size_t)n;
    got[ngot++] = '\n';
    got[ngot] = 0;
}

static int run_template(loop_t *loop, void *arg, void **result);

/* Append to the last line said. */
static void say_more(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    assert_true(ngot > 0);
    ngot--; /* its newline */
    int n = vsnprintf(got + ngot, sizeof got - ngot, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n + 1 < sizeof got - ngot);
    ngot += (size_t)n;
    got[ngot++] = '\n';
    got[ngot] = 0;
}

static void plain_cb(loop_t *loop, void *arg)
{
    (void)loop;
    say("C%d", (int)(intptr_t)arg);
}

static void complete_cb(loop_t *loop, void *arg)
{
    (void)loop;
    struct event *e = arg;
    if (loop_future_set_result(e->f, (void *)(intptr_t)e->n) == 0)
        say("F%d set", e->n);
    loop_future_unref(e->f);
}

/* Plain callback fn(arg) after k units, or with call_soon for k = 0. */
static void later(loop_t *loop, int k, loop_fn *fn, void *arg)
{
    if (k)
        assert_int_equal(loop_call_later(loop, (uint64_t)k * UNIT_NS, fn, arg, NULL), 0);
    else
        assert_int_equal(loop_call_soon(loop, fn, arg, NULL), 0);
}

/* What awaiting a child printed; err stays only for a cancel of our own. */
static int child_outcome(struct instance *in, loop_task *kid, int err, void *v)
{
    if (err == 0)
        say("T%d got %d", in->me, (int)(intptr_t)v);
    else if (err == -ETIMEDOUT)
        say("T%d timeout", in->me);
    else if (err == -EIO)
        say("T%d child failed", in->me);
    else if (err == -ECANCELED &&
             loop_future_state(loop_task_future(kid)) == LOOP_FUTURE_CANCELLED)
        say("T%d child cancelled", in->me);
    else
        return err;
    return 0;
}

static int gather(struct instance *in, loop_task **kids, int n)
{
    loop_future *fs[MAX_KIDS];
    for (int i = 0; i < n; i++)
        fs[i] = loop_task_future(kids[i]);
    int err = loop_task_gather(fs, (size_t)n);
    if (err == -EIO) {
        say("T%d gather failed", in->me);
        return 0;
    }
    if (err)
        return err;
    char line[128];
    int len = snprintf(line, sizeof line, "T%d gathered", in->me);
    for (int i = 0; i < n; i++) {
        void *v;
        assert_int_equal(loop_future_result(fs[i], &v), 0);
        len += snprintf(line + len, sizeof line - (size_t)len, " %d", (int)(intptr_t)v);
    }
    say("%s", line);
    return 0;
}

static struct instance *new_instance(struct program *p, int template)
{
    assert_true(p->counter + 1 < (int)(sizeof p->in / sizeof *p->in));
    struct instance *in = &p->in[++p->counter];
    *in = (struct instance){p, template, p->counter};
    return in;
}

/* Two instances of template t in a group whose body sleeps one unit. */
static int group(struct instance *in, int t)
{
    loop_task_group *g;
    assert_int_equal(loop_task_group_new(&g), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(loop_task_group_spawn(g, run_template, new_instance(in->p, t), NULL), 0);
    int err = loop_task_group_end(g, loop_task_sleep(UNIT_NS));
    if (err == 0)
        say("T%d group ok", in->me);
    else if (err == -EIO)
        say("T%d group failed", in->me);
    return err == -EIO ? 0 : err;
}

static int do_op(struct instance *in, int k, loop_task **kids, int *nkids)
{
    struct program *p = in->p;
    const struct template *t = &p->t[in->t];
    char kind = t->kind[k];
    int a = t->arg[k];
    void *v = NULL;
    switch (kind) {
    case 's':
        return loop_task_sleep((uint64_t)a * UNIT_NS);
    case 'p':
        assert_true(*nkids < MAX_KIDS);
        kids[(*nkids)++] = spawn(p->loop, run_template, new_instance(p, a));
        return 0;
    case 'G':
        return group(in, a);
    case 'c':
        say("T%d cancel %d", in->me, loop_task_cancel(kids[a]));
        return 0;
    case 'a': {
        int err = loop_task_await(loop_task_future(kids[a]), &v);
        return child_outcome(in, kids[a], err, v);
    }
    case 'w': {
        uint64_t timeout = (uint64_t)t->arg2[k] * UNIT_NS;
        int err = loop_task_wait_for(loop_task_future(kids[a]), timeout, &v);
        return child_outcome(in, kids[a], err, v);
    }
    case 'g':
        return gather(in, kids, a + 1);
    case 'k':
        later(p->loop, a, plain_cb, (void *)(intptr_t)++p->nevents);
        return 0;
    case 'f': {
        assert_true(p->nevents + 1 < (int)(sizeof p->events / sizeof *p->events));
        struct event *e = &p->events[++p->nevents];
        e->n = p->nevents;
        e->f = new_future(p->loop);
        loop_future_ref(e->f); /* the callback's */
        later(p->loop, a, complete_cb, e);
        int err = loop_task_await(e->f, &v);
        loop_future_unref(e->f);
        if (!err)
            say("T%d got F%d", in->me, (int)(intptr_t)v);
        return err;
    }
    case 'e':
        say("T%d fails", in->me);
        return -EIO;
    }
    fail_msg("unknown op %c", kind);
    return -EINVAL;
}

static int run_template(loop_t *loop, void *arg, void **result)
{
    (void)loop;
    struct instance *in = arg;
    const struct template *t = &in->p->t[in->t];
    loop_task *kids[MAX_KIDS];
    int nkids = 0, err = 0;
    for (int k = 0; k < t->nops; k++) {
        say("T%d op%d %c%d", in->me, k, t->kind[k], t->arg[k]);
        if (t->kind[k] == 'w')
            say_more("%d", t->arg2[k]);
        err = do_op(in, k, kids, &nkids);
        if (err == -ECANCELED) {
            say("T%d caught", in->me);
            if (!t->stubborn)
                break;
            err = 0;
        }
        if (err == -EIO)
            break;
        assert_int_equal(err, 0);
    }
    if (!err)
        say("T%d end", in->me);
    for (int i = 0; i < nkids; i++)
        loop_task_unref(kids[i]);
    *result = (void *)(intptr_t)in->me;
    return err;
}

/* Python's main(): awaits template 0 as a coroutine, and says if it ended
 * cancelled. */
static int run_main(loop_t *loop, void *arg, void **result)
{
    if (run_template(loop, arg, result) == -ECANCELED)
        say("main cancelled");
    return 0;
}

/* Read one program and its expected trace; false at the end of the file. */
static bool read_program(FILE *f, struct program *p, char *want, size_t size)
{
    char line[256];
    if (!fgets(line, sizeof line, f))
        return false;
    assert_int_equal(sscanf(line, "program %d", &p->n), 1);
    assert_true(p->n > 0 && p->n <= MAX_TEMPLATES);
    for (int i = 0; i < p->n; i++) {
        assert_non_null(fgets(line, sizeof line, f));
        struct template *t = &p->t[i];
        char *s = line;
        t->stubborn = strtol(s, &s, 10) != 0;
        t->nops = 0;
        for (char *tok = strtok(s, " \n"); tok; tok = strtok(NULL, " \n")) {
            assert_true(t->nops < MAX_OPS);
            t->kind[t->nops] = tok[0];
            if (tok[0] == 'w') { /* wJK: child J, K units */
                t->arg[t->nops] = tok[1] - '0';
                t->arg2[t->nops] = atoi(tok + 2);
            } else {
                t->arg[t->nops] = atoi(tok + 1);
            }
            t->nops++;
        }
    }
    size_t n = 0;
    want[0] = 0;
    while (fgets(line, sizeof line, f) && strcmp(line, "end\n") != 0) {
        size_t len = strlen(line);
        assert_true(n + len < size);
        memcpy(want + n, line, len + 1);
        n += len;
    }
    return true;
}

static FILE *open_beside_this_file(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    char *at = slash ? slash + 1 : path;
    snprintf(at, sizeof path - (size_t)(at - path), "%s", name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    return f;
}

static void test_random_task_programs_trace_as_on_asyncio(void **state)
{
    (void)state;
    const char *file = getenv("LOOP_HOPS_FILE");
    FILE *f = file ? fopen(file, "r") : open_beside_this_file("hops_random.txt");
    assert_non_null(f);
    static char want[16384];
    static struct program p;
    int programs = 0;
    while (read_program(f, &p, want, sizeof want)) {
        p.loop = new_virtual_loop(true);
        p.counter = 0;
        p.nevents = 0;
        ngot = 0;
        got[0] = 0;
        struct instance *root = &p.in[0];
        *root = (struct instance){&p, 0, 0};
        assert_int_equal(loop_task_spawn(p.loop, run_main, root, NULL), 0);
        assert_int_equal(loop_run(p.loop), 0);
        assert_int_equal(loop_free(p.loop), 0);
        if (strcmp(got, want) != 0)
            fail_msg("program %d differs:\n--- asyncio\n%s--- libloop\n%s", programs, want, got);
        programs++;
    }
    fclose(f);
    if (!file)
        assert_int_equal(programs, 200);
    assert_true(programs > 0);
    print_message("%d programs gave asyncio's trace\n", programs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_task_programs_trace_as_on_asyncio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
