/* SPDX-License-Identifier: ISC */
/*
 * The zygote: the one process that forks helpers.
 *
 * A helper forked from the daemon would hold a copy of the daemon's
 * memory: every channel's options, the requests it buffers.  So the daemon
 * starts the zygote first, before it reads its configuration or accepts a
 * client (zygote_start), and from then on asks it for every helper.  The
 * zygote is small and single-threaded, holds nothing but what it was
 * started with and the compiled sandbox, and does three things:
 *
 *	spawn: the host sends SPAWN (what the helper runs: label, version,
 *	options, sandbox, memory cap, user) with four descriptors (the
 *	helper's socket, the version's sealed image, its ledger, and the
 *	pipe the host reads its standard output and error from).  The
 *	zygote forks; the child gets a clean process (zygote_child) and
 *	becomes the helper (helper.c).  The zygote answers SPAWNED with the
 *	child's pid and a pidfd, through which the host kills it, or FAILED
 *	with why.  The host never waits for that answer: its loop watches
 *	the socket (zygote_answer), so a fork that takes long (a busy
 *	machine) delays that helper only, never the other helpers' calls.
 *	At most ZYGOTE_WINDOW SPAWNs are unanswered at once; later ones
 *	wait in the host, in order, holding copies of their descriptors,
 *	so that neither side can fill the other's socket and block on it.
 *
 *	reap: it is every helper's parent, so it reaps them (SIGCHLD through
 *	a signalfd, waitpid(WNOHANG) in a loop) and sends each one's wait
 *	status in an EXITED message on a second socket, which the host's
 *	loop watches.  What the host has not read yet waits in a queue.
 *
 *	end: it lives exactly as long as the host's end of its sockets, and
 *	ignores the signals a terminal or a service manager sends a group.
 *	At EOF (the host is done, or died) it kills and reaps the helpers it
 *	still has and exits.  A helper dies with it (PR_SET_PDEATHSIG).
 *
 * The zygote is a program of its own, route-host-zygote (installed in
 * the package's libexec directory): zygote_start forks and execs it with
 * its two sockets on fds 3 and 4.  So helpers fork from a process that
 * maps libc, libseccomp and libbsd only, not the daemon's libraries
 * (libsystemd and its compressors and crypto, jansson, sodium) nor its
 * heap, and get an address space laid out afresh rather than a copy of
 * the daemon's (like OpenSSH's re-exec).  The path is fixed at configure
 * time; ROUTE_HOST_ZYGOTE (an absolute path, honoured only when the
 * process is not setuid or setgid, as secure_getenv(3)) names another,
 * for a route-host that is not installed: the tests and the benchmark.
 * If it cannot be run, the zygote does not start: there is no fallback.
 *
 * The host names each helper with a token of its own choosing, never by
 * its pid, which the zygote may give a new helper as soon as it reaped
 * the old one.  Messages are SOCK_SEQPACKET datagrams encoded with wire.c
 * and checked like any other: the zygote never runs plugin code, but a
 * decoder that checks lengths costs nothing.
 */

#include "config.h"

#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-int.h"

#define ZYGOTE_PROGRAM		PKGLIBEXECDIR "/route-host-zygote"
#define ZYGOTE_ENV		"ROUTE_HOST_ZYGOTE"
#define ZYGOTE_MSG_MAX		65536	/* a SPAWN with its options */
#define ZYGOTE_REPLY_MS		5000	/* a silent zygote is a dead one */
#define ZYGOTE_WINDOW		16	/* SPAWNs sent and not answered */
/* The zygote program's sockets, as zygote_start leaves them. */
#define ZYGOTE_CTL_FD		3
#define ZYGOTE_EXITS_FD		4
/*
 * A helper's descriptors, and nothing else: 0 /dev/null, 1 and 2 its
 * pipe to the host, 3 its socket, 4 its image.
 */
#define ZYGOTE_SOCK_FD		3
#define ZYGOTE_IMAGE_FD		4

enum zygote_msg {
	ZY_READY = 1,		/* z->h: u8 ok, str description or error */
	ZY_SPAWN,		/* h->z: the helper_spec; fds sock, image, ledger,
				   out */
	ZY_SPAWNED,		/* z->h: u64 token, u32 pid; fd pidfd */
	ZY_FAILED,		/* z->h: u64 token, str why */
	ZY_EXITED,		/* z->h: u64 token, u32 pid, u32 wait status */
	ZY_KILL,		/* h->z: u64 token, u32 pid (no pidfd) */
};

/* In the host: a SPAWN not yet answered, sent or waiting to be. */
struct zygote_spawn {
	TAILQ_ENTRY(zygote_spawn) entry;
	uint64_t		 token;
	uint64_t		 sent;		/* loop_now(); 0: waiting */
	struct wire_buf		 msg;		/* until sent */
	int			 fds[ZYGOTE_NFDS];	/* until sent */
};

/* The host's handle. */
struct zygote {
	pid_t		 pid;
	int		 pidfd;		/* it may not stay our child */
	int		 ctl;		/* SPAWN, and its answer; nonblocking */
	int		 exits;		/* EXITED, nonblocking */
	char		 what[256];	/* what helpers get, or what was refused */
	TAILQ_HEAD(, zygote_spawn) spawns;	/* in the order sent */
	u_int		 nsent;		/* of them, sent */
};

