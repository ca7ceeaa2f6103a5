/* SPDX-License-Identifier: ISC */
/*
 * The host's side of a helper process: the device, not the policy.
 *
 * proc.c has the zygote start a helper (zygote.c), writes the calls the
 * pool sends it (straight from each call's frame: a body is copied once,
 * from the client's frame into its call), reads its socket and its
 * ledger, and turns what it finds
 * into typed events for pool.c (engine-int.h lists them): a handshake, a
 * refused handshake, one result per call, EOF, a protocol violation, its
 * death.  It enforces the peer's protocol: every frame is length-checked,
 * a handshake comes once, a RESULT must announce calls that were sent and
 * not yet answered, and one wake-up reads a bounded amount, so no helper
 * can hold the loop.  Whatever the state, a helper is freed only once it
 * has been reaped, so no helper is ever left a zombie.
 *
 * A helper's standard output and error are a pipe proc.c reads too: each
 * line is escaped (vis_bytes), cut at PROC_ERR_LINE bytes, and logged
 * with its version and pid.  A version logs at most PROC_ERR_LINES lines
 * a second, then says how many it dropped; its helpers' pipes are read no
 * further than PROC_ERR_BYTES a second, so a helper writing without end
 * waits on its own writes, and the host's memory and time stay bounded.
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "engine-int.h"

#define PROC_READ_MAX	(16 * 1024)	/* per wake-up */
#define PROC_IOV	64		/* calls per sendmsg, at most */
#define PROC_ERR_READ	4096		/* stderr, per wake-up */
#define PROC_ERR_LINES	50		/* logged a second, per version */
#define PROC_ERR_BYTES	(1024 * 1024)	/* read a second, per version */
#define PROC_ERR_SHOWN	768		/* escaped, of a log line's 1024 */
#define PROC_ERR_DRAIN	(64 * 1024)	/* stderr read once it is reaped */

static void	proc_event(struct watch *, uint32_t);
static void	proc_err_event(struct watch *, uint32_t);
static void	proc_err_timer(void *);

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
	case PROC_LOST:
		return "lost";
	case PROC_KILLED:
		return "killed";
	case PROC_NSTATES:
		break;
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
 * SIGKILL the helper: through its pidfd, which names this process even
 * once it is reaped, or else through the zygote, which kills only a child
 * it has not reaped.
 */
static void
proc_sigkill(struct proc *p)
{
	if (!p->forked)
		p->kill_pending = true;	/* proc_forked delivers it */
	else if (p->pidfd != -1)
		(void)pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
	else
		zygote_kill_helper(p->engine->zygote, p->token, p->pid);
}

/*
 * Say how many lines of version m's stderr were dropped since it last
 * said so, if any were.
 */
static void
proc_err_dropped(struct module *m, struct engine *e)
{
	if (m->err_dropped == 0)
		return;
	engine_log(e, LOG_INFO, "%s %.12s: %llu lines of stderr dropped (at "
	    "most %d a second are logged)", m->label, m->hex,
	    (unsigned long long)m->err_dropped, PROC_ERR_LINES);
	m->err_dropped = 0;
}

/*
 * Start version m's next second of stderr if its last one is over, after
 * saying what that one dropped.
 */
static void
proc_err_second(struct module *m, struct engine *e, uint64_t now)
{
	if (now - m->err_window < 1000 * MS_NS)
		return;
	proc_err_dropped(m, e);
	m->err_window = now;
	m->err_lines = 0;
	m->err_bytes = 0;
}

/*
 * Log one line of a helper's stderr, len bytes (cut: the line went on),
 * escaped; past its version's lines for this second, count it instead,
 * to be said at the second's end.
 */
static void
proc_err_line(struct proc *p, const char *line, size_t len, bool cut)
{
	struct module	*m = p->module;
	char		 shown[PROC_ERR_SHOWN];
	size_t		 took;

	proc_err_second(m, p->engine, loop_now());
	if (m->err_lines >= PROC_ERR_LINES) {
		m->err_dropped++;
		loop_timer_at(engine_loop(p->engine), &p->errtimer,
		    m->err_window + 1000 * MS_NS);
		return;
	}
	m->err_lines++;
	took = vis_bytes(shown, sizeof shown, line, len);
	if (cut || took < len)
		engine_log(p->engine, LOG_INFO, "%s %.12s: helper %ld: stderr: "
		    "%s [cut at %zu bytes]", m->label, m->hex, (long)p->pid,
		    shown, took);
	else
		engine_log(p->engine, LOG_INFO, "%s %.12s: helper %ld: stderr: "
		    "%s", m->label, m->hex, (long)p->pid, shown);
}

