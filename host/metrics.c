/* SPDX-License-Identifier: ISC */
/*
 * Metrics: the daemon's status as OpenMetrics text, for `status
 * --openmetrics` and for Prometheus over HTTP (the metrics-listen setting).
 *
 * The page is written from server_status's JSON, so the socket's status
 * and the scrape always agree.  The HTTP side is libmicrohttpd driven by
 * the daemon's own loop: no thread, its epoll descriptor watched like any
 * other and its timeout kept on one loop timer.  It answers GET (and HEAD)
 * of /metrics and nothing else, to at most METRICS_CONNECTIONS clients at
 * once, each cut off after METRICS_IDLE_S seconds idle and held to
 * METRICS_CONN_MEMORY bytes of request, and the page is made at most once
 * every METRICS_PAGE_MS: scrapers, however many and however fast, cost the
 * daemon a page a second, never more.
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <jansson.h>
#ifdef HAVE_MICROHTTPD
#include <microhttpd.h>
#endif

#include "route-host.h"

#define METRICS_CONNECTIONS	16	/* scrapers at once */
#define METRICS_IDLE_S		10	/* an idle scraper is cut off */
#define METRICS_CONN_MEMORY	(16 << 10)	/* a request's headers */
#define METRICS_PAGE_MS		1000	/* a page made is served this long */
#define METRICS_TYPE	"application/openmetrics-text; version=1.0.0; " \
			"charset=utf-8"

/* One OpenMetrics sample: NAME{LABELS} VALUE. */
static void
metrics_sample(FILE *f, const char *name, const char *labels, double value)
{
	fprintf(f, "%s%s%s%s %.17g\n", name, labels[0] != '\0' ? "{" : "", labels,
	    labels[0] != '\0' ? "}" : "", value);
}

/* A metric's TYPE and HELP lines. */
static void
metrics_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# TYPE %s %s\n# HELP %s %s\n", name, type, name, help);
}

/* A JSON integer of o's key, as a double. */
static double
metrics_num(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	return json_is_boolean(v) ? (json_is_true(v) ? 1 : 0) :
	    json_number_value(v);
}

/* The daemon's own gauges and counters. */
static void
metrics_daemon(FILE *f, json_t *j)
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
		metrics_family(f, m[i].name, m[i].type, m[i].help);
		snprintf(name, sizeof name, "%s%s", m[i].name,
		    strcmp(m[i].type, "counter") == 0 ? "_total" : "");
		metrics_sample(f, name, "", metrics_num(j, m[i].key));
	}
	metrics_family(f, "route_host_last_reload_success", "gauge",
	    "1 if the last reload succeeded, 0 if it failed.");
	metrics_sample(f, "route_host_last_reload_success", "",
	    json_is_object(r) ? metrics_num(r, "ok") : 1);
	metrics_family(f, "route_host_last_reload_timestamp_seconds", "gauge",
	    "When the last reload was, 0 for none.");
	metrics_sample(f, "route_host_last_reload_timestamp_seconds", "",
	    json_is_object(r) ? metrics_num(r, "at") : 0);
}

/* A channel's plain figures: one sample each, labelled by channel. */
static const struct {
	const char	*name, *type, *key, *help;
} metrics_per_channel[] = {
	{ "route_host_channel_calls_in_flight", "gauge", "in_flight",
	  "ROUTE calls in flight, by channel." },
	{ "route_host_channel_deploys", "counter", "deploys",
	  "Versions deployed to the channel." },
	{ "route_host_channel_deploy_failures", "counter", "deploy_failures",
	  "Versions that failed to deploy to the channel." },
};

