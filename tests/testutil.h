/* SPDX-License-Identifier: ISC */
/*
 * Shared by the cmocka suites: building call bodies, finding the test
 * plugins, and the after-each-test checks (no zombie, no leaked fd).
 */

#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "route-host.h"

/* The number of open fds in this process. */
static inline int
testutil_fds(void)
{
	DIR		*d = opendir("/proc/self/fd");
	struct dirent	*de;
	int		 n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the DIR's own fd */
}

/* True when this process has no child at all, zombie or running. */
static inline bool
testutil_no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* Path of a test plugin (tests/plugins) or, with shipped, plugins/. */
static inline const char *
testutil_plugin(const char *name, bool shipped)
{
	static char	buf[8][PATH_MAX];
	static int	next;
	const char	*dir = getenv(shipped ? "SHIPPED_PLUGINS" :
			    "TEST_PLUGINS");
	char		*p = buf[next++ % 8];

	if (dir == NULL)
		dir = shipped ? "plugins/.libs" : "tests/plugins/.libs";
	snprintf(p, PATH_MAX, "%s/%s.so", dir, name);
	return p;
}

/* A consumer for a body: id, in flight, max, tags (NULL-terminated). */
struct testutil_consumer {
	const char	*id;
	uint32_t	 in_flight, max_in_flight, buffer_depth;
	const char	*tags[4];
};

/* A field for a body; fields must be given sorted by name. */
struct testutil_field {
	const char		*name;
	struct route_value	 value;
};

/* Encode a body from fields and consumers. */
static inline void
testutil_body(struct wire_buf *b, const struct testutil_field *f, size_t nf,
    const struct testutil_consumer *c, size_t nc)
{
	wire_init(b);
	wire_body_begin(b, (uint32_t)nf, (uint32_t)nc);
	for (size_t i = 0; i < nf; i++)
		assert_int_equal(wire_body_field(b, f[i].name, &f[i].value), 0);
	for (size_t i = 0; i < nc; i++) {
		struct route_consumer	rc = {
			.id = c[i].id,
			.in_flight = c[i].in_flight,
			.max_in_flight = c[i].max_in_flight,
			.buffer_depth = c[i].buffer_depth,
			.tags = c[i].tags,
		};

		while (rc.ntags < 4 && c[i].tags[rc.ntags] != NULL)
			rc.ntags++;
		assert_int_equal(wire_body_consumer(b, &rc), 0);
	}
	assert_false(b->failed);
}

#endif
