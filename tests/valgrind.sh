#!/bin/sh
# SPDX-License-Identifier: ISC
# Run one test under valgrind: a compiled test directly, a shell test with
# every route-host it starts wrapped in valgrind.  --trace-children=yes:
# the zygote is a program route-host execs (route-host-zygote), and runs
# under valgrind too, as it did when it was forked; the helpers it forks
# stay silent (--child-silent-after-fork=yes), as before.  Each process
# valgrind runs writes its report to a file of its own: the test exits
# 99 when any of them, the zygotes' included, reports an error or a leak
# (their exit statuses are their parents' only).
set -u
logs=$(mktemp -d /tmp/route-host-valgrind-XXXXXX)
trap 'rm -rf "$logs"' EXIT
vg="valgrind --quiet --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite,indirect --child-silent-after-fork=yes \
--trace-children=yes --log-file=$logs/%p.log"
case "$1" in
*.sh)
	ROUTE_HOST_WRAPPER="$vg"
	export ROUTE_HOST_WRAPPER
	sh "$@"
	;;
*)
	$vg "$@"
	;;
esac
rc=$?
# memcheck's errors, and the leaks that count (not its warnings).
errors='^==[0-9]+== (Invalid |Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|Argument .* fishy|Process terminating|[0-9,]+ (\(.*\) )?bytes in [0-9,]+ blocks are (definitely|indirectly) lost)'
for f in "$logs"/*.log; do
	[ -s "$f" ] || continue
	sed "s|^|valgrind: $(basename "$f" .log): |" "$f"
	if grep -Eq "$errors" "$f"; then
		echo "FAIL: valgrind reported an error in process $(basename "$f" .log)"
		[ "$rc" -ne 0 ] || rc=99
	fi
done
exit "$rc"
