/* SPDX-License-Identifier: ISC */
/*
 * The ledger: where a helper writes down each call's result.
 *
 * Every helper shares one small page with the host, and only with the
 * host: a sealed memfd the host maps and hands the zygote for that helper
 * alone.  The moment a plugin returns, the helper writes the result
 * into the slot of that call's sequence number; after a run of calls it
 * sends a single RESULT frame saying "answered through seq N".  So one
 * frame announces many answers, and an answer once written outlives the
 * helper: if the helper dies, the calls it finished still have their
 * results and only the call it was running fails; if a deadline passes,
 * the host first collects the calls that finished ahead of the slow one.
 *
 * A slot is twelve bytes: a bad request's reason is not in it, the host
 * finds that itself (proc.c).  The helper is untrusted and its plugin can
 * scribble on the mapping at any time: the host copies a slot before it
 * looks at it and checks the copy.
 *
 * The ledger also holds a crash record: when a fatal signal (SIGSEGV,
 * SIGBUS, SIGILL, SIGFPE, SIGTRAP) catches plugin code, the helper's
 * handler writes where (helper.c), then dies of the signal, and the host
 * names the place in the call's detail (ledger_describe_crash): the
 * faulting address, and the offset in the plugin's file of the
 * instruction, or of the plugin's call into the library that faulted.
 * What it reads there is only ever printed as numbers.
 */

#include "config.h"

#include <sys/mman.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine-int.h"

/*
 * Map a new ledger, and set *fd to the memfd behind it for its helper to
 * map (sealed: no helper can shrink it under the host).  NULL, errno.
 */
struct ledger *
ledger_new(int *fd)
{
	struct ledger	*l;
	int		 saved;

	*fd = memfd_create("route-host:ledger", MFD_CLOEXEC |
	    MFD_ALLOW_SEALING);
	if (*fd == -1)
		return NULL;
	if (ftruncate(*fd, sizeof *l) == -1 || fcntl(*fd, F_ADD_SEALS,
	    F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == -1)
		goto fail;
	l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	if (l == MAP_FAILED)
		goto fail;
	return l;
fail:
	saved = errno;
	close(*fd);
	*fd = -1;
	errno = saved;
	return NULL;
}

/* Unmap a ledger. */
void
ledger_free(struct ledger *l)
{
	if (l != NULL)
		(void)munmap(l, sizeof *l);
}

/* In the helper: record the result of call seq. */
void
ledger_put(struct ledger *l, uint32_t seq, uint8_t status, int32_t decision)
{
	struct ledger_slot	*s = &l->slot[seq % LEDGER_SLOTS];

	s->status = status;
	s->decision = decision;
	/* The sequence number last: it says the rest is complete. */
	__atomic_store_n(&s->seq, seq, __ATOMIC_RELEASE);
}

/*
 * In the host: what the crash record of a helper that died of signal sig
 * says, appended to buf ("SIGSEGV" becomes "SIGSEGV: address 0x0, in the
 * plugin at offset 0x115c"); nothing if it recorded no such crash.  An
 * offset is one for addr2line(1) -f -e PLUGIN.so, or objdump(1) -d.
 */
void
ledger_describe_crash(const struct ledger *l, int sig, char *buf,
    size_t len)
{
	struct ledger_crash	c;
	size_t			n = strlen(buf);

	memcpy(&c, &l->crash, sizeof c);
	if (c.signo != (uint32_t)sig || n >= len)
		return;
	buf += n;
	len -= n;
	if (c.code > 0)
		n = (size_t)snprintf(buf, len, ": address 0x%llx",
		    (unsigned long long)c.addr);
	else
		n = (size_t)snprintf(buf, len, ":");
	if (n >= len || c.pc == 0 || c.end <= c.text || c.text < c.base)
		return;
	buf += n;
	len -= n;
	if (c.pc >= c.text && c.pc < c.end)
		(void)snprintf(buf, len, ", in the plugin at offset 0x%llx",
		    (unsigned long long)(c.pc - c.base));
	else if (c.caller > c.text && c.caller <= c.end)
		(void)snprintf(buf, len, ", in a library function the plugin "
		    "called at offset 0x%llx", (unsigned long long)(c.caller -
		    c.base - 1));
	else
		(void)snprintf(buf, len, ", at 0x%llx, outside the plugin",
		    (unsigned long long)c.pc);
}

/*
 * In the host: copy out the result of call seq.  0 if it is there, 1 if
 * the slot holds no answer to seq yet, -1 if what it holds is malformed.
 */
int
ledger_take(const struct ledger *l, uint32_t seq, struct ledger_slot *out)
{
	const struct ledger_slot	*s = &l->slot[seq % LEDGER_SLOTS];

	if (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) != seq)
		return 1;
	memcpy(out, s, sizeof *out);
	if (out->seq != seq)
		return 1;
	if (out->status > RESULT_BAD_REQUEST)
		return -1;
	return 0;
}
