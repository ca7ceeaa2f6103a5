/*
 * route-host route: read JSON requests on standard input, one per line,
 * route each through a plugin in a supervised helper, and write one JSON
 * result per line.  Exit 0 when every line got a decision, 1 when any got
 * an error, 2 for bad usage or an unreadable plugin.
 */

#include "config.h"

#include <getopt.h>
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

	if ((s = request_format(r, root)) == NULL)
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

/* route-host route --plugin FILE [--timeout MS] [--option KEY=VALUE]... */
int
cmd_route(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "plugin", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "option", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
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
	while ((ch = getopt_long(argc, argv, "p:t:o:", longopts, NULL)) != -1) {
		switch (ch) {
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
	if (plugin == NULL || optind != argc)
		goto usage;
	if (timeout_ms > 0)
		conf.timeout_ms = timeout_ms;

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
	    "[--option KEY=VALUE]...\n");
	return 2;
}
