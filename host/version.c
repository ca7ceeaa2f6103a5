/* SPDX-License-Identifier: ISC */
/*
 * Plugin versions: a version is the BLAKE2b-256 (libsodium's generichash,
 * no key) of a plugin file's bytes, shown as 64 lowercase hex digits, or as
 * its first 12 where a short form is enough.
 */

#include "config.h"

#include <errno.h>
#include <unistd.h>

#include <sodium.h>

#include "route-host.h"

/* Write the 64-digit lowercase hex of a version into hex (65 bytes). */
void
version_hex(const unsigned char *hash, char *hex)
{
	sodium_bin2hex(hex, VERSION_HEX_LEN + 1, hash, VERSION_LEN);
}

/* Hash len bytes of memory. */
int
version_mem(const void *p, size_t len, unsigned char *hash)
{
	return crypto_generichash(hash, VERSION_LEN, p, len, NULL, 0);
}

/* Hash everything readable from fd; -1 with errno on a read error. */
int
version_file(int fd, unsigned char *hash)
{
	crypto_generichash_state	st;
	unsigned char			buf[65536];
	ssize_t				n;

	crypto_generichash_init(&st, NULL, 0, VERSION_LEN);
	for (;;) {
		n = read(fd, buf, sizeof buf);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		crypto_generichash_update(&st, buf, (size_t)n);
	}
	return crypto_generichash_final(&st, hash, VERSION_LEN);
}
