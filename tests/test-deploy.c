/* SPDX-License-Identifier: ISC */
/*
 * Hot deploy from a watched directory, on real helpers: the reference's
 * hot-deploy test, every way operators write files, a bad version that
 * must not replace a good one, removal, drain caps, trust, and 100 deploys
 * under continuous traffic with every result accounted for.
 */

#include "config.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <signal.h>
#include <syslog.h>
#include <time.h>

#include "testutil.h"

#define CHAN		"orders"
#define BLOCK_ENTERED	"stderr: block: entered"	/* logged (block.c) */

struct fixture {
	struct engine		*e;
	struct plugdir		*pd;
	struct plugdir_config	 conf;
	char			 dir[64];	/* the plugins directory */
	char			 sig[64];	/* release files */
	u_int			 entered;	/* logged since unsignal */
	char			 log[64][DETAIL_MAX * 2];
	size_t			 nlog;
	int			 fds;
};

/*
 * Keep log lines for assertions, and count block.so's entries instead;
 * show them with TEST_VERBOSE set.
 */
static void
test_log(void *arg, int prio, const char *line)
{
	struct fixture	*f = arg;

	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "log %d: %s\n", prio, line);
	if (strstr(line, BLOCK_ENTERED) != NULL) {
		f->entered++;
		return;
	}
	if (f->nlog < 64)
		strlcpy(f->log[f->nlog++], line, sizeof f->log[0]);
}

/* True when some log line contains s. */
static bool
test_logged(const struct fixture *f, const char *s)
{
	for (size_t i = 0; i < f->nlog; i++)
		if (strstr(f->log[i], s) != NULL)
			return true;
	return false;
}

/* Open the plugins directory with the fixture's configuration. */
static void
test_open(struct fixture *f)
{
	char	err[DETAIL_MAX];

	f->pd = plugdir_open(f->e, f->dir, &f->conf, test_log, f, err,
	    sizeof err);
	if (f->pd == NULL)
		fail_msg("plugdir_open: %s", err);
}

/* Fresh engine, empty plugins directory, signal directory. */
static int
setup(void **state)
{
	struct engine_config	 conf;
	struct fixture		*f = calloc(1, sizeof *f);
	char			 err[DETAIL_MAX];

	assert_non_null(f);
	f->fds = testutil_fds();
	strlcpy(f->dir, "/tmp/route-host-plugins-XXXXXX", sizeof f->dir);
	strlcpy(f->sig, "/tmp/route-host-signal-XXXXXX", sizeof f->sig);
	assert_non_null(mkdtemp(f->dir));
	assert_non_null(mkdtemp(f->sig));
	/* Helpers, as another user if root runs this, look in f->sig. */
	assert_int_equal(chmod(f->sig, 0755), 0);
	/*
	 * block.so's helpers are sandboxed and may open no file to write:
	 * they say "entered" on their standard error, which the engine
	 * logs, and the zygote they inherit the setting from starts here.
	 */
	assert_int_equal(setenv("BLOCK_SIGNAL", "stderr", 1), 0);
	engine_defaults(&conf);
	conf.log = test_log;
	conf.log_arg = f;
	f->e = engine_new(&conf, err, sizeof err);
	assert_non_null(f->e);
	plugdir_defaults(&f->conf);
	f->conf.settle_ms = 100;
	f->conf.rescan_ms = 1000;
	f->conf.drain_ms = 10000;
	*state = f;
	return 0;
}

