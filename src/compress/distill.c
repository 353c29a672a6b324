/* Mixed-strategy knowledge distillation: the loss of a student against a teacher's forward pass
 * on the same batch (CE on labels, temperature-softened KL on logits, MSE on the later blocks'
 * tokens of the samples both classify alike; a detector's DETR loss, KL and box distance on the
 * teacher's matched queries, and every image's tokens) and its gradients (include/gpusq/distill.h). */
#include "gpusq/distill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/graph.h"
#include "gpusq/nn.h"
#include "models/model_state.h"

struct gsq_distiller {
    gsq_distill_config cfg;
    int depth, K, two_heads;
    gsq_output_shape shape; /* the student's (and the teacher's) output */
    int segment;          /* 1: a segmenter, whose samples are its output positions */
    int detect;           /* 1: a detector, whose every image counts as agreeing */
    int P;                /* positions per image: 1, or a segmenter's grid² */
    size_t out_floats;    /* output floats per image: P·K, or a detector's layers·queries·(K + 5) */
    int *matches;         /* (cap, layers, queries) a detector's queries the teacher matched to targets */
    gsq_detection *dets;  /* (queries) one image's teacher detections */
    gsq_targets *pseudo;  /* (cap) a detector's targets from the teacher's detections, without labels */
    size_t *feat;         /* (depth) one sample's values of each block output */
    size_t *at;           /* (depth) where each distilled block's gradient starts in dfeat, per sample */
    float *weights;       /* w_l (depth) */
    int cap;              /* batch the buffers hold */
    int B;                /* batch of the last loss (0: none) */
    float *probs, *probs_dist, *ps, *pt, *dlogits, *dlogits_dist; /* (cap, out_floats) each; a segmenter's
                                                                   * and a detector's probs and dlogits_dist
                                                                   * hold its CE's and KL's gradients, and
                                                                   * it has no probs_dist, ps, pt */
    int *targets, *teacher_arg, *agrees; /* (cap, P) labels used, teacher's class, 1 where the two agree */
    int16_t *teacher_maps; /* (cap, side, side) a segmenter's pseudo-labels without labels */
    float *dfeat;         /* cap × Σ feat over the distilled blocks */
    const float **dptr;   /* depth pointers into dfeat, NULL for blocks not distilled */
};

void gsq_distill_defaults(gsq_distill_config *cfg, int depth)
{
    *cfg = (gsq_distill_config){
        .alpha = 1.0f, .beta = 10.0f, .gamma = 5.0f, .temperature = 1.0f, .label_smoothing = 0.0f,
        .first_block = depth - depth / 3, .block_weights = NULL,
    };
}

void gsq_distiller_free(gsq_distiller *d)
{
    if (!d) return;
    free(d->weights);
    free(d->feat);
    free(d->at);
    free(d->probs);
    free(d->probs_dist);
    free(d->ps);
    free(d->pt);
    free(d->dlogits);
    free(d->dlogits_dist);
    free(d->targets);
    free(d->teacher_arg);
    free(d->agrees);
    free(d->teacher_maps);
    free(d->matches);
    free(d->pseudo);
    free(d->dets);
    free(d->dfeat);
    free(d->dptr);
    free(d);
}

