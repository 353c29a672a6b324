/* Label maps and samples: allocation and release (a sample's image, map and objects), and
 * decoding a PNG of raw class values with libpng's classic API (the reader decode_png.c shares
 * through image_decode.h). One channel's samples are taken as they are stored: 8- or 16-bit gray
 * (1/2/4-bit gray unpacked, not scaled), a palette's indices (the palette itself ignored), or the
 * gray of gray+alpha; colour PNGs are refused, since their classes would be colours. 16-bit
 * values above 32767 do not fit a label. */
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "data/image_decode.h"

gsq_status gsq_label_map_alloc(gsq_label_map *map, int width, int height, gsq_error *err)
{
    if (!map) return gsq_fail(err, GSQ_ERR_ARG, "gsq_label_map_alloc: NULL map");
    memset(map, 0, sizeof *map);
    if (gsq_image_check_size(width, height, "label map", NULL) != GSQ_OK)
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_label_map_alloc: size %dx%d out of range", width,
                        height);
    map->labels = malloc((size_t)width * (size_t)height * sizeof *map->labels); /* <= 2^29 bytes */
    if (!map->labels)
        return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_label_map_alloc: out of memory for %dx%d labels",
                        width, height);
    map->width = width;
    map->height = height;
    return GSQ_OK;
}

void gsq_label_map_free(gsq_label_map *map)
{
    if (!map) return;
    free(map->labels);
    memset(map, 0, sizeof *map);
}

void gsq_sample_free(gsq_sample *s)
{
    if (!s) return;
    gsq_image_free(&s->image);
    gsq_label_map_free(&s->map);
    gsq_objects_free(&s->objects);
    memset(s, 0, sizeof *s);
}

/* All state that changes between setjmp and a longjmp lives here, outside read_rows' frame. */
typedef struct {
    gsq_png_reader r;
    gsq_label_map map;
    png_bytep *rows;
} label_job;

/* Reads the PNG's samples, one channel of 8 or 16 (*wide) bits, raw: each row's bytes into the
 * start of that row of job->map's labels, to be widened in place. */
static gsq_status read_rows(label_job *job, const unsigned char *data, size_t size,
                           const char *label, int *wide, gsq_error *err)
{
    gsq_status st = gsq_png_reader_open(&job->r, data, size, label, err);
    if (st != GSQ_OK) return st;
    png_structp png = job->r.png;
    png_infop info = job->r.info;
    if (setjmp(png_jmpbuf(png))) return gsq_png_reader_fail(&job->r, label, err);
    png_uint_32 width, height;
    int depth, color;
    st = gsq_png_read_header(&job->r, label, &width, &height, &depth, &color, err);
    if (st != GSQ_OK) return st;
    if (color == PNG_COLOR_TYPE_RGB || color == PNG_COLOR_TYPE_RGB_ALPHA)
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        GSQ_LBL ": a colour (%s) PNG is not a label map: label PNGs hold one "
                        "channel of class values (8- or 16-bit gray, or palette indices)",
                        label, color == PNG_COLOR_TYPE_RGB ? "RGB" : "RGBA");

    if (depth < 8) png_set_packing(png); /* one value per byte, unscaled */
    if (color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    *wide = depth == 16;
    if (png_get_channels(png, info) != 1 ||
        png_get_rowbytes(png, info) != (size_t)width * (*wide ? 2 : 1))
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": PNG (color type %d, %d-bit) did not "
                        "convert to one channel of values", label, color, depth);

    st = gsq_label_map_alloc(&job->map, (int)width, (int)height, err);
    if (st != GSQ_OK) return st;
    job->rows = malloc((size_t)height * sizeof *job->rows);
    if (!job->rows) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", label);
    for (png_uint_32 y = 0; y < height; y++)
        job->rows[y] = (png_bytep)(job->map.labels + (size_t)y * width);
    png_read_image(png, job->rows);
    return GSQ_OK;
}

/* Turns the raw samples read_rows left at the start of each row into that row's labels, in
 * place: 16-bit big-endian pairs from the left (each pair is its own label's bytes), bytes from
 * the right (label x's bytes 2x, 2x + 1 lie at or right of byte x, and are read already). */
static gsq_status widen_rows(gsq_label_map *map, int wide, const char *label, gsq_error *err)
{
    for (int y = 0; y < map->height; y++) {
        int16_t *row = map->labels + (size_t)y * (size_t)map->width;
        const unsigned char *raw = (const unsigned char *)row;
        if (!wide) {
            for (int x = map->width - 1; x >= 0; x--) row[x] = raw[x];
            continue;
        }
        for (int x = 0; x < map->width; x++) {
            unsigned v = (unsigned)raw[2 * x] << 8 | raw[2 * x + 1];
            if (v > INT16_MAX)
                return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": value %u at pixel (%d, %d) is "
                                "too large for a label (at most %d)", label, v, x, y, INT16_MAX);
            row[x] = (int16_t)v;
        }
    }
    return GSQ_OK;
}

gsq_status gsq_label_png_decode(const void *data, size_t size, const char *label,
                                gsq_label_map *out, gsq_error *err)
{
    if (!label) label = "label map";
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL ": NULL output label map", label);
    memset(out, 0, sizeof *out);
    if (!data && size > 0) return gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL ": NULL data", label);
    if (size == 0)
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": empty file, not a PNG label map", label);
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0)
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": not a PNG (label maps are PNGs)", label);
    label_job *job = calloc(1, sizeof *job);
    if (!job) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", label);
    int wide = 0;
    gsq_status st = read_rows(job, data, size, label, &wide, err);
    gsq_png_reader_close(&job->r);
    if (st == GSQ_OK) st = widen_rows(&job->map, wide, label, err);
    free(job->rows);
    if (st == GSQ_OK) *out = job->map;
    else gsq_label_map_free(&job->map);
    free(job);
    return st;
}
