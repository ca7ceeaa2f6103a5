/* SPDX-License-Identifier: ISC */
/*
 * route-host-zygote: the zygote as a program of its own (zygote.c).
 *
 * route-host forks and execs this, from the package's libexec directory,
 * with the zygote's two sockets on fds 3 and 4; it is never run by hand.
 * It links only what the zygote and a helper need (libc, libseccomp,
 * libbsd), so helpers fork from a process that maps none of the daemon's
 * other libraries and none of its memory, laid out afresh.
 */

#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine-int.h"

/*
 * Serve the host that started us, or say who should.  route-host runs it
 * as argv[0] "route-host", which titles its processes (setproctitle).
 */
int
main(int argc, char *argv[])
{
	(void)argc;
	(void)argv;
	zygote_program_main();
	fprintf(stderr, "route-host-zygote: route-host runs this program "
	    "(its sockets on descriptors 3 and 4); it is not run by hand\n");
	return 2;
}
