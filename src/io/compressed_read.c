/* Reading the compressed model file back into a fake-quantized ViT: every tensor's presence,
 * dtype and shape, every metadata nibble, INT4 code and scale is validated before use, and a
 * malformed file is an error that says what is wrong where (docs/FORMAT.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/compressed.h"
#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "io/compressed_codes.h"
#include "models/model_state.h"

/* The tensor `base.suffix` if it has dtype dt and shape (d0[, d1]) (ndim 0: a scalar); else an error. */
static gsq_status expect(const gsq_st_file *f, const char *base, const char *suffix, gsq_dtype dt, int ndim,
                         int64_t d0, int64_t d1, const gsq_st_tensor **out, gsq_error *err)
{
    char name[GSQ_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s.%s", base, suffix);
    const gsq_st_tensor *t = gsq_st_find(f, name);
    if (!t) return gsq_fail(err, GSQ_ERR_MISSING, "%s: tensor '%s' is missing", gsq_st_label(f), name);
    int ok = t->dtype == dt && t->ndim == ndim && (ndim < 1 || t->shape[0] == d0) && (ndim < 2 || t->shape[1] == d1);
    if (!ok)
        return gsq_fail(err, GSQ_ERR_SHAPE, "%s: tensor '%s' is %s with %d dimension(s) [%lld, %lld]; expected %s [%lld, %lld]",
                        gsq_st_label(f), name, gsq_dtype_name(t->dtype), t->ndim, (long long)(t->ndim > 0 ? t->shape[0] : 0),
                        (long long)(t->ndim > 1 ? t->shape[1] : 0), gsq_dtype_name(dt), (long long)d0, (long long)d1);
    *out = t;
    return GSQ_OK;
}

/* Code i of a stored row: INT8 as it is; INT4 sign-extended from its nibble. */
static int code_at(const uint8_t *row, size_t i, int four)
{
    if (!four) return (int8_t)row[i];
    int v = (row[i / 2] >> (4 * (i % 2))) & 0x0F;
    return v >= 8 ? v - 16 : v;
}

/* Decodes a stored GEMM's codes into dense int8 rows (zeros where pruned), checking every code
 * against ±qmax and every metadata nibble. */
static gsq_status decode_codes(const gsq_st_file *f, const char *base, const gsq_st_tensor *values,
                               const gsq_st_tensor *meta, int rows, int cols, int four, int qmax,
                               gsq_sparse_pattern pattern, int8_t *codes, gsq_error *err)
{
    const gsq_sparse_format *fmt = gsq_sparse_format_of(pattern);
    int unit = fmt->unit, group = fmt->group, groups = cols / group, words = gsq_sparse_meta_words(pattern, cols);
    size_t kept = meta ? (size_t)cols / 2 : (size_t)cols, bytes = four ? (kept + 1) / 2 : kept;
    for (int r = 0; r < rows; r++) {
        const uint8_t *vrow = (const uint8_t *)values->data + (size_t)r * bytes;
        int8_t *out = codes + (size_t)r * cols;
        for (size_t i = 0; i < kept; i++) {
            int c = code_at(vrow, i, four);
            if (c < -qmax || c > qmax)
                return gsq_fail(err, GSQ_ERR_FORMAT, "%s: %s row %d value %zu is %d, outside [-%d, %d]", gsq_st_label(f),
                                base, r, i, c, qmax, qmax);
        }
        if (!meta) {
            for (int c = 0; c < cols; c++) out[c] = (int8_t)code_at(vrow, (size_t)c, four);
            continue;
        }
        memset(out, 0, (size_t)cols);
        const uint8_t *mrow = (const uint8_t *)meta->data + (size_t)r * words * 2;
        for (int g = 0; g < words * 4; g++) {
            uint16_t word = (uint16_t)(mrow[2 * (g / 4)] | mrow[2 * (g / 4) + 1] << 8);
            int nib = (word >> (4 * (g % 4))) & 0xF, i0 = nib & 3, i1 = nib >> 2;
            if (g >= groups) {
                if (nib)
                    return gsq_fail(err, GSQ_ERR_FORMAT, "%s: %s row %d: metadata past the last group is not zero",
                                    gsq_st_label(f), base, r);
                continue;
            }
            if (i0 >= i1)
                return gsq_fail(err, GSQ_ERR_FORMAT,
                                "%s: %s row %d group %d: metadata indices %d, %d are not increasing", gsq_st_label(f),
                                base, r, g, i0, i1);
            for (int k = 0; k < 2; k++)
                for (int e = 0; e < unit; e++)
                    out[g * group + (k ? i1 : i0) * unit + e] =
                        (int8_t)code_at(vrow, (size_t)((g * 2 + k) * unit + e), four);
        }
    }
    return GSQ_OK;
}

/* GSQ_ERR_FORMAT, "FILE: BASE.SUFFIX UNIT k is x, not ...", for the first of n scales read from
 * the file that quantizing cannot use (gsq_quant_scale_ok). */
static gsq_status check_scales(const gsq_st_file *f, const char *base, const char *suffix, const char *unit,
                               const float *scales, int n, gsq_error *err)
{
    for (int k = 0; k < n; k++)
        if (!gsq_quant_scale_ok(scales[k]))
            return gsq_fail(err, GSQ_ERR_FORMAT, "%s: %s.%s %s %d is %g, not a normal positive number below 1e30",
                            gsq_st_label(f), base, suffix, unit, k, (double)scales[k]);
    return GSQ_OK;
}

/* The tensors of the stored compressed linear s, each checked for dtype and shape against m's table. */
typedef struct {
    char base[GSQ_NAME_MAX];
    const gsq_param *p;
    int rows, cols, sparse;
    const gsq_st_tensor *values, *meta, *scale, *in_scale;
} stored_linear;

static gsq_status find_linear(const gsq_model *m, const gsq_st_file *f, const gsq_compressed_info *info, int s,
                            stored_linear *g, gsq_error *err)
{
    int four = gsq_quant_mode_weight_bits(info->mode) == 4, group = gsq_sparse_group(info->pattern);
    char probe[GSQ_NAME_MAX + 16];
    const gsq_linear *lin = &m->graph->linears[s];
    snprintf(g->base, sizeof g->base, "%s", lin->name);
    g->p = &m->tensors[lin->weight];
    g->rows = lin->rows, g->cols = lin->cols;
    snprintf(probe, sizeof probe, "%s.values", g->base);
    g->sparse = gsq_st_find(f, probe) != NULL;
    if (g->sparse && g->cols % group)
        return gsq_fail(err, GSQ_ERR_FORMAT, "%s: %s is stored %s-sparse but its %d inputs are not a multiple of %d",
                        gsq_st_label(f), g->base, gsq_sparse_pattern_name(info->pattern), g->cols, group);
    size_t kept = g->sparse ? (size_t)g->cols / 2 : (size_t)g->cols, bytes = four ? (kept + 1) / 2 : kept;
    int words = gsq_sparse_meta_words(info->pattern, g->cols);
    g->meta = NULL;
    gsq_status st = expect(f, g->base, g->sparse ? "values" : "qweight", four ? GSQ_DT_U8 : GSQ_DT_I8, 2, g->rows,
                           (int64_t)bytes, &g->values, err);
    if (st == GSQ_OK && g->sparse) st = expect(f, g->base, "meta", GSQ_DT_U16, 2, g->rows, words, &g->meta, err);
    if (st == GSQ_OK) st = expect(f, g->base, "weight_scale", GSQ_DT_F32, 1, g->rows, 0, &g->scale, err);
    if (st == GSQ_OK) st = expect(f, g->base, "input_scale", GSQ_DT_F32, 0, 0, 0, &g->in_scale, err);
    return st;
}

gsq_status gsq_compressed_linear_codes(const gsq_model *m, const gsq_st_file *f, const gsq_compressed_info *info, int s,
                                     int8_t *codes, float *weight_scales, float *act_scale, int *sparse, gsq_error *err)
{
    stored_linear g;
    gsq_status st = find_linear(m, f, info, s, &g, err);
    if (st != GSQ_OK) return st;
    memcpy(weight_scales, g.scale->data, (size_t)g.rows * sizeof(float));
    memcpy(act_scale, g.in_scale->data, sizeof *act_scale);
    st = check_scales(f, g.base, "weight_scale", "row", weight_scales, g.rows, err);
    if (st == GSQ_OK) st = check_scales(f, g.base, "input_scale", "value", act_scale, 1, err);
    if (st != GSQ_OK) return st;
    *sparse = g.sparse;
    int bits = gsq_quant_mode_weight_bits(info->mode);
    return decode_codes(f, g.base, g.values, g.meta, g.rows, g.cols, bits == 4, gsq_quant_qmax(bits), info->pattern,
                        codes, err);
}

gsq_status gsq_compressed_attention_scales(const gsq_model *m, const gsq_st_file *f, int l, float scales[3],
                                           gsq_error *err)
{
    char base[64];
    const gsq_st_tensor *t;
    snprintf(base, sizeof base, "%s", gsq_graph_attention_qkv(m->graph, l));
    gsq_status st = expect(f, base, "output_scale", GSQ_DT_F32, 1, 3, 0, &t, err);
    if (st == GSQ_OK) memcpy(scales, t->data, 3 * sizeof(float));
    if (st == GSQ_OK) st = check_scales(f, base, "output_scale", "value", scales, 3, err);
    return st;
}

/* The weights of every compressed linear as the fake-quantized model holds them: the file's
 * scales fixed, the weights its codes times their row's scale. */
static gsq_status load_linears(gsq_model *m, const gsq_st_file *f, const gsq_compressed_info *info, gsq_error *err)
{
    const gsq_graph *gr = m->graph;
    size_t most = 0;
    for (int s = 0; s < gr->num_linears; s++) {
        size_t n = (size_t)gr->linears[s].rows * (size_t)gr->linears[s].cols;
        most = n > most ? n : most;
    }
    int8_t *codes = malloc(most ? most : 1);
    float *scales = malloc(most * sizeof(float) + sizeof(float)); /* rows ≤ numel */
    gsq_status st = codes && scales ? GSQ_OK : gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory", gsq_st_label(f));
    for (int s = 0; st == GSQ_OK && s < gr->num_linears; s++) {
        if (!gr->linears[s].compressed) continue;
        const gsq_param *p = &m->tensors[gr->linears[s].weight];
        int rows = gr->linears[s].rows, cols = gr->linears[s].cols, sparse;
        float act;
        st = gsq_compressed_linear_codes(m, f, info, s, codes, scales, &act, &sparse, err);
        if (st == GSQ_OK) st = gsq_model_quant_fix_weight_scales(m, s, scales, err);
        if (st == GSQ_OK) st = gsq_model_quant_set_act_scale(m, s, act, err);
        float *w = m->params + p->offset;
        for (int r = 0; st == GSQ_OK && r < rows; r++)
            for (int c = 0; c < cols; c++) w[(size_t)r * cols + c] = (float)codes[(size_t)r * cols + c] * scales[r];
    }
    free(codes);
    free(scales);
    return st;
}

/* Every parameter outside the compressed linears as F32 of its exact shape. */
static gsq_status check_float_tensors(const gsq_model *m, const gsq_st_file *f, const char *is_compressed, gsq_error *err)
{
    for (int i = 0; i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        if (is_compressed[i]) continue;
        const gsq_st_tensor *t = gsq_st_find(f, p->name);
        if (!t) return gsq_fail(err, GSQ_ERR_MISSING, "%s: tensor '%s' is missing", gsq_st_label(f), p->name);
        if (t->dtype != GSQ_DT_F32)
            return gsq_fail(err, GSQ_ERR_FORMAT, "%s: tensor '%s' is %s, the format stores F32", gsq_st_label(f), p->name,
                            gsq_dtype_name(t->dtype));
        int same = t->ndim == p->ndim && t->numel == p->numel;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) return gsq_fail(err, GSQ_ERR_SHAPE, "%s: tensor '%s' has the wrong shape", gsq_st_label(f), p->name);
    }
    return GSQ_OK;
}

