/* The gradient sum of a training step across micro-batches and processes (grad_sync.h). */
#include <stdlib.h>
#include <string.h>

#include "gpusq/clock.h"
#include "gpusq/graph.h"
#include "train/grad_sync.h"

typedef struct {
    int block;          /* which learned block */
    size_t lo, hi;      /* floats of the block */
    int ready;          /* the node after whose backward its gradients are final; -1: at the end */
    gsq_comm_sum *sum;  /* in flight, or NULL */
} bucket;

struct gsq_grad_sync {
    gsq_model *model;
    gsq_comm *comm;
    gsq_param_block blocks[GSQ_MAX_BLOCKS];
    int num_blocks;
    float *acc[GSQ_MAX_BLOCKS];  /* the step's sums */
    bucket *buckets;
    int num_buckets;
    int next;                    /* buckets start in index order, the same on every rank */
    unsigned char *contributes;  /* (size) this round's */
    float weight;
    gsq_status st;               /* the first failure seen inside backward's hook */
    gsq_error err;
    double wait;
};

/* Starts bucket b: this rank's contribution is its gradients times the round's weight. */
static gsq_status start(gsq_grad_sync *s, bucket *b, gsq_error *err)
{
    float *g = s->blocks[b->block].grads;
    if (s->contributes[s->comm->rank]) {
        float w = s->weight;
        for (size_t i = b->lo; i < b->hi; i++) g[i] *= w;
    }
    return gsq_comm_sum_start(s->comm, s->acc[b->block] + b->lo, g + b->lo, b->hi - b->lo, s->contributes,
                              (int)(b - s->buckets), &b->sum, err);
}

/* After node `node`'s backward: start the next buckets while they are final (in index order, so
 * every rank starts them in the same order whatever its backward did), and let MPI progress the
 * sums in flight. */
static void hook(void *user, int node)
{
    gsq_grad_sync *s = user;
    while (s->st == GSQ_OK && s->next < s->num_buckets && s->buckets[s->next].ready >= node)
        s->st = start(s, &s->buckets[s->next++], &s->err);
    for (int k = 0; s->st == GSQ_OK && k < s->next; k++) {
        int done = 0;
        if (s->buckets[k].sum) s->st = gsq_comm_sum_test(s->comm, s->buckets[k].sum, &done, &s->err);
    }
}

/* The node after whose backward each tensor's gradient is final: the first node (the last to run
 * backward) that writes it; -1 for tensors no node writes. */
static void final_nodes(const gsq_model *m, int *final)
{
    const gsq_graph *g = gsq_model_graph(m);
    int T = gsq_model_num_tensors(m);
    for (int t = 0; t < T; t++) final[t] = -1;
    for (int i = g->num_nodes - 1; i >= 0; i--) {
        const gsq_node *n = &g->nodes[i];
        int p[5] = {n->param[0], n->param[1], n->param[2], -1, -1};
        if (n->op == GSQ_OP_LINEAR) {
            p[3] = g->linears[n->linear].weight;
            p[4] = g->linears[n->linear].bias;
        }
        for (int k = 0; k < 5; k++)
            if (p[k] >= 0 && p[k] < T) final[p[k]] = i;
    }
}

