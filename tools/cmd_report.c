/*
 * cmd_report.c — `mtc report DIR -o report.html`: one self-contained HTML
 * page about a pipeline's output folder (what `make demo`, tools/demo.sh and
 * `mtc pipeline` write):
 *   stages    summary.json (`mtc verify --report-only --report-json`): per
 *             checkpoint file, bytes, per-task metric and drop against the
 *             reference
 *   gate      verify.json (`mtc verify --report-json`): per-task drop,
 *             budget and PASS/FAIL
 *   explain   DIR/explain/ and DIR/explain-NAME/: explain.json's per-task ECE
 *             and MMoE gate usage
 *   figures   every PNG of DIR and of those folders, inlined as a
 *             data:image/png;base64 URI, grouped by what its name says
 * No script and nothing fetched: one inline <style>, readable without
 * JavaScript. No clock either: the same folder gives the same bytes (the
 * folder's name stands where a date would). Not a viewer for any folder:
 * only *.png and the JSON files above are read.
 */
#include "tools/util.h"
#include "tools/commands.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define JSON_MAX ((size_t)16 << 20)
#define PNG_MAX ((size_t)64 << 20)

/* ---- the page text ------------------------------------------------------ */

typedef struct html {
    char *p;
    size_t len, cap;
    int oom;
} html;

static void put_n(html *h, const char *s, size_t n)
{
    if (h->oom) return;
    if (h->len + n + 1 > h->cap) {
        size_t cap = (h->cap ? h->cap * 2 : 1 << 16) + n;
        char *p = realloc(h->p, cap);
        if (!p) { h->oom = 1; return; }
        h->p = p;
        h->cap = cap;
    }
    memcpy(h->p + h->len, s, n);
    h->len += n;
    h->p[h->len] = 0;
}

static void put(html *h, const char *s) { put_n(h, s, strlen(s)); }

/* fmt's output is HTML already: strings from files go through put_esc. */
static void putf(html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(html *h, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put_n(h, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_esc(html *h, const char *s)
{
    for (; s && *s; s++) {
        const char *r = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '&' ? "&amp;" : *s == '"' ? "&quot;"
                      : *s == '\'' ? "&#39;" : NULL;
        if (r) put(h, r);
        else put_n(h, s, 1);
    }
}

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p ? p : "";
}

/* 3071137 -> "3,071,137" */
static void fmt_bytes(double v, char *out, size_t n)
{
    if (!isfinite(v) || v < 0) { snprintf(out, n, "&ndash;"); return; }
    char d[32], r[48];
    int len = snprintf(d, sizeof d, "%.0f", v), k = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0) r[k++] = ',';
        r[k++] = d[i];
    }
    r[k] = 0;
    snprintf(out, n, "%s", r);
}

/* accuracy-like metrics (cls, bin) in percent, regression as is */
static void fmt_metric(const char *kind, double v, char *out, size_t n)
{
    if (!isfinite(v)) snprintf(out, n, "&ndash;");
    else if (kind && !strcmp(kind, "reg")) snprintf(out, n, "%.4f", v);
    else snprintf(out, n, "%.2f%%", 100 * v);
}

static void fmt_num(double v, const char *f, char *out, size_t n)
{
    if (!isfinite(v)) snprintf(out, n, "&ndash;");
    else snprintf(out, n, f, v);
}

/* ---- the folder --------------------------------------------------------- */

enum { G_SIZE, G_CURVES, G_CONFUSION, G_SENS, G_CALIB, G_GATES, G_SALIENCY, G_OTHER, NGROUPS };
static const char *const group_title[NGROUPS] = {
    "Size &ndash; accuracy", "Training curves", "Confusion matrices", "Pruning sensitivity",
    "Calibration / reliability", "MMoE gates", "Saliency", "Other figures"};
static const char *const group_id[NGROUPS] = {"size-accuracy", "curves", "confusion", "sensitivity",
                                              "calibration", "gates", "saliency", "other"};

typedef struct figure {
    char *name;  /* relative to DIR: "x.png" or "explain/x.png" */
    char *b64;
    int group, w, h;
} figure;

typedef struct explain_set {
    char *name; /* the folder, relative to DIR */
    mtc_json j;
    int have;
} explain_set;

typedef struct report {
    char dir[PATH_MAX], title[256];
    mtc_json summary, verify;
    int have_summary, have_verify;
    figure *fig;
    int nfig;
    explain_set *ex;
    int nex;
} report;

