/* Object detection: boxes and annotated objects, the targets a detector trains on, the exact
 * minimum-cost assignment (Hungarian matching) of predictions to targets, and COCO's box metrics
 * (AP@[.5:.95], AP50, AP75, by size, AR at 1/10/100 detections) computed as pycocotools does. */
#ifndef GPUSQ_DETECT_H
#define GPUSQ_DETECT_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/status.h"
#include "gpusq/task.h"

/* A box as COCO writes it: left, top, width and height, in pixels of the original image. */
typedef struct {
    float x, y, w, h;
} gsq_box;

/* An annotated object: its box, its class (the dataset's contiguous index in [0, classes); the
 * dataset's category_ids give COCO's id), whether it is a crowd region (COCO's iscrowd: never a
 * training target; in evaluation matching it is no error and no miss) and its area (COCO's
 * `area`, the segmentation's; w·h where the annotation has none), which decides small / medium /
 * large in evaluation. */
typedef struct {
    gsq_box box;
    int category;
    int iscrowd;
    float area;
} gsq_object;

/* An image's annotations: its id (COCO's image id; the sample's index for the synthetic data),
 * its original size and its objects (count of them, allocated). */
typedef struct {
    int64_t image_id;
    int width, height;
    int count;
    gsq_object *objects;
} gsq_objects;
/* Allocates room for count objects (contents zeroed) and sets the other fields. */
gsq_status gsq_objects_alloc(gsq_objects *o, int64_t image_id, int width, int height, int count, gsq_error *err);
void gsq_objects_free(gsq_objects *o); /* frees objects, zeroes the struct; NULL-safe */

/* A box as a detector predicts it: centre and size as fractions of the input's width and height
 * (DETR's normalised cx, cy, w, h). */
typedef struct {
    float cx, cy, w, h;
} gsq_nbox;

/* The most targets one image trains on (COCO's busiest image has 93 non-crowd objects); further
 * objects are left out of its targets. */
#define GSQ_DETECT_MAX_TARGETS 100

/* One transformed image's training targets: its non-crowd objects' classes and normalised boxes
 * in the transformed input, count of them. */
typedef struct {
    int count;
    int classes[GSQ_DETECT_MAX_TARGETS];
    gsq_nbox boxes[GSQ_DETECT_MAX_TARGETS];
} gsq_targets;

/* A detection: the image it is in, its class (contiguous index), its score and its box in the
 * original image's pixels. */
typedef struct {
    int64_t image_id;
    int category;
    float score;
    gsq_box box;
} gsq_detection;

/* DETR's loss (Carion et al. 2020) of a detector's output out (B, layers·queries, classes + 5), as
 * gpusq/task.h's gsq_output_shape describes it, against each image's targets: in every decoder
 * layer, each image's queries are matched one to one to its targets by the least summed cost
 * class·(−p(class)) + l1·|box − target|₁ + giou·(−GIoU) (gsq_assign); then the class
 * cross-entropy over every query (an unmatched one's class is no object, weighted no_object),
 * averaged by the summed weights, plus l1 and giou times the matched boxes' L1 distance and
 * 1 − GIoU, summed and divided by the batch's targets (at least 1); the layers' losses added. */
typedef struct {
    float class_cost, l1, giou; /* DETR's 1, 5, 2: the matching costs and the box losses' weights */
    float no_object;            /* the no-object class's weight in the cross-entropy: 0.1 */
} gsq_detect_weights;
void gsq_detect_weights_defaults(gsq_detect_weights *w);

/* The loss's parts over all layers (each summed over them as the loss is), and the matched pairs. */
typedef struct {
    double ce, l1, giou;
    long matched;
} gsq_detect_terms;

/* The loss of out (shape's layers and queries; classes = shape->classes) into *loss, its parts into
 * *terms (may be NULL); when dout is not NULL, its gradient with respect to out there (overwriting),
 * scaled by `scale`. GSQ_ERR_ARG for a target class outside [0, classes) or a target box that is
 * not finite or has no area; GSQ_ERR_NOMEM. */
gsq_status gsq_detect_loss(const float *out, const gsq_output_shape *shape, int B, const gsq_targets *targets,
                           const gsq_detect_weights *w, float *dout, float scale, float *loss, gsq_detect_terms *terms,
                           gsq_error *err);

/* DETR's matching alone: for every image, layer and query of out, the index of the target it is
 * matched to, or -1; matches (B, layers, queries). */
