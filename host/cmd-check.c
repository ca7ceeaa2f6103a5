/* SPDX-License-Identifier: ISC */
/*
 * route-host check: load each plugin file in a helper, the way serving
 * would, and report its name, ABI and version, or exactly why it cannot
 * load.  Exit 1 if any fails.
 */

#include "config.h"

#include <err.h>
#include <getopt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	int			 ch, n, rc = 0;
	bool			 waiting;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "o:m:c:", longopts, NULL)) !=
	    -1) {
		if (ch == 'm')
			message = optarg;
		else if (ch == 'c')
			consumers = optarg;
		else if (ch != 'o' || cmd_options(&opts, &nopts, optarg) ==
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
	    "[--message JSON] [--consumers JSON] FILE...\n");
	return 2;
}
