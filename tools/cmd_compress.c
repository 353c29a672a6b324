/* gpusq compress: the whole method in one command. From a dense model: stage 1 (gpusq prune) to
 * 2:4 for INT8 and to paired 4:8 for INT4, stage 2 (gpusq quantize) on each, then the report the
 * paper's tables use — top-1, parameter bytes, dense/sparse MACs and bit-weighted operations
 * against FP32 — printed and written as JSON and Markdown. Each stage's output is kept in the
 * output folder and reused when the command runs again (--fresh to redo). */
#include <cjson/cJSON.h>
#include <errno.h>
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
    const char *teacher, *out_dir, *modes, *criterion, *prune_epochs, *qat_epochs, *feature_blocks, *attention,
        *lsq;
    int unsupervised, fresh;
    char numbers[3][16]; /* --prune-epochs, --qat-epochs and --feature-blocks, checked, as text */
    char *pass[32]; /* options for every stage */
    int npass;
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
    static const char *const shared[] = {"--data", "--train-size", "--val-size", "--batch", "--workers", "--seed",
                                         "--threads"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = !strcmp(a, "--teacher") ? &c->teacher : !strcmp(a, "--out-dir") ? &c->out_dir
                         : !strcmp(a, "--modes") ? &c->modes : !strcmp(a, "--criterion") ? &c->criterion
                         : !strcmp(a, "--attention") ? &c->attention : !strcmp(a, "--lsq") ? &c->lsq : NULL;
        static const char *const numeric[3] = {"--prune-epochs", "--qat-epochs", "--feature-blocks"};
        static const int lo[3] = {1, 1, 0}, hi[3] = {1 << 20, 1 << 20, 1 << 20};
        const char **ndst[3] = {&c->prune_epochs, &c->qat_epochs, &c->feature_blocks};
        int k = 0, n = 0;
        while (k < 3 && strcmp(a, numeric[k])) k++;
        if (k < 3) {
            if (cli_int_option("compress", argc, argv, &i, lo[k], hi[k], &n) < 0) return 2;
            snprintf(c->numbers[k], sizeof c->numbers[k], "%d", n);
            *ndst[k] = c->numbers[k];
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
        } else if (!strcmp(a, "--no-augment") && c->npass < 30) {
            c->pass[c->npass++] = argv[i];
        } else if ((dst || is_shared) && !v) {
            return cli_usage_error("compress", "%s needs a value", a);
        } else if (dst) {
            *dst = argv[++i];
        } else if (is_shared && c->npass < 30) {
            /* checked now, as the stages will (not after stage 1 has made folders and run) */
            cli_train_opts check;
            cli_train_opts_init(&check, "unused");
            int at = i;
            if (cli_train_option(&check, "compress", argc, argv, &i) < 0) return 2;
            c->pass[c->npass++] = argv[at];
            c->pass[c->npass++] = argv[at + 1];
        } else {
            return cli_usage_error("compress", "unknown option '%s'", a);
        }
    }
    if (!c->teacher || !c->out_dir) return cli_usage_error("compress", "--teacher and --out-dir are required");
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

/* Runs a stage command (prune or quantize) with argv when run is set, else reuses its output. */
static int run_stage(int (*cmd)(int, char **), const char *name, char **argv, int argc, const char *out, int run)
{
    if (!run) {
        printf("== %s: reusing %s\n", name, out);
        return 0;
    }
    printf("== %s → %s\n", name, out);
    fflush(stdout);
    return cmd(argc, argv);
}

