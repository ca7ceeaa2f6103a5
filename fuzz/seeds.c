/* SPDX-License-Identifier: ISC */
/*
 * fuzz-seeds: write the seed corpora of the fuzz targets (fuzz/corpus/),
 * made with route-host's own encoders: request lines through
 * request_parse, bodies, broker frames through proto.c, scripts for
 * fuzz-proc and fuzz-engine, configuration files.  make fuzz-seeds runs it into the
 * source tree; the files it writes are committed.
 *
 *	fuzz-seeds DIR
 */

#include "config.h"

#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "route-host.h"

/* Request lines, good and bad, as route reads them. */
static const char *const seeds_lines[] = {
	"{\"consumers\": []}",
	"{\"consumers\": [], \"id\": \"r2\"}",
	"{\"consumers\": [{\"id\": \"a\", \"max_in_flight\": 1}]}",
	("{\"message\": {\"amount\": 5000, \"vip\": true}, \"consumers\": "
	    "[{\"id\": \"a\", \"in_flight\": 4, \"max_in_flight\": 4}, "
	    "{\"id\": \"b\", \"max_in_flight\": 2, \"tags\": [\"fast\"]}]}"),
	("{\"message\": {\"user\": \"alice\", \"ratio\": 0.25, \"none\": null},"
	    " \"consumers\": [{\"id\": \"a\", \"max_in_flight\": 9, "
	    "\"buffer_depth\": 3, \"tags\": [\"eu\", \"us\"]}, {\"id\": \"b\","
	    " \"max_in_flight\": 9}], \"timeout_ms\": 20, \"id\": [1, 2]}"),
	"{\"message\": {\"x\": [1]}, \"consumers\": []}",
	("{\"message\": {\"t\": \"caf\\u00e9\"}, \"consumers\": "
	    "[{\"id\": \"a\"}, {\"id\": \"a\"}]}"),
	"{\"consumers\": [{\"id\": \"a\", \"colour\": 1}]}",
};

/* Configuration files. */
static const char *const seeds_confs[] = {
	"plugins /etc/route-host/plugins\n"
	"socket /run/route-host/route-host.sock\n"
	"timeout 5000\nhelpers 4\ndrain 30000\nmemory-limit 256\n"
	"sandbox yes\nstrict yes\nwindow 1024\nmax-in-flight 65536\n"
	"helper-user nobody\nsocket-owner root\nsocket-group 0\n"
	"socket-mode 0660\nallow-uid root 1000\nallow-gid 0\n"
	"max-connections 1024\nwindow-bytes 16m\n"
	"max-in-flight-bytes 128M\n",
	"channel orders {\n\ttimeout 200\n\thelpers 8\n"
	"\t# option takes the rest of the line\n"
	"\toption field=region\n\toption prefer=eu-west\n}\n"
	"channel audit {\n\ttimeout 2000\t# slow\n\thelpers 1\n"
	"\tdrain 60000\n\tmemory-limit 64\n\tsandbox no\n}\n",
	"channel x {\n",
	"timeout 0\n",
	"window 1 2\n",
};

/* Write len bytes to DIR/target/name. */
static void
seeds_write(const char *dir, const char *target, const char *name,
    const void *p, size_t len)
{
	char	 path[4096];
	FILE	*f;

	snprintf(path, sizeof path, "%s/%s", dir, target);
	if (mkdir(path, 0755) == -1 && errno != EEXIST)
		err(1, "%s", path);
	snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
	if ((f = fopen(path, "wb")) == NULL)
		err(1, "%s", path);
	if (len > 0 && fwrite(p, 1, len, f) != len)
		err(1, "%s", path);
	if (fclose(f) != 0)
		err(1, "%s", path);
}

/* A body from a request line; -1 if the line is refused. */
static int
seeds_body(const char *line, struct wire_buf *b)
{
	json_t	*root;
	char	 why[DETAIL_MAX];
	int	 timeout, rc;

	rc = request_parse(line, b, &root, &timeout, why, sizeof why);
	json_decref(root);
	return rc;
}

