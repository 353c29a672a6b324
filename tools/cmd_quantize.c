/* gpusq quantize: stage 2 of GPUSQ-ViT. From the stage-1 sparse model: attach INT8/INT4
 * quantizers to every GEMM, calibrate the activation scales, fine-tune with the masks frozen
 * (quantization-aware, distilling from the sparse float model with per-block feature weights
 * derived from stage 1's losses), and write the compressed model file and a report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpusq/compressed.h"
#include "gpusq/safetensors.h"
#include "text.h"

static const char *help =
    "usage: gpusq quantize --teacher SPARSE.safetensors [options]\n\n"
    "Quantization-aware fine-tuning of a gpusq prune output; writes the compressed model file.\n\n"
    "quantization:\n"
    "  --teacher FILE      the sparse float model from gpusq prune (also the starting point)\n"
    "  --mode M            int8 (W8A8, default), int4 (W4A4) or w4a8\n"
    "  --calib C           activation calibration: max, percentile, mse or entropy (default:\n"
    "                      percentile for 8-bit activations, mse for 4-bit)\n"
    "  --percentile P      for --calib percentile (default 99.99)\n"
    "  --weight-calib C    per-channel weight scales: max (default) or mse\n"
    "  --calib-batches N   batches observed for calibration (default 16)\n"
    "  --attention         also quantize the attention matmuls' inputs (Q, K, V, softmax output)\n"
    "  --lsq, --no-lsq     learn the GEMMs' activation and weight scales (LSQ) instead of holding\n"
    "                      them to calibration; Q, K, V scales stay calibrated (default: on for int4)\n"
    "  --lsq-lr F          the scales' learning rate as a multiple of --lr (default 10)\n"
    "  --uniform-weights   feature weights w_l = 1 instead of stage 1's sparse-distillation-aware ones\n"
    "  --alpha X (1)  --beta X (10)  --gamma X (5)  --temperature T (1)  --unsupervised\n"
    "  --resume FILE       continue the QAT that wrote this checkpoint (same options): the\n"
    "                      quantizers' scales come from it, nothing is calibrated again\n"
    "  --report FILE       also write the report as JSON\n";
static const char *defaults =
    "defaults: --epochs 1 --lr 1e-4 with 8-bit weights, --epochs 2 --lr 5e-4 with 4-bit weights;\n"
    "--lsq with --mode int4; --batch 64 --warmup-epochs 0.1 --smoothing 0 --clip 1, augmentation on,\n"
    "--out model.gsq.safetensors; Ctrl-C writes a checkpoint beside it (as --checkpoint says).\n";

typedef struct {
    const char *teacher, *report, *resume;
    gsq_quant_mode mode;
    gsq_calib_method calib, weight_calib;
    float percentile;
    cli_distill_weights kd;
    float lsq_lr;
    int calib_batches, uniform, unsupervised, calib_given, attention, lsq;
} quant_opts;

static int quant_option(void *ctx, int argc, char **argv, int *i)
{
    quant_opts *q = ctx;
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    gsq_error err = {0};
    int ok = cli_distill_option(&q->kd, "quantize", argc, argv, i);
    if (ok) return ok;
    if (!strcmp(a, "--uniform-weights")) return q->uniform = 1;
    if (!strcmp(a, "--unsupervised")) return q->unsupervised = 1;
    if (!strcmp(a, "--attention")) return q->attention = 1;
    if (!strcmp(a, "--lsq")) return q->lsq = 1;
    if (!strcmp(a, "--no-lsq")) {
        q->lsq = 0;
        return 1;
    }
    if (!strcmp(a, "--teacher")) return cli_string_option("quantize", argc, argv, i, &q->teacher);
    if (!strcmp(a, "--report")) return cli_string_option("quantize", argc, argv, i, &q->report);
    if (!strcmp(a, "--resume")) return cli_string_option("quantize", argc, argv, i, &q->resume);
    if (!strcmp(a, "--percentile")) return cli_float_option("quantize", argc, argv, i, 1e-3f, 100.0f, 0, &q->percentile);
    if (!strcmp(a, "--calib-batches"))
        return cli_int_option("quantize", argc, argv, i, 1, 1 << 20, &q->calib_batches);
    if (!strcmp(a, "--lsq-lr")) return cli_float_option("quantize", argc, argv, i, 1e-6f, 1e6f, 0, &q->lsq_lr);
    const char *accepted = NULL;
    if (!strcmp(a, "--mode")) {
        ok = v && gsq_quant_mode_parse(v, &q->mode, &err) == GSQ_OK;
        accepted = "int8, int4 or w4a8";
    } else if (!strcmp(a, "--calib")) {
        ok = v && gsq_calib_parse(v, &q->calib, &err) == GSQ_OK && (q->calib_given = 1);
        accepted = "max, percentile, mse or entropy";
    } else if (!strcmp(a, "--weight-calib")) {
        ok = v && gsq_calib_parse(v, &q->weight_calib, &err) == GSQ_OK &&
             (q->weight_calib == GSQ_CALIB_MAX || q->weight_calib == GSQ_CALIB_MSE);
        accepted = "max or mse";
    } else {
        return 0;
    }
    return cli_option_value("quantize", ok, accepted, argc, argv, i);
}

/* What stage 1 recorded in its output's metadata: the pattern, and the per-block feature losses
 * (distill.feature_loss.L) → w_l = L_l / mean(L) over the recorded blocks (1 each when uniform or
 * when they are all 0); *first = the first recorded block. A block stage 1 did not distil gets 0
 * and is not distilled here either. */