/* Per channel: answers by status, in flight, deploys, latency. */
static void
metrics_channels(FILE *f, json_t *chs)
{
	json_t		*ch, *b, *v, *vs;
	const char	*status;
	char		 labels[256], name[96];
	double		 cum;
	size_t		 i, k;

	metrics_family(f, "route_host_calls", "counter",
	    "ROUTE calls ended, by channel and status.");
	json_array_foreach(chs, i, ch)
		json_object_foreach(json_object_get(ch, "results"), status, v) {
			snprintf(labels, sizeof labels, "channel=\"%s\","
			    "status=\"%s\"", json_string_value(
			    json_object_get(ch, "channel")), status);
			metrics_sample(f, "route_host_calls_total", labels,
			    json_number_value(v));
		}
	for (size_t m = 0; m < nitems(metrics_per_channel); m++) {
		metrics_family(f, metrics_per_channel[m].name,
		    metrics_per_channel[m].type, metrics_per_channel[m].help);
		snprintf(name, sizeof name, "%s%s", metrics_per_channel[m].name,
		    strcmp(metrics_per_channel[m].type, "counter") == 0 ?
		    "_total" : "");
		json_array_foreach(chs, i, ch) {
			snprintf(labels, sizeof labels, "channel=\"%s\"",
			    json_string_value(json_object_get(ch, "channel")));
			metrics_sample(f, name, labels, metrics_num(ch,
			    metrics_per_channel[m].key));
		}
	}
	metrics_family(f, "route_host_call_duration_seconds", "histogram",
	    "Time from reading a ROUTE to its ok result, by channel.");
	json_array_foreach(chs, i, ch) {
		cum = 0;
		json_array_foreach(json_object_get(ch, "latency_histogram"), k,
		    b) {
			cum += metrics_num(b, "count");
			snprintf(labels, sizeof labels, "channel=\"%s\","
			    "le=\"%g\"", json_string_value(json_object_get(ch,
			    "channel")), (metrics_num(b, "to_us") + 1) / 1e6);
			metrics_sample(f, "route_host_call_duration_seconds_"
			    "bucket", labels, cum);
		}
		snprintf(labels, sizeof labels, "channel=\"%s\",le=\"+Inf\"",
		    json_string_value(json_object_get(ch, "channel")));
		metrics_sample(f, "route_host_call_duration_seconds_bucket",
		    labels, cum);
		snprintf(labels, sizeof labels, "channel=\"%s\"",
		    json_string_value(json_object_get(ch, "channel")));
		metrics_sample(f, "route_host_call_duration_seconds_count",
		    labels, cum);
		metrics_sample(f, "route_host_call_duration_seconds_sum",
		    labels, metrics_num(ch, "latency_sum_us") / 1e6);
	}
	metrics_family(f, "route_host_version_helpers", "gauge",
	    "Helpers of a version, by state.");
	json_array_foreach(chs, i, ch) {
		vs = json_object_get(ch, "versions");
		json_array_foreach(vs, k, v) {
			snprintf(labels, sizeof labels, "channel=\"%s\","
			    "version=\"%.12s\",state=\"%s\"",
			    json_string_value(json_object_get(ch, "channel")),
			    json_string_value(json_object_get(v, "version")),
			    json_string_value(json_object_get(v, "state")));
			metrics_sample(f, "route_host_version_helpers", labels,
			    (double)json_array_size(json_object_get(v,
			    "helpers")));
		}
	}
	metrics_family(f, "route_host_version_sandbox_kills", "counter",
	    "Helpers of a version the sandbox killed.");
	json_array_foreach(chs, i, ch) {
		vs = json_object_get(ch, "versions");
		json_array_foreach(vs, k, v) {
			snprintf(labels, sizeof labels, "channel=\"%s\","
			    "version=\"%.12s\"",
			    json_string_value(json_object_get(ch, "channel")),
			    json_string_value(json_object_get(v, "version")));
			metrics_sample(f, "route_host_version_sandbox_kills_"
			    "total", labels, metrics_num(v, "violations"));
		}
	}
}

/*
 * The status (server_status's JSON) as OpenMetrics text, what Prometheus
 * scrapes: the daemon's figures, then each channel's and version's, then
 * "# EOF".  -1 if f failed.
 */
