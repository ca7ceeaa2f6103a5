/* SPDX-License-Identifier: ISC */
/*
 * route-host internal interfaces.
 *
 * The engine (engine.c) owns one event loop (loop.c): helper sockets, a
 * signalfd for SIGCHLD and one timer tree for every deadline.  A loaded
 * plugin version is a module (module.c): a sealed memfd of the bytes that
 * were hashed.  Each module has a pool (pool.c) of helper processes
 * (proc.c) that enter a sandbox (sandbox.c), dlopen the memfd and run the
 * plugin (helper.c).  Host and helpers speak the frames of wire.c.  The
 * engine's insides are in engine-int.h.  The library part never prints
 * and never exits: it returns errors.
 */

#ifndef ROUTE_HOST_H
#define ROUTE_HOST_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>

#include "route-host/plugin.h"

#ifndef nitems
#define nitems(a)	(sizeof (a) / sizeof (a)[0])
#endif

#ifndef __unused
#define __unused	__attribute__((__unused__))
#endif

#define VERSION_LEN		32	/* BLAKE2b-256 */
#define VERSION_HEX_LEN		64
#define VERSION_SHORT_LEN	12	/* digits shown as a short hash */

#define DETAIL_MAX		256	/* a result's detail, with its NUL */
#define PLUGIN_NAME_MAX		64

#define DEFAULT_TIMEOUT_MS	5000
#define DEFAULT_FILE_MAX	(64u << 20)
#define DEFAULT_MEMORY_LIMIT	(256u << 20)
/*
 * What clients may make the daemon hold: connections, and bytes of calls
 * (request bodies in flight, frames being read) per connection and in all.
 */
#define DEFAULT_MAX_CONNECTIONS		1024
#define DEFAULT_WINDOW_BYTES		(16ULL << 20)
#define DEFAULT_MAX_IN_FLIGHT_BYTES	(128ULL << 20)
/* The configuration file serve and status read. */
#define DEFAULT_CONF		SYSCONFDIR "/route-host.conf"
/* In a directory of its own: route-host.socket's. */
#define DEFAULT_SOCKET		RUNSTATEDIR "/route-host/route-host.sock"

/*
 * A version's crash settings (pool.c): crashes in a row before its crash
 * loop, the probes' backoff, and its poison memo.  0 means the engine's
 * (or, in the engine's, the built-in default); memo -1 turns it off.
 */
struct crash_conf {
	u_int			 budget;	/* crashes in a row */
	u_int			 backoff_min_ms;
	u_int			 backoff_max_ms;
	int			 memo;		/* bodies remembered; -1 off */
	u_int			 memo_ttl_ms;
};
#define CRASH_BUDGET		16
#define CRASH_BACKOFF_MIN_MS	5
#define CRASH_BACKOFF_MAX_MS	500
#define CRASH_MEMO		1024
#define CRASH_MEMO_TTL_MS	600000

/* How a call ended. */
enum status {
	ST_OK = 0,
	ST_CRASHED,
	ST_TIMED_OUT,
	ST_SPAWN_FAILED,
	ST_BAD_DECISION,
	ST_BAD_REQUEST,
	ST_SHUTTING_DOWN,
	ST_NO_SUCH_CHANNEL,
	ST_OVERLOADED,
	ST_CRASH_LOOP,		/* its version is in a crash loop */
	ST_LAST = ST_CRASH_LOOP
};

struct engine;
struct module;
struct proc;
struct call;

/* What a finished call tells its caller. */
struct result {
	enum status		 status;
	int			 decision;	/* index or ROUTE_NONE */
	const struct module	*module;	/* version that answered */
	char			 detail[DETAIL_MAX];
};

typedef void	(*engine_cb)(const struct result *, void *);

struct engine_config {
	int			 timeout_ms;	/* default deadline */
	u_int			 helpers;	/* max helpers per version */
	u_int			 depth;		/* calls sent ahead per helper */
	int			 grace_ms;	/* for init, and exit */
	int			 standby_ms;	/* spare kept after a fault */
	struct crash_conf	 crash;		/* crash loops, poison memo */
	size_t			 file_max;	/* plugin size cap */
	bool			 sandbox;	/* helpers in the sandbox */
	size_t			 memory_limit;	/* a helper's, 0: none */
	const char		*helper_user;	/* as root; NULL: "nobody" */
	struct zygote		*zygote;	/* started early; NULL: now */
	/* Where the engine reports what an operator should know; NULL. */
	void			(*log)(void *, int, const char *);
	void			*log_arg;
};

