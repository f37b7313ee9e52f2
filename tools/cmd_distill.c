/* cmd_distill.c — `mtc distill`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_distill(int argc, char **argv)
{
    return cmd_not_implemented("distill", argc, argv);
}
