/* SPDX-License-Identifier: ISC */
/*
 * route-host demo: the newcomer's first look.  It loads the shipped
 * plugins and two deliberately broken ones from the package's plugin
 * directory, routes a stream of messages through them, and shows the
 * decisions, a crash contained to its call, a hung call killed at its
 * deadline, and a summary.  Then it starts the real daemon on a
 * temporary socket and deploys a new version under live traffic.  It
 * builds nothing at run time.
 */

#include "config.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "route-host.h"
#include "route-host/client.h"

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

/* Copy src to dir/name by write-to-temp and rename, as an operator would. */
static void
cmd_demo_install(const char *src, const char *dir, const char *name)
{
	char	tmp[4200], dst[4200], buf[65536];
	ssize_t	n;
	int	in, out;

	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
	snprintf(dst, sizeof dst, "%s/%s", dir, name);
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) == -1 ||
	    (out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1)
		err(1, "demo: %s", src);
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			err(1, "demo: %s", tmp);
	close(in);
	close(out);
	if (rename(tmp, dst) == -1)
		err(1, "demo: rename %s", dst);
}

/* What a batch's answers came to: counts by version, and failures. */
struct cmd_demo_tally {
	char		(*seen)[VERSION_HEX_LEN + 1];	/* two versions */
	u_int		*counts;
	u_int		*failed;
};

/* The client library's callback: count one answer. */
static void
cmd_demo_answered(void *cookie, const struct rhc_result *rr)
{
	struct cmd_demo_tally	*t = cookie;
	char			 hex[VERSION_HEX_LEN + 1];

	if (rr->status != RHC_OK) {
		(*t->failed)++;
		return;
	}
	rhc_version_hex(rr->version, hex);
	for (int k = 0; k < 2; k++) {
		if (t->seen[k][0] == '\0')
			strlcpy(t->seen[k], hex, sizeof t->seen[k]);
		if (strcmp(t->seen[k], hex) == 0) {
			t->counts[k]++;
			break;
		}
	}
}

/*
 * Send batch calls to channel orders, pipelined, and count the answers by
 * version.
 */
static void
cmd_demo_batch(struct rhc_conn *c, const struct rhc_request *rq,
    uint64_t *sent, int batch, char seen[][VERSION_HEX_LEN + 1],
    u_int *counts, u_int *failed)
{
	struct cmd_demo_tally	t = { seen, counts, failed };

	for (int i = 0; i < batch; i++, (*sent)++)
		if (rhc_conn_submit(c, "orders", rq, cmd_demo_answered,
		    &t) == -1)
			errx(1, "demo: %s", rhc_conn_error(c));
	if (rhc_conn_wait(c, -1) != 0)
		errx(1, "demo: %s", rhc_conn_error(c));
}

/*
 * Part two: the real daemon on a temporary socket, with live traffic,
 * and a new version of a channel dropped into its plugins directory.
 */
static int
cmd_demo_daemon(const char *dir)
{
	struct rhc_options	 o;
	struct rhc_conn		*conn;
	struct rhc_request	*rq;
	char			 tmp[] = "/tmp/route-host-demo-XXXXXX";
	char			 plugins[64], sock[64], src[4200], self[4200];
	char			 cmd[256];
	char			 seen[2][VERSION_HEX_LEN + 1] = { "", "" };
	u_int			 counts[2] = { 0, 0 }, failed = 0;
	uint64_t		 sent = 0;
	ssize_t			 n;
	pid_t			 pid;
	int			 status;

	if (mkdtemp(tmp) == NULL || chmod(tmp, 0755) == -1)
		err(1, "demo: mkdtemp");
	snprintf(plugins, sizeof plugins, "%s/plugins", tmp);
	snprintf(sock, sizeof sock, "%s/route-host.sock", tmp);
	if (mkdir(plugins, 0755) == -1)
		err(1, "demo: %s", plugins);
	snprintf(src, sizeof src, "%s/first-available.so", dir);
	cmd_demo_install(src, plugins, "orders.so");
	if ((n = readlink("/proc/self/exe", self, sizeof self - 1)) == -1)
		err(1, "demo: /proc/self/exe");
	self[n] = '\0';

	printf("\nPart two: the daemon.  route-host serve runs on %s with "
	    "plugins in\n%s; orders.so there is channel orders "
	    "(first-available).\n\n", sock, plugins);
	fflush(stdout);
	switch (pid = fork()) {
	case -1:
		err(1, "demo: fork");
	case 0:
		/* Its log goes to a file, shown at the end. */
		snprintf(src, sizeof src, "%s/log", tmp);
		if ((n = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0644)) == -1 || dup2((int)n, STDERR_FILENO) == -1)
			_exit(127);
		execl(self, "route-host", "serve", "-f", "-d", plugins, "-s",
		    sock, (char *)NULL);
		_exit(127);
	}
	/* A broker's connection: it waits for the daemon to listen. */
	rhc_options_init(&o);
	if ((conn = rhc_conn_new(sock, &o)) == NULL ||
	    (rq = rhc_request_new()) == NULL)
		err(1, "demo: %s", sock);
	if (rhc_request_consumer(rq, "a", 3, 4, 0, NULL, 0) == -1 ||
	    rhc_request_consumer(rq, "b", 0, 2, 0, NULL, 0) == -1 ||
	    rhc_request_consumer(rq, "c", 1, 8, 5, NULL, 0) == -1)
		errx(1, "demo: %s", rhc_request_error(rq));
	/* Wait for the first deploy: a call answers once it is there. */
	for (int i = 0; i < 250; i++) {
		u_int	none[2] = { 0, 0 }, bad = 0;

		cmd_demo_batch(conn, rq, &sent, 1, seen, none, &bad);
		if (bad == 0)
			break;
		usleep(20000);
	}
	memset(seen, 0, sizeof seen);
	sent = 0;
	printf("  %-6s %-40s %s\n", "batch", "answers by version", "");
	for (int b = 1; b <= 8; b++) {
		if (b == 4) {
			snprintf(src, sizeof src, "%s/least-loaded.so", dir);
			cmd_demo_install(src, plugins, "orders.so");
			printf("  %-6s %s\n", "", "(least-loaded.so renamed over "
			    "orders.so while calls run)");
		}
		memset(counts, 0, sizeof counts);
		cmd_demo_batch(conn, rq, &sent, 500, seen, counts, &failed);
		printf("  %-6d %.12s: %4u   %.12s: %4u\n", b, seen[0][0] ?
		    seen[0] : "-", counts[0], seen[1][0] ? seen[1] : "-",
		    counts[1]);
		fflush(stdout);
		usleep(30000);
	}
	printf("\n%llu calls, %u failed.  The daemon's own view "
	    "(route-host status):\n\n", (unsigned long long)sent, failed);
	fflush(stdout);
	rhc_request_free(rq);
	rhc_conn_free(conn);
	snprintf(cmd, sizeof cmd, "'%s' status -s '%s'", self, sock);
	if (system(cmd) != 0)
		warnx("demo: status failed");
	kill(pid, SIGTERM);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	printf("\nSIGTERM: the daemon exited %d, its helpers reaped, socket "
	    "removed.  Its log:\n\n", WIFEXITED(status) ?
	    WEXITSTATUS(status) : -1);
	fflush(stdout);
	snprintf(cmd, sizeof cmd, "sed 's/^/  /' '%s/log'", tmp);
	if (system(cmd) != 0)
		warnx("demo: no log");
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		warnx("demo: could not remove %s", tmp);
	return failed == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ?
	    0 : 1;
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
	conf.log = cmd_log;
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
	fflush(stdout);
	return cmd_demo_daemon(dir);
}
