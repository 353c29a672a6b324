/* libFuzzer harness for the safetensors reader: open the input as an in-memory image, read every
 * F32/F16/BF16 tensor as floats, look every name and metadata key back up, close. Built with
 * -DGSQ_FUZZ_MAKE_SEEDS instead, it is a small program writing valid seed files with the writer:
 * fuzz_safetensors_seeds DIR. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/half.h"
#include "gpusq/safetensors.h"

#ifndef GSQ_FUZZ_MAKE_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gsq_st_file *f = NULL;
    gsq_error err;
    if (gsq_st_open_buffer(&f, data, size, "fuzz", &err) != GSQ_OK) {
        if (f != NULL || err.code == GSQ_OK || strstr(err.msg, "fuzz") == NULL) abort();
        return 0;
    }
    for (size_t i = 0; i < gsq_st_count(f); i++) {
        const gsq_st_tensor *t = gsq_st_at(f, i);
        if (gsq_st_find(f, t->name) != t) abort();
        if ((const uint8_t *)t->data < data || (const uint8_t *)t->data + t->nbytes > data + size) abort();
        if (t->dtype != GSQ_DT_F32 && t->dtype != GSQ_DT_F16 && t->dtype != GSQ_DT_BF16) continue;
        float *dst = malloc(t->numel ? t->numel * sizeof(float) : 1);
        if (!dst) abort();
        if (gsq_st_read_f32(f, t, dst, t->numel, &err) != GSQ_OK) abort();
        free(dst);
    }
    for (size_t i = 0; i < gsq_st_meta_count(f); i++) {
        const char *k, *v;
        gsq_st_meta_at(f, i, &k, &v);
        if (!k || !v || gsq_st_meta_get(f, k) != v) abort();
    }
    gsq_st_close(f);
    return 0;
}

#else

static int seed(const char *dir, const char *name, gsq_st_writer *w)
{
    char path[1024];
    gsq_error err;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gsq_status st = gsq_st_writer_write(w, path, &err);
    gsq_st_writer_free(w);
    if (st != GSQ_OK) fprintf(stderr, "seed %s: %s\n", name, err.msg);
    return st == GSQ_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    static float f32[12] = {1, -2, 3.5f, 0, 1e-30f, -1e30f, 7, 8, 9, 10, 11, 12};
    static uint16_t f16[6], bf16[4];
    static int8_t i8[5] = {-128, -1, 0, 1, 127};
    static int64_t i64[2] = {-5, 1LL << 40};
    gsq_f32_to_f16_n(f32, f16, 6);
    gsq_f32_to_bf16_n(f32, bf16, 4);
    const int64_t s34[2] = {3, 4}, s6[1] = {6}, s22[2] = {2, 2}, s5[1] = {5}, s2[1] = {2},
                  s0[3] = {2, 0, 3}, s1111[4] = {1, 1, 1, 12};
    gsq_error err;
    gsq_st_writer *w;
    int bad = 0;

    gsq_st_writer_create(&w, &err);
    gsq_st_writer_add(w, "blocks.0.mlp.fc1.weight", GSQ_DT_F32, 2, s34, f32, &err);
    gsq_st_writer_add(w, "blocks.0.mlp.fc1.bias", GSQ_DT_F16, 1, s6, f16, &err);
    gsq_st_writer_set_meta(w, "format", "pt", &err);
    bad |= seed(argv[1], "f32_f16_meta.safetensors", w);

    gsq_st_writer_create(&w, &err);
    gsq_st_writer_add(w, "norm", GSQ_DT_BF16, 2, s22, bf16, &err);
    gsq_st_writer_add(w, "ids", GSQ_DT_I8, 1, s5, i8, &err);
    gsq_st_writer_add(w, "steps", GSQ_DT_I64, 1, s2, i64, &err);
    gsq_st_writer_add(w, "empty", GSQ_DT_F32, 3, s0, NULL, &err);
    gsq_st_writer_add(w, "scalar", GSQ_DT_F32, 0, NULL, f32, &err);
    bad |= seed(argv[1], "mixed.safetensors", w);

    gsq_st_writer_create(&w, &err);
    gsq_st_writer_add(w, "x", GSQ_DT_F32, 4, s1111, f32, &err);
    gsq_st_writer_set_meta(w, "note", "esc \"q\" \\ \xc3\xa9", &err);
    gsq_st_writer_set_meta(w, "step", "100", &err);
    bad |= seed(argv[1], "meta.safetensors", w);

    gsq_st_writer_create(&w, &err);
    bad |= seed(argv[1], "empty.safetensors", w);
    return bad;
}

#endif
