/* The network description (gpusq/graph.h): the planner never overlaps arrays alive together, the
 * ViT builder's graph is well formed for every kind of configuration (names, linears, topological
 * order, MACs against the closed form), the engine's plan makes the fusions each backend asks
 * for, and the inference forward gives the training forward's logits bit for bit in a fraction
 * of the memory, keeping only the taps. */
#include <string.h>

#include "engine/engine_plan.h"
#include "gpusq/graph.h"
#include "gpusq/vit.h"
#include "test_util.h"
#include "models/model_state.h" /* white-box: the model's fields */

static const gsq_vit_config configs[] = {
    /* class token, token pooling */
    {16, 4, 3, 5, 24, 2, 3, 48, 1, 1, 0, GSQ_POOL_TOKEN, 1e-6f, GSQ_TASK_CLASSIFY, GSQ_SEG_HEAD_LINEAR, {0, 0}},
    /* DeiT distilled: two heads over tokens 0 and 1 */
    {16, 4, 3, 7, 32, 3, 2, 64, 1, 1, 1, GSQ_POOL_TOKEN, 1e-6f, GSQ_TASK_CLASSIFY, GSQ_SEG_HEAD_LINEAR, {0, 0}},
    /* no class token, average pooling, no qkv bias, one channel, odd sizes */
    {12, 4, 1, 3, 20, 1, 4, 36, 0, 0, 0, GSQ_POOL_AVG, 1e-5f, GSQ_TASK_CLASSIFY, GSQ_SEG_HEAD_LINEAR, {0, 0}},
};

/* Random lifetimes and sizes: arrays alive at a common step never share memory. */
static void test_planner(void)
{
    enum { N = 60 };
    gsq_rng rng;
    gsq_rng_seed(&rng, 11, 0);
    for (int round = 0; round < 50; round++) {
        size_t size[N], offset[N];
        int first[N], last[N];
        for (int i = 0; i < N; i++) {
            size[i] = (size_t)(gsq_rng_uniform(&rng) * 1000) + (i % 7 == 0 ? 0 : 1);
            first[i] = (int)(gsq_rng_uniform(&rng) * 40);
            last[i] = first[i] + (int)(gsq_rng_uniform(&rng) * 10);
        }
        size_t total = 0, peak = 0;
        gsq_error err;
        CHECK(gsq_plan_arena(N, size, first, last, offset, &total, &err) == GSQ_OK, "%s", err.msg);
        int overlaps = 0, misaligned = 0, outside = 0;
        for (int i = 0; i < N; i++) {
            misaligned += offset[i] % 16 != 0;
            outside += offset[i] + size[i] > total;
            for (int j = 0; j < i; j++) {
                int together = !(first[i] > last[j] || first[j] > last[i]);
                int shared = offset[i] < offset[j] + size[j] && offset[j] < offset[i] + size[i];
                overlaps += together && shared && size[i] && size[j];
            }
        }
        for (int step = 0; step < 50; step++) {
            size_t live = 0;
            for (int i = 0; i < N; i++) live += first[i] <= step && step <= last[i] ? size[i] : 0;
            peak = live > peak ? live : peak;
        }
        CHECK(overlaps == 0 && misaligned == 0 && outside == 0, "round %d: %d overlaps, %d misaligned, %d outside",
              round, overlaps, misaligned, outside);
        CHECK(total >= peak && total < 2 * peak + 16 * N, "round %d: arena %zu for a peak of %zu", round, total, peak);
    }
    size_t one = 5, off, total;
    int f = 0, l = 0;
    gsq_error err;
    CHECK(gsq_plan_arena(1, &one, &f, &l, &off, &total, &err) == GSQ_OK && total == 16 && off == 0,
          "one array of 5 floats takes 16");
    size_t huge = SIZE_MAX - 3;
    CHECK(gsq_plan_arena(1, &huge, &f, &l, &off, &total, &err) == GSQ_ERR_NOMEM && strstr(err.msg, "overflow"),
          "an array that overflows is refused");
}

/* The closed form of a ViT's multiply-accumulates per image (the paper's accounting). */
static double closed_form_macs(const gsq_vit_config *c)
{
    double D = c->embed_dim, T = gsq_vit_tokens(c), H = c->mlp_hidden;
    double patch = (double)gsq_vit_num_patches(c) * c->in_chans * c->patch_size * c->patch_size * D;
    double block = T * D * 3 * D + 2 * T * T * D + T * D * D + 2 * T * D * H;
    return patch + c->depth * block + D * c->num_classes * (c->distilled ? 2 : 1);
}

