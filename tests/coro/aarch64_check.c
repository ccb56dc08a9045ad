/*
 * The coroutine rules on AArch64, without cmocka (there is no cross build
 * of it): built with aarch64-linux-gnu-gcc -static together with the
 * layer's sources and run under qemu-user by run_aarch64.sh.  It checks
 * what the x86-64 suites check where the architecture matters: values in
 * and out, the errors, nesting, the callee-saved registers x19-x29 and
 * d8-d15 and the FPCR across switches, the guard below the stack, the
 * pool, many coroutines and random nested resumes.  Prints "N passed,
 * M failed" and exits non-zero if any check failed.
 */
#include "loop_coro.h"

#include <errno.h>
#include <fenv.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#if !defined(__aarch64__)
#error "aarch64_check.c is for AArch64 (see run_aarch64.sh)"
#endif

#define V(n) ((void *)(uintptr_t)(n))

static int failed_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #cond); \
            failed_checks++;                                                                       \
        }                                                                                          \
    } while (0)

/* ---- values in and out ------------------------------------------------ */

static void *counter(void *arg, void *first)
{
    uintptr_t n = (uintptr_t)first;
    void **seen = arg;

    seen[0] = first;
    seen[1] = loop_coro_current();
    for (uintptr_t k = 1;; k++) {
        void *in;
        if (loop_coro_yield(V(n + k), &in) != 0 || in == NULL)
            return V(1000 + k);
        seen[1 + k] = in;
    }
}

static void first_resume_value_is_what_the_entry_sees_and_yields_pass_values(void)
{
    void *seen[8] = {0}, *out;
    loop_coro *c;

    CHECK(loop_coro_new(&c, counter, seen, 0) == 0);
    CHECK(loop_coro_status(c) == LOOP_CORO_SUSPENDED);
    CHECK(loop_coro_resume(c, V(40), &out) == 1 && out == V(41));
    CHECK(seen[0] == V(40) && seen[1] == c);
    CHECK(loop_coro_current() == NULL);
    CHECK(loop_coro_resume(c, V(7), &out) == 1 && out == V(42));
    CHECK(seen[2] == V(7));
    CHECK(loop_coro_resume(c, NULL, &out) == 0 && out == V(1002));
    CHECK(loop_coro_status(c) == LOOP_CORO_DONE);
    CHECK(loop_coro_free(c) == 0);
}

/* ---- errors -------------------------------------------------------------- */

static int inside_resume_self, inside_free_self;

static void *misuse(void *arg, void *first)
{
    (void)arg;
    inside_resume_self = loop_coro_resume(loop_coro_current(), NULL, NULL);
    inside_free_self = loop_coro_free(loop_coro_current());
    return first;
}

static void bad_input_is_a_negative_errno(void)
{
    loop_coro *c = V(1);
    void *out = V(9);

    CHECK(loop_coro_new(NULL, misuse, NULL, 0) == -EINVAL);
    CHECK(loop_coro_new(&c, NULL, NULL, 0) == -EINVAL && c == V(1));
    CHECK(loop_coro_new(&c, misuse, NULL, SIZE_MAX) == -EINVAL);
    CHECK(loop_coro_resume(NULL, NULL, &out) == -EINVAL && out == V(9));
    CHECK(loop_coro_yield(NULL, NULL) == -EPERM);
    CHECK(loop_coro_free(NULL) == -EINVAL);
    CHECK(loop_coro_status(NULL) == -EINVAL);
    CHECK(loop_coro_new(&c, misuse, NULL, 0) == 0);
    CHECK(loop_coro_resume(c, V(5), &out) == 0 && out == V(5));
    CHECK(inside_resume_self == -EBUSY && inside_free_self == -EBUSY);
    CHECK(loop_coro_resume(c, V(6), &out) == -EINVAL && out == V(5));
    CHECK(loop_coro_free(c) == 0);
}

/* ---- nesting -------------------------------------------------------------- */

#define DEPTH 50
static loop_coro *chain[DEPTH];

static void *link_entry(void *arg, void *first)
{
    uintptr_t k = (uintptr_t)arg;
    void *out = first;

    if (k + 1 < DEPTH) {
        CHECK(loop_coro_resume(chain[k + 1], V((uintptr_t)first + 1), &out) == 0);
        CHECK(loop_coro_current() == chain[k]);
        CHECK(loop_coro_resume(chain[k > 0 ? k - 1 : 0], NULL, NULL) == -EBUSY);
    }
    return out;
}

