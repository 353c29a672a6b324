/* Image decoding: JPEGs (RGB, 4:2:0, grayscale, CMYK, YCCK, progressive) and PNGs (RGB, RGBA,
 * gray, gray+alpha, 1/2-bit gray, 16-bit, palette with transparency, interlaced) written here
 * with libjpeg and libpng, decoded and compared with the pixels that went in (exactly for PNG,
 * within a small tolerance for JPEG at quality 100); then hostile input: garbage, empty files,
 * corrupt bytes, absurd sizes in the header, and every truncation of small files. */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "gpusq/data.h"
#include "test_util.h"
#include "tree_files.h"

typedef struct {
    unsigned char *data;
    size_t size;
} blob;

/* Writes a file in the temporary directory and returns its path (until the next call). */
static const char *write_tmp(const char *name, const void *data, size_t size)
{
    static char path[128];
    write_file(name, data, size);
    path_of(path, sizeof path, name);
    return path;
}

/* A smooth pattern (JPEG-friendly, values within 0..255 for x < 40, y < 24) and a busy one. */
static uint8_t smooth(int x, int y, int c) { return (uint8_t)(x * 4 + y * 3 + c * 20); }
static uint8_t busy(int x, int y, int c) { return (uint8_t)(x * 37 + y * 11 + c * 101 + x * y); }

/* ---- writers ---------------------------------------------------------------------------- */

/* JPEG at quality 100 without chroma subsampling unless subsample; pixels (h, w, comps). */
static blob encode_jpeg(const uint8_t *px, int w, int h, int comps, J_COLOR_SPACE in_cs,
                        J_COLOR_SPACE jpeg_cs, int subsample, int progressive, int restart)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = in_cs;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, jpeg_cs);
    if (!subsample)
        for (int i = 0; i < c.num_components; i++)
            c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_set_quality(&c, 100, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    c.restart_interval = (unsigned)restart;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * (size_t)w * (size_t)comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return (blob){buf, size};
}

static void png_write_mem(png_structp png, png_bytep p, size_t n)
{
    blob *b = png_get_io_ptr(png);
    b->data = realloc(b->data, b->size + n);
    if (!b->data) abort();
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

static void png_flush_mem(png_structp png) { (void)png; }

typedef struct {
    int color, depth, interlace;
    const png_color *palette;
    int npalette;
    const uint8_t *trns;   /* palette alpha */
    int ntrns;
    double gamma;          /* a gAMA chunk when > 0 */
} png_spec;

/* PNG from rows already in PNG sample layout (16-bit big-endian), rowbytes each. */
static blob encode_png(const uint8_t *rows, int w, int h, size_t rowbytes, const png_spec *s)
{
    blob b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_bytep *ptrs = malloc((size_t)h * sizeof *ptrs);
    if (!png || !info || !ptrs || setjmp(png_jmpbuf(png))) abort();
    png_set_write_fn(png, &b, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, s->depth, s->color,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->palette) png_set_PLTE(png, info, s->palette, s->npalette);
    if (s->trns) png_set_tRNS(png, info, s->trns, s->ntrns, NULL);
    if (s->gamma > 0) png_set_gAMA(png, info, s->gamma);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) ptrs[y] = (png_bytep)rows + (size_t)y * rowbytes;
    png_write_image(png, ptrs);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(ptrs);
    return b;
}

/* ---- checks ----------------------------------------------------------------------------- */

/* Decodes b (through a file when path_name is set) and checks its size; NULL pixels on failure. */
static gsq_image decode(blob b, const char *path_name, int w, int h)
{
    gsq_image img;
    gsq_error err;
    gsq_status st = path_name ? gsq_image_load(write_tmp(path_name, b.data, b.size), &img, &err)
                              : gsq_image_decode(b.data, b.size, "mem", &img, &err);
    CHECK(st == GSQ_OK, "%s: %s", path_name ? path_name : "mem", err.msg);
    if (st != GSQ_OK) return img;
    CHECK(img.width == w && img.height == h, "%s: %dx%d, expected %dx%d",
          path_name ? path_name : "mem", img.width, img.height, w, h);
    if (img.width != w || img.height != h) gsq_image_free(&img);
    return img;
}

