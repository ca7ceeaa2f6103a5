/* SPDX-License-Identifier: ISC */
/*
 * route-host.conf(5): the daemon's settings and per-channel options.
 *
 *	plugins /etc/route-host/plugins
 *	channel orders {
 *		timeout 200
 *		option field=region
 *	}
 *
 * One setting per line, # starts a comment.  An error names the file, the
 * line and what is wrong; a bad file is refused whole.
 */

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <libutil.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route-host.h"

/* Built-in settings, before any file or flag. */
void
conf_defaults(struct conf *c)
{
	long	n = sysconf(_SC_NPROCESSORS_ONLN);

	memset(c, 0, sizeof *c);
	strlcpy(c->plugins, PLUGINDIR, sizeof c->plugins);
	strlcpy(c->socket, DEFAULT_SOCKET, sizeof c->socket);
	c->timeout_ms = DEFAULT_TIMEOUT_MS;
	c->helpers = n < 1 ? 1 : n > 16 ? 16 : (u_int)n;
	c->drain_ms = 30000;
	c->memory_mb = DEFAULT_MEMORY_LIMIT >> 20;
	strlcpy(c->helper_user, "nobody", sizeof c->helper_user);
	c->socket_uid = (uid_t)-1;
	c->socket_gid = (gid_t)-1;
	c->socket_mode = 0660;
	c->sandbox = 1;
	c->strict = true;
	c->window = 1024;
	c->max_in_flight = 65536;
	c->max_connections = DEFAULT_MAX_CONNECTIONS;
	c->window_bytes = DEFAULT_WINDOW_BYTES;
	c->max_in_flight_bytes = DEFAULT_MAX_IN_FLIGHT_BYTES;
	c->crash.budget = CRASH_BUDGET;
	c->crash.backoff_min_ms = CRASH_BACKOFF_MIN_MS;
	c->crash.backoff_max_ms = CRASH_BACKOFF_MAX_MS;
	c->crash.memo = CRASH_MEMO;
	c->crash.memo_ttl_ms = CRASH_MEMO_TTL_MS;
}

/* Overlay the crash settings set in src (non-zero) on dst. */
void
conf_crash_merge(struct crash_conf *dst, const struct crash_conf *src)
{
	if (src->budget != 0)
		dst->budget = src->budget;
	if (src->backoff_min_ms != 0)
		dst->backoff_min_ms = src->backoff_min_ms;
	if (src->backoff_max_ms != 0)
		dst->backoff_max_ms = src->backoff_max_ms;
	if (src->memo != 0)
		dst->memo = src->memo;
	if (src->memo_ttl_ms != 0)
		dst->memo_ttl_ms = src->memo_ttl_ms;
}

/* Free what conf_load allocated. */
void
conf_free(struct conf *c)
{
	for (size_t i = 0; i < c->nchannels; i++) {
		for (size_t k = 0; k < c->channels[i].nopts; k++) {
			free((char *)c->channels[i].opts[k].key);
			free((char *)c->channels[i].opts[k].value);
		}
		free(c->channels[i].opts);
	}
	free(c->channels);
	c->channels = NULL;
	c->nchannels = 0;
}

/* Parse a number in [lo, hi]; -1 with err set. */
static int
conf_number(const char *s, long long lo, long long hi, long long *out,
    char *err, size_t errlen)
{
	const char	*errstr;

	if (s == NULL) {
		snprintf(err, errlen, "missing number");
		return -1;
	}
	*out = strtonum(s, lo, hi, &errstr);
	if (errstr != NULL) {
		snprintf(err, errlen, "'%s' is %s (%lld to %lld)", s, errstr,
		    lo, hi);
		return -1;
	}
	return 0;
}

/*
 * Parse a size in bytes in [lo, hi]: a number, or with a suffix k, m or g
 * (KiB, MiB, GiB; expand_number(3)); -1 with err set.
 */