/* Remove every file in dir, then dir. */
static void
test_rmdir(const char *dir)
{
	char	cmd[256];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* Close everything: no helper, zombie or fd may outlive the test. */
static int
teardown(void **state)
{
	struct fixture	*f = *state;

	plugdir_close(f->pd);
	engine_free(f->e);
	test_rmdir(f->dir);
	unsetenv("BLOCK_SIGNAL");
	test_rmdir(f->sig);
	assert_true(testutil_no_children());
	assert_int_equal(testutil_fds(), f->fds);
	free(f);
	return 0;
}

/* Copy src to dst with open flags. */
static void
test_write(const char *src, const char *dst, int flags, mode_t mode)
{
	char	buf[65536];
	ssize_t	n;
	int	in, out;

	in = open(src, O_RDONLY | O_CLOEXEC);
	out = open(dst, O_WRONLY | O_CLOEXEC | flags, mode);
	if (in == -1 || out == -1)
		fail_msg("copy %s to %s: %s", src, dst, strerror(errno));
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

/* Install plugin src as channel name by write-to-temp and rename. */
static void
test_put(struct fixture *f, const char *name, const char *src)
{
	char	tmp[128], dst[128];

	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", f->dir, name);
	snprintf(dst, sizeof dst, "%s/%s.so", f->dir, name);
	test_write(src, tmp, O_CREAT | O_TRUNC, 0644);
	assert_int_equal(rename(tmp, dst), 0);
}

/* The version hash of a file. */
static void
test_hash(const char *path, char *hex)
{
	unsigned char	hash[VERSION_LEN];
	int		fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_int_not_equal(fd, -1);
	assert_int_equal(version_file(fd, hash), 0);
	close(fd);
	version_hex(hash, hex);
}

/* The channel's active version, or "". */
static const char *
test_active(struct fixture *f, const char *name)
{
	struct channel	*ch = plugdir_channel(f->pd, name);

	return ch != NULL && ch->active != NULL ? ch->active->hex : "";
}

/* Run the loop until the channel's active version is hex (5 s at most). */
static void
test_wait_active(struct fixture *f, const char *name, const char *hex)
{
	uint64_t	end = engine_now() + 5000 * MS_NS;

	while (strcmp(test_active(f, name), hex) != 0) {
		if (engine_now() > end)
			fail_msg("channel %s: active '%.12s', waited for "
			    "'%.12s'", name, test_active(f, name), hex);
		engine_run(f->e, 10);
	}
}

/* Run the loop for ms milliseconds. */
static void
test_spin(struct fixture *f, int ms)
{
	uint64_t	end = engine_now() + (uint64_t)ms * MS_NS;

	while (engine_now() < end)
		engine_run(f->e, 5);
}

/* One call's outcome, and the version active when it was made. */
struct wait {
	bool		done;
	struct result	r;
	char		hex[VERSION_HEX_LEN + 1];
	char		active[VERSION_HEX_LEN + 1];
};

/* Engine callback. */
static void
test_done(const struct result *r, void *arg)
{
	struct wait	*w = arg;

	w->r = *r;
	w->done = true;
	strlcpy(w->hex, r->module != NULL ? r->module->hex : "",
	    sizeof w->hex);
}

/* Start a call on channel name; with block, it waits for release. */
static void
test_call(struct fixture *f, const char *name, bool block, struct wait *w)
{
	static const struct testutil_consumer	c[] = {
		{ "old", 0, 1, 0, { NULL } },
		{ "new", 0, 1, 0, { NULL } },
	};
	struct testutil_field	 fl = { "dir", { .type = ROUTE_TEXT,
	    .text = f->sig, .len = strlen(f->sig) } };
	struct wire_buf		 b;

	memset(w, 0, sizeof *w);
	strlcpy(w->active, test_active(f, name), sizeof w->active);
	testutil_body(&b, &fl, block ? 1 : 0, c, 2);
	assert_int_equal(plugdir_call(f->pd, name, b.data, b.len, 0,
	    test_done, w), 0);
	wire_free(&b);
}

/* Run the loop until w is done (10 s at most). */
static void
test_wait(struct fixture *f, struct wait *w)
{
	uint64_t	end = engine_now() + 10000 * MS_NS;

	while (!w->done) {
		if (engine_now() > end)
			fail_msg("call never finished");
		engine_run(f->e, 10);
	}
}

/*
 * Run the loop until a call of block.so has entered since the last
 * test_unsignal (each entry writes a line to its stderr, which the engine
 * logs: test_log counts them), or until file name exists in the signal
 * directory.
 */
static void
test_wait_signal(struct fixture *f, const char *name)
{
	struct stat	st;
	char		path[128];
	uint64_t	end = engine_now() + 5000 * MS_NS;

	snprintf(path, sizeof path, "%s/%s", f->sig, name);
	for (;;) {
		if (strcmp(name, "entered") == 0 ? f->entered > 0 :
		    stat(path, &st) == 0)
			return;
		if (engine_now() > end)
			fail_msg("%s never appeared", path);
		engine_run(f->e, 1);
	}
}

/* Create file name in the signal directory. */
static void
test_signal(struct fixture *f, const char *name)
{
	char	path[128];
	int	fd;

	snprintf(path, sizeof path, "%s/%s", f->sig, name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_int_not_equal(fd, -1);
	close(fd);
}

/* Run the loop until the engine holds n versions (5 s at most). */
static void
test_wait_loaded(struct fixture *f, u_int n)
{
	uint64_t	end = engine_now() + 5000 * MS_NS;

	while (engine_loaded(f->e) != n) {
		if (engine_now() > end)
			fail_msg("%u versions loaded, waited for %u",
			    engine_loaded(f->e), n);
		engine_run(f->e, 10);
	}
}

/*
 * The reference's test: a call inside the old version while the new one
 * deploys; the slot shows the new hash at once; both stay loaded; the
 * in-flight call answers from the old version, the next from the new;
 * then the old version drains and is gone.
 */
static void
test_hot_deploy_reference(void **state)
{
	struct fixture	*f = *state;
	struct wait	 inflight, next;
	char		 v1[VERSION_HEX_LEN + 1], v2[VERSION_HEX_LEN + 1];
	pid_t		 oldpid;
	struct module	*old;

	test_hash(testutil_plugin("block-v1", false), v1);
	test_hash(testutil_plugin("block-v2", false), v2);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	test_open(f);
	test_wait_active(f, CHAN, v1);
	old = plugdir_channel(f->pd, CHAN)->active;

	test_call(f, CHAN, true, &inflight);
	test_wait_signal(f, "entered");
	assert_int_equal(module_pids(old, &oldpid, 1), 1);

	test_put(f, CHAN, testutil_plugin("block-v2", false));
	test_wait_active(f, CHAN, v2);
	assert_string_equal(test_active(f, CHAN), v2);
	assert_false(inflight.done);
	assert_int_equal(engine_loaded(f->e), 2);
	assert_int_equal(kill(oldpid, 0), 0);	/* old helper alive */

	test_signal(f, "release");
	test_wait(f, &inflight);
	assert_int_equal(inflight.r.status, ST_OK);
	assert_int_equal(inflight.r.decision, 0);	/* "old" */
	assert_string_equal(inflight.hex, v1);

	test_call(f, CHAN, false, &next);
	test_wait(f, &next);
	assert_int_equal(next.r.status, ST_OK);
	assert_int_equal(next.r.decision, 1);		/* "new" */
	assert_string_equal(next.hex, v2);

	test_wait_loaded(f, 1);
	while (kill(oldpid, 0) == 0)
		engine_run(f->e, 10);
	assert_int_equal(errno, ESRCH);
	assert_true(test_logged(f, "draining"));
}

/* cp over the live file (truncate, then write) deploys it. */
static void
test_deploy_by_cp_in_place(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], v2[VERSION_HEX_LEN + 1];
	char		 dst[128];
	struct wait	 w;

	test_hash(testutil_plugin("block-v1", false), v1);
	test_hash(testutil_plugin("block-v2", false), v2);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	test_open(f);
	test_wait_active(f, CHAN, v1);
	snprintf(dst, sizeof dst, "%s/%s.so", f->dir, CHAN);
	test_write(testutil_plugin("block-v2", false), dst, O_TRUNC, 0);
	test_wait_active(f, CHAN, v2);
	test_call(f, CHAN, false, &w);
	test_wait(f, &w);
	assert_int_equal(w.r.decision, 1);
	assert_false(test_logged(f, "not deployed"));
}

/* install(1), as packaging scripts do it, deploys too. */
static void
test_deploy_by_install(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], cmd[512];

	test_hash(testutil_plugin("block-v1", false), v1);
	test_open(f);
	snprintf(cmd, sizeof cmd, "install -m 0644 '%s' '%s/%s.so'",
	    testutil_plugin("block-v1", false), f->dir, CHAN);
	assert_int_equal(system(cmd), 0);
	test_wait_active(f, CHAN, v1);
}

/*
 * A writer that stops halfway, holding the file open: nothing is loaded
 * until the file is whole and closed; no truncated version is tried.
 */
static void
test_slow_writer(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], dst[128], buf[65536];
	ssize_t		 n, half;
	int		 in, out;

	test_hash(testutil_plugin("block-v1", false), v1);
	test_open(f);
	snprintf(dst, sizeof dst, "%s/%s.so", f->dir, CHAN);
	in = open(testutil_plugin("block-v1", false), O_RDONLY | O_CLOEXEC);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(in != -1 && out != -1);
	n = read(in, buf, sizeof buf);
	assert_true(n > 0 && n < (ssize_t)sizeof buf);
	half = n / 2;
	assert_int_equal(write(out, buf, (size_t)half), half);
	test_spin(f, 4 * f->conf.settle_ms);	/* well past settling */
	assert_string_equal(test_active(f, CHAN), "");
	assert_int_equal(write(out, buf + half, (size_t)(n - half)), n - half);
	test_spin(f, 2 * f->conf.settle_ms);
	assert_string_equal(test_active(f, CHAN), "");
	close(out);
	close(in);
	test_wait_active(f, CHAN, v1);
	assert_false(test_logged(f, "not deployed"));
}

