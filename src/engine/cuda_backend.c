/* Opens the CUDA backend library (cuda_backend.h) the first time a GPU is asked for, once per
 * process: where it looks, in order, is $GSQ_CUDA_BACKEND, the program's own folder, the build
 * tree that made this library (GSQ_CUDA_BACKEND_BUILT, set by CMake when nvcc built one), then the
 * loader's search path (LD_LIBRARY_PATH, the system's). Nothing of CUDA is loaded before. */
#include "cuda_backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const gsq_cuda_backend *backend;
static char why[1024]; /* why there is none, when there is none */

/* Appends "PATH: REASON; " to why; returns the table when PATH opens and matches. */
static const gsq_cuda_backend *try_open(const char *path)
{
    size_t used = strlen(why);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(why + used, sizeof why - used, "%s%s", used ? "; " : "", e ? e : path);
        return NULL;
    }
    const gsq_cuda_backend *(*entry)(void) = NULL;
    *(void **)&entry = dlsym(lib, GSQ_CUDA_BACKEND_ENTRY);
    const gsq_cuda_backend *b = entry ? entry() : NULL;
    if (b && b->abi == GSQ_CUDA_BACKEND_ABI && b->engine_size == sizeof(gsq_engine)) return b;
    snprintf(why + used, sizeof why - used, "%s%s: %s", used ? "; " : "", path,
             b ? "made by another build of gpusq (rebuild both)" : "not a gpusq CUDA backend");
    dlclose(lib);
    return NULL;
}

static void open_once(void)
{
    const char *env = getenv("GSQ_CUDA_BACKEND");
    if (env && env[0]) {
        backend = try_open(env);
        return;
    }
    char self[PATH_MAX], path[PATH_MAX + sizeof GSQ_CUDA_BACKEND_FILE];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) {
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - self), self, GSQ_CUDA_BACKEND_FILE);
        if (access(path, F_OK) == 0 && (backend = try_open(path))) return;
    }
#ifdef GSQ_CUDA_BACKEND_BUILT
    if (access(GSQ_CUDA_BACKEND_BUILT, F_OK) == 0 && (backend = try_open(GSQ_CUDA_BACKEND_BUILT))) return;
#endif
    backend = try_open(GSQ_CUDA_BACKEND_FILE);
}

gsq_status gsq_cuda_backend_open(const gsq_cuda_backend **out, gsq_error *err)
{
    pthread_once(&once, open_once);
    *out = backend;
    if (backend) return GSQ_OK;
#ifdef GSQ_CUDA_BACKEND_BUILT
    const char *hint = "set GSQ_CUDA_BACKEND to its path";
#else
    const char *hint = "this build had no nvcc; build gpusq where the CUDA toolkit is installed";
#endif
    return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cuda: no usable CUDA backend library (%s): %s", hint, why);
}

gsq_status gsq_engine_gpu_name(char *buf, size_t cap, gsq_error *err)
{
    const gsq_cuda_backend *b;
    if (cap) buf[0] = '\0';
    gsq_status st = gsq_cuda_backend_open(&b, err);
    return st == GSQ_OK ? b->device_name(buf, cap, err) : st;
}
