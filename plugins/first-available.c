/* SPDX-License-Identifier: ISC */
/*
 * first-available: the first consumer, in the order given, that has
 * capacity; none when no consumer has any.
 */

#include <route-host/plugin.h>

/* Pick the first consumer with capacity. */
static int
first_available(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	(void)state;
	(void)msg;
	for (size_t i = 0; i < n; i++)
		if (route_consumer_has_capacity(&consumers[i]))
			return (int)i;
	return ROUTE_NONE;
}

ROUTE_PLUGIN("first-available", first_available);
