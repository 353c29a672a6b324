/* The compressed model file: round trip (the loaded model's logits equal the fake-quantized
 * model's) for INT8 2:4, INT4 4:8 with a dense-stored layer, and W4A8; the stored bytes of one
 * row against the format's definition; and hostile files (wrong version, bad metadata indices,
 * sizes that disagree, missing tensors, out-of-range codes and scales) rejected with clear errors;
 * and 400 random mutants loaded or refused cleanly. Throughout, the engine built straight from the
 * file (gsq_engine_load) accepts and refuses exactly what gsq_compressed_load does, and computes
 * the logits of the engine built from the loaded model bit for bit, in both layouts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/compressed.h"
#include "gpusq/graph.h"
#include "gpusq/engine.h"
#include "gpusq/safetensors.h"
#include "quantized_model.h"
#include "test_util.h"
#include "models/model_state.h" /* white-box: the model's fields */

static char dir[64] = "/tmp/gsq_test_compressed_XXXXXX";

enum { B = 4 };

/* The paper's accounting, from docs/FORMAT.md's sizes: every GEMM weight's codes and position
 * metadata (a GEMM whose inputs are not a multiple of the group is stored dense). */
static void expected_gemm_bytes(const gsq_model *m, gsq_sparse_pattern pattern, gsq_quant_mode mode, size_t *weights,
                                size_t *bytes)
{
    int group = pattern == GSQ_SPARSE_4_8 ? 8 : 4, four = gsq_quant_mode_weight_bits(mode) == 4;
    *weights = *bytes = 0;
    for (int s = 0; s < m->graph->num_linears; s++) {
        if (!m->graph->linears[s].compressed) continue;
        const gsq_param *p = &m->tensors[m->graph->linears[s].weight];
        size_t rows = (size_t)p->shape[0], cols = p->numel / rows, sparse = cols % (size_t)group == 0;
        size_t kept = sparse ? cols / 2 : cols, words = (cols / (size_t)group + 3) / 4;
        *weights += p->numel;
        *bytes += rows * ((four ? (kept + 1) / 2 : kept) + (sparse ? 2 * words : 0));
    }
}

/* The engine of the file at path (gsq_engine_load) against the engine of its loaded model m, in
 * both layouts: the same logits, bit for bit, the same weight bytes and sparse linears. */
static void check_engine_load(const char *path, const gsq_model *m, const gsq_compressed_info *info, const float *x)
{
    for (int dense = 0; dense < 2; dense++) {
        gsq_engine_layout layout = dense ? GSQ_ENGINE_DENSE : GSQ_ENGINE_SPARSE;
        gsq_error err = {0};
        gsq_st_file *f = NULL;
        gsq_engine *direct = NULL, *twin = NULL;
        CHECK(gsq_st_open(&f, path, &err) == GSQ_OK, "%s", err.msg);
        CHECK(f && gsq_engine_load(&direct, f, &(gsq_engine_options){.layout = layout, .max_batch = B, .device = GSQ_ENGINE_CPU}, &err) == GSQ_OK, "engine_load: %s", err.msg);
        gsq_st_close(f);
        CHECK(gsq_engine_create(&twin, m, &(gsq_engine_options){.layout = layout, .max_batch = B, .device = GSQ_ENGINE_CPU, .pattern = info->pattern}, &err) == GSQ_OK, "%s", err.msg);
        if (!direct || !twin) {
            gsq_engine_free(direct);
            gsq_engine_free(twin);
            return;
        }
        const float *a = NULL, *b = NULL;
        size_t bytes = (size_t)B * m->num_classes * sizeof(float);
        float *first = malloc(bytes);
        CHECK(gsq_engine_forward(direct, x, B, &a, &err) == GSQ_OK, "%s", err.msg);
        if (a) memcpy(first, a, bytes);
        CHECK(gsq_engine_forward(twin, x, B, &b, &err) == GSQ_OK, "%s", err.msg);
        CHECK(a && b && !memcmp(first, b, bytes), "%s layout: the engine from the file computes other logits than the "
              "engine from the loaded model", dense ? "dense" : "sparse");
        free(first);
        CHECK(gsq_engine_weight_bytes(direct) == gsq_engine_weight_bytes(twin) &&
                  gsq_engine_sparse_linears(direct) == gsq_engine_sparse_linears(twin),
              "%s layout: %zu bytes, %d sparse linears from the file; %zu, %d from the model", dense ? "dense" : "sparse",
              gsq_engine_weight_bytes(direct), gsq_engine_sparse_linears(direct), gsq_engine_weight_bytes(twin),
              gsq_engine_sparse_linears(twin));
        gsq_engine_free(direct);
        gsq_engine_free(twin);
    }
}

