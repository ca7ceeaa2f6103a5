/* SPDX-License-Identifier: ISC */
/*
 * pick-eu: an example routing plugin to copy.  Messages whose "region"
 * field is "eu" go to the least busy consumer tagged "eu"; every other
 * message goes to the first consumer with capacity.  The tag to prefer
 * can be changed with the option tag=NAME.
 *
 * Build:  make            (or: cc -shared -fPIC \
 *             $(pkg-config --cflags route-host-plugin) -o pick-eu.so pick-eu.c)
 * Check:  route-host check pick-eu.so
 * Deploy: install -m 0644 pick-eu.so /usr/local/etc/route-host/plugins/orders.so
 */

#include <stdlib.h>
#include <string.h>

#include <route-host/plugin.h>

struct pick_eu {
	char	tag[64];
};

/* Read the options: tag=NAME, default "eu". */
static int
pick_eu_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	struct pick_eu	*p;
	const char	*tag = route_option_get(opts, nopts, "tag");

	if (tag == NULL)
		tag = "eu";
	if (strlen(tag) == 0 || strlen(tag) >= sizeof p->tag) {
		strncpy(err, "pick-eu: tag=NAME must be 1 to 63 bytes",
		    errlen - 1);
		return -1;
	}
	if ((p = calloc(1, sizeof *p)) == NULL) {
		strncpy(err, "pick-eu: out of memory", errlen - 1);
		return -1;
	}
	strcpy(p->tag, tag);
	*state = p;
	return 0;
}

/* Free the state. */
static void
pick_eu_fini(void *state)
{
	free(state);
}

/* Route: the tagged consumer with most room for eu messages. */
static int
pick_eu(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const struct pick_eu		*p = state;
	const struct route_value	*region;
	int				 best = ROUTE_NONE;

	region = route_message_get(msg, "region");
	if (region != NULL && region->type == ROUTE_TEXT &&
	    strcmp(region->text, p->tag) == 0) {
		for (size_t i = 0; i < n; i++)
			if (route_consumer_has_affinity(&consumers[i],
			    p->tag) && route_consumer_has_capacity(
			    &consumers[i]) && (best == ROUTE_NONE ||
			    route_consumer_available(&consumers[i]) >
			    route_consumer_available(&consumers[best])))
				best = (int)i;
		if (best != ROUTE_NONE)
			return best;
	}
	for (size_t i = 0; i < n; i++)
		if (route_consumer_has_capacity(&consumers[i]))
			return (int)i;
	return ROUTE_NONE;
}

ROUTE_PLUGIN_STATEFUL("pick-eu", pick_eu, pick_eu_init, pick_eu_fini);
