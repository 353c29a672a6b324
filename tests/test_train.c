/* Training: AdamW against its formula (decay mask included), the learning-rate schedule, the
 * loader (each sample once per epoch, same batches for any worker count and start position,
 * failed samples skipped and counted, a last partial batch, shards for data-parallel ranks),
 * gradient accumulation equal to one large batch, bitwise resume from a checkpoint, a stop
 * request, and learning a toy task; the loader's throughput and waiting-time statistics. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpusq/loader.h"
#include "gpusq/train.h"
#include "test_util.h"
#include "tiny_trainer.h"
#include "toy_dataset.h"
#include "models/model_state.h" /* white-box: the model's fields */

static char tmpdir[64];

static void test_adamw(void)
{
    gsq_model *m = NULL;
    gsq_vit_create(&m, &tiny, NULL);
    gsq_model_init(m, 1);
    gsq_optim_config oc;
    gsq_optim_defaults(&oc);
    oc.warmup_steps = 0;
    oc.total_steps = 100;
    oc.min_lr = oc.lr; /* constant lr: the formula below needs no schedule */
    gsq_adamw opt;
    gsq_error err = {0};
    /* the parameters, and a log-domain block of three scales learned at 10× the rate */
    enum { NS = 3 };
    float scales[NS] = {0.5f, 0.01f, 2.0f}, sgrad[NS];
    double ls[NS], sm[NS] = {0}, sv[NS] = {0};
    gsq_param stensor = {.name = "quant.x.input_scale", .ndim = 1, .shape = {NS}, .numel = NS, .no_decay = 1};
    gsq_param_block b[2];
    CHECK(gsq_model_blocks(m, b) == 1, "a model without LSQ has one block");
    b[1] = (gsq_param_block){.num_tensors = 1, .tensors = &stensor, .n = NS, .values = scales, .grads = sgrad,
                             .lr_scale = 10, .log_domain = 1};
    CHECK(gsq_adamw_init(&opt, b, 2, &oc, &err) == GSQ_OK, "%s", err.msg);
    size_t n = m->num_params;
    double *p = malloc(n * sizeof(double)), *mm = calloc(n, sizeof(double)), *vv = calloc(n, sizeof(double));
    float *g = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = m->params[i];
    for (int i = 0; i < NS; i++) ls[i] = log(scales[i]);
    b[0].grads = g;
    gsq_rng rng;
    gsq_rng_seed(&rng, 5, 0);
    for (int t = 1; t <= 3; t++) {
        fill_normal(g, n, &rng, 0.01f);
        fill_normal(sgrad, NS, &rng, 0.01f);
        gsq_adamw_step(&opt, b, 2, NULL);
        for (int i = 0; i < NS; i++) {
            sm[i] = 0.9 * sm[i] + 0.1 * sgrad[i];
            sv[i] = 0.999 * sv[i] + 0.001 * (double)sgrad[i] * sgrad[i];
            ls[i] -= 10.0 * oc.lr * (sm[i] / (1 - pow(0.9, t))) / (sqrt(sv[i] / (1 - pow(0.999, t))) + oc.eps);
        }
        for (int k = 0; k < m->num_tensors; k++) {
            const gsq_param *pp = &m->tensors[k];
            int decay = pp->ndim > 1 && strcmp(pp->name, "pos_embed") && strcmp(pp->name, "cls_token");
            for (size_t i = pp->offset; i < pp->offset + pp->numel; i++) {
                if (decay) p[i] *= 1.0 - (double)oc.lr * oc.weight_decay;
                mm[i] = 0.9 * mm[i] + 0.1 * g[i];
                vv[i] = 0.999 * vv[i] + 0.001 * (double)g[i] * g[i];
                double mh = mm[i] / (1 - pow(0.9, t)), vh = vv[i] / (1 - pow(0.999, t));
                p[i] -= (double)oc.lr * mh / (sqrt(vh) + oc.eps);
            }
        }
    }
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(p[i] - m->params[i]));
    /* three steps of size ~lr = 1e-3 each: float rounding stays far below 1e-6 */
    CHECK(worst < 1e-6, "AdamW differs from its formula by %.3g", worst);
    double worst_log = 0;
    for (int i = 0; i < NS; i++) worst_log = fmax(worst_log, fabs(log(scales[i]) - ls[i]));
    CHECK(worst_log < 1e-5, "the log-domain block differs from Adam on log s by %.3g", worst_log);
    const gsq_param *norm = gsq_model_find_param(m, "norm.weight"), *qkv = gsq_model_find_param(m, "blocks.0.attn.qkv.weight");
    CHECK(opt.decay[0][norm->offset] == 0 && opt.decay[0][qkv->offset] == 1, "weight-decay mask");
    CHECK(opt.decay[0][gsq_model_find_param(m, "pos_embed")->offset] == 0, "pos_embed must not decay");
    CHECK(opt.decay[1][0] == 0, "scales must not decay");
    free(p), free(mm), free(vv), free(g);
    gsq_adamw_free(&opt);
    gsq_model_free(m);

    gsq_optim_config bad = oc;
    bad.beta2 = 1.0f;
    gsq_vit_create(&m, &tiny, NULL);
    CHECK(gsq_adamw_init(&opt, b, 1, &bad, &err) == GSQ_ERR_ARG, "beta2 = 1 accepted");
    CHECK(gsq_adamw_init(&opt, b, 3, &oc, &err) == GSQ_ERR_ARG, "three blocks accepted");
    gsq_model_free(m);
}