/*
 * Take n bytes of a helper's stderr: each whole line is logged, a line
 * longer than PROC_ERR_LINE is logged cut and the rest of it skipped, and
 * what follows the last newline waits for more.
 */
static void
proc_err_bytes(struct proc *p, const char *buf, size_t n)
{
	const char	*nl;
	size_t		 seg, room;

	while (n > 0) {
		nl = memchr(buf, '\n', n);
		seg = nl != NULL ? (size_t)(nl - buf) : n;
		room = sizeof p->errline - p->errlen;
		if (p->errcut)
			;	/* the rest of a line logged cut */
		else if (seg > room) {
			memcpy(p->errline + p->errlen, buf, room);
			proc_err_line(p, p->errline, sizeof p->errline, true);
			p->errlen = 0;
			p->errcut = true;
		} else {
			memcpy(p->errline + p->errlen, buf, seg);
			p->errlen += seg;
			if (nl != NULL) {
				proc_err_line(p, p->errline, p->errlen, false);
				p->errlen = 0;
			}
		}
		if (nl == NULL)
			return;
		p->errcut = false;
		buf = nl + 1;
		n -= seg + 1;
	}
}

/*
 * Close the host's end of a helper's stderr, logging a last line that had
 * no newline.  A count of dropped lines may still wait on errtimer.
 */
static void
proc_err_close(struct proc *p)
{
	if (p->errw.fd == -1)
		return;
	if (p->errlen > 0 && !p->errcut)
		proc_err_line(p, p->errline, p->errlen, false);
	p->errlen = 0;
	if (!p->errpaused)
		engine_unwatch(p->engine, &p->errw);
	close(p->errw.fd);
	p->errw.fd = -1;
}

/*
 * Read at most max bytes of a helper's stderr, and no more than its
 * version may this second: past that, its pipe is left unread (the helper
 * waits on its writes) until the next second.  EOF closes it.
 */
static void
proc_err_read(struct proc *p, size_t max)
{
	struct module	*m = p->module;
	char		 buf[PROC_ERR_READ];
	size_t		 total = 0, want;
	ssize_t		 n;

	while (p->errw.fd != -1 && !p->errpaused && total < max) {
		proc_err_second(m, p->engine, loop_now());
		if (m->err_bytes >= PROC_ERR_BYTES) {
			engine_unwatch(p->engine, &p->errw);
			p->errpaused = true;
			loop_timer_at(engine_loop(p->engine), &p->errtimer,
			    m->err_window + 1000 * MS_NS);
			return;
		}
		want = max - total;
		if (want > sizeof buf)
			want = sizeof buf;
		if (want > PROC_ERR_BYTES - m->err_bytes)
			want = PROC_ERR_BYTES - m->err_bytes;
		n = read(p->errw.fd, buf, want);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			proc_err_close(p);
			return;
		}
		m->err_bytes += (size_t)n;
		total += (size_t)n;
		proc_err_bytes(p, buf, (size_t)n);
	}
}

/* A helper's stderr is readable: one wake-up reads PROC_ERR_READ. */
static void
proc_err_event(struct watch *w, uint32_t events)
{
	(void)events;
	proc_err_read(w->arg, PROC_ERR_READ);
}

/*
 * The second that errtimer waited for is over: say what the version
 * dropped, and read a paused pipe again.
 */
static void
proc_err_timer(void *arg)
{
	struct proc	*p = arg;

	proc_err_second(p->module, p->engine, loop_now());
	if (p->errpaused && p->errw.fd != -1) {
		p->errpaused = false;
		if (engine_watch(p->engine, &p->errw, EPOLLIN) == -1) {
			p->errpaused = true;	/* not watched */
			proc_err_close(p);
		}
	}
}

/*
 * Start a helper for module m: the zygote forks it, with its socket, the
 * version's image and a ledger of its own.  Its pid comes later, with the
 * zygote's answer (proc_forked, or proc_unborn if it could not fork).
 * Returns NULL with err set (and the engine broken, if the zygote is
 * gone).
 */
