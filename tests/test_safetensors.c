/* Tests for the safetensors reader and writer and the F16/BF16 conversions: round trips, one case
 * per validation rule (hand-built hostile headers), every truncation of a valid file, a seeded
 * mutation smoke test, and the atomic-write guarantees (missing directory, overwrite, failures
 * that leave the previous file intact). Temporaries live under a mkdtemp() directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
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

static uint32_t f32_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static float bits_f32(uint32_t x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
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

/* Entries in dir whose name contains needle (NULL: all). */
static int count_entries(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (!needle || strstr(e->d_name, needle)) n++;
    }
    closedir(d);
    return n;
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

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) return;
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

/* An image with the given header length field, header text and data_len zero bytes of data. */
static unsigned char *image_raw(uint64_t hlen, const char *json, size_t json_len, size_t data_len,
                                size_t *out_len)
{
    size_t n = 8 + json_len + data_len;
    unsigned char *b = calloc(n ? n : 1, 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, json, json_len);
    for (size_t i = 0; i < data_len; i++) b[8 + json_len + i] = (unsigned char)(i * 37 + 1);
    *out_len = n;
    return b;
}

static unsigned char *image(const char *json, size_t data_len, size_t *out_len)
{
    return image_raw(strlen(json), json, strlen(json), data_len, out_len);
}

#define LABEL "hostile.safetensors"

/* Opens buf and expects failure with code; the message must name LABEL and `must` (if any). */
static void expect_fail(const char *what, const unsigned char *buf, size_t len, gsq_status code,
                        const char *must)
{
    gsq_st_file *f = (gsq_st_file *)1;
    gsq_error err = {0};
    gsq_status st = gsq_st_open_buffer(&f, buf, len, LABEL, &err);
    CHECK(st == code, "%s: status %s, expected %s (%s)", what, gsq_status_name(st),
          gsq_status_name(code), err.msg);
    CHECK(f == NULL, "%s: handle not NULL on failure", what);
    CHECK(err.code == st, "%s: err.code %d vs %d", what, (int)err.code, (int)st);
    CHECK(strstr(err.msg, LABEL) != NULL, "%s: message does not name the file: %s", what, err.msg);
    if (must) CHECK(strstr(err.msg, must) != NULL, "%s: message lacks '%s': %s", what, must, err.msg);
    if (st == GSQ_OK) gsq_st_close(f);
}

static void expect_json_fail(const char *what, const char *json, size_t data_len, gsq_status code,
                             const char *must)
{
    size_t len;
    unsigned char *b = image(json, data_len, &len);
    expect_fail(what, b, len, code, must);
    free(b);
}

/* The header {"w": {...}} with the given dtype, shape and data_offsets JSON texts. */
#define ENTRY(dt, shape, offs) \
    "{\"w\":{\"dtype\":" dt ",\"shape\":" shape ",\"data_offsets\":" offs "}}"

/* A failure in the entry of tensor "w": the message must name 'w' and contain `must`. */
static void expect_w_fail(const char *what, const char *json, size_t data_len, gsq_status code,
                          const char *must)
{
    size_t len;
    unsigned char *b = image(json, data_len, &len);
    expect_fail(what, b, len, code, "tensor 'w'");
    if (must) expect_fail(what, b, len, code, must);
    free(b);
}

static void expect_json_ok(const char *what, const char *json, size_t data_len, size_t count)
{
    size_t len;
    unsigned char *b = image(json, data_len, &len);
    gsq_st_file *f = NULL;
    gsq_error err = {0};
    gsq_status st = gsq_st_open_buffer(&f, b, len, LABEL, &err);
    CHECK(st == GSQ_OK, "%s: expected success, got %s: %s", what, gsq_status_name(st), err.msg);
    if (st == GSQ_OK) CHECK(gsq_st_count(f) == count, "%s: %zu tensors", what, gsq_st_count(f));
    gsq_st_close(f);
    free(b);
}

static void test_dtypes(void)
{
    static const char *names[] = {"F32", "F16", "BF16", "F64", "I8", "U8", "I16", "U16",
                                  "I32", "U32", "I64", "U64", "BOOL", "F8_E4M3", "F8_E5M2"};
    static const size_t sizes[] = {4, 2, 2, 8, 1, 1, 2, 2, 4, 4, 8, 8, 1, 1, 1};
    for (int i = 0; i < GSQ_DT_COUNT; i++) {
        gsq_dtype dt;
        CHECK(strcmp(gsq_dtype_name((gsq_dtype)i), names[i]) == 0, "name %d", i);
        CHECK(gsq_dtype_size((gsq_dtype)i) == sizes[i], "size %d", i);
        CHECK(gsq_dtype_from_name(names[i], &dt) && dt == (gsq_dtype)i, "from_name %s", names[i]);
    }
    gsq_dtype dt;
    CHECK(!gsq_dtype_from_name("f32", &dt), "names are case-sensitive");
    CHECK(gsq_dtype_size((gsq_dtype)99) == 0, "invalid dtype size");
}

