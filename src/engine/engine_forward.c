/* The CPU engine's forward pass: the ViT of src/models/vit_train.c with every quantized GEMM run
 * as an integer GEMM on its packed codes — the input quantized once into the kernel's layout, the
 * output rescaled with the bias (and the residual) added in the GEMM's epilogue; fc1's epilogue
 * applies GELU and quantizes straight into fc2's input codes, and the LayerNorms before qkv and fc1
 * quantize their rows as they make them. LayerNorm, softmax, GELU and the head compute in float;
 * with quantized attention, QKᵀ and AV are integer matmuls too, on the codes of Q, K, V and of the
 * probabilities (attention_int8.h). */
#include <omp.h>

#include "kernels/cpu/attention_int8.h"
#include "cuda_backend.h"
#include "engine_state.h"
#include "gpusq/clock.h"
#include "gpusq/kernels.h"
#include "gpusq/nn.h"
#include "gpusq/quant.h"

/* x (M, K) as the input codes of GEMM s. */
static const uint8_t *quantize(gsq_engine *e, int s, const float *x, int M, int K)
{
    gsq_i8_quantize(e->isa, e->xq, x, M, K, K, e->sites[s].inv_a, e->a_qmax);
    return e->xq;
}

/* LayerNorm(x) (M, D) as the input codes of GEMM s, a row at a time: the normalized floats stay in
 * a row buffer per thread (as many threads as had one when the engine was made). */
static const uint8_t *norm_quantize(gsq_engine *e, int s, const float *x, int M, const float *w, const float *b)
{
    int D = e->cfg.embed_dim, rows = gsq_i8_input_rows(e->isa, M);
    float inv = e->sites[s].inv_a;
    #pragma omp parallel num_threads(e->row_threads)
    {
        float *row = e->ln + (size_t)omp_get_thread_num() * D;
        #pragma omp for schedule(static)
        for (int m = 0; m < rows; m++) {
            if (m < M) gsq_layernorm_row(row, x + (size_t)m * D, w, b, D, e->cfg.ln_eps, NULL, NULL);
            gsq_i8_quantize_one(e->isa, e->xq, row, m, M, D, inv, e->a_qmax);
        }
    }
    return e->xq;
}

/* y (M, ldy) = GEMM s of its input codes xq: y = result (+ y when accumulate), GELU(result) when
 * gelu. With next set, the result goes on as GEMM s + 1's input codes instead (y is scratch, which
 * the AMX kernels never touch). */
static void gemm(gsq_engine *e, int s, float *y, int ldy, const uint8_t *xq, int M, const float *bias, int accumulate,
                 int gelu, uint8_t *next)
{
    const gsq_engine_site *site = &e->sites[s];
    gsq_i8_epilogue ep = {.scale = site->scale, .bias = bias, .accumulate = accumulate, .gelu = gelu, .codes = next};
    if (next) ep.code_inv = e->sites[s + 1].inv_a, ep.code_qmax = e->a_qmax;
    gsq_i8_gemm(y, ldy, xq, M, &site->w.w, &ep);
}

/* Time since *t0 into part p; *t0 moves on. */
static void lap(gsq_engine *e, gsq_engine_part p, double *t0)
{
    double t = gsq_seconds();
    e->times[p] += t - *t0;
    *t0 = t;
}

/* Quantized attention runs as integer matmuls where the CPU has their fast path (AVX-512); below
 * it, the float matmuls on the codes' values are faster than the integer reference. */
static void attention(gsq_engine *e, int l, int B)
{
    const gsq_vit_config *c = &e->cfg;
    int T = gsq_vit_tokens(c), D = c->embed_dim;
    const float *s = e->attention ? e->qkv_scales + 3 * l : NULL;
    if (e->att8) {
        gsq_att8_forward(e->isa, e->atty, e->qkv, B, T, D, c->num_heads, s, e->a_qmax, e->att8);
        return;
    }
    if (e->attention) {
        #pragma omp parallel for schedule(static)
        for (size_t r = 0; r < (size_t)B * T; r++)
            for (int k = 0; k < 3; k++) {
                float *q = e->qkv + r * 3 * (size_t)D + (size_t)k * D;
                gsq_fake_quant(q, q, (size_t)D, s[k], e->a_qmax);
            }
    }
    gsq_attention_forward(e->atty, e->att, e->att_q, e->attention ? 1.0f / (float)e->a_qmax : 0.0f,
                          e->attention ? e->a_qmax : 0, e->qkv, B, T, D, c->num_heads);
}

