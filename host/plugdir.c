/* SPDX-License-Identifier: ISC */
/*
 * The plugins directory: each regular file NAME.so is channel NAME.
 *
 * Correctness never depends on inotify.  An event, SIGHUP (plugdir_scan)
 * and a slow timer all do the same thing: an idempotent rescan comparing
 * each file's identity (device, inode, size, mtime, owner, mode) with the
 * one last deployed.  A changed file is deployed once it is complete: at
 * once when the writer closed it (IN_CLOSE_WRITE) or renamed it into place
 * (IN_MOVED_TO), otherwise once its identity has held still for settle_ms
 * and nobody has it open for writing (a read lease would be refused).  So
 * cp in place, rename, install, editors' save dances and slow writers all
 * work, and a missed or overflowed event costs only the timer's delay.
 *
 * Trust works like sshd's StrictModes: with strict on, the directory, each
 * of its ancestors up to / (unless sticky, as /tmp is) and each plugin must
 * be owned by root or by us and writable by nobody else.  A plugin is
 * checked once, on the descriptor it is then read from, so what is checked
 * is what is deployed.  A symbolic link is read and followed here, one
 * component at a time, never by the kernel: it must not leave the
 * directory, and each subdirectory it passes through is checked too.
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "route-host.h"

#define PLUGDIR_IMMEDIATE_MAX	64
#define PLUGDIR_LINKS_MAX	16	/* symbolic links followed per file */
#define PLUGDIR_DEPTH_MAX	16	/* subdirectories deep */

/* What a file is, as far as deciding whether it changed. */
struct plugdir_id {
	dev_t		dev;
	ino_t		ino;
	off_t		size;
	struct timespec	mtime;
	uid_t		uid;
	mode_t		mode;
};

/* One name in the directory. */
struct plugdir_entry {
	RB_ENTRY(plugdir_entry)	 entry;
	char			 file[NAME_MAX + 1];
	struct channel		*channel;
	struct plugdir_id	 deployed;	/* last tried */
	bool			 tried;
	struct plugdir_id	 seen;		/* settling towards */
	uint64_t		 seen_at;
	bool			 settling;
	bool			 ignored;	/* not a channel; said once */
	char			 refusal[DETAIL_MAX];	/* said once */
	bool			 present;
};

RB_HEAD(plugdir_tree, plugdir_entry);

struct plugdir {
	struct engine		*engine;
	struct plugdir_config	 conf;
	char			 path[PATH_MAX];
	struct watch		 inw;		/* inotify */
	struct timer		 timer;		/* settle and rescan */
	dev_t			 dev;
	ino_t			 ino;
	char			 direrror[DETAIL_MAX];
	struct plugdir_tree	 entries;
	log_cb			 log;
	void			*logarg;
};

/* Order entries by file name. */
static int
plugdir_cmp(struct plugdir_entry *a, struct plugdir_entry *b)
{
	return strcmp(a->file, b->file);
}

RB_GENERATE_STATIC(plugdir_tree, plugdir_entry, entry, plugdir_cmp);

/* Log a line through the owner's callback. */
static void __attribute__((format(printf, 3, 4)))
plugdir_log(struct plugdir *pd, int prio, const char *fmt, ...)
{
	char	line[DETAIL_MAX * 2];
	va_list	ap;

	if (pd->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	pd->log(pd->logarg, prio, line);
}

/* The defaults: strict, 250 ms to settle, rescan every 5 s, drain 30 s. */
void
plugdir_defaults(struct plugdir_config *conf)
{
	memset(conf, 0, sizeof *conf);
	conf->strict = true;
	conf->settle_ms = 250;
	conf->rescan_ms = 5000;
	conf->drain_ms = 30000;
}

/* True when name (without .so) is a sane channel name. */
bool
plugdir_channel_name_ok(const char *name)
{
	size_t	n = strlen(name);

	if (n == 0 || n >= PLUGIN_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && strchr("._-",
		    name[i]) == NULL)
			return false;
	return true;
}

/* True when two identities are the same file in the same state. */
static bool
plugdir_same(const struct plugdir_id *a, const struct plugdir_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec && a->uid == b->uid &&
	    a->mode == b->mode;
}

/*
 * Why strict mode refuses st (NULL when it does not).  With sticky, a
 * sticky directory may be writable by others: they cannot rename or remove
 * what is not theirs.
 */
static const char *
plugdir_untrusted(const struct plugdir *pd, const struct stat *st,
    bool sticky, char *buf, size_t len)
{
	if (!pd->conf.strict)
		return NULL;
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(buf, len, "owned by uid %ld, neither root nor us",
		    (long)st->st_uid);
		return buf;
	}
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(sticky &&
	    S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX))) {
		snprintf(buf, len, "group- or world-writable (mode %04o)",
		    (unsigned)(st->st_mode & 07777));
		return buf;
	}
	return NULL;
}