static void	zygote_spawn_free(struct zygote_spawn *);

/* In the zygote: a helper not yet reported. */
struct zygote_child {
	RB_ENTRY(zygote_child)	 entry;
	TAILQ_ENTRY(zygote_child) qentry;
	pid_t			 pid;
	uint64_t		 token;
	int			 status;
};

/* Order children by pid. */
static int
zygote_child_cmp(struct zygote_child *a, struct zygote_child *b)
{
	return a->pid < b->pid ? -1 : a->pid > b->pid;
}

RB_HEAD(zygote_children, zygote_child);
TAILQ_HEAD(zygote_queue_head, zygote_child);
RB_GENERATE_STATIC(zygote_children, zygote_child, entry, zygote_child_cmp);

/* Append a NUL-terminated string, its NUL counted in its u16 length. */
static void
zygote_put_str(struct wire_buf *b, const char *s)
{
	size_t	n = strlen(s) + 1;

	if (n > UINT16_MAX) {
		b->failed = true;
		return;
	}
	wire_u16(b, (uint16_t)n);
	wire_bytes(b, s, n);
}

/*
 * Take a string written by zygote_put_str, in place: NULL (the reader
 * marked bad) unless it ends with its only NUL.
 */
static const char *
zygote_take_str(struct wire_reader *r)
{
	uint16_t	 n = wire_read_u16(r);
	const char	*s = wire_read_bytes(r, n);

	if (s == NULL || n == 0 || strnlen(s, n) != (size_t)n - 1) {
		r->bad = true;
		return NULL;
	}
	return s;
}

/* Send one message with up to ZYGOTE_NFDS descriptors; -1 with errno. */
static int
zygote_send(int fd, const struct wire_buf *b, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(ZYGOTE_NFDS * sizeof(int))];
	}		 cm;
	struct msghdr	 msg;
	struct iovec	 iov;
	ssize_t		 n;

	memset(&msg, 0, sizeof msg);
	iov.iov_base = b->data;
	iov.iov_len = b->len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&cm, 0, sizeof cm);
		msg.msg_control = cm.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm.hdr.cmsg_level = SOL_SOCKET;
		cm.hdr.cmsg_type = SCM_RIGHTS;
		cm.hdr.cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(&cm.hdr), fds, nfds * sizeof(int));
	}
	while ((n = sendmsg(fd, &msg, MSG_NOSIGNAL)) == -1 && errno == EINTR)
		;
	if (n == -1)
		return -1;
	return 0;
}

/*
 * Receive one message into buf (size bytes) and up to want descriptors
 * (close-on-exec); any other descriptor is closed.  Returns its length, 0
 * at EOF, -1 with errno; *nfds says how many descriptors came.
 */
static ssize_t
zygote_recv(int fd, void *buf, size_t size, int *fds, size_t want,
    size_t *nfds, int flags)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(8 * sizeof(int))];
	}		 cm;
	struct msghdr	 msg;
	struct cmsghdr	*c;
	struct iovec	 iov;
	ssize_t		 n;
	size_t		 got;
	int		 in[8];

	*nfds = 0;
	memset(&msg, 0, sizeof msg);
	iov.iov_base = buf;
	iov.iov_len = size;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof cm.buf;
	while ((n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | flags)) == -1 &&
	    errno == EINTR)
		;
	if (n == -1)
		return -1;
	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (got > nitems(in))
			got = nitems(in);
		memcpy(in, CMSG_DATA(c), got * sizeof(int));
		for (size_t i = 0; i < got; i++) {
			if (*nfds < want)
				fds[(*nfds)++] = in[i];
			else
				close(in[i]);
		}
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		for (size_t i = 0; i < *nfds; i++)
			close(fds[i]);
		*nfds = 0;
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

/*
 * In the child, when a plugin calls exit: the plugin's own exit handlers
 * have run (registered later, they run first); the host's must not (a
 * sanitizer's leak check, a command's clean-up), so the helper ends here
 * with the plugin's status.
 */
static void
zygote_child_exit(int status, void *arg)
{
	(void)arg;
	(void)fflush(NULL);
	_exit(status);
}

/*
 * The signals whose disposition the zygote does not leave at SIG_DFL
 * (what it ignores, what it inherited from the host), found once before
 * its first fork: a child resets these, not all 64.
 */
static int	zygote_changed[NSIG];
static size_t	zygote_nchanged;

/* In the zygote, once its own signals are set: note what a child resets. */
static void
zygote_note_signals(void)
{
	struct sigaction	old;

	zygote_nchanged = 0;
	for (int sig = 1; sig < NSIG; sig++)
		if (sigaction(sig, NULL, &old) == 0 &&
		    (old.sa_handler != SIG_DFL || old.sa_flags != 0))
			zygote_changed[zygote_nchanged++] = sig;
}

/* In a helper: standard output's buffer. */
static char	zygote_child_out[BUFSIZ];

