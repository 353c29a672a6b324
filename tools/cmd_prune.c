/* gpusq prune: stage 1 of GPUSQ-ViT. From a dense teacher: choose 2:4 (or paired 4:8) masks for
 * every prunable GEMM weight (by magnitude, optionally after a channel permutation), prune, and
 * fine-tune with the masks frozen by mixed-strategy distillation from the dense teacher; write
 * the sparse model (timm names, mask and per-block feature losses in metadata) and a report. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "gpusq/safetensors.h"
#include "prune_report.h"

const cli_choice cli_criteria[] = {{"magnitude", 0}, {"permute", 1}, {NULL, 0}};
#define P(member) offsetof(cli_prune_opts, member)
static const cli_option prune_options[] = {
    {CLI_OPT("--teacher", "FILE", CLI_STRING, P(teacher), "the dense model (also the starting point)")},
    {CLI_OPT("--pattern", "P", CLI_CHOICE, P(p.pattern), "2:4 (FP16/INT8 sparse tensor cores) or 4:8 (paired, for INT4)"),
     .choices = cli_patterns},
    {CLI_OPT("--criterion", "C", CLI_CHOICE, P(p.permute), "magnitude, or permute: a channel permutation search first"),
     .choices = cli_criteria},
    {CLI_OPT("--effort", "N", CLI_INT, P(p.effort), "permutation search passes"), .lo = 0, .hi = 1 << 20},
    {CLI_OPT("--prune-head", NULL, CLI_FLAG, P(p.include_head), "prune the classifier head too (it stays dense otherwise)"),
     .set = 1},
    {CLI_OPT("--feature-blocks", "N", CLI_INT, P(p.feature_blocks), "distil the outputs of the last N blocks"), .lo = 0,
     .hi = 1 << 20, .shown_default = "a third of them"},
    {CLI_OPT("--resume", "FILE", CLI_STRING, P(p.resume), "continue the fine-tuning that wrote this checkpoint (same "
     "options)")},
    {CLI_OPT("--report", "FILE", CLI_STRING, P(report), "also write the report as JSON")},
};
#undef P

static const cli_spec spec = {
    .name = "prune",
    .usage = "--teacher DENSE.safetensors [options]",
    .about = "Prunes a dense ViT/DeiT to 2:4 (or paired 4:8) structured sparsity and fine-tunes it with the masks frozen, "
    "distilling from the dense model; writes the sparse weights (timm names).",
};

gsq_status cli_prune_run(cli_train_opts *o, const cli_prune_opts *p, gsq_model *teacher, gsq_dataset *train,
                         gsq_dataset *val, gsq_prune_result *r, gsq_error *err)
{
    gsq_status st = cli_train_begin(o, train, p->teacher, err);
    if (st == GSQ_OK) {
        st = gsq_prune_stage(&p->p, teacher, train, val, &o->cfg, r, err);
        cli_train_end(o, &r->trainer, &r->run, st);
    }
    if (st == GSQ_OK && val && !p->p.resume)
        printf("one-shot %s: %s %.2f%% (dense %.2f%%)\n", gsq_sparse_pattern_name(p->p.pattern),
               gsq_eval_score_name(r->dense.task), 100 * gsq_eval_score(&r->one_shot), 100 * gsq_eval_score(&r->dense));
    if (st != GSQ_OK || !r->run.finished || !cli_writes()) return st; /* rank 0 writes for all */
    prune_summary sum = {.teacher = p->teacher, .out = o->out, .criterion = p->p.permute ? "permute" : "magnitude",
                         .plan = &r->plan, .dense = r->dense, .one_shot = r->one_shot, .tuned = r->tuned,
                         .feature_loss = r->feature_loss, .graph = gsq_model_graph(teacher), .agreement = r->agreement,
                         .distill = o->cfg.distill, .unsupervised = o->cfg.unsupervised, .seconds = r->run.seconds};
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
    cli_train_opts o;
    cli_train_opts_init(&o, "sparse.safetensors");
    gsq_prune_defaults(&p.p, &o.cfg);
    cli_model_hints hints = {0};
    const cli_group groups[] = {CLI_GROUP("pruning", prune_options, &p), cli_model_group(&hints),
                                cli_distill_group(&o, NULL), cli_data_group(&o, "data", NULL),
                                cli_training_group(&o, "training", NULL), cli_output_group(&o)};
    cli_parsed parsed;
    int code = cli_parse(&spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    if (!p.teacher) return cli_usage_error("prune", "--teacher DENSE.safetensors is required");

    gsq_error err = {0};
    if (cli_train_outputs(&o, p.report, &err) != GSQ_OK) return cli_report("prune", &err);
    gsq_model *teacher = NULL;
    gsq_dataset *train = NULL, *val = NULL;
    gsq_prune_result r = {0};
    gsq_status st = cli_load_weights(p.teacher, &hints, &teacher, &err);
    if (st == GSQ_OK) {
        cli_train_opts_apply(&o, gsq_model_input_size(teacher), gsq_model_num_classes(teacher));
        st = cli_open_data(o.data, &o.sizes, &train, &val, &err);
    }
    if (st == GSQ_OK) st = cli_prune_run(&o, &p, teacher, train, val, &r, &err);
    int interrupted = r.run.interrupted;
    gsq_prune_result_free(&r);
    gsq_model_free(teacher);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (interrupted ? 130 : 0) : cli_report("prune", &err);
}
