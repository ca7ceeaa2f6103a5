/* SPDX-License-Identifier: ISC */
/*
 * A version's pool: its helpers, the calls waiting for them, and what
 * every helper event means.
 *
 * proc.c turns a helper's bytes and its death into typed events; this
 * file alone decides what they mean, in one table of state x event (the
 * helper's states are in engine-int.h).  The pool also moves its queue
 * along (pool_kick: give waiting calls to the least loaded warm helper,
 * fork helpers up to the pool size), keeps a warm spare for a while
 * after a crash, runs the version's crash life (below) and its poison
 * memo (the bodies that crashed it, memo.c), and enforces each
 * helper's one deadline: its init or fini grace, the moment it has to die
 * after closing its socket, the run time of an abandoned call, and write
 * progress on its socket.  Kicks run at the end of the turn, never inside
 * the event that asked for them.
 */

#include "config.h"

#include <sys/wait.h>

#include <assert.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "engine-int.h"

#define POOL_SPAWN_RETRY_MS	1000	/* load failures fail fast this long */
#define POOL_SPARE_DELAY_MS	10	/* fork a spare this long after a use */
#define POOL_SPARE_AT_ONCE	2	/* ... or at once from this many crashes
					   in a row */
#define POOL_EOF_GRACE_MS	20	/* to die after closing its socket */
#define POOL_STALL_MS		1000	/* idle, and not reading its socket */
#define POOL_COLLECT_MS		1	/* ledgers of pipelined helpers, read */
#define POOL_VIOLATION_LOG_MS	60000	/* a version's sandbox kills, logged */
#define POOL_INCIDENT_LOG_MS	1000	/* its crashes and kills, logged */

/*
 * A version's crash life:
 *
 *	         budget crashes in a row          the backoff passed
 *	STEADY --------------------------> LOOPING -----------------> PROBING
 *	  ^       pool_loop_enter             ^     pool_loop_probe      |
 *	  |                                   +--------------------------+
 *	  |                                      the probe crashed:      |
 *	  |                                      pool_loop_retry         |
 *	  +------------------- a call answered: pool_loop_leave ---------+
 *
 * LOOPING: no fork, and a call that would wait for a helper is answered
 * crash_loop at once.  PROBING: one call may wait for one helper (a spare
 * standing by, or a fork), the others are answered crash_loop; the probe
 * crashing doubles the backoff, up to its bound.  Entering and leaving are
 * logged, once each.
 */
enum pool_loop {
	LOOP_STEADY,
	LOOP_LOOPING,
	LOOP_PROBING,
};

struct pool {
	struct module		*module;
	struct engine		*engine;
	TAILQ_HEAD(, proc)	 procs;
	u_int			 nprocs;
	u_int			 max;		/* 0: the engine's */
	bool			 unsandboxed;	/* sandbox no */
	size_t			 memory;	/* 0: the engine's */
	struct call_fifo	 queue;
	u_int			 nqueued;
	TAILQ_ENTRY(pool)	 kickentry;
	bool			 kicking;	/* on the engine's kick list */

	/* Load failures fail calls fast until spawn_retry. */
	char			 spawn_error[DETAIL_MAX];
	uint64_t		 spawn_retry;

	/* Its crash life: in LOOPING, no fork before spawn_not_before. */
	struct crash_conf	 crash;		/* 0 fields: the engine's */
	enum pool_loop		 loop;
	u_int			 crash_streak;	/* crashes in a row */
	uint64_t		 loop_since;	/* monotonic */
	uint64_t		 backoff_ms;
	uint64_t		 spawn_not_before;
	struct timer		 probe;
	struct memo		*memo;		/* NULL until a body crashed */

	/* Helper incidents: logged a line a second, the rest counted. */
	uint64_t		 incident_logged;	/* the last line */
	u_int			 incidents_quiet;	/* since, not logged */
	int			 quiet_prio;		/* the worst of them */
	char			 quiet_last[DETAIL_MAX + 64];
	struct timer		 incident;		/* says how many */

	/* A spare kept loaded until standby_until, forked at spare. */
	uint64_t		 standby_until;
	struct timer		 standby;
	struct timer		 spare;
};

typedef void	(*pool_fn)(struct proc *, const struct proc_ev *);

