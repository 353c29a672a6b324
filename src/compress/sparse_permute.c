/* Channel permutation for N:M sparsity: reorders the MLP hidden channels and each head's V
 * channels so that the magnitude masks of fc2 and attn.proj keep more of their weights, without
 * changing the dense model's function — the layers found in the model's graph, not by name (include/gpusq/sparse.h says which reorderings are allowed,
 * docs/SPARSITY.md how the search works and what it gains). */
#include "gpusq/sparse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/graph.h"
#include "gpusq/kernels.h"
#include "models/model_state.h"

#define MAXF(a, b) ((a) > (b) ? (a) : (b)) /* written as compares so the row loops vectorize */
#define MINF(a, b) ((a) < (b) ? (a) : (b))
#define LANES 8
#define NOISE 1e-6 /* gains below this fraction of the groups' value are float rounding, not gains */

/* One column block to reorder: columns [0, n) of w (row stride ld, `rows` rows); perm gets the
 * result, perm[j] = the block's original column now at position j. */
typedef struct {
    const float *w;
    size_t ld;
    int rows, n;
    int *perm;
    gsq_status st;
} perm_job;

/* The search state: |w| transposed so each channel is a contiguous, zero-padded column. */
typedef struct {
    gsq_sparse_pattern p;
    int G, ngroups, R;  /* R: rows rounded up to LANES */
    float *a;           /* (n, R) */
    int *pos;           /* (n) channel at each position */
    double *value;      /* (ngroups) kept magnitude of each group */
} search;

/* The kept |w| of one row of a group, given the 4 magnitudes that compete: the largest + the second. */
static inline float top2_sum(float x0, float x1, float x2, float x3)
{
    float h01 = MAXF(x0, x1), l01 = MINF(x0, x1), h23 = MAXF(x2, x3), l23 = MINF(x2, x3);
    return MAXF(h01, h23) + MAXF(MINF(h01, h23), MAXF(l01, l23));
}

static double lanes_sum(const float *acc)
{
    double v = 0;
    for (int i = 0; i < LANES; i++) v += acc[i];
    return v;
}

/* Σ over rows of the kept |w| of one group whose channels are c[0..G): the 2 largest values (2:4)
 * or the 2 largest aligned-pair sums (4:8). Accumulated in LANES fixed float lanes, so the result
 * does not depend on the machine's vector width; it depends only on which channels (2:4) or which
 * pairs (4:8) form the group, never on their order. */
static double value_2_4(const float *restrict c0, const float *restrict c1, const float *restrict c2,
                        const float *restrict c3, int R)
{
    float acc[LANES] = {0};
    for (int r = 0; r < R; r += LANES)
        for (int i = 0; i < LANES; i++) acc[i] += top2_sum(c0[r + i], c1[r + i], c2[r + i], c3[r + i]);
    return lanes_sum(acc);
}

static double value_4_8(const float *const *c, int R)
{
    const float *restrict c0 = c[0], *restrict c1 = c[1], *restrict c2 = c[2], *restrict c3 = c[3];
    const float *restrict c4 = c[4], *restrict c5 = c[5], *restrict c6 = c[6], *restrict c7 = c[7];
    float acc[LANES] = {0};
    for (int r = 0; r < R; r += LANES)
        for (int i = 0; i < LANES; i++)
            acc[i] += top2_sum(c0[r + i] + c1[r + i], c2[r + i] + c3[r + i], c4[r + i] + c5[r + i],
                               c6[r + i] + c7[r + i]);
    return lanes_sum(acc);
}

/* The value of group g with position `slot` (0..G-1) holding channel c instead (c < 0: as it is). */
static double value_with(const search *s, int g, int slot, int c)
{
    const float *col[8];
    for (int k = 0; k < s->G; k++) {
        int ch = k == slot && c >= 0 ? c : s->pos[g * s->G + k];
        col[k] = s->a + (size_t)ch * (size_t)s->R;
    }
    return s->p == GSQ_SPARSE_2_4 ? value_2_4(col[0], col[1], col[2], col[3], s->R) : value_4_8(col, s->R);
}

static double total_value(search *s)
{
    double v = 0;
    for (int g = 0; g < s->ngroups; g++) v += s->value[g] = value_with(s, g, -1, -1);
    return v;
}

/* The best improving swap of two channels between groups g1 != g2 is applied; returns 1 when there
 * was one. A channel keeps the position of the one it replaces, which for 4:8 decides its pair. */
