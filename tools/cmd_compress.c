/* gpusq compress: the whole method in one command. From a dense model: stage 1 (as gpusq prune) to
 * 2:4 for INT8 and to paired 4:8 for INT4, stage 2 (as gpusq quantize) on each, run in this
 * process on the model and data in memory, then the report the paper's tables use — top-1,
 * parameter bytes, dense/sparse MACs and bit-weighted operations against FP32 — printed and
 * written as JSON and Markdown. Each stage's output is kept in the output folder and reused when
 * the command runs again (--fresh to redo): its model is read back and measured again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "gpusq/atomic_file.h"
#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "text.h"

static const char *help =
    "usage: gpusq compress --teacher DENSE.safetensors --out-dir DIR [options]\n\n"
    "Dense → stage 1 (prune, distil) → stage 2 (quantize, distil) → compressed models + report.\n"
    "  --teacher FILE      the dense model\n"
    "  --out-dir DIR       stage outputs, compressed models and report.{json,md} (created)\n"
    "  --modes LIST        int8 (2:4) and/or int4 (4:8), comma-separated (default int8,int4)\n"
    "  --prune-epochs N    stage-1 fine-tuning epochs (default 2)\n"
    "  --qat-epochs N      stage-2 epochs (default: gpusq quantize's, 1 for INT8 and 2 for INT4)\n"
    "  --criterion C       stage-1 mask selection: magnitude or permute (default permute)\n"
    "  --feature-blocks N  blocks distilled in stage 1 and weighted in stage 2 (default: a third)\n"
    "  --unsupervised      no labels in either stage\n"
    "  --attention LIST    modes whose stage 2 also quantizes the attention matmuls' inputs\n"
    "                      (int8 and/or int4, comma-separated; default none)\n"
    "  --lsq LIST          modes whose stage 2 learns its quantizer scales (gpusq quantize --lsq;\n"
    "                      int8 and/or int4, comma-separated, or none; default: quantize's, int4)\n"
    "  --fresh             redo stages whose outputs exist\n"
    "passed to every stage: --data --train-size --val-size --batch --workers --seed --threads\n"
    "  --no-augment\n";

typedef struct {
    const char *teacher, *out_dir, *modes, *criterion, *attention, *lsq;
    int prune_epochs, qat_epochs, feature_blocks; /* 0, 0, -1: the stages' defaults */
    int unsupervised, fresh;
    cli_train_opts train; /* the options passed to every stage */
} compress_opts;

/* 1 if list is "int8", "int4" or both, comma-separated (or "none" where none_ok); --modes also
 * needs at least one. */
static int mode_list_ok(const char *list, int none_ok)
{
    if (none_ok && !strcmp(list, "none")) return 1;
    for (const char *p = list;; p += 5) {
        if (strncmp(p, "int8", 4) && strncmp(p, "int4", 4)) return 0;
        if (p[4] == '\0') return 1;
        if (p[4] != ',') return 0;
    }
}

