/* SPDX-License-Identifier: ISC */
/*
 * round-robin: rotates over the consumers that have capacity.  Each call
 * takes the next consumer with capacity after the one chosen last (modulo
 * the number of consumers), scanning all of them once; none when no
 * consumer has capacity.  The first call starts at the first consumer.
 *
 * The rotation cursor is state that init allocates, and init runs once per
 * helper process: with several helpers each one rotates on its own, so the
 * rotation is per helper, not global to the group.
 */

#include <stdlib.h>
#include <stdio.h>

#include <route-host/plugin.h>

/* The rotation cursor. */
struct round_robin_state {
	bool	started;	/* has anything been chosen yet? */
	size_t	last;		/* index of the consumer chosen last */
};

/* Pick the next consumer with capacity after the last one chosen. */
static int
round_robin(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	struct round_robin_state	*s = state;
	size_t				 start, i;

	(void)msg;
	if (s == NULL || n == 0 || n > (size_t)INT32_MAX)
		return ROUTE_NONE;
	start = s->started ? (s->last % n + 1) % n : 0;
	for (size_t k = 0; k < n; k++) {
		i = (start + k) % n;
		if (route_consumer_has_capacity(&consumers[i])) {
			s->started = true;
			s->last = i;
			return (int)i;
		}
	}
	return ROUTE_NONE;
}

/* Allocate the cursor; round-robin takes no options. */
static int
round_robin_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	struct round_robin_state	*s;

	if (nopts > 0) {
		snprintf(err, errlen, "round-robin: unknown option %s "
		    "(round-robin takes no options)", opts[0].key);
		return -1;
	}
	if ((s = calloc(1, sizeof *s)) == NULL) {
		snprintf(err, errlen, "round-robin: out of memory");
		return -1;
	}
	*state = s;
	return 0;
}

/* Free the cursor. */
static void
round_robin_fini(void *state)
{
	free(state);
}

ROUTE_PLUGIN_STATEFUL("round-robin", round_robin, round_robin_init,
    round_robin_fini);
