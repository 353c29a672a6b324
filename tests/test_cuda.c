/* CUDA backend: the GPU reference GEMM equals the CPU reference; the INT8 tensor-core GEMMs (2:4
 * sparse on mma.sp, dense on mma) give the exact int32 sums of a CPU dense loop on random data and
 * awkward shapes, and their fused epilogues the CPU engine's epilogue bit for bit (GELU within
 * CUDA's erff error); a single non-zero swept over every position of a weight tile lands where
 * the CPU reference puts it (the register layout on real hardware); the cuBLASLt baselines give
 * exact sums too. Skips (exit 0, reported) where the build has no CUDA or the machine no GPU. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/int8_gemm.h"
#include "gpusq/cuda.h"
#include "gpusq/half.h"
#include "gpusq/kernels.h"
#include "gpusq/sparse.h"
#include "test_util.h"

static void test_sgemm_ref(gsq_rng *rng)
{
    gsq_error err = {0};
    const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {197, 96, 65}, {64, 192, 64}, {3, 5, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int tr = 0; tr < 4; tr++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            bool ta = tr & 1, tb = tr & 2;
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
            float *A = malloc(sizeof(float) * (size_t)(K + 1) * (M + 4) * 2);
            float *B = malloc(sizeof(float) * (size_t)(K + 1) * (N + 4) * 2);
            float *C1 = malloc(sizeof(float) * (size_t)M * ldc), *C2 = malloc(sizeof(float) * (size_t)M * ldc);
            fill_normal(A, (size_t)(K + 1) * (M + 4) * 2, rng, 1.0f);
            fill_normal(B, (size_t)(K + 1) * (N + 4) * 2, rng, 1.0f);
            fill_normal(C1, (size_t)M * ldc, rng, 1.0f);
            for (size_t i = 0; i < (size_t)M * ldc; i++) C2[i] = C1[i];
            gsq_sgemm_ref(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C1, ldc);
            CHECK(gsq_cuda_sgemm_ref(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C2, ldc, &err) == GSQ_OK, "%s", err.msg);
            /* both accumulate in double and round once: equal up to the final fma rounding */
            CHECK(max_rel_err(C2, C1, (size_t)M * ldc) < 1e-6, "shape %d×%d×%d trans %d%d", M, N, K, ta, tb);
            free(A);
            free(B);
            free(C1);
            free(C2);
        }
    }
}

/* A device copy of `bytes` of host (uninitialized when host is NULL). */
static void *dev_copy(const void *host, size_t bytes)
{
    void *d = NULL;
    gsq_error err = {0};
    CHECK(gsq_cuda_malloc(&d, bytes, &err) == GSQ_OK, "%s", err.msg);
    if (d && host) CHECK(gsq_cuda_upload(d, host, bytes, &err) == GSQ_OK, "%s", err.msg);
    return d;
}

