/*
 * Random task programs give asyncio's trace (DESIGN 5.3): hops_random.py
 * ran 200 random programs of sleeps, spawns, awaits and cancels on Python
 * 3.11's asyncio under a virtual clock and wrote each program with its
 * trace to hops_random.txt; this suite runs each on the virtual clock and
 * compares the traces line for line.
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
    int arg[MAX_OPS];
};

struct instance {
    struct program *p;
    int t, me;
};

struct program {
    int n;
    struct template t[MAX_TEMPLATES];
    loop_t *loop;
    int counter;
    struct instance in[256]; /* one per task: some never run their body */
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

static int do_op(struct instance *in, char kind, int a, loop_task **kids, int *nkids)
{
    struct program *p = in->p;
    if (kind == 's')
        return loop_task_sleep((uint64_t)a * UNIT_NS);
    if (kind == 'p') {
        assert_true(p->counter + 1 < (int)(sizeof p->in / sizeof *p->in));
        struct instance *child = &p->in[++p->counter];
        *child = (struct instance){p, a, p->counter};
        assert_true(*nkids < MAX_KIDS);
        kids[(*nkids)++] = spawn(p->loop, run_template, child);
        return 0;
    }
    if (kind == 'c') {
        say("T%d cancel %d", in->me, loop_task_cancel(kids[a]));
        return 0;
    }
    void *v = NULL;
    int err = loop_task_await(loop_task_future(kids[a]), &v);
    if (err == 0) {
        say("T%d got %d", in->me, (int)(intptr_t)v);
    } else if (err == -ECANCELED && loop_future_done(loop_task_future(kids[a]))) {
        say("T%d child cancelled", in->me);
        err = 0;
    }
    return err;
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
        err = do_op(in, t->kind[k], t->arg[k], kids, &nkids);
        if (err == -ECANCELED) {
            say("T%d caught", in->me);
            if (!t->stubborn)
                break;
            err = 0;
        }
        assert_int_equal(err, 0);
    }
    if (!err)
        say("T%d end", in->me);
    for (int i = 0; i < nkids; i++)
        loop_task_unref(kids[i]);
    *result = (void *)(intptr_t)in->me;
    return err;
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
            t->arg[t->nops++] = atoi(tok + 1);
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
    FILE *f = open_beside_this_file("hops_random.txt");
    static char want[16384];
    static struct program p;
    int programs = 0;
    while (read_program(f, &p, want, sizeof want)) {
        p.loop = new_virtual_loop(true);
        p.counter = 0;
        ngot = 0;
        got[0] = 0;
        struct instance *root = &p.in[0];
        *root = (struct instance){&p, 0, 0};
        assert_int_equal(loop_task_spawn(p.loop, run_template, root, NULL), 0);
        assert_int_equal(loop_run(p.loop), 0);
        assert_int_equal(loop_free(p.loop), 0);
        if (strcmp(got, want) != 0)
            fail_msg("program %d differs:\n--- asyncio\n%s--- libloop\n%s", programs, want, got);
        programs++;
    }
    fclose(f);
    assert_int_equal(programs, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_task_programs_trace_as_on_asyncio),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