static gsq_status read_stage1(const gsq_st_file *f, int depth, int uniform, float *w, int *first,
                              gsq_sparse_pattern *pattern, gsq_error *err)
{
    const char *path = gsq_st_label(f);
    gsq_status st = GSQ_OK;
    double sum = 0;
    int n = 0;
    *first = depth;
    for (int l = 0; l < depth; l++) {
        char key[64];
        snprintf(key, sizeof key, "distill.feature_loss.%d", l);
        const char *v = gsq_st_meta_get(f, key);
        char *end = NULL;
        w[l] = v ? strtof(v, &end) : 0.0f;
        if (v && (end == v || *end || !(w[l] >= 0.0f && w[l] < 1e30f)))
            st = gsq_fail(err, GSQ_ERR_FORMAT, "%s: metadata %s = '%.40s' is not a loss", path, key, v);
        if (v && *first == depth) *first = l;
        if (v) sum += w[l], n++;
    }
    const char *pat = gsq_st_meta_get(f, "sparsity.pattern");
    if (st == GSQ_OK && !pat)
        st = gsq_fail(err, GSQ_ERR_MISSING, "%s: not a sparse model (no sparsity.pattern); run gpusq prune first", path);
    if (st == GSQ_OK) st = gsq_sparse_pattern_parse(pat, pattern, err);
    for (int l = *first; st == GSQ_OK && l < depth; l++)
        w[l] = uniform || sum <= 0 ? 1.0f : (float)(w[l] * n / sum);
    return st;
}

/* One accuracy line; NaN: not measured here (a resumed run does not calibrate again). */
static void print_acc(const char *what, const gsq_eval_result *r)
{
    if (isnan(r->top1)) printf("  %-26s not measured (a resumed run)\n", what);
    else printf("  %-26s top-1 %6.2f%%  top-5 %6.2f%%  loss %.4f\n", what, 100 * r->top1, 100 * r->top5, r->loss);
}

static gsq_status write_report(const char *path, const quant_opts *q, gsq_sparse_pattern pattern,
                               const gsq_eval_result *acc, const gsq_compressed_info *info, size_t fp32_bytes,
                               const float *w, int first, int depth, double seconds, gsq_error *err)
{
    cli_text t = {0};
    cli_put(&t,
            "{\n  \"mode\": \"%s\",\n  \"pattern\": \"%s\",\n  \"calibration\": \"%s\",\n"
            "  \"weight_calibration\": \"%s\",\n  \"feature_weights\": \"%s\",\n  \"attention\": %s,\n"
            "  \"lsq\": %s,\n  \"lsq_lr\": %g,\n  \"accuracy\": {\n",
            gsq_quant_mode_name(q->mode), gsq_sparse_pattern_name(pattern), gsq_calib_name(q->calib),
            gsq_calib_name(q->weight_calib), q->uniform ? "uniform" : "stage1", q->attention ? "true" : "false",
            q->lsq ? "true" : "false", (double)q->lsq_lr);
    const char *names[3] = {"sparse_float", "calibrated", "qat"};
    for (int i = 0; i < 3; i++) {
        if (isnan(acc[i].top1)) cli_put(&t, "    \"%s\": null%s\n", names[i], i < 2 ? "," : ""); /* not measured */
        else cli_put(&t, "    \"%s\": {\"top1\": %.6f, \"top5\": %.6f, \"loss\": %.6f}%s\n", names[i], acc[i].top1,
                     acc[i].top5, acc[i].loss, i < 2 ? "," : "");
    }
    cli_put(&t, "  },\n  \"w_l\": {");
    for (int l = first; l < depth; l++) cli_put(&t, "%s\"blocks.%d\": %.6f", l > first ? ", " : "", l, (double)w[l]);
    cli_put(&t,
            "},\n  \"param_bytes\": %zu,\n  \"fp32_param_bytes\": %zu,\n  \"gemm_weights\": %zu,\n"
            "  \"gemm_weight_bytes\": %zu,\n  \"sparse_gemms\": %d,\n  \"dense_gemms\": %d,\n  \"qat_seconds\": %.1f\n}\n",
            info->param_bytes, fp32_bytes, info->gemm_weights, info->gemm_weight_bytes, info->sparse_linears,
            info->dense_linears, seconds);
    return cli_text_write(&t, path, err);
}