static void test_half(void)
{
    /* f16: exact values, overflow boundary, subnormals, ties to even */
    CHECK(gsq_f32_to_f16(0.0f) == 0x0000 && gsq_f32_to_f16(-0.0f) == 0x8000, "signed zero");
    CHECK(gsq_f32_to_f16(1.0f) == 0x3c00 && gsq_f32_to_f16(-2.0f) == 0xc000, "1, -2");
    CHECK(gsq_f32_to_f16(65504.0f) == 0x7bff, "max half");
    CHECK(gsq_f32_to_f16(65519.99f) == 0x7bff, "just below the overflow tie");
    CHECK(gsq_f32_to_f16(65520.0f) == 0x7c00, "65520 ties to even = inf");
    CHECK(gsq_f32_to_f16(INFINITY) == 0x7c00 && gsq_f32_to_f16(-INFINITY) == 0xfc00, "inf");
    CHECK(gsq_f32_to_f16(1e30f) == 0x7c00, "overflow");
    uint16_t hn = gsq_f32_to_f16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "NaN stays NaN: %04x", hn);
    hn = gsq_f32_to_f16(bits_f32(0x7f800001u)); /* payload only in the low bits */
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "low-payload NaN not inf: %04x", hn);
    CHECK(gsq_f32_to_f16(bits_f32(0xffc00000u)) == 0xfe00, "negative NaN keeps its sign");
    float sub = 5.9604644775390625e-8f; /* 2^-24 */
    CHECK(gsq_f32_to_f16(sub) == 0x0001, "min subnormal");
    CHECK(gsq_f32_to_f16(sub * 0.5f) == 0x0000, "2^-25 ties to zero");
    CHECK(gsq_f32_to_f16(bits_f32(f32_bits(sub * 0.5f) + 1)) == 0x0001, "just over 2^-25");
    CHECK(gsq_f32_to_f16(-sub * 0.5f) == 0x8000, "-2^-25 -> -0");
    CHECK(gsq_f32_to_f16(sub * 1.5f) == 0x0002, "1.5 ulp ties to 2");
    CHECK(gsq_f32_to_f16(sub * 2.5f) == 0x0002, "2.5 ulp ties to 2");
    CHECK(gsq_f32_to_f16(sub * 1023.0f) == 0x03ff, "max subnormal");
    CHECK(gsq_f32_to_f16(sub * 1023.5f) == 0x0400, "subnormal rounds up into the normals");
    CHECK(gsq_f32_to_f16(6.103515625e-05f) == 0x0400, "min normal");
    CHECK(gsq_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00, "tie at 1 rounds to even");
    CHECK(gsq_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02, "tie rounds up to even");
    CHECK(gsq_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01, "above the tie");
    CHECK(gsq_f16_to_f32(0x0001) == sub && gsq_f16_to_f32(0x8001) == -sub, "subnormal widen");
    CHECK(gsq_f16_to_f32(0x7bff) == 65504.0f && isinf(gsq_f16_to_f32(0xfc00)), "max, -inf widen");
    CHECK(isnan(gsq_f16_to_f32(0x7c01)) && isnan(gsq_f16_to_f32(0xfe00)), "NaN widen");
    CHECK(f32_bits(gsq_f16_to_f32(0x8000)) == 0x80000000u, "-0 widen");
    /* bf16 */
    CHECK(gsq_f32_to_bf16(1.0f) == 0x3f80 && gsq_f32_to_bf16(-0.0f) == 0x8000, "1, -0");
    CHECK(gsq_f32_to_bf16(bits_f32(0x3f808000u)) == 0x3f80, "tie to even (down)");
    CHECK(gsq_f32_to_bf16(bits_f32(0x3f818000u)) == 0x3f82, "tie to even (up)");
    CHECK(gsq_f32_to_bf16(bits_f32(0x3f808001u)) == 0x3f81, "above the tie");
    CHECK(gsq_f32_to_bf16(bits_f32(0x7f7f7fffu)) == 0x7f7f, "below the overflow tie");
    CHECK(gsq_f32_to_bf16(bits_f32(0x7f7f8000u)) == 0x7f80, "overflow tie -> inf");
    CHECK(gsq_f32_to_bf16(-INFINITY) == 0xff80, "-inf");
    uint16_t bn = gsq_f32_to_bf16(bits_f32(0x7f800001u));
    CHECK((bn & 0x7f80) == 0x7f80 && (bn & 0x7f) != 0, "low-payload NaN not inf: %04x", bn);
    CHECK(gsq_f32_to_bf16(bits_f32(0x00008000u)) == 0x0000, "subnormal tie to zero");
    CHECK(gsq_f32_to_bf16(bits_f32(0x00018000u)) == 0x0002, "subnormal tie to even");
    CHECK(f32_bits(gsq_bf16_to_f32(0x0001)) == 0x00010000u, "bf16 subnormal widen");
    CHECK(isnan(gsq_bf16_to_f32(0x7f81)) && isinf(gsq_bf16_to_f32(0xff80)), "bf16 NaN/inf widen");
    int f16_bad = 0, bf16_bad = 0; /* every non-NaN pattern survives widen + narrow */
    for (uint32_t h = 0; h < 65536; h++) {
        float v = gsq_f16_to_f32((uint16_t)h), b = gsq_bf16_to_f32((uint16_t)h);
        if (isnan(v) ? !isnan(gsq_f16_to_f32(gsq_f32_to_f16(v))) : gsq_f32_to_f16(v) != h) f16_bad++;
        if (!isnan(b) && gsq_f32_to_bf16(b) != h) bf16_bad++;
    }
    CHECK(f16_bad == 0 && bf16_bad == 0, "round-trip failures: f16 %d, bf16 %d", f16_bad, bf16_bad);

    float src[5] = {1.0f, -2.5f, 0.1f, 1e-6f, 3e4f}, back[5];
    uint16_t h16[5];
    gsq_f32_to_f16_n(src, h16, 5);
    gsq_f16_to_f32_n(h16, back, 5);
    CHECK(max_rel_err(back, src, 5) < 1e-3, "f16 array round trip");
    gsq_f32_to_bf16_n(src, h16, 5);
    gsq_bf16_to_f32_n(h16, back, 5);
    CHECK(max_rel_err(back, src, 5) < 1e-2, "bf16 array round trip");
}

