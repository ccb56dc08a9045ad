/*
 * What a switch must keep, on x86-64: the callee-saved registers (rbx, rbp,
 * r12-r15) of each side, whatever the other side puts in them, and the
 * floating-point control state (MXCSR: rounding, FTZ/DAZ; the x87 control
 * word: rounding, precision) of each side: set inside a coroutine it does
 * not leak out, and it is back when the coroutine is resumed.  The
 * exception flags, status rather than control, are the thread's.
 * (aarch64: tests/coro/aarch64_check.c.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fenv.h>

#include "coro_testing.h"
#include "loop_coro.h"

#define V(n) ((void *)(uintptr_t)(n))

#if defined(__x86_64__)

/*
 * unsigned regs_across(void (*fn)(void), uint64_t seed): put seed, seed+1,
 * ..., seed+5 in rbx, rbp, r12, r13, r14, r15, call fn, and return a bit
 * per register that no longer holds its value (bit 0: rbx ... bit 5: r15).
 * The caller's registers are saved and restored around all this.
 */
unsigned regs_across(void (*fn)(void), uint64_t seed);
__asm__(".text\n"
        ".globl regs_across\n"
        ".type regs_across, @function\n"
        "regs_across:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    pushq %rsi\n" /* the seed, kept for the checks (aligns rsp) */
        "    movq %rsi, %rbx\n"
        "    leaq 1(%rsi), %rbp\n"
        "    leaq 2(%rsi), %r12\n"
        "    leaq 3(%rsi), %r13\n"
        "    leaq 4(%rsi), %r14\n"
        "    leaq 5(%rsi), %r15\n"
        "    call *%rdi\n"
        "    xorl %eax, %eax\n"
        "    movq (%rsp), %rsi\n"
        "    cmpq %rsi, %rbx\n"
        "    je 1f\n"
        "    orl $1, %eax\n"
        "1:  incq %rsi\n"
        "    cmpq %rsi, %rbp\n"
        "    je 1f\n"
        "    orl $2, %eax\n"
        "1:  incq %rsi\n"
        "    cmpq %rsi, %r12\n"
        "    je 1f\n"
        "    orl $4, %eax\n"
        "1:  incq %rsi\n"
        "    cmpq %rsi, %r13\n"
        "    je 1f\n"
        "    orl $8, %eax\n"
        "1:  incq %rsi\n"
        "    cmpq %rsi, %r14\n"
        "    je 1f\n"
        "    orl $16, %eax\n"
        "1:  incq %rsi\n"
        "    cmpq %rsi, %r15\n"
        "    je 1f\n"
        "    orl $32, %eax\n"
        "1:  popq %rsi\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size regs_across, .-regs_across\n");

static loop_coro *coro;
static int resume_rc;
static unsigned inside_bad; /* what the coroutine found clobbered */

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
    /* Its own values survive the resumer's; it loads others before yielding. */
    for (uint64_t round = 0; round < 3; round++)
        inside_bad |= regs_across(do_yield, 0x5a5a5a5a00000000u + round * 16);
    return NULL;
}

static void callee_saved_registers_survive_a_switch_on_both_sides(void **state)
{
    (void)state;
    inside_bad = 0;
    assert_int_equal(loop_coro_new(&coro, clobbering_yielder, NULL, 0), 0);
    for (uint64_t round = 0; round < 4; round++) {
        assert_int_equal(regs_across(do_resume, 0x1111000000000000u + round * 16), 0);
        assert_int_equal(resume_rc, round < 3 ? 1 : 0);
    }
    assert_int_equal(inside_bad, 0);
    assert_int_equal(loop_coro_free(coro), 0);
}