static int swap_between(search *s, int g1, int g2)
{
    int G = s->G, bi = -1, bj = -1;
    double best = 0, v1best = 0, v2best = 0, before = s->value[g1] + s->value[g2];
    for (int i = 0; i < G; i++) {
        for (int j = 0; j < G; j++) {
            double v1 = value_with(s, g1, i, s->pos[g2 * G + j]);
            double v2 = value_with(s, g2, j, s->pos[g1 * G + i]);
            double gain = (v1 + v2) - before;
            if (gain > best && gain > NOISE * before) best = gain, bi = i, bj = j, v1best = v1, v2best = v2;
        }
    }
    if (bi < 0) return 0;
    int t = s->pos[g1 * G + bi];
    s->pos[g1 * G + bi] = s->pos[g2 * G + bj];
    s->pos[g2 * G + bj] = t;
    s->value[g1] = v1best, s->value[g2] = v2best;
    return 1;
}

static int gcd(int a, int b)
{
    while (b) {
        int t = a % b;
        a = b, b = t;
    }
    return a;
}

/* Channels sorted by Σ|w| (largest first, ties by index) and dealt so that position k of group g
 * gets rank g + k·ngroups: every group receives one channel from each G-quantile, and the top half
 * lands on the positions (2:4) or pairs (4:8) that column-uniform magnitudes would keep. */
static int by_norm_desc(const void *x, const void *y)
{
    const double *a = x, *b = y; /* {norm, index} */
    if (a[0] != b[0]) return a[0] < b[0] ? 1 : -1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

static gsq_status sorted_deal(search *s, int n)
{
    double *order = malloc((size_t)n * 2 * sizeof *order);
    if (!order) return GSQ_ERR_NOMEM;
    for (int c = 0; c < n; c++) {
        double norm = 0;
        for (int r = 0; r < s->R; r++) norm += s->a[(size_t)c * (size_t)s->R + r];
        order[2 * c] = norm, order[2 * c + 1] = c;
    }
    qsort(order, (size_t)n, 2 * sizeof *order, by_norm_desc);
    for (int g = 0; g < s->ngroups; g++)
        for (int k = 0; k < s->G; k++) s->pos[g * s->G + k] = (int)order[2 * (g + k * s->ngroups) + 1];
    free(order);
    return GSQ_OK;
}

/* Local search from the better of identity and the sorted deal. Pass t pairs every group with the
 * group at offset d_t; a round of ngroups/2 passes meets every pair of groups once (offsets spread
 * over 1..ngroups/2 by a stride coprime with ngroups/2). A round without a gain is a local optimum. */
static gsq_status run_search(search *s, int n, int effort)
{
    for (int c = 0; c < n; c++) s->pos[c] = c;
    double identity = total_value(s);
    gsq_status st = sorted_deal(s, n);
    if (st != GSQ_OK) return st;
    if (total_value(s) <= identity) {
        for (int c = 0; c < n; c++) s->pos[c] = c;
        total_value(s);
    }
    int half = s->ngroups / 2;
    if (half == 0) return GSQ_OK;
    int stride = half > 2 ? (int)(0.618 * half) : 1;
    while (gcd(stride, half) != 1) stride++;
    for (int t = 0, idle = 0; t < effort && idle < half; t++) {
        int d = 1 + (int)(((long)(t % half) * stride) % half), improved = 0;
        for (int g = 0; g < s->ngroups; g++) {
            int g2 = (g + d) % s->ngroups;
            if (2 * d == s->ngroups && g2 < g) continue; /* this offset meets each pair twice */
            improved |= swap_between(s, g, g2);
        }
        idle = improved ? 0 : idle + 1;
    }
    return GSQ_OK;
}

static void run_job(perm_job *job, gsq_sparse_pattern p, int effort)
{
    search s = {.p = p, .G = gsq_sparse_group(p)};
    s.ngroups = job->n / s.G;
    s.R = (job->rows + LANES - 1) / LANES * LANES;
    s.a = calloc((size_t)job->n * (size_t)s.R, sizeof *s.a);
    s.pos = malloc((size_t)job->n * sizeof *s.pos);
    s.value = malloc((size_t)s.ngroups * sizeof *s.value);
    job->st = GSQ_ERR_NOMEM;
    if (s.a && s.pos && s.value) {
        for (int r = 0; r < job->rows; r++)
            for (int c = 0; c < job->n; c++)
                s.a[(size_t)c * (size_t)s.R + r] = fabsf(job->w[(size_t)r * job->ld + c]);
        job->st = run_search(&s, job->n, effort);
        if (job->st == GSQ_OK) memcpy(job->perm, s.pos, (size_t)job->n * sizeof *s.pos);
    }
    free(s.a);
    free(s.pos);
    free(s.value);
}

/* dst (rows, cols) = src with its columns [c0, c0 + n) reordered by perm. */
static void permute_cols(float *dst, const float *src, int rows, int cols, int c0, int n, const int *perm)
{
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * cols;
        float *d = dst + (size_t)r * cols;
        for (int j = 0; j < n; j++) d[c0 + j] = s[c0 + perm[j]];
    }
}

