/* The quantizers' state in a training checkpoint (include/gpusq/vit_quant.h): the mode, the
 * calibrated or learned activation scales, held weight scales and attention scales, as "quant."
 * tensors and metadata beside the weights, and restored from them, so that stage 2 resumes bit
 * for bit (the optimizer's moments of learned scales are the trainer's, like the weights'). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "vit_quant_state.h"
#include "models/model_state.h"

gsq_status gsq_model_quant_add_to_writer(const gsq_model *m, gsq_st_writer *w, gsq_error *err)
{
    const struct gsq_model_quant *q = m->quant;
    if (!q) return GSQ_OK;
    char name[GSQ_NAME_MAX + 32], num[32];
    gsq_status st = gsq_st_writer_set_meta(w, "quant.mode", gsq_quant_mode_name(q->mode), err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "quant.weight_calibration", gsq_calib_name(q->weight_calib), err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "quant.attention", q->attn ? "1" : "0", err);
    snprintf(num, sizeof num, "%.9g", q->lsq ? (double)q->lsq->lr_scale : 0.0);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "quant.lsq", num, err);
    int64_t one[1] = {1}, three[1] = {3};
    for (int i = 0; st == GSQ_OK && i < q->num_linears; i++) {
        const gsq_qlinear *ql = &q->linears[i];
        if (!ql->quantized) continue;
        gsq_quant_tensor_name(name, sizeof name, m->graph->linears[i].name, "input_scale");
        st = gsq_st_writer_add(w, name, GSQ_DT_F32, 1, one, ql->a_scale, err);
        int64_t rows[1] = {ql->rows};
        /* the weight scales only where held: recomputed from the weights otherwise */
        gsq_quant_tensor_name(name, sizeof name, m->graph->linears[i].name, "weight_scale");
        if (st == GSQ_OK && ql->fixed_scales)
            st = gsq_st_writer_add(w, name, GSQ_DT_F32, 1, rows, ql->w_scales, err);
    }
    for (int l = 0; st == GSQ_OK && q->attn && l < m->graph->num_attentions; l++) {
        gsq_quant_tensor_name(name, sizeof name, gsq_graph_attention_qkv(m->graph, l), "output_scale");
        st = gsq_st_writer_add(w, name, GSQ_DT_F32, 1, three, q->attn[l].qkv_scale, err);
    }
    return st;
}

/* Reads the tensor `name` of n values into dst (gsq_st_read_f32 checks its size and dtype); an
 * error naming it when it is absent. */
static gsq_status read_exact(const gsq_st_file *f, const char *name, float *dst, size_t n, gsq_error *err)
{
    const gsq_st_tensor *t = gsq_st_find(f, name);
    if (!t) return gsq_fail(err, GSQ_ERR_MISSING, "%s: checkpoint tensor '%s' is missing", gsq_st_label(f), name);
    return gsq_st_read_f32(f, t, dst, n, err);
}

gsq_status gsq_model_quant_restore(gsq_model *m, const gsq_st_file *f, gsq_error *err)
{
    const char *mode_s = gsq_st_meta_get(f, "quant.mode"), *calib_s = gsq_st_meta_get(f, "quant.weight_calibration");
    const char *attn = gsq_st_meta_get(f, "quant.attention"), *lsq_s = gsq_st_meta_get(f, "quant.lsq");
    if (!mode_s) return GSQ_OK; /* a checkpoint of a model without quantizers */
    gsq_quant_mode mode;
    gsq_calib_method calib;
    char *end = NULL;
    double lr_scale = lsq_s ? strtod(lsq_s, &end) : -1;
    int ok = gsq_quant_mode_parse(mode_s, &mode, NULL) == GSQ_OK && calib_s &&
             gsq_calib_parse(calib_s, &calib, NULL) == GSQ_OK && attn && (!strcmp(attn, "0") || !strcmp(attn, "1")) &&
             lsq_s && end != lsq_s && !*end && lr_scale >= 0;
    if (!ok)
        return gsq_fail(err, GSQ_ERR_FORMAT, "%s: the checkpoint's quantizer metadata (quant.mode, "
                        "quant.weight_calibration, quant.attention, quant.lsq) is incomplete or invalid",
                        gsq_st_label(f));
    gsq_status st = gsq_model_quant_enable(m, mode, calib, err);
    if (st == GSQ_OK && !strcmp(attn, "1")) st = gsq_model_quant_enable_attention(m, err);
    if (st == GSQ_OK && lr_scale > 0) st = gsq_model_quant_enable_lsq(m, (float)lr_scale, err);
    struct gsq_model_quant *q = m->quant;
    char name[GSQ_NAME_MAX + 32];
    for (int l = 0; st == GSQ_OK && q->attn && l < m->graph->num_attentions; l++) {
        float scales[3];
        gsq_quant_tensor_name(name, sizeof name, gsq_graph_attention_qkv(m->graph, l), "output_scale");
        st = read_exact(f, name, scales, 3, err);
        if (st == GSQ_OK) st = gsq_model_quant_set_attention_scales(m, l, scales, err);
    }
    for (int i = 0; st == GSQ_OK && i < q->num_linears; i++) {
        gsq_qlinear *ql = &q->linears[i];
        if (!ql->quantized) continue;
        float a;
        gsq_quant_tensor_name(name, sizeof name, m->graph->linears[i].name, "input_scale");
        st = read_exact(f, name, &a, 1, err);
        if (st == GSQ_OK) st = gsq_model_quant_set_act_scale(m, i, a, err);
        gsq_quant_tensor_name(name, sizeof name, m->graph->linears[i].name, "weight_scale");
        if (st == GSQ_OK && gsq_st_find(f, name)) {
            float *scales = malloc((size_t)ql->rows * sizeof(float));
            st = scales ? read_exact(f, name, scales, (size_t)ql->rows, err)
                        : gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory", gsq_st_label(f));
            if (st == GSQ_OK) st = gsq_model_quant_fix_weight_scales(m, i, scales, err);
            free(scales);
        }
    }
    if (st != GSQ_OK) {
        gsq_model_quant_disable(m);
        if (err && !strstr(err->msg, gsq_st_label(f))) { /* a setter's message: name the file too */
            gsq_error inner = *err;
            gsq_fail(err, st, "%.200s: %s", gsq_st_label(f), inner.msg);
        }
    }
    return st;
}
