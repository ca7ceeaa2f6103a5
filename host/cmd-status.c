/* SPDX-License-Identifier: ISC */
/*
 * route-host status: a running daemon's channels, versions and helpers,
 * as a table for people or, with --json, as the daemon's JSON.
 */

#include "config.h"

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <libutil.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "route-host.h"
#include "route-host/client.h"

#define CMD_STATUS_WAIT_MS	10000	/* for a daemon's answer */

/*
 * Ask the daemon at path for its status (libroute-host-client); NULL with
 * err set.  No daemon there is an error at once; one that does not answer
 * within CMD_STATUS_WAIT_MS, then.
 */
static json_t *
cmd_status_fetch(const char *path, char *err, size_t errlen)
{
	struct rhc_conn	*c;
	json_error_t	 je;
	json_t		*j;
	char		*text;

	if ((c = rhc_conn_new(path, NULL)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (rhc_conn_fd(c) == -1 ||
	    rhc_conn_status(c, &text, CMD_STATUS_WAIT_MS) == -1) {
		snprintf(err, errlen, "%s", rhc_conn_error(c));
		rhc_conn_free(c);
		return NULL;
	}
	rhc_conn_free(c);
	j = json_loads(text, 0, &je);
	free(text);
	if (j == NULL)
		snprintf(err, errlen, "%s: status is not JSON: %s", path,
		    je.text);
	return j;
}

/* Say that version v is in a crash loop: since when, what it cost. */
static void
cmd_status_loop(json_t *v)
{
	time_t		 since = (time_t)(json_integer_value(json_object_get(v,
			     "crash_loop_since")) / 1000);
	struct tm	 tm;
	char		 when[32] = "?";

	if (gmtime_r(&since, &tm) != NULL)
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%16s %.12s: crash loop since %s: %lld helpers crashed, %lld "
	    "calls answered crash_loop\n", "", json_string_value(
	    json_object_get(v, "version")), when,
	    json_integer_value(json_object_get(v, "helper_crashes")),
	    json_integer_value(json_object_get(v, "crash_loop")));
}

/* A JSON number of bytes in at most 7 characters, "8.0 MiB" (humanize_number(3)). */
static void
cmd_status_bytes(char buf[16], json_t *n)
{
	if (humanize_number(buf, 8, json_integer_value(n), "B",
	    HN_AUTOSCALE, HN_DECIMAL | HN_IEC_PREFIXES) == -1)
		strlcpy(buf, "?", 16);
}

/* The daemon's uptime and last reload, on one line. */
static void
cmd_status_daemon(json_t *j)
{
	json_t		*r = json_object_get(j, "last_reload");
	long long	 up = json_integer_value(json_object_get(j, "uptime_s"));
	time_t		 at;
	char		 when[64] = "";

	printf("up %lldd %02lld:%02lld:%02lld", up / 86400, up / 3600 % 24,
	    up / 60 % 60, up % 60);
	if (json_is_object(r)) {
		at = (time_t)json_integer_value(json_object_get(r, "at"));
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S",
		    localtime(&at));
		if (json_is_true(json_object_get(r, "ok")))
			printf("; %lld reloads, the last at %s: ok",
			    json_integer_value(json_object_get(j, "reloads")),
			    when);
		else
			printf("; %lld reloads, the last at %s FAILED: %s",
			    json_integer_value(json_object_get(j, "reloads")),
			    when, json_string_value(json_object_get(r,
			    "error")));
	}
	putchar('\n');
}

