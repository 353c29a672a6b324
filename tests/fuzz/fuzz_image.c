/* libFuzzer harness for the image decoders: decode the input as a JPEG or PNG (by signature);
 * the result must be an error naming the input with nothing allocated, or an image that decodes
 * the same again. Built with -DGSQ_FUZZ_MAKE_SEEDS instead, it is a small program writing valid
 * seed images (JPEG: baseline, progressive with restarts, grayscale, CMYK; PNG: RGB, 16-bit RGBA,
 * palette with transparency, interlaced 2-bit gray) with libjpeg and libpng:
 * fuzz_image_seeds DIR. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/data.h"

#ifndef GSQ_FUZZ_MAKE_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gsq_image img;
    gsq_error err;
    if (gsq_image_decode(data, size, "fuzz", &img, &err) != GSQ_OK) {
        if (img.pixels || img.width || err.code == GSQ_OK || !strstr(err.msg, "fuzz")) abort();
        return 0;
    }
    if (!img.pixels || img.width < 1 || img.height < 1) abort();
    /* Decoding is deterministic; comparing reads every byte, so ASan sees a short allocation. */
    gsq_image again;
    if (gsq_image_decode(data, size, "fuzz", &again, &err) != GSQ_OK || again.width != img.width ||
        again.height != img.height ||
        memcmp(img.pixels, again.pixels, (size_t)img.width * (size_t)img.height * 3) != 0)
        abort();
    gsq_image_free(&img);
    gsq_image_free(&again);
    return 0;
}

#else

#include <setjmp.h>

#include <jpeglib.h>
#include <png.h>

enum { W = 20, H = 12 };

static int save_jpeg(const char *dir, const char *name, int comps, J_COLOR_SPACE cs,
                     int progressive)
{
    uint8_t px[H][W][4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 4; c++) px[y][x][c] = (uint8_t)(x * 11 + y * 17 + c * 60);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = W;
    c.image_height = H;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    if (progressive) {
        jpeg_simple_progression(&c);
        c.restart_interval = 1;
    }
    jpeg_start_compress(&c, TRUE);
    uint8_t row[W * 4];
    while (c.next_scanline < H) {
        for (int x = 0; x < W; x++) memcpy(row + x * comps, px[c.next_scanline][x], (size_t)comps);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f) != 0;
}

static int save_png(const char *dir, const char *name, int color, int depth, int interlace)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    static uint8_t rows[H][W * 8];
    png_bytep ptrs[H];
    if (!f || !info || setjmp(png_jmpbuf(png))) return 1;
    png_init_io(png, f);
    png_set_IHDR(png, info, W, H, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color == PNG_COLOR_TYPE_PALETTE) {
        const png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
        const uint8_t trns[2] = {0, 128};
        png_set_PLTE(png, info, pal, 3);
        png_set_tRNS(png, info, trns, 2, NULL);
    }
    for (int y = 0; y < H; y++) {
        for (int i = 0; i < W * 8; i++)
            rows[y][i] = (uint8_t)(color == PNG_COLOR_TYPE_PALETTE ? (i + y) % 3 : i * 7 + y * 29);
        ptrs[y] = rows[y];
    }
    png_write_info(png, info);
    png_write_image(png, ptrs);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return fclose(f) != 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *d = argv[1];
    int bad = save_jpeg(d, "rgb.jpg", 3, JCS_RGB, 0);
    bad |= save_jpeg(d, "progressive.jpg", 3, JCS_RGB, 1);
    bad |= save_jpeg(d, "gray.jpg", 1, JCS_GRAYSCALE, 0);
    bad |= save_jpeg(d, "cmyk.jpg", 4, JCS_CMYK, 0);
    bad |= save_png(d, "rgb.png", PNG_COLOR_TYPE_RGB, 8, 0);
    bad |= save_png(d, "rgba16.png", PNG_COLOR_TYPE_RGB_ALPHA, 16, 0);
    bad |= save_png(d, "palette.png", PNG_COLOR_TYPE_PALETTE, 8, 0);
    bad |= save_png(d, "gray2_interlaced.png", PNG_COLOR_TYPE_GRAY, 2, 1);
    if (bad) fprintf(stderr, "could not write the seeds to %s\n", d);
    return bad;
}

#endif
