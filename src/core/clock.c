/* The monotonic clock of include/gpusq/clock.h. */
#include "gpusq/clock.h"

#include <time.h>

double gsq_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
