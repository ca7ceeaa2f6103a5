/* SPDX-License-Identifier: ISC */
/*
 * route-host serve: the daemon brokers talk to.  It serves every channel
 * of the plugins directory on a Unix socket, deploys what lands there,
 * and answers SIGHUP (rescan, reread the configuration), SIGTERM or
 * SIGINT (stop accepting, finish calls in flight within a bound, reap
 * every helper, remove the socket, exit 0) and SIGUSR2 (the same stop,
 * but the listening socket stays open and in place, and the daemon
 * executes its program file again, a new binary after an upgrade, in the
 * same process: the new daemon takes the socket over, and connections
 * made meanwhile wait in its listen queue).
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
#define sd_notify(unset, state)	((void)0)
#define sd_listen_fds(unset)	0
#define sd_is_socket_unix(fd, type, listening, path, len) 0
#define SD_LISTEN_FDS_START	3
#endif

#include <jansson.h>

#include "route-host.h"

#define CMD_SERVE_STOP_MS	5000	/* for calls in flight at SIGTERM */
#define CMD_SERVE_FD_RESERVE	256	/* descriptors beside connections */
#define CMD_SERVE_SETTLE_MS	10000	/* for the first deploys, at most */
#define CMD_SERVE_MMAP_THRESHOLD (128 << 10)	/* malloc: larger are mapped */
/* What a daemon that re-executes itself tells the new one. */
#define CMD_SERVE_ENV_FD	"ROUTE_HOST_REEXEC_FD"	/* the socket */
#define CMD_SERVE_ENV_OWNED	"ROUTE_HOST_REEXEC_OWNED" /* the path we
							     bound it to */

/* Everything the daemon holds. */
struct cmd_serve {
	struct conf		 conf;
	const char		*conf_path;
	bool			 conf_given;
	const char		*flag_plugins, *flag_socket;
	int			 flag_timeout;
	bool			 foreground;
	bool			 verbose;
	bool			 check;		/* -n: check, then exit */
	bool			 journal;	/* stderr is the journal's */
	u_int			 nerrors;	/* logged at LOG_ERR or worse */
	struct engine		*engine;
	struct plugdir		*plugdir;
	struct server		*server;
	struct metrics		*metrics;	/* metrics-listen, or NULL */
	struct watch		 sigw;
	bool			 stopping;
	uint64_t		 stop_by;

	/* SIGUSR2: execute this program again, handing the socket over. */
	int			 argc;		/* serve's arguments */
	char			**argv;
	char			 exe[PATH_MAX];	/* its file, "" if unknown */
	int			 cwd;		/* where it started, or -1 */
	bool			 reexeced;	/* this process is such a one */
	bool			 upgrading;	/* SIGUSR2 came */
	int			 handed;	/* the socket kept, or -1 */
	bool			 handed_owned;	/* ... made by us */
	char			 handed_path[PATH_MAX];	/* ... there */
};

static void	cmd_serve_server_conf(struct cmd_serve *,
		    struct server_config *, int);

/* Write a log line: to stderr in the foreground, else to syslog. */
static void
cmd_serve_log(void *arg, int prio, const char *line)
{
	static const char *const names[] = { "emerg", "alert", "crit",
	    "error", "warning", "notice", "info", "debug" };
	struct cmd_serve	*d = arg;

	if (prio <= LOG_ERR)
		d->nerrors++;
	if (prio == LOG_DEBUG && !d->verbose)
		return;
	if (d->foreground && d->journal)
		fprintf(stderr, "<%d>%s\n", prio & 7, line);
	else if (d->foreground)
		fprintf(stderr, "route-host[%ld]: %s: %s\n", (long)getpid(),
		    names[prio & 7], line);
	else
		syslog(prio, "%s", line);
}

/* Give a channel its settings from the configuration. */
static void
cmd_serve_configure(void *arg, const char *name, struct channel_conf *cc)
{
	struct cmd_serve		*d = arg;
	const struct conf_channel	*ch = conf_channel(&d->conf, name);

	cc->timeout_ms = d->conf.timeout_ms;
	cc->helpers = d->conf.helpers;
	cc->drain_ms = d->conf.drain_ms;
	cc->memory_mb = d->conf.memory_mb;
	cc->sandbox = d->conf.sandbox;
	cc->crash = d->conf.crash;
	if (ch == NULL)
		return;
	conf_crash_merge(&cc->crash, &ch->crash);
	if (ch->memory_mb != 0)
		cc->memory_mb = ch->memory_mb;
	if (ch->sandbox != 0)
		cc->sandbox = ch->sandbox;
	if (ch->timeout_ms != 0)
		cc->timeout_ms = ch->timeout_ms;
	if (ch->helpers != 0)
		cc->helpers = ch->helpers;
	if (ch->drain_ms != 0)
		cc->drain_ms = ch->drain_ms;
	cc->opts = ch->opts;
	cc->nopts = ch->nopts;
}

