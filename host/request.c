/* SPDX-License-Identifier: ISC */
/*
 * The JSON lines the command line speaks, converted to and from call
 * bodies (wire.c).  A request line is
 *
 *	{"message": {"amount": 5000, "vip": true},
 *	 "consumers": [{"id": "a", "in_flight": 0, "max_in_flight": 4,
 *	    "buffer_depth": 0, "tags": ["fast"]}],
 *	 "timeout_ms": 20, "id": anything}
 *
 * and each answer one line of {"decision": ..., "version": ...} or
 * {"error": ..., "version": ..., "detail": ...}, with "id" echoed.
 */

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "route-host.h"

/* A message field, for sorting by name. */
struct request_field {
	const char	*name;
	json_t		*value;
};

/* Order fields bytewise by name. */
static int
request_field_cmp(const void *a, const void *b)
{
	const struct request_field	*x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Convert one JSON value to a field value; -1 if it is not flat. */
static int
request_value(json_t *j, struct route_value *v)
{
	memset(v, 0, sizeof *v);
	switch (json_typeof(j)) {
	case JSON_NULL:
		v->type = ROUTE_NULL;
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		v->type = ROUTE_BOOLEAN;
		v->boolean = json_is_true(j);
		break;
	case JSON_INTEGER:
		v->type = ROUTE_INTEGER;
		v->integer = json_integer_value(j);
		break;
	case JSON_REAL:
		v->type = ROUTE_FLOAT;
		v->real = json_real_value(j);
		break;
	case JSON_STRING:
		v->type = ROUTE_TEXT;
		v->text = json_string_value(j);
		v->len = json_string_length(j);
		break;
	default:
		return -1;
	}
	return 0;
}

/* Encode the message object's fields, sorted by name. */
static int
request_message(json_t *msg, struct wire_buf *b, char *err, size_t errlen)
{
	struct request_field	*f;
	struct route_value	 v;
	const char		*key;
	json_t			*val;
	size_t			 n = 0, i;
	int			 rc = -1;

	if (msg != NULL && !json_is_object(msg)) {
		snprintf(err, errlen, "\"message\" must be an object");
		return -1;
	}
	if (msg != NULL && json_object_size(msg) > WIRE_FIELDS_MAX) {
		snprintf(err, errlen, "message has %zu fields (at most %u)",
		    json_object_size(msg), WIRE_FIELDS_MAX);
		return -1;
	}
	if ((f = calloc(json_object_size(msg) + 1, sizeof *f)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_object_foreach(msg, key, val) {
		f[n].name = key;
		f[n].value = val;
		n++;
	}
	qsort(f, n, sizeof *f, request_field_cmp);
	for (i = 0; i < n; i++) {
		if (f[i].name[0] == '\0' || strlen(f[i].name) > WIRE_NAME_MAX) {
			snprintf(err, errlen, "message field name '%.40s' must "
			    "be 1 to %u bytes", f[i].name, WIRE_NAME_MAX);
			goto out;
		}
		if (request_value(f[i].value, &v) == -1) {
			snprintf(err, errlen, "message field '%s' is %s; "
			    "fields must be null, boolean, number or string",
			    f[i].name, json_is_object(f[i].value) ?
			    "an object" : "an array");
			goto out;
		}
	}
	wire_body_begin(b, (uint32_t)n, 0);
	for (i = 0; i < n; i++) {
		request_value(f[i].value, &v);
		if (wire_body_field(b, f[i].name, &v) == -1) {
			snprintf(err, errlen, "message field '%s' makes the "
			    "request too large", f[i].name);
			goto out;
		}
	}
	rc = 0;
out:
	free(f);
	return rc;
}

/* Read an optional uint32 member of a consumer. */
static int
request_u32(json_t *c, const char *key, size_t i, uint32_t *out, char *err,
    size_t errlen)
{
	json_t		*j = json_object_get(c, key);
	json_int_t	 v;

	*out = 0;
	if (j == NULL)
		return 0;
	if (!json_is_integer(j) || (v = json_integer_value(j)) < 0 ||
	    v > UINT32_MAX) {
		snprintf(err, errlen, "consumers[%zu].%s must be an integer "
		    "from 0 to %u", i, key, UINT32_MAX);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* Encode one consumer object. */
static int
request_consumer(json_t *j, size_t i, struct wire_buf *b, char *err,
    size_t errlen)
{
	static const char *const known[] = { "id", "in_flight",
	    "max_in_flight", "buffer_depth", "tags" };
	const char		*tags[WIRE_TAGS_MAX], *key;
	struct route_consumer	 c;
	json_t			*id, *jt, *val;
	size_t			 k;

	if (!json_is_object(j)) {
		snprintf(err, errlen, "consumers[%zu] must be an object", i);
		return -1;
	}
	json_object_foreach(j, key, val) {
		for (k = 0; k < sizeof known / sizeof known[0]; k++)
			if (strcmp(key, known[k]) == 0)
				break;
		if (k == sizeof known / sizeof known[0]) {
			snprintf(err, errlen, "consumers[%zu] has unknown key "
			    "'%.40s'", i, key);
			return -1;
		}
	}
	memset(&c, 0, sizeof c);
	id = json_object_get(j, "id");
	if (!json_is_string(id) || json_string_length(id) == 0 ||
	    json_string_length(id) > WIRE_NAME_MAX) {
		snprintf(err, errlen, "consumers[%zu].id must be a string of "
		    "1 to %u bytes", i, WIRE_NAME_MAX);
		return -1;
	}
	c.id = json_string_value(id);
	if (request_u32(j, "in_flight", i, &c.in_flight, err, errlen) == -1 ||
	    request_u32(j, "max_in_flight", i, &c.max_in_flight, err,
	    errlen) == -1 ||
	    request_u32(j, "buffer_depth", i, &c.buffer_depth, err,
	    errlen) == -1)
		return -1;
	jt = json_object_get(j, "tags");
	if (jt != NULL) {
		if (!json_is_array(jt) || json_array_size(jt) > WIRE_TAGS_MAX) {
			snprintf(err, errlen, "consumers[%zu].tags must be an "
			    "array of at most %u strings", i, WIRE_TAGS_MAX);
			return -1;
		}
		json_array_foreach(jt, k, val) {
			if (!json_is_string(val) ||
			    json_string_length(val) > WIRE_NAME_MAX) {
				snprintf(err, errlen, "consumers[%zu].tags[%zu] "
				    "must be a string of at most %u bytes", i,
				    k, WIRE_NAME_MAX);
				return -1;
			}
			tags[k] = json_string_value(val);
		}
		c.tags = tags;
		c.ntags = json_array_size(jt);
	}
	if (wire_body_consumer(b, &c) == -1) {
		snprintf(err, errlen, "consumers[%zu] makes the request too "
		    "large", i);
		return -1;
	}
	return 0;
}

/*
 * Parse one request line into a call body.  On success *root holds the
 * parsed request (for the consumer ids and the echoed id) and *timeout_ms
 * its deadline (0 for the default).  On error, err says what and where;
 * *root may still be set, for the id.
 */
int
request_parse(const char *line, struct wire_buf *b, json_t **root,
    int *timeout_ms, char *err, size_t errlen)
{
	static const char *const known[] = { "message", "consumers",
	    "timeout_ms", "id" };
	json_error_t	 je;
	json_t		*cons, *t, *val;
	const char	*key;
	size_t		 i, k;
	unsigned char	*p;

	*timeout_ms = 0;
	wire_init(b);
	*root = json_loads(line, JSON_REJECT_DUPLICATES, &je);
	if (*root == NULL) {
		snprintf(err, errlen, "invalid JSON at column %d: %s",
		    je.column, je.text);
		return -1;
	}
	if (!json_is_object(*root)) {
		snprintf(err, errlen, "a request must be a JSON object");
		return -1;
	}
	json_object_foreach(*root, key, val) {
		for (k = 0; k < sizeof known / sizeof known[0]; k++)
			if (strcmp(key, known[k]) == 0)
				break;
		if (k == sizeof known / sizeof known[0]) {
			snprintf(err, errlen, "unknown key '%.40s'", key);
			return -1;
		}
	}
	if ((t = json_object_get(*root, "timeout_ms")) != NULL) {
		if (!json_is_integer(t) || json_integer_value(t) < 1 ||
		    json_integer_value(t) > 3600000) {
			snprintf(err, errlen, "\"timeout_ms\" must be an "
			    "integer from 1 to 3600000");
			return -1;
		}
		*timeout_ms = (int)json_integer_value(t);
	}
	cons = json_object_get(*root, "consumers");
	if (!json_is_array(cons)) {
		snprintf(err, errlen, "\"consumers\" must be an array");
		return -1;
	}
	if (json_array_size(cons) > WIRE_CONSUMERS_MAX) {
		snprintf(err, errlen, "%zu consumers (at most %u)",
		    json_array_size(cons), WIRE_CONSUMERS_MAX);
		return -1;
	}
	if (request_message(json_object_get(*root, "message"), b, err,
	    errlen) == -1)
		return -1;
	json_array_foreach(cons, i, val)
		if (request_consumer(val, i, b, err, errlen) == -1)
			return -1;
	if (b->failed) {
		snprintf(err, errlen, "request over %u bytes", WIRE_FRAME_MAX);
		return -1;
	}
	/* The consumer count sits after the field count. */
	p = b->data + 4;
	wire_put_u32(p, (uint32_t)json_array_size(cons));
	return 0;
}

/*
 * Format a result as one JSON line (no newline); the caller frees it.
 * error names a failure when the engine's status cannot (the client
 * library's own, connection_lost), or is NULL; version is the answering
 * version's hex, or NULL.
 */
char *
request_format(const struct result *r, const char *error,
    const char *version, json_t *root)
{
	json_t		*out, *id = NULL, *cons, *c;
	char		*s;

	if (root != NULL && json_is_object(root))
		id = json_object_get(root, "id");
	out = json_object();
	if (id != NULL)
		json_object_set(out, "id", id);
	if (r->status == ST_OK) {
		if (r->decision == ROUTE_NONE)
			json_object_set_new(out, "decision", json_null());
		else {
			cons = json_object_get(root, "consumers");
			c = json_array_get(cons, (size_t)r->decision);
			json_object_set(out, "decision",
			    json_object_get(c, "id"));
		}
	} else
		json_object_set_new(out, "error", json_string(error != NULL ?
		    error : engine_status_name(r->status)));
	if (version != NULL)
		json_object_set_new(out, "version", json_string(version));
	if (r->status != ST_OK)
		json_object_set_new(out, "detail", json_string(r->detail));
	s = json_dumps(out, JSON_PRESERVE_ORDER);
	json_decref(out);
	return s;
}