static void test_vit_graph(const gsq_vit_config *c)
{
    gsq_error err;
    gsq_model *m = NULL;
    CHECK(gsq_vit_describe(&m, c, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    const gsq_graph *g = m->graph;
    int heads = c->distilled ? 2 : 1;
    CHECK(g->num_linears == 1 + 4 * c->depth + heads && gsq_graph_compressed_linears(g) == 1 + 4 * c->depth,
          "%d linears, %d compressed", g->num_linears, gsq_graph_compressed_linears(g));
    CHECK(g->num_attentions == c->depth, "%d attentions for depth %d", g->num_attentions, c->depth);
    /* every linear names its own weight, and the table's shape agrees */
    int bad = 0;
    for (int i = 0; i < g->num_linears; i++) {
        const gsq_linear *l = &g->linears[i];
        char w[GSQ_NAME_MAX + 8];
        snprintf(w, sizeof w, "%s.weight", l->name);
        const gsq_param *p = gsq_model_find_param(m, w);
        bad += !p || p != &m->tensors[l->weight] || (size_t)l->rows * l->cols != p->numel ||
               g->nodes[l->node].linear != i || gsq_graph_find_linear(g, l->name) != i;
        bad += (l->bias >= 0) != (gsq_model_find_param(m, strcat(strcpy(w, l->name), ".bias")) != NULL);
    }
    CHECK(bad == 0, "%d linears disagree with the parameter table", bad);
    /* topological: each node reads values already written; each value has one producer */
    int order = 0, producers = 0;
    for (int i = 0; i < g->num_nodes; i++) {
        const gsq_node *n = &g->nodes[i];
        for (int k = 0; k < 2; k++)
            if (n->in[k] >= 0) order += n->in[k] != g->input && g->values[n->in[k]].producer >= i;
        producers += g->values[n->out].producer == i;
    }
    CHECK(order == 0 && producers == g->num_nodes, "%d reads before writes, %d of %d outputs owned", order, producers,
          g->num_nodes);
    char name[32];
    snprintf(name, sizeof name, "blocks.%d", c->depth - 1);
    int out = gsq_graph_find_value(g, name);
    CHECK(out >= 0 && g->values[out].tap && g->values[g->logits].tap, "the last block's output and logits are taps");
    gsq_graph_macs macs = gsq_graph_count_macs(g);
    double want = closed_form_macs(c);
    CHECK(macs.linear + macs.attention == want, "MACs %.0f, closed form %.0f", macs.linear + macs.attention, want);
    /* an inference forward needs much less than training's and fits its taps */
    size_t train = gsq_model_activation_bytes(m, 8, 1), infer = gsq_model_activation_bytes(m, 8, 0);
    CHECK(infer > 0 && infer * 2 < train, "inference %zu bytes, training %zu", infer, train);
    gsq_model_free(m);
}

/* The engine's plan of a ViT (src/engine/engine_plan.c): the fusions each backend asks for. */
static void test_engine_plan(const gsq_vit_config *c)
{
    gsq_error err;
    gsq_model *m = NULL;
    CHECK(gsq_vit_describe(&m, c, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    const gsq_graph *g = m->graph;
    for (int cuda = 0; cuda < 2; cuda++) {
        unsigned feeds = 1u << GSQ_OP_LAYERNORM | 1u << GSQ_OP_LINEAR;
        if (cuda) feeds |= 1u << GSQ_OP_PATCHIFY | 1u << GSQ_OP_ATTENTION;
        gsq_engine_fusions f = {feeds, !cuda};
        gsq_engine_plan p;
        CHECK(gsq_engine_plan_build(&p, g, &f, 4, &err) == GSQ_OK, "%s", err.msg);
        int fed = 0, folded = 0, accumulating = 0, norms_fed = 0, bad = 0;
        for (int s = 0; s < p.num_steps; s++) {
            const gsq_engine_step *t = &p.steps[s];
            const gsq_node *n = &g->nodes[t->node];
            if (t->feeds >= 0) { /* the next step is that linear, reading this step's buffer */
                fed++;
                const gsq_engine_step *next = &p.steps[s + 1];
                bad += g->nodes[next->node].linear != t->feeds || next->input != t->output;
                norms_fed += n->op == GSQ_OP_LAYERNORM;
            }
            folded += t->gelu;
            accumulating += t->accumulate;
            if (t->accumulate) bad += p.at[t->out] != p.at[n->in[1]]; /* in place */
        }
        /* per block: both norms feed, fc1 (GELU folded) feeds fc2; on CUDA also the attention feeds
         * proj, and the patch extraction the patch embedding; proj and fc2 add in place */
        int want_fed = c->depth * (3 + cuda) + cuda;
        CHECK(fed == want_fed && norms_fed == 2 * c->depth && folded == c->depth && accumulating == 2 * c->depth &&
                  bad == 0 && p.num_steps == g->num_nodes - c->depth,
              "%s plan: %d fed (want %d), %d norms, %d GELUs folded, %d in place, %d wrong, %d steps",
              cuda ? "CUDA" : "CPU", fed, want_fed, norms_fed, folded, accumulating, bad, p.num_steps);
        gsq_engine_plan_free(&p);
    }
    gsq_model_free(m);
}

/* The CPU engine's plan of a Swin: every shifted or padded block's norm1 writes qkv's codes in
 * window order (its WINDOW has no step), every window reverse adds into its residual in place,
 * and the last stage's one unshifted window needs neither. */
static void test_swin_plan(void)
{
    gsq_error err;
    gsq_swin_config c;
    gsq_model *m = NULL;
    CHECK(gsq_swin_config_by_name("gpusq_swin_demo", &c, &err) == GSQ_OK && gsq_swin_describe(&m, &c, &err) == GSQ_OK,
          "%s", err.msg);
    if (!m) return;
    const gsq_graph *g = m->graph;
    gsq_engine_fusions f = {1u << GSQ_OP_LAYERNORM | 1u << GSQ_OP_LINEAR | 1u << GSQ_OP_WINDOW, 0};
    gsq_engine_plan p;
    CHECK(gsq_engine_plan_build(&p, g, &f, 2, &err) == GSQ_OK, "%s", err.msg);
    int windows = 0, norms_through = 0, reverses = 0, in_place = 0, bad = 0;
    for (int i = 0; i < g->num_nodes; i++) windows += g->nodes[i].op == GSQ_OP_WINDOW;
    for (int s = 0; s < p.num_steps; s++) {
        const gsq_engine_step *t = &p.steps[s];
        const gsq_node *n = &g->nodes[t->node];
        bad += n->op == GSQ_OP_WINDOW; /* no partition runs on its own */
        if (t->window >= 0) {
            norms_through++;
            bad += n->op != GSQ_OP_LAYERNORM || t->feeds < 0 || g->nodes[t->window].op != GSQ_OP_WINDOW ||
                   g->nodes[p.steps[s + 1].node].linear != t->feeds;
        }
        if (n->op == GSQ_OP_UNWINDOW) {
            reverses++;
            in_place += t->accumulate && p.at[t->out] == p.at[n->in[1]];
        }
    }
    /* stages 0 and 1 (two blocks each) run in windows; stage 2's one block is a single window */
    CHECK(windows == 4 && norms_through == 4 && reverses == 4 && in_place == 4 && bad == 0,
          "Swin plan: %d partitions, %d norms through them, %d reverses (%d in place), %d wrong", windows,
          norms_through, reverses, in_place, bad);
    gsq_engine_plan_free(&p);
    gsq_model_free(m);
}

/* gsq_model_infer: the training forward's logits bit for bit; only taps are readable afterwards and
 * backward is refused; a training forward after it works. */
static void test_infer(const gsq_vit_config *c)
{
    enum { B = 3 };
    gsq_error err;
    gsq_model *m = NULL;
    CHECK(gsq_vit_create(&m, c, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    gsq_model_init(m, 5);
    size_t n = (size_t)B * c->in_chans * c->img_size * c->img_size, K = (size_t)B * c->num_classes;
    float *x = malloc(n * sizeof(float)), *ref = malloc(K * sizeof(float));
    gsq_rng rng;
    gsq_rng_seed(&rng, 2, 0);
    for (size_t i = 0; i < n; i++) x[i] = gsq_rng_normal(&rng);
    const float *logits;
    CHECK(gsq_model_infer(m, x, B, &logits, &err) == GSQ_OK, "%s", err.msg);
    memcpy(ref, logits, K * sizeof(float));
    CHECK(gsq_model_output(m, "blocks.0") != NULL && gsq_model_output(m, "blocks.0.norm1") == NULL,
          "after inference: taps readable, other values not");
    CHECK(gsq_model_backward_from(m, ref, ref, NULL, &err) == GSQ_ERR_ARG, "backward after an inference forward");
    CHECK(gsq_model_forward(m, x, B, &logits, &err) == GSQ_OK && memcmp(logits, ref, K * sizeof(float)) == 0,
          "the training forward's logits differ from inference's");
    CHECK(gsq_model_output(m, "blocks.0.norm1") != NULL && gsq_model_output(m, "no such value") == NULL,
          "after training: every value readable");
    CHECK(gsq_model_infer(m, x, 1, &logits, &err) == GSQ_OK, "%s", err.msg);
    double worst = 0; /* a GEMM of one row may sum in another order than one of three */
    for (int k = 0; k < c->num_classes; k++) worst = fmax(worst, fabs(logits[k] - ref[k]));
    CHECK(worst < 1e-5, "one image in the training arena: logits off by %g", worst);
    free(x);
    free(ref);
    gsq_model_free(m);
}

int main(void)
{
    test_planner();
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        test_vit_graph(&configs[i]);
        test_engine_plan(&configs[i]);
        test_infer(&configs[i]);
    }
    test_swin_plan();
    return test_finish("test_graph");
}
