/*
 * Helpers for the coroutine suites: run a check in a child process, make
 * the child's kernel refuse a call (seccomp) to reach a fallback or an
 * error path, see which pages are mapped or resident, count mappings.
 */
#ifndef TESTS_CORO_TESTING_H
#define TESTS_CORO_TESTING_H

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

/* In a child: report a failed check and exit with status 1. */
#define CHILD_CHECK(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: child check failed: %s\n", __FILE__, __LINE__, #cond);         \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

/* Run fn(arg) in a child process (which must _exit) and return its wait status. */
static inline int run_in_child(void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    int status = -1;
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    return status;
}

/* Under valgrind (its preload library is in the environment). */
static inline bool under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p != NULL && strstr(p, "vgpreload") != NULL;
}

#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/*
 * From now on, in this process, syscall nr fails with err when
 * (argument `arg` & mask) == value (low 32 bits of the argument).  Returns 0
 * or -1.  For children only: it cannot be undone.
 */
static inline int refuse_syscall(int nr, int arg, uint32_t mask, uint32_t value, int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[arg])),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, mask),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, value, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((uint32_t)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0 ? 0 : -1;
}

/* Make MADV_GUARD_INSTALL unknown to the kernel, as before Linux 6.13. */
static inline int refuse_guard_install(void)
{
    return refuse_syscall(__NR_madvise, 2, 0xffffffffu, 102, EINVAL);
}

/* Make every mmap of a stack (MAP_STACK) fail as if memory ran out. */
static inline int refuse_stack_mmap(void)
{
    return refuse_syscall(__NR_mmap, 3, MAP_STACK, MAP_STACK, ENOMEM);
}

static inline size_t test_page(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* Whether the page holding addr is mapped (mincore fails with ENOMEM if not). */
static inline bool page_mapped(const void *addr)
{
    unsigned char v;
    void *page = (void *)((uintptr_t)addr & ~(uintptr_t)(test_page() - 1));
    return mincore(page, test_page(), &v) == 0 || errno != ENOMEM;
}

/* Resident pages in [lo, hi), both page-aligned; -1 if not all mapped. */
static inline long resident_pages(const void *lo, const void *hi)
{
    size_t n = (size_t)((const char *)hi - (const char *)lo) / test_page();
    unsigned char *v = malloc(n ? n : 1);
    long count = 0;

    if (v == NULL || mincore((void *)lo, n * test_page(), v) != 0)
        count = -1;
    for (size_t i = 0; count >= 0 && i < n; i++)
        count += v[i] & 1;
    free(v);
    return count;
}

/* Lines in /proc/self/maps: the process's mappings. */
static inline long count_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int ch;

    if (f == NULL)
        return -1;
    while ((ch = getc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

/*
 * How many of the process's mappings (lines of /proc/self/maps) hold at
 * least one of the n addresses: a measure of what a set of stacks costs.
 */
static inline long mappings_holding(void *const *addrs, size_t n)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    long count = 0;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
            continue;
        for (size_t i = 0; i < n; i++) {
            if ((uintptr_t)addrs[i] >= lo && (uintptr_t)addrs[i] < hi) {
                count++;
                break;
            }
        }
        if (strchr(line, '\n') == NULL) { /* skip the rest of a long line */
            int ch;
            while ((ch = getc(f)) != EOF && ch != '\n') {
            }
        }
    }
    fclose(f);
    return count;
}

#endif /* TESTS_CORO_TESTING_H */