/*
 * In a new child: give it a clean process (default signals, empty mask,
 * no core files, death with the zygote, its ledger mapped, fixed fds 0-4
 * and nothing else: standard output and error are the host's pipe, never
 * the zygote's own), then become the helper.  Every failure is _exit.
 */
static void __attribute__((__noreturn__))
zygote_child(pid_t parent, const struct helper_spec *spec,
    const int fds[ZYGOTE_NFDS], struct sandbox *sb)
{
	struct sigaction	 sa;
	struct rlimit		 rl = { 0, 0 };
	struct ledger		*l;
	sigset_t		 mask;
	int			 s, img, out, null;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	for (size_t i = 0; i < zygote_nchanged; i++)
		(void)sigaction(zygote_changed[i], &sa, NULL);
	sigemptyset(&mask);
	if (sigprocmask(SIG_SETMASK, &mask, NULL) == -1)
		_exit(126);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		_exit(126);
	(void)setrlimit(RLIMIT_CORE, &rl);

	l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE, MAP_SHARED, fds[2],
	    0);
	if (l == MAP_FAILED)
		_exit(126);
	/* Lift the fds clear of 0-4 before placing them. */
	if ((s = fcntl(fds[0], F_DUPFD_CLOEXEC, 10)) == -1 ||
	    (img = fcntl(fds[1], F_DUPFD_CLOEXEC, 10)) == -1 ||
	    (out = fcntl(fds[3], F_DUPFD_CLOEXEC, 10)) == -1)
		_exit(126);
	if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
		_exit(126);
	if (dup2(null, STDIN_FILENO) == -1 ||
	    dup2(out, STDOUT_FILENO) == -1 || dup2(out, STDERR_FILENO) == -1 ||
	    dup2(s, ZYGOTE_SOCK_FD) == -1 || dup2(img, ZYGOTE_IMAGE_FD) == -1)
		_exit(126);
	closefrom(ZYGOTE_IMAGE_FD + 1);
	/* Nothing a plugin execs inherits the socket or the image. */
	if (fcntl(ZYGOTE_SOCK_FD, F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(ZYGOTE_IMAGE_FD, F_SETFD, FD_CLOEXEC) == -1)
		_exit(126);
	/*
	 * The host's exit handlers are not the helper's, nor what its stdio
	 * buffered when the zygote was forked, which would go down the pipe.
	 * Standard output is line-buffered, so a line printed is a line
	 * logged: a buffer of its own resets what stdout inherited.
	 */
	if (on_exit(zygote_child_exit, NULL) != 0)
		_exit(126);
	__fpurge(stdout);
	__fpurge(stderr);
	(void)setvbuf(stdout, zygote_child_out, _IOLBF,
	    sizeof zygote_child_out);
	helper_main(ZYGOTE_SOCK_FD, ZYGOTE_IMAGE_FD, l, spec,
	    spec->sandbox ? sb : NULL);
}

/* In the zygote: answer FAILED for token. */
static void
zygote_failed(int ctl, uint64_t token, const char *why)
{
	struct wire_buf	b;

	wire_init(&b);
	wire_u8(&b, ZY_FAILED);
	wire_u64(&b, token);
	zygote_put_str(&b, why);
	if (zygote_send(ctl, &b, NULL, 0) == -1)
		_exit(0);
	wire_free(&b);
}

/*
 * In the zygote: decode a SPAWN in place into spec and opts (at most
 * nopts); -1 if it is malformed.
 */
static int
zygote_decode_spawn(const unsigned char *p, size_t len, uint64_t *token,
    struct helper_spec *spec, struct route_option **opts)
{
	struct wire_reader	 r;
	uint32_t		 n;

	memset(spec, 0, sizeof *spec);
	wire_reader_init(&r, p, len);
	if (wire_read_u8(&r) != ZY_SPAWN)
		return -1;
	*token = wire_read_u64(&r);
	spec->sandbox = wire_read_u8(&r) != 0;
	spec->memory = (size_t)wire_read_u64(&r);
	spec->setuser = wire_read_u8(&r) != 0;
	spec->uid = (uid_t)wire_read_u32(&r);
	spec->gid = (gid_t)wire_read_u32(&r);
	spec->debug = wire_read_u8(&r) != 0;
	spec->label = zygote_take_str(&r);
	spec->hex = zygote_take_str(&r);
	n = wire_read_u32(&r);
	if (r.bad || n > len / 4)
		return -1;
	if ((*opts = calloc(n + 1, sizeof **opts)) == NULL)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		(*opts)[i].key = zygote_take_str(&r);
		(*opts)[i].value = zygote_take_str(&r);
	}
	spec->opts = *opts;
	spec->nopts = n;
	if (!wire_reader_done(&r)) {
		free(*opts);
		*opts = NULL;
		return -1;
	}
	return 0;
}

/*
 * In a new child: forget the zygote's records of the other helpers (pids
 * and tokens, reported or not), which are none of a helper's business.
 */
static void
zygote_forget(struct zygote_children *children,
    struct zygote_queue_head *queue)
{
	struct zygote_child	*zc, *next;