/* zygote.c: the process that forks every helper, started first. */
struct zygote;
struct zygote	*zygote_start(char *, size_t);
void		 zygote_free(struct zygote *);
const char	*zygote_what(const struct zygote *);

/* engine.c */
void		 engine_defaults(struct engine_config *);
struct engine	*engine_new(const struct engine_config *, char *, size_t);
void		 engine_free(struct engine *);
int		 engine_load(struct engine *, const char *, const char *,
		     const struct route_option *, size_t, struct module **,
		     char *, size_t);
int		 engine_load_fd(struct engine *, int, const char *,
		     const char *, const struct route_option *, size_t,
		     struct module **, char *, size_t);
void		 engine_release(struct engine *, struct module *);
int		 engine_call(struct engine *, struct module *, const void *,
		     size_t, int, engine_cb, void *);
int		 engine_probe(struct engine *, struct module *, engine_cb,
		     void *);
int		 engine_reject(struct engine *, enum status, const char *,
		     engine_cb, void *);
void		 engine_release_drain(struct engine *, struct module *, int);
void		 engine_set_helpers(struct module *, u_int);
void		 engine_set_sandbox(struct module *, bool, size_t);
void		 engine_set_crash(struct module *, const struct crash_conf *);
int		 engine_set_user(struct engine *, const char *, char *,
		     size_t);
const char	*engine_broken(const struct engine *);
void		 engine_describe_sandbox(const struct engine *, char *,
		     size_t);
int		 engine_run(struct engine *, int);
u_int		 engine_pending(const struct engine *);
u_int		 engine_loaded(const struct engine *);
u_int		 engine_procs(const struct engine *);
uint64_t	 engine_call_bytes(const struct engine *);
void		 engine_foreach(struct engine *,
		     void (*)(struct module *, void *), void *);
const char	*engine_status_name(enum status);
uint64_t	 engine_now(void);

/* loop.c: the event loop; every fd and every deadline goes through it. */
struct watch {
	int			 fd;
	void			(*cb)(struct watch *, uint32_t);
	void			*arg;
};
struct timer {
	RB_ENTRY(timer)		 entry;
	uint64_t		 at;		/* monotonic ns */
	uint64_t		 seq;		/* ties broken by arming order */
	bool			 armed;
	void			(*cb)(void *);
	void			*arg;
};
struct loop;
struct loop	*loop_new(char *, size_t);
void		 loop_free(struct loop *);
int		 loop_turn(struct loop *, int);
int		 loop_watch(struct loop *, struct watch *, uint32_t);
int		 loop_rewatch(struct loop *, struct watch *, uint32_t);
void		 loop_unwatch(struct loop *, struct watch *);
void		 loop_timer_init(struct timer *, void (*)(void *), void *);
void		 loop_timer_at(struct loop *, struct timer *, uint64_t);
void		 loop_timer_cancel(struct loop *, struct timer *);
u_int		 loop_timers(const struct loop *);
u_int		 loop_timers_counted(struct loop *);
uint64_t	 loop_now(void);

/* The engine's loop, for the daemon's own watches and timers. */
struct loop	*engine_loop(struct engine *);
int		 engine_watch(struct engine *, struct watch *, uint32_t);
int		 engine_rewatch(struct engine *, struct watch *, uint32_t);
void		 engine_unwatch(struct engine *, struct watch *);

/* A helper as status shows it. */
struct engine_helper {
	pid_t			 pid;
	const char		*state;		/* proc_state_name */
	bool			 spare;
};
u_int		 engine_helpers(const struct module *, struct engine_helper *,
		     u_int);
void		 engine_check(struct engine *);

/* A log line for the daemon's log; priority as syslog(3)'s. */
typedef void	(*log_cb)(void *, int, const char *);

/* channel.c: a channel's slot and its gated, draining deploys. */
struct channel_conf {
	int			 timeout_ms;	/* 0: the engine's */
	u_int			 helpers;	/* 0: the engine's */
	int			 drain_ms;
	u_int			 memory_mb;	/* 0: the engine's */
	int			 sandbox;	/* 0: the engine's, 1 yes, -1 no */
	struct crash_conf	 crash;		/* 0 fields: the engine's */
	const struct route_option *opts;
	size_t			 nopts;
};