/* The tensors of the round-trip file. */
static float rt_f32[6] = {1.0f, -2.0f, 3.5f, 0.0f, -0.0f, 1e-30f};
static uint16_t rt_f16[5], rt_bf16[3];
static int8_t rt_i8[7] = {-128, -1, 0, 1, 2, 64, 127};
static int64_t rt_i64[4] = {INT64_MIN, -1, 0, INT64_MAX};
static float rt_scalar = 42.0f;

/* Builds the round-trip writer (F32, F16, BF16, I8, I64, an empty and a scalar tensor, metadata). */
static gsq_st_writer *make_writer(void)
{
    static const float f16src[5] = {0.5f, -1.25f, 65504.0f, 5.9604644775390625e-8f, -0.0f};
    static const float bf16src[3] = {3.140625f, -1e20f, 1e-38f};
    gsq_f32_to_f16_n(f16src, rt_f16, 5);
    gsq_f32_to_bf16_n(bf16src, rt_bf16, 3);
    gsq_st_writer *w = NULL;
    gsq_error err = {0};
    int ok = gsq_st_writer_create(&w, &err) == GSQ_OK;
    const int64_t s23[2] = {2, 3}, s5[1] = {5}, s31[2] = {3, 1}, s7[1] = {7}, s22[2] = {2, 2},
                  s04[2] = {0, 4};
    ok = ok && gsq_st_writer_add(w, "blocks.0.attn.qkv.weight", GSQ_DT_F32, 2, s23, rt_f32, &err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "half", GSQ_DT_F16, 1, s5, rt_f16, &err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "brain", GSQ_DT_BF16, 2, s31, rt_bf16, &err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "bytes", GSQ_DT_I8, 1, s7, rt_i8, &err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "longs \"quoted\"\\", GSQ_DT_I64, 2, s22, rt_i64, &err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "empty", GSQ_DT_F32, 2, s04, NULL, &err) == GSQ_OK;
    ok = ok && gsq_st_writer_add(w, "scalar", GSQ_DT_F32, 0, NULL, &rt_scalar, &err) == GSQ_OK;
    ok = ok && gsq_st_writer_set_meta(w, "format", "np", &err) == GSQ_OK;
    ok = ok && gsq_st_writer_set_meta(w, "note", "tab\there \"q\" \\ \xc3\xbc\n", &err) == GSQ_OK;
    ok = ok && gsq_st_writer_set_meta(w, "format", "pt", &err) == GSQ_OK; /* replaces */
    CHECK(ok, "building the writer: %s", err.msg);
    return w;
}

static void check_roundtrip_file(gsq_st_file *f)
{
    CHECK(gsq_st_count(f) == 7, "count %zu", gsq_st_count(f));
    static const char *order[] = {"blocks.0.attn.qkv.weight", "half", "brain", "bytes",
                                  "longs \"quoted\"\\", "empty", "scalar"};
    for (size_t i = 0; i < 7 && i < gsq_st_count(f); i++)
        CHECK(strcmp(gsq_st_at(f, i)->name, order[i]) == 0, "order %zu: %s", i, gsq_st_at(f, i)->name);
    CHECK(gsq_st_at(f, 7) == NULL, "at past the end");
    const gsq_st_tensor *t = gsq_st_find(f, "blocks.0.attn.qkv.weight");
    gsq_error err = {0};
    float buf[8];
    CHECK(t && t->dtype == GSQ_DT_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
          t->numel == 6 && t->nbytes == 24, "f32 tensor header");
    if (t) {
        CHECK(memcmp(t->data, rt_f32, 24) == 0, "f32 bytes");
        CHECK(gsq_st_read_f32(f, t, buf, 6, &err) == GSQ_OK && memcmp(buf, rt_f32, 24) == 0, "f32 read");
        CHECK(gsq_st_read_f32(f, t, buf, 5, &err) == GSQ_ERR_SHAPE, "wrong n -> shape error");
        CHECK(strstr(err.msg, "blocks.0.attn.qkv.weight") != NULL, "shape message names tensor: %s",
              err.msg);
    }
    t = gsq_st_find(f, "half");
    CHECK(t && t->dtype == GSQ_DT_F16 && t->numel == 5 && memcmp(t->data, rt_f16, 10) == 0, "f16 tensor");
    if (t && gsq_st_read_f32(f, t, buf, 5, &err) == GSQ_OK)
        CHECK(buf[0] == 0.5f && buf[1] == -1.25f && buf[2] == 65504.0f &&
              buf[3] == 5.9604644775390625e-8f && f32_bits(buf[4]) == 0x80000000u, "f16 values");
    else CHECK(0, "f16 read: %s", err.msg);
    t = gsq_st_find(f, "brain");
    CHECK(t && t->dtype == GSQ_DT_BF16 && t->shape[0] == 3 && t->shape[1] == 1, "bf16 tensor");
    if (t && gsq_st_read_f32(f, t, buf, 3, &err) == GSQ_OK)
        CHECK(buf[0] == 3.140625f && buf[1] == gsq_bf16_to_f32(gsq_f32_to_bf16(-1e20f)) &&
              buf[2] == gsq_bf16_to_f32(rt_bf16[2]), "bf16 values");
    else CHECK(0, "bf16 read: %s", err.msg);
    t = gsq_st_find(f, "bytes");
    CHECK(t && t->dtype == GSQ_DT_I8 && memcmp(t->data, rt_i8, 7) == 0, "i8 tensor");
    if (t) {
        CHECK(gsq_st_read_f32(f, t, buf, 7, &err) == GSQ_ERR_UNSUPPORTED, "i8 as f32 unsupported");
        CHECK(strstr(err.msg, "bytes") && strstr(err.msg, "I8"), "unsupported message: %s", err.msg);
    }
    t = gsq_st_find(f, "longs \"quoted\"\\");
    CHECK(t && t->dtype == GSQ_DT_I64 && t->nbytes == 32 && memcmp(t->data, rt_i64, 32) == 0, "i64 tensor");
    t = gsq_st_find(f, "empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0 && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 4,
          "empty tensor");
    if (t) CHECK(gsq_st_read_f32(f, t, NULL, 0, &err) == GSQ_OK, "empty read: %s", err.msg);
    t = gsq_st_find(f, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && gsq_st_read_f32(f, t, buf, 1, &err) == GSQ_OK &&
          buf[0] == 42.0f, "scalar tensor");
    CHECK(gsq_st_find(f, "absent") == NULL && gsq_st_find(f, "") == NULL, "find of an absent name");
    CHECK(gsq_st_meta_count(f) == 2, "meta count %zu", gsq_st_meta_count(f));
    CHECK(gsq_st_meta_get(f, "format") && strcmp(gsq_st_meta_get(f, "format"), "pt") == 0, "meta replaced");
    CHECK(gsq_st_meta_get(f, "note") &&
          strcmp(gsq_st_meta_get(f, "note"), "tab\there \"q\" \\ \xc3\xbc\n") == 0, "meta escapes");
    CHECK(gsq_st_meta_get(f, "nope") == NULL, "absent meta");
    const char *k = NULL, *v = NULL;
    gsq_st_meta_at(f, 0, &k, &v);
    CHECK(k && v && strcmp(k, "format") == 0, "meta_at 0");
    gsq_st_meta_at(f, 2, &k, &v);
    CHECK(k == NULL && v == NULL, "meta_at past the end");
}

