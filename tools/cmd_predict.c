/*
 * cmd_predict.c — `mtc predict`: per-task outputs for single inputs: one PNG
 * image, or every row of a CSV file (input columns only; label columns are
 * not needed). Runs through the reference runtime, so fp32, pruned and int8
 * checkpoints all work. A PNG that is not a grey image of the model's input
 * size is refused (exit 2) unless --convert asks for the conversion: a
 * colour diagram must not come back as a confident class.
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcasecmp(s + n - k, suf);
}

static const char *png_layout(int channels)
{
    static const char *names[] = {"grey", "grey+alpha", "colour (RGB)", "colour+alpha (RGBA)"};
    return channels >= 1 && channels <= 4 ? names[channels - 1] : "?";
}

/* One PNG -> (1, h*w) floats in [0,1]. The model sees exactly the pixels of
 * an h x w grey PNG; anything else is refused, or with convert turned into
 * one (luma, alpha dropped, bilinear resize) with a note on stderr. */
static int load_png(const mtc_model *m, const char *path, int convert, float **x, mtc_err *e)
{
    if (m->spec.c != 1)
        return mtc_err_set(e, MTC_EINPUT, "%s: the model expects %d channels; PNG input is gray", path, m->spec.c);
    int H = m->spec.h, W = m->spec.w, h, w, ch;
    int rc = mtc_png_probe(path, &h, &w, &ch, e);
    if (rc) return rc;
    int fits = h == H && w == W && ch == 1;
    if (!fits && !convert)
        return mtc_err_set(e, MTC_EINPUT, "%s: a %dx%d %s image; the model takes %dx%d grey images "
                           "(convert it, or pass --convert)", path, w, h, png_layout(ch), W, H);
    uint8_t *px;
    if ((rc = mtc_png_read_gray(path, &h, &w, &px, e))) return rc;
    if (!fits)
        fprintf(stderr, "mtc predict: %s: converted a %dx%d %s image to %dx%d grey (%s%s%s)\n", path, w, h,
                png_layout(ch), W, H, ch >= 3 ? "luma 0.299 R + 0.587 G + 0.114 B, " : "",
                ch % 2 == 0 ? "alpha dropped, " : "",
                h == H && w == W ? "no resize" : "bilinear resize, aspect ratio not kept");
    uint8_t *r = px;
    if (h != H || w != W) {
        r = malloc((size_t)H * W);
        if (!r) { free(px); return mtc_err_set(e, MTC_ENOMEM, "out of memory"); }
        mtc_resize_bilinear_u8(px, h, w, r, H, W);
        free(px);
    }
    *x = malloc(sizeof(float) * (size_t)H * W);
    if (!*x) { free(r); return mtc_err_set(e, MTC_ENOMEM, "out of memory"); }
    for (int i = 0; i < H * W; i++) (*x)[i] = r[i] / 255.0f;
    free(r);
    return 0;
}

static void print_row(mtc_jw *w, const mtc_model *m, int64_t row, float *const *outs, int json)
{
    if (json) {
        mtc_jw_obj(w);
        mtc_jw_kint(w, "row", row);
    } else {
        printf("%lld:", (long long)row);
    }
    for (int t = 0; t < m->spec.ntasks; t++) {
        const mtc_task_spec *ts = &m->spec.tasks[t];
        const float *o = outs[t] + row * ts->dim;
        if (json) { mtc_jw_key(w, ts->name); mtc_jw_obj(w); }
        if (ts->kind == MTC_TASK_CLS) {
            float p[4096];
            int K = ts->dim > 4096 ? 4096 : ts->dim, best = 0;
            mtc_softmax_rows(p, o, 1, K, 1.0f);
            for (int k = 1; k < K; k++) if (p[k] > p[best]) best = k;
            const char *cname = best < m->nclass_names[t] ? m->class_names[t][best] : NULL;
            if (json) {
                mtc_jw_kint(w, "class", best);
                if (cname) mtc_jw_kstr(w, "name", cname);
                mtc_jw_knum(w, "p", p[best]);
                mtc_jw_key(w, "probs");
                mtc_jw_arr(w);
                for (int k = 0; k < K; k++) mtc_jw_num(w, p[k]);
                mtc_jw_arr_end(w);
            } else {
                if (cname) printf("  %s=%s (p %.3f)", ts->name, cname, p[best]);
                else printf("  %s=%d (p %.3f)", ts->name, best, p[best]);
            }
        } else {
            if (json) { mtc_jw_key(w, ts->kind == MTC_TASK_BIN ? "p" : "value"); mtc_jw_arr(w); }
            else printf("  %s=", ts->name);
            for (int d = 0; d < ts->dim; d++) {
                float v = ts->kind == MTC_TASK_BIN ? 1.0f / (1.0f + expf(-o[d])) : o[d];
                if (json) mtc_jw_num(w, v);
                else printf("%s%.4g", d ? "," : "", v);
            }
            if (json) mtc_jw_arr_end(w);
        }
        if (json) mtc_jw_obj_end(w);
    }
    if (json) mtc_jw_obj_end(w);
    else printf("\n");
}

