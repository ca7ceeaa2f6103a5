/* SPDX-License-Identifier: ISC */
/*
 * Modules: one loaded plugin version, and its life.
 *
 * Loading reads the operator's file exactly once, from the descriptor its
 * caller opened (through O_NOFOLLOW) and checked, into a private memfd, seals it so nobody can change it again, and hashes exactly
 * the sealed bytes.  Helpers dlopen that memfd, never the operator's path,
 * so a later cp over the file cannot change or crash a loaded version.
 *
 * A version's life is HELD (in the engine's registry, held by channels,
 * gates or commands), RETIRED (its last holder let go: calls in flight
 * finish, within the drain cap of that release), DEAD (no call and no
 * helper left; freed at the end of the turn).  Holders and calls are
 * counted apart, so a call never keeps a version HELD, and a version held
 * again while retired (a rollback, the same bytes deployed elsewhere) is
 * HELD once more and never capped.
 */

#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "engine-int.h"

RB_GENERATE(module_tree, module, entry, module_cmp);

/* Order modules by key: version and options together. */
int
module_cmp(struct module *a, struct module *b)
{
	return memcmp(a->key, b->key, sizeof a->key);
}

/* Copy fd's st_size bytes into a new sealed memfd; -1 with err set. */
static int
module_seal(int fd, const struct stat *st, const char *label, char *err,
    size_t errlen)
{
	unsigned char	*map = NULL;
	char		 name[PLUGIN_NAME_MAX + 16], extra;
	size_t		 size = (size_t)st->st_size, off = 0;
	ssize_t		 n;
	int		 mfd;

	snprintf(name, sizeof name, "route-host:%s", label);
	if ((mfd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)) == -1) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		return -1;
	}
	if (size > 0) {
		if (ftruncate(mfd, (off_t)size) == -1) {
			snprintf(err, errlen, "ftruncate memfd: %s",
			    strerror(errno));
			goto fail;
		}
		map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd,
		    0);
		if (map == MAP_FAILED) {
			map = NULL;
			snprintf(err, errlen, "mmap memfd: %s",
			    strerror(errno));
			goto fail;
		}
	}
	while (off < size) {
		n = read(fd, map + off, size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			goto fail;
		}
		if (n == 0) {
			snprintf(err, errlen, "file shrank while being read "
			    "(%zu of %zu bytes); still being written?", off,
			    size);
			goto fail;
		}
		off += (size_t)n;
	}
	while ((n = read(fd, &extra, 1)) == -1 && errno == EINTR)
		;
	if (n != 0) {
		snprintf(err, errlen, "file grew while being read; still being "
		    "written?");
		goto fail;
	}
	if (map != NULL)
		munmap(map, size);
	map = NULL;
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
	    F_SEAL_WRITE | F_SEAL_SEAL) == -1) {
		snprintf(err, errlen, "sealing memfd: %s", strerror(errno));
		goto fail;
	}
	return mfd;

fail:
	if (map != NULL)
		munmap(map, size);
	close(mfd);
	return -1;
}

/* Hash the sealed memfd's bytes, and the key: bytes plus options. */
static int
module_hash(struct module *m, char *err, size_t errlen)
{
	crypto_generichash_state	 st;
	void				*map = NULL;

	if (m->size > 0) {
		map = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, m->memfd, 0);
		if (map == MAP_FAILED) {
			snprintf(err, errlen, "mmap sealed memfd: %s",
			    strerror(errno));
			return -1;
		}
	}
	version_mem(map, m->size, m->hash);
	if (map != NULL)
		munmap(map, m->size);
	version_hex(m->hash, m->hex);

	crypto_generichash_init(&st, NULL, 0, sizeof m->key);
	crypto_generichash_update(&st, m->hash, sizeof m->hash);
	for (size_t i = 0; i < m->nopts; i++) {
		crypto_generichash_update(&st, (const unsigned char *)
		    m->opts[i].key, strlen(m->opts[i].key) + 1);
		crypto_generichash_update(&st, (const unsigned char *)
		    m->opts[i].value, strlen(m->opts[i].value) + 1);
	}
	crypto_generichash_final(&st, m->key, sizeof m->key);
	return 0;
}

/* Copy the options into the module. */
static int
module_set_options(struct module *m, const struct route_option *opts,
    size_t nopts)
{
	if (nopts == 0)
		return 0;
	if ((m->opts = calloc(nopts, sizeof *m->opts)) == NULL)
		return -1;
	m->nopts = nopts;
	for (size_t i = 0; i < nopts; i++) {
		m->opts[i].key = strdup(opts[i].key);
		m->opts[i].value = strdup(opts[i].value);
		if (m->opts[i].key == NULL || m->opts[i].value == NULL)
			return -1;
	}
	return 0;
}

