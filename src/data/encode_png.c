/* Writing 8-bit gray or RGB PNGs (libpng, encoded in memory, then written atomically): the
 * ADE20K layout's annotations and a segmenter's overlays. */
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "data/image_decode.h"
#include "gpusq/atomic_file.h"
#include "gpusq/data.h"

/* All state that changes between setjmp and a longjmp lives here, outside encode_png's frame. */
typedef struct {
    char msg[GSQ_PNG_MSG_MAX]; /* libpng's error message (gsq_png_on_error) */
    png_structp png;
    png_infop info;
    unsigned char *buf;        /* the PNG so far */
    size_t size, cap;
    int nomem;                 /* growing buf failed */
    png_bytep *rows;
} png_job;

static void png_append(png_structp png, png_bytep data, size_t n)
{
    png_job *job = png_get_io_ptr(png);
    unsigned char *grown = n <= SIZE_MAX - job->size
                               ? gsq_reserve(job->buf, &job->cap, job->size + n, 1)
                               : NULL;
    if (!grown) {
        job->nomem = 1;
        png_error(png, "out of memory");
    }
    job->buf = grown;
    memcpy(job->buf + job->size, data, n);
    job->size += n;
}

static void png_flush_nothing(png_structp png)
{
    (void)png;
}

/* The 8-bit values (width × height × channels: gray or RGB) as a PNG in job->buf. */
static gsq_status encode_png(png_job *job, const uint8_t *values, int width, int height, int channels,
                             const char *path, gsq_error *err)
{
    job->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, job->msg, gsq_png_on_error,
                                       gsq_png_on_warning);
    job->info = job->png ? png_create_info_struct(job->png) : NULL;
    job->rows = job->info ? malloc((size_t)height * sizeof *job->rows) : NULL;
    if (!job->rows) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", path);
    png_structp png = job->png;
    if (setjmp(png_jmpbuf(png))) {
        if (job->nomem)
            return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory for the PNG", path);
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": PNG encoding failed: %s", path, job->msg);
    }
    png_set_write_fn(png, job, png_append, png_flush_nothing);
    png_set_IHDR(png, job->info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, job->info);
    for (int y = 0; y < height; y++)
        job->rows[y] = (png_bytep)(values + (size_t)y * (size_t)width * (size_t)channels);
    png_write_image(png, job->rows);
    png_write_end(png, job->info);
    return GSQ_OK;
}

gsq_status gsq_png_write(const char *path, const uint8_t *values, int width, int height, int channels,
                         gsq_error *err)
{
    if (!path || !values || width < 1 || height < 1 || (channels != 1 && channels != 3))
        return gsq_fail(err, GSQ_ERR_ARG, "PNG writer: a %dx%d image of %d channels cannot be written", width, height,
                        channels);
    png_job *job = calloc(1, sizeof *job);
    if (!job) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", path);
    gsq_status st = encode_png(job, values, width, height, channels, path, err);
    if (st == GSQ_OK) {
        const void *data = job->buf;
        size_t size = job->size;
        st = gsq_write_file_atomic(path, &data, &size, 1, err);
    }
    if (job->png) png_destroy_write_struct(&job->png, job->info ? &job->info : NULL);
    free(job->rows);
    free(job->buf);
    free(job);
    return st;
}

gsq_status gsq_image_save_png(const gsq_image *img, const char *path, gsq_error *err)
{
    return gsq_png_write(path, img->pixels, img->width, img->height, 3, err);
}
