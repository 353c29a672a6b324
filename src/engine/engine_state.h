/* Private: the engine's plan and buffers (engine.c builds them, engine_forward.c runs them on the
 * CPU, engine_cuda.c keeps their copies on a GPU and runs them there). */
#ifndef GSQ_ENGINE_STATE_H
#define GSQ_ENGINE_STATE_H

#include "gpusq/engine.h"
#include "kernels/cpu/int8_pack.h"

/* One quantized GEMM: packed codes, per-row output scales (weight scale × input scale), and the
 * reciprocal input scale its input is quantized with. */
typedef struct {
    gsq_i8_owned_weight w;
    float *scale;
    float inv_a;
} gsq_engine_site;

struct gsq_engine {
    gsq_vit_config cfg;
    int max_batch;
    gsq_engine_layout layout;
    struct gsq_engine_cuda *cuda;       /* the device side when it runs on CUDA, else NULL */
    const struct gsq_cuda_backend *gpu; /* the CUDA backend library that made it (cuda_backend.h) */
    gsq_i8_isa isa;              /* the integer kernels' instruction set */
    int num_sites, sparse_sites; /* the GEMMs in gsq_vit_quant_site_weight's order */
    gsq_engine_site *sites;
    size_t weight_bytes;
    int a_qmax;                  /* activation codes: ±a_qmax */
    int attention;               /* 1: Q, K, V and the probabilities are quantized too */
    float *qkv_scales;           /* (depth, 3) when attention */
    float *fparams;              /* the float parameters, which p points into */
    size_t num_fparams;
    gsq_vit_view p;              /* GEMM weight pointers are NULL */
    gsq_vit_block_view *blocks;
    int row_threads;             /* threads with a row of ln (LayerNorm's row buffers) */
    float *act;                  /* one allocation for the buffers below */
    float *patches, *x, *ln, *qkv, *att, *att_q, *atty, *h, *mean, *rstd, *pooled, *normed, *logits;
    uint8_t *xq;                 /* the quantized input of the current GEMM */
    uint8_t *hq;                 /* fc2's input codes, written by fc1's epilogue */
    uint8_t *att8;               /* integer attention's scratch (attention_int8.h), where it runs */
    double times[GSQ_ENGINE_T_COUNT];
};

#endif