/* A file that does not load leaves the old version serving. */
static void
test_bad_version_keeps_old(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], bad[128];
	struct wait	 w;
	uint64_t	 end;
	int		 fd;

	test_hash(testutil_plugin("block-v1", false), v1);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	test_open(f);
	test_wait_active(f, CHAN, v1);
	snprintf(bad, sizeof bad, "%s/bad.txt", f->sig);
	fd = open(bad, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_int_equal(write(fd, "not a plugin\n", 13), 13);
	close(fd);
	test_put(f, CHAN, bad);
	end = engine_now() + 5000 * MS_NS;
	while (!test_logged(f, "not deployed") && engine_now() < end)
		engine_run(f->e, 10);
	assert_true(test_logged(f, "not an ELF"));
	assert_non_null(strstr(plugdir_channel(f->pd, CHAN)->error,
	    "not an ELF"));
	assert_string_equal(test_active(f, CHAN), v1);
	test_call(f, CHAN, false, &w);
	test_wait(f, &w);
	assert_int_equal(w.r.status, ST_OK);
	assert_string_equal(w.hex, v1);
	/* The same bytes again are a no-op, not a second deploy. */
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	test_spin(f, 3 * f->conf.settle_ms);
	assert_int_equal(plugdir_channel(f->pd, CHAN)->deploys, 1);
}

