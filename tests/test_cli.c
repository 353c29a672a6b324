/* The gpusq program end to end: exit codes (0 ok, 1 failure, 2 usage), one-line error messages
 * naming the file, --help on every subcommand, `info` output on a shipped fixture, train/eval
 * with resume, prune (pattern of the written file, report, resume, mistakes), quantize (the
 * compressed files it writes, resume bit for bit, mistakes), and run / predict of image files. */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <png.h>

#include "cli_run.h"
#include "gpusq/compressed.h"
#include "gpusq/safetensors.h"
#include "gpusq/sparse.h"
#include "test_util.h"
#include "models/model_state.h" /* white-box: the model's fields */

static void write_png(const char *path, int w, int h)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_byte row[256 * 3];
    if (!f || !png || !info || w > 256 || setjmp(png_jmpbuf(png))) abort();
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) row[x * 3 + c] = (png_byte)((x * 5 + y * 3 + c * 80) % 256);
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

/* The top-5 lines `gpusq predict` and `gpusq run MODEL IMAGE` print under image's path in text
 * ("  PROB%  CLASS NAME"): fills cls and prob (in %), returns how many lines were read. */
static int parse_top5(const char *text, const char *image, int cls[5], double prob[5])
{
    char head[300];
    snprintf(head, sizeof head, "%s\n", image);
    const char *p = strstr(text, head);
    int n = 0;
    for (p = p ? p + strlen(head) : NULL; p && n < 5 && sscanf(p, " %lf%% %d", &prob[n], &cls[n]) == 2; n++)
        if ((p = strchr(p, '\n'))) p++;
    return n;
}

/* gpusq run MODEL IMAGE... on the compressed model q: top-5 as gpusq predict prints them, the
 * same top-1, --dense and --check, bad images and usage mistakes. */
static void test_run_images(const char *dir, const char *q)
{
    char args[1024], img[128], bad[128], missing[128];
    snprintf(img, sizeof img, "%s/img.png", dir);
    snprintf(bad, sizeof bad, "%s/bad.png", dir);
    snprintf(missing, sizeof missing, "%s/missing.jpg", dir);
    write_png(img, 48, 40);
    FILE *f = fopen(bad, "wb");
    CHECK(f && fputs("not an image", f) >= 0 && fclose(f) == 0, "could not write %s", bad);

    int cls[2][5], n[2];
    double prob[2][5];
    const char *cmds[2] = {"run", "predict"};
    for (int c = 0; c < 2; c++) {
        snprintf(args, sizeof args, "%s '%s' '%s'%s", cmds[c], q, img, c ? "" : " --threads 1");
        CHECK(run(args) == 0, "%s of an image: %s", cmds[c], out);
        n[c] = parse_top5(out, img, cls[c], prob[c]);
        CHECK(n[c] == 5, "%s printed %d class lines: %s", cmds[c], n[c], out);
        double sum = 0;
        for (int k = 0; k < n[c]; k++) {
            sum += prob[c][k];
            CHECK(cls[c][k] >= 0 && prob[c][k] > 0 && (k == 0 || prob[c][k] <= prob[c][k - 1]),
                  "%s: line %d out of order or out of range: %s", cmds[c], k, out);
        }
        CHECK(sum <= 100.05, "%s: the top-5 probabilities sum to %.2f%%: %s", cmds[c], sum, out);
    }
    /* the engine and the fake-quantized model agree on tiny models */
    CHECK(n[0] == 5 && n[1] == 5 && cls[0][0] == cls[1][0] && fabs(prob[0][0] - prob[1][0]) < 0.5,
          "run's top-1 %d (%.2f%%), predict's %d (%.2f%%)", cls[0][0], prob[0][0], cls[1][0], prob[1][0]);

    int dense_cls[5];
    double dense_prob[5];
    snprintf(args, sizeof args, "run '%s' '%s' --dense --check --threads 1", q, img);
    CHECK(run(args) == 0 && parse_top5(out, img, dense_cls, dense_prob) == 5 && dense_cls[0] == cls[0][0] &&
              strstr(out, "top-1 agrees on 1 of 1 images"),
          "run --dense --check of an image: %s", out);

    /* a bad image is named and skipped; the others still print; exit 1 */
    for (int c = 0; c < 2; c++) {
        snprintf(args, sizeof args, "%s '%s' '%s' '%s' '%s'", cmds[c], q, missing, img, bad);
        CHECK(run(args) == 1 && strstr(out, "missing.jpg") && strstr(out, "bad.png") &&
                  parse_top5(out, img, dense_cls, dense_prob) == 5 && dense_cls[0] == cls[0][0],
              "%s with bad images: %s", cmds[c], out);
    }

    /* images and a dataset do not mix; eval takes no images */
    snprintf(args, sizeof args, "run '%s' '%s' --data synthetic", q, img);
    CHECK(run(args) == 2 && strstr(out, "--data") && strstr(out, "do not mix") && !strstr(out, "%"),
          "run with images and --data: %s", out);
    snprintf(args, sizeof args, "run '%s' --val-size 8 '%s'", q, img);
    CHECK(run(args) == 2 && strstr(out, "--val-size") && strstr(out, "do not mix"), "%s", out);
    snprintf(args, sizeof args, "eval '%s' '%s'", q, img);
    CHECK(run(args) == 2 && strstr(out, "unexpected argument") && strstr(out, "img.png"), "%s", out);
    CHECK(run("run --help") == 0 && strstr(out, "IMAGE..."), "%s", out);
}

