/*
 * What the fuzz target's files share: the input, the checks, and the fd
 * operations of fuzz_fds.c.  The oracle is the reference model of
 * tests/support/model.h (compiled in fuzz_loop.c).
 */
#ifndef LOOP_FUZZ_H
#define LOOP_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"

#define MAXREG 512 /* fd registrations per input */
#define MAXENT 24  /* fd entries (ends of socketpairs and their dups) */
#define MAXFDNUM 4096

extern int trace; /* FUZZ_TRACE=1: print every operation */

#define TRACE(...)                                                                                 \
    do {                                                                                           \
        if (trace > 0)                                                                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
    } while (0)

/* The input: bytes taken in order; 0 once it is used up. */
unsigned take(void);
unsigned take16(void);

/* A failed check: print it with what led to it, and abort. */
__attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...);
void expect_rc(int rc, int expected, const char *what);

/* May the running code (a callback, if inside) make one more callback or registration? */
bool spend(bool inside);

/* A watched fd was closed or dup2'd over behind the loop's back (which the
 * API forbids): the kernel no longer holds what the loop's fd table says. */
extern bool misused;

/* fuzz_fds.c */
void fds_reset(void);
void fds_wind_down(void);
unsigned fds_readiness(int fd, unsigned interest);
void drain_fd(int fd);
void op_add(unsigned dir, bool inside);
void op_remove_fd(int fd, unsigned dir);
void op_remove(unsigned dir);
void op_close(bool proper);
void op_socketpair(void);
void op_dup(void);
void op_dup2(void);
void op_write(void);
void op_drain(void);
void op_shutdown(void);
void op_flood(void);
void op_bad_fd(void);

#endif /* LOOP_FUZZ_H */