/* Removing the file retires the channel; calls in flight still finish. */
static void
test_removal(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], path[128];
	struct wait	 inflight, after;
	uint64_t	 end;

	test_hash(testutil_plugin("block-v1", false), v1);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	test_open(f);
	test_wait_active(f, CHAN, v1);
	test_call(f, CHAN, true, &inflight);
	test_wait_signal(f, "entered");
	snprintf(path, sizeof path, "%s/%s.so", f->dir, CHAN);
	assert_int_equal(unlink(path), 0);
	end = engine_now() + 5000 * MS_NS;
	while (plugdir_channel(f->pd, CHAN) != NULL && engine_now() < end)
		engine_run(f->e, 10);
	assert_null(plugdir_channel(f->pd, CHAN));
	test_call(f, CHAN, false, &after);
	test_wait(f, &after);
	assert_int_equal(after.r.status, ST_NO_SUCH_CHANNEL);
	assert_false(inflight.done);
	test_signal(f, "release");
	test_wait(f, &inflight);
	assert_int_equal(inflight.r.status, ST_OK);
	assert_string_equal(inflight.hex, v1);
	test_wait_loaded(f, 0);
}

/* At the drain cap, a call still on the old version times out. */
static void
test_drain_cap(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], v2[VERSION_HEX_LEN + 1];
	struct wait	 inflight;

	f->conf.drain_ms = 200;
	test_hash(testutil_plugin("block-v1", false), v1);
	test_hash(testutil_plugin("block-v2", false), v2);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	test_open(f);
	test_wait_active(f, CHAN, v1);
	test_call(f, CHAN, true, &inflight);
	test_wait_signal(f, "entered");
	test_put(f, CHAN, testutil_plugin("block-v2", false));
	test_wait_active(f, CHAN, v2);
	test_wait(f, &inflight);
	assert_int_equal(inflight.r.status, ST_TIMED_OUT);
	assert_non_null(strstr(inflight.r.detail, "drain cap"));
	test_wait_loaded(f, 1);
}

/* Forget signal name: the entries so far, or a file. */
static void
test_unsignal(struct fixture *f, const char *name)
{
	char	path[128];

	if (strcmp(name, "entered") == 0) {
		f->entered = 0;
		return;
	}
	snprintf(path, sizeof path, "%s/%s", f->sig, name);
	assert_int_equal(unlink(path), 0);
}

/* plugdir's configure hook: every channel gets two helpers. */
static void
test_two_helpers(void *arg, const char *name, struct channel_conf *cc)
{
	(void)arg;
	(void)name;
	cc->helpers = 2;
}

/*
 * Hold the calls on the channels inside the plugin for twice the drain
 * cap, then let them all go, and wait for each.
 */
static void
test_outlive_cap(struct fixture *f, struct wait *ws, size_t n)
{
	test_wait_signal(f, "entered");
	test_spin(f, 2 * f->conf.drain_ms);
	test_signal(f, "release");
	for (size_t i = 0; i < n; i++)
		test_wait(f, &ws[i]);
}

