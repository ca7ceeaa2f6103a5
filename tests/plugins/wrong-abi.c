/* SPDX-License-Identifier: ISC */
/* Test plugin: a descriptor from a future ABI the host must refuse. */

#include <route-host/plugin.h>

/* Never called. */
static int
never(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	(void)state; (void)msg; (void)consumers; (void)n;
	return ROUTE_NONE;
}

ROUTE_PLUGIN_EXPORT const struct route_plugin route_plugin_descriptor = {
	999, sizeof(struct route_plugin), "wrong-abi", never, NULL, NULL
};
