/*
 * pool.c — a small persistent thread pool: `mtc_pool_run` hands tasks
 * 0..n-1 to the workers and the calling thread (task i runs on thread
 * i % size, a static split, so results do not depend on timing) and waits.
 *
 * One pool, never two: OpenBLAS runs single-threaded and mtc splits the work
 * (batch slices) itself. OpenBLAS's own workers spin after each call, so
 * letting both pools run on 2 cores made 2 threads slower than 1.
 * The thread count is set once at start-up (mtc_set_threads, threads.c) by
 * the CLI; this file knows no BLAS (the runtime's library links it).
 */
#include "mtc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Workers spin for a while on the generation counter before sleeping on the
 * condition variable: regions come every few hundred microseconds during
 * training, and a condvar wake-up per region cost more than the work it
 * split (2 threads trained the MLP student at half the 1-thread speed). */
#define SPIN_ITERS (1 << 16)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct mtc_pool {
    int size;                 /* threads including the caller */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go;
    _Atomic uint64_t gen;     /* bumped for every run */
    _Atomic int pending;      /* workers still busy */
    _Atomic int quit;
    int ntasks;
    void (*fn)(void *, int);
    void *ctx;
};

typedef struct {
    mtc_pool *p;
    int id;
} worker_arg;

static void run_share(mtc_pool *p, int id)
{
    for (int i = id; i < p->ntasks; i += p->size) p->fn(p->ctx, i);
}

static void *worker(void *v)
{
    worker_arg *a = v;
    mtc_pool *p = a->p;
    int id = a->id;
    free(a);
    uint64_t seen = 0;
    for (;;) {
        for (int spins = 0; atomic_load(&p->gen) == seen && !atomic_load(&p->quit); spins++) {
            if (spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->go, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = atomic_load(&p->gen);
        run_share(p, id);
        atomic_fetch_sub(&p->pending, 1);
    }
    return NULL;
}

mtc_pool *mtc_pool_create(int threads)
{
    mtc_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->size = threads < 1 ? 1 : threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->quit, 0);
    if (p->size > 1) {
        p->th = calloc((size_t)p->size, sizeof *p->th);
        if (!p->th) { free(p); return NULL; }
        for (int i = 1; i < p->size; i++) {
            worker_arg *a = malloc(sizeof *a);
            if (!a || pthread_create(&p->th[i], NULL, worker, a ? (a->p = p, a->id = i, a) : NULL) != 0) {
                free(a);
                p->size = i; /* run with the threads we got */
                break;
            }
        }
    }
    return p;
}

int mtc_pool_size(const mtc_pool *p)
{
    return p ? p->size : 1;
}

void mtc_pool_run(mtc_pool *p, int ntasks, void (*fn)(void *ctx, int task), void *ctx)
{
    if (!p || p->size == 1 || ntasks <= 1) {
        for (int i = 0; i < ntasks; i++) fn(ctx, i);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    atomic_store(&p->pending, p->size - 1);
    /* under the mutex, so a worker about to sleep cannot miss the bump */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    run_share(p, 0);
    while (atomic_load(&p->pending) > 0) cpu_relax();
}

void mtc_pool_free(mtc_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->size; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    free(p->th);
    free(p);
}
