/* SPDX-License-Identifier: ISC */
/*
 * The decoders take hostile bytes: every truncation of a valid body,
 * trailing bytes, lying counts, bad UTF-8, unsorted or duplicate names and
 * random garbage must each be refused with a reason, never crash.  And the
 * JSON lines the command line reads map onto bodies exactly.  A fuzz
 * target's findings in these decoders, and in route-host.conf's, are kept
 * here as tests.
 */

#include "config.h"

#include <jansson.h>

#include "testutil.h"

/* A body with every field type and two consumers with tags. */
static void
sample_body(struct wire_buf *b)
{
	const struct testutil_field	f[] = {
		{ "amount", { .type = ROUTE_INTEGER, .integer = -5000 } },
		{ "ratio", { .type = ROUTE_FLOAT, .real = 0.25 } },
		{ "region", { .type = ROUTE_TEXT, .text = "eu-west", .len = 7 } },
		{ "unset", { .type = ROUTE_NULL } },
		{ "vip", { .type = ROUTE_BOOLEAN, .boolean = true } },
	};
	const struct testutil_consumer	c[] = {
		{ "a", 1, 4, 2, { "fast", "eu-west", NULL } },
		{ "b", 0, 0, 0, { NULL } },
	};

	testutil_body(b, f, 5, c, 2);
}

/* A valid body decodes to exactly what was encoded. */
static void
test_round_trip(void **state)
{
	struct wire_buf			 b;
	struct wire_call		 c;
	const struct route_value	*v;
	char				 err[DETAIL_MAX];

	(void)state;
	sample_body(&b);
	assert_int_equal(wire_decode_call(b.data, b.len, &c, err, sizeof err),
	    0);
	assert_int_equal(c.msg.nfields, 5);
	assert_non_null(v = route_message_get(&c.msg, "amount"));
	assert_int_equal(v->type, ROUTE_INTEGER);
	assert_int_equal(v->integer, -5000);
	assert_non_null(v = route_message_get(&c.msg, "ratio"));
	assert_true(v->real == 0.25);
	assert_non_null(v = route_message_get(&c.msg, "region"));
	assert_string_equal(v->text, "eu-west");
	assert_int_equal(v->len, 7);
	assert_non_null(v = route_message_get(&c.msg, "unset"));
	assert_int_equal(v->type, ROUTE_NULL);
	assert_true(route_message_get(&c.msg, "vip")->boolean);
	assert_null(route_message_get(&c.msg, "missing"));
	assert_null(route_message_get(&c.msg, ""));
	assert_int_equal(c.nconsumers, 2);
	assert_string_equal(c.consumers[0].id, "a");
	assert_int_equal(route_consumer_available(&c.consumers[0]), 3);
	assert_int_equal(c.consumers[0].buffer_depth, 2);
	assert_true(route_consumer_has_affinity(&c.consumers[0], "eu-west"));
	assert_false(route_consumer_has_affinity(&c.consumers[0], "slow"));
	assert_false(route_consumer_has_capacity(&c.consumers[1]));
	assert_int_equal(c.consumers[1].ntags, 0);
	wire_call_free(&c);
	wire_free(&b);
}

/* Capacity floors at zero when in_flight exceeds max. */
static void
test_capacity_floor(void **state)
{
	struct route_consumer	c = { .id = "x", .in_flight = 9,
	    .max_in_flight = 4 };

	(void)state;
	assert_int_equal(route_consumer_available(&c), 0);
	assert_false(route_consumer_has_capacity(&c));
}

/* Every strict prefix, and any trailing byte, is refused. */
static void
test_truncations_and_trailing(void **state)
{
	struct wire_buf		 b;
	struct wire_call	 c;
	char			 err[DETAIL_MAX];
	unsigned char		*copy;

	(void)state;
	sample_body(&b);
	for (size_t n = 0; n < b.len; n++) {
		/* A private copy of exactly n bytes, so ASan sees overreads. */
		copy = malloc(n + 1);
		memcpy(copy, b.data, n);
		err[0] = '\0';
		assert_int_equal(wire_decode_call(copy, n, &c, err,
		    sizeof err), -1);
		assert_true(err[0] != '\0');
		free(copy);
	}
	wire_u8(&b, 0);
	assert_int_equal(wire_decode_call(b.data, b.len, &c, err, sizeof err),
	    -1);
	assert_non_null(strstr(err, "trailing"));
	wire_free(&b);
}

