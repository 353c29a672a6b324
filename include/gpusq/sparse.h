/* N:M structured sparsity of a ViT's GEMM weights: the 2:4 and paired 4:8 patterns, magnitude
 * masks of one weight matrix, the model-level plan (which layers are pruned, their mask in the
 * parameter block's layout), and the channel permutation that raises the magnitude a mask keeps
 * without changing the dense model's function. docs/SPARSITY.md explains the choices.
 *
 * Every weight is seen as a row-major GEMM matrix (rows = outputs, cols = inputs); groups run
 * along the reduction dimension: `group` consecutive columns of one row. */
#ifndef GPUSQ_SPARSE_H
#define GPUSQ_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/status.h"
#include "gpusq/vit.h"

typedef enum {
    GSQ_SPARSE_2_4 = 0, /* at most 2 nonzeros in every 4 (FP16/INT8 sparse tensor cores) */
    GSQ_SPARSE_4_8 = 1, /* paired 4:8: nonzeros inside at most 2 of the 4 aligned pairs of every 8
                         * (INT4 sparse tensor cores) */
} gsq_sparse_pattern;

/* What a pattern's groups and their compressed form look like (docs/FORMAT.md), for every writer
 * and reader of the layout: a group of `group` columns keeps 2 of its positions, each position
 * `unit` adjacent columns (2:4: 4 columns, single values; paired 4:8: 8 columns, aligned pairs),
 * so `kept` = group / 2 codes; the two 2-bit position indices form a nibble of metadata, four
 * groups to a 16-bit word. */
typedef struct {
    const char *name; /* "2:4", "4:8" */
    int group;        /* columns per group */
    int unit;         /* columns per kept position: 1, or 2 (a pair) */
    int kept;         /* codes kept per group */
} gsq_sparse_format;
#define GSQ_SPARSE_GROUPS_PER_WORD 4 /* metadata nibbles in one uint16_t */
const gsq_sparse_format *gsq_sparse_format_of(gsq_sparse_pattern p);
/* The uint16_t metadata words of a row of cols columns. */
static inline int gsq_sparse_meta_words(gsq_sparse_pattern p, int cols)
{
    return (cols / gsq_sparse_format_of(p)->group + GSQ_SPARSE_GROUPS_PER_WORD - 1) / GSQ_SPARSE_GROUPS_PER_WORD;
}

/* "2:4" or "4:8". */
gsq_status gsq_sparse_pattern_parse(const char *s, gsq_sparse_pattern *out, gsq_error *err);
/* "2:4" / "4:8" (the format's name). */
const char *gsq_sparse_pattern_name(gsq_sparse_pattern p);
/* Columns per group: 4 or 8 (the format's group). */
int gsq_sparse_group(gsq_sparse_pattern p);

/* Magnitude mask of w (rows, cols): 2:4 keeps the 2 largest |w| of each group of 4; 4:8 keeps the
 * 2 aligned pairs (columns 2j, 2j+1 of the group) with the largest |w0| + |w1| of each group of 8.
 * Ties: the lower index wins. mask (rows, cols) gets 1 = keep, 0 = pruned. cols must be a multiple
 * of the group (the caller checks). */
void gsq_sparse_mask_magnitude(const float *w, int rows, int cols, gsq_sparse_pattern p, uint8_t *mask);
/* 1 when w (rows, cols) obeys the pattern: at most 2 nonzeros in every group (2:4), or all nonzeros
 * of every group inside at most 2 aligned pairs (4:8); else 0. cols must be a multiple of the group. */
int gsq_sparse_check(const float *w, int rows, int cols, gsq_sparse_pattern p);
/* The fraction of Σ|w| that the magnitude mask of w (rows, cols) keeps, computed in double without
 * forming the mask; 1 when w is all zeros. cols must be a multiple of the group. */
double gsq_sparse_kept_fraction(const float *w, int rows, int cols, gsq_sparse_pattern p);

/* One linear of the model (gpusq/graph.h), a candidate for pruning. */
typedef struct {
    char name[GSQ_NAME_MAX];  /* timm name of the weight, e.g. blocks.3.mlp.fc2.weight */
    size_t offset;            /* into m->params */
    int rows, cols;           /* GEMM view: outputs × inputs */
    int pruned;               /* 0: left dense (see skip_reason) */
    const char *skip_reason;  /* static string, NULL when pruned: "input size is not a multiple
                               * of 4" (or 8; cols holds the size), "classifier head
                               * (--prune-head to include)", and from weights "weights do not
                               * obey 2:4" (or 4:8) */
    double kept_magnitude;    /* fraction of Σ|w| the mask keeps (1 for dense layers) */
} gsq_sparse_layer;

typedef struct {
    gsq_sparse_pattern pattern;
    int num_layers;
    gsq_sparse_layer *layers; /* the model's linears, in its graph's order (index = linear's) */
    size_t num_params;        /* m->num_params: the mask's length */
    uint8_t *mask;            /* (num_params) in the parameter block's layout: 0 only at pruned
                               * positions, 1 elsewhere (every non-prunable parameter is 1) */
} gsq_sparse_plan;

