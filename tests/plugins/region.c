/* SPDX-License-Identifier: ISC */
/*
 * Test plugin with the bug plugin authors write most: it reads the
 * "region" field's text without checking that the message has the field,
 * or that it is text, so a message without it dereferences NULL.  It
 * passes check's default sample, which has a region; check --fuzz finds
 * the bug.
 */

#include <string.h>

#include <route-host/plugin.h>

/* The first consumer with capacity whose first tag is the region. */
static int
region_route(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const char	*region;

	(void)state;
	region = route_message_get(msg, "region")->text;	/* the bug */
	for (size_t i = 0; i < n; i++)
		if (route_consumer_has_capacity(&consumers[i]) &&
		    consumers[i].ntags > 0 &&
		    strcmp(consumers[i].tags[0], region) == 0)
			return (int)i;
	return ROUTE_NONE;
}

ROUTE_PLUGIN("region", region_route);
