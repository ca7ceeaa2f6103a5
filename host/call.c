/* SPDX-License-Identifier: ISC */
/*
 * A call's life: one state, and one function per transition (the diagram
 * is in engine-int.h).
 *
 * A call is created with its body framed for a helper, waits in its
 * version's queue, is sent to one helper, and ends exactly once: its
 * result is set, its deadline cancelled, and it goes on the engine's done
 * list, from which engine_run delivers it.  Callbacks therefore never run
 * inside engine_call, engine_probe or a helper event; they run at one
 * point of the turn, where they may make new calls freely.
 */

#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-int.h"

static void	call_free(struct call *);

/* The caller's deadline passed: the pool decides what that means. */
static void
call_expired(void *arg)
{
	pool_call_expired(arg);
}

/*
 * A new call on m (NULL: a call rejected before reaching a version)
 * carrying len bytes of body; NULL with errno.  It is NEW: the caller
 * queues it or finishes it.
 */
struct call *
call_new(struct engine *e, struct module *m, const void *body, size_t len,
    int timeout_ms, engine_cb cb, void *arg)
{
	struct call	*c;

	if (len > WIRE_FRAME_MAX - 8) {
		errno = E2BIG;
		return NULL;
	}
	if ((c = calloc(1, sizeof *c + WIRE_HEADER + 4 + len)) == NULL)
		return NULL;
	c->state = CALL_NEW;
	c->engine = e;
	c->module = m;
	c->id = ++e->nextid;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : e->conf.timeout_ms;
	c->cb = cb;
	c->arg = arg;
	c->len = WIRE_HEADER + 4 + len;
	wire_put_u32(c->frame, (uint32_t)(c->len - 4));
	c->frame[4] = WIRE_CALL;
	if (len > 0)
		memcpy(c->frame + WIRE_HEADER + 4, body, len);
	if (wire_body_nconsumers(body, len, &c->nconsumers) == -1)
		c->nconsumers = 0;
	loop_timer_init(&c->deadline, call_expired, c);
	if (m != NULL)
		module_call_begin(m);
	e->pending++;
	e->ncalls++;
	e->call_bytes += c->len;
	return c;
}

/* NEW -> QUEUED: its deadline starts, and it waits for a helper. */
void
call_queue(struct call *c)
{
	assert(c->state == CALL_NEW);
	c->state = CALL_QUEUED;
	loop_timer_at(c->engine->loop, &c->deadline, loop_now() +
	    (uint64_t)c->timeout_ms * MS_NS);
	pool_enqueue(c, false);
}

/* QUEUED -> SENT: the pool took it off the queue for helper p. */
void
call_send(struct call *c, struct proc *p)
{
	assert(c->state == CALL_QUEUED && c->proc == NULL);
	c->state = CALL_SENT;
	proc_dispatch(p, c);
}

/*
 * SENT -> QUEUED: its helper went before running it (the helper has let
 * go of it already); it goes back to the front of the queue.
 */
void
call_requeue(struct call *c)
{
	assert(c->state == CALL_SENT && c->proc == NULL);
	c->state = CALL_QUEUED;
	pool_enqueue(c, true);
}

/*
 * The caller's answer: NEW, QUEUED or SENT -> ENDED, or ABANDONED when a
 * helper still holds it.  Counted on its version, delivered at the end of
 * the turn.
 */
void
call_finish(struct call *c, enum status st, int decision, const char *detail)
{
	struct module	*m = c->module;

	assert(c->state == CALL_NEW || c->state == CALL_QUEUED ||
	    c->state == CALL_SENT);
	if (c->state == CALL_QUEUED)
		pool_dequeue(c);
	loop_timer_cancel(c->engine->loop, &c->deadline);
	c->state = c->proc != NULL ? CALL_ABANDONED : CALL_ENDED;
	c->result.status = st;
	c->result.decision = st == ST_OK ? decision : ROUTE_NONE;
	c->result.module = m;
	strlcpy(c->result.detail, detail, sizeof c->result.detail);
	if (m != NULL) {
		if (st == ST_OK && !c->probe)
			m->served++;
		else if (st == ST_CRASHED)
			m->crashed++;
		else if (st == ST_TIMED_OUT)
			m->timed_out++;
		else if (st == ST_CRASH_LOOP)
			m->crash_loops++;
	}
	TAILQ_INSERT_TAIL(&c->engine->done, c, doneentry);
}

/*
 * Its helper is done with it (answered it, or went), and has taken it out
 * of its FIFO.  A SENT call stays SENT for the caller to finish or requeue;
 * an abandoned one is now only waiting to be delivered; a ghost is freed.
 */
void
call_leave(struct call *c)
{
	assert(c->proc == NULL);
	switch (c->state) {
	case CALL_ABANDONED:
		c->state = CALL_ENDED;
		break;
	case CALL_GHOST:
		call_free(c);
		break;
	default:
		assert(c->state == CALL_SENT);
		break;
	}
}

/*
 * Hand the caller its result (engine_run only): ENDED -> freed, ABANDONED
 * -> GHOST, still in its helper's FIFO.
 */
void
call_deliver(struct call *c)
{
	struct engine	*e = c->engine;

	assert(c->state == CALL_ENDED || c->state == CALL_ABANDONED);
	TAILQ_REMOVE(&e->done, c, doneentry);
	e->pending--;
	c->cb(&c->result, c->arg);
	if (c->state == CALL_ABANDONED)
		c->state = CALL_GHOST;
	else
		call_free(c);
}

/* The BLAKE2b of c's body (memo.c), computed once. */
const unsigned char *
call_hash(struct call *c)
{
	if (!c->hashed) {
		memo_hash(c->frame + WIRE_HEADER + 4, c->len - WIRE_HEADER - 4,
		    c->bodyhash);
		c->hashed = true;
	}
	return c->bodyhash;
}

/* True while the caller still waits for its answer. */
bool
call_waiting(const struct call *c)
{
	return c->state == CALL_NEW || c->state == CALL_QUEUED ||
	    c->state == CALL_SENT;
}

/* Free a call that is in no list; its version may now be done with. */
static void
call_free(struct call *c)
{
	struct module	*m = c->module;

	c->engine->ncalls--;
	c->engine->call_bytes -= c->len;
	free(c);
	if (m != NULL)
		module_call_end(m);
}
