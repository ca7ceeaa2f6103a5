/* SPDX-License-Identifier: ISC */
/*
 * The sandbox: what a helper may do once it runs plugin code.
 *
 * A plugin's code runs as soon as it is dlopen'ed (its constructors), so
 * the helper enters the sandbox before that, in two stages:
 *
 *	sandbox_enter, before dlopen: its own session (no signal to the
 *	daemon's process group), its own user when the daemon is root (no
 *	signal to the daemon, no root's files), not dumpable (no other
 *	process of its user traces it), no new privileges, limits (no core
 *	file, no file to write, a few descriptors, its memory capped), and
 *	a loading filter: the dynamic loader and the plugin's init may open
 *	files to read them, but nothing may change a file, make a process
 *	or a socket, connect, exec, trace, signal another process (directly,
 *	or by owning a descriptor that signals) or reach the kernel's rarer
 *	interfaces.
 *
 *	sandbox_lock, after init and before the handshake: a filter on every
 *	thread that allows only what a running helper and ordinary plugin
 *	code need (its descriptors, memory without new executable mappings,
 *	futexes, clocks, randomness, signals to itself, exit).  Opening a
 *	file or a socket fails with EACCES; anything else not allowed traps
 *	(SIGSYS), the helper notes which system call in its ledger, and dies
 *	of it: the host reports "seccomp: blocked system call NAME".
 *
 * The filters are libseccomp's, built once in the zygote (sandbox_new) and
 * exported as BPF programs: a fork then costs no filter compilation.  The
 * one thing a helper adds is its own pid, which the rules compare with
 * (signals to itself only): the programs carry SANDBOX_SELF there, and
 * the child writes its pid over that constant before loading them.
 * Under valgrind the filters and the
 * descriptor and memory limits are left out: valgrind runs the plugin's
 * code from executable mappings of its own, and keeps descriptors and
 * memory beside it.
 */

#include "config.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <seccomp.h>
#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "engine-int.h"

#define SANDBOX_NOFILE	32	/* descriptors a helper may hold */
#define SANDBOX_SELF	0x7ffffe00u	/* no pid is this large (pid_max) */

/* A filter compiled by libseccomp, ready to load. */
struct sandbox_prog {
	struct sock_filter	*insns;
	size_t			 n;
};

struct sandbox {
	struct sandbox_prog	 loading;	/* before dlopen */
	struct sandbox_prog	 running;	/* after init */
};

static volatile uint32_t	*sandbox_blocked;	/* in the ledger */

