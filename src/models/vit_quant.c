/* Quantization-aware training state of a ViT: which GEMMs are quantized, their scales, the
 * calibration of activation scales, and the forward/backward hooks (fake quantization with
 * straight-through gradients) that vit_train.c calls at each site. LSQ's learned scales are in
 * vit_quant_lsq.c. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vit_quant_state.h"

static const char *const mode_names[] = {"int8", "int4", "w4a8"};

gsq_status gsq_quant_mode_parse(const char *s, gsq_quant_mode *out, gsq_error *err)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, mode_names[i]) == 0) {
            *out = (gsq_quant_mode)i;
            return GSQ_OK;
        }
    return gsq_fail(err, GSQ_ERR_ARG, "unknown quantization mode '%s' (int8, int4 or w4a8)", s);
}

const char *gsq_quant_mode_name(gsq_quant_mode m) { return (unsigned)m < 3 ? mode_names[m] : "?"; }
int gsq_quant_mode_weight_bits(gsq_quant_mode m) { return m == GSQ_QMODE_INT8 ? 8 : 4; }
int gsq_quant_mode_act_bits(gsq_quant_mode m) { return m == GSQ_QMODE_INT4 ? 4 : 8; }

int gsq_vit_quant_sites(const gsq_vit_config *cfg) { return 1 + 4 * cfg->depth; }

const char *gsq_vit_quant_site_weight(int site, char *buf, size_t cap)
{
    static const char *const kinds[4] = {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};
    if (site <= 0) snprintf(buf, cap, "patch_embed.proj.weight");
    else snprintf(buf, cap, "blocks.%d.%s.weight", (site - 1) / 4, kinds[(site - 1) % 4]);
    return buf;
}

/* Frees every observer (sites, then attention) and clears the pointers. */
static void free_observers(struct gsq_vit_quant *q, int depth)
{
    for (int s = 0; s < q->num_sites; s++) {
        gsq_observer_free(q->sites[s].obs);
        q->sites[s].obs = NULL;
    }
    for (int l = 0; q->attn && l < depth; l++)
        for (int k = 0; k < 3; k++) {
            gsq_observer_free(q->attn[l].obs[k]);
            q->attn[l].obs[k] = NULL;
        }
}

void gsq_vit_quant_disable(gsq_vit *m)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q) return;
    free_observers(q, m->cfg.depth);
    for (int s = 0; s < q->num_sites; s++) {
        free(q->sites[s].w_scales);
        free(q->sites[s].wq);
        free(q->sites[s].xq);
    }
    for (int l = 0; q->attn && l < m->cfg.depth; l++) {
        free(q->attn[l].qkv_q);
        free(q->attn[l].att_q);
    }
    free(q->attn);
    free(q->sites);
    free(q->dw);
    gsq_lsq_free(q->lsq);
    free(q);
    m->quant = NULL;
}

gsq_status gsq_vit_quant_enable(gsq_vit *m, gsq_quant_mode mode, gsq_calib_method weight_calib, gsq_error *err)
{
    if ((unsigned)mode > GSQ_QMODE_W4A8) return gsq_fail(err, GSQ_ERR_ARG, "quantization: unknown mode %d", (int)mode);
    if (weight_calib != GSQ_CALIB_MAX && weight_calib != GSQ_CALIB_MSE)
        return gsq_fail(err, GSQ_ERR_ARG, "quantization: weights calibrate by max or mse, not %s",
                        gsq_calib_name(weight_calib));
    gsq_vit_quant_disable(m);
    const gsq_vit_config *c = &m->cfg;
    struct gsq_vit_quant *q = calloc(1, sizeof *q);
    int n = gsq_vit_quant_sites(c);
    if (!q || !(q->sites = calloc((size_t)n, sizeof *q->sites))) {
        free(q);
        return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory");
    }
    q->mode = mode;
    q->w_qmax = gsq_quant_qmax(gsq_quant_mode_weight_bits(mode));
    q->a_qmax = gsq_quant_qmax(gsq_quant_mode_act_bits(mode));
    q->weight_calib = weight_calib;
    q->num_sites = n;
    m->quant = q;
    size_t T = (size_t)gsq_vit_tokens(c), D = (size_t)c->embed_dim, H = (size_t)c->mlp_hidden, max_w = 0;
    size_t NP = (size_t)gsq_vit_num_patches(c), CPP = (size_t)c->in_chans * c->patch_size * c->patch_size;
    for (int s = 0; s < n; s++) {
        char name[GSQ_NAME_MAX];
        const gsq_param *p = gsq_vit_find_param(m, gsq_vit_quant_site_weight(s, name, sizeof name));
        gsq_qsite *site = &q->sites[s];
        site->w_offset = p->offset;
        site->rows = (int)p->shape[0];
        site->cols = (int)(p->numel / (size_t)p->shape[0]);
        int kind = s == 0 ? -1 : (s - 1) % 4;
        site->in_per_sample = kind < 0 ? NP * CPP : (kind == 3 ? T * H : T * D);
        site->w_scales = malloc((size_t)site->rows * sizeof(float));
        site->wq = malloc(p->numel * sizeof(float));
        if (p->numel > max_w) max_w = p->numel;
        if (!site->w_scales || !site->wq) {
            gsq_vit_quant_disable(m);
            return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory for %s", name);
        }
    }
    if (!(q->dw = malloc(max_w * sizeof(float)))) {
        gsq_vit_quant_disable(m);
        return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory");
    }
    return GSQ_OK;
}

