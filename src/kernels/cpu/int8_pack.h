/* Private: packing integer weight codes into the engine's GEMM layout (int8_pack.c). */
#ifndef GSQ_ENGINE_INT8_PACK_H
#define GSQ_ENGINE_INT8_PACK_H

#include "gpusq/status.h"
#include "int8_gemm.h"

/* A packed weight and the memory it owns. */
typedef struct {
    gsq_i8_weight w;
    uint8_t *codes, *meta;
    int32_t *wsum;
    size_t bytes; /* the packed codes and metadata */
} gsq_i8_owned_weight;

/* Packs codes (rows, cols), int8 values in the weight's range, as layout (sparse layouts need
 * cols a multiple of the group and codes that obey the pattern) with int4 packing when four, for
 * isa's kernels. */
gsq_status gsq_i8_pack(gsq_i8_owned_weight *o, const int8_t *codes, int rows, int cols, gsq_i8_layout layout,
                       int four, gsq_i8_isa isa, gsq_error *err);
void gsq_i8_weight_free(gsq_i8_owned_weight *o);
/* gsq_i8_pack's AMX layout (int8_pack_amx.c), for arguments gsq_i8_pack has checked. */
gsq_status gsq_i8_pack_amx(gsq_i8_owned_weight *o, const int8_t *codes, int rows, int cols, gsq_i8_layout layout,
                           int four, gsq_error *err);

#endif
