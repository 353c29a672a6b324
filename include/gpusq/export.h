/* Export to ONNX (docs/EXPORT.md): a model — dense, sparse, or quantized (a compressed file loaded
 * as its fake-quantized twin) — written as one ONNX file that TensorRT or ONNX Runtime runs. The
 * exporter walks the model's graph (gpusq/graph.h): every operation becomes standard ONNX
 * operators (LayerNormalization as one op, exact GELU, attention as MatMul/Softmax with Swin's
 * bias and mask as constant Adds, the window and merge rearrangements as constant Gathers). A
 * quantized model's own scales become QuantizeLinear/DequantizeLinear pairs, never recalibrated:
 * the integer weights as int8 initializers with per-row DequantizeLinear (axis 0, pruned zeros
 * kept), each quantized input with its per-tensor scale. */
#ifndef GPUSQ_EXPORT_H
#define GPUSQ_EXPORT_H

#include "gpusq/model.h"

typedef enum {
    /* Symmetric int8 everywhere (zero point 0); quantized attention's q, k and v each get their
     * per-tensor pair right after the qkv GEMM (sliced from its output), so it ends in int8
     * codes. For trtexec --int8 --sparsity=enable. */
    GSQ_EXPORT_TENSORRT,
    /* What ONNX Runtime's x86 CPU fuses into integer kernels: uint8 activations (zero point 128:
     * the same codes shifted), int8 weights; q, k and v each their own pair before their MatMul. */
    GSQ_EXPORT_ORT,
} gsq_export_target;

typedef struct {
    gsq_export_target target;
    int opset; /* 17 to 21 */
    int batch; /* the input's batch size; 0: a symbolic (dynamic) batch axis */
} gsq_export_options;

/* target tensorrt, opset 17, dynamic batch. */
void gsq_export_options_init(gsq_export_options *o);
/* "tensorrt", "ort". */
const char *gsq_export_target_name(gsq_export_target t);

/* Writes m to path (atomically) as ONNX. Input "images" (batch, C, S, S) float, normalised as the
 * eval transform does; output "logits" (batch, classes). A quantized m (gsq_model_quant_active)
 * gives Q/DQ; a model with quantizers attached but not calibrated is refused. */
gsq_status gsq_export_onnx(const gsq_model *m, const gsq_export_options *o, const char *path, gsq_error *err);

#endif
