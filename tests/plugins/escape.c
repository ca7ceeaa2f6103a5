/* SPDX-License-Identifier: ISC */
/*
 * Test plugin: tries to get out of its sandbox, as its options say.
 *
 *	try=killparent|killgroup|fork|exec|thread|peek|open|create|
 *	    socket|connect|memory|fds|sigio|secret|shadow|procmem|none
 *
 * Signals sent are SIGCONT and the peek only reads, so a sandbox that
 * fails lets the test see the escape without harm.
 *	at=call|init	where to try (default call)
 *	mb=N		how much memory try=memory maps and touches (512)
 *	needle=S	what try=secret looks for in its own memory, written
 *			backwards (so that the needle itself is never found)
 *
 * try=shadow reads /etc/shadow; try=procmem opens the daemon's memory
 * (/proc/PID/mem); try=create makes a file in /tmp.
 * try=sigio makes the daemon (the peer of its socket, fd 3) the owner of
 * that socket, so the kernel would signal the daemon at each write.
 * try=secret (at=init: it reads /proc/self/maps) searches every readable
 * page of its own for S: another channel's option, say, copied from the
 * daemon's memory.
 *
 * A call answers 0 when the attempt was refused with an error, and 1 when
 * it worked: an escape.  An attempt the sandbox traps never returns (the
 * helper dies of SIGSYS).  At init, an attempt that worked fails init
 * ("escaped: ..."), so the version never loads.
 */

#define _GNU_SOURCE	/* process_vm_readv */

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <route-host/plugin.h>

static char	try[16] = "open";
static bool	at_init;
static size_t	mb = 512;
static char	needle[128];
static pid_t	peer;		/* the other end of fd 3 */
static sigjmp_buf	fault;

/* A page that cannot be read after all: skip its mapping. */
static void
escape_fault(int sig)
{
	siglongjmp(fault, sig);
}

/* True if s[0..n) is needle backwards. */
static bool
escape_match(const volatile char *s, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (s[k] != needle[n - 1 - k])
			return false;
	return true;
}

/* Search every readable mapping of this process for the needle. */
static bool
escape_find_secret(void)
{
	struct sigaction	 sa, osegv, obus;
	unsigned long		 lo, hi;
	char			 line[512], perms[8];
	size_t			 n = strlen(needle);
	volatile bool		 found = false;
	FILE			*f;

	if (n == 0 || (f = fopen("/proc/self/maps", "re")) == NULL)
		return false;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = escape_fault;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &osegv);
	sigaction(SIGBUS, &sa, &obus);
	while (!found && fgets(line, sizeof line, f) != NULL) {
		/* Skip a sanitizer's shadow: terabytes of nothing. */
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
		    perms[0] != 'r' || strstr(line, "[v") != NULL ||
		    hi - lo > (1UL << 30))
			continue;
		if (sigsetjmp(fault, 1) != 0)
			continue;
		for (unsigned long a = lo; a + n <= hi && !found; a++)
			if (((const volatile char *)a)[0] == needle[n - 1] &&
			    escape_match((const volatile char *)a, n))
				found = true;
	}
	sigaction(SIGSEGV, &osegv, NULL);
	sigaction(SIGBUS, &obus, NULL);
	fclose(f);
	return found;
}

/* Make the socket's peer (the daemon, found at init) its owner. */
static bool
escape_sigio(void)
{
	int	pid = peer, owned = 0;

	if (pid <= 0)
		return false;
	if (fcntl(3, F_SETOWN, pid) == 0)
		owned++;
	if (ioctl(3, FIOSETOWN, &pid) == 0)
		owned++;
	if (owned > 0)
		(void)fcntl(3, F_SETFL, fcntl(3, F_GETFL) | O_ASYNC);
	return owned > 0;
}

/* A thread that does nothing. */
static void *
escape_idle(void *arg)
{
	return arg;
}

