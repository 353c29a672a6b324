/* N:M masks: the 2:4 and paired 4:8 patterns, magnitude selection within one group, pattern checks,
 * and the model-level plan (which of the model's linears are pruned, and their mask laid out like
 * the parameter block). */
#include "gpusq/sparse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/graph.h"
#include "models/model_state.h"

gsq_status gsq_sparse_pattern_parse(const char *s, gsq_sparse_pattern *out, gsq_error *err)
{
    if (s && strcmp(s, "2:4") == 0) *out = GSQ_SPARSE_2_4;
    else if (s && strcmp(s, "4:8") == 0) *out = GSQ_SPARSE_4_8;
    else return gsq_fail(err, GSQ_ERR_ARG, "unknown sparsity pattern '%s' (2:4 or 4:8)", s ? s : "(null)");
    return GSQ_OK;
}

const char *gsq_sparse_pattern_name(gsq_sparse_pattern p) { return gsq_sparse_format_of(p)->name; }

int gsq_sparse_group(gsq_sparse_pattern p) { return gsq_sparse_format_of(p)->group; }

/* |x| as a selection key, NaN ranked above everything so a group never keeps more than its share. */
static inline float key(float x)
{
    float a = fabsf(x);
    return a == a ? a : INFINITY;
}

/* The 2 winners among n keys: k[j] beats k[i] when larger, or equal at a lower index. */
static void top2(const float *k, int n, uint8_t *win)
{
    for (int i = 0; i < n; i++) {
        int beaten = 0;
        for (int j = 0; j < n; j++) beaten += k[j] > k[i] || (k[j] == k[i] && j < i);
        win[i] = beaten < 2;
    }
}

/* Keep flags of one group of w (4 or 8 values). */
static void group_keep(const float *w, gsq_sparse_pattern p, uint8_t *keep)
{
    float k[4];
    if (p == GSQ_SPARSE_2_4) {
        for (int i = 0; i < 4; i++) k[i] = key(w[i]);
        top2(k, 4, keep);
        return;
    }
    uint8_t pair[4];
    for (int j = 0; j < 4; j++) k[j] = key(w[2 * j]) + key(w[2 * j + 1]);
    top2(k, 4, pair);
    for (int i = 0; i < 8; i++) keep[i] = pair[i / 2];
}

void gsq_sparse_mask_magnitude(const float *w, int rows, int cols, gsq_sparse_pattern p, uint8_t *mask)
{
    int G = gsq_sparse_group(p);
    size_t n = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < n; i += (size_t)G) group_keep(w + i, p, mask + i);
}

int gsq_sparse_check(const float *w, int rows, int cols, gsq_sparse_pattern p)
{
    int G = gsq_sparse_group(p);
    size_t n = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < n; i += (size_t)G) {
        int used = 0; /* nonzero values (2:4) or pairs holding a nonzero (4:8) */
        if (p == GSQ_SPARSE_2_4)
            for (int j = 0; j < 4; j++) used += w[i + j] != 0.0f;
        else
            for (int j = 0; j < 8; j += 2) used += w[i + j] != 0.0f || w[i + j + 1] != 0.0f;
        if (used > 2) return 0;
    }
    return 1;
}

/* Σ|w| of one group of G values into *total, and of the kept ones into *kept. */
static void add_group(const float *w, const uint8_t *keep, int G, double *kept, double *total)
{
    for (int j = 0; j < G; j++) {
        double a = fabs((double)w[j]);
        *total += a;
        *kept += keep[j] ? a : 0.0;
    }
}

double gsq_sparse_kept_fraction(const float *w, int rows, int cols, gsq_sparse_pattern p)
{
    int G = gsq_sparse_group(p);
    size_t n = (size_t)rows * (size_t)cols;
    double kept = 0, total = 0;
    uint8_t keep[8];
    for (size_t i = 0; i < n; i += (size_t)G) {
        group_keep(w + i, p, keep);
        add_group(w + i, keep, G, &kept, &total);
    }
    return total > 0 ? kept / total : 1.0;
}

/* gsq_sparse_kept_fraction of a mask already chosen (the same sums in the same order). */
static double masked_fraction(const float *w, const uint8_t *mask, int rows, int cols, gsq_sparse_pattern p)
{
    int G = gsq_sparse_group(p);
    size_t n = (size_t)rows * (size_t)cols;
    double kept = 0, total = 0;
    for (size_t i = 0; i < n; i += (size_t)G) add_group(w + i, mask + i, G, &kept, &total);
    return total > 0 ? kept / total : 1.0;
}

