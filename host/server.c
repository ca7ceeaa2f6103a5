/* SPDX-License-Identifier: ISC */
/*
 * The daemon's side of the broker protocol: the listening socket, its
 * clients, and the calls they make.
 *
 * Everything runs in the engine's loop.  A client's bytes are read in
 * large chunks and every complete frame in them is handled at once; its
 * results collect in an output buffer that server_flush writes in one go
 * after each turn of the loop, so one read and one write carry many calls
 * whenever many are queued.  The daemon reads only the frame header (id,
 * channel, deadline) and hands the body to the channel untouched: the
 * helper decodes it (the host decodes it again only if the helper calls
 * it malformed).  A client that pipelines past its window, or stops
 * reading its answers, is simply not read from until it catches up.
 *
 * The server is made last and freed first: server_free answers the calls
 * still in flight itself and closes every client while the plugins
 * directory and the engine still exist, and reads nothing more.  Calls
 * the engine ends after that find no client and are dropped.
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "route-host.h"

#define SERVER_READ		65536
#define SERVER_OUT_HIGH		(64u << 10)	/* stop reading past this */
#define SERVER_OUT_KEEP		(64u << 10)	/* an idle buffer, at most */
#define SERVER_HIST		48		/* latency buckets */
#define SERVER_REFUSED_NS	(1000 * MS_NS)	/* a refusal's line, at most */
#define SERVER_BACKOFF_NS	(100 * MS_NS)	/* no descriptor: wait */
#define SERVER_GROUPS_MAX	1024		/* a peer's, looked at */

/* Counters for one channel name. */
struct server_stats {
	RB_ENTRY(server_stats)	 entry;
	char			 name[PLUGIN_NAME_MAX];
	uint64_t		 served;
	uint64_t		 crashed;
	uint64_t		 timed_out;
	uint64_t		 crash_loop;
	uint64_t		 errors;
	u_int			 in_flight;
	uint64_t		 hist[SERVER_HIST];	/* by log2(us) */
	uint64_t		 by_status[ST_LAST + 1];
	uint64_t		 sum_us;		/* of ok calls */
};
RB_HEAD(server_stats_tree, server_stats);

/* One call made for a client; client is NULL once server_free let go. */
struct server_call {
	TAILQ_ENTRY(server_call) entry;		/* client's calls */
	struct server_client	*client;
	struct server_stats	*stats;
	uint64_t		 id;
	uint64_t		 start;
	size_t			 bytes;		/* its body, held */
};

/* One connection. */
struct server_client {
	TAILQ_ENTRY(server_client) entry;
	TAILQ_ENTRY(server_client) dirtyentry;
	struct server		*server;
	struct watch		 watch;
	unsigned char		*in;		/* NULL while empty */
	size_t			 inlen;
	size_t			 insize;
	struct wire_buf		 out;
	size_t			 outoff;
	TAILQ_HEAD(, server_call) calls;	/* in flight */
	u_int			 in_flight;
	u_int			 window;	/* told in WELCOME */
	uint16_t		 version;	/* chosen in WELCOME */
	uint64_t		 bytes;		/* bodies of its calls */
	uint64_t		 window_bytes;	/* at most, at accept */
	bool			 hello;
	bool			 dirty;
	bool			 closed;	/* fd gone, calls pending */
	bool			 paused;	/* not reading */
	bool			 starved;	/* paused for max-in-flight-bytes */
	bool			 dead;		/* on the dead list */
	bool			 cred_ok;	/* cred is the peer's */
	struct ucred		 cred;		/* SO_PEERCRED at accept */
	uint32_t		 events;
};

struct server {
	struct engine		*engine;
	struct plugdir		*plugdir;
	struct server_config	 conf;
	struct watch		 listen;
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool			 activated;	/* listen.fd handed over */
	bool			 listening;	/* listen is watched */
	dev_t			 dev;		/* the socket we made at path */
	ino_t			 ino;
	struct timer		 backoff;	/* out of descriptors: retry */
	uint64_t		 backoff_since;	/* 0: accepting */
	u_int			 backoffs;	/* in this back-off */
	TAILQ_HEAD(, server_client) clients;
	TAILQ_HEAD(, server_client) dirty;
	TAILQ_HEAD(, server_client) dead;	/* to free */
	struct server_stats_tree stats;
	u_int			 nclients;	/* open, or with calls */
	u_int			 nopen;		/* open sockets */
	u_int			 in_flight;
	uint64_t		 buffered;	/* input beyond SERVER_READ */
	uint64_t		 held;		/* engine_call_bytes, last turn */
	u_int			 nstarved;
	uint64_t		 refused;	/* connections refused */
	uint64_t		 refused_at;	/* the last refusal logged */
	u_int			 refused_quiet;	/* refused since, not logged */
	char			 refused_last[DETAIL_MAX + 96];
	struct timer		 refused_timer;	/* says how many */
	bool			 stopping;
	bool			 closing;	/* in server_free: read nothing */
	time_t			 started;	/* wall clock */
	uint64_t		 started_ns;	/* engine_now */
	u_int			 reloads;
	time_t			 reload_at;	/* the last, or 0 */
	bool			 reload_ok;
	char			 reload_error[DETAIL_MAX];
	json_t			*settings;	/* the effective ones */
	log_cb			 log;
	void			*logarg;
};

/* Order stats by channel name. */
static int
server_stats_cmp(struct server_stats *a, struct server_stats *b)
{
	return strcmp(a->name, b->name);
}

RB_GENERATE_STATIC(server_stats_tree, server_stats, entry, server_stats_cmp);

static void	server_client_event(struct watch *, uint32_t);
static void	server_frames(struct server_client *);
static void	server_read(struct server_client *);
static bool	server_write(struct server_client *);
static void	server_unlink(struct server *);
static void	server_accept_all(struct server *);
static int	server_in_resize(struct server_client *, size_t);

