/* SPDX-License-Identifier: ISC */
/*
 * route-host route: read JSON requests on standard input, one per line,
 * route each through a plugin in a supervised helper (or, with -s,
 * through the daemon, as a broker does, with libroute-host-client), and
 * write one JSON result per line.  Exit 0 when every line got a decision, 1 when any got
 * an error, 2 for bad usage or an unreadable plugin.
 */

#include "config.h"

#include <getopt.h>
#include <poll.h>
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <jansson.h>

#include "route-host.h"
#include "route-host/client.h"

#define CMD_ROUTE_LINE_MAX	(4u << 20)

/* One call's outcome, filled in by the engine's callback. */
struct cmd_route_wait {
	bool		done;
	struct result	result;
};

/* Engine callback: keep the result. */
static void
cmd_route_done(const struct result *r, void *arg)
{
	struct cmd_route_wait	*w = arg;

	w->result = *r;
	w->done = true;
}

/*
 * The engine's log for a command that runs plugins without a daemon
 * (route --plugin, check, demo): all but debug goes to standard error,
 * as warnx(3) writes it.  What a plugin writes to its standard error comes
 * here, a line at a time, escaped by the engine.
 */
void
cmd_log(void *arg, int prio, const char *line)
{
	(void)arg;
	if (prio != LOG_DEBUG)
		warnx("%s", line);
}

/* Add a KEY=VALUE option to a growing array; -1 if malformed. */
int
cmd_options(struct route_option **opts, size_t *n, const char *kv)
{
	struct route_option	*o;
	const char		*eq = strchr(kv, '=');
	char			*key;

	if (eq == NULL || eq == kv)
		return -1;
	if ((o = reallocarray(*opts, *n + 1, sizeof *o)) == NULL)
		err(2, NULL);
	*opts = o;
	if ((key = strndup(kv, (size_t)(eq - kv))) == NULL)
		err(2, NULL);
	o[*n].key = key;
	o[*n].value = eq + 1;
	(*n)++;
	return 0;
}

/* Free the keys cmd_options allocated. */
static void
cmd_route_free_options(struct route_option *opts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)opts[i].key);
	free(opts);
}

/* Print one result line for request root (may be NULL). */
static void
cmd_route_print(const struct result *r, json_t *root)
{
	char	*s;

	if ((s = request_format(r, NULL, r->module != NULL ? r->module->hex :
	    NULL, root)) == NULL)
		errx(1, "out of memory formatting a result");
	puts(s);
	fflush(stdout);
	free(s);
}

/* Serve one line; true if it got a decision. */
static bool
cmd_route_line(struct engine *e, struct module *m, const char *line,
    unsigned long lineno, int timeout_ms)
{
	struct cmd_route_wait	w;
	struct wire_buf		b;
	char			why[DETAIL_MAX - 32];
	json_t			*root = NULL;
	int			 line_timeout;

	memset(&w, 0, sizeof w);
	w.result.module = m;
	if (request_parse(line, &b, &root, &line_timeout, why,
	    sizeof why) == -1) {
		w.result.status = ST_BAD_REQUEST;
		snprintf(w.result.detail, sizeof w.result.detail,
		    "line %lu: %s", lineno, why);
	} else if (engine_call(e, m, b.data, b.len, line_timeout > 0 ?
	    line_timeout : timeout_ms, cmd_route_done, &w) == -1) {
		w.result.status = ST_BAD_REQUEST;
		snprintf(w.result.detail, sizeof w.result.detail,
		    "line %lu: %s", lineno, strerror(errno));
	} else {
		while (!w.done)
			if (engine_run(e, -1) == -1)
				err(1, "event loop");
	}
	wire_free(&b);
	if (w.result.status == ST_BAD_REQUEST &&
	    strncmp(w.result.detail, "line ", 5) != 0) {
		char	detail[DETAIL_MAX + 32];

		snprintf(detail, sizeof detail, "line %lu: %s", lineno,
		    w.result.detail);
		strlcpy(w.result.detail, detail, sizeof w.result.detail);
	}
	cmd_route_print(&w.result, root);
	json_decref(root);
	return w.result.status == ST_OK;
}

