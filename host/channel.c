/* SPDX-License-Identifier: ISC */
/*
 * Channels: a name brokers route to, and the slot holding its active
 * version.
 *
 * Deploying is gated: the new version must load and pass its handshake in
 * a helper before the slot swaps to it, so a broken file never replaces a
 * working one.  The swap is one pointer store: a call that starts after it
 * runs on the new version, and a call that started before it holds its own
 * reference to the old version and finishes there.  The old version then
 * drains: its helpers go once its last call ends, or when the drain cap
 * passes (engine_release_drain).
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "route-host.h"

/* A version waiting for its handshake before it may take the slot. */
struct channel_gate {
	struct channel	*channel;	/* NULL once superseded */
	struct engine	*engine;
	struct module	*module;
};

/* Log one line about the channel through its owner's callback. */
static void __attribute__((format(printf, 3, 4)))
channel_log(struct channel *ch, int prio, const char *fmt, ...)
{
	char	line[DETAIL_MAX * 2];
	int	n;
	va_list	ap;

	if (ch->log == NULL)
		return;
	n = snprintf(line, sizeof line, "channel %s: ", ch->name);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	ch->log(ch->logarg, prio, line);
}

/* A new channel with an empty slot. */
struct channel *
channel_new(struct engine *e, const char *name, int drain_ms, log_cb log,
    void *logarg)
{
	struct channel	*ch;

	if ((ch = calloc(1, sizeof *ch)) == NULL)
		return NULL;
	strlcpy(ch->name, name, sizeof ch->name);
	ch->engine = e;
	ch->drain_ms = drain_ms;
	ch->log = log;
	ch->logarg = logarg;
	return ch;
}

/* Drop the channel's copy of its plugin options. */
static void
channel_free_options(struct channel *ch)
{
	for (size_t i = 0; i < ch->nopts; i++) {
		free((char *)ch->opts[i].key);
		free((char *)ch->opts[i].value);
	}
	free(ch->opts);
	ch->opts = NULL;
	ch->nopts = 0;
}

/*
 * Take new settings; they apply from the next deploy (options, helpers)
 * or the next call (timeout).  -1 when out of memory.
 */
int
channel_configure(struct channel *ch, const struct channel_conf *cc)
{
	channel_free_options(ch);
	ch->timeout_ms = cc->timeout_ms;
	ch->helpers = cc->helpers;
	ch->memory_mb = cc->memory_mb;
	ch->sandbox = cc->sandbox;
	ch->crash = cc->crash;
	if (cc->drain_ms > 0)
		ch->drain_ms = cc->drain_ms;
	if (cc->nopts == 0)
		return 0;
	if ((ch->opts = calloc(cc->nopts, sizeof *ch->opts)) == NULL)
		return -1;
	for (size_t i = 0; i < cc->nopts; i++) {
		ch->opts[i].key = strdup(cc->opts[i].key);
		ch->opts[i].value = strdup(cc->opts[i].value);
		ch->nopts = i + 1;
		if (ch->opts[i].key == NULL || ch->opts[i].value == NULL)
			return -1;
	}
	return 0;
}

/* Forget a gate that has not answered yet; its result is then ignored. */
static void
channel_drop_gate(struct channel *ch)
{
	if (ch->gate != NULL) {
		ch->gate->channel = NULL;
		ch->gate = NULL;
	}
}

/*
 * Retire the channel: new calls cannot find it, calls in flight finish on
 * the version they started on, within the drain cap.
 */
void
channel_free(struct channel *ch)
{
	if (ch == NULL)
		return;
	channel_drop_gate(ch);
	if (ch->active != NULL) {
		channel_log(ch, LOG_INFO, "retired %.12s", ch->active->hex);
		engine_release_drain(ch->engine, ch->active, ch->drain_ms);
	}
	channel_free_options(ch);
	free(ch);
}

