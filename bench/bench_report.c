/*
 * bench_report.c — the table of `make bench` (bench/run.sh builds it against
 * libmtc.a beside bench_infer; docs/bench.md explains every figure). No
 * Python outside the peer: the records are read with the library's JSON
 * parser and latest.json is written with its writer, atomically.
 *
 *   tag KEY                        stdin -> stdout: every JSON object line
 *                                  gets "key": KEY (other lines dropped)
 *   meta VERSION CORE MODE NOTE    prints the run's "meta" record
 *   report RECORDS OUT.json [--mode M] [--seconds S] [--summary FILE.md]
 *                                  prints ONE side-by-side table, writes
 *                                  OUT.json (table, accuracy, scaling tables,
 *                                  failed steps, every raw record) and, with
 *                                  --summary, the same tables in markdown
 *   front RECORDS OUT.md DS=PLOT.json ...
 *                                  the size–accuracy front (bench/front.sh):
 *                                  per data set the points `mtc plot
 *                                  size-accuracy --json` measured, KD against
 *                                  scratch, inference of the int8 students
 *
 * Every ratio is mtc / peer (or mtc / mtc fp32, mtc / OpenBLAS) from the
 * same run; a target is a ratio, never an absolute speed.
 */
#include "mtc.h"
#include "mtc/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define U8_DATASET_BYTES (70000.0 * 28 * 28) /* Fashion-MNIST train + test, one byte a pixel */
#define NONE NAN
#define HAVE(v) (!isnan(v))

/* ---- records ------------------------------------------------------------- */
static mtc_json *g_rec;
static int g_nrec;

static const char *rkey(const mtc_json *r)
{
    return mtc_json_str(r, "key");
}

static int str_is(const mtc_json *r, const char *field, const char *want)
{
    const char *s = mtc_json_str(r, field);
    return s && !strcmp(s, want);
}

/* First record of key (and mode, when given) that has field `need` (when
 * given). */
static const mtc_json *rget(const char *key, const char *mode, const char *need)
{
    for (int i = 0; i < g_nrec; i++) {
        const mtc_json *r = &g_rec[i];
        if (!str_is(r, "key", key)) continue;
        if (mode && !str_is(r, "mode", mode)) continue;
        if (need && !mtc_json_get(r, need)) continue;
        return r;
    }
    return NULL;
}

/* First record of key with batch B and threads T (and isa, when given). */
static const mtc_json *rget_bt(const char *key, int B, int T, const char *mode)
{
    for (int i = 0; i < g_nrec; i++) {
        const mtc_json *r = &g_rec[i];
        if (!str_is(r, "key", key) || (mode && !str_is(r, "mode", mode))) continue;
        if (mtc_json_num(r, "batch", -1) == B && mtc_json_num(r, "threads", -1) == T) return r;
    }
    return NULL;
}

static double num(const mtc_json *r, const char *field)
{
    if (!r) return NONE;
    const mtc_json *v = mtc_json_get(r, field);
    return v && v->type == MTC_JNUM ? v->num : NONE;
}

/* Training rate of a record: the mean of its epochs' rates (both sides
 * report it; one epoch of a 2-thread run on a shared VM swings +-10%), else
 * the last epoch's. */
static double train_sps(const mtc_json *r)
{
    double m = num(r, "samples_per_s_mean");
    return HAVE(m) ? m : num(r, "samples_per_s");
}

/* training samples/s of key, or of key_rep (a second run of the same command,
 * alternated with the other side's) when that is higher: short runs on a
 * shared VM catch a slow moment now and then, and each side gets the same
 * best-of-two. */
static double best_sps(const char *key, const char *mode)
{
    char rep[96];
    snprintf(rep, sizeof rep, "%s_rep", key);
    double a = train_sps(rget(key, mode, "samples_per_s"));
    double b = train_sps(rget(rep, mode, "samples_per_s"));
    return HAVE(b) && (!HAVE(a) || b > a) ? b : a;
}

/* The largest `field` over every record of key at batch B, threads T
 * (mode NULL = any): the best of alternating runs. *rec = that record. */
static double best_bt(const char *key, int B, int T, const char *mode, const char *field, const mtc_json **rec)
{
    double best = NONE;
    if (rec) *rec = NULL;
    for (int i = 0; i < g_nrec; i++) {
        const mtc_json *r = &g_rec[i];
        if (!str_is(r, "key", key) || (mode && !str_is(r, "mode", mode))) continue;
        if (mtc_json_num(r, "batch", -1) != B || mtc_json_num(r, "threads", -1) != T) continue;
        double v = mtc_json_num(r, field, NONE);
        if (HAVE(v) && (!HAVE(best) || v > best)) {
            best = v;
            if (rec) *rec = r;
        }
    }
    return best;
}

/* obj.a.b... as a number (NULL-terminated path). */
static double path_num(const mtc_json *r, ...)
{
    va_list ap;
    va_start(ap, r);
    const char *k;
    while (r && (k = va_arg(ap, const char *))) r = mtc_json_get(r, k);
    va_end(ap);
    return r && r->type == MTC_JNUM ? r->num : NONE;
}

/* Test accuracy of task: `mtc train --json` ("tasks"), bench_infer, peer. */
static double acc(const mtc_json *r, const char *task)
{
    if (!r) return NONE;
    const mtc_json *t = mtc_json_get(r, "tasks");
    if (t && t->type == MTC_JOBJ) return path_num(t, task, "accuracy", (char *)NULL);
    char k[96];
    snprintf(k, sizeof k, "%s_acc", task);
    return num(r, k);
}

/* ---- formatting ------------------------------------------------------------ */
/* Python's f"{v:,.0f}" */
static void group(char *out, size_t n, double v)
{
    char d[64], *o = out;
    snprintf(d, sizeof d, "%.0f", fabs(v));
    size_t L = strlen(d);
    if (v < 0 && n > 1) *o++ = '-';
    for (size_t i = 0; i < L && (size_t)(o - out) + 2 < n; i++) {
        *o++ = d[i];
        if ((L - i - 1) % 3 == 0 && i + 1 < L) *o++ = ',';
    }
    *o = 0;
}

static const char *fmt(char *b, size_t n, double v, int pct)
{
    if (!HAVE(v)) snprintf(b, n, "\xe2\x80\x94"); /* em dash */
    else if (pct) snprintf(b, n, "%.2f%%", 100 * v);
    else if (fabs(v) >= 1000) group(b, n, v);
    else if (fabs(v) >= 10) snprintf(b, n, "%.1f", v);
    else snprintf(b, n, "%.2f", v);
    return b;
}

/* printf's widths count bytes; the table counts characters (UTF-8). */
static int ulen(const char *s)
{
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}
static void pad(FILE *f, const char *s, int w, int right)
{
    int k = w - ulen(s);
    if (right) for (; k > 0; k--) fputc(' ', f);
    fputs(s, f);
    if (!right) for (; k > 0; k--) fputc(' ', f);
}

/* ---- the tables --------------------------------------------------------------- */
typedef struct {
    char workload[160], status[64], note[320];
    double mtc, peer, ratio, target;
    int higher;
} row;
typedef struct {
    char model[96], task[32], note[320];
    double mtc, peer;
} arow_t;
typedef struct {
    char what[64], dtype[16];
    int batch, threads;
    double mtc, peer;
} srow;

static row g_rows[96];
static int g_nrows;
static arow_t g_acc[96];
static int g_nacc;
static srow g_inf[128];
static int g_ninf;
static struct { int batch, threads; double mtc, peer; } g_trs[16];
static int g_ntrs;

