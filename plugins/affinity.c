/* SPDX-License-Identifier: ISC */
/*
 * affinity: prefers consumers that advertise the message's tag.  Option
 * field=NAME (required) names a text field of the message; among the
 * consumers that advertise its value as a tag and have capacity, the least
 * loaded wins: the most available capacity, then the smaller buffer depth,
 * then the earlier consumer.
 *
 * When no such consumer exists, or the message lacks the field or has it
 * with another type than text, the fallback applies: fallback=least-loaded
 * (the default) picks the least loaded of all consumers with capacity,
 * fallback=none picks none.
 */

#include <stdio.h>
#include <stdlib.h>

#include <route-host/plugin.h>

/* What init parsed. */
struct affinity_state {
	char	*field;		/* the message field naming the tag */
	bool	 fallback;	/* least-loaded when no tagged consumer fits */
};

/* True when consumer c advertises the tag text (len bytes). */
static bool
affinity_has_tag(const struct route_consumer *c, const char *text, size_t len)
{
	for (size_t i = 0; i < c->ntags; i++)
		if (c->tags[i] != NULL && strlen(c->tags[i]) == len &&
		    memcmp(c->tags[i], text, len) == 0)
			return true;
	return false;
}

/* True when a is less loaded than b (a comes later in the order given). */
static bool
affinity_better(const struct route_consumer *a, const struct route_consumer *b)
{
	uint32_t	avail_a = route_consumer_available(a);
	uint32_t	avail_b = route_consumer_available(b);

	return avail_a > avail_b ||
	    (avail_a == avail_b && a->buffer_depth < b->buffer_depth);
}

/* The least loaded consumer with capacity (and the tag when text is set). */
static int
affinity_least_loaded(const struct route_consumer *consumers, size_t n,
    const char *text, size_t len)
{
	int	best = ROUTE_NONE;

	for (size_t i = 0; i < n; i++) {
		if (!route_consumer_has_capacity(&consumers[i]))
			continue;
		if (text != NULL && !affinity_has_tag(&consumers[i], text, len))
			continue;
		if (best == ROUTE_NONE ||
		    affinity_better(&consumers[i], &consumers[best]))
			best = (int)i;
	}
	return best;
}

/* Pick the least loaded tagged consumer, else fall back. */
static int
affinity(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	struct affinity_state		*s = state;
	const struct route_value	*v;
	int				 best = ROUTE_NONE;

	if (s == NULL || msg == NULL || n > (size_t)INT32_MAX)
		return ROUTE_NONE;
	v = route_message_get(msg, s->field);
	if (v != NULL && v->type == ROUTE_TEXT && v->text != NULL)
		best = affinity_least_loaded(consumers, n, v->text, v->len);
	if (best == ROUTE_NONE && s->fallback)
		best = affinity_least_loaded(consumers, n, NULL, 0);
	return best;
}

/* Parse field= and fallback=. */
static int
affinity_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	struct affinity_state	*s;
	const char		*field, *fallback;
	bool			 fb = true;

	for (size_t i = 0; i < nopts; i++)
		if (strcmp(opts[i].key, "field") != 0 &&
		    strcmp(opts[i].key, "fallback") != 0) {
			snprintf(err, errlen, "affinity: unknown option %s "
			    "(options are field= and fallback=)", opts[i].key);
			return -1;
		}
	field = route_option_get(opts, nopts, "field");
	if (field == NULL || *field == '\0') {
		snprintf(err, errlen, "affinity: option field=NAME is required");
		return -1;
	}
	fallback = route_option_get(opts, nopts, "fallback");
	if (fallback == NULL || strcmp(fallback, "least-loaded") == 0)
		fb = true;
	else if (strcmp(fallback, "none") == 0)
		fb = false;
	else {
		snprintf(err, errlen, "affinity: option fallback=%s is not "
		    "one of none, least-loaded", fallback);
		return -1;
	}
	if ((s = calloc(1, sizeof *s)) == NULL ||
	    (s->field = strdup(field)) == NULL) {
		free(s);
		snprintf(err, errlen, "affinity: out of memory");
		return -1;
	}
	s->fallback = fb;
	*state = s;
	return 0;
}

/* Free what init allocated. */
static void
affinity_fini(void *state)
{
	struct affinity_state	*s = state;

	if (s != NULL) {
		free(s->field);
		free(s);
	}
}

ROUTE_PLUGIN_STATEFUL("affinity", affinity, affinity_init, affinity_fini);
