/* SPDX-License-Identifier: ISC */
/*
 * route-bench: what route-host costs, measured against the floor of this
 * machine in the same run, so the ratios hold on a noisy shared machine.
 * It prints; it never fails on a figure.
 *
 *	route-bench [--json] [-q] [-s SECTIONS] [-d SHIPPED_PLUGIN_DIR]
 *	    [-t TEST_PLUGIN_DIR] [-r ROUTE_HOST]
 *
 * --json prints the figures as one JSON object instead of a table; -q runs
 * fewer iterations (a smoke run); -s runs only the sections named in a
 * comma list of latency, lifecycle, sandbox, daemon, memory and poison.
 * Helpers come from the zygote program beside ROUTE_HOST (host/route-host
 * by default), unless ROUTE_HOST_ZYGOTE names another.
 */

#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dlfcn.h>
#include <getopt.h>

#include <jansson.h>

#include "route-host.h"
#include "route-host/client.h"

static const char	*bench_shipped = "plugins/.libs";
static const char	*bench_tests = "tests/plugins/.libs";
static const char	*bench_route_host = "host/route-host";
static pid_t		 bench_daemon_pid;	/* killed if we exit early */

/* At exit: never leave a daemon behind. */
static void
bench_cleanup(void)
{
	if (bench_daemon_pid > 0) {
		kill(bench_daemon_pid, SIGTERM);
		waitpid(bench_daemon_pid, NULL, 0);
	}
}
static int		 bench_scale = 1;	/* divides iteration counts */
static const char	*bench_only;		/* sections to run, or all */
#define BENCH_ROUNDS	5		/* floor and figure alternate */
static json_t		*bench_json;		/* results, with --json */

/* True when section name is to run. */
static bool
bench_wants(const char *name)
{
	return bench_only == NULL || strstr(bench_only, name) != NULL;
}

