/* gpusq bench: the speed of one model three ways in one run — a float baseline (on the CPU the
 * float forward in FP32; on CUDA the GPU engine with FP16 cuBLASLt GEMMs), dense INT8 (the engine
 * on dense integer codes) and sparse INT8/INT4 (the engine on the kept codes) — as batch-1 latency
 * and batch-N throughput with ratios, and the engine's time per part of the forward pass. A compressed file is benchmarked as it is; --config NAME builds a
 * randomly initialised model, pruned by magnitude and calibrated on random images (speed only). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpusq/clock.h"
#include "gpusq/compressed.h"
#include "gpusq/engine.h"
#include "gpusq/kernels.h"

typedef struct {
    const char *config;
    gsq_sparse_pattern pattern;
    gsq_quant_mode mode;
    int attention, batch, iters, threads, roofline;
    gsq_engine_device device;
} bench_opts;

#define B(member) offsetof(bench_opts, member)
static const cli_option bench_options[] = {
    {CLI_OPT("--config", "NAME", CLI_STRING, B(config), "random weights in a named configuration (gpusq info --list), "
     "pruned by magnitude and calibrated on random images: for speed, not accuracy")},
    {CLI_OPT("--pattern", "P", CLI_CHOICE, B(pattern), "with --config: 2:4 or 4:8"), .choices = cli_patterns},
    {CLI_OPT("--mode", "M", CLI_CHOICE, B(mode), "with --config: int8, int4 or w4a8"), .choices = cli_modes},
    {CLI_OPT("--attention", NULL, CLI_FLAG, B(attention), "with --config: quantize the attention matmuls too (as gpusq "
     "quantize --attention does), so they run as integer kernels"), .set = 1},
    {CLI_OPT("--device", "D", CLI_CHOICE, B(device), "cpu, or cuda (sm_80 or later)"), .choices = cli_devices},
    {CLI_OPT("--batch", "N", CLI_INT, B(batch), "the throughput batch"), .lo = 1, .hi = 4096},
    {CLI_OPT("--iters", "N", CLI_INT, B(iters), "timed runs per measurement, the median is reported; the three models "
     "take turns, a pass each, so noise falls on all alike"), .lo = 1, .hi = 64},
    {CLI_OPT("--threads", "N", CLI_INT, B(threads), "compute threads"), .lo = 1, .hi = 1024, .shown_default = "all cores"},
    {CLI_OPT("--roofline", NULL, CLI_FLAG, B(roofline), "also measure the machine's int8 peak and memory bandwidth "
     "and set each part of the integer engines' forward pass against them, at batch 1 and batch N (CPU)"), .set = 1},
};
#undef B

static const cli_spec spec = {
    .name = "bench",
    .usage = "MODEL.gsq.safetensors [options]\n--config NAME [--pattern 2:4|4:8] [--mode int8|int4|w4a8] "
    "[--attention] [options]",
    .about = "Latency (batch 1) and throughput (batch N) of a float baseline, dense INT8 and sparse INT8 (or INT4) versions "
    "of one model, and the engine's time per part of the forward pass. The float baseline is the FP32 forward on "
    "the CPU, and the engine with FP16 cuBLASLt GEMMs on CUDA. On CUDA the times include copying the images in "
    "and the logits out.",
    .min_args = 0,
    .max_args = 1,
    .args_what = "",
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define VARIANTS 3 /* the float baseline (on the CPU the float model: engine NULL), dense and sparse engines */

/* The median seconds of iters forward passes of batch B for each variant (after one warm-up each),
 * taken in turns — one pass of every variant, then the next round — so that a slow spell of a
 * shared machine falls on all of them alike. */
static gsq_status time_forward(gsq_engine *const e[VARIANTS], gsq_model *m, const float *images, int B, int iters,
                               double median[VARIANTS], gsq_error *err)
{
    double t[VARIANTS][64];
    const float *logits;
    gsq_status st = GSQ_OK;
    for (int i = -1; i < iters && st == GSQ_OK; i++)
        for (int v = 0; v < VARIANTS && st == GSQ_OK; v++) {
            double t0 = gsq_seconds();
            st = e[v] ? gsq_engine_forward(e[v], images, B, &logits, err) : gsq_model_infer(m, images, B, &logits, err);
            if (i >= 0) t[v][i] = gsq_seconds() - t0;
            if (i == -1 && e[v]) gsq_engine_reset_times(e[v]); /* the per-part table counts the timed runs */
        }
    for (int v = 0; v < VARIANTS && st == GSQ_OK; v++) {
        qsort(t[v], (size_t)iters, sizeof t[v][0], cmp_double);
        median[v] = t[v][iters / 2];
    }
    return st;
}

/* m (a named configuration's, zeroed) with random weights, pruned to pattern and quantized in mode,
 * calibrated on images. */