static void round_trip(int mlp, gsq_sparse_pattern pattern, gsq_quant_mode mode, int attention, int want_dense)
{
    float x[B * 3 * 16 * 16], ref[B * 5];
    gsq_model *m = gsq_test_quantized_model(mlp, pattern, mode, attention, x, B);
    gsq_error err = {0};
    const float *logits;
    gsq_model_forward(m, x, B, &logits, &err);
    memcpy(ref, logits, sizeof ref);
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    gsq_compressed_info saved, loaded;
    CHECK(gsq_compressed_save(m, pattern, path, &saved, &err) == GSQ_OK, "%s", err.msg);
    gsq_model *r = NULL;
    CHECK(gsq_compressed_load(&r, path, &loaded, &err) == GSQ_OK, "%s", err.msg);
    const char *what = gsq_quant_mode_name(mode);
    if (r) {
        CHECK(gsq_model_forward(r, x, B, &logits, &err) == GSQ_OK, "%s", err.msg);
        double e = max_rel_err(logits, ref, B * 5);
        CHECK(e <= 1e-5, "%s %s: loaded logits differ by %g of the largest", what, gsq_sparse_pattern_name(pattern), e);
        CHECK(!attention || (gsq_model_quant_attention_scales(r, 1) &&
                             !memcmp(gsq_model_quant_attention_scales(r, 1), gsq_model_quant_attention_scales(m, 1), 12)),
              "attention scales lost");
        CHECK(loaded.mode == mode && loaded.pattern == pattern && loaded.sparse_linears == 9 - want_dense &&
                  loaded.dense_linears == want_dense && loaded.param_bytes == saved.param_bytes,
              "%s: info: %d sparse, %d dense, %zu vs %zu bytes", what, loaded.sparse_linears, loaded.dense_linears,
              loaded.param_bytes, saved.param_bytes);
        size_t weights, bytes;
        expected_gemm_bytes(m, pattern, mode, &weights, &bytes);
        CHECK(saved.gemm_weights == weights && saved.gemm_weight_bytes == bytes &&
                  loaded.gemm_weights == weights && loaded.gemm_weight_bytes == bytes,
              "%s: GEMM weights %zu/%zu (loaded %zu/%zu) where the format gives %zu/%zu", what, saved.gemm_weights,
              saved.gemm_weight_bytes, loaded.gemm_weights, loaded.gemm_weight_bytes, weights, bytes);
        check_engine_load(path, r, &loaded, x);
        size_t fp32 = m->num_params * 4;
        printf("%s %s: %zu bytes vs %zu fp32 (%.2fx smaller)\n", what, gsq_sparse_pattern_name(pattern),
               saved.param_bytes, fp32, (double)fp32 / (double)saved.param_bytes);
    }
    gsq_model_free(r);
    gsq_model_free(m);
}

