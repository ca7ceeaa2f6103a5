/* SPDX-License-Identifier: ISC */
/*
 * The engine: the top of the library, and the loop turn.
 *
 * engine.c owns the loop (loop.c), the registry of versions by key, the
 * zygote (zygote.c) and the reports of each helper's exit it sends, the
 * reaping of the engine's own children (SIGCHLD through a signalfd,
 * waitpid(WNOHANG) in a loop: no work in a signal handler), and the shape
 * of a turn:
 *
 *	1. wait once, run the events and the timers that are due;
 *	2. settle: kick the pools that asked (pool.c), deliver the results
 *	   of calls that ended (call.c), until neither has anything to do;
 *	3. free the helpers reaped and the versions dead this turn;
 *	4. write every helper the calls it was given.
 *
 * A call's, a version's and a helper's lives are in call.c, module.c and
 * pool.c/proc.c.  The engine never prints and never exits.
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>


#include <sodium.h>

#include "engine-int.h"

#define ENGINE_DRAIN_MS		500	/* for fini at shutdown */
#define ENGINE_DEBUG_GRACE_MS	3600000	/* ROUTE_HOST_DEBUG: for init */
#define ENGINE_REAP_MS		5000	/* then for the zygote to report
					   the kills */

/* Order helpers by token. */
static int
engine_proc_cmp(struct proc *a, struct proc *b)
{
	return a->token < b->token ? -1 : a->token > b->token;
}

RB_GENERATE_STATIC(proc_tree, proc, tokentry, engine_proc_cmp);

/* Nanoseconds on the monotonic clock. */
uint64_t
engine_now(void)
{
	return loop_now();
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
	case ST_CRASH_LOOP:
		return "crash_loop";
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
	conf->crash.budget = CRASH_BUDGET;
	conf->crash.backoff_min_ms = CRASH_BACKOFF_MIN_MS;
	conf->crash.backoff_max_ms = CRASH_BACKOFF_MAX_MS;
	conf->crash.memo = CRASH_MEMO;
	conf->crash.memo_ttl_ms = CRASH_MEMO_TTL_MS;
	conf->file_max = DEFAULT_FILE_MAX;
	conf->sandbox = true;
	conf->memory_limit = DEFAULT_MEMORY_LIMIT;
}

/* The engine's loop. */
struct loop *
engine_loop(struct engine *e)
{
	return e->loop;
}

/* Add a watch to the engine's loop. */
int
engine_watch(struct engine *e, struct watch *w, uint32_t events)
{
	return loop_watch(e->loop, w, events);
}

/* Change the events a watch waits for. */
int
engine_rewatch(struct engine *e, struct watch *w, uint32_t events)
{
	return loop_rewatch(e->loop, w, events);
}

/* Remove a watch; its events harvested this turn are cancelled. */
void
engine_unwatch(struct engine *e, struct watch *w)
{
	loop_unwatch(e->loop, w);
}

/*
 * Bytes of calls the engine holds: every call's frame, from engine_call
 * until it is freed, which for a call abandoned by its caller (its
 * deadline passed) but still held by a helper is after its answer.
 */
uint64_t
engine_call_bytes(const struct engine *e)
{
	return e->call_bytes;
}

