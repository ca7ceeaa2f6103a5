/* SPDX-License-Identifier: ISC */
/*
 * The shipped routing strategies, loaded in-process with dlopen and called
 * directly: property tests over many random consumer sets and messages
 * from a fixed-seed generator (never an index out of range, never a
 * consumer without capacity, never a crash on a missing or mistyped
 * field), plus each strategy's own promise: least-loaded is least loaded,
 * round-robin and power-of-two spread evenly, power-of-two takes the less
 * loaded of its two draws, sticky keys stay put and only the removed
 * consumer's keys move, affinity and threshold prefer tagged consumers and
 * fall back as configured, and bad options fail init with a reason.
 */

#include "config.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <route-host/plugin.h>

/* The critical chi-square value for 5 degrees of freedom at p = 0.001. */
#define TEST_PLUGINS_CHI2_5DF	20.515

/* The most consumers a random set has. */
#define TEST_PLUGINS_MAXC	12

/* Random iterations per strategy in the property tests. */
#define TEST_PLUGINS_ROUNDS	5000

/* A loaded strategy: the library, its descriptor and its state. */
struct test_plugins_loaded {
	void				*dl;
	const struct route_plugin	*d;
	void				*state;
};

/* A random consumer set. */
struct test_plugins_set {
	struct route_consumer	 c[TEST_PLUGINS_MAXC];
	char			 ids[TEST_PLUGINS_MAXC][16];
	const char		*tags[TEST_PLUGINS_MAXC][4];
	size_t			 n;
};

/* A message being built: fields must be added sorted by name. */
struct test_plugins_msg {
	struct route_field	f[8];
	struct route_message	m;
	char			text[8][32];
};

/* The tags consumers advertise and text fields carry. */
static const char *const test_plugins_tags[] = {
	"eu", "us", "gpu", "fast", "ap"
};
#define TEST_PLUGINS_NTAGS \
	(sizeof test_plugins_tags / sizeof test_plugins_tags[0])

