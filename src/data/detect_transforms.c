/* The detection transforms of an 8-bit RGB image and its annotated objects into float (3, size,
 * size) and the training targets:
 *   eval  = the whole image stretched to size × size (bilinear, the geometry of segmentation's
 *           eval, aspect not kept), normalised;
 *   train = a box drawn as RandomResizedCrop draws it (gsq_transform_train_params: area fraction
 *           U(scale_min, scale_max), log-uniform aspect ratio in [ratio_min, ratio_max], ten tries
 *           then the central box; then the flip), stretched to size × size (bilinear), mirrored
 *           when flipped, jittered as segmentation's train (transform_common.c), normalised.
 * The targets follow the pixels: each non-crowd object's box is clipped to the box kept (the whole
 * image in eval) and dropped when under one pixel wide or high there (or not finite), mirrored
 * with the image, and written as its centre and size over the kept box's width and height
 * (DETR's normalised cx, cy, w, h), in the objects' order, the first GSQ_DETECT_MAX_TARGETS. */
#include "data/resample.h"
#include "data/transform_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void gsq_transform_detect_defaults(gsq_transform *t, int size)
{
    gsq_transform_defaults(t, size); /* ImageNet mean and std, ratio [3/4, 4/3], hflip 0.5 */
    t->scale_min = 0.3f;
    t->scale_max = 1.0f;
    t->jitter = 1.0f;
}

static gsq_status check_args(const gsq_transform *t, const gsq_image *img, const gsq_objects *objects,
                             const float *out, const char *what, gsq_error *err)
{
    if (!t || !img || !out) return gsq_fail(err, GSQ_ERR_ARG, "%s transform: NULL argument", what);
    gsq_status st = gsq_transform_check(t, img, what, err);
    if (st != GSQ_OK || !objects) return st;
    if (objects->count < 0 || (objects->count > 0 && !objects->objects))
        return gsq_fail(err, GSQ_ERR_ARG, "%s transform: %d objects without an array", what, objects->count);
    if ((objects->width || objects->height) && (objects->width != img->width || objects->height != img->height))
        return gsq_fail(err, GSQ_ERR_SHAPE, "%s transform: the objects of a %dx%d image for a %dx%d image", what,
                        objects->width, objects->height, img->width, img->height);
    return GSQ_OK;
}

/* The part of the image kept, in its pixels, and whether it is mirrored. */
typedef struct {
    int left, top, w, h;
    int flip;
} kept;

/* One box edge pair [a, a + len) clipped to [lo, lo + n), as fractions of n in *f0 and *f1;
 * 0 when less than a pixel is left (or the box is not finite). */
static int clip_side(float a, float len, int lo, int n, double *f0, double *f1)
{
    if (!isfinite(a) || !isfinite(len)) return 0;
    double v0 = fmax((double)a, (double)lo), v1 = fmin((double)a + (double)len, (double)lo + n);
    if (!(v1 - v0 >= 1.0)) return 0;
    *f0 = (v0 - lo) / n;
    *f1 = (v1 - lo) / n;
    return 1;
}

static void make_targets(const gsq_objects *objects, const kept *k, gsq_targets *targets)
{
    memset(targets, 0, sizeof *targets);
    for (int i = 0; objects && i < objects->count && targets->count < GSQ_DETECT_MAX_TARGETS; i++) {
        const gsq_object *o = &objects->objects[i];
        double x0, x1, y0, y1;
        if (o->iscrowd || !clip_side(o->box.x, o->box.w, k->left, k->w, &x0, &x1) ||
            !clip_side(o->box.y, o->box.h, k->top, k->h, &y0, &y1))
            continue;
        if (k->flip) {
            double mirrored = 1.0 - x1;
            x1 = 1.0 - x0;
            x0 = mirrored;
        }
        int n = targets->count++;
        targets->classes[n] = o->category;
        targets->boxes[n] = (gsq_nbox){(float)(0.5 * (x0 + x1)), (float)(0.5 * (y0 + y1)), (float)(x1 - x0),
                                       (float)(y1 - y0)};
    }
}

/* Stretches the kept part of img to size × size and writes it, mirrored if asked and jittered
 * (j NULL: not), into out; the targets (when wanted) from the objects. */
static gsq_status stretch(const gsq_transform *t, const gsq_image *img, const gsq_objects *objects, const kept *k,
                          const gsq_jitter *j, float *out, gsq_targets *targets, gsq_error *err)
{
    int s = t->size;
    uint8_t *rgb = malloc((size_t)s * s * 3);
    if (!rgb) return gsq_fail(err, GSQ_ERR_NOMEM, "detect transform: out of memory for a %dx%d input", s, s);
    size_t stride = (size_t)img->width * 3;
    const uint8_t *box = img->pixels + (size_t)k->top * stride + (size_t)k->left * 3;
    gsq_status st = gsq_resize_bilinear(box, k->w, k->h, stride, s, s, 0, 0, s, s, rgb, err);
    if (st == GSQ_OK) gsq_transform_write(t, rgb, s, s, k->flip, j, out);
    free(rgb);
    if (st == GSQ_OK && targets) make_targets(objects, k, targets);
    return st;
}

gsq_status gsq_transform_detect_eval(const gsq_transform *t, const gsq_image *img, const gsq_objects *objects,
                                     float *out, gsq_targets *targets, gsq_error *err)
{
    gsq_status st = check_args(t, img, objects, out, "detect eval", err);
    if (st != GSQ_OK) return st;
    kept k = {0, 0, img->width, img->height, 0};
    return stretch(t, img, objects, &k, NULL, out, targets, err);
}

gsq_status gsq_transform_detect_train(const gsq_transform *t, const gsq_image *img, const gsq_objects *objects,
                                      gsq_rng *rng, float *out, gsq_targets *targets, gsq_error *err)
{
    gsq_status st = check_args(t, img, objects, out, "detect train", err);
    if (st == GSQ_OK && !rng) st = gsq_fail(err, GSQ_ERR_ARG, "detect train transform: NULL random generator");
    if (st == GSQ_OK) st = gsq_jitter_check(t, "detect train", err);
    gsq_rrc_params p;
    if (st == GSQ_OK) st = gsq_transform_train_params(t, img->width, img->height, rng, &p, err);
    if (st != GSQ_OK) return st;
    gsq_jitter j;
    gsq_jitter_draw(t, rng, &j);
    kept k = {p.left, p.top, p.box_w, p.box_h, p.flip};
    return stretch(t, img, objects, &k, &j, out, targets, err);
}
