/* gpusq quantize: stage 2 of GPUSQ-ViT. From the stage-1 sparse model: attach INT8/INT4
 * quantizers to every GEMM, calibrate the activation scales, fine-tune with the masks frozen
 * (quantization-aware, distilling from the sparse float model with per-block feature weights
 * derived from stage 1's losses), and write the compressed model file and a report. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "gpusq/compressed.h"
#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "text.h"

static const cli_choice calibrations[] = {{"max", GSQ_CALIB_MAX}, {"percentile", GSQ_CALIB_PERCENTILE},
                                          {"mse", GSQ_CALIB_MSE}, {"entropy", GSQ_CALIB_ENTROPY}, {NULL, 0}};
static const cli_choice weight_calibrations[] = {{"max", GSQ_CALIB_MAX}, {"mse", GSQ_CALIB_MSE}, {NULL, 0}};
#define Q(member) offsetof(cli_quantize_opts, member)
static const cli_option quant_options[] = {
    {CLI_OPT("--teacher", "FILE", CLI_STRING, Q(teacher), "the sparse float model from gpusq prune (also the starting "
     "point)")},
    {CLI_OPT("--mode", "M", CLI_CHOICE, Q(q.mode), "int8 (W8A8), int4 (W4A4) or w4a8"), .choices = cli_modes},
    {CLI_OPT("--calib", "C", CLI_CHOICE, Q(q.calib), "activation calibration: max, percentile, mse or entropy"),
     .choices = calibrations, .shown_default = "percentile for 8-bit activations, mse for 4-bit"},
    {CLI_OPT("--percentile", "P", CLI_FLOAT, Q(q.percentile), "for --calib percentile"), .lo = 1e-3, .hi = 100},
    {CLI_OPT("--weight-calib", "C", CLI_CHOICE, Q(q.weight_calib), "per-row weight scales: max or mse"),
     .choices = weight_calibrations},
    {CLI_OPT("--calib-batches", "N", CLI_INT, Q(q.calib_batches), "batches observed for calibration"), .lo = 1, .hi = 1 << 20},
    {CLI_OPT("--attention", NULL, CLI_FLAG, Q(q.attention), "also quantize the attention matmuls' inputs (Q, K, V, the "
     "softmax output)"), .set = 1},
    {CLI_OPT("--lsq", NULL, CLI_FLAG, Q(q.lsq), "learn the linears' activation and weight scales (LSQ) instead of holding "
     "them to calibration; Q, K and V scales stay calibrated"), .set = 1, .shown_default = "with --mode int4"},
    {CLI_OPT("--no-lsq", NULL, CLI_FLAG, Q(q.lsq), "hold every scale to calibration"), .set = 0},
    {CLI_OPT("--lsq-lr", "F", CLI_FLOAT, Q(q.lsq_lr), "the scales' learning rate as a multiple of --lr"), .lo = 1e-6,
     .hi = 1e6},
    {CLI_OPT("--uniform-weights", NULL, CLI_FLAG, Q(q.uniform_weights), "feature weights w_l = 1 instead of stage 1's "
     "sparse-distillation-aware ones"), .set = 1},
    {CLI_OPT("--resume", "FILE", CLI_STRING, Q(q.resume), "continue the QAT that wrote this checkpoint (same options): the "
     "quantizers' scales come from it, nothing is calibrated again")},
    {CLI_OPT("--report", "FILE", CLI_STRING, Q(report), "also write the report as JSON")},
};
#undef Q

static const cli_spec spec = {
    .name = "quantize",
    .usage = "--teacher SPARSE.safetensors [options]",
    .about = "Quantization-aware fine-tuning of a gpusq prune output; writes the compressed model file.",
    .notes = "The defaults shown are --mode int8's; with 4-bit weights (int4, w4a8) --epochs is 2 and --lr 5e-4 unless "
    "given, and int4 also calibrates with mse and learns its scales (--lsq). Ctrl-C writes a checkpoint (see "
    "--checkpoint).",
};

/* One accuracy line; NaN: not measured here (a resumed run does not calibrate again). */
static void print_acc(const char *what, const gsq_eval_result *r)
{
    char words[160];
    if (isnan(gsq_eval_score(r))) printf("  %-26s not measured (a resumed run)\n", what);
    else printf("  %-26s %s\n", what, cli_eval_text(r, 6, words, sizeof words));
}

