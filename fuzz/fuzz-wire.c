/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: call bodies (wire.c), the bytes a broker puts in a
 * ROUTE frame and a helper decodes, and the host decodes again when a
 * helper calls one malformed.
 *
 * The input is a body.  A body that decodes is encoded again with the
 * encoder the host uses (wire_body_*): the encoding must be as long as the
 * input, decode again to the same call, and encode to the same bytes (the
 * canonical form: a boolean's byte is 0 or 1 once encoded).  Decoded
 * strings must be NUL-terminated and as long as they claim.
 */

#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route-host.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Encode a decoded call the way the host does; -1 if the encoder refuses. */
static int
fuzz_encode(const struct wire_call *wc, struct wire_buf *b)
{
	const struct route_field	*f;

	wire_init(b);
	b->max = WIRE_FRAME_MAX * 4;
	wire_body_begin(b, (uint32_t)wc->msg.nfields,
	    (uint32_t)wc->nconsumers);
	for (size_t i = 0; i < wc->msg.nfields; i++) {
		f = &wc->msg.fields[i];
		if (wire_body_field(b, f->name, &f->value) == -1)
			return -1;
	}
	for (size_t i = 0; i < wc->nconsumers; i++)
		if (wire_body_consumer(b, &wc->consumers[i]) == -1)
			return -1;
	return b->failed ? -1 : 0;
}

/* Check that two decoded calls are the same call. */
static void
fuzz_same(const struct wire_call *a, const struct wire_call *b)
{
	const struct route_value	*x, *y;

	assert(a->msg.nfields == b->msg.nfields);
	assert(a->nconsumers == b->nconsumers);
	for (size_t i = 0; i < a->msg.nfields; i++) {
		assert(strcmp(a->msg.fields[i].name, b->msg.fields[i].name) ==
		    0);
		x = &a->msg.fields[i].value;
		y = &b->msg.fields[i].value;
		assert(x->type == y->type);
		switch (x->type) {
		case ROUTE_BOOLEAN:
			assert(x->boolean == y->boolean);
			break;
		case ROUTE_INTEGER:
			assert(x->integer == y->integer);
			break;
		case ROUTE_FLOAT:
			assert(memcmp(&x->real, &y->real, sizeof x->real) == 0);
			break;
		case ROUTE_TEXT:
			assert(x->len == y->len);
			assert(strlen(x->text) == x->len);
			assert(memcmp(x->text, y->text, x->len) == 0);
			break;
		default:
			break;
		}
	}
	for (size_t i = 0; i < a->nconsumers; i++) {
		const struct route_consumer	*c = &a->consumers[i];
		const struct route_consumer	*d = &b->consumers[i];

		assert(strcmp(c->id, d->id) == 0 && c->id[0] != '\0');
		assert(c->in_flight == d->in_flight);
		assert(c->max_in_flight == d->max_in_flight);
		assert(c->buffer_depth == d->buffer_depth);
		assert(c->ntags == d->ntags && c->ntags <= WIRE_TAGS_MAX);
		assert(c->tags[c->ntags] == NULL);
		for (size_t t = 0; t < c->ntags; t++)
			assert(strcmp(c->tags[t], d->tags[t]) == 0);
	}
}

/* Decode, and if that works, encode and decode again. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_call	wc, again;
	struct wire_buf		b, b2;
	char			err[DETAIL_MAX];
	uint32_t		nc;

	err[0] = '\0';
	if (wire_decode_call(data, size, &wc, err, sizeof err) == -1) {
		/* A refusal always says why, within its buffer. */
		assert(err[0] != '\0' && strlen(err) < sizeof err);
		return 0;
	}
	assert(wire_body_nconsumers(data, size, &nc) == 0 &&
	    nc == wc.nconsumers);
	assert(fuzz_encode(&wc, &b) == 0);
	assert(b.len == size);
	assert(wire_decode_call(b.data, b.len, &again, err, sizeof err) == 0);
	fuzz_same(&wc, &again);
	assert(fuzz_encode(&again, &b2) == 0);
	assert(b2.len == b.len && memcmp(b2.data, b.data, b.len) == 0);
	wire_free(&b2);
	wire_call_free(&again);
	wire_free(&b);
	wire_call_free(&wc);
	return 0;
}