/* The gate's handshake answered: swap the slot, or keep the old version. */
static void
channel_gate_done(const struct result *r, void *arg)
{
	struct channel_gate	*g = arg;
	struct channel		*ch = g->channel;
	struct module		*old;

	if (ch == NULL) {
		/* Superseded by a newer file, or the channel went away. */
		engine_release(g->engine, g->module);
		free(g);
		return;
	}
	ch->gate = NULL;
	if (r->status != ST_OK) {
		snprintf(ch->error, sizeof ch->error, "%.12s not deployed: %s",
		    g->module->hex, r->detail);
		ch->deploy_failures++;
		channel_log(ch, LOG_ERR, "%s%s", ch->error, ch->active != NULL ?
		    "; the active version keeps serving" : "");
		engine_release(ch->engine, g->module);
		free(g);
		return;
	}
	old = ch->active;
	ch->active = g->module;
	ch->error[0] = '\0';
	ch->deploys++;
	if (old != NULL) {
		channel_log(ch, LOG_INFO, "deployed %.12s (plugin \"%s\"), "
		    "%.12s draining", ch->active->hex, ch->active->name,
		    old->hex);
		engine_release_drain(ch->engine, old, ch->drain_ms);
	} else
		channel_log(ch, LOG_INFO, "deployed %.12s (plugin \"%s\")",
		    ch->active->hex, ch->active->name);
	free(g);
}

/*
 * Deploy the plugin file at path: channel_deploy_fd on the file opened
 * with O_NOFOLLOW.
 */
int
channel_deploy(struct channel *ch, const char *path)
{
	int	fd, rv;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
	    O_NOCTTY)) == -1) {
		snprintf(ch->error, sizeof ch->error, "not deployed: %s: %s",
		    path, errno == ELOOP ? "is a symbolic link" :
		    strerror(errno));
		ch->deploy_failures++;
		channel_log(ch, LOG_ERR, "%s", ch->error);
		return -1;
	}
	rv = channel_deploy_fd(ch, fd, path);
	close(fd);
	return rv;
}

/*
 * Deploy the plugin file open at fd (path names it), with the channel's
 * options: load it, and swap once a helper has loaded it.  Same bytes as
 * the active version (or the one already at the gate): nothing to do.
 * The caller keeps fd.  Returns -1 with ch->error set when the file cannot
 * even be read.
 */
int
channel_deploy_fd(struct channel *ch, int fd, const char *path)
{
	struct channel_gate	*g;
	struct module		*m;
	char			 err[DETAIL_MAX];

	if (engine_load_fd(ch->engine, fd, path, ch->name, ch->opts,
	    ch->nopts, &m, err, sizeof err) == -1) {
		snprintf(ch->error, sizeof ch->error, "not deployed: %s", err);
		ch->deploy_failures++;
		channel_log(ch, LOG_ERR, "%s", ch->error);
		return -1;
	}
	engine_set_helpers(m, ch->helpers);
	engine_set_crash(m, &ch->crash);
	if (ch->sandbox != 0 || ch->memory_mb != 0)
		engine_set_sandbox(m, ch->sandbox >= 0, (size_t)ch->memory_mb <<
		    20);
	if (ch->sandbox < 0)
		channel_log(ch, LOG_WARNING, "sandbox off (sandbox no): its "
		    "plugin can do whatever route-host's user can");
	if (m == ch->active || (ch->gate != NULL && m == ch->gate->module)) {
		engine_release(ch->engine, m);
		return 0;
	}
	if ((g = calloc(1, sizeof *g)) == NULL) {
		engine_release(ch->engine, m);
		snprintf(ch->error, sizeof ch->error, "not deployed: out of "
		    "memory");
		ch->deploy_failures++;
		return -1;
	}
	g->channel = ch;
	g->engine = ch->engine;
	g->module = m;
	channel_drop_gate(ch);
	ch->gate = g;
	if (engine_probe(ch->engine, m, channel_gate_done, g) == -1) {
		ch->gate = NULL;
		engine_release(ch->engine, m);
		free(g);
		snprintf(ch->error, sizeof ch->error, "not deployed: out of "
		    "memory");
		ch->deploy_failures++;
		return -1;
	}
	channel_log(ch, LOG_DEBUG, "%.12s loading from %s", m->hex, path);
	return 0;
}

/*
 * Route a call through the channel's active version; with none deployed,
 * the call ends as no_such_channel.
 */
int
channel_call(struct channel *ch, const void *body, size_t len, int timeout_ms,
    engine_cb cb, void *arg)
{
	if (ch->active == NULL)
		return engine_reject(ch->engine, ST_NO_SUCH_CHANNEL,
		    "channel has no deployed version", cb, arg);
	return engine_call(ch->engine, ch->active, body, len, timeout_ms > 0 ?
	    timeout_ms : ch->timeout_ms, cb, arg);
}

/* The version at the gate, loading, or NULL. */
const struct module *
channel_loading(const struct channel *ch)
{
	return ch->gate != NULL ? ch->gate->module : NULL;
}