/* Largest |img − expected| over all samples; expected is (h, w, 3). */
static int max_diff(const gsq_image *img, const uint8_t *expected)
{
    int worst = 0;
    for (size_t i = 0; i < (size_t)img->width * (size_t)img->height * 3; i++) {
        int d = abs((int)img->pixels[i] - (int)expected[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

/* PIL's CMYK→RGB of an Adobe (inverted) CMYK JPEG sample, the rule the decoder follows. */
static uint8_t pil_cmyk(uint8_t stored, uint8_t stored_k)
{
    unsigned t = (255u - stored) * stored_k + 128u;
    return (uint8_t)(stored_k - (((t >> 8) + t) >> 8));
}

/* Decodes b through a file called name, expects every sample within tol of want (h, w, 3) and,
 * when gray, R = G = B; frees b. */
static void check_jpeg(blob b, const char *name, int w, int h, const uint8_t *want, int tol,
                       int gray)
{
    gsq_image img = decode(b, name, w, h);
    if (img.pixels) {
        int d = max_diff(&img, want), same = 1;
        CHECK(d <= tol, "%s: off by %d (tolerance %d)", name, d, tol);
        for (size_t i = 0; gray && i < (size_t)w * (size_t)h; i++)
            same &= img.pixels[3 * i] == img.pixels[3 * i + 1] &&
                    img.pixels[3 * i] == img.pixels[3 * i + 2];
        CHECK(same, "%s: gray not replicated to equal R, G, B", name);
    }
    gsq_image_free(&img);
    free(b.data);
}

static void test_jpeg(void)
{
    enum { W = 37, H = 23 };
    uint8_t rgb[H][W][3], gray[H][W], cmyk[H][W][4], want[H][W][3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            for (int c = 0; c < 3; c++) rgb[y][x][c] = smooth(x, y, c);
            gray[y][x] = smooth(x, y, 1);
            for (int c = 0; c < 4; c++) cmyk[y][x][c] = (uint8_t)(255 - smooth(x, y, c) / 2);
        }
    const uint8_t *px = &rgb[0][0][0];
    check_jpeg(encode_jpeg(px, W, H, 3, JCS_RGB, JCS_YCbCr, 0, 0, 0), "rgb.jpg", W, H, px, 3, 0);
    check_jpeg(encode_jpeg(px, W, H, 3, JCS_RGB, JCS_YCbCr, 1, 0, 0), /* 4:2:0, odd size */
               "rgb420.JPG", W, H, px, 8, 0);
    check_jpeg(encode_jpeg(px, W, H, 3, JCS_RGB, JCS_YCbCr, 0, 1, 0), "progressive.jpeg", W, H,
               px, 3, 0);

    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) want[y][x][0] = want[y][x][1] = want[y][x][2] = gray[y][x];
    check_jpeg(encode_jpeg(&gray[0][0], W, H, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0, 0, 0),
               "gray.jpg", W, H, &want[0][0][0], 2, 1);

    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) want[y][x][c] = pil_cmyk(cmyk[y][x][c], cmyk[y][x][3]);
    check_jpeg(encode_jpeg(&cmyk[0][0][0], W, H, 4, JCS_CMYK, JCS_CMYK, 0, 0, 0), "cmyk.jpg", W,
               H, &want[0][0][0], 4, 0);
    check_jpeg(encode_jpeg(&cmyk[0][0][0], W, H, 4, JCS_CMYK, JCS_YCCK, 0, 0, 0), "ycck.jpg", W,
               H, &want[0][0][0], 4, 0);
}

/* Packs samples (h, w, channels) of `depth` bits into PNG rows; 16-bit samples are given as
 * uint16_t. Returns the row size. */
static size_t pack_rows(uint8_t *dst, const uint16_t *src, int w, int h, int channels, int depth)
{
    size_t rowbytes = ((size_t)w * (size_t)channels * (size_t)depth + 7) / 8;
    memset(dst, 0, rowbytes * (size_t)h);
    for (int y = 0; y < h; y++)
        for (int i = 0; i < w * channels; i++) {
            unsigned v = src[(size_t)y * (size_t)w * (size_t)channels + (size_t)i];
            uint8_t *row = dst + (size_t)y * rowbytes;
            if (depth == 16) {
                row[2 * i] = (uint8_t)(v >> 8);
                row[2 * i + 1] = (uint8_t)v;
            } else if (depth == 8) {
                row[i] = (uint8_t)v;
            } else {
                int bit = i * depth, shift = 8 - depth - bit % 8;
                row[bit / 8] |= (uint8_t)(v << shift);
            }
        }
    return rowbytes;
}

static void test_png(void)
{
    enum { W = 19, H = 13 };
    static uint16_t src[H * W * 4];
    static uint8_t rows[H * W * 8], want[H][W][3];
    const png_color palette[4] = {{255, 0, 0}, {0, 128, 255}, {7, 8, 9}, {250, 251, 252}};
    const uint8_t trns[4] = {0, 128, 255, 17};
    struct {
        const char *name;
        int channels, depth;
        png_spec spec;
    } cases[] = {
        {"rgb8.png", 3, 8, {PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0, 0}},
        {"rgba8_gamma.png", 4, 8, {PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, NULL, 0, NULL, 0, 1.0}},
        {"gray8.PNG", 1, 8, {PNG_COLOR_TYPE_GRAY, 8, 0, NULL, 0, NULL, 0, 0}},
        {"graya8.png", 2, 8, {PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, NULL, 0, NULL, 0, 0}},
        {"gray1.png", 1, 1, {PNG_COLOR_TYPE_GRAY, 1, 0, NULL, 0, NULL, 0, 0}},
        {"gray2.png", 1, 2, {PNG_COLOR_TYPE_GRAY, 2, 0, NULL, 0, NULL, 0, 0}},
        {"rgb16.png", 3, 16, {PNG_COLOR_TYPE_RGB, 16, 0, NULL, 0, NULL, 0, 0}},
        {"rgba16.png", 4, 16, {PNG_COLOR_TYPE_RGB_ALPHA, 16, 0, NULL, 0, NULL, 0, 0}},
        {"gray16.png", 1, 16, {PNG_COLOR_TYPE_GRAY, 16, 0, NULL, 0, NULL, 0, 0}},
        {"palette_trns.png", 1, 8, {PNG_COLOR_TYPE_PALETTE, 8, 0, palette, 4, trns, 4, 0}},
        {"palette2.png", 1, 2, {PNG_COLOR_TYPE_PALETTE, 2, 0, palette, 4, NULL, 0, 0}},
        {"interlaced.png", 3, 8, {PNG_COLOR_TYPE_RGB, 8, 1, NULL, 0, NULL, 0, 0}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int ch = cases[k].channels, depth = cases[k].depth, pal = cases[k].spec.palette != NULL;
        unsigned max = (1u << depth) - 1;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < ch; c++) {
                    /* 16-bit: a high byte, and a low byte that would round it up */
                    unsigned v = depth == 16 ? (unsigned)busy(x, y, c) << 8 | 0xC0u
                                             : busy(x, y, c) % (pal ? 4 : max + 1);
                    src[(y * W + x) * ch + c] = (uint16_t)v;
                    uint8_t v8 = (uint8_t)(depth == 16 ? v >> 8 : v * 255 / max);
                    if (pal) {
                        want[y][x][0] = palette[v].red;
                        want[y][x][1] = palette[v].green;
                        want[y][x][2] = palette[v].blue;
                    } else if (ch <= 2 && c == 0) { /* gray is replicated, alpha dropped */
                        want[y][x][0] = want[y][x][1] = want[y][x][2] = v8;
                    } else if (ch >= 3 && c < 3) {
                        want[y][x][c] = v8;
                    }
                }
        size_t rowbytes = pack_rows(rows, src, W, H, ch, depth);
        blob b = encode_png(rows, W, H, rowbytes, &cases[k].spec);
        gsq_image img = decode(b, cases[k].name, W, H);
        if (img.pixels)
            CHECK(max_diff(&img, &want[0][0][0]) == 0, "%s: off by %d", cases[k].name,
                  max_diff(&img, &want[0][0][0]));
        gsq_image_free(&img);
        free(b.data);
    }
}

/* ---- hostile input ------------------------------------------------------------------------ */

/* Expects decoding to fail with a format error whose message names "mem" and contains `what`. */
static void expect_error(const void *data, size_t size, gsq_status code, const char *what,
                         const char *why)
{
    gsq_image img;
    gsq_error err = {0};
    gsq_status st = gsq_image_decode(data, size, "mem", &img, &err);
    CHECK(st == code && err.code == code, "%s: status %d (%s)", why, st, err.msg);
    CHECK(strstr(err.msg, "mem") && strstr(err.msg, what), "%s: message '%s' lacks '%s'", why,
          err.msg, what);
    CHECK(img.pixels == NULL && img.width == 0, "%s: output not zeroed", why);
    gsq_image_free(&img);
}

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put_be(uint8_t *p, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

/* Offset of the SOFn marker segment in a JPEG written by libjpeg. */
static size_t find_sof(const blob *b)
{
    size_t i = 2;
    while (i + 4 < b->size && b->data[i] == 0xFF) {
        if (b->data[i + 1] >= 0xC0 && b->data[i + 1] <= 0xC2) return i;
        i += 2 + (size_t)(b->data[i + 2] << 8 | b->data[i + 3]);
    }
    return 0;
}

static void test_bad_sizes(void)
{
    enum { W = 16, H = 16 };
    static uint8_t rgb[H][W][3];
    blob j = encode_jpeg(&rgb[0][0][0], W, H, 3, JCS_RGB, JCS_YCbCr, 0, 0, 0);
    size_t sof = find_sof(&j);
    CHECK(sof > 0, "no SOF marker in the test JPEG");
    const uint32_t dims[][2] = {{40000, 16}, {16, 40000}, {30000, 30000}, {0, 16}};
    for (int k = 0; k < 4 && sof; k++) {
        put_be(j.data + sof + 5, dims[k][1], 2);
        put_be(j.data + sof + 7, dims[k][0], 2);
        expect_error(j.data, j.size, GSQ_ERR_FORMAT, dims[k][0] && dims[k][1] ? "out of range" : "",
                     "JPEG with a huge or empty size");
    }
    free(j.data);

    /* Progressive CMYK, 12000×12000: within the pixel limit, but libjpeg would keep 4 components'
     * coefficients, 1.1 GiB. */
    uint8_t cmyk[H][W][4];
    memset(cmyk, 100, sizeof cmyk);
    j = encode_jpeg(&cmyk[0][0][0], W, H, 4, JCS_CMYK, JCS_CMYK, 0, 1, 0);
    sof = find_sof(&j);
    if (sof) {
        put_be(j.data + sof + 5, 12000, 2);
        put_be(j.data + sof + 7, 12000, 2);
        expect_error(j.data, j.size, GSQ_ERR_UNSUPPORTED, "decoder memory",
                     "huge progressive JPEG");
    }
    free(j.data);

    static uint8_t rows[H * W * 3];
    png_spec spec = {PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0, 0};
    blob p = encode_png(rows, W, H, W * 3, &spec);
    const uint32_t pdims[][2] = {{40000, 16}, {30000, 30000}, {0x7FFFFFFF, 1}, {0, 1}};
    for (int k = 0; k < 4; k++) {
        put_be(p.data + 16, pdims[k][0], 4);
        put_be(p.data + 20, pdims[k][1], 4);
        put_be(p.data + 29, crc32_png(p.data + 12, 17), 4);
        expect_error(p.data, p.size, GSQ_ERR_FORMAT, k < 2 ? "out of range" : "bad PNG",
                     "PNG with a huge or empty size");
    }
    free(p.data);
}

/* Every prefix of a valid file fails with "truncated" (or, shorter than a signature, "not a
 * JPEG or PNG"), except prefixes of at least `complete` bytes, which decode to the full image. */
static void check_truncations(blob b, size_t complete, size_t sig, const char *what)
{
    gsq_image full;
    gsq_error err;
    if (gsq_image_decode(b.data, b.size, what, &full, &err) != GSQ_OK) {
        CHECK(0, "%s: %s", what, err.msg);
        return;
    }
    int bad = 0;
    for (size_t n = 0; n < b.size; n++) {
        gsq_image img;
        gsq_status st = gsq_image_decode(b.data, n, "mem", &img, &err);
        int ok;
        if (n >= complete)
            ok = st == GSQ_OK &&
                 memcmp(img.pixels, full.pixels, (size_t)full.width * full.height * 3) == 0;
        else
            ok = st == GSQ_ERR_FORMAT && img.pixels == NULL && strstr(err.msg, "mem") &&
                 strstr(err.msg, n < sig ? "not a JPEG or PNG" : "truncated");
        if (!ok && bad++ < 3)
            CHECK(0, "%s cut to %zu of %zu bytes: status %d: %s", what, n, b.size, st, err.msg);
        gsq_image_free(&img);
    }
    CHECK(bad == 0, "%s: %d bad truncations", what, bad);
    gsq_image_free(&full);
}

static void test_hostile(void)
{
    enum { W = 24, H = 16 };
    static uint8_t rgb[H][W][3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) rgb[y][x][c] = busy(x, y, c);

    expect_error("hello, world", 12, GSQ_ERR_FORMAT, "not a JPEG or PNG image", "text");
    expect_error("", 0, GSQ_ERR_FORMAT, "empty", "zero bytes");
    expect_error("\xFF\xD8\xFF\xE0garbage", 11, GSQ_ERR_FORMAT, "JPEG", "JPEG signature, junk");
    expect_error("\x89PNG\r\n\x1A\ngarbage!", 16, GSQ_ERR_FORMAT, "bad PNG", "PNG signature, junk");

    gsq_image img;
    gsq_error err;
    const char *empty = write_tmp("empty.jpg", "", 0);
    CHECK(gsq_image_load(empty, &img, &err) == GSQ_ERR_FORMAT && strstr(err.msg, empty),
          "empty file: %s", err.msg);
    char missing[128];
    path_of(missing, sizeof missing, "missing.png");
    CHECK(gsq_image_load(missing, &img, &err) == GSQ_ERR_IO && strstr(err.msg, missing),
          "missing file: %s", err.msg);
    CHECK(gsq_image_load(tmp_dir, &img, &err) == GSQ_ERR_IO && strstr(err.msg, "regular"),
          "directory: %s", err.msg);
    CHECK(gsq_image_decode("x", 1, "mem", NULL, &err) == GSQ_ERR_ARG, "NULL output accepted");
    CHECK(gsq_image_alloc(&img, 0, 5, &err) == GSQ_ERR_ARG && !img.pixels, "0x5 image allocated");
    CHECK(gsq_image_alloc(&img, 1 << 20, 1 << 20, &err) == GSQ_ERR_ARG, "2^40 pixels allocated");

    /* Corrupt bytes anywhere: decoded (libjpeg and libpng repair some damage, and a changed size
     * in the header is believed, as by PIL) or a clean error. */
    blob j = encode_jpeg(&rgb[0][0][0], W, H, 3, JCS_RGB, JCS_YCbCr, 0, 0, 0);
    png_spec spec = {PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0, 0};
    blob p = encode_png(&rgb[0][0][0], W, H, W * 3, &spec);
    blob files[2] = {j, p};
    int clean = 1;
    for (int f = 0; f < 2; f++) {
        uint8_t *copy = malloc(files[f].size);
        for (size_t i = 0; i < files[f].size; i++) {
            memcpy(copy, files[f].data, files[f].size);
            copy[i] ^= (uint8_t)(0x5A + i);
            gsq_status st = gsq_image_decode(copy, files[f].size, "mem", &img, &err);
            if (st == GSQ_OK) clean &= img.pixels != NULL && img.width > 0 && img.height > 0;
            else clean &= img.pixels == NULL && strstr(err.msg, "mem") != NULL;
            gsq_image_free(&img);
        }
        free(copy);
    }
    CHECK(clean, "a corrupt byte gave a bad image or an unnamed error");

    /* A PNG error names the PNG: a bad CRC in IHDR. */
    uint8_t *copy = malloc(p.size);
    memcpy(copy, p.data, p.size);
    copy[30] ^= 1;
    expect_error(copy, p.size, GSQ_ERR_FORMAT, "CRC", "PNG with a bad IHDR CRC");
    free(copy);

    check_truncations(j, j.size, 3, "baseline JPEG"); /* even without its end marker, as PIL */
    blob jr = encode_jpeg(&rgb[0][0][0], W, H, 3, JCS_RGB, JCS_YCbCr, 1, 0, 1);
    check_truncations(jr, jr.size, 3, "JPEG with restart markers");
    blob jp = encode_jpeg(&rgb[0][0][0], W, H, 3, JCS_RGB, JCS_YCbCr, 0, 1, 0);
    check_truncations(jp, jp.size, 3, "progressive JPEG");
    check_truncations(p, p.size - 12, 8, "PNG"); /* only the IEND chunk may be missing */
    spec.interlace = 1;
    blob pi = encode_png(&rgb[0][0][0], W, H, W * 3, &spec);
    check_truncations(pi, pi.size - 12, 8, "interlaced PNG");
    free(j.data);
    free(jr.data);
    free(jp.data);
    free(p.data);
    free(pi.data);
}

int main(void)
{
    if (!tmp_dir_make("image")) return 1;
    test_jpeg();
    test_png();
    test_bad_sizes();
    test_hostile();
    tmp_dir_remove();
    return test_finish("test_image");
}