/* The next 64 random bits (splitmix64); the tests' own generator. */
static uint64_t
test_plugins_rand(uint64_t *x)
{
	uint64_t	z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* A random number in [0, bound). */
static uint32_t
test_plugins_below(uint64_t *x, uint32_t bound)
{
	return (uint32_t)(test_plugins_rand(x) % bound);
}

/* Load a shipped strategy and run its init; returns what init returned. */
static int
test_plugins_open(struct test_plugins_loaded *l, const char *name,
    const struct route_option *opts, size_t nopts, char *err, size_t errlen)
{
	const char	*dir = getenv("SHIPPED_PLUGINS");
	char		 path[PATH_MAX];
	char		 buf[256];

	if (dir == NULL)
		dir = "plugins/.libs";
	snprintf(path, sizeof path, "%s/%s.so", dir, name);
	memset(l, 0, sizeof *l);
	l->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (l->dl == NULL)
		fail_msg("dlopen %s: %s", path, dlerror());
	l->d = dlsym(l->dl, ROUTE_PLUGIN_SYMBOL);
	if (l->d == NULL)
		fail_msg("%s: no %s symbol", path, ROUTE_PLUGIN_SYMBOL);
	assert_int_equal(l->d->abi, ROUTE_ABI_VERSION);
	assert_true(l->d->size >= sizeof *l->d);
	assert_string_equal(l->d->name, name);
	assert_non_null(l->d->route);
	if (l->d->init == NULL)
		return 0;
	if (err == NULL) {
		err = buf;
		errlen = sizeof buf;
	}
	memset(err, 0, errlen);
	return l->d->init(&l->state, opts, nopts, err, errlen);
}

/* Load a strategy whose init must succeed. */
static void
test_plugins_load(struct test_plugins_loaded *l, const char *name,
    const struct route_option *opts, size_t nopts)
{
	char	err[256];

	if (test_plugins_open(l, name, opts, nopts, err, sizeof err) != 0)
		fail_msg("%s: init failed: %s", name, err);
}

/* Run fini and unload. */
static void
test_plugins_close(struct test_plugins_loaded *l)
{
	if (l->d != NULL && l->d->fini != NULL)
		l->d->fini(l->state);
	if (l->dl != NULL)
		dlclose(l->dl);
	memset(l, 0, sizeof *l);
}

/* Call the routing function. */
static int
test_plugins_route(const struct test_plugins_loaded *l,
    const struct route_message *m, const struct route_consumer *c, size_t n)
{
	return l->d->route(l->state, m, c, n);
}

/* Set consumer i of s: in flight, max, depth, and up to 3 tags. */
static void
test_plugins_consumer(struct test_plugins_set *s, size_t i, uint32_t in_flight,
    uint32_t max_in_flight, uint32_t depth, const char *t0, const char *t1)
{
	struct route_consumer	*c = &s->c[i];

	snprintf(s->ids[i], sizeof s->ids[i], "c%zu", i);
	c->id = s->ids[i];
	c->in_flight = in_flight;
	c->max_in_flight = max_in_flight;
	c->buffer_depth = depth;
	c->ntags = 0;
	if (t0 != NULL)
		s->tags[i][c->ntags++] = t0;
	if (t1 != NULL)
		s->tags[i][c->ntags++] = t1;
	c->tags = s->tags[i];
	if (i >= s->n)
		s->n = i + 1;
}

/* A random set of 0..12 consumers. */
static void
test_plugins_random_set(uint64_t *x, struct test_plugins_set *s)
{
	memset(s, 0, sizeof *s);
	s->n = test_plugins_below(x, TEST_PLUGINS_MAXC + 1);
	for (size_t i = 0; i < s->n; i++) {
		struct route_consumer	*c = &s->c[i];
		size_t			 nt = test_plugins_below(x, 4);

		snprintf(s->ids[i], sizeof s->ids[i], "node-%zu", i);
		c->id = s->ids[i];
		c->in_flight = test_plugins_below(x, 6);
		c->max_in_flight = test_plugins_below(x, 6);
		c->buffer_depth = test_plugins_below(x, 10);
		for (size_t k = 0; k < nt; k++)
			s->tags[i][k] = test_plugins_tags[test_plugins_below(x,
			    TEST_PLUGINS_NTAGS)];
		c->tags = s->tags[i];
		c->ntags = nt;
	}
}

/* Start an empty message. */
static void
test_plugins_msg_init(struct test_plugins_msg *m)
{
	memset(m, 0, sizeof *m);
	m->m.fields = m->f;
}

/* Add a field; names must come in bytewise order. */
static struct route_value *
test_plugins_msg_add(struct test_plugins_msg *m, const char *name,
    enum route_type type)
{
	struct route_field	*f = &m->f[m->m.nfields++];

	f->name = name;
	f->value.type = type;
	return &f->value;
}

/* Add a text field. */
static void
test_plugins_msg_text(struct test_plugins_msg *m, const char *name,
    const char *text)
{
	struct route_value	*v = test_plugins_msg_add(m, name, ROUTE_TEXT);
	size_t			 i = m->m.nfields - 1;

	snprintf(m->text[i], sizeof m->text[i], "%s", text);
	v->text = m->text[i];
	v->len = strlen(m->text[i]);
}

/* Add an integer field. */
static void
test_plugins_msg_int(struct test_plugins_msg *m, const char *name, int64_t n)
{
	test_plugins_msg_add(m, name, ROUTE_INTEGER)->integer = n;
}

/* Add a float field. */
static void
test_plugins_msg_real(struct test_plugins_msg *m, const char *name, double d)
{
	test_plugins_msg_add(m, name, ROUTE_FLOAT)->real = d;
}

/* A random message: each of a few fields present or not, any type. */
static void
test_plugins_random_msg(uint64_t *x, struct test_plugins_msg *m)
{
	static const char *const	names[] = {
		"a", "key", "region", "score", "zz"
	};
	char				buf[32];

	test_plugins_msg_init(m);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (test_plugins_below(x, 4) == 0)
			continue;
		switch (test_plugins_below(x, 5)) {
		case 0:
			test_plugins_msg_add(m, names[i], ROUTE_NULL);
			break;
		case 1:
			test_plugins_msg_add(m, names[i],
			    ROUTE_BOOLEAN)->boolean = test_plugins_below(x, 2);
			break;
		case 2:
			test_plugins_msg_int(m, names[i],
			    (int64_t)test_plugins_rand(x) >>
			    test_plugins_below(x, 64));
			break;
		case 3:
			test_plugins_msg_real(m, names[i],
			    ((double)test_plugins_below(x, 2001) - 1000) / 100);
			break;
		default:
			if (test_plugins_below(x, 2) == 0)
				snprintf(buf, sizeof buf, "%s",
				    test_plugins_tags[test_plugins_below(x,
				    TEST_PLUGINS_NTAGS)]);
			else
				snprintf(buf, sizeof buf, "k%" PRIu32,
				    test_plugins_below(x, 1000));
			test_plugins_msg_text(m, names[i], buf);
			break;
		}
	}
}

/* True when a is strictly less loaded than b (least-loaded's order). */
static bool
test_plugins_better(const struct route_consumer *a,
    const struct route_consumer *b)
{
	uint32_t	aa = route_consumer_available(a);
	uint32_t	ab = route_consumer_available(b);

	return aa > ab || (aa == ab && a->buffer_depth < b->buffer_depth);
}

/* The reference least-loaded, over consumers with tag unless NULL. */
static int
test_plugins_least_loaded(const struct route_consumer *c, size_t n,
    const char *tag)
{
	int	best = ROUTE_NONE;

	for (size_t i = 0; i < n; i++)
		if (route_consumer_has_capacity(&c[i]) &&
		    (tag == NULL || route_consumer_has_affinity(&c[i], tag)) &&
		    (best == ROUTE_NONE || test_plugins_better(&c[i], &c[best])))
			best = (int)i;
	return best;
}

/* The reference first-available. */
static int
test_plugins_first_available(const struct route_consumer *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (route_consumer_has_capacity(&c[i]))
			return (int)i;
	return ROUTE_NONE;
}

/* Chi-square of counts against a uniform spread of total over k bins. */
static double
test_plugins_chi2(const unsigned *counts, size_t k, unsigned total)
{
	double	e = (double)total / (double)k, chi2 = 0;

	for (size_t i = 0; i < k; i++)
		chi2 += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
	return chi2;
}

/* One strategy configuration for the property tests. */
struct test_plugins_conf {
	const char		*name;
	struct route_option	 opts[5];
	size_t			 nopts;
};

