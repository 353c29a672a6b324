/* Training that goes wrong is caught and loses nothing: a loss that turns NaN stops the run with
 * GSQ_ERR_NUMERIC naming the step, before anything is written, and the last good checkpoint stays
 * as it was; a checkpoint is never written from non-finite weights; AdamW takes no step on a
 * non-finite gradient; divergence (a loss over divergence_factor × the mean of the first
 * GSQ_EARLY_STEPS steps) is flagged in the progress reports while training goes on. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/train.h"
#include "test_util.h"
#include "tiny_trainer.h"
#include "toy_dataset.h"
#include "models/model_state.h" /* white-box: the model's fields */

static gsq_train_config train_cfg(long epochs)
{
    gsq_train_config c;
    gsq_train_defaults(&c, 16);
    c.batch_size = 8;
    c.epochs = epochs;
    c.seed = 3;
    c.workers = 1;
    c.transform.hflip = 0.0f;
    return c;
}

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n ? *n : 1);
    if (b && fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

/* The progress callback of the NaN run: copies the checkpoint as it was after `keep_at` steps,
 * and at step `poison_at` turns one weight into NaN (as an overflowing update would). */
typedef struct {
    gsq_trainer *t;
    const char *ckpt;
    long keep_at, poison_at;
    char *kept;
    size_t kept_n;
} poison_ctx;

static void poison(const gsq_train_progress *p, void *user)
{
    poison_ctx *c = user;
    if (p->step == c->keep_at + 1) c->kept = read_all(c->ckpt, &c->kept_n); /* written at keep_at */
    if (p->step == c->poison_at) c->t->model->params[c->t->model->num_params / 2] = NAN;
}

static void test_nan_stops(const char *dir)
{
    gsq_dataset *ds = toy_dataset(64, 0);
    char ckpt[128];
    snprintf(ckpt, sizeof ckpt, "%s/nan.ckpt.safetensors", dir);
    gsq_train_config c = train_cfg(2);
    c.checkpoint_path = ckpt;
    c.checkpoint_every = 2;
    gsq_trainer t = tiny_trainer(&c, ds->size, 5);
    poison_ctx pc = {.t = &t, .ckpt = ckpt, .keep_at = 2, .poison_at = 3};
    c.progress = poison;
    c.user = &pc;
    gsq_error err = {0};
    gsq_train_result r;
    gsq_status st = gsq_trainer_run(&t, ds, &c, &r, &err);
    CHECK(st == GSQ_ERR_NUMERIC && strstr(err.msg, "step 4") && strstr(err.msg, "NaN"), "status %d: %s", (int)st,
          err.msg);
    CHECK(!r.finished && t.state.step == 3, "the run went on to step %ld", t.state.step);
    size_t n = 0;
    char *now = read_all(ckpt, &n);
    CHECK(pc.kept && now && n == pc.kept_n && !memcmp(now, pc.kept, n), "the step-2 checkpoint was replaced");
    free(now);
    free(pc.kept);

    /* the weights are NaN now: a checkpoint of them is refused and the file stays */
    now = read_all(ckpt, &n);
    st = gsq_trainer_save(&t, &c, ckpt, &err);
    CHECK(st == GSQ_ERR_NUMERIC && strstr(err.msg, "not written") && strstr(err.msg, ".weight"), "save: %d %s",
          (int)st, err.msg);
    size_t n2 = 0;
    char *after = read_all(ckpt, &n2);
    CHECK(now && after && n == n2 && !memcmp(now, after, n), "a refused checkpoint changed the file");
    free(now);
    free(after);
    /* nor is a model file of them written (gsq_model_save: what --out gets) */
    char out_path[300];
    snprintf(out_path, sizeof out_path, "%s.model", ckpt);
    st = gsq_model_save(t.model, out_path, &err);
    CHECK(st == GSQ_ERR_NUMERIC && strstr(err.msg, out_path) && strstr(err.msg, "not written") &&
              access(out_path, F_OK) != 0, "model save of NaN weights: %d %s", (int)st, err.msg);
    gsq_trainer_free(&t);
    gsq_dataset_free(ds);
    unlink(ckpt);
}

static void test_adamw_skips(void)
{
    gsq_model *m = NULL;
    gsq_vit_create(&m, &tiny, NULL);
    gsq_model_init(m, 1);
    gsq_optim_config oc;
    gsq_optim_defaults(&oc);
    oc.total_steps = 10;
    gsq_adamw opt;
    gsq_error err = {0};
    gsq_param_block b[GSQ_MAX_BLOCKS];
    int nb = gsq_model_blocks(m, b);
    CHECK(gsq_adamw_init(&opt, b, nb, &oc, &err) == GSQ_OK, "%s", err.msg);
    size_t n = m->num_params;
    float *before = malloc(n * sizeof(float)), *g = calloc(n, sizeof(float));
    b[0].grads = g;
    memcpy(before, m->params, n * sizeof(float));
    for (int k = 0; k < 2; k++) {
        g[n - 1] = k ? INFINITY : NAN;
        double norm = gsq_adamw_step(&opt, b, nb, NULL);
        CHECK(!isfinite(norm), "norm %g", norm);
    }
    CHECK(!memcmp(before, m->params, n * sizeof(float)) && opt.step == 0, "a non-finite gradient moved the weights");
    free(before);
    free(g);
    gsq_adamw_free(&opt);
    gsq_model_free(m);
}

/* The divergence flag of every report, checked against the losses the reports carried. */
typedef struct {
    int n, diverging, wrong;
    double early_sum;
    float max_loss;
    float factor;
} watch_ctx;

static void watch(const gsq_train_progress *p, void *user)
{
    watch_ctx *w = user;
    w->n++;
    if (w->n <= GSQ_EARLY_STEPS) w->early_sum += p->loss;
    float early = w->n >= GSQ_EARLY_STEPS ? (float)(w->early_sum / GSQ_EARLY_STEPS) : 0.0f;
    int want = early > 0 && p->loss > w->factor * early;
    w->wrong += p->diverging != want || fabsf(p->early_loss - early) > 1e-6f * early;
    w->diverging += p->diverging;
    if (p->loss > w->max_loss) w->max_loss = p->loss;
}

static void test_divergence_flag(void)
{
    gsq_dataset *ds = toy_dataset(160, 0);
    /* a learning rate far too high, reached after a warm-up that keeps the early steps sane: the
     * loss climbs past 50× its early mean (about 2.4 here), and training goes on */
    gsq_train_config c = train_cfg(6);
    c.optim.lr = 5.0f;
    c.warmup_epochs = 4.0f;
    c.optim.min_lr = c.optim.lr;
    watch_ctx w = {.factor = c.divergence_factor};
    c.progress = watch;
    c.user = &w;
    gsq_trainer t = tiny_trainer(&c, ds->size, 5);
    gsq_error err = {0};
    gsq_train_result r;
    gsq_status st = gsq_trainer_run(&t, ds, &c, &r, &err);
    printf("lr 5: %d steps, %d flagged as diverging, early loss %g, largest %g, status %s\n", w.n, w.diverging,
           w.early_sum / GSQ_EARLY_STEPS, (double)w.max_loss, gsq_status_name(st));
    CHECK(w.wrong == 0, "%d reports with a wrong flag or early loss", w.wrong);
    CHECK(st == GSQ_OK && r.finished && w.diverging > 0 && r.diverging_steps == w.diverging,
          "status %d, %d diverging: %s", (int)st, w.diverging, err.msg);
    gsq_trainer_free(&t);

    /* a sensible one is never flagged; and factor 0 turns the check off */
    for (int off = 0; off < 2; off++) {
        c = train_cfg(2);
        c.divergence_factor = off ? 0.0f : 50.0f;
        if (off) c.optim.lr = 5.0f, c.warmup_epochs = 0.0f, c.optim.min_lr = 5.0f;
        w = (watch_ctx){.factor = off ? INFINITY : c.divergence_factor};
        c.progress = watch;
        c.user = &w;
        t = tiny_trainer(&c, ds->size, 5);
        st = gsq_trainer_run(&t, ds, &c, &r, &err);
        CHECK((st == GSQ_OK || (off && st == GSQ_ERR_NUMERIC)) && w.diverging == 0 && w.wrong == 0,
              "factor %g: %d flagged, %d wrong", (double)c.divergence_factor, w.diverging, w.wrong);
        gsq_trainer_free(&t);
    }
    gsq_dataset_free(ds);
}

int main(void)
{
    char dir[64] = "/tmp/gsq_test_guard_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_nan_stops(dir);
    test_adamw_skips();
    test_divergence_flag();
    rmdir(dir);
    return test_finish("test_train_guard");
}
