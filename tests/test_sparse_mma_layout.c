/* The tensor-core register layouts of the CUDA INT8 GEMMs, checked on the CPU (src/kernels/
 * mma_layout.h): the lane/register formulas cover each tile exactly once; hand-made tiles with a
 * few non-zeros land in the registers, metadata nibbles and accumulators that the PTX ISA's
 * fragment tables give (worked out by hand below, so a misread layout cannot pass by symmetry
 * between reorder and decode); the emulated instructions reject metadata that is undefined for
 * mma.sp::ordered_metadata; and whole GEMMs of random 2:4 and dense weights with awkward shapes,
 * reordered and run through the emulated instructions, give the int32 sums of a plain dense loop
 * and of the CPU engine's reference kernel, bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/int8_gemm.h"
#include "kernels/cpu/int8_pack.h"
#include "gpusq/sparse.h"
#include "kernels/mma_layout.h"
#include "test_util.h"

/* Every (row, col) of a rows × cols tile is named exactly once by the (lane, register, byte)
 * triples: span consecutive columns per register, per[lane] registers per lane. */
static int covers_once(int rows, int cols, int per, int span, int (*row_of)(int, int), int (*col_of)(int, int))
{
    int count[GSQ_MMA_SP_K][GSQ_MMA_SP_K] = {{0}};
    for (int lane = 0; lane < 32; lane++)
        for (int r = 0; r < per; r++)
            for (int i = 0; i < span; i++) count[row_of(lane, r)][col_of(lane, r) + i]++;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            if (count[r][c] != 1) return 0;
    return 1;
}

/* Adapters to one (lane, register) signature. */
static int e_row(int lane, int r) { (void)r; return gsq_mma_sp_e_row(lane); }
static int e_col(int lane, int r) { (void)r; return gsq_mma_sp_e_col(lane); }

static void test_coverage(void)
{
    /* sparse A: each register 8 logical columns (4 kept codes), 4 per lane → 16 × 64 */
    CHECK(covers_once(16, 64, 4, 8, gsq_mma_a_row, gsq_mma_sp_a_col), "sparse A does not tile 16 × 64");
    /* metadata: one register of 8 nibbles = 32 columns per lane → 16 × 64 */
    CHECK(covers_once(16, 64, 1, 32, e_row, e_col), "metadata does not tile 16 × 64");
    CHECK(covers_once(16, 32, 4, 4, gsq_mma_a_row, gsq_mma_dense_a_col), "dense A does not tile 16 × 32");
    /* B as (k, n): each register 4 rows of one column; 4 registers (k64; k32 uses the first 2) */
    int count[64][8] = {{0}}, ok = 1;
    for (int lane = 0; lane < 32; lane++)
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 4; i++) count[gsq_mma_b_row(lane, j) + i][gsq_mma_b_col(lane)]++;
    for (int k = 0; k < 64; k++)
        for (int n = 0; n < 8; n++) ok &= count[k][n] == 1;
    CHECK(ok, "B does not tile 64 × 8");
    CHECK(covers_once(16, 8, 4, 1, gsq_mma_c_row, gsq_mma_c_col), "C/D does not tile 16 × 8");
}

/* File form (values, meta) of codes (rows, cols) that obey 2:4. */
static void compress(const int8_t *codes, int rows, int cols, int8_t *values, uint16_t *meta)
{
    int words = gsq_sparse_meta_words(GSQ_SPARSE_2_4, cols);
    memset(meta, 0, sizeof(uint16_t) * (size_t)rows * words);
    for (int r = 0; r < rows; r++)
        gsq_sparse_compress_row(codes + (size_t)r * cols, cols, GSQ_SPARSE_2_4, values + (size_t)r * cols / 2, meta + (size_t)r * words);
}

