/* placeholder replaced below */
#include "config.h"
#include "route-host.h"
int
cmd_demo(int argc, char **argv)
{
	(void)argc; (void)argv;
	return 1;
}