struct channel_gate;
struct channel {
	int			 timeout_ms;
	u_int			 helpers;
	u_int			 memory_mb;
	int			 sandbox;
	struct crash_conf	 crash;
	struct route_option	*opts;
	size_t			 nopts;
	char			 name[PLUGIN_NAME_MAX];
	struct engine		*engine;
	struct module		*active;	/* NULL until deployed */
	struct channel_gate	*gate;		/* version being loaded */
	char			 error[DETAIL_MAX];	/* last failure */
	int			 drain_ms;
	u_int			 deploys;
	u_int			 deploy_failures;	/* versions not deployed */
	log_cb			 log;
	void			*logarg;
};

struct channel	*channel_new(struct engine *, const char *, int, log_cb,
		     void *);
void		 channel_free(struct channel *);
int		 channel_configure(struct channel *,
		     const struct channel_conf *);
int		 channel_deploy(struct channel *, const char *);
int		 channel_deploy_fd(struct channel *, int, const char *);
const struct module *channel_loading(const struct channel *);
int		 channel_call(struct channel *, const void *, size_t, int,
		     engine_cb, void *);

/* plugdir.c: the watched plugins directory. */
struct plugdir;
struct plugdir_config {
	bool			 strict;	/* StrictModes */
	int			 settle_ms;
	int			 rescan_ms;
	int			 drain_ms;
	/* Per-channel settings, asked for at each deploy (may be NULL). */
	void			(*configure)(void *, const char *,
				    struct channel_conf *);
	void			*configure_arg;
};
void		 plugdir_defaults(struct plugdir_config *);
struct plugdir	*plugdir_open(struct engine *, const char *,
		     const struct plugdir_config *, log_cb, void *, char *,
		     size_t);
void		 plugdir_close(struct plugdir *);
void		 plugdir_scan(struct plugdir *);
void		 plugdir_reconfigure(struct plugdir *,
		     const struct plugdir_config *);
struct channel	*plugdir_channel(struct plugdir *, const char *);
int		 plugdir_call(struct plugdir *, const char *, const void *,
		     size_t, int, engine_cb, void *);
bool		 plugdir_channel_name_ok(const char *);
void		 plugdir_foreach(struct plugdir *,
		     void (*)(struct channel *, void *), void *);
const char	*plugdir_path(const struct plugdir *);
u_int		 plugdir_loading(const struct plugdir *);
void		 plugdir_foreach_refused(struct plugdir *,
		     void (*)(const char *, const char *, void *), void *);

/*
 * module.c: a loaded version, and its life.
 *
 *	engine_load        last holder released        no call, no helper
 *	  ----> HELD ------------------------------> RETIRED ----------> DEAD
 *	         ^      engine_load finds it again       |
 *	         +---------------------------------------+
 *
 * Holders (channels, gates, commands) and calls are counted apart: only
 * the last holder's release retires a version, and only a retired
 * version's drain cap cuts calls.  Fields below the identity are the
 * engine's; other files read the identity and the counters only.
 */
enum module_state {
	MODULE_HELD,		/* in the registry, held by someone */
	MODULE_RETIRED,		/* no holder; calls or helpers remain */
	MODULE_DEAD,		/* nothing left: freed at the end of the turn */
};

struct pool;
struct module {
	/* Identity. */
	unsigned char		 key[VERSION_LEN];	/* version + options */
	unsigned char		 hash[VERSION_LEN];
	char			 hex[VERSION_HEX_LEN + 1];
	char			 label[PLUGIN_NAME_MAX];
	int			 memfd;
	size_t			 size;
	struct route_option	*opts;
	size_t			 nopts;
	/* Filled by the first successful handshake. */
	char			 name[PLUGIN_NAME_MAX];
	uint32_t		 abi;
	uint32_t		 flags;		/* ROUTE_PLUGIN_NONDETERMINISTIC */

