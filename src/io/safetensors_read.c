/* safetensors reader: maps the file read-only, validates the header completely (JSON syntax,
 * dtypes, shapes, offsets, overlaps, duplicates, metadata) and keeps a self-contained handle
 * whose tensors point into the mapping. Every error names the file and, when there is one, the
 * tensor. Also dtype names and sizes, UTF-8 validation and F16/BF16 -> F32 reads. */
#include "gpusq/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "gpusq/half.h"

/* Label and tensor names are clipped in messages so the useful tail is never cut off. */
#define LBL "%.200s"
#define TNS "'%.120s'"
/* Largest JSON number accepted: every integer up to 2^53 is exact in a double. */
#define MAX_JSON_INT 9007199254740992.0

struct gsq_st_file {
    char *label;
    const unsigned char *base; /* the whole image */
    size_t size;
    void *map;                 /* our mmap, or NULL for a borrowed buffer */
    size_t map_size;
    gsq_st_tensor *tensors;    /* header order */
    size_t count;
    size_t data_start;         /* offset of the data section in the image */
    size_t *by_name;           /* indices into tensors, sorted by name */
    char **meta_keys;
    char **meta_vals;
    size_t meta_count;
};

static const struct {
    const char *name;
    size_t size;
} dtype_info[GSQ_DT_COUNT] = {
    [GSQ_DT_F32] = {"F32", 4},       [GSQ_DT_F16] = {"F16", 2},     [GSQ_DT_BF16] = {"BF16", 2},
    [GSQ_DT_F64] = {"F64", 8},       [GSQ_DT_I8] = {"I8", 1},       [GSQ_DT_U8] = {"U8", 1},
    [GSQ_DT_I16] = {"I16", 2},       [GSQ_DT_U16] = {"U16", 2},     [GSQ_DT_I32] = {"I32", 4},
    [GSQ_DT_U32] = {"U32", 4},       [GSQ_DT_I64] = {"I64", 8},     [GSQ_DT_U64] = {"U64", 8},
    [GSQ_DT_BOOL] = {"BOOL", 1},     [GSQ_DT_F8_E4M3] = {"F8_E4M3", 1},
    [GSQ_DT_F8_E5M2] = {"F8_E5M2", 1},
};

const char *gsq_dtype_name(gsq_dtype dt)
{
    return ((unsigned)dt < GSQ_DT_COUNT) ? dtype_info[dt].name : "?";
}

size_t gsq_dtype_size(gsq_dtype dt)
{
    return ((unsigned)dt < GSQ_DT_COUNT) ? dtype_info[dt].size : 0;
}

int gsq_dtype_from_name(const char *name, gsq_dtype *out)
{
    if (!name) return 0;
    for (int i = 0; i < GSQ_DT_COUNT; i++) {
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (gsq_dtype)i;
            return 1;
        }
    }
    return 0;
}

int gsq_utf8_valid(const void *s, size_t n)
{
    const unsigned char *p = s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;      /* overlong */
            if (c == 0xed) hi = 0x9f;      /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;      /* overlong */
            if (c == 0xf4) hi = 0x8f;      /* > U+10FFFF */
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        if (p[i + 1] < lo || p[i + 1] > hi) return 0;
        for (size_t k = 2; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static uint64_t load_u64_le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A short description of a JSON value for "got ..." in messages. */
static const char *json_kind(const cJSON *v, char *buf, size_t cap)
{
    if (!v) return "nothing";
    if (cJSON_IsNumber(v)) {
        snprintf(buf, cap, "number %.17g", v->valuedouble);
        return buf;
    }
    if (cJSON_IsString(v)) {
        snprintf(buf, cap, "string \"%.40s\"", v->valuestring);
        return buf;
    }
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "an invalid value";
}

/* A JSON number holding an exact integer in [0, 2^53]; -0, fractions, huge values rejected. */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= MAX_JSON_INT)) return 0; /* also rejects NaN */
    if (d == 0.0 && 1.0 / d < 0.0) return 0;       /* -0 */
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return 0;
    *out = u;
    return 1;
}

/* Raw bytes before parsing: valid UTF-8, no control bytes other than JSON whitespace, and no
 * \u0000 escape (it would silently cut a name short once copied out as a C string). */
