/* Tests' files in a temporary directory (test_ade20k.c, test_coco.c, test_datasets.c,
 * test_image.c): tmp_dir_make makes /tmp/gsq-test-NAME.XXXXXX, path_of names a path in it,
 * tree_dataset_name the name of a dataset read from there, make_dirs and write_file make folders
 * and files there, tmp_dir_remove removes it all. A folder or file that cannot be made, or a path
 * too long, is said on stderr and exits 1. */
#ifndef GSQ_TEST_TREE_FILES_H
#define GSQ_TEST_TREE_FILES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char tmp_dir[64];

static inline void die(const char *what, const char *path)
{
    fprintf(stderr, "%s %s\n", what, path);
    exit(1);
}

/* tmp_dir/rel into out (cap bytes). */
static inline void path_of(char *out, size_t cap, const char *rel)
{
    if ((size_t)snprintf(out, cap, "%s/%s", tmp_dir, rel) >= cap) die("path too long:", rel);
}

/* "KIND:tmp_dir/rel/split" into out (cap bytes): the name of a dataset of that kind read from
 * tmp_dir/rel. */
static inline void tree_dataset_name(char *out, size_t cap, const char *kind, const char *rel, const char *split)
{
    if ((size_t)snprintf(out, cap, "%s:%s/%s/%s", kind, tmp_dir, rel, split) >= cap) die("name too long:", rel);
}

/* mkdir -p of tmp_dir/rel. */
static inline void make_dirs(const char *rel)
{
    char path[512];
    path_of(path, sizeof path, rel);
    for (char *p = path + strlen(tmp_dir) + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        struct stat sb;
        if (stat(path, &sb) != 0 && mkdir(path, 0700) != 0) die("cannot mkdir", path);
        *p = c;
        if (c == '\0') return;
    }
}

/* Writes n bytes to tmp_dir/rel. */
static inline void write_file(const char *rel, const void *data, size_t n)
{
    char path[512];
    path_of(path, sizeof path, rel);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) die("cannot write", path);
}

/* Makes tmp_dir for the test NAME; 0 (said on stderr) when it cannot. */
static inline int tmp_dir_make(const char *name)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/gsq-test-%s.XXXXXX", name);
    if (mkdtemp(tmp_dir)) return 1;
    perror("mkdtemp");
    return 0;
}

/* Removes tmp_dir and everything in it. */
static inline void tmp_dir_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
}

#endif
