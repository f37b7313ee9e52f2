/*
 * isa.c — the one dispatch point of the runtime's kernels: which ISA the
 * CPU supports (detected once, the only global state besides the thread
 * count), MTC_ISA's override, and the int8 GEMM for an ISA. The fp32 GEMM,
 * sparse and quantize kernels are picked from the same ISA by their users
 * (mtc_rt_set_isa, mtc_spmm_get). Every kernel has a scalar twin that is
 * always built; AVX2/AVX-512 files are compiled with their own flags and run
 * only after this check.
 */
#include "mtc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int cpu_best = -1;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_detect(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        cpu_best = MTC_ISA_AVX512;
    else if (__builtin_cpu_supports("avx2"))
        cpu_best = MTC_ISA_AVX2;
    else
        cpu_best = MTC_ISA_SCALAR;
}

int mtc_qgemm_isa_supported(int isa)
{
    pthread_once(&cpu_once, cpu_detect);
    return isa >= MTC_ISA_SCALAR && isa <= cpu_best;
}

int mtc_qgemm_isa(void)
{
    pthread_once(&cpu_once, cpu_detect);
    const char *env = getenv("MTC_ISA");
    int want = cpu_best;
    if (env && *env) {
        if (!strcmp(env, "scalar")) want = MTC_ISA_SCALAR;
        else if (!strcmp(env, "avx2")) want = MTC_ISA_AVX2;
        else if (!strcmp(env, "avx512")) want = MTC_ISA_AVX512;
    }
    return want <= cpu_best ? want : cpu_best;
}

const char *mtc_isa_name(int isa)
{
    return isa == MTC_ISA_AVX512 ? "avx512-vnni" : isa == MTC_ISA_AVX2 ? "avx2" : "scalar";
}

mtc_gemm_fn mtc_gemm_get(int isa)
{
    return isa == MTC_ISA_AVX512 ? mtc_gemm_avx512 : isa == MTC_ISA_AVX2 ? mtc_gemm_avx2 : mtc_gemm_scalar;
}

mtc_qgemm_fn mtc_qgemm_get(int isa)
{
    if (!mtc_qgemm_isa_supported(isa)) isa = mtc_qgemm_isa();
    return isa == MTC_ISA_AVX512 ? mtc_qgemm_avx512 : isa == MTC_ISA_AVX2 ? mtc_qgemm_avx2
         : mtc_qgemm_scalar;
}
