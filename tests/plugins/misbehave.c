/* SPDX-License-Identifier: ISC */
/*
 * Test plugin: misbehaves as its options say.
 *
 *	mode=segv|strlen|abort|exit|loop|sleep|closefds|garbage|oversize|
 *	     decision|fail|flood|deaf|ok
 *	at=call|init	where to misbehave (default call)
 *	ms=N		how long sleep sleeps (default 200)
 *	value=N		what decision returns (default 99)
 *	fail_if=PATH	init fails while PATH exists
 *
 * mode=ok picks the first consumer, like a healthy plugin.  mode=segv
 * faults in the plugin's own code, mode=strlen in libc's, called with
 * NULL.
 *
 * mode=flood starts a thread and only makes sense with at=init:
 *
 * mode=flood: the thread waits for the first call, then writes a RESULT
 * frame for seq 0 (05 00 00 00 03 00 00 00 00: a result that announces
 * nothing) to fd 3, the helper's socket, in a tight loop for ever.  Each
 * call sleeps ms first, so it is still running when the flood starts.
 * (Waiting for a call keeps the flood behind the handshake.)
 *
 * mode=deaf: a call whose message has a field "deaf" moves the socket to
 * fd 5 and puts one end of a fresh socketpair, whose other end nobody
 * writes, on fd 3.  The helper announces that call's result into the void
 * and then reads the socketpair for ever: the host's socket stays open and
 * is never read again.  Other calls answer like mode=ok.
 */

#include <sys/socket.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <route-host/plugin.h>

struct misbehave {
	char	mode[16];
	bool	at_init;
	long	ms;
	int	value;
};

static struct misbehave	conf = { "ok", false, 200, 99 };
static const char	*nothing;	/* mode=strlen's string */
static atomic_bool	called;		/* a call has started (flood) */

/* Sleep ms milliseconds, whatever interrupts. */
static void
misbehave_sleep(long ms)
{
	struct timespec	ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1)
		;
}

/* mode=flood's thread: once a call runs, empty RESULT frames for ever. */
static void *
misbehave_flood(void *arg)
{
	static const char	frame[] = "\x05\x00\x00\x00\x03\x00\x00\x00\x00";

	(void)arg;
	while (!atomic_load(&called))
		misbehave_sleep(1);
	for (;;)
		(void)!write(3, frame, sizeof frame - 1);
	return NULL;
}

/* mode=deaf: put a silent socket where the host's socket was. */
static void
misbehave_deaf(void)
{
	int	sv[2];

	if (fcntl(3, F_DUPFD, 5) == -1 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 ||
	    dup2(sv[0], 3) == -1)
		abort();
	/* sv[1] stays open: fd 3 never reaches EOF. */
}

/* Start fn in a detached thread, or die trying. */
static void
misbehave_thread(void *(*fn)(void *))
{
	pthread_t	t;

	if (pthread_create(&t, NULL, fn, NULL) != 0)
		abort();
	(void)pthread_detach(t);
}

/* Do the configured harm; returns only for the modes that return. */
static int
misbehave_act(size_t n)
{
	static const char	garbage[] = "\x07\x00\x00\x00\x09garbage!";
	unsigned char		huge[5] = { 0xff, 0xff, 0xff, 0x7f, 3 };

	if (strcmp(conf.mode, "segv") == 0)
		return *(volatile int *)0;
	if (strcmp(conf.mode, "strlen") == 0)
		return (int)strlen(*(const char *volatile *)&nothing);
	if (strcmp(conf.mode, "abort") == 0)
		abort();
	if (strcmp(conf.mode, "exit") == 0)
		exit(3);
	if (strcmp(conf.mode, "loop") == 0)
		for (;;)
			;
	if (strcmp(conf.mode, "sleep") == 0)
		misbehave_sleep(conf.ms);
	if (strcmp(conf.mode, "flood") == 0 && conf.at_init)
		misbehave_thread(misbehave_flood);
	if (strcmp(conf.mode, "closefds") == 0)
		for (int fd = 0; fd < 1024; fd++)
			close(fd);
	if (strcmp(conf.mode, "garbage") == 0)
		(void)!write(3, garbage, sizeof garbage - 1);
	if (strcmp(conf.mode, "oversize") == 0)
		(void)!write(3, huge, sizeof huge);
	if (strcmp(conf.mode, "decision") == 0)
		return conf.value;
	return n > 0 ? 0 : ROUTE_NONE;
}

/* Read the options; misbehave here if told to. */
static int
misbehave_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	const char	*v;

	(void)state;
	if ((v = route_option_get(opts, nopts, "mode")) != NULL)
		strncpy(conf.mode, v, sizeof conf.mode - 1);
	if ((v = route_option_get(opts, nopts, "at")) != NULL)
		conf.at_init = strcmp(v, "init") == 0;
	if ((v = route_option_get(opts, nopts, "ms")) != NULL)
		conf.ms = atol(v);
	if ((v = route_option_get(opts, nopts, "value")) != NULL)
		conf.value = atoi(v);
	if (strcmp(conf.mode, "fail") == 0) {
		strncpy(err, "refusing to start: mode=fail", errlen - 1);
		return -1;
	}
	if ((v = route_option_get(opts, nopts, "fail_if")) != NULL &&
	    access(v, F_OK) == 0) {
		strncpy(err, "refusing to start: fail_if file exists",
		    errlen - 1);
		return -1;
	}
	if (conf.at_init)
		misbehave_act(0);
	return 0;
}

/* Route, misbehaving unless the harm happened in init. */
static int
misbehave_route(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	(void)state;
	(void)consumers;
	if (strcmp(conf.mode, "deaf") == 0) {
		if (route_message_get(msg, "deaf") != NULL)
			misbehave_deaf();
		return n > 0 ? 0 : ROUTE_NONE;
	}
	if (strcmp(conf.mode, "flood") == 0 && conf.at_init) {
		atomic_store(&called, true);
		misbehave_sleep(conf.ms);
	}
	if (conf.at_init)
		return n > 0 ? 0 : ROUTE_NONE;
	return misbehave_act(n);
}

ROUTE_PLUGIN_STATEFUL("misbehave", misbehave_route, misbehave_init, NULL);
