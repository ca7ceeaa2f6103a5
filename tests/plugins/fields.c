/* SPDX-License-Identifier: ISC */
/*
 * Test plugin: proves every field type and the consumer view arrive
 * intact.  It picks the consumer whose id is the text field "target" when
 * the other fields hold exactly b=true, f=2.5, i=-7 (int64), n=null and
 * the consumer advertises the tag in field "tag"; otherwise none.
 */

#include <string.h>

#include <route-host/plugin.h>

/* True when field name has the given type. */
static const struct route_value *
fields_get(const struct route_message *msg, const char *name,
    enum route_type type)
{
	const struct route_value	*v = route_message_get(msg, name);

	return v != NULL && v->type == type ? v : NULL;
}

/* Check every field, then find the target. */
static int
fields(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	const struct route_value	*b, *f, *i, *nul, *target, *tag;

	(void)state;
	b = fields_get(msg, "b", ROUTE_BOOLEAN);
	f = fields_get(msg, "f", ROUTE_FLOAT);
	i = fields_get(msg, "i", ROUTE_INTEGER);
	nul = fields_get(msg, "n", ROUTE_NULL);
	target = fields_get(msg, "target", ROUTE_TEXT);
	tag = fields_get(msg, "tag", ROUTE_TEXT);
	if (b == NULL || !b->boolean || f == NULL || f->real != 2.5 ||
	    i == NULL || i->integer != -7 || nul == NULL || target == NULL ||
	    tag == NULL || strlen(target->text) != target->len)
		return ROUTE_NONE;
	for (size_t k = 0; k < n; k++)
		if (strcmp(consumers[k].id, target->text) == 0 &&
		    route_consumer_has_affinity(&consumers[k], tag->text))
			return (int)k;
	return ROUTE_NONE;
}

ROUTE_PLUGIN("fields", fields);
