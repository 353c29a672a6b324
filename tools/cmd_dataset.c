/* gpusq dataset: writes the built-in synthetic segmentation set in the ADE20K layout
 * (DIR/images/{training,validation}/NAME.jpg, DIR/annotations/{training,validation}/NAME.png), the layout
 * gpusq reads a user's label maps in: a worked example of it, and data to try the commands on. */
#include <stddef.h>
#include <stdio.h>

#include "cli.h"

typedef struct {
    const char *out;
    size_t train_size, val_size;
    int resolution, seed;
} dataset_opts;

#define D(member) offsetof(dataset_opts, member)
static const cli_option options[] = {
    {CLI_OPT("--out", "DIR", CLI_STRING, D(out), "the dataset's root")},
    {CLI_OPT("--train-size", "N", CLI_SIZE, D(train_size), "training samples"), .lo = 1, .hi = 1 << 24},
    {CLI_OPT("--val-size", "N", CLI_SIZE, D(val_size), "validation samples"), .lo = 1, .hi = 1 << 24},
    {CLI_OPT("--resolution", "N", CLI_INT, D(resolution), "image side in pixels"), .lo = 8, .hi = 4096},
    {CLI_OPT("--seed", "N", CLI_INT, D(seed), "the scenes' seed"), .lo = 0, .hi = 1 << 30},
};
#undef D

static const cli_spec spec = {
    .name = "dataset",
    .usage = "--out DIR [--train-size N] [--val-size N] [--resolution N] [--seed N]",
    .about = "Writes the synthetic segmentation set (shapes over textured backgrounds, 6 classes, a thin ignored band "
    "along every boundary) in the ADE20K layout: JPEG images and 8-bit PNG annotations (0 ignored, class k as k + 1). "
    "Read it back with --data ade20k:DIR --num-classes 6, as your own data in that layout.",
};

int cmd_dataset(int argc, char **argv)
{
    dataset_opts o = {.out = NULL, .train_size = 2000, .val_size = 500, .resolution = 64};
    const cli_group groups[] = {CLI_GROUP("dataset", options, &o)};
    cli_parsed parsed;
    int code = cli_parse(&spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    if (!o.out) return cli_usage_error("dataset", "give the dataset's root with --out DIR");
    gsq_error err = {0};
    const char *splits[2] = {"training", "validation"};
    const size_t sizes[2] = {o.train_size, o.val_size};
    for (int s = 0; s < 2; s++) {
        gsq_dataset *ds = NULL;
        gsq_status st = gsq_dataset_synthetic_segment(&ds, sizes[s], o.resolution, (uint64_t)o.seed, s, &err);
        if (st == GSQ_OK) st = gsq_dataset_write_ade20k(ds, o.out, splits[s], &err);
        gsq_dataset_free(ds);
        if (st != GSQ_OK) return cli_report("dataset", &err);
        printf("%zu %s samples in %s/images/%s and %s/annotations/%s\n", sizes[s], splits[s], o.out, splits[s], o.out,
               splits[s]);
    }
    return 0;
}
