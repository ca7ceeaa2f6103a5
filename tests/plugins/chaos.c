/* SPDX-License-Identifier: ISC */
/*
 * Test plugin: behaves as each message says, for randomized tests.
 *
 *	act=ok		answer at once (the default, also for no act)
 *	act=sleep	sleep "ms" milliseconds (integer field), then answer
 *	act=crash	dereference NULL (SIGSEGV)
 *	act=hang	sleep for ever, without spinning
 *
 * Answers pick consumer 0, or none when there is no consumer.  Options
 * are accepted and ignored: they only make versions with the same bytes
 * distinct.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <route-host/plugin.h>

/* Sleep ms milliseconds, through interruptions. */
static void
chaos_sleep(int64_t ms)
{
	struct timespec	ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1)
		;
}

/* True when text field v is s. */
static bool
chaos_is(const struct route_value *v, const char *s)
{
	return v != NULL && v->type == ROUTE_TEXT && strcmp(v->text, s) == 0;
}

/* Do what the message says. */
static int
chaos(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const struct route_value	*act = route_message_get(msg, "act");
	const struct route_value	*ms = route_message_get(msg, "ms");

	(void)state;
	(void)consumers;
	if (chaos_is(act, "sleep") && ms != NULL && ms->type == ROUTE_INTEGER)
		chaos_sleep(ms->integer);
	else if (chaos_is(act, "crash"))
		return *(volatile int *)0;
	else if (chaos_is(act, "hang"))
		for (;;)
			pause();
	return n > 0 ? 0 : ROUTE_NONE;
}

ROUTE_PLUGIN("chaos", chaos);
