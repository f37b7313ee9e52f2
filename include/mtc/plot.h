/*
 * mtc/plot.h — a small raster drawing module and the charts `mtc plot` draws
 * (core/plot.c, font in core/font8x8.c).
 *
 * A canvas is w*h RGB bytes, row-major, origin top-left. Colours are
 * 0xRRGGBB. Every primitive clips to the canvas, so callers may draw partly
 * outside it. Text uses a built-in 5x8 bitmap font in a 6x8 cell (printable
 * ASCII; anything else is drawn as '?'), scaled by an integer 1..3.
 *
 * Charts draw into a panel (a rectangle of the canvas): title on top, axes
 * with ticks and numeric labels, axis labels, and a legend right of the plot
 * area. They are not a general plotting library: just what the CLI needs.
 */
#ifndef MTC_PLOT_H
#define MTC_PLOT_H

/* ---- canvas and primitives ---------------------------------------------- */
typedef struct mtc_canvas {
    int w, h;
    uint8_t *rgb; /* w*h*3, owned */
    int clip_x0, clip_y0, clip_x1, clip_y1; /* drawable [x0,x1) x [y0,y1) */
} mtc_canvas;

#define MTC_WHITE 0xffffffu
#define MTC_BLACK 0x000000u
#define MTC_GRAY  0x808080u

/* Limits a canvas side to 8192 px. */
int mtc_canvas_init(mtc_canvas *c, int w, int h, uint32_t bg, mtc_err *e);
void mtc_canvas_free(mtc_canvas *c);
/* Restricts drawing to a rectangle (inside the canvas); unclip: whole canvas. */
void mtc_canvas_clip(mtc_canvas *c, int x, int y, int w, int h);
void mtc_canvas_unclip(mtc_canvas *c);
uint32_t mtc_canvas_get(const mtc_canvas *c, int x, int y); /* 0 outside */
int mtc_canvas_write_png(const mtc_canvas *c, const char *path, mtc_err *e);

void mtc_draw_pixel(mtc_canvas *c, int x, int y, uint32_t color);
/* Bresenham line, both end pixels included; width 1 or 2 (2 adds the
 * neighbour row/column across the line's minor axis). */
void mtc_draw_line(mtc_canvas *c, int x0, int y0, int x1, int y1, int width,
                   uint32_t color);
/* Filled rectangle of pixels [x, x+w) x [y, y+h); outline: its border. */
void mtc_draw_rect(mtc_canvas *c, int x, int y, int w, int h, uint32_t color);
void mtc_draw_rect_outline(mtc_canvas *c, int x, int y, int w, int h,
                           uint32_t color);
/* Circle of radius r (pixels with dx^2+dy^2 <= r^2 + r when filled). */
void mtc_draw_circle(mtc_canvas *c, int cx, int cy, int r, int filled,
                     uint32_t color);
enum { MTC_MARK_CIRCLE, MTC_MARK_SQUARE, MTC_MARK_DIAMOND, MTC_MARK_TRIANGLE,
       MTC_MARK_COUNT };
/* A filled marker of half-size r centred on (cx, cy). */
void mtc_draw_marker(mtc_canvas *c, int cx, int cy, int kind, int r,
                     uint32_t color);

/* ---- text ----------------------------------------------------------------- */
#define MTC_FONT_W 6 /* cell width, pixels at scale 1 */
#define MTC_FONT_H 8
extern const uint8_t mtc_font5x8[95][8]; /* core/font8x8.c */
int mtc_text_width(const char *s, int scale);  /* strlen * 6 * scale */
/* Left-to-right text with its cell's top-left corner at (x, y). */
void mtc_draw_text(mtc_canvas *c, int x, int y, const char *s, int scale,
                   uint32_t color);
/* Text rotated 90 degrees counter-clockwise (reads bottom to top), for y
 * axis labels; (x, y) is the top-left of its box, which is 8*scale wide and
 * mtc_text_width() tall. */