/* Order u64s. */
static int
bench_cmp(const void *a, const void *b)
{
	const uint64_t	*x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/* n samples' p99: the sample 99% of the way up, never the max for n > 100. */
static uint64_t
bench_p99(const uint64_t *sorted, size_t n)
{
	return sorted[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
}

/* Start a section of the table: latencies (us), or one value per row. */
static void
bench_section(const char *title, const char *unit)
{
	if (bench_json != NULL)
		return;
	if (unit == NULL)
		printf("\n  %-46s %9s %9s %9s %9s\n", title, "median", "p99",
		    "min", "max");
	else
		printf("\n  %-46s %12s\n", title, unit);
}

/* The "1.23x floor B" note; vs itself without a ratio; or nothing. */
static void
bench_note(char *buf, size_t len, double ratio, const char *vs)
{
	if (vs == NULL)
		buf[0] = '\0';
	else if (ratio == 0)
		strlcpy(buf, vs, len);
	else
		snprintf(buf, len, "%.2fx %s", ratio, vs);
}

/*
 * One latency row from n samples in ns (sorted here): median, p99, min and
 * max, and the median's ratio to the median vs_ns of floor vs, if given.
 * key names it in the JSON.
 */
static void
bench_row(const char *key, const char *what, uint64_t *ns, size_t n,
    const char *vs, uint64_t vs_ns)
{
	char	note[64];
	double	ratio;

	qsort(ns, n, sizeof *ns, bench_cmp);
	ratio = vs_ns != 0 ? (double)ns[n / 2] / (double)vs_ns : 0.0;
	bench_note(note, sizeof note, ratio, vs);
	if (bench_json == NULL) {
		printf("  %-46s %9.1f %9.1f %9.1f %9.1f  %s\n", what,
		    ns[n / 2] / 1e3, bench_p99(ns, n) / 1e3, ns[0] / 1e3,
		    ns[n - 1] / 1e3, note);
		return;
	}
	json_object_set_new(bench_json, key, json_pack("{s:s, s:I, s:f, "
	    "s:f, s:f, s:f}", "what", what, "samples", (json_int_t)n,
	    "median_us", ns[n / 2] / 1e3, "p99_us", bench_p99(ns, n) / 1e3,
	    "min_us", ns[0] / 1e3, "max_us", ns[n - 1] / 1e3));
	if (vs != NULL && vs_ns != 0)
		json_object_set_new(json_object_get(bench_json, key), "ratio",
		    json_pack("{s:f, s:s}", "value", ratio, "to", vs));
}

/* One value: a rate or a size, with its ratio to a floor's, if given. */
static void
bench_value(const char *key, const char *what, double v, const char *unit,
    const char *vs, double vs_v)
{
	char	note[64];
	double	ratio = vs_v != 0 ? v / vs_v : 0.0;

	bench_note(note, sizeof note, ratio, vs);
	if (bench_json == NULL) {
		if (strcmp(unit, "ratio") == 0)
			printf("  %-46s %11.2fx  %s\n", what, v, note);
		else
			printf("  %-46s %12.0f  %s\n", what, v, note);
		return;
	}
	json_object_set_new(bench_json, key, json_pack("{s:s, s:f, s:s}",
	    "what", what, "value", v, "unit", unit));
	if (vs != NULL && vs_v != 0)
		json_object_set_new(json_object_get(bench_json, key), "ratio",
		    json_pack("{s:f, s:s}", "value", ratio, "to", vs));
}

/* Order doubles. */
static int
bench_cmp_double(const void *a, const void *b)
{
	const double	*x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/* Path of a plugin. */
static const char *
bench_plugin(const char *name, bool shipped)
{
	static char	buf[4][4096];
	static int	next;
	char		*p = buf[next++ % 4];

	snprintf(p, 4096, "%s/%s.so", shipped ? bench_shipped : bench_tests,
	    name);
	return p;
}

/* A realistic body: three fields, three consumers with tags. */
static void
bench_body(struct wire_buf *b)
{
	static const char *const	tags[] = { "eu", "fast" };
	struct route_value		v;
	struct route_consumer		c[3] = {
		{ "consumer-a", 3, 4, 0, tags, 2 },
		{ "consumer-b", 0, 2, 1, tags, 1 },
		{ "consumer-c", 1, 8, 5, NULL, 0 },
	};

	wire_init(b);
	wire_body_begin(b, 3, 3);
	v.type = ROUTE_INTEGER;
	v.integer = 5000;
	wire_body_field(b, "amount", &v);
	v.type = ROUTE_TEXT;
	v.text = "eu-west";
	v.len = 7;
	wire_body_field(b, "region", &v);
	v.type = ROUTE_BOOLEAN;
	v.boolean = true;
	wire_body_field(b, "vip", &v);
	for (int i = 0; i < 3; i++)
		wire_body_consumer(b, &c[i]);
}

/* bench_body's message and consumers, as a client library request. */
static struct rhc_request *
bench_request(void)
{
	static const char *const	 tags[] = { "eu", "fast" };
	struct rhc_request		*rq;

	if ((rq = rhc_request_new()) == NULL)
		err(1, NULL);
	/* The first error sticks: one check at the end is enough. */
	rhc_request_int(rq, "amount", 5000);
	rhc_request_text(rq, "region", "eu-west", 7);
	rhc_request_bool(rq, "vip", 1);
	rhc_request_consumer(rq, "consumer-a", 3, 4, 0, tags, 2);
	rhc_request_consumer(rq, "consumer-b", 0, 2, 1, tags, 1);
	rhc_request_consumer(rq, "consumer-c", 1, 8, 5, NULL, 0);
	if (rhc_request_error(rq) != NULL)
		errx(1, "request: %s", rhc_request_error(rq));
	return rq;
}

/* One call's end. */
struct bench_wait {
	bool		done;
	struct result	r;
	uint64_t	at;
};

/* Engine callback. */
static void
bench_done(const struct result *r, void *arg)
{
	struct bench_wait	*w = arg;

	w->r = *r;
	w->at = engine_now();
	w->done = true;
}

/* Make a call and run the loop until it ends. */
static struct bench_wait
bench_call(struct engine *e, struct module *m, const struct wire_buf *b,
    int timeout_ms)
{
	struct bench_wait	w;

	memset(&w, 0, sizeof w);
	if (engine_call(e, m, b->data, b->len, timeout_ms, bench_done,
	    &w) == -1)
		err(1, "engine_call");
	while (!w.done)
		engine_run(e, -1);
	return w;
}

/* Load a plugin or die. */
static struct module *
bench_load(struct engine *e, const char *path, const char *opt)
{
	struct route_option	o = { "bench", opt };
	struct module		*m;
	char			 errbuf[DETAIL_MAX];

	if (engine_load(e, path, NULL, &o, opt != NULL ? 1 : 0, &m, errbuf,
	    sizeof errbuf) == -1)
		errx(1, "%s", errbuf);
	return m;
}

/*
 * Floor B: a plain socketpair round trip between two processes carrying
 * exactly the bytes a real call carries (its frame, and a result frame);
 * n samples into ns.
 */
static void
bench_floor_b(const struct wire_buf *body, uint64_t *ns, size_t n)
{
	unsigned char	 req[4096], rep[64];
	size_t		 reqlen = WIRE_HEADER + 4 + body->len, replen = 16;
	pid_t		 pid;
	int		 sv[2];

	memset(req, 'x', sizeof req);
	memset(rep, 'y', sizeof rep);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		err(1, "socketpair");
	if ((pid = fork()) == 0) {
		close(sv[0]);
		for (;;) {
			size_t	got = 0;
			ssize_t	r;

			while (got < reqlen) {
				if ((r = read(sv[1], req, reqlen - got)) <= 0)
					_exit(0);
				got += (size_t)r;
			}
			if (write(sv[1], rep, replen) != (ssize_t)replen)
				_exit(0);
		}
	}
	close(sv[1]);
	for (size_t i = 0; i < n; i++) {
		uint64_t	t = engine_now();
		size_t		got = 0;
		ssize_t		r;

		if (write(sv[0], req, reqlen) != (ssize_t)reqlen)
			err(1, "write");
		while (got < replen) {
			if ((r = read(sv[0], rep, replen - got)) <= 0)
				err(1, "read");
			got += (size_t)r;
		}
		ns[i] = engine_now() - t;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
}

/* The engine, one call in flight to a warm helper: n samples into ns. */
static void
bench_engine(struct engine *e, struct module *m, const struct wire_buf *b,
    uint64_t *ns, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t		t = engine_now();
		struct bench_wait	w = bench_call(e, m, b, 0);

		if (w.r.status != ST_OK)
			errx(1, "engine call: %s", w.r.detail);
		ns[i] = w.at - t;
	}
}

/*
 * Floor B and the engine carrying the same bytes, in alternating rounds,
 * so that a change in the machine's mood touches both alike.
 */
static void
bench_latency(struct engine *e, const struct wire_buf *b, size_t n)
{
	struct module	*m = bench_load(e, bench_plugin("first-available",
			    true), NULL);
	uint64_t	*fb = calloc(n, sizeof *fb), *en = calloc(n, sizeof *en);
	size_t		 chunk = n / BENCH_ROUNDS;

	for (int i = 0; i < 100; i++)
		bench_call(e, m, b, 0);
	for (int r = 0; r < BENCH_ROUNDS; r++) {
		bench_floor_b(b, fb + r * chunk, chunk);
		bench_engine(e, m, b, en + r * chunk, chunk);
	}
	n = chunk * BENCH_ROUNDS;
	bench_row("floor_b", "floor B: socketpair round trip", fb, n, NULL, 0);
	bench_row("engine_one_in_flight", "engine: one call in flight", en, n,
	    "floor B", fb[n / 2]);
	engine_release(e, m);
	free(fb);
	free(en);
}

/*
 * Cold start: n samples into ns of a version never loaded, from file to
 * first answer; salt keeps the versions of two runs apart.
 */
static void
bench_cold_fill(struct engine *e, const struct wire_buf *b, uint64_t *ns,
    size_t n, const char *salt)
{
	u_int	base = engine_loaded(e);	/* other versions */
	char	opt[48];

	for (size_t i = 0; i < n; i++) {
		uint64_t		t = engine_now();
		struct module		*m;
		struct bench_wait	w;

		/* Distinct options: a distinct module, never deduped. */
		snprintf(opt, sizeof opt, "%s%zu", salt, i);
		m = bench_load(e, bench_plugin("first-available", true), opt);
		w = bench_call(e, m, b, 0);
		if (w.r.status != ST_OK)
			errx(1, "cold start: %s", w.r.detail);
		ns[i] = w.at - t;
		/* Until it is freed: its helpers are reaped. */
		engine_release(e, m);
		while (engine_loaded(e) > base)
			engine_run(e, 10);
	}
}

/* Cold start: a version never loaded, from file to first answer. */
static void
bench_cold(struct engine *e, const struct wire_buf *b, size_t n)
{
	uint64_t	*ns = calloc(n, sizeof *ns);

	bench_cold_fill(e, b, ns, n, "");
	bench_row("cold_start", "cold start: file to first answer", ns, n,
	    NULL, 0);
	free(ns);
}

/* True once m has a spare helper loaded and standing by. */
static bool
bench_spare_ready(struct module *m)
{
	struct engine_helper	hs[16];
	u_int			n = engine_helpers(m, hs, nitems(hs));

	for (u_int i = 0; i < n; i++)
		if (strcmp(hs[i].state, "standby") == 0)
			return true;
	return false;
}

/*
 * Crash recovery: n samples into ns, from a crashed call of m to the next
 * answered call.  Spaced, each crash meets a loaded spare; back to back
 * (three good calls apart, clear of the crash-loop throttle) it finds it
 * still loading.
 */
static void
bench_crash_fill(struct engine *e, struct module *m, const struct wire_buf *b,
    uint64_t *ns, size_t n, bool spaced)
{
	struct wire_buf	 poison;
	struct route_value v = { .type = ROUTE_BOOLEAN, .boolean = true };
	uint64_t	 end;

	wire_init(&poison);
	wire_body_begin(&poison, 1, 0);
	wire_body_field(&poison, "poison", &v);
	bench_call(e, m, b, 0);
	for (size_t i = 0; i < n; i++) {
		struct bench_wait	c, w;

		if (spaced) {
			end = engine_now() + 200 * MS_NS;
			while (!bench_spare_ready(m) && engine_now() < end)
				engine_run(e, 1);
		}
		c = bench_call(e, m, &poison, 0);
		w = bench_call(e, m, b, 0);
		if (c.r.status != ST_CRASHED || w.r.status != ST_OK)
			errx(1, "crash recovery: %s / %s", c.r.detail,
			    w.r.detail);
		ns[i] = w.at - c.at;
		for (int k = 0; k < 2; k++)
			bench_call(e, m, b, 0);
	}
	wire_free(&poison);
}

/* Crash recovery, now and then or back to back. */
static void
bench_crash(struct engine *e, const struct wire_buf *b, size_t n,
    bool spaced)
{
	struct module	*m = bench_load(e, bench_plugin("demo-crashy", true),
			    spaced ? "spaced" : "back-to-back");
	uint64_t	*ns = calloc(n, sizeof *ns);

	bench_crash_fill(e, m, b, ns, n, spaced);
	if (spaced)
		bench_row("crash_recovery", "crash recovery: crash now and then",
		    ns, n, NULL, 0);
	else
		bench_row("crash_recovery_back_to_back", "crash recovery: "
		    "crashes back to back", ns, n, NULL, 0);
	engine_release(e, m);
	free(ns);
}

/*
 * The sandbox's cost: the same figures from e and from an engine whose
 * helpers run without it (same zygote design, no user switch, limits or
 * filters), in alternating rounds, each sandboxed row with its ratio to
 * the unsandboxed one.
 */
static void
bench_sandbox(struct engine *e, const struct wire_buf *b, size_t n)
{
	struct engine_config	 conf;
	struct engine		*bare;
	struct module		*mb, *mo, *cb, *co;
	uint64_t		*ns[2][4];
	char			 errbuf[DETAIL_MAX];
	size_t			 chunk = n / BENCH_ROUNDS, cold = n / 50 + 2;
	size_t			 ccold = cold / BENCH_ROUNDS + 1;
	static const char *const keys[4] = { "one_call", "cold_start",
	    "crash_recovery", "crash_recovery_back_to_back" };
	static const char *const whats[4] = { "one call in flight",
	    "cold start: file to first answer", "crash recovery: now and then",
	    "crash recovery: back to back" };
	size_t			 counts[4] = { chunk * BENCH_ROUNDS,
	    ccold * BENCH_ROUNDS, ccold * BENCH_ROUNDS, ccold * BENCH_ROUNDS };

	engine_defaults(&conf);
	conf.sandbox = false;
	if ((bare = engine_new(&conf, errbuf, sizeof errbuf)) == NULL)
		errx(1, "%s", errbuf);
	for (int k = 0; k < 2; k++)
		for (int j = 0; j < 4; j++)
			if ((ns[k][j] = calloc(counts[j], sizeof(uint64_t))) ==
			    NULL)
				err(1, NULL);
	mb = bench_load(e, bench_plugin("first-available", true), "boxed");
	mo = bench_load(bare, bench_plugin("first-available", true), "open");
	cb = bench_load(e, bench_plugin("demo-crashy", true), "boxed");
	co = bench_load(bare, bench_plugin("demo-crashy", true), "open");
	for (int i = 0; i < 100; i++) {
		bench_call(e, mb, b, 0);
		bench_call(bare, mo, b, 0);
	}
	for (int r = 0; r < BENCH_ROUNDS; r++) {
		bench_engine(bare, mo, b, ns[0][0] + r * chunk, chunk);
		bench_engine(e, mb, b, ns[1][0] + r * chunk, chunk);
		bench_cold_fill(bare, b, ns[0][1] + r * ccold, ccold, "o");
		bench_cold_fill(e, b, ns[1][1] + r * ccold, ccold, "b");
		bench_crash_fill(bare, co, b, ns[0][2] + r * ccold, ccold,
		    true);
		bench_crash_fill(e, cb, b, ns[1][2] + r * ccold, ccold, true);
		bench_crash_fill(bare, co, b, ns[0][3] + r * ccold, ccold,
		    false);
		bench_crash_fill(e, cb, b, ns[1][3] + r * ccold, ccold, false);
	}
	for (int j = 0; j < 4; j++) {
		char	key[64], what[96];

		qsort(ns[0][j], counts[j], sizeof(uint64_t), bench_cmp);
		snprintf(key, sizeof key, "unsandboxed_%s", keys[j]);
		snprintf(what, sizeof what, "%s, unsandboxed", whats[j]);
		bench_row(key, what, ns[0][j], counts[j], NULL, 0);
		snprintf(key, sizeof key, "sandboxed_%s", keys[j]);
		snprintf(what, sizeof what, "%s, sandboxed", whats[j]);
		bench_row(key, what, ns[1][j], counts[j], "unsandboxed",
		    ns[0][j][counts[j] / 2]);
	}
	engine_release(e, mb);
	engine_release(bare, mo);
	engine_release(e, cb);
	engine_release(bare, co);
	engine_free(bare);
	for (int k = 0; k < 2; k++)
		for (int j = 0; j < 4; j++)
			free(ns[k][j]);
}

/*
 * Floor D: how late this machine wakes a process from a timer while
 * another process keeps a CPU busy, as a spinning plugin does.
 */
static uint64_t
bench_floor_d(int deadline_ms, size_t n)
{
	struct itimerspec	 its;
	struct pollfd		 pfd;
	uint64_t		*ns = calloc(n, sizeof *ns), t, ticks, med;
	pid_t			 spin;
	char			 key[32], what[64];
	int			 fd;

	if ((spin = fork()) == 0)
		for (;;)
			;
	if ((fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)) == -1)
		err(1, "timerfd_create");
	memset(&its, 0, sizeof its);
	for (size_t i = 0; i < n; i++) {
		t = engine_now() + (uint64_t)deadline_ms * MS_NS;
		its.it_value.tv_sec = (time_t)(t / 1000000000ULL);
		its.it_value.tv_nsec = (long)(t % 1000000000ULL);
		if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) == -1)
			err(1, "timerfd_settime");
		pfd.fd = fd;
		pfd.events = POLLIN;
		while (poll(&pfd, 1, -1) != 1)
			;
		ns[i] = engine_now() - t;
		if (read(fd, &ticks, sizeof ticks) != sizeof ticks)
			err(1, "timerfd read");
	}
	close(fd);
	kill(spin, SIGKILL);
	waitpid(spin, NULL, 0);
	snprintf(key, sizeof key, "floor_d_%dms", deadline_ms);
	snprintf(what, sizeof what, "floor D: timer wake-up late, %d ms, CPU "
	    "busy", deadline_ms);
	bench_row(key, what, ns, n, NULL, 0);
	med = ns[n / 2];
	free(ns);
	return med;
}

