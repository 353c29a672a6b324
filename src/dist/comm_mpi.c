/* The communication interface over MPI (gpusq/comm.h). The ordered sum is a reduce-scatter to
 * owners and an all-gather, both point to point: rank j owns the j-th part of the buffer,
 * receives every contributor's part j and adds them to acc in rank order, then sends the summed
 * part to every rank. Each rank sends and receives (N−1)/N of the buffer twice, as a ring
 * all-reduce does, in two rounds of messages instead of 2(N−1). Without MPI (GSQ_HAVE_MPI unset)
 * only the refusals remain. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpusq/comm.h"

#if GSQ_HAVE_MPI
#include <mpi.h>

struct gsq_comm_sum {
    gsq_comm *comm;
    float *acc, *x;
    size_t n;
    unsigned char *contributes;
    int tag, phase;          /* 0: parts travelling to their owners; 1: sums travelling back */
    float *stage;            /* (size, part) contributions received for this rank's part */
    MPI_Request *req;        /* up to 2 · size */
    int nreq;
};

static gsq_status mpi_fail(gsq_error *err, const char *what, int code)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", code);
    return gsq_fail(err, GSQ_ERR_IO, "MPI %s failed: %s", what, text);
}

/* MPI counts are ints: byte counts go as chunks of at most 1 GiB. */
#define CHUNK ((size_t)1 << 30)

static gsq_status m_allgather(gsq_comm *c, const void *mine, void *all, size_t bytes, gsq_error *err)
{
    if (bytes > CHUNK) return gsq_fail(err, GSQ_ERR_ARG, "allgather: %zu bytes per rank is too many", bytes);
    int rc = MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? GSQ_OK : mpi_fail(err, "allgather", rc);
}

