/*
 * wino.c — Winograd F(2×2, 3×3) convolution for inference: a 3×3, stride-1
 * convolution computed on 2×2 output tiles from 4×4 input tiles with 16
 * multiplies per (tile, in-channel, out-channel) instead of 36 (Lavin &
 * Gray 2016). Forward only: training keeps im2col + sgemm (conv2d.c), whose
 * backward it mirrors.
 *
 *   U = G g Gᵀ  (weights, once per model: U[ξ][c][oc], ξ = 4i + j)
 *   V = Bᵀ d B  (each 4×4 input tile d, rows/cols 2t − pad .. 2t − pad + 3)
 *   M[ξ] = V[ξ] · U[ξ]  (16 GEMMs over the channels: tiles × C times C × OC)
 *   y = Aᵀ M A  (the 2×2 output tile) + bias, relu if asked
 *       G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
 *       Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
 *       Aᵀ = [1 1 1 0; 0 1 −1 −1]
 * Values equal im2col's to rounding, not to the bit (tests bound the gap).
 *
 * Per sample, the input is copied once to a zero-padded channels-last plane
 * (so a tile's channels are contiguous and the transforms run along them),
 * then tiles go in blocks of MTC_WINO_TB: transform in, 16 GEMMs, transform out,
 * inside the L2 (C = 32, OC = 64: 150 KB). The GEMMs are mtc_gemm's (gemm.c,
 * AVX2 in gemm_avx2.c, AVX-512 in gemm_avx512.c, U packed as a dense
 * layer's weights); both transforms have AVX2 twins in wino_avx2.c. Blocks
 * of 24 tiles, not 12: the teacher's 32→64 conv went from 14.2–14.5k to
 * 15.7–16.7k samples/s at batch 256 (AVX-512 GEMM; 50 tiles: 15.6–16.0k);
 * the GEMMs had too few rows to amortise each block's accumulators.
 * Workspace layout (mtc_wino_work_floats):
 *   [0, Hp·Wp·C)            padded channels-last sample, Hp = 2·TH + 2
 *   then V (16, TB, C), M (16, TB, OC), one output tile Y (4, OC)
 */
#include "mtc.h"

#include <string.h>

int mtc_wino_eligible(const mtc_conv_shape *s)
{
    /* at C < 8 the transforms cost more than the multiplies they save */
    return s->K == 3 && s->stride == 1 && s->pad <= 2 && s->C >= 8 && s->G == 1;
}

/* 16 planes, each (C, OC) packed in 16-column panels (mtc_gemm_pack's
 * layout), so that every kernel, AVX-512's too, reads them as a dense
 * layer's weights. */
int64_t mtc_wino_u_floats(const mtc_conv_shape *s)
{
    return 16 * mtc_gemm_pack_floats(s->OC, s->C);
}

static int tiles_h(const mtc_conv_shape *s) { return (s->OH + 1) / 2; }
static int tiles_w(const mtc_conv_shape *s) { return (s->OW + 1) / 2; }

int64_t mtc_wino_work_floats(const mtc_conv_shape *s)
{
    int64_t Hp = 2 * tiles_h(s) + 2, Wp = 2 * tiles_w(s) + 2;
    return Hp * Wp * s->C + 16 * MTC_WINO_TB * ((int64_t)s->C + s->OC) + 4 * (int64_t)s->OC;
}

/* U[ξ] (c, oc) = (G g Gᵀ)[i][j] for g = W[oc][c] (3×3), ξ = 4i + j, at
 * panel oc / 16, row c, lane oc % 16 of plane ξ (zeros past OC). */
