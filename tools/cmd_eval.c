/* cmd_eval.c — `mtc eval`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_eval(int argc, char **argv)
{
    return cmd_not_implemented("eval", argc, argv);
}