static void	pool_incident(struct proc *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	pool_ready(struct proc *, const struct proc_ev *);
static void	pool_refused(struct proc *, const struct proc_ev *);
static void	pool_answer(struct proc *, const struct proc_ev *);
static void	pool_closed(struct proc *, const struct proc_ev *);
static void	pool_broken(struct proc *, const struct proc_ev *);
static void	pool_died(struct proc *, const struct proc_ev *);
static void	pool_unborn(struct proc *, const struct proc_ev *);
static void	pool_overdue(struct proc *, const struct proc_ev *);
static void	pool_ignore(struct proc *, const struct proc_ev *);

/*
 * What each event means in each state.  A helper's RESULT frames are
 * checked by proc.c before they become events; a handshake or a result
 * where none can be is a protocol violation (pool_broken).  Once its
 * socket is closed, nothing but its death and its deadline matter.
 */
static const pool_fn pool_table[PROC_NSTATES][PEV_NEVENTS] = {
	/*	HELLO		REFUSED		RESULT		EOF
		VIOLATION	REAPED		UNBORN		TIMER */
	[PROC_SPAWNING] = {
		pool_ready,	pool_refused,	pool_broken,	pool_closed,
		pool_broken,	pool_died,	pool_unborn,	pool_overdue },
	[PROC_IDLE] = {
		pool_broken,	pool_broken,	pool_broken,	pool_closed,
		pool_broken,	pool_died,	pool_unborn,	pool_ignore },
	[PROC_BUSY] = {
		pool_broken,	pool_broken,	pool_answer,	pool_closed,
		pool_broken,	pool_died,	pool_unborn,	pool_overdue },
	[PROC_STANDBY] = {
		pool_broken,	pool_broken,	pool_broken,	pool_closed,
		pool_broken,	pool_died,	pool_unborn,	pool_ignore },
	[PROC_STOPPING] = {
		pool_ignore,	pool_ignore,	pool_ignore,	pool_ignore,
		pool_ignore,	pool_died,	pool_unborn,	pool_overdue },
	[PROC_LOST] = {
		pool_ignore,	pool_ignore,	pool_answer,	pool_ignore,
		pool_ignore,	pool_died,	pool_unborn,	pool_overdue },
	[PROC_KILLED] = {
		pool_ignore,	pool_ignore,	pool_ignore,	pool_ignore,
		pool_ignore,	pool_died,	pool_unborn,	pool_ignore },
};

static void	pool_loop_probe(void *);
static void	pool_standby_fired(void *);
static void	pool_spare_fired(void *);
static void	pool_proc_timer(void *);
static void	pool_collect(void *);
static void	pool_incident_fired(void *);

/* A new, empty pool for m; NULL when out of memory. */
struct pool *
pool_new(struct module *m)
{
	struct pool	*pl;

	if ((pl = calloc(1, sizeof *pl)) == NULL)
		return NULL;
	pl->module = m;
	pl->engine = m->engine;
	TAILQ_INIT(&pl->procs);
	TAILQ_INIT(&pl->queue);
	loop_timer_init(&pl->probe, pool_loop_probe, pl);
	loop_timer_init(&pl->standby, pool_standby_fired, pl);
	loop_timer_init(&pl->spare, pool_spare_fired, pl);
	loop_timer_init(&pl->incident, pool_incident_fired, pl);
	return pl;
}

/* Free an empty pool. */
void
pool_free(struct pool *pl)
{
	struct engine	*e;

	if (pl == NULL)
		return;
	e = pl->engine;
	assert(pl->nprocs == 0 && pl->nqueued == 0);
	pool_incident_fired(pl);	/* what was not logged yet */
	loop_timer_cancel(e->loop, &pl->probe);
	memo_free(pl->memo);
	loop_timer_cancel(e->loop, &pl->standby);
	loop_timer_cancel(e->loop, &pl->spare);
	loop_timer_cancel(e->loop, &pl->incident);
	if (pl->kicking)
		TAILQ_REMOVE(&e->kickq, pl, kickentry);
	free(pl);
}

/* The pool size. */
static u_int
pool_max(const struct pool *pl)
{
	return pl->max != 0 ? pl->max : pl->engine->conf.helpers;
}

/* Set m's pool size (0: the engine's). */
void
pool_set_max(struct module *m, u_int max)
{
	m->pool->max = max;
}

/* Run m's helpers in the sandbox or not, with memory (0: the engine's). */
void
pool_set_sandbox(struct module *m, bool on, size_t memory)
{
	m->pool->unsandboxed = !on;
	m->pool->memory = memory;
}

/* Set m's crash budget, backoff bounds and memo (0 fields: the engine's). */
void
pool_set_crash(struct module *m, const struct crash_conf *cc)
{
	m->pool->crash = *cc;
}

/* Crashes in a row that start m's crash loop. */
static u_int
pool_budget(const struct pool *pl)
{
	return pl->crash.budget != 0 ? pl->crash.budget :
	    pl->engine->conf.crash.budget;
}

/* The first probe's delay, ms. */
static uint64_t
pool_backoff_min(const struct pool *pl)
{
	return pl->crash.backoff_min_ms != 0 ? pl->crash.backoff_min_ms :
	    pl->engine->conf.crash.backoff_min_ms;
}

/* The longest delay between probes, ms. */
static uint64_t
pool_backoff_max(const struct pool *pl)
{
	uint64_t	max = pl->crash.backoff_max_ms != 0 ?
			    pl->crash.backoff_max_ms :
			    pl->engine->conf.crash.backoff_max_ms;

	return max < pool_backoff_min(pl) ? pool_backoff_min(pl) : max;
}

/*
 * True when m remembers bodies that crashed it: poison-memo is not off,
 * and the plugin did not declare itself non-deterministic.
 */
static bool
pool_memo_on(const struct pool *pl)
{
	int	memo = pl->crash.memo != 0 ? pl->crash.memo :
		    pl->engine->conf.crash.memo;

	return memo > 0 &&
	    (pl->module->flags & ROUTE_PLUGIN_NONDETERMINISTIC) == 0;
}

/* Remember that call c's body crashed a helper of m (cause says how). */
static void
pool_remember(struct pool *pl, struct call *c, const char *cause)
{
	const struct engine	*e = pl->engine;
	uint64_t		 now = loop_now(), ttl;
	int			 size;

	if (c->probe || !pool_memo_on(pl))
		return;
	size = pl->crash.memo != 0 ? pl->crash.memo : e->conf.crash.memo;
	ttl = pl->crash.memo_ttl_ms != 0 ? pl->crash.memo_ttl_ms :
	    e->conf.crash.memo_ttl_ms;
	if (pl->memo == NULL && (pl->memo = memo_new((size_t)size)) == NULL)
		return;		/* out of memory: no memo, nothing worse */
	memo_add(pl->memo, call_hash(c), now, now + ttl * MS_NS, cause);
}

/*
 * If call c's body crashed a helper of its version within the memo's
 * TTL, answer it crashed now, without running it, and return true.
 */
bool
pool_remembered(struct call *c)
{
	struct module		*m = c->module;
	struct pool		*pl = m->pool;
	const struct memo_entry	*me;
	uint64_t		 now = loop_now();
	char			 why[DETAIL_MAX];

	if (memo_empty(pl->memo) || c->probe || !pool_memo_on(pl) ||
	    (me = memo_find(pl->memo, call_hash(c), now)) == NULL)
		return false;
	m->memo_hits++;
	snprintf(why, sizeof why, "remembered: this body crashed %.12s %llu "
	    "ms ago (%s); not run again (poison memo)", m->hex,
	    (unsigned long long)((now - me->at) / MS_NS), me->cause);
	call_finish(c, ST_CRASHED, ROUTE_NONE, why);
	return true;
}

/* What m's next helper runs, and how it is confined. */
void
pool_spec(const struct module *m, struct helper_spec *spec)
{
	const struct pool	*pl = m->pool;
	const struct engine	*e = pl->engine;

	memset(spec, 0, sizeof *spec);
	spec->label = m->label;
	spec->hex = m->hex;
	spec->opts = m->opts;
	spec->nopts = m->nopts;
	spec->sandbox = e->conf.sandbox && !pl->unsandboxed;
	spec->memory = pl->memory != 0 ? pl->memory : e->conf.memory_limit;
	spec->setuser = e->setuser;
	spec->uid = e->uid;
	spec->gid = e->gid;
	spec->debug = e->debug;
}

/* Helpers not yet reaped. */
u_int
pool_nprocs(const struct module *m)
{
	return m->pool->nprocs;
}

/* True when m has no helper left. */
bool
pool_empty(const struct module *m)
{
	return m->pool->nprocs == 0;
}

/* m's first helper, for walking them; NULL when none. */
struct proc *
pool_first(const struct module *m)
{
	return TAILQ_FIRST(&m->pool->procs);
}

/* The helper after p in its pool. */
struct proc *
pool_next(const struct proc *p)
{
	return TAILQ_NEXT(p, entry);
}

/*
 * Count helpers by state.  A spare counts for nothing until promoted, and
 * a helper whose socket is closed is on its way out; one that went while
 * loading still counts as spawning until its death says how the load
 * ended, so that no other helper is forked to take its place meanwhile.
 */
static void
pool_count(const struct pool *pl, u_int *idle, u_int *spawning, u_int *live)
{
	struct proc	*p;

	*idle = *spawning = *live = 0;
	TAILQ_FOREACH(p, &pl->procs, entry) {
		if (p->spare)
			continue;
		if (p->state == PROC_IDLE)
			(*idle)++;
		if (p->state == PROC_SPAWNING || (!p->settled &&
		    (p->state == PROC_LOST || p->state == PROC_KILLED)))
			(*spawning)++;
		if (p->state <= PROC_BUSY)
			(*live)++;
	}
}

/* Move m's pool along at the end of this turn. */
static void
pool_kick_later(struct module *m)
{
	struct pool	*pl = m->pool;

	if (!pl->kicking) {
		TAILQ_INSERT_TAIL(&pl->engine->kickq, pl, kickentry);
		pl->kicking = true;
	}
}

/* Write p's frames at the end of this turn. */
static void
pool_flush_later(struct proc *p)
{
	struct engine	*e = p->engine;

	if (!p->flushing) {
		TAILQ_INSERT_TAIL(&e->flushq, p, flushentry);
		p->flushing = true;
	}
}

/* Put call c in its version's queue, at the front when requeued. */
void
pool_enqueue(struct call *c, bool front)
{
	struct pool	*pl = c->module->pool;

	if (front)
		TAILQ_INSERT_HEAD(&pl->queue, c, entry);
	else
		TAILQ_INSERT_TAIL(&pl->queue, c, entry);
	pl->nqueued++;
	pool_kick_later(c->module);
}

/* Take call c out of its version's queue. */
void
pool_dequeue(struct call *c)
{
	struct pool	*pl = c->module->pool;

	TAILQ_REMOVE(&pl->queue, c, entry);
	pl->nqueued--;
	if (pl->nqueued == 0 && c->module->state != MODULE_HELD)
		pool_kick_later(c->module);	/* its helpers may go */
}

/* End every call waiting in m's queue. */
static void
pool_fail_queue(struct pool *pl, enum status st, const char *why)
{
	struct call	*c;

	while ((c = TAILQ_FIRST(&pl->queue)) != NULL)
		call_finish(c, st, ROUTE_NONE, why);
}

static struct proc *pool_least_loaded(const struct pool *);

/* Why a call is answered crash_loop: since when, how many, what next. */
static void
pool_loop_detail(const struct pool *pl, char *buf, size_t len)
{
	uint64_t	 now = loop_now(), ms = (now - pl->loop_since) / MS_NS;
	time_t		 since = (time_t)(pl->module->crash_loop_since / 1000);
	struct tm	 tm;
	char		 when[32] = "?", next[48];

	if (gmtime_r(&since, &tm) != NULL)
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (pl->loop == LOOP_PROBING || now >= pl->spawn_not_before)
		strlcpy(next, "next probe running now", sizeof next);
	else
		snprintf(next, sizeof next, "next probe in %llu ms",
		    (unsigned long long)((pl->spawn_not_before - now +
		    MS_NS - 1) / MS_NS));
	snprintf(buf, len, "crash loop since %s (%llu ms): %u crashes in a "
	    "row; %s", when, (unsigned long long)ms, pl->crash_streak, next);
}

/*
 * True when a call on m would wait for a helper that its crash loop will
 * not give it: LOOPING with no warm helper with room, or PROBING with the
 * probe's call waiting already.
 */
static bool
pool_loop_sheds(const struct pool *pl)
{
	if (pl->loop == LOOP_STEADY || pool_least_loaded(pl) != NULL)
		return false;
	return pl->loop == LOOP_LOOPING || pl->nqueued > 0;
}

/*
 * When a new call on m should fail at once: m is in a crash loop and the
 * call would wait for a helper, or m failed to load a moment ago and
 * nothing of it is alive.  Fills r and returns true then.
 */
bool
pool_fail_fast(struct module *m, struct result *r)
{
	struct pool	*pl = m->pool;
	u_int		 idle, spawning, live;
	struct proc	*p;

	if (pool_loop_sheds(pl)) {
		r->status = ST_CRASH_LOOP;
		pool_loop_detail(pl, r->detail, sizeof r->detail);
		return true;
	}
	if (pl->spawn_error[0] == '\0' || loop_now() >= pl->spawn_retry)
		return false;
	pool_count(pl, &idle, &spawning, &live);
	if (live > 0)
		return false;
	TAILQ_FOREACH(p, &pl->procs, entry)
		if (p->spare && p->state <= PROC_STANDBY)
			return false;
	r->status = ST_SPAWN_FAILED;
	strlcpy(r->detail, pl->spawn_error, sizeof r->detail);
	return true;
}

/* Set p's one timer to the earliest deadline its state has. */
static void
pool_arm(struct proc *p)
{
	struct engine	*e = p->engine;
	struct call	*head;
	uint64_t	 at = 0;

	switch (p->state) {
	case PROC_SPAWNING:
	case PROC_STOPPING:
		at = p->grace_by;
		break;
	case PROC_LOST:
		at = p->eof_by;
		break;
	case PROC_BUSY:
		/* An abandoned call at the head, running: its own timeout. */
		head = TAILQ_FIRST(&p->calls);
		if (head != NULL && !call_waiting(head) && proc_sent(p, head)) {
			if (p->ghost_by == 0 || p->ghost_seq != head->seq) {
				p->ghost_seq = head->seq;
				p->ghost_by = loop_now() +
				    (uint64_t)head->timeout_ms * MS_NS;
			}
		} else
			p->ghost_by = 0;
		at = p->ghost_by;
		if (p->stall_by != 0 && (at == 0 || p->stall_by < at))
			at = p->stall_by;
		break;
	default:
		break;
	}
	if (at != 0)
		loop_timer_at(e->loop, &p->timer, at);
	else
		loop_timer_cancel(e->loop, &p->timer);
}

/* Fork one more helper for m; false (queue failed) if the fork failed. */
static bool
pool_spawn(struct pool *pl, bool spare)
{
	struct engine	*e = pl->engine;
	struct proc	*p;
	char		 err[DETAIL_MAX];

	if ((p = proc_spawn(e, pl->module, err, sizeof err)) == NULL) {
		if (!spare)
			pool_fail_queue(pl, ST_SPAWN_FAILED, err);
		return false;
	}
	p->spare = spare;
	loop_timer_init(&p->timer, pool_proc_timer, p);
	TAILQ_INSERT_TAIL(&pl->procs, p, entry);
	pl->nprocs++;
	engine_proc_born(e, p);
	p->grace_by = loop_now() + (uint64_t)e->conf.grace_ms * MS_NS;
	pool_arm(p);
	return true;
}

/*
 * Stop a helper that has nothing to do: it runs fini and exits.  One still
 * loading was not refused: how it ends says nothing about the version.
 */
static void
pool_stop(struct proc *p)
{
	p->settled = true;
	proc_stop(p);
	p->grace_by = loop_now() + (uint64_t)p->engine->conf.grace_ms * MS_NS;
	pool_arm(p);
}

/* Kill a helper now; reaping forgets it. */
static void
pool_kill(struct proc *p, const char *cause)
{
	proc_kill(p, cause);
	pool_arm(p);
}

/* m's spare helper, standing by or still loading, or NULL. */
static struct proc *
pool_spare(const struct pool *pl)
{
	struct proc	*p;

	TAILQ_FOREACH(p, &pl->procs, entry)
		if (p->spare && (p->state == PROC_SPAWNING ||
		    p->state == PROC_STANDBY))
			return p;
	return NULL;
}

/* A spare becomes a helper like any other: STANDBY -> IDLE. */
static void
pool_promote(struct proc *p)
{
	p->spare = false;
	if (p->state == PROC_STANDBY)
		p->state = PROC_IDLE;
}

/*
 * See that m gets a spare if it should have one and has none: forked a
 * little later, off the path of the calls that follow a failure, or at
 * once while m crashes back to back, so each crash finds a spare ready
 * and healthy calls keep flowing; never while m cannot load, nor in a
 * crash loop before its probe.
 */
static void
pool_keep_standby(struct pool *pl)
{
	struct engine	*e = pl->engine;
	uint64_t	 at;

	if (pl->standby_until == 0 || e->closing ||
	    pl->module->state != MODULE_HELD || pl->spawn_error[0] != '\0' ||
	    pool_spare(pl) != NULL) {
		loop_timer_cancel(e->loop, &pl->spare);
		return;
	}
	at = loop_now();
	if (pl->crash_streak < POOL_SPARE_AT_ONCE)
		at += POOL_SPARE_DELAY_MS * MS_NS;
	if (at < pl->spawn_not_before)
		at = pl->spawn_not_before;
	if (pl->spare.armed && pl->spare.at <= at)
		return;
	loop_timer_at(e->loop, &pl->spare, at);
}

/* The spare's moment came. */
static void
pool_spare_fired(void *arg)
{
	struct pool	*pl = arg;

	if (pl->standby_until == 0 || pool_spare(pl) != NULL ||
	    pl->module->state != MODULE_HELD || pl->engine->closing)
		return;
	if (loop_now() < pl->spawn_not_before)
		/* A crash loop began meanwhile: not before its backoff. */
		loop_timer_at(pl->engine->loop, &pl->spare,
		    pl->spawn_not_before);
	else
		(void)pool_spawn(pl, true);
}

/*
 * A helper of m died unasked: for a while, m keeps a spare helper loaded,
 * so that the next death is replaced by a warm helper at once instead of
 * a fork on the next call's path.  (A helper killed at a deadline is not
 * counted: a slow plugin is not a crashing one.)
 */
static void
pool_want_standby(struct pool *pl)
{
	struct engine	*e = pl->engine;

	if (pl->module->state != MODULE_HELD || e->conf.standby_ms <= 0)
		return;
	pl->standby_until = loop_now() + (uint64_t)e->conf.standby_ms * MS_NS;
	loop_timer_at(e->loop, &pl->standby, pl->standby_until);
}

/* Stop keeping a spare for m, and stop the one standing by. */
static void
pool_end_standby(struct pool *pl)
{
	struct engine	*e = pl->engine;
	struct proc	*p, *next;

	pl->standby_until = 0;
	loop_timer_cancel(e->loop, &pl->standby);
	loop_timer_cancel(e->loop, &pl->spare);
	TAILQ_FOREACH_SAFE(p, &pl->procs, entry, next)
		if (p->state == PROC_STANDBY)
			pool_stop(p);
}

/* The standby period passed. */
static void
pool_standby_fired(void *arg)
{
	pool_end_standby(arg);
}

/* Wait backoff_ms before the next probe: no fork meanwhile. */
static void
pool_loop_backoff(struct pool *pl)
{
	pl->spawn_not_before = loop_now() + pl->backoff_ms * MS_NS;
	if (pl->module->state == MODULE_HELD)
		loop_timer_at(pl->engine->loop, &pl->probe,
		    pl->spawn_not_before);
	pool_kick_later(pl->module);	/* what waits is answered */
}

/* STEADY -> LOOPING: budget crashes in a row. */
static void
pool_loop_enter(struct pool *pl)
{
	struct module	*m = pl->module;
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	pl->loop = LOOP_LOOPING;
	pl->loop_since = loop_now();
	m->crash_loop_since = (uint64_t)ts.tv_sec * 1000 +
	    (uint64_t)ts.tv_nsec / 1000000;
	pl->backoff_ms = pool_backoff_min(pl);
	engine_log(pl->engine, LOG_WARNING, "%s %.12s: entered a crash loop: "
	    "%u crashes in a row; calls that would wait for a helper are "
	    "answered crash_loop, probes from %llu ms, doubling up to %llu ms",
	    m->label, m->hex, pl->crash_streak,
	    (unsigned long long)pl->backoff_ms,
	    (unsigned long long)pool_backoff_max(pl));
	pool_loop_backoff(pl);
}

/* LOOPING -> PROBING: the backoff passed; one call may test m again. */
static void
pool_loop_probe(void *arg)
{
	struct pool	*pl = arg;

	if (pl->loop != LOOP_LOOPING)
		return;
	pl->loop = LOOP_PROBING;
	pool_kick_later(pl->module);
}

/* PROBING -> LOOPING: the probe crashed; the backoff doubles. */
static void
pool_loop_retry(struct pool *pl)
{
	pl->loop = LOOP_LOOPING;
	pl->backoff_ms *= 2;
	if (pl->backoff_ms > pool_backoff_max(pl))
		pl->backoff_ms = pool_backoff_max(pl);
	pool_loop_backoff(pl);
}

/* LOOPING or PROBING -> STEADY: a call was answered. */
static void
pool_loop_leave(struct pool *pl)
{
	struct module	*m = pl->module;

	engine_log(pl->engine, LOG_NOTICE, "%s %.12s: left the crash loop "
	    "after %llu ms and %u crashes: a call was answered", m->label,
	    m->hex, (unsigned long long)((loop_now() - pl->loop_since) /
	    MS_NS), pl->crash_streak);
	pl->loop = LOOP_STEADY;
	pl->spawn_not_before = 0;
	m->crash_loop_since = 0;
	loop_timer_cancel(pl->engine->loop, &pl->probe);
	pool_kick_later(m);
}

/* A helper of m died unasked: count it, and move m's crash life along. */
static void
pool_crashed(struct pool *pl)
{
	pl->module->helper_crashes++;
	pl->crash_streak++;
	if (pl->loop == LOOP_STEADY && pl->crash_streak >= pool_budget(pl))
		pool_loop_enter(pl);
	else if (pl->loop == LOOP_PROBING)
		pool_loop_retry(pl);
}

/* End the calls waiting that m's crash loop will not give a helper. */
static void
pool_loop_shed(struct pool *pl)
{
	char		 why[DETAIL_MAX];
	struct call	*c, *next;

	if (pl->loop == LOOP_STEADY || TAILQ_EMPTY(&pl->queue))
		return;
	pool_loop_detail(pl, why, sizeof why);
	c = TAILQ_FIRST(&pl->queue);
	if (pl->loop == LOOP_PROBING)
		c = TAILQ_NEXT(c, entry);	/* the probe's */
	for (; c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		call_finish(c, ST_CRASH_LOOP, ROUTE_NONE, why);
	}
}

/* The handshaken helper holding the fewest calls, with room for one more. */
static struct proc *
pool_least_loaded(const struct pool *pl)
{
	struct proc	*p, *best = NULL;
	u_int		 depth = pl->engine->conf.depth;

	TAILQ_FOREACH(p, &pl->procs, entry)
		if ((p->state == PROC_IDLE || p->state == PROC_BUSY) &&
		    p->ncalls < depth &&
		    (best == NULL || p->ncalls < best->ncalls))
			best = p;
	return best;
}

/*
 * Move m's queue along: a retired version with nothing waiting lets its
 * helpers go; otherwise a spare steps in first, waiting calls go to warm
 * helpers, and helpers are forked for calls still waiting, up to the pool
 * size; in a crash loop, calls that would wait are answered crash_loop,
 * and only a probe's helper is forked, once the backoff has passed.
 * With the pool full, helpers take up to depth calls each, sent in one
 * write.
 */
static void
pool_kick(struct pool *pl)
{
	struct engine	*e = pl->engine;
	struct call	*c;
	struct proc	*p, *next;
	u_int		 idle, spawning, live, want, max = pool_max(pl);

	if (e->closing)
		return;
	if (pl->module->state != MODULE_HELD && pl->nqueued == 0) {
		/* Retired, and nothing waits: whatever is not busy goes. */
		TAILQ_FOREACH_SAFE(p, &pl->procs, entry, next)
			if (p->state == PROC_IDLE || p->state == PROC_STANDBY ||
			    p->state == PROC_SPAWNING)
				pool_stop(p);
		return;
	}
	pool_count(pl, &idle, &spawning, &live);
	/* In a crash loop, the spare waits to be the probe's helper. */
	if (pl->standby_until != 0 && (p = pool_spare(pl)) != NULL &&
	    pl->loop != LOOP_LOOPING &&
	    live < max && (live == 0 || (pl->nqueued > 0 && idle == 0))) {
		pool_promote(p);
		pool_keep_standby(pl);
		pool_count(pl, &idle, &spawning, &live);
	}
	while ((c = TAILQ_FIRST(&pl->queue)) != NULL &&
	    (p = pool_least_loaded(pl)) != NULL) {
		/*
		 * Send a call behind another only once the pool is full: a
		 * slow call should delay its neighbours only when there is
		 * no helper left to give them.
		 */
		if (p->ncalls > 0 && (spawning > 0 || live < max))
			break;
		if (c->probe) {
			call_finish(c, ST_OK, ROUTE_NONE, "");
			continue;
		}
		if (pool_remembered(c))
			continue;
		pool_dequeue(c);
		call_send(c, p);
		pool_flush_later(p);
	}
	if (pool_least_loaded(pl) == NULL)
		pool_loop_shed(pl);
	if (pl->loop == LOOP_LOOPING)
		return;
	if (pl->loop == LOOP_PROBING && max > 1)
		max = 1;		/* one helper for the probe */
	if (pl->nqueued <= spawning || live >= max)
		return;
	want = pl->nqueued - spawning;
	if (want > max - live)
		want = max - live;
	while (want-- > 0 && pool_spawn(pl, false))
		;
}

/* Kick every pool that asked this turn; true if any did. */
bool
pool_settle(struct engine *e)
{
	struct pool	*pl;
	bool		 moved = false;

	while ((pl = TAILQ_FIRST(&e->kickq)) != NULL) {
		TAILQ_REMOVE(&e->kickq, pl, kickentry);
		pl->kicking = false;
		pool_kick(pl);
		moved = true;
	}
	return moved;
}

/*
 * Take every call out of helper p's FIFO.  The oldest, if written in full,
 * was running: it ends with st and why, and when it crashed the helper,
 * its body is remembered.  Calls that ended already are let
 * go.  The others never started: they go back to the front of the queue,
 * in order, for another helper, or, when requeue is false (a drain cap),
 * end as well.
 */
static void
pool_lose(struct proc *p, enum status st, const char *why, bool requeue)
{
	struct call	*c, *head = TAILQ_FIRST(&p->calls);

	if (head != NULL && !proc_sent(p, head))
		head = NULL;
	while ((c = TAILQ_LAST(&p->calls, call_fifo)) != NULL) {
		proc_unfifo(p, c);
		if (c == head && st == ST_CRASHED)
			pool_remember(p->module->pool, c, why);
		if (c->state != CALL_SENT)
			call_leave(c);		/* ended already: let go */
		else if (c == head || !requeue) {
			call_leave(c);
			call_finish(c, st, ROUTE_NONE, why);
		} else {
			call_leave(c);
			call_requeue(c);
		}
	}
	pool_kick_later(p->module);
}

/*
 * A helper failed to load.  Unless another helper of m is alive, every
 * waiting call fails with the reason, and so do new calls for a while.
 */
static void
pool_spawn_failed(struct proc *p, const char *why)
{
	struct pool	*pl = p->module->pool;
	u_int		 idle, spawning, live;
	struct proc	*spare;

	strlcpy(pl->spawn_error, why, sizeof pl->spawn_error);
	pl->spawn_retry = loop_now() + POOL_SPAWN_RETRY_MS * MS_NS;
	pool_incident(p, LOG_ERR, "failed to start: %s", why);
	if (p->spare)
		return;		/* no call was waiting for it */
	pool_count(pl, &idle, &spawning, &live);
	if (live > 0)
		return;
	if ((spare = pool_spare(pl)) != NULL) {
		/* Loaded (or loading) already: it takes over. */
		pool_promote(spare);
		pool_kick_later(p->module);
		return;
	}
	pool_fail_queue(pl, ST_SPAWN_FAILED, why);
}

/* HELLO while SPAWNING: the helper loaded the version. */
static void
pool_ready(struct proc *p, const struct proc_ev *ev)
{
	struct pool	*pl = p->module->pool;

	(void)ev;
	p->settled = true;
	p->grace_by = 0;
	pl->spawn_error[0] = '\0';
	p->state = p->spare ? PROC_STANDBY : PROC_IDLE;
	pool_arm(p);
	if (p->state == PROC_STANDBY && pl->standby_until == 0)
		pool_stop(p);
	else {
		pool_kick_later(p->module);
		pool_keep_standby(pl);
	}
}

/* A failed handshake: the reason is the helper's detail. */
static void
pool_refused(struct proc *p, const struct proc_ev *ev)
{
	p->settled = true;
	pool_kill(p, ev->why);
	pool_spawn_failed(p, ev->why);
}

/* A call's result (SENT), or an abandoned call's, which is dropped. */
static void
pool_answer(struct proc *p, const struct proc_ev *ev)
{
	struct module	*m = p->module;
	struct call	*c = ev->call;
	char		 why[DETAIL_MAX];

	if (m->pool->loop != LOOP_STEADY)
		pool_loop_leave(m->pool);
	m->pool->crash_streak = 0;
	if (c->state != CALL_SENT)
		call_leave(c);		/* ended already: dropped */
	else {
		call_leave(c);
		if (ev->bad_request)
			call_finish(c, ST_BAD_REQUEST, ROUTE_NONE, ev->why);
		else if (ev->decision != ROUTE_NONE && (ev->decision < 0 ||
		    (uint32_t)ev->decision >= c->nconsumers)) {
			snprintf(why, sizeof why, "plugin returned %d for %u "
			    "consumer%s", ev->decision, c->nconsumers,
			    c->nconsumers == 1 ? "" : "s");
			call_finish(c, ST_BAD_DECISION, ROUTE_NONE, why);
		} else
			call_finish(c, ST_OK, ev->decision, "");
	}
	if (p->state == PROC_BUSY && p->ncalls == 0)
		p->state = PROC_IDLE;
	pool_arm(p);
	pool_kick_later(m);
}

/* The helper closed its socket: it has a moment to die on its own. */
static void
pool_closed(struct proc *p, const struct proc_ev *ev)
{
	(void)ev;
	proc_close(p);
	p->fault = true;
	p->state = PROC_LOST;
	p->eof_by = loop_now() + POOL_EOF_GRACE_MS * MS_NS;
	pool_arm(p);
}

/*
 * The helper broke the protocol (or said something where nothing can be
 * said): it is killed, a pending handshake fails, and the call it was
 * running is lost.  It forfeits what its ledger holds.
 */
static void
pool_broken(struct proc *p, const struct proc_ev *ev)
{
	static const char *const unexpected[PEV_NEVENTS] = {
		[PEV_HELLO] = "unexpected handshake",
		[PEV_REFUSED] = "unexpected handshake",
		[PEV_RESULT] = "result for no call",
	};
	char	cause[DETAIL_MAX];

	snprintf(cause, sizeof cause, "protocol violation: %s",
	    ev->why != NULL ? ev->why : unexpected[ev->type]);
	p->fault = true;
	pool_kill(p, cause);
	if (!p->settled) {
		p->settled = true;
		pool_spawn_failed(p, cause);
	} else
		pool_lose(p, ST_CRASHED, cause, true);
}

/* Forget a reaped helper; its version may be done with. */
static void
pool_gone(struct proc *p)
{
	struct engine	*e = p->engine;
	struct pool	*pl = p->module->pool;

	loop_timer_cancel(e->loop, &p->timer);
	if (p->flushing) {
		TAILQ_REMOVE(&e->flushq, p, flushentry);
		p->flushing = false;
	}
	if (p->pipelined) {
		TAILQ_REMOVE(&e->pipelined, p, pipeentry);
		p->pipelined = false;
	}
	TAILQ_REMOVE(&pl->procs, p, entry);
	pl->nprocs--;
	engine_proc_reaped(e, p);
}

/*
 * Log how helper p ended badly (a crash, a deadline kill, a failed start)
 * with its version and pid: at most one line a second per version.  What
 * comes within that second is counted, and a line when it ends says how
 * many and the last of them (pool_incident_fired).  Status counts all.
 */
static void __attribute__((format(printf, 3, 4)))
pool_incident(struct proc *p, int prio, const char *fmt, ...)
{
	struct module	*m = p->module;
	struct pool	*pl = m->pool;
	uint64_t	 now = loop_now();
	char		 what[DETAIL_MAX + 64];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (pl->incident_logged != 0 &&
	    now - pl->incident_logged < POOL_INCIDENT_LOG_MS * MS_NS) {
		if (pl->incidents_quiet++ == 0 || prio < pl->quiet_prio)
			pl->quiet_prio = prio;
		snprintf(pl->quiet_last, sizeof pl->quiet_last,
		    "helper %ld %s", (long)p->pid, what);
		loop_timer_at(p->engine->loop, &pl->incident,
		    pl->incident_logged + POOL_INCIDENT_LOG_MS * MS_NS);
		return;
	}
	if (p->pid == 0)
		engine_log(p->engine, prio, "%s %.12s: a helper not yet forked "
		    "%s", m->label, m->hex, what);
	else
		engine_log(p->engine, prio, "%s %.12s: helper %ld %s",
		    m->label, m->hex, (long)p->pid, what);
	pl->incident_logged = now;
}

/* The second after a logged incident ended: say what was not logged. */
static void
pool_incident_fired(void *arg)
{
	struct pool	*pl = arg;
	struct module	*m = pl->module;

	if (pl->incidents_quiet == 0)
		return;
	engine_log(pl->engine, pl->quiet_prio, "%s %.12s: %u more helper "
	    "incident%s in the last %d ms, the last: %s", m->label, m->hex,
	    pl->incidents_quiet, pl->incidents_quiet == 1 ? "" : "s",
	    POOL_INCIDENT_LOG_MS, pl->quiet_last);
	pl->incidents_quiet = 0;
	pl->incident_logged = loop_now();
}

/*
 * The sandbox killed helper p (how says why): count it on its version,
 * and log the first, then at most one line a minute with the count since.
 */
static void
pool_violation(struct proc *p, const char *how)
{
	struct module	*m = p->module;
	uint64_t	 now = loop_now();

	m->violations++;
	strlcpy(m->violation, how, sizeof m->violation);
	if (m->violations_logged != 0 &&
	    now - m->violation_logged < POOL_VIOLATION_LOG_MS * MS_NS)
		return;
	if (m->violations_logged == 0)
		engine_log(p->engine, LOG_WARNING, "%s %.12s: the sandbox "
		    "killed helper %ld: %s (further violations are counted "
		    "in status and logged at most once a minute)", m->label,
		    m->hex, (long)p->pid, how);
	else
		engine_log(p->engine, LOG_WARNING, "%s %.12s: the sandbox "
		    "killed %llu more helpers, the last: %s", m->label, m->hex,
		    (unsigned long long)(m->violations - m->violations_logged),
		    how);
	m->violations_logged = m->violations;
	m->violation_logged = now;
}

/*
 * The helper was reaped.  A handshake that never came is a spawn failure;
 * a helper that died by its own hand keeps what it finished, and the call
 * it was running is lost with the cause.  Then the pool replaces it.
 */
static void
pool_died(struct proc *p, const struct proc_ev *ev)
{
	struct module	*m = p->module;
	struct pool	*pl = m->pool;
	struct engine	*e = p->engine;
	char		 how[DETAIL_MAX], cause[DETAIL_MAX + 64];
	bool		 by_us, loading = !p->settled;
	u_int		 idle, spawning, live;

	if (WIFSIGNALED(ev->wstatus) && WTERMSIG(ev->wstatus) == SIGSYS) {
		sandbox_describe(p->ledger->blocked, how, sizeof how);
		pool_violation(p, how);
	} else {
		proc_describe_status(ev->wstatus, how, sizeof how);
		/* Where the plugin was, if its helper caught that. */
		if (WIFSIGNALED(ev->wstatus))
			ledger_describe_crash(p->ledger,
			    WTERMSIG(ev->wstatus), how, sizeof how);
	}
	by_us = p->state == PROC_KILLED && WIFSIGNALED(ev->wstatus) &&
	    WTERMSIG(ev->wstatus) == SIGKILL;
	if (p->state != PROC_KILLED && p->state != PROC_STOPPING)
		p->fault = true;
	if (!p->settled) {
		p->settled = true;
		/* One killed by the engine's end never failed to start. */
		if (!by_us || !e->closing) {
			snprintf(cause, sizeof cause, "died while loading: %s",
			    by_us ? p->cause : how);
			pool_spawn_failed(p, cause);
		}
	} else {
		if (p->fault && !by_us && !(WIFSIGNALED(ev->wstatus) &&
		    WTERMSIG(ev->wstatus) == SIGSYS))
			pool_incident(p, LOG_WARNING, "crashed %s: %s",
			    p->ncalls > 0 ? "in a call" : "idle", how);
		if (p->fault && !by_us && p->ncalls > 0)
			strlcpy(m->last_crash, how, sizeof m->last_crash);
		/*
		 * A helper we killed forfeits its ledger: its calls have ended
		 * (pool_lose, or pool_shut at shutdown), and a result taken
		 * now would be dropped by the KILLED row, its call leaked.
		 */
		if (p->ncalls > 0 && p->state != PROC_KILLED)
			proc_collect(p);
		strlcpy(cause, by_us ? p->cause : how, sizeof cause);
		if (p->ncalls > 0)
			pool_lose(p, ST_CRASHED, cause, true);
	}
	p->state = PROC_KILLED;
	pool_gone(p);
	if (m->state != MODULE_HELD) {
		pool_kick_later(m);
		module_settle(m);
		return;
	}
	if (e->closing)
		return;
	if (p->fault) {
		/* One that never loaded is a spawn failure, not a crash. */
		if (!loading)
			pool_crashed(pl);
		pool_want_standby(pl);
	}
	pool_kick_later(m);
	/* Respawn one warm helper for the next call, outside crash loops. */
	pool_count(pl, &idle, &spawning, &live);
	if (live == 0 && pool_spare(pl) == NULL &&
	    pl->spawn_error[0] == '\0' && loop_now() >= pl->spawn_not_before)
		(void)pool_spawn(pl, false);
	pool_keep_standby(pl);
}

/*
 * The zygote could not fork the helper: a failed start, unless it was
 * being stopped or killed already.  (Only a helper that never said HELLO
 * can be unborn; the other rows are there for completeness.)
 */
static void
pool_unborn(struct proc *p, const struct proc_ev *ev)
{
	struct module	*m = p->module;

	if (!p->settled) {
		p->settled = true;
		pool_spawn_failed(p, ev->why);
	}
	p->state = PROC_KILLED;
	pool_gone(p);
	pool_kick_later(m);
	if (m->state != MODULE_HELD)
		module_settle(m);
}

/* The helper's deadline passed: which one depends on its state. */
static void
pool_overdue(struct proc *p, const struct proc_ev *ev)
{
	struct engine	*e = p->engine;
	uint64_t	 now = loop_now();
	char		 cause[DETAIL_MAX];
	struct call	*head;

	(void)ev;
	switch (p->state) {
	case PROC_SPAWNING:
		snprintf(cause, sizeof cause, "init did not finish within %d "
		    "ms", e->conf.grace_ms);
		p->settled = true;
		pool_kill(p, cause);
		pool_spawn_failed(p, cause);
		return;
	case PROC_STOPPING:
		snprintf(cause, sizeof cause, "did not exit within %d ms of "
		    "being stopped", e->conf.grace_ms);
		pool_kill(p, cause);
		return;
	case PROC_LOST:
		/* It broke no frame: what it finished still counts. */
		proc_collect(p);
		pool_incident(p, LOG_WARNING, "killed: it closed its socket");
		pool_kill(p, "closed its socket");
		pool_lose(p, ST_CRASHED, "closed its socket", true);
		return;
	default:
		break;
	}
	if (p->ghost_by != 0 && p->ghost_by <= now) {
		proc_collect(p);
		head = TAILQ_FIRST(&p->calls);
		if (p->state == PROC_BUSY && head != NULL &&
		    head->seq == p->ghost_seq && !call_waiting(head)) {
			pool_incident(p, LOG_WARNING, "killed: an abandoned "
			    "call ran past its deadline");
			pool_kill(p, "an abandoned call ran past its deadline");
			pool_lose(p, ST_TIMED_OUT, "an abandoned call ran past "
			    "its deadline", true);
			return;
		}
	}
	if (p->state == PROC_BUSY && p->stall_by != 0 && p->stall_by <= now) {
		if (proc_pending_out(p) && p->answered == p->sent) {
			snprintf(cause, sizeof cause, "read nothing of its "
			    "calls for %d ms", POOL_STALL_MS);
			p->fault = true;
			pool_incident(p, LOG_WARNING, "killed: %s", cause);
			pool_kill(p, cause);
			pool_lose(p, ST_CRASHED, cause, true);
			return;
		}
		/* It is running a call: that call's deadline governs. */
		p->stall_by = proc_pending_out(p) ? now + POOL_STALL_MS *
		    MS_NS : 0;
	}
	pool_arm(p);
}

/* An event that means nothing in this state. */
static void
pool_ignore(struct proc *p, const struct proc_ev *ev)
{
	(void)p;
	(void)ev;
}

/* What a helper did: look it up in the table. */
void
pool_event(struct proc *p, const struct proc_ev *ev)
{
	pool_table[p->state][ev->type](p, ev);
}

/* p's timer fired. */
static void
pool_proc_timer(void *arg)
{
	struct proc_ev	ev = { .type = PEV_TIMER };

	pool_event(arg, &ev);
}

/*
 * After writing p's frames: while some stay unwritten, the helper must
 * read them within POOL_STALL_MS of its last progress unless it is
 * running a call.
 */
void
pool_flushed(struct proc *p, bool progress)
{
	if (!proc_pending_out(p))
		p->stall_by = 0;
	else if (progress || p->stall_by == 0)
		p->stall_by = loop_now() + POOL_STALL_MS * MS_NS;
	if (p->state == PROC_BUSY)
		pool_arm(p);
}

/*
 * Call c's deadline passed.  Running in a helper: the helper is killed,
 * and the calls sent behind it go to another.  Waiting behind another
 * call in a helper: it ends now, abandoned, and the helper runs it
 * regardless (its run time is bounded by pool_overdue).  Queued: it ends.
 */
void
pool_call_expired(struct call *c)
{
	struct proc	*p;
	char		 why[DETAIL_MAX];

	/*
	 * The helper may have finished c, or the calls ahead of it, and
	 * not said so yet: take those results first, and look again (that
	 * may also find the helper broken, and c back in the queue).
	 */
	if (c->proc != NULL)
		proc_collect(c->proc);
	if (c->state == CALL_QUEUED) {
		snprintf(why, sizeof why, "not started within %d ms: no "
		    "helper was ready", c->timeout_ms);
		call_finish(c, ST_TIMED_OUT, ROUTE_NONE, why);
		return;
	}
	if (c->state != CALL_SENT)
		return;
	p = c->proc;
	if (c == TAILQ_FIRST(&p->calls) && proc_sent(p, c)) {
		snprintf(why, sizeof why, "no answer within %d ms; helper pid "
		    "%ld killed", c->timeout_ms, (long)p->pid);
		pool_incident(p, LOG_WARNING, "killed: a call ran past its %d "
		    "ms deadline", c->timeout_ms);
		pool_kill(p, "timed out");
		pool_lose(p, ST_TIMED_OUT, why, true);
		return;
	}
	snprintf(why, sizeof why, "not started within %d ms: its helper was "
	    "still busy", c->timeout_ms);
	call_finish(c, ST_TIMED_OUT, ROUTE_NONE, why);
	pool_arm(p);
}

/*
 * A retired version's drain cap passed: every call it still holds ends
 * as timed out and its helpers holding calls are killed, so it can go.
 */
void
pool_cap(struct module *m, const char *why)
{
	struct pool	*pl = m->pool;
	struct proc	*p;

	pool_fail_queue(pl, ST_TIMED_OUT, why);
	TAILQ_FOREACH(p, &pl->procs, entry) {
		if (p->ncalls == 0)
			continue;
		pool_kill(p, "drain cap");
		pool_lose(p, ST_TIMED_OUT, why, false);
	}
}

/* Shutting down: every call on m still waiting ends as shutting_down. */
void
pool_shut(struct module *m)
{
	struct pool	*pl = m->pool;
	struct proc	*p;
	struct call	*c;

	pool_fail_queue(pl, ST_SHUTTING_DOWN, "engine shutting down");
	TAILQ_FOREACH(p, &pl->procs, entry)
		TAILQ_FOREACH(c, &p->calls, entry)
			if (c->state == CALL_SENT)
				call_finish(c, ST_SHUTTING_DOWN, ROUTE_NONE,
				    "engine shutting down");
}

/* m was retired: its spare goes now, its idle helpers at the kick. */
void
pool_retire(struct module *m)
{
	loop_timer_cancel(m->engine->loop, &m->pool->probe);
	pool_end_standby(m->pool);
	pool_kick_later(m);
}

/* m is held again: its pool serves as before. */
void
pool_revive(struct module *m)
{
	if (m->pool->loop == LOOP_LOOPING)
		loop_timer_at(m->engine->loop, &m->pool->probe,
		    m->pool->spawn_not_before);
	pool_kick_later(m);
}

/*
 * Write every helper the calls given to it this turn.  A helper holding
 * several calls announces their results only once it has run all it has
 * read, so its ledger is read every POOL_COLLECT_MS meanwhile: a call that
 * finished ahead of a slow one is answered then, not when the slow one
 * ends.
 */
void
pool_write(struct engine *e)
{
	struct proc	*p;
	bool		 progress;

	while ((p = TAILQ_FIRST(&e->flushq)) != NULL) {
		TAILQ_REMOVE(&e->flushq, p, flushentry);
		p->flushing = false;
		progress = proc_flush(p);
		pool_flushed(p, progress);
		if (p->ncalls > 1 && !p->pipelined) {
			TAILQ_INSERT_TAIL(&e->pipelined, p, pipeentry);
			p->pipelined = true;
		}
	}
	if (!TAILQ_EMPTY(&e->pipelined) && !e->collect.armed) {
		loop_timer_init(&e->collect, pool_collect, e);
		loop_timer_at(e->loop, &e->collect, loop_now() +
		    POOL_COLLECT_MS * MS_NS);
	}
}

/* Read the ledgers of helpers holding several calls; see pool_write. */
static void
pool_collect(void *arg)
{
	struct engine	*e = arg;
	struct proc	*p, *next;

	TAILQ_FOREACH_SAFE(p, &e->pipelined, pipeentry, next) {
		if (p->state == PROC_BUSY)
			proc_collect(p);
		if (p->state != PROC_BUSY || p->ncalls < 2) {
			TAILQ_REMOVE(&e->pipelined, p, pipeentry);
			p->pipelined = false;
		}
	}
	if (!TAILQ_EMPTY(&e->pipelined))
		loop_timer_at(e->loop, &e->collect, loop_now() +
		    POOL_COLLECT_MS * MS_NS);
}

/* Check m's pool against its invariants (the sanitizer build). */
void
pool_check(const struct module *m)
{
	const struct pool	*pl = m->pool;
	const struct proc	*p;
	const struct call	*c;
	u_int			 n = 0, q = 0, k;

	TAILQ_FOREACH(p, &pl->procs, entry) {
		n++;
		assert(p->module == m && !p->reaped);
		k = 0;
		TAILQ_FOREACH(c, &p->calls, entry) {
			k++;
			assert(c->proc == p && c->module == m);
			assert(c->state == CALL_SENT ||
			    c->state == CALL_ABANDONED ||
			    c->state == CALL_GHOST);
			assert(c->deadline.armed == (c->state == CALL_SENT));
		}
		assert(k == p->ncalls);
		assert(p->ncalls == 0 || p->state == PROC_BUSY ||
		    p->state == PROC_LOST);
		assert((p->watch.fd == -1) == (p->state >= PROC_STOPPING));
	}
	assert(n == pl->nprocs);
	TAILQ_FOREACH(c, &pl->queue, entry) {
		q++;
		assert(c->state == CALL_QUEUED && c->proc == NULL &&
		    c->module == m && c->deadline.armed);
	}
	assert(q == pl->nqueued);
}