static void nested_resumes_return_to_their_resumer(void)
{
    void *out;

    for (uintptr_t k = 0; k < DEPTH; k++)
        CHECK(loop_coro_new(&chain[k], link_entry, V(k), 0) == 0);
    CHECK(loop_coro_resume(chain[0], V(100), &out) == 0 && out == V(100 + DEPTH - 1));
    CHECK(loop_coro_current() == NULL);
    for (int k = 0; k < DEPTH; k++)
        CHECK(loop_coro_free(chain[k]) == 0);
}

/* ---- registers ------------------------------------------------------------ */

/*
 * unsigned regs_across(void (*fn)(void), uint64_t seed): put seed + i in
 * x19..x28 (i = 0..9), x29 (i = 10) and d8..d15 (i = 11..18), call fn, and
 * return a bit i for each register that lost its value.  The caller's
 * registers are saved and restored around all this.
 */
unsigned regs_across(void (*fn)(void), uint64_t seed);
#define SET_X(r, i) "    add " #r ", x1, #" #i "\n"
#define SET_D(r, i) "    add x9, x1, #" #i "\n    fmov " #r ", x9\n"
#define CMP_X(r, i)                                                                                \
    "    add x9, x1, #" #i "\n    cmp " #r ", x9\n    cset w10, ne\n    orr w0, w0, w10, lsl #" #i \
    "\n"
#define CMP_D(r, i)                                                                                \
    "    fmov x11, " #r "\n    add x9, x1, #" #i "\n    cmp x11, x9\n    cset w10, ne\n"           \
    "    orr w0, w0, w10, lsl #" #i "\n"
__asm__(".text\n"
        ".globl regs_across\n"
        ".type regs_across, %function\n"
        "regs_across:\n"
        "    stp x29, x30, [sp, #-176]!\n"
        "    stp x19, x20, [sp, #16]\n"
        "    stp x21, x22, [sp, #32]\n"
        "    stp x23, x24, [sp, #48]\n"
        "    stp x25, x26, [sp, #64]\n"
        "    stp x27, x28, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    str x1, [sp, #160]\n" SET_X(x19, 0) SET_X(x20, 1) SET_X(x21, 2) SET_X(x22, 3)
            SET_X(x23, 4) SET_X(x24, 5) SET_X(x25, 6) SET_X(x26, 7) SET_X(x27, 8) SET_X(x28, 9)
                SET_X(x29, 10) SET_D(d8, 11) SET_D(d9, 12) SET_D(d10, 13) SET_D(d11, 14)
                    SET_D(d12, 15) SET_D(d13, 16) SET_D(d14, 17)
                        SET_D(d15,
                              18) "    blr x0\n"
                                  "    ldr x1, [sp, #160]\n"
                                  "    mov w0, #0\n" CMP_X(x19, 0) CMP_X(x20, 1) CMP_X(x21, 2)
                                      CMP_X(x22, 3) CMP_X(x23, 4) CMP_X(x24, 5) CMP_X(x25, 6)
                                          CMP_X(x26, 7) CMP_X(x27, 8) CMP_X(x28, 9) CMP_X(x29, 10)
                                              CMP_D(d8, 11) CMP_D(d9, 12) CMP_D(d10, 13)
                                                  CMP_D(d11, 14) CMP_D(d12, 15) CMP_D(d13, 16)
                                                      CMP_D(d14, 17) CMP_D(
                                                          d15,
                                                          18) "    ldp x19, x20, [sp, #16]\n"
                                                              "    ldp x21, x22, [sp, #32]\n"
                                                              "    ldp x23, x24, [sp, #48]\n"
                                                              "    ldp x25, x26, [sp, #64]\n"
                                                              "    ldp x27, x28, [sp, #80]\n"
                                                              "    ldp d8, d9, [sp, #96]\n"
                                                              "    ldp d10, d11, [sp, #112]\n"
                                                              "    ldp d12, d13, [sp, #128]\n"
                                                              "    ldp d14, d15, [sp, #144]\n"
                                                              "    ldp x29, x30, [sp], #176\n"
                                                              "    ret\n"
                                                              ".size regs_across, .-regs_across\n");

static loop_coro *coro;
static int resume_rc;
static unsigned inside_bad;

static void do_resume(void)
{
    resume_rc = loop_coro_resume(coro, NULL, NULL);
}

static void do_yield(void)
{
    loop_coro_yield(NULL, NULL);
}

static void *clobbering_yielder(void *arg, void *first)
{
    (void)arg;
    (void)first;
    for (uint64_t round = 0; round < 3; round++)
        inside_bad |= regs_across(do_yield, 0x5a5a00000000u + round * 64);
    return NULL;
}