/* Settings from the file (if any) with the flags on top; -1 with err. */
static int
cmd_serve_read_conf(struct cmd_serve *d, struct conf *c, char *err,
    size_t errlen)
{
	conf_defaults(c);
	if ((d->conf_given || access(d->conf_path, F_OK) == 0) &&
	    conf_load(c, d->conf_path, err, errlen) == -1)
		return -1;
	if (d->flag_plugins != NULL)
		strlcpy(c->plugins, d->flag_plugins, sizeof c->plugins);
	if (d->flag_socket != NULL &&
	    strlcpy(c->socket, d->flag_socket, sizeof c->socket) >=
	    sizeof c->socket) {
		snprintf(err, errlen, "%s: socket path too long",
		    d->flag_socket);
		return -1;
	}
	if (d->flag_timeout > 0)
		c->timeout_ms = d->flag_timeout;
	return 0;
}

/* The plugins directory settings the configuration implies. */
static void
cmd_serve_plugdir_conf(struct cmd_serve *d, struct plugdir_config *pc)
{
	plugdir_defaults(pc);
	pc->strict = d->conf.strict;
	pc->drain_ms = d->conf.drain_ms;
	pc->configure = cmd_serve_configure;
	pc->configure_arg = d;
}

/* A crash_conf as JSON. */
static json_t *
cmd_serve_crash_json(const struct crash_conf *cc)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I}",
	    "crash_budget", (json_int_t)cc->budget,
	    "crash_backoff_min_ms", (json_int_t)cc->backoff_min_ms,
	    "crash_backoff_max_ms", (json_int_t)cc->backoff_max_ms,
	    "poison_memo", (json_int_t)cc->memo,
	    "poison_memo_ttl_ms", (json_int_t)cc->memo_ttl_ms);
}

/*
 * The effective settings, as status shows them and a reload compares
 * them: the global ones, and each channel block's.
 */
static json_t *
cmd_serve_settings(const struct conf *c)
{
	const struct conf_channel	*cc;
	json_t				*j, *chs, *ch, *opts;

	j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:b,s:b,s:I,s:I,s:I,"
	    "s:I,s:I}",
	    "plugins", c->plugins,
	    "socket", c->socket,
	    "helper_user", c->helper_user,
	    "timeout_ms", (json_int_t)c->timeout_ms,
	    "helpers", (json_int_t)c->helpers,
	    "drain_ms", (json_int_t)c->drain_ms,
	    "memory_limit_mib", (json_int_t)c->memory_mb,
	    "sandbox", c->sandbox > 0,
	    "strict", c->strict,
	    "window", (json_int_t)c->window,
	    "max_in_flight", (json_int_t)c->max_in_flight,
	    "max_connections", (json_int_t)c->max_connections,
	    "window_bytes", (json_int_t)c->window_bytes,
	    "max_in_flight_bytes", (json_int_t)c->max_in_flight_bytes);
	if (j == NULL)
		return NULL;
	json_object_set_new(j, "metrics_listen", c->metrics_listen[0] !=
	    '\0' ? json_string(c->metrics_listen) : json_null());
	json_object_update_new(j, cmd_serve_crash_json(&c->crash));
	chs = json_object();
	for (size_t i = 0; i < c->nchannels; i++) {
		cc = &c->channels[i];
		opts = json_array();
		for (size_t k = 0; k < cc->nopts; k++)
			json_array_append_new(opts, json_pack("[s,s]",
			    cc->opts[k].key, cc->opts[k].value));
		ch = json_pack("{s:I,s:I,s:I,s:I,s:o}",
		    "timeout_ms", (json_int_t)cc->timeout_ms,
		    "helpers", (json_int_t)cc->helpers,
		    "drain_ms", (json_int_t)cc->drain_ms,
		    "memory_limit_mib", (json_int_t)cc->memory_mb,
		    "options", opts);
		if (ch != NULL && cc->sandbox != 0)
			json_object_set_new(ch, "sandbox",
			    json_boolean(cc->sandbox > 0));
		json_object_set_new(chs, cc->name, ch);
	}
	json_object_set_new(j, "channels", chs);
	return j;
}

/*
 * What a reload changed, from the settings before and after, on one line
 * into buf: "timeout_ms 5000 -> 200, channel orders changed, ...".
 */
