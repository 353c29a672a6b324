/* The batch loader: worker threads claim batches in order, decode and transform their samples
 * into a ring of batch slots, and the consumer takes them back in order. Every batch's content
 * is a function of (seed, epoch, position) alone, so thread timing never changes the data. */
#include "gpusq/loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/clock.h"
#include "gpusq/kernels.h"

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY };

typedef struct {
    float *images;
    int *labels;
    int16_t *maps;        /* segmentation: (batch, size, size) */
    gsq_targets *targets; /* detection: (batch) */
    gsq_objects *objects; /* detection: (batch), owned by the slot until it is filled again */
    int n, skipped, state;
    long seq;             /* which of this loader's batches it holds (0, 1, ...: position()) */
} slot;

typedef struct {
    long epoch;           /* -1: empty */
    size_t *order;
} epoch_order;

struct gsq_loader {
    gsq_dataset *ds;
    gsq_loader_config cfg;
    long bpe;             /* batches per epoch */
    long shard_bpe;       /* of them, this shard's: indices shard, shard + shards, ... */
    size_t sample_floats; /* 3 · size · size */
    size_t map_pixels;    /* size · size for a segmentation dataset, else 0 */
    int detect;           /* a detection dataset: batches carry targets and objects */
    int ring;
    slot *slots;
    int n_orders;         /* ring + 1: enough for every epoch that can be in flight at once */
    epoch_order *orders;
    long next_claim;      /* next batch (its sequence number) a worker will produce */
    long next_take;       /* the batch the consumer holds or waits for */
    int holding;          /* the consumer holds next_take's slot */
    int stop;
    gsq_loader_stats stats;
    pthread_mutex_t mu;
    pthread_cond_t ready, freed;
    pthread_t *threads;
    int n_threads;
};

long gsq_loader_batches_per_epoch(const gsq_dataset *ds, const gsq_loader_config *cfg)
{
    size_t b = (size_t)cfg->batch_size;
    return (long)(cfg->drop_last ? ds->size / b : (ds->size + b - 1) / b);
}

long gsq_loader_shard_batches(const gsq_dataset *ds, const gsq_loader_config *cfg)
{
    long bpe = gsq_loader_batches_per_epoch(ds, cfg), shards = cfg->shards > 1 ? cfg->shards : 1;
    return bpe > cfg->shard ? (bpe - cfg->shard + shards - 1) / shards : 0;
}