/* A 32 × 128 weight (2 × 2 tiles) with a few non-zeros, reordered. Expected registers, from the
 * PTX ISA (lane = 4g + t): sparse A register r holds row g + 8(r&1), columns 8t + 32(r>>1) to +7;
 * metadata of lane 4g + t is row g + 8(t&1), columns 32(t>>1) to +31, group j in nibble j.
 *   (9, 42) = 5:       row 9 = 1 + 8, columns 40..47 = 8·1 + 32 → lane 5, register 3. Group 10
 *                      keeps {0, 2} (2 non-zero, 0 the padding) → codes 0, 5 → 0x00000500.
 *                      Metadata: row 9 → t odd, column ≥ 32 → t = 3, g = 1 → lane 7, nibble
 *                      (42 - 32) / 4 = 2 = 0 | 2 << 2 = 0x8 → 0x44444844.
 *   (2, 5) = -3, (2, 7) = 9: lane 8 (g 2, t 0), register 0, group 1 keeps {1, 3} → bytes 2, 3
 *                      = 0xFD, 0x09 → 0x09FD0000; metadata lane 8, nibble 1 = 1 | 3 << 2 = 0xD.
 *   (31, 127) = 100:   tile (1, 1), local (15, 63): g 7, register 3, t = (63 - 32) / 8 = 3 →
 *                      lane 31; group 15 keeps {0, 3} → byte 3 = 0x64; metadata lane 31 (t 3),
 *                      nibble 7 = 0xC.
 *   (16, 64) = -127:   tile (1, 1), local (0, 0): lane 0, register 0, byte 0 = 0x81; its group
 *                      keeps {0, 1}, the padding nibble 0x4.
 * Lanes 7, 8 and 31 have t = 3 or 0, where the two lane bits of the metadata layout (t & 1 → row
 * + 8, t >> 1 → column + 32) cannot be told apart; these two have t = 1 and t = 2:
 *   (10, 22) = 7:      register 1 (row 2 + 8), columns 16..23 → t 2 → lane 10; group 5 keeps
 *                      {0, 2} → byte 3 = 7 → 0x07000000. Metadata: row 10 → t odd, column < 32
 *                      → t = 1, g = 2 → lane 9, nibble 5 = 0x8 → 0x44844444.
 *   (3, 50) = -5:      register 2 (row 3, columns 48..55 = 8·2 + 32) → lane 14; group 12 keeps
 *                      {0, 2} → byte 1 = 0xFB → 0x0000FB00. Metadata: row 3 → t even, column ≥ 32
 *                      → t = 2, g = 3 → lane 14, nibble 4 = 0x8 → 0x44484444. */
static void test_pack_pinned(void)
{
    enum { R = 32, C = 128 };
    int8_t codes[R * C] = {0}, values[R * C / 2];
    uint16_t meta[R * 8];
    codes[9 * C + 42] = 5;
    codes[2 * C + 5] = -3;
    codes[2 * C + 7] = 9;
    codes[31 * C + 127] = 100;
    codes[16 * C + 64] = -127;
    codes[10 * C + 22] = 7;
    codes[3 * C + 50] = -5;
    compress(codes, R, C, values, meta);
    gsq_mma_weight w;
    gsq_error err = {0};
    CHECK(gsq_mma_pack_sparse(&w, values, meta, R, C, &err) == GSQ_OK, "%s", err.msg);
    CHECK(w.row_tiles == 2 && w.k_tiles == 2, "tiles %d × %d", w.row_tiles, w.k_tiles);
    struct { int tile, lane, reg; uint32_t a; } want_a[] = {
        {0, 5, 3, 0x00000500u}, {0, 8, 0, 0x09FD0000u}, {3, 31, 3, 0x64000000u}, {3, 0, 0, 0x00000081u},
        {0, 10, 1, 0x07000000u}, {0, 14, 2, 0x0000FB00u}};
    struct { int tile, lane; uint32_t e; } want_e[] = {{0, 7, 0x44444844u}, {0, 8, 0x444444D4u}, {3, 31, 0xC4444444u},
                                                       {0, 9, 0x44844444u}, {0, 14, 0x44484444u}};
    int bad_a = 0, bad_e = 0;
    for (int tile = 0; tile < 4; tile++)
        for (int lane = 0; lane < 32; lane++) {
            uint32_t e = 0x44444444u;
            for (size_t i = 0; i < sizeof want_e / sizeof want_e[0]; i++)
                if (want_e[i].tile == tile && want_e[i].lane == lane) e = want_e[i].e;
            if (w.e[tile * 32 + lane] != e) {
                bad_e++;
                fprintf(stderr, "tile %d lane %d: metadata 0x%08x, want 0x%08x\n", tile, lane,
                        (unsigned)w.e[tile * 32 + lane], (unsigned)e);
            }
            for (int r = 0; r < 4; r++) {
                uint32_t a = 0;
                for (size_t i = 0; i < sizeof want_a / sizeof want_a[0]; i++)
                    if (want_a[i].tile == tile && want_a[i].lane == lane && want_a[i].reg == r) a = want_a[i].a;
                if (w.a[(tile * 32 + lane) * 4 + r] != a) {
                    bad_a++;
                    fprintf(stderr, "tile %d lane %d register %d: 0x%08x, want 0x%08x\n", tile, lane, r,
                            (unsigned)w.a[(tile * 32 + lane) * 4 + r], (unsigned)a);
                }
            }
        }
    CHECK(bad_a == 0 && bad_e == 0, "%d A registers and %d metadata registers differ from the PTX layout", bad_a, bad_e);
    gsq_mma_weight_free(&w);

    /* dense: (9, 21) = 5 → row 9 = 1 + 8, columns 20..23 = 4·1 + 16 → lane 5, register 3, byte 1 */
    int8_t dcodes[16 * 40] = {0};
    dcodes[9 * 40 + 21] = 5;
    CHECK(gsq_mma_pack_dense(&w, dcodes, 16, 40, &err) == GSQ_OK, "%s", err.msg);
    CHECK(w.row_tiles == 1 && w.k_tiles == 2 && !w.e, "dense tiles %d × %d", w.row_tiles, w.k_tiles);
    int nonzero = 0;
    for (size_t i = 0; i < (size_t)2 * 32 * 4; i++) nonzero += w.a[i] != 0;
    CHECK(nonzero == 1 && w.a[5 * 4 + 3] == 0x00000500u, "dense (9, 21) lands in lane 5 register 3: 0x%08x",
          (unsigned)w.a[5 * 4 + 3]);
    gsq_mma_weight_free(&w);
}