int
metrics_write(FILE *f, json_t *j)
{
	metrics_daemon(f, j);
	metrics_channels(f, json_object_get(j, "channels"));
	fprintf(f, "# EOF\n");
	return ferror(f) ? -1 : 0;
}

#ifdef HAVE_MICROHTTPD
/* The HTTP endpoint. */
struct metrics {
	struct server		*server;
	struct engine		*engine;
	struct MHD_Daemon	*mhd;
	struct watch		 watch;		/* its epoll descriptor */
	struct timer		 timer;		/* its next timeout */
	struct MHD_Response	*page;		/* the last page made, or NULL */
	uint64_t		 page_at;	/* when (monotonic) */
	unsigned int		 nconns;	/* clients after the last run */
	char			 addr[64];
	void			(*log)(void *, int, const char *);
	void			*log_arg;
};

/* libmicrohttpd's own complaints, into the daemon's log. */
static void
metrics_mhd_log(void *arg, const char *fmt, va_list ap)
{
	struct metrics	*mt = arg;
	char		 line[256], msg[320];

	vsnprintf(line, sizeof line, fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	snprintf(msg, sizeof msg, "metrics %s: %s", mt->addr, line);
	mt->log(mt->log_arg, LOG_WARNING, msg);
}

/* Queue a short text answer with status code. */
static enum MHD_Result
metrics_reply(struct MHD_Connection *conn, unsigned int code,
    const char *text)
{
	struct MHD_Response	*r;
	enum MHD_Result		 ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
	    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; charset=utf-8");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		(void)MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
		    "GET, HEAD");
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* One request: GET or HEAD of /metrics gets the page, others an error. */
static enum MHD_Result
metrics_request(void *arg, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_len, void **state)
{
	struct metrics		*mt = arg;
	struct MHD_Response	*r;
	enum MHD_Result		 ret;
	json_t			*j;
	FILE			*f;
	char			*page = NULL;
	size_t			 len = 0;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)state;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "only GET and HEAD\n");
	if (strcmp(url, "/metrics") != 0)
		return metrics_reply(conn, MHD_HTTP_NOT_FOUND,
		    "route-host serves /metrics only\n");
	if (mt->page != NULL &&
	    loop_now() < mt->page_at + METRICS_PAGE_MS * MS_NS)
		return MHD_queue_response(conn, MHD_HTTP_OK, mt->page);
	if ((j = server_status(mt->server)) == NULL ||
	    (f = open_memstream(&page, &len)) == NULL) {
		json_decref(j);
		return metrics_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "out of memory\n");
	}
	if (metrics_write(f, j) == -1) {
		fclose(f);
		free(page);
		json_decref(j);
		return metrics_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "out of memory\n");
	}
	fclose(f);
	json_decref(j);
	r = MHD_create_response_from_buffer(len, page, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(page);
		return MHD_NO;
	}
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    METRICS_TYPE);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	/* Kept for the next scrapes; those queued hold their own reference. */
	if (mt->page != NULL)
		MHD_destroy_response(mt->page);
	mt->page = r;
	mt->page_at = loop_now();
	return ret;
}

/*
 * Arm the loop timer for libmicrohttpd's next timeout, if it has one, or
 * for the next turn when connections closed: at its connection limit it
 * stops watching the listening socket, and only looks again on its next
 * run, which nothing else would bring while clients wait in the queue.
 */