void mtc_wino_weights(float *U, const float *W, const mtc_conv_shape *s)
{
    const int C = s->C, OC = s->OC;
    const int64_t plane = mtc_gemm_pack_floats(OC, C);
    memset(U, 0, sizeof(float) * (size_t)(16 * plane));
    for (int oc = 0; oc < OC; oc++)
        for (int c = 0; c < C; c++) {
            const float *g = W + ((int64_t)oc * C + c) * 9;
            float q[4][3], u[4][4];
            for (int j = 0; j < 3; j++) { /* q = G g */
                q[0][j] = g[j];
                q[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                q[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                q[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) { /* u = q Gᵀ */
                u[i][0] = q[i][0];
                u[i][1] = 0.5f * (q[i][0] + q[i][1] + q[i][2]);
                u[i][2] = 0.5f * (q[i][0] - q[i][1] + q[i][2]);
                u[i][3] = q[i][2];
            }
            for (int x = 0; x < 16; x++) U[x * plane + (int64_t)(oc & ~15) * C + (int64_t)c * 16 + (oc & 15)] = u[x / 4][x % 4];
        }
}

/* P[(y·Wp + x)·C + c] = in[c][y − pad][x − pad], 0 outside the image. */
static void pad_channels_last(float *P, const float *in, const mtc_conv_shape *s, int Hp, int Wp)
{
    const int C = s->C, H = s->H, Wd = s->W, p = s->pad;
    memset(P, 0, (size_t)Hp * Wp * C * sizeof *P);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H && y + p < Hp; y++) {
            const float *row = in + ((int64_t)c * H + y) * Wd;
            float *dst = P + ((int64_t)(y + p) * Wp + p) * C + c;
            for (int x = 0; x < Wd && x + p < Wp; x++) dst[(int64_t)x * C] = row[x];
        }
}

/* V[ξ][t][c] = Bᵀ d B for tile t at (th, tw), channels c0..C−1: d rows
 * 2th.., cols 2tw.. of P. Channels innermost: every load and store is
 * contiguous in c (mtc_wino_input_avx2 does 8 at a time). */
static void input_tile(float *restrict V, int t, const float *restrict P, int th, int tw, int C, int Wp, int c0)
{
    const int64_t vs = (int64_t)MTC_WINO_TB * C, rs = (int64_t)Wp * C; /* ξ stride, row stride */
    float *v = V + (int64_t)t * C;
    const float *d = P + ((int64_t)2 * th * Wp + 2 * tw) * C;
    for (int c = c0; c < C; c++) {
        float r[4][4];
        for (int j = 0; j < 4; j++) { /* r = Bᵀ d, column j */
            float d0 = d[j * C + c], d1 = d[rs + j * C + c], d2 = d[2 * rs + j * C + c],
                  d3 = d[3 * rs + j * C + c];
            r[0][j] = d0 - d2;
            r[1][j] = d1 + d2;
            r[2][j] = d2 - d1;
            r[3][j] = d1 - d3;
        }
        for (int i = 0; i < 4; i++) { /* (Bᵀ d) B, row i */
            v[(4 * i + 0) * vs + c] = r[i][0] - r[i][2];
            v[(4 * i + 1) * vs + c] = r[i][1] + r[i][2];
            v[(4 * i + 2) * vs + c] = r[i][2] - r[i][1];
            v[(4 * i + 3) * vs + c] = r[i][1] - r[i][3];
        }
    }
}

/* Y[a·2 + e][oc] = (Aᵀ M A)[a][e] + b[oc], relu'd when asked: one tile,
 * channels oc0..OC−1 innermost (mtc_wino_output_avx2 does 8 at a time). */
static void output_transform(float *restrict Y, const float *restrict M, int t, int OC, const float *b, int relu,
                             int oc0)
{
    const int64_t ms = (int64_t)MTC_WINO_TB * OC;
    const float *m = M + (int64_t)t * OC;
    for (int oc = oc0; oc < OC; oc++) {
        float k[4][4], sa[2][4];
        for (int x = 0; x < 16; x++) k[x / 4][x % 4] = m[x * ms + oc];
        for (int j = 0; j < 4; j++) { /* Aᵀ M */
            sa[0][j] = k[0][j] + k[1][j] + k[2][j];
            sa[1][j] = k[1][j] - k[2][j] - k[3][j];
        }
        const float bias = b ? b[oc] : 0.0f;
        for (int a = 0; a < 2; a++) { /* (Aᵀ M) A */
            float y0 = sa[a][0] + sa[a][1] + sa[a][2] + bias, y1 = sa[a][1] - sa[a][2] - sa[a][3] + bias;
            if (relu) {
                y0 = y0 > 0.0f ? y0 : 0.0f;
                y1 = y1 > 0.0f ? y1 : 0.0f;
            }
            Y[(2 * a) * OC + oc] = y0;
            Y[(2 * a + 1) * OC + oc] = y1;
        }
    }
}

/* out[oc][2th + a][2tw + e] = Y[a·2 + e][oc], inside the output only. */
static void store_tile(float *out, const float *Y, int th, int tw, const mtc_conv_shape *s)
{
    const int OC = s->OC, OH = s->OH, OW = s->OW;
    const int64_t OHW = (int64_t)OH * OW;
    const int oy = 2 * th, ox = 2 * tw, two_r = oy + 1 < OH, two_c = ox + 1 < OW;
    float *o = out + (int64_t)oy * OW + ox;
    for (int oc = 0; oc < OC; oc++, o += OHW) {
        o[0] = Y[oc];
        if (two_c) o[1] = Y[OC + oc];
        if (two_r) {
            o[OW] = Y[2 * OC + oc];
            if (two_c) o[OW + 1] = Y[3 * OC + oc];
        }
    }
}

/* out[oc][th][tw] = the max of the tile's 2×2 outputs Y[0..3][oc], compared
 * in mtc_maxpool_forward's order (row-major, x > m replaces): the same bits
 * as pooling the stored tile. Tiles past the pooled map (odd OH or OW) are
 * dropped, as the pool drops their row or column. */
static void store_tile_pooled(float *out, const float *Y, int th, int tw, const mtc_conv_shape *s)
{
    const int OC = s->OC, PH = s->OH / 2, PW = s->OW / 2;
    if (th >= PH || tw >= PW) return;
    float *o = out + (int64_t)th * PW + tw;
    for (int oc = 0; oc < OC; oc++, o += (int64_t)PH * PW) {
        float m = Y[oc], v = Y[OC + oc];
        m = v > m ? v : m;
        v = Y[2 * OC + oc];
        m = v > m ? v : m;
        v = Y[3 * OC + oc];
        *o = v > m ? v : m;
    }
}

void mtc_wino_forward(float *out, const float *in, const float *U, const float *b, int relu, int pool,
                      float *work, const mtc_conv_shape *s, int B, int avx2)
{
    mtc_gemm_fn gemm = mtc_gemm_get(avx2); /* 0 scalar, 1 AVX2, 2 AVX-512: the MTC_ISA_* values */
    const int64_t plane = mtc_gemm_pack_floats(s->OC, s->C);
    const int C = s->C, OC = s->OC, TH = tiles_h(s), TW = tiles_w(s), T = TH * TW;
    const int Hp = 2 * TH + 2, Wp = 2 * TW + 2;
    float *P = work, *V = P + (int64_t)Hp * Wp * C, *M = V + 16 * MTC_WINO_TB * (int64_t)C;
    float *Y = M + 16 * MTC_WINO_TB * (int64_t)OC;
    const int64_t in_size = (int64_t)C * s->H * s->W;
    const int64_t out_size = pool ? (int64_t)OC * (s->OH / 2) * (s->OW / 2) : (int64_t)OC * s->OH * s->OW;
    /* blocks of equal size, at most MTC_WINO_TB tiles: 49 tiles go as
     * 17 + 17 + 15, not 24 + 24 and a block of one */
    const int nblk = (T + MTC_WINO_TB - 1) / MTC_WINO_TB, step = (T + nblk - 1) / nblk;
    for (int bi = 0; bi < B; bi++) {
        pad_channels_last(P, in + bi * in_size, s, Hp, Wp);
        float *o = out + bi * out_size;
        for (int t0 = 0; t0 < T; t0 += step) {
            int n = T - t0 < step ? T - t0 : step;
            for (int t = 0; t < n; t++) {
                int th = (t0 + t) / TW, tw = (t0 + t) % TW;
                input_tile(V, t, P, th, tw, C, Wp, avx2 ? mtc_wino_input_avx2(V, t, P, th, tw, C, Wp) : 0);
            }
            for (int x = 0; x < 16; x++) /* M[ξ] (n, OC) = V[ξ] (n, C) · U[ξ] (C, OC) */
                gemm(M + (int64_t)x * MTC_WINO_TB * OC, OC, V + (int64_t)x * MTC_WINO_TB * C, C, n,
                     &(mtc_gemm_w){U + x * plane, C, OC, 1}, NULL, 0);
            for (int t = 0; t < n; t++) {
                output_transform(Y, M, t, OC, b, relu, avx2 ? mtc_wino_output_avx2(Y, M, t, OC, b, relu) : 0);
                (pool ? store_tile_pooled : store_tile)(o, Y, (t0 + t) / TW, (t0 + t) % TW, s);
            }
        }
    }
}
