/* gpusq started by an MPI launcher (mpirun, mpiexec, srun): the commands that train join MPI's
 * group, rank 0 alone writes files and prints, and a failure on any rank ends the whole job
 * (docs/DISTRIBUTED.md). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static gsq_comm *comm;
static char held[GSQ_ERROR_MSG_MAX + 64]; /* another rank's error, printed if it failed alone */

/* Seconds the ranks wait for each other after a failure before deciding it was one rank's. */
#define AGREE_SECONDS 20.0

void cli_error_message(const char *line)
{
    if (cli_comm()->rank == 0) fputs(line, stderr);
    else snprintf(held, sizeof held, "%s", line);
}

gsq_comm *cli_comm(void)
{
    return comm ? comm : gsq_comm_self();
}

int cli_writes(void)
{
    return cli_comm()->rank == 0;
}

int cli_comm_start(const char *cmd, int *argc, char ***argv)
{
    static const char *const trainers[] = {"train", "prune", "quantize", "compress"};
    int launched = gsq_comm_launched_size(), trains = 0;
    for (size_t i = 0; i < sizeof trainers / sizeof *trainers; i++) trains |= strcmp(cmd, trainers[i]) == 0;
    if (trains) cli_signals_start(); /* before any other thread: MPI's, OpenMP's, the loader's */
    if (launched <= 1) return -1;
    if (!trains) {
        fprintf(stderr, "gpusq %s: started as %d processes, but only train, prune, quantize and compress run across "
                "processes; start it once\n", cmd, launched);
        return 2;
    }
    gsq_error err = {0};
    if (gsq_comm_mpi_create(&comm, argc, argv, &err) != GSQ_OK) {
        fprintf(stderr, "gpusq %s: started as %d processes: %s\n", cmd, launched, err.msg);
        return 1;
    }
    if (comm->rank != 0 && !freopen("/dev/null", "w", stdout)) /* rank 0 reports for all */
        fprintf(stderr, "gpusq %s: rank %d: warning: its output is not silenced\n", cmd, comm->rank);
    return -1;
}

int cli_comm_end(int code)
{
    /* 0 and 130 (stopped) are decided together by every rank, and so are the failures the library
     * reports to every rank (rank 0 has printed them); a failure of one rank alone leaves the
     * others waiting in the library: it says what it was and ends them all */
    if (comm && code != 0 && code != 130 && !gsq_comm_agree_within(comm, AGREE_SECONDS)) {
        fputs(held, stderr);
        gsq_comm_abort(comm, code);
    }
    gsq_comm_free(comm);
    comm = NULL;
    return code;
}
