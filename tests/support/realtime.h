/*
 * Real time, for the suites that wait on CLOCK_MONOTONIC.  Such a suite
 * asserts "never early" strictly and "not absurdly late" generously: the
 * machine may be loaded, valgrind may run it, and neither makes a timer
 * early.
 */
#ifndef LOOP_TESTS_REALTIME_H
#define LOOP_TESTS_REALTIME_H

#include <stdint.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* CLOCK_MONOTONIC in nanoseconds: the clock of a loop on real time. */
static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Keep the CPU busy until CLOCK_MONOTONIC has moved ns past its value now. */
static inline void spin_ns(uint64_t ns)
{
    uint64_t start = mono_ns();
    while (mono_ns() - start < ns) {
    }
}

#endif /* LOOP_TESTS_REALTIME_H */
