/*
 * route-bench: what route-host costs, measured against the floor of this
 * machine in the same run, so the ratios hold on a noisy shared machine.
 * It prints; it never fails on a figure.
 *
 *	route-bench [-q] [-d SHIPPED_PLUGIN_DIR] [-t TEST_PLUGIN_DIR]
 *	    [-r ROUTE_HOST]
 *
 * -q runs fewer iterations (a smoke run).
 */

#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dlfcn.h>

#include "route-host.h"

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

/* Print one row: median, p99, min and max of n samples in ns. */
static void
bench_row(const char *what, uint64_t *ns, size_t n, const char *extra)
{
	qsort(ns, n, sizeof *ns, bench_cmp);
	printf("  %-44s %9.1f %9.1f %9.1f %9.1f  %s\n", what,
	    ns[n / 2] / 1e3, ns[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] /
	    1e3, ns[0] / 1e3, ns[n - 1] / 1e3, extra != NULL ? extra : "");
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
 * exactly the bytes a real call carries (its frame, and a result frame).
 */
static uint64_t
bench_floor_b(const struct wire_buf *body, size_t n)
{
	uint64_t	*ns = calloc(n, sizeof *ns), med;
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
	bench_row("floor B: socketpair round trip", ns, n, "");
	med = ns[n / 2];
	free(ns);
	return med;
}

/* Engine, one call in flight, warm helper. */
static uint64_t
bench_engine(struct engine *e, const struct wire_buf *b, size_t n,
    uint64_t floor_median)
{
	struct module	*m = bench_load(e, bench_plugin("first-available",
			    true), NULL);
	uint64_t	*ns = calloc(n, sizeof *ns), med;
	char		 extra[64];

	for (int i = 0; i < 100; i++)
		bench_call(e, m, b, 0);
	for (size_t i = 0; i < n; i++) {
		uint64_t		t = engine_now();
		struct bench_wait	w = bench_call(e, m, b, 0);

		if (w.r.status != ST_OK)
			errx(1, "engine call: %s", w.r.detail);
		ns[i] = w.at - t;
	}
	qsort(ns, n, sizeof *ns, bench_cmp);
	med = ns[n / 2];
	snprintf(extra, sizeof extra, "%.2fx floor B", floor_median ?
	    (double)med / (double)floor_median : 0.0);
	bench_row("engine: one call in flight", ns, n, extra);
	engine_release(e, m);
	free(ns);
	return med;
}

/* Cold start: a version never loaded, from file to first answer. */
static void
bench_cold(struct engine *e, const struct wire_buf *b, size_t n)
{
	uint64_t	*ns = calloc(n, sizeof *ns);
	char		 opt[32];

	for (size_t i = 0; i < n; i++) {
		uint64_t		t = engine_now();
		struct module		*m;
		struct bench_wait	w;

		/* Distinct options: a distinct module, never deduped. */
		snprintf(opt, sizeof opt, "%zu", i);
		m = bench_load(e, bench_plugin("first-available", true), opt);
		w = bench_call(e, m, b, 0);
		ns[i] = w.at - t;
		engine_release(e, m);
		while (engine_procs(e) > 0)
			engine_run(e, 10);
	}
	bench_row("cold start: file to first answer", ns, n, "");
	free(ns);
}

/* Crash recovery: from a crashed call to the next answered call. */
static void
bench_crash(struct engine *e, const struct wire_buf *b, size_t n)
{
	struct module	*m = bench_load(e, bench_plugin("demo-crashy", true),
			    NULL);
	struct wire_buf	 poison;
	struct route_value v = { .type = ROUTE_BOOLEAN, .boolean = true };
	uint64_t	*ns = calloc(n, sizeof *ns);

	wire_init(&poison);
	wire_body_begin(&poison, 1, 0);
	wire_body_field(&poison, "poison", &v);
	bench_call(e, m, b, 0);
	for (size_t i = 0; i < n; i++) {
		struct bench_wait	c = bench_call(e, m, &poison, 0);
		struct bench_wait	w = bench_call(e, m, b, 0);

		if (c.r.status != ST_CRASHED || w.r.status != ST_OK)
			errx(1, "crash recovery: %s / %s", c.r.detail,
			    w.r.detail);
		ns[i] = w.at - c.at;
		/* Keep clear of the crash-loop throttle. */
		for (int k = 0; k < 2; k++)
			bench_call(e, m, b, 0);
	}
	bench_row("crash recovery: crashed call to next answer", ns, n, "");
	wire_free(&poison);
	engine_release(e, m);
	free(ns);
}

/* Timeout overshoot: result delivered past the deadline. */
static void
bench_overshoot(struct engine *e, int deadline_ms, size_t n)
{
	struct module	*m = bench_load(e, bench_plugin("demo-sleepy", true),
			    NULL);
	struct wire_buf	 spin, ok;
	struct route_value v = { .type = ROUTE_INTEGER, .integer = -1 };
	uint64_t	*ns = calloc(n, sizeof *ns);
	char		 what[64];

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
	snprintf(what, sizeof what, "timeout overshoot, %d ms deadline",
	    deadline_ms);
	bench_row(what, ns, n, "");
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

/*
 * Hot deploy (rename to first answer by the new version) and drain (the
 * old version's last in-flight call ending, to its helpers reaped).
 */
static void
bench_deploy(struct engine *e, const struct wire_buf *b, size_t n)
{
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
	struct stat		 st;

	if (mkdtemp(dir) == NULL || mkdtemp(sig) == NULL)
		err(1, "mkdtemp");
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
		snprintf(path, sizeof path, "%s/release", sig);
		unlink(path);
		snprintf(path, sizeof path, "%s/entered", sig);
		unlink(path);
		if (channel_call(ch, blk.data, blk.len, 60000, bench_done,
		    &hold) == -1)
			err(1, "call");
		while (stat(path, &st) == -1)
			engine_run(e, 1);

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
	bench_row("hot deploy: rename to first answer by new", dep, n, "");
	bench_row("drain: last old call to old helpers reaped", drain, n, "");
	plugdir_close(pd);
	wire_free(&blk);
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

/* Connect, waiting for the daemon and its channel. */
static void
bench_connect(struct client_conn *cc, const char *sock,
    const struct wire_buf *b)
{
	struct proto_result	 pr;
	struct wire_buf		 f;
	const unsigned char	*p;
	char			 errbuf[DETAIL_MAX];
	size_t			 len;
	uint8_t			 type;

	for (int i = 0;; i++) {
		if (client_connect(cc, sock, errbuf, sizeof errbuf) == 0)
			break;
		if (i == 200)
			errx(1, "daemon: %s", errbuf);
		usleep(20000);
	}
	for (int i = 0;; i++) {
		wire_init(&f);
		proto_route(&f, 0, 0, "orders", b->data, b->len);
		client_send(cc, &f);
		wire_free(&f);
		if (client_frame(cc, true, &type, &p, &len, errbuf,
		    sizeof errbuf) != 1 || proto_decode_result(p, len,
		    &pr) == -1)
			errx(1, "daemon: %s", errbuf);
		if (pr.status == ST_OK)
			return;
		if (i == 200)
			errx(1, "daemon: channel never came up: %s", pr.detail);
		usleep(20000);
	}
}

/* One connection's pipelined run: depth calls outstanding, n in all. */
static void
bench_pipeline(const char *sock, const struct wire_buf *b, size_t n,
    size_t depth)
{
	struct client_conn	 cc;
	struct wire_buf		 f, out;
	const unsigned char	*p;
	char			 errbuf[DETAIL_MAX];
	size_t			 sent = 0, got = 0, len;
	uint8_t			 type;

	bench_connect(&cc, sock, b);
	wire_init(&f);
	proto_route(&f, 1, 0, "orders", b->data, b->len);
	wire_init(&out);
	out.max = SIZE_MAX / 2;
	while (got < n) {
		out.len = 0;
		while (sent < n && sent - got < depth) {
			wire_bytes(&out, f.data, f.len);
			sent++;
		}
		if (out.len > 0 && client_send(&cc, &out) == -1)
			err(1, "send");
		/* Take every answer already here, at least one. */
		if (client_frame(&cc, true, &type, &p, &len, errbuf,
		    sizeof errbuf) != 1)
			errx(1, "%s", errbuf);
		got++;
		while (client_frame(&cc, false, &type, &p, &len, errbuf,
		    sizeof errbuf) == 1)
			got++;
	}
	wire_free(&f);
	wire_free(&out);
	client_close(&cc);
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
	struct client_conn	 cc;
	struct wire_buf		 f;
	const unsigned char	*p;
	char			 dir[] = "/tmp/route-bench-serve-XXXXXX";
	char			 sock[128], errbuf[DETAIL_MAX], extra[64];
	char			 cmd[128];
	uint64_t		*ns = calloc(n, sizeof *ns), t, floor_b;
	double			 floor_c, rate;
	size_t			 len, total;
	uint8_t			 type;
	pid_t			 pid, kids[8];

	if (mkdtemp(dir) == NULL || chmod(dir, 0755) == -1)
		err(1, "mkdtemp");
	snprintf(sock, sizeof sock, "%s/rh.sock", dir);
	pid = bench_daemon(dir, sock);
	bench_daemon_pid = pid;
	bench_connect(&cc, sock, b);

	printf("\n  %-44s %9s %9s %9s %9s\n", "daemon (us)", "median", "p99",
	    "min", "max");
	floor_b = bench_floor_b(b, n);
	wire_init(&f);
	proto_route(&f, 1, 0, "orders", b->data, b->len);
	for (size_t i = 0; i < n; i++) {
		t = engine_now();
		if (client_send(&cc, &f) == -1 || client_frame(&cc, true,
		    &type, &p, &len, errbuf, sizeof errbuf) != 1)
			errx(1, "daemon: %s", errbuf);
		ns[i] = engine_now() - t;
	}
	qsort(ns, n, sizeof *ns, bench_cmp);
	snprintf(extra, sizeof extra, "%.2fx floor B",
	    (double)ns[n / 2] / (double)floor_b);
	bench_row("daemon: one call in flight, end to end", ns, n, extra);
	client_close(&cc);
	wire_free(&f);

	total = n * 10;
	floor_c = bench_floor_c(b, total, 64);
	printf("\n  %-44s %12s\n", "throughput", "per second");
	printf("  %-44s %12.0f\n", "floor C: raw pipelined echo, depth 64",
	    floor_c);
	t = engine_now();
	bench_pipeline(sock, b, total, 64);
	rate = (double)total / ((double)(engine_now() - t) / 1e9);
	printf("  %-44s %12.0f  %.2fx floor C\n", "daemon: 1 connection, "
	    "depth 64", rate, rate / floor_c);
	t = engine_now();
	for (int k = 0; k < 8; k++)
		if ((kids[k] = fork()) == 0) {
			bench_pipeline(sock, b, total / 8, 64);
			_exit(0);
		}
	for (int k = 0; k < 8; k++)
		waitpid(kids[k], NULL, 0);
	rate = (double)(total / 8 * 8) / ((double)(engine_now() - t) / 1e9);
	printf("  %-44s %12.0f  %.2fx floor C\n", "daemon: 8 connections, "
	    "depth 64 each", rate, rate / floor_c);

	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	bench_daemon_pid = 0;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		warnx("could not remove %s", dir);
	free(ns);
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
		char	extra[64];

		qsort(ns, n / 100, sizeof *ns, bench_cmp);
		snprintf(extra, sizeof extra, "%llu ns median",
		    (unsigned long long)ns[n / 200]);
		bench_row("floor A: direct in-process call", ns, n / 100,
		    extra);
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

/*
 * Memory: the daemon's RSS with 1, 100 and 1000 channels, each a distinct
 * version (first-available with a distinct trailer, which ELF ignores),
 * and one helper's private memory.
 */
static void
bench_memory(size_t maxch)
{
	struct client_conn	 cc;
	struct wire_buf		 f, body;
	const unsigned char	*p;
	const size_t		 counts[] = { 1, 100, 1000 };
	char			 dir[] = "/tmp/route-bench-mem-XXXXXX";
	char			 plugins[128], sock[128], path[256], cmd[160];
	char			 errbuf[DETAIL_MAX], *text;
	size_t			 made = 0, len;
	uint8_t			 type;
	pid_t			 pid, helper = 0;
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
	wire_init(&body);
	wire_body_begin(&body, 0, 0);
	printf("\n  %-44s %12s\n", "memory", "KiB");
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

			if (client_connect(&cc, sock, errbuf,
			    sizeof errbuf) == 0) {
				wire_init(&f);
				wire_frame_begin(&f, PROTO_STATUS);
				wire_u64(&f, 1);
				wire_frame_end(&f);
				if (client_send(&cc, &f) == 0 &&
				    client_frame(&cc, true, &type, &p, &len,
				    errbuf, sizeof errbuf) == 1 &&
				    type == PROTO_STATUS_REPLY && len > 12) {
					const char	*q = (const char *)p + 12;
					const char	*end = (const char *)p + len;

					while ((text = memmem(q, (size_t)(end -
					    q), "\"active\":\"", 10)) != NULL) {
						active++;
						q = text + 10;
					}
				}
				wire_free(&f);
				client_close(&cc);
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
		printf("  %-44s %12ld\n", cmd, bench_kib(pid, false));
		if (helper == 0) {
			FILE	*ps;
			long	 h;

			snprintf(cmd, sizeof cmd, "ps -o pid= --ppid %ld",
			    (long)pid);
			if ((ps = popen(cmd, "r")) != NULL) {
				if (fscanf(ps, "%ld", &h) == 1)
					helper = (pid_t)h;
				pclose(ps);
			}
		}
	}
	if (helper != 0)
		printf("  %-44s %12ld\n", "one helper's USS (private pages)",
		    bench_kib(helper, true));
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	bench_daemon_pid = 0;
	wire_free(&body);
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
	printf("machine: %s, %ld cores, Linux %s\n", model,
	    sysconf(_SC_NPROCESSORS_ONLN), u.release);
}

int
main(int argc, char **argv)
{
	struct engine_config	 conf;
	struct engine		*e;
	struct wire_buf		 b;
	char			 errbuf[DETAIL_MAX];
	int			 ch;

	while ((ch = getopt(argc, argv, "d:r:s:t:q")) != -1) {
		switch (ch) {
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
			fprintf(stderr, "usage: route-bench [-q] [-d DIR] "
			    "[-t DIR]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	atexit(bench_cleanup);
	setvbuf(stdout, NULL, _IOLBF, 0);
	bench_machine();
	engine_defaults(&conf);
	if ((e = engine_new(&conf, errbuf, sizeof errbuf)) == NULL)
		errx(1, "%s", errbuf);
	bench_body(&b);
	printf("call frame %zu bytes, result frame 16 bytes\n\n",
	    WIRE_HEADER + 4 + b.len);
	printf("  %-44s %9s %9s %9s %9s\n", "latency (us)", "median", "p99",
	    "min", "max");
	if (bench_wants("latency")) {
		bench_floor_a(&b, 1000000 / (size_t)bench_scale);
		/* Floor B, then the engine carrying the same bytes. */
		bench_engine(e, &b, 20000 / (size_t)bench_scale,
		    bench_floor_b(&b, 20000 / (size_t)bench_scale));
	}
	if (bench_wants("lifecycle")) {
		printf("\n  %-44s %9s %9s %9s %9s\n", "lifecycle (us)",
		    "median", "p99", "min", "max");
		bench_cold(e, &b, 200 / (size_t)bench_scale);
		bench_crash(e, &b, 200 / (size_t)bench_scale);
		bench_overshoot(e, 1, 100 / (size_t)bench_scale);
		bench_overshoot(e, 10, 100 / (size_t)bench_scale);
		bench_overshoot(e, 100, 20 / (size_t)bench_scale + 1);
		bench_deploy(e, &b, 50 / (size_t)bench_scale);
	}
	if (bench_wants("daemon"))
		bench_serve(&b, 20000 / (size_t)bench_scale);
	if (bench_wants("memory"))
		bench_memory(bench_scale == 1 ? 1000 : 100);
	wire_free(&b);
	engine_free(e);
	return 0;
}
