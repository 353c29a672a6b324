/* The engine on a GPU (engine_cuda.h): the CPU engine's plan — the same GEMM codes, scales and float
 * parameters — copied to the device, and the forward pass of engine_forward.c as kernel launches:
 *
 *   INT8 (sparse or dense): LayerNorm writes the next GEMM's int8 codes; qkv writes float; the
 *   attention reads it and writes proj's codes; proj and fc2 add into the float residual stream in
 *   their epilogues; fc1's epilogue applies GELU and writes fc2's codes. Every GEMM on tensor
 *   cores (mma.sp for 2:4 codes, mma otherwise: src/kernels/cuda/gemm_i8.cu).
 *   FP16 (the baseline): the float weights in fp16 on cuBLASLt with its bias / GELU epilogues,
 *   LayerNorm and attention in fp32 math on fp16 activations, the residual stream in fp32.
 *
 * Times per part come from CUDA events recorded between the parts, read after the pass. This file
 * is built into the CUDA backend library (libgpusq_cuda.so) only, and reached through the table at
 * its end (cuda_backend.h). */
#include <stdio.h>
#include <stdlib.h>

#include "cuda_backend.h"

#include "gpusq/cuda.h"
#include "gpusq/half.h"
#include "gpusq/sparse.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/vit_ops.h"

typedef struct {
    int rows, cols;
    gsq_cuda_i8_weight *w; /* INT8 layouts */
    float *scale;          /* INT8: the per-row output scales, on the device */
    uint16_t *wh, *bias;   /* FP16: the weight (rows, cols) and bias in fp16, on the device */
    gsq_cuda_blas *plan;   /* FP16: planned for plan_m rows of input */
    int plan_m;
} cuda_site;

struct gsq_engine_cuda {
    int fp16, num_sites;
    cuda_site *sites;
    float *fparams;              /* the device copy of e->fparams */
    float *images, *x, *logits;  /* (B, C, S, S), the residual stream (B·T, D), (B, K) */
    void *qkv;                   /* (B·T, 3D) float, half for FP16; also the patch embedding's output */
    void *xq;                    /* the current GEMM's input: int8 codes at row stride ldq, or half */
    void *h;                     /* fc2's input: int8 codes at row stride ldh, or half */
    void *y;                     /* FP16: a GEMM's output before its residual add */
    int ldq, ldh;
    float *host_logits;          /* pinned */
    int num_events;
    cudaEvent_t *events;         /* one per lap, and a first */
    gsq_engine_part *event_part; /* the part each lap closes */
};

static int round4(int n) { return (n + 3) / 4 * 4; }

/* The device address of a float parameter of e->p (NULL stays NULL). */
static const float *dev(const gsq_engine *e, const float *host)
{
    return host ? e->cuda->fparams + (host - e->fparams) : NULL;
}

/* GEMM s's bias in e->p (NULL where the model has none). */
static const float *site_bias(const gsq_engine *e, int s)
{
    if (s == 0) return e->p.patch_b;
    const gsq_vit_block_view *b = &e->p.blocks[(s - 1) / 4];
    const float *bias[4] = {b->qkv_b, b->proj_b, b->fc1_b, b->fc2_b};
    return bias[(s - 1) % 4];
}

static void engine_free(struct gsq_engine_cuda *c)
{
    if (!c) return;
    for (int s = 0; c->sites && s < c->num_sites; s++) {
        cuda_site *t = &c->sites[s];
        gsq_cuda_i8_weight_free(t->w);
        gsq_cuda_blas_free(t->plan);
        cudaFree(t->scale);
        cudaFree(t->wh);
        cudaFree(t->bias);
    }
    free(c->sites);
    void *bufs[] = {c->fparams, c->images, c->x, c->logits, c->qkv, c->xq, c->h, c->y};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    cudaFreeHost(c->host_logits);
    for (int i = 0; c->events && i < c->num_events; i++)
        if (c->events[i]) cudaEventDestroy(c->events[i]);
    free(c->events);
    free(c->event_part);
    free(c);
}