/* fuzz-request and fuzz-wire: the lines, and the bodies they give. */
static void
seeds_requests(const char *dir)
{
	struct wire_buf	b;
	char		name[32];

	for (size_t i = 0; i < nitems(seeds_lines); i++) {
		snprintf(name, sizeof name, "line-%zu", i);
		seeds_write(dir, "fuzz-request", name, seeds_lines[i],
		    strlen(seeds_lines[i]));
		if (seeds_body(seeds_lines[i], &b) == 0) {
			snprintf(name, sizeof name, "body-%zu", i);
			seeds_write(dir, "fuzz-wire", name, b.data, b.len);
		}
		wire_free(&b);
	}
}

/* fuzz-proto: what a daemon sends a client. */
static void
seeds_proto(const char *dir)
{
	static const char	 status[] = "{\"channels\": [], \"peers\": []}";
	struct wire_buf		 b, all;
	struct result		 r;
	struct module		 m;

	wire_init(&all);
	wire_init(&b);
	proto_welcome(&b, PROTO_VERSION, 1024);
	seeds_write(dir, "fuzz-proto", "welcome", b.data, b.len);
	wire_bytes(&all, b.data, b.len);

	memset(&m, 0, sizeof m);
	memset(m.hash, 0xab, sizeof m.hash);
	memset(&r, 0, sizeof r);
	r.status = ST_OK;
	r.decision = 1;
	r.module = &m;
	b.len = 0;
	proto_result(&b, PROTO_VERSION, 7, &r);
	r.status = ST_CRASHED;
	r.decision = ROUTE_NONE;
	strlcpy(r.detail, "SIGSEGV", sizeof r.detail);
	proto_result(&b, PROTO_VERSION, 8, &r);
	seeds_write(dir, "fuzz-proto", "results", b.data, b.len);
	wire_bytes(&all, b.data, b.len);

	wire_frame_begin(&b, PROTO_STATUS_REPLY);
	wire_u64(&b, 9);
	wire_u32(&b, sizeof status - 1);
	wire_bytes(&b, status, sizeof status - 1);
	wire_frame_end(&b);
	seeds_write(dir, "fuzz-proto", "status", b.data, b.len);
	wire_bytes(&all, b.data, b.len);

	proto_error(&b, "frame of 0 bytes (at most 1049088)");
	seeds_write(dir, "fuzz-proto", "error", b.data, b.len);
	wire_bytes(&all, b.data, b.len);
	seeds_write(dir, "fuzz-proto", "stream", all.data, all.len);

	/* fuzz-client: a daemon answering its three calls, ids 1 to 3. */
	b.len = 0;
	proto_welcome(&b, PROTO_VERSION, 1024);
	r.status = ST_OK;
	r.decision = 0;
	r.detail[0] = '\0';
	proto_result(&b, PROTO_VERSION, 2, &r);
	r.status = ST_SHUTTING_DOWN;
	proto_result(&b, PROTO_VERSION, 1, &r);
	r.status = ST_CRASH_LOOP;
	strlcpy(r.detail, "crash loop since ...", sizeof r.detail);
	proto_result(&b, PROTO_VERSION, 3, &r);
	seeds_write(dir, "fuzz-client", "answers", b.data, b.len);
	seeds_write(dir, "fuzz-client", "stream", all.data, all.len);
	wire_free(&b);
	wire_free(&all);
}

/* fuzz-server: a cut seed, then what a broker sends. */
static void
seeds_server(const char *dir)
{
	static const unsigned char	 cut[4] = { 0x2a, 0, 0, 0 };
	struct wire_buf			 b, all, body;

	wire_init(&all);
	wire_init(&b);
	wire_bytes(&all, cut, sizeof cut);
	proto_hello(&b);
	wire_bytes(&all, b.data, b.len);
	seeds_write(dir, "fuzz-server", "hello", all.data, all.len);

	if (seeds_body(seeds_lines[3], &body) == -1)
		errx(1, "a seed line is refused");
	proto_route(&b, 1, 100, "orders", body.data, body.len);
	wire_bytes(&all, b.data, b.len);
	proto_route(&b, 2, 0, "bad/name", body.data, body.len);
	wire_bytes(&all, b.data, b.len);
	wire_frame_begin(&b, PROTO_STATUS);
	wire_u64(&b, 3);
	wire_frame_end(&b);
	wire_bytes(&all, b.data, b.len);
	seeds_write(dir, "fuzz-server", "calls", all.data, all.len);

	/* A protocol error after a call: a second HELLO. */
	proto_hello(&b);
	wire_bytes(&all, b.data, b.len);
	seeds_write(dir, "fuzz-server", "second-hello", all.data, all.len);
	wire_free(&b);
	wire_free(&all);
	wire_free(&body);
}

