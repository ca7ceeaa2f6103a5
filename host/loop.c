/* SPDX-License-Identifier: ISC */
/*
 * The event loop: epoll over watches, and one tree of timers on one
 * timerfd.
 *
 * Every deadline in route-host (a call's, a helper's, a version's, the
 * plugins directory's) is a struct timer here, ordered by when it fires;
 * the timerfd is armed at the earliest.  A turn waits once, runs the
 * callbacks of the events it harvested, then the timers that are due.
 * Unwatching a watch cancels the events already harvested for it in the
 * current turn (as libuv does), so a callback may free another watch.
 * The loop never prints and never exits.
 */

#include "config.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "route-host.h"

#define LOOP_EVENTS	64

RB_HEAD(timer_tree, timer);

struct loop {
	int			 epfd;
	struct watch		 timerw;
	uint64_t		 armed;		/* the timerfd's setting, 0: none */
	struct timer_tree	 timers;
	u_int			 ntimers;
	uint64_t		 nextseq;
	struct epoll_event	*batch;		/* being dispatched, or NULL */
	int			 nbatch;
};

/* Order timers by when they fire, then by when they were set. */
static int
loop_timer_cmp(struct timer *a, struct timer *b)
{
	if (a->at != b->at)
		return a->at < b->at ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

RB_GENERATE_STATIC(timer_tree, timer, entry, loop_timer_cmp);

/* Nanoseconds on the monotonic clock. */
uint64_t
loop_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Prepare a timer that calls cb(arg) when it fires; it starts unarmed. */
void
loop_timer_init(struct timer *t, void (*cb)(void *), void *arg)
{
	memset(t, 0, sizeof *t);
	t->cb = cb;
	t->arg = arg;
}

/* Arm (or move) a timer to fire at at, on the monotonic clock. */
void
loop_timer_at(struct loop *l, struct timer *t, uint64_t at)
{
	if (t->armed && t->at == at)
		return;
	loop_timer_cancel(l, t);
	t->at = at;
	t->seq = ++l->nextseq;
	RB_INSERT(timer_tree, &l->timers, t);
	t->armed = true;
	l->ntimers++;
}

/* Disarm a timer; disarming an unarmed timer does nothing. */
void
loop_timer_cancel(struct loop *l, struct timer *t)
{
	if (!t->armed)
		return;
	RB_REMOVE(timer_tree, &l->timers, t);
	t->armed = false;
	l->ntimers--;
}

/* Timers armed; the sanitizer build checks it against the tree. */
u_int
loop_timers(const struct loop *l)
{
	return l->ntimers;
}

/* Count the tree's nodes (for invariant checks). */
u_int
loop_timers_counted(struct loop *l)
{
	struct timer	*t;
	u_int		 n = 0;

	RB_FOREACH(t, timer_tree, &l->timers)
		n++;
	return n;
}

/* Add a watch to the loop. */
int
loop_watch(struct loop *l, struct watch *w, uint32_t events)
{
	struct epoll_event	ev = { .events = events, .data.ptr = w };

	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev);
}

/* Change the events a watch waits for. */
int
loop_rewatch(struct loop *l, struct watch *w, uint32_t events)
{
	struct epoll_event	ev = { .events = events, .data.ptr = w };

	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

/*
 * Remove a watch (before its fd is closed).  Events already harvested for
 * it in this turn are cancelled: its memory may be freed right after.
 */
void
loop_unwatch(struct loop *l, struct watch *w)
{
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	for (int i = 0; l->batch != NULL && i < l->nbatch; i++)
		if (l->batch[i].data.ptr == w)
			l->batch[i].data.ptr = NULL;
}

/* Set the timerfd to the earliest timer, if it must fire sooner. */
static void
loop_arm(struct loop *l)
{
	struct itimerspec	 its;
	struct timer		*t;

	if ((t = RB_MIN(timer_tree, &l->timers)) == NULL)
		return;
	/*
	 * Re-arm only to fire sooner.  A timerfd left at a timer that has
	 * since gone fires once for nothing and is set again then: cheaper
	 * than a syscall every time the earliest timer is cancelled.
	 */
	if (l->armed != 0 && l->armed <= t->at)
		return;
	memset(&its, 0, sizeof its);
	its.it_value.tv_sec = (time_t)(t->at / 1000000000ULL);
	its.it_value.tv_nsec = (long)(t->at % 1000000000ULL);
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;
	(void)timerfd_settime(l->timerw.fd, TFD_TIMER_ABSTIME, &its, NULL);
	l->armed = t->at;
}

/* The timerfd fired: note that it is no longer armed. */
static void
loop_timerfd(struct watch *w, uint32_t events)
{
	struct loop	*l = w->arg;
	uint64_t	 ticks;

	(void)events;
	while (read(w->fd, &ticks, sizeof ticks) == (ssize_t)sizeof ticks)
		;
	l->armed = 0;
}

/* Run every timer that is due; each is disarmed before its callback. */
static void
loop_expire(struct loop *l)
{
	struct timer	*t;
	uint64_t	 now = loop_now();

	while ((t = RB_MIN(timer_tree, &l->timers)) != NULL && t->at <= now) {
		loop_timer_cancel(l, t);
		t->cb(t->arg);
	}
}

/* A new loop; NULL with err set. */
struct loop *
loop_new(char *err, size_t errlen)
{
	struct loop	*l;

	if ((l = calloc(1, sizeof *l)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	RB_INIT(&l->timers);
	l->timerw.fd = -1;
	l->timerw.cb = loop_timerfd;
	l->timerw.arg = l;
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (l->timerw.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK |
	    TFD_CLOEXEC)) == -1 || loop_watch(l, &l->timerw, EPOLLIN) == -1) {
		snprintf(err, errlen, "event loop: %s", strerror(errno));
		loop_free(l);
		return NULL;
	}
	return l;
}

/* Free the loop; its watches and timers belong to their owners. */
void
loop_free(struct loop *l)
{
	if (l == NULL)
		return;
	if (l->timerw.fd != -1)
		close(l->timerw.fd);
	if (l->epfd != -1)
		close(l->epfd);
	free(l);
}

/*
 * Wait up to timeout_ms (-1: no limit, but never past the earliest
 * timer) and handle what happened: watch callbacks, then due timers.
 * Returns the number of events, or -1 with errno if epoll failed.
 */
int
loop_turn(struct loop *l, int timeout_ms)
{
	struct epoll_event	 evs[LOOP_EVENTS];
	struct watch		*w;
	int			 n;

	loop_arm(l);
	n = epoll_wait(l->epfd, evs, LOOP_EVENTS, timeout_ms);
	if (n == -1 && errno != EINTR)
		return -1;
	l->batch = evs;
	l->nbatch = n;
	for (int i = 0; i < n; i++) {
		if ((w = evs[i].data.ptr) != NULL)
			w->cb(w, evs[i].events);
	}
	l->batch = NULL;
	l->nbatch = 0;
	loop_expire(l);
	return n < 0 ? 0 : n;
}
