/* SPDX-License-Identifier: ISC */
/*
 * least-loaded: the consumer with the most available capacity; ties go to
 * the smaller buffer depth, then to the earlier consumer.  None when no
 * consumer has capacity.
 */

#include <route-host/plugin.h>

/* Pick the least loaded consumer with capacity. */
static int
least_loaded(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	int		best = ROUTE_NONE;
	uint32_t	best_avail = 0, best_depth = 0;

	(void)state;
	(void)msg;
	for (size_t i = 0; i < n; i++) {
		uint32_t	avail = route_consumer_available(&consumers[i]);
		uint32_t	depth = consumers[i].buffer_depth;

		if (avail == 0)
			continue;
		if (best == ROUTE_NONE || avail > best_avail ||
		    (avail == best_avail && depth < best_depth)) {
			best = (int)i;
			best_avail = avail;
			best_depth = depth;
		}
	}
	return best;
}

ROUTE_PLUGIN("least-loaded", least_loaded);
