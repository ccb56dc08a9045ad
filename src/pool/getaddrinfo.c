/*
 * Name resolution: getaddrinfo() as a slow job of a pool.
 *
 * Who frees what.  A request (the host and service copied, the hints, and
 * the list getaddrinfo() made) belongs to the pool while its job is
 * outstanding, and the pool ends it in exactly one of two ways:
 *   - its future takes the outcome (complete(), on the loop thread): the
 *     list is copied into one block of the loop's allocator, the future is
 *     done with the copy, and the request and getaddrinfo's list are freed;
 *   - nobody takes it (cancelled, the future completed by someone else,
 *     shut down, the pool or the loop freed, a child after fork): drop()
 *     frees the request and its list, on the loop thread or, for a job
 *     still running when its pool is freed, on the job's thread when
 *     getaddrinfo() returns (so it touches nothing but the request).
 * The copy is then the reader's, freed by loop_pool_freeaddrinfo().  A
 * future has no hook that runs when it is freed, so a copy whose future
 * was dropped unread cannot be freed then: every copy is also on the list
 * of a registry attached to the loop, and loop_free() frees what is left.
 * loop_free() releases the loop's attachments one by one, the last
 * attached first, and a layer released after this registry may still run
 * the program's code (the task layer unwinds its tasks, which may free
 * the lists they hold): loop_pool_freeaddrinfo() takes the loop, and does
 * nothing once the registry is no longer attached to it.
 *
 * Why a copy, not getaddrinfo's own list: the registry needs a header in
 * front of each list, and the copy's memory comes from the loop's
 * allocator, as everything else the library keeps does (counted, and
 * failed on purpose by the tests).
 */
#include "pool_internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdalign.h>
#include <string.h>

typedef void *realloc_fn(void *ctx, void *ptr, size_t size);

/* Every list the loop's futures were given and nobody freed yet. */
struct registry {
    realloc_fn *realloc;
    void *ctx;
    struct copy *copies;
};

/* A list handed to a future: this header, then the nodes, each followed
 * by its address and its canonical name. */
struct copy {
    struct copy *prev, *next;
    struct registry *reg;
    max_align_t nodes[]; /* the first struct addrinfo */
};

struct request {
    realloc_fn *realloc; /* drop may run once the loop is gone */
    void *ctx;
    struct registry *reg; /* for complete() only */
    struct addrinfo hints;
    bool has_hints;
    const char *host, *service; /* in names[], or NULL */
    struct addrinfo *res;       /* getaddrinfo's, set by the job's thread */
    char names[];
};

static const int registry_key;

/* ---- errors ------------------------------------------------------------- */

static const struct {
    int eai, err;
} gai_errors[] = {
    {EAI_NONAME, -ENXIO},
    {EAI_NODATA, -ENODATA},
    {EAI_ADDRFAMILY, -EADDRNOTAVAIL},
    {EAI_AGAIN, -EAGAIN},
    {EAI_FAIL, -EREMOTEIO},
    {EAI_FAMILY, -EAFNOSUPPORT},
    {EAI_SOCKTYPE, -ESOCKTNOSUPPORT},
    {EAI_SERVICE, -ENOENT},
    {EAI_BADFLAGS, -EINVAL},
    {EAI_MEMORY, -ENOMEM},
    {EAI_OVERFLOW, -EOVERFLOW},
    {EAI_IDN_ENCODE, -EILSEQ},
};

#define NERRORS (sizeof(gai_errors) / sizeof(gai_errors[0]))

static int errno_of(int eai, int sys)
{
    if (eai == EAI_SYSTEM)
        return sys > 0 ? -sys : -EIO;
    for (size_t i = 0; i < NERRORS; i++)
        if (gai_errors[i].eai == eai)
            return gai_errors[i].err;
    return -EIO;
}

int loop_pool_eai_code(int err)
{
    if (err >= 0)
        return 0;
    for (size_t i = 0; i < NERRORS; i++)
        if (gai_errors[i].err == err)
            return gai_errors[i].eai;
    return EAI_SYSTEM;
}

/* ---- the job, on a pool thread ------------------------------------------ */

static int resolve(void *arg, void **result)
{
    struct request *rq = arg;
    struct addrinfo *res = NULL;
    int eai = getaddrinfo(rq->host, rq->service, rq->has_hints ? &rq->hints : NULL, &res);
    int sys = errno; /* EAI_SYSTEM's */
    if (eai == 0 && !res)
        eai = EAI_NONAME;
    rq->res = eai ? NULL : res;
    *result = rq->res;
    return eai ? errno_of(eai, sys) : 0;
}

static void free_request(struct request *rq)
{
    if (rq->res)
        freeaddrinfo(rq->res);
    rq->realloc(rq->ctx, rq, 0);
}

/* The outcome no future takes.  rq->res, not result: in a child after
 * fork the pool passes NULL, and the copy of the list is the child's. */
static void drop(void *arg, void *result)
{
    (void)result;
    free_request(arg);
}

/* ---- the copy ------------------------------------------------------------- */

#define ROUND(n) (((n) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

static size_t node_size(const struct addrinfo *ai)
{
    size_t n = ROUND(sizeof(struct addrinfo)) + ROUND((size_t)ai->ai_addrlen);
    if (ai->ai_canonname)
        n += ROUND(strlen(ai->ai_canonname) + 1);
    return n;
}

