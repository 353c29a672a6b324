/* Private: a compressed file's stored linears read as codes, not as float weights
 * (compressed_read.c), for gsq_compressed_load and for the engine that packs them as they are.
 * The model m is the file's description (gsq_compressed_describe). Every code, metadata nibble and
 * scale is checked as gsq_compressed_load checks it. */
#ifndef GSQ_IO_COMPRESSED_CODES_H
#define GSQ_IO_COMPRESSED_CODES_H

#include "gpusq/compressed.h"

/* The compressed linear with index i in m's graph: its codes as dense int8 rows (rows · cols,
 * zeros where pruned), the rows' weight scales, the input's activation scale, and 1 in sparse when
 * the file stores it sparse. */
gsq_status gsq_compressed_linear_codes(const gsq_model *m, const gsq_st_file *f, const gsq_compressed_info *info, int i,
                                     int8_t *codes, float *weight_scales, float *act_scale, int *sparse,
                                     gsq_error *err);
/* Attention l's Q, K, V scales (a file with quantized attention, of model m's architecture). */
gsq_status gsq_compressed_attention_scales(const gsq_model *m, const gsq_st_file *f, int l, float scales[3],
                                           gsq_error *err);

#endif
