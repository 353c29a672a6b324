/* For the dataset harnesses (fuzz_cifar.c, fuzz_folder.c, fuzz_ade20k.c, fuzz_coco.c): a fuzz input read as a small
 * directory tree, made inside a fresh directory and removed again. The input is entries separated
 * by the line "--" (the four bytes "\n--\n"). An entry's first line is a relative path; the rest
 * of the entry is the file's content. A path ending in '/' is a directory (its content ignored);
 * "PATH*N" makes a file of N bytes, the content repeated (zeros when empty). Missing parent
 * directories are made. Paths are refused, with nothing made, when absolute, when a component is
 * empty, "." or "..", or longer than GSQ_TREE_NAME_MAX bytes, and past GSQ_TREE_DEPTH_MAX
 * components, GSQ_TREE_ENTRIES_MAX entries or GSQ_TREE_FILE_MAX bytes in a file: the tree never
 * leaves its directory and each input is made and scanned quickly. An entry that clashes with
 * what exists (a file where a directory is wanted, or the reverse) is skipped. The tree keeps what
 * it made, so a harness can work out what a scan must find. With GSQ_FUZZ_MAKE_SEEDS defined
 * (the seed-writing twins) the header has only what writes seeds: gsq_tree_seed_open,
 * gsq_tree_seed_entry and gsq_tree_seed_jpeg. */
#ifndef GSQ_FUZZ_TREE_H
#define GSQ_FUZZ_TREE_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GSQ_TREE_SEP "\n--\n"
#define GSQ_TREE_NAME_MAX 64
#define GSQ_TREE_DEPTH_MAX 4
#define GSQ_TREE_ENTRIES_MAX 64
#define GSQ_TREE_FILE_MAX 65536
#define GSQ_TREE_PATH_MAX (GSQ_TREE_DEPTH_MAX * (GSQ_TREE_NAME_MAX + 1))

#ifndef GSQ_FUZZ_MAKE_SEEDS

/* One directory or regular file the tree made (made by this input, not found existing). */
typedef struct {
    char path[GSQ_TREE_PATH_MAX + 1]; /* relative, no trailing '/' */
    int is_dir;
} gsq_tree_node;

typedef struct {
    char root[256]; /* the directory the tree is made in */
    gsq_tree_node nodes[GSQ_TREE_ENTRIES_MAX * GSQ_TREE_DEPTH_MAX];
    int count;
} gsq_tree;

/* Depth of a relative path: its number of components. */
static inline int gsq_tree_depth(const char *path)
{
    int d = 1;
    for (const char *c = path; *c; c++) d += *c == '/';
    return d;
}

/* 1 when path (n bytes, no trailing '/') is a safe relative path within the limits. */
static int gsq_tree_path_ok(const char *path, size_t n)
{
    if (n == 0 || memchr(path, '\0', n)) return 0;
    int depth = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && path[j] != '/') j++;
        size_t len = j - i;
        if (len == 0 || len > GSQ_TREE_NAME_MAX || ++depth > GSQ_TREE_DEPTH_MAX) return 0;
        if (path[i] == '.' && (len == 1 || (len == 2 && path[i + 1] == '.'))) return 0;
        i = j + 1;
        if (j + 1 == n) return 0; /* a trailing '/' was already stripped: this one is "a//" */
    }
    return 1;
}

static void gsq_tree_record(gsq_tree *t, const char *rel, int is_dir)
{
    gsq_tree_node *node = &t->nodes[t->count++];
    snprintf(node->path, sizeof node->path, "%s", rel);
    node->is_dir = is_dir;
}

/* Makes the directory rel (relative to the root) and its parents; 0 when one is not a directory. */
static int gsq_tree_mkdirs(gsq_tree *t, const char *rel)
{
    char full[sizeof t->root + GSQ_TREE_PATH_MAX + 2];
    size_t base = (size_t)snprintf(full, sizeof full, "%s/", t->root);
    for (size_t i = 0;; i++) {
        if (rel[i] != '/' && rel[i] != '\0') continue;
        snprintf(full + base, sizeof full - base, "%.*s", (int)i, rel);
        struct stat sb;
        if (mkdir(full, 0700) == 0) gsq_tree_record(t, full + base, 1);
        else if (errno != EEXIST || stat(full, &sb) != 0 || !S_ISDIR(sb.st_mode)) return 0;
        if (rel[i] == '\0') return 1;
    }
}

/* Writes the file rel of `bytes` bytes, content repeated; records it unless it existed. */
static void gsq_tree_file(gsq_tree *t, const char *rel, const uint8_t *content, size_t n,
                          size_t bytes)
{
    char full[sizeof t->root + GSQ_TREE_PATH_MAX + 2];
    snprintf(full, sizeof full, "%s/%s", t->root, rel);
    struct stat sb;
    int existed = lstat(full, &sb) == 0;
    if (existed && !S_ISREG(sb.st_mode)) return;
    int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    static uint8_t buf[GSQ_TREE_FILE_MAX];
    for (size_t i = 0; i < bytes; i++) buf[i] = n ? content[i % n] : 0;
    if (write(fd, buf, bytes) != (ssize_t)bytes || close(fd) != 0) abort();
    if (!existed) gsq_tree_record(t, rel, 0);
}

