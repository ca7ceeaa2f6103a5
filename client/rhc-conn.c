/* SPDX-License-Identifier: ISC */
/*
 * A connection to route-host serve, and the life of each call on it.
 *
 * The connection is a small state machine:
 *
 *	       rhc_conn_connect              rhc_conn_welcome
 *	DOWN --------------------> HELLO ---------------------> UP
 *	 ^                          |                            |
 *	 +---- rhc_conn_lose -------+----------------------------+
 *	       (EOF, an error, an ERROR frame, a frame that breaks the
 *	       protocol: close, and try again after a jittered back-off)
 *
 * A call is queued (not written), framed (in the output buffer, not yet
 * all sent), then in flight (sent, unanswered), then answered:
 *
 *	QUEUED --rhc_conn_fill--> FRAMED --rhc_conn_sent--> IN FLIGHT
 *	   ^                        |                          |
 *	   +---- connection lost ---+                          | RESULT
 *	   +---- lost, or shutting_down, with a try left ------+--> answered
 *
 * A call waits in the queue for at most wait_ms (then it is answered
 * connection_lost, or overloaded while the daemon's window stayed full).
 * A call lost in flight is sent again once, unless the connection is
 * at-most-once; one answered shutting_down goes to the next daemon (the
 * connection that said it writes nothing more, and is made again once
 * the daemon closes it).
 * Frames are coalesced: submitting only frames a call, and the caller's
 * loop writes them all when the descriptor is writable.  Results reach
 * their callbacks from rhc_conn_process only (and rhc_conn_free, which
 * cancels what is left): a callback may submit, not process or free.
 */

#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "route-host.h"
#include "route-host/client.h"
#include "rhc-int.h"

#define RHC_TRIES_MAX		4	/* writes of one call, at most */
#define RHC_IN_MAX		(64u << 20)	/* a frame from the daemon */
#define RHC_READ		65536	/* bytes read at a time */

enum rhc_state {
	RHC_DOWN,		/* no socket: connect at retry_at */
	RHC_HELLO,		/* HELLO sent, WELCOME awaited */
	RHC_UP,			/* calls flow */
};

/* One call, from submit to its callback. */
struct rhc_call {
	TAILQ_ENTRY(rhc_call)	 entry;		/* queue, retryq or framed */
	RB_ENTRY(rhc_call)	 node;		/* inflight, by id */
	uint64_t		 id;		/* of its last write */
	uint64_t		 queued_at;	/* ns, when it last waited */
	uint64_t		 frame_end;	/* framed: where its frame ends */
	uint32_t		 timeout_ms;
	unsigned int		 tries;		/* writes sent in full */
	rhc_result_cb		 cb;
	void			*cookie;
	char			 channel[PROTO_CHANNEL_MAX + 1];
	size_t			 len;
	unsigned char		 body[];	/* the call body */
};
TAILQ_HEAD(rhc_calls, rhc_call);
RB_HEAD(rhc_inflight, rhc_call);

struct rhc_conn {
	char			 path[sizeof ((struct sockaddr_un *)0)->sun_path];
	struct rhc_options	 opts;
	enum rhc_state		 state;
	int			 fd;
	uint64_t		 retry_at;	/* DOWN: connect from then on */
	uint64_t		 hello_at;	/* HELLO: sent then */
	unsigned int		 backoff_ms;	/* the next back-off */
	uint16_t		 version;	/* the protocol, from WELCOME */
	uint32_t		 window;	/* calls in flight, at most */
	uint32_t		 max_frame;	/* a frame we may send */
	uint64_t		 next_id;
	bool			 draining;	/* it said shutting_down */

	struct rhc_calls	 retryq;	/* lost or shut down: first */
	struct rhc_calls	 queue;		/* never written */
	struct rhc_calls	 framed;	/* in out, not all sent */
	struct rhc_inflight	 inflight;	/* framed and sent */
	size_t			 ninflight;	/* framed + sent */
	size_t			 npending;	/* every call not answered */

	struct wire_buf		 out;		/* frames to send */
	struct wire_buf		 scratch;	/* a body being encoded */
	uint64_t		 out_base;	/* stream offset of out[0] */
	unsigned char		*in;		/* bytes read */
	size_t			 inlen;
	size_t			 insize;

