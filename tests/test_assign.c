/* The exact minimum-cost assignment (gsq_assign, src/tasks/assign.c): scipy's documented example
 * and huge finite costs by hand; against brute force over every injective map on random matrices of
 * every shape up to 7 × 7, both ways rectangular, with normal, tied (small integer), signed integer,
 * outer-product and all-equal costs; on 100 × 100, 300 × 20, 20 × 300 and 120 × 90 a valid
 * assignment that no exchange of two columns improves; the same answer on every call; empty
 * matrices; NaN and infinite costs named by row and column; negative sizes and sizes whose bytes
 * overflow.
 * With `--write DIR` it runs no test and writes instead, for scripts/assign_check.py, random cost
 * matrices and the assignments this library makes of them (always the same). */
#include <float.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "gpusq/detect.h"
#include "test_util.h"

#define TOLERANCE 1e-9
#define MAX_SIDE 300 /* the most rows or columns of any matrix here */

/* ---- random costs ---- */

typedef enum { COSTS_NORMAL, COSTS_TIES, COSTS_SIGNED, COSTS_PRODUCT, COSTS_EQUAL, COSTS_KINDS } cost_kind;

static const char *const cost_kind_names[COSTS_KINDS] = {"normal", "ties", "signed", "product", "equal"};

/* Normal(0, 1); integers in [0, 2] (many ties); integers in [-5, 5]; a_i·b_j for integers a_i, b_j
 * in [-3, 3] (a structured optimum that many assignments share); or all 1.5. */
static void random_costs(gsq_rng *rng, cost_kind kind, float *c, int rows, int cols)
{
    if (kind == COSTS_PRODUCT) {
        int b[MAX_SIDE];
        for (int j = 0; j < cols; j++) b[j] = (int)(gsq_rng_u32(rng) % 7) - 3;
        for (int i = 0; i < rows; i++) {
            int a = (int)(gsq_rng_u32(rng) % 7) - 3;
            for (int j = 0; j < cols; j++) c[(size_t)i * cols + j] = (float)(a * b[j]);
        }
        return;
    }
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        c[i] = kind == COSTS_NORMAL ? gsq_rng_normal(rng)
             : kind == COSTS_TIES   ? (float)(gsq_rng_u32(rng) % 3)
             : kind == COSTS_SIGNED ? (float)((int)(gsq_rng_u32(rng) % 11) - 5)
                                    : 1.5f;
}

/* ---- what an assignment must be ---- */

static double cost_at(const float *c, int cols, int i, int j) { return j < 0 ? 0.0 : c[(size_t)i * cols + j]; }

static double total_cost(const float *c, int rows, int cols, const int *col_of_row)
{
    double total = 0.0;
    for (int i = 0; i < rows; i++) total += cost_at(c, cols, i, col_of_row[i]);
    return total;
}

/* Whether every row has a column in [0, cols) or -1, no two rows the same column, and exactly
 * min(rows, cols) rows one. */
static int valid_assignment(int rows, int cols, const int *col_of_row)
{
    unsigned char *taken = calloc((size_t)cols + 1, 1); /* + 1: a pointer for no columns too */
    int paired = 0, ok = taken != NULL;
    for (int i = 0; ok && i < rows; i++) {
        int j = col_of_row[i];
        if (j == -1) continue;
        ok = j >= 0 && j < cols && !taken[j];
        if (ok) taken[j] = 1;
        paired++;
    }
    free(taken);
    return ok && paired == (rows < cols ? rows : cols);
}

static int close_totals(double got, double want) { return fabs(got - want) <= TOLERANCE * fmax(1.0, fabs(want)); }

/* ---- brute force: every injective map of the smaller side into the larger ---- */

typedef struct {
    const float *c;
    int rows, cols, small, large;
    unsigned used; /* the larger side's indices taken so far */
    double best;
} brute;

static double brute_cost(const brute *b, int s, int l)
{
    return b->rows <= b->cols ? cost_at(b->c, b->cols, s, l) : cost_at(b->c, b->cols, l, s);
}