	RB_FOREACH_SAFE(zc, zygote_children, children, next) {
		RB_REMOVE(zygote_children, children, zc);
		free(zc);
	}
	while ((zc = TAILQ_FIRST(queue)) != NULL) {
		TAILQ_REMOVE(queue, zc, qentry);
		free(zc);
	}
}

/* In the zygote: fork the helper a SPAWN asks for, and answer. */
static void
zygote_spawn_one(int ctl, struct zygote_children *children,
    struct zygote_queue_head *queue, struct sandbox *sb,
    const unsigned char *msg, size_t len, int fds[ZYGOTE_NFDS], size_t nfds)
{
	struct helper_spec	 spec;
	struct route_option	*opts = NULL;
	struct zygote_child	*zc;
	struct wire_buf		 b;
	uint64_t		 token = 0;
	pid_t			 pid, self = getpid();
	int			 pidfd;

	if (nfds != ZYGOTE_NFDS ||
	    zygote_decode_spawn(msg, len, &token, &spec, &opts) == -1) {
		zygote_failed(ctl, token, "malformed spawn request");
		goto done;
	}
	if ((zc = calloc(1, sizeof *zc)) == NULL) {
		zygote_failed(ctl, token, "zygote: out of memory");
		goto done;
	}
	switch (pid = fork()) {
	case -1:
		free(zc);
		zygote_failed(ctl, token, strerror(errno));
		goto done;
	case 0:
		close(ctl);
		free(zc);	/* the zygote's record of this child */
		zygote_forget(children, queue);
		zygote_child(self, &spec, fds, sb);
	}
	zc->pid = pid;
	zc->token = token;
	RB_INSERT(zygote_children, children, zc);
	/* Without pidfds (valgrind has none), the host sends ZY_KILL. */
	if ((pidfd = pidfd_open(pid, 0)) == -1 && errno != ENOSYS) {
		/* It is reaped and reported all the same; the host ignores it. */
		(void)kill(pid, SIGKILL);
		zygote_failed(ctl, token, "pidfd_open failed");
		goto done;
	}
	wire_init(&b);
	wire_u8(&b, ZY_SPAWNED);
	wire_u64(&b, token);
	wire_u32(&b, (uint32_t)pid);
	if (zygote_send(ctl, &b, &pidfd, pidfd != -1) == -1)
		_exit(0);
	wire_free(&b);
	if (pidfd != -1)
		close(pidfd);
done:
	free(opts);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
}

/*
 * In the zygote: kill the helper a ZY_KILL names, if it is still ours
 * (not reaped: its pid is no one else's yet).
 */
static void
zygote_kill_one(struct zygote_children *children, const unsigned char *msg,
    size_t len)
{
	struct wire_reader	 r;
	struct zygote_child	 key, *zc;
	uint64_t		 token;

	wire_reader_init(&r, msg, len);
	(void)wire_read_u8(&r);
	token = wire_read_u64(&r);
	key.pid = (pid_t)wire_read_u32(&r);
	if (!wire_reader_done(&r))
		return;
	if ((zc = RB_FIND(zygote_children, children, &key)) != NULL &&
	    zc->token == token)
		(void)kill(zc->pid, SIGKILL);
}

/* In the zygote: reap every child that exited, queueing its report. */
static void
zygote_reap(struct zygote_children *children, struct zygote_queue_head *queue)
{
	struct zygote_child	 key, *zc;
	pid_t			 pid;
	int			 status;

	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid == -1 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		key.pid = pid;
		if ((zc = RB_FIND(zygote_children, children, &key)) == NULL)
			continue;
		RB_REMOVE(zygote_children, children, zc);
		zc->status = status;
		TAILQ_INSERT_TAIL(queue, zc, qentry);
	}
}

/*
 * In the zygote: send the queued reports the host's socket takes; -1 once
 * the host is gone.
 */
static int
zygote_report(int exits, struct zygote_queue_head *queue)
{
	struct zygote_child	*zc;
	struct wire_buf		 b;
	ssize_t			 n = 0;

	wire_init(&b);
	while ((zc = TAILQ_FIRST(queue)) != NULL) {
		b.len = 0;
		wire_u8(&b, ZY_EXITED);
		wire_u64(&b, zc->token);
		wire_u32(&b, (uint32_t)zc->pid);
		wire_u32(&b, (uint32_t)zc->status);
		n = send(exits, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n == -1)
			break;
		TAILQ_REMOVE(queue, zc, qentry);
		free(zc);
	}
	wire_free(&b);
	return n == -1 && errno != EAGAIN && errno != EWOULDBLOCK ? -1 : 0;
}

/* In the zygote, at the host's EOF: kill and reap every child, and go. */
static void __attribute__((__noreturn__))
zygote_end(struct zygote_children *children)
{
	struct zygote_child	*zc;
	int			 status;

	RB_FOREACH(zc, zygote_children, children)
		(void)kill(zc->pid, SIGKILL);
	while (waitpid(-1, &status, 0) > 0 || errno == EINTR)
		;
	_exit(0);
}

