/* Swin Transformers (timm's current layout): configurations, the builder that makes a model
 * (gpusq/model.h) of one, timm-style initialisation, and loading timm-named safetensors.
 * Stage s works on a grid of grid(s)² tokens of width dims[s]: stage 0 on the patch grid, every
 * later one first merges 2×2 neighbours (PatchMerging, a padded odd grid rounding up). Block j
 * of a stage attends within window(s)×window(s) windows, shifted by window(s)/2 on odd j, where
 * window(s) is the configured window clamped to the stage's grid (no shift when it covers it). */
#ifndef GPUSQ_SWIN_H
#define GPUSQ_SWIN_H

#include "gpusq/model.h"
#include "gpusq/status.h"
#include "gpusq/task.h"

struct gsq_st_file;

#define GSQ_SWIN_MAX_STAGES 8

typedef struct {
    int img_size;       /* square input side, pixels */
    int patch_size;
    int in_chans;
    int num_classes;
    int num_stages;
    int depths[GSQ_SWIN_MAX_STAGES];    /* blocks per stage */
    int dims[GSQ_SWIN_MAX_STAGES];      /* width per stage (timm: embed_dim · 2^s) */
    int num_heads[GSQ_SWIN_MAX_STAGES];
    int window;         /* window side before the clamp to each stage's grid (timm's window_size) */
    int mlp_hidden[GSQ_SWIN_MAX_STAGES]; /* fc1 outputs per stage (mlp_ratio × width) */
    int qkv_bias;
    float ln_eps;       /* LayerNorm epsilon (timm's Swin: 1e-5) */
    gsq_task task;      /* classify: average pooling and head.fc; segment: the final norm of the last
                         * stage's tokens and a decode head over them (gpusq/model.h) */
    gsq_seg_head seg_head; /* segment: which decode head (linear or the mask transformer) */
} gsq_swin_config;

/* Fills *cfg for a timm model name (swin_tiny_patch4_window7_224, ...) or gpusq_swin_demo. */
gsq_status gsq_swin_config_by_name(const char *name, gsq_swin_config *cfg, gsq_error *err);
/* Names accepted by gsq_swin_config_by_name, NULL-terminated. */
const char *const *gsq_swin_config_names(void);
gsq_status gsq_swin_config_validate(const gsq_swin_config *cfg, gsq_error *err);

/* Stage s's grid side, window side (after the clamp) and shift of its odd blocks. */
int gsq_swin_stage_grid(const gsq_swin_config *c, int s);
int gsq_swin_stage_window(const gsq_swin_config *c, int s);
int gsq_swin_stage_shift(const gsq_swin_config *c, int s);
/* All blocks of all stages. */
int gsq_swin_blocks(const gsq_swin_config *c);

/* The configuration of a model the Swin builder made, or NULL for another architecture. */
const gsq_swin_config *gsq_model_swin_config(const gsq_model *m);

/* A Swin of cfg with zeroed parameters; its parameter table alone (params NULL) for checking a
 * file before anything large is allocated. */
gsq_status gsq_swin_create(gsq_model **out, const gsq_swin_config *cfg, gsq_error *err);
gsq_status gsq_swin_describe(gsq_model **out, const gsq_swin_config *cfg, gsq_error *err);
/* timm's initialisation, deterministic from seed: Linear weights and the relative position bias
 * tables trunc_normal(std 0.02, cut at ±2), zero Linear biases, unit LayerNorm weights, the patch
 * embedding at PyTorch's Conv2d default. */
void gsq_swin_init(gsq_model *m, uint64_t seed);

/* Infers a configuration from the tensors of an open safetensors file in timm's layout: widths
 * from the norms, depths from the blocks present, heads from the bias tables' widths, the window
 * from the tables' sizes. The input side is not in the weights: img_size if positive, else the
 * file's "img_size" metadata, else timm's convention that the last stage's grid is one window
 * (patch · window · 2^(stages-1): 224 for window 7 at patch 4, 384 for window 12). Files in the
 * older layout (head.weight, downsample at the end of a stage) are refused with a message saying
 * so. */
gsq_status gsq_swin_infer_config(const struct gsq_st_file *f, int img_size, gsq_swin_config *cfg, gsq_error *err);
/* Loads a Swin from an open safetensors file: with cfg NULL the configuration is inferred
 * (gsq_swin_infer_config with no input size), else every tensor is checked against cfg; tensors
 * whose names start with a prefix in ignore (NULL-terminated, or NULL) are skipped. */
gsq_status gsq_swin_load_open(gsq_model **out, const struct gsq_st_file *f, const gsq_swin_config *cfg,
                              const char *const *ignore, gsq_error *err);
/* The configuration recorded in a file's metadata alone (gsq_model_add_meta_to_writer). */
gsq_status gsq_swin_config_from_meta(const struct gsq_st_file *f, gsq_swin_config *cfg, gsq_error *err);

#endif
