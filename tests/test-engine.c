/* SPDX-License-Identifier: ISC */
/*
 * The engine on real helpers: every behaviour the reference executor's
 * tests pin down, then what a native plugin can do that a Rust closure
 * cannot (SIGSEGV, abort, exit, closing fds, writing garbage), in a call
 * and in init, and files that are not plugins at all.  After every test:
 * no zombie, no leaked fd.
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "testutil.h"

#define TEST_LOG_MAX	512	/* log lines kept */

struct fixture {
	struct engine	*e;
	int		 fds;
	char		(*log)[1024];	/* the first TEST_LOG_MAX */
	size_t		 nlog;		/* lines logged, kept or not */
};

/* The outcome of one call, filled in by the callback. */
struct wait {
	bool		done;
	struct result	r;
	char		hex[VERSION_HEX_LEN + 1];
};

/* Engine callback for tests. */
static void
test_done(const struct result *r, void *arg)
{
	struct wait	*w = arg;

	w->r = *r;
	w->done = true;
	if (r->module != NULL)
		strlcpy(w->hex, r->module->hex, sizeof w->hex);
}

/* Run the loop until every wait in ws is done. */
static void
test_wait(struct engine *e, struct wait *ws, size_t n)
{
	for (;;) {
		size_t	done = 0;

		for (size_t i = 0; i < n; i++)
			done += ws[i].done;
		if (done == n)
			return;
		assert_int_not_equal(engine_run(e, 1000), -1);
	}
}

/* Run the loop until every wait in ws is done, failing after ms. */
static void
test_wait_for(struct engine *e, struct wait *ws, size_t n, int ms)
{
	uint64_t	end = engine_now() + (uint64_t)ms * MS_NS;

	for (;;) {
		size_t	done = 0;

		for (size_t i = 0; i < n; i++)
			done += ws[i].done;
		if (done == n)
			return;
		if (engine_now() > end)
			fail_msg("%zu of %zu calls still running after %d ms",
			    n - done, n, ms);
		assert_int_not_equal(engine_run(e, 10), -1);
	}
}

/*
 * A watchdog for tests a broken engine could wedge inside engine_run:
 * SIGALRM ends the suite, which then fails instead of hanging.  Teardown
 * disarms it.
 */
static void
test_watchdog(u_int sec)
{
	alarm(sec);
}

/* Load a plugin, with options "k=v" strings, asserting it reads. */
static struct module *
test_load(struct engine *e, const char *path, const char *opt1,
    const char *opt2)
{
	struct route_option	 opts[2];
	struct module		*m = NULL;
	char			 buf[2][64], err[DETAIL_MAX];
	const char		*kv[2] = { opt1, opt2 };
	size_t			 n = 0;

	for (int i = 0; i < 2; i++) {
		char	*eq;

		if (kv[i] == NULL)
			continue;
		strlcpy(buf[i], kv[i], sizeof buf[i]);
		eq = strchr(buf[i], '=');
		assert_non_null(eq);
		*eq = '\0';
		opts[n].key = buf[i];
		opts[n].value = eq + 1;
		n++;
	}
	if (engine_load(e, path, NULL, opts, n, &m, err, sizeof err) == -1)
		fail_msg("load %s: %s", path, err);
	return m;
}

/* One call with the given fields and consumers. */
static struct wait
test_call_with(struct engine *e, struct module *m,
    const struct testutil_field *fl, size_t nf,
    const struct testutil_consumer *c, size_t nc, int timeout_ms)
{
	struct wire_buf	b;
	struct wait	w;

	memset(&w, 0, sizeof w);
	testutil_body(&b, fl, nf, c, nc);
	assert_int_equal(engine_call(e, m, b.data, b.len, timeout_ms,
	    test_done, &w), 0);
	wire_free(&b);
	test_wait(e, &w, 1);
	return w;
}

/* One call with the given consumers and no fields. */
static struct wait
test_call(struct engine *e, struct module *m,
    const struct testutil_consumer *c, size_t nc, int timeout_ms)
{
	return test_call_with(e, m, NULL, 0, c, nc, timeout_ms);
}

static const struct testutil_consumer	one_ready[] = {
	{ "ready", 0, 1, 0, { NULL } },
};

/* Start a call with the given fields to one ready consumer. */
static void
test_start(struct engine *e, struct module *m,
    const struct testutil_field *fl, size_t nf, int timeout_ms,
    struct wait *w)
{
	struct wire_buf	b;

	memset(w, 0, sizeof *w);
	testutil_body(&b, fl, nf, one_ready, 1);
	assert_int_equal(engine_call(e, m, b.data, b.len, timeout_ms,
	    test_done, w), 0);
	wire_free(&b);
}

/* The engine's log: keep lines for assertions; TEST_VERBOSE shows them. */
static void
test_log(void *arg, int prio, const char *line)
{
	struct fixture	*f = arg;

	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "log %d: %s\n", prio, line);
	if (f->nlog < TEST_LOG_MAX)
		strlcpy(f->log[f->nlog], line, sizeof f->log[0]);
	f->nlog++;
}

/* How many kept log lines contain s. */
static u_int
test_logged(const struct fixture *f, const char *s)
{
	u_int	n = 0;

	for (size_t i = 0; i < f->nlog && i < TEST_LOG_MAX; i++)
		if (strstr(f->log[i], s) != NULL)
			n++;
	return n;
}

/* Per-test setup: a fresh engine, and the fd count to return to. */
static int
setup(void **state)
{
	struct engine_config	 conf;
	struct fixture		*f = calloc(1, sizeof *f);
	char			 err[DETAIL_MAX];

	assert_non_null(f);
	assert_non_null(f->log = calloc(TEST_LOG_MAX, sizeof f->log[0]));
	f->fds = testutil_fds();
	engine_defaults(&conf);
	conf.grace_ms = 2000;
	conf.log = test_log;
	conf.log_arg = f;
	f->e = engine_new(&conf, err, sizeof err);
	assert_non_null(f->e);
	*state = f;
	return 0;
}

/* The pid of this process's zygote: the engine's one child. */
static pid_t
test_zygote_pid(void)
{
	char	 path[64];
	FILE	*f;
	long	 pid, found = 0;
	int	 n = 0;

	snprintf(path, sizeof path, "/proc/self/task/%ld/children",
	    (long)getpid());
	assert_non_null(f = fopen(path, "r"));
	while (fscanf(f, "%ld", &pid) == 1) {
		found = pid;
		n++;
	}
	fclose(f);
	assert_int_equal(n, 1);
	return (pid_t)found;
}

/* Per-test teardown: free the engine; no zombie and no fd left behind. */
static int
teardown(void **state)
{
	struct fixture	*f = *state;

	engine_free(f->e);
	alarm(0);
	assert_true(testutil_no_children());
	assert_int_equal(testutil_fds(), f->fds);
	free(f->log);
	free(f);
	return 0;
}

/* Reference: the function sees the consumer view and picks from it. */
static void
test_decision_uses_consumer_view(void **state)
{
	struct fixture			*f = *state;
	static const struct testutil_consumer	c[] = {
		{ "saturated", 5, 5, 0, { "fast", NULL } },
		{ "ready", 1, 4, 0, { "fast", NULL } },
	};
	struct module			*m;
	struct wait			 w;

	m = test_load(f->e, testutil_plugin("first-available", true), NULL,
	    NULL);
	w = test_call(f->e, m, c, 2, 0);
	assert_int_equal(w.r.status, ST_OK);
	assert_int_equal(w.r.decision, 1);
	assert_string_equal(w.hex, m->hex);
	assert_string_equal(m->name, "first-available");
	assert_int_equal(m->abi, ROUTE_ABI_VERSION);
	engine_release(f->e, m);
}

/* Reference: message fields are visible to the routing function. */
static void
test_message_fields_visible(void **state)
{
	struct fixture		*f = *state;
	struct testutil_field	 fl[] = {
		{ "amount", { .type = ROUTE_INTEGER, .integer = 5000 } },
	};
	static const struct testutil_consumer	c[] = {
		{ "priority", 0, 1, 0, { NULL } },
	};
	struct module		*m;
	struct wire_buf		 b;
	struct wait		 w[2];

	memset(w, 0, sizeof w);
	m = test_load(f->e, testutil_plugin("amount", false), NULL, NULL);
	testutil_body(&b, fl, 1, c, 1);
	assert_int_equal(engine_call(f->e, m, b.data, b.len, 0, test_done,
	    &w[0]), 0);
	wire_free(&b);
	fl[0].value.integer = 10;
	testutil_body(&b, fl, 1, c, 1);
	assert_int_equal(engine_call(f->e, m, b.data, b.len, 0, test_done,
	    &w[1]), 0);
	wire_free(&b);
	test_wait(f->e, w, 2);
	assert_int_equal(w[0].r.status, ST_OK);
	assert_int_equal(w[0].r.decision, 0);
	assert_int_equal(w[1].r.status, ST_OK);
	assert_int_equal(w[1].r.decision, ROUTE_NONE);
	engine_release(f->e, m);
}

