/*
 * wino_avx2.c — the AVX2 twin of mtc_wino_gemm_scalar (wino.c): for each of
 * the 16 Winograd planes, M (T, OC) = V (T, C) · U (C, OC). Register block:
 * 6 tiles × 16 channels (12 accumulators); per input channel 2 loads of U,
 * 6 broadcasts of V, 12 FMAs. Channels beyond a multiple of 16 go 8 at a
 * time, the last OC % 8 as in the scalar twin; tiles beyond a multiple of 6
 * are computed on the zeros V holds there (wino.c) and not stored. FMA rounds once
 * where the twin rounds twice: equal to rounding, not to the bit.
 */
#include "mtc.h"

#include <immintrin.h>

/* 6 tiles × 16 channels: 12 accumulators + 2 loads of U + 1 broadcast fit
 * the 16 ymm registers (3 × 32 did not: the compiler re-read U for every
 * FMA, 15 loads per 12 FMAs) */
static void block16(float *M, const float *U, const float *V, int C, int OC, int oc, int t, int nt)
{
    __m256 r00 = _mm256_setzero_ps(), r01 = r00, r10 = r00, r11 = r00, r20 = r00, r21 = r00, r30 = r00,
           r31 = r00, r40 = r00, r41 = r00, r50 = r00, r51 = r00;
    const float *v = V + (int64_t)t * C, *u = U + oc;
    const int64_t C2 = 2 * (int64_t)C, C3 = 3 * (int64_t)C, C4 = 4 * (int64_t)C, C5 = 5 * (int64_t)C;
    for (int c = 0; c < C; c++, u += OC, v++) {
        __m256 u0 = _mm256_loadu_ps(u), u1 = _mm256_loadu_ps(u + 8), x;
        x = _mm256_broadcast_ss(v);
        r00 = _mm256_fmadd_ps(x, u0, r00);
        r01 = _mm256_fmadd_ps(x, u1, r01);
        x = _mm256_broadcast_ss(v + C);
        r10 = _mm256_fmadd_ps(x, u0, r10);
        r11 = _mm256_fmadd_ps(x, u1, r11);
        x = _mm256_broadcast_ss(v + C2);
        r20 = _mm256_fmadd_ps(x, u0, r20);
        r21 = _mm256_fmadd_ps(x, u1, r21);
        x = _mm256_broadcast_ss(v + C3);
        r30 = _mm256_fmadd_ps(x, u0, r30);
        r31 = _mm256_fmadd_ps(x, u1, r31);
        x = _mm256_broadcast_ss(v + C4);
        r40 = _mm256_fmadd_ps(x, u0, r40);
        r41 = _mm256_fmadd_ps(x, u1, r41);
        x = _mm256_broadcast_ss(v + C5);
        r50 = _mm256_fmadd_ps(x, u0, r50);
        r51 = _mm256_fmadd_ps(x, u1, r51);
    }
    float *m = M + (int64_t)t * OC + oc;
    __m256 r[6][2] = {{r00, r01}, {r10, r11}, {r20, r21}, {r30, r31}, {r40, r41}, {r50, r51}};
    for (int i = 0; i < nt; i++, m += OC) {
        _mm256_storeu_ps(m, r[i][0]);
        _mm256_storeu_ps(m + 8, r[i][1]);
    }
}

/* 6 tiles × 8 channels */
static void block8(float *M, const float *U, const float *V, int C, int OC, int oc, int t, int nt)
{
    __m256 r0 = _mm256_setzero_ps(), r1 = r0, r2 = r0, r3 = r0, r4 = r0, r5 = r0;
    const float *v = V + (int64_t)t * C, *u = U + oc;
    for (int c = 0; c < C; c++, u += OC, v++) {
        __m256 w = _mm256_loadu_ps(u);
        r0 = _mm256_fmadd_ps(_mm256_broadcast_ss(v), w, r0);
        r1 = _mm256_fmadd_ps(_mm256_broadcast_ss(v + C), w, r1);
        r2 = _mm256_fmadd_ps(_mm256_broadcast_ss(v + 2 * C), w, r2);
        r3 = _mm256_fmadd_ps(_mm256_broadcast_ss(v + 3 * C), w, r3);
        r4 = _mm256_fmadd_ps(_mm256_broadcast_ss(v + 4 * C), w, r4);
        r5 = _mm256_fmadd_ps(_mm256_broadcast_ss(v + 5 * C), w, r5);
    }
    float *m = M + (int64_t)t * OC + oc;
    __m256 r[6] = {r0, r1, r2, r3, r4, r5};
    for (int i = 0; i < nt; i++, m += OC) _mm256_storeu_ps(m, r[i]);
}

void mtc_wino_gemm_avx2(float *M, const float *U, const float *V, int C, int OC, int T)
{
    for (int x = 0; x < 16; x++) {
        const float *Ux = U + (int64_t)x * C * OC, *Vx = V + (int64_t)x * MTC_WINO_TB * C;
        float *Mx = M + (int64_t)x * MTC_WINO_TB * OC;
        for (int t = 0; t < T; t += 6) {
            int nt = T - t < 6 ? T - t : 6, oc = 0;
            for (; oc + 16 <= OC; oc += 16) block16(Mx, Ux, Vx, C, OC, oc, t, nt);
            for (; oc + 8 <= OC; oc += 8) block8(Mx, Ux, Vx, C, OC, oc, t, nt);
            for (; oc < OC; oc++)
                for (int i = 0; i < nt; i++) {
                    float sum = 0.0f;
                    for (int c = 0; c < C; c++) sum += Vx[(int64_t)(t + i) * C + c] * Ux[(int64_t)c * OC + oc];
                    Mx[(int64_t)(t + i) * OC + oc] = sum;
                }
        }
    }
}

/* input_tile of wino.c, 8 channels per step */
int mtc_wino_input_avx2(float *V, int t, const float *P, int th, int tw, int C, int Wp)
{
    const int64_t vs = (int64_t)MTC_WINO_TB * C, rs = (int64_t)Wp * C;
    float *v = V + (int64_t)t * C;
    const float *d = P + ((int64_t)2 * th * Wp + 2 * tw) * C;
    const int C8 = C & ~7;
    for (int c = 0; c < C8; c += 8) {
        __m256 r[4][4];
        for (int j = 0; j < 4; j++) { /* r = Bᵀ d, column j */
            const float *q = d + (int64_t)j * C + c;
            __m256 d0 = _mm256_loadu_ps(q), d1 = _mm256_loadu_ps(q + rs), d2 = _mm256_loadu_ps(q + 2 * rs),
                   d3 = _mm256_loadu_ps(q + 3 * rs);
            r[0][j] = _mm256_sub_ps(d0, d2);
            r[1][j] = _mm256_add_ps(d1, d2);
            r[2][j] = _mm256_sub_ps(d2, d1);
            r[3][j] = _mm256_sub_ps(d1, d3);
        }
        for (int i = 0; i < 4; i++) { /* (Bᵀ d) B, row i */
            float *o = v + (int64_t)(4 * i) * vs + c;
            _mm256_storeu_ps(o, _mm256_sub_ps(r[i][0], r[i][2]));
            _mm256_storeu_ps(o + vs, _mm256_add_ps(r[i][1], r[i][2]));
            _mm256_storeu_ps(o + 2 * vs, _mm256_sub_ps(r[i][2], r[i][1]));
            _mm256_storeu_ps(o + 3 * vs, _mm256_sub_ps(r[i][1], r[i][3]));
        }
    }
    return C8;
}