/* Makes the tree the input describes in t->root (which must exist and be empty); 0 when the input
 * is refused (t->root may then hold part of the tree: gsq_tree_clear it). */
static int gsq_tree_make(gsq_tree *t, const uint8_t *data, size_t size)
{
    t->count = 0;
    const size_t sep = strlen(GSQ_TREE_SEP);
    int entries = 0;
    for (size_t at = 0; at < size;) {
        const uint8_t *end = NULL;
        for (size_t i = at; !end && i + sep <= size; i++)
            if (memcmp(data + i, GSQ_TREE_SEP, sep) == 0) end = data + i;
        if (!end) end = data + size;
        const uint8_t *entry = data + at, *nl = memchr(entry, '\n', (size_t)(end - entry));
        const uint8_t *head_end = nl ? nl : end, *content = nl ? nl + 1 : end;
        at = (size_t)(end - data) + sep;
        if (++entries > GSQ_TREE_ENTRIES_MAX) return 0;
        size_t hn = (size_t)(head_end - entry), n = (size_t)(end - content), bytes = n;
        const uint8_t *star = memchr(entry, '*', hn);
        if (star) { /* PATH*N */
            bytes = 0;
            if (star + 1 == head_end) return 0;
            for (const uint8_t *c = star + 1; c < head_end; c++) {
                if (*c < '0' || *c > '9') return 0;
                bytes = bytes * 10 + (size_t)(*c - '0');
                if (bytes > GSQ_TREE_FILE_MAX) return 0;
            }
            hn = (size_t)(star - entry);
        }
        if (bytes > GSQ_TREE_FILE_MAX) return 0;
        int is_dir = hn > 0 && entry[hn - 1] == '/';
        if (is_dir) hn--;
        if (!gsq_tree_path_ok((const char *)entry, hn)) return 0;
        char rel[GSQ_TREE_PATH_MAX + 1];
        memcpy(rel, entry, hn);
        rel[hn] = '\0';
        if (is_dir) {
            gsq_tree_mkdirs(t, rel);
            continue;
        }
        char *slash = strrchr(rel, '/');
        if (slash) {
            *slash = '\0';
            int ok = gsq_tree_mkdirs(t, rel);
            *slash = '/';
            if (!ok) continue;
        }
        gsq_tree_file(t, rel, content, n, bytes);
    }
    return 1;
}

/* Removes everything below dir (not following links), leaving dir itself. */
static void gsq_tree_clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) abort();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) != 0) abort();
        if (S_ISDIR(sb.st_mode)) {
            gsq_tree_clear_dir(path);
            if (rmdir(path) != 0) abort();
        } else if (unlink(path) != 0) {
            abort();
        }
    }
    closedir(d);
}

static void gsq_tree_clear(gsq_tree *t)
{
    gsq_tree_clear_dir(t->root);
    t->count = 0;
}

static char gsq_tree_base[200];

static void gsq_tree_remove_base(void)
{
    gsq_tree_clear_dir(gsq_tree_base);
    rmdir(gsq_tree_base);
}

/* The tree's root: one fresh directory per process in $TMPDIR (else /tmp), removed at exit. */
static void gsq_tree_init(gsq_tree *t)
{
    if (!gsq_tree_base[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(gsq_tree_base, sizeof gsq_tree_base, "%.150s/gsq-fuzz-tree.XXXXXX",
                 tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(gsq_tree_base)) abort();
        atexit(gsq_tree_remove_base);
    }
    snprintf(t->root, sizeof t->root, "%s", gsq_tree_base);
    t->count = 0;
}

/* The tree of one fuzz input, made in the process's directory; NULL when the input is refused,
 * with nothing left behind. gsq_tree_clear it when done. */
static gsq_tree *gsq_tree_of_input(const uint8_t *data, size_t size)
{
    static gsq_tree t;
    gsq_tree_init(&t);
    if (gsq_tree_make(&t, data, size)) return &t;
    gsq_tree_clear(&t);
    return NULL;
}

/* The node the tree made at path, or NULL. */
static inline const gsq_tree_node *gsq_tree_find(const gsq_tree *t, const char *path)
{
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->nodes[i].path, path) == 0) return &t->nodes[i];
    return NULL;
}

#else

#include <jpeglib.h>

/* DIR/NAME opened for writing a seed, or NULL (said on stderr). */
static inline FILE *gsq_tree_seed_open(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) fprintf(stderr, "cannot write %s\n", path);
    return f;
}

/* A w × h (w ≤ 64) baseline RGB JPEG in memory (*n bytes, freed by the caller). */
static inline char *gsq_tree_seed_jpeg(int w, int h, size_t *n)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, n);
    if (!f) abort();
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[64 * 3];
    while (c.next_scanline < c.image_height) {
        for (int i = 0; i < w * 3; i++) row[i] = (uint8_t)(i * 30 + c.next_scanline * 100);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    if (fclose(f) != 0) abort();
    return buf;
}

/* Seed writing: appends an entry (path line, then n bytes of content) to the open seed file. */
static void gsq_tree_seed_entry(FILE *f, const char *path, const void *content, size_t n)
{
    if (ftell(f) > 0) fputs(GSQ_TREE_SEP, f);
    fputs(path, f);
    if (n || content) fputc('\n', f);
    if (n) fwrite(content, 1, n, f);
}

#endif

#endif
