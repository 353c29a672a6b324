/* A model: the learned values and the network description (gpusq/graph.h) that an architecture's
 * builder made (gpusq/vit.h), behind an opaque handle. Forward, inference, loss and backward on
 * the CPU walk the description; the parameters are one block with timm's names; saving writes
 * them as timm-named safetensors. Everything here is the same for every architecture. */
#ifndef GPUSQ_MODEL_H
#define GPUSQ_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/status.h"
#include "gpusq/detect.h"
#include "gpusq/task.h"

typedef struct gsq_model gsq_model;
/* The architectures a model can be (the builders: gpusq/vit.h, gpusq/swin.h). */
typedef enum { GSQ_ARCH_VIT = 0, GSQ_ARCH_SWIN = 1 } gsq_arch;
struct gsq_graph;
struct gsq_st_writer;

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

/* Values a model learns, as the optimizer, gradient accumulation and checkpoints see them: named
 * tensors (their optimizer moments are saved as optim.exp_avg.NAME and optim.exp_avg_sq.NAME) at
 * offsets into one array of values with gradients of the same layout. A model has its parameter
 * block, and LSQ's learned quantizer scales when QAT learns them (gsq_model_quant_enable_lsq). */
typedef struct {
    int num_tensors;
    const gsq_param *tensors;
    size_t n;
    float *values, *grads;
    float lr_scale;   /* the block's learning rate, as a multiple of the schedule's */
    int log_domain;   /* 1: positive values learned as their logarithm (u = log v, ∂L/∂u in grads) */
} gsq_param_block;
#define GSQ_MAX_BLOCKS 2



/* m's learned blocks into out: its parameters (grads as allocated by gsq_model_zero_grad or
 * backward), then LSQ's scales when learned; returns how many. */
int gsq_model_blocks(gsq_model *m, gsq_param_block out[GSQ_MAX_BLOCKS]);

/* Sets the class names (copied; names must not contain '\n'); NULL clears them. */
gsq_status gsq_model_set_class_names(gsq_model *m, char *const *names, gsq_error *err);
/* The name of class k, written into buf; "" when the model has none. */
const char *gsq_model_class_name(const gsq_model *m, int k, char *buf, size_t cap);

/* What a model is: its description (values, operations, linears, taps), the input it takes
 * (channels × size × size images, normalised), its classes, its blocks (the "blocks.L" outputs
 * that distillation reads), and its parameter block: the tensors (timm names, in state_dict
 * order) at offsets into the parameters. */
const struct gsq_graph *gsq_model_graph(const gsq_model *m);
int gsq_model_in_chans(const gsq_model *m);
int gsq_model_input_size(const gsq_model *m);
int gsq_model_num_classes(const gsq_model *m);
/* The number of transformer blocks (all stages of a Swin): the graph's block outputs. */
int gsq_model_depth(const gsq_model *m);
int gsq_model_num_tensors(const gsq_model *m);
const gsq_param *gsq_model_tensor(const gsq_model *m, int i);
size_t gsq_model_num_params(const gsq_model *m);
float *gsq_model_params(gsq_model *m);
const float *gsq_model_params_const(const gsq_model *m);
/* The parameter gradients (layout of the parameters), NULL before the first zero_grad or backward. */
float *gsq_model_grads(gsq_model *m);

gsq_status gsq_model_alloc_params(gsq_model *m, gsq_error *err);
/* timm's initialisation, deterministic from seed: Linear weights, position embeddings, Swin's
 * relative position bias tables and the mask transformer's class embeddings trunc_normal(std 0.02,
 * cut at ±2 — in absolute units, as timm passes a=-2, b=2), zero Linear biases, unit LayerNorm
 * weights, cls/dist tokens ~N(0, 1e-6),
 * and the patch embedding at PyTorch's Conv2d default (weight and bias uniform in
 * ±1/sqrt(in_chans·patch²)), which timm leaves in place. */
