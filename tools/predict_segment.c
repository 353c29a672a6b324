/* gpusq predict and gpusq run IMAGE... for a segmenter: each image's class map, predicted at the
 * model's input side and resized (nearest) to the image, blended half and half over it in a
 * class palette and written as OUT_DIR/STEM.seg.png, with the classes that cover most of it. The class
 * palette and the overlays' file names are shared with a detector's drawings (predict_detect.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpusq/atomic_file.h"

void cli_palette(int k, uint8_t rgb[3])
{
    unsigned id = (unsigned)k + 1;
    rgb[0] = rgb[1] = rgb[2] = 0;
    for (int j = 7; j >= 0 && id; j--, id >>= 3)
        for (int c = 0; c < 3; c++) rgb[c] |= (uint8_t)(((id >> c) & 1u) << j);
}

void cli_overlay_path(const char *out_dir, const char *image, const char *suffix, char *buf, size_t cap)
{
    const char *base = strrchr(image, '/');
    base = base ? base + 1 : image;
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    snprintf(buf, cap, "%s/%.*s.%s", out_dir, stem, base, suffix);
}

/* img blended with the palette colours of pred (side × side), resized to the image. */
static void blend(gsq_image *img, const int16_t *pred, int side, size_t *count)
{
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++) {
            int sy = (int)(((2L * y + 1) * side) / (2L * img->height)), sx = (int)(((2L * x + 1) * side) / (2L * img->width));
            int k = pred[(size_t)sy * side + sx];
            uint8_t rgb[3], *p = img->pixels + ((size_t)y * img->width + x) * 3;
            cli_palette(k, rgb);
            for (int c = 0; c < 3; c++) p[c] = (uint8_t)((p[c] + rgb[c] + 1) / 2);
            count[k]++;
        }
}

/* The classes covering most of the image, largest first. */
static void print_classes(const gsq_model *m, size_t *count, size_t pixels)
{
    int K = gsq_model_num_classes(m);
    for (int r = 0; r < 5 && r < K; r++) {
        int best = 0;
        for (int k = 1; k < K; k++) best = count[k] > count[best] ? k : best;
        if (!count[best]) break;
        char name[128];
        gsq_model_class_name(m, best, name, sizeof name);
        printf("  %6.2f%%  %d %s\n", 100.0 * (double)count[best] / (double)pixels, best, name);
        count[best] = 0;
    }
}

int cli_predict_segment(const char *cmd, const gsq_model *m, gsq_forward_fn forward, void *ctx, char *const *images,
                        int n, const char *out_dir)
{
    const int side = gsq_model_input_size(m), K = gsq_model_num_classes(m), grid = gsq_model_output_grid(m);
    gsq_error err = {0};
    if (gsq_output_prepare_dir(out_dir, &err) != GSQ_OK) return cli_report(cmd, &err);
    gsq_transform t;
    gsq_transform_segment_defaults(&t, side);
    float *input = malloc((size_t)3 * side * side * sizeof(float));
    int16_t *pred = malloc((size_t)side * side * sizeof(int16_t));
    size_t *count = malloc((size_t)K * sizeof(size_t));
    int failures = 0;
    for (int i = 0; input && pred && count && i < n; i++) {
        gsq_image img = {0};
        const float *logits = NULL;
        char path[4096];
        cli_overlay_path(out_dir, images[i], "seg.png", path, sizeof path);
        gsq_status st = gsq_image_load(images[i], &img, &err);
        if (st == GSQ_OK) st = gsq_transform_segment_eval(&t, &img, NULL, input, NULL, &err);
        if (st == GSQ_OK) st = forward(ctx, input, 1, &logits, &err);
        if (st == GSQ_OK) {
            gsq_segment_predict(logits, 1, grid, K, side, pred);
            memset(count, 0, (size_t)K * sizeof(size_t));
            blend(&img, pred, side, count);
            st = gsq_image_save_png(&img, path, &err);
        }
        if (st == GSQ_OK) {
            printf("%s → %s\n", images[i], path);
            print_classes(m, count, (size_t)img.width * img.height);
        } else {
            cli_report(cmd, &err);
            failures++;
        }
        gsq_image_free(&img);
    }
    int oom = !input || !pred || !count;
    free(input);
    free(pred);
    free(count);
    if (oom) {
        gsq_fail(&err, GSQ_ERR_NOMEM, "out of memory");
        return cli_report(cmd, &err);
    }
    return failures ? 1 : 0;
}