static void callee_saved_registers_survive_a_switch_on_both_sides(void)
{
    inside_bad = 0;
    CHECK(loop_coro_new(&coro, clobbering_yielder, NULL, 0) == 0);
    for (uint64_t round = 0; round < 4; round++) {
        unsigned bad = regs_across(do_resume, 0x111100000000u + round * 64);
        if (bad != 0)
            fprintf(stderr, "resumer lost registers: mask %#x\n", bad);
        CHECK(bad == 0);
        CHECK(resume_rc == (round < 3 ? 1 : 0));
    }
    if (inside_bad != 0)
        fprintf(stderr, "coroutine lost registers: mask %#x\n", inside_bad);
    CHECK(inside_bad == 0);
    CHECK(loop_coro_free(coro) == 0);
}

/* ---- FPCR -------------------------------------------------------------- */

#define FPCR_RMODE (3u << 22)
#define FPCR_RMODE_UP (1u << 22)
#define FPCR_FZ (1u << 24)

static uint64_t fpcr(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
}

static void set_fpcr(uint64_t v)
{
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
}

static double third(void)
{
    volatile double one = 1.0, three = 3.0;
    return one / three;
}

struct fpu_seen {
    uint64_t at_start, after_yield;
    double up, after;
};

static void *fpu_setter(void *arg, void *first)
{
    struct fpu_seen *s = arg;
    (void)first;

    s->at_start = fpcr();
    fesetround(FE_UPWARD);
    set_fpcr(fpcr() | FPCR_FZ);
    s->up = third();
    loop_coro_yield(NULL, NULL);
    s->after_yield = fpcr();
    s->after = third();
    return NULL;
}

static void fpcr_set_inside_does_not_leak_out_and_is_back_on_resume(void)
{
    struct fpu_seen s = {0};
    uint64_t before = fpcr();
    double nearest = third();

    CHECK(loop_coro_new(&coro, fpu_setter, &s, 0) == 0);
    CHECK(loop_coro_resume(coro, NULL, NULL) == 1);
    CHECK(fpcr() == before);
    CHECK(fegetround() == FE_TONEAREST);
    CHECK(third() == nearest);
    CHECK(s.up > nearest);
    fesetround(FE_DOWNWARD);
    CHECK(loop_coro_resume(coro, NULL, NULL) == 0);
    CHECK(fegetround() == FE_DOWNWARD);
    fesetround(FE_TONEAREST);
    CHECK((s.after_yield & FPCR_RMODE) == FPCR_RMODE_UP);
    CHECK((s.after_yield & FPCR_FZ) == FPCR_FZ);
    CHECK(s.after == s.up);
    CHECK(loop_coro_free(coro) == 0);
}

static void a_new_coroutine_starts_with_its_creators_fpcr(void)
{
    struct fpu_seen s = {0};

    fesetround(FE_TOWARDZERO);
    CHECK(loop_coro_new(&coro, fpu_setter, &s, 0) == 0);
    fesetround(FE_TONEAREST);
    CHECK(loop_coro_resume(coro, NULL, NULL) == 1);
    CHECK((s.at_start & FPCR_RMODE) == FPCR_RMODE);
    CHECK(loop_coro_free(coro) == 0);
}

/* ---- stacks ------------------------------------------------------------- */

#define SMALL_STACK ((size_t)64 * 1024)
static char *guard_lo, *guard_hi;
static volatile int dive_limit = 1 << 30;

static __attribute__((noinline)) int dive(volatile char *prev, int depth)
{
    volatile char buf[512];

    buf[0] = (char)depth;
    buf[sizeof(buf) - 1] = prev != NULL ? prev[0] : 0;
    if (depth > dive_limit)
        return 0;
    return dive(buf, depth + 1) + buf[100];
}

static void *diver(void *arg, void *first)
{
    (void)arg;
    (void)first;
    return V(dive(NULL, 0));
}

static void on_segv(int signo, siginfo_t *si, void *ctx)
{
    (void)signo;
    (void)ctx;
    char *a = si->si_addr;
    _exit(a >= guard_lo && a < guard_hi ? 42 : 43);
}

static void overflow_is_a_sigsegv_on_the_guard_below_the_stack(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        static char altstack[256 * 1024];
        stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
        struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_ONSTACK};
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        loop_coro *c;

        if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0 ||
            loop_coro_new(&c, diver, NULL, SMALL_STACK) != 0)
            _exit(3);
        guard_hi = (char *)c - SMALL_STACK;
        guard_lo = guard_hi - page - 4 * page;
        loop_coro_resume(c, NULL, NULL);
        _exit(2);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 42)
        fprintf(stderr, "overflow child: status %#x\n", status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42);
}

static void *yield_once(void *arg, void *first)
{
    (void)arg;
    void *in = NULL;
    loop_coro_yield(first, &in);
    return in;
}