gsq_status gsq_compressed_load(gsq_model **out, const char *path, gsq_compressed_info *info, gsq_error *err)
{
    *out = NULL;
    gsq_st_file *f = NULL;
    gsq_status st = gsq_st_open(&f, path, err);
    if (st == GSQ_OK) st = gsq_compressed_load_open(out, f, info, err);
    gsq_st_close(f);
    return st;
}

gsq_status gsq_compressed_describe(gsq_model **out, const gsq_st_file *f, gsq_compressed_info *info, gsq_error *err)
{
    *out = NULL;
    gsq_compressed_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    const char *path = gsq_st_label(f);
    gsq_status st = GSQ_OK;
    const char *kind = gsq_st_meta_get(f, "gpusq.kind"), *version = gsq_st_meta_get(f, "gpusq.format_version");
    const char *mode_s = gsq_st_meta_get(f, "quant.mode"), *pat_s = gsq_st_meta_get(f, "sparsity.pattern");
    char want[16];
    snprintf(want, sizeof want, "%d", GSQ_COMPRESSED_VERSION);
    if (!kind || strcmp(kind, "compressed"))
        st = gsq_fail(err, GSQ_ERR_FORMAT, "%s: not a gpusq compressed model (gpusq.kind is %s)", path,
                      kind ? kind : "missing");
    else if (!version || strcmp(version, want))
        st = gsq_fail(err, GSQ_ERR_UNSUPPORTED, "%s: compressed format version %.20s; this gpusq reads version %s", path,
                      version ? version : "(missing)", want);
    else if (!mode_s || gsq_quant_mode_parse(mode_s, &info->mode, err) != GSQ_OK)
        st = gsq_fail(err, GSQ_ERR_FORMAT, "%s: quant.mode %.20s is not int8, int4 or w4a8", path, mode_s ? mode_s : "missing");
    else if (!pat_s || gsq_sparse_pattern_parse(pat_s, &info->pattern, err) != GSQ_OK)
        st = gsq_fail(err, GSQ_ERR_FORMAT, "%s: sparsity.pattern %.20s is not 2:4 or 4:8", path, pat_s ? pat_s : "missing");
    gsq_model *m = NULL;
    char *is_compressed = NULL;
    if (st == GSQ_OK) st = gsq_model_describe_meta(&m, f, err);
    if (st == GSQ_OK && !(is_compressed = calloc((size_t)m->num_tensors, 1)))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory", path);
    for (int s = 0; st == GSQ_OK && s < m->graph->num_linears; s++)
        if (m->graph->linears[s].compressed) is_compressed[m->graph->linears[s].weight] = 1;
    const char *attn = gsq_st_meta_get(f, "quant.attention");
    info->attention = attn && !strcmp(attn, "1");
    if (st == GSQ_OK && (!attn || (strcmp(attn, "0") && strcmp(attn, "1"))))
        st = gsq_fail(err, GSQ_ERR_FORMAT, "%s: quant.attention is %.20s, not 0 or 1", path, attn ? attn : "missing");
    if (st == GSQ_OK) st = check_float_tensors(m, f, is_compressed, err);
    for (int s = 0; st == GSQ_OK && s < m->graph->num_linears; s++) {
        stored_linear g;
        if (!m->graph->linears[s].compressed) continue;
        st = find_linear(m, f, info, s, &g, err);
        if (st != GSQ_OK) break;
        *(g.sparse ? &info->sparse_linears : &info->dense_linears) += 1;
        info->gemm_weights += g.p->numel;
        info->gemm_weight_bytes += g.values->nbytes + (g.meta ? g.meta->nbytes : 0);
    }
    for (int l = 0; st == GSQ_OK && info->attention && l < m->graph->num_attentions; l++) {
        char base[64];
        const gsq_st_tensor *t;
        snprintf(base, sizeof base, "%s", gsq_graph_attention_qkv(m->graph, l));
        st = expect(f, base, "output_scale", GSQ_DT_F32, 1, 3, 0, &t, err);
    }
    if (st == GSQ_OK) { /* each expected tensor was found by name: equal counts leave no room for others */
        size_t floats = 0;
        for (int i = 0; i < m->num_tensors; i++) floats += !is_compressed[i];
        size_t expected = floats + 4 * (size_t)info->sparse_linears + 3 * (size_t)info->dense_linears +
                      (info->attention ? (size_t)m->graph->num_attentions : 0);
        if (gsq_st_count(f) != expected)
            st = gsq_fail(err, GSQ_ERR_FORMAT, "%s: %zu tensors where this %s%s model has %zu (extra tensors)", path,
                          gsq_st_count(f), gsq_quant_mode_name(info->mode), info->attention ? " attention-quantized" : "",
                          expected);
    }
    for (size_t i = 0; st == GSQ_OK && i < gsq_st_count(f); i++) info->param_bytes += gsq_st_at(f, i)->nbytes;
    const char *names = gsq_st_meta_get(f, "class_names");
    if (st == GSQ_OK && names && !(m->class_names = strdup(names)))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory for the class names", path);
    free(is_compressed);
    if (st != GSQ_OK) {
        gsq_model_free(m);
        return st;
    }
    *out = m;
    return GSQ_OK;
}

