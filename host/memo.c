/* SPDX-License-Identifier: ISC */
/*
 * A version's poison memo: the BLAKE2b of call bodies that crashed one of
 * its helpers, each remembered until its TTL passes, so that the same body
 * sent again is answered crashed without running it or costing a helper.
 *
 * A fixed table of twice the size asked for (rounded up to a power of
 * two), four ways per bucket: a lookup looks at four entries, and a new
 * body takes a free or expired way of its bucket, or the one closest to
 * expiry.  At half full, a body is rarely lost to a full bucket (about 3 %
 * of them when size bodies are remembered at once; a table of exactly
 * size would lose a fifth).  Bodies are hashed by
 * the caller (call.c hashes each call's body at most once).
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "engine-int.h"

#define MEMO_WAYS	4

struct memo {
	size_t			 nbuckets;	/* a power of two */
	size_t			 n;		/* entries ever filled */
	struct memo_entry	 entry[];
};

/* A new, empty memo for size bodies; NULL when out of memory. */
struct memo *
memo_new(size_t size)
{
	struct memo	*mo;
	size_t		 nb = 1;

	while (nb * MEMO_WAYS < 2 * size)
		nb <<= 1;
	if ((mo = calloc(1, sizeof *mo + nb * MEMO_WAYS *
	    sizeof mo->entry[0])) == NULL)
		return NULL;
	mo->nbuckets = nb;
	return mo;
}

/* Free a memo. */
void
memo_free(struct memo *mo)
{
	free(mo);
}

/* The BLAKE2b of a body, as the memo keys it. */
void
memo_hash(const void *body, size_t len, unsigned char *out)
{
	crypto_generichash(out, MEMO_HASH_LEN, body, len, NULL, 0);
}

/* The first way of hash's bucket. */
static struct memo_entry *
memo_bucket(struct memo *mo, const unsigned char *hash)
{
	uint64_t	k;

	memcpy(&k, hash, sizeof k);
	return &mo->entry[(k & (mo->nbuckets - 1)) * MEMO_WAYS];
}

/* The entry remembering hash at now, or NULL. */
const struct memo_entry *
memo_find(struct memo *mo, const unsigned char *hash, uint64_t now)
{
	struct memo_entry	*b = memo_bucket(mo, hash);

	for (int i = 0; i < MEMO_WAYS; i++)
		if (b[i].until > now &&
		    memcmp(b[i].hash, hash, MEMO_HASH_LEN) == 0)
			return &b[i];
	return NULL;
}

/* Remember that hash crashed a helper at now (cause says how), until. */
void
memo_add(struct memo *mo, const unsigned char *hash, uint64_t now,
    uint64_t until, const char *cause)
{
	struct memo_entry	*b = memo_bucket(mo, hash), *e = &b[0];

	for (int i = 0; i < MEMO_WAYS; i++) {
		if (memcmp(b[i].hash, hash, MEMO_HASH_LEN) == 0 ||
		    b[i].until <= now) {
			e = &b[i];
			break;
		}
		if (b[i].until < e->until)
			e = &b[i];
	}
	if (e->until == 0)
		mo->n++;
	memcpy(e->hash, hash, MEMO_HASH_LEN);
	e->at = now;
	e->until = until;
	strlcpy(e->cause, cause, sizeof e->cause);
}

/* True when the memo has never remembered anything: nothing to look up. */
bool
memo_empty(const struct memo *mo)
{
	return mo == NULL || mo->n == 0;
}
