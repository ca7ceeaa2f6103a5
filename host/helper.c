/* SPDX-License-Identifier: ISC */
/*
 * The helper: the only code that runs a plugin.
 *
 * A helper is forked by the zygote (zygote.c), which leaves it /dev/null
 * on fd 0, a pipe the host logs from on fds 1 and 2, its socket on fd 3,
 * the version's sealed memfd on fd 4 and its ledger mapped.  It dlopens
 * the memfd, checks the descriptor, runs init, and says how that went in a
 * HELLO frame.  Then it runs CALL frames in order, each result written to
 * the ledger (ledger.c) and announced by a RESULT frame, until the host
 * closes the socket.
 * The helper shares its address space with the plugin, so its own checks
 * of the plugin are advisory: the host treats the whole helper as an
 * untrusted peer and checks everything it says again.
 *
 * A fatal signal in plugin code (a fault, a trap) is caught on a stack of
 * its own: the handler writes the faulting address and where the plugin
 * was into the ledger's crash record, and dies of the same signal
 * (helper_fault); the host turns that into the call's detail.
 */

#include "config.h"

#include <sys/socket.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <signal.h>
#include <ucontext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-int.h"

#define HELPER_IMAGE	"/proc/self/fd/4"
#define HELPER_PREFAULT	(8 * 1024)	/* of the input buffer */
#define HELPER_ALTSTACK	(64 * 1024)	/* for the fault handler */
#define HELPER_SCAN	2048		/* stack words searched for a return */

/* What the fault handler needs: the ledger, and where the plugin lies. */
static struct ledger	*helper_ledger;
static uintptr_t	 helper_base;			/* its load address */
static uintptr_t	 helper_text, helper_end;	/* its code */
static char		 helper_altstack[HELPER_ALTSTACK];

