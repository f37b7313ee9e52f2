/*
 * epilogue.c — the scalar dense int8 epilogue (reference for the AVX-512
 * twin in epilogue_avx512.c) and the check of when the twin applies.
 */
#include "mtc.h"

/* out[m·ld + n] = clamp(requant(C[m·N + n] + bias[n]) + zo, lo, 255) */
void mtc_epilogue_dense_u8_scalar(const int32_t *C, int M, int N, const int32_t *bias, const int32_t *m0,
                                  const int *shift, int32_t zo, int32_t lo, uint8_t *out, int ld)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int32_t v = mtc_requantize(C[(int64_t)m * N + n] + bias[n], m0[n], shift[n]) + zo;
            out[(int64_t)m * ld + n] = (uint8_t)(v < lo ? lo : v > 255 ? 255 : v);
        }
}

int mtc_epilogue_vectorizable(const int32_t *m0, const int *shift, int N)
{
    for (int n = 0; n < N; n++)
        if (m0[n] <= 0 || shift[n] < 0 || shift[n] > 30) return 0;
    return 1;
}
