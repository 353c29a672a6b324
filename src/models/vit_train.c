/* ViT/DeiT forward, loss and backward on the CPU, composing the layers of nn/. Activations live in
 * one arena (and their gradients in a second), sized for the largest batch seen so far. */
#include "gpusq/vit.h"
#include "gpusq/kernels.h"
#include "vit_quant_state.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Hands out consecutive slices of an arena; with base NULL it only counts. */
typedef struct {
    float *base;
    size_t used;
} carver;

static float *carve(carver *cv, size_t n)
{
    float *p = cv->base ? cv->base + cv->used : NULL;
    cv->used += (n + 15) & ~(size_t)15; /* keep every slice 64-byte aligned */
    return p;
}

typedef struct {
    size_t B, T, N, D, H, K, NH, NP, CPP, PR;
} dims;

static dims get_dims(const gsq_vit_config *c, int batch)
{
    dims d;
    d.B = (size_t)batch;
    d.T = (size_t)gsq_vit_tokens(c);
    d.N = d.B * d.T;
    d.D = (size_t)c->embed_dim;
    d.H = (size_t)c->mlp_hidden;
    d.K = (size_t)c->num_classes;
    d.NH = (size_t)c->num_heads;
    d.NP = (size_t)gsq_vit_num_patches(c);
    d.CPP = (size_t)c->in_chans * c->patch_size * c->patch_size;
    d.PR = d.B * (c->distilled ? 2 : 1); /* pooled rows: token 0 for each image, then token 1 */
    return d;
}

static void carve_acts(carver *cv, gsq_vit_acts *a, const gsq_vit_config *c, dims d)
{
    a->patches = carve(cv, d.B * d.NP * d.CPP);
    a->patch_out = carve(cv, d.B * d.NP * d.D);
    a->x0 = carve(cv, d.N * d.D);
    for (int l = 0; l < c->depth; l++) {
        gsq_vit_block_acts *b = &a->blocks[l];
        b->ln1 = carve(cv, d.N * d.D);
        b->ln1_mean = carve(cv, d.N);
        b->ln1_rstd = carve(cv, d.N);
        b->qkv = carve(cv, d.N * 3 * d.D);
        b->att = carve(cv, d.B * d.NH * d.T * d.T);
        b->atty = carve(cv, d.N * d.D);
        b->res1 = carve(cv, d.N * d.D);
        b->ln2 = carve(cv, d.N * d.D);
        b->ln2_mean = carve(cv, d.N);
        b->ln2_rstd = carve(cv, d.N);
        b->fc1 = carve(cv, d.N * d.H);
        b->gelu = carve(cv, d.N * d.H);
        b->res2 = carve(cv, d.N * d.D);
    }
    a->pooled = carve(cv, d.PR * d.D);
    a->normed = carve(cv, d.PR * d.D);
    a->norm_mean = carve(cv, d.PR);
    a->norm_rstd = carve(cv, d.PR);
    a->logits = carve(cv, d.B * d.K);
    a->logits_main = carve(cv, d.B * d.K);
    a->logits_dist = carve(cv, d.B * d.K);
    a->probs = carve(cv, d.B * d.K);
}

static void carve_grad_acts(carver *cv, gsq_vit_grad_acts *g, dims d)
{
    g->dres = carve(cv, d.N * d.D);
    g->dln = carve(cv, d.N * d.D);
    g->dqkv = carve(cv, d.N * 3 * d.D);
    g->datty = carve(cv, d.N * d.D);
    g->dfc1 = carve(cv, d.N * d.H);
    g->dgelu = carve(cv, d.N * d.H);
    g->datt = carve(cv, d.B * d.NH * d.T * d.T);
    g->dpatch_out = carve(cv, d.B * d.NP * d.D);
    g->dpooled = carve(cv, d.PR * d.D);
    g->dnormed = carve(cv, d.PR * d.D);
    g->dlogits = carve(cv, d.B * d.K);
}

size_t gsq_vit_activation_bytes(const gsq_vit_config *cfg, int batch, int training)
{
    dims d = get_dims(cfg, batch);
    gsq_vit_block_acts *blocks = calloc((size_t)cfg->depth, sizeof *blocks);
    if (!blocks) return 0;
    carver count = {NULL, 0};
    gsq_vit_acts acts = {.blocks = blocks};
    gsq_vit_grad_acts gacts;
    carve_acts(&count, &acts, cfg, d);
    if (training) carve_grad_acts(&count, &gacts, d);
    free(blocks);
    return count.used * sizeof(float);
}

