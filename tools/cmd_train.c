/* gpusq train: train a ViT/DeiT or Swin from scratch (a named configuration) or fine-tune one
 * (weights), a classifier or a segmenter as the data says, with checkpoints, resume and Ctrl-C
 * handling. */
#include <stddef.h>
#include <stdio.h>

#include "cli.h"
#include "gpusq/safetensors.h"

typedef struct {
    const char *model_name, *weights, *resume;
    int num_classes;
    int seg_head; /* a gsq_seg_head, or -1: not given */
    gsq_det_head det;
} train_model_opts;

static const cli_choice seg_heads[] = {{"linear", GSQ_SEG_HEAD_LINEAR}, {"mask", GSQ_SEG_HEAD_MASK}, {NULL, 0}};

#define M(member) offsetof(train_model_opts, member)
static const cli_option model_options[] = {
    {CLI_OPT("--model", "NAME", CLI_STRING, M(model_name), "a named configuration, initialised from --seed (gpusq info "
     "--list)")},
    {CLI_OPT("--num-classes", "K", CLI_INT, M(num_classes), "the number of classes of a model made here (--model, or a segmenter from a classifier's --weights) and of an ADE20K layout's annotations"), .lo = 1, .hi = 1 << 20,
     .shown_default = "the dataset's"},
    {CLI_OPT("--weights", "FILE", CLI_STRING, M(weights), "fine-tune these timm weights")},
    {CLI_OPT("--resume", "FILE", CLI_STRING, M(resume), "continue the run that wrote this checkpoint (same options)")},
    {CLI_OPT("--seg-head", "H", CLI_CHOICE, M(seg_head), "the decode head of a segmenter made for segmentation data: "
     "linear (decode_head.cls) or mask (Segmenter's mask transformer); given, it also replaces the other head of "
     "--weights"), .choices = seg_heads, .shown_default = "linear"},
    {CLI_OPT("--queries", "Q", CLI_INT, M(det.queries), "a detector's object queries: the most objects it finds in "
     "an image"), .lo = 1, .hi = 1000},
    {CLI_OPT("--decoder-layers", "L", CLI_INT, M(det.layers), "a detector's decoder layers"), .lo = 1, .hi = 32},
};
#undef M

static const cli_spec spec = {
    .name = "train",
    .usage = "(--model NAME | --weights FILE | --resume CHECKPOINT) [options]",
    .about = "Trains a ViT/DeiT or Swin on the CPU and writes the trained weights (timm names, safetensors). Synthetic "
    "images are made at the model's input size and used without resizing or cropping (crop_pct 1); other data gets "
    "timm's eval transform (crop_pct 0.875) for validation.\n\nSegmentation data (synthetic-segment, ade20k:DIR) "
    "trains a segmenter: the backbone of --model or of a classifier's --weights with a new decode head over its "
    "patch tokens (--seg-head).\n\nDetection data (synthetic-detect, coco:DIR) trains a detector: the backbone with "
    "DETR's decoder of --queries object queries and --decoder-layers layers (docs/DETECTION.md).",
};