gsq_status gsq_vit_quant_observe_begin(gsq_vit *m, size_t capacity, gsq_error *err)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q) return gsq_fail(err, GSQ_ERR_ARG, "calibration: the model has no quantizers (gsq_vit_quant_enable)");
    free_observers(q, m->cfg.depth);
    for (int s = 0; s < q->num_sites; s++) {
        gsq_status st = gsq_observer_create(&q->sites[s].obs, capacity, (uint64_t)s, err);
        if (st != GSQ_OK) return st;
    }
    for (int l = 0; q->attn && l < m->cfg.depth; l++)
        for (int k = 0; k < 3; k++) {
            gsq_status st = gsq_observer_create(&q->attn[l].obs[k], capacity, (uint64_t)(1000 + 3 * l + k), err);
            if (st != GSQ_OK) return st;
        }
    q->observing = 1;
    q->active = 0;
    return GSQ_OK;
}

gsq_status gsq_vit_quant_enable_attention(gsq_vit *m, gsq_error *err)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || q->active || q->observing)
        return gsq_fail(err, GSQ_ERR_ARG, "attention quantization: enable the quantizers first, before calibrating");
    if (q->attn) return GSQ_OK;
    if (!(q->attn = calloc((size_t)m->cfg.depth, sizeof *q->attn)))
        return gsq_fail(err, GSQ_ERR_NOMEM, "attention quantization: out of memory");
    q->batch_cap = 0; /* buffers are re-sized with the attention ones on the next forward */
    return GSQ_OK;
}

const float *gsq_vit_quant_attention_scales(const gsq_vit *m, int l)
{
    return m->quant && m->quant->attn && l >= 0 && l < m->cfg.depth ? m->quant->attn[l].qkv_scale : NULL;
}

static int all_scales_set(const struct gsq_vit_quant *q, int depth)
{
    int all = 1;
    for (int i = 0; i < q->num_sites; i++) all &= q->sites[i].a_scale > 0.0f;
    for (int l = 0; q->attn && l < depth; l++)
        for (int k = 0; k < 3; k++) all &= q->attn[l].qkv_scale[k] > 0.0f;
    return all;
}

gsq_status gsq_vit_quant_set_attention_scales(gsq_vit *m, int l, const float *scales, gsq_error *err)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->attn || l < 0 || l >= m->cfg.depth)
        return gsq_fail(err, GSQ_ERR_ARG, "attention quantization: block %d has no attention quantizers", l);
    for (int k = 0; k < 3; k++)
        if (!gsq_quant_scale_ok(scales[k]))
            return gsq_fail(err, GSQ_ERR_FORMAT,
                            "attention quantization: block %d scale %g is not a normal positive "
                            "number below 1e30", l, (double)scales[k]);
    for (int k = 0; k < 3; k++) q->attn[l].qkv_scale[k] = scales[k];
    q->active = all_scales_set(q, m->cfg.depth);
    return GSQ_OK;
}

gsq_status gsq_vit_quant_observe_end(gsq_vit *m, gsq_calib_method method, float percentile, gsq_error *err)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->observing) return gsq_fail(err, GSQ_ERR_ARG, "calibration: no observation was started");
    gsq_status st = GSQ_OK;
    for (int s = 0; s < q->num_sites && st == GSQ_OK; s++) {
        st = gsq_observer_scale(q->sites[s].obs, method, percentile, q->a_qmax, &q->sites[s].a_scale, err);
        if (st != GSQ_OK) {
            char name[GSQ_NAME_MAX];
            gsq_error inner = *err;
            st = gsq_fail(err, inner.code, "calibrating the input of %s: %s",
                          gsq_vit_quant_site_weight(s, name, sizeof name), inner.msg);
        }
    }
    static const char *const part[3] = {"Q", "K", "V"};
    for (int l = 0; q->attn && l < m->cfg.depth && st == GSQ_OK; l++)
        for (int k = 0; k < 3 && st == GSQ_OK; k++) {
            st = gsq_observer_scale(q->attn[l].obs[k], method, percentile, q->a_qmax, &q->attn[l].qkv_scale[k], err);
            if (st != GSQ_OK) {
                gsq_error inner = *err;
                st = gsq_fail(err, inner.code, "calibrating block %d's %s: %s", l, part[k], inner.msg);
            }
        }
    free_observers(q, m->cfg.depth);
    q->observing = 0;
    q->active = st == GSQ_OK;
    return st;
}