/* Rows [r0, r0 + n) of x (row length len) reordered by perm, through scratch. */
static void permute_rows(float *x, int len, int r0, int n, const int *perm, float *scratch)
{
    memcpy(scratch, x + (size_t)r0 * len, (size_t)n * len * sizeof *x);
    for (int j = 0; j < n; j++)
        memcpy(x + (size_t)(r0 + j) * len, scratch + (size_t)perm[j] * len, (size_t)len * sizeof *x);
}

/* Reorders the columns of w (rows, cols), each span of `span` columns by its own slice of perm,
 * when that keeps at least as much as before (it always should; the check makes "never worse"
 * exact). Returns 1 when applied; records both fractions. */
static int regroup(float *w, int rows, int cols, int span, const int *perm, gsq_sparse_pattern p,
                   float *scratch, gsq_permute_report *rep)
{
    for (int c0 = 0; c0 < cols; c0 += span) permute_cols(scratch, w, rows, cols, c0, span, perm + c0);
    rep->kept_before = gsq_sparse_kept_fraction(w, rows, cols, p);
    rep->kept_after = gsq_sparse_kept_fraction(scratch, rows, cols, p);
    if (rep->kept_after < rep->kept_before) {
        rep->kept_after = rep->kept_before;
        return 0;
    }
    memcpy(w, scratch, (size_t)rows * cols * sizeof *w);
    return 1;
}

static int all_finite(const float *x, size_t n)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= isfinite(x[i]) != 0;
    return ok;
}

/* A linear whose input channels may be reordered, found in the graph: its input is made
 * channel by channel from the rows of one producer linear — through an elementwise GELU (the MLP:
 * every channel free), or through attention (each head's slice of the V section of qkv: channels
 * move within a head). */
typedef struct {
    int linear;   /* the regrouped linear (its columns) */
    int producer; /* the linear whose rows follow (and bias) */
    int span;     /* columns that move together: all of them, or a head's */
    int row0;     /* the producer's first row that follows (the V section's) */
} permutable;

/* How many inputs of g's nodes are value v. */
static int readers(const gsq_graph *g, int v)
{
    int n = 0;
    for (int i = 0; i < g->num_nodes; i++) n += (g->nodes[i].in[0] == v) + (g->nodes[i].in[1] == v);
    return n;
}

/* Fills out (room for g->num_linears) with the permutable linears in graph order whose spans are
 * multiples of the group G; returns their count. */
static int find_permutable(const gsq_graph *g, int G, permutable *out)
{
    int n = 0;
    for (int i = 0; i < g->num_nodes; i++) {
        const gsq_node *l = &g->nodes[i];
        if (l->op != GSQ_OP_LINEAR || !g->linears[l->linear].compressed || readers(g, l->in[0]) != 1) continue;
        int mid = g->values[l->in[0]].producer;
        const gsq_node *m = mid >= 0 ? &g->nodes[mid] : NULL;
        if (!m || (m->op != GSQ_OP_GELU && m->op != GSQ_OP_ATTENTION)) continue;
        int src = g->values[m->in[0]].producer;
        const gsq_node *p = src >= 0 ? &g->nodes[src] : NULL;
        if (!p || p->op != GSQ_OP_LINEAR || p->in[1] >= 0 || readers(g, m->in[0]) != 1) continue;
        int cols = g->linears[l->linear].cols;
        permutable c = {l->linear, p->linear, cols, 0};
        if (m->op == GSQ_OP_ATTENTION) c.span = cols / m->attrs[0], c.row0 = 2 * cols; /* rows of V */
        if (c.span % G == 0) out[n++] = c;
    }
    return n;
}

