/* Swin's token rearrangements: shifted-window partition and its reverse (each the other's
 * backward), and the 2×2 patch-merging gather. Pure index maps over rows of C floats. */
#include "gpusq/nn.h"

#include <stddef.h>
#include <string.h>

void gsq_window_position(gsq_window_geom w, int i, int *r, int *c)
{
    int area = w.window * w.window, side = (w.grid + w.window - 1) / w.window;
    int win = i / area, t = i % area;
    *r = win / side * w.window + t / w.window;
    *c = win % side * w.window + t % w.window;
}

int gsq_window_source(gsq_window_geom w, int i)
{
    int r, c;
    gsq_window_position(w, i, &r, &c);
    if (r >= w.grid || c >= w.grid) return -1; /* padding */
    r = (r + w.shift) % w.grid, c = (c + w.shift) % w.grid; /* undo the roll by -shift */
    return r * w.grid + c;
}

void gsq_window_rows(gsq_window_geom w, int reverse, int *map)
{
    int rows = gsq_window_count(w) * w.window * w.window;
    for (int i = 0; i < rows; i++) {
        int src = gsq_window_source(w, i);
        if (!reverse) map[i] = src;
        else if (src >= 0) map[src] = i; /* each grid token sits in exactly one window row */
    }
}

void gsq_merge_rows(int G, int *map)
{
    int M = (G + 1) / 2;
    for (int t = 0; t < M * M; t++)
        for (int k = 0; k < 4; k++) map[t * 4 + k] = gsq_merge_source(G, t / M, t % M, k);
}

void gsq_windows_from_grid(float *win, const float *x, int B, int C, gsq_window_geom w, int accumulate)
{
    int rows = gsq_window_count(w) * w.window * w.window, G2 = w.grid * w.grid;
    #pragma omp parallel for schedule(static)
    for (int bi = 0; bi < B * rows; bi++) {
        int b = bi / rows, src = gsq_window_source(w, bi % rows);
        float *dst = win + (size_t)bi * C;
        if (src < 0) {
            if (!accumulate) memset(dst, 0, (size_t)C * sizeof(float));
            continue;
        }
        const float *s = x + ((size_t)b * G2 + src) * C;
        if (accumulate)
            for (int c = 0; c < C; c++) dst[c] += s[c];
        else
            memcpy(dst, s, (size_t)C * sizeof(float));
    }
}

void gsq_windows_to_grid(float *x, const float *win, int B, int C, gsq_window_geom w, int accumulate)
{
    int rows = gsq_window_count(w) * w.window * w.window, G2 = w.grid * w.grid;
    #pragma omp parallel for schedule(static)
    for (int bi = 0; bi < B * rows; bi++) {
        int b = bi / rows, dst_row = gsq_window_source(w, bi % rows);
        if (dst_row < 0) continue;
        const float *s = win + (size_t)bi * C;
        float *dst = x + ((size_t)b * G2 + dst_row) * C;
        if (accumulate)
            for (int c = 0; c < C; c++) dst[c] += s[c];
        else
            memcpy(dst, s, (size_t)C * sizeof(float));
    }
}

int gsq_merge_source(int G, int i, int j, int k)
{
    int r = 2 * i + (k & 1), c = 2 * j + (k >> 1);
    return r < G && c < G ? r * G + c : -1;
}

void gsq_merge_forward(float *out, const float *x, int B, int G, int C)
{
    int M = (G + 1) / 2;
    #pragma omp parallel for schedule(static)
    for (int bij = 0; bij < B * M * M; bij++) {
        int b = bij / (M * M), i = bij / M % M, j = bij % M;
        for (int k = 0; k < 4; k++) {
            int src = gsq_merge_source(G, i, j, k);
            float *dst = out + ((size_t)bij * 4 + k) * C;
            if (src < 0) memset(dst, 0, (size_t)C * sizeof(float));
            else memcpy(dst, x + ((size_t)b * G * G + src) * C, (size_t)C * sizeof(float));
        }
    }
}

void gsq_merge_backward(float *dx, const float *dout, int B, int G, int C)
{
    if (!dx) return;
    int M = (G + 1) / 2;
    #pragma omp parallel for schedule(static)
    for (int bij = 0; bij < B * M * M; bij++) { /* every grid token is read by one merged token */
        int b = bij / (M * M), i = bij / M % M, j = bij % M;
        for (int k = 0; k < 4; k++) {
            int src = gsq_merge_source(G, i, j, k);
            if (src < 0) continue;
            const float *s = dout + ((size_t)bij * 4 + k) * C;
            float *d = dx + ((size_t)b * G * G + src) * C;
            for (int c = 0; c < C; c++) d[c] += s[c];
        }
    }
}