/* Block l's output value: "blocks.3", "layers.1.blocks.0". */
static const char *block_name(const gsq_graph *g, int l)
{
    return g->values[g->blocks[l]].name;
}

static gsq_status write_report(const char *path, const gsq_qat_config *q, const gsq_qat_result *r,
                               const gsq_compressed_info *info, size_t fp32_bytes, const gsq_graph *g, gsq_error *err)
{
    int depth = g->num_blocks;
    gsq_sparse_pattern pattern = r->pattern;
    const gsq_eval_result acc[3] = {r->sparse_float, r->calibrated, r->qat};
    const float *w = r->block_weights;
    int first = r->first_block;
    double seconds = r->run.seconds;
    cli_text t = {0};
    cli_put(&t,
            "{\n  \"mode\": \"%s\",\n  \"pattern\": \"%s\",\n  \"calibration\": \"%s\",\n"
            "  \"weight_calibration\": \"%s\",\n  \"feature_weights\": \"%s\",\n  \"attention\": %s,\n"
            "  \"lsq\": %s,\n  \"lsq_lr\": %g,\n  \"accuracy\": {\n",
            gsq_quant_mode_name(q->mode), gsq_sparse_pattern_name(pattern), gsq_calib_name(q->calib),
            gsq_calib_name(q->weight_calib), q->uniform_weights ? "uniform" : "stage1", q->attention ? "true" : "false",
            q->lsq ? "true" : "false", (double)q->lsq_lr);
    const char *names[3] = {"sparse_float", "calibrated", "qat"};
    for (int i = 0; i < 3; i++) {
        if (isnan(gsq_eval_score(&acc[i]))) { /* not measured */
            cli_put(&t, "    \"%s\": null%s\n", names[i], i < 2 ? "," : "");
            continue;
        }
        cli_put(&t, "    \"%s\": {", names[i]);
        cli_eval_json(&t, &acc[i]);
        cli_put(&t, "}%s\n", i < 2 ? "," : "");
    }
    cli_put(&t, "  },\n  \"w_l\": {");
    for (int l = first; l < depth; l++) cli_put(&t, "%s\"%s\": %.6f", l > first ? ", " : "", block_name(g, l), (double)w[l]);
    cli_put(&t,
            "},\n  \"param_bytes\": %zu,\n  \"fp32_param_bytes\": %zu,\n  \"gemm_weights\": %zu,\n"
            "  \"gemm_weight_bytes\": %zu,\n  \"sparse_gemms\": %d,\n  \"dense_gemms\": %d,\n  \"qat_seconds\": %.1f\n}\n",
            info->param_bytes, fp32_bytes, info->gemm_weights, info->gemm_weight_bytes, info->sparse_linears,
            info->dense_linears, seconds);
    return cli_text_write(&t, path, err);
}

gsq_status cli_quantize_run(cli_train_opts *o, const cli_quantize_opts *q, gsq_model *teacher, gsq_sparse_pattern pattern,
                            const float *losses, gsq_dataset *train, gsq_dataset *val, gsq_qat_result *r,
                            gsq_compressed_info *info, gsq_error *err)
{
    gsq_status st = cli_train_begin(o, train, q->teacher, err);
    if (st == GSQ_OK) {
        st = gsq_qat_stage(&q->q, teacher, pattern, losses, train, val, &o->cfg, r, err);
        cli_train_end(o, &r->trainer, &r->run, st);
    }
    if (st != GSQ_OK || !r->run.finished || !cli_writes()) return st; /* rank 0 writes for all */
    const gsq_graph *g = gsq_model_graph(teacher);
    st = gsq_compressed_save(r->trainer.model, pattern, o->out, info, err);
    size_t fp32 = gsq_model_num_params(r->trainer.model) * sizeof(float);
    if (st == GSQ_OK) {
        printf("compressed model in %s: %zu parameter bytes, %.2fx smaller than FP32 (%d sparse linears, %d dense);\n"
               "  linear weights with position metadata %.2fx smaller (the paper's accounting)\n",
               o->out, info->param_bytes, (double)fp32 / (double)info->param_bytes, info->sparse_linears,
               info->dense_linears, 4.0 * (double)info->gemm_weights / (double)info->gemm_weight_bytes);
        printf("\n%s %s%s, calibration %s%s, feature weights %s:\n", gsq_quant_mode_name(q->q.mode),
               gsq_sparse_pattern_name(pattern), q->q.attention ? " with quantized attention matmuls" : "",
               gsq_calib_name(q->q.calib), q->q.lsq ? " then learned (LSQ)" : "",
               q->q.uniform_weights ? "uniform" : "from stage 1");
        for (int l = r->first_block; l < g->num_blocks; l++)
            printf("  w(%s) = %.4f\n", block_name(g, l), (double)r->block_weights[l]);
        print_acc("sparse float (teacher)", &r->sparse_float);
        print_acc("calibrated, before QAT", &r->calibrated);
        print_acc("after QAT", &r->qat);
    }
    if (st == GSQ_OK && q->report) st = write_report(q->report, &q->q, r, info, fp32, g, err);
    cli_train_final_checkpoint("quantize", o, &r->trainer, st == GSQ_OK);
    return st;
}

