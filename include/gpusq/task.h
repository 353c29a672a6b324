/* Tasks: what a model predicts and how it is scored. Classification: one class per image,
 * cross-entropy, top-1/top-5. Semantic segmentation: a map of per-patch class logits, upsampled
 * bilinearly to the image (as F.interpolate(align_corners=False)), per-pixel cross-entropy that
 * skips ignored pixels, and mIoU / per-class IoU / pixel accuracy summed over a whole set as
 * mmsegmentation does. Object detection (gpusq/detect.h): boxes and classes of objects, scored by
 * COCO's AP. The trainer, the stages and the engines call these through the model's
 * task instead of knowing which one they run. */
#ifndef GPUSQ_TASK_H
#define GPUSQ_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/status.h"

typedef enum { GSQ_TASK_CLASSIFY = 0, GSQ_TASK_SEGMENT = 1, GSQ_TASK_DETECT = 2 } gsq_task;
/* "classify", "segment", "detect"; and back (0 on success, -1 for an unknown word). */
const char *gsq_task_name(gsq_task task);
int gsq_task_parse(const char *word, gsq_task *task);

/* A segmenter's decode head (Segmenter, Strudel et al. 2021), after the backbone's final norm:
 * linear, one linear layer classifying each patch token (decode_head.cls); mask, the mask
 * transformer, whose K learned class embeddings attend with the patch tokens through two
 * transformer blocks and score each patch by the cosine of the two (gpusq/model.h). */
typedef enum { GSQ_SEG_HEAD_LINEAR = 0, GSQ_SEG_HEAD_MASK = 1 } gsq_seg_head;
/* "linear", "mask"; and back (0 on success, -1 for an unknown word). */
const char *gsq_seg_head_name(gsq_seg_head head);
int gsq_seg_head_parse(const char *word, gsq_seg_head *head);

/* A detector's head (DETR's transformer decoder, gpusq/detect.h): `queries` learned object queries
 * read the backbone's tokens through `layers` decoder layers. */
typedef struct {
    int queries, layers;
} gsq_det_head;
/* The command line's defaults: DETR's 100 queries; 3 decoder layers, half of DETR's 6, since the
 * backbone's tokens already attend to each other. */
#define GSQ_DETECT_QUERIES 100
#define GSQ_DETECT_LAYERS 3

/* A task and its head: a segmenter's decode head, a detector's decoder (each read by its task only). */
typedef struct {
    gsq_task task;
    gsq_seg_head seg_head;
    gsq_det_head det;
} gsq_task_head;

/* What a forward pass outputs per image: classes logits (1, classes); for segmentation (grid²,
 * classes) over an input of side × side pixels (the label maps' side); for detection, per decoder
 * layer and query, classes + 1 class logits (the last: no object) then 4 box logits (sigmoid: cx,
 * cy, w, h over the input), (layers · queries, classes + 5), the last layer's queries last. */
typedef struct {
    gsq_task task;
    int classes, grid, side;
    int queries, layers;
} gsq_output_shape;

/* A label map's value for a pixel that has no class. */
#define GSQ_IGNORE_LABEL (-1)

/* The segmentation loss of a batch: logits (B, grid², K), one K-vector per patch of a grid ×
 * grid map over the image, upsampled bilinearly to the labels' side S (labels (B, S, S), each
 * in [0, K) or GSQ_IGNORE_LABEL). Returns the mean cross-entropy (with label smoothing) over the
 * labelled pixels (0 when there are none) and, when dlogits is not NULL, writes its gradient with
 * respect to logits there (overwriting), scaled by `scale`. *pixels (may be NULL) gets the number
 * of labelled pixels. NaN when its few KiB of scratch cannot be allocated. */
float gsq_segment_loss(const float *logits, int B, int grid, int K, const int16_t *labels, int S, float smoothing,
                       float *dlogits, float scale, size_t *pixels);
/* The segmentation distillation term: per pixel T²·KL(softmax(t/T) ‖ softmax(s/T)) of the
 * student's and the teacher's logits (B, grid², K each) upsampled to S × S as the loss does,
 * averaged over all B·S·S pixels; when dstudent is not NULL its gradient with respect to the
 * student's logits there (overwriting), scaled by `scale`. NaN when out of memory, as the loss. */
float gsq_segment_kl(const float *student, const float *teacher, int B, int grid, int K, int S, float temperature,
                     float *dstudent, float scale);
/* GSQ_ERR_ARG naming the first of n labels (B maps of S × S pixels) that is neither in [0, K) nor
 * GSQ_IGNORE_LABEL, prefixed by `what` ("loss", "distillation"). */
gsq_status gsq_segment_check_labels(const int16_t *labels, int B, int S, int K, const char *what, gsq_error *err);
/* The largest class count a label map holds (its values are int16). */
#define GSQ_SEGMENT_MAX_CLASSES 32767
/* The per-pixel prediction: argmax of the upsampled logits, (B, S, S) (ties: the lowest class). */
void gsq_segment_predict(const float *logits, int B, int grid, int K, int S, int16_t *pred);

/* mIoU accumulators: per class, the pixels where prediction and label agree (intersect), and
 * those predicted and labelled as it; ignored pixels count nowhere. */
typedef struct {
    int num_classes;
    uint64_t *intersect, *pred_area, *label_area; /* (num_classes) each */
} gsq_iou;
gsq_status gsq_iou_init(gsq_iou *m, int num_classes, gsq_error *err);
void gsq_iou_free(gsq_iou *m);
void gsq_iou_reset(gsq_iou *m);
/* Adds n pixels: pred in [0, K), label in [0, K) or GSQ_IGNORE_LABEL. */
void gsq_iou_add(gsq_iou *m, const int16_t *pred, const int16_t *label, size_t n);
/* Class k's IoU, intersect / (pred + label − intersect); NaN when the class is neither predicted
 * nor labelled anywhere. */
double gsq_iou_class(const gsq_iou *m, int k);
/* The mean of the classes' IoU that are not NaN (mmsegmentation's nanmean; NaN when none). */
double gsq_iou_mean(const gsq_iou *m);
/* Labelled pixels predicted right, over labelled pixels ("aAcc"; NaN when none). */
double gsq_iou_pixel_accuracy(const gsq_iou *m);

#endif