static void test_schedule(void)
{
    gsq_optim_config c;
    gsq_optim_defaults(&c);
    c.lr = 1.0f, c.min_lr = 0.1f, c.warmup_lr = 0.0f, c.warmup_steps = 10, c.total_steps = 110;
    CHECK(fabsf(gsq_lr_at(&c, 0) - 0.1f) < 1e-6f, "first warm-up step %g", gsq_lr_at(&c, 0));
    CHECK(fabsf(gsq_lr_at(&c, 9) - 1.0f) < 1e-6f, "last warm-up step %g", gsq_lr_at(&c, 9));
    CHECK(fabsf(gsq_lr_at(&c, 10) - 1.0f) < 1e-6f, "cosine start %g", gsq_lr_at(&c, 10));
    CHECK(fabsf(gsq_lr_at(&c, 60) - 0.55f) < 1e-6f, "cosine midpoint %g", gsq_lr_at(&c, 60));
    CHECK(fabsf(gsq_lr_at(&c, 110) - 0.1f) < 1e-6f && fabsf(gsq_lr_at(&c, 500) - 0.1f) < 1e-6f, "after the end");
}

static gsq_loader_config loader_cfg(int workers, int train)
{
    gsq_loader_config c = {.batch_size = 8, .train = train, .augment = train, .seed = 3, .workers = workers, .prefetch = 3};
    gsq_transform_defaults(&c.transform, 16);
    return c;
}

