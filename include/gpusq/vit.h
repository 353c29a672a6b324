/* Vision transformers (ViT / DeiT, timm layout): configurations, the builder that makes a model
 * (gpusq/model.h) of one, timm's initialisation, and loading timm-named safetensors. */
#ifndef GPUSQ_VIT_H
#define GPUSQ_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/model.h"
#include "gpusq/nn.h"
#include "gpusq/status.h"
#include "gpusq/task.h"

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
    gsq_task task;    /* classify: pooling and head(s); segment / detect: the final norm of every token
                       * and a decode head or a detector's decoder over the patch tokens (gpusq/model.h) */
    gsq_seg_head seg_head; /* segment: which decode head (linear or the mask transformer) */
    gsq_det_head det;      /* detect: the decoder over the normalised patch tokens */
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

/* The configuration of a model the ViT builder made. */
const gsq_vit_config *gsq_model_vit_config(const gsq_model *m); /* NULL for another architecture */

/* Allocates a ViT of cfg with zeroed parameters. */
gsq_status gsq_vit_create(gsq_model **out, const gsq_vit_config *cfg, gsq_error *err);
/* The two halves of create: the parameter table alone (params NULL), so a file can be checked
 * against the architecture before anything large is allocated; then the parameter block. */
gsq_status gsq_vit_describe(gsq_model **out, const gsq_vit_config *cfg, gsq_error *err);
/* Loads a timm state_dict from a safetensors file. With cfg NULL the architecture is inferred
 * from the tensor shapes and the file's metadata ("num_heads", or head_dim 64 as timm's ViTs);
 * with cfg given, every tensor is checked against it. Missing, extra and mis-shaped tensors are
 * reported by name. */
gsq_status gsq_vit_load(gsq_model **out, const char *path, const gsq_vit_config *cfg,
                        gsq_error *err);
/* Infers a configuration from the tensors of an open safetensors file. The head count is not
 * visible in the weights: it comes from num_heads if positive, else the file's "num_heads"
 * metadata, else timm's head_dim 64. */
struct gsq_st_file;
gsq_status gsq_vit_infer_config(const struct gsq_st_file *f, int num_heads, gsq_vit_config *cfg,
                                gsq_error *err);
/* Loading for files that hold more than a model (checkpoints): from an open file, ignoring tensors
 * whose names start with one of the prefixes in ignore (a NULL-terminated list; NULL: none). */
struct gsq_st_writer;
gsq_status gsq_vit_load_open(gsq_model **out, const struct gsq_st_file *f, const gsq_vit_config *cfg,
                             const char *const *ignore, gsq_error *err);
/* The configuration recorded in a file's metadata alone (every key of gsq_model_add_meta_to_writer;
 * GSQ_ERR_MISSING naming the first absent one), validated. */
gsq_status gsq_vit_config_from_meta(const struct gsq_st_file *f, gsq_vit_config *cfg, gsq_error *err);

#endif
