/*
 * util.h — pieces several commands share: opening the data a model needs,
 * per-task result tables and their JSON, checkpoint metadata.
 */
#ifndef MTC_TOOLS_UTIL_H
#define MTC_TOOLS_UTIL_H

#include "mtc.h"
#include "tools/cli.h"

/* Opens data set `name` split `split` with the columns the model's spec asks
 * for (CSV) and checks its sample shape against the model. */
/* mtc_rt_predict over every sample of d; in an MPI job each rank runs a
 * contiguous share and rank 0 gathers the rows in order (outs left NULL on
 * the other ranks). The runtime's outputs do not depend on the batch, so
 * rank 0 holds what one process computes. */
int util_rt_predict_all(mtc_rt *rt, const mtc_dataset *d, int batch, float **outs, mtc_err *e);
/* Samples of d (idx[0..n), every one when idx is NULL) labelled for model
 * task t (a derived task through its source); -1 when t has no labels in d. */
int64_t util_labelled(const mtc_model *m, const mtc_dataset *d, const int64_t *idx, int64_t n, int t);
/* Set by commands that need no labels (mtc label): a CSV without the
 * model's task columns opens as an unlabelled set (util_open_data). */
extern int util_unlabelled_ok;
/* --shard-data (set by util_train_cfg): util_open_data of the train split
 * under MPI loads only this rank's shard (and hashes the whole split). */
extern int util_shard_data;
/* One progress line: the data set's size, its parts' (A+B), and how many
 * samples each task has labels for. */
void util_report_data(const cli_common *c, const mtc_dataset *d);
int util_open_data(const mtc_model *m, const char *name, const char *split,
                   mtc_dataset *d, mtc_err *e);
/* Training options shared by `mtc train` and `mtc distill`. */
typedef struct util_train_opts {
    const char *optimizer, *schedule, *weighting, *augment, *resume, *task_sampling;
    int checkpoint_every;
    char state_path[4200];
    float lr, momentum, weight_decay, l1, l2, clip, gamma, min_lr; /* weight_decay < 0: the optimizer's */
    char wd_help[160];
    float gradnorm_alpha, val;
    uint64_t val_seed;
    int epochs, batch, nesterov, warmup, step_size, patience, conflict_every, overlap, shard_data;
} util_train_opts;
/* The library's defaults (mtc_train_cfg_default), which the help prints. */
void util_train_opts_default(util_train_opts *o);
#define UTIL_TRAIN_OPTS(o)                                                         \
    {"epochs", OPT_INT, &(o)->epochs, "training epochs (default {default})", 1, 100000},   \
    {"batch", OPT_INT, &(o)->batch, "batch size (default {default})", 1, 65536},         \
    {"lr", OPT_FLOAT, &(o)->lr, "base learning rate (default {default})", 1e-9, 10},    \
    {"optimizer", OPT_STR, &(o)->optimizer, "adam | adamw | sgd (default {default})", 1, 0}, \
    {"momentum", OPT_FLOAT, &(o)->momentum, "SGD momentum (default {default})", 0, 0.9999}, \
    {"nesterov", OPT_FLAG, &(o)->nesterov, "SGD: Nesterov momentum", 1, 0}, \
    {"weight-decay", OPT_FLOAT, &(o)->weight_decay, (o)->wd_help, 0, 1}, \
    {"l1", OPT_FLOAT, &(o)->l1, "L1 penalty on weights (default {default})", 0, 1},       \
    {"l2", OPT_FLOAT, &(o)->l2, "L2 penalty on weights (default {default})", 0, 1},       \
    {"clip", OPT_FLOAT, &(o)->clip, "global gradient-norm clip, 0 = off", 0, 1e6}, \
    {"schedule", OPT_STR, &(o)->schedule, "const | step | cosine (default {default})", 1, 0}, \
    {"warmup", OPT_INT, &(o)->warmup, "linear warm-up steps (default {default})", 0, 100000000}, \
    {"step-size", OPT_INT, &(o)->step_size, "step schedule: steps between decays (default {default})", 1, 100000000}, \
    {"gamma", OPT_FLOAT, &(o)->gamma, "step schedule: decay factor (default {default})", 0, 1}, \
    {"min-lr", OPT_FLOAT, &(o)->min_lr, "cosine floor (default {default})", 0, 10},        \
    {"weighting", OPT_STR, &(o)->weighting, "task weighting: fixed | uncertainty | gradnorm | dwa (default {default})", 1, 0}, \
    {"task-sampling", OPT_STR, &(o)->task_sampling, "what a batch holds when tasks are labelled on different samples: proportional | round-robin | temperature[:T] (p ~ n^(1/T), T default 2) (default {default})", 1, 0}, \
    {"conflict-every", OPT_INT, &(o)->conflict_every, "sample the task-gradient cosines every N steps into the history (0 = off; default {default})", 0, 100000000}, \
    {"gradnorm-alpha", OPT_FLOAT, &(o)->gradnorm_alpha, "GradNorm asymmetry alpha (default {default})", 0, 10}, \
    {"val", OPT_FLOAT, &(o)->val, "validation fraction of the train split (default {default}; multifashion holds out whole digits)", 0, 0.89}, \
    {"val-seed", OPT_U64, &(o)->val_seed, "seed of the validation split (default: --seed); fix it to compare seeds on one split", 1, 0}, \
    {"patience", OPT_INT, &(o)->patience, "early stopping after N epochs without val gain, 0 = off", 0, 100000}, \
    {"augment", OPT_STR, &(o)->augment, "none | shift | flip | shift,flip (default {default})", 1, 0}, \
    {"checkpoint-every", OPT_INT, &(o)->checkpoint_every, "write a resumable state to OUT.state every N epochs (0 = off)", 0, 100000}, \
    {"resume", OPT_STR, &(o)->resume, "continue from OUT.state (bit-identical to an uninterrupted run)", 1, 0}, \
    {"overlap", OPT_FLAG, &(o)->overlap, "MPI: sum gradients while the backward pass runs (same bytes; pays off across machines, docs/scaling.md)", 1, 0}, \
    {"shard-data", OPT_FLAG, &(o)->shard_data, "MPI: each rank loads only its 1/N of the training split and trains on it (docs/scaling.md)", 1, 0}
