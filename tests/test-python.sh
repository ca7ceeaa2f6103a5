#!/bin/sh
# SPDX-License-Identifier: ISC
# The Python module route_host (python/route_host) against a real daemon,
# through this build's libroute-host-client: tests/test_python.py routes
# every field type, pipelines 1000 calls, reads status and meets a
# crashing plugin; then a Client made before its daemon starts routes
# once it does.  Only the daemon runs under ROUTE_HOST_WRAPPER (valgrind):
# python3 itself would take minutes there.
set -u

: "${ROUTE_HOST:=host/route-host}"
: "${SHIPPED_PLUGINS:=plugins/.libs}"
: "${TEST_PLUGINS:=tests/plugins/.libs}"
: "${TOP_BUILDDIR:=.}"
: "${ROUTE_HOST_WRAPPER:=}"
command -v python3 >/dev/null || { echo "# SKIP: no python3"; exit 77; }
srcdir=$(cd "$(dirname "$0")" && pwd)
ROUTE_HOST=$(cd "$(dirname "$ROUTE_HOST")" && pwd)/$(basename "$ROUTE_HOST")
: "${ROUTE_HOST_ZYGOTE:=$(dirname "$ROUTE_HOST")/route-host-zygote}"
export ROUTE_HOST_ZYGOTE
SHIPPED_PLUGINS=$(cd "$SHIPPED_PLUGINS" && pwd)
TEST_PLUGINS=$(cd "$TEST_PLUGINS" && pwd)
TOP_BUILDDIR=$(cd "$TOP_BUILDDIR" && pwd)

# The module as make built it, over this build's library.
ROUTE_HOST_CLIENT_LIBRARY=$TOP_BUILDDIR/client/.libs/libroute-host-client.so.0
PYTHONPATH=$TOP_BUILDDIR/python
PYTHONDONTWRITEBYTECODE=1
export ROUTE_HOST_CLIENT_LIBRARY PYTHONPATH PYTHONDONTWRITEBYTECODE
# A sanitizer build's library needs its runtime loaded first, as in
# test-example.sh; python3's own memory is not this project's to check.
asan=$(ldd "$ROUTE_HOST_CLIENT_LIBRARY" 2>/dev/null |
    awk '/libasan/ { print $3 }')
pyasan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

tmp=$(mktemp -d /tmp/route-host-python-XXXXXX)
chmod 755 "$tmp"
mkdir -m 755 "$tmp/plugins"
sock="$tmp/rh.sock"
pid=""
pypid=""
pass=0
fail=0

cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "$pypid" ] && kill -9 "$pypid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }
# py ARGS...: tests/test_python.py with the module's environment.
py() {
	if [ -n "$asan" ]; then
		LD_PRELOAD="$asan" ASAN_OPTIONS="$pyasan" \
		    python3 "$srcdir/test_python.py" "$@"
	else
		python3 "$srcdir/test_python.py" "$@"
	fi
}
# start_daemon: serve in the foreground, wait for its socket and channels.
start_daemon() {
	# shellcheck disable=SC2086
	$ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -d "$tmp/plugins" -s "$sock" \
	    -c "$tmp/route-host.conf" >>"$tmp/log" 2>&1 &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
}
# stop_daemon: SIGTERM, and wait for it to end.
stop_daemon() {
	kill -TERM "$pid"
	wait "$pid"
	pid=""
}

cp "$SHIPPED_PLUGINS/first-available.so" "$tmp/plugins/orders.so"
cp "$TEST_PLUGINS/misbehave.so" "$tmp/plugins/crashy.so"
cat >"$tmp/route-host.conf" <<CONF
# test-python: a healthy channel and one whose plugin crashes on a call
helpers 2
channel crashy {
	option mode=segv
}
CONF

start_daemon
if [ -S "$sock" ]; then ok "serve listens on $sock"; else
	not_ok "serve listens on $sock"; sed 's/^/#   /' "$tmp/log"
fi
# TAP lines of its own: counted here.
out=$(py "$sock" 2>&1); rc=$?
echo "$out"
pass=$((pass + $(echo "$out" | grep -c '^ok - ')))
fail=$((fail + $(echo "$out" | grep -c '^not ok - ')))
if [ $rc -eq 0 ]; then ok "test_python.py exits 0"; else
	not_ok "test_python.py exits $rc"
fi
stop_daemon

# A Client made before its daemon: the call waits for it (wait_ms).
rm -f "$tmp/ready"
py "$sock" --late "$tmp/ready" >"$tmp/late" 2>&1 &
pypid=$!
i=0
while [ ! -e "$tmp/ready" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.3
start_daemon
wait "$pypid"; rc=$?
pypid=""
cat "$tmp/late"
pass=$((pass + $(grep -c '^ok - ' "$tmp/late")))
fail=$((fail + $(grep -c '^not ok - ' "$tmp/late")))
if [ $rc -eq 0 ]; then ok "test_python.py --late exits 0"; else
	not_ok "test_python.py --late exits $rc"
fi
stop_daemon
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
