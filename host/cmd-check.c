/* SPDX-License-Identifier: ISC */
/*
 * route-host check: load each plugin file in a helper, the way serving
 * would, and report its name, ABI and version, or exactly why it cannot
 * load, then its decision on a sample request.  With --fuzz N, then N
 * generated requests (sample.c) each: every crash, timeout and bad
 * decision is reported with the smallest request found that fails the
 * same way, a line ready for route --plugin; a choice of a consumer
 * without capacity is a warning.  Exit 1 if any fails.
 */

#include "config.h"

#include <err.h>
#include <getopt.h>
#include <limits.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "route-host.h"

#define CMD_CHECK_MESSAGE \
	"{\"amount\": 5000, \"region\": \"eu\", \"vip\": true}"
#define CMD_CHECK_CONSUMERS \
	"[{\"id\": \"a\", \"in_flight\": 4, \"max_in_flight\": 4, " \
	"\"tags\": [\"eu\"]}, " \
	"{\"id\": \"b\", \"in_flight\": 0, \"max_in_flight\": 2, " \
	"\"tags\": [\"us\"]}, " \
	"{\"id\": \"c\", \"in_flight\": 1, \"max_in_flight\": 8, " \
	"\"buffer_depth\": 5, \"tags\": [\"eu\"]}]"

#define CMD_CHECK_FUZZ_MS	250	/* each fuzz call's deadline */
#define CMD_CHECK_SHRINK_MAX	1000	/* calls spent shrinking one */

/* One kind of failure check --fuzz found, and its smallest request. */
struct cmd_check_found {
	u_int		 count;
	json_t		*smallest;
	size_t		 len;		/* its JSON's length */
	char		 detail[DETAIL_MAX];
};

/* One file's check. */
struct cmd_check_file {
	const char	*path;
	struct module	*module;
	char		 error[DETAIL_MAX];
	bool		 done;
	struct result	 result;
};

/* Engine callback: the handshake's outcome. */
static void
cmd_check_done(const struct result *r, void *arg)
{
	struct cmd_check_file	*f = arg;

	f->result = *r;
	f->done = true;
}

/* Run the sample call on a loaded version and print its result. */
static bool
cmd_check_sample(struct engine *e, struct cmd_check_file *f,
    const struct wire_buf *body, json_t *root)
{
	char	*s;

	f->done = false;
	if (engine_call(e, f->module, body->data, body->len, 0,
	    cmd_check_done, f) == -1)
		err(2, "check: call");
	while (!f->done)
		if (engine_run(e, -1) == -1)
			err(2, "event loop");
	if ((s = request_format(&f->result, NULL, NULL, root)) == NULL)
		errx(2, "out of memory");
	printf("%s: sample: %s\n", f->path, s);
	free(s);
	return f->result.status == ST_OK;
}

/* Run request req (JSON) on f's version, into f->result; false if bad. */
static bool
cmd_check_run(struct engine *e, struct cmd_check_file *f, const json_t *req)
{
	struct wire_buf	 body;
	json_t		*root;
	char		*line, errbuf[DETAIL_MAX];
	int		 timeout;

	if ((line = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER)) ==
	    NULL)
		errx(2, "out of memory");
	if (request_parse(line, &body, &root, &timeout, errbuf,
	    sizeof errbuf) == -1) {
		/* The host refuses it before the plugin sees it. */
		free(line);
		wire_free(&body);
		json_decref(root);
		return false;
	}
	free(line);
	json_decref(root);
	f->done = false;
	if (engine_call(e, f->module, body.data, body.len, CMD_CHECK_FUZZ_MS,
	    cmd_check_done, f) == -1)
		err(2, "check: call");
	while (!f->done)
		if (engine_run(e, -1) == -1)
			err(2, "event loop");
	wire_free(&body);
	return true;
}

/* Whether req's decision picked a consumer without capacity. */
static bool
cmd_check_saturated(const json_t *req, int decision)
{
	json_t		*c;
	json_int_t	 in, max;

	if (decision < 0)
		return false;
	c = json_array_get(json_object_get(req, "consumers"),
	    (size_t)decision);
	in = json_integer_value(json_object_get(c, "in_flight"));
	max = json_integer_value(json_object_get(c, "max_in_flight"));
	return in >= max;
}

/*
 * The smallest request one step at a time: while a smaller one fails
 * with the same status, keep it.  Returns it (a new reference).
 */
static json_t *
cmd_check_shrink(struct engine *e, struct cmd_check_file *f, json_t *req,
    enum status st, char *detail, size_t len)
{
	json_t	*cand;
	u_int	 calls = 0;
	bool	 smaller = true;