int gsq_vit_quant_active(const gsq_vit *m) { return m->quant && m->quant->active; }
gsq_quant_mode gsq_vit_quant_mode(const gsq_vit *m) { return m->quant->mode; }
float gsq_vit_quant_act_scale(const gsq_vit *m, int s) { return m->quant->sites[s].a_scale; }
const float *gsq_vit_quant_weight_scales(const gsq_vit *m, int s) { return m->quant->sites[s].w_scales; }

gsq_status gsq_vit_quant_set_act_scale(gsq_vit *m, int s, float scale, gsq_error *err)
{
    if (!m->quant || s < 0 || s >= m->quant->num_sites || !gsq_quant_scale_ok(scale))
        return gsq_fail(err, GSQ_ERR_ARG, "quantization: site %d scale %g is invalid", s, (double)scale);
    m->quant->sites[s].a_scale = scale;
    m->quant->active = all_scales_set(m->quant, m->cfg.depth);
    return GSQ_OK;
}

gsq_status gsq_vit_quant_prepare(gsq_vit *m, int B, gsq_error *err)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->active || B <= q->batch_cap) return GSQ_OK;
    for (int s = 0; s < q->num_sites; s++) {
        free(q->sites[s].xq);
        q->sites[s].xq = malloc((size_t)B * q->sites[s].in_per_sample * sizeof(float));
        if (!q->sites[s].xq) {
            q->batch_cap = 0;
            return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory for a batch of %d", B);
        }
    }
    size_t T = (size_t)gsq_vit_tokens(&m->cfg), D = (size_t)m->cfg.embed_dim, NH = (size_t)m->cfg.num_heads;
    for (int l = 0; q->attn && l < m->cfg.depth; l++) {
        gsq_qattn *a = &q->attn[l];
        free(a->qkv_q);
        free(a->att_q);
        a->qkv_q = malloc((size_t)B * T * 3 * D * sizeof(float));
        a->att_q = malloc((size_t)B * NH * T * T * sizeof(float));
        if (!a->qkv_q || !a->att_q) {
            q->batch_cap = 0;
            return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory for a batch of %d", B);
        }
    }
    gsq_status st = gsq_lsq_prepare(m, B, err);
    q->batch_cap = st == GSQ_OK ? B : 0;
    return st;
}

const float *gsq_qattn_qkv(gsq_vit *m, int l, const float *qkv, size_t rows)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->attn) return qkv;
    gsq_qattn *a = &q->attn[l];
    size_t D = (size_t)m->cfg.embed_dim;
    a->qkv = qkv;
    if (q->observing)
        for (size_t r = 0; r < rows; r++)
            for (int k = 0; k < 3; k++) gsq_observer_observe(a->obs[k], qkv + r * 3 * D + (size_t)k * D, D);
    if (!q->active) return qkv;
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < 3; k++)
            gsq_fake_quant(a->qkv_q + r * 3 * D + (size_t)k * D, qkv + r * 3 * D + (size_t)k * D, D, a->qkv_scale[k],
                           q->a_qmax);
    return a->qkv_q;
}

float *gsq_qattn_probs(gsq_vit *m, int l, float *p_scale, int *p_qmax)
{
    struct gsq_vit_quant *q = m->quant;
    *p_scale = 0.0f;
    *p_qmax = 0;
    if (!q || !q->attn || !q->active) return NULL;
    *p_qmax = q->a_qmax;
    *p_scale = 1.0f / (float)q->a_qmax;
    return q->attn[l].att_q;
}

const float *gsq_qattn_saved_qkv(const gsq_vit *m, int l, const float *qkv)
{
    return m->quant && m->quant->attn && m->quant->active ? m->quant->attn[l].qkv_q : qkv;
}

const float *gsq_qattn_saved_probs(const gsq_vit *m, int l)
{
    return m->quant && m->quant->attn && m->quant->active ? m->quant->attn[l].att_q : NULL;
}

void gsq_qattn_qkv_grad(gsq_vit *m, int l, float *dqkv, size_t rows)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->attn || !q->active) return;
    const gsq_qattn *a = &q->attn[l];
    size_t D = (size_t)m->cfg.embed_dim;
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < 3; k++) {
            size_t o = r * 3 * D + (size_t)k * D;
            gsq_fake_quant_backward(dqkv + o, dqkv + o, a->qkv + o, D, a->qkv_scale[k], q->a_qmax);
        }
}

