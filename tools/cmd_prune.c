/* gpusq prune: stage 1 of GPUSQ-ViT. From a dense teacher: choose 2:4 (or paired 4:8) masks for
 * every prunable GEMM weight (by magnitude, optionally after a channel permutation), prune, and
 * fine-tune with the masks frozen by mixed-strategy distillation from the dense teacher; write
 * the sparse model (timm names, mask and per-block feature losses in metadata) and a report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpusq/safetensors.h"
#include "prune_report.h"

static const char *help =
    "usage: gpusq prune --teacher DENSE.safetensors [options]\n\n"
    "Prunes a dense ViT/DeiT to 2:4 (or paired 4:8) structured sparsity and fine-tunes it with the\n"
    "masks frozen, distilling from the dense model; writes the sparse weights (timm names).\n\n"
    "pruning:\n"
    "  --teacher FILE      the dense model (also the starting point)\n"
    "  --pattern P         2:4 (default; FP16/INT8 sparse tensor cores) or 4:8 (paired, for INT4)\n"
    "  --criterion C       magnitude (default) or permute (channel permutation search first)\n"
    "  --effort N          permutation search passes (default 32)\n"
    "  --prune-head        prune the classifier head too (default: dense)\n"
    "  --resume FILE       continue the fine-tuning that wrote this checkpoint (same options)\n"
    "distillation: L = alpha·CE + beta·T²·KL + gamma·Σ MSE(block features)\n"
    "  --alpha X (1)  --beta X (10)  --gamma X (5)  --temperature T (1)\n"
    "  --feature-blocks N  distil the outputs of the last N blocks (default: a third of them)\n"
    "  --unsupervised      read no labels: the teacher's predictions are the labels\n"
    "  --report FILE       also write the report as JSON\n";
static const char *defaults =
    "defaults: --epochs 2 --batch 64 --lr 5e-4 --warmup-epochs 0.1 --smoothing 0 --clip 1, augmentation\n"
    "on, --out sparse.safetensors\n";

typedef struct {
    const char *teacher, *resume, *report, *criterion;
    gsq_sparse_pattern pattern;
    int effort, prune_head, feature_blocks, unsupervised;
    cli_distill_weights kd;
} prune_opts;

/* Parses prune's own options; returns -1 (usage error reported), 0 (not ours) or 1. */
static int prune_option(void *ctx, int argc, char **argv, int *i)
{
    prune_opts *p = ctx;
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    gsq_error err = {0};
    int ok = cli_distill_option(&p->kd, "prune", argc, argv, i);
    if (ok) return ok;
    if (!strcmp(a, "--prune-head")) return p->prune_head = 1;
    if (!strcmp(a, "--unsupervised")) return p->unsupervised = 1;
    if (!strcmp(a, "--teacher")) return cli_string_option("prune", argc, argv, i, &p->teacher);
    if (!strcmp(a, "--resume")) return cli_string_option("prune", argc, argv, i, &p->resume);
    if (!strcmp(a, "--report")) return cli_string_option("prune", argc, argv, i, &p->report);
    if (!strcmp(a, "--effort")) return cli_int_option("prune", argc, argv, i, 0, 1 << 20, &p->effort);
    if (!strcmp(a, "--feature-blocks")) return cli_int_option("prune", argc, argv, i, 0, 1 << 20, &p->feature_blocks);
    if (!strcmp(a, "--pattern")) {
        ok = v && gsq_sparse_pattern_parse(v, &p->pattern, &err) == GSQ_OK;
        return cli_option_value("prune", ok, "2:4 or 4:8", argc, argv, i);
    }
    if (!strcmp(a, "--criterion")) {
        ok = v && (!strcmp(v, "magnitude") || !strcmp(v, "permute")) && (p->criterion = v);
        return cli_option_value("prune", ok, "magnitude or permute", argc, argv, i);
    }
    return 0;
}