static gsq_status m_broadcast(gsq_comm *c, void *buf, size_t bytes, int root, gsq_error *err)
{
    for (size_t off = 0; off < bytes; off += CHUNK) {
        size_t len = bytes - off < CHUNK ? bytes - off : CHUNK;
        int rc = MPI_Bcast((char *)buf + off, (int)len, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(err, "broadcast", rc);
    }
    return GSQ_OK;
}

static gsq_status m_barrier(gsq_comm *c, gsq_error *err)
{
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? GSQ_OK : mpi_fail(err, "barrier", rc);
}

static void m_sum_free(gsq_comm_sum *s)
{
    if (!s) return;
    for (int i = 0; i < s->nreq; i++)
        if (s->req[i] != MPI_REQUEST_NULL) { /* a receive already matched completes: wait for it */
            MPI_Cancel(&s->req[i]);
            MPI_Wait(&s->req[i], MPI_STATUS_IGNORE);
        }
    free(s->stage);
    free(s->req);
    free(s->contributes);
    free(s);
}

/* Tags: two per sum (its phases), below MPI's guaranteed upper bound of 32767. */
static int phase_tag(const gsq_comm_sum *s)
{
    return (s->tag % 16000) * 2 + s->phase;
}

static gsq_status post(gsq_comm_sum *s, int send, void *buf, size_t count, int peer, gsq_error *err)
{
    if (count > CHUNK / sizeof(float))
        return gsq_fail(err, GSQ_ERR_ARG, "gradient sum: a part of %zu floats is too large for one message", count);
    int rc = send ? MPI_Isend(buf, (int)count, MPI_FLOAT, peer, phase_tag(s), MPI_COMM_WORLD, &s->req[s->nreq])
                  : MPI_Irecv(buf, (int)count, MPI_FLOAT, peer, phase_tag(s), MPI_COMM_WORLD, &s->req[s->nreq]);
    if (rc != MPI_SUCCESS) return mpi_fail(err, send ? "send" : "receive", rc);
    s->nreq++;
    return GSQ_OK;
}

static gsq_status m_sum_start(gsq_comm *c, float *acc, float *x, size_t n, const unsigned char *contributes, int tag,
                              gsq_comm_sum **out, gsq_error *err)
{
    int N = c->size, me = c->rank;
    size_t lo, hi;
    gsq_comm_part(n, N, me, &lo, &hi);
    gsq_comm_sum *s = calloc(1, sizeof *s);
    if (s) {
        s->req = malloc(2 * (size_t)N * sizeof *s->req);
        s->contributes = malloc((size_t)N);
        s->stage = malloc(((size_t)N * (hi - lo) + 1) * sizeof(float));
    }
    if (!s || !s->req || !s->contributes || !s->stage) {
        m_sum_free(s);
        return gsq_fail(err, GSQ_ERR_NOMEM, "gradient sum: out of memory for %zu floats from %d ranks", n, N);
    }
    s->comm = c;
    s->acc = acc;
    s->x = x;
    s->n = n;
    s->tag = tag;
    memcpy(s->contributes, contributes, (size_t)N);
    gsq_status st = GSQ_OK;
    for (int r = 0; st == GSQ_OK && r < N; r++) {
        if (r == me) continue;
        if (contributes[r]) st = post(s, 0, s->stage + (size_t)r * (hi - lo), hi - lo, r, err);
        size_t rlo, rhi;
        gsq_comm_part(n, N, r, &rlo, &rhi);
        if (st == GSQ_OK && contributes[me]) st = post(s, 1, x + rlo, rhi - rlo, r, err);
    }
    if (st != GSQ_OK) {
        m_sum_free(s);
        return st;
    }
    *out = s;
    return GSQ_OK;
}

/* Phase 0 done: add this rank's part in rank order, then send it to every rank and receive theirs. */
static gsq_status owner_sum(gsq_comm_sum *s, gsq_error *err)
{
    gsq_comm *c = s->comm;
    int N = c->size, me = c->rank;
    size_t lo, hi;
    gsq_comm_part(s->n, N, me, &lo, &hi);
    float *acc = s->acc + lo;
    for (int r = 0; r < N; r++) {
        if (!s->contributes[r]) continue;
        const float *x = r == me ? s->x + lo : s->stage + (size_t)r * (hi - lo);
        for (size_t i = 0; i < hi - lo; i++) acc[i] += x[i];
    }
    s->phase = 1;
    s->nreq = 0;
    gsq_status st = GSQ_OK;
    for (int r = 0; st == GSQ_OK && r < N; r++) {
        if (r == me) continue;
        size_t rlo, rhi;
        gsq_comm_part(s->n, N, r, &rlo, &rhi);
        st = post(s, 0, s->acc + rlo, rhi - rlo, r, err);
        if (st == GSQ_OK) st = post(s, 1, acc, hi - lo, r, err);
    }
    return st;
}

static gsq_status m_sum_test(gsq_comm_sum *s, int *done, gsq_error *err)
{
    *done = 0;
    int all = 1, rc = s->nreq ? MPI_Testall(s->nreq, s->req, &all, MPI_STATUSES_IGNORE) : MPI_SUCCESS;
    if (rc != MPI_SUCCESS) return mpi_fail(err, "gradient sum", rc);
    if (!all) return GSQ_OK;
    if (s->phase == 0) {
        int any = 0;
        for (int r = 0; r < s->comm->size; r++) any |= s->contributes[r];
        if (!any) { /* nothing to add: acc stays, no second phase */
            *done = 1;
            s->nreq = 0;
            return GSQ_OK;
        }
        return owner_sum(s, err);
    }
    s->nreq = 0;
    *done = 1;
    return GSQ_OK;
}

static void m_destroy(gsq_comm *c)
{
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
    free(c);
}

static const gsq_comm_ops mpi_ops = {
    .name = "mpi", .allgather = m_allgather, .broadcast = m_broadcast, .barrier = m_barrier,
    .sum_start = m_sum_start, .sum_test = m_sum_test, .sum_free = m_sum_free, .destroy = m_destroy,
};

int gsq_comm_mpi_available(void)
{
    return 1;
}

gsq_status gsq_comm_mpi_create(gsq_comm **out, int *argc, char ***argv, gsq_error *err)
{
    *out = NULL;
    gsq_comm *c = calloc(1, sizeof *c);
    if (!c) return gsq_fail(err, GSQ_ERR_NOMEM, "MPI: out of memory");
    int provided = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
        free(c);
        return mpi_fail(err, "initialisation", rc);
    }
    /* errors come back as codes (and messages), not as an abort inside MPI */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    c->ops = &mpi_ops;
    if (provided < MPI_THREAD_FUNNELED) {
        m_destroy(c);
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "MPI: this MPI library does not allow threads in the process "
                        "(MPI_THREAD_FUNNELED), which gpusq's loader and OpenMP need");
    }
    *out = c;
    return GSQ_OK;
}

void gsq_comm_abort(gsq_comm *c, int code)
{
    if (c && c->ops == &mpi_ops) MPI_Abort(MPI_COMM_WORLD, code);
}

int gsq_comm_agree_within(gsq_comm *c, double seconds)
{
    if (!c || c->ops != &mpi_ops) return 1;
    MPI_Request req;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &req) != MPI_SUCCESS) return 0;
    double end = MPI_Wtime() + seconds;
    int done = 0;
    while (MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done && MPI_Wtime() < end)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    return done; /* a barrier left behind is the abort's to clean */
}

#else

int gsq_comm_mpi_available(void)
{
    return 0;
}

int gsq_comm_agree_within(gsq_comm *c, double seconds)
{
    return 1;
}

gsq_status gsq_comm_mpi_create(gsq_comm **out, int *argc, char ***argv, gsq_error *err)
{
    *out = NULL;
    return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "this gpusq was built without MPI: install an MPI library "
                    "(Debian: apt-get install libopenmpi-dev openmpi-bin, or scripts/install-deps.sh) and "
                    "configure again with cmake; docs/DISTRIBUTED.md");
}

void gsq_comm_abort(gsq_comm *c, int code)
{
}

#endif
