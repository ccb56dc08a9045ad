/*
 * What every example shares: the command line (--virtual-time, --help),
 * line-buffered output, and creating, running and freeing the loop.
 */
#ifndef EXAMPLE_H
#define EXAMPLE_H

#include "loop.h"

/*
 * Parse the command line and create the loop: on the virtual clock if
 * --virtual-time is given, else on the real one.  `usage` is the text after
 * the program name in the usage line.  If `operand` is not NULL the program
 * takes one optional operand, stored there (or NULL if absent); otherwise
 * operands are refused.  Makes stdout line-buffered, so that every line
 * reaches a pipe as soon as it is printed.  Exits on bad usage or failure.
 */
loop_t *example_start(int argc, char **argv, const char *usage, const char **operand);

/* Run the loop until it stops, free it, and return the exit status. */
int example_run(loop_t *loop);

/* Exit with a message if a libloop call failed (err is its return value). */
void example_check(int err, const char *what);

#endif /* EXAMPLE_H */
