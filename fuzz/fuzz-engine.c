/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: the engine around proc.c (pool.c, call.c, module.c,
 * engine.c, the loop), with a fake zygote whose helpers are scripted by
 * the input.
 *
 * The zygote's five calls are replaced here, so no process is forked: a
 * "helper" is the far end of the socket the engine made for it and the
 * ledger it mapped.  The input is a script of steps: make a call (a valid
 * body or input bytes, a long or a 1-4 ms deadline), run a turn of the
 * engine, and, as one of the helpers spawned so far: read its calls,
 * send a HELLO (accepted, refused, with input bytes), raw bytes, a RESULT
 * near its last call, write a ledger slot, die (an exit status or a
 * signal from the input).  A helper whose socket the host closed exits
 * 0; one the host kills dies of SIGKILL.  After the script the engine is
 * freed, which answers and reaps everything.
 *
 * Checked: engine_check's invariants after every step (ENGINE_CHECKS);
 * every call answered exactly once, only from engine_run or engine_free;
 * an ok result's decision is ROUTE_NONE or a consumer's index; what a
 * result's detail says is escaped.  The clock is the real one: deadlines
 * are either far beyond the run or a few milliseconds.
 */

#include "config.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-int.h"

#define FUZZ_HELPERS	16	/* spawned per input, at most */
#define FUZZ_CALLS	256	/* made per input, at most */
#define FUZZ_ANSWERS	32	/* spawns unanswered, at most */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A scripted helper: the other end of its socket, and its ledger. */
struct fuzz_helper {
	bool		 alive;
	uint64_t	 token;
	int		 fd;
	struct ledger	*ledger;
	uint32_t	 seq;		/* of the last call it read */
	unsigned char	 in[8192];
	size_t		 inlen;
};

/* An exit the fake zygote reports. */
struct fuzz_exit {
	uint64_t	 token;
	int		 status;
	u_int		 late;		/* reported after this many looks */
};

/* An answer to a spawn: a pid, or 0 when it could not fork. */
struct fuzz_answer {
	uint64_t	 token;
	pid_t		 pid;
};

/* The fake zygote. */
struct zygote {
	int			 pipe[2];	/* readable while helpers live */
	int			 ctl[2];	/* readable: answers to look for */
	struct fuzz_helper	 h[FUZZ_HELPERS];
	u_int			 nh;
	struct fuzz_answer	 answers[FUZZ_ANSWERS];	/* in order */
	u_int			 nanswers;
	struct fuzz_exit	 exits[FUZZ_HELPERS];
	u_int			 nexits;
};

