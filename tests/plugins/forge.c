/* SPDX-License-Identifier: ISC */
/*
 * Test plugin: tries to forge the daemon's log lines.
 *
 *	try=init	init fails with an error that holds a newline, a fake
 *			log line of the daemon's and a terminal escape
 *	try=name	init renames the plugin to a name that holds a
 *			newline and a fake log line, after the helper has
 *			checked the name and before it sends it to the host
 *	try=stderr	each call prints a line on its standard output,
 *			then writes to its standard error a line, a fake
 *			log line of the daemon's with control bytes and a
 *			terminal escape, a NUL, a line of 3000 bytes, and
 *			a last line without a newline
 *	try=flood	each call writes numbered lines to its standard
 *			error without end (until it is killed)
 *
 * Anything else: init succeeds and the plugin picks the first consumer.
 */

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <route-host/plugin.h>

#define FORGE_LINE	"route-host[1]: info: channel payments: deployed " \
			"0123456789ab (plugin \"forged\")"

static char	forge_name[64] = "forge";
static int	forge_stderr;	/* 1: try=stderr, 2: try=flood */

/* Write all of buf to standard error, or give up. */
static void
forge_write(const char *buf, size_t len)
{
	ssize_t	n;

	while (len > 0 && (n = write(STDERR_FILENO, buf, len)) > 0) {
		buf += n;
		len -= (size_t)n;
	}
}

/* What try=stderr writes: every way a line could forge another. */
static void
forge_say(void)
{
	static const char	said[] = "plain words\n" FORGE_LINE
				    "\033[31m red\001\177\n" "nul\0after\n";
	char			long_line[3001];

	printf("printed on stdout\n");
	forge_write(said, sizeof said - 1);
	memset(long_line, 'x', sizeof long_line - 1);
	long_line[sizeof long_line - 1] = '\n';
	forge_write(long_line, sizeof long_line);
	forge_write("no newline at the end", 21);
}

/* What try=flood writes: numbered lines, 4 KiB at a time, forever. */
static void
forge_flood(void)
{
	char		buf[4096];
	size_t		len;
	unsigned long	i = 0;

	for (;;) {
		len = 0;
		while (len < sizeof buf - 32)
			len += (size_t)snprintf(buf + len, sizeof buf - len,
			    "flood %lu\n", i++);
		forge_write(buf, len);
	}
}

/* Pick the first consumer, after saying what try says. */
static int
forge_route(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	(void)state; (void)msg; (void)consumers;
	if (forge_stderr == 1)
		forge_say();
	else if (forge_stderr == 2)
		forge_flood();
	return n > 0 ? 0 : ROUTE_NONE;
}

/* Misbehave as try says. */
static int
forge_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	(void)state;
	for (size_t i = 0; i < nopts; i++) {
		if (strcmp(opts[i].key, "try") != 0)
			continue;
		if (strcmp(opts[i].value, "init") == 0) {
			snprintf(err, errlen, "bad config\n" FORGE_LINE
			    "\033[31m red");
			return -1;
		}
		if (strcmp(opts[i].value, "name") == 0)
			snprintf(forge_name, sizeof forge_name, "forge\n"
			    "route-host[1]: info: fake");
		if (strcmp(opts[i].value, "stderr") == 0)
			forge_stderr = 1;
		if (strcmp(opts[i].value, "flood") == 0)
			forge_stderr = 2;
	}
	return 0;
}

ROUTE_PLUGIN_EXPORT const struct route_plugin route_plugin_descriptor = {
	ROUTE_ABI_VERSION, sizeof(struct route_plugin), forge_name,
	forge_route, forge_init, NULL
};