static gsq_status engine_create(gsq_engine *e, gsq_error *err)
{
    if (gsq_cuda_device_count() < 1)
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "engine: no CUDA device (no GPU, or no driver)");
    int dev_id = 0, major = 0, minor = 0;
    cudaError_t ce = cudaGetDevice(&dev_id);
    if (ce == cudaSuccess) ce = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev_id);
    if (ce == cudaSuccess) ce = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev_id);
    if (ce != cudaSuccess) return gsq_cuda_fail(err, ce, "device properties");
    if (major < 8)
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "engine: the GPU is sm_%d%d; the tensor-core kernels need sm_80 "
                        "or later", major, minor);
    struct gsq_engine_cuda *c = calloc(1, sizeof *c);
    if (!c) return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    e->cuda = c; /* freed with e from here on */
    c->fp16 = e->layout == GSQ_ENGINE_FP16;
    c->num_sites = e->num_sites;
    c->num_events = 7 * e->cfg.depth + 5; /* transfer, patch, 7 per block, head, transfer: laps + 1 */
    c->sites = calloc((size_t)e->num_sites, sizeof *c->sites);
    c->events = calloc((size_t)c->num_events, sizeof *c->events);
    c->event_part = calloc((size_t)c->num_events, sizeof *c->event_part);
    if (!c->sites || !c->events || !c->event_part) return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    for (int i = 0; i < c->num_events; i++)
        if ((ce = cudaEventCreate(&c->events[i])) != cudaSuccess)
            return gsq_cuda_fail(err, ce, "creating events");
    return GSQ_OK;
}

/* bytes of host copied into a new device allocation *dst. */
static gsq_status upload_new(void **dst, const void *host, size_t bytes, gsq_error *err)
{
    gsq_status st = gsq_cuda_malloc(dst, bytes, err);
    return st == GSQ_OK ? gsq_cuda_upload(*dst, host, bytes, err) : st;
}

/* float values in fp16 on the device, as *dst. */
static gsq_status upload_half(uint16_t **dst, const float *values, size_t n, gsq_error *err)
{
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    gsq_f32_to_f16_n(values, h, n);
    gsq_status st = upload_new((void **)dst, h, n * sizeof *h, err);
    free(h);
    return st;
}

static gsq_status engine_site(gsq_engine *e, int s, const int8_t *codes, const float *weights, int rows, int cols,
                              int sparse, gsq_error *err)
{
    cuda_site *t = &e->cuda->sites[s];
    t->rows = rows, t->cols = cols;
    if (e->cuda->fp16) {
        e->weight_bytes += (size_t)rows * cols * sizeof(uint16_t);
        return upload_half(&t->wh, weights, (size_t)rows * cols, err);
    }
    gsq_status st = GSQ_OK;
    if (sparse) { /* the compressed file's form, which the upload reorders for mma.sp */
        size_t words = (size_t)gsq_sparse_meta_words(GSQ_SPARSE_2_4, cols);
        int8_t *values = malloc((size_t)rows * cols / 2);
        uint16_t *meta = calloc((size_t)rows * words, sizeof *meta);
        if (!values || !meta) st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
        for (int r = 0; st == GSQ_OK && r < rows; r++)
            gsq_sparse_compress_row(codes + (size_t)r * cols, cols, GSQ_SPARSE_2_4, values + (size_t)r * cols / 2, meta + r * words);
        if (st == GSQ_OK) st = gsq_cuda_i8_weight_sparse(&t->w, values, meta, rows, cols, err);
        free(values);
        free(meta);
    } else {
        st = gsq_cuda_i8_weight_dense(&t->w, codes, rows, cols, err);
    }
    if (st == GSQ_OK) st = upload_new((void **)&t->scale, e->sites[s].scale, (size_t)rows * sizeof(float), err);
    if (st == GSQ_OK) e->weight_bytes += gsq_cuda_i8_weight_bytes(t->w);
    return st;
}

