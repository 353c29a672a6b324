/* N:M sparsity: magnitude masks against brute force (2:4 and paired 4:8, ties included), pattern
 * checks, the model-level plan (pruned and skipped layers, the mask, apply, recovering the plan
 * from pruned weights), and channel permutation (the dense function unchanged, a true permutation,
 * never worse, a clear gain where the weights call for one, deterministic). */
#include <string.h>

#include "gpusq/sparse.h"
#include "test_util.h"
#include "models/model_state.h" /* white-box: the model's fields */

static const gsq_sparse_pattern patterns[2] = {GSQ_SPARSE_2_4, GSQ_SPARSE_4_8};

static void test_patterns(void)
{
    gsq_sparse_pattern p = GSQ_SPARSE_2_4;
    gsq_error err = {0};
    CHECK(gsq_sparse_pattern_parse("4:8", &p, &err) == GSQ_OK && p == GSQ_SPARSE_4_8, "4:8");
    CHECK(gsq_sparse_pattern_parse("2:4", &p, &err) == GSQ_OK && p == GSQ_SPARSE_2_4, "2:4");
    CHECK(gsq_sparse_pattern_parse("1:4", &p, &err) == GSQ_ERR_ARG && strstr(err.msg, "'1:4'"), "%s", err.msg);
    CHECK(gsq_sparse_pattern_parse(NULL, &p, &err) == GSQ_ERR_ARG, "NULL accepted");
    CHECK(strcmp(gsq_sparse_pattern_name(GSQ_SPARSE_2_4), "2:4") == 0, "name");
    CHECK(strcmp(gsq_sparse_pattern_name(GSQ_SPARSE_4_8), "4:8") == 0, "name");
    CHECK(gsq_sparse_group(GSQ_SPARSE_2_4) == 4 && gsq_sparse_group(GSQ_SPARSE_4_8) == 8, "group sizes");
}

/* The kept set of one group by brute force: of the 6 choices of 2 elements (2:4) or 2 aligned pairs
 * (4:8), the first in lexicographic order with the largest magnitude. */
static void brute_keep(const float *w, gsq_sparse_pattern p, uint8_t *keep)
{
    double mag[4];
    for (int k = 0; k < 4; k++)
        mag[k] = p == GSQ_SPARSE_2_4 ? fabsf(w[k]) : (double)(fabsf(w[2 * k]) + fabsf(w[2 * k + 1]));
    int ba = 0, bb = 1;
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            if (mag[a] + mag[b] > mag[ba] + mag[bb]) ba = a, bb = b;
    int G = gsq_sparse_group(p), per = G / 4;
    for (int i = 0; i < G; i++) keep[i] = i / per == ba || i / per == bb;
}

static void test_mask_random(void)
{
    const int shapes[][2] = {{1, 1}, {1, 2}, {3, 1}, {5, 3}, {2, 10}, {7, 16}, {1, 24}};
    gsq_rng rng;
    gsq_rng_seed(&rng, 1, 1);
    for (int pi = 0; pi < 2; pi++) {
        gsq_sparse_pattern p = patterns[pi];
        int G = gsq_sparse_group(p);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int rows = shapes[s][0], cols = shapes[s][1] * G; /* cols = G included */
            size_t n = (size_t)rows * cols;
            float *w = malloc(n * sizeof *w), *masked = malloc(n * sizeof *w);
            uint8_t *mask = malloc(n);
            fill_normal(w, n, &rng, 1.0f);
            gsq_sparse_mask_magnitude(w, rows, cols, p, mask);
            int wrong = 0, bad_count = 0;
            double kept = 0, total = 0;
            for (size_t g = 0; g < n; g += (size_t)G) {
                uint8_t ref[8];
                brute_keep(w + g, p, ref);
                int count = 0;
                for (int i = 0; i < G; i++) wrong += ref[i] != mask[g + i], count += mask[g + i];
                bad_count += count != G / 2;
            }
            for (size_t i = 0; i < n; i++) {
                masked[i] = mask[i] ? w[i] : 0.0f;
                kept += mask[i] ? fabs(w[i]) : 0, total += fabs(w[i]);
            }
            const char *pn = gsq_sparse_pattern_name(p);
            CHECK(wrong == 0, "%s %dx%d: %d mask entries differ from brute force", pn, rows, cols, wrong);
            CHECK(bad_count == 0, "%s %dx%d: %d groups keep the wrong count", pn, rows, cols, bad_count);
            CHECK(gsq_sparse_check(masked, rows, cols, p), "%s %dx%d: masked weights fail the check", pn, rows, cols);
            CHECK(!gsq_sparse_check(w, rows, cols, p), "%s %dx%d: dense weights pass the check", pn, rows, cols);
            double frac = gsq_sparse_kept_fraction(w, rows, cols, p);
            CHECK(fabs(frac - kept / total) < 1e-12, "kept fraction %.15f, mask keeps %.15f", frac, kept / total);
            CHECK(frac > 0.5 && frac < 1.0, "kept fraction %.3f", frac);
            free(w), free(masked), free(mask);
        }
    }
}

