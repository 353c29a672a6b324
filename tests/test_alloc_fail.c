/* Allocation failures: the library's allocations (malloc, calloc, realloc, aligned_alloc, strdup,
 * strndup, redirected here by the linker's --wrap, see CMakeLists) and cJSON's (through its hooks)
 * fail one at a time, the Nth for N = 1, 2, ... until the operation succeeds without reaching the
 * failure, while loading a ViT, loading compressed models, creating the CPU engine from a model
 * and straight from a file (and packing weights for AMX, which only a CPU with AMX reaches
 * through the engine) and resuming a trainer from a checkpoint. Every failure must leave the output NULL and leak nothing (LeakSanitizer
 * checks, in the ASan build), and give GSQ_ERR_NOMEM with an "out of memory" message, or, inside
 * cJSON, the format error "not valid JSON": cJSON returns NULL for a syntax error and for an
 * allocation failure alike, so the reader cannot tell them apart. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <omp.h>

#include "kernels/cpu/int8_pack.h"
#include "gpusq/compressed.h"
#include "gpusq/engine.h"
#include "gpusq/export.h"
#include "gpusq/train.h"
#include "quantized_model.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define GSQ_TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GSQ_TEST_LSAN 1
#endif
#endif
#ifdef GSQ_TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* More allocations than any operation below makes: a sweep that reaches it is stuck. */
#define MAX_POINTS 100000

/* The injector: while armed, allocation number fail_at (counted from 1) returns NULL; hit_json
 * records that it was one of cJSON's. */
static atomic_long calls, fail_at;
static atomic_int hit, hit_json;

static int should_fail(void)
{
    long at = atomic_load(&fail_at);
    if (at == 0 || atomic_fetch_add(&calls, 1) + 1 != at) return 0;
    atomic_store(&hit, 1);
    return 1;
}

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

/* The --wrap targets: what the library calls instead of malloc and the others. */
void *__wrap_malloc(size_t size)
{
    return should_fail() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : __real_realloc(p, size);
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    return should_fail() ? NULL : __real_aligned_alloc(align, size);
}

char *__wrap_strdup(const char *s)
{
    return should_fail() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return should_fail() ? NULL : __real_strndup(s, n);
}

/* cJSON's allocations: it is a shared library, which --wrap does not reach. */
static void *json_malloc(size_t size)
{
    if (!should_fail()) return __real_malloc(size);
    atomic_store(&hit_json, 1);
    return NULL;
}

/* 1 the first time LeakSanitizer finds unreachable blocks, else 0: blocks once lost stay lost,
 * and its report at exit lists them all. */
static int leaked(void)
{
#ifdef GSQ_TEST_LSAN
    static int found;
    if (found) return 0;
    return found = __lsan_do_recoverable_leak_check();
#else
    return 0;
#endif
}

/* One operation under test: runs it, checks its output (NULL after a failure) and frees it. */
typedef gsq_status (*op_fn)(void *ctx, gsq_error *err);

/* Runs op with allocation N failing for N = 1, 2, ... until it succeeds without reaching the
 * failure; checks every failure and returns the number of failure points. */
static long sweep(const char *what, op_fn op, void *ctx)
{
    long n = 1, in_json = 0;
    for (; n < MAX_POINTS; n++) {
        gsq_error err = {0};
        atomic_store(&calls, 0);
        atomic_store(&hit, 0);
        atomic_store(&hit_json, 0);
        atomic_store(&fail_at, n);
        gsq_status st = op(ctx, &err);
        atomic_store(&fail_at, 0);
        if (!atomic_load(&hit)) {
            CHECK(st == GSQ_OK, "%s: fails with no allocation failing: %s", what, err.msg);
            break;
        }
        int json = atomic_load(&hit_json);
        in_json += json;
        gsq_status want = json ? GSQ_ERR_FORMAT : GSQ_ERR_NOMEM;
        CHECK(st == want && err.code == st, "%s: allocation %ld failed: %s (%s): %s", what, n,
              gsq_status_name(st), gsq_status_name(err.code), err.msg);
        CHECK(strstr(err.msg, json ? "not valid JSON" : "out of memory"),
              "%s: allocation %ld failed: '%s'", what, n, err.msg);
    }
    CHECK(n < MAX_POINTS, "%s: still failing after %d allocations", what, MAX_POINTS);
    CHECK(!leaked(), "%s: memory leaked after a failure (LeakSanitizer's report above)", what);
    printf("%s: %ld allocation failure points (%ld of them in cJSON)\n", what, n - 1, in_json);
    fflush(stdout); /* in order with the FAIL lines, and kept if LeakSanitizer ends the run */
    return n - 1;
}

