/* cmd_pipeline.c — `mtc pipeline`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_pipeline(int argc, char **argv)
{
    return cmd_not_implemented("pipeline", argc, argv);
}
