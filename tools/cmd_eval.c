/*
 * cmd_eval.c — `mtc eval`: per-task metrics of a checkpoint on a data split,
 * run through the reference runtime (fp32, pruned or int8 checkpoints).
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <stdlib.h>
#include <string.h>

int cmd_eval(int argc, char **argv)
{
    const char *data = NULL, *split = "test";
    int batch = 256;
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"data", OPT_STR, &data, "data set name (required)", 1, 0},
        {"split", OPT_STR, &split, "train | test (default {default})", 1, 0},
        {"batch", OPT_INT, &batch, "inference batch (default {default})", 1, 65536},
        CLI_COMMON(&c),
        CLI_MISSING(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("eval", "model.mtc --data NAME [--split test] [--json]",
                       "Per-task metrics (accuracy, F1, AUC; MAE, MSE, R2) of a checkpoint.",
                       opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1 || !data) {
        fprintf(stderr, "mtc eval: need a checkpoint and --data (see mtc eval --help)\n");
        return 2;
    }
    if (strcmp(split, "train") && strcmp(split, "test")) {
        fprintf(stderr, "mtc eval: --split %s: expected train or test\n", split);
        return 2;
    }
    cli_apply_common(&c);
    mtc_err e = {0};
    mtc_rt *rt;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    if (util_rt_load(pos[0], &rt, &e)) return cli_fail("eval", &e);
    mtc_rt_set_threads(rt, c.threads);
    const mtc_model *mp = mtc_rt_model(rt);
    mtc_task_eval ev[MTC_MAX_TASKS];
    float *outs[MTC_MAX_TASKS] = {0};
    rc = util_open_data(mp, data, split, &d, &e);
    if (!rc) rc = util_rt_predict_all(rt, &d, batch, outs, &e); /* shared by the ranks of an MPI job */
    if (!rc && mtc_comm_rank() != 0) { /* rank 0 computes the metrics and reports */
        mtc_data_free(&d);
        mtc_rt_free(rt);
        return 0;
    }
    if (!rc) rc = mtc_evaluate_outputs(mp, &d, NULL, 0, outs, ev, &e);
    for (int t = 0; t < MTC_MAX_TASKS; t++) free(outs[t]);
    if (!rc) {
        if (c.json) {
            mtc_jw w;
            mtc_jw_init(&w);
            mtc_jw_obj(&w);
            mtc_jw_kstr(&w, "model", pos[0]);
            mtc_jw_kstr(&w, "data", data);
            mtc_jw_kstr(&w, "split", split);
            mtc_jw_kint(&w, "n", d.n);
            mtc_jw_key(&w, "tasks");
            util_json_eval(&w, mp, ev);
            mtc_jw_obj_end(&w);
            printf("%s\n", w.buf);
            mtc_jw_free(&w);
        } else {
            printf("%s on %s/%s (%lld samples):\n", pos[0], d.name, split, (long long)d.n);
            util_print_eval(stdout, mp, ev);
        }
        mtc_task_eval_free(ev, mp->spec.ntasks);
    }
    mtc_data_free(&d);
    mtc_rt_free(rt);
    return rc ? cli_fail("eval", &e) : 0;
}
