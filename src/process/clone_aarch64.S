/*
 * int loop__process_clone(int (*fn)(void *), void *arg, void *stack_top,
 *                         unsigned long flags, int *pidfd)
 *
 * The AArch64 twin of clone_x86_64.S (see there): clone(2) with the
 * child on stack_top, where it calls fn(arg) and exits with its result.
 * AArch64's clone takes (flags, stack, parent_tid, tls, child_tid).
 */
#if defined(__aarch64__) && defined(__ELF__)

    .text
    .globl  loop__process_clone
    .hidden loop__process_clone
    .type   loop__process_clone, %function
    .p2align 4
loop__process_clone:
    .cfi_startproc
    and     x2, x2, #~15
    stp     x0, x1, [x2, #-16]!  /* fn and arg, on the child's stack */
    mov     x0, x3               /* flags */
    mov     x1, x2               /* the child's stack pointer */
    mov     x2, x4               /* parent_tid: where the pidfd goes */
    mov     x3, xzr              /* tls */
    mov     x4, xzr              /* child_tid */
    mov     x8, #220             /* SYS_clone */
    svc     #0
    cbz     x0, 1f
    ret                          /* the parent: pid, or -errno */
1:
    /* The child, on its own stack: nothing above this frame. */
    .cfi_undefined x30
    ldp     x9, x0, [sp], #16    /* fn, arg */
    mov     x29, xzr
    mov     x30, xzr
    blr     x9
    mov     x8, #93              /* SYS_exit */
    svc     #0
    brk     #0
    .cfi_endproc
    .size   loop__process_clone, .-loop__process_clone

#endif

    .section .note.GNU-stack, "", %progbits
