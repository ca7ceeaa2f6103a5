/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: what the host reads from a helper (proc.c): its
 * frames on a real socket and the ledger page it shares, scripted by the
 * input.
 *
 * proc.c is compiled into this file, so its static readers run as they
 * do in the engine; the pool, the zygote and the loop around it are
 * stubs here, which do what the pool does with each event (kill on a
 * violation or a refused or second handshake, close on EOF, free an
 * answered call).  The input is a script of steps: dispatch a call (a
 * valid body or input bytes), flush, raw bytes from the helper, a
 * well-formed RESULT or HELLO, a ledger slot written, a collect, EOF,
 * bytes on its stdout and stderr; then the helper is reaped.  Each event is checked: results come once
 * per call, in order, only for calls sent in full; a bad request is a
 * body the host itself finds malformed; whatever the plugin said reaches
 * the pool escaped (no control character), and so does every line logged
 * (stderr included); the input buffer stays in bounds.
 *
 * The engine around proc, the pool's state table included, is
 * fuzz-engine's.
 */

#include "proc.c"

#include <sys/mman.h>

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The script and what the stubs saw. */
static struct {
	const uint8_t	*p;
	size_t		 left;
	int		 helper;	/* the helper's end of the socket */
	int		 err;		/* ... of its stdout and stderr */
	uint32_t	 results;	/* seq of the last result */
	bool		 hello;
	bool		 killed;
} fz;

/* Take one byte of the script (0 once it is over). */
static uint8_t
fuzz_byte(void)
{
	if (fz.left == 0)
		return 0;
	fz.left--;
	return *fz.p++;
}

/* Take n bytes of the script, fewer if it ends. */
static const uint8_t *
fuzz_bytes(size_t *n)
{
	const uint8_t	*p = fz.p;

	if (*n > fz.left)
		*n = fz.left;
	fz.p += *n;
	fz.left -= *n;
	return p;
}