gsq_status gsq_compressed_load_open(gsq_model **out, const gsq_st_file *f, gsq_compressed_info *info, gsq_error *err)
{
    gsq_compressed_info local;
    if (!info) info = &local;
    gsq_model *m = NULL;
    /* everything checked against the architecture before the parameters are allocated */
    gsq_status st = gsq_compressed_describe(&m, f, info, err);
    if (st == GSQ_OK) st = gsq_model_alloc_params(m, err);
    if (st == GSQ_OK) st = gsq_model_quant_enable(m, info->mode, GSQ_CALIB_MAX, err);
    if (st == GSQ_OK && info->attention) st = gsq_model_quant_enable_attention(m, err);
    for (int l = 0; st == GSQ_OK && info->attention && l < m->graph->num_attentions; l++) {
        float scales[3];
        st = gsq_compressed_attention_scales(m, f, l, scales, err);
        if (st == GSQ_OK) st = gsq_model_quant_set_attention_scales(m, l, scales, err);
    }
    if (st == GSQ_OK) st = load_linears(m, f, info, err);
    for (int i = 0; st == GSQ_OK && i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        const gsq_st_tensor *t = gsq_st_find(f, p->name);
        if (t) st = gsq_st_read_f32(f, t, m->params + p->offset, p->numel, err); /* the float parameters */
    }
    if (st != GSQ_OK) {
        gsq_model_free(m);
        m = NULL;
    }
    *out = m;
    return st;
}