struct proc *
proc_spawn(struct engine *e, struct module *m, char *err, size_t errlen)
{
	struct helper_spec	 spec;
	struct proc		*p;
	bool			 gone;
	int			 sv[2], ep[2] = { -1, -1 };
	int			 fds[ZYGOTE_NFDS], lfd, rc;

	if (e->broken[0] != '\0') {
		strlcpy(err, e->broken, errlen);
		return NULL;
	}
	if ((p = calloc(1, sizeof *p)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((p->ledger = ledger_new(&lfd)) == NULL) {
		snprintf(err, errlen, "mapping a ledger: %s", strerror(errno));
		free(p);
		return NULL;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		close(lfd);
		ledger_free(p->ledger);
		free(p);
		return NULL;
	}
	/* Only the host's end is nonblocking: a helper's writes wait. */
	if (pipe2(ep, O_CLOEXEC) == -1 ||
	    fcntl(ep[0], F_SETFL, O_NONBLOCK) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		if (ep[0] != -1) {
			close(ep[0]);
			close(ep[1]);
		}
		close(sv[0]);
		close(sv[1]);
		close(lfd);
		ledger_free(p->ledger);
		free(p);
		return NULL;
	}
	pool_spec(m, &spec);
	fds[0] = sv[1];
	fds[1] = m->memfd;
	fds[2] = lfd;
	fds[3] = ep[1];
	p->token = ++e->nexttoken;
	p->pidfd = -1;
	rc = zygote_spawn(e->zygote, &spec, fds, p->token, &gone, err,
	    errlen);
	close(sv[1]);
	close(lfd);
	close(ep[1]);
	if (rc == -1) {
		/* Its EOF comes to engine.c, which ends its helpers. */
		if (gone)
			strlcpy(e->broken, err, sizeof e->broken);
		close(sv[0]);
		close(ep[0]);
		ledger_free(p->ledger);
		free(p);
		return NULL;
	}
	engine_zygote_arm(e);
	p->state = PROC_SPAWNING;
	TAILQ_INIT(&p->calls);
	p->engine = e;
	p->module = m;
	p->watch.fd = sv[0];
	p->watch.cb = proc_event;
	p->watch.arg = p;
	p->errw.fd = ep[0];
	p->errw.cb = proc_err_event;
	p->errw.arg = p;
	loop_timer_init(&p->errtimer, proc_err_timer, p);
	if (engine_watch(e, &p->errw, EPOLLIN) == -1 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1 ||
	    engine_watch(e, &p->watch, EPOLLIN) == -1) {
		snprintf(err, errlen, "watching helper: %s", strerror(errno));
		proc_err_close(p);
		close(sv[0]);
		p->watch.fd = -1;
		/* The child is ours now: kill it and let the reaper free it. */
		proc_sigkill(p);
		p->state = PROC_KILLED;
		p->settled = true;
		strlcpy(p->cause, err, sizeof p->cause);
	}
	return p;
}

/*
 * The zygote forked p: its pid, and its pidfd (-1: none here).  A kill
 * asked for meanwhile is sent now.
 */
void
proc_forked(struct proc *p, pid_t pid, int pidfd)
{
	p->forked = true;
	p->pid = pid;
	p->pidfd = pidfd;
	if (p->kill_pending)
		proc_sigkill(p);
}

/*
 * The zygote could not fork p (why says so): there is no process to
 * reap, so p ends here.
 */
void
proc_unborn(struct proc *p, const char *why)
{
	struct proc_ev	ev = { .type = PEV_UNBORN, .why = why };

	p->reaped = true;
	proc_close(p);
	proc_err_close(p);
	pool_event(p, &ev);
}

/* Close the host's end of the helper's socket. */
void
proc_close(struct proc *p)
{
	if (p->watch.fd == -1)
		return;
	engine_unwatch(p->engine, &p->watch);
	close(p->watch.fd);
	p->watch.fd = -1;
}

/* Free a reaped helper, saying what its version's stderr still owes. */
void
proc_free(struct proc *p)
{
	proc_err_close(p);
	if (p->errtimer.armed) {
		loop_timer_cancel(engine_loop(p->engine), &p->errtimer);
		proc_err_dropped(p->module, p->engine);
	}
	if (p->pidfd != -1)
		close(p->pidfd);
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
		if (!p->reaped)
			proc_sigkill(p);
		strlcpy(p->cause, cause, sizeof p->cause);
		p->state = PROC_KILLED;
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

/* True while calls wait to be written. */
bool
proc_pending_out(const struct proc *p)
{
	return p->watch.fd != -1 && !p->outdead && p->sent != p->seq;
}

/*
 * Write as much of the calls not yet written as the socket takes, straight
 * from each call's own frame (no copy): one sendmsg of up to PROC_IOV
 * frames, again while the socket takes it all.  True if any byte was
 * written.
 */
bool
proc_flush(struct proc *p)
{
	struct iovec	 iov[PROC_IOV];
	struct msghdr	 msg;
	struct call	*c, *first;
	ssize_t		 n;
	size_t		 left;
	bool		 progress = false;
	int		 niov;

	while (proc_pending_out(p)) {
		/* The first call not written in full; the FIFO is in order. */
		TAILQ_FOREACH(first, &p->calls, entry)
			if (!proc_sent(p, first))
				break;
		if (first == NULL)
			break;
		niov = 0;
		for (c = first; c != NULL && niov < PROC_IOV;
		    c = TAILQ_NEXT(c, entry)) {
			iov[niov].iov_base = c->frame +
			    (c == first ? p->outoff : 0);
			iov[niov].iov_len = c->len -
			    (c == first ? p->outoff : 0);
			niov++;
		}
		memset(&msg, 0, sizeof msg);
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)niov;
		n = sendmsg(p->watch.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!p->waiting_out) {
				engine_rewatch(p->engine, &p->watch,
				    EPOLLIN | EPOLLOUT);
				p->waiting_out = true;
			}
			return progress;
		}
		if (n == -1) {
			/* The helper is going; EOF or reaping says why. */
			p->outdead = true;
			break;
		}
		progress = true;
		/* The calls now written in full count as sent. */
		left = (size_t)n;
		for (c = first; c != NULL && left > 0;
		    c = TAILQ_NEXT(c, entry)) {
			if (left < c->len - p->outoff) {
				p->outoff += left;
				break;
			}
			left -= c->len - p->outoff;
			p->outoff = 0;
			p->sent = c->seq;
		}
	}
	if (p->waiting_out) {
		engine_rewatch(p->engine, &p->watch, EPOLLIN);
		p->waiting_out = false;
	}
	return progress;
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
	TAILQ_INSERT_TAIL(&p->calls, c, entry);
	p->ncalls++;
	p->state = PROC_BUSY;
}

/* Take call c out of the helper's FIFO. */
void
proc_unfifo(struct proc *p, struct call *c)
{
	TAILQ_REMOVE(&p->calls, c, entry);
	p->ncalls--;
	c->proc = NULL;
}

/* Report a protocol violation; the pool kills the helper. */
static void
proc_violation(struct proc *p, const char *what)
{
	struct proc_ev	ev = { .type = PEV_VIOLATION, .why = what };

	pool_event(p, &ev);
}

/*
 * True when a plugin's name, as its helper sent it, is one: not empty and
 * no control character.  The helper checks this too, but inside the
 * plugin's process, where the plugin can change the name after the check.
 */
static bool
proc_name_ok(const char *name)
{
	if (name[0] == '\0')
		return false;
	for (; *name != '\0'; name++)
		if ((unsigned char)*name < 0x20 || *name == 0x7f)
			return false;
	return true;
}

/*
 * Handle a HELLO frame: the handshake passed, or why it failed.  The
 * frame is length-checked, and everything in it the plugin controls (its
 * name, its init error, dlopen's message about it) is escaped here, by the
 * host, before it goes anywhere: a log line, the status, a call's detail.
 */
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
		[HELLO_SANDBOX] = "sandbox",
	};
	struct proc_ev	ev;
	char		name[PLUGIN_NAME_MAX], detail[DETAIL_MAX];
	char		shown[DETAIL_MAX], why[DETAIL_MAX + 64];
	uint8_t		status;
	uint32_t	abi, flags;

	status = wire_read_u8(r);
	abi = wire_read_u32(r);
	wire_read_str16(r, name, sizeof name);
	wire_read_str16(r, detail, sizeof detail);
	flags = wire_read_u32(r);
	if (!wire_reader_done(r) || status > HELLO_SANDBOX) {
		proc_violation(p, "malformed handshake");
		return;
	}
	memset(&ev, 0, sizeof ev);
	if (status != HELLO_OK) {
		vis_string(shown, sizeof shown, detail);
		if (kinds[status] == NULL)
			strlcpy(why, shown, sizeof why);
		else
			snprintf(why, sizeof why, "%s: %s", kinds[status],
			    shown);
		ev.type = PEV_REFUSED;
		ev.why = why;
	} else if (!proc_name_ok(name)) {
		vis_string(shown, sizeof shown, name);
		snprintf(why, sizeof why, "bad descriptor: plugin name \"%s\" "
		    "is empty or holds a control character", shown);
		ev.type = PEV_REFUSED;
		ev.why = why;
	} else {
		ev.type = PEV_HELLO;
		if (p->state == PROC_SPAWNING && p->module->name[0] == '\0') {
			vis_string(p->module->name, sizeof p->module->name,
			    name);
			p->module->abi = abi;
			p->module->flags = flags;
		}
	}
	pool_event(p, &ev);
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
 * are there.  Each becomes a PEV_RESULT; a missing or malformed one is a
 * violation, and taking stops there.
 */