/* Expect call w to have been answered by version hex. */
static void
test_answered(const struct wait *w, const char *hex, const char *what)
{
	if (w->r.status != ST_OK)
		fail_msg("%s: %s '%s'", what, engine_status_name(w->r.status),
		    w->r.detail);
	assert_string_equal(w->hex, hex);
}

/*
 * Roll back to a version still draining: it is active again, and the
 * drain cap it got when it was replaced no longer applies to it.  (Two
 * helpers, so the new call does not wait behind the old one; the calls
 * are static, so a failed test leaves no result to write on its stack.)
 */
static void
test_rollback_not_capped(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], v2[VERSION_HEX_LEN + 1];
	static struct wait w[2];	/* before, after the rollback */

	f->conf.drain_ms = 300;
	f->conf.configure = test_two_helpers;
	test_hash(testutil_plugin("block-v1", false), v1);
	test_hash(testutil_plugin("block-v2", false), v2);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	test_open(f);
	test_wait_active(f, CHAN, v1);
	test_call(f, CHAN, true, &w[0]);
	test_wait_signal(f, "entered");
	test_unsignal(f, "entered");
	test_put(f, CHAN, testutil_plugin("block-v2", false));
	test_wait_active(f, CHAN, v2);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	test_wait_active(f, CHAN, v1);
	test_call(f, CHAN, true, &w[1]);
	test_outlive_cap(f, w, 2);
	/* The call from before may or may not be capped: it was retired. */
	test_answered(&w[1], v1, "call on the rolled-back version");
}

/*
 * Two channels deployed from the same bytes share one version: replacing
 * it in one channel must not cap the calls of the other, which still
 * serves it.
 */
static void
test_shared_version_not_capped(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], v2[VERSION_HEX_LEN + 1];
	static struct wait w;

	f->conf.drain_ms = 300;
	test_hash(testutil_plugin("block-v1", false), v1);
	test_hash(testutil_plugin("block-v2", false), v2);
	test_put(f, "x", testutil_plugin("block-v1", false));
	test_put(f, "y", testutil_plugin("block-v1", false));
	test_open(f);
	test_wait_active(f, "x", v1);
	test_wait_active(f, "y", v1);
	test_call(f, "y", true, &w);
	test_wait_signal(f, "entered");
	test_put(f, "x", testutil_plugin("block-v2", false));
	test_wait_active(f, "x", v2);
	test_outlive_cap(f, &w, 1);
	test_answered(&w, v1, "call on channel y");
	assert_string_equal(test_active(f, "y"), v1);
}

/*
 * Close the plugins directory and open it again (a SIGHUP that points
 * plugins elsewhere and back) while a call is in flight: the same file
 * finds the version still draining, and that version, active again, is
 * not capped.  (Two helpers, as in the rollback.)
 */
static void
test_reopen_same_dir_not_capped(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1];
	static struct wait w[2];	/* before, after reopening */

	f->conf.drain_ms = 300;
	f->conf.configure = test_two_helpers;
	test_hash(testutil_plugin("block-v1", false), v1);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	test_open(f);
	test_wait_active(f, CHAN, v1);
	test_call(f, CHAN, true, &w[0]);
	test_wait_signal(f, "entered");
	test_unsignal(f, "entered");
	plugdir_close(f->pd);
	f->pd = NULL;
	test_open(f);
	test_wait_active(f, CHAN, v1);
	test_call(f, CHAN, true, &w[1]);
	test_outlive_cap(f, w, 2);
	/* The call from before may or may not be capped: it was retired. */
	test_answered(&w[1], v1, "call after reopening");
}

