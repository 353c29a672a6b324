/* A monotonic clock for timings (training progress, loader waits, engine parts, benchmarks). */
#ifndef GPUSQ_CLOCK_H
#define GPUSQ_CLOCK_H

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC): only differences mean anything. */
double gsq_seconds(void);

#endif
