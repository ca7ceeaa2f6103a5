/* SPDX-License-Identifier: ISC */
/*
 * The broker protocol: frames a broker and the daemon exchange over the
 * Unix socket.  route-host-protocol(7) is its specification; every frame
 * is a little-endian u32 length of what follows, a u8 type, a payload.
 * The call body inside a ROUTE frame is wire.c's, passed to the helper
 * without being decoded here.  Version 2 is version 1 with one more
 * status, crash_loop; a version 1 peer is told crashed instead.
 */

#include "config.h"

#include <string.h>

#include "route-host.h"

/* HELLO: the versions this client speaks. */
void
proto_hello(struct wire_buf *b)
{
	wire_frame_begin(b, PROTO_HELLO);
	wire_u16(b, PROTO_VERSION_MIN);
	wire_u16(b, PROTO_VERSION);
	wire_frame_end(b);
}

/* WELCOME: the version chosen, the limits, and who we are. */
void
proto_welcome(struct wire_buf *b, uint16_t version, uint32_t window)
{
	static const char	server[] = "route-host " PACKAGE_VERSION;

	wire_frame_begin(b, PROTO_WELCOME);
	wire_u16(b, version);
	wire_u32(b, PROTO_FRAME_MAX);
	wire_u32(b, window);
	wire_u8(b, sizeof server - 1);
	wire_bytes(b, server, sizeof server - 1);
	wire_frame_end(b);
}

/* ROUTE: one call, appended to b, which may hold other frames already. */
void
proto_route(struct wire_buf *b, uint64_t id, uint32_t timeout_ms,
    const char *channel, const void *body, size_t len)
{
	size_t	start = b->len, n = strnlen(channel, PROTO_CHANNEL_MAX + 1);

	wire_u32(b, 0);
	wire_u8(b, PROTO_ROUTE);
	wire_u64(b, id);
	wire_u32(b, timeout_ms);
	wire_u8(b, (uint8_t)n);
	wire_bytes(b, channel, n);
	wire_bytes(b, body, len);
	if (!b->failed)
		wire_put_u32(b->data + start, (uint32_t)(b->len - start - 4));
}

/*
 * RESULT in protocol version, appended to b, which may hold other frames
 * already.  Version 1 has no crash_loop: it says crashed instead.
 */
void
proto_result(struct wire_buf *b, uint16_t version, uint64_t id,
    const struct result *r)
{
	static const unsigned char	zero[VERSION_LEN];
	size_t				start = b->len, n;
	enum status			st = r->status;

	if (version < 2 && st == ST_CRASH_LOOP)
		st = ST_CRASHED;
	wire_u32(b, 0);
	wire_u8(b, PROTO_RESULT);
	wire_u64(b, id);
	wire_u8(b, (uint8_t)st);
	wire_u32(b, (uint32_t)r->decision);
	wire_bytes(b, r->module != NULL ? r->module->hash : zero, VERSION_LEN);
	n = strnlen(r->detail, sizeof r->detail);
	wire_str16(b, r->detail, n);
	if (!b->failed)
		wire_put_u32(b->data + start, (uint32_t)(b->len - start - 4));
}

/* ERROR: why the connection is being closed. */
void
proto_error(struct wire_buf *b, const char *why)
{
	wire_frame_begin(b, PROTO_ERROR);
	wire_str16(b, why, strlen(why));
	wire_frame_end(b);
}

/* Decode a RESULT payload (after the type byte); -1 if malformed. */
int
proto_decode_result(const unsigned char *p, size_t len,
    struct proto_result *out)
{
	struct wire_reader	 r;
	const void		*v;

	wire_reader_init(&r, p, len);
	out->id = wire_read_u64(&r);
	out->status = wire_read_u8(&r);
	out->decision = (int32_t)wire_read_u32(&r);
	if ((v = wire_read_bytes(&r, VERSION_LEN)) != NULL)
		memcpy(out->version, v, VERSION_LEN);
	wire_read_str16(&r, out->detail, sizeof out->detail);
	return wire_reader_done(&r) && out->status <= ST_LAST ? 0 : -1;
}
