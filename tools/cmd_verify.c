/* cmd_verify.c — `mtc verify`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_verify(int argc, char **argv)
{
    return cmd_not_implemented("verify", argc, argv);
}