static void add_row(const char *workload, double m, double p, double target, int higher, const char *fmtnote, ...)
{
    if (g_nrows >= (int)(sizeof g_rows / sizeof *g_rows)) return;
    row *r = &g_rows[g_nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->workload, sizeof r->workload, "%s", workload);
    r->mtc = m, r->peer = p, r->target = target, r->higher = higher;
    r->ratio = HAVE(m) && HAVE(p) && m != 0 && p != 0 ? m / p : NONE;
    if (!HAVE(target) || !HAVE(r->ratio))
        snprintf(r->status, sizeof r->status, "%s", HAVE(target) ? "n/a" : "info");
    else if (higher ? r->ratio >= target : r->ratio <= target)
        snprintf(r->status, sizeof r->status, "pass");
    else
        snprintf(r->status, sizeof r->status, "MISS (%.0f%% short)",
                 100 * (higher ? target / r->ratio - 1 : r->ratio / target - 1));
    if (fmtnote) {
        va_list ap;
        va_start(ap, fmtnote);
        vsnprintf(r->note, sizeof r->note, fmtnote, ap);
        va_end(ap);
    }
}

static void add_acc(const char *model, const char *task, double m, double p, const char *note)
{
    if (g_nacc >= (int)(sizeof g_acc / sizeof *g_acc)) return;
    arow_t *a = &g_acc[g_nacc++];
    snprintf(a->model, sizeof a->model, "%s", model);
    snprintf(a->task, sizeof a->task, "%s", task);
    snprintf(a->note, sizeof a->note, "%s", note ? note : "");
    a->mtc = m, a->peer = p;
}

/* One accuracy row per task of tasks ("a,b"). */
static void add_accs(const char *model, const char *tasks, const mtc_json *m, const mtc_json *p, const char *note)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", tasks);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        add_acc(model, t, acc(m, t), acc(p, t), note);
}

/* The candidate of `mtc verify --json` whose path ends in suffix (one
 * candidate: the report itself; several: "candidates"). */
static const mtc_json *verify_cand(const char *key, const char *suffix)
{
    const mtc_json *v = rget(key, NULL, "candidates"), *c;
    int n = 1;
    if (v) {
        c = mtc_json_get(v, "candidates");
        if (c->type != MTC_JARR) return NULL;
        n = c->n, c = c->items;
    } else if (!(c = rget(key, NULL, "candidate"))) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const char *p = mtc_json_str(&c[i], "candidate");
        size_t lp = p ? strlen(p) : 0, ls = strlen(suffix);
        if (p && lp >= ls && !strcmp(p + lp - ls, suffix)) return &c[i];
    }
    return NULL;
}