static const struct test_plugins_conf test_plugins_confs[] = {
	{ "first-available", { { NULL, NULL } }, 0 },
	{ "least-loaded", { { NULL, NULL } }, 0 },
	{ "round-robin", { { NULL, NULL } }, 0 },
	{ "power-of-two", { { "seed", "1" } }, 1 },
	{ "power-of-two", { { NULL, NULL } }, 0 },
	{ "affinity", { { "field", "region" } }, 1 },
	{ "affinity", { { "field", "region" }, { "fallback", "none" } }, 2 },
	{ "affinity", { { "fallback", "least-loaded" },
	    { "field", "region" } }, 2 },
	{ "sticky", { { "field", "key" } }, 1 },
	{ "sticky", { { "field", "score" } }, 1 },
	{ "threshold", { { "field", "score" }, { "value", "2.5" },
	    { "tag", "gpu" } }, 3 },
	{ "threshold", { { "field", "score" }, { "value", "-1" },
	    { "tag", "eu" }, { "op", "le" },
	    { "fallback", "first-available" } }, 5 },
	{ "threshold", { { "field", "score" }, { "value", "0" },
	    { "tag", "us" }, { "op", "ne" },
	    { "fallback", "least-loaded" } }, 5 },
	{ "threshold", { { "field", "key" }, { "value", "1e3" },
	    { "tag", "fast" }, { "op", "eq" } }, 4 },
};
#define TEST_PLUGINS_NCONFS \
	(sizeof test_plugins_confs / sizeof test_plugins_confs[0])

/*
 * Every strategy, on random sets and messages: none or an index in range,
 * a chosen consumer has capacity, no consumers gives none, and messages
 * without fields or with mistyped ones are survived.
 */
static void
test_plugins_properties(void **unused)
{
	uint64_t			 x = 20240601;
	struct test_plugins_loaded	 l;
	struct test_plugins_set		 s;
	struct test_plugins_msg		 m;
	struct route_consumer		 one;
	int				 r;

	(void)unused;
	for (size_t k = 0; k < TEST_PLUGINS_NCONFS; k++) {
		const struct test_plugins_conf	*conf = &test_plugins_confs[k];

		test_plugins_load(&l, conf->name, conf->opts, conf->nopts);
		test_plugins_msg_init(&m);
		assert_int_equal(test_plugins_route(&l, &m.m, NULL, 0),
		    ROUTE_NONE);
		test_plugins_random_msg(&x, &m);
		assert_int_equal(test_plugins_route(&l, &m.m, NULL, 0),
		    ROUTE_NONE);
		memset(&one, 0, sizeof one);
		one.id = "full";
		one.in_flight = 3;
		one.max_in_flight = 3;
		assert_int_equal(test_plugins_route(&l, &m.m, &one, 1),
		    ROUTE_NONE);

		for (int i = 0; i < TEST_PLUGINS_ROUNDS; i++) {
			test_plugins_random_set(&x, &s);
			test_plugins_random_msg(&x, &m);
			r = test_plugins_route(&l, &m.m, s.c, s.n);
			if (r == ROUTE_NONE)
				continue;
			if (r < 0 || (size_t)r >= s.n)
				fail_msg("%s: index %d of %zu", conf->name, r,
				    s.n);
			if (!route_consumer_has_capacity(&s.c[r]))
				fail_msg("%s: chose %d, which has no capacity",
				    conf->name, r);
		}
		test_plugins_close(&l);
	}
}

/* least-loaded is least loaded; first-available is the first. */
static void
test_plugins_least_and_first(void **unused)
{
	uint64_t			 x = 7;
	struct test_plugins_loaded	 ll, fa;
	struct test_plugins_set		 s;
	struct test_plugins_msg		 m;
	int				 r;

	(void)unused;
	test_plugins_load(&ll, "least-loaded", NULL, 0);
	test_plugins_load(&fa, "first-available", NULL, 0);
	for (int i = 0; i < TEST_PLUGINS_ROUNDS; i++) {
		test_plugins_random_set(&x, &s);
		test_plugins_random_msg(&x, &m);

		r = test_plugins_route(&ll, &m.m, s.c, s.n);
		assert_int_equal(r, test_plugins_least_loaded(s.c, s.n, NULL));
		for (size_t j = 0; r != ROUTE_NONE && j < s.n; j++) {
			if (!route_consumer_has_capacity(&s.c[j]))
				continue;
			assert_false(test_plugins_better(&s.c[j], &s.c[r]));
			if (!test_plugins_better(&s.c[r], &s.c[j]))
				assert_true((size_t)r <= j);
		}

		r = test_plugins_route(&fa, &m.m, s.c, s.n);
		assert_int_equal(r, test_plugins_first_available(s.c, s.n));
	}
	test_plugins_close(&ll);
	test_plugins_close(&fa);
}

