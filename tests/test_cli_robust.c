/* The gpusq program when things go wrong: every path a command will write is checked before any
 * work (missing folders made; a file in the way, a folder as a file name refused at once, before
 * the data is even opened); a full disk at the end costs the final checkpoint, never --out, and
 * when --out does not fit the final checkpoint is still written; a run
 * whose weights turn NaN exits 1 naming the step and keeps its last good checkpoint; a diverging
 * loss is reported on stderr and in the log; every numeric option's error says its range. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_run.h"
#include "test_util.h"

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Each command with one output in a place that cannot be written: refused with a message naming
 * it and exit 1 before the data (an absent CIFAR folder) is opened or the teacher is read. */
static void test_outputs_checked_first(const char *dir)
{
    char args[2048], blocker[256], bad[300];
    snprintf(blocker, sizeof blocker, "%s/a-file", dir);
    FILE *f = fopen(blocker, "w");
    if (f) fclose(f);
    snprintf(bad, sizeof bad, "%s/sub/x.safetensors", blocker); /* its folder would be inside a file */
    const char *never = "--data cifar:/nonexistent/cifar --teacher /nonexistent/teacher.safetensors";
    static const char *const cmds[][2] = {
        {"train --model gpusq_demo --data cifar:/nonexistent/cifar", "--out"},
        {"train --model gpusq_demo --data cifar:/nonexistent/cifar", "--checkpoint"},
        {"train --model gpusq_demo --data cifar:/nonexistent/cifar", "--log"},
        {"prune", "--out"}, {"prune", "--checkpoint"}, {"prune", "--report"}, {"prune", "--log"},
        {"quantize", "--out"}, {"quantize", "--report"}, {"quantize", "--log"},
        {"compress", "--out-dir"},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int train = !strncmp(cmds[i][0], "train", 5), alone = !strcmp(cmds[i][1], "--out") ||
                                                              !strcmp(cmds[i][1], "--out-dir");
        snprintf(args, sizeof args, "%s %s %s '%s'", cmds[i][0], train ? "" : never, cmds[i][1], bad);
        if (!alone) snprintf(args + strlen(args), sizeof args - strlen(args), " --out '%s/ok.safetensors'", dir);
        CHECK(run(args) == 1 && strstr(out, "a-file") && !strstr(out, "cifar") && !strstr(out, "teacher") &&
                  count_lines(out) == 1, "%s %s: %s", cmds[i][0], cmds[i][1], out);
    }
    /* a folder given as the output file */
    snprintf(args, sizeof args, "train --model gpusq_demo --data cifar:/nonexistent/cifar --out '%s'", dir);
    CHECK(run(args) == 1 && strstr(out, "is a folder"), "%s", out);
    snprintf(args, sizeof args, "train --model gpusq_demo --data cifar:/nonexistent/cifar --out '%s/new/'", dir);
    CHECK(run(args) == 1 && strstr(out, "is a folder"), "%s", out);

    /* missing folders are made, as mkdir -p */
    snprintf(args, sizeof args, "train --model gpusq_demo --data synthetic --train-size 32 --val-size 8 --batch 32 "
             "--epochs 1 --threads 1 --out '%s/made/deep/w.safetensors' --log '%s/logs/run.jsonl'", dir, dir);
    CHECK(run(args) == 0, "%s", out);
    snprintf(args, sizeof args, "%s/made/deep/w.safetensors", dir);
    CHECK(exists(args), "no weights in the folders made for them");
    snprintf(args, sizeof args, "%s/made/deep/w.ckpt.safetensors", dir);
    CHECK(exists(args), "no checkpoint beside them");
    snprintf(args, sizeof args, "%s/logs/run.jsonl", dir);
    CHECK(exists(args), "no log in the folder made for it");
}

/* A tiny file system: the checkpoint does not fit, the weights (written first) do. Needs root
 * and tmpfs; reported as not run elsewhere. */