/*
 * In the zygote: what helpers get beyond the filters, said once in READY.
 * As root it moves into network and IPC namespaces of its own, which its
 * helpers share: nothing to reach, whatever a filter missed.
 */
static void
zygote_confine(char *what, size_t len)
{
	if (geteuid() != 0) {
		snprintf(what, len, "no namespaces (not root)");
		return;
	}
	if (unshare(CLONE_NEWNET | CLONE_NEWIPC) == -1) {
		snprintf(what, len, "no namespaces (unshare: %s)",
		    strerror(errno));
		return;
	}
	snprintf(what, len, "network and IPC namespaces");
}

/* The zygote: serve SPAWN requests and report exits until EOF. */
static void __attribute__((__noreturn__))
zygote_main(int ctl, int exits)
{
	struct zygote_children	 children = RB_INITIALIZER(&children);
	struct zygote_queue_head queue = TAILQ_HEAD_INITIALIZER(queue);
	struct signalfd_siginfo	 si;
	struct sandbox		*sb;
	struct pollfd		 pfd[3];
	struct wire_buf		 b;
	sigset_t		 set;
	unsigned char		*msg;
	char			 err[DETAIL_MAX], what[128];
	ssize_t			 n;
	size_t			 nfds;
	int			 fds[ZYGOTE_NFDS], sfd;

	/* A group's signals are the host's to act on; EOF ends us. */
	(void)signal(SIGINT, SIG_IGN);
	(void)signal(SIGTERM, SIG_IGN);
	(void)signal(SIGHUP, SIG_IGN);
	(void)signal(SIGQUIT, SIG_IGN);
	(void)signal(SIGPIPE, SIG_IGN);
	(void)setsid();
	/*
	 * No process of its user may read or trace it (/proc/PID/mem,
	 * ptrace), nor its helpers before they say so themselves: exec made
	 * it dumpable again, whatever the daemon had set (engine.c).
	 */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	setproctitle("zygote");
	/*
	 * No fast bins: what the zygote frees would otherwise wait in them,
	 * and each helper's first large allocation (dlopen's, for the
	 * plugin's link map) would consolidate them, writing to (copying)
	 * the heap pages they lie on.  Then start from a consolidated heap.
	 */
	(void)mallopt(M_MXFAST, 0);
	(void)malloc_trim(0);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1 ||
	    (msg = malloc(ZYGOTE_MSG_MAX)) == NULL)
		_exit(1);

	wire_init(&b);
	wire_u8(&b, ZY_READY);
	if ((sb = sandbox_new(err, sizeof err)) == NULL) {
		wire_u8(&b, 0);
		zygote_put_str(&b, err);
		(void)zygote_send(ctl, &b, NULL, 0);
		_exit(1);
	}
	zygote_confine(what, sizeof what);
	/* Nothing changes a disposition from here on. */
	zygote_note_signals();
	wire_u8(&b, 1);
	zygote_put_str(&b, what);
	if (zygote_send(ctl, &b, NULL, 0) == -1)
		_exit(0);
	wire_free(&b);

	for (;;) {
		pfd[0].fd = ctl;
		pfd[0].events = POLLIN;
		pfd[1].fd = sfd;
		pfd[1].events = POLLIN;
		pfd[2].fd = exits;
		pfd[2].events = TAILQ_EMPTY(&queue) ? 0 : POLLOUT;
		if (poll(pfd, 3, -1) == -1) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (pfd[1].revents & POLLIN) {
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
				;
			zygote_reap(&children, &queue);
		}
		if (!TAILQ_EMPTY(&queue) && zygote_report(exits, &queue) == -1)
			zygote_end(&children);
		if (pfd[2].revents & (POLLHUP | POLLERR))
			zygote_end(&children);
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = zygote_recv(ctl, msg, ZYGOTE_MSG_MAX, fds,
			    ZYGOTE_NFDS, &nfds, 0);
			if (n == 0 || (n == -1 && errno != EMSGSIZE &&
			    errno != EAGAIN))
				zygote_end(&children);
			/*
			 * A SPAWN holds its channel's options: no later
			 * helper may find them in the pages it inherits.
			 */
			if (n > 0 && msg[0] == ZY_KILL) {
				for (size_t i = 0; i < nfds; i++)
					close(fds[i]);
				zygote_kill_one(&children, msg, (size_t)n);
			} else if (n > 0) {
				zygote_spawn_one(ctl, &children, &queue, sb,
				    msg, (size_t)n, fds, nfds);
				explicit_bzero(msg, (size_t)n);
			}
			else if (n == -1 && errno == EMSGSIZE)
				zygote_failed(ctl, 0, "spawn request too "
				    "large");
		}
	}
}

/* Whether fd is a SOCK_SEQPACKET socket. */
static bool
zygote_is_seqpacket(int fd)
{
	socklen_t	len = sizeof(int);
	int		type;

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
	    type == SOCK_SEQPACKET;
}

/*
 * The zygote program's entry (route-host-zygote.c): serve the host whose
 * sockets zygote_start left on fds 3 and 4.  Returns only if they are
 * not there: the program was not started by route-host.
 */