static gsq_status check_header_bytes(const char *label, const unsigned char *h, size_t n,
                                     gsq_error *err)
{
    if (!gsq_utf8_valid(h, n))
        return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": header is not valid UTF-8", label);
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = h[i];
        if (c < 0x20 && !(!in_str && (c == ' ' || c == '\t' || c == '\n' || c == '\r')))
            return gsq_fail(err, GSQ_ERR_FORMAT,
                            LBL ": header is not valid JSON (control byte 0x%02x at offset %zu)",
                            label, c, i);
        if (!in_str) {
            if (c == '"') in_str = 1;
            continue;
        }
        if (c == '"') {
            in_str = 0;
        } else if (c == '\\' && i + 1 < n) {
            if (h[i + 1] == 'u' && n - i >= 6 && memcmp(h + i + 2, "0000", 4) == 0)
                return gsq_fail(err, GSQ_ERR_FORMAT,
                                LBL ": header contains a \\u0000 escape at offset %zu", label, i);
            i++; /* skip the escaped character */
        }
    }
    return GSQ_OK;
}

static gsq_status parse_metadata(gsq_st_file *f, const cJSON *meta, gsq_error *err)
{
    char buf[96];
    if (!cJSON_IsObject(meta))
        return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": __metadata__ must be an object, got %s",
                        f->label, json_kind(meta, buf, sizeof buf));
    size_t n = (size_t)cJSON_GetArraySize(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_vals = calloc(n ? n : 1, sizeof *f->meta_vals);
    if (!f->meta_keys || !f->meta_vals)
        return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory for metadata", f->label);
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return gsq_fail(err, GSQ_ERR_FORMAT,
                            LBL ": __metadata__ value of key '%.120s' must be a string, got %s",
                            f->label, kv->string, json_kind(kv, buf, sizeof buf));
        for (size_t i = 0; i < f->meta_count; i++)
            if (strcmp(f->meta_keys[i], kv->string) == 0)
                return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": duplicate __metadata__ key '%.120s'",
                                f->label, kv->string);
        size_t i = f->meta_count;
        f->meta_keys[i] = dup_str(kv->string);
        f->meta_vals[i] = dup_str(kv->valuestring);
        if (!f->meta_keys[i] || !f->meta_vals[i]) {
            free(f->meta_keys[i]);
            free(f->meta_vals[i]);
            f->meta_keys[i] = f->meta_vals[i] = NULL;
            return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory for metadata", f->label);
        }
        f->meta_count++;
    }
    return GSQ_OK;
}

/* Validates one tensor entry and fills t (t->name already set). */
static gsq_status parse_entry(gsq_st_file *f, gsq_st_tensor *t, const cJSON *e, size_t data_len,
                              size_t data_start, gsq_error *err)
{
    const char *lb = f->label, *nm = t->name;
    char buf[96];
    if (!cJSON_IsObject(e))
        return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": tensor " TNS ": entry must be an object, got %s",
                        lb, nm, json_kind(e, buf, sizeof buf));
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = NULL;
        if (strcmp(c->string, "dtype") == 0) slot = &dtype;
        else if (strcmp(c->string, "shape") == 0) slot = &shape;
        else if (strcmp(c->string, "data_offsets") == 0) slot = &offs;
        if (!slot) continue; /* unknown fields are ignored, as the reference reader does */
        if (*slot)
            return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": tensor " TNS ": duplicate field \"%s\"",
                            lb, nm, c->string);
        *slot = c;
    }

    if (!dtype)
        return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": tensor " TNS ": missing \"dtype\"", lb, nm);
    if (!cJSON_IsString(dtype))
        return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": tensor " TNS ": dtype must be a string, got %s",
                        lb, nm, json_kind(dtype, buf, sizeof buf));
    if (!gsq_dtype_from_name(dtype->valuestring, &t->dtype))
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED,
                        LBL ": tensor " TNS ": unknown dtype \"%.40s\" (expected one of F32, F16, "
                        "BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64, BOOL, F8_E4M3, F8_E5M2)",
                        lb, nm, dtype->valuestring);

    if (!shape)
        return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": tensor " TNS ": missing \"shape\"", lb, nm);
    if (!cJSON_IsArray(shape))
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        LBL ": tensor " TNS ": shape must be an array of non-negative integers, got %s",
                        lb, nm, json_kind(shape, buf, sizeof buf));
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > GSQ_ST_MAX_DIMS)
        return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": tensor " TNS ": shape has %d dims, at most %d allowed",
                        lb, nm, ndim, GSQ_ST_MAX_DIMS);
    t->ndim = ndim;
    size_t numel = 1;
    int overflow = 0, d = 0;
    for (const cJSON *c = shape->child; c; c = c->next, d++) {
        uint64_t v;
        if (!json_uint(c, &v))
            return gsq_fail(err, GSQ_ERR_FORMAT,
                            LBL ": tensor " TNS ": shape[%d] must be a non-negative integer, got %s",
                            lb, nm, d, json_kind(c, buf, sizeof buf));
        t->shape[d] = (int64_t)v;
        if (!overflow && (v > SIZE_MAX || !gsq_size_mul(numel, (size_t)v, &numel))) overflow = 1;
    }
    size_t nbytes = 0;
    /* a zero anywhere makes an empty tensor, whatever the other dims say */
    for (int k = 0; k < ndim; k++)
        if (t->shape[k] == 0) overflow = 0, numel = 0;
    if (overflow || !gsq_size_mul(numel, gsq_dtype_size(t->dtype), &nbytes))
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        LBL ": tensor " TNS ": shape has too many elements (element count x %zu "
                        "bytes of %s overflows)",
                        lb, nm, gsq_dtype_size(t->dtype), gsq_dtype_name(t->dtype));
    t->numel = numel;
    t->nbytes = nbytes;

    if (!offs)
        return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": tensor " TNS ": missing \"data_offsets\"", lb, nm);
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &begin) ||
        !json_uint(offs->child->next, &end))
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        LBL ": tensor " TNS ": data_offsets must be two non-negative integers [begin, end]",
                        lb, nm);
    if (begin > end)
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        LBL ": tensor " TNS ": data_offsets begin %llu is after end %llu", lb, nm,
                        (unsigned long long)begin, (unsigned long long)end);
    if (end > data_len)
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        LBL ": tensor " TNS ": data_offsets end %llu is beyond the data section "
                        "(%zu bytes)", lb, nm, (unsigned long long)end, data_len);
    if (end - begin != nbytes)
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        LBL ": tensor " TNS ": data_offsets span %llu bytes, expected %zu "
                        "(%zu elements of %s)", lb, nm, (unsigned long long)(end - begin), nbytes,
                        numel, gsq_dtype_name(t->dtype));
    t->data = f->base + data_start + begin;
    return GSQ_OK;
}

