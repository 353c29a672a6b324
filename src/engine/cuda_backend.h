/* Private: the CUDA backend library (libgpusq_cuda.so, built from src/kernels/cuda and
 * engine_cuda.c) as the engine sees it. libgpusq never links the CUDA runtime: the engine opens
 * the backend library with dlopen the first time a GPU is asked for (cuda_backend.c), so a
 * program that stays on the CPU never loads CUDA, and one binary serves CPU-only and GPU users.
 * The library hands over one table, checked against this header's ABI number and engine size. */
#ifndef GSQ_ENGINE_CUDA_BACKEND_H
#define GSQ_ENGINE_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine_state.h"

#define GSQ_CUDA_BACKEND_ABI 2
#define GSQ_CUDA_BACKEND_FILE "libgpusq_cuda.so"
#define GSQ_CUDA_BACKEND_ENTRY "gsq_cuda_backend_v1"

typedef struct gsq_cuda_backend {
    int abi;            /* GSQ_CUDA_BACKEND_ABI of the build that made the library */
    size_t engine_size; /* sizeof(gsq_engine) there: both sides must share engine_state.h */
    /* "NVIDIA H100 80GB HBM3 (sm_90)" for the current device; GSQ_ERR_UNSUPPORTED without one */
    gsq_status (*device_name)(char *buf, size_t cap, gsq_error *err);
    /* e->cuda for e (graph, plan, max_batch and layout set), on a GPU that has the instructions */
    gsq_status (*engine_create)(gsq_engine *e, gsq_error *err);
    /* compressed linear s of rows × cols: its int8 codes and the scales of e->linears[s] (INT8
     * layouts; sparse when the codes obey 2:4), or its float weights (FP16); adds its bytes to
     * e->weight_bytes */
    gsq_status (*engine_linear)(gsq_engine *e, int s, const int8_t *codes, const float *weights, int rows, int cols,
                              int sparse, gsq_error *err);
    /* after the linears and e->fparams: the float parameters and the buffers on the device */
    gsq_status (*engine_finish)(gsq_engine *e, gsq_error *err);
    gsq_status (*engine_forward)(gsq_engine *e, const float *images, int B, const float **logits, gsq_error *err);
    void (*engine_free)(struct gsq_engine_cuda *c);
} gsq_cuda_backend;

/* The library's one entry point (GSQ_CUDA_BACKEND_ENTRY). */
const gsq_cuda_backend *gsq_cuda_backend_v1(void);

/* Opens the backend library once per process (later calls return the same table or the same
 * error): $GSQ_CUDA_BACKEND if set, else libgpusq_cuda.so beside the program, in the build tree
 * that made this library, then on the loader's path. GSQ_ERR_UNSUPPORTED, saying where it looked
 * and why it failed, when there is none or it does not match this build. */
gsq_status gsq_cuda_backend_open(const gsq_cuda_backend **out, gsq_error *err);

#endif
