/* Vision transformers (ViT / DeiT, timm layout): configurations, the model with its parameters in
 * one block and activations in one arena, forward, loss and backward on the CPU, and loading and
 * saving timm-named safetensors. */
#ifndef GPUSQ_VIT_H
#define GPUSQ_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/nn.h"
#include "gpusq/status.h"

typedef struct {
    int img_size;     /* square input side, pixels */
    int patch_size;   /* conv kernel = stride */
    int in_chans;
    int num_classes;
    int embed_dim;
    int depth;
    int num_heads;
    int mlp_hidden;   /* fc1 output size (mlp_ratio × embed_dim) */
    int qkv_bias;     /* 1: the fused qkv projection has a bias */
    int class_token;  /* 1: a class token is prepended */
    int distilled;    /* 1: DeiT distillation token and head_dist; logits = (head + head_dist) / 2 */
    gsq_pool pool;    /* token: the class token feeds the head; avg: mean of patch tokens + fc_norm */
    float ln_eps;     /* LayerNorm epsilon (timm: 1e-6) */
} gsq_vit_config;

/* Fills *cfg for a timm model name (vit_tiny_patch16_224, deit_small_distilled_patch16_224, ...). */
gsq_status gsq_vit_config_by_name(const char *name, gsq_vit_config *cfg, gsq_error *err);
/* Names accepted by gsq_vit_config_by_name, NULL-terminated. */
const char *const *gsq_vit_config_names(void);
gsq_status gsq_vit_config_validate(const gsq_vit_config *cfg, gsq_error *err);

static inline int gsq_vit_grid(const gsq_vit_config *c) { return c->img_size / c->patch_size; }
static inline int gsq_vit_num_patches(const gsq_vit_config *c) { return gsq_vit_grid(c) * gsq_vit_grid(c); }
static inline int gsq_vit_prefix(const gsq_vit_config *c) { return c->class_token + c->distilled; }
static inline int gsq_vit_tokens(const gsq_vit_config *c) { return gsq_vit_prefix(c) + gsq_vit_num_patches(c); }

/* Multiply-accumulates of one image's forward pass (GEMMs and attention matmuls). */
double gsq_vit_macs(const gsq_vit_config *cfg);

/* Bytes of the activation arena for a batch: an inference forward's, or a training forward's and
 * backward's (0 when it does not fit in memory's address space). */
size_t gsq_vit_activation_bytes(const gsq_vit_config *cfg, int batch, int training);

/* One parameter tensor: timm name, shape and place in the parameter block. */
#define GSQ_NAME_MAX 64
typedef struct {
    char name[GSQ_NAME_MAX];
    int ndim;
    int64_t shape[4];
    size_t offset; /* in floats, into params and grads */
    size_t numel;
    int no_decay;  /* 1: the optimizer applies no weight decay to it (set by the architecture's
                    * table: timm's rule, every 1-D tensor and the tokens and position embedding) */
} gsq_param;

typedef struct gsq_vit {
    gsq_vit_config cfg;
    int num_tensors;
    gsq_param *tensors;   /* in timm state_dict order */
    size_t num_params;
    float *params;        /* one block: all parameters */
    float *grads;         /* same layout, allocated by the first zero_grad or backward */
    struct gsq_graph *graph; /* what it computes (gpusq/graph.h), built with the table */
    int act_batch;        /* batch the activation arena is planned for (0 = none yet) */
    int act_training;     /* 1: the arena keeps every value for backward */
    int batch;            /* batch of the last forward */
    int kept;             /* 1: the last forward kept what backward reads */
    float *act_mem;       /* the values of the last forward */
    size_t *act_at;       /* each value's offset in act_mem (SIZE_MAX: not there) */
    float *gact_mem;      /* backward's gradients of the values */
    size_t gact_floats;   /* its size */
    size_t *gact_at;      /* each value's offset in gact_mem (SIZE_MAX: no gradient) */
    int retain_grads;     /* 1: backward keeps every value's gradient (gsq_vit_output_grad), set
                           * before the first backward */
    int *targets;         /* (act_batch) labels of the last loss */
    float *probs;         /* (act_batch, num_classes) softmax of the last loss */
    float label_smoothing;
    int have_loss;        /* gsq_vit_loss ran on the last forward */
    char *class_names;    /* num_classes names separated by '\n', or NULL; saved as metadata */
    struct gsq_vit_quant *quant; /* fake quantizers for QAT (gpusq/vit_quant.h), or NULL */
} gsq_vit;

/* Sets the class names (copied; names must not contain '\n'); NULL clears them. */
gsq_status gsq_vit_set_class_names(gsq_vit *m, char *const *names, gsq_error *err);
/* The name of class k, written into buf; "" when the model has none. */
const char *gsq_vit_class_name(const gsq_vit *m, int k, char *buf, size_t cap);

/* Allocates a model with zeroed parameters. */
gsq_status gsq_vit_create(gsq_vit **out, const gsq_vit_config *cfg, gsq_error *err);
/* The two halves of create: the parameter table alone (params NULL), so a file can be checked
 * against the architecture before anything large is allocated; then the parameter block. */
gsq_status gsq_vit_describe(gsq_vit **out, const gsq_vit_config *cfg, gsq_error *err);
gsq_status gsq_vit_alloc_params(gsq_vit *m, gsq_error *err);
void gsq_vit_free(gsq_vit *m);
/* A new model with m's configuration, parameters and class names (no gradients, activations or
 * quantizers). */
gsq_status gsq_vit_clone(gsq_vit **out, const gsq_vit *m, gsq_error *err);
/* timm's initialisation, deterministic from seed: Linear weights and the position embedding
 * trunc_normal(std 0.02, cut at ±2 — in absolute units, as timm passes a=-2, b=2), zero Linear
 * biases, unit LayerNorm weights, cls/dist tokens ~N(0, 1e-6), and the patch embedding at
 * PyTorch's Conv2d default (weight and bias uniform in ±1/sqrt(in_chans·patch²)), which timm
 * leaves in place. */
