/* The communication interface's dispatch, the group of one process, and the launcher's rank
 * count (gpusq/comm.h). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpusq/comm.h"

struct gsq_comm_sum {
    char done; /* the group of one adds at start: the handle only has to exist */
};

static gsq_status self_allgather(gsq_comm *c, const void *mine, void *all, size_t bytes, gsq_error *err)
{
    if (all != mine) memmove(all, mine, bytes);
    return GSQ_OK;
}

static gsq_status self_broadcast(gsq_comm *c, void *buf, size_t bytes, int root, gsq_error *err)
{
    return GSQ_OK;
}

static gsq_status self_barrier(gsq_comm *c, gsq_error *err)
{
    return GSQ_OK;
}

/* One contributor: the sum is acc + x, done at once (the same additions an owner makes under MPI). */
static gsq_status self_sum_start(gsq_comm *c, float *acc, float *x, size_t n, const unsigned char *contributes,
                                 int tag, gsq_comm_sum **out, gsq_error *err)
{
    gsq_comm_sum *s = calloc(1, sizeof *s);
    if (!s) return gsq_fail(err, GSQ_ERR_NOMEM, "gradient sum: out of memory");
    if (contributes[0])
        for (size_t i = 0; i < n; i++) acc[i] += x[i];
    *out = s;
    return GSQ_OK;
}

static gsq_status self_sum_test(gsq_comm_sum *s, int *done, gsq_error *err)
{
    *done = 1;
    return GSQ_OK;
}

static void self_sum_free(gsq_comm_sum *s)
{
    free(s);
}

static const gsq_comm_ops self_ops = {
    .name = "single", .allgather = self_allgather, .broadcast = self_broadcast, .barrier = self_barrier,
    .sum_start = self_sum_start, .sum_test = self_sum_test, .sum_free = self_sum_free,
};

gsq_comm *gsq_comm_self(void)
{
    static gsq_comm self = {.rank = 0, .size = 1, .ops = &self_ops};
    return &self;
}

void gsq_comm_free(gsq_comm *c)
{
    if (c && c->ops->destroy) c->ops->destroy(c);
}

gsq_status gsq_comm_allgather(gsq_comm *c, const void *mine, void *all, size_t bytes, gsq_error *err)
{
    return c->ops->allgather(c, mine, all, bytes, err);
}

gsq_status gsq_comm_broadcast(gsq_comm *c, void *buf, size_t bytes, int root, gsq_error *err)
{
    if (root < 0 || root >= c->size)
        return gsq_fail(err, GSQ_ERR_ARG, "broadcast: root %d is not a rank of %d", root, c->size);
    return c->ops->broadcast(c, buf, bytes, root, err);
}

gsq_status gsq_comm_barrier(gsq_comm *c, gsq_error *err)
{
    return c->ops->barrier(c, err);
}

gsq_status gsq_comm_sum_start(gsq_comm *c, float *acc, float *x, size_t n, const unsigned char *contributes, int tag,
                              gsq_comm_sum **out, gsq_error *err)
{
    *out = NULL;
    if (tag < 0) return gsq_fail(err, GSQ_ERR_ARG, "gradient sum: negative tag %d", tag);
    return c->ops->sum_start(c, acc, x, n, contributes, tag, out, err);
}

gsq_status gsq_comm_sum_test(gsq_comm *c, gsq_comm_sum *s, int *done, gsq_error *err)
{
    return c->ops->sum_test(s, done, err);
}

void gsq_comm_sum_free(gsq_comm *c, gsq_comm_sum *s)
{
    if (s) c->ops->sum_free(s);
}

gsq_status gsq_comm_sum_wait(gsq_comm *c, gsq_comm_sum *s, gsq_error *err)
{
    int done = 0;
    gsq_status st;
    /* MPI progresses only inside its calls: test often, but give the core back between tests so a
     * waiting rank does not take it from a computing one */
    for (;;) {
        st = gsq_comm_sum_test(c, s, &done, err);
        if (st != GSQ_OK || done) break;
        nanosleep(&(struct timespec){.tv_nsec = 20000}, NULL);
    }
    gsq_comm_sum_free(c, s);
    return st;
}

void gsq_comm_part(size_t n, int size, int r, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)r / (size_t)size;
    *hi = n * (size_t)(r + 1) / (size_t)size;
}

int gsq_comm_launched_size(void)
{
    /* Open MPI's mpirun, MPICH's mpiexec (and srun --mpi=pmi2), srun with PMIx */
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        if (i == 2 && !getenv("PMIX_RANK")) continue; /* Slurm's count means a launch only with PMIx */
        char *end;
        long n = v ? strtol(v, &end, 10) : 0;
        if (v && *end == '\0' && n >= 1 && n <= 1 << 20) return (int)n;
    }
    return 1;
}