static int parse(compress_opts *c, int argc, char **argv)
{
    static const char *const shared[] = {"--data", "--train-size", "--val-size", "--batch",     "--workers",
                                         "--seed", "--threads",    "--no-augment"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = !strcmp(a, "--teacher") ? &c->teacher : !strcmp(a, "--out-dir") ? &c->out_dir
                         : !strcmp(a, "--modes") ? &c->modes : !strcmp(a, "--criterion") ? &c->criterion
                         : !strcmp(a, "--attention") ? &c->attention : !strcmp(a, "--lsq") ? &c->lsq : NULL;
        static const char *const numeric[3] = {"--prune-epochs", "--qat-epochs", "--feature-blocks"};
        static const int lo[3] = {1, 1, 0};
        int *ndst[3] = {&c->prune_epochs, &c->qat_epochs, &c->feature_blocks};
        int k = 0;
        while (k < 3 && strcmp(a, numeric[k])) k++;
        if (k < 3) {
            if (cli_int_option("compress", argc, argv, &i, lo[k], 1 << 20, ndst[k]) < 0) return 2;
            continue;
        }
        int is_shared = 0;
        for (size_t s = 0; s < sizeof shared / sizeof shared[0]; s++) is_shared |= !strcmp(a, shared[s]);
        if (cli_is_help(a)) {
            fputs(help, stdout);
            return 0;
        } else if (!strcmp(a, "--unsupervised")) {
            c->unsupervised = 1;
        } else if (!strcmp(a, "--fresh")) {
            c->fresh = 1;
        } else if (dst && !v) {
            return cli_usage_error("compress", "%s needs a value", a);
        } else if (dst) {
            *dst = argv[++i];
        } else if (is_shared) { /* checked now, before stage 1 has made folders and run */
            if (cli_train_option(&c->train, "compress", argc, argv, &i) < 0) return 2;
        } else {
            return cli_usage_error("compress", "unknown option '%s'", a);
        }
    }
    if (!c->teacher || !c->out_dir) return cli_usage_error("compress", "--teacher and --out-dir are required");
    if (strcmp(c->criterion, "magnitude") && strcmp(c->criterion, "permute"))
        return cli_usage_error("compress", "--criterion must be magnitude or permute, got '%s'", c->criterion);
    const char *lists[3] = {c->modes, c->attention, c->lsq}, *flags[3] = {"--modes", "--attention", "--lsq"};
    for (int k = 0; k < 3; k++)
        if (lists[k] && !mode_list_ok(lists[k], k > 0))
            return cli_usage_error("compress", "%s must be int8 and/or int4, comma-separated%s, got '%s'", flags[k],
                                   k > 0 ? " (or none)" : "", lists[k]);
    return -1;
}

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
    double top1, bytes, gemm_ratio, macs, bitops; /* gemm_ratio: the GEMM weights' size vs FP32 */
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

