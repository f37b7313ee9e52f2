/*
 * plot.c — raster drawing (canvas, lines, rectangles, circles, markers,
 * bitmap text) and the three chart kinds `mtc plot` uses: line chart,
 * scatter (linear or log10 x) and heatmap grid (confusion matrices).
 *
 * Not a plotting library: no anti-aliasing, no fonts beyond the built-in
 * 5x8 one, no automatic label collision avoidance. Layout is fixed-margin:
 * each chart measures its tick labels and legend first, then sizes the plot
 * area from what is left of the panel.
 */
#include "mtc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CANVAS_MAX_SIDE 8192
#define PAD 8            /* panel padding, pixels */
#define TICK_LEN 4
#define GRID_COLOR 0xe6e6e6u
#define FRAME_COLOR 0x404040u
#define TEXT_COLOR 0x202020u
#define LEGEND_ROW 13    /* legend line height at text scale 1 */
#define RING_R 8         /* scatter: inner radius of the ring round an emphasised point */

/* ---- canvas ----------------------------------------------------------------- */

int mtc_canvas_init(mtc_canvas *c, int w, int h, uint32_t bg, mtc_err *e)
{
    memset(c, 0, sizeof *c);
    if (w <= 0 || h <= 0 || w > CANVAS_MAX_SIDE || h > CANVAS_MAX_SIDE)
        return mtc_err_set(e, MTC_EINPUT, "canvas: %dx%d pixels is outside 1..%d per side", w, h,
                           CANVAS_MAX_SIDE);
    c->rgb = malloc((size_t)w * h * 3);
    if (!c->rgb) return mtc_err_set(e, MTC_ENOMEM, "canvas: out of memory for %dx%d pixels", w, h);
    c->w = w;
    c->h = h;
    mtc_canvas_unclip(c);
    mtc_draw_rect(c, 0, 0, w, h, bg);
    return MTC_OK;
}

void mtc_canvas_free(mtc_canvas *c)
{
    free(c->rgb);
    memset(c, 0, sizeof *c);
}

void mtc_canvas_clip(mtc_canvas *c, int x, int y, int w, int h)
{
    c->clip_x0 = x < 0 ? 0 : x;
    c->clip_y0 = y < 0 ? 0 : y;
    c->clip_x1 = x + w > c->w ? c->w : x + w;
    c->clip_y1 = y + h > c->h ? c->h : y + h;
}

void mtc_canvas_unclip(mtc_canvas *c)
{
    mtc_canvas_clip(c, 0, 0, c->w, c->h);
}

uint32_t mtc_canvas_get(const mtc_canvas *c, int x, int y)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return 0;
    const uint8_t *p = c->rgb + ((size_t)y * c->w + x) * 3;
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

int mtc_canvas_write_png(const mtc_canvas *c, const char *path, mtc_err *e)
{
    return mtc_png_write(path, c->h, c->w, 3, c->rgb, e);
}

/* ---- primitives --------------------------------------------------------------- */

void mtc_draw_pixel(mtc_canvas *c, int x, int y, uint32_t color)
{
    if (x < c->clip_x0 || y < c->clip_y0 || x >= c->clip_x1 || y >= c->clip_y1) return;
    uint8_t *p = c->rgb + ((size_t)y * c->w + x) * 3;
    p[0] = (uint8_t)(color >> 16);
    p[1] = (uint8_t)(color >> 8);
    p[2] = (uint8_t)color;
}

void mtc_draw_rect(mtc_canvas *c, int x, int y, int w, int h, uint32_t color)
{
    int x0 = x < c->clip_x0 ? c->clip_x0 : x, y0 = y < c->clip_y0 ? c->clip_y0 : y;
    int x1 = x + w > c->clip_x1 ? c->clip_x1 : x + w, y1 = y + h > c->clip_y1 ? c->clip_y1 : y + h;
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++) mtc_draw_pixel(c, xx, yy, color);
}

void mtc_draw_rect_outline(mtc_canvas *c, int x, int y, int w, int h, uint32_t color)
{
    if (w <= 0 || h <= 0) return;
    mtc_draw_rect(c, x, y, w, 1, color);
    mtc_draw_rect(c, x, y + h - 1, w, 1, color);
    mtc_draw_rect(c, x, y, 1, h, color);
    mtc_draw_rect(c, x + w - 1, y, 1, h, color);
}

