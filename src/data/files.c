/* Files of the datasets on disk (ImageFolder, ADE20K) and of gsq_image_load: reading a whole
 * regular file into memory, and listing a directory's visible files or folders in sorted order. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/image_decode.h"

gsq_status gsq_read_file(const char *path, unsigned char **data, size_t *size, gsq_error *err)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = n ? malloc(n) : NULL;
    if (n && !buf) {
        close(fd);
        return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory reading %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            free(buf);
            return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": read failed after %zu of %zu bytes%s%s",
                            path, got, n, e ? ": " : " (file shrank)", e ? strerror(e) : "");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *size = n;
    return GSQ_OK;
}

int gsq_is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && dot != name &&
           (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
            strcasecmp(dot, ".png") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void gsq_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

void *gsq_reserve(void *buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return buf;
    size_t n = *cap ? *cap : 256, bytes;
    while (n < need)
        if (!gsq_size_mul(n, 2, &n)) return NULL;
    if (!gsq_size_mul(n, elem, &bytes)) return NULL;
    void *grown = realloc(buf, bytes);
    if (grown) *cap = n;
    return grown;
}

/* Appends a copy of name to the growing array *names; 0 when out of memory (*names kept). */
static int push_name(char ***names, size_t *n, size_t *cap, const char *name)
{
    char **grown = gsq_reserve(*names, cap, *n + 1, sizeof *grown);
    if (!grown) return 0;
    *names = grown;
    if (!(grown[*n] = strdup(name))) return 0;
    (*n)++;
    return 1;
}

gsq_status gsq_list_dir(const char *dir, int want_dirs, int (*keep)(const char *), char ***out,
                        size_t *count, gsq_error *err)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": cannot open directory: %s", dir,
                        strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    gsq_status st = GSQ_OK;
    struct dirent *e;
    for (errno = 0; st == GSQ_OK && (e = readdir(d)) != NULL; errno = 0) {
        if (e->d_name[0] == '.' || (keep && !keep(e->d_name))) continue;
        char path[GSQ_DATA_PATH_MAX];
        int len = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (len < 0 || len >= GSQ_DATA_PATH_MAX) {
            st = gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL "/%.100s: path too long", dir, e->d_name);
        } else if (stat(path, &sb) != 0 ||
                   (want_dirs ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode))) {
            continue; /* broken links and entries of the other kind */
        } else if (!push_name(&names, &n, &cap, e->d_name)) {
            st = gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory listing", dir);
        }
    }
    if (st == GSQ_OK && errno != 0)
        st = gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": cannot read directory: %s", dir, strerror(errno));
    closedir(d);
    if (st != GSQ_OK) {
        gsq_free_names(names, n);
        return st;
    }
    if (n) qsort(names, n, sizeof *names, cmp_str);
    *out = names;
    *count = n;
    return GSQ_OK;
}
