/* Private: a segmenter's decode head (gsq_seg_head, gpusq/task.h), which the ViT and Swin builders
 * put after their backbone's final norm: its configuration's check, its parameter tensors and its
 * part of the graph, written once for both. */
#ifndef GSQ_SEG_HEAD_H
#define GSQ_SEG_HEAD_H

#include <stdint.h>

#include "gpusq/task.h"
#include "models/graph_build.h"

/* The mask transformer's decoder over a backbone of final width d, as Segmenter's: this many
 * pre-norm blocks of width d with max(1, d / 64) heads (ViT's head width) and an MLP of 4d. */
#define GSQ_MASK_HEAD_BLOCKS 2

/* GSQ_ERR_SHAPE when head is unknown or cannot follow a backbone of final width `width` (the mask
 * transformer's heads must divide it), or classes exceed what a label map holds. */
gsq_status gsq_seg_head_check(gsq_seg_head head, int width, int classes, gsq_error *err);

/* The most a head adds to a model: parameter tensors, and graph nodes, values and linears. */
typedef struct {
    int tensors, nodes, values, linears;
} gsq_seg_head_room;
gsq_seg_head_room gsq_seg_head_size(gsq_seg_head head);

/* Appends head's tensors, for `classes` classes over tokens of `width`, to m's table in the order
 * the head computes with them. */
void gsq_seg_head_table(gsq_model *m, gsq_seg_head head, int64_t width, int64_t classes);

/* Adds head over the patch tokens x (grid², width) to b's graph; returns its output, the value
 * "logits" (grid², classes). */
int gsq_build_seg_head(gsq_builder *b, gsq_seg_head head, int x, int classes);

#endif
