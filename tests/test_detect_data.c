/* Tests of the detection data: the synthetic detection dataset (names and ids, determinism from
 * (seed, split, index), splits and seeds differ, one to six objects of every class, boxes inside
 * the image and tight on the pixels each object shows, flat visible shapes, bad arguments), the
 * detection transforms (eval's targets exact and its pixels those of segmentation's eval; crowd
 * regions, boxes outside and slivers left out; train crops and flips that keep a solid box under
 * its target; determinism; the target limit; bad arguments) and the loader's detection batches
 * (targets and objects, in order and deterministic, freed as slots are reused). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/resample.h"
#include "data/synthetic_detect.h"
#include "gpusq/data.h"
#include "gpusq/loader.h"
#include "synthetic_dataset.h"
#include "test_util.h"

#define K GSQ_SYNTHETIC_DET_CLASSES

static gsq_dataset *make(size_t size, int res, uint64_t seed, int split)
{
    return synthetic_make(gsq_dataset_synthetic_detect, size, res, seed, split);
}

static void test_names(void)
{
    gsq_dataset *tr = make(10, 64, 1, 0), *va = make(5, 64, 1, 1);
    if (tr && va) {
        CHECK(strcmp(tr->name, "synthetic-detect/train") == 0 && strcmp(va->name, "synthetic-detect/val") == 0,
              "names %s, %s", tr->name, va->name);
        CHECK(tr->task == GSQ_TASK_DETECT && tr->size == 10 && tr->num_classes == K, "task %d size %zu classes %d",
              tr->task, tr->size, tr->num_classes);
        static const char *names[K] = {"disc", "square", "triangle", "ring", "cross"};
        for (int c = 0; c < K; c++)
            CHECK(tr->class_names && strcmp(tr->class_names[c], names[c]) == 0 && tr->category_ids &&
                  tr->category_ids[c] == c + 1, "class %d", c);
        gsq_sample s;
        gsq_error err;
        CHECK(tr->get(tr, 10, &s, &err) == GSQ_ERR_ARG && strstr(err.msg, "synthetic-detect/train") &&
              !s.image.pixels && !s.objects.objects, "index past the end: %s", err.msg);
    }
    gsq_dataset_free(tr);
    gsq_dataset_free(va);
    gsq_dataset *ds = (gsq_dataset *)1;
    gsq_error err;
    CHECK(gsq_dataset_synthetic_detect(&ds, 0, 64, 1, 0, &err) == GSQ_ERR_ARG && ds == NULL, "size 0");
    CHECK(gsq_dataset_synthetic_detect(&ds, 4, 31, 1, 0, &err) == GSQ_ERR_ARG, "resolution 31");
    CHECK(gsq_dataset_synthetic_detect(&ds, 4, 4097, 1, 0, &err) == GSQ_ERR_ARG, "resolution 4097");
    CHECK(gsq_dataset_synthetic_detect(&ds, 4, 64, 1, 2, &err) == GSQ_ERR_ARG, "split 2");
    CHECK(gsq_dataset_synthetic_detect(NULL, 4, 64, 1, 0, &err) == GSQ_ERR_ARG, "NULL output");
}

static float luma(const uint8_t *p) { return (0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]) / 255.0f; }

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Checks object i of s against the pixels it shows (owner == i): the box is their bounds; away
 * from its edges the colour is flat (noise only); its luminance stands off the background's median
 * (bg_median < 0: none measured). Returns the shown pixel count. */
