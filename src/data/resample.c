/* Bicubic resize with Pillow's numerics (Image.resize(size, Image.BICUBIC), which timm's
 * transforms use through torchvision): a separable convolution in two passes (in Pillow 13's
 * order), with Keys' cubic kernel (a = -0.5) whose support is stretched by the scale factor when
 * shrinking (antialiasing), weights normalised per output pixel and rounded to 22-bit fixed
 * point, and each pass rounded back to 8 bits with clamping. The result matches Pillow 13's bytes
 * exactly (tests/test_transforms.c; the measurements are in docs/DATA.md). The bilinear resize
 * and the labels' nearest-neighbour resize of the segmentation transforms follow at the end. */
#include "data/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ONE_FIXED (1 << GSQ_RESAMPLE_PRECISION_BITS)

/* Keys' cubic convolution kernel with a = -0.5 (Pillow's BICUBIC), support 2. */
static double cubic_kernel(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* The filters of one axis, for output positions [first, first + count) of a resize from in_size
 * to out_size samples: output first + i reads inputs [start[i], start[i] + taps[i]) with the
 * fixed-point weights w[i·ksize ...]. */
typedef struct {
    int ksize;
    int *start, *taps;
    int32_t *w;
} axis_filter;

static void axis_free(axis_filter *f)
{
    free(f->start);
    free(f->taps);
    free(f->w);
    memset(f, 0, sizeof *f);
}

/* Returns 0 on allocation failure. */
static int axis_build(axis_filter *f, int in_size, int out_size, int first, int count)
{
    memset(f, 0, sizeof *f);
    double scale = (double)in_size / (double)out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    double inv = 1.0 / filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    int identity = in_size == out_size; /* Pillow skips this pass entirely */
    if (identity) ksize = 1;
    f->ksize = ksize;
    size_t n = count > 0 ? (size_t)count : 1;
    f->start = malloc(n * sizeof *f->start);
    f->taps = malloc(n * sizeof *f->taps);
    f->w = malloc(n * (size_t)ksize * sizeof *f->w);
    double *k = malloc((size_t)ksize * sizeof *k);
    if (!f->start || !f->taps || !f->w || !k) {
        free(k);
        axis_free(f);
        return 0;
    }
    for (int i = 0; i < count; i++) {
        int o = first + i;
        int32_t *w = f->w + (size_t)i * ksize;
        if (identity) {
            f->start[i] = o;
            f->taps[i] = 1;
            w[0] = ONE_FIXED;
            continue;
        }
        /* the output sample's centre in input coordinates, and the inputs within the support
         * (bounds rounded to the nearest pixel edge, clipped to the image) */
        double center = ((double)o + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int taps = hi - lo;
        if (taps > ksize) taps = ksize;
        double sum = 0.0;
        for (int x = 0; x < taps; x++) {
            k[x] = cubic_kernel(((double)(x + lo) - center + 0.5) * inv);
            sum += k[x];
        }
        for (int x = 0; x < taps; x++) {
            double v = sum != 0.0 ? k[x] / sum : k[x];
            /* to fixed point, rounding half away from zero */
            w[x] = (int32_t)(v < 0.0 ? -0.5 + v * ONE_FIXED : 0.5 + v * ONE_FIXED);
        }
        f->start[i] = lo;
        f->taps[i] = taps;
    }
    free(k);
    return 1;
}

/* A fixed-point sum (with the half already added) back to 8 bits, clamped. */
static inline uint8_t clip8(int64_t acc)
{
    if (acc <= 0) return 0;
    acc >>= GSQ_RESAMPLE_PRECISION_BITS;
    return acc > 255 ? 255 : (uint8_t)acc;
}

/* Horizontal pass: out (rows, count, 3) from in (rows, ..., 3), whose column 0 is input column
 * `col0`; rows are in_stride / out_stride bytes apart. */
static void pass_horizontal(const uint8_t *in, size_t in_stride, int rows, const axis_filter *f,
                            int count, int col0, uint8_t *out, size_t out_stride)
{
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = in + (size_t)r * in_stride;
        uint8_t *o = out + (size_t)r * out_stride;
        for (int i = 0; i < count; i++) {
            const int32_t *w = f->w + (size_t)i * f->ksize;
            const uint8_t *p = row + (size_t)(f->start[i] - col0) * 3;
            int64_t a0 = ONE_FIXED / 2, a1 = ONE_FIXED / 2, a2 = ONE_FIXED / 2;
            for (int x = 0; x < f->taps[i]; x++) {
                a0 += (int64_t)p[3 * x + 0] * w[x];
                a1 += (int64_t)p[3 * x + 1] * w[x];
                a2 += (int64_t)p[3 * x + 2] * w[x];
            }
            o[3 * i + 0] = clip8(a0);
            o[3 * i + 1] = clip8(a1);
            o[3 * i + 2] = clip8(a2);
        }
    }
}

/* Vertical pass: out (count, bytes) from in (..., bytes), whose row 0 is input row `row0`. */
static void pass_vertical(const uint8_t *in, size_t in_stride, size_t bytes, const axis_filter *f,
                          int count, int row0, uint8_t *out, size_t out_stride)
{
    for (int j = 0; j < count; j++) {
        const int32_t *w = f->w + (size_t)j * f->ksize;
        const uint8_t *base = in + (size_t)(f->start[j] - row0) * in_stride;
        uint8_t *o = out + (size_t)j * out_stride;
        for (size_t i = 0; i < bytes; i++) {
            int64_t acc = ONE_FIXED / 2;
            for (int y = 0; y < f->taps[j]; y++)
                acc += (int64_t)base[(size_t)y * in_stride + i] * w[y];
            o[i] = clip8(acc);
        }
    }
}

/* The input range [*lo, *hi) that the filters of `count` outputs read. */
static void axis_span(const axis_filter *f, int count, int *lo, int *hi)
{
    *lo = f->start[0];
    *hi = f->start[0] + f->taps[0];
    for (int i = 1; i < count; i++) {
        if (f->start[i] < *lo) *lo = f->start[i];
        if (f->start[i] + f->taps[i] > *hi) *hi = f->start[i] + f->taps[i];
    }
}

gsq_status gsq_resize_bicubic(const uint8_t *src, int src_w, int src_h, size_t src_stride,
                              int out_w, int out_h, int x0, int y0, int win_w, int win_h,
                              uint8_t *dst, gsq_error *err)
{
    if (!src || !dst || src_w < 1 || src_h < 1 || out_w < 1 || out_h < 1 || win_w < 1 ||
        win_h < 1 || src_stride < (size_t)src_w * 3)
        return gsq_fail(err, GSQ_ERR_ARG,
                        "bicubic resize: bad arguments (source %dx%d stride %zu, output %dx%d, "
                        "window %dx%d)", src_w, src_h, src_stride, out_w, out_h, win_w, win_h);
    memset(dst, 0, (size_t)win_w * win_h * 3);

    /* the part of the window that lies inside the resized image */
    int cx0 = x0 < 0 ? 0 : x0, cy0 = y0 < 0 ? 0 : y0;
    int cx1 = x0 + win_w < out_w ? x0 + win_w : out_w;
    int cy1 = y0 + win_h < out_h ? y0 + win_h : out_h;
    if (cx1 <= cx0 || cy1 <= cy0) return GSQ_OK;
    int nc = cx1 - cx0, nr = cy1 - cy0;
    uint8_t *o = dst + ((size_t)(cy0 - y0) * win_w + (cx0 - x0)) * 3;
    size_t o_stride = (size_t)win_w * 3;

    axis_filter fx, fy;
    if (!axis_build(&fx, src_w, out_w, cx0, nc))
        return gsq_fail(err, GSQ_ERR_NOMEM, "bicubic resize: out of memory for %d filters", nc);
    if (!axis_build(&fy, src_h, out_h, cy0, nr)) {
        axis_free(&fx);
        return gsq_fail(err, GSQ_ERR_NOMEM, "bicubic resize: out of memory for %d filters", nr);
    }

    /* Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height loses
     * more than twice as many pixels as the width; before, the horizontal pass always came
     * first. The 8-bit rounding between the passes makes the order visible in the bytes. */
    int64_t lose_h = (int64_t)src_h - out_h, lose_w = (int64_t)src_w - out_w;
    int vertical_first = lose_h > 0 && lose_h > 2 * lose_w;
    int lo, hi;
    axis_span(vertical_first ? &fx : &fy, vertical_first ? nc : nr, &lo, &hi);
    size_t tmp_stride = (size_t)(vertical_first ? hi - lo : nc) * 3;
    int tmp_rows = vertical_first ? nr : hi - lo;
    uint8_t *tmp = malloc(tmp_stride * (size_t)tmp_rows);
    if (!tmp) {
        axis_free(&fx);
        axis_free(&fy);
        return gsq_fail(err, GSQ_ERR_NOMEM, "bicubic resize: out of memory for a %zux%d pass",
                        tmp_stride / 3, tmp_rows);
    }
    if (vertical_first) {
        /* tmp (nr, columns lo..hi, 3), then the window's columns from it */
        pass_vertical(src + (size_t)lo * 3, src_stride, tmp_stride, &fy, nr, 0, tmp, tmp_stride);
        pass_horizontal(tmp, tmp_stride, nr, &fx, nc, lo, o, o_stride);
    } else {
        /* tmp (rows lo..hi, nc, 3), then the window's rows from it */
        pass_horizontal(src + (size_t)lo * src_stride, src_stride, hi - lo, &fx, nc, 0, tmp,
                        tmp_stride);
        pass_vertical(tmp, tmp_stride, tmp_stride, &fy, nr, lo, o, o_stride);
    }
    free(tmp);
    axis_free(&fx);
    axis_free(&fy);
    return GSQ_OK;
}

/* --- bilinear and nearest-neighbour (segmentation) -------------------------------------------- */

static gsq_status check_window(const char *what, int src_w, int src_h, int out_w, int out_h, int x0,
                               int y0, int win_w, int win_h, gsq_error *err)
{
    if (src_w < 1 || src_h < 1 || out_w < 1 || out_h < 1 || win_w < 1 || win_h < 1 || x0 < 0 || y0 < 0 ||
        x0 > out_w - win_w || y0 > out_h - win_h)
        return gsq_fail(err, GSQ_ERR_ARG, "%s resize: bad arguments (source %dx%d, output %dx%d, window %dx%d at "
                        "%d,%d)", what, src_w, src_h, out_w, out_h, win_w, win_h, x0, y0);
    return GSQ_OK;
}

/* One axis of a bilinear resize for outputs [first, first + count): output first + i blends
 * inputs lo[i] and hi[i] with weight w[i] on hi. */
static void bilinear_axis(int in_size, int out_size, int first, int count, int *lo, int *hi, float *w)
{
    double scale = (double)in_size / (double)out_size;
    for (int i = 0; i < count; i++) {
        double f = ((double)(first + i) + 0.5) * scale - 0.5;
        if (f < 0.0) f = 0.0;
        int i0 = (int)f;
        if (i0 >= in_size - 1) {
            lo[i] = hi[i] = in_size - 1;
            w[i] = 0.0f;
        } else {
            lo[i] = i0;
            hi[i] = i0 + 1;
            w[i] = (float)(f - (double)i0);
        }
    }
}

gsq_status gsq_resize_bilinear(const uint8_t *src, int src_w, int src_h, size_t src_stride,
                               int out_w, int out_h, int x0, int y0, int win_w, int win_h,
                               uint8_t *dst, gsq_error *err)
{
    if (!src || !dst || src_stride < (size_t)src_w * 3)
        return gsq_fail(err, GSQ_ERR_ARG, "bilinear resize: NULL buffer or stride %zu below %d pixels",
                        src_stride, src_w);
    gsq_status st = check_window("bilinear", src_w, src_h, out_w, out_h, x0, y0, win_w, win_h, err);
    if (st != GSQ_OK) return st;
    size_t n = (size_t)win_w + (size_t)win_h;
    int *idx = malloc(2 * n * sizeof *idx);
    float *w = malloc(n * sizeof *w);
    if (!idx || !w) {
        free(idx);
        free(w);
        return gsq_fail(err, GSQ_ERR_NOMEM, "bilinear resize: out of memory for a %dx%d window", win_w, win_h);
    }
    int *xlo = idx, *xhi = idx + win_w, *ylo = idx + 2 * (size_t)win_w, *yhi = ylo + win_h;
    float *wx = w, *wy = w + win_w;
    bilinear_axis(src_w, out_w, x0, win_w, xlo, xhi, wx);
    bilinear_axis(src_h, out_h, y0, win_h, ylo, yhi, wy);
    for (int y = 0; y < win_h; y++) {
        const uint8_t *r0 = src + (size_t)ylo[y] * src_stride, *r1 = src + (size_t)yhi[y] * src_stride;
        uint8_t *o = dst + (size_t)y * win_w * 3;
        for (int x = 0; x < win_w; x++) {
            const uint8_t *a = r0 + (size_t)xlo[x] * 3, *b = r0 + (size_t)xhi[x] * 3;
            const uint8_t *c = r1 + (size_t)xlo[x] * 3, *d = r1 + (size_t)xhi[x] * 3;
            for (int k = 0; k < 3; k++) {
                float top = (1.0f - wx[x]) * (float)a[k] + wx[x] * (float)b[k];
                float bottom = (1.0f - wx[x]) * (float)c[k] + wx[x] * (float)d[k];
                o[3 * x + k] = (uint8_t)((1.0f - wy[y]) * top + wy[y] * bottom + 0.5f);
            }
        }
    }
    free(idx);
    free(w);
    return GSQ_OK;
}

/* The input index that holds the centre of output o: floor((2o + 1)·in / (2·out)), exactly. */
static int nearest_index(int o, int in_size, int out_size)
{
    return (int)(((2 * (int64_t)o + 1) * in_size) / (2 * (int64_t)out_size));
}

gsq_status gsq_resize_nearest_labels(const int16_t *src, int src_w, int src_h, int out_w, int out_h,
                                     int x0, int y0, int win_w, int win_h, int16_t *dst,
                                     gsq_error *err)
{
    if (!src || !dst) return gsq_fail(err, GSQ_ERR_ARG, "nearest resize: NULL buffer");
    gsq_status st = check_window("nearest", src_w, src_h, out_w, out_h, x0, y0, win_w, win_h, err);
    if (st != GSQ_OK) return st;
    int *cols = malloc((size_t)win_w * sizeof *cols);
    if (!cols) return gsq_fail(err, GSQ_ERR_NOMEM, "nearest resize: out of memory for %d columns", win_w);
    for (int x = 0; x < win_w; x++) cols[x] = nearest_index(x0 + x, src_w, out_w);
    for (int y = 0; y < win_h; y++) {
        const int16_t *row = src + (size_t)nearest_index(y0 + y, src_h, out_h) * src_w;
        int16_t *o = dst + (size_t)y * win_w;
        for (int x = 0; x < win_w; x++) o[x] = row[cols[x]];
    }
    free(cols);
    return GSQ_OK;
}
