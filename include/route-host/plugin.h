/* SPDX-License-Identifier: ISC */
/*
 * route-host plugin ABI.
 *
 * A routing plugin is a shared object that includes this header and declares
 * one routing function at file scope:
 *
 *	static int
 *	pick(void *state, const struct route_message *msg,
 *	    const struct route_consumer *consumers, size_t n)
 *	{
 *		for (size_t i = 0; i < n; i++)
 *			if (route_consumer_has_capacity(&consumers[i]))
 *				return (int)i;
 *		return ROUTE_NONE;
 *	}
 *	ROUTE_PLUGIN("first-available", pick);
 *
 * The function returns the index of the chosen consumer or ROUTE_NONE.  It
 * runs inside a route-host helper process, never inside the host: a crash,
 * a hang or an exit only ever fails the call it was running.
 *
 * A stateful plugin declares init and fini with ROUTE_PLUGIN_STATEFUL.  init
 * runs once per helper process, after the plugin is loaded, and receives the
 * operator's options as KEY=VALUE pairs.  It returns 0, or -1 after writing a
 * reason into err (at most errlen bytes), which fails the helper's handshake
 * with that reason.
 *
 * A plugin whose decisions depend on more than the message and the
 * consumers (time, randomness, state kept between calls) declares itself
 * non-deterministic with ROUTE_PLUGIN_FLAGS(..., ROUTE_PLUGIN_NONDETERMINISTIC):
 * the host then keeps no poison memo for it, since a body that crashed it
 * once may not crash it again.
 *
 * Everything in this header is inline or a declaration: a plugin links
 * against nothing from route-host.  Build one with
 *
 *	cc -shared -fPIC $(pkg-config --cflags route-host-plugin) -o x.so x.c
 */

#ifndef ROUTE_HOST_PLUGIN_H
#define ROUTE_HOST_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a structure below changes layout or meaning. */
#define ROUTE_ABI_VERSION	1

/* A routing function's answer when no consumer should be chosen. */
#define ROUTE_NONE		(-1)

/* The type of a message field's value. */
enum route_type {
	ROUTE_NULL = 0,
	ROUTE_BOOLEAN = 1,
	ROUTE_INTEGER = 2,
	ROUTE_FLOAT = 3,
	ROUTE_TEXT = 4,
};

/* One field's value; text is UTF-8, NUL-terminated, len bytes long. */
struct route_value {
	enum route_type		 type;
	union {
		bool		 boolean;
		int64_t		 integer;
		double		 real;
		struct {
			const char	*text;
			size_t		 len;
		};
	};
};

/* A named field of a message. */
struct route_field {
	const char		*name;
	struct route_value	 value;
};

/* A message: fields sorted by name (bytewise), names unique. */
struct route_message {
	const struct route_field *fields;
	size_t			 nfields;
};

/* What a routing function knows about one consumer of the group. */
struct route_consumer {
	const char		*id;
	uint32_t		 in_flight;
	uint32_t		 max_in_flight;
	uint32_t		 buffer_depth;
	const char *const	*tags;
	size_t			 ntags;
};

/* One operator option handed to init, e.g. field=region. */
struct route_option {
	const char		*key;
	const char		*value;
};

typedef int	(*route_fn)(void *, const struct route_message *,
		    const struct route_consumer *, size_t);
typedef int	(*route_init_fn)(void **, const struct route_option *, size_t,
		    char *, size_t);
typedef void	(*route_fini_fn)(void *);

/*
 * The descriptor the host looks up, by the name ROUTE_PLUGIN_SYMBOL.  It
 * grows only at its end, and size says how much of it a plugin was built
 * with: a host reads a field the plugin's size does not cover as 0, so a
 * plugin built before flags existed loads as it always did.
 */
struct route_plugin {
	uint32_t		 abi;
	uint32_t		 size;
	const char		*name;
	route_fn		 route;
	route_init_fn		 init;
	route_fini_fn		 fini;
	uint32_t		 flags;		/* ROUTE_PLUGIN_*; since 0.2 */
};

/* Its answers may differ for the same call: no poison memo for it. */
#define ROUTE_PLUGIN_NONDETERMINISTIC	(1u << 0)

#define ROUTE_PLUGIN_SYMBOL	"route_plugin_descriptor"

#if defined(__GNUC__) || defined(__clang__)
#define ROUTE_PLUGIN_EXPORT	__attribute__((visibility("default"), used))
#else
#define ROUTE_PLUGIN_EXPORT
#endif

#ifdef __cplusplus
#define ROUTE_PLUGIN_LINKAGE	extern "C"
#else
#define ROUTE_PLUGIN_LINKAGE
#endif

/*
 * Declare a stateful plugin.  name must be a string literal; init and fini
 * may be NULL.
 */
#define ROUTE_PLUGIN_STATEFUL(name, fn, initfn, finifn)			\
	ROUTE_PLUGIN_FLAGS(name, fn, initfn, finifn, 0)

/* Declare a plugin with flags (ROUTE_PLUGIN_*); init and fini may be NULL. */
#define ROUTE_PLUGIN_FLAGS(name, fn, initfn, finifn, flagbits)		\
	ROUTE_PLUGIN_LINKAGE ROUTE_PLUGIN_EXPORT const struct route_plugin	\
	    route_plugin_descriptor = {					\
		ROUTE_ABI_VERSION, sizeof(struct route_plugin),		\
		"" name "", (fn), (initfn), (finifn), (flagbits)		\
	}

/* Declare a stateless plugin. */
#define ROUTE_PLUGIN(name, fn)	ROUTE_PLUGIN_STATEFUL(name, fn, NULL, NULL)

/* Look up a message field by name; NULL when the message has none. */
static inline const struct route_value *
route_message_get(const struct route_message *msg, const char *name)
{
	size_t	lo = 0, hi = msg->nfields;

	while (lo < hi) {
		size_t	mid = lo + (hi - lo) / 2;
		int	cmp = strcmp(name, msg->fields[mid].name);

		if (cmp == 0)
			return &msg->fields[mid].value;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Messages the consumer can still take: max minus current, floored at 0. */
static inline uint32_t
route_consumer_available(const struct route_consumer *c)
{
	return c->in_flight >= c->max_in_flight ? 0 :
	    c->max_in_flight - c->in_flight;
}

/* True when the consumer can take at least one more message. */
static inline bool
route_consumer_has_capacity(const struct route_consumer *c)
{
	return route_consumer_available(c) > 0;
}

/* True when the consumer advertises tag. */
static inline bool
route_consumer_has_affinity(const struct route_consumer *c, const char *tag)
{
	for (size_t i = 0; i < c->ntags; i++)
		if (strcmp(c->tags[i], tag) == 0)
			return true;
	return false;
}

/* The value of option key, or NULL. */
static inline const char *
route_option_get(const struct route_option *opts, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(opts[i].key, key) == 0)
			return opts[i].value;
	return NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* ROUTE_HOST_PLUGIN_H */
