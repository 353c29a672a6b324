/* Swin's pieces against plain references and bad files: the shifted-window partition is a
 * permutation with zero padding whose reverse undoes it, patch merging gathers timm's channel
 * order, the named configurations have timm's parameter counts, and files that are not a Swin
 * of the current timm layout (older layout, contradictory bias tables, a missing or mis-shaped
 * tensor, hostile metadata) are refused with a message naming the problem. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "gpusq/swin.h"
#include "test_util.h"

static char tmpdir[64];

/* Partition then reverse gives the grid back; every grid token is in exactly one window row and
 * the padding rows are zero; the shift moves token (r, c) to window position (r - s, c - s). */
static void test_windows(int G, int W, int S, int B, int C)
{
    gsq_window_geom w = {G, W, S};
    int rows = gsq_window_count(w) * W * W;
    float *x = malloc((size_t)B * G * G * C * sizeof(float)), *win = malloc((size_t)B * rows * C * sizeof(float));
    float *back = calloc((size_t)B * G * G * C, sizeof(float));
    for (int i = 0; i < B * G * G * C; i++) x[i] = (float)(i + 1);
    gsq_windows_from_grid(win, x, B, C, w, 0);
    gsq_windows_to_grid(back, win, B, C, w, 0);
    CHECK(memcmp(back, x, (size_t)B * G * G * C * sizeof(float)) == 0, "G %d W %d S %d: reverse(partition) != x", G, W, S);
    int *seen = calloc((size_t)G * G, sizeof *seen), pads = 0, bad = 0;
    for (int i = 0; i < rows; i++) {
        int src = gsq_window_source(w, i);
        if (src < 0) {
            pads++;
            for (int c = 0; c < C; c++) bad += win[(size_t)i * C + c] != 0.0f;
            continue;
        }
        seen[src]++;
        int Gp = (G + W - 1) / W * W, side = Gp / W, win_i = i / (W * W), t = i % (W * W);
        int r = win_i / side * W + t / W, c = win_i % side * W + t % W;
        bad += src != ((r + S) % G) * G + (c + S) % G;
    }
    for (int i = 0; i < G * G; i++) bad += seen[i] != 1;
    CHECK(bad == 0 && pads == rows - G * G, "G %d W %d S %d: %d misplaced rows", G, W, S, bad);
    /* the row maps (the export's and the GPU's gathers) name the rows the partition moves */
    int *map = malloc((size_t)(rows > G * G ? rows : G * G) * sizeof *map), wrong = 0;
    gsq_window_rows(w, 0, map);
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < C; c++) wrong += win[(size_t)i * C + c] != (map[i] < 0 ? 0.0f : x[(size_t)map[i] * C + c]);
    gsq_window_rows(w, 1, map);
    for (int g = 0; g < G * G; g++)
        for (int c = 0; c < C; c++) wrong += x[(size_t)g * C + c] != win[(size_t)map[g] * C + c];
    CHECK(wrong == 0, "G %d W %d S %d: %d values the row maps place elsewhere", G, W, S, wrong);
    free(x), free(win), free(back), free(seen), free(map);
}

static void test_merge(void)
{
    int G = 3, C = 2, M = 2;
    float x[3 * 3 * 2], out[2 * 2 * 8], dx[3 * 3 * 2] = {0};
    for (int i = 0; i < G * G * C; i++) x[i] = (float)(i + 1);
    gsq_merge_forward(out, x, 1, G, C);
    /* merged token (0, 1) = [x(0, 2), x(1, 2), x(0, 3) = 0, x(1, 3) = 0] */
    const float *t = out + (0 * M + 1) * 4 * C;
    CHECK(t[0] == x[(0 * G + 2) * C] && t[2] == x[(1 * G + 2) * C] && t[4] == 0 && t[6] == 0,
          "merge order [x(2i,2j), x(2i+1,2j), x(2i,2j+1), x(2i+1,2j+1)]");
    gsq_merge_backward(dx, out, 1, G, C);
    CHECK(memcmp(dx, x, sizeof x) == 0, "merge backward scatters every value back once");
    int map[2 * 2 * 4], wrong = 0;
    gsq_merge_rows(G, map);
    for (int r = 0; r < M * M * 4; r++)
        for (int c = 0; c < C; c++) wrong += out[r * C + c] != (map[r] < 0 ? 0.0f : x[map[r] * C + c]);
    CHECK(wrong == 0, "merge: %d values its row map places elsewhere", wrong);
}

