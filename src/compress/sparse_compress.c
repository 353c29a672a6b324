/* The compressed N:M layout (gpusq/sparse.h, docs/FORMAT.md): the table of the patterns' formats,
 * and one row of codes compressed into kept values and 2-bit index metadata, as the compressed
 * file and the GPU's sparse operands hold them. On its own, without the rest of the sparsity code,
 * so that the CUDA backend library can compile it. */
#include "gpusq/sparse.h"

static const gsq_sparse_format formats[] = {
    [GSQ_SPARSE_2_4] = {"2:4", 4, 1, 2},
    [GSQ_SPARSE_4_8] = {"4:8", 8, 2, 4},
};
/* a nibble holds a group's two 2-bit position indices (4 positions: 2 bits each) */
_Static_assert(4 * GSQ_SPARSE_GROUPS_PER_WORD == 8 * sizeof(uint16_t), "four nibbles to a metadata word");

const gsq_sparse_format *gsq_sparse_format_of(gsq_sparse_pattern p)
{
    return &formats[p == GSQ_SPARSE_4_8 ? GSQ_SPARSE_4_8 : GSQ_SPARSE_2_4];
}

void gsq_sparse_compress_row(const int8_t *codes, int cols, gsq_sparse_pattern p, int8_t *kept, uint16_t *meta)
{
    const gsq_sparse_format *f = gsq_sparse_format_of(p);
    int unit = f->unit, group = f->group, groups = cols / group;
    for (int g = 0; g < groups; g++) {
        const int8_t *c = codes + g * group;
        int idx[2], n = 0, used[4] = {0};
        for (int u = 0; u < 4 && n < 2; u++) {
            int nz = 0;
            for (int e = 0; e < unit; e++) nz |= c[u * unit + e] != 0;
            if (nz) idx[n++] = u, used[u] = 1;
        }
        for (int u = 0; n < 2; u++) /* fewer than two non-zero: pad with the lowest unused positions */
            if (!used[u]) idx[n++] = u, used[u] = 1;
        if (idx[0] > idx[1]) {
            int t = idx[0];
            idx[0] = idx[1];
            idx[1] = t;
        }
        for (int k = 0; k < 2; k++)
            for (int e = 0; e < unit; e++) kept[(g * 2 + k) * unit + e] = c[idx[k] * unit + e];
        meta[g / GSQ_SPARSE_GROUPS_PER_WORD] |= (uint16_t)((idx[0] | idx[1] << 2) << (4 * (g % GSQ_SPARSE_GROUPS_PER_WORD)));
    }
}