	/* Counters. */
	uint64_t		 served;
	uint64_t		 crashed;
	uint64_t		 timed_out;
	uint64_t		 violations;	/* helpers the sandbox killed */
	char			 violation[DETAIL_MAX];	/* the last */
	char			 last_crash[DETAIL_MAX];	/* in a call */
	uint64_t		 violation_logged;	/* when, and how many */
	uint64_t		 violations_logged;
	uint64_t		 helper_crashes;	/* helpers died unasked */
	uint64_t		 crash_loops;	/* calls answered crash_loop */
	uint64_t		 memo_hits;	/* ... crashed from the memo */
	uint64_t		 crash_loop_since;	/* wall ms; 0: not in one */
	uint64_t		 err_window;	/* stderr: this second began */
	u_int			 err_lines;	/* ... lines logged in it */
	size_t			 err_bytes;	/* ... bytes read in it */
	uint64_t		 err_dropped;	/* lines not logged, unsaid */

	/* Its life (module.c) and its helpers (pool.c). */
	enum module_state	 state;
	RB_ENTRY(module)	 entry;		/* registry, while HELD */
	TAILQ_ENTRY(module)	 lentry;	/* retired or dead list */
	u_int			 holders;
	u_int			 ncalls;	/* call structures naming it */
	int			 drain_ms;	/* cap armed at retirement */
	struct timer		 cap;
	struct engine		*engine;
	struct pool		*pool;
};
RB_HEAD(module_tree, module);
RB_PROTOTYPE(module_tree, module, entry, module_cmp);

int		 module_cmp(struct module *, struct module *);
struct module	*module_open(int, const char *, const char *, size_t,
		     const struct route_option *, size_t, char *, size_t);
void		 module_free(struct module *);
u_int		 module_pids(const struct module *, pid_t *, u_int);
const char	*module_state_name(enum module_state);

/* version.c: content hashes. */
void		 version_hex(const unsigned char *, char *);
int		 version_file(int, unsigned char *);
int		 version_mem(const void *, size_t, unsigned char *);

/* A growing buffer of frames (wire.c). */
struct wire_buf {
	unsigned char		*data;
	size_t			 len;
	size_t			 size;
	size_t			 max;		/* 0: one frame */
	bool			 failed;	/* allocation or limit */
};

/* vis.c: untrusted text, escaped for a log line or the status. */
size_t		 vis_bytes(char *, size_t, const char *, size_t);
void		 vis_string(char *, size_t, const char *);

/* wire.c: frames between host and helper, and call bodies. */
#define WIRE_HEADER		5	/* u32 length, u8 type */
#define WIRE_FRAME_MAX		(1u << 20)
#define WIRE_REPLY_MAX		2048
#define WIRE_FIELDS_MAX		1024
#define WIRE_CONSUMERS_MAX	4096
#define WIRE_TAGS_MAX		64
#define WIRE_NAME_MAX		255	/* field names, ids, tags */

enum wire_type {
	WIRE_CALL = 1,		/* host -> helper: u32 seq, body */
	WIRE_HELLO = 2,		/* helper -> host: handshake */
	WIRE_RESULT = 3,	/* helper -> host: u32 seq answered through */
};

enum wire_hello {
	HELLO_OK = 0,
	HELLO_DLOPEN,		/* dlopen failed; detail says why */
	HELLO_NOT_ELF,
	HELLO_NO_DESCRIPTOR,
	HELLO_ABI,
	HELLO_BAD_DESCRIPTOR,
	HELLO_INIT,
	HELLO_SANDBOX,		/* the sandbox could not be entered */
};

enum wire_result {
	RESULT_OK = 0,
	RESULT_BAD_REQUEST = 1,
};

/* A decoded call body; points into its own arena. */
struct wire_call {
	struct route_message	 msg;
	struct route_consumer	*consumers;
	size_t			 nconsumers;
	void			*arena;
};

void		 wire_init(struct wire_buf *);
void		 wire_free(struct wire_buf *);
void		 wire_u8(struct wire_buf *, uint8_t);
void		 wire_u16(struct wire_buf *, uint16_t);
void		 wire_u32(struct wire_buf *, uint32_t);
void		 wire_u64(struct wire_buf *, uint64_t);
void		 wire_bytes(struct wire_buf *, const void *, size_t);
void		 wire_str16(struct wire_buf *, const char *, size_t);
void		 wire_put_u32(unsigned char *, uint32_t);
uint32_t	 wire_get_u32(const unsigned char *);