/* Expect a body to be refused with a reason containing want. */
static void
expect_refused(const struct wire_buf *b, const char *want)
{
	struct wire_call	c;
	char			err[DETAIL_MAX];

	assert_int_equal(wire_decode_call(b->data, b->len, &c, err,
	    sizeof err), -1);
	if (strstr(err, want) == NULL)
		fail_msg("refused with '%s', expected '%s'", err, want);
}

/* Names out of order, duplicates, empty names, bad text, lying counts. */
static void
test_semantic_refusals(void **state)
{
	struct route_value	null = { .type = ROUTE_NULL };
	struct route_value	bad = { .type = ROUTE_TEXT, .text = "\xff\xfe",
	    .len = 2 };
	struct route_value	nul = { .type = ROUTE_TEXT, .text = "a\0b",
	    .len = 3 };
	struct route_consumer	c = { .id = "same" };
	struct wire_buf		 b;

	(void)state;
	wire_init(&b);
	wire_body_begin(&b, 2, 0);
	wire_body_field(&b, "b", &null);
	wire_body_field(&b, "a", &null);
	expect_refused(&b, "out of order");
	wire_free(&b);

	wire_body_begin(&b, 2, 0);
	wire_body_field(&b, "a", &null);
	wire_body_field(&b, "a", &null);
	expect_refused(&b, "duplicate");
	wire_free(&b);

	wire_body_begin(&b, 1, 0);
	wire_body_field(&b, "", &null);
	expect_refused(&b, "empty name");
	wire_free(&b);

	wire_body_begin(&b, 1, 0);
	wire_body_field(&b, "t", &bad);
	expect_refused(&b, "UTF-8");
	wire_free(&b);

	wire_body_begin(&b, 1, 0);
	wire_body_field(&b, "t", &nul);
	expect_refused(&b, "UTF-8");
	wire_free(&b);

	wire_body_begin(&b, 0, 2);
	wire_body_consumer(&b, &c);
	wire_body_consumer(&b, &c);
	expect_refused(&b, "more than once");
	wire_free(&b);

	wire_body_begin(&b, 0, 0);
	wire_free(&b);
	wire_body_begin(&b, 0xffffffff, 0);
	expect_refused(&b, "fields");
	wire_free(&b);
	wire_body_begin(&b, 0, 0x10000);
	expect_refused(&b, "consumers");
	wire_free(&b);

	/* An unknown value type. */
	wire_body_begin(&b, 1, 0);
	wire_u8(&b, 1);
	wire_bytes(&b, "x", 1);
	wire_u8(&b, 9);
	expect_refused(&b, "unknown type");
	wire_free(&b);
}

/* Random bytes, and random mutations of a valid body: never a crash. */
static void
test_garbage(void **state)
{
	struct wire_buf		 b;
	struct wire_call	 c;
	unsigned char		 buf[512];
	char			 err[DETAIL_MAX];
	unsigned int		 seed = 12345;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		size_t	n = (size_t)rand_r(&seed) % sizeof buf;

		for (size_t k = 0; k < n; k++)
			buf[k] = (unsigned char)rand_r(&seed);
		if (wire_decode_call(buf, n, &c, err, sizeof err) == 0)
			wire_call_free(&c);
	}
	sample_body(&b);
	for (int i = 0; i < 20000; i++) {
		unsigned char	*m = malloc(b.len);

		memcpy(m, b.data, b.len);
		for (int k = 0; k < 3; k++)
			m[(size_t)rand_r(&seed) % b.len] =
			    (unsigned char)rand_r(&seed);
		if (wire_decode_call(m, b.len, &c, err, sizeof err) == 0)
			wire_call_free(&c);
		free(m);
	}
	wire_free(&b);
}

/* Parse a JSON line, decode the body; returns 0 or -1 with err. */
static int
parse(const char *line, struct wire_call *c, char *err, size_t len)
{
	struct wire_buf	 b;
	json_t		*root = NULL;
	int		 timeout, rc;

	rc = request_parse(line, &b, &root, &timeout, err, len);
	if (rc == 0)
		rc = wire_decode_call(b.data, b.len, c, err, len);
	wire_free(&b);
	json_decref(root);
	return rc;
}