void gsq_epoch_permutation(size_t *order, size_t n, uint64_t seed, long epoch)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, seed, 0x5eedULL + (uint64_t)epoch);
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = n; i > 1; i--) {
        uint64_t r = ((uint64_t)gsq_rng_u32(&rng) << 32) | gsq_rng_u32(&rng);
        size_t j = (size_t)(r % i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

/* The sample order of `epoch` (called with the lock held; computes it on first use). */
static const size_t *order_for(gsq_loader *ld, long epoch)
{
    epoch_order *o = &ld->orders[epoch % ld->n_orders];
    if (o->epoch != epoch) {
        gsq_epoch_permutation(o->order, ld->ds->size, ld->cfg.seed, epoch);
        o->epoch = epoch;
    }
    return o->order;
}

/* The epoch and batch index of this loader's batch number k. */
static void position(const gsq_loader *ld, long k, long *epoch, long *index)
{
    int shards = ld->cfg.shards > 1 ? ld->cfg.shards : 1;
    *epoch = k / ld->shard_bpe;
    *index = ld->cfg.shard + k % ld->shard_bpe * shards;
}

/* Transforms sample smp into dst (and map, or the targets of slot s's next sample), with the
 * train transform when augmenting (randomness from rng), else the eval one. */
static gsq_status transform(const gsq_loader *ld, const slot *s, gsq_sample *smp, gsq_rng *rng, float *dst,
                            int16_t *map, gsq_error *err)
{
    const gsq_transform *t = &ld->cfg.transform;
    gsq_targets *targets = ld->detect ? &s->targets[s->n] : NULL;
    if (rng && ld->detect) return gsq_transform_detect_train(t, &smp->image, &smp->objects, rng, dst, targets, err);
    if (ld->detect) return gsq_transform_detect_eval(t, &smp->image, &smp->objects, dst, targets, err);
    if (rng && map) return gsq_transform_segment_train(t, &smp->image, &smp->map, rng, dst, map, err);
    if (map) return gsq_transform_segment_eval(t, &smp->image, &smp->map, dst, map, err);
    if (rng) return gsq_transform_train(t, &smp->image, rng, dst, err);
    return gsq_transform_eval(t, &smp->image, dst, err);
}

/* GSQ_ERR_FORMAT naming the sample unless its target is in the dataset's classes: a
 * classification label, or every detection object's category. */
static gsq_status check_classes(const gsq_dataset *ds, size_t sample, const gsq_sample *smp, gsq_error *err)
{
    int k = ds->num_classes;
    if (ds->task == GSQ_TASK_CLASSIFY && (smp->label < 0 || smp->label >= k))
        return gsq_fail(err, GSQ_ERR_FORMAT, "%s: sample %zu has label %d outside [0, %d)", ds->name, sample,
                        smp->label, k);
    for (int i = 0; ds->task == GSQ_TASK_DETECT && i < smp->objects.count; i++) {
        int c = smp->objects.objects[i].category;
        if (c < 0 || c >= k)
            return gsq_fail(err, GSQ_ERR_FORMAT, "%s: sample %zu: object %d has class %d outside [0, %d)", ds->name,
                            sample, i, c, k);
    }
    return GSQ_OK;
}

/* Fills slot s with batch number k (without the lock: the slot is this worker's). */
static void produce(gsq_loader *ld, slot *s, long k, const size_t *order)
{
    const gsq_loader_config *c = &ld->cfg;
    long epoch, index;
    position(ld, k, &epoch, &index);
    size_t begin = (size_t)index * (size_t)c->batch_size;
    size_t end = begin + (size_t)c->batch_size;
    if (end > ld->ds->size) end = ld->ds->size;
    s->n = s->skipped = 0;
    for (int i = 0; ld->detect && i < c->batch_size; i++) gsq_objects_free(&s->objects[i]);
    for (size_t pos = begin; pos < end; pos++) {
        size_t sample = order ? order[pos] : pos;
        gsq_sample smp = {0};
        gsq_error err = {0};
        float *dst = s->images + (size_t)s->n * ld->sample_floats;
        int16_t *map = ld->map_pixels ? s->maps + (size_t)s->n * ld->map_pixels : NULL;
        gsq_status st = ld->ds->get(ld->ds, sample, &smp, &err);
        gsq_rng rng; /* augmentation randomness from (seed, epoch, position) only */
        gsq_rng_seed(&rng, c->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(epoch + 1)), pos);
        if (st == GSQ_OK) st = check_classes(ld->ds, sample, &smp, &err);
        if (st == GSQ_OK) st = transform(ld, s, &smp, c->train && c->augment ? &rng : NULL, dst, map, &err);
        int label = smp.label;
        if (st == GSQ_OK && ld->detect) { /* the slot takes the objects over */
            s->objects[s->n] = smp.objects;
            memset(&smp.objects, 0, sizeof smp.objects);
        }
        gsq_sample_free(&smp);
        if (st != GSQ_OK) {
            s->skipped++;
            pthread_mutex_lock(&ld->mu);
            if (ld->stats.skipped++ == 0) snprintf(ld->stats.first_error, sizeof ld->stats.first_error, "%s", err.msg);
            pthread_mutex_unlock(&ld->mu);
            continue;
        }
        s->labels[s->n++] = label;
    }
}

static void *worker(void *arg)
{
    gsq_loader *ld = arg;
    gsq_flush_denormals_here(); /* the transforms compute in float */
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->stop && ld->next_claim - ld->next_take >= ld->ring) pthread_cond_wait(&ld->freed, &ld->mu);
        if (ld->stop) break;
        long g = ld->next_claim++;
        slot *s = &ld->slots[g % ld->ring];
        s->state = SLOT_FILLING;
        const size_t *order = ld->cfg.train ? order_for(ld, g / ld->shard_bpe) : NULL;
        pthread_mutex_unlock(&ld->mu);
        double t0 = gsq_seconds();
        produce(ld, s, g, order);
        double t1 = gsq_seconds();
        pthread_mutex_lock(&ld->mu);
        s->seq = g;
        s->state = SLOT_READY;
        ld->stats.images += (size_t)s->n;
        ld->stats.busy_seconds += t1 - t0;
        pthread_cond_broadcast(&ld->ready);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

gsq_status gsq_loader_create(gsq_loader **out, gsq_dataset *ds, const gsq_loader_config *cfg,
                             long start_epoch, long start_index, gsq_error *err)
{
    *out = NULL;
    if (cfg->batch_size < 1 || cfg->workers < 1 || cfg->prefetch < 1 || cfg->transform.size < 1)
        return gsq_fail(err, GSQ_ERR_ARG, "loader: batch %d, workers %d, prefetch %d and size %d must be positive",
                        cfg->batch_size, cfg->workers, cfg->prefetch, cfg->transform.size);
    long bpe = gsq_loader_batches_per_epoch(ds, cfg);
    if (bpe < 1)
        return gsq_fail(err, GSQ_ERR_ARG, "loader: %s has %zu samples, fewer than one batch of %d", ds->name,
                        ds->size, cfg->batch_size);
    if (start_epoch < 0 || start_index < 0 || start_index >= bpe)
        return gsq_fail(err, GSQ_ERR_ARG, "loader: start position epoch %ld batch %ld is outside the %ld batches of an epoch",
                        start_epoch, start_index, bpe);
    int shards = cfg->shards > 1 ? cfg->shards : 1;
    if (cfg->shard < 0 || cfg->shard >= shards)
        return gsq_fail(err, GSQ_ERR_ARG, "loader: shard %d of %d does not exist", cfg->shard, shards);
    if (bpe < shards)
        return gsq_fail(err, GSQ_ERR_ARG, "loader: %s has %ld batches of %d per epoch, fewer than the %d processes "
                        "sharing them: use a smaller batch or fewer processes", ds->name, bpe, cfg->batch_size, shards);
    gsq_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return gsq_fail(err, GSQ_ERR_NOMEM, "loader: out of memory");
    ld->ds = ds;
    ld->cfg = *cfg;
    ld->bpe = bpe;
    ld->shard_bpe = gsq_loader_shard_batches(ds, cfg);
    ld->sample_floats = (size_t)3 * cfg->transform.size * cfg->transform.size;
    ld->map_pixels = ds->task == GSQ_TASK_SEGMENT ? (size_t)cfg->transform.size * cfg->transform.size : 0;
    ld->detect = ds->task == GSQ_TASK_DETECT;
    ld->ring = cfg->prefetch;
    ld->n_orders = cfg->train ? ld->ring + 1 : 0;
    /* this shard's batches before start_index in its epoch */
    long before = start_index > cfg->shard ? (start_index - cfg->shard + shards - 1) / shards : 0;
    ld->next_claim = ld->next_take = start_epoch * ld->shard_bpe + before;
    ld->slots = calloc((size_t)ld->ring, sizeof *ld->slots);
    ld->orders = calloc((size_t)(ld->n_orders ? ld->n_orders : 1), sizeof *ld->orders);
    ld->threads = calloc((size_t)cfg->workers, sizeof *ld->threads);
    int ok = ld->slots && ld->orders && ld->threads;
    for (int i = 0; ok && i < ld->ring; i++) {
        ld->slots[i].images = malloc((size_t)cfg->batch_size * ld->sample_floats * sizeof(float));
        ld->slots[i].labels = malloc((size_t)cfg->batch_size * sizeof(int));
        ld->slots[i].maps = ld->map_pixels ? malloc((size_t)cfg->batch_size * ld->map_pixels * sizeof(int16_t)) : NULL;
        ld->slots[i].targets = ld->detect ? calloc((size_t)cfg->batch_size, sizeof(gsq_targets)) : NULL;
        ld->slots[i].objects = ld->detect ? calloc((size_t)cfg->batch_size, sizeof(gsq_objects)) : NULL;
        ok = ld->slots[i].images && ld->slots[i].labels && (!ld->map_pixels || ld->slots[i].maps) &&
             (!ld->detect || (ld->slots[i].targets && ld->slots[i].objects));
    }
    for (int i = 0; ok && i < ld->n_orders; i++) {
        ld->orders[i].epoch = -1;
        ld->orders[i].order = malloc(ds->size * sizeof(size_t));
        ok = ld->orders[i].order != NULL;
    }
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->ready, NULL);
    pthread_cond_init(&ld->freed, NULL);
    for (int i = 0; ok && i < cfg->workers; i++) {
        ok = pthread_create(&ld->threads[i], NULL, worker, ld) == 0;
        if (ok) ld->n_threads++;
    }
    if (!ok) {
        gsq_loader_destroy(ld);
        return gsq_fail(err, GSQ_ERR_NOMEM, "loader: out of memory or threads for %d batches of %d", cfg->prefetch,
                        cfg->batch_size);
    }
    *out = ld;
    return GSQ_OK;
}

