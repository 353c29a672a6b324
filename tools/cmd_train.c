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

int cmd_train(int argc, char **argv)
{
    const char *model_name = NULL, *weights = NULL, *resume = NULL;
    int num_classes = 0;
    cli_train_opts o;
    cli_train_opts_init(&o, "model.safetensors");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            printf("%s%s%s", help, cli_train_help, defaults);
            return 0;
        }
        int taken = cli_train_option(&o, "train", argc, argv, &i);
        if (taken < 0) return 2;
        if (taken) continue;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--model") == 0 && v) model_name = argv[++i];
        else if (strcmp(a, "--weights") == 0 && v) weights = argv[++i];
        else if (strcmp(a, "--resume") == 0 && v) resume = argv[++i];
        else if (strcmp(a, "--num-classes") == 0) {
            if (!v || !cli_parse_int(v, 1, 1 << 20, &num_classes))
                return cli_usage_error("train", "--num-classes needs a valid value%s%s", v ? ", got " : "", v ? v : "");
            i++;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--weights") || !strcmp(a, "--resume"))
            return cli_usage_error("train", "%s needs a value", a);
        else return cli_usage_error("train", "unknown option '%s'", a);
    }
    if ((model_name != NULL) + (weights != NULL) + (resume != NULL) != 1)
        return cli_usage_error("train", "give exactly one of --model, --weights and --resume");

    gsq_error err = {0};
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
    }
    gsq_trainer_free(&t);
    gsq_vit_free(m);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (res.interrupted ? 130 : 0) : cli_report("train", &err);
}
