/* Writing the compressed model file: integer codes of every quantized GEMM, sparse ones as kept
 * values plus 2-bit position metadata (docs/FORMAT.md), scales, and the float parameters. */
#include "gpusq/compressed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "models/model_state.h"

/* Buffers the writer borrows until the file is written. */
typedef struct {
    void **p;
    int n, cap;
} keep_list;

static void *keep(keep_list *k, size_t bytes)
{
    if (k->n == k->cap) {
        int cap = k->cap ? 2 * k->cap : 64;
        void **q = realloc(k->p, (size_t)cap * sizeof *q);
        if (!q) return NULL;
        k->p = q;
        k->cap = cap;
    }
    void *b = calloc(1, bytes ? bytes : 1);
    if (b) k->p[k->n++] = b;
    return b;
}

/* Stores codes (rows, n) as INT8 or, for 4-bit, two per byte (element 2i in the low nibble). */
static void pack_codes(uint8_t *dst, const int8_t *codes, size_t n, int four_bit)
{
    if (!four_bit) {
        memcpy(dst, codes, n);
        return;
    }
    for (size_t i = 0; i < n; i += 2) {
        uint8_t lo = (uint8_t)codes[i] & 0x0F, hi = i + 1 < n ? ((uint8_t)codes[i + 1] & 0x0F) : 0;
        dst[i / 2] = (uint8_t)(lo | hi << 4);
    }
}

gsq_status gsq_compressed_save(const gsq_model *m, gsq_sparse_pattern pattern, const char *path,
                               gsq_compressed_info *info, gsq_error *err)
{
    if (!gsq_model_quant_active(m))
        return gsq_fail(err, GSQ_ERR_ARG, "%s: the model has no calibrated quantizers to compress with", path);
    gsq_status checked = gsq_model_check_finite(m, path, err);
    if (checked != GSQ_OK) return checked;
    gsq_compressed_info local = {0};
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    gsq_quant_mode mode = gsq_model_quant_mode(m);
    info->mode = mode;
    info->pattern = pattern;
    int four = gsq_quant_mode_weight_bits(mode) == 4;
    gsq_sparse_plan plan = {0};
    gsq_st_writer *w = NULL;
    keep_list kl = {0};
    gsq_status st = gsq_sparse_plan_from_weights(&plan, m, pattern, 1, err);
    if (st == GSQ_OK) st = gsq_st_writer_create(&w, err);
    char *is_compressed = calloc((size_t)m->num_tensors, 1);
    if (st == GSQ_OK && !is_compressed) st = gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory", path);
    for (int s = 0; st == GSQ_OK && s < m->graph->num_linears; s++) {
        const gsq_linear *lin = &m->graph->linears[s];
        if (!lin->compressed) continue;
        char tname[GSQ_NAME_MAX + 16];
        const gsq_param *p = &m->tensors[lin->weight];
        is_compressed[lin->weight] = 1;
        int rows = lin->rows, cols = lin->cols;
        int sparse = gsq_sparse_plan_prunes(&plan, s);
        int8_t *codes = keep(&kl, p->numel);
        float *scales = keep(&kl, (size_t)rows * sizeof(float)), *in_scale = keep(&kl, sizeof(float));
        if (!codes || !scales || !in_scale) {
            st = gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        st = gsq_model_quant_weight_codes(m, s, codes, scales, err);
        *in_scale = gsq_model_quant_act_scale(m, s);
        size_t kept_per_row = sparse ? (size_t)cols / 2 : (size_t)cols;
        size_t bytes_per_row = four ? (kept_per_row + 1) / 2 : kept_per_row;
        uint8_t *values = st == GSQ_OK ? keep(&kl, (size_t)rows * bytes_per_row) : NULL;
        int words = gsq_sparse_meta_words(pattern, cols);
        uint16_t *meta = st == GSQ_OK && sparse ? keep(&kl, (size_t)rows * (size_t)words * 2) : NULL;
        int8_t *row_kept = st == GSQ_OK ? keep(&kl, kept_per_row) : NULL;
        if (st == GSQ_OK && (!values || (sparse && !meta) || !row_kept))
            st = gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory", path);
        for (int r = 0; st == GSQ_OK && r < rows; r++) {
            const int8_t *c = codes + (size_t)r * cols;
            if (sparse) gsq_sparse_compress_row(c, cols, pattern, row_kept, meta + (size_t)r * words);
            else memcpy(row_kept, c, (size_t)cols);
            pack_codes(values + (size_t)r * bytes_per_row, row_kept, kept_per_row, four);
        }
        int64_t vshape[2] = {rows, (int64_t)bytes_per_row}, mshape[2] = {rows, words}, sshape[1] = {rows};
        gsq_dtype vt = four ? GSQ_DT_U8 : GSQ_DT_I8;
        snprintf(tname, sizeof tname, "%s.%s", lin->name, sparse ? "values" : "qweight");
        if (st == GSQ_OK) st = gsq_st_writer_add(w, tname, vt, 2, vshape, values, err);
        snprintf(tname, sizeof tname, "%s.meta", lin->name);
        if (st == GSQ_OK && sparse) st = gsq_st_writer_add(w, tname, GSQ_DT_U16, 2, mshape, meta, err);
        snprintf(tname, sizeof tname, "%s.weight_scale", lin->name);
        if (st == GSQ_OK) st = gsq_st_writer_add(w, tname, GSQ_DT_F32, 1, sshape, scales, err);
        snprintf(tname, sizeof tname, "%s.input_scale", lin->name);
        if (st == GSQ_OK) st = gsq_st_writer_add(w, tname, GSQ_DT_F32, 0, sshape, in_scale, err);
        size_t weight_bytes = (size_t)rows * bytes_per_row + (sparse ? (size_t)rows * words * 2 : 0);
        info->param_bytes += weight_bytes + (size_t)rows * 4 + 4;
        info->gemm_weights += p->numel;
        info->gemm_weight_bytes += weight_bytes;
        if (sparse) info->sparse_linears++;
        else info->dense_linears++;
    }
    for (int i = 0; st == GSQ_OK && i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        if (is_compressed[i]) continue;
        st = gsq_st_writer_add(w, p->name, GSQ_DT_F32, p->ndim, p->shape, m->params + p->offset, err);
        info->param_bytes += p->numel * 4;
    }
    int attention = info->attention = gsq_model_quant_attention_scales(m, 0) != NULL;
    for (int l = 0; st == GSQ_OK && attention && l < m->graph->num_attentions; l++) {
        char tname[64];
        int64_t three[1] = {3};
        snprintf(tname, sizeof tname, "%s.output_scale", gsq_graph_attention_qkv(m->graph, l));
        st = gsq_st_writer_add(w, tname, GSQ_DT_F32, 1, three, gsq_model_quant_attention_scales(m, l), err);
        info->param_bytes += 12;
    }
    char v[16];
    snprintf(v, sizeof v, "%d", GSQ_COMPRESSED_VERSION);
    if (st == GSQ_OK) st = gsq_model_add_meta_to_writer(m, w, err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "gpusq.kind", "compressed", err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "gpusq.format_version", v, err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "quant.mode", gsq_quant_mode_name(mode), err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "sparsity.pattern", gsq_sparse_pattern_name(pattern), err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "quant.attention", attention ? "1" : "0", err);
    if (st == GSQ_OK) st = gsq_st_writer_write(w, path, err);
    gsq_st_writer_free(w);
    for (int i = 0; i < kl.n; i++) free(kl.p[i]);
    free(kl.p);
    free(is_compressed);
    gsq_sparse_plan_free(&plan);
    return st;
}
