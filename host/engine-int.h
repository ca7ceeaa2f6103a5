/* SPDX-License-Identifier: ISC */
/*
 * The engine's insides, shared by its own files only: engine.c (the top:
 * registry, turns, reaping), call.c (a call's life), module.c (a
 * version's life), pool.c (a version's helpers: dispatch, spawn, spares,
 * throttle, and what each helper event means), proc.c (one helper: the
 * process, its socket and ledger, bytes to typed events, its stderr to
 * log lines), zygote.c (the process that forks helpers), memo.c (a
 * version's poison memo), ledger.c, sandbox.c and helper.c (the child's
 * side).  Nothing outside these files sees a call, a helper or a pool.
 */

#ifndef ENGINE_INT_H
#define ENGINE_INT_H

#include <signal.h>

#include "route-host.h"

/*
 * A call's life (call.c):
 *
 *	call_queue        call_send            answer or loss
 *	  ----> QUEUED ------------> SENT -----------------------> ENDED
 *	          ^  call_requeue    |  \  deadline behind         |
 *	          +------------------+   \  another call           | delivered
 *	                                  v                        v  (freed)
 *	                              ABANDONED --delivered--> GHOST
 *	                                   \                     |
 *	                                    +-- helper done -----+--> freed
 *
 * QUEUED: in its version's queue.  SENT: in one helper's FIFO, its caller
 * waiting.  ENDED: its result is set and waits on the engine's done list
 * for the end of the turn.  ABANDONED: ended (its deadline) while still in
 * a helper's FIFO; the result waits on the done list, the helper will run
 * it all the same.  GHOST: delivered, still in the FIFO until its helper
 * answers or dies.  A caller is answered exactly once, always from
 * engine_run, never from inside engine_call or engine_probe.
 */
enum call_state {
	CALL_NEW,
	CALL_QUEUED,
	CALL_SENT,
	CALL_ENDED,
	CALL_ABANDONED,
	CALL_GHOST,
};

struct call {
	enum call_state		 state;
	TAILQ_ENTRY(call)	 entry;		/* version queue or helper FIFO */
	TAILQ_ENTRY(call)	 doneentry;	/* engine's done list */
	struct timer		 deadline;	/* the caller's */
	struct engine		*engine;
	struct module		*module;	/* NULL: rejected before one */
	struct proc		*proc;		/* in this helper's FIFO */
	uint64_t		 id;
	uint32_t		 seq;		/* in its helper */
	int			 timeout_ms;
	bool			 probe;
	bool			 hashed;	/* bodyhash is set */
	unsigned char		 bodyhash[16];	/* MEMO_HASH_LEN */
	engine_cb		 cb;
	void			*arg;
	uint32_t		 nconsumers;
	struct result		 result;	/* set once it ends */
	size_t			 len;
	unsigned char		 frame[];	/* WIRE_CALL frame, written as is */
};
TAILQ_HEAD(call_fifo, call);

struct call	*call_new(struct engine *, struct module *, const void *,
		     size_t, int, engine_cb, void *);
void		 call_queue(struct call *);
void		 call_send(struct call *, struct proc *);
void		 call_requeue(struct call *);
void		 call_finish(struct call *, enum status, int, const char *);
void		 call_leave(struct call *);
void		 call_deliver(struct call *);
bool		 call_waiting(const struct call *);
const unsigned char *call_hash(struct call *);

/* memo.c: a version's poison memo. */
#define MEMO_HASH_LEN		16	/* BLAKE2b-128 */
struct memo_entry {
	unsigned char		 hash[MEMO_HASH_LEN];
	uint64_t		 at;		/* it crashed then */
	uint64_t		 until;		/* remembered until; 0: free */
	char			 cause[48];
};
struct memo;
struct memo	*memo_new(size_t);
void		 memo_free(struct memo *);
void		 memo_hash(const void *, size_t, unsigned char *);
const struct memo_entry *memo_find(struct memo *, const unsigned char *,
		     uint64_t);
void		 memo_add(struct memo *, const unsigned char *, uint64_t,
		     uint64_t, const char *);
bool		 memo_empty(const struct memo *);