	json_incref(req);
	while (smaller && calls < CMD_CHECK_SHRINK_MAX) {
		smaller = false;
		for (size_t i = 0; (cand = sample_shrink(req, i)) != NULL &&
		    calls < CMD_CHECK_SHRINK_MAX; i++) {
			calls++;
			if (cmd_check_run(e, f, cand) &&
			    f->result.status == st) {
				json_decref(req);
				req = cand;
				strlcpy(detail, f->result.detail, len);
				smaller = true;
				break;
			}
			json_decref(cand);
		}
	}
	return req;
}

/*
 * check --fuzz: n generated requests from seed on f's version; prints
 * what failed and how to reproduce it.  False if anything failed.
 */
static bool
cmd_check_fuzz(struct engine *e, struct cmd_check_file *f, u_int n,
    uint64_t seed, const json_t *base)
{
	static const enum status	 kinds[] = { ST_CRASHED,
					    ST_TIMED_OUT, ST_BAD_DECISION,
					    ST_SPAWN_FAILED, ST_CRASH_LOOP };
	struct cmd_check_found		 found[ST_LAST + 1], sat;
	struct crash_conf		 cc;
	struct sample_gen		 g;
	json_t				*req, *small;
	char				*line;
	u_int				 refused = 0, ok = 0;
	size_t				 len;
	bool				 good = true;

	/* Every call runs: no crash loop, no memo of what crashed. */
	memset(&cc, 0, sizeof cc);
	cc.budget = UINT32_MAX;
	cc.memo = -1;
	engine_set_crash(f->module, &cc);
	memset(found, 0, sizeof found);
	memset(&sat, 0, sizeof sat);
	sample_seed(&g, seed);
	for (u_int i = 0; i < n; i++) {
		req = sample_request(&g, base);
		/* What the host refuses never reaches the plugin. */
		if (!cmd_check_run(e, f, req) ||
		    f->result.status == ST_BAD_REQUEST) {
			refused++;
			json_decref(req);
			continue;
		}
		line = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
		len = line != NULL ? strlen(line) : 0;
		free(line);
		if (f->result.status == ST_OK) {
			ok++;
			if (cmd_check_saturated(req, f->result.decision) &&
			    (sat.count++ == 0 || len < sat.len)) {
				json_decref(sat.smallest);
				sat.smallest = json_incref(req);
				sat.len = len;
			}
		} else {
			struct cmd_check_found	*k = &found[f->result.status];

			if (k->count++ == 0 || len < k->len) {
				json_decref(k->smallest);
				k->smallest = json_incref(req);
				k->len = len;
				strlcpy(k->detail, f->result.detail,
				    sizeof k->detail);
			}
		}
		json_decref(req);
	}
	printf("%s: fuzz: %u requests (seed %llu): %u answered", f->path, n,
	    (unsigned long long)seed, ok);
	for (size_t i = 0; i < nitems(kinds); i++)
		if (found[kinds[i]].count > 0)
			printf(", %u %s", found[kinds[i]].count,
			    engine_status_name(kinds[i]));
	if (refused > 0)
		printf(", %u refused by the host", refused);
	printf("\n");
	for (size_t i = 0; i < nitems(kinds); i++) {
		struct cmd_check_found	*k = &found[kinds[i]];

		if (k->count == 0)
			continue;
		good = false;
		small = cmd_check_shrink(e, f, k->smallest, kinds[i],
		    k->detail, sizeof k->detail);
		line = json_dumps(small, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s: fuzz: %s: %s; the smallest request that does it:"
		    "\n%s\n", f->path, engine_status_name(kinds[i]),
		    k->detail, line != NULL ? line : "?");
		free(line);
		json_decref(small);
		json_decref(k->smallest);
	}
	if (sat.count > 0) {
		line = json_dumps(sat.smallest, JSON_COMPACT |
		    JSON_PRESERVE_ORDER);
		printf("%s: fuzz: warning: %u decisions chose a consumer "
		    "without capacity (in_flight >= max_in_flight), as in:\n"
		    "%s\n", f->path, sat.count, line != NULL ? line : "?");
		free(line);
		json_decref(sat.smallest);
	}
	if (!good)
		printf("%s: fuzz: reproduce a line with: route-host route "
		    "--plugin %s\n", f->path, f->path);
	return good;
}

/* Parse the sample request from --message and --consumers. */
static json_t *
cmd_check_parse_sample(const char *message, const char *consumers,
    struct wire_buf *body)
{
	char		*line, errbuf[DETAIL_MAX];
	json_t		*root;
	int		 timeout;

