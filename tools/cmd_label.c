/* cmd_label.c — `mtc label`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_label(int argc, char **argv)
{
    return cmd_not_implemented("label", argc, argv);
}