/*
 * route --inline: one line through the plugin in this process; true if it
 * got a decision.  The checks are the engine's: a malformed body is a bad
 * request, an index out of range a bad decision.
 */
static bool
cmd_route_inline_line(struct helper_inline *hi, const char *line,
    unsigned long lineno)
{
	struct result	 r;
	struct wire_buf	 b;
	char		 why[DETAIL_MAX - 32];
	json_t		*root = NULL;
	size_t		 n;
	int		 timeout, decision;

	memset(&r, 0, sizeof r);
	r.status = ST_BAD_REQUEST;
	r.decision = ROUTE_NONE;
	if (request_parse(line, &b, &root, &timeout, why, sizeof why) == -1 ||
	    helper_inline_call(hi, b.data, b.len, &decision, why,
	    sizeof why) == -1)
		snprintf(r.detail, sizeof r.detail, "line %lu: %s", lineno,
		    why);
	else {
		n = json_array_size(json_object_get(root, "consumers"));
		if (decision != ROUTE_NONE && (decision < 0 ||
		    (size_t)decision >= n)) {
			r.status = ST_BAD_DECISION;
			snprintf(r.detail, sizeof r.detail, "plugin returned "
			    "%d for %zu consumer%s", decision, n, n == 1 ? "" :
			    "s");
		} else {
			r.status = ST_OK;
			r.decision = decision;
		}
	}
	wire_free(&b);
	cmd_route_print(&r, root);
	json_decref(root);
	return r.status == ST_OK;
}

/* A line sent to the daemon, waiting for its result to print in order. */
struct cmd_route_pending {
	json_t		*root;
	unsigned long	 lineno;
	bool		 done;
	struct result	 result;
	const char	*error;		/* the library's own status, or NULL */
	char		 version[VERSION_HEX_LEN + 1];
};

/* The library's callback: keep the line's result until its turn. */
static void
cmd_route_answered(void *cookie, const struct rhc_result *rr)
{
	struct cmd_route_pending	*q = cookie;
	static const unsigned char	 zero[RHC_VERSION_LEN];

	q->done = true;
	q->result.decision = rr->decision;
	if (rr->status > (enum rhc_status)ST_LAST) {
		/* connection_lost, cancelled: no daemon answered it. */
		q->result.status = ST_SHUTTING_DOWN;
		q->error = rhc_status_name(rr->status);
	} else
		q->result.status = (enum status)rr->status;
	if (rr->status == RHC_BAD_REQUEST)
		snprintf(q->result.detail, sizeof q->result.detail,
		    "line %lu: %.200s", q->lineno, rr->detail);
	else
		strlcpy(q->result.detail, rr->detail, sizeof q->result.detail);
	if (memcmp(rr->version, zero, RHC_VERSION_LEN) != 0)
		rhc_version_hex(rr->version, q->version);
}

/* Parse input line lineno into slot q's request rq; false if bad. */
static bool
cmd_route_parse(struct cmd_route_pending *q, struct rhc_request *rq,
    const char *line, size_t len, unsigned long lineno, int timeout_ms)
{
	json_error_t	jerr;
	json_t		*t;

	memset(q, 0, sizeof q[0]);
	q->lineno = lineno;
	q->result.status = ST_BAD_REQUEST;
	if (strlen(line) != len) {
		snprintf(q->result.detail, sizeof q->result.detail,
		    "line %lu: holds a NUL byte", lineno);
		return false;
	}
	rhc_request_clear(rq);
	if (rhc_request_json(rq, line) == -1) {
		snprintf(q->result.detail, sizeof q->result.detail,
		    "line %lu: %s", lineno, rhc_request_error(rq));
		/* For the id, if the line has one. */
		q->root = json_loads(line, 0, &jerr);
		return false;
	}
	/* What the result echoes (id) and names (the consumers' ids). */
	q->root = json_loads(line, 0, &jerr);
	t = json_object_get(q->root, "timeout_ms");
	if (!json_is_integer(t) && timeout_ms > 0 &&
	    rhc_request_timeout(rq, (uint32_t)timeout_ms) == -1) {
		snprintf(q->result.detail, sizeof q->result.detail,
		    "line %lu: %s", lineno, rhc_request_error(rq));
		return false;
	}
	return true;
}