/* Tell the engine's owner something worth a log line (syslog priority). */
void
engine_log(struct engine *e, int prio, const char *fmt, ...)
{
	va_list	ap;
	char	line[1024];

	if (e->conf.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	e->conf.log(e->conf.log_arg, prio, line);
}

/* A helper was forked: index it by token for the reaper. */
void
engine_proc_born(struct engine *e, struct proc *p)
{
	RB_INSERT(proc_tree, &e->procs, p);
	e->nprocs++;
}

/* A helper was reaped and forgotten by its pool: free it this turn. */
void
engine_proc_reaped(struct engine *e, struct proc *p)
{
	RB_REMOVE(proc_tree, &e->procs, p);
	e->nprocs--;
	TAILQ_INSERT_TAIL(&e->deadprocs, p, entry);
}

/* The zygote reaped helper token with status. */
static void
engine_reap(struct engine *e, uint64_t token, int status)
{
	struct proc	 key, *p;

	key.token = token;
	if ((p = RB_FIND(proc_tree, &e->procs, &key)) != NULL)
		proc_reaped(p, status);
}

/*
 * The zygote is gone, and every helper died with it (PR_SET_PDEATHSIG):
 * each is reaped as killed, and no helper can be started again.
 */
static void
engine_lose_zygote(struct engine *e)
{
	struct proc	*p;

	if (e->broken[0] == '\0')
		strlcpy(e->broken, "the zygote died", sizeof e->broken);
	if (e->zyw.fd != -1) {
		loop_unwatch(e->loop, &e->zyw);
		e->zyw.fd = -1;
	}
	if (e->zcw.fd != -1) {
		loop_unwatch(e->loop, &e->zcw);
		e->zcw.fd = -1;
	}
	loop_timer_cancel(e->loop, &e->zytimer);
	while ((p = RB_MIN(proc_tree, &e->procs)) != NULL) {
		proc_kill(p, e->broken);
		proc_reaped(p, SIGKILL);
	}
}

/* Watch for the zygote's answers to come by their deadline, if any is due. */
void
engine_zygote_arm(struct engine *e)
{
	uint64_t	at = zygote_deadline(e->zygote);

	if (at == 0)
		loop_timer_cancel(e->loop, &e->zytimer);
	else if (!e->zytimer.armed || e->zytimer.at != at)
		loop_timer_at(e->loop, &e->zytimer, at);
}

/*
 * Take the zygote's answers to SPAWN: a helper forked (its pid, its pidfd)
 * or one it could not fork.  An answer out of turn gets the zygote killed.
 */
static void
engine_zygote_answers(struct engine *e)
{
	struct proc	 key, *p;
	char		 why[DETAIL_MAX];
	pid_t		 pid;
	int		 pidfd, rc;

	if (e->zcw.fd == -1)
		return;
	while ((rc = zygote_answer(e->zygote, &key.token, &pid, &pidfd, why,
	    sizeof why)) == 1) {
		p = RB_FIND(proc_tree, &e->procs, &key);
		if (pid == 0) {
			if (p != NULL)
				proc_unborn(p, why);
		} else if (p != NULL && !p->reaped)
			proc_forked(p, pid, pidfd);
		else if (pidfd != -1)
			close(pidfd);		/* reaped before we heard */
	}
	if (rc == -1 && e->broken[0] == '\0')
		strlcpy(e->broken, "the zygote broke its protocol",
		    sizeof e->broken);
	engine_zygote_arm(e);
}

/* The zygote's answers are readable. */
static void
engine_zygote_answer_event(struct watch *w, uint32_t events)
{
	(void)events;
	engine_zygote_answers(w->arg);
}

/* A SPAWN went unanswered too long: the zygote is taken for dead. */
static void
engine_zygote_silent(void *arg)
{
	struct engine	*e = arg;

	if (e->broken[0] == '\0')
		strlcpy(e->broken, "the zygote stopped answering",
		    sizeof e->broken);
	engine_log(e, LOG_ERR, "the zygote did not answer a spawn in time: "
	    "it is killed, and no helper can start any more");
	zygote_abandon(e->zygote);	/* its EOF ends the helpers */
}

/*
 * Take the zygote's EXITED reports (after its answers to SPAWN, so that a
 * helper that died at once is known by its pid); its EOF means it is gone.
 */
static void
engine_zygote_event(struct watch *w, uint32_t events)
{
	struct engine	*e = w->arg;
	uint64_t	 token;
	int		 status, rc;

	(void)events;
	engine_zygote_answers(e);
	while ((rc = zygote_exited(e->zygote, &token, &status)) == 1)
		engine_reap(e, token, status);
	if (rc == -1)
		engine_lose_zygote(e);
}

/*
 * Reap any child of ours that exited (the zygote, when it is ours): no
 * work happened in a handler.  Helpers are the zygote's to reap.
 */
static void
engine_sigchld(struct watch *w, uint32_t events)
{
	struct signalfd_siginfo	 si;
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
	}
}