/* Timeout overshoot: result delivered past the deadline. */
static void
bench_overshoot(struct engine *e, int deadline_ms, size_t n, uint64_t floor_d)
{
	struct module	*m = bench_load(e, bench_plugin("demo-sleepy", true),
			    NULL);
	struct wire_buf	 spin, ok;
	struct route_value v = { .type = ROUTE_INTEGER, .integer = -1 };
	uint64_t	*ns = calloc(n, sizeof *ns);
	char		 key[32], what[64];

	wire_init(&spin);
	wire_body_begin(&spin, 1, 0);
	wire_body_field(&spin, "sleep_ms", &v);
	wire_init(&ok);
	wire_body_begin(&ok, 0, 0);
	for (size_t i = 0; i < n; i++) {
		uint64_t		t;
		struct bench_wait	w;

		/* A warm helper, so the deadline meets the plugin. */
		bench_call(e, m, &ok, 0);
		t = engine_now();
		w = bench_call(e, m, &spin, deadline_ms);
		if (w.r.status != ST_TIMED_OUT)
			errx(1, "overshoot: %s", w.r.detail);
		ns[i] = w.at - t - (uint64_t)deadline_ms * MS_NS;
	}
	snprintf(key, sizeof key, "timeout_overshoot_%dms", deadline_ms);
	snprintf(what, sizeof what, "timeout overshoot, %d ms deadline",
	    deadline_ms);
	bench_row(key, what, ns, n, "floor D", floor_d);
	wire_free(&spin);
	wire_free(&ok);
	engine_release(e, m);
	free(ns);
}

/* Copy src into dir/name.so by write-to-temp and rename; returns when. */
static uint64_t
bench_put(const char *src, const char *dir, const char *name)
{
	char	tmp[4200], dst[4200], buf[65536];
	ssize_t	n;
	int	in, out;
	uint64_t t;

	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
	snprintf(dst, sizeof dst, "%s/%s.so", dir, name);
	in = open(src, O_RDONLY | O_CLOEXEC);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (in == -1 || out == -1)
		err(1, "%s", src);
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			err(1, "write");
	close(in);
	close(out);
	t = engine_now();
	if (rename(tmp, dst) == -1)
		err(1, "rename");
	return t;
}

/* The deploy section's engine log: count block.so's "entered" lines. */
static void
bench_deploy_log(void *arg, int prio, const char *line)
{
	u_int	*entered = arg;

	(void)prio;
	if (strstr(line, "stderr: block: entered") != NULL)
		(*entered)++;
}

/*
 * Hot deploy (rename to first answer by the new version) and drain (the
 * old version's last in-flight call ending, to its helpers reaped).
 */