/* The spec's [train] recipe into o: each key is one of the options above
 * (not resume), its value as on the command line, a flag true or false.
 * Call between util_train_opts_default and a second parse of the command
 * line, so flags override the spec. Prints "mtc CMD: FILE:LINE: [train]..."
 * and returns 2 on a bad key or value. */
int util_train_opts_spec(util_train_opts *o, const mtc_spec *s, const char *path, const char *cmd);
/* Fills cfg from the options; errors name the flag. out = the checkpoint
 * being trained (the state goes to out.state). */
int util_train_cfg(util_train_opts *o, const cli_common *c, const char *out, mtc_train_cfg *cfg, mtc_err *e);
/* --augment none | shift | flip | shift,flip -> MTC_AUG_* bits, and back. */
int util_parse_augment(const char *s, int *aug, mtc_err *e);
const char *util_augment_name(int aug);
/* Metadata keys "train" (settings), "task_weights" and "history" of a run. */
void util_json_training(mtc_jw *w, const mtc_model *m, const util_train_opts *o, const cli_common *c,
                        const mtc_train_cfg *cfg, const mtc_train_result *res);
/* Epoch progress line on stderr; on a terminal also a line redrawn within
 * the epoch (util_step_progress). */
void util_progress(void *ctx, const mtc_epoch_stats *s);
void util_step_progress(void *ctx, int epoch, int epochs, int64_t done, int64_t n, double seconds);

/* Per-task metrics table (stdout) and its JSON object ("tasks": {...}). */
void util_print_eval(FILE *f, const mtc_model *m, const mtc_task_eval *ev);
void util_json_eval(mtc_jw *w, const mtc_model *m, const mtc_task_eval *ev);
/* "name": {"name":..,"split":..,"n":..,"hash":"..."} */
void util_json_data(mtc_jw *w, const char *key, const mtc_dataset *d);
/* Hex hash of a file's bytes (FNV-1a 64), "" on error. */
void util_file_hash(const char *path, char out[17]);
/* A checkpoint, or an .onnx file imported in memory on the fly (kinds
 * inferred as `mtc import` infers them): what eval, predict, verify, label
 * and distill's --teacher load. */
int util_model_load(const char *path, mtc_model *m, mtc_err *e);
int util_rt_load(const char *path, mtc_rt **rt, mtc_err *e);

/* Under MPI (N > 1 ranks): the gradient sums' share of train_s seconds. */
void util_report_comm(const cli_common *c, double train_s);
double util_now(void); /* monotonic seconds */

#endif