static void build(void)
{
    char n1[160], n2[160];
    const mtc_json *meta = rget("meta", "version", NULL);
    const char *note8 = meta ? mtc_json_str(meta, "int8_note") : NULL;
    if (note8 && !*note8) note8 = NULL;

    /* ---- training speed ---------------------------------------------------- */
    const mtc_json *mt = rget("mtc_teacher", NULL, "samples_per_s"), *pt = rget("peer_teacher", "train", NULL);
    const mtc_json *ms = rget("mtc_student", NULL, "samples_per_s"), *ps = rget("peer_student", "train", NULL);
    n1[0] = 0;
    if (pt) {
        double ep = num(pt, "epochs_run"), nb = num(pt, "batches");
        if (ep == 1 && nb < 469) snprintf(n1, sizeof n1, "%.0f batches", nb);
        else snprintf(n1, sizeof n1, "%.0f epochs", ep);
    }
    n2[0] = 0;
    if (ps)
        snprintf(n2, sizeof n2, "%.0f epoch(s)", num(ps, "epochs_run"));
    /* targets: issue "Performance, round two" (3x both; the design's were 1.5x / 2x) */
    add_row("teacher training samples/s, 2 threads", train_sps(mt), train_sps(pt), 3.0, 1,
            "%s%s", n1, HAVE(num(pt, "samples_per_s_mean")) ? ", mean of the epochs' rates" : "");
    add_row("student training samples/s, 2 threads", best_sps("mtc_student", NULL),
            best_sps("peer_student", "train"), 3.0, 1, "%s%s%s", n2,
            HAVE(num(ps, "samples_per_s_mean")) ? ", mean of the epochs' rates" : "",
            rget("peer_student_rep", "train", NULL) ? ", best of 2 runs each" : "");
    const mtc_json *mmf = rget("mtc_mf_teacher", NULL, "samples_per_s"), *pmf = rget("peer_mf_teacher", "train", NULL);
    if (mmf || pmf)
        add_row("MultiFashion teacher training samples/s, 2 threads", train_sps(mmf), train_sps(pmf), 1.5, 1, "%s", pmf ? "5 epochs, mean of the epochs' rates, tasks fashion+digit" : "");

    /* ---- fp32 inference (1 thread: the BENCH.md reference) --------------------- */
    static const char *models[2] = {"student", "teacher"};
    static const int Bs[2] = {1, 256}; /* the batches of the 1-thread rows below */
    for (int k = 0; k < 2; k++) {
        static const double tg[2] = {3.0, 1.2};
        for (int j = 0; j < 2; j++) {
            char km[64], kp[64], w[128];
            snprintf(km, sizeof km, "mtc_infer_%s", models[k]);
            snprintf(kp, sizeof kp, "peer_infer_%s", models[k]);
            snprintf(w, sizeof w, "fp32 inference %s, batch %d, 1 thread", models[k], Bs[j]);
            const mtc_json *r = rget_bt(km, Bs[j], 1, NULL);
            const char *eng = r ? mtc_json_str(r, "engine") : NULL;
            add_row(w, num(r, "samples_per_s"), num(rget_bt(kp, Bs[j], 1, NULL), "samples_per_s"), tg[j], 1,
                    "samples/s vs PyTorch eager; mtc %s", eng && !strcmp(eng, "rt") ? "runtime (mtc_rt_run)"
                                                          : "mtc_model_forward");
        }
    }
    /* the teacher's conv: Winograd against im2col in the runtime, and the
     * runtime against the training engine's forward */
    for (int j = 0; j < 2; j++) {
        const mtc_json *rw = rget_bt("mtc_infer_teacher", Bs[j], 1, NULL);
        const mtc_json *ri = rget_bt("mtc_infer_teacher_im2col", Bs[j], 1, NULL);
        const mtc_json *rm = rget_bt("mtc_infer_teacher_model", Bs[j], 1, NULL);
        char w[128];
        if (ri) {
            snprintf(w, sizeof w, "fp32 teacher batch %d: runtime Winograd vs im2col", Bs[j]);
            add_row(w, num(rw, "samples_per_s"), num(ri, "samples_per_s"), NONE, 1,
                    "samples/s, 1 thread; peer column = MTC_WINOGRAD=0");
        }
        if (rm) {
            snprintf(w, sizeof w, "fp32 teacher batch %d: runtime vs mtc_model_forward", Bs[j]);
            add_row(w, num(rw, "samples_per_s"), num(rm, "samples_per_s"), NONE, 1,
                    "samples/s, 1 thread; peer column = the training engine's eval forward (im2col)");
        }
    }

    /* ---- mtc label: the teacher's convs as shipped against im2col ------------------
     * samples/s of the labelling itself (the JSON's seconds: data loading and
     * the file's write excluded), best of the rounds on each side */
    {
        double best[2] = {NONE, NONE};
        const char *keys[2] = {"mtc_label_rep", "mtc_label_im2col"};
        for (int side = 0; side < 2; side++)
            for (int i = 0; i < g_nrec; i++) {
                const mtc_json *r = &g_rec[i];
                if (!str_is(r, "key", keys[side]) && !(side == 0 && str_is(r, "key", "mtc_label"))) continue;
                double n = mtc_json_num(mtc_json_get(r, "data"), "n", 0), sec = mtc_json_num(r, "seconds", 0);
                if (n > 0 && sec > 0 && (isnan(best[side]) || n / sec > best[side])) best[side] = n / sec;
            }
        if (!isnan(best[1]))
            add_row("mtc label, train split, 2 threads: samples/s vs im2col convs", best[0], best[1], 2.0, 1,
                    "KD teacher (plain CNN); peer column = MTC_WINOGRAD=0 (Winograd and the direct conv off)");
    }

    /* ---- structured pruning: the KD student against its 50%-neuron cut ---------- */
    const mtc_json *st = rget("mtc_struct", NULL, "file_bytes_after");
    for (int j = 0; j < 2; j++) {
        const mtc_json *a = rget_bt("mtc_infer_struct", Bs[j], 1, NULL), *b = rget_bt("mtc_infer_kd", Bs[j], 1, NULL);
        if (!a && !b) continue;
        char w[128];
        snprintf(w, sizeof w, "structured 50%% neurons: fp32 inference batch %d, 1 thread", Bs[j]);
        add_row(w, num(a, "samples_per_s"), num(b, "samples_per_s"), 1.6, 1,
                "samples/s; peer column = the KD student before the cut");
    }
    if (st)
        add_row("structured 50% neurons: checkpoint bytes vs KD student", num(st, "file_bytes_after"),
                num(st, "file_bytes_before"), 0.55, 0, "lower is better; parameters %.0f -> %.0f",
                num(st, "parameters_before"), num(st, "parameters_after"));

    /* ---- int8 ----------------------------------------------------------------- */
    const mtc_json *m8 = rget_bt("mtc_int8_student", 256, 1, "infer_rt");
    const mtc_json *mf = rget_bt("mtc_infer_student", 256, 1, NULL);
    const mtc_json *rf = rget_bt("mtc_model_fp32_student", 256, 1, NULL);
    const mtc_json *pdyn = rget_bt("peer_int8_dynamic", 256, 1, NULL);
    const mtc_json *pst = rget_bt("peer_int8_static", 256, 1, NULL);
    if (!pst) pst = rget("peer_int8_static", NULL, NULL);
    add_row("int8 inference student, batch 256 vs mtc fp32", num(m8, "samples_per_s"), num(mf, "samples_per_s"), 2.5,
            1, "%s", note8 ? note8 : "peer column = mtc fp32 (the same runtime)");
    if (rf)
        add_row("int8 inference student, batch 256 vs fp32 mtc_model_forward", num(m8, "samples_per_s"),
                num(rf, "samples_per_s"), NONE, 1, "peer column = the fp32 checkpoint through the training engine");
    const char *eng = pdyn ? mtc_json_str(pdyn, "engine") : NULL;
    add_row("int8 inference student, batch 256 vs PyTorch dynamic", num(m8, "samples_per_s"),
            num(pdyn, "samples_per_s"), 1.5, 1, "%s%speer engine %s", note8 ? note8 : "", note8 ? "; " : "",
            eng ? eng : "?");
    if (pst) {
        const char *un = mtc_json_str(pst, "unavailable"), *e2 = mtc_json_str(pst, "engine");
        add_row("PyTorch static int8 (per-channel) batch 256, for reference", NONE, num(pst, "samples_per_s"), NONE,
                1, un ? "%s" : "engine %s", un ? un : e2 ? e2 : "?");
    }
    /* int8 kernels by ISA (MTC_ISA override), same checkpoint, same run */
    double isa[3];
    static const char *isas[3] = {"avx512", "avx2", "scalar"};
    const char *isa_got[3];
    for (int k = 0; k < 3; k++) {
        char key[64];
        snprintf(key, sizeof key, "mtc_int8_isa_%s", isas[k]);
        const mtc_json *r = rget_bt(key, 256, 1, "infer_rt");
        isa[k] = num(r, "samples_per_s");
        isa_got[k] = r ? mtc_json_str(r, "isa") : NULL;
    }
    if (HAVE(isa[0]) || HAVE(isa[1]))
        add_row("int8 student batch 256: VNNI (avx512) vs AVX2 kernels", isa[0], isa[1], NONE, 1,
                "MTC_ISA override, 1 thread; ran as %s / %s", isa_got[0] ? isa_got[0] : "?",
                isa_got[1] ? isa_got[1] : "?");
    if (HAVE(isa[1]) || HAVE(isa[2]))
        add_row("int8 student batch 256: AVX2 vs scalar kernels", isa[1], isa[2], NONE, 1,
                "MTC_ISA override, 1 thread; ran as %s / %s", isa_got[1] ? isa_got[1] : "?",
                isa_got[2] ? isa_got[2] : "?");

    /* ---- against ONNX Runtime: the same models exported, 1 thread ------------------ */
    {
        static const char *ort_models[4] = {"student", "teacher", "student_int8", "teacher_int8"};
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 2; j++) {
                char km[64], kp[64], w[128];
                snprintf(km, sizeof km, "mtc_ort_%s", ort_models[k]);
                snprintf(kp, sizeof kp, "ort_%s", ort_models[k]);
                const int int8 = k >= 2;
                double m = best_bt(km, Bs[j], 1, int8 ? "infer_rt" : "infer", "samples_per_s", NULL);
                const mtc_json *pr;
                double p = best_bt(kp, Bs[j], 1, "infer", "samples_per_s", &pr);
                if (!HAVE(m) && !HAVE(p)) continue;
                snprintf(w, sizeof w, "%s inference %s, batch %d, 1 thread vs ONNX Runtime", int8 ? "int8" : "fp32",
                         k % 2 ? "teacher" : "student", Bs[j]);
                if (Bs[j] == 1 && HAVE(num(pr, "samples_per_s_net")))
                    add_row(w, m, p, 1.0, 1, "samples/s, best of 2 alternating runs; ORT net of its binding's %.1f us "
                            "per call: %.0f (mtc / that: %.2fx)", num(pr, "overhead_us"), num(pr, "samples_per_s_net"),
                            HAVE(m) ? m / num(pr, "samples_per_s_net") : NONE);
                else
                    add_row(w, m, p, 1.0, 1, "samples/s, best of 2 alternating runs; %s", int8 ? "QDQ export of mtc's int8 checkpoint"
                                                                                            : "mtc export of the same checkpoint");
            }
    }

    /* ---- dense layer vs OpenBLAS, core types -------------------------------------- */
    const mtc_json *dc = rget("dense_chosen", "dense", NULL);
    if (dc) {
        char w[128];
        snprintf(w, sizeof w, "dense fwd %.0fx%.0f->%.0f GFLOP/s vs bare sgemm", num(dc, "B"), num(dc, "I"),
                 num(dc, "O"));
        const char *cn = mtc_json_str(dc, "corename");
        add_row(w, num(dc, "dense_gflops"), num(dc, "sgemm_gflops"), 0.70, 1,
                "core %s; peer column = OpenBLAS, same shape", cn ? cn : "?");
        add_row("dense fwd GFLOP/s vs sgemm 1024^3 peak", num(dc, "dense_gflops"), num(dc, "sgemm_peak_gflops"),
                NONE, 1, "peer column = OpenBLAS peak");
        if (num(dc, "rt_dense_gflops") > 0)
            add_row("runtime dense fwd (packed weights) GFLOP/s vs bare sgemm", num(dc, "rt_dense_gflops"),
                    num(dc, "sgemm_gflops"), NONE, 1, "mtc_gemm_avx2, batch %.0f; peer column = OpenBLAS, same shape",
                    num(dc, "B"));
        if (num(dc, "rt_dense_avx512_gflops") > 0) {
            add_row("runtime dense fwd AVX-512 GFLOP/s vs bare sgemm", num(dc, "rt_dense_avx512_gflops"),
                    num(dc, "sgemm_gflops"), NONE, 1, "mtc_gemm_avx512, batch %.0f; peer column = OpenBLAS, same shape",
                    num(dc, "B"));
            add_row("runtime dense fwd AVX-512 GFLOP/s vs sgemm 1024^3 peak", num(dc, "rt_dense_avx512_gflops"),
                    num(dc, "sgemm_peak_gflops"), 0.80, 1, "target: >= 80%% of the machine's sgemm peak");
        }
    }
    const mtc_json *dh = rget("dense_Haswell", "dense", NULL), *dsx = rget("dense_SkylakeX", "dense", NULL);
    if (dh && dsx) {
        const char *ct = meta ? mtc_json_str(meta, "coretype") : NULL;
        add_row("OPENBLAS_CORETYPE SkylakeX vs Haswell, sgemm 1024^3 GFLOP/s", num(dsx, "sgemm_peak_gflops"),
                num(dh, "sgemm_peak_gflops"), NONE, 1, "mtc chose %s", ct ? ct : "?");
        add_row("OPENBLAS_CORETYPE SkylakeX vs Haswell, mtc dense fwd GFLOP/s", num(dsx, "dense_gflops"),
                num(dh, "dense_gflops"), NONE, 1, "1 thread");
    }
    const mtc_json *psg = rget("peer_sgemm", "sgemm", NULL);
    if (psg && dc)
        add_row("sgemm 256x128x784 GFLOP/s: mtc's OpenBLAS vs torch.mm", num(dc, "sgemm_gflops"), num(psg, "gflops"),
                NONE, 1, "1 thread");

    /* ---- memory ---------------------------------------------------------------- */
    static const char *rk[2][2] = {{"mtc_teacher", "teacher"}, {"mtc_student", "student"}};
    for (int k = 0; k < 2; k++) {
        const mtc_json *rss = rget(rk[k][0], "rss", NULL), *tr = rget(rk[k][0], NULL, "parameters");
        double P = num(tr, "parameters");
        if (rss && HAVE(P)) {
            char w[128];
            snprintf(w, sizeof w, "peak RSS of mtc train (%s), MiB vs 2x u8 data + model", rk[k][1]);
            add_row(w, num(rss, "peak_rss_kib") / 1024, (2 * U8_DATASET_BYTES + 4 * P) / 1048576.0, 1.0, 0,
                    "lower is better");
        }
    }

    /* ---- accuracy ------------------------------------------------------------ */
    add_accs("teacher, plain CNN (the speed rows')", "fashion,super", mt, pt, n1);
    add_accs("student scratch", "fashion,super", ms, ps, n2);
    const mtc_json *kdt = rget("mtc_kd_teacher", NULL, "samples_per_s");
    const mtc_json *mat = rget("mtc_acc_teacher", NULL, "samples_per_s"), *pat = rget("peer_acc_teacher", "train", NULL);
    if (mat || pat)
        add_accs("teacher, fmnist-teacher.cfg (BN, cosine)", "fashion,super", mat, pat, "5 epochs, its [train] recipe");
    if (kdt) add_accs("KD teacher (plain CNN, 15 epochs, cosine, shift)", "fashion,super", kdt, NULL, "teacher of the KD rows");
    const mtc_json *kd = rget("mtc_distill", NULL, "tasks");
    if (kd) {
        static const char *tk[2] = {"fashion", "super"};
        for (int t = 0; t < 2; t++) {
            const mtc_json *tt = mtc_json_get(mtc_json_get(kd, "tasks"), tk[t]);
            double g = path_num(tt, "gap_closed", (char *)NULL), sc = path_num(tt, "scratch", (char *)NULL);
            char note[256];
            snprintf(note, sizeof note, "T=%g alpha=%g; scratch twin %s, gap closed %s",
                     path_num(tt, "T", (char *)NULL), path_num(tt, "alpha", (char *)NULL),
                     HAVE(sc) ? (snprintf(n1, sizeof n1, "%.2f%%", 100 * sc), n1) : "-",
                     HAVE(g) ? (snprintf(n2, sizeof n2, "%.1f%%", 100 * g), n2) : "-");
            add_acc("student KD (mtc distill)", tk[t], path_num(tt, "student_kd", (char *)NULL), NONE, note);
        }
    }
    const mtc_json *pr = rget("mtc_prune", NULL, "sparsity");
    if (pr) {
        const mtc_json *vp = verify_cand("mtc_verify", "/pruned.mtc");
        for (int t = 0; t < 2; t++) {
            const char *tk = t ? "super" : "fashion";
            char note[256];
            snprintf(note, sizeof note, "sparsity %.1f%%, AGP + KD fine-tune, %+.2f pt vs KD student; %s bytes "
                     "(fp32 student %s)", 100 * num(pr, "sparsity"),
                     100 * (path_num(pr, "test_after", tk, (char *)NULL) - path_num(pr, "test_before", tk, (char *)NULL)),
                     fmt(n1, sizeof n1, vp ? num(vp, "candidate_file_bytes") : num(pr, "file_bytes_after"), 0),
                     fmt(n2, sizeof n2, vp ? num(vp, "reference_file_bytes") : NONE, 0));
            add_acc("student pruned (KD student, mtc prune)", tk, path_num(pr, "test_after", tk, (char *)NULL), NONE,
                    note);
        }
    }
    /* the rest of the AGP grid (90%: the row above) and the structured cut:
     * drops against the KD student they were pruned from */
    static const struct { const char *key, *what; } grid[] = {
        {"mtc_prune_s50", "student AGP 50% (KD fine-tune)"}, {"mtc_prune_s80", "student AGP 80% (KD fine-tune)"},
        {"mtc_prune_s95", "student AGP 95% (KD fine-tune)"},
        {"mtc_struct", "student structured 50% neurons (KD fine-tune)"}};
    for (size_t g = 0; g < sizeof grid / sizeof *grid; g++) {
        const mtc_json *r = rget(grid[g].key, NULL, "test_after");
        if (!r) continue;
        for (int t = 0; t < 2; t++) {
            const char *tk = t ? "super" : "fashion";
            double b = path_num(r, "test_before", tk, (char *)NULL), a = path_num(r, "test_after", tk, (char *)NULL);
            char note[256];
            snprintf(note, sizeof note, "%+.2f pt vs KD student; %s bytes", 100 * (a - b),
                     fmt(n1, sizeof n1, num(r, "file_bytes_after"), 0));
            add_acc(grid[g].what, tk, a, NONE, note);
        }
    }
    const mtc_json *acc8 = rget("mtc_int8_student", "accuracy", NULL);
    const mtc_json *pd8 = rget("peer_int8_dynamic", NULL, NULL);
    {
        const mtc_json *v8 = verify_cand("mtc_verify", "/student.q8.mtc");
        char note[256];
        if (v8)
            snprintf(note, sizeof note, "%s bytes, %.2fx smaller than fp32", fmt(n1, sizeof n1,
                     num(v8, "candidate_file_bytes"), 0), num(v8, "compression_ratio"));
        else
            snprintf(note, sizeof note, "%s", note8 ? note8 : "");
        if (acc8) {
            add_accs("student int8 (mtc PTQ | peer dynamic)", "fashion,super", acc8, pd8, note);
        } else { /* bench_infer int8 did not run: mtc quantize's own test figures */
            const mtc_json *q = rget("mtc_quantize_student", NULL, "tasks");
            for (int t = 0; t < 2; t++) {
                const char *tk = t ? "super" : "fashion";
                add_acc("student int8 (mtc PTQ | peer dynamic)", tk,
                        path_num(q, "tasks", tk, "int8", (char *)NULL), acc(pd8, tk), note);
            }
        }
    }
    if (pst && !mtc_json_get(pst, "unavailable"))
        add_accs("student int8 (peer static per-channel)", "fashion,super", NULL, pst, "");
    const mtc_json *vpq = verify_cand("mtc_verify", "/pruned.q8.mtc");
    if (vpq) {
        const mtc_json *tt = mtc_json_get(vpq, "tasks");
        char note[256];
        snprintf(note, sizeof note, "KD -> prune -> int8; %s bytes, %.2fx smaller than fp32 student",
                 fmt(n1, sizeof n1, num(vpq, "candidate_file_bytes"), 0), num(vpq, "compression_ratio"));
        add_acc("student pruned + int8 (pipeline end)", "fashion", path_num(tt, "fashion", "candidate", (char *)NULL),
                NONE, note);
        add_acc("student pruned + int8 (pipeline end)", "super", path_num(tt, "super", "candidate", (char *)NULL),
                NONE, note);
    }
    if (mmf || pmf) add_accs("MultiFashion teacher (2 tasks)", "fashion,digit", mmf, pmf, "5 epochs");
    const mtc_json *sf = rget("mtc_mf_fashion_only", NULL, "samples_per_s"), *sd = rget("mtc_mf_digit_only", NULL,
                                                                                       "samples_per_s");
    const mtc_json *psf = rget("peer_mf_fashion_only", "train", NULL), *psd = rget("peer_mf_digit_only", "train", NULL);
    if (sf || psf) add_accs("MultiFashion single-task baseline", "fashion", sf, psf, "same CNN, fashion head only");
    if (sd || psd) add_accs("MultiFashion single-task baseline", "digit", sd, psd, "same CNN, digit head only");

    /* ---- scaling tables ---------------------------------------------------------- */
    for (int k = 0; k < 2; k++) {
        char km[64], kp[64];
        snprintf(km, sizeof km, "mtc_infer_%s", models[k]);
        snprintf(kp, sizeof kp, "peer_infer_%s", models[k]);
        for (int T = 1; T <= 2; T++)
            for (int B = 1; B <= 256; B *= 16) {
                double m = num(rget_bt(km, B, T, NULL), "samples_per_s"), p = num(rget_bt(kp, B, T, NULL),
                                                                                  "samples_per_s");
                if ((HAVE(m) || HAVE(p)) && g_ninf < 128) {
                    srow *s = &g_inf[g_ninf++];
                    snprintf(s->what, sizeof s->what, "%s", models[k]);
                    snprintf(s->dtype, sizeof s->dtype, "fp32");
                    s->batch = B, s->threads = T, s->mtc = m, s->peer = p;
                }
            }
    }
    for (int T = 1; T <= 2; T++) /* int8 through the runtime vs PyTorch dynamic int8 */
        for (int B = 1; B <= 256; B *= 16) {
            double m = num(rget_bt("mtc_int8_student", B, T, "infer_rt"), "samples_per_s"),
                   p = num(rget_bt("peer_int8_dynamic", B, T, NULL), "samples_per_s");
            if ((HAVE(m) || HAVE(p)) && g_ninf < 128) {
                srow *s = &g_inf[g_ninf++];
                snprintf(s->what, sizeof s->what, "student");
                snprintf(s->dtype, sizeof s->dtype, "int8");
                s->batch = B, s->threads = T, s->mtc = m, s->peer = p;
            }
        }
    static const int tb[3] = {32, 128, 512};
    for (int T = 1; T <= 2; T++)
        for (int j = 0; j < 3; j++) {
            char km[64], kp[64];
            snprintf(km, sizeof km, "mtc_student_b%d_t%d", tb[j], T);
            snprintf(kp, sizeof kp, "peer_student_b%d_t%d", tb[j], T);
            double m = train_sps(rget(km, NULL, "samples_per_s"));
            double p = train_sps(rget(kp, "train", NULL));
            if (tb[j] == 128 && T == 2) /* the main run, as in the table above */
                m = HAVE(m) ? m : best_sps("mtc_student", NULL),
                p = HAVE(p) ? p : best_sps("peer_student", "train");
            if ((HAVE(m) || HAVE(p)) && g_ntrs < 16) {
                g_trs[g_ntrs].batch = tb[j], g_trs[g_ntrs].threads = T;
                g_trs[g_ntrs].mtc = m, g_trs[g_ntrs].peer = p;
                g_ntrs++;
            }
        }
}

