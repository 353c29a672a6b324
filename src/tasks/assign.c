/* The exact minimum-cost assignment (gpusq/detect.h's gsq_assign) by shortest augmenting paths, as
 * scipy.optimize.linear_sum_assignment solves it (Crouse, "On implementing 2D rectangular assignment
 * algorithms", 2016, a Jonker–Volgenant method): rows join the matching one at a time, each by the
 * cheapest path in reduced costs (Dijkstra's search) from it to a free column, and the row and
 * column potentials move so that the reduced costs of the matching stay zero and the others stay
 * non-negative. O(n²·m) for n rows ≤ m columns, in double precision; a matrix with more rows than
 * columns is solved transposed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/detect.h"

/* The problem with rows ≤ columns (the caller's matrix, transposed when it has more rows) and the
 * solver's state. */
typedef struct {
    int n, m;
    double *cost;                       /* n × m, row-major */
    double *u, *v;                      /* the row and column potentials */
    double *dist;                       /* each column's cheapest path cost in the current search */
    int *path;                          /* each column's row before it on that path */
    int *col4row, *row4col;             /* the matching so far, -1 where unmatched */
    int *todo;                          /* the columns the current search has not reached */
    unsigned char *row_seen, *col_seen; /* the rows and columns the current search has reached */
} lsap;

static void lsap_free(lsap *s)
{
    free(s->cost);
    free(s->u);
    free(s->v);
    free(s->dist);
    free(s->path);
    free(s->col4row);
    free(s->row4col);
    free(s->todo);
    free(s->row_seen);
    free(s->col_seen);
}

/* Allocates the state for n ≤ m with nothing matched; 0 when out of memory (the caller frees). */
static int lsap_alloc(lsap *s, int n, int m)
{
    size_t cells, bytes;
    s->n = n;
    s->m = m;
    if (!gsq_size_mul((size_t)n, (size_t)m, &cells) || !gsq_size_mul(cells, sizeof *s->cost, &bytes)) return 0;
    s->cost = malloc(bytes);
    s->u = calloc((size_t)n, sizeof *s->u);
    s->v = calloc((size_t)m, sizeof *s->v);
    s->dist = calloc((size_t)m, sizeof *s->dist);
    s->path = calloc((size_t)m, sizeof *s->path);
    s->col4row = calloc((size_t)n, sizeof *s->col4row);
    s->row4col = calloc((size_t)m, sizeof *s->row4col);
    s->todo = calloc((size_t)m, sizeof *s->todo);
    s->row_seen = calloc((size_t)n, 1);
    s->col_seen = calloc((size_t)m, 1);
    if (!s->cost || !s->u || !s->v || !s->dist || !s->path || !s->col4row || !s->row4col || !s->todo ||
        !s->row_seen || !s->col_seen)
        return 0;
    for (int i = 0; i < n; i++) s->col4row[i] = -1;
    for (int j = 0; j < m; j++) s->row4col[j] = -1;
    return 1;
}

/* Dijkstra's search over reduced costs cost - u - v from the unmatched row `start` through matched
 * columns and their rows to an unmatched column, which it returns; *reach gets the path's cost. Among
 * equally cheap columns it takes an unmatched one (ending the search early: scipy's rule, which
 * matters for small integer costs with many ties), else the first in todo's order. Every column the
 * search takes before the last is matched, to a row matched before `start`, so at most start < m of
 * them: todo is never empty, and with finite costs its cheapest column is always found. */
static int shortest_path(lsap *s, int start, double *reach)
{
    int n = s->n, m = s->m, left = m, i = start, sink = -1;
    double reached = 0.0; /* the cost of the path to row i */
    for (int k = 0; k < m; k++) s->todo[k] = m - 1 - k;
    for (int j = 0; j < m; j++) s->dist[j] = INFINITY;
    memset(s->row_seen, 0, (size_t)n);
    memset(s->col_seen, 0, (size_t)m);
    while (sink < 0) {
        const double *c = s->cost + (size_t)i * m;
        double low = INFINITY;
        int best = 0;
        s->row_seen[i] = 1;
        for (int k = 0; k < left; k++) {
            int j = s->todo[k];
            double r = reached + c[j] - s->u[i] - s->v[j]; /* scipy's order of operations */
            if (r < s->dist[j]) {
                s->path[j] = i;
                s->dist[j] = r;
            }
            if (s->dist[j] < low || (s->dist[j] == low && s->row4col[j] < 0)) {
                low = s->dist[j];
                best = k;
            }
        }
        int j = s->todo[best];
        reached = low;
        s->col_seen[j] = 1;
        s->todo[best] = s->todo[--left];
        if (s->row4col[j] < 0)
            sink = j;
        else
            i = s->row4col[j];
    }
    *reach = reached;
    return sink;
}

/* Matches every row: each joins by its shortest path, the potentials of the rows and columns the
 * search reached move by how much cheaper than the path they were reached, and the matching flips
 * along the path. */
static void lsap_solve(lsap *s)
{
    for (int row = 0; row < s->n; row++) {
        double reach;
        int j = shortest_path(s, row, &reach);
        s->u[row] += reach;
        for (int i = 0; i < s->n; i++)
            if (s->row_seen[i] && i != row) s->u[i] += reach - s->dist[s->col4row[i]];
        for (int k = 0; k < s->m; k++)
            if (s->col_seen[k]) s->v[k] -= reach - s->dist[k];
        int i;
        do {
            i = s->path[j];
            s->row4col[j] = i;
            int next = s->col4row[i];
            s->col4row[i] = j;
            j = next;
        } while (i != row);
    }
}

/* Copies the costs into s as doubles, transposed when flip; GSQ_ERR_ARG naming the first
 * non-finite one. */
static gsq_status load_costs(lsap *s, const float *cost, int rows, int cols, int flip, gsq_error *err)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float c = cost[(size_t)i * cols + j];
            if (!isfinite(c))
                return gsq_fail(err, GSQ_ERR_ARG,
                                "assignment: the cost at row %d, column %d of %d × %d is %g (must be finite)", i, j,
                                rows, cols, (double)c);
            s->cost[flip ? (size_t)j * rows + i : (size_t)i * cols + j] = c;
        }
    return GSQ_OK;
}

/* col_of_row is written only on success. */
gsq_status gsq_assign(const float *cost, int rows, int cols, int *col_of_row, gsq_error *err)
{
    if (rows < 0 || cols < 0)
        return gsq_fail(err, GSQ_ERR_ARG, "assignment: a %d × %d cost (rows and columns must be ≥ 0)", rows, cols);
    if (rows == 0 || cols == 0) {
        for (int i = 0; i < rows; i++) col_of_row[i] = -1;
        return GSQ_OK;
    }
    int flip = rows > cols;
    lsap s = {0};
    gsq_status st = GSQ_OK;
    if (!lsap_alloc(&s, flip ? cols : rows, flip ? rows : cols))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "assignment: out of memory for a %d × %d cost", rows, cols);
    if (st == GSQ_OK) st = load_costs(&s, cost, rows, cols, flip, err);
    if (st == GSQ_OK) {
        lsap_solve(&s);
        if (flip) {
            for (int i = 0; i < rows; i++) col_of_row[i] = -1;
            for (int j = 0; j < cols; j++) col_of_row[s.col4row[j]] = j;
        } else {
            memcpy(col_of_row, s.col4row, (size_t)rows * sizeof *col_of_row);
        }
    }
    lsap_free(&s);
    return st;
}
