/* gpusq train: train a ViT/DeiT from scratch (a named configuration) or fine-tune one (weights),
 * on synthetic, CIFAR or ImageFolder data, with checkpoints, resume and Ctrl-C handling. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gpusq/safetensors.h"

static const char *help =
    "usage: gpusq train (--model NAME | --weights FILE | --resume CHECKPOINT) [options]\n\n"
    "Trains a ViT/DeiT on the CPU and writes the trained weights (timm names, safetensors).\n\n"
    "model:\n"
    "  --model NAME        a named configuration, initialised from --seed (gpusq info --list)\n"
    "  --num-classes K     with --model: the number of classes (default: the dataset's)\n"
    "  --weights FILE      fine-tune these timm weights\n"
    "  --resume FILE       continue the run that wrote this checkpoint (same options)\n";
static const char *defaults =
    "defaults: --epochs 10 --batch 64 --lr 1e-3 --warmup-epochs 1 --smoothing 0.1, augmentation on,\n"
    "--out model.safetensors\n";

typedef struct {
    const char *model_name, *weights, *resume;
    int num_classes;
} train_model_opts;

/* train's own options (cli_own_option): where the model comes from. */
static int model_option(void *ctx, int argc, char **argv, int *i)
{
    train_model_opts *t = ctx;
    const char *a = argv[*i];
    const char **dst = !strcmp(a, "--model") ? &t->model_name : !strcmp(a, "--weights") ? &t->weights
                     : !strcmp(a, "--resume") ? &t->resume : NULL;
    if (dst) return cli_string_option("train", argc, argv, i, dst);
    if (!strcmp(a, "--num-classes")) return cli_int_option("train", argc, argv, i, 1, 1 << 20, &t->num_classes);
    return 0;
}

int cmd_train(int argc, char **argv)
{
    train_model_opts t0 = {0};
    cli_train_opts o;
    cli_train_opts_init(&o, "model.safetensors");
    int code = cli_parse_command(&o, "train", argc, argv, model_option, &t0, help, defaults);
    if (code >= 0) return code;
    const char *model_name = t0.model_name, *weights = t0.weights, *resume = t0.resume;
    int num_classes = t0.num_classes;
    if ((model_name != NULL) + (weights != NULL) + (resume != NULL) != 1)
        return cli_usage_error("train", "give exactly one of --model, --weights and --resume");

    gsq_error err = {0};
    if (cli_train_outputs(&o, NULL, &err) != GSQ_OK) return cli_report("train", &err);
    gsq_vit_config mc;
    gsq_vit *m = NULL;
    if (model_name && gsq_vit_config_by_name(model_name, &mc, &err) != GSQ_OK) return cli_report("train", &err);
    if (weights && gsq_vit_load(&m, weights, NULL, &err) != GSQ_OK) return cli_report("train", &err);
    if (m) mc = m->cfg;
    if (resume) { /* the checkpoint's model decides the input size */
        gsq_st_file *f = NULL;
        gsq_status st = gsq_st_open(&f, resume, &err);
        if (st == GSQ_OK) st = gsq_vit_infer_config(f, 0, &mc, &err);
        gsq_st_close(f);
        if (st != GSQ_OK) return cli_report("train", &err);
    }
    cli_train_opts_apply(&o, mc.img_size);
    gsq_dataset *train = NULL, *val = NULL;
    if (cli_open_data(o.data, &o.sizes, &train, &val, &err) != GSQ_OK) {
        gsq_vit_free(m);
        return cli_report("train", &err);
    }
    if (model_name) {
        mc.num_classes = num_classes ? num_classes : train->num_classes;
        if (gsq_vit_create(&m, &mc, &err) == GSQ_OK) gsq_vit_init(m, (uint64_t)o.seed);
    }
    o.cfg.val = val;

    gsq_trainer t = {0};
    gsq_status st = err.code;
    if (st == GSQ_OK && m && mc.num_classes != train->num_classes)
        st = gsq_fail(&err, GSQ_ERR_SHAPE, "the model has %d classes but %s has %d", mc.num_classes, train->name,
                      train->num_classes);
    if (st == GSQ_OK && train->class_names && m) st = gsq_vit_set_class_names(m, train->class_names, &err);
    if (st == GSQ_OK) {
        if (resume) st = gsq_trainer_resume(&t, resume, &o.cfg, train->size, &err);
        else st = gsq_trainer_init(&t, m, &o.cfg, train->size, &err);
        m = NULL; /* owned by the trainer now (or freed with it on failure) */
    }
    gsq_train_result res = {0};
    if (st == GSQ_OK)
        st = cli_train_run(&o, &t, train, model_name ? model_name : (weights ? weights : resume), &res, &err);
    if (st == GSQ_OK && res.finished) {
        st = gsq_vit_save(t.model, o.out, &err);
        if (st == GSQ_OK) printf("weights in %s\n", o.out);
        cli_train_final_checkpoint("train", &o, &t, st == GSQ_OK);
    }
    gsq_trainer_free(&t);
    gsq_vit_free(m);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (res.interrupted ? 130 : 0) : cli_report("train", &err);
}
