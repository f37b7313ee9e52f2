/*
 * mtc.c — the `mtc` command line: dispatch to tools/cmd_<name>.c.
 *
 * Before anything touches OpenBLAS, main() picks its kernel family: Debian's
 * OpenBLAS 0.3.21 runs Haswell (AVX2) kernels on AVX-512 CPUs unless
 * OPENBLAS_CORETYPE says otherwise, and it reads the variable only when the
 * library loads. So when the CPU has AVX-512 and the user set nothing, we set
 * OPENBLAS_CORETYPE=SkylakeX and re-exec ourselves once.
 */
#include "mtc.h"
#include "tools/cli.h"
#include "tools/commands.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"train", cmd_train, "train a multi-task model (teacher or scratch student)"},
    {"eval", cmd_eval, "per-task metrics of a checkpoint on a data split"},
    {"predict", cmd_predict, "per-task outputs for single inputs (PNG or CSV)"},
    {"label", cmd_label, "write a teacher's soft labels (.mtl)"},
    {"distill", cmd_distill, "train a student from soft labels (knowledge distillation)"},
    {"prune", cmd_prune, "magnitude / AGP / structured pruning, per-task sensitivity"},
    {"quantize", cmd_quantize, "int8 post-training quantization with calibration"},
    {"verify", cmd_verify, "check per-task accuracy retention; exit 1 on failure"},
    {"explain", cmd_explain, "per-task calibration (ECE, reliability) and MMoE gate usage, as PNGs + JSON"},
    {"report", cmd_report, "one self-contained HTML page of a pipeline folder (tables, gate, PNGs)"},
    {"inspect", cmd_inspect, "print a checkpoint's sections, tensors and metadata"},
    {"plot", cmd_plot, "draw PNG charts (curves, size-accuracy, sensitivity, confusion)"},
    {"data", cmd_data, "build or export datasets (multifashion)"},
    {"import", cmd_import, "turn an ONNX model (a PyTorch teacher) into a checkpoint"},
    {"export", cmd_export, "write an fp32 checkpoint as ONNX (for ONNX Runtime)"},
    {"pipeline", cmd_pipeline, "run teacher -> label -> distill -> prune -> quantize -> verify"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

const char *mtc_blas_choice = "default";

static void usage(FILE *f)
{
    fprintf(f, "usage: mtc <command> [options]   (mtc <command> --help for details)\n\n"
               "commands:\n");
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\ncommon options: --seed N --threads N --json --quiet --help\n"
               "exit codes: 0 ok, 1 a check failed, 2 bad input or usage\n");
}

static void choose_blas_core(char **argv)
{
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user) {
        mtc_blas_choice = getenv("MTC_BLAS_AUTO") ? "SkylakeX (auto: AVX-512 present)"
                                                    : "user setting";
        return;
    }
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        setenv("MTC_BLAS_AUTO", "1", 1);
        execv("/proc/self/exe", argv);
        /* exec failed: carry on with OpenBLAS's own choice */
        unsetenv("OPENBLAS_CORETYPE");
        mtc_blas_choice = "default (re-exec failed)";
        return;
    }
    mtc_blas_choice = "default (no AVX-512)";
}

int main(int argc, char **argv)
{
    choose_blas_core(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        const char *ct = getenv("OPENBLAS_CORETYPE");
        int isa = mtc_qgemm_isa();
        printf("mtc %s\nopenblas coretype: %s (%s)\n", MTC_VERSION, ct ? ct : "auto",
               mtc_blas_choice);
        printf("runtime kernels: int8 %s; fp32 %s (MTC_ISA overrides)\n", mtc_isa_name(isa),
               isa == MTC_ISA_AVX512 ? "avx512" : isa == MTC_ISA_AVX2 ? "avx2" : "scalar");
        return 0;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(cmd, commands[i].name)) {
            /* under mpirun: one rank of the job (include/mtc/comm.h) */
            mtc_err e = {0};
            if (mtc_comm_init(&argc, &argv, &e)) {
                fprintf(stderr, "mtc %s: %s\n", cmd, e.msg);
                return 2;
            }
            /* ranks > 0 print nothing but errors: rank 0 reports for the job */
            if (mtc_comm_rank() > 0 && !freopen("/dev/null", "w", stdout)) {
                fprintf(stderr, "mtc %s: rank %d: cannot silence stdout\n", cmd, mtc_comm_rank());
                mtc_comm_end(2);
                return 2;
            }
            int rc = commands[i].fn(argc - 1, argv + 1);
            mtc_comm_end(rc);
            return rc;
        }
    fprintf(stderr, "mtc: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
