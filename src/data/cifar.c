/* CIFAR-10 and CIFAR-100 in their binary distribution: fixed-size records (CIFAR-10: 1 label byte;
 * CIFAR-100: a coarse and a fine label byte) followed by a 32×32 image as 3 planes (R, G, B). The
 * batch files are mapped read-only and validated completely when the dataset is opened (whole
 * records, every label in range); get() turns a record's planes into interleaved RGB. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/image_decode.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (CIFAR_SIDE * CIFAR_SIDE * 3)
#define CIFAR_MAX_FILES 5
#define CIFAR_PATH_MAX 4096
#define CIFAR_NAMES_MAX (1 << 20) /* a class-name file larger than this is not one */

typedef struct {
    const uint8_t *base; /* the mapped file */
    size_t bytes;
    size_t first;        /* dataset index of its first record */
    size_t count;
} cifar_file;

typedef struct {
    gsq_dataset ds;      /* first, so destroy frees the whole block */
    cifar_file files[CIFAR_MAX_FILES];
    int nfiles;
    size_t record;       /* bytes per record: label bytes + CIFAR_PIXELS */
    size_t label_byte;   /* which label byte is the class (the fine one for CIFAR-100) */
} cifar_set;

typedef struct {
    const char *tag;                 /* "cifar10", "cifar100" */
    int classes, coarse_classes;     /* coarse_classes: 0 when there is no coarse label */
    const char *train[CIFAR_MAX_FILES];
    int ntrain;
    const char *test;
    const char *names;               /* the class-name file, optional */
} cifar_kind;

static const cifar_kind cifar10 = {
    "cifar10", 10, 0,
    {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
     "data_batch_5.bin"}, 5, "test_batch.bin", "batches.meta.txt"};
static const cifar_kind cifar100 = {"cifar100", 100, 20, {"train.bin"}, 1, "test.bin",
                                    "fine_label_names.txt"};

static void cifar_destroy(gsq_dataset *ds)
{
    cifar_set *s = ds->impl;
    for (int i = 0; i < s->nfiles; i++) munmap((void *)s->files[i].base, s->files[i].bytes);
    if (ds->class_names)
        for (int c = 0; c < ds->num_classes; c++) free(ds->class_names[c]);
    free(ds->class_names);
    free(s);
}

static gsq_status cifar_get(gsq_dataset *ds, size_t index, gsq_sample *sample, gsq_error *err)
{
    cifar_set *s = ds->impl;
    gsq_image *img = &sample->image;
    memset(sample, 0, sizeof *sample);
    if (index >= ds->size)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: sample %zu out of range (%zu samples)", ds->name,
                        index, ds->size);
    const cifar_file *f = &s->files[0];
    while (index >= f->first + f->count) f++;
    const uint8_t *rec = f->base + (index - f->first) * s->record;
    gsq_status st = gsq_image_alloc(img, CIFAR_SIDE, CIFAR_SIDE, err);
    if (st != GSQ_OK) return st;
    const uint8_t *planes = rec + s->record - CIFAR_PIXELS;
    for (int p = 0; p < CIFAR_SIDE * CIFAR_SIDE; p++)
        for (int c = 0; c < 3; c++)
            img->pixels[p * 3 + c] = planes[c * CIFAR_SIDE * CIFAR_SIDE + p];
    sample->label = rec[s->label_byte];
    return GSQ_OK;
}

static gsq_status join(char *out, const char *dir, const char *name, gsq_error *err)
{
    int n = snprintf(out, CIFAR_PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= CIFAR_PATH_MAX)
        return gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL ": path too long", dir);
    return GSQ_OK;
}

static int exists(const char *dir, const char *name)
{
    char path[CIFAR_PATH_MAX];
    struct stat sb;
    return join(path, dir, name, NULL) == GSQ_OK && stat(path, &sb) == 0;
}

/* Maps dir/name and checks its size and every label; on success s->files[s->nfiles++] holds it. */
static gsq_status map_batch(cifar_set *s, const cifar_kind *k, const char *dir, const char *name,
                            gsq_error *err)
{
    char path[CIFAR_PATH_MAX];
    gsq_status st = join(path, dir, name, err);
    if (st != GSQ_OK) return st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return gsq_fail(err, GSQ_ERR_MISSING, GSQ_LBL ": missing %s batch file", path, k->tag);
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": not a readable regular file", path);
    }
    size_t bytes = (size_t)sb.st_size;
    if (bytes == 0 || bytes % s->record != 0) {
        close(fd);
        return gsq_fail(err, GSQ_ERR_FORMAT,
                        GSQ_LBL ": size %zu bytes is not a whole, non-zero number of %zu-byte "
                        "%s records", path, bytes, s->record, k->tag);
    }
    void *map = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED)
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": mmap failed: %s", path, strerror(map_errno));
    cifar_file *f = &s->files[s->nfiles++]; /* unmapped by destroy from here on */
    f->base = map;
    f->bytes = bytes;
    f->count = bytes / s->record;
    f->first = s->ds.size;
    for (size_t r = 0; r < f->count; r++) {
        const uint8_t *rec = f->base + r * s->record;
        if (k->coarse_classes && rec[0] >= k->coarse_classes)
            return gsq_fail(err, GSQ_ERR_FORMAT,
                            GSQ_LBL ": record %zu: coarse label %d out of range (%d classes)",
                            path, r, rec[0], k->coarse_classes);
        if (rec[s->label_byte] >= k->classes)
            return gsq_fail(err, GSQ_ERR_FORMAT,
                            GSQ_LBL ": record %zu: label %d out of range (%d classes)", path, r,
                            rec[s->label_byte], k->classes);
    }
    s->ds.size += f->count;
    return GSQ_OK;
}

