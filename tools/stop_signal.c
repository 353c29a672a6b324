/* Ctrl-C and SIGTERM (what mpirun, srun and schedulers send to stop a job): blocked in every
 * thread from the start of the program, and taken by one thread that waits for them. While a run
 * is armed the first one asks it to stop at the end of its step (with a checkpoint); any other
 * ends the program at once, by the signal. No thread is ever interrupted by them: under MPI an interrupted system
 * call inside the MPI library's threads corrupted memory (seen with Open MPI 4.1). */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t armed;
static sigset_t stop_set;

static void *watch(void *arg)
{
    (void)arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&stop_set, &sig) != 0) continue;
        if (armed && !stop_flag) {
            stop_flag = 1;
            continue;
        }
        /* a second Ctrl-C, or one outside a run: end now, by the signal, as the default does
         * (a shell running gpusq in a loop then stops too) */
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        signal(sig, SIG_DFL);
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        raise(sig);
        _exit(128 + sig); /* not reached */
    }
    return NULL;
}

void cli_signals_start(void)
{
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_t t;
    /* every thread made from here on (MPI's, the loader's, OpenMP's) inherits the mask */
    if (pthread_sigmask(SIG_BLOCK, &stop_set, NULL) != 0) return;
    if (pthread_create(&t, NULL, watch, NULL) != 0) {
        pthread_sigmask(SIG_UNBLOCK, &stop_set, NULL); /* the defaults then */
        return;
    }
    pthread_detach(t);
}

volatile sig_atomic_t *cli_stop_arm(void)
{
    stop_flag = 0;
    armed = 1;
    return &stop_flag;
}

void cli_stop_disarm(void)
{
    armed = 0;
}