/*
 * Load the plugin file open at fd (at offset 0; path names it in errors)
 * into a new module with no references: the file checked and read are the
 * one behind fd, whatever path says now.  The label names it in process
 * titles.  The caller keeps fd.  On error, returns NULL and err says what
 * is wrong with the file.
 */
struct module *
module_open(int fd, const char *path, const char *label, size_t file_max,
    const struct route_option *opts, size_t nopts, char *err, size_t errlen)
{
	struct module	*m;
	struct stat	 st;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return NULL;
	}
	if ((uintmax_t)st.st_size > file_max) {
		snprintf(err, errlen, "%s: %jd bytes, over the %zu-byte limit",
		    path, (intmax_t)st.st_size, file_max);
		return NULL;
	}

	if ((m = calloc(1, sizeof *m)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	m->memfd = -1;
	strlcpy(m->label, label, sizeof m->label);
	m->size = (size_t)st.st_size;
	if (module_set_options(m, opts, nopts) == -1) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if ((m->memfd = module_seal(fd, &st, m->label, err, errlen)) == -1)
		goto fail_path;
	if (module_hash(m, err, errlen) == -1)
		goto fail_path;
	return m;

fail_path:
	{
		char	reason[DETAIL_MAX];

		strlcpy(reason, err, sizeof reason);
		snprintf(err, errlen, "%s: %s", path, reason);
	}
fail:
	module_free(m);
	return NULL;
}

/* Free a module with no helpers and no references left. */
void
module_free(struct module *m)
{
	if (m == NULL)
		return;
	pool_free(m->pool);
	if (m->memfd != -1)
		close(m->memfd);
	for (size_t i = 0; i < m->nopts; i++) {
		free((char *)m->opts[i].key);
		free((char *)m->opts[i].value);
	}
	free(m->opts);
	free(m);
}

/*
 * The pids of m's helpers forked and not yet reaped, at most max; returns
 * how many.
 */
u_int
module_pids(const struct module *m, pid_t *pids, u_int max)
{
	const struct proc	*p;
	u_int			 n = 0;

	for (p = pool_first(m); p != NULL && n < max; p = pool_next(p))
		if (p->pid != 0)
			pids[n++] = p->pid;
	return n;
}

/* The name of a state, for status. */
const char *
module_state_name(enum module_state st)
{
	switch (st) {
	case MODULE_HELD:
		return "held";
	case MODULE_RETIRED:
		return "retired";
	case MODULE_DEAD:
		return "dead";
	}
	return "unknown";
}

/* The drain cap of m's retirement passed: its calls end, its helpers go. */
void
module_capped(void *arg)
{
	struct module	*m = arg;
	char		 why[DETAIL_MAX];

	snprintf(why, sizeof why, "version retired and its %d ms drain cap "
	    "passed", m->drain_ms);
	pool_cap(m, why);
}

/*
 * One more holder.  A retired version held again is HELD once more: back
 * in the registry (the caller checked that the key is free), its cap gone.
 */
void
module_hold(struct module *m)
{
	struct engine	*e = m->engine;

	m->holders++;
	if (m->state != MODULE_RETIRED)
		return;
	loop_timer_cancel(e->loop, &m->cap);
	TAILQ_REMOVE(&e->retired, m, lentry);
	RB_INSERT(module_tree, &e->modules, m);
	m->state = MODULE_HELD;
	pool_revive(m);
}

/*
 * A holder lets go.  The last one retires m: out of the registry, idle
 * helpers stopped, and the calls still on it given cap_ms (0: no cap)
 * before they are cut.
 */
void
module_release(struct module *m, int cap_ms)
{
	struct engine	*e = m->engine;

	assert(m->state == MODULE_HELD && m->holders > 0);
	if (--m->holders > 0)
		return;
	RB_REMOVE(module_tree, &e->modules, m);
	TAILQ_INSERT_TAIL(&e->retired, m, lentry);
	m->state = MODULE_RETIRED;
	if (cap_ms > 0 && !e->closing) {
		m->drain_ms = cap_ms;
		loop_timer_at(e->loop, &m->cap, loop_now() +
		    (uint64_t)cap_ms * MS_NS);
	}
	pool_retire(m);
	module_settle(m);
}

/* A call was made on m. */
void
module_call_begin(struct module *m)
{
	m->ncalls++;
}

/* A call on m is gone. */
void
module_call_end(struct module *m)
{
	assert(m->ncalls > 0);
	m->ncalls--;
	module_settle(m);
}

/* A retired version with no call and no helper left is DEAD. */
void
module_settle(struct module *m)
{
	struct engine	*e = m->engine;

	if (m->state != MODULE_RETIRED || m->ncalls > 0 || !pool_empty(m))
		return;
	loop_timer_cancel(e->loop, &m->cap);
	TAILQ_REMOVE(&e->retired, m, lentry);
	TAILQ_INSERT_TAIL(&e->dead, m, lentry);
	m->state = MODULE_DEAD;
}