static void freed_stacks_are_pooled_and_trimmed(void)
{
    loop_coro *a, *b;

    loop_coro_pool_trim();
    CHECK(loop_coro_new(&a, yield_once, NULL, 0) == 0);
    CHECK(loop_coro_resume(a, V(1), NULL) == 1);
    CHECK(loop_coro_free(a) == 0);
    CHECK(loop_coro_new(&b, yield_once, NULL, 0) == 0);
    CHECK(b == a);
    CHECK(loop_coro_free(b) == 0);
    CHECK(loop_coro_pool_trim() == 1);
}

#define ALIVE 10000

static void ten_thousand_coroutines_are_alive_at_once(void)
{
    static loop_coro *cs[ALIVE];
    void *out;
    int bad = 0;

    for (uintptr_t i = 0; i < ALIVE; i++) {
        bad += loop_coro_new(&cs[i], yield_once, NULL, 0) != 0;
        bad += loop_coro_resume(cs[i], V(i), &out) != 1 || out != V(i);
    }
    for (uintptr_t i = ALIVE; i-- > 0;) {
        bad += loop_coro_resume(cs[i], V(i + 7), &out) != 0 || out != V(i + 7);
        bad += loop_coro_free(cs[i]) != 0;
    }
    CHECK(bad == 0);
    loop_coro_pool_trim();
}

/* ---- random nested resumes ---------------------------------------------- */

#define N 32
struct co {
    loop_coro *c;
    uintptr_t k;
    uint32_t len, sent, received;
};
static struct co coros[N];
static uint64_t rng;
static int depth, random_errors;

static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static uintptr_t value(uintptr_t k, uint32_t seq)
{
    return k << 24 | seq;
}

static void drive(struct co *j)
{
    void *out = NULL;
    int rc = loop_coro_resume(j->c, V(value(j->k, j->sent++)), &out);

    if (j->sent == j->len)
        random_errors += rc != 0 || (uintptr_t)out != value(j->k, 0xffffff);
    else
        random_errors += rc != 1 || (uintptr_t)out != value(j->k, j->sent - 1);
}

static struct co *pick(void)
{
    uint32_t start = next_random() % N;

    for (uint32_t i = 0; i < N; i++)
        if (loop_coro_status(coros[(start + i) % N].c) == LOOP_CORO_SUSPENDED)
            return &coros[(start + i) % N];
    return NULL;
}

static void *worker(void *arg, void *first)
{
    struct co *me = arg;
    void *in = first;

    for (;;) {
        random_errors += (uintptr_t)in != value(me->k, me->received);
        uint32_t seq = me->received++;
        if (me->received == me->len)
            return V(value(me->k, 0xffffff));
        while (depth < 6 && next_random() % 3 == 0) {
            struct co *j = pick();
            if (j == NULL)
                break;
            depth++;
            drive(j);
            depth--;
        }
        loop_coro_yield(V(value(me->k, seq)), &in);
    }
}

static void every_value_arrives_once_in_order_under_random_nested_resumes(void)
{
    random_errors = 0;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        rng = seed * 0x9e3779b97f4a7c15u;
        for (uintptr_t k = 0; k < N; k++) {
            coros[k] = (struct co){.k = k, .len = 1 + next_random() % 30};
            CHECK(loop_coro_new(&coros[k].c, worker, &coros[k], k % 2 ? 0 : 32 * 1024) == 0);
        }
        struct co *j;
        while ((j = pick()) != NULL)
            drive(j);
        for (int k = 0; k < N; k++) {
            random_errors += coros[k].received != coros[k].len;
            random_errors += loop_coro_free(coros[k].c) != 0;
        }
    }
    CHECK(random_errors == 0);
}

int main(void)
{
    static const struct {
        void (*fn)(void);
        const char *name;
    } tests[] = {
#define T(f) {f, #f}
        T(first_resume_value_is_what_the_entry_sees_and_yields_pass_values),
        T(bad_input_is_a_negative_errno),
        T(nested_resumes_return_to_their_resumer),
        T(callee_saved_registers_survive_a_switch_on_both_sides),
        T(fpcr_set_inside_does_not_leak_out_and_is_back_on_resume),
        T(a_new_coroutine_starts_with_its_creators_fpcr),
        T(overflow_is_a_sigsegv_on_the_guard_below_the_stack),
        T(freed_stacks_are_pooled_and_trimmed),
        T(ten_thousand_coroutines_are_alive_at_once),
        T(every_value_arrives_once_in_order_under_random_nested_resumes),
#undef T
    };
    int passed = 0, failed = 0;

    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int before = failed_checks;
        tests[i].fn();
        bool ok = failed_checks == before;
        printf("%s %s\n", ok ? "ok  " : "FAIL", tests[i].name);
        ok ? passed++ : failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
