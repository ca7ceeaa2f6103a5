/* SPDX-License-Identifier: ISC */
/*
 * Requests: a message's fields, a consumer list and a deadline, built by
 * the broker and encoded as the call body of route-host-protocol(7)
 * (wire.c's body, the one the daemon hands to the plugin's helper).
 *
 * Fields are kept sorted by name (the order the body needs), so a name
 * given twice is refused when it is given.  Consumers are encoded
 * as they come.  The first error sticks: later calls do nothing, and a
 * request with an error cannot be sent (rhc_request_error says why).
 * JSON (the line `route-host route` reads) is one way in, not the path.
 */

#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "route-host.h"
#include "route-host/client.h"
#include "rhc-int.h"

/* One field of the message. */
struct rhc_field {
	char			*name;
	struct route_value	 value;		/* text: owned */
};

struct rhc_request {
	struct rhc_field	*fields;
	size_t			 nfields;
	size_t			 fieldsize;
	struct wire_buf		 consumers;	/* encoded, in order */
	uint32_t		 nconsumers;
	uint32_t		 timeout_ms;	/* 0: the daemon's */
	char			 error[RHC_ERROR_MAX];
};

/* Stick the first error, set errno; -1. */
static int __attribute__((format(printf, 3, 4)))
rhc_request_fail(struct rhc_request *rq, int error, const char *fmt, ...)
{
	va_list	ap;

	if (rq->error[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(rq->error, sizeof rq->error, fmt, ap);
		va_end(ap);
	}
	errno = error;
	return -1;
}

/* A new, empty request; NULL (errno ENOMEM) when out of memory. */
struct rhc_request *
rhc_request_new(void)
{
	struct rhc_request	*rq;

	if ((rq = calloc(1, sizeof *rq)) == NULL)
		return NULL;
	wire_init(&rq->consumers);
	rq->consumers.max = WIRE_FRAME_MAX;
	return rq;
}

/* Empty rq for the next message, keeping its memory. */
void
rhc_request_clear(struct rhc_request *rq)
{
	for (size_t i = 0; i < rq->nfields; i++) {
		free(rq->fields[i].name);
		if (rq->fields[i].value.type == ROUTE_TEXT)
			free((char *)rq->fields[i].value.text);
	}
	rq->nfields = 0;
	rq->consumers.len = 0;
	rq->consumers.failed = false;
	rq->nconsumers = 0;
	rq->timeout_ms = 0;
	rq->error[0] = '\0';
}

/* Free a request. */
void
rhc_request_free(struct rhc_request *rq)
{
	if (rq == NULL)
		return;
	rhc_request_clear(rq);
	free(rq->fields);
	wire_free(&rq->consumers);
	free(rq);
}

/* Why rq cannot be sent, or NULL if it can. */
const char *
rhc_request_error(const struct rhc_request *rq)
{
	return rq->error[0] != '\0' ? rq->error : NULL;
}

/* Add a field named name with value v (text copied); -1 with errno. */
static int
rhc_request_field(struct rhc_request *rq, const char *name,
    const struct route_value *v)
{
	struct rhc_field	*f;
	struct route_value	 value;
	char			*copy, *text;
	size_t			 len, lo, hi;

	if (rq->error[0] != '\0')
		return rhc_request_fail(rq, EINVAL, "%s", rq->error);
	if (name == NULL || (len = strlen(name)) == 0 || len > WIRE_NAME_MAX)
		return rhc_request_fail(rq, EINVAL, "a field name must be 1 "
		    "to %u bytes", WIRE_NAME_MAX);
	if (rq->nfields == WIRE_FIELDS_MAX)
		return rhc_request_fail(rq, E2BIG, "more than %u fields",
		    WIRE_FIELDS_MAX);
	/* Where it goes, by name. */
	lo = 0;
	hi = rq->nfields;
	while (lo < hi) {
		size_t	mid = lo + (hi - lo) / 2;
		int	c = strcmp(rq->fields[mid].name, name);

		if (c == 0)
			return rhc_request_fail(rq, EINVAL, "field '%.40s' "
			    "given twice", name);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (rq->nfields == rq->fieldsize) {
		size_t	n = rq->fieldsize == 0 ? 8 : rq->fieldsize * 2;

		if ((f = reallocarray(rq->fields, n, sizeof *f)) == NULL)
			return rhc_request_fail(rq, ENOMEM, "out of memory");
		rq->fields = f;
		rq->fieldsize = n;
	}
	if ((copy = strdup(name)) == NULL)
		return rhc_request_fail(rq, ENOMEM, "out of memory");
	value = *v;
	if (v->type == ROUTE_TEXT) {
		if ((text = malloc(v->len + 1)) == NULL) {
			free(copy);
			return rhc_request_fail(rq, ENOMEM, "out of memory");
		}
		memcpy(text, v->text, v->len);
		text[v->len] = '\0';
		value.text = text;
	}
	f = &rq->fields[lo];
	memmove(f + 1, f, (rq->nfields - lo) * sizeof *f);
	f->name = copy;
	f->value = value;
	rq->nfields++;
	return 0;
}

/* Field name is null. */
int
rhc_request_null(struct rhc_request *rq, const char *name)
{
	struct route_value	v = { .type = ROUTE_NULL };

	return rhc_request_field(rq, name, &v);
}

/* Field name is a boolean. */
int
rhc_request_bool(struct rhc_request *rq, const char *name, int value)
{
	struct route_value	v = { .type = ROUTE_BOOLEAN };

	v.boolean = value != 0;
	return rhc_request_field(rq, name, &v);
}

/* Field name is an integer. */
int
rhc_request_int(struct rhc_request *rq, const char *name, int64_t value)
{
	struct route_value	v = { .type = ROUTE_INTEGER };

	v.integer = value;
	return rhc_request_field(rq, name, &v);
}

/* Field name is a float. */
int
rhc_request_float(struct rhc_request *rq, const char *name, double value)
{
	struct route_value	v = { .type = ROUTE_FLOAT };

	v.real = value;
	return rhc_request_field(rq, name, &v);
}

/* Field name is len bytes of text (not NUL-terminated; any bytes). */
int
rhc_request_text(struct rhc_request *rq, const char *name, const char *text,
    size_t len)
{
	struct route_value	v = { .type = ROUTE_TEXT };

	if (text == NULL && len > 0)
		return rhc_request_fail(rq, EINVAL, "field '%.40s': no text",
		    name != NULL ? name : "");
	if (len > WIRE_FRAME_MAX)
		return rhc_request_fail(rq, E2BIG, "field '%.40s': text over "
		    "%u bytes", name != NULL ? name : "", WIRE_FRAME_MAX);
	v.text = text != NULL ? text : "";
	v.len = len;
	return rhc_request_field(rq, name, &v);
}

/*
 * One more consumer: its id, calls it has in flight and may have at most
 * (the plugin sees the difference as its capacity), its buffer depth,
 * and its tags.
 */
int
rhc_request_consumer(struct rhc_request *rq, const char *id,
    uint32_t in_flight, uint32_t max_in_flight, uint32_t buffer_depth,
    const char *const *tags, size_t ntags)
{
	struct route_consumer	c;
	size_t			len;

	if (rq->error[0] != '\0')
		return rhc_request_fail(rq, EINVAL, "%s", rq->error);
	if (rq->nconsumers == WIRE_CONSUMERS_MAX)
		return rhc_request_fail(rq, E2BIG, "more than %u consumers",
		    WIRE_CONSUMERS_MAX);
	if (id == NULL || (len = strlen(id)) == 0 || len > WIRE_NAME_MAX)
		return rhc_request_fail(rq, EINVAL, "consumer %u: an id must "
		    "be 1 to %u bytes", rq->nconsumers, WIRE_NAME_MAX);
	if (ntags > WIRE_TAGS_MAX || (ntags > 0 && tags == NULL))
		return rhc_request_fail(rq, EINVAL, "consumer '%.40s': at "
		    "most %u tags", id, WIRE_TAGS_MAX);
	for (size_t i = 0; i < ntags; i++)
		if (tags[i] == NULL || (len = strlen(tags[i])) == 0 ||
		    len > WIRE_NAME_MAX)
			return rhc_request_fail(rq, EINVAL, "consumer "
			    "'%.40s': a tag must be 1 to %u bytes", id,
			    WIRE_NAME_MAX);
	c.id = id;
	c.in_flight = in_flight;
	c.max_in_flight = max_in_flight;
	c.buffer_depth = buffer_depth;
	c.tags = tags;
	c.ntags = ntags;
	if (wire_body_consumer(&rq->consumers, &c) == -1)
		return rhc_request_fail(rq, E2BIG, "the consumers take more "
		    "than %u bytes", WIRE_FRAME_MAX);
	rq->nconsumers++;
	return 0;
}

/* The call's deadline in ms, 1 to 3600000 (0: the daemon's default). */
int
rhc_request_timeout(struct rhc_request *rq, uint32_t ms)
{
	if (ms > 3600000)
		return rhc_request_fail(rq, EINVAL, "timeout %u ms: at most "
		    "3600000", ms);
	rq->timeout_ms = ms;
	return 0;
}

/* A JSON member of a consumer as a uint32; -1 with the error stuck. */
static int
rhc_request_json_u32(struct rhc_request *rq, json_t *c, size_t i,
    const char *key, uint32_t *out)
{
	json_t		*j = json_object_get(c, key);
	json_int_t	 v;

	*out = 0;
	if (j == NULL)
		return 0;
	if (!json_is_integer(j) || (v = json_integer_value(j)) < 0 ||
	    v > UINT32_MAX)
		return rhc_request_fail(rq, EINVAL, "consumers[%zu].%s must "
		    "be an integer from 0 to %u", i, key, UINT32_MAX);
	*out = (uint32_t)v;
	return 0;
}

/* A JSON consumer object; -1 with the error stuck. */
static int
rhc_request_json_consumer(struct rhc_request *rq, json_t *c, size_t i)
{
	static const char *const known[] = { "id", "in_flight",
	    "max_in_flight", "buffer_depth", "tags" };
	const char	*tags[WIRE_TAGS_MAX], *key;
	json_t		*id, *t, *v;
	uint32_t	 in_flight, max, depth;
	size_t		 k, ntags = 0;

	if (!json_is_object(c))
		return rhc_request_fail(rq, EINVAL, "consumers[%zu] must be "
		    "an object", i);
	json_object_foreach(c, key, v) {
		for (k = 0; k < nitems(known); k++)
			if (strcmp(key, known[k]) == 0)
				break;
		if (k == nitems(known))
			return rhc_request_fail(rq, EINVAL, "consumers[%zu]: "
			    "unknown key '%.40s'", i, key);
	}
	if (!json_is_string(id = json_object_get(c, "id")))
		return rhc_request_fail(rq, EINVAL, "consumers[%zu].id must "
		    "be a string", i);
	if (rhc_request_json_u32(rq, c, i, "in_flight", &in_flight) == -1 ||
	    rhc_request_json_u32(rq, c, i, "max_in_flight", &max) == -1 ||
	    rhc_request_json_u32(rq, c, i, "buffer_depth", &depth) == -1)
		return -1;
	if ((t = json_object_get(c, "tags")) != NULL) {
		if (!json_is_array(t) || json_array_size(t) > WIRE_TAGS_MAX)
			return rhc_request_fail(rq, EINVAL, "consumers[%zu]."
			    "tags must be an array of at most %u strings", i,
			    WIRE_TAGS_MAX);
		json_array_foreach(t, k, v) {
			if (!json_is_string(v))
				return rhc_request_fail(rq, EINVAL,
				    "consumers[%zu].tags[%zu] must be a "
				    "string", i, k);
			tags[ntags++] = json_string_value(v);
		}
	}
	return rhc_request_consumer(rq, json_string_value(id), in_flight, max,
	    depth, tags, ntags);
}

/*
 * Fill rq from one JSON request, as `route-host route` reads them:
 * {"message": {...}, "consumers": [...], "timeout_ms": N}; an "id" member
 * is allowed and ignored.  -1 with the error stuck (it says where).
 */
int
rhc_request_json(struct rhc_request *rq, const char *text)
{
	static const char *const known[] = { "message", "consumers",
	    "timeout_ms", "id" };
	json_error_t	 je;
	json_t		*root, *msg, *cons, *t, *v;
	const char	*key;
	size_t		 i, k;
	int		 rc = -1;

	if (rq->error[0] != '\0')
		return rhc_request_fail(rq, EINVAL, "%s", rq->error);
	if ((root = json_loads(text, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return rhc_request_fail(rq, EINVAL, "invalid JSON at column "
		    "%d: %s", je.column, je.text);
	if (!json_is_object(root)) {
		rhc_request_fail(rq, EINVAL, "a request must be a JSON "
		    "object");
		goto out;
	}
	json_object_foreach(root, key, v) {
		for (k = 0; k < nitems(known); k++)
			if (strcmp(key, known[k]) == 0)
				break;
		if (k == nitems(known)) {
			rhc_request_fail(rq, EINVAL, "unknown key '%.40s'",
			    key);
			goto out;
		}
	}
	if ((t = json_object_get(root, "timeout_ms")) != NULL &&
	    (!json_is_integer(t) || json_integer_value(t) < 1 ||
	    json_integer_value(t) > 3600000)) {
		rhc_request_fail(rq, EINVAL, "\"timeout_ms\" must be an "
		    "integer from 1 to 3600000");
		goto out;
	}
	if (t != NULL)
		rq->timeout_ms = (uint32_t)json_integer_value(t);
	if ((msg = json_object_get(root, "message")) != NULL &&
	    !json_is_object(msg)) {
		rhc_request_fail(rq, EINVAL, "\"message\" must be an object");
		goto out;
	}
	json_object_foreach(msg, key, v) {
		switch (json_typeof(v)) {
		case JSON_NULL:
			rc = rhc_request_null(rq, key);
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			rc = rhc_request_bool(rq, key, json_is_true(v));
			break;
		case JSON_INTEGER:
			rc = rhc_request_int(rq, key, json_integer_value(v));
			break;
		case JSON_REAL:
			rc = rhc_request_float(rq, key, json_real_value(v));
			break;
		case JSON_STRING:
			rc = rhc_request_text(rq, key, json_string_value(v),
			    json_string_length(v));
			break;
		default:
			rc = rhc_request_fail(rq, EINVAL, "message field "
			    "'%.40s' is %s; fields must be null, boolean, "
			    "number or string", key, json_is_object(v) ?
			    "an object" : "an array");
			break;
		}
		if (rc == -1)
			goto out;
	}
	rc = -1;
	if (!json_is_array(cons = json_object_get(root, "consumers"))) {
		rhc_request_fail(rq, EINVAL, "\"consumers\" must be an array");
		goto out;
	}
	json_array_foreach(cons, i, v)
		if (rhc_request_json_consumer(rq, v, i) == -1)
			goto out;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/*
 * Append rq's call body to b (its fields, sorted, then its consumers) and
 * give its deadline; -1 with errno (EINVAL: rq has an error; E2BIG: over
 * the frame limit, or out of memory).
 */
int
rhc_request_encode(const struct rhc_request *rq, struct wire_buf *b,
    uint32_t *timeout_ms)
{
	if (rq->error[0] != '\0') {
		errno = EINVAL;
		return -1;
	}
	wire_body_begin(b, (uint32_t)rq->nfields, rq->nconsumers);
	for (size_t i = 0; i < rq->nfields; i++)
		(void)wire_body_field(b, rq->fields[i].name,
		    &rq->fields[i].value);
	wire_bytes(b, rq->consumers.data, rq->consumers.len);
	if (b->failed) {
		errno = E2BIG;
		return -1;
	}
	*timeout_ms = rq->timeout_ms;
	return 0;
}
