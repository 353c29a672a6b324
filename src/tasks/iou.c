/* mIoU, per-class IoU and pixel accuracy over a whole set, as mmsegmentation's intersect_and_union
 * and total_area_to_metrics: areas summed over every pixel added, then the ratios. A pixel whose
 * label is not a class (GSQ_IGNORE_LABEL, or any value outside [0, K)) counts nowhere, its
 * prediction included. A labelled pixel whose prediction is outside [0, K) counts as a miss, in
 * its label's area and in no class's predicted area, as torch.histc drops such a value in
 * mmsegmentation. */
#include "gpusq/task.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The three counts are one allocation, intersect its start. */
gsq_status gsq_iou_init(gsq_iou *m, int num_classes, gsq_error *err)
{
    memset(m, 0, sizeof *m);
    if (num_classes <= 0) return gsq_fail(err, GSQ_ERR_ARG, "mIoU: %d classes (must be positive)", num_classes);
    uint64_t *counts = calloc(3 * (size_t)num_classes, sizeof *counts);
    if (!counts) return gsq_fail(err, GSQ_ERR_NOMEM, "mIoU: out of memory for %d classes", num_classes);
    m->num_classes = num_classes;
    m->intersect = counts;
    m->pred_area = counts + num_classes;
    m->label_area = counts + 2 * (size_t)num_classes;
    return GSQ_OK;
}

void gsq_iou_free(gsq_iou *m)
{
    if (!m) return;
    free(m->intersect);
    memset(m, 0, sizeof *m);
}

void gsq_iou_reset(gsq_iou *m)
{
    if (m->intersect) memset(m->intersect, 0, 3 * (size_t)m->num_classes * sizeof *m->intersect);
}

void gsq_iou_add(gsq_iou *m, const int16_t *pred, const int16_t *label, size_t n)
{
    int K = m->num_classes;
    for (size_t i = 0; i < n; i++) {
        int l = label[i], p = pred[i];
        if (l < 0 || l >= K) continue;
        m->label_area[l]++;
        if (p < 0 || p >= K) continue;
        m->pred_area[p]++;
        m->intersect[p] += (uint64_t)(p == l);
    }
}

double gsq_iou_class(const gsq_iou *m, int k)
{
    uint64_t uni = m->pred_area[k] + m->label_area[k] - m->intersect[k];
    return uni ? (double)m->intersect[k] / (double)uni : NAN;
}

double gsq_iou_mean(const gsq_iou *m)
{
    double sum = 0.0;
    int present = 0;
    for (int k = 0; k < m->num_classes; k++) {
        double iou = gsq_iou_class(m, k);
        if (isnan(iou)) continue;
        sum += iou;
        present++;
    }
    return present ? sum / present : NAN;
}

double gsq_iou_pixel_accuracy(const gsq_iou *m)
{
    uint64_t right = 0, labelled = 0;
    for (int k = 0; k < m->num_classes; k++) {
        right += m->intersect[k];
        labelled += m->label_area[k];
    }
    return labelled ? (double)right / (double)labelled : NAN;
}
