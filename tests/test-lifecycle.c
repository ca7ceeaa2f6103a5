/* SPDX-License-Identifier: ISC */
/*
 * A randomized lifecycle test on real helpers.  From one seed, a random
 * interleaving of: calls on random channels, each with a random timeout
 * (10-400 ms) and a random behaviour (answer, sleep 1-300 ms, crash, hang
 * for ever; tests/plugins/chaos.so does what the message says); deploys of
 * a channel to one of several versions (chaos.so under different bytes,
 * each with its own options), rollbacks to the version still draining,
 * two channels sharing a version, channel removal and creation, 1-3
 * helpers and a 50-300 ms drain cap per deploy, handshake probes and
 * direct engine calls, and engine_run turns of 0-20 ms.
 *
 * Invariants, checked as the run goes and at its end:
 *
 *   once	every callback runs exactly once (counted per call id)
 *   deferred	no callback runs inside channel_call, engine_call or
 *		engine_probe, and no deploy's handshake completes inside
 *		channel_deploy: completions come from engine_run
 *   cap	a call ends timed_out by a "drain cap" only if the version it
 *		ran on was, at that moment, active on no channel (the test
 *		tracks which channel holds which version itself)
 *   version	a call is answered by the version active on its channel
 *		when it was made; a call made before any version was active
 *		ends no_such_channel
 *   result	a call that crashes or hangs never ends ok; ok picks 0
 *   deploy	a deploy of a good version never fails
 *   drained	once every channel is freed, engine_pending() reaches 0
 *   clean	after engine_free: no child left (zombie or not), no fd
 *		leaked; under valgrind or ASan, no leak
 *   engine	engine_check after every step: every call in exactly one
 *		place, every armed timer in the tree, counts that add up
 *
 * The host must not crash or hang: a fatal signal or a watchdog prints the
 * seed before the process dies.
 *
 * Environment:
 *   LIFECYCLE_SEED=N	replay a seed (default: from the clock); printed
 *			at the start and with every failure
 *   LIFECYCLE_SECONDS=S	run S seconds of steps (default 3)
 *   LIFECYCLE_STEPS=N	run exactly N steps instead (a closer replay: the
 *			steps are the seed's, their timing the machine's)
 *   LIFECYCLE_VERBOSE=1	print every step and every result
 */

#include "config.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <time.h>

#include "testutil.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/common_interface_defs.h>
#endif

#define NVERS		4	/* versions: chaos.so under different bytes */
#define NCHANS		4	/* channel slots */
#define DRAIN_END_MS	15000	/* the final drain's bound */
#define WATCHDOG_SLACK	40	/* seconds past the steps before SIGALRM */

enum act { ACT_OK, ACT_SLEEP, ACT_CRASH, ACT_HANG, ACT_LAST = ACT_HANG };
static const char *const act_names[] = { "ok", "sleep", "crash", "hang" };

enum kind { K_CALL, K_DIRECT, K_PROBE };

/* One call made: through a channel, directly, or a handshake probe. */
struct rec {
	enum kind	 kind;
	int		 chan;		/* slot, for K_CALL */
	int		 ver;		/* version it was made on, -1: none */
	enum act	 act;
	int		 ms;
	int		 timeout_ms;
	u_int		 runs;		/* callbacks seen */
	enum status	 status;
};

/* The test's own model of one channel slot. */
struct chan {
	struct channel	*ch;		/* NULL: no channel in the slot */
	char		 name[16];
	int		 active;	/* version index, -1: none */
	int		 gate;		/* version loading, -1: none */
	int		 prev;		/* active before, for rollbacks */
	u_int		 deploys;	/* ch->deploys as last seen */
};

enum viol {
	V_ONCE, V_DEFERRED, V_CAP, V_VERSION, V_RESULT, V_DEPLOY, V_DRAINED,
	V_CLEAN, V_LAST
};
static const char *const viol_names[] = {
	"once", "deferred", "cap", "version", "result", "deploy", "drained",
	"clean"
};