	/* rhc_conn_status: the reply awaited. */
	uint64_t		 status_id;
	char			*status_json;

	/* rhc_conn_call: its result, kept until the next. */
	struct rhc_result	 call_result;
	bool			 call_done;
	char			 call_detail[DETAIL_MAX];

	bool			 busy;		/* in process: no re-entry */
	bool			 freeing;	/* in free: no new call */
	char			 error[RHC_ERROR_MAX];
};

/* Order calls in flight by id. */
static int
rhc_call_cmp(struct rhc_call *a, struct rhc_call *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}
RB_GENERATE_STATIC(rhc_inflight, rhc_call, node, rhc_call_cmp);

static void	rhc_conn_lose(struct rhc_conn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* Nanoseconds on the monotonic clock. */
static uint64_t
rhc_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The protocol name of a status ("ok", "crash_loop", ...). */
const char *
rhc_status_name(enum rhc_status st)
{
	static const char *const names[] = {
		"ok", "crashed", "timed_out", "spawn_failed", "bad_decision",
		"bad_request", "shutting_down", "no_such_channel",
		"overloaded", "crash_loop",
	};

	if ((unsigned int)st < nitems(names))
		return names[st];
	if (st == RHC_CONNECTION_LOST)
		return "connection_lost";
	if (st == RHC_CANCELLED)
		return "cancelled";
	return "unknown";
}

/* A version as 64 hexadecimal digits and a NUL, into out[65]. */
void
rhc_version_hex(const unsigned char *version, char *out)
{
	static const char	hex[] = "0123456789abcdef";

	for (size_t i = 0; i < RHC_VERSION_LEN; i++) {
		out[2 * i] = hex[version[i] >> 4];
		out[2 * i + 1] = hex[version[i] & 0xf];
	}
	out[2 * RHC_VERSION_LEN] = '\0';
}

/* The defaults: retry once, back off 10 ms to 1 s, wait 5 s, 65536 calls. */
void
rhc_options_init(struct rhc_options *o)
{
	memset(o, 0, sizeof *o);
	o->reconnect_min_ms = 10;
	o->reconnect_max_ms = 1000;
	o->wait_ms = 5000;
	o->max_pending = 65536;
}

/* Note why the connection is not up, for rhc_conn_error. */
static void __attribute__((format(printf, 2, 3)))
rhc_conn_note(struct rhc_conn *c, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof c->error, fmt, ap);
	va_end(ap);
}

/* Hand call its result, and free it. */
static void
rhc_conn_answer(struct rhc_conn *c, struct rhc_call *call,
    enum rhc_status st, int decision, const unsigned char *version,
    const char *detail)
{
	struct rhc_result	r;

	memset(&r, 0, sizeof r);
	r.status = st;
	r.decision = st == RHC_OK ? decision : RHC_DECISION_NONE;
	if (version != NULL)
		memcpy(r.version, version, RHC_VERSION_LEN);
	r.detail = detail != NULL ? detail : "";
	r.tries = call->tries;
	c->npending--;
	if (call->cb != NULL)
		call->cb(call->cookie, &r);
	free(call);
}

/* Put call back to be written again, before calls never written. */
static void
rhc_conn_retry(struct rhc_conn *c, struct rhc_call *call)
{
	call->queued_at = rhc_now();
	TAILQ_INSERT_TAIL(&c->retryq, call, entry);
}

/*
 * Frame what may go now, up to the daemon's window: calls to retry
 * first, then new ones.  Nothing is sent here.
 */
static void
rhc_conn_fill(struct rhc_conn *c)
{
	struct rhc_call	*call;
	size_t		 start;

	if (c->state != RHC_UP || c->draining)
		return;
	while (c->ninflight < c->window &&
	    ((call = TAILQ_FIRST(&c->retryq)) != NULL ||
	    (call = TAILQ_FIRST(&c->queue)) != NULL)) {
		if (call == TAILQ_FIRST(&c->retryq))
			TAILQ_REMOVE(&c->retryq, call, entry);
		else
			TAILQ_REMOVE(&c->queue, call, entry);
		call->id = c->next_id++;
		start = c->out.len;
		proto_route(&c->out, call->id, call->timeout_ms, call->channel,
		    call->body, call->len);
		if (c->out.failed) {
			/* Out of memory: it waits for the next turn. */
			c->out.failed = false;
			c->out.len = start;
			TAILQ_INSERT_HEAD(&c->retryq, call, entry);
			return;
		}
		call->frame_end = c->out_base + c->out.len;
		TAILQ_INSERT_TAIL(&c->framed, call, entry);
		c->ninflight++;
	}
}

