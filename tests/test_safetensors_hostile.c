/* Tests that the safetensors reader refuses hostile input cleanly: one hand-built header per
 * validation rule (and the valid edge cases beside them), bad files (empty, a directory, a FIFO,
 * missing), every truncation of a valid file, and a seeded mutation smoke test. The valid file is
 * the round-trip file of safetensors_test_util.h. Temporaries live under a mkdtemp() directory. */
#include "safetensors_test_util.h"

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

/* Writes the round-trip file that the truncation and mutation tests damage. */
static int write_rt_file(void)
{
    char path[256];
    path_in(path, sizeof path, "rt.safetensors");
    gsq_st_writer *w = NULL;
    gsq_error err = {0};
    int ok = make_rt_writer(&w, &err) && gsq_st_writer_write(w, path, &err) == GSQ_OK;
    gsq_st_writer_free(w);
    if (!ok) fprintf(stderr, "writing the round-trip file failed: %s\n", err.msg);
    return ok;
}

int main(void)
{
    double t0 = now_s();
    if (!make_tmp_root()) return 1;
    if (!write_rt_file()) {
        remove_tree(tmp_root);
        return 1;
    }
    test_hostile_headers();
    test_open_paths();
    test_truncations();
    test_mutations();
    remove_tree(tmp_root);
    printf("test_safetensors_hostile: %.2f s\n", now_s() - t0);
    return test_finish("test_safetensors_hostile");
}
