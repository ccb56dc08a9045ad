/* The command-timeout pattern: 10,000 request/reply rounds over a
 * socketpair, each pushing a 30 s timeout back (hiredis, curl). */
#include <loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int sv[2], left = 10000;
static loop_handle timeout;

static void never(loop_t *l, void *a) { (void)l; (void)a; abort(); }

static void ping(loop_t *loop, int fd, unsigned ev, void *arg)
{
    (void)ev; (void)arg;
    char c;
    if (read(fd, &c, 1) != 1) abort();
    loop_reschedule(loop, timeout, LOOP_SEC(30));
    if (--left == 0) { loop_remove_reader(loop, fd); loop_cancel(loop, timeout); return; }
    if (write(fd == sv[0] ? sv[1] : sv[0], "x", 1) != 1) abort();
}

int main(void)
{
    loop_t *loop;
    loop_options o = {.strict_poll = true};
    if (loop_new_with(&loop, &o) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) return 1;
    loop_call_later(loop, LOOP_SEC(30), never, NULL, &timeout);
    loop_add_reader(loop, sv[0], ping, NULL);
    if (write(sv[1], "x", 1) != 1) return 1;
    loop_run(loop);
    printf("done\n");
    return 0;
}
