/* SPDX-License-Identifier: ISC */
/*
 * demo-crashy: a deliberately broken plugin for `route-host demo`.  It
 * routes like first-available, but dereferences NULL when the message has
 * "poison": true, and returns an out-of-range index when it has
 * "wild": true.  Never deploy it.
 */

#include <route-host/plugin.h>

/* Route like first-available, misbehaving on request. */
static int
crashy(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const struct route_value	*v;

	(void)state;
	v = route_message_get(msg, "poison");
	if (v != NULL && v->type == ROUTE_BOOLEAN && v->boolean)
		return *(volatile int *)0;
	v = route_message_get(msg, "wild");
	if (v != NULL && v->type == ROUTE_BOOLEAN && v->boolean)
		return (int)n + 41;
	for (size_t i = 0; i < n; i++)
		if (route_consumer_has_capacity(&consumers[i]))
			return (int)i;
	return ROUTE_NONE;
}

ROUTE_PLUGIN("demo-crashy", crashy);
