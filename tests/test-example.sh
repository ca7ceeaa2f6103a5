#!/bin/sh
# SPDX-License-Identifier: ISC
# A plugin author's path, out of tree: install route-host somewhere, build
# examples/plugin against the installed header with its own Makefile and
# pkg-config, and check the result with route-host check.
set -u

: "${ROUTE_HOST:=host/route-host}"
: "${TOP_BUILDDIR:=.}"
: "${LIBDIR:=/usr/local/lib}"
: "${MANDIR:=/usr/local/share/man}"
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
# A broker author's path: examples/broker against the installed library.
cp -R "$srcdir/examples/broker" "$tmp/br"
chmod -R u+w "$tmp/br"
if PKG_CONFIG_PATH="$tmp/root$LIBDIR/pkgconfig" \
    PKG_CONFIG_SYSROOT_DIR="$tmp/root" \
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$tmp/br" >"$tmp/build" 2>&1; then
	ok "the broker example builds against the installed library"
else
	not_ok "the broker example builds against the installed library"
	sed 's/^/#   /' "$tmp/build"
fi
mkdir -m 755 "$tmp/plugins"
cp "$TOP_BUILDDIR/plugins/.libs/round-robin.so" "$tmp/plugins/orders.so"
chmod 755 "$tmp"
# shellcheck disable=SC2086
$ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -d "$tmp/plugins" \
    -s "$tmp/rh.sock" 2>"$tmp/serve.log" &
spid=$!
# (A sanitizer build's library needs its runtime loaded first: the
# example, built as a broker author builds it, has none of its own.)
asan=$(ldd "$tmp/root$LIBDIR/libroute-host-client.so" 2>/dev/null |
    awk '/libasan/ { print $3 }')
got=$(LD_LIBRARY_PATH="$tmp/root$LIBDIR" LD_PRELOAD="$asan" \
    timeout 120 "$tmp/br/broker" -n 20000 "$tmp/rh.sock" orders 2>&1)
case "$got" in
*"20000 messages in "*"ok 20000 (worker-1 "*)
	ok "it routes 20000 messages through a daemon: $got" ;;
*) not_ok "it routes 20000 messages through a daemon"
   echo "$got" | sed 's/^/#   /' ;;
esac
kill -TERM "$spid"
wait "$spid"
# Every function of the library is exported, and has a manual page.
missing=""
for f in $(grep -o 'rhc_[a-z_]*(' "$srcdir/include/route-host/client.h" |
    tr -d '(' | sort -u); do
	[ -e "$tmp/root$MANDIR/man3/$f.3" ] || missing="$missing $f.3"
	nm -D "$tmp/root$LIBDIR/libroute-host-client.so" | grep -q " T $f\$" ||
	    missing="$missing $f"
done
if [ -z "$missing" ]; then
	ok "every function of client.h is exported and has a page in section 3"
else
	not_ok "every function of client.h is exported and has a page:$missing"
fi
n=$(nm -D --defined-only "$tmp/root$LIBDIR/libroute-host-client.so" |
    awk '$2 == "T" && $3 !~ /^rhc_/' | wc -l)
if [ "$n" -eq 0 ]; then
	ok "and nothing else is exported"
else
	not_ok "$n symbols exported beside rhc_*"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