int cmd_quantize(int argc, char **argv)
{
    quant_opts q = {.mode = GSQ_QMODE_INT8, .calib = GSQ_CALIB_PERCENTILE, .weight_calib = GSQ_CALIB_MAX,
                    .percentile = 99.99f, .calib_batches = 16,
                    .lsq = -1, .lsq_lr = 10};
    cli_distill_weights_init(&q.kd);
    cli_train_opts o;
    cli_train_opts_init(&o, "model.gsq.safetensors");
    cli_train_opts_fine_tune(&o, 1, 1e-4f);
    int code = cli_parse_command(&o, "quantize", argc, argv, quant_option, &q, help, defaults);
    if (code >= 0) return code;
    if (!q.teacher) return cli_usage_error("quantize", "--teacher SPARSE.safetensors is required");
    /* 16 levels leave no room for outliers: 4-bit activations clip where the error is least */
    if (!q.calib_given && gsq_quant_mode_act_bits(q.mode) == 4) q.calib = GSQ_CALIB_MSE;
    /* learned scales gain W4A4 about 0.4 points on the demo and INT8 nothing (docs/QUANTIZATION.md) */
    if (q.lsq < 0) q.lsq = q.mode == GSQ_QMODE_INT4;
    /* 4-bit weights move further from the float model: longer and faster QAT unless told */
    int epochs_given = 0, lr_given = 0;
    for (int i = 1; i < argc; i++) epochs_given |= !strcmp(argv[i], "--epochs"), lr_given |= !strcmp(argv[i], "--lr");
    if (gsq_quant_mode_weight_bits(q.mode) == 4) {
        if (!epochs_given) o.cfg.epochs = 2;
        if (!lr_given) o.cfg.optim.lr = 5e-4f;
    }

    gsq_error err = {0};
    if (cli_train_outputs(&o, q.report, &err) != GSQ_OK) return cli_report("quantize", &err);
    gsq_vit *teacher = NULL, *student = NULL;
    gsq_dataset *train = NULL, *val = NULL;
    gsq_sparse_plan plan = {0};
    gsq_sparse_pattern pattern = GSQ_SPARSE_2_4;
    gsq_trainer t = {0};
    gsq_train_result res = {0};
    gsq_eval_result acc[3] = {{0}};
    float *w = NULL;
    int first = 0;
    gsq_st_file *f = NULL; /* the stage-1 file, read once: the model and its metadata */
    gsq_status st = gsq_st_open(&f, q.teacher, &err);
    if (st == GSQ_OK) st = gsq_vit_load_open(&teacher, f, NULL, NULL, &err);
    if (st == GSQ_OK && !q.resume) st = gsq_vit_clone(&student, teacher, &err);
    if (st == GSQ_OK && !(w = calloc((size_t)teacher->cfg.depth, sizeof(float))))
        st = gsq_fail(&err, GSQ_ERR_NOMEM, "out of memory");
    if (st == GSQ_OK) st = read_stage1(f, teacher->cfg.depth, q.uniform, w, &first, &pattern, &err);
    gsq_st_close(f);
    if (st == GSQ_OK) {
        cli_train_opts_apply(&o, teacher->cfg.img_size);
        st = cli_open_data(o.data, &o.sizes, &train, &val, &err);
    }
    gsq_dataset *eval_ds = val ? val : train;
    int batch = o.cfg.batch_size, workers = o.cfg.workers;
    /* the masks: the teacher's zeros (its weights are the stage-1 sparse ones) */
    if (st == GSQ_OK) st = gsq_sparse_plan_from_weights(&plan, teacher, pattern, 1, &err);
    if (st == GSQ_OK) st = gsq_evaluate(teacher, eval_ds, &o.cfg.transform, batch, workers, &acc[0], &err);
    if (st == GSQ_OK && !q.resume) { /* a resumed run's quantizers come with its checkpoint */
        st = gsq_vit_quant_enable(student, q.mode, q.weight_calib, &err);
        if (st == GSQ_OK && q.attention) st = gsq_vit_quant_enable_attention(student, &err);
        if (st == GSQ_OK && q.lsq) st = gsq_vit_quant_enable_lsq(student, q.lsq_lr, &err);
        if (st == GSQ_OK)
            st = gsq_vit_quant_calibrate(student, train, &o.cfg.transform, batch, q.calib_batches, workers, q.calib,
                                         q.percentile, &err);
        if (st == GSQ_OK) st = gsq_evaluate(student, eval_ds, &o.cfg.transform, batch, workers, &acc[1], &err);
        if (st == GSQ_OK)
            printf("calibrated %s (%s): top-1 %.2f%% (sparse float %.2f%%)\n", gsq_quant_mode_name(q.mode),
                   gsq_calib_name(q.calib), 100 * acc[1].top1, 100 * acc[0].top1);
    } else if (st == GSQ_OK) {
        acc[1].top1 = acc[1].top5 = acc[1].loss = NAN; /* measured by the run that calibrated */
    }
    gsq_distill_config *dc = &o.cfg.distill;
    gsq_distill_defaults(dc, teacher ? teacher->cfg.depth : 0);
    dc->first_block = first;
    dc->block_weights = w;
    cli_distill_weights_apply(&q.kd, dc);
    o.cfg.teacher = teacher;
    o.cfg.unsupervised = q.unsupervised;
    o.cfg.val = val;
    o.cfg.frozen_zero = plan.mask;
    if (st == GSQ_OK) {
        if (q.resume) st = gsq_trainer_resume(&t, q.resume, &o.cfg, train->size, &err);
        else st = gsq_trainer_init(&t, student, &o.cfg, train->size, &err);
        student = NULL;
    }
    if (st == GSQ_OK && q.resume && !gsq_vit_quant_active(t.model))
        st = gsq_fail(&err, GSQ_ERR_ARG, "%s is not a checkpoint of gpusq quantize (it has no quantizers)", q.resume);
    if (st == GSQ_OK && q.resume && gsq_vit_quant_mode(t.model) != q.mode)
        st = gsq_fail(&err, GSQ_ERR_ARG, "%s was written by a --mode %s run; this run has --mode %s", q.resume,
                      gsq_quant_mode_name(gsq_vit_quant_mode(t.model)), gsq_quant_mode_name(q.mode));
    int had_attention = st == GSQ_OK && gsq_vit_quant_attention_scales(t.model, 0) != NULL;
    int had_lsq = st == GSQ_OK && gsq_vit_quant_lsq_size(t.model) > 0;
    if (st == GSQ_OK && q.resume && (had_attention != q.attention || had_lsq != q.lsq))
        st = gsq_fail(&err, GSQ_ERR_ARG, "%s was written by a run %s --attention and %s learned scales; this run is "
                      "%s --attention and %s them (give the same options)", q.resume, had_attention ? "with" : "without",
                      had_lsq ? "with" : "without", q.attention ? "with" : "without", q.lsq ? "with" : "without");
    if (st == GSQ_OK) st = cli_train_run(&o, &t, train, q.teacher, &res, &err);
    gsq_compressed_info info = {0};
    if (st == GSQ_OK && res.finished) {
        acc[2] = res.eval;
        if (!val) st = gsq_evaluate(t.model, eval_ds, &o.cfg.transform, batch, workers, &acc[2], &err);
        if (st == GSQ_OK) st = gsq_compressed_save(t.model, pattern, o.out, &info, &err);
        size_t fp32 = t.model->num_params * sizeof(float);
        if (st == GSQ_OK) {
            printf("compressed model in %s: %zu parameter bytes, %.2fx smaller than FP32 (%d sparse GEMMs, %d dense);\n"
                   "  GEMM weights with position metadata %.2fx smaller (the paper's accounting)\n",
                   o.out, info.param_bytes, (double)fp32 / (double)info.param_bytes, info.sparse_linears,
                   info.dense_linears, 4.0 * (double)info.gemm_weights / (double)info.gemm_weight_bytes);
            printf("\n%s %s%s, calibration %s%s, feature weights %s:\n", gsq_quant_mode_name(q.mode),
                   gsq_sparse_pattern_name(pattern), q.attention ? " with quantized attention matmuls" : "",
                   gsq_calib_name(q.calib), q.lsq ? " then learned (LSQ)" : "", q.uniform ? "uniform" : "from stage 1");
            for (int l = first; l < t.model->cfg.depth; l++) printf("  w_%d = %.4f\n", l, (double)w[l]);
            print_acc("sparse float (teacher)", &acc[0]);
            print_acc("calibrated, before QAT", &acc[1]);
            print_acc("after QAT", &acc[2]);
        }
        if (st == GSQ_OK && q.report)
            st = write_report(q.report, &q, pattern, acc, &info, fp32, w, first, t.model->cfg.depth, res.seconds, &err);
    }
    gsq_trainer_free(&t);
    gsq_vit_free(student);
    gsq_vit_free(teacher);
    gsq_sparse_plan_free(&plan);
    free(w);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (res.interrupted ? 130 : 0) : cli_report("quantize", &err);
}
