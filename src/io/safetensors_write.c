/* safetensors writer: collects tensors (borrowed) and metadata (copied), then writes the file
 * atomically (gsq_write_file_atomic), so a crash or an error never leaves a half-written file
 * under PATH. */
#include "gpusq/safetensors.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/atomic_file.h"

#define LBL "%.200s"
#define TNS "'%.120s'"
/* Offsets above 2^53 would not survive a JSON reader that parses numbers as doubles. */
#define MAX_OFFSET ((size_t)1 << 53)

typedef struct {
    char *name;
    gsq_dtype dtype;
    int ndim;
    int64_t shape[GSQ_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} entry;

struct gsq_st_writer {
    entry *items;
    size_t count, cap;
    char **meta_keys;
    char **meta_vals;
    size_t meta_count, meta_cap;
};

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} strbuf;

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* Grows an array of `size`-byte items so it holds at least need items. */
static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 1;
    size_t ncap = *cap ? *cap : 8, bytes;
    while (ncap < need)
        if (!gsq_size_mul(ncap, 2, &ncap)) return 0;
    if (!gsq_size_mul(ncap, size, &bytes)) return 0;
    void *p = realloc(*arr, bytes);
    if (!p) return 0;
    *arr = p;
    *cap = ncap;
    return 1;
}

static void sb_put(strbuf *b, const char *s, size_t n)
{
    size_t need;
    if (b->failed) return;
    if (!gsq_size_add(b->len, n + 1, &need) || !grow((void **)&b->p, &b->cap, need, 1)) {
        b->failed = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* A JSON string literal; s is valid UTF-8 (checked on add), so only quotes, backslashes and
 * control characters need escaping. */
static void sb_json_str(strbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

gsq_status gsq_st_writer_create(gsq_st_writer **out, gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_writer_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_st_writer_create: out of memory");
    return GSQ_OK;
}

void gsq_st_writer_free(gsq_st_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->count; i++) free(w->items[i].name);
    free(w->items);
    for (size_t i = 0; i < w->meta_count; i++) {
        free(w->meta_keys[i]);
        free(w->meta_vals[i]);
    }
    free(w->meta_keys);
    free(w->meta_vals);
    free(w);
}

gsq_status gsq_st_writer_add(gsq_st_writer *w, const char *name, gsq_dtype dtype, int ndim,
                             const int64_t *shape, const void *data, gsq_error *err)
{
    if (!w) return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_writer_add: writer is NULL");
    if (!name || !name[0]) return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_writer_add: empty tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return gsq_fail(err, GSQ_ERR_ARG,
                        "gsq_st_writer_add: \"__metadata__\" is reserved, not a tensor name");
    if (!gsq_utf8_valid(name, strlen(name)))
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_writer_add: tensor name " TNS " is not valid UTF-8", name);
    if ((unsigned)dtype >= GSQ_DT_COUNT)
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_writer_add: tensor " TNS ": invalid dtype %d", name,
                        (int)dtype);
    for (size_t i = 0; i < w->count; i++)
        if (strcmp(w->items[i].name, name) == 0)
            return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_writer_add: duplicate tensor name " TNS, name);
    if (ndim < 0 || ndim > GSQ_ST_MAX_DIMS)
        return gsq_fail(err, GSQ_ERR_SHAPE, "gsq_st_writer_add: tensor " TNS ": %d dims, expected 0..%d",
                        name, ndim, GSQ_ST_MAX_DIMS);
    if (ndim > 0 && !shape)
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_writer_add: tensor " TNS ": shape is NULL", name);
    size_t numel = 1, nbytes;
    int overflow = 0, zero = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return gsq_fail(err, GSQ_ERR_SHAPE,
                            "gsq_st_writer_add: tensor " TNS ": shape[%d] is %" PRId64 ", expected >= 0",
                            name, d, shape[d]);
        if (shape[d] == 0) zero = 1;
        if ((uint64_t)shape[d] > SIZE_MAX || !gsq_size_mul(numel, (size_t)shape[d], &numel)) overflow = 1;
    }
    if (zero) numel = 0, overflow = 0;
    if (overflow || !gsq_size_mul(numel, gsq_dtype_size(dtype), &nbytes) || nbytes > MAX_OFFSET)
        return gsq_fail(err, GSQ_ERR_SHAPE, "gsq_st_writer_add: tensor " TNS ": shape is too large",
                        name);
    if (nbytes && !data)
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_writer_add: tensor " TNS ": data is NULL", name);
    if (!grow((void **)&w->items, &w->cap, w->count + 1, sizeof *w->items))
        return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_st_writer_add: tensor " TNS ": out of memory", name);
    entry *e = &w->items[w->count];
    memset(e, 0, sizeof *e);
    e->name = dup_str(name);
    if (!e->name)
        return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_st_writer_add: tensor " TNS ": out of memory", name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->data = data;
    e->nbytes = nbytes;
    w->count++;
    return GSQ_OK;
}

