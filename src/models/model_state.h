/* Private: what a model holds (include/gpusq/model.h is its public face). The library's own
 * files read and write these fields; users go through the accessors. */
#ifndef GSQ_MODEL_STATE_H
#define GSQ_MODEL_STATE_H

#include "gpusq/swin.h"
#include "gpusq/vit.h"

struct gsq_model {
    gsq_arch arch;        /* which builder made it; its configuration is vit or swin */
    gsq_vit_config vit;
    gsq_swin_config swin;
    int img_size, in_chans, num_classes; /* the input and output every architecture has */
    gsq_task task;        /* what the head predicts (its configuration's) */
    gsq_seg_head seg_head; /* a segmenter's decode head (its configuration's) */
    gsq_det_head det;      /* a detector's decoder (its configuration's) */
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
    int retain_grads;     /* 1: backward keeps every value's gradient (gsq_model_output_grad), set
                           * before the first backward */
    gsq_backward_hook backward_hook; /* called after each node's backward, or NULL */
    void *backward_hook_user;
    int *targets;         /* (act_batch) labels of the last loss */
    float *probs;         /* (act_batch, logits per image): a classifier's softmax of the last loss, a
                           * segmenter's gradient of it */
    float label_smoothing;
    int have_loss;        /* gsq_model_loss ran on the last forward */
    char *class_names;    /* num_classes names separated by '\n', or NULL; saved as metadata */
    struct gsq_model_quant *quant; /* fake quantizers for QAT (gpusq/vit_quant.h), or NULL */
};

/* The start of every builder's describe: an empty model of architecture arch with room for
 * max_tensors parameter tensors. */
gsq_status gsq_model_new(gsq_model **out, gsq_arch arch, int max_tensors, gsq_error *err);
/* The end of every builder's describe: m's graph from its table into *out; m is freed on failure. */
gsq_status gsq_model_describe_finish(gsq_model *m, gsq_model **out, gsq_error *err);
/* Every builder's create: its describe's status st and model *out, then the parameter block
 * (zeroed); *out freed and NULL on failure. */
gsq_status gsq_model_create_finish(gsq_status st, gsq_model **out, gsq_error *err);
/* Appends a tensor named by fmt to m's table at the end of the parameter block (no_decay for
 * tensors of one dimension: biases and norms). */
void gsq_model_add_tensor(gsq_model *m, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends the tensors of a ViT block (timm's Block: norm1, attn.qkv, attn.proj, norm2, mlp.fc1,
 * mlp.fc2) of `width` with an MLP of `hidden`, named prefix.* ("blocks.3.norm1.weight"). */
void gsq_model_add_block(gsq_model *m, const char *prefix, int64_t width, int64_t hidden, int qkv_bias);

struct gsq_st_file;
struct gsq_st_writer;
/* Checks every tensor of m's table is in f with its shape and nothing else is (but names starting
 * with a prefix in ignore), then allocates and reads the parameters and the class names. */
gsq_status gsq_model_read(gsq_model *m, const struct gsq_st_file *f, const char *const *ignore, gsq_error *err);
/* Tensor `name`'s shape into shape[], checking its rank (GSQ_ERR_MISSING when absent, saying the
 * architecture cannot be inferred). */
gsq_status gsq_file_tensor_shape(const struct gsq_st_file *f, const char *name, int ndim, int64_t *shape,
                                 gsq_error *err);
/* Metadata `key` as an integer in [0, 2^30] into *out: 1; absent: 0; not such an integer: -1. */
int gsq_file_meta_int(const struct gsq_st_file *f, const char *key, int *out);
/* The LayerNorm epsilon in a file's "ln_eps" metadata into *eps; absent: *eps = fallback, or
 * GSQ_ERR_MISSING when fallback is 0 (required); not a number: GSQ_ERR_FORMAT. */
gsq_status gsq_file_meta_eps(const struct gsq_st_file *f, float fallback, float *eps, gsq_error *err);
/* The linear segmentation head's linear: GSQ_SEG_HEAD.weight (classes, width) and .bias. */
#define GSQ_SEG_HEAD "decode_head.cls"
/* The mask transformer's class embeddings (1, classes, width), which only that head has. */
#define GSQ_MASK_HEAD_CLASSES "decode_head.cls_emb"
/* What a timm-named file's head says: a detector's (det_head.class_embed, its queries and decoder
 * layers), a segmentation head (GSQ_SEG_HEAD.weight, or the mask transformer's
 * GSQ_MASK_HEAD_CLASSES) or the architecture's classifier (`classifier`.weight); its classes into
 * *classes. */
gsq_status gsq_file_head(const struct gsq_st_file *f, const char *classifier, gsq_task_head *head, int *classes,
                         gsq_error *err);
/* The task in a file's "task" metadata (absent: classify), a segmenter's head in its "seg_head"
 * (absent: linear, as files from before the mask head), a detector's "det_queries" and
 * "det_layers" (required). */
gsq_status gsq_file_meta_task(const struct gsq_st_file *f, gsq_task_head *head, gsq_error *err);
/* Each builder's configuration as metadata (gsq_model_add_meta_to_writer adds what all share). */
gsq_status gsq_vit_add_meta(const gsq_model *m, struct gsq_st_writer *w, gsq_error *err);
gsq_status gsq_swin_add_meta(const gsq_model *m, struct gsq_st_writer *w, gsq_error *err);

#endif
