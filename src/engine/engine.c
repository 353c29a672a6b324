/* The engine (include/gpusq/engine.h): the plan built from a quantized model — its GEMMs packed as
 * integer codes (kept codes + metadata where sparse), per-row output scales (weight scale × input
 * scale), the float parameters — and buffers sized once; on the CPU, or handed to the CUDA backend
 * library (cuda_backend.h, opened when a GPU is asked for), which copies them to the GPU. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "attention_int8.h"
#include "cuda_backend.h"
#include "engine_state.h"
#include "gpusq/kernels.h"
#include "gpusq/vit_quant.h"

static const char *const part_names[GSQ_ENGINE_T_COUNT] = {"patch embed", "layernorm", "qkv",  "attention", "proj",
                                                           "fc1+gelu",    "fc2",       "head", "transfer"};
const char *gsq_engine_part_name(gsq_engine_part p) { return (unsigned)p < GSQ_ENGINE_T_COUNT ? part_names[p] : "?"; }

void gsq_engine_free(gsq_engine *e)
{
    if (!e) return;
    if (e->cuda) e->gpu->engine_free(e->cuda);
    for (int s = 0; e->sites && s < e->num_sites; s++) {
        gsq_i8_weight_free(&e->sites[s].w);
        free(e->sites[s].scale);
    }
    free(e->sites);
    free(e->blocks);
    free(e->fparams);
    free(e->qkv_scales);
    free(e->act);
    free(e->xq);
    free(e->hq);
    free(e->att8);
    free(e);
}

static gsq_status pack_sites(gsq_engine *e, const gsq_vit *m, gsq_sparse_pattern pattern, gsq_engine_layout layout,
                             gsq_error *err)
{
    int four = gsq_quant_mode_weight_bits(gsq_vit_quant_mode(m)) == 4;
    gsq_sparse_plan plan = {0}; /* which GEMMs obey the pattern: the compressed file's own rule */
    gsq_status st = layout == GSQ_ENGINE_SPARSE ? gsq_sparse_plan_from_weights(&plan, m, pattern, 1, err) : GSQ_OK;
    for (int s = 0; s < e->num_sites && st == GSQ_OK; s++) {
        char name[GSQ_NAME_MAX];
        const gsq_param *p = gsq_vit_find_param(m, gsq_vit_quant_site_weight(s, name, sizeof name));
        int rows = (int)p->shape[0], cols = (int)(p->numel / (size_t)rows);
        int8_t *codes = malloc(p->numel);
        gsq_engine_site *site = &e->sites[s];
        site->scale = malloc((size_t)rows * sizeof(float));
        if (!codes || !site->scale) st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory for %s", name);
        if (st == GSQ_OK) st = gsq_vit_quant_weight_codes(m, s, codes, site->scale, err);
        float a = st == GSQ_OK ? gsq_vit_quant_act_scale(m, s) : 0.0f;
        for (int r = 0; st == GSQ_OK && r < rows; r++) site->scale[r] *= a;
        site->inv_a = 1.0f / a;
        int sparse = layout == GSQ_ENGINE_SPARSE && gsq_sparse_plan_prunes(&plan, name);
        gsq_i8_layout l = !sparse ? GSQ_I8_DENSE : (pattern == GSQ_SPARSE_4_8 ? GSQ_I8_SPARSE_4_8 : GSQ_I8_SPARSE_2_4);
        if (st == GSQ_OK && e->cuda)
            st = e->gpu->engine_site(e, s, codes, m->params + p->offset, rows, cols, sparse, err);
        else if (st == GSQ_OK && (st = gsq_i8_pack(&site->w, codes, rows, cols, l, four, e->isa, err)) == GSQ_OK)
            e->weight_bytes += site->w.bytes;
        if (st == GSQ_OK) e->sparse_sites += sparse;
        free(codes);
    }
    gsq_sparse_plan_free(&plan);
    return st;
}

typedef struct {
    const gsq_vit *m;
    const int *is_site;
    const size_t *at;
    float *base;
} moved_ctx;

/* Where a pointer into m's parameters lands in the copy (NULL for GEMM weights and NULL). */
static float *moved(const moved_ctx *c, const float *src)
{
    for (int i = 0; src && i < c->m->num_tensors; i++)
        if (!c->is_site[i] && c->m->params + c->m->tensors[i].offset == src) return c->base + c->at[i];
    return NULL;
}

