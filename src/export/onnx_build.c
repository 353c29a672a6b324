/* The ONNX model builder (onnx_build.h): protobuf-c structures filled from one arena (each scalar
 * with its has_ flag: proto2 writes what is flagged, zeros included), packed by protobuf-c and
 * written with gsq_write_file_atomic. */
#include "export/onnx_build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/atomic_file.h"
#include "onnx.pb-c.h"

/* protobuf's limit on one message (a model without external data). */
#define ONNX_MAX_BYTES ((size_t)INT32_MAX)

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} chunk;

/* A growable array of pointers (malloc'd; the arena holds what they point to). */
typedef struct {
    void **items;
    size_t n, cap;
} list;

struct gsq_onnx {
    int opset, failed;
    chunk *chunks;
    list nodes, inits, inputs, outputs, meta;
};

/* n bytes from the arena, uninitialized (arena: zeroed). */
static void *arena_raw(gsq_onnx *b, size_t n)
{
    if (b->failed) return NULL;
    n = (n + 15) & ~(size_t)15;
    chunk *c = b->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ((size_t)1 << 20) ? n : ((size_t)1 << 20);
        c = malloc(sizeof *c + cap);
        if (!c) {
            b->failed = 1;
            return NULL;
        }
        c->used = 0;
        c->cap = cap;
        if (n > ((size_t)1 << 20) && b->chunks) { /* a large block: keep filling the current chunk */
            c->next = b->chunks->next;
            b->chunks->next = c;
        } else {
            c->next = b->chunks;
            b->chunks = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void *arena(gsq_onnx *b, size_t n)
{
    void *p = arena_raw(b, n);
    return p ? memset(p, 0, n) : NULL;
}

static const char *dup(gsq_onnx *b, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = arena(b, n);
    return p ? memcpy(p, s, n) : "";
}

static void push(gsq_onnx *b, list *l, void *item)
{
    if (b->failed || !item) {
        b->failed = 1;
        return;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        void **items = realloc(l->items, cap * sizeof *items);
        if (!items) {
            b->failed = 1;
            return;
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = item;
}

gsq_status gsq_onnx_new(gsq_onnx **out, int opset, gsq_error *err)
{
    *out = NULL;
    if (opset < GSQ_ONNX_OPSET_MIN || opset > GSQ_ONNX_OPSET_MAX)
        return gsq_fail(err, GSQ_ERR_ARG, "ONNX export: opset %d is not one gpusq writes (%d to %d)", opset,
                        GSQ_ONNX_OPSET_MIN, GSQ_ONNX_OPSET_MAX);
    gsq_onnx *b = calloc(1, sizeof *b);
    if (!b) return gsq_fail(err, GSQ_ERR_NOMEM, "ONNX export: out of memory");
    b->opset = opset;
    *out = b;
    return GSQ_OK;
}

void gsq_onnx_free(gsq_onnx *b)
{
    if (!b) return;
    for (chunk *c = b->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    list *lists[] = {&b->nodes, &b->inits, &b->inputs, &b->outputs, &b->meta};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) free(lists[i]->items);
    free(b);
}

int gsq_onnx_opset(const gsq_onnx *b) { return b->opset; }
void gsq_onnx_fail(gsq_onnx *b) { b->failed = 1; }

const char *gsq_onnx_name(gsq_onnx *b, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return dup(b, buf);
}

const char *gsq_onnx_node(gsq_onnx *b, const char *op, const char *out, const char *const *in, int n)
{
    Onnx__NodeProto *node = arena(b, sizeof *node);
    char **ins = arena(b, (size_t)n * sizeof *ins), **outs = arena(b, sizeof *outs);
    if (!node || !ins || !outs) {
        b->failed = 1;
        return out;
    }
    onnx__node_proto__init(node);
    for (int i = 0; i < n; i++) ins[i] = (char *)dup(b, in[i]);
    outs[0] = (char *)dup(b, out);
    node->n_input = (size_t)n;
    node->input = ins;
    node->n_output = 1;
    node->output = outs;
    node->op_type = (char *)dup(b, op);
    node->name = (char *)gsq_onnx_name(b, "%s_%zu", op, b->nodes.n);
    push(b, &b->nodes, node);
    return outs[0];
}

/* A new attribute on the last node, its name and type set. */
static Onnx__AttributeProto *attr(gsq_onnx *b, const char *name, Onnx__AttributeProto__AttributeType type)
{
    if (b->failed || b->nodes.n == 0) return NULL;
    Onnx__NodeProto *node = b->nodes.items[b->nodes.n - 1];
    Onnx__AttributeProto *a = arena(b, sizeof *a);
    Onnx__AttributeProto **all = arena(b, (node->n_attribute + 1) * sizeof *all);
    if (!a || !all) return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)dup(b, name);
    a->type = type;
    a->has_type = 1;
    if (node->n_attribute) memcpy(all, node->attribute, node->n_attribute * sizeof *all);
    all[node->n_attribute++] = a;
    node->attribute = all;
    return a;
}

void gsq_onnx_attr_int(gsq_onnx *b, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->i = v, a->has_i = 1;
}

void gsq_onnx_attr_ints(gsq_onnx *b, const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = arena(b, (size_t)n * sizeof *copy);
    if (!a || !copy) return;
    memcpy(copy, v, (size_t)n * sizeof *copy);
    a->n_ints = (size_t)n;
    a->ints = copy;
}

void gsq_onnx_attr_float(gsq_onnx *b, const char *name, float v)
{
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->f = v, a->has_f = 1;
}

static size_t elem_bytes(int elem_type)
{
    switch (elem_type) {
    case GSQ_ONNX_FLOAT: return 4;
    case GSQ_ONNX_INT64: return 8;
    default: return 1;
    }
}

const char *gsq_onnx_tensor(gsq_onnx *b, const char *name, int elem_type, int ndim, const int64_t *dims,
                            const void *data)
{
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)dims[i];
    Onnx__TensorProto *t = arena(b, sizeof *t);
    int64_t *d = arena(b, (size_t)(ndim ? ndim : 1) * sizeof *d);
    void *raw = arena_raw(b, count * elem_bytes(elem_type)); /* filled below */
    if (!t || !d || !raw) {
        b->failed = 1;
        return name;
    }
    onnx__tensor_proto__init(t);
    if (ndim) memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->data_type = elem_type;
    t->has_data_type = 1;
    t->name = (char *)dup(b, name);
    memcpy(raw, data, count * elem_bytes(elem_type));
    t->raw_data.len = count * elem_bytes(elem_type);
    t->raw_data.data = raw;
    t->has_raw_data = 1;
    push(b, &b->inits, t);
    return t->name;
}

const char *gsq_onnx_ints(gsq_onnx *b, const char *name, int n, const int64_t *v)
{
    int64_t dims[1] = {n};
    return gsq_onnx_tensor(b, name, GSQ_ONNX_INT64, 1, dims, v);
}

const char *gsq_onnx_float(gsq_onnx *b, const char *name, float v)
{
    return gsq_onnx_tensor(b, name, GSQ_ONNX_FLOAT, 0, NULL, &v);
}

const char *gsq_onnx_byte(gsq_onnx *b, const char *name, int elem_type, int v)
{
    unsigned char byte = (unsigned char)v; /* an int8's two's complement byte, or a uint8 */
    return gsq_onnx_tensor(b, name, elem_type, 0, NULL, &byte);
}

void gsq_onnx_io(gsq_onnx *b, int output, const char *name, int ndim, const int64_t *dims, const char *doc)
{
    Onnx__ValueInfoProto *v = arena(b, sizeof *v);
    Onnx__TypeProto *type = arena(b, sizeof *type);
    Onnx__TypeProto__Tensor *tensor = arena(b, sizeof *tensor);
    Onnx__TensorShapeProto *shape = arena(b, sizeof *shape);
    Onnx__TensorShapeProto__Dimension **dim = arena(b, (size_t)ndim * sizeof *dim);
    if (!v || !type || !tensor || !shape || !dim) {
        b->failed = 1;
        return;
    }
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(type);
    onnx__type_proto__tensor__init(tensor);
    onnx__tensor_shape_proto__init(shape);
    for (int i = 0; i < ndim; i++) {
        dim[i] = arena(b, sizeof *dim[i]);
        if (!dim[i]) return;
        onnx__tensor_shape_proto__dimension__init(dim[i]);
        if (dims[i] < 0) {
            dim[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim[i]->dim_param = (char *)dup(b, "batch");
        } else {
            dim[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim[i]->dim_value = dims[i];
        }
    }
    shape->n_dim = (size_t)ndim;
    shape->dim = dim;
    tensor->elem_type = GSQ_ONNX_FLOAT;
    tensor->has_elem_type = 1;
    tensor->shape = shape;
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tensor;
    v->name = (char *)dup(b, name);
    v->type = type;
    v->doc_string = (char *)dup(b, doc);
    push(b, output ? &b->outputs : &b->inputs, v);
}

void gsq_onnx_meta(gsq_onnx *b, const char *key, const char *value)
{
    Onnx__StringStringEntryProto *e = arena(b, sizeof *e);
    if (!e) return;
    onnx__string_string_entry_proto__init(e);
    e->key = (char *)dup(b, key);
    e->value = (char *)dup(b, value);
    push(b, &b->meta, e);
}

/* The IR version that goes with an opset (onnx/helper.py's VERSION_TABLE). */
static int64_t ir_version(int opset) { return opset <= 18 ? 8 : opset <= 20 ? 9 : 10; }

gsq_status gsq_onnx_write(gsq_onnx *b, const char *name, const char *doc, const char *path, gsq_error *err)
{
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsets[1] = {&opset};
    if (b->failed) return gsq_fail(err, GSQ_ERR_NOMEM, "ONNX export: out of memory building the graph");
    opset.version = b->opset;
    opset.has_version = 1;
    graph.name = (char *)name;
    graph.doc_string = (char *)doc;
    graph.n_node = b->nodes.n;
    graph.node = (Onnx__NodeProto **)b->nodes.items;
    graph.n_initializer = b->inits.n;
    graph.initializer = (Onnx__TensorProto **)b->inits.items;
    graph.n_input = b->inputs.n;
    graph.input = (Onnx__ValueInfoProto **)b->inputs.items;
    graph.n_output = b->outputs.n;
    graph.output = (Onnx__ValueInfoProto **)b->outputs.items;
    model.ir_version = ir_version(b->opset);
    model.has_ir_version = 1;
    model.n_opset_import = 1;
    model.opset_import = opsets;
    model.producer_name = "gpusq";
    model.producer_version = GSQ_VERSION_STRING;
    model.graph = &graph;
    model.n_metadata_props = b->meta.n;
    model.metadata_props = (Onnx__StringStringEntryProto **)b->meta.items;
    size_t size = onnx__model_proto__get_packed_size(&model);
    if (size > ONNX_MAX_BYTES)
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "ONNX export: the model would take %zu MiB, over protobuf's 2 GiB limit "
                        "(ONNX external data is not written)", size >> 20);
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) return gsq_fail(err, GSQ_ERR_NOMEM, "ONNX export: out of memory packing %zu MiB", size >> 20);
    size_t packed = onnx__model_proto__pack(&model, buf);
    const void *chunks[1] = {buf};
    gsq_status st = packed == size ? gsq_write_file_atomic(path, chunks, &packed, 1, err)
                                   : gsq_fail(err, GSQ_ERR_FORMAT, "ONNX export: protobuf packed %zu bytes, not %zu",
                                              packed, size);
    free(buf);
    return st;
}