/* Strict trust: group/world-writable files and escaping links refused. */
static void
test_trust(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], path[128], target[PATH_MAX];

	test_hash(testutil_plugin("block-v1", false), v1);
	test_put(f, "open", testutil_plugin("block-v1", false));
	snprintf(path, sizeof path, "%s/open.so", f->dir);
	assert_int_equal(chmod(path, 0666), 0);
	snprintf(path, sizeof path, "%s/escape.so", f->dir);
	assert_non_null(realpath(testutil_plugin("block-v1", false), target));
	assert_int_equal(symlink(target, path), 0);
	test_put(f, ".hidden-inside", testutil_plugin("block-v1", false));
	snprintf(path, sizeof path, "%s/inside.so", f->dir);
	snprintf(target, sizeof target, "%s/.hidden-inside.so", f->dir);
	assert_int_equal(symlink(target, path), 0);
	test_put(f, "bad name", testutil_plugin("block-v1", false));
	/* A file name is anyone's with write access: logged escaped. */
	test_put(f, "evil\nfake", testutil_plugin("block-v1", false));
	snprintf(path, sizeof path, "%s/README", f->dir);
	close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));

	test_open(f);
	test_wait_active(f, "inside", v1);
	test_spin(f, 2 * f->conf.settle_ms);
	assert_string_equal(test_active(f, "open"), "");
	assert_string_equal(test_active(f, "escape"), "");
	assert_true(test_logged(f, "open.so: refused: group- or world-writable"));
	assert_true(test_logged(f, "escape.so: refused: symbolic link leaves"));
	assert_true(test_logged(f, "'bad name' is not a channel name"));
	assert_true(test_logged(f, "'evil\\nfake' is not a channel name"));
	assert_false(test_logged(f, "evil\nfake"));
	assert_true(test_logged(f, "README: ignored"));

	/* Fixing the mode deploys it on the next scan (SIGHUP here). */
	snprintf(path, sizeof path, "%s/open.so", f->dir);
	assert_int_equal(chmod(path, 0644), 0);
	plugdir_scan(f->pd);
	test_wait_active(f, "open", v1);

	/* With strict off, a world-writable plugin is accepted. */
	plugdir_close(f->pd);
	f->pd = NULL;
	test_wait_loaded(f, 0);
	assert_int_equal(chmod(path, 0666), 0);
	f->conf.strict = false;
	test_open(f);
	test_wait_active(f, "open", v1);
}

/* The directory itself must be trusted, or nothing is deployed. */
static void
test_untrusted_directory(void **state)
{
	struct fixture	*f = *state;

	test_put(f, CHAN, testutil_plugin("block-v1", false));
	assert_int_equal(chmod(f->dir, 0777), 0);
	test_open(f);
	test_spin(f, 2 * f->conf.settle_ms);
	assert_string_equal(test_active(f, CHAN), "");
	assert_true(test_logged(f, "group- or world-writable"));
	assert_int_equal(chmod(f->dir, 0700), 0);
}

/*
 * Strict trust by owner: a plugin or directory owned by anyone but root
 * or us is refused.  Only root can give a file away, so only root checks
 * this; run by anyone else, every other test here deploys files owned by
 * us and not by root, which checks the other half of the rule.
 */
static void
test_untrusted_owner(void **state)
{
	struct fixture	*f = *state;
	const uid_t	 other = 4242;	/* neither root nor us */
	char		 v1[VERSION_HEX_LEN + 1], v2[VERSION_HEX_LEN + 1];
	char		 path[128], want[128];

	if (geteuid() != 0) {
		print_message("skipped: giving a file to another owner needs "
		    "root\n");
		skip();
	}
	test_hash(testutil_plugin("block-v1", false), v1);
	test_hash(testutil_plugin("block-v2", false), v2);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	snprintf(path, sizeof path, "%s/%s.so", f->dir, CHAN);
	assert_int_equal(chown(path, other, (gid_t)-1), 0);
	test_open(f);
	test_spin(f, 2 * f->conf.settle_ms);
	assert_string_equal(test_active(f, CHAN), "");
	snprintf(want, sizeof want, "%s.so: refused: owned by uid %ld, "
	    "neither root nor us", CHAN, (long)other);
	assert_true(test_logged(f, want));

	/* Given back to root, it deploys on the next scan. */
	assert_int_equal(chown(path, 0, (gid_t)-1), 0);
	plugdir_scan(f->pd);
	test_wait_active(f, CHAN, v1);

	/* A directory owned by someone else deploys nothing new. */
	assert_int_equal(chown(f->dir, other, (gid_t)-1), 0);
	test_put(f, CHAN, testutil_plugin("block-v2", false));
	plugdir_scan(f->pd);
	test_spin(f, 2 * f->conf.settle_ms);
	snprintf(want, sizeof want, "%s: owned by uid %ld, neither root nor "
	    "us; channels keep their current versions", f->dir, (long)other);
	assert_true(test_logged(f, want));
	assert_string_equal(test_active(f, CHAN), v1);
	assert_int_equal(chown(f->dir, 0, (gid_t)-1), 0);
	plugdir_scan(f->pd);
	test_wait_active(f, CHAN, v2);
}

/*
 * Every ancestor of the directory must be trusted too, like sshd's
 * StrictModes: one that anyone may write (and is not sticky, as /tmp is)
 * could swap the directory for another, and is named in the log.
 */