const float *gsq_qsite_input(gsq_vit *m, int s, const float *x, size_t n)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q) return x;
    gsq_qsite *site = &q->sites[s];
    site->x = x;
    if (q->observing) gsq_observer_observe(site->obs, x, n);
    if (!q->active) return x;
    gsq_fake_quant(site->xq, x, n, site->a_scale, q->a_qmax);
    return site->xq;
}

const float *gsq_qsite_weight(gsq_vit *m, int s, const float *w)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->active) return w;
    gsq_qsite *site = &q->sites[s];
    if (!site->fixed_scales) { /* LSQ starts from the first forward's scales and then learns them */
        gsq_weight_scales(site->w_scales, w, site->rows, site->cols, q->w_qmax, q->weight_calib, NULL);
        site->fixed_scales = q->lsq != NULL;
    }
    gsq_fake_quant_rows(site->wq, w, site->rows, site->cols, site->w_scales, q->w_qmax);
    return site->wq;
}

gsq_status gsq_vit_quant_weight_codes(const gsq_vit *m, int s, int8_t *codes, float *scales, gsq_error *err)
{
    const struct gsq_vit_quant *q = m->quant;
    if (!q || s < 0 || s >= q->num_sites) return gsq_fail(err, GSQ_ERR_ARG, "quantization: no site %d", s);
    const gsq_qsite *site = &q->sites[s];
    const float *w = m->params + site->w_offset;
    if (site->fixed_scales) memcpy(scales, site->w_scales, (size_t)site->rows * sizeof(float));
    else {
        gsq_status st = gsq_weight_scales(scales, w, site->rows, site->cols, q->w_qmax, q->weight_calib, err);
        if (st != GSQ_OK) return st;
    }
    for (int r = 0; r < site->rows; r++)
        gsq_quantize_codes(codes + (size_t)r * site->cols, w + (size_t)r * site->cols, (size_t)site->cols, scales[r],
                           q->w_qmax);
    return GSQ_OK;
}

gsq_status gsq_vit_quant_fix_weight_scales(gsq_vit *m, int s, const float *scales, gsq_error *err)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || s < 0 || s >= q->num_sites) return gsq_fail(err, GSQ_ERR_ARG, "quantization: no site %d", s);
    gsq_qsite *site = &q->sites[s];
    for (int r = 0; r < site->rows; r++)
        if (!gsq_quant_scale_ok(scales[r]))
            return gsq_fail(err, GSQ_ERR_FORMAT,
                            "quantization: weight scale %g of row %d is not a normal positive "
                            "number below 1e30", (double)scales[r], r);
    memcpy(site->w_scales, scales, (size_t)site->rows * sizeof(float));
    site->fixed_scales = 1;
    return GSQ_OK;
}

const float *gsq_qsite_saved_input(const gsq_vit *m, int s, const float *x)
{
    return m->quant && m->quant->active ? m->quant->sites[s].xq : x;
}

const float *gsq_qsite_saved_weight(const gsq_vit *m, int s, const float *w)
{
    return m->quant && m->quant->active ? m->quant->sites[s].wq : w;
}

float *gsq_qsite_dw_target(gsq_vit *m, int s, float *grad)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->active) return grad;
    const gsq_qsite *site = &q->sites[s];
    memset(q->dw, 0, (size_t)site->rows * (size_t)site->cols * sizeof(float));
    return q->dw;
}

void gsq_qsite_dw_finish(gsq_vit *m, int s, float *grad)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->active) return;
    const gsq_qsite *site = &q->sites[s];
    const float *w = m->params + site->w_offset;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < site->rows; r++) {
        size_t o = (size_t)r * (size_t)site->cols;
        /* LSQ's scale gradient needs dw before the STE of each row's quantizer, then accumulate */
        if (q->lsq) gsq_lsq_row_grad(m, s, r, q->dw + o);
        gsq_fake_quant_backward(q->dw + o, q->dw + o, w + o, (size_t)site->cols, site->w_scales[r], q->w_qmax);
        for (int c = 0; c < site->cols; c++) grad[o + c] += q->dw[o + c];
    }
}

void gsq_qsite_input_grad(gsq_vit *m, int s, float *dx, size_t n)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->active || !dx) return;
    const gsq_qsite *site = &q->sites[s];
    if (q->lsq) gsq_lsq_act_grad(m, s, dx, n);
    gsq_fake_quant_backward(dx, dx, site->x, n, site->a_scale, q->a_qmax);
}

float *gsq_qsite_patch_dx(gsq_vit *m, size_t n)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->active || !q->lsq) return NULL;
    memset(q->lsq->dpatches, 0, n * sizeof(float));
    return q->lsq->dpatches;
}
