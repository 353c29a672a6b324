/* gpusq compress: the whole method in one command. From a dense model: stage 1 (as gpusq prune) to
 * 2:4 for INT8 and to paired 4:8 for INT4, stage 2 (as gpusq quantize) on each, run in this
 * process on the model and data in memory, then the report the paper's tables use — top-1,
 * parameter bytes, dense/sparse MACs and bit-weighted operations against FP32 — printed and
 * written as JSON and Markdown. Each stage's output is kept in the output folder and reused when
 * the command runs again (--fresh to redo): its model is read back and measured again. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "gpusq/atomic_file.h"
#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "text.h"

typedef struct {
    const char *teacher, *out_dir, *modes, *attention, *lsq;
    int permute;
    long prune_epochs, qat_epochs; /* 0: the stages' defaults */
    int feature_blocks;            /* -1: the stages' default (gsq_prune_config's) */
    int fresh;
    cli_train_opts train; /* the options passed to every stage */
} compress_opts;

/* 1 if list is "int8", "int4" or both, comma-separated. */
static int mode_list(const char *list)
{
    for (const char *p = list;; p += 5) {
        if (strncmp(p, "int8", 4) && strncmp(p, "int4", 4)) return 0;
        if (p[4] == '\0') return 1;
        if (p[4] != ',') return 0;
    }
}

/* The same, or "none". */
static int mode_list_or_none(const char *list) { return !strcmp(list, "none") || mode_list(list); }

#define C(member) offsetof(compress_opts, member)
static const cli_option compress_options[] = {
    {CLI_OPT("--teacher", "FILE", CLI_STRING, C(teacher), "the dense model")},
    {CLI_OPT("--out-dir", "DIR", CLI_STRING, C(out_dir), "stage outputs, compressed models and report.{json,md} (created)")},
    {CLI_OPT("--modes", "LIST", CLI_STRING, C(modes), "int8 (2:4) and/or int4 (4:8), comma-separated"), .valid = mode_list,
     .accepted = "int8 and/or int4, comma-separated"},
    {CLI_OPT("--prune-epochs", "N", CLI_LONG, C(prune_epochs), "stage-1 fine-tuning epochs"), .lo = 1, .hi = 1 << 20,
     .shown_default = "gpusq prune's, 2"},
    {CLI_OPT("--qat-epochs", "N", CLI_LONG, C(qat_epochs), "stage-2 epochs"), .lo = 1, .hi = 1 << 20,
     .shown_default = "gpusq quantize's, 1 for INT8 and 2 for INT4"},
    {CLI_OPT("--criterion", "C", CLI_CHOICE, C(permute), "stage-1 mask selection: magnitude or permute"), .choices = cli_criteria},
    {CLI_OPT("--feature-blocks", "N", CLI_INT, C(feature_blocks), "blocks distilled in stage 1 and weighted in stage 2"),
     .lo = 0, .hi = 1 << 20, .shown_default = "a third of them"},
    {CLI_OPT("--attention", "LIST", CLI_STRING, C(attention), "modes whose stage 2 also quantizes the attention matmuls' "
     "inputs (int8 and/or int4, comma-separated, or none)"), .valid = mode_list_or_none,
     .accepted = "int8 and/or int4, comma-separated (or none)", .shown_default = "none"},
    {CLI_OPT("--lsq", "LIST", CLI_STRING, C(lsq), "modes whose stage 2 learns its quantizer scales (gpusq quantize --lsq; "
     "int8 and/or int4, comma-separated, or none)"), .valid = mode_list_or_none,
     .accepted = "int8 and/or int4, comma-separated (or none)", .shown_default = "gpusq quantize's, int4"},
    {CLI_OPT("--fresh", NULL, CLI_FLAG, C(fresh), "redo stages whose outputs exist"), .set = 1},
};
#undef C