/* Every field type and the consumers' tags arrive intact. */
static void
test_all_field_types(void **state)
{
	struct fixture		*f = *state;
	const struct testutil_field	fl[] = {
		{ "b", { .type = ROUTE_BOOLEAN, .boolean = true } },
		{ "f", { .type = ROUTE_FLOAT, .real = 2.5 } },
		{ "i", { .type = ROUTE_INTEGER, .integer = -7 } },
		{ "n", { .type = ROUTE_NULL } },
		{ "tag", { .type = ROUTE_TEXT, .text = "eu", .len = 2 } },
		{ "target", { .type = ROUTE_TEXT, .text = "c\xc3\xa9", .len = 3 } },
	};
	static const struct testutil_consumer	c[] = {
		{ "a", 0, 1, 0, { "eu", NULL } },
		{ "c\xc3\xa9", 0, 1, 0, { "us", NULL } },
		{ "c\xc3\xa9" "2", 0, 1, 0, { "eu", NULL } },
		{ "d", 0, 1, 0, { NULL } },
	};
	struct testutil_consumer	c2[4];
	struct module		*m;
	struct wire_buf		 b;
	struct wait		 w[2];

	memset(w, 0, sizeof w);
	m = test_load(f->e, testutil_plugin("fields", false), NULL, NULL);
	/* "cé" lacks tag eu: none.  Then give it the tag: index 1. */
	testutil_body(&b, fl, 6, c, 4);
	assert_int_equal(engine_call(f->e, m, b.data, b.len, 0, test_done,
	    &w[0]), 0);
	wire_free(&b);
	memcpy(c2, c, sizeof c2);
	c2[1].tags[0] = "eu";
	testutil_body(&b, fl, 6, c2, 4);
	assert_int_equal(engine_call(f->e, m, b.data, b.len, 0, test_done,
	    &w[1]), 0);
	wire_free(&b);
	test_wait(f->e, w, 2);
	assert_int_equal(w[0].r.status, ST_OK);
	assert_int_equal(w[0].r.decision, ROUTE_NONE);
	assert_int_equal(w[1].r.status, ST_OK);
	assert_int_equal(w[1].r.decision, 1);
	engine_release(f->e, m);
}

