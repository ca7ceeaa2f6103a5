#!/bin/sh
# SPDX-License-Identifier: ISC
# A plugin author's path, out of tree: install route-host somewhere, build
# examples/plugin against the installed header with its own Makefile and
# pkg-config, and check the result with route-host check.
set -u

: "${ROUTE_HOST:=host/route-host}"
: "${TOP_BUILDDIR:=.}"
: "${LIBDIR:=/usr/local/lib}"
: "${ROUTE_HOST_WRAPPER:=}"
srcdir=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/route-host-example-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }

if env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$TOP_BUILDDIR" install DESTDIR="$tmp/root" >"$tmp/install" 2>&1
then
	ok "make install DESTDIR"
else
	not_ok "make install DESTDIR"; sed 's/^/#   /' "$tmp/install"
fi
# The zygote program where route-host runs it from, and nowhere else.
: "${PKGLIBEXECDIR:=/usr/local/libexec/route-host}"
if [ -x "$tmp/root$PKGLIBEXECDIR/route-host-zygote" ] &&
    [ "$(find "$tmp/root" -name 'route-host-zygote*' | wc -l)" -eq 1 ]; then
	ok "make install puts route-host-zygote in $PKGLIBEXECDIR only"
else
	not_ok "make install puts route-host-zygote in $PKGLIBEXECDIR only"
	find "$tmp/root" -name 'route-host-zygote*' | sed 's/^/#   /'
fi
cp -R "$srcdir/examples/plugin" "$tmp/ex"
chmod -R u+w "$tmp/ex"
if PKG_CONFIG_PATH="$tmp/root$LIBDIR/pkgconfig" \
    PKG_CONFIG_SYSROOT_DIR="$tmp/root" \
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$tmp/ex" >"$tmp/build" 2>&1; then
	ok "the example builds against the installed header"
else
	not_ok "the example builds against the installed header"
	sed 's/^/#   /' "$tmp/build"
fi
# shellcheck disable=SC2086
got=$($ROUTE_HOST_WRAPPER "$ROUTE_HOST" check "$tmp/ex/pick-eu.so" 2>&1)
case "$got" in
*'ok: plugin "pick-eu"'*'sample: {"decision": "c"}'*) ok "route-host check passes it" ;;
*) not_ok "route-host check passes it"; echo "$got" | sed 's/^/#   /' ;;
esac
# shellcheck disable=SC2086
got=$($ROUTE_HOST_WRAPPER "$ROUTE_HOST" check --option tag= "$tmp/ex/pick-eu.so" 2>&1)
case "$got" in
*"init failed: pick-eu: tag=NAME must be"*) ok "its option errors reach check" ;;
*) not_ok "its option errors reach check"; echo "$got" | sed 's/^/#   /' ;;
esac
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
