/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: broker frames as route-host's own clients read them
 * (client.c, proto.c): a daemon's byte stream, cut into frames by
 * client_frame over a real socket, each frame decoded as route -s, status
 * and demo decode it (WELCOME, RESULT, STATUS_REPLY, ERROR).
 *
 * A RESULT that decodes is encoded again with proto_result: the bytes
 * must be the payload exactly.  A ROUTE frame built with proto_route from
 * what a RESULT carried reads back to the same header.
 */

#include "config.h"

#include <sys/socket.h>

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "route-host.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* RESULT: decode, and encode again to the same bytes. */
static void
fuzz_result(const unsigned char *p, size_t len)
{
	struct proto_result	 pr;
	struct result		 r;
	struct module		 m;
	struct wire_buf		 b;

	if (proto_decode_result(p, len, &pr) == -1)
		return;
	assert(pr.status <= ST_LAST);
	assert(strlen(pr.detail) < sizeof pr.detail);
	memset(&r, 0, sizeof r);
	memset(&m, 0, sizeof m);
	memcpy(m.hash, pr.version, sizeof m.hash);
	r.status = pr.status;
	r.decision = pr.decision;
	r.module = &m;
	strlcpy(r.detail, pr.detail, sizeof r.detail);
	wire_init(&b);
	proto_result(&b, PROTO_VERSION, pr.id, &r);
	assert(!b.failed && b.len == len + WIRE_HEADER);
	assert(wire_get_u32(b.data) == len + 1 && b.data[4] == PROTO_RESULT);
	assert(memcmp(b.data + WIRE_HEADER, p, len) == 0);
	wire_free(&b);
}

/* WELCOME, as client_connect reads it. */
static void
fuzz_welcome(const unsigned char *p, size_t len)
{
	struct wire_reader	r;

	wire_reader_init(&r, p, len);
	(void)wire_read_u16(&r);
	(void)wire_read_u32(&r);
	(void)wire_read_u32(&r);
	(void)wire_read_bytes(&r, wire_read_u8(&r));
}

/* ERROR, as client_connect and route -s read it. */
static void
fuzz_error(const unsigned char *p, size_t len)
{
	struct wire_reader	r;
	char			why[DETAIL_MAX];

	wire_reader_init(&r, p, len);
	wire_read_str16(&r, why, sizeof why);
	assert(strlen(why) < sizeof why);
}

/* STATUS_REPLY, as status reads it: u64 id, u32 length, JSON. */
static void
fuzz_status(const unsigned char *p, size_t len)
{
	struct wire_reader	 r;
	const char		*text;
	json_t			*j;
	uint32_t		 n;

	wire_reader_init(&r, p, len);
	(void)wire_read_u64(&r);
	n = wire_read_u32(&r);
	if ((text = wire_read_bytes(&r, n)) == NULL)
		return;
	if ((j = json_loadb(text, n, 0, NULL)) != NULL)
		json_decref(j);
}

/* A ROUTE frame built from an id and channel reads back the same. */
static void
fuzz_route(const unsigned char *p, size_t len)
{
	struct wire_reader	 r;
	struct wire_buf		 b;
	char			 channel[PROTO_CHANNEL_MAX + 1];
	const unsigned char	*name;
	uint64_t		 id;
	uint32_t		 timeout;
	size_t			 n;

	wire_reader_init(&r, p, len);
	id = wire_read_u64(&r);
	timeout = wire_read_u32(&r);
	n = r.left < PROTO_CHANNEL_MAX ? r.left : PROTO_CHANNEL_MAX;
	if ((name = wire_read_bytes(&r, n)) == NULL)
		return;
	memcpy(channel, name, n);
	channel[n] = '\0';
	n = strlen(channel);
	wire_init(&b);
	proto_route(&b, id, timeout, channel, "body", 4);
	wire_reader_init(&r, b.data, b.len);
	assert(wire_read_u32(&r) == b.len - 4);
	assert(wire_read_u8(&r) == PROTO_ROUTE);
	assert(wire_read_u64(&r) == id);
	assert(wire_read_u32(&r) == timeout);
	assert(wire_read_u8(&r) == n);
	assert(memcmp(wire_read_bytes(&r, n), channel, n) == 0);
	assert(r.left == 4);
	wire_free(&b);
}

/* Feed the stream to client_frame through a socket, as a daemon would. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client_conn	 cc;
	const unsigned char	*p;
	char			 err[DETAIL_MAX];
	size_t			 len, off = 0;
	ssize_t			 n;
	uint8_t			 type;
	int			 sv[2], rc;

	if (size > 65536)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		abort();
	memset(&cc, 0, sizeof cc);
	cc.fd = sv[0];
	while (off < size) {
		if ((n = write(sv[1], data + off, size - off)) <= 0)
			abort();
		off += (size_t)n;
	}
	close(sv[1]);
	while ((rc = client_frame(&cc, true, &type, &p, &len, err,
	    sizeof err)) == 1) {
		assert(p + len <= cc.in + cc.inlen);
		switch (type) {
		case PROTO_WELCOME:
			fuzz_welcome(p, len);
			break;
		case PROTO_RESULT:
			fuzz_result(p, len);
			break;
		case PROTO_STATUS_REPLY:
			fuzz_status(p, len);
			break;
		case PROTO_ERROR:
			fuzz_error(p, len);
			break;
		default:
			fuzz_route(p, len);
			break;
		}
	}
	assert(rc == -1 && err[0] != '\0');
	client_close(&cc);
	return 0;
}