static void test_roundtrip(void)
{
    char path[256];
    path_in(path, sizeof path, "rt.safetensors");
    gsq_st_writer *w = make_writer();
    gsq_error err = {0};
    CHECK(gsq_st_writer_write(w, path, &err) == GSQ_OK, "write: %s", err.msg);
    gsq_st_writer_free(w);
    CHECK(count_entries(tmp_root, ".tmp.") == 0, "no temporary left behind");

    gsq_st_file *f = NULL;
    CHECK(gsq_st_open(&f, path, &err) == GSQ_OK, "open: %s", err.msg);
    if (f) {
        CHECK(strcmp(gsq_st_label(f), path) == 0, "label is the path");
        check_roundtrip_file(f);
        gsq_st_close(f);
    }

    size_t len;
    unsigned char *bytes = read_all(path, &len);
    CHECK(bytes != NULL && len > 8, "read back");
    if (!bytes) return;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | bytes[i];
    CHECK((8 + hlen) % 8 == 0, "data section 8-byte aligned (header %llu)", (unsigned long long)hlen);
    CHECK(bytes[8] == '{' && (bytes[8 + hlen - 1] == ' ' || bytes[8 + hlen - 1] == '}'),
          "header is an object padded with spaces");
    CHECK(len == 8 + hlen + 24 + 10 + 6 + 7 + 32 + 0 + 4, "file size %zu", len);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644, "new file mode 0644");

    /* unaligned: the same image at an odd address */
    unsigned char *odd = malloc(len + 1);
    memcpy(odd + 1, bytes, len);
    f = NULL;
    CHECK(gsq_st_open_buffer(&f, odd + 1, len, "odd", &err) == GSQ_OK, "open unaligned: %s", err.msg);
    if (f) {
        check_roundtrip_file(f);
        CHECK(strcmp(gsq_st_label(f), "odd") == 0, "buffer label");
        gsq_st_close(f);
    }
    free(odd);
    free(bytes);

    /* an empty writer gives a valid file with no tensors */
    path_in(path, sizeof path, "empty.safetensors");
    gsq_st_writer_create(&w, &err);
    CHECK(gsq_st_writer_write(w, path, &err) == GSQ_OK, "empty write: %s", err.msg);
    gsq_st_writer_free(w);
    CHECK(gsq_st_open(&f, path, &err) == GSQ_OK && gsq_st_count(f) == 0 && gsq_st_meta_count(f) == 0,
          "empty file opens: %s", err.msg);
    gsq_st_close(f);
    gsq_st_close(NULL);
    gsq_st_writer_free(NULL);
}