void
zygote_program_main(void)
{
	if (!zygote_is_seqpacket(ZYGOTE_CTL_FD) ||
	    !zygote_is_seqpacket(ZYGOTE_EXITS_FD))
		return;
	zygote_main(ZYGOTE_CTL_FD, ZYGOTE_EXITS_FD);
}

/*
 * The zygote program to run: the installed one, or ROUTE_HOST_ZYGOTE,
 * an absolute path, unless this process runs setuid or setgid
 * (secure_getenv(3)).  NULL with err set.
 */
static const char *
zygote_path(char *err, size_t errlen)
{
	const char	*path;

	if ((path = secure_getenv(ZYGOTE_ENV)) == NULL)
		return ZYGOTE_PROGRAM;
	if (path[0] != '/') {
		snprintf(err, errlen, "%s=%s: not an absolute path",
		    ZYGOTE_ENV, path);
		return NULL;
	}
	return path;
}

/*
 * In the child of zygote_start, its sockets on fds 3 and 4: become the
 * zygote program.  If it cannot be run, say why in a READY that fails.
 */
static void __attribute__((__noreturn__))
zygote_exec(const char *path)
{
	/* Its titles are "route-host: zygote", "route-host: helper ...". */
	char *const	 argv[] = { (char *)"route-host", NULL };
	struct wire_buf	 b;
	char		 why[DETAIL_MAX];

	(void)execve(path, argv, environ);
	snprintf(why, sizeof why, "cannot run %s: %s", path, strerror(errno));
	wire_init(&b);
	wire_u8(&b, ZY_READY);
	wire_u8(&b, 0);
	zygote_put_str(&b, why);
	(void)zygote_send(ZYGOTE_CTL_FD, &b, NULL, 0);
	_exit(127);
}

/*
 * Start a zygote: fork, and exec the zygote program (zygote_path) with
 * only its two sockets and the standard streams.  NULL with err set.
 */
struct zygote *
zygote_start(char *err, size_t errlen)
{
	struct zygote		*z;
	struct wire_reader	 r;
	struct pollfd		 pfd;
	unsigned char		 buf[512];
	const char		*what, *path;
	ssize_t			 n;
	size_t			 nfds;
	int			 ctl[2], ex[2], fd, ok;

	if ((path = zygote_path(err, errlen)) == NULL)
		return NULL;
	if ((z = calloc(1, sizeof *z)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	z->pidfd = -1;
	TAILQ_INIT(&z->spawns);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) == -1) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		free(z);
		return NULL;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ex) == -1) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		close(ctl[0]);
		close(ctl[1]);
		free(z);
		return NULL;
	}
	switch (z->pid = fork()) {
	case -1:
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(ctl[0]);
		close(ctl[1]);
		close(ex[0]);
		close(ex[1]);
		free(z);
		return NULL;
	case 0:
		close(ctl[0]);
		close(ex[0]);
		free(z);	/* the host's handle */
		/*
		 * Only its two sockets, open across exec (dup2 onto the fd
		 * it already is leaves close-on-exec set), and the standard
		 * streams.
		 */
		if ((fd = fcntl(ctl[1], F_DUPFD_CLOEXEC, ZYGOTE_CTL_FD)) ==
		    -1 || dup2(fd, ZYGOTE_CTL_FD) == -1 ||
		    (fd = fcntl(ex[1], F_DUPFD_CLOEXEC, ZYGOTE_EXITS_FD)) ==
		    -1 || dup2(fd, ZYGOTE_EXITS_FD) == -1 ||
		    fcntl(ZYGOTE_CTL_FD, F_SETFD, 0) == -1 ||
		    fcntl(ZYGOTE_EXITS_FD, F_SETFD, 0) == -1)
			_exit(1);
		closefrom(ZYGOTE_EXITS_FD + 1);
		zygote_exec(path);
	}
	close(ctl[1]);
	close(ex[1]);
	z->ctl = ctl[0];
	z->exits = ex[0];
	/* Not reaped yet, so this is the zygote (none under valgrind). */
	if ((z->pidfd = pidfd_open(z->pid, 0)) == -1 && errno != ENOSYS) {
		snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
		(void)kill(z->pid, SIGKILL);
		zygote_free(z);
		return NULL;
	}

	/* Its first words: ready, or why not. */
	pfd.fd = z->ctl;
	pfd.events = POLLIN;
	n = -1;
	if (poll(&pfd, 1, ZYGOTE_REPLY_MS) == 1)
		n = zygote_recv(z->ctl, buf, sizeof buf, &fd, 0, &nfds, 0);
	wire_reader_init(&r, buf, n > 0 ? (size_t)n : 0);
	ok = wire_read_u8(&r) == ZY_READY ? wire_read_u8(&r) : 0;
	what = zygote_take_str(&r);
	if (n <= 0 || !wire_reader_done(&r) || !ok) {
		snprintf(err, errlen, "starting the zygote: %s",
		    n > 0 && what != NULL ? what : "it did not answer");
		zygote_free(z);
		return NULL;
	}
	strlcpy(z->what, what, sizeof z->what);
	if (fcntl(z->exits, F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(z->ctl, F_SETFL, O_NONBLOCK) == -1) {
		snprintf(err, errlen, "zygote: fcntl: %s", strerror(errno));
		zygote_free(z);
		return NULL;
	}
	return z;
}

