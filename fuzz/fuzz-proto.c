/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: broker frames as proto.c decodes them for the client
 * library (libroute-host-client reads a daemon's frames with these
 * decoders; fuzz-client feeds the library itself): a daemon's byte
 * stream, cut into frames as a client cuts it (a length of 1 to
 * PROTO_FRAME_MAX, then the type), each frame decoded by its type
 * (WELCOME, RESULT, STATUS_REPLY, ERROR).
 *
 * A RESULT that decodes is encoded again with proto_result: the bytes
 * must be the payload exactly.  A ROUTE frame built with proto_route from
 * what a RESULT carried reads back to the same header.
 */

#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* WELCOME, as a client reads it. */
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

/* ERROR, as a client reads it. */
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

/* Cut the stream into frames, as a client does, and decode each one. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char	*p;
	size_t			 off = 0, len;
	uint32_t		 flen;

	if (size > 65536)
		return 0;
	while (size - off >= 4) {
		flen = wire_get_u32(data + off);
		if (flen < 1 || flen > PROTO_FRAME_MAX || flen > size - off - 4)
			break;		/* cut off, as a client cuts it off */
		p = data + off + 5;
		len = flen - 1;
		switch (data[off + 4]) {
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
		off += 4 + flen;
	}
	return 0;
}