/* The mode's defaults (gsq_qat_defaults) where the command line did not give a value. */
static void mode_defaults(cli_quantize_opts *q, cli_train_opts *o, const cli_parsed *given)
{
    gsq_train_config tuned;
    gsq_qat_config d;
    gsq_qat_defaults(&d, q->q.mode, &tuned);
    if (!cli_given(given, "--calib")) q->q.calib = d.calib;
    if (!cli_given(given, "--lsq") && !cli_given(given, "--no-lsq")) q->q.lsq = d.lsq;
    if (!cli_given(given, "--epochs")) o->cfg.epochs = tuned.epochs;
    if (!cli_given(given, "--lr")) o->cfg.optim.lr = tuned.optim.lr;
}

int cmd_quantize(int argc, char **argv)
{
    cli_quantize_opts q = {0};
    cli_train_opts o;
    cli_train_opts_init(&o, "model.gsq.safetensors");
    gsq_qat_defaults(&q.q, GSQ_QMODE_INT8, &o.cfg);
    const cli_group groups[] = {CLI_GROUP("quantization", quant_options, &q), cli_distill_group(&o, NULL),
                                cli_data_group(&o, "data", NULL), cli_training_group(&o, "training", NULL),
                                cli_output_group(&o)};
    cli_parsed parsed;
    int code = cli_parse(&spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    if (!q.teacher) return cli_usage_error("quantize", "--teacher SPARSE.safetensors is required");
    mode_defaults(&q, &o, &parsed);

    gsq_error err = {0};
    if (cli_train_outputs(&o, q.report, &err) != GSQ_OK) return cli_report("quantize", &err);
    gsq_model *teacher = NULL;
    gsq_dataset *train = NULL, *val = NULL;
    gsq_sparse_pattern pattern = GSQ_SPARSE_2_4;
    gsq_qat_result r = {0};
    gsq_compressed_info info = {0};
    float *losses = NULL;
    gsq_st_file *f = NULL; /* the stage-1 file, read once: the model and its metadata */
    gsq_status st = gsq_st_open(&f, q.teacher, &err);
    if (st == GSQ_OK) st = gsq_model_load_open(&teacher, f, NULL, &err);
    if (st == GSQ_OK && !(losses = calloc((size_t)gsq_model_depth(teacher), sizeof(float))))
        st = gsq_fail(&err, GSQ_ERR_NOMEM, "out of memory");
    if (st == GSQ_OK) st = gsq_stage1_read(f, gsq_model_depth(teacher), &pattern, losses, &err);
    gsq_st_close(f);
    if (st == GSQ_OK) {
        cli_train_opts_apply(&o, gsq_model_input_size(teacher), gsq_model_num_classes(teacher));
        st = cli_open_data(o.data, &o.sizes, &train, &val, &err);
    }
    if (st == GSQ_OK) st = cli_quantize_run(&o, &q, teacher, pattern, losses, train, val, &r, &info, &err);
    int interrupted = r.run.interrupted;
    gsq_qat_result_free(&r);
    gsq_model_free(teacher);
    free(losses);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (interrupted ? 130 : 0) : cli_report("quantize", &err);
}