static void
cmd_serve_changes(json_t *old, json_t *new, char *buf, size_t len)
{
	const char	*key;
	json_t		*v, *ov, *oc, *nc;
	char		*a, *b, item[256];

	buf[0] = '\0';
	json_object_foreach(new, key, v) {
		if (strcmp(key, "channels") == 0)
			continue;
		ov = json_object_get(old, key);
		if (ov != NULL && json_equal(ov, v))
			continue;
		a = ov != NULL ? json_dumps(ov, JSON_ENCODE_ANY) : NULL;
		b = json_dumps(v, JSON_ENCODE_ANY);
		snprintf(item, sizeof item, "%s%s %s -> %s", buf[0] != '\0' ?
		    ", " : "", key, a != NULL ? a : "?", b != NULL ? b : "?");
		strlcat(buf, item, len);
		free(a);
		free(b);
	}
	oc = json_object_get(old, "channels");
	nc = json_object_get(new, "channels");
	json_object_foreach(nc, key, v) {
		ov = json_object_get(oc, key);
		if (ov != NULL && json_equal(ov, v))
			continue;
		snprintf(item, sizeof item, "%schannel %s %s", buf[0] != '\0' ?
		    ", " : "", key, ov == NULL ? "added" : "changed");
		strlcat(buf, item, len);
	}
	json_object_foreach(oc, key, v) {
		if (json_object_get(nc, key) != NULL)
			continue;
		snprintf(item, sizeof item, "%schannel %s removed",
		    buf[0] != '\0' ? ", " : "", key);
		strlcat(buf, item, len);
	}
	if (buf[0] == '\0')
		strlcpy(buf, "no setting changed", len);
}

/*
 * A reload's metrics-listen: the new address is opened before the old one
 * is closed; if it cannot be, the old one stays (and stays in c).
 */
static void
cmd_serve_metrics_reload(struct cmd_serve *d, struct conf *c)
{
	struct metrics	*mt = NULL;
	char		 err[512];

	if (strcmp(c->metrics_listen, d->conf.metrics_listen) == 0)
		return;
	if (c->metrics_listen[0] != '\0' && (mt = metrics_open(d->engine,
	    d->server, c->metrics_listen, cmd_serve_log, d, err,
	    sizeof err)) == NULL) {
		cmd_serve_log(d, LOG_ERR, err);
		cmd_serve_log(d, LOG_WARNING, d->metrics != NULL ? "reload: "
		    "metrics stay on the old metrics-listen" : "reload: no "
		    "metrics over HTTP");
		strlcpy(c->metrics_listen, d->conf.metrics_listen,
		    sizeof c->metrics_listen);
		return;
	}
	metrics_close(d->metrics);
	d->metrics = mt;
	if (mt != NULL) {
		snprintf(err, sizeof err, "metrics on http://%s/metrics",
		    c->metrics_listen);
		cmd_serve_log(d, LOG_INFO, err);
	}
}

/* SIGHUP: reread the configuration (keeping the old one if it is bad). */
static void
cmd_serve_reload(struct cmd_serve *d)
{
	struct plugdir_config	 pc;
	struct plugdir		*pd;
	struct conf		 c;
	char			 err[512], changes[1024];
	struct conf		 old = d->conf;
	json_t			*settings, *old_settings;

	sd_notify(0, "RELOADING=1");
	old_settings = cmd_serve_settings(&d->conf);
	if (cmd_serve_read_conf(d, &c, err, sizeof err) == -1) {
		cmd_serve_log(d, LOG_ERR, err);
		cmd_serve_log(d, LOG_WARNING, "reload: keeping the running "
		    "configuration");
		server_set_reload(d->server, false, err);
		json_decref(old_settings);
		conf_free(&c);
		sd_notify(0, "READY=1");
		return;
	}
	if (strcmp(c.socket, d->conf.socket) != 0)
		cmd_serve_log(d, LOG_WARNING, "reload: a new socket path "
		    "takes a restart; still listening on the old one");
	strlcpy(c.socket, d->conf.socket, sizeof c.socket);
	if (c.socket_uid != d->conf.socket_uid ||
	    c.socket_gid != d->conf.socket_gid ||
	    c.socket_mode != d->conf.socket_mode)
		cmd_serve_log(d, LOG_WARNING, "reload: a new socket-owner, "
		    "socket-group or socket-mode takes a restart; the socket "
		    "keeps its own");
	c.socket_uid = d->conf.socket_uid;
	c.socket_gid = d->conf.socket_gid;
	c.socket_mode = d->conf.socket_mode;
	strlcpy(c.socket_owner, d->conf.socket_owner, sizeof c.socket_owner);
	strlcpy(c.socket_group, d->conf.socket_group, sizeof c.socket_group);
	cmd_serve_metrics_reload(d, &c);
	if (strcmp(c.plugins, d->conf.plugins) != 0) {
		d->conf = c;
		cmd_serve_plugdir_conf(d, &pc);
		if ((pd = plugdir_open(d->engine, c.plugins, &pc,
		    cmd_serve_log, d, err, sizeof err)) == NULL) {
			cmd_serve_log(d, LOG_ERR, err);
			cmd_serve_log(d, LOG_WARNING, "reload: keeping the "
			    "running configuration");
			server_set_reload(d->server, false, err);
			json_decref(old_settings);
			d->conf = old;
			conf_free(&c);
			sd_notify(0, "READY=1");
			return;
		}
		plugdir_close(d->plugdir);
		d->plugdir = pd;
		server_set_plugdir(d->server, pd);
		conf_free(&old);
	} else {
		conf_free(&d->conf);
		d->conf = c;
		cmd_serve_plugdir_conf(d, &pc);
		plugdir_reconfigure(d->plugdir, &pc);
	}
	/* Helpers started from now on run as the new helper-user. */
	if (engine_set_user(d->engine, d->conf.helper_user, err,
	    sizeof err) == -1)
		cmd_serve_log(d, LOG_ERR, err);
	/* New peers are checked against the new lists. */
	server_set_allow(d->server, &d->conf.allow);
	/* The new limits, now that nothing can fail any more. */
	if (d->conf.window != old.window ||
	    d->conf.max_in_flight != old.max_in_flight ||
	    d->conf.max_connections != old.max_connections ||
	    d->conf.window_bytes != old.window_bytes ||
	    d->conf.max_in_flight_bytes != old.max_in_flight_bytes) {
		struct server_config	sc;

		snprintf(err, sizeof err, "reload: window %u and window-bytes "
		    "%llu (for new connections), max-in-flight %u, "
		    "max-in-flight-bytes %llu, max-connections %u",
		    d->conf.window, (unsigned long long)d->conf.window_bytes,
		    d->conf.max_in_flight,
		    (unsigned long long)d->conf.max_in_flight_bytes,
		    d->conf.max_connections);
		cmd_serve_log(d, LOG_NOTICE, err);
		cmd_serve_server_conf(d, &sc, -1);
		server_set_limits(d->server, &sc);
	}
	/* What changed, on one line. */
	settings = cmd_serve_settings(&d->conf);
	cmd_serve_changes(old_settings, settings, changes, sizeof changes);
	server_set_settings(d->server, settings);
	json_decref(old_settings);
	server_set_reload(d->server, true, NULL);
	snprintf(err, sizeof err, "reloaded the configuration and rescanned "
	    "the plugins directory: %s", changes);
	cmd_serve_log(d, LOG_INFO, err);
	sd_notify(0, "READY=1");
}

