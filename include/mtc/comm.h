/*
 * mtc/comm.h — the processes of an MPI job (core/comm.c).
 *
 * `mpirun -np N mtc label ...` starts N processes; when mtc was built with
 * MPI (the build found mpicc, or make MPI=1) they are ranks 0..N-1 of one
 * job. Without mpirun, or without MPI in the build, there is one process,
 * rank 0 of 1, and nothing below communicates. A build without MPI started
 * by mpirun with N > 1 refuses to run (mtc_comm_init), rather than have N
 * processes each do the whole job.
 *
 * Files: in a job of N > 1 ranks only rank 0 writes; mtc_outfile_open (and
 * every writer built on it: checkpoints, JSON, PNGs) on another rank
 * writes to /dev/null, so a command run on every rank leaves one copy.
 */
#ifndef MTC_COMM_H
#define MTC_COMM_H

/* MPI_Init when launched by mpirun (and built with MPI). 0, or an error. */
int mtc_comm_init(int *argc, char ***argv, mtc_err *e);
/* MPI_Finalize when initialised (rc 0), or, after a failure in a job of
 * more than one process, MPI_Abort(rc): every rank ends, none hangs. */
void mtc_comm_end(int rc);
int mtc_comm_rank(void);
int mtc_comm_size(void);
int mtc_comm_built_with_mpi(void);
/* Blocking point-to-point transfer of n bytes (any size) with a tag. */
int mtc_comm_send(const void *buf, size_t n, int to, int tag, mtc_err *e);
int mtc_comm_recv(void *buf, size_t n, int from, int tag, mtc_err *e);

/* Every rank's v[0..n) summed, the sum on every rank, in a fixed order
 * (a ring: same bytes every run of the same N). No-op in one process; a
 * failure ends the job (MPI errors are fatal). */
void mtc_comm_sum_f32(float *v, int64_t n);
void mtc_comm_sum_f64(double *v, int64_t n);
/* Time spent in and bytes sent by the sums so far (this rank), and the
 * time the main thread waited for background sums (mtc_comm_bg_finish). */
void mtc_comm_sum_stats(double *seconds, int64_t *bytes, double *waited);

/* Sums overlapped with the work that produces them (training: the
 * backward pass). The n floats of v are summed in nb buckets, bucket j =
 * [lo[j], hi[j]), on a thread of mtc_comm_bg's own, in order; bucket j
 * starts once the producer has reported need[j] pieces ready. Every
 * element is added in the order mtc_comm_sum_f32(v, n) adds it: the same
 * bytes. Between begin and finish the caller makes no other mtc_comm call.
 * new: NULL when there is nothing to sum with (not an MPI job of 2+ ranks;
 * e untouched) or it cannot be done (e set: the MPI library provides no
 * MPI_THREAD_SERIALIZED, or no memory). */
typedef struct mtc_comm_bg mtc_comm_bg;
mtc_comm_bg *mtc_comm_bg_new(float *v, int64_t n, int nb, const int64_t *lo, const int64_t *hi, const int *need,
                             mtc_err *e);
void mtc_comm_bg_begin(mtc_comm_bg *g);            /* a new round: no piece ready */
void mtc_comm_bg_ready(mtc_comm_bg *g, int pieces); /* pieces [0, pieces) are final */
void mtc_comm_bg_finish(mtc_comm_bg *g);           /* all final; returns when summed */
void mtc_comm_bg_free(mtc_comm_bg *g);

#endif
