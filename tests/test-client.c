/* SPDX-License-Identifier: ISC */
/*
 * libroute-host-client against real daemons (and one fake): every field
 * type and status (overloaded past the daemon's limits), answers out of
 * order, the daemon's window, a daemon
 * that is not there at first, one killed and restarted under load (every
 * call answered once, none failed), the same with the listening socket
 * held for it as a service manager holds it (socket activation: the
 * restart is not even seen), one executing itself again (SIGUSR2),
 * at-most-once, a fake daemon that
 * sends a bad frame, and the request builder's errors.  Daemons run from
 * $ROUTE_HOST with plugins from $TEST_PLUGINS and $SHIPPED_PLUGINS.
 */

#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "route-host/client.h"

#ifndef nitems
#define nitems(a)	(sizeof (a) / sizeof (a)[0])
#endif

/* A daemon run for a test. */
struct daemon {
	char	dir[64];
	char	sock[128];
	char	plugins[128];
	char	conf[128];
	pid_t	pid;
	int	listen_fd;	/* held for it (socket activation), or -1 */
};

/* The daemons started, so that a failed test leaves none behind. */
static pid_t	started[64];
static size_t	nstarted;

/* At exit: stop every daemon a failing test left running. */
static void
daemon_reap_all(void)
{
	for (size_t i = 0; i < nstarted; i++)
		if (started[i] > 0 && kill(started[i], SIGKILL) == 0)
			waitpid(started[i], NULL, 0);
}

/* Copy plugin file name from $var's directory as channel ch of d. */
static void
daemon_plugin(struct daemon *d, const char *var, const char *name,
    const char *ch)
{
	char	cmd[1024];

	snprintf(cmd, sizeof cmd, "cp '%s/%s' '%s/%s.so'", getenv(var), name,
	    d->plugins, ch);
	assert_int_equal(system(cmd), 0);
}

/* Start d's daemon and wait until it answers a status. */
static void
daemon_start(struct daemon *d)
{
	struct rhc_options	 o;
	struct rhc_conn		*c;
	char			*json;
	int			 fd;

	if ((d->pid = fork()) == 0) {
		if ((fd = open("/dev/null", O_WRONLY)) != -1)
			dup2(fd, STDERR_FILENO);
		if (d->listen_fd != -1) {
			/* As systemd hands a socket over: sd_listen_fds(3). */
			char	pid[32];

			snprintf(pid, sizeof pid, "%ld", (long)getpid());
			if (dup2(d->listen_fd, 3) == -1 ||
			    fcntl(3, F_SETFD, 0) == -1 ||
			    setenv("LISTEN_FDS", "1", 1) == -1 ||
			    setenv("LISTEN_PID", pid, 1) == -1)
				_exit(127);
		}
		execl(getenv("ROUTE_HOST"), "route-host", "serve", "-f", "-c",
		    d->conf, "-d", d->plugins, "-s", d->sock, (char *)NULL);
		_exit(127);
	}
	assert_true(d->pid > 0);
	if (nstarted < nitems(started))
		started[nstarted++] = d->pid;
	rhc_options_init(&o);
	/* A status fails at once while nothing listens: ask again. */
	for (int i = 0;; i++) {
		assert_non_null(c = rhc_conn_new(d->sock, &o));
		if (rhc_conn_status(c, &json, 10000) == 0)
			break;
		assert_true(errno == ECONNREFUSED || errno == ECONNRESET);
		rhc_conn_free(c);
		assert_true(i < 500);
		usleep(20000);
	}
	free(json);
	rhc_conn_free(c);
}

/* A daemon with conf (text of route-host.conf), not started. */
static void
daemon_init(struct daemon *d, const char *conf)
{
	FILE	*f;

	strlcpy(d->dir, "/tmp/route-host-client-XXXXXX", sizeof d->dir);
	assert_non_null(mkdtemp(d->dir));
	assert_int_equal(chmod(d->dir, 0755), 0);
	snprintf(d->sock, sizeof d->sock, "%s/rh.sock", d->dir);
	snprintf(d->plugins, sizeof d->plugins, "%s/plugins", d->dir);
	snprintf(d->conf, sizeof d->conf, "%s/route-host.conf", d->dir);
	assert_int_equal(mkdir(d->plugins, 0755), 0);
	assert_non_null(f = fopen(d->conf, "w"));
	fputs(conf, f);
	fclose(f);
	d->pid = -1;
	d->listen_fd = -1;
}

