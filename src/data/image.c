/* Decoded images: allocation, the size limit, and decoding a JPEG or PNG buffer or file to 8-bit
 * RGB, the format chosen by the file's signature rather than its name (decoders in
 * decode_jpeg.c and decode_png.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Reads the regular file at path into a malloc'd buffer (*data is NULL for an empty file). */
static gsq_status read_file(const char *path, unsigned char **data, size_t *size,
                            gsq_error *err)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = n ? malloc(n) : NULL;
    if (n && !buf) {
        close(fd);
        return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory reading %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            free(buf);
            return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": read failed after %zu of %zu bytes%s%s",
                            path, got, n, e ? ": " : " (file shrank)", e ? strerror(e) : "");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *size = n;
    return GSQ_OK;
}

gsq_status gsq_image_load(const char *path, gsq_image *out, gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "gsq_image_load: NULL output image");
    memset(out, 0, sizeof *out);
    if (!path) return gsq_fail(err, GSQ_ERR_ARG, "gsq_image_load: NULL path");
    unsigned char *data;
    size_t size;
    gsq_status st = read_file(path, &data, &size, err);
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