/* Copies m's float parameters (all but the quantized GEMMs' weights) into e->fparams and points
 * e->p at them. */
static gsq_status copy_floats(gsq_engine *e, const gsq_vit *m, gsq_error *err)
{
    size_t total = 0;
    int *is_site = calloc((size_t)m->num_tensors, sizeof(int));
    size_t *at = malloc((size_t)m->num_tensors * sizeof(size_t));
    e->blocks = calloc((size_t)m->cfg.depth, sizeof *e->blocks);
    if (!is_site || !at || !e->blocks) {
        free(is_site);
        free(at);
        return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    }
    for (int s = 0; s < e->num_sites; s++) {
        char name[GSQ_NAME_MAX];
        is_site[gsq_vit_find_param(m, gsq_vit_quant_site_weight(s, name, sizeof name)) - m->tensors] = 1;
    }
    for (int i = 0; i < m->num_tensors; i++) {
        at[i] = total;
        if (!is_site[i]) total += m->tensors[i].numel;
    }
    gsq_status st = GSQ_OK;
    e->num_fparams = total;
    if (!(e->fparams = malloc((total ? total : 1) * sizeof(float))))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    for (int i = 0; st == GSQ_OK && i < m->num_tensors; i++)
        if (!is_site[i]) memcpy(e->fparams + at[i], m->params + m->tensors[i].offset, m->tensors[i].numel * sizeof(float));
    if (st == GSQ_OK) { /* every float pointer of m's view, moved to the copy (GEMM weights become NULL) */
        moved_ctx mc = {m, is_site, at, e->fparams};
        gsq_vit_view *v = &e->p;
        *v = m->p;
        v->blocks = e->blocks;
        float **top[] = {&v->patch_w, &v->patch_b, &v->cls_token, &v->dist_token, &v->pos_embed, &v->norm_w,
                         &v->norm_b,  &v->head_w,  &v->head_b,    &v->head_dist_w, &v->head_dist_b};
        for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) *top[i] = moved(&mc, *top[i]);
        for (int l = 0; l < m->cfg.depth; l++) {
            gsq_vit_block_view *b = &e->blocks[l];
            *b = m->p.blocks[l];
            float **f[] = {&b->ln1_w, &b->ln1_b, &b->qkv_w, &b->qkv_b, &b->proj_w, &b->proj_b,
                           &b->ln2_w, &b->ln2_b, &b->fc1_w, &b->fc1_b, &b->fc2_w, &b->fc2_b};
            for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) *f[i] = moved(&mc, *f[i]);
        }
    }
    free(is_site);
    free(at);
    return st;
}

/* Activation buffers for max_batch images, the quantized input of the patch embedding and of the
 * GEMMs on embed_dim inputs, fc2's input codes, and with
 * quantized attention the integer attention's scratch. */
static gsq_status alloc_buffers(gsq_engine *e, gsq_error *err)
{
    const gsq_vit_config *c = &e->cfg;
    size_t B = (size_t)e->max_batch, T = (size_t)gsq_vit_tokens(c), D = (size_t)c->embed_dim;
    size_t H = (size_t)c->mlp_hidden, NH = (size_t)c->num_heads, NP = (size_t)gsq_vit_num_patches(c);
    size_t CPP = (size_t)c->in_chans * c->patch_size * c->patch_size, N = B * T, K = (size_t)c->num_classes;
    /* integer attention where its fast path runs (the float path's probabilities are not needed) */
    int att8 = e->attention && gsq_att8_fast(e->isa);
    e->row_threads = omp_get_max_threads();
    size_t sizes[] = {B * NP * CPP, N * D, (size_t)e->row_threads * D, N * 3 * D, att8 ? 0 : B * NH * T * T,
                      e->attention && !att8 ? B * NH * T * T : 0, N * D, e->isa == GSQ_I8_ISA_AMX ? 0 : N * H, N, N,
                      2 * B * D, 2 * B * D, 2 * B * K}; /* fc1's float output only where its epilogue goes through it */
    float **dst[] = {&e->patches, &e->x,     &e->ln,   &e->qkv,  &e->att,    &e->att_q,  &e->atty,
                     &e->h,       &e->mean,  &e->rstd, &e->pooled, &e->normed, &e->logits};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    e->act = malloc(total * sizeof(float));
    e->xq = malloc(gsq_i8_input_bytes(e->isa, (int)(N > B * NP ? N : B * NP), (int)(CPP > D ? CPP : D)));
    e->hq = malloc(gsq_i8_input_bytes(e->isa, (int)N, (int)H));
    if (att8) e->att8 = malloc(B * NH * gsq_att8_scratch_bytes((int)T, (int)(D / NH)));
    if (!e->act || !e->xq || !e->hq || (att8 && !e->att8))
        return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory for a batch of %d", e->max_batch);
    float *p = e->act;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *dst[i] = sizes[i] ? p : NULL;
        p += sizes[i];
    }
    return GSQ_OK;
}