/* The stream reached offset sent: calls framed before it are in flight. */
static void
rhc_conn_sent(struct rhc_conn *c, uint64_t sent)
{
	struct rhc_call	*call;

	while ((call = TAILQ_FIRST(&c->framed)) != NULL &&
	    call->frame_end <= sent) {
		TAILQ_REMOVE(&c->framed, call, entry);
		call->tries++;
		RB_INSERT(rhc_inflight, &c->inflight, call);
	}
}

/* Send what out holds, as far as the socket takes it; -1 if it broke. */
static int
rhc_conn_flush(struct rhc_conn *c)
{
	size_t	off = 0;
	ssize_t	n;

	while (off < c->out.len) {
		n = send(c->fd, c->out.data + off, c->out.len - off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n == -1) {
			rhc_conn_lose(c, "send: %s", strerror(errno));
			return -1;
		}
		off += (size_t)n;
	}
	if (off > 0) {
		memmove(c->out.data, c->out.data + off, c->out.len - off);
		c->out.len -= off;
		c->out_base += off;
		rhc_conn_sent(c, c->out_base);
	}
	return 0;
}

/* Try again after the back-off (jittered: half of it to all of it). */
static void
rhc_conn_backoff(struct rhc_conn *c)
{
	unsigned int	b = c->backoff_ms;

	c->retry_at = rhc_now() + (uint64_t)(b / 2 +
	    arc4random_uniform(b / 2 + 1)) * 1000000;
	if (c->backoff_ms < c->opts.reconnect_max_ms / 2)
		c->backoff_ms *= 2;
	else
		c->backoff_ms = c->opts.reconnect_max_ms;
}

/*
 * DOWN -> HELLO: connect (never blocking: a Unix socket connects at once
 * or not at all) and frame HELLO.  On failure, stay DOWN until the next
 * back-off passed.
 */
static void
rhc_conn_connect(struct rhc_conn *c)
{
	struct sockaddr_un	sun;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, c->path, sizeof sun.sun_path);
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1 ||
	    connect(c->fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		rhc_conn_note(c, "%s: %s", c->path, strerror(errno));
		if (c->fd != -1)
			close(c->fd);
		c->fd = -1;
		rhc_conn_backoff(c);
		return;
	}
	c->state = RHC_HELLO;
	c->hello_at = rhc_now();
	c->out.len = 0;
	c->out.failed = false;
	c->out_base = 0;
	c->inlen = 0;
	proto_hello(&c->out);
}

/* HELLO -> UP: the daemon's version and limits; -1 if it makes no sense. */
static int
rhc_conn_welcome(struct rhc_conn *c, const unsigned char *p, size_t len)
{
	struct wire_reader	r;

	wire_reader_init(&r, p, len);
	c->version = wire_read_u16(&r);
	c->max_frame = wire_read_u32(&r);
	c->window = wire_read_u32(&r);
	(void)wire_read_bytes(&r, wire_read_u8(&r));
	if (!wire_reader_done(&r) || c->version < PROTO_VERSION_MIN ||
	    c->version > PROTO_VERSION || c->window == 0) {
		rhc_conn_lose(c, "%s: not a route-host daemon (a bad WELCOME)",
		    c->path);
		return -1;
	}
	c->state = RHC_UP;
	c->draining = false;
	c->backoff_ms = c->opts.reconnect_min_ms;
	c->error[0] = '\0';
	return 0;
}

/*
 * HELLO or UP -> DOWN: close; calls framed but not all sent wait again,
 * uncounted; calls in flight go again once (not at most once), or end
 * connection_lost.  The next connection is tried after a back-off.
 */
