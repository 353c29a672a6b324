/* ONNX export (gsq_export_onnx) read back with protobuf-c, without Python: the model header
 * (IR version, opset, producer), the graph's input and output (symbolic or fixed batch), one
 * LayerNormalization per LayerNorm, exact GELU (Erf before opset 20, Gelu from it), the
 * metadata; for quantized models the Q/DQ the targets promise — int8 weight initializers equal to
 * the model's codes through per-row DequantizeLinear (axis 0), zero points 0 (TensorRT) or 128
 * uint8 (ONNX Runtime), every scale per tensor, q, k and v's pairs on the qkv GEMM's output for
 * TensorRT, the 4-bit range clipped, zero-valued attributes written (proto2) — Swin's windows as Gathers, and
 * the mask-transformer segmentation head's operators. Refusals: opsets outside 17..21, a negative batch,
 * uncalibrated quantizers, an unwritable path (an existing file left as it was). ONNX Runtime's
 * check of the numbers is tests/onnx_check.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/export.h"
#include "gpusq/graph.h"
#include "onnx.pb-c.h"
#include "quantized_model.h"
#include "test_util.h"

static char path[64];

static Onnx__ModelProto *export_and_read(const gsq_model *m, gsq_export_target target, int opset, int batch)
{
    gsq_error err = {0};
    gsq_export_options o;
    gsq_export_options_init(&o);
    o.target = target, o.opset = opset, o.batch = batch;
    CHECK(gsq_export_onnx(m, &o, path, &err) == GSQ_OK, "%s", err.msg);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    Onnx__ModelProto *model = got == (size_t)size ? onnx__model_proto__unpack(NULL, got, buf) : NULL;
    free(buf);
    CHECK(model != NULL, "the export does not parse as an ONNX ModelProto");
    return model;
}

static int count_ops(const Onnx__GraphProto *g, const char *op)
{
    int n = 0;
    for (size_t i = 0; i < g->n_node; i++) n += strcmp(g->node[i]->op_type, op) == 0;
    return n;
}

static const Onnx__TensorProto *initializer(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (strcmp(g->initializer[i]->name, name) == 0) return g->initializer[i];
    return NULL;
}

static const char *meta(const Onnx__ModelProto *m, const char *key)
{
    for (size_t i = 0; i < m->n_metadata_props; i++)
        if (strcmp(m->metadata_props[i]->key, key) == 0) return m->metadata_props[i]->value;
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *n, const char *name, int64_t missing)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i]->i;
    return missing;
}

static int graph_ops(const gsq_graph *g, gsq_op op)
{
    int n = 0;
    for (int i = 0; i < g->num_nodes; i++) n += g->nodes[i].op == op ? g->values[g->nodes[i].out].slices : 0;
    return n;
}

static void test_float_vit(void)
{
    gsq_vit_config c = {.img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 5, .embed_dim = 24, .depth = 2,
                        .num_heads = 3, .mlp_hidden = 48, .qkv_bias = 1, .class_token = 1, .distilled = 1,
                        .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f};
    gsq_model *m = NULL;
    gsq_error err = {0};
    CHECK(gsq_vit_create(&m, &c, &err) == GSQ_OK, "%s", err.msg);
    gsq_model_init(m, 1);
    char *names[5] = {"cat", "dog", "owl", "fox", "elk"};
    gsq_model_set_class_names(m, names, &err);
    for (int opset = 17; opset <= 21; opset += 3) {
        Onnx__ModelProto *p = export_and_read(m, GSQ_EXPORT_TENSORRT, opset, 0);
        if (!p) return;
        const Onnx__GraphProto *g = p->graph;
        CHECK(p->n_opset_import == 1 && p->opset_import[0]->version == opset, "opset");
        CHECK(p->ir_version == (opset <= 18 ? 8 : opset <= 20 ? 9 : 10), "IR version %ld", (long)p->ir_version);
        CHECK(strcmp(p->producer_name, "gpusq") == 0, "producer %s", p->producer_name);
        CHECK(g->n_input == 1 && strcmp(g->input[0]->name, "images") == 0, "input");
        const Onnx__TensorShapeProto *s = g->input[0]->type->tensor_type->shape;
        CHECK(s->n_dim == 4 && strcmp(s->dim[0]->dim_param, "batch") == 0 && s->dim[1]->dim_value == 3 &&
                  s->dim[3]->dim_value == 16, "input shape");
        CHECK(g->n_output == 1 && strcmp(g->output[0]->name, "logits") == 0, "output");
        int produced = 0;
        for (size_t i = 0; i < g->n_node; i++) produced += strcmp(g->node[i]->output[0], "logits") == 0;
        CHECK(produced == 1, "logits written by %d nodes", produced);
        CHECK(count_ops(g, "LayerNormalization") == graph_ops(gsq_model_graph(m), GSQ_OP_LAYERNORM),
              "%d LayerNormalization, %d LayerNorms", count_ops(g, "LayerNormalization"),
              graph_ops(gsq_model_graph(m), GSQ_OP_LAYERNORM));
        CHECK(count_ops(g, "Softmax") == c.depth && count_ops(g, "QuantizeLinear") == 0, "attention");
        CHECK(opset >= 20 ? count_ops(g, "Gelu") == c.depth && !count_ops(g, "Erf") : count_ops(g, "Erf") == c.depth,
              "GELU at opset %d", opset);
        const Onnx__TensorProto *w = initializer(g, "blocks.1.mlp.fc2.weight");
        CHECK(w && w->data_type == 1 && w->n_dims == 2 && w->dims[0] == 24 && w->dims[1] == 48 &&
                  w->raw_data.len == 24 * 48 * 4 &&
                  memcmp(w->raw_data.data, gsq_model_find_param(m, "blocks.1.mlp.fc2.weight")->offset +
                                               gsq_model_params_const(m), w->raw_data.len) == 0,
              "fc2's weight initializer");
        const char *classes = meta(p, "gpusq.class_names"), *mean = meta(p, "gpusq.mean");
        CHECK(classes && strcmp(classes, "cat\ndog\nowl\nfox\nelk") == 0, "class names");
        CHECK(mean && strcmp(mean, "0.485,0.456,0.406") == 0, "mean %s", mean ? mean : "missing");
        onnx__model_proto__free_unpacked(p, NULL);
    }
    Onnx__ModelProto *p = export_and_read(m, GSQ_EXPORT_ORT, 17, 4);
    CHECK(p && p->graph->input[0]->type->tensor_type->shape->dim[0]->dim_value == 4 &&
              p->graph->output[0]->type->tensor_type->shape->dim[0]->dim_value == 4, "a fixed batch");
    onnx__model_proto__free_unpacked(p, NULL);
    gsq_model_free(m);
}

/* Every compressed linear's weight: int8 codes equal to the model's, per-row DequantizeLinear
 * (axis 0); every QuantizeLinear's zero point as the target says. */
