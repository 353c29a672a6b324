/* Atomic file writes: PATH.tmp.XXXXXX beside PATH, fsync, rename over PATH, fsync of the
 * directory, so a crash or an error never leaves a half-written file under PATH. */
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

/* Best effort: makes the rename durable. Failure here cannot be undone, so it is not reported. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : (slash == path ? 1 : (size_t)(slash - path));
    char *dir = malloc(n + 1);
    if (!dir) return;
    if (!slash) memcpy(dir, ".", 1);
    else memcpy(dir, path, n);
    dir[n] = '\0';
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
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