/* round-robin visits consumers with capacity in turn, evenly. */
static void
test_plugins_round_robin(void **unused)
{
	struct test_plugins_loaded	 l, l2;
	struct test_plugins_set		 s;
	struct test_plugins_msg		 m;
	unsigned			 counts[6] = { 0 };
	const int			 want[] = { 0, 2, 3, 0, 2, 3, 0 };
	double				 chi2;

	(void)unused;
	test_plugins_msg_init(&m);
	test_plugins_load(&l, "round-robin", NULL, 0);

	/* Holes are skipped, in order, wrapping around. */
	memset(&s, 0, sizeof s);
	test_plugins_consumer(&s, 0, 0, 1, 0, NULL, NULL);
	test_plugins_consumer(&s, 1, 2, 2, 0, NULL, NULL);
	test_plugins_consumer(&s, 2, 1, 4, 0, NULL, NULL);
	test_plugins_consumer(&s, 3, 0, 1, 9, NULL, NULL);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n),
		    want[i]);

	/* A second instance has its own cursor. */
	test_plugins_load(&l2, "round-robin", NULL, 0);
	assert_int_equal(test_plugins_route(&l2, &m.m, s.c, s.n), 0);
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 2);
	test_plugins_close(&l2);

	/* A smaller set than the last index chosen is survived. */
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, 2), 0);
	s.c[0].in_flight = 1;
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, 2), ROUTE_NONE);
	test_plugins_close(&l);

	/*
	 * 12000 calls over 6 consumers that all have capacity: the
	 * chi-square statistic against a uniform spread must stay below
	 * 20.515, the critical value for 5 degrees of freedom at p = 0.001.
	 */
	test_plugins_load(&l, "round-robin", NULL, 0);
	memset(&s, 0, sizeof s);
	for (size_t i = 0; i < 6; i++)
		test_plugins_consumer(&s, i, 1, 4, 2, NULL, NULL);
	for (int i = 0; i < 12000; i++) {
		int	r = test_plugins_route(&l, &m.m, s.c, s.n);

		assert_true(r >= 0 && r < 6);
		counts[r]++;
	}
	chi2 = test_plugins_chi2(counts, 6, 12000);
	if (!(chi2 < TEST_PLUGINS_CHI2_5DF))
		fail_msg("round-robin: chi-square %g", chi2);
	test_plugins_close(&l);
}

/* power-of-two spreads equal consumers evenly and is repeatable. */
static void
test_plugins_power_of_two_uniform(void **unused)
{
	const struct route_option	 seed42[] = { { "seed", "42" } };
	struct test_plugins_loaded	 l, l2;
	struct test_plugins_set		 s;
	struct test_plugins_msg		 m;
	unsigned			 counts[6] = { 0 };
	double				 chi2;
	int				 r;

	(void)unused;
	test_plugins_msg_init(&m);
	test_plugins_load(&l, "power-of-two", seed42, 1);
	memset(&s, 0, sizeof s);
	for (size_t i = 0; i < 6; i++)
		test_plugins_consumer(&s, i, 1, 4, 2, NULL, NULL);

	/*
	 * 12000 calls at seed=42 over 6 identical consumers (equal load,
	 * so the choice is uniform): chi-square against a uniform spread
	 * below 20.515, the critical value for 5 degrees of freedom at
	 * p = 0.001.
	 */
	for (int i = 0; i < 12000; i++) {
		r = test_plugins_route(&l, &m.m, s.c, s.n);
		assert_true(r >= 0 && r < 6);
		counts[r]++;
	}
	chi2 = test_plugins_chi2(counts, 6, 12000);
	if (!(chi2 < TEST_PLUGINS_CHI2_5DF))
		fail_msg("power-of-two: chi-square %g", chi2);

	/* The same seed gives the same choices. */
	test_plugins_close(&l);
	test_plugins_load(&l, "power-of-two", seed42, 1);
	test_plugins_load(&l2, "power-of-two", seed42, 1);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n),
		    test_plugins_route(&l2, &m.m, s.c, s.n));
	test_plugins_close(&l2);
	test_plugins_close(&l);
}

/* power-of-two takes the less loaded of its two draws. */
static void
test_plugins_power_of_two_less_loaded(void **unused)
{
	const struct route_option	 seed42[] = { { "seed", "42" } };
	struct test_plugins_loaded	 l;
	struct test_plugins_set		 s;
	struct test_plugins_msg		 m;
	uint64_t			 x = 99;
	bool				 beaten;
	int				 r;

	(void)unused;
	test_plugins_msg_init(&m);
	test_plugins_load(&l, "power-of-two", seed42, 1);

	/* Two with capacity, available 3 and 1: always the 3. */
	memset(&s, 0, sizeof s);
	test_plugins_consumer(&s, 0, 0, 3, 5, NULL, NULL);
	test_plugins_consumer(&s, 1, 2, 3, 0, NULL, NULL);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 0);
	memset(&s, 0, sizeof s);
	test_plugins_consumer(&s, 0, 4, 5, 0, NULL, NULL);
	test_plugins_consumer(&s, 1, 0, 0, 0, NULL, NULL);
	test_plugins_consumer(&s, 2, 1, 4, 9, NULL, NULL);
	test_plugins_consumer(&s, 3, 7, 2, 0, NULL, NULL);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 2);

	/* Equal capacity: the smaller buffer depth. */
	memset(&s, 0, sizeof s);
	test_plugins_consumer(&s, 0, 0, 2, 5, NULL, NULL);
	test_plugins_consumer(&s, 1, 0, 2, 4, NULL, NULL);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 1);

	/* One with capacity: that one. */
	s.c[1].in_flight = 2;
	for (int i = 0; i < 100; i++)
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 0);

	/*
	 * In random sets with two or more consumers with capacity, the
	 * choice beat its partner, so some other consumer with capacity is
	 * no less loaded than it: the strictly most loaded never wins.
	 */
	for (int i = 0; i < TEST_PLUGINS_ROUNDS; i++) {
		size_t	m_cap = 0;

		test_plugins_random_set(&x, &s);
		for (size_t j = 0; j < s.n; j++)
			m_cap += route_consumer_has_capacity(&s.c[j]);
		r = test_plugins_route(&l, &m.m, s.c, s.n);
		if (m_cap == 0) {
			assert_int_equal(r, ROUTE_NONE);
			continue;
		}
		assert_true(r >= 0 && (size_t)r < s.n);
		if (m_cap == 1) {
			assert_int_equal(r,
			    test_plugins_first_available(s.c, s.n));
			continue;
		}
		beaten = false;
		for (size_t j = 0; j < s.n; j++)
			if ((int)j != r &&
			    route_consumer_has_capacity(&s.c[j]) &&
			    !test_plugins_better(&s.c[j], &s.c[r]))
				beaten = true;
		assert_true(beaten);
	}
	test_plugins_close(&l);
}

