/*
 * The engine: calls, their deadlines, and the event loop that runs them.
 *
 * Everything happens on one thread in engine_run: helper sockets, SIGCHLD
 * through a signalfd (no work in signal handlers), and a single timerfd
 * armed at the earliest deadline taken from CLOCK_MONOTONIC.  A call waits
 * in its module's queue until a helper is idle, runs on exactly one helper,
 * and ends exactly once through engine_complete, which hands the caller a
 * result.  The engine never prints and never exits.
 *
 * One engine per process: it blocks SIGCHLD and reaps every child.
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "route-host.h"

#define ENGINE_SPAWN_RETRY_MS	1000	/* load failures fail fast this long */
#define ENGINE_THROTTLE_AFTER	8	/* crashes in a row before backoff */
#define ENGINE_THROTTLE_MAX_MS	500
#define ENGINE_DRAIN_MS		500	/* for fini at shutdown */
#define ENGINE_SPARE_DELAY_MS	10	/* fork a spare this long after a use */
#define ENGINE_EOF_GRACE_MS	20	/* to die after closing its socket */
#define ENGINE_COLLECT_MS	1	/* ledgers of pipelined helpers, read */


RB_HEAD(call_tree, call);
RB_HEAD(proc_tree, proc);

struct engine {
	struct engine_config	 conf;
	int			 epfd;
	struct watch		 sigw;
	struct watch		 timerw;
	uint64_t		 armed;
	sigset_t		 oldmask;
	struct sigaction	 oldchld;

	struct module_tree	 modules;	/* loaded, by key */
	TAILQ_HEAD(, module)	 draining;	/* retired, helpers exiting */
	TAILQ_HEAD(, module)	 deadmods;	/* to free */
	TAILQ_HEAD(, module)	 throttled;	/* waiting to spawn */
	TAILQ_HEAD(, module)	 capped;	/* draining under a cap */
	TAILQ_HEAD(, module)	 standing;	/* keeping a standby helper */
	struct proc_tree	 procs;		/* every unreaped helper */
	TAILQ_HEAD(, proc)	 grace;		/* SPAWNING/STOPPING, FIFO */
	TAILQ_HEAD(, proc)	 flushq;	/* frames to send this turn */
	TAILQ_HEAD(, proc)	 eofq;		/* closed their sockets, FIFO */
	TAILQ_HEAD(, proc)	 pipelined;	/* holding several calls */
	uint64_t		 collect_at;	/* read their ledgers then */
	TAILQ_HEAD(, proc)	 deadprocs;	/* reaped, to free */
	struct call_tree	 deadlines;
	TAILQ_HEAD(, call)	 early;		/* failed in engine_call */

	uint64_t		 nextid;
	u_int			 pending;
	u_int			 nloaded;
	u_int			 nprocs;
	bool			 closing;
};

