/* The communication interface's group of one (gpusq/comm.h): the ordered sum adds a contribution
 * or leaves the sum alone, all-gather copies, a broadcast from a rank that does not exist is
 * refused; the launcher's rank count is read from each launcher's variable. */
#include <stdlib.h>
#include <string.h>

#include "gpusq/comm.h"
#include "gpusq/rng.h"
#include "test_util.h"

static void test_self_sum(void)
{
    gsq_comm *c = gsq_comm_self();
    CHECK(c->rank == 0 && c->size == 1, "the self group is rank 0 of 1");
    gsq_rng rng;
    gsq_rng_seed(&rng, 3, 0);
    size_t n = 1003;
    float *acc = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
    fill_normal(acc, n, &rng, 1.0f);
    fill_normal(x, n, &rng, 1.0f);
    for (size_t i = 0; i < n; i++) want[i] = acc[i] + x[i];
    gsq_error err = {0};
    gsq_comm_sum *s = NULL;
    unsigned char yes = 1, no = 0;
    CHECK(gsq_comm_sum_start(c, acc, x, n, &yes, 0, &s, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_comm_sum_wait(c, s, &err) == GSQ_OK, "%s", err.msg);
    CHECK(memcmp(acc, want, n * sizeof(float)) == 0, "acc + x, one addition per element");
    CHECK(gsq_comm_sum_start(c, acc, x, n, &no, 1, &s, &err) == GSQ_OK && gsq_comm_sum_wait(c, s, &err) == GSQ_OK,
          "%s", err.msg);
    CHECK(memcmp(acc, want, n * sizeof(float)) == 0, "no contributor leaves the sum alone");
    CHECK(gsq_comm_sum_start(c, acc, x, n, &yes, -1, &s, &err) == GSQ_ERR_ARG && s == NULL, "a negative tag accepted");
    free(acc);
    free(x);
    free(want);
}

static void test_self_collectives(void)
{
    gsq_comm *c = gsq_comm_self();
    gsq_error err = {0};
    int mine = 42, all = 0;
    CHECK(gsq_comm_allgather(c, &mine, &all, sizeof mine, &err) == GSQ_OK && all == 42, "allgather of one");
    CHECK(gsq_comm_broadcast(c, &mine, sizeof mine, 0, &err) == GSQ_OK && mine == 42, "broadcast from rank 0");
    CHECK(gsq_comm_broadcast(c, &mine, sizeof mine, 1, &err) == GSQ_ERR_ARG && strstr(err.msg, "root 1"),
          "a broadcast from rank 1 of 1: '%s'", err.msg);
    CHECK(gsq_comm_barrier(c, &err) == GSQ_OK, "barrier");
    gsq_comm_free(c); /* ignored: the self group is never freed */
    CHECK(gsq_comm_self()->size == 1, "the self group survives gsq_comm_free");
}

static void test_launched_size(void)
{
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMI_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("SLURM_STEP_NUM_TASKS");
    CHECK(gsq_comm_launched_size() == 1, "no launcher: one process");
    setenv("SLURM_STEP_NUM_TASKS", "8", 1);
    CHECK(gsq_comm_launched_size() == 1, "Slurm's count alone is not a launch (sbatch sets it)");
    setenv("PMIX_RANK", "0", 1);
    CHECK(gsq_comm_launched_size() == 8, "srun with PMIx");
    setenv("PMI_SIZE", "3", 1);
    CHECK(gsq_comm_launched_size() == 3, "MPICH's (or PMI-2's) count first");
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    CHECK(gsq_comm_launched_size() == 4, "Open MPI's count first");
    setenv("OMPI_COMM_WORLD_SIZE", "4x", 1);
    CHECK(gsq_comm_launched_size() == 3, "a malformed count is not read");
}

int main(void)
{
    test_self_sum();
    test_self_collectives();
    test_launched_size();
    return test_finish("test_comm");
}