gsq_status gsq_distiller_create(gsq_distiller **out, const gsq_model *student, const gsq_model *teacher,
                                const gsq_distill_config *cfg, gsq_error *err)
{
    *out = NULL;
    const gsq_graph *gs = student->graph, *gt = teacher->graph;
    int depth = gs->num_blocks;
    if (!(cfg->alpha >= 0 && cfg->beta >= 0 && cfg->gamma >= 0 && cfg->temperature > 0 &&
          cfg->label_smoothing >= 0 && cfg->label_smoothing < 1))
        return gsq_fail(err, GSQ_ERR_ARG,
                        "distillation: weights must be >= 0, T > 0 and smoothing in [0, 1) "
                        "(alpha %g, beta %g, gamma %g, T %g, smoothing %g)",
                        (double)cfg->alpha, (double)cfg->beta, (double)cfg->gamma, (double)cfg->temperature,
                        (double)cfg->label_smoothing);
    if (cfg->first_block < 0 || cfg->first_block > depth)
        return gsq_fail(err, GSQ_ERR_ARG, "distillation: first feature block %d is outside 0..%d", cfg->first_block,
                        depth);
    gsq_output_shape ss = gsq_model_output_shape(student), ts = gsq_model_output_shape(teacher);
    if (ss.task != ts.task || ss.classes != ts.classes || ss.grid != ts.grid || ss.queries != ts.queries ||
        ss.layers != ts.layers)
        return gsq_fail(err, GSQ_ERR_SHAPE, "distillation: the student is a %s model of %d classes (output grid %d, "
                        "%d queries, %d decoder layers), the teacher a %s model of %d (grid %d, %d queries, %d layers)",
                        gsq_task_name(ss.task), ss.classes, ss.grid, ss.queries, ss.layers, gsq_task_name(ts.task),
                        ts.classes, ts.grid, ts.queries, ts.layers);
    if (student->img_size != teacher->img_size || student->in_chans != teacher->in_chans)
        return gsq_fail(err, GSQ_ERR_SHAPE, "distillation: the student takes %d×%d×%d images, the teacher %d×%d×%d",
                        student->in_chans, student->img_size, student->img_size, teacher->in_chans, teacher->img_size,
                        teacher->img_size);
    int features = depth > cfg->first_block && cfg->gamma > 0;
    for (int l = 0; features && l < depth; l++) {
        const gsq_value *vs = &gs->values[gs->blocks[l]], *vt = l < gt->num_blocks ? &gt->values[gt->blocks[l]] : NULL;
        if (!vt || vs->rows != vt->rows || vs->cols != vt->cols)
            return gsq_fail(err, GSQ_ERR_SHAPE,
                            "distillation: block features need the same blocks, widths and tokens (student block %d: "
                            "%d tokens × %d, teacher: %s%d tokens × %d of %d blocks); set the feature weight to 0 to "
                            "distil logits only", l, vs->rows, vs->cols, vt ? "" : "none, ", vt ? vt->rows : 0,
                            vt ? vt->cols : 0, gt->num_blocks);
    }
    gsq_distiller *d = calloc(1, sizeof *d);
    size_t n = (size_t)(depth > 0 ? depth : 1);
    if (!d || !(d->weights = malloc(n * sizeof(float))) || !(d->dptr = calloc(n, sizeof *d->dptr)) ||
        !(d->feat = malloc(n * sizeof *d->feat)) || !(d->at = malloc(n * sizeof *d->at))) {
        gsq_distiller_free(d);
        return gsq_fail(err, GSQ_ERR_NOMEM, "distillation: out of memory");
    }
    d->cfg = *cfg;
    d->cfg.block_weights = NULL; /* copied into d->weights */
    d->depth = depth;
    d->K = student->num_classes;
    d->shape = ss;
    d->segment = ss.task == GSQ_TASK_SEGMENT;
    d->detect = ss.task == GSQ_TASK_DETECT;
    d->P = d->segment ? ss.grid * ss.grid : 1;
    d->out_floats = d->detect ? (size_t)ss.layers * ss.queries * (size_t)(d->K + 5) : (size_t)d->P * d->K;
    d->two_heads = gsq_graph_find_value(gs, "head_dist") >= 0;
    size_t at = 0;
    for (int l = 0; l < depth; l++) {
        float w = cfg->block_weights ? cfg->block_weights[l] : 1.0f;
        if (!(w >= 0.0f && isfinite(w))) {
            gsq_distiller_free(d);
            return gsq_fail(err, GSQ_ERR_ARG, "distillation: block %d's feature weight %g must be finite and >= 0", l,
                            (double)w);
        }
        d->weights[l] = w;
        d->feat[l] = gsq_value_floats(gs, gs->blocks[l]);
        d->at[l] = at;
        if (l >= cfg->first_block) at += d->feat[l];
    }
    *out = d;
    return GSQ_OK;
}