gsq_status gsq_sparse_permute(gsq_model *m, gsq_sparse_pattern p, int effort, gsq_permute_report *reports,
                              int max_reports, int *num_reports, gsq_error *err)
{
    *num_reports = 0;
    if (!m || !m->params) return gsq_fail(err, GSQ_ERR_ARG, "permute: the model has no parameters");
    if (p != GSQ_SPARSE_2_4 && p != GSQ_SPARSE_4_8)
        return gsq_fail(err, GSQ_ERR_ARG, "permute: unknown pattern %d", (int)p);
    if (effort < 0) return gsq_fail(err, GSQ_ERR_ARG, "permute: effort %d must not be negative", effort);
    gsq_flush_denormals(); /* its OpenMP workers search on the weights */
    const gsq_graph *g = m->graph;
    permutable *cand = malloc((size_t)g->num_linears * sizeof *cand);
    if (!cand) return gsq_fail(err, GSQ_ERR_NOMEM, "permute: out of memory");
    int ncand = find_permutable(g, gsq_sparse_group(p), cand);
    if (reports && ncand > max_reports) {
        free(cand);
        return gsq_fail(err, GSQ_ERR_ARG, "permute: %d layers to report, room for %d", ncand, max_reports);
    }
    /* jobs: each span of each candidate's columns; perms: a candidate's columns each */
    int njobs = 0;
    size_t nperm = 0, scratch_len = 0;
    for (int k = 0; k < ncand; k++) {
        const gsq_linear *l = &g->linears[cand[k].linear], *src = &g->linears[cand[k].producer];
        float *w = m->params + m->tensors[l->weight].offset;
        if (!all_finite(w, (size_t)l->rows * l->cols)) {
            free(cand);
            return gsq_fail(err, GSQ_ERR_ARG, "permute: %s.weight holds a non-finite value", l->name);
        }
        njobs += l->cols / cand[k].span;
        nperm += (size_t)l->cols;
        size_t big = (size_t)l->rows * l->cols > (size_t)src->rows * src->cols ? (size_t)l->rows * l->cols
                                                                                 : (size_t)src->rows * src->cols;
        scratch_len = big > scratch_len ? big : scratch_len;
    }
    perm_job *jobs = calloc((size_t)(njobs ? njobs : 1), sizeof *jobs);
    int *perms = malloc((nperm ? nperm : 1) * sizeof *perms);
    float *scratch = malloc((scratch_len ? scratch_len : 1) * sizeof *scratch);
    if (!jobs || !perms || !scratch) {
        free(cand), free(jobs), free(perms), free(scratch);
        return gsq_fail(err, GSQ_ERR_NOMEM, "permute: out of memory");
    }
    perm_job *j = jobs;
    int *perm = perms;
    for (int k = 0; k < ncand; k++) {
        const gsq_linear *l = &g->linears[cand[k].linear];
        const float *w = m->params + m->tensors[l->weight].offset;
        for (int c0 = 0; c0 < l->cols; c0 += cand[k].span)
            *j++ = (perm_job){w + c0, (size_t)l->cols, l->rows, cand[k].span, perm + c0, GSQ_OK};
        perm += l->cols;
    }
    #pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < njobs; i++) run_job(&jobs[i], p, effort);
    gsq_status st = GSQ_OK;
    for (int i = 0; i < njobs; i++)
        if (jobs[i].st != GSQ_OK) st = gsq_fail(err, jobs[i].st, "permute: out of memory searching a permutation");

    perm = perms;
    for (int k = 0; st == GSQ_OK && k < ncand; k++) { /* regroup, and the producer's rows follow */
        const gsq_linear *l = &g->linears[cand[k].linear], *src = &g->linears[cand[k].producer];
        float *w = m->params + m->tensors[l->weight].offset;
        float *pw = m->params + m->tensors[src->weight].offset;
        float *pb = src->bias >= 0 ? m->params + m->tensors[src->bias].offset : NULL;
        gsq_permute_report rep;
        snprintf(rep.name, sizeof rep.name, "%s", m->tensors[l->weight].name);
        if (regroup(w, l->rows, l->cols, cand[k].span, perm, p, scratch, &rep))
            for (int c0 = 0; c0 < l->cols; c0 += cand[k].span) {
                permute_rows(pw, src->cols, cand[k].row0 + c0, cand[k].span, perm + c0, scratch);
                if (pb) permute_rows(pb, 1, cand[k].row0 + c0, cand[k].span, perm + c0, scratch);
            }
        if (reports) reports[*num_reports] = rep;
        ++*num_reports;
        perm += l->cols;
    }
    free(cand), free(jobs), free(perms), free(scratch);
    return st;
}
