/* SPDX-License-Identifier: ISC */
/*
 * route-host route: read JSON requests on standard input, one per line,
 * route each through a plugin in a supervised helper, and write one JSON
 * result per line.  Exit 0 when every line got a decision, 1 when any got
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

	if ((s = request_format(r, r->module != NULL ? r->module->hex : NULL,
	    root)) == NULL)
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

/* A line sent to the daemon, waiting for its result to print in order. */
struct cmd_route_pending {
	json_t		*root;
	unsigned long	 lineno;
	bool		 done;
	struct result	 result;
	char		 version[VERSION_HEX_LEN + 1];
};

/* Take one result frame from the daemon into the pending ring. */
static void
cmd_route_take(struct cmd_route_pending *ring, size_t size, uint64_t head,
    uint64_t tail, const unsigned char *p, size_t len)
{
	struct proto_result		 pr;
	struct cmd_route_pending	*q;
	static const unsigned char	 zero[VERSION_LEN];

	if (proto_decode_result(p, len, &pr) == -1)
		errx(1, "route: malformed result from the daemon");
	if (pr.id < head || pr.id >= tail)
		errx(1, "route: result for unknown request %llu",
		    (unsigned long long)pr.id);
	q = &ring[pr.id % size];
	q->done = true;
	q->result.status = (enum status)pr.status;
	q->result.decision = pr.decision;
	if (pr.status == ST_BAD_REQUEST)
		snprintf(q->result.detail, sizeof q->result.detail,
		    "line %lu: %.200s", q->lineno, pr.detail);
	else
		strlcpy(q->result.detail, pr.detail, sizeof q->result.detail);
	if (memcmp(pr.version, zero, VERSION_LEN) != 0)
		version_hex(pr.version, q->version);
}

/*
 * route -s SOCKET -c CHANNEL: the same JSON lines, through the daemon,
 * pipelined up to its window; results print in input order.
 */
static int
cmd_route_daemon(const char *path, const char *channel, int timeout_ms)
{
	struct cmd_route_pending	*ring, *q;
	struct client_conn		 cc;
	struct wire_buf			 out;
	struct pollfd			 pfd[2];
	const unsigned char		*p;
	char				 errbuf[DETAIL_MAX], why[DETAIL_MAX - 32];
	char				*in = NULL, *nl, *s;
	size_t				 inlen = 0, incap = 0, size, len;
	uint64_t			 head = 0, tail = 0;
	unsigned long			 lineno = 0;
	ssize_t				 n;
	uint8_t				 type;
	bool				 eof = false;
	int				 rc = 0, line_timeout;

	if (!plugdir_channel_name_ok(channel))
		errx(2, "route: '%s' is not a channel name", channel);
	if (client_connect(&cc, path, errbuf, sizeof errbuf) == -1)
		errx(2, "route: %s", errbuf);
	size = cc.window < 1024 ? cc.window : 1024;
	if ((ring = calloc(size, sizeof *ring)) == NULL)
		err(2, NULL);
	wire_init(&out);
	out.max = SIZE_MAX / 2;

	while (!eof || head < tail) {
		/* Print what is done, in order. */
		while (head < tail && ring[head % size].done) {
			q = &ring[head % size];
			if ((s = request_format(&q->result, q->version[0] !=
			    '\0' ? q->version : NULL, q->root)) == NULL)
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

		/* Turn complete input lines into requests, within the window. */
		while (tail - head < size && inlen > 0 && (nl = memchr(in,
		    '\n', inlen)) != NULL) {
			struct wire_buf	b;

			*nl = '\0';
			lineno++;
			q = &ring[tail % size];
			memset(q, 0, sizeof *q);
			q->lineno = lineno;
			if (strlen(in) != (size_t)(nl - in)) {
				q->done = true;
				q->result.status = ST_BAD_REQUEST;
				snprintf(q->result.detail,
				    sizeof q->result.detail, "line %lu: holds "
				    "a NUL byte", lineno);
				tail++;
			} else if (strspn(in, " \t\r") != (size_t)(nl - in)) {
				if (request_parse(in, &b, &q->root,
				    &line_timeout, why, sizeof why) == -1) {
					q->done = true;
					q->result.status = ST_BAD_REQUEST;
					snprintf(q->result.detail,
					    sizeof q->result.detail,
					    "line %lu: %s", lineno, why);
				} else {
					struct wire_buf	f;

					wire_init(&f);
					proto_route(&f, tail, (uint32_t)
					    (line_timeout > 0 ? line_timeout :
					    timeout_ms), channel, b.data,
					    b.len);
					wire_bytes(&out, f.data, f.len);
					wire_free(&f);
				}
				wire_free(&b);
				tail++;
			}
			len = (size_t)(nl - in) + 1;
			memmove(in, nl + 1, inlen - len);
			inlen -= len;
		}
		if (out.len > 0) {
			if (client_send(&cc, &out) == -1)
				errx(1, "route: %s: %s", path, strerror(errno));
			out.len = 0;
		}

		pfd[0].fd = eof || tail - head >= size ? -1 : STDIN_FILENO;
		pfd[0].events = POLLIN;
		pfd[1].fd = cc.fd;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) == -1 && errno != EINTR)
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
		if (pfd[1].revents != 0) {
			int	got;

			while ((got = client_frame(&cc, false, &type, &p, &len,
			    errbuf, sizeof errbuf)) == 1) {
				if (type != PROTO_RESULT)
					errx(1, "route: unexpected frame type "
					    "%#x from the daemon", type);
				cmd_route_take(ring, size, head, tail, p, len);
			}
			if (got == -1)
				errx(1, "route: %s", errbuf);
		}
	}
	free(in);
	free(ring);
	wire_free(&out);
	client_close(&cc);
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
		{ NULL, 0, NULL, 0 },
	};
	const char		*socket = NULL, *channel = NULL;
	struct engine_config	 conf;
	struct engine		*e;
	struct module		*m;
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
		    nopts != 0)
			goto usage;
		return cmd_route_daemon(socket, channel, timeout_ms);
	}
	if (plugin == NULL)
		goto usage;
	if (timeout_ms > 0)
		conf.timeout_ms = timeout_ms;
	conf.log = cmd_log;

	if ((e = engine_new(&conf, errbuf, sizeof errbuf)) == NULL)
		errx(2, "route: %s", errbuf);
	if (engine_load(e, plugin, NULL, opts, nopts, &m, errbuf,
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
		if (!cmd_route_line(e, m, line, lineno, timeout_ms))
			rc = 1;
	}
	if (ferror(stdin))
		warn("route: reading standard input");
	free(line);
	engine_release(e, m);
	engine_free(e);
	cmd_route_free_options(opts, nopts);
	return rc;

usage:
	fprintf(stderr, "usage: route-host route --plugin FILE [--timeout MS] "
	    "[--option KEY=VALUE]...\n"
	    "       route-host route -s SOCKET -c CHANNEL [--timeout MS]\n");
	return 2;
}