/* The server's settings, from the configuration. */
static void
cmd_serve_server_conf(struct cmd_serve *d, struct server_config *sc,
    int listen_fd)
{
	memset(sc, 0, sizeof *sc);
	sc->socket = d->conf.socket;
	sc->socket_mode = d->conf.socket_mode;
	sc->socket_uid = d->conf.socket_uid;
	sc->socket_gid = d->conf.socket_gid;
	sc->socket_owner = d->conf.socket_owner;
	sc->socket_group = d->conf.socket_group;
	sc->allow = d->conf.allow;
	sc->window = d->conf.window;
	sc->max_in_flight = d->conf.max_in_flight;
	sc->max_connections = d->conf.max_connections;
	sc->window_bytes = d->conf.window_bytes;
	sc->max_in_flight_bytes = d->conf.max_in_flight_bytes;
	sc->listen_fd = listen_fd;
}

/*
 * The listening socket a service manager handed over (socket activation,
 * sd_listen_fds(3)), or -1 if none; -2 with err set if what was handed
 * over is not one listening Unix stream socket.
 */
static int
cmd_serve_listen_fd(char *err, size_t errlen)
{
	int	n;

	/* Unset LISTEN_FDS and LISTEN_PID: no child sees them. */
	if ((n = sd_listen_fds(1)) <= 0) {
		if (n < 0) {
			snprintf(err, errlen, "sd_listen_fds: %s",
			    strerror(-n));
			return -2;
		}
		return -1;
	}
	if (n > 1) {
		snprintf(err, errlen, "the service manager handed over %d "
		    "sockets; route-host listens on one", n);
		return -2;
	}
	if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL,
	    0) <= 0) {
		snprintf(err, errlen, "the socket the service manager handed "
		    "over is not a listening Unix stream socket "
		    "(ListenStream= of a path in the .socket unit)");
		return -2;
	}
	return SD_LISTEN_FDS_START;
}

/*
 * Raise the soft limit on descriptors to the hard one: each connection
 * takes one.  Says in msg what it got, and whether max-connections fits.
 */
static void
cmd_serve_nofile(struct cmd_serve *d, char *msg, size_t msglen)
{
	struct rlimit	rl;
	rlim_t		want;

	msg[0] = '\0';
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		want = rl.rlim_max;
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Room for the daemon's own descriptors and its helpers' too. */
	if (rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)d->conf.max_connections + CMD_SERVE_FD_RESERVE >
	    rl.rlim_cur)
		snprintf(msg, msglen, "max-connections %u, but a limit of "
		    "%llu descriptors: as it nears that, new connections wait "
		    "(raise LimitNOFILE= or ulimit -n to %u or more)",
		    d->conf.max_connections, (unsigned long long)rl.rlim_cur,
		    d->conf.max_connections + CMD_SERVE_FD_RESERVE);
}

/*
 * Start stopping: no new connections; calls in flight get a bound.  For
 * a re-exec the listening socket stays open (d->handed), else it goes.
 */