/* Log through the owner. */
static void __attribute__((format(printf, 3, 4)))
server_log(struct server *s, int prio, const char *fmt, ...)
{
	char	line[512];
	va_list	ap;

	if (s->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	s->log(s->logarg, prio, line);
}

/* The stats of channel name, made on first use. */
static struct server_stats *
server_stats_get(struct server *s, const char *name)
{
	struct server_stats	key, *st;

	strlcpy(key.name, name, sizeof key.name);
	if ((st = RB_FIND(server_stats_tree, &s->stats, &key)) != NULL)
		return st;
	if ((st = calloc(1, sizeof *st)) == NULL)
		return NULL;
	strlcpy(st->name, name, sizeof st->name);
	RB_INSERT(server_stats_tree, &s->stats, st);
	return st;
}

/* Set which events a client's socket waits for. */
static void
server_client_watch(struct server_client *c)
{
	uint32_t	ev = 0;

	if (c->closed)
		return;
	if (!c->paused)
		ev |= EPOLLIN;
	/* Output queued this turn goes out at server_flush: no need yet. */
	if (c->out.len > c->outoff && !c->dirty)
		ev |= EPOLLOUT;
	if (ev != c->events) {
		engine_rewatch(c->server->engine, &c->watch, ev);
		c->events = ev;
	}
}

/*
 * Once a client's socket is closed and no call is pending, queue it to be
 * freed after this turn of the loop, when nothing still points at it.
 */
static void
server_client_gc(struct server_client *c)
{
	struct server	*s = c->server;

	if (!c->closed || c->in_flight > 0 || c->dead)
		return;
	if (c->dirty) {
		TAILQ_REMOVE(&s->dirty, c, dirtyentry);
		c->dirty = false;
	}
	TAILQ_REMOVE(&s->clients, c, entry);
	s->nclients--;
	c->dead = true;
	TAILQ_INSERT_TAIL(&s->dead, c, entry);
}

/* Free the clients server_client_gc queued. */
static void
server_reap(struct server *s)
{
	struct server_client	*c;

	while ((c = TAILQ_FIRST(&s->dead)) != NULL) {
		TAILQ_REMOVE(&s->dead, c, entry);
		wire_free(&c->out);
		(void)server_in_resize(c, 0);
		free(c);
	}
}

/* What part of an input buffer of size bytes max-in-flight-bytes counts. */
static size_t
server_in_excess(size_t size)
{
	return size > SERVER_READ ? size - SERVER_READ : 0;
}

/*
 * Give a client's input buffer size bytes (0 frees it), keeping the
 * daemon's count of bytes buffered beyond SERVER_READ; -1 if out of
 * memory.
 */
static int
server_in_resize(struct server_client *c, size_t size)
{
	struct server	*s = c->server;
	unsigned char	*p = NULL;

	if (size == c->insize)
		return 0;
	if (size > 0 && (p = realloc(c->in, size)) == NULL)
		return -1;
	if (size == 0)
		free(c->in);
	s->buffered -= server_in_excess(c->insize);
	s->buffered += server_in_excess(size);
	c->in = p;
	c->insize = size;
	return 0;
}

/*
 * After its frames are handled: an empty input buffer is freed, and one
 * grown for a large frame shrinks back once that frame is gone.
 */
static void
server_in_shrink(struct server_client *c)
{
	if (c->inlen == 0)
		(void)server_in_resize(c, 0);
	else if (c->insize > SERVER_READ && c->inlen <= SERVER_READ / 2)
		(void)server_in_resize(c, SERVER_READ);
}

/* Stop reading c until max-in-flight-bytes has room for its frame. */
static void
server_starve(struct server_client *c)
{
	if (c->starved)
		return;
	c->paused = c->starved = true;
	c->server->nstarved++;
	server_log(c->server, LOG_DEBUG, "client fd %d: a frame of more than "
	    "%zu bytes waits for max-in-flight-bytes", c->watch.fd, c->inlen);
}

/* c is no longer waiting for max-in-flight-bytes. */
static void
server_unstarve(struct server_client *c)
{
	if (!c->starved)
		return;
	c->starved = false;
	c->server->nstarved--;
}

/* Close a client's socket (after a last frame, perhaps). */
static void
server_client_close(struct server_client *c, const char *why)
{
	if (c->closed)
		return;
	if (why != NULL)
		server_log(c->server, LOG_NOTICE, "client fd %d: %s; closing",
		    c->watch.fd, why);
	engine_unwatch(c->server->engine, &c->watch);
	close(c->watch.fd);
	c->watch.fd = -1;
	c->closed = true;
	c->server->nopen--;
	server_unstarve(c);
	(void)server_in_resize(c, 0);
	c->inlen = 0;
	server_client_gc(c);
}

/* Queue c for the next flush. */
static void
server_dirty(struct server_client *c)
{
	if (!c->dirty && !c->closed) {
		c->dirty = true;
		TAILQ_INSERT_TAIL(&c->server->dirty, c, dirtyentry);
	}
}

/*
 * Send a protocol error after whatever results are already queued (as
 * far as the socket takes them now), then close.
 */
static void
server_client_fail(struct server_client *c, const char *why)
{
	struct wire_buf	b;

	wire_init(&b);
	proto_error(&b, why);
	wire_bytes(&c->out, b.data, b.len);
	wire_free(&b);
	if (server_write(c))
		server_client_close(c, why);
}

/* Write what the client will take; false if it went away. */
static bool
server_write(struct server_client *c)
{
	ssize_t	n;

	while (c->outoff < c->out.len) {
		n = send(c->watch.fd, c->out.data + c->outoff,
		    c->out.len - c->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n == -1) {
			server_client_close(c, strerror(errno));
			return false;
		}
		c->outoff += (size_t)n;
	}
	if (c->outoff == c->out.len) {
		c->out.len = c->outoff = 0;
		/* Let go of what a burst of answers made it grow to. */
		if (c->out.size > SERVER_OUT_KEEP) {
			size_t	max = c->out.max;

			wire_free(&c->out);
			c->out.max = max;
		}
	} else if (c->outoff > SERVER_OUT_HIGH) {
		memmove(c->out.data, c->out.data + c->outoff,
		    c->out.len - c->outoff);
		c->out.len -= c->outoff;
		c->outoff = 0;
	}
	return true;
}

/*
 * Resume a paused client once it is under its limits again: first the
 * frames it sent that are already read (no read and no event would
 * bring them up again), then its socket.
 */
static void
server_resume(struct server_client *c)
{
	if (!c->paused || c->closed || c->server->closing)
		return;
	if (c->in_flight >= c->window || c->bytes >= c->window_bytes ||
	    c->out.len - c->outoff > SERVER_OUT_HIGH)
		return;
	server_unstarve(c);
	c->paused = false;
	server_frames(c);
	if (!c->closed && !c->paused)
		server_read(c);
}

/* Write every client with results waiting: one write each. */
void
server_flush(struct server *s)
{
	struct server_client	*c;

	while ((c = TAILQ_FIRST(&s->dirty)) != NULL) {
		TAILQ_REMOVE(&s->dirty, c, dirtyentry);
		c->dirty = false;
		if (c->closed)
			continue;
		if (!server_write(c))
			continue;
		server_client_watch(c);
		server_resume(c);
	}
	/* Bytes came free: the frames waiting for them may fit now. */
	if (s->nstarved > 0 && engine_call_bytes(s->engine) < s->held) {
		TAILQ_FOREACH(c, &s->clients, entry)
			if (c->starved)
				server_resume(c);
	}
	s->held = engine_call_bytes(s->engine);
	server_reap(s);
}

/* A call ended: queue its result for the client. */
static void
server_done(const struct result *r, void *arg)
{
	struct server_call	*sc = arg;
	struct server_client	*c = sc->client;
	struct server_stats	*st = sc->stats;
	struct server		*s;
	uint64_t		 us;
	int			 b = 0;

	if (c == NULL) {
		/* Answered by server_free, which is gone: drop it. */
		free(sc);
		return;
	}
	s = c->server;
	TAILQ_REMOVE(&c->calls, sc, entry);
	if (st != NULL) {
		st->in_flight--;
		if (r->status <= ST_LAST)
			st->by_status[r->status]++;
		switch (r->status) {
		case ST_OK:
			st->served++;
			us = (engine_now() - sc->start) / 1000;
			st->sum_us += us;
			while (us > 1 && b < SERVER_HIST - 1) {
				us >>= 1;
				b++;
			}
			st->hist[b]++;
			break;
		case ST_CRASHED:
			st->crashed++;
			break;
		case ST_TIMED_OUT:
			st->timed_out++;
			break;
		case ST_CRASH_LOOP:
			st->crash_loop++;
			break;
		default:
			st->errors++;
			break;
		}
	}
	s->in_flight--;
	c->in_flight--;
	c->bytes -= sc->bytes;
	if (!c->closed) {
		proto_result(&c->out, c->version, sc->id, r);
		server_dirty(c);
	}
	free(sc);
	server_client_gc(c);
}

/* Answer a request at once, without a call. */
static void
server_answer(struct server_client *c, uint64_t id, enum status st,
    const char *detail)
{
	struct result	r;

	memset(&r, 0, sizeof r);
	r.status = st;
	r.decision = ROUTE_NONE;
	strlcpy(r.detail, detail, sizeof r.detail);
	proto_result(&c->out, c->version, id, &r);
	server_dirty(c);
}

/*
 * Check a ROUTE's channel name as the n bytes it is (a NUL among them is
 * refused, not taken as its end) and copy it into channel; -1 with why
 * naming the first bad byte and its place (from 1).
 */
static int
server_channel_name(const unsigned char *name, size_t n, char *channel,
    char *why, size_t whylen)
{
	static const char	 rule[] = "a channel name is 1-63 of A-Z "
	    "a-z 0-9 . _ -, starting with a letter or digit";
	unsigned char		 b;

	if (n == 0 || n >= PLUGIN_NAME_MAX) {
		snprintf(why, whylen, "channel name of %zu bytes: %s", n, rule);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		b = name[i];
		if (b == '\0') {
			snprintf(why, whylen, "channel name has a NUL byte at "
			    "%zu: %s", i + 1, rule);
			return -1;
		}
		/* Bytes, not the locale's idea of a letter. */
		if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
		    (b >= '0' && b <= '9') ||
		    (i > 0 && (b == '.' || b == '_' || b == '-')))
			continue;
		snprintf(why, whylen, "channel name has byte %#04x at %zu: %s",
		    b, i + 1, rule);
		return -1;
	}
	memcpy(channel, name, n);
	channel[n] = '\0';
	return 0;
}