static gsq_status random_model(gsq_model *m, gsq_sparse_pattern pattern, gsq_quant_mode mode, int attention,
                               const float *images, int B, gsq_error *err)
{
    gsq_sparse_plan plan = {0};
    gsq_model_init(m, 0);
    gsq_status st = gsq_sparse_plan_magnitude(&plan, m, pattern, 0, err);
    if (st == GSQ_OK) gsq_sparse_apply(&plan, gsq_model_params(m));
    gsq_sparse_plan_free(&plan);
    if (st == GSQ_OK) st = gsq_model_quant_enable(m, mode, GSQ_CALIB_MAX, err);
    if (st == GSQ_OK && attention) st = gsq_model_quant_enable_attention(m, err);
    if (st == GSQ_OK) st = gsq_model_quant_observe_begin(m, 1 << 16, err);
    if (st == GSQ_OK) st = gsq_model_forward(m, images, B, NULL, err);
    if (st == GSQ_OK) st = gsq_model_quant_observe_end(m, GSQ_CALIB_MAX, 100.0f, err);
    return st;
}

/* Each part of e's forward pass at batch B (times: seconds of iters passes) against the ceilings c:
 * its rates, its intensity, the limit that intensity puts it under (the peak, or the bandwidth
 * times the intensity) and the fraction of that limit it reaches. */
static void print_roofline(const char *title, const gsq_engine *e, const double *times, int iters, int B,
                           const gsq_engine_ceilings *c)
{
    printf("\n%s, batch %d: roofline (int8 peak %.0f GMAC/s, read bandwidth %.1f GB/s, ridge %.0f MAC/byte)\n"
           "| part | ms | GMAC/s | of peak | GB/s | of bandwidth | MAC/byte | bound by | of its bound |\n"
           "|---|---|---|---|---|---|---|---|---|\n",
           title, B, c->macs_per_second / 1e9, c->bytes_per_second / 1e9, c->macs_per_second / c->bytes_per_second);
    for (int p = 0; p < gsq_engine_parts(e); p++) {
        double macs, bytes, t = times[p] / iters;
        gsq_engine_part_work(e, p, B, &macs, &bytes);
        if (!(t > 0)) continue;
        double mps = macs / t, bps = bytes / t, intensity = bytes > 0 ? macs / bytes : 0;
        int compute = macs > 0 && c->macs_per_second < c->bytes_per_second * intensity;
        double of_bound = compute ? mps / c->macs_per_second : bps / c->bytes_per_second;
        printf("| %s | %.3f | %.1f | %.1f%% | %.2f | %.1f%% | %.1f | %s | %.1f%% |\n", gsq_engine_part_name(e, p), 1e3 * t,
               mps / 1e9, 100 * mps / c->macs_per_second, bps / 1e9, 100 * bps / c->bytes_per_second, intensity,
               compute ? "compute" : "memory", 100 * of_bound);
    }
}

