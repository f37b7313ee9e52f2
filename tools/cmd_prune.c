/* cmd_prune.c — `mtc prune`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_prune(int argc, char **argv)
{
    return cmd_not_implemented("prune", argc, argv);
}