/* Print the status as a table. */
static void
cmd_status_table(json_t *j)
{
	json_t		*chs = json_object_get(j, "channels"), *ch, *vs, *v;
	json_t		*hs, *h;
	size_t		 i, k, x;
	bool		 any_draining = false;
	char		 inflight[16], budget[16], window[16], buffered[16];

	printf("%s, pid %lld, socket %s\nplugins %s: %lld versions loaded, "
	    "%lld helpers, %lld clients, %lld calls in flight\n",
	    json_string_value(json_object_get(j, "server")),
	    json_integer_value(json_object_get(j, "pid")),
	    json_string_value(json_object_get(j, "socket")),
	    json_string_value(json_object_get(j, "plugins")),
	    json_integer_value(json_object_get(j, "versions_loaded")),
	    json_integer_value(json_object_get(j, "helpers")),
	    json_integer_value(json_object_get(j, "clients")),
	    json_integer_value(json_object_get(j, "in_flight")));
	cmd_status_bytes(inflight, json_object_get(j, "bytes_in_flight"));
	cmd_status_bytes(budget, json_object_get(j, "max_in_flight_bytes"));
	cmd_status_bytes(window, json_object_get(j, "window_bytes"));
	cmd_status_bytes(buffered, json_object_get(j, "bytes_buffered"));
	cmd_status_daemon(j);
	printf("connections: %lld of max-connections %lld (%lld refused); "
	    "bytes in flight: %s of %s (window-bytes %s); buffered: %s\n\n",
	    json_integer_value(json_object_get(j, "clients")),
	    json_integer_value(json_object_get(j, "max_connections")),
	    json_integer_value(json_object_get(j, "connections_refused")),
	    inflight, budget, window, buffered);
	printf("%-16s %-12s %8s %9s %8s %9s %6s %8s %8s  %s\n", "CHANNEL",
	    "ACTIVE", "DRAINING", "SERVED", "CRASHED", "TIMED_OUT", "IN_FL",
	    "P50_US", "P99_US", "HELPERS");
	json_array_foreach(chs, i, ch) {
		const char	*active = json_string_value(json_object_get(ch,
				    "active"));
		char		 pids[256] = "";
		int		 draining = 0;

		vs = json_object_get(ch, "versions");
		json_array_foreach(vs, k, v) {
			const char	*state = json_string_value(
					    json_object_get(v, "state"));

			if (strcmp(state, "draining") == 0) {
				draining++;
				any_draining = true;
			}
			hs = json_object_get(v, "helpers");
			json_array_foreach(hs, x, h) {
				const char	*hstate = json_string_value(
						    json_object_get(h, "state"));
				char		 one[32];

				/* * not the active version, ~ a spare. */
				snprintf(one, sizeof one, "%s%lld%s%s",
				    pids[0] != '\0' ? " " : "",
				    json_integer_value(json_object_get(h,
				    "pid")), strcmp(state, "active") == 0 ?
				    "" : "*", hstate != NULL &&
				    strcmp(hstate, "standby") == 0 ? "~" : "");
				strlcat(pids, one, sizeof pids);
			}
		}
		printf("%-16s %-12.12s %8d %9lld %8lld %9lld %6lld %8.0f %8.0f"
		    "  %s\n", json_string_value(json_object_get(ch, "channel")),
		    active != NULL ? active : "-", draining,
		    json_integer_value(json_object_get(ch, "served")),
		    json_integer_value(json_object_get(ch, "crashed")),
		    json_integer_value(json_object_get(ch, "timed_out")),
		    json_integer_value(json_object_get(ch, "in_flight")),
		    json_real_value(json_object_get(ch, "p50_us")),
		    json_real_value(json_object_get(ch, "p99_us")),
		    pids[0] != '\0' ? pids : "-");
		if (json_is_string(json_object_get(ch, "error")))
			printf("%16s last deploy: %s\n", "",
			    json_string_value(json_object_get(ch, "error")));
		json_array_foreach(vs, k, v)
			if (json_is_integer(json_object_get(v,
			    "crash_loop_since")))
				cmd_status_loop(v);
		json_array_foreach(vs, k, v)
			if (json_is_string(json_object_get(v, "last_crash")))
				printf("%16s %.12s: %lld crashed, last: %s\n",
				    "", json_string_value(json_object_get(v,
				    "version")), json_integer_value(
				    json_object_get(v, "crashed")),
				    json_string_value(json_object_get(v,
				    "last_crash")));
		json_array_foreach(vs, k, v)
			if (json_integer_value(json_object_get(v,
			    "violations")) > 0)
				printf("%16s %.12s: %lld killed by the sandbox, "
				    "last: %s\n", "", json_string_value(
				    json_object_get(v, "version")),
				    json_integer_value(json_object_get(v,
				    "violations")), json_string_value(
				    json_object_get(v, "last_violation")));
	}
	json_array_foreach(json_object_get(j, "refused"), i, v)
		printf("refused: %s: %s\n", json_string_value(json_object_get(v,
		    "file")), json_string_value(json_object_get(v, "error")));
	if (json_array_size(chs) == 0)
		printf("(no channels: put NAME.so files in the plugins "
		    "directory)\n");
	else if (any_draining)
		printf("\n* a draining version's helper\n");
}

/* Print usage; exit 2. */
static int
cmd_status_usage(void)
{
	fprintf(stderr, "usage: route-host status [-c CONFIG | -s SOCKET] "
	    "[--json | --openmetrics]\n");
	return 2;
}

/* route-host status [-c CONFIG | -s SOCKET] [--json | --openmetrics] */
int
cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "openmetrics", no_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	struct conf	 conf;
	const char	*path = NULL, *confpath = DEFAULT_CONF;
	char		 errbuf[512] = "";
	bool		 as_json = false, as_om = false, conf_given = false;
	json_t		*j;
	int		 ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:s:jm", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			confpath = optarg;
			conf_given = true;
			break;
		case 's':
			path = optarg;
			break;
		case 'j':
			as_json = true;
			break;
		case 'm':
			as_om = true;
			break;
		default:
			return cmd_status_usage();
		}
	}
	if (optind != argc || (path != NULL && conf_given) ||
	    (as_json && as_om))
		return cmd_status_usage();
	/* The socket serve uses: the one its configuration names. */
	conf_defaults(&conf);
	if (path == NULL && (conf_given || access(confpath, F_OK) == 0) &&
	    conf_load(&conf, confpath, errbuf, sizeof errbuf) == -1)
		errx(1, "status: %s", errbuf);
	if (path == NULL)
		path = conf.socket;
	errno = 0;
	if ((j = cmd_status_fetch(path, errbuf, sizeof errbuf)) == NULL)
		errx(1, "status: %s", errbuf);
	if (as_om)
		metrics_write(stdout, j);
	else if (as_json) {
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else
		cmd_status_table(j);
	json_decref(j);
	conf_free(&conf);
	return 0;
}