gsq_status gsq_engine_create(gsq_engine **out, const gsq_vit *m, gsq_sparse_pattern pattern, gsq_engine_layout layout,
                             int max_batch, gsq_error *err)
{
    return gsq_engine_create_on(out, m, pattern, layout, max_batch, GSQ_ENGINE_CPU, err);
}

gsq_status gsq_engine_create_on(gsq_engine **out, const gsq_vit *m, gsq_sparse_pattern pattern,
                                gsq_engine_layout layout, int max_batch, gsq_engine_device device, gsq_error *err)
{
    *out = NULL;
    gsq_flush_denormals();
    if (layout == GSQ_ENGINE_FP16 && device != GSQ_ENGINE_CUDA)
        return gsq_fail(err, GSQ_ERR_ARG, "engine: the FP16 layout runs on CUDA only");
    if (!gsq_vit_quant_active(m))
        return gsq_fail(err, GSQ_ERR_ARG, "engine: the model has no calibrated quantizers (load a compressed file)");
    size_t tokens = (size_t)gsq_vit_tokens(&m->cfg), heads = (size_t)m->cfg.num_heads;
    if (max_batch < 1 || (size_t)max_batch * tokens * (size_t)(m->cfg.mlp_hidden > 3 * m->cfg.embed_dim
                                                                    ? m->cfg.mlp_hidden : 3 * m->cfg.embed_dim) > INT32_MAX ||
        (size_t)max_batch * heads * tokens * tokens > INT32_MAX)
        return gsq_fail(err, GSQ_ERR_ARG, "engine: batch %d is out of range for this model", max_batch);
    gsq_engine *e = calloc(1, sizeof *e);
    if (!e) return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    e->cfg = m->cfg;
    e->max_batch = max_batch;
    e->layout = layout;
    e->isa = gsq_i8_isa_active();
    e->num_sites = gsq_vit_quant_sites(&m->cfg);
    e->a_qmax = gsq_quant_qmax(gsq_quant_mode_act_bits(gsq_vit_quant_mode(m)));
    e->attention = gsq_vit_quant_attention_scales(m, 0) != NULL;
    gsq_status st = GSQ_OK;
    if (!(e->sites = calloc((size_t)e->num_sites, sizeof *e->sites)) ||
        (e->attention && !(e->qkv_scales = malloc((size_t)m->cfg.depth * 3 * sizeof(float)))))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    for (int l = 0; st == GSQ_OK && e->attention && l < m->cfg.depth; l++)
        memcpy(e->qkv_scales + 3 * l, gsq_vit_quant_attention_scales(m, l), 3 * sizeof(float));
    if (st == GSQ_OK && device == GSQ_ENGINE_CUDA) st = gsq_cuda_backend_open(&e->gpu, err);
    if (st == GSQ_OK && device == GSQ_ENGINE_CUDA) st = e->gpu->engine_create(e, err);
    /* on CUDA a GEMM runs sparse when its codes obey 2:4, the pattern of mma.sp */
    if (st == GSQ_OK) st = pack_sites(e, m, e->cuda ? GSQ_SPARSE_2_4 : pattern, layout, err);
    if (st == GSQ_OK) st = copy_floats(e, m, err);
    if (st == GSQ_OK) st = e->cuda ? e->gpu->engine_finish(e, err) : alloc_buffers(e, err);
    if (st != GSQ_OK) {
        gsq_engine_free(e);
        return st;
    }
    *out = e;
    return GSQ_OK;
}

size_t gsq_engine_weight_bytes(const gsq_engine *e) { return e->weight_bytes; }
int gsq_engine_sparse_gemms(const gsq_engine *e) { return e->sparse_sites; }
const double *gsq_engine_times(const gsq_engine *e) { return e->times; }
void gsq_engine_reset_times(gsq_engine *e) { memset(e->times, 0, sizeof e->times); }