static unsigned mxcsr(void)
{
    unsigned v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

static void set_mxcsr(unsigned v)
{
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
}

static unsigned short x87_cw(void)
{
    unsigned short v;
    __asm__ volatile("fnstcw %0" : "=m"(v));
    return v;
}

static void set_x87_cw(unsigned short v)
{
    __asm__ volatile("fldcw %0" : : "m"(v));
}

#define MXCSR_RC 0x6000u      /* rounding control */
#define MXCSR_FTZ_DAZ 0x8040u /* flush to zero, denormals are zero */
#define X87_RC 0x0c00u
#define X87_PC 0x0300u /* precision control */

struct fpu_seen {
    unsigned mxcsr_at_start, mxcsr_after_yield;
    unsigned short cw_at_start, cw_after_yield;
    int round_after_yield;
    double third_up, third_after_yield;
};

static double third(void)
{
    volatile double one = 1.0, three = 3.0;
    return one / three;
}

/* Sets its own rounding (upward), FTZ/DAZ and x87 precision, then yields. */
static void *fpu_setter(void *arg, void *first)
{
    struct fpu_seen *s = arg;
    (void)first;

    s->mxcsr_at_start = mxcsr();
    s->cw_at_start = x87_cw();
    fesetround(FE_UPWARD);
    set_mxcsr(mxcsr() | MXCSR_FTZ_DAZ);
    set_x87_cw((unsigned short)((x87_cw() & ~X87_PC) | 0x0000)); /* single precision */
    s->third_up = third();
    loop_coro_yield(NULL, NULL);
    s->mxcsr_after_yield = mxcsr();
    s->cw_after_yield = x87_cw();
    s->round_after_yield = fegetround();
    s->third_after_yield = third();
    return NULL;
}

static void fpu_control_state_set_inside_does_not_leak_out(void **state)
{
    (void)state;
    struct fpu_seen s = {0};
    unsigned before = mxcsr();
    unsigned short cw_before = x87_cw();
    double nearest = third();

    assert_int_equal(loop_coro_new(&coro, fpu_setter, &s, 0), 0);
    assert_int_equal(loop_coro_resume(coro, NULL, NULL), 1);
    assert_int_equal(fegetround(), FE_TONEAREST);
    assert_int_equal(mxcsr() & (MXCSR_RC | MXCSR_FTZ_DAZ), before & (MXCSR_RC | MXCSR_FTZ_DAZ));
    assert_int_equal(x87_cw(), cw_before);
    assert_true(third() == nearest);
    /* valgrind's SSE arithmetic always rounds to nearest, and has no FTZ/DAZ. */
    if (!under_valgrind())
        assert_true(s.third_up > nearest); /* the coroutine did round upward */
    assert_int_equal(loop_coro_resume(coro, NULL, NULL), 0);
    assert_int_equal(fegetround(), FE_TONEAREST);
    assert_int_equal(loop_coro_free(coro), 0);
}

static void fpu_control_state_set_inside_is_back_on_resume(void **state)
{
    (void)state;
    struct fpu_seen s = {0};

    assert_int_equal(loop_coro_new(&coro, fpu_setter, &s, 0), 0);
    assert_int_equal(loop_coro_resume(coro, NULL, NULL), 1);
    fesetround(FE_DOWNWARD); /* the resumer's own choice meanwhile */
    assert_int_equal(loop_coro_resume(coro, NULL, NULL), 0);
    fesetround(FE_TONEAREST);
    assert_int_equal(s.round_after_yield, FE_UPWARD);
    assert_int_equal(s.mxcsr_after_yield & MXCSR_RC, 0x4000u); /* upward */
    if (!under_valgrind())
        assert_int_equal(s.mxcsr_after_yield & MXCSR_FTZ_DAZ, MXCSR_FTZ_DAZ);
    assert_int_equal(s.cw_after_yield & X87_RC, 0x0800u); /* upward */
    if (!under_valgrind())                                /* nor x87 precision control */
        assert_int_equal(s.cw_after_yield & X87_PC, 0);   /* single */
    assert_true(s.third_after_yield == s.third_up);
    assert_int_equal(loop_coro_free(coro), 0);
}

static void a_new_coroutine_starts_with_its_creators_fpu_control_state(void **state)
{
    (void)state;
    struct fpu_seen s = {0};
    unsigned before = mxcsr();
    unsigned short cw_before = x87_cw();

    fesetround(FE_TOWARDZERO);
    assert_int_equal(loop_coro_new(&coro, fpu_setter, &s, 0), 0);
    fesetround(FE_TONEAREST);
    assert_int_equal(loop_coro_resume(coro, NULL, NULL), 1);
    assert_int_equal(s.mxcsr_at_start & MXCSR_RC, MXCSR_RC); /* toward zero */
    assert_int_equal(s.cw_at_start & X87_RC, X87_RC);
    assert_int_equal(loop_coro_free(coro), 0);
    assert_int_equal(mxcsr(), before);
    assert_int_equal(x87_cw(), cw_before);
}

/*
 * The switch loads a side's control state only when it differs from the
 * one in force, word by word: each of the two words, changed alone, must
 * still be kept per side.  Rounding is the part valgrind emulates.
 */
struct one_word_seen {
    int which; /* 0: MXCSR alone, 1: the x87 control word alone */
    unsigned mxcsr_after_yield;
    unsigned short cw_after_yield;
};

static void *one_word_setter(void *arg, void *first)
{
    struct one_word_seen *s = arg;
    (void)first;

    if (s->which == 0)
        set_mxcsr((mxcsr() & ~MXCSR_RC) | 0x4000u); /* upward */
    else
        set_x87_cw((unsigned short)((x87_cw() & ~X87_RC) | 0x0800u)); /* upward */
    loop_coro_yield(NULL, NULL);
    s->mxcsr_after_yield = mxcsr();
    s->cw_after_yield = x87_cw();
    return NULL;
}

static void check_one_word_kept_per_side(int which)
{
    struct one_word_seen s = {.which = which};
    unsigned before = mxcsr();
    unsigned short cw_before = x87_cw();

    assert_int_equal(loop_coro_new(&coro, one_word_setter, &s, 0), 0);
    assert_int_equal(loop_coro_resume(coro, NULL, NULL), 1);
    /* Back in the resumer: its own words, both. */
    assert_int_equal(mxcsr() & MXCSR_RC, before & MXCSR_RC);
    assert_int_equal(x87_cw(), cw_before);
    assert_int_equal(loop_coro_resume(coro, NULL, NULL), 0);
    /* Back in the coroutine: the word it changed, and only that one. */
    if (which == 0) {
        assert_int_equal(s.mxcsr_after_yield & MXCSR_RC, 0x4000u);
        assert_int_equal(s.cw_after_yield, cw_before);
    } else {
        assert_int_equal(s.cw_after_yield & X87_RC, 0x0800u);
        assert_int_equal(s.mxcsr_after_yield & MXCSR_RC, before & MXCSR_RC);
    }
    assert_int_equal(loop_coro_free(coro), 0);
    assert_int_equal(mxcsr() & MXCSR_RC, before & MXCSR_RC);
    assert_int_equal(x87_cw(), cw_before);
}

static void mxcsr_changed_alone_is_kept_per_side(void **state)
{
    (void)state;
    check_one_word_kept_per_side(0);
}

/* The exception flags are the thread's: raised inside, seen outside, and
 * the reverse, so that a switch never needs to reload MXCSR for them. */
static void *inexact_raiser(void *arg, void *first)
{
    (void)first;
    volatile double x = 1.0, y = 3.0;
    volatile double q = x / y; /* inexact */
    (void)q;
    int *seen_inside = arg;
    loop_coro_yield(NULL, NULL);
    *seen_inside = fetestexcept(FE_DIVBYZERO) != 0;
    return NULL;
}

static void fpu_exception_flags_are_shared_not_kept_per_side(void **state)
{
    (void)state;
    if (under_valgrind())
        skip(); /* valgrind keeps no floating-point exception flags */
    int seen_inside = -1;
    feclearexcept(FE_ALL_EXCEPT);
    assert_int_equal(loop_coro_new(&coro, inexact_raiser, &seen_inside, 0), 0);
    assert_int_equal(loop_coro_resume(coro, NULL, NULL), 1);
    assert_true(fetestexcept(FE_INEXACT)); /* raised inside */
    volatile double zero = 0.0;
    volatile double inf = 1.0 / zero;
    (void)inf;
    assert_int_equal(loop_coro_resume(coro, NULL, NULL), 0);
    assert_int_equal(seen_inside, 1); /* raised outside */
    assert_int_equal(loop_coro_free(coro), 0);
    feclearexcept(FE_ALL_EXCEPT);
}

static void x87_control_word_changed_alone_is_kept_per_side(void **state)
{
    (void)state;
    check_one_word_kept_per_side(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(callee_saved_registers_survive_a_switch_on_both_sides),
        cmocka_unit_test(fpu_control_state_set_inside_does_not_leak_out),
        cmocka_unit_test(fpu_control_state_set_inside_is_back_on_resume),
        cmocka_unit_test(a_new_coroutine_starts_with_its_creators_fpu_control_state),
        cmocka_unit_test(mxcsr_changed_alone_is_kept_per_side),
        cmocka_unit_test(x87_control_word_changed_alone_is_kept_per_side),
        cmocka_unit_test(fpu_exception_flags_are_shared_not_kept_per_side),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* not x86-64: see aarch64_check.c */

static void registers_are_checked_on_x86_64_only(void **state)
{
    (void)state;
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registers_are_checked_on_x86_64_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
