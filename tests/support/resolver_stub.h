/*
 * A stand-in for the system's resolver, for suites linked with
 *
 *     -Wl,--wrap=getaddrinfo,--wrap=freeaddrinfo
 *
 * (say so on the suite's first lines: ctest-link-options, see
 * tests/CMakeLists.txt).  The tests may not edit /etc/hosts and have no
 * network, and the only name every machine's /etc/hosts has is
 * "localhost", which the stream layers take without resolving.  So the
 * names a suite lists with stub_resolver_set() are answered here, in the
 * pool's thread that asked, as getaddrinfo() would answer them: with a
 * list of the numeric addresses given (made by the real getaddrinfo(), so
 * freeaddrinfo() frees it), or an EAI code.  Every other name goes to the
 * real getaddrinfo().  It counts calls and the lists made and freed, so a
 * test sees that a name went through (or not) and that no list leaked;
 * and a name may wait at a gate, so a test knows a resolution is running
 * and lets it end when it wants.
 */
#ifndef TESTS_RESOLVER_STUB_H
#define TESTS_RESOLVER_STUB_H

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

int __real_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
void __real_freeaddrinfo(struct addrinfo *ai);
int __wrap_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
void __wrap_freeaddrinfo(struct addrinfo *ai);

struct stub_name {
    const char *name;
    const char *addrs; /* numeric addresses or "unix:<path>", one space between */
    int eai;           /* else fail with this EAI code */
    int sys_errno;     /* errno for EAI_SYSTEM */
    bool gated;        /* wait at the gate first */
};

struct stub_resolver {
    const struct stub_name *names;
    size_t n;
    atomic_int calls;    /* getaddrinfo() calls, any name */
    atomic_int answered; /* of those, names of the table */
    atomic_int made;     /* lists handed out, real ones included */
    atomic_int freed;    /* lists freed */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int at_gate; /* gated resolutions waiting now */
    bool open;
};

static inline struct stub_resolver *stub_resolver(void)
{
    static struct stub_resolver r = {
        .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .open = true};
    return &r;
}

/* Answer these names from now on; the gate is shut if shut. */
static inline void stub_resolver_set(const struct stub_name *names, size_t n, bool shut)
{
    struct stub_resolver *r = stub_resolver();
    pthread_mutex_lock(&r->mu);
    r->names = names;
    r->n = n;
    r->open = !shut;
    pthread_mutex_unlock(&r->mu);
}

static inline void stub_gate_open(void)
{
    struct stub_resolver *r = stub_resolver();
    pthread_mutex_lock(&r->mu);
    r->open = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Wait (60 s at most: a hang is a failure) until n resolutions wait at
 * the gate.  Returns false on timeout. */
static inline bool stub_gate_wait(int n)
{
    struct stub_resolver *r = stub_resolver();
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    bool ok = true;
    pthread_mutex_lock(&r->mu);
    while (ok && r->at_gate < n)
        ok = pthread_cond_timedwait(&r->cv, &r->mu, &until) != ETIMEDOUT;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* Resolutions waiting at the gate now. */
static inline int stub_at_gate(void)
{
    struct stub_resolver *r = stub_resolver();
    pthread_mutex_lock(&r->mu);
    int n = r->at_gate;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Lists handed out and not freed. */
static inline int stub_lists_alive(void)
{
    struct stub_resolver *r = stub_resolver();
    return atomic_load(&r->made) - atomic_load(&r->freed);
}

static inline const struct stub_name *stub_find(struct stub_resolver *r, const char *host)
{
    pthread_mutex_lock(&r->mu);
    const struct stub_name *found = NULL;
    for (size_t i = 0; host && i < r->n && !found; i++)
        if (strcmp(r->names[i].name, host) == 0)
            found = &r->names[i];
    pthread_mutex_unlock(&r->mu);
    return found;
}

static inline void stub_wait_at_gate(struct stub_resolver *r)
{
    pthread_mutex_lock(&r->mu);
    r->at_gate++;
    pthread_cond_broadcast(&r->cv);
    while (!r->open)
        pthread_cond_wait(&r->cv, &r->mu);
    r->at_gate--;
    pthread_mutex_unlock(&r->mu);
}

/* One node as glibc makes them (node and address in one block), for a
 * Unix path, so that freeaddrinfo() frees it. */
static inline struct addrinfo *stub_unix_node(const char *path, const struct addrinfo *hints)
{
    struct {
        struct addrinfo ai;
        struct sockaddr_un un;
    } *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->un.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof(b->un.sun_path))
        n = sizeof(b->un.sun_path) - 1;
    memcpy(b->un.sun_path, path, n); /* calloc'd: ends in 0 */
    b->ai.ai_family = AF_UNIX;
    b->ai.ai_socktype = hints ? hints->ai_socktype : SOCK_STREAM;
    b->ai.ai_addr = (struct sockaddr *)&b->un;
    b->ai.ai_addrlen = sizeof(b->un);
    return &b->ai;
}

static inline int stub_answer(const struct stub_name *s, const char *service,
                              const struct addrinfo *hints, struct addrinfo **res)
{
    if (s->eai) {
        errno = s->sys_errno;
        return s->eai;
    }
    struct addrinfo h = hints ? *hints : (struct addrinfo){0};
    h.ai_flags = (h.ai_flags & ~AI_CANONNAME) | AI_NUMERICHOST;
    struct addrinfo *head = NULL, **tail = &head;
    for (const char *p = s->addrs; *p;) {
        char one[128];
        size_t n = strcspn(p, " ");
        if (n >= sizeof one)
            n = sizeof one - 1;
        memcpy(one, p, n);
        one[n] = 0;
        p += n + (p[n] == ' ');
        struct addrinfo *part = NULL;
        int eai = 0;
        if (strncmp(one, "unix:", 5) == 0)
            eai = (part = stub_unix_node(one + 5, hints)) ? 0 : EAI_MEMORY;
        else
            eai = __real_getaddrinfo(one, service, &h, &part);
        if (eai) {
            __real_freeaddrinfo(head);
            return eai;
        }
        *tail = part;
        while (*tail)
            tail = &(*tail)->ai_next;
    }
    *res = head;
    return head ? 0 : EAI_NONAME;
}

int __wrap_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    struct stub_resolver *r = stub_resolver();
    atomic_fetch_add(&r->calls, 1);
    const struct stub_name *s = stub_find(r, host);
    int eai;
    if (s) {
        atomic_fetch_add(&r->answered, 1);
        if (s->gated)
            stub_wait_at_gate(r);
        eai = stub_answer(s, service, hints, res);
    } else {
        eai = __real_getaddrinfo(host, service, hints, res);
    }
    if (eai == 0)
        atomic_fetch_add(&r->made, 1);
    return eai;
}

void __wrap_freeaddrinfo(struct addrinfo *ai)
{
    if (ai)
        atomic_fetch_add(&stub_resolver()->freed, 1);
    __real_freeaddrinfo(ai);
}

#endif /* TESTS_RESOLVER_STUB_H */
