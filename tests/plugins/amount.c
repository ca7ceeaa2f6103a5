/* SPDX-License-Identifier: ISC */
/* Test plugin: the reference's amount router.  amount > 1000 picks the
 * first consumer; anything else picks none. */

#include <route-host/plugin.h>

/* High-value messages go to the first consumer. */
static int
amount(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const struct route_value	*v = route_message_get(msg, "amount");

	(void)state;
	if (v != NULL && v->type == ROUTE_INTEGER && v->integer > 1000 && n > 0)
		return 0;
	return ROUTE_NONE;
}

ROUTE_PLUGIN("amount", amount);
