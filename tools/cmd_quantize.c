/* cmd_quantize.c — `mtc quantize`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_quantize(int argc, char **argv)
{
    return cmd_not_implemented("quantize", argc, argv);
}
