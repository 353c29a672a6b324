/* Flush-to-zero and denormals-are-zero on every thread that computes: after each kind of library
 * call that starts work (setting the thread count, a model's forward pass, the CPU engine,
 * training), every OpenMP worker flushes, and the loader's own threads flush while they decode and
 * transform. Each case first clears the mode everywhere, so it proves the library set it. */
#include <stdatomic.h>
#include <string.h>

#include <omp.h>

#include "gpusq/engine.h"
#include "gpusq/kernels.h"
#include "gpusq/loader.h"
#include "gpusq/train.h"
#include "quantized_model.h"
#include "test_util.h"
#include "toy_dataset.h"

#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
#if defined(__aarch64__)
static void clear_here(void) /* FPCR.FZ off */
{
    unsigned long long v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    v &= ~(1ull << 24);
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
}
#else
#include <immintrin.h>

static void clear_here(void) { _mm_setcsr(_mm_getcsr() & ~0x8040u); } /* MXCSR FTZ and DAZ off */
#endif

/* Clears the mode on this thread and every OpenMP worker. */
static void clear_all(void)
{
    clear_here();
    #pragma omp parallel num_threads(omp_get_max_threads())
    clear_here();
}

/* 1 when this thread flushes, by its mode and by arithmetic: a denormal input reads as 0 (DAZ)
 * and a product below FLT_MIN comes out 0 (FTZ). */
static int flushes_here(void)
{
    volatile float denormal = 1e-40f, small = 1e-20f;
    return gsq_denormals_flushed() && denormal * 1.0f == 0.0f && small * small == 0.0f;
}

/* How many of the OpenMP team's threads (the calling one included) do not flush. */
static int workers_not_flushing(void)
{
    int bad = 0;
    #pragma omp parallel num_threads(omp_get_max_threads()) reduction(+ : bad)
    bad += !flushes_here();
    return bad;
}

/* A toy dataset whose samples note whether the (loader) thread decoding them flushes. */
static atomic_int gets, gets_not_flushing;

static gsq_status noting_get(gsq_dataset *ds, size_t index, gsq_sample *s, gsq_error *err)
{
    atomic_fetch_add(&gets, 1);
    if (!flushes_here()) atomic_fetch_add(&gets_not_flushing, 1);
    return toy_get(ds, index, s, err);
}

int main(void)
{
    gsq_error err = {0};
    clear_all();
    CHECK(workers_not_flushing() == omp_get_max_threads(), "the mode could not be cleared: the test sees nothing");

    gsq_set_num_threads(2);
    CHECK(workers_not_flushing() == 0, "after gsq_set_num_threads: %d threads do not flush", workers_not_flushing());

    float x[4 * 3 * 16 * 16];
    gsq_model *m = gsq_test_quantized_model(48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 1, x, 4);
    clear_all();
    CHECK(gsq_model_forward(m, x, 4, NULL, &err) == GSQ_OK, "%s", err.msg);
    CHECK(workers_not_flushing() == 0, "after a forward pass: %d threads do not flush", workers_not_flushing());

    gsq_engine *e = NULL;
    clear_all();
    CHECK(gsq_engine_create(&e, m, &(gsq_engine_options){.layout = GSQ_ENGINE_SPARSE, .max_batch = 4, .device = GSQ_ENGINE_CPU, .pattern = GSQ_SPARSE_2_4}, &err) == GSQ_OK, "%s", err.msg);
    CHECK(workers_not_flushing() == 0, "after creating the engine: %d threads", workers_not_flushing());
    clear_all();
    const float *logits = NULL;
    CHECK(e && gsq_engine_forward(e, x, 4, &logits, &err) == GSQ_OK, "%s", err.msg);
    CHECK(workers_not_flushing() == 0, "after an engine pass: %d threads", workers_not_flushing());
    gsq_engine_free(e);
    gsq_model_free(m);

    /* the loader's threads, started by a thread that does not flush */
    gsq_dataset *ds = toy_dataset(48, 0);
    ds->get = noting_get;
    gsq_loader_config lc = {.batch_size = 8, .train = 1, .augment = 1, .workers = 2, .prefetch = 2};
    gsq_transform_defaults(&lc.transform, 16);
    gsq_loader *ld = NULL;
    clear_all();
    CHECK(gsq_loader_create(&ld, ds, &lc, 0, 0, &err) == GSQ_OK, "%s", err.msg);
    for (int b = 0; ld && b < 6; b++) {
        gsq_batch batch;
        CHECK(gsq_loader_next(ld, &batch, &err) == GSQ_OK, "%s", err.msg);
    }
    gsq_loader_destroy(ld);
    CHECK(atomic_load(&gets) >= 48 && atomic_load(&gets_not_flushing) == 0, "%d of %d samples decoded without flushing",
          atomic_load(&gets_not_flushing), atomic_load(&gets));

    /* training, on its loader threads and the OpenMP team */
    atomic_store(&gets, 0);
    atomic_store(&gets_not_flushing, 0);
    gsq_train_config c;
    gsq_train_defaults(&c, 16);
    c.batch_size = 8;
    c.epochs = 1;
    gsq_vit_config tiny = {.img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 4, .embed_dim = 24,
                           .depth = 1, .num_heads = 3, .mlp_hidden = 48, .qkv_bias = 1, .class_token = 1,
                           .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f};
    gsq_model *s = NULL;
    gsq_vit_create(&s, &tiny, NULL);
    gsq_model_init(s, 1);
    gsq_trainer t;
    CHECK(gsq_trainer_init(&t, s, &c, ds->size, &err) == GSQ_OK, "%s", err.msg);
    clear_all();
    gsq_train_result r;
    CHECK(gsq_trainer_run(&t, ds, &c, &r, &err) == GSQ_OK && r.finished, "%s", err.msg);
    CHECK(workers_not_flushing() == 0, "after training: %d threads", workers_not_flushing());
    CHECK(atomic_load(&gets) >= 48 && atomic_load(&gets_not_flushing) == 0, "training: %d of %d samples",
          atomic_load(&gets_not_flushing), atomic_load(&gets));
    gsq_trainer_free(&t);
    gsq_dataset_free(ds);
    return test_finish("test_fpenv");
}

#else
int main(void) { return test_skip("test_fpenv", "no flush-to-zero mode known on this architecture"); }
#endif
