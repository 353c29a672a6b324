/* The gradient sum of a training step across micro-batches and processes (docs/DISTRIBUTED.md).
 * A step is rounds of micro-batches, one per rank in each round; micro-batch i of the step is
 * round i / N on rank i % N. Each contributor's gradient (a mean over its samples) is multiplied
 * by its sample count and added to the step's sum in micro-batch order, so any number of ranks
 * and accumulation steps with the same micro-batches give the same bits. The parameters are cut
 * into buckets; a bucket's sum starts while backward goes on, as soon as the nodes that write its
 * gradients are done (gsq_model_set_backward_hook), in bucket order on every rank. The gradients
 * are the model's, in host memory (it scales them there). */
#ifndef GPUSQ_GRAD_SYNC_H
#define GPUSQ_GRAD_SYNC_H

#include "gpusq/comm.h"
#include "gpusq/model.h"

typedef struct gsq_grad_sync gsq_grad_sync;

/* Gradients per bucket: 4 MiB, many messages in flight for a large model, a few for a small one. */
#define GSQ_BUCKET_FLOATS ((size_t)1 << 20)

/* Buckets over m's learned blocks (its parameters, LSQ's scales), of about bucket_floats each
 * (whole tensors). m's gradients must exist (gsq_model_zero_grad). */
gsq_status gsq_grad_sync_create(gsq_grad_sync **out, gsq_model *m, gsq_comm *c, size_t bucket_floats,
                                gsq_error *err);
void gsq_grad_sync_free(gsq_grad_sync *s);

/* The step's sums set to zero. */
void gsq_grad_sync_zero(gsq_grad_sync *s);
/* A round begins: contributes[r] says which ranks have a micro-batch, `weight` is this rank's
 * sample count. Until gsq_grad_sync_end_round the model's backward starts the buckets. */
void gsq_grad_sync_begin_round(gsq_grad_sync *s, const unsigned char *contributes, float weight);
/* Starts the buckets backward has not started (all of them when this rank had no backward, or
 * its backward failed: the others still need its part of the exchange) and waits for every sum. */
gsq_status gsq_grad_sync_end_round(gsq_grad_sync *s, gsq_error *err);
/* The step's gradient into the model's gradients: the sums times inv (1 / the step's samples). */
void gsq_grad_sync_finish(gsq_grad_sync *s, float inv);
/* Seconds spent waiting for sums since the last call (the part of communication that backward
 * did not hide). */
double gsq_grad_sync_take_wait(gsq_grad_sync *s);

#endif
