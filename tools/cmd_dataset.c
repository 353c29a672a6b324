/* gpusq dataset: writes a built-in synthetic set in the layout gpusq reads a user's data in, the
 * segmentation set in the ADE20K layout (DIR/images/{training,validation}/NAME.jpg,
 * DIR/annotations/{training,validation}/NAME.png) or the detection set in the COCO layout
 * (DIR/{train2017,val2017}/NAME.jpg, DIR/annotations/instances_{train2017,val2017}.json): a worked
 * example of it, and data to try the commands on. */
#include <stddef.h>
#include <stdio.h>

#include "cli.h"

typedef struct {
    const char *out;
    int set; /* its index in sets and layouts */
    size_t train_size, val_size;
    int resolution, seed;
} dataset_opts;

static const cli_choice sets[] = {
    {"synthetic-segment", 0},
    {"synthetic-detect", 1},
    {NULL, 0},
};

#define D(member) offsetof(dataset_opts, member)
static const cli_option options[] = {
    {CLI_OPT("--data", "SET", CLI_CHOICE, D(set), "synthetic-segment (ADE20K layout) or synthetic-detect (COCO "
     "layout)"), .choices = sets},
    {CLI_OPT("--out", "DIR", CLI_STRING, D(out), "the dataset's root")},
    {CLI_OPT("--train-size", "N", CLI_SIZE, D(train_size), "training samples"), .lo = 1, .hi = 1 << 24},
    {CLI_OPT("--val-size", "N", CLI_SIZE, D(val_size), "validation samples"), .lo = 1, .hi = 1 << 24},
    {CLI_OPT("--resolution", "N", CLI_INT, D(resolution), "image side in pixels (synthetic-detect: 32 or more)"),
     .lo = 8, .hi = 4096},
    {CLI_OPT("--seed", "N", CLI_INT, D(seed), "the scenes' seed"), .lo = 0, .hi = 1 << 30},
};
#undef D

static const cli_spec spec = {
    .name = "dataset",
    .usage = "--out DIR [--data SET] [--train-size N] [--val-size N] [--resolution N] [--seed N]",
    .about = "Writes a synthetic set in the layout of your own data. synthetic-segment (shapes over textured "
    "backgrounds, 6 classes, a thin ignored band along every boundary) in the ADE20K layout: JPEG images and 8-bit PNG "
    "annotations (0 ignored, class k as k + 1); read it back with --data ade20k:DIR --num-classes 6. synthetic-detect "
    "(1 to 6 shapes of 5 classes over textured backgrounds) in the COCO layout: JPEG images in DIR/train2017 and "
    "DIR/val2017, their boxes in DIR/annotations/instances_train2017.json and instances_val2017.json; read it back "
    "with --data coco:DIR.",
};

/* Each of sets' synthetic set, how it is written, its splits' names and where a split goes (a
 * format of the root, the split, the root and the split). */
typedef struct {
    gsq_status (*open)(gsq_dataset **out, size_t size, int resolution, uint64_t seed, int split, gsq_error *err);
    gsq_status (*write)(gsq_dataset *ds, const char *root, const char *split, gsq_error *err);
    const char *splits[2];
    const char *where;
} layout;

static const layout layouts[] = {
    {gsq_dataset_synthetic_segment, gsq_dataset_write_ade20k, {"training", "validation"},
     "%s/images/%s and %s/annotations/%s"},
    {gsq_dataset_synthetic_detect, gsq_dataset_write_coco, {"train2017", "val2017"},
     "%s/%s and %s/annotations/instances_%s.json"},
};

int cmd_dataset(int argc, char **argv)
{
    dataset_opts o = {.out = NULL, .set = 0, .train_size = 2000, .val_size = 500, .resolution = 64};
    const cli_group groups[] = {CLI_GROUP("dataset", options, &o)};
    cli_parsed parsed;
    int code = cli_parse(&spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    if (!o.out) return cli_usage_error("dataset", "give the dataset's root with --out DIR");
    const layout *l = &layouts[o.set];
    gsq_error err = {0};
    const size_t sizes[2] = {o.train_size, o.val_size};
    for (int s = 0; s < 2; s++) {
        gsq_dataset *ds = NULL;
        gsq_status st = l->open(&ds, sizes[s], o.resolution, (uint64_t)o.seed, s, &err);
        if (st == GSQ_OK) st = l->write(ds, o.out, l->splits[s], &err);
        gsq_dataset_free(ds);
        if (st != GSQ_OK) return cli_report("dataset", &err);
        char where[8192];
        snprintf(where, sizeof where, l->where, o.out, l->splits[s], o.out, l->splits[s]);
        printf("%zu %s samples in %s\n", sizes[s], l->splits[s], where);
    }
    return 0;
}