/* Reads the class names (one per non-empty line, surrounding blanks trimmed) when the file
 * exists; a file that is there must name exactly k->classes classes and hold no NUL byte. */
static gsq_status read_names(gsq_dataset *ds, const cifar_kind *k, const char *dir,
                             gsq_error *err)
{
    char path[CIFAR_PATH_MAX];
    gsq_status st = join(path, dir, k->names, err);
    if (st != GSQ_OK) return st;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT) return GSQ_OK; /* no names: class_names stays NULL */
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": cannot open: %s", path, strerror(errno));
    }
    char *text = malloc(CIFAR_NAMES_MAX + 1);
    size_t n = text ? fread(text, 1, CIFAR_NAMES_MAX + 1, fp) : 0;
    int bad_read = ferror(fp);
    fclose(fp);
    if (!text) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", path);
    if (bad_read || n > CIFAR_NAMES_MAX || memchr(text, '\0', n)) {
        free(text);
        if (bad_read) return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": read failed", path);
        if (n > CIFAR_NAMES_MAX)
            return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": too large for a class-name file", path);
        /* a name would end at the NUL, its trailing blanks untrimmed */
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": a NUL byte in a class-name file", path);
    }
    text[n] = '\0';
    char **names = calloc((size_t)k->classes, sizeof *names);
    if (!names) {
        free(text);
        return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", path);
    }
    ds->class_names = names; /* freed by destroy, entries and all, from here on */
    int count = 0;
    st = GSQ_OK;
    for (char *line = text; line < text + n && st == GSQ_OK;) {
        char *end = memchr(line, '\n', (size_t)(text + n - line));
        if (!end) end = text + n;
        char *next = end + 1;
        while (line < end && (*line == ' ' || *line == '\t' || *line == '\r')) line++;
        while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
        if (end > line) {
            if (count == k->classes)
                st = gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": more than %d class names", path,
                              k->classes);
            else if (!(names[count++] = strndup(line, (size_t)(end - line))))
                st = gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", path);
        }
        line = next;
    }
    free(text);
    if (st == GSQ_OK && count != k->classes)
        st = gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": %d class names, expected %d", path, count,
                      k->classes);
    return st;
}

gsq_status gsq_dataset_cifar(gsq_dataset **out, const char *dir, int train, gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_cifar: NULL output");
    *out = NULL;
    if (!dir) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_cifar: NULL directory");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": not a directory", dir);
    const cifar_kind *k;
    if (exists(dir, cifar10.train[0]) || exists(dir, cifar10.test))
        k = &cifar10;
    else if (exists(dir, cifar100.train[0]) || exists(dir, cifar100.test))
        k = &cifar100;
    else
        return gsq_fail(err, GSQ_ERR_MISSING,
                        GSQ_LBL ": no CIFAR-10 (data_batch_1.bin, test_batch.bin) or CIFAR-100 "
                        "(train.bin, test.bin) files", dir);

    cifar_set *s = calloc(1, sizeof *s);
    if (!s) return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_dataset_cifar: out of memory");
    gsq_dataset *ds = &s->ds;
    ds->impl = s;
    ds->get = cifar_get;
    ds->destroy = cifar_destroy;
    ds->num_classes = k->classes;
    snprintf(ds->name, sizeof ds->name, "%s/%s", k->tag, train ? "train" : "test");
    s->label_byte = k->coarse_classes ? 1 : 0;
    s->record = s->label_byte + 1 + CIFAR_PIXELS;
    gsq_status st = GSQ_OK;
    if (train)
        for (int i = 0; i < k->ntrain && st == GSQ_OK; i++)
            st = map_batch(s, k, dir, k->train[i], err);
    else
        st = map_batch(s, k, dir, k->test, err);
    if (st == GSQ_OK) st = read_names(ds, k, dir, err);
    if (st != GSQ_OK) {
        cifar_destroy(ds);
        return st;
    }
    *out = ds;
    return GSQ_OK;
}