static gsq_status ensure_capacity(gsq_distiller *d, int B, gsq_error *err)
{
    if (B <= d->cap) return GSQ_OK;
    size_t rows = (size_t)B * (size_t)d->P, bk = (size_t)B * d->out_floats, nf = (size_t)(d->depth - d->cfg.first_block);
    float **bufs[] = {&d->probs, &d->dlogits, &d->dlogits_dist, &d->probs_dist, &d->ps, &d->pt};
    /* a segmenter and a detector have one head, and their KL runs per pixel or matched query */
    int ok = 1, used = d->segment || d->detect ? 3 : 6;
    for (int i = 0; i < 6; i++) {
        free(*bufs[i]);
        *bufs[i] = i < used ? malloc(bk * sizeof(float)) : NULL;
        ok &= i >= used || *bufs[i] != NULL;
    }
    free(d->targets);
    free(d->teacher_arg);
    free(d->agrees);
    free(d->teacher_maps);
    free(d->matches);
    free(d->pseudo);
    free(d->dfeat);
    size_t queries = d->detect ? (size_t)B * d->shape.layers * d->shape.queries : 0;
    d->matches = d->detect ? malloc(queries * sizeof *d->matches) : NULL;
    d->pseudo = d->detect ? malloc((size_t)B * sizeof *d->pseudo) : NULL;
    free(d->dets);
    d->dets = d->detect ? malloc((size_t)d->shape.queries * sizeof *d->dets) : NULL;
    ok &= !d->detect || (d->matches && d->pseudo && d->dets);
    d->targets = malloc(rows * sizeof(int));
    d->teacher_arg = malloc(rows * sizeof(int));
    d->agrees = malloc(rows * sizeof(int));
    size_t side = (size_t)d->shape.side;
    d->teacher_maps = d->segment ? malloc((size_t)B * side * side * sizeof(int16_t)) : NULL;
    size_t per_sample = nf ? d->at[d->depth - 1] + d->feat[d->depth - 1] : 0; /* Σ feat over the distilled */
    d->dfeat = nf ? malloc(per_sample * (size_t)B * sizeof(float)) : NULL;
    d->cap = 0;
    if (!ok || !d->targets || !d->teacher_arg || !d->agrees || (nf && !d->dfeat) || (d->segment && !d->teacher_maps))
        return gsq_fail(err, GSQ_ERR_NOMEM, "distillation: out of memory for a batch of %d", B);
    d->cap = B;
    return GSQ_OK;
}

/* The temperature-softened distributions of student and teacher, ps and pt (B, K), and
 * Σ over the batch of KL(pt ‖ ps); log-softmax in double from the logits, once per row. */
static double softened(float *ps, float *pt, const float *zs, const float *zt, int B, int K, float T)
{
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *s = zs + (size_t)b * K, *t = zt + (size_t)b * K;
        double ms = s[0], mt = t[0];
        for (int k = 1; k < K; k++) {
            ms = s[k] > ms ? s[k] : ms;
            mt = t[k] > mt ? t[k] : mt;
        }
        double ss = 0.0, st = 0.0;
        for (int k = 0; k < K; k++) {
            ss += exp((s[k] - ms) / T);
            st += exp((t[k] - mt) / T);
        }
        double lzs = log(ss), lzt = log(st);
        for (int k = 0; k < K; k++) {
            double es = exp((s[k] - ms) / T), et = exp((t[k] - mt) / T);
            double lpt = (t[k] - mt) / T - lzt, lps = (s[k] - ms) / T - lzs;
            ps[(size_t)b * K + k] = (float)(es / ss);
            pt[(size_t)b * K + k] = (float)(et / st);
            total += exp(lpt) * (lpt - lps);
        }
    }
    return total;
}

/* The output terms of a classifier: CE against labels (or the teacher's classes), for a distilled
 * DeiT the mean of both heads' (the second against the teacher's classes). */
static gsq_status classify_ce(gsq_distiller *d, gsq_model *student, const int *labels, float *ce, gsq_error *err)
{
    int B = student->batch, K = d->K;
    const gsq_distill_config *c = &d->cfg;
    for (int b = 0; b < B; b++) {
        int y = labels ? labels[b] : d->teacher_arg[b];
        if (y < 0 || y >= K) return gsq_fail(err, GSQ_ERR_ARG, "distillation: label %d of sample %d is outside [0, %d)", y, b, K);
        d->targets[b] = y;
    }
    const float *zs = gsq_model_output(student, "logits");
    if (d->two_heads)
        *ce = 0.5f * (gsq_cross_entropy_forward(d->probs, gsq_model_output(student, "head"), d->targets, B, K, c->label_smoothing) +
                      gsq_cross_entropy_forward(d->probs_dist, gsq_model_output(student, "head_dist"), d->teacher_arg, B, K,
                                                c->label_smoothing));
    else
        *ce = gsq_cross_entropy_forward(d->probs, zs, d->targets, B, K, c->label_smoothing);
    return GSQ_OK;
}

/* The output term of a segmenter: per-pixel CE against the label maps (or the teacher's
 * predicted maps), its gradient (× alpha) kept in d->probs. */
static gsq_status segment_ce(gsq_distiller *d, gsq_model *student, const gsq_model *teacher, const int16_t *maps,
                             float *ce, gsq_error *err)
{
    int B = student->batch, K = d->K, S = d->shape.side, grid = d->shape.grid;
    if (!maps) {
        gsq_segment_predict(gsq_model_output(teacher, "logits"), B, grid, K, S, d->teacher_maps);
        maps = d->teacher_maps;
    }
    gsq_status st = gsq_segment_check_labels(maps, B, S, K, "distillation", err);
    if (st != GSQ_OK) return st;
    *ce = gsq_segment_loss(gsq_model_output(student, "logits"), B, grid, K, maps, S, d->cfg.label_smoothing, d->probs,
                           d->cfg.alpha, NULL);
    return isnan(*ce) ? gsq_fail(err, GSQ_ERR_NOMEM, "distillation: out of memory") : GSQ_OK;
}