int cmd_predict(int argc, char **argv)
{
    const char *input = NULL;
    int convert = 0;
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"input", OPT_STR, &input, "a .png image, or a .csv file of inputs: a header, then per row the columns the "
                                   "spec names, or an image model's c*h*w values in [0,1] (required)", 1, 0},
        {"convert", OPT_FLAG, &convert, "PNG: convert a colour or wrong-size image (luma, resize) and say so", 1, 0},
        CLI_COMMON(&c),
        CLI_END,
    };
    const char *pos[1];
    int npos;
    int rc = cli_parse("predict", "model.mtc --input FILE.png|FILE.csv [--convert] [--json]",
                       "Per-task outputs (class and probability, or values) for single inputs.\n"
                       "A PNG must be a grey image of the model's input size (28x28 for the\n"
                       "image workloads); any other is refused with exit 2 and a line naming\n"
                       "the file, its size and its channels. --convert takes it anyway: colour\n"
                       "to luma (0.299 R + 0.587 G + 0.114 B), alpha dropped, bilinear resize\n"
                       "(aspect ratio not kept), and says so on stderr. A CSV file gives one\n"
                       "output row per row (its input columns; label columns are not needed).",
                       opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1 || !input) {
        fprintf(stderr, "mtc predict: need a checkpoint and --input (see mtc predict --help)\n");
        return 2;
    }
    cli_apply_common(&c);
    mtc_err e = {0};
    mtc_rt *rt;
    if (util_rt_load(pos[0], &rt, &e)) return cli_fail("predict", &e);
    const mtc_model *m = mtc_rt_model(rt);
    float *outs[MTC_MAX_TASKS] = {0};
    int64_t n = 0;
    if (ends_with(input, ".png")) {
        float *x = NULL;
        rc = load_png(m, input, convert, &x, &e);
        for (int t = 0; t < m->spec.ntasks && !rc; t++)
            if (!(outs[t] = malloc(sizeof(float) * (size_t)m->spec.tasks[t].dim)))
                rc = mtc_err_set(&e, MTC_ENOMEM, "out of memory");
        if (!rc) rc = mtc_rt_run(rt, x, 1, outs, &e);
        n = 1;
        free(x);
    } else if (ends_with(input, ".csv")) {
        mtc_data_opts o;
        memset(&o, 0, sizeof o);
        o.inputs = m->spec.columns[0] ? m->spec.columns : NULL;
        char name[4200];
        snprintf(name, sizeof name, "csv:%s@all", input);
        mtc_dataset d;
        rc = mtc_data_open(name, "test", &o, &d, &e);
        if (!rc) {
            /* an image model takes rows of exactly c·h·w values (pixels in
             * [0, 1], channel by channel, row by row) */
            if (!m->spec.columns[0] && d.x_f32 && (int64_t)d.c * d.h * d.w == (int64_t)m->spec.c * m->spec.h * m->spec.w)
                d.c = m->spec.c, d.h = m->spec.h, d.w = m->spec.w;
            rc = mtc_model_check_input(m, &d, &e);
            if (!rc) rc = mtc_rt_predict(rt, &d, NULL, 0, 256, outs, &e);
            n = d.n;
            mtc_data_free(&d);
        }
    } else {
        rc = mtc_err_set(&e, MTC_EINPUT, "%s: expected a .png or .csv file", input);
    }
    if (!rc) {
        mtc_jw w;
        mtc_jw_init(&w);
        if (c.json) {
            mtc_jw_obj(&w);
            mtc_jw_kstr(&w, "model", pos[0]);
            mtc_jw_kstr(&w, "input", input);
            mtc_jw_key(&w, "predictions");
            mtc_jw_arr(&w);
        }
        for (int64_t i = 0; i < n; i++) print_row(&w, m, i, outs, c.json);
        if (c.json) {
            mtc_jw_arr_end(&w);
            mtc_jw_obj_end(&w);
            printf("%s\n", w.buf);
        }
        mtc_jw_free(&w);
    }
    for (int t = 0; t < MTC_MAX_TASKS; t++) free(outs[t]);
    mtc_rt_free(rt);
    return rc ? cli_fail("predict", &e) : 0;
}
