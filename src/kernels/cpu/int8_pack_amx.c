/* Packing a GEMM's integer weight codes for the AMX kernels (int8_gemm.h describes the layout):
 * panels of 16 rows as columns of B tiles, dense or as the kept codes with a 64-bit mask per tile
 * row. The kept positions are those of the compressed file (gsq_sparse_compress_row). */
#include <stdlib.h>
#include <string.h>

#include "gpusq/sparse.h"
#include "int8_pack.h"

/* Appends code v to the stream at position *at: a byte, or a nibble (low first) when four. */
static void append(uint8_t *stream, size_t *at, int v, int four)
{
    if (!four) stream[*at] = (uint8_t)v;
    else stream[*at / 2] = (uint8_t)(stream[*at / 2] | ((uint8_t)v & 0x0F) << (4 * (*at % 2)));
    (*at)++;
}

gsq_status gsq_i8_pack_amx(gsq_i8_owned_weight *o, const int8_t *codes, int rows, int cols, gsq_i8_layout layout,
                           int four, gsq_error *err)
{
    gsq_i8_weight *w = &o->w;
    w->isa = GSQ_I8_ISA_AMX;
    w->layout = layout;
    w->four = four;
    w->rows = rows;
    w->rows_pad = (rows + 31) / 32 * 32;
    w->cols = cols;
    w->chunks = (cols + 7) / 8;
    int sparse = layout != GSQ_I8_DENSE;
    gsq_sparse_pattern pattern = layout == GSQ_I8_SPARSE_4_8 ? GSQ_SPARSE_4_8 : GSQ_SPARSE_2_4;
    const gsq_sparse_format *fmt = gsq_sparse_format_of(pattern);
    int group = fmt->group;
    int kpad = gsq_i8_amx_kpad(cols), trows = kpad / 4, panels = w->rows_pad / 16;
    size_t per_panel = (size_t)kpad * (sparse ? 8 : 16); /* codes */
    size_t code_bytes = per_panel * (size_t)panels / (four ? 2 : 1), mask_bytes = sparse ? (size_t)panels * trows * 8 : 0;
    o->codes = aligned_alloc(64, (code_bytes + 63) / 64 * 64);
    o->meta = sparse ? aligned_alloc(64, mask_bytes) : NULL;
    o->wsum = calloc((size_t)w->rows_pad, sizeof(int32_t));
    int8_t *dense = calloc((size_t)16 * kpad, 1), *kept = malloc((size_t)kpad / 2);
    uint8_t *keep = calloc((size_t)16 * kpad, 1);
    uint16_t *mw = malloc(((size_t)gsq_sparse_meta_words(pattern, kpad) + 1) * sizeof(uint16_t));
    if (!o->codes || (sparse && !o->meta) || !o->wsum || !dense || !kept || !keep || !mw) {
        free(dense), free(kept), free(keep), free(mw);
        gsq_i8_weight_free(o);
        return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory packing a %d × %d weight", rows, cols);
    }
    memset(o->codes, 0, code_bytes);
    uint64_t *masks = (uint64_t *)o->meta;
    size_t at = 0;
    for (int p = 0; p < panels; p++) {
        /* the panel's 16 rows, zero-padded to kpad, and which of their codes are kept */
        memset(dense, 0, (size_t)16 * kpad);
        memset(keep, !sparse, (size_t)16 * kpad);
        for (int n = 0; n < 16; n++) {
            int r = 16 * p + n;
            int8_t *d = dense + (size_t)n * kpad;
            if (r < rows) memcpy(d, codes + (size_t)r * cols, (size_t)cols);
            for (int k = 0; k < kpad; k++) o->wsum[r] += d[k];
            if (!sparse) continue;
            memset(mw, 0, ((size_t)gsq_sparse_meta_words(pattern, kpad) + 1) * sizeof(uint16_t));
            gsq_sparse_compress_row(d, kpad, pattern, kept, mw);
            for (int g = 0; g < kpad / group; g++) {
                int nib = mw[g / 4] >> (4 * (g % 4)) & 0xF, unit = fmt->unit;
                for (int i = 0; i < 2; i++)
                    for (int u = 0; u < unit; u++) keep[(size_t)n * kpad + g * group + (i ? nib >> 2 : nib & 3) * unit + u] = 1;
            }
        }
        /* tile row t: inputs 4t..4t+3 of the 16 rows, [row][4] */
        for (int t = 0; t < trows; t++) {
            uint64_t mask = 0;
            for (int n = 0; n < 16; n++)
                for (int j = 0; j < 4; j++) {
                    size_t i = (size_t)n * kpad + 4 * t + j;
                    if (!keep[i]) continue;
                    mask |= 1ULL << (4 * n + j);
                    append(o->codes, &at, dense[i], four);
                }
            if (sparse) masks[(size_t)p * trows + t] = mask;
        }
    }
    free(dense), free(kept), free(keep), free(mw);
    w->codes = o->codes;
    w->meta = o->meta;
    w->wsum = o->wsum;
    o->bytes = code_bytes + mask_bytes;
    return GSQ_OK;
}