static int check_object(const gsq_sample *s, const int8_t *owner, int i, float bg_median, size_t index)
{
    int res = s->image.width, x0 = res, y0 = res, x1 = -1, y1 = -1, shown = 0;
    double sum[3] = {0}, lsum = 0;
    int interior = 0;
    for (int y = 0; y < res; y++)
        for (int x = 0; x < res; x++) {
            if (owner[y * res + x] != i) continue;
            shown++;
            x0 = x < x0 ? x : x0;
            x1 = x > x1 ? x : x1;
            y0 = y < y0 ? y : y0;
            y1 = y > y1 ? y : y1;
            int inner = x > 0 && y > 0 && x + 1 < res && y + 1 < res;
            for (int dy = -1; dy <= 1 && inner; dy++)
                for (int dx = -1; dx <= 1; dx++) inner &= owner[(y + dy) * res + x + dx] == i;
            if (!inner) continue;
            const uint8_t *p = s->image.pixels + (size_t)(y * res + x) * 3;
            for (int c = 0; c < 3; c++) sum[c] += p[c];
            lsum += luma(p);
            interior++;
        }
    const gsq_object *o = &s->objects.objects[i];
    CHECK(shown > 0 && o->box.x == (float)x0 && o->box.y == (float)y0 && o->box.w == (float)(x1 - x0 + 1) &&
          o->box.h == (float)(y1 - y0 + 1), "sample %zu object %d: box %g %g %g %g, shown pixels span %d..%d, %d..%d",
          index, i, (double)o->box.x, (double)o->box.y, (double)o->box.w, (double)o->box.h, x0, x1, y0, y1);
    if (interior == 0) return shown;
    int ragged = 0;
    for (int y = 1; y + 1 < res; y++)
        for (int x = 1; x + 1 < res; x++) {
            int inner = 1;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) inner &= owner[(y + dy) * res + x + dx] == i;
            const uint8_t *p = s->image.pixels + (size_t)(y * res + x) * 3;
            for (int c = 0; c < 3 && inner; c++) ragged += fabs(p[c] - sum[c] / interior) > 0.12 * 255.0;
        }
    CHECK(ragged == 0, "sample %zu object %d: %d interior values off its flat colour", index, i, ragged);
    if (bg_median >= 0.0f)
        CHECK(fabs(lsum / interior - bg_median) > 0.1, "sample %zu object %d: luma %.3f against background %.3f",
              index, i, lsum / interior, (double)bg_median);
    return shown;
}

/* The median luminance of the background pixels at least 3 pixels from every object; -1 when
 * there are fewer than 20. */
static float background_median(const gsq_sample *s, const int8_t *owner, float *scratch)
{
    int res = s->image.width, n = 0;
    for (int y = 0; y < res; y++)
        for (int x = 0; x < res; x++) {
            int far = 1;
            for (int dy = -3; dy <= 3 && far; dy++)
                for (int dx = -3; dx <= 3; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy >= 0 && yy < res && xx >= 0 && xx < res && owner[yy * res + xx] >= 0) far = 0;
                }
            if (far) scratch[n++] = luma(s->image.pixels + (size_t)(y * res + x) * 3);
        }
    if (n < 20) return -1.0f;
    qsort(scratch, (size_t)n, sizeof *scratch, cmp_float);
    return scratch[n / 2];
}

static void test_objects(void)
{
    enum { N = 300, RES = 64 };
    gsq_dataset *ds = make(N, RES, 5, 0);
    if (!ds) return;
    int8_t *owner = malloc(RES * RES);
    float *scratch = malloc(RES * RES * sizeof *scratch);
    int counts[8] = {0}, classes[K] = {0}, bad = 0, hidden_ok = 1;
    double side_min = 1, side_max = 0;
    for (size_t i = 0; i < N; i++) {
        gsq_sample s, again;
        gsq_error err;
        if (gsq_syn_detect_draw(ds, i, &s, owner, &err) != GSQ_OK) {
            CHECK(0, "draw %zu: %s", i, err.msg);
            break;
        }
        CHECK(ds->get(ds, i, &again, &err) == GSQ_OK && again.objects.count == s.objects.count &&
              memcmp(again.image.pixels, s.image.pixels, RES * RES * 3) == 0 &&
              memcmp(again.objects.objects, s.objects.objects, (size_t)s.objects.count * sizeof(gsq_object)) == 0,
              "sample %zu: get differs from the drawing", i);
        gsq_sample_free(&again);
        const gsq_objects *o = &s.objects;
        CHECK(o->image_id == (int64_t)i && o->width == RES && o->height == RES, "sample %zu: id %lld, %dx%d", i,
              (long long)o->image_id, o->width, o->height);
        counts[o->count < 0 || o->count > 7 ? 7 : o->count]++;
        float bg = background_median(&s, owner, scratch);
        for (int k = 0; k < o->count; k++) {
            const gsq_object *b = &o->objects[k];
            bad += b->box.x < 0 || b->box.y < 0 || b->box.w < 1 || b->box.h < 1 || b->box.x + b->box.w > RES ||
                   b->box.y + b->box.h > RES || b->category < 0 || b->category >= K || b->iscrowd ||
                   b->area != b->box.w * b->box.h;
            if (b->category >= 0 && b->category < K) classes[b->category]++;
            double side = fmax(b->box.w, b->box.h) / RES;
            side_min = fmin(side_min, side);
            side_max = fmax(side_max, side);
            int shown = check_object(&s, owner, k, bg, i);
            hidden_ok &= shown > 0;
        }
        gsq_sample_free(&s);
    }
    CHECK(counts[0] == 0 && counts[7] == 0, "%d samples without objects, %d with more than 6", counts[0], counts[7]);
    for (int c = 1; c <= 6; c++) CHECK(counts[c] > 10, "only %d samples with %d objects", counts[c], c);
    for (int c = 0; c < K; c++) CHECK(classes[c] > 100, "class %d: %d objects", c, classes[c]);
    CHECK(bad == 0 && hidden_ok, "%d objects with a box outside the image or bad fields", bad);
    CHECK(side_min > 0.05 && side_min < 0.2 && side_max > 0.35 && side_max <= 0.5, "box sides %.2f..%.2f of the image",
          side_min, side_max);
    free(owner);
    free(scratch);
    gsq_dataset_free(ds);
}