/*
 * Stop the zygote: closing its sockets makes it kill what helpers it still
 * has, reap them and exit.  Wait for that (its pidfd turns readable), and
 * reap it if it is still our child (daemon(3) may have made it init's).
 */
void
zygote_free(struct zygote *z)
{
	struct zygote_spawn	*zs;
	struct pollfd		 pfd;
	siginfo_t		 si;

	if (z == NULL)
		return;
	while ((zs = TAILQ_FIRST(&z->spawns)) != NULL) {
		TAILQ_REMOVE(&z->spawns, zs, entry);
		zygote_spawn_free(zs);
	}
	close(z->ctl);
	close(z->exits);
	if (z->pidfd != -1) {
		pfd.fd = z->pidfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, ZYGOTE_REPLY_MS) != 1)
			(void)pidfd_send_signal(z->pidfd, SIGKILL, NULL, 0);
		while (waitid(P_PIDFD, (id_t)z->pidfd, &si, WEXITED) == -1 &&
		    errno == EINTR)
			;
		close(z->pidfd);
	} else
		while (waitid(P_PID, (id_t)z->pid, &si, WEXITED) == -1 &&
		    errno == EINTR)
			;
	free(z);
}

/* What the zygote's helpers get beyond the filters and limits. */
const char *
zygote_what(const struct zygote *z)
{
	return z->what;
}

/* The descriptor the host's loop watches for EXITED messages. */
int
zygote_exits_fd(const struct zygote *z)
{
	return z->exits;
}

/*
 * Give up on a zygote that failed its protocol: kill it, so its helpers
 * die with it and the host's loop sees its EOF.
 */
static void
zygote_kill(struct zygote *z, bool *gone)
{
	if (z->pidfd != -1)
		(void)pidfd_send_signal(z->pidfd, SIGKILL, NULL, 0);
	else
		(void)kill(z->pid, SIGKILL);
	*gone = true;
}

/* Forget a SPAWN: its message, and the copies of descriptors it held. */
static void
zygote_spawn_free(struct zygote_spawn *zs)
{
	if (zs->sent == 0)
		for (size_t i = 0; i < ZYGOTE_NFDS; i++)
			if (zs->fds[i] != -1)
				close(zs->fds[i]);
	wire_free(&zs->msg);
	free(zs);
}

/*
 * Send the SPAWNs waiting, in order, while fewer than ZYGOTE_WINDOW are
 * unanswered; -1 with errno if the zygote is gone.  A full socket (only
 * with options near ZYGOTE_MSG_MAX) is not an error: what waits is sent
 * when the zygote answers the SPAWNs before it.
 */
static int
zygote_flush(struct zygote *z)
{
	struct zygote_spawn	*zs;

	TAILQ_FOREACH(zs, &z->spawns, entry) {
		if (zs->sent != 0)
			continue;
		if (z->nsent >= ZYGOTE_WINDOW)
			return 0;
		if (zygote_send(z->ctl, &zs->msg, zs->fds, ZYGOTE_NFDS) == -1)
			return errno == EAGAIN ? 0 : -1;
		for (size_t i = 0; i < ZYGOTE_NFDS; i++) {
			close(zs->fds[i]);
			zs->fds[i] = -1;
		}
		wire_free(&zs->msg);
		zs->sent = loop_now();
		z->nsent++;
	}
	return 0;
}

/*
 * Ask the zygote for a helper: spec says what it runs, fds are its socket,
 * the version's image, its ledger and the write end of the pipe that is
 * its standard output and error; token is the host's name for it.  The
 * caller keeps its descriptors (the SPAWN holds copies until it is sent).
 * The answer comes later, to zygote_answer.  -1 with err set: the request
 * was not made; *gone is set when the zygote itself is gone.
 */