/* fuzz-proc: scripts (the steps are in fuzz-proc.c). */
static void
seeds_proc(const char *dir)
{
	/* HELLO "p"; 2 calls; flush; ledger 1 and 2; RESULT; collect. */
	static const unsigned char	good[] = {
		5, 1, 'p', 0,
		0, 0, 1,
		4, 0, 0, 0, 0, 0,	/* slot seq 2: ok, decision 0 */
		4, 1, 0, 0, 1, 1,	/* slot seq 1 */
		3, 0,			/* RESULT through 2 */
		6, 0x81, 8, 9,
	};
	/*
	 * A bad body the helper calls bad (the host agrees), then a second
	 * HELLO refused with control characters in what it says; EOF.
	 */
	static const unsigned char	bad[] = {
		5, 1, 'p', 0,
		0x80, 4, 1, 0, 0, 0, 1,
		4, 0, 1, 0, 0, 0,
		3, 0,
		0x85, 6, 3, 'n', '\n', 'x', 4, 'e', '\r', 0x1b, 'r',
		7,
	};
	/* Raw frames: an unknown type, a long length. */
	static const unsigned char	raw[] = {
		5, 1, 'p', 0, 0, 1,
		2, 10, 5, 0, 0, 0, 3, 1, 0, 0, 0, 9,
		2, 5, 0xff, 0xff, 0, 0, 2,
	};

	seeds_write(dir, "fuzz-proc", "good", good, sizeof good);
	seeds_write(dir, "fuzz-proc", "bad", bad, sizeof bad);
	seeds_write(dir, "fuzz-proc", "raw", raw, sizeof raw);
}

/* fuzz-engine: scripts (the steps are in fuzz-engine.c). */
static void
seeds_engine(const char *dir)
{
	/* A call; HELLO; the call answered; a second call, a crash. */
	static const unsigned char	answer[] = {
		0, 1,
		2, 0, 0, 1, 1,
		2, 0, 1, 1,
		0, 1, 1, 2, 0, 5, 0x17, 1, 1,
	};
	/* A refused HELLO with control characters; a 1 ms deadline. */
	static const unsigned char	refuse[] = {
		0x40, 1,
		2, 0, 0x80, 6, 3, 'a', '\n', 'b', 1, 1,
		2, 1, 0, 1, 1, 1,
	};
	/* A slot and a RESULT ahead of the calls; raw bytes; exit 3. */
	static const unsigned char	raw[] = {
		0, 0, 1, 2, 0, 0, 1, 1,
		2, 0, 2, 5, 2, 7, 0,
		2, 0, 4, 0, 1,
		2, 0, 3, 6, 1, 0, 0, 0, 9, 9, 1,
		2, 0, 5, 6, 1,
	};

	seeds_write(dir, "fuzz-engine", "answer", answer, sizeof answer);
	seeds_write(dir, "fuzz-engine", "refuse", refuse, sizeof refuse);
	seeds_write(dir, "fuzz-engine", "raw", raw, sizeof raw);
}

/* fuzz-conf: files, good and bad. */
static void
seeds_conf(const char *dir)
{
	char	name[32];

	for (size_t i = 0; i < nitems(seeds_confs); i++) {
		snprintf(name, sizeof name, "conf-%zu", i);
		seeds_write(dir, "fuzz-conf", name, seeds_confs[i],
		    strlen(seeds_confs[i]));
	}
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-seeds DIR\n");
		return 2;
	}
	if (mkdir(argv[1], 0755) == -1 && errno != EEXIST)
		err(1, "%s", argv[1]);
	seeds_requests(argv[1]);
	seeds_proto(argv[1]);
	seeds_server(argv[1]);
	seeds_proc(argv[1]);
	seeds_engine(argv[1]);
	seeds_conf(argv[1]);
	return 0;
}