int cmd_train(int argc, char **argv)
{
    train_model_opts t0 = {.seg_head = -1, .det = {GSQ_DETECT_QUERIES, GSQ_DETECT_LAYERS}};
    cli_train_opts o;
    cli_train_opts_init(&o, "model.safetensors");
    cli_model_hints hints = {0}; /* for --weights */
    const cli_group groups[] = {CLI_GROUP("model", model_options, &t0), cli_model_group(&hints),
                                cli_data_group(&o, "data", NULL), cli_training_group(&o, "training", NULL),
                                cli_output_group(&o)};
    cli_parsed parsed;
    int code = cli_parse(&spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    const char *model_name = t0.model_name, *weights = t0.weights, *resume = t0.resume;
    int num_classes = t0.num_classes;
    if ((model_name != NULL) + (weights != NULL) + (resume != NULL) != 1)
        return cli_usage_error("train", "give exactly one of --model, --weights and --resume");

    gsq_error err = {0};
    if (cli_train_outputs(&o, NULL, &err) != GSQ_OK) return cli_report("train", &err);
    gsq_model *m = NULL;
    if (model_name && cli_create_named(model_name, num_classes, hints.input_size, &m, &err) != GSQ_OK)
        return cli_report("train", &err);
    if (weights && cli_load_weights(weights, &hints, &m, &err) != GSQ_OK) return cli_report("train", &err);
    int input_size = m ? gsq_model_input_size(m) : 0;
    int segmenter_classes = m && gsq_model_task(m) == GSQ_TASK_SEGMENT ? gsq_model_num_classes(m) : 0;
    if (resume) { /* the checkpoint's model decides the input size */
        gsq_st_file *f = NULL;
        gsq_model *described = NULL;
        gsq_status st = gsq_st_open(&f, resume, &err);
        if (st == GSQ_OK) st = gsq_model_describe_meta(&described, f, &err);
        if (st == GSQ_OK) input_size = gsq_model_input_size(described);
        if (st == GSQ_OK && gsq_model_task(described) == GSQ_TASK_SEGMENT)
            segmenter_classes = gsq_model_num_classes(described);
        gsq_model_free(described);
        gsq_st_close(f);
        if (st != GSQ_OK) return cli_report("train", &err);
    }
    cli_train_opts_apply(&o, input_size, num_classes ? num_classes : segmenter_classes);
    gsq_dataset *train = NULL, *val = NULL;
    if (cli_open_data(o.data, &o.sizes, &train, &val, &err) != GSQ_OK) {
        gsq_model_free(m);
        return cli_report("train", &err);
    }
    if (model_name && !num_classes) { /* as many classes as the data has */
        gsq_model_free(m);
        cli_create_named(model_name, train->num_classes, hints.input_size, &m, &err);
    }
    if (model_name && m) gsq_model_init(m, (uint64_t)o.seed);
    o.cfg.val = val;

    gsq_trainer t = {0};
    gsq_status st = err.code;
    gsq_seg_head head = t0.seg_head >= 0 ? (gsq_seg_head)t0.seg_head : GSQ_SEG_HEAD_LINEAR;
    int segment = train->task == GSQ_TASK_SEGMENT;
    int other_head = m && segment && t0.seg_head >= 0 && gsq_model_seg_head(m) != head;
    gsq_task_head task_head = {train->task, head, t0.det};
    if (st == GSQ_OK && m && (gsq_model_task(m) != train->task || other_head)) { /* a backbone with a new head */
        gsq_model *converted = NULL;
        int copied = 0, classes = num_classes ? num_classes : train->num_classes;
        char what[48] = "";
        if (segment) snprintf(what, sizeof what, " (a %s decode head)", gsq_seg_head_name(head));
        if (train->task == GSQ_TASK_DETECT)
            snprintf(what, sizeof what, " (%d queries, %d decoder layers)", t0.det.queries, t0.det.layers);
        st = gsq_model_for_task(&converted, m, &task_head, classes, (uint64_t)o.seed, &copied, &err);
        if (st == GSQ_OK && cli_writes())
            printf("a %s model of %d classes from %s: %d tensors of its backbone copied, the rest initialised%s\n",
                   gsq_task_name(train->task), classes, model_name ? model_name : weights, copied, what);
        gsq_model_free(m);
        m = converted;
    }
    if (st == GSQ_OK && m && gsq_model_num_classes(m) != train->num_classes)
        st = gsq_fail(&err, GSQ_ERR_SHAPE, "the model has %d classes but %s has %d", gsq_model_num_classes(m),
                      train->name, train->num_classes);
    if (st == GSQ_OK && train->class_names && m) st = gsq_model_set_class_names(m, train->class_names, &err);
    if (st == GSQ_OK) {
        if (resume) st = gsq_trainer_resume(&t, resume, &o.cfg, train->size, &err);
        else st = gsq_trainer_init(&t, m, &o.cfg, train->size, &err);
        m = NULL; /* owned by the trainer now (or freed with it on failure) */
    }
    gsq_train_result res = {0};
    if (st == GSQ_OK)
        st = cli_train_run(&o, &t, train, model_name ? model_name : (weights ? weights : resume), &res, &err);
    if (st == GSQ_OK && res.finished && cli_writes()) { /* rank 0 writes for all */
        st = gsq_model_save(t.model, o.out, &err);
        if (st == GSQ_OK) printf("weights in %s\n", o.out);
        cli_train_final_checkpoint("train", &o, &t, st == GSQ_OK);
    }
    gsq_trainer_free(&t);
    gsq_model_free(m);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (res.interrupted ? 130 : 0) : cli_report("train", &err);
}