static gsq_status write_reports(const char *dir, const row *rows, int n, double fp32_bytes, double fp32_macs,
                                gsq_error *err)
{
    cli_text md = {0}, js = {0};
    cli_put(&md, "| model | top-1 | parameter bytes | vs FP32 | GEMM weights vs FP32 (paper) | MACs/image | "
                 "bit-weighted MACs | vs FP32 |\n|---|---|---|---|---|---|---|---|\n");
    cli_put(&js, "{\n  \"models\": [\n");
    for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        char top1[16] = "n/a", top1_json[16] = "null"; /* n/a: no validation split */
        if (r->top1 >= 0) {
            snprintf(top1, sizeof top1, "%.2f%%", 100 * r->top1);
            snprintf(top1_json, sizeof top1_json, "%.6f", r->top1);
        }
        cli_put(&md, "| %s | %s | %.0f | %.2f× | %.2f× | %.3g | %.3g | %.1f× |\n", r->name, top1, r->bytes,
                fp32_bytes / r->bytes, r->gemm_ratio, r->macs, r->bitops, fp32_macs / r->bitops);
        cli_put(&js,
                "    {\"model\": \"%s\", \"top1\": %s, \"param_bytes\": %.0f, \"size_ratio\": %.4f, "
                "\"gemm_weight_ratio\": %.4f, \"macs\": %.0f, \"bit_weighted_macs\": %.0f, \"bitops_ratio\": %.4f}%s\n",
                r->name, top1_json, r->bytes, fp32_bytes / r->bytes, r->gemm_ratio, r->macs, r->bitops,
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

/* Top-1 of m on val, or -1 without a validation split (the report says n/a). */
static gsq_status top1_of(gsq_vit *m, gsq_dataset *val, const cli_train_opts *o, double *top1, gsq_error *err)
{
    gsq_eval_result r;
    *top1 = -1;
    gsq_status st = val ? gsq_evaluate(m, val, &o->cfg.transform, o->cfg.batch_size, o->cfg.workers, &r, err) : GSQ_OK;
    if (st == GSQ_OK && val) *top1 = r.top1;
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
static gsq_status stage1(const compress_opts *c, gsq_vit *teacher, gsq_dataset *train, gsq_dataset *val,
                         gsq_sparse_pattern pattern, const char *sparse, const char *sparse_json, int run,
                         gsq_vit **model, float *losses, double *top1, int *interrupted, gsq_error *err)
{
    if (!run) {
        printf("== stage 1: reusing %s\n", sparse);
        gsq_st_file *f = NULL;
        gsq_sparse_pattern stored;
        gsq_status st = gsq_st_open(&f, sparse, err);
        if (st == GSQ_OK) st = gsq_vit_load_open(model, f, &teacher->cfg, NULL, err);
        if (st == GSQ_OK) st = gsq_stage1_read(f, teacher->cfg.depth, &stored, losses, err);
        gsq_st_close(f);
        if (st == GSQ_OK && stored != pattern)
            st = gsq_fail(err, GSQ_ERR_FORMAT, "%s is %s-sparse, not %s: --fresh redoes it", sparse,
                          gsq_sparse_pattern_name(stored), gsq_sparse_pattern_name(pattern));
        return st == GSQ_OK ? top1_of(*model, val, &c->train, top1, err) : st;
    }
    printf("== stage 1 → %s\n", sparse);
    fflush(stdout);
    cli_prune_opts p = {.teacher = c->teacher, .report = sparse_json, .unsupervised = c->unsupervised};
    cli_train_opts o;
    gsq_prune_result r = {0};
    gsq_status st = stage_opts(c, &o, sparse, sparse_json, err);
    gsq_prune_defaults(&p.p, &o.cfg);
    if (c->prune_epochs) o.cfg.epochs = c->prune_epochs;
    p.p.pattern = pattern;
    p.p.permute = !strcmp(c->criterion, "permute");
    if (c->feature_blocks >= 0) p.p.feature_blocks = c->feature_blocks;
    cli_distill_weights_init(&p.kd);
    if (st == GSQ_OK) st = cli_prune_run(&o, &p, teacher, train, val, &r, err);
    *interrupted = r.run.interrupted;
    if (st == GSQ_OK && r.run.finished) {
        *model = r.trainer.model; /* ours now */
        r.trainer.model = NULL;
        for (int l = 0; l < teacher->cfg.depth; l++) losses[l] = r.feature_loss[l];
        *top1 = val ? r.tuned.top1 : -1;
    }
    gsq_prune_result_free(&r);
    return st;
}

/* Stage 2 of mode on the sparse model: run into comp (report comp_json) unless reused; its top-1,
 * whether its attention is quantized, and the compressed file's sizes come back. */
static gsq_status stage2(const compress_opts *c, gsq_vit *sparse, const char *sparse_path, gsq_sparse_pattern pattern,
                         const float *losses, gsq_dataset *train, gsq_dataset *val, gsq_quant_mode mode,
                         const char *comp, const char *comp_json, int run, double *top1, gsq_compressed_info *info,
                         int *interrupted, gsq_error *err)
{
    if (!run) {
        printf("== stage 2: reusing %s\n", comp);
        gsq_vit *twin = NULL;
        gsq_status st = gsq_compressed_load(&twin, comp, info, err);
        if (st == GSQ_OK) st = top1_of(twin, val, &c->train, top1, err);
        gsq_vit_free(twin);
        return st;
    }
    printf("== stage 2 → %s\n", comp);
    fflush(stdout);
    const char *name = gsq_quant_mode_name(mode);
    cli_quantize_opts q = {.teacher = sparse_path, .report = comp_json, .unsupervised = c->unsupervised};
    cli_train_opts o;
    gsq_qat_result r = {0};
    gsq_status st = stage_opts(c, &o, comp, comp_json, err);
    gsq_qat_defaults(&q.q, mode, &o.cfg);
    if (c->qat_epochs) o.cfg.epochs = c->qat_epochs;
    q.q.attention = c->attention && strstr(c->attention, name);
    if (c->lsq) q.q.lsq = strstr(c->lsq, name) != NULL;
    cli_distill_weights_init(&q.kd);
    if (st == GSQ_OK) st = cli_quantize_run(&o, &q, sparse, pattern, losses, train, val, &r, info, err);
    *interrupted = r.run.interrupted;
    if (st == GSQ_OK && r.run.finished) *top1 = val ? r.qat.top1 : -1;
    gsq_qat_result_free(&r);
    return st;
}

int cmd_compress(int argc, char **argv)
{
    compress_opts c = {.modes = "int8,int4", .criterion = "permute", .feature_blocks = -1};
    cli_train_opts_init(&c.train, "unused");
    int code = parse(&c, argc, argv);
    if (code >= 0) return code;
    gsq_error err = {0};
    if (gsq_output_prepare_dir(c.out_dir, &err) != GSQ_OK) return cli_report("compress", &err);
    gsq_vit *teacher = NULL;
    gsq_dataset *train = NULL, *val = NULL;
    gsq_status st = gsq_vit_load(&teacher, c.teacher, NULL, &err);
    if (st == GSQ_OK) {
        cli_train_opts_apply(&c.train, teacher->cfg.img_size);
        st = cli_open_data(c.train.data, &c.train.sizes, &train, &val, &err);
    }
    float *losses = st == GSQ_OK ? calloc((size_t)teacher->cfg.depth, sizeof(float)) : NULL;
    if (st == GSQ_OK && !losses) st = gsq_fail(&err, GSQ_ERR_NOMEM, "compress: out of memory");
    row rows[5];
    int nrows = 0, interrupted = 0;
    double fp32_bytes = teacher ? (double)teacher->num_params * 4 : 0, macs = 0, bitops, dense_top1 = -1;
    if (st == GSQ_OK) {
        flops(teacher->graph, 0, 32, 32, 0, &macs, &bitops);
        st = top1_of(teacher, val, &c.train, &dense_top1, &err);
        rows[nrows++] = (row){"dense FP32", dense_top1, fp32_bytes, 1, macs, macs};
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
        gsq_vit *model = NULL;
        int ran1 = must_run(c.fresh, sparse, sparse_json);
        row r = {.bytes = fp32_bytes, .gemm_ratio = 1}, q = {0};
        st = stage1(&c, teacher, train, val, patterns[k], sparse, sparse_json, ran1, &model, losses, &r.top1, &interrupted,
                    &err);
        if (st == GSQ_OK && model) {
            snprintf(r.name, sizeof r.name, "%s sparse FP32", gsq_sparse_pattern_name(patterns[k]));
            flops(teacher->graph, gsq_sparse_group(patterns[k]), 32, 32, 0, &r.macs, &r.bitops);
            rows[nrows++] = r;
            gsq_compressed_info info = {0};
            st = stage2(&c, model, sparse, patterns[k], losses, train, val, qmodes[k], comp, comp_json,
                        must_run(c.fresh || ran1, comp, comp_json), &q.top1, &info, &interrupted, &err);
            if (st == GSQ_OK && !interrupted) {
                int a = gsq_quant_mode_act_bits(qmodes[k]), w = gsq_quant_mode_weight_bits(qmodes[k]);
                q.bytes = (double)info.param_bytes;
                q.gemm_ratio = 4.0 * (double)info.gemm_weights / (double)info.gemm_weight_bytes;
                snprintf(q.name, sizeof q.name, "%s sparse %s", gsq_sparse_pattern_name(patterns[k]),
                         k ? "INT4 (W4A4)" : "INT8 (W8A8)");
                flops(teacher->graph, gsq_sparse_group(patterns[k]), w, a, info.attention, &q.macs, &q.bitops);
                rows[nrows++] = q;
            }
        }
        gsq_vit_free(model);
    }
    if (st == GSQ_OK && !interrupted) st = write_reports(c.out_dir, rows, nrows, fp32_bytes, fp32_macs, &err);
    gsq_vit_free(teacher);
    free(losses);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (interrupted ? 130 : 0) : cli_report("compress", &err);
}
