/* Private: the quantizer state a gsq_vit carries in QAT (include/gpusq/vit_quant.h), and the
 * hooks forward and backward call at each quantized GEMM ("site"). Without quantizers every hook
 * passes its argument through. */
#ifndef GSQ_VIT_QUANT_STATE_H
#define GSQ_VIT_QUANT_STATE_H

#include "gpusq/vit_quant.h"

typedef struct {
    size_t w_offset;       /* the weight, in the parameter block */
    int rows, cols;
    size_t in_per_sample;  /* input floats per image */
    float a_scale;         /* 0 until calibrated */
    float *w_scales;       /* (rows) from the last forward, or fixed */
    int fixed_scales;      /* 1: w_scales were set (gsq_vit_quant_fix_weight_scales), not recomputed */
    float *wq;             /* (rows, cols) fake-quantized weight of the last forward */
    float *xq;             /* (batch_cap · in_per_sample) fake-quantized input of the last forward */
    const float *x;        /* the float input of the last forward (for the STE) */
    gsq_observer *obs;     /* while observing */
} gsq_qsite;

struct gsq_vit_quant {
    gsq_quant_mode mode;
    int w_qmax, a_qmax;
    gsq_calib_method weight_calib;
    int active;            /* fake quantization on (calibrated) */
    int observing;
    int num_sites;
    gsq_qsite *sites;
    int batch_cap;         /* xq buffers hold this many images */
    float *dw;             /* scratch for one site's weight gradient */
};

/* Sizes the input buffers for a batch of B (called by forward). */
gsq_status gsq_vit_quant_prepare(gsq_vit *m, int B, gsq_error *err);
/* Forward: the input to use at site s (x observed, or fake-quantized, or x itself). */
const float *gsq_qsite_input(gsq_vit *m, int s, const float *x, size_t n);
/* Forward: the weight to use at site s (fake-quantized with fresh per-row scales, or w). */
const float *gsq_qsite_weight(gsq_vit *m, int s, const float *w);
/* Backward: where linear_backward should put site s's weight gradient, and then the STE that adds
 * it to grad; the STE of the input gradient dx (n values, in place). */
float *gsq_qsite_dw_target(gsq_vit *m, int s, float *grad);
void gsq_qsite_dw_finish(gsq_vit *m, int s, float *grad);
void gsq_qsite_input_grad(gsq_vit *m, int s, float *dx, size_t n);
/* Backward: the input and weight the forward actually used at site s. */
const float *gsq_qsite_saved_input(const gsq_vit *m, int s, const float *x);
const float *gsq_qsite_saved_weight(const gsq_vit *m, int s, const float *w);

#endif
