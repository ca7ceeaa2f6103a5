/* SPDX-License-Identifier: ISC */
/*
 * demo-sleepy: a deliberately slow plugin for `route-host demo`.  It spins
 * for "sleep_ms" milliseconds (forever when the field is -1) before routing
 * like least-loaded would: the most available capacity.  Never deploy it.
 */

#include <time.h>

#include <route-host/plugin.h>

/* Busy-wait ms milliseconds, or forever when ms is negative. */
static void
sleepy_spin(int64_t ms)
{
	struct timespec	start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (ms >= 0 && (now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000 >= ms)
			return;
	}
}

/* Take sleep_ms, then pick the consumer with the most capacity. */
static int
sleepy(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const struct route_value	*v;
	int				 best = ROUTE_NONE;

	(void)state;
	v = route_message_get(msg, "sleep_ms");
	if (v != NULL && v->type == ROUTE_INTEGER)
		sleepy_spin(v->integer);
	for (size_t i = 0; i < n; i++)
		if (route_consumer_has_capacity(&consumers[i]) &&
		    (best == ROUTE_NONE ||
		    route_consumer_available(&consumers[i]) >
		    route_consumer_available(&consumers[best])))
			best = (int)i;
	return best;
}

ROUTE_PLUGIN("demo-sleepy", sleepy);
