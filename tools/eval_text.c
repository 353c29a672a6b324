/* An evaluation's numbers as the program prints them, for every task: the line's words, the JSON
 * fields, a segmenter's per-class IoU table and a detector's twelve COCO numbers. */
#include <math.h>
#include <stdio.h>

#include "cli.h"

const char *cli_eval_text(const gsq_eval_result *r, int width, char *buf, size_t cap)
{
    if (r->task == GSQ_TASK_SEGMENT)
        snprintf(buf, cap, "mIoU %*.2f%%  pixel accuracy %*.2f%%  loss %.4f", width, 100 * r->miou, width,
                 100 * r->pixel_accuracy, r->loss);
    else if (r->task == GSQ_TASK_DETECT)
        snprintf(buf, cap, "AP %*.2f  AP50 %*.2f  AP75 %*.2f  loss %.4f", width, 100 * r->coco.ap, width,
                 100 * r->coco.ap50, width, 100 * r->coco.ap75, r->loss);
    else
        snprintf(buf, cap, "top-1 %*.2f%%  top-5 %*.2f%%  loss %.4f", width, 100 * r->top1, width, 100 * r->top5,
                 r->loss);
    return buf;
}

void cli_eval_json(cli_text *b, const gsq_eval_result *r)
{
    if (r->task == GSQ_TASK_DETECT) { /* COCO's names, lower case: "ap", "ap50", ..., "ar_large" */
        for (int i = 0; i < GSQ_COCO_STATS; i++) {
            cli_put(b, "%s\"", i ? ", " : "");
            for (const char *c = gsq_coco_stat_name(i); *c; c++) cli_put(b, "%c", *c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
            cli_put(b, "\": %.6f", gsq_coco_stat(&r->coco, i));
        }
        cli_put(b, ", \"loss\": %.6f", r->loss);
        return;
    }
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

/* A detector's twelve numbers, as pycocotools' summarize() lists them. */
static void print_coco(const gsq_coco_stats *s)
{
    for (int i = 0; i < GSQ_COCO_STATS; i++) {
        double v = gsq_coco_stat(s, i);
        if (v < 0) printf("  %-10s      -  (no objects of that size)\n", gsq_coco_stat_name(i));
        else printf("  %-10s %6.2f\n", gsq_coco_stat_name(i), 100 * v);
    }
}

void cli_print_eval_details(const gsq_eval_result *r, const struct gsq_model *m)
{
    if (r->task == GSQ_TASK_DETECT) print_coco(&r->coco);
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
