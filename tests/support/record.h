/*
 * A record of which callbacks ran, in order, and loop_now() when each ran:
 * what most ordering tests compare with what they expect.  Include after
 * fixtures.h.
 *
 *     struct record r = {0};
 *     struct mark a = {&r, 'a'}, b = {&r, 'b'};
 *     loop_call_soon(loop, record_cb, &b, NULL);
 *     loop_call_at(loop, 0, record_cb, &a, NULL);
 *     ... loop_run(loop) ...
 *     assert_string_equal(record_string(&r), "ba");
 */
#ifndef LOOP_TESTS_RECORD_H
#define LOOP_TESTS_RECORD_H

#include <stdint.h>

#define RECORD_MAX 256

struct record {
    int n;
    int id[RECORD_MAX];
    uint64_t now[RECORD_MAX]; /* loop_now() when id ran */
};

/* What record_cb writes, and where. */
struct mark {
    struct record *r;
    int id;
};

static inline void record_add(struct record *r, loop_t *loop, int id)
{
    assert_true(r->n < RECORD_MAX);
    r->id[r->n] = id;
    r->now[r->n] = loop_now(loop);
    r->n++;
}

/* A callback whose arg is a struct mark. */
static inline void record_cb(loop_t *loop, void *arg)
{
    const struct mark *m = arg;
    record_add(m->r, loop, m->id);
}

/* An fd handler whose arg is a struct mark. */
static inline void record_io(loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)fd;
    (void)events;
    record_cb(loop, arg);
}

/* The ids so far as a string, for records whose ids are characters
 * (valid until the next call). */
static inline const char *record_string(const struct record *r)
{
    static char s[RECORD_MAX + 1];
    int i;
    for (i = 0; i < r->n; i++)
        s[i] = (char)r->id[i];
    s[i] = '\0';
    return s;
}

#endif /* LOOP_TESTS_RECORD_H */