/* Every layer the file's metadata lists as pruned obeys the pattern. */
static void check_sparse_file(const char *path, gsq_sparse_pattern pattern)
{
    gsq_error err = {0};
    gsq_st_file *f = NULL;
    gsq_model *m = NULL;
    CHECK(gsq_st_open(&f, path, &err) == GSQ_OK, "%s", err.msg);
    if (!f) return;
    const char *layers = gsq_st_meta_get(f, "sparsity.layers"), *pat = gsq_st_meta_get(f, "sparsity.pattern");
    CHECK(layers && pat && !strcmp(pat, gsq_sparse_pattern_name(pattern)) && gsq_st_meta_get(f, "distill.feature_loss.3"),
          "sparsity metadata missing");
    CHECK(gsq_vit_load_open(&m, f, NULL, NULL, &err) == GSQ_OK, "%s", err.msg);
    int checked = 0;
    for (const char *p = layers; m && p && *p;) {
        const char *comma = strchr(p, ',');
        char name[GSQ_NAME_MAX] = {0};
        memcpy(name, p, comma ? (size_t)(comma - p) : strlen(p));
        const gsq_param *t = gsq_model_find_param(m, name);
        int cols = t ? (int)(t->numel / (size_t)t->shape[0]) : 0;
        CHECK(t && gsq_sparse_check(m->params + t->offset, (int)t->shape[0], cols, pattern), "%s breaks the pattern", name);
        checked++;
        p = comma ? comma + 1 : NULL;
    }
    CHECK(checked == 17, "%d pruned layers listed, want 17 (patch embedding and 4 blocks × 4)", checked);
    gsq_model_free(m);
    gsq_st_close(f);
}