/* The documented sticky weight: FNV-1a 64 of key, 0, id; splitmix64 mix. */
static uint64_t
test_plugins_sticky_weight(const char *key, const char *id)
{
	uint64_t	h = UINT64_C(0xcbf29ce484222325);
	size_t		klen = strlen(key), len = klen + 1 + strlen(id);

	for (size_t i = 0; i < len; i++) {
		h ^= i < klen ? (unsigned char)key[i] : i == klen ? 0 :
		    (unsigned char)id[i - klen - 1];
		h *= UINT64_C(0x100000001b3);
	}
	h = (h ^ (h >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	h = (h ^ (h >> 27)) * UINT64_C(0x94d049bb133111eb);
	return h ^ (h >> 31);
}

/* The reference sticky: the heaviest consumer with capacity. */
static int
test_plugins_sticky_ref(const char *key, const struct route_consumer *c,
    size_t n)
{
	uint64_t	w, best_w = 0;
	int		best = ROUTE_NONE;

	for (size_t i = 0; i < n; i++) {
		if (!route_consumer_has_capacity(&c[i]))
			continue;
		w = test_plugins_sticky_weight(key, c[i].id);
		if (best == ROUTE_NONE || w > best_w) {
			best = (int)i;
			best_w = w;
		}
	}
	return best;
}

/* Build N consumers named node-0.. all with capacity, skipping one. */
static size_t
test_plugins_nodes(struct route_consumer *c, char ids[][16], size_t n,
    size_t skip)
{
	size_t	k = 0;

	for (size_t i = 0; i < n; i++) {
		if (i == skip)
			continue;
		memset(&c[k], 0, sizeof c[k]);
		snprintf(ids[i], sizeof ids[i], "node-%zu", i);
		c[k].id = ids[i];
		c[k].max_in_flight = 5;
		c[k].in_flight = (uint32_t)(i % 5);
		c[k].buffer_depth = (uint32_t)i;
		k++;
	}
	return k;
}

/* sticky: keys stay put, and removing a consumer moves only its keys. */
static void
test_plugins_sticky(void **unused)
{
	const struct route_option	 opts[] = { { "field", "key" } };
	enum { N = 10, KEYS = 10000 };
	struct test_plugins_loaded	 l;
	struct test_plugins_msg		 m;
	struct test_plugins_set		 s;
	uint64_t			 x = 4242;
	struct route_consumer		 all[N], less[N];
	char				 ids[N][16], ids2[N][16], key[32];
	static size_t			 owner[KEYS];
	size_t				 nall, nless, on_removed, moved;
	int				 r, r2;

	(void)unused;
	test_plugins_load(&l, "sticky", opts, 1);
	nall = test_plugins_nodes(all, ids, N, SIZE_MAX);
	assert_int_equal(nall, N);

	for (size_t k = 0; k < KEYS; k++) {
		snprintf(key, sizeof key, "user-%zu", k);
		test_plugins_msg_init(&m);
		test_plugins_msg_text(&m, "key", key);
		r = test_plugins_route(&l, &m.m, all, nall);
		assert_true(r >= 0 && r < N);
		owner[k] = (size_t)r;
		for (int again = 0; again < 3; again++)
			assert_int_equal(test_plugins_route(&l, &m.m, all,
			    nall), r);
	}

	for (size_t gone = 0; gone < N; gone++) {
		nless = test_plugins_nodes(less, ids2, N, gone);
		assert_int_equal(nless, N - 1);
		on_removed = moved = 0;
		for (size_t k = 0; k < KEYS; k++) {
			bool	was_on, did_move;

			snprintf(key, sizeof key, "user-%zu", k);
			test_plugins_msg_init(&m);
			test_plugins_msg_text(&m, "key", key);
			r = test_plugins_route(&l, &m.m, less, nless);
			assert_true(r >= 0 && (size_t)r < nless);
			was_on = owner[k] == gone;
			did_move = strcmp(less[r].id, all[owner[k]].id) != 0;
			/* Moved exactly when it was on the removed one. */
			assert_int_equal(was_on, did_move);
			on_removed += was_on;
			moved += did_move;
		}
		assert_int_equal(on_removed, moved);
		/* About 1/N of the keys were on it: 5% to 15%. */
		if (on_removed < KEYS / 20 || on_removed > KEYS * 15 / 100)
			fail_msg("sticky: %zu of %d keys on node-%zu",
			    on_removed, KEYS, gone);

		/* A full consumer is skipped just like a removed one. */
		all[gone].in_flight = all[gone].max_in_flight;
		for (size_t k = 0; k < KEYS; k += 7) {
			snprintf(key, sizeof key, "user-%zu", k);
			test_plugins_msg_init(&m);
			test_plugins_msg_text(&m, "key", key);
			r = test_plugins_route(&l, &m.m, all, nall);
			r2 = test_plugins_route(&l, &m.m, less, nless);
			assert_true(r >= 0 && (size_t)r != gone);
			assert_string_equal(all[r].id, less[r2].id);
		}
		all[gone].in_flight = (uint32_t)(gone % 5);
	}

	/* The documented hash, on random sets and keys. */
	for (int i = 0; i < TEST_PLUGINS_ROUNDS; i++) {
		test_plugins_random_set(&x, &s);
		snprintf(key, sizeof key, "k%" PRIu64, test_plugins_rand(&x));
		test_plugins_msg_init(&m);
		test_plugins_msg_text(&m, "key", key);
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n),
		    test_plugins_sticky_ref(key, s.c, s.n));
	}

	/* An integer key hashes as its decimal text. */
	for (int64_t k = -50; k < 50; k++) {
		snprintf(key, sizeof key, "%" PRId64, k * 7919);
		test_plugins_msg_init(&m);
		test_plugins_msg_text(&m, "key", key);
		r = test_plugins_route(&l, &m.m, all, nall);
		test_plugins_msg_init(&m);
		test_plugins_msg_int(&m, "key", k * 7919);
		assert_int_equal(test_plugins_route(&l, &m.m, all, nall), r);
	}

	/* Missing key, or of another type: none. */
	test_plugins_msg_init(&m);
	assert_int_equal(test_plugins_route(&l, &m.m, all, nall), ROUTE_NONE);
	test_plugins_msg_text(&m, "a", "user-1");
	assert_int_equal(test_plugins_route(&l, &m.m, all, nall), ROUTE_NONE);
	test_plugins_msg_real(&m, "key", 1.0);
	assert_int_equal(test_plugins_route(&l, &m.m, all, nall), ROUTE_NONE);
	test_plugins_msg_init(&m);
	test_plugins_msg_add(&m, "key", ROUTE_BOOLEAN)->boolean = true;
	assert_int_equal(test_plugins_route(&l, &m.m, all, nall), ROUTE_NONE);
	test_plugins_msg_init(&m);
	test_plugins_msg_add(&m, "key", ROUTE_NULL);
	assert_int_equal(test_plugins_route(&l, &m.m, all, nall), ROUTE_NONE);
	test_plugins_close(&l);
}

