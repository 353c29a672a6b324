/* The gpusq program on a detection task end to end: the synthetic detection set written in the COCO
 * layout and read back, a tiny detector trained and evaluated (AP), and its detections predicted,
 * printed and drawn over images, by the float model and by the engine; and the drawing itself
 * (tools/font5x7.c, compiled in here): frames, glyphs and their clipping at the image's edges,
 * pixel by pixel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/font5x7.c"
#include "cli_run.h"
#include "test_util.h"

static const uint8_t red[3] = {200, 10, 20};

/* 1 when pixel (x, y) of img is rgb. */
static int is(const gsq_image *img, int x, int y, const uint8_t rgb[3])
{
    return memcmp(img->pixels + ((size_t)y * img->width + x) * 3, rgb, 3) == 0;
}

/* The pixels of img that are not white. */
static int coloured(const gsq_image *img)
{
    static const uint8_t white[3] = {255, 255, 255};
    int n = 0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) n += !is(img, x, y, white);
    return n;
}

static void test_drawing(void)
{
    gsq_image img = {0};
    gsq_error err = {0};
    if (gsq_image_alloc(&img, 20, 16, &err) != GSQ_OK) {
        CHECK(0, "alloc: %s", err.msg);
        return;
    }
    memset(img.pixels, 255, (size_t)20 * 16 * 3);

    /* a 2-pixel frame of [3, 12) × [4, 10): its border rows and columns, nothing inside or out */
    draw_frame(&img, 3, 4, 12, 10, 2, red);
    int bad = 0;
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 20; x++) {
            int inside = x >= 3 && x < 12 && y >= 4 && y < 10;
            int border = inside && (x < 5 || x >= 10 || y < 6 || y >= 8);
            bad += is(&img, x, y, red) != border;
        }
    CHECK(bad == 0, "%d pixels of the frame are wrong", bad);
    CHECK(coloured(&img) == 9 * 6 - 5 * 2, "the frame has %d pixels", coloured(&img));

    /* clipped: a frame around the whole image leaves it as it is, a fill over its corner stops there */
    memset(img.pixels, 255, (size_t)20 * 16 * 3);
    draw_frame(&img, -5, -5, 30, 30, 2, red);
    CHECK(coloured(&img) == 0, "a frame outside the image drew %d pixels", coloured(&img));
    draw_fill(&img, 17, 13, 40, 40, red);
    CHECK(coloured(&img) == 3 * 3 && is(&img, 19, 15, red), "a fill over the corner drew %d pixels", coloured(&img));

    /* glyphs: 'A' row by row, then text over the edges, a byte outside ASCII as '?' */
    static const char *const A[FONT5X7_HEIGHT] = {".###.", "#...#", "#...#", "#...#", "#####", "#...#", "#...#"};
    memset(img.pixels, 255, (size_t)20 * 16 * 3);
    draw_text(&img, 2, 3, "A", red);
    bad = 0;
    for (int r = 0; r < FONT5X7_HEIGHT; r++)
        for (int c = 0; c < FONT5X7_WIDTH; c++) bad += is(&img, 2 + c, 3 + r, red) != (A[r][c] == '#');
    CHECK(bad == 0 && coloured(&img) == 18, "'A' is drawn wrong in %d pixels (%d drawn)", bad, coloured(&img));
    memset(img.pixels, 255, (size_t)20 * 16 * 3);
    draw_text(&img, 17, 12, "\xc3?", red);
    int clipped = coloured(&img);
    draw_text(&img, 17, 12, "??", red);
    CHECK(clipped > 0 && clipped == coloured(&img), "a non-ASCII byte is not drawn as '?' (%d pixels)", clipped);
    memset(img.pixels, 255, (size_t)20 * 16 * 3);
    draw_text(&img, -3, -4, "W", red); /* what is left: rows 4 to 6's last two columns, .# .# #. */
    CHECK(coloured(&img) == 3 && is(&img, 1, 0, red) && is(&img, 1, 1, red) && is(&img, 0, 2, red),
          "'W' clipped at the top-left corner: %d pixels", coloured(&img));
    CHECK(draw_text_width("disc 0.87") == 9 * FONT5X7_ADVANCE - 1 && draw_text_width("") == 0, "text width");
    gsq_image_free(&img);
}