void		 wire_body_begin(struct wire_buf *, uint32_t, uint32_t);
int		 wire_body_field(struct wire_buf *, const char *,
		     const struct route_value *);
int		 wire_body_consumer(struct wire_buf *,
		     const struct route_consumer *);
int		 wire_body_nconsumers(const void *, size_t, uint32_t *);
int		 wire_decode_call(const void *, size_t, struct wire_call *,
		     char *, size_t);
void		 wire_call_free(struct wire_call *);

void		 wire_frame_begin(struct wire_buf *, uint8_t);
void		 wire_frame_end(struct wire_buf *);

struct wire_reader {
	const unsigned char	*p;
	size_t			 left;
	bool			 bad;
};
void		 wire_reader_init(struct wire_reader *, const void *, size_t);
uint8_t		 wire_read_u8(struct wire_reader *);
uint16_t	 wire_read_u16(struct wire_reader *);
uint32_t	 wire_read_u32(struct wire_reader *);
uint64_t	 wire_read_u64(struct wire_reader *);
size_t		 wire_read_str16(struct wire_reader *, char *, size_t);
const void	*wire_read_bytes(struct wire_reader *, size_t);
bool		 wire_reader_done(const struct wire_reader *);

#define MS_NS	1000000ULL

typedef struct json_t json_t;

/* proto.c: the broker protocol, route-host-protocol(7). */
#define PROTO_VERSION		2	/* the highest spoken */
#define PROTO_VERSION_MIN	1
#define PROTO_FRAME_MAX		(WIRE_FRAME_MAX + 512)
#define PROTO_CHANNEL_MAX	(PLUGIN_NAME_MAX - 1)

enum proto_type {
	PROTO_HELLO = 0x01,	/* u16 min version, u16 max version */
	PROTO_ROUTE = 0x02,	/* u64 id, u32 timeout_ms, str8 channel, body */
	PROTO_STATUS = 0x03,	/* u64 id */
	PROTO_WELCOME = 0x81,	/* u16 version, u32 max frame, u32 window,
				   str8 server */
	PROTO_RESULT = 0x82,	/* u64 id, u8 status, i32 decision,
				   32 bytes version, str16 detail */
	PROTO_STATUS_REPLY = 0x83, /* u64 id, u32 length, JSON */
	PROTO_ERROR = 0xff,	/* str16 reason; the connection closes */
};

struct proto_result {
	uint64_t		 id;
	uint8_t			 status;
	int32_t			 decision;
	unsigned char		 version[VERSION_LEN];
	char			 detail[DETAIL_MAX];
};

void		 proto_hello(struct wire_buf *);
void		 proto_welcome(struct wire_buf *, uint16_t, uint32_t);
void		 proto_route(struct wire_buf *, uint64_t, uint32_t,
		     const char *, const void *, size_t);
void		 proto_result(struct wire_buf *, uint16_t, uint64_t,
		     const struct result *);
void		 proto_error(struct wire_buf *, const char *);
int		 proto_decode_result(const unsigned char *, size_t,
		     struct proto_result *);

/* server.c: the daemon's listening socket and clients. */
struct server;
#define SERVER_ALLOW_MAX	32
/* Peers that may connect; none listed lets every peer in. */
struct server_allow {
	u_int			 nuid;
	u_int			 ngid;
	uid_t			 uid[SERVER_ALLOW_MAX];
	gid_t			 gid[SERVER_ALLOW_MAX];
};
struct server_config {
	const char		*socket;
	mode_t			 socket_mode;
	uid_t			 socket_uid;
	gid_t			 socket_gid;
	const char		*socket_owner;	/* for errors */
	const char		*socket_group;	/* for errors */
	struct server_allow	 allow;
	u_int			 window;	/* calls per connection */
	u_int			 max_in_flight;	/* calls in all */
	u_int			 max_connections;
	uint64_t		 window_bytes;	/* bodies per connection */
	uint64_t		 max_in_flight_bytes; /* bodies and frames */
	int			 listen_fd;	/* handed over, or -1 */
	const char		*listen_owned;	/* ... by our own re-exec:
						   its path, ours to remove */
};
struct server	*server_open(struct engine *, struct plugdir *,
		     const struct server_config *, log_cb, void *, char *,
		     size_t);
