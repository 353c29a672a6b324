/* gpusq info: describe a model file or a named configuration (architecture, parameters, FLOPs,
 * memory), or list the named configurations. */
#include <stddef.h>
#include <stdio.h>

#include "cli.h"
#include "gpusq/graph.h"
#include "gpusq/swin.h"
#include "gpusq/vit.h"

typedef struct {
    const char *config;
    int list;
} info_opts;

#define I(member) offsetof(info_opts, member)
static const cli_option info_options[] = {
    {CLI_OPT("--config", "NAME", CLI_STRING, I(config), "describe a named configuration instead of a file")},
    {CLI_OPT("--list", NULL, CLI_FLAG, I(list), "list the named configurations"), .set = 1},
};
#undef I

static const cli_spec spec = {
    .name = "info",
    .usage = "MODEL.safetensors [--heads N] [--input-size N]\n--config NAME\n--list",
    .about = "Prints the architecture of a timm ViT/DeiT or Swin (inferred from the tensor shapes), its parameter count, forward "
    "FLOPs per image and memory; for a compressed file also its format and size.",
    .min_args = 0,
    .max_args = 1,
    .args_what = "",
};

/* The head line: a classifier's pooling, a segmenter's decode head or a detector's decoder. */
static void print_head(int classes, gsq_task task, gsq_seg_head head, const gsq_det_head *det, const char *pooling)
{
    if (task == GSQ_TASK_DETECT)
        printf("head           %d classes, detection: DETR decoder of %d layers, %d object queries\n", classes,
               det->layers, det->queries);
    else if (task == GSQ_TASK_SEGMENT)
        printf("head           %d classes, segmentation: %s decode head over the patch tokens\n", classes,
               head == GSQ_SEG_HEAD_MASK ? "mask transformer" : "linear");
    else
        printf("head           %d classes, %s pooling\n", classes, pooling);
}

static void print_vit(const gsq_vit_config *c)
{
    printf("architecture   %s, %d×%d input, %d channels, patch %d (%d tokens%s%s)\n",
           c->distilled ? "DeiT (distilled)" : "ViT", c->img_size, c->img_size, c->in_chans,
           c->patch_size, gsq_vit_tokens(c), c->class_token ? ", class token" : "",
           c->distilled ? ", distillation token" : "");
    printf("transformer    depth %d, embed_dim %d, heads %d (head_dim %d), mlp_hidden %d, qkv_bias %s\n",
           c->depth, c->embed_dim, c->num_heads, c->embed_dim / c->num_heads, c->mlp_hidden,
           c->qkv_bias ? "yes" : "no");
    print_head(c->num_classes, c->task, c->seg_head, &c->det, c->pool == GSQ_POOL_AVG ? "average" : "class-token");
}

static void print_swin(const gsq_swin_config *c)
{
    printf("architecture   Swin, %d×%d input, %d channels, patch %d, window %d\n", c->img_size, c->img_size,
           c->in_chans, c->patch_size, c->window);
    for (int s = 0; s < c->num_stages; s++)
        printf("stage %d        %d blocks on a %d×%d grid, width %d, heads %d, mlp_hidden %d, window %d%s\n", s,
               c->depths[s], gsq_swin_stage_grid(c, s), gsq_swin_stage_grid(c, s), c->dims[s], c->num_heads[s],
               c->mlp_hidden[s], gsq_swin_stage_window(c, s), gsq_swin_stage_shift(c, s) ? ", shifted" : "");
    print_head(c->num_classes, c->task, c->seg_head, NULL, "average");
}

static void print_model(const char *source, const gsq_model *m)
{
    gsq_graph_macs n = gsq_graph_count_macs(gsq_model_graph(m));
    double macs = n.linear + n.attention, mib = 1024.0 * 1024.0;
    size_t num_params = gsq_model_num_params(m);
    printf("model          %s\n", source);
    if (gsq_model_arch(m) == GSQ_ARCH_SWIN) print_swin(gsq_model_swin_config(m));
    else print_vit(gsq_model_vit_config(m));
    printf("parameters     %zu (%.2f M)\n", num_params, num_params / 1e6);
    printf("forward        %.3f GFLOPs per image (%.3f G multiply-accumulates)\n", 2 * macs / 1e9, macs / 1e9);
    printf("memory         weights %.2f MiB fp32; activations %.2f MiB per image (inference), "
           "%.2f MiB per image (training)\n",
           num_params * 4.0 / mib, gsq_model_activation_bytes(m, 1, 0) / mib, gsq_model_activation_bytes(m, 1, 1) / mib);
}

int cmd_info(int argc, char **argv)
{
    info_opts o = {0};
    cli_model_hints hints = {0};
    const cli_group groups[] = {CLI_GROUP("options", info_options, &o), cli_model_group(&hints)};
    cli_parsed parsed;
    int code = cli_parse(&spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    if (o.list) {
        for (const char *const *n = gsq_vit_config_names(); *n; n++) printf("%s\n", *n);
        for (const char *const *n = gsq_swin_config_names(); *n; n++) printf("%s\n", *n);
        return 0;
    }
    const char *path = parsed.num_args ? parsed.args[0] : NULL, *config = o.config;

    if (!path == !config) return cli_usage_error("info", "give a MODEL.safetensors file or --config NAME");
    if (config && (hints.heads || hints.input_size))
        return cli_usage_error("info", "--heads and --input-size go with a file; --config %s fixes them", config);

    gsq_error err = {0};
    gsq_model *m = NULL;
    if (config) {
        if (gsq_model_create_named(&m, config, 0, &err) != GSQ_OK) return cli_report("info", &err);
        print_model(config, m);
        gsq_model_free(m);
        return 0;
    }
    gsq_compressed_info info;
    if (cli_load_model(path, &hints, &m, &info, &err) != GSQ_OK) return cli_report("info", &err);
    print_model(path, m);
    if (info.param_bytes) /* a compressed file */
        printf("compressed     %s %s, %d sparse linears, %d dense; %zu parameter bytes, %.2f× smaller than FP32;\n"
               "               GEMM weights with position metadata %.2f× smaller (the paper's accounting)\n",
               gsq_quant_mode_name(info.mode), gsq_sparse_pattern_name(info.pattern), info.sparse_linears,
               info.dense_linears, info.param_bytes, 4.0 * (double)gsq_model_num_params(m) / (double)info.param_bytes,
               4.0 * (double)info.gemm_weights / (double)info.gemm_weight_bytes);
    gsq_model_free(m);
    return 0;
}
