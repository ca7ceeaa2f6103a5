/* SPDX-License-Identifier: ISC */
/*
 * An example broker: route N messages (100,000 by default) pipelined
 * through route-host on one connection, count the answers by status,
 * and print the rate.  Copy it; build it with the Makefile beside it.
 *
 *	usage: broker [-n COUNT] SOCKET CHANNEL
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <route-host/client.h>

/* What the answers were. */
struct tally {
	unsigned long	 by_status[128];
	unsigned long	 picked[2];	/* per consumer */
	unsigned long	 answered;
};

/* One call ended: count it. */
static void
done(void *cookie, const struct rhc_result *r)
{
	struct tally	*t = cookie;

	t->answered++;
	if ((unsigned int)r->status < 128)
		t->by_status[r->status]++;
	if (r->status == RHC_OK && r->decision >= 0 && r->decision < 2)
		t->picked[r->decision]++;
	else if (r->status != RHC_OK && t->by_status[r->status] == 1)
		fprintf(stderr, "broker: %s: %s\n", rhc_status_name(r->status),
		    r->detail);
}

/* Seconds on the monotonic clock. */
static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	static const char *const regions[] = { "eu", "us", "ap" };
	struct rhc_conn		*c;
	struct rhc_request	*rq;
	struct tally		 t;
	struct pollfd		 pfd;
	unsigned long		 n = 100000, sent = 0;
	double			 t0, secs;
	int			 ch;

	while ((ch = getopt(argc, argv, "n:")) != -1) {
		if (ch != 'n')
			goto usage;
		n = strtoul(optarg, NULL, 10);
	}
	if (argc - optind != 2)
		goto usage;
	if ((c = rhc_conn_new(argv[optind], NULL)) == NULL ||
	    (rq = rhc_request_new()) == NULL) {
		perror("broker");
		return 1;
	}
	memset(&t, 0, sizeof t);
	t0 = now();
	while (t.answered < n) {
		/* Keep up to 4096 calls pending: the library pipelines them. */
		while (sent < n && rhc_conn_pending(c) < 4096) {
			rhc_request_clear(rq);
			rhc_request_int(rq, "n", (int64_t)sent);
			rhc_request_text(rq, "region", regions[sent % 3], 2);
			rhc_request_consumer(rq, "worker-1", 0, 64, 0, NULL,
			    0);
			rhc_request_consumer(rq, "worker-2", 0, 64, 0, NULL,
			    0);
			if (rhc_conn_submit(c, argv[optind + 1], rq, done,
			    &t) == -1) {
				fprintf(stderr, "broker: %s\n", strerror(errno));
				return 1;
			}
			sent++;
		}
		pfd.fd = rhc_conn_fd(c);
		pfd.events = (short)rhc_conn_events(c);
		pfd.revents = 0;
		if (poll(&pfd, pfd.fd != -1, rhc_conn_timeout(c)) == -1 &&
		    errno != EINTR) {
			perror("poll");
			return 1;
		}
		rhc_conn_process(c, pfd.revents);
	}
	secs = now() - t0;
	printf("%lu messages in %.3f s: %.0f a second; ok %lu (worker-1 %lu, "
	    "worker-2 %lu), other %lu\n", n, secs, (double)n / secs,
	    t.by_status[RHC_OK], t.picked[0], t.picked[1],
	    n - t.by_status[RHC_OK]);
	rhc_request_free(rq);
	rhc_conn_free(c);
	return t.by_status[RHC_OK] == n ? 0 : 1;
usage:
	fprintf(stderr, "usage: broker [-n COUNT] SOCKET CHANNEL\n");
	return 2;
}