static const cli_spec spec = {
    .name = "compress",
    .usage = "--teacher DENSE.safetensors --out-dir DIR [options]",
    .about = "Dense → stage 1 (prune, distil) → stage 2 (quantize, distil) → compressed models + report. Each stage's "
    "output stays in DIR and is reused when the command runs again (--fresh redoes it).",
};

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* 1 when a stage must run: asked to (fresh), or its output or report is missing. */
static int must_run(int fresh, const char *out, const char *report)
{
    return fresh || !exists(out) || !exists(report);
}

typedef struct {
    char name[48];
    double score, bytes, gemm_ratio, macs, bitops; /* score: top-1 or mIoU; gemm_ratio: the GEMM weights' size vs FP32 */
} row;

/* MACs and bit-weighted MACs of one image, from the network's description: a compressed linear is
 * pruned (half its MACs) when its input size is a multiple of the group (0: dense) and runs at
 * w_bits × a_bits; the attention matmuls at a_bits² when quantized; the rest in float (32 × 32). */
static void flops(const gsq_graph *g, int group, int w_bits, int a_bits, int attention, double *macs, double *bitops)
{
    double kept = 0, rest = 0, attn = gsq_graph_count_macs(g).attention;
    for (int i = 0; i < g->num_linears; i++) {
        const gsq_linear *l = &g->linears[i];
        double n = gsq_graph_linear_macs(g, i);
        if (l->compressed) kept += group && l->cols % group == 0 ? 0.5 * n : n;
        else rest += n;
    }
    *macs = kept + attn + rest;
    *bitops = kept * w_bits * a_bits / 1024.0 + attn * (attention ? a_bits * a_bits / 1024.0 : 1.0) + rest;
}

static gsq_status write_reports(const char *dir, gsq_task task, const row *rows, int n, double fp32_bytes,
                                double fp32_macs, gsq_error *err)
{
    cli_text md = {0}, js = {0};
    const char *key = task == GSQ_TASK_SEGMENT ? "miou" : task == GSQ_TASK_DETECT ? "ap" : "top1";
    cli_put(&md, "| model | %s | parameter bytes | vs FP32 | GEMM weights vs FP32 (paper) | MACs/image | "
                 "bit-weighted MACs | vs FP32 |\n|---|---|---|---|---|---|---|---|\n", gsq_eval_score_name(task));
    cli_put(&js, "{\n  \"models\": [\n");
    for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        char score[16] = "n/a", score_json[16] = "null"; /* n/a: no validation split */
        if (r->score >= 0) {
            snprintf(score, sizeof score, "%.2f%%", 100 * r->score);
            snprintf(score_json, sizeof score_json, "%.6f", r->score);
        }
        cli_put(&md, "| %s | %s | %.0f | %.2f× | %.2f× | %.3g | %.3g | %.1f× |\n", r->name, score, r->bytes,
                fp32_bytes / r->bytes, r->gemm_ratio, r->macs, r->bitops, fp32_macs / r->bitops);
        cli_put(&js,
                "    {\"model\": \"%s\", \"%s\": %s, \"param_bytes\": %.0f, \"size_ratio\": %.4f, "
                "\"gemm_weight_ratio\": %.4f, \"macs\": %.0f, \"bit_weighted_macs\": %.0f, \"bitops_ratio\": %.4f}%s\n",
                r->name, key, score_json, r->bytes, fp32_bytes / r->bytes, r->gemm_ratio, r->macs, r->bitops,
                fp32_macs / r->bitops, i + 1 < n ? "," : "");
    }
    cli_put(&js, "  ]\n}\n");
    char path[4096];
    if (md.p) printf("\n%s\n", md.p);
    snprintf(path, sizeof path, "%s/report.md", dir);
    gsq_status st = cli_text_write(&md, path, err);
    snprintf(path, sizeof path, "%s/report.json", dir);
    if (st == GSQ_OK) st = cli_text_write(&js, path, err);
    free(js.p); /* not written when the first write failed */
    if (st == GSQ_OK) printf("report in %s/report.md and report.json\n", dir);
    return st;
}