/* Runs the GEMM and copies `bytes` of its output back into host. */
static void run_gemm(const gsq_cuda_i8_weight *w, const int8_t *dx, int ldx, int M, const gsq_cuda_epilogue *e,
                     void *dy, int ldy, void *host, size_t bytes)
{
    gsq_error err = {0};
    CHECK(gsq_cuda_i8_gemm(w, dx, ldx, M, e, dy, ldy, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_cuda_synchronize(&err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_cuda_download(host, dy, bytes, &err) == GSQ_OK, "%s", err.msg);
}

/* The weight of codes (rows, cols) on the device: 2:4 through the file's compressed form, or dense. */
static gsq_cuda_i8_weight *upload_weight(const int8_t *codes, int rows, int cols, int sparse)
{
    gsq_cuda_i8_weight *w = NULL;
    gsq_error err = {0};
    if (!sparse) {
        CHECK(gsq_cuda_i8_weight_dense(&w, codes, rows, cols, &err) == GSQ_OK, "%s", err.msg);
        return w;
    }
    int words = gsq_sparse_meta_words(GSQ_SPARSE_2_4, cols);
    int8_t *values = malloc((size_t)rows * cols / 2);
    uint16_t *meta = calloc((size_t)rows * words, sizeof(uint16_t));
    for (int r = 0; r < rows; r++)
        gsq_sparse_compress_row(codes + (size_t)r * cols, cols, GSQ_SPARSE_2_4, values + (size_t)r * cols / 2, meta + (size_t)r * words);
    CHECK(gsq_cuda_i8_weight_sparse(&w, values, meta, rows, cols, &err) == GSQ_OK, "%s", err.msg);
    free(values);
    free(meta);
    return w;
}

static int8_t random_code(gsq_rng *rng)
{
    return (int8_t)((int)(gsq_rng_u32(rng) % 255) - 127);
}

/* Codes (rows, cols) at random, pruned to 2:4 by magnitude when sparse (some groups keep a zero). */
static void random_weight(int8_t *codes, int rows, int cols, int sparse, gsq_rng *rng)
{
    size_t n = (size_t)rows * cols;
    float *wf = malloc(sizeof(float) * n);
    uint8_t *mask = malloc(n);
    for (size_t i = 0; i < n; i++) wf[i] = random_code(rng);
    if (sparse) gsq_sparse_mask_magnitude(wf, rows, cols, GSQ_SPARSE_2_4, mask);
    for (size_t i = 0; i < n; i++) codes[i] = (int8_t)(sparse && !mask[i] ? 0 : wf[i]);
    free(wf);
    free(mask);
}

/* One weight through every output form of the epilogue against the CPU. */
static void check_i8_gemm(int rows, int cols, int M, int sparse, gsq_rng *rng)
{
    const char *kind = sparse ? "2:4" : "dense";
    int ldx = (cols + 3) / 4 * 4 + 4, ldy = rows + 3;
    size_t ny = (size_t)M * ldy;
    int8_t *codes = malloc((size_t)rows * cols), *x = malloc((size_t)M * ldx), *y8 = malloc(ny);
    int32_t *ref = malloc(sizeof(int32_t) * (size_t)M * rows), *y32 = malloc(sizeof(int32_t) * ny);
    float *scale = malloc(sizeof(float) * rows), *bias = malloc(sizeof(float) * rows);
    float *y0 = malloc(sizeof(float) * ny), *yf = malloc(sizeof(float) * ny), *v = calloc(ny, sizeof(float));
    random_weight(codes, rows, cols, sparse, rng);
    for (size_t i = 0; i < (size_t)M * ldx; i++) x[i] = random_code(rng);
    for (int n = 0; n < rows; n++) scale[n] = 1e-4f * (1.0f + gsq_rng_uniform(rng)), bias[n] = gsq_rng_normal(rng);
    fill_normal(y0, ny, rng, 1.0f);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < rows; n++) {
            int32_t s = 0;
            for (int k = 0; k < cols; k++) s += (int32_t)x[(size_t)m * ldx + k] * codes[(size_t)n * cols + k];
            ref[(size_t)m * rows + n] = s;
        }
    gsq_cuda_i8_weight *w = upload_weight(codes, rows, cols, sparse);
    int8_t *dx = dev_copy(x, (size_t)M * ldx);
    float *dscale = dev_copy(scale, sizeof(float) * rows), *dbias = dev_copy(bias, sizeof(float) * rows);
    void *dy = dev_copy(NULL, sizeof(float) * ny);
    if (!w || !dx || !dscale || !dbias || !dy) goto done;
    /* per 16-row tile and K step: 32 lanes × 16 bytes of codes, + 32 × 4 of metadata when 2:4 (5 bits a weight) */
    size_t tiles = (size_t)((rows + 15) / 16) * (size_t)((cols + (sparse ? 63 : 31)) / (sparse ? 64 : 32));
    CHECK(gsq_cuda_i8_weight_bytes(w) == tiles * (sparse ? 640 : 512), "%s %d × %d: %zu device bytes", kind, rows, cols,
          gsq_cuda_i8_weight_bytes(w));

    gsq_cuda_epilogue e = {.out = GSQ_CUDA_OUT_S32};
    run_gemm(w, dx, ldx, M, &e, dy, ldy, y32, sizeof(int32_t) * ny);
    int bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < rows; n++)
            if (y32[(size_t)m * ldy + n] != ref[(size_t)m * rows + n] && bad++ < 3)
                fprintf(stderr, "%s %d×%d M %d: sum[%d][%d] = %d, CPU %d\n", kind, rows, cols, M, m, n,
                        y32[(size_t)m * ldy + n], ref[(size_t)m * rows + n]);
    CHECK(bad == 0, "%s %d × %d, M %d: %d int32 sums differ from the CPU", kind, rows, cols, M, bad);

    /* float out, then accumulated into y0: the engine's epilogue (gsq_i8_epilogue_apply) to the bit */
    for (int accumulate = 0; accumulate < 2; accumulate++) {
        CHECK(gsq_cuda_upload(dy, y0, sizeof(float) * ny, NULL) == GSQ_OK, "upload y");
        e = (gsq_cuda_epilogue){.out = GSQ_CUDA_OUT_F32, .scale = dscale, .bias = dbias, .accumulate = accumulate};
        run_gemm(w, dx, ldx, M, &e, dy, ldy, yf, sizeof(float) * ny);
        gsq_i8_epilogue ce = {.scale = scale, .bias = bias, .accumulate = accumulate};
        bad = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < rows; n++) {
                float want = y0[(size_t)m * ldy + n];
                gsq_i8_epilogue_apply(&want, ref[(size_t)m * rows + n], &ce, n);
                bad += gsq_f32_bits(yf[(size_t)m * ldy + n]) != gsq_f32_bits(want);
                if (!accumulate) v[(size_t)m * ldy + n] = want;
            }
        CHECK(bad == 0, "%s %d × %d, M %d, accumulate %d: %d outputs differ from the CPU epilogue", kind, rows, cols, M,
              accumulate, bad);
    }

    /* GELU: the CPU epilogue's own function (gsq_gelu_approx), so bit for bit too */
    e = (gsq_cuda_epilogue){.out = GSQ_CUDA_OUT_F32, .scale = dscale, .bias = dbias, .gelu = 1};
    run_gemm(w, dx, ldx, M, &e, dy, ldy, yf, sizeof(float) * ny);
    gsq_i8_epilogue ge = {.scale = scale, .bias = bias, .gelu = 1};
    bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < rows; n++) {
            float want = 0.0f;
            gsq_i8_epilogue_apply(&want, ref[(size_t)m * rows + n], &ge, n);
            bad += gsq_f32_bits(yf[(size_t)m * ldy + n]) != gsq_f32_bits(want);
        }
    CHECK(bad == 0, "%s %d × %d, M %d: %d GELU outputs differ from the CPU epilogue", kind, rows, cols, M, bad);

    /* int8 codes for the next GEMM: rint(v · inv) clamped, with a scale that clamps some */
    float inv = 60.0f, q = 127.0f;
    e = (gsq_cuda_epilogue){.out = GSQ_CUDA_OUT_S8, .scale = dscale, .bias = dbias, .out_inv = inv, .out_qmax = 127};
    run_gemm(w, dx, ldx, M, &e, dy, ldy, y8, ny);
    bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < rows; n++) {
            float r = rintf(v[(size_t)m * ldy + n] * inv);
            r = r < -q ? -q : (r > q ? q : r);
            bad += y8[(size_t)m * ldy + n] != (int8_t)r;
        }
    CHECK(bad == 0, "%s %d × %d, M %d: %d int8 outputs differ from the CPU quantizer", kind, rows, cols, M, bad);