static void test_writer_rejects(void)
{
    gsq_st_writer *w = NULL;
    gsq_error err = {0};
    gsq_st_writer_create(&w, &err);
    float x[4] = {0};
    const int64_t s4[1] = {4}, neg[1] = {-1}, big[3] = {INT64_MAX, INT64_MAX, 2};
    const int64_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(gsq_st_writer_add(w, "a", GSQ_DT_F32, 1, s4, x, &err) == GSQ_OK, "first add");
    CHECK(gsq_st_writer_add(w, "a", GSQ_DT_F32, 1, s4, x, &err) == GSQ_ERR_ARG &&
          strstr(err.msg, "'a'"), "duplicate: %s", err.msg);
    CHECK(gsq_st_writer_add(w, "", GSQ_DT_F32, 1, s4, x, &err) == GSQ_ERR_ARG, "empty name");
    CHECK(gsq_st_writer_add(w, NULL, GSQ_DT_F32, 1, s4, x, &err) == GSQ_ERR_ARG, "NULL name");
    CHECK(gsq_st_writer_add(w, "__metadata__", GSQ_DT_F32, 1, s4, x, &err) == GSQ_ERR_ARG, "reserved name");
    CHECK(gsq_st_writer_add(w, "bad\xff", GSQ_DT_F32, 1, s4, x, &err) == GSQ_ERR_ARG, "invalid UTF-8");
    CHECK(gsq_st_writer_add(w, "n", GSQ_DT_F32, 1, neg, x, &err) == GSQ_ERR_SHAPE &&
          strstr(err.msg, "'n'"), "negative dim: %s", err.msg);
    CHECK(gsq_st_writer_add(w, "o", GSQ_DT_F32, 3, big, x, &err) == GSQ_ERR_SHAPE, "overflow: %s", err.msg);
    CHECK(gsq_st_writer_add(w, "d", GSQ_DT_F32, 9, s9, x, &err) == GSQ_ERR_SHAPE, "9 dims");
    CHECK(gsq_st_writer_add(w, "d", GSQ_DT_F32, -1, s9, x, &err) == GSQ_ERR_SHAPE, "-1 dims");
    CHECK(gsq_st_writer_add(w, "p", GSQ_DT_F32, 1, s4, NULL, &err) == GSQ_ERR_ARG, "NULL data");
    CHECK(gsq_st_writer_add(w, "q", (gsq_dtype)77, 1, s4, x, &err) == GSQ_ERR_ARG, "bad dtype");
    CHECK(gsq_st_writer_set_meta(w, "k", NULL, &err) == GSQ_ERR_ARG, "NULL meta value");
    CHECK(gsq_st_writer_set_meta(w, "k", "\xc0\x80", &err) == GSQ_ERR_ARG, "overlong UTF-8 meta");
    gsq_st_writer_free(w);
}