/* Handle a ROUTE frame's payload. */
static void
server_route(struct server_client *c, const unsigned char *p, size_t len)
{
	struct server		*s = c->server;
	struct server_call	*sc;
	struct channel		*ch;
	struct wire_reader	 r;
	const unsigned char	*name;
	char			 channel[PLUGIN_NAME_MAX], why[192];
	uint64_t		 id;
	uint32_t		 timeout;
	uint8_t			 n;

	wire_reader_init(&r, p, len);
	id = wire_read_u64(&r);
	timeout = wire_read_u32(&r);
	n = wire_read_u8(&r);
	name = wire_read_bytes(&r, n);
	if (r.bad || n == 0 || n > PROTO_CHANNEL_MAX) {
		server_client_fail(c, "malformed ROUTE frame header");
		return;
	}
	if (server_channel_name(name, n, channel, why, sizeof why) == -1) {
		server_answer(c, id, ST_BAD_REQUEST, why);
		return;
	}
	if (s->stopping) {
		server_answer(c, id, ST_SHUTTING_DOWN, "route-host is "
		    "shutting down");
		return;
	}
	if (s->in_flight >= s->conf.max_in_flight) {
		snprintf(why, sizeof why, "%u calls in flight, the daemon's "
		    "limit", s->in_flight);
		server_answer(c, id, ST_OVERLOADED, why);
		return;
	}
	if (engine_call_bytes(s->engine) + len >
	    s->conf.max_in_flight_bytes) {
		snprintf(why, sizeof why, "%llu bytes of calls in flight, and "
		    "%zu more would pass the daemon's max-in-flight-bytes "
		    "(%llu)", (unsigned long long)engine_call_bytes(s->engine),
		    len,
		    (unsigned long long)s->conf.max_in_flight_bytes);
		server_answer(c, id, ST_OVERLOADED, why);
		return;
	}
	if (timeout > 3600000) {
		server_answer(c, id, ST_BAD_REQUEST, "timeout over 3600000 ms");
		return;
	}
	if ((sc = calloc(1, sizeof *sc)) == NULL) {
		server_answer(c, id, ST_OVERLOADED, "out of memory");
		return;
	}
	sc->client = c;
	sc->id = id;
	sc->start = engine_now();
	sc->bytes = len;
	if ((ch = plugdir_channel(s->plugdir, channel)) != NULL &&
	    (sc->stats = server_stats_get(s, channel)) != NULL)
		sc->stats->in_flight++;
	TAILQ_INSERT_TAIL(&c->calls, sc, entry);
	c->in_flight++;
	s->in_flight++;
	c->bytes += len;
	if ((ch != NULL ? channel_call(ch, r.p, r.left, (int)timeout,
	    server_done, sc) : plugdir_call(s->plugdir, channel, r.p, r.left,
	    (int)timeout, server_done, sc)) == -1) {
		if (sc->stats != NULL)
			sc->stats->in_flight--;
		TAILQ_REMOVE(&c->calls, sc, entry);
		c->in_flight--;
		s->in_flight--;
		c->bytes -= len;
		free(sc);
		server_answer(c, id, ST_BAD_REQUEST, errno == E2BIG ?
		    "body too large" : "cannot make the call");
	}
}

/* Handle a STATUS frame's payload. */
static void
server_status_frame(struct server_client *c, const unsigned char *p,
    size_t len)
{
	struct wire_reader	 r;
	json_t			*j;
	char			*text;
	uint64_t		 id;
	size_t			 start;

	wire_reader_init(&r, p, len);
	id = wire_read_u64(&r);
	if (!wire_reader_done(&r)) {
		server_client_fail(c, "malformed STATUS frame");
		return;
	}
	j = server_status(c->server);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL) {
		server_client_fail(c, "out of memory");
		return;
	}
	start = c->out.len;
	wire_u32(&c->out, 0);
	wire_u8(&c->out, PROTO_STATUS_REPLY);
	wire_u64(&c->out, id);
	wire_u32(&c->out, (uint32_t)strlen(text));
	wire_bytes(&c->out, text, strlen(text));
	if (!c->out.failed)
		wire_put_u32(c->out.data + start,
		    (uint32_t)(c->out.len - start - 4));
	free(text);
	server_dirty(c);
}