static int
conf_bytes(const char *s, uint64_t lo, uint64_t hi, uint64_t *out,
    char *err, size_t errlen)
{
	if (s == NULL) {
		snprintf(err, errlen, "missing size");
		return -1;
	}
	if (expand_number(s, out) == -1 || *out < lo || *out > hi) {
		snprintf(err, errlen, "'%s' is not a size from %llu to %llu "
		    "bytes (a suffix k, m or g counts KiB, MiB or GiB)", s,
		    (unsigned long long)lo, (unsigned long long)hi);
		return -1;
	}
	return 0;
}

/* A user's id from its name or number, as chown(1) takes it; -1 if none. */
static int
conf_uid(const char *s, uid_t *out)
{
	struct passwd	*pw;
	const char	*errstr;
	long long	 n;

	if ((pw = getpwnam(s)) != NULL) {
		*out = pw->pw_uid;
		return 0;
	}
	n = strtonum(s, 0, (uid_t)-2, &errstr);
	if (errstr != NULL)
		return -1;
	*out = (uid_t)n;
	return 0;
}

/* A group's id from its name or number; -1 if none. */
static int
conf_gid(const char *s, gid_t *out)
{
	struct group	*gr;
	const char	*errstr;
	long long	 n;

	if ((gr = getgrnam(s)) != NULL) {
		*out = gr->gr_gid;
		return 0;
	}
	n = strtonum(s, 0, (gid_t)-2, &errstr);
	if (errstr != NULL)
		return -1;
	*out = (gid_t)n;
	return 0;
}

/* Parse socket-mode's value: 1 to 4 octal digits, at most 0777. */
static int
conf_mode(const char *s, mode_t *out, char *err, size_t errlen)
{
	size_t		n = strlen(s);
	unsigned long	m;

	if (n == 0 || n > 4 || strspn(s, "01234567") != n ||
	    (m = strtoul(s, NULL, 8)) > 0777) {
		snprintf(err, errlen, "socket-mode '%s': expected an octal "
		    "mode from 0000 to 0777", s);
		return -1;
	}
	*out = (mode_t)m;
	return 0;
}

/*
 * ADDRESS:PORT as a socket address: an IPv4 address or a bracketed IPv6
 * one (never a name: no lookup at start), and a port from 1 to 65535.
 * -1 with err set.
 */
