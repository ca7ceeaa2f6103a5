/* SPDX-License-Identifier: ISC */
/*
 * sticky: sends equal keys to the same consumer, by rendezvous (highest
 * random weight) hashing.  Option field=NAME (required) names the key
 * field, text or integer (an integer hashes as its decimal text).  Each
 * consumer with capacity gets the weight hash(key, consumer id), a 64-bit
 * FNV-1a over the key's bytes, a 0 byte and the id's bytes, mixed by the
 * splitmix64 finalizer; the heaviest wins, ties to the earlier consumer.
 *
 * Adding or removing a consumer only moves the keys that it wins or had
 * won.  Consumers without capacity are skipped, so while one is full its
 * keys go to their next heaviest consumer and come back once it has room
 * again.  A message without the key field, or with it of another type,
 * gets none.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <route-host/plugin.h>

/* What init parsed. */
struct sticky_state {
	char	*field;		/* the message field holding the key */
};

/* FNV-1a 64 over len bytes of p, continuing from h. */
static uint64_t
sticky_fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char	*b = p;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* The weight of consumer id for key (len bytes). */
static uint64_t
sticky_weight(const char *key, size_t len, const char *id)
{
	uint64_t	h = UINT64_C(0xcbf29ce484222325);
	unsigned char	zero = 0;

	h = sticky_fnv(h, key, len);
	h = sticky_fnv(h, &zero, 1);
	h = sticky_fnv(h, id, strlen(id));
	h = (h ^ (h >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	h = (h ^ (h >> 27)) * UINT64_C(0x94d049bb133111eb);
	return h ^ (h >> 31);
}

/* Pick the consumer with capacity that weighs most for the key. */
static int
sticky(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	struct sticky_state		*s = state;
	const struct route_value	*v;
	const char			*key;
	char				 buf[32];
	size_t				 len;
	uint64_t			 w, best_w = 0;
	int				 best = ROUTE_NONE;

	if (s == NULL || msg == NULL || n > (size_t)INT32_MAX)
		return ROUTE_NONE;
	if ((v = route_message_get(msg, s->field)) == NULL)
		return ROUTE_NONE;
	if (v->type == ROUTE_TEXT && v->text != NULL) {
		key = v->text;
		len = v->len;
	} else if (v->type == ROUTE_INTEGER) {
		snprintf(buf, sizeof buf, "%" PRId64, v->integer);
		key = buf;
		len = strlen(buf);
	} else
		return ROUTE_NONE;

	for (size_t i = 0; i < n; i++) {
		if (!route_consumer_has_capacity(&consumers[i]) ||
		    consumers[i].id == NULL)
			continue;
		w = sticky_weight(key, len, consumers[i].id);
		if (best == ROUTE_NONE || w > best_w) {
			best = (int)i;
			best_w = w;
		}
	}
	return best;
}

/* Parse field=. */
static int
sticky_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	struct sticky_state	*s;
	const char		*field;

	for (size_t i = 0; i < nopts; i++)
		if (strcmp(opts[i].key, "field") != 0) {
			snprintf(err, errlen, "sticky: unknown option %s "
			    "(the only option is field=NAME)", opts[i].key);
			return -1;
		}
	field = route_option_get(opts, nopts, "field");
	if (field == NULL || *field == '\0') {
		snprintf(err, errlen, "sticky: option field=NAME is required");
		return -1;
	}
	if ((s = calloc(1, sizeof *s)) == NULL ||
	    (s->field = strdup(field)) == NULL) {
		free(s);
		snprintf(err, errlen, "sticky: out of memory");
		return -1;
	}
	*state = s;
	return 0;
}

/* Free what init allocated. */
static void
sticky_fini(void *state)
{
	struct sticky_state	*s = state;

	if (s != NULL) {
		free(s->field);
		free(s);
	}
}

ROUTE_PLUGIN_STATEFUL("sticky", sticky, sticky_init, sticky_fini);
