/*
 * The coroutine context switches for x86-64 (System V ABI).  Only what the
 * ABI makes callee-saved is kept: rbx, rbp, r12-r15, the stack pointer
 * (the return address is on the stack), and the floating-point control
 * state (MXCSR and the x87 control word).  Every frame this file builds or
 * saves has the same shape, lowest address first:
 *
 *     r15, r14, r13, r12, rbx, rbp, return
 *
 * so the CFI of the switches is right on either side of a switch.  The
 * control state is kept in the 8 bytes below the saved stack pointer (the
 * red zone, which signal delivery leaves alone, and nothing else runs on a
 * stack while it is switched away from): MXCSR at -8, the x87 control
 * word at -4.  Two compares say whether the control state to restore is
 * the one already loaded, as it nearly always is: then nothing is loaded
 * (ldmxcsr and fldcw cost more than the rest of a switch).  Each compare reads
 * exactly what one store wrote, so that the store just made forwards to
 * it (a load that spans two stores waits for both to reach the cache).
 *
 * The switches end with an indirect jump, not ret: the return-address
 * predictor holds where *this* side called from, so a ret to the other
 * side would be mispredicted at every switch (about 20 cycles).  An
 * indirect jump is predicted from its own history (as Boost.Context's
 * jump_fcontext does).
 *
 * struct loop_coro: sp at offset 0, resumer_sp at 8 (coro_internal.h).
 */
#if defined(__x86_64__) && defined(__ELF__)

#ifdef __CET__
#define LANDING endbr64
#else
#define LANDING
#endif

#define MXCSR (-8) /* where the control state goes, below the stack pointer */
/* MXCSR's control bits: DAZ, the exception masks, rounding, FTZ.  Its low
 * six bits are sticky exception flags, which any floating-point division
 * may set: they are status, not state to keep per side, and comparing
 * them would make nearly every switch of a program that computes load
 * MXCSR (ldmxcsr waits for every floating-point instruction in flight). */
#define MXCSR_CONTROL 0xffc0
#define X87CW (-4)

/* Push the callee-saved registers and store the control state. */
.macro SAVE
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r15, 0
    stmxcsr MXCSR(%rsp)
    fnstcw  X87CW(%rsp)
.endm

/* Load the control state saved below rsp. */
.macro LOAD_FPU
    ldmxcsr MXCSR(%rsp)
    fldcw   X87CW(%rsp)
.endm

/* Pop the callee-saved registers and jump to the return address. */
.macro RESTORE_AND_RETURN
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbp
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_register %rip, %rcx
    jmp     *%rcx
.endm

/*
 * Whether the control state saved below the stack pointer `to` differs
 * from the one just saved below rsp: jump to `differ` if so, else fall
 * through with eax = 0.
 */
.macro FPU_CMP to, differ
    movl    MXCSR(\to), %eax
    xorl    MXCSR(%rsp), %eax
    testl   $MXCSR_CONTROL, %eax
    jnz     \differ
    xorl    %eax, %eax
    movzwl  X87CW(\to), %r8d
    cmpw    X87CW(%rsp), %r8w
    jne     \differ
.endm

    .text

/* int loop__coro_enter(loop_coro *c, void *unused1, void *unused2, void *sp) */
    .globl  loop__coro_enter
    .hidden loop__coro_enter
    .type   loop__coro_enter, @function
    .p2align 4
loop__coro_enter:
    .cfi_startproc
    LANDING
    SAVE
    FPU_CMP %rcx, 1f
    movq    %rsp, 8(%rdi)       /* c->resumer_sp */
    movq    %rcx, %rsp          /* now on the other stack, same frame shape */
    .cfi_remember_state
2:
    RESTORE_AND_RETURN          /* the coroutine's yield returns eax: 0 */
1:
    .cfi_restore_state
    movq    %rsp, 8(%rdi)
    movq    %rcx, %rsp
    LOAD_FPU
    xorl    %eax, %eax
    jmp     2b
    .cfi_endproc
    .size   loop__coro_enter, .-loop__coro_enter

/* int loop__coro_leave(void *unused1, void *unused2, loop_coro *c) */
    .globl  loop__coro_leave
    .hidden loop__coro_leave
    .type   loop__coro_leave, @function
    .p2align 4
loop__coro_leave:
    .cfi_startproc
    LANDING
    SAVE
    movq    8(%rdx), %rcx       /* c->resumer_sp */
    FPU_CMP %rcx, 1f
    movq    %rsp, (%rdx)        /* c->sp: c is suspended */
    movq    %rcx, %rsp          /* now on the other stack, same frame shape */
    .cfi_remember_state
2:
    movl    $1, %eax            /* the resume returns 1 */
    RESTORE_AND_RETURN
1:
    .cfi_restore_state
    movq    %rsp, (%rdx)
    movq    %rcx, %rsp
    LOAD_FPU
    jmp     2b
    .cfi_endproc
    .size   loop__coro_leave, .-loop__coro_leave

/* _Noreturn void loop__coro_exit(loop_coro *c) */
    .globl  loop__coro_exit
    .hidden loop__coro_exit
    .type   loop__coro_exit, @function
    .p2align 4
loop__coro_exit:
    .cfi_startproc
    LANDING
    movq    8(%rdi), %rsp       /* c->resumer_sp: the resumer's frame from here */
    .cfi_def_cfa_offset 56
    .cfi_offset %rbp, -16
    .cfi_offset %rbx, -24
    .cfi_offset %r12, -32
    .cfi_offset %r13, -40
    .cfi_offset %r14, -48
    .cfi_offset %r15, -56
    LOAD_FPU
    xorl    %eax, %eax          /* the resume returns 0 */
    RESTORE_AND_RETURN
    .cfi_endproc
    .size   loop__coro_exit, .-loop__coro_exit

/*
 * The first frame of every coroutine: the first switch "returns" here with
 * the coroutine in r12.  Its return address is undefined, which tells
 * debuggers and unwinders that the stack ends here.
 */
    .type   loop__coro_trampoline, @function
    .p2align 4
loop__coro_trampoline:
    .cfi_startproc
    .cfi_undefined %rip
    LANDING
    movq    %r12, %rdi
    call    loop__coro_main
    ud2                         /* loop__coro_main never returns */
    .cfi_endproc
    .size   loop__coro_trampoline, .-loop__coro_trampoline

/*
 * void *loop__coro_make(void *top, loop_coro *c)
 *
 * Only the registers that matter are set: r12 (the coroutine) and rbp (0:
 * no frame above, for frame-pointer unwinders).  rbx, r13-r15 get whatever
 * the stack held; nothing reads them before the entry sets them.
 */
    .globl  loop__coro_make
    .hidden loop__coro_make
    .type   loop__coro_make, @function
    .p2align 4
loop__coro_make:
    .cfi_startproc
    LANDING
    leaq    -16(%rdi), %rax
    andq    $-16, %rax          /* rsp after the first switch's return: 16-aligned */
    leaq    loop__coro_trampoline(%rip), %rcx
    movq    %rcx, -8(%rax)      /* return address */
    movq    $0, -16(%rax)       /* rbp */
    movq    %rsi, -32(%rax)     /* r12 */
    subq    $56, %rax
    stmxcsr MXCSR(%rax)         /* the caller's control state */
    fnstcw  X87CW(%rax)
    ret
    .cfi_endproc
    .size   loop__coro_make, .-loop__coro_make

#endif

    .section .note.GNU-stack, "", %progbits