/* Row 0 of blocks.0.mlp.fc1 in the file, against the format's definition applied to its codes. */
static void test_layout(void)
{
    float x[B * 3 * 16 * 16];
    gsq_model *m = gsq_test_quantized_model(48, GSQ_SPARSE_2_4, GSQ_QMODE_INT4, 0, x, B);
    gsq_error err = {0};
    char path[128];
    snprintf(path, sizeof path, "%s/layout.safetensors", dir);
    CHECK(gsq_compressed_save(m, GSQ_SPARSE_2_4, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    int8_t codes[48 * 24];
    float scales[48];
    gsq_model_quant_weight_codes(m, 3, codes, scales, &err); /* linear 3: blocks.0.mlp.fc1 */
    gsq_st_file *f = NULL;
    gsq_st_open(&f, path, &err);
    const gsq_st_tensor *v = gsq_st_find(f, "blocks.0.mlp.fc1.values"), *mt = gsq_st_find(f, "blocks.0.mlp.fc1.meta");
    CHECK(v && mt && v->dtype == GSQ_DT_U8 && v->shape[1] == 6 && mt->dtype == GSQ_DT_U16 && mt->shape[1] == 2,
          "INT4 2:4 of 24 inputs: 12 kept values in 6 bytes, 6 groups in 2 words");
    int bad = 0;
    for (int g = 0; v && mt && g < 6; g++) {
        const uint8_t *mb = (const uint8_t *)mt->data;
        int nib = ((mb[2 * (g / 4)] | mb[2 * (g / 4) + 1] << 8) >> (4 * (g % 4))) & 15, i0 = nib & 3, i1 = nib >> 2;
        bad += i0 >= i1;
        for (int u = 0; u < 4; u++) /* every non-zero code is at a kept index */
            bad += codes[g * 4 + u] != 0 && u != i0 && u != i1;
        for (int k = 0; k < 2; k++) {
            int idx = 2 * g + k, byte = ((const uint8_t *)v->data)[idx / 2], nibble = (byte >> (4 * (idx % 2))) & 15;
            int code = nibble >= 8 ? nibble - 16 : nibble;
            bad += code != codes[g * 4 + (k ? i1 : i0)];
        }
    }
    CHECK(bad == 0, "%d mismatches between row 0's bytes and its codes", bad);
    gsq_st_close(f);
    gsq_model_free(m);
}

/* Copies src to dst with one change: tensor `name` replaced by (dt, shape, data) — or added when
 * the file has none — or dropped when dt < 0; metadata `key` set to `value` (NULL: unchanged). */
static void rewrite(const char *src, const char *dst, const char *name, int dt, int ndim, const int64_t *shape,
                    const void *data, const char *key, const char *value)
{
    gsq_error err = {0};
    gsq_st_file *f = NULL;
    gsq_st_writer *w = NULL;
    gsq_st_open(&f, src, &err);
    gsq_st_writer_create(&w, &err);
    int replaced = 0;
    for (size_t i = 0; i < gsq_st_count(f); i++) {
        const gsq_st_tensor *t = gsq_st_at(f, i);
        if (name && !strcmp(t->name, name)) {
            if (dt >= 0) gsq_st_writer_add(w, t->name, (gsq_dtype)dt, ndim, shape, data, &err);
            replaced = 1;
            continue;
        }
        gsq_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err);
    }
    if (name && dt >= 0 && !replaced) gsq_st_writer_add(w, name, (gsq_dtype)dt, ndim, shape, data, &err);
    for (size_t i = 0; i < gsq_st_meta_count(f); i++) {
        const char *k, *v;
        gsq_st_meta_at(f, i, &k, &v);
        gsq_st_writer_set_meta(w, k, key && !strcmp(k, key) ? value : v, &err);
    }
    CHECK(gsq_st_writer_write(w, dst, &err) == GSQ_OK, "%s", err.msg);
    gsq_st_writer_free(w);
    gsq_st_close(f);
}

/* The status of building the engine straight from path, with its message in err. */
static gsq_status engine_load_path(const char *path, gsq_error *err)
{
    gsq_st_file *f = NULL;
    gsq_engine *e = NULL;
    gsq_status st = gsq_st_open(&f, path, err);
    if (st == GSQ_OK) st = gsq_engine_load(&e, f, &(gsq_engine_options){.layout = GSQ_ENGINE_SPARSE, .max_batch = B, .device = GSQ_ENGINE_CPU}, err);
    gsq_st_close(f);
    if ((st == GSQ_OK) != (e != NULL)) st = GSQ_ERR_ARG; /* an engine with an error, or none without one */
    gsq_engine_free(e);
    return st;
}

static void expect_error(const char *path, gsq_status code, const char *needle, const char *what)
{
    gsq_error err = {0};
    gsq_model *m = NULL;
    gsq_status st = gsq_compressed_load(&m, path, NULL, &err);
    CHECK(st == code && m == NULL && strstr(err.msg, needle), "%s: got %s '%s'", what, gsq_status_name(st), err.msg);
    gsq_model_free(m);
    st = engine_load_path(path, &err);
    CHECK(st == code && strstr(err.msg, needle), "%s, engine straight from the file: got %s '%s'", what,
          gsq_status_name(st), err.msg);
}

static void test_hostile(void)
{
    char good[128], bad[128];
    snprintf(good, sizeof good, "%s/layout.safetensors", dir); /* INT4 2:4, from test_layout */
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    gsq_error err = {0};
    gsq_st_file *f = NULL;
    gsq_st_open(&f, good, &err);
    const gsq_st_tensor *meta = gsq_st_find(f, "blocks.0.mlp.fc1.meta"), *vals = gsq_st_find(f, "blocks.0.mlp.fc1.values");
    uint8_t mcopy[48 * 4], vcopy[48 * 6];
    memcpy(mcopy, meta->data, sizeof mcopy);
    memcpy(vcopy, vals->data, sizeof vcopy);
    int64_t mshape[2] = {48, 2}, vshape[2] = {48, 6}, short_shape[2] = {48, 5}, sshape[1] = {48};
    gsq_st_close(f);

    rewrite(good, bad, NULL, 0, 0, NULL, NULL, "gpusq.format_version", "2");
    expect_error(bad, GSQ_ERR_UNSUPPORTED, "version 2", "a newer format version");
    rewrite(good, bad, NULL, 0, 0, NULL, NULL, "gpusq.kind", "sparse");
    expect_error(bad, GSQ_ERR_FORMAT, "not a gpusq compressed model", "another kind of file");
    rewrite(good, bad, NULL, 0, 0, NULL, NULL, "quant.mode", "int3");
    expect_error(bad, GSQ_ERR_FORMAT, "quant.mode", "an unknown mode");
    rewrite(good, bad, NULL, 0, 0, NULL, NULL, "depth", "3");
    expect_error(bad, GSQ_ERR_MISSING, "blocks.2", "metadata that disagrees with the tensors");

    uint8_t m2[sizeof mcopy];
    memcpy(m2, mcopy, sizeof m2);
    m2[0] = (uint8_t)((m2[0] & 0xF0) | (1 | 1 << 2)); /* group 0: indices 1, 1 */
    rewrite(good, bad, "blocks.0.mlp.fc1.meta", GSQ_DT_U16, 2, mshape, m2, NULL, NULL);
    expect_error(bad, GSQ_ERR_FORMAT, "not increasing", "metadata indices out of order");
    memcpy(m2, mcopy, sizeof m2);
    m2[3] |= 0x30; /* row 0, word 1, group 7: past the 6 groups */
    rewrite(good, bad, "blocks.0.mlp.fc1.meta", GSQ_DT_U16, 2, mshape, m2, NULL, NULL);
    expect_error(bad, GSQ_ERR_FORMAT, "past the last group", "metadata beyond the row");
    uint8_t v2[sizeof vcopy];
    memcpy(v2, vcopy, sizeof v2);
    v2[5] = 0x08; /* code -8: outside [-7, 7] */
    rewrite(good, bad, "blocks.0.mlp.fc1.values", GSQ_DT_U8, 2, vshape, v2, NULL, NULL);
    expect_error(bad, GSQ_ERR_FORMAT, "outside [-7, 7]", "an INT4 code of -8");
    rewrite(good, bad, "blocks.0.mlp.fc1.values", GSQ_DT_U8, 2, short_shape, vcopy, NULL, NULL);
    expect_error(bad, GSQ_ERR_SHAPE, "blocks.0.mlp.fc1.values", "values of the wrong size");
    rewrite(good, bad, "blocks.0.mlp.fc1.values", GSQ_DT_I8, 2, vshape, vcopy, NULL, NULL);
    expect_error(bad, GSQ_ERR_SHAPE, "expected U8", "INT8 values in an INT4 file");
    rewrite(good, bad, "blocks.1.attn.proj.input_scale", -1, 0, NULL, NULL, NULL, NULL);
    expect_error(bad, GSQ_ERR_MISSING, "blocks.1.attn.proj.input_scale", "a missing activation scale");
    float neg[48];
    for (int i = 0; i < 48; i++) neg[i] = i == 7 ? -1.0f : 0.01f;
    rewrite(good, bad, "blocks.0.mlp.fc1.weight_scale", GSQ_DT_F32, 1, sshape, neg, NULL, NULL);
    expect_error(bad, GSQ_ERR_FORMAT, "row 7", "a negative weight scale");
    neg[7] = 1e-40f; /* found by tests/fuzz/fuzz_compressed.c: 1 / 1e-40 is inf, and 0 · inf NaN */
    rewrite(good, bad, "blocks.0.mlp.fc1.weight_scale", GSQ_DT_F32, 1, sshape, neg, NULL, NULL);
    expect_error(bad, GSQ_ERR_FORMAT, "row 7", "a subnormal weight scale");
    rewrite(good, bad, "norm.bias", -1, 0, NULL, NULL, NULL, NULL);
    expect_error(bad, GSQ_ERR_MISSING, "norm.bias", "a missing float parameter");
    float extra = 1.0f;
    rewrite(good, bad, "norm.bias", GSQ_DT_F32, 0, NULL, &extra, NULL, NULL);
    expect_error(bad, GSQ_ERR_SHAPE, "norm.bias", "a float parameter of the wrong shape");
    float three[3] = {1, 1, 1};
    int64_t s3[1] = {3};
    rewrite(good, bad, "blocks.0.attn.qkv.output_scale", GSQ_DT_F32, 1, s3, three, NULL, NULL);
    expect_error(bad, GSQ_ERR_FORMAT, "extra tensors", "attention scales in a file without quantized attention");
    rewrite(good, bad, "blocks.0.mlp.fc1.qweight", GSQ_DT_U8, 2, vshape, vcopy, NULL, NULL);
    expect_error(bad, GSQ_ERR_FORMAT, "extra tensors", "a sparse GEMM stored dense as well");
    rewrite(good, bad, NULL, 0, 0, NULL, NULL, "quant.attention", "yes");
    expect_error(bad, GSQ_ERR_FORMAT, "quant.attention", "quant.attention neither 0 nor 1");
}

/* Random byte mutations of a valid file (its data and its header): loading must end in success
 * or a clean error, never a crash or a sanitizer report; a loaded model must run. */
static void test_mutations(void)
{
    char good[128], bad[128];
    snprintf(good, sizeof good, "%s/layout.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/mutant.safetensors", dir);
    FILE *f = fopen(good, "rb");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *orig = malloc((size_t)size), *mut = malloc((size_t)size);
    size_t got = fread(orig, 1, (size_t)size, f);
    fclose(f);
    uint64_t header = 0;
    for (int i = 0; i < 8; i++) header |= (uint64_t)orig[i] << (8 * i);
    gsq_rng rng;
    gsq_rng_seed(&rng, 77, 0);
    int loaded = 0, refused = 0;
    float x[B * 3 * 16 * 16] = {0};
    for (int it = 0; it < 400 && got == (size_t)size; it++) {
        memcpy(mut, orig, (size_t)size);
        int flips = 1 + (int)(gsq_rng_u32(&rng) % 4);
        for (int k = 0; k < flips; k++) {
            /* three in four in the tensor data, the rest in the JSON header */
            size_t lo = it % 4 ? 8 + (size_t)header : 8, hi = it % 4 ? (size_t)size : 8 + (size_t)header;
            mut[lo + gsq_rng_u32(&rng) % (hi - lo)] ^= (unsigned char)(1u << (gsq_rng_u32(&rng) % 8));
        }
        f = fopen(bad, "wb");
        fwrite(mut, 1, (size_t)size, f);
        fclose(f);
        gsq_error err = {0};
        gsq_model *m = NULL;
        gsq_compressed_info info;
        gsq_status st = gsq_compressed_load(&m, bad, &info, &err);
        gsq_error engine_err = {0};
        gsq_status engine_st = engine_load_path(bad, &engine_err);
        CHECK(engine_st == st, "a mutant that gsq_compressed_load %s (%s) the engine %s (%s)",
              st == GSQ_OK ? "loads" : "refuses", err.msg, engine_st == GSQ_OK ? "loads" : "refuses", engine_err.msg);
        if (st == GSQ_OK) {
            loaded++;
            CHECK(gsq_model_forward(m, x, B, NULL, &err) == GSQ_OK, "a loaded mutant does not run: %s", err.msg);
            if (it % 8 == 0) check_engine_load(bad, m, &info, x); /* and some run alike in the engine */
        } else {
            refused++;
            CHECK(m == NULL && err.msg[0], "a refused mutant needs a message and no model");
        }
        gsq_model_free(m);
    }
    printf("mutants: %d loaded (changed values that are still valid), %d refused\n", loaded, refused);
    CHECK(refused > 50 && loaded > 50, "the mutations should hit both valid and invalid bytes");
    free(orig);
    free(mut);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    round_trip(48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 0, 0);
    round_trip(36, GSQ_SPARSE_4_8, GSQ_QMODE_INT4, 0, 2); /* fc2 has 36 inputs: stored dense, both blocks */
    round_trip(48, GSQ_SPARSE_2_4, GSQ_QMODE_W4A8, 0, 0);
    round_trip(48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 1, 0); /* attention matmuls quantized too */
    test_layout();
    test_hostile();
    test_mutations();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_compressed");
}
