/* Private: what a model holds (include/gpusq/model.h is its public face). The library's own
 * files read and write these fields; users go through the accessors. */
#ifndef GSQ_MODEL_STATE_H
#define GSQ_MODEL_STATE_H

#include "gpusq/vit.h"

struct gsq_model {
    gsq_vit_config cfg;   /* the architecture (a ViT builder's today) */
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
    int *targets;         /* (act_batch) labels of the last loss */
    float *probs;         /* (act_batch, num_classes) softmax of the last loss */
    float label_smoothing;
    int have_loss;        /* gsq_model_loss ran on the last forward */
    char *class_names;    /* num_classes names separated by '\n', or NULL; saved as metadata */
    struct gsq_model_quant *quant; /* fake quantizers for QAT (gpusq/vit_quant.h), or NULL */
};

#endif