	if (asprintf(&line, "{\"message\": %s, \"consumers\": %s}", message,
	    consumers) == -1)
		err(2, NULL);
	if (request_parse(line, body, &root, &timeout, errbuf,
	    sizeof errbuf) == -1)
		errx(2, "check: the sample (--message, --consumers): %s",
		    errbuf);
	free(line);
	return root;
}

/* route-host check [--option KEY=VALUE]... FILE... */
int
cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "option", required_argument, NULL, 'o' },
		{ "message", required_argument, NULL, 'm' },
		{ "consumers", required_argument, NULL, 'c' },
		{ "fuzz", required_argument, NULL, 'f' },
		{ "seed", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char		*message = CMD_CHECK_MESSAGE;
	const char		*consumers = CMD_CHECK_CONSUMERS;
	struct wire_buf		 body;
	json_t			*sample;
	struct engine_config	 conf;
	struct engine		*e;
	struct cmd_check_file	*files;
	struct route_option	*opts = NULL;
	size_t			 nopts = 0;
	char			 errbuf[DETAIL_MAX];
	const char		*errstr;
	uint64_t		 seed = (uint64_t)time(NULL);
	u_int			 fuzz = 0;
	int			 ch, n, rc = 0;
	bool			 waiting;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:m:c:", longopts, NULL)) !=
	    -1) {
		if (ch == 'm')
			message = optarg;
		else if (ch == 'c')
			consumers = optarg;
		else if (ch == 'f') {
			fuzz = (u_int)strtonum(optarg, 1, 10000000, &errstr);
			if (errstr != NULL)
				errx(2, "check: --fuzz %s: %s (1 to 10000000)",
				    optarg, errstr);
		} else if (ch == 's') {
			seed = (uint64_t)strtonum(optarg, 0, LLONG_MAX,
			    &errstr);
			if (errstr != NULL)
				errx(2, "check: --seed %s: %s", optarg, errstr);
		} else if (ch != 'o' || cmd_options(&opts, &nopts, optarg) ==
		    -1) {
			if (ch == 'o')
				warnx("check: --option '%s': expected "
				    "KEY=VALUE", optarg);
			goto usage;
		}
	}
	if ((n = argc - optind) < 1)
		goto usage;
	sample = cmd_check_parse_sample(message, consumers, &body);

	engine_defaults(&conf);
	conf.helpers = 1;
	conf.log = cmd_log;
	if ((e = engine_new(&conf, errbuf, sizeof errbuf)) == NULL)
		errx(2, "check: %s", errbuf);
	if ((files = calloc((size_t)n, sizeof *files)) == NULL)
		err(2, NULL);
	for (int i = 0; i < n; i++) {
		files[i].path = argv[optind + i];
		if (engine_load(e, files[i].path, NULL, opts, nopts,
		    &files[i].module, files[i].error,
		    sizeof files[i].error) == -1)
			files[i].done = true;
		else if (engine_probe(e, files[i].module, cmd_check_done,
		    &files[i]) == -1) {
			snprintf(files[i].error, sizeof files[i].error, "%s",
			    strerror(errno));
			files[i].done = true;
		}
	}
	do {
		waiting = false;
		for (int i = 0; i < n; i++)
			waiting |= !files[i].done;
		if (waiting && engine_run(e, -1) == -1)
			err(2, "event loop");
	} while (waiting);

	for (int i = 0; i < n; i++) {
		struct cmd_check_file	*f = &files[i];
		struct module		*m = f->module;

		if (m == NULL) {
			printf("%s\n", f->error);
			rc = 1;
		} else if (f->result.status == ST_OK) {
			printf("%s: ok: plugin \"%s\", ABI %u, version %s\n",
			    f->path, m->name, m->abi, m->hex);
			if (!cmd_check_sample(e, f, &body, sample))
				rc = 1;
			if (fuzz > 0 && !cmd_check_fuzz(e, f, fuzz, seed,
			    sample))
				rc = 1;
		} else {
			printf("%s: %s: %s (version %s)\n", f->path,
			    f->result.status == ST_SPAWN_FAILED ?
			    "cannot load" :
			    engine_status_name(f->result.status),
			    f->result.detail, m->hex);
			rc = 1;
		}
		if (m != NULL)
			engine_release(e, m);
	}
	engine_free(e);
	free(files);
	for (size_t i = 0; i < nopts; i++)
		free((char *)opts[i].key);
	free(opts);
	wire_free(&body);
	json_decref(sample);
	return rc;

usage:
	fprintf(stderr, "usage: route-host check [--option KEY=VALUE]... "
	    "[--message JSON] [--consumers JSON] [--fuzz N [--seed S]] "
	    "FILE...\n");
	return 2;
}