/* JSON integers are integers, fractions and exponents floats. */
static void
test_json_types(void **state)
{
	struct wire_call	c;
	char			err[DETAIL_MAX];

	(void)state;
	assert_int_equal(parse("{\"message\": {\"z\": 1, \"a\": 1.0, "
	    "\"e\": 1e3, \"s\": \"h\\u00e9\", \"n\": null, \"t\": false, "
	    "\"big\": -9223372036854775808}, \"consumers\": []}", &c, err,
	    sizeof err), 0);
	assert_int_equal(route_message_get(&c.msg, "z")->type, ROUTE_INTEGER);
	assert_int_equal(route_message_get(&c.msg, "a")->type, ROUTE_FLOAT);
	assert_int_equal(route_message_get(&c.msg, "e")->type, ROUTE_FLOAT);
	assert_true(route_message_get(&c.msg, "e")->real == 1000.0);
	assert_string_equal(route_message_get(&c.msg, "s")->text, "h\xc3\xa9");
	assert_int_equal(route_message_get(&c.msg, "n")->type, ROUTE_NULL);
	assert_false(route_message_get(&c.msg, "t")->boolean);
	assert_true(route_message_get(&c.msg, "big")->integer == INT64_MIN);
	/* Sorted for the plugin, whatever the JSON order. */
	assert_string_equal(c.msg.fields[0].name, "a");
	wire_call_free(&c);
}

/* Bad requests name what is wrong and where. */
static void
test_json_refusals(void **state)
{
	static const struct {
		const char	*line;
		const char	*want;
	} cases[] = {
		{ "{\"message\": {\"x\": {\"y\": 1}}, \"consumers\": []}",
		    "field 'x' is an object" },
		{ "{\"message\": {\"x\": [1]}, \"consumers\": []}",
		    "field 'x' is an array" },
		{ "{\"consumers\": [{\"id\": \"a\", \"max_inflight\": 1}]}",
		    "unknown key 'max_inflight'" },
		{ "{\"consumers\": [{\"id\": \"a\", \"in_flight\": -1}]}",
		    "consumers[0].in_flight" },
		{ "{\"consumers\": [{\"in_flight\": 1}]}", "consumers[0].id" },
		{ "{\"consumers\": [{\"id\": \"a\", \"tags\": [1]}]}",
		    "consumers[0].tags[0]" },
		{ "{\"message\": {}}", "\"consumers\" must be an array" },
		{ "{\"consumers\": [], \"extra\": 1}", "unknown key 'extra'" },
		{ "{\"consumers\": [], \"consumers\": []}", "duplicate" },
		{ "[1, 2]", "must be a JSON object" },
		{ "{\"consumers\": [", "invalid JSON" },
		{ "{\"consumers\": [], \"timeout_ms\": 0}", "timeout_ms" },
		{ "{\"consumers\": [{\"id\": \"a\"}, {\"id\": \"a\"}]}",
		    "more than once" },
	};
	struct wire_call	c;
	char			err[DETAIL_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		err[0] = '\0';
		assert_int_equal(parse(cases[i].line, &c, err, sizeof err), -1);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("'%s': got '%s', expected '%s'",
			    cases[i].line, err, cases[i].want);
	}
}

/*
 * route-host.conf: an option line longer than its 4095-byte buffer is cut
 * there (route-host.conf(5), BUGS), and trimming its trailing blanks
 * stays inside the buffer (found by fuzz-conf: it read and could write
 * past it, from the uncut length).
 */
static void
test_conf_long_line(void **state)
{
	struct conf	 c;
	char		 path[] = "/tmp/route-host-test-conf-XXXXXX";
	char		 err[512];
	FILE		*f;
	int		 fd;

	(void)state;
	assert_int_not_equal(fd = mkstemp(path), -1);
	assert_non_null(f = fdopen(fd, "w"));
	fprintf(f, "channel c {\n\toption k=");
	for (int i = 0; i < 5000; i++)
		fputc('v', f);
	for (int i = 0; i < 64; i++)
		fputc(' ', f);
	fprintf(f, "\n}\n");
	assert_int_equal(fclose(f), 0);
	conf_defaults(&c);
	if (conf_load(&c, path, err, sizeof err) == -1)
		fail_msg("%s", err);
	unlink(path);
	assert_int_equal(c.nchannels, 1);
	assert_int_equal(c.channels[0].nopts, 1);
	assert_string_equal(c.channels[0].opts[0].key, "k");
	assert_int_equal(strlen(c.channels[0].opts[0].value), 4095 - 2);
	conf_free(&c);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_capacity_floor),
		cmocka_unit_test(test_truncations_and_trailing),
		cmocka_unit_test(test_semantic_refusals),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_json_types),
		cmocka_unit_test(test_json_refusals),
		cmocka_unit_test(test_conf_long_line),
	};

	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
