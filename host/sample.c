/* SPDX-License-Identifier: ISC */
/*
 * Samples: the requests check --fuzz sends a plugin, as JSON objects the
 * way route reads them, so that any one is a line ready for route
 * --plugin.
 *
 * sample_request draws one from a seeded generator (splitmix64: the same
 * seed gives the same requests on every machine): a message of zero to
 * six fields, each of a random type or missing, with names the plugin is
 * likely to read (the default sample's, and a few common ones), values at
 * the edges (0, -1, the largest integers, empty and long strings); and a
 * consumer list that is empty, ordinary or huge (hundreds), with tags
 * repeated and empty, and consumers saturated (in_flight at or past
 * max_in_flight).  Nothing the host refuses before a plugin sees it
 * (nested values, duplicate consumer ids).
 *
 * sample_shrink enumerates the requests one step smaller than a given
 * one (a field, a consumer, a tag or a consumer's optional key less), for
 * check to keep the smallest that still fails the same way.
 */

#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "route-host.h"

#define SAMPLE_FIELDS_MAX	6
#define SAMPLE_HUGE_MIN		64	/* consumers in a huge list */
#define SAMPLE_HUGE_MAX		512
#define SAMPLE_LONG		4096	/* bytes in a long string */

/* Field names a plugin is likely to read. */
static const char *const sample_names[] = {
	"amount", "region", "vip", "user", "tenant", "priority", "key",
	"size", "id",
};

/* Tags consumers carry. */
static const char *const sample_tags[] = { "eu", "us", "vip", "" };