void gsq_vit_init(gsq_vit *m, uint64_t seed);
const gsq_param *gsq_vit_find_param(const gsq_vit *m, const char *name);

/* Forward pass of images (B, C, H, W), normalised; keeps activations for backward.
 * Returns a pointer to the logits (B, num_classes) inside the model through *logits. */
gsq_status gsq_vit_forward(gsq_vit *m, const float *images, int B, const float **logits,
                           gsq_error *err);
/* The same forward for inference (evaluation, a teacher, calibration): it keeps only the taps
 * (logits, the heads' logits and the block outputs) and reuses the rest of its memory, so no
 * backward may follow. */
gsq_status gsq_vit_infer(gsq_vit *m, const float *images, int B, const float **logits, gsq_error *err);
/* A value of the last forward by its name in m->graph: "logits", "head" and "head_dist"
 * (distilled models), "blocks.L" (block L's output), ...: (batch, rows, cols) floats; NULL when
 * there is no such value or the last forward did not keep it. */
const float *gsq_vit_output(const gsq_vit *m, const char *name);
/* Cross-entropy of the last forward's logits against targets (B), with label smoothing. */
gsq_status gsq_vit_loss(gsq_vit *m, const int *targets, float label_smoothing, float *loss,
                        gsq_error *err);
/* Zeroes the parameter gradients (allocating them on first use), and those of the quantizers'
 * learned scales when LSQ is on (gpusq/vit_quant.h). */
gsq_status gsq_vit_zero_grad(gsq_vit *m, gsq_error *err);
/* Backward of the last forward + loss; ACCUMULATES into m->grads (call zero_grad first). */
gsq_status gsq_vit_backward(gsq_vit *m, gsq_error *err);
/* Backward of the last forward from a loss computed elsewhere (distillation): dlogits (B, K) is
 * ∂L/∂(the head's logits); for distilled models dlogits_dist is ∂L/∂(head_dist's logits) (the
 * output logits are their mean, so a loss on the output gives each half its gradient). When
 * dblock_out is not NULL, dblock_out[l] (may be NULL) is added to ∂L/∂(block l's output), a
 * (B, tokens, embed_dim) array. ACCUMULATES into m->grads. */
gsq_status gsq_vit_backward_from(gsq_vit *m, const float *dlogits, const float *dlogits_dist,
                                 const float *const *dblock_out, gsq_error *err);
/* The general form: grads[k] (may be NULL) is ∂L/∂(value values[k] of m->graph), (batch, rows,
 * cols) floats; each joins the gradient that flows back into that value. ACCUMULATES into
 * m->grads. */
gsq_status gsq_vit_backward_values(gsq_vit *m, int count, const int *values, const float *const *grads,
                                   gsq_error *err);
/* With m->retain_grads set, the gradient the last backward computed for a value of m->graph
 * (batch, rows, cols) floats, like gsq_vit_output; NULL otherwise, or where none flowed (the
 * images and patches). */
const float *gsq_vit_output_grad(const gsq_vit *m, const char *name);

/* Loads a timm state_dict from a safetensors file. With cfg NULL the architecture is inferred
 * from the tensor shapes and the file's metadata ("num_heads", or head_dim 64 as timm's ViTs);
 * with cfg given, every tensor is checked against it. Missing, extra and mis-shaped tensors are
 * reported by name. */
gsq_status gsq_vit_load(gsq_vit **out, const char *path, const gsq_vit_config *cfg,
                        gsq_error *err);
/* Infers a configuration from the tensors of an open safetensors file. The head count is not
 * visible in the weights: it comes from num_heads if positive, else the file's "num_heads"
 * metadata, else timm's head_dim 64. */
struct gsq_st_file;
gsq_status gsq_vit_infer_config(const struct gsq_st_file *f, int num_heads, gsq_vit_config *cfg,
                                gsq_error *err);
/* Writes the parameters with timm names (F32) and the configuration as metadata, atomically. */
gsq_status gsq_vit_save(const gsq_vit *m, const char *path, gsq_error *err);

/* The pieces of load and save for files that hold more than a model (checkpoints): load from an
 * open file, ignoring tensors whose names start with one of the prefixes in ignore (a
 * NULL-terminated list; NULL: none); and add the parameters and configuration metadata to a
 * writer (borrowing the parameter block). */
struct gsq_st_writer;
gsq_status gsq_vit_load_open(gsq_vit **out, const struct gsq_st_file *f, const gsq_vit_config *cfg,
                             const char *const *ignore, gsq_error *err);
gsq_status gsq_vit_add_to_writer(const gsq_vit *m, struct gsq_st_writer *w, gsq_error *err);
/* GSQ_ERR_NUMERIC, "PATH: not written: NAME[i] is nan", when a parameter is NaN or infinite: every
 * writer of weights (gsq_vit_save, checkpoints, sparse and compressed models) checks first, so a
 * run that went wrong never leaves a file of non-finite weights. */
gsq_status gsq_vit_check_finite(const gsq_vit *m, const char *path, gsq_error *err);
/* Only the metadata part: the configuration (and class names). */
gsq_status gsq_vit_add_meta_to_writer(const gsq_vit *m, struct gsq_st_writer *w, gsq_error *err);
/* The configuration recorded in a file's metadata alone (every key of gsq_vit_add_meta_to_writer;
 * GSQ_ERR_MISSING naming the first absent one), validated. */
gsq_status gsq_vit_config_from_meta(const struct gsq_st_file *f, gsq_vit_config *cfg, gsq_error *err);

#endif
