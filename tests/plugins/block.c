/*
 * Test plugin for hot deploy, built twice: block-v1.so (BLOCK_VERSION 1)
 * picks consumer 0, block-v2.so picks consumer 1.  When the message has a
 * text field "dir", the call first says it entered, then waits until
 * DIR/release exists: the test holds a call inside the old version while
 * it deploys the new one.
 *
 * A sandboxed helper may not create files once its plugin is loaded, so
 * "entered" is one byte written to the FIFO named by the environment
 * variable BLOCK_SIGNAL, opened when the plugin loads; without it, the
 * call creates DIR/entered.
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

static int	signal_fd = -1;

/* At load, before the sandbox locks: open the FIFO to signal through. */
static void __attribute__((constructor))
block_open_signal(void)
{
	const char	*path = getenv("BLOCK_SIGNAL");

	if (path != NULL)
		signal_fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
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
		if (signal_fd != -1)
			(void)!write(signal_fd, "e", 1);
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
