/* Symmetric linear quantization for QAT (stage 2): fake quantization with straight-through
 * gradients, LSQ's gradient of the scale, per-output-channel weight scales, and calibration of
 * per-tensor activation scales (max, percentile, MSE-optimal, entropy) from observed values.
 *
 * A b-bit symmetric quantizer with scale s maps x to q = clamp(round(x / s), -qmax, qmax) with
 * qmax = 2^(b-1) - 1 (INT8: [-127, 127]; INT4: [-7, 7]; the most negative code, -128 or -8, is
 * not used, so the range is symmetric and 0 is exact), and back to x̂ = q·s. round() is half to
 * even (PyTorch's fake_quantize_per_tensor_affine). Zero stays exactly zero: pruned weights remain
 * pruned after quantization. */
#ifndef GPUSQ_QUANT_H
#define GPUSQ_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/status.h"

/* 2^(bits-1) - 1 for bits in 2..16. */
int gsq_quant_qmax(int bits);
/* 1 if a scale given from outside (a file) is usable: normal (at least FLT_MIN), so that
 * quantizing by its reciprocal stays finite (a subnormal scale's reciprocal is infinite, and
 * 0 · inf is NaN), and below 1e30. */
int gsq_quant_scale_ok(float s);

/* y = x̂ for n values with one scale (y may be x). scale must be > 0. */
void gsq_fake_quant(float *y, const float *x, size_t n, float scale, int qmax);
/* Straight-through gradient: dx = dy where |round(x / scale)| <= qmax, else 0 (dx may be dy). */
void gsq_fake_quant_backward(float *dx, const float *dy, const float *x, size_t n, float scale, int qmax);
/* LSQ's step-size gradient (learned step size quantization, Esser et al. 2020): Σ dy·∂x̂/∂s over
 * n values, with ∂x̂/∂s = round(x/s) − x/s where |round(x/s)| <= qmax (round's straight-through
 * estimator) and ±qmax, the sign of x, where the quantizer saturates. Summed in double over fixed
 * chunks in a fixed order: the same bits for any number of threads. */
double gsq_fake_quant_scale_grad(const float *dy, const float *x, size_t n, float scale, int qmax);
/* Per-row fake quantization of a (rows, cols) weight with scales[row]. */
void gsq_fake_quant_rows(float *y, const float *w, int rows, int cols, const float *scales, int qmax);
/* Integer codes of x with a scale (the values the compressed format stores). */
void gsq_quantize_codes(int8_t *q, const float *x, size_t n, float scale, int qmax);

typedef enum {
    GSQ_CALIB_MAX,        /* amax = max |x| */
    GSQ_CALIB_PERCENTILE, /* amax = the p-th percentile of |x| */
    GSQ_CALIB_MSE,        /* amax minimising the mean squared quantization error */
    GSQ_CALIB_ENTROPY,    /* amax minimising KL(P ‖ Q) between the |x| histogram and its quantized
                           * version (TensorRT's entropy calibration) */
} gsq_calib_method;

/* "max", "percentile", "mse", "entropy". */
gsq_status gsq_calib_parse(const char *s, gsq_calib_method *out, gsq_error *err);
const char *gsq_calib_name(gsq_calib_method m);

/* Per-output-channel weight scales (rows of a (rows, cols) weight): max or mse; a row of zeros
 * gets scale 1 (any scale keeps it zero). */
gsq_status gsq_weight_scales(float *scales, const float *w, int rows, int cols, int qmax, gsq_calib_method m,
                             gsq_error *err);

/* An activation observer: keeps max |x| and a bounded, deterministic sample of |x| over every
 * observed batch, from which a per-tensor scale is calibrated. */
typedef struct gsq_observer gsq_observer;
gsq_status gsq_observer_create(gsq_observer **out, size_t capacity, uint64_t seed, gsq_error *err);
void gsq_observer_free(gsq_observer *o);
void gsq_observer_observe(gsq_observer *o, const float *x, size_t n);
/* The scale (amax / qmax) by method; percentile in (0, 100] is used by GSQ_CALIB_PERCENTILE.
 * GSQ_ERR_ARG when nothing was observed or every value was 0. */
gsq_status gsq_observer_scale(gsq_observer *o, gsq_calib_method m, float percentile, int qmax, float *scale,
                              gsq_error *err);

#endif