/* Send all of a frame, or exit: a helper without its host has no work. */
static void
helper_send(int sock, struct wire_buf *b)
{
	size_t	off = 0;
	ssize_t	n;

	wire_frame_end(b);
	if (b->failed)
		_exit(70);
	while (off < b->len) {
		n = send(sock, b->data + off, b->len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		/*
		 * The plugin closed our socket.  The host has seen it close
		 * and is killing us; wait for that, so the cause it reports
		 * is "closed its socket", not a misleading exit status.
		 */
		if (n == -1 && (errno == EBADF || errno == ENOTSOCK))
			for (;;)
				pause();
		if (n <= 0)
			_exit(0);
		off += (size_t)n;
	}
}

/* The plugin's flags, for the handshake (0 until its descriptor is read). */
static uint32_t	helper_flags;

/* Report the handshake's outcome; a failure ends the helper. */
static void
helper_hello(int sock, enum wire_hello status, uint32_t abi, const char *name,
    const char *detail)
{
	struct wire_buf	b;

	wire_init(&b);
	wire_frame_begin(&b, WIRE_HELLO);
	wire_u8(&b, (uint8_t)status);
	wire_u32(&b, abi);
	wire_str16(&b, name, strnlen(name, PLUGIN_NAME_MAX - 1));
	wire_str16(&b, detail, strnlen(detail, DETAIL_MAX - 1));
	wire_u32(&b, helper_flags);
	helper_send(sock, &b);
	wire_free(&b);
	if (status != HELLO_OK)
		_exit(0);
}

/* Fail the handshake unless the image starts like an ELF file. */
static void
helper_check_elf(int sock, int memfd)
{
	unsigned char	magic[4];
	ssize_t		n;

	n = pread(memfd, magic, sizeof magic, 0);
	if (n == 0)
		helper_hello(sock, HELLO_NOT_ELF, 0, "", "empty file, not an "
		    "ELF shared object");
	if (n != (ssize_t)sizeof magic || memcmp(magic, "\177ELF", 4) != 0)
		helper_hello(sock, HELLO_NOT_ELF, 0, "", "not an ELF shared "
		    "object (bad magic)");
}

/*
 * True when name is a sane plugin name: printable, short, not empty.
 * Advisory: the plugin can change its name after this, so the host checks
 * the name it is sent again (proc.c).
 */
static bool
helper_name_ok(const char *name)
{
	size_t	n;

	if (name == NULL || (n = strnlen(name, PLUGIN_NAME_MAX)) == 0 ||
	    n == PLUGIN_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return false;
	return true;
}

/*
 * A fatal signal in plugin code: note in the ledger where it was, then die
 * of it (reset and not blocked: SA_RESETHAND, SA_NODEFER).  Only plain
 * stores and reads.  Outside the plugin's code (a library function it
 * called faulted), the plugin's call is the first word on the stack that
 * points into its code: the return address of the frame that called out
 * (on aarch64, the link register first).  The record is written before
 * the stack is read, in case that read faults too.
 */
static void
helper_fault(int sig, siginfo_t *si, void *ucv)
{
	volatile struct ledger_crash	*c = &helper_ledger->crash;
	ucontext_t			*uc = ucv;
	uintptr_t			 pc = 0, sp = 0, caller = 0;

#if defined(__x86_64__)
	pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	pc = (uintptr_t)uc->uc_mcontext.pc;
	caller = (uintptr_t)uc->uc_mcontext.regs[30];	/* the link register */
#else
	(void)uc;
#endif
	c->code = si->si_code;
	c->addr = (uint64_t)(uintptr_t)si->si_addr;
	c->pc = pc;
	c->caller = caller;
	c->base = helper_base;
	c->text = helper_text;
	c->end = helper_end;
	c->signo = (uint32_t)sig;
	if ((pc < helper_text || pc >= helper_end) && (caller <=
	    helper_text || caller > helper_end) && sp != 0)
		for (size_t i = 0; i < HELPER_SCAN; i++) {
			caller = ((volatile uintptr_t *)sp)[i];
			if (caller > helper_text && caller <= helper_end) {
				c->caller = caller;
				break;
			}
		}
	raise(sig);
	_exit(128 + sig);
}

/*
 * dl_iterate_phdr: the code of the object loaded at *arg's address, from
 * its executable segments (one, as linkers lay out a shared object).
 */
static int
helper_extent(struct dl_phdr_info *info, size_t size, void *arg)
{
	const ElfW(Phdr)	*ph;
	uintptr_t		 lo = UINTPTR_MAX, hi = 0;

	(void)size;
	if (info->dlpi_addr != *(uintptr_t *)arg)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		if (ph->p_vaddr < lo)
			lo = ph->p_vaddr;
		if (ph->p_vaddr + ph->p_memsz > hi)
			hi = ph->p_vaddr + ph->p_memsz;
	}
	if (hi > lo) {
		helper_text = info->dlpi_addr + lo;
		helper_end = info->dlpi_addr + hi;
	}
	return 1;
}

/*
 * Catch the fatal signals of plugin code dl loaded, on a stack of their
 * own (a stack overflow is one of them).  Best effort: without it a crash
 * is reported by its signal alone.
 */
static void
helper_catch_faults(void *dl, struct ledger *l)
{
	static const int	 sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE,
				    SIGTRAP };
	struct link_map		*lm;
	struct sigaction	 sa;
	stack_t			 ss;

	if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) == -1)
		return;
	helper_base = (uintptr_t)lm->l_addr;
	(void)dl_iterate_phdr(helper_extent, &helper_base);
	helper_ledger = l;
	ss.ss_sp = helper_altstack;
	ss.ss_size = sizeof helper_altstack;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) == -1)
		return;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = helper_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < nitems(sigs); i++)
		(void)sigaction(sigs[i], &sa, NULL);
}

/*
 * Find and check the descriptor of the plugin dl loaded: NULL with err
 * and *st (the handshake's status) set if it is none, or not one this
 * host can run.
 */
static const struct route_plugin *
helper_descriptor(void *dl, enum wire_hello *st, char *err, size_t errlen)
{
	const struct route_plugin	*d;

	if ((d = dlsym(dl, ROUTE_PLUGIN_SYMBOL)) == NULL) {
		*st = HELLO_NO_DESCRIPTOR;
		snprintf(err, errlen, "no " ROUTE_PLUGIN_SYMBOL " symbol: not "
		    "a route-host plugin (missing ROUTE_PLUGIN)");
		return NULL;
	}
	if (d->abi != ROUTE_ABI_VERSION) {
		*st = HELLO_ABI;
		snprintf(err, errlen, "plugin ABI %u, host speaks ABI %u",
		    d->abi, ROUTE_ABI_VERSION);
		return NULL;
	}
	/* A descriptor built before flags existed ends at fini. */
	if (d->size < offsetof(struct route_plugin, flags) ||
	    !helper_name_ok(d->name) || d->route == NULL) {
		*st = HELLO_BAD_DESCRIPTOR;
		snprintf(err, errlen, "malformed descriptor (size, name or "
		    "routing function)");
		return NULL;
	}
	return d;
}

