/* SPDX-License-Identifier: ISC */
/*
 * power-of-two: the power of two random choices.  Two distinct consumers
 * are drawn uniformly at random, without replacement, from those with
 * capacity, and the one with more available capacity wins; on equal
 * capacity the smaller buffer depth wins.  When both are equal on both
 * counts the first of the two draws wins: the draws come in random order,
 * so that is a fair coin, and equally loaded consumers share the traffic
 * evenly (a lower-index rule would starve the last consumer).  With a
 * single consumer with capacity it is chosen; with none, none.
 *
 * Option seed=N (a decimal unsigned 64-bit number) seeds the generator so
 * the choices are repeatable, for tests; by default it is seeded from
 * getrandom(2), or from the clock and process id when that fails.  The
 * generator (splitmix64) lives in state that init allocates, once per
 * helper process, so each helper draws its own sequence.
 */

#include <sys/types.h>
#include <sys/random.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <route-host/plugin.h>

/* The generator's state. */
struct power_of_two_state {
	uint64_t	x;
};

/* The next 64 random bits (splitmix64). */
static uint64_t
power_of_two_next(struct power_of_two_state *s)
{
	uint64_t	z = (s->x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* A uniform random number below bound (bound > 0), without modulo bias. */
static size_t
power_of_two_below(struct power_of_two_state *s, size_t bound)
{
	uint64_t	b = bound, limit = UINT64_MAX - UINT64_MAX % b, r;

	do
		r = power_of_two_next(s);
	while (r >= limit);
	return (size_t)(r % b);
}

/* The index of the k-th (from 0) consumer with capacity. */
static size_t
power_of_two_nth(const struct route_consumer *consumers, size_t n, size_t k)
{
	for (size_t i = 0; i < n; i++)
		if (route_consumer_has_capacity(&consumers[i]) && k-- == 0)
			return i;
	return n;	/* not reached: k is below the count */
}

/* Draw two consumers with capacity and take the less loaded. */
static int
power_of_two(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	struct power_of_two_state	*s = state;
	const struct route_consumer	*a, *b;
	size_t				 m = 0, ka, kb, ia, ib;
	uint32_t			 avail_a, avail_b;

	(void)msg;
	if (s == NULL || n > (size_t)INT32_MAX)
		return ROUTE_NONE;
	for (size_t i = 0; i < n; i++)
		if (route_consumer_has_capacity(&consumers[i]))
			m++;
	if (m == 0)
		return ROUTE_NONE;
	if (m == 1)
		return (int)power_of_two_nth(consumers, n, 0);

	ka = power_of_two_below(s, m);
	kb = power_of_two_below(s, m - 1);
	if (kb >= ka)
		kb++;
	ia = power_of_two_nth(consumers, n, ka);
	ib = power_of_two_nth(consumers, n, kb);
	if (ia >= n || ib >= n)
		return ROUTE_NONE;

	a = &consumers[ia];
	b = &consumers[ib];
	avail_a = route_consumer_available(a);
	avail_b = route_consumer_available(b);
	if (avail_b > avail_a ||
	    (avail_b == avail_a && b->buffer_depth < a->buffer_depth))
		return (int)ib;
	return (int)ia;
}

/* Parse a decimal uint64; -1 when s is not one. */
static int
power_of_two_parse_seed(const char *s, uint64_t *out)
{
	unsigned long long	 v;
	char			*end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = (uint64_t)v;
	return 0;
}

/* A seed from the kernel, or from the clock and pid. */
static uint64_t
power_of_two_default_seed(void)
{
	struct timespec	ts;
	uint64_t	seed;

	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
		return seed;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000007) ^
	    (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
}

/* Check the options and seed the generator. */
static int
power_of_two_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	struct power_of_two_state	*s;
	const char			*v;
	uint64_t			 seed;

	for (size_t i = 0; i < nopts; i++)
		if (strcmp(opts[i].key, "seed") != 0) {
			snprintf(err, errlen, "power-of-two: unknown option "
			    "%s (the only option is seed=N)", opts[i].key);
			return -1;
		}
	if ((v = route_option_get(opts, nopts, "seed")) != NULL) {
		if (power_of_two_parse_seed(v, &seed) == -1) {
			snprintf(err, errlen, "power-of-two: option seed=%s is "
			    "not a decimal unsigned 64-bit number", v);
			return -1;
		}
	} else
		seed = power_of_two_default_seed();
	if ((s = calloc(1, sizeof *s)) == NULL) {
		snprintf(err, errlen, "power-of-two: out of memory");
		return -1;
	}
	s->x = seed;
	*state = s;
	return 0;
}

/* Free the generator. */
static void
power_of_two_fini(void *state)
{
	free(state);
}

ROUTE_PLUGIN_STATEFUL("power-of-two", power_of_two, power_of_two_init,
    power_of_two_fini);
