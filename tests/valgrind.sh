#!/bin/sh
# SPDX-License-Identifier: ISC
# Run one test under valgrind: a compiled test directly, a shell test with
# every route-host it starts wrapped in valgrind.
vg="valgrind --quiet --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite,indirect --child-silent-after-fork=yes"
case "$1" in
*.sh)
	ROUTE_HOST_WRAPPER="$vg"
	export ROUTE_HOST_WRAPPER
	exec sh "$@"
	;;
*)
	exec $vg "$@"
	;;
esac