int		 server_listen(struct server *);
void		 server_flush(struct server *);
void		 server_stop(struct server *);
int		 server_handover(struct server *, bool *);
void		 server_take_back(struct server *, int);
void		 server_free(struct server *);
u_int		 server_in_flight(const struct server *);
void		 server_set_plugdir(struct server *, struct plugdir *);
void		 server_set_limits(struct server *, const struct server_config *);
void		 server_set_allow(struct server *, const struct server_allow *);
const char	*server_path(const struct server *);
void		 server_set_reload(struct server *, bool, const char *);
void		 server_set_settings(struct server *, json_t *);
bool		 server_activated(const struct server *);
json_t		*server_status(struct server *);

/* metrics.c: the status as OpenMetrics, and over HTTP (metrics-listen). */
struct metrics;
int		 metrics_write(FILE *, json_t *);
struct metrics	*metrics_open(struct engine *, struct server *, const char *,
		     void (*)(void *, int, const char *), void *, char *,
		     size_t);
void		 metrics_close(struct metrics *);

/* conf.c: route-host.conf(5). */
struct conf_channel {
	char			 name[PLUGIN_NAME_MAX];
	int			 timeout_ms;
	u_int			 helpers;
	int			 drain_ms;
	u_int			 memory_mb;
	int			 sandbox;	/* 0: the file's, 1 yes, -1 no */
	struct crash_conf	 crash;		/* 0 fields: the file's */
	struct route_option	*opts;
	size_t			 nopts;
};
struct conf {
	char			 plugins[4096];
	char			 socket[108];
	char			 helper_user[64];	/* as root */
	char			 socket_owner[64];	/* "": the daemon's */
	char			 socket_group[64];	/* "": the daemon's */
	uid_t			 socket_uid;
	gid_t			 socket_gid;
	mode_t			 socket_mode;
	struct server_allow	 allow;
	int			 timeout_ms;
	u_int			 helpers;
	int			 drain_ms;
	u_int			 memory_mb;
	int			 sandbox;	/* 1 yes, -1 no */
	bool			 strict;
	u_int			 window;
	u_int			 max_in_flight;
	struct crash_conf	 crash;
	u_int			 max_connections;
	uint64_t		 window_bytes;
	uint64_t		 max_in_flight_bytes;
	char			 metrics_listen[64];	/* "": off */
	struct conf_channel	*channels;
	size_t			 nchannels;
};
void		 conf_defaults(struct conf *);
struct sockaddr_storage;
int		 conf_address(const char *, struct sockaddr_storage *,
		     socklen_t *, char *, size_t);
int		 conf_load(struct conf *, const char *, char *, size_t);
u_int		 conf_check(const char *, void (*)(void *, const char *),
		     void *);
void		 conf_free(struct conf *);
const struct conf_channel *conf_channel(const struct conf *, const char *);
void		 conf_crash_merge(struct crash_conf *,
		     const struct crash_conf *);

/* helper.c: a plugin run in this process, for debuggers (route --inline). */
struct helper_inline;
struct helper_inline	*helper_inline_open(const char *,
			     const struct route_option *, size_t, char *,
			     size_t);
const char	*helper_inline_name(const struct helper_inline *);
int		 helper_inline_call(struct helper_inline *, const void *,
		     size_t, int *, char *, size_t);
void		 helper_inline_close(struct helper_inline *);

/* sample.c: the requests check --fuzz sends. */
struct sample_gen {
	uint64_t		 state;
};
void		 sample_seed(struct sample_gen *, uint64_t);
json_t		*sample_request(struct sample_gen *, const json_t *);
json_t		*sample_shrink(const json_t *, size_t);

/* request.c: the command line's JSON lines. */
int		 request_parse(const char *, struct wire_buf *, json_t **,
		     int *, char *, size_t);
char		*request_format(const struct result *, const char *,
		     const char *, json_t *);

/* Commands (cmd-*.c), called by main with argv after the command name. */
int		 cmd_hash(int, char **);
int		 cmd_check(int, char **);
int		 cmd_route(int, char **);
int		 cmd_demo(int, char **);
int		 cmd_serve(int, char **);
int		 cmd_status(int, char **);
int		 cmd_options(struct route_option **, size_t *, const char *);
void		 cmd_log(void *, int, const char *);

#endif /* ROUTE_HOST_H */
