/* Private: an ONNX model under construction, in protobuf-c's structures generated from our
 * subset of the ONNX schema (src/export/onnx.proto): nodes in execution order, initializers,
 * typed graph inputs and outputs, metadata. Everything is allocated from the builder's arena and
 * freed with it. A failed allocation marks the builder failed, the calls after it do nothing,
 * and gsq_onnx_write reports it, so emitting code need not check each call. */
#ifndef GSQ_EXPORT_ONNX_BUILD_H
#define GSQ_EXPORT_ONNX_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/status.h"

/* ONNX element types (TensorProto.DataType) that the exporter writes. */
enum { GSQ_ONNX_FLOAT = 1, GSQ_ONNX_UINT8 = 2, GSQ_ONNX_INT8 = 3, GSQ_ONNX_INT64 = 7 };
/* The opsets the exporter can write. */
#define GSQ_ONNX_OPSET_MIN 17
#define GSQ_ONNX_OPSET_MAX 21

typedef struct gsq_onnx gsq_onnx;

gsq_status gsq_onnx_new(gsq_onnx **out, int opset, gsq_error *err);
void gsq_onnx_free(gsq_onnx *b);
int gsq_onnx_opset(const gsq_onnx *b);
/* Marks the builder failed (an allocation of the caller's failed). */
void gsq_onnx_fail(gsq_onnx *b);

/* A printf-formatted string in the arena (names of values). */
const char *gsq_onnx_name(gsq_onnx *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends a node of type op reading in[0..n) ("" for an omitted optional input) and writing one
 * value named out; returns out. GSQ_ONNX_OP lists the inputs inline. */
const char *gsq_onnx_node(gsq_onnx *b, const char *op, const char *out, const char *const *in, int n);
#define GSQ_ONNX_OP(b, op, out, ...)                                                                 \
    gsq_onnx_node(b, op, out, (const char *const[]){__VA_ARGS__},                                    \
                  (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)))
/* Attributes of the node appended last. */
void gsq_onnx_attr_int(gsq_onnx *b, const char *name, int64_t v);
void gsq_onnx_attr_ints(gsq_onnx *b, const char *name, int n, const int64_t *v);
void gsq_onnx_attr_float(gsq_onnx *b, const char *name, float v);

/* An initializer named name: elem_type, ndim dims (ndim 0: a scalar), the elements copied from
 * data (little-endian, as ONNX's raw_data). Returns name. */
const char *gsq_onnx_tensor(gsq_onnx *b, const char *name, int elem_type, int ndim, const int64_t *dims,
                            const void *data);
/* Shorthands: a 1-D int64 initializer of n values; float, int8 and uint8 scalars. */
const char *gsq_onnx_ints(gsq_onnx *b, const char *name, int n, const int64_t *v);
const char *gsq_onnx_float(gsq_onnx *b, const char *name, float v);
const char *gsq_onnx_byte(gsq_onnx *b, const char *name, int elem_type, int v);

/* A graph input (output: 1 for a graph output) of float elements; a dim < 0 is the symbolic
 * batch axis "batch". doc says what the value is. */
void gsq_onnx_io(gsq_onnx *b, int output, const char *name, int ndim, const int64_t *dims, const char *doc);
/* A metadata_props entry (both strings copied). */
void gsq_onnx_meta(gsq_onnx *b, const char *key, const char *value);

/* Packs the model (producer "gpusq", the graph named name, doc) and writes it to path atomically.
 * GSQ_ERR_UNSUPPORTED when it would pass protobuf's 2 GiB limit (ONNX's external data is not
 * written), GSQ_ERR_NOMEM when an earlier allocation failed. */
gsq_status gsq_onnx_write(gsq_onnx *b, const char *name, const char *doc, const char *path, gsq_error *err);

#endif
