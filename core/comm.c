/*
 * comm.c — the processes of an MPI job, or one (include/mtc/comm.h).
 *
 * Compiled with MTC_MPI (and OpenMPI's headers) when the build has MPI;
 * otherwise every call is the single-process answer. Messages larger than
 * MPI's int count are sent in pieces of at most 1 GiB.
 */
#include "mtc.h"

#include <stdlib.h>
#include <string.h>

#ifdef MTC_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_mpi = 0, g_threads = 0;

/* Launched by mpirun (OpenMPI, or a PMI launcher): the job's size, else 1. */
static int launched_size(void)
{
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v) v = getenv("PMI_SIZE");
    return v ? atoi(v) : 1;
}

int mtc_comm_built_with_mpi(void)
{
#ifdef MTC_MPI
    return 1;
#else
    return 0;
#endif
}

int mtc_comm_init(int *argc, char ***argv, mtc_err *e)
{
    int n = launched_size();
#ifdef MTC_MPI
    if (n > 1 || getenv("OMPI_COMM_WORLD_SIZE")) {
        /* serialized: the gradient sums may run on a thread of their own
         * (mtc_comm_bg) while the main thread waits for them before its
         * next call */
        int provided = MPI_THREAD_SINGLE;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
            return mtc_err_set(e, MTC_EIO, "MPI_Init_thread failed");
        g_threads = provided >= MPI_THREAD_SERIALIZED;
        /* errors on a communication end the job (OpenMPI's default, made explicit) */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_size);
        g_mpi = 1;
        if (g_rank > 0) mtc_outfile_discard_all(1); /* rank 0 writes the job's files */
    }
    return 0;
#else
    (void)argc, (void)argv;
    if (n > 1)
        return mtc_err_set(e, MTC_EINPUT, "started as one of %d processes (mpirun), but this mtc was built without "
                           "MPI: install libopenmpi-dev and rebuild (make deps && make)", n);
    return 0;
#endif
}

