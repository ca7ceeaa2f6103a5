/* SPDX-License-Identifier: ISC */
/*
 * libroute-host-client: the broker side of route-host's protocol
 * (route-host-protocol(7)).  A broker builds a request (a message's
 * fields, a consumer list, a deadline), hands it to a connection with a
 * callback and a cookie of its own, and gets the result when the daemon
 * answers: pipelined, out of order, over one pollable descriptor that fits
 * the broker's event loop, or one call at a time with rhc_conn_call.
 *
 * A connection reconnects by itself, with jittered back-off: a call not
 * yet written waits for the next daemon, a call written but unanswered
 * when the connection dropped is sent again once (a routing decision is a
 * pure function of its request) unless the connection is at-most-once,
 * and a call answered shutting_down is sent again to the next daemon.
 *
 * Threads: the library has no global state, starts no thread and sends
 * no signal.  A request or a connection may be used by one thread at a
 * time; different ones from different threads at once.  It never exits
 * and never prints: errors are return values, errno and the error text
 * of rhc_conn_error and rhc_request_error.  See rhc(3).
 */

#ifndef ROUTE_HOST_CLIENT_H
#define ROUTE_HOST_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RHC_VERSION_LEN		32	/* a plugin version: BLAKE2b-256 */
#define RHC_DECISION_NONE	(-1)	/* the plugin chose no consumer */

/* How a call ended: the protocol's statuses, then the library's own. */
enum rhc_status {
	RHC_OK = 0,			/* decision is the consumer chosen */
	RHC_CRASHED = 1,		/* the plugin's helper died in it */
	RHC_TIMED_OUT = 2,		/* past its deadline */
	RHC_SPAWN_FAILED = 3,		/* no helper could start */
	RHC_BAD_DECISION = 4,		/* the plugin chose no valid consumer */
	RHC_BAD_REQUEST = 5,		/* the daemon refused the request */
	RHC_SHUTTING_DOWN = 6,		/* the daemon stopped (no retry left) */
	RHC_NO_SUCH_CHANNEL = 7,
	RHC_OVERLOADED = 8,		/* the daemon's limits */
	RHC_CRASH_LOOP = 9,		/* the version crashes on everything */
	RHC_CONNECTION_LOST = 100,	/* no daemon answered it */
	RHC_CANCELLED = 101		/* the connection was freed first */
};

/* What one call came to. */
struct rhc_result {
	enum rhc_status		 status;
	int			 decision;	/* consumer index, or NONE */
	unsigned char		 version[RHC_VERSION_LEN];	/* all 0: none */
	const char		*detail;	/* "" when ok; see rhc(3) */
	unsigned int		 tries;		/* times it was written */
};

struct rhc_request;
struct rhc_conn;

/* A result is handed to the callback of its call, with its cookie. */
typedef void (*rhc_result_cb)(void *cookie, const struct rhc_result *);

/* A connection's settings; rhc_options_init fills in the defaults. */
struct rhc_options {
	int		 at_most_once;	/* written, unanswered: never resent */
	unsigned int	 reconnect_min_ms;	/* 10 */
	unsigned int	 reconnect_max_ms;	/* 1000 */
	unsigned int	 wait_ms;	/* for a daemon, per call: 5000 */
	unsigned int	 max_pending;	/* calls held at once: 65536 */
};

/* Requests. */
struct rhc_request	*rhc_request_new(void);
void			 rhc_request_free(struct rhc_request *);
void			 rhc_request_clear(struct rhc_request *);
int			 rhc_request_null(struct rhc_request *, const char *);
int			 rhc_request_bool(struct rhc_request *, const char *,
			     int);
int			 rhc_request_int(struct rhc_request *, const char *,
			     int64_t);
int			 rhc_request_float(struct rhc_request *, const char *,
			     double);
int			 rhc_request_text(struct rhc_request *, const char *,
			     const char *, size_t);
int			 rhc_request_consumer(struct rhc_request *,
			     const char *, uint32_t, uint32_t, uint32_t,
			     const char *const *, size_t);
int			 rhc_request_timeout(struct rhc_request *, uint32_t);
int			 rhc_request_json(struct rhc_request *, const char *);
const char		*rhc_request_error(const struct rhc_request *);

/* Connections. */
void			 rhc_options_init(struct rhc_options *);
struct rhc_conn		*rhc_conn_new(const char *, const struct rhc_options *);
void			 rhc_conn_free(struct rhc_conn *);
int			 rhc_conn_submit(struct rhc_conn *, const char *,
			     const struct rhc_request *, rhc_result_cb, void *);
int			 rhc_conn_fd(const struct rhc_conn *);
int			 rhc_conn_events(const struct rhc_conn *);
int			 rhc_conn_timeout(const struct rhc_conn *);
int			 rhc_conn_process(struct rhc_conn *, int);
int			 rhc_conn_call(struct rhc_conn *, const char *,
			     const struct rhc_request *, struct rhc_result *);
size_t			 rhc_conn_pending(const struct rhc_conn *);
int			 rhc_conn_wait(struct rhc_conn *, int);
int			 rhc_conn_status(struct rhc_conn *, char **, int);
const char		*rhc_conn_error(const struct rhc_conn *);
unsigned int		 rhc_conn_window(const struct rhc_conn *);

/* Names. */
const char		*rhc_status_name(enum rhc_status);
void			 rhc_version_hex(const unsigned char *, char *);

#ifdef __cplusplus
}
#endif

#endif /* ROUTE_HOST_CLIENT_H */