static gsq_status engine_finish(gsq_engine *e, gsq_error *err)
{
    struct gsq_engine_cuda *c = e->cuda;
    const gsq_vit_config *cfg = &e->cfg;
    size_t B = (size_t)e->max_batch, T = (size_t)gsq_vit_tokens(cfg), D = (size_t)cfg->embed_dim;
    size_t H = (size_t)cfg->mlp_hidden, NP = (size_t)gsq_vit_num_patches(cfg), N = B * T, K = (size_t)cfg->num_classes;
    size_t CPP = (size_t)cfg->in_chans * cfg->patch_size * cfg->patch_size, S = (size_t)cfg->img_size;
    size_t in_rows = N > B * NP ? N : B * NP, in_cols = CPP > D ? CPP : D, act = c->fp16 ? 2 : 4;
    gsq_status st = upload_new((void **)&c->fparams, e->fparams, e->num_fparams * sizeof(float), err);
    for (int s = 0; st == GSQ_OK && c->fp16 && s < e->num_sites; s++)
        if (site_bias(e, s)) st = upload_half(&c->sites[s].bias, site_bias(e, s), (size_t)c->sites[s].rows, err);
    c->ldq = round4((int)in_cols), c->ldh = round4((int)H);
    struct {
        void **p;
        size_t bytes;
    } bufs[] = {
        {(void **)&c->images, B * cfg->in_chans * S * S * sizeof(float)},
        {(void **)&c->x, N * D * sizeof(float)},
        {(void **)&c->logits, B * K * sizeof(float)},
        {&c->qkv, N * 3 * D * act},
        {&c->xq, c->fp16 ? in_rows * in_cols * 2 : in_rows * (size_t)c->ldq},
        {&c->h, c->fp16 ? N * H * 2 : N * (size_t)c->ldh},
        {&c->y, c->fp16 ? N * D * 2 : 0},
    };
    for (size_t i = 0; st == GSQ_OK && i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i].bytes) st = gsq_cuda_malloc(bufs[i].p, bufs[i].bytes, err);
    cudaError_t ce = st == GSQ_OK ? cudaMallocHost((void **)&c->host_logits, B * K * sizeof(float)) : cudaSuccess;
    if (ce != cudaSuccess) {
        c->host_logits = NULL;
        st = gsq_cuda_fail(err, ce, "pinned memory for the logits");
    }
    return st;
}

/* The end of part p: an event, whose time since the previous one counts to p. */
static gsq_status lap(struct gsq_engine_cuda *c, int *n, gsq_engine_part p, gsq_error *err)
{
    c->event_part[*n] = p;
    cudaError_t ce = cudaEventRecord(c->events[++*n], 0);
    return ce == cudaSuccess ? GSQ_OK : gsq_cuda_fail(err, ce, "recording an event");
}

/* y = epilogue(x (M, K) · wᵀ) of INT8 site s: float out (accumulated when acc), or with next_inv the
 * next GEMM's codes. */
static gsq_status gemm_i8(gsq_engine *e, int s, const void *x, int ldx, int M, const float *bias, int acc, int gelu,
                          float next_inv, void *y, int ldy, gsq_error *err)
{
    const cuda_site *t = &e->cuda->sites[s];
    gsq_cuda_epilogue ep = {.out = next_inv ? GSQ_CUDA_OUT_S8 : GSQ_CUDA_OUT_F32, .scale = t->scale,
                            .bias = dev(e, bias), .gelu = gelu, .accumulate = acc, .out_inv = next_inv,
                            .out_qmax = e->a_qmax};
    return gsq_cuda_i8_gemm(t->w, (const int8_t *)x, ldx, M, &ep, y, ldy, err);
}

/* y (M, N) half = x (M, K) half · wᵀ + bias, GELU'd when gelu: FP16 site s on cuBLASLt, planned
 * again whenever M changes. */
static gsq_status gemm_f16(gsq_engine *e, int s, const void *x, int M, int gelu, void *y, gsq_error *err)
{
    cuda_site *t = &e->cuda->sites[s];
    gsq_status st = GSQ_OK;
    if (t->plan_m != M) {
        gsq_cuda_blas_free(t->plan);
        t->plan = NULL, t->plan_m = 0;
        st = gsq_cuda_blas_create(&t->plan, GSQ_CUDA_BLAS_F16, M, t->rows, t->cols, t->bias, gelu, err);
        if (st == GSQ_OK) t->plan_m = M;
    }
    return st == GSQ_OK ? gsq_cuda_blas_run(t->plan, x, t->wh, y, err) : st;
}

