/* Private: the engine's plan, compiled once from the network's graph (gpusq/graph.h): one step per
 * operation, with the fusions a backend asks for written once here for every backend — an
 * operation whose only reader is the next step's compressed linear writes that linear's input
 * (int8 codes, or half for the FP16 layout) instead of floats, a LayerNorm also through a window
 * partition between them (writing the codes in window order); a GELU after a linear goes into the
 * linear's epilogue; a linear (or a window reverse) with a residual adds into the residual's
 * buffer. Then the float
 * values left are placed in one arena by the graph's planner, reused once dead. The CPU
 * (engine_forward.c) and CUDA (engine_cuda.c) executors walk the steps. */
#ifndef GSQ_ENGINE_PLAN_H
#define GSQ_ENGINE_PLAN_H

#include <stddef.h>

#include "gpusq/graph.h"

typedef struct {
    int node;       /* the graph node it runs */
    int feeds;      /* ≥ 0: writes the input of the linear with this index (the next step's) instead of
                     * floats */
    int input;      /* LINEAR: where its input comes from: -1 floats (it quantizes them itself),
                     * 0 the input buffer an earlier step fed, 1 the other one (a linear's epilogue) */
    int output;     /* feeds ≥ 0: which input buffer it writes (0 or 1) */
    int gelu;       /* LINEAR: applies the GELU node that follows (which has no step of its own) */
    int window;     /* LAYERNORM feeding a linear: ≥ 0, the WINDOW node between them (which has no step of
                     * its own) whose row order the codes are written in; -1: none */
    int accumulate; /* LINEAR, UNWINDOW: adds into in[1]'s buffer, which its output then is */
    int out;        /* the value whose float buffer it writes (-1: none) */
    int part;       /* the part of the pass its time counts to */
} gsq_engine_step;

/* What a backend fuses: a bit (1u << op) for each operation that can write a compressed linear's
 * input (GSQ_OP_WINDOW's bit: a LayerNorm can through a window partition); and whether a linear
 * that feeds another still needs its float output as scratch. */
typedef struct {
    unsigned feeds;
    int fed_linear_scratch;
} gsq_engine_fusions;

#define GSQ_ENGINE_PART_MAX 80

typedef struct {
    gsq_engine_step *steps;
    int num_steps;
    size_t *at;             /* each value's offset in the arena, in floats (SIZE_MAX: not there) */
    size_t floats;          /* the arena's size, for max_batch images */
    int num_parts;
    char (*part_names)[GSQ_ENGINE_PART_MAX];
} gsq_engine_plan;

/* Compiles g for a backend's fusions and batches up to max_batch. */
gsq_status gsq_engine_plan_build(gsq_engine_plan *p, const gsq_graph *g, const gsq_engine_fusions *f, int max_batch,
                                 gsq_error *err);
void gsq_engine_plan_free(gsq_engine_plan *p);
/* The index of the part called label, added when new; -1 out of memory. */
int gsq_engine_plan_part(gsq_engine_plan *p, const char *label);

#endif
