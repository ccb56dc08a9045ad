/*
 * The few internals that tests reach, one small helper per need, so that
 * renaming a field of struct loop (or moving a function between core
 * files) touches this file only.  Everything else in the tests goes
 * through include/loop.h.
 */
#ifndef LOOP_TESTS_INTERNALS_H
#define LOOP_TESTS_INTERNALS_H

#include "internal.h"

/* ---- the model-based suites and the fuzzer ---------------------------------
 *
 * They use the loop's invariant checker as an extra check after every step
 * and inside every callback; their oracle is the reference model
 * (tests/support/model.h), which sees only the public API.
 */

/* loop__verify(): 0, or -1 with the first broken internal invariant in *why. */
static inline int test_loop_verify(const loop_t *loop, const char **why)
{
    return loop__verify(loop, why);
}

#endif /* LOOP_TESTS_INTERNALS_H */