/*
 * route -s SOCKET -c CHANNEL: the same JSON lines, through the daemon
 * with the client library (rhc(3)), pipelined up to its window; results
 * print in input order.
 */
static int
cmd_route_daemon(const char *path, const char *channel, int timeout_ms)
{
	struct cmd_route_pending	*ring, *q;
	struct rhc_options		 o;
	struct rhc_conn			*c;
	struct rhc_request		*rq;
	struct pollfd			 pfd[2];
	char				*in = NULL, *nl, *s, *status;
	size_t				 inlen = 0, incap = 0, size, len;
	uint64_t			 head = 0, tail = 0;
	unsigned long			 lineno = 0;
	ssize_t				 n;
	bool				 eof = false;
	int				 rc = 0;

	if (!plugdir_channel_name_ok(channel))
		errx(2, "route: '%s' is not a channel name", channel);
	rhc_options_init(&o);
	if ((c = rhc_conn_new(path, &o)) == NULL ||
	    (rq = rhc_request_new()) == NULL)
		err(2, "route: %s", path);
	/* A status connects once: no daemon there is an error at once. */
	if (rhc_conn_status(c, &status, 10000) == -1)
		errx(2, "route: %s", rhc_conn_error(c));
	free(status);
	size = rhc_conn_window(c) < 1024 ? rhc_conn_window(c) : 1024;
	if ((ring = calloc(size, sizeof *ring)) == NULL)
		err(2, NULL);

	while (!eof || head < tail) {
		/* Print what is done, in order. */
		while (head < tail && ring[head % size].done) {
			q = &ring[head % size];
			if ((s = request_format(&q->result, q->error,
			    q->version[0] != '\0' ? q->version : NULL,
			    q->root)) == NULL)
				errx(1, "out of memory");
			puts(s);
			free(s);
			if (q->result.status != ST_OK)
				rc = 1;
			json_decref(q->root);
			memset(q, 0, sizeof *q);
			head++;
		}
		fflush(stdout);
		if (eof && head == tail)
			break;

		/* Turn complete input lines into calls, within the window. */
		while (tail - head < size && inlen > 0 && (nl = memchr(in,
		    '\n', inlen)) != NULL) {
			*nl = '\0';
			lineno++;
			len = (size_t)(nl - in);
			if (strspn(in, " \t\r") != len) {
				q = &ring[tail % size];
				if (!cmd_route_parse(q, rq, in, len, lineno,
				    timeout_ms))
					q->done = true;
				else if (rhc_conn_submit(c, channel, rq,
				    cmd_route_answered, q) == -1)
					errx(1, "route: %s", rhc_conn_error(c));
				tail++;
			}
			memmove(in, nl + 1, inlen - len - 1);
			inlen -= len + 1;
		}

		pfd[0].fd = eof || tail - head >= size ? -1 : STDIN_FILENO;
		pfd[0].events = POLLIN;
		pfd[1].fd = rhc_conn_fd(c);
		pfd[1].events = (short)rhc_conn_events(c);
		pfd[1].revents = 0;
		if (poll(pfd, 2, rhc_conn_timeout(c)) == -1 && errno != EINTR)
			err(1, "route: poll");
		if (pfd[0].revents != 0) {
			if (incap - inlen < 65536) {
				incap += 65536;
				if (incap > CMD_ROUTE_LINE_MAX + 65536)
					errx(1, "route: line %lu over %u bytes",
					    lineno + 1, CMD_ROUTE_LINE_MAX);
				if ((in = realloc(in, incap)) == NULL)
					err(1, NULL);
			}
			n = read(STDIN_FILENO, in + inlen, incap - inlen - 1);
			if (n > 0)
				inlen += (size_t)n;
			else if (n == 0 || errno != EINTR) {
				eof = true;
				if (inlen > 0 && in[inlen - 1] != '\n')
					in[inlen++] = '\n';
			}
		}
		(void)rhc_conn_process(c, pfd[1].fd != -1 ? pfd[1].revents : 0);
	}
	free(in);
	free(ring);
	rhc_request_free(rq);
	rhc_conn_free(c);
	return rc;
}

