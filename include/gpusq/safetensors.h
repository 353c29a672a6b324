/* safetensors files: a strict, mmap-based reader (every header field validated, messages naming
 * the file and the tensor) and an atomic writer (temporary file, fsync, rename). The layout and
 * the rules we enforce are documented in docs/FORMAT.md. */
#ifndef GPUSQ_SAFETENSORS_H
#define GPUSQ_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/status.h"

typedef enum { GSQ_DT_F32, GSQ_DT_F16, GSQ_DT_BF16, GSQ_DT_F64, GSQ_DT_I8, GSQ_DT_U8, GSQ_DT_I16,
               GSQ_DT_U16, GSQ_DT_I32, GSQ_DT_U32, GSQ_DT_I64, GSQ_DT_U64, GSQ_DT_BOOL,
               GSQ_DT_F8_E4M3, GSQ_DT_F8_E5M2 } gsq_dtype;

#define GSQ_DT_COUNT 15
#define GSQ_ST_MAX_DIMS 8
/* The safetensors specification's cap on the JSON header (100 MB). */
#define GSQ_ST_MAX_HEADER ((uint64_t)100000000)

typedef struct {
    const char *name;
    gsq_dtype dtype;
    int ndim;
    int64_t shape[GSQ_ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const void *data;          /* points into the file mapping; valid until gsq_st_close */
} gsq_st_tensor;

typedef struct gsq_st_file gsq_st_file;

const char *gsq_dtype_name(gsq_dtype dt);      /* "F32", ...; "?" for an invalid value */
size_t gsq_dtype_size(gsq_dtype dt);           /* bytes per element; 0 for an invalid value */
/* Parses a safetensors dtype name ("F32", "BF16", ...); returns 0 if unknown. */
int gsq_dtype_from_name(const char *name, gsq_dtype *out);
/* 1 if the n bytes at s are well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
int gsq_utf8_valid(const void *s, size_t n);

gsq_status gsq_st_open(gsq_st_file **out, const char *path, gsq_error *err);   /* mmap, read-only */
/* Parses an in-memory image (borrowed, must outlive the handle); label names it in messages. */
gsq_status gsq_st_open_buffer(gsq_st_file **out, const void *data, size_t size, const char *label,
                              gsq_error *err);
void gsq_st_close(gsq_st_file *f);             /* NULL ok */
const char *gsq_st_label(const gsq_st_file *f);   /* the path or label */
size_t gsq_st_count(const gsq_st_file *f);
const gsq_st_tensor *gsq_st_at(const gsq_st_file *f, size_t i);   /* in header order */
const gsq_st_tensor *gsq_st_find(const gsq_st_file *f, const char *name);  /* NULL if absent */
const char *gsq_st_meta_get(const gsq_st_file *f, const char *key);       /* NULL if absent */
size_t gsq_st_meta_count(const gsq_st_file *f);
void gsq_st_meta_at(const gsq_st_file *f, size_t i, const char **key, const char **value);
/* Converts tensor t (F32, F16 or BF16; other dtypes -> GSQ_ERR_UNSUPPORTED naming file, tensor,
 * dtype) into dst, which holds n floats; n must equal t->numel (else GSQ_ERR_SHAPE). Unaligned
 * data works. */
gsq_status gsq_st_read_f32(const gsq_st_file *f, const gsq_st_tensor *t, float *dst, size_t n,
                           gsq_error *err);

typedef struct gsq_st_writer gsq_st_writer;
gsq_status gsq_st_writer_create(gsq_st_writer **out, gsq_error *err);
/* Borrows data (numel x dtype size bytes) until write/free; rejects duplicate or empty names,
 * "__metadata__", names that are not valid UTF-8, bad shapes. */
gsq_status gsq_st_writer_add(gsq_st_writer *w, const char *name, gsq_dtype dtype, int ndim,
                             const int64_t *shape, const void *data, gsq_error *err);
/* Copies key and value (valid UTF-8); replaces an existing key. */
gsq_status gsq_st_writer_set_meta(gsq_st_writer *w, const char *key, const char *value,
                                  gsq_error *err);
/* Writes atomically: PATH.tmp.XXXXXX in the same directory, fsync, rename over PATH; on any
 * failure the temporary is removed and an existing PATH is left untouched. Header padded with
 * spaces so data starts 8-byte aligned. Tensors are laid out in the order added, contiguously. */
gsq_status gsq_st_writer_write(gsq_st_writer *w, const char *path, gsq_error *err);
void gsq_st_writer_free(gsq_st_writer *w);    /* NULL ok */

#endif
