/* SPDX-License-Identifier: ISC */
/*
 * Frames between the host and its helpers, and the call body they carry.
 *
 * A frame is a little-endian u32 length (of what follows), a u8 type and a
 * payload.  A call body is
 *
 *	u32 nfields, u32 nconsumers,
 *	nfields x { str8 name, u8 type, value },
 *	nconsumers x { str8 id, u32 in_flight, u32 max_in_flight,
 *	    u32 buffer_depth, u8 ntags, ntags x str8 tag }
 *
 * where str8 is a u8 length and that many bytes, and a value is nothing
 * (null), u8 (boolean), i64 (integer), the IEEE-754 bits of a double as u64
 * (float) or u32 length and bytes (text).  Every decoder checks a length
 * before reading and rejects trailing bytes.  A body is decoded in the
 * helper, and in the host only to say why a body the helper refused is
 * malformed (proc.c): hostile bytes must find the decoder careful in both.
 */

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route-host.h"

/* Start an empty buffer. */
void
wire_init(struct wire_buf *b)
{
	memset(b, 0, sizeof *b);
}

/* Release a buffer's memory. */
void
wire_free(struct wire_buf *b)
{
	free(b->data);
	wire_init(b);
}

/* Make room for n more bytes, or mark the buffer failed. */
static bool
wire_reserve(struct wire_buf *b, size_t n)
{
	size_t		 size;
	unsigned char	*p;
	size_t		 max = b->max != 0 ? b->max : WIRE_FRAME_MAX + WIRE_HEADER;

	if (b->failed)
		return false;
	if (n > max || b->len + n > max) {
		b->failed = true;
		return false;
	}
	if (b->len + n <= b->size)
		return true;
	size = b->size ? b->size : 256;
	while (size < b->len + n)
		size *= 2;
	if ((p = realloc(b->data, size)) == NULL) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->size = size;
	return true;
}

