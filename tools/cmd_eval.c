/*
 * cmd_eval.c — `mtc eval`: per-task metrics of a checkpoint on a data split.
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
        {"split", OPT_STR, &split, "train | test (default test)", 1, 0},
        {"batch", OPT_INT, &batch, "inference batch (default 256)", 1, 65536},
        CLI_COMMON(&c),
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
    mtc_model m;
    mtc_dataset d;
    memset(&d, 0, sizeof d);
    if (mtc_model_load(pos[0], &m, NULL, &e)) return cli_fail("eval", &e);
    mtc_task_eval ev[MTC_MAX_TASKS];
    rc = util_open_data(&m, data, split, &d, &e);
    if (!rc) rc = mtc_evaluate(&m, &d, NULL, 0, batch, ev, &e);
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
            util_json_eval(&w, &m, ev);
            mtc_jw_obj_end(&w);
            printf("%s\n", w.buf);
            mtc_jw_free(&w);
        } else {
            printf("%s on %s/%s (%lld samples):\n", pos[0], d.name, split, (long long)d.n);
            util_print_eval(stdout, &m, ev);
        }
        mtc_task_eval_free(ev, m.spec.ntasks);
    }
    mtc_data_free(&d);
    mtc_model_free(&m);
    return rc ? cli_fail("eval", &e) : 0;
}
