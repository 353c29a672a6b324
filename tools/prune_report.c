/* The report of gpusq prune: which layers were pruned and how much weight magnitude their masks
 * kept (with and without channel permutation), accuracies (dense, one-shot, fine-tuned) and the
 * per-block feature-distillation losses; printed as a table and written as JSON. */
#include "prune_report.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpusq/graph.h"

/* Block l's output value: "blocks.3", "layers.1.blocks.0". */
static const char *block_name(const prune_summary *s, int l)
{
    return s->graph->values[s->graph->blocks[l]].name;
}

static void print_acc(FILE *f, const char *what, const gsq_eval_result *r, const gsq_eval_result *dense)
{
    if (!r->count) {
        fprintf(f, "  %-22s not measured\n", what);
        return;
    }
    char words[160];
    fprintf(f, "  %-22s %s", what, cli_eval_text(r, 6, words, sizeof words));
    if (dense && dense->count) fprintf(f, "  (%+.2f points vs dense)", 100 * (gsq_eval_score(r) - gsq_eval_score(dense)));
    fputc('\n', f);
}

void prune_report_print(const prune_summary *s, FILE *f)
{
    const gsq_sparse_plan *p = s->plan;
    fprintf(f, "\n%s pruning (%s) of %s\n", gsq_sparse_pattern_name(p->pattern), s->criterion, s->teacher);
    fprintf(f, "  %-28s %11s  %-8s %s\n", "layer", "shape", "", s->permuted ? "kept |w|: plain → permuted" : "kept |w|");
    for (int i = 0; i < p->num_layers; i++) {
        const gsq_sparse_layer *l = &p->layers[i];
        char shape[32];
        snprintf(shape, sizeof shape, "%d×%d", l->rows, l->cols);
        fprintf(f, "  %-28s %11s  %-8s ", l->name, shape, l->pruned ? gsq_sparse_pattern_name(p->pattern) : "dense");
        double plain = s->plain ? s->plain->layers[i].kept_magnitude : 0;
        double permuted = s->permuted ? s->permuted->layers[i].kept_magnitude : 0;
        if (!l->pruned) fprintf(f, "(%s)\n", l->skip_reason ? l->skip_reason : "");
        else if (s->plain && s->permuted && permuted != plain) fprintf(f, "%.4f → %.4f\n", plain, permuted);
        else if (s->plain) fprintf(f, "%.4f\n", plain);
        else fputs("(resumed)\n", f);
    }
    fprintf(f, "  sparsity of the prunable weights: %.1f%%\n", 100 * gsq_sparse_plan_sparsity(p));
    fprintf(f, "accuracy on the validation split:\n");
    print_acc(f, "dense teacher", &s->dense, NULL);
    print_acc(f, "one-shot pruned", &s->one_shot, &s->dense);
    print_acc(f, "fine-tuned", &s->tuned, &s->dense);
    fprintf(f, "feature-distillation loss per block (validation, agreeing samples; agreement %.2f%%):\n",
            100 * s->agreement);
    for (int l = s->distill.first_block; l < s->graph->num_blocks; l++)
        fprintf(f, "  %s  %.6g\n", block_name(s, l), (double)s->feature_loss[l]);
}

static void put_acc(cli_text *b, const char *key, const gsq_eval_result *r, const char *sep)
{
    if (r->count) {
        cli_put(b, "    \"%s\": {", key);
        cli_eval_json(b, r);
        cli_put(b, ", \"images\": %zu}%s\n", r->count, sep);
    } else
        cli_put(b, "    \"%s\": null%s\n", key, sep);
}

gsq_status prune_report_write_json(const prune_summary *s, const char *path, gsq_error *err)
{
    const gsq_sparse_plan *p = s->plan;
    cli_text b = {0};
    cli_put(&b, "{\n  \"teacher\": ");
    cli_put_json_string(&b, s->teacher);
    cli_put(&b, ",\n  \"output\": ");
    cli_put_json_string(&b, s->out);
    cli_put(&b, ",\n  \"pattern\": \"%s\",\n  \"criterion\": \"%s\",\n", gsq_sparse_pattern_name(p->pattern), s->criterion);
    cli_put(&b, "  \"sparsity\": %.6f,\n  \"layers\": [\n", gsq_sparse_plan_sparsity(p));
    for (int i = 0; i < p->num_layers; i++) {
        const gsq_sparse_layer *l = &p->layers[i];
        cli_put(&b, "    {\"name\": \"%s\", \"rows\": %d, \"cols\": %d, \"pruned\": %s", l->name, l->rows, l->cols,
            l->pruned ? "true" : "false");
        if (!l->pruned) cli_put(&b, ", \"dense_because\": \"%s\"", l->skip_reason ? l->skip_reason : "");
        if (l->pruned && s->plain) cli_put(&b, ", \"kept_magnitude\": %.6f", s->plain->layers[i].kept_magnitude);
        if (l->pruned && s->permuted)
            cli_put(&b, ", \"kept_magnitude_permuted\": %.6f", s->permuted->layers[i].kept_magnitude);
        cli_put(&b, "}%s\n", i + 1 < p->num_layers ? "," : "");
    }
    cli_put(&b, "  ],\n  \"accuracy\": {\n");
    put_acc(&b, "dense", &s->dense, ",");
    put_acc(&b, "one_shot", &s->one_shot, ",");
    put_acc(&b, "fine_tuned", &s->tuned, "");
    cli_put(&b, "  },\n  \"distillation\": {\"alpha\": %g, \"beta\": %g, \"gamma\": %g, \"temperature\": %g, "
        "\"unsupervised\": %s, \"agreement\": %.6f, \"feature_loss\": {",
        (double)s->distill.alpha, (double)s->distill.beta, (double)s->distill.gamma, (double)s->distill.temperature,
        s->unsupervised ? "true" : "false", s->agreement);
    for (int l = s->distill.first_block; l < s->graph->num_blocks; l++)
        cli_put(&b, "%s\"%s\": %.9g", l > s->distill.first_block ? ", " : "", block_name(s, l),
                (double)s->feature_loss[l]);
    cli_put(&b, "}},\n  \"fine_tune_seconds\": %.1f\n}\n", s->seconds);
    return cli_text_write(&b, path, err);
}
