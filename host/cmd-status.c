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

/* Ask the daemon at path for its status; NULL with err set. */
static json_t *
cmd_status_fetch(const char *path, char *err, size_t errlen)
{
	struct client_conn	 cc;
	struct wire_buf		 b;
	struct wire_reader	 r;
	const unsigned char	*p;
	const char		*text;
	size_t			 len;
	uint32_t		 n;
	uint8_t			 type;
	json_error_t		 je;
	json_t			*j;

	if (client_connect(&cc, path, err, errlen) == -1)
		return NULL;
	wire_init(&b);
	wire_frame_begin(&b, PROTO_STATUS);
	wire_u64(&b, 1);
	wire_frame_end(&b);
	if (client_send(&cc, &b) == -1 ||
	    client_frame(&cc, true, &type, &p, &len, err, errlen) != 1) {
		if (errno != 0 && err[0] == '\0')
			snprintf(err, errlen, "%s", strerror(errno));
		wire_free(&b);
		client_close(&cc);
		return NULL;
	}
	wire_free(&b);
	wire_reader_init(&r, p, len);
	(void)wire_read_u64(&r);
	n = wire_read_u32(&r);
	text = wire_read_bytes(&r, n);
	if (type != PROTO_STATUS_REPLY || text == NULL ||
	    !wire_reader_done(&r)) {
		snprintf(err, errlen, "%s: malformed status reply", path);
		client_close(&cc);
		return NULL;
	}
	j = json_loadb(text, n, 0, &je);
	client_close(&cc);
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

/* One OpenMetrics sample: NAME{LABELS} VALUE. */
static void
cmd_status_sample(const char *name, const char *labels, double value)
{
	printf("%s%s%s%s %.17g\n", name, labels[0] != '\0' ? "{" : "", labels,
	    labels[0] != '\0' ? "}" : "", value);
}

/* A metric's TYPE and HELP lines. */
static void
cmd_status_family(const char *name, const char *type, const char *help)
{
	printf("# TYPE %s %s\n# HELP %s %s\n", name, type, name, help);
}

/* A JSON integer of o's key, as a double. */
static double
cmd_status_num(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	return json_is_boolean(v) ? (json_is_true(v) ? 1 : 0) :
	    json_number_value(v);
}

/* The daemon's own gauges and counters. */
static void
cmd_status_om_daemon(json_t *j)
{
	static const struct {
		const char	*name, *type, *key, *help;
	} m[] = {
		{ "route_host_uptime_seconds", "gauge", "uptime_s",
		  "Seconds since the daemon started." },
		{ "route_host_connections", "gauge", "clients",
		  "Broker connections open." },
		{ "route_host_max_connections", "gauge", "max_connections",
		  "The max-connections setting." },
		{ "route_host_connections_refused", "counter",
		  "connections_refused", "Connections refused (limits, allow "
		  "lists)." },
		{ "route_host_calls_in_flight", "gauge", "in_flight",
		  "ROUTE calls in flight." },
		{ "route_host_max_in_flight", "gauge", "max_in_flight",
		  "The max-in-flight setting." },
		{ "route_host_call_bytes", "gauge", "bytes_in_flight",
		  "Bytes of calls held, against max-in-flight-bytes." },
		{ "route_host_max_in_flight_bytes", "gauge",
		  "max_in_flight_bytes", "The max-in-flight-bytes setting." },
		{ "route_host_buffered_bytes", "gauge", "bytes_buffered",
		  "Bytes in connection buffers." },
		{ "route_host_versions_loaded", "gauge", "versions_loaded",
		  "Plugin versions held." },
		{ "route_host_helpers", "gauge", "helpers",
		  "Helper processes not yet reaped." },
		{ "route_host_reloads", "counter", "reloads",
		  "Reloads (SIGHUP) done." },
	};
	json_t	*r = json_object_get(j, "last_reload");
	char	 name[96];

	for (size_t i = 0; i < nitems(m); i++) {
		cmd_status_family(m[i].name, m[i].type, m[i].help);
		snprintf(name, sizeof name, "%s%s", m[i].name,
		    strcmp(m[i].type, "counter") == 0 ? "_total" : "");
		cmd_status_sample(name, "", cmd_status_num(j, m[i].key));
	}
	cmd_status_family("route_host_last_reload_success", "gauge",
	    "1 if the last reload succeeded, 0 if it failed.");
	cmd_status_sample("route_host_last_reload_success", "",
	    json_is_object(r) ? cmd_status_num(r, "ok") : 1);
	cmd_status_family("route_host_last_reload_timestamp_seconds", "gauge",
	    "When the last reload was, 0 for none.");
	cmd_status_sample("route_host_last_reload_timestamp_seconds", "",
	    json_is_object(r) ? cmd_status_num(r, "at") : 0);
}

/* Per channel: answers by status, in flight, deploys, latency. */
static void
cmd_status_om_channels(json_t *chs)
{
	json_t		*ch, *b, *v, *vs;
	const char	*status;
	char		 labels[256];
	double		 cum;
	size_t		 i, k;

	cmd_status_family("route_host_calls", "counter",
	    "ROUTE calls ended, by channel and status.");
	json_array_foreach(chs, i, ch)
		json_object_foreach(json_object_get(ch, "results"), status, v) {
			snprintf(labels, sizeof labels, "channel=\"%s\","
			    "status=\"%s\"", json_string_value(
			    json_object_get(ch, "channel")), status);
			cmd_status_sample("route_host_calls_total", labels,
			    json_number_value(v));
		}
	cmd_status_family("route_host_channel_calls_in_flight", "gauge",
	    "ROUTE calls in flight, by channel.");
	json_array_foreach(chs, i, ch) {
		snprintf(labels, sizeof labels, "channel=\"%s\"",
		    json_string_value(json_object_get(ch, "channel")));
		cmd_status_sample("route_host_channel_calls_in_flight", labels,
		    cmd_status_num(ch, "in_flight"));
	}
	cmd_status_family("route_host_channel_deploys", "counter",
	    "Versions deployed to the channel.");
	json_array_foreach(chs, i, ch) {
		snprintf(labels, sizeof labels, "channel=\"%s\"",
		    json_string_value(json_object_get(ch, "channel")));
		cmd_status_sample("route_host_channel_deploys_total", labels,
		    cmd_status_num(ch, "deploys"));
	}
	cmd_status_family("route_host_call_duration_seconds", "histogram",
	    "Time from reading a ROUTE to its ok result, by channel.");
	json_array_foreach(chs, i, ch) {
		cum = 0;
		json_array_foreach(json_object_get(ch, "latency_histogram"), k,
		    b) {
			cum += cmd_status_num(b, "count");
			snprintf(labels, sizeof labels, "channel=\"%s\","
			    "le=\"%g\"", json_string_value(json_object_get(ch,
			    "channel")), (cmd_status_num(b, "to_us") + 1) / 1e6);
			cmd_status_sample("route_host_call_duration_seconds_"
			    "bucket", labels, cum);
		}
		snprintf(labels, sizeof labels, "channel=\"%s\",le=\"+Inf\"",
		    json_string_value(json_object_get(ch, "channel")));
		cmd_status_sample("route_host_call_duration_seconds_bucket",
		    labels, cum);
		snprintf(labels, sizeof labels, "channel=\"%s\"",
		    json_string_value(json_object_get(ch, "channel")));
		cmd_status_sample("route_host_call_duration_seconds_count",
		    labels, cum);
		cmd_status_sample("route_host_call_duration_seconds_sum",
		    labels, cmd_status_num(ch, "latency_sum_us") / 1e6);
	}
	cmd_status_family("route_host_version_helpers", "gauge",
	    "Helpers of a version, by state.");
	json_array_foreach(chs, i, ch) {
		vs = json_object_get(ch, "versions");
		json_array_foreach(vs, k, v) {
			snprintf(labels, sizeof labels, "channel=\"%s\","
			    "version=\"%.12s\",state=\"%s\"",
			    json_string_value(json_object_get(ch, "channel")),
			    json_string_value(json_object_get(v, "version")),
			    json_string_value(json_object_get(v, "state")));
			cmd_status_sample("route_host_version_helpers", labels,
			    (double)json_array_size(json_object_get(v,
			    "helpers")));
		}
	}
	cmd_status_family("route_host_version_sandbox_kills", "counter",
	    "Helpers of a version the sandbox killed.");
	json_array_foreach(chs, i, ch) {
		vs = json_object_get(ch, "versions");
		json_array_foreach(vs, k, v) {
			snprintf(labels, sizeof labels, "channel=\"%s\","
			    "version=\"%.12s\"",
			    json_string_value(json_object_get(ch, "channel")),
			    json_string_value(json_object_get(v, "version")));
			cmd_status_sample("route_host_version_sandbox_kills_"
			    "total", labels, cmd_status_num(v, "violations"));
		}
	}
}

/*
 * The status as OpenMetrics text (what Prometheus scrapes): the daemon's
 * figures, then each channel's and version's, then "# EOF".
 */
static void
cmd_status_openmetrics(json_t *j)
{
	cmd_status_om_daemon(j);
	cmd_status_om_channels(json_object_get(j, "channels"));
	printf("# EOF\n");
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
		cmd_status_openmetrics(j);
	else if (as_json) {
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else
		cmd_status_table(j);
	json_decref(j);
	conf_free(&conf);
	return 0;
}
