/*
 * The host's side of a helper process: the device, not the policy.
 *
 * proc.c has the zygote start a helper (zygote.c), writes the calls the
 * pool sends it, reads its socket and its ledger, and turns what it finds
 * into typed events for pool.c (engine-int.h lists them): a handshake, a
 * refused handshake, one result per call, EOF, a protocol violation, its
 * death.  It enforces the peer's protocol: every frame is length-checked,
 * a handshake comes once, a RESULT must announce calls that were sent and
 * not yet answered, and one wake-up reads a bounded amount, so no helper
 * can hold the loop.  Whatever the state, a helper is freed only once it
 * has been reaped, so no helper is ever left a zombie.
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-int.h"

#define PROC_READ_MAX	(16 * 1024)	/* per wake-up */

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
	if (p->pidfd != -1)
		(void)pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
	else
		zygote_kill_helper(p->engine->zygote, p->token, p->pid);
}

/*
 * Start a helper for module m: the zygote forks it, with its socket, the
 * version's image and a ledger of its own.  Returns NULL with err set (and
 * the engine broken, if the zygote is gone).
 */
struct proc *
proc_spawn(struct engine *e, struct module *m, char *err, size_t errlen)
{
	struct helper_spec	 spec;
	struct proc		*p;
	bool			 gone;
	int			 sv[2], fds[3], lfd, rc;

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
	pool_spec(m, &spec);
	fds[0] = sv[1];
	fds[1] = m->memfd;
	fds[2] = lfd;
	p->token = ++e->nexttoken;
	rc = zygote_spawn(e->zygote, &spec, fds, p->token, &p->pid,
	    &p->pidfd, &gone, err, errlen);
	close(sv[1]);
	close(lfd);
	if (rc == -1) {
		/* Its EOF comes to engine.c, which ends its helpers. */
		if (gone)
			strlcpy(e->broken, err, sizeof e->broken);
		close(sv[0]);
		ledger_free(p->ledger);
		free(p);
		return NULL;
	}
	p->state = PROC_SPAWNING;
	TAILQ_INIT(&p->calls);
	wire_init(&p->out);
	p->out.max = SIZE_MAX / 2;
	p->engine = e;
	p->module = m;
	p->watch.fd = sv[0];
	p->watch.cb = proc_event;
	p->watch.arg = p;
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1 ||
	    engine_watch(e, &p->watch, EPOLLIN) == -1) {
		snprintf(err, errlen, "watching helper: %s", strerror(errno));
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

/* Close the host's end of the helper's socket. */
void
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
	if (p->pidfd != -1)
		close(p->pidfd);
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

/* After a partial write: the calls now written in full count as sent. */
static void
proc_advance_sent(struct proc *p)
{
	struct call	*c;

	TAILQ_FOREACH(c, &p->calls, entry) {
		if (proc_sent(p, c))
			continue;
		if (c->outend > p->outoff)
			break;
		p->sent = c->seq;
	}
}

/* True while frames wait to be written. */
bool
proc_pending_out(const struct proc *p)
{
	return p->outoff < p->out.len;
}

/*
 * Write as much of the pending frames as the socket takes.  True if any
 * byte was written.
 */
bool
proc_flush(struct proc *p)
{
	ssize_t	n;
	bool	progress = false;

	if (p->watch.fd == -1) {
		/* Closed: what is left was never written. */
		p->out.len = p->outoff = 0;
		return false;
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
			return progress;
		}
		if (n == -1) {
			/* The helper is going; EOF or reaping says why. */
			proc_advance_sent(p);
			p->out.len = p->outoff = 0;
			return progress;
		}
		p->outoff += (size_t)n;
		progress = true;
	}
	p->out.len = p->outoff = 0;
	p->sent = p->seq;
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
	wire_bytes(&p->out, c->frame, c->len);
	c->outend = p->out.len;
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
		engine_vis(shown, sizeof shown, detail);
		if (kinds[status] == NULL)
			strlcpy(why, shown, sizeof why);
		else
			snprintf(why, sizeof why, "%s: %s", kinds[status],
			    shown);
		ev.type = PEV_REFUSED;
		ev.why = why;
	} else if (!proc_name_ok(name)) {
		engine_vis(shown, sizeof shown, name);
		snprintf(why, sizeof why, "bad descriptor: plugin name \"%s\" "
		    "is empty or holds a control character", shown);
		ev.type = PEV_REFUSED;
		ev.why = why;
	} else {
		ev.type = PEV_HELLO;
		if (p->state == PROC_SPAWNING && p->module->name[0] == '\0') {
			engine_vis(p->module->name, sizeof p->module->name,
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
 * The helper was reaped with wait status: after its last words, the pool
 * hears of its death.
 */
void
proc_reaped(struct proc *p, int status)
{
	struct proc_ev	ev = { .type = PEV_REAPED, .wstatus = status };

	p->reaped = true;
	proc_hear_out(p);
	proc_close(p);
	pool_event(p, &ev);
}
