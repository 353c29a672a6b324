/* Private: the quantizer state a gsq_model carries in QAT (include/gpusq/vit_quant.h), and the
 * hooks forward and backward call at each compressed linear (by its index in the model's graph)
 * and attention. Without quantizers every hook passes its argument through. */
#ifndef GSQ_VIT_QUANT_STATE_H
#define GSQ_VIT_QUANT_STATE_H

#include <stdio.h>

#include "gpusq/vit_quant.h"

typedef struct {
    int quantized;         /* 0 for the linears that stay float (the classifier heads): the rest is unset */
    size_t w_offset;       /* the weight, in the parameter block */
    int rows, cols;
    size_t in_per_sample;  /* input floats per image */
    size_t scale_index;    /* where its scales start in the quantizers' scale block */
    float *a_scale;        /* the activation scale (0 until calibrated): scale_index's */
    float *w_scales;       /* (rows) from the last forward, or held: right after it */
    int fixed_scales;      /* 1: w_scales are held (set by gsq_model_quant_fix_weight_scales, or learned
                            * by LSQ from the first forward's), not recomputed */
    float *wq;             /* (rows, cols) fake-quantized weight of the last forward */
    float *xq;             /* (batch_cap · in_per_sample) fake-quantized input of the last forward */
    const float *x;        /* the float input of the last forward (for the STE) */
    gsq_observer *obs;     /* while observing */
} gsq_qlinear;

/* The attention matmuls of one block (when quantized): Q, K and V (the sections of qkv's output)
 * each with a per-tensor scale, and the softmax probabilities with the fixed scale 1/qmax. */
typedef struct {
    float qkv_scale[3];    /* 0 until calibrated */
    float *qkv_q;          /* (batch_cap · T · 3D) fake-quantized qkv of the last forward */
    float *att_q;          /* (batch_cap · heads · T · T) fake-quantized probabilities */
    const float *qkv;      /* the float qkv of the last forward (for the STE) */
    gsq_observer *obs[3];
} gsq_qattn;

/* LSQ: the learned scales as a parameter block (gsq_model_blocks) over the quantizers' scales: a
 * tensor per quantized linear's activation scale (quant.NAME.input_scale) and weight scales
 * (quant.NAME.weight_scale), and their gradients. */
typedef struct {
    float lr_scale;        /* their learning rate, as a multiple of the trainer's */
    int num_tensors;
    gsq_param *tensors;    /* offsets into the scale block */
    float *grad;           /* (num_scales) ∂L/∂log s: s·∂L/∂s, scaled by LSQ's g */
    float *dx;             /* (batch_cap · the largest in_per_sample) an input gradient nothing else needs */
} gsq_lsq;

struct gsq_model_quant {
    gsq_quant_mode mode;
    int w_qmax, a_qmax;
    gsq_calib_method weight_calib;
    int active;            /* fake quantization on (calibrated) */
    int observing;
    int num_linears;
    gsq_qlinear *linears;  /* (num_linears) in the graph's order */
    size_t num_scales;
    float *scales;         /* every quantized linear's activation scale then its rows' weight scales,
                            * in the linears' order */
    int batch_cap;         /* xq buffers hold this many images */
    gsq_qattn *attn;       /* (depth) when the attention matmuls are quantized, else NULL */
    float *dw;             /* scratch for one linear's weight gradient */
    gsq_lsq *lsq;          /* learned scales, or NULL */
};

/* Sizes the input buffers for a batch of B (called by forward). */
gsq_status gsq_model_quant_prepare(gsq_model *m, int B, gsq_error *err);
/* Forward: the input to use at linear i (x observed, or fake-quantized, or x itself). */
const float *gsq_qlinear_input(gsq_model *m, int i, const float *x, size_t n);
/* Forward: the weight to use at linear i (fake-quantized with fresh per-row scales, or w). */
const float *gsq_qlinear_weight(gsq_model *m, int i, const float *w);
/* Backward: where linear_backward should put linear i's weight gradient, and then the STE that adds
 * it to grad; the STE of the input gradient dx (n values, in place). */
float *gsq_qlinear_dw_target(gsq_model *m, int i, float *grad);
void gsq_qlinear_dw_finish(gsq_model *m, int i, float *grad);
void gsq_qlinear_input_grad(gsq_model *m, int i, float *dx, size_t n);
/* Backward: a zeroed buffer of n floats for the input gradient of a linear whose input needs none
 * (the patch embedding's), which only LSQ wants (its activation scale's gradient); NULL without
 * LSQ. */
float *gsq_qlinear_scratch_dx(gsq_model *m, size_t n);
/* Backward: the input and weight the forward actually used at linear i. */
const float *gsq_qlinear_saved_input(const gsq_model *m, int i, const float *x);
const float *gsq_qlinear_saved_weight(const gsq_model *m, int i, const float *w);

/* LSQ's private parts (vit_quant_lsq.c): freeing, its block (zeroed with the others by
 * gsq_model_zero_grad), sizing dx for a batch of B, and adding one linear's activation-scale
 * gradient from its input's gradient dy (before the STE) or one weight row's from dw (rows'
 * gradients may be added from parallel threads: each writes its own slot). */
void gsq_lsq_free(gsq_lsq *l);
/* LSQ's parameter block (gsq_model_blocks): 1 and *b set, or 0 without LSQ. */
int gsq_lsq_block(gsq_model *m, gsq_param_block *b);
gsq_status gsq_lsq_prepare(gsq_model *m, int B, gsq_error *err);
void gsq_lsq_act_grad(gsq_model *m, int i, const float *dy, size_t n);
void gsq_lsq_row_grad(gsq_model *m, int i, int row, const float *dw);

/* The attention hooks of block l: the qkv to attend with (observed, quantized or as it is), the
 * buffer for quantized probabilities (NULL: float) and their scale and range; in backward the
 * qkv the forward used, and the STE of qkv's gradient (rows · 3D, in place). */
const float *gsq_qattn_qkv(gsq_model *m, int l, const float *qkv, size_t rows);
float *gsq_qattn_probs(gsq_model *m, int l, float *p_scale, int *p_qmax);
const float *gsq_qattn_saved_qkv(const gsq_model *m, int l, const float *qkv);
const float *gsq_qattn_saved_probs(const gsq_model *m, int l);
void gsq_qattn_qkv_grad(gsq_model *m, int l, float *dqkv, size_t rows);

/* The name of a quantizer's tensor in checkpoints and LSQ's block: "quant.MODULE.SUFFIX" (MODULE a
 * linear's name, SUFFIX input_scale, weight_scale or output_scale) into buf; 0 when it does not
 * fit. */
static inline int gsq_quant_tensor_name(char *buf, size_t cap, const char *module, const char *suffix)
{
    int len = snprintf(buf, cap, "quant.%s.%s", module, suffix);
    return len >= 0 && (size_t)len < cap;
}

#endif