static void
bench_deploy(const struct wire_buf *b, size_t n)
{
	struct engine_config	 econf;
	struct engine		*e;
	struct plugdir_config	 conf;
	struct plugdir		*pd;
	struct channel		*ch;
	char			 dir[] = "/tmp/route-bench-XXXXXX";
	char			 sig[] = "/tmp/route-bench-sig-XXXXXX";
	char			 errbuf[DETAIL_MAX], path[4200], cmd[128];
	const char		*src[2];
	uint64_t		*dep = calloc(n, sizeof *dep);
	uint64_t		*drain = calloc(n, sizeof *drain);
	struct wire_buf		 blk;
	struct route_value	 v;
	u_int			 entered = 0;

	/* Helpers, maybe another user, look for the release file in sig. */
	if (mkdtemp(dir) == NULL || mkdtemp(sig) == NULL ||
	    chmod(sig, 0755) == -1)
		err(1, "mkdtemp");
	/*
	 * Sandboxed, block.so may open no file to write: it says it entered
	 * with a line on its standard error, which the engine logs, so this
	 * section has an engine of its own, whose zygote its helpers inherit
	 * the setting from, and whose log it reads.
	 */
	if (setenv("BLOCK_SIGNAL", "stderr", 1) == -1)
		err(1, "setenv");
	engine_defaults(&econf);
	econf.log = bench_deploy_log;
	econf.log_arg = &entered;
	if ((e = engine_new(&econf, errbuf, sizeof errbuf)) == NULL)
		errx(1, "%s", errbuf);
	src[0] = bench_plugin("block-v1", false);
	src[1] = bench_plugin("block-v2", false);
	plugdir_defaults(&conf);
	bench_put(src[0], dir, "bench");
	if ((pd = plugdir_open(e, dir, &conf, NULL, NULL, errbuf,
	    sizeof errbuf)) == NULL)
		errx(1, "%s", errbuf);
	while ((ch = plugdir_channel(pd, "bench")) == NULL ||
	    ch->active == NULL)
		engine_run(e, 10);

	wire_init(&blk);
	wire_body_begin(&blk, 1, 2);
	v.type = ROUTE_TEXT;
	v.text = sig;
	v.len = strlen(sig);
	wire_body_field(&blk, "dir", &v);
	{
		struct route_consumer	c[2] = { { .id = "old" },
		    { .id = "new" } };

		wire_body_consumer(&blk, &c[0]);
		wire_body_consumer(&blk, &c[1]);
	}

	for (size_t i = 0; i < n; i++) {
		struct module		*old = ch->active, *m;
		struct bench_wait	 hold, w;
		uint64_t		 t, end;
		u_int			 loaded;

		/* A call held inside the old version. */
		memset(&hold, 0, sizeof hold);
		entered = 0;
		snprintf(path, sizeof path, "%s/release", sig);
		unlink(path);
		if (channel_call(ch, blk.data, blk.len, 60000, bench_done,
		    &hold) == -1)
			err(1, "call");
		end = engine_now() + 10000 * MS_NS;
		while (entered == 0) {
			if (engine_now() > end)
				errx(1, "hot deploy: block.so never said it "
				    "entered");
			engine_run(e, 1);
		}

		t = bench_put(src[(i + 1) % 2], dir, "bench");
		for (;;) {
			engine_run(e, 1);
			if ((m = ch->active) == old)
				continue;
			w = bench_call(e, m, b, 0);
			if (w.r.status == ST_OK)
				break;
		}
		dep[i] = w.at - t;

		/* Release the held call; time its end to the old helpers' reaping. */
		loaded = engine_loaded(e);
		snprintf(path, sizeof path, "%s/release", sig);
		close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
		while (!hold.done)
			engine_run(e, 1);
		while (engine_loaded(e) >= loaded)
			engine_run(e, 1);
		end = engine_now();
		drain[i] = end - hold.at;
	}
	bench_row("hot_deploy", "hot deploy: rename to first answer by new",
	    dep, n, NULL, 0);
	bench_row("drain", "drain: last old call to old helpers reaped",
	    drain, n, NULL, 0);
	plugdir_close(pd);
	engine_free(e);
	wire_free(&blk);
	unsetenv("BLOCK_SIGNAL");
	snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, sig);
	if (system(cmd) != 0)
		warnx("could not remove %s", dir);
	free(dep);
	free(drain);
}