int main(void)
{
    test_drawing();

    char args[2048], dir[64] = "/tmp/gsq_test_cli_detect_XXXXXX", path[256], image[256];
    if (!mkdtemp(dir)) return 1;

    /* the COCO layout: written, then read back by eval */
    snprintf(args, sizeof args, "dataset --data synthetic-detect --out '%s/coco' --train-size 4 --val-size 2", dir);
    CHECK(run(args) == 0 && strstr(out, "2 val2017 samples") && strstr(out, "annotations/instances_val2017.json"),
          "dataset: %s", out);
    snprintf(args, sizeof args, "dataset --data synthetic-detect --out '%s/small' --resolution 16", dir);
    CHECK(run(args) == 1, "synthetic-detect at 16 pixels: %s", out);
    snprintf(args, sizeof args, "dataset --data coco --out '%s/x'", dir);
    CHECK(run(args) == 2, "an unknown --data: %s", out);

    /* one thread: the detector's many small parallel regions crawl on a loaded machine's spinning threads */
    snprintf(args, sizeof args, "train --model gpusq_demo --data synthetic-detect --queries 10 --decoder-layers 1 "
             "--train-size 256 --val-size 64 --epochs 1 --batch 32 --threads 1 --out '%s/det.safetensors'", dir);
    CHECK(run(args) == 0 && strstr(out, "a detect model of 5 classes"), "train: %s", out);
    snprintf(args, sizeof args, "eval '%s/det.safetensors' --data synthetic-detect --val-size 64 --threads 1", dir);
    CHECK(run(args) == 0 && strstr(out, "AP") && strstr(out, "(64 images)"), "eval: %s", out);
    snprintf(args, sizeof args, "eval '%s/det.safetensors' --data 'coco:%s/coco' --threads 1", dir, dir);
    CHECK(run(args) == 0 && strstr(out, "AP") && strstr(out, "(2 images)"), "eval on the COCO layout: %s", out);

    /* predictions: printed best first and drawn, named after the images; a missing image reported */
    snprintf(image, sizeof image, "%s/coco/val2017/000000000000.jpg", dir);
    snprintf(args, sizeof args, "predict '%s/det.safetensors' '%s' '%s/missing.jpg' --out-dir '%s/pred' "
             "--threshold 0.01", dir, image, dir, dir);
    CHECK(run(args) == 1 && strstr(out, "missing.jpg"), "predict: %s", out);
    const char *line = strstr(out, "000000000000.det.png\n");
    char name[64] = "";
    float score[2] = {2, 2}, x = -1, y = -1, w = -1, h = -1;
    int fields = line ? sscanf(line, "%*s  %63s %f  x %f  y %f  w %f  h %f\n  %*s %f", name, &score[0], &x, &y, &w,
                               &h, &score[1]) : 0;
    CHECK(fields == 7 && score[0] >= 0.01f && score[0] <= 1 && score[1] <= score[0], "detections: %s", out);
    CHECK(x >= 0 && y >= 0 && w >= 0 && h >= 0 && x + w <= 64.01f && y + h <= 64.01f, "a box outside the image: %s",
          out);
    gsq_image in = {0}, drawn = {0};
    gsq_error err = {0};
    snprintf(path, sizeof path, "%s/pred/000000000000.det.png", dir);
    CHECK(gsq_image_load(image, &in, &err) == GSQ_OK && gsq_image_load(path, &drawn, &err) == GSQ_OK, "%s", err.msg);
    if (fields == 7 && drawn.pixels && in.pixels) {
        CHECK(drawn.width == in.width && drawn.height == in.height, "%s is %dx%d, the image %dx%d", path, drawn.width,
              drawn.height, in.width, in.height);
        /* the best box's left edge, two pixels wide: (x0, ym) and the pixel left or right of it */
        int x0 = (int)(x + 0.5f), ym = (int)(y + h / 2);
        int inside = x0 + 1 < drawn.width && ym < drawn.height;
        const uint8_t *p = inside ? drawn.pixels + ((size_t)ym * drawn.width + x0) * 3 : NULL;
        CHECK(inside && !is(&in, x0, ym, p) && ((x0 > 0 && is(&drawn, x0 - 1, ym, p)) || is(&drawn, x0 + 1, ym, p)),
              "no frame at (%d, %d) in %s", x0, ym, path);
    }
    gsq_image_free(&in);
    gsq_image_free(&drawn);

    /* the same from the engine, on a 2:4 INT8 model */
    snprintf(args, sizeof args, "compress --teacher '%s/det.safetensors' --data synthetic-detect --train-size 64 "
             "--val-size 16 --batch 32 --modes int8 --prune-epochs 1 --qat-epochs 1 --threads 1 --out-dir '%s/comp'",
             dir, dir);
    CHECK(run(args) == 0, "compress: %s", out);
    snprintf(args, sizeof args, "run '%s/comp/int8.gsq.safetensors' '%s' --check --threshold 0.01 --threads 1 "
             "--out-dir '%s/engine'", dir, image, dir);
    CHECK(run(args) == 0 && strstr(out, "engine/000000000000.det.png\n  ") && strstr(out, "kept detections"),
          "run IMAGE: %s", out);
    snprintf(path, sizeof path, "%s/engine/000000000000.det.png", dir);
    CHECK(gsq_image_load(path, &drawn, &err) == GSQ_OK && drawn.width == 64 && drawn.height == 64, "%s: %s", path,
          err.msg);
    gsq_image_free(&drawn);

    snprintf(args, sizeof args, "predict '%s/det.safetensors' '%s' --out-dir '%s/pred' --threshold 1", dir, image, dir);
    CHECK(run(args) == 0 && strstr(out, "no object above 1.00"), "--threshold 1: %s", out);
    static const char *const bad[] = {"0", "1.5", "-1", "half"};
    for (int i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "predict '%s/det.safetensors' '%s' --threshold %s", dir, image, bad[i]);
        CHECK(run(args) == 2 && strstr(out, "--threshold"), "--threshold %s: %s", bad[i], out);
    }

    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_cli_detect");
}
