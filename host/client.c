/* SPDX-License-Identifier: ISC */
/*
 * The client side of the broker protocol, for route-host's own tools
 * (route -s, demo; status uses libroute-host-client): connect, shake
 * hands, send frames, read them.
 */

#include "config.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route-host.h"

/* Send all of b (blocking). */
int
client_send(struct client_conn *cc, const struct wire_buf *b)
{
	size_t	off = 0;
	ssize_t	n;

	while (off < b->len) {
		n = send(cc->fd, b->data + off, b->len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			struct pollfd	pfd = { cc->fd, POLLOUT, 0 };

			(void)poll(&pfd, 1, -1);
			continue;
		}
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/*
 * Take the next whole frame: its type and payload (valid until the next
 * call).  With wait, block until one arrives.  Returns 1 for a frame, 0
 * for none yet, -1 at end of connection or error, with err set.
 */
int
client_frame(struct client_conn *cc, bool wait, uint8_t *type,
    const unsigned char **payload, size_t *len, char *err, size_t errlen)
{
	unsigned char	*p;
	uint32_t	 flen;
	ssize_t		 n;

	if (cc->consumed > 0) {
		memmove(cc->in, cc->in + cc->consumed, cc->inlen - cc->consumed);
		cc->inlen -= cc->consumed;
		cc->consumed = 0;
	}
	for (;;) {
		if (cc->inlen >= 4) {
			flen = wire_get_u32(cc->in);
			if (flen < 1 || flen > PROTO_FRAME_MAX) {
				snprintf(err, errlen, "daemon sent a frame of "
				    "%u bytes", flen);
				return -1;
			}
			if (cc->inlen - 4 >= flen) {
				*type = cc->in[4];
				*payload = cc->in + 5;
				*len = flen - 1;
				cc->consumed = 4 + flen;
				return 1;
			}
		}
		if (cc->insize - cc->inlen < 65536) {
			if ((p = realloc(cc->in, cc->insize + 65536)) == NULL) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			cc->in = p;
			cc->insize += 65536;
		}
		n = recv(cc->fd, cc->in + cc->inlen, cc->insize - cc->inlen,
		    wait ? 0 : MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			snprintf(err, errlen, "%s", n == 0 ? "the daemon closed "
			    "the connection" : strerror(errno));
			return -1;
		}
		cc->inlen += (size_t)n;
	}
}

/* Connect to the daemon at path and shake hands; -1 with err set. */
int
client_connect(struct client_conn *cc, const char *path, char *err,
    size_t errlen)
{
	struct sockaddr_un	 sun;
	struct wire_buf		 b;
	struct wire_reader	 r;
	const unsigned char	*p;
	size_t			 len;
	uint8_t			 type;
	char			 why[DETAIL_MAX];

	memset(cc, 0, sizeof *cc);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof sun.sun_path) >=
	    sizeof sun.sun_path) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if ((cc->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(cc->fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		client_close(cc);
		return -1;
	}
	wire_init(&b);
	proto_hello(&b);
	if (client_send(cc, &b) == -1) {
		wire_free(&b);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		client_close(cc);
		return -1;
	}
	wire_free(&b);
	if (client_frame(cc, true, &type, &p, &len, why, sizeof why) != 1) {
		snprintf(err, errlen, "%s: %s", path, why);
		client_close(cc);
		return -1;
	}
	wire_reader_init(&r, p, len);
	if (type == PROTO_ERROR) {
		wire_read_str16(&r, why, sizeof why);
		snprintf(err, errlen, "%s: refused: %s", path, why);
		client_close(cc);
		return -1;
	}
	if (type != PROTO_WELCOME || (cc->version = wire_read_u16(&r)) <
	    PROTO_VERSION_MIN || cc->version > PROTO_VERSION) {
		snprintf(err, errlen, "%s: not a route-host daemon", path);
		client_close(cc);
		return -1;
	}
	(void)wire_read_u32(&r);
	cc->window = wire_read_u32(&r);
	if (cc->window == 0)
		cc->window = 1;
	return 0;
}

/* Close the connection. */
void
client_close(struct client_conn *cc)
{
	if (cc->fd != -1)
		close(cc->fd);
	cc->fd = -1;
	free(cc->in);
	cc->in = NULL;
	cc->inlen = cc->insize = cc->consumed = 0;
}
