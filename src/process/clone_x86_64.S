/*
 * int loop__process_clone(int (*fn)(void *), void *arg, void *stack_top,
 *                         unsigned long flags, int *pidfd)
 *
 * clone(2) with a stack of the caller's choosing, as glibc's clone() does
 * it, but as a plain system call that no sanitizer intercepts (clang's
 * ThreadSanitizer takes glibc's clone() for a fork and breaks on
 * CLONE_VM).  The parent gets the child's pid or -errno; the child, which
 * starts on stack_top, calls fn(arg) and exits with what it returns.  With
 * CLONE_PIDFD the pidfd is stored at *pidfd (clone's parent_tid argument).
 *
 * fn and arg ride on the new stack across the system call: a child made
 * with CLONE_VM shares every register value but the stack pointer, and
 * must not return into the parent's frames.
 */
#if defined(__x86_64__) && defined(__ELF__)

#ifdef __CET__
#define LANDING endbr64
#else
#define LANDING
#endif

    .text
    .globl  loop__process_clone
    .hidden loop__process_clone
    .type   loop__process_clone, @function
    .p2align 4
loop__process_clone:
    .cfi_startproc
    LANDING
    andq    $-16, %rdx
    subq    $16, %rdx
    movq    %rdi, 0(%rdx)       /* fn */
    movq    %rsi, 8(%rdx)       /* arg */
    movq    %rcx, %rdi          /* flags */
    movq    %rdx, %rsi          /* the child's stack pointer */
    movq    %r8, %rdx           /* parent_tid: where the pidfd goes */
    xorl    %r10d, %r10d        /* child_tid */
    xorl    %r8d, %r8d          /* tls */
    movl    $56, %eax           /* SYS_clone */
    syscall
    testq   %rax, %rax
    jz      1f
    ret                         /* the parent: pid, or -errno */
1:
    /* The child, on its own stack: nothing above this frame. */
    .cfi_undefined %rip
    xorl    %ebp, %ebp
    popq    %rax                /* fn */
    popq    %rdi                /* arg; the stack is 16-aligned again */
    call    *%rax
    movl    %eax, %edi
    movl    $60, %eax           /* SYS_exit */
    syscall
    hlt
    .cfi_endproc
    .size   loop__process_clone, .-loop__process_clone

#endif

    .section .note.GNU-stack, "", %progbits
