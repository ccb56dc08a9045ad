/*
 * The coroutine context switches for AArch64 (AAPCS64).  Only what the ABI
 * makes callee-saved is kept: x19-x28, the frame pointer x29, the link
 * register x30 (the return address), sp, d8-d15 (the low halves of
 * v8-v15) and the floating-point control register FPCR.  Every frame this
 * file builds or saves has the same 176-byte shape:
 *
 *     sp+0   x19 x20 | x21 x22 | x23 x24 | x25 x26 | x27 x28 | x29 x30
 *     sp+96  d8 d9 | d10 d11 | d12 d13 | d14 d15
 *     sp+160 FPCR, spare
 *
 * so the CFI of the switches is right on either side of a switch.  FPCR
 * is written only when the saved one differs from the current one, as it
 * nearly never does: writing it can stall the pipeline.
 *
 * struct loop_coro: sp at offset 0, resumer_sp at 8 (coro_internal.h).
 */
#if defined(__aarch64__) && defined(__ELF__)

/* Make the frame and save the registers; FPCR ends up in x9. */
.macro SAVE
    sub     sp, sp, #176
    .cfi_def_cfa_offset 176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    .cfi_offset x19, -176
    .cfi_offset x20, -168
    .cfi_offset x21, -160
    .cfi_offset x22, -152
    .cfi_offset x23, -144
    .cfi_offset x24, -136
    .cfi_offset x25, -128
    .cfi_offset x26, -120
    .cfi_offset x27, -112
    .cfi_offset x28, -104
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
.endm

/* Restore the registers of the frame at sp, drop it, return \rc. */
.macro RESTORE_AND_RETURN rc
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #176
    .cfi_def_cfa_offset 0
    .cfi_restore x19
    .cfi_restore x20
    .cfi_restore x21
    .cfi_restore x22
    .cfi_restore x23
    .cfi_restore x24
    .cfi_restore x25
    .cfi_restore x26
    .cfi_restore x27
    .cfi_restore x28
    .cfi_restore x29
    .cfi_restore x30
    mov     w0, #\rc
    ret
.endm

/*
 * Continue on the stack `to` (a register), saving sp at [base, #off]; FPCR
 * (x9 now) becomes the one saved there if that differs.
 */
.macro SWITCH to, base, off
    ldr     x10, [\to, #160]
    mov     x11, sp
    str     x11, [\base, #\off]
    mov     sp, \to             /* now on the other stack, same frame shape */
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x10
1:
.endm

    .text

/* int loop__coro_enter(loop_coro *c, void *unused1, void *unused2, void *sp) */
    .globl  loop__coro_enter
    .hidden loop__coro_enter
    .type   loop__coro_enter, %function
    .p2align 4
loop__coro_enter:
    .cfi_startproc
    SAVE
    SWITCH  x3, x0, 8           /* into c->resumer_sp */
    RESTORE_AND_RETURN 0        /* the coroutine's yield returns 0 */
    .cfi_endproc
    .size   loop__coro_enter, .-loop__coro_enter

/* int loop__coro_leave(void *unused1, void *unused2, loop_coro *c) */
    .globl  loop__coro_leave
    .hidden loop__coro_leave
    .type   loop__coro_leave, %function
    .p2align 4
loop__coro_leave:
    .cfi_startproc
    SAVE
    ldr     x3, [x2, #8]        /* c->resumer_sp */
    SWITCH  x3, x2, 0           /* into c->sp: c is suspended */
    RESTORE_AND_RETURN 1        /* the resume returns 1 */
    .cfi_endproc
    .size   loop__coro_leave, .-loop__coro_leave

/* _Noreturn void loop__coro_exit(loop_coro *c) */
    .globl  loop__coro_exit
    .hidden loop__coro_exit
    .type   loop__coro_exit, %function
    .p2align 4
loop__coro_exit:
    .cfi_startproc
    ldr     x1, [x0, #8]        /* c->resumer_sp: the resumer's frame from here */
    mov     sp, x1
    .cfi_def_cfa_offset 176
    .cfi_offset x19, -176
    .cfi_offset x20, -168
    .cfi_offset x21, -160
    .cfi_offset x22, -152
    .cfi_offset x23, -144
    .cfi_offset x24, -136
    .cfi_offset x25, -128
    .cfi_offset x26, -120
    .cfi_offset x27, -112
    .cfi_offset x28, -104
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    ldr     x9, [sp, #160]
    msr     fpcr, x9
    RESTORE_AND_RETURN 0        /* the resume returns 0 */
    .cfi_endproc
    .size   loop__coro_exit, .-loop__coro_exit

/*
 * The first frame of every coroutine: the first switch "returns" here with
 * the coroutine in x19.  Its return address (x30) is undefined, which
 * tells debuggers and unwinders that the stack ends here.
 */
    .type   loop__coro_trampoline, %function
    .p2align 4
loop__coro_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov     x0, x19
    bl      loop__coro_main
    brk     #0x3e8              /* loop__coro_main never returns */
    .cfi_endproc
    .size   loop__coro_trampoline, .-loop__coro_trampoline

/*
 * void *loop__coro_make(void *top, loop_coro *c)
 *
 * Only what matters is set: x19 (the coroutine), x29 (0: no frame above),
 * x30 (the trampoline) and FPCR.  The other registers get whatever the
 * stack held; nothing reads them before the entry sets them.
 */
    .globl  loop__coro_make
    .hidden loop__coro_make
    .type   loop__coro_make, %function
    .p2align 4
loop__coro_make:
    .cfi_startproc
    and     x0, x0, #~15
    sub     x0, x0, #(16 + 176) /* 16 bytes of slack above the frame */
    str     x1, [x0, #0]        /* x19: the coroutine */
    adr     x9, loop__coro_trampoline
    stp     xzr, x9, [x0, #80]  /* x29: no frame above; x30: the trampoline */
    mrs     x9, fpcr            /* the caller's control register */
    str     x9, [x0, #160]
    ret
    .cfi_endproc
    .size   loop__coro_make, .-loop__coro_make

#endif

    .section .note.GNU-stack, "", %progbits