/* ---- output ----------------------------------------------------------------------- */
static void failed_list(char *out, size_t n)
{
    out[0] = 0;
    size_t len = 0;
    for (int i = 0; i < g_nrec; i++) {
        const mtc_json *f = mtc_json_get(&g_rec[i], "failed");
        const char *k = rkey(&g_rec[i]);
        if (!f || f->type != MTC_JBOOL || !f->num || !k) continue;
        int dup = 0;
        for (int j = 0; j < i && !dup; j++) {
            const mtc_json *g = mtc_json_get(&g_rec[j], "failed");
            dup = g && g->type == MTC_JBOOL && g->num && str_is(&g_rec[j], "key", k);
        }
        if (!dup && len + strlen(k) + 3 < n) len += snprintf(out + len, n - len, "%s%s", len ? ", " : "", k);
    }
}

static void print_text(FILE *f, const char *mode, double secs, const char *version)
{
    char a[64], b[64], c[64], d[64];
    fprintf(f, "\nmtc bench (%s, %.0f s) \xe2\x80\x94 %s\n", mode, secs, version);
    int w = 20;
    for (int i = 0; i < g_nrows; i++) w = ulen(g_rows[i].workload) > w ? ulen(g_rows[i].workload) : w;
    fprintf(f, "\n");
    pad(f, "workload", w, 0);
    fprintf(f, " | %10s | %10s | %6s | %7s | status\n", "mtc", "peer", "ratio", "target");
    for (int i = 0; i < w + 60; i++) fputc('-', f);
    fputc('\n', f);
    for (int i = 0; i < g_nrows; i++) {
        const row *r = &g_rows[i];
        pad(f, r->workload, w, 0);
        fputs(" | ", f);
        pad(f, fmt(a, sizeof a, r->mtc, 0), 10, 1);
        fputs(" | ", f);
        pad(f, fmt(b, sizeof b, r->peer, 0), 10, 1);
        fputs(" | ", f);
        if (HAVE(r->ratio)) snprintf(c, sizeof c, "%.2fx", r->ratio);
        else snprintf(c, sizeof c, "\xe2\x80\x94");
        pad(f, c, 6, 1);
        fputs(" | ", f);
        if (HAVE(r->target)) snprintf(d, sizeof d, "%s%.2f", r->higher ? ">=" : "<=", r->target);
        else d[0] = 0;
        pad(f, d, 7, 1);
        fprintf(f, " | %s", r->status);
        if (r->note[0]) fprintf(f, "  (%s)", r->note);
        fputc('\n', f);
    }
    fprintf(f, "\n");
    pad(f, "accuracy (test)", 44, 0);
    fprintf(f, " | %-7s | %7s | %7s | note\n", "task", "mtc", "peer");
    for (int i = 0; i < 85; i++) fputc('-', f);
    fputc('\n', f);
    for (int i = 0; i < g_nacc; i++) {
        const arow_t *r = &g_acc[i];
        pad(f, r->model, 44, 0);
        fputs(" | ", f);
        pad(f, r->task, 7, 0);
        fputs(" | ", f);
        pad(f, fmt(a, sizeof a, r->mtc, 1), 7, 1);
        fputs(" | ", f);
        pad(f, fmt(b, sizeof b, r->peer, 1), 7, 1);
        fprintf(f, " | %s\n", r->note);
    }
    if (g_ninf) {
        fprintf(f, "\ninference samples/s (batch x threads)            mtc         peer  ratio\n");
        for (int i = 0; i < g_ninf; i++) {
            const srow *s = &g_inf[i];
            fprintf(f, "  %-8s %-5s batch %3d threads %d: ", s->what, s->dtype, s->batch, s->threads);
            pad(f, fmt(a, sizeof a, s->mtc, 0), 12, 1);
            fputc(' ', f);
            pad(f, fmt(b, sizeof b, s->peer, 0), 12, 1);
            if (HAVE(s->mtc) && HAVE(s->peer) && s->peer > 0) fprintf(f, "  %.2fx", s->mtc / s->peer);
            fputc('\n', f);
        }
    }
    if (g_ntrs) {
        fprintf(f, "\nstudent training samples/s by batch and threads\n");
        for (int i = 0; i < g_ntrs; i++) {
            fprintf(f, "  batch %3d, %d thread%s: mtc ", g_trs[i].batch, g_trs[i].threads, g_trs[i].threads > 1 ? "s" : " ");
            pad(f, fmt(a, sizeof a, g_trs[i].mtc, 0), 8, 1);
            fputs("  peer ", f);
            pad(f, fmt(b, sizeof b, g_trs[i].peer, 0), 8, 1);
            if (HAVE(g_trs[i].mtc) && HAVE(g_trs[i].peer) && g_trs[i].peer > 0)
                fprintf(f, "  %.2fx", g_trs[i].mtc / g_trs[i].peer);
            fputc('\n', f);
        }
    }
}