/* Merge sort of indices into base; qsort's comparator takes no context, and a static one would
 * not be thread-safe. O(n log n) even for hostile headers. */
static void sort_idx(size_t *idx, size_t *tmp, size_t n, const gsq_st_tensor *base,
                     int (*cmp)(const gsq_st_tensor *, const gsq_st_tensor *))
{
    if (n < 2) return;
    size_t h = n / 2;
    sort_idx(idx, tmp, h, base, cmp);
    sort_idx(idx + h, tmp, n - h, base, cmp);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = (cmp(&base[idx[j]], &base[idx[i]]) < 0) ? idx[j++] : idx[i++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

static int by_name(const gsq_st_tensor *x, const gsq_st_tensor *y)
{
    return strcmp(x->name, y->name);
}

static int by_offset(const gsq_st_tensor *x, const gsq_st_tensor *y)
{
    const unsigned char *xa = x->data, *ya = y->data;
    if (xa != ya) return xa < ya ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

/* Duplicate names and overlapping data ranges, after every entry is individually valid. */
static gsq_status check_names_and_overlaps(gsq_st_file *f, gsq_error *err)
{
    size_t n = f->count;
    size_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
    size_t *off = malloc((n ? n : 1) * sizeof *off);
    f->by_name = malloc((n ? n : 1) * sizeof *f->by_name);
    if (!tmp || !off || !f->by_name) {
        free(tmp);
        free(off);
        return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory indexing %zu tensors", f->label, n);
    }
    for (size_t i = 0; i < n; i++) f->by_name[i] = off[i] = i;
    sort_idx(f->by_name, tmp, n, f->tensors, by_name);
    sort_idx(off, tmp, n, f->tensors, by_offset);
    gsq_status st = GSQ_OK;
    for (size_t i = 1; i < n && st == GSQ_OK; i++) {
        const char *a = f->tensors[f->by_name[i - 1]].name, *b = f->tensors[f->by_name[i]].name;
        if (strcmp(a, b) == 0)
            st = gsq_fail(err, GSQ_ERR_FORMAT, LBL ": duplicate tensor name " TNS, f->label, b);
    }
    /* sorted by begin: a non-empty range must start at or after the furthest end seen so far */
    const gsq_st_tensor *reach = NULL;
    for (size_t i = 0; i < n && st == GSQ_OK; i++) {
        const gsq_st_tensor *t = &f->tensors[off[i]];
        if (t->nbytes == 0) continue;
        const unsigned char *b = t->data;
        if (reach && b < (const unsigned char *)reach->data + reach->nbytes) {
            size_t tb = (size_t)(b - f->base) - f->data_start;
            size_t rb = (size_t)((const unsigned char *)reach->data - f->base) - f->data_start;
            st = gsq_fail(err, GSQ_ERR_FORMAT,
                          LBL ": tensor " TNS " (bytes %zu..%zu) overlaps tensor " TNS
                          " (bytes %zu..%zu) in the data section", f->label, t->name, tb,
                          tb + t->nbytes, reach->name, rb, rb + reach->nbytes);
        }
        if (!reach || b + t->nbytes > (const unsigned char *)reach->data + reach->nbytes) reach = t;
    }
    free(tmp);
    free(off);
    return st;
}

static gsq_status parse_image(gsq_st_file *f, gsq_error *err)
{
    const char *lb = f->label;
    if (f->size < 8)
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        LBL ": file is %zu bytes, shorter than the 8-byte header length field", lb,
                        f->size);
    uint64_t hlen = load_u64_le(f->base);
    if (hlen < 2)
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        LBL ": header length %llu is too small (a JSON object needs at least 2 bytes)",
                        lb, (unsigned long long)hlen);
    if (hlen > GSQ_ST_MAX_HEADER)
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        LBL ": header length %llu exceeds the %llu-byte limit of the format", lb,
                        (unsigned long long)hlen, (unsigned long long)GSQ_ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        LBL ": header length %llu is larger than the %zu bytes after the length field",
                        lb, (unsigned long long)hlen, f->size - 8);
    size_t n = (size_t)hlen;
    const unsigned char *h = f->base + 8;
    gsq_status st = check_header_bytes(lb, h, n, err);
    if (st != GSQ_OK) return st;

    char *text = malloc(n + 1);
    if (!text) return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory for a %zu-byte header", lb, n);
    memcpy(text, h, n);
    text[n] = '\0';
    const char *stop = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n + 1, &stop, 1);
    if (!root) {
        size_t at = (stop && stop >= text && stop <= text + n) ? (size_t)(stop - text) : 0;
        free(text);
        return gsq_fail(err, GSQ_ERR_FORMAT, LBL ": header is not valid JSON (error near byte %zu)",
                        lb, at);
    }
    free(text);
    if (!cJSON_IsObject(root)) {
        char buf[96];
        st = gsq_fail(err, GSQ_ERR_FORMAT, LBL ": header must be a JSON object, got %s", lb,
                      json_kind(root, buf, sizeof buf));
        cJSON_Delete(root);
        return st;
    }

    size_t data_start = 8 + n, data_len = f->size - data_start;
    f->data_start = data_start;
    size_t entries = (size_t)cJSON_GetArraySize(root);
    f->tensors = calloc(entries ? entries : 1, sizeof *f->tensors);
    if (!f->tensors) {
        cJSON_Delete(root);
        return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory for %zu tensors", lb, entries);
    }
    int seen_meta = 0;
    for (const cJSON *e = root->child; e && st == GSQ_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (seen_meta)
                st = gsq_fail(err, GSQ_ERR_FORMAT, LBL ": __metadata__ appears twice", lb);
            else
                st = parse_metadata(f, e, err);
            seen_meta = 1;
            continue;
        }
        gsq_st_tensor *t = &f->tensors[f->count];
        char *name = dup_str(e->string);
        if (!name) {
            st = gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory for tensor names", lb);
            break;
        }
        t->name = name;
        f->count++;
        st = parse_entry(f, t, e, data_len, data_start, err);
    }
    cJSON_Delete(root);
    if (st != GSQ_OK) return st;
    return check_names_and_overlaps(f, err);
}

