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