static void brute_search(brute *b, int s, double sum)
{
    if (s == b->small) {
        b->best = fmin(b->best, sum);
        return;
    }
    for (int l = 0; l < b->large; l++) {
        if (b->used >> l & 1u) continue;
        b->used |= 1u << l;
        brute_search(b, s + 1, sum + brute_cost(b, s, l));
        b->used &= ~(1u << l);
    }
}

static double brute_min(const float *c, int rows, int cols)
{
    brute b = {.c = c, .rows = rows, .cols = cols, .small = rows < cols ? rows : cols,
               .large = rows < cols ? cols : rows, .best = INFINITY};
    brute_search(&b, 0, 0.0);
    return b.best;
}

/* ---- the tests ---- */

/* Runs gsq_assign, checks it succeeds with a valid assignment and returns its total (NAN on failure). */
static double assign_checked(const float *c, int rows, int cols, int *col_of_row, const char *what)
{
    gsq_error err;
    gsq_status st = gsq_assign(c, rows, cols, col_of_row, &err);
    CHECK(st == GSQ_OK, "%s %d × %d: %s", what, rows, cols, err.msg);
    if (st != GSQ_OK) return NAN;
    int ok = valid_assignment(rows, cols, col_of_row);
    CHECK(ok, "%s %d × %d: invalid assignment", what, rows, cols);
    return ok ? total_cost(c, rows, cols, col_of_row) : NAN;
}

/* scipy.optimize.linear_sum_assignment's documented example, and costs at float's limits. */
static void test_by_hand(void)
{
    const float doc[9] = {4, 1, 3, 2, 0, 5, 3, 2, 2};
    int col[3];
    double total = assign_checked(doc, 3, 3, col, "scipy's example");
    CHECK(total == 5.0 && col[0] == 1 && col[1] == 0 && col[2] == 2, "total %g, columns %d %d %d", total, col[0],
          col[1], col[2]);
    const float huge[4] = {FLT_MAX, -FLT_MAX, -FLT_MAX, FLT_MAX};
    total = assign_checked(huge, 2, 2, col, "±FLT_MAX");
    CHECK(col[0] == 1 && col[1] == 0, "columns %d %d, total %g", col[0], col[1], total);
}

/* Every shape up to 7 × 7, every kind of costs, several matrices each: the least total. */
static void test_brute_force(void)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, 7, 0);
    float c[49];
    int col[7];
    for (int rows = 0; rows <= 7; rows++)
        for (int cols = 0; cols <= 7; cols++)
            for (int kind = 0; kind < COSTS_KINDS; kind++)
                for (int rep = 0; rep < 6; rep++) {
                    random_costs(&rng, (cost_kind)kind, c, rows, cols);
                    double got = assign_checked(c, rows, cols, col, cost_kind_names[kind]);
                    double want = brute_min(c, rows, cols);
                    CHECK(close_totals(got, want), "%s %d × %d #%d: total %.17g, brute force %.17g",
                          cost_kind_names[kind], rows, cols, rep, got, want);
                }
}

/* The most one exchange lowers the total: two rows trading columns (a row without one taking
 * another's), or a row moving to a column no row has. Never positive for an optimal assignment. */
static double best_exchange(const float *c, int rows, int cols, const int *col_of_row)
{
    double gain = 0.0;
    for (int i = 0; i < rows; i++)
        for (int k = i + 1; k < rows; k++) {
            int a = col_of_row[i], b = col_of_row[k];
            if (a < 0 && b < 0) continue;
            gain = fmax(gain, cost_at(c, cols, i, a) + cost_at(c, cols, k, b) - cost_at(c, cols, i, b) -
                                  cost_at(c, cols, k, a));
        }
    unsigned char *taken = calloc((size_t)cols, 1);
    CHECK(taken != NULL, "out of memory");
    if (!taken) return INFINITY;
    for (int i = 0; i < rows; i++)
        if (col_of_row[i] >= 0) taken[col_of_row[i]] = 1;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            if (!taken[j] && col_of_row[i] >= 0)
                gain = fmax(gain, cost_at(c, cols, i, col_of_row[i]) - cost_at(c, cols, i, j));
    free(taken);
    return gain;
}