static struct copy *copy_list(struct registry *reg, const struct addrinfo *list)
{
    size_t size = sizeof(struct copy);
    for (const struct addrinfo *a = list; a; a = a->ai_next)
        size += node_size(a);
    struct copy *c = reg->realloc(reg->ctx, NULL, size);
    if (!c)
        return NULL;
    c->reg = reg;
    unsigned char *p = (unsigned char *)c->nodes;
    struct addrinfo **tail = NULL;
    for (const struct addrinfo *a = list; a; a = a->ai_next) {
        struct addrinfo *n = (struct addrinfo *)p;
        *n = *a;
        n->ai_next = NULL;
        p += ROUND(sizeof(*n));
        n->ai_addr = a->ai_addrlen ? memcpy(p, a->ai_addr, a->ai_addrlen) : NULL;
        p += ROUND((size_t)a->ai_addrlen);
        if (a->ai_canonname) {
            size_t len = strlen(a->ai_canonname) + 1;
            n->ai_canonname = memcpy(p, a->ai_canonname, len);
            p += ROUND(len);
        }
        if (tail)
            *tail = n;
        tail = &n->ai_next;
    }
    return c;
}

static void keep(struct registry *reg, struct copy *c)
{
    c->prev = NULL;
    c->next = reg->copies;
    if (reg->copies)
        reg->copies->prev = c;
    reg->copies = c;
}

void loop_pool_freeaddrinfo(loop_t *loop, struct addrinfo *list)
{
    struct registry *reg = loop_attached(loop, &registry_key);
    if (!list || !reg)
        return; /* loop_free() is under way, and has freed it already */
    struct copy *c = (struct copy *)((char *)list - offsetof(struct copy, nodes));
    if (c->reg != reg)
        return; /* another loop's */
    if (c->prev)
        c->prev->next = c->next;
    else
        reg->copies = c->next;
    if (c->next)
        c->next->prev = c->prev;
    reg->realloc(reg->ctx, c, 0);
}

/* loop_free: the lists nobody freed. */
static void release_registry(loop_t *loop, void *data)
{
    (void)loop;
    struct registry *reg = data;
    while (reg->copies) {
        struct copy *c = reg->copies;
        reg->copies = c->next;
        reg->realloc(reg->ctx, c, 0);
    }
    reg->realloc(reg->ctx, reg, 0);
}

/* ---- handing the outcome over, on the loop thread ------------------------- */

static int complete(loop_future *f, int status, void *arg, void *result)
{
    (void)result;
    struct request *rq = arg;
    struct registry *reg = rq->reg;
    struct copy *c = status ? NULL : copy_list(reg, rq->res);
    int err = c ? loop_future_set_result(f, (struct addrinfo *)c->nodes)
                : loop_future_set_error(f, status ? status : -ENOMEM); /* no copy */
    if (err) { /* nothing changed: the pool tries again, or drops it */
        if (c)
            reg->realloc(reg->ctx, c, 0);
        return err;
    }
    if (c)
        keep(reg, c);
    free_request(rq);
    return 0;
}

/* ---- asking ------------------------------------------------------------------ */

static struct registry *registry_of(loop_t *loop)
{
    struct registry *reg = loop_attach_new(loop, &registry_key, sizeof(*reg), release_registry);
    if (reg && !reg->realloc)
        loop_get_allocator(loop, &reg->realloc, &reg->ctx);
    return reg;
}

static struct request *new_request(loop_pool *pool, struct registry *reg, const char *host,
                                   const char *service, const struct addrinfo *hints)
{
    size_t hlen = host ? strlen(host) + 1 : 0;
    size_t slen = service ? strlen(service) + 1 : 0;
    struct request *rq = loop__pool_mem(pool, NULL, sizeof(*rq) + hlen + slen);
    if (!rq)
        return NULL;
    *rq = (struct request){.realloc = pool->realloc, .ctx = pool->ctx, .reg = reg};
    if (host)
        rq->host = memcpy(rq->names, host, hlen);
    if (service)
        rq->service = memcpy(rq->names + hlen, service, slen);
    if (hints) { /* the fields getaddrinfo() reads; the others must be 0 */
        rq->has_hints = true;
        rq->hints.ai_flags = hints->ai_flags;
        rq->hints.ai_family = hints->ai_family;
        rq->hints.ai_socktype = hints->ai_socktype;
        rq->hints.ai_protocol = hints->ai_protocol;
    }
    return rq;
}

int loop_pool_getaddrinfo(loop_pool *pool, const char *host, const char *service,
                          const struct addrinfo *hints, loop_future **out)
{
    if (out)
        *out = NULL;
    if (!pool || !out || (!host && !service))
        return -EINVAL;
    if (loop__pool_forked(pool))
        return -ECHILD;
    if (pool->shut)
        return -ESHUTDOWN; /* before anything is made */
    struct registry *reg = registry_of(pool->loop);
    struct request *rq = reg ? new_request(pool, reg, host, service, hints) : NULL;
    if (!rq)
        return -ENOMEM;
    int err = loop__pool_submit_hooked(pool, resolve, rq, LOOP_POOL_SLOW, drop, complete, out);
    if (err)
        free_request(rq);
    return err;
}
