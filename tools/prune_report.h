/* The report of gpusq prune: a per-layer table and the accuracies, printed and written as JSON. */
#ifndef GSQ_TOOLS_PRUNE_REPORT_H
#define GSQ_TOOLS_PRUNE_REPORT_H

#include <stdio.h>

#include "gpusq/distill.h"
#include "gpusq/sparse.h"
#include "gpusq/train.h"

typedef struct {
    const char *teacher, *out, *criterion;
    const gsq_sparse_plan *plan;
    /* the masks chosen without and with channel permutation, whose layers (in plan's order) hold
     * the magnitude each keeps: plain NULL when unknown (resumed), permuted NULL when not permuted */
    const gsq_sparse_plan *plain, *permuted;
    gsq_eval_result dense, one_shot, tuned; /* count 0: not measured */
    const float *feature_loss;   /* one entry per block of graph */
    const struct gsq_graph *graph; /* the model's: its blocks' names */
    double agreement;            /* fine-tuned student vs teacher on the validation split */
    gsq_distill_config distill;
    int unsupervised;
    double seconds;              /* fine-tuning */
} prune_summary;

void prune_report_print(const prune_summary *s, FILE *f);
gsq_status prune_report_write_json(const prune_summary *s, const char *path, gsq_error *err);

#endif