done:
    gsq_cuda_i8_weight_free(w);
    gsq_cuda_free(dx);
    gsq_cuda_free(dscale);
    gsq_cuda_free(dbias);
    gsq_cuda_free(dy);
    free(codes);
    free(x);
    free(y8);
    free(ref);
    free(y32);
    free(scale);
    free(bias);
    free(y0);
    free(yf);
    free(v);
}

/* One tile (16 × 64 sparse, 16 × 32 dense) with a single non-zero, moved over every position:
 * each run's int32 outputs must be the CPU's (column c of x at row r, zeros elsewhere), so a
 * register or metadata misplaced on the hardware shows up as the position it breaks. */
static void test_layout_probe(int sparse)
{
    enum { M = 8 };
    int cols = sparse ? 64 : 32, ldx = cols, wrong = 0;
    int8_t x[M * 64], codes[16 * 64];
    int32_t y[M * 16];
    for (int n = 0; n < M; n++)
        for (int k = 0; k < cols; k++) x[n * ldx + k] = (int8_t)(1 + (5 * k + 3 * n) % 120);
    int8_t *dx = dev_copy(x, sizeof x);
    void *dy = dev_copy(NULL, sizeof y);
    gsq_cuda_epilogue e = {.out = GSQ_CUDA_OUT_S32};
    for (int r = 0; r < 16 && dx && dy; r++)
        for (int c = 0; c < cols; c++) {
            memset(codes, 0, sizeof codes);
            codes[r * cols + c] = 1;
            gsq_cuda_i8_weight *w = upload_weight(codes, 16, cols, sparse);
            memset(y, 0x5A, sizeof y);
            if (w) run_gemm(w, dx, ldx, M, &e, dy, 16, y, sizeof y);
            gsq_cuda_i8_weight_free(w);
            int ok = 1;
            for (int n = 0; n < M; n++)
                for (int row = 0; row < 16; row++) ok &= y[n * 16 + row] == (row == r ? x[n * ldx + c] : 0);
            if (!ok && wrong++ < 4) {
                fprintf(stderr, "%s weight (%d, %d): token 0 gets", sparse ? "2:4" : "dense", r, c);
                for (int row = 0; row < 16; row++) fprintf(stderr, " %d", y[row]);
                fprintf(stderr, " (want x[0][%d] = %d in row %d)\n", c, x[c], r);
            }
        }
    CHECK(wrong == 0, "%s: %d single-non-zero positions land in the wrong place", sparse ? "2:4" : "dense", wrong);
    gsq_cuda_free(dx);
    gsq_cuda_free(dy);
}

