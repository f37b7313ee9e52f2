/*
 * cmd_quantize.c — `mtc quantize`: int8 post-training quantization of a
 * checkpoint, calibrated on training samples, with an optional per-task
 * accuracy budget (layers that break it stay fp32). Prints fp32 vs int8
 * per task on the test split, sizes, and which layers went int8.
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int test_metrics(const char *path, mtc_rt *rt, const mtc_dataset *d, int threads, double *metric,
                        double *sps, mtc_err *e)
{
    const mtc_model *m = mtc_rt_model(rt);
    float *outs[MTC_MAX_TASKS] = {0};
    mtc_task_eval ev[MTC_MAX_TASKS];
    mtc_rt_set_threads(rt, threads);
    double t0 = cli_now();
    int rc = mtc_rt_predict(rt, d, NULL, 0, 256, outs, e);
    double dt = cli_now() - t0;
    *sps = dt > 0 ? d->n / dt : 0;
    if (!rc) rc = mtc_evaluate_outputs(m, d, NULL, 0, outs, ev, e);
    if (!rc) {
        for (int t = 0; t < m->spec.ntasks; t++) metric[t] = mtc_task_eval_primary(&ev[t], NULL);
        mtc_task_eval_free(ev, m->spec.ntasks);
    }
    for (int t = 0; t < m->spec.ntasks; t++) free(outs[t]);
    (void)path;
    return rc;
}

static const char *fmt_metric(char *buf, size_t n, int kind, double v)
{
    if (kind == MTC_TASK_REG) snprintf(buf, n, "%.4f", v);
    else snprintf(buf, n, "%.2f%%", 100 * v);
    return buf;
}

int cmd_quantize(int argc, char **argv)
{
    mtc_quant_cfg qc; /* the options write into it: their defaults are the library's */
    mtc_quant_cfg_default(&qc);
    const char *data = NULL, *out = NULL, *max_drop = NULL;
    const char *method = mtc_calib_method_name(qc.calib_method), *act = qc.act_symmetric ? "s8" : "u8";
    float pct = (float)qc.percentile;
    const int calib_default = qc.calib_n;
    char max_drop_help[128];
    snprintf(max_drop_help, sizeof max_drop_help,
             "per-task budget TASK=POINTS,... (others: %g point): layers that break it stay fp32", MTC_MAX_DROP_DEFAULT);
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"data", OPT_STR, &data, "data set name (required); calibration uses its train split", 1, 0},
        {"out", OPT_STR, &out, "output int8 checkpoint (-o; required)", 1, 0},
        {"calib", OPT_INT, &qc.calib_n, "calibration samples from the train split (default {default})", 1, 10000000},
        {"calib-method", OPT_STR, &method, "entropy | percentile | minmax (default {default})", 1, 0},
        {"percentile", OPT_FLOAT, &pct, "percentile calibration: kept fraction in % (default {default})", 50, 100},
        {"per-tensor", OPT_FLAG, &qc.per_tensor, "one weight scale per tensor instead of per output channel", 1, 0},
        {"act", OPT_STR, &act, "activations: u8 (asymmetric) | s8 (symmetric) (default {default})", 1, 0},
        {"max-drop", OPT_STR, &max_drop, max_drop_help, 1, 0},
        {"relative", OPT_FLAG, &qc.relative, "--max-drop in % of the fp32 metric", 1, 0},
        {"val", OPT_INT, &qc.val_n, "validation samples for --max-drop (default {default})", 1, 10000000},
        CLI_COMMON(&c),
        CLI_MISSING(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("quantize", "model.mtc --data NAME -o model.q8.mtc [--calib N] [--calib-method entropy] "
                       "[--max-drop task=0.3,...]",
                       "Int8 post-training quantization with per-task accuracy fallback.", opts, argc, argv, pos, 1,
                       &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1 || !data || !out) {
        fprintf(stderr, "mtc quantize: need a checkpoint, --data and -o (see mtc quantize --help)\n");
        return 2;
    }
    qc.percentile = pct;
    qc.seed = c.seed;
    qc.threads = c.threads;
    if ((qc.calib_method = mtc_calib_method_parse(method)) < 0) {
        fprintf(stderr, "mtc quantize: --calib-method %s: expected entropy, percentile or minmax\n", method);
        return 2;
    }
    if (strcmp(act, "u8") && strcmp(act, "s8")) {
        fprintf(stderr, "mtc quantize: --act %s: expected u8 or s8\n", act);
        return 2;
    }
    qc.act_symmetric = !strcmp(act, "s8");
    cli_apply_common(&c);

    mtc_err e = {0};
    mtc_ckpt src;
    mtc_rt *fp = NULL, *q8 = NULL;
    mtc_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    memset(&src, 0, sizeof src);
    mtc_quant_report rep;
    int given[MTC_MAX_TASKS];
    if ((rc = mtc_ckpt_load(pos[0], &src, &e)) || (rc = mtc_rt_from_ckpt(&src, pos[0], &fp, &e))) goto done;
    const mtc_model *m = mtc_rt_model(fp);
    if ((rc = mtc_budget_parse(m, max_drop, MTC_MAX_DROP_DEFAULT, qc.max_drop, given, &e))) goto done;
    qc.has_budget = max_drop != NULL;
    if ((rc = util_open_data(m, data, "train", &train, &e))) goto done;
    if (qc.calib_n < 100 || train.n < 100)
        fprintf(stderr, "mtc quantize: WARNING: calibrating on only %lld samples (< 100): activation ranges "
                        "will be noisy; use --calib %d (the default)\n",
                (long long)(qc.calib_n < train.n ? qc.calib_n : train.n), calib_default);
    cli_progress(&c, "quantize: calibrating on %lld samples (%s) of %s/train",
                 (long long)(qc.calib_n < train.n ? qc.calib_n : train.n), method, train.name);
    double t0 = cli_now();
    int qrc = mtc_quantize(&src, pos[0], &train, &qc, out, &rep, &e);
    if (qrc && qrc != MTC_EFAIL) { rc = qrc; goto done; }
    mtc_err qe = e;
    cli_progress(&c, "quantize: done in %.1fs", cli_now() - t0);
    mtc_data_free(&train);
    if ((rc = mtc_rt_load(out, &q8, &e)) || (rc = util_open_data(m, data, "test", &test, &e))) goto done;
    int64_t src_bytes = 0;
    {
        FILE *f = fopen(pos[0], "rb");
        if (f) { fseek(f, 0, SEEK_END); src_bytes = ftell(f); fclose(f); }
    }
    double mf[MTC_MAX_TASKS], mq[MTC_MAX_TASKS], sf, sq;
    if ((rc = test_metrics(pos[0], fp, &test, c.threads, mf, &sf, &e)) ||
        (rc = test_metrics(out, q8, &test, c.threads, mq, &sq, &e)))
        goto done;
    int T = m->spec.ntasks;
    int64_t wf = mtc_rt_weight_bytes(fp), wq = mtc_rt_weight_bytes(q8);
    if (c.json) {
        mtc_jw w;
        mtc_jw_init(&w);
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "model", pos[0]);
        mtc_jw_kstr(&w, "out", out);
        mtc_jw_kstr(&w, "calibration", method);
        mtc_jw_kint(&w, "calib_samples", rep.calib_used);
        mtc_jw_kstr(&w, "isa", mtc_isa_name(mtc_qgemm_isa()));
        mtc_jw_key(&w, "tasks");
        mtc_jw_obj(&w);
        for (int t = 0; t < T; t++) {
            const char *mn;
            mtc_task_eval tmp = {.kind = m->spec.tasks[t].kind};
            mtc_task_eval_primary(&tmp, &mn);
            mtc_jw_key(&w, m->spec.tasks[t].name);
            mtc_jw_obj(&w);
            mtc_jw_kstr(&w, "metric", mn);
            mtc_jw_knum(&w, "fp32", mf[t]);
            mtc_jw_knum(&w, "int8", mq[t]);
            mtc_jw_knum(&w, "drop", mtc_metric_drop(m->spec.tasks[t].kind, mf[t], mq[t], qc.relative));
            if (qc.has_budget) mtc_jw_knum(&w, "budget", qc.max_drop[t]);
            mtc_jw_knum(&w, "val_drop", rep.val_drop[t]);
            mtc_jw_obj_end(&w);
        }
        mtc_jw_obj_end(&w);
        mtc_jw_key(&w, "layers");
        mtc_jw_arr(&w);
        for (int i = 0; i < rep.nlayers; i++) {
            mtc_jw_obj(&w);
            mtc_jw_kstr(&w, "name", rep.layers[i].name);
            mtc_jw_kstr(&w, "precision", rep.layers[i].quantized ? "int8" : "fp32");
            mtc_jw_obj_end(&w);
        }
        mtc_jw_arr_end(&w);
        mtc_jw_kint(&w, "weight_bytes_fp32", wf);
        mtc_jw_kint(&w, "weight_bytes_int8", wq);
        mtc_jw_knum(&w, "weight_ratio", wf ? (double)wq / wf : 0);
        mtc_jw_kint(&w, "file_bytes_fp32", src_bytes);
        mtc_jw_kint(&w, "file_bytes_int8", mtc_rt_file_bytes(q8));
        mtc_jw_knum(&w, "samples_per_s_fp32", sf);
        mtc_jw_knum(&w, "samples_per_s_int8", sq);
        mtc_jw_key(&w, "within_budget");
        mtc_jw_bool(&w, rep.within_budget);
        if (!rep.within_budget) mtc_jw_kstr(&w, "problem", rep.problem);
        mtc_jw_obj_end(&w);
        printf("%s\n", w.buf);
        mtc_jw_free(&w);
    } else {
        printf("%s -> %s (%s calibration, %lld samples, int8 kernel %s)\n", pos[0], out, method,
               (long long)rep.calib_used, mtc_isa_name(mtc_qgemm_isa()));
        printf("%-12s %-9s %10s %10s %8s %8s %9s\n", "task", "metric", "fp32", "int8", "drop", "budget", "labelled");
        for (int t = 0; t < T; t++) {
            char a[32], b[32], bud[32] = "-";
            const char *mn;
            mtc_task_eval tmp = {.kind = m->spec.tasks[t].kind};
            mtc_task_eval_primary(&tmp, &mn);
            if (qc.has_budget) snprintf(bud, sizeof bud, "%.3f", qc.max_drop[t]);
            printf("%-12s %-9s %10s %10s %8.3f %8s %9lld\n", m->spec.tasks[t].name, mn,
                   fmt_metric(a, sizeof a, m->spec.tasks[t].kind, mf[t]),
                   fmt_metric(b, sizeof b, m->spec.tasks[t].kind, mq[t]),
                   mtc_metric_drop(m->spec.tasks[t].kind, mf[t], mq[t], qc.relative), bud,
                   (long long)util_labelled(m, &test, NULL, 0, t));
        }
        printf("layers:");
        for (int i = 0; i < rep.nlayers; i++)
            printf(" %s=%s", rep.layers[i].name, rep.layers[i].quantized ? "int8" : "fp32");
        printf("\nweights: %lld bytes fp32 -> %lld bytes int8 (%.3fx)\n", (long long)wf, (long long)wq,
               wf ? (double)wq / wf : 0);
        printf("file:    %lld bytes -> %lld bytes\n", (long long)src_bytes, (long long)mtc_rt_file_bytes(q8));
        printf("speed:   %.0f samples/s fp32, %.0f samples/s int8 (batch 256, %d thread%s)\n", sf, sq, c.threads,
               c.threads > 1 ? "s" : "");
    }
    if (qrc == MTC_EFAIL) {
        e = qe;
        rc = MTC_EFAIL;
    }
done:
    mtc_rt_free(fp);
    mtc_rt_free(q8);
    mtc_ckpt_free(&src);
    mtc_data_free(&train);
    mtc_data_free(&test);
    return rc ? cli_fail("quantize", &e) : 0;
}