static void
rhc_conn_lose(struct rhc_conn *c, const char *fmt, ...)
{
	struct rhc_call	*call, *prev;
	char		 why[RHC_ERROR_MAX], detail[RHC_ERROR_MAX + 64];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	strlcpy(c->error, why, sizeof c->error);
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->state = RHC_DOWN;
	c->out.len = 0;
	c->inlen = 0;
	c->status_id = 0;
	rhc_conn_backoff(c);
	/* Framed, never all sent: first in line, in their order. */
	while ((call = TAILQ_LAST(&c->framed, rhc_calls)) != NULL) {
		TAILQ_REMOVE(&c->framed, call, entry);
		call->queued_at = rhc_now();
		TAILQ_INSERT_HEAD(&c->retryq, call, entry);
		c->ninflight--;
	}
	snprintf(detail, sizeof detail, "the connection to the daemon was "
	    "lost with the call in flight: %s", why);
	for (call = RB_MAX(rhc_inflight, &c->inflight); call != NULL;
	    call = prev) {
		prev = RB_PREV(rhc_inflight, &c->inflight, call);
		RB_REMOVE(rhc_inflight, &c->inflight, call);
		c->ninflight--;
		if (c->opts.at_most_once || call->tries >= 2)
			rhc_conn_answer(c, call, RHC_CONNECTION_LOST,
			    RHC_DECISION_NONE, NULL, detail);
		else {
			call->queued_at = rhc_now();
			TAILQ_INSERT_HEAD(&c->retryq, call, entry);
		}
	}
}

/* A RESULT frame: answer its call; -1 if it breaks the protocol. */
static int
rhc_conn_result(struct rhc_conn *c, const unsigned char *p, size_t len)
{
	struct proto_result	 pr;
	struct rhc_call		 key, *call;

	if (proto_decode_result(p, len, &pr) == -1) {
		rhc_conn_lose(c, "%s: the daemon sent a bad RESULT", c->path);
		return -1;
	}
	key.id = pr.id;
	if ((call = RB_FIND(rhc_inflight, &c->inflight, &key)) == NULL) {
		rhc_conn_lose(c, "%s: the daemon answered call %llu, which "
		    "is not in flight", c->path, (unsigned long long)pr.id);
		return -1;
	}
	RB_REMOVE(rhc_inflight, &c->inflight, call);
	c->ninflight--;
	if (pr.status == ST_SHUTTING_DOWN && call->tries < RHC_TRIES_MAX) {
		/* For the next daemon: this one writes nothing more. */
		c->draining = true;
		rhc_conn_retry(c, call);
		return 0;
	}
	rhc_conn_answer(c, call, (enum rhc_status)pr.status, pr.decision,
	    pr.version, pr.detail);
	return 0;
}

/* A STATUS_REPLY frame: keep the JSON rhc_conn_status awaits. */
static int
rhc_conn_status_reply(struct rhc_conn *c, const unsigned char *p,
    size_t len)
{
	struct wire_reader	 r;
	const void		*json;
	uint64_t		 id;
	uint32_t		 n;

	wire_reader_init(&r, p, len);
	id = wire_read_u64(&r);
	n = wire_read_u32(&r);
	json = wire_read_bytes(&r, n);
	if (!wire_reader_done(&r) || id != c->status_id || id == 0) {
		rhc_conn_lose(c, "%s: the daemon sent a bad STATUS_REPLY",
		    c->path);
		return -1;
	}
	c->status_id = 0;
	free(c->status_json);
	if ((c->status_json = malloc((size_t)n + 1)) != NULL) {
		memcpy(c->status_json, json, n);
		c->status_json[n] = '\0';
	}
	return 0;
}

