/* SPDX-License-Identifier: ISC */
/*
 * route-host hash: print each file's version, exactly as
 * b2sum -l 256 prints its BLAKE2b-256.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "route-host.h"

/* Print name as coreutils does: a leading backslash if escapes follow. */
static void
cmd_hash_print(const char *hex, const char *name)
{
	bool	escape = strpbrk(name, "\\\n\r") != NULL;

	if (escape)
		putchar('\\');
	printf("%s  ", hex);
	for (const char *p = name; *p != '\0'; p++) {
		if (!escape)
			putchar(*p);
		else if (*p == '\\')
			fputs("\\\\", stdout);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\r')
			fputs("\\r", stdout);
		else
			putchar(*p);
	}
	putchar('\n');
}

/* Hash one file ("-" is standard input); 0, or -1 after a warning. */
static int
cmd_hash_one(const char *path)
{
	unsigned char	hash[VERSION_LEN];
	char		hex[VERSION_HEX_LEN + 1];
	int		fd, rc;

	if (strcmp(path, "-") == 0)
		fd = STDIN_FILENO;
	else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		warn("%s", path);
		return -1;
	}
	rc = version_file(fd, hash);
	if (rc == -1)
		warn("%s", path);
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc == -1)
		return -1;
	version_hex(hash, hex);
	cmd_hash_print(hex, path);
	return 0;
}

/* route-host hash [FILE...] */
int
cmd_hash(int argc, char **argv)
{
	int	rc = 0;

	if (sodium_init() < 0)
		errx(1, "libsodium failed to initialise");
	if (argc > 1 && strcmp(argv[1], "--") == 0) {
		argc--;
		argv++;
	} else if (argc > 1 && argv[1][0] == '-' && argv[1][1] != '\0') {
		warnx("hash: unknown option '%s'", argv[1]);
		fprintf(stderr, "usage: route-host hash [FILE...]\n");
		return 2;
	}
	if (argc < 2)
		return cmd_hash_one("-") == 0 ? 0 : 1;
	for (int i = 1; i < argc; i++)
		if (cmd_hash_one(argv[i]) == -1)
			rc = 1;
	if (fflush(stdout) == EOF)
		err(1, "stdout");
	return rc;
}