/* Bresenham over the major axis; width 2 doubles across the minor axis. */
void mtc_draw_line(mtc_canvas *c, int x0, int y0, int x1, int y1, int width, uint32_t color)
{
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int xmajor = dx >= -dy, err = dx + dy;
    /* A line far outside the canvas would loop for nothing: cap its length. */
    if (dx > 4 * CANVAS_MAX_SIDE || -dy > 4 * CANVAS_MAX_SIDE) return;
    for (;;) {
        mtc_draw_pixel(c, x0, y0, color);
        if (width > 1) mtc_draw_pixel(c, x0 + !xmajor, y0 + xmajor, color);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) { err += dy; x0 += sx; }
        if (e2 <= dx) { err += dx; y0 += sy; }
    }
}

void mtc_draw_circle(mtc_canvas *c, int cx, int cy, int r, int filled, uint32_t color)
{
    if (r < 0) return;
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++) {
            int d = dx * dx + dy * dy;
            /* r^2 + r rounds the rim like a midpoint circle */
            if (d <= r * r + r && (filled || d >= r * r - r)) mtc_draw_pixel(c, cx + dx, cy + dy, color);
        }
}

void mtc_draw_marker(mtc_canvas *c, int cx, int cy, int kind, int r, uint32_t color)
{
    switch (kind % MTC_MARK_COUNT) {
    case MTC_MARK_CIRCLE:
        mtc_draw_circle(c, cx, cy, r, 1, color);
        break;
    case MTC_MARK_SQUARE:
        mtc_draw_rect(c, cx - r + 1, cy - r + 1, 2 * r - 1, 2 * r - 1, color);
        break;
    case MTC_MARK_DIAMOND:
        for (int dy = -r - 1; dy <= r + 1; dy++)
            for (int dx = -r - 1; dx <= r + 1; dx++)
                if (abs(dx) + abs(dy) <= r + 1) mtc_draw_pixel(c, cx + dx, cy + dy, color);
        break;
    default: /* triangle pointing up: half-width grows from 0 at the top */
        for (int dy = -r; dy <= r; dy++) {
            int hw = (dy + r + 1) / 2;
            mtc_draw_rect(c, cx - hw, cy + dy, 2 * hw + 1, 1, color);
        }
        break;
    }
}

/* ---- text ------------------------------------------------------------------- */

static const uint8_t *glyph(char ch)
{
    unsigned char u = (unsigned char)ch;
    return mtc_font5x8[(u < 32 || u > 126 ? '?' : u) - 32];
}

int mtc_text_width(const char *s, int scale)
{
    return (int)strlen(s) * MTC_FONT_W * scale;
}

void mtc_draw_text(mtc_canvas *c, int x, int y, const char *s, int scale, uint32_t color)
{
    for (; *s; s++, x += MTC_FONT_W * scale) {
        const uint8_t *g = glyph(*s);
        for (int gy = 0; gy < MTC_FONT_H; gy++)
            for (int gx = 0; gx < 5; gx++)
                if (g[gy] >> (4 - gx) & 1) mtc_draw_rect(c, x + gx * scale, y + gy * scale, scale, scale, color);
    }
}

/* Rotated CCW: text position u runs up from the box bottom, glyph row v
 * runs right from the box left. */
void mtc_draw_text_up(mtc_canvas *c, int x, int y, const char *s, int scale, uint32_t color)
{
    int len = (int)strlen(s) * MTC_FONT_W;
    for (int i = 0; s[i]; i++) {
        const uint8_t *g = glyph(s[i]);
        for (int gy = 0; gy < MTC_FONT_H; gy++)
            for (int gx = 0; gx < 5; gx++)
                if (g[gy] >> (4 - gx) & 1) {
                    int u = i * MTC_FONT_W + gx;
                    mtc_draw_rect(c, x + gy * scale, y + (len - 1 - u) * scale, scale, scale, color);
                }
    }
}

/* ---- colours ------------------------------------------------------------------ */