static const gsq_vit_config tiny = {
    .img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 4, .embed_dim = 24, .depth = 2,
    .num_heads = 3, .mlp_hidden = 48, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN,
    .ln_eps = 1e-6f,
};

static char *const class_names[] = {"ant", "bee", "cat", "dog", "eel"};

/* What output pointers hold before a call: a failure must replace it with NULL. */
static char unset_mark;
#define UNSET ((void *)&unset_mark)

static gsq_status load_vit(void *path, gsq_error *err)
{
    gsq_model *m = UNSET;
    gsq_status st = gsq_vit_load(&m, path, NULL, err);
    CHECK(st == GSQ_OK ? m && m != UNSET : !m, "gsq_vit_load: %s with model %p",
          gsq_status_name(st), (void *)m);
    if (m != UNSET) gsq_model_free(m);
    return st;
}

static gsq_status load_compressed(void *path, gsq_error *err)
{
    gsq_model *m = UNSET;
    gsq_compressed_info info;
    gsq_status st = gsq_compressed_load(&m, path, &info, err);
    CHECK(st == GSQ_OK ? m && m != UNSET : !m, "gsq_compressed_load: %s with model %p",
          gsq_status_name(st), (void *)m);
    if (m != UNSET) gsq_model_free(m);
    return st;
}

/* The engine straight from the file (gsq_engine_load), the file opened outside the sweep. */
static gsq_status load_engine(void *file, gsq_error *err)
{
    gsq_engine *e = UNSET;
    gsq_status st = gsq_engine_load(&e, file, &(gsq_engine_options){.layout = GSQ_ENGINE_SPARSE, .max_batch = 2, .device = GSQ_ENGINE_CPU}, err);
    CHECK(st == GSQ_OK ? e && e != UNSET : !e, "gsq_engine_load: %s with engine %p", gsq_status_name(st), (void *)e);
    if (e != UNSET) gsq_engine_free(e);
    return st;
}

typedef struct {
    const char *path;
    gsq_train_config cfg;
} resume_ctx;

static gsq_status resume(void *ctx, gsq_error *err)
{
    const resume_ctx *c = ctx;
    gsq_trainer t;
    gsq_status st = gsq_trainer_resume(&t, c->path, &c->cfg, 40, err);
    CHECK(st == GSQ_OK ? t.model && t.opt.m[0] : !t.model && !t.opt.m[0] && !t.opt.v[0] && !t.distiller,
          "gsq_trainer_resume: %s with model %p", gsq_status_name(st), (void *)t.model);
    gsq_trainer_free(&t);
    return st;
}

typedef struct {
    const gsq_model *m;
    gsq_sparse_pattern pattern;
    gsq_engine_layout layout;
} engine_ctx;

static gsq_status create_engine(void *ctx, gsq_error *err)
{
    const engine_ctx *c = ctx;
    gsq_engine *e = UNSET;
    gsq_status st = gsq_engine_create(&e, c->m, &(gsq_engine_options){.layout = c->layout, .max_batch = 2, .device = GSQ_ENGINE_CPU, .pattern = c->pattern}, err);
    CHECK(st == GSQ_OK ? e && e != UNSET : !e, "gsq_engine_create: %s with engine %p",
          gsq_status_name(st), (void *)e);
    if (e != UNSET) gsq_engine_free(e);
    return st;
}

typedef struct {
    const gsq_model *m;
    const char *path;
} export_ctx;

static gsq_status export_onnx(void *ctx, gsq_error *err)
{
    const export_ctx *c = ctx;
    gsq_export_options o;
    gsq_export_options_init(&o);
    o.target = GSQ_EXPORT_ORT;
    return gsq_export_onnx(c->m, &o, c->path, err);
}

