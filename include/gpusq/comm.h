/* Communication between the processes of a data-parallel run (docs/DISTRIBUTED.md): a small
 * interface that a single process, MPI (src/dist/comm_mpi.c) and NCCL (src/dist/comm_nccl.c,
 * for GPU training) implement. Every call is collective: each rank of the group makes it, in the
 * same order. The gradient reduction is an ordered sum: ranks' contributions are added in rank
 * order, so N ranks give bitwise what one process accumulating their micro-batches in order
 * gives (src/train/trainer.c). */
#ifndef GPUSQ_COMM_H
#define GPUSQ_COMM_H

#include <stddef.h>

#include "gpusq/status.h"

typedef struct gsq_comm gsq_comm;
typedef struct gsq_comm_sum gsq_comm_sum; /* an ordered sum in flight */

/* What an implementation provides; the functions below dispatch to it. */
typedef struct {
    const char *name; /* "single", "mpi", "nccl" */
    gsq_status (*allgather)(gsq_comm *c, const void *mine, void *all, size_t bytes, gsq_error *err);
    gsq_status (*broadcast)(gsq_comm *c, void *buf, size_t bytes, int root, gsq_error *err);
    gsq_status (*barrier)(gsq_comm *c, gsq_error *err);
    gsq_status (*sum_start)(gsq_comm *c, float *acc, float *x, size_t n, const unsigned char *contributes,
                            int tag, gsq_comm_sum **out, gsq_error *err);
    gsq_status (*sum_test)(gsq_comm_sum *s, int *done, gsq_error *err);
    void (*sum_free)(gsq_comm_sum *s);
    void (*destroy)(gsq_comm *c);
} gsq_comm_ops;

struct gsq_comm {
    int rank, size;
    const gsq_comm_ops *ops;
    void *impl;
};

/* The group of one: this process alone (every call is local). Never NULL, never freed. */
gsq_comm *gsq_comm_self(void);

/* MPI's world (MPI_Init_thread with MPI_THREAD_FUNNELED: only the calling thread communicates).
 * GSQ_ERR_UNSUPPORTED when this build has no MPI (gsq_comm_mpi_available). */
gsq_status gsq_comm_mpi_create(gsq_comm **out, int *argc, char ***argv, gsq_error *err);
int gsq_comm_mpi_available(void);
/* Ends the whole job from any rank after an error that the others cannot learn of (MPI_Abort);
 * returns only without MPI. */
void gsq_comm_abort(gsq_comm *c, int code);
/* 1 when every rank of MPI's world reaches this call within `seconds` (a barrier that gives up):
 * after a failure, whether all ranks failed together or this one alone. 1 for other groups. */
int gsq_comm_agree_within(gsq_comm *c, double seconds);
/* Frees c (MPI_Finalize for MPI's world); NULL and the self group are ignored. */
void gsq_comm_free(gsq_comm *c);

/* all (size × bytes) gets every rank's `mine` (bytes each), in rank order. */
gsq_status gsq_comm_allgather(gsq_comm *c, const void *mine, void *all, size_t bytes, gsq_error *err);
/* buf (bytes) of rank `root` into every rank's buf. */
gsq_status gsq_comm_broadcast(gsq_comm *c, void *buf, size_t bytes, int root, gsq_error *err);
gsq_status gsq_comm_barrier(gsq_comm *c, gsq_error *err);

/* The ordered sum, started: acc (n floats, equal on every rank) becomes
 * ((acc + x_a) + x_b) + ... over the ranks a < b < ... whose contributes[] is non-zero (size
 * entries, equal on every rank), on every rank; x is this rank's contribution (read only when it
 * contributes). acc and x must stay untouched until the sum completes. tag (>= 0) tells apart sums
 * in flight at once; every rank starts them in the same order. A sum with no contributor leaves
 * acc as it is. */
gsq_status gsq_comm_sum_start(gsq_comm *c, float *acc, float *x, size_t n, const unsigned char *contributes, int tag,
                              gsq_comm_sum **out, gsq_error *err);
/* The part of an n-float sum that rank r of size owns (adds up, then sends to all): [*lo, *hi). */
void gsq_comm_part(size_t n, int size, int r, size_t *lo, size_t *hi);
/* Progresses s; *done becomes 1 when acc holds the sum (s stays to be freed). */
gsq_status gsq_comm_sum_test(gsq_comm *c, gsq_comm_sum *s, int *done, gsq_error *err);
/* Waits for s (yielding the core between checks) and frees it; on error s is freed too. */
gsq_status gsq_comm_sum_wait(gsq_comm *c, gsq_comm_sum *s, gsq_error *err);
void gsq_comm_sum_free(gsq_comm *c, gsq_comm_sum *s); /* NULL-safe; abandons a sum in flight */

/* The launcher's rank count from its environment (Open MPI, MPICH/PMI, PMIx, Slurm): 1 when the
 * process was not started by one. */
int gsq_comm_launched_size(void);

#endif