/* The sparse model with its provenance in metadata. */
static gsq_status save_sparse(const gsq_vit *m, const gsq_sparse_plan *plan, const prune_opts *p,
                              const gsq_distill_config *dc, const float *feature_loss, const char *path, gsq_error *err)
{
    gsq_st_writer *w = NULL;
    gsq_status st = gsq_vit_check_finite(m, path, err);
    if (st == GSQ_OK) st = gsq_st_writer_create(&w, err);
    if (st == GSQ_OK) st = gsq_vit_add_to_writer(m, w, err);
    size_t cap = 64;
    for (int i = 0; i < plan->num_layers; i++) cap += strlen(plan->layers[i].name) + 2;
    char *layers = calloc(1, cap), *dense = calloc(1, cap), num[64];
    if (st == GSQ_OK && (!layers || !dense)) st = gsq_fail(err, GSQ_ERR_NOMEM, "prune: out of memory");
    for (int i = 0; st == GSQ_OK && i < plan->num_layers; i++) {
        char *list = plan->layers[i].pruned ? layers : dense;
        if (list[0]) strcat(list, ",");
        strcat(list, plan->layers[i].name);
    }
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "gpusq.kind", "sparse", err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "sparsity.pattern", gsq_sparse_pattern_name(plan->pattern), err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "sparsity.criterion", p->criterion, err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "sparsity.layers", layers, err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "sparsity.dense_layers", dense, err);
    for (int l = dc->first_block; st == GSQ_OK && l < m->cfg.depth; l++) {
        char key[64];
        snprintf(key, sizeof key, "distill.feature_loss.%d", l);
        snprintf(num, sizeof num, "%.9g", (double)feature_loss[l]);
        st = gsq_st_writer_set_meta(w, key, num, err);
    }
    if (st == GSQ_OK) st = gsq_st_writer_write(w, path, err);
    gsq_st_writer_free(w);
    free(layers);
    free(dense);
    return st;
}

