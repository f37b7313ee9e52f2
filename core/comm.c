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

static int g_rank = 0, g_size = 1, g_mpi = 0;

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
        if (MPI_Init(argc, argv) != MPI_SUCCESS) return mtc_err_set(e, MTC_EIO, "MPI_Init failed");
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
static double g_sum_s;
static int64_t g_sum_bytes;

void mtc_comm_sum_stats(double *seconds, int64_t *bytes)
{
    if (seconds) *seconds = g_sum_s;
    if (bytes) *bytes = g_sum_bytes;
}

#ifdef MTC_MPI
#include <time.h>
static double comm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void ring_sum(void *v, int64_t n, int dbl)
{
    const int N = g_size, r = g_rank, right = (r + 1) % N, left = (r + N - 1) % N;
    const size_t es = dbl ? sizeof(double) : sizeof(float);
    const MPI_Datatype dt = dbl ? MPI_DOUBLE : MPI_FLOAT;
    int64_t cap = 0;
    double t0 = comm_now();
    for (int c = 0; c < N; c++) cap = n * (c + 1) / N - n * c / N > cap ? n * (c + 1) / N - n * c / N : cap;
    void *tmp = malloc((size_t)(cap ? cap : 1) * es);
    if (!tmp) MPI_Abort(MPI_COMM_WORLD, 3);
#define CH_LO(c) (n * (int64_t)(c) / N)
#define CH_N(c) (n * (int64_t)((c) + 1) / N - n * (int64_t)(c) / N)
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
    if (g_mpi && g_size > 1 && n > 0) ring_sum(v, n, 0);
#endif
    (void)v, (void)n;
}

void mtc_comm_sum_f64(double *v, int64_t n)
{
#ifdef MTC_MPI
    if (g_mpi && g_size > 1 && n > 0) ring_sum(v, n, 1);
#endif
    (void)v, (void)n;
}