/* Handle a HELLO frame's payload. */
static void
server_hello(struct server_client *c, const unsigned char *p, size_t len)
{
	struct wire_reader	r;
	uint16_t		lo, hi;
	char			why[96];

	wire_reader_init(&r, p, len);
	lo = wire_read_u16(&r);
	hi = wire_read_u16(&r);
	if (!wire_reader_done(&r)) {
		server_client_fail(c, "malformed HELLO frame");
		return;
	}
	if (lo > PROTO_VERSION || hi < PROTO_VERSION_MIN || lo > hi) {
		snprintf(why, sizeof why, "client speaks versions %u-%u, "
		    "route-host speaks %u-%u", lo, hi, PROTO_VERSION_MIN,
		    PROTO_VERSION);
		server_client_fail(c, why);
		return;
	}
	c->hello = true;
	c->version = hi < PROTO_VERSION ? hi : PROTO_VERSION;
	/* The window this connection keeps, whatever a reload does later. */
	c->window = c->server->conf.window;
	{
		struct wire_buf	b;

		wire_init(&b);
		proto_welcome(&b, c->version, c->window);
		wire_bytes(&c->out, b.data, b.len);
		wire_free(&b);
	}
	server_dirty(c);
}

/* Handle every complete frame in the input, within the client's window. */
static void
server_frames(struct server_client *c)
{
	char		 why[96];
	uint32_t	 len;
	size_t		 off = 0;
	uint8_t		 type;

	while (!c->closed && c->inlen - off >= 4) {
		if ((c->hello && c->in_flight >= c->window) ||
		    c->out.len - c->outoff > SERVER_OUT_HIGH) {
			c->paused = true;
			break;
		}
		len = wire_get_u32(c->in + off);
		if (len < 1 || len > PROTO_FRAME_MAX) {
			snprintf(why, sizeof why, "frame of %u bytes (at most "
			    "%u)", len, PROTO_FRAME_MAX);
			server_client_fail(c, why);
			return;
		}
		if (c->inlen - off - 4 < len)
			break;
		type = c->in[off + 4];
		/* Its bodies in flight, at most window-bytes (or one call). */
		if (type == PROTO_ROUTE && c->bytes > 0 &&
		    c->bytes + len > c->window_bytes) {
			c->paused = true;
			break;
		}
		if (!c->hello && type != PROTO_HELLO) {
			server_client_fail(c, "expected HELLO first");
			return;
		}
		switch (type) {
		case PROTO_HELLO:
			if (c->hello) {
				server_client_fail(c, "second HELLO");
				return;
			}
			server_hello(c, c->in + off + 5, len - 1);
			break;
		case PROTO_ROUTE:
			server_route(c, c->in + off + 5, len - 1);
			break;
		case PROTO_STATUS:
			server_status_frame(c, c->in + off + 5, len - 1);
			break;
		default:
			snprintf(why, sizeof why, "unknown frame type %#x",
			    type);
			server_client_fail(c, why);
			return;
		}
		off += 4 + len;
	}
	if (c->closed)
		return;
	if (off > 0) {
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= off;
	}
	server_in_shrink(c);
	server_client_watch(c);
}

/* Read what the client sent, and handle it. */
static void
server_read(struct server_client *c)
{
	struct server	*s = c->server;
	ssize_t		 n;
	size_t		 want, room;

	while (!c->closed && !c->paused) {
		/*
		 * Room for a whole maximal frame, read in big chunks.  What
		 * a frame being read needs beyond one chunk counts against
		 * max-in-flight-bytes: past it, the client waits.
		 */
		want = c->inlen + SERVER_READ;
		if (want > PROTO_FRAME_MAX + 4 + SERVER_READ)
			want = PROTO_FRAME_MAX + 4 + SERVER_READ;
		if (want > c->insize) {
			if (engine_call_bytes(s->engine) + s->buffered +
			    server_in_excess(want) -
			    server_in_excess(c->insize) >
			    s->conf.max_in_flight_bytes && want > SERVER_READ) {
				server_starve(c);
				break;
			}
			if (server_in_resize(c, want) == -1) {
				server_client_close(c, "out of memory");
				return;
			}
		}
		if (c->inlen == c->insize) {
			server_frames(c);
			if (c->inlen == c->insize && !c->paused)
				server_client_fail(c, "frame too large");
			continue;
		}
		room = c->insize - c->inlen;
		n = read(c->watch.fd, c->in + c->inlen, room);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			if (c->inlen > 0)
				server_log(c->server, LOG_INFO, "client fd %d: "
				    "closed mid-frame (%zu bytes)", c->watch.fd,
				    c->inlen);
			server_client_close(c, NULL);
			return;
		}
		c->inlen += (size_t)n;
		server_frames(c);
		/* A short read took all there was; the loop calls again. */
		if ((size_t)n < room)
			break;
	}
	if (!c->closed)
		server_client_watch(c);
}

