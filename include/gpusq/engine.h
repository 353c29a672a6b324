/* The inference engine for compressed models (docs/ENGINE.md, docs/CUDA.md): integer GEMMs on
 * the kept INT8/INT4 codes of a compressed file, float LayerNorm, softmax and GELU (and on the CPU
 * a segmenter's mask head and a detector's cross-attention; CUDA refuses those heads), on the CPU
 * (run-time choice of the kernels: AMX, AVX-512 VNNI, AVX-VNNI, AVX2 or plain C) or on an NVIDIA GPU
 * (tensor-core mma.sp / mma kernels). The packed weights stay compressed in memory; the
 * activation buffers are sized once for the largest batch. */
#ifndef GPUSQ_ENGINE_H
#define GPUSQ_ENGINE_H

#include "gpusq/safetensors.h"
#include "gpusq/sparse.h"
#include "gpusq/vit.h"

typedef enum {
    GSQ_ENGINE_SPARSE, /* as the file stores it: 2:4 / 4:8 GEMMs read only their kept codes */
    GSQ_ENGINE_DENSE,  /* every GEMM as dense integer codes (pruned zeros multiplied): the baseline */
    GSQ_ENGINE_FP16,   /* CUDA only: every GEMM in FP16 on cuBLASLt, from the model's float weights,
                        * activations unquantized: the GPU's float baseline */
} gsq_engine_layout;

typedef enum {
    GSQ_ENGINE_CPU,
    GSQ_ENGINE_CUDA, /* the current CUDA device, through the CUDA backend library (libgpusq_cuda.so,
                      * opened at run time: libgpusq never links CUDA itself); GSQ_ERR_UNSUPPORTED
                      * without a GPU, a driver, or the library (none without nvcc at build time) */
} gsq_engine_device;

/* The GPU a GSQ_ENGINE_CUDA engine would run on, "NVIDIA H100 80GB HBM3 (sm_90)", into buf; opens
 * the CUDA backend library. GSQ_ERR_UNSUPPORTED, saying why, where there is none. */
gsq_status gsq_engine_gpu_name(char *buf, size_t cap, gsq_error *err);

typedef struct gsq_engine gsq_engine;

/* How an engine is built; gsq_engine_options_init gives the defaults (in brackets). */
typedef struct {
    gsq_engine_layout layout;   /* [GSQ_ENGINE_SPARSE] */
    int max_batch;              /* [1] the largest batch gsq_engine_forward will get */
    gsq_engine_device device;   /* [GSQ_ENGINE_CPU] */
    gsq_sparse_pattern pattern; /* [2:4] the pattern a model's sparse GEMMs obey (a file names its own) */
} gsq_engine_options;
void gsq_engine_options_init(gsq_engine_options *o);

/* The engine straight from an open compressed file (gsq_compressed_load's checks, every one),
 * without a float model: each GEMM's stored codes are packed as they are, sparse where the file
 * stores them sparse (GSQ_ENGINE_SPARSE), and the float parameters read from the file. It
 * computes what gsq_engine_create computes from gsq_compressed_load's model, bit for bit, in a
 * fraction of the memory. f may be closed afterwards.
 * On CUDA a GEMM runs on the sparse tensor cores (mma.sp) when its codes obey 2:4, whatever the
 * pattern (a paired 4:8 INT4 weight rarely does: it runs dense, its 4-bit codes unpacked to the
 * INT8 path, as GPUs up to Hopper have no 4-bit tensor-core instructions); times per part come
 * from CUDA events. */
gsq_status gsq_engine_load(gsq_engine **out, const gsq_st_file *f, const gsq_engine_options *o, gsq_error *err);
/* The engine of m, a model with calibrated quantizers (as gsq_compressed_load returns it, the
 * file's scales fixed; or one in quantization-aware training). With GSQ_ENGINE_SPARSE a GEMM whose
 * weights obey o->pattern (and whose input size is a multiple of its group) runs sparse, any other
 * dense. The engine copies what it needs; m may be freed afterwards. */
gsq_status gsq_engine_create(gsq_engine **out, const gsq_model *m, const gsq_engine_options *o, gsq_error *err);
void gsq_engine_free(gsq_engine *e);
/* The output of images (B, 3, H, W), B ≤ max_batch, as gsq_model_output_shape describes it (a
 * classifier's logits (B, num_classes); a segmenter's and a detector's per gpusq/task.h), both in
 * host memory (on CUDA the images are copied to the device and the logits back); the pointer is
 * valid until the next call. */
gsq_status gsq_engine_forward(gsq_engine *e, const float *images, int B, const float **logits, gsq_error *err);
/* Bytes the packed weights of the compressed linears occupy in memory, and the number of them that
 * run sparse. */
size_t gsq_engine_weight_bytes(const gsq_engine *e);
int gsq_engine_sparse_linears(const gsq_engine *e);
/* Time spent per part of the forward pass, accumulated since the last reset (seconds), in
 * gsq_engine_parts(e) entries. A part is an operation ("layernorm", "attention", "tokens", ...) or
 * a kind of linear layer, its name without its place in the stack of blocks ("attn.qkv",
 * "mlp.fc1+gelu" where the GELU runs in its epilogue, "patch_embed.proj", "head"), summed over the
 * blocks; on CUDA also "transfer" (images to the device and logits back). */
int gsq_engine_parts(const gsq_engine *e);
const char *gsq_engine_part_name(const gsq_engine *e, int part);
const double *gsq_engine_times(const gsq_engine *e);
void gsq_engine_reset_times(gsq_engine *e);
/* A roofline of the CPU engine. The ceilings, measured now with threads threads (0: as many as
 * OpenMP uses): the int8 multiply-accumulates per second of the active instruction set's core
 * instruction on data in registers (VPDPBUSD for AVX-512 and AVX-VNNI, VPMADDUBSW + VPMADDWD for
 * AVX2, TDPBUSD for AMX), and the bytes per second read from a buffer far larger than the caches.
 * Takes about a second. */
typedef struct {
    double macs_per_second, bytes_per_second;
} gsq_engine_ceilings;
gsq_status gsq_engine_measure_ceilings(int threads, gsq_engine_ceilings *out, gsq_error *err);
/* The work of part p (as gsq_engine_times counts it) for a batch of B: multiply-accumulates (a
 * linear's as if dense, M × N × K, whatever its layout; the attention's QKᵀ and AV) and the bytes
 * it must move at least: every weight in its packed layout, every input and output once, in the
 * forms the plan passes them (floats, or a linear's int8 input codes). */
void gsq_engine_part_work(const gsq_engine *e, int part, int B, double *macs, double *bytes);
/* The kernels' instruction set in use: "amx-int8", "avx512-vnni", "avx-vnni", "avx2" or
 * "reference C" (GSQ_ISA=ref|avx2|avx-vnni|avx512|amx in the environment picks one the CPU has). */
const char *gsq_engine_isa(void);

#endif