/*
 * Wait up to ms (-1: no limit) for the zygote's next reports, and take
 * them.  For the end of the engine's life, outside the loop.
 */
static void
engine_wait_exits(struct engine *e, int ms)
{
	struct pollfd	pfd[2];

	if (e->zyw.fd == -1)
		return;
	pfd[0].fd = e->zyw.fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = e->zcw.fd;
	pfd[1].events = POLLIN;
	if (poll(pfd, e->zcw.fd != -1 ? 2 : 1, ms) >= 1)
		engine_zygote_event(&e->zyw, EPOLLIN);
}

/*
 * When helpers run as this process's own user, no process of that user
 * may read or trace this one (/proc/PID/mem, ptrace): helpers' init runs
 * before their tight filter.  The zygote and its helpers inherit it.
 */
static void
engine_undumpable(void)
{
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/*
 * Set the user helpers switch to when the engine runs as root (NULL:
 * "nobody"); as anyone else helpers keep the engine's.  -1 with err set.
 */
int
engine_set_user(struct engine *e, const char *name, char *err,
    size_t errlen)
{
	struct passwd	*pw;

	if (name == NULL)
		name = "nobody";
	if (geteuid() != 0) {
		e->setuser = false;
		engine_undumpable();
		return 0;
	}
	errno = 0;
	if ((pw = getpwnam(name)) == NULL) {
		snprintf(err, errlen, "helper-user %s: %s", name, errno != 0 ?
		    strerror(errno) : "no such user");
		return -1;
	}
	e->setuser = pw->pw_uid != 0;
	if (!e->setuser)
		engine_undumpable();
	e->uid = pw->pw_uid;
	e->gid = pw->pw_gid;
	strlcpy(e->user, name, sizeof e->user);
	return 0;
}

/* Why no helper can start any more (the zygote is gone); NULL if fine. */
const char *
engine_broken(const struct engine *e)
{
	return e->broken[0] != '\0' ? e->broken : NULL;
}

/* Say in buf what confines the helpers, and what could not. */
void
engine_describe_sandbox(const struct engine *e, char *buf, size_t len)
{
	char	user[96];

	if (e->setuser)
		snprintf(user, sizeof user, "user %s (uid %u)", e->user,
		    (u_int)e->uid);
	else
		snprintf(user, sizeof user, "the daemon's user (%s)",
		    geteuid() == 0 ? "helper-user is root" : "not root");
	snprintf(buf, len, "%s: seccomp filters, limits (memory %zu MiB), "
	    "%s, %s", e->conf.sandbox ? "sandboxed" : "NOT sandboxed",
	    e->conf.memory_limit >> 20, user, zygote_what(e->zygote));
}

/*
 * Create an engine, with conf->zygote (which it owns from now on, even if
 * this fails) or a zygote of its own; NULL with err set on failure.
 */
struct engine *
engine_new(const struct engine_config *conf, char *err, size_t errlen)
{
	struct engine		*e;
	struct sigaction	 sa;
	sigset_t		 set;
	const char		*debug;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		zygote_free(conf->zygote);
		return NULL;
	}
	if ((e = calloc(1, sizeof *e)) == NULL) {
		snprintf(err, errlen, "out of memory");
		zygote_free(conf->zygote);
		return NULL;
	}
	e->conf = *conf;
	if (e->conf.helpers == 0)
		e->conf.helpers = 1;
	if (e->conf.depth == 0)
		e->conf.depth = 1;
	if (e->conf.depth > LEDGER_SLOTS)
		e->conf.depth = LEDGER_SLOTS;
	e->sigw.fd = -1;
	e->zyw.fd = -1;
	e->zcw.fd = -1;
	e->zygote = conf->zygote;
	e->conf.zygote = NULL;
	RB_INIT(&e->modules);
	RB_INIT(&e->procs);
	TAILQ_INIT(&e->retired);
	TAILQ_INIT(&e->dead);
	TAILQ_INIT(&e->kickq);
	TAILQ_INIT(&e->deadprocs);
	TAILQ_INIT(&e->flushq);
	TAILQ_INIT(&e->pipelined);
	TAILQ_INIT(&e->done);

	/* SIGCHLD must not be ignored, or children reap themselves. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &e->oldmask);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, &e->oldchld);

	loop_timer_init(&e->zytimer, engine_zygote_silent, e);
	if ((e->loop = loop_new(err, errlen)) == NULL) {
		engine_free(e);
		return NULL;
	}
	if (e->zygote == NULL && (e->zygote = zygote_start(err, errlen)) ==
	    NULL) {
		engine_free(e);
		return NULL;
	}
	if (engine_set_user(e, conf->helper_user, err, errlen) == -1) {
		engine_free(e);
		return NULL;
	}
	/*
	 * ROUTE_HOST_DEBUG (not empty): helpers stop before they load their
	 * plugin, for a debugger, and their handshake waits up to an hour.
	 */
	if ((debug = secure_getenv("ROUTE_HOST_DEBUG")) != NULL &&
	    debug[0] != '\0') {
		e->debug = true;
		e->conf.grace_ms = ENGINE_DEBUG_GRACE_MS;
		engine_log(e, LOG_WARNING, "ROUTE_HOST_DEBUG: each helper "
		    "stops before it loads its plugin and waits for a "
		    "debugger; handshakes wait up to an hour");
	}
	e->zyw.fd = zygote_exits_fd(e->zygote);
	e->zyw.cb = engine_zygote_event;
	e->zyw.arg = e;
	if (loop_watch(e->loop, &e->zyw, EPOLLIN) == -1) {
		snprintf(err, errlen, "event loop: %s", strerror(errno));
		e->zyw.fd = -1;
		engine_free(e);
		return NULL;
	}
	e->zcw.fd = zygote_ctl_fd(e->zygote);
	e->zcw.cb = engine_zygote_answer_event;
	e->zcw.arg = e;
	if (loop_watch(e->loop, &e->zcw, EPOLLIN) == -1) {
		snprintf(err, errlen, "event loop: %s", strerror(errno));
		e->zcw.fd = -1;
		engine_free(e);
		return NULL;
	}
	if ((e->sigw.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1) {
		snprintf(err, errlen, "signalfd: %s", strerror(errno));
		engine_free(e);
		return NULL;
	}
	e->sigw.cb = engine_sigchld;
	e->sigw.arg = e;
	if (loop_watch(e->loop, &e->sigw, EPOLLIN) == -1) {
		snprintf(err, errlen, "event loop: %s", strerror(errno));
		engine_free(e);
		return NULL;
	}
	return e;
}

/*
 * Settle the turn: kick the pools that asked, deliver the calls that
 * ended, until neither has more to do.  Returns how many were delivered.
 */
static u_int
engine_settle(struct engine *e)
{
	struct call	*c;
	u_int		 n = 0;
	bool		 moved;

	do {
		moved = pool_settle(e);
		while ((c = TAILQ_FIRST(&e->done)) != NULL) {
			call_deliver(c);
			n++;
			moved = true;
		}
	} while (moved);
	return n;
}

/* Free what the turn has finished with: reaped helpers, dead modules. */
static void
engine_gc(struct engine *e)
{
	struct proc	*p;
	struct module	*m;

	while ((p = TAILQ_FIRST(&e->deadprocs)) != NULL) {
		TAILQ_REMOVE(&e->deadprocs, p, entry);
		proc_free(p);
	}
	while ((m = TAILQ_FIRST(&e->dead)) != NULL) {
		TAILQ_REMOVE(&e->dead, m, lentry);
		e->nloaded--;
		module_free(m);
	}
}

/* End the turn: free, then write what the helpers were given. */
static void
engine_end_turn(struct engine *e)
{
	engine_gc(e);
	pool_write(e);
	ENGINE_CHECK(e);
}

/*
 * Run the loop once: wait up to timeout_ms (-1: no limit) for events and
 * handle them all.  Results of calls that ended outside the loop (made
 * inside engine_call, say) are delivered first, without waiting.
 * Returns -1 with errno only if the loop itself failed.
 */
int
engine_run(struct engine *e, int timeout_ms)
{
	int	n;

	if (engine_settle(e) > 0)
		timeout_ms = 0;
	engine_end_turn(e);
	n = loop_turn(e->loop, timeout_ms);
	if (n == -1)
		return -1;
	engine_settle(e);
	engine_end_turn(e);
	return n;
}

/*
 * At shutdown, with no calls left: close idle helpers' sockets so their
 * plugins' fini runs, and reap whatever exits within ENGINE_DRAIN_MS.
 */
static void
engine_drain(struct engine *e)
{
	struct proc	*p;
	uint64_t	 end, now;

	RB_FOREACH(p, proc_tree, &e->procs) {
		if (p->state == PROC_IDLE || p->state == PROC_STANDBY)
			proc_stop(p);
		else if (p->state != PROC_STOPPING)
			proc_kill(p, "engine shutting down");
	}
	end = loop_now() + ENGINE_DRAIN_MS * MS_NS;
	while (!RB_EMPTY(&e->procs) && e->zyw.fd != -1 &&
	    (now = loop_now()) < end)
		engine_wait_exits(e, (int)((end - now) / MS_NS) + 1);
}

/*
 * Shut down: every outstanding call ends as shutting_down and is
 * delivered, every helper is stopped (or killed) and reaped before this
 * returns, and every version is freed.
 */
void
engine_free(struct engine *e)
{
	struct module	*m, *next;
	struct proc	*p;
	uint64_t	 end, now;

	if (e == NULL)
		return;
	if (e->loop != NULL) {
		e->closing = true;
		RB_FOREACH(m, module_tree, &e->modules)
			pool_shut(m);
		TAILQ_FOREACH(m, &e->retired, lentry)
			pool_shut(m);
		engine_settle(e);
		engine_drain(e);
		RB_FOREACH(p, proc_tree, &e->procs)
			proc_kill(p, "engine shutting down");
		end = loop_now() + ENGINE_REAP_MS * MS_NS;
		while (!RB_EMPTY(&e->procs) && e->zyw.fd != -1 &&
		    (now = loop_now()) < end)
			engine_wait_exits(e, (int)((end - now) / MS_NS) + 1);
		/*
		 * Without its zygote, a helper's end is known all the same;
		 * one that did not report them in time is killed, and its
		 * helpers die with it.
		 */
		if (!RB_EMPTY(&e->procs)) {
			if (e->zyw.fd != -1)
				zygote_abandon(e->zygote);
			engine_lose_zygote(e);
		}
		engine_settle(e);
		/* Holders that never let go: their versions go too. */
		RB_FOREACH_SAFE(m, module_tree, &e->modules, next)
			while (m->state == MODULE_HELD)
				module_release(m, 0);
		engine_gc(e);
		assert(e->pending == 0 && e->ncalls == 0 && e->nloaded == 0);
	}
	if (e->sigw.fd != -1) {
		if (e->loop != NULL)
			loop_unwatch(e->loop, &e->sigw);
		close(e->sigw.fd);
	}
	if (e->zyw.fd != -1 && e->loop != NULL)
		loop_unwatch(e->loop, &e->zyw);
	if (e->zcw.fd != -1 && e->loop != NULL)
		loop_unwatch(e->loop, &e->zcw);
	if (e->loop != NULL)
		loop_timer_cancel(e->loop, &e->zytimer);
	loop_free(e->loop);
	zygote_free(e->zygote);
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
 * Load the plugin at path with options: engine_load_fd on the file opened
 * with O_NOFOLLOW, so a symbolic link is refused, never followed.
 */
int
engine_load(struct engine *e, const char *path, const char *label,
    const struct route_option *opts, size_t nopts, struct module **out,
    char *err, size_t errlen)
{
	int	fd, rv;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
	    O_NOCTTY)) == -1) {
		if (errno == ELOOP)
			snprintf(err, errlen, "%s: is a symbolic link", path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	rv = engine_load_fd(e, fd, path, label, opts, nopts, out, err, errlen);
	close(fd);
	return rv;
}

/*
 * Load the plugin file open at fd (path names it), with options, or find
 * the version already loaded from the same bytes with the same options
 * (held, or retired and so held again).  The caller keeps fd, and becomes
 * a holder of the version, until engine_release.
 */
int
engine_load_fd(struct engine *e, int fd, const char *path, const char *label,
    const struct route_option *opts, size_t nopts, struct module **out,
    char *err, size_t errlen)
{
	struct module	*m, *found;
	char		 name[PLUGIN_NAME_MAX];

	if (label == NULL) {
		engine_label(path, name, sizeof name);
		label = name;
	}
	m = module_open(fd, path, label, e->conf.file_max, opts, nopts, err,
	    errlen);
	if (m == NULL)
		return -1;
	found = RB_FIND(module_tree, &e->modules, m);
	if (found == NULL)
		TAILQ_FOREACH(found, &e->retired, lentry)
			if (module_cmp(found, m) == 0)
				break;
	if (found != NULL) {
		module_free(m);
		module_hold(found);
		*out = found;
		return 0;
	}
	m->engine = e;
	if ((m->pool = pool_new(m)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		module_free(m);
		return -1;
	}
	loop_timer_init(&m->cap, module_capped, m);
	m->state = MODULE_HELD;
	m->holders = 1;
	RB_INSERT(module_tree, &e->modules, m);
	e->nloaded++;
	*out = m;
	return 0;
}

/* Let go of a version from engine_load. */
void
engine_release(struct engine *e, struct module *m)
{
	(void)e;
	module_release(m, 0);
}

/*
 * Let go of a version that is being replaced or removed.  If that retires
 * it, calls on it finish there, but only for cap_ms; then they time out
 * and it goes.  A version someone else still holds is not capped.
 */
void
engine_release_drain(struct engine *e, struct module *m, int cap_ms)
{
	(void)e;
	module_release(m, cap_ms);
}

/* Fail a call that never reached a version (no such channel, overloaded). */
int
engine_reject(struct engine *e, enum status st, const char *detail,
    engine_cb cb, void *arg)
{
	struct call	*c;

	if ((c = call_new(e, NULL, NULL, 0, 0, cb, arg)) == NULL)
		return -1;
	call_finish(c, st, ROUTE_NONE, detail);
	return 0;
}

/*
 * Queue a new call, or end it at once: its body crashed m before (the
 * poison memo), m is in a crash loop, or m cannot load right now.
 */
static void
engine_submit(struct call *c)
{
	struct result	r;

	memset(&r, 0, sizeof r);
	if (c->engine->closing)
		call_finish(c, ST_SHUTTING_DOWN, ROUTE_NONE,
		    "engine shutting down");
	else if (pool_remembered(c))
		;		/* answered crashed: its body crashed m before */
	else if (pool_fail_fast(c->module, &r))
		call_finish(c, r.status, ROUTE_NONE, r.detail);
	else
		call_queue(c);
}

/*
 * Route one call body (wire.c's encoding) through version m.  cb runs
 * exactly once, with the result, from a later engine_run: never from
 * inside this function.  timeout_ms <= 0 means the engine's default.
 * Returns -1 with errno if the call cannot be made.
 */
int
engine_call(struct engine *e, struct module *m, const void *body, size_t len,
    int timeout_ms, engine_cb cb, void *arg)
{
	struct call	*c;

	if ((c = call_new(e, m, body, len, timeout_ms, cb, arg)) == NULL)
		return -1;
	engine_submit(c);
	return 0;
}

/* Ask for m's handshake: cb gets ok once a helper loaded it. */
int
engine_probe(struct engine *e, struct module *m, engine_cb cb, void *arg)
{
	struct call	*c;

	/* Past the grace period, so a hung init reports as such. */
	if ((c = call_new(e, m, NULL, 0, e->conf.grace_ms + 1000, cb,
	    arg)) == NULL)
		return -1;
	c->probe = true;
	engine_submit(c);
	return 0;
}

/* Set the pool size of m (0: the engine's). */
void
engine_set_helpers(struct module *m, u_int helpers)
{
	pool_set_max(m, helpers);
}

/*
 * Run m's helpers in the sandbox or not (sandbox no: a warning is the
 * caller's), with memory bytes of address space (0: the engine's).
 */
void
engine_set_sandbox(struct module *m, bool on, size_t memory)
{
	pool_set_sandbox(m, on, memory);
}

/* Set m's crash budget, backoff and poison memo (0 fields: the engine's). */
void
engine_set_crash(struct module *m, const struct crash_conf *cc)
{
	pool_set_crash(m, cc);
}

/* Calls submitted and not yet delivered. */
u_int
engine_pending(const struct engine *e)
{
	return e->pending;
}

/* Call fn for every version alive, held or retired. */
void
engine_foreach(struct engine *e, void (*fn)(struct module *, void *),
    void *arg)
{
	struct module	*m;

	RB_FOREACH(m, module_tree, &e->modules)
		fn(m, arg);
	TAILQ_FOREACH(m, &e->retired, lentry)
		fn(m, arg);
}

/* Versions alive: held, or retired with calls or helpers left. */
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

/*
 * m's helpers as status shows them (those forked: a pid is what status
 * names them by), at most max; returns how many.
 */
u_int
engine_helpers(const struct module *m, struct engine_helper *hs, u_int max)
{
	const struct proc	*p;
	u_int			 n = 0;

	for (p = pool_first(m); p != NULL && n < max; p = pool_next(p)) {
		if (p->pid == 0)
			continue;
		hs[n].pid = p->pid;
		hs[n].state = proc_state_name(p->state);
		hs[n].spare = p->spare;
		n++;
	}
	return n;
}

/*
 * Check the engine's invariants; the sanitizer build runs this at the end
 * of every turn.  Every timer armed is in the tree; every call is in
 * exactly one place; counts of holders, calls and helpers add up.
 */
void
engine_check(struct engine *e)
{
	struct module	*m;
	struct call	*c;
	struct proc	*p;
	u_int		 calls = 0, done = 0, procs = 0, mods = 0;

	assert(loop_timers(e->loop) == loop_timers_counted(e->loop));
	TAILQ_FOREACH(c, &e->done, doneentry) {
		done++;
		assert(c->state == CALL_ENDED || c->state == CALL_ABANDONED);
		assert(!c->deadline.armed);
	}
	assert(done <= e->pending);
	RB_FOREACH(m, module_tree, &e->modules) {
		assert(m->state == MODULE_HELD && m->holders > 0);
		assert(!m->cap.armed);
		pool_check(m);
		procs += pool_nprocs(m);
		calls += m->ncalls;
		mods++;
	}
	TAILQ_FOREACH(m, &e->retired, lentry) {
		assert(m->state == MODULE_RETIRED && m->holders == 0);
		assert(m->ncalls > 0 || !pool_empty(m));
		pool_check(m);
		procs += pool_nprocs(m);
		calls += m->ncalls;
		mods++;
	}
	assert(mods == e->nloaded);
	assert(procs == e->nprocs);
	RB_FOREACH(p, proc_tree, &e->procs)
		assert(p->engine == e && !p->reaped);
	assert(calls <= e->ncalls);
}