/* Socket events from a client. */
static void
server_client_event(struct watch *w, uint32_t events)
{
	struct server_client	*c = w->arg;

	if (w->fd == -1 || c->closed)
		return;
	if (events & EPOLLOUT) {
		if (!server_write(c))
			return;
		server_client_watch(c);
		server_resume(c);
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		server_read(c);
}

/* Whether gid is in allow-gid. */
static bool
server_allowed_gid(const struct server_allow *a, gid_t gid)
{
	for (u_int i = 0; i < a->ngid; i++)
		if (a->gid[i] == gid)
			return true;
	return false;
}

/*
 * Whether the peer on fd is in allow-uid or allow-gid, or nothing is
 * listed: its uid, its gid, or one of its supplementary groups (as they
 * were at connect, SO_PEERGROUPS).
 */
static bool
server_allowed(const struct server *s, int fd, const struct ucred *cred)
{
	const struct server_allow	*a = &s->conf.allow;
	gid_t				 groups[SERVER_GROUPS_MAX];
	socklen_t			 len = sizeof groups;

	if (a->nuid == 0 && a->ngid == 0)
		return true;
	if (cred == NULL)
		return false;
	for (u_int i = 0; i < a->nuid; i++)
		if (a->uid[i] == cred->uid)
			return true;
	if (a->ngid == 0)
		return false;
	if (server_allowed_gid(a, cred->gid))
		return true;
	/* More groups than that (ERANGE) are not looked at. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == -1)
		return false;
	for (size_t i = 0; i < len / sizeof groups[0]; i++)
		if (server_allowed_gid(a, groups[i]))
			return true;
	return false;
}

/*
 * Refuse a new connection: an ERROR frame saying why, as far as the
 * socket takes it at once, then close.  Logged (with the peer, when
 * known) at most once a second; those within that second are counted,
 * and a line when it ends says how many (server_refused_fired).
 */
static void
server_refuse(struct server *s, int fd, const struct ucred *cred,
    const char *why)
{
	struct wire_buf	 b;
	char		 peer[96] = "";
	uint64_t	 now = engine_now();

	wire_init(&b);
	proto_error(&b, why);
	(void)send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	wire_free(&b);
	close(fd);
	s->refused++;
	if (cred != NULL)
		snprintf(peer, sizeof peer, ": pid %ld uid %lu gid %lu",
		    (long)cred->pid, (u_long)cred->uid, (u_long)cred->gid);
	if (s->refused_at != 0 && now - s->refused_at < SERVER_REFUSED_NS) {
		s->refused_quiet++;
		snprintf(s->refused_last, sizeof s->refused_last, "%s%s%s",
		    peer[0] != '\0' ? peer + 2 : "", peer[0] != '\0' ? ": " :
		    "", why);
		loop_timer_at(engine_loop(s->engine), &s->refused_timer,
		    s->refused_at + SERVER_REFUSED_NS);
		return;
	}
	s->refused_at = now;
	server_log(s, LOG_INFO, "refused a client%s: %s", peer, why);
}

/* The second after a refusal was logged ended: say how many followed. */
static void
server_refused_fired(void *arg)
{
	struct server	*s = arg;

	if (s->refused_quiet == 0)
		return;
	server_log(s, LOG_INFO, "%u more client%s refused in the last %llu "
	    "ms, the last: %s", s->refused_quiet, s->refused_quiet == 1 ?
	    "" : "s", (unsigned long long)(SERVER_REFUSED_NS / MS_NS),
	    s->refused_last);
	s->refused_quiet = 0;
	s->refused_at = engine_now();
}

/*
 * Out of descriptors (or memory) at accept: stop accepting for
 * SERVER_BACKOFF_NS, and try again then, for as long as it lasts.  The
 * connections already open are served all along; new ones wait in the
 * listen queue.  Logged once when it starts and once when it ends.
 */
static void
server_backoff(struct server *s, int error)
{
	uint64_t	now = engine_now();

	if (s->backoff_since == 0) {
		s->backoff_since = now;
		s->backoffs = 0;
		server_log(s, LOG_WARNING, "accept: %s, with %u connections "
		    "open; not accepting for %llu ms at a time until that "
		    "changes", strerror(error), s->nopen,
		    (unsigned long long)(SERVER_BACKOFF_NS / MS_NS));
	}
	s->backoffs++;
	(void)engine_rewatch(s->engine, &s->listen, 0);
	loop_timer_at(engine_loop(s->engine), &s->backoff,
	    now + SERVER_BACKOFF_NS);
}

/* A back-off is over: accept brought a connection, or found none. */
static void
server_backoff_end(struct server *s)
{
	if (s->backoff_since == 0)
		return;
	server_log(s, LOG_NOTICE, "accepting again after %llu ms (%u tries)",
	    (unsigned long long)((engine_now() - s->backoff_since) / MS_NS),
	    s->backoffs);
	s->backoff_since = 0;
}

/* The back-off's timer: watch the socket again, and accept. */
static void
server_backoff_retry(void *arg)
{
	struct server	*s = arg;

	if (s->stopping)
		return;
	(void)engine_rewatch(s->engine, &s->listen, EPOLLIN);
	server_accept_all(s);
}

/*
 * Accept every pending connection, refusing those allow-uid and
 * allow-gid leave out and those past max-connections.
 */
static void
server_accept_all(struct server *s)
{
	struct server_client	*c;
	struct ucred		 cred;
	socklen_t		 credlen;
	bool			 cred_ok;
	char			 why[128];
	int			 fd;

	for (;;) {
		fd = accept4(s->listen.fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				server_backoff_end(s);
				return;
			}
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM: wait, never spin. */
			server_backoff(s, errno);
			return;
		}
		server_backoff_end(s);
		credlen = sizeof cred;
		cred_ok = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred,
		    &credlen) == 0 && credlen == sizeof cred;
		if (!server_allowed(s, fd, cred_ok ? &cred : NULL)) {
			if (cred_ok)
				snprintf(why, sizeof why, "not allowed: uid "
				    "%lu gid %lu is in neither allow-uid nor "
				    "allow-gid, nor are its groups",
				    (u_long)cred.uid, (u_long)cred.gid);
			else
				snprintf(why, sizeof why, "not allowed: no "
				    "credentials");
			server_refuse(s, fd, cred_ok ? &cred : NULL, why);
			continue;
		}
		if (s->nopen >= s->conf.max_connections) {
			snprintf(why, sizeof why, "too many connections: %u "
			    "open, the daemon's max-connections", s->nopen);
			server_refuse(s, fd, cred_ok ? &cred : NULL, why);
			continue;
		}
		if ((c = calloc(1, sizeof *c)) == NULL) {
			close(fd);
			continue;
		}
		c->cred_ok = cred_ok;
		if (cred_ok)
			c->cred = cred;
		c->server = s;
		/* Kept whatever a reload does later, as the window is. */
		c->window_bytes = s->conf.window_bytes;
		c->watch.fd = fd;
		c->watch.cb = server_client_event;
		c->watch.arg = c;
		c->events = EPOLLIN;
		TAILQ_INIT(&c->calls);
		wire_init(&c->out);
		c->out.max = SIZE_MAX / 2;
		if (engine_watch(s->engine, &c->watch, EPOLLIN) == -1) {
			close(fd);
			free(c);
			continue;
		}
		TAILQ_INSERT_TAIL(&s->clients, c, entry);
		s->nclients++;
		s->nopen++;
		if (cred_ok)
			server_log(s, LOG_DEBUG, "client fd %d: connected, pid "
			    "%ld uid %lu gid %lu", fd, (long)cred.pid,
			    (u_long)cred.uid, (u_long)cred.gid);
		else
			server_log(s, LOG_DEBUG, "client fd %d: connected, no "
			    "credentials", fd);
	}
}

/* The listening socket is readable: connections wait. */
static void
server_accept(struct watch *w, uint32_t events)
{
	(void)events;
	server_accept_all(w->arg);
}

/* What a file that is not a socket is, for an error. */
static const char *
server_file_type(mode_t mode)
{
	if (S_ISREG(mode))
		return "a regular file";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISLNK(mode))
		return "a symbolic link";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	return "of an unknown type";
}

/*
 * Whether a new socket may go at sun's path: nothing is there, or a stale
 * socket nobody listens on (*stale set: connect is refused).  Anything
 * else (a live socket, a file that is not a socket, a socket connect
 * cannot tell about) is left alone: -1 with err set.
 */
static int
server_check_path(const struct sockaddr_un *sun, bool *stale, char *err,
    size_t errlen)
{
	const char	*path = sun->sun_path;
	struct stat	 st;
	int		 fd, rc, error;

	*stale = false;
	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: exists and is %s, not a socket; "
		    "refusing to replace it", path,
		    server_file_type(st.st_mode));
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
	error = errno;
	close(fd);
	if (rc == 0 || error == EAGAIN) {
		snprintf(err, errlen, "%s: another route-host is listening",
		    path);
		return -1;
	}
	if (error != ECONNREFUSED) {
		snprintf(err, errlen, "%s: a socket that may be in use "
		    "(connect: %s); refusing to replace it", path,
		    strerror(error));
		return -1;
	}
	*stale = true;
	return 0;
}