/* The emulators on registers written by hand (not by the reorder), against D worked out from the
 * PTX tables: B register j of lane 4g + t holds column g, rows 16j + 4t to +3; D element i of
 * that lane is row g + 8(i>>1), column 2t + (i&1). */
static void test_emulate_pinned(void)
{
    gsq_mma_warp w;
    gsq_error err = {0};
    memset(&w, 0, sizeof w);
    for (int lane = 0; lane < 32; lane++) w.e[lane] = 0x44444444u;
    /* A(9, 42) = 5 as packed above; B(42, 3) = 7: j 2, 42 - 32 = 8 + 4·2 → t 2, byte 2, g 3 → lane 14 */
    w.a[5][3] = 0x00000500u;
    w.e[7] = 0x44444844u;
    w.b[14][2] = 0x00070000u;
    /* A(2, 5) = -3, A(2, 7) = 9; B(5, 6) = 2, B(7, 6) = 4: j 0, t 1, bytes 1 and 3, g 6 → lane 25 */
    w.a[8][0] = 0x09FD0000u;
    w.e[8] = 0x444444D4u;
    w.b[25][0] = 0x04000200u;
    /* A(10, 22) = 7 (metadata on a t = 1 lane); B(22, 1) = 3: j 1, 22 - 16 = 4·1 + 2 → t 1, byte 2,
     * g 1 → lane 5; D(10, 1) = 21 at g 2, t 0, element 3 → lane 8 */
    w.a[10][1] = 0x07000000u;
    w.e[9] = 0x44844444u;
    w.b[5][1] = 0x00030000u;
    w.c[5][3] = 100; /* D(9, 3): g 1, t 1, element 3 */
    w.c[0][0] = -1;  /* D(0, 0) */
    CHECK(gsq_mma_sp_emulate(&w, &err) == GSQ_OK, "%s", err.msg);
    int others = 0;
    for (int lane = 0; lane < 32; lane++)
        for (int i = 0; i < 4; i++)
            if (!((lane == 5 && i == 3) || (lane == 11 && i == 0) || (lane == 0 && i == 0) || (lane == 8 && i == 3)))
                others += w.c[lane][i] != 0;
    /* D(9, 3) = 5·7 + 100; D(2, 6) = -3·2 + 9·4 = 30 at g 2, t 3, element 0 → lane 11 */
    CHECK(w.c[5][3] == 135 && w.c[11][0] == 30 && w.c[0][0] == -1 && w.c[8][3] == 21 && others == 0,
          "sparse D: (9,3) %d (2,6) %d (0,0) %d (10,1) %d, %d others non-zero", w.c[5][3], w.c[11][0], w.c[0][0],
          w.c[8][3], others);

    /* undefined metadata: 0x0 (the padding mistake), 0x1 (indices 1, 0: unordered), 0xF (3, 3) */
    const uint32_t bad[] = {0x44440444u, 0x14444444u, 0x4444F444u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&w, 0, sizeof w);
        for (int lane = 0; lane < 32; lane++) w.e[lane] = 0x44444444u;
        w.e[3] = bad[i];
        CHECK(gsq_mma_sp_emulate(&w, &err) == GSQ_ERR_FORMAT && strstr(err.msg, "lane 3"), "metadata 0x%08x: %s",
              (unsigned)bad[i], err.msg);
    }

    /* dense: A(9, 21) = 5 (lane 5, register 3, byte 1); B(21, 3) = 7: j 1, 21 - 16 = 4·1 + 1 → t 1, byte 1,
     * g 3 → lane 13; D(9, 3) = 35 at lane 5 element 3 */
    memset(&w, 0, sizeof w);
    w.a[5][3] = 0x00000500u;
    w.b[13][1] = 0x00000700u;
    gsq_mma_dense_emulate(&w);
    others = 0;
    for (int lane = 0; lane < 32; lane++)
        for (int i = 0; i < 4; i++) others += (lane != 5 || i != 3) && w.c[lane][i] != 0;
    CHECK(w.c[5][3] == 35 && others == 0, "dense D(9,3) = %d, %d others non-zero", w.c[5][3], others);
}