/* The next 64 random bits. */
static uint64_t
sample_next(struct sample_gen *g)
{
	uint64_t	z = (g->state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A number in [0, n). */
static uint64_t
sample_below(struct sample_gen *g, uint64_t n)
{
	return n == 0 ? 0 : sample_next(g) % n;
}

/* Start the generator at seed. */
void
sample_seed(struct sample_gen *g, uint64_t seed)
{
	g->state = seed;
}

/* A string: empty, short, a tag's, or long. */
static json_t *
sample_string(struct sample_gen *g)
{
	static char	long_s[SAMPLE_LONG + 1];
	char		s[17];
	size_t		n;

	switch (sample_below(g, 4)) {
	case 0:
		return json_string("");
	case 1:
		return json_string(sample_tags[sample_below(g,
		    nitems(sample_tags))]);
	case 2:
		n = (size_t)sample_below(g, sizeof s - 1) + 1;
		for (size_t i = 0; i < n; i++)
			s[i] = (char)('a' + sample_below(g, 26));
		s[n] = '\0';
		return json_string(s);
	default:
		memset(long_s, 'x', SAMPLE_LONG);
		long_s[SAMPLE_LONG] = '\0';
		return json_string(long_s);
	}
}

/* A field value of a random type, at the edges as often as not. */
static json_t *
sample_value(struct sample_gen *g)
{
	static const json_int_t	ints[] = { 0, 1, -1, 5000, INT64_MAX,
				    INT64_MIN };
	static const double	reals[] = { 0.0, 0.5, -1.5, 1e308, -1e308 };

	switch (sample_below(g, 5)) {
	case 0:
		return json_null();
	case 1:
		return json_boolean(sample_below(g, 2));
	case 2:
		if (sample_below(g, 2))
			return json_integer(ints[sample_below(g,
			    nitems(ints))]);
		return json_integer((json_int_t)sample_below(g, 100000));
	case 3:
		return json_real(reals[sample_below(g, nitems(reals))]);
	default:
		return sample_string(g);
	}
}

/* Consumer i: capacity, saturated a third of the time, tags. */
static json_t *
sample_consumer(struct sample_gen *g, size_t i)
{
	json_t		*c, *tags;
	char		 id[32];
	uint64_t	 max = sample_below(g, 9), ntags;

	snprintf(id, sizeof id, "c%zu", i);
	c = json_pack("{s:s, s:I}", "id", id, "max_in_flight",
	    (json_int_t)max);
	/* Saturated a third of the time: at or past its maximum. */
	json_object_set_new(c, "in_flight", json_integer((json_int_t)
	    (sample_below(g, 3) == 0 ? max + sample_below(g, 2) :
	    sample_below(g, max + 1))));
	if (sample_below(g, 3) == 0)
		json_object_set_new(c, "buffer_depth",
		    json_integer((json_int_t)sample_below(g, 10)));
	if ((ntags = sample_below(g, 4)) > 0) {
		tags = json_array();
		for (uint64_t t = 0; t < ntags; t++)
			json_array_append_new(tags, json_string(sample_tags[
			    sample_below(g, nitems(sample_tags))]));
		json_object_set_new(c, "tags", tags);
	}
	return c;
}

/*
 * The next request: {"message": {...}, "consumers": [...]}, the field
 * names drawn from base's message (the default sample) and common ones.
 */
json_t *
sample_request(struct sample_gen *g, const json_t *base)
{
	const json_t	*bm = json_object_get(base, "message");
	const char	*names[nitems(sample_names) + 16], *key;
	json_t		*msg = json_object(), *cons = json_array(), *v;
	size_t		 nnames = 0, n;

	json_object_foreach((json_t *)bm, key, v)
		if (nnames < 16)
			names[nnames++] = key;
	for (size_t i = 0; i < nitems(sample_names); i++)
		names[nnames++] = sample_names[i];
	n = (size_t)sample_below(g, SAMPLE_FIELDS_MAX + 1);
	for (size_t i = 0; i < n; i++)
		json_object_set_new(msg, names[sample_below(g, nnames)],
		    sample_value(g));
	switch (sample_below(g, 10)) {
	case 0:
		n = 0;
		break;
	case 1:
		n = (size_t)(SAMPLE_HUGE_MIN + sample_below(g,
		    SAMPLE_HUGE_MAX - SAMPLE_HUGE_MIN));
		break;
	default:
		n = (size_t)sample_below(g, 8) + 1;
		break;
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(cons, sample_consumer(g, i));
	return json_pack("{s:o, s:o}", "message", msg, "consumers", cons);
}

/* A deep copy of req with the item at index i of array a removed. */
static json_t *
sample_without(const json_t *req, json_t *(*pick)(json_t *), size_t i)
{
	json_t	*c = json_deep_copy(req);

	if (c == NULL || json_array_remove(pick(c), i) == -1) {
		json_decref(c);
		return NULL;
	}
	return c;
}

/* The consumer list of a request. */
static json_t *
sample_consumers(json_t *req)
{
	return json_object_get(req, "consumers");
}

/*
 * The i-th request one step smaller than req, or NULL when there are no
 * more: without one message field, then without one consumer, then a
 * consumer without one of its tags or optional keys.
 */
json_t *
sample_shrink(const json_t *req, size_t i)
{
	static const char *const optional[] = { "buffer_depth", "tags",
	    "in_flight" };
	const json_t	*msg = json_object_get(req, "message");
	const json_t	*cons = json_object_get(req, "consumers");
	json_t		*c, *cc;
	const char	*key;
	json_t		*v;
	size_t		 k = 0, j;

	json_object_foreach((json_t *)msg, key, v) {
		if (k++ == i) {
			c = json_deep_copy(req);
			json_object_del(json_object_get(c, "message"), key);
			return c;
		}
	}
	i -= k;
	if (i < json_array_size(cons))
		return sample_without(req, sample_consumers, i);
	i -= json_array_size(cons);
	json_array_foreach(cons, j, v) {
		for (size_t o = 0; o < nitems(optional); o++) {
			if (json_object_get(v, optional[o]) == NULL)
				continue;
			if (i-- > 0)
				continue;
			c = json_deep_copy(req);
			cc = json_array_get(json_object_get(c, "consumers"), j);
			json_object_del(cc, optional[o]);
			return c;
		}
	}
	return NULL;
}