/* s with '|' escaped for a markdown table cell (static buffer, k of 4). */
static const char *md(const char *s)
{
    static char buf[4][768];
    static int k;
    char *o = buf[k = (k + 1) % 4];
    size_t n = 0;
    for (; *s && n + 3 < sizeof buf[0]; s++) {
        if (*s == '|') o[n++] = '\\';
        o[n++] = *s;
    }
    o[n] = 0;
    return o;
}

static void print_md(FILE *f, const char *mode, double secs, const char *version, const char *when)
{
    char a[64], b[64];
    fprintf(f, "# mtc bench (%s, %.0f s, %s)\n\n%s\n\n", mode, secs, when, version);
    fprintf(f, "| workload | mtc | peer | ratio | target | status | note |\n|---|---:|---:|---:|---:|---|---|\n");
    for (int i = 0; i < g_nrows; i++) {
        const row *r = &g_rows[i];
        fprintf(f, "| %s | %s | %s | ", md(r->workload), fmt(a, sizeof a, r->mtc, 0), fmt(b, sizeof b, r->peer, 0));
        if (HAVE(r->ratio)) fprintf(f, "%.2fx", r->ratio);
        else fprintf(f, "\xe2\x80\x94");
        fprintf(f, " | ");
        if (HAVE(r->target)) fprintf(f, "%s %.2f", r->higher ? "&ge;" : "&le;", r->target);
        fprintf(f, " | %s | %s |\n", r->status, md(r->note));
    }
    fprintf(f, "\n| accuracy (test) | task | mtc | peer | note |\n|---|---|---:|---:|---|\n");
    for (int i = 0; i < g_nacc; i++)
        fprintf(f, "| %s | %s | %s | %s | %s |\n", md(g_acc[i].model), md(g_acc[i].task),
                fmt(a, sizeof a, g_acc[i].mtc, 1), fmt(b, sizeof b, g_acc[i].peer, 1), md(g_acc[i].note));
    if (g_ninf) {
        fprintf(f, "\n| inference samples/s | dtype | batch | threads | mtc | peer | ratio |\n"
                   "|---|---|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < g_ninf; i++) {
            const srow *s = &g_inf[i];
            fprintf(f, "| %s | %s | %d | %d | %s | %s | ", s->what, s->dtype, s->batch, s->threads,
                    fmt(a, sizeof a, s->mtc, 0), fmt(b, sizeof b, s->peer, 0));
            if (HAVE(s->mtc) && HAVE(s->peer) && s->peer > 0) fprintf(f, "%.2fx", s->mtc / s->peer);
            fprintf(f, " |\n");
        }
    }
    if (g_ntrs) {
        fprintf(f, "\n| student training samples/s | threads | mtc | peer | ratio |\n|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < g_ntrs; i++) {
            fprintf(f, "| batch %d | %d | %s | %s | ", g_trs[i].batch, g_trs[i].threads,
                    fmt(a, sizeof a, g_trs[i].mtc, 0), fmt(b, sizeof b, g_trs[i].peer, 0));
            if (HAVE(g_trs[i].mtc) && HAVE(g_trs[i].peer) && g_trs[i].peer > 0)
                fprintf(f, "%.2fx", g_trs[i].mtc / g_trs[i].peer);
            fprintf(f, " |\n");
        }
    }
}