static void test_pack_rejects(void)
{
    gsq_mma_weight w;
    gsq_error err = {0};
    int8_t values[8] = {0};
    uint16_t meta[2] = {0x4444, 0x4444};
    CHECK(gsq_mma_pack_sparse(&w, values, meta, 1, 6, &err) == GSQ_ERR_ARG, "6 inputs are not 2:4 groups");
    CHECK(gsq_mma_pack_dense(&w, (const int8_t *)values, 0, 4, &err) == GSQ_ERR_ARG, "no rows");
    meta[0] = 0x4454; /* group 1: indices 1, 1 */
    meta[1] = 0x4544; /* row 1, group 2: indices 1, 1 */
    CHECK(gsq_mma_pack_sparse(&w, values, meta, 1, 16, &err) == GSQ_ERR_FORMAT && strstr(err.msg, "row 0 group 1"),
          "%s", err.msg);
    meta[0] = 0x4444;
    CHECK(gsq_mma_pack_sparse(&w, values, meta, 2, 16, &err) == GSQ_ERR_FORMAT && strstr(err.msg, "row 1 group 2"),
          "%s", err.msg);
    CHECK(!w.a && !w.e, "a refused weight owns no memory");
}

/* A random int8 code in [-127, 127], non-zero. */
static int8_t random_code(gsq_rng *rng)
{
    int v = (int)(gsq_rng_u32(rng) % 254) - 127;
    return (int8_t)(v >= 0 ? v + 1 : v);
}

/* Random codes (rows, cols): 2:4 (each group 0, 1 or 2 non-zeros at random places, mostly 2) or
 * fully dense. */
static void random_codes(int8_t *codes, int rows, int cols, int sparse, gsq_rng *rng)
{
    for (size_t i = 0; i < (size_t)rows * cols; i++) codes[i] = sparse ? 0 : random_code(rng);
    if (!sparse) return;
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < cols / 4; g++) {
            int keep = (int)(gsq_rng_u32(rng) % 8), first = (int)(gsq_rng_u32(rng) % 4);
            int n = keep == 0 ? 0 : (keep == 1 ? 1 : 2), second = (first + 1 + (int)(gsq_rng_u32(rng) % 3)) % 4;
            if (n >= 1) codes[(size_t)r * cols + 4 * g + first] = random_code(rng);
            if (n == 2) codes[(size_t)r * cols + 4 * g + second] = random_code(rng);
        }
}