static gsq_status finish_open(gsq_st_file *f, gsq_st_file **out, gsq_error *err)
{
    gsq_status st = parse_image(f, err);
    if (st != GSQ_OK) {
        gsq_st_close(f);
        return st;
    }
    gsq_error_clear(err);
    *out = f;
    return GSQ_OK;
}

static gsq_st_file *new_file(const char *label)
{
    gsq_st_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->label = dup_str(label);
    if (!f->label) {
        free(f);
        return NULL;
    }
    return f;
}

gsq_status gsq_st_open_buffer(gsq_st_file **out, const void *data, size_t size, const char *label,
                              gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_open_buffer: out is NULL");
    *out = NULL;
    if (!label) label = "<buffer>";
    if (!data && size)
        return gsq_fail(err, GSQ_ERR_ARG, LBL ": data is NULL but size is %zu", label, size);
    gsq_st_file *f = new_file(label);
    if (!f) return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory", label);
    f->base = data;
    f->size = size;
    return finish_open(f, out, err);
}

static void errno_text(int e, char *buf, size_t cap)
{
    if (strerror_r(e, buf, cap) != 0) snprintf(buf, cap, "error %d", e);
}

gsq_status gsq_st_open(gsq_st_file **out, const char *path, gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_open: out is NULL");
    *out = NULL;
    if (!path) return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_open: path is NULL");
    char why[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0) {
        errno_text(errno, why, sizeof why);
        return gsq_fail(err, GSQ_ERR_IO, LBL ": cannot open: %s", path, why);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        errno_text(errno, why, sizeof why);
        close(fd);
        return gsq_fail(err, GSQ_ERR_IO, LBL ": cannot stat: %s", path, why);
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return gsq_fail(err, GSQ_ERR_IO, LBL ": is a directory, not a safetensors file", path);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return gsq_fail(err, GSQ_ERR_IO, LBL ": not a regular file", path);
    }
    if ((uintmax_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, LBL ": file too large to map", path);
    }
    gsq_st_file *f = new_file(path);
    if (!f) {
        close(fd);
        return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size > 0) {
        void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            errno_text(errno, why, sizeof why);
            close(fd);
            gsq_st_close(f);
            return gsq_fail(err, GSQ_ERR_IO, LBL ": cannot mmap %zu bytes: %s", path, size, why);
        }
        f->map = m;
        f->map_size = size;
        f->base = m;
    }
    f->size = size;
    close(fd); /* the mapping keeps the file alive */
    return finish_open(f, out, err);
}

