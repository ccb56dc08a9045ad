/*
 * Spawn latency: from the call that starts /bin/true to the moment its
 * exit is known (libloop: the exit future done; libuv: the exit callback
 * called), with the parent holding RSS_MIB MiB of memory it has touched.
 *
 *     bench_spawn libloop|libuv RSS_MIB SPAWNS
 *
 * Prints one line: lib=... rss_mib=... spawns=... median_us=... min_us=...
 * max_us=... (over the SPAWNS spawns).  bench/process/run.sh runs it.
 */
#include "loop_process.h"

#ifdef BENCH_HAVE_UV
#include <uv.h>
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static char *true_argv[] = {"/bin/true", NULL};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int spawn_libloop(loop_t *loop)
{
    loop_process_options o = {.argv = true_argv};
    loop_process *p;
    int err = loop_process_spawn(loop, &o, &p);
    void *r = NULL;
    if (!err)
        err = loop_run_until_complete(loop, loop_process_exit(p), &r);
    loop_process_free(p);
    return err ? err : loop_process_returncode(r);
}

#ifdef BENCH_HAVE_UV
static int uv_status;
static void on_exit_uv(uv_process_t *p, int64_t status, int signo)
{
    uv_status = signo ? -signo : (int)status;
    uv_close((uv_handle_t *)p, NULL);
}

static int spawn_uv(uv_loop_t *loop)
{
    uv_process_t p;
    uv_process_options_t o;
    memset(&o, 0, sizeof(o));
    o.file = true_argv[0];
    o.args = true_argv;
    o.exit_cb = on_exit_uv;
    uv_status = -1;
    int err = uv_spawn(loop, &p, &o);
    if (err) {
        uv_close((uv_handle_t *)&p, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        return err;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_status;
}
#endif

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s libloop|libuv RSS_MIB SPAWNS\n", argv[0]);
        return 2;
    }
    const char *lib = argv[1];
    size_t rss = (size_t)atol(argv[2]) << 20;
    int n = atoi(argv[3]);
    if (n < 1)
        return 2;
    /* The parent's memory, touched page by page so that it is resident:
     * what a fork would have to copy the page tables of. */
    char *mem = mmap(NULL, rss, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return 1;
    for (size_t i = 0; i < rss; i += 4096)
        mem[i] = (char)i;
    uint64_t *ns = calloc((size_t)n, sizeof(*ns));
    loop_t *loop = NULL;
    if (!ns || loop_new(&loop) != 0)
        return 1;
#ifdef BENCH_HAVE_UV
    uv_loop_t uv;
    uv_loop_init(&uv);
#endif
    for (int i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        int rc;
        if (!strcmp(lib, "libloop"))
            rc = spawn_libloop(loop);
#ifdef BENCH_HAVE_UV
        else if (!strcmp(lib, "libuv"))
            rc = spawn_uv(&uv);
#endif
        else {
            fprintf(stderr, "bench_spawn: %s is not built in\n", lib);
            return 2;
        }
        ns[i] = now_ns() - t0;
        if (rc != 0) {
            fprintf(stderr, "bench_spawn: %s: /bin/true gave %d\n", lib, rc);
            return 1;
        }
    }
    qsort(ns, (size_t)n, sizeof(*ns), cmp);
    printf("lib=%s rss_mib=%s spawns=%d median_us=%.1f min_us=%.1f max_us=%.1f\n", lib, argv[2], n,
           ns[n / 2] / 1e3, ns[0] / 1e3, ns[n - 1] / 1e3);
#ifdef BENCH_HAVE_UV
    uv_loop_close(&uv);
#endif
    loop_free(loop);
    free(ns);
    munmap(mem, rss);
    return 0;
}
