/*
 * cmd_inspect.c — `mtc inspect FILE [--json]`: a checkpoint's sections
 * (raw / stored bytes), tensors (dtype, shape, numel, sparsity, raw / stored
 * bytes), layers stored as bitmask + values (weights, kept, sparsity) and
 * metadata, or the same as one JSON object. Every section is read and
 * CRC-checked before anything is printed, so a bad file gives exactly one
 * line on stderr and exit 2. Soft-label files (.mtl) list their sections.
 */
#include "tools/cli.h"
#include "tools/commands.h"

int cmd_inspect(int argc, char **argv)
{
    cli_common c;
    cli_common_defaults(&c);
    const cli_opt opts[] = {CLI_COMMON(&c), CLI_END};
    const char *pos[1];
    int npos;
    int rc = cli_parse("inspect", "FILE [--json]",
                       "Print a checkpoint's sections, tensors and metadata.", opts, argc,
                       argv, pos, 1, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    if (npos != 1) {
        fprintf(stderr, "mtc inspect: expected one FILE (see mtc inspect --help)\n");
        return 2;
    }
    mtc_err e = {0};
    if (mtc_ckpt_inspect(pos[0], c.json, stdout, &e)) return cli_fail("inspect", &e);
    return 0;
}