/* Sizes the activation arena for batch B (grows only). On failure the model holds no
 * activations (act_batch 0), so nothing can read freed memory. */
static gsq_status ensure_acts(gsq_vit *m, int B, gsq_error *err)
{
    if (B <= m->act_batch) return GSQ_OK;
    dims d = get_dims(&m->cfg, B);
    if (!m->a.blocks) m->a.blocks = calloc((size_t)m->cfg.depth, sizeof *m->a.blocks);
    gsq_vit_block_acts *blocks = m->a.blocks;
    carver count = {NULL, 0};
    gsq_vit_acts tmp = {.blocks = blocks};
    carve_acts(&count, &tmp, &m->cfg, d);
    free(m->act_mem);
    free(m->gact_mem);
    free(m->targets);
    m->a = (gsq_vit_acts){.blocks = blocks};
    m->ga = (gsq_vit_grad_acts){0};
    m->gact_mem = NULL; /* gradients of activations: allocated by the first backward */
    m->act_batch = 0;
    m->act_mem = malloc(count.used * sizeof(float));
    m->targets = malloc((size_t)B * sizeof(int));
    if (!blocks || !m->act_mem || !m->targets) {
        free(m->act_mem);
        free(m->targets);
        m->act_mem = NULL;
        m->targets = NULL;
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory allocating activations for batch %d (%zu MiB)",
                        B, count.used * sizeof(float) >> 20);
    }
    carver cv = {m->act_mem, 0};
    carve_acts(&cv, &m->a, &m->cfg, d);
    m->act_batch = B;
    return GSQ_OK;
}

static gsq_status ensure_grad_acts(gsq_vit *m, gsq_error *err)
{
    if (m->gact_mem) return GSQ_OK;
    dims d = get_dims(&m->cfg, m->act_batch);
    carver count = {NULL, 0};
    gsq_vit_grad_acts tmp;
    carve_grad_acts(&count, &tmp, d);
    m->gact_mem = malloc(count.used * sizeof(float));
    if (!m->gact_mem)
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory allocating activation gradients (%zu MiB)",
                        count.used * sizeof(float) >> 20);
    carver cv = {m->gact_mem, 0};
    carve_grad_acts(&cv, &m->ga, d);
    return GSQ_OK;
}