static void test_full_disk(const char *dir)
{
    char args[2048], small[256];
    snprintf(small, sizeof small, "%s/small", dir);
    mkdir(small, 0755);
    snprintf(args, sizeof args, "mount -t tmpfs -o size=1200k gsq-test '%s' 2>/dev/null", small);
    if (system(args) != 0) {
        printf("full disk: not run (cannot mount a tmpfs here)\n");
        return;
    }
    snprintf(args, sizeof args, "train --model gpusq_demo --data synthetic --train-size 32 --val-size 8 --batch 32 "
             "--epochs 1 --threads 1 --out '%s/w.safetensors' --checkpoint '%s/w.ckpt.safetensors'", small, small);
    int rc = run(args);
    snprintf(args, sizeof args, "%s/w.safetensors", small);
    int have_out = exists(args);
    snprintf(args, sizeof args, "%s/w.ckpt.safetensors", small);
    CHECK(rc == 0 && have_out && !exists(args) && strstr(out, "not the final checkpoint"),
          "full disk: exit %d, weights %s: %s", rc, have_out ? "written" : "missing", out);

    /* no room for --out at all: the run fails, but its final checkpoint (elsewhere) is written */
    snprintf(args, sizeof args, "rm -f '%s'/w*; head -c 1000000 /dev/zero > '%s/filler'", small, small);
    CHECK(system(args) == 0, "could not fill %s", small);
    snprintf(args, sizeof args, "train --model gpusq_demo --data synthetic --train-size 32 --val-size 8 --batch 32 "
             "--epochs 1 --threads 1 --out '%s/w.safetensors' --checkpoint '%s/end.ckpt.safetensors'", small, dir);
    rc = run(args);
    snprintf(args, sizeof args, "%s/end.ckpt.safetensors", dir);
    CHECK(rc == 1 && exists(args) && strstr(out, "--resume from it"), "no room for --out: exit %d: %s", rc, out);
    snprintf(args, sizeof args, "umount '%s'", small);
    if (system(args) != 0) fprintf(stderr, "could not unmount %s\n", small);
}

/* Weight decay 10 at lr 10 multiplies the weights by -99 a step: NaN by step 5. */
static void test_nan_run(const char *dir)
{
    char args[2048], ckpt[256];
    snprintf(ckpt, sizeof ckpt, "%s/nan.ckpt.safetensors", dir);
    snprintf(args, sizeof args, "train --model gpusq_demo --data synthetic --train-size 320 --val-size 8 --batch 32 "
             "--epochs 2 --threads 1 --lr 10 --warmup-epochs 0 --wd 10 --checkpoint-every 2 --out '%s/nan.safetensors' "
             "--checkpoint '%s'", dir, ckpt);
    CHECK(run(args) == 1 && strstr(out, "diverged at step") && strstr(out, "NaN"), "%s", out);
    snprintf(args, sizeof args, "%s/nan.safetensors", dir);
    CHECK(!exists(args), "weights were written from a run that went NaN");
    /* the checkpoint of step 4 (the last even step before NaN) is there, whole */
    FILE *f = fopen(ckpt, "rb");
    char head[8192] = "";
    size_t n = f ? fread(head, 1, sizeof head - 1, f) : 0;
    head[n] = '\0';
    if (f) fclose(f);
    CHECK(strstr(head + 8, "\"train.step\":\"4\""), "the last good checkpoint is missing or not step 4");
}

/* lr 5, reached after a warm-up long enough that the early steps stay sane, whatever the build's
 * rounding (lr 5 from the first step can blow up within the early steps, which then set a high
 * bar): the loss climbs past 50× its early mean and training goes on. */
static void test_divergence_reported(const char *dir)
{
    char args[2048], log[256];
    snprintf(log, sizeof log, "%s/div.jsonl", dir);
    snprintf(args, sizeof args, "train --model gpusq_demo --data synthetic --train-size 160 --val-size 8 --batch 8 "
             "--epochs 6 --warmup-epochs 4 --lr 5 --min-lr 5 --no-augment --threads 2 --out '%s/div.safetensors' "
             "--log '%s'", dir, log);
    CHECK(run(args) == 0 && strstr(out, "training is diverging") && strstr(out, "the loss diverged"), "%s", out);
    FILE *f = fopen(log, "r");
    int flagged = 0;
    char line[1024];
    while (f && fgets(line, sizeof line, f)) flagged += strstr(line, "\"diverging\": true") != NULL;
    if (f) fclose(f);
    CHECK(flagged > 0, "no step of the log is marked as diverging");
}

/* Every numeric option of every command, given a value outside any range: exit 2 and a message
 * that names the option and its range. */
/* gpusq export: an unwritable --onnx is refused before the model is read; a truncated model
 * file is refused, leaving an existing output as it was; --onnx is required. */
