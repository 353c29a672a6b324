/* gpusq prune: stage 1 of GPUSQ-ViT. From a dense teacher: choose 2:4 (or paired 4:8) masks for
 * every prunable GEMM weight (by magnitude, optionally after a channel permutation), prune, and
 * fine-tune with the masks frozen by mixed-strategy distillation from the dense teacher; write
 * the sparse model (timm names, mask and per-block feature losses in metadata) and a report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpusq/safetensors.h"
#include "gpusq/stages.h"
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

/* Parses prune's own options; returns -1 (usage error reported), 0 (not ours) or 1. */
static int prune_option(void *ctx, int argc, char **argv, int *i)
{
    cli_prune_opts *o = ctx;
    gsq_prune_config *p = &o->p;
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    gsq_error err = {0};
    int ok = cli_distill_option(&o->kd, "prune", argc, argv, i);
    if (ok) return ok;
    if (!strcmp(a, "--prune-head")) return p->include_head = 1;
    if (!strcmp(a, "--unsupervised")) return o->unsupervised = 1;
    if (!strcmp(a, "--teacher")) return cli_string_option("prune", argc, argv, i, &o->teacher);
    if (!strcmp(a, "--resume")) return cli_string_option("prune", argc, argv, i, &p->resume);
    if (!strcmp(a, "--report")) return cli_string_option("prune", argc, argv, i, &o->report);
    if (!strcmp(a, "--effort")) return cli_int_option("prune", argc, argv, i, 0, 1 << 20, &p->effort);
    if (!strcmp(a, "--feature-blocks")) return cli_int_option("prune", argc, argv, i, 0, 1 << 20, &p->feature_blocks);
    if (!strcmp(a, "--pattern")) {
        ok = v && gsq_sparse_pattern_parse(v, &p->pattern, &err) == GSQ_OK;
        return cli_option_value("prune", ok, "2:4 or 4:8", argc, argv, i);
    }
    if (!strcmp(a, "--criterion")) {
        ok = v && (!strcmp(v, "magnitude") || !strcmp(v, "permute"));
        if (ok) p->permute = !strcmp(v, "permute");
        return cli_option_value("prune", ok, "magnitude or permute", argc, argv, i);
    }
    return 0;
}

gsq_status cli_prune_run(cli_train_opts *o, const cli_prune_opts *p, gsq_vit *teacher, gsq_dataset *train,
                         gsq_dataset *val, gsq_prune_result *r, gsq_error *err)
{
    cli_distill_weights_apply(&p->kd, &o->cfg.distill);
    o->cfg.unsupervised = p->unsupervised;
    gsq_status st = cli_train_begin(o, train, p->teacher, err);
    if (st == GSQ_OK) {
        st = gsq_prune_stage(&p->p, teacher, train, val, &o->cfg, r, err);
        cli_train_end(o, &r->trainer, &r->run, st);
    }
    if (st == GSQ_OK && val && !p->p.resume)
        printf("one-shot %s: top-1 %.2f%% (dense %.2f%%)\n", gsq_sparse_pattern_name(p->p.pattern),
               100 * r->one_shot.top1, 100 * r->dense.top1);
    if (st != GSQ_OK || !r->run.finished) return st;
    prune_summary sum = {.teacher = p->teacher, .out = o->out, .criterion = p->p.permute ? "permute" : "magnitude",
                         .plan = &r->plan, .dense = r->dense, .one_shot = r->one_shot, .tuned = r->tuned,
                         .feature_loss = r->feature_loss, .depth = teacher->cfg.depth, .agreement = r->agreement,
                         .distill = o->cfg.distill, .unsupervised = p->unsupervised, .seconds = r->run.seconds};
    int permuted = !p->p.resume && p->p.permute;
    sum.plain = p->p.resume ? NULL : permuted ? &r->plain : &r->plan;
    sum.permuted = permuted ? &r->plan : NULL;
    st = gsq_stage1_save(r->trainer.model, &p->p, r, o->out, err);
    if (st == GSQ_OK) {
        printf("sparse weights in %s\n", o->out);
        prune_report_print(&sum, stdout);
    }
    if (st == GSQ_OK && p->report) st = prune_report_write_json(&sum, p->report, err);
    cli_train_final_checkpoint("prune", o, &r->trainer, st == GSQ_OK);
    return st;
}

int cmd_prune(int argc, char **argv)
{
    cli_prune_opts p = {0};
    cli_distill_weights_init(&p.kd);
    cli_train_opts o;
    cli_train_opts_init(&o, "sparse.safetensors");
    gsq_prune_defaults(&p.p, &o.cfg);
    int code = cli_parse_command(&o, "prune", argc, argv, prune_option, &p, help, defaults);
    if (code >= 0) return code;
    if (!p.teacher) return cli_usage_error("prune", "--teacher DENSE.safetensors is required");

    gsq_error err = {0};
    if (cli_train_outputs(&o, p.report, &err) != GSQ_OK) return cli_report("prune", &err);
    gsq_vit *teacher = NULL;
    gsq_dataset *train = NULL, *val = NULL;
    gsq_prune_result r = {0};
    gsq_status st = gsq_vit_load(&teacher, p.teacher, NULL, &err);
    if (st == GSQ_OK) {
        cli_train_opts_apply(&o, teacher->cfg.img_size);
        st = cli_open_data(o.data, &o.sizes, &train, &val, &err);
    }
    if (st == GSQ_OK) st = cli_prune_run(&o, &p, teacher, train, val, &r, &err);
    int interrupted = r.run.interrupted;
    gsq_prune_result_free(&r);
    gsq_vit_free(teacher);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (interrupted ? 130 : 0) : cli_report("prune", &err);
}