static void check_quantized(gsq_model *m, gsq_export_target target, int attention)
{
    Onnx__ModelProto *p = export_and_read(m, target, 17, 0);
    if (!p) return;
    const Onnx__GraphProto *g = p->graph;
    const gsq_graph *gg = gsq_model_graph(m);
    int ort = target == GSQ_EXPORT_ORT, linears = 0, act_qmax = gsq_quant_mode_act_bits(gsq_model_quant_mode(m)) == 8 ? 127 : 7;
    gsq_error err = {0};
    for (int i = 0; i < gg->num_linears; i++) {
        const gsq_linear *l = &gg->linears[i];
        if (!l->compressed) continue;
        linears++;
        char name[128];
        snprintf(name, sizeof name, "%s_quantized", gsq_model_tensor(m, l->weight)->name);
        const Onnx__TensorProto *w = initializer(g, name);
        int8_t *codes = malloc((size_t)l->rows * l->cols);
        float *scales = malloc((size_t)l->rows * sizeof *scales);
        gsq_model_quant_weight_codes(m, i, codes, scales, &err);
        CHECK(w && w->data_type == 3 && w->raw_data.len == (size_t)l->rows * l->cols &&
                  memcmp(w->raw_data.data, codes, w->raw_data.len) == 0, "%s: the model's codes", name);
        int dq = 0;
        for (size_t k = 0; k < g->n_node; k++) {
            const Onnx__NodeProto *n = g->node[k];
            if (strcmp(n->op_type, "DequantizeLinear") || strcmp(n->input[0], name)) continue;
            const Onnx__TensorProto *s = initializer(g, n->input[1]);
            dq++;
            int has = 0;
            for (size_t a = 0; a < n->n_attribute; a++) has |= !strcmp(n->attribute[a]->name, "axis") && n->attribute[a]->has_i;
            CHECK(has, "%s: axis 0 not written", name);
            CHECK(attr_int(n, "axis", 1) == 0 && s && s->n_dims == 1 && s->dims[0] == l->rows &&
                      memcmp(s->raw_data.data, scales, (size_t)l->rows * 4) == 0, "%s: per-row scales", name);
        }
        CHECK(dq == 1, "%s: %d DequantizeLinear", name, dq);
        free(codes);
        free(scales);
    }
    int clipped = 0;
    for (size_t k = 0; k < g->n_node; k++) {
        const Onnx__NodeProto *n = g->node[k];
        if (!strcmp(n->op_type, "Clip")) {
            const Onnx__TensorProto *hi = initializer(g, n->input[2]), *s = initializer(g, g->node[k + 1]->input[1]);
            clipped += hi && s && *(const float *)hi->raw_data.data == act_qmax * *(const float *)s->raw_data.data;
        }
        if (strcmp(n->op_type, "QuantizeLinear")) continue;
        const Onnx__TensorProto *zp = initializer(g, n->input[2]);
        int ok = zp && zp->data_type == (ort ? 2 : 3) && zp->raw_data.len > 0;
        for (size_t b = 0; ok && b < zp->raw_data.len; b++) ok = zp->raw_data.data[b] == (ort ? 128 : 0);
        CHECK(ok, "%s: zero point", n->output[0]);
        const Onnx__TensorProto *s = initializer(g, n->input[1]);
        CHECK(s && s->n_dims == 0 && zp->n_dims == 0, "%s: not one scale per tensor", n->output[0]);
    }
    /* a clipped pair before each linear and on q, k, v per attention; the probabilities' pair (in
     * [0, 1]) needs no clip; TensorRT's q, k, v pairs sit on three Slices of the qkv GEMM's output */
    int qkv = attention ? 3 * gg->num_attentions : 0;
    CHECK(clipped == linears + qkv, "%d clipped, %d linears", clipped, linears);
    CHECK(count_ops(g, "QuantizeLinear") == linears + qkv + (attention ? gg->num_attentions : 0), "%d QuantizeLinear",
          count_ops(g, "QuantizeLinear"));
    int sliced = 0; /* the Slices of qkv's output (pooling may have one of its own) */
    for (size_t k = 0; k < g->n_node; k++) sliced += !strcmp(g->node[k]->op_type, "Slice") && strstr(g->node[k]->output[0], "/sliced");
    CHECK(sliced == (ort ? 0 : qkv), "%d Slices of qkv", sliced);
    const char *q = meta(p, "gpusq.quantization");
    CHECK(q && strstr(q, attention ? "attention quantized" : "attention float"), "%s", q ? q : "no quantization");
    onnx__model_proto__free_unpacked(p, NULL);
}

