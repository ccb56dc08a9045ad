#include "example.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *program = "example";

static void usage_exit(const char *usage, int status)
{
    fprintf(status ? stderr : stdout,
            "usage: %s %s\n"
            "  --virtual-time  run on the loop's virtual clock: no waiting, same output\n",
            program, usage);
    exit(status);
}

loop_t *example_start(int argc, char **argv, const char *usage, const char **operand)
{
    loop_options opts = {0};
    bool operand_seen = false;

    if (argc > 0 && argv[0] && argv[0][0]) {
        const char *slash = strrchr(argv[0], '/');
        program = slash ? slash + 1 : argv[0];
    }
    if (operand)
        *operand = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--virtual-time") == 0)
            opts.clock = LOOP_CLOCK_VIRTUAL;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            usage_exit(usage, 0);
        else if (operand && !operand_seen && (argv[i][0] != '-' || argv[i][1] == '\0')) {
            *operand = argv[i];
            operand_seen = true;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s'\n", program, argv[i]);
            usage_exit(usage, 2);
        }
    }

    setvbuf(stdout, NULL, _IOLBF, 0);

    loop_t *loop;
    example_check(loop_new_with(&loop, &opts), "loop_new_with");
    return loop;
}

int example_run(loop_t *loop)
{
    int err = loop_run(loop);
    if (err < 0)
        fprintf(stderr, "%s: loop_run: %s\n", program, loop_strerror(err));
    loop_free(loop);
    return err < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

void example_check(int err, const char *what)
{
    if (err < 0) {
        fprintf(stderr, "%s: %s: %s\n", program, what, loop_strerror(err));
        exit(EXIT_FAILURE);
    }
}
