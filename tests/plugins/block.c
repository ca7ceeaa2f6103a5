/* SPDX-License-Identifier: ISC */
/*
 * Test plugin for hot deploy, built twice: block-v1.so (BLOCK_VERSION 1)
 * picks consumer 0, block-v2.so picks consumer 1.  When the message has a
 * text field "dir", the call first says it entered, then waits until
 * DIR/release exists: the test holds a call inside the old version while
 * it deploys the new one.
 *
 * A sandboxed helper may neither create nor open files for writing, so
 * when the environment variable BLOCK_SIGNAL is set, "entered" is the line
 * BLOCK_ENTERED written to standard error, which the engine logs and the
 * test finds in its log; without it, the call creates DIR/entered.
 */

#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <route-host/plugin.h>

#ifndef BLOCK_VERSION
#define BLOCK_VERSION	1
#endif

#define BLOCK_ENTERED	"block: entered\n"	/* per call, on stderr */

static int	signal_stderr;

/* At load: how to say a call entered. */
static void __attribute__((constructor))
block_open_signal(void)
{
	signal_stderr = getenv("BLOCK_SIGNAL") != NULL;
}

/* Signal entry, wait for release, then answer this version's index. */
static int
block(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const struct route_value	*dir = route_message_get(msg, "dir");
	struct timespec			 ms = { 0, 1000000 };
	struct stat			 st;
	char				 path[4096];
	int				 fd;

	(void)state;
	(void)consumers;
	if (dir != NULL && dir->type == ROUTE_TEXT) {
		snprintf(path, sizeof path, "%s/entered", dir->text);
		if (signal_stderr)
			(void)!write(STDERR_FILENO, BLOCK_ENTERED,
			    sizeof BLOCK_ENTERED - 1);
		else if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC,
		    0644)) >= 0)
			close(fd);
		snprintf(path, sizeof path, "%s/release", dir->text);
		while (stat(path, &st) == -1)
			nanosleep(&ms, NULL);
	}
	return (size_t)(BLOCK_VERSION - 1) < n ? BLOCK_VERSION - 1 : ROUTE_NONE;
}

ROUTE_PLUGIN("block", block);