static void
test_untrusted_ancestor(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], anc[64], dir[64], orig[64];
	char		 want[128];

	test_hash(testutil_plugin("block-v1", false), v1);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	strlcpy(anc, "/tmp/route-host-ancestor-XXXXXX", sizeof anc);
	assert_non_null(mkdtemp(anc));
	snprintf(dir, sizeof dir, "%s/plugins", anc);
	assert_int_equal(rename(f->dir, dir), 0);
	assert_int_equal(chmod(anc, 0777), 0);
	strlcpy(orig, f->dir, sizeof orig);
	strlcpy(f->dir, dir, sizeof f->dir);
	test_open(f);
	test_spin(f, 2 * f->conf.settle_ms);
	assert_string_equal(test_active(f, CHAN), "");
	snprintf(want, sizeof want, "ancestor %s: group- or world-writable",
	    anc);
	assert_true(test_logged(f, want));

	/* Sticky, as /tmp is, it is trusted: deployed on the next scan. */
	assert_int_equal(chmod(anc, 01777), 0);
	plugdir_scan(f->pd);
	test_wait_active(f, CHAN, v1);

	/* With strict off, the ancestors are not looked at. */
	plugdir_close(f->pd);
	f->pd = NULL;
	test_wait_loaded(f, 0);
	assert_int_equal(chmod(anc, 0777), 0);
	f->conf.strict = false;
	test_open(f);
	test_wait_active(f, CHAN, v1);

	plugdir_close(f->pd);
	f->pd = NULL;
	assert_int_equal(chmod(anc, 0700), 0);
	assert_int_equal(rename(f->dir, orig), 0);
	assert_int_equal(rmdir(anc), 0);
	strlcpy(f->dir, orig, sizeof f->dir);
}

/*
 * A symbolic link inside the directory is followed one component at a
 * time, by the daemon, never by the kernel: every subdirectory it passes
 * through must be trusted, and it may not climb out with "..".
 */
static void
test_untrusted_subdirectory(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], path[128], sub[128];

	test_hash(testutil_plugin("block-v1", false), v1);
	snprintf(sub, sizeof sub, "%s/sub", f->dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(chmod(sub, 0777), 0);
	snprintf(path, sizeof path, "%s/p.so", sub);
	test_write(testutil_plugin("block-v1", false), path,
	    O_CREAT | O_TRUNC, 0644);
	snprintf(path, sizeof path, "%s/inside.so", f->dir);
	assert_int_equal(symlink("sub/p.so", path), 0);
	snprintf(path, sizeof path, "%s/alias", f->dir);
	assert_int_equal(symlink("./sub", path), 0);
	snprintf(path, sizeof path, "%s/viadir.so", f->dir);
	assert_int_equal(symlink("alias/p.so", path), 0);
	snprintf(path, sizeof path, "%s/climb.so", f->dir);
	assert_int_equal(symlink("sub/../../x/p.so", path), 0);

	test_open(f);
	test_spin(f, 2 * f->conf.settle_ms);
	assert_string_equal(test_active(f, "inside"), "");
	assert_string_equal(test_active(f, "viadir"), "");
	assert_true(test_logged(f, "inside.so: refused: sub: group- or "
	    "world-writable"));

	/* Trusted, the subdirectory's plugin deploys, through either link. */
	assert_int_equal(chmod(sub, 0755), 0);
	plugdir_scan(f->pd);
	test_wait_active(f, "inside", v1);
	test_wait_active(f, "viadir", v1);
	assert_string_equal(test_active(f, "climb"), "");
	assert_true(test_logged(f, "climb.so: refused: symbolic link leaves "
	    "the directory"));
}

/*
 * One check, on the descriptor that is read: a trusted, deployed file
 * replaced by an untrusted one, or by a link out of the directory, is
 * refused, and the deployed version keeps serving.
 */