/*
 * Make d's listening socket here and hold it, as a service manager does
 * for socket activation: each daemon started is handed it, and what
 * connects while none runs waits in its queue.
 */
static void
daemon_hold_socket(struct daemon *d)
{
	struct sockaddr_un	sun;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, d->sock, sizeof sun.sun_path);
	assert_true((d->listen_fd = socket(AF_UNIX, SOCK_STREAM |
	    SOCK_CLOEXEC, 0)) != -1);
	assert_int_equal(bind(d->listen_fd, (struct sockaddr *)&sun,
	    sizeof sun), 0);
	assert_int_equal(listen(d->listen_fd, 512), 0);
}

/* Stop d's daemon with sig and reap it. */
static void
daemon_stop(struct daemon *d, int sig)
{
	if (d->pid > 0) {
		kill(d->pid, sig);
		waitpid(d->pid, NULL, 0);
		for (size_t i = 0; i < nstarted; i++)
			if (started[i] == d->pid)
				started[i] = 0;
	}
	d->pid = -1;
}

/* Stop d and remove its directory. */
static void
daemon_free(struct daemon *d)
{
	char	cmd[256];

	daemon_stop(d, SIGTERM);
	if (d->listen_fd != -1)
		close(d->listen_fd);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
	(void)system(cmd);
}

/* What callbacks saw, by cookie. */
struct seen {
	size_t		 n;
	unsigned int	*count;		/* answers per cookie */
	size_t		 by_status[128];
	size_t		 retried;	/* answered after more than one try */
	size_t		 order[8];	/* cookies in the order answered */
	size_t		 norder;
};

/* A cookie: the tally and the call's number. */
struct cookie {
	struct seen	*seen;
	size_t		 i;
};

/* Count one answer against its cookie. */
static void
tally(void *arg, const struct rhc_result *r)
{
	struct cookie	*k = arg;
	struct seen	*s = k->seen;

	s->count[k->i]++;
	if ((unsigned int)r->status < nitems(s->by_status))
		s->by_status[r->status]++;
	if (r->tries > 1)
		s->retried++;
	if (s->norder < nitems(s->order))
		s->order[s->norder++] = k->i;
}

/* A request: every field type the fields plugin checks, two consumers. */
static struct rhc_request *
fields_request(const char *target)
{
	static const char *const tags[] = { "fast", "eu" };
	struct rhc_request	*rq;

	assert_non_null(rq = rhc_request_new());
	assert_int_equal(rhc_request_text(rq, "target", target,
	    strlen(target)), 0);
	assert_int_equal(rhc_request_bool(rq, "b", 1), 0);
	assert_int_equal(rhc_request_float(rq, "f", 2.5), 0);
	assert_int_equal(rhc_request_int(rq, "i", -7), 0);
	assert_int_equal(rhc_request_null(rq, "n"), 0);
	assert_int_equal(rhc_request_text(rq, "tag", "eu", 2), 0);
	assert_int_equal(rhc_request_consumer(rq, "a", 0, 4, 0, NULL, 0), 0);
	assert_int_equal(rhc_request_consumer(rq, "b", 1, 4, 2, tags, 2), 0);
	assert_null(rhc_request_error(rq));
	return rq;
}

/* A request with one consumer and one boolean field "crash". */
static struct rhc_request *
simple_request(int crash)
{
	struct rhc_request	*rq;

	assert_non_null(rq = rhc_request_new());
	assert_int_equal(rhc_request_bool(rq, "crash", crash), 0);
	assert_int_equal(rhc_request_consumer(rq, "a", 0, 4, 0, NULL, 0), 0);
	return rq;
}

