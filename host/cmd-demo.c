/*
 * route-host demo: the newcomer's first look.  It loads the shipped
 * plugins and two deliberately broken ones from the package's plugin
 * directory, routes a stream of messages through them, and shows the
 * decisions, a crash contained to its call, a hung call killed at its
 * deadline, and a summary.  It builds nothing at run time.
 */

#include "config.h"

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "route-host.h"

#define CMD_DEMO_CONSUMERS \
	"\"consumers\": [" \
	"{\"id\": \"a\", \"in_flight\": 3, \"max_in_flight\": 4, \"tags\": [\"eu\"]}, " \
	"{\"id\": \"b\", \"in_flight\": 0, \"max_in_flight\": 2, \"tags\": [\"us\"]}, " \
	"{\"id\": \"c\", \"in_flight\": 1, \"max_in_flight\": 8, \"buffer_depth\": 5}]"
#define CMD_DEMO_FULL \
	"\"consumers\": [" \
	"{\"id\": \"a\", \"in_flight\": 4, \"max_in_flight\": 4}, " \
	"{\"id\": \"b\", \"in_flight\": 2, \"max_in_flight\": 2}]"

static const char *const cmd_demo_plugins[] = {
	"first-available", "least-loaded", "demo-crashy", "demo-sleepy",
};

static const char *const cmd_demo_notes[] = {
	"first consumer with capacity",
	"most free capacity, then shortest buffer",
	"broken on purpose: segfaults on \"poison\"",
	"slow on purpose: spins for \"sleep_ms\"",
};

/* One step of the tour: which channel, which message, why. */
static const struct {
	int		 plugin;
	const char	*message;
	const char	*consumers;
	int		 timeout_ms;
	const char	*why;
} cmd_demo_steps[] = {
	{ 0, "{\"amount\": 120}", CMD_DEMO_CONSUMERS, 0, "cold start" },
	{ 0, "{\"amount\": 90}", CMD_DEMO_CONSUMERS, 0, "warm helper" },
	{ 1, "{\"amount\": 5000}", CMD_DEMO_CONSUMERS, 0, NULL },
	{ 0, "{}", CMD_DEMO_FULL, 0, "nobody has capacity" },
	{ 2, "{\"order\": 7}", CMD_DEMO_CONSUMERS, 0, NULL },
	{ 2, "{\"order\": 8, \"poison\": true}", CMD_DEMO_CONSUMERS, 0,
	    "the plugin dereferences NULL" },
	{ 0, "{\"amount\": 75}", CMD_DEMO_CONSUMERS, 0,
	    "another channel, untouched" },
	{ 2, "{\"order\": 9}", CMD_DEMO_CONSUMERS, 0,
	    "same channel, fresh helper" },
	{ 3, "{\"sleep_ms\": 20}", CMD_DEMO_CONSUMERS, 200,
	    "20 ms of work, 200 ms deadline" },
	{ 3, "{\"sleep_ms\": -1}", CMD_DEMO_CONSUMERS, 200,
	    "spins forever, 200 ms deadline" },
	{ 1, "{\"amount\": 64}", CMD_DEMO_CONSUMERS, 0,
	    "the host did not wait" },
	{ 3, "{\"sleep_ms\": 1}", CMD_DEMO_CONSUMERS, 200,
	    "fresh helper after the kill" },
	{ 2, "{\"wild\": true}", CMD_DEMO_CONSUMERS, 0,
	    "returns index 44 of 3" },
	{ 1, "{\"amount\": 3}", "\"consumers\": [{\"id\": \"a\"}, "
	    "{\"id\": \"a\"}]", 0, "duplicate consumer ids" },
	{ 1, "{\"amount\": 1}", CMD_DEMO_CONSUMERS, 0, NULL },
};

/* A finished call, as the callback saw it. */
struct cmd_demo_wait {
	bool		done;
	struct result	result;
	uint64_t	end;
};

/* Engine callback. */
static void
cmd_demo_done(const struct result *r, void *arg)
{
	struct cmd_demo_wait	*w = arg;

	w->result = *r;
	w->end = engine_now();
	w->done = true;
}

/* Format a result for the table. */
static void
cmd_demo_outcome(const struct result *r, json_t *root, char *buf,
    size_t len)
{
	json_t	*c;

	switch (r->status) {
	case ST_OK:
		if (r->decision == ROUTE_NONE) {
			snprintf(buf, len, "-> none");
			return;
		}
		c = json_array_get(json_object_get(root, "consumers"),
		    (size_t)r->decision);
		snprintf(buf, len, "-> %s", json_string_value(
		    json_object_get(c, "id")));
		return;
	case ST_CRASHED:
		snprintf(buf, len, "crashed (%s), contained", r->detail);
		return;
	case ST_TIMED_OUT:
		snprintf(buf, len, "timed out: %s", r->detail);
		return;
	default:
		snprintf(buf, len, "%s: %s", engine_status_name(r->status),
		    r->detail);
		return;
	}
}