/* The plan of a dense model, by magnitude. The candidates are the linears of m->graph: for a ViT
 * the patch embedding seen as (embed_dim × in_chans·patch·patch), every block's attn.qkv,
 * attn.proj, mlp.fc1 and mlp.fc2, then the classifier head(s), which (not being compressed) stay
 * dense unless include_head. A candidate whose input size is not a multiple of the group stays
 * dense. On failure *plan is empty (safe to free). */
gsq_status gsq_sparse_plan_magnitude(gsq_sparse_plan *plan, const gsq_model *m, gsq_sparse_pattern p,
                                     int include_head, gsq_error *err);
/* The plan of an already pruned model (resuming, or a sparse file): the same candidates; one is
 * pruned when its weights obey the pattern (which leaves every group with fewer nonzeros than its
 * size), and its mask is then (w != 0). kept_magnitude is 1 for every layer. */
gsq_status gsq_sparse_plan_from_weights(gsq_sparse_plan *plan, const gsq_model *m, gsq_sparse_pattern p,
                                        int include_head, gsq_error *err);
/* block[i] = +0.0f wherever the mask is 0. block has the parameter block's layout: the parameters,
 * or their gradients or optimizer moments. */
void gsq_sparse_apply(const gsq_sparse_plan *plan, float *block);
/* Fraction of the candidate layers' weights (pruned or dense) that the mask prunes. */
double gsq_sparse_plan_sparsity(const gsq_sparse_plan *plan);
/* 1 when the plan prunes the linear with this index in the model's graph, else 0. */
int gsq_sparse_plan_prunes(const gsq_sparse_plan *plan, int linear);
void gsq_sparse_plan_free(gsq_sparse_plan *plan);

/* Channel permutation (after Pool & Yu, "Channel Permutations for N:M Sparsity", NeurIPS 2021).
 * Reordering a GEMM's input channels changes which weights share a group, so a good order lets the
 * mask keep more magnitude. Only reorderings that leave the dense function unchanged are made,
 * found in the model's graph (a compressed linear whose input comes channel by channel from the
 * rows of one other linear, through an elementwise GELU or through attention); for a ViT:
 *  - MLP hidden channels: fc1's rows and bias, and identically fc2's columns (GELU is elementwise);
 *    this regroups fc2.
 *  - V channels within each head: rows 2D + h·hd ... of attn.qkv's weight and bias, and identically
 *    the columns h·hd ... of attn.proj (attention mixes tokens, not channels, and each head's
 *    output is its own slice of proj's input); this regroups proj, when hd is a multiple of the
 *    group (no group straddles two heads).
 * The inputs of qkv, fc1 and the head are the residual stream (through LayerNorm), shared by every
 * block: only one permutation of the whole stream, applied to every tensor that reads or writes it,
 * would keep the function, and it is not searched. The patch embedding's inputs are pixels in the
 * patchify order, which the model does not own. Both stay in place.
 *
 * The search per permutable layer: the better of identity and a sorted deal (channels by Σ|w|
 * spread so each group gets its share of large ones), then channel swaps between two groups,
 * applied when they raise the kept magnitude (Σ over rows of each group's kept |w|), a swap judged
 * on its two groups only. `effort` is the number of swap passes: a pass pairs every group g with
 * group g + d (one offset d per pass) and applies the best improving swap of each pair; ngroups/2
 * passes meet every pair of groups once, and the search stops earlier at a local optimum (that
 * many passes in a row without a gain). A pass reads about 2·G²·rows·cols values (docs/SPARSITY.md
 * has timings per effort). Deterministic, and never
 * worse than identity. Run it on a dense model before choosing the mask; gradients and optimizer
 * moments do not follow the permutation. */
#define GSQ_SPARSE_PERMUTE_EFFORT 32

/* The compressed form of one row of integer codes (cols a multiple of the group; docs/FORMAT.md):
 * per group, the two kept positions (2:4: values; paired 4:8: aligned pairs) in
 * increasing order — the non-zero ones, padded with the lowest unused — their codes appended to
 * kept (cols / 2 values), and a nibble (first index in bits 0–1, second in bits 2–3) ORed into
 * meta, four groups per 16-bit word (meta must start zeroed). A group with more non-zero
 * positions than it keeps loses the later ones: check the pattern first. */
void gsq_sparse_compress_row(const int8_t *codes, int cols, gsq_sparse_pattern p, int8_t *kept, uint16_t *meta);

typedef struct {
    char name[GSQ_NAME_MAX];  /* the regrouped weight: blocks.L.mlp.fc2.weight or blocks.L.attn.proj.weight */
    double kept_before;       /* fraction of Σ|w| the magnitude mask keeps, before and after */
    double kept_after;
} gsq_permute_report;

/* Permutes m in place to maximise the magnitude the pattern's mask keeps in every permutable
 * linear (for a ViT every fc2 and attn.proj; those whose input size or head dim is not a multiple
 * of the group are left alone). reports (NULL, or room for max_reports entries: one per
 * permutable linear, 2·depth at most for a ViT) get
 * one entry per permutable layer in model order; *num_reports their count. Multithreaded over
 * layers with OpenMP; the result does not depend on the thread count. */
gsq_status gsq_sparse_permute(gsq_model *m, gsq_sparse_pattern p, int effort, gsq_permute_report *reports,
                              int max_reports, int *num_reports, gsq_error *err);

#endif
