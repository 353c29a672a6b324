/* Helpers shared by the safetensors tests (test_safetensors.c, test_safetensors_hostile.c): a
 * mkdtemp() directory for temporaries, file reading, a clock, and the writer of the round-trip file
 * that one test checks and the other truncates and mutates. */
#ifndef GSQ_SAFETENSORS_TEST_UTIL_H
#define GSQ_SAFETENSORS_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gpusq/half.h"
#include "gpusq/safetensors.h"
#include "test_util.h"

static char tmp_root[64];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmp_root, name);
}

/* Removes dir and everything under it (our own temporaries only). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        unlink(dir);
        return;
    }
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, fp) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return b;
}

/* Creates tmp_root; returns 0 (after saying why) on failure. */
static int make_tmp_root(void)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/gsq_st_XXXXXX");
    if (mkdtemp(tmp_root)) return 1;
    fprintf(stderr, "mkdtemp failed: %s\n", strerror(errno));
    return 0;
}

/* The tensors of the round-trip file (test_safetensors checks it; test_safetensors_hostile damages
 * it). */
static float rt_f32[6] = {1.0f, -2.0f, 3.5f, 0.0f, -0.0f, 1e-30f};
static uint16_t rt_f16[5], rt_bf16[3];
static int8_t rt_i8[7] = {-128, -1, 0, 1, 2, 64, 127};
static int64_t rt_i64[4] = {INT64_MIN, -1, 0, INT64_MAX};
static float rt_scalar = 42.0f;

/* Builds the round-trip writer (F32, F16, BF16, I8, I64, an empty and a scalar tensor, metadata)
 * into *out (also when a step fails); returns whether every step succeeded, err says why not. */
static int make_rt_writer(gsq_st_writer **out, gsq_error *err)
{
    static const float f16src[5] = {0.5f, -1.25f, 65504.0f, 5.9604644775390625e-8f, -0.0f};
    static const float bf16src[3] = {3.140625f, -1e20f, 1e-38f};
    gsq_f32_to_f16_n(f16src, rt_f16, 5);
    gsq_f32_to_bf16_n(bf16src, rt_bf16, 3);
    gsq_st_writer *w = NULL;
    int ok = gsq_st_writer_create(&w, err) == GSQ_OK;
    const int64_t s23[2] = {2, 3}, s5[1] = {5}, s31[2] = {3, 1}, s7[1] = {7}, s22[2] = {2, 2},
                  s04[2] = {0, 4};
    ok = ok && gsq_st_writer_add(w, "blocks.0.attn.qkv.weight", GSQ_DT_F32, 2, s23, rt_f32, err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "half", GSQ_DT_F16, 1, s5, rt_f16, err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "brain", GSQ_DT_BF16, 2, s31, rt_bf16, err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "bytes", GSQ_DT_I8, 1, s7, rt_i8, err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "longs \"quoted\"\\", GSQ_DT_I64, 2, s22, rt_i64, err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "empty", GSQ_DT_F32, 2, s04, NULL, err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "scalar", GSQ_DT_F32, 0, NULL, &rt_scalar, err) == GSQ_OK;
    ok = ok && gsq_st_writer_set_meta(w, "format", "np", err) == GSQ_OK;
    ok = ok && gsq_st_writer_set_meta(w, "note", "tab\there \"q\" \\ \xc3\xbc\n", err) == GSQ_OK;
    ok = ok && gsq_st_writer_set_meta(w, "format", "pt", err) == GSQ_OK; /* replaces */
    *out = w;
    return ok;
}

#endif