gsq_status gsq_grad_sync_create(gsq_grad_sync **out, gsq_model *m, gsq_comm *c, size_t bucket_floats,
                                gsq_error *err)
{
    *out = NULL;
    gsq_grad_sync *s = calloc(1, sizeof *s);
    int T = gsq_model_num_tensors(m);
    int *final = malloc(((size_t)T + 1) * sizeof(int));
    if (!s || !final) {
        free(s);
        free(final);
        return gsq_fail(err, GSQ_ERR_NOMEM, "gradient sum: out of memory");
    }
    s->model = m;
    s->comm = c;
    s->num_blocks = gsq_model_blocks(m, s->blocks);
    final_nodes(m, final);
    int max_buckets = T + 1;
    for (int k = 1; k < s->num_blocks; k++) max_buckets += (int)(s->blocks[k].n / bucket_floats) + 1;
    s->buckets = calloc((size_t)max_buckets, sizeof *s->buckets);
    s->contributes = calloc((size_t)c->size, 1);
    int ok = s->buckets && s->contributes;
    for (int k = 0; ok && k < s->num_blocks; k++) ok = (s->acc[k] = malloc((s->blocks[k].n + 1) * sizeof(float))) != NULL;
    if (!ok) {
        free(final);
        gsq_grad_sync_free(s);
        return gsq_fail(err, GSQ_ERR_NOMEM, "gradient sum: out of memory for %zu gradients", gsq_model_num_params(m));
    }
    /* the parameters: whole tensors from the end of the table (the head, the last block: the
     * first final in backward) to the start */
    for (int t = T - 1; t >= 0;) {
        bucket *b = &s->buckets[s->num_buckets++];
        const gsq_param *p = gsq_model_tensor(m, t);
        *b = (bucket){.block = 0, .lo = p->offset, .hi = p->offset + p->numel, .ready = final[t]};
        for (t--; t >= 0; t--) {
            const gsq_param *q = gsq_model_tensor(m, t);
            if (b->hi - q->offset > bucket_floats || q->offset + q->numel != b->lo) break;
            b->lo = q->offset;
            if (final[t] < b->ready) b->ready = final[t];
        }
    }
    /* the other blocks (LSQ's scales) at the end of backward */
    for (int k = 1; k < s->num_blocks; k++)
        for (size_t lo = 0; lo < s->blocks[k].n; lo += bucket_floats) {
            size_t hi = lo + bucket_floats < s->blocks[k].n ? lo + bucket_floats : s->blocks[k].n;
            s->buckets[s->num_buckets++] = (bucket){.block = k, .lo = lo, .hi = hi, .ready = -1};
        }
    free(final);
    *out = s;
    return GSQ_OK;
}

void gsq_grad_sync_free(gsq_grad_sync *s)
{
    if (!s) return;
    gsq_model_set_backward_hook(s->model, NULL, NULL);
    for (int k = 0; s->buckets && k < s->num_buckets; k++) gsq_comm_sum_free(s->comm, s->buckets[k].sum);
    for (int k = 0; k < GSQ_MAX_BLOCKS; k++) free(s->acc[k]);
    free(s->buckets);
    free(s->contributes);
    free(s);
}

void gsq_grad_sync_zero(gsq_grad_sync *s)
{
    for (int k = 0; k < s->num_blocks; k++) memset(s->acc[k], 0, s->blocks[k].n * sizeof(float));
}

void gsq_grad_sync_begin_round(gsq_grad_sync *s, const unsigned char *contributes, float weight)
{
    memcpy(s->contributes, contributes, (size_t)s->comm->size);
    s->weight = weight;
    s->st = GSQ_OK;
    s->next = 0;
    gsq_model_set_backward_hook(s->model, hook, s);
}

gsq_status gsq_grad_sync_end_round(gsq_grad_sync *s, gsq_error *err)
{
    gsq_model_set_backward_hook(s->model, NULL, NULL);
    gsq_status st = s->st;
    if (st != GSQ_OK && err) *err = s->err;
    double t0 = gsq_seconds();
    while (s->next < s->num_buckets) { /* every one, whatever failed: the others wait for them */
        gsq_status bs = start(s, &s->buckets[s->next++], st == GSQ_OK ? err : NULL);
        if (st == GSQ_OK) st = bs;
    }
    for (int k = 0; k < s->num_buckets; k++) {
        bucket *b = &s->buckets[k];
        if (!b->sum) continue;
        gsq_status w = gsq_comm_sum_wait(s->comm, b->sum, st == GSQ_OK ? err : NULL);
        b->sum = NULL;
        if (st == GSQ_OK) st = w;
    }
    s->wait += gsq_seconds() - t0;
    return st;
}

void gsq_grad_sync_finish(gsq_grad_sync *s, float inv)
{
    for (int k = 0; k < s->num_blocks; k++) {
        float *g = s->blocks[k].grads;
        const float *a = s->acc[k];
        #pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < s->blocks[k].n; i++) g[i] = a[i] * inv;
    }
}

double gsq_grad_sync_take_wait(gsq_grad_sync *s)
{
    double w = s->wait;
    s->wait = 0;
    return w;
}
