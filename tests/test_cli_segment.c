/* The gpusq program on a segmentation task end to end: the synthetic set written in the ADE20K
 * layout and read back, a segmenter trained (and a stopped run resumed bit for bit), evaluated
 * (mIoU, per-class IoU), made from a classifier's backbone, compressed to 2:4 INT8 and 4:8 INT4,
 * run on the engine against its fake-quantized twin pixel by pixel, and its overlays predicted. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_run.h"
#include "test_util.h"

/* Under AddressSanitizer the program is ten times slower: the same paths run on a tenth of the
 * data, and the accuracies, which need the full runs, are checked in the release build only. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#define TRAIN_SIZE "256"
#else
#define SANITIZED 0
#define TRAIN_SIZE "2048"
#endif

/* The number after `key` in out, or -1. */
static double number_after(const char *key)
{
    const char *p = strstr(out, key);
    return p ? atof(p + strlen(key)) : -1;
}

/* 1 when path is a PNG of width × height. */
static int png_of_size(const char *path, int width, int height)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) return 0;
    int ok = (int)img.width == width && (int)img.height == height;
    png_image_free(&img);
    return ok;
}

int main(void)
{
    char args[2048], dir[64] = "/tmp/gsq_test_cli_segment_XXXXXX", path[256];
    if (!mkdtemp(dir)) return 1;

    /* the layout: written, then read by train and eval */
    snprintf(args, sizeof args, "dataset --out '%s/ade' --train-size 64 --val-size 40 --resolution 40", dir);
    CHECK(run(args) == 0 && strstr(out, "64 training samples"), "dataset: %s", out);
    snprintf(path, sizeof path, "%s/ade/annotations/validation/000039.png", dir);
    CHECK(png_of_size(path, 40, 40), "%s is not a 40×40 PNG", path);

    const char *small = "--model gpusq_demo --data synthetic-segment --train-size " TRAIN_SIZE " --val-size 128 "
                        "--batch 32 --epochs 4 --lr 1e-3 --no-augment --threads 2";
    snprintf(args, sizeof args, "train %s --out '%s/seg.safetensors'", small, dir);
    CHECK(run(args) == 0 && strstr(out, "a segment model of 6 classes from gpusq_demo"), "train: %s", out);
    double miou = number_after("validation: mIoU");
    CHECK(miou > (SANITIZED ? 0 : 60) && miou <= 100, "a trained segmenter's mIoU is %g%%: %s", miou, out);
    snprintf(args, sizeof args, "train %s --out '%s/b.safetensors' --max-steps 5", small, dir);
    CHECK(run(args) == 0 && strstr(out, "stopped at step 5"), "stopped run: %s", out);
    snprintf(args, sizeof args, "train --resume '%s/b.ckpt.safetensors' %s --out '%s/b.safetensors'", dir, small + 18,
             dir);
    CHECK(run(args) == 0 && strstr(out, "trained"), "resumed run: %s", out);
    snprintf(args, sizeof args, "cmp -s '%s/seg.safetensors' '%s/b.safetensors'", dir, dir);
    CHECK(system(args) == 0, "a resumed segmenter's run must write the same weights as an uninterrupted one");

    snprintf(args, sizeof args, "eval '%s/seg.safetensors' --data 'ade20k:%s/ade' --threads 2", dir, dir);
    CHECK(run(args) == 0 && strstr(out, "ade20k:") && strstr(out, "(40 images)") && strstr(out, "background") &&
              strstr(out, "stripes"), "eval on the ADE20K layout: %s", out);
    snprintf(args, sizeof args, "eval '%s/seg.safetensors' --data synthetic --val-size 8", dir);
    CHECK(run(args) == 1 && strstr(out, "is a segment model but synthetic/val is a classify dataset"), "%s", out);
    snprintf(args, sizeof args, "train --model gpusq_demo --data 'ade20k:%s/ade' --epochs 1 --batch 16 --threads 2 "
             "--out '%s/seven.safetensors'", dir, dir);
    CHECK(run(args) == 0 && strstr(out, "of 150 classes"), "ADE20K's 150 classes by default: %s", out);

    /* a classifier's backbone as the start of a segmenter */
    snprintf(args, sizeof args, "train --model gpusq_demo --data synthetic --train-size 64 --val-size 32 --batch 32 "
             "--epochs 1 --threads 2 --out '%s/cls.safetensors'", dir);
    CHECK(run(args) == 0, "classifier: %s", out);
    snprintf(args, sizeof args, "train --weights '%s/cls.safetensors' --data synthetic-segment --train-size 64 "
             "--val-size 32 --batch 32 --epochs 1 --threads 2 --out '%s/from_cls.safetensors'", dir, dir);
    CHECK(run(args) == 0 && strstr(out, "a segment model of 6 classes from") &&
              strstr(out, "54 tensors of its backbone copied"), "segmenter from a classifier: %s", out);

    /* compressed: within the acceptance's margins of the dense model, and the engine agreeing */
    snprintf(args, sizeof args, "compress --teacher '%s/seg.safetensors' --data synthetic-segment --train-size "
             TRAIN_SIZE " --val-size 128 --batch 32 --no-augment --threads 2 --out-dir '%s/comp'", dir, dir);
    CHECK(run(args) == 0 && strstr(out, "| model | mIoU |"), "compress: %s", out);
    double dense = number_after("| dense FP32 | "), int8 = number_after("| 2:4 sparse INT8 (W8A8) | "),
           int4 = number_after("| 4:8 sparse INT4 (W4A4) | ");
    CHECK(SANITIZED ? dense > 0 && int8 > 0 && int4 > 0 : dense > 60 && int8 > dense - 1.5 && int4 > dense - 4,
          "mIoU dense %g, 2:4 INT8 %g, 4:8 INT4 %g", dense, int8, int4);
    snprintf(path, sizeof path, "%s/comp/report.json", dir);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = '\0';
    if (f) fclose(f);
    CHECK(strstr(out, "\"miou\": 0.") != NULL, "report.json: %s", out);
    snprintf(args, sizeof args, "run '%s/comp/int8.gsq.safetensors' --data synthetic-segment --val-size 64 --check "
             "--threads 2", dir);
    CHECK(run(args) == 0 && strstr(out, "mIoU") && strstr(out, "of 65536 pixels"), "run --check: %s", out);
    double agree = number_after("pixels (");
    CHECK(agree >= 99.5, "the engine and the fake-quantized model agree on %g%% of pixels: %s", agree, out);

    /* overlays: from the float model and from the engine, named after the images */
    snprintf(args, sizeof args, "predict '%s/seg.safetensors' '%s/ade/images/validation/000001.jpg' "
             "'%s/missing.jpg' --out-dir '%s/pred'", dir, dir, dir, dir);
    CHECK(run(args) == 1 && strstr(out, "000001.seg.png") && strstr(out, "missing.jpg"), "predict: %s", out);
    snprintf(path, sizeof path, "%s/pred/000001.seg.png", dir);
    CHECK(png_of_size(path, 40, 40), "%s is not the image's overlay", path);
    snprintf(args, sizeof args, "run '%s/comp/int4.gsq.safetensors' '%s/ade/images/validation/000002.jpg' --check "
             "--out-dir '%s/pred'", dir, dir, dir);
    CHECK(run(args) == 0 && strstr(out, "of 1024 pixels"), "run IMAGE: %s", out);
    snprintf(path, sizeof path, "%s/pred/000002.seg.png", dir);
    CHECK(png_of_size(path, 40, 40), "%s is not the engine's overlay", path);

    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_cli_segment");
}
