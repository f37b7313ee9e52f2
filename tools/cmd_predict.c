/* cmd_predict.c — `mtc predict`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_predict(int argc, char **argv)
{
    return cmd_not_implemented("predict", argc, argv);
}
