/* Private: the engine's CUDA side (engine_cuda.c): the GEMM weights, scales and float parameters
 * copied to the current GPU, activation buffers sized for max_batch, and the forward pass as a
 * sequence of kernel launches. engine.c builds the plan as for the CPU and hands each GEMM to
 * gsq_engine_cuda_site instead of packing it. Without CUDA (no nvcc at build time) creating one
 * reports GSQ_ERR_UNSUPPORTED. */
#ifndef GSQ_ENGINE_CUDA_H
#define GSQ_ENGINE_CUDA_H

#include <stdint.h>

#include "engine_state.h"

/* e->cuda for e (cfg, max_batch, layout and num_sites set), on a GPU that has the instructions. */
gsq_status gsq_engine_cuda_create(gsq_engine *e, gsq_error *err);
/* GEMM s of rows × cols: its int8 codes and the scales of e->sites[s] (INT8 layouts; sparse when
 * the codes obey 2:4), or its float weights (FP16); adds its device bytes to e->weight_bytes. */
gsq_status gsq_engine_cuda_site(gsq_engine *e, int s, const int8_t *codes, const float *weights, int rows, int cols,
                                int sparse, gsq_error *err);
/* After the sites and e->fparams / e->p: the float parameters and the buffers on the device. */
gsq_status gsq_engine_cuda_finish(gsq_engine *e, gsq_error *err);
gsq_status gsq_engine_cuda_forward(gsq_engine *e, const float *images, int B, const float **logits, gsq_error *err);
void gsq_engine_cuda_free(struct gsq_engine_cuda *c);

#endif