/* True when someone has fd's file open for writing: a lease is refused. */
static bool
plugdir_being_written(int fd)
{
	if (fcntl(fd, F_SETLEASE, F_RDLCK) == -1)
		return errno == EAGAIN;
	(void)fcntl(fd, F_SETLEASE, F_UNLCK);
	return false;
}

/* Say (once per distinct reason) why an entry is refused. */
static void
plugdir_refuse(struct plugdir *pd, struct plugdir_entry *en, const char *why)
{
	if (strcmp(en->refusal, why) == 0)
		return;
	strlcpy(en->refusal, why, sizeof en->refusal);
	plugdir_log(pd, LOG_ERR, "%s/%s: refused: %s", pd->path, en->file,
	    why);
	if (en->channel != NULL)
		strlcpy(en->channel->error, why, sizeof en->channel->error);
}

/* The absolute path of the directory open at fd, or "" (no /proc). */
static void
plugdir_fd_path(int fd, char *path, size_t len)
{
	char	proc[64];
	ssize_t	n;

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if ((n = readlink(proc, path, len - 1)) <= 0 || path[0] != '/')
		n = 0;
	path[n] = '\0';
}

/*
 * Why strict mode refuses an ancestor of the directory open at fd (NULL
 * when it does not): each, up to /, must be owned by root or us and
 * writable by nobody else, unless it is sticky.  Walked through "..",
 * from the directory itself, so these are the directory's real ancestors.
 */
static const char *
plugdir_ancestors(const struct plugdir *pd, int fd, char *buf, size_t len)
{
	struct stat	 st, up;
	const char	*why = NULL;
	char		 path[PATH_MAX], reason[DETAIL_MAX];
	int		 cur = fd, next;

	if (!pd->conf.strict)
		return NULL;
	if (fstat(fd, &st) == -1) {
		snprintf(buf, len, "%s", strerror(errno));
		return buf;
	}
	for (;;) {
		next = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (next == -1 || fstat(next, &up) == -1) {
			snprintf(buf, len, "ancestor: %s", strerror(errno));
			why = buf;
			if (next != -1)
				close(next);
			break;
		}
		if (cur != fd)
			close(cur);
		cur = next;
		if (up.st_dev == st.st_dev && up.st_ino == st.st_ino)
			break;		/* "/" is its own parent */
		if (plugdir_untrusted(pd, &up, true, reason, sizeof reason) !=
		    NULL) {
			plugdir_fd_path(cur, path, sizeof path);
			snprintf(buf, len, "ancestor %s: %s", path[0] != '\0' ?
			    path : "(unknown)", reason);
			why = buf;
			break;
		}
		st = up;
	}
	if (cur != fd)
		close(cur);
	return why;
}

/*
 * Take the first component of the relative path rest into name (at most
 * NAME_MAX bytes), leaving the remainder in rest; true when it was the
 * last one.  -1 when it is too long.
 */
static int
plugdir_component(char *rest, char *name)
{
	char	*p = rest + strspn(rest, "/");
	size_t	 n = strcspn(p, "/");
	int	 last;

	if (n > NAME_MAX)
		return -1;
	memcpy(name, p, n);
	name[n] = '\0';
	p += n;
	last = *p == '\0';
	memmove(rest, p, strlen(p) + 1);
	return last;
}