/* route-host demo [-d PLUGIN_LIBDIR] */
int
cmd_demo(int argc, char **argv)
{
	struct engine_config	 conf;
	struct engine		*e;
	struct module		*mods[4];
	struct cmd_demo_wait	 w;
	struct wire_buf		 b;
	const char		*dir = PKGLIBDIR;
	char			 path[4096], errbuf[DETAIL_MAX], line[1024];
	char			 outcome[DETAIL_MAX + 64];
	json_t			*root;
	uint64_t		 start;
	u_int			 counts[ST_LAST + 1] = { 0 };
	size_t			 nsteps = sizeof cmd_demo_steps /
				    sizeof cmd_demo_steps[0];
	int			 ch, timeout;

	optind = 1;
	while ((ch = getopt(argc, argv, "d:")) != -1) {
		if (ch != 'd') {
			fprintf(stderr, "usage: route-host demo "
			    "[-d PLUGIN_LIBDIR]\n");
			return 2;
		}
		dir = optarg;
	}
	if (optind != argc) {
		fprintf(stderr, "usage: route-host demo [-d PLUGIN_LIBDIR]\n");
		return 2;
	}

	engine_defaults(&conf);
	if ((e = engine_new(&conf, errbuf, sizeof errbuf)) == NULL)
		errx(1, "demo: %s", errbuf);
	printf("route-host demo: routing functions run as native plugins, "
	    "each version in\nits own supervised helper process. This host "
	    "is pid %ld.\n\nPlugins from %s:\n", (long)getpid(), dir);
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s.so", dir,
		    cmd_demo_plugins[i]);
		if (engine_load(e, path, NULL, NULL, 0, &mods[i], errbuf,
		    sizeof errbuf) == -1) {
			engine_free(e);
			errx(1, "demo: %s\n(install route-host, or point -d at "
			    "the built plugins, e.g. plugins/.libs)", errbuf);
		}
		printf("  %-16s version %.12s  %s\n", cmd_demo_plugins[i],
		    mods[i]->hex, cmd_demo_notes[i]);
	}
	printf("\nConsumers: a (3 of 4 in flight, tag eu), b (0 of 2, tag us),"
	    " c (1 of 8, buffer 5)\n\n");
	printf("%3s  %-16s %9s  %-30s %s\n", "#", "channel", "time",
	    "message", "result");

	for (size_t i = 0; i < nsteps; i++) {
		struct module	*m = mods[cmd_demo_steps[i].plugin];

		snprintf(line, sizeof line, "{\"message\": %s, %s}",
		    cmd_demo_steps[i].message, cmd_demo_steps[i].consumers);
		if (request_parse(line, &b, &root, &timeout, errbuf,
		    sizeof errbuf) == -1)
			errx(1, "demo: step %zu: %s", i + 1, errbuf);
		memset(&w, 0, sizeof w);
		start = engine_now();
		if (engine_call(e, m, b.data, b.len,
		    cmd_demo_steps[i].timeout_ms, cmd_demo_done, &w) == -1)
			err(1, "demo: call");
		while (!w.done)
			if (engine_run(e, -1) == -1)
				err(1, "demo: event loop");
		wire_free(&b);
		counts[w.result.status]++;
		cmd_demo_outcome(&w.result, root, outcome, sizeof outcome);
		printf("%3zu  %-16s %6.2f ms  %-30s %s\n", i + 1,
		    cmd_demo_plugins[cmd_demo_steps[i].plugin],
		    (double)(w.end - start) / 1e6,
		    cmd_demo_steps[i].message, outcome);
		if (cmd_demo_steps[i].why != NULL)
			printf("%3s  %-16s %9s  %-30s   (%s)\n", "", "", "", "",
			    cmd_demo_steps[i].why);
		json_decref(root);
	}

	printf("\nsummary: %zu calls: %u decisions, %u crashed, %u timed out, "
	    "%u bad decision, %u bad request.\n", nsteps, counts[ST_OK],
	    counts[ST_CRASHED], counts[ST_TIMED_OUT], counts[ST_BAD_DECISION],
	    counts[ST_BAD_REQUEST]);
	printf("The host (pid %ld) ran no plugin code and never faulted; %u "
	    "helpers are alive\nand are killed and reaped now, on exit.\n",
	    (long)getpid(), engine_procs(e));
	for (int i = 0; i < 4; i++)
		engine_release(e, mods[i]);
	engine_free(e);
	return 0;
}