struct life {
	struct engine	*e;
	uint64_t	 seed;
	uint64_t	 rng;
	bool		 verbose;
	char		 dir[64];
	char		 path[NVERS][128];
	char		 hex[NVERS][VERSION_HEX_LEN + 1];
	char		 optv[NVERS][8];
	struct chan	 chans[NCHANS];
	struct rec	*recs;
	size_t		 nrecs, recsize;
	const char	*in_api;	/* set while inside these calls */
	u_int		 step;
	u_int		 nviol[V_LAST];
	char		 first[V_LAST][3][400];	/* the first few of each */
	u_int		 stats[ACT_LAST + 1][ST_LAST + 1];
	u_int		 probes, directs, deploys, rollbacks, shares,
			 removals, creations, runs, capped;
};

static struct life	*life;		/* for the signal handlers */
static char		 fatal_msg[160];
static struct sigaction	 old_segv, old_abrt, old_bus, old_fpe;

/* splitmix64: the whole run follows from the seed. */
static uint64_t
rnd(struct life *L)
{
	uint64_t	z = (L->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int
rnd_in(struct life *L, int lo, int hi)
{
	return lo + (int)(rnd(L) % (uint64_t)(hi - lo + 1));
}

/* Record a broken invariant; the first few of each kind keep details. */
static void __attribute__((format(printf, 3, 4)))
violation(struct life *L, enum viol v, const char *fmt, ...)
{
	char	buf[400];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (L->nviol[v] < 3)
		strlcpy(L->first[v][L->nviol[v]], buf, sizeof L->first[v][0]);
	if (++L->nviol[v] <= 10)
		fprintf(stderr, "lifecycle: seed %" PRIu64 ": step %u: %s: "
		    "%s\n", L->seed, L->step, viol_names[v], buf);
}

/* Say which seed and step, from a signal handler: write(2) only. */
static void
fatal_say(const char *what)
{
	char	num[16];
	int	n = 0;
	u_int	s = life != NULL ? life->step : 0;

	do
		num[sizeof num - 1 - n++] = (char)('0' + s % 10);
	while ((s /= 10) > 0 && n < 15);
	(void)!write(2, fatal_msg, strlen(fatal_msg));
	(void)!write(2, what, strlen(what));
	(void)!write(2, num + sizeof num - n, (size_t)n);
	(void)!write(2, ")\n", 2);
	/* unlink and rmdir are async-signal-safe: leave no files behind. */
	if (life != NULL && life->dir[0] != '\0') {
		for (int k = 0; k < NVERS; k++)
			unlink(life->path[k]);
		rmdir(life->dir);
	}
}

/* A fatal signal in the host: say which seed, then let it die. */
static void
fatal(int sig)
{
	struct sigaction	*old = sig == SIGSEGV ? &old_segv :
				    sig == SIGABRT ? &old_abrt :
				    sig == SIGBUS ? &old_bus : &old_fpe;

	fatal_say(" (the host crashed: fatal signal at step ");
	/* Chain: cmocka or ASan report it, or it kills the process. */
	sigaction(sig, old, NULL);
	if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN)
		raise(sig);
	else if (old->sa_flags & SA_SIGINFO)
		return;		/* the fault repeats, under the old handler */
	else
		old->sa_handler(sig);
}

/* The steps or the final drain never came back: a hang in the host. */
static void
watchdog(int sig)
{
	(void)sig;
	fatal_say(" (watchdog: the host hung at step ");
	_exit(1);
}

#ifdef __SANITIZE_ADDRESS__
/* ASan or UBSan found an error in the host and is about to exit. */
static void
sanitizer_death(void)
{
	fatal_say(" (a sanitizer stopped the host at step ");
}
#endif

/* The index of the version whose hex is hex, or -1. */
static int
version_of(struct life *L, const char *hex)
{
	for (int k = 0; k < NVERS; k++)
		if (strcmp(L->hex[k], hex) == 0)
			return k;
	return -1;
}

/*
 * Bring the model of slot i up to date: the channel swapped to its gate's
 * version when its deploy count moved; a gate that is gone without a swap
 * failed.
 */
static void
refresh_one(struct life *L, int i)
{
	struct chan	*c = &L->chans[i];

	if (c->ch == NULL)
		return;
	if (c->ch->deploys != c->deploys) {
		if (c->gate < 0 || c->ch->deploys != c->deploys + 1)
			violation(L, V_DEPLOY, "%s: %u deploys, model saw %u "
			    "with gate v%d", c->name, c->ch->deploys,
			    c->deploys, c->gate);
		else {
			c->prev = c->active;
			c->active = c->gate;
		}
		c->deploys = c->ch->deploys;
		c->gate = -1;
		if (L->verbose)
			fprintf(stderr, "  %s: active v%d\n", c->name,
			    c->active);
	}
	if (c->gate >= 0 && channel_loading(c->ch) == NULL) {
		violation(L, V_DEPLOY, "%s: deploy of v%d failed: %s",
		    c->name, c->gate, c->ch->error);
		c->gate = -1;
	}
}

static void
refresh(struct life *L)
{
	for (int i = 0; i < NCHANS; i++)
		refresh_one(L, i);
}

/* Every completion: counted, checked against the model. */
static void
done(const struct result *r, void *arg)
{
	struct life	*L = life;
	size_t		 id = (size_t)(uintptr_t)arg;
	struct rec	*rc = &L->recs[id];
	int		 ver = r->module != NULL ? version_of(L, r->module->hex) :
			    -1;
	char		 holders[64] = "";

	rc->runs++;
	rc->status = r->status;
	if (rc->runs > 1)
		violation(L, V_ONCE, "call #%zu: callback ran %u times "
		    "(now %s: %s)", id, rc->runs,
		    engine_status_name(r->status), r->detail);
	if (L->in_api != NULL)
		violation(L, V_DEFERRED, "call #%zu: callback ran inside "
		    "%s (%s: %s)", id, L->in_api,
		    engine_status_name(r->status), r->detail);
	refresh(L);
	if (L->verbose)
		fprintf(stderr, "  done #%zu %s on v%d: %s %s\n", id,
		    rc->kind == K_PROBE ? "probe" : act_names[rc->act], ver,
		    engine_status_name(r->status), r->detail);
	if (rc->kind == K_PROBE) {
		L->probes++;
	} else {
		L->stats[rc->act][r->status]++;
		if (r->status == ST_OK && (rc->act == ACT_CRASH ||
		    rc->act == ACT_HANG))
			violation(L, V_RESULT, "call #%zu (%s) ended ok",
			    id, act_names[rc->act]);
		if (r->status == ST_OK && r->decision != 0)
			violation(L, V_RESULT, "call #%zu: ok with decision "
			    "%d", id, r->decision);
	}
	if (rc->kind == K_CALL) {
		if (rc->ver < 0 && r->status != ST_NO_SUCH_CHANNEL)
			violation(L, V_VERSION, "call #%zu on %s with no "
			    "version active: %s", id, L->chans[rc->chan].name,
			    engine_status_name(r->status));
		if (rc->ver >= 0 && (r->module == NULL || ver != rc->ver))
			violation(L, V_VERSION, "call #%zu made on v%d of %s "
			    "ended %s on v%d", id, rc->ver,
			    L->chans[rc->chan].name,
			    engine_status_name(r->status), ver);
	}
	if (r->status == ST_TIMED_OUT && strstr(r->detail, "drain cap")) {
		L->capped++;
		for (int i = 0; i < NCHANS; i++)
			if (L->chans[i].ch != NULL && ver >= 0 &&
			    L->chans[i].active == ver) {
				strlcat(holders, " ", sizeof holders);
				strlcat(holders, L->chans[i].name,
				    sizeof holders);
			}
		if (holders[0] != '\0')
			violation(L, V_CAP, "call #%zu (%s%s%s) on v%d cut by "
			    "its drain cap while v%d is active on%s: %s", id,
			    rc->kind == K_PROBE ? "probe" : act_names[rc->act],
			    rc->kind == K_CALL ? ", " : "",
			    rc->kind == K_CALL ? L->chans[rc->chan].name : "",
			    ver, ver, holders, r->detail);
	}
}

/* A new record; its index is the call's id. */
static size_t
rec_new(struct life *L, enum kind kind)
{
	if (L->nrecs == L->recsize) {
		L->recsize = L->recsize == 0 ? 1024 : L->recsize * 2;
		L->recs = realloc(L->recs, L->recsize * sizeof *L->recs);
		assert_non_null(L->recs);
	}
	memset(&L->recs[L->nrecs], 0, sizeof L->recs[0]);
	L->recs[L->nrecs].kind = kind;
	L->recs[L->nrecs].ver = -1;
	return L->nrecs++;
}

/* A random behaviour for a call. */
static void
rnd_act(struct life *L, struct rec *rc)
{
	int	p = rnd_in(L, 0, 99);

	rc->act = p < 40 ? ACT_OK : p < 75 ? ACT_SLEEP : p < 87 ? ACT_CRASH :
	    ACT_HANG;
	rc->ms = rc->act == ACT_SLEEP ? rnd_in(L, 1, 300) : 0;
	rc->timeout_ms = rnd_in(L, 10, 400);
}

/* The call body asking chaos.so for rc's behaviour. */
static void
body(const struct rec *rc, struct wire_buf *b)
{
	static const struct testutil_consumer	c[] = {
		{ "a", 0, 1, 0, { NULL } },
	};
	struct testutil_field	fl[2] = {
		{ "act", { .type = ROUTE_TEXT } },
		{ "ms", { .type = ROUTE_INTEGER } },
	};

	fl[0].value.text = act_names[rc->act];
	fl[0].value.len = strlen(act_names[rc->act]);
	fl[1].value.integer = rc->ms;
	testutil_body(b, fl, 2, c, 1);
}

/* A random live slot, or -1. */
static int
rnd_live(struct life *L)
{
	int	live[NCHANS], n = 0;

	for (int i = 0; i < NCHANS; i++)
		if (L->chans[i].ch != NULL)
			live[n++] = i;
	return n == 0 ? -1 : live[rnd_in(L, 0, n - 1)];
}

/* Step: a call on slot i. */
static void
step_call(struct life *L, int i)
{
	struct chan	*c = &L->chans[i];
	size_t		 id = rec_new(L, K_CALL);
	struct rec	*rc = &L->recs[id];
	struct wire_buf	 b;
	int		 rv;

	rc->chan = i;
	rnd_act(L, rc);
	refresh(L);
	rc->ver = c->active;
	if (L->verbose)
		fprintf(stderr, "step %u: call #%zu on %s (v%d): %s %d ms, "
		    "timeout %d ms\n", L->step, id, c->name, rc->ver,
		    act_names[rc->act], rc->ms, rc->timeout_ms);
	body(rc, &b);
	L->in_api = "channel_call";
	rv = channel_call(c->ch, b.data, b.len, rc->timeout_ms, done,
	    (void *)(uintptr_t)id);
	L->in_api = NULL;
	wire_free(&b);
	if (rv == -1)
		fail_msg("seed %" PRIu64 ": step %u: channel_call: %s",
		    L->seed, L->step, strerror(errno));
}

/* The options that make version k's key. */
static void
version_conf(struct life *L, int k, struct channel_conf *cc,
    struct route_option *opt)
{
	memset(cc, 0, sizeof *cc);
	opt->key = "v";
	opt->value = L->optv[k];
	cc->opts = opt;
	cc->nopts = 1;
	cc->helpers = (u_int)rnd_in(L, 1, 3);
	cc->drain_ms = rnd_in(L, 50, 300);
}

/* Step: deploy version k to slot i, as channel_deploy's model says. */
static void
step_deploy(struct life *L, int i, int k, const char *why)
{
	struct chan		*c = &L->chans[i];
	struct channel_conf	 cc;
	struct route_option	 opt;
	u_int			 before;
	int			 rv;

	version_conf(L, k, &cc, &opt);
	refresh(L);
	if (L->verbose)
		fprintf(stderr, "step %u: %s: %s to v%d (active v%d, gate "
		    "v%d), %u helpers, drain cap %d ms\n", L->step, why,
		    c->name, k, c->active, c->gate, cc.helpers, cc.drain_ms);
	assert_int_equal(channel_configure(c->ch, &cc), 0);
	/* Same version as active or loading: nothing to do. */
	if (k != c->active && k != c->gate)
		c->gate = k;
	before = c->ch->deploys;
	L->in_api = "channel_deploy";
	rv = channel_deploy(c->ch, L->path[k]);
	L->in_api = NULL;
	if (rv == -1)
		fail_msg("seed %" PRIu64 ": step %u: deploy v%d to %s: %s",
		    L->seed, L->step, k, c->name, c->ch->error);
	if (c->ch->deploys != before)
		violation(L, V_DEFERRED, "deploy of v%d to %s: its handshake "
		    "completed inside channel_deploy (swapped at once)", k,
		    c->name);
	refresh_one(L, i);
	L->deploys++;
}

/* Step: a new channel in empty slot i, deployed at once. */
static void
step_create(struct life *L, int i)
{
	struct chan	*c = &L->chans[i];

	c->ch = channel_new(L->e, c->name, rnd_in(L, 50, 300), NULL, NULL);
	assert_non_null(c->ch);
	c->active = c->gate = c->prev = -1;
	c->deploys = 0;
	L->creations++;
	step_deploy(L, i, rnd_in(L, 0, NVERS - 1), "create");
}

/* Step: free the channel in slot i; its calls drain under its cap. */
static void
step_remove(struct life *L, int i)
{
	struct chan	*c = &L->chans[i];

	refresh(L);
	if (L->verbose)
		fprintf(stderr, "step %u: remove %s (active v%d)\n", L->step,
		    c->name, c->active);
	L->in_api = "channel_free";
	channel_free(c->ch);
	L->in_api = NULL;
	c->ch = NULL;
	c->active = c->gate = c->prev = -1;
	L->removals++;
}

/* Step: a handshake probe, or a direct call, on version k. */
static void
step_engine(struct life *L, int k, bool probe)
{
	struct route_option	 opt = { "v", L->optv[k] };
	struct module		*m;
	char			 err[DETAIL_MAX];
	size_t			 id = rec_new(L, probe ? K_PROBE : K_DIRECT);
	struct rec		*rc = &L->recs[id];
	struct wire_buf		 b;
	int			 rv;

	rc->ver = k;
	if (engine_load(L->e, L->path[k], NULL, &opt, 1, &m, err,
	    sizeof err) == -1)
		fail_msg("seed %" PRIu64 ": load v%d: %s", L->seed, k, err);
	if (probe) {
		if (L->verbose)
			fprintf(stderr, "step %u: probe #%zu of v%d\n",
			    L->step, id, k);
		L->in_api = "engine_probe";
		rv = engine_probe(L->e, m, done, (void *)(uintptr_t)id);
	} else {
		rnd_act(L, rc);
		if (L->verbose)
			fprintf(stderr, "step %u: direct call #%zu on v%d: "
			    "%s %d ms, timeout %d ms\n", L->step, id, k,
			    act_names[rc->act], rc->ms, rc->timeout_ms);
		body(rc, &b);
		L->in_api = "engine_call";
		rv = engine_call(L->e, m, b.data, b.len, rc->timeout_ms, done,
		    (void *)(uintptr_t)id);
		wire_free(&b);
		L->directs++;
	}
	L->in_api = NULL;
	if (rv == -1)
		fail_msg("seed %" PRIu64 ": step %u: engine_%s: %s", L->seed,
		    L->step, probe ? "probe" : "call", strerror(errno));
	/* The call holds its own reference. */
	engine_release(L->e, m);
}

/* Step: run the loop for ms milliseconds (0: one turn that does not wait). */
static void
step_run(struct life *L, int ms)
{
	uint64_t	now = engine_now(), end = now + (uint64_t)ms * MS_NS;

	do {
		if (engine_run(L->e, (int)((end - now + MS_NS - 1) / MS_NS)) ==
		    -1)
			fail_msg("seed %" PRIu64 ": step %u: engine_run: %s",
			    L->seed, L->step, strerror(errno));
		refresh(L);
		L->runs++;
	} while ((now = engine_now()) < end);
}

/* One random step. */
static void
step(struct life *L)
{
	int	p = rnd_in(L, 0, 99), i = rnd_live(L), j, k, empty = -1;

	for (j = 0; j < NCHANS; j++)
		if (L->chans[j].ch == NULL)
			empty = j;
	if (p < 45 && i >= 0)
		step_call(L, i);
	else if (p < 62 || (i < 0 && empty < 0))
		step_run(L, rnd_in(L, 0, 20));
	else if (p < 72 && i >= 0)
		step_deploy(L, i, rnd_in(L, 0, NVERS - 1), "deploy");
	else if (p < 78 && i >= 0 && L->chans[i].prev >= 0) {
		/* Back to the version it left, likely still draining. */
		L->rollbacks++;
		step_deploy(L, i, L->chans[i].prev, "rollback");
	} else if (p < 83 && i >= 0) {
		/* Share another channel's active version. */
		j = rnd_live(L);
		k = L->chans[j].active;
		if (j == i || k < 0)
			step_run(L, rnd_in(L, 0, 20));
		else {
			L->shares++;
			step_deploy(L, i, k, "share");
		}
	} else if (p < 86 && i >= 0)
		step_remove(L, i);
	else if (p < 92 && empty >= 0)
		step_create(L, empty);
	else if (p < 96)
		step_engine(L, rnd_in(L, 0, NVERS - 1), p < 94);
	else
		step_run(L, rnd_in(L, 0, 20));
}

/* Copy src to dst with n extra bytes at the end: new bytes, new version. */
static void
copy_version(const char *src, const char *dst, int n)
{
	char	buf[65536];
	ssize_t	r;
	int	in, out;

	in = open(src, O_RDONLY | O_CLOEXEC);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (in == -1 || out == -1)
		fail_msg("copy %s to %s: %s", src, dst, strerror(errno));
	while ((r = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)r), r);
	memset(buf, 'v', (size_t)n);
	assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

/* The versions: chaos.so with 1..NVERS trailing bytes, and their hashes. */
static void
make_versions(struct life *L)
{
	unsigned char	hash[VERSION_LEN];
	int		fd;

	strlcpy(L->dir, "/tmp/route-host-lifecycle-XXXXXX", sizeof L->dir);
	assert_non_null(mkdtemp(L->dir));
	for (int k = 0; k < NVERS; k++) {
		snprintf(L->path[k], sizeof L->path[k], "%s/v%d.so", L->dir,
		    k);
		copy_version(testutil_plugin("chaos", false), L->path[k],
		    k + 1);
		fd = open(L->path[k], O_RDONLY | O_CLOEXEC);
		assert_int_not_equal(fd, -1);
		assert_int_equal(version_file(fd, hash), 0);
		close(fd);
		version_hex(hash, L->hex[k]);
		snprintf(L->optv[k], sizeof L->optv[k], "%d", k);
		for (int j = 0; j < k; j++)
			assert_string_not_equal(L->hex[j], L->hex[k]);
	}
}

/* Remove the versions' files and directory. */
static void
remove_versions(struct life *L)
{
	for (int k = 0; k < NVERS; k++)
		unlink(L->path[k]);
	rmdir(L->dir);
}

/* An unsigned number from the environment, or def. */
static uint64_t
env_u64(const char *name, uint64_t def)
{
	const char	*v = getenv(name);
	char		*end;
	uint64_t	 n;

	if (v == NULL || *v == '\0')
		return def;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0')
		fail_msg("%s=%s: not a number", name, v);
	return n;
}

/* Print what ran and what broke. */
static void
summary(struct life *L)
{
	u_int	total = 0;

	fprintf(stderr, "lifecycle: seed %" PRIu64 ": %u steps, %zu calls "
	    "(%u direct, %u probes), %u deploys (%u rollbacks, %u shares), "
	    "%u removals, %u creations, %u turns, %u cut by a drain cap\n",
	    L->seed, L->step, L->nrecs, L->directs, L->probes, L->deploys,
	    L->rollbacks, L->shares, L->removals, L->creations, L->runs,
	    L->capped);
	for (int a = 0; a <= ACT_LAST; a++) {
		fprintf(stderr, "lifecycle:   %-5s", act_names[a]);
		for (int s = 0; s <= ST_LAST; s++)
			if (L->stats[a][s] > 0)
				fprintf(stderr, " %s %u", engine_status_name(
				    (enum status)s), L->stats[a][s]);
		fprintf(stderr, "\n");
	}
	for (int v = 0; v < V_LAST; v++) {
		total += L->nviol[v];
		if (L->nviol[v] == 0)
			continue;
		fprintf(stderr, "lifecycle: FAILED %s: %u time%s\n",
		    viol_names[v], L->nviol[v], L->nviol[v] == 1 ? "" : "s");
		for (u_int n = 0; n < L->nviol[v] && n < 3; n++)
			fprintf(stderr, "lifecycle:   %s\n", L->first[v][n]);
	}
	if (total == 0)
		fprintf(stderr, "lifecycle: seed %" PRIu64 ": every invariant "
		    "held\n", L->seed);
}

/* Print a version left behind, and its helpers. */
static void
show_version(struct module *m, void *arg)
{
	struct engine_helper	hs[16];
	u_int			n = engine_helpers(m, hs, nitems(hs));

	(void)arg;
	print_message("lifecycle:   left: %.12s %s, %u call(s), %u "
	    "helper(s):", m->hex, module_state_name(m->state), m->ncalls, n);
	for (u_int i = 0; i < n; i++)
		print_message(" %ld %s%s", (long)hs[i].pid, hs[i].state,
		    hs[i].spare ? " (spare)" : "");
	print_message("\n");
}

/*
 * The whole run: random steps for a while, then every channel freed, the
 * loop run until nothing is pending, the engine freed, and the checks.
 */
static void
test_lifecycle(void **state)
{
	struct life		*L = calloc(1, sizeof *L);
	struct engine_config	 conf;
	struct sigaction	 sa;
	struct timespec		 ts;
	char			 err[DETAIL_MAX];
	uint64_t		 seconds, steps, end;
	u_int			 failed = 0;
	int			 fds;

	(void)state;
	assert_non_null(L);
	life = L;
	clock_gettime(CLOCK_REALTIME, &ts);
	L->seed = env_u64("LIFECYCLE_SEED", (uint64_t)ts.tv_sec * 1000 +
	    (uint64_t)ts.tv_nsec / 1000000);
	L->rng = L->seed;
	seconds = env_u64("LIFECYCLE_SECONDS", 3);
	steps = env_u64("LIFECYCLE_STEPS", 0);
	L->verbose = getenv("LIFECYCLE_VERBOSE") != NULL;
	fprintf(stderr, "seed %" PRIu64 "\n", L->seed);
	snprintf(fatal_msg, sizeof fatal_msg, "lifecycle: seed %" PRIu64
	    ": FAILED (replay with LIFECYCLE_SEED=%" PRIu64 ")", L->seed,
	    L->seed);

	/* A crash or a hang of the host still names the seed. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fatal;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGABRT, &sa, &old_abrt);
	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGFPE, &sa, &old_fpe);
	sa.sa_handler = watchdog;
	sa.sa_flags = 0;
	sigaction(SIGALRM, &sa, NULL);
#ifdef __SANITIZE_ADDRESS__
	__sanitizer_set_death_callback(sanitizer_death);
#endif
	alarm((u_int)(steps > 0 ? steps / 100 : seconds) + WATCHDOG_SLACK);

	fds = testutil_fds();
	make_versions(L);
	engine_defaults(&conf);
	conf.grace_ms = 2000;
	L->e = engine_new(&conf, err, sizeof err);
	if (L->e == NULL)
		fail_msg("engine_new: %s", err);
	for (int i = 0; i < NCHANS; i++) {
		snprintf(L->chans[i].name, sizeof L->chans[i].name, "c%d", i);
		L->chans[i].active = L->chans[i].gate = L->chans[i].prev = -1;
	}
	for (int i = 0; i < 2; i++)
		step_create(L, i);

	end = engine_now() + seconds * 1000 * MS_NS;
	for (L->step = 1; steps > 0 ? L->step <= steps : engine_now() < end;
	    L->step++) {
		step(L);
		/* Every call in one place, counts that add up, timers. */
		engine_check(L->e);
	}

	/* Retire everything; all that was accepted must end. */
	for (int i = 0; i < NCHANS; i++)
		if (L->chans[i].ch != NULL)
			step_remove(L, i);
	end = engine_now() + DRAIN_END_MS * MS_NS;
	while (engine_pending(L->e) > 0 && engine_now() < end)
		step_run(L, 10);
	if (engine_pending(L->e) > 0)
		violation(L, V_DRAINED, "%u calls still pending %d ms after "
		    "every channel was freed", engine_pending(L->e),
		    DRAIN_END_MS);
	/* Let retired versions' helpers go before the engine does. */
	end = engine_now() + 3000 * MS_NS;
	while ((engine_procs(L->e) > 0 || engine_loaded(L->e) > 0) &&
	    engine_now() < end)
		step_run(L, 10);
	if (engine_loaded(L->e) > 0 || engine_procs(L->e) > 0) {
		violation(L, V_DRAINED, "%u versions and %u helpers left 3 s "
		    "after the last call", engine_loaded(L->e),
		    engine_procs(L->e));
		engine_foreach(L->e, show_version, NULL);
	}
	engine_free(L->e);
	L->e = NULL;
	alarm(0);

	for (size_t id = 0; id < L->nrecs; id++)
		if (L->recs[id].runs == 0) {
			struct rec	*rc = &L->recs[id];

			violation(L, V_ONCE, "call #%zu (%s %s, v%d, timeout "
			    "%d ms) never got its callback", id,
			    rc->kind == K_PROBE ? "probe" : act_names[rc->act],
			    rc->kind == K_CALL ? L->chans[rc->chan].name :
			    "direct", rc->ver, rc->timeout_ms);
		}
	if (!testutil_no_children())
		violation(L, V_CLEAN, "a child is left after engine_free");
	remove_versions(L);
	if (testutil_fds() != fds)
		violation(L, V_CLEAN, "%d fds open at the end, %d at the start",
		    testutil_fds(), fds);

	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGABRT, &old_abrt, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGFPE, &old_fpe, NULL);
	summary(L);
	for (int v = 0; v < V_LAST; v++)
		failed += L->nviol[v] > 0;
	life = NULL;
	free(L->recs);
	if (failed > 0) {
		uint64_t	seed = L->seed;

		free(L);
		fail_msg("seed %" PRIu64 ": %u invariant%s failed (replay with "
		    "LIFECYCLE_SEED=%" PRIu64 ")", seed, failed,
		    failed == 1 ? "" : "s", seed);
	}
	free(L);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_lifecycle),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("lifecycle", tests, NULL, NULL);
}