static void
cmd_serve_stop(struct cmd_serve *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = true;
	d->stop_by = engine_now() + CMD_SERVE_STOP_MS * MS_NS;
	sd_notify(0, d->upgrading ? "RELOADING=1" : "STOPPING=1");
	cmd_serve_log(d, LOG_INFO, why);
	if (d->upgrading) {
		strlcpy(d->handed_path, server_path(d->server),
		    sizeof d->handed_path);
		d->handed = server_handover(d->server, &d->handed_owned);
	} else
		server_stop(d->server);
}

/*
 * SIGUSR2: stop as SIGTERM does, then execute the program again
 * (cmd_serve_exec), unless its file cannot be: then say why and go on.
 */
static void
cmd_serve_upgrade(struct cmd_serve *d)
{
	char	msg[PATH_MAX + 128];

	if (d->stopping)
		return;
	if (d->exe[0] == '\0' || d->cwd == -1 || access(d->exe, X_OK) == -1) {
		snprintf(msg, sizeof msg, "SIGUSR2: cannot execute %s: %s; "
		    "still serving", d->exe[0] != '\0' ? d->exe :
		    "this program", d->exe[0] == '\0' || d->cwd == -1 ?
		    "its file or directory was not found at start" :
		    strerror(errno));
		cmd_serve_log(d, LOG_ERR, msg);
		return;
	}
	d->upgrading = true;
	snprintf(msg, sizeof msg, "SIGUSR2: stopping, then executing %s "
	    "again; the socket stays open", d->exe);
	cmd_serve_stop(d, msg);
}

/* Signals, read from a signalfd in the loop. */
static void
cmd_serve_signal(struct watch *w, uint32_t events)
{
	struct cmd_serve	*d = w->arg;
	struct signalfd_siginfo	 si;

	(void)events;
	while (read(w->fd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGHUP)
			cmd_serve_reload(d);
		else if (si.ssi_signo == SIGUSR2)
			cmd_serve_upgrade(d);
		else if (d->upgrading) {
			/* Stop for good: no new daemon takes the socket. */
			d->upgrading = false;
			cmd_serve_log(d, LOG_INFO, "stopping instead of "
			    "executing again");
		} else
			cmd_serve_stop(d, si.ssi_signo == SIGTERM ?
			    "SIGTERM: stopping" : "SIGINT: stopping");
	}
}

/*
 * Where this program's file is and where it was started, for SIGUSR2:
 * the new binary an upgrade puts at the same path, run from the same
 * directory, so that relative paths among the arguments mean the same.
 */
static void
cmd_serve_note_self(struct cmd_serve *d, int argc, char **argv)
{
	ssize_t	n;

	d->argc = argc;
	d->argv = argv;
	d->handed = -1;
	if ((n = readlink("/proc/self/exe", d->exe, sizeof d->exe - 1)) <= 0)
		n = 0;
	d->exe[n] = '\0';
	d->cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/*
 * The socket a daemon that re-executed into this one handed over, or -1
 * if none; -2 with err set if the environment names something else.
 * owned (PATH_MAX bytes) gets the path that daemon bound it to, or "" if
 * the service manager made it.
 */
static int
cmd_serve_reexec_fd(char *owned, char *err, size_t errlen)
{
	const char	*v = getenv(CMD_SERVE_ENV_FD), *o, *errstr;
	int		 fd, type = 0, listening = 0;
	socklen_t	 len = sizeof type;

	owned[0] = '\0';
	if (v == NULL)
		return -1;
	if ((o = getenv(CMD_SERVE_ENV_OWNED)) != NULL)
		strlcpy(owned, o, PATH_MAX);
	fd = (int)strtonum(v, 3, INT_MAX, &errstr);
	(void)unsetenv(CMD_SERVE_ENV_FD);
	(void)unsetenv(CMD_SERVE_ENV_OWNED);
	if (errstr != NULL) {
		snprintf(err, errlen, "%s=%s: %s", CMD_SERVE_ENV_FD, v, errstr);
		return -2;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 ||
	    type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) ==
	    -1 || !listening) {
		snprintf(err, errlen, "%s=%d: not a listening stream socket",
		    CMD_SERVE_ENV_FD, fd);
		return -2;
	}
	return fd;
}

/*
 * After SIGUSR2, with everything else closed: execute the program file
 * again with serve's arguments, from the directory it started in, the
 * listening socket on fd 3.  Returns only if that failed (said in err).
 */