/* Fills the candidate table and an all-ones mask; decides the layers that cannot be pruned. */
static gsq_status plan_init(gsq_sparse_plan *plan, const gsq_model *m, gsq_sparse_pattern p, int include_head,
                            gsq_error *err)
{
    memset(plan, 0, sizeof *plan);
    if (!m || !m->params) return gsq_fail(err, GSQ_ERR_ARG, "sparsity plan: the model has no parameters");
    if (p != GSQ_SPARSE_2_4 && p != GSQ_SPARSE_4_8)
        return gsq_fail(err, GSQ_ERR_ARG, "sparsity plan: unknown pattern %d", (int)p);
    const gsq_graph *g = m->graph;
    plan->layers = calloc((size_t)g->num_linears, sizeof *plan->layers);
    plan->mask = malloc(m->num_params);
    if (!plan->layers || !plan->mask) {
        gsq_sparse_plan_free(plan);
        return gsq_fail(err, GSQ_ERR_NOMEM, "sparsity plan: out of memory for a mask of %zu parameters",
                        m->num_params);
    }
    memset(plan->mask, 1, m->num_params);
    plan->pattern = p;
    plan->num_params = m->num_params;
    int G = gsq_sparse_group(p);
    for (int i = 0; i < g->num_linears; i++) { /* the layers are the graph's linears, in its order */
        const gsq_linear *lin = &g->linears[i];
        const gsq_param *t = &m->tensors[lin->weight];
        gsq_sparse_layer *l = &plan->layers[plan->num_layers++];
        snprintf(l->name, sizeof l->name, "%s", t->name);
        l->offset = t->offset;
        l->rows = lin->rows;
        l->cols = lin->cols;
        l->kept_magnitude = 1.0;
        if (!lin->compressed && !include_head)
            l->skip_reason = "classifier head (--prune-head to include)";
        else if (l->cols % G != 0)
            l->skip_reason = G == 4 ? "input size is not a multiple of 4" : "input size is not a multiple of 8";
        l->pruned = l->skip_reason == NULL;
    }
    return GSQ_OK;
}

/* The masks of a plan's pruned layers: by magnitude, or (from_weights) where the weights are
 * non-zero, leaving dense any layer whose weights break the pattern. */
static gsq_status plan_masks(gsq_sparse_plan *plan, const gsq_model *m, gsq_sparse_pattern p, int include_head,
                             int from_weights, gsq_error *err)
{
    gsq_status st = plan_init(plan, m, p, include_head, err);
    if (st != GSQ_OK) return st;
    for (int i = 0; i < plan->num_layers; i++) {
        gsq_sparse_layer *l = &plan->layers[i];
        if (!l->pruned) continue;
        const float *w = m->params + l->offset;
        if (!from_weights) {
            gsq_sparse_mask_magnitude(w, l->rows, l->cols, p, plan->mask + l->offset);
            l->kept_magnitude = masked_fraction(w, plan->mask + l->offset, l->rows, l->cols, p);
        } else if (!gsq_sparse_check(w, l->rows, l->cols, p)) {
            l->pruned = 0;
            l->skip_reason = p == GSQ_SPARSE_2_4 ? "weights do not obey 2:4" : "weights do not obey 4:8";
        } else {
            size_t n = (size_t)l->rows * (size_t)l->cols;
            for (size_t j = 0; j < n; j++) plan->mask[l->offset + j] = w[j] != 0.0f;
        }
    }
    return GSQ_OK;
}

gsq_status gsq_sparse_plan_magnitude(gsq_sparse_plan *plan, const gsq_model *m, gsq_sparse_pattern p,
                                     int include_head, gsq_error *err)
{
    return plan_masks(plan, m, p, include_head, 0, err);
}

gsq_status gsq_sparse_plan_from_weights(gsq_sparse_plan *plan, const gsq_model *m, gsq_sparse_pattern p,
                                        int include_head, gsq_error *err)
{
    return plan_masks(plan, m, p, include_head, 1, err);
}

void gsq_sparse_apply(const gsq_sparse_plan *plan, float *block)
{
    for (int i = 0; i < plan->num_layers; i++) {
        const gsq_sparse_layer *l = &plan->layers[i];
        if (!l->pruned) continue;
        size_t n = (size_t)l->rows * (size_t)l->cols;
        const uint8_t *mask = plan->mask + l->offset;
        float *x = block + l->offset;
        for (size_t j = 0; j < n; j++)
            if (!mask[j]) x[j] = 0.0f;
    }
}

double gsq_sparse_plan_sparsity(const gsq_sparse_plan *plan)
{
    size_t zeros = 0, total = 0;
    for (int i = 0; i < plan->num_layers; i++) {
        const gsq_sparse_layer *l = &plan->layers[i];
        size_t n = (size_t)l->rows * (size_t)l->cols;
        total += n;
        for (size_t j = 0; j < n; j++) zeros += plan->mask[l->offset + j] == 0;
    }
    return total ? (double)zeros / (double)total : 0.0;
}

int gsq_sparse_plan_prunes(const gsq_sparse_plan *plan, int linear)
{
    return linear >= 0 && linear < plan->num_layers && plan->layers[linear].pruned;
}

void gsq_sparse_plan_free(gsq_sparse_plan *plan)
{
    if (!plan) return;
    free(plan->layers);
    free(plan->mask);
    memset(plan, 0, sizeof *plan);
}