/* Append raw bytes. */
void
wire_bytes(struct wire_buf *b, const void *p, size_t n)
{
	if (n == 0 || !wire_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* Append one byte. */
void
wire_u8(struct wire_buf *b, uint8_t v)
{
	wire_bytes(b, &v, 1);
}

/* Append a little-endian u16. */
void
wire_u16(struct wire_buf *b, uint16_t v)
{
	unsigned char	p[2] = { v & 0xff, v >> 8 };

	wire_bytes(b, p, sizeof p);
}

/* Store a little-endian u32 at p. */
void
wire_put_u32(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

/* Load a little-endian u32 from p. */
uint32_t
wire_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* Append a little-endian u32. */
void
wire_u32(struct wire_buf *b, uint32_t v)
{
	unsigned char	p[4];

	wire_put_u32(p, v);
	wire_bytes(b, p, sizeof p);
}

/* Append a little-endian u64. */
void
wire_u64(struct wire_buf *b, uint64_t v)
{
	wire_u32(b, (uint32_t)v);
	wire_u32(b, (uint32_t)(v >> 32));
}

/* Append a string with a u16 length, cut at UINT16_MAX. */
void
wire_str16(struct wire_buf *b, const char *s, size_t n)
{
	if (n > UINT16_MAX)
		n = UINT16_MAX;
	wire_u16(b, (uint16_t)n);
	wire_bytes(b, s, n);
}

/* Append a string with a u8 length; it must fit. */
static int
wire_str8(struct wire_buf *b, const char *s)
{
	size_t	n = strlen(s);

	if (n > WIRE_NAME_MAX)
		return -1;
	wire_u8(b, (uint8_t)n);
	wire_bytes(b, s, n);
	return 0;
}

/* Start a frame of the given type; wire_frame_end fills in its length. */
void
wire_frame_begin(struct wire_buf *b, uint8_t type)
{
	b->len = 0;
	b->failed = false;
	wire_u32(b, 0);
	wire_u8(b, (uint8_t)type);
}

/* Finish a frame: store the length of what follows the length word. */
void
wire_frame_end(struct wire_buf *b)
{
	if (!b->failed && b->len >= WIRE_HEADER)
		wire_put_u32(b->data, (uint32_t)(b->len - 4));
}

/* Start a call body with its two counts. */
void
wire_body_begin(struct wire_buf *b, uint32_t nfields, uint32_t nconsumers)
{
	wire_u32(b, nfields);
	wire_u32(b, nconsumers);
}

/* Append one message field; fields must come sorted by name. */
int
wire_body_field(struct wire_buf *b, const char *name,
    const struct route_value *v)
{
	uint64_t	bits;

	if (wire_str8(b, name) == -1)
		return -1;
	wire_u8(b, (uint8_t)v->type);
	switch (v->type) {
	case ROUTE_NULL:
		break;
	case ROUTE_BOOLEAN:
		wire_u8(b, v->boolean ? 1 : 0);
		break;
	case ROUTE_INTEGER:
		wire_u64(b, (uint64_t)v->integer);
		break;
	case ROUTE_FLOAT:
		memcpy(&bits, &v->real, sizeof bits);
		wire_u64(b, bits);
		break;
	case ROUTE_TEXT:
		if (v->len > UINT32_MAX)
			return -1;
		wire_u32(b, (uint32_t)v->len);
		wire_bytes(b, v->text, v->len);
		break;
	default:
		return -1;
	}
	return b->failed ? -1 : 0;
}

/* Append one consumer. */
int
wire_body_consumer(struct wire_buf *b, const struct route_consumer *c)
{
	if (c->ntags > WIRE_TAGS_MAX || wire_str8(b, c->id) == -1)
		return -1;
	wire_u32(b, c->in_flight);
	wire_u32(b, c->max_in_flight);
	wire_u32(b, c->buffer_depth);
	wire_u8(b, (uint8_t)c->ntags);
	for (size_t i = 0; i < c->ntags; i++)
		if (wire_str8(b, c->tags[i]) == -1)
			return -1;
	return b->failed ? -1 : 0;
}

/* Read the consumer count from a body's header. */
int
wire_body_nconsumers(const void *body, size_t len, uint32_t *n)
{
	if (len < 8)
		return -1;
	*n = wire_get_u32((const unsigned char *)body + 4);
	return 0;
}

/* Point a reader at len bytes. */
void
wire_reader_init(struct wire_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->left = len;
	r->bad = false;
}

/* Take n bytes, or mark the reader bad and return NULL. */
const void *
wire_read_bytes(struct wire_reader *r, size_t n)
{
	const void	*p;

	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

/* Take one byte (0 when short). */
uint8_t
wire_read_u8(struct wire_reader *r)
{
	const unsigned char	*p = wire_read_bytes(r, 1);

	return p == NULL ? 0 : p[0];
}

/* Take a little-endian u16 (0 when short). */
uint16_t
wire_read_u16(struct wire_reader *r)
{
	const unsigned char	*p = wire_read_bytes(r, 2);

	return p == NULL ? 0 : (uint16_t)(p[0] | p[1] << 8);
}

/* Take a little-endian u32 (0 when short). */
uint32_t
wire_read_u32(struct wire_reader *r)
{
	const unsigned char	*p = wire_read_bytes(r, 4);

	return p == NULL ? 0 : wire_get_u32(p);
}

/* Take a little-endian u64 (0 when short). */
uint64_t
wire_read_u64(struct wire_reader *r)
{
	uint64_t	lo = wire_read_u32(r);

	return lo | (uint64_t)wire_read_u32(r) << 32;
}

/*
 * Take a u16-length string into dst (size bytes, NUL-terminated); a string
 * that does not fit, or holds a NUL, marks the reader bad.
 */
size_t
wire_read_str16(struct wire_reader *r, char *dst, size_t size)
{
	uint16_t	 n = wire_read_u16(r);
	const char	*p = wire_read_bytes(r, n);

	if (p == NULL || n >= size || memchr(p, '\0', n) != NULL) {
		r->bad = true;
		if (size > 0)
			dst[0] = '\0';
		return 0;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
	return n;
}

/* True when the reader consumed everything, exactly. */
bool
wire_reader_done(const struct wire_reader *r)
{
	return !r->bad && r->left == 0;
}

/* True when s[0..n) is well-formed UTF-8 without NUL. */
static bool
wire_utf8(const unsigned char *s, size_t n)
{
	size_t		i = 0, k, need;
	uint32_t	cp, min;

	while (i < n) {
		unsigned char	c = s[i];

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			need = 1; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3; cp = c & 0x07; min = 0x10000;
		} else
			return false;
		if (n - i <= need)
			return false;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/* A bump allocator over one block sized before decoding. */
struct wire_arena {
	unsigned char	*p;
	size_t		 left;
};

/* Take n bytes at the given alignment (a power of two). */
static void *
wire_arena_take(struct wire_arena *a, size_t n, size_t align)
{
	size_t	pad = (align - ((uintptr_t)a->p & (align - 1))) & (align - 1);
	void	*p;

	if (pad > a->left || n > a->left - pad)
		return NULL;
	p = a->p + pad;
	a->p += pad + n;
	a->left -= pad + n;
	return p;
}

/*
 * Copy a u8- or u32-length string into the arena, NUL-terminated.  On
 * failure *why says what was wrong with it, for the caller to place.
 */
static const char *
wire_take_string(struct wire_reader *r, struct wire_arena *a, size_t n,
    const char **why)
{
	const unsigned char	*src;
	char			*dst;

	if ((src = wire_read_bytes(r, n)) == NULL) {
		*why = "runs past the end of the body";
		return NULL;
	}
	if (!wire_utf8(src, n)) {
		*why = "is not valid UTF-8 (or holds NUL)";
		return NULL;
	}
	if ((dst = wire_arena_take(a, n + 1, 1)) == NULL) {
		*why = "does not fit the arena";
		return NULL;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
	return dst;
}

/* Order consumer pointers by id, for the duplicate check. */
static int
wire_cmp_id(const void *a, const void *b)
{
	const struct route_consumer *const	*x = a, *const *y = b;

	return strcmp((*x)->id, (*y)->id);
}

/* Decode one message field into f. */
static int
wire_decode_field(struct wire_reader *r, struct wire_arena *a,
    struct route_field *f, size_t i, char *err, size_t errlen)
{
	const char	*why;
	uint8_t		 type;
	uint64_t	 bits;
	uint32_t	 len;

	if ((f->name = wire_take_string(r, a, wire_read_u8(r), &why)) ==
	    NULL) {
		snprintf(err, errlen, "field %zu name %s", i, why);
		return -1;
	}
	if (f->name[0] == '\0') {
		snprintf(err, errlen, "field %zu has an empty name", i);
		return -1;
	}
	type = wire_read_u8(r);
	f->value.type = (enum route_type)type;
	switch (type) {
	case ROUTE_NULL:
		break;
	case ROUTE_BOOLEAN:
		f->value.boolean = wire_read_u8(r) != 0;
		break;
	case ROUTE_INTEGER:
		f->value.integer = (int64_t)wire_read_u64(r);
		break;
	case ROUTE_FLOAT:
		bits = wire_read_u64(r);
		memcpy(&f->value.real, &bits, sizeof bits);
		break;
	case ROUTE_TEXT:
		len = wire_read_u32(r);
		if ((f->value.text = wire_take_string(r, a, len, &why)) ==
		    NULL) {
			snprintf(err, errlen, "field '%s' text %s", f->name,
			    why);
			return -1;
		}
		f->value.len = len;
		break;
	default:
		snprintf(err, errlen, "field '%s' has unknown type %u",
		    f->name, type);
		return -1;
	}
	if (r->bad) {
		snprintf(err, errlen, "field '%s' runs past the end of the body",
		    f->name);
		return -1;
	}
	return 0;
}

/* Decode one consumer into c. */
static int
wire_decode_consumer(struct wire_reader *r, struct wire_arena *a,
    struct route_consumer *c, size_t i, char *err, size_t errlen)
{
	const char	 *why;
	const char	**tags;
	uint8_t		  ntags;

	if ((c->id = wire_take_string(r, a, wire_read_u8(r), &why)) == NULL) {
		snprintf(err, errlen, "consumer %zu id %s", i, why);
		return -1;
	}
	if (c->id[0] == '\0') {
		snprintf(err, errlen, "consumer %zu has an empty id", i);
		return -1;
	}
	c->in_flight = wire_read_u32(r);
	c->max_in_flight = wire_read_u32(r);
	c->buffer_depth = wire_read_u32(r);
	ntags = wire_read_u8(r);
	if (r->bad) {
		snprintf(err, errlen, "consumer '%s' runs past the end of the "
		    "body", c->id);
		return -1;
	}
	if (ntags > WIRE_TAGS_MAX) {
		snprintf(err, errlen, "consumer '%s' has %u tags (at most %u)",
		    c->id, ntags, WIRE_TAGS_MAX);
		return -1;
	}
	if ((tags = wire_arena_take(a, (ntags + 1) * sizeof *tags,
	    sizeof *tags)) == NULL) {
		snprintf(err, errlen, "consumer '%s' tags do not fit", c->id);
		return -1;
	}
	for (size_t t = 0; t < ntags; t++)
		if ((tags[t] = wire_take_string(r, a, wire_read_u8(r),
		    &why)) == NULL) {
			snprintf(err, errlen, "consumer '%.16s' tag %zu %s",
			    c->id, t, why);
			return -1;
		}
	tags[ntags] = NULL;
	c->tags = tags;
	c->ntags = ntags;
	return 0;
}

/*
 * Decode and validate a call body.  Field names must be unique and sorted,
 * consumer ids non-empty and unique.  On error, err says what and where.
 */
int
wire_decode_call(const void *body, size_t len, struct wire_call *out,
    char *err, size_t errlen)
{
	struct wire_reader		  r;
	struct wire_arena		  a;
	struct route_field		 *fields;
	struct route_consumer		 *cons;
	const struct route_consumer	**sorted = NULL;
	uint32_t			  nf, nc;
	size_t				  size;

	memset(out, 0, sizeof *out);
	wire_reader_init(&r, body, len);
	nf = wire_read_u32(&r);
	nc = wire_read_u32(&r);
	if (r.bad) {
		snprintf(err, errlen, "body is %zu bytes, shorter than its "
		    "8-byte header", len);
		return -1;
	}
	if (nf > WIRE_FIELDS_MAX || nf > r.left / 2) {
		snprintf(err, errlen, "body claims %u fields (at most %u, and "
		    "%zu bytes follow)", nf, WIRE_FIELDS_MAX, r.left);
		return -1;
	}
	if (nc > WIRE_CONSUMERS_MAX || nc > r.left / 14) {
		snprintf(err, errlen, "body claims %u consumers (at most %u, "
		    "and %zu bytes follow)", nc, WIRE_CONSUMERS_MAX, r.left);
		return -1;
	}

	/*
	 * Everything decoded lives in one block.  Each string costs its bytes
	 * and a NUL, and carries at least one length byte in the body, so
	 * strings take at most 2 * len; each tag pointer likewise costs at
	 * most 8 per body byte, plus one NULL and padding per consumer.
	 */
	size = len * 2 + len * sizeof(char *) +
	    ((size_t)nf + 1) * sizeof *fields +
	    ((size_t)nc + 1) * (sizeof *cons + 2 * sizeof(char *)) + 64;
	if ((out->arena = malloc(size)) == NULL) {
		snprintf(err, errlen, "out of memory decoding %zu bytes", len);
		return -1;
	}
	a.p = out->arena;
	a.left = size;
	fields = wire_arena_take(&a, (nf + 1) * sizeof *fields, 16);
	cons = wire_arena_take(&a, (nc + 1) * sizeof *cons, 16);

	for (uint32_t i = 0; i < nf; i++) {
		if (wire_decode_field(&r, &a, &fields[i], i, err, errlen) == -1)
			goto fail;
		if (i > 0 && strcmp(fields[i - 1].name, fields[i].name) >= 0) {
			snprintf(err, errlen, "field '%s' is %s '%s': names "
			    "must be unique and sorted", fields[i].name,
			    strcmp(fields[i - 1].name, fields[i].name) == 0 ?
			    "a duplicate of" : "out of order after",
			    fields[i - 1].name);
			goto fail;
		}
	}
	for (uint32_t i = 0; i < nc; i++)
		if (wire_decode_consumer(&r, &a, &cons[i], i, err,
		    errlen) == -1)
			goto fail;
	if (!wire_reader_done(&r)) {
		snprintf(err, errlen, "%zu trailing bytes after the last "
		    "consumer", r.left);
		goto fail;
	}

	if (nc > 1) {
		if ((sorted = malloc(nc * sizeof *sorted)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		for (uint32_t i = 0; i < nc; i++)
			sorted[i] = &cons[i];
		qsort(sorted, nc, sizeof *sorted, wire_cmp_id);
		for (uint32_t i = 1; i < nc; i++)
			if (strcmp(sorted[i - 1]->id, sorted[i]->id) == 0) {
				snprintf(err, errlen, "consumer id '%s' "
				    "appears more than once", sorted[i]->id);
				goto fail;
			}
		free(sorted);
		sorted = NULL;
	}

	out->msg.fields = fields;
	out->msg.nfields = nf;
	out->consumers = cons;
	out->nconsumers = nc;
	return 0;

fail:
	free(sorted);
	wire_call_free(out);
	return -1;
}

/* Release a decoded call. */
void
wire_call_free(struct wire_call *c)
{
	free(c->arena);
	memset(c, 0, sizeof *c);
}
