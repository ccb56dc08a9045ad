/*
 * A deterministic pseudo-random sequence (splitmix64), so that a random
 * test does the same thing on every run and machine.  Each suite keeps its
 * own state and seed.
 */
#ifndef LOOP_TESTS_RNG_H
#define LOOP_TESTS_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t x = (*state += UINT64_C(0x9e3779b97f4a7c15));
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

#endif /* LOOP_TESTS_RNG_H */