/* Top-1 (mIoU) of m on val, or -1 without a validation split (the report says n/a). */
static gsq_status score_of(gsq_model *m, gsq_dataset *val, const cli_train_opts *o, double *score, gsq_error *err)
{
    gsq_eval_result r;
    *score = -1;
    gsq_status st = val ? gsq_evaluate(m, val, &o->cfg.transform, o->cfg.batch_size, o->cfg.workers, o->cfg.comm, &r, err) : GSQ_OK;
    if (st == GSQ_OK && val) *score = gsq_eval_score(&r);
    return st;
}

/* The per-stage options, from those every stage shares, for a stage writing out and report (the
 * stage's own defaults go on top). */
static gsq_status stage_opts(const compress_opts *c, cli_train_opts *o, const char *out, const char *report,
                             gsq_error *err)
{
    *o = c->train;
    o->out = out;
    o->checkpoint = NULL; /* beside out */
    return cli_train_outputs(o, report, err);
}

/* Stage 1 for pattern: run into sparse (report sparse_json) unless reused; the sparse model, its
 * feature losses and its top-1 come back. *interrupted: Ctrl-C stopped it. */
static gsq_status stage1(const compress_opts *c, gsq_model *teacher, gsq_dataset *train, gsq_dataset *val,
                         gsq_sparse_pattern pattern, const char *sparse, const char *sparse_json, int run,
                         gsq_model **model, float *losses, double *score, int *interrupted, gsq_error *err)
{
    if (!run) {
        printf("== stage 1: reusing %s\n", sparse);
        gsq_st_file *f = NULL;
        gsq_sparse_pattern stored;
        gsq_status st = gsq_st_open(&f, sparse, err);
        if (st == GSQ_OK) st = gsq_model_load_open(model, f, NULL, err);
        if (st == GSQ_OK && gsq_model_num_params(*model) != gsq_model_num_params(teacher))
            st = gsq_fail(err, GSQ_ERR_SHAPE, "%s is not the teacher's architecture: --fresh redoes it", sparse);
        if (st == GSQ_OK) st = gsq_stage1_read(f, gsq_model_depth(teacher), &stored, losses, err);
        gsq_st_close(f);
        if (st == GSQ_OK && stored != pattern)
            st = gsq_fail(err, GSQ_ERR_FORMAT, "%s is %s-sparse, not %s: --fresh redoes it", sparse,
                          gsq_sparse_pattern_name(stored), gsq_sparse_pattern_name(pattern));
        return st == GSQ_OK ? score_of(*model, val, &c->train, score, err) : st;
    }
    printf("== stage 1 → %s\n", sparse);
    fflush(stdout);
    cli_prune_opts p = {.teacher = c->teacher, .report = sparse_json};
    cli_train_opts o;
    gsq_prune_result r = {0};
    gsq_status st = stage_opts(c, &o, sparse, sparse_json, err);
    gsq_prune_defaults(&p.p, &o.cfg);
    if (c->prune_epochs) o.cfg.epochs = c->prune_epochs;
    p.p.pattern = pattern;
    p.p.permute = c->permute;
    p.p.feature_blocks = c->feature_blocks; /* -1: the stage's own default */
    if (st == GSQ_OK) st = cli_prune_run(&o, &p, teacher, train, val, &r, err);
    *interrupted = r.run.interrupted;
    if (st == GSQ_OK && r.run.finished) {
        *model = r.trainer.model; /* ours now */
        r.trainer.model = NULL;
        for (int l = 0; l < gsq_model_depth(teacher); l++) losses[l] = r.feature_loss[l];
        *score = val ? gsq_eval_score(&r.tuned) : -1;
    }
    gsq_prune_result_free(&r);
    return st;
}

