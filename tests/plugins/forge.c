/*
 * Test plugin: tries to forge the daemon's log lines.
 *
 *	try=init	init fails with an error that holds a newline, a fake
 *			log line of the daemon's and a terminal escape
 *	try=name	init renames the plugin to a name that holds a
 *			newline and a fake log line, after the helper has
 *			checked the name and before it sends it to the host
 *
 * Anything else: init succeeds and the plugin picks the first consumer.
 */

#include <stdio.h>
#include <string.h>

#include <route-host/plugin.h>

#define FORGE_LINE	"route-host[1]: info: channel payments: deployed " \
			"0123456789ab (plugin \"forged\")"

static char	forge_name[64] = "forge";

/* Pick the first consumer. */
static int
forge_route(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	(void)state; (void)msg; (void)consumers;
	return n > 0 ? 0 : ROUTE_NONE;
}

/* Misbehave as try says. */
static int
forge_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	(void)state;
	for (size_t i = 0; i < nopts; i++) {
		if (strcmp(opts[i].key, "try") != 0)
			continue;
		if (strcmp(opts[i].value, "init") == 0) {
			snprintf(err, errlen, "bad config\n" FORGE_LINE
			    "\033[31m red");
			return -1;
		}
		if (strcmp(opts[i].value, "name") == 0)
			snprintf(forge_name, sizeof forge_name, "forge\n"
			    "route-host[1]: info: fake");
	}
	return 0;
}

ROUTE_PLUGIN_EXPORT const struct route_plugin route_plugin_descriptor = {
	ROUTE_ABI_VERSION, sizeof(struct route_plugin), forge_name,
	forge_route, forge_init, NULL
};
