/* gpusq predict and gpusq run IMAGE... for a detector: each image stretched to the model's input
 * side (detection's eval transform), its detections decoded into the image's pixels, those scoring
 * at least the threshold printed best first and drawn over it, a 2-pixel frame and a "NAME SCORE"
 * label on a box of the class's colour each, written as OUT_DIR/STEM.det.png. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "font5x7.h"
#include "gpusq/atomic_file.h"

#define FRAME 2 /* the frame's width in pixels */
#define PAD 1   /* the label's margin around its text */

/* The detections of dets (count of them) scoring at least threshold, clipped to a width × height
 * image, moved to its front best first (equal scores in query order); returns how many. */
static int keep(gsq_detection *dets, int count, float threshold, int width, int height)
{
    int n = 0;
    for (int q = 0; q < count; q++) {
        gsq_detection d = dets[q];
        if (!(d.score >= threshold)) continue;
        float x0 = fmaxf(d.box.x, 0.0f), y0 = fmaxf(d.box.y, 0.0f);
        d.box.w = fmaxf(fminf(d.box.x + d.box.w, (float)width) - x0, 0.0f);
        d.box.h = fmaxf(fminf(d.box.y + d.box.h, (float)height) - y0, 0.0f);
        d.box.x = x0;
        d.box.y = y0;
        int i = n++;
        for (; i > 0 && dets[i - 1].score < d.score; i--) dets[i] = dets[i - 1];
        dets[i] = d;
    }
    return n;
}

/* Class k's name, or "class K" when the model has none. */
static const char *class_name(const gsq_model *m, int k, char *buf, size_t cap)
{
    if (!*gsq_model_class_name(m, k, buf, cap)) snprintf(buf, cap, "class %d", k);
    return buf;
}

/* d's frame and its label "name score" over img: the label's box above the frame's top-left corner
 * (inside the frame where there is no room above; moved left as far as needed to fit in the image),
 * its text black or white, whichever reads better on the class's colour. */
static void draw(gsq_image *img, const gsq_detection *d, const char *name)
{
    uint8_t rgb[3], ink[3];
    cli_palette(d->category, rgb);
    int light = 299 * rgb[0] + 587 * rgb[1] + 114 * rgb[2] >= 128 * 1000;
    ink[0] = ink[1] = ink[2] = light ? 0 : 255;
    int x0 = (int)lroundf(d->box.x), y0 = (int)lroundf(d->box.y);
    draw_frame(img, x0, y0, (int)lroundf(d->box.x + d->box.w), (int)lroundf(d->box.y + d->box.h), FRAME, rgb);
    char text[160];
    snprintf(text, sizeof text, "%s %.2f", name, (double)d->score);
    int w = draw_text_width(text) + 2 * PAD, h = FONT5X7_HEIGHT + 2 * PAD, top = y0 >= h ? y0 - h : y0;
    int left = x0 + w > img->width ? img->width - w : x0;
    left = left < 0 ? 0 : left;
    draw_fill(img, left, top, left + w, top + h, rgb);
    draw_text(img, left + PAD, top + PAD, text, ink);
}

int cli_predict_detect(const char *cmd, const gsq_model *m, gsq_forward_fn forward, void *ctx, char *const *images,
                       int n, const char *out_dir, float threshold)
{
    const int side = gsq_model_input_size(m);
    const gsq_output_shape shape = gsq_model_output_shape(m);
    gsq_error err = {0};
    if (gsq_output_prepare_dir(out_dir, &err) != GSQ_OK) return cli_report(cmd, &err);
    gsq_transform t;
    gsq_transform_detect_defaults(&t, side);
    float *input = malloc((size_t)3 * side * side * sizeof(float));
    gsq_detection *dets = malloc((size_t)shape.queries * sizeof(gsq_detection));
    int failures = 0;
    for (int i = 0; input && dets && i < n; i++) {
        gsq_image img = {0};
        const float *logits = NULL;
        char path[4096], name[128];
        int kept = 0;
        cli_overlay_path(out_dir, images[i], "det.png", path, sizeof path);
        gsq_status st = gsq_image_load(images[i], &img, &err);
        if (st == GSQ_OK) st = gsq_transform_detect_eval(&t, &img, NULL, input, NULL, &err);
        if (st == GSQ_OK) st = forward(ctx, input, 1, &logits, &err);
        if (st == GSQ_OK) {
            gsq_detect_decode(logits, &shape, 0, i, img.width, img.height, dets);
            kept = keep(dets, shape.queries, threshold, img.width, img.height);
            for (int k = kept - 1; k >= 0; k--) /* the best drawn last, on top */
                draw(&img, &dets[k], class_name(m, dets[k].category, name, sizeof name));
            st = gsq_image_save_png(&img, path, &err);
        }
        if (st == GSQ_OK) {
            printf("%s → %s\n", images[i], path);
            for (int k = 0; k < kept; k++) {
                const gsq_box *b = &dets[k].box;
                printf("  %s  %.2f  x %.1f  y %.1f  w %.1f  h %.1f\n",
                       class_name(m, dets[k].category, name, sizeof name), (double)dets[k].score,
                       (double)b->x, (double)b->y, (double)b->w, (double)b->h);
            }
            if (!kept) printf("  no object above %.2f\n", (double)threshold);
        } else {
            cli_report(cmd, &err);
            failures++;
        }
        gsq_image_free(&img);
    }
    int oom = !input || !dets;
    free(input);
    free(dets);
    if (oom) {
        gsq_fail(&err, GSQ_ERR_NOMEM, "out of memory");
        return cli_report(cmd, &err);
    }
    return failures ? 1 : 0;
}