/* Stage 2 of mode on the sparse model: run into comp (report comp_json) unless reused; its top-1,
 * whether its attention is quantized, and the compressed file's sizes come back. */
static gsq_status stage2(const compress_opts *c, gsq_model *sparse, const char *sparse_path, gsq_sparse_pattern pattern,
                         const float *losses, gsq_dataset *train, gsq_dataset *val, gsq_quant_mode mode,
                         const char *comp, const char *comp_json, int run, double *score, gsq_compressed_info *info,
                         int *interrupted, gsq_error *err)
{
    if (!run) {
        printf("== stage 2: reusing %s\n", comp);
        gsq_model *twin = NULL;
        gsq_status st = gsq_compressed_load(&twin, comp, info, err);
        if (st == GSQ_OK) st = score_of(twin, val, &c->train, score, err);
        gsq_model_free(twin);
        return st;
    }
    printf("== stage 2 → %s\n", comp);
    fflush(stdout);
    const char *name = gsq_quant_mode_name(mode);
    cli_quantize_opts q = {.teacher = sparse_path, .report = comp_json};
    cli_train_opts o;
    gsq_qat_result r = {0};
    gsq_status st = stage_opts(c, &o, comp, comp_json, err);
    gsq_qat_defaults(&q.q, mode, &o.cfg);
    if (c->qat_epochs) o.cfg.epochs = c->qat_epochs;
    q.q.attention = c->attention && strstr(c->attention, name);
    if (c->lsq) q.q.lsq = strstr(c->lsq, name) != NULL;
    if (st == GSQ_OK) st = cli_quantize_run(&o, &q, sparse, pattern, losses, train, val, &r, info, err);
    *interrupted = r.run.interrupted;
    if (st == GSQ_OK && r.run.finished) *score = val ? gsq_eval_score(&r.qat) : -1;
    gsq_qat_result_free(&r);
    return st;
}