/* Take every whole frame read so far; -1 once the connection is lost. */
static int
rhc_conn_frames(struct rhc_conn *c)
{
	struct wire_reader	 r;
	char			 why[DETAIL_MAX];
	size_t			 off = 0;
	uint32_t		 flen;
	uint8_t			 type;
	int			 rc = 0;

	while (rc == 0 && c->inlen - off >= 4) {
		flen = wire_get_u32(c->in + off);
		if (flen < 1 || flen > RHC_IN_MAX) {
			rhc_conn_lose(c, "%s: the daemon sent a frame of %u "
			    "bytes", c->path, flen);
			return -1;
		}
		if (c->inlen - off - 4 < flen)
			break;
		type = c->in[off + 4];
		switch (type) {
		case PROTO_WELCOME:
			rc = c->state == RHC_HELLO ? rhc_conn_welcome(c,
			    c->in + off + 5, flen - 1) : -1;
			break;
		case PROTO_RESULT:
			rc = c->state == RHC_UP ? rhc_conn_result(c,
			    c->in + off + 5, flen - 1) : -1;
			break;
		case PROTO_STATUS_REPLY:
			rc = c->state == RHC_UP ? rhc_conn_status_reply(c,
			    c->in + off + 5, flen - 1) : -1;
			break;
		case PROTO_ERROR:
			wire_reader_init(&r, c->in + off + 5, flen - 1);
			wire_read_str16(&r, why, sizeof why);
			rhc_conn_lose(c, "%s: the daemon closed the "
			    "connection: %s", c->path, why);
			return -1;
		default:
			rc = -1;
			break;
		}
		if (rc == -1) {
			if (c->state != RHC_DOWN)
				rhc_conn_lose(c, "%s: the daemon sent a frame "
				    "of type 0x%02x out of place", c->path,
				    type);
			return -1;
		}
		off += 4 + flen;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= off;
	}
	return 0;
}

/* Read what the socket has; -1 once the connection is lost. */
static int
rhc_conn_read(struct rhc_conn *c)
{
	unsigned char	*p;
	ssize_t		 n;

	for (;;) {
		if (c->insize - c->inlen < RHC_READ) {
			if (c->insize >= RHC_IN_MAX + RHC_READ) {
				rhc_conn_lose(c, "%s: the daemon sent too "
				    "much at once", c->path);
				return -1;
			}
			if ((p = realloc(c->in, c->insize + RHC_READ)) ==
			    NULL)
				return 0;	/* again next turn */
			c->in = p;
			c->insize += RHC_READ;
		}
		n = recv(c->fd, c->in + c->inlen, c->insize - c->inlen,
		    MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			rhc_conn_lose(c, "%s: %s", c->path, n == 0 ?
			    "the daemon closed the connection" :
			    strerror(errno));
			return -1;
		}
		c->inlen += (size_t)n;
		if (rhc_conn_frames(c) == -1)
			return -1;
	}
}

/*
 * End what waited too long for a daemon (or for room in its window):
 * connection_lost, or overloaded while connected.
 */
static void
rhc_conn_expire(struct rhc_conn *c)
{
	struct rhc_calls	*qs[] = { &c->retryq, &c->queue };
	struct rhc_call		*call;
	uint64_t		 now = rhc_now(), wait;
	char			 detail[RHC_ERROR_MAX + 96];

	wait = (uint64_t)c->opts.wait_ms * 1000000;
	if (c->state == RHC_HELLO && now - c->hello_at >= wait)
		rhc_conn_lose(c, "%s: no WELCOME within %u ms", c->path,
		    c->opts.wait_ms);
	for (size_t i = 0; i < nitems(qs); i++)
		while ((call = TAILQ_FIRST(qs[i])) != NULL &&
		    now - call->queued_at >= wait) {
			TAILQ_REMOVE(qs[i], call, entry);
			if (c->state == RHC_UP && c->draining) {
				snprintf(detail, sizeof detail, "the daemon "
				    "is shutting down, and no other came "
				    "within %u ms", c->opts.wait_ms);
				rhc_conn_answer(c, call, RHC_SHUTTING_DOWN,
				    RHC_DECISION_NONE, NULL, detail);
			} else if (c->state == RHC_UP) {
				snprintf(detail, sizeof detail, "not sent "
				    "within %u ms: the daemon's window of %u "
				    "calls stayed full", c->opts.wait_ms,
				    c->window);
				rhc_conn_answer(c, call, RHC_OVERLOADED,
				    RHC_DECISION_NONE, NULL, detail);
			} else {
				snprintf(detail, sizeof detail, "no daemon "
				    "within %u ms: %s", c->opts.wait_ms,
				    c->error);
				rhc_conn_answer(c, call, RHC_CONNECTION_LOST,
				    RHC_DECISION_NONE, NULL, detail);
			}
		}
}

