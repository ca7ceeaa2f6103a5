/* SPDX-License-Identifier: ISC */
/*
 * threshold: routes messages whose numeric field crosses a threshold to
 * the consumers with a tag.  Options:
 *
 *	field=NAME	required; an integer or float field of the message
 *	op=OP		gt (the default), ge, lt, le, eq or ne
 *	value=NUMBER	required; the threshold, a finite number
 *	tag=TAG		required; the tag of the consumers for matches
 *	fallback=F	none (the default), first-available or least-loaded
 *
 * When "field OP value" holds, the least loaded consumer with the tag and
 * capacity wins: the most available capacity, then the smaller buffer
 * depth, then the earlier consumer.  Otherwise, or when no such consumer
 * has capacity, the fallback applies over all consumers with capacity.  A
 * message without the field, or with it of another type, does not match.
 * Integers are compared as doubles, so beyond 2^53 they round; a NaN
 * field matches only ne.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <route-host/plugin.h>

/* The comparisons op= names. */
enum threshold_op {
	THRESHOLD_GT,
	THRESHOLD_GE,
	THRESHOLD_LT,
	THRESHOLD_LE,
	THRESHOLD_EQ,
	THRESHOLD_NE,
};

/* What fallback= names. */
enum threshold_fallback {
	THRESHOLD_NONE,
	THRESHOLD_FIRST_AVAILABLE,
	THRESHOLD_LEAST_LOADED,
};

/* What init parsed. */
struct threshold_state {
	char			*field;
	char			*tag;
	enum threshold_op	 op;
	double			 value;
	enum threshold_fallback	 fallback;
};

/* True when a is less loaded than b (a comes later in the order given). */
static bool
threshold_better(const struct route_consumer *a,
    const struct route_consumer *b)
{
	uint32_t	avail_a = route_consumer_available(a);
	uint32_t	avail_b = route_consumer_available(b);

	return avail_a > avail_b ||
	    (avail_a == avail_b && a->buffer_depth < b->buffer_depth);
}

/* The least loaded consumer with capacity (and tag, unless NULL). */
static int
threshold_least_loaded(const struct route_consumer *consumers, size_t n,
    const char *tag)
{
	int	best = ROUTE_NONE;

	for (size_t i = 0; i < n; i++) {
		if (!route_consumer_has_capacity(&consumers[i]))
			continue;
		if (tag != NULL && !route_consumer_has_affinity(&consumers[i],
		    tag))
			continue;
		if (best == ROUTE_NONE ||
		    threshold_better(&consumers[i], &consumers[best]))
			best = (int)i;
	}
	return best;
}

/* True when the message's field compares true against the threshold. */
static bool
threshold_matches(const struct threshold_state *s,
    const struct route_message *msg)
{
	const struct route_value	*v;
	double				 x;

	if ((v = route_message_get(msg, s->field)) == NULL)
		return false;
	if (v->type == ROUTE_INTEGER)
		x = (double)v->integer;
	else if (v->type == ROUTE_FLOAT)
		x = v->real;
	else
		return false;
	switch (s->op) {
	case THRESHOLD_GT:
		return x > s->value;
	case THRESHOLD_GE:
		return x >= s->value;
	case THRESHOLD_LT:
		return x < s->value;
	case THRESHOLD_LE:
		return x <= s->value;
	case THRESHOLD_EQ:
		return x == s->value;
	case THRESHOLD_NE:
		return x != s->value;
	}
	return false;
}

/* Pick a tagged consumer on a match, else apply the fallback. */
static int
threshold(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	struct threshold_state	*s = state;
	int			 best = ROUTE_NONE;

	if (s == NULL || msg == NULL || n > (size_t)INT32_MAX)
		return ROUTE_NONE;
	if (threshold_matches(s, msg))
		best = threshold_least_loaded(consumers, n, s->tag);
	if (best != ROUTE_NONE)
		return best;
	switch (s->fallback) {
	case THRESHOLD_NONE:
		break;
	case THRESHOLD_FIRST_AVAILABLE:
		for (size_t i = 0; i < n; i++)
			if (route_consumer_has_capacity(&consumers[i]))
				return (int)i;
		break;
	case THRESHOLD_LEAST_LOADED:
		return threshold_least_loaded(consumers, n, NULL);
	}
	return ROUTE_NONE;
}