void gsq_model_init(gsq_model *m, uint64_t seed);
/* What m predicts: classes (logits (B, num_classes)), or for segmentation a grid × grid map of
 * per-patch class logits (B, grid², num_classes) over the image, upsampled to it by the task
 * (gpusq/task.h); gsq_model_output_grid is that side (0 for classification). A segmenter's head
 * (gsq_model_seg_head) reads the final norm of every patch token and is one of Segmenter's
 * decoders: linear, a linear layer decode_head.cls per patch; or the mask transformer, whose
 * decode_head.proj_dec projects the patches, K class embeddings decode_head.cls_emb join them
 * through two transformer blocks (decode_head.blocks.0, .1; width the backbone's, heads width/64,
 * MLP 4·width) and decode_head.decoder_norm, and each patch's logits are the cosines of its
 * projection (decode_head.proj_patch) with the classes' (decode_head.proj_classes), normalised by
 * decode_head.mask_norm. Every linear of either head is pruned and quantized like the backbone's. */
gsq_task gsq_model_task(const gsq_model *m);
gsq_seg_head gsq_model_seg_head(const gsq_model *m);
int gsq_model_output_grid(const gsq_model *m);
gsq_output_shape gsq_model_output_shape(const gsq_model *m);
/* A model of m's architecture and configuration for head's task with num_classes classes (a
 * segmenter with its seg_head, a detector with its decoder): m's tensors copied where a tensor of the new one has the same name and
 * shape (a timm classifier's backbone), the others (the new head) initialised as gsq_model_init
 * does from seed. *copied (may be NULL) gets the number of tensors copied. */
gsq_status gsq_model_for_task(gsq_model **out, const gsq_model *m, const gsq_task_head *head, int num_classes, uint64_t seed, int *copied, gsq_error *err);
/* Which builder made m (gsq_model_vit_config or gsq_model_swin_config give its configuration). */
gsq_arch gsq_model_arch(const gsq_model *m);
void gsq_model_free(gsq_model *m);
/* A new model with m's configuration, parameters and class names (no gradients, activations or
 * quantizers). */
gsq_status gsq_model_clone(gsq_model **out, const gsq_model *m, gsq_error *err);
const gsq_param *gsq_model_find_param(const gsq_model *m, const char *name);

/* Bytes of the activation arena for a batch: an inference forward's, or a training forward's and
 * backward's (0 when it does not fit in memory's address space). */
size_t gsq_model_activation_bytes(const gsq_model *m, int batch, int training);

/* Forward pass of images (B, C, H, W), normalised; keeps activations for backward.
 * Returns a pointer to the logits (B, num_classes) inside the model through *logits. */
gsq_status gsq_model_forward(gsq_model *m, const float *images, int B, const float **logits,
                           gsq_error *err);
/* The same forward for inference (evaluation, a teacher, calibration): it keeps only the taps
 * (logits, the heads' logits and the block outputs) and reuses the rest of its memory, so no
 * backward may follow. */
gsq_status gsq_model_infer(gsq_model *m, const float *images, int B, const float **logits, gsq_error *err);
/* A value of the last forward by its name in the model's graph: "logits", "head" and "head_dist"
 * (distilled models), "blocks.L" (block L's output), ...: (batch, rows, cols) floats; NULL when
 * there is no such value or the last forward did not keep it. */
const float *gsq_model_output(const gsq_model *m, const char *name);
/* What a batch of B is scored against, as the model's task reads it: classes (B) for a classifier,
 * label maps (B, S, S) at the input side S for a segmenter, box targets (B) for a detector; the
 * others may be NULL. */
typedef struct {
    const int *classes;
    const int16_t *maps;
    const gsq_targets *boxes;
} gsq_truth;

/* The task's loss of the last forward, with label smoothing: a classifier's cross-entropy against
 * its classes; a segmenter's per-pixel cross-entropy (gsq_segment_loss) against the maps, ignored
 * pixels skipped; a detector's DETR loss (gsq_detect_loss, default weights; no smoothing). */
gsq_status gsq_model_loss(gsq_model *m, const gsq_truth *truth, float label_smoothing, float *loss, gsq_error *err);
/* Zeroes the parameter gradients (allocating them on first use), and those of the quantizers'
 * learned scales when LSQ is on (gpusq/vit_quant.h). */
