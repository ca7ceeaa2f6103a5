/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target: the JSON request lines of route (request.c), parsed
 * into call bodies, and results formatted back into JSON lines.
 *
 * A line that parses gives a body; a body that decodes (wire.c) must hold
 * what the line said: as many consumers, with the line's ids in order,
 * and as many fields as the message has.  Every result line formatted
 * for the request must be one JSON object that names the decision or the
 * error.
 */

#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "route-host.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Format a result for the request and check the line is an object. */
static void
fuzz_format(json_t *root, enum status st, int decision)
{
	struct result	 r;
	json_t		*j;
	char		*s;

	memset(&r, 0, sizeof r);
	r.status = st;
	r.decision = decision;
	strlcpy(r.detail, "detail \"quoted\"\n", sizeof r.detail);
	if ((s = request_format(&r, NULL, "0123456789abcdef", root)) == NULL)
		return;
	assert(strchr(s, '\n') == NULL);
	j = json_loads(s, 0, NULL);
	assert(json_is_object(j));
	assert(json_object_get(j, st == ST_OK ? "decision" : "error") != NULL);
	json_decref(j);
	free(s);
}

/* Check a decoded body against the request it came from. */
static void
fuzz_check(json_t *root, const struct wire_buf *b)
{
	struct wire_call	 wc;
	json_t			*cons, *msg;
	char			 err[DETAIL_MAX];
	uint32_t		 nc;

	cons = json_object_get(root, "consumers");
	msg = json_object_get(root, "message");
	assert(wire_body_nconsumers(b->data, b->len, &nc) == 0);
	assert(nc == json_array_size(cons));
	if (wire_decode_call(b->data, b->len, &wc, err, sizeof err) == -1)
		return;	/* a NUL in a string, a duplicate id: bad_request */
	assert(wc.nconsumers == json_array_size(cons));
	assert(wc.msg.nfields == (msg != NULL ? json_object_size(msg) : 0));
	for (size_t i = 0; i < wc.nconsumers; i++)
		assert(strcmp(wc.consumers[i].id, json_string_value(
		    json_object_get(json_array_get(cons, i), "id"))) == 0);
	wire_call_free(&wc);
}

/* Parse the input as one request line. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_buf	 b;
	json_t		*root = NULL;
	char		*line, err[DETAIL_MAX];
	int		 timeout, rc;

	if ((line = malloc(size + 1)) == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	err[0] = '\0';
	rc = request_parse(line, &b, &root, &timeout, err, sizeof err);
	if (rc == 0) {
		assert(!b.failed && b.len >= 8);
		assert(timeout >= 0 && timeout <= 3600000);
		fuzz_check(root, &b);
		fuzz_format(root, ST_OK, ROUTE_NONE);
		if (json_array_size(json_object_get(root, "consumers")) > 0)
			fuzz_format(root, ST_OK, 0);
	} else
		assert(err[0] != '\0');
	fuzz_format(root, ST_BAD_REQUEST, ROUTE_NONE);
	fuzz_format(root, ST_CRASHED, ROUTE_NONE);
	json_decref(root);
	wire_free(&b);
	free(line);
	return 0;
}