/* affinity prefers tagged consumers and falls back as configured. */
static void
test_plugins_affinity(void **unused)
{
	const struct route_option	 dflt[] = { { "field", "region" } };
	const struct route_option	 none[] = { { "field", "region" },
					    { "fallback", "none" } };
	struct test_plugins_loaded	 l, ln;
	struct test_plugins_set		 s;
	struct test_plugins_msg		 m;
	uint64_t			 x = 31337;
	const struct route_value	*v;
	const char			*tag;
	int				 r, want;

	(void)unused;
	test_plugins_load(&l, "affinity", dflt, 1);
	test_plugins_load(&ln, "affinity", none, 2);

	memset(&s, 0, sizeof s);
	test_plugins_consumer(&s, 0, 0, 1, 0, "eu", NULL);
	test_plugins_consumer(&s, 1, 0, 5, 0, "us", "fast");
	test_plugins_consumer(&s, 2, 1, 4, 2, "gpu", "eu");
	test_plugins_consumer(&s, 3, 0, 3, 1, "eu", NULL);
	test_plugins_consumer(&s, 4, 9, 9, 0, "ap", NULL);

	/* The least loaded of the tagged consumers with capacity. */
	test_plugins_msg_init(&m);
	test_plugins_msg_text(&m, "region", "eu");
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 3);
	assert_int_equal(test_plugins_route(&ln, &m.m, s.c, s.n), 3);
	s.c[3].buffer_depth = 2;
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 2);
	s.c[2].in_flight = s.c[3].in_flight = 9;
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 0);
	s.c[0].in_flight = 1;
	/* No tagged consumer has capacity: least-loaded, or none. */
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 1);
	assert_int_equal(test_plugins_route(&ln, &m.m, s.c, s.n), ROUTE_NONE);

	/* The tagged consumer is full: fall back. */
	test_plugins_msg_init(&m);
	test_plugins_msg_text(&m, "region", "ap");
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 1);
	assert_int_equal(test_plugins_route(&ln, &m.m, s.c, s.n), ROUTE_NONE);

	/* Nobody has the tag. */
	test_plugins_msg_init(&m);
	test_plugins_msg_text(&m, "region", "mars");
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 1);
	assert_int_equal(test_plugins_route(&ln, &m.m, s.c, s.n), ROUTE_NONE);

	/* A tag that is a prefix of an advertised one does not match. */
	test_plugins_msg_init(&m);
	test_plugins_msg_text(&m, "region", "fas");
	assert_int_equal(test_plugins_route(&ln, &m.m, s.c, s.n), ROUTE_NONE);
	test_plugins_msg_init(&m);
	test_plugins_msg_text(&m, "region", "fast");
	assert_int_equal(test_plugins_route(&ln, &m.m, s.c, s.n), 1);

	/* Missing field, or of another type: the fallback. */
	test_plugins_msg_init(&m);
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 1);
	assert_int_equal(test_plugins_route(&ln, &m.m, s.c, s.n), ROUTE_NONE);
	test_plugins_msg_int(&m, "region", 3);
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 1);
	assert_int_equal(test_plugins_route(&ln, &m.m, s.c, s.n), ROUTE_NONE);

	/* Against the reference on random sets and messages. */
	for (int i = 0; i < TEST_PLUGINS_ROUNDS; i++) {
		test_plugins_random_set(&x, &s);
		test_plugins_random_msg(&x, &m);
		v = route_message_get(&m.m, "region");
		tag = v != NULL && v->type == ROUTE_TEXT ? v->text : NULL;
		want = tag != NULL ?
		    test_plugins_least_loaded(s.c, s.n, tag) : ROUTE_NONE;
		r = test_plugins_route(&ln, &m.m, s.c, s.n);
		assert_int_equal(r, want);
		if (want == ROUTE_NONE)
			want = test_plugins_least_loaded(s.c, s.n, NULL);
		r = test_plugins_route(&l, &m.m, s.c, s.n);
		assert_int_equal(r, want);
	}
	test_plugins_close(&ln);
	test_plugins_close(&l);
}