/* proc.c: one helper process, as the host sees it. */
enum proc_state {
	PROC_SPAWNING,		/* forked, handshake pending */
	PROC_IDLE,		/* warm, no call */
	PROC_BUSY,		/* holding calls */
	PROC_STANDBY,		/* warm spare, takes no call until promoted */
	PROC_STOPPING,		/* socket closed by us: runs fini and exits */
	PROC_LOST,		/* closed its socket: a moment to die */
	PROC_KILLED,		/* SIGKILL sent, waiting to be reaped */
	PROC_NSTATES
};

/* What a helper did, as proc.c reports it to the pool. */
enum proc_event {
	PEV_HELLO,		/* handshake passed */
	PEV_REFUSED,		/* handshake failed: why */
	PEV_RESULT,		/* call answered: call, status, decision */
	PEV_EOF,		/* it closed its socket */
	PEV_VIOLATION,		/* it broke the protocol: why */
	PEV_REAPED,		/* waitpid: status */
	PEV_UNBORN,		/* the zygote could not fork it: why */
	PEV_TIMER,		/* its deadline (grace, EOF, ghost, stall) */
	PEV_NEVENTS
};

struct proc_ev {
	enum proc_event		 type;
	struct call		*call;		/* PEV_RESULT */
	bool			 bad_request;
	int			 decision;
	const char		*why;		/* PEV_REFUSED, PEV_VIOLATION,
						   PEV_UNBORN */
	int			 wstatus;	/* PEV_REAPED */
};

/* ledger.c: the results a helper shares with the host. */
#define LEDGER_SLOTS		64	/* at least the engine's depth */

struct ledger_slot {
	uint32_t		 seq;		/* written last */
	int32_t			 decision;
	uint8_t			 status;	/* enum wire_result */
};
/* Where a fatal signal caught the plugin: the helper writes it, then dies. */
struct ledger_crash {
	uint32_t		 signo;		/* 0: nothing caught */
	int32_t			 code;		/* si_code: > 0, a fault */
	uint64_t		 addr;		/* the address it faulted on */
	uint64_t		 pc;		/* where it was */
	uint64_t		 caller;	/* its return into the plugin, or 0 */
	uint64_t		 base;		/* the plugin's load address */
	uint64_t		 text;		/* its code: [text, end) */
	uint64_t		 end;
};
struct ledger {
	struct ledger_slot	 slot[LEDGER_SLOTS];
	uint32_t		 blocked;	/* system call + 1 (sandbox) */
	struct ledger_crash	 crash;
};

#define PROC_ERR_LINE		512	/* stderr: longer lines are cut */

struct proc {
	enum proc_state		 state;
	TAILQ_ENTRY(proc)	 entry;		/* its pool, or the dead list */
	TAILQ_ENTRY(proc)	 flushentry;	/* engine's flush list */
	TAILQ_ENTRY(proc)	 pipeentry;	/* engine's pipelined list */
	RB_ENTRY(proc)		 tokentry;	/* engine's index */
	bool			 flushing;	/* on the flush list */
	bool			 pipelined;	/* on the pipelined list */
	bool			 spare;		/* forked as a standby */
	bool			 fault;		/* died or broke protocol */
	bool			 settled;	/* handshake outcome known */
	bool			 reaped;	/* its pid is gone */
	bool			 forked;	/* the zygote said SPAWNED */
	bool			 kill_pending;	/* SIGKILL once forked */
	struct engine		*engine;
	struct module		*module;
	uint64_t		 token;		/* its name to the zygote */
	pid_t			 pid;		/* 0 until forked */
	int			 pidfd;		/* -1: kill through the zygote */
	struct watch		 watch;		/* its socket, -1 once closed */
	struct call_fifo	 calls;		/* sent, unanswered, in order */
	u_int			 ncalls;
	uint32_t		 seq;		/* of the last call queued */
	uint32_t		 sent;		/* ... and written in full */
	uint32_t		 answered;	/* through this seq */
	uint32_t		 announced;	/* by its last RESULT frame */
	struct ledger		*ledger;	/* shared with the helper */

	/* One timer: the earliest of the deadlines its state has. */
	struct timer		 timer;
	uint64_t		 grace_by;	/* SPAWNING, STOPPING */
	uint64_t		 eof_by;	/* LOST */
	uint64_t		 ghost_by;	/* an abandoned call running */
	uint32_t		 ghost_seq;	/* ... which one */
	uint64_t		 stall_by;	/* frames unwritten, none running */