static void test_loader(void)
{
    gsq_dataset *ds = toy_dataset(37, 0);
    gsq_loader_config c1 = loader_cfg(1, 1), c3 = loader_cfg(3, 1);
    CHECK(gsq_loader_batches_per_epoch(ds, &c1) == 5, "37 samples in batches of 8: 5 batches");
    gsq_loader *a = NULL, *b = NULL, *mid = NULL;
    gsq_error err = {0};
    CHECK(gsq_loader_create(&a, ds, &c1, 0, 0, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_loader_create(&b, ds, &c3, 0, 0, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_loader_create(&mid, ds, &c3, 1, 2, &err) == GSQ_OK, "%s", err.msg);
    size_t floats = 3 * 16 * 16;
    int same = 1, seen[37] = {0}, labels_ok = 1, mid_same = 1;
    for (int k = 0; k < 10; k++) { /* two epochs */
        gsq_batch x, y;
        gsq_loader_next(a, &x, &err);
        gsq_loader_next(b, &y, &err);
        CHECK(x.n == (k % 5 == 4 ? 5 : 8) && x.epoch == k / 5 && x.index == k % 5, "batch %d: n %d", k, x.n);
        same &= x.n == y.n && memcmp(x.images, y.images, x.n * floats * 4) == 0 && memcmp(x.labels, y.labels, x.n * 4) == 0;
        for (int i = 0; k < 5 && i < x.n; i++) seen[x.labels[i]]++;
        if (k >= 7) {
            gsq_batch z;
            gsq_loader_next(mid, &z, &err);
            mid_same &= z.n == x.n && memcmp(z.images, x.images, x.n * floats * 4) == 0;
        }
        for (int i = 0; i < x.n; i++) labels_ok &= x.labels[i] >= 0 && x.labels[i] < 4;
    }
    CHECK(same, "1 and 3 workers produced different batches");
    CHECK(mid_same, "a loader started at epoch 1 batch 2 differs from the continued stream");
    CHECK(labels_ok && seen[0] == 10 && seen[1] == 9 && seen[2] == 9 && seen[3] == 9,
          "an epoch must visit each sample once (labels %d %d %d %d)", seen[0], seen[1], seen[2], seen[3]);
    gsq_loader_destroy(a);
    gsq_loader_destroy(b);
    gsq_loader_destroy(mid);

    /* broken samples are skipped and counted, the first failure named */
    gsq_dataset *broken = toy_dataset(37, 1);
    gsq_loader_config ce = loader_cfg(2, 0);
    CHECK(gsq_loader_create(&a, broken, &ce, 0, 0, &err) == GSQ_OK, "%s", err.msg);
    int total = 0, skipped = 0;
    for (int k = 0; k < 5; k++) {
        gsq_batch x;
        gsq_loader_next(a, &x, &err);
        total += x.n;
        skipped += x.skipped;
    }
    gsq_loader_stats stats;
    gsq_loader_stats_get(a, &stats);
    /* the stats also count batches the workers prefetched from the next epoch */
    CHECK(skipped == 4 && total == 33 && stats.skipped >= 4, "skipped %d, read %d", skipped, total);
    CHECK(strstr(stats.first_error, "sample 3 is broken") != NULL, "first error '%s'", stats.first_error);
    gsq_loader_destroy(a);
    CHECK(gsq_loader_create(&a, ds, &c1, 0, 5, &err) == GSQ_ERR_ARG && a == NULL, "start batch past the epoch accepted");
    gsq_dataset_free(broken);
    gsq_dataset_free(ds);
}

/* The loader counts what it produced, its workers' busy time and the consumer's waiting time. */
/* A data-parallel rank's share: shard s of S yields batches s, s + S, ... of every epoch, each
 * equal to that batch of the whole stream; a start position gives the shard's first batch at or
 * after it; more shards than batches are refused. */
static void test_loader_shards(void)
{
    gsq_dataset *ds = toy_dataset(37, 0); /* 5 batches of 8 */
    gsq_loader_config whole = loader_cfg(2, 1);
    gsq_error err = {0};
    size_t floats = 3 * 16 * 16;
    gsq_loader *all = NULL;
    CHECK(gsq_loader_create(&all, ds, &whole, 0, 0, &err) == GSQ_OK, "%s", err.msg);
    float *images = malloc(10 * 8 * floats * sizeof(float));
    for (int k = 0; k < 10; k++) { /* two epochs of the whole stream */
        gsq_batch x;
        gsq_loader_next(all, &x, &err);
        memcpy(images + (size_t)k * 8 * floats, x.images, (size_t)x.n * floats * sizeof(float));
    }
    gsq_loader_destroy(all);
    for (int s = 0; s < 2; s++) {
        gsq_loader_config c = whole;
        c.shards = 2;
        c.shard = s;
        gsq_loader *ld = NULL, *late = NULL;
        CHECK(gsq_loader_create(&ld, ds, &c, 0, 0, &err) == GSQ_OK, "%s", err.msg);
        CHECK(gsq_loader_create(&late, ds, &c, 0, 4, &err) == GSQ_OK, "%s", err.msg); /* its next batch after 4 */
        int order_ok = 1, same = 1;
        for (int k = 0; k < (s ? 4 : 6); k++) {
            gsq_batch x;
            gsq_loader_next(ld, &x, &err);
            long want = s ? 1 + 2 * (k % 2) : 2 * (k % 3), epoch = s ? k / 2 : k / 3;
            order_ok &= x.index == want && x.epoch == epoch;
            same &= memcmp(x.images, images + (size_t)(epoch * 5 + want) * 8 * floats, (size_t)x.n * floats * 4) == 0;
        }
        gsq_batch y;
        gsq_loader_next(late, &y, &err);
        CHECK(order_ok, "shard %d of 2 read other batches than %s", s, s ? "1, 3" : "0, 2, 4");
        CHECK(same, "shard %d's batches differ from the whole stream's", s);
        CHECK(s ? y.epoch == 1 && y.index == 1 : y.epoch == 0 && y.index == 4,
              "shard %d started at batch 4 begins at epoch %ld batch %ld", s, y.epoch, y.index);
        gsq_loader_destroy(ld);
        gsq_loader_destroy(late);
    }
    gsq_loader_config many = whole;
    many.shards = 6;
    many.shard = 5;
    gsq_loader *ld = NULL;
    CHECK(gsq_loader_create(&ld, ds, &many, 0, 0, &err) == GSQ_ERR_ARG && ld == NULL && strstr(err.msg, "fewer than the 6"),
          "6 shards of 5 batches: '%s'", err.msg);
    free(images);
    gsq_dataset_free(ds);
}

static void test_loader_stats(void)
{
    gsq_dataset *ds = toy_dataset(24, 0);
    ((toy_impl *)ds->impl)->slow = 1;
    gsq_loader_config c = loader_cfg(1, 0);
    c.prefetch = 1;
    gsq_loader *ld = NULL;
    gsq_error err = {0};
    CHECK(gsq_loader_create(&ld, ds, &c, 0, 0, &err) == GSQ_OK, "%s", err.msg);
    for (int b = 0; ld && b < 3; b++) {
        gsq_batch x;
        CHECK(gsq_loader_next(ld, &x, &err) == GSQ_OK && x.n == 8, "batch %d", b);
    }
    gsq_loader_stats st;
    gsq_loader_stats_get(ld, &st);
    /* 24 samples of >= 1 ms each, and a consumer that never computes: it waits for nearly all */
    CHECK(st.images >= 24 && st.busy_seconds >= 0.024, "produced %zu images in %.4f s", st.images, st.busy_seconds);
    CHECK(st.wait_seconds >= 0.012 && st.wait_seconds <= st.busy_seconds + 1.0, "waited %.4f s", st.wait_seconds);
    gsq_loader_destroy(ld);
    gsq_dataset_free(ds);
}

static gsq_train_config train_cfg(int batch, int accum, long epochs)
{
    gsq_train_config c;
    gsq_train_defaults(&c, 16);
    c.batch_size = batch;
    c.accum_steps = accum;
    c.epochs = epochs;
    c.seed = 11;
    c.workers = 2;
    c.transform.scale_min = 0.8f;
    c.transform.hflip = 0.0f; /* a flip would move the bright quadrant and change the label */
    return c;
}

static void test_resume_bitwise(void)
{
    gsq_dataset *ds = toy_dataset(40, 0);
    gsq_train_config c = train_cfg(8, 1, 2); /* 10 steps */
    gsq_error err = {0};
    gsq_train_result r;
    gsq_trainer whole = tiny_trainer(&c, ds->size, 7);
    CHECK(gsq_trainer_run(&whole, ds, &c, &r, &err) == GSQ_OK && r.finished, "%s", err.msg);

    char ckpt[128];
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt.safetensors", tmpdir);
    gsq_train_config half = c;
    half.checkpoint_path = ckpt;
    half.max_steps = 7; /* stops mid-epoch */
    gsq_trainer first = tiny_trainer(&half, ds->size, 7);
    CHECK(gsq_trainer_run(&first, ds, &half, &r, &err) == GSQ_OK && !r.finished && first.state.step == 7, "%s", err.msg);
    gsq_trainer_free(&first);
    gsq_trainer second;
    half.max_steps = 0;
    CHECK(gsq_trainer_resume(&second, ckpt, &half, ds->size, &err) == GSQ_OK, "%s", err.msg);
    CHECK(second.state.step == 7 && second.state.epoch == 1 && second.state.batch == 2, "resumed at step %ld epoch %ld batch %ld",
          second.state.step, second.state.epoch, second.state.batch);
    CHECK(gsq_trainer_run(&second, ds, &half, &r, &err) == GSQ_OK && r.finished, "%s", err.msg);
    size_t bytes = whole.model->num_params * sizeof(float);
    CHECK(memcmp(whole.model->params, second.model->params, bytes) == 0, "resumed parameters differ");
    CHECK(memcmp(whole.opt.m[0], second.opt.m[0], bytes) == 0 && memcmp(whole.opt.v[0], second.opt.v[0], bytes) == 0,
          "resumed optimizer moments differ");
    gsq_trainer_free(&second);

    /* a checkpoint of another run is refused, naming the settings */
    gsq_train_config other = half;
    other.batch_size = 4;
    gsq_trainer t3;
    CHECK(gsq_trainer_resume(&t3, ckpt, &other, ds->size, &err) == GSQ_ERR_ARG && strstr(err.msg, "batch=8"), "%s", err.msg);
    CHECK(gsq_trainer_resume(&t3, "/nonexistent.safetensors", &half, ds->size, &err) == GSQ_ERR_IO, "%s", err.msg);
    /* found by tests/fuzz/fuzz_checkpoint.c: a checkpoint whose model does not fit the run (one
     * input channel) was refused with a message read from the freed model, not naming the file */
    gsq_vit_config gray = tiny;
    gray.in_chans = 1;
    gsq_trainer g = {0};
    char gray_ckpt[128];
    snprintf(gray_ckpt, sizeof gray_ckpt, "%s/gray.ckpt.safetensors", tmpdir);
    gsq_param_block gb[GSQ_MAX_BLOCKS];
    CHECK(gsq_vit_create(&g.model, &gray, &err) == GSQ_OK &&
              gsq_adamw_init(&g.opt, gb, gsq_model_blocks(g.model, gb), &half.optim, &err) == GSQ_OK &&
              gsq_trainer_save(&g, &half, gray_ckpt, &err) == GSQ_OK,
          "%s", err.msg);
    gsq_trainer_free(&g);
    CHECK(gsq_trainer_resume(&t3, gray_ckpt, &half, ds->size, &err) == GSQ_ERR_SHAPE &&
              strstr(err.msg, gray_ckpt) && strstr(err.msg, "with 1 channels"),
          "%s", err.msg);

    /* a stop request: one step, a checkpoint, interrupted */
    volatile sig_atomic_t stop = 1;
    gsq_train_config s = half;
    s.stop = &stop;
    unlink(ckpt);
    gsq_trainer t4 = tiny_trainer(&s, ds->size, 7);
    CHECK(gsq_trainer_run(&t4, ds, &s, &r, &err) == GSQ_OK && r.interrupted && t4.state.step == 1, "%s", err.msg);
    CHECK(access(ckpt, F_OK) == 0, "no checkpoint written on stop");
    gsq_trainer_free(&t4);
    gsq_trainer_free(&whole);
    gsq_dataset_free(ds);
}

static void test_accumulation(void)
{
    /* batch 8 in one micro-batch vs 2 × 4 accumulated: the same samples and augmentation, so the
     * same averaged gradient; eps = 1 makes AdamW's first update ~ lr·g, so parameters differ
     * only by float rounding of the gradient */
    gsq_dataset *ds = toy_dataset(32, 0);
    gsq_train_config one = train_cfg(8, 1, 1), two = train_cfg(4, 2, 1);
    one.optim.eps = two.optim.eps = 1.0f;
    one.max_steps = two.max_steps = 1;
    gsq_trainer a = tiny_trainer(&one, ds->size, 7), b = tiny_trainer(&two, ds->size, 7);
    gsq_train_result r;
    gsq_error err = {0};
    CHECK(gsq_trainer_run(&a, ds, &one, &r, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_trainer_run(&b, ds, &two, &r, &err) == GSQ_OK, "%s", err.msg);
    gsq_model *init = NULL;
    gsq_vit_create(&init, &tiny, NULL);
    gsq_model_init(init, 7);
    size_t n = a.model->num_params;
    float *da = malloc(n * 4), *db = malloc(n * 4);
    for (size_t i = 0; i < n; i++) da[i] = a.model->params[i] - init->params[i], db[i] = b.model->params[i] - init->params[i];
    double e = norm_l2_err(db, da, n);
    CHECK(e < 1e-4, "accumulated update differs from the large batch's by %.3g", e);
    free(da), free(db);
    gsq_model_free(init);
    gsq_trainer_free(&a);
    gsq_trainer_free(&b);
    gsq_dataset_free(ds);
}

static void test_learns(void)
{
    gsq_dataset *train = toy_dataset(256, 0), *val = toy_dataset(64, 0);
    gsq_train_config c = train_cfg(32, 1, 30);
    c.optim.lr = 5e-3f;
    c.label_smoothing = 0.0f;
    c.val = val;
    gsq_trainer t = tiny_trainer(&c, train->size, 7);
    gsq_train_result r;
    gsq_error err = {0};
    CHECK(gsq_trainer_run(&t, train, &c, &r, &err) == GSQ_OK && r.finished, "%s", err.msg);
    /* chance is 25%; the quadrant is plain to see */
    CHECK(r.eval.count == 64 && r.eval.top1 > 0.8, "validation top-1 %.3f after training", r.eval.top1);
    CHECK(r.eval.top5 == 1.0, "top-5 of 4 classes must be 1 (got %.3f)", r.eval.top5);
    printf("toy task: validation top-1 %.3f, loss %.3f\n", r.eval.top1, r.eval.loss);
    gsq_trainer_free(&t);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gsq_test_train_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_adamw();
    test_schedule();
    test_loader();
    test_loader_stats();
    test_resume_bitwise();
    test_accumulation();
    test_loader_shards();
    test_learns();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_finish("test_train");
}
