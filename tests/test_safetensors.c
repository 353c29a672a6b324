/* Tests for the safetensors writer and reader on valid files and for the F16/BF16 conversions:
 * dtype names and sizes, conversion edge cases and exhaustive round trips, a full file round trip
 * (from disk and from an unaligned buffer), the writer's argument checks, and the atomic-write
 * guarantees (missing directory, overwrite, failures that leave the previous file intact).
 * Hostile input is in test_safetensors_hostile.c. Temporaries live under a mkdtemp() directory. */
#include <signal.h>
#include <sys/resource.h>

#include "safetensors_test_util.h"

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
    hn = gsq_f32_to_f16(gsq_bits_f32(0x7f800001u)); /* payload only in the low bits */
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "low-payload NaN not inf: %04x", hn);
    CHECK(gsq_f32_to_f16(gsq_bits_f32(0xffc00000u)) == 0xfe00, "negative NaN keeps its sign");
    float sub = 5.9604644775390625e-8f; /* 2^-24 */
    CHECK(gsq_f32_to_f16(sub) == 0x0001, "min subnormal");
    CHECK(gsq_f32_to_f16(sub * 0.5f) == 0x0000, "2^-25 ties to zero");
    CHECK(gsq_f32_to_f16(gsq_bits_f32(gsq_f32_bits(sub * 0.5f) + 1)) == 0x0001, "just over 2^-25");
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
    CHECK(gsq_f32_bits(gsq_f16_to_f32(0x8000)) == 0x80000000u, "-0 widen");
    /* bf16 */
    CHECK(gsq_f32_to_bf16(1.0f) == 0x3f80 && gsq_f32_to_bf16(-0.0f) == 0x8000, "1, -0");
    CHECK(gsq_f32_to_bf16(gsq_bits_f32(0x3f808000u)) == 0x3f80, "tie to even (down)");
    CHECK(gsq_f32_to_bf16(gsq_bits_f32(0x3f818000u)) == 0x3f82, "tie to even (up)");
    CHECK(gsq_f32_to_bf16(gsq_bits_f32(0x3f808001u)) == 0x3f81, "above the tie");
    CHECK(gsq_f32_to_bf16(gsq_bits_f32(0x7f7f7fffu)) == 0x7f7f, "below the overflow tie");
    CHECK(gsq_f32_to_bf16(gsq_bits_f32(0x7f7f8000u)) == 0x7f80, "overflow tie -> inf");
    CHECK(gsq_f32_to_bf16(-INFINITY) == 0xff80, "-inf");
    uint16_t bn = gsq_f32_to_bf16(gsq_bits_f32(0x7f800001u));
    CHECK((bn & 0x7f80) == 0x7f80 && (bn & 0x7f) != 0, "low-payload NaN not inf: %04x", bn);
    CHECK(gsq_f32_to_bf16(gsq_bits_f32(0x00008000u)) == 0x0000, "subnormal tie to zero");
    CHECK(gsq_f32_to_bf16(gsq_bits_f32(0x00018000u)) == 0x0002, "subnormal tie to even");
    CHECK(gsq_f32_bits(gsq_bf16_to_f32(0x0001)) == 0x00010000u, "bf16 subnormal widen");
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
              buf[3] == 5.9604644775390625e-8f && gsq_f32_bits(buf[4]) == 0x80000000u, "f16 values");
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
    gsq_st_writer *w = NULL;
    gsq_error err = {0};
    CHECK(make_rt_writer(&w, &err), "building the writer: %s", err.msg);
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
    if (!make_tmp_root()) return 1;
    test_dtypes();
    test_half();
    test_roundtrip();
    test_writer_rejects();
    test_atomic_write();
    remove_tree(tmp_root);
    printf("test_safetensors: %.2f s\n", now_s() - t0);
    return test_finish("test_safetensors");
}