gsq_status gsq_engine_forward(gsq_engine *e, const float *images, int B, const float **logits, gsq_error *err)
{
    if (B < 1 || B > e->max_batch)
        return gsq_fail(err, GSQ_ERR_ARG, "engine: batch %d is outside 1..%d", B, e->max_batch);
    gsq_flush_denormals();
    if (e->cuda) return e->gpu->engine_forward(e, images, B, logits, err);
    const gsq_vit_config *c = &e->cfg;
    const gsq_vit_view *p = &e->p;
    int T = gsq_vit_tokens(c), D = c->embed_dim, H = c->mlp_hidden, NP = gsq_vit_num_patches(c), K = c->num_classes;
    int CPP = c->in_chans * c->patch_size * c->patch_size, N = B * T;
    double t0 = gsq_seconds();

    gsq_patchify(e->patches, images, B, c->in_chans, c->img_size, c->img_size, c->patch_size);
    gemm(e, 0, e->atty, D, quantize(e, 0, e->patches, B * NP, CPP), B * NP, p->patch_b, 0, 0, NULL);
    gsq_tokens_forward(e->x, e->atty, p->cls_token, p->dist_token, p->pos_embed, B, NP, D);
    lap(e, GSQ_ENGINE_T_PATCH, &t0);
    for (int l = 0; l < c->depth; l++) {
        const gsq_vit_block_view *w = &p->blocks[l];
        int s = 1 + 4 * l;
        const uint8_t *normed = norm_quantize(e, s, e->x, N, w->ln1_w, w->ln1_b);
        lap(e, GSQ_ENGINE_T_NORM, &t0);
        gemm(e, s, e->qkv, 3 * D, normed, N, w->qkv_b, 0, 0, NULL);
        lap(e, GSQ_ENGINE_T_QKV, &t0);
        attention(e, l, B);
        lap(e, GSQ_ENGINE_T_ATTENTION, &t0);
        /* x += proj(attention) */
        gemm(e, s + 1, e->x, D, quantize(e, s + 1, e->atty, N, D), N, w->proj_b, 1, 0, NULL);
        lap(e, GSQ_ENGINE_T_PROJ, &t0);
        normed = norm_quantize(e, s + 2, e->x, N, w->ln2_w, w->ln2_b);
        lap(e, GSQ_ENGINE_T_NORM, &t0);
        gemm(e, s + 2, e->h, H, normed, N, w->fc1_b, 0, 1, e->hq); /* GELU(fc1(LayerNorm)) as fc2's codes */
        lap(e, GSQ_ENGINE_T_FC1, &t0);
        gemm(e, s + 3, e->x, D, e->hq, N, w->fc2_b, 1, 0, NULL); /* x += fc2(h) */
        lap(e, GSQ_ENGINE_T_FC2, &t0);
    }
    int rows = c->distilled ? 2 * B : B;
    gsq_pool_forward(e->pooled, e->x, B, T, D, c->pool, 0, gsq_vit_prefix(c));
    if (c->distilled) gsq_pool_forward(e->pooled + (size_t)B * D, e->x, B, T, D, GSQ_POOL_TOKEN, 1, 2);
    gsq_layernorm_forward(e->normed, e->mean, e->rstd, e->pooled, p->norm_w, p->norm_b, rows, D, c->ln_eps);
    gsq_linear_forward(e->logits, e->normed, p->head_w, p->head_b, B, D, K);
    if (c->distilled) {
        float *dist = e->logits + (size_t)B * K;
        gsq_linear_forward(dist, e->normed + (size_t)B * D, p->head_dist_w, p->head_dist_b, B, D, K);
        for (size_t i = 0; i < (size_t)B * K; i++) e->logits[i] = 0.5f * (e->logits[i] + dist[i]);
    }
    lap(e, GSQ_ENGINE_T_HEAD, &t0);
    *logits = e->logits;
    return GSQ_OK;
}
