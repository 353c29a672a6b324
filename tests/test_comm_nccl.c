/* The NCCL communicator (src/dist/comm_nccl.c) on one GPU, one rank (MPI as a singleton): set up
 * the llm.c way, its ordered sum adds a device contribution exactly (acc + x per element) or
 * leaves the sum alone, and the host-side exchanges go through MPI. Skips where the build has no
 * NCCL (registered as a skip) or the machine no GPU. */
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "dist/comm_nccl.h"
#include "gpusq/rng.h"
#include "test_util.h"

int main(int argc, char **argv)
{
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) return test_skip("test_comm_nccl", "no GPU");
    gsq_error err = {0};
    gsq_comm *mpi = NULL, *nccl = NULL;
    CHECK(gsq_comm_mpi_create(&mpi, &argc, &argv, &err) == GSQ_OK, "%s", err.msg);
    if (!mpi) return test_finish("test_comm_nccl");
    CHECK(gsq_comm_nccl_create(&nccl, mpi, 0, &err) == GSQ_OK, "%s", err.msg);
    if (nccl) {
        CHECK(nccl->rank == 0 && nccl->size == 1, "rank %d of %d", nccl->rank, nccl->size);
        const size_t sizes[] = {1, 1000003};
        gsq_rng rng;
        gsq_rng_seed(&rng, 5, 0);
        for (size_t k = 0; k < 2; k++) {
            size_t n = sizes[k];
            float *acc = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
            float *dacc = NULL, *dx = NULL;
            fill_normal(acc, n, &rng, 1.0f);
            fill_normal(x, n, &rng, 1.0f);
            cudaMalloc((void **)&dacc, n * sizeof(float));
            cudaMalloc((void **)&dx, n * sizeof(float));
            cudaMemcpy(dacc, acc, n * sizeof(float), cudaMemcpyHostToDevice);
            cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice);
            unsigned char yes = 1, no = 0;
            gsq_comm_sum *s = NULL;
            CHECK(gsq_comm_sum_start(nccl, dacc, dx, n, &yes, 0, &s, &err) == GSQ_OK &&
                  gsq_comm_sum_wait(nccl, s, &err) == GSQ_OK, "%s", err.msg);
            CHECK(gsq_comm_sum_start(nccl, dacc, dx, n, &no, 1, &s, &err) == GSQ_OK &&
                  gsq_comm_sum_wait(nccl, s, &err) == GSQ_OK, "%s", err.msg);
            cudaMemcpy(got, dacc, n * sizeof(float), cudaMemcpyDeviceToHost);
            int exact = 1;
            for (size_t i = 0; i < n; i++) exact &= got[i] == acc[i] + x[i];
            CHECK(exact, "%zu floats: the sum is not acc + x exactly", n);
            cudaFree(dacc);
            cudaFree(dx);
            free(acc);
            free(x);
            free(got);
        }
        int mine = 7, all = 0;
        CHECK(gsq_comm_allgather(nccl, &mine, &all, sizeof mine, &err) == GSQ_OK && all == 7, "host allgather");
        gsq_comm_free(nccl);
    }
    gsq_comm_free(mpi);
    return test_finish("test_comm_nccl");
}