static void
proc_take(struct proc *p, bool through, uint32_t seq)
{
	struct ledger_slot	 s;
	struct proc_ev		 ev;
	struct call		*c;
	const char		*bad;
	char			 what[64], detail[DETAIL_MAX];
	int			 rc;

	while ((c = TAILQ_FIRST(&p->calls)) != NULL && proc_sent(p, c)) {
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
			return;
		}
		proc_unfifo(p, c);
		p->answered = c->seq;
		memset(&ev, 0, sizeof ev);
		ev.type = PEV_RESULT;
		ev.call = c;
		ev.bad_request = s.status == RESULT_BAD_REQUEST;
		ev.decision = s.decision;
		ev.why = ev.bad_request ? detail : "";
		pool_event(p, &ev);
	}
}

/*
 * Collect whatever results the helper has written, announced or not: at a
 * deadline, or once it died.
 */
void
proc_collect(struct proc *p)
{
	proc_take(p, false, 0);
}

/*
 * Handle a RESULT frame: every call through seq has its result.  It must
 * announce something new, a call sent in full that no earlier frame
 * announced (the host may have read the ledger ahead of the frame), so a
 * helper sends at most one RESULT per call.
 */
static void
proc_result(struct proc *p, struct wire_reader *r)
{
	uint32_t	seq;

	seq = wire_read_u32(r);
	if (!wire_reader_done(r)) {
		proc_violation(p, "malformed result");
		return;
	}
	if ((int32_t)(seq - p->announced) <= 0 ||
	    (int32_t)(seq - p->sent) > 0) {
		proc_violation(p, "result for no call");
		return;
	}
	p->announced = seq;
	proc_take(p, true, seq);
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
 * Socket events from the helper.  One wake-up reads at most PROC_READ_MAX
 * bytes: the loop comes back for the rest after serving everyone else.
 */
static void
proc_event(struct watch *w, uint32_t events)
{
	struct proc	*p = w->arg;
	struct proc_ev	 ev = { .type = PEV_EOF };
	ssize_t		 n;
	size_t		 total = 0;

	if (events & EPOLLOUT)
		pool_flushed(p, proc_flush(p));
	if (w->fd == -1 || (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0)
		return;
	while (w->fd != -1 && total < PROC_READ_MAX) {
		n = read(w->fd, p->in + p->inlen, sizeof p->in - p->inlen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* Closed: it is dying, or its plugin closed it. */
			pool_event(p, &ev);
			return;
		}
		p->inlen += (size_t)n;
		total += (size_t)n;
		proc_frames(p);
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
 * The helper was reaped with wait status: after its last words, and the
 * last of its stderr (what the pipe holds, as far as its version may
 * this second), the pool hears of its death.
 */
void
proc_reaped(struct proc *p, int status)
{
	struct proc_ev	ev = { .type = PEV_REAPED, .wstatus = status };

	p->reaped = true;
	proc_hear_out(p);
	proc_close(p);
	proc_err_read(p, PROC_ERR_DRAIN);
	proc_err_close(p);
	pool_event(p, &ev);
}