/* ---- transforms ------------------------------------------------------------------------- */

/* A w×h gray (128) image with a solid red rectangle (x, y, rw, rh). */
static gsq_image red_box_image(int w, int h, int x, int y, int rw, int rh)
{
    gsq_image img;
    gsq_error err;
    if (gsq_image_alloc(&img, w, h, &err) != GSQ_OK) abort();
    for (int yy = 0; yy < h; yy++)
        for (int xx = 0; xx < w; xx++) {
            int in = xx >= x && xx < x + rw && yy >= y && yy < y + rh;
            uint8_t *p = img.pixels + (size_t)(yy * w + xx) * 3;
            p[0] = in ? 230 : 128;
            p[1] = p[2] = in ? 20 : 128;
        }
    return img;
}

static gsq_objects objects_of(int w, int h, int n, const gsq_object *list)
{
    gsq_objects o;
    gsq_error err;
    if (gsq_objects_alloc(&o, 1, w, h, n, &err) != GSQ_OK) abort();
    if (n) memcpy(o.objects, list, (size_t)n * sizeof *list);
    return o;
}

static int near(float a, double b) { return fabs((double)a - b) < 1e-6; }

static void test_eval(void)
{
    enum { W = 40, H = 30, S = 24 };
    gsq_image img = red_box_image(W, H, 4, 3, 10, 6);
    const gsq_object list[] = {
        {{4, 3, 10, 6}, 2, 0, 60},      /* kept as it is */
        {{0, 0, 40, 30}, 1, 1, 1200},   /* crowd: never a target */
        {{35, 25, 10, 10}, 3, 0, 100},  /* clipped to 5 × 5 */
        {{-6, 10, 8, 4}, 0, 0, 32},     /* clipped to 2 × 4 */
        {{50, 10, 5, 5}, 1, 0, 25},     /* outside */
        {{10, 10, 0.5f, 9}, 1, 0, 4.5f}, /* under a pixel wide */
        {{39.5f, 10, 3, 3}, 1, 0, 9},   /* half a pixel left inside */
    };
    gsq_objects objs = objects_of(W, H, 7, list);
    gsq_transform t;
    gsq_transform_detect_defaults(&t, S);
    CHECK(t.scale_min == 0.3f && t.scale_max == 1.0f && t.hflip == 0.5f && t.jitter == 1.0f &&
          t.ratio_min == 0.75f && fabsf(t.ratio_max - 4.0f / 3.0f) < 1e-7f, "defaults");
    float *out = malloc(3 * S * S * sizeof *out), *ref = malloc(3 * S * S * sizeof *ref);
    gsq_targets tg;
    gsq_error err;
    CHECK(gsq_transform_detect_eval(&t, &img, &objs, out, &tg, &err) == GSQ_OK, "eval: %s", err.msg);
    CHECK(tg.count == 3, "%d targets, want 3", tg.count);
    if (tg.count == 3) {
        CHECK(tg.classes[0] == 2 && near(tg.boxes[0].cx, 9.0 / 40) && near(tg.boxes[0].cy, 6.0 / 30) &&
              near(tg.boxes[0].w, 10.0 / 40) && near(tg.boxes[0].h, 6.0 / 30), "target 0");
        CHECK(tg.classes[1] == 3 && near(tg.boxes[1].cx, 37.5 / 40) && near(tg.boxes[1].cy, 27.5 / 30) &&
              near(tg.boxes[1].w, 5.0 / 40) && near(tg.boxes[1].h, 5.0 / 30), "target 1 (clipped)");
        CHECK(tg.classes[2] == 0 && near(tg.boxes[2].cx, 1.0 / 40) && near(tg.boxes[2].cy, 12.0 / 30) &&
              near(tg.boxes[2].w, 2.0 / 40) && near(tg.boxes[2].h, 4.0 / 30), "target 2 (clipped)");
    }
    /* the pixels are segmentation's eval of the same image */
    gsq_transform ts;
    gsq_transform_segment_defaults(&ts, S);
    CHECK(gsq_transform_segment_eval(&ts, &img, NULL, ref, NULL, &err) == GSQ_OK, "segment eval: %s", err.msg);
    CHECK(memcmp(out, ref, 3 * S * S * sizeof *out) == 0, "detection eval differs from segmentation eval");
    /* objects and targets may be NULL */
    CHECK(gsq_transform_detect_eval(&t, &img, NULL, ref, &tg, &err) == GSQ_OK && tg.count == 0, "no objects");
    CHECK(gsq_transform_detect_eval(&t, &img, &objs, ref, NULL, &err) == GSQ_OK &&
          memcmp(out, ref, 3 * S * S * sizeof *out) == 0, "no targets");
    /* at most GSQ_DETECT_MAX_TARGETS, the first ones */
    gsq_object many[150];
    for (int i = 0; i < 150; i++) many[i] = (gsq_object){{(float)(i % 30), 1, 5, 5}, i % 4, 0, 25};
    gsq_objects lots = objects_of(W, H, 150, many);
    CHECK(gsq_transform_detect_eval(&t, &img, &lots, out, &tg, &err) == GSQ_OK && tg.count == GSQ_DETECT_MAX_TARGETS &&
          tg.classes[99] == 99 % 4, "%d targets of 150", tg.count);
    gsq_objects_free(&lots);
    /* bad arguments */
    CHECK(gsq_transform_detect_eval(NULL, &img, &objs, out, &tg, &err) == GSQ_ERR_ARG, "NULL transform");
    CHECK(gsq_transform_detect_eval(&t, &img, &objs, NULL, &tg, &err) == GSQ_ERR_ARG, "NULL output");
    gsq_objects wrong = objects_of(W + 1, H, 1, list);
    CHECK(gsq_transform_detect_eval(&t, &img, &wrong, out, &tg, &err) == GSQ_ERR_SHAPE && strstr(err.msg, "41x30"),
          "objects of another size: %s", err.msg);
    gsq_objects_free(&wrong);
    gsq_objects broken = {.count = 2};
    CHECK(gsq_transform_detect_eval(&t, &img, &broken, out, &tg, &err) == GSQ_ERR_ARG, "objects without array");
    gsq_rng rng;
    gsq_rng_seed(&rng, 1, 2);
    t.jitter = 3.0f;
    CHECK(gsq_transform_detect_train(&t, &img, &objs, &rng, out, &tg, &err) == GSQ_ERR_ARG && strstr(err.msg, "jitter"),
          "jitter 3: %s", err.msg);
    t.jitter = 1.0f;
    CHECK(gsq_transform_detect_train(&t, &img, &objs, NULL, out, &tg, &err) == GSQ_ERR_ARG, "NULL rng");
    t.size = 0;
    CHECK(gsq_transform_detect_eval(&t, &img, &objs, out, &tg, &err) == GSQ_ERR_ARG, "size 0");
    gsq_objects_free(&objs);
    gsq_image_free(&img);
    free(out);
    free(ref);
}