/* Every field type arrives, by the builder and by JSON; a blocking call. */
static void
test_fields(void **state)
{
	struct daemon		 d;
	struct rhc_conn		*c;
	struct rhc_request	*rq;
	struct rhc_result	 r;
	char			 hex[2 * RHC_VERSION_LEN + 1];

	(void)state;
	daemon_init(&d, "");
	daemon_plugin(&d, "TEST_PLUGINS", "fields.so", "fields");
	daemon_start(&d);
	assert_non_null(c = rhc_conn_new(d.sock, NULL));
	rq = fields_request("b");
	assert_int_equal(rhc_conn_call(c, "fields", rq, &r), 0);
	assert_int_equal(r.status, RHC_OK);
	assert_int_equal(r.decision, 1);
	assert_int_equal(r.tries, 1);
	rhc_version_hex(r.version, hex);
	assert_int_equal(strlen(hex), 64);
	assert_string_not_equal(hex, "0000000000000000000000000000000000000"
	    "000000000000000000000000000");
	rhc_request_free(rq);
	/* The same request as JSON. */
	assert_non_null(rq = rhc_request_new());
	assert_int_equal(rhc_request_json(rq, "{\"message\": {\"target\": "
	    "\"b\", \"b\": true, \"f\": 2.5, \"i\": -7, \"n\": null, "
	    "\"tag\": \"eu\"}, \"consumers\": [{\"id\": \"a\", "
	    "\"max_in_flight\": 4}, {\"id\": \"b\", \"in_flight\": 1, "
	    "\"max_in_flight\": 4, \"buffer_depth\": 2, \"tags\": [\"fast\", "
	    "\"eu\"]}], \"timeout_ms\": 2000}"), 0);
	assert_int_equal(rhc_conn_call(c, "fields", rq, &r), 0);
	assert_int_equal(r.status, RHC_OK);
	assert_int_equal(r.decision, 1);
	rhc_request_free(rq);
	/* One field changed: the plugin sees it and picks none. */
	rq = fields_request("b");
	rhc_request_clear(rq);
	assert_int_equal(rhc_request_consumer(rq, "a", 0, 4, 0, NULL, 0), 0);
	assert_int_equal(rhc_conn_call(c, "fields", rq, &r), 0);
	assert_int_equal(r.status, RHC_OK);
	assert_int_equal(r.decision, RHC_DECISION_NONE);
	rhc_request_free(rq);
	rhc_conn_free(c);
	daemon_free(&d);
}

/* Route rq on channel with a fresh connection; its result's status. */
static enum rhc_status
status_of(struct rhc_conn *c, const char *channel, struct rhc_request *rq,
    char *detail, size_t len)
{
	struct rhc_result	r;

	assert_int_equal(rhc_conn_call(c, channel, rq, &r), 0);
	if (detail != NULL)
		strlcpy(detail, r.detail, len);
	return r.status;
}

