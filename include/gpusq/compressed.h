/* The compressed model file (docs/FORMAT.md, "Compressed models"): a safetensors file holding,
 * for every quantized GEMM, its integer weights — for a 2:4 / paired 4:8 sparse GEMM only the kept
 * values (INT8, or INT4 packed two per byte) with their position metadata — the per-channel weight
 * scales and the input's activation scale; the float parameters (biases, norms, tokens, head) as
 * F32; and the architecture, mode, pattern and format version in its metadata. */
#ifndef GPUSQ_COMPRESSED_H
#define GPUSQ_COMPRESSED_H

#include "gpusq/safetensors.h"
#include "gpusq/sparse.h"
#include "gpusq/vit_quant.h"

#define GSQ_COMPRESSED_VERSION 1

typedef struct {
    gsq_quant_mode mode;
    gsq_sparse_pattern pattern;
    int sparse_linears, dense_linears; /* compressed linears stored sparse / dense */
    int attention;                 /* 1: the attention matmuls' inputs are quantized too */
    size_t param_bytes;            /* bytes of tensor data in the file */
    /* The paper's accounting (docs/QUANTIZATION.md, "Model size"): the quantized GEMMs' weights
     * alone — their element count, and the bytes of their codes plus position metadata (scales,
     * biases and float parameters not counted). */
    size_t gemm_weights, gemm_weight_bytes;
} gsq_compressed_info;

/* Writes m, which must carry calibrated quantizers, atomically. A GEMM whose weights obey the
 * pattern is stored sparse; any other (a layer pruning skipped) is stored as dense codes. */
gsq_status gsq_compressed_save(const gsq_model *m, gsq_sparse_pattern pattern, const char *path,
                               gsq_compressed_info *info, gsq_error *err);

/* Reads a compressed file back into a fake-quantized model: weights are the dequantized codes,
 * the file's scales are fixed, so forward computes what the quantized model computes. Every
 * size, index, code and scale is validated first; a malformed file is an error naming what is
 * wrong. info may be NULL. */
gsq_status gsq_compressed_load(gsq_model **out, const char *path, gsq_compressed_info *info, gsq_error *err);
/* The same from a file already open (it stays open; messages name its label). */
gsq_status gsq_compressed_load_open(gsq_model **out, const gsq_st_file *f, gsq_compressed_info *info, gsq_error *err);
/* The file checked as gsq_compressed_load checks it, tensor by tensor, without reading its
 * weights: the model's architecture and class names with no parameter block (as gsq_vit_describe
 * makes it), and info. For what needs the file's description but not a float model
 * (gsq_engine_load builds the engine from the stored codes). */
gsq_status gsq_compressed_describe(gsq_model **out, const gsq_st_file *f, gsq_compressed_info *info, gsq_error *err);

#endif