/* route-host route --plugin FILE [--timeout MS] [--option KEY=VALUE]... */
int
cmd_route(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "plugin", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "option", required_argument, NULL, 'o' },
		{ "socket", required_argument, NULL, 's' },
		{ "channel", required_argument, NULL, 'c' },
		{ "inline", no_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char		*socket = NULL, *channel = NULL;
	struct engine_config	 conf;
	struct engine		*e = NULL;
	struct module		*m = NULL;
	struct helper_inline	*hi = NULL;
	bool			 inl = false;
	struct route_option	*opts = NULL;
	size_t			 nopts = 0, cap = 0;
	const char		*plugin = NULL, *errstr;
	char			 errbuf[DETAIL_MAX], *line = NULL;
	ssize_t			 len;
	unsigned long		 lineno = 0;
	int			 ch, timeout_ms = 0, rc = 0;

	engine_defaults(&conf);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "p:t:o:s:c:", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			socket = optarg;
			break;
		case 'c':
			channel = optarg;
			break;
		case 'i':
			inl = true;
			break;
		case 'p':
			plugin = optarg;
			break;
		case 't':
			timeout_ms = (int)strtonum(optarg, 1, 3600000, &errstr);
			if (errstr != NULL)
				errx(2, "route: --timeout %s: %s (1 to 3600000 "
				    "ms)", optarg, errstr);
			break;
		case 'o':
			if (cmd_options(&opts, &nopts, optarg) == -1)
				errx(2, "route: --option '%s': expected "
				    "KEY=VALUE", optarg);
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	if (socket != NULL || channel != NULL) {
		if (socket == NULL || channel == NULL || plugin != NULL ||
		    nopts != 0 || inl)
			goto usage;
		return cmd_route_daemon(socket, channel, timeout_ms);
	}
	if (plugin == NULL)
		goto usage;
	if (timeout_ms > 0)
		conf.timeout_ms = timeout_ms;
	conf.log = cmd_log;

	if (inl) {
		warnx("route: --inline: %s runs in this process, NOT "
		    "CONTAINED: no helper, no sandbox, no deadline; a crash "
		    "or a hang is this command's.  For debuggers, valgrind "
		    "and sanitizers only.", plugin);
		if ((hi = helper_inline_open(plugin, opts, nopts, errbuf,
		    sizeof errbuf)) == NULL)
			errx(2, "route: %s: %s", plugin, errbuf);
	} else if ((e = engine_new(&conf, errbuf, sizeof errbuf)) == NULL)
		errx(2, "route: %s", errbuf);
	else if (engine_load(e, plugin, NULL, opts, nopts, &m, errbuf,
	    sizeof errbuf) == -1) {
		engine_free(e);
		errx(2, "route: %s", errbuf);
	}
	while ((len = getline(&line, &cap, stdin)) != -1) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (strspn(line, " \t\r") == (size_t)len)
			continue;
		if ((size_t)len > CMD_ROUTE_LINE_MAX) {
			struct result	r = { .status = ST_BAD_REQUEST,
			    .module = m };

			snprintf(r.detail, sizeof r.detail, "line %lu: %zd "
			    "bytes, over the %u-byte limit", lineno, len,
			    CMD_ROUTE_LINE_MAX);
			cmd_route_print(&r, NULL);
			rc = 1;
			continue;
		}
		if (strlen(line) != (size_t)len) {
			struct result	r = { .status = ST_BAD_REQUEST,
			    .module = m };

			snprintf(r.detail, sizeof r.detail, "line %lu: holds "
			    "a NUL byte", lineno);
			cmd_route_print(&r, NULL);
			rc = 1;
			continue;
		}
		if (hi != NULL ? !cmd_route_inline_line(hi, line, lineno) :
		    !cmd_route_line(e, m, line, lineno, timeout_ms))
			rc = 1;
	}
	if (ferror(stdin))
		warn("route: reading standard input");
	free(line);
	if (hi != NULL)
		helper_inline_close(hi);
	else {
		engine_release(e, m);
		engine_free(e);
	}
	cmd_route_free_options(opts, nopts);
	return rc;

usage:
	fprintf(stderr, "usage: route-host route --plugin FILE [--inline] "
	    "[--timeout MS] [--option KEY=VALUE]...\n"
	    "       route-host route -s SOCKET -c CHANNEL [--timeout MS]\n");
	return 2;
}