static void test_vit_load(const char *dir)
{
    char path[128];
    snprintf(path, sizeof path, "%s/vit.safetensors", dir);
    gsq_error err = {0};
    gsq_model *m = NULL;
    CHECK(gsq_vit_create(&m, &tiny, &err) == GSQ_OK, "%s", err.msg);
    gsq_model_init(m, 1);
    CHECK(gsq_model_set_class_names(m, class_names, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_model_save(m, path, &err) == GSQ_OK, "%s", err.msg);
    gsq_model_free(m);
    CHECK(sweep("gsq_vit_load", load_vit, path) > 0, "no allocation to fail");
    unlink(path);
}

/* A compressed model (calibrated as quantized_model.h makes it), loaded, and the engine built
 * from it in each layout. */
static void test_compressed(const char *dir, gsq_sparse_pattern pattern, gsq_quant_mode mode,
                            int attention)
{
    char path[128], what[128];
    snprintf(path, sizeof path, "%s/%s.gsq.safetensors", dir, gsq_quant_mode_name(mode));
    gsq_error err = {0};
    float x[2 * 3 * 16 * 16];
    gsq_model *q = gsq_test_quantized_model(48, pattern, mode, attention, x, 2);
    CHECK(gsq_model_set_class_names(q, class_names, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_compressed_save(q, pattern, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    gsq_model_free(q);
    snprintf(what, sizeof what, "gsq_compressed_load (%s %s%s)", gsq_quant_mode_name(mode),
             gsq_sparse_pattern_name(pattern), attention ? ", attention" : "");
    CHECK(sweep(what, load_compressed, path) > 0, "no allocation to fail");
    gsq_st_file *f = NULL;
    CHECK(gsq_st_open(&f, path, &err) == GSQ_OK, "%s", err.msg);
    snprintf(what, sizeof what, "gsq_engine_load (%s %s%s)", gsq_quant_mode_name(mode),
             gsq_sparse_pattern_name(pattern), attention ? ", attention" : "");
    if (f) CHECK(sweep(what, load_engine, f) > 0, "no allocation to fail");
    gsq_st_close(f);

    gsq_model *m = NULL;
    CHECK(gsq_compressed_load(&m, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    unlink(path);
    if (!m) return;
    static const gsq_engine_layout layouts[] = {GSQ_ENGINE_SPARSE, GSQ_ENGINE_DENSE};
    for (int i = 0; i < 2; i++) {
        engine_ctx c = {m, pattern, layouts[i]};
        snprintf(what, sizeof what, "gsq_engine_create (%s %s%s, %s, %s)",
                 gsq_quant_mode_name(mode), gsq_sparse_pattern_name(pattern),
                 attention ? ", attention" : "", i ? "dense" : "sparse", gsq_engine_isa());
        CHECK(sweep(what, create_engine, &c) > 0, "no allocation to fail");
    }
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    snprintf(what, sizeof what, "gsq_export_onnx (%s %s%s)", gsq_quant_mode_name(mode), gsq_sparse_pattern_name(pattern),
             attention ? ", attention" : "");
    CHECK(sweep(what, export_onnx, &(export_ctx){m, path}) > 0, "no allocation to fail");
    unlink(path);
    gsq_model_free(m);
}

typedef struct {
    const char *what;
    const int8_t *codes;
    int rows, cols;
    gsq_i8_layout layout;
    int four;
} pack_ctx;

static gsq_status pack_amx(void *ctx, gsq_error *err)
{
    const pack_ctx *c = ctx;
    gsq_i8_owned_weight o;
    gsq_status st =
        gsq_i8_pack(&o, c->codes, c->rows, c->cols, c->layout, c->four, GSQ_I8_ISA_AMX, err);
    CHECK(st == GSQ_OK ? o.codes && o.wsum : !o.codes && !o.meta && !o.wsum,
          "gsq_i8_pack: %s with codes %p", gsq_status_name(st), (void *)o.codes);
    gsq_i8_weight_free(&o);
    return st;
}

/* The AMX packing (int8_pack_amx.c), which the engine uses only on a CPU with AMX: dense INT8,
 * 2:4 INT8 and paired 4:8 INT4, of codes that obey both patterns. */
static void test_pack_amx(void)
{
    enum { ROWS = 40, COLS = 72 };
    static int8_t codes[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++) codes[i] = (int8_t)(i % 8 % 4 < 2 ? 1 + i % 7 : 0);
    static const pack_ctx cases[] = {
        {"gsq_i8_pack (amx, dense int8)", codes, ROWS, COLS, GSQ_I8_DENSE, 0},
        {"gsq_i8_pack (amx, 2:4 int8)", codes, ROWS, COLS, GSQ_I8_SPARSE_2_4, 0},
        {"gsq_i8_pack (amx, 4:8 int4)", codes, ROWS, COLS, GSQ_I8_SPARSE_4_8, 1},
    };
    for (int i = 0; i < 3; i++)
        CHECK(sweep(cases[i].what, pack_amx, (void *)&cases[i]) > 0, "no allocation to fail");
}

/* A checkpoint of a run (distilling from a teacher with_teacher), resumed. */
/* A checkpoint of the tiny model, resumed: with a teacher in the run, or in quantization-aware
 * training (INT4, quantized attention, learned scales: the quantizers come back from the file). */
static void test_resume(const char *dir, int with_teacher, int quantized)
{
    resume_ctx c;
    char path[128];
    snprintf(path, sizeof path, "%s/run.ckpt.safetensors", dir);
    c.path = path;
    gsq_train_defaults(&c.cfg, 16);
    c.cfg.batch_size = 8;
    c.cfg.epochs = 1;
    gsq_distill_defaults(&c.cfg.distill, tiny.depth);
    gsq_error err = {0};
    gsq_model *m = NULL, *teacher = NULL;
    if (with_teacher) CHECK(gsq_vit_create(&teacher, &tiny, &err) == GSQ_OK, "%s", err.msg);
    c.cfg.teacher = teacher;
    CHECK(gsq_vit_create(&m, &tiny, &err) == GSQ_OK, "%s", err.msg);
    gsq_model_init(m, 2);
    CHECK(gsq_model_set_class_names(m, class_names, &err) == GSQ_OK, "%s", err.msg);
    if (quantized) {
        float x[2 * 3 * 16 * 16];
        for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)(i % 9) * 0.25f - 1.0f;
        CHECK(gsq_model_quant_enable(m, GSQ_QMODE_INT4, GSQ_CALIB_MAX, &err) == GSQ_OK &&
                  gsq_model_quant_enable_attention(m, &err) == GSQ_OK && gsq_model_quant_enable_lsq(m, 10, &err) == GSQ_OK &&
                  gsq_model_quant_observe_begin(m, 64, &err) == GSQ_OK && gsq_model_forward(m, x, 2, NULL, &err) == GSQ_OK &&
                  gsq_model_quant_observe_end(m, GSQ_CALIB_MAX, 100, &err) == GSQ_OK &&
                  gsq_model_forward(m, x, 2, NULL, &err) == GSQ_OK, /* the learned weight scales are held from here */
              "%s", err.msg);
    }
    gsq_trainer t;
    CHECK(gsq_trainer_init(&t, m, &c.cfg, 40, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_trainer_save(&t, &c.cfg, path, &err) == GSQ_OK, "%s", err.msg);
    gsq_trainer_free(&t);
    const char *what = teacher     ? "gsq_trainer_resume (with a teacher)"
                       : quantized ? "gsq_trainer_resume (quantizers with learned scales)"
                                   : "gsq_trainer_resume";
    CHECK(sweep(what, resume, &c) > 0, "no allocation to fail");
    unlink(path);
    gsq_model_free(teacher);
}

int main(void)
{
    omp_set_num_threads(1); /* one thread: the same allocations in the same order on every run */
    cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = json_malloc, .free_fn = free});
    char dir[] = "/tmp/gsq_test_alloc_fail_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_vit_load(dir);
    test_compressed(dir, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 1);
    test_compressed(dir, GSQ_SPARSE_4_8, GSQ_QMODE_INT4, 0);
    test_pack_amx();
    test_resume(dir, 0, 0);
    test_resume(dir, 1, 0);
    test_resume(dir, 0, 1);
    rmdir(dir);
    return test_finish("test_alloc_fail");
}
