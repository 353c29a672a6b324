/* gpusq export: a model file (dense, sparse or compressed) written as ONNX for TensorRT or ONNX
 * Runtime (gsq_export_onnx; docs/EXPORT.md says how to run the result). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpusq/atomic_file.h"
#include "gpusq/export.h"

typedef struct {
    const char *onnx, *batch;
    gsq_export_options e;
} export_opts;

/* "dynamic", or a batch size from 1 to 65536. */
static int batch_valid(const char *s)
{
    if (strcmp(s, "dynamic") == 0) return 1;
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= 1 && v <= 65536;
}

static const cli_choice targets[] = {{"tensorrt", GSQ_EXPORT_TENSORRT}, {"ort", GSQ_EXPORT_ORT}, {NULL, 0}};

#define E(member) offsetof(export_opts, member)
static const cli_option export_options[] = {
    {CLI_OPT("--onnx", "OUT.onnx", CLI_STRING, E(onnx), "the ONNX file to write (required)"), .shown_default = ""},
    {CLI_OPT("--target", "NAME", CLI_CHOICE, E(e.target), "tensorrt: symmetric int8 Q/DQ laid out for TensorRT's INT8 "
             "and sparse kernels; ort: uint8 activations that ONNX Runtime's x86 CPU runs as integer kernels"),
     .choices = targets},
    {CLI_OPT("--opset", "N", CLI_INT, E(e.opset), "the ONNX operator set (Gelu is one operator from 20)"), .lo = 17, .hi = 21},
    {CLI_OPT("--batch", "N|dynamic", CLI_STRING, E(batch), "the input's batch size, or a symbolic batch axis"),
     .valid = batch_valid, .accepted = "dynamic or a whole number from 1 to 65536"},
};
#undef E

static const cli_spec spec = {
    .name = "export",
    .usage = "MODEL.safetensors --onnx OUT.onnx [--target tensorrt|ort] [--opset N] [--batch N|dynamic] [--heads N] "
             "[--input-size N]",
    .about = "Writes a model as ONNX: a dense or sparse timm file as float, a compressed file "
    "(gpusq compress/quantize) with Q/DQ pairs from its own trained scales (int8 weights with per-row scales, pruned "
    "zeros kept; per-tensor activation scales). Input 'images' (batch, C, S, S) normalised as timm's eval transform, "
    "output 'logits'; the mean, std and class names are in the file's metadata.",
    .notes = "Run it: trtexec --onnx=OUT.onnx --int8 --sparsity=enable (TensorRT), or onnxruntime's InferenceSession "
    "(docs/EXPORT.md). Written atomically: an existing OUT.onnx is replaced only by a complete file.",
    .min_args = 1,
    .max_args = 1,
    .args_what = "a MODEL.safetensors",
};

int cmd_export(int argc, char **argv)
{
    export_opts o = {.batch = "dynamic"};
    gsq_export_options_init(&o.e);
    cli_model_hints hints = {0};
    const cli_group groups[] = {CLI_GROUP("options", export_options, &o), cli_model_group(&hints)};
    cli_parsed parsed;
    int code = cli_parse(&spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    if (!o.onnx) return cli_usage_error("export", "give the file to write with --onnx OUT.onnx");
    o.e.batch = strcmp(o.batch, "dynamic") == 0 ? 0 : atoi(o.batch);
    gsq_error err = {0};
    gsq_model *m = NULL;
    gsq_compressed_info info;
    gsq_status st = gsq_output_prepare(o.onnx, 0, &err);
    if (st == GSQ_OK) st = cli_load_model(parsed.args[0], &hints, &m, &info, &err);
    if (st == GSQ_OK) st = gsq_export_onnx(m, &o.e, o.onnx, &err);
    if (st == GSQ_OK) {
        char batch[32];
        snprintf(batch, sizeof batch, o.e.batch ? "%d" : "dynamic", o.e.batch);
        printf("wrote %s: opset %d, target %s, batch %s, ", o.onnx, o.e.opset, gsq_export_target_name(o.e.target), batch);
        if (gsq_model_quant_active(m))
            printf("%s Q/DQ (%d sparse %s GEMMs, attention %s)\n", gsq_quant_mode_name(info.mode), info.sparse_linears,
                   gsq_sparse_pattern_name(info.pattern), info.attention ? "quantized" : "float");
        else
            printf("float\n");
    }
    gsq_model_free(m);
    return st == GSQ_OK ? 0 : cli_report("export", &err);
}