/* Start route-host serve on a temporary directory; returns its pid. */
static pid_t
bench_daemon(char *dir, const char *sock)
{
	char		plugins[256], src[4200];
	pid_t		pid;
	int		fd;

	snprintf(plugins, sizeof plugins, "%s/plugins", dir);
	if (mkdir(plugins, 0755) == -1)
		err(1, "%s", plugins);
	snprintf(src, sizeof src, "%s", bench_plugin("first-available", true));
	bench_put(src, plugins, "orders");
	if ((pid = fork()) == 0) {
		if ((fd = open("/dev/null", O_WRONLY)) != -1)
			dup2(fd, STDERR_FILENO);
		execl(bench_route_host, "route-host", "serve", "-f", "-d",
		    plugins, "-s", sock, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* A connection, once the daemon answers a call on its channel. */
static struct rhc_conn *
bench_connect(const char *sock, const struct rhc_request *rq)
{
	struct rhc_conn		*c;
	struct rhc_result	 r;

	/* A daemon still starting: the library connects again by itself. */
	if ((c = rhc_conn_new(sock, NULL)) == NULL)
		err(1, "daemon: %s", sock);
	for (int i = 0;; i++) {
		if (rhc_conn_call(c, "orders", rq, &r) == -1)
			err(1, "daemon");
		if (r.status == RHC_OK)
			return c;
		if (r.status == RHC_CONNECTION_LOST)
			errx(1, "daemon: %s", r.detail);
		if (i == 200)
			errx(1, "daemon: channel never came up: %s", r.detail);
		usleep(20000);
	}
}

/* A pipelined run: its connection and request, n calls in all. */
struct bench_pipe {
	struct rhc_conn			*c;
	const struct rhc_request	*rq;
	size_t				 n;
	size_t				 sent;
};

/* A pipelined call answered: the next call goes in its place. */
static void
bench_pipe_done(void *cookie, const struct rhc_result *r)
{
	struct bench_pipe	*p = cookie;

	if (r->status == RHC_CONNECTION_LOST || r->status == RHC_CANCELLED)
		errx(1, "daemon: %s", r->detail);
	if (p->sent < p->n) {
		if (rhc_conn_submit(p->c, "orders", p->rq, bench_pipe_done,
		    p) == -1)
			err(1, "submit");
		p->sent++;
	}
}

/* One connection's pipelined run: depth calls outstanding, n in all. */
static void
bench_pipeline(const char *sock, const struct rhc_request *rq, size_t n,
    size_t depth)
{
	struct bench_pipe	p;

	p.c = bench_connect(sock, rq);
	p.rq = rq;
	p.n = n;
	for (p.sent = 0; p.sent < n && p.sent < depth; p.sent++)
		if (rhc_conn_submit(p.c, "orders", rq, bench_pipe_done,
		    &p) == -1)
			err(1, "submit");
	/* Each answer submits the next: pending until the last. */
	if (rhc_conn_wait(p.c, -1) == -1)
		err(1, "daemon");
	rhc_conn_free(p.c);
}

/*
 * Floor C: raw pipelined echo between two processes over a stream socket,
 * the same frames batched the same way; messages per second.
 */
static double
bench_floor_c(const struct wire_buf *b, size_t n, size_t depth)
{
	struct wire_buf	 f, out;
	unsigned char	*buf;
	size_t		 sent = 0, got = 0, flen, have = 0;
	uint64_t	 t;
	pid_t		 pid;
	ssize_t		 r;
	int		 sv[2];

	wire_init(&f);
	proto_route(&f, 1, 0, "orders", b->data, b->len);
	flen = f.len;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		err(1, "socketpair");
	if ((pid = fork()) == 0) {
		/* Echo a 60-byte answer per whole request read. */
		unsigned char	in[65536], ans[64 * 1024];
		size_t		part = 0;

		memset(ans, 'r', sizeof ans);
		close(sv[0]);
		while ((r = read(sv[1], in, sizeof in)) > 0) {
			size_t	k = (part + (size_t)r) / flen;

			part = (part + (size_t)r) % flen;
			if (k > 0 && write(sv[1], ans, k * 60) < 0)
				_exit(0);
		}
		_exit(0);
	}
	close(sv[1]);
	buf = malloc(1 << 20);
	wire_init(&out);
	out.max = SIZE_MAX / 2;
	t = engine_now();
	while (got < n) {
		out.len = 0;
		while (sent < n && sent - got < depth) {
			wire_bytes(&out, f.data, flen);
			sent++;
		}
		if (out.len > 0 && write(sv[0], out.data, out.len) !=
		    (ssize_t)out.len)
			err(1, "write");
		if ((r = read(sv[0], buf, 1 << 20)) <= 0)
			err(1, "read");
		have += (size_t)r;
		got = have / 60;
	}
	t = engine_now() - t;
	close(sv[0]);
	waitpid(pid, NULL, 0);
	free(buf);
	wire_free(&f);
	wire_free(&out);
	return (double)n / ((double)t / 1e9);
}

/*
 * The daemon end to end: one call in flight from a client (latency, with
 * floor B beside it), then pipelined at depth 64 on 1 and 8 connections
 * (decisions per second, with floor C beside them).
 */
static void
bench_serve(const struct wire_buf *b, size_t n)
{
	struct rhc_request	*rq = bench_request();
	struct rhc_conn		*c;
	struct rhc_result	 res;
	char			 dir[] = "/tmp/route-bench-serve-XXXXXX";
	char			 sock[128];
	char			 cmd[128];
	uint64_t		*ns = calloc(n, sizeof *ns), t;
	uint64_t		*fb = calloc(n, sizeof *fb);
	double			 rates[3][3];
	size_t			 total, chunk;
	pid_t			 pid, kids[8];

	if (mkdtemp(dir) == NULL || chmod(dir, 0755) == -1)
		err(1, "mkdtemp");
	snprintf(sock, sizeof sock, "%s/rh.sock", dir);
	pid = bench_daemon(dir, sock);
	bench_daemon_pid = pid;
	c = bench_connect(sock, rq);

	bench_section("daemon (us)", NULL);
	/* Floor B and the daemon in alternating rounds, as for the engine. */
	chunk = n / BENCH_ROUNDS;
	for (int r = 0; r < BENCH_ROUNDS; r++) {
		bench_floor_b(b, fb + r * chunk, chunk);
		for (size_t i = r * chunk; i < (r + 1) * chunk; i++) {
			t = engine_now();
			if (rhc_conn_call(c, "orders", rq, &res) == -1)
				err(1, "daemon");
			ns[i] = engine_now() - t;
			if (res.status != RHC_OK)
				errx(1, "daemon: %s: %s",
				    rhc_status_name(res.status), res.detail);
		}
	}
	n = chunk * BENCH_ROUNDS;
	bench_row("daemon_floor_b", "floor B: socketpair round trip", fb, n,
	    NULL, 0);
	bench_row("daemon_one_in_flight", "daemon: one call in flight, end "
	    "to end", ns, n, "floor B", fb[n / 2]);
	rhc_conn_free(c);

	/* Three rounds side by side; each figure is its rounds' median. */
	total = n * 10;
	for (int r = 0; r < 3; r++) {
		rates[0][r] = bench_floor_c(b, total, 64);
		t = engine_now();
		bench_pipeline(sock, rq, total, 64);
		rates[1][r] = (double)total / ((double)(engine_now() - t) /
		    1e9);
		t = engine_now();
		for (int k = 0; k < 8; k++)
			if ((kids[k] = fork()) == 0) {
				bench_pipeline(sock, rq, total / 8, 64);
				_exit(0);
			}
		for (int k = 0; k < 8; k++)
			waitpid(kids[k], NULL, 0);
		rates[2][r] = (double)(total / 8 * 8) /
		    ((double)(engine_now() - t) / 1e9);
	}
	for (int k = 0; k < 3; k++)
		qsort(rates[k], 3, sizeof rates[k][0], bench_cmp_double);
	bench_section("throughput (median of 3 rounds)", "per second");
	bench_value("floor_c", "floor C: raw pipelined echo, depth 64",
	    rates[0][1], "messages/s", NULL, 0);
	bench_value("daemon_pipelined_1", "daemon: 1 connection, depth 64",
	    rates[1][1], "decisions/s", "floor C", rates[0][1]);
	bench_value("daemon_pipelined_8", "daemon: 8 connections, depth 64 "
	    "each", rates[2][1], "decisions/s", "floor C", rates[0][1]);

	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	bench_daemon_pid = 0;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		warnx("could not remove %s", dir);
	rhc_request_free(rq);
	free(ns);
	free(fb);
}

/*
 * Floor A: the same plugin function called directly, in this process, on
 * the same decoded message: what a call costs with no isolation at all.
 */
static void
bench_floor_a(const struct wire_buf *b, size_t n)
{
	const struct route_plugin	*d;
	struct wire_call		 c;
	char				 errbuf[DETAIL_MAX];
	uint64_t			*ns = calloc(n / 100, sizeof *ns);
	void				*dl;
	volatile int			 sink = 0;

	if ((dl = dlopen(bench_plugin("first-available", true), RTLD_NOW)) ==
	    NULL || (d = dlsym(dl, ROUTE_PLUGIN_SYMBOL)) == NULL)
		errx(1, "floor A: %s", dlerror());
	if (wire_decode_call(b->data, b->len, &c, errbuf, sizeof errbuf) == -1)
		errx(1, "floor A: %s", errbuf);
	/* Time batches of 100 calls: one call is below the clock's grain. */
	for (size_t i = 0; i < n / 100; i++) {
		uint64_t	t = engine_now();

		for (int k = 0; k < 100; k++)
			sink += d->route(NULL, &c.msg, c.consumers,
			    c.nconsumers);
		ns[i] = (engine_now() - t) / 100;
	}
	(void)sink;
	{
		char	note[64];

		qsort(ns, n / 100, sizeof *ns, bench_cmp);
		snprintf(note, sizeof note, "%llu ns median",
		    (unsigned long long)ns[n / 200]);
		bench_row("floor_a", "floor A: direct in-process call", ns,
		    n / 100, note, 0);
	}
	wire_call_free(&c);
	dlclose(dl);
	free(ns);
}

/* A process's memory from smaps_rollup: RSS, or USS (private pages). */
static long
bench_kib(pid_t pid, bool uss)
{
	char	path[64], line[256];
	long	v, total = 0;
	FILE	*f;

	snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		if (!uss && sscanf(line, "Rss: %ld kB", &v) == 1)
			total += v;
		if (uss && (sscanf(line, "Private_Clean: %ld kB", &v) == 1 ||
		    sscanf(line, "Private_Dirty: %ld kB", &v) == 1))
			total += v;
	}
	fclose(f);
	return total;
}

/* The first child of process pid, or 0. */
static pid_t
bench_child(pid_t pid)
{
	char	 cmd[64];
	FILE	*ps;
	long	 c = 0;

	snprintf(cmd, sizeof cmd, "ps -o pid= --ppid %ld", (long)pid);
	if ((ps = popen(cmd, "r")) != NULL) {
		if (fscanf(ps, "%ld", &c) != 1)
			c = 0;
		pclose(ps);
	}
	return (pid_t)c;
}

/*
 * Memory: the daemon's RSS with 1, 100 and 1000 channels, each a distinct
 * version (first-available with a distinct trailer, which ELF ignores),
 * and one helper's private memory.
 */
static void
bench_memory(size_t maxch)
{
	struct rhc_conn		*c;
	const size_t		 counts[] = { 1, 100, 1000 };
	char			 dir[] = "/tmp/route-bench-mem-XXXXXX";
	char			 plugins[128], sock[128], path[256], cmd[160], key[32];
	char			*json;
	size_t			 made = 0;
	pid_t			 pid, zygote = 0, helper = 0;
	FILE			*out;
	int			 in;

	if (mkdtemp(dir) == NULL || chmod(dir, 0755) == -1)
		err(1, "mkdtemp");
	snprintf(plugins, sizeof plugins, "%s/plugins", dir);
	snprintf(sock, sizeof sock, "%s/rh.sock", dir);
	if (mkdir(plugins, 0755) == -1)
		err(1, "%s", plugins);
	if ((pid = fork()) == 0) {
		if ((in = open("/dev/null", O_WRONLY)) != -1)
			dup2(in, STDERR_FILENO);
		execl(bench_route_host, "route-host", "serve", "-f", "-d",
		    plugins, "-s", sock, (char *)NULL);
		_exit(127);
	}
	bench_daemon_pid = pid;
	/* Not there yet: rhc_conn_status connects again at each try. */
	if ((c = rhc_conn_new(sock, NULL)) == NULL)
		err(1, "memory: %s", sock);
	bench_section("memory", "KiB");
	for (size_t k = 0; k < sizeof counts / sizeof counts[0] &&
	    counts[k] <= maxch; k++) {
		for (; made < counts[k]; made++) {
			char	src[4200], buf[65536];
			ssize_t	n;

			snprintf(path, sizeof path, "%s/.c%zu", plugins, made);
			snprintf(src, sizeof src, "%s",
			    bench_plugin("first-available", true));
			if ((in = open(src, O_RDONLY)) == -1 ||
			    (out = fopen(path, "w")) == NULL)
				err(1, "%s", src);
			while ((n = read(in, buf, sizeof buf)) > 0)
				fwrite(buf, 1, (size_t)n, out);
			fprintf(out, "trailer %zu", made);
			fclose(out);
			close(in);
			snprintf(src, sizeof src, "%s/c%zu.so", plugins, made);
			if (rename(path, src) == -1)
				err(1, "rename");
		}
		/* Wait until status shows every channel active. */
		for (int tries = 0;; tries++) {
			size_t	active = 0;

			if (rhc_conn_status(c, &json, 10000) == 0) {
				for (const char *q = json; (q = strstr(q,
				    "\"active\":\"")) != NULL; q += 10)
					active++;
				free(json);
			}
			if (active >= counts[k])
				break;
			if (tries > 6000)
				errx(1, "memory: %zu of %zu channels up",
				    active, counts[k]);
			usleep(10000);
		}
		snprintf(cmd, sizeof cmd, "daemon RSS, %zu channel%s loaded",
		    counts[k], counts[k] == 1 ? "" : "s");
		snprintf(key, sizeof key, "daemon_rss_%zu", counts[k]);
		bench_value(key, cmd, (double)bench_kib(pid, false), "KiB",
		    NULL, 0);
		/* The daemon's child is its zygote, whose are the helpers. */
		if (zygote == 0)
			zygote = bench_child(pid);
		if (helper == 0 && zygote != 0)
			helper = bench_child(zygote);
	}
	if (zygote != 0)
		bench_value("zygote_rss", "the zygote's RSS",
		    (double)bench_kib(zygote, false), "KiB", NULL, 0);
	if (helper != 0)
		bench_value("helper_uss", "one helper's USS (private pages)",
		    (double)bench_kib(helper, true), "KiB", NULL, 0);
	rhc_conn_free(c);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	bench_daemon_pid = 0;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		warnx("could not remove %s", dir);
}

/* A poison-test request: "crash" as told, "n" to make it distinct. */
static void
bench_poison_request(struct rhc_request *rq, bool crash, int64_t n)
{
	rhc_request_clear(rq);
	/* The first error sticks: one check at the end is enough. */
	rhc_request_bool(rq, "crash", crash);
	rhc_request_int(rq, "n", n);
	rhc_request_consumer(rq, "consumer-a", 0, 4, 0, NULL, 0);
	if (rhc_request_error(rq) != NULL)
		errx(1, "poison: %s", rhc_request_error(rq));
}

/* What one pipelined poison run saw. */
struct bench_poison_run {
	uint64_t	*healthy;	/* latencies of ok answers, ns */
	size_t		 nhealthy;
	uint64_t	*crashed;	/* ... of the daemon's other answers */
	size_t		 ncrashed;
	/* Answers by status: the protocol's, then the library's own. */
	size_t		 kinds[RHC_CANCELLED + 1];
	uint64_t	 max;		/* the slowest answer */
	uint64_t	 elapsed;
};

/* One call of a poison run: the run, and when the call was submitted. */
struct bench_poison_call {
	struct bench_poison_run	*run;
	uint64_t		 sent_at;
};

/* A poison call answered: its latency from its submit, and its kind. */
static void
bench_poison_done(void *cookie, const struct rhc_result *r)
{
	struct bench_poison_call	*call = cookie;
	struct bench_poison_run		*run = call->run;
	uint64_t			 lat = engine_now() - call->sent_at;

	if (lat > run->max)
		run->max = lat;
	run->kinds[r->status]++;
	/* No daemon answered connection_lost or cancelled: counted only. */
	if (r->status == RHC_OK)
		run->healthy[run->nhealthy++] = lat;
	else if (r->status < RHC_CONNECTION_LOST)
		run->crashed[run->ncrashed++] = lat;
}

/*
 * n calls to channel on one connection, depth outstanding: every pct-th
 * percent poison (a fixed pseudo-random order), distinct bodies unless
 * same (then every poison call is one body, as a broker redelivers it).
 * With gap (ns), call i is submitted no sooner than i gaps after the
 * first: a steady rate, as traffic arrives, instead of as fast as answers
 * come.
 */
static void
bench_poison_pipeline(const char *sock, const char *channel, size_t n,
    int pct, bool same, size_t depth, uint64_t gap,
    struct bench_poison_run *run)
{
	struct bench_poison_call	*calls = calloc(n, sizeof *calls);
	struct rhc_request		*rq = rhc_request_new();
	struct rhc_conn			*c;
	bool				*poison = calloc(n, sizeof *poison);
	size_t				 sent = 0;
	uint64_t			 t0, due, now, wait;
	struct pollfd			 pfd;
	struct timespec			 ts;
	uint32_t			 x = 1;
	int				 ms;

	memset(run, 0, sizeof *run);
	run->healthy = calloc(n, sizeof *run->healthy);
	run->crashed = calloc(n, sizeof *run->crashed);
	if (calls == NULL || rq == NULL || poison == NULL ||
	    run->healthy == NULL || run->crashed == NULL)
		err(1, NULL);
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		poison[i] = pct >= 100 || (int)((x >> 16) % 100) < pct;
	}
	/* A daemon still starting: the library connects again by itself. */
	if ((c = rhc_conn_new(sock, NULL)) == NULL)
		err(1, "daemon: %s", sock);
	t0 = engine_now();
	while (sent < n || rhc_conn_pending(c) > 0) {
		while (sent < n && rhc_conn_pending(c) < depth &&
		    engine_now() >= t0 + sent * gap) {
			bench_poison_request(rq, poison[sent], poison[sent] &&
			    same ? -1 : (int64_t)sent);
			calls[sent].run = run;
			calls[sent].sent_at = engine_now();
			if (rhc_conn_submit(c, channel, rq, bench_poison_done,
			    &calls[sent]) == -1)
				err(1, "submit");
			sent++;
		}
		/* Until an answer, the library's timeout, or a call due. */
		ms = rhc_conn_timeout(c);
		wait = ms >= 0 ? (uint64_t)ms * 1000000 : UINT64_MAX;
		if (gap != 0 && sent < n && rhc_conn_pending(c) < depth) {
			due = t0 + sent * gap;
			now = engine_now();
			if (due <= now)
				wait = 0;
			else if (due - now < wait)
				wait = due - now;
		}
		ts.tv_sec = (time_t)(wait / 1000000000);
		ts.tv_nsec = (long)(wait % 1000000000);
		pfd.fd = rhc_conn_fd(c);
		pfd.events = (short)rhc_conn_events(c);
		pfd.revents = 0;
		if (ppoll(&pfd, pfd.fd != -1, wait != UINT64_MAX ? &ts : NULL,
		    NULL) == -1 && errno != EINTR)
			err(1, "ppoll");
		rhc_conn_process(c, pfd.revents);
	}
	run->elapsed = engine_now() - t0;
	rhc_conn_free(c);
	rhc_request_free(rq);
	free(calls);
	free(poison);
}

/* Free what a run kept. */
static void
bench_poison_free(struct bench_poison_run *run)
{
	free(run->healthy);
	free(run->crashed);
}

/* The p99 of a run's samples (sorted here), or 0 with none. */
static uint64_t
bench_poison_p99(uint64_t *ns, size_t n)
{
	if (n == 0)
		return 0;
	qsort(ns, n, sizeof *ns, bench_cmp);
	return bench_p99(ns, n);
}

/* A channel's helper_crashes, from route-host status --json. */
static uint64_t
bench_poison_crashes(const char *sock, const char *channel)
{
	json_t		*j, *ch, *v;
	json_error_t	 jerr;
	char		 cmd[512];
	FILE		*f;
	size_t		 i, k;
	uint64_t	 n = 0;

	snprintf(cmd, sizeof cmd, "'%s' status -s '%s' --json",
	    bench_route_host, sock);
	if ((f = popen(cmd, "r")) == NULL)
		return 0;
	j = json_loadf(f, 0, &jerr);
	pclose(f);
	json_array_foreach(json_object_get(j, "channels"), i, ch) {
		if (strcmp(json_string_value(json_object_get(ch, "channel")),
		    channel) != 0)
			continue;
		json_array_foreach(json_object_get(ch, "versions"), k, v)
			n += (uint64_t)json_integer_value(json_object_get(v,
			    "helper_crashes"));
	}
	json_decref(j);
	return n;
}

/* Say what a run's answers were, by kind. */
static void
bench_poison_kinds(const char *key, const char *what,
    const struct bench_poison_run *run)
{
	char	line[256] = "", one[64];

	for (size_t s = 0; s < nitems(run->kinds); s++)
		if (run->kinds[s] > 0) {
			snprintf(one, sizeof one, "%s%s=%zu", line[0] != '\0' ?
			    " " : "", rhc_status_name((enum rhc_status)s),
			    run->kinds[s]);
			strlcat(line, one, sizeof line);
		}
	if (bench_json != NULL)
		json_object_set_new(bench_json, key, json_pack("{s:s, s:s, "
		    "s:f}", "what", what, "answers", line, "seconds",
		    run->elapsed / 1e9));
	else
		printf("  %-46s %s in %.3f s\n", what, line,
		    run->elapsed / 1e9);
}

/*
 * A 50 % mix's rows, keyed poison_KEY_*: its healthy answers, their p99
 * against clean99 (the same run without poison), its crashed answers and
 * its answers by kind.
 */
static void
bench_poison_mix(const char *key, const char *label,
    struct bench_poison_run *half, uint64_t clean99)
{
	char	k[64], what[96];

	snprintf(k, sizeof k, "poison_%s_healthy", key);
	snprintf(what, sizeof what, "50 %% poison, %s: healthy", label);
	bench_row(k, what, half->healthy, half->nhealthy, NULL, 0);
	snprintf(k, sizeof k, "poison_%s_ratio", key);
	bench_value(k, "... healthy p99 / no-poison p99", clean99 != 0 ?
	    (double)bench_poison_p99(half->healthy, half->nhealthy) /
	    (double)clean99 : 0, "ratio", NULL, 0);
	if (half->ncrashed > 0) {
		snprintf(k, sizeof k, "poison_%s_crashed", key);
		snprintf(what, sizeof what, "50 %% poison, %s: crashed", label);
		bench_row(k, what, half->crashed, half->ncrashed, NULL, 0);
	}
	snprintf(k, sizeof k, "poison_%s_kinds", key);
	snprintf(what, sizeof what, "50 %% poison, %s:", label);
	bench_poison_kinds(k, what, half);
}

/*
 * Another channel's calls during a storm: n healthy calls at 1000 a
 * second on channel neighbour, from a child, while this process sends n
 * calls pipelined at 50 % poison to channel storm; the neighbour's p99
 * against alone99 (the same rate with no storm).  The daemon must not
 * make one channel wait for another's helpers to be forked.
 */
static void
bench_poison_neighbour(const char *sock, size_t n, uint64_t alone99)
{
	struct bench_poison_run	 storm, nb;
	ssize_t			 r;
	size_t			 off = 0;
	pid_t			 pid;
	int			 fds[2], status;

	if (pipe(fds) == -1)
		err(1, "pipe");
	if ((pid = fork()) == -1)
		err(1, "fork");
	if (pid == 0) {
		close(fds[0]);
		bench_poison_pipeline(sock, "neighbour", n / 4, 0, false, 64,
		    1000000, &nb);
		if (write(fds[1], &nb.nhealthy, sizeof nb.nhealthy) == -1 ||
		    write(fds[1], nb.healthy, nb.nhealthy * sizeof
		    *nb.healthy) == -1)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	bench_poison_pipeline(sock, "storm", n, 50, false, 64, 0, &storm);
	memset(&nb, 0, sizeof nb);
	if (read(fds[0], &nb.nhealthy, sizeof nb.nhealthy) !=
	    (ssize_t)sizeof nb.nhealthy || nb.nhealthy > n ||
	    (nb.healthy = calloc(n, sizeof *nb.healthy)) == NULL)
		errx(1, "poison: the neighbour's run failed");
	while (off < nb.nhealthy * sizeof *nb.healthy &&
	    (r = read(fds[0], (char *)nb.healthy + off,
	    nb.nhealthy * sizeof *nb.healthy - off)) > 0)
		off += (size_t)r;
	close(fds[0]);
	if (waitpid(pid, &status, 0) == -1 || status != 0)
		errx(1, "poison: the neighbour's run failed");
	bench_row("poison_neighbour", "another channel, during the storm",
	    nb.healthy, nb.nhealthy, NULL, 0);
	bench_value("poison_neighbour_ratio", "... p99 / its p99 alone",
	    alone99 != 0 ? (double)bench_poison_p99(nb.healthy,
	    nb.nhealthy) / (double)alone99 : 0, "ratio", NULL, 0);
	bench_poison_free(&nb);
	bench_poison_free(&storm);
}

/*
 * Poison: one channel whose plugin crashes on "crash": true, pipelined
 * at depth 64 on one connection.  At 50 % poison (distinct bodies, then
 * one body redelivered), the healthy calls' p99 against the same run
 * without poison, and the crashed answers' p99; at 100 %, the slowest
 * answer and the fork rate (helpers crashed per second); the same poison
 * body 10,000 times, and what it cost in crashes.  At a steady 1000 calls
 * a second: the 50 % mix, and another channel's calls during a storm.
 */
static void
bench_poison(size_t n)
{
	static const char *const	 chans[] = {
		"clean", "half", "halfsame", "all", "same", "steadyclean",
		"steadyhalf", "storm", "neighbour"
	};
	struct bench_poison_run		 clean, half, all, same;
	char				 dir[] = "/tmp/route-bench-poison-XXXXXX";
	char				 sock[128], plugins[256], conf[256];
	char				 cmd[4400];
	uint64_t			 clean99, crashes;
	FILE				*f;
	pid_t				 pid;
	int				 fd;

	if (mkdtemp(dir) == NULL || chmod(dir, 0755) == -1)
		err(1, "mkdtemp");
	snprintf(sock, sizeof sock, "%s/rh.sock", dir);
	snprintf(plugins, sizeof plugins, "%s/plugins", dir);
	snprintf(conf, sizeof conf, "%s/route-host.conf", dir);
	if (mkdir(plugins, 0755) == -1)
		err(1, "%s", plugins);
	if ((f = fopen(conf, "w")) == NULL)
		err(1, "%s", conf);
	/* An option each: channels of the same bytes would share a version. */
	for (size_t i = 0; i < nitems(chans); i++) {
		fprintf(f, "channel %s {\n\toption tag=%s\n}\n", chans[i],
		    chans[i]);
		bench_put(bench_plugin("poison", false), plugins, chans[i]);
	}
	fclose(f);
	if ((pid = fork()) == 0) {
		if ((fd = open("/dev/null", O_WRONLY)) != -1)
			dup2(fd, STDERR_FILENO);
		execl(bench_route_host, "route-host", "serve", "-f", "-c", conf,
		    "-d", plugins, "-s", sock, (char *)NULL);
		_exit(127);
	}
	bench_daemon_pid = pid;
	/* Every channel up: a healthy call answered on each. */
	for (size_t i = 0; i < nitems(chans); i++) {
		for (int k = 0;; k++) {
			bench_poison_pipeline(sock, chans[i], 1, 0, false, 1,
			    0, &clean);
			bench_poison_free(&clean);
			if (clean.kinds[RHC_OK] == 1)
				break;
			if (clean.kinds[RHC_CONNECTION_LOST] == 1)
				errx(1, "poison: no daemon at %s", sock);
			if (k == 200)
				errx(1, "poison: channel %s never came up",
				    chans[i]);
			usleep(20000);
		}
	}

	bench_section("poison: 50 % of calls crash, pipelined (us)", NULL);
	bench_poison_pipeline(sock, "clean", n, 0, false, 64, 0, &clean);
	bench_poison_pipeline(sock, "half", n, 50, false, 64, 0, &half);
	clean99 = bench_poison_p99(clean.healthy, clean.nhealthy);
	bench_row("poison_clean", "no poison: every call", clean.healthy,
	    clean.nhealthy, NULL, 0);
	bench_poison_mix("half", "distinct", &half, clean99);
	bench_poison_free(&half);
	bench_poison_pipeline(sock, "halfsame", n, 50, true, 64, 0, &half);
	bench_poison_mix("halfsame", "one body", &half, clean99);
	bench_poison_free(&half);
	bench_poison_free(&clean);

	/*
	 * The same mix arriving at a steady rate, a third of the crashes a
	 * second this machine can absorb: above, answers wait for forks
	 * because the client sends as fast as they come.
	 */
	bench_section("poison: 50 % of calls crash, 1000 calls/s (us)", NULL);
	bench_poison_pipeline(sock, "steadyclean", n / 2, 0, false, 64,
	    1000000, &clean);
	bench_poison_pipeline(sock, "steadyhalf", n / 2, 50, false, 64,
	    1000000, &half);
	clean99 = bench_poison_p99(clean.healthy, clean.nhealthy);
	bench_row("poison_steady_clean", "no poison: every call",
	    clean.healthy, clean.nhealthy, NULL, 0);
	bench_poison_mix("steady", "distinct", &half, clean99);
	bench_poison_free(&half);
	bench_poison_free(&clean);
	bench_poison_neighbour(sock, n, clean99);

	bench_section("poison: every call crashes", "value");
	bench_poison_pipeline(sock, "all", n, 100, false, 64, 0, &all);
	bench_poison_kinds("poison_all_kinds", "100 % poison, distinct:", &all);
	bench_value("poison_all_max_us", "slowest answer (us)",
	    all.max / 1e3, "us", NULL, 0);
	crashes = bench_poison_crashes(sock, "all");
	bench_value("poison_all_crashes", "helpers crashed (each a fork)",
	    (double)crashes, "helpers", NULL, 0);
	bench_value("poison_all_fork_rate", "... per second of the run",
	    (double)crashes / (all.elapsed / 1e9), "per second", NULL, 0);
	bench_poison_free(&all);

	bench_poison_pipeline(sock, "same", 10000 / (size_t)bench_scale, 100,
	    true, 64, 0, &same);
	bench_poison_kinds("poison_same_kinds", "one poison body, redelivered:",
	    &same);
	bench_value("poison_same_crashes", "... helpers it crashed",
	    (double)bench_poison_crashes(sock, "same"), "helpers", NULL, 0);
	bench_poison_free(&same);

	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	bench_daemon_pid = 0;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		warnx("could not remove %s", dir);
}

/* Print the machine line. */
static void
bench_machine(void)
{
	struct utsname	u;
	char		line[256], model[256] = "unknown CPU";
	FILE		*f;

	if ((f = fopen("/proc/cpuinfo", "r")) != NULL) {
		while (fgets(line, sizeof line, f) != NULL)
			if (strncmp(line, "model name", 10) == 0) {
				strlcpy(model, strchr(line, ':') + 2,
				    sizeof model);
				model[strcspn(model, "\n")] = '\0';
				break;
			}
		fclose(f);
	}
	uname(&u);
	if (bench_json != NULL)
		json_object_set_new(bench_json, "machine", json_pack("{s:s, "
		    "s:I, s:s}", "cpu", model, "cores",
		    (json_int_t)sysconf(_SC_NPROCESSORS_ONLN), "kernel",
		    u.release));
	else
		printf("machine: %s, %ld cores, Linux %s\n", model,
		    sysconf(_SC_NPROCESSORS_ONLN), u.release);
}

/*
 * Run the zygote program beside ROUTE_HOST, this build's rather than an
 * installed one, in this engine and the daemons it starts, unless
 * ROUTE_HOST_ZYGOTE names one already.
 */
static void
bench_zygote(void)
{
	char	dir[PATH_MAX], path[PATH_MAX + 32], *slash;

	if (getenv("ROUTE_HOST_ZYGOTE") != NULL)
		return;
	if (realpath(bench_route_host, dir) == NULL)
		err(1, "%s", bench_route_host);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	snprintf(path, sizeof path, "%s/route-host-zygote", dir);
	if (setenv("ROUTE_HOST_ZYGOTE", path, 1) == -1)
		err(1, "setenv");
}

/* Say how to run it, and fail. */
static void __attribute__((__noreturn__))
bench_usage(void)
{
	fprintf(stderr, "usage: route-bench [--json] [-q] [-s SECTIONS] "
	    "[-d DIR] [-t DIR] [-r ROUTE_HOST]\n"
	    "SECTIONS: a comma list of latency, lifecycle, sandbox, daemon, "
	    "memory, poison\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "json",	no_argument,		NULL,	'j' },
		{ "quick",	no_argument,		NULL,	'q' },
		{ "sections",	required_argument,	NULL,	's' },
		{ NULL,		0,			NULL,	0 }
	};
	static const char *const	 sections[] = {
		"latency", "lifecycle", "sandbox", "daemon", "memory", "poison"
	};
	struct engine_config		 conf;
	struct engine			*e;
	struct wire_buf			 b;
	char				 errbuf[DETAIL_MAX], *list, *w;
	int				 ch;
	bool				 json = false;

	while ((ch = getopt_long(argc, argv, "d:r:s:t:q", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = true;
			break;
		case 's':
			bench_only = optarg;
			break;
		case 'r':
			bench_route_host = optarg;
			break;
		case 'd':
			bench_shipped = optarg;
			break;
		case 't':
			bench_tests = optarg;
			break;
		case 'q':
			bench_scale = 10;
			break;
		default:
			bench_usage();
		}
	}
	if (optind != argc)
		bench_usage();
	if (bench_only != NULL) {
		if ((list = strdup(bench_only)) == NULL)
			err(1, NULL);
		for (char *p = list; (w = strsep(&p, ",")) != NULL;) {
			size_t	k = 0;

			while (k < (sizeof sections / sizeof sections[0]) &&
			    strcmp(w, sections[k]) != 0)
				k++;
			if (k == (sizeof sections / sizeof sections[0])) {
				warnx("-s: unknown section '%s'", w);
				bench_usage();
			}
		}
		free(list);
	}
	bench_zygote();
	signal(SIGPIPE, SIG_IGN);
	atexit(bench_cleanup);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (json && (bench_json = json_object()) == NULL)
		errx(1, "out of memory");
	bench_machine();
	engine_defaults(&conf);
	if ((e = engine_new(&conf, errbuf, sizeof errbuf)) == NULL)
		errx(1, "%s", errbuf);
	bench_body(&b);
	if (json)
		json_object_set_new(bench_json, "call_frame_bytes",
		    json_integer((json_int_t)(WIRE_HEADER + 4 + b.len)));
	else
		printf("call frame %zu bytes, result frame 16 bytes\n",
		    WIRE_HEADER + 4 + b.len);
	if (bench_wants("latency")) {
		bench_section("latency (us)", NULL);
		bench_floor_a(&b, 1000000 / (size_t)bench_scale);
		bench_latency(e, &b, 20000 / (size_t)bench_scale);
	}
	if (bench_wants("lifecycle")) {
		bench_section("lifecycle (us)", NULL);
		bench_cold(e, &b, 200 / (size_t)bench_scale);
		bench_crash(e, &b, 200 / (size_t)bench_scale, true);
		bench_crash(e, &b, 200 / (size_t)bench_scale, false);
		bench_overshoot(e, 1, 300 / (size_t)bench_scale,
		    bench_floor_d(1, 300 / (size_t)bench_scale));
		bench_overshoot(e, 10, 200 / (size_t)bench_scale,
		    bench_floor_d(10, 200 / (size_t)bench_scale));
		bench_overshoot(e, 100, 30 / (size_t)bench_scale + 1,
		    bench_floor_d(100, 30 / (size_t)bench_scale + 1));
		bench_deploy(&b, 50 / (size_t)bench_scale);
	}
	if (bench_wants("sandbox")) {
		bench_section("sandbox: its cost, side by side (us)", NULL);
		bench_sandbox(e, &b, 10000 / (size_t)bench_scale);
	}
	if (bench_wants("daemon"))
		bench_serve(&b, 20000 / (size_t)bench_scale);
	if (bench_wants("memory"))
		bench_memory(bench_scale == 1 ? 1000 : 100);
	if (bench_wants("poison"))
		bench_poison(2000 / (size_t)bench_scale);
	wire_free(&b);
	engine_free(e);
	if (json) {
		json_dumpf(bench_json, stdout, JSON_INDENT(2) |
		    JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
		putchar('\n');
		json_decref(bench_json);
	}
	return 0;
}