/* Try it; true if it worked. */
static bool
escape_try(void)
{
	struct sockaddr_un	 sun;
	struct iovec		 iov[2];
	void			*local;
	pthread_t		 t;
	char			*p;
	pid_t			 pid;
	int			 fd, n;

	if (strcmp(try, "killparent") == 0)
		return kill(getppid(), SIGCONT) == 0;
	if (strcmp(try, "killgroup") == 0)
		return kill(0, SIGCONT) == 0;
	if (strcmp(try, "fork") == 0) {
		if ((pid = fork()) == 0)
			_exit(0);
		if (pid > 0)
			(void)waitpid(pid, NULL, 0);
		return pid > 0;
	}
	if (strcmp(try, "exec") == 0) {
		execl("/bin/true", "true", (char *)NULL);
		return false;
	}
	if (strcmp(try, "thread") == 0) {
		if (pthread_create(&t, NULL, escape_idle, NULL) != 0)
			return false;
		pthread_join(t, NULL);
		return !at_init;	/* threads are for init */
	}
	if (strcmp(try, "peek") == 0) {
		/* The host's copy of this very variable (forked alike). */
		local = iov[0].iov_base = iov[1].iov_base = &try;
		iov[0].iov_len = iov[1].iov_len = 1;
		(void)local;
		return process_vm_readv(getppid(), &iov[0], 1, &iov[1], 1,
		    0) == 1;
	}
	if (strcmp(try, "open") == 0) {
		if ((fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC)) == -1)
			return false;
		close(fd);
		return !at_init;	/* init may read files */
	}
	if (strcmp(try, "create") == 0) {
		fd = open("/tmp/route-host-escaped", O_WRONLY | O_CREAT |
		    O_CLOEXEC, 0644);
		if (fd == -1)
			return false;
		n = (int)write(fd, "x", 1);
		close(fd);
		unlink("/tmp/route-host-escaped");
		return n == 1;
	}
	if (strcmp(try, "socket") == 0) {
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
			return false;
		close(fd);
		return true;
	}
	if (strcmp(try, "connect") == 0) {
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
			return false;
		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		strncpy(sun.sun_path, "/run/systemd/private",
		    sizeof sun.sun_path - 1);
		n = connect(fd, (struct sockaddr *)&sun, sizeof sun);
		close(fd);
		return n == 0;
	}
	if (strcmp(try, "memory") == 0) {
		/* 512 MiB by default, touched: more than the cap allows. */
		p = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return false;
		memset(p, 1, mb << 20);
		munmap(p, mb << 20);
		return true;
	}
	if (strcmp(try, "shadow") == 0) {
		if ((fd = open("/etc/shadow", O_RDONLY | O_CLOEXEC)) == -1)
			return false;
		n = (int)read(fd, &local, 1);
		close(fd);
		return n == 1;
	}
	if (strcmp(try, "procmem") == 0) {
		char	path[64];

		snprintf(path, sizeof path, "/proc/%ld/mem", (long)peer);
		if (peer <= 0 ||
		    (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
			return false;
		close(fd);
		return true;
	}
	if (strcmp(try, "sigio") == 0)
		return escape_sigio();
	if (strcmp(try, "secret") == 0)
		return escape_find_secret();
	if (strcmp(try, "fds") == 0) {
		for (n = 0; n < 1000 && dup(0) != -1; n++)
			;
		return n >= 100;
	}
	return false;
}

/* Read the options; try at init if told to. */
static int
escape_init(void **state, const struct route_option *opts, size_t nopts,
    char *err, size_t errlen)
{
	struct ucred	 cred;
	socklen_t	 len = sizeof cred;
	const char	*v;

	(void)state;
	if (getsockopt(3, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		peer = cred.pid;
	if ((v = route_option_get(opts, nopts, "try")) != NULL)
		strncpy(try, v, sizeof try - 1);
	if ((v = route_option_get(opts, nopts, "at")) != NULL)
		at_init = strcmp(v, "init") == 0;
	if ((v = route_option_get(opts, nopts, "mb")) != NULL)
		mb = strtoul(v, NULL, 10);
	if ((v = route_option_get(opts, nopts, "needle")) != NULL)
		strncpy(needle, v, sizeof needle - 1);
	if (at_init && escape_try()) {
		snprintf(err, errlen, "escaped: %s", try);
		return -1;
	}
	return 0;
}

/* Try at each call, unless it was at init: 1 means it worked. */
static int
escape_route(void *state, const struct route_message *msg,
    const struct route_consumer *consumers, size_t n)
{
	(void)state;
	(void)msg;
	(void)consumers;
	if (n < 2)
		return ROUTE_NONE;
	if (at_init)
		return 0;
	return escape_try() ? 1 : 0;
}

ROUTE_PLUGIN_STATEFUL("escape", escape_route, escape_init, NULL);