void mtc_draw_text_up(mtc_canvas *c, int x, int y, const char *s, int scale,
                      uint32_t color);

/* ---- colours -------------------------------------------------------------- */
uint32_t mtc_palette(int i);   /* tab10-like, i mod 10 */
uint32_t mtc_colormap(double t); /* t in [0,1]: white -> dark blue */
/* Black or white, whichever reads better on bg. */
uint32_t mtc_text_color_on(uint32_t bg);

/* ---- ticks and axes ------------------------------------------------------- */
/* "Nice" step (1, 2 or 5 times a power of ten) for about `target` ticks over
 * [lo, hi], and the multiples of it inside [lo, hi] (up to cap). */
double mtc_tick_step(double lo, double hi, int target);
int mtc_ticks_linear(double lo, double hi, int target, double *out, int cap);
/* Log10 axis over [lo, hi] (both > 0): the powers of ten inside; when that
 * gives fewer than 3, 1-2-5 times each power, then 1..9 times. */
int mtc_ticks_log10(double lo, double hi, double *out, int cap);
/* Tick label: linear ticks with as many decimals as `step` needs; log ticks
 * (step 0) as 1, 10, 100, 1k, 10k, 1M, 1G or 0.1, 0.01, 1e-03. */
void mtc_tick_label(double v, double step, char *buf, size_t n);

typedef struct mtc_axes {
    int x, y, w, h;         /* plot area in canvas pixels */
    double x0, x1, y0, y1;  /* data range shown (x0, x1 > 0 when logx) */
    int logx;
} mtc_axes;
/* Data -> canvas pixel; x on a log axis maps log10(x). */
double mtc_axes_px(const mtc_axes *a, double x);
double mtc_axes_py(const mtc_axes *a, double y);

/* ---- charts --------------------------------------------------------------- */
typedef struct mtc_series {
    const char *name;
    int n;
    const double *x, *y;        /* points; a non-finite y leaves a gap */
    const char *const *labels;  /* scatter: text beside each point, or NULL */
    const unsigned char *ring;  /* scatter: ring[k] != 0 circles point k (the
                                   size-accuracy teacher), or NULL */
} mtc_series;

typedef struct mtc_chart {
    const char *title, *xlabel, *ylabel; /* each may be NULL */
    int logx;         /* log10 x axis (x <= 0 points are skipped) */
    int xint;         /* x ticks at integers only (epochs) */
    double ymin, ymax; /* fixed y range when ymin < ymax, else from the data */
    int markers;      /* line chart: also mark each point */
} mtc_chart;

/* Line chart / scatter into the panel (x, y, w, h) of c; series i gets
 * mtc_palette(i) and, in the scatter, marker kind i. Return MTC_EINPUT when
 * the panel is too small for the axes. */
int mtc_chart_lines(mtc_canvas *c, int x, int y, int w, int h,
                    const mtc_chart *ch, const mtc_series *s, int ns,
                    mtc_err *e);
int mtc_chart_scatter(mtc_canvas *c, int x, int y, int w, int h,
                      const mtc_chart *ch, const mtc_series *s, int ns,
                      mtc_err *e);

typedef struct mtc_heatmap {
    const char *title, *xlabel, *ylabel;
    int rows, cols;
    const double *v;                /* rows*cols, row-major */
    const char *const *row_labels;  /* NULL: 0, 1, 2, ... */
    const char *const *col_labels;
    int row_normalize; /* colour by v / row sum (confusion: recall), else v / max */
    int integers;      /* cell text as integers (counts), else 2 decimals */
} mtc_heatmap;
/* Size in pixels the heatmap wants for its cells (cell side chosen so the
 * largest value's text fits), title and labels included. */
void mtc_heatmap_size(const mtc_heatmap *hm, int *w, int *h);
int mtc_chart_heatmap(mtc_canvas *c, int x, int y, const mtc_heatmap *hm,
                      mtc_err *e);

#endif