static void test_large(int rows, int cols, cost_kind kind)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, (uint64_t)rows * 1000 + (uint64_t)cols, 1);
    float *c = malloc((size_t)rows * cols * sizeof *c);
    int *col = malloc((size_t)rows * sizeof *col);
    CHECK(c && col, "out of memory");
    if (c && col) {
        random_costs(&rng, kind, c, rows, cols);
        double total = assign_checked(c, rows, cols, col, cost_kind_names[kind]);
        double gain = best_exchange(c, rows, cols, col);
        CHECK(gain <= TOLERANCE * fmax(1.0, fabs(total)), "%s %d × %d: an exchange lowers the total %.17g by %g",
              cost_kind_names[kind], rows, cols, total, gain);
    }
    free(c);
    free(col);
}

/* The same columns on every call, whatever col_of_row held before, ties included. */
static void test_deterministic(void)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, 11, 0);
    float c[30 * 40];
    int first[40], again[40];
    const int shapes[3][2] = {{30, 40}, {40, 30}, {30, 30}};
    for (int kind = 0; kind < COSTS_KINDS; kind++)
        for (int s = 0; s < 3; s++) {
            int rows = shapes[s][0], cols = shapes[s][1];
            random_costs(&rng, (cost_kind)kind, c, rows, cols);
            memset(first, 0x55, sizeof first);
            memset(again, 0xaa, sizeof again);
            assign_checked(c, rows, cols, first, cost_kind_names[kind]);
            assign_checked(c, rows, cols, again, cost_kind_names[kind]);
            CHECK(memcmp(first, again, (size_t)rows * sizeof *first) == 0,
                  "%s %d × %d: another assignment the second time", cost_kind_names[kind], rows, cols);
        }
}

static void test_empty(void)
{
    int col[3] = {7, 7, 7};
    gsq_error err;
    CHECK(gsq_assign(NULL, 0, 0, NULL, &err) == GSQ_OK, "0 × 0: %s", err.msg);
    CHECK(gsq_assign(NULL, 0, 4, NULL, &err) == GSQ_OK, "0 × 4: %s", err.msg);
    CHECK(gsq_assign(NULL, 3, 0, col, &err) == GSQ_OK, "3 × 0: %s", err.msg);
    CHECK(col[0] == -1 && col[1] == -1 && col[2] == -1, "3 × 0: columns %d %d %d", col[0], col[1], col[2]);
}

/* A NaN or infinite cost is an argument error naming its row and column, in either orientation;
 * so are negative sizes; a size whose bytes overflow is out of memory, before anything is read. */
static void test_errors(void)
{
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    float c[24] = {0};
    int col[6];
    char want[64];
    gsq_error err;
    for (int b = 0; b < 3; b++)
        for (int flip = 0; flip < 2; flip++) {
            int rows = flip ? 6 : 4, cols = flip ? 4 : 6, i = flip ? 5 : 2, j = flip ? 2 : 5;
            memset(c, 0, sizeof c);
            c[i * cols + j] = bad[b];
            snprintf(want, sizeof want, "row %d, column %d", i, j);
            CHECK(gsq_assign(c, rows, cols, col, &err) == GSQ_ERR_ARG && err.code == GSQ_ERR_ARG, "%g at %s",
                  (double)bad[b], want);
            CHECK(strstr(err.msg, want) != NULL, "message \"%s\" does not name %s", err.msg, want);
        }
    CHECK(gsq_assign(c, -1, 3, col, &err) == GSQ_ERR_ARG, "-1 rows");
    CHECK(gsq_assign(c, 3, -1, col, &err) == GSQ_ERR_ARG, "-1 columns");
    CHECK(gsq_assign(c, INT_MAX, INT_MAX, col, &err) == GSQ_ERR_NOMEM, "INT_MAX × INT_MAX: %s", err.msg);
}