static void
cmd_serve_exec(struct cmd_serve *d, char *err, size_t errlen)
{
	char	**argv;

	if ((argv = calloc((size_t)d->argc + 2, sizeof *argv)) == NULL) {
		snprintf(err, errlen, "SIGUSR2: out of memory");
		return;
	}
	argv[0] = (char *)"route-host";
	for (int i = 0; i < d->argc; i++)
		argv[i + 1] = d->argv[i];
	if (fchdir(d->cwd) == -1) {
		snprintf(err, errlen, "SIGUSR2: back to the directory it "
		    "started in: %s", strerror(errno));
		free(argv);
		return;
	}
	close(d->cwd);
	d->cwd = -1;
	closelog();
	if (d->handed != SD_LISTEN_FDS_START) {
		if (dup2(d->handed, SD_LISTEN_FDS_START) == -1) {
			snprintf(err, errlen, "SIGUSR2: dup2: %s",
			    strerror(errno));
			free(argv);
			return;
		}
		close(d->handed);
		d->handed = SD_LISTEN_FDS_START;
	}
	if (fcntl(d->handed, F_SETFD, 0) == -1 ||
	    setenv(CMD_SERVE_ENV_FD, "3", 1) == -1 ||
	    (d->handed_owned && setenv(CMD_SERVE_ENV_OWNED, d->handed_path,
	    1) == -1)) {
		snprintf(err, errlen, "SIGUSR2: %s", strerror(errno));
		free(argv);
		return;
	}
	execv(d->exe, argv);
	snprintf(err, errlen, "SIGUSR2: execute %s: %s", d->exe,
	    strerror(errno));
	free(argv);
}

/*
 * Whether standard error is the journal's stream (systemd sets
 * JOURNAL_STREAM to its device and inode): then each line starts with its
 * priority, "<3>", which the journal keeps, and no tag, which it adds.
 */
static bool
cmd_serve_journal(void)
{
	const char		*js = getenv("JOURNAL_STREAM");
	struct stat		 st;
	unsigned long long	 dev, ino;
	int			 n = 0;

	if (js == NULL || sscanf(js, "%llu:%llu%n", &dev, &ino, &n) != 2 ||
	    js[n] != '\0' || fstat(STDERR_FILENO, &st) == -1)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

/* conf_check's report: one error a line, as serve -n prints them. */
static void
cmd_serve_report(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "route-host: %s\n", msg);
}

/* A channel's outcome for serve -n. */
static void
cmd_serve_check_channel(struct channel *ch, void *arg)
{
	struct cmd_serve	*d = arg;

	if (ch->active != NULL)
		printf("channel %s: ok: %.12s (plugin \"%s\")\n", ch->name,
		    ch->active->hex, ch->active->name);
	else {
		printf("channel %s: not deployed: %s\n", ch->name,
		    ch->error[0] != '\0' ? ch->error : "still loading");
		d->nerrors++;
	}
}

/*
 * serve -n: check the configuration, every error with its file and line,
 * then open the plugins directory as serve does (its trust checks) and
 * load each channel's plugin in a helper, without listening on any
 * socket.  0 when all is well, 1 otherwise.
 */
static int
cmd_serve_check(struct cmd_serve *d)
{
	struct engine_config	 ec;
	struct plugdir_config	 pc;
	char			 err[512];
	uint64_t		 settle_by;
	u_int			 n;

	d->foreground = true;
	if (d->conf_given || access(d->conf_path, F_OK) == 0) {
		if ((n = conf_check(d->conf_path, cmd_serve_report, d)) > 0) {
			fprintf(stderr, "route-host: %s: %u error%s\n",
			    d->conf_path, n, n == 1 ? "" : "s");
			return 1;
		}
		printf("%s: ok\n", d->conf_path);
	} else
		printf("%s: none, the defaults apply\n", d->conf_path);
	if (cmd_serve_read_conf(d, &d->conf, err, sizeof err) == -1)
		errx(1, "serve: %s", err);
	engine_defaults(&ec);
	ec.timeout_ms = d->conf.timeout_ms;
	ec.helpers = 1;
	ec.helper_user = d->conf.helper_user;
	ec.log = cmd_serve_log;
	ec.log_arg = d;
	if ((d->engine = engine_new(&ec, err, sizeof err)) == NULL)
		errx(1, "serve: %s", err);
	cmd_serve_plugdir_conf(d, &pc);
	if ((d->plugdir = plugdir_open(d->engine, d->conf.plugins, &pc,
	    cmd_serve_log, d, err, sizeof err)) == NULL) {
		fprintf(stderr, "route-host: %s\n", err);
		d->nerrors++;
	} else {
		settle_by = engine_now() + CMD_SERVE_SETTLE_MS * MS_NS;
		while (plugdir_loading(d->plugdir) > 0 &&
		    engine_now() < settle_by)
			if (engine_run(d->engine, 50) == -1)
				break;
		plugdir_foreach(d->plugdir, cmd_serve_check_channel, d);
		plugdir_close(d->plugdir);
	}
	engine_free(d->engine);
	conf_free(&d->conf);
	if (d->nerrors > 0) {
		printf("%u error%s\n", d->nerrors, d->nerrors == 1 ? "" : "s");
		return 1;
	}
	printf("ok\n");
	return 0;
}

/* Print usage; exit 2. */
static int
cmd_serve_usage(void)
{
	fprintf(stderr, "usage: route-host serve [-fnv] [-c CONFIG] "
	    "[-d PLUGIN_DIR] [-s SOCKET] [-t DEFAULT_TIMEOUT_MS]\n");
	return 2;
}

