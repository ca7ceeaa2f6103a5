/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: broker frames through the daemon's server (server.c)
 * on a real Unix socket, with the stream cut at points the input picks,
 * and a liveness check.
 *
 * One engine (with its zygote), an empty plugins directory and a server
 * are made once.  Each input is a connection: its first four bytes seed
 * the cuts, the rest is the stream, sent a piece at a time with turns of
 * the loop in between, while the replies are read.  A model of the
 * protocol (route-host-protocol(7)) says what the server owes for the
 * stream: a WELCOME for a good HELLO, a RESULT for each well-framed
 * ROUTE (no channel exists, so each is answered at once), a STATUS reply
 * for each STATUS, and one ERROR, then the connection closed, at the
 * first frame it must refuse (and then, as route-host-protocol(7) says,
 * the results of calls still in flight may be lost).  Every reply must
 * decode; a reply missing after a bound of time, or one too many, is a
 * finding.
 */

#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route-host.h"

#define FUZZ_WAIT_NS	(2000 * MS_NS)	/* for the replies owed */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The daemon, made once. */
static struct {
	struct engine	*engine;
	struct plugdir	*plugdir;
	struct server	*server;
	char		 dir[256];
	char		 sock[256];
} fd_;

/* What the server owes for a stream, and what came back. */
struct fuzz_owed {
	u_int		 welcome;
	uint16_t	 version;	/* the WELCOME's */
	u_int		 results;
	u_int		 status;
	bool		 error;		/* an ERROR, then EOF */
};

/* The daemon's log: quiet. */
static void
fuzz_log(void *arg, int prio, const char *msg)
{
}

/* At exit: stop the daemon and remove its directory. */
static void
fuzz_cleanup(void)
{
	char	plugins[300];

	server_free(fd_.server);
	plugdir_close(fd_.plugdir);
	engine_free(fd_.engine);
	snprintf(plugins, sizeof plugins, "%s/plugins", fd_.dir);
	(void)unlink(fd_.sock);
	(void)rmdir(plugins);
	(void)rmdir(fd_.dir);
}

/* Make the engine, an empty plugins directory and the server. */
static void
fuzz_daemon(void)
{
	struct engine_config	ec;
	struct plugdir_config	pc;
	struct server_config	sc;
	const char		*tmp = getenv("TMPDIR");
	char			err[512], plugins[300];

	signal(SIGPIPE, SIG_IGN);
	snprintf(fd_.dir, sizeof fd_.dir, "%s/route-host-fuzz-XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(fd_.dir) == NULL)
		abort();
	snprintf(plugins, sizeof plugins, "%s/plugins", fd_.dir);
	snprintf(fd_.sock, sizeof fd_.sock, "%s/sock", fd_.dir);
	if (mkdir(plugins, 0755) == -1)
		abort();
	engine_defaults(&ec);
	ec.log = fuzz_log;
	if ((fd_.engine = engine_new(&ec, err, sizeof err)) == NULL) {
		fprintf(stderr, "fuzz-server: %s\n", err);
		abort();
	}
	plugdir_defaults(&pc);
	pc.strict = false;
	if ((fd_.plugdir = plugdir_open(fd_.engine, plugins, &pc, fuzz_log,
	    NULL, err, sizeof err)) == NULL) {
		fprintf(stderr, "fuzz-server: %s\n", err);
		abort();
	}
	memset(&sc, 0, sizeof sc);
	sc.socket = fd_.sock;
	sc.socket_mode = 0600;
	sc.socket_uid = (uid_t)-1;
	sc.socket_gid = (gid_t)-1;
	sc.window = 1024;
	sc.max_in_flight = 65536;
	sc.max_connections = DEFAULT_MAX_CONNECTIONS;
	sc.window_bytes = DEFAULT_WINDOW_BYTES;
	sc.max_in_flight_bytes = DEFAULT_MAX_IN_FLIGHT_BYTES;
	sc.listen_fd = -1;
	if ((fd_.server = server_open(fd_.engine, fd_.plugdir, &sc, fuzz_log,
	    NULL, err, sizeof err)) == NULL || server_listen(fd_.server) ==
	    -1) {
		fprintf(stderr, "fuzz-server: %s\n", err);
		abort();
	}
	atexit(fuzz_cleanup);
}

/* What the server owes for stream s: the protocol's model. */
static void
fuzz_model(const uint8_t *s, size_t len, struct fuzz_owed *o)
{
	size_t		 off = 0, plen;
	const uint8_t	*p;
	uint32_t	 flen;
	uint16_t	 lo, hi;
	bool		 hello = false;

	memset(o, 0, sizeof *o);
	while (len - off >= 4) {
		flen = wire_get_u32(s + off);
		if (flen < 1 || flen > PROTO_FRAME_MAX) {
			o->error = true;
			return;
		}
		if (len - off - 4 < flen)
			return;
		p = s + off + WIRE_HEADER;
		plen = flen - 1;
		switch (s[off + 4]) {
		case PROTO_HELLO:
			if (hello || plen != 4) {
				o->error = true;
				return;
			}
			lo = (uint16_t)(p[0] | p[1] << 8);
			hi = (uint16_t)(p[2] | p[3] << 8);
			if (lo > PROTO_VERSION || hi < PROTO_VERSION_MIN ||
			    lo > hi) {
				o->error = true;
				return;
			}
			/* The highest both speak. */
			o->version = hi < PROTO_VERSION ? hi : PROTO_VERSION;
			hello = true;
			o->welcome++;
			break;
		case PROTO_ROUTE:
			if (!hello || plen < 13 || p[12] == 0 ||
			    p[12] > PROTO_CHANNEL_MAX || plen < 13u + p[12]) {
				o->error = true;
				return;
			}
			o->results++;
			break;
		case PROTO_STATUS:
			if (!hello || plen != 8) {
				o->error = true;
				return;
			}
			o->status++;
			break;
		default:
			o->error = true;
			return;
		}
		off += 4 + flen;
	}
}

/* Read and check the replies that have come; true at EOF. */
static bool
fuzz_replies(int fd, struct wire_buf *in, struct fuzz_owed *got)
{
	struct proto_result	 pr;
	struct wire_reader	 r;
	unsigned char		 buf[65536];
	uint32_t		 flen;
	size_t			 off = 0;
	ssize_t			 n;
	bool			 eof = false;

	for (;;) {
		n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			eof = true;
			break;
		}
		wire_bytes(in, buf, (size_t)n);
		assert(!in->failed);
	}
	while (in->len - off >= 4) {
		flen = wire_get_u32(in->data + off);
		assert(flen >= 1 && flen <= PROTO_FRAME_MAX);
		if (in->len - off - 4 < flen)
			break;
		/* After an ERROR, nothing. */
		assert(!got->error);
		wire_reader_init(&r, in->data + off + WIRE_HEADER, flen - 1);
		switch (in->data[off + 4]) {
		case PROTO_WELCOME:
			got->version = wire_read_u16(&r);
			got->welcome++;
			break;
		case PROTO_RESULT:
			assert(proto_decode_result(r.p, r.left, &pr) == 0);
			assert(pr.status == ST_BAD_REQUEST ||
			    pr.status == ST_NO_SUCH_CHANNEL);
			got->results++;
			break;
		case PROTO_STATUS_REPLY:
			(void)wire_read_u64(&r);
			assert(wire_read_u32(&r) == r.left && r.left > 0);
			got->status++;
			break;
		case PROTO_ERROR:
			got->error = true;
			break;
		default:
			abort();
		}
		off += 4 + flen;
	}
	if (off > 0) {
		memmove(in->data, in->data + off, in->len - off);
		in->len -= off;
	}
	return eof;
}

