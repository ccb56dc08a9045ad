/*
 * The coroutine context switch for x86-64 (System V ABI).  Only what the
 * ABI makes callee-saved is kept: rbx, rbp, r12-r15, the stack pointer
 * (the return address is on the stack), and the floating-point control
 * words (MXCSR and the x87 control word).  Every frame this file builds or
 * saves has the same shape, lowest address first:
 *
 *     MXCSR (4 bytes), x87 CW (2 + 2 spare), r15, r14, r13, r12, rbx, rbp, return
 *
 * so the CFI of loop__coro_switch is right on either side of the switch.
 */
#if defined(__x86_64__) && defined(__ELF__)

#ifdef __CET__
#define LANDING endbr64
#else
#define LANDING
#endif

    .text

/* int loop__coro_switch(void **save, void *to, int rc) */
    .globl  loop__coro_switch
    .hidden loop__coro_switch
    .type   loop__coro_switch, @function
    .p2align 4
loop__coro_switch:
    .cfi_startproc
    LANDING
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
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)

    movq    %rsp, (%rdi)
    movq    %rsi, %rsp          /* now on the other stack, same frame shape */

    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
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
    movl    %edx, %eax
    /*
     * Not ret: the return-address predictor holds where *this* side called
     * from, so a ret to the other side would be mispredicted at every
     * switch (about 20 cycles).  An indirect jump is predicted from its
     * own history (as Boost.Context's jump_fcontext does).
     */
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_register %rip, %rcx
    jmp     *%rcx
    .cfi_endproc
    .size   loop__coro_switch, .-loop__coro_switch

/*
 * The first frame of every coroutine: the first switch "returns" here with
 * the coroutine in r12.  Its return
 * address is undefined, which tells debuggers and unwinders that the
 * stack ends here.
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
    andq    $-16, %rax          /* rsp after the first switch's ret: 16-aligned */
    leaq    loop__coro_trampoline(%rip), %rcx
    movq    %rcx, -8(%rax)      /* return address */
    movq    $0, -16(%rax)       /* rbp: no frame above */
    movq    %rsi, -32(%rax)     /* r12: the coroutine */
    stmxcsr -64(%rax)           /* the caller's control words */
    fnstcw  -60(%rax)
    subq    $64, %rax
    ret
    .cfi_endproc
    .size   loop__coro_make, .-loop__coro_make

#endif

    .section .note.GNU-stack, "", %progbits
