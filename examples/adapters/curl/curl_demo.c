/*
 * curl_demo: fetch URLs concurrently with libcurl's multi-socket interface
 * on a libloop loop, through the adapter in loop_curl.h.
 *
 *   curl_demo [--check-fds] [--timeout MS] URL...
 *
 * Starts every transfer at once and runs the loop until all have ended.
 * For each URL, in the order given, prints one line:
 *
 *     URL: HTTP 200, 6 bytes, fnv1a 0x4f9f2cab
 *
 * (the FNV-1a hash of the body, so that a caller can check it), or, on
 * stderr, "curl_demo: URL: " and libcurl's message for the error.  Each
 * line is printed by the transfer's completion callback, in whatever order
 * the transfers end, and gathered at the end in URL order.  --timeout MS
 * gives each transfer MS milliseconds (CURLOPT_TIMEOUT_MS).  --check-fds
 * counts the process's open fds before the first transfer and after the
 * adapter is freed, and prints both ("fds: N before, M after"); they must
 * be equal.
 *
 * Exits 0 when every transfer got an HTTP 2xx answer, 1 otherwise (any
 * error, any other status, an fd leaked), 2 for bad usage.
 */
#include "loop_curl.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *program = "curl_demo";

struct fetch {
    const char *url;
    CURL *easy;
    uint32_t hash; /* FNV-1a of the body so far */
    size_t bytes;
    char line[512]; /* what to print at the end */
    bool ok;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct fetch *f = arg;
    for (size_t i = 0; i < size * n; i++)
        f->hash = (f->hash ^ (unsigned char)data[i]) * 16777619u;
    f->bytes += size * n;
    return size * n;
}

static void on_done(loop_curl *lc, CURL *easy, CURLcode result, void *arg)
{
    struct fetch *f = arg;
    long status = 0;

    (void)lc;
    if (result != CURLE_OK) {
        snprintf(f->line, sizeof(f->line), "%s: %s: %s", program, f->url,
                 curl_easy_strerror(result));
    } else {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        snprintf(f->line, sizeof(f->line), "%s: HTTP %ld, %zu bytes, fnv1a 0x%08x", f->url, status,
                 f->bytes, (unsigned)f->hash);
        f->ok = status >= 200 && status < 300;
    }
    curl_easy_cleanup(easy);
    f->easy = NULL;
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
    fprintf(stderr, "usage: %s [--check-fds] [--timeout MS] URL...\n", program);
    return 2;
}

/* Start every fetch; false (with a message) if one cannot start. */
static bool start_all(loop_curl *lc, struct fetch *fetches, int n, long timeout_ms)
{
    for (int i = 0; i < n; i++) {
        struct fetch *f = &fetches[i];
        int err;
        f->hash = 2166136261u;
        f->easy = curl_easy_init();
        if (f->easy == NULL) {
            fprintf(stderr, "%s: curl_easy_init failed\n", program);
            return false;
        }
        curl_easy_setopt(f->easy, CURLOPT_URL, f->url);
        curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, f);
        curl_easy_setopt(f->easy, CURLOPT_NOSIGNAL, 1L);
        if (timeout_ms > 0)
            curl_easy_setopt(f->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
        err = loop_curl_add(lc, f->easy, on_done, f);
        if (err) {
            fprintf(stderr, "%s: %s: %s\n", program, f->url, loop_strerror(err));
            curl_easy_cleanup(f->easy);
            f->easy = NULL;
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    bool check_fds = false, failed = false;
    long timeout_ms = 0;
    int first = 1, fds_before = 0, err;
    loop_t *loop = NULL;
    loop_curl *lc;

    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "--check-fds") == 0)
            check_fds = true;
        else if (strcmp(argv[first], "--timeout") == 0 && first + 1 < argc)
            timeout_ms = strtol(argv[++first], NULL, 10);
        else
            return usage();
    }
    int n = argc - first;
    if (n <= 0)
        return usage();
    struct fetch *fetches = calloc((size_t)n, sizeof(*fetches));
    if (fetches == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(fetches);
        return 1;
    }
    for (int i = 0; i < n; i++)
        fetches[i].url = argv[first + i];

    if (check_fds)
        fds_before = count_fds();
    if ((err = loop_new(&loop)) < 0 || (err = loop_curl_new(loop, &lc)) < 0) {
        fprintf(stderr, "%s: %s\n", program, loop_strerror(err));
        loop_free(loop); /* -EINVAL if there is none */
        free(fetches);
        curl_global_cleanup();
        return 1;
    }
    failed = !start_all(lc, fetches, n, timeout_ms);
    err = loop_run(loop); /* until every transfer has ended */
    if (err) {
        fprintf(stderr, "%s: loop_run: %s\n", program, loop_strerror(err));
        failed = true;
    }
    loop_curl_free(lc); /* ends any transfer still running: done cleans it up */
    loop_free(loop);

    for (int i = 0; i < n; i++) {
        if (fetches[i].line[0] != '\0')
            fprintf(fetches[i].ok ? stdout : stderr, "%s\n", fetches[i].line);
        failed = failed || !fetches[i].ok;
    }
    if (check_fds) {
        int fds_after = count_fds();
        printf("fds: %d before, %d after\n", fds_before, fds_after);
        failed = failed || fds_after != fds_before;
    }
    free(fetches);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