/* Whether row r of sample b of a block output of `rows` rows is distilled: every row of a
 * classifier's agreeing sample; a segmenter's patch rows (after any class tokens) whose place on
 * the output grid is one where teacher and student agree. */
static int row_agrees(const gsq_distiller *d, int b, int r, int rows)
{
    if (!d->segment) return d->agrees[b];
    int side = (int)sqrt((double)rows), prefix = rows - side * side, grid = d->shape.grid;
    if (r < prefix) return 0;
    int y = (r - prefix) / side, x = (r - prefix) % side;
    return d->agrees[(size_t)b * d->P + (size_t)(y * grid / side) * grid + (size_t)(x * grid / side)];
}

/* A detector's targets from the teacher's last layer: its detections scored at least 0.5. */
static void teacher_targets(gsq_distiller *d, const float *zt, int B)
{
    for (int b = 0; b < B; b++) {
        gsq_targets *t = &d->pseudo[b];
        t->count = 0;
        gsq_detect_decode(zt, &d->shape, b, 0, 1, 1, d->dets); /* boxes as fractions of the input */
        for (int q = 0; q < d->shape.queries && t->count < GSQ_DETECT_MAX_TARGETS; q++) {
            const gsq_detection *x = &d->dets[q];
            if (x->score < 0.5f || !(x->box.w > 0) || !(x->box.h > 0)) continue;
            t->classes[t->count] = x->category;
            t->boxes[t->count++] = (gsq_nbox){x->box.x + 0.5f * x->box.w, x->box.y + 0.5f * x->box.h, x->box.w,
                                              x->box.h};
        }
    }
}

/* A detector's output terms: DETR's loss against the targets (the teacher's detections without
 * them), its gradient (× alpha) into d->probs; the KL and box distance on the queries the teacher
 * matched to the same targets, its gradient (× beta) into d->dlogits_dist. */
static gsq_status detect_terms(gsq_distiller *d, const float *zs, const float *zt, int B, const gsq_targets *boxes,
                               float *ce, float *kl, gsq_error *err)
{
    gsq_detect_weights w;
    gsq_detect_weights_defaults(&w);
    if (!boxes) {
        teacher_targets(d, zt, B);
        boxes = d->pseudo;
    }
    double value = 0.0;
    gsq_status st = gsq_detect_loss(zs, &d->shape, B, boxes, &w, d->probs, d->cfg.alpha, ce, NULL, err);
    if (st == GSQ_OK) st = gsq_detect_match(zt, &d->shape, B, boxes, &w, d->matches, err);
    if (st == GSQ_OK)
        st = gsq_detect_distill(zs, zt, &d->shape, B, d->matches, d->cfg.temperature, w.l1, d->dlogits_dist,
                                d->cfg.beta, &value, err);
    *kl = (float)value;
    return st;
}