gsq_status gsq_loader_next(gsq_loader *ld, gsq_batch *batch, gsq_error *err)
{
    pthread_mutex_lock(&ld->mu);
    if (ld->holding) { /* hand the previous batch's slot back */
        ld->slots[ld->next_take % ld->ring].state = SLOT_FREE;
        ld->next_take++;
        ld->holding = 0;
        pthread_cond_broadcast(&ld->freed);
    }
    slot *s = &ld->slots[ld->next_take % ld->ring];
    if (!(s->state == SLOT_READY && s->seq == ld->next_take)) {
        double t0 = gsq_seconds();
        while (!(s->state == SLOT_READY && s->seq == ld->next_take)) pthread_cond_wait(&ld->ready, &ld->mu);
        ld->stats.wait_seconds += gsq_seconds() - t0;
    }
    ld->holding = 1;
    *batch = (gsq_batch){.images = s->images, .labels = s->labels, .maps = s->maps, .targets = s->targets,
                         .objects = s->objects, .n = s->n, .skipped = s->skipped};
    position(ld, s->seq, &batch->epoch, &batch->index);
    pthread_mutex_unlock(&ld->mu);
    (void)err;
    return GSQ_OK;
}

void gsq_loader_stats_get(gsq_loader *ld, gsq_loader_stats *stats)
{
    pthread_mutex_lock(&ld->mu);
    *stats = ld->stats;
    pthread_mutex_unlock(&ld->mu);
}

void gsq_loader_destroy(gsq_loader *ld)
{
    if (!ld) return;
    pthread_mutex_lock(&ld->mu);
    ld->stop = 1;
    pthread_cond_broadcast(&ld->freed);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->n_threads; i++) pthread_join(ld->threads[i], NULL);
    pthread_mutex_destroy(&ld->mu);
    pthread_cond_destroy(&ld->ready);
    pthread_cond_destroy(&ld->freed);
    for (int i = 0; ld->slots && i < ld->ring; i++) {
        free(ld->slots[i].images);
        free(ld->slots[i].labels);
        free(ld->slots[i].maps);
        for (int j = 0; ld->slots[i].objects && j < ld->cfg.batch_size; j++) gsq_objects_free(&ld->slots[i].objects[j]);
        free(ld->slots[i].targets);
        free(ld->slots[i].objects);
    }
    for (int i = 0; ld->orders && i < ld->n_orders; i++) free(ld->orders[i].order);
    free(ld->slots);
    free(ld->orders);
    free(ld->threads);
    free(ld);
}