gsq_status gsq_st_writer_set_meta(gsq_st_writer *w, const char *key, const char *value,
                                  gsq_error *err)
{
    if (!w || !key || !value)
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_writer_set_meta: writer, key or value is NULL");
    if (!gsq_utf8_valid(key, strlen(key)) || !gsq_utf8_valid(value, strlen(value)))
        return gsq_fail(err, GSQ_ERR_ARG,
                        "gsq_st_writer_set_meta: key '%.120s' or its value is not valid UTF-8",
                        key);
    char *v = dup_str(value);
    if (!v) return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_st_writer_set_meta: out of memory");
    for (size_t i = 0; i < w->meta_count; i++) {
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_vals[i]);
            w->meta_vals[i] = v;
            return GSQ_OK;
        }
    }
    size_t kcap = w->meta_cap, vcap = w->meta_cap;
    char *k = dup_str(key);
    if (!k || !grow((void **)&w->meta_keys, &kcap, w->meta_count + 1, sizeof *w->meta_keys) ||
        !grow((void **)&w->meta_vals, &vcap, w->meta_count + 1, sizeof *w->meta_vals)) {
        free(k);
        free(v);
        return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_st_writer_set_meta: out of memory");
    }
    w->meta_cap = kcap < vcap ? kcap : vcap;
    w->meta_keys[w->meta_count] = k;
    w->meta_vals[w->meta_count] = v;
    w->meta_count++;
    return GSQ_OK;
}

/* The JSON header, space-padded so that 8 + its length is a multiple of 8. */
static gsq_status build_header(const gsq_st_writer *w, const char *path, strbuf *b, gsq_error *err)
{
    char num[64];
    size_t offset = 0;
    sb_puts(b, "{");
    if (w->meta_count) {
        sb_puts(b, "\"__metadata__\":{");
        for (size_t i = 0; i < w->meta_count; i++) {
            if (i) sb_puts(b, ",");
            sb_json_str(b, w->meta_keys[i]);
            sb_puts(b, ":");
            sb_json_str(b, w->meta_vals[i]);
        }
        sb_puts(b, "}");
    }
    for (size_t i = 0; i < w->count; i++) {
        const entry *e = &w->items[i];
        if (i || w->meta_count) sb_puts(b, ",");
        sb_json_str(b, e->name);
        sb_puts(b, ":{\"dtype\":\"");
        sb_puts(b, gsq_dtype_name(e->dtype));
        sb_puts(b, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, "%s%" PRId64, d ? "," : "", e->shape[d]);
            sb_puts(b, num);
        }
        size_t end;
        if (!gsq_size_add(offset, e->nbytes, &end) || end > MAX_OFFSET)
            return gsq_fail(err, GSQ_ERR_ARG, LBL ": tensor " TNS ": total data exceeds 2^53 bytes",
                            path, e->name);
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", offset, end);
        sb_puts(b, num);
        offset = end;
    }
    sb_puts(b, "}");
    while (!b->failed && (b->len % 8) != 0) sb_puts(b, " ");
    if (b->failed) return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory building the header", path);
    if (b->len > GSQ_ST_MAX_HEADER)
        return gsq_fail(err, GSQ_ERR_ARG,
                        LBL ": header would be %zu bytes, over the format's %llu-byte limit",
                        path, b->len, (unsigned long long)GSQ_ST_MAX_HEADER);
    return GSQ_OK;
}

gsq_status gsq_st_writer_write(gsq_st_writer *w, const char *path, gsq_error *err)
{
    if (!w || !path || !path[0])
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_writer_write: writer or path is NULL or empty");
    strbuf hdr = {0};
    gsq_status st = build_header(w, path, &hdr, err);
    size_t n = w->count + 2;
    const void **data = st == GSQ_OK ? malloc(n * sizeof *data) : NULL;
    size_t *sizes = data ? malloc(n * sizeof *sizes) : NULL;
    if (st == GSQ_OK && !sizes) st = gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory", path);
    if (st == GSQ_OK) {
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr.len >> (8 * i));
        data[0] = len8;
        sizes[0] = sizeof len8;
        data[1] = hdr.p;
        sizes[1] = hdr.len;
        for (size_t i = 0; i < w->count; i++) {
            data[i + 2] = w->items[i].data;
            sizes[i + 2] = w->items[i].nbytes;
        }
        st = gsq_write_file_atomic(path, data, sizes, n, err);
    }
    free(data);
    free(sizes);
    free(hdr.p);
    return st;
}