gsq_status gsq_vit_forward(gsq_vit *m, const float *images, int B, const float **logits,
                           gsq_error *err)
{
    const gsq_vit_config *c = &m->cfg;
    gsq_flush_denormals();
    m->batch = 0; /* no valid forward until this one succeeds */
    m->have_loss = 0;
    if (B <= 0) return gsq_fail(err, GSQ_ERR_ARG, "forward: batch size %d must be positive", B);
    /* every GEMM dimension and head count is an int */
    size_t tokens = (size_t)gsq_vit_tokens(c);
    if ((size_t)B > (size_t)INT_MAX / tokens || (size_t)B > (size_t)INT_MAX / (size_t)c->num_heads)
        return gsq_fail(err, GSQ_ERR_ARG, "forward: batch %d of %zu tokens is too large", B, tokens);
    gsq_status st = ensure_acts(m, B, err);
    if (st == GSQ_OK) st = gsq_vit_quant_prepare(m, B, err);
    if (st != GSQ_OK) return st;
    dims d = get_dims(c, B);
    int N = (int)d.N, D = (int)d.D, H = (int)d.H, K = (int)d.K, T = (int)d.T;
    gsq_vit_acts *a = &m->a;
    const gsq_vit_view *p = &m->p;

    gsq_patchify(a->patches, images, B, c->in_chans, c->img_size, c->img_size, c->patch_size);
    gsq_linear_forward(a->patch_out, gsq_qsite_input(m, 0, a->patches, d.B * d.NP * d.CPP),
                       gsq_qsite_weight(m, 0, p->patch_w), p->patch_b, (int)(d.B * d.NP), (int)d.CPP, D);
    gsq_tokens_forward(a->x0, a->patch_out, p->cls_token, p->dist_token, p->pos_embed, B, (int)d.NP, D);
    const float *x = a->x0;
    for (int l = 0; l < c->depth; l++) {
        gsq_vit_block_acts *ba = &a->blocks[l];
        const gsq_vit_block_view *w = &p->blocks[l];
        int s = 1 + 4 * l; /* quantization sites: qkv, proj, fc1, fc2 */
        gsq_layernorm_forward(ba->ln1, ba->ln1_mean, ba->ln1_rstd, x, w->ln1_w, w->ln1_b, N, D, c->ln_eps);
        gsq_linear_forward(ba->qkv, gsq_qsite_input(m, s, ba->ln1, d.N * d.D), gsq_qsite_weight(m, s, w->qkv_w),
                           w->qkv_b, N, D, 3 * D);
        float p_scale;
        int p_qmax;
        float *att_q = gsq_qattn_probs(m, l, &p_scale, &p_qmax);
        gsq_attention_forward(ba->atty, ba->att, att_q, p_scale, p_qmax, gsq_qattn_qkv(m, l, ba->qkv, d.N), B, T, D,
                              c->num_heads);
        gsq_linear_forward(ba->res1, gsq_qsite_input(m, s + 1, ba->atty, d.N * d.D),
                           gsq_qsite_weight(m, s + 1, w->proj_w), w->proj_b, N, D, D);
        gsq_accumulate(ba->res1, x, d.N * d.D);
        gsq_layernorm_forward(ba->ln2, ba->ln2_mean, ba->ln2_rstd, ba->res1, w->ln2_w, w->ln2_b, N, D, c->ln_eps);
        gsq_linear_forward(ba->fc1, gsq_qsite_input(m, s + 2, ba->ln2, d.N * d.D), gsq_qsite_weight(m, s + 2, w->fc1_w),
                           w->fc1_b, N, D, H);
        gsq_gelu_forward(ba->gelu, ba->fc1, d.N * d.H);
        gsq_linear_forward(ba->res2, gsq_qsite_input(m, s + 3, ba->gelu, d.N * d.H),
                           gsq_qsite_weight(m, s + 3, w->fc2_w), w->fc2_b, N, H, D);
        gsq_accumulate(ba->res2, ba->res1, d.N * d.D);
        x = ba->res2;
    }
    /* The final norm is row-wise, so norm-then-select equals select-then-norm: only the pooled
     * rows are normalised (timm's `norm` for token pooling, `fc_norm` after average pooling). */
    gsq_pool_forward(a->pooled, x, B, T, D, c->pool, 0, gsq_vit_prefix(c));
    if (c->distilled) gsq_pool_forward(a->pooled + d.B * d.D, x, B, T, D, GSQ_POOL_TOKEN, 1, 2);
    gsq_layernorm_forward(a->normed, a->norm_mean, a->norm_rstd, a->pooled, p->norm_w, p->norm_b,
                          (int)d.PR, D, c->ln_eps);
    if (c->distilled) {
        gsq_linear_forward(a->logits_main, a->normed, p->head_w, p->head_b, B, D, K);
        gsq_linear_forward(a->logits_dist, a->normed + d.B * d.D, p->head_dist_w, p->head_dist_b, B, D, K);
        for (size_t i = 0; i < d.B * d.K; i++) a->logits[i] = 0.5f * (a->logits_main[i] + a->logits_dist[i]);
    } else {
        gsq_linear_forward(a->logits, a->normed, p->head_w, p->head_b, B, D, K);
    }
    m->batch = B;
    if (logits) *logits = a->logits;
    return GSQ_OK;
}

gsq_status gsq_vit_loss(gsq_vit *m, const int *targets, float label_smoothing, float *loss,
                        gsq_error *err)
{
    int B = m->batch, K = m->cfg.num_classes;
    if (B <= 0) return gsq_fail(err, GSQ_ERR_ARG, "loss: no forward pass to take the loss of");
    if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f))
        return gsq_fail(err, GSQ_ERR_ARG, "loss: label smoothing %g is outside [0, 1)", (double)label_smoothing);
    for (int b = 0; b < B; b++)
        if (targets[b] < 0 || targets[b] >= K)
            return gsq_fail(err, GSQ_ERR_ARG, "loss: target %d of sample %d is outside [0, %d)", targets[b], b, K);
    memcpy(m->targets, targets, (size_t)B * sizeof(int));
    m->label_smoothing = label_smoothing;
    float value = gsq_cross_entropy_forward(m->a.probs, m->a.logits, m->targets, B, K, label_smoothing);
    m->have_loss = 1;
    if (loss) *loss = value;
    return GSQ_OK;
}