/*
 * Give the socket at path its owner and group: socket-owner (else the
 * daemon's user) and socket-group (else the daemon's group, whatever a
 * set-group-ID directory gave it); -1 with err naming final.
 */
static int
server_chown(const char *path, const struct server_config *conf,
    const char *final, char *err, size_t errlen)
{
	gid_t	gid = conf->socket_gid;

	if (conf->socket_uid != (uid_t)-1 &&
	    lchown(path, conf->socket_uid, (gid_t)-1) == -1) {
		snprintf(err, errlen, "%s: socket-owner %s: %s", final,
		    conf->socket_owner != NULL ? conf->socket_owner : "",
		    strerror(errno));
		return -1;
	}
	if (lchown(path, (uid_t)-1, gid != (gid_t)-1 ? gid : getegid()) ==
	    -1) {
		snprintf(err, errlen, "%s: socket-group %s: %s", final,
		    conf->socket_group != NULL && conf->socket_group[0] !=
		    '\0' ? conf->socket_group : "(the daemon's)",
		    strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Bind and listen on fd at the socket path with its mode, owner and group
 * from the first instant: bound in a private directory beside the path
 * (the umask giving the mode), chowned there, then renamed into place,
 * over a stale socket if there is one.  A path too long to have that
 * directory's name added is bound in place instead, its mode still from
 * the umask, and chowned just after.  -1 with err set, leaving nothing.
 */
static int
server_bind(int fd, const struct server_config *conf, bool stale,
    char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	char			 dir[sizeof sun.sun_path];
	const char		*slash = strrchr(conf->socket, '/');
	bool			 private;
	mode_t			 mask;
	int			 rc;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (slash == NULL)
		strlcpy(dir, ".route-host-XXXXXX", sizeof dir);
	else
		snprintf(dir, sizeof dir, "%.*s/.route-host-XXXXXX",
		    (int)(slash - conf->socket), conf->socket);
	private = strlen(dir) + 3 < sizeof sun.sun_path;
	if (private) {
		if (mkdtemp(dir) == NULL) {
			snprintf(err, errlen, "%s: mkdtemp %s: %s",
			    conf->socket, dir, strerror(errno));
			return -1;
		}
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s/s", dir);
	} else {
		strlcpy(sun.sun_path, conf->socket, sizeof sun.sun_path);
		if (stale)
			(void)unlink(conf->socket);
	}
	mask = umask(~conf->socket_mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
	umask(mask);
	if (rc == -1) {
		snprintf(err, errlen, "%s: %s", conf->socket, strerror(errno));
		goto fail_bind;
	}
	if (server_chown(sun.sun_path, conf, conf->socket, err, errlen) == -1)
		goto fail;
	if (listen(fd, 512) == -1) {
		snprintf(err, errlen, "%s: listen: %s", conf->socket,
		    strerror(errno));
		goto fail;
	}
	if (private) {
		if (rename(sun.sun_path, conf->socket) == -1) {
			snprintf(err, errlen, "%s: rename: %s", conf->socket,
			    strerror(errno));
			goto fail;
		}
		(void)rmdir(dir);
	}
	return 0;

fail:
	(void)unlink(sun.sun_path);
fail_bind:
	if (private)
		(void)rmdir(dir);
	return -1;
}

/*
 * Take over a listening socket the service manager made (socket
 * activation): its path is what it is bound to, its owner and mode are
 * the service manager's, and it is never removed.  -1 with err set.
 */
static int
server_adopt(struct server *s, int fd, char *err, size_t errlen)
{
	struct sockaddr_un	sun;
	socklen_t		len = sizeof sun;
	int			flags;

	memset(&sun, 0, sizeof sun);
	if (getsockname(fd, (struct sockaddr *)&sun, &len) == -1) {
		snprintf(err, errlen, "the socket handed over (fd %d): %s", fd,
		    strerror(errno));
		return -1;
	}
	if (sun.sun_family != AF_UNIX) {
		snprintf(err, errlen, "the socket handed over (fd %d) is not "
		    "a Unix socket", fd);
		return -1;
	}
	if (len <= offsetof(struct sockaddr_un, sun_path) ||
	    sun.sun_path[0] == '\0')
		strlcpy(s->path, "(unnamed)", sizeof s->path);
	else
		strlcpy(s->path, sun.sun_path, sizeof s->path);
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		snprintf(err, errlen, "%s: fcntl: %s", s->path,
		    strerror(errno));
		return -1;
	}
	s->activated = true;
	return 0;
}

/*
 * Listen on the socket path, or on the socket conf->listen_fd the service
 * manager handed over; NULL with err set.  Connections wait in the listen
 * queue until server_listen.
 */
struct server *
server_open(struct engine *e, struct plugdir *pd,
    const struct server_config *conf, log_cb log, void *logarg, char *err,
    size_t errlen)
{
	struct sockaddr_un	 sun;
	struct server		*s;
	struct stat		 st;
	bool			 stale = false;
	int			 fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, conf->socket, sizeof sun.sun_path) >=
	    sizeof sun.sun_path) {
		snprintf(err, errlen, "%s: socket path too long", conf->socket);
		return NULL;
	}
	/* A stale socket from a dead daemon is replaced; nothing else is. */
	if (conf->listen_fd < 0 &&
	    server_check_path(&sun, &stale, err, errlen) == -1)
		return NULL;
	if ((s = calloc(1, sizeof *s)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->engine = e;
	s->plugdir = pd;
	s->conf = *conf;
	s->conf.socket = s->conf.socket_owner = s->conf.socket_group = NULL;
	s->conf.listen_owned = NULL;
	s->log = log;
	s->logarg = logarg;
	TAILQ_INIT(&s->clients);
	TAILQ_INIT(&s->dirty);
	TAILQ_INIT(&s->dead);
	RB_INIT(&s->stats);
	loop_timer_init(&s->backoff, server_backoff_retry, s);
	loop_timer_init(&s->refused_timer, server_refused_fired, s);
	s->started = time(NULL);
	s->started_ns = engine_now();
	strlcpy(s->path, conf->socket, sizeof s->path);
	if (conf->listen_fd >= 0) {
		fd = conf->listen_fd;
		if (server_adopt(s, fd, err, errlen) == -1) {
			free(s);
			return NULL;
		}
		/*
		 * Made by the daemon that re-executed into this one, and
		 * renamed to its path after bind, so getsockname does not
		 * know it.
		 */
		if (conf->listen_owned != NULL) {
			s->activated = false;
			strlcpy(s->path, conf->listen_owned, sizeof s->path);
		}
	} else if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		free(s);
		return NULL;
	} else if (server_bind(fd, conf, stale, err, errlen) == -1) {
		close(fd);
		free(s);
		return NULL;
	}
	if (!s->activated && lstat(s->path, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	s->listen.fd = fd;
	s->listen.cb = server_accept;
	s->listen.arg = s;
	return s;
}

/*
 * Start accepting connections (until then they wait in the listen queue);
 * -1 with errno.
 */
int
server_listen(struct server *s)
{
	if (s->stopping || s->listening)
		return 0;
	if (engine_watch(s->engine, &s->listen, EPOLLIN) == -1)
		return -1;
	s->listening = true;
	return 0;
}

/*
 * Remove the socket, if we made it and what is at its path is still that
 * one.  A socket the service manager handed over stays: it outlives us.
 */
static void
server_unlink(struct server *s)
{
	struct stat	st;

	if (s->activated)
		return;
	if (lstat(s->path, &st) == 0 && st.st_dev == s->dev &&
	    st.st_ino == s->ino)
		(void)unlink(s->path);
}

/* Stop accepting; new requests get shutting_down. */
static void
server_stop_accepting(struct server *s)
{
	s->stopping = true;
	loop_timer_cancel(engine_loop(s->engine), &s->backoff);
	server_refused_fired(s);	/* what was not logged yet */
	loop_timer_cancel(engine_loop(s->engine), &s->refused_timer);
	if (s->listening)
		engine_unwatch(s->engine, &s->listen);
	s->listening = false;
}

/*
 * Stop accepting and remove the socket (one handed over and taken back
 * too); new requests get shutting_down.
 */
void
server_stop(struct server *s)
{
	if (!s->stopping)
		server_stop_accepting(s);
	if (s->listen.fd != -1) {
		close(s->listen.fd);
		s->listen.fd = -1;
		server_unlink(s);
	}
}

/*
 * Stop accepting, as server_stop does, but keep the listening socket open
 * and at its path: its descriptor is returned, the caller's from now on
 * (a re-exec hands it over), and connections wait in its listen queue
 * meanwhile.  *owned says whether its path is ours to remove (not the
 * service manager's).  -1 if it was closed already.
 */
int
server_handover(struct server *s, bool *owned)
{
	int	fd = s->listen.fd;

	if (!s->stopping)
		server_stop_accepting(s);
	s->listen.fd = -1;
	*owned = !s->activated;
	return fd;
}

/* The socket server_handover gave is ours again, for server_stop. */
void
server_take_back(struct server *s, int fd)
{
	s->listen.fd = fd;
}

/* Calls still in flight for clients. */
u_int
server_in_flight(const struct server *s)
{
	return s->in_flight;
}

/*
 * New limits from a reload: the daemon-wide ones apply at once, a new
 * window and window-bytes to connections made from now on.
 */
void
server_set_limits(struct server *s, const struct server_config *conf)
{
	s->conf.window = conf->window;
	s->conf.max_in_flight = conf->max_in_flight;
	s->conf.max_connections = conf->max_connections;
	s->conf.window_bytes = conf->window_bytes;
	s->conf.max_in_flight_bytes = conf->max_in_flight_bytes;
}

/* A reload happened: ok, or why not; status shows the last. */
void
server_set_reload(struct server *s, bool ok, const char *why)
{
	s->reloads++;
	s->reload_at = time(NULL);
	s->reload_ok = ok;
	strlcpy(s->reload_error, ok || why == NULL ? "" : why,
	    sizeof s->reload_error);
}

/* The effective settings status shows (a reference is taken over). */
void
server_set_settings(struct server *s, json_t *settings)
{
	json_decref(s->settings);
	s->settings = settings;
}

/* Where the server listens. */
const char *
server_path(const struct server *s)
{
	return s->path;
}

/* Whether the service manager handed the listening socket over. */
bool
server_activated(const struct server *s)
{
	return s->activated;
}

/* New allow-uid and allow-gid lists (after a reload): for new peers. */
void
server_set_allow(struct server *s, const struct server_allow *allow)
{
	s->conf.allow = *allow;
}

/* Point the server at a new plugins directory (after a reload). */
void
server_set_plugdir(struct server *s, struct plugdir *pd)
{
	s->plugdir = pd;
}

/*
 * Free the server, before the plugins directory and the engine it calls
 * into: stop accepting, read nothing more (frames not handled yet get no
 * answer), answer every call still in flight shutting_down, write what
 * each socket takes of the last answers and close every client.  The
 * engine still holds those calls; when it ends them, server_done finds
 * no client and drops them.
 */
void
server_free(struct server *s)
{
	struct server_client	*c;
	struct server_call	*sc;
	struct server_stats	*st;

	if (s == NULL)
		return;
	s->closing = true;
	server_stop(s);
	TAILQ_FOREACH(c, &s->clients, entry) {
		while ((sc = TAILQ_FIRST(&c->calls)) != NULL) {
			TAILQ_REMOVE(&c->calls, sc, entry);
			if (!c->closed)
				server_answer(c, sc->id, ST_SHUTTING_DOWN,
				    "route-host is shutting down");
			sc->client = NULL;
			sc->stats = NULL;
		}
		c->in_flight = 0;
		c->bytes = 0;
	}
	s->in_flight = 0;
	server_flush(s);
	while ((c = TAILQ_FIRST(&s->clients)) != NULL) {
		if (c->closed)
			server_client_gc(c);
		else
			server_client_close(c, NULL);
	}
	server_reap(s);
	while ((st = RB_ROOT(&s->stats)) != NULL) {
		RB_REMOVE(server_stats_tree, &s->stats, st);
		free(st);
	}
	json_decref(s->settings);
	free(s);
}

/* A channel's latency percentile, in microseconds, from its histogram. */
static double
server_percentile(const struct server_stats *st, double q)
{
	uint64_t	total = 0, seen = 0;

	for (int i = 0; i < SERVER_HIST; i++)
		total += st->hist[i];
	if (total == 0)
		return 0;
	for (int i = 0; i < SERVER_HIST; i++) {
		seen += st->hist[i];
		if ((double)seen >= q * (double)total)
			return (double)(1ULL << i);	/* bucket's lower bound */
	}
	return 0;
}

/* Collector for server_status: one JSON object per version. */
struct server_versions {
	const char	*channel;
	const struct module *active;
	const struct module *loading;
	json_t		*versions;
};

/* Add module m to the status of its channel. */
static void
server_version(struct module *m, void *arg)
{
	struct server_versions	*sv = arg;
	struct engine_helper	 hs[64];
	u_int			 n;
	json_t			*v, *helpers;

	/*
	 * A channel's versions: its active one and the one loading, even
	 * when another channel with the same bytes and options shares them,
	 * and the ones it loaded that are draining.
	 */
	if (m != sv->active && m != sv->loading &&
	    strcmp(m->label, sv->channel) != 0)
		return;
	helpers = json_array();
	n = engine_helpers(m, hs, nitems(hs));
	for (u_int i = 0; i < n; i++)
		json_array_append_new(helpers, json_pack("{s:I,s:s}", "pid",
		    (json_int_t)hs[i].pid, "state", hs[i].state));
	v = json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:s?,s:s?,s:I,s:I,"
	    "s:I,s:o}", "version",
	    m->hex, "plugin", m->name, "state", m == sv->active ? "active" :
	    m == sv->loading ? "loading" : "draining", "helpers", helpers,
	    "served", (json_int_t)m->served, "crashed",
	    (json_int_t)m->crashed, "timed_out", (json_int_t)m->timed_out,
	    "violations", (json_int_t)m->violations, "last_violation",
	    m->violations > 0 ? m->violation : NULL,
	    "last_crash", m->last_crash[0] != '\0' ? m->last_crash : NULL,
	    "helper_crashes", (json_int_t)m->helper_crashes,
	    "crash_loop", (json_int_t)m->crash_loops,
	    "poison_memo_hits", (json_int_t)m->memo_hits,
	    "crash_loop_since", m->crash_loop_since != 0 ?
	    json_integer((json_int_t)m->crash_loop_since) : json_null());
	json_array_append_new(sv->versions, v);
}

/* Add one channel's status. */
static void
server_status_channel(struct server *s, json_t *arr, struct channel *ch)
{
	struct server_versions	 sv;
	struct server_stats	*st = server_stats_get(s, ch->name);
	static const struct server_stats zero;
	json_t			*ch_json, *results, *hist;

	if (st == NULL)
		st = (struct server_stats *)&zero;
	sv.channel = ch->name;
	sv.active = ch->active;
	sv.loading = channel_loading(ch);
	sv.versions = json_array();
	engine_foreach(s->engine, server_version, &sv);
	json_array_append_new(arr, ch_json = json_pack("{s:s,s:s?,s:I,s:I,s:s?,"
	    "s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}",
	    "channel", ch->name,
	    "active", ch->active != NULL ? ch->active->hex : NULL,
	    "deploys", (json_int_t)ch->deploys,
	    "deploy_failures", (json_int_t)ch->deploy_failures,
	    "error", ch->error[0] != '\0' ? ch->error : NULL,
	    "versions", sv.versions,
	    "served", (json_int_t)st->served,
	    "crashed", (json_int_t)st->crashed,
	    "timed_out", (json_int_t)st->timed_out,
	    "crash_loop", (json_int_t)st->crash_loop,
	    "errors", (json_int_t)st->errors,
	    "in_flight", (json_int_t)st->in_flight,
	    "p50_us", server_percentile(st, 0.50),
	    "p99_us", server_percentile(st, 0.99)));
	if (ch_json == NULL)
		return;
	/* Every answer by its status, and ok ones' latencies as buckets. */
	results = json_object();
	for (int i = 0; i <= ST_LAST; i++)
		json_object_set_new(results, engine_status_name(i),
		    json_integer((json_int_t)st->by_status[i]));
	json_object_set_new(ch_json, "results", results);
	hist = json_array();
	for (int i = 0; i < SERVER_HIST; i++)
		if (st->hist[i] > 0)
			json_array_append_new(hist, json_pack("{s:I,s:I,s:I}",
			    "from_us", (json_int_t)(i == 0 ? 0 : 1ULL << i),
			    "to_us", (json_int_t)((1ULL << (i + 1)) - 1),
			    "count", (json_int_t)st->hist[i]));
	json_object_set_new(ch_json, "latency_histogram", hist);
	json_object_set_new(ch_json, "latency_sum_us",
	    json_integer((json_int_t)st->sum_us));
}

/* Context for plugdir_foreach. */
struct server_status_ctx {
	struct server	*server;
	json_t		*channels;
};

/* plugdir_foreach callback. */
static void
server_status_each(struct channel *ch, void *arg)
{
	struct server_status_ctx	*ctx = arg;

	server_status_channel(ctx->server, ctx->channels, ch);
}

/* Each open connection's peer, from SO_PEERCRED, and its calls. */
static json_t *
server_status_peers(struct server *s)
{
	struct server_client	*c;
	json_t			*peers = json_array();

	TAILQ_FOREACH(c, &s->clients, entry) {
		if (c->closed || !c->cred_ok)
			continue;
		json_array_append_new(peers, json_pack("{s:I,s:I,s:I,s:I,"
		    "s:I,s:I}",
		    "pid", (json_int_t)c->cred.pid,
		    "uid", (json_int_t)c->cred.uid,
		    "gid", (json_int_t)c->cred.gid,
		    "in_flight", (json_int_t)c->in_flight,
		    "bytes_in_flight", (json_int_t)c->bytes,
		    "buffered", (json_int_t)(c->insize + c->out.size)));
	}
	return peers;
}

/* plugdir_foreach_refused callback: one refused file. */
static void
server_status_refused(const char *file, const char *why, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s,s:s}", "file", file,
	    "error", why));
}

