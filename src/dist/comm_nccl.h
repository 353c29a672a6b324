/* The communication interface over NCCL, for training on GPUs (one GPU per rank): gradient sums
 * on device buffers between the GPUs, everything else through the MPI group that started it.
 * Compiled where NCCL and CUDA exist; it has not run on GPUs yet (docs/DISTRIBUTED.md). */
#ifndef GPUSQ_COMM_NCCL_H
#define GPUSQ_COMM_NCCL_H

#include "gpusq/comm.h"

/* NCCL's communicator over the ranks of `bootstrap` (MPI), the llm.c way: rank 0 makes the
 * ncclUniqueId and broadcasts it through MPI, every rank then joins with ncclCommInitRank on GPU
 * `device`. bootstrap must outlive it and still carries the small host-side exchanges. The ordered
 * sum's acc and x are device pointers. */
gsq_status gsq_comm_nccl_create(gsq_comm **out, gsq_comm *bootstrap, int device, gsq_error *err);

/* acc[i] += x[i] on the stream (src/dist/comm_nccl_sum.cu). */
int gsq_nccl_add(float *acc, const float *x, size_t n, void *stream);

#endif
