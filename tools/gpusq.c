/* gpusq: the command-line program. Dispatches to one subcommand per file (tools/cmd_*.c) and
 * turns library statuses into one-line messages and exit codes (0 ok, 1 failure, 2 usage). */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gpusq/compressed.h"
#include "gpusq/safetensors.h"
#include "gpusq/swin.h"
#include "gpusq/vit.h"

static const gsq_command commands[] = {
    {"info", "print a model's architecture, parameter count, FLOPs and memory", cmd_info},
    {"train", "train or fine-tune a classifier or a segmenter (ViT/DeiT, Swin) on synthetic or your data", cmd_train},
    {"eval", "top-1, top-5 and loss (a segmenter's mIoU) of a model on a dataset", cmd_eval},
    {"predict", "top-5 classes (a segmenter's class maps) of a model for image files", cmd_predict},
    {"prune", "stage 1: 2:4 / 4:8 sparsity fine-tuned with distillation from the dense model", cmd_prune},
    {"quantize", "stage 2: INT8/INT4 quantization-aware fine-tuning; writes the compressed model", cmd_quantize},
    {"compress", "dense → prune → quantize → INT8 and INT4 compressed models and the report", cmd_compress},
    {"run", "evaluate a dataset or predict images with a compressed model on the engine (CPU or GPU)", cmd_run},
    {"export", "write a model (dense, sparse or compressed) as ONNX for TensorRT or ONNX Runtime", cmd_export},
    {"bench", "latency and throughput: dense FP32, dense INT8 and sparse INT8 of one model", cmd_bench},
    {"dataset", "write the synthetic segmentation set in the ADE20K layout", cmd_dataset},
};
#define NUM_COMMANDS (int)(sizeof commands / sizeof commands[0])

int cli_report(const char *cmd, const gsq_error *err)
{
    const gsq_comm *c = cli_comm();
    char who[32] = "", line[GSQ_ERROR_MSG_MAX + 64];
    if (c->size > 1) snprintf(who, sizeof who, " (rank %d)", c->rank);
    snprintf(line, sizeof line, "gpusq %s%s: %s\n", cmd, who, err->msg[0] ? err->msg : gsq_status_name(err->code));
    cli_error_message(line);
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char what[GSQ_ERROR_MSG_MAX], line[GSQ_ERROR_MSG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "gpusq %s: %s (see `gpusq %s --help`)\n", cmd, what, cmd);
    cli_error_message(line);
    return 2;
}

static const cli_option model_options[] = {
    {CLI_OPT("--heads", "N", CLI_INT, offsetof(cli_model_hints, heads), "a ViT's attention heads, when the file does "
     "not say and embed_dim is not a multiple of timm's head_dim 64"), .lo = 1, .hi = 4096, .shown_default = ""},
    {CLI_OPT("--input-size", "N", CLI_INT, offsetof(cli_model_hints, input_size), "a Swin's input side, when the file "
     "does not say and it is not timm's (the last stage's grid one window); with train --model, the named "
     "configuration's input side (a ViT's patch grid and position table grow with it)"), .lo = 1, .hi = 8192,
     .shown_default = ""},
};

cli_group cli_model_group(cli_model_hints *h) { return CLI_GROUP("model file", model_options, h); }

/* A timm or gpusq weights file, its architecture inferred with the hints; loading checks every
 * tensor against it. */
static gsq_status load_weights(const gsq_st_file *f, const cli_model_hints *hints, gsq_model **out, gsq_error *err)
{
    int heads = hints ? hints->heads : 0, input_size = hints ? hints->input_size : 0;
    if (gsq_file_arch(f) == GSQ_ARCH_SWIN) { /* heads are in Swin's bias tables */
        gsq_swin_config sc;
        gsq_status st = gsq_swin_infer_config(f, input_size, &sc, err);
        return st == GSQ_OK ? gsq_swin_load_open(out, f, &sc, NULL, err) : st;
    }
    gsq_vit_config vc;
    gsq_status st = gsq_vit_infer_config(f, heads, &vc, err);
    return st == GSQ_OK ? gsq_vit_load_open(out, f, &vc, NULL, err) : st;
}