/* gpusq prune on the committed demo teacher, briefly: outputs, resume, report and mistakes. */
static void test_prune(const char *dir)
{
    char args[1024], a[256], b[256];
    const char *common = "--teacher '" GSQ_SOURCE_DIR "/assets/demo_teacher.safetensors' --train-size 64 "
                         "--val-size 32 --batch 32 --epochs 2 --no-augment --threads 1";
    snprintf(a, sizeof a, "%s/s.safetensors", dir);
    snprintf(args, sizeof args, "prune %s --criterion permute --out '%s' --report '%s/s.json'", common, a, dir);
    CHECK(run(args) == 0 && strstr(out, "one-shot pruned") && strstr(out, "fine-tuned") && strstr(out, " → "),
          "prune: %s", out);
    check_sparse_file(a, GSQ_SPARSE_2_4);
    snprintf(args, sizeof args, "grep -q kept_magnitude_permuted '%s/s.json'", dir);
    CHECK(system(args) == 0, "the JSON report lacks the permutation's kept magnitude");
    snprintf(b, sizeof b, "%s/s2.safetensors", dir);
    snprintf(args, sizeof args, "prune %s --criterion permute --out '%s' --max-steps 1", common, b);
    CHECK(run(args) == 0 && strstr(out, "stopped at step 1"), "stopped prune: %s", out);
    snprintf(args, sizeof args, "prune %s --criterion permute --out '%s' --resume '%s/s2.ckpt.safetensors'", common, b, dir);
    CHECK(run(args) == 0 && strstr(out, "(resumed)"), "resumed prune: %s", out);
    snprintf(args, sizeof args, "cmp -s '%s' '%s'", a, b);
    CHECK(system(args) == 0, "a resumed prune must write the same weights as an uninterrupted one");
    snprintf(args, sizeof args, "prune %s --pattern 4:8 --out '%s/p48.safetensors'", common, dir);
    CHECK(run(args) == 0, "4:8: %s", out);
    snprintf(args, sizeof args, "%s/p48.safetensors", dir);
    check_sparse_file(args, GSQ_SPARSE_4_8);

    /* stage 2 on the stage-1 outputs: INT8 from 2:4, INT4 from 4:8 */
    const char *small = "--train-size 64 --val-size 32 --batch 32 --calib-batches 2 --no-augment --threads 1";
    for (int i = 0; i < 2; i++) {
        char q[256];
        snprintf(q, sizeof q, "%s/q%d.gsq.safetensors", dir, i);
        if (i == 0)
            snprintf(args, sizeof args, "quantize --teacher '%s' --mode int8 %s --out '%s' --report '%s/q0.json'", a,
                     small, q, dir);
        else
            snprintf(args, sizeof args, "quantize --teacher '%s/p48.safetensors' --mode int4 --epochs 1 %s --out '%s'",
                     dir, small, q);
        /* int4's defaults (learned scales) where the command line gives none, its --epochs where it does */
        CHECK(run(args) == 0 && strstr(out, "after QAT") && strstr(out, "compressed model in") &&
                  !strstr(out, "(LSQ)") == (i == 0) && strstr(out, " 1 epochs of batch 32"),
              "quantize: %s", out);
        gsq_error err = {0};
        gsq_model *m = NULL;
        gsq_compressed_info info;
        CHECK(gsq_compressed_load(&m, q, &info, &err) == GSQ_OK && info.sparse_linears == 17 &&
                  info.mode == (i ? GSQ_QMODE_INT4 : GSQ_QMODE_INT8) && info.pattern == (i ? GSQ_SPARSE_4_8 : GSQ_SPARSE_2_4),
              "the compressed file: %s", err.msg);
        gsq_model_free(m);
        snprintf(args, sizeof args, "eval '%s' --data synthetic --val-size 32 --threads 1", q);
        CHECK(run(args) == 0 && strstr(out, "(32 images)"), "eval of a compressed model: %s", out);
        /* the engine: the same images, all linears sparse, checked against the twin */
        snprintf(args, sizeof args, "run '%s' --data synthetic --val-size 32 --threads 1 --check", q);
        CHECK(run(args) == 0 && strstr(out, "17 of 17 linears sparse") && strstr(out, "(32 images") &&
                  strstr(out, "top-1 agrees on"),
              "run of a compressed model: %s", out);
        test_run_images(dir, q);
        snprintf(args, sizeof args, "bench '%s' --batch 2 --iters 1 --threads 1", q);
        CHECK(run(args) == 0 && strstr(out, "| dense FP32 |") && strstr(out, i ? "| 4:8 int4 |" : "| 2:4 int8 |") &&
                  strstr(out, "time per forward pass by part"),
              "bench of a compressed model: %s", out);
    }
    snprintf(args, sizeof args, "run '%s' --data synthetic --val-size 32", a);
    CHECK(run(args) == 1 && strstr(out, "not a compressed model"), "run of a float model: %s", out);
    CHECK(run("bench --config gpusq_demo --mode int5") == 2 && strstr(out, "int5"), "%s", out);
    CHECK(run("bench") == 2 && strstr(out, "--config"), "%s", out);
    CHECK(run("bench --config gpusq_demo --attention --batch 2 --iters 1 --threads 1") == 0 &&
              strstr(out, "attention quantized") && strstr(out, "| 2:4 int8 |"),
          "bench --attention: %s", out);
    snprintf(args, sizeof args, "bench '%s' --attention", a);
    CHECK(run(args) == 2 && strstr(out, "--attention is for --config"), "%s", out);
    /* stage 2 resumes bit for bit: stopped after a step, resumed, it writes q0's file byte for byte; for
     * INT4 with learned scales too (their Adam state travels in the checkpoint) */
    for (int i = 0; i < 2; i++) {
        char teacher[256], mode[64];
        snprintf(teacher, sizeof teacher, i ? "%s/p48.safetensors" : "%s", i ? dir : a);
        snprintf(mode, sizeof mode, "--mode %s", i ? "int4 --epochs 1" : "int8"); /* as q0, q1 were made */
        snprintf(args, sizeof args, "quantize --teacher '%s' %s %s --max-steps 1 --out '%s/r%d.gsq.safetensors'", teacher,
                 mode, small, dir, i);
        CHECK(run(args) == 0 && strstr(out, "stopped at step 1") && strstr(out, "resume with"), "stopped quantize: %s",
              out);
        snprintf(args, sizeof args, "quantize --teacher '%s' %s %s --out '%s/r%d.gsq.safetensors' "
                 "--resume '%s/r%d.gsq.ckpt.safetensors'", teacher, mode, small, dir, i, dir, i);
        CHECK(run(args) == 0 && strstr(out, "not measured (a resumed run)") && strstr(out, "after QAT"),
              "resumed quantize: %s", out);
        snprintf(args, sizeof args, "cmp -s '%s/q%d.gsq.safetensors' '%s/r%d.gsq.safetensors'", dir, i, dir, i);
        CHECK(system(args) == 0, "a resumed %s quantize must write the same file as an uninterrupted one", mode);
    }
    snprintf(args, sizeof args, "quantize --teacher '%s' --mode int4 --epochs 1 --lr 1e-4 %s --out "
             "'%s/x.gsq.safetensors' --resume '%s/r0.gsq.ckpt.safetensors'", a, small, dir, dir);
    CHECK(run(args) == 1 && strstr(out, "--mode int8 run"), "resume with another mode: %s", out);
    snprintf(args, sizeof args, "quantize --teacher '%s/assets/demo_teacher.safetensors' %s", GSQ_SOURCE_DIR, small);
    CHECK(run(args) == 1 && strstr(out, "gpusq prune first"), "quantize of a dense model: %s", out);
    CHECK(run("quantize --teacher x.safetensors --mode int3") == 2 && strstr(out, "--mode"), "%s", out);
    CHECK(run("quantize --teacher x.safetensors --lsq --lsq-lr 0") == 2 && strstr(out, "--lsq-lr"), "%s", out);

    /* the whole method; a second run reuses both stages */
    snprintf(args, sizeof args,
             "compress --teacher '%s/assets/demo_teacher.safetensors' --out-dir '%s/c' --modes int8 --train-size 64 "
             "--val-size 32 --batch 32 --no-augment --threads 1 --prune-epochs 1",
             GSQ_SOURCE_DIR, dir);
    CHECK(run(args) == 0 && strstr(out, "| 2:4 sparse INT8 (W8A8) |") && strstr(out, "report in"), "compress: %s", out);
    CHECK(run(args) == 0 && strstr(out, "reusing") && !strstr(out, "training "), "compress again: %s", out);
    snprintf(args, sizeof args, "test -s '%s/c/report.md' && test -s '%s/c/report.json' && test -s '%s/c/int8.gsq.safetensors'",
             dir, dir, dir);
    CHECK(system(args) == 0, "compress outputs missing");
    CHECK(run("compress --teacher x.safetensors") == 2 && strstr(out, "--out-dir"), "%s", out);

    CHECK(run("prune --epochs 1") == 2 && strstr(out, "--teacher"), "%s", out);
    CHECK(run("prune --teacher x.safetensors --pattern 3:4") == 2 && strstr(out, "--pattern"), "%s", out);
    CHECK(run("prune --teacher x.safetensors --criterion hessian") == 2, "%s", out);
    snprintf(args, sizeof args, "prune %s --feature-blocks 9", common);
    CHECK(run(args) == 1 && strstr(out, "4 blocks"), "%s", out);
}

