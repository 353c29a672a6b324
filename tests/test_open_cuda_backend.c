/* Where libgpusq finds the CUDA backend library (src/engine/cuda_backend.h), on any machine: nothing
 * of CUDA is mapped into a process that has not asked for a GPU; asking for the GPU's name opens
 * the library of this build (when nvcc made one) and, without a GPU, fails with the runtime's
 * reason, not a missing library; in a build without it, the failure says that there is none and
 * why. GSQ_CUDA_BACKEND pointing at a missing file is reported with that path (a child process:
 * the library is opened once per process). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpusq/engine.h"
#include "test_util.h"

/* 1 if a mapping of this process's names a file containing `part`. */
static int mapped(const char *part)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) found |= strstr(line, part) != NULL;
    if (f) fclose(f);
    return found;
}

/* In a child with GSQ_CUDA_BACKEND=path: the status of asking for the GPU's name and its message. */
static gsq_status child_with(const char *path, char *msg, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0) return GSQ_ERR_IO;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        setenv("GSQ_CUDA_BACKEND", path, 1);
        char name[256];
        gsq_error err = {0};
        gsq_status st = gsq_engine_gpu_name(name, sizeof name, &err);
        ssize_t w = write(fd[1], err.msg, strlen(err.msg) + 1);
        _exit(w > 0 ? (int)st : 100);
    }
    close(fd[1]);
    ssize_t n = read(fd[0], msg, cap - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? (gsq_status)WEXITSTATUS(status) : GSQ_ERR_IO;
}

int main(void)
{
    CHECK(!mapped("libgpusq_cuda") && !mapped("libcudart") && !mapped("libcublas"),
          "CUDA is loaded before anything asked for a GPU");

    char msg[1024];
    gsq_status st = child_with("/nonexistent/libgpusq_cuda.so", msg, sizeof msg);
    CHECK(st == GSQ_ERR_UNSUPPORTED && strstr(msg, "/nonexistent/libgpusq_cuda.so"),
          "GSQ_CUDA_BACKEND at a missing file: status %d, '%s'", (int)st, msg);
    printf("GSQ_CUDA_BACKEND at a missing file: %s\n", msg);

    char name[256];
    gsq_error err = {0};
    st = gsq_engine_gpu_name(name, sizeof name, &err);
#ifdef GSQ_CUDA_BACKEND_BUILT
    CHECK(mapped("libgpusq_cuda.so"), "the backend library of this build was not opened: %s", err.msg);
    CHECK(st == GSQ_OK || (st == GSQ_ERR_UNSUPPORTED && strstr(err.msg, "cuda:") &&
                           !strstr(err.msg, "no usable CUDA backend library")),
          "asking for the GPU: status %d, '%s'", (int)st, err.msg);
    printf("backend library %s: %s\n", GSQ_CUDA_BACKEND_BUILT, st == GSQ_OK ? name : err.msg);
#else
    CHECK(st == GSQ_ERR_UNSUPPORTED && strstr(err.msg, "no usable CUDA backend library") &&
              strstr(err.msg, "no nvcc"), "a build without the library: status %d, '%s'", (int)st, err.msg);
    printf("no backend library in this build: %s\n", err.msg);
#endif
    return test_finish("test_open_cuda_backend");
}