/* One case per validation rule; each must fail with the right code and name file and tensor. */
static void test_hostile_headers(void)
{
    size_t len;
    unsigned char *b;
    expect_fail("empty buffer", (const unsigned char *)"", 0, GSQ_ERR_FORMAT, "shorter");
    expect_fail("7 bytes", (const unsigned char *)"\x02\0\0\0\0\0\0", 7, GSQ_ERR_FORMAT, "shorter");
    b = image_raw(0, "", 0, 0, &len);
    expect_fail("header length 0", b, len, GSQ_ERR_FORMAT, "too small");
    free(b);
    b = image_raw(1, "{", 1, 0, &len);
    expect_fail("header length 1", b, len, GSQ_ERR_FORMAT, "too small");
    free(b);
    b = image_raw((uint64_t)1 << 40, "{}", 2, 0, &len);
    expect_fail("a terabyte header", b, len, GSQ_ERR_FORMAT, "1099511627776");
    free(b);
    b = image_raw(GSQ_ST_MAX_HEADER + 1, "{}", 2, 0, &len);
    expect_fail("header over 100 MB", b, len, GSQ_ERR_FORMAT, "limit");
    free(b);
    b = image_raw(UINT64_MAX, "{}", 2, 0, &len);
    expect_fail("header length 2^64-1", b, len, GSQ_ERR_FORMAT, "header length");
    free(b);
    b = image_raw(40, "{}", 2, 0, &len);
    expect_fail("header longer than the file", b, len, GSQ_ERR_FORMAT, "larger than");
    free(b);

    expect_json_fail("not JSON", "{abc", 0, GSQ_ERR_FORMAT, "not valid JSON");
    expect_json_fail("trailing garbage", "{} x", 0, GSQ_ERR_FORMAT, "not valid JSON");
    expect_json_fail("array root", "[1,2]", 0, GSQ_ERR_FORMAT, "object");
    expect_json_fail("string root", "\"ab\"", 0, GSQ_ERR_FORMAT, "object");
    b = image_raw(4, "{}\0 ", 4, 0, &len);
    expect_fail("NUL byte in header", b, len, GSQ_ERR_FORMAT, "control byte");
    free(b);
    expect_json_fail("control char in string", "{\"a\x01\":{}}", 0, GSQ_ERR_FORMAT, "control byte");
    expect_json_fail("invalid UTF-8", "{\"a\xff\":{}}", 0, GSQ_ERR_FORMAT, "UTF-8");
    expect_json_fail("\\u0000 in a name",
                     "{\"w\\u0000x\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
                     GSQ_ERR_FORMAT, "\\u0000");
    expect_json_fail("lone surrogate", "{\"\\ud800\":{}}", 0, GSQ_ERR_FORMAT, "JSON");

    expect_w_fail("entry not object", "{\"w\":5}", 0, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
                  4, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("dtype not string", ENTRY("4", "[1]", "[0,4]"), 4, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("unknown dtype", ENTRY("\"F99\"", "[1]", "[0,4]"), 4, GSQ_ERR_UNSUPPORTED, "F99");
    expect_w_fail("missing shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}",
                  4, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("shape not array", ENTRY("\"F32\"", "4", "[0,4]"), 4, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("negative dim", ENTRY("\"F32\"", "[-1]", "[0,4]"), 4, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("minus zero dim", ENTRY("\"F32\"", "[-0]", "[0,0]"), 0, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("fractional dim", ENTRY("\"F32\"", "[1.5]", "[0,4]"), 4, GSQ_ERR_FORMAT, "1.5");
    expect_w_fail("huge dim", ENTRY("\"F32\"", "[1e300]", "[0,4]"), 4, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("string dim", ENTRY("\"F32\"", "[\"2\"]", "[0,8]"), 8, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("9 dims", ENTRY("\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0,4]"),
                  4, GSQ_ERR_FORMAT, "9 dims");
    expect_w_fail("numel overflow", ENTRY("\"F32\"", "[4294967296,4294967296,4]", "[0,4]"),
                  4, GSQ_ERR_FORMAT, "overflow");
    expect_w_fail("bytes overflow", ENTRY("\"F64\"", "[4294967296,1073741824]", "[0,4]"),
                  4, GSQ_ERR_FORMAT, "overflow");
    expect_w_fail("missing offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}",
                  4, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("offsets not array", ENTRY("\"F32\"", "[1]", "4"), 4, GSQ_ERR_FORMAT, "data_offsets");
    expect_w_fail("three offsets", ENTRY("\"F32\"", "[1]", "[0,4,8]"), 8, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("one offset", ENTRY("\"F32\"", "[1]", "[4]"), 8, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("negative offset", ENTRY("\"F32\"", "[1]", "[-4,0]"), 8, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("fractional offset", ENTRY("\"F32\"", "[1]", "[0,4.5]"), 8, GSQ_ERR_FORMAT, NULL);
    expect_w_fail("begin after end", ENTRY("\"F32\"", "[0]", "[8,4]"), 8, GSQ_ERR_FORMAT, "after end");
    expect_w_fail("end beyond data", ENTRY("\"F32\"", "[2]", "[0,8]"), 4, GSQ_ERR_FORMAT, "beyond");
    expect_w_fail("huge end", ENTRY("\"U8\"", "[9007199254740992]", "[0,9007199254740992]"),
                  4, GSQ_ERR_FORMAT, "beyond");
    expect_w_fail("byte count mismatch", ENTRY("\"F32\"", "[2]", "[0,4]"),
                  8, GSQ_ERR_FORMAT, "expected 8");
    expect_json_fail("overlap",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, GSQ_ERR_FORMAT,
                     "tensor 'b' (bytes 4..12) overlaps tensor 'a' (bytes 0..8)");
    expect_json_fail("overlap inside a big tensor",
                     "{\"c\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[10,11]},"
                     "\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[16,18]}}", 18, GSQ_ERR_FORMAT,
                     "'c'");
    expect_json_fail("same range twice",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, GSQ_ERR_FORMAT,
                     "overlaps tensor 'a'");
    expect_json_fail("duplicate names",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, GSQ_ERR_FORMAT,
                     "duplicate tensor name 'a'");
    expect_w_fail("duplicate field",
                  "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  GSQ_ERR_FORMAT, NULL);
    expect_json_fail("metadata not object", "{\"__metadata__\":[\"a\"]}", 0, GSQ_ERR_FORMAT, "__metadata__");
    expect_json_fail("metadata value not string", "{\"__metadata__\":{\"epoch\":3}}", 0, GSQ_ERR_FORMAT,
                     "epoch");
    expect_json_fail("metadata nested", "{\"__metadata__\":{\"x\":{}}}", 0, GSQ_ERR_FORMAT, "'x'");
    expect_json_fail("metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, GSQ_ERR_FORMAT,
                     "twice");
    expect_json_fail("metadata key twice", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
                     GSQ_ERR_FORMAT, "'k'");

    /* valid edge cases */
    expect_json_ok("empty object", "{}", 0, 0);
    expect_json_ok("padded header", "{}      ", 0, 0);
    expect_json_ok("zero-size tensors at the very end",
                   "{\"z\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
                   "\"y\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[2,2]},"
                   "\"x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, 3);
    expect_json_ok("zero dim beside a huge one",
                   "{\"z\":{\"dtype\":\"F64\",\"shape\":[9007199254740992,9007199254740992,0],"
                   "\"data_offsets\":[0,0]}}", 0, 1);
    expect_json_ok("gaps and trailing bytes, unknown field ignored",
                   "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8],\"extra\":[1.5]},"
                   "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 12, 2);
    expect_json_ok("integral number forms", ENTRY("\"F32\"", "[2.0]", "[0,8e0]"),
                   8, 1);
    expect_json_ok("empty name", "{\"\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[0,1]}}", 1, 1);
}

static void test_open_paths(void)
{
    char path[256];
    gsq_st_file *f = (gsq_st_file *)1;
    gsq_error err = {0};
    path_in(path, sizeof path, "zero.safetensors");
    write_bytes(path, "", 0);
    CHECK(gsq_st_open(&f, path, &err) == GSQ_ERR_FORMAT && f == NULL, "empty file: %s", err.msg);
    CHECK(strstr(err.msg, "zero.safetensors") != NULL, "empty file message names it: %s", err.msg);
    CHECK(gsq_st_open(&f, tmp_root, &err) == GSQ_ERR_IO, "directory: %s", err.msg);
    CHECK(strstr(err.msg, tmp_root) && strstr(err.msg, "directory"), "directory message: %s", err.msg);
    path_in(path, sizeof path, "fifo.safetensors");
    if (mkfifo(path, 0600) == 0) {
        CHECK(gsq_st_open(&f, path, &err) == GSQ_ERR_IO && strstr(err.msg, "regular"),
              "a FIFO is refused without blocking: %s", err.msg);
        unlink(path);
    }
    path_in(path, sizeof path, "absent.safetensors");
    CHECK(gsq_st_open(&f, path, &err) == GSQ_ERR_IO && strstr(err.msg, "absent.safetensors"),
          "missing file: %s", err.msg);
    CHECK(gsq_st_open(&f, NULL, &err) == GSQ_ERR_ARG, "NULL path");
    CHECK(gsq_st_open_buffer(&f, NULL, 10, "x", &err) == GSQ_ERR_ARG, "NULL buffer");
}

/* Every proper prefix of a valid file must fail cleanly, from memory and (sampled) from disk. */
static void test_truncations(void)
{
    char path[256], cut[256];
    path_in(path, sizeof path, "rt.safetensors");
    path_in(cut, sizeof cut, "cut.safetensors");
    size_t len;
    unsigned char *bytes = read_all(path, &len);
    CHECK(bytes != NULL, "read the round-trip file");
    if (!bytes) return;
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        unsigned char *copy = malloc(n ? n : 1); /* exact size, so ASan sees any over-read */
        memcpy(copy, bytes, n);
        gsq_st_file *f = NULL;
        gsq_error err = {0};
        gsq_status st = gsq_st_open_buffer(&f, copy, n, "cut", &err);
        if (st == GSQ_OK || f != NULL || strstr(err.msg, "cut") == NULL) bad++;
        gsq_st_close(f);
        if (n % 13 == 0) {
            write_bytes(cut, bytes, n);
            if (gsq_st_open(&f, cut, &err) == GSQ_OK) bad++;
            gsq_st_close(f);
        }
        free(copy);
    }
    CHECK(bad == 0, "%d truncations were accepted or badly reported", bad);
    unlink(cut);
    free(bytes);
}

/* After an insertion or deletion at pos inside the header, moves the length field with it, so
 * the mutant still parses as far as the JSON goes. */
static void adjust_header_len(unsigned char *buf, size_t n, size_t pos, int delta)
{
    if (n < 8 || pos < 8) return;
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | buf[i];
    if (pos >= 8 + h) return;
    h += (uint64_t)(int64_t)delta;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(h >> (8 * i));
}

/* Random damage to a valid file: open must never crash, and whatever opens must be readable. */
static void test_mutations(void)
{
    char path[256];
    path_in(path, sizeof path, "rt.safetensors");
    size_t len;
    unsigned char *orig = read_all(path, &len);
    CHECK(orig != NULL, "read the round-trip file");
    if (!orig) return;
    gsq_rng rng;
    gsq_rng_seed(&rng, 1234, 7);
    const int iters = 20000;
    int opened = 0, bad = 0;
    size_t cap = len + 64;
    unsigned char *buf = malloc(cap);
    double t0 = now_s();
    for (int it = 0; it < iters; it++) {
        size_t n = len;
        memcpy(buf, orig, len);
        int edits = 1 + (int)(gsq_rng_u32(&rng) % 4);
        for (int e = 0; e < edits; e++) {
            uint32_t kind = gsq_rng_u32(&rng) % 7, r = gsq_rng_u32(&rng);
            size_t pos = n ? r % n : 0;
            if (kind == 0 && n) {
                buf[pos] ^= (unsigned char)(1u << (gsq_rng_u32(&rng) % 8)); /* bit flip */
            } else if (kind == 1 && n) {
                buf[pos] = (unsigned char)gsq_rng_u32(&rng); /* random byte */
            } else if (kind == 2 && n < cap) {
                memmove(buf + pos + 1, buf + pos, n - pos); /* insertion */
                buf[pos] = "{}[],:\"0 -.e\\"[gsq_rng_u32(&rng) % 13];
                n++;
                if (r & 1) adjust_header_len(buf, n, pos, +1);
            } else if (kind == 3 && n) {
                memmove(buf + pos, buf + pos + 1, n - pos - 1); /* deletion */
                n--;
                if (r & 1) adjust_header_len(buf, n, pos, -1);
            } else if (kind == 4 && n >= 8) {
                uint64_t h = 0; /* length-field edit */
                for (int i = 7; i >= 0; i--) h = (h << 8) | buf[i];
                uint32_t how = gsq_rng_u32(&rng) % 3;
                h = how == 0 ? h + (gsq_rng_u32(&rng) % 17) - 8
                             : how == 1 ? (uint64_t)gsq_rng_u32(&rng) << (gsq_rng_u32(&rng) % 33)
                                        : UINT64_MAX - gsq_rng_u32(&rng) % 4;
                for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(h >> (8 * i));
            } else if (kind == 5 && n > 0) {
                n = r % n; /* truncation */
            } else if (kind == 6) {
                while (pos < n && (buf[pos] < '0' || buf[pos] > '9')) pos++; /* a digit: JSON stays valid */
                if (pos < n) buf[pos] = (unsigned char)('0' + gsq_rng_u32(&rng) % 10);
            }
        }
        unsigned char *img = malloc(n ? n : 1);
        memcpy(img, buf, n);
        gsq_st_file *f = NULL;
        gsq_error err = {0};
        gsq_status st = gsq_st_open_buffer(&f, img, n, "mutant", &err);
        if (st == GSQ_OK) {
            opened++;
            for (size_t i = 0; i < gsq_st_count(f); i++) {
                const gsq_st_tensor *t = gsq_st_at(f, i);
                if (gsq_st_find(f, t->name) != t) bad++;
                if (t->dtype != GSQ_DT_F32 && t->dtype != GSQ_DT_F16 && t->dtype != GSQ_DT_BF16) continue;
                float *dst = malloc(t->numel ? t->numel * sizeof(float) : 1);
                if (gsq_st_read_f32(f, t, dst, t->numel, &err) != GSQ_OK) bad++;
                free(dst);
            }
            for (size_t i = 0; i < gsq_st_meta_count(f); i++) {
                const char *k, *v;
                gsq_st_meta_at(f, i, &k, &v);
                if (gsq_st_meta_get(f, k) != v) bad++;
            }
            gsq_st_close(f);
        } else if (f != NULL || err.code != st || strstr(err.msg, "mutant") == NULL) {
            bad++;
        }
        free(img);
    }
    double dt = now_s() - t0;
    CHECK(bad == 0, "%d mutants misbehaved", bad);
    CHECK(opened > 0 && opened < iters, "mutants opened: %d of %d", opened, iters);
    CHECK(dt < 5.0, "mutation smoke test took %.2f s", dt);
    printf("mutations: %d mutants, %d opened, %.3f s\n", iters, opened, dt);
    free(buf);
    free(orig);
}

static gsq_status write_one(const char *path, const char *name, size_t n, float fill, gsq_error *err)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = fill + (float)i;
    gsq_st_writer *w = NULL;
    gsq_st_writer_create(&w, err);
    int64_t shape[1] = {(int64_t)n};
    gsq_status st = gsq_st_writer_add(w, name, GSQ_DT_F32, 1, shape, x, err);
    if (st == GSQ_OK) st = gsq_st_writer_write(w, path, err);
    gsq_st_writer_free(w);
    free(x);
    return st;
}

static void test_atomic_write(void)
{
    char path[320], dir[256];
    gsq_error err = {0};
    int before = count_entries(tmp_root, NULL);

    /* a missing directory: GSQ_ERR_IO and nothing created */
    path_in(dir, sizeof dir, "nodir");
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    CHECK(write_one(path, "w", 4, 0.0f, &err) == GSQ_ERR_IO, "missing dir: %s", err.msg);
    CHECK(strstr(err.msg, "out.safetensors") != NULL, "missing dir message names the file: %s", err.msg);
    struct stat sb;
    CHECK(stat(dir, &sb) != 0 && count_entries(tmp_root, NULL) == before, "nothing left behind");

    /* overwrite replaces the whole file, big by small */
    path_in(path, sizeof path, "over.safetensors");
    CHECK(write_one(path, "big", 1000, 1.0f, &err) == GSQ_OK, "first write: %s", err.msg);
    CHECK(write_one(path, "small", 3, 7.0f, &err) == GSQ_OK, "overwrite: %s", err.msg);
    gsq_st_file *f = NULL;
    CHECK(gsq_st_open(&f, path, &err) == GSQ_OK, "reopen: %s", err.msg);
    if (f) {
        const gsq_st_tensor *t = gsq_st_find(f, "small");
        float v[3] = {0};
        CHECK(gsq_st_count(f) == 1 && t && gsq_st_read_f32(f, t, v, 3, &err) == GSQ_OK && v[0] == 7.0f &&
              v[2] == 9.0f, "overwritten contents");
        gsq_st_close(f);
    }
    CHECK(stat(path, &sb) == 0 && sb.st_size == 8 + 64 + 12, "overwritten size %lld", (long long)sb.st_size);
    CHECK(count_entries(tmp_root, ".tmp.") == 0, "no temporaries after overwrite");

    /* an existing file's mode is kept */
    chmod(path, 0600);
    CHECK(write_one(path, "small", 3, 7.0f, &err) == GSQ_OK, "rewrite: %s", err.msg);
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "mode kept: %o", (unsigned)sb.st_mode);

    /* target is a directory: rename fails (for root too), the directory stays, no temporary */
    path_in(dir, sizeof dir, "isdir.safetensors");
    mkdir(dir, 0755);
    CHECK(write_one(dir, "w", 4, 0.0f, &err) == GSQ_ERR_IO, "directory target: %s", err.msg);
    CHECK(strstr(err.msg, "isdir.safetensors") != NULL, "directory target message: %s", err.msg);
    CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode), "directory untouched");
    CHECK(count_entries(tmp_root, ".tmp.") == 0, "no temporary after a failed rename");

    /* a write that runs out of file-size limit (binds root too): previous file intact */
    path_in(path, sizeof path, "keep.safetensors");
    CHECK(write_one(path, "old", 16, 3.0f, &err) == GSQ_OK, "write the file to keep: %s", err.msg);
    size_t old_len, new_len;
    unsigned char *old = read_all(path, &old_len);
    struct rlimit saved;
    getrlimit(RLIMIT_FSIZE, &saved);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = saved;
    lim.rlim_cur = 4096;
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        gsq_status st = write_one(path, "new", 1 << 16, 5.0f, &err);
        setrlimit(RLIMIT_FSIZE, &saved);
        CHECK(st == GSQ_ERR_IO && strstr(err.msg, "keep.safetensors"), "oversized write: %s", err.msg);
        unsigned char *now = read_all(path, &new_len);
        CHECK(now && old && new_len == old_len && memcmp(now, old, old_len) == 0, "previous file intact");
        free(now);
        CHECK(count_entries(tmp_root, ".tmp.") == 0, "no temporary after a failed write");
    } else {
        CHECK(0, "setrlimit(RLIMIT_FSIZE) failed: %s", strerror(errno));
    }
    signal(SIGXFSZ, prev);
    free(old);
    CHECK(gsq_st_writer_write(NULL, path, &err) == GSQ_ERR_ARG, "NULL writer");
}

int main(void)
{
    double t0 = now_s();
    snprintf(tmp_root, sizeof tmp_root, "/tmp/gsq_st_XXXXXX");
    if (!mkdtemp(tmp_root)) {
        fprintf(stderr, "mkdtemp failed: %s\n", strerror(errno));
        return 1;
    }
    test_dtypes();
    test_half();
    test_roundtrip();
    test_writer_rejects();
    test_hostile_headers();
    test_open_paths();
    test_truncations();
    test_mutations();
    test_atomic_write();
    remove_tree(tmp_root);
    printf("test_safetensors: %.2f s\n", now_s() - t0);
    return test_finish("test_safetensors");
}