/* Red and gray as the transform writes them (channel 0 and 1 denormalised back to [0, 1]). */
static float chan(const gsq_transform *t, const float *out, int c, int x, int y)
{
    int s = t->size;
    return out[(size_t)c * s * s + (size_t)y * s + x] * t->std[c] + t->mean[c];
}

static void test_train(void)
{
    enum { W = 80, H = 60, S = 32 };
    gsq_image img = red_box_image(W, H, 12, 15, 30, 20); /* left of centre: flips move it */
    const gsq_object list[] = {{{12, 15, 30, 20}, 1, 0, 600}, {{0, 0, 80, 60}, 2, 1, 4800}};
    gsq_objects objs = objects_of(W, H, 2, list);
    gsq_transform t;
    gsq_transform_detect_defaults(&t, S);
    t.jitter = 0.0f; /* colours kept, so the box's pixels can be told */
    float *out = malloc(3 * S * S * sizeof *out), *again = malloc(3 * S * S * sizeof *again);
    int flipped = 0, unflipped = 0, with_target = 0, wrong = 0, crowd = 0, partial = 0;
    for (uint64_t k = 0; k < 300; k++) {
        gsq_rng rng, same;
        gsq_rng_seed(&rng, 7, k);
        gsq_rng_seed(&same, 7, k);
        gsq_targets tg;
        gsq_rrc_params p;
        gsq_error err;
        if (gsq_transform_detect_train(&t, &img, &objs, &rng, out, &tg, &err) != GSQ_OK ||
            gsq_transform_train_params(&t, W, H, &same, &p, &err) != GSQ_OK) {
            CHECK(0, "train %llu: %s", (unsigned long long)k, err.msg);
            break;
        }
        flipped += p.flip;
        unflipped += !p.flip;
        /* the box clipped to the crop, in the crop's fractions, mirrored with it */
        double cx0 = fmax(12, p.left), cx1 = fmin(42, p.left + p.box_w);
        double cy0 = fmax(15, p.top), cy1 = fmin(35, p.top + p.box_h);
        int want = cx1 - cx0 >= 1 && cy1 - cy0 >= 1;
        crowd += tg.count != want || (tg.count == 1 && tg.classes[0] != 1);
        if (tg.count != 1 || !want) continue;
        with_target++;
        const gsq_nbox *b = &tg.boxes[0];
        double f0 = (cx0 - p.left) / p.box_w, f1 = (cx1 - p.left) / p.box_w;
        double wcx = p.flip ? 1 - (f0 + f1) / 2 : (f0 + f1) / 2, wcy = ((cy0 + cy1) / 2 - p.top) / p.box_h;
        CHECK(near(b->cx, wcx) && near(b->cy, wcy) && near(b->w, f1 - f0) && near(b->h, (cy1 - cy0) / p.box_h),
              "draw %llu: target %g %g %g %g", (unsigned long long)k, (double)b->cx, (double)b->cy, (double)b->w,
              (double)b->h);
        double x0 = (b->cx - b->w / 2) * S, x1 = (b->cx + b->w / 2) * S;
        double y0 = (b->cy - b->h / 2) * S, y1 = (b->cy + b->h / 2) * S;
        partial += b->w < 0.99f || b->h < 0.99f;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                double px = x + 0.5, py = y + 0.5;
                int inside = px > x0 + 1 && px < x1 - 1 && py > y0 + 1 && py < y1 - 1;
                int outside = px < x0 - 1 || px > x1 + 1 || py < y0 - 1 || py > y1 + 1;
                float r = chan(&t, out, 0, x, y), g = chan(&t, out, 1, x, y);
                int red = r > 0.8f && g < 0.2f, gray = fabsf(r - 0.5f) < 0.03f && fabsf(g - 0.5f) < 0.03f;
                wrong += (inside && !red) || (outside && !gray);
            }
    }
    CHECK(crowd == 0, "%d draws with a crowd, missing or extra target", crowd);
    CHECK(with_target > 150 && partial > 20, "%d draws with the target, %d cut", with_target, partial);
    CHECK(flipped > 20 && unflipped > 20, "%d flipped, %d not", flipped, unflipped);
    CHECK(wrong == 0, "%d pixels disagree with their target box", wrong);

    /* deterministic; jitter changes the pixels but not the crop or the targets */
    gsq_targets a, b, c;
    gsq_error err;
    gsq_rng r1, r2, r3;
    gsq_rng_seed(&r1, 3, 4);
    gsq_rng_seed(&r2, 3, 4);
    gsq_rng_seed(&r3, 3, 4);
    t.jitter = 1.0f;
    CHECK(gsq_transform_detect_train(&t, &img, &objs, &r1, out, &a, &err) == GSQ_OK &&
          gsq_transform_detect_train(&t, &img, &objs, &r2, again, &b, &err) == GSQ_OK, "train: %s", err.msg);
    CHECK(memcmp(out, again, 3 * S * S * sizeof *out) == 0 && memcmp(&a, &b, sizeof a) == 0, "not deterministic");
    t.jitter = 0.0f;
    CHECK(gsq_transform_detect_train(&t, &img, &objs, &r3, again, &c, &err) == GSQ_OK &&
          memcmp(&a, &c, sizeof a) == 0, "jitter moved the targets");
    gsq_objects_free(&objs);
    gsq_image_free(&img);
    free(out);
    free(again);
}