/* Reorder + emulated GEMM against a dense loop and (2:4 only) the engine's reference kernel. */
static void check_gemm(int rows, int cols, int M, int sparse, gsq_rng *rng)
{
    int ldx = cols + 3, ldacc = rows + 1;
    int8_t *codes = malloc((size_t)rows * cols), *x = malloc((size_t)M * ldx), *values = malloc((size_t)rows * cols);
    uint16_t *meta = malloc(sizeof(uint16_t) * (size_t)rows * (cols / 16 + 1));
    int32_t *acc = malloc(sizeof(int32_t) * (size_t)M * ldacc);
    float *xf = malloc(sizeof(float) * (size_t)M * cols), *y = malloc(sizeof(float) * (size_t)M * rows);
    float *ones = malloc(sizeof(float) * (size_t)rows);
    random_codes(codes, rows, cols, sparse, rng);
    for (size_t i = 0; i < (size_t)M * ldx; i++) x[i] = random_code(rng);
    for (int n = 0; n < rows; n++) ones[n] = 1.0f;
    for (size_t i = 0; i < (size_t)M * ldacc; i++) acc[i] = 0x5A5A5A5A; /* every entry must be written */

    gsq_mma_weight w;
    gsq_error err = {0};
    gsq_status st;
    if (sparse) {
        compress(codes, rows, cols, values, meta);
        st = gsq_mma_pack_sparse(&w, values, meta, rows, cols, &err);
    } else {
        st = gsq_mma_pack_dense(&w, codes, rows, cols, &err);
    }
    CHECK(st == GSQ_OK, "%s", err.msg);
    if (st == GSQ_OK) {
        CHECK(gsq_mma_gemm_emulate(acc, ldacc, x, ldx, M, &w, &err) == GSQ_OK, "%s", err.msg);
        gsq_mma_weight_free(&w);
    }
    int bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < rows; n++) {
            int32_t ref = 0;
            for (int k = 0; k < cols; k++) ref += (int32_t)x[(size_t)m * ldx + k] * codes[(size_t)n * cols + k];
            if (acc[(size_t)m * ldacc + n] != ref && bad++ < 3)
                fprintf(stderr, "%s %d×%d M %d: acc[%d][%d] = %d, dense loop %d\n", sparse ? "2:4" : "dense", rows, cols,
                        M, m, n, acc[(size_t)m * ldacc + n], ref);
        }
    CHECK(bad == 0, "%s %d × %d, M %d: %d sums differ from the dense loop", sparse ? "2:4" : "dense", rows, cols, M, bad);

    if (sparse) { /* the CPU engine's reference kernel on the same codes, unit epilogue: y = (float)Σ exactly */
        gsq_i8_owned_weight o;
        CHECK(gsq_i8_pack(&o, codes, rows, cols, GSQ_I8_SPARSE_2_4, 0, GSQ_I8_ISA_REF, &err) == GSQ_OK, "%s", err.msg);
        for (int m = 0; m < M; m++)
            for (int k = 0; k < cols; k++) xf[(size_t)m * cols + k] = x[(size_t)m * ldx + k];
        uint8_t *xq = malloc(gsq_i8_xq_bytes(M, cols));
        gsq_i8_quantize(GSQ_I8_ISA_REF, xq, xf, M, cols, cols, 1.0f, 127);
        gsq_i8_epilogue ep = {.scale = ones, .bias = NULL, .accumulate = 0};
        gsq_i8_gemm_ref(y, rows, xq, M, &o.w, &ep);
        int diff = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < rows; n++) diff += (float)acc[(size_t)m * ldacc + n] != y[(size_t)m * rows + n];
        CHECK(diff == 0, "2:4 %d × %d, M %d: %d sums differ from gsq_i8_gemm_ref", rows, cols, M, diff);
        free(xq);
        gsq_i8_weight_free(&o);
    }
    free(codes);
    free(x);
    free(values);
    free(meta);
    free(acc);
    free(xf);
    free(y);
    free(ones);
}

int main(void)
{
    test_coverage();
    test_pack_pinned();
    test_emulate_pinned();
    test_pack_rejects();
    gsq_rng rng;
    gsq_rng_seed(&rng, 24, 1);
    /* rows × cols (K), M tokens: single tiles, one past a tile, K not a multiple of 64, many tiles */
    const int shapes[][3] = {{1, 4, 1},   {16, 64, 8},  {17, 68, 9},  {33, 132, 31},
                             {200, 300, 197}, {5, 1540, 3}, {48, 384, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int sparse = 0; sparse < 2; sparse++) check_gemm(shapes[s][0], shapes[s][1], shapes[s][2], sparse, &rng);
    const int dense_only[][3] = {{7, 13, 5}, {20, 75, 11}, {3, 1, 2}}; /* K not a multiple of 4 */
    for (size_t s = 0; s < sizeof dense_only / sizeof dense_only[0]; s++)
        check_gemm(dense_only[s][0], dense_only[s][1], dense_only[s][2], 0, &rng);
    return test_finish("test_sparse_mma_layout");
}