static void test_named(void)
{
    /* timm's parameter counts */
    const struct { const char *name; size_t params; } want[] = {
        {"swin_tiny_patch4_window7_224", 28288354}, {"swin_small_patch4_window7_224", 49606258},
        {"swin_base_patch4_window7_224", 87768224}, {"swin_base_patch4_window12_384", 87903584},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        gsq_swin_config c;
        gsq_model *m = NULL;
        gsq_error err = {0};
        CHECK(gsq_swin_config_by_name(want[i].name, &c, &err) == GSQ_OK && gsq_swin_describe(&m, &c, &err) == GSQ_OK,
              "%s: %s", want[i].name, err.msg);
        CHECK(m && gsq_model_num_params(m) == want[i].params, "%s: %zu parameters, timm %zu", want[i].name,
              m ? gsq_model_num_params(m) : 0, want[i].params);
        gsq_model_free(m);
    }
}

/* The fixture swin_noshift (a 32-pixel input, saved as img_size metadata) rewritten: tensor `drop`
 * left out, `rename` renamed to `as`, tensor `reshape` given a different first dimension, or the
 * metadata key=value instead; then loading must fail with code and a message containing `says`. */
static void expect_refused(const char *drop, const char *rename, const char *as, const char *reshape, const char *key,
                           const char *value, gsq_status code, const char *says)
{
    char src[512], path[512];
    snprintf(src, sizeof src, "%s/tests/fixtures/swin_noshift.model.safetensors", GSQ_SOURCE_DIR);
    snprintf(path, sizeof path, "%s/bad.safetensors", tmpdir);
    gsq_error err = {0};
    gsq_st_file *f = NULL;
    gsq_st_writer *w = NULL;
    CHECK(gsq_st_open(&f, src, &err) == GSQ_OK && gsq_st_writer_create(&w, &err) == GSQ_OK, "%s", err.msg);
    if (!f || !w) return;
    float *bufs[256] = {0};
    for (size_t i = 0; i < gsq_st_count(f) && i < 256; i++) {
        const gsq_st_tensor *t = gsq_st_at(f, i);
        if (drop && strcmp(t->name, drop) == 0) continue;
        int64_t shape[8];
        for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
        size_t n = t->numel;
        if (reshape && strcmp(t->name, reshape) == 0) shape[0] += 1, n += t->numel / (size_t)t->shape[0];
        bufs[i] = calloc(n ? n : 1, sizeof(float));
        gsq_st_read_f32(f, t, bufs[i], t->numel, &err);
        gsq_st_writer_add(w, rename && strcmp(t->name, rename) == 0 ? as : t->name, GSQ_DT_F32, t->ndim, shape, bufs[i],
                          &err);
    }
    gsq_st_writer_set_meta(w, key ? key : "img_size", key ? value : "32", &err); /* the fixture's input: 32 */
    CHECK(gsq_st_writer_write(w, path, &err) == GSQ_OK, "%s", err.msg);
    gsq_st_writer_free(w);
    gsq_st_close(f);
    for (int i = 0; i < 256; i++) free(bufs[i]);
    gsq_model *m = NULL;
    gsq_status st = gsq_model_load(&m, path, &err);
    CHECK(st == code && m == NULL && strstr(err.msg, says), "expected %d '%s', got %d: %s", code, says, st, err.msg);
    gsq_model_free(m);
    remove(path);
}

static void test_bad_files(void)
{
    expect_refused("layers.1.blocks.1.mlp.fc2.bias", NULL, NULL, NULL, NULL, NULL, GSQ_ERR_MISSING,
                   "layers.1.blocks.1.mlp.fc2.bias");
    expect_refused(NULL, "head.fc.weight", "head.weight", NULL, NULL, NULL, GSQ_ERR_UNSUPPORTED, "older layout");
    expect_refused(NULL, NULL, NULL, "layers.1.downsample.reduction.weight", NULL, NULL, GSQ_ERR_SHAPE,
                   "layers.1.downsample.reduction.weight");
    expect_refused(NULL, NULL, NULL, "layers.0.blocks.0.attn.relative_position_bias_table", NULL, NULL, GSQ_ERR_SHAPE,
                   "relative position bias table");
    /* window 8 at a 64-pixel input would be a grid of 16: the tables say otherwise */
    expect_refused(NULL, NULL, NULL, NULL, "img_size", "64", GSQ_ERR_SHAPE, "input size");
    expect_refused(NULL, NULL, NULL, NULL, "img_size", "-3", GSQ_ERR_FORMAT, "img_size");
    expect_refused(NULL, NULL, NULL, NULL, "img_size", "999999", GSQ_ERR_SHAPE, "img_size");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gsq_test_swin_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_windows(8, 4, 0, 2, 3);
    test_windows(8, 4, 2, 1, 5);
    test_windows(14, 4, 2, 2, 3); /* padded */
    test_windows(7, 3, 1, 1, 2);  /* padded, odd */
    test_windows(5, 5, 0, 1, 1);  /* one window */
    test_merge();
    test_named();
    test_bad_files();
    rmdir(tmpdir);
    return test_finish("test_swin");
}