/* The daemon's state as JSON: what route-host status shows. */
json_t *
server_status(struct server *s)
{
	struct server_status_ctx	 ctx = { s, json_array() };
	struct server_client		*c;
	json_int_t			 buffered = 0;
	json_t				*j, *refused;

	TAILQ_FOREACH(c, &s->clients, entry)
		buffered += (json_int_t)(c->insize + c->out.size);
	plugdir_foreach(s->plugdir, server_status_each, &ctx);
	j = json_pack("{s:s,s:I,s:s,s:s,s:b,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,"
	    "s:I,s:I,s:I,s:I,s:o}",
	    "server", "route-host " PACKAGE_VERSION,
	    "pid", (json_int_t)getpid(),
	    "plugins", plugdir_path(s->plugdir),
	    "socket", s->path,
	    "socket_activated", s->activated,
	    "clients", (json_int_t)s->nopen,
	    "max_connections", (json_int_t)s->conf.max_connections,
	    "connections_refused", (json_int_t)s->refused,
	    "peers", server_status_peers(s),
	    "in_flight", (json_int_t)s->in_flight,
	    "max_in_flight", (json_int_t)s->conf.max_in_flight,
	    "bytes_in_flight", (json_int_t)engine_call_bytes(s->engine),
	    "max_in_flight_bytes", (json_int_t)s->conf.max_in_flight_bytes,
	    "window_bytes", (json_int_t)s->conf.window_bytes,
	    "bytes_buffered", buffered,
	    "versions_loaded", (json_int_t)engine_loaded(s->engine),
	    "helpers", (json_int_t)engine_procs(s->engine),
	    "channels", ctx.channels);
	if (j == NULL)
		return NULL;
	json_object_set_new(j, "started", json_integer((json_int_t)s->started));
	json_object_set_new(j, "uptime_s", json_integer((json_int_t)
	    ((engine_now() - s->started_ns) / (1000 * MS_NS))));
	json_object_set_new(j, "reloads", json_integer(s->reloads));
	json_object_set_new(j, "last_reload", s->reloads == 0 ? json_null() :
	    json_pack("{s:I,s:b,s:s?}", "at", (json_int_t)s->reload_at,
	    "ok", s->reload_ok, "error", s->reload_ok ? NULL :
	    s->reload_error));
	if (s->settings != NULL)
		json_object_set(j, "settings", s->settings);
	refused = json_array();
	plugdir_foreach_refused(s->plugdir, server_status_refused, refused);
	json_object_set_new(j, "refused", refused);
	return j;
}
