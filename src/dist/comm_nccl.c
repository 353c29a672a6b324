/* The communication interface over NCCL (src/dist/comm_nccl.h): the ordered sum as the MPI one
 * (parts to their owners, added in rank order, sums back to every rank) with grouped
 * ncclSend/ncclRecv on one stream, the additions by gsq_nccl_add; completion is an event on that
 * stream. Small host-side exchanges go through the bootstrap group. */
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "dist/comm_nccl.h"

typedef struct {
    gsq_comm *boot;
    ncclComm_t nccl;
    cudaStream_t stream;
} nccl_impl;

struct gsq_comm_sum {
    cudaEvent_t done;
    float *stage; /* device: the contributions received for this rank's part */
};

static gsq_status nccl_fail(gsq_error *err, const char *what, ncclResult_t r)
{
    return gsq_fail(err, GSQ_ERR_IO, "NCCL %s failed: %s", what, ncclGetErrorString(r));
}

static gsq_status cuda_fail(gsq_error *err, const char *what, cudaError_t e)
{
    return gsq_fail(err, GSQ_ERR_IO, "CUDA %s failed: %s", what, cudaGetErrorString(e));
}

static gsq_status n_allgather(gsq_comm *c, const void *mine, void *all, size_t bytes, gsq_error *err)
{
    return gsq_comm_allgather(((nccl_impl *)c->impl)->boot, mine, all, bytes, err);
}

static gsq_status n_broadcast(gsq_comm *c, void *buf, size_t bytes, int root, gsq_error *err)
{
    return gsq_comm_broadcast(((nccl_impl *)c->impl)->boot, buf, bytes, root, err);
}

static gsq_status n_barrier(gsq_comm *c, gsq_error *err)
{
    return gsq_comm_barrier(((nccl_impl *)c->impl)->boot, err);
}

static void n_sum_free(gsq_comm_sum *s)
{
    if (!s) return;
    if (s->done) {
        cudaEventSynchronize(s->done);
        cudaEventDestroy(s->done);
    }
    cudaFree(s->stage);
    free(s);
}

static gsq_status n_sum_start(gsq_comm *c, float *acc, float *x, size_t n, const unsigned char *contributes, int tag,
                              gsq_comm_sum **out, gsq_error *err)
{
    nccl_impl *im = c->impl;
    int N = c->size, me = c->rank;
    size_t lo, hi;
    gsq_comm_part(n, N, me, &lo, &hi);
    gsq_comm_sum *s = calloc(1, sizeof *s);
    if (!s) return gsq_fail(err, GSQ_ERR_NOMEM, "gradient sum: out of memory");
    cudaError_t e = cudaMalloc((void **)&s->stage, ((size_t)N * (hi - lo) + 1) * sizeof(float));
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        n_sum_free(s);
        return cuda_fail(err, "allocation for the gradient sum", e);
    }
    ncclResult_t r = ncclGroupStart();
    for (int p = 0; r == ncclSuccess && p < N; p++) {
        if (p == me) continue;
        size_t plo, phi;
        gsq_comm_part(n, N, p, &plo, &phi);
        if (contributes[p]) r = ncclRecv(s->stage + (size_t)p * (hi - lo), hi - lo, ncclFloat, p, im->nccl, im->stream);
        if (r == ncclSuccess && contributes[me]) r = ncclSend(x + plo, phi - plo, ncclFloat, p, im->nccl, im->stream);
    }
    ncclResult_t r2 = ncclGroupEnd();
    if (r == ncclSuccess) r = r2;
    int any = 0;
    for (int p = 0; r == ncclSuccess && p < N; p++) {
        if (!contributes[p]) continue;
        any = 1;
        const float *src = p == me ? x + lo : s->stage + (size_t)p * (hi - lo);
        if (gsq_nccl_add(acc + lo, src, hi - lo, im->stream) != 0) {
            n_sum_free(s);
            return gsq_fail(err, GSQ_ERR_IO, "CUDA: the gradient sum's kernel did not start");
        }
    }
    if (r == ncclSuccess && any) {
        r = ncclGroupStart();
        for (int p = 0; r == ncclSuccess && p < N; p++) {
            if (p == me) continue;
            size_t plo, phi;
            gsq_comm_part(n, N, p, &plo, &phi);
            r = ncclRecv(acc + plo, phi - plo, ncclFloat, p, im->nccl, im->stream);
            if (r == ncclSuccess) r = ncclSend(acc + lo, hi - lo, ncclFloat, p, im->nccl, im->stream);
        }
        r2 = ncclGroupEnd();
        if (r == ncclSuccess) r = r2;
    }
    if (r != ncclSuccess) {
        n_sum_free(s);
        return nccl_fail(err, "gradient sum", r);
    }
    e = cudaEventRecord(s->done, im->stream);
    if (e != cudaSuccess) {
        n_sum_free(s);
        return cuda_fail(err, "event record", e);
    }
    *out = s;
    return GSQ_OK;
}

static gsq_status n_sum_test(gsq_comm_sum *s, int *done, gsq_error *err)
{
    cudaError_t e = cudaEventQuery(s->done);
    *done = e == cudaSuccess;
    return e == cudaSuccess || e == cudaErrorNotReady ? GSQ_OK : cuda_fail(err, "gradient sum", e);
}

static void n_destroy(gsq_comm *c)
{
    nccl_impl *im = c->impl;
    ncclCommDestroy(im->nccl);
    cudaStreamDestroy(im->stream);
    free(im);
    free(c);
}

static const gsq_comm_ops nccl_ops = {
    .name = "nccl", .allgather = n_allgather, .broadcast = n_broadcast, .barrier = n_barrier,
    .sum_start = n_sum_start, .sum_test = n_sum_test, .sum_free = n_sum_free, .destroy = n_destroy,
};

gsq_status gsq_comm_nccl_create(gsq_comm **out, gsq_comm *bootstrap, int device, gsq_error *err)
{
    *out = NULL;
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) return cuda_fail(err, "device selection", e);
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (bootstrap->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess) return nccl_fail(err, "unique id", r);
    }
    gsq_status st = gsq_comm_broadcast(bootstrap, &id, sizeof id, 0, err);
    if (st != GSQ_OK) return st;
    gsq_comm *c = calloc(1, sizeof *c);
    nccl_impl *im = calloc(1, sizeof *im);
    if (!c || !im) {
        free(c);
        free(im);
        return gsq_fail(err, GSQ_ERR_NOMEM, "NCCL: out of memory");
    }
    e = cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking);
    ncclResult_t r = e == cudaSuccess ? ncclCommInitRank(&im->nccl, bootstrap->size, id, bootstrap->rank) : ncclSuccess;
    if (e != cudaSuccess || r != ncclSuccess) {
        if (e == cudaSuccess) cudaStreamDestroy(im->stream);
        free(c);
        free(im);
        return e != cudaSuccess ? cuda_fail(err, "stream creation", e) : nccl_fail(err, "communicator set-up", r);
    }
    im->boot = bootstrap;
    *c = (gsq_comm){.rank = bootstrap->rank, .size = bootstrap->size, .ops = &nccl_ops, .impl = im};
    *out = c;
    return GSQ_OK;
}
