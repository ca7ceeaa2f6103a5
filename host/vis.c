/* SPDX-License-Identifier: ISC */
/*
 * Untrusted text made safe to show: whatever a plugin controls (its name,
 * its init error, its standard error) and a symbolic link's target, before
 * it reaches a log line, the status or a call's detail.  vis(3) (libbsd)
 * does the escaping: C-style escapes for all but printable ASCII (newline,
 * tab, escape, bytes over 0x7e), backslash and double quote.  A line cut
 * short is cut at a whole character, never inside an escape (libbsd's
 * strnvis does not terminate what it cuts).
 */

#include "config.h"

#include <string.h>
#define LIBBSD_OPENBSD_VIS	/* strnvis is not used: silence its warning */
#include <vis.h>

#include "route-host.h"

/*
 * Copy srclen bytes of untrusted text, NULs included, escaped, into dst
 * of size len.  Returns how many bytes of src it took: fewer than srclen
 * when dst was too small.
 */
size_t
vis_bytes(char *dst, size_t len, const char *src, size_t srclen)
{
	char	one[5];		/* "\ooo" */
	size_t	off = 0, i, n;

	if (len == 0)
		return 0;
	for (i = 0; i < srclen; i++) {
		nvis(one, sizeof one, (unsigned char)src[i], VIS_CSTYLE |
		    VIS_OCTAL | VIS_NL | VIS_TAB | VIS_DQ,
		    i + 1 < srclen ? (unsigned char)src[i + 1] : '\0');
		n = strlen(one);
		if (off + n >= len)
			break;
		memcpy(dst + off, one, n);
		off += n;
	}
	dst[off] = '\0';
	return i;
}

/* Copy the untrusted string src, escaped, into dst of size len. */
void
vis_string(char *dst, size_t len, const char *src)
{
	(void)vis_bytes(dst, len, src, strlen(src));
}