int main(void)
{
    char args[1024], dir[64] = "/tmp/gsq_test_cli_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    const char *fixture = GSQ_SOURCE_DIR "/tests/fixtures/vit_token.model.safetensors";

    CHECK(run("--help") == 0 && strstr(out, "info"), "gpusq --help: %s", out);
    CHECK(run("") == 2, "no command should be a usage error");
    CHECK(run("frobnicate") == 2 && strstr(out, "unknown command 'frobnicate'"), "%s", out);
    CHECK(run("info --help") == 0 && strstr(out, "usage: gpusq info"), "%s", out);
    /* --help comes from the option tables, with each default as the command sets it */
    CHECK(run("train --help") == 0 && strstr(out, "--epochs N") && strstr(out, "passes over the training set (default 10)"),
          "%s", out);
    CHECK(run("prune --help") == 0 && strstr(out, "passes over the training set (default 2)") &&
              strstr(out, "--pattern P") && strstr(out, "(default 2:4)") && strstr(out, "(default sparse.safetensors)"),
          "%s", out);
    CHECK(run("quantize --help") == 0 && strstr(out, "--lsq-lr F") && strstr(out, "(default 10)") &&
              strstr(out, "(default int8)") && strstr(out, "(default 0.0001)"), "%s", out);
    CHECK(run("bench --help") == 0 && strstr(out, "the throughput batch (default 32)"), "%s", out);
    CHECK(run("info --config=deit_tiny_patch16_224") == 0 && strstr(out, "5717416"), "--flag=value: %s", out);
    CHECK(run("train --model gpusq_demo --no-augment=1") == 2 && strstr(out, "--no-augment takes no value"), "%s", out);
    CHECK(run("train --model gpusq_demo --epochs=") == 2 && strstr(out, "--epochs must be a whole number"), "%s", out);
    CHECK(run("bench --config gpusq_demo --device tpu") == 2 && strstr(out, "--device must be cpu or cuda, got 'tpu'"),
          "%s", out);

    snprintf(args, sizeof args, "info '%s' --heads 4", fixture);
    CHECK(run(args) == 0, "info on a fixture failed: %s", out);
    CHECK(strstr(out, "depth 2, embed_dim 64, heads 4") && strstr(out, "parameters     108106"), "%s", out);
    CHECK(run("info --config deit_tiny_patch16_224") == 0 && strstr(out, "5717416"), "%s", out);
    CHECK(run("info --list") == 0 && strstr(out, "deit_base_distilled_patch16_224"), "%s", out);

    /* failures: exit 1 and a single line naming the file */
    CHECK(run("info /nonexistent/m.safetensors") == 1 && strstr(out, "/nonexistent/m.safetensors") &&
              count_lines(out) == 1, "%s", out);
    char truncated[128];
    snprintf(truncated, sizeof truncated, "%s/truncated.safetensors", dir);
    snprintf(args, sizeof args, "head -c 3000 '%s' > '%s'", fixture, truncated);
    CHECK(system(args) == 0, "could not make a truncated copy");
    snprintf(args, sizeof args, "info '%s'", truncated);
    CHECK(run(args) == 1 && strstr(out, "truncated.safetensors") && count_lines(out) == 1, "%s", out);
    /* embed_dim 64 / head_dim 64 gives 1 head, which timm's file cannot contradict; but 40 cannot */
    snprintf(args, sizeof args, "info '%s/tests/fixtures/vit_nocls_gray.model.safetensors'", GSQ_SOURCE_DIR);
    CHECK(run(args) == 1 && strstr(out, "--heads"), "%s", out);
    /* a Swin whose input is not timm's convention: refused naming --input-size, then described */
    snprintf(args, sizeof args, "info '%s/tests/fixtures/swin_noshift.model.safetensors'", GSQ_SOURCE_DIR);
    CHECK(run(args) == 1 && strstr(out, "--input-size") && count_lines(out) == 1, "%s", out);
    snprintf(args, sizeof args, "info '%s/tests/fixtures/swin_noshift.model.safetensors' --input-size 32", GSQ_SOURCE_DIR);
    CHECK(run(args) == 0 && strstr(out, "Swin, 32×32 input") && strstr(out, "stage 1"), "%s", out);

    /* usage mistakes: exit 2 */
    CHECK(run("info") == 2, "info without a model: %s", out);
    snprintf(args, sizeof args, "info '%s' --heads zero", fixture);
    CHECK(run(args) == 2 && strstr(out, "--heads"), "%s", out);
    CHECK(run("info --config no_such_model") == 1 && strstr(out, "no_such_model"), "%s", out);
    snprintf(args, sizeof args, "info '%s' --bogus", fixture);
    CHECK(run(args) == 2 && strstr(out, "--bogus"), "%s", out);

    /* train → eval, and a stopped run resumed from its checkpoint, on a small synthetic set */
    const char *small = "--model gpusq_demo --data synthetic --train-size 96 --val-size 32 --batch 32 --epochs 2 "
                        "--threads 1";
    snprintf(args, sizeof args, "train %s --out '%s/a.safetensors' --log '%s/a.jsonl'", small, dir, dir);
    CHECK(run(args) == 0 && strstr(out, "validation: top-1"), "train: %s", out);
    snprintf(args, sizeof args, "eval '%s/a.safetensors' --data synthetic --val-size 32 --threads 1", dir);
    CHECK(run(args) == 0 && strstr(out, "top-1") && strstr(out, "(32 images)"), "eval: %s", out);
    snprintf(args, sizeof args, "%s/a.jsonl", dir);
    FILE *lf = fopen(args, "r");
    int lines = 0;
    for (int ch; lf && (ch = fgetc(lf)) != EOF;) lines += ch == '\n';
    if (lf) fclose(lf);
    CHECK(lines == 8, "the log has %d lines, want 6 steps + 2 evaluations", lines); /* 96/32 × 2 */
    snprintf(args, sizeof args, "train %s --out '%s/b.safetensors' --max-steps 4", small, dir);
    CHECK(run(args) == 0 && strstr(out, "stopped at step 4"), "stopped run: %s", out);
    snprintf(args, sizeof args, "train --resume '%s/b.ckpt.safetensors' %s --out '%s/b.safetensors'", dir, small + 18, dir);
    CHECK(run(args) == 0 && strstr(out, "trained"), "resumed run: %s", out);
    snprintf(args, sizeof args, "cmp -s '%s/a.safetensors' '%s/b.safetensors'", dir, dir);
    CHECK(system(args) == 0, "a resumed run must write the same weights as an uninterrupted one");
    snprintf(args, sizeof args, "train --resume '%s/b.ckpt.safetensors' %s --batch 16 --out '%s/c.safetensors'", dir,
             small + 18, dir);
    CHECK(run(args) == 1 && strstr(out, "other settings"), "resume with another batch: %s", out);
    CHECK(run("train --model gpusq_demo --epochs zero") == 2 && strstr(out, "--epochs"), "%s", out);
    CHECK(run("train --model gpusq_demo --weights x.safetensors") == 2, "two model sources accepted: %s", out);
    CHECK(run("train --model gpusq_demo --data imagenet") == 1 && strstr(out, "imagenet"), "%s", out);
    CHECK(run("eval /nonexistent.safetensors") == 1 && strstr(out, "/nonexistent.safetensors"), "%s", out);

    test_prune(dir);

    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_cli");
}