gsq_status gsq_vit_backward(gsq_vit *m, gsq_error *err)
{
    if (m->batch <= 0 || !m->have_loss)
        return gsq_fail(err, GSQ_ERR_ARG, "backward: no forward pass and loss of it to differentiate");
    gsq_status st = ensure_grad_acts(m, err);
    if (st != GSQ_OK) return st;
    size_t n = (size_t)m->batch * (size_t)m->cfg.num_classes;
    float *dlogits = m->ga.dlogits;
    memset(dlogits, 0, n * sizeof(float));
    gsq_cross_entropy_backward(dlogits, m->a.probs, m->targets, m->batch, m->cfg.num_classes, m->label_smoothing,
                               1.0f);
    if (!m->cfg.distilled) return gsq_vit_backward_from(m, dlogits, NULL, NULL, err);
    for (size_t i = 0; i < n; i++) dlogits[i] *= 0.5f; /* logits = (main + dist) / 2 */
    return gsq_vit_backward_from(m, dlogits, dlogits, NULL, err);
}

gsq_status gsq_vit_backward_from(gsq_vit *m, const float *dlogits, const float *dlogits_dist,
                                 const float *const *dblock_out, gsq_error *err)
{
    const gsq_vit_config *c = &m->cfg;
    int B = m->batch;
    if (B <= 0) return gsq_fail(err, GSQ_ERR_ARG, "backward: no forward pass to differentiate");
    if (!dlogits || (c->distilled && !dlogits_dist))
        return gsq_fail(err, GSQ_ERR_ARG, "backward: missing the gradient of the %s logits",
                        dlogits ? "distillation head's" : "head's");
    gsq_status st = m->grads ? GSQ_OK : gsq_vit_zero_grad(m, err);
    if (st == GSQ_OK) st = ensure_grad_acts(m, err);
    if (st != GSQ_OK) return st;
    dims d = get_dims(c, B);
    int N = (int)d.N, D = (int)d.D, H = (int)d.H, K = (int)d.K, T = (int)d.T, NP = (int)d.NP;
    const gsq_vit_acts *a = &m->a;
    const gsq_vit_view *p = &m->p;
    gsq_vit_view *g = &m->g;
    gsq_vit_grad_acts *ga = &m->ga;

    memset(ga->dnormed, 0, d.PR * d.D * sizeof(float));
    if (c->distilled)
        gsq_linear_backward(ga->dnormed + d.B * d.D, g->head_dist_w, g->head_dist_b, dlogits_dist,
                            a->normed + d.B * d.D, p->head_dist_w, B, D, K);
    gsq_linear_backward(ga->dnormed, g->head_w, g->head_b, dlogits, a->normed, p->head_w, B, D, K);
    memset(ga->dpooled, 0, d.PR * d.D * sizeof(float));
    gsq_layernorm_backward(ga->dpooled, g->norm_w, g->norm_b, ga->dnormed, a->pooled, p->norm_w,
                           a->norm_mean, a->norm_rstd, (int)d.PR, D);
    memset(ga->dres, 0, d.N * d.D * sizeof(float));
    gsq_pool_backward(ga->dres, ga->dpooled, B, T, D, c->pool, 0, gsq_vit_prefix(c));
    if (c->distilled) gsq_pool_backward(ga->dres, ga->dpooled + d.B * d.D, B, T, D, GSQ_POOL_TOKEN, 1, 2);

    for (int l = c->depth - 1; l >= 0; l--) {
        const gsq_vit_block_acts *ba = &a->blocks[l];
        const gsq_vit_block_view *w = &p->blocks[l];
        gsq_vit_block_view *gw = &g->blocks[l];
        const float *x = l == 0 ? a->x0 : a->blocks[l - 1].res2;
        int s = 1 + 4 * l; /* quantization sites: qkv, proj, fc1, fc2 (straight-through when active) */
        if (dblock_out && dblock_out[l]) gsq_accumulate(ga->dres, dblock_out[l], d.N * d.D);
        /* dres holds ∂L/∂res2; res2 = res1 + fc2(gelu(fc1(ln2(res1)))) */
        memset(ga->dgelu, 0, d.N * d.H * sizeof(float));
        gsq_linear_backward(ga->dgelu, gsq_qsite_dw_target(m, s + 3, gw->fc2_w), gw->fc2_b, ga->dres,
                            gsq_qsite_saved_input(m, s + 3, ba->gelu), gsq_qsite_saved_weight(m, s + 3, w->fc2_w), N,
                            H, D);
        gsq_qsite_dw_finish(m, s + 3, gw->fc2_w);
        gsq_qsite_input_grad(m, s + 3, ga->dgelu, d.N * d.H);
        memset(ga->dfc1, 0, d.N * d.H * sizeof(float));
        gsq_gelu_backward(ga->dfc1, ga->dgelu, ba->fc1, d.N * d.H);
        memset(ga->dln, 0, d.N * d.D * sizeof(float));
        gsq_linear_backward(ga->dln, gsq_qsite_dw_target(m, s + 2, gw->fc1_w), gw->fc1_b, ga->dfc1,
                            gsq_qsite_saved_input(m, s + 2, ba->ln2), gsq_qsite_saved_weight(m, s + 2, w->fc1_w), N,
                            D, H);
        gsq_qsite_dw_finish(m, s + 2, gw->fc1_w);
        gsq_qsite_input_grad(m, s + 2, ga->dln, d.N * d.D);
        gsq_layernorm_backward(ga->dres, gw->ln2_w, gw->ln2_b, ga->dln, ba->res1, w->ln2_w,
                               ba->ln2_mean, ba->ln2_rstd, N, D);
        /* dres now holds ∂L/∂res1; res1 = x + proj(attention(qkv(ln1(x)))) */
        memset(ga->datty, 0, d.N * d.D * sizeof(float));
        gsq_linear_backward(ga->datty, gsq_qsite_dw_target(m, s + 1, gw->proj_w), gw->proj_b, ga->dres,
                            gsq_qsite_saved_input(m, s + 1, ba->atty), gsq_qsite_saved_weight(m, s + 1, w->proj_w), N,
                            D, D);
        gsq_qsite_dw_finish(m, s + 1, gw->proj_w);
        gsq_qsite_input_grad(m, s + 1, ga->datty, d.N * d.D);
        memset(ga->dqkv, 0, d.N * 3 * d.D * sizeof(float));
        gsq_attention_backward(ga->dqkv, ga->datt, ga->datty, gsq_qattn_saved_qkv(m, l, ba->qkv), ba->att,
                               gsq_qattn_saved_probs(m, l), B, T, D, c->num_heads);
        gsq_qattn_qkv_grad(m, l, ga->dqkv, d.N);
        memset(ga->dln, 0, d.N * d.D * sizeof(float));
        gsq_linear_backward(ga->dln, gsq_qsite_dw_target(m, s, gw->qkv_w), gw->qkv_b, ga->dqkv,
                            gsq_qsite_saved_input(m, s, ba->ln1), gsq_qsite_saved_weight(m, s, w->qkv_w), N, D, 3 * D);
        gsq_qsite_dw_finish(m, s, gw->qkv_w);
        gsq_qsite_input_grad(m, s, ga->dln, d.N * d.D);
        gsq_layernorm_backward(ga->dres, gw->ln1_w, gw->ln1_b, ga->dln, x, w->ln1_w, ba->ln1_mean,
                               ba->ln1_rstd, N, D);
    }
    memset(ga->dpatch_out, 0, d.B * d.NP * d.D * sizeof(float));
    gsq_tokens_backward(ga->dpatch_out, g->cls_token, g->dist_token, g->pos_embed, ga->dres, B, NP, D,
                        gsq_vit_prefix(c));
    /* the images need no gradient; LSQ's input scale does (NULL without LSQ) */
    float *dpatches = gsq_qsite_patch_dx(m, d.B * d.NP * d.CPP);
    gsq_linear_backward(dpatches, gsq_qsite_dw_target(m, 0, g->patch_w), g->patch_b, ga->dpatch_out,
                        gsq_qsite_saved_input(m, 0, a->patches), gsq_qsite_saved_weight(m, 0, p->patch_w), B * NP,
                        (int)d.CPP, D);
    gsq_qsite_dw_finish(m, 0, g->patch_w);
    gsq_qsite_input_grad(m, 0, dpatches, d.B * d.NP * d.CPP);
    return GSQ_OK;
}
