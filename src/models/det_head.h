/* Private: a detector's head (gsq_det_head, gpusq/task.h), DETR's transformer decoder, which the
 * ViT builder puts after its backbone's final norm: its configuration's check, its parameter
 * tensors and its part of the graph. */
#ifndef GSQ_DET_HEAD_H
#define GSQ_DET_HEAD_H

#include <stdint.h>

#include "gpusq/rng.h"
#include "gpusq/task.h"
#include "models/graph_build.h"

/* GSQ_ERR_SHAPE when the head cannot follow a backbone of width `width` with `heads` heads. */
gsq_status gsq_det_head_check(const gsq_det_head *head, int width, int heads, int classes, gsq_error *err);

/* The most the head adds to a model: parameter tensors, graph nodes, values and linears. */
typedef struct {
    int tensors, nodes, values, linears;
} gsq_det_head_room;
gsq_det_head_room gsq_det_head_size(const gsq_det_head *head);

/* Appends the head's tensors, over `tokens` backbone tokens of `width` with hidden MLP width
 * `hidden`, for `classes` classes, to m's table. */
void gsq_det_head_table(gsq_model *m, const gsq_det_head *head, int64_t tokens, int64_t width, int64_t hidden,
                        int64_t classes);

/* After timm's initialisation of the rest (gsq_model_init): the memory positions from the 2D sines,
 * the queries from N(0, 1) (nn.Embedding's) and the box head's last layer zero, so that every box
 * starts at the image's centre with half its size (as Deformable and DAB-DETR). */
void gsq_det_head_init(gsq_model *m, gsq_rng *rng);

/* Adds the head over the backbone's normalised tokens x (tokens, width) with `heads` attention
 * heads to b's graph; returns its output, the value "logits" (layers · queries, classes + 5). */
int gsq_build_det_head(gsq_builder *b, const gsq_det_head *head, int x, int heads, int classes);

/* The 2D sine positions of a grid × grid of tokens of `width` (DETR's PositionEmbeddingSine,
 * normalised, scale 2π, temperature 10000): for each token, width / 2 features of its row then
 * width / 2 of its column, sines and cosines interleaved. The decoder's memory positions start
 * from them. */
void gsq_det_sine_positions(float *out, int grid, int width);

#endif
