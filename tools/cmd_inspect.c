/* cmd_inspect.c — `mtc inspect`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_inspect(int argc, char **argv)
{
    return cmd_not_implemented("inspect", argc, argv);
}