gsq_status gsq_model_zero_grad(gsq_model *m, gsq_error *err);
/* Backward of the last forward + loss; ACCUMULATES into the gradients (call zero_grad first). */
gsq_status gsq_model_backward(gsq_model *m, gsq_error *err);
/* Backward of the last forward from a loss computed elsewhere (distillation): dlogits (B, K) is
 * ∂L/∂(the head's logits); for distilled models dlogits_dist is ∂L/∂(head_dist's logits) (the
 * output logits are their mean, so a loss on the output gives each half its gradient). When
 * dblock_out is not NULL, dblock_out[l] (may be NULL) is added to ∂L/∂(block l's output), a
 * (B, tokens, embed_dim) array. ACCUMULATES into the gradients. */
gsq_status gsq_model_backward_from(gsq_model *m, const float *dlogits, const float *dlogits_dist,
                                 const float *const *dblock_out, gsq_error *err);
/* The general form: grads[k] (may be NULL) is ∂L/∂(value values[k] of the model's graph), (batch, rows,
 * cols) floats; each joins the gradient that flows back into that value. ACCUMULATES into
 * m->grads. */
gsq_status gsq_model_backward_values(gsq_model *m, int count, const int *values, const float *const *grads,
                                   gsq_error *err);
/* With retained gradients (gsq_model_set_retain_grads), the gradient the last backward computed for a value of the graph
 * (batch, rows, cols) floats, like gsq_model_output; NULL otherwise, or where none flowed (the
 * images and patches). */
const float *gsq_model_output_grad(const gsq_model *m, const char *name);
/* Called by every backward after node `node` of the graph is done (nodes go from the last to the
 * first), whether or not a gradient reached it: the parameter gradients that only nodes from
 * `node` on write are final then, which lets a data-parallel trainer send them while backward goes
 * on. NULL removes it. */
typedef void (*gsq_backward_hook)(void *user, int node);
void gsq_model_set_backward_hook(gsq_model *m, gsq_backward_hook fn, void *user);
/* 1: backward keeps every value's gradient for gsq_model_output_grad (set before the first
 * backward; it costs memory). */
void gsq_model_set_retain_grads(gsq_model *m, int on);
/* A named configuration of any architecture (gsq_vit_config_names, gsq_swin_config_names) with
 * num_classes classes (0: the configuration's) and zeroed parameters (gsq_model_init gives timm's
 * initialisation). */
gsq_status gsq_model_create_named(gsq_model **out, const char *name, int num_classes, gsq_error *err);
/* Loads a timm state_dict from a safetensors file of any architecture: the file's "arch" metadata
 * or its tensor names say which (Swin's layers.0.blocks.*, else ViT/DeiT), the configuration is
 * inferred from the shapes (gsq_vit_infer_config, gsq_swin_infer_config); missing, extra and
 * mis-shaped tensors are reported by name. The _open form reads an open file, ignoring tensors
 * whose names start with a prefix in ignore (NULL-terminated, or NULL). */
struct gsq_st_file;
gsq_status gsq_model_load(gsq_model **out, const char *path, gsq_error *err);
gsq_status gsq_model_load_open(gsq_model **out, const struct gsq_st_file *f, const char *const *ignore, gsq_error *err);
/* The architecture a file holds (its "arch" metadata, else its tensor names). */
gsq_arch gsq_file_arch(const struct gsq_st_file *f);
/* The model (parameters not allocated) whose configuration a file's metadata records, as
 * gsq_model_add_meta_to_writer wrote it. */
gsq_status gsq_model_describe_meta(gsq_model **out, const struct gsq_st_file *f, gsq_error *err);
/* Writes the parameters with timm names (F32) and the configuration as metadata, atomically. */
gsq_status gsq_model_save(const gsq_model *m, const char *path, gsq_error *err);
/* The pieces of save for files that hold more than a model (checkpoints): add the parameters and
 * the architecture's metadata to a writer (borrowing the parameter block), or only the metadata
 * (configuration and class names). */
gsq_status gsq_model_add_to_writer(const gsq_model *m, struct gsq_st_writer *w, gsq_error *err);
gsq_status gsq_model_add_meta_to_writer(const gsq_model *m, struct gsq_st_writer *w, gsq_error *err);
/* GSQ_ERR_NUMERIC, "PATH: not written: NAME[i] is nan", when a parameter is NaN or infinite: every
 * writer of weights (gsq_model_save, checkpoints, sparse and compressed models) checks first, so a
 * run that went wrong never leaves a file of non-finite weights. */
gsq_status gsq_model_check_finite(const gsq_model *m, const char *path, gsq_error *err);

#endif