/* Parse op=; -1 when it names no comparison. */
static int
threshold_parse_op(const char *s, enum threshold_op *op)
{
	static const char *const	names[] = {
		"gt", "ge", "lt", "le", "eq", "ne"
	};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i]) == 0) {
			*op = (enum threshold_op)i;
			return 0;
		}
	return -1;
}

/* Parse value=; -1 unless it is a finite number and nothing else. */
static int
threshold_parse_value(const char *s, double *value)
{
	char	*end;

	if (*s == '\0')
		return -1;
	*value = strtod(s, &end);
	if (*end != '\0' || !isfinite(*value))
		return -1;
	return 0;
}

/* Check and copy the options. */
static int
threshold_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	static const char *const	 known[] = {
		"field", "op", "value", "tag", "fallback"
	};
	struct threshold_state		*s;
	const char			*field, *op, *value, *tag, *fallback;
	struct threshold_state		 t;
	size_t				 k;

	memset(&t, 0, sizeof t);
	for (size_t i = 0; i < nopts; i++) {
		for (k = 0; k < sizeof known / sizeof known[0]; k++)
			if (strcmp(opts[i].key, known[k]) == 0)
				break;
		if (k == sizeof known / sizeof known[0]) {
			snprintf(err, errlen, "threshold: unknown option %s "
			    "(options are field=, op=, value=, tag= and "
			    "fallback=)", opts[i].key);
			return -1;
		}
	}
	field = route_option_get(opts, nopts, "field");
	if (field == NULL || *field == '\0') {
		snprintf(err, errlen, "threshold: option field=NAME is required");
		return -1;
	}
	value = route_option_get(opts, nopts, "value");
	if (value == NULL) {
		snprintf(err, errlen, "threshold: option value=NUMBER is "
		    "required");
		return -1;
	}
	if (threshold_parse_value(value, &t.value) == -1) {
		snprintf(err, errlen, "threshold: option value=%s is not a "
		    "finite number", value);
		return -1;
	}
	tag = route_option_get(opts, nopts, "tag");
	if (tag == NULL || *tag == '\0') {
		snprintf(err, errlen, "threshold: option tag=TAG is required");
		return -1;
	}
	t.op = THRESHOLD_GT;
	if ((op = route_option_get(opts, nopts, "op")) != NULL &&
	    threshold_parse_op(op, &t.op) == -1) {
		snprintf(err, errlen, "threshold: option op=%s is not one of "
		    "gt, ge, lt, le, eq, ne", op);
		return -1;
	}
	t.fallback = THRESHOLD_NONE;
	if ((fallback = route_option_get(opts, nopts, "fallback")) == NULL ||
	    strcmp(fallback, "none") == 0)
		t.fallback = THRESHOLD_NONE;
	else if (strcmp(fallback, "first-available") == 0)
		t.fallback = THRESHOLD_FIRST_AVAILABLE;
	else if (strcmp(fallback, "least-loaded") == 0)
		t.fallback = THRESHOLD_LEAST_LOADED;
	else {
		snprintf(err, errlen, "threshold: option fallback=%s is not "
		    "one of none, first-available, least-loaded", fallback);
		return -1;
	}

	if ((s = calloc(1, sizeof *s)) == NULL ||
	    (s->field = strdup(field)) == NULL ||
	    (s->tag = strdup(tag)) == NULL) {
		if (s != NULL)
			free(s->field);
		free(s);
		snprintf(err, errlen, "threshold: out of memory");
		return -1;
	}
	s->op = t.op;
	s->value = t.value;
	s->fallback = t.fallback;
	*state = s;
	return 0;
}

/* Free what init allocated. */
static void
threshold_fini(void *state)
{
	struct threshold_state	*s = state;

	if (s != NULL) {
		free(s->field);
		free(s->tag);
		free(s);
	}
}

ROUTE_PLUGIN_STATEFUL("threshold", threshold, threshold_init,
    threshold_fini);