static void report_free(report *r)
{
    if (r->have_summary) mtc_json_free(&r->summary);
    if (r->have_verify) mtc_json_free(&r->verify);
    for (int i = 0; i < r->nfig; i++) free(r->fig[i].name), free(r->fig[i].b64);
    free(r->fig);
    for (int i = 0; i < r->nex; i++) {
        if (r->ex[i].have) mtc_json_free(&r->ex[i].j);
        free(r->ex[i].name);
    }
    free(r->ex);
}

static int figure_group(const char *name)
{
    char s[512];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof s; i++) s[i] = (char)tolower((unsigned char)name[i]);
    s[i] = 0;
    const char *b = base_name(s);
    if (strstr(b, "size-acc") || strstr(b, "size_acc") || strstr(b, "front")) return G_SIZE;
    if (strstr(b, "curve")) return G_CURVES;
    if (strstr(b, "confusion")) return G_CONFUSION;
    if (strstr(b, "sensitiv")) return G_SENS;
    if (strstr(b, "reliab") || strstr(b, "calib")) return G_CALIB;
    if (strstr(b, "gate")) return G_GATES;
    if (strstr(b, "salien")) return G_SALIENCY;
    return G_OTHER;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Names in dir that keep() accepts, sorted bytewise (no locale): the order
 * of the page does not depend on the file system. */
static int list_dir(const char *dir, int (*keep)(const char *dir, const char *name), char ***out, int *n,
                    mtc_err *e)
{
    *out = NULL, *n = 0;
    DIR *d = opendir(dir);
    if (!d) return mtc_err_set(e, MTC_EINPUT, "%s: cannot open folder (%s)", dir, strerror(errno));
    int cap = 0, rc = 0;
    for (struct dirent *de; !rc && (de = readdir(d));) {
        if (de->d_name[0] == '.' || !keep(dir, de->d_name)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(*out, (size_t)cap * sizeof *p);
            if (!p) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); break; }
            *out = p;
        }
        if (!((*out)[*n] = strdup(de->d_name))) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
        else (*n)++;
    }
    closedir(d);
    if (!rc && *n) qsort(*out, (size_t)*n, sizeof **out, by_name);
    return rc;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* a + "/" + b (b alone when a is "") into out[PATH_MAX]; -1 when too long */
static int path_join(char *out, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), k = na ? na + 1 : 0;
    if (k + nb + 1 > PATH_MAX) return -1;
    memcpy(out, a, na);
    if (na) out[na] = '/';
    memcpy(out + k, b, nb + 1);
    return 0;
}

static int too_long(const char *a, const char *b, mtc_err *e)
{
    return mtc_err_set(e, MTC_EINPUT, "%.200s/%.200s: path too long", a, b);
}