gsq_status gsq_distill_loss(gsq_distiller *d, gsq_model *student, const gsq_model *teacher, const gsq_truth *truth,
                            gsq_distill_terms *terms, float *mse, gsq_error *err)
{
    const int *labels = truth ? truth->classes : NULL;
    const int16_t *maps = truth ? truth->maps : NULL;
    int B = student->batch, K = d->K;
    d->B = 0;
    if (B <= 0 || teacher->batch != B)
        return gsq_fail(err, GSQ_ERR_ARG, "distillation: student (batch %d) and teacher (batch %d) need a forward "
                        "pass on the same batch", B, teacher->batch);
    if (student->num_classes != K || student->graph->num_blocks != d->depth)
        return gsq_fail(err, GSQ_ERR_ARG, "distillation: the student is not the model the distiller was made for");
    gsq_status st = ensure_capacity(d, B, err);
    if (st != GSQ_OK) return st;
    const gsq_distill_config *c = &d->cfg;
    const float *zs = gsq_model_output(student, "logits"), *zt = gsq_model_output(teacher, "logits");
    int rows = B * d->P, agree = 0;
    for (int i = 0; i < rows; i++) {
        d->teacher_arg[i] = d->detect ? 0 : gsq_argmax(zt + (size_t)i * K, K);
        d->agrees[i] = d->detect || gsq_argmax(zs + (size_t)i * K, K) == d->teacher_arg[i];
        agree += d->agrees[i];
    }
    float ce = 0.0f, T = c->temperature, kl = 0.0f;
    st = d->detect    ? detect_terms(d, zs, zt, B, truth ? truth->boxes : NULL, &ce, &kl, err)
         : d->segment ? segment_ce(d, student, teacher, maps, &ce, err)
                      : classify_ce(d, student, labels, &ce, err);
    if (st != GSQ_OK) return st;
    if (d->segment) { /* per pixel of the upsampled maps, its gradient (× beta) kept in dlogits_dist */
        kl = gsq_segment_kl(zs, zt, B, d->shape.grid, K, d->shape.side, T, d->dlogits_dist, c->beta);
        if (isnan(kl)) return gsq_fail(err, GSQ_ERR_NOMEM, "distillation: out of memory");
    } else if (!d->detect) { /* a detector's KL came with its CE */
        kl = (float)((double)T * T * softened(d->ps, d->pt, zs, zt, rows, K, T) / rows);
    }

    double feature = 0.0;
    for (int l = 0; l < d->depth; l++) {
        if (mse) mse[l] = 0.0f;
        d->dptr[l] = NULL;
        if (l < c->first_block) continue;
        size_t feat = d->feat[l];
        float *g = d->dfeat + d->at[l] * (size_t)B;
        const gsq_value *v = &student->graph->values[student->graph->blocks[l]]; /* the block's output */
        const float *fs = gsq_model_output(student, v->name), *ft = gsq_model_output(teacher, v->name);
        size_t width = (size_t)v->cols, agreeing = 0; /* a segmenter's rows distilled */
        for (int b = 0; d->segment && b < B; b++)
            for (int r = 0; r < v->rows; r++) agreeing += (size_t)row_agrees(d, b, r, v->rows);
        /* the mean over the distilled values: a classifier's agreeing samples have feat each */
        double sum = 0.0, scale = d->segment ? (agreeing ? 1.0 / ((double)agreeing * (double)width) : 0.0)
                                             : (agree ? 1.0 / ((double)agree * (double)feat) : 0.0);
        float gscale = (float)(c->gamma * d->weights[l] * 2.0 * scale);
        for (int b = 0; b < B; b++)
            for (int r = 0; r < v->rows; r++) {
                size_t o = (size_t)b * feat + (size_t)r * width;
                if (!row_agrees(d, b, r, v->rows)) {
                    memset(g + o, 0, width * sizeof(float));
                    continue;
                }
                for (size_t i = 0; i < width; i++) {
                    float diff = fs[o + i] - ft[o + i];
                    sum += (double)diff * diff;
                    g[o + i] = gscale * diff;
                }
            }
        float m = (float)(sum * scale);
        if (mse) mse[l] = m;
        feature += (double)d->weights[l] * m;
        d->dptr[l] = g;
    }
    terms->ce = ce;
    terms->kl = kl;
    terms->feature = (float)feature;
    terms->agree = agree;
    terms->positions = rows;
    terms->total = c->alpha * ce + c->beta * kl + c->gamma * (float)feature;
    d->B = B;
    return GSQ_OK;
}

gsq_status gsq_distill_backward(gsq_distiller *d, gsq_model *student, gsq_error *err)
{
    int B = d->B, K = d->K;
    if (B <= 0 || student->batch != B)
        return gsq_fail(err, GSQ_ERR_ARG, "distillation: backward needs the loss of the student's last forward");
    const gsq_distill_config *c = &d->cfg;
    size_t bk = (size_t)B * d->out_floats;
    if (d->segment || d->detect) { /* one head, the CE's and the KL's gradients computed with the loss */
        for (size_t i = 0; i < bk; i++) d->dlogits[i] = d->probs[i] + d->dlogits_dist[i];
        return gsq_model_backward_from(student, d->dlogits, NULL, d->dptr, err);
    }
    /* ∂(β·T²·KL)/∂z_s = β·T·(p_s − p_t)/B */
    float kl_scale = c->beta * c->temperature / (float)B;
    int two_heads = d->two_heads;
    float half = two_heads ? 0.5f : 1.0f; /* output = (main + dist) / 2 */
    for (size_t i = 0; i < bk; i++) {
        float g = half * kl_scale * (d->ps[i] - d->pt[i]);
        d->dlogits[i] = g;
        if (two_heads) d->dlogits_dist[i] = g;
    }
    gsq_cross_entropy_backward(d->dlogits, d->probs, d->targets, B, K, c->label_smoothing, half * c->alpha);
    if (two_heads)
        gsq_cross_entropy_backward(d->dlogits_dist, d->probs_dist, d->teacher_arg, B, K, c->label_smoothing,
                                   half * c->alpha);
    return gsq_model_backward_from(student, d->dlogits, two_heads ? d->dlogits_dist : NULL, d->dptr, err);
}
