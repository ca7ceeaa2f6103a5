/* SPDX-License-Identifier: ISC */
/* Test plugin: a valid shared object that forgot ROUTE_PLUGIN. */

int	no_descriptor_here(void);

/* A symbol, but not the descriptor. */
int
no_descriptor_here(void)
{
	return 42;
}