gsq_status cli_load_weights(const char *path, const cli_model_hints *hints, gsq_model **out, gsq_error *err)
{
    *out = NULL;
    gsq_st_file *f = NULL;
    gsq_status st = gsq_st_open(&f, path, err);
    if (st == GSQ_OK) st = load_weights(f, hints, out, err);
    gsq_st_close(f);
    return st;
}

gsq_status cli_create_named(const char *name, int classes, int input_size, gsq_model **out, gsq_error *err)
{
    gsq_status st = gsq_model_create_named(out, name, classes, err);
    if (st != GSQ_OK || !input_size || input_size == gsq_model_input_size(*out)) return st;
    gsq_model *named = *out;
    *out = NULL;
    if (gsq_model_arch(named) == GSQ_ARCH_SWIN) {
        gsq_swin_config c = *gsq_model_swin_config(named);
        c.img_size = input_size;
        st = gsq_swin_create(out, &c, err);
    } else {
        gsq_vit_config c = *gsq_model_vit_config(named);
        c.img_size = input_size;
        st = gsq_vit_create(out, &c, err);
    }
    gsq_model_free(named);
    return st;
}

gsq_status cli_load_model(const char *path, const cli_model_hints *hints, gsq_model **out, gsq_compressed_info *info,
                          gsq_error *err)
{
    *out = NULL;
    gsq_st_file *f = NULL;
    gsq_status st = gsq_st_open(&f, path, err);
    const char *kind = st == GSQ_OK ? gsq_st_meta_get(f, "gpusq.kind") : NULL;
    if (info) memset(info, 0, sizeof *info);
    if (kind && strcmp(kind, "compressed") == 0) /* runs as its fake-quantized twin */
        st = gsq_compressed_load_open(out, f, info, err);
    else if (st == GSQ_OK)
        st = load_weights(f, hints, out, err);
    gsq_st_close(f);
    return st;
}

const cli_choice cli_devices[] = {{"cpu", GSQ_ENGINE_CPU}, {"cuda", GSQ_ENGINE_CUDA}, {NULL, 0}};
const cli_choice cli_patterns[] = {{"2:4", GSQ_SPARSE_2_4}, {"4:8", GSQ_SPARSE_4_8}, {NULL, 0}};
const cli_choice cli_modes[] = {{"int8", GSQ_QMODE_INT8}, {"int4", GSQ_QMODE_INT4}, {"w4a8", GSQ_QMODE_W4A8}, {NULL, 0}};

void cli_engine_where(gsq_engine_device device, char *buf, size_t cap)
{
    char name[256] = "no device";
    if (device == GSQ_ENGINE_CPU) {
        snprintf(buf, cap, "%s kernels on the CPU", gsq_engine_isa());
        return;
    }
    if (gsq_engine_gpu_name(name, sizeof name, NULL) != GSQ_OK) snprintf(name, sizeof name, "no device");
    snprintf(buf, cap, "CUDA on %s", name);
}

int cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: gpusq COMMAND [ARGS...]\n\n"
                 "Compress vision transformers with 2:4 sparsity and quantization, and run them.\n\n"
                 "commands:\n");
    for (int i = 0; i < NUM_COMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`gpusq COMMAND --help` describes a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (cli_is_help(argv[1])) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("gpusq 0.1.0\n");
        return 0;
    }
    for (int i = 0; i < NUM_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        int code = cli_comm_start(argv[1], &argc, &argv);
        return code >= 0 ? code : cli_comm_end(commands[i].run(argc - 1, argv + 1));
    }
    fprintf(stderr, "gpusq: unknown command '%s' (see `gpusq --help`)\n", argv[1]);
    return 2;
}