void mtc_comm_end(int rc)
{
#ifdef MTC_MPI
    if (!g_mpi) return;
    if (rc && g_size > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Finalize();
#else
    (void)rc;
#endif
}

int mtc_comm_rank(void) { return g_rank; }
int mtc_comm_size(void) { return g_size; }

#define PIECE ((size_t)1 << 30)

int mtc_comm_send(const void *buf, size_t n, int to, int tag, mtc_err *e)
{
#ifdef MTC_MPI
    if (g_mpi) {
        for (size_t off = 0; off < n || (off == 0 && n == 0); off += PIECE) {
            size_t k = n - off < PIECE ? n - off : PIECE;
            if (MPI_Send((const char *)buf + off, (int)k, MPI_BYTE, to, tag, MPI_COMM_WORLD) != MPI_SUCCESS)
                return mtc_err_set(e, MTC_EIO, "rank %d: sending %zu bytes to rank %d failed", g_rank, n, to);
            if (n == 0) break;
        }
        return 0;
    }
#endif
    (void)buf, (void)n, (void)tag;
    return mtc_err_set(e, MTC_EINTERNAL, "send to rank %d: not an MPI job", to);
}

int mtc_comm_recv(void *buf, size_t n, int from, int tag, mtc_err *e)
{
#ifdef MTC_MPI
    if (g_mpi) {
        for (size_t off = 0; off < n || (off == 0 && n == 0); off += PIECE) {
            size_t k = n - off < PIECE ? n - off : PIECE;
            if (MPI_Recv((char *)buf + off, (int)k, MPI_BYTE, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE) !=
                MPI_SUCCESS)
                return mtc_err_set(e, MTC_EIO, "rank %d: receiving %zu bytes from rank %d failed", g_rank, n, from);
            if (n == 0) break;
        }
        return 0;
    }
#endif
    (void)buf, (void)n, (void)tag;
    return mtc_err_set(e, MTC_EINTERNAL, "receive from rank %d: not an MPI job", from);
}

/* ---- fixed-order sums ----------------------------------------------------------
 * A ring all-reduce (reduce-scatter, then all-gather) built on
 * MPI_Sendrecv: chunk c of N is summed along the ring starting at rank c,
 * always in that order, so a job of N ranks gives the same bytes every run
 * (MPI_Allreduce does not promise an order). Each rank sends and receives
 * 2(N-1)/N of the vector: the bandwidth of the standard ring. */
static double g_sum_s, g_wait_s;
static int64_t g_sum_bytes;

void mtc_comm_sum_stats(double *seconds, int64_t *bytes, double *waited)
{
    if (seconds) *seconds = g_sum_s;
    if (bytes) *bytes = g_sum_bytes;
    if (waited) *waited = g_wait_s;
}

#ifdef MTC_MPI
#include <time.h>
static double comm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t clamp64(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : x > hi ? hi : x; }

/* Sums v[from, to) of an n-element vector: chunk c of the whole vector's N
 * (clipped to [from, to), possibly empty) starts at rank c, so every element is
 * added in the order the whole vector's sum adds it, whatever the range. */
static void ring_sum(void *v, int64_t n, int64_t from, int64_t to, int dbl)
{
    const int N = g_size, r = g_rank, right = (r + 1) % N, left = (r + N - 1) % N;
    const size_t es = dbl ? sizeof(double) : sizeof(float);
    const MPI_Datatype dt = dbl ? MPI_DOUBLE : MPI_FLOAT;
    int64_t cap = 0;
    double t0 = comm_now();
#define CH_LO(c) clamp64(n * (int64_t)(c) / N, from, to)
#define CH_N(c) (clamp64(n * (int64_t)((c) + 1) / N, from, to) - CH_LO(c))
    for (int c = 0; c < N; c++) cap = CH_N(c) > cap ? CH_N(c) : cap;
    void *tmp = malloc((size_t)(cap ? cap : 1) * es);
    if (!tmp) MPI_Abort(MPI_COMM_WORLD, 3);
    for (int s = 0; s < N - 1; s++) { /* reduce-scatter */
        int cs = ((r - s) % N + N) % N, cr = ((r - s - 1) % N + N) % N;
        MPI_Sendrecv((char *)v + CH_LO(cs) * es, (int)CH_N(cs), dt, right, 71, tmp, (int)CH_N(cr), dt, left, 71,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (dbl) {
            double *a = (double *)v + CH_LO(cr);
            const double *b = tmp;
            for (int64_t i = 0; i < CH_N(cr); i++) a[i] = b[i] + a[i];
        } else {
            float *a = (float *)v + CH_LO(cr);
            const float *b = tmp;
            for (int64_t i = 0; i < CH_N(cr); i++) a[i] = b[i] + a[i];
        }
        g_sum_bytes += CH_N(cs) * (int64_t)es;
    }
    for (int s = 0; s < N - 1; s++) { /* all-gather of the reduced chunks */
        int cs = ((r + 1 - s) % N + N) % N, cr = ((r - s) % N + N) % N;
        MPI_Sendrecv((char *)v + CH_LO(cs) * es, (int)CH_N(cs), dt, right, 72, (char *)v + CH_LO(cr) * es,
                     (int)CH_N(cr), dt, left, 72, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        g_sum_bytes += CH_N(cs) * (int64_t)es;
    }
#undef CH_LO
#undef CH_N
    free(tmp);
    g_sum_s += comm_now() - t0;
}
#endif

void mtc_comm_sum_f32(float *v, int64_t n)
{
#ifdef MTC_MPI
    if (g_mpi && g_size > 1 && n > 0) ring_sum(v, n, 0, n, 0);
#endif
    (void)v, (void)n;
}

void mtc_comm_sum_f64(double *v, int64_t n)
{
#ifdef MTC_MPI
    if (g_mpi && g_size > 1 && n > 0) ring_sum(v, n, 0, n, 1);
#endif
    (void)v, (void)n;
}

/* ---- sums on a thread of their own --------------------------------------------
 * One thread per mtc_comm_bg waits for its buckets' pieces to be final and
 * sums each bucket in turn; the main thread makes no MPI call between
 * begin and finish (MPI_THREAD_SERIALIZED). */
#include <limits.h>
#include <pthread.h>

struct mtc_comm_bg {
    float *v;
    int64_t n;
    int nb;
    int64_t *lo, *hi;
    int *need;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv, done;
    int ready, next, quit;
};

#ifdef MTC_MPI
static void *bg_main(void *arg)
{
    mtc_comm_bg *g = arg;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->quit && !(g->next < g->nb && g->ready >= g->need[g->next])) pthread_cond_wait(&g->cv, &g->mu);
        if (g->quit) break;
        int j = g->next;
        pthread_mutex_unlock(&g->mu);
        ring_sum(g->v, g->n, g->lo[j], g->hi[j], 0);
        pthread_mutex_lock(&g->mu);
        if (++g->next == g->nb) pthread_cond_signal(&g->done);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}
#endif

mtc_comm_bg *mtc_comm_bg_new(float *v, int64_t n, int nb, const int64_t *lo, const int64_t *hi, const int *need,
                             mtc_err *e)
{
#ifdef MTC_MPI
    if (!g_mpi || g_size < 2 || nb < 1) return NULL;
    if (!g_threads) {
        mtc_err_set(e, MTC_EINPUT, "this MPI library runs no thread beside the main one (MPI_THREAD_SERIALIZED "
                    "not provided): the sums cannot overlap the backward pass");
        return NULL;
    }
    mtc_comm_bg *g = calloc(1, sizeof *g);
    if (!g || !(g->lo = malloc(sizeof(int64_t) * (size_t)nb)) || !(g->hi = malloc(sizeof(int64_t) * (size_t)nb)) ||
        !(g->need = malloc(sizeof(int) * (size_t)nb))) {
        if (g) { free(g->lo); free(g->hi); free(g); }
        mtc_err_set(e, MTC_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(g->lo, lo, sizeof(int64_t) * (size_t)nb);
    memcpy(g->hi, hi, sizeof(int64_t) * (size_t)nb);
    memcpy(g->need, need, sizeof(int) * (size_t)nb);
    g->v = v, g->n = n, g->nb = nb, g->next = nb;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    pthread_cond_init(&g->done, NULL);
    if (pthread_create(&g->th, NULL, bg_main, g)) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        pthread_cond_destroy(&g->done);
        free(g->lo); free(g->hi); free(g->need); free(g);
        mtc_err_set(e, MTC_ENOMEM, "cannot start the summing thread");
        return NULL;
    }
    return g;
#else
    (void)v, (void)n, (void)nb, (void)lo, (void)hi, (void)need, (void)e;
    return NULL;
#endif
}

void mtc_comm_bg_begin(mtc_comm_bg *g)
{
    pthread_mutex_lock(&g->mu);
    g->ready = 0, g->next = 0;
    pthread_mutex_unlock(&g->mu);
}

void mtc_comm_bg_ready(mtc_comm_bg *g, int pieces)
{
    pthread_mutex_lock(&g->mu);
    g->ready = pieces;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void mtc_comm_bg_finish(mtc_comm_bg *g)
{
#ifdef MTC_MPI
    double t0 = comm_now();
#endif
    pthread_mutex_lock(&g->mu);
    g->ready = INT_MAX;
    pthread_cond_signal(&g->cv);
    while (g->next < g->nb) pthread_cond_wait(&g->done, &g->mu);
    pthread_mutex_unlock(&g->mu);
#ifdef MTC_MPI
    g_wait_s += comm_now() - t0;
#endif
}

void mtc_comm_bg_free(mtc_comm_bg *g)
{
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->quit = 1;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->th, NULL);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    pthread_cond_destroy(&g->done);
    free(g->lo); free(g->hi); free(g->need); free(g);
}