static void test_quantized(void)
{
    float x[4 * 3 * 16 * 16];
    gsq_model *m = gsq_test_quantized_model(48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 1, x, 4);
    check_quantized(m, GSQ_EXPORT_TENSORRT, 1);
    check_quantized(m, GSQ_EXPORT_ORT, 1);
    gsq_model_free(m);
    m = gsq_test_quantized_swin(48, GSQ_SPARSE_4_8, GSQ_QMODE_INT4, 0, x, 4);
    check_quantized(m, GSQ_EXPORT_TENSORRT, 0);
    check_quantized(m, GSQ_EXPORT_ORT, 0);
    gsq_model_free(m);
}

/* Swin: the windows, their reverse and the merges are constant Gathers; the grid of 8 in windows
 * of 4 needs no padding, so no Pad; the shifted blocks' mask is one constant per window. */
static void test_swin(void)
{
    float x[2 * 3 * 16 * 16];
    gsq_model *m = gsq_test_quantized_swin(48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 0, x, 2);
    gsq_model_quant_disable(m);
    Onnx__ModelProto *p = export_and_read(m, GSQ_EXPORT_TENSORRT, 17, 0);
    if (!p) return;
    const gsq_graph *g = gsq_model_graph(m);
    int windows = graph_ops(g, GSQ_OP_WINDOW) + graph_ops(g, GSQ_OP_UNWINDOW) + graph_ops(g, GSQ_OP_MERGE);
    /* a Gather per rearrangement, three (q, k, v) per attention */
    CHECK(count_ops(p->graph, "Gather") == windows + 3 * g->num_attentions, "%d Gathers", count_ops(p->graph, "Gather"));
    CHECK(count_ops(p->graph, "Pad") == 0, "padding where none is needed");
    const Onnx__TensorProto *mask = initializer(p->graph, "layers.0.blocks.1.attn/bias");
    CHECK(mask && mask->n_dims == 4 && mask->dims[0] == 4 && mask->dims[1] == 3, "the shifted block's bias and mask");
    const char *arch = meta(p, "gpusq.architecture");
    CHECK(arch && strcmp(arch, "swin") == 0, "architecture");
    onnx__model_proto__free_unpacked(p, NULL);
    gsq_model_free(m);
}

