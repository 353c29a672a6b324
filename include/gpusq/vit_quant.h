/* Quantization-aware ViTs (stage 2): fake quantization of every GEMM of the transformer — the
 * patch embedding and each block's qkv, proj, fc1 and fc2 — with per-output-channel weight scales
 * and per-tensor activation scales on each GEMM's input, inside gsq_model_forward/backward
 * (straight-through gradients). LayerNorm, softmax, GELU, the attention matmuls (QKᵀ, AV) and the
 * classifier head stay float; so do biases, which an integer engine adds to the INT32
 * accumulator after rescaling.
 *
 * Use: gsq_model_quant_enable, then calibrate the activation scales — gsq_model_quant_observe_begin,
 * a few float forward passes, gsq_model_quant_observe_end — after which forward and backward
 * fake-quantize. Weight scales follow the weights: they are recomputed from the current weights
 * (by max or MSE) at every forward, so they always describe the weights being trained. With LSQ
 * (gsq_model_quant_enable_lsq) the scales are learned instead. */
#ifndef GPUSQ_VIT_QUANT_H
#define GPUSQ_VIT_QUANT_H

#include "gpusq/data.h"
#include "gpusq/quant.h"
#include "gpusq/vit.h"

typedef enum {
    GSQ_QMODE_INT8, /* W8A8 */
    GSQ_QMODE_INT4, /* W4A4 */
    GSQ_QMODE_W4A8, /* 4-bit weights, 8-bit activations */
} gsq_quant_mode;

/* "int8", "int4", "w4a8". */
gsq_status gsq_quant_mode_parse(const char *s, gsq_quant_mode *out, gsq_error *err);
const char *gsq_quant_mode_name(gsq_quant_mode m);
int gsq_quant_mode_weight_bits(gsq_quant_mode m);
int gsq_quant_mode_act_bits(gsq_quant_mode m);

/* The quantizers belong to the compressed linears of m->graph (gpusq/graph.h: every linear but the
 * classifier heads); the functions below that take `linear` take its index there. */

/* Attaches quantizers to m (replacing any); activations are not quantized until calibrated. */
gsq_status gsq_model_quant_enable(gsq_model *m, gsq_quant_mode mode, gsq_calib_method weight_calib, gsq_error *err);
void gsq_model_quant_disable(gsq_model *m);
/* Also quantizes the attention matmuls' inputs — Q, K, V with per-tensor scales (calibrated with
 * the GEMM inputs), and the softmax probabilities with the fixed scale 1/qmax (they lie in
 * [0, 1]) — at the activation bit width. Call after gsq_model_quant_enable, before calibrating. */
gsq_status gsq_model_quant_enable_attention(gsq_model *m, gsq_error *err);
/* Block l's Q, K, V scales (3 values), or NULL when the attention matmuls stay float. */
const float *gsq_model_quant_attention_scales(const gsq_model *m, int l);
gsq_status gsq_model_quant_set_attention_scales(gsq_model *m, int l, const float *scales, gsq_error *err);
/* LSQ, learned step size quantization (Esser et al. 2020): every compressed linear's activation scale
 * and per-row weight scales become trained parameters, a second block of gsq_model_blocks (tensors
 * quant.NAME.input_scale and quant.NAME.weight_scale) that the optimizer, gradient accumulation and
 * checkpoints treat like the weights, learned as log s (so they stay positive and move by about the
 * same fraction whatever their size) at lr_scale (> 0) times the weights' learning rate. The
 * activation scales start from calibration, the weight scales from the first fake-quantized
 * forward's (by the weight calibration, or those fixed by gsq_model_quant_fix_weight_scales); from
 * then on they are held, not recomputed. Backward adds ∂L/∂log s to the block's gradients with
 * LSQ's straight-through estimator and gradient scale g = 1/sqrt(N·qmax) (N: a linear input's
 * features per image, or a weight row's length); gsq_model_zero_grad zeroes them. The attention
 * matmuls' Q, K, V scales stay calibrated. Call after gsq_model_quant_enable. */
gsq_status gsq_model_quant_enable_lsq(gsq_model *m, float lr_scale, gsq_error *err);
/* The number of learned scales (0 without LSQ). */
size_t gsq_model_quant_lsq_size(const gsq_model *m);
/* The quantizers' state in a training checkpoint (src/models/vit_quant_checkpoint.c): metadata
 * quant.mode, quant.weight_calibration, quant.attention, quant.lsq (LSQ's learning-rate factor, 0
 * without LSQ); tensors quant.NAME.input_scale (1) and, where held (LSQ, or fixed),
 * quant.NAME.weight_scale (rows) for each compressed linear NAME, and
 * quant.blocks.L.attn.qkv.output_scale (3). (The learned scales' optimizer moments are the
 * trainer's, under their tensor names like the weights'.) add_to_writer borrows m's
 * buffers (nothing without quantizers); restore attaches the quantizers to m, which has none,
 * from such a file (nothing when it has no quant.mode), every value checked. */
struct gsq_st_writer;
struct gsq_st_file;
gsq_status gsq_model_quant_add_to_writer(const gsq_model *m, struct gsq_st_writer *w, gsq_error *err);
gsq_status gsq_model_quant_restore(gsq_model *m, const struct gsq_st_file *f, gsq_error *err);
/* The following forward passes run in float and record each compressed linear's input (a
 * reservoir of `capacity` values per linear). */
gsq_status gsq_model_quant_observe_begin(gsq_model *m, size_t capacity, gsq_error *err);
/* Sets every compressed linear's activation scale from what was observed (percentile for
 * GSQ_CALIB_PERCENTILE) and switches fake quantization on. */
gsq_status gsq_model_quant_observe_end(gsq_model *m, gsq_calib_method method, float percentile, gsq_error *err);

/* The whole calibration: observe the first `batches` batches of ds (eval transform t), then set
 * the scales by method (src/compress/calibrate.c). On failure the quantizers are removed. */
gsq_status gsq_model_quant_calibrate(gsq_model *m, gsq_dataset *ds, const gsq_transform *t, int batch_size, int batches,
                                   int workers, gsq_calib_method method, float percentile, gsq_error *err);

/* Read access: the mode, whether fake quantization is active, a compressed linear's activation
 * scale, and its weight scales (one per output row) as of the last forward. */
int gsq_model_quant_active(const gsq_model *m);
gsq_quant_mode gsq_model_quant_mode(const gsq_model *m); /* m must have quantizers */
float gsq_model_quant_act_scale(const gsq_model *m, int linear);
const float *gsq_model_quant_weight_scales(const gsq_model *m, int linear);
/* Sets a compressed linear's activation scale (loading a quantized model). */
gsq_status gsq_model_quant_set_act_scale(gsq_model *m, int linear, float scale, gsq_error *err);
/* A compressed linear's weight as the forward quantizes it now: integer codes (rows·cols) and the
 * per-row scales (rows). */
gsq_status gsq_model_quant_weight_codes(const gsq_model *m, int linear, int8_t *codes, float *scales, gsq_error *err);
/* Fixes a compressed linear's per-row weight scales (rows values, each > 0): forward then uses
 * them instead of recomputing scales from the weights (a model loaded from a compressed file). */
gsq_status gsq_model_quant_fix_weight_scales(gsq_model *m, int linear, const float *scales, gsq_error *err);

#endif