void gsq_st_close(gsq_st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->count; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    for (size_t i = 0; i < f->meta_count; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    if (f->map) munmap(f->map, f->map_size);
    free(f->label);
    free(f);
}

const char *gsq_st_label(const gsq_st_file *f)
{
    return f ? f->label : NULL;
}

size_t gsq_st_count(const gsq_st_file *f)
{
    return f ? f->count : 0;
}

const gsq_st_tensor *gsq_st_at(const gsq_st_file *f, size_t i)
{
    return (f && i < f->count) ? &f->tensors[i] : NULL;
}

const gsq_st_tensor *gsq_st_find(const gsq_st_file *f, const char *name)
{
    if (!f || !name) return NULL;
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const gsq_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *gsq_st_meta_get(const gsq_st_file *f, const char *key)
{
    if (!f || !key) return NULL;
    for (size_t i = 0; i < f->meta_count; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

size_t gsq_st_meta_count(const gsq_st_file *f)
{
    return f ? f->meta_count : 0;
}

void gsq_st_meta_at(const gsq_st_file *f, size_t i, const char **key, const char **value)
{
    int ok = f && i < f->meta_count;
    if (key) *key = ok ? f->meta_keys[i] : NULL;
    if (value) *value = ok ? f->meta_vals[i] : NULL;
}

static uint16_t load_u16_le(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

gsq_status gsq_st_read_f32(const gsq_st_file *f, const gsq_st_tensor *t, float *dst, size_t n,
                           gsq_error *err)
{
    if (!f || !t) return gsq_fail(err, GSQ_ERR_ARG, "gsq_st_read_f32: file or tensor is NULL");
    if (t < f->tensors || t >= f->tensors + f->count)
        return gsq_fail(err, GSQ_ERR_ARG, LBL ": tensor " TNS " does not belong to this file",
                        f->label, t->name ? t->name : "?");
    if (n != t->numel)
        return gsq_fail(err, GSQ_ERR_SHAPE,
                        LBL ": tensor " TNS ": destination holds %zu floats, tensor has %zu elements",
                        f->label, t->name, n, t->numel);
    if (n && !dst) return gsq_fail(err, GSQ_ERR_ARG, LBL ": tensor " TNS ": dst is NULL", f->label, t->name);
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case GSQ_DT_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n) memcpy(dst, p, n * sizeof(float));
#else
        for (size_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                         (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
            memcpy(&dst[i], &v, sizeof v);
        }
#endif
        break;
    case GSQ_DT_F16:
        for (size_t i = 0; i < n; i++) dst[i] = gsq_f16_to_f32(load_u16_le(p + 2 * i));
        break;
    case GSQ_DT_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = gsq_bf16_to_f32(load_u16_le(p + 2 * i));
        break;
    default:
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED,
                        LBL ": tensor " TNS ": dtype %s cannot be read as F32 (only F32, F16, BF16)",
                        f->label, t->name, gsq_dtype_name(t->dtype));
    }
    return GSQ_OK;
}