/* Every status the daemon gives, and the library's own. */
static void
test_statuses(void **state)
{
	struct daemon		 d;
	struct rhc_conn		*c;
	struct rhc_request	*ok, *poison, *slow;
	char			 detail[512], conf[1024], path[256];
	FILE			*f;
	int			 i;

	(void)state;
	snprintf(conf, sizeof conf, "channel bad {\n\toption mode=decision\n"
	    "}\nchannel slow {\n\toption mode=sleep\n\toption ms=3000\n}\n"
	    "channel seg {\n\toption mode=segv\n\tcrash-budget 2\n"
	    "\tpoison-memo off\n}\nchannel sf {\n\toption mode=exit\n"
	    "\toption fail_if=%s/fail\n\tpoison-memo off\n}\n", "@DIR@");
	daemon_init(&d, "");
	/* The directory is known now: the conf names a file in it. */
	{
		char	*at = strstr(conf, "@DIR@"), rest[1024];

		strlcpy(rest, at + 5, sizeof rest);
		snprintf(at, sizeof conf - (size_t)(at - conf), "%s%s", d.dir,
		    rest);
		assert_non_null(f = fopen(d.conf, "w"));
		fputs(conf, f);
		fclose(f);
	}
	daemon_plugin(&d, "SHIPPED_PLUGINS", "first-available.so", "first");
	daemon_plugin(&d, "TEST_PLUGINS", "misbehave.so", "bad");
	daemon_plugin(&d, "TEST_PLUGINS", "misbehave.so", "slow");
	daemon_plugin(&d, "TEST_PLUGINS", "misbehave.so", "seg");
	daemon_plugin(&d, "TEST_PLUGINS", "misbehave.so", "sf");
	daemon_start(&d);
	assert_non_null(c = rhc_conn_new(d.sock, NULL));
	ok = simple_request(0);
	poison = simple_request(1);
	slow = simple_request(0);
	assert_int_equal(rhc_request_timeout(slow, 100), 0);
	assert_int_equal(status_of(c, "first", ok, NULL, 0), RHC_OK);
	assert_int_equal(status_of(c, "nothere", ok, detail, sizeof detail),
	    RHC_NO_SUCH_CHANNEL);
	assert_int_equal(status_of(c, "bad", ok, NULL, 0), RHC_BAD_DECISION);
	assert_int_equal(status_of(c, "slow", slow, NULL, 0), RHC_TIMED_OUT);
	assert_int_equal(status_of(c, "seg", poison, detail, sizeof detail),
	    RHC_CRASHED);
	assert_non_null(strstr(detail, "SIGSEGV"));
	/* Crashes in a row past the budget: crash_loop. */
	for (i = 0; i < 10; i++)
		if (status_of(c, "seg", ok, detail, sizeof detail) ==
		    RHC_CRASH_LOOP)
			break;
	assert_true(i < 10);
	/* A helper that exits, whose next one cannot start: spawn_failed. */
	snprintf(path, sizeof path, "%s/fail", d.dir);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	assert_int_equal(status_of(c, "sf", ok, NULL, 0), RHC_CRASHED);
	for (i = 0; i < 50; i++) {
		if (status_of(c, "sf", ok, detail, sizeof detail) ==
		    RHC_SPAWN_FAILED)
			break;
		usleep(20000);
	}
	assert_true(i < 50);
	/* A channel name the daemon refuses (the library checks length). */
	assert_int_equal(status_of(c, "no/such", ok, detail, sizeof detail),
	    RHC_BAD_REQUEST);
	assert_non_null(strstr(detail, "channel name has byte 0x2f at 3"));
	assert_string_equal(rhc_status_name(RHC_CRASH_LOOP), "crash_loop");
	assert_string_equal(rhc_status_name(RHC_CONNECTION_LOST),
	    "connection_lost");
	rhc_request_free(ok);
	rhc_request_free(poison);
	rhc_request_free(slow);
	rhc_conn_free(c);
	daemon_free(&d);
}

/*
 * The daemon's limits: past max-in-flight, calls are answered overloaded
 * (and handed back, not retried); the others are answered as ever.
 */
static void
test_overloaded(void **state)
{
	struct daemon		 d;
	struct rhc_conn		*c;
	struct rhc_request	*rq;
	struct seen		 s;
	struct cookie		 k[8];
	unsigned int		 count[8] = { 0 };

	(void)state;
	daemon_init(&d, "max-in-flight 2\nchannel slow {\n\toption "
	    "mode=sleep\n\toption ms=300\n}\n");
	daemon_plugin(&d, "TEST_PLUGINS", "misbehave.so", "slow");
	daemon_start(&d);
	assert_non_null(c = rhc_conn_new(d.sock, NULL));
	rq = simple_request(0);
	memset(&s, 0, sizeof s);
	s.count = count;
	for (size_t i = 0; i < nitems(k); i++) {
		k[i].seen = &s;
		k[i].i = i;
		assert_int_equal(rhc_conn_submit(c, "slow", rq, tally, &k[i]),
		    0);
	}
	assert_int_equal(rhc_conn_wait(c, 10000), 0);
	for (size_t i = 0; i < nitems(k); i++)
		assert_int_equal(count[i], 1);
	assert_int_equal(s.by_status[RHC_OK], 2);
	assert_int_equal(s.by_status[RHC_OVERLOADED], nitems(k) - 2);
	assert_int_equal(s.retried, 0);
	rhc_request_free(rq);
	rhc_conn_free(c);
	daemon_free(&d);
}