/* A segmenter with the mask-transformer head: the logits (batch, grid², classes); the class
 * embeddings Expanded over the batch and Concatenated before the patches, each side's rows over
 * their L2 norm (ReduceL2 with its axes an attribute, then from opset 18 an input, floored by a
 * Max), the masks a MatMul with the classes' Transpose. */
static void test_mask_head(void)
{
    gsq_vit_config c = {.img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 5, .embed_dim = 24, .depth = 1,
                        .num_heads = 3, .mlp_hidden = 48, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN,
                        .ln_eps = 1e-6f, .task = GSQ_TASK_SEGMENT, .seg_head = GSQ_SEG_HEAD_MASK};
    gsq_model *m = NULL;
    gsq_error err = {0};
    CHECK(gsq_vit_create(&m, &c, &err) == GSQ_OK, "%s", err.msg);
    gsq_model_init(m, 2);
    for (int opset = 17; opset <= 18; opset++) {
        Onnx__ModelProto *p = export_and_read(m, GSQ_EXPORT_TENSORRT, opset, 0);
        if (!p) return;
        const Onnx__GraphProto *g = p->graph;
        const Onnx__TensorShapeProto *s = g->output[0]->type->tensor_type->shape;
        CHECK(s->n_dim == 3 && s->dim[1]->dim_value == 16 && s->dim[2]->dim_value == 5, "logits (batch, 16, 5)");
        CHECK(count_ops(g, "ReduceL2") == 2 && count_ops(g, "Max") == 2, "L2 norms");
        CHECK(count_ops(g, "Expand") == 2 && count_ops(g, "Softmax") == 3, "class token and embeddings, 3 attentions");
        int axes_input = 0;
        for (size_t i = 0; i < g->n_node; i++)
            if (!strcmp(g->node[i]->op_type, "ReduceL2")) axes_input += g->node[i]->n_input == 2;
        CHECK(axes_input == (opset >= 18 ? 2 : 0), "opset %d: ReduceL2's axes as %s", opset,
              opset >= 18 ? "an input" : "an attribute");
        const Onnx__TensorProto *emb = initializer(g, "decode_head.cls_emb");
        CHECK(emb && emb->n_dims == 3 && emb->dims[1] == 5 && emb->dims[2] == 24, "the class embeddings");
        onnx__model_proto__free_unpacked(p, NULL);
    }
    gsq_model_free(m);
}

static void test_refusals(void)
{
    gsq_error err = {0};
    float x[2 * 3 * 16 * 16];
    gsq_model *m = gsq_test_quantized_model(48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 0, x, 2);
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);
    gsq_export_options o;
    gsq_export_options_init(&o);
    o.opset = 16;
    CHECK(gsq_export_onnx(m, &o, path, &err) == GSQ_ERR_ARG && strstr(err.msg, "opset 16"), "%s", err.msg);
    o.opset = 22;
    CHECK(gsq_export_onnx(m, &o, path, &err) == GSQ_ERR_ARG, "opset 22");
    o.opset = 17;
    o.batch = -1;
    CHECK(gsq_export_onnx(m, &o, path, &err) == GSQ_ERR_ARG, "batch -1");
    o.batch = 0;
    CHECK(gsq_export_onnx(m, &o, "/nonexistent-dir/x.onnx", &err) == GSQ_ERR_IO, "an unwritable path: %s", err.msg);
    gsq_model_quant_enable(m, GSQ_QMODE_INT8, GSQ_CALIB_MAX, &err); /* scales not calibrated */
    CHECK(gsq_export_onnx(m, &o, path, &err) == GSQ_ERR_ARG && strstr(err.msg, "calibrated"), "%s", err.msg);
    char kept[8] = "";
    f = fopen(path, "r");
    CHECK(f && fgets(kept, sizeof kept, f) && strcmp(kept, "old") == 0, "the existing file was changed");
    if (f) fclose(f);
    gsq_model_free(m);
}

int main(void)
{
    snprintf(path, sizeof path, "/tmp/gsq_test_export_%d.onnx", (int)getpid());
    test_float_vit();
    test_quantized();
    test_swin();
    test_mask_head();
    test_refusals();
    unlink(path);
    return test_finish("test_export");
}