static void jw_maybe(mtc_jw *w, const char *k, double v)
{
    mtc_jw_knum(w, k, v); /* null when absent (not finite) */
}

static int write_json(const char *out, const char *mode, double secs, const char *when, const char *failed,
                      mtc_err *e)
{
    const mtc_json *meta = rget("meta", "version", NULL);
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "when", when);
    mtc_jw_kstr(&w, "mode", mode);
    mtc_jw_knum(&w, "seconds", secs);
    mtc_jw_key(&w, "mtc_version");
    if (meta && mtc_json_str(meta, "text")) mtc_jw_str(&w, mtc_json_str(meta, "text"));
    else mtc_jw_null(&w);
    mtc_jw_key(&w, "openblas_coretype");
    if (meta && mtc_json_str(meta, "coretype")) mtc_jw_str(&w, mtc_json_str(meta, "coretype"));
    else mtc_jw_null(&w);
    mtc_jw_key(&w, "table");
    mtc_jw_arr(&w);
    for (int i = 0; i < g_nrows; i++) {
        const row *r = &g_rows[i];
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "workload", r->workload);
        jw_maybe(&w, "mtc", r->mtc);
        jw_maybe(&w, "peer", r->peer);
        jw_maybe(&w, "ratio", r->ratio);
        jw_maybe(&w, "target", r->target);
        mtc_jw_kstr(&w, "target_op", r->higher ? ">=" : "<=");
        mtc_jw_kstr(&w, "status", r->status);
        mtc_jw_kstr(&w, "note", r->note);
        mtc_jw_obj_end(&w);
    }
    mtc_jw_arr_end(&w);
    mtc_jw_key(&w, "accuracy");
    mtc_jw_arr(&w);
    for (int i = 0; i < g_nacc; i++) {
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "model", g_acc[i].model);
        mtc_jw_kstr(&w, "task", g_acc[i].task);
        jw_maybe(&w, "mtc", g_acc[i].mtc);
        jw_maybe(&w, "peer", g_acc[i].peer);
        mtc_jw_kstr(&w, "note", g_acc[i].note);
        mtc_jw_obj_end(&w);
    }
    mtc_jw_arr_end(&w);
    mtc_jw_key(&w, "inference_scaling");
    mtc_jw_arr(&w);
    for (int i = 0; i < g_ninf; i++) {
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "model", g_inf[i].what);
        mtc_jw_kstr(&w, "dtype", g_inf[i].dtype);
        mtc_jw_kint(&w, "batch", g_inf[i].batch);
        mtc_jw_kint(&w, "threads", g_inf[i].threads);
        jw_maybe(&w, "mtc", g_inf[i].mtc);
        jw_maybe(&w, "peer", g_inf[i].peer);
        mtc_jw_obj_end(&w);
    }
    mtc_jw_arr_end(&w);
    mtc_jw_key(&w, "training_scaling");
    mtc_jw_arr(&w);
    for (int i = 0; i < g_ntrs; i++) {
        mtc_jw_obj(&w);
        mtc_jw_kint(&w, "batch", g_trs[i].batch);
        mtc_jw_kint(&w, "threads", g_trs[i].threads);
        jw_maybe(&w, "mtc", g_trs[i].mtc);
        jw_maybe(&w, "peer", g_trs[i].peer);
        mtc_jw_obj_end(&w);
    }
    mtc_jw_arr_end(&w);
    mtc_jw_key(&w, "failed");
    mtc_jw_arr(&w);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", failed);
    for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) mtc_jw_str(&w, t);
    mtc_jw_arr_end(&w);
    mtc_jw_key(&w, "records");
    mtc_jw_arr(&w);
    for (int i = 0; i < g_nrec; i++) mtc_jw_value(&w, &g_rec[i]);
    mtc_jw_arr_end(&w);
    mtc_jw_obj_end(&w);
    int rc;
    char *t = w.oom ? NULL : malloc(w.len + 1);
    if (!t) {
        rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    } else { /* a final newline, as editors expect */
        memcpy(t, w.buf, w.len);
        t[w.len] = '\n';
        rc = mtc_write_file_atomic(out, t, w.len + 1, e);
        free(t);
    }
    mtc_jw_free(&w);
    return rc;
}