/* One transformer block of the INT8 engine (engine_forward.c's, on the device). */
static gsq_status block_i8(gsq_engine *e, int l, int B, int *n, gsq_error *err)
{
    struct gsq_engine_cuda *c = e->cuda;
    const gsq_vit_config *cfg = &e->cfg;
    const gsq_vit_block_view *w = &e->p.blocks[l];
    int T = gsq_vit_tokens(cfg), D = cfg->embed_dim, N = B * T, s = 1 + 4 * l, q = e->a_qmax;
    float eps = cfg->ln_eps;
    const gsq_engine_site *site = e->sites;
    gsq_status st = gsq_cuda_layernorm_i8(c->xq, c->ldq, c->x, N, D, dev(e, w->ln1_w), dev(e, w->ln1_b), eps,
                                          site[s].inv_a, q, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_NORM, err);
    if (st == GSQ_OK) st = gemm_i8(e, s, c->xq, c->ldq, N, w->qkv_b, 0, 0, 0.0f, c->qkv, 3 * D, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_QKV, err);
    if (st == GSQ_OK && e->attention)
        st = gsq_cuda_attention_i8(c->xq, c->ldq, site[s + 1].inv_a, q, c->qkv, B, T, D, cfg->num_heads,
                                   e->qkv_scales + 3 * l, q, err);
    else if (st == GSQ_OK)
        st = gsq_cuda_attention_f32(c->xq, c->ldq, site[s + 1].inv_a, q, c->qkv, B, T, D, cfg->num_heads, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_ATTENTION, err);
    if (st == GSQ_OK) st = gemm_i8(e, s + 1, c->xq, c->ldq, N, w->proj_b, 1, 0, 0.0f, c->x, D, err); /* x += proj */
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_PROJ, err);
    if (st == GSQ_OK)
        st = gsq_cuda_layernorm_i8(c->xq, c->ldq, c->x, N, D, dev(e, w->ln2_w), dev(e, w->ln2_b), eps,
                                   site[s + 2].inv_a, q, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_NORM, err);
    if (st == GSQ_OK) /* GELU(fc1) as fc2's codes */
        st = gemm_i8(e, s + 2, c->xq, c->ldq, N, w->fc1_b, 0, 1, site[s + 3].inv_a, c->h, c->ldh, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_FC1, err);
    if (st == GSQ_OK) st = gemm_i8(e, s + 3, c->h, c->ldh, N, w->fc2_b, 1, 0, 0.0f, c->x, D, err); /* x += fc2 */
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_FC2, err);
    return st;
}

/* One transformer block of the FP16 baseline. */
static gsq_status block_f16(gsq_engine *e, int l, int B, int *n, gsq_error *err)
{
    struct gsq_engine_cuda *c = e->cuda;
    const gsq_vit_config *cfg = &e->cfg;
    const gsq_vit_block_view *w = &e->p.blocks[l];
    int T = gsq_vit_tokens(cfg), D = cfg->embed_dim, N = B * T, s = 1 + 4 * l;
    size_t ND = (size_t)N * D;
    gsq_status st = gsq_cuda_layernorm_f16(c->xq, c->x, N, D, dev(e, w->ln1_w), dev(e, w->ln1_b), cfg->ln_eps, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_NORM, err);
    if (st == GSQ_OK) st = gemm_f16(e, s, c->xq, N, 0, c->qkv, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_QKV, err);
    if (st == GSQ_OK) st = gsq_cuda_attention_f16(c->xq, c->qkv, B, T, D, cfg->num_heads, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_ATTENTION, err);
    if (st == GSQ_OK) st = gemm_f16(e, s + 1, c->xq, N, 0, c->y, err);
    if (st == GSQ_OK) st = gsq_cuda_add_f16(c->x, c->y, ND, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_PROJ, err);
    if (st == GSQ_OK)
        st = gsq_cuda_layernorm_f16(c->xq, c->x, N, D, dev(e, w->ln2_w), dev(e, w->ln2_b), cfg->ln_eps, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_NORM, err);
    if (st == GSQ_OK) st = gemm_f16(e, s + 2, c->xq, N, 1, c->h, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_FC1, err);
    if (st == GSQ_OK) st = gemm_f16(e, s + 3, c->h, N, 0, c->y, err);
    if (st == GSQ_OK) st = gsq_cuda_add_f16(c->x, c->y, ND, err);
    if (st == GSQ_OK) st = lap(c, n, GSQ_ENGINE_T_FC2, err);
    return st;
}

/* The patch embedding and the tokens: x (B, T, D). */
static gsq_status embed(gsq_engine *e, int B, gsq_error *err)
{
    struct gsq_engine_cuda *c = e->cuda;
    const gsq_vit_config *cfg = &e->cfg;
    const gsq_vit_view *p = &e->p;
    int C = cfg->in_chans, S = cfg->img_size, P = cfg->patch_size, NP = gsq_vit_num_patches(cfg), D = cfg->embed_dim;
    gsq_status st;
    if (c->fp16) {
        st = gsq_cuda_patchify_f16(c->xq, c->images, B, C, S, P, err);
        if (st == GSQ_OK) st = gemm_f16(e, 0, c->xq, B * NP, 0, c->qkv, err);
    } else {
        st = gsq_cuda_patchify_i8(c->xq, c->ldq, c->images, B, C, S, P, e->sites[0].inv_a, e->a_qmax, err);
        if (st == GSQ_OK) st = gemm_i8(e, 0, c->xq, c->ldq, B * NP, p->patch_b, 0, 0, 0.0f, c->qkv, D, err);
    }
    return st == GSQ_OK ? gsq_cuda_tokens(c->x, c->qkv, c->fp16, dev(e, p->cls_token), dev(e, p->dist_token),
                                          dev(e, p->pos_embed), B, NP, D, err)
                        : st;
}

