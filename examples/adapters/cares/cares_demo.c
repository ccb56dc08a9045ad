/*
 * cares_demo: resolve names with c-ares on a libloop loop, through the
 * adapter in loop_cares.h.
 *
 *   cares_demo [--server IP:PORT] [--timeout MS] [--tries N] [--check-fds] NAME...
 *
 * Asks for every NAME's IPv4 addresses at once (ares_getaddrinfo()), and
 * runs the loop until every answer is in.  Then prints, in the order the
 * names were given, one line per name:
 *
 *     NAME: 10.1.2.3
 *
 * (all of its addresses, separated by spaces), or, on stderr,
 * "cares_demo: NAME: " and c-ares's message for the error.  --server
 * asks that server instead of /etc/resolv.conf's; --timeout and --tries
 * are c-ares's ARES_OPT_TIMEOUTMS and ARES_OPT_TRIES.  --check-fds counts
 * the process's open fds before the channel is made and after it is
 * freed, and prints both ("fds: N before, M after"); they must be equal.
 *
 * Exits 0 when every name resolved, 1 otherwise, 2 for bad usage.
 */
#include "loop_cares.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *program = "cares_demo";

struct lookup {
    const char *name;
    char line[512];
    bool ok, done;
};

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct lookup *l = arg;
    size_t n;

    (void)timeouts;
    l->done = true;
    if (status != ARES_SUCCESS) {
        snprintf(l->line, sizeof(l->line), "%s: %s: %s", program, l->name, ares_strerror(status));
        return;
    }
    n = (size_t)snprintf(l->line, sizeof(l->line), "%s:", l->name);
    for (struct ares_addrinfo_node *a = res->nodes; a != NULL && n < sizeof(l->line);
         a = a->ai_next) {
        char ip[INET_ADDRSTRLEN];
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)a->ai_addr;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        n += (size_t)snprintf(l->line + n, sizeof(l->line) - n, " %s", ip);
    }
    l->ok = true;
    ares_freeaddrinfo(res);
}

/* Open fds below the soft limit (valgrind keeps its own above it). */
static int count_fds(void)
{
    struct rlimit rl;
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (dir == NULL || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        if (dir != NULL)
            closedir(dir);
        return -1;
    }
    while ((e = readdir(dir)) != NULL) {
        long fd = strtol(e->d_name, NULL, 10);
        if (e->d_name[0] != '.' && fd != dirfd(dir) && (rlim_t)fd < rl.rlim_cur)
            n++;
    }
    closedir(dir);
    return n;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: %s [--server IP:PORT] [--timeout MS] [--tries N] [--check-fds] NAME...\n",
            program);
    return 2;
}

int main(int argc, char **argv)
{
    struct ares_options opts;
    int optmask = 0, first = 1, fds_before = 0, err;
    const char *server = NULL;
    bool check_fds = false, failed = false;
    loop_t *loop = NULL;
    loop_cares *lc;

    memset(&opts, 0, sizeof(opts));
    for (; first < argc && argv[first][0] == '-'; first++) {
        const char *a = argv[first], *v = first + 1 < argc ? argv[first + 1] : NULL;
        if (strcmp(a, "--check-fds") == 0) {
            check_fds = true;
        } else if (strcmp(a, "--server") == 0 && v) {
            server = v;
            first++;
        } else if (strcmp(a, "--timeout") == 0 && v) {
            opts.timeout = atoi(v);
            optmask |= ARES_OPT_TIMEOUTMS;
            first++;
        } else if (strcmp(a, "--tries") == 0 && v) {
            opts.tries = atoi(v);
            optmask |= ARES_OPT_TRIES;
            first++;
        } else {
            return usage();
        }
    }
    int n = argc - first;
    if (n <= 0)
        return usage();
    struct lookup *lookups = calloc((size_t)n, sizeof(*lookups));
    if (lookups == NULL || ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        free(lookups);
        return 1;
    }

    if (check_fds)
        fds_before = count_fds();
    if ((err = loop_new(&loop)) < 0 || (err = loop_cares_new(loop, &opts, optmask, &lc)) < 0) {
        fprintf(stderr, "%s: %s\n", program, loop_strerror(err));
        loop_free(loop); /* -EINVAL if there is none */
        free(lookups);
        ares_library_cleanup();
        return 1;
    }
    if (server && ares_set_servers_ports_csv(loop_cares_channel(lc), server) != ARES_SUCCESS) {
        fprintf(stderr, "%s: bad server %s\n", program, server);
        loop_free(loop); /* frees the channel too */
        free(lookups);
        ares_library_cleanup();
        return 2;
    }
    for (int i = 0; i < n; i++) {
        struct ares_addrinfo_hints hints = {.ai_family = AF_INET};
        lookups[i].name = argv[first + i];
        ares_getaddrinfo(loop_cares_channel(lc), lookups[i].name, NULL, &hints, on_addrinfo,
                         &lookups[i]);
    }
    err = loop_run(loop); /* until every answer is in */
    if (err) {
        fprintf(stderr, "%s: loop_run: %s\n", program, loop_strerror(err));
        failed = true;
    }
    loop_cares_free(lc);
    loop_free(loop);

    for (int i = 0; i < n; i++) {
        fprintf(lookups[i].ok ? stdout : stderr, "%s\n", lookups[i].line);
        failed = failed || !lookups[i].ok;
    }
    if (check_fds) {
        int fds_after = count_fds();
        printf("fds: %d before, %d after\n", fds_before, fds_after);
        failed = failed || fds_after != fds_before;
    }
    free(lookups);
    ares_library_cleanup();
    return failed ? 1 : 0;
}