static int is_kind(const char *dir, const char *name, int want_dir)
{
    char p[PATH_MAX];
    struct stat st;
    return !path_join(p, dir, name) && !stat(p, &st) && (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

static int keep_png(const char *dir, const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcasecmp(name + n - 4, ".png") && is_kind(dir, name, 0);
}

static int keep_explain(const char *dir, const char *name)
{
    return (!strcmp(name, "explain") || !strncmp(name, "explain-", 8)) && is_kind(dir, name, 1);
}

/* A JSON object from path into j; a missing file is no error (*have = 0). */
static int load_json(const char *path, mtc_json *j, int *have, mtc_err *e)
{
    struct stat st;
    *have = 0;
    if (stat(path, &st) && errno == ENOENT) return 0;
    char *text = NULL;
    size_t len = 0;
    int rc = mtc_read_file(path, &text, &len, JSON_MAX, e);
    if (rc) return rc;
    mtc_err pe = {0};
    if (mtc_json_parse(text, len, j, &pe)) rc = mtc_err_set(e, MTC_EINPUT, "%s: not valid JSON (%s)", path, pe.msg);
    free(text);
    if (rc) return rc;
    if (j->type != MTC_JOBJ) {
        mtc_json_free(j);
        return mtc_err_set(e, MTC_EINPUT, "%s: not a JSON object", path);
    }
    *have = 1;
    return 0;
}

/* A verify report is one object with "tasks", or {"candidates": [...]}
 * when it compared several checkpoints to one reference. */
static int report_items(const mtc_json *j, const mtc_json **items)
{
    const mtc_json *c = mtc_json_get(j, "candidates");
    if (c && c->type == MTC_JARR) {
        *items = c->items;
        return c->n;
    }
    *items = j;
    return mtc_json_get(j, "tasks") ? 1 : 0;
}

static int check_verify_report(const char *path, const mtc_json *j, mtc_err *e)
{
    const mtc_json *it;
    int n = report_items(j, &it);
    if (!n) return mtc_err_set(e, MTC_EINPUT, "%s: not an mtc verify report (no \"tasks\" or \"candidates\")", path);
    for (int i = 0; i < n; i++) {
        const mtc_json *t = mtc_json_get(&it[i], "tasks");
        if (!t || t->type != MTC_JOBJ || !mtc_json_str(&it[i], "candidate"))
            return mtc_err_set(e, MTC_EINPUT, "%s: report %d has no \"candidate\" or no \"tasks\" object", path, i);
    }
    return 0;
}

/* The PNG at path, its size from the IHDR chunk, base64 for a data: URI. */
static int load_figure(const char *dir, const char *rel, figure *f, mtc_err *e)
{
    char path[PATH_MAX];
    if (path_join(path, dir, rel)) return too_long(dir, rel, e);
    char *buf = NULL;
    size_t n = 0;
    int rc = mtc_read_file(path, &buf, &n, PNG_MAX, e);
    if (rc) return rc;
    const unsigned char *u = (const unsigned char *)buf;
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 33 || memcmp(u, sig, 8) || memcmp(u + 12, "IHDR", 4)) {
        free(buf);
        return mtc_err_set(e, MTC_EINPUT, "%s: not a PNG file", path);
    }
    f->w = (int)((uint32_t)u[16] << 24 | (uint32_t)u[17] << 16 | (uint32_t)u[18] << 8 | u[19]);
    f->h = (int)((uint32_t)u[20] << 24 | (uint32_t)u[21] << 16 | (uint32_t)u[22] << 8 | u[23]);
    f->b64 = malloc(mtc_base64_len(n) + 1);
    f->name = strdup(rel);
    f->group = figure_group(rel);
    if (f->b64 && f->name) mtc_base64_encode(buf, n, f->b64);
    else rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    free(buf);
    return rc;
}

/* Every PNG of dir/sub ("" = dir itself) onto r->fig. */
static int load_figures(report *r, const char *sub, mtc_err *e)
{
    char folder[PATH_MAX], rel[PATH_MAX];
    if (path_join(folder, r->dir, sub)) return too_long(r->dir, sub, e);
    char **names;
    int n, rc = list_dir(folder, keep_png, &names, &n, e);
    if (!rc && n) {
        figure *p = realloc(r->fig, (size_t)(r->nfig + n) * sizeof *p);
        if (!p) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
        else r->fig = p;
    }
    for (int i = 0; i < n && !rc; i++) {
        memset(&r->fig[r->nfig], 0, sizeof *r->fig);
        rc = path_join(rel, sub, names[i]) ? too_long(sub, names[i], e) : load_figure(r->dir, rel, &r->fig[r->nfig], e);
        r->nfig++; /* freed by report_free either way */
    }
    free_names(names, n);
    return rc;
}

static int load_explain(report *r, mtc_err *e)
{
    char **names, sub[PATH_MAX], path[PATH_MAX];
    int n, rc = list_dir(r->dir, keep_explain, &names, &n, e);
    if (!rc && n && !(r->ex = calloc((size_t)n, sizeof *r->ex))) rc = mtc_err_set(e, MTC_ENOMEM, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        explain_set *x = &r->ex[r->nex++];
        if (!(x->name = strdup(names[i]))) { rc = mtc_err_set(e, MTC_ENOMEM, "out of memory"); break; }
        if (path_join(sub, r->dir, names[i]) || path_join(path, sub, "explain.json")) {
            rc = too_long(r->dir, names[i], e);
            break;
        }
        if ((rc = load_json(path, &x->j, &x->have, e))) break;
        rc = load_figures(r, names[i], e);
    }
    free_names(names, n);
    return rc;
}

static int report_load(report *r, const char *dir, mtc_err *e)
{
    struct stat st;
    if (stat(dir, &st)) return mtc_err_set(e, MTC_EINPUT, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return mtc_err_set(e, MTC_EINPUT, "%s: not a folder", dir);
    /* room for "/explain-NAME/NAME.png" after DIR */
    if (strlen(dir) + 2 * NAME_MAX + 4 > PATH_MAX) return mtc_err_set(e, MTC_EINPUT, "%.200s...: path too long", dir);
    memcpy(r->dir, dir, strlen(dir) + 1);
    /* the title: the folder's own name, however DIR was spelled */
    char real[PATH_MAX];
    const char *t = realpath(dir, real) ? base_name(real) : base_name(dir);
    size_t nt = strlen(t) < sizeof r->title - 1 ? strlen(t) : sizeof r->title - 1;
    memcpy(r->title, *t ? t : "/", *t ? nt : 1);
    r->title[*t ? nt : 1] = 0;
    char path[PATH_MAX];
    if (path_join(path, dir, "summary.json")) return too_long(dir, "summary.json", e);
    int rc = load_json(path, &r->summary, &r->have_summary, e);
    if (!rc && r->have_summary) rc = check_verify_report(path, &r->summary, e);
    path_join(path, dir, "verify.json"); /* fits: summary.json did */
    if (!rc) rc = load_json(path, &r->verify, &r->have_verify, e);
    if (!rc && r->have_verify) rc = check_verify_report(path, &r->verify, e);
    if (!rc) rc = load_figures(r, "", e);
    if (!rc) rc = load_explain(r, e);
    if (!rc && !r->have_summary && !r->have_verify && !r->nfig && !r->nex)
        rc = mtc_err_set(e, MTC_EINPUT, "%s: nothing to report (no summary.json, verify.json, explain folder or PNG)",
                         dir);
    return rc;
}

/* ---- the page ----------------------------------------------------------- */

static const char style[] =
    "body{font-family:'DejaVu Sans',system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;"
    "margin:0;background:#f4f5f7;color:#1d2330;line-height:1.45;font-size:15px}\n"
    "main{max-width:1120px;margin:0 auto;padding:24px 28px 48px}\n"
    "h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;padding-bottom:4px;"
    "border-bottom:2px solid #d5d9e0}h3{font-size:16px;margin:20px 0 8px}\n"
    ".meta{color:#5b6472;margin:0 0 14px}code{font-family:'DejaVu Sans Mono',monospace;font-size:13px}\n"
    "nav{font-size:14px;margin:10px 0}nav a{margin-right:14px;color:#1f5fae;text-decoration:none}\n"
    ".card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 16px;margin:12px 0}\n"
    "table{border-collapse:collapse;width:100%;font-size:14px;background:#fff}\n"
    "th,td{padding:5px 9px;border-bottom:1px solid #e4e7ec;text-align:right;vertical-align:top}\n"
    "th{background:#eef1f5;font-weight:600;white-space:nowrap}\n"
    "td.l,th.l{text-align:left}tr.first td{border-top:2px solid #c9ced6}\n"
    "tr.ref td{background:#f7f9fc}\n"
    ".pass,.fail,.tag{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:700;font-size:12px}\n"
    ".pass{background:#dcf3e1;color:#14652b}.fail{background:#fbdcdc;color:#9b1c1c}"
    ".tag{background:#e6eaf0;color:#414b5a}\n"
    ".verdict{font-size:17px;font-weight:700;padding:10px 14px;border-radius:8px;margin:12px 0}\n"
    ".verdict.pass{display:block;font-size:17px;border-radius:8px}.verdict.fail{display:block;font-size:17px;"
    "border-radius:8px}\n"
    ".figs{display:flex;flex-wrap:wrap;gap:14px}\n"
    "figure{margin:0;background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px;max-width:100%;"
    "box-sizing:border-box}\n"
    "figure img{display:block;max-width:100%;height:auto}\n"
    "figcaption{font-size:13px;color:#5b6472;margin-top:6px}\n"
    ".note{font-size:13px;color:#5b6472}\n";

static void page_head(html *h, const report *r)
{
    put(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>mtc report: ");
    put_esc(h, r->title);
    put(h, "</title>\n<style>\n");
    put(h, style);
    put(h, "</style>\n</head>\n<body>\n<main>\n<h1>mtc report: ");
    put_esc(h, r->title);
    put(h, "</h1>\n<p class=\"meta\">Generated by mtc " MTC_VERSION " from the folder <code>");
    put_esc(h, r->title);
    put(h, "</code>");
    const mtc_json *src = r->have_summary ? &r->summary : r->have_verify ? &r->verify : NULL;
    const mtc_json *d = mtc_json_get(src, "data");
    if (!d && src) {
        const mtc_json *it;
        if (report_items(src, &it)) d = mtc_json_get(it, "data");
    }
    if (d) {
        put(h, "; data <code>");
        put_esc(h, mtc_json_str(d, "name"));
        put(h, "/");
        put_esc(h, mtc_json_str(d, "split"));
        put(h, "</code>");
        double n = mtc_json_num(d, "n", NAN);
        if (isfinite(n)) putf(h, " (%.0f samples)", n);
    }
    put(h, ".</p>\n<nav>");
    if (r->have_verify) put(h, "<a href=\"#gate\">verify gate</a>");
    if (r->have_summary) put(h, "<a href=\"#stages\">stages</a>");
    if (r->nex) put(h, "<a href=\"#explain\">explain</a>");
    int seen[NGROUPS] = {0};
    for (int i = 0; i < r->nfig; i++) seen[r->fig[i].group] = 1;
    for (int g = 0; g < NGROUPS; g++)
        if (seen[g]) putf(h, "<a href=\"#%s\">%s</a>", group_id[g], group_title[g]);
    put(h, "</nav>\n");
}

/* The gate's verdict for task `task` of the report whose candidate is
 * `cand` (by file name), or NULL. */
static const mtc_json *gate_task(const report *r, const char *cand, const char *task)
{
    if (!r->have_verify) return NULL;
    const mtc_json *it;
    int n = report_items(&r->verify, &it);
    for (int i = 0; i < n; i++)
        if (!strcmp(base_name(mtc_json_str(&it[i], "candidate")), base_name(cand)))
            return mtc_json_get(mtc_json_get(&it[i], "tasks"), task);
    return NULL;
}

/* "PASS -0.70 &le; 0.80" from a task object with "pass" and "budget". */
static void put_verdict(html *h, const mtc_json *t)
{
    const mtc_json *p = mtc_json_get(t, "pass");
    if (!p || p->type != MTC_JBOOL) { put(h, "<td>&ndash;</td>"); return; }
    char drop[32], bud[32];
    fmt_num(mtc_json_num(t, "drop", NAN), "%.2f", drop, sizeof drop);
    fmt_num(mtc_json_num(t, "budget", NAN), "%.2f", bud, sizeof bud);
    putf(h, "<td><span class=\"%s\">%s</span> %s &le; %s</td>", p->num ? "pass" : "fail", p->num ? "PASS" : "FAIL",
         drop, bud);
}

/* One checkpoint's rows: file, bytes and ratio span its task rows. */
static void stage_rows(html *h, const report *r, const mtc_json *item, int is_ref, int gates)
{
    const mtc_json *tasks = mtc_json_get(item, "tasks");
    const char *path = mtc_json_str(item, is_ref ? "reference" : "candidate");
    double fr = mtc_json_num(item, "reference_file_bytes", NAN);
    double fb = is_ref ? fr : mtc_json_num(item, "candidate_file_bytes", NAN);
    double sps = mtc_json_num(item, is_ref ? "reference_samples_per_s" : "candidate_samples_per_s", NAN);
    char bytes[48], ratio[48], speed[48];
    fmt_bytes(fb, bytes, sizeof bytes);
    fmt_num(fb > 0 ? fr / fb : NAN, "%.2f&times;", ratio, sizeof ratio);
    fmt_bytes(sps, speed, sizeof speed);
    for (int t = 0; t < tasks->n; t++) {
        const mtc_json *tj = &tasks->items[t];
        const char *kind = mtc_json_str(tj, "kind");
        char val[48], drop[48], agree[48];
        fmt_metric(kind, mtc_json_num(tj, is_ref ? "reference" : "candidate", NAN), val, sizeof val);
        fmt_num(is_ref ? NAN : mtc_json_num(tj, "drop", NAN), "%.2f", drop, sizeof drop);
        fmt_num(is_ref ? NAN : 100 * mtc_json_num(tj, "top1_agreement", NAN), "%.2f%%", agree, sizeof agree);
        putf(h, "<tr class=\"%s%s\">", t ? "" : "first", is_ref ? " ref" : "");
        if (!t) {
            putf(h, "<td class=\"l\" rowspan=\"%d\"><code>", tasks->n);
            put_esc(h, base_name(path));
            put(h, "</code>");
            if (is_ref) put(h, " <span class=\"tag\">reference</span>");
            putf(h, "</td><td rowspan=\"%d\">%s</td><td rowspan=\"%d\">%s</td><td rowspan=\"%d\">%s</td>", tasks->n,
                 bytes, tasks->n, ratio, tasks->n, speed);
        }
        put(h, "<td class=\"l\">");
        put_esc(h, tasks->keys[t]);
        put(h, "</td><td class=\"l\">");
        put_esc(h, mtc_json_str(tj, "metric"));
        putf(h, "</td><td>%s</td><td>%s</td><td>%s</td>", val, drop, agree);
        if (gates) {
            /* the summary's own budgets (a pipeline recipe may set them), else verify.json's gate */
            const mtc_json *g = mtc_json_get(tj, "pass") ? tj : is_ref ? NULL : gate_task(r, path, tasks->keys[t]);
            if (g) put_verdict(h, g);
            else put(h, "<td></td>");
        }
        put(h, "</tr>\n");
    }
}

static void stages_section(html *h, const report *r)
{
    const mtc_json *it;
    int n = report_items(&r->summary, &it);
    const char *unit = mtc_json_str(it, "drop_unit");
    put(h, "<h2 id=\"stages\">Stages against the reference</h2>\n<p class=\"note\">From <code>summary.json</code>: "
           "every checkpoint against <code>");
    put_esc(h, base_name(mtc_json_str(it, "reference")));
    put(h, "</code>; drop in ");
    put_esc(h, unit ? unit : "points");
    put(h, " (negative: better than the reference); samples/s through the reference runtime.</p>\n");
    int gates = r->have_verify;
    for (int i = 0; i < n; i++) {
        const mtc_json *ts = mtc_json_get(&it[i], "tasks");
        for (int t = 0; t < ts->n; t++) gates |= mtc_json_get(&ts->items[t], "pass") != NULL;
    }
    put(h, "<table>\n<tr><th class=\"l\">checkpoint</th><th>bytes</th><th>smaller</th><th>samples/s</th>"
           "<th class=\"l\">task</th><th class=\"l\">metric</th><th>value</th><th>drop</th><th>top-1 agree</th>");
    if (gates) put(h, "<th>gate: drop &le; budget</th>");
    put(h, "</tr>\n");
    stage_rows(h, r, &it[0], 1, gates);
    for (int i = 0; i < n; i++) stage_rows(h, r, &it[i], 0, gates);
    put(h, "</table>\n");
    if (r->have_verify) {
        const mtc_json *v;
        report_items(&r->verify, &v);
        put(h, "<p class=\"note\">gate column: <code>verify.json</code>, whose drops are against <code>");
        put_esc(h, base_name(mtc_json_str(v, "reference")));
        put(h, "</code> (see Verify gate above).</p>\n");
    }
}

static void gate_item(html *h, const mtc_json *item)
{
    const mtc_json *tasks = mtc_json_get(item, "tasks"), *pass = mtc_json_get(item, "pass");
    const char *unit = mtc_json_str(item, "drop_unit");
    put(h, "<div class=\"card\"><p>candidate <code>");
    put_esc(h, mtc_json_str(item, "candidate"));
    put(h, "</code> against reference <code>");
    put_esc(h, mtc_json_str(item, "reference"));
    put(h, "</code>; drop in ");
    put_esc(h, unit ? unit : "points");
    if (pass && pass->type == MTC_JBOOL)
        putf(h, " &mdash; <span class=\"%s\">%s</span>", pass->num ? "pass" : "fail", pass->num ? "PASS" : "FAIL");
    int ece = 0; /* columns of the calibration gate (--max-ece) only when it ran */
    for (int t = 0; t < tasks->n; t++) ece |= mtc_json_get(&tasks->items[t], "ece") != NULL;
    put(h, "</p>\n<table>\n<tr><th class=\"l\">task</th><th class=\"l\">metric</th><th>reference</th>"
           "<th>candidate</th><th>drop</th><th>budget</th><th>verdict</th><th>top-1 agree</th>");
    put(h, ece ? "<th>ECE</th><th>ECE budget</th></tr>\n" : "</tr>\n");
    for (int t = 0; t < tasks->n; t++) {
        const mtc_json *tj = &tasks->items[t], *p = mtc_json_get(tj, "pass");
        const char *kind = mtc_json_str(tj, "kind");
        char a[48], b[48], drop[48], bud[48], agree[48], ec[48], eb[48];
        fmt_metric(kind, mtc_json_num(tj, "reference", NAN), a, sizeof a);
        fmt_metric(kind, mtc_json_num(tj, "candidate", NAN), b, sizeof b);
        fmt_num(mtc_json_num(tj, "drop", NAN), "%.2f", drop, sizeof drop);
        fmt_num(mtc_json_num(tj, "budget", NAN), "%.2f", bud, sizeof bud);
        fmt_num(100 * mtc_json_num(tj, "top1_agreement", NAN), "%.2f%%", agree, sizeof agree);
        fmt_num(mtc_json_num(tj, "ece", NAN), "%.4f", ec, sizeof ec);
        fmt_num(mtc_json_num(tj, "ece_budget", NAN), "%.4f", eb, sizeof eb);
        put(h, "<tr><td class=\"l\">");
        put_esc(h, tasks->keys[t]);
        put(h, "</td><td class=\"l\">");
        put_esc(h, mtc_json_str(tj, "metric"));
        putf(h, "</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>", a, b, drop, bud);
        if (p && p->type == MTC_JBOOL)
            putf(h, "<span class=\"%s\">%s</span>", p->num ? "pass" : "fail", p->num ? "PASS" : "FAIL");
        else put(h, "&ndash;");
        putf(h, "</td><td>%s</td>", agree);
        if (ece) putf(h, "<td>%s</td><td>%s</td>", ec, eb);
        put(h, "</tr>\n");
    }
    char fr[48], fc[48];
    fmt_bytes(mtc_json_num(item, "reference_file_bytes", NAN), fr, sizeof fr);
    fmt_bytes(mtc_json_num(item, "candidate_file_bytes", NAN), fc, sizeof fc);
    putf(h, "</table>\n<p class=\"note\">file bytes: reference %s, candidate %s.</p></div>\n", fr, fc);
}

static void gate_section(html *h, const report *r)
{
    const mtc_json *it, *pass = mtc_json_get(&r->verify, "pass");
    int n = report_items(&r->verify, &it);
    put(h, "<h2 id=\"gate\">Verify gate</h2>\n");
    if (pass && pass->type == MTC_JBOOL) {
        putf(h, "<div class=\"verdict %s\">verify gate: %s &mdash; ", pass->num ? "pass" : "fail",
             pass->num ? "PASS" : "FAIL");
        if (n == 1) {
            put_esc(h, base_name(mtc_json_str(it, "candidate")));
            put(h, pass->num ? " keeps every task within its budget against " : " has a task over its budget against ");
            put_esc(h, base_name(mtc_json_str(it, "reference")));
        } else {
            put(h, pass->num ? "every task within its budget" : "a task is over its budget");
        }
        put(h, "</div>\n");
    } else
        put(h, "<div class=\"verdict\">verify report without budgets (<code>--report-only</code>)</div>\n");
    put(h, "<p class=\"note\">From <code>verify.json</code> (<code>mtc verify --report-json</code>).</p>\n");
    for (int i = 0; i < n; i++) gate_item(h, &it[i]);
}

static void explain_table(html *h, const explain_set *x)
{
    const mtc_json *tasks = mtc_json_get(&x->j, "tasks"), *d = mtc_json_get(&x->j, "data");
    put(h, "<h3><code>");
    put_esc(h, x->name);
    put(h, "/</code></h3>\n<p class=\"note\">model <code>");
    put_esc(h, mtc_json_str(&x->j, "model"));
    put(h, "</code>");
    if (d) {
        put(h, " on <code>");
        put_esc(h, mtc_json_str(d, "name"));
        put(h, "/");
        put_esc(h, mtc_json_str(d, "split"));
        put(h, "</code>");
    }
    put(h, "; ECE and MCE over equal-width confidence bins, gate usage = mean MMoE gate weight per expert, "
           "entropies in nats.</p>\n");
    if (!tasks || tasks->type != MTC_JOBJ) { put(h, "<p class=\"note\">(no tasks)</p>\n"); return; }
    /* optional columns, each only when a task has it: MMoE gate usage, and
     * saliency (mean |gradient x input|, its rank correlation under --compare) */
    int gates = 0, sal = 0, rho = 0;
    for (int t = 0; t < tasks->n; t++) {
        gates |= mtc_json_get(&tasks->items[t], "gate_usage") != NULL;
        sal |= mtc_json_get(&tasks->items[t], "saliency_mean_abs") != NULL;
        rho |= mtc_json_get(&tasks->items[t], "rank_correlation") != NULL;
    }
    put(h, "<table>\n<tr><th class=\"l\">task</th><th class=\"l\">kind</th><th>ECE</th><th>MCE</th>"
           "<th>predictions</th>");
    if (gates) put(h, "<th class=\"l\">gate usage</th><th>gate entropy</th><th>per sample</th>");
    if (sal) put(h, "<th>mean |saliency|</th>");
    if (rho) put(h, "<th>saliency rank corr.</th>");
    put(h, "</tr>\n");
    for (int t = 0; t < tasks->n; t++) {
        const mtc_json *tj = &tasks->items[t], *u = mtc_json_get(tj, "gate_usage");
        char ece[48], mce[48], np[48], hm[48], hs[48], sa[48], rc[48];
        fmt_num(mtc_json_num(tj, "ece", NAN), "%.4f", ece, sizeof ece);
        fmt_num(mtc_json_num(tj, "mce", NAN), "%.4f", mce, sizeof mce);
        fmt_bytes(mtc_json_num(tj, "calibration_samples", NAN), np, sizeof np);
        fmt_num(mtc_json_num(tj, "gate_entropy", NAN), "%.3f", hm, sizeof hm);
        fmt_num(mtc_json_num(tj, "gate_entropy_per_sample", NAN), "%.3f", hs, sizeof hs);
        fmt_num(mtc_json_num(tj, "saliency_mean_abs", NAN), "%.4g", sa, sizeof sa);
        fmt_num(mtc_json_num(tj, "rank_correlation", NAN), "%.3f", rc, sizeof rc);
        put(h, "<tr><td class=\"l\">");
        put_esc(h, tasks->keys[t]);
        put(h, "</td><td class=\"l\">");
        put_esc(h, mtc_json_str(tj, "kind"));
        putf(h, "</td><td>%s</td><td>%s</td><td>%s</td>", ece, mce, np);
        if (gates) {
            put(h, "<td class=\"l\">");
            if (!u || u->type != MTC_JARR) put(h, "&ndash;");
            for (int k = 0; u && u->type == MTC_JARR && k < u->n; k++)
                putf(h, "%s%.3f", k ? " " : "", u->items[k].type == MTC_JNUM ? u->items[k].num : NAN);
            putf(h, "</td><td>%s</td><td>%s</td>", hm, hs);
        }
        if (sal) putf(h, "<td>%s</td>", sa);
        if (rho) putf(h, "<td>%s</td>", rc);
        put(h, "</tr>\n");
    }
    put(h, "</table>\n");
}

static void figures_section(html *h, const report *r)
{
    for (int g = 0; g < NGROUPS; g++) {
        int any = 0;
        for (int i = 0; i < r->nfig; i++) {
            const figure *f = &r->fig[i];
            if (f->group != g) continue;
            if (!any++) putf(h, "<h2 id=\"%s\">%s</h2>\n<div class=\"figs\">\n", group_id[g], group_title[g]);
            put(h, "<figure><img alt=\"");
            put_esc(h, f->name);
            putf(h, "\" width=\"%d\" height=\"%d\" src=\"data:image/png;base64,", f->w, f->h);
            put(h, f->b64); /* the base64 alphabet needs no escaping */
            put(h, "\"><figcaption><code>");
            put_esc(h, f->name);
            putf(h, "</code> &middot; %d&times;%d</figcaption></figure>\n", f->w, f->h);
        }
        if (any) put(h, "</div>\n");
    }
}

static void page_write(html *h, const report *r)
{
    page_head(h, r);
    if (r->have_verify) gate_section(h, r);
    if (r->have_summary) stages_section(h, r);
    if (r->nex) {
        put(h, "<h2 id=\"explain\">Explain</h2>\n");
        for (int i = 0; i < r->nex; i++)
            if (r->ex[i].have) explain_table(h, &r->ex[i]);
            else {
                put(h, "<p class=\"note\"><code>");
                put_esc(h, r->ex[i].name);
                put(h, "/</code>: no explain.json (figures only)</p>\n");
            }
    }
    figures_section(h, r);
    put(h, "</main>\n</body>\n</html>\n");
}

int cmd_report(int argc, char **argv)
{
    const char *out = NULL, *pos[1];
    cli_common c;
    cli_common_defaults(&c);
    cli_opt opts[] = {
        {"out", OPT_STR, &out, "the HTML file to write (-o; required); written atomically", 1, 0},
        CLI_COMMON(&c), /* every command takes them; --seed and --threads change nothing here */
        CLI_END,
    };
    int npos, rc = cli_parse("report", "DIR -o report.html",
                             "One self-contained HTML page about a pipeline's output folder (make demo, mtc pipeline):\n"
                             "the per-stage, per-task table (DIR/summary.json), the verify gate with its budgets\n"
                             "(DIR/verify.json), explain summaries (DIR/explain*/explain.json) and every PNG of DIR and\n"
                             "of those folders, inlined. No script, nothing fetched; the same folder gives the same bytes.",
                             opts, argc, argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1 || !out) {
        fprintf(stderr, "mtc report: need DIR and -o FILE (see mtc report --help)\n");
        return 2;
    }
    mtc_err e = {0};
    report r;
    memset(&r, 0, sizeof r);
    html h = {0};
    rc = report_load(&r, pos[0], &e);
    if (!rc) {
        page_write(&h, &r);
        rc = h.oom ? mtc_err_set(&e, MTC_ENOMEM, "out of memory") : mtc_write_file_atomic(out, h.p, h.len, &e);
    }
    if (!rc && c.json) {
        mtc_jw w;
        mtc_jw_init(&w);
        mtc_jw_obj(&w);
        mtc_jw_kstr(&w, "out", out);
        mtc_jw_kint(&w, "bytes", (int64_t)h.len);
        mtc_jw_kint(&w, "figures", r.nfig);
        mtc_jw_kint(&w, "explain_folders", r.nex);
        mtc_jw_key(&w, "stages");
        mtc_jw_bool(&w, r.have_summary);
        mtc_jw_key(&w, "gate");
        mtc_jw_bool(&w, r.have_verify);
        mtc_jw_obj_end(&w);
        if (!w.oom) printf("%s\n", w.buf);
        mtc_jw_free(&w);
    } else if (!rc && !c.quiet)
        printf("%s: %zu bytes, %d figure%s%s%s\n", out, h.len, r.nfig, r.nfig == 1 ? "" : "s",
               r.have_summary ? ", stages" : "", r.have_verify ? ", verify gate" : "");
    free(h.p);
    report_free(&r);
    return rc ? cli_fail("report", &e) : 0;
}