/* The script, and the calls made. */
static struct {
	const uint8_t	*p;
	size_t		 left;
	struct zygote	*z;
	u_int		 ncalls;
	u_int		 answered[FUZZ_CALLS];
	bool		 in_run;	/* inside engine_run or engine_free */
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

/*
 * A helper is gone: its socket closed, its exit queued, to be reported
 * after late looks (the zygote's report can come after the host read
 * what the helper wrote last).
 */
static void
fuzz_exit(struct zygote *z, struct fuzz_helper *h, int status, u_int late)
{
	if (!h->alive)
		return;
	h->alive = false;
	close(h->fd);
	h->fd = -1;
	munmap(h->ledger, sizeof *h->ledger);
	assert(z->nexits < nitems(z->exits));
	z->exits[z->nexits].token = h->token;
	z->exits[z->nexits].status = status;
	z->exits[z->nexits].late = late;
	z->nexits++;
}

/* A helper reads what the host wrote it: CALL frames; EOF: it exits 0. */
static void
fuzz_read(struct zygote *z, struct fuzz_helper *h)
{
	uint32_t	len;
	ssize_t		n;
	size_t		off;

	while (h->alive) {
		n = recv(h->fd, h->in + h->inlen, sizeof h->in - h->inlen,
		    MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			fuzz_exit(z, h, 0, 0);
			return;
		}
		h->inlen += (size_t)n;
		off = 0;
		while (h->inlen - off >= WIRE_HEADER + 4) {
			len = wire_get_u32(h->in + off);
			assert(h->in[off + 4] == WIRE_CALL);
			h->seq = wire_get_u32(h->in + off + WIRE_HEADER);
			if (len + 4 > h->inlen - off) {
				/* A long call: only its seq matters. */
				if (len + 4 > sizeof h->in)
					h->inlen = off + WIRE_HEADER + 4;
				break;
			}
			off += 4 + len;
		}
		memmove(h->in, h->in + off, h->inlen - off);
		h->inlen -= off;
		if (h->inlen == sizeof h->in)
			h->inlen = 0;	/* a part of a long call: dropped */
	}
}

/* The fake zygote's calls (zygote.c's interface). */
struct zygote *
zygote_start(char *err, size_t errlen)
{
	struct zygote	*z;

	if ((z = calloc(1, sizeof *z)) == NULL ||
	    pipe2(z->pipe, O_NONBLOCK | O_CLOEXEC) == -1 ||
	    pipe2(z->ctl, O_NONBLOCK | O_CLOEXEC) == -1)
		abort();
	/* Always readable: the engine asks for answers and exits every turn. */
	if (write(z->pipe[1], "x", 1) != 1 || write(z->ctl[1], "x", 1) != 1)
		abort();
	fz.z = z;
	return z;
}

void
zygote_free(struct zygote *z)
{
	if (z == NULL)
		return;
	for (u_int i = 0; i < z->nh; i++)
		fuzz_exit(z, &z->h[i], 0, 0);
	close(z->pipe[0]);
	close(z->pipe[1]);
	close(z->ctl[0]);
	close(z->ctl[1]);
	free(z);
	fz.z = NULL;
}

const char *
zygote_what(const struct zygote *z)
{
	return "a fake zygote";
}

int
zygote_exits_fd(const struct zygote *z)
{
	return z->pipe[0];
}

int
zygote_ctl_fd(const struct zygote *z)
{
	return z->ctl[0];
}

/*
 * A spawn is answered at the engine's next look: forked, or, past
 * FUZZ_HELPERS, not (as a zygote whose fork failed answers).  Past
 * FUZZ_ANSWERS unanswered, the request itself fails.
 */
int
zygote_spawn(struct zygote *z, const struct helper_spec *spec,
    const int fds[ZYGOTE_NFDS], uint64_t token, bool *gone, char *err,
    size_t errlen)
{
	struct fuzz_helper	*h;

	*gone = false;
	if (z->nanswers == FUZZ_ANSWERS) {
		snprintf(err, errlen, "the zygote is gone (Broken pipe)");
		return -1;
	}
	z->answers[z->nanswers].token = token;
	z->answers[z->nanswers].pid = 0;
	if (z->nh == FUZZ_HELPERS) {
		z->nanswers++;
		return 0;
	}
	z->answers[z->nanswers++].pid = 100000 + (pid_t)z->nh;
	h = &z->h[z->nh];
	memset(h, 0, sizeof *h);
	if ((h->fd = dup(fds[0])) == -1)
		abort();
	h->ledger = mmap(NULL, sizeof *h->ledger, PROT_READ | PROT_WRITE,
	    MAP_SHARED, fds[2], 0);
	if (h->ledger == MAP_FAILED)
		abort();
	h->alive = true;
	h->token = token;
	z->nh++;
	return 0;
}

int
zygote_answer(struct zygote *z, uint64_t *token, pid_t *pid, int *pidfd,
    char *why, size_t whylen)
{
	if (z->nanswers == 0)
		return 0;
	*token = z->answers[0].token;
	*pid = z->answers[0].pid;
	*pidfd = -1;
	snprintf(why, whylen, "%s", *pid == 0 ? "zygote: fork: Resource "
	    "temporarily unavailable" : "");
	memmove(z->answers, z->answers + 1, --z->nanswers * sizeof
	    *z->answers);
	return 1;
}

/* Answers come at once: never late. */
uint64_t
zygote_deadline(const struct zygote *z)
{
	return 0;
}

void
zygote_abandon(struct zygote *z)
{
	abort();	/* the engine never gives up on this one */
}

void
zygote_kill_helper(struct zygote *z, uint64_t token, pid_t pid)
{
	for (u_int i = 0; i < z->nh; i++)
		if (z->h[i].token == token)
			fuzz_exit(z, &z->h[i], SIGKILL, 0);
}

int
zygote_exited(struct zygote *z, uint64_t *token, int *status)
{
	for (u_int i = 0; i < z->nh; i++)
		fuzz_read(z, &z->h[i]);
	for (u_int i = 0; i < z->nexits; i++) {
		if (z->exits[i].late > 0) {
			z->exits[i].late--;
			continue;
		}
		*token = z->exits[i].token;
		*status = z->exits[i].status;
		memmove(z->exits + i, z->exits + i + 1,
		    (--z->nexits - i) * sizeof *z->exits);
		return 1;
	}
	return 0;
}

/* A call's answer: once, from the engine's turn, well-formed. */
static void
fuzz_done(const struct result *r, void *arg)
{
	u_int	i = (u_int)(uintptr_t)arg;

	assert(fz.in_run);
	assert(i < fz.ncalls && fz.answered[i] == 0);
	fz.answered[i]++;
	assert(r->status <= ST_LAST);
	assert(strlen(r->detail) < sizeof r->detail);
	for (const char *s = r->detail; *s != '\0'; s++)
		assert((unsigned char)*s >= 0x20 && *s != 0x7f);
	if (r->status == ST_OK)
		assert(r->decision == ROUTE_NONE ||
		    (r->decision >= 0 && r->decision < 2));
}

/* Send bytes as helper h. */
static void
fuzz_say(struct fuzz_helper *h, const void *p, size_t len)
{
	if (h->alive && len > 0)
		(void)send(h->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* One step of a helper. */
static void
fuzz_helper_step(struct zygote *z, struct fuzz_helper *h, uint8_t op)
{
	struct ledger_slot	*s;
	struct wire_buf		 b;
	const uint8_t		*q;
	size_t			 n;
	uint8_t			 st;

	fuzz_read(z, h);
	if (!h->alive)
		return;
	wire_init(&b);
	switch (op % 7) {
	case 0:
		/* A HELLO: accepted, or refused with what the input says. */
		st = op & 0x80 ? fuzz_byte() % 8 : HELLO_OK;
		wire_frame_begin(&b, WIRE_HELLO);
		wire_u8(&b, st);
		wire_u32(&b, ROUTE_ABI_VERSION);
		wire_str16(&b, "fuzz", 4);
		n = st == HELLO_OK ? 0 : fuzz_byte();
		q = fuzz_bytes(&n);
		wire_str16(&b, (const char *)q, n);
		wire_frame_end(&b);
		fuzz_say(h, b.data, b.len);
		break;
	case 1:
		/* Answer its calls through the last one read, or near it. */
		n = op & 0x80 ? fuzz_byte() % 3 : 0;
		for (uint32_t seq = h->seq - (uint32_t)n - 3;
		    seq != h->seq - (uint32_t)n + 1; seq++)
			if (seq != 0)
				ledger_put(h->ledger, seq, 0, (int32_t)(seq % 2));
		wire_frame_begin(&b, WIRE_RESULT);
		wire_u32(&b, h->seq - (uint32_t)n);
		wire_frame_end(&b);
		fuzz_say(h, b.data, b.len);
		break;
	case 2:
		/* A slot, as the input says. */
		s = &h->ledger->slot[fuzz_byte() % LEDGER_SLOTS];
		s->status = fuzz_byte() % 3;
		s->decision = (int8_t)fuzz_byte();
		s->seq = h->seq - fuzz_byte() % 4;
		break;
	case 3:
		/* Raw bytes. */
		n = fuzz_byte();
		q = fuzz_bytes(&n);
		fuzz_say(h, q, n);
		break;
	case 4:
		/* A RESULT frame alone. */
		wire_frame_begin(&b, WIRE_RESULT);
		wire_u32(&b, h->seq - fuzz_byte() % 4 + (op >> 7));
		wire_frame_end(&b);
		fuzz_say(h, b.data, b.len);
		break;
	case 5:
		/* It dies: an exit code or a signal, reported now or late. */
		st = fuzz_byte();
		fuzz_exit(z, h, st & 1 ? (st >> 1) % 31 + 1 : (st >> 1) << 8,
		    op >> 7);
		break;
	case 6:
		/* It writes the sandbox's note of a blocked system call. */
		h->ledger->blocked = fuzz_byte();
		break;
	}
	wire_free(&b);
}

/* One step of the script. */
static void
fuzz_step(struct engine *e, struct module *m)
{
	static const unsigned char	 valid[] = {
		1, 0, 0, 0, 2, 0, 0, 0,
		1, 'a', 2, 5, 0, 0, 0, 0, 0, 0, 0,
		1, 'x', 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 'y', 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 1, 't',
	};
	struct zygote			*z = fz.z;
	struct fuzz_helper		*h;
	const uint8_t			*q;
	size_t				 n;
	uint8_t				 op = fuzz_byte();
	int				 timeout;

	switch (op % 4) {
	case 0:
		if (fz.ncalls == FUZZ_CALLS)
			break;
		timeout = op & 0x40 ? 1 + (op >> 2) % 4 : 60000;
		if (op & 0x80) {
			n = fuzz_byte();
			q = fuzz_bytes(&n);
		} else {
			q = valid;
			n = sizeof valid;
		}
		if (engine_call(e, m, q, n, timeout, fuzz_done,
		    (void *)(uintptr_t)fz.ncalls) == 0)
			fz.ncalls++;
		break;
	case 1:
		fz.in_run = true;
		if (engine_run(e, 0) == -1)
			abort();
		fz.in_run = false;
		break;
	default:
		if (z->nh > 0) {
			/* The helper, then its step: in that order. */
			h = &z->h[fuzz_byte() % z->nh];
			fuzz_helper_step(z, h, fuzz_byte());
		}
		break;
	}
}

/* Run one script against a fresh engine. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct engine_config	 ec;
	struct engine		*e;
	struct module		*m;
	char			 err[512];
	int			 fd;

	memset(&fz, 0, sizeof fz);
	fz.p = data;
	fz.left = size;
	engine_defaults(&ec);
	ec.helpers = 2;
	ec.depth = 4;
	ec.helper_user = NULL;
	if ((e = engine_new(&ec, err, sizeof err)) == NULL) {
		fprintf(stderr, "fuzz-engine: %s\n", err);
		abort();
	}
	if ((fd = memfd_create("plugin.so", MFD_CLOEXEC)) == -1 ||
	    write(fd, "\177ELF", 4) != 4 || lseek(fd, 0, SEEK_SET) == -1)
		abort();
	if (engine_load_fd(e, fd, "fuzz.so", NULL, NULL, 0, &m, err,
	    sizeof err) == -1) {
		fprintf(stderr, "fuzz-engine: %s\n", err);
		abort();
	}
	close(fd);
	while (fz.left > 0) {
		fuzz_step(e, m);
		engine_check(e);
	}
	engine_release(e, m);
	fz.in_run = true;
	engine_free(e);
	fz.in_run = false;
	for (u_int i = 0; i < fz.ncalls; i++)
		assert(fz.answered[i] == 1);
	return 0;
}