/* ---- modes ------------------------------------------------------------------------- */
static int cmd_tag(const char *key)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s != '{') continue;
        mtc_json j;
        mtc_err e = {0};
        if (mtc_json_parse(s, strlen(s), &j, &e)) continue;
        if (j.type == MTC_JOBJ) {
            mtc_jw w;
            mtc_jw_init(&w);
            mtc_jw_obj(&w);
            for (int i = 0; i < j.n; i++) {
                if (!strcmp(j.keys[i], "key")) continue;
                mtc_jw_key(&w, j.keys[i]);
                mtc_jw_value(&w, &j.items[i]);
            }
            mtc_jw_kstr(&w, "key", key);
            mtc_jw_obj_end(&w);
            if (!w.oom) printf("%s\n", w.buf);
            mtc_jw_free(&w);
        }
        mtc_json_free(&j);
    }
    free(line);
    return 0;
}

static int cmd_meta(int argc, char **argv)
{
    if (argc < 5) return fprintf(stderr, "usage: bench_report meta VERSION CORE MODE NOTE\n"), 2;
    mtc_jw w;
    mtc_jw_init(&w);
    mtc_jw_obj(&w);
    mtc_jw_kstr(&w, "mode", "version");
    mtc_jw_kstr(&w, "text", argv[1]);
    mtc_jw_kstr(&w, "coretype", argv[2]);
    mtc_jw_kstr(&w, "bench_mode", argv[3]);
    mtc_jw_kstr(&w, "int8_note", argv[4]);
    mtc_jw_kstr(&w, "key", "meta");
    mtc_jw_obj_end(&w);
    printf("%s\n", w.buf);
    mtc_jw_free(&w);
    return 0;
}

/* Reads the JSON object lines of path into g_rec (others skipped, the first
 * one named). 0 or 2. */
static int load_records(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return perror(path), 2;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, bad = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (!n) continue;
        mtc_err e = {0};
        mtc_json j;
        if (mtc_json_parse(line, (size_t)n, &j, &e) || j.type != MTC_JOBJ) {
            mtc_json_free(&j);
            if (!bad++) fprintf(stderr, "bench_report: %s:%d: %s (skipped)\n", path, lineno, e.msg[0] ? e.msg : "not an object");
            continue;
        }
        mtc_json *g = realloc(g_rec, (size_t)(g_nrec + 1) * sizeof *g_rec);
        if (!g) {
            mtc_json_free(&j);
            free(line);
            fclose(f);
            return fprintf(stderr, "bench_report: out of memory\n"), 2;
        }
        g_rec = g;
        g_rec[g_nrec++] = j;
    }
    free(line);
    fclose(f);
    return 0;
}

static int cmd_report(int argc, char **argv)
{
    if (argc < 3)
        return fprintf(stderr, "usage: bench_report report RECORDS OUT.json [--mode M] [--seconds S] [--summary F.md]\n"),
               2;
    const char *mode = "?", *summary = NULL;
    double secs = 0;
    for (int i = 3; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--mode")) mode = argv[++i];
        else if (!strcmp(argv[i], "--seconds")) secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--summary")) summary = argv[++i];
    }
    if (load_records(argv[1])) return 2;
    build();
    const mtc_json *meta = rget("meta", "version", NULL);
    char version[1024] = "";
    const char *vt = meta ? mtc_json_str(meta, "text") : NULL;
    for (size_t i = 0, o = 0; vt && vt[i] && o + 3 < sizeof version; i++) {
        if (vt[i] == '\n') {
            if (vt[i + 1]) version[o++] = ';', version[o++] = ' ';
        } else {
            version[o++] = vt[i];
        }
        version[o] = 0;
    }
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    char failed[4096];
    failed_list(failed, sizeof failed);
    const char *note8 = meta ? mtc_json_str(meta, "int8_note") : NULL;

    print_text(stdout, mode, secs, version);
    if (failed[0]) printf("\nfailed steps (see bench/results/latest.log): %s\n", failed);
    if (note8 && *note8) printf("\n%s\n", note8);
    mtc_err e = {0};
    if (write_json(argv[2], mode, secs, when, failed, &e)) return fprintf(stderr, "bench_report: %s\n", e.msg), 2;
    printf("\nwrote %s\n", argv[2]);
    if (summary) {
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        if (!m) return perror("open_memstream"), 2;
        print_md(m, mode, secs, version, when);
        if (failed[0]) fprintf(m, "\nfailed steps: %s\n", failed);
        if (note8 && *note8) fprintf(m, "\n%s\n", note8);
        fclose(m);
        int rc = mtc_write_file_atomic(summary, buf, len, &e);
        free(buf);
        if (rc) return fprintf(stderr, "bench_report: %s\n", e.msg), 2;
        printf("wrote %s\n", summary);
    }
    for (int i = 0; i < g_nrec; i++) mtc_json_free(&g_rec[i]);
    free(g_rec);
    return 0;
}

/* ---- front: the size–accuracy front (bench/front.sh) ---------------------- */

static int is_true(const mtc_json *v)
{
    return v && v->type == MTC_JBOOL && v->num != 0;
}

/* group()'s "1,234,567", "-" when there is no value */
static const char *commas(double v, char *buf, size_t cap)
{
    if (!isfinite(v)) snprintf(buf, cap, "-");
    else group(buf, cap, v);
    return buf;
}

/* The point's name: the file name without directory and ".mtc". */
static void point_name(const char *path, char *buf, size_t cap)
{
    const char *b = strrchr(path, '/');
    snprintf(buf, cap, "%s", b ? b + 1 : path);
    size_t n = strlen(buf);
    if (n > 4 && !strcmp(buf + n - 4, ".mtc")) buf[n - 4] = 0;
}

/* One data set's section: the points (plot's --json), KD against scratch
 * (front_DS_kd_* records), inference (front_DS_infer_* records). */