/*
 * A new connection to the daemon at path, with opts (NULL: the defaults
 * of rhc_options_init).  It connects at once if it can, never blocking,
 * and again whenever calls need it.  NULL with errno (ENAMETOOLONG,
 * ENOMEM, EINVAL).
 */
struct rhc_conn *
rhc_conn_new(const char *path, const struct rhc_options *opts)
{
	struct rhc_conn	*c;

	if (path == NULL || path[0] == '\0') {
		errno = EINVAL;
		return NULL;
	}
	if ((c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	if (strlcpy(c->path, path, sizeof c->path) >= sizeof c->path) {
		free(c);
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (opts != NULL)
		c->opts = *opts;
	else
		rhc_options_init(&c->opts);
	if (c->opts.reconnect_min_ms == 0)
		c->opts.reconnect_min_ms = 1;
	if (c->opts.reconnect_max_ms < c->opts.reconnect_min_ms)
		c->opts.reconnect_max_ms = c->opts.reconnect_min_ms;
	if (c->opts.max_pending == 0)
		c->opts.max_pending = 1;
	c->backoff_ms = c->opts.reconnect_min_ms;
	c->fd = -1;
	c->next_id = 1;
	TAILQ_INIT(&c->retryq);
	TAILQ_INIT(&c->queue);
	TAILQ_INIT(&c->framed);
	RB_INIT(&c->inflight);
	wire_init(&c->out);
	wire_init(&c->scratch);
	c->scratch.max = WIRE_FRAME_MAX;
	c->out.max = SIZE_MAX / 2;
	rhc_conn_connect(c);
	return c;
}

/* Close c; calls not answered yet are answered cancelled, here. */
void
rhc_conn_free(struct rhc_conn *c)
{
	struct rhc_calls	*qs[] = { &c->retryq, &c->queue, &c->framed };
	struct rhc_call		*call;

	if (c == NULL)
		return;
	if (c->fd != -1)
		close(c->fd);
	c->busy = true;
	c->freeing = true;
	for (size_t i = 0; i < nitems(qs); i++)
		while ((call = TAILQ_FIRST(qs[i])) != NULL) {
			TAILQ_REMOVE(qs[i], call, entry);
			rhc_conn_answer(c, call, RHC_CANCELLED,
			    RHC_DECISION_NONE, NULL, "the connection was "
			    "closed first");
		}
	while ((call = RB_MIN(rhc_inflight, &c->inflight)) != NULL) {
		RB_REMOVE(rhc_inflight, &c->inflight, call);
		rhc_conn_answer(c, call, RHC_CANCELLED, RHC_DECISION_NONE,
		    NULL, "the connection was closed first");
	}
	wire_free(&c->out);
	wire_free(&c->scratch);
	free(c->in);
	free(c->status_json);
	free(c);
}

/*
 * Route request rq on channel: cb(cookie, result) is called from a later
 * rhc_conn_process when it ends, however it ends.  The request is copied:
 * rq may be changed or freed at once.  -1 with errno, and no callback:
 * EINVAL (a bad channel name, or rq has an error: rhc_request_error),
 * E2BIG (larger than a frame), EAGAIN (max_pending calls pending), ENOMEM,
 * ESHUTDOWN (from a callback while rhc_conn_free cancels the calls).
 */
int
rhc_conn_submit(struct rhc_conn *c, const char *channel,
    const struct rhc_request *rq, rhc_result_cb cb, void *cookie)
{
	struct rhc_call	*call;
	struct wire_buf	*body = &c->scratch;
	uint32_t	 timeout_ms;
	size_t		 n;

	if (c->freeing) {
		errno = ESHUTDOWN;
		return -1;
	}
	if (channel == NULL || (n = strlen(channel)) == 0 ||
	    n > PROTO_CHANNEL_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (c->npending >= c->opts.max_pending) {
		errno = EAGAIN;
		return -1;
	}
	/* Encoded where the last one was: no buffer grown for each call. */
	body->len = 0;
	body->failed = false;
	if (rhc_request_encode(rq, body, &timeout_ms) == -1)
		return -1;
	if ((call = malloc(sizeof *call + body->len)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	memset(call, 0, sizeof *call);
	memcpy(call->body, body->data, body->len);
	call->len = body->len;
	memcpy(call->channel, channel, n + 1);
	call->timeout_ms = timeout_ms;
	call->cb = cb;
	call->cookie = cookie;
	call->queued_at = rhc_now();
	TAILQ_INSERT_TAIL(&c->queue, call, entry);
	c->npending++;
	rhc_conn_fill(c);
	return 0;
}

/*
 * The descriptor to wait on, or -1 while there is none (wait for
 * rhc_conn_timeout then).  It changes when the connection is made again:
 * ask before each wait.
 */
int
rhc_conn_fd(const struct rhc_conn *c)
{
	return c->fd;
}

/* What to wait for on the descriptor: POLLIN, and POLLOUT to write. */
int
rhc_conn_events(const struct rhc_conn *c)
{
	if (c->fd == -1)
		return 0;
	return POLLIN | (c->out.len > 0 ? POLLOUT : 0);
}

/*
 * Milliseconds until rhc_conn_process should run even if nothing comes
 * (a reconnect, a call that waited too long), 0 for at once, or -1 for
 * never.
 */
int
rhc_conn_timeout(const struct rhc_conn *c)
{
	const struct rhc_calls	*qs[] = { &c->retryq, &c->queue };
	const struct rhc_call	*call;
	uint64_t		 now = rhc_now(), at = UINT64_MAX;

	for (size_t i = 0; i < nitems(qs); i++)
		if ((call = TAILQ_FIRST(qs[i])) != NULL &&
		    call->queued_at + (uint64_t)c->opts.wait_ms * 1000000 <
		    at)
			at = call->queued_at + (uint64_t)c->opts.wait_ms *
			    1000000;
	if (c->state == RHC_DOWN && c->npending > 0 && c->retry_at < at)
		at = c->retry_at;
	if (c->state == RHC_HELLO &&
	    c->hello_at + (uint64_t)c->opts.wait_ms * 1000000 < at)
		at = c->hello_at + (uint64_t)c->opts.wait_ms * 1000000;
	if (at == UINT64_MAX)
		return -1;
	if (at <= now)
		return 0;
	return (int)((at - now + 999999) / 1000000);
}

/*
 * Do what is due: read and write as revents (from poll) allow, hand
 * results to their callbacks, reconnect, end calls that waited too long.
 * Call it when the descriptor is ready or the timeout passed (revents 0).
 * 0, or -1 with errno EDEADLK when called from one of c's callbacks.
 */
int
rhc_conn_process(struct rhc_conn *c, int revents)
{
	if (c->busy) {
		errno = EDEADLK;
		return -1;
	}
	c->busy = true;
	if (c->state == RHC_DOWN && c->npending > 0 &&
	    rhc_now() >= c->retry_at)
		rhc_conn_connect(c);
	if (c->fd != -1 && (revents & (POLLIN | POLLHUP | POLLERR)) != 0)
		(void)rhc_conn_read(c);
	rhc_conn_fill(c);
	if (c->fd != -1 && c->out.len > 0)
		(void)rhc_conn_flush(c);
	rhc_conn_expire(c);
	if (c->state == RHC_DOWN && c->npending > 0 &&
	    rhc_now() >= c->retry_at)
		rhc_conn_connect(c);
	if (c->fd != -1 && c->out.len > 0)
		(void)rhc_conn_flush(c);
	c->busy = false;
	return 0;
}

/* Wait up to ms (-1: no limit) for c's descriptor or timeout, then process. */
static int
rhc_conn_turn(struct rhc_conn *c, int ms)
{
	struct pollfd	pfd;
	int		t = rhc_conn_timeout(c), n;

	if (t < 0 || (ms >= 0 && ms < t))
		t = ms;
	pfd.fd = c->fd;
	pfd.events = (short)rhc_conn_events(c);
	pfd.revents = 0;
	n = poll(&pfd, c->fd != -1 ? 1 : 0, t);
	if (n == -1 && errno != EINTR)
		return -1;
	return rhc_conn_process(c, n > 0 ? pfd.revents : 0);
}

/* rhc_conn_call's callback: keep the result. */
static void
rhc_conn_call_done(void *arg, const struct rhc_result *r)
{
	struct rhc_conn	*c = arg;

	c->call_result = *r;
	strlcpy(c->call_detail, r->detail, sizeof c->call_detail);
	c->call_result.detail = c->call_detail;
	c->call_done = true;
}

/*
 * Route rq on channel and wait for its result, in *out (its detail holds
 * until the next rhc_conn_call on c).  Other calls' callbacks may run
 * meanwhile.  0, or -1 with errno as rhc_conn_submit's, or EDEADLK.
 */
int
rhc_conn_call(struct rhc_conn *c, const char *channel,
    const struct rhc_request *rq, struct rhc_result *out)
{
	if (c->busy) {
		errno = EDEADLK;
		return -1;
	}
	c->call_done = false;
	if (rhc_conn_submit(c, channel, rq, rhc_conn_call_done, c) == -1)
		return -1;
	while (!c->call_done)
		if (rhc_conn_turn(c, -1) == -1)
			return -1;
	*out = c->call_result;
	return 0;
}

/* Calls submitted and not answered yet. */
size_t
rhc_conn_pending(const struct rhc_conn *c)
{
	return c->npending;
}

/*
 * Process until no call is pending or ms passed (-1: no limit); the
 * number still pending, or -1 with errno (EDEADLK from a callback).
 */
int
rhc_conn_wait(struct rhc_conn *c, int ms)
{
	uint64_t	until = ms >= 0 ? rhc_now() + (uint64_t)ms * 1000000 :
			    UINT64_MAX, now;

	while (c->npending > 0 && (now = rhc_now()) < until)
		if (rhc_conn_turn(c, until == UINT64_MAX ? -1 :
		    (int)((until - now + 999999) / 1000000)) == -1)
			return -1;
	return (int)(c->npending > INT32_MAX ? INT32_MAX : c->npending);
}

/*
 * The daemon's status, as JSON (route-host-protocol(7)), in *json, which
 * the caller frees; waits up to ms (-1: no limit) for it.  It connects if
 * it must, once: a daemon not there, or a connection refused or lost
 * meanwhile, is an error at once.  -1 with errno ECONNREFUSED,
 * ECONNRESET, ETIMEDOUT (rhc_conn_error says why), ENOMEM or EDEADLK.
 */
int
rhc_conn_status(struct rhc_conn *c, char **json, int ms)
{
	uint64_t	until = ms >= 0 ? rhc_now() + (uint64_t)ms * 1000000 :
			    UINT64_MAX, now, id = 0;

	if (c->busy) {
		errno = EDEADLK;
		return -1;
	}
	*json = NULL;
	free(c->status_json);
	c->status_json = NULL;
	if (c->state == RHC_DOWN)
		rhc_conn_connect(c);
	if (c->state == RHC_DOWN) {
		errno = ECONNREFUSED;
		return -1;
	}
	c->npending++;		/* not to be left idle meanwhile */
	while ((now = rhc_now()) < until) {
		if (c->state == RHC_DOWN) {
			c->npending--;
			errno = ECONNRESET;
			return -1;
		}
		if (c->state == RHC_UP && c->status_id == 0 && id == 0) {
			id = c->status_id = c->next_id++;
			wire_u32(&c->out, 9);	/* type and id */
			wire_u8(&c->out, PROTO_STATUS);
			wire_u64(&c->out, id);
		}
		if (id != 0 && c->status_id == 0 && c->status_json != NULL)
			break;
		if (rhc_conn_turn(c, until == UINT64_MAX ? -1 :
		    (int)((until - now + 999999) / 1000000)) == -1) {
			c->npending--;
			return -1;
		}
	}
	c->npending--;
	if (c->status_json == NULL) {
		if (c->error[0] == '\0')
			rhc_conn_note(c, "%s: no status within %d ms",
			    c->path, ms);
		errno = ETIMEDOUT;
		return -1;
	}
	*json = c->status_json;
	c->status_json = NULL;
	return 0;
}

/* Why the connection is down or was last lost ("" if it never was). */
const char *
rhc_conn_error(const struct rhc_conn *c)
{
	return c->error;
}

/* The daemon's window (calls in flight at once), or 0 before WELCOME. */
unsigned int
rhc_conn_window(const struct rhc_conn *c)
{
	return c->state == RHC_UP ? c->window : 0;
}
