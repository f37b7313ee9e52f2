/*
 * threads.c — the process's thread count (mtc_set_threads, once at start-up
 * from the CLI's --threads; the training engine sizes its pool from it) and
 * OpenBLAS kept single-threaded, so that mtc's pool (pool.c) is the only
 * one. The runtime takes its thread count per instance (mtc_rt_set_threads)
 * and never calls OpenBLAS.
 */
#include "mtc.h"

extern void openblas_set_num_threads(int);

static int g_threads = 1;

void mtc_blas_single_thread(void)
{
    openblas_set_num_threads(1);
}

void mtc_set_threads(int n)
{
    g_threads = n < 1 ? 1 : n > 256 ? 256 : n;
    mtc_blas_single_thread();
}

int mtc_get_threads(void)
{
    return g_threads;
}

