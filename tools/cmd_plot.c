/* cmd_plot.c — `mtc plot`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_plot(int argc, char **argv)
{
    return cmd_not_implemented("plot", argc, argv);
}