/*
 * ROUTE_HOST_DEBUG: stop before the plugin loads, for a debugger to attach
 * and continue the helper (the host waits for its handshake meanwhile).
 */
static void
helper_wait_debugger(const struct helper_spec *spec)
{
	long	pid = (long)getpid();

	fprintf(stderr, "ROUTE_HOST_DEBUG: helper %ld (%s %.12s) stopped "
	    "before loading its plugin: attach with gdb -p %ld and continue, "
	    "or kill -CONT %ld\n", pid, spec->label, spec->hex, pid, pid);
	(void)raise(SIGSTOP);
}

/* Load the plugin and run init; on any failure, say why and exit. */
static const struct route_plugin *
helper_load(int sock, int memfd, const struct helper_spec *spec,
    struct sandbox *sb, struct ledger *l, void **state)
{
	const struct route_plugin	*d;
	const char			*why, *prefix = HELPER_IMAGE ": ";
	char				 err[DETAIL_MAX];
	enum wire_hello			 st;
	void				*dl;

	if (spec->debug)
		helper_wait_debugger(spec);
	/* Plugin code runs from dlopen on: the sandbox comes first. */
	if (sb != NULL && sandbox_enter(sb, spec, err, sizeof err) == -1)
		helper_hello(sock, HELLO_SANDBOX, 0, "", err);
	helper_check_elf(sock, memfd);
	if ((dl = dlopen(HELPER_IMAGE, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		why = dlerror();
		if (why == NULL)
			why = "unknown error";
		if (strncmp(why, prefix, strlen(prefix)) == 0)
			why += strlen(prefix);
		snprintf(err, sizeof err, "dlopen: %s", why);
		helper_hello(sock, HELLO_DLOPEN, 0, "", err);
	}
	if ((d = helper_descriptor(dl, &st, err, sizeof err)) == NULL) {
		d = dlsym(dl, ROUTE_PLUGIN_SYMBOL);
		helper_hello(sock, st, d != NULL ? d->abi : 0, "", err);
	}
	if (d->size >= offsetof(struct route_plugin, flags) + sizeof d->flags)
		helper_flags = d->flags;
	helper_catch_faults(dl, l);

	*state = NULL;
	if (d->init != NULL) {
		memset(err, 0, sizeof err);
		if (d->init(state, spec->opts, spec->nopts, err,
		    sizeof err) != 0) {
			err[sizeof err - 1] = '\0';
			helper_hello(sock, HELLO_INIT, d->abi, d->name,
			    err[0] != '\0' ? err : "init failed");
		}
	}
	if (sb != NULL && sandbox_lock(sb, &l->blocked, err, sizeof err) ==
	    -1)
		helper_hello(sock, HELLO_SANDBOX, d->abi, d->name, err);
	helper_hello(sock, HELLO_OK, d->abi, d->name, "");
	return d;
}

/* Run the plugin on one call body: its decision, or -1 if malformed. */
static int
helper_run(const struct route_plugin *d, void *state, const void *body,
    size_t len, int *decision, char *err, size_t errlen)
{
	struct wire_call	c;

	if (wire_decode_call(body, len, &c, err, errlen) == -1)
		return -1;
	*decision = d->route(state, &c.msg, c.consumers, c.nconsumers);
	wire_call_free(&c);
	return 0;
}

/* Run one call frame's payload and write its result in the ledger. */
static uint32_t
helper_call(const struct route_plugin *d, void *state, struct ledger *l,
    const unsigned char *p, size_t len)
{
	char		err[DETAIL_MAX];
	uint32_t	seq;
	int		decision;

	if (len < 4)
		_exit(71);
	seq = wire_get_u32(p);
	if (helper_run(d, state, p + 4, len - 4, &decision, err,
	    sizeof err) == -1)
		ledger_put(l, seq, RESULT_BAD_REQUEST, ROUTE_NONE);
	else
		ledger_put(l, seq, RESULT_OK, decision);
	return seq;
}

/* Tell the host that every call through seq has its result. */
static void
helper_announce(int sock, struct wire_buf *out, uint32_t seq)
{
	wire_frame_begin(out, WIRE_RESULT);
	wire_u32(out, seq);
	helper_send(sock, out);
}

/*
 * Run a helper: sock is the socket to the host, memfd the sealed image, l
 * the ledger, spec what it runs (label, version, options) and how it is
 * confined, sb the compiled sandbox (NULL: none), as the zygote has them.
 */
void
helper_main(int sock, int memfd, struct ledger *l,
    const struct helper_spec *spec, struct sandbox *sb)
{
	const struct route_plugin	*d;
	struct wire_buf			 out;
	unsigned char			*buf;
	size_t				 size, have = 0, off = 0;
	ssize_t				 n;
	uint32_t			 len, last = 0;
	bool				 ran = false;
	void				*state;

	setproctitle("helper %s %.12s", spec->label, spec->hex);
	d = helper_load(sock, memfd, spec, sb, l, &state);

	/*
	 * The host may send several calls at once: read whatever is there,
	 * run each complete frame in turn, and announce the run's results
	 * with one frame before waiting for more.  Each result is in the
	 * ledger the moment its call returns, so a crash in one call never
	 * takes another call's answer with it, and the host, which reads
	 * the ledger of a helper holding several calls every millisecond,
	 * never waits for a slow call to hear of the ones before it.
	 */
	wire_init(&out);
	size = WIRE_HEADER + WIRE_FRAME_MAX + 65536;
	if ((buf = malloc(size)) == NULL)
		_exit(70);
	/* Fault in what the first calls touch now, not on their time. */
	memset(buf, 0, HELPER_PREFAULT);
	memset(l, 0, sizeof *l);
	for (;;) {
		while (have - off >= WIRE_HEADER) {
			len = wire_get_u32(buf + off);
			if (len < 1 || len - 1 > WIRE_FRAME_MAX ||
			    buf[off + 4] != WIRE_CALL)
				_exit(71);
			if (have - off - 4 < len)
				break;
			last = helper_call(d, state, l, buf + off +
			    WIRE_HEADER, len - 1);
			ran = true;
			off += 4 + len;
		}
		if (ran) {
			helper_announce(sock, &out, last);
			ran = false;
		}
		memmove(buf, buf + off, have - off);
		have -= off;
		off = 0;
		n = read(sock, buf + have, size - have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	if (d->fini != NULL)
		d->fini(state);
	(void)fflush(NULL);
	_exit(0);
}

/*
 * Inline mode (route --inline): the plugin in the calling process, for
 * gdb, valgrind and sanitizers.  Nothing is contained: no helper, no
 * sandbox, no deadline; a crash is the caller's.  The plugin is opened
 * from its own path, so tools name its frames.
 */
struct helper_inline {
	void				*dl;
	const struct route_plugin	*d;
	void				*state;
};

/* Open the plugin at path in this process and run init; NULL, err set. */
struct helper_inline *
helper_inline_open(const char *path, const struct route_option *opts,
    size_t nopts, char *err, size_t errlen)
{
	struct helper_inline	*hi;
	enum wire_hello		 st;
	const char		*why;
	char			 rel[PATH_MAX];

	if ((hi = calloc(1, sizeof *hi)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* A name without a slash is a file here, not a library to search. */
	if (strchr(path, '/') == NULL) {
		snprintf(rel, sizeof rel, "./%s", path);
		path = rel;
	}
	if ((hi->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		why = dlerror();
		snprintf(err, errlen, "dlopen: %s", why != NULL ? why :
		    "unknown error");
		free(hi);
		return NULL;
	}
	if ((hi->d = helper_descriptor(hi->dl, &st, err, errlen)) == NULL) {
		dlclose(hi->dl);
		free(hi);
		return NULL;
	}
	if (hi->d->init != NULL) {
		memset(err, 0, errlen);
		if (hi->d->init(&hi->state, opts, nopts, err, errlen) != 0) {
			err[errlen - 1] = '\0';
			if (err[0] == '\0')
				snprintf(err, errlen, "init failed");
			dlclose(hi->dl);
			free(hi);
			return NULL;
		}
	}
	return hi;
}

/* The plugin's own name. */
const char *
helper_inline_name(const struct helper_inline *hi)
{
	return hi->d->name;
}

/*
 * Run the plugin on call body (len bytes) here: its decision, or -1 with
 * err set if the body is malformed.
 */
int
helper_inline_call(struct helper_inline *hi, const void *body, size_t len,
    int *decision, char *err, size_t errlen)
{
	return helper_run(hi->d, hi->state, body, len, decision, err, errlen);
}

/*
 * Run fini.  The plugin stays mapped, so that what tools report at exit
 * (valgrind's leak check) still names its frames.
 */
void
helper_inline_close(struct helper_inline *hi)
{
	if (hi == NULL)
		return;
	if (hi->d->fini != NULL)
		hi->d->fini(hi->state);
	free(hi);
}