/*
 * Go down into subdirectory name of fds[*depth] on a symbolic link's way,
 * if it is one and trusted; walked names it from the directory.  -1 with
 * the refusal in buf.
 */
static int
plugdir_subdir(struct plugdir *pd, int *fds, u_int *depth, const char *name,
    char *walked, size_t wlen, struct stat *st, char *buf, size_t len)
{
	char	reason[DETAIL_MAX];
	int	fd;

	if (*depth == PLUGDIR_DEPTH_MAX) {
		snprintf(buf, len, "too many subdirectories deep");
		return -1;
	}
	if (walked[0] != '\0')
		strlcat(walked, "/", wlen);
	strlcat(walked, name, wlen);
	fd = openat(fds[*depth], name, O_PATH | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 || fstat(fd, st) == -1) {
		snprintf(buf, len, "%s: %s", walked, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	fds[++*depth] = fd;
	if (!S_ISDIR(st->st_mode)) {
		snprintf(buf, len, "%s: not a directory", walked);
		return -1;
	}
	if (plugdir_untrusted(pd, st, false, reason, sizeof reason) != NULL) {
		snprintf(buf, len, "%s: %s", walked, reason);
		return -1;
	}
	return 0;
}

/*
 * Open the file an entry stands for, beneath the directory open at dirfd,
 * and check it on that descriptor: the one check, so the file checked is
 * the file read.  The last component is opened with O_NOFOLLOW; a
 * symbolic link is read and followed here, one component at a time, and
 * must stay inside the directory (an absolute one through the directory's
 * own path); each subdirectory on the way must be trusted.  Returns the
 * file open for reading with st filled in, or -1 with a refusal in buf.
 */
static int
plugdir_openat(struct plugdir *pd, int dirfd, const char *file,
    struct stat *st, char *buf, size_t len)
{
	char		 rest[PATH_MAX], target[PATH_MAX], walked[PATH_MAX];
	char		 name[NAME_MAX + 1], dir[PATH_MAX], shown[DETAIL_MAX];
	const char	*prefix[2];
	char		*slash;
	int		 fds[PLUGDIR_DEPTH_MAX + 1], fd = -1, last;
	u_int		 depth = 0, links = 0;
	ssize_t		 n;
	size_t		 k;

	fds[0] = dirfd;
	walked[0] = target[0] = '\0';
	strlcpy(rest, file, sizeof rest);
	for (;;) {
		if ((last = plugdir_component(rest, name)) == -1) {
			snprintf(buf, len, "name too long");
			goto fail;
		}
		if (name[0] == '\0' || strcmp(name, ".") == 0 ||
		    strcmp(name, "..") == 0) {
			if (strcmp(name, "..") == 0) {
				if (depth == 0)
					goto leaves;
				close(fds[depth--]);
				if ((slash = strrchr(walked, '/')) == NULL)
					slash = walked;
				*slash = '\0';
			}
			if (!last)
				continue;
			snprintf(buf, len, "not a regular file");
			goto fail;
		}
		if (last) {
			fd = openat(fds[depth], name, O_RDONLY | O_NOFOLLOW |
			    O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
			if (fd != -1)
				break;
			if (errno != ELOOP) {
				snprintf(buf, len, "%s", strerror(errno));
				goto fail;
			}
		} else {
			if (fstatat(fds[depth], name, st, AT_SYMLINK_NOFOLLOW) ==
			    -1) {
				snprintf(buf, len, "%s%s%s: %s", walked,
				    walked[0] != '\0' ? "/" : "", name,
				    strerror(errno));
				goto fail;
			}
			if (!S_ISLNK(st->st_mode)) {
				if (plugdir_subdir(pd, fds, &depth, name,
				    walked, sizeof walked, st, buf, len) == -1)
					goto fail;
				continue;
			}
		}

		/* A symbolic link: read it, and walk its target instead. */
		if (++links > PLUGDIR_LINKS_MAX) {
			snprintf(buf, len, "too many symbolic links");
			goto fail;
		}
		n = readlinkat(fds[depth], name, target, sizeof target - 1);
		if (n <= 0 || (size_t)n >= sizeof target - 1) {
			snprintf(buf, len, "symbolic link: %s", n == -1 ?
			    strerror(errno) : "bad length");
			goto fail;
		}
		target[n] = '\0';
		if (target[0] == '/') {
			/* Only into the directory, by its own path. */
			plugdir_fd_path(dirfd, dir, sizeof dir);
			prefix[0] = dir;
			prefix[1] = pd->path[0] == '/' ? pd->path : "";
			for (k = 0; k < 2; k++) {
				n = (ssize_t)strlen(prefix[k]);
				while (n > 0 && prefix[k][n - 1] == '/')
					n--;
				if (n > 0 && strncmp(target, prefix[k],
				    (size_t)n) == 0 && (target[n] == '/' ||
				    target[n] == '\0'))
					break;
			}
			if (k == 2)
				goto leaves;
			memmove(target, target + n, strlen(target + n) + 1);
			while (depth > 0)
				close(fds[depth--]);
			walked[0] = '\0';
		}
		if (!last && (strlcat(target, "/", sizeof target) >=
		    sizeof target || strlcat(target, rest, sizeof target) >=
		    sizeof target)) {
			snprintf(buf, len, "symbolic link: too long");
			goto fail;
		}
		strlcpy(rest, target, sizeof rest);
	}
	while (depth > 0)
		close(fds[depth--]);
	if (fstat(fd, st) == -1) {
		snprintf(buf, len, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(buf, len, "not a regular file");
		close(fd);
		return -1;
	}
	if (plugdir_untrusted(pd, st, false, buf, len) != NULL) {
		close(fd);
		return -1;
	}
	return fd;

leaves:
	vis_string(shown, sizeof shown, target);
	snprintf(buf, len, "symbolic link leaves the directory (to %s)", shown);
fail:
	while (depth > 0)
		close(fds[depth--]);
	return -1;
}

/* Deploy an entry's file, open at fd, now. */
static void
plugdir_deploy(struct plugdir *pd, struct plugdir_entry *en, int fd,
    const char *path)
{
	char	name[PLUGIN_NAME_MAX];

	en->deployed = en->seen;
	en->tried = true;
	en->settling = false;
	en->refusal[0] = '\0';
	if (en->channel == NULL) {
		strlcpy(name, en->file, sizeof name);
		name[strlen(en->file) - 3] = '\0';
		en->channel = channel_new(pd->engine, name, pd->conf.drain_ms,
		    pd->log, pd->logarg);
		if (en->channel == NULL) {
			plugdir_log(pd, LOG_ERR, "%s: out of memory", en->file);
			return;
		}
	}
	if (pd->conf.configure != NULL) {
		struct channel_conf	cc;

		memset(&cc, 0, sizeof cc);
		cc.drain_ms = pd->conf.drain_ms;
		pd->conf.configure(pd->conf.configure_arg, en->channel->name,
		    &cc);
		if (channel_configure(en->channel, &cc) == -1) {
			plugdir_log(pd, LOG_ERR, "%s: out of memory", en->file);
			return;
		}
	}
	(void)channel_deploy_fd(en->channel, fd, path);
}

/* Look at one entry of the directory open at dirfd during a scan. */
static void
plugdir_visit(struct plugdir *pd, int dirfd, const char *file,
    bool immediate, uint64_t now)
{
	struct plugdir_entry	 key, *en;
	struct plugdir_id	 id;
	struct stat		 st;
	char			 path[PATH_MAX], buf[DETAIL_MAX], name[NAME_MAX + 1];
	char			 shown[4 * NAME_MAX + 1];
	size_t			 n = strlen(file);
	int			 fd;

	if (file[0] == '.')
		return;		/* ., .., and editors' dotfiles */
	strlcpy(key.file, file, sizeof key.file);
	if ((en = RB_FIND(plugdir_tree, &pd->entries, &key)) == NULL) {
		if ((en = calloc(1, sizeof *en)) == NULL)
			return;
		strlcpy(en->file, file, sizeof en->file);
		RB_INSERT(plugdir_tree, &pd->entries, en);
		strlcpy(name, file, sizeof name);
		/* Whoever may write the directory chose these bytes. */
		vis_string(shown, sizeof shown, file);
		if (n <= 3 || strcmp(file + n - 3, ".so") != 0) {
			en->ignored = true;
			plugdir_log(pd, LOG_DEBUG, "%s/%s: ignored: not "
			    "NAME.so", pd->path, shown);
		} else if (name[n - 3] = '\0', !plugdir_channel_name_ok(name)) {
			en->ignored = true;
			vis_string(shown, sizeof shown, name);
			snprintf(en->refusal, sizeof en->refusal, "'%s' is "
			    "not a channel name (1-63 of A-Z a-z 0-9 . _ -, "
			    "starting with a letter or digit)", shown);
			plugdir_log(pd, LOG_ERR, "%s/%s.so: refused: %s",
			    pd->path, shown, en->refusal);
		}
	}
	en->present = true;
	if (en->ignored)
		return;

	if ((fd = plugdir_openat(pd, dirfd, file, &st, buf, sizeof buf)) ==
	    -1) {
		plugdir_refuse(pd, en, buf);
		return;
	}
	snprintf(path, sizeof path, "%s/%s", pd->path, file);
	memset(&id, 0, sizeof id);
	id.dev = st.st_dev;
	id.ino = st.st_ino;
	id.size = st.st_size;
	id.mtime = st.st_mtim;
	id.uid = st.st_uid;
	id.mode = st.st_mode;
	if (en->tried && plugdir_same(&id, &en->deployed)) {
		en->settling = false;
		goto out;
	}
	if (!en->settling || !plugdir_same(&id, &en->seen)) {
		en->seen = id;
		en->seen_at = now;
		en->settling = true;
	}
	if (!immediate &&
	    now - en->seen_at < (uint64_t)pd->conf.settle_ms * MS_NS)
		goto out;
	if (plugdir_being_written(fd)) {
		en->seen_at = now;	/* look again after another settle */
		goto out;
	}
	plugdir_deploy(pd, en, fd, path);
out:
	close(fd);
}

/* Arm the timer: the earliest settling file, else the slow rescan. */
static void
plugdir_arm(struct plugdir *pd, uint64_t now)
{
	struct plugdir_entry	*en;
	uint64_t		 next = now + (uint64_t)pd->conf.rescan_ms * MS_NS;
	uint64_t		 at;

	RB_FOREACH(en, plugdir_tree, &pd->entries) {
		if (!en->settling)
			continue;
		at = en->seen_at + (uint64_t)pd->conf.settle_ms * MS_NS;
		if (at < next)
			next = at;
	}
	if (next <= now)
		next = now + 1;
	loop_timer_at(engine_loop(pd->engine), &pd->timer, next);
}

/* Say (once per distinct reason) what is wrong with the directory. */
static void
plugdir_dir_error(struct plugdir *pd, const char *why)
{
	if (strcmp(pd->direrror, why) == 0)
		return;
	strlcpy(pd->direrror, why, sizeof pd->direrror);
	if (why[0] != '\0')
		plugdir_log(pd, LOG_ERR, "%s: %s; channels keep their current "
		    "versions", pd->path, why);
}

/* Rescan, treating the names in immediate as complete files. */
static void
plugdir_rescan(struct plugdir *pd, char immediate[][NAME_MAX + 1],
    size_t nimmediate)
{
	struct plugdir_entry	*en, *next;
	struct dirent		*de;
	struct stat		 st;
	const char		*why;
	char			 buf[DETAIL_MAX];
	uint64_t		 now = engine_now();
	bool			 imm;
	DIR			*d;
	int			 fd;

	fd = open(pd->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || fstat(fd, &st) == -1) {
		snprintf(buf, sizeof buf, "cannot read: %s", strerror(errno));
		if (fd != -1)
			close(fd);
		plugdir_dir_error(pd, buf);
		plugdir_arm(pd, now);
		return;
	}
	if ((why = plugdir_untrusted(pd, &st, false, buf, sizeof buf)) != NULL ||
	    (why = plugdir_ancestors(pd, fd, buf, sizeof buf)) != NULL) {
		close(fd);
		plugdir_dir_error(pd, why);
		plugdir_arm(pd, now);
		return;
	}
	plugdir_dir_error(pd, "");
	if (st.st_dev != pd->dev || st.st_ino != pd->ino) {
		/* A new directory at the path: watch it instead. */
		(void)inotify_add_watch(pd->inw.fd, pd->path, IN_CLOSE_WRITE |
		    IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
		    IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF |
		    IN_ONLYDIR | IN_EXCL_UNLINK);
		pd->dev = st.st_dev;
		pd->ino = st.st_ino;
	}
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		plugdir_arm(pd, now);
		return;
	}
	RB_FOREACH(en, plugdir_tree, &pd->entries)
		en->present = false;
	while ((de = readdir(d)) != NULL) {
		imm = false;
		for (size_t i = 0; i < nimmediate && !imm; i++)
			imm = strcmp(immediate[i], de->d_name) == 0;
		plugdir_visit(pd, dirfd(d), de->d_name, imm, now);
	}
	closedir(d);

	RB_FOREACH_SAFE(en, plugdir_tree, &pd->entries, next) {
		if (en->present)
			continue;
		if (en->channel != NULL)
			plugdir_log(pd, LOG_INFO, "%s/%s: removed", pd->path,
			    en->file);
		channel_free(en->channel);
		RB_REMOVE(plugdir_tree, &pd->entries, en);
		free(en);
	}
	plugdir_arm(pd, now);
}

/*
 * New settings (a reloaded configuration): every channel deploys again
 * with them; a channel whose settings did not change finds its version
 * already active, and nothing happens.
 */
void
plugdir_reconfigure(struct plugdir *pd, const struct plugdir_config *conf)
{
	struct plugdir_entry	*en;

	pd->conf = *conf;
	RB_FOREACH(en, plugdir_tree, &pd->entries)
		if (en->tried) {
			en->tried = false;
			en->seen = en->deployed;
			en->seen_at = 0;
			en->settling = true;
		}
	plugdir_scan(pd);
}

/* Rescan everything now (SIGHUP, or a caller that knows better). */
void
plugdir_scan(struct plugdir *pd)
{
	plugdir_rescan(pd, NULL, 0);
}

/* inotify has news: note which files are complete, then rescan. */
static void
plugdir_inotify(struct watch *w, uint32_t events)
{
	struct plugdir			*pd = w->arg;
	char				 buf[65536]
					    __attribute__((aligned(8)));
	char				 immediate[PLUGDIR_IMMEDIATE_MAX]
					    [NAME_MAX + 1];
	const struct inotify_event	*ev;
	size_t				 nimm = 0;
	ssize_t				 n;
	bool				 any = false;

	(void)events;
	while ((n = read(w->fd, buf, sizeof buf)) > 0) {
		any = true;
		for (char *p = buf; p < buf + n; p += sizeof *ev + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->len == 0 || nimm == PLUGDIR_IMMEDIATE_MAX ||
			    (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) == 0)
				continue;
			strlcpy(immediate[nimm++], ev->name, NAME_MAX + 1);
		}
	}
	if (any)
		plugdir_rescan(pd, immediate, nimm);
}

/* A file settled, or the slow rescan is due. */
static void
plugdir_timer(void *arg)
{
	plugdir_scan(arg);
}

/*
 * Watch the directory at path and deploy every channel in it.  The first
 * scan happens before this returns; the loads it starts finish in
 * engine_run.  NULL with err set on failure.
 */
struct plugdir *
plugdir_open(struct engine *e, const char *path,
    const struct plugdir_config *conf, log_cb log, void *logarg, char *err,
    size_t errlen)
{
	struct plugdir	*pd;

	if ((pd = calloc(1, sizeof *pd)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pd->engine = e;
	pd->conf = *conf;
	pd->log = log;
	pd->logarg = logarg;
	pd->inw.fd = -1;
	loop_timer_init(&pd->timer, plugdir_timer, pd);
	RB_INIT(&pd->entries);
	if (strlcpy(pd->path, path, sizeof pd->path) >= sizeof pd->path) {
		snprintf(err, errlen, "%s: path too long", path);
		goto fail;
	}
	pd->inw.cb = plugdir_inotify;
	pd->inw.arg = pd;
	if ((pd->inw.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (inotify_add_watch(pd->inw.fd, path, IN_ONLYDIR) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (engine_watch(e, &pd->inw, EPOLLIN) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	plugdir_scan(pd);
	return pd;

fail:
	plugdir_close(pd);
	return NULL;
}

/* Stop watching; every channel retires (calls in flight still finish). */
void
plugdir_close(struct plugdir *pd)
{
	struct plugdir_entry	*en;

	if (pd == NULL)
		return;
	while ((en = RB_ROOT(&pd->entries)) != NULL) {
		channel_free(en->channel);
		RB_REMOVE(plugdir_tree, &pd->entries, en);
		free(en);
	}
	if (pd->inw.fd != -1) {
		engine_unwatch(pd->engine, &pd->inw);
		close(pd->inw.fd);
	}
	loop_timer_cancel(engine_loop(pd->engine), &pd->timer);
	free(pd);
}

/* The channel called name, or NULL. */
struct channel *
plugdir_channel(struct plugdir *pd, const char *name)
{
	struct plugdir_entry	key, *en;

	if (strlcpy(key.file, name, sizeof key.file) >= sizeof key.file ||
	    strlcat(key.file, ".so", sizeof key.file) >= sizeof key.file)
		return NULL;
	en = RB_FIND(plugdir_tree, &pd->entries, &key);
	return en == NULL ? NULL : en->channel;
}

/* Route a call to the channel called name. */
int
plugdir_call(struct plugdir *pd, const char *name, const void *body,
    size_t len, int timeout_ms, engine_cb cb, void *arg)
{
	struct channel	*ch = plugdir_channel(pd, name);
	char		 why[DETAIL_MAX];

	if (ch == NULL || ch->active == NULL) {
		snprintf(why, sizeof why, "no channel '%.64s' in %s", name,
		    pd->path);
		return engine_reject(pd->engine, ST_NO_SUCH_CHANNEL, why, cb,
		    arg);
	}
	return channel_call(ch, body, len, timeout_ms, cb, arg);
}

/* Call fn for every channel with a slot, in name order. */
void
plugdir_foreach(struct plugdir *pd, void (*fn)(struct channel *, void *),
    void *arg)
{
	struct plugdir_entry	*en;

	RB_FOREACH(en, plugdir_tree, &pd->entries)
		if (en->channel != NULL)
			fn(en->channel, arg);
}

/*
 * Call fn with each file refused that no channel holds (a new channel's
 * untrusted file, a name that is not a channel's): its name, escaped,
 * and why.
 */
void
plugdir_foreach_refused(struct plugdir *pd, void (*fn)(const char *,
    const char *, void *), void *arg)
{
	struct plugdir_entry	*en;
	char			 shown[4 * NAME_MAX + 1];

	RB_FOREACH(en, plugdir_tree, &pd->entries) {
		if (en->refusal[0] == '\0' || en->channel != NULL ||
		    !en->present)
			continue;
		vis_string(shown, sizeof shown, en->file);
		fn(shown, en->refusal, arg);
	}
}

/*
 * How many channels are on their way to a first version: a file never
 * tried that is settling, or a version loading for a channel with none.
 */
u_int
plugdir_loading(const struct plugdir *pd)
{
	struct plugdir_entry	*en;
	u_int			 n = 0;

	RB_FOREACH(en, plugdir_tree, (struct plugdir_tree *)&pd->entries) {
		if (en->ignored)
			continue;
		if (en->channel != NULL && en->channel->active != NULL)
			continue;
		if ((en->settling && !en->tried) || (en->channel != NULL &&
		    channel_loading(en->channel) != NULL))
			n++;
	}
	return n;
}

/* The directory's path. */
const char *
plugdir_path(const struct plugdir *pd)
{
	return pd->path;
}