gsq_status gsq_detect_match(const float *out, const gsq_output_shape *shape, int B, const gsq_targets *targets,
                            const gsq_detect_weights *w, int *matches, gsq_error *err);
/* The output distillation of a detector (student and teacher outputs of the same shape) on the
 * queries that matches marks (≥ 0; the teacher's matched ones): the mean over them of
 * T²·KL(softmax(teacher/T) ‖ softmax(student/T)) over the classes + 1 and of box_weight times the
 * L1 distance of the two sigmoid boxes, into *value; when dstudent is not NULL, its gradient with
 * respect to the student's output there (overwriting, 0 on the other queries), scaled by scale. */
gsq_status gsq_detect_distill(const float *student, const float *teacher, const gsq_output_shape *shape, int B,
                              const int *matches, float T, float box_weight, float *dstudent, float scale,
                              double *value, gsq_error *err);

/* Image b's detections in out: one per query of the last decoder layer, its most likely class
 * other than no object, that class's probability as the score and its box in the pixels of an
 * original image of width × height (the input was that image stretched). dets gets
 * shape->queries of them. */
void gsq_detect_decode(const float *out, const gsq_output_shape *shape, int b, int64_t image_id, int width,
                       int height, gsq_detection *dets);

/* The exact minimum-cost assignment of rows to columns (the Hungarian method, as
 * scipy.optimize.linear_sum_assignment): cost (rows, cols) row-major, any rows and cols ≥ 0; pairs
 * min(rows, cols) rows with distinct columns so that the summed cost is the least possible.
 * col_of_row (rows) gets each row's column, -1 for a row left unpaired (rows > cols). Equal
 * totals are broken the same way on every run. GSQ_ERR_ARG for a NaN or infinite cost,
 * GSQ_ERR_NOMEM when its scratch cannot be allocated. */
gsq_status gsq_assign(const float *cost, int rows, int cols, int *col_of_row, gsq_error *err);

/* COCO box metrics (pycocotools' COCOeval with iouType "bbox" and its default parameters: IoU
 * thresholds .50:.05:.95, 101 recall points, areas all / small < 32² / medium < 96² / large, at
 * most 1, 10, 100 detections per image). Fed image by image; summarised as COCOeval.summarize()'s
 * twelve numbers, -1 where pycocotools gives -1 (no ground truth in that range). */
typedef struct {
    double ap, ap50, ap75, ap_small, ap_medium, ap_large;
    double ar1, ar10, ar100, ar_small, ar_medium, ar_large;
} gsq_coco_stats;

typedef struct gsq_coco_eval gsq_coco_eval;
/* An evaluator of classes categories (contiguous indices). */
gsq_status gsq_coco_eval_create(gsq_coco_eval **out, int classes, gsq_error *err);
void gsq_coco_eval_free(gsq_coco_eval *e); /* NULL-safe */
/* Adds one image: its annotations (crowd included) and the detections in it, in any order (each
 * detection's image_id is ignored; gt->image_id names the image). Every image of the evaluated set
 * is added once, those without objects or detections too. GSQ_ERR_ARG for a class outside
 * [0, classes) or a box, score or area that is not finite. */
gsq_status gsq_coco_eval_add(gsq_coco_eval *e, const gsq_objects *gt, const gsq_detection *dets, int count,
                             gsq_error *err);
/* The twelve numbers over the images added so far; GSQ_ERR_ARG when an image id was added twice. */
gsq_status gsq_coco_eval_summarize(const gsq_coco_eval *e, gsq_coco_stats *out, gsq_error *err);
/* The names of the twelve numbers in summarize's order ("AP", "AP50", ..., "AR_large"; "?" past
 * them), and stats's value by that index (NaN past them). */
const char *gsq_coco_stat_name(int i);
double gsq_coco_stat(const gsq_coco_stats *s, int i);
#define GSQ_COCO_STATS 12

/* Writes detections as a COCO results JSON array ([{"image_id", "category_id", "bbox": [x, y, w,
 * h], "score"}, ...]) at path, atomically; category_ids (classes of them) maps a class index to
 * COCO's id (NULL: index + 1). GSQ_ERR_ARG for a class outside [0, classes) or a box or score
 * that is not finite. */
gsq_status gsq_coco_results_write(const char *path, const gsq_detection *dets, size_t count, int classes,
                                  const int *category_ids, gsq_error *err);

#endif
