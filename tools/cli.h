/* Shared pieces of the gpusq command-line program: the subcommand table and option helpers. */
#ifndef GSQ_TOOLS_CLI_H
#define GSQ_TOOLS_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "gpusq/compressed.h"
#include "gpusq/data.h"
#include "gpusq/engine.h"
#include "gpusq/stages.h"
#include "gpusq/status.h"
#include "gpusq/train.h"
#include "options.h"

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} gsq_command;

int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_compress(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_dataset(int argc, char **argv);

/* Sizes of the synthetic datasets' splits (other datasets have their own), and the classes an
 * ADE20K-layout dataset's annotations count (0: CLI_ADE20K_CLASSES, ADE20K's 150). */
typedef struct {
    size_t train_size, val_size;
    int resolution;
    uint64_t seed;
    int classes;
} cli_data_sizes;
#define CLI_ADE20K_CLASSES 150

/* Opens --data SPEC: "synthetic", "cifar:DIR" or "folder:DIR" (DIR/train and DIR/val when
 * present, else DIR as a training set) for classification; "synthetic-segment" or "ade20k:DIR"
 * (DIR/images/training and DIR/images/validation when present, docs/SEGMENTATION.md) for segmentation;
 * *val may come back NULL. cli_data_task says which task a SPEC's data is for. */
gsq_task cli_data_task(const char *spec);
gsq_status cli_open_data(const char *spec, const cli_data_sizes *sizes, gsq_dataset **train,
                         gsq_dataset **val, gsq_error *err);

/* The options gpusq train, prune and quantize share (tools/train_opts.c). */
typedef struct {
    gsq_train_config cfg;
    cli_data_sizes sizes;
    const char *data, *out, *checkpoint, *log_path;
    int threads, seed;
    float scale_min;
    char checkpoint_buf[4096];
} cli_train_opts;
void cli_train_opts_init(cli_train_opts *o, const char *default_out);
/* Their --help sections, over o: data (--data, --train-size, --val-size, --workers), training
 * (--epochs ... --threads), output (--out, --checkpoint, ...) and distillation (--alpha, --beta,
 * --gamma, --temperature, --unsupervised); only (NULL: all) picks some (tools/options.h). */
cli_group cli_data_group(cli_train_opts *o, const char *title, const char *const *only);
cli_group cli_training_group(cli_train_opts *o, const char *title, const char *const *only);
cli_group cli_output_group(cli_train_opts *o);
cli_group cli_distill_group(cli_train_opts *o, const char *const *only);
/* Right after parsing, before any work: decides the checkpoint path (--checkpoint, else beside
 * --out) and checks that --out, the checkpoint, --log and report (may be NULL) can be written,
 * creating missing folders (gsq_output_prepare). */
gsq_status cli_train_outputs(cli_train_opts *o, const char *report, gsq_error *err);
/* After parsing, for a model of img_size and classes (0: unknown): threads, seeds, transforms,
 * the classes of an ADE20K layout. */
void cli_train_opts_apply(cli_train_opts *o, int img_size, int classes);
/* After a finished run has tried to write its results (written: 1 if all were): the run's final
 * checkpoint, when it has one, whatever happened to them, so a full disk at --out still leaves
 * the end state to resume from. Its failure is a warning; the exit status is the results'. */
void cli_train_final_checkpoint(const char *cmd, const cli_train_opts *o, const gsq_trainer *t, int written);
/* Before a run on train (gsq_trainer_run, or a stage that runs one with o->cfg): hooks the
 * progress line, the --log file (appended) and Ctrl-C (checkpoint and stop) into o->cfg and says
 * what is trained. After it, with its status: unhooks them and, when it went well, prints the
 * summary (time, or where it stopped; validation, skipped samples, loader throughput). */
gsq_status cli_train_begin(cli_train_opts *o, gsq_dataset *train, const char *what, gsq_error *err);
void cli_train_end(cli_train_opts *o, const gsq_trainer *t, const gsq_train_result *res, gsq_status st);
/* Both around gsq_trainer_run(t, train, &o->cfg, ...). */
gsq_status cli_train_run(cli_train_opts *o, gsq_trainer *t, gsq_dataset *train, const char *what,
                         gsq_train_result *res, gsq_error *err);

/* The stages as the program runs them, for prune, quantize and compress alike: their options, and
 * a run — the stage between cli_train_begin and cli_train_end; when it finished, its output
 * written to o->out (the stage-1 file, or the compressed model), its report printed and written
 * as JSON (report may be NULL), then its final checkpoint. A stopped run returns GSQ_OK with
 * r->run.interrupted set. */
/* --criterion's names (prune and compress): magnitude (0), permute (1: gsq_prune_config.permute). */
extern const cli_choice cli_criteria[];
typedef struct {
    gsq_prune_config p;
    const char *teacher, *report; /* the dense model's path (for the report), the JSON report */
} cli_prune_opts;
gsq_status cli_prune_run(cli_train_opts *o, const cli_prune_opts *p, gsq_model *teacher, gsq_dataset *train,
                         gsq_dataset *val, gsq_prune_result *r, gsq_error *err);
typedef struct {
    gsq_qat_config q;
    const char *teacher, *report; /* the stage-1 model's path, the JSON report */
} cli_quantize_opts;
gsq_status cli_quantize_run(cli_train_opts *o, const cli_quantize_opts *q, gsq_model *teacher, gsq_sparse_pattern pattern,
                            const float *losses, gsq_dataset *train, gsq_dataset *val, gsq_qat_result *r,
                            gsq_compressed_info *info, gsq_error *err);

/* Processes training together (tools/distributed.c): before a command runs, starts the signal
 * thread for train, prune, quantize and compress, and joins MPI when an MPI launcher started one
 * of them as several processes (returns an exit code
 * to end with, or -1 to go on); after it, leaves (ending every rank when this one failed alone:
 * the ranks that failed together meet within a few seconds) and returns its code. cli_comm is the group (this process alone without a launcher);
 * cli_writes is 1 on the rank that writes files and prints (rank 0). */
int cli_comm_start(const char *cmd, int *argc, char ***argv);
/* Ctrl-C and SIGTERM (tools/stop_signal.c): cli_signals_start, before the commands that train make
 * any other thread, hands them to a thread of their own (other commands keep the defaults); cli_stop_arm returns the flag the first one sets while a run is armed (any
 * other ends the program by the signal), cli_stop_disarm ends that. */
void cli_signals_start(void);
volatile sig_atomic_t *cli_stop_arm(void);
void cli_stop_disarm(void);
int cli_comm_end(int code);
/* An error line: printed on rank 0 (or alone); another rank holds it, and cli_comm_end prints it
 * when the failure was that rank's alone. */
void cli_error_message(const char *line);
gsq_comm *cli_comm(void);
int cli_writes(void);

/* An evaluation's words (tools/eval_text.c): "top-1 T%  top-5 F%  loss L" for a classifier, "mIoU
 * M%  pixel accuracy A%  loss L" for a segmenter, "AP A  AP50 B  AP75 C  loss L" for a detector,
 * the numbers `width` wide (0: as they come), into buf (returned); its JSON fields ("top1",
 * "top5", "loss"; "miou", "pixel_accuracy", "loss", "class_iou"; or "ap", "ap50", ...,
 * "ar_large", "loss"); the details below the line: a segmenter's per-class IoU table with m's
 * class names, a detector's twelve COCO numbers (nothing for a classifier). */
#include "text.h"
const char *cli_eval_text(const gsq_eval_result *r, int width, char *buf, size_t cap);
void cli_eval_json(cli_text *b, const gsq_eval_result *r);
void cli_print_eval_details(const gsq_eval_result *r, const struct gsq_model *m);
/* Prints "gpusq CMD: message" for a failed library call and returns the exit code (1). */
int cli_report(const char *cmd, const gsq_error *err);
/* Prints "gpusq CMD: message" (printf-style) to stderr and returns the usage exit code (2). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* What a timm file's weights do not show, given on the command line (0: not given): a ViT's head
 * count, a Swin's input side. The options that set them are one group (cli_model_group). */
typedef struct {
    int heads, input_size;
} cli_model_hints;
cli_group cli_model_group(cli_model_hints *h);
/* Loads MODEL.safetensors, inferring the architecture with the hints (NULL: none). A compressed
 * file loads as its fake-quantized twin, and fills info when info is not NULL (zeroed for other
 * files). cli_load_weights takes weights only (a dense or sparse model to train or compress). */
struct gsq_model;
gsq_status cli_load_model(const char *path, const cli_model_hints *hints, struct gsq_model **out,
                          gsq_compressed_info *info, gsq_error *err);
/* A named configuration (gsq_model_create_named) with `classes` classes (0: its own) at input side
 * input_size (0: its own), zeroed. */
gsq_status cli_create_named(const char *name, int classes, int input_size, struct gsq_model **out, gsq_error *err);
gsq_status cli_load_weights(const char *path, const cli_model_hints *hints, struct gsq_model **out, gsq_error *err);
/* gpusq predict and gpusq run IMAGE...: each of the n image files' path, then its five most
 * probable classes ("  PROB%  INDEX NAME", names from m) by forward, one image at a time (m gives
 * the input size and class count); a segmenter's overlays in out_dir (cli_predict_segment), a
 * detector's detections scoring at least threshold drawn there (cli_predict_detect). An image that
 * cannot be read or run is reported and skipped. Returns the exit code: 0, or 1 after any failure. */
int cli_predict_images(const char *cmd, const struct gsq_model *m, gsq_forward_fn forward, void *ctx,
                       char *const *images, int n, const char *out_dir, float threshold);
/* The same for a segmenter (tools/predict_segment.c): each image's class map over it in colours,
 * written as OUT_DIR/STEM.seg.png (out_dir made when missing), and its largest classes. */
int cli_predict_segment(const char *cmd, const struct gsq_model *m, gsq_forward_fn forward, void *ctx,
                        char *const *images, int n, const char *out_dir);
/* The same for a detector (tools/predict_detect.c): each image's detections scoring at least
 * threshold, best first ("  NAME  SCORE  x X  y Y  w W  h H", the box in the image's pixels, clipped
 * to it), drawn over it (a frame and a "NAME SCORE" label in the class's colour) and written as
 * OUT_DIR/STEM.det.png (out_dir made when missing). */
int cli_predict_detect(const char *cmd, const struct gsq_model *m, gsq_forward_fn forward, void *ctx,
                       char *const *images, int n, const char *out_dir, float threshold);
#define CLI_PREDICT_DIR "predictions"
#define CLI_PREDICT_THRESHOLD 0.5f
/* What the overlays share (tools/predict_segment.c): class k's colour, PASCAL VOC's palette (the
 * bits of k + 1 spread over the high bits of R, G and B, so that class 0 is not black and
 * neighbouring classes differ); and an image's overlay path, OUT_DIR/STEM.SUFFIX ("seg.png"). */
void cli_palette(int k, uint8_t rgb[3]);
void cli_overlay_path(const char *out_dir, const char *image, const char *suffix, char *buf, size_t cap);
/* The names of --device (cpu, cuda), --pattern (2:4, 4:8) and --mode (int8, int4, w4a8), as the
 * library spells them (gsq_sparse_pattern_name, gsq_quant_mode_name). */
extern const cli_choice cli_devices[], cli_patterns[], cli_modes[];
/* What runs an engine on device, for a report: "amx-int8 kernels on the CPU" or
 * "CUDA on NVIDIA H100 80GB HBM3 (sm_90)". */
void cli_engine_where(gsq_engine_device device, char *buf, size_t cap);
/* 1 if arg is -h or --help. */
int cli_is_help(const char *arg);

#endif