/* The truth of "x op 10" for each op, and the routing it implies. */
static void
test_plugins_threshold(void **unused)
{
	static const char *const	 ops[] = {
		"gt", "ge", "lt", "le", "eq", "ne", NULL
	};
	static const char *const	 fallbacks[] = {
		"none", "first-available", "least-loaded", NULL
	};
	const double			 xs[] = { 9, 9.5, 10, 10.5, 11 };
	struct test_plugins_loaded	 l;
	struct test_plugins_set		 s;
	struct test_plugins_msg		 m;
	struct route_option		 opts[5];
	size_t				 nopts;
	bool				 truth;
	int				 r, want;

	(void)unused;
	memset(&s, 0, sizeof s);
	test_plugins_consumer(&s, 0, 2, 4, 0, "cpu", NULL);	/* avail 2 */
	test_plugins_consumer(&s, 1, 0, 5, 3, "cpu", NULL);	/* avail 5 */
	test_plugins_consumer(&s, 2, 2, 3, 0, "gpu", NULL);	/* avail 1 */
	test_plugins_consumer(&s, 3, 1, 4, 0, "gpu", "x");	/* avail 3 */

	for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
	for (size_t f = 0; fallbacks[f] != NULL; f++) {
		nopts = 0;
		opts[nopts++] = (struct route_option){ "field", "score" };
		opts[nopts++] = (struct route_option){ "value", "10" };
		opts[nopts++] = (struct route_option){ "tag", "gpu" };
		if (ops[o] != NULL)
			opts[nopts++] = (struct route_option){ "op", ops[o] };
		opts[nopts++] = (struct route_option){ "fallback",
		    fallbacks[f] };
		test_plugins_load(&l, "threshold", opts, nopts);

		for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
		for (int as_int = 0; as_int < 2; as_int++) {
			double	xv = xs[i];
			const char *op = ops[o] != NULL ? ops[o] : "gt";

			if (as_int && xv != floor(xv))
				continue;
			if (strcmp(op, "gt") == 0)
				truth = xv > 10;
			else if (strcmp(op, "ge") == 0)
				truth = xv >= 10;
			else if (strcmp(op, "lt") == 0)
				truth = xv < 10;
			else if (strcmp(op, "le") == 0)
				truth = xv <= 10;
			else if (strcmp(op, "eq") == 0)
				truth = xv == 10;
			else
				truth = xv != 10;
			if (truth)
				want = 3;
			else if (f == 0)
				want = ROUTE_NONE;
			else if (f == 1)
				want = 0;
			else
				want = 1;

			test_plugins_msg_init(&m);
			test_plugins_msg_text(&m, "a", "x");
			if (as_int)
				test_plugins_msg_int(&m, "score",
				    (int64_t)xv);
			else
				test_plugins_msg_real(&m, "score", xv);
			r = test_plugins_route(&l, &m.m, s.c, s.n);
			if (r != want)
				fail_msg("threshold op=%s fallback=%s score=%g"
				    "%s: %d, want %d", op, fallbacks[f], xv,
				    as_int ? " (int)" : "", r, want);

			/* Tagged consumers full: the fallback. */
			s.c[2].in_flight = s.c[3].in_flight = 5;
			want = f == 0 ? ROUTE_NONE : f == 1 ? 0 : 1;
			assert_int_equal(test_plugins_route(&l, &m.m, s.c,
			    s.n), want);
			s.c[2].in_flight = 2;
			s.c[3].in_flight = 1;
		}

		/* Missing, or of another type: not a match. */
		want = f == 0 ? ROUTE_NONE : f == 1 ? 0 : 1;
		test_plugins_msg_init(&m);
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), want);
		test_plugins_msg_text(&m, "score", "11");
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), want);
		test_plugins_msg_init(&m);
		test_plugins_msg_add(&m, "score", ROUTE_BOOLEAN)->boolean =
		    true;
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), want);
		test_plugins_msg_init(&m);
		test_plugins_msg_add(&m, "score", ROUTE_NULL);
		assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), want);

		/* NaN compares true only under ne. */
		test_plugins_msg_init(&m);
		test_plugins_msg_real(&m, "score", NAN);
		r = test_plugins_route(&l, &m.m, s.c, s.n);
		assert_int_equal(r, ops[o] != NULL &&
		    strcmp(ops[o], "ne") == 0 ? 3 : want);
		test_plugins_close(&l);
	}

	/* By default op=gt and fallback=none. */
	nopts = 0;
	opts[nopts++] = (struct route_option){ "tag", "gpu" };
	opts[nopts++] = (struct route_option){ "value", "-2.5e1" };
	opts[nopts++] = (struct route_option){ "field", "score" };
	test_plugins_load(&l, "threshold", opts, nopts);
	test_plugins_msg_init(&m);
	test_plugins_msg_int(&m, "score", -24);
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), 3);
	test_plugins_msg_init(&m);
	test_plugins_msg_real(&m, "score", -25);
	assert_int_equal(test_plugins_route(&l, &m.m, s.c, s.n), ROUTE_NONE);
	test_plugins_close(&l);
}