/* Order calls by deadline, then by arrival. */
static int
engine_call_cmp(struct call *a, struct call *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* Order helpers by pid. */
static int
engine_proc_cmp(struct proc *a, struct proc *b)
{
	return a->pid < b->pid ? -1 : a->pid > b->pid;
}

RB_GENERATE_STATIC(call_tree, call, dentry, engine_call_cmp);
RB_GENERATE_STATIC(proc_tree, proc, pidentry, engine_proc_cmp);

static void	engine_kick(struct engine *, struct module *);
static void	engine_collect(struct engine *);
static void	engine_unref(struct engine *, struct module *);

/* Nanoseconds on the monotonic clock. */
uint64_t
engine_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The protocol name of a status. */
const char *
engine_status_name(enum status st)
{
	switch (st) {
	case ST_OK:
		return "ok";
	case ST_CRASHED:
		return "crashed";
	case ST_TIMED_OUT:
		return "timed_out";
	case ST_SPAWN_FAILED:
		return "spawn_failed";
	case ST_BAD_DECISION:
		return "bad_decision";
	case ST_BAD_REQUEST:
		return "bad_request";
	case ST_SHUTTING_DOWN:
		return "shutting_down";
	case ST_NO_SUCH_CHANNEL:
		return "no_such_channel";
	case ST_OVERLOADED:
		return "overloaded";
	}
	return "unknown";
}

/* Fill in the defaults. */
void
engine_defaults(struct engine_config *conf)
{
	memset(conf, 0, sizeof *conf);
	conf->timeout_ms = DEFAULT_TIMEOUT_MS;
	conf->helpers = 1;
	conf->depth = 64;
	conf->grace_ms = DEFAULT_TIMEOUT_MS;
	conf->standby_ms = 60000;
	conf->file_max = DEFAULT_FILE_MAX;
}

/* Add a watch to the loop. */
int
engine_watch(struct engine *e, struct watch *w, uint32_t events)
{
	struct epoll_event	ev = { .events = events, .data.ptr = w };

	return epoll_ctl(e->epfd, EPOLL_CTL_ADD, w->fd, &ev);
}

/* Change the events a watch waits for. */
int
engine_rewatch(struct engine *e, struct watch *w, uint32_t events)
{
	struct epoll_event	ev = { .events = events, .data.ptr = w };

	return epoll_ctl(e->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

/* Remove a watch from the loop (before its fd is closed). */
void
engine_unwatch(struct engine *e, struct watch *w)
{
	(void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

/* Arm the one timer at the earliest of every kind of deadline. */
static void
engine_arm(struct engine *e)
{
	struct itimerspec	 its;
	struct call		*c;
	struct proc		*p;
	struct module		*m;
	uint64_t		 next = 0;

	if ((c = RB_MIN(call_tree, &e->deadlines)) != NULL)
		next = c->deadline;
	if ((p = TAILQ_FIRST(&e->grace)) != NULL &&
	    (next == 0 || p->grace < next))
		next = p->grace;
	if ((p = TAILQ_FIRST(&e->eofq)) != NULL &&
	    (next == 0 || p->eof_by < next))
		next = p->eof_by;
	if (e->collect_at != 0 && (next == 0 || e->collect_at < next))
		next = e->collect_at;
	TAILQ_FOREACH(m, &e->throttled, throttleentry)
		if (next == 0 || m->spawn_not_before < next)
			next = m->spawn_not_before;
	TAILQ_FOREACH(m, &e->capped, capentry)
		if (next == 0 || m->drain_by < next)
			next = m->drain_by;
	TAILQ_FOREACH(m, &e->standing, standentry) {
		if (next == 0 || m->standby_until < next)
			next = m->standby_until;
		if (m->spare_at != 0 && m->spare_at < next)
			next = m->spare_at;
	}
	/*
	 * Re-arm only to fire sooner.  A timer left at a deadline that has
	 * since gone fires once for nothing and is set again then: cheaper
	 * than a syscall every time the earliest call completes.
	 */
	if (next == 0 || (e->armed != 0 && e->armed <= next))
		return;
	memset(&its, 0, sizeof its);
	its.it_value.tv_sec = (time_t)(next / 1000000000ULL);
	its.it_value.tv_nsec = (long)(next % 1000000000ULL);
	(void)timerfd_settime(e->timerw.fd, TFD_TIMER_ABSTIME, &its, NULL);
	e->armed = next;
}

/* Give call c its whole timeout again, from now. */
static void
engine_redeadline(struct engine *e, struct call *c)
{
	if (c->timed)
		RB_REMOVE(call_tree, &e->deadlines, c);
	c->deadline = engine_now() + (uint64_t)c->timeout_ms * MS_NS;
	RB_INSERT(call_tree, &e->deadlines, c);
	c->timed = true;
}

/*
 * End call c: take it off every list, hand the caller its result, and drop
 * the call's reference on its module.
 */
static void
engine_complete(struct engine *e, struct call *c, enum status st,
    int decision, const char *detail)
{
	struct module	*m = c->module;
	struct result	 r;

	if (c->timed)
		RB_REMOVE(call_tree, &e->deadlines, c);
	if (c->queued) {
		TAILQ_REMOVE(&m->queue, c, qentry);
		m->nqueued--;
	}
	memset(&r, 0, sizeof r);
	r.status = st;
	r.decision = st == ST_OK ? decision : ROUTE_NONE;
	r.module = m;
	strlcpy(r.detail, detail, sizeof r.detail);
	if (m == NULL) {
		/* Rejected before reaching any version. */
		e->pending--;
		c->cb(&r, c->arg);
		free(c);
		return;
	}
	switch (st) {
	case ST_OK:
		if (!c->probe)
			m->served++;
		break;
	case ST_CRASHED:
		m->crashed++;
		break;
	case ST_TIMED_OUT:
		m->timed_out++;
		break;
	default:
		break;
	}
	e->pending--;
	c->cb(&r, c->arg);
	engine_unref(e, m);
	if (c->proc != NULL) {
		/*
		 * Still in a helper's FIFO: its answer will come, unwanted.
		 * The helper will run it all the same, so it keeps a deadline
		 * (its own timeout again, from now): a ghost that never
		 * finishes must not hold its helper for ever.
		 */
		c->ghost = true;
		c->module = NULL;
		engine_redeadline(e, c);
		return;
	}
	free(c);
}

/*
 * The call ahead of it answered, so the helper now runs the ghost at the
 * head of its FIFO, if there is one: it gets its whole timeout from now.
 */
static void
engine_ghost_starts(struct engine *e, struct proc *p)
{
	struct call	*c = TAILQ_FIRST(&p->calls);

	if (c != NULL && c->ghost)
		engine_redeadline(e, c);
}

/* Free a ghost, taken out of its helper's FIFO by the caller. */
static void
engine_free_ghost(struct engine *e, struct call *c)
{
	if (c->timed)
		RB_REMOVE(call_tree, &e->deadlines, c);
	free(c);
}

/*
 * Take call c out of its helper's FIFO and end it as st, unless it ended
 * already (a ghost): then it is only freed.
 */
static void
engine_drop(struct engine *e, struct call *c, enum status st,
    const char *why)
{
	struct proc	*p = c->proc;

	TAILQ_REMOVE(&p->calls, c, qentry);
	p->ncalls--;
	c->proc = NULL;
	if (c->ghost)
		engine_free_ghost(e, c);
	else
		engine_complete(e, c, st, ROUTE_NONE, why);
}

/* Fail every call waiting in m's queue. */
static void
engine_fail_queue(struct engine *e, struct module *m, enum status st,
    const char *why)
{
	struct call	*c;

	while ((c = TAILQ_FIRST(&m->queue)) != NULL)
		engine_complete(e, c, st, ROUTE_NONE, why);
}

/* Put a helper on the grace FIFO (all graces are equally long). */
static void
engine_grace(struct engine *e, struct proc *p)
{
	if (p->graced)
		return;
	p->grace = engine_now() + (uint64_t)e->conf.grace_ms * MS_NS;
	p->graced = true;
	TAILQ_INSERT_TAIL(&e->grace, p, graceentry);
}

/* Take a helper off the grace FIFO. */
static void
engine_ungrace(struct engine *e, struct proc *p)
{
	if (!p->graced)
		return;
	TAILQ_REMOVE(&e->grace, p, graceentry);
	p->graced = false;
}

/* Stop a helper that has nothing to do. */
static void
engine_stop(struct engine *e, struct proc *p)
{
	proc_stop(p);
	engine_grace(e, p);
}

/* Count m's helpers by state; a spare counts for nothing until promoted. */
static void
engine_pool(struct module *m, u_int *idle, u_int *spawning, u_int *live)
{
	struct proc	*p;

	*idle = *spawning = *live = 0;
	TAILQ_FOREACH(p, &m->procs, entry) {
		/* A helper whose socket is closed is on its way out. */
		if (p->spare || p->watch.fd == -1)
			continue;
		if (p->state == PROC_IDLE)
			(*idle)++;
		if (p->state == PROC_SPAWNING)
			(*spawning)++;
		if (p->state <= PROC_BUSY)
			(*live)++;
	}
}

/* Fork one more helper for m; false (queue failed) if the fork failed. */
static bool
engine_spawn(struct engine *e, struct module *m, bool spare)
{
	struct proc	*p;
	char		 err[DETAIL_MAX];

	if ((p = proc_spawn(e, m, err, sizeof err)) == NULL) {
		if (!spare)
			engine_fail_queue(e, m, ST_SPAWN_FAILED, err);
		return false;
	}
	p->spare = spare;
	TAILQ_INSERT_TAIL(&m->procs, p, entry);
	m->nprocs++;
	RB_INSERT(proc_tree, &e->procs, p);
	e->nprocs++;
	engine_grace(e, p);
	return true;
}

/* m's spare helper, standing by or still loading, or NULL. */
static struct proc *
engine_spare(struct module *m)
{
	struct proc	*p;

	TAILQ_FOREACH(p, &m->procs, entry)
		if (p->spare && (p->state == PROC_SPAWNING ||
		    p->state == PROC_STANDBY))
			return p;
	return NULL;
}

/*
 * A helper of m died unasked: for a while, m keeps a spare helper loaded,
 * so that the next death is replaced by a warm helper at once instead of
 * a fork on the next call's path.  (A helper killed at a deadline is not
 * counted: a slow plugin is not a crashing one.)
 */
static void
engine_want_standby(struct engine *e, struct module *m)
{
	if (!m->listed || e->conf.standby_ms <= 0)
		return;
	if (m->standby_until == 0)
		TAILQ_INSERT_TAIL(&e->standing, m, standentry);
	m->standby_until = engine_now() + (uint64_t)e->conf.standby_ms * MS_NS;
}

/* Stop keeping a spare for m, and stop the one standing by. */
static void
engine_end_standby(struct engine *e, struct module *m)
{
	struct proc	*p;

	if (m->standby_until == 0)
		return;
	TAILQ_REMOVE(&e->standing, m, standentry);
	m->standby_until = m->spare_at = 0;
	TAILQ_FOREACH(p, &m->procs, entry)
		if (p->state == PROC_STANDBY)
			engine_stop(e, p);
}

/*
 * See that m gets a spare if it should have one and has none: forked a
 * little later, off the path of the calls that follow a failure, and not
 * while m cannot load or is in a crash loop.
 */
static void
engine_keep_standby(struct engine *e, struct module *m)
{
	uint64_t	now;

	/* Not now: no spare_at may stay behind in the past for the timer. */
	if (m->standby_until == 0 || e->closing || !m->listed ||
	    m->spawn_error[0] != '\0' || engine_spare(m) != NULL) {
		m->spare_at = 0;
		return;
	}
	now = engine_now();
	if (m->spare_at == 0)
		m->spare_at = now + ENGINE_SPARE_DELAY_MS * MS_NS;
	if (m->spare_at < m->spawn_not_before)
		m->spare_at = m->spawn_not_before;
	if (m->spare_at <= now) {
		m->spare_at = 0;
		(void)engine_spawn(e, m, true);
	}
}

/* Keep m off the throttled list. */
static void
engine_unthrottle(struct engine *e, struct module *m)
{
	if (m->throttled) {
		TAILQ_REMOVE(&e->throttled, m, throttleentry);
		m->throttled = false;
	}
}

/*
 * Move m's queue along: give waiting calls to idle helpers, and fork
 * helpers for calls still waiting, up to the pool size, unless m is in a
 * crash loop and must wait for spawn_not_before.  With the pool full,
 * helpers take up to depth calls each, sent in one write.
 */
static void
engine_kick(struct engine *e, struct module *m)
{
	struct call	*c;
	struct proc	*p;
	u_int		 idle, spawning, live, want, max;

	max = m->max_helpers != 0 ? m->max_helpers : e->conf.helpers;
again:
	if (e->closing)
		return;
	/* A spare steps in before anything is forked. */
	if (m->standby_until != 0 && (p = engine_spare(m)) != NULL) {
		engine_pool(m, &idle, &spawning, &live);
		if (live < max && (live == 0 ||
		    (m->nqueued > 0 && idle == 0))) {
			proc_promote(p);
			engine_keep_standby(e, m);
			goto again;
		}
	}
	while ((c = TAILQ_FIRST(&m->queue)) != NULL) {
		struct proc	*best = NULL;

		/* The handshaken helper holding the fewest calls. */
		TAILQ_FOREACH(p, &m->procs, entry)
			if ((p->state == PROC_IDLE || p->state == PROC_BUSY) &&
			    p->watch.fd != -1 && !p->reaped &&
			    p->ncalls < e->conf.depth &&
			    (best == NULL || p->ncalls < best->ncalls))
				best = p;
		if (best == NULL)
			break;
		/*
		 * Send a call behind another only once the pool is full: a
		 * slow call should delay its neighbours only when there is
		 * no helper left to give them.
		 */
		if (best->ncalls > 0) {
			engine_pool(m, &idle, &spawning, &live);
			if (spawning > 0 || live < max)
				break;
		}
		TAILQ_REMOVE(&m->queue, c, qentry);
		m->nqueued--;
		c->queued = false;
		if (c->probe) {
			engine_complete(e, c, ST_OK, ROUTE_NONE, "");
			goto again;
		}
		proc_dispatch(best, c);
		if (!best->flushing) {
			TAILQ_INSERT_TAIL(&e->flushq, best, flushentry);
			best->flushing = true;
		}
	}
	if (m->nqueued == 0 || !m->listed) {
		engine_unthrottle(e, m);
		return;
	}
	engine_pool(m, &idle, &spawning, &live);
	if (m->nqueued <= spawning || live >= max) {
		/* Nothing to fork: the throttle, if any, has no more to do. */
		engine_unthrottle(e, m);
		return;
	}
	if (engine_now() < m->spawn_not_before) {
		if (!m->throttled) {
			TAILQ_INSERT_TAIL(&e->throttled, m, throttleentry);
			m->throttled = true;
		}
		return;
	}
	engine_unthrottle(e, m);
	want = m->nqueued - spawning;
	if (want > max - live)
		want = max - live;
	while (want-- > 0 && engine_spawn(e, m, false))
		;
}

/* A helper died unexpectedly: count it towards m's crash loop. */
static void
engine_crash_streak(struct module *m)
{
	uint64_t	delay;
	u_int		shift;

	if (++m->crash_streak < ENGINE_THROTTLE_AFTER)
		return;
	shift = m->crash_streak - ENGINE_THROTTLE_AFTER;
	delay = shift > 16 ? ENGINE_THROTTLE_MAX_MS : 5ULL << shift;
	if (delay > ENGINE_THROTTLE_MAX_MS)
		delay = ENGINE_THROTTLE_MAX_MS;
	m->spawn_not_before = engine_now() + delay * MS_NS;
}

/*
 * A helper closed its socket: it has ENGINE_EOF_GRACE_MS to die on its
 * own (and be reaped with its real cause) before it is killed.
 */
void
engine_proc_eof(struct engine *e, struct proc *p)
{
	if (p->eof)
		return;
	p->eof_by = engine_now() + ENGINE_EOF_GRACE_MS * MS_NS;
	p->eof = true;
	TAILQ_INSERT_TAIL(&e->eofq, p, eofentry);
}

/* A helper passed its handshake. */
void
engine_proc_ready(struct engine *e, struct proc *p)
{
	struct module	*m = p->module;

	engine_ungrace(e, p);
	m->spawn_error[0] = '\0';
	if (!m->listed || (p->state == PROC_STANDBY && m->standby_until == 0))
		engine_stop(e, p);
	else {
		engine_kick(e, m);
		engine_keep_standby(e, m);
	}
}

/*
 * A helper failed to load.  Unless another helper of m is alive, every
 * waiting call fails with the reason, and so do new calls for a while.
 */
void
engine_proc_spawn_failed(struct engine *e, struct proc *p, const char *why)
{
	struct module	*m = p->module;
	u_int		 idle, spawning, live;
	struct proc	*spare;

	engine_ungrace(e, p);
	strlcpy(m->spawn_error, why, sizeof m->spawn_error);
	m->spawn_retry = engine_now() + ENGINE_SPAWN_RETRY_MS * MS_NS;
	if (p->spare)
		return;		/* no call was waiting for it */
	engine_pool(m, &idle, &spawning, &live);
	if (live == 0 && (spare = engine_spare(m)) != NULL) {
		/* Loaded (or loading) already: it takes over. */
		proc_promote(spare);
		engine_kick(e, m);
		return;
	}
	if (live == 0)
		engine_fail_queue(e, m, ST_SPAWN_FAILED, why);
}

/* A helper answered call c. */
void
engine_proc_result(struct engine *e, struct proc *p, struct call *c,
    int bad_request, int decision, const char *detail)
{
	struct module	*m = p->module;
	char		 why[DETAIL_MAX];

	m->crash_streak = 0;
	engine_ghost_starts(e, p);
	if (c->ghost)
		engine_free_ghost(e, c);
	else if (bad_request)
		engine_complete(e, c, ST_BAD_REQUEST, ROUTE_NONE, detail);
	else if (decision != ROUTE_NONE &&
	    (decision < 0 || (uint32_t)decision >= c->nconsumers)) {
		snprintf(why, sizeof why, "plugin returned %d for %u "
		    "consumer%s", decision, c->nconsumers,
		    c->nconsumers == 1 ? "" : "s");
		engine_complete(e, c, ST_BAD_DECISION, ROUTE_NONE, why);
	} else
		engine_complete(e, c, ST_OK, decision, "");
	if (p->state == PROC_IDLE && !m->listed)
		engine_stop(e, p);
	else if (p->state == PROC_IDLE || p->state == PROC_BUSY)
		engine_kick(e, m);
}

/*
 * Take every call out of a dead or dying helper's FIFO.  The oldest was
 * running: it ends with status st and why.  The others never started:
 * they go back to the front of the queue, in order, for another helper.
 */
static void
engine_unload(struct engine *e, struct proc *p, enum status st,
    const char *why)
{
	struct module	*m = p->module;
	struct call	*c, *head = TAILQ_FIRST(&p->calls);

	/* A call never written to the helper never ran. */
	if (head != NULL && !proc_sent(p, head))
		head = NULL;
	while ((c = TAILQ_LAST(&p->calls, call_fifo)) != NULL) {
		if (c->ghost || c == head) {
			engine_drop(e, c, st, why);
			continue;
		}
		TAILQ_REMOVE(&p->calls, c, qentry);
		p->ncalls--;
		c->proc = NULL;
		TAILQ_INSERT_HEAD(&m->queue, c, qentry);
		c->queued = true;
		m->nqueued++;
	}
}

/* A helper died (or was killed) with calls sent to it. */
void
engine_proc_lost(struct engine *e, struct proc *p, const char *cause)
{
	struct module	*m = p->module;

	m->refs++;		/* the queue may be all that is left */
	engine_unload(e, p, ST_CRASHED, cause);
	engine_kick(e, m);
	engine_unref(e, m);
}

/*
 * A helper was reaped.  Forget it, and either keep m's pool warm or, for a
 * retired module, free m once its last helper is gone.
 */
void
engine_proc_gone(struct engine *e, struct proc *p)
{
	struct module	*m = p->module;
	u_int		 idle, spawning, live;

	engine_ungrace(e, p);
	if (p->flushing) {
		TAILQ_REMOVE(&e->flushq, p, flushentry);
		p->flushing = false;
	}
	if (p->eof) {
		TAILQ_REMOVE(&e->eofq, p, eofentry);
		p->eof = false;
	}
	if (p->pipelined) {
		TAILQ_REMOVE(&e->pipelined, p, pipeentry);
		p->pipelined = false;
	}
	RB_REMOVE(proc_tree, &e->procs, p);
	e->nprocs--;
	TAILQ_REMOVE(&m->procs, p, entry);
	m->nprocs--;
	TAILQ_INSERT_TAIL(&e->deadprocs, p, entry);
	if (!m->listed) {
		if (m->nprocs == 0 && m->refs == 0) {
			TAILQ_REMOVE(&e->draining, m, drainentry);
			TAILQ_INSERT_TAIL(&e->deadmods, m, drainentry);
		}
		return;
	}
	if (e->closing)
		return;
	if (p->fault) {
		engine_crash_streak(m);
		engine_want_standby(e, m);
	}
	engine_kick(e, m);
	/* Respawn one warm helper for the next call, outside crash loops. */
	engine_pool(m, &idle, &spawning, &live);
	if (live == 0 && m->spawn_error[0] == '\0' &&
	    engine_now() >= m->spawn_not_before)
		engine_spawn(e, m, false);
	engine_keep_standby(e, m);
}

/* Reap every child that has exited; no work happened in a handler. */
static void
engine_sigchld(struct watch *w, uint32_t events)
{
	struct signalfd_siginfo	 si;
	struct proc		 key, *p;
	struct engine		*e = w->arg;
	pid_t			 pid;
	int			 status;

	(void)events;
	while (read(w->fd, &si, sizeof si) == (ssize_t)sizeof si)
		;
	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid == -1 && errno == EINTR)
			continue;
		if (pid <= 0)
			break;
		key.pid = pid;
		if ((p = RB_FIND(proc_tree, &e->procs, &key)) != NULL)
			proc_reaped(p, status);
	}
}

/*
 * Call c passed its deadline.  Running in a helper: kill it, and the calls
 * sent behind it go to another.  Waiting in a helper behind another call:
 * end it now, and let the helper's answer find a ghost.
 */
static void
engine_expire(struct engine *e, struct call *c)
{
	struct proc	*p = c->proc;
	struct module	*m = p != NULL ? p->module : c->module;
	char		 why[DETAIL_MAX];

	/*
	 * The helper may have finished c, or the calls ahead of it, and
	 * not said so yet: take those results first, and look again.
	 */
	if (p != NULL && proc_collect(p) != 0)
		return;
	if (c->ghost && (c != TAILQ_FIRST(&p->calls) || !proc_sent(p, c))) {
		/* Still waiting behind another call: give it more time. */
		engine_redeadline(e, c);
		return;
	}
	if (p != NULL && c == TAILQ_FIRST(&p->calls) && proc_sent(p, c)) {
		if (c->ghost)
			snprintf(why, sizeof why, "an abandoned call ran "
			    "past its deadline");
		else
			snprintf(why, sizeof why, "no answer within %d ms; "
			    "helper pid %ld killed", c->timeout_ms,
			    (long)p->pid);
		proc_kill(p, "timed out");
		m->refs++;
		engine_unload(e, p, ST_TIMED_OUT, why);
		engine_kick(e, m);
		engine_unref(e, m);
		return;
	}
	if (p != NULL)
		snprintf(why, sizeof why, "not started within %d ms: its "
		    "helper was still busy", c->timeout_ms);
	else
		snprintf(why, sizeof why, "not started within %d ms: no "
		    "helper was ready", c->timeout_ms);
	engine_complete(e, c, ST_TIMED_OUT, ROUTE_NONE, why);
}

/*
 * A retired version's drain cap passed: every call it still holds ends as
 * timed out and its helpers are killed, so the version can go.
 */
static void
engine_cap(struct engine *e, struct module *m)
{
	struct proc	*p;
	struct call	*c;
	char		 why[DETAIL_MAX];

	TAILQ_REMOVE(&e->capped, m, capentry);
	m->drain_by = 0;
	snprintf(why, sizeof why, "version retired and its %d ms drain cap "
	    "passed", m->drain_ms);
	/* Each completion may drop the last reference: hold one. */
	m->refs++;
	while ((c = TAILQ_FIRST(&m->queue)) != NULL)
		engine_complete(e, c, ST_TIMED_OUT, ROUTE_NONE, why);
	TAILQ_FOREACH(p, &m->procs, entry) {
		if (p->ncalls == 0)
			continue;
		proc_kill(p, "drain cap");
		while ((c = TAILQ_FIRST(&p->calls)) != NULL)
			engine_drop(e, c, ST_TIMED_OUT, why);
	}
	engine_unref(e, m);
}

/* The timer fired: expire calls and graces, wake throttled modules. */
static void
engine_timer(struct watch *w, uint32_t events)
{
	struct engine	*e = w->arg;
	struct call	*c;
	struct proc	*p;
	struct module	*m, *next;
	uint64_t	 ticks, now;

	(void)events;
	while (read(w->fd, &ticks, sizeof ticks) == (ssize_t)sizeof ticks)
		;
	e->armed = 0;
	now = engine_now();
	while ((c = RB_MIN(call_tree, &e->deadlines)) != NULL &&
	    c->deadline <= now)
		engine_expire(e, c);
	while ((p = TAILQ_FIRST(&e->grace)) != NULL && p->grace <= now) {
		engine_ungrace(e, p);
		proc_expire(p, e->conf.grace_ms);
	}
	if (e->collect_at != 0 && e->collect_at <= now)
		engine_collect(e);
	while ((p = TAILQ_FIRST(&e->eofq)) != NULL && p->eof_by <= now) {
		TAILQ_REMOVE(&e->eofq, p, eofentry);
		p->eof = false;
		/* It broke no frame: what it finished still counts. */
		(void)proc_collect(p);
		proc_kill(p, "closed its socket");
	}
	TAILQ_FOREACH_SAFE(m, &e->throttled, throttleentry, next)
		if (m->spawn_not_before <= now)
			engine_kick(e, m);
	TAILQ_FOREACH_SAFE(m, &e->standing, standentry, next) {
		if (m->standby_until <= now)
			engine_end_standby(e, m);
		else if (m->spare_at != 0 && m->spare_at <= now)
			engine_keep_standby(e, m);
	}
again:
	TAILQ_FOREACH(m, &e->capped, capentry)
		if (m->drain_by <= now) {
			/* Completions may change the list: start over. */
			engine_cap(e, m);
			goto again;
		}
}

/* Create an engine; NULL with err set on failure. */
struct engine *
engine_new(const struct engine_config *conf, char *err, size_t errlen)
{
	struct engine		*e;
	struct sigaction	 sa;
	sigset_t		 set;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return NULL;
	}
	if ((e = calloc(1, sizeof *e)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->conf = *conf;
	if (e->conf.helpers == 0)
		e->conf.helpers = 1;
	if (e->conf.depth == 0)
		e->conf.depth = 1;
	if (e->conf.depth > LEDGER_SLOTS)
		e->conf.depth = LEDGER_SLOTS;
	e->epfd = e->sigw.fd = e->timerw.fd = -1;
	RB_INIT(&e->modules);
	RB_INIT(&e->procs);
	RB_INIT(&e->deadlines);
	TAILQ_INIT(&e->draining);
	TAILQ_INIT(&e->deadmods);
	TAILQ_INIT(&e->throttled);
	TAILQ_INIT(&e->capped);
	TAILQ_INIT(&e->standing);
	TAILQ_INIT(&e->grace);
	TAILQ_INIT(&e->flushq);
	TAILQ_INIT(&e->eofq);
	TAILQ_INIT(&e->pipelined);
	TAILQ_INIT(&e->deadprocs);
	TAILQ_INIT(&e->early);

	/* SIGCHLD must not be ignored, or children reap themselves. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &e->oldmask);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, &e->oldchld);

	if ((e->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (e->sigw.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1 || (e->timerw.fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "event loop: %s", strerror(errno));
		engine_free(e);
		return NULL;
	}
	e->sigw.cb = engine_sigchld;
	e->sigw.arg = e;
	e->timerw.cb = engine_timer;
	e->timerw.arg = e;
	if (engine_watch(e, &e->sigw, EPOLLIN) == -1 ||
	    engine_watch(e, &e->timerw, EPOLLIN) == -1) {
		snprintf(err, errlen, "event loop: %s", strerror(errno));
		engine_free(e);
		return NULL;
	}
	return e;
}

/* Free what the loop has finished with: reaped helpers, dead modules. */
static void
engine_gc(struct engine *e)
{
	struct proc	*p;
	struct module	*m;

	while ((p = TAILQ_FIRST(&e->deadprocs)) != NULL) {
		TAILQ_REMOVE(&e->deadprocs, p, entry);
		proc_free(p);
	}
	while ((m = TAILQ_FIRST(&e->deadmods)) != NULL) {
		TAILQ_REMOVE(&e->deadmods, m, drainentry);
		e->nloaded--;
		module_free(m);
	}
}

/*
 * At shutdown, with no calls left: close idle helpers' sockets so their
 * plugins' fini runs, and reap whatever exits within ENGINE_DRAIN_MS.
 */
static void
engine_drain(struct engine *e)
{
	struct proc	*p, key;
	struct timespec	 ts;
	sigset_t	 set;
	uint64_t	 end, now;
	pid_t		 pid;
	int		 status;

	RB_FOREACH(p, proc_tree, &e->procs) {
		if (p->state == PROC_IDLE || p->state == PROC_STANDBY)
			proc_stop(p);
		else if (p->state != PROC_STOPPING)
			proc_kill(p, "engine shutting down");
	}
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	end = engine_now() + ENGINE_DRAIN_MS * MS_NS;
	while (!RB_EMPTY(&e->procs) && (now = engine_now()) < end) {
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			key.pid = pid;
			if ((p = RB_FIND(proc_tree, &e->procs, &key)) != NULL)
				proc_reaped(p, status);
		}
		if (RB_EMPTY(&e->procs))
			break;
		ts.tv_sec = (time_t)((end - now) / 1000000000ULL);
		ts.tv_nsec = (long)((end - now) % 1000000000ULL);
		(void)sigtimedwait(&set, NULL, &ts);
	}
}

/*
 * Shut down: every outstanding call ends as shutting_down, every helper is
 * stopped (or killed) and reaped before this returns, and every module is
 * freed.
 */
void
engine_free(struct engine *e)
{
	struct call	*c;
	struct proc	*p;
	struct module	*m;
	int		 status;

	if (e == NULL)
		return;
	e->closing = true;
	while ((c = TAILQ_FIRST(&e->early)) != NULL) {
		TAILQ_REMOVE(&e->early, c, qentry);
		engine_complete(e, c, c->early.status, ROUTE_NONE,
		    c->early.detail);
	}
	while ((c = RB_MIN(call_tree, &e->deadlines)) != NULL) {
		if (c->proc != NULL)
			engine_drop(e, c, ST_SHUTTING_DOWN,
			    "engine shutting down");
		else
			engine_complete(e, c, ST_SHUTTING_DOWN, ROUTE_NONE,
			    "engine shutting down");
	}
	engine_drain(e);
	while ((p = RB_ROOT(&e->procs)) != NULL) {
		proc_kill(p, "engine shutting down");
		while (waitpid(p->pid, &status, 0) == -1 && errno == EINTR)
			;
		proc_reaped(p, status);
	}
	while ((m = RB_ROOT(&e->modules)) != NULL) {
		RB_REMOVE(module_tree, &e->modules, m);
		TAILQ_INSERT_TAIL(&e->deadmods, m, drainentry);
	}
	while ((m = TAILQ_FIRST(&e->draining)) != NULL) {
		TAILQ_REMOVE(&e->draining, m, drainentry);
		TAILQ_INSERT_TAIL(&e->deadmods, m, drainentry);
	}
	engine_gc(e);
	if (e->timerw.fd != -1)
		close(e->timerw.fd);
	if (e->sigw.fd != -1)
		close(e->sigw.fd);
	if (e->epfd != -1)
		close(e->epfd);
	sigaction(SIGCHLD, &e->oldchld, NULL);
	sigprocmask(SIG_SETMASK, &e->oldmask, NULL);
	free(e);
}

/* The label of a plugin path: its file name without ".so". */
static void
engine_label(const char *path, char *label, size_t len)
{
	const char	*base = strrchr(path, '/');
	size_t		 n;

	base = base == NULL ? path : base + 1;
	strlcpy(label, base, len);
	n = strlen(label);
	if (n > 3 && strcmp(label + n - 3, ".so") == 0)
		label[n - 3] = '\0';
}

/*
 * Load the plugin at path with options, or find the module already loaded
 * from the same bytes with the same options.  The caller holds one
 * reference, dropped by engine_release.
 */
int
engine_load(struct engine *e, const char *path, const char *label,
    const struct route_option *opts, size_t nopts, struct module **out,
    char *err, size_t errlen)
{
	struct module	*m, *found;
	char		 name[PLUGIN_NAME_MAX];

	if (label == NULL) {
		engine_label(path, name, sizeof name);
		label = name;
	}
	m = module_open(path, label, e->conf.file_max, opts, nopts, err,
	    errlen);
	if (m == NULL)
		return -1;
	if ((found = RB_FIND(module_tree, &e->modules, m)) != NULL) {
		module_free(m);
		found->refs++;
		*out = found;
		return 0;
	}
	RB_INSERT(module_tree, &e->modules, m);
	m->listed = true;
	m->refs = 1;
	e->nloaded++;
	*out = m;
	return 0;
}

/* Drop a reference; the last one retires the module. */
static void
engine_unref(struct engine *e, struct module *m)
{
	struct proc	*p;

	/* Retired already: its last helper's reaping frees it. */
	if (--m->refs > 0 || !m->listed)
		return;
	RB_REMOVE(module_tree, &e->modules, m);
	m->listed = false;
	engine_unthrottle(e, m);
	engine_end_standby(e, m);
	if (m->drain_by != 0) {
		TAILQ_REMOVE(&e->capped, m, capentry);
		m->drain_by = 0;
	}
	TAILQ_FOREACH(p, &m->procs, entry)
		if (p->state == PROC_IDLE || p->state == PROC_SPAWNING ||
		    p->state == PROC_STANDBY)
			engine_stop(e, p);
	if (m->nprocs == 0)
		TAILQ_INSERT_TAIL(&e->deadmods, m, drainentry);
	else
		TAILQ_INSERT_TAIL(&e->draining, m, drainentry);
}

/* Release a module from engine_load. */
void
engine_release(struct engine *e, struct module *m)
{
	engine_unref(e, m);
}

/*
 * Release a version that is being replaced or removed: calls it accepted
 * finish on it, but only for cap_ms; then they time out and it goes.
 */
void
engine_release_drain(struct engine *e, struct module *m, int cap_ms)
{
	if (m->refs > 1 && cap_ms > 0 && m->drain_by == 0) {
		m->drain_ms = cap_ms;
		m->drain_by = engine_now() + (uint64_t)cap_ms * MS_NS;
		TAILQ_INSERT_TAIL(&e->capped, m, capentry);
	}
	engine_unref(e, m);
}

/*
 * Fail a call that never reached a version (no such channel, overloaded):
 * cb runs from engine_run, like every other result.
 */
int
engine_reject(struct engine *e, enum status st, const char *detail,
    engine_cb cb, void *arg)
{
	struct call	*c;

	if ((c = calloc(1, sizeof *c)) == NULL)
		return -1;
	c->id = ++e->nextid;
	c->cb = cb;
	c->arg = arg;
	c->early.status = st;
	strlcpy(c->early.detail, detail, sizeof c->early.detail);
	e->pending++;
	TAILQ_INSERT_TAIL(&e->early, c, qentry);
	return 0;
}

/* Make a call structure carrying len bytes of body. */
static struct call *
engine_new_call(struct engine *e, struct module *m, const void *body,
    size_t len, int timeout_ms, engine_cb cb, void *arg)
{
	struct call	*c;

	if (len > WIRE_FRAME_MAX - 8) {
		errno = E2BIG;
		return NULL;
	}
	if ((c = calloc(1, sizeof *c + WIRE_HEADER + 4 + len)) == NULL)
		return NULL;
	c->module = m;
	c->id = ++e->nextid;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : e->conf.timeout_ms;
	c->cb = cb;
	c->arg = arg;
	c->len = WIRE_HEADER + 4 + len;
	wire_put_u32(c->frame, (uint32_t)(c->len - 4));
	c->frame[4] = WIRE_CALL;
	if (len > 0)
		memcpy(c->frame + WIRE_HEADER + 4, body, len);
	if (wire_body_nconsumers(body, len, &c->nconsumers) == -1)
		c->nconsumers = 0;
	m->refs++;
	e->pending++;
	return c;
}

/* Queue a new call, or fail it early if m cannot load right now. */
static void
engine_submit(struct engine *e, struct call *c)
{
	struct module	*m = c->module;
	u_int		 idle, spawning, live;

	engine_pool(m, &idle, &spawning, &live);
	if (m->spawn_error[0] != '\0' && live == 0 && engine_spare(m) == NULL &&
	    engine_now() < m->spawn_retry) {
		c->early.status = ST_SPAWN_FAILED;
		strlcpy(c->early.detail, m->spawn_error,
		    sizeof c->early.detail);
		TAILQ_INSERT_TAIL(&e->early, c, qentry);
		return;
	}
	c->deadline = engine_now() + (uint64_t)c->timeout_ms * MS_NS;
	RB_INSERT(call_tree, &e->deadlines, c);
	c->timed = true;
	TAILQ_INSERT_TAIL(&m->queue, c, qentry);
	c->queued = true;
	m->nqueued++;
	engine_kick(e, m);
}

/*
 * Route one call body (wire.c's encoding) through module m.  cb runs from
 * engine_run, exactly once, with the result.  timeout_ms <= 0 means the
 * engine's default.  Returns -1 with errno if the call cannot be made.
 */
int
engine_call(struct engine *e, struct module *m, const void *body, size_t len,
    int timeout_ms, engine_cb cb, void *arg)
{
	struct call	*c;

	if ((c = engine_new_call(e, m, body, len, timeout_ms, cb, arg)) == NULL)
		return -1;
	engine_submit(e, c);
	return 0;
}

/* Ask for m's handshake: cb gets ok once a helper loaded it. */
int
engine_probe(struct engine *e, struct module *m, engine_cb cb, void *arg)
{
	struct call	*c;

	/* Past the grace period, so a hung init reports as such. */
	if ((c = engine_new_call(e, m, NULL, 0, e->conf.grace_ms + 1000, cb,
	    arg)) == NULL)
		return -1;
	c->probe = true;
	engine_submit(e, c);
	return 0;
}

/*
 * Send every helper the calls dispatched to it since the last turn.  A
 * helper now holding several calls announces their results only once it
 * has run all it has read, so its ledger is read every ENGINE_COLLECT_MS
 * meanwhile: a call that finished ahead of a slow one is answered then,
 * not when the slow one ends.
 */
static void
engine_flush(struct engine *e)
{
	struct proc	*p;

	while ((p = TAILQ_FIRST(&e->flushq)) != NULL) {
		TAILQ_REMOVE(&e->flushq, p, flushentry);
		p->flushing = false;
		proc_flush(p);
		if (p->ncalls > 1 && !p->pipelined) {
			TAILQ_INSERT_TAIL(&e->pipelined, p, pipeentry);
			p->pipelined = true;
		}
	}
	if (!TAILQ_EMPTY(&e->pipelined) && e->collect_at == 0)
		e->collect_at = engine_now() + ENGINE_COLLECT_MS * MS_NS;
}

/* Read the ledgers of helpers holding several calls; see engine_flush. */
static void
engine_collect(struct engine *e)
{
	struct proc	*p, *next;

	e->collect_at = 0;
	TAILQ_FOREACH_SAFE(p, &e->pipelined, pipeentry, next) {
		if (p->state == PROC_BUSY && p->watch.fd != -1)
			(void)proc_collect(p);
		if (p->state != PROC_BUSY || p->watch.fd == -1 ||
		    p->ncalls < 2) {
			TAILQ_REMOVE(&e->pipelined, p, pipeentry);
			p->pipelined = false;
		}
	}
	if (!TAILQ_EMPTY(&e->pipelined))
		e->collect_at = engine_now() + ENGINE_COLLECT_MS * MS_NS;
}

/*
 * Run the loop once: wait up to timeout_ms (-1: no limit) for events and
 * handle them all.  Returns -1 with errno only if the loop itself failed.
 */
int
engine_run(struct engine *e, int timeout_ms)
{
	struct epoll_event	 evs[64];
	struct watch		*w;
	struct call		*c;
	int			 n;

	if (!TAILQ_EMPTY(&e->early))
		timeout_ms = 0;
	engine_flush(e);
	engine_arm(e);
	n = epoll_wait(e->epfd, evs, 64, timeout_ms);
	if (n == -1 && errno != EINTR)
		return -1;
	for (int i = 0; i < n; i++) {
		w = evs[i].data.ptr;
		w->cb(w, evs[i].events);
	}
	while ((c = TAILQ_FIRST(&e->early)) != NULL) {
		TAILQ_REMOVE(&e->early, c, qentry);
		engine_complete(e, c, c->early.status, ROUTE_NONE,
		    c->early.detail);
	}
	engine_gc(e);
	engine_flush(e);
	engine_arm(e);
	return n < 0 ? 0 : n;
}

/* Calls submitted and not yet completed. */
u_int
engine_pending(const struct engine *e)
{
	return e->pending;
}

/* Call fn for every module alive, loaded or draining. */
void
engine_foreach(struct engine *e, void (*fn)(struct module *, void *),
    void *arg)
{
	struct module	*m;

	RB_FOREACH(m, module_tree, &e->modules)
		fn(m, arg);
	TAILQ_FOREACH(m, &e->draining, drainentry)
		fn(m, arg);
}

/* Modules alive: loaded, or retired with helpers still exiting. */
u_int
engine_loaded(const struct engine *e)
{
	return e->nloaded;
}

/* Helpers not yet reaped. */
u_int
engine_procs(const struct engine *e)
{
	return e->nprocs;
}