/* A slow call and fast ones: the fast ones are answered first. */
static void
test_out_of_order(void **state)
{
	struct daemon		 d;
	struct rhc_conn		*c;
	struct rhc_request	*rq;
	struct seen		 s;
	struct cookie		 k[4];
	unsigned int		 count[4] = { 0 };

	(void)state;
	daemon_init(&d, "channel slow {\n\toption mode=sleep\n"
	    "\toption ms=300\n}\n");
	daemon_plugin(&d, "SHIPPED_PLUGINS", "first-available.so", "fast");
	daemon_plugin(&d, "TEST_PLUGINS", "misbehave.so", "slow");
	daemon_start(&d);
	memset(&s, 0, sizeof s);
	s.count = count;
	assert_non_null(c = rhc_conn_new(d.sock, NULL));
	rq = simple_request(0);
	for (size_t i = 0; i < 4; i++) {
		k[i].seen = &s;
		k[i].i = i;
		assert_int_equal(rhc_conn_submit(c, i == 0 ? "slow" : "fast",
		    rq, tally, &k[i]), 0);
	}
	assert_int_equal(rhc_conn_pending(c), 4);
	assert_int_equal(rhc_conn_wait(c, 10000), 0);
	assert_int_equal(s.by_status[RHC_OK], 4);
	assert_int_equal(s.norder, 4);
	assert_int_equal(s.order[3], 0);	/* the slow one, last */
	rhc_request_free(rq);
	rhc_conn_free(c);
	daemon_free(&d);
}