/* The engine's log: every line proc writes is escaped already. */
void
engine_log(struct engine *e, int prio, const char *fmt, ...)
{
	char	line[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	for (const char *s = line; *s != '\0'; s++)
		assert((unsigned char)*s >= 0x20 && *s != 0x7f);
}

/* The engine's loop: a real one, for proc's timers. */
struct loop *
engine_loop(struct engine *e)
{
	static struct loop	*loop;
	char			 err[128];

	if (loop == NULL && (loop = loop_new(err, sizeof err)) == NULL)
		abort();
	return loop;
}

/* The loop: a helper's socket is never really watched here. */
int
engine_watch(struct engine *e, struct watch *w, uint32_t events)
{
	return 0;
}

int
engine_rewatch(struct engine *e, struct watch *w, uint32_t events)
{
	return 0;
}

void
engine_unwatch(struct engine *e, struct watch *w)
{
}

/* The zygote: the helper is the other end of the socket, kept here. */
int
zygote_spawn(struct zygote *z, const struct helper_spec *spec,
    const int fds[ZYGOTE_NFDS], uint64_t token, bool *gone, char *err,
    size_t errlen)
{
	if ((fz.helper = dup(fds[0])) == -1 ||
	    (fz.err = dup(fds[3])) == -1 ||
	    fcntl(fz.err, F_SETFL, O_NONBLOCK) == -1)
		abort();
	*gone = false;
	return 0;
}

/* Its answers are the fuzzer's to give (proc_forked), so no deadline. */
void
engine_zygote_arm(struct engine *e)
{
}

/* Killing it through the zygote: noted. */
void
zygote_kill_helper(struct zygote *z, uint64_t token, pid_t pid)
{
	fz.killed = true;
}

/* A helper spec: nothing to say. */
void
pool_spec(const struct module *m, struct helper_spec *spec)
{
	memset(spec, 0, sizeof *spec);
}

void
pool_flushed(struct proc *p, bool progress)
{
}

/* True when s holds no control character: it was escaped. */
static bool
fuzz_escaped(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Free a call the pool is done with. */
static void
fuzz_free_call(struct call *c)
{
	free(c);
}

/* The pool's side: check each event, and do what the pool would. */
void
pool_event(struct proc *p, const struct proc_ev *ev)
{
	struct wire_call	wc;
	char			err[DETAIL_MAX];
	struct call		*c;

	assert(!p->reaped || ev->type == PEV_REAPED || ev->type == PEV_HELLO ||
	    ev->type == PEV_REFUSED || ev->type == PEV_RESULT ||
	    ev->type == PEV_VIOLATION);
	switch (ev->type) {
	case PEV_HELLO:
		assert(fuzz_escaped(p->module->name));
		if (fz.hello || p->state != PROC_SPAWNING) {
			proc_kill(p, "unexpected handshake");
			break;
		}
		fz.hello = true;
		p->state = PROC_IDLE;
		break;
	case PEV_REFUSED:
		assert(ev->why != NULL && fuzz_escaped(ev->why));
		proc_kill(p, ev->why);
		break;
	case PEV_RESULT:
		c = ev->call;
		assert(c != NULL && c->proc == NULL);
		assert(c->seq == fz.results + 1);
		assert((int32_t)(c->seq - p->sent) <= 0);
		fz.results = c->seq;
		if (ev->bad_request) {
			assert(ev->why != NULL && ev->why[0] != '\0');
			assert(wire_decode_call(c->frame + WIRE_HEADER + 4,
			    c->len - WIRE_HEADER - 4, &wc, err,
			    sizeof err) == -1);
		}
		fuzz_free_call(c);
		if (p->ncalls == 0 && p->state == PROC_BUSY)
			p->state = PROC_IDLE;
		break;
	case PEV_EOF:
		proc_close(p);
		if (p->state != PROC_KILLED)
			p->state = PROC_LOST;
		break;
	case PEV_VIOLATION:
		assert(ev->why != NULL && ev->why[0] != '\0');
		proc_kill(p, ev->why);
		break;
	case PEV_REAPED:
		while ((c = TAILQ_FIRST(&p->calls)) != NULL) {
			proc_unfifo(p, c);
			fuzz_free_call(c);
		}
		break;
	default:
		abort();
	}
}

/* A call as call_new makes one: a CALL frame around a body. */
static struct call *
fuzz_call(const void *body, size_t len)
{
	struct call	*c;
	size_t		 flen = WIRE_HEADER + 4 + len;

	if ((c = calloc(1, sizeof *c + flen)) == NULL)
		abort();
	c->state = CALL_SENT;
	c->len = flen;
	wire_put_u32(c->frame, (uint32_t)(flen - 4));
	c->frame[4] = WIRE_CALL;
	memcpy(c->frame + WIRE_HEADER + 4, body, len);
	return c;
}

/* Send bytes as the helper, then let proc read them. */
static void
fuzz_say(struct proc *p, const void *buf, size_t len)
{
	if (fz.helper == -1 || len == 0)
		return;
	(void)send(fz.helper, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (p->watch.fd != -1)
		proc_event(&p->watch, EPOLLIN);
}

/* Read and drop what the host wrote to the helper. */
static void
fuzz_drain(void)
{
	char	buf[4096];

	while (fz.helper != -1 && recv(fz.helper, buf, sizeof buf,
	    MSG_DONTWAIT) > 0)
		;
}

/* One step of the script. */
static void
fuzz_step(struct proc *p)
{
	static const unsigned char	 valid[] = {
		1, 0, 0, 0, 2, 0, 0, 0,			/* 1 field, 2 */
		1, 'a', 2, 5, 0, 0, 0, 0, 0, 0, 0,	/* a: 5 */
		1, 'x', 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 'y', 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 1, 't',
	};
	struct wire_buf			 b;
	struct ledger_slot		*s;
	const uint8_t			*q;
	size_t				 n;
	uint8_t				 op = fuzz_byte();

	switch (op % 11) {
	case 0:
		if (p->watch.fd == -1 || p->ncalls >= LEDGER_SLOTS)
			break;
		if (op & 0x80) {
			n = fuzz_byte();
			q = fuzz_bytes(&n);
			proc_dispatch(p, fuzz_call(q, n));
		} else
			proc_dispatch(p, fuzz_call(valid, sizeof valid));
		break;
	case 1:
		(void)proc_flush(p);
		if (op & 0x80)
			fuzz_drain();
		break;
	case 2:
		n = fuzz_byte();
		if (op & 0x80)
			n = n << 4;
		q = fuzz_bytes(&n);
		fuzz_say(p, q, n);
		break;
	case 3:
		/* A RESULT near what was sent. */
		wire_init(&b);
		wire_frame_begin(&b, WIRE_RESULT);
		wire_u32(&b, p->sent - (fuzz_byte() % 4) + (op >> 7));
		wire_frame_end(&b);
		fuzz_say(p, b.data, b.len);
		wire_free(&b);
		break;
	case 4:
		/* A slot for a recent call, possibly malformed. */
		s = &p->ledger->slot[(p->seq - fuzz_byte() % 4) % LEDGER_SLOTS];
		s->status = op & 0x80 ? fuzz_byte() : fuzz_byte() & 1;
		s->decision = (int32_t)((uint32_t)fuzz_byte() << 24 |
		    fuzz_byte());
		s->seq = p->seq - (fuzz_byte() % 4);
		break;
	case 5:
		/* A HELLO: status, ABI, name, detail, flags from the script. */
		wire_init(&b);
		wire_frame_begin(&b, WIRE_HELLO);
		wire_u8(&b, op & 0x80 ? fuzz_byte() % 8 : HELLO_OK);
		wire_u32(&b, ROUTE_ABI_VERSION);
		n = fuzz_byte() % 80;
		q = fuzz_bytes(&n);
		wire_str16(&b, (const char *)q, n);
		n = fuzz_byte();
		q = fuzz_bytes(&n);
		wire_str16(&b, (const char *)q, n);
		wire_u32(&b, fuzz_byte() & ROUTE_PLUGIN_NONDETERMINISTIC);
		wire_frame_end(&b);
		fuzz_say(p, b.data, b.len);
		wire_free(&b);
		break;
	case 6:
		proc_collect(p);
		break;
	case 7:
		if (fz.helper != -1) {
			close(fz.helper);
			fz.helper = -1;
		}
		if (p->watch.fd != -1)
			proc_event(&p->watch, EPOLLIN | EPOLLHUP);
		break;
	case 8:
		if (p->watch.fd != -1)
			proc_event(&p->watch, EPOLLOUT);
		break;
	case 9:
		if (p->state == PROC_IDLE && op & 0x80)
			proc_stop(p);
		break;
	case 10:
		/* The plugin writes to stderr (or ends it); the host reads. */
		n = fuzz_byte();
		if (op & 0x80)
			n = n << 4;
		q = fuzz_bytes(&n);
		if (fz.err != -1 && n > 0)
			(void)!write(fz.err, q, n);
		else if (fz.err != -1) {
			close(fz.err);
			fz.err = -1;
		}
		if (p->errw.fd != -1)
			proc_err_event(&p->errw, EPOLLIN);
		break;
	}
}

/* Check what must hold between steps. */
static void
fuzz_invariants(const struct proc *p)
{
	const struct call	*c;
	u_int			 n = 0;
	uint32_t		 prev = fz.results;

	assert(p->inlen <= sizeof p->in);
	TAILQ_FOREACH(c, &p->calls, entry) {
		assert(c->proc == p && c->seq == prev + 1);
		prev = c->seq;
		n++;
	}
	assert(n == p->ncalls);
	assert((int32_t)(p->sent - p->seq) <= 0);
	assert((int32_t)(p->announced - p->sent) <= 0);
	assert(p->state != PROC_KILLED || p->watch.fd == -1);
}

/* Run one script against a fresh helper. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct engine	*e;
	static struct module	 m;
	struct proc		*p;
	char			 err[DETAIL_MAX];

	if (e == NULL && (e = calloc(1, sizeof *e)) == NULL)
		abort();
	memset(&m, 0, sizeof m);
	m.memfd = -1;
	memset(&fz, 0, sizeof fz);
	fz.helper = fz.err = -1;
	fz.p = data;
	fz.left = size;
	if ((p = proc_spawn(e, &m, err, sizeof err)) == NULL)
		abort();
	proc_forked(p, 999999, -1);
	while (fz.left > 0) {
		fuzz_step(p);
		fuzz_invariants(p);
	}
	if (!p->reaped)
		proc_kill(p, "done");
	if (fz.helper != -1)
		close(fz.helper);
	if (fz.err != -1)
		close(fz.err);
	proc_reaped(p, SIGKILL);
	assert(p->ncalls == 0 && TAILQ_EMPTY(&p->calls));
	proc_free(p);
	return 0;
}