static void print_parts(const char *title, const gsq_engine *e, int iters, int B)
{
    const double *t = gsq_engine_times(e);
    double total = 0;
    for (int p = 0; p < gsq_engine_parts(e); p++) total += t[p];
    printf("\n%s, batch %d: time per forward pass by part\n", title, B);
    for (int p = 0; p < gsq_engine_parts(e); p++)
        if (t[p] > 0) printf("  %-18s %9.3f ms  %5.1f%%\n", gsq_engine_part_name(e, p), 1e3 * t[p] / iters,
                             100 * t[p] / total);
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o = {.pattern = GSQ_SPARSE_2_4, .mode = GSQ_QMODE_INT8, .batch = 32, .iters = 10,
                    .device = GSQ_ENGINE_CPU};
    const cli_group groups[] = {CLI_GROUP("options", bench_options, &o)};
    cli_parsed parsed;
    int code = cli_parse(&spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    const char *path = parsed.num_args ? parsed.args[0] : NULL, *config = o.config;
    int batch = o.batch, iters = o.iters, attention = o.attention;
    gsq_engine_device device = o.device;
    if (!path == !config) return cli_usage_error("bench", "give a compressed MODEL file or --config NAME");
    if (attention && !config)
        return cli_usage_error("bench", "--attention is for --config (a file says whether it quantized attention)");
    if (o.roofline && device != GSQ_ENGINE_CPU)
        return cli_usage_error("bench", "--roofline measures the CPU engine (no --device cuda)");
    if (o.threads) gsq_set_num_threads(o.threads);
    gsq_error err = {0};
    gsq_compressed_info info = {0};
    gsq_model *m = NULL;
    float *images = NULL;
    gsq_status st = GSQ_OK;
    if (config) {
        st = gsq_model_create_named(&m, config, 0, &err);
        info.pattern = o.pattern;
        info.mode = o.mode;
    } else {
        st = gsq_compressed_load(&m, path, &info, &err);
    }
    size_t side = m ? (size_t)gsq_model_input_size(m) : 0, per_image = m ? gsq_model_in_chans(m) * side * side : 0;
    if (st == GSQ_OK && !(images = malloc((size_t)batch * per_image * sizeof(float))))
        st = gsq_fail(&err, GSQ_ERR_NOMEM, "out of memory for a batch of %d", batch);
    if (st == GSQ_OK) {
        gsq_rng rng;
        gsq_rng_seed(&rng, 1, 0);
        for (size_t i = 0; i < (size_t)batch * per_image; i++) images[i] = gsq_rng_normal(&rng);
    }
    if (st == GSQ_OK && config)
        st = random_model(m, info.pattern, info.mode, attention, images, batch < 8 ? batch : 8, &err);
    gsq_engine *sparse = NULL, *dense = NULL, *fp16 = NULL;
    gsq_engine_options eo = {.layout = GSQ_ENGINE_SPARSE, .max_batch = batch, .device = device, .pattern = info.pattern};
    if (st == GSQ_OK) st = gsq_engine_create(&sparse, m, &eo, &err);
    eo.layout = GSQ_ENGINE_DENSE;
    if (st == GSQ_OK) st = gsq_engine_create(&dense, m, &eo, &err);
    eo.layout = GSQ_ENGINE_FP16;
    if (st == GSQ_OK && device == GSQ_ENGINE_CUDA)
        st = gsq_engine_create(&fp16, m, &eo, &err);
    int att_quantized = st == GSQ_OK && gsq_model_quant_attention_scales(m, 0) != NULL;
    if (st == GSQ_OK) gsq_model_quant_disable(m); /* m is now the float model of the same weights */
    if (st != GSQ_OK) {
        free(images);
        gsq_model_free(m);
        gsq_engine_free(sparse);
        gsq_engine_free(dense);
        gsq_engine_free(fp16);
        return cli_report("bench", &err);
    }
    char sparse_name[48];
    snprintf(sparse_name, sizeof sparse_name, "%s %s", gsq_sparse_pattern_name(info.pattern), gsq_quant_mode_name(info.mode));
    char dense_name[48];
    snprintf(dense_name, sizeof dense_name, "dense %s", gsq_quant_mode_name(info.mode));
    const char *base = fp16 ? "FP16" : "FP32";
    const char *names[VARIANTS] = {fp16 ? "dense FP16 (cuBLASLt)" : "dense FP32", dense_name, sparse_name};
    gsq_engine *engines[VARIANTS] = {fp16, dense, sparse};
    double lat[VARIANTS] = {0}, thr[VARIANTS] = {0};
    char where[300];
    cli_engine_where(device, where, sizeof where);
    printf("%s: %s, attention %s, engine %s, ", path ? path : config, sparse_name,
           att_quantized ? "quantized" : "float", where);
    if (fp16) printf("float baseline the FP16 engine; median of %d runs\n", iters);
    else printf("%d threads, FP32 GEMM %s; median of %d runs\n", gsq_get_num_threads(), gsq_blas_name(), iters);
    printf("GEMM weights in memory: dense INT8 layout %.2f MB, sparse layout %.2f MB (%d linears sparse)\n",
           gsq_engine_weight_bytes(dense) / 1e6, gsq_engine_weight_bytes(sparse) / 1e6, gsq_engine_sparse_linears(sparse));
    double *parts1[VARIANTS] = {NULL}; /* with --roofline: the batch-1 times per part */
    if (st == GSQ_OK) st = time_forward(engines, m, images, 1, iters, lat, &err);
    for (int v = 1; st == GSQ_OK && o.roofline && v < VARIANTS; v++) {
        size_t n = (size_t)gsq_engine_parts(engines[v]);
        if (!(parts1[v] = malloc(n * sizeof(double)))) st = gsq_fail(&err, GSQ_ERR_NOMEM, "out of memory");
        else memcpy(parts1[v], gsq_engine_times(engines[v]), n * sizeof(double));
    }
    if (st == GSQ_OK) st = time_forward(engines, m, images, batch, iters, thr, &err);
    gsq_engine_ceilings ceil = {0};
    if (st == GSQ_OK && o.roofline) st = gsq_engine_measure_ceilings(o.threads, &ceil, &err);
    if (st == GSQ_OK) {
        printf("\n| model | batch 1 latency | vs %s | batch %d throughput | vs %s | vs dense |\n"
               "|---|---|---|---|---|---|\n", base, batch, base);
        for (int v = 0; v < VARIANTS; v++)
            printf("| %s | %.2f ms | %.2f× | %.1f img/s | %.2f× | %.2f× |\n", names[v], 1e3 * lat[v], lat[0] / lat[v],
                   batch / thr[v], thr[0] / thr[v], thr[1] / thr[v]);
        print_parts(names[1], dense, iters, batch);
        print_parts(names[2], sparse, iters, batch);
        for (int v = 1; o.roofline && v < VARIANTS; v++) {
            print_roofline(names[v], engines[v], parts1[v], iters, 1, &ceil);
            print_roofline(names[v], engines[v], gsq_engine_times(engines[v]), iters, batch, &ceil);
        }
    }
    free(images);
    for (int v = 0; v < VARIANTS; v++) free(parts1[v]);
    gsq_model_free(m);
    gsq_engine_free(sparse);
    gsq_engine_free(dense);
    gsq_engine_free(fp16);
    return st == GSQ_OK ? 0 : cli_report("bench", &err);
}