static void test_mask_ties(void)
{
    struct { gsq_sparse_pattern p; float w[8]; uint8_t keep[8]; } cases[] = {
        {GSQ_SPARSE_2_4, {1, 1, 1, 1}, {1, 1, 0, 0}},
        {GSQ_SPARSE_2_4, {0, 0, 0, 0}, {1, 1, 0, 0}},
        {GSQ_SPARSE_2_4, {1, 2, 2, 1}, {0, 1, 1, 0}},
        {GSQ_SPARSE_2_4, {-2, 2, 1, 2}, {1, 1, 0, 0}},  /* magnitude, not value */
        {GSQ_SPARSE_2_4, {0, 3, -3, 3}, {0, 1, 1, 0}},
        {GSQ_SPARSE_2_4, {NAN, 1, 2, 3}, {1, 0, 0, 1}}, /* a NaN is kept, never a third value */
        {GSQ_SPARSE_4_8, {1, 1, 2, 0, 0, 2, 1, 1}, {1, 1, 1, 1, 0, 0, 0, 0}},
        {GSQ_SPARSE_4_8, {0, 1, 1, 1, 2, 0, 0, 2}, {0, 0, 1, 1, 1, 1, 0, 0}},
        {GSQ_SPARSE_4_8, {5, 0, 0, 0, 0, 0, 0, 4}, {1, 1, 0, 0, 0, 0, 1, 1}},
        {GSQ_SPARSE_4_8, {0, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 1, 1, 0, 0, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int G = gsq_sparse_group(cases[c].p);
        uint8_t mask[8];
        gsq_sparse_mask_magnitude(cases[c].w, 1, G, cases[c].p, mask);
        CHECK(memcmp(mask, cases[c].keep, (size_t)G) == 0, "tie case %zu: mask %d%d%d%d%d%d%d%d", c, mask[0], mask[1],
              mask[2], mask[3], G > 4 ? mask[4] : 0, G > 4 ? mask[5] : 0, G > 4 ? mask[6] : 0, G > 4 ? mask[7] : 0);
    }
}

static void test_check(void)
{
    const float ok24[8] = {0, 1, -0.0f, 2, 3, 0, 0, 0}, bad24[8] = {0, 0, 0, 0, 1, 1e-30f, 0, 2};
    CHECK(gsq_sparse_check(ok24, 2, 4, GSQ_SPARSE_2_4), "-0 counts as zero");
    CHECK(!gsq_sparse_check(bad24, 2, 4, GSQ_SPARSE_2_4), "3 nonzeros in a group of 4 accepted");
    CHECK(!gsq_sparse_check(bad24, 1, 8, GSQ_SPARSE_2_4), "3 nonzeros in a group of 4 accepted");
    const float ok48[8] = {1, 2, 0, 0, 0, 0, 3, 4}, split48[8] = {1, 0, 0, 2, 0, 0, 0, 0},
                bad48[8] = {1, 0, 0, 0, 2, 0, 0, 3};
    CHECK(gsq_sparse_check(ok48, 1, 8, GSQ_SPARSE_4_8), "4 nonzeros in 2 pairs rejected");
    CHECK(gsq_sparse_check(split48, 1, 8, GSQ_SPARSE_4_8), "2 nonzeros in 2 pairs rejected");
    CHECK(!gsq_sparse_check(bad48, 1, 8, GSQ_SPARSE_4_8), "3 nonzeros in 3 pairs accepted");
    CHECK(gsq_sparse_check(ok48, 2, 4, GSQ_SPARSE_2_4) && gsq_sparse_check(bad48, 2, 4, GSQ_SPARSE_2_4),
          "the same values seen as 2:4 groups");
    const float nan4[4] = {NAN, 0, 0, 1};
    CHECK(gsq_sparse_check(nan4, 1, 4, GSQ_SPARSE_2_4), "NaN and one value");
    CHECK(gsq_sparse_kept_fraction((const float[4]){0, 0, 0, 0}, 1, 4, GSQ_SPARSE_2_4) == 1.0, "all-zero kept fraction");
}

/* Two tiny models: A, where everything but the head can be pruned; B, with a patch embedding of 9
 * inputs, an MLP of 36 (a multiple of 4, not of 8), head dim 4 and a distillation head. */
static const gsq_vit_config cfg_a = {
    .img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 10, .embed_dim = 32, .depth = 2,
    .num_heads = 2, .mlp_hidden = 64, .qkv_bias = 1, .class_token = 1, .distilled = 0,
    .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
};
static const gsq_vit_config cfg_b = {
    .img_size = 15, .patch_size = 3, .in_chans = 1, .num_classes = 10, .embed_dim = 24, .depth = 2,
    .num_heads = 6, .mlp_hidden = 36, .qkv_bias = 1, .class_token = 1, .distilled = 1,
    .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
};

static gsq_model *make_model(const gsq_vit_config *c, uint64_t seed)
{
    gsq_model *m = NULL;
    gsq_error err = {0};
    if (gsq_vit_create(&m, c, &err) != GSQ_OK) {
        fprintf(stderr, "create: %s\n", err.msg);
        exit(1);
    }
    gsq_model_init(m, seed);
    gsq_rng rng; /* larger weights than timm's init so the blocks matter to the logits */
    gsq_rng_seed(&rng, seed, 9);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.1f * gsq_rng_normal(&rng);
    return m;
}

static gsq_model *clone(const gsq_model *m)
{
    gsq_model *r = NULL;
    gsq_model_clone(&r, m, NULL);
    return r;
}

static const gsq_sparse_layer *find_layer(const gsq_sparse_plan *plan, const char *name)
{
    for (int i = 0; i < plan->num_layers; i++)
        if (strcmp(plan->layers[i].name, name) == 0) return &plan->layers[i];
    return NULL;
}

/* The layers expected dense for a configuration, pattern and head choice; NULL reason = pruned. */
static const char *expected_reason(const gsq_vit_config *c, const char *name, gsq_sparse_pattern p, int include_head)
{
    int G = gsq_sparse_group(p);
    if (strncmp(name, "head", 4) == 0 && !include_head) return "classifier head";
    int cols = strstr(name, "patch_embed") ? c->in_chans * c->patch_size * c->patch_size
               : strstr(name, "fc2")       ? c->mlp_hidden
                                           : c->embed_dim;
    return cols % G ? "input size is not a multiple" : NULL;
}

static void test_plan(const gsq_vit_config *c, gsq_sparse_pattern p, int include_head)
{
    const char *pn = gsq_sparse_pattern_name(p);
    gsq_error err = {0};
    gsq_model *m = make_model(c, 5);
    float *orig = malloc(m->num_params * sizeof *orig);
    memcpy(orig, m->params, m->num_params * sizeof *orig);
    gsq_sparse_plan plan;
    CHECK(gsq_sparse_plan_magnitude(&plan, m, p, include_head, &err) == GSQ_OK, "%s", err.msg);
    int want_layers = 1 + 4 * c->depth + 1 + c->distilled;
    CHECK(plan.num_layers == want_layers, "%d candidate layers, want %d", plan.num_layers, want_layers);
    CHECK(plan.pattern == p && plan.num_params == m->num_params, "plan header");
    CHECK(plan.num_layers > 0 && strcmp(plan.layers[0].name, "patch_embed.proj.weight") == 0 &&
              plan.layers[0].rows == c->embed_dim && plan.layers[0].cols == c->in_chans * c->patch_size * c->patch_size,
          "the patch embedding first, as (D, C·P·P)");
    const gsq_sparse_layer *fc2 = find_layer(&plan, "blocks.1.mlp.fc2.weight");
    CHECK(fc2 && fc2->rows == c->embed_dim && fc2->cols == c->mlp_hidden &&
              fc2->offset == gsq_model_find_param(m, "blocks.1.mlp.fc2.weight")->offset, "fc2 view");
    size_t pruned_params = 0, candidate_params = 0;
    for (int i = 0; i < plan.num_layers; i++) {
        const gsq_sparse_layer *l = &plan.layers[i];
        const char *want = expected_reason(c, l->name, p, include_head);
        CHECK(l->pruned == (want == NULL), "%s %s: pruned %d (%s)", pn, l->name, l->pruned,
              l->skip_reason ? l->skip_reason : "-");
        CHECK(want ? l->skip_reason && strstr(l->skip_reason, want) : l->skip_reason == NULL, "%s %s: reason '%s'", pn,
              l->name, l->skip_reason ? l->skip_reason : "(null)");
        CHECK(l->pruned ? l->kept_magnitude > 0.5 && l->kept_magnitude < 1 : l->kept_magnitude == 1.0,
              "%s %s: kept %.3f", pn, l->name, l->kept_magnitude);
        size_t n = (size_t)l->rows * l->cols;
        candidate_params += n;
        if (l->pruned) {
            pruned_params += n;
            CHECK(gsq_sparse_check(m->params + l->offset, l->rows, l->cols, p) == 0, "dense weights already sparse");
        }
    }
    /* the mask: half of each pruned layer, nothing anywhere else */
    size_t zeros = 0, zeros_outside = 0;
    for (size_t i = 0; i < m->num_params; i++) zeros += plan.mask[i] == 0;
    for (int i = 0; i < plan.num_layers; i++) {
        const gsq_sparse_layer *l = &plan.layers[i];
        if (l->pruned) continue;
        for (size_t j = 0; j < (size_t)l->rows * l->cols; j++) zeros_outside += plan.mask[l->offset + j] == 0;
    }
    CHECK(zeros == pruned_params / 2 && zeros_outside == 0, "%s: %zu zeros (%zu in dense layers), want %zu", pn, zeros,
          zeros_outside, pruned_params / 2);
    double sp = gsq_sparse_plan_sparsity(&plan);
    CHECK(fabs(sp - (double)zeros / candidate_params) < 1e-15, "sparsity %.4f", sp);

    gsq_sparse_apply(&plan, m->params);
    int bad = 0;
    for (size_t i = 0; i < m->num_params; i++) {
        if (plan.mask[i]) bad += memcmp(&m->params[i], &orig[i], sizeof(float)) != 0;
        else bad += m->params[i] != 0.0f || signbit(m->params[i]);
    }
    CHECK(bad == 0, "%s: apply: %d parameters wrong", pn, bad);
    for (int i = 0; i < plan.num_layers; i++) {
        const gsq_sparse_layer *l = &plan.layers[i];
        if (l->pruned) CHECK(gsq_sparse_check(m->params + l->offset, l->rows, l->cols, p), "%s: %s not sparse", pn, l->name);
    }

    gsq_sparse_plan back;
    CHECK(gsq_sparse_plan_from_weights(&back, m, p, include_head, &err) == GSQ_OK, "%s", err.msg);
    CHECK(back.num_layers == plan.num_layers && memcmp(back.mask, plan.mask, m->num_params) == 0,
          "%s: the plan from the pruned weights has another mask", pn);
    for (int i = 0; i < back.num_layers && i < plan.num_layers; i++)
        CHECK(back.layers[i].pruned == plan.layers[i].pruned && back.layers[i].kept_magnitude == 1.0, "%s: %s", pn,
              back.layers[i].name);
    gsq_sparse_plan_free(&back);

    /* dense weights: nothing is pruned, and the reason says so */
    memcpy(m->params, orig, m->num_params * sizeof *orig);
    bad = 0;
    CHECK(gsq_sparse_plan_from_weights(&back, m, p, include_head, &err) == GSQ_OK, "%s", err.msg);
    for (int i = 0; i < back.num_layers; i++) {
        const gsq_sparse_layer *l = &back.layers[i];
        CHECK(!l->pruned && l->skip_reason, "%s: dense %s taken as pruned", pn, l->name);
        if (plan.layers[i].pruned)
            CHECK(l->skip_reason && strstr(l->skip_reason, "do not obey"), "%s", l->skip_reason ? l->skip_reason : "-");
    }
    for (size_t i = 0; i < m->num_params; i++) bad += back.mask[i] != 1;
    CHECK(bad == 0, "mask of a dense model");
    gsq_sparse_plan_free(&back);
    gsq_sparse_plan_free(&plan);
    gsq_sparse_plan_free(&plan); /* freeing twice is harmless */
    free(orig);
    gsq_model_free(m);
}

static void test_plan_errors(void)
{
    gsq_error err = {0};
    gsq_model *m = NULL;
    gsq_sparse_plan plan;
    CHECK(gsq_vit_describe(&m, &cfg_a, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_sparse_plan_magnitude(&plan, m, GSQ_SPARSE_2_4, 0, &err) == GSQ_ERR_ARG && plan.mask == NULL,
          "a model without parameters accepted");
    gsq_model_free(m);
}

static float *random_images(const gsq_vit_config *c, int B)
{
    size_t n = (size_t)B * c->in_chans * c->img_size * c->img_size;
    float *x = malloc(n * sizeof *x);
    gsq_rng rng;
    gsq_rng_seed(&rng, 77, 3);
    fill_normal(x, n, &rng, 1.0f);
    return x;
}

/* Index of the row of old (n rows of len) equal to row, or -1. */
static int find_row(const float *old, int n, int len, const float *row)
{
    for (int i = 0; i < n; i++)
        if (memcmp(old + (size_t)i * len, row, (size_t)len * sizeof *row) == 0) return i;
    return -1;
}

/* The parameter tensor named by fmt with block index l ("blocks.%d.mlp.fc2.weight"). */
static float *tensor(const gsq_model *m, const char *fmt, int l)
{
    char name[GSQ_NAME_MAX];
    snprintf(name, sizeof name, fmt, l);
    const gsq_param *t = gsq_model_find_param(m, name);
    return t ? m->params + t->offset : NULL;
}

/* One block's tensors that permutation moves. */
typedef struct {
    float *fc1_w, *fc1_b, *fc2_w, *fc2_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
} block_tensors;

static block_tensors block_of(const gsq_model *m, int l)
{
    return (block_tensors){tensor(m, "blocks.%d.mlp.fc1.weight", l),  tensor(m, "blocks.%d.mlp.fc1.bias", l),
                           tensor(m, "blocks.%d.mlp.fc2.weight", l),  tensor(m, "blocks.%d.mlp.fc2.bias", l),
                           tensor(m, "blocks.%d.attn.qkv.weight", l), tensor(m, "blocks.%d.attn.qkv.bias", l),
                           tensor(m, "blocks.%d.attn.proj.weight", l), tensor(m, "blocks.%d.attn.proj.bias", l)};
}

/* new is old with hidden channels and each head's V channels permuted consistently, everything
 * else untouched. */
static void check_is_permutation(const gsq_model *old, const gsq_model *new, const char *what)
{
    const gsq_vit_config *c = &old->vit;
    int D = c->embed_dim, H = c->mlp_hidden, hd = D / c->num_heads, bad = 0;
    int *used = calloc((size_t)(H > 3 * D ? H : 3 * D), sizeof *used);
    for (int l = 0; l < c->depth; l++) {
        block_tensors ob = block_of(old, l), nb = block_of(new, l);
        const block_tensors *o = &ob, *n = &nb;
        memset(used, 0, (size_t)(H > 3 * D ? H : 3 * D) * sizeof *used);
        for (int j = 0; j < H; j++) {
            int i = find_row(o->fc1_w, H, D, n->fc1_w + (size_t)j * D);
            if (i < 0 || used[i]++) {
                bad++;
                continue;
            }
            bad += n->fc1_b[j] != o->fc1_b[i];
            for (int r = 0; r < D; r++) bad += n->fc2_w[(size_t)r * H + j] != o->fc2_w[(size_t)r * H + i];
        }
        memset(used, 0, (size_t)3 * D * sizeof *used);
        for (int j = 0; j < 3 * D; j++) {
            int i = find_row(o->qkv_w, 3 * D, D, n->qkv_w + (size_t)j * D);
            int head_ok = j < 2 * D ? i == j : i >= 2 * D && (i - 2 * D) / hd == (j - 2 * D) / hd;
            if (i < 0 || used[i]++ || !head_ok) {
                bad++;
                continue;
            }
            bad += n->qkv_b[j] != o->qkv_b[i];
            if (j >= 2 * D)
                for (int r = 0; r < D; r++)
                    bad += n->proj_w[(size_t)r * D + j - 2 * D] != o->proj_w[(size_t)r * D + i - 2 * D];
        }
        bad += memcmp(n->fc2_b, o->fc2_b, (size_t)D * sizeof(float)) != 0;
        bad += memcmp(n->proj_b, o->proj_b, (size_t)D * sizeof(float)) != 0;
    }
    /* everything outside the blocks' qkv, proj, fc1 and fc2 is unchanged */
    for (int t = 0; t < old->num_tensors; t++) {
        const gsq_param *p = &old->tensors[t];
        int in_block = strncmp(p->name, "blocks.", 7) == 0;
        if (in_block && (strstr(p->name, ".qkv.") || strstr(p->name, ".proj.") || strstr(p->name, ".fc1.") ||
                         strstr(p->name, ".fc2.")))
            continue;
        bad += memcmp(old->params + p->offset, new->params + p->offset, p->numel * sizeof(float)) != 0;
    }
    CHECK(bad == 0, "%s: %d mismatches: not a consistent permutation", what, bad);
    free(used);
}

static void test_permute_random(const gsq_vit_config *c, gsq_sparse_pattern p, int want_reports)
{
    const char *pn = gsq_sparse_pattern_name(p);
    gsq_error err = {0};
    gsq_model *m = make_model(c, 21), *orig = clone(m), *twin = clone(m);
    int B = 3, K = c->num_classes;
    float *images = random_images(c, B), *before = malloc((size_t)B * K * sizeof *before);
    const float *logits = NULL;
    CHECK(gsq_model_forward(m, images, B, &logits, &err) == GSQ_OK, "%s", err.msg);
    memcpy(before, logits, (size_t)B * K * sizeof *before);

    gsq_permute_report rep[16];
    int nrep = -1;
    CHECK(gsq_sparse_permute(m, p, GSQ_SPARSE_PERMUTE_EFFORT, rep, 16, &nrep, &err) == GSQ_OK, "%s", err.msg);
    CHECK(nrep == want_reports, "%s: %d reports, want %d", pn, nrep, want_reports);
    CHECK(gsq_model_forward(m, images, B, &logits, &err) == GSQ_OK, "%s", err.msg);
    double e = max_rel_err(logits, before, (size_t)B * K);
    CHECK(e <= 1e-5, "%s: logits changed by %.3g after permuting", pn, e);
    check_is_permutation(orig, m, pn);

    int better = 0;
    for (int i = 0; i < nrep; i++) {
        const gsq_param *t = gsq_model_find_param(m, rep[i].name);
        CHECK(t != NULL, "report names '%s'", rep[i].name);
        if (!t) continue;
        int rows = (int)t->shape[0], cols = (int)t->shape[1];
        CHECK(rep[i].kept_after >= rep[i].kept_before, "%s %s: kept %.6f -> %.6f", pn, rep[i].name, rep[i].kept_before,
              rep[i].kept_after);
        CHECK(rep[i].kept_before == gsq_sparse_kept_fraction(orig->params + t->offset, rows, cols, p) &&
                  rep[i].kept_after == gsq_sparse_kept_fraction(m->params + t->offset, rows, cols, p),
              "%s %s: the report disagrees with the weights", pn, rep[i].name);
        better += rep[i].kept_after > rep[i].kept_before + 1e-6;
    }
    CHECK(want_reports == 0 || better > 0, "%s: no layer improved", pn);

    /* deterministic: the same model permutes to the same bits */
    int ntwin = 0;
    CHECK(gsq_sparse_permute(twin, p, GSQ_SPARSE_PERMUTE_EFFORT, NULL, 0, &ntwin, &err) == GSQ_OK, "%s", err.msg);
    CHECK(ntwin == nrep && memcmp(twin->params, m->params, m->num_params * sizeof(float)) == 0, "%s: not deterministic", pn);
    /* no search beyond the start: still valid, never worse than identity, and the swaps gain more */
    memcpy(twin->params, orig->params, m->num_params * sizeof(float));
    gsq_permute_report rep0[16];
    CHECK(gsq_sparse_permute(twin, p, 0, rep0, 16, &ntwin, &err) == GSQ_OK, "%s", err.msg);
    int swaps_gain = 0;
    for (int i = 0; i < ntwin && i < nrep; i++) {
        CHECK(rep0[i].kept_after >= rep0[i].kept_before && rep0[i].kept_after <= rep[i].kept_after + 1e-6,
              "%s %s effort 0: %.6f -> %.6f (searched: %.6f)", pn, rep0[i].name, rep0[i].kept_before, rep0[i].kept_after,
              rep[i].kept_after);
        swaps_gain += rep[i].kept_after > rep0[i].kept_after + 1e-6;
    }
    CHECK(want_reports == 0 || swaps_gain > 0, "%s: the swap passes gained nothing over their start", pn);
    check_is_permutation(orig, twin, "effort 0");
    free(images), free(before);
    gsq_model_free(m), gsq_model_free(orig), gsq_model_free(twin);
}

/* fc2's large columns (every weight ±1 among weights of about 0.1) come in runs of a whole group,
 * and so do the large V channels of each head: identity keeps about half of the large weights, a
 * good order keeps nearly all of them. */
static void test_permute_structured(gsq_sparse_pattern p)
{
    const char *pn = gsq_sparse_pattern_name(p);
    int G = gsq_sparse_group(p);
    gsq_error err = {0};
    gsq_model *m = make_model(&cfg_a, 8);
    const gsq_vit_config *c = &m->vit;
    int D = c->embed_dim, H = c->mlp_hidden, hd = D / c->num_heads;
    for (int l = 0; l < c->depth; l++) {
        block_tensors bt = block_of(m, l), *b = &bt;
        for (int r = 0; r < D; r++) {
            for (int j = 0; j < H; j++)
                if ((j / G) % 2 == 0) b->fc2_w[(size_t)r * H + j] = copysignf(1.0f, b->fc2_w[(size_t)r * H + j]);
            for (int j = 0; j < D; j++)
                if (((j % hd) / G) % 2 == 0) b->proj_w[(size_t)r * D + j] = copysignf(1.0f, b->proj_w[(size_t)r * D + j]);
        }
    }
    gsq_model *orig = clone(m), *dealt = clone(m);
    gsq_permute_report rep[8];
    int nrep = 0;
    CHECK(gsq_sparse_permute(m, p, GSQ_SPARSE_PERMUTE_EFFORT, rep, 8, &nrep, &err) == GSQ_OK, "%s", err.msg);
    CHECK(nrep == 2 * c->depth, "%d reports", nrep);
    for (int i = 0; i < nrep; i++)
        CHECK(rep[i].kept_before < 0.6 && rep[i].kept_after > 0.9, "%s %s: kept %.3f -> %.3f, want a clear gain", pn,
              rep[i].name, rep[i].kept_before, rep[i].kept_after);
    check_is_permutation(orig, m, "structured");
    /* the sorted deal alone (no swap passes) already spreads the large channels */
    CHECK(gsq_sparse_permute(dealt, p, 0, rep, 8, &nrep, &err) == GSQ_OK, "%s", err.msg);
    for (int i = 0; i < nrep; i++)
        CHECK(rep[i].kept_after > 0.9, "%s %s effort 0: kept %.3f -> %.3f", pn, rep[i].name, rep[i].kept_before,
              rep[i].kept_after);
    gsq_model_free(m), gsq_model_free(orig), gsq_model_free(dealt);
}

static void test_permute_errors(void)
{
    gsq_error err = {0};
    gsq_model *m = make_model(&cfg_a, 3), *orig = clone(m);
    gsq_permute_report rep[4];
    int n = -1;
    CHECK(gsq_sparse_permute(m, GSQ_SPARSE_2_4, 10, rep, 3, &n, &err) == GSQ_ERR_ARG && strstr(err.msg, "room for 3"),
          "too few report slots: %s", err.msg);
    CHECK(gsq_sparse_permute(m, GSQ_SPARSE_2_4, -1, rep, 4, &n, &err) == GSQ_ERR_ARG, "negative effort accepted");
    float *fc2 = tensor(m, "blocks.%d.mlp.fc2.weight", 1);
    fc2[5] = NAN;
    CHECK(gsq_sparse_permute(m, GSQ_SPARSE_2_4, 10, rep, 4, &n, &err) == GSQ_ERR_ARG &&
              strstr(err.msg, "blocks.1.mlp.fc2.weight"), "NaN weights: %s", err.msg);
    fc2[5] = tensor(orig, "blocks.%d.mlp.fc2.weight", 1)[5];
    CHECK(n == 0 && memcmp(m->params, orig->params, m->num_params * sizeof(float)) == 0, "a failed call changed the model");
    gsq_model_free(m), gsq_model_free(orig);
}

int main(void)
{
    test_patterns();
    test_mask_random();
    test_mask_ties();
    test_check();
    for (int pi = 0; pi < 2; pi++) {
        for (int head = 0; head < 2; head++) {
            test_plan(&cfg_a, patterns[pi], head);
            test_plan(&cfg_b, patterns[pi], head);
        }
    }
    test_plan_errors();
    test_permute_random(&cfg_a, GSQ_SPARSE_2_4, 4);
    test_permute_random(&cfg_a, GSQ_SPARSE_4_8, 4);
    test_permute_random(&cfg_b, GSQ_SPARSE_2_4, 4); /* head dim 4, MLP 36 */
    test_permute_random(&cfg_b, GSQ_SPARSE_4_8, 0); /* neither is a multiple of 8 */
    test_permute_structured(GSQ_SPARSE_2_4);
    test_permute_structured(GSQ_SPARSE_4_8);
    test_permute_errors();
    return test_finish("test_sparse");
}