static cJSON *read_json(const char *path, gsq_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        gsq_fail(err, GSQ_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    if (!j) gsq_fail(err, GSQ_ERR_FORMAT, "%s: not a JSON report", path);
    return j;
}

static double num(const cJSON *j, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (b && cJSON_IsObject(x)) x = cJSON_GetObjectItemCaseSensitive(x, "top1");
    return cJSON_IsNumber(x) ? x->valuedouble : -1;
}

typedef struct {
    char name[48];
    double top1, bytes, gemm_ratio, macs, bitops; /* gemm_ratio: the GEMM weights' size vs FP32 */
} row;

/* MACs per image: the quantized GEMMs' share (halved where pruned), the attention matmuls (at
 * a_bits × a_bits when quantized, else float) and the head (float); bit-weighted MACs count each
 * at w_bits·a_bits / (32·32). */
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

int cmd_compress(int argc, char **argv)
{
    compress_opts c = {.modes = "int8,int4", .criterion = "permute", .prune_epochs = "2"};
    int code = parse(&c, argc, argv);
    if (code >= 0) return code;
    gsq_error err = {0};
    if (gsq_output_prepare_dir(c.out_dir, &err) != GSQ_OK) return cli_report("compress", &err);
    /* the architecture and parameter count, for the report (stage 1 loads the weights) */
    gsq_vit_config cfg;
    gsq_vit *dense = NULL;
    gsq_st_file *f = NULL;
    gsq_status st = gsq_st_open(&f, c.teacher, &err);
    if (st == GSQ_OK) st = gsq_vit_infer_config(f, 0, &cfg, &err);
    if (st == GSQ_OK) st = gsq_vit_describe(&dense, &cfg, &err);
    gsq_st_close(f);
    if (st != GSQ_OK) return cli_report("compress", &err);
    double fp32_bytes = (double)dense->num_params * 4, macs, bitops;
    row rows[5];
    int nrows = 0, have_dense = 0;
    flops(dense->graph, 0, 32, 32, 0, &macs, &bitops);
    double fp32_macs = macs;
    const char *modes[2] = {"int8", "int4"}, *patterns[2] = {"2:4", "4:8"}, *tags[2] = {"2of4", "4of8"};
    for (int k = 0; k < 2 && st == GSQ_OK; k++) {
        if (!strstr(c.modes, modes[k])) continue;
        char sparse[4096], sparse_json[4096], comp[4096], comp_json[4096];
        snprintf(sparse, sizeof sparse, "%s/sparse_%s.safetensors", c.out_dir, tags[k]);
        snprintf(sparse_json, sizeof sparse_json, "%s/sparse_%s.json", c.out_dir, tags[k]);
        snprintf(comp, sizeof comp, "%s/%s.gsq.safetensors", c.out_dir, modes[k]);
        snprintf(comp_json, sizeof comp_json, "%s/%s.json", c.out_dir, modes[k]);
        char *pa[64] = {"prune", "--teacher", (char *)c.teacher, "--pattern", (char *)patterns[k], "--criterion",
                        (char *)c.criterion, "--epochs", (char *)c.prune_epochs, "--out", sparse, "--report", sparse_json};
        int pn = 13;
        if (c.feature_blocks) pa[pn++] = "--feature-blocks", pa[pn++] = (char *)c.feature_blocks;
        if (c.unsupervised) pa[pn++] = "--unsupervised";
        for (int i = 0; i < c.npass; i++) pa[pn++] = c.pass[i];
        int stage1_ran = must_run(c.fresh, sparse, sparse_json);
        code = run_stage(cmd_prune, "stage 1", pa, pn, sparse, stage1_ran);
        if (code) return code;
        char *qa[64] = {"quantize", "--teacher", sparse, "--mode", (char *)modes[k], "--out", comp, "--report", comp_json};
        int qn = 9;
        if (c.qat_epochs) qa[qn++] = "--epochs", qa[qn++] = (char *)c.qat_epochs;
        if (c.attention && strstr(c.attention, modes[k])) qa[qn++] = "--attention";
        if (c.lsq) qa[qn++] = strstr(c.lsq, modes[k]) ? "--lsq" : "--no-lsq";
        if (c.unsupervised) qa[qn++] = "--unsupervised";
        for (int i = 0; i < c.npass; i++) qa[qn++] = c.pass[i];
        code = run_stage(cmd_quantize, "stage 2", qa, qn, comp, must_run(c.fresh || stage1_ran, comp, comp_json));
        if (code) return code;
        cJSON *pj = read_json(sparse_json, &err), *qj = pj ? read_json(comp_json, &err) : NULL;
        if (!pj || !qj) {
            cJSON_Delete(pj);
            return cli_report("compress", &err);
        }
        if (!have_dense) {
            have_dense = 1;
            rows[nrows++] = (row){"dense FP32", num(pj, "accuracy", "dense"), fp32_bytes, 1, fp32_macs, fp32_macs};
        }
        row r = {.top1 = num(pj, "accuracy", "fine_tuned"), .bytes = fp32_bytes, .gemm_ratio = 1};
        snprintf(r.name, sizeof r.name, "%s sparse FP32", patterns[k]);
        flops(dense->graph, k ? 8 : 4, 32, 32, 0, &r.macs, &r.bitops);
        rows[nrows++] = r;
        row q = {.top1 = num(qj, "accuracy", "qat")};
        /* the sizes gpusq quantize read off the compressed file it wrote, from its report */
        q.bytes = num(qj, "param_bytes", NULL);
        q.gemm_ratio = 4.0 * num(qj, "gemm_weights", NULL) / num(qj, "gemm_weight_bytes", NULL);
        snprintf(q.name, sizeof q.name, "%s sparse %s", patterns[k], k ? "INT4 (W4A4)" : "INT8 (W8A8)");
        const cJSON *attn = cJSON_GetObjectItemCaseSensitive(qj, "attention");
        flops(dense->graph, k ? 8 : 4, k ? 4 : 8, k ? 4 : 8, cJSON_IsTrue(attn), &q.macs, &q.bitops);
        rows[nrows++] = q;
        cJSON_Delete(pj);
        cJSON_Delete(qj);
    }
    if (st == GSQ_OK) st = write_reports(c.out_dir, rows, nrows, fp32_bytes, fp32_macs, &err);
    gsq_vit_free(dense);
    return st == GSQ_OK ? 0 : cli_report("compress", &err);
}
