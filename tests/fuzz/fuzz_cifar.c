/* libFuzzer harness for the CIFAR binary reader (gsq_dataset_cifar): the input is a small
 * directory tree (tests/fuzz/fuzz_tree.h; "data_batch_1.bin*6146" makes a file of two CIFAR-10
 * records from a short pattern) made in a fresh temporary directory, opened as the train and as
 * the test split. An error must name the directory; a dataset must have the kind's class count,
 * one sample per whole record of the split's batch files, valid class names if any, and its first
 * and last samples must be the first and last records' pixels, interleaved, with an in-range
 * label. Built with -DGSQ_FUZZ_MAKE_SEEDS instead, it writes seed trees of CIFAR-10 and CIFAR-100
 * files: fuzz_cifar_seeds DIR. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_tree.h"
#include "gpusq/data.h"
#include "../dataset_sample.h"

enum { SIDE = 32, PIXELS = SIDE * SIDE * 3 };

#ifndef GSQ_FUZZ_MAKE_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const c10_train[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                        "data_batch_4.bin", "data_batch_5.bin"};
static const char *const c100_train[] = {"train.bin"};

static int file_size(const char *root, const char *name, long *bytes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (bytes) *bytes = (long)sb.st_size;
    return 1;
}

/* Sample `index`, which must be record `rec` of file `name`: pixels and label as stored. */
static void check_sample(gsq_dataset *ds, size_t index, const char *root, const char *name,
                         long rec, int label_bytes, int fine)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    uint8_t want[2 + PIXELS];
    size_t record = (size_t)label_bytes + PIXELS;
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, rec * (long)record, SEEK_SET) != 0 || fread(want, 1, record, f) != record)
        abort();
    fclose(f);
    gsq_image img;
    gsq_error err = {0};
    int label = -1;
    if (get_image(ds, index, &img, &label, &err) != GSQ_OK) abort();
    if (!img.pixels || img.width != SIDE || img.height != SIDE || label != want[fine] ||
        label >= ds->num_classes)
        abort();
    const uint8_t *planes = want + label_bytes;
    for (int p = 0; p < SIDE * SIDE; p++)
        for (int c = 0; c < 3; c++)
            if (img.pixels[p * 3 + c] != planes[c * SIDE * SIDE + p]) abort();
    gsq_image_free(&img);
}

/* Opens one split and checks the outcome against the files in root. */
static void check_split(const char *root, int train)
{
    gsq_dataset *ds = NULL;
    gsq_error err = {0};
    gsq_status st = gsq_dataset_cifar(&ds, root, train, &err);
    int c10 = file_size(root, "data_batch_1.bin", NULL) || file_size(root, "test_batch.bin", NULL);
    int c100 = !c10 && (file_size(root, "train.bin", NULL) || file_size(root, "test.bin", NULL));
    if (st != GSQ_OK) {
        if (ds || err.code != st || !strstr(err.msg, root) ||
            (!c10 && !c100 && st != GSQ_ERR_MISSING))
            abort();
        return;
    }
    if (!ds || (!c10 && !c100)) abort();
    const char *const *files = train ? (c10 ? c10_train : c100_train) : NULL;
    const char *test = c10 ? "test_batch.bin" : "test.bin";
    int nfiles = train ? (c10 ? 5 : 1) : 1, label_bytes = c10 ? 1 : 2, classes = c10 ? 10 : 100;
    long record = label_bytes + PIXELS, samples = 0, last_records = 0;
    for (int i = 0; i < nfiles; i++) {
        long bytes;
        if (!file_size(root, files ? files[i] : test, &bytes) || bytes % record != 0) abort();
        samples += bytes / record;
        last_records = bytes / record;
    }
    char name[64];
    snprintf(name, sizeof name, "%s/%s", c10 ? "cifar10" : "cifar100", train ? "train" : "test");
    if (ds->num_classes != classes || (long)ds->size != samples || strcmp(ds->name, name) != 0)
        abort();
    for (int c = 0; ds->class_names && c < classes; c++) {
        const char *s = ds->class_names[c];
        size_t n = s ? strlen(s) : 0;
        if (!n || strchr(s, '\n') || strchr(" \t\r", s[0]) || strchr(" \t\r", s[n - 1])) abort();
    }
    check_sample(ds, 0, root, files ? files[0] : test, 0, label_bytes, label_bytes - 1);
    check_sample(ds, ds->size - 1, root, files ? files[nfiles - 1] : test, last_records - 1,
                 label_bytes, label_bytes - 1);
    gsq_image img;
    int label;
    if (get_image(ds, ds->size, &img, &label, &err) != GSQ_ERR_ARG || img.pixels) abort();
    gsq_dataset_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gsq_tree *t = gsq_tree_of_input(data, size);
    if (!t) return -1;
    check_split(t->root, 1);
    check_split(t->root, 0);
    gsq_tree_clear(t);
    return 0;
}

#else

/* A batch file of `records` records: its entry repeats a short pattern of valid labels. */
static void batch(FILE *f, const char *name, int records, int label_bytes, uint8_t shift)
{
    uint8_t pattern[37];
    for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (uint8_t)((i * 7 + shift) % 10);
    char head[64];
    snprintf(head, sizeof head, "%s*%d", name, records * (label_bytes + PIXELS));
    gsq_tree_seed_entry(f, head, pattern, sizeof pattern);
}

static void names(FILE *f, const char *file, int n)
{
    char text[2048];
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                i % 7 ? "class%d\n" : " c %d \r\n", i);
    gsq_tree_seed_entry(f, file, text, len);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *seeds[] = {"cifar10.tree", "cifar10_test.tree", "cifar100.tree"};
    int bad = 0;
    for (int s = 0; s < 3; s++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", argv[1], seeds[s]);
        FILE *f = fopen(path, "wb");
        if (!f) {
            fprintf(stderr, "cannot write %s\n", path);
            return 1;
        }
        if (s == 0) { /* the whole CIFAR-10 layout, names included */
            char name[32];
            for (int i = 1; i <= 5; i++) {
                snprintf(name, sizeof name, "data_batch_%d.bin", i);
                batch(f, name, i % 2 + 1, 1, (uint8_t)i);
            }
            batch(f, "test_batch.bin", 1, 1, 0);
            names(f, "batches.meta.txt", 10);
        } else if (s == 1) { /* only the test split, beside a subfolder */
            batch(f, "test_batch.bin", 3, 1, 4);
            gsq_tree_seed_entry(f, "data_batch_1.bin/", NULL, 0);
        } else { /* CIFAR-100: coarse and fine labels */
            batch(f, "train.bin", 2, 2, 1);
            batch(f, "test.bin", 1, 2, 2);
            names(f, "fine_label_names.txt", 100);
        }
        bad |= fclose(f) != 0;
    }
    return bad;
}

#endif
