/* Decoded images: allocation, the size limit, and decoding a JPEG or PNG buffer or file to 8-bit
 * RGB, the format chosen by the file's signature rather than its name (decoders in
 * decode_jpeg.c and decode_png.c, files read by files.c). */
#include <stdlib.h>
#include <string.h>

#include "data/image_decode.h"

gsq_status gsq_image_alloc(gsq_image *img, int width, int height, gsq_error *err)
{
    size_t n;
    if (!img) return gsq_fail(err, GSQ_ERR_ARG, "gsq_image_alloc: NULL image");
    memset(img, 0, sizeof *img);
    if (width < 1 || height < 1 || width > GSQ_IMAGE_MAX_SIDE || height > GSQ_IMAGE_MAX_SIDE ||
        !gsq_size_mul((size_t)width, (size_t)height, &n) || n > GSQ_IMAGE_MAX_PIXELS)
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_image_alloc: size %dx%d out of range", width,
                        height);
    n *= 3; /* <= 3 · 2^28 */
    img->pixels = malloc(n);
    if (!img->pixels)
        return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_image_alloc: out of memory for %dx%d RGB",
                        width, height);
    img->width = width;
    img->height = height;
    return GSQ_OK;
}

void gsq_image_free(gsq_image *img)
{
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

gsq_status gsq_image_check_size(long width, long height, const char *label, gsq_error *err)
{
    if (width < 1 || height < 1 || width > GSQ_IMAGE_MAX_SIDE || height > GSQ_IMAGE_MAX_SIDE ||
        (size_t)width * (size_t)height > GSQ_IMAGE_MAX_PIXELS)
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        GSQ_LBL ": image size %ldx%ld out of range (at most %d per side and "
                        "%zu pixels)",
                        label, width, height, GSQ_IMAGE_MAX_SIDE, (size_t)GSQ_IMAGE_MAX_PIXELS);
    return GSQ_OK;
}

gsq_status gsq_image_decode(const void *data, size_t size, const char *label, gsq_image *out,
                            gsq_error *err)
{
    static const unsigned char jpeg_sig[3] = {0xFF, 0xD8, 0xFF};
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    const unsigned char *p = data;
    if (!label) label = "image";
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL ": NULL output image", label);
    memset(out, 0, sizeof *out);
    if (!p && size > 0) return gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL ": NULL data", label);
    if (size >= sizeof jpeg_sig && memcmp(p, jpeg_sig, sizeof jpeg_sig) == 0)
        return gsq_decode_jpeg(p, size, label, out, err);
    if (size >= sizeof png_sig && memcmp(p, png_sig, sizeof png_sig) == 0)
        return gsq_decode_png(p, size, label, out, err);
    if (size == 0)
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": empty file, not a JPEG or PNG image",
                        label);
    return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": not a JPEG or PNG image", label);
}

gsq_status gsq_image_load(const char *path, gsq_image *out, gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "gsq_image_load: NULL output image");
    memset(out, 0, sizeof *out);
    if (!path) return gsq_fail(err, GSQ_ERR_ARG, "gsq_image_load: NULL path");
    unsigned char *data;
    size_t size;
    gsq_status st = gsq_read_file(path, &data, &size, err);
    if (st != GSQ_OK) return st;
    st = gsq_image_decode(data, size, path, out, err);
    free(data);
    return st;
}

void gsq_image_hand_over(gsq_image *decoded, gsq_status st, gsq_image *out)
{
    if (st == GSQ_OK) {
        *out = *decoded;
    } else {
        gsq_image_free(decoded);
        memset(out, 0, sizeof *out);
    }
}
