/* SPDX-License-Identifier: ISC */
/*
 * route-host: run message-routing plugins safely.
 *
 * main picks the command; each lives in its own cmd-*.c.  Only commands
 * print and exit; the engine underneath returns errors to them.
 */

#include "config.h"

#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route-host.h"

static const struct {
	const char	*name;
	int		(*fn)(int, char **);
	const char	*usage;
} route_host_cmds[] = {
	{ "hash", cmd_hash, "hash [FILE...]" },
	{ "check", cmd_check, "check [--option KEY=VALUE]... [--message JSON] "
	    "[--consumers JSON] FILE..." },
	{ "route", cmd_route, "route --plugin FILE [--timeout MS] "
	    "[--option KEY=VALUE]..." },
	{ "route", cmd_route, "route -s SOCKET -c CHANNEL [--timeout MS]" },
	{ "demo", cmd_demo, "demo [-d PLUGIN_LIBDIR]" },
	{ "serve", cmd_serve, "serve [-fnv] [-c CONFIG] [-d PLUGIN_DIR] "
	    "[-s SOCKET] [-t DEFAULT_TIMEOUT_MS]" },
	{ "status", cmd_status, "status [-c CONFIG | -s SOCKET] [--json | --openmetrics]" },
};

/* Print the usage summary. */
static void
route_host_usage(FILE *f)
{
	fprintf(f, "usage: route-host command [arguments]\n");
	for (size_t i = 0; i < sizeof route_host_cmds /
	    sizeof route_host_cmds[0]; i++)
		fprintf(f, "       route-host %s\n", route_host_cmds[i].usage);
}

/* Dispatch to the command named by argv[1]. */
int
main(int argc, char **argv)
{
	/* libbsd-ctor has already run setproctitle_init for the helpers. */
	if (argc < 2) {
		route_host_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		route_host_usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("route-host %s (plugin ABI %d)\n", PACKAGE_VERSION,
		    ROUTE_ABI_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof route_host_cmds /
	    sizeof route_host_cmds[0]; i++)
		if (strcmp(argv[1], route_host_cmds[i].name) == 0)
			return route_host_cmds[i].fn(argc - 1, argv + 1);
	warnx("unknown command '%s'", argv[1]);
	route_host_usage(stderr);
	return 2;
}
