/* Benchmark: forward, forward+backward and whole training-step (forward, loss, backward, AdamW)
 * time per image of named configurations (ViT/DeiT or Swin) on the CPU.
 * usage: bench_vit [--model NAME]... [--batch B] [--threads N] [--iters I] [--json]
 * Reports the median over timed iterations after one warm-up; scripts/bench_vit_vs_pytorch.sh
 * runs it beside bench/bench_pytorch.py and prints the ratios. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/clock.h"
#include "gpusq/kernels.h"
#include "gpusq/optim.h"
#include "gpusq/rng.h"
#include "gpusq/vit.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int bench_model(const char *name, int B, int iters, int json)
{
    gsq_error err = {0};
    gsq_model *m = NULL;
    if (gsq_model_create_named(&m, name, 0, &err) != GSQ_OK) {
        fprintf(stderr, "bench_vit: %s\n", err.msg);
        return 1;
    }
    gsq_model_init(m, 1);
    size_t side = (size_t)gsq_model_input_size(m), img = (size_t)gsq_model_in_chans(m) * side * side;
    float *images = malloc((size_t)B * img * sizeof(float));
    int *targets = malloc((size_t)B * sizeof(int));
    gsq_rng rng;
    gsq_rng_seed(&rng, 2, 0);
    for (size_t i = 0; i < (size_t)B * img; i++) images[i] = gsq_rng_normal(&rng);
    for (int b = 0; b < B; b++) targets[b] = (int)(gsq_rng_u32(&rng) % (uint32_t)gsq_model_num_classes(m));
    gsq_optim_config oc;
    gsq_optim_defaults(&oc);
    oc.total_steps = 1000000;
    gsq_adamw opt;
    gsq_param_block blocks[GSQ_MAX_BLOCKS];
    int nb = gsq_model_zero_grad(m, &err) == GSQ_OK ? gsq_model_blocks(m, blocks) : 0;
    if (!nb || gsq_adamw_init(&opt, blocks, nb, &oc, &err) != GSQ_OK) {
        fprintf(stderr, "bench_vit: %s\n", err.msg);
        return 1;
    }
    double *fwd = malloc((size_t)iters * sizeof(double)), *fb = malloc((size_t)iters * sizeof(double));
    double *train = malloc((size_t)iters * sizeof(double));
    for (int it = -1; it < iters; it++) { /* iteration -1 warms up */
        double t0 = 1e3 * gsq_seconds();
        gsq_model_forward(m, images, B, NULL, &err);
        double t1 = 1e3 * gsq_seconds();
        gsq_model_forward(m, images, B, NULL, &err);
        gsq_model_loss(m, &(gsq_truth){.classes = targets}, 0.1f, NULL, &err);
        gsq_model_zero_grad(m, &err);
        gsq_model_backward(m, &err);
        double t2 = 1e3 * gsq_seconds();
        gsq_adamw_step(&opt, blocks, nb, NULL);
        double t3 = 1e3 * gsq_seconds();
        if (it >= 0) {
            fwd[it] = (t1 - t0) / B;
            fb[it] = (t2 - t1) / B;
            train[it] = (t3 - t1) / B;
        }
    }
    double f = median(fwd, iters), s = median(fb, iters), t = median(train, iters);
    if (json)
        printf("{\"impl\": \"gpusq\", \"model\": \"%s\", \"batch\": %d, \"threads\": %d, "
               "\"forward_ms_per_image\": %.3f, \"fwd_bwd_ms_per_image\": %.3f, \"train_step_ms_per_image\": %.3f}\n",
               name, B, gsq_get_num_threads(), f, s, t);
    else
        printf("gpusq %s batch=%d threads=%d forward_ms_per_image=%.3f fwd_bwd_ms_per_image=%.3f "
               "train_step_ms_per_image=%.3f\n",
               name, B, gsq_get_num_threads(), f, s, t);
    gsq_adamw_free(&opt);
    free(fwd);
    free(fb);
    free(train);
    free(images);
    free(targets);
    gsq_model_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    const char *models[16];
    int n_models = 0, B = 8, threads = 0, iters = 5, json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc && n_models < 16) models[n_models++] = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) B = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) iters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0) json = 1;
        else {
            fprintf(stderr, "usage: bench_vit [--model NAME]... [--batch B] [--threads N] [--iters I] [--json]\n");
            return 2;
        }
    }
    if (B < 1 || iters < 1) {
        fprintf(stderr, "bench_vit: --batch and --iters must be positive\n");
        return 2;
    }
    if (n_models == 0) {
        models[n_models++] = "deit_tiny_patch16_224";
        models[n_models++] = "deit_small_patch16_224";
    }
    gsq_set_num_threads(threads);
    for (int i = 0; i < n_models; i++)
        if (bench_model(models[i], B, iters, json)) return 1;
    return 0;
}