int cmd_compress(int argc, char **argv)
{
    compress_opts c = {.modes = "int8,int4", .permute = 1, .feature_blocks = -1};
    cli_train_opts_init(&c.train, "unused");
    static const char *const data[] = {"--data", "--train-size", "--val-size", "--workers", NULL};
    static const char *const training[] = {"--batch", "--accum", "--no-augment", "--seed", "--threads", NULL};
    static const char *const distill[] = {"--unsupervised", NULL};
    cli_model_hints hints = {0};
    const cli_group groups[] = {CLI_GROUP("compression", compress_options, &c), cli_model_group(&hints),
                                cli_data_group(&c.train, "data (every stage)", data),
                                cli_training_group(&c.train, "training (every stage)", training),
                                cli_distill_group(&c.train, distill)};
    cli_parsed parsed;
    int code = cli_parse(&spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    if (!c.teacher || !c.out_dir) return cli_usage_error("compress", "--teacher and --out-dir are required");
    gsq_error err = {0};
    if (cli_writes() && gsq_output_prepare_dir(c.out_dir, &err) != GSQ_OK) return cli_report("compress", &err);
    gsq_model *teacher = NULL;
    gsq_dataset *train = NULL, *val = NULL;
    gsq_status st = cli_load_weights(c.teacher, &hints, &teacher, &err);
    if (st == GSQ_OK) {
        cli_train_opts_apply(&c.train, gsq_model_input_size(teacher), gsq_model_num_classes(teacher));
        st = cli_open_data(c.train.data, &c.train.sizes, &train, &val, &err);
    }
    float *losses = st == GSQ_OK ? calloc((size_t)gsq_model_depth(teacher), sizeof(float)) : NULL;
    if (st == GSQ_OK && !losses) st = gsq_fail(&err, GSQ_ERR_NOMEM, "compress: out of memory");
    row rows[5];
    int nrows = 0, interrupted = 0;
    double fp32_bytes = teacher ? (double)gsq_model_num_params(teacher) * 4 : 0, macs = 0, bitops, dense_score = -1;
    if (st == GSQ_OK) {
        flops(gsq_model_graph(teacher), 0, 32, 32, 0, &macs, &bitops);
        st = score_of(teacher, val, &c.train, &dense_score, &err);
        rows[nrows++] = (row){"dense FP32", dense_score, fp32_bytes, 1, macs, macs};
    }
    double fp32_macs = macs;
    const char *modes[2] = {"int8", "int4"}, *tags[2] = {"2of4", "4of8"};
    const gsq_quant_mode qmodes[2] = {GSQ_QMODE_INT8, GSQ_QMODE_INT4};
    const gsq_sparse_pattern patterns[2] = {GSQ_SPARSE_2_4, GSQ_SPARSE_4_8};
    for (int k = 0; k < 2 && st == GSQ_OK && !interrupted; k++) {
        if (!strstr(c.modes, modes[k])) continue;
        char sparse[4096], sparse_json[4096], comp[4096], comp_json[4096];
        snprintf(sparse, sizeof sparse, "%s/sparse_%s.safetensors", c.out_dir, tags[k]);
        snprintf(sparse_json, sizeof sparse_json, "%s/sparse_%s.json", c.out_dir, tags[k]);
        snprintf(comp, sizeof comp, "%s/%s.gsq.safetensors", c.out_dir, modes[k]);
        snprintf(comp_json, sizeof comp_json, "%s/%s.json", c.out_dir, modes[k]);
        gsq_model *model = NULL;
        int ran1 = must_run(c.fresh, sparse, sparse_json);
        st = gsq_comm_broadcast(cli_comm(), &ran1, sizeof ran1, 0, &err); /* rank 0's files decide */
        row r = {.bytes = fp32_bytes, .gemm_ratio = 1}, q = {0};
        if (st == GSQ_OK)
            st = stage1(&c, teacher, train, val, patterns[k], sparse, sparse_json, ran1, &model, losses, &r.score,
                        &interrupted, &err);
        if (st == GSQ_OK && model) {
            snprintf(r.name, sizeof r.name, "%s sparse FP32", gsq_sparse_pattern_name(patterns[k]));
            flops(gsq_model_graph(teacher), gsq_sparse_group(patterns[k]), 32, 32, 0, &r.macs, &r.bitops);
            rows[nrows++] = r;
            gsq_compressed_info info = {0};
            int ran2 = must_run(c.fresh || ran1, comp, comp_json);
            st = gsq_comm_broadcast(cli_comm(), &ran2, sizeof ran2, 0, &err);
            if (st == GSQ_OK)
                st = stage2(&c, model, sparse, patterns[k], losses, train, val, qmodes[k], comp, comp_json, ran2, &q.score,
                            &info, &interrupted, &err);
            if (st == GSQ_OK && !interrupted) {
                int a = gsq_quant_mode_act_bits(qmodes[k]), w = gsq_quant_mode_weight_bits(qmodes[k]);
                q.bytes = (double)info.param_bytes;
                q.gemm_ratio = 4.0 * (double)info.gemm_weights / (double)info.gemm_weight_bytes;
                snprintf(q.name, sizeof q.name, "%s sparse %s", gsq_sparse_pattern_name(patterns[k]),
                         k ? "INT4 (W4A4)" : "INT8 (W8A8)");
                flops(gsq_model_graph(teacher), gsq_sparse_group(patterns[k]), w, a, info.attention, &q.macs, &q.bitops);
                rows[nrows++] = q;
            }
        }
        gsq_model_free(model);
    }
    if (st == GSQ_OK && !interrupted && cli_writes()) st = write_reports(c.out_dir, gsq_model_task(teacher), rows, nrows, fp32_bytes, fp32_macs, &err);
    gsq_model_free(teacher);
    free(losses);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (interrupted ? 130 : 0) : cli_report("compress", &err);
}
