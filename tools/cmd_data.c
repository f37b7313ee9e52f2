/* cmd_data.c — `mtc data`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_data(int argc, char **argv)
{
    return cmd_not_implemented("data", argc, argv);
}
