/* cmd_train.c — `mtc train`: not built yet; says so honestly. */
#include "tools/commands.h"

int cmd_train(int argc, char **argv)
{
    return cmd_not_implemented("train", argc, argv);
}