	size_t			 outoff;	/* of the first call unwritten */
	bool			 outdead;	/* a write failed: no more */
	bool			 waiting_out;	/* EPOLLOUT armed */

	unsigned char		 in[WIRE_REPLY_MAX];	/* being read */
	size_t			 inlen;

	/* Its standard output and error: a pipe, read a line at a time. */
	struct watch		 errw;		/* -1 once closed */
	bool			 errpaused;	/* unwatched: over the bytes */
	bool			 errcut;	/* skipping a long line's end */
	struct timer		 errtimer;	/* the version's next second */
	char			 errline[PROC_ERR_LINE];	/* so far */
	size_t			 errlen;

	char			 cause[DETAIL_MAX];	/* why it was killed */
};

struct proc	*proc_spawn(struct engine *, struct module *, char *, size_t);
void		 proc_dispatch(struct proc *, struct call *);
void		 proc_unfifo(struct proc *, struct call *);
bool		 proc_flush(struct proc *);
void		 proc_collect(struct proc *);
bool		 proc_sent(const struct proc *, const struct call *);
bool		 proc_pending_out(const struct proc *);
void		 proc_free(struct proc *);
void		 proc_kill(struct proc *, const char *);
void		 proc_stop(struct proc *);
void		 proc_close(struct proc *);
void		 proc_reaped(struct proc *, int);
void		 proc_forked(struct proc *, pid_t, int);
void		 proc_unborn(struct proc *, const char *);
const char	*proc_state_name(enum proc_state);
void		 proc_describe_status(int, char *, size_t);

struct ledger	*ledger_new(int *);
void		 ledger_free(struct ledger *);
void		 ledger_put(struct ledger *, uint32_t, uint8_t, int32_t);
void		 ledger_describe_crash(const struct ledger *, int, char *,
		     size_t);
int		 ledger_take(const struct ledger *, uint32_t,
		     struct ledger_slot *);

struct sandbox;

/* What a helper runs and how it is confined: a SPAWN to the zygote. */
struct helper_spec {
	const char			*label;
	const char			*hex;
	const struct route_option	*opts;
	size_t				 nopts;
	bool				 sandbox;	/* sandbox no: false */
	size_t				 memory;	/* more address space */
	bool				 setuser;	/* switch to uid, gid */
	uid_t				 uid;
	gid_t				 gid;
	bool				 debug;		/* ROUTE_HOST_DEBUG */
};

/*
 * zygote.c: the process that forks helpers (the host's side).  A SPAWN
 * sends four descriptors: the helper's socket, the version's image, its
 * ledger, and the write end of the pipe that becomes its fds 1 and 2.
 */
#define ZYGOTE_NFDS		4

int		 zygote_spawn(struct zygote *, const struct helper_spec *,
		     const int[ZYGOTE_NFDS], uint64_t, bool *, char *, size_t);
int		 zygote_answer(struct zygote *, uint64_t *, pid_t *, int *,
		     char *, size_t);
uint64_t	 zygote_deadline(const struct zygote *);
void		 zygote_abandon(struct zygote *);
int		 zygote_ctl_fd(const struct zygote *);
int		 zygote_exited(struct zygote *, uint64_t *, int *);
void		 zygote_program_main(void);
void		 zygote_kill_helper(struct zygote *, uint64_t, pid_t);
int		 zygote_exits_fd(const struct zygote *);

/* helper.c: runs in the child; never returns. */
void		 helper_main(int, int, struct ledger *,
		     const struct helper_spec *, struct sandbox *)
		     __attribute__((__noreturn__));

/* sandbox.c: what a helper may do (in the child), and why it died. */
struct sandbox	*sandbox_new(char *, size_t);
void		 sandbox_free(struct sandbox *);
int		 sandbox_enter(struct sandbox *, const struct helper_spec *,
		     char *, size_t);
int		 sandbox_lock(struct sandbox *, volatile uint32_t *, char *,
		     size_t);
void		 sandbox_describe(uint32_t, char *, size_t);