/* Each option that is missing or malformed fails init and is named. */
static void
test_plugins_init_failures(void **unused)
{
	static const struct {
		const char		*name;
		struct route_option	 opts[6];
		size_t			 nopts;
		const char		*named;
	} bad[] = {
		{ "affinity", { { NULL, NULL } }, 0, "field" },
		{ "affinity", { { "fallback", "none" } }, 1, "field" },
		{ "affinity", { { "field", "" } }, 1, "field" },
		{ "affinity", { { "field", "r" }, { "fallback", "rr" } }, 2,
		    "fallback" },
		{ "affinity", { { "field", "r" }, { "feild", "r" } }, 2,
		    "feild" },
		{ "sticky", { { NULL, NULL } }, 0, "field" },
		{ "sticky", { { "key", "x" } }, 1, "key" },
		{ "threshold", { { "value", "1" }, { "tag", "t" } }, 2,
		    "field" },
		{ "threshold", { { "field", "f" }, { "tag", "t" } }, 2,
		    "value" },
		{ "threshold", { { "field", "f" }, { "value", "1" } }, 2,
		    "tag" },
		{ "threshold", { { "field", "f" }, { "value", "1x" },
		    { "tag", "t" } }, 3, "value" },
		{ "threshold", { { "field", "f" }, { "value", "" },
		    { "tag", "t" } }, 3, "value" },
		{ "threshold", { { "field", "f" }, { "value", "nan" },
		    { "tag", "t" } }, 3, "value" },
		{ "threshold", { { "field", "f" }, { "value", "1" },
		    { "tag", "t" }, { "op", "gte" } }, 4, "op" },
		{ "threshold", { { "field", "f" }, { "value", "1" },
		    { "tag", "t" }, { "fallback", "random" } }, 4,
		    "fallback" },
		{ "threshold", { { "field", "f" }, { "value", "1" },
		    { "tag", "t" }, { "colour", "red" } }, 4, "colour" },
		{ "power-of-two", { { "seed", "x" } }, 1, "seed" },
		{ "power-of-two", { { "seed", "-1" } }, 1, "seed" },
		{ "power-of-two", { { "seed", "18446744073709551616" } }, 1,
		    "seed" },
		{ "power-of-two", { { "sed", "1" } }, 1, "sed" },
		{ "round-robin", { { "start", "1" } }, 1, "start" },
	};
	struct test_plugins_loaded	 l;
	char				 err[256], tiny[4];

	(void)unused;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int	rc = test_plugins_open(&l, bad[i].name, bad[i].opts,
			    bad[i].nopts, err, sizeof err);

		if (rc == 0)
			fail_msg("%s case %zu: init succeeded", bad[i].name, i);
		if (err[0] == '\0' || strstr(err, bad[i].named) == NULL ||
		    strncmp(err, bad[i].name, strlen(bad[i].name)) != 0)
			fail_msg("%s case %zu: error \"%s\" does not name %s",
			    bad[i].name, i, err, bad[i].named);
		assert_null(l.state);
		l.d = NULL;	/* init failed: no fini */
		test_plugins_close(&l);

		/* A short error buffer is respected. */
		rc = test_plugins_open(&l, bad[i].name, bad[i].opts,
		    bad[i].nopts, tiny, sizeof tiny);
		assert_int_not_equal(rc, 0);
		assert_true(memchr(tiny, '\0', sizeof tiny) != NULL);
		l.d = NULL;
		test_plugins_close(&l);
	}

	/* The exact wording promised for a missing field. */
	test_plugins_open(&l, "affinity", NULL, 0, err, sizeof err);
	assert_string_equal(err, "affinity: option field=NAME is required");
	l.d = NULL;
	test_plugins_close(&l);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_plugins_properties),
		cmocka_unit_test(test_plugins_least_and_first),
		cmocka_unit_test(test_plugins_round_robin),
		cmocka_unit_test(test_plugins_power_of_two_uniform),
		cmocka_unit_test(test_plugins_power_of_two_less_loaded),
		cmocka_unit_test(test_plugins_sticky),
		cmocka_unit_test(test_plugins_affinity),
		cmocka_unit_test(test_plugins_threshold),
		cmocka_unit_test(test_plugins_init_failures),
	};

	return cmocka_run_group_tests_name("plugins", tests, NULL, NULL);
}
