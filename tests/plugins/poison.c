/* SPDX-License-Identifier: ISC */
/*
 * Test plugin for poison messages and crash loops: crashes (SIGSEGV) as
 * its options say, and otherwise picks consumer 0.
 *
 *	mode=flag	crash on a message whose field "crash" is true (the
 *			default)
 *	mode=all	crash on every call
 *	mode=first	crash on the first "crashes" calls of the version,
 *			counted across its helpers in the file "state"
 *			(which needs the channel's "sandbox no": a
 *			sandboxed helper cannot write a file)
 *
 * Built twice, as poison.so and poison-v2.so (POISON_VERSION 2): the same
 * behaviour, different bytes, so a test can hot-deploy a new version.
 * Built a third time as poison-nondet.so (POISON_NONDET), which declares
 * itself non-deterministic (ROUTE_PLUGIN_NONDETERMINISTIC): the host then
 * keeps no poison memo for it.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <route-host/plugin.h>

#ifndef POISON_VERSION
#define POISON_VERSION	1
#endif

enum poison_mode { POISON_FLAG, POISON_ALL, POISON_FIRST };

static enum poison_mode	 mode;
static const char	*state_path;
static long		 crashes;
static const int	 poison_version = POISON_VERSION;

/* Read the options. */
static int
poison_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	const char	*v;

	(void)state;
	if ((v = route_option_get(opts, nopts, "mode")) != NULL) {
		if (strcmp(v, "all") == 0)
			mode = POISON_ALL;
		else if (strcmp(v, "first") == 0)
			mode = POISON_FIRST;
		else if (strcmp(v, "flag") != 0) {
			snprintf(err, errlen, "mode=%s: flag, all or first", v);
			return -1;
		}
	}
	state_path = route_option_get(opts, nopts, "state");
	if ((v = route_option_get(opts, nopts, "crashes")) != NULL)
		crashes = strtol(v, NULL, 10);
	if (mode == POISON_FIRST && state_path == NULL) {
		snprintf(err, errlen, "mode=first needs state=PATH");
		return -1;
	}
	return 0;
}

/*
 * Count this call in the state file, one byte appended per call (so two
 * helpers counting at once each get a place of their own); true while
 * within the first N.
 */
static bool
poison_first(void)
{
	off_t	place;
	int	fd;

	if ((fd = open(state_path, O_WRONLY | O_APPEND | O_CREAT, 0600)) == -1)
		return true;
	if (write(fd, "x", 1) != 1)
		place = 0;
	else
		place = lseek(fd, 0, SEEK_CUR);
	close(fd);
	return place <= crashes;
}

/* Crash as told, or pick consumer 0. */
static int
poison(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const struct route_value	*v = route_message_get(msg, "crash");
	bool				 crash;

	(void)state;
	(void)consumers;
	switch (mode) {
	case POISON_ALL:
		crash = true;
		break;
	case POISON_FIRST:
		crash = poison_first();
		break;
	default:
		crash = v != NULL && v->type == ROUTE_BOOLEAN && v->boolean;
		break;
	}
	if (crash)
		return *(volatile int *)0;
	return n > 0 ? poison_version - POISON_VERSION : ROUTE_NONE;
}

#ifdef POISON_NONDET
ROUTE_PLUGIN_FLAGS("poison", poison, poison_init, NULL,
    ROUTE_PLUGIN_NONDETERMINISTIC);
#else
ROUTE_PLUGIN_STATEFUL("poison", poison, poison_init, NULL);
#endif
