/* PNG decoding with libpng's classic API (not the simplified png_image one, which composites
 * alpha onto a background and applies gamma): errors longjmp back here, warnings are dropped,
 * and the image size is checked before rows are allocated. Output is 8-bit RGB as PIL's
 * convert('RGB') gives it: palettes are expanded (transparency ignored), 1/2/4-bit gray is scaled
 * to 8 bits, 16-bit samples keep their high byte, gray is replicated, and alpha is dropped
 * without compositing. No gamma, sRGB or ICC processing. Data that ends before the last image
 * row is an error; chunks after the image data (up to IEND) are not read, so a file missing only
 * those decodes, as in PIL. Also the libpng reader over memory that label_map.c shares
 * (image_decode.h). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "data/image_decode.h"

/* All state that changes between setjmp and a longjmp lives here, outside decode_rows' frame. */
typedef struct {
    gsq_png_reader r;
    gsq_image img;
    png_bytep *rows;
} png_job;

void gsq_png_on_error(png_structp png, png_const_charp msg)
{
    snprintf(png_get_error_ptr(png), GSQ_PNG_MSG_MAX, "%s", msg);
    png_longjmp(png, 1);
}

void gsq_png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png; /* a library never prints */
    (void)msg;
}

static void read_data(png_structp png, png_bytep out, size_t n)
{
    gsq_png_reader *r = png_get_io_ptr(png);
    if (n > r->size - r->pos) {
        r->truncated = 1;
        png_error(png, "end of data");
    }
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

gsq_status gsq_png_reader_open(gsq_png_reader *r, const unsigned char *data, size_t size,
                               const char *label, gsq_error *err)
{
    r->data = data;
    r->size = size;
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r->msg, gsq_png_on_error,
                                    gsq_png_on_warning);
    r->info = r->png ? png_create_info_struct(r->png) : NULL;
    if (!r->info)
        return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory for libpng", label);
    png_set_read_fn(r->png, r, read_data);
    return GSQ_OK;
}

gsq_status gsq_png_read_header(gsq_png_reader *r, const char *label, png_uint_32 *width,
                               png_uint_32 *height, int *depth, int *color, gsq_error *err)
{
    png_read_info(r->png, r->info);
    png_get_IHDR(r->png, r->info, width, height, depth, color, NULL, NULL, NULL);
    return gsq_image_check_size((long)*width, (long)*height, label, err);
}

gsq_status gsq_png_reader_fail(const gsq_png_reader *r, const char *label, gsq_error *err)
{
    if (r->truncated)
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": truncated PNG (the data ends before "
                        "the image does)", label);
    return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": bad PNG: %s", label, r->msg);
}

void gsq_png_reader_close(gsq_png_reader *r)
{
    if (r->png) png_destroy_read_struct(&r->png, r->info ? &r->info : NULL, NULL);
}

static gsq_status decode_rows(png_job *job, const unsigned char *data, size_t size,
                              const char *label, gsq_error *err)
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

    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    /* Also removes the alpha that png_set_palette_to_rgb makes from a tRNS chunk. */
    png_set_strip_alpha(png);
    if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != (size_t)width * 3)
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": PNG (color type %d, %d-bit) did not "
                        "convert to 8-bit RGB", label, color, depth);

    st = gsq_image_alloc(&job->img, (int)width, (int)height, err);
    if (st != GSQ_OK) return st;
    job->rows = malloc((size_t)height * sizeof *job->rows);
    if (!job->rows) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", label);
    for (png_uint_32 y = 0; y < height; y++) job->rows[y] = job->img.pixels + (size_t)y * width * 3;
    png_read_image(png, job->rows);
    return GSQ_OK;
}

gsq_status gsq_decode_png(const unsigned char *data, size_t size, const char *label,
                          gsq_image *out, gsq_error *err)
{
    png_job *job = calloc(1, sizeof *job);
    if (!job) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", label);
    gsq_status st = decode_rows(job, data, size, label, err);
    gsq_png_reader_close(&job->r);
    free(job->rows);
    gsq_image_hand_over(&job->img, st, out);
    free(job);
    return st;
}