static void front_section(FILE *o, const char *ds, const mtc_json *pts)
{
    char buf[64], key[128];
    fprintf(o, "\n## %s\n\n![size-accuracy front, %s](front-%s.png)\n\n", ds, ds, ds);
    const mtc_json *teacher = NULL;
    for (int i = 0; i < pts->n && !teacher; i++)
        if (is_true(mtc_json_get(&pts->items[i], "teacher"))) teacher = &pts->items[i];
    const mtc_json *ttasks = teacher ? mtc_json_get(teacher, "tasks") : NULL;
    const mtc_json *tasks0 = pts->n ? mtc_json_get(&pts->items[0], "tasks") : NULL;
    int nt = tasks0 && tasks0->type == MTC_JOBJ ? tasks0->n : 0;
    double tbytes = teacher ? mtc_json_num(teacher, "bytes", NONE) : NONE;
    fprintf(o, "| checkpoint | parameters | file bytes | smaller than the teacher |");
    for (int t = 0; t < nt; t++) fprintf(o, " %s | vs teacher (points) |", tasks0->keys[t]);
    fprintf(o, "\n|---|---|---|---|");
    for (int t = 0; t < nt; t++) fprintf(o, "---|---|");
    fprintf(o, "\n");
    for (int i = 0; i < pts->n; i++) {
        const mtc_json *p = &pts->items[i];
        const mtc_json *tk = mtc_json_get(p, "tasks");
        const char *file = mtc_json_str(p, "file");
        char name[128];
        point_name(file ? file : "?", name, sizeof name);
        double bytes = mtc_json_num(p, "bytes", NONE), params = mtc_json_num(p, "params", NONE);
        fprintf(o, "| %s%s | %s |", name, p == teacher && !strstr(name, "teacher") ? " (teacher)" : "", HAVE(params) ? commas(params, buf, sizeof buf) : "");
        fprintf(o, " %s | %.1f× |", commas(bytes, buf, sizeof buf), HAVE(tbytes) ? tbytes / bytes : NONE);
        for (int t = 0; t < nt; t++) {
            double v = mtc_json_num(tk, tasks0->keys[t], NONE), tv = mtc_json_num(ttasks, tasks0->keys[t], NONE);
            fprintf(o, " %.2f%% |", 100 * v);
            if (p == teacher || !HAVE(tv)) fprintf(o, " |");
            else fprintf(o, " %+.2f |", 100 * (v - tv));
        }
        fprintf(o, "\n");
    }
    fprintf(o, "\nKD against its scratch twin (same epochs, settings and augmentation; test split; "
               "gap closed = (KD − scratch) / (teacher − scratch); ± the 95%% interval of a paired test on the "
               "same test samples: a difference inside it is noise):\n\n"
               "| student | task | teacher | KD | scratch | KD − scratch (points) | gap closed |\n"
               "|---|---|---|---|---|---|---|\n");
    snprintf(key, sizeof key, "front_%s_kd_", ds);
    for (int i = 0; i < g_nrec; i++) {
        const char *k = rkey(&g_rec[i]);
        const mtc_json *tk = mtc_json_get(&g_rec[i], "tasks");
        if (!k || strncmp(k, key, strlen(key)) || !tk || tk->type != MTC_JOBJ) continue;
        for (int t = 0; t < tk->n; t++) {
            const mtc_json *r = &tk->items[t];
            double te = mtc_json_num(r, "teacher", NONE), kd = mtc_json_num(r, "student_kd", NONE),
                   sc = mtc_json_num(r, "scratch", NONE), gap = mtc_json_num(r, "gap_closed", NONE),
                   ci = mtc_json_num(r, "kd_minus_scratch_ci95", NONE);
            char pm[32] = "";
            if (HAVE(ci)) snprintf(pm, sizeof pm, " ± %.2f", 100 * ci);
            fprintf(o, "| %s | %s | %.2f%% | %.2f%% | %.2f%% | %+.2f%s | %s |\n", k + strlen(key), tk->keys[t],
                    100 * te, 100 * kd, 100 * sc, 100 * (kd - sc), pm,
                    HAVE(gap) ? (snprintf(buf, sizeof buf, "%.0f%%", 100 * gap), buf) : "-");
        }
    }
    static const char *models[][2] = {{"teacher", "teacher (fp32)"}, {"mlp", "mlp.q8 (int8)"},
                                      {"cnn", "cnn.q8 (int8)"}, {"dw", "dw.q8 (int8)"}};
    for (int m = 0, rows = 0; m < 4; m++) { /* timed on one data set only: no section elsewhere */
        snprintf(key, sizeof key, "front_%s_infer_%s", ds, models[m][0]);
        double b1 = best_bt(key, 1, 1, NULL, "samples_per_s", NULL), b256 = best_bt(key, 256, 1, NULL, "samples_per_s", NULL);
        if (!HAVE(b1) && !HAVE(b256)) continue;
        if (!rows++)
            fprintf(o, "\nInference, 1 thread, samples/s (bench_infer through the runtime; best of the run):\n\n"
                       "| model | batch 1 | batch 256 |\n|---|---|---|\n");
        char s1[32], s2[32];
        fprintf(o, "| %s | %s | %s |\n", models[m][1], commas(b1, s1, sizeof s1), commas(b256, s2, sizeof s2));
    }
}

static int cmd_front(int argc, char **argv)
{
    if (argc < 4) return fprintf(stderr, "usage: bench_report front RECORDS OUT.md DS=PLOT.json ...\n"), 2;
    if (load_records(argv[1])) return 2;
    char *md = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&md, &len);
    if (!o) return perror("open_memstream"), 2;
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M %z", localtime(&now));
    fprintf(o, "# Size–accuracy front (`make bench`, bench/front.sh, %s)\n\n"
               "Every checkpoint measured through the reference runtime on the test split\n"
               "(`mtc plot size-accuracy --data`); file bytes as stored. docs/students.md explains the students.\n", when);
    int rc = 0;
    for (int a = 3; a < argc && !rc; a++) {
        const char *eq = strchr(argv[a], '=');
        if (!eq) { rc = (fprintf(stderr, "bench_report: front: %s is not DS=PLOT.json\n", argv[a]), 2); break; }
        char ds[64];
        snprintf(ds, sizeof ds, "%.*s", (int)(eq - argv[a]), argv[a]);
        char *text = NULL;
        size_t n = 0;
        mtc_err e = {0};
        mtc_json pts;
        if (mtc_read_file(eq + 1, &text, &n, 1 << 24, &e)) { rc = (fprintf(stderr, "bench_report: %s\n", e.msg), 2); break; }
        const mtc_json *arr = NULL;
        if (!mtc_json_parse(text, n, &pts, &e)) arr = mtc_json_get(&pts, "points");
        if (!arr || arr->type != MTC_JARR) {
            rc = (fprintf(stderr, "bench_report: %s: %s\n", eq + 1, e.msg[0] ? e.msg : "no \"points\" array"), 2);
        } else {
            front_section(o, ds, arr);
        }
        mtc_json_free(&pts);
        free(text);
    }
    fclose(o);
    mtc_err e = {0};
    if (!rc && mtc_write_file_atomic(argv[2], md, len, &e)) rc = (fprintf(stderr, "bench_report: %s\n", e.msg), 2);
    if (!rc) printf("wrote %s\n", argv[2]);
    free(md);
    for (int i = 0; i < g_nrec; i++) mtc_json_free(&g_rec[i]);
    free(g_rec);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "tag")) return cmd_tag(argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "meta")) return cmd_meta(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "report")) return cmd_report(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "front")) return cmd_front(argc - 1, argv + 1);
    fprintf(stderr, "usage: bench_report tag KEY | meta VERSION CORE MODE NOTE | report RECORDS OUT.json [--mode M] "
                    "[--seconds S] [--summary F.md] | front RECORDS OUT.md DS=PLOT.json ...\n");
    return 2;
}