/* ---- --write: cases for scipy ---- */

typedef struct {
    int rows, cols;
    cost_kind kind;
} assign_case;

static const assign_case write_cases_list[] = {
    {1, 1, COSTS_NORMAL},    {5, 5, COSTS_NORMAL},    {7, 3, COSTS_SIGNED},    {3, 7, COSTS_TIES},
    {4, 0, COSTS_NORMAL},    {20, 20, COSTS_TIES},    {20, 20, COSTS_EQUAL},   {1, 80, COSTS_NORMAL},
    {80, 1, COSTS_SIGNED},   {33, 47, COSTS_SIGNED},  {47, 33, COSTS_TIES},    {60, 60, COSTS_NORMAL},
    {60, 80, COSTS_NORMAL},  {80, 60, COSTS_NORMAL},  {60, 80, COSTS_TIES},    {80, 60, COSTS_SIGNED},
    {30, 30, COSTS_PRODUCT}, {45, 70, COSTS_PRODUCT}, {70, 45, COSTS_PRODUCT},
};

/* Raw little-endian float32, whatever this machine's byte order. */
static int write_le_floats(FILE *fp, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        unsigned char le[4] = {bits & 0xff, bits >> 8 & 0xff, bits >> 16 & 0xff, bits >> 24};
        if (fwrite(le, 1, sizeof le, fp) != sizeof le) return 0;
    }
    return 1;
}

static int write_case(const char *dir, int n, const assign_case *ac)
{
    size_t cells = (size_t)ac->rows * ac->cols;
    /* one more than needed, so that an empty matrix gets a pointer too */
    float *c = calloc(cells + 1, sizeof *c);
    int *col = calloc((size_t)ac->rows + 1, sizeof *col);
    gsq_error err;
    int bad = !c || !col;
    if (bad) fprintf(stderr, "case %d: out of memory\n", n);
    if (!bad) {
        gsq_rng rng;
        gsq_rng_seed(&rng, 1000 + (uint64_t)n, 0);
        random_costs(&rng, ac->kind, c, ac->rows, ac->cols);
        bad = gsq_assign(c, ac->rows, ac->cols, col, &err) != GSQ_OK;
        if (bad) fprintf(stderr, "case %d: %s\n", n, err.msg);
    }
    if (!bad) {
        char path[4096];
        snprintf(path, sizeof path, "%s/case%d.cost", dir, n);
        FILE *fp = fopen(path, "wb");
        bad |= !fp || !write_le_floats(fp, c, cells);
        bad |= fp && fclose(fp) != 0;
        snprintf(path, sizeof path, "%s/case%d.txt", dir, n);
        fp = fopen(path, "w");
        if (fp) {
            fprintf(fp, "rows %d\ncols %d\nkind %s\ntotal %.17g\nassign", ac->rows, ac->cols,
                    cost_kind_names[ac->kind], total_cost(c, ac->rows, ac->cols, col));
            for (int i = 0; i < ac->rows; i++) fprintf(fp, " %d", col[i]);
            fprintf(fp, "\n");
        }
        bad |= !fp || fclose(fp) != 0;
        if (bad) fprintf(stderr, "case %d: cannot write under %s\n", n, dir);
    }
    free(c);
    free(col);
    return bad;
}

static int write_cases(const char *dir)
{
    int cases = (int)(sizeof write_cases_list / sizeof write_cases_list[0]), bad = 0;
    for (int n = 0; n < cases; n++) bad |= write_case(dir, n, &write_cases_list[n]);
    if (!bad) printf("wrote %d cases under %s\n", cases, dir);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write") == 0) return write_cases(argv[2]);
    test_by_hand();
    test_brute_force();
    test_large(100, 100, COSTS_NORMAL);
    test_large(300, 20, COSTS_TIES);
    test_large(20, 300, COSTS_SIGNED);
    test_large(120, 90, COSTS_PRODUCT);
    test_deterministic();
    test_empty();
    test_errors();
    return test_finish("test_assign");
}