/* Connect a client to the server. */
static int
fuzz_connect(void)
{
	struct sockaddr_un	sun;
	int			fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, fd_.sock, sizeof sun.sun_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1)
		abort();
	if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
		abort();
	return fd;
}

/* A turn of the daemon's loop, as serve runs it. */
static void
fuzz_turn(int timeout_ms)
{
	if (engine_run(fd_.engine, timeout_ms) == -1)
		abort();
	server_flush(fd_.server);
}

/* One connection: the stream in pieces, then every reply owed. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_owed	 owed, got;
	struct wire_buf		 in;
	const uint8_t		*s;
	uint32_t		 seed;
	uint64_t		 end;
	size_t			 len, off = 0, piece;
	ssize_t			 n;
	bool			 eof = false;
	int			 fd;

	if (size < 4 || size > 65536)
		return 0;
	if (fd_.server == NULL)
		fuzz_daemon();
	seed = wire_get_u32(data) | 1;
	s = data + 4;
	len = size - 4;
	fuzz_model(s, len, &owed);
	memset(&got, 0, sizeof got);
	wire_init(&in);
	in.max = 1u << 24;

	fd = fuzz_connect();
	while (off < len && !eof) {
		/* xorshift32 picks each piece: 1 to 64 bytes. */
		seed ^= seed << 13;
		seed ^= seed >> 17;
		seed ^= seed << 5;
		piece = 1 + seed % 64;
		if (piece > len - off)
			piece = len - off;
		n = send(fd, s + off, piece, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno != EAGAIN && errno != EINTR)
			break;	/* the server closed: the model says why */
		if (n > 0)
			off += (size_t)n;
		fuzz_turn(0);
		eof = fuzz_replies(fd, &in, &got);
	}
	end = engine_now() + FUZZ_WAIT_NS;
	while (!eof && (got.welcome < owed.welcome ||
	    got.results < owed.results || got.status < owed.status ||
	    got.error != owed.error)) {
		if (engine_now() > end) {
			fprintf(stderr, "fuzz-server: liveness: owed %u "
			    "WELCOME, %u RESULT, %u STATUS, %s ERROR; got "
			    "%u, %u, %u, %s\n", owed.welcome, owed.results,
			    owed.status, owed.error ? "an" : "no",
			    got.welcome, got.results, got.status,
			    got.error ? "an" : "no");
			abort();
		}
		fuzz_turn(1);
		eof = fuzz_replies(fd, &in, &got);
	}
	/*
	 * Exactly what was owed, nothing more; but a connection closed for a
	 * protocol error loses the results of calls still in flight
	 * (route-host-protocol(7)), so then only at most those.
	 */
	assert(got.welcome == 0 || got.version == owed.version);
	assert(got.welcome == owed.welcome && got.status == owed.status &&
	    got.error == owed.error);
	assert(owed.error ? got.results <= owed.results :
	    got.results == owed.results);
	close(fd);
	wire_free(&in);
	/* Let the server see the close. */
	for (int i = 0; i < 4; i++)
		fuzz_turn(0);
	return 0;
}
