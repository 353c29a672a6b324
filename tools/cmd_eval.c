/* gpusq eval: top-1, top-5 and mean loss of a model on a dataset's validation split. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gpusq/kernels.h"
#include "gpusq/train.h"

static const char *help =
    "usage: gpusq eval MODEL.safetensors [--data SPEC] [options]\n\n"
    "Evaluates a model with timm's eval transform (resize to size/crop_pct, centre crop).\n\n"
    "options:\n"
    "  --data SPEC     synthetic (default), cifar:DIR or folder:DIR (its val/ split, or DIR itself)\n"
    "  --val-size N    synthetic validation samples (default 2000)\n"
    "  --seed N        synthetic dataset seed (default 0)\n"
    "  --heads N       attention heads when the file does not say\n"
    "  --batch N (64)  --workers N (1)  --threads N\n";

int cmd_eval(int argc, char **argv)
{
    const char *path = NULL, *data = "synthetic";
    cli_data_sizes sizes = {.train_size = 1, .val_size = 2000};
    int batch = 64, workers = 1, threads = 0, heads = 0, seed = 0, n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int ok = 1;
        if (cli_is_help(a)) {
            fputs(help, stdout);
            return 0;
        } else if (strcmp(a, "--data") == 0) {
            ok = (data = i + 1 < argc ? argv[++i] : NULL) != NULL;
        } else if (a[0] == '-' && i + 1 < argc) {
            struct { const char *flag; int lo, hi; int *dst; } ints[] = {
                {"--batch", 1, 1 << 16, &batch}, {"--workers", 1, 64, &workers}, {"--threads", 1, 1024, &threads},
                {"--heads", 1, 4096, &heads}, {"--seed", 0, 1 << 30, &seed}, {"--val-size", 1, 1 << 30, &n},
            };
            ok = 0;
            for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
                if (strcmp(a, ints[k].flag) == 0) ok = cli_parse_int(argv[++i], ints[k].lo, ints[k].hi, ints[k].dst) ? 1 : -1;
            if (ok == 0) return cli_usage_error("eval", "unknown option '%s'", a);
            if (ok < 0) return cli_usage_error("eval", "%s needs a valid value, got '%s'", a, argv[i]);
        } else if (a[0] == '-') {
            return cli_usage_error("eval", "unknown or incomplete option '%s'", a);
        } else if (!path) {
            path = a;
        } else {
            return cli_usage_error("eval", "one model at a time ('%s' and '%s')", path, a);
        }
        if (!ok) return cli_usage_error("eval", "%s needs a value", a);
    }
    if (!path) return cli_usage_error("eval", "give a MODEL.safetensors");
    if (n) sizes.val_size = (size_t)n;
    sizes.seed = (uint64_t)seed;
    if (threads) gsq_set_num_threads(threads);

    gsq_error err = {0};
    gsq_vit *m = NULL;
    gsq_status st = cli_load_model(path, heads, &m, NULL, &err);
    if (st != GSQ_OK) return cli_report("eval", &err);
    const gsq_vit_config cfg = m->cfg;
    sizes.resolution = cfg.img_size;
    gsq_dataset *train = NULL, *val = NULL;
    st = cli_open_data(data, &sizes, &train, &val, &err);
    gsq_dataset *ds = val ? val : train;
    if (st == GSQ_OK && ds->num_classes != cfg.num_classes)
        st = gsq_fail(&err, GSQ_ERR_SHAPE, "%s has %d classes but %s has %d", path, cfg.num_classes, ds->name,
                      ds->num_classes);
    gsq_transform t;
    gsq_transform_defaults(&t, cfg.img_size);
    if (strcmp(data, "synthetic") == 0) t.crop_pct = 1.0f; /* drawn at the input size, as in training */
    gsq_eval_result r;
    if (st == GSQ_OK) st = gsq_evaluate(m, ds, &t, batch, workers, &r, &err);
    if (st == GSQ_OK) {
        printf("%s on %s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%zu images", path, ds->name, 100 * r.top1,
               100 * r.top5, r.loss, r.count);
        printf(r.skipped ? ", %zu skipped: failed to decode)\n" : ")\n", r.skipped);
    }
    gsq_vit_free(m);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? 0 : cli_report("eval", &err);
}