static void
test_swapped_file_refused(void **state)
{
	struct fixture	*f = *state;
	char		 v1[VERSION_HEX_LEN + 1], tmp[128], dst[128];
	char		 target[PATH_MAX];

	test_hash(testutil_plugin("block-v1", false), v1);
	test_put(f, CHAN, testutil_plugin("block-v1", false));
	test_open(f);
	test_wait_active(f, CHAN, v1);

	snprintf(tmp, sizeof tmp, "%s/.swap", f->dir);
	snprintf(dst, sizeof dst, "%s/%s.so", f->dir, CHAN);
	test_write(testutil_plugin("block-v2", false), tmp,
	    O_CREAT | O_TRUNC, 0644);
	assert_int_equal(chmod(tmp, 0666), 0);
	assert_int_equal(rename(tmp, dst), 0);
	plugdir_scan(f->pd);
	test_spin(f, 2 * f->conf.settle_ms);
	assert_true(test_logged(f, CHAN ".so: refused: group- or "
	    "world-writable"));
	assert_string_equal(test_active(f, CHAN), v1);

	assert_non_null(realpath(testutil_plugin("block-v2", false), target));
	assert_int_equal(symlink(target, tmp), 0);
	assert_int_equal(rename(tmp, dst), 0);
	plugdir_scan(f->pd);
	test_spin(f, 2 * f->conf.settle_ms);
	assert_true(test_logged(f, CHAN ".so: refused: symbolic link leaves "
	    "the directory"));
	assert_string_equal(test_active(f, CHAN), v1);
}

#define LOAD_DEPTH	4
#define LOAD_DEPLOYS	100

/* The traffic of test_many_deploys_under_load. */
struct load {
	struct wait	w[LOAD_DEPTH];
	bool		busy[LOAD_DEPTH];
	char		v[2][VERSION_HEX_LEN + 1];
	u_int		started, answered, by[2];
};

/*
 * Check every finished call: answered, not failed, by the version active
 * when it started.  With more, start a new call in its place.
 */
static void
test_load_service(struct fixture *f, struct load *l, bool more)
{
	for (int i = 0; i < LOAD_DEPTH; i++) {
		if (!l->busy[i] || !l->w[i].done)
			continue;
		l->busy[i] = false;
		l->answered++;
		assert_int_equal(l->w[i].r.status, ST_OK);
		assert_string_equal(l->w[i].hex, l->w[i].active);
		assert_int_equal(l->w[i].r.decision,
		    strcmp(l->w[i].hex, l->v[0]) == 0 ? 0 : 1);
		l->by[l->w[i].r.decision]++;
		if (more) {
			test_call(f, CHAN, false, &l->w[i]);
			l->busy[i] = true;
			l->started++;
		}
	}
}

/*
 * 100 deploys, alternating two versions by rename, while LOAD_DEPTH calls
 * are always in flight: every call is answered, none fails, and each is
 * answered by the version that was active when it started.
 */
static void
test_many_deploys_under_load(void **state)
{
	struct fixture	*f = *state;
	struct load	 l;
	const char	*src[2];
	bool		 busy;

	memset(&l, 0, sizeof l);
	src[0] = testutil_plugin("block-v1", false);
	src[1] = testutil_plugin("block-v2", false);
	test_hash(src[0], l.v[0]);
	test_hash(src[1], l.v[1]);
	test_put(f, CHAN, src[0]);
	test_open(f);
	test_wait_active(f, CHAN, l.v[0]);
	for (int i = 0; i < LOAD_DEPTH; i++) {
		test_call(f, CHAN, false, &l.w[i]);
		l.busy[i] = true;
		l.started++;
	}
	for (int d = 1; d <= LOAD_DEPLOYS; d++) {
		test_put(f, CHAN, src[d % 2]);
		while (strcmp(test_active(f, CHAN), l.v[d % 2]) != 0) {
			engine_run(f->e, 1);
			test_load_service(f, &l, true);
		}
	}
	do {
		engine_run(f->e, 1);
		test_load_service(f, &l, false);
		busy = false;
		for (int i = 0; i < LOAD_DEPTH; i++)
			busy |= l.busy[i];
	} while (busy);
	assert_int_equal(l.answered, l.started);
	assert_int_equal(plugdir_channel(f->pd, CHAN)->deploys,
	    LOAD_DEPLOYS + 1);
	assert_true(l.by[0] > 0 && l.by[1] > 0);
	test_wait_loaded(f, 1);
	print_message("%u calls across %d deploys: all answered, none "
	    "failed\n", l.answered, LOAD_DEPLOYS);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_hot_deploy_reference),
		T(test_deploy_by_cp_in_place),
		T(test_deploy_by_install),
		T(test_slow_writer),
		T(test_bad_version_keeps_old),
		T(test_removal),
		T(test_drain_cap),
		T(test_rollback_not_capped),
		T(test_shared_version_not_capped),
		T(test_reopen_same_dir_not_capped),
		T(test_trust),
		T(test_untrusted_directory),
		T(test_untrusted_owner),
		T(test_untrusted_ancestor),
		T(test_untrusted_subdirectory),
		T(test_swapped_file_refused),
		T(test_many_deploys_under_load),
#undef T
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("deploy", tests, NULL, NULL);
}