/* cuBLASLt: INT8 sums exact; FP16 exact too on small integers (every sum below 2048). */
static void test_blas(gsq_rng *rng)
{
    const int shapes[][3] = {{8, 8, 32}, {197, 96, 64}, {64, 1152, 384}};
    gsq_error err = {0};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int half = 0; half < 2; half++) {
            int range = half ? 3 : 127, bad = 0;
            size_t esz = half ? 2 : 1, ysz = half ? 2 : 4;
            int8_t *x = malloc((size_t)M * K), *w = malloc((size_t)N * K);
            uint16_t *xh = malloc(2 * (size_t)M * K), *wh = malloc(2 * (size_t)N * K);
            void *y = malloc(ysz * (size_t)M * N);
            for (size_t i = 0; i < (size_t)M * K; i++) x[i] = (int8_t)((int)(gsq_rng_u32(rng) % (2 * range + 1)) - range);
            for (size_t i = 0; i < (size_t)N * K; i++) w[i] = (int8_t)((int)(gsq_rng_u32(rng) % (2 * range + 1)) - range);
            for (size_t i = 0; i < (size_t)M * K; i++) xh[i] = gsq_f32_to_f16(x[i]);
            for (size_t i = 0; i < (size_t)N * K; i++) wh[i] = gsq_f32_to_f16(w[i]);
            void *dx = dev_copy(half ? (void *)xh : (void *)x, esz * M * K);
            void *dw = dev_copy(half ? (void *)wh : (void *)w, esz * N * K), *dy = dev_copy(NULL, ysz * M * N);
            gsq_cuda_blas *p = NULL;
            gsq_cuda_blas_type type = half ? GSQ_CUDA_BLAS_F16 : GSQ_CUDA_BLAS_I8;
            CHECK(gsq_cuda_blas_create(&p, type, M, N, K, NULL, 0, &err) == GSQ_OK, "%s", err.msg);
            if (p && dx && dw && dy) {
                CHECK(gsq_cuda_blas_run(p, dx, dw, dy, &err) == GSQ_OK, "%s", err.msg);
                CHECK(gsq_cuda_synchronize(&err) == GSQ_OK, "%s", err.msg);
                CHECK(gsq_cuda_download(y, dy, ysz * M * N, &err) == GSQ_OK, "%s", err.msg);
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        int32_t sum = 0;
                        for (int k = 0; k < K; k++) sum += (int32_t)x[(size_t)m * K + k] * w[(size_t)n * K + k];
                        size_t at = (size_t)m * N + n;
                        bad += half ? gsq_f16_to_f32(((uint16_t *)y)[at]) != (float)sum : ((int32_t *)y)[at] != sum;
                    }
            }
            CHECK(bad == 0, "cuBLASLt %s %d × %d × %d: %d outputs differ", half ? "FP16" : "INT8", M, N, K, bad);
            gsq_cuda_blas_free(p);
            gsq_cuda_free(dx);
            gsq_cuda_free(dw);
            gsq_cuda_free(dy);
            free(x);
            free(w);
            free(xh);
            free(wh);
            free(y);
        }
    }
}

int main(void)
{
    if (gsq_cuda_device_count() == 0) {
        return test_skip("test_cuda", "no GPU present");
    }
    char name[256];
    gsq_error err = {0};
    CHECK(gsq_cuda_device_name(0, name, sizeof name, &err) == GSQ_OK, "%s", err.msg);
    printf("test_cuda: device %s\n", name);
    gsq_rng rng;
    gsq_rng_seed(&rng, 7, 1);
    test_sgemm_ref(&rng);
    test_layout_probe(1);
    test_layout_probe(0);
    /* rows (features) × cols (K), M tokens: one tile, one past, K not a multiple of 64 (or of 4,
     * dense only), more tokens than a block, the ViT sizes */
    const int shapes[][3] = {{1, 4, 1},     {17, 68, 9},  {200, 300, 197}, {64, 1540, 3},
                             {384, 384, 64}, {96, 384, 394}, {7, 13, 5},    {20, 75, 130}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int sparse = shapes[s][1] % 4 == 0; sparse >= 0; sparse--)
            check_i8_gemm(shapes[s][0], shapes[s][1], shapes[s][2], sparse, &rng);
    test_blas(&rng);
    return test_finish("test_cuda");
}