/* ---- the loader ------------------------------------------------------------------------- */

/* Reads `batches` batches; *hash gets a hash of their images, targets and objects. */
static void read_batches(gsq_dataset *ds, int train, int workers, int batches, uint64_t *hash)
{
    gsq_loader_config cfg = {.batch_size = 4, .train = train, .augment = train, .seed = 9, .workers = workers,
                             .prefetch = 2};
    gsq_transform_detect_defaults(&cfg.transform, 32);
    gsq_loader *ld = NULL;
    gsq_error err;
    *hash = 0xcbf29ce484222325ULL;
    CHECK(gsq_loader_create(&ld, ds, &cfg, 0, 0, &err) == GSQ_OK, "loader: %s", err.msg);
    for (int k = 0; ld && k < batches; k++) {
        gsq_batch b;
        if (gsq_loader_next(ld, &b, &err) != GSQ_OK) break;
        CHECK(b.targets && b.objects && !b.maps && b.n > 0, "batch %d: targets %p objects %p", k, (void *)b.targets,
              (void *)b.objects);
        if (!b.targets || !b.objects) break;
        *hash = fnv1a(b.images, (size_t)b.n * 3 * 32 * 32 * sizeof(float), *hash);
        for (int i = 0; i < b.n; i++) {
            const gsq_objects *o = &b.objects[i];
            *hash = fnv1a(&b.targets[i].count, sizeof(int), *hash);
            *hash = fnv1a(b.targets[i].boxes, (size_t)b.targets[i].count * sizeof(gsq_nbox), *hash);
            *hash = fnv1a(o->objects, (size_t)o->count * sizeof *o->objects, *hash);
            CHECK(o->width == 64 && o->height == 64 && o->count >= 1 && o->count <= 6, "batch %d sample %d", k, i);
            CHECK(train || (o->image_id == (int64_t)(b.index * 4 + i) % 10), "eval batch %ld sample %d: image %lld",
                  b.index, i, (long long)o->image_id);
            CHECK(train || b.targets[i].count == o->count, "eval: %d targets for %d objects", b.targets[i].count,
                  o->count);
            for (int t = 0; t < b.targets[i].count; t++) {
                const gsq_nbox *n = &b.targets[i].boxes[t];
                CHECK(n->w > 0 && n->h > 0 && n->cx - n->w / 2 > -1e-6f && n->cx + n->w / 2 < 1 + 1e-6f &&
                      b.targets[i].classes[t] >= 0 && b.targets[i].classes[t] < K, "target outside the input");
            }
        }
    }
    gsq_loader_destroy(ld);
}

