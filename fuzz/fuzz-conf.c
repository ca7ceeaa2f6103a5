/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: route-host.conf(5) (conf.c), read through conf_load
 * from a memfd by its /proc/self/fd path, as the daemon reads its file.
 *
 * A file that is refused leaves the settings exactly as they were and
 * says "path:line: why"; one that loads gives channels with valid,
 * distinct names, options with a key, and settings in their ranges.
 * conf_check (serve -n) reads on past each error: it finds an error
 * exactly when conf_load does, the first one the same, and each says
 * "path:line: why".
 */

#include "config.h"

#include <sys/mman.h>

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route-host.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Check what a file that loaded says. */
static void
fuzz_check(const struct conf *c)
{
	const struct conf_channel	*ch;

	assert(c->timeout_ms >= 1 && c->timeout_ms <= 3600000);
	assert(c->helpers >= 1 && c->helpers <= 256);
	assert(c->window >= 1 && c->window <= 65536);
	assert(c->max_connections >= 1);
	assert(c->window_bytes >= PROTO_FRAME_MAX &&
	    c->max_in_flight_bytes >= PROTO_FRAME_MAX);
	assert(c->socket_mode <= 0777);
	assert(c->allow.nuid <= SERVER_ALLOW_MAX);
	assert(c->allow.ngid <= SERVER_ALLOW_MAX);
	assert(strlen(c->socket) < sizeof c->socket);
	for (size_t i = 0; i < c->nchannels; i++) {
		ch = &c->channels[i];
		assert(plugdir_channel_name_ok(ch->name));
		assert(conf_channel(c, ch->name) == ch);
		for (size_t k = 0; k < ch->nopts; k++)
			assert(ch->opts[k].key[0] != '\0' &&
			    strchr(ch->opts[k].key, '=') == NULL);
	}
}

/* What conf_check reported, for the input being run. */
static u_int		 fuzz_nerrors;
static const char	*fuzz_path;
static char		 fuzz_first[512];

/* conf_check's report: each error names the file and a line. */
static void
fuzz_report(void *arg, const char *msg)
{
	size_t	len = strlen(fuzz_path);

	(void)arg;
	assert(strncmp(msg, fuzz_path, len) == 0 && msg[len] == ':');
	if (fuzz_nerrors++ == 0)
		strlcpy(fuzz_first, msg, sizeof fuzz_first);
}

/* Load the input as a configuration file. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct conf	 defaults;
	struct conf		 c;
	char			 path[64], err[512];
	size_t			 off = 0;
	ssize_t			 n;
	u_int			 nerr;
	int			 fd;

	if (defaults.helpers == 0)
		conf_defaults(&defaults);
	if ((fd = memfd_create("route-host.conf", MFD_CLOEXEC)) == -1)
		abort();
	while (off < size) {
		if ((n = write(fd, data + off, size - off)) <= 0)
			abort();
		off += (size_t)n;
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	fuzz_nerrors = 0;
	fuzz_path = path;
	fuzz_first[0] = '\0';
	nerr = conf_check(path, fuzz_report, NULL);
	assert(nerr == fuzz_nerrors);
	c = defaults;
	if (conf_load(&c, path, err, sizeof err) == -1) {
		assert(nerr > 0 && strcmp(err, fuzz_first) == 0);
		assert(strncmp(err, path, strlen(path)) == 0 &&
		    err[strlen(path)] == ':');
		assert(memcmp(&c, &defaults, sizeof c) == 0);
	} else {
		assert(nerr == 0);
		fuzz_check(&c);
		/* Loading again over a loaded file frees the first. */
		assert(conf_load(&c, path, err, sizeof err) == 0);
		fuzz_check(&c);
		conf_free(&c);
	}
	close(fd);
	return 0;
}