int
zygote_spawn(struct zygote *z, const struct helper_spec *spec,
    const int fds[ZYGOTE_NFDS], uint64_t token, bool *gone, char *err,
    size_t errlen)
{
	struct zygote_spawn	*zs;
	struct wire_buf		*b;

	*gone = false;
	if ((zs = calloc(1, sizeof *zs)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	zs->token = token;
	b = &zs->msg;
	wire_init(b);
	b->max = ZYGOTE_MSG_MAX;
	wire_u8(b, ZY_SPAWN);
	wire_u64(b, token);
	wire_u8(b, spec->sandbox);
	wire_u64(b, spec->memory);
	wire_u8(b, spec->setuser);
	wire_u32(b, (uint32_t)spec->uid);
	wire_u32(b, (uint32_t)spec->gid);
	wire_u8(b, spec->debug);
	zygote_put_str(b, spec->label);
	zygote_put_str(b, spec->hex);
	wire_u32(b, (uint32_t)spec->nopts);
	for (size_t i = 0; i < spec->nopts; i++) {
		zygote_put_str(b, spec->opts[i].key);
		zygote_put_str(b, spec->opts[i].value);
	}
	for (size_t i = 0; i < ZYGOTE_NFDS; i++)
		zs->fds[i] = -1;
	if (b->failed || b->len > ZYGOTE_MSG_MAX) {
		snprintf(err, errlen, "its options take more than %d bytes",
		    ZYGOTE_MSG_MAX);
		zygote_spawn_free(zs);
		return -1;
	}
	for (size_t i = 0; i < ZYGOTE_NFDS; i++)
		if ((zs->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0)) == -1) {
			snprintf(err, errlen, "dup: %s", strerror(errno));
			zygote_spawn_free(zs);
			return -1;
		}
	TAILQ_INSERT_TAIL(&z->spawns, zs, entry);
	if (zygote_flush(z) == -1) {
		snprintf(err, errlen, "the zygote is gone (%s)",
		    strerror(errno));
		zygote_kill(z, gone);
		return -1;
	}
	return 0;
}

/*
 * Take one answer to a SPAWN, without waiting: 1 with *token set, and
 * either *pid and *pidfd (-1: no pidfds here, zygote_kill_helper) or, if
 * the zygote could not fork, *pid 0 and why; 0 if none is waiting; -1 if
 * the zygote is gone or answered out of turn (it is killed: its EOF then
 * comes to the exits socket).
 */
int
zygote_answer(struct zygote *z, uint64_t *token, pid_t *pid, int *pidfd,
    char *why, size_t whylen)
{
	struct zygote_spawn	*zs = TAILQ_FIRST(&z->spawns);
	struct wire_reader	 r;
	unsigned char		 buf[512];
	const char		*s;
	ssize_t			 n;
	size_t			 nfds;
	uint8_t			 type;
	bool			 gone, ok = false;

	n = zygote_recv(z->ctl, buf, sizeof buf, pidfd, 1, &nfds,
	    MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0 || zs == NULL || zs->sent == 0) {
		if (n > 0 && nfds == 1)
			close(*pidfd);
		zygote_kill(z, &gone);
		return -1;
	}
	wire_reader_init(&r, buf, (size_t)n);
	type = wire_read_u8(&r);
	*token = wire_read_u64(&r);
	*pid = 0;
	why[0] = '\0';
	if (type == ZY_SPAWNED) {
		*pid = (pid_t)wire_read_u32(&r);
		if (nfds == 0)
			*pidfd = -1;
		ok = wire_reader_done(&r) && *pid > 0;
	} else if (type == ZY_FAILED) {
		s = zygote_take_str(&r);
		if ((ok = wire_reader_done(&r) && nfds == 0))
			snprintf(why, whylen, "zygote: %s", s);
	}
	if (!ok || *token != zs->token) {
		if (nfds == 1)
			close(*pidfd);
		zygote_kill(z, &gone);
		return -1;
	}
	TAILQ_REMOVE(&z->spawns, zs, entry);
	z->nsent--;
	zygote_spawn_free(zs);
	if (zygote_flush(z) == -1)
		zygote_kill(z, &gone);	/* its EOF comes next */
	return 1;
}

/*
 * When the oldest SPAWN sent must have been answered (0: none is sent):
 * a zygote silent that long is taken for dead.
 */
uint64_t
zygote_deadline(const struct zygote *z)
{
	const struct zygote_spawn	*zs = TAILQ_FIRST(&z->spawns);

	if (zs == NULL || zs->sent == 0)
		return 0;
	return zs->sent + (uint64_t)ZYGOTE_REPLY_MS * MS_NS;
}

/* Give up on a zygote: kill it; its EOF comes to the exits socket. */
void
zygote_abandon(struct zygote *z)
{
	bool	gone;

	zygote_kill(z, &gone);
}

/* The descriptor the host's loop watches for answers to SPAWN. */
int
zygote_ctl_fd(const struct zygote *z)
{
	return z->ctl;
}

/*
 * Kill helper token (pid) through the zygote, where there are no pidfds:
 * it kills only a child it has not reaped, so never a stranger.
 */
void
zygote_kill_helper(struct zygote *z, uint64_t token, pid_t pid)
{
	struct wire_buf	b;

	wire_init(&b);
	wire_u8(&b, ZY_KILL);
	wire_u64(&b, token);
	wire_u32(&b, (uint32_t)pid);
	(void)zygote_send(z->ctl, &b, NULL, 0);
	wire_free(&b);
}

/*
 * Take one EXITED report: 1 with *token and *status set, 0 if none is
 * waiting, -1 if the zygote is gone (EOF, or it broke its protocol).
 */
int
zygote_exited(struct zygote *z, uint64_t *token, int *status)
{
	struct wire_reader	r;
	unsigned char		buf[64];
	ssize_t			n;
	size_t			nfds;
	int			fd;

	n = zygote_recv(z->exits, buf, sizeof buf, &fd, 0, &nfds,
	    MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0)
		return -1;
	wire_reader_init(&r, buf, (size_t)n);
	if (wire_read_u8(&r) != ZY_EXITED)
		return -1;
	*token = wire_read_u64(&r);
	(void)wire_read_u32(&r);
	*status = (int)wire_read_u32(&r);
	return wire_reader_done(&r) ? 1 : -1;
}