/* Set one resource limit, soft and hard; -1 with err set. */
static int
sandbox_limit(int resource, rlim_t value, const char *name, char *err,
    size_t errlen)
{
	struct rlimit	rl = { value, value };

	if (setrlimit(resource, &rl) == -1) {
		snprintf(err, errlen, "setrlimit %s: %s", name,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* The size of this process's address space now, in bytes; 0 if unknown. */
static size_t
sandbox_vsize(void)
{
	char	buf[64];
	ssize_t	n;
	int	fd;

	if ((fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtoull(buf, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE);
}

/* Add one rule to a filter; -1 with err set. */
static int
sandbox_rule(scmp_filter_ctx ctx, uint32_t action, int nr, const char *name,
    unsigned int nargs, struct scmp_arg_cmp *args, char *err, size_t errlen)
{
	int	rc;

	if (nr == __NR_SCMP_ERROR)
		return 0;	/* not on this architecture */
	if ((rc = seccomp_rule_add_array(ctx, action, nr, nargs, args)) < 0) {
		snprintf(err, errlen, "seccomp rule for %s: %s", name,
		    strerror(-rc));
		return -1;
	}
	return 0;
}

/* Add action for each system call named; -1 with err set. */
static int
sandbox_rules(scmp_filter_ctx ctx, uint32_t action, const char *const *names,
    size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		if (sandbox_rule(ctx, action, seccomp_syscall_resolve_name(
		    names[i]), names[i], 0, NULL, err, errlen) == -1)
			return -1;
	return 0;
}

#define RULE(ctx, action, name, ...) do {				\
	struct scmp_arg_cmp	 a_[] = { __VA_ARGS__ };		\
	if (sandbox_rule(ctx, action, SCMP_SYS(name), #name,		\
	    nitems(a_), a_, err, errlen) == -1)				\
		goto fail;						\
} while (0)
#define RULE0(ctx, action, name) do {					\
	if (sandbox_rule(ctx, action, SCMP_SYS(name), #name, 0, NULL,	\
	    err, errlen) == -1)						\
		goto fail;						\
} while (0)

/*
 * A new filter whose default is action, compiled as a binary tree of
 * system call numbers: the kernel emulates a filter for every system
 * call number when a helper loads it (its action cache), so a long
 * linear filter costs each fork far more than the lookups it saves.
 * NULL with err set.
 */
static scmp_filter_ctx
sandbox_ctx(uint32_t action, char *err, size_t errlen)
{
	scmp_filter_ctx	ctx;

	if ((ctx = seccomp_init(action)) == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return NULL;
	}
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) != 0) {
		snprintf(err, errlen, "seccomp: no binary tree filters");
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

/* Compile ctx into prog as BPF, and free it; -1 with err set. */
static int
sandbox_export(scmp_filter_ctx ctx, struct sandbox_prog *prog,
    const char *stage, char *err, size_t errlen)
{
	struct stat	 st;
	ssize_t		 n;
	int		 fd, rc;

	if ((fd = memfd_create("route-host:seccomp", MFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		seccomp_release(ctx);
		return -1;
	}
	rc = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (rc < 0 || fstat(fd, &st) == -1 || st.st_size <= 0 ||
	    st.st_size % (off_t)sizeof *prog->insns != 0 ||
	    (prog->insns = malloc((size_t)st.st_size)) == NULL) {
		snprintf(err, errlen, "exporting the %s filter failed", stage);
		close(fd);
		return -1;
	}
	n = pread(fd, prog->insns, (size_t)st.st_size, 0);
	close(fd);
	if (n != st.st_size) {
		snprintf(err, errlen, "reading the %s filter back failed",
		    stage);
		free(prog->insns);
		prog->insns = NULL;
		return -1;
	}
	prog->n = (size_t)st.st_size / sizeof *prog->insns;
	return 0;
}

/*
 * In the child: write its pid over SANDBOX_SELF and load prog (flags:
 * SECCOMP_FILTER_FLAG_TSYNC for every thread).  The program is the
 * child's own copy of the zygote's pages.  -1 with err set.
 */
static int
sandbox_load(struct sandbox_prog *prog, unsigned int flags,
    const char *stage, char *err, size_t errlen)
{
	struct sock_fprog	fprog;
	uint32_t		self = (uint32_t)getpid();

	for (size_t i = 0; i < prog->n; i++)
		if (BPF_CLASS(prog->insns[i].code) == BPF_JMP &&
		    BPF_SRC(prog->insns[i].code) == BPF_K &&
		    prog->insns[i].k == SANDBOX_SELF)
			prog->insns[i].k = self;
	fprog.len = (unsigned short)prog->n;
	fprog.filter = prog->insns;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog) !=
	    0) {
		snprintf(err, errlen, "loading the %s filter: %s", stage,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Refuse what neither the loader nor any plugin's init may do.  Every
 * other system call is allowed: this stage only has to stop escapes.
 */
static int
sandbox_loading_filter(struct sandbox_prog *prog, char *err, size_t errlen)
{
	static const char *const refused[] = {
		"fork", "vfork", "execve", "execveat", "ptrace",
		"process_vm_readv", "process_vm_writev", "connect", "bind",
		"listen", "accept", "accept4", "mount", "umount2",
		"pivot_root", "chroot", "setns", "unshare", "bpf",
		"io_uring_setup", "io_uring_enter", "io_uring_register",
		"userfaultfd", "perf_event_open", "keyctl", "add_key",
		"request_key", "kexec_load", "kexec_file_load",
		"init_module", "finit_module", "delete_module", "reboot",
		"swapon", "swapoff", "acct", "settimeofday", "clock_settime",
		"adjtimex", "clock_adjtime", "open_by_handle_at",
		"name_to_handle_at", "iopl", "ioperm", "quotactl",
		"lookup_dcookie", "process_madvise", "pidfd_open",
		"pidfd_getfd", "pidfd_send_signal", "kcmp", "setuid",
		"setgid", "setreuid", "setregid", "setresuid", "setresgid",
		"setgroups", "setfsuid", "setfsgid", "tkill",
		"rt_sigqueueinfo", "rt_tgsigqueueinfo", "mknod", "mknodat",
		/* Init may read files, never change one. */
		"creat", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat",
		"rename", "renameat", "renameat2", "link", "linkat",
		"symlink", "symlinkat", "truncate", "chmod", "fchmod",
		"fchmodat", "chown", "fchown", "lchown", "fchownat", "utime",
		"utimes", "utimensat", "futimesat", "setxattr", "lsetxattr",
		"fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
		/* Nor share memory or queues with other processes. */
		"shmget", "msgget", "semget", "mq_open", "mq_unlink",
	};
	static const int writes[] = { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC };
	static const struct {
		const char	*call;
		unsigned int	 cmd;
	} owners[] = {
		{ "fcntl", F_SETOWN }, { "fcntl", F_SETOWN_EX },
		{ "fcntl", F_SETSIG }, { "ioctl", FIOSETOWN },
		{ "ioctl", SIOCSPGRP }, { "ioctl", FIOASYNC },
	};
	scmp_filter_ctx	 ctx;

	if ((ctx = sandbox_ctx(SCMP_ACT_ALLOW, err, errlen)) == NULL)
		return -1;
	if (sandbox_rules(ctx, SCMP_ACT_ERRNO(EPERM), refused,
	    nitems(refused), err, errlen) == -1)
		goto fail;
	/* Threads, not processes; clone3 falls back to clone. */
	RULE(ctx, SCMP_ACT_ERRNO(EPERM), clone,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
	RULE0(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3);
	/* Files open to be read only (openat2 hides its flags; glibc's
	 * open does not use it). */
	for (size_t i = 0; i < nitems(writes); i++) {
		RULE(ctx, SCMP_ACT_ERRNO(EACCES), open,
		    SCMP_A1_32(SCMP_CMP_MASKED_EQ, writes[i], writes[i]));
		RULE(ctx, SCMP_ACT_ERRNO(EACCES), openat,
		    SCMP_A2_32(SCMP_CMP_MASKED_EQ, writes[i], writes[i]));
	}
	RULE0(ctx, SCMP_ACT_ERRNO(ENOSYS), openat2);
	/* Sockets: the helper has its own; no new ones but a pair. */
	RULE0(ctx, SCMP_ACT_ERRNO(EACCES), socket);
	/* Signals to itself only. */
	RULE(ctx, SCMP_ACT_ERRNO(EPERM), kill,
	    SCMP_A0(SCMP_CMP_NE, SANDBOX_SELF));
	RULE(ctx, SCMP_ACT_ERRNO(EPERM), tgkill,
	    SCMP_A0(SCMP_CMP_NE, SANDBOX_SELF));
	/*
	 * Nor through its descriptors: an owner set on its socket would have
	 * the kernel send SIGIO (or any F_SETSIG signal) to that process
	 * each time the host writes.  The kernel reads these commands as
	 * 32-bit values, so the rules compare 32 bits.  Filters stack: this
	 * holds after sandbox_lock too.
	 */
	for (size_t i = 0; i < nitems(owners); i++) {
		struct scmp_arg_cmp	a = SCMP_A1_32(SCMP_CMP_EQ,
					    owners[i].cmd);

		if (sandbox_rule(ctx, SCMP_ACT_ERRNO(EPERM),
		    seccomp_syscall_resolve_name(owners[i].call),
		    owners[i].call, 1, &a, err, errlen) == -1)
			goto fail;
	}
	return sandbox_export(ctx, prog, "loading", err, errlen);
fail:
	seccomp_release(ctx);
	return -1;
}

/*
 * Become spec's user (uid, gid, no supplementary groups): then the helper
 * can neither signal nor trace the daemon, nor read what only root may.
 * -1 with err set.
 */
static int
sandbox_user(const struct helper_spec *spec, char *err, size_t errlen)
{
	uid_t	r, e, s;

	if (!spec->setuser)
		return 0;
	if (setgroups(0, NULL) == -1 ||
	    setresgid(spec->gid, spec->gid, spec->gid) == -1 ||
	    setresuid(spec->uid, spec->uid, spec->uid) == -1) {
		snprintf(err, errlen, "switching to uid %u: %s",
		    (u_int)spec->uid, strerror(errno));
		return -1;
	}
	if (getresuid(&r, &e, &s) == -1 || r != spec->uid ||
	    e != spec->uid || s != spec->uid || setuid(0) != -1) {
		snprintf(err, errlen, "uid %u did not stick",
		    (u_int)spec->uid);
		return -1;
	}
	return 0;
}

/*
 * Enter the sandbox before the plugin is loaded: spec says its user and
 * how much more address space the helper may take (0: no cap).  -1 with
 * err set: the helper must then not load the plugin.
 */
int
sandbox_enter(struct sandbox *sb, const struct helper_spec *spec, char *err,
    size_t errlen)
{
	size_t	vsize, memory = spec->memory;

	if (setsid() == -1) {
		snprintf(err, errlen, "setsid: %s", strerror(errno));
		return -1;
	}
	if (sandbox_user(spec, err, errlen) == -1)
		return -1;
	/* No other process of its user may trace it or read its memory. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
		snprintf(err, errlen, "dumpable: %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		snprintf(err, errlen, "no_new_privs: %s", strerror(errno));
		return -1;
	}
	if (sandbox_limit(RLIMIT_CORE, 0, "core", err, errlen) == -1 ||
	    sandbox_limit(RLIMIT_FSIZE, 0, "fsize", err, errlen) == -1 ||
	    sandbox_limit(RLIMIT_MEMLOCK, 0, "memlock", err, errlen) == -1 ||
	    sandbox_limit(RLIMIT_MSGQUEUE, 0, "msgqueue", err, errlen) == -1)
		return -1;
	/* A file size limit must not kill: writes fail with EFBIG. */
	(void)signal(SIGXFSZ, SIG_IGN);
	/* Valgrind keeps descriptors and memory of its own: no more. */
	if (RUNNING_ON_VALGRIND)
		return 0;
	if (sandbox_limit(RLIMIT_NOFILE, SANDBOX_NOFILE, "nofile", err,
	    errlen) == -1)
		return -1;
	/* The address space it has now (the zygote's) plus what it may take. */
	if (memory > 0 && (vsize = sandbox_vsize()) > 0 &&
	    sandbox_limit(RLIMIT_AS, vsize + memory, "as", err, errlen) == -1)
		return -1;
	return sandbox_load(&sb->loading, 0, "loading", err, errlen);
}

/* SIGSYS from the running filter: note the system call, and die of it. */
static void
sandbox_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sandbox_blocked != NULL)
		*sandbox_blocked = (uint32_t)si->si_syscall + 1;
	/* Reset and not blocked (SA_RESETHAND, SA_NODEFER): this kills. */
	raise(sig);
	_exit(128 + sig);
}

/* Build the filter of a running helper: only what it needs. */
static int
sandbox_running_filter(struct sandbox_prog *prog, char *err, size_t errlen)
{
	static const char *const allowed[] = {
		"read", "readv", "pread64", "write", "writev", "pwrite64",
		"recvfrom", "recvmsg", "sendto", "sendmsg", "close", "fstat",
		"newfstatat", "lseek", "dup", "dup3", "fcntl", "brk",
		"munmap", "mremap", "madvise", "futex", "clock_gettime",
		"clock_getres", "clock_nanosleep", "nanosleep",
		"gettimeofday", "time", "getrandom", "rt_sigreturn",
		"rt_sigprocmask", "rt_sigaction", "sigaltstack",
		"sched_yield", "sched_getaffinity", "getpid", "gettid",
		"getppid", "getuid", "geteuid", "getgid", "getegid",
		"exit", "exit_group", "restart_syscall", "rseq",
		"set_robust_list", "get_robust_list", "set_tid_address",
		"membarrier", "getrlimit", "prlimit64", "getrusage",
		"uname", "poll", "ppoll", "pause", "dup2", "socketpair",
	};
	scmp_filter_ctx		 ctx;

	if ((ctx = sandbox_ctx(SCMP_ACT_TRAP, err, errlen)) == NULL)
		return -1;
	if (sandbox_rules(ctx, SCMP_ACT_ALLOW, allowed, nitems(allowed), err,
	    errlen) == -1)
		goto fail;
	/* Memory, but no new executable mappings. */
	RULE(ctx, SCMP_ACT_ALLOW, mmap,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	RULE(ctx, SCMP_ACT_ALLOW, mprotect,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* Signals to itself only (abort, raise). */
	RULE(ctx, SCMP_ACT_ALLOW, kill, SCMP_A0(SCMP_CMP_EQ, SANDBOX_SELF));
	RULE(ctx, SCMP_ACT_ALLOW, tgkill, SCMP_A0(SCMP_CMP_EQ, SANDBOX_SELF));
	/* Careless code gets an error, not a trap. */
	RULE0(ctx, SCMP_ACT_ERRNO(EACCES), open);
	RULE0(ctx, SCMP_ACT_ERRNO(EACCES), openat);
	RULE0(ctx, SCMP_ACT_ERRNO(EACCES), socket);
	RULE0(ctx, SCMP_ACT_ERRNO(ENOTTY), ioctl);
	RULE0(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3);
	/*
	 * glibc's qsort asks for the memory size before sorting more than a
	 * kilobyte (the helper's decoder sorts a large consumer list's ids);
	 * without an answer it assumes enough.
	 */
	RULE0(ctx, SCMP_ACT_ERRNO(ENOSYS), sysinfo);
	return sandbox_export(ctx, prog, "running", err, errlen);
fail:
	seccomp_release(ctx);
	return -1;
}

/*
 * Lock the sandbox once init has run, on every thread: only what a
 * running helper needs.  blocked is where a trapped system call's number
 * (plus one) is written for the host.  -1 with err set.
 */
int
sandbox_lock(struct sandbox *sb, volatile uint32_t *blocked, char *err,
    size_t errlen)
{
	struct sigaction	 sa;

	if (RUNNING_ON_VALGRIND)
		return 0;
	sandbox_blocked = blocked;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = sandbox_sigsys;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) == -1) {
		snprintf(err, errlen, "sigaction SIGSYS: %s", strerror(errno));
		return -1;
	}
	return sandbox_load(&sb->running, SECCOMP_FILTER_FLAG_TSYNC,
	    "running", err, errlen);
}

/* In the zygote: compile both filters once; NULL with err set. */
struct sandbox *
sandbox_new(char *err, size_t errlen)
{
	struct sandbox	*sb;
	char		 why[DETAIL_MAX];

	if ((sb = calloc(1, sizeof *sb)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (sandbox_loading_filter(&sb->loading, why, sizeof why) == -1 ||
	    sandbox_running_filter(&sb->running, why, sizeof why) == -1) {
		snprintf(err, errlen, "sandbox: %s", why);
		sandbox_free(sb);
		return NULL;
	}
	return sb;
}

/* Free the compiled filters. */
void
sandbox_free(struct sandbox *sb)
{
	if (sb == NULL)
		return;
	free(sb->loading.insns);
	free(sb->running.insns);
	free(sb);
}

/*
 * In the host: the cause of a helper's death by SIGSYS, from what it
 * noted in its ledger (untrusted: any number is only named).
 */
void
sandbox_describe(uint32_t blocked, char *buf, size_t len)
{
	char	*name = NULL;

	if (blocked == 0) {
		/* The plugin had SIGSYS blocked: the kernel killed at once. */
		snprintf(buf, len, "seccomp: blocked system call (SIGSYS, "
		    "which call unknown)");
		return;
	}
	if (blocked - 1 <= 4096)
		name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE,
		    (int)(blocked - 1));
	if (name != NULL)
		snprintf(buf, len, "seccomp: blocked system call %s", name);
	else
		snprintf(buf, len, "seccomp: blocked system call %u",
		    blocked - 1);
	free(name);
}
