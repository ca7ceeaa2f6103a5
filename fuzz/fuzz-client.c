/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: libroute-host-client reading a hostile daemon.  Each
 * input is the byte stream a "daemon" sends on a real Unix socket to a
 * connection with three calls submitted; the connection processes it
 * (WELCOME, RESULT, STATUS_REPLY, ERROR, anything), then is freed.  Every
 * call must be answered exactly once, with a status the library defines
 * and a detail of bounded length, and nothing may leak.
 */

#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route-host.h"
#include "route-host/client.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_CALLS	3

static char		fuzz_path[108];
static int		fuzz_listen = -1;
static unsigned int	fuzz_answers[FUZZ_CALLS];

/* A result: count it against its call, and check what it says. */
static void
fuzz_done(void *cookie, const struct rhc_result *r)
{
	size_t	i = (size_t)(uintptr_t)cookie;

	assert(i < FUZZ_CALLS);
	fuzz_answers[i]++;
	assert((r->status >= RHC_OK && r->status <= RHC_CRASH_LOOP) ||
	    r->status == RHC_CONNECTION_LOST || r->status == RHC_CANCELLED);
	assert(strlen(r->detail) < 1024);
	assert(strcmp(rhc_status_name(r->status), "unknown") != 0);
}

/* Once: a listening socket the connection reaches, in a scratch dir. */
static void
fuzz_setup(void)
{
	struct sockaddr_un	sun;
	char			dir[] = "/tmp/route-host-fuzz-client-XXXXXX";

	if (mkdtemp(dir) == NULL)
		abort();
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/s", dir);
	strlcpy(fuzz_path, sun.sun_path, sizeof fuzz_path);
	if ((fuzz_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)) ==
	    -1 || bind(fuzz_listen, (struct sockaddr *)&sun, sizeof sun) == -1 ||
	    listen(fuzz_listen, 64) == -1)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rhc_options	 o;
	struct rhc_conn		*c;
	struct rhc_request	*rq;
	struct pollfd		 pfd;
	size_t			 off = 0;
	ssize_t			 n;
	int			 s;

	if (fuzz_listen == -1)
		fuzz_setup();
	memset(fuzz_answers, 0, sizeof fuzz_answers);
	rhc_options_init(&o);
	o.reconnect_min_ms = o.reconnect_max_ms = 1;
	if ((c = rhc_conn_new(fuzz_path, &o)) == NULL ||
	    (rq = rhc_request_new()) == NULL)
		abort();
	(void)rhc_request_int(rq, "n", 1);
	(void)rhc_request_consumer(rq, "a", 0, 1, 0, NULL, 0);
	for (size_t i = 0; i < FUZZ_CALLS; i++)
		if (rhc_conn_submit(c, "ch", rq, fuzz_done,
		    (void *)(uintptr_t)i) == -1)
			abort();
	rhc_request_free(rq);
	if ((s = accept(fuzz_listen, NULL, NULL)) == -1)
		abort();
	(void)fcntl(s, F_SETFL, O_NONBLOCK);
	/* The daemon's side: all of the input, then the end. */
	for (int turn = 0; turn < 64 && (off < size || turn < 4); turn++) {
		if (off < size && (n = send(s, data + off, size - off,
		    MSG_NOSIGNAL)) > 0)
			off += (size_t)n;
		pfd.fd = rhc_conn_fd(c);
		pfd.events = (short)rhc_conn_events(c);
		pfd.revents = 0;
		(void)poll(&pfd, pfd.fd != -1, 0);
		(void)rhc_conn_process(c, pfd.revents | POLLIN);
	}
	close(s);
	(void)rhc_conn_process(c, POLLIN);
	rhc_conn_free(c);
	/* Connections it made again meanwhile: let them go. */
	while ((s = accept(fuzz_listen, NULL, NULL)) != -1)
		close(s);
	for (size_t i = 0; i < FUZZ_CALLS; i++)
		assert(fuzz_answers[i] == 1);
	return 0;
}
