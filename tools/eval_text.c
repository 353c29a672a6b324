/* An evaluation's numbers as the program prints them, for every task: the line's words, the JSON
 * fields, and a segmenter's per-class IoU table. */
#include <math.h>
#include <stdio.h>

#include "cli.h"

const char *cli_eval_text(const gsq_eval_result *r, int width, char *buf, size_t cap)
{
    if (r->task == GSQ_TASK_SEGMENT)
        snprintf(buf, cap, "mIoU %*.2f%%  pixel accuracy %*.2f%%  loss %.4f", width, 100 * r->miou, width,
                 100 * r->pixel_accuracy, r->loss);
    else
        snprintf(buf, cap, "top-1 %*.2f%%  top-5 %*.2f%%  loss %.4f", width, 100 * r->top1, width, 100 * r->top5,
                 r->loss);
    return buf;
}

void cli_eval_json(cli_text *b, const gsq_eval_result *r)
{
    if (r->task != GSQ_TASK_SEGMENT) {
        cli_put(b, "\"top1\": %.6f, \"top5\": %.6f, \"loss\": %.6f", r->top1, r->top5, r->loss);
        return;
    }
    cli_put(b, "\"miou\": %.6f, \"pixel_accuracy\": %.6f, \"loss\": %.6f, \"class_iou\": [", r->miou, r->pixel_accuracy,
            r->loss);
    int n = r->num_classes < GSQ_EVAL_MAX_CLASSES ? r->num_classes : GSQ_EVAL_MAX_CLASSES;
    for (int k = 0; k < n; k++) {
        if (isnan(r->class_iou[k])) cli_put(b, "%snull", k ? ", " : "");
        else cli_put(b, "%s%.6f", k ? ", " : "", (double)r->class_iou[k]);
    }
    cli_put(b, "]");
}

void cli_print_class_iou(const gsq_eval_result *r, const struct gsq_model *m)
{
    if (r->task != GSQ_TASK_SEGMENT) return;
    int n = r->num_classes < GSQ_EVAL_MAX_CLASSES ? r->num_classes : GSQ_EVAL_MAX_CLASSES;
    printf("  class                     IoU\n");
    for (int k = 0; k < n; k++) {
        char name[64];
        gsq_model_class_name(m, k, name, sizeof name);
        if (isnan(r->class_iou[k])) printf("  %-4d %-20s      -  (neither labelled nor predicted)\n", k, name);
        else printf("  %-4d %-20s %6.2f%%\n", k, name, 100 * (double)r->class_iou[k]);
    }
    if (r->num_classes > n) printf("  (the other %d classes' IoU are in the mean, not listed)\n", r->num_classes - n);
}