static void test_loader(void)
{
    gsq_dataset *ds = make(10, 64, 2, 0);
    if (!ds) return;
    uint64_t train1, train2, eval1, eval2;
    read_batches(ds, 1, 1, 9, &train1); /* three epochs: slots refilled many times */
    read_batches(ds, 1, 3, 9, &train2);
    read_batches(ds, 0, 1, 6, &eval1);
    read_batches(ds, 0, 2, 6, &eval2);
    CHECK(train1 == train2 && eval1 == eval2 && train1 != eval1, "batches depend on the worker count");
    gsq_dataset_free(ds);
    /* other tasks' batches carry neither */
    gsq_dataset *cls = NULL;
    gsq_error err;
    CHECK(gsq_dataset_synthetic(&cls, 8, 16, 1, 0, &err) == GSQ_OK, "synthetic: %s", err.msg);
    gsq_loader_config cfg = {.batch_size = 4, .seed = 1, .workers = 1, .prefetch = 1};
    gsq_transform_defaults(&cfg.transform, 16);
    cfg.transform.crop_pct = 1.0f;
    gsq_loader *ld = NULL;
    gsq_batch b;
    CHECK(cls && gsq_loader_create(&ld, cls, &cfg, 0, 0, &err) == GSQ_OK && gsq_loader_next(ld, &b, &err) == GSQ_OK &&
          !b.targets && !b.objects && b.n == 4, "classification batch: %s", err.msg);
    gsq_loader_destroy(ld);
    gsq_dataset_free(cls);
}

int main(void)
{
    test_names();
    check_determinism(gsq_dataset_synthetic_detect, 48);
    test_objects();
    test_eval();
    test_train();
    test_loader();
    return test_finish("test_detect_data");
}
