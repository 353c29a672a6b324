/* N:M compression of one row of codes into kept values and 2-bit index metadata (gpusq/sparse.h):
 * the layout of the compressed file and the GPU's sparse operands. On its own, without the rest of
 * the sparsity code, so that the CUDA backend library can compile it. */
#include "gpusq/sparse.h"

void gsq_sparse_compress_row(const int8_t *codes, int cols, int pair, int8_t *kept, uint16_t *meta)
{
    int unit = pair ? 2 : 1, group = 4 * unit, groups = cols / group;
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
        meta[g / 4] |= (uint16_t)((idx[0] | idx[1] << 2) << (4 * (g % 4)));
    }
}
