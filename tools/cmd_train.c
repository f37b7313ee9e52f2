/*
 * cmd_train.c — `mtc train`: train a multi-task model from a spec file, then
 * report per-task test metrics and write the checkpoint (spec, weights,
 * metadata with lineage, task weights per epoch and metrics).
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <stdlib.h>
#include <string.h>

int cmd_train(int argc, char **argv)
{
    const char *spec_path = NULL, *data = NULL, *out = NULL, *test_split = "test";
    int no_test = 0;
    cli_common c;
    cli_common_defaults(&c);
    util_train_opts to;
    util_train_opts_default(&to);
    cli_opt opts[] = {
        {"spec", OPT_STR, &spec_path, "model spec file (required)", 1, 0},
        {"data", OPT_STR, &data, "data set: fashion-mnist, multifashion, mnist-digits, csv:PATH, png:DIR (required)", 1, 0},
        {"out", OPT_STR, &out, "output checkpoint (-o; required)", 1, 0},
        {"no-test", OPT_FLAG, &no_test, "skip the final test-split evaluation", 1, 0},
        UTIL_TRAIN_OPTS(&to),
        CLI_COMMON(&c),
        CLI_MISSING(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("train", "--spec FILE --data NAME -o model.mtc [options]",
                       "Train a multi-task model (shared trunk + one head per task) and write a checkpoint.\n"
                       "A [train] section in the spec sets this spec's recipe (e.g. schedule = cosine):\n"
                       "defaults for the options below, which flags given here override.",
                       opts, argc, argv, pos, 0, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (!spec_path || !data || !out) {
        fprintf(stderr, "mtc train: --spec, --data and -o are required (see mtc train --help)\n");
        return 2;
    }
    cli_apply_common(&c);
    mtc_err e = {0};
    mtc_spec spec;
    char *spec_text = NULL;
    mtc_model m;
    mtc_dataset d, dt;
    memset(&d, 0, sizeof d);
    memset(&dt, 0, sizeof dt);
    mtc_train_cfg cfg;
    mtc_train_result res = {0};
    mtc_task_eval ev[MTC_MAX_TASKS];
    int have_ev = 0;
    if ((rc = mtc_spec_load(spec_path, &spec, &spec_text, &e))) return cli_fail("train", &e);
    if (spec.ntrain) { /* the spec's [train] recipe, then the command line over it */
        util_train_opts_default(&to);
        if ((rc = util_train_opts_spec(&to, &spec, spec_path, "train")) ||
            (rc = cli_parse("train", "", "", opts, argc, argv, pos, 0, &npos))) {
            free(spec_text);
            return rc;
        }
    }
    rc = mtc_model_build(&spec, spec_text, &m, &e);
    free(spec_text);
    if (rc && !strncmp(e.msg, "spec:", 5)) { /* shape errors: name the spec file */
        char msg[sizeof e.msg];
        snprintf(msg, sizeof msg, "%.200s:%.300s", spec_path, e.msg + 5);
        memcpy(e.msg, msg, sizeof msg);
    }
    if (rc) return cli_fail("train", &e);
    if ((rc = util_train_cfg(&to, &c, out, &cfg, &e))) goto out;
    cfg.progress = util_progress;
    cfg.progress_ctx = &c;
    if ((rc = util_open_data(&m, data, "train", &d, &e))) goto out;
    util_report_data(&c, &d);
    if ((rc = mtc_model_set_class_names(&m, &d, &e))) goto out;
    mtc_model_init_params(&m, c.seed);
    cli_progress(&c, "train: %s, %lld samples, %lld parameters, %d task(s), %s weighting",
                 d.name, (long long)d.n, (long long)m.nparams, m.spec.ntasks, mtc_weighting_name(cfg.weighting));
    double t_train = util_now();
    if ((rc = mtc_train(&m, &d, &cfg, &res, &e))) goto out;
    util_report_comm(&c, util_now() - t_train);
    if (!no_test) {
        if ((rc = util_open_data(&m, data, test_split, &dt, &e))) goto out;
        if ((rc = mtc_evaluate(&m, &dt, NULL, 0, 256, ev, &e))) goto out;
        have_ev = 1;
    }
    /* metadata: lineage, data, settings, weights, history, metrics */
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "producer", "mtc train");
    mtc_jw_kstr(&w, "version", MTC_VERSION);
    mtc_jw_key(&w, "parent");
    mtc_jw_null(&w);
    util_json_data(&w, "data", &d);
    util_json_training(&w, &m, &to, &c, &cfg, &res);
    if (have_ev) {
        mtc_jw_key(&w, "test");
        util_json_eval(&w, &m, ev);
    }
    mtc_jw_obj_end(&w);
    rc = w.oom ? mtc_err_set(&e, MTC_ENOMEM, "out of memory") : mtc_model_save(&m, out, w.buf, &e);
    if (!rc) {
        if (c.json) {
            mtc_jw j;
            mtc_jw_init(&j);
            mtc_jw_obj(&j);
            mtc_jw_kstr(&j, "model", out);
            mtc_jw_kstr(&j, "data", data);
            mtc_jw_kint(&j, "parameters", m.nparams);
            mtc_jw_knum(&j, "samples_per_s", res.samples_per_s);
            mtc_jw_knum(&j, "samples_per_s_mean", res.samples_per_s_mean);
            if (have_ev) { mtc_jw_key(&j, "tasks"); util_json_eval(&j, &m, ev); }
            mtc_jw_obj_end(&j);
            printf("%s\n", j.buf);
            mtc_jw_free(&j);
        } else {
            if (have_ev) {
                printf("test metrics of %s on %s (%lld samples):\n", out, dt.name, (long long)dt.n);
                util_print_eval(stdout, &m, ev);
            }
            printf("wrote %s (%lld parameters)\n", out, (long long)m.nparams);
        }
    }
    mtc_jw_free(&w);
out:
    if (have_ev) mtc_task_eval_free(ev, m.spec.ntasks);
    free(res.history_json);
    mtc_data_free(&d);
    mtc_data_free(&dt);
    mtc_model_free(&m);
    return rc ? cli_fail("train", &e) : 0;
}