uint32_t mtc_palette(int i)
{
    static const uint32_t tab10[10] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                       0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
    return tab10[((i % 10) + 10) % 10];
}

uint32_t mtc_colormap(double t)
{
    static const uint8_t stops[5][3] = {
        {247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
    if (!(t > 0)) t = 0; /* NaN too */
    if (t > 1) t = 1;
    double f = t * 4;
    int k = f >= 4 ? 3 : (int)f;
    f -= k;
    uint32_t out = 0;
    for (int ch = 0; ch < 3; ch++) {
        double v = stops[k][ch] + f * (stops[k + 1][ch] - stops[k][ch]);
        out = out << 8 | (uint32_t)lround(v);
    }
    return out;
}

uint32_t mtc_text_color_on(uint32_t bg)
{
    int luma = (299 * (int)(bg >> 16 & 255) + 587 * (int)(bg >> 8 & 255) + 114 * (int)(bg & 255)) / 1000;
    return luma < 140 ? MTC_WHITE : MTC_BLACK;
}

/* ---- ticks -------------------------------------------------------------------- */

double mtc_tick_step(double lo, double hi, int target)
{
    double span = hi - lo;
    if (!(span > 0) || !isfinite(span)) return 1;
    if (target < 1) target = 1;
    double raw = span / target, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

int mtc_ticks_linear(double lo, double hi, int target, double *out, int cap)
{
    double step = mtc_tick_step(lo, hi, target);
    int n = 0;
    /* a tick within 1e-9 step of the range still counts (rounding) */
    for (double k = ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step && n < cap; k++) {
        double v = k * step;
        out[n++] = fabs(v) < 1e-12 * step ? 0 : v;
    }
    return n;
}

int mtc_ticks_log10(double lo, double hi, double *out, int cap)
{
    if (!(lo > 0) || !(hi >= lo)) return 0;
    int k0 = (int)floor(log10(lo)), k1 = (int)ceil(log10(hi)), n = 0;
    for (int k = k0; k <= k1 && n < cap; k++) {
        double v = pow(10, k);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out[n++] = v;
    }
    /* fewer than three: 1-2-5 per decade, then every integer multiple */
    static const double m125[3] = {1, 2, 5}, m1to9[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const double *mults[2] = {m125, m1to9};
    int nm[2] = {3, 9};
    for (int pass = 0; pass < 2 && n < 3; pass++) {
        n = 0;
        for (int k = k0; k <= k1; k++)
            for (int m = 0; m < nm[pass] && n < cap; m++) {
                double v = mults[pass][m] * pow(10, k);
                if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out[n++] = v;
            }
    }
    return n;
}

void mtc_tick_label(double v, double step, char *buf, size_t n)
{
    if (step > 0) {
        int dec = (int)-floor(log10(step) + 1e-9);
        if (dec < 0) dec = 0;
        if (dec > 6 || fabs(v) >= 1e7) snprintf(buf, n, "%g", v);
        else snprintf(buf, n, "%.*f", dec, v);
        return;
    }
    static const char *suffix[] = {"", "k", "M", "G", "T"};
    int s = 0;
    double a = v;
    while (fabs(a) >= 1000 && s < 4) { a /= 1000; s++; }
    snprintf(buf, n, "%g%s", a, suffix[s]);
}

/* ---- axes --------------------------------------------------------------------- */

double mtc_axes_px(const mtc_axes *a, double x)
{
    double lo = a->x0, hi = a->x1;
    if (a->logx) { x = log10(x); lo = log10(lo); hi = log10(hi); }
    return a->x + (x - lo) / (hi - lo) * (a->w - 1);
}

double mtc_axes_py(const mtc_axes *a, double y)
{
    return a->y + a->h - 1 - (y - a->y0) / (a->y1 - a->y0) * (a->h - 1);
}

#define MAX_TICKS 32
typedef struct ticks {
    int n;
    double v[MAX_TICKS];
    double step; /* 0 on a log axis */
    char label[MAX_TICKS][24];
    int maxw;    /* widest label, pixels at scale 1 */
} ticks;

static void ticks_label(ticks *t)
{
    t->maxw = 0;
    for (int i = 0; i < t->n; i++) {
        mtc_tick_label(t->v[i], t->step, t->label[i], sizeof t->label[i]);
        int w = mtc_text_width(t->label[i], 1);
        if (w > t->maxw) t->maxw = w;
    }
}

/* Data range of all series on one axis (finite values; x > 0 on log axes). */
static int series_range(const mtc_series *s, int ns, int use_x, int pos_only, double *lo, double *hi)
{
    int any = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            double x = s[i].x[k], y = s[i].y[k], v = use_x ? x : y;
            if (!isfinite(x) || !isfinite(y) || (pos_only && x <= 0)) continue;
            if (v < *lo) *lo = v;
            if (v > *hi) *hi = v;
            any = 1;
        }
    return any;
}

/* Picks x range and ticks. Linear: data range padded 4% each side; log:
 * padded 0.15 decade. */
static void x_axis(const mtc_chart *ch, const mtc_series *s, int ns, mtc_axes *a, ticks *t)
{
    double lo, hi;
    int logx = ch->logx;
    if (!series_range(s, ns, 1, logx, &lo, &hi)) { lo = logx ? 1 : 0; hi = logx ? 10 : 1; }
    if (logx) {
        double l0 = log10(lo), l1 = log10(hi);
        if (l1 - l0 < 0.5) { double m = (l0 + l1) / 2; l0 = m - 0.25; l1 = m + 0.25; }
        double pad = 0.08 * (l1 - l0) + 0.1;
        a->x0 = pow(10, l0 - pad);
        a->x1 = pow(10, l1 + pad);
        t->n = mtc_ticks_log10(a->x0, a->x1, t->v, MAX_TICKS);
        t->step = 0;
    } else {
        if (hi - lo < 1e-12 * fmax(1, fabs(hi))) { lo -= 0.5; hi += 0.5; }
        double pad = 0.04 * (hi - lo);
        a->x0 = lo - pad;
        a->x1 = hi + pad;
        t->step = mtc_tick_step(a->x0, a->x1, 6);
        if (ch->xint && t->step < 1) t->step = 1;
        t->n = 0;
        for (double k = ceil(a->x0 / t->step); k * t->step <= a->x1 && t->n < MAX_TICKS; k++)
            t->v[t->n++] = k == 0 ? 0 : k * t->step; /* no "-0.0" */
    }
    a->logx = logx;
    ticks_label(t);
}

/* Y range: fixed, or the data rounded out to whole tick steps. */
static void y_axis(const mtc_chart *ch, const mtc_series *s, int ns, mtc_axes *a, ticks *t)
{
    double lo, hi;
    if (ch->ymin < ch->ymax) {
        lo = ch->ymin;
        hi = ch->ymax;
        t->step = mtc_tick_step(lo, hi, 5);
    } else {
        if (!series_range(s, ns, 0, ch->logx, &lo, &hi)) { lo = 0; hi = 1; }
        if (hi - lo < 1e-12 * fmax(1, fabs(hi))) {
            double d = fabs(hi) > 0 ? fabs(hi) * 0.1 : 0.5;
            lo -= d;
            hi += d;
        }
        /* 3% headroom so points do not sit on the frame; not below 0 for
         * data that is never negative (losses, accuracies) */
        double pad = 0.03 * (hi - lo);
        lo = lo >= 0 && lo - pad < 0 ? 0 : lo - pad;
        hi += pad;
        t->step = mtc_tick_step(lo, hi, 5);
        lo = floor(lo / t->step + 1e-9) * t->step;
        hi = ceil(hi / t->step - 1e-9) * t->step;
    }
    a->y0 = lo;
    a->y1 = hi;
    t->n = mtc_ticks_linear(lo, hi, 5, t->v, MAX_TICKS);
    ticks_label(t);
}

static int legend_width(const mtc_series *s, int ns)
{
    int w = 0;
    for (int i = 0; i < ns; i++)
        if (s[i].name && s[i].n > 0 && mtc_text_width(s[i].name, 1) > w) w = mtc_text_width(s[i].name, 1);
    return w ? w + 30 : 0; /* gap 8, swatch 16, gap 6 */
}

static void legend_draw(mtc_canvas *c, int x, int y, int h, const mtc_series *s, int ns, int scatter)
{
    int row = 0, rows = h / LEGEND_ROW;
    for (int i = 0; i < ns; i++) {
        if (!s[i].name || s[i].n == 0) continue; /* empty series: not listed */
        int yy = y + row * LEGEND_ROW;
        if (row == rows - 1 && i < ns - 1) { /* no room for the rest */
            char more[32];
            snprintf(more, sizeof more, "+%d more", ns - i);
            mtc_draw_text(c, x + 8, yy, more, 1, TEXT_COLOR);
            return;
        }
        uint32_t col = mtc_palette(i);
        if (scatter) {
            mtc_draw_marker(c, x + 16, yy + 3, i, 3, col);
        } else {
            mtc_draw_line(c, x + 8, yy + 3, x + 23, yy + 3, 2, col);
        }
        mtc_draw_text(c, x + 30, yy, s[i].name, 1, TEXT_COLOR);
        row++;
    }
}

/* Lays out the panel, draws title, grid, frame, ticks, labels and legend.
 * Fills a with the plot area. */
static int axes_draw(mtc_canvas *c, int px, int py, int pw, int ph, const mtc_chart *ch,
                     const mtc_series *s, int ns, int scatter, mtc_axes *a, mtc_err *e)
{
    ticks xt, yt;
    memset(a, 0, sizeof *a);
    x_axis(ch, s, ns, a, &xt);
    y_axis(ch, s, ns, a, &yt);
    int top = PAD + (ch->title ? 2 * MTC_FONT_H + 10 : 6);
    int left = PAD + (ch->ylabel ? MTC_FONT_H + 8 : 0) + yt.maxw + 4 + TICK_LEN;
    int bottom = TICK_LEN + 4 + MTC_FONT_H + (ch->xlabel ? 8 + MTC_FONT_H : 0) + PAD;
    int lw = legend_width(s, ns);
    int right = PAD + (lw ? lw : 0) + (xt.n ? mtc_text_width(xt.label[xt.n - 1], 1) / 2 : 0);
    a->x = px + left;
    a->y = py + top;
    a->w = pw - left - right;
    a->h = ph - top - bottom;
    if (a->w < 40 || a->h < 40)
        return mtc_err_set(e, MTC_EINPUT, "chart: a %dx%d panel leaves no room for the plot", pw, ph);
    if (ch->title) {
        int tw = mtc_text_width(ch->title, 2), tx = a->x + (a->w - tw) / 2;
        if (tx + tw > px + pw - PAD) tx = px + pw - PAD - tw;
        if (tx < px + PAD) tx = px + PAD;
        mtc_draw_text(c, tx, py + PAD, ch->title, 2, TEXT_COLOR);
    }
    for (int i = 0; i < xt.n; i++) {
        int x = (int)lround(mtc_axes_px(a, xt.v[i]));
        mtc_draw_rect(c, x, a->y, 1, a->h, GRID_COLOR);
        mtc_draw_rect(c, x, a->y + a->h, 1, TICK_LEN, FRAME_COLOR);
        int w = mtc_text_width(xt.label[i], 1);
        mtc_draw_text(c, x - w / 2, a->y + a->h + TICK_LEN + 3, xt.label[i], 1, TEXT_COLOR);
    }
    for (int i = 0; i < yt.n; i++) {
        int y = (int)lround(mtc_axes_py(a, yt.v[i]));
        mtc_draw_rect(c, a->x, y, a->w, 1, GRID_COLOR);
        mtc_draw_rect(c, a->x - TICK_LEN, y, TICK_LEN, 1, FRAME_COLOR);
        int w = mtc_text_width(yt.label[i], 1);
        mtc_draw_text(c, a->x - TICK_LEN - 3 - w, y - MTC_FONT_H / 2 + 1, yt.label[i], 1, TEXT_COLOR);
    }
    mtc_draw_rect_outline(c, a->x - 1, a->y - 1, a->w + 2, a->h + 2, FRAME_COLOR);
    if (ch->xlabel) {
        int w = mtc_text_width(ch->xlabel, 1);
        mtc_draw_text(c, a->x + (a->w - w) / 2, a->y + a->h + TICK_LEN + 4 + MTC_FONT_H + 7, ch->xlabel, 1,
                      TEXT_COLOR);
    }
    if (ch->ylabel) {
        int w = mtc_text_width(ch->ylabel, 1), y = a->y + (a->h - w) / 2;
        mtc_draw_text_up(c, px + PAD, y < py ? py : y, ch->ylabel, 1, TEXT_COLOR);
    }
    if (lw) legend_draw(c, a->x + a->w + 2, a->y, a->h, s, ns, scatter);
    double lo, hi;
    if (!series_range(s, ns, 1, ch->logx, &lo, &hi)) {
        const char *msg = "no data";
        mtc_draw_text(c, a->x + (a->w - mtc_text_width(msg, 2)) / 2, a->y + a->h / 2 - MTC_FONT_H, msg, 2,
                      MTC_GRAY);
    }
    return MTC_OK;
}

static int point_ok(const mtc_axes *a, double x, double y)
{
    return isfinite(x) && isfinite(y) && (!a->logx || x > 0);
}

int mtc_chart_lines(mtc_canvas *c, int x, int y, int w, int h, const mtc_chart *ch, const mtc_series *s,
                    int ns, mtc_err *e)
{
    mtc_axes a;
    int rc = axes_draw(c, x, y, w, h, ch, s, ns, 0, &a, e);
    if (rc) return rc;
    mtc_canvas_clip(c, a.x, a.y, a.w, a.h);
    for (int i = 0; i < ns; i++) {
        uint32_t col = mtc_palette(i);
        int have = 0, lx = 0, ly = 0;
        for (int k = 0; k < s[i].n; k++) {
            if (!point_ok(&a, s[i].x[k], s[i].y[k])) { have = 0; continue; }
            int px = (int)lround(mtc_axes_px(&a, s[i].x[k])), py = (int)lround(mtc_axes_py(&a, s[i].y[k]));
            if (have) mtc_draw_line(c, lx, ly, px, py, 2, col);
            /* a lone point between gaps would be invisible without a marker */
            int lone = !have && (k + 1 >= s[i].n || !point_ok(&a, s[i].x[k + 1], s[i].y[k + 1]));
            if (ch->markers || lone) mtc_draw_marker(c, px, py, MTC_MARK_CIRCLE, 2, col);
            lx = px;
            ly = py;
            have = 1;
        }
    }
    mtc_canvas_unclip(c);
    return MTC_OK;
}

typedef struct box { int x0, y0, x1, y1; } box;

static int box_hits(const box *b, const box *all, int n)
{
    for (int i = 0; i < n; i++)
        if (b->x0 < all[i].x1 && all[i].x0 < b->x1 && b->y0 < all[i].y1 && all[i].y0 < b->y1) return 1;
    return 0;
}

/* Places a point label right, left, above or below its marker (gap px from
 * its centre), the first spot inside the plot that overlaps no marker and no
 * earlier label. */
static box label_place(const mtc_axes *a, int px, int py, int gap, int tw, const box *taken, int ntaken)
{
    const int th = MTC_FONT_H;
    const int cand[4][2] = {{px + gap, py - th / 2}, {px - gap - tw, py - th / 2},
                            {px - tw / 2, py - gap - th}, {px - tw / 2, py + gap}};
    box first = {0, 0, 0, 0};
    for (int k = 0; k < 4; k++) {
        int x = cand[k][0], y = cand[k][1];
        if (x < a->x + 2) x = a->x + 2;
        if (x + tw > a->x + a->w - 2) x = a->x + a->w - 2 - tw;
        if (y < a->y + 2) y = a->y + 2;
        if (y + th > a->y + a->h - 2) y = a->y + a->h - 2 - th;
        box b = {x, y, x + tw, y + th};
        if (k == 0) first = b;
        if (!box_hits(&b, taken, ntaken)) return b;
    }
    return first;
}

int mtc_chart_scatter(mtc_canvas *c, int x, int y, int w, int h, const mtc_chart *ch, const mtc_series *s,
                      int ns, mtc_err *e)
{
    mtc_axes a;
    int rc = axes_draw(c, x, y, w, h, ch, s, ns, 1, &a, e);
    if (rc) return rc;
    int npts = 0;
    for (int i = 0; i < ns; i++) npts += s[i].n;
    box *taken = malloc(sizeof *taken * (size_t)(2 * npts + 1));
    if (!taken) return mtc_err_set(e, MTC_ENOMEM, "chart: out of memory for %d points", npts);
    int nt = 0;
    mtc_canvas_clip(c, a.x, a.y, a.w, a.h);
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            if (!point_ok(&a, s[i].x[k], s[i].y[k])) continue;
            int px = (int)lround(mtc_axes_px(&a, s[i].x[k])), py = (int)lround(mtc_axes_py(&a, s[i].y[k]));
            mtc_draw_marker(c, px, py, i, 4, mtc_palette(i));
            int r = 5;
            if (s[i].ring && s[i].ring[k]) { /* two px thick, clear of the marker */
                r = RING_R + 1;
                mtc_draw_circle(c, px, py, RING_R, 0, TEXT_COLOR);
                mtc_draw_circle(c, px, py, RING_R + 1, 0, TEXT_COLOR);
            }
            taken[nt++] = (box){px - r, py - r, px + r + 1, py + r + 1};
        }
    mtc_canvas_unclip(c);
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < s[i].n; k++) {
            const char *lab = s[i].labels ? s[i].labels[k] : NULL;
            if (!lab || !point_ok(&a, s[i].x[k], s[i].y[k])) continue;
            int px = (int)lround(mtc_axes_px(&a, s[i].x[k])), py = (int)lround(mtc_axes_py(&a, s[i].y[k]));
            int gap = s[i].ring && s[i].ring[k] ? RING_R + 4 : 7; /* clear of the marker or its ring */
            box b = label_place(&a, px, py, gap, mtc_text_width(lab, 1), taken, nt);
            taken[nt++] = b;
            mtc_draw_text(c, b.x0, b.y0, lab, 1, TEXT_COLOR);
        }
    free(taken);
    return MTC_OK;
}

/* ---- heatmap ------------------------------------------------------------------ */

typedef struct hm_layout {
    int cell, title_h, ylab_w, rowlab_w, collab_h, collab_up, xlab_h, grid_x, grid_y, w, h;
} hm_layout;

static void hm_cell_text(const mtc_heatmap *hm, double v, char *buf, size_t n)
{
    if (!isfinite(v)) snprintf(buf, n, "-");
    else if (hm->integers) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%.2f", v);
}

static void hm_label(const char *const *labels, int i, char *buf, size_t n)
{
    if (labels && labels[i]) snprintf(buf, n, "%s", labels[i]);
    else snprintf(buf, n, "%d", i);
}

static void hm_layout_compute(const mtc_heatmap *hm, hm_layout *L)
{
    char buf[64];
    int textw = 0, rowlab = 0, collab = 0;
    for (int i = 0; i < hm->rows * hm->cols; i++) {
        hm_cell_text(hm, hm->v[i], buf, sizeof buf);
        if (mtc_text_width(buf, 1) > textw) textw = mtc_text_width(buf, 1);
    }
    for (int r = 0; r < hm->rows; r++) {
        hm_label(hm->row_labels, r, buf, sizeof buf);
        if (mtc_text_width(buf, 1) > rowlab) rowlab = mtc_text_width(buf, 1);
    }
    for (int k = 0; k < hm->cols; k++) {
        hm_label(hm->col_labels, k, buf, sizeof buf);
        if (mtc_text_width(buf, 1) > collab) collab = mtc_text_width(buf, 1);
    }
    L->cell = textw + 10 < 24 ? 24 : textw + 10;
    if (L->cell > 64) L->cell = 64; /* wider values are left out of the cells */
    L->title_h = hm->title ? 2 * MTC_FONT_H + 12 : 4;
    L->ylab_w = hm->ylabel ? MTC_FONT_H + 8 : 0;
    L->rowlab_w = rowlab + 6;
    L->collab_up = collab > L->cell - 2;
    L->collab_h = (L->collab_up ? collab : MTC_FONT_H) + 6;
    L->xlab_h = hm->xlabel ? MTC_FONT_H + 6 : 0;
    L->grid_x = PAD + L->ylab_w + L->rowlab_w;
    L->grid_y = PAD + L->title_h;
    L->w = L->grid_x + hm->cols * L->cell + PAD;
    int tw = hm->title ? 2 * PAD + mtc_text_width(hm->title, 2) : 0;
    if (tw > L->w) { /* centre the grid under a wider title */
        L->grid_x += (tw - L->w) / 2;
        L->w = tw;
    }
    L->h = L->grid_y + hm->rows * L->cell + L->collab_h + L->xlab_h + PAD;
}

void mtc_heatmap_size(const mtc_heatmap *hm, int *w, int *h)
{
    hm_layout L;
    hm_layout_compute(hm, &L);
    *w = L.w;
    *h = L.h;
}

int mtc_chart_heatmap(mtc_canvas *c, int x, int y, const mtc_heatmap *hm, mtc_err *e)
{
    if (hm->rows < 1 || hm->cols < 1 || hm->rows > 256 || hm->cols > 256)
        return mtc_err_set(e, MTC_EINPUT, "heatmap: %dx%d cells is outside 1..256 per side", hm->rows, hm->cols);
    hm_layout L;
    hm_layout_compute(hm, &L);
    int gx = x + L.grid_x, gy = y + L.grid_y, cell = L.cell;
    char buf[64];
    if (hm->title) mtc_draw_text(c, x + PAD, y + PAD, hm->title, 2, TEXT_COLOR);
    double vmax = 0;
    for (int i = 0; i < hm->rows * hm->cols; i++)
        if (isfinite(hm->v[i]) && hm->v[i] > vmax) vmax = hm->v[i];
    for (int r = 0; r < hm->rows; r++) {
        double rsum = 0;
        for (int k = 0; k < hm->cols; k++)
            if (isfinite(hm->v[r * hm->cols + k])) rsum += hm->v[r * hm->cols + k];
        double denom = hm->row_normalize ? rsum : vmax;
        for (int k = 0; k < hm->cols; k++) {
            double v = hm->v[r * hm->cols + k];
            uint32_t bg = isfinite(v) ? mtc_colormap(denom > 0 ? v / denom : 0) : 0xd0d0d0u;
            int cx = gx + k * cell, cy = gy + r * cell;
            mtc_draw_rect(c, cx, cy, cell, cell, bg);
            hm_cell_text(hm, v, buf, sizeof buf);
            int tw = mtc_text_width(buf, 1);
            if (tw <= cell - 4)
                mtc_draw_text(c, cx + (cell - tw) / 2 + 1, cy + (cell - MTC_FONT_H) / 2, buf, 1,
                              mtc_text_color_on(bg));
        }
        hm_label(hm->row_labels, r, buf, sizeof buf);
        mtc_draw_text(c, gx - 6 - mtc_text_width(buf, 1), gy + r * cell + (cell - MTC_FONT_H) / 2, buf, 1,
                      TEXT_COLOR);
    }
    mtc_draw_rect_outline(c, gx - 1, gy - 1, hm->cols * cell + 2, hm->rows * cell + 2, FRAME_COLOR);
    int ly = gy + hm->rows * cell + 5;
    for (int k = 0; k < hm->cols; k++) {
        hm_label(hm->col_labels, k, buf, sizeof buf);
        int tw = mtc_text_width(buf, 1);
        if (L.collab_up)
            mtc_draw_text_up(c, gx + k * cell + (cell - MTC_FONT_H) / 2, ly, buf, 1, TEXT_COLOR);
        else
            mtc_draw_text(c, gx + k * cell + (cell - tw) / 2 + 1, ly, buf, 1, TEXT_COLOR);
    }
    if (hm->xlabel) {
        int tw = mtc_text_width(hm->xlabel, 1);
        mtc_draw_text(c, gx + (hm->cols * cell - tw) / 2, ly + L.collab_h, hm->xlabel, 1, TEXT_COLOR);
    }
    if (hm->ylabel) {
        int th = mtc_text_width(hm->ylabel, 1), ty = gy + (hm->rows * cell - th) / 2;
        mtc_draw_text_up(c, x + L.grid_x - L.rowlab_w - L.ylab_w, ty < y ? y : ty, hm->ylabel, 1, TEXT_COLOR);
    }
    return MTC_OK;
}
