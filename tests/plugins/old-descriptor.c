/* SPDX-License-Identifier: ISC */
/*
 * Test plugin: a descriptor laid out as plugins built before the flags
 * field existed (ABI 1, six fields, size 40 on LP64), as such a plugin's
 * compiled bytes hold it.  It must load and route as it always did: first
 * consumer, or none.
 */

#include <stddef.h>
#include <stdint.h>

#include <route-host/plugin.h>

/* struct route_plugin before flags. */
struct old_route_plugin {
	uint32_t		 abi;
	uint32_t		 size;
	const char		*name;
	route_fn		 route;
	route_init_fn		 init;
	route_fini_fn		 fini;
};

/* Pick the first consumer. */
static int
old_first(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	(void)state;
	(void)msg;
	(void)consumers;
	return n > 0 ? 0 : ROUTE_NONE;
}

ROUTE_PLUGIN_EXPORT const struct old_route_plugin route_plugin_descriptor = {
	1, sizeof(struct old_route_plugin), "old-descriptor", old_first, NULL,
	NULL
};