static gsq_status engine_forward(gsq_engine *e, const float *images, int B, const float **logits, gsq_error *err)
{
    struct gsq_engine_cuda *c = e->cuda;
    const gsq_vit_config *cfg = &e->cfg;
    const gsq_vit_view *p = &e->p;
    size_t K = (size_t)cfg->num_classes, pixels = (size_t)B * cfg->in_chans * cfg->img_size * cfg->img_size;
    int n = 0;
    cudaError_t ce = cudaEventRecord(c->events[0], 0);
    gsq_status st = ce == cudaSuccess ? gsq_cuda_upload(c->images, images, pixels * sizeof(float), err)
                                      : gsq_cuda_fail(err, ce, "recording an event");
    if (st == GSQ_OK) st = lap(c, &n, GSQ_ENGINE_T_TRANSFER, err);
    if (st == GSQ_OK) st = embed(e, B, err);
    if (st == GSQ_OK) st = lap(c, &n, GSQ_ENGINE_T_PATCH, err);
    for (int l = 0; st == GSQ_OK && l < cfg->depth; l++) st = (c->fp16 ? block_f16 : block_i8)(e, l, B, &n, err);
    gsq_cuda_head_args h = {.T = gsq_vit_tokens(cfg), .D = cfg->embed_dim, .K = cfg->num_classes,
                            .avg_pool = cfg->pool == GSQ_POOL_AVG, .prefix = gsq_vit_prefix(cfg),
                            .distilled = cfg->distilled, .eps = cfg->ln_eps, .norm_w = dev(e, p->norm_w),
                            .norm_b = dev(e, p->norm_b), .head_w = dev(e, p->head_w), .head_b = dev(e, p->head_b),
                            .dist_w = dev(e, p->head_dist_w), .dist_b = dev(e, p->head_dist_b)};
    if (st == GSQ_OK) st = gsq_cuda_head(c->logits, c->x, B, &h, err);
    if (st == GSQ_OK) st = lap(c, &n, GSQ_ENGINE_T_HEAD, err);
    if (st == GSQ_OK) st = gsq_cuda_download(c->host_logits, c->logits, (size_t)B * K * sizeof(float), err);
    if (st == GSQ_OK) st = lap(c, &n, GSQ_ENGINE_T_TRANSFER, err);
    if (st == GSQ_OK && (ce = cudaEventSynchronize(c->events[n])) != cudaSuccess)
        st = gsq_cuda_fail(err, ce, "the forward pass");
    for (int i = 0; st == GSQ_OK && i < n; i++) {
        float ms = 0.0f;
        if ((ce = cudaEventElapsedTime(&ms, c->events[i], c->events[i + 1])) != cudaSuccess)
            st = gsq_cuda_fail(err, ce, "reading an event");
        e->times[c->event_part[i]] += 1e-3 * ms;
    }
    if (st != GSQ_OK) cudaDeviceSynchronize(); /* nothing of this pass still runs when we return */
    *logits = st == GSQ_OK ? c->host_logits : NULL;
    return st;
}

static gsq_status device_name(char *buf, size_t cap, gsq_error *err)
{
    int dev = 0;
    if (gsq_cuda_device_count() < 1) return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cuda: no CUDA device (no GPU, or no driver)");
    cudaError_t ce = cudaGetDevice(&dev);
    return ce == cudaSuccess ? gsq_cuda_device_name(dev, buf, cap, err) : gsq_cuda_fail(err, ce, "current device");
}

const gsq_cuda_backend *gsq_cuda_backend_v1(void)
{
    static const gsq_cuda_backend table = {GSQ_CUDA_BACKEND_ABI, sizeof(gsq_engine), device_name, engine_create,
                                           engine_site, engine_finish, engine_forward, engine_free};
    return &table;
}
