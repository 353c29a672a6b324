/* Packing a GEMM's integer weight codes into the engine's layout (int8_gemm.h): per row and chunk
 * of 8 inputs, 8 codes (dense) or the 4 kept codes with one metadata byte (sparse), int8 or int4
 * packed two per byte, rows padded to GSQ_I8_NBLOCK, and each row's code sum. The kept codes and
 * metadata are those of the compressed file (gsq_sparse_compress_row), regrouped by chunk. */
#include <stdlib.h>
#include <string.h>

#include "gpusq/sparse.h"
#include "int8_pack.h"

void gsq_i8_weight_free(gsq_i8_owned_weight *o)
{
    free(o->codes);
    free(o->meta);
    free(o->wsum);
    memset(o, 0, sizeof *o);
}

/* Stores n codes at dst: int8 as they are, int4 two per byte (code 2i in the low nibble). */
static void put_codes(uint8_t *dst, const int8_t *codes, int n, int four)
{
    for (int i = 0; i < n; i++) {
        if (!four) dst[i] = (uint8_t)codes[i];
        else dst[i / 2] = (uint8_t)(dst[i / 2] | ((uint8_t)codes[i] & 0x0F) << (4 * (i % 2)));
    }
}

gsq_status gsq_i8_pack(gsq_i8_owned_weight *o, const int8_t *codes, int rows, int cols, gsq_i8_layout layout,
                       int four, gsq_i8_isa isa, gsq_error *err)
{
    memset(o, 0, sizeof *o);
    gsq_sparse_pattern pattern = layout == GSQ_I8_SPARSE_4_8 ? GSQ_SPARSE_4_8 : GSQ_SPARSE_2_4;
    int group = gsq_sparse_group(pattern), pair = pattern == GSQ_SPARSE_4_8;
    if (rows < 1 || cols < 1 || (layout != GSQ_I8_DENSE && cols % group))
        return gsq_fail(err, GSQ_ERR_ARG, "engine: a %d × %d weight cannot be packed %s", rows, cols,
                        layout == GSQ_I8_DENSE ? "dense" : gsq_sparse_pattern_name(pattern));
    if (isa == GSQ_I8_ISA_AMX) return gsq_i8_pack_amx(o, codes, rows, cols, layout, four, err);
    gsq_i8_weight *w = &o->w;
    w->isa = isa;
    w->layout = layout;
    w->four = four;
    w->rows = rows;
    w->rows_pad = (rows + GSQ_I8_NBLOCK - 1) / GSQ_I8_NBLOCK * GSQ_I8_NBLOCK;
    w->cols = cols;
    w->chunks = (cols + 7) / 8;
    size_t cb = gsq_i8_chunk_bytes(w), nchunks = (size_t)w->rows_pad * (size_t)w->chunks;
    int sparse = layout != GSQ_I8_DENSE, words = gsq_sparse_meta_words(pattern, cols);
    o->codes = calloc(nchunks, cb);
    o->wsum = calloc((size_t)w->rows_pad, sizeof(int32_t));
    o->meta = sparse ? calloc(nchunks, 1) : NULL;
    int8_t *kept = malloc((size_t)w->chunks * 8);
    uint16_t *mw = calloc((size_t)words + 1, sizeof(uint16_t));
    if (!o->codes || !o->wsum || (sparse && !o->meta) || !kept || !mw) {
        free(kept);
        free(mw);
        gsq_i8_weight_free(o);
        return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory packing a %d × %d weight", rows, cols);
    }
    for (int r = 0; r < rows; r++) {
        const int8_t *row = codes + (size_t)r * cols;
        memset(kept, 0, (size_t)w->chunks * 8);
        int per_chunk = sparse ? 4 : 8;
        if (sparse) {
            memset(mw, 0, ((size_t)words + 1) * sizeof(uint16_t));
            gsq_sparse_compress_row(row, cols, pattern, kept, mw);
        } else {
            memcpy(kept, row, (size_t)cols);
        }
        for (int c = 0; c < w->chunks; c++) {
            size_t at = (size_t)r * w->chunks + c;
            put_codes(o->codes + at * cb, kept + c * per_chunk, per_chunk, four);
            for (int j = 0; j < per_chunk; j++) o->wsum[r] += kept[c * per_chunk + j];
            /* 2:4: a chunk is groups 2c and 2c+1, one byte of nibbles; 4:8: group c's nibble */
            if (sparse) o->meta[at] = pair ? (uint8_t)(mw[c / 4] >> (4 * (c % 4)) & 0xF) : (uint8_t)(mw[c / 2] >> (8 * (c % 2)));
        }
    }
    free(kept);
    free(mw);
    w->codes = o->codes;
    w->meta = o->meta;
    w->wsum = o->wsum;
    o->bytes = nchunks * (cb + (sparse ? 1 : 0));
    return GSQ_OK;
}
