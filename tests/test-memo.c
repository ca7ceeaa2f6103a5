/* SPDX-License-Identifier: ISC */
/*
 * The poison memo as a table (memo.c): what it remembers, for how long,
 * and what it lets go when a bucket is full.  test-poison.sh checks what
 * the daemon answers with it; this checks the table itself, with hashes
 * chosen to land in one bucket.
 */

#include "config.h"

#include "testutil.h"
#include "engine-int.h"

#define SEC	1000000000ull

/* A hash whose first 8 bytes (the bucket) are bucket, the rest tag. */
static void
key(unsigned char *h, uint64_t bucket, unsigned char tag)
{
	memset(h, tag, MEMO_HASH_LEN);
	memcpy(h, &bucket, sizeof bucket);
}

/* A new memo is empty, finds nothing, and remembers what it is told. */
static void
test_memo_hit(void **state)
{
	struct memo		*mo;
	const struct memo_entry	*e;
	unsigned char		 h[MEMO_HASH_LEN], other[MEMO_HASH_LEN];

	(void)state;
	assert_true(memo_empty(NULL));
	assert_non_null(mo = memo_new(16));
	assert_true(memo_empty(mo));
	memo_hash("{\"crash\": true}", 15, h);
	memo_hash("{\"crash\": false}", 16, other);
	assert_memory_not_equal(h, other, MEMO_HASH_LEN);
	assert_null(memo_find(mo, h, 1));
	memo_add(mo, h, 10, 10 + SEC, "SIGSEGV");
	assert_false(memo_empty(mo));
	assert_non_null(e = memo_find(mo, h, 11));
	assert_int_equal(e->at, 10);
	assert_string_equal(e->cause, "SIGSEGV");
	assert_null(memo_find(mo, other, 11));
	memo_free(mo);
}

/* An entry is forgotten when its TTL has passed, and its way reused. */
static void
test_memo_ttl(void **state)
{
	struct memo		*mo;
	unsigned char		 h[MEMO_HASH_LEN], g[MEMO_HASH_LEN];

	(void)state;
	assert_non_null(mo = memo_new(2));
	key(h, 0, 1);
	memo_add(mo, h, 0, SEC, "SIGSEGV");
	assert_non_null(memo_find(mo, h, SEC - 1));
	assert_null(memo_find(mo, h, SEC));
	/* Remembered again: the one entry is renewed, not doubled. */
	memo_add(mo, h, SEC, 3 * SEC, "SIGABRT");
	assert_string_equal(memo_find(mo, h, 2 * SEC)->cause, "SIGABRT");
	key(g, 0, 2);
	memo_add(mo, g, 2 * SEC, 4 * SEC, "SIGBUS");
	assert_non_null(memo_find(mo, h, 2 * SEC));
	assert_non_null(memo_find(mo, g, 2 * SEC));
	memo_free(mo);
}

/*
 * A full bucket gives a new body the way closest to expiry: the body
 * remembered longest survives, the others are found until they go.
 */
static void
test_memo_full_bucket(void **state)
{
	struct memo	*mo;
	unsigned char	 h[6][MEMO_HASH_LEN];

	(void)state;
	assert_non_null(mo = memo_new(2));	/* one bucket of four ways */
	for (int i = 0; i < 6; i++)
		key(h[i], 0, (unsigned char)(i + 1));
	for (int i = 0; i < 4; i++)
		memo_add(mo, h[i], 0, (uint64_t)(i + 1) * SEC, "SIGSEGV");
	for (int i = 0; i < 4; i++)
		assert_non_null(memo_find(mo, h[i], 0));
	/* h[0] expires first: h[4] takes its way. */
	memo_add(mo, h[4], 0, 10 * SEC, "SIGSEGV");
	assert_null(memo_find(mo, h[0], 0));
	for (int i = 1; i < 5; i++)
		assert_non_null(memo_find(mo, h[i], 0));
	/* Past h[1]'s TTL its way is free: h[5] takes it, no other goes. */
	memo_add(mo, h[5], 2 * SEC, 10 * SEC, "SIGSEGV");
	assert_null(memo_find(mo, h[1], 2 * SEC));
	for (int i = 2; i < 6; i++)
		assert_non_null(memo_find(mo, h[i], 2 * SEC));
	memo_free(mo);
}

/* Remember bodies 0..n-1 in mo, and count how many of them it finds. */
static int
fill(struct memo *mo, int n)
{
	unsigned char	 h[MEMO_HASH_LEN];
	char		 body[32];
	int		 kept = 0;

	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof body, "{\"n\": %d}", i);
		memo_hash(body, strlen(body), h);
		memo_add(mo, h, 0, SEC, "SIGSEGV");
	}
	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof body, "{\"n\": %d}", i);
		memo_hash(body, strlen(body), h);
		kept += memo_find(mo, h, 1) != NULL;
	}
	return kept;
}

/*
 * Bodies spread over buckets by their hash: a memo for 1024 holds 128
 * bodies all, and 1024 bodies nearly all (a body is lost only to a
 * bucket of four already full; the table has room for twice the size).
 */
static void
test_memo_size(void **state)
{
	struct memo	*mo;
	int		 kept;

	(void)state;
	assert_non_null(mo = memo_new(1024));
	assert_int_equal(fill(mo, 128), 128);
	memo_free(mo);
	assert_non_null(mo = memo_new(1024));
	kept = fill(mo, 1024);
	assert_in_range(kept, 950, 1024);
	memo_free(mo);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_memo_hit),
		cmocka_unit_test(test_memo_ttl),
		cmocka_unit_test(test_memo_full_bucket),
		cmocka_unit_test(test_memo_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