int cmd_prune(int argc, char **argv)
{
    prune_opts p = {.criterion = "magnitude", .pattern = GSQ_SPARSE_2_4, .effort = GSQ_SPARSE_PERMUTE_EFFORT,
                    .feature_blocks = -1};
    cli_distill_weights_init(&p.kd);
    cli_train_opts o;
    cli_train_opts_init(&o, "sparse.safetensors");
    cli_train_opts_fine_tune(&o, 2, 5e-4f);
    int code = cli_parse_command(&o, "prune", argc, argv, prune_option, &p, help, defaults);
    if (code >= 0) return code;
    if (!p.teacher) return cli_usage_error("prune", "--teacher DENSE.safetensors is required");

    gsq_error err = {0};
    if (cli_train_outputs(&o, p.report, &err) != GSQ_OK) return cli_report("prune", &err);
    gsq_vit *teacher = NULL, *student = NULL;
    gsq_dataset *train = NULL, *val = NULL;
    gsq_sparse_plan plan = {0}, plain = {0};
    float *feature_loss = NULL;
    gsq_trainer t = {0};
    gsq_train_result res = {0};
    prune_summary sum = {.teacher = p.teacher, .out = o.out, .criterion = p.criterion, .unsupervised = p.unsupervised};
    gsq_status st = gsq_vit_load(&teacher, p.teacher, NULL, &err);
    if (st == GSQ_OK && !p.resume) st = gsq_vit_clone(&student, teacher, &err);
    if (st == GSQ_OK) {
        cli_train_opts_apply(&o, teacher->cfg.img_size);
        st = cli_open_data(o.data, &o.sizes, &train, &val, &err);
    }
    int depth = teacher ? teacher->cfg.depth : 0;
    if (st == GSQ_OK && p.feature_blocks > depth)
        st = gsq_fail(&err, GSQ_ERR_ARG, "--feature-blocks %d: the teacher has %d blocks", p.feature_blocks, depth);
    if (st == GSQ_OK && teacher->cfg.num_classes != train->num_classes)
        st = gsq_fail(&err, GSQ_ERR_SHAPE, "the teacher has %d classes but %s has %d", teacher->cfg.num_classes,
                      train->name, train->num_classes);
    gsq_distill_config *dc = &o.cfg.distill;
    if (st == GSQ_OK) {
        gsq_distill_defaults(dc, depth);
        if (p.feature_blocks >= 0) dc->first_block = depth - p.feature_blocks;
        cli_distill_weights_apply(&p.kd, dc);
        sum.distill = *dc;
        sum.depth = depth;
        feature_loss = calloc((size_t)depth, sizeof(float));
        if (!feature_loss) st = gsq_fail(&err, GSQ_ERR_NOMEM, "prune: out of memory");
    }
    int workers = o.cfg.workers, batch = o.cfg.batch_size;
    if (st == GSQ_OK && val) st = gsq_evaluate(teacher, val, &o.cfg.transform, batch, workers, &sum.dense, &err);

    if (st == GSQ_OK && !p.resume) { /* choose the masks on the dense weights, prune, measure */
        st = gsq_sparse_plan_magnitude(&plain, student, p.pattern, p.prune_head, &err);
        if (st == GSQ_OK && !strcmp(p.criterion, "permute")) {
            int permuted = 0;
            st = gsq_sparse_permute(student, p.pattern, p.effort, NULL, 0, &permuted, &err);
            if (st == GSQ_OK) st = gsq_sparse_plan_magnitude(&plan, student, p.pattern, p.prune_head, &err);
        } else if (st == GSQ_OK) {
            plan = plain;
            plain = (gsq_sparse_plan){0};
        }
        if (st == GSQ_OK) gsq_sparse_apply(&plan, student->params);
        if (st == GSQ_OK && val) st = gsq_evaluate(student, val, &o.cfg.transform, batch, workers, &sum.one_shot, &err);
        if (st == GSQ_OK && val)
            printf("one-shot %s: top-1 %.2f%% (dense %.2f%%)\n", gsq_sparse_pattern_name(p.pattern),
                   100 * sum.one_shot.top1, 100 * sum.dense.top1);
    }

    o.cfg.teacher = teacher;
    o.cfg.unsupervised = p.unsupervised;
    o.cfg.val = val;
    if (st == GSQ_OK) {
        if (p.resume) st = gsq_trainer_resume(&t, p.resume, &o.cfg, train->size, &err);
        else st = gsq_trainer_init(&t, student, &o.cfg, train->size, &err);
        student = NULL; /* the trainer's now */
    }
    if (st == GSQ_OK && p.resume) st = gsq_sparse_plan_from_weights(&plan, t.model, p.pattern, p.prune_head, &err);
    o.cfg.frozen_zero = plan.mask;
    if (st == GSQ_OK) st = cli_train_run(&o, &t, train, p.teacher, &res, &err);
    if (st == GSQ_OK && res.finished) {
        sum.tuned = res.eval;
        sum.seconds = res.seconds;
        gsq_dataset *fd = val ? val : train;
        st = gsq_distill_evaluate(t.model, teacher, dc, fd, &o.cfg.transform, batch, workers, feature_loss,
                                  &sum.agreement, &err);
        for (int i = 0; st == GSQ_OK && i < plan.num_layers; i++) {
            const gsq_sparse_layer *l = &plan.layers[i];
            if (l->pruned && !gsq_sparse_check(t.model->params + l->offset, l->rows, l->cols, p.pattern))
                st = gsq_fail(&err, GSQ_ERR_FORMAT, "prune: %s lost its %s pattern in fine-tuning (a bug)", l->name,
                              gsq_sparse_pattern_name(p.pattern));
        }
        if (st == GSQ_OK) st = save_sparse(t.model, &plan, &p, dc, feature_loss, o.out, &err);
        sum.plan = &plan;
        int permuted = !p.resume && !strcmp(p.criterion, "permute");
        sum.plain = p.resume ? NULL : permuted ? &plain : &plan;
        sum.permuted = permuted ? &plan : NULL;
        sum.feature_loss = feature_loss;
        if (st == GSQ_OK) {
            printf("sparse weights in %s\n", o.out);
            prune_report_print(&sum, stdout);
        }
        if (st == GSQ_OK && p.report) st = prune_report_write_json(&sum, p.report, &err);
        cli_train_final_checkpoint("prune", &o, &t, st == GSQ_OK);
    }
    gsq_trainer_free(&t);
    gsq_vit_free(student);
    gsq_vit_free(teacher);
    gsq_sparse_plan_free(&plan);
    gsq_sparse_plan_free(&plain);
    free(feature_loss);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (res.interrupted ? 130 : 0) : cli_report("prune", &err);
}
