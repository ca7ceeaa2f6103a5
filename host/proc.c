/*
 * The host's side of a helper process.
 *
 * A helper's life is a small state machine:
 *
 *	SPAWNING --hello ok--> IDLE <--result-- BUSY
 *	    |  \                ^  --dispatch-->  |
 *	    |   `-(a spare)-> STANDBY             |
 *	    |             proc_promote            |
 *	hello failed,        proc_stop       deadline, EOF,
 *	EOF, garbage     (IDLE, STANDBY)    garbage, oversize
 *	    v                   v                 v
 *	 KILLED             STOPPING           KILLED
 *	    \___________________|________________/
 *	                        v
 *	                 reaped (waitpid)
 *
 * Each transition is one named function here.  The helper is an untrusted
 * peer: every frame it sends is length-checked, and anything unexpected
 * kills that helper, never the host.  Whatever the state, a helper is freed
 * only once it has been reaped, so no helper is ever left a zombie.
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route-host.h"

#define PROC_SOCK_FD	3
#define PROC_IMAGE_FD	4

static void	proc_event(struct watch *, uint32_t);

/* The name of a state, for status and logs. */
const char *
proc_state_name(enum proc_state state)
{
	switch (state) {
	case PROC_SPAWNING:
		return "spawning";
	case PROC_IDLE:
		return "idle";
	case PROC_BUSY:
		return "busy";
	case PROC_STANDBY:
		return "standby";
	case PROC_STOPPING:
		return "stopping";
	case PROC_KILLED:
		return "killed";
	}
	return "unknown";
}

/* Describe a wait status: "exit 3", "SIGSEGV". */
void
proc_describe_status(int status, char *buf, size_t len)
{
	const char	*abbrev;

	if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status)) {
		abbrev = sigabbrev_np(WTERMSIG(status));
		if (abbrev != NULL)
			snprintf(buf, len, "SIG%s", abbrev);
		else
			snprintf(buf, len, "signal %d", WTERMSIG(status));
	} else
		snprintf(buf, len, "wait status %#x", status);
}

/*
 * In the child: give it a clean process (default signals, empty mask, no
 * core files, death with its parent, fixed fds 0-4 and nothing else), then
 * become the helper.  Every failure is _exit.
 */
