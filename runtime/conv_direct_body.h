/*
 * conv_direct_body.h — the vector body of conv_direct.c, included by
 * conv_direct_avx2.c (VW 8) and conv_direct_avx512.c (VW 16), which define
 * VF (the vector type, GCC's operators on it), VW, LOADU, SPLAT, FMA,
 * VMAX, STORE_N (the first n lanes), HPOOL_STORE_N (the maxima of lane
 * pairs (0,1), (2,3), ... as the first n values) and FN (the name).
 */
#ifndef OCB
#define OCB 4 /* output channels per pass over a chunk's inputs */
#endif

void FN(float *out, const float *in, const float *W, const float *b, int relu, int pool, float *work,
        const mtc_conv_shape *s, int B)
{
    const int C = s->C, K = s->K, OC = s->OC, OH = s->OH, OW = s->OW, CKK = C * K * K;
    const int Hp = s->H + 2 * s->pad, Wp = mtc_conv_direct_wp(s);
    const int rows = pool ? 2 : 1, OHo = pool ? OH / 2 : OH, OWo = pool ? OW / 2 : OW;
    const int64_t in_size = (int64_t)C * s->H * s->W, out_size = (int64_t)OC * OHo * OWo;
    const VF zero = SPLAT(0.0f);
    VF x[2][MTC_DIRECT_MAX_CKK];
    for (int bi = 0; bi < B; bi++) {
        mtc_conv_direct_pad(work, in + bi * in_size, s);
        float *o = out + bi * out_size;
        for (int r = 0; r < OHo; r++)
            for (int ow = 0; ow < OW; ow += VW) {
                /* positions ow .. ow + VW − 1 of output rows r·rows (+ 1) */
                for (int j = 0; j < rows; j++)
                    for (int c = 0, k = 0; c < C; c++)
                        for (int kh = 0; kh < K; kh++) {
                            const float *src = work + ((int64_t)c * Hp + r * rows + j + kh) * Wp + ow;
                            for (int kw = 0; kw < K; kw++, k++) x[j][k] = LOADU(src + kw);
                        }
                const int n = pool ? (OWo - ow / 2 < VW / 2 ? OWo - ow / 2 : VW / 2) : (OW - ow < VW ? OW - ow : VW);
                if (n <= 0) break; /* pooling drops an odd last column */
                for (int oc0 = 0; oc0 < OC; oc0 += OCB) {
                    const int nb = OC - oc0 < OCB ? OC - oc0 : OCB;
                    VF a[2][OCB];
                    for (int i = 0; i < OCB; i++) a[0][i] = a[1][i] = zero;
                    const float *w = W + (int64_t)oc0 * CKK;
                    if (nb == OCB && pool) {
                        for (int k = 0; k < CKK; k++) {
                            VF x0 = x[0][k], x1 = x[1][k];
                            for (int i = 0; i < OCB; i++) {
                                VF wk = SPLAT(w[(int64_t)i * CKK + k]);
                                a[0][i] = FMA(wk, x0, a[0][i]);
                                a[1][i] = FMA(wk, x1, a[1][i]);
                            }
                        }
                    } else if (nb == OCB) {
                        for (int k = 0; k < CKK; k++) {
                            VF x0 = x[0][k];
                            for (int i = 0; i < OCB; i++) a[0][i] = FMA(SPLAT(w[(int64_t)i * CKK + k]), x0, a[0][i]);
                        }
                    } else {
                        for (int i = 0; i < nb; i++)
                            for (int k = 0; k < CKK; k++)
                                for (int j = 0; j < rows; j++) a[j][i] = FMA(SPLAT(w[(int64_t)i * CKK + k]), x[j][k], a[j][i]);
                    }
                    for (int i = 0; i < nb; i++) {
                        const int oc = oc0 + i;
                        const VF bias = SPLAT(b[oc]);
                        if (pool) {
                            VF v = VMAX(a[0][i], a[1][i]);
                            HPOOL_STORE_N(o + ((int64_t)oc * OHo + r) * OWo + ow / 2, v, bias, relu, n);
                        } else {
                            VF v = a[0][i] + bias;
                            if (relu) v = VMAX(v, zero);
                            STORE_N(o + ((int64_t)oc * OHo + r) * OWo + ow, v, n);
                        }
                    }
                }
            }
    }
}