/* More calls than the daemon's window: all answered, the window kept. */
static void
test_window(void **state)
{
	struct daemon		 d;
	struct rhc_conn		*c;
	struct rhc_request	*rq;
	struct seen		 s;
	struct cookie		*k;
	unsigned int		*count;
	size_t			 n = 2000;

	(void)state;
	daemon_init(&d, "window 4\n");
	daemon_plugin(&d, "SHIPPED_PLUGINS", "round-robin.so", "rr");
	daemon_start(&d);
	memset(&s, 0, sizeof s);
	assert_non_null(s.count = count = calloc(n, sizeof *count));
	assert_non_null(k = calloc(n, sizeof *k));
	assert_non_null(c = rhc_conn_new(d.sock, NULL));
	rq = simple_request(0);
	for (size_t i = 0; i < n; i++) {
		k[i].seen = &s;
		k[i].i = i;
		assert_int_equal(rhc_conn_submit(c, "rr", rq, tally, &k[i]),
		    0);
	}
	assert_int_equal(rhc_conn_wait(c, 30000), 0);
	assert_int_equal(rhc_conn_window(c), 4);
	/* The daemon answers overloaded past the window: none was. */
	assert_int_equal(s.by_status[RHC_OK], n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(count[i], 1);
	rhc_request_free(rq);
	rhc_conn_free(c);
	free(k);
	free(count);
	daemon_free(&d);
}

/* No daemon at first: calls wait for it, and go when it comes. */
static void
test_daemon_late(void **state)
{
	struct daemon		 d;
	struct rhc_conn		*c;
	struct rhc_request	*rq;
	struct seen		 s;
	struct cookie		 k = { &s, 0 };
	unsigned int		 count[1] = { 0 };

	(void)state;
	daemon_init(&d, "");
	daemon_plugin(&d, "SHIPPED_PLUGINS", "round-robin.so", "rr");
	memset(&s, 0, sizeof s);
	s.count = count;
	assert_non_null(c = rhc_conn_new(d.sock, NULL));
	assert_int_equal(rhc_conn_fd(c), -1);
	assert_non_null(strstr(rhc_conn_error(c), "No such file"));
	rq = simple_request(0);
	assert_int_equal(rhc_conn_submit(c, "rr", rq, tally, &k), 0);
	assert_int_equal(rhc_conn_wait(c, 200), 1);	/* still waiting */
	assert_true(rhc_conn_timeout(c) >= 0);
	daemon_start(&d);
	assert_int_equal(rhc_conn_wait(c, 10000), 0);
	assert_int_equal(s.by_status[RHC_OK], 1);
	/* With nobody there for longer than wait_ms: connection_lost. */
	daemon_stop(&d, SIGTERM);
	{
		struct rhc_options	 o;
		struct rhc_conn		*c2;
		struct rhc_result	 r;

		rhc_options_init(&o);
		o.wait_ms = 300;
		assert_non_null(c2 = rhc_conn_new(d.sock, &o));
		assert_int_equal(rhc_conn_call(c2, "rr", rq, &r), 0);
		assert_int_equal(r.status, RHC_CONNECTION_LOST);
		assert_non_null(strstr(r.detail, "no daemon within 300 ms"));
		rhc_conn_free(c2);
	}
	rhc_request_free(rq);
	rhc_conn_free(c);
	daemon_free(&d);
}

/*
 * A daemon stopped (sig: SIGKILL, or SIGTERM, when it answers what comes
 * meanwhile shutting_down) and started again while n calls are
 * pipelined, or (sig SIGUSR2) one that executes itself again in place:
 * every call answered ok exactly once.  at_most_once: those in flight at
 * a SIGKILL end connection_lost instead, the others ok, none twice.
 * held: the test holds the listening socket (socket activation), and
 * the next daemon starts only after a pause, calls waiting meanwhile.
 */
static void
restart_under_load(int sig, int at_most_once, bool held)
{
	struct daemon		 d;
	struct rhc_options	 o;
	struct rhc_conn		*c;
	struct rhc_request	*rq;
	struct seen		 s;
	struct cookie		*k;
	unsigned int		*count;
	size_t			 n = 20000, answered;
	bool			 killed = false;

	daemon_init(&d, "");
	daemon_plugin(&d, "SHIPPED_PLUGINS", "round-robin.so", "rr");
	if (held)
		daemon_hold_socket(&d);
	daemon_start(&d);
	memset(&s, 0, sizeof s);
	assert_non_null(s.count = count = calloc(n, sizeof *count));
	assert_non_null(k = calloc(n, sizeof *k));
	rhc_options_init(&o);
	o.at_most_once = at_most_once;
	o.wait_ms = 20000;
	assert_non_null(c = rhc_conn_new(d.sock, &o));
	rq = simple_request(0);
	for (size_t i = 0; i < n; i++) {
		k[i].seen = &s;
		k[i].i = i;
		assert_int_equal(rhc_conn_submit(c, "rr", rq, tally, &k[i]),
		    0);
	}
	while (rhc_conn_pending(c) > 0) {
		answered = n - rhc_conn_pending(c);
		if (!killed && answered >= n / 4) {
			if (sig == SIGUSR2)
				assert_int_equal(kill(d.pid, SIGUSR2), 0);
			else {
				daemon_stop(&d, sig);
				/* Calls keep coming: they wait in its queue. */
				for (int i = 0; held && i < 20; i++)
					assert_true(rhc_conn_wait(c, 10) >= 0);
				daemon_start(&d);
			}
			killed = true;
		}
		assert_true(rhc_conn_wait(c, 10) >= 0);
	}
	assert_true(killed);
	/* SIGUSR2: the same process, serving again. */
	if (sig == SIGUSR2)
		assert_int_equal(waitpid(d.pid, NULL, WNOHANG), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(count[i], 1);
	if (!at_most_once) {
		assert_int_equal(s.by_status[RHC_OK], n);
	} else {
		assert_int_equal(s.by_status[RHC_OK] +
		    s.by_status[RHC_CONNECTION_LOST], n);
		assert_int_equal(s.retried, 0);
	}
	print_message("restart under load (%s%s%s): %zu calls, %zu ok, %zu "
	    "connection_lost, %zu answered after a second try\n",
	    sig == SIGKILL ? "SIGKILL" : sig == SIGUSR2 ? "SIGUSR2" :
	    "SIGTERM", held ? ", socket held: 200 ms without a daemon" : "",
	    at_most_once ? ", at most once" : "", n, s.by_status[RHC_OK],
	    s.by_status[RHC_CONNECTION_LOST], s.retried);
	rhc_request_free(rq);
	rhc_conn_free(c);
	free(k);
	free(count);
	daemon_free(&d);
}

/* See restart_under_load. */
static void
test_restart(void **state)
{
	(void)state;
	restart_under_load(SIGKILL, 0, false);
}

/* See restart_under_load. */
static void
test_restart_at_most_once(void **state)
{
	(void)state;
	restart_under_load(SIGKILL, 1, false);
}

/* See restart_under_load. */
static void
test_restart_graceful(void **state)
{
	(void)state;
	restart_under_load(SIGTERM, 0, false);
}

/* See restart_under_load. */
static void
test_restart_socket_held(void **state)
{
	(void)state;
	restart_under_load(SIGKILL, 0, true);
	restart_under_load(SIGTERM, 0, true);
}

/* See restart_under_load. */
static void
test_reexec(void **state)
{
	(void)state;
	restart_under_load(SIGUSR2, 0, false);
}

/*
 * A fake daemon: WELCOME, then for each ROUTE a RESULT frame cut short.
 * The call is tried twice, then ends connection_lost saying why.
 */
static void
test_fake_daemon(void **state)
{
	static const unsigned char welcome[] = {
		0x0d, 0, 0, 0, 0x81, 2, 0, 0, 0, 0x10, 0, 4, 0, 0, 0, 1, 'x'
	};
	static const unsigned char bad[] = { 6, 0, 0, 0, 0x82, 1, 0, 0, 0, 0 };
	struct sockaddr_un	 sun;
	struct rhc_conn		*c;
	struct rhc_request	*rq;
	struct rhc_result	 r;
	char			 dir[] = "/tmp/route-host-fake-XXXXXX", buf[4096];
	pid_t			 pid;
	int			 l, s;

	(void)state;
	assert_non_null(mkdtemp(dir));
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/s", dir);
	assert_true((l = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	assert_int_equal(bind(l, (struct sockaddr *)&sun, sizeof sun), 0);
	assert_int_equal(listen(l, 8), 0);
	if ((pid = fork()) == 0) {
		for (;;) {
			if ((s = accept(l, NULL, NULL)) == -1)
				_exit(1);
			(void)read(s, buf, 9);			/* HELLO */
			(void)write(s, welcome, sizeof welcome);
			if (read(s, buf, sizeof buf) > 0)	/* ROUTE */
				(void)write(s, bad, sizeof bad);
			close(s);
		}
	}
	close(l);
	if (nstarted < nitems(started))
		started[nstarted++] = pid;
	assert_non_null(c = rhc_conn_new(sun.sun_path, NULL));
	rq = simple_request(0);
	assert_int_equal(rhc_conn_call(c, "any", rq, &r), 0);
	assert_int_equal(r.status, RHC_CONNECTION_LOST);
	assert_int_equal(r.tries, 2);
	assert_non_null(strstr(r.detail, "bad RESULT"));
	assert_non_null(strstr(rhc_conn_error(c), "bad RESULT"));
	rhc_request_free(rq);
	rhc_conn_free(c);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	started[nstarted - 1] = 0;
	unlink(sun.sun_path);
	rmdir(dir);
}

/* A callback that submits again, as rhc_conn_free cancels: refused. */
static void
resubmit(void *arg, const struct rhc_result *r)
{
	struct rhc_conn		**cp = arg;
	struct rhc_request	*rq = rhc_request_new();

	assert_int_equal(r->status, RHC_CANCELLED);
	assert_int_equal(rhc_request_consumer(rq, "a", 0, 1, 0, NULL, 0), 0);
	assert_int_equal(rhc_conn_submit(*cp, "rr", rq, NULL, NULL), -1);
	assert_int_equal(errno, ESHUTDOWN);
	rhc_request_free(rq);
}

/* Calls pending when the connection is freed: cancelled, once each. */
static void
test_cancel(void **state)
{
	struct rhc_conn		*c;
	struct rhc_request	*rq;
	struct seen		 s;
	struct cookie		 k[3];
	unsigned int		 count[3] = { 0 };

	(void)state;
	memset(&s, 0, sizeof s);
	s.count = count;
	assert_non_null(c = rhc_conn_new("/nonexistent/route-host.sock",
	    NULL));
	rq = simple_request(0);
	for (size_t i = 0; i < 3; i++) {
		k[i].seen = &s;
		k[i].i = i;
		assert_int_equal(rhc_conn_submit(c, "rr", rq, tally, &k[i]),
		    0);
	}
	{
		static struct rhc_conn	*cp;

		cp = c;
		assert_int_equal(rhc_conn_submit(c, "rr", rq, resubmit, &cp),
		    0);
	}
	rhc_conn_free(c);
	assert_int_equal(s.by_status[RHC_CANCELLED], 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(count[i], 1);
	rhc_request_free(rq);
}

/* The builder refuses what the protocol cannot carry, saying what. */
static void
test_request_errors(void **state)
{
	struct rhc_request	*rq;
	struct rhc_conn		*c;
	const char		*tags[65];

	(void)state;
	assert_non_null(rq = rhc_request_new());
	assert_int_equal(rhc_request_int(rq, "x", 1), 0);
	assert_int_equal(rhc_request_int(rq, "x", 2), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(rhc_request_error(rq), "given twice"));
	/* The error sticks, and the request cannot be sent. */
	assert_int_equal(rhc_request_int(rq, "y", 1), -1);
	assert_non_null(c = rhc_conn_new("/nonexistent/s", NULL));
	assert_int_equal(rhc_conn_submit(c, "ch", rq, NULL, NULL), -1);
	assert_int_equal(errno, EINVAL);
	rhc_request_clear(rq);
	assert_null(rhc_request_error(rq));
	assert_int_equal(rhc_request_int(rq, "", 1), -1);
	rhc_request_clear(rq);
	for (size_t i = 0; i < nitems(tags); i++)
		tags[i] = "t";
	assert_int_equal(rhc_request_consumer(rq, "a", 0, 0, 0, tags, 65),
	    -1);
	assert_non_null(strstr(rhc_request_error(rq), "at most 64 tags"));
	rhc_request_clear(rq);
	assert_int_equal(rhc_request_json(rq, "{\"consumers\": [], "
	    "\"message\": {\"a\": [1]}}"), -1);
	assert_non_null(strstr(rhc_request_error(rq), "'a' is an array"));
	rhc_request_clear(rq);
	assert_int_equal(rhc_request_json(rq, "{\"consumers\": [{}]}"), -1);
	assert_non_null(strstr(rhc_request_error(rq), "consumers[0].id"));
	rhc_request_clear(rq);
	assert_int_equal(rhc_request_json(rq, "{nope"), -1);
	assert_non_null(strstr(rhc_request_error(rq), "invalid JSON"));
	rhc_request_clear(rq);
	/* A bad channel name: EINVAL, no callback. */
	assert_int_equal(rhc_request_consumer(rq, "a", 0, 0, 0, NULL, 0), 0);
	assert_int_equal(rhc_conn_submit(c, "", rq, NULL, NULL), -1);
	assert_int_equal(rhc_conn_pending(c), 0);
	rhc_conn_free(c);
	rhc_request_free(rq);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_request_errors),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_fake_daemon),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_statuses),
		cmocka_unit_test(test_overloaded),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_daemon_late),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_restart_at_most_once),
		cmocka_unit_test(test_restart_graceful),
		cmocka_unit_test(test_reexec),
		cmocka_unit_test(test_restart_socket_held),
	};

	signal(SIGPIPE, SIG_IGN);
	atexit(daemon_reap_all);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