/* route-host serve */
int
cmd_serve(int argc, char **argv)
{
	struct cmd_serve	 d;
	struct engine_config	 ec;
	struct plugdir_config	 pc;
	struct server_config	 sc;
	struct zygote		*zygote;
	sigset_t		 set;
	const char		*errstr;
	char			 err[512], nofile[256];
	int			 ch, listen_fd;
	char			 listen_owned[PATH_MAX];
	uint64_t		 settle_by;

	memset(&d, 0, sizeof d);
	d.conf_path = DEFAULT_CONF;
	optind = 1;
	while ((ch = getopt(argc, argv, "c:d:fns:t:v")) != -1) {
		switch (ch) {
		case 'c':
			d.conf_path = optarg;
			d.conf_given = true;
			break;
		case 'd':
			d.flag_plugins = optarg;
			break;
		case 'f':
			d.foreground = true;
			break;
		case 'n':
			d.check = true;
			break;
		case 's':
			d.flag_socket = optarg;
			break;
		case 't':
			d.flag_timeout = (int)strtonum(optarg, 1, 3600000,
			    &errstr);
			if (errstr != NULL)
				errx(2, "serve: -t %s: %s (1 to 3600000 ms)",
				    optarg, errstr);
			break;
		case 'v':
			d.verbose = true;
			break;
		default:
			return cmd_serve_usage();
		}
	}
	if (optind != argc)
		return cmd_serve_usage();
	if (d.check)
		return cmd_serve_check(&d);
	d.journal = cmd_serve_journal();
	cmd_serve_note_self(&d, argc, argv);
	if ((listen_fd = cmd_serve_reexec_fd(listen_owned, err,
	    sizeof err)) == -2)
		errx(1, "serve: %s", err);
	d.reexeced = listen_fd >= 0;
	if (!d.reexeced && (listen_fd = cmd_serve_listen_fd(err,
	    sizeof err)) == -2)
		errx(1, "serve: %s", err);
	/*
	 * The zygote first: it forks every helper, so it must hold nothing
	 * of what comes next (channels' options, clients' calls).  It lives
	 * as long as its sockets, so daemon(3) below does not end it.
	 */
	if ((ec.zygote = zygote_start(err, sizeof err)) == NULL)
		errx(1, "serve: %s", err);
	if (cmd_serve_read_conf(&d, &d.conf, err, sizeof err) == -1) {
		zygote_free(ec.zygote);
		errx(1, "serve: %s", err);
	}

	if (!d.foreground) {
		/* daemon() moves to /: keep relative paths meaning the same. */
		static char	confabs[PATH_MAX], plugabs[PATH_MAX];

		if (d.conf_path[0] != '/' && realpath(d.conf_path,
		    confabs) != NULL)
			d.conf_path = confabs;
		/* realpath writes up to PATH_MAX bytes: not into err. */
		if (d.conf.plugins[0] != '/' && realpath(d.conf.plugins,
		    plugabs) != NULL)
			strlcpy(d.conf.plugins, plugabs, sizeof d.conf.plugins);
		if (d.conf.socket[0] != '/') {
			zygote_free(ec.zygote);
			errx(1, "serve: socket %s: give an absolute path "
			    "without -f", d.conf.socket);
		}
		openlog("route-host", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		/* One that re-executed is detached already. */
		if (d.reexeced ? chdir("/") == -1 : daemon(0, 0) == -1) {
			zygote_free(ec.zygote);
			errx(1, "serve: daemon: %s", strerror(errno));
		}
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);

	cmd_serve_nofile(&d, nofile, sizeof nofile);
	/*
	 * Large buffers (calls' bodies, frames being read) are mapped and
	 * unmapped, so memory a burst of them took goes back to the system:
	 * without this, glibc raises the threshold after the first such free
	 * and keeps later ones in a heap that does not shrink.
	 */
	(void)mallopt(M_MMAP_THRESHOLD, CMD_SERVE_MMAP_THRESHOLD);
	zygote = ec.zygote;
	engine_defaults(&ec);
	ec.timeout_ms = d.conf.timeout_ms;
	ec.helpers = d.conf.helpers;
	ec.helper_user = d.conf.helper_user;
	ec.zygote = zygote;
	ec.log = cmd_serve_log;
	ec.log_arg = &d;
	if ((d.engine = engine_new(&ec, err, sizeof err)) == NULL)
		goto fatal;
	engine_describe_sandbox(d.engine, err, sizeof err);
	cmd_serve_log(&d, LOG_INFO, err);
	d.sigw.arg = &d;
	d.sigw.cb = cmd_serve_signal;
	if ((d.sigw.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1 || engine_watch(d.engine, &d.sigw, EPOLLIN) == -1) {
		snprintf(err, sizeof err, "signalfd: %s", strerror(errno));
		goto fatal;
	}
	cmd_serve_plugdir_conf(&d, &pc);
	if ((d.plugdir = plugdir_open(d.engine, d.conf.plugins, &pc,
	    cmd_serve_log, &d, err, sizeof err)) == NULL)
		goto fatal;
	cmd_serve_server_conf(&d, &sc, listen_fd);
	sc.listen_owned = listen_owned[0] != '\0' ? listen_owned : NULL;
	if ((d.server = server_open(d.engine, d.plugdir, &sc, cmd_serve_log,
	    &d, err, sizeof err)) == NULL)
		goto fatal;
	server_set_settings(d.server, cmd_serve_settings(&d.conf));
	snprintf(err, sizeof err, "listening on %s%s, plugins in %s, %u "
	    "helpers per version, %d ms default deadline",
	    server_path(d.server), d.reexeced ? " (kept across SIGUSR2)" :
	    server_activated(d.server) ? " (from the service manager)" : "",
	    d.conf.plugins,
	    d.conf.helpers, d.conf.timeout_ms);
	cmd_serve_log(&d, LOG_INFO, err);
	if (server_activated(d.server) &&
	    strcmp(server_path(d.server), d.conf.socket) != 0)
		cmd_serve_log(&d, LOG_INFO, "the socket setting (or -s) is "
		    "not used: the service manager's socket is");
	if (nofile[0] != '\0')
		cmd_serve_log(&d, LOG_WARNING, nofile);
	/*
	 * Accept once the channels found at start are deployed (or failed
	 * to): a connection made at once, as socket activation makes one,
	 * then finds them, instead of no_such_channel.  Meanwhile clients
	 * wait in the listen queue.
	 */
	settle_by = engine_now() + CMD_SERVE_SETTLE_MS * MS_NS;
	while (!d.stopping && plugdir_loading(d.plugdir) > 0 &&
	    engine_now() < settle_by)
		if (engine_run(d.engine, 50) == -1) {
			snprintf(err, sizeof err, "event loop: %s",
			    strerror(errno));
			goto fatal;
		}
	if (server_listen(d.server) == -1) {
		snprintf(err, sizeof err, "watch: %s", strerror(errno));
		goto fatal;
	}
	if (d.conf.metrics_listen[0] != '\0') {
		if ((d.metrics = metrics_open(d.engine, d.server,
		    d.conf.metrics_listen, cmd_serve_log, &d, err,
		    sizeof err)) == NULL)
			goto fatal;
		snprintf(err, sizeof err, "metrics on http://%s/metrics",
		    d.conf.metrics_listen);
		cmd_serve_log(&d, LOG_INFO, err);
	}
	sd_notify(0, "READY=1");

	for (;;) {
		if (engine_run(d.engine, d.stopping ? 50 : -1) == -1) {
			snprintf(err, sizeof err, "event loop: %s",
			    strerror(errno));
			goto fatal;
		}
		server_flush(d.server);
		if (engine_broken(d.engine) != NULL) {
			/* A service manager starts a whole new daemon. */
			snprintf(err, sizeof err, "no helper can start any "
			    "more: %s", engine_broken(d.engine));
			goto fatal;
		}
		if (d.stopping && (server_in_flight(d.server) == 0 ||
		    engine_now() >= d.stop_by))
			break;
	}
	if (server_in_flight(d.server) > 0) {
		snprintf(err, sizeof err, "%u calls still in flight after "
		    "%d ms: answering shutting_down", server_in_flight(d.server),
		    CMD_SERVE_STOP_MS);
		cmd_serve_log(&d, LOG_WARNING, err);
	}
	/*
	 * Undo in the reverse order of creation.  The server goes first:
	 * it answers the calls left shutting_down and closes its clients
	 * while the plugins directory and the engine its clients' frames
	 * would reach still exist, and reads no frame again.  The engine
	 * goes last, ending what it still runs.
	 */
	metrics_close(d.metrics);
	if (!d.upgrading && d.handed != -1) {
		/* An upgrade called off: the socket goes as at SIGTERM. */
		server_take_back(d.server, d.handed);
		d.handed = -1;
	}
	server_free(d.server);
	plugdir_close(d.plugdir);
	engine_unwatch(d.engine, &d.sigw);
	close(d.sigw.fd);
	engine_free(d.engine);
	conf_free(&d.conf);
	if (d.upgrading && d.handed != -1) {
		cmd_serve_log(&d, LOG_INFO, "executing the program again");
		cmd_serve_exec(&d, err, sizeof err);
		/* Not executed: the socket's path stays for the next one. */
		cmd_serve_log(&d, LOG_ERR, err);
		return 1;
	}
	cmd_serve_log(&d, LOG_INFO, "stopped");
	if (d.cwd != -1)
		close(d.cwd);
	return 0;

fatal:
	cmd_serve_log(&d, LOG_ERR, err);
	metrics_close(d.metrics);
	server_free(d.server);
	plugdir_close(d.plugdir);
	engine_free(d.engine);
	conf_free(&d.conf);
	return 1;
}