/* pool.c: a version's helpers and the calls waiting for them. */
struct pool	*pool_new(struct module *);
void		 pool_free(struct pool *);
void		 pool_event(struct proc *, const struct proc_ev *);
void		 pool_enqueue(struct call *, bool);
void		 pool_dequeue(struct call *);
bool		 pool_settle(struct engine *);
void		 pool_write(struct engine *);
void		 pool_retire(struct module *);
void		 pool_revive(struct module *);
void		 pool_cap(struct module *, const char *);
void		 pool_shut(struct module *);
void		 pool_call_expired(struct call *);
void		 pool_flushed(struct proc *, bool);
bool		 pool_fail_fast(struct module *, struct result *);
bool		 pool_remembered(struct call *);
bool		 pool_empty(const struct module *);
u_int		 pool_nprocs(const struct module *);
void		 pool_set_max(struct module *, u_int);
void		 pool_set_sandbox(struct module *, bool, size_t);
void		 pool_set_crash(struct module *, const struct crash_conf *);
void		 pool_spec(const struct module *, struct helper_spec *);
struct proc	*pool_first(const struct module *);
struct proc	*pool_next(const struct proc *);
void		 pool_check(const struct module *);

/* module.c: a version's life, beyond loading. */
void		 module_hold(struct module *);
void		 module_release(struct module *, int);
void		 module_call_begin(struct module *);
void		 module_call_end(struct module *);
void		 module_settle(struct module *);
void		 module_capped(void *);

/*
 * engine.c: the top.  It blocks SIGCHLD and reaps its own children (the
 * zygote); the zygote forks the helpers (its answers come to the loop),
 * reaps them and reports each exit.  A turn runs the loop once, then
 * settles: pools kicked, results delivered, until nothing moves; then
 * frees what died and writes what was sent.
 */
RB_HEAD(proc_tree, proc);
TAILQ_HEAD(module_list, module);
TAILQ_HEAD(proc_list, proc);

struct engine {
	struct engine_config	 conf;
	struct loop		*loop;
	struct zygote		*zygote;	/* forks the helpers */
	struct watch		 zyw;		/* its EXITED reports */
	struct watch		 zcw;		/* its answers to SPAWN */
	struct timer		 zytimer;	/* ... due by then */
	char			 broken[DETAIL_MAX];	/* it is gone: why */
	bool			 setuser;	/* helpers switch user */
	bool			 debug;		/* ROUTE_HOST_DEBUG: helpers
						   wait for a debugger */
	uid_t			 uid;
	gid_t			 gid;
	char			 user[64];
	struct watch		 sigw;
	sigset_t		 oldmask;
	struct sigaction	 oldchld;

	struct module_tree	 modules;	/* HELD, by key */
	struct module_list	 retired;	/* RETIRED */
	struct module_list	 dead;		/* DEAD: freed at the turn's end */
	TAILQ_HEAD(, pool)	 kickq;		/* pools to move along */
	struct proc_tree	 procs;		/* every unreaped helper */
	struct proc_list	 deadprocs;	/* reaped: freed at the turn's end */
	struct proc_list	 flushq;	/* frames to write this turn */
	struct proc_list	 pipelined;	/* holding several calls */
	struct timer		 collect;	/* read their ledgers then */
	TAILQ_HEAD(, call)	 done;		/* results to deliver */

	uint64_t		 nextid;
	uint64_t		 nexttoken;	/* for helpers */
	u_int			 pending;	/* callers not yet answered */
	u_int			 ncalls;	/* call structures alive */
	uint64_t		 call_bytes;	/* their frames */
	u_int			 nloaded;	/* modules not yet freed */
	u_int			 nprocs;
	bool			 closing;
};

void		 engine_proc_born(struct engine *, struct proc *);
void		 engine_zygote_arm(struct engine *);
void		 engine_log(struct engine *, int, const char *, ...)
		     __attribute__((__format__(__printf__, 3, 4)));
void		 engine_proc_reaped(struct engine *, struct proc *);

#ifdef ENGINE_CHECKS
#define ENGINE_CHECK(e)		engine_check(e)
#else
#define ENGINE_CHECK(e)		do { } while (0)
#endif

#endif /* ENGINE_INT_H */