/* Reference: a crash is contained and another channel still proceeds. */
static void
test_crash_contained_other_channel_proceeds(void **state)
{
	struct fixture	*f = *state;
	struct module	*crashing, *healthy;
	struct wait	 w;

	crashing = test_load(f->e, testutil_plugin("misbehave", false),
	    "mode=segv", NULL);
	healthy = test_load(f->e, testutil_plugin("first-available", true),
	    NULL, NULL);
	w = test_call(f->e, crashing, NULL, 0, 0);
	assert_int_equal(w.r.status, ST_CRASHED);
	assert_string_equal(w.hex, crashing->hex);
	/* Where: the faulting address, and the plugin's own code. */
	if (strncmp(w.r.detail, "SIGSEGV: address 0x0, in the plugin at "
	    "offset 0x", 45) != 0)
		fail_msg("detail '%s'", w.r.detail);
	w = test_call(f->e, healthy, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	assert_int_equal(w.r.decision, 0);
	engine_release(f->e, crashing);
	engine_release(f->e, healthy);
}

/* Reference: 16 crash/healthy pairs do not poison the supervisor. */
static void
test_repeated_crashes_do_not_poison(void **state)
{
	struct fixture	*f = *state;
	struct module	*crashing, *healthy;
	struct wait	 w;

	crashing = test_load(f->e, testutil_plugin("misbehave", false),
	    "mode=abort", NULL);
	healthy = test_load(f->e, testutil_plugin("first-available", true),
	    NULL, NULL);
	/* The same body each time: without a memo, it runs each time. */
	engine_set_crash(crashing, &(struct crash_conf){ .memo = -1 });
	for (int i = 0; i < 16; i++) {
		w = test_call(f->e, crashing, NULL, 0, 0);
		assert_int_equal(w.r.status, ST_CRASHED);
		assert_string_equal(w.hex, crashing->hex);
		assert_string_equal(w.r.detail, "SIGABRT");
		w = test_call(f->e, healthy, one_ready, 1, 0);
		assert_int_equal(w.r.status, ST_OK);
		assert_int_equal(w.r.decision, 0);
	}
	assert_int_equal(crashing->crashed, 16);
	assert_int_equal(healthy->served, 16);
	engine_release(f->e, crashing);
	engine_release(f->e, healthy);
}

/* Run the loop until pid has been reaped (kill says it is gone). */
static void
test_wait_gone(struct engine *e, pid_t pid)
{
	while (kill(pid, 0) == 0)
		assert_int_not_equal(engine_run(e, 100), -1);
	assert_int_equal(errno, ESRCH);
}

/* Reference: 200 ms against a 20 ms deadline times out; helper gone. */
static void
test_slow_function_times_out(void **state)
{
	struct fixture	*f = *state;
	struct module	*m;
	struct wait	 w;
	pid_t		 pids[4];
	u_int		 n;

	m = test_load(f->e, testutil_plugin("misbehave", false), "mode=sleep",
	    "ms=200");
	/* Warm a helper first, so the deadline meets the plugin itself. */
	w = test_call(f->e, m, NULL, 0, 5000);
	assert_int_equal(w.r.status, ST_OK);
	n = module_pids(m, pids, 4);
	assert_int_equal(n, 1);
	w = test_call(f->e, m, NULL, 0, 20);
	assert_int_equal(w.r.status, ST_TIMED_OUT);
	assert_string_equal(w.hex, m->hex);
	assert_non_null(strstr(w.r.detail, "killed"));
	test_wait_gone(f->e, pids[0]);
	assert_int_equal(m->timed_out, 1);
	engine_release(f->e, m);
}

/* A helper spinning forever is killed at the deadline, and replaced. */
static void
test_infinite_loop_times_out(void **state)
{
	struct fixture	*f = *state;
	struct module	*m, *ok;
	struct wait	 w;

	m = test_load(f->e, testutil_plugin("misbehave", false), "mode=loop",
	    NULL);
	ok = test_load(f->e, testutil_plugin("first-available", true), NULL,
	    NULL);
	for (int i = 0; i < 3; i++) {
		w = test_call(f->e, m, NULL, 0, 50);
		assert_int_equal(w.r.status, ST_TIMED_OUT);
		w = test_call(f->e, ok, one_ready, 1, 0);
		assert_int_equal(w.r.status, ST_OK);
	}
	engine_release(f->e, m);
	engine_release(f->e, ok);
}

/* Reference: content hashes are stable and distinct. */
static void
test_hash_stable_and_distinct(void **state)
{
	struct fixture	*f = *state;
	struct module	*a, *b;
	unsigned char	 hash[VERSION_LEN];
	char		 hex[VERSION_HEX_LEN + 1];
	const char	*path = testutil_plugin("first-available", true);
	int		 fd;

	a = test_load(f->e, path, NULL, NULL);
	b = test_load(f->e, testutil_plugin("amount", false), NULL, NULL);
	assert_string_not_equal(a->hex, b->hex);
	assert_int_equal(strlen(a->hex), VERSION_HEX_LEN);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_not_equal(fd, -1);
	assert_int_equal(version_file(fd, hash), 0);
	close(fd);
	version_hex(hash, hex);
	assert_string_equal(a->hex, hex);
	engine_release(f->e, a);
	engine_release(f->e, b);
}

/* Copy file src to dst. */
static void
test_copy(const char *src, const char *dst)
{
	char	buf[65536];
	ssize_t	n;
	int	in, out;

	in = open(src, O_RDONLY | O_CLOEXEC);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(in != -1 && out != -1);
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

/* Reference: loading the same bytes twice, from any path, dedupes. */
static void
test_load_twice_dedupes(void **state)
{
	struct fixture	*f = *state;
	struct module	*a, *b, *c;
	char		 tmp[] = "/tmp/route-host-test-XXXXXX";
	char		 copy[sizeof tmp + 16];

	assert_non_null(mkdtemp(tmp));
	snprintf(copy, sizeof copy, "%s/other.so", tmp);
	test_copy(testutil_plugin("first-available", true), copy);
	a = test_load(f->e, testutil_plugin("first-available", true), NULL,
	    NULL);
	b = test_load(f->e, copy, NULL, NULL);
	assert_ptr_equal(a, b);
	assert_int_equal(engine_loaded(f->e), 1);
	assert_int_equal(a->holders, 2);
	/* Other options: the same version, configured differently. */
	c = test_load(f->e, copy, "k=v", NULL);
	assert_ptr_not_equal(a, c);
	assert_string_equal(a->hex, c->hex);
	assert_int_equal(engine_loaded(f->e), 2);
	engine_release(f->e, a);
	engine_release(f->e, b);
	engine_release(f->e, c);
	unlink(copy);
	rmdir(tmp);
}

/* Overwriting the file after loading cannot change the loaded version. */
static void
test_cp_over_loaded_file(void **state)
{
	struct fixture	*f = *state;
	struct module	*m;
	struct wait	 w;
	char		 tmp[] = "/tmp/route-host-test-XXXXXX";
	char		 path[sizeof tmp + 16], hex[VERSION_HEX_LEN + 1];

	assert_non_null(mkdtemp(tmp));
	snprintf(path, sizeof path, "%s/x.so", tmp);
	test_copy(testutil_plugin("first-available", true), path);
	m = test_load(f->e, path, NULL, NULL);
	strlcpy(hex, m->hex, sizeof hex);
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.decision, 0);
	/* cp in place: truncate and write other bytes. */
	test_copy(testutil_plugin("amount", false), path);
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	assert_int_equal(w.r.decision, 0);	/* amount would say none */
	assert_string_equal(w.hex, hex);
	/* Even a fresh helper gets the old bytes. */
	w = test_call(f->e, m, NULL, 0, 0);
	assert_int_equal(w.r.status, ST_OK);
	engine_release(f->e, m);
	unlink(path);
	rmdir(tmp);
}

/* Expect one call to misbehave's mode (in a call) to crash with cause. */
static void
test_crash_cause(struct engine *e, const char *mode, const char *cause)
{
	struct module	*m;
	struct wait	 w;
	char		 opt[32];

	snprintf(opt, sizeof opt, "mode=%s", mode);
	m = test_load(e, testutil_plugin("misbehave", false), opt, NULL);
	w = test_call(e, m, one_ready, 1, 2000);
	assert_int_equal(w.r.status, ST_CRASHED);
	if (strncmp(w.r.detail, cause, strlen(cause)) != 0)
		fail_msg("mode=%s: detail '%s', expected '%s'", mode,
		    w.r.detail, cause);
	engine_release(e, m);
}

/*
 * A plugin that closes every descriptor, the helper's socket with them,
 * and returns: its answer was written to the ledger, so the call keeps
 * it; the helper, unable to announce it, is killed, and a fresh one
 * answers the next call.
 */
static void
test_closed_socket(struct engine *e)
{
	struct module	*m;
	struct wait	 w;
	pid_t		 before, after;

	m = test_load(e, testutil_plugin("misbehave", false), "mode=closefds",
	    NULL);
	w = test_call(e, m, one_ready, 1, 2000);
	assert_int_equal(module_pids(m, &before, 1), 1);
	assert_int_equal(w.r.status, ST_OK);
	assert_int_equal(w.r.decision, 0);
	w = test_call(e, m, one_ready, 1, 2000);
	assert_int_equal(w.r.status, ST_OK);
	assert_int_equal(module_pids(m, &after, 1), 1);
	assert_true(before != after);
	engine_release(e, m);
}

/* SIGSEGV, abort, exit, closed fds, garbage, oversize: each contained. */
static void
test_misbehaving_calls(void **state)
{
	struct fixture	*f = *state;
	struct module	*ok;
	struct wait	 w;

	test_crash_cause(f->e, "segv", "SIGSEGV: address 0x0, in the plugin "
	    "at offset 0x");
	/* A fault in libc, called with NULL: the plugin's call names it. */
	test_crash_cause(f->e, "strlen", "SIGSEGV: address 0x0, in a library "
	    "function the plugin called at offset 0x");
	test_crash_cause(f->e, "abort", "SIGABRT");
	test_crash_cause(f->e, "exit", "exit 3");
	test_closed_socket(f->e);
	test_crash_cause(f->e, "garbage", "protocol violation");
	test_crash_cause(f->e, "oversize", "protocol violation");
	ok = test_load(f->e, testutil_plugin("first-available", true), NULL,
	    NULL);
	w = test_call(f->e, ok, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	engine_release(f->e, ok);
}

/* Expect a load of path with options to fail its handshake with why. */
static void
test_spawn_fails(struct engine *e, const char *path, const char *opt1,
    const char *opt2, const char *why)
{
	struct module	*m;
	struct wait	 w;

	m = test_load(e, path, opt1, opt2);
	w = test_call(e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_SPAWN_FAILED);
	if (strstr(w.r.detail, why) == NULL)
		fail_msg("%s %s: detail '%s', expected '%s'", path,
		    opt1 ? opt1 : "", w.r.detail, why);
	assert_string_equal(w.hex, m->hex);
	/* Fails fast now, with the same reason, without a new helper. */
	w = test_call(e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_SPAWN_FAILED);
	assert_non_null(strstr(w.r.detail, why));
	engine_release(e, m);
}

/*
 * A fork that takes long (a busy machine, here a stopped zygote) delays
 * only the helper being forked: the engine never waits for the zygote's
 * answer, so a version with a helper keeps answering meanwhile.  A zygote
 * silent past its deadline is given up on: the engine is broken, with the
 * reason, and says so in the log.
 */
static void
test_slow_zygote_blocks_no_one(void **state)
{
	struct fixture	*f = *state;
	struct module	*a, *b, *c;
	struct wait	 wa, wb, wc;
	pid_t		 zygote = test_zygote_pid();
	uint64_t	 end;

	test_watchdog(60);
	a = test_load(f->e, testutil_plugin("first-available", true), "v=a",
	    NULL);
	wa = test_call(f->e, a, one_ready, 1, 0);
	assert_int_equal(wa.r.status, ST_OK);
	b = test_load(f->e, testutil_plugin("first-available", true), "v=b",
	    NULL);
	assert_int_equal(kill(zygote, SIGSTOP), 0);
	test_start(f->e, b, NULL, 0, 0, &wb);
	test_start(f->e, a, NULL, 0, 0, &wa);
	test_wait_for(f->e, &wa, 1, 2000);
	assert_int_equal(wa.r.status, ST_OK);
	assert_false(wb.done);
	assert_int_equal(kill(zygote, SIGCONT), 0);
	test_wait_for(f->e, &wb, 1, 5000);
	assert_int_equal(wb.r.status, ST_OK);

	/* Silent for good: the call ends at its helper's init grace. */
	c = test_load(f->e, testutil_plugin("first-available", true), "v=c",
	    NULL);
	assert_int_equal(kill(zygote, SIGSTOP), 0);
	test_start(f->e, c, NULL, 0, 0, &wc);
	test_wait_for(f->e, &wc, 1, 8000);
	assert_int_equal(wc.r.status, ST_SPAWN_FAILED);
	end = engine_now() + 8000 * MS_NS;
	while (engine_broken(f->e) == NULL && engine_now() < end)
		assert_int_not_equal(engine_run(f->e, 100), -1);
	assert_non_null(engine_broken(f->e));
	assert_string_equal(engine_broken(f->e),
	    "the zygote stopped answering");
	assert_int_equal(test_logged(f, "the zygote did not answer"), 1);
	engine_release(f->e, a);
	engine_release(f->e, b);
	engine_release(f->e, c);
}

/*
 * A call with hundreds of consumers, in a sandboxed helper: the helper's
 * decoder sorts their ids with qsort(3), which asks the kernel for the
 * memory size (sysinfo); the sandbox must answer that with an error, not
 * kill the helper.  (Found by check --fuzz.)
 */
static void
test_many_consumers(void **state)
{
	struct fixture			*f = *state;
	struct testutil_consumer	 c[300];
	struct module			*m;
	struct wait			 w;
	char				 ids[300][8];

	for (size_t i = 0; i < nitems(c); i++) {
		snprintf(ids[i], sizeof ids[i], "c%zu", i);
		memset(&c[i], 0, sizeof c[i]);
		c[i].id = ids[i];
		c[i].max_in_flight = i == 299 ? 1 : 0;
	}
	m = test_load(f->e, testutil_plugin("first-available", true), NULL,
	    NULL);
	w = test_call(f->e, m, c, nitems(c), 0);
	if (w.r.status != ST_OK)
		fail_msg("%s: %s", engine_status_name(w.r.status), w.r.detail);
	assert_int_equal(w.r.decision, 299);
	engine_release(f->e, m);
}

/* Crashes and failures inside init are spawn failures, not crashes. */
static void
test_misbehaving_init(void **state)
{
	struct fixture	*f = *state;
	const char	*mis = testutil_plugin("misbehave", false);

	test_spawn_fails(f->e, mis, "mode=segv", "at=init",
	    "died while loading: SIGSEGV");
	test_spawn_fails(f->e, mis, "mode=abort", "at=init",
	    "died while loading: SIGABRT");
	test_spawn_fails(f->e, mis, "mode=exit", "at=init",
	    "died while loading: exit 3");
	test_spawn_fails(f->e, mis, "mode=fail", NULL,
	    "init failed: refusing to start: mode=fail");
	test_spawn_fails(f->e, mis, "mode=garbage", "at=init",
	    "protocol violation");
	test_spawn_fails(f->e, mis, "mode=closefds", "at=init",
	    "died while loading");
}

/* An init that never returns is killed after the grace period. */
static void
test_init_hangs(void **state)
{
	struct engine_config	 conf;
	struct engine		*e;
	char			 err[DETAIL_MAX];
	struct fixture		*f = *state;

	engine_free(f->e);
	engine_defaults(&conf);
	conf.grace_ms = 100;
	f->e = e = engine_new(&conf, err, sizeof err);
	assert_non_null(e);
	test_spawn_fails(e, testutil_plugin("misbehave", false), "mode=loop",
	    "at=init", "init did not finish within 100 ms");
}

/* Find the path of a loaded system library, e.g. libz. */
static int
test_find_lib(struct dl_phdr_info *info, size_t size, void *arg)
{
	char	*out = arg;

	(void)size;
	if (strstr(info->dlpi_name, "libz.so") != NULL) {
		strlcpy(out, info->dlpi_name, PATH_MAX);
		return 1;
	}
	return 0;
}

/* Files that are not plugins: each fails to load with its reason. */
static void
test_not_plugins(void **state)
{
	struct fixture	*f = *state;
	char		 tmp[] = "/tmp/route-host-test-XXXXXX";
	char		 empty[sizeof tmp + 16], text[sizeof tmp + 16];
	char		 lib[PATH_MAX] = "", real[PATH_MAX];
	void		*z;
	int		 fd;

	assert_non_null(mkdtemp(tmp));
	snprintf(empty, sizeof empty, "%s/empty.so", tmp);
	snprintf(text, sizeof text, "%s/text.so", tmp);
	fd = open(empty, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	close(fd);
	fd = open(text, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_int_equal(write(fd, "hello, world\n", 13), 13);
	close(fd);

	test_spawn_fails(f->e, empty, NULL, NULL, "empty file");
	test_spawn_fails(f->e, text, NULL, NULL, "not an ELF");
	test_spawn_fails(f->e, testutil_plugin("no-descriptor", false), NULL,
	    NULL, "missing descriptor");
	test_spawn_fails(f->e, testutil_plugin("wrong-abi", false), NULL,
	    NULL, "ABI mismatch: plugin ABI 999");

	z = dlopen("libz.so.1", RTLD_NOW);
	if (z != NULL) {
		dl_iterate_phdr(test_find_lib, lib);
		assert_non_null(realpath(lib, real));
		test_spawn_fails(f->e, real, NULL, NULL, "missing descriptor");
		dlclose(z);
	}
	unlink(empty);
	unlink(text);
	rmdir(tmp);
}

/* Decisions out of range are bad decisions; ROUTE_NONE is fine. */
static void
test_bad_decisions(void **state)
{
	struct fixture	*f = *state;
	const char	*mis = testutil_plugin("misbehave", false);
	struct module	*m;
	struct wait	 w;

	m = test_load(f->e, mis, "mode=decision", "value=1");
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_BAD_DECISION);
	assert_string_equal(w.r.detail, "plugin returned 1 for 1 consumer");
	engine_release(f->e, m);
	m = test_load(f->e, mis, "mode=decision", "value=-5");
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_BAD_DECISION);
	engine_release(f->e, m);
	m = test_load(f->e, mis, "mode=decision", "value=-1");
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	assert_int_equal(w.r.decision, ROUTE_NONE);
	/* The helper survived the bad decision: same process next time. */
	engine_release(f->e, m);
}

/* Calls queued behind a crashing call run on a fresh helper. */
static void
test_queued_calls_survive_crash(void **state)
{
	struct fixture		*f = *state;
	const struct testutil_field	poison[] = {
		{ "poison", { .type = ROUTE_BOOLEAN, .boolean = true } },
	};
	/* Sent to one helper at once: answered, answered, crash, ... */
	static const bool	 crash[6] = { 0, 0, 1, 0, 1, 0 };
	struct module		*m;
	struct wire_buf		 b;
	struct wait		 w[6];

	memset(w, 0, sizeof w);
	m = test_load(f->e, testutil_plugin("demo-crashy", true), NULL, NULL);
	/* Both crashes are the same body: without a memo, both run. */
	engine_set_crash(m, &(struct crash_conf){ .memo = -1 });
	for (int i = 0; i < 6; i++) {
		testutil_body(&b, poison, crash[i] ? 1 : 0, one_ready, 1);
		assert_int_equal(engine_call(f->e, m, b.data, b.len, 0,
		    test_done, &w[i]), 0);
		wire_free(&b);
	}
	test_wait(f->e, w, 6);
	for (int i = 0; i < 6; i++) {
		if (crash[i]) {
			assert_int_equal(w[i].r.status, ST_CRASHED);
			assert_int_equal(strncmp(w[i].r.detail, "SIGSEGV: ",
			    9), 0);
		} else {
			/* Answered before the crash, or run again after. */
			assert_int_equal(w[i].r.status, ST_OK);
			assert_int_equal(w[i].r.decision, 0);
		}
	}
	assert_int_equal(m->crashed, 2);
	engine_release(f->e, m);
}

/* m's helper in state st (the first, put in *h), or false. */
static bool
test_proc_in(struct module *m, const char *st, struct engine_helper *h)
{
	struct engine_helper	hs[16];
	u_int			n = engine_helpers(m, hs, nitems(hs));

	for (u_int i = 0; i < n; i++)
		if (strcmp(hs[i].state, st) == 0) {
			if (h != NULL)
				*h = hs[i];
			return true;
		}
	return false;
}

/* How many helpers of m are not yet reaped. */
static u_int
test_nprocs(struct module *m)
{
	struct engine_helper	hs[16];

	return engine_helpers(m, hs, nitems(hs));
}

/*
 * A call a helper finished ahead of a slow one is answered while the slow
 * one still runs, although the helper announces results only between
 * runs of calls: the host reads its ledger meanwhile.
 */
static void
test_answer_not_held_by_slow_call(void **state)
{
	struct fixture		*f = *state;
	struct testutil_field	 fl = { "sleep_ms", { .type = ROUTE_INTEGER } };
	struct module		*m;
	struct wire_buf		 b;
	struct wait		 w[2];

	memset(w, 0, sizeof w);
	m = test_load(f->e, testutil_plugin("demo-sleepy", true), NULL, NULL);
	w[0] = test_call(f->e, m, one_ready, 1, 0);	/* one warm helper */
	memset(w, 0, sizeof w);
	for (int i = 0; i < 2; i++) {
		fl.value.integer = i == 0 ? 0 : 400;
		testutil_body(&b, &fl, 1, one_ready, 1);
		assert_int_equal(engine_call(f->e, m, b.data, b.len, 5000,
		    test_done, &w[i]), 0);
		wire_free(&b);
	}
	test_wait(f->e, &w[0], 1);
	assert_int_equal(w[0].r.status, ST_OK);
	assert_false(w[1].done);	/* answered before the slow one ends */
	test_wait(f->e, &w[1], 1);
	assert_int_equal(w[1].r.status, ST_OK);
	engine_release(f->e, m);
}

/*
 * After a crash a version keeps a loaded spare: the next crash is replaced
 * by promoting it, with no fork on the next call's path, and a new spare
 * is loaded behind it.  The spare goes once the standby window passes.
 */
static void
test_standby_after_crash(void **state)
{
	struct fixture		*f = *state;
	struct engine_config	 conf;
	const struct testutil_field	poison[] = {
		{ "poison", { .type = ROUTE_BOOLEAN, .boolean = true } },
	};
	struct module		*m;
	struct engine_helper	 spare;
	struct wait		 w;
	char			 err[DETAIL_MAX];
	pid_t			 spare_pid;
	uint64_t		 end;

	engine_free(f->e);
	engine_defaults(&conf);
	conf.standby_ms = 400;
	assert_non_null(f->e = engine_new(&conf, err, sizeof err));
	m = test_load(f->e, testutil_plugin("demo-crashy", true), NULL, NULL);
	/* The same poison body twice: without a memo, it crashes twice. */
	engine_set_crash(m, &(struct crash_conf){ .memo = -1 });
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	assert_false(test_proc_in(m, "standby", NULL));	/* none before a fault */

	w = test_call_with(f->e, m, poison, 1, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_CRASHED);
	end = engine_now() + 5000 * MS_NS;
	while (!test_proc_in(m, "standby", &spare) && engine_now() < end)
		engine_run(f->e, 10);
	assert_true(test_proc_in(m, "standby", &spare));
	assert_true(spare.spare);
	spare_pid = spare.pid;

	/* The spare takes the next call once its sibling crashes. */
	w = test_call_with(f->e, m, poison, 1, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_CRASHED);
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	assert_true(test_proc_in(m, "idle", &spare));
	assert_int_equal(spare.pid, spare_pid);
	assert_false(spare.spare);

	/* A new spare loads behind it, and goes with the window. */
	end = engine_now() + 5000 * MS_NS;
	while (!test_proc_in(m, "standby", NULL) && engine_now() < end)
		engine_run(f->e, 10);
	assert_true(test_proc_in(m, "standby", NULL));
	end = engine_now() + 5000 * MS_NS;
	while (test_nprocs(m) > 1 && engine_now() < end)
		engine_run(f->e, 10);
	assert_int_equal(test_nprocs(m), 1);
	assert_false(test_proc_in(m, "standby", NULL));
	engine_release(f->e, m);
}

/*
 * Calls a helper finished ahead of a slow one keep their answers when the
 * slow one's deadline kills the helper, even if the helper never got to
 * send them.
 */
static void
test_answers_ahead_of_slow_call(void **state)
{
	struct fixture		*f = *state;
	const struct testutil_field	slow[] = {
		{ "sleep_ms", { .type = ROUTE_INTEGER, .integer = -1 } },
	};
	struct module		*m;
	struct wire_buf		 b;
	struct wait		 w[4];
	/* The host under valgrind may take longer than 100 ms to answer. */
	int			 deadline = RUNNING_ON_VALGRIND ? 2000 : 100;

	memset(w, 0, sizeof w);
	m = test_load(f->e, testutil_plugin("demo-sleepy", true), NULL, NULL);
	for (int i = 0; i < 4; i++) {
		testutil_body(&b, slow, i == 2 ? 1 : 0, one_ready, 1);
		assert_int_equal(engine_call(f->e, m, b.data, b.len, deadline,
		    test_done, &w[i]), 0);
		wire_free(&b);
	}
	test_wait(f->e, w, 4);
	assert_int_equal(w[0].r.status, ST_OK);
	assert_int_equal(w[1].r.status, ST_OK);
	assert_int_equal(w[2].r.status, ST_TIMED_OUT);
	assert_non_null(strstr(w[2].r.detail, "killed"));
	/* Behind the loop: never started in time. */
	assert_int_equal(w[3].r.status, ST_TIMED_OUT);
	engine_release(f->e, m);
}

/*
 * Send a call sleeping ahead_ms with a long deadline, then one sleeping
 * behind_ms with a 50 ms deadline, to m's one warm helper.  The second
 * times out waiting; true if the helper that was warm is still the one
 * answering afterwards.
 */
static bool
test_behind_slow(struct engine *e, struct module *m, int ahead_ms,
    int behind_ms)
{
	struct testutil_field	 fl = { "sleep_ms", { .type = ROUTE_INTEGER } };
	struct wire_buf		 b;
	struct wait		 w[3];
	pid_t			 before, after;

	memset(w, 0, sizeof w);
	w[0] = test_call(e, m, one_ready, 1, 5000);	/* warm, one helper */
	assert_int_equal(module_pids(m, &before, 1), 1);
	memset(w, 0, sizeof w);
	fl.value.integer = ahead_ms;
	testutil_body(&b, &fl, 1, one_ready, 1);
	assert_int_equal(engine_call(e, m, b.data, b.len, 5000, test_done,
	    &w[0]), 0);
	wire_free(&b);
	fl.value.integer = behind_ms;
	testutil_body(&b, &fl, 1, one_ready, 1);
	assert_int_equal(engine_call(e, m, b.data, b.len, 50, test_done,
	    &w[1]), 0);
	wire_free(&b);
	test_wait(e, &w[1], 1);
	assert_int_equal(w[1].r.status, ST_TIMED_OUT);
	assert_non_null(strstr(w[1].r.detail, "still busy"));
	assert_false(w[0].done);
	test_wait(e, &w[0], 1);
	assert_int_equal(w[0].r.status, ST_OK);
	/* Let the abandoned call run (or overrun) before the next one. */
	for (uint64_t end = engine_now() + 300 * MS_NS; engine_now() < end;)
		engine_run(e, 10);
	w[2] = test_call(e, m, one_ready, 1, 5000);
	assert_int_equal(w[2].r.status, ST_OK);
	assert_int_equal(module_pids(m, &after, 1), 1);
	return before == after;
}

/*
 * A call waiting in a helper behind a slow one times out on its own
 * deadline, without killing the helper; the helper still runs it, and
 * its late answer is dropped.  Once it runs, its deadline counts again:
 * within it the helper goes on answering, past it the helper is killed,
 * so an abandoned call can never hold a helper for ever.
 */
static void
test_deadline_behind_slow_call(void **state)
{
	struct fixture	*f = *state;
	struct module	*m;

	m = test_load(f->e, testutil_plugin("demo-sleepy", true), NULL, NULL);
	assert_true(test_behind_slow(f->e, m, 200, 10));
	assert_false(test_behind_slow(f->e, m, 200, -1));
	engine_release(f->e, m);
}

/*
 * Two calls too big for the socket together: the helper reads the first
 * and runs it, long, so the second stays half written.  The first was
 * written in full, so its deadline kills the helper, and the version goes
 * on answering on a fresh one.
 */
static void
test_deadline_with_half_written_calls(void **state)
{
	struct fixture		*f = *state;
	struct testutil_field	 big = { "blob", { .type = ROUTE_TEXT } };
	struct module		*m;
	struct wire_buf		 b;
	struct wait		 w[3];
	char			*text;
	size_t			 len = 900 * 1024;

	assert_non_null(text = malloc(len));
	memset(text, 'x', len);
	big.value.text = text;
	big.value.len = len;
	memset(w, 0, sizeof w);
	m = test_load(f->e, testutil_plugin("misbehave", false), "mode=sleep",
	    "ms=600");
	testutil_body(&b, &big, 1, one_ready, 1);
	for (int i = 0; i < 2; i++)
		assert_int_equal(engine_call(f->e, m, b.data, b.len, 300,
		    test_done, &w[i]), 0);
	wire_free(&b);
	test_wait(f->e, w, 2);
	assert_int_equal(w[0].r.status, ST_TIMED_OUT);
	if (strstr(w[0].r.detail, "killed") == NULL)
		fail_msg("first call: '%s', not killed", w[0].r.detail);
	assert_int_equal(w[1].r.status, ST_TIMED_OUT);
	w[2] = test_call(f->e, m, one_ready, 1, 5000);
	assert_int_equal(w[2].r.status, ST_OK);
	free(text);
	engine_release(f->e, m);
}

/*
 * A retired version whose helper holds only an abandoned call: the call's
 * deadline kills the helper, and the version is freed once it is reaped.
 */
static void
test_retired_with_ghost(void **state)
{
	struct fixture		*f = *state;
	struct testutil_field	 fl = { "sleep_ms", { .type = ROUTE_INTEGER } };
	struct module		*m;
	struct wire_buf		 b;
	struct wait		 w[2];
	uint64_t		 end;

	memset(w, 0, sizeof w);
	m = test_load(f->e, testutil_plugin("demo-sleepy", true), NULL, NULL);
	w[0] = test_call(f->e, m, one_ready, 1, 5000);
	memset(w, 0, sizeof w);
	fl.value.integer = 100;
	testutil_body(&b, &fl, 1, one_ready, 1);
	assert_int_equal(engine_call(f->e, m, b.data, b.len, 5000, test_done,
	    &w[0]), 0);
	wire_free(&b);
	fl.value.integer = -1;
	testutil_body(&b, &fl, 1, one_ready, 1);
	assert_int_equal(engine_call(f->e, m, b.data, b.len, 30, test_done,
	    &w[1]), 0);
	wire_free(&b);
	test_wait(f->e, w, 2);
	assert_int_equal(w[1].r.status, ST_TIMED_OUT);
	engine_release(f->e, m);	/* only the ghost holds it now */
	end = engine_now() + 3000 * MS_NS;
	while ((engine_procs(f->e) > 0 || engine_loaded(f->e) > 0) &&
	    engine_now() < end)
		engine_run(f->e, 10);
	assert_int_equal(engine_procs(f->e), 0);
	assert_int_equal(engine_loaded(f->e), 0);
}

/*
 * A crash asks for a spare, then the version stops loading: the loop must
 * not spin on the spare it cannot fork (it turns about once per 100 ms
 * wait here, not thousands of times).
 */
static void
test_spare_that_cannot_load(void **state)
{
	struct fixture	*f = *state;
	struct module	*m;
	struct wait	 w;
	char		 dir[] = "/tmp/route-host-test-XXXXXX";
	char		 flag[64], opt[96];
	uint64_t	 end;
	int		 turns = 0;

	assert_non_null(mkdtemp(dir));
	snprintf(flag, sizeof flag, "%s/fail", dir);
	snprintf(opt, sizeof opt, "fail_if=%s", flag);
	m = test_load(f->e, testutil_plugin("misbehave", false), "mode=segv",
	    opt);
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_CRASHED);
	close(open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	w = test_call(f->e, m, one_ready, 1, 0);	/* respawn: fails */
	assert_true(w.r.status == ST_SPAWN_FAILED || w.r.status == ST_CRASHED);
	for (end = engine_now() + 500 * MS_NS; engine_now() < end; turns++)
		engine_run(f->e, 100);
	if (turns > 100)
		fail_msg("the loop turned %d times in 500 ms", turns);
	unlink(flag);
	rmdir(dir);
	engine_release(f->e, m);
}

/* A malformed body is a bad request from the helper, which survives. */
static void
test_bad_request(void **state)
{
	struct fixture		*f = *state;
	static const struct testutil_consumer	dup[] = {
		{ "a", 0, 1, 0, { NULL } },
		{ "a", 0, 1, 0, { NULL } },
	};
	struct module		*m;
	struct wait		 w;
	pid_t			 before, after;

	m = test_load(f->e, testutil_plugin("first-available", true), NULL,
	    NULL);
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(module_pids(m, &before, 1), 1);
	w = test_call(f->e, m, dup, 2, 0);
	assert_int_equal(w.r.status, ST_BAD_REQUEST);
	assert_string_equal(w.r.detail, "consumer id 'a' appears more than "
	    "once");
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	assert_int_equal(module_pids(m, &after, 1), 1);
	assert_int_equal(before, after);
	engine_release(f->e, m);
}

#define MANY_BEHIND	8

/*
 * Many calls waiting behind a slow one in its helper's FIFO, each on its
 * own deadline: each times out on its own, becomes a ghost the helper
 * still runs, and leaves the deadline tree once (twice corrupts it, and
 * it takes four or more to show).  The slow call is answered, and the
 * engine goes on answering.  (Calls that may still be running when a
 * test fails are static: teardown's engine_free must not write to a dead
 * stack.)
 */
static void
test_many_deadlines_behind_slow_call(void **state)
{
	struct fixture		*f = *state;
	struct testutil_field	 slow = { "sleep_ms", { .type = ROUTE_INTEGER,
	    .integer = 600 } };
	struct module		*m;
	static struct wait	 w[1 + MANY_BEHIND], after;

	test_watchdog(30);
	m = test_load(f->e, testutil_plugin("demo-sleepy", true), NULL, NULL);
	test_start(f->e, m, NULL, 0, 5000, &after);	/* warm, one helper */
	test_wait_for(f->e, &after, 1, 5000);
	assert_int_equal(after.r.status, ST_OK);
	test_start(f->e, m, &slow, 1, 3000, &w[0]);
	for (int i = 1; i <= MANY_BEHIND; i++)
		test_start(f->e, m, NULL, 0, 30 + 7 * i, &w[i]);
	test_wait_for(f->e, w, 1 + MANY_BEHIND, 5000);
	for (int i = 1; i <= MANY_BEHIND; i++) {
		if (w[i].r.status != ST_TIMED_OUT)
			fail_msg("call %d behind: %s '%s'", i,
			    engine_status_name(w[i].r.status), w[i].r.detail);
		assert_non_null(strstr(w[i].r.detail, "still busy"));
	}
	if (w[0].r.status != ST_OK)
		fail_msg("slow call: %s '%s'", engine_status_name(
		    w[0].r.status), w[0].r.detail);
	test_start(f->e, m, NULL, 0, 2000, &after);
	test_wait_for(f->e, &after, 1, 3000);
	assert_int_equal(after.r.status, ST_OK);
	assert_int_equal(engine_pending(f->e), 0);
	engine_release(f->e, m);
}

/* Two watches on eventfds; each one's callback unwatches the other. */
struct pair {
	struct engine	*e;
	struct watch	 w[2];
	int		 ran[2];
};

/* Record that this watch ran, and remove the other from the loop. */
static void
test_pair_cb(struct watch *w, uint32_t events)
{
	struct pair	*pr = w->arg;
	uint64_t	 v;
	int		 i = w == &pr->w[0] ? 0 : 1;

	(void)events;
	(void)!read(w->fd, &v, sizeof v);
	pr->ran[i]++;
	engine_unwatch(pr->e, &pr->w[1 - i]);
}

/*
 * A watch removed by a callback earlier in the same batch of events gets
 * no event from that batch: its owner may have freed it.
 */
static void
test_unwatch_cancels_batch(void **state)
{
	struct fixture	*f = *state;
	struct pair	 pr;
	uint64_t	 one = 1;

	memset(&pr, 0, sizeof pr);
	pr.e = f->e;
	for (int i = 0; i < 2; i++) {
		pr.w[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		assert_int_not_equal(pr.w[i].fd, -1);
		pr.w[i].cb = test_pair_cb;
		pr.w[i].arg = &pr;
		assert_int_equal(engine_watch(f->e, &pr.w[i], EPOLLIN), 0);
		assert_int_equal(write(pr.w[i].fd, &one, sizeof one),
		    (ssize_t)sizeof one);
	}
	assert_int_not_equal(engine_run(f->e, 1000), -1);
	for (int i = 0; i < 2; i++) {
		engine_unwatch(f->e, &pr.w[i]);
		close(pr.w[i].fd);
	}
	if (pr.ran[0] + pr.ran[1] != 1)
		fail_msg("callbacks ran %d and %d times: an unwatched watch "
		    "got its event", pr.ran[0], pr.ran[1]);
}

/*
 * A helper that floods RESULT frames announcing nothing new breaks the
 * protocol: it is killed, its call crashes, and the loop is free again to
 * serve the version (on a fresh helper) and others.
 */
static void
test_result_flood_is_a_violation(void **state)
{
	struct fixture	*f = *state;
	struct module	*m, *ok;
	static struct wait w;

	test_watchdog(30);
	m = test_load(f->e, testutil_plugin("misbehave", false), "mode=flood",
	    "at=init");
	ok = test_load(f->e, testutil_plugin("first-available", true), NULL,
	    NULL);
	test_start(f->e, m, NULL, 0, 2000, &w);
	test_wait_for(f->e, &w, 1, 5000);
	if (w.r.status != ST_CRASHED ||
	    strstr(w.r.detail, "protocol violation") == NULL)
		fail_msg("flooding helper: %s '%s', expected crashed "
		    "'protocol violation ...'", engine_status_name(w.r.status),
		    w.r.detail);
	memset(&w, 0, sizeof w);
	assert_int_equal(engine_probe(f->e, m, test_done, &w), 0);
	test_wait_for(f->e, &w, 1, 5000);
	assert_int_equal(w.r.status, ST_OK);
	test_start(f->e, ok, NULL, 0, 1000, &w);
	test_wait_for(f->e, &w, 1, 2000);
	assert_int_equal(w.r.status, ST_OK);
	engine_release(f->e, ok);
	engine_release(f->e, m);
}

/*
 * A helper that stops reading its socket: a call too big for the socket
 * is never written in full and times out; the helper is then killed and
 * reaped within a few seconds, and a call behind it is answered by a
 * fresh helper.
 */
static void
test_deaf_helper_is_killed(void **state)
{
	struct fixture		*f = *state;
	struct testutil_field	 big = { "blob", { .type = ROUTE_TEXT } };
	const struct testutil_field	deafen = { "deaf",
				    { .type = ROUTE_BOOLEAN, .boolean = true } };
	struct module		*m;
	static struct wait	 w[2];
	uint64_t		 end;
	size_t			 len = (1u << 20) - 1024;
	char			*text;
	pid_t			 deaf;

	test_watchdog(30);
	assert_non_null(text = malloc(len));
	memset(text, 'x', len);
	big.value.text = text;
	big.value.len = len;
	m = test_load(f->e, testutil_plugin("misbehave", false), "mode=deaf",
	    NULL);
	/*
	 * This call makes its helper deaf; its result is announced into the
	 * void, and the host finds it in the ledger at its deadline.
	 */
	test_start(f->e, m, &deafen, 1, 300, &w[0]);
	test_wait_for(f->e, w, 1, 5000);
	assert_int_equal(w[0].r.status, ST_OK);
	assert_int_equal(module_pids(m, &deaf, 1), 1);

	test_start(f->e, m, &big, 1, 100, &w[0]);
	free(text);
	test_wait_for(f->e, w, 1, 3000);
	if (w[0].r.status != ST_TIMED_OUT)
		fail_msg("big call: %s '%s'", engine_status_name(
		    w[0].r.status), w[0].r.detail);

	test_start(f->e, m, NULL, 0, 4000, &w[1]);
	end = engine_now() + 5000 * MS_NS;
	while (kill(deaf, 0) == 0) {
		if (engine_now() > end)
			fail_msg("deaf helper pid %ld still alive 5 s after "
			    "its call timed out", (long)deaf);
		engine_run(f->e, 10);
	}
	assert_int_equal(errno, ESRCH);
	test_wait_for(f->e, &w[1], 1, 5000);
	if (w[1].r.status != ST_OK)
		fail_msg("call behind the deaf helper: %s '%s'",
		    engine_status_name(w[1].r.status), w[1].r.detail);
	engine_release(f->e, m);
}

/* Read a file into buf; its length. */
static size_t
test_slurp(const char *path, char *buf, size_t len)
{
	ssize_t	n;
	int	fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return 0;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return n < 0 ? 0 : (size_t)n;
}

/* How many shared anonymous mappings a process has (valgrind's aside). */
static int
test_shared_maps(pid_t pid)
{
	char	 path[64], line[512], perms[8];
	FILE	*fp;
	int	 n = 0;

	snprintf(path, sizeof path, "/proc/%ld/maps", (long)pid);
	assert_non_null(fp = fopen(path, "r"));
	while (fgets(line, sizeof line, fp) != NULL)
		if (sscanf(line, "%*s %7s", perms) == 1 &&
		    strcmp(perms, "rw-s") == 0 &&
		    strstr(line, "/memfd:") != NULL) {
			assert_non_null(strstr(line, "route-host:ledger"));
			n++;
		}
	fclose(fp);
	return n;
}

/*
 * A helper has fds 0-4 only, a process title, is warm-reused, and shares
 * no memory but its own ledger; as another user, nothing can be seen.
 */
static void
test_helper_hygiene(void **state)
{
	struct fixture	*f = *state;
	struct module	*m, *other;
	struct dirent	*de;
	struct wait	 w;
	char		 path[64], buf[512], want[128];
	DIR		*d;
	pid_t		 pid, again;
	ssize_t		 n;
	int		 nfd = 0;

	m = test_load(f->e, testutil_plugin("first-available", true), NULL,
	    NULL);
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	assert_int_equal(module_pids(m, &pid, 1), 1);

	/*
	 * A helper is not dumpable: a process of its own user cannot look
	 * inside it.  Only root can count its fds.
	 */
	snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
	if (geteuid() != 0) {
		assert_null(d = opendir(path));
		assert_int_equal(errno, EACCES);
		print_message("skipped: counting a helper's fds and maps needs "
		    "root\n");
	} else {
		assert_non_null(d = opendir(path));
		while ((de = readdir(d)) != NULL) {
			/* valgrind keeps its own fds at 1024 and up. */
			if (de->d_name[0] == '.' ||
			    atoi(de->d_name) >= 1024)
				continue;
			assert_true(atoi(de->d_name) <= 4);
			nfd++;
		}
		closedir(d);
		assert_int_equal(nfd, 5);
		/* 1 and 2 are one pipe, whose other end is the engine's. */
		snprintf(path, sizeof path, "/proc/%ld/fd/1", (long)pid);
		assert_int_not_equal(n = readlink(path, buf, sizeof buf - 1),
		    -1);
		buf[n] = '\0';
		assert_int_equal(strncmp(buf, "pipe:", 5), 0);
		snprintf(path, sizeof path, "/proc/%ld/fd/2", (long)pid);
		assert_int_not_equal(n = readlink(path, want, sizeof want - 1),
		    -1);
		want[n] = '\0';
		assert_string_equal(buf, want);
	}

	/* Under valgrind the title area is valgrind's: nothing to see. */
	snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
	test_slurp(path, buf, sizeof buf);
	snprintf(want, sizeof want, "helper first-available %.12s", m->hex);
	if (strstr(buf, "valgrind") == NULL && strstr(buf, want) == NULL)
		fail_msg("title '%s' lacks '%s'", buf, want);

	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(module_pids(m, &again, 1), 1);
	assert_int_equal(pid, again);

	/* Its own ledger is the only one it can see, not the first's. */
	other = test_load(f->e, testutil_plugin("least-loaded", true), NULL,
	    NULL);
	w = test_call(f->e, other, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	assert_int_equal(module_pids(other, &pid, 1), 1);
	if (geteuid() == 0)
		assert_int_equal(test_shared_maps(pid), 1);
	engine_release(f->e, other);
	engine_release(f->e, m);
}

/* The host never starts a thread: forking it cannot deadlock dlopen. */
static void
test_host_single_threaded(void **state)
{
	struct fixture	*f = *state;
	struct module	*m;
	struct wait	 w;
	char		 buf[4096], *t;

	m = test_load(f->e, testutil_plugin("first-available", true), NULL,
	    NULL);
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	test_slurp("/proc/self/status", buf, sizeof buf);
	assert_non_null(t = strstr(buf, "Threads:"));
	assert_int_equal(atoi(t + 8), 1);
	engine_release(f->e, m);
}

/* Freeing the engine with calls running ends them and reaps helpers. */
static void
test_free_with_calls_in_flight(void **state)
{
	struct fixture	*f = *state;
	struct module	*m;
	struct wire_buf	 b;
	struct wait	 w[3];

	memset(w, 0, sizeof w);
	m = test_load(f->e, testutil_plugin("misbehave", false), "mode=loop",
	    NULL);
	testutil_body(&b, NULL, 0, one_ready, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(engine_call(f->e, m, b.data, b.len, 60000,
		    test_done, &w[i]), 0);
	wire_free(&b);
	for (int i = 0; i < 5; i++)
		engine_run(f->e, 20);
	engine_release(f->e, m);
	engine_free(f->e);
	f->e = NULL;
	for (int i = 0; i < 3; i++) {
		assert_true(w[i].done);
		assert_int_equal(w[i].r.status, ST_SHUTTING_DOWN);
	}
	{
		struct engine_config	conf;
		char			err[DETAIL_MAX];

		engine_defaults(&conf);
		f->e = engine_new(&conf, err, sizeof err);
	}
}

/* Files the loader refuses before any helper: symlink, dir, too big. */
static void
test_load_refusals(void **state)
{
	struct fixture	*f = *state;
	struct module	*m;
	char		 err[DETAIL_MAX];
	char		 tmp[] = "/tmp/route-host-test-XXXXXX";
	char		 link[sizeof tmp + 16];

	assert_non_null(mkdtemp(tmp));
	snprintf(link, sizeof link, "%s/link.so", tmp);
	assert_int_equal(symlink(testutil_plugin("first-available", true),
	    link), 0);
	assert_int_equal(engine_load(f->e, link, NULL, NULL, 0, &m, err,
	    sizeof err), -1);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(engine_load(f->e, tmp, NULL, NULL, 0, &m, err,
	    sizeof err), -1);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(engine_load(f->e, "/nonexistent.so", NULL, NULL, 0,
	    &m, err, sizeof err), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(engine_loaded(f->e), 0);
	unlink(link);
	rmdir(tmp);
}

/*
 * A version released while its helper is still loading lets that helper
 * go; held again before the helper has died, it loads afresh, and the
 * old helper's exit (its socket was closed under it) is no load failure.
 * (Found by test-lifecycle: a rollback failed "died while loading".)
 */
static void
test_stopped_while_loading_is_no_failure(void **state)
{
	struct fixture	*f = *state;
	struct module	*m, *again;
	static struct wait	w, probe;
	uint64_t	 end;

	m = test_load(f->e, testutil_plugin("misbehave", false), "mode=sleep",
	    "at=init");
	test_start(f->e, m, NULL, 0, 20, &w);
	test_wait_for(f->e, &w, 1, 5000);
	assert_int_equal(w.r.status, ST_TIMED_OUT);
	engine_release(f->e, m);		/* its helper still in init */
	assert_int_not_equal(engine_run(f->e, 0), -1);
	again = test_load(f->e, testutil_plugin("misbehave", false),
	    "mode=sleep", "at=init");
	assert_ptr_equal(again, m);		/* retired, held again */
	end = engine_now() + 600 * MS_NS;	/* the old helper exits */
	while (engine_now() < end)
		assert_int_not_equal(engine_run(f->e, 10), -1);
	memset(&probe, 0, sizeof probe);
	assert_int_equal(engine_probe(f->e, again, test_done, &probe), 0);
	test_wait_for(f->e, &probe, 1, 5000);
	if (probe.r.status != ST_OK)
		fail_msg("probe after release and reload: %s '%s'",
		    engine_status_name(probe.r.status), probe.r.detail);
	engine_release(f->e, again);
}

static const struct testutil_consumer	two_ready[] = {
	{ "refused", 0, 1, 0, { NULL } },
	{ "escaped", 0, 1, 0, { NULL } },
};

/*
 * A plugin that tries to get out of its sandbox, in a call: every attempt
 * is refused with an error (the call picks consumer 0) or trapped (the
 * call ends crashed, naming the system call), and the host, which a
 * working kill or peek would reach, lives on.
 */
static void
test_sandbox_in_call(void **state)
{
	static const char *const tries[] = {
		"killparent", "killgroup", "fork", "exec", "thread", "peek",
		"open", "create", "socket", "connect", "memory", "fds", "sigio",
	};
	struct fixture	*f = *state;
	struct module	*m;
	struct wait	 w;
	char		 opt[32];

	if (RUNNING_ON_VALGRIND)
		skip();		/* valgrind runs helpers unfiltered */
	for (size_t i = 0; i < nitems(tries); i++) {
		snprintf(opt, sizeof opt, "try=%s", tries[i]);
		m = test_load(f->e, testutil_plugin("escape", false), opt,
		    NULL);
		w = test_call(f->e, m, two_ready, 2, 0);
		print_message("%-10s %s %s%s%s\n", tries[i],
		    engine_status_name(w.r.status), w.r.status == ST_OK ?
		    two_ready[w.r.decision].id : "", w.r.detail[0] != '\0' ?
		    ": " : "", w.r.detail);
		if (w.r.status == ST_OK)
			assert_int_equal(w.r.decision, 0);
		else {
			assert_int_equal(w.r.status, ST_CRASHED);
			if (strncmp(w.r.detail, "seccomp: blocked system call",
			    28) != 0)
				fail_msg("%s: crashed '%s', not by the sandbox",
				    tries[i], w.r.detail);
		}
		engine_release(f->e, m);
	}
	assert_int_equal(access("/tmp/route-host-escaped", F_OK), -1);
}

/*
 * The same attempts while the plugin loads (its init): refused, so the
 * version loads.  (Reading a file and starting threads are allowed there.)
 */
static void
test_sandbox_in_init(void **state)
{
	static const char *const tries[] = {
		"killparent", "killgroup", "fork", "exec", "peek", "socket",
		"connect", "memory", "fds", "sigio",
	};
	struct fixture	*f = *state;
	struct module	*m;
	struct wait	 w;
	char		 opt[32];

	if (RUNNING_ON_VALGRIND)
		skip();		/* valgrind runs helpers unfiltered */
	for (size_t i = 0; i < nitems(tries); i++) {
		snprintf(opt, sizeof opt, "try=%s", tries[i]);
		m = test_load(f->e, testutil_plugin("escape", false), opt,
		    "at=init");
		w = test_call(f->e, m, two_ready, 2, 0);
		if (w.r.status != ST_OK || w.r.decision != 0)
			fail_msg("%s at init: %s '%s'", tries[i],
			    engine_status_name(w.r.status), w.r.detail);
		engine_release(f->e, m);
	}
}

/* Run the loop until every helper is reaped, or fail after ms. */
static void
test_wait_reaped(struct engine *e, int ms)
{
	uint64_t	end = engine_now() + (uint64_t)ms * MS_NS;

	while (engine_procs(e) > 0) {
		if (engine_now() > end)
			fail_msg("%u helpers still alive after %d ms",
			    engine_procs(e), ms);
		assert_int_not_equal(engine_run(e, 10), -1);
	}
}

/* Fail if a kept log line holds a raw control byte. */
static void
test_log_clean(const struct fixture *f)
{
	for (size_t i = 0; i < f->nlog && i < TEST_LOG_MAX; i++)
		for (const char *c = f->log[i]; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				fail_msg("raw byte %#x in log line '%s'",
				    (unsigned char)*c, f->log[i]);
}

/*
 * A plugin's standard output and error reach the engine's log one line at
 * a time, escaped, attributed to its version and helper: its control
 * bytes, terminal escapes and newlines forge no line; a long line is cut,
 * saying so; a last line without a newline is logged once the helper is
 * gone.
 */
static void
test_stderr_escaped(void **state)
{
	struct fixture	*f = *state;
	struct module	*m;
	struct wait	 w;
	char		 who[128], want[512];
	pid_t		 pid;

	test_watchdog(60);
	m = test_load(f->e, testutil_plugin("forge", false), "try=stderr",
	    NULL);
	w = test_call(f->e, m, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);
	assert_int_equal(module_pids(m, &pid, 1), 1);
	snprintf(who, sizeof who, "forge %.12s: helper %ld: stderr: ", m->hex,
	    (long)pid);
	engine_release(f->e, m);
	test_wait_reaped(f->e, 10000);

	test_log_clean(f);
	snprintf(want, sizeof want, "%sprinted on stdout", who);
	assert_int_equal(test_logged(f, want), 1);
	snprintf(want, sizeof want, "%splain words", who);
	assert_int_equal(test_logged(f, want), 1);
	snprintf(want, sizeof want, "%sroute-host[1]: info: channel payments: "
	    "deployed 0123456789ab (plugin \\\"forged\\\")\\033[31m "
	    "red\\001\\177", who);
	if (test_logged(f, want) != 1)
		fail_msg("no log line '%s'", want);
	snprintf(want, sizeof want, "%snul\\0after", who);
	assert_int_equal(test_logged(f, want), 1);
	snprintf(want, sizeof want, "%sxxxxxxxx", who);
	assert_int_equal(test_logged(f, want), 1);
	assert_int_equal(test_logged(f, "xxxxxxxx [cut at 512 bytes]"), 1);
	snprintf(want, sizeof want, "%sno newline at the end", who);
	assert_int_equal(test_logged(f, want), 1);
	assert_int_equal(test_logged(f, "stderr: "), 6);
}

/*
 * A plugin that floods its standard error costs the engine a bounded log:
 * a few lines a second, then how many were dropped, while other versions'
 * calls are answered as ever.
 */
static void
test_stderr_flood(void **state)
{
	struct fixture	*f = *state;
	struct module	*m, *fa;
	struct wait	 flood, w;
	uint64_t	 start, t, worst = 0;
	u_int		 calls = 0, lines;
	double		 secs;

	test_watchdog(60);
	m = test_load(f->e, testutil_plugin("forge", false), "try=flood",
	    NULL);
	fa = test_load(f->e, testutil_plugin("first-available", true), NULL,
	    NULL);
	w = test_call(f->e, fa, one_ready, 1, 0);
	assert_int_equal(w.r.status, ST_OK);

	start = engine_now();
	test_start(f->e, m, NULL, 0, 2500, &flood);
	while (!flood.done) {
		t = engine_now();
		w = test_call(f->e, fa, one_ready, 1, 0);
		assert_int_equal(w.r.status, ST_OK);
		if (engine_now() - t > worst)
			worst = engine_now() - t;
		calls++;
		assert_int_not_equal(engine_run(f->e, 20), -1);
	}
	assert_int_equal(flood.r.status, ST_TIMED_OUT);
	engine_release(f->e, m);
	engine_release(f->e, fa);
	test_wait_reaped(f->e, 10000);
	secs = (double)(engine_now() - start) / 1e9;

	test_log_clean(f);
	lines = test_logged(f, "stderr: flood ");
	print_message("flood: %u lines logged in %.1f s, %u other calls, the "
	    "slowest %.1f ms\n", lines, secs, calls, (double)worst / 1e6);
	assert_true(lines >= 50);
	assert_true(lines <= 50 * ((u_int)secs + 2));
	assert_true(test_logged(f, "lines of stderr dropped") >= 1);
	assert_true(calls >= 10);
	assert_true(worst < 1000 * MS_NS);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_decision_uses_consumer_view),
		T(test_message_fields_visible),
		T(test_all_field_types),
		T(test_crash_contained_other_channel_proceeds),
		T(test_repeated_crashes_do_not_poison),
		T(test_slow_function_times_out),
		T(test_infinite_loop_times_out),
		T(test_hash_stable_and_distinct),
		T(test_load_twice_dedupes),
		T(test_cp_over_loaded_file),
		T(test_misbehaving_calls),
		T(test_misbehaving_init),
		T(test_init_hangs),
		T(test_not_plugins),
		T(test_bad_decisions),
		T(test_queued_calls_survive_crash),
		T(test_answers_ahead_of_slow_call),
		T(test_standby_after_crash),
		T(test_answer_not_held_by_slow_call),
		T(test_deadline_behind_slow_call),
		T(test_retired_with_ghost),
		T(test_deadline_with_half_written_calls),
		T(test_spare_that_cannot_load),
		T(test_bad_request),
		T(test_helper_hygiene),
		T(test_host_single_threaded),
		T(test_free_with_calls_in_flight),
		T(test_load_refusals),
		T(test_unwatch_cancels_batch),
		T(test_result_flood_is_a_violation),
		T(test_deaf_helper_is_killed),
		/* Last: on a corrupted deadline tree even teardown crashes. */
		T(test_sandbox_in_call),
		T(test_sandbox_in_init),
		T(test_stopped_while_loading_is_no_failure),
		T(test_many_deadlines_behind_slow_call),
		T(test_stderr_escaped),
		T(test_stderr_flood),
		T(test_slow_zygote_blocks_no_one),
		T(test_many_consumers),
#undef T
	};

	return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
