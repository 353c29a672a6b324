/* Atomic file writes: PATH.tmp.XXXXXX beside PATH, fsync, rename over PATH, fsync of the
 * directory, so a crash or an error never leaves a half-written file under PATH; and the check
 * that an output can be written (folders made, a probe file created) before the work starts. */
#include "gpusq/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LBL "%.200s"
#define WRITE_CHUNK ((size_t)1 << 30)

static void errno_text(int e, char *buf, size_t cap)
{
    if (strerror_r(e, buf, cap) != 0) snprintf(buf, cap, "error %d", e);
}

/* Writes all n bytes (chunked, retrying short writes and EINTR); 0 with errno set on failure. */
static int write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        size_t chunk = n < WRITE_CHUNK ? n : WRITE_CHUNK;
        ssize_t k = write(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        if (k == 0) {
            errno = EIO;
            return 0;
        }
        p += k;
        n -= (size_t)k;
    }
    return 1;
}

/* Best effort: makes the rename durable. Failure here cannot be undone, so it is not reported;
 * the folder's name goes on the stack unless it is very long, so the file just written is not
 * reported as a failure of memory after the fact. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : (slash == path ? 1 : (size_t)(slash - path));
    char buf[4096], *dir = n < sizeof buf ? buf : malloc(n + 1);
    if (!dir) return;
    if (!slash) memcpy(dir, ".", 1);
    else memcpy(dir, path, n);
    dir[n] = '\0';
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    if (dir != buf) free(dir);
}

gsq_status gsq_write_file_atomic(const char *path, const void *const *data, const size_t *sizes, size_t n,
                                 gsq_error *err)
{
    if (!path || !path[0]) return gsq_fail(err, GSQ_ERR_ARG, "write: the path is NULL or empty");
    gsq_status st = GSQ_OK;
    size_t plen = strlen(path), tlen;
    char *tmp = NULL;
    if (gsq_size_add(plen, sizeof ".tmp.XXXXXX", &tlen)) tmp = malloc(tlen);
    if (!tmp) return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");

    char why[128];
    int fd = mkstemp(tmp);
    if (fd < 0) {
        errno_text(errno, why, sizeof why);
        free(tmp);
        return gsq_fail(err, GSQ_ERR_IO, LBL ": cannot create a temporary file beside it: %s", path, why);
    }

    /* keep an existing file's permissions; new files get rw-r--r-- rather than mkstemp's 0600 */
    struct stat sb;
    mode_t mode = (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) ? (sb.st_mode & 07777) : 0644;
    const char *step = "write";
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) ok = write_all(fd, data[i], sizes[i]);
    if (ok) {
        step = "chmod";
        ok = fchmod(fd, mode) == 0;
    }
    if (ok) {
        step = "fsync";
        ok = fsync(fd) == 0;
    }
    int saved = errno;
    if (close(fd) != 0 && ok) {
        step = "close";
        ok = 0;
        saved = errno;
    }
    if (ok) {
        step = "rename";
        ok = rename(tmp, path) == 0;
        saved = errno;
    }
    if (!ok) {
        errno_text(saved, why, sizeof why);
        unlink(tmp);
        st = gsq_fail(err, GSQ_ERR_IO, LBL ": %s of temporary %.200s failed: %s (file left unchanged)",
                      path, step, tmp, why);
    } else {
        sync_parent_dir(path);
    }
    free(tmp);
    return st;
}

/* Creates dir and its missing parents (mode 0755); 1, or 0 with errno set. dir is modified
 * in place while it is walked and restored. */
static int make_dirs(char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return 1;
        errno = ENOTDIR;
        return 0;
    }
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int ok = mkdir(dir, 0755) == 0 || errno == EEXIST;
        *p = '/';
        if (!ok) return 0;
    }
    return mkdir(dir, 0755) == 0 || errno == EEXIST;
}

/* Creates and removes a probe file in dir (which exists); label names the output for messages. */
static gsq_status probe_dir(const char *dir, const char *label, gsq_error *err)
{
    size_t n = strlen(dir), cap;
    char *probe = gsq_size_add(n, sizeof "/.gpusq-probe.XXXXXX", &cap) ? malloc(cap) : NULL;
    if (!probe) return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory", label);
    memcpy(probe, dir, n);
    memcpy(probe + n, "/.gpusq-probe.XXXXXX", sizeof "/.gpusq-probe.XXXXXX");
    int fd = mkstemp(probe);
    gsq_status st = GSQ_OK;
    if (fd < 0) {
        char why[128];
        errno_text(errno, why, sizeof why);
        st = gsq_fail(err, GSQ_ERR_IO, LBL ": cannot write in the folder %.200s: %s", label, dir, why);
    } else {
        close(fd);
        unlink(probe);
    }
    free(probe);
    return st;
}

/* Makes dir (a copy is walked) and probes it; label names the output for messages. */
static gsq_status prepare_dir(const char *dir, size_t n, const char *label, gsq_error *err)
{
    char *copy = malloc(n + 1);
    if (!copy) return gsq_fail(err, GSQ_ERR_NOMEM, LBL ": out of memory", label);
    memcpy(copy, dir, n);
    copy[n] = '\0';
    while (n > 1 && copy[n - 1] == '/') copy[--n] = '\0';
    gsq_status st = GSQ_OK;
    if (!make_dirs(copy)) {
        char why[128];
        errno_text(errno, why, sizeof why);
        st = gsq_fail(err, GSQ_ERR_IO, LBL ": cannot create the folder %.200s: %s", label, copy, why);
    }
    if (st == GSQ_OK) st = probe_dir(copy, label, err);
    free(copy);
    return st;
}

gsq_status gsq_output_prepare(const char *path, int append, gsq_error *err)
{
    if (!path || !path[0]) return gsq_fail(err, GSQ_ERR_ARG, "output: the path is NULL or empty");
    size_t n = strlen(path);
    struct stat sb;
    if (path[n - 1] == '/' || (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)))
        return gsq_fail(err, GSQ_ERR_IO, LBL ": is a folder, not a file name", path);
    const char *slash = strrchr(path, '/');
    gsq_status st = slash ? prepare_dir(path, slash == path ? 1 : (size_t)(slash - path), path, err)
                          : probe_dir(".", path, err);
    if (st == GSQ_OK && append && access(path, F_OK) == 0 && access(path, W_OK) != 0) {
        char why[128];
        errno_text(errno, why, sizeof why);
        st = gsq_fail(err, GSQ_ERR_IO, LBL ": cannot append to it: %s", path, why);
    }
    return st;
}

gsq_status gsq_output_prepare_dir(const char *dir, gsq_error *err)
{
    if (!dir || !dir[0]) return gsq_fail(err, GSQ_ERR_ARG, "output: the folder is NULL or empty");
    return prepare_dir(dir, strlen(dir), dir, err);
}