static void test_export_refusals(const char *dir)
{
    char args[2048], model[300], onnx[300];
    snprintf(args, sizeof args, "export /nonexistent/model.safetensors --onnx '%s/a-file/sub/x.onnx'", dir);
    CHECK(run(args) == 1 && strstr(out, "a-file") && !strstr(out, "nonexistent") && count_lines(out) == 1, "%s", out);
    snprintf(model, sizeof model, "%s/truncated.safetensors", dir);
    snprintf(args, sizeof args, "head -c 3000 '%s/assets/demo_teacher.safetensors' > '%s'", GSQ_SOURCE_DIR, model);
    CHECK(system(args) == 0, "could not write %s", model);
    snprintf(onnx, sizeof onnx, "%s/kept.onnx", dir);
    FILE *f = fopen(onnx, "w");
    if (f) {
        fputs("old", f);
        fclose(f);
    }
    snprintf(args, sizeof args, "export '%s' --onnx '%s'", model, onnx);
    CHECK(run(args) == 1 && strstr(out, "truncated"), "%s", out);
    f = fopen(onnx, "r");
    char kept[8] = "";
    if (f) {
        CHECK(fgets(kept, sizeof kept, f) != NULL, "empty");
        fclose(f);
    }
    CHECK(strcmp(kept, "old") == 0, "the existing output was changed: '%s'", kept);
    snprintf(args, sizeof args, "export '%s/assets/demo_teacher.safetensors'", GSQ_SOURCE_DIR);
    CHECK(run(args) == 2 && strstr(out, "--onnx"), "%s", out);
    snprintf(args, sizeof args, "export '%s/assets/demo_teacher.safetensors' --onnx x.onnx --batch 0", GSQ_SOURCE_DIR);
    CHECK(run(args) == 2 && strstr(out, "dynamic or a whole number"), "%s", out);
}

static void test_option_ranges(void)
{
    static const char *const opts[][2] = {
        {"train --model gpusq_demo", "--train-size --val-size --workers --epochs --batch --accum --seed --threads "
                                     "--checkpoint-every --max-steps --lr --min-lr --warmup-epochs --wd --clip "
                                     "--smoothing --scale-min --num-classes --heads --input-size"},
        {"prune --teacher t", "--effort --feature-blocks --alpha --beta --gamma --temperature --epochs --lr "
                              "--input-size"},
        {"quantize --teacher t", "--percentile --calib-batches --lsq-lr --alpha --temperature --batch"},
        {"eval m", "--batch --workers --threads --heads --input-size --seed --val-size"},
        {"run m", "--batch --workers --threads --seed --val-size"},
        {"bench --config gpusq_demo", "--batch --iters --threads"},
        {"info m", "--heads --input-size"},
        {"predict m", "--heads --input-size"},
        {"compress --teacher t --out-dir d", "--prune-epochs --qat-epochs --feature-blocks --train-size --val-size "
                                             "--workers --batch --seed --threads --heads --input-size"},
    };
    char args[512], list[512];
    for (size_t c = 0; c < sizeof opts / sizeof opts[0]; c++) {
        snprintf(list, sizeof list, "%s", opts[c][1]);
        for (char *o = strtok(list, " "); o; o = strtok(NULL, " ")) {
            snprintf(args, sizeof args, "%s %s -1e12", opts[c][0], o);
            int rc = run(args);
            char want[96];
            snprintf(want, sizeof want, "%s must be a", o);
            CHECK(rc == 2 && strstr(out, want) && (strstr(out, " in [") || strstr(out, " in (")) && strstr(out, "-1e12"),
                  "%s: exit %d: %s", args, rc, out);
        }
    }
    CHECK(run("train --model gpusq_demo --lr 50") == 2 && strstr(out, "--lr must be a number in (0, 10], got '50'"),
          "%s", out);
    CHECK(run("train --model gpusq_demo --epochs") == 2 && strstr(out, "--epochs needs a whole number in [1, "), "%s",
          out);
    CHECK(run("quantize --teacher t --mode int3") == 2 && strstr(out, "int8, int4 or w4a8"), "%s", out);
    CHECK(run("compress --teacher t --out-dir d --modes int8,int5") == 2 &&
              strstr(out, "--modes must be int8 and/or int4, comma-separated, got 'int8,int5'"), "%s", out);
    CHECK(run("compress --teacher t --out-dir d --lsq int8,") == 2 && strstr(out, "--lsq must be int8 and/or int4"),
          "%s", out);
}

int main(void)
{
    char dir[64] = "/tmp/gsq_test_cli_robust_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_option_ranges();
    test_outputs_checked_first(dir);
    test_full_disk(dir);
    test_nan_run(dir);
    test_divergence_reported(dir);
    test_export_refusals(dir);
    char args[128];
    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_cli_robust");
}
