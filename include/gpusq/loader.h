/* The batch loader: worker threads decode and transform samples into a ring of batches while the
 * model computes. The stream of batches is endless (epoch after epoch) and fully determined by
 * the seed and the batch's position: the shuffle of epoch e and the augmentation of each sample
 * depend only on (seed, e, position), never on thread timing, so a run resumed from a
 * checkpoint's (epoch, batch) sees the same data bit for bit. */
#ifndef GPUSQ_LOADER_H
#define GPUSQ_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/data.h"

typedef struct {
    int batch_size;
    int train;            /* 1: shuffled each epoch; 0: in order */
    int augment;          /* 1 (with train): the train transform; else the eval transform */
    int drop_last;        /* 1: an epoch's last partial batch is left out */
    uint64_t seed;
    int workers;          /* decoding threads, >= 1 */
    int prefetch;         /* batches held in the ring, >= 1 */
    gsq_transform transform;
    int shards, shard;    /* shards > 1: this loader yields only the batches whose index in the
                           * epoch is shard, shard + shards, ... (a data-parallel rank's share);
                           * 0 or 1: every batch */
} gsq_loader_config;

typedef struct {
    float *images;        /* (n, 3, size, size), normalised */
    int *labels;          /* (n) classification: the classes */
    int16_t *maps;        /* (n, size, size) segmentation: the label maps; NULL otherwise */
    gsq_targets *targets; /* (n) detection: each input's training targets; NULL otherwise */
    gsq_objects *objects; /* (n) detection: each sample's annotations in its original pixels, with
                           * its image_id and size (for evaluation); owned by the loader */
    int n;                /* samples: batch_size, fewer for a last partial batch or skipped files */
    int skipped;          /* samples of this batch that failed to decode */
    long epoch, index;    /* which batch of which epoch */
} gsq_batch;

typedef struct {
    size_t images;        /* decoded and transformed so far */
    size_t skipped;       /* samples that failed to decode */
    double busy_seconds;  /* summed worker time spent producing batches */
    double wait_seconds;  /* time the consumer spent blocked in gsq_loader_next */
    char first_error[GSQ_ERROR_MSG_MAX]; /* the first decode failure, naming the sample */
} gsq_loader_stats;

typedef struct gsq_loader gsq_loader;

/* Batches of one epoch: ceil(size / batch) (floor with drop_last). */
long gsq_loader_batches_per_epoch(const gsq_dataset *ds, const gsq_loader_config *cfg);
/* Of them, those cfg's shard yields (all without shards; 0 for a shard past the last batch). */
long gsq_loader_shard_batches(const gsq_dataset *ds, const gsq_loader_config *cfg);

/* Starts workers producing from batch `start_index` of epoch `start_epoch` (with shards: this
 * shard's first batch at or after it). The dataset must outlive the loader. */
gsq_status gsq_loader_create(gsq_loader **out, gsq_dataset *ds, const gsq_loader_config *cfg,
                             long start_epoch, long start_index, gsq_error *err);
/* Waits for the next batch in order; *batch stays valid until the next call or destroy. */
gsq_status gsq_loader_next(gsq_loader *ld, gsq_batch *batch, gsq_error *err);
void gsq_loader_stats_get(gsq_loader *ld, gsq_loader_stats *stats);
void gsq_loader_destroy(gsq_loader *ld); /* stops and joins the workers; NULL-safe */

/* Sample order of epoch e for a dataset of n samples: a seeded Fisher-Yates permutation. */
void gsq_epoch_permutation(size_t *order, size_t n, uint64_t seed, long epoch);

#endif
