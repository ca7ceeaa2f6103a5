/* SPDX-License-Identifier: ISC */
/*
 * libroute-host-client's insides, shared by its own files only: the
 * request's encoder, which the connection uses to build ROUTE frames.
 */

#ifndef RHC_INT_H
#define RHC_INT_H

#define RHC_ERROR_MAX		256	/* an error text, with its NUL */

int	rhc_request_encode(const struct rhc_request *, struct wire_buf *,
	    uint32_t *);

#endif /* RHC_INT_H */