static void __attribute__((__noreturn__))
proc_child(pid_t parent, int sock, struct ledger *l, const struct module *m)
{
	struct sigaction	sa;
	struct rlimit		rl = { 0, 0 };
	sigset_t		mask;
	int			s, img, null;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigemptyset(&mask);
	if (sigprocmask(SIG_SETMASK, &mask, NULL) == -1)
		_exit(126);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		_exit(126);
	(void)setrlimit(RLIMIT_CORE, &rl);

	/* Lift both fds clear of 0-4 before placing them. */
	if ((s = fcntl(sock, F_DUPFD_CLOEXEC, 10)) == -1 ||
	    (img = fcntl(m->memfd, F_DUPFD_CLOEXEC, 10)) == -1)
		_exit(126);
	if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
		_exit(126);
	if (dup2(null, STDIN_FILENO) == -1 ||
	    dup2(STDERR_FILENO, STDOUT_FILENO) == -1 ||
	    dup2(s, PROC_SOCK_FD) == -1 || dup2(img, PROC_IMAGE_FD) == -1)
		_exit(126);
	closefrom(PROC_IMAGE_FD + 1);
	/* Nothing a plugin execs inherits the socket or the image. */
	if (fcntl(PROC_SOCK_FD, F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(PROC_IMAGE_FD, F_SETFD, FD_CLOEXEC) == -1)
		_exit(126);
	helper_main(PROC_SOCK_FD, PROC_IMAGE_FD, l, m);
}

/*
 * Fork a helper for module m.  The host stays single-threaded, so fork is
 * safe, and it stays small, so fork is cheap.  Returns NULL with err set.
 */
struct proc *
proc_spawn(struct engine *e, struct module *m, char *err, size_t errlen)
{
	struct proc	*p;
	pid_t		 parent = getpid();
	int		 sv[2];

	if ((p = calloc(1, sizeof *p)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((p->ledger = ledger_new()) == NULL) {
		snprintf(err, errlen, "mapping a ledger: %s", strerror(errno));
		free(p);
		return NULL;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		ledger_free(p->ledger);
		free(p);
		return NULL;
	}
	switch (p->pid = fork()) {
	case -1:
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		ledger_free(p->ledger);
		free(p);
		return NULL;
	case 0:
		close(sv[0]);
		proc_child(parent, sv[1], p->ledger, m);
	}
	close(sv[1]);
	/* This helper has its ledger; no later helper may inherit it. */
	if (ledger_seal(p->ledger) == -1) {
		kill(p->pid, SIGKILL);
		p->killed = true;
		strlcpy(p->cause, "sealing its ledger failed", sizeof p->cause);
	}
	TAILQ_INIT(&p->calls);
	wire_init(&p->out);
	p->out.max = SIZE_MAX / 2;
	p->engine = e;
	p->module = m;
	p->state = PROC_SPAWNING;
	p->watch.fd = sv[0];
	p->watch.cb = proc_event;
	p->watch.arg = p;
	if (p->killed) {
		close(sv[0]);
		p->watch.fd = -1;
		p->state = PROC_KILLED;
	} else if (fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1 ||
	    engine_watch(e, &p->watch, EPOLLIN) == -1) {
		snprintf(err, errlen, "watching helper: %s", strerror(errno));
		close(sv[0]);
		p->watch.fd = -1;
		/* The child is ours now: kill it and let the reaper free it. */
		kill(p->pid, SIGKILL);
		p->state = PROC_KILLED;
		p->killed = true;
		strlcpy(p->cause, err, sizeof p->cause);
	}
	return p;
}

/*
 * SPAWNING or STOPPING past its grace deadline: a plugin whose init or fini
 * never returns.  Kill it; a pending handshake becomes a spawn failure.
 */
void
proc_expire(struct proc *p, int ms)
{
	char	cause[DETAIL_MAX];
	bool	settled = p->settled;

	if (p->state == PROC_SPAWNING)
		snprintf(cause, sizeof cause, "init did not finish within "
		    "%d ms", ms);
	else
		snprintf(cause, sizeof cause, "did not exit within %d ms of "
		    "being stopped", ms);
	p->settled = true;
	proc_kill(p, cause);
	if (!settled)
		engine_proc_spawn_failed(p->engine, p, cause);
}

/* Close the host's end of the helper's socket. */
static void
proc_close(struct proc *p)
{
	if (p->watch.fd == -1)
		return;
	engine_unwatch(p->engine, &p->watch);
	close(p->watch.fd);
	p->watch.fd = -1;
	p->out.len = p->outoff = 0;
}

/* Free a reaped helper. */
void
proc_free(struct proc *p)
{
	wire_free(&p->out);
	ledger_free(p->ledger);
	free(p);
}

/*
 * Kill a helper now: SIGKILL, socket closed, state KILLED.  cause is kept
 * for the call it may still be holding.  Reaping frees it later.
 */
void
proc_kill(struct proc *p, const char *cause)
{
	if (p->state != PROC_KILLED) {
		/* Once reaped, the pid may be another process's. */
		if (!p->reaped)
			kill(p->pid, SIGKILL);
		strlcpy(p->cause, cause, sizeof p->cause);
		p->state = PROC_KILLED;
		p->killed = true;
	}
	proc_close(p);
}

/* Retire an idle helper: closing its socket makes it run fini and exit. */
void
proc_stop(struct proc *p)
{
	proc_close(p);
	p->state = PROC_STOPPING;
}

/* A spare becomes a helper like any other: STANDBY -> IDLE. */
void
proc_promote(struct proc *p)
{
	p->spare = false;
	if (p->state == PROC_STANDBY)
		p->state = PROC_IDLE;
}

/* After a partial write: the calls now written in full count as sent. */
static void
proc_advance_sent(struct proc *p)
{
	struct call	*c;

	TAILQ_FOREACH(c, &p->calls, qentry) {
		if (proc_sent(p, c))
			continue;
		if (c->outend > p->outoff)
			break;
		p->sent = c->seq;
	}
}

/* Write as much of the pending frames as the socket takes. */
void
proc_flush(struct proc *p)
{
	ssize_t	n;

	if (p->watch.fd == -1) {
		/* Closed: what is left was never written. */
		p->out.len = p->outoff = 0;
		return;
	}
	while (p->outoff < p->out.len) {
		n = send(p->watch.fd, p->out.data + p->outoff,
		    p->out.len - p->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			proc_advance_sent(p);
			if (!p->waiting_out) {
				engine_rewatch(p->engine, &p->watch,
				    EPOLLIN | EPOLLOUT);
				p->waiting_out = true;
			}
			return;
		}
		if (n == -1) {
			/* The helper is going; EOF or reaping says why. */
			proc_advance_sent(p);
			p->out.len = p->outoff = 0;
			return;
		}
		p->outoff += (size_t)n;
	}
	p->out.len = p->outoff = 0;
	p->sent = p->seq;
	if (p->waiting_out) {
		engine_rewatch(p->engine, &p->watch, EPOLLIN);
		p->waiting_out = false;
	}
}

/* True once call c has been written to the helper in full. */
bool
proc_sent(const struct proc *p, const struct call *c)
{
	return (int32_t)(c->seq - p->sent) <= 0;
}

/*
 * Queue call c for the helper, behind the calls it already holds; the
 * frames go out together at proc_flush.
 */
void
proc_dispatch(struct proc *p, struct call *c)
{
	c->proc = p;
	c->seq = ++p->seq;
	wire_put_u32(c->frame + WIRE_HEADER, c->seq);
	TAILQ_INSERT_TAIL(&p->calls, c, qentry);
	p->ncalls++;
	p->state = PROC_BUSY;
	wire_bytes(&p->out, c->frame, c->len);
	c->outend = p->out.len;
}

/* The helper broke the protocol: kill it and fail what it held. */
static void
proc_violation(struct proc *p, const char *what)
{
	char		 cause[DETAIL_MAX];
	bool		 settled = p->settled;

	snprintf(cause, sizeof cause, "protocol violation: %s", what);
	p->fault = true;
	p->settled = true;
	proc_kill(p, cause);
	if (!settled)
		engine_proc_spawn_failed(p->engine, p, cause);
	else if (p->ncalls > 0)
		engine_proc_lost(p->engine, p, cause);
}

/* Handle a HELLO frame: SPAWNING -> IDLE, or a failed handshake. */
static void
proc_hello(struct proc *p, struct wire_reader *r)
{
	static const char *const kinds[] = {
		[HELLO_DLOPEN] = NULL,		/* "dlopen: ..." says it */
		[HELLO_NOT_ELF] = "not a plugin",
		[HELLO_NO_DESCRIPTOR] = "missing descriptor",
		[HELLO_ABI] = "ABI mismatch",
		[HELLO_BAD_DESCRIPTOR] = "bad descriptor",
		[HELLO_INIT] = "init failed",
	};
	char		name[PLUGIN_NAME_MAX], detail[DETAIL_MAX];
	char		why[DETAIL_MAX + 32];
	uint8_t		status;
	uint32_t	abi;

	status = wire_read_u8(r);
	abi = wire_read_u32(r);
	wire_read_str16(r, name, sizeof name);
	wire_read_str16(r, detail, sizeof detail);
	if (!wire_reader_done(r) || p->state != PROC_SPAWNING ||
	    status > HELLO_INIT) {
		proc_violation(p, "malformed or unexpected handshake");
		return;
	}
	p->settled = true;
	if (status != HELLO_OK) {
		if (kinds[status] == NULL)
			strlcpy(why, detail, sizeof why);
		else
			snprintf(why, sizeof why, "%s: %s", kinds[status],
			    detail);
		proc_kill(p, why);
		engine_proc_spawn_failed(p->engine, p, why);
		return;
	}
	if (p->module->name[0] == '\0') {
		strlcpy(p->module->name, name, sizeof p->module->name);
		p->module->abi = abi;
	}
	p->state = p->spare ? PROC_STANDBY : PROC_IDLE;
	engine_proc_ready(p->engine, p);
}

/*
 * Why call c's body is malformed, as the helper said it was: the host
 * decodes it again itself, so the reason never comes from untrusted code.
 * False if the body is fine after all, and the helper lied.
 */
static bool
proc_bad_request(struct call *c, char *detail, size_t len)
{
	struct wire_call	 wc;

	if (wire_decode_call(c->frame + WIRE_HEADER + 4,
	    c->len - WIRE_HEADER - 4, &wc, detail, len) == -1)
		return true;
	wire_call_free(&wc);
	return false;
}

/*
 * Take the results of the oldest calls out of the ledger, in order: those
 * through seq when through is set (each must be there), else as many as
 * are there.  Returns how many were taken, or -1 if the helper broke the
 * protocol and was killed.
 */
static int
proc_take(struct proc *p, bool through, uint32_t seq)
{
	struct ledger_slot	 s;
	struct call		*c;
	const char		*bad;
	char			 what[64], detail[DETAIL_MAX];
	int			 n = 0, rc;

	while ((c = TAILQ_FIRST(&p->calls)) != NULL) {
		if (through && (int32_t)(c->seq - seq) > 0)
			break;
		if ((rc = ledger_take(p->ledger, c->seq, &s)) == 1 &&
		    !through)
			break;
		bad = NULL;
		if (rc == 1)
			bad = "no result";
		else if (rc == -1)
			bad = "malformed result";
		else if (s.status == RESULT_BAD_REQUEST &&
		    !proc_bad_request(c, detail, sizeof detail))
			bad = "false bad-request result";
		if (bad != NULL) {
			snprintf(what, sizeof what, "%s for call %u", bad,
			    c->seq);
			proc_violation(p, what);
			return -1;
		}
		TAILQ_REMOVE(&p->calls, c, qentry);
		p->ncalls--;
		p->answered = c->seq;
		c->proc = NULL;
		if (p->ncalls == 0 && p->state == PROC_BUSY)
			p->state = PROC_IDLE;
		n++;
		engine_proc_result(p->engine, p, c, s.status ==
		    RESULT_BAD_REQUEST, s.decision, s.status ==
		    RESULT_BAD_REQUEST ? detail : "");
	}
	return n;
}

/*
 * Collect whatever results the helper has written, announced or not: at a
 * deadline, or once it died.  Returns as proc_take.
 */
int
proc_collect(struct proc *p)
{
	return proc_take(p, false, 0);
}

/* Handle a RESULT frame: every call through seq has its result. */
static void
proc_result(struct proc *p, struct wire_reader *r)
{
	uint32_t	seq;

	seq = wire_read_u32(r);
	if (!wire_reader_done(r)) {
		proc_violation(p, "malformed result");
		return;
	}
	if (p->state != PROC_BUSY && p->state != PROC_IDLE) {
		proc_violation(p, "result before its handshake");
		return;
	}
	/* Not ahead of the calls sent; a late repeat is harmless. */
	if ((int32_t)(seq - p->seq) > 0) {
		proc_violation(p, "result for no call");
		return;
	}
	(void)proc_take(p, true, seq);
}

/* Take every complete frame out of the input buffer. */
static void
proc_frames(struct proc *p)
{
	struct wire_reader	r;
	char			what[64];
	uint32_t		len;
	size_t			off = 0;

	while (p->watch.fd != -1 && p->inlen - off >= 4) {
		len = wire_get_u32(p->in + off);
		if (len < 1 || len > WIRE_REPLY_MAX - 4) {
			snprintf(what, sizeof what, "frame of %u bytes "
			    "(at most %u)", len, WIRE_REPLY_MAX - 4);
			proc_violation(p, what);
			return;
		}
		if (p->inlen - off - 4 < len)
			break;
		wire_reader_init(&r, p->in + off + WIRE_HEADER, len - 1);
		switch (p->in[off + 4]) {
		case WIRE_HELLO:
			proc_hello(p, &r);
			break;
		case WIRE_RESULT:
			proc_result(p, &r);
			break;
		default:
			snprintf(what, sizeof what, "unknown frame type %u",
			    p->in[off + 4]);
			proc_violation(p, what);
			return;
		}
		off += 4 + len;
	}
	if (p->watch.fd == -1)
		return;
	memmove(p->in, p->in + off, p->inlen - off);
	p->inlen -= off;
}

/*
 * The helper closed its socket.  It is dying, or its plugin closed the
 * socket.  Give it a moment to die on its own, so that reaping says the
 * real cause and what it finished still counts; the engine kills it if it
 * lingers.
 */
static void
proc_eof(struct proc *p)
{
	proc_close(p);
	if (p->state == PROC_STOPPING)
		return;
	p->fault = true;
	engine_proc_eof(p->engine, p);
}

/* Socket events from the helper. */
static void
proc_event(struct watch *w, uint32_t events)
{
	struct proc	*p = w->arg;
	ssize_t		 n;
	size_t		 want;

	if (w->fd == -1)
		return;
	if (events & EPOLLOUT)
		proc_flush(p);
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0)
		return;
	for (;;) {
		want = sizeof p->in - p->inlen;
		n = read(w->fd, p->in + p->inlen, want);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			proc_eof(p);
			return;
		}
		p->inlen += (size_t)n;
		proc_frames(p);
		/* A short read took all there was; the loop calls again. */
		if (w->fd == -1 || (size_t)n < want)
			return;
	}
}

/*
 * A reaped helper's last words: frames it sent before dying that the loop
 * has not read yet (a failed handshake, say).  Its end of the socket is
 * closed, so this never blocks; EOF needs no handling, the reaping says all.
 */
static void
proc_hear_out(struct proc *p)
{
	ssize_t	n;

	while (p->watch.fd != -1 && p->inlen < sizeof p->in) {
		n = read(p->watch.fd, p->in + p->inlen,
		    sizeof p->in - p->inlen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p->inlen += (size_t)n;
		proc_frames(p);
	}
}

/*
 * The helper was reaped with wait status.  Report whatever it was holding:
 * a handshake that never came is a spawn failure, a call it was running is
 * lost with the cause.  Then the engine forgets it.
 */
void
proc_reaped(struct proc *p, int status)
{
	char		 how[64], cause[DETAIL_MAX + 64];
	bool		 by_us;

	p->reaped = true;
	proc_hear_out(p);
	proc_close(p);
	if (!p->killed && p->state != PROC_STOPPING)
		p->fault = true;
	p->state = PROC_KILLED;
	proc_describe_status(status, how, sizeof how);
	by_us = p->killed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	if (!p->settled) {
		p->settled = true;
		snprintf(cause, sizeof cause, "died while loading: %s",
		    by_us ? p->cause : how);
		engine_proc_spawn_failed(p->engine, p, cause);
	} else if (p->ncalls > 0) {
		/*
		 * Dead by its own hand: what it finished first still counts.
		 * Killed by us: its calls were already dealt with, or it
		 * broke the protocol and forfeits them.
		 */
		if (!by_us)
			(void)proc_collect(p);
		strlcpy(cause, by_us ? p->cause : how, sizeof cause);
		if (p->ncalls > 0)
			engine_proc_lost(p->engine, p, cause);
	}
	p->state = PROC_KILLED;
	engine_proc_gone(p->engine, p);
}