static void
metrics_arm(struct metrics *mt)
{
	const union MHD_DaemonInfo	*info;
	MHD_UNSIGNED_LONG_LONG		 ms;
	unsigned int			 n;

	info = MHD_get_daemon_info(mt->mhd,
	    MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	n = info != NULL ? info->num_connections : 0;
	if (n < mt->nconns) {
		mt->nconns = n;
		loop_timer_at(engine_loop(mt->engine), &mt->timer,
		    loop_now());
		return;
	}
	mt->nconns = n;
	if (MHD_get_timeout(mt->mhd, &ms) == MHD_YES)
		loop_timer_at(engine_loop(mt->engine), &mt->timer,
		    loop_now() + (uint64_t)ms * MS_NS);
	else
		loop_timer_cancel(engine_loop(mt->engine), &mt->timer);
}

/* Its epoll descriptor is ready: let libmicrohttpd work. */
static void
metrics_ready(struct watch *w, uint32_t events)
{
	struct metrics	*mt = w->arg;

	(void)events;
	(void)MHD_run(mt->mhd);
	metrics_arm(mt);
}

/* Its timeout passed (an idle client to cut off). */
static void
metrics_timeout(void *arg)
{
	struct metrics	*mt = arg;

	(void)MHD_run(mt->mhd);
	metrics_arm(mt);
}

/* A listening TCP socket on addr (ADDRESS:PORT); -1 with err set. */
static int
metrics_bind(const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 fd, on = 1;

	if (conf_address(addr, &ss, &sslen, err, errlen) == -1)
		return -1;
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "metrics-listen %s: socket: %s", addr,
		    strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	if (ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
		    sizeof on);
	if (bind(fd, (struct sockaddr *)&ss, sslen) == -1 ||
	    listen(fd, METRICS_CONNECTIONS) == -1) {
		snprintf(err, errlen, "metrics-listen %s: %s", addr,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Serve the metrics of server over HTTP on addr (ADDRESS:PORT) from e's
 * loop; NULL with err set.
 */
struct metrics *
metrics_open(struct engine *e, struct server *s, const char *addr,
    void (*log)(void *, int, const char *), void *log_arg, char *err,
    size_t errlen)
{
	struct metrics		*mt;
	const union MHD_DaemonInfo *info;
	int			 fd;

	if ((mt = calloc(1, sizeof *mt)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mt->server = s;
	mt->engine = e;
	mt->log = log;
	mt->log_arg = log_arg;
	strlcpy(mt->addr, addr, sizeof mt->addr);
	loop_timer_init(&mt->timer, metrics_timeout, mt);
	if ((fd = metrics_bind(addr, err, errlen)) == -1) {
		free(mt);
		return NULL;
	}
	mt->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    metrics_request, mt,
	    MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_log, mt,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)METRICS_IDLE_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_CONN_MEMORY,
	    MHD_OPTION_END);
	if (mt->mhd == NULL) {
		snprintf(err, errlen, "metrics-listen %s: libmicrohttpd did "
		    "not start", addr);
		close(fd);
		free(mt);
		return NULL;
	}
	info = MHD_get_daemon_info(mt->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	mt->watch.fd = info != NULL ? info->epoll_fd : -1;
	mt->watch.cb = metrics_ready;
	mt->watch.arg = mt;
	if (mt->watch.fd == -1 ||
	    engine_watch(e, &mt->watch, EPOLLIN) == -1) {
		snprintf(err, errlen, "metrics-listen %s: cannot watch its "
		    "descriptor", addr);
		MHD_stop_daemon(mt->mhd);
		free(mt);
		return NULL;
	}
	metrics_arm(mt);
	return mt;
}

/* Stop serving metrics: clients are closed, the port freed. */
void
metrics_close(struct metrics *mt)
{
	if (mt == NULL)
		return;
	engine_unwatch(mt->engine, &mt->watch);
	loop_timer_cancel(engine_loop(mt->engine), &mt->timer);
	MHD_stop_daemon(mt->mhd);	/* closes the listening socket too */
	if (mt->page != NULL)
		MHD_destroy_response(mt->page);
	free(mt);
}
#else
/* A build without libmicrohttpd: metrics-listen cannot be served. */
struct metrics *
metrics_open(struct engine *e, struct server *s, const char *addr,
    void (*log)(void *, int, const char *), void *log_arg, char *err,
    size_t errlen)
{
	(void)e;
	(void)s;
	(void)log;
	(void)log_arg;
	snprintf(err, errlen, "metrics-listen %s: this route-host was built "
	    "without libmicrohttpd", addr);
	return NULL;
}

/* Nothing to stop. */
void
metrics_close(struct metrics *mt)
{
	(void)mt;
}
#endif