int
conf_address(const char *s, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errlen)
{
	struct addrinfo	 hints, *res;
	char		 host[64];
	const char	*colon = strrchr(s, ':');
	size_t		 hlen;
	long long	 port;
	int		 rc;

	if (colon == NULL || colon == s) {
		snprintf(err, errlen, "expected ADDRESS:PORT, as "
		    "127.0.0.1:9464 or [::1]:9464");
		return -1;
	}
	hlen = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hlen < 3 || colon[-1] != ']') {
			snprintf(err, errlen, "an IPv6 address goes in "
			    "brackets: [::1]:9464");
			return -1;
		}
		s++;
		hlen -= 2;
	}
	if (hlen >= sizeof host) {
		snprintf(err, errlen, "address too long");
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (s[-1] != '[' && strchr(host, ':') != NULL) {
		snprintf(err, errlen, "an IPv6 address goes in brackets: "
		    "[::1]:9464");
		return -1;
	}
	if (conf_number(colon + 1, 1, 65535, &port, err, errlen) == -1)
		return -1;
	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		snprintf(err, errlen, "'%s' is not an IP address", host);
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Set an allow-uid or allow-gid list from its words (the later line counts). */
static int
conf_allow(struct server_allow *a, bool uids, char **w, size_t nw,
    char *err, size_t errlen)
{
	const char	*key = uids ? "allow-uid" : "allow-gid";
	u_int		 n = 0;

	if (nw < 1) {
		snprintf(err, errlen, "expected '%s %s...'", key,
		    uids ? "USER" : "GROUP");
		return -1;
	}
	if (nw > SERVER_ALLOW_MAX) {
		snprintf(err, errlen, "%s: more than %d values", key,
		    SERVER_ALLOW_MAX);
		return -1;
	}
	for (size_t i = 0; i < nw; i++) {
		if (uids ? conf_uid(w[i], &a->uid[n]) == -1 :
		    conf_gid(w[i], &a->gid[n]) == -1) {
			snprintf(err, errlen, "%s %s: no such %s", key, w[i],
			    uids ? "user" : "group");
			return -1;
		}
		n++;
	}
	if (uids)
		a->nuid = n;
	else
		a->ngid = n;
	return 0;
}

/* Apply a setting valid both globally and in a channel block. */
static int
conf_common(const char *key, const char *val, int *timeout, u_int *helpers,
    int *drain, u_int *memory, int *sandbox, char *err, size_t errlen)
{
	long long	n;

	if (strcmp(key, "timeout") == 0) {
		if (conf_number(val, 1, 3600000, &n, err, errlen) == -1)
			return -1;
		*timeout = (int)n;
	} else if (strcmp(key, "helpers") == 0) {
		if (conf_number(val, 1, 256, &n, err, errlen) == -1)
			return -1;
		*helpers = (u_int)n;
	} else if (strcmp(key, "drain") == 0) {
		if (conf_number(val, 1, 86400000, &n, err, errlen) == -1)
			return -1;
		*drain = (int)n;
	} else if (strcmp(key, "memory-limit") == 0) {
		if (conf_number(val, 16, 65536, &n, err, errlen) == -1)
			return -1;
		*memory = (u_int)n;
	} else if (strcmp(key, "sandbox") == 0) {
		if (strcmp(val, "yes") != 0 && strcmp(val, "no") != 0) {
			snprintf(err, errlen, "sandbox takes yes or no");
			return -1;
		}
		*sandbox = strcmp(val, "yes") == 0 ? 1 : -1;
	} else
		return 1;
	return 0;
}

/*
 * Apply a crash setting, valid globally and in a channel block:
 * crash-budget N, crash-backoff MIN MAX, poison-memo off | SIZE [TTL].
 * 1 when key is none of them.
 */
static int
conf_crash(char **w, size_t nw, struct crash_conf *cc, char *err,
    size_t errlen)
{
	long long	n, m;

	if (strcmp(w[0], "crash-budget") == 0) {
		if (nw != 2) {
			snprintf(err, errlen, "expected 'crash-budget N'");
			return -1;
		}
		if (conf_number(w[1], 1, 100000, &n, err, errlen) == -1)
			return -1;
		cc->budget = (u_int)n;
	} else if (strcmp(w[0], "crash-backoff") == 0) {
		if (nw != 3) {
			snprintf(err, errlen, "expected 'crash-backoff MIN MAX' "
			    "(ms)");
			return -1;
		}
		if (conf_number(w[1], 1, 3600000, &n, err, errlen) == -1 ||
		    conf_number(w[2], 1, 3600000, &m, err, errlen) == -1)
			return -1;
		if (m < n) {
			snprintf(err, errlen, "crash-backoff: MAX %lld is below "
			    "MIN %lld", m, n);
			return -1;
		}
		cc->backoff_min_ms = (u_int)n;
		cc->backoff_max_ms = (u_int)m;
	} else if (strcmp(w[0], "poison-memo") == 0) {
		if (nw == 2 && strcmp(w[1], "off") == 0) {
			cc->memo = -1;
			return 0;
		}
		if (nw != 2 && nw != 3) {
			snprintf(err, errlen, "expected 'poison-memo off' or "
			    "'poison-memo SIZE [TTL]'");
			return -1;
		}
		if (conf_number(w[1], 1, 1 << 20, &n, err, errlen) == -1)
			return -1;
		cc->memo = (int)n;
		if (nw == 3) {
			if (conf_number(w[2], 1, 86400000, &n, err,
			    errlen) == -1)
				return -1;
			cc->memo_ttl_ms = (u_int)n;
		}
	} else
		return 1;
	return 0;
}

/* Add KEY=VALUE to a channel's options. */
static int
conf_option(struct conf_channel *ch, const char *kv, char *err,
    size_t errlen)
{
	struct route_option	*o;
	const char		*eq = strchr(kv, '=');

	if (eq == NULL || eq == kv) {
		snprintf(err, errlen, "option '%s': expected KEY=VALUE", kv);
		return -1;
	}
	if ((o = reallocarray(ch->opts, ch->nopts + 1, sizeof *o)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ch->opts = o;
	o[ch->nopts].key = strndup(kv, (size_t)(eq - kv));
	o[ch->nopts].value = strdup(eq + 1);
	ch->nopts++;
	if (o[ch->nopts - 1].key == NULL || o[ch->nopts - 1].value == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Start a channel block. */
static struct conf_channel *
conf_new_channel(struct conf *c, const char *name, char *err, size_t errlen)
{
	struct conf_channel	*ch;

	if (name == NULL || !plugdir_channel_name_ok(name)) {
		snprintf(err, errlen, "'%s' is not a channel name",
		    name != NULL ? name : "");
		return NULL;
	}
	if (conf_channel(c, name) != NULL) {
		snprintf(err, errlen, "channel %s is configured twice", name);
		return NULL;
	}
	if ((ch = reallocarray(c->channels, c->nchannels + 1,
	    sizeof *ch)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->channels = ch;
	ch = &c->channels[c->nchannels++];
	memset(ch, 0, sizeof *ch);
	strlcpy(ch->name, name, sizeof ch->name);
	return ch;
}

/* Handle one line: its words, and the rest of it after the first word. */
static int
conf_line(struct conf *c, struct conf_channel **in, char **w, size_t nw,
    const char *rest, char *err, size_t errlen)
{
	long long	n;
	int		rc;

	if (nw == 0)
		return 0;
	if (*in != NULL) {
		struct conf_channel	*ch = *in;

		if (strcmp(w[0], "}") == 0 && nw == 1) {
			*in = NULL;
			return 0;
		}
		if (strcmp(w[0], "option") == 0)
			return conf_option(ch, rest, err, errlen);
		if ((rc = conf_crash(w, nw, &ch->crash, err, errlen)) != 1)
			return rc;
		if (nw != 2) {
			snprintf(err, errlen, "expected '%s VALUE'", w[0]);
			return -1;
		}
		rc = conf_common(w[0], w[1], &ch->timeout_ms, &ch->helpers,
		    &ch->drain_ms, &ch->memory_mb, &ch->sandbox, err, errlen);
		if (rc == 1)
			snprintf(err, errlen, "unknown channel setting '%s'",
			    w[0]);
		return rc == 0 ? 0 : -1;
	}
	if (strcmp(w[0], "channel") == 0) {
		if (nw != 3 || strcmp(w[2], "{") != 0) {
			snprintf(err, errlen, "expected 'channel NAME {'");
			return -1;
		}
		*in = conf_new_channel(c, w[1], err, errlen);
		return *in == NULL ? -1 : 0;
	}
	if (strcmp(w[0], "allow-uid") == 0 || strcmp(w[0], "allow-gid") == 0)
		return conf_allow(&c->allow, w[0][6] == 'u', w + 1, nw - 1,
		    err, errlen);
	if ((rc = conf_crash(w, nw, &c->crash, err, errlen)) != 1)
		return rc;
	if (nw != 2) {
		snprintf(err, errlen, "expected '%s VALUE'", w[0]);
		return -1;
	}
	if (strcmp(w[0], "plugins") == 0) {
		if (strlcpy(c->plugins, w[1], sizeof c->plugins) >=
		    sizeof c->plugins) {
			snprintf(err, errlen, "path too long");
			return -1;
		}
	} else if (strcmp(w[0], "socket") == 0) {
		if (strlcpy(c->socket, w[1], sizeof c->socket) >=
		    sizeof c->socket) {
			snprintf(err, errlen, "socket path over %zu bytes",
			    sizeof c->socket - 1);
			return -1;
		}
	} else if (strcmp(w[0], "socket-owner") == 0) {
		if (conf_uid(w[1], &c->socket_uid) == -1) {
			snprintf(err, errlen, "socket-owner %s: no such user",
			    w[1]);
			return -1;
		}
		if (strlcpy(c->socket_owner, w[1], sizeof c->socket_owner) >=
		    sizeof c->socket_owner) {
			snprintf(err, errlen, "user name too long");
			return -1;
		}
	} else if (strcmp(w[0], "socket-group") == 0) {
		if (conf_gid(w[1], &c->socket_gid) == -1) {
			snprintf(err, errlen, "socket-group %s: no such group",
			    w[1]);
			return -1;
		}
		if (strlcpy(c->socket_group, w[1], sizeof c->socket_group) >=
		    sizeof c->socket_group) {
			snprintf(err, errlen, "group name too long");
			return -1;
		}
	} else if (strcmp(w[0], "socket-mode") == 0) {
		if (conf_mode(w[1], &c->socket_mode, err, errlen) == -1)
			return -1;
	} else if (strcmp(w[0], "helper-user") == 0) {
		errno = 0;
		if (getpwnam(w[1]) == NULL) {
			snprintf(err, errlen, "helper-user %s: %s", w[1],
			    errno != 0 ? strerror(errno) : "no such user");
			return -1;
		}
		if (strlcpy(c->helper_user, w[1], sizeof c->helper_user) >=
		    sizeof c->helper_user) {
			snprintf(err, errlen, "user name too long");
			return -1;
		}
	} else if (strcmp(w[0], "strict") == 0) {
		if (strcmp(w[1], "yes") != 0 && strcmp(w[1], "no") != 0) {
			snprintf(err, errlen, "strict takes yes or no");
			return -1;
		}
		c->strict = strcmp(w[1], "yes") == 0;
	} else if (strcmp(w[0], "window") == 0) {
		if (conf_number(w[1], 1, 65536, &n, err, errlen) == -1)
			return -1;
		c->window = (u_int)n;
	} else if (strcmp(w[0], "max-in-flight") == 0) {
		if (conf_number(w[1], 1, 1 << 24, &n, err, errlen) == -1)
			return -1;
		c->max_in_flight = (u_int)n;
	} else if (strcmp(w[0], "max-connections") == 0) {
		if (conf_number(w[1], 1, 1 << 20, &n, err, errlen) == -1)
			return -1;
		c->max_connections = (u_int)n;
	} else if (strcmp(w[0], "window-bytes") == 0) {
		/* At least one largest call, so a lone call always fits. */
		if (conf_bytes(w[1], PROTO_FRAME_MAX, 1ULL << 40,
		    &c->window_bytes, err, errlen) == -1)
			return -1;
	} else if (strcmp(w[0], "metrics-listen") == 0) {
		struct sockaddr_storage	ss;
		socklen_t		sslen;

		if (strcmp(w[1], "off") == 0)
			c->metrics_listen[0] = '\0';
		else if (strlen(w[1]) >= sizeof c->metrics_listen) {
			snprintf(err, errlen, "address too long");
			return -1;
		} else if (conf_address(w[1], &ss, &sslen, err, errlen) == -1)
			return -1;
		else
			strlcpy(c->metrics_listen, w[1],
			    sizeof c->metrics_listen);
	} else if (strcmp(w[0], "max-in-flight-bytes") == 0) {
		if (conf_bytes(w[1], PROTO_FRAME_MAX, 1ULL << 40,
		    &c->max_in_flight_bytes, err, errlen) == -1)
			return -1;
	} else {
		rc = conf_common(w[0], w[1], &c->timeout_ms, &c->helpers,
		    &c->drain_ms, &c->memory_mb, &c->sandbox, err, errlen);
		if (rc == 1)
			snprintf(err, errlen, "unknown setting '%s'", w[0]);
		return rc == 0 ? 0 : -1;
	}
	return 0;
}

/*
 * What follows a line's first word, kept whole for option: into rest, of
 * size len, cut there (BUGS) and trimmed inside it.
 */
static void
conf_rest(const char *p, char *rest, size_t len)
{
	const char	*r = p + strcspn(p, " \t");
	size_t		 n;

	while (isspace((unsigned char)*r))
		r++;
	if ((n = strlcpy(rest, r, len)) >= len)
		n = len - 1;
	while (n > 0 && isspace((unsigned char)rest[n - 1]))
		rest[--n] = '\0';
}

/*
 * Read path into c (which holds defaults or flags already).  Each error
 * is "path:line: what": with report NULL, the first ends the reading and
 * is left in err; otherwise each is given to report and reading goes on
 * with the next line, and err keeps the first.  Returns how many errors;
 * with any, c is unchanged.
 */
static u_int
conf_parse(struct conf *c, const char *path, void (*report)(void *,
    const char *), void *arg, char *err, size_t errlen)
{
	struct conf		 new = *c;
	struct conf_channel	*in = NULL;
	FILE			*f;
	char			*line = NULL, *p, *w[64], why[256], msg[512];
	char			 rest[4096];
	size_t			 cap = 0, nw;
	unsigned long		 lineno = 0;
	u_int			 nerrors = 0;
	bool			 more = true;
	int			 rc;

	new.channels = NULL;
	new.nchannels = 0;
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (report != NULL)
			report(arg, err);
		return 1;
	}
	while (more) {
		if (getline(&line, &cap, f) == -1) {
			more = false;
			if (ferror(f))
				snprintf(why, sizeof why, "%s", strerror(errno));
			else if (in != NULL)
				snprintf(why, sizeof why, "channel %s: missing "
				    "'}'", in->name);
			else
				break;
			rc = -1;
		} else {
			lineno++;
			if ((p = strchr(line, '#')) != NULL)
				*p = '\0';
			p = line;
			while (isspace((unsigned char)*p))
				p++;
			conf_rest(p, rest, sizeof rest);
			for (nw = 0; nw < 64 &&
			    (w[nw] = strsep(&p, " \t\r\n")) != NULL;)
				if (*w[nw] != '\0')
					nw++;
			if (nw == 64) {
				snprintf(why, sizeof why, "too many words");
				rc = -1;
			} else
				rc = conf_line(&new, &in, w, nw, rest, why,
				    sizeof why);
		}
		if (rc == 0)
			continue;
		snprintf(msg, sizeof msg, "%s:%lu: %s", path, lineno, why);
		if (nerrors++ == 0)
			strlcpy(err, msg, errlen);
		if (report == NULL)
			break;
		report(arg, msg);
	}
	free(line);
	fclose(f);
	if (nerrors > 0) {
		conf_free(&new);
		return nerrors;
	}
	conf_free(c);
	*c = new;
	return 0;
}

/*
 * Read path into c; the first error ends it, and c is unchanged: -1 with
 * err saying "path:line: what".
 */
int
conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	return conf_parse(c, path, NULL, NULL, err, errlen) == 0 ? 0 : -1;
}

/*
 * Check path as conf_load reads it, giving every error to report; the
 * number of errors.
 */
u_int
conf_check(const char *path, void (*report)(void *, const char *),
    void *arg)
{
	struct conf	c;
	char		err[512];
	u_int		n;

	conf_defaults(&c);
	n = conf_parse(&c, path, report, arg, err, sizeof err);
	conf_free(&c);
	return n;
}

/* The settings of channel name, or NULL. */
const struct conf_channel *
conf_channel(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nchannels; i++)
		if (strcmp(c->channels[i].name, name) == 0)
			return &c->channels[i];
	return NULL;
}
