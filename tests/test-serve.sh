#!/bin/sh
# SPDX-License-Identifier: ISC
# The daemon end to end, through its socket: pipelining across channels
# and connections, a hung plugin beside a healthy one, hostile clients,
# 200 connections, SIGHUP and hot deploy under traffic, a bad reload,
# SIGTERM with calls in flight, paused connections resuming on the frames
# they hold, SIGTERM with a paused connection, a crash storm, kill -9,
# SIGUSR2 (the program executed again in place), the
# socket (what is at its path, its mode, owner and group, its peers and
# who may connect), and configuration errors.
set -u

: "${ROUTE_HOST:=host/route-host}"
: "${SHIPPED_PLUGINS:=plugins/.libs}"
: "${TEST_PLUGINS:=tests/plugins/.libs}"
: "${ROUTE_HOST_WRAPPER:=}"
srcdir=$(cd "$(dirname "$0")" && pwd)
ROUTE_HOST=$(cd "$(dirname "$ROUTE_HOST")" && pwd)/$(basename "$ROUTE_HOST")
# The zygote program of this build, not an installed one.
: "${ROUTE_HOST_ZYGOTE:=$(dirname "$ROUTE_HOST")/route-host-zygote}"
export ROUTE_HOST_ZYGOTE
SHIPPED_PLUGINS=$(cd "$SHIPPED_PLUGINS" && pwd)
TEST_PLUGINS=$(cd "$TEST_PLUGINS" && pwd)

tmp=$(mktemp -d /tmp/route-host-serve-XXXXXX)
chmod 755 "$tmp"
mkdir -m 755 "$tmp/plugins"
sock="$tmp/rh.sock"
pid=""
pass=0
fail=0

cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }
check() { if eval "$2"; then ok "$1"; else not_ok "$1"; fi; }
# expect NAME WANT GOT
expect() {
	if [ "$2" = "$3" ]; then ok "$1"; else
		not_ok "$1"
		printf '#   want: %s\n#   got:  %s\n' "$2" "$3"
	fi
}
contains() {
	case "$3" in
	*"$2"*) ok "$1" ;;
	*) not_ok "$1"; printf "#   '%s' not in: %s\n" "$2" "$3" ;;
	esac
}
rh() {
	# shellcheck disable=SC2086
	$ROUTE_HOST_WRAPPER "$ROUTE_HOST" "$@"
}
py() {
	if out=$(python3 "$srcdir/serve_client.py" "$sock" "$@" 2>&1); then
		pass=$((pass + 1))
		echo "$out"
	else
		fail=$((fail + 1))
		echo "not ok - serve_client.py $*"
		echo "$out" | sed 's/^/#   /'
	fi
}
# start_daemon [ARGS...]: serve in the foreground, wait for the socket.
start_daemon() {
	# Not through rh: $! must be the daemon itself, not a subshell.
	# shellcheck disable=SC2086
	$ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -d "$tmp/plugins" -s "$sock" \
	    "$@" >>"$tmp/log" 2>&1 &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	# Wait for the channels present to deploy.
	i=0
	while [ $i -lt 50 ] && [ "$(rh status -s "$sock" --json 2>/dev/null |
	    grep -c '"active": "')" -lt "$(ls "$tmp/plugins" | grep -v broken |
	    grep -c '\.so$')" ]; do
		sleep 0.1; i=$((i + 1))
	done
}
# helpers_of PID: the pids of a daemon's zygote and helpers.
helpers_of() {
	# The daemon's children (its zygote) and theirs (the helpers).
	for c in $(ps -o pid= --ppid "$1"); do
		echo "$c"
		ps -o pid= --ppid "$c"
	done | tr -d ' '
}
# alive PIDS...: how many of them still run (zombies do not count).
alive() {
	n=0
	for p in "$@"; do
		st=$(ps -o stat= -p "$p" 2>/dev/null)
		case "$st" in ""|Z*) ;; *) n=$((n + 1)) ;; esac
	done
	echo $n
}

cp "$SHIPPED_PLUGINS/first-available.so" "$tmp/plugins/orders.so"
cp "$SHIPPED_PLUGINS/least-loaded.so" "$tmp/plugins/fast.so"
cp "$SHIPPED_PLUGINS/demo-sleepy.so" "$tmp/plugins/slow.so"
cp "$SHIPPED_PLUGINS/sticky.so" "$tmp/plugins/users.so"
cp "$SHIPPED_PLUGINS/sticky.so" "$tmp/plugins/broken.so"
cp "$SHIPPED_PLUGINS/demo-crashy.so" "$tmp/plugins/crashy.so"
cp "$TEST_PLUGINS/escape.so" "$tmp/plugins/escape.so"
cp "$TEST_PLUGINS/escape.so" "$tmp/plugins/small.so"
cp "$TEST_PLUGINS/escape.so" "$tmp/plugins/roomy.so"
cp "$TEST_PLUGINS/escape.so" "$tmp/plugins/unboxed.so"
cp "$TEST_PLUGINS/escape.so" "$tmp/plugins/vault.so"
cp "$TEST_PLUGINS/escape.so" "$tmp/plugins/finder.so"
cp "$TEST_PLUGINS/escape.so" "$tmp/plugins/sigio.so"
# (Options differ: channels with the same bytes and options share a
# version, and its helpers' settings.)
cat > "$tmp/route-host.conf" <<CONF
# test configuration
helpers 2
channel slow {
	helpers 8
	timeout 1000
}
channel users {
	option field=user
}
channel broken {
	option feild=user
}
channel escape {
	option try=killparent
	poison-memo off		# the same body twice must run twice
}
channel small {
	memory-limit 64
	option try=memory
	option mb=128
	option channel=small
}
channel roomy {
	option try=memory
	option mb=128
}
channel unboxed {
	sandbox no
	option try=killparent
	option channel=unboxed
}
channel vault {
	option try=none
	option api_key=s3cr3t-7f0a9c
}
channel finder {
	option try=secret
	option at=init
	option needle=c9a0f7-t3rc3s
}
channel sigio {
	option try=sigio
}
CONF
start_daemon -c "$tmp/route-host.conf"
check "serve listens on its socket" '[ -S "$sock" ]'

# --- route through the daemon
lines=$(for i in 1 2 3 4 5 6 7 8 9 10; do
	echo '{"message": {"n": '$i'}, "consumers": [{"id": "a", "max_in_flight": 1}, {"id": "b", "max_in_flight": 4}]}'
done)
got=$(echo "$lines" | rh route -s "$sock" -c fast; echo "rc=$?")
check "route -s answers every line, in order, exit 0" \
    '[ "$(echo "$got" | grep -c "\"decision\": \"b\"")" = 10 ] && echo "$got" | grep -q "rc=0"'
got=$(echo '{"consumers": []}' | rh route -s "$sock" -c nope; echo "rc=$?")
contains "route -s to a missing channel is no_such_channel" '"error": "no_such_channel"' "$got"
got=$(echo '{"consumers": []}' | rh route -s "$tmp/none.sock" -c x 2>&1; echo "rc=$?")
contains "route -s without a daemon exits 2" "rc=2" "$got"

# --- the zygote is the program route-host-zygote, exec'd: it and the
# helpers it forks map none of the daemon's own libraries (jansson,
# sodium, libsystemd when built with it), and keep their titles.  The
# daemon (as anyone but root), the zygote and helpers are not dumpable:
# their maps are root's to read.
zy=$(ps -o pid= --ppid "$pid" | tr -d ' ' | head -n 1)
hp=$(ps -o pid= --ppid "$zy" | tr -d ' ' | head -n 1)
if [ "$(id -u)" -eq 0 ]; then
	libs=""
	for lib in libjansson libsodium libsystemd; do
		grep -q "/$lib\." "/proc/$pid/maps" && libs="$libs $lib"
	done
	check "the daemon maps libjansson and libsodium (so the checks below mean something)" \
	    'case "$libs" in *libjansson*libsodium*) true ;; *) false ;; esac'
	mapped() {
		for lib in $libs; do
			grep -q "/$lib\." "/proc/$1/maps" && printf ' %s' "$lib"
		done
		grep -q . "/proc/$1/maps" || echo " (maps unreadable)"
	}
	expect "the zygote maps none of the daemon's libraries:$libs" "" \
	    "$(mapped "$zy")"
	expect "a helper maps none of them either" "" "$(mapped "$hp")"
else
	echo "# the maps of the zygote and helpers: root's only, not checked"
	# Exec makes a process dumpable again: the zygote undoes it.
	check "the zygote is not dumpable (its /proc files are root's)" \
	    '[ "$(stat -c %u "/proc/$zy/maps")" = 0 ]'
fi
if [ -z "$ROUTE_HOST_WRAPPER" ]; then
	[ "$(id -u)" -ne 0 ] ||
	    expect "the zygote runs route-host-zygote" "route-host-zygote" \
	    "$(basename "$(readlink "/proc/$zy/exe")")"
	expect "the zygote is titled route-host: zygote" "route-host: zygote" \
	    "$(ps -o args= -p "$zy")"
	contains "... its helpers route-host: helper LABEL HASH" \
	    "route-host: helper " "$(ps -o args= -p "$hp")"
fi

# --- per-channel plugin options from route-host.conf reach init
got=$(printf '%s\n' '{"message": {"user": "alice"}, "consumers": [{"id": "a", "max_in_flight": 9}, {"id": "b", "max_in_flight": 9}]}' \
    '{"message": {"user": "alice"}, "consumers": [{"id": "a", "max_in_flight": 9}, {"id": "b", "max_in_flight": 9}]}' |
    rh route -s "$sock" -c users)
check "config options reach init: sticky keys stay put" \
    '[ "$(echo "$got" | grep -c "\"decision\": \"[ab]\"")" = 2 ] && [ "$(echo "$got" | sort -u | wc -l)" = 1 ]'
contains "a plugin rejecting its options fails its deploy with its message" \
    "unknown option feild" "$(rh status -s "$sock")"

# --- a plugin signalling the daemon is stopped by its sandbox
# (valgrind runs helpers without the filters: not checked there)
if [ -z "$ROUTE_HOST_WRAPPER" ]; then
	got=$(echo '{"consumers": [{"id": "a", "max_in_flight": 1}, {"id": "b", "max_in_flight": 1}]}' |
	    rh route -s "$sock" -c escape)
	contains "a plugin's kill of the daemon ends its call, naming the system call" \
	    'seccomp: blocked system call kill' "$got"
	echo '{"consumers": [{"id": "a", "max_in_flight": 1}, {"id": "b", "max_in_flight": 1}]}' |
	    rh route -s "$sock" -c escape >/dev/null
	contains "the first sandbox kill of a version is logged" \
	    "the sandbox killed helper" "$(cat "$tmp/log")"
	check "... once: the second is counted, not logged" \
	    '[ "$(grep -c "the sandbox killed" "$tmp/log")" = 1 ]'
	contains "status counts a version's sandbox kills" \
	    '"violations": 2' "$(rh status -s "$sock" --json)"
	contains "... and names the last" \
	    '"last_violation": "seccomp: blocked system call kill"' \
	    "$(rh status -s "$sock" --json)"
	contains "... and says so in text" \
	    "2 killed by the sandbox, last: seccomp: blocked system call kill" \
	    "$(rh status -s "$sock")"
	got=$(echo '{"consumers": [{"id": "a", "max_in_flight": 1}]}' |
	    rh route -s "$sock" -c orders)
	contains "the daemon and its other channels keep serving" \
	    '"decision": "a"' "$got"
	two='{"consumers": [{"id": "a", "max_in_flight": 1}, {"id": "b", "max_in_flight": 1}]}'
	contains "memory-limit 64: 128 MiB cannot be had" \
	    '"decision": "a"' "$(echo "$two" | rh route -s "$sock" -c small)"
	contains "the default memory limit allows 128 MiB" \
	    '"decision": "b"' "$(echo "$two" | rh route -s "$sock" -c roomy)"
	contains "sandbox no: nothing stops the plugin (SIGCONT to its parent)" \
	    '"decision": "b"' "$(echo "$two" | rh route -s "$sock" -c unboxed)"
	contains "a plugin cannot own its socket to have the daemon signalled" \
	    '"decision": "a"' "$(echo "$two" | rh route -s "$sock" -c sigio)"
	contains "... and the daemon serves the calls written after that" \
	    '"decision": "a"' "$(echo "$two" | rh route -s "$sock" -c sigio)"
	contains "sandbox no is logged as a warning" \
	    "channel unboxed: sandbox off" "$(cat "$tmp/log")"
fi

# --- a helper holds nothing of the daemon's memory: the zygote forked it
# before the daemon read its configuration (needle is vault's key
# backwards).  Under valgrind, valgrind's own memory beside the plugin's
# holds copies of what the process read: not checked there.
if [ -z "$ROUTE_HOST_WRAPPER" ]; then
	two='{"consumers": [{"id": "a", "max_in_flight": 1}, {"id": "b", "max_in_flight": 1}]}'
	contains "another channel's option is nowhere in a helper's memory" \
	    '"decision": "a"' "$(echo "$two" | rh route -s "$sock" -c finder)"
	contains "... though the vault channel that has it is deployed" \
	    '"decision": "a"' "$(echo "$two" | rh route -s "$sock" -c vault)"
fi

# --- after a crash a channel keeps a loaded spare, which status shows
poison='{"message": {"poison": true}, "consumers": [{"id": "a", "max_in_flight": 1}]}'
healthy='{"consumers": [{"id": "a", "max_in_flight": 1}]}'
got=$(echo "$poison" | rh route -s "$sock" -c crashy)
contains "a crash through the daemon is crashed, with its cause" \
    '"error": "crashed"' "$got"
check "a crash is logged: channel, version, pid, cause" \
    'grep -Eq "crashy [0-9a-f]{12}: helper [0-9]+ crashed in a call: SIG" "$tmp/log"'
contains "status shows a version's last crash, and where" \
    '"last_crash": "SIGSEGV: address 0x0, in the plugin at offset 0x' \
    "$(rh status -s "$sock" --json)"
contains "status (text) shows it too" "crashed, last: SIGSEGV: address 0x0" \
    "$(rh status -s "$sock")"
i=0
while [ $i -lt 100 ] && ! rh status -s "$sock" --json |
    grep -q '"state": "standby"'; do
	sleep 0.1; i=$((i + 1))
done
contains "status shows the spare standing by" '"state": "standby"' \
    "$(rh status -s "$sock" --json)"
got=$(printf '%s\n%s\n' "$poison" "$healthy" | rh route -s "$sock" -c crashy)
check "the next crash is replaced by the spare: the call after it answers" \
    '[ "$(echo "$got" | grep -c "\"error\": \"crashed\"")" = 1 ] &&
     [ "$(echo "$got" | grep -c "\"decision\": \"a\"")" = 1 ]'

# --- the protocol, from outside
py pipeline
py hang
check "a deadline kill is logged: channel, version, pid, why" \
    'grep -Eq "slow [0-9a-f]{12}: helper [0-9]+ killed: a call ran past its 3000 ms deadline" "$tmp/log"'
py garbage
py badname
py noread
py many

# --- a client written in Python from route-host-protocol(7) alone
if out=$(python3 "$srcdir/proto_client.py" "$sock" orders 2>&1); then
	ok "the protocol page's own client: handshake, pipelined calls, status, error"
else
	not_ok "the protocol page's own client"
	echo "$out" | sed 's/^/#   /'
fi

# --- status
got=$(rh status -s "$sock")
contains "status lists channels" "orders" "$got"
contains "status shows served counts" "SERVED" "$got"
got=$(rh status -s "$sock" --json)
contains "status --json" '"channels": [' "$got"

# --- SIGHUP and hot deploy during traffic
python3 -c '
import json
for i in range(3000):
    print(json.dumps({"message": {"i": i}, "consumers": [{"id": "a", "max_in_flight": 1}, {"id": "b", "max_in_flight": 9}]}))
' > "$tmp/lines"
rh route -s "$sock" -c orders < "$tmp/lines" > "$tmp/out" 2>&1 &
rpid=$!
kill -HUP "$pid"; sleep 0.05
cp "$SHIPPED_PLUGINS/least-loaded.so" "$tmp/plugins/.orders.new"
mv "$tmp/plugins/.orders.new" "$tmp/plugins/orders.so"
kill -HUP "$pid"
wait $rpid
check "SIGHUP and a hot deploy mid-traffic: 3000 answered, none failed" \
    '[ "$(grep -c "\"decision\"" "$tmp/out")" = 3000 ]'
got=$(rh status -s "$sock" --json)
check "a version shared by two channels shows under both" \
    'echo "$got" | python3 -c "
import json, sys
chs = {c[\"channel\"]: c for c in json.load(sys.stdin)[\"channels\"]}
for name in (\"orders\", \"fast\"):
    act = [v for v in chs[name][\"versions\"] if v[\"state\"] == \"active\"]
    assert act and act[0][\"version\"] == chs[name][\"active\"], name
assert chs[\"orders\"][\"active\"] == chs[\"fast\"][\"active\"]
"'
check "both versions answered during the deploy" \
    '[ "$(grep -o "\"version\": \"[0-9a-f]*\"" "$tmp/out" | sort -u | wc -l)" -ge 1 ]'

# --- a reload changes the window for new connections
check "a new connection is told the default window" \
    '[ "$(python3 "$srcdir/serve_client.py" "$sock" window)" = 1024 ]'
echo "window 64" >> "$tmp/route-host.conf"
kill -HUP "$pid"
i=0
while [ $i -lt 50 ] &&
    [ "$(python3 "$srcdir/serve_client.py" "$sock" window)" != 64 ]; do
	sleep 0.1; i=$((i + 1))
done
check "after a reload a new connection is told the new window" \
    '[ "$(python3 "$srcdir/serve_client.py" "$sock" window)" = 64 ]'
contains "a reload logs what changed, on one line" \
    "rescanned the plugins directory: window 1024 -> 64" "$(cat "$tmp/log")"
got=$(rh status -s "$sock" --json)
check "status: the last reload, ok; the effective settings; uptime" \
    'echo "$got" | python3 -c "
import json, sys
j = json.load(sys.stdin)
assert j[\"last_reload\"][\"ok\"] is True, j[\"last_reload\"]
assert j[\"settings\"][\"window\"] == 64, j[\"settings\"]
assert j[\"uptime_s\"] >= 0 and j[\"started\"] > 0
ch = [c for c in j[\"channels\"] if c[\"channel\"] == \"orders\"][0]
assert ch[\"results\"][\"ok\"] == ch[\"served\"] > 0, ch[\"results\"]
assert sum(b[\"count\"] for b in ch[\"latency_histogram\"]) == ch[\"served\"]
"'
# A file refused for a channel that does not exist yet shows in status.
cp "$SHIPPED_PLUGINS/first-available.so" "$tmp/plugins/no good.so"
kill -HUP "$pid"
i=0
while [ $i -lt 50 ] && ! rh status -s "$sock" --json | grep -q '"refused": \[$'; do
	sleep 0.1; i=$((i + 1))
done
contains "status lists a refused file no channel holds" \
    "refused: no good.so: 'no good' is not a channel name" \
    "$(rh status -s "$sock")"
rm -f "$tmp/plugins/no good.so"

# --- a bad configuration on reload keeps the old one
echo "helpers lots" >> "$tmp/route-host.conf"
kill -HUP "$pid"
sleep 0.3
check "daemon survives a bad reload" 'kill -0 "$pid"'
contains "a bad reload names file, line and reason" \
    "route-host.conf:$(wc -l <"$tmp/route-host.conf"): 'lots' is invalid" \
    "$(cat "$tmp/log")"
contains "a bad reload keeps the running configuration" \
    "keeping the running configuration" "$(cat "$tmp/log")"
contains "status shows the last reload failed, and why" \
    "FAILED: $tmp/route-host.conf:" "$(rh status -s "$sock")"

# --- SIGTERM with calls in flight
helpers=$(helpers_of "$pid")
python3 "$srcdir/serve_client.py" "$sock" inflight > "$tmp/inflight" 2>&1 &
ipid=$!
i=0; while ! grep -q sent "$tmp/inflight" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
sleep 0.05
kill -TERM "$pid"
wait "$pid"; rc=$?
pid=""
if wait $ipid; then ok "SIGTERM: calls in flight answered"; else not_ok "SIGTERM: calls in flight answered"; sed 's/^/#   /' "$tmp/inflight"; fi
check "SIGTERM: exit 0" '[ $rc -eq 0 ]'
[ $rc -eq 0 ] || grep -v "route-host\[" "$tmp/log" | head -60 | sed 's/^/#   /'
check "SIGTERM: socket removed" '[ ! -e "$sock" ]'
sleep 0.2
# shellcheck disable=SC2086
check "SIGTERM: no helper left" '[ "$(alive $helpers)" = 0 ]'

# stop_daemon: SIGTERM, wait; rc is its exit status.
stop_daemon() {
	kill -TERM "$pid"
	wait "$pid"; rc=$?
	pid=""
}

# --- a paused connection resumes on the frames it already holds
echo "window 4" > "$tmp/window.conf"
start_daemon -c "$tmp/window.conf"
py resume_window
py resume_output
stop_daemon
check "after the paused connections: exit 0" '[ $rc -eq 0 ]'

# --- SIGTERM while a connection is paused with frames held back
cp "$TEST_PLUGINS/misbehave.so" "$tmp/plugins/sleep.so"
cat > "$tmp/paused.conf" <<CONF
window 1
channel sleep {
	timeout 60000
	option mode=sleep
	option ms=60000
}
CONF
start_daemon -c "$tmp/paused.conf"
python3 "$srcdir/serve_client.py" "$sock" paused_stop > "$tmp/paused" 2>&1 &
cpid=$!
# Not through a pipe to grep -q: a status killed by SIGPIPE leaks, and
# valgrind says so.
i=0
while [ $i -lt 100 ]; do
	case "$(rh status -s "$sock" --json 2>/dev/null)" in
	*'"in_flight": 1,'*) break ;;
	esac
	sleep 0.1; i=$((i + 1))
done
: >"$tmp/log"
stop_daemon
if wait $cpid; then
	ok "SIGTERM, paused connection: its call answered, nothing more read"
else
	not_ok "SIGTERM, paused connection: its call answered, nothing more read"
	sed 's/^/#   /' "$tmp/paused"
fi
check "SIGTERM, paused connection: exit 0" '[ $rc -eq 0 ]'
[ $rc -eq 0 ] || grep -v "route-host\[" "$tmp/log" | head -40 | sed 's/^/#   /'
rm -f "$tmp/plugins/sleep.so"

# --- a crash storm: half of the calls crash their helper
# 4096 calls queue at once: a generous deadline keeps this about crashes.
cat > "$tmp/storm.conf" <<CONF
window 1024
max-in-flight 8192
channel crashy {
	timeout 60000
}
CONF
start_daemon -c "$tmp/storm.conf"
# 4 connections x 2000 calls; under valgrind (about 20 calls a second) 50.
if [ -n "$ROUTE_HOST_WRAPPER" ]; then
	py storm 50
else
	py storm 2000
fi
check "the daemon is up after the storm" 'kill -0 "$pid"'
stop_daemon
check "after the storm: exit 0" '[ $rc -eq 0 ]'

# --- kill -9 leaves no helper behind
start_daemon
echo '{"consumers": [{"id": "a", "max_in_flight": 1}]}' | rh route -s "$sock" -c orders >/dev/null
helpers=$(helpers_of "$pid")
# shellcheck disable=SC2086
check "the zygote and a helper are running" '[ "$(alive $helpers)" -ge 2 ]'
kill -9 "$pid"; wait "$pid" 2>/dev/null
pid=""
# shellcheck disable=SC2086
i=0; while [ "$(alive $helpers)" != 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
# shellcheck disable=SC2086
check "kill -9 of the daemon: its zygote and helpers die with it" '[ "$(alive $helpers)" = 0 ]'
rm -f "$sock"

# --- SIGUSR2: the daemon executes its program file again, in place: the
# same pid and socket, its old zygote and helpers gone.  A program file it
# cannot execute is refused, and it keeps serving.  SIGTERM then removes
# the socket, as ever.  (A copy of the program: its mode is changed.)
cp "$ROUTE_HOST" "$tmp/route-host-copy"
saved_route_host=$ROUTE_HOST
ROUTE_HOST=$tmp/route-host-copy
start_daemon
ROUTE_HOST=$saved_route_host
one='{"consumers": [{"id": "a", "max_in_flight": 1}]}'
echo "$one" | rh route -s "$sock" -c orders >/dev/null
helpers=$(helpers_of "$pid")
kill -USR2 "$pid"
i=0
while [ "$(grep -c 'kept across SIGUSR2' "$tmp/log")" -lt 1 ] &&
    [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
contains "SIGUSR2: the daemon says it executes its program again" \
    "SIGUSR2: stopping, then executing $tmp/route-host-copy again" \
    "$(cat "$tmp/log")"
check "SIGUSR2: the same process serves on the same socket" \
    '[ "$(alive "$pid")" = 1 ] && [ -S "$sock" ]'
contains "SIGUSR2: and routes" '"decision": "a"' \
    "$(echo "$one" | rh route -s "$sock" -c orders 2>&1)"
contains "SIGUSR2: status: the socket is still the daemon's own" \
    '"socket_activated": false' "$(rh status -s "$sock" --json)"
# shellcheck disable=SC2086
check "SIGUSR2: the old zygote and helpers are gone" \
    '[ "$(alive $helpers)" = 0 ]'
chmod 644 "$tmp/route-host-copy"
kill -USR2 "$pid"
i=0
while ! grep -q "cannot execute" "$tmp/log" && [ $i -lt 50 ]; do
	sleep 0.1; i=$((i + 1))
done
contains "SIGUSR2: a program file it cannot execute is refused" \
    "SIGUSR2: cannot execute $tmp/route-host-copy: Permission denied; still serving" \
    "$(cat "$tmp/log")"
contains "SIGUSR2 refused: still routing" '"decision": "a"' \
    "$(echo "$one" | rh route -s "$sock" -c orders 2>&1)"
chmod 755 "$tmp/route-host-copy"
stop_daemon
check "SIGUSR2, then SIGTERM: exit 0, the socket removed" \
    '[ $rc -eq 0 ] && [ ! -e "$sock" ]'

# --- every escape, through the daemon: each attempt fails inside the
# plugin or the sandbox ends its call; the daemon serves on, and leaves
# nothing behind.  (Not under valgrind: helpers run without filters.)
if [ -z "$ROUTE_HOST_WRAPPER" ]; then
	mkdir "$tmp/escapes"
	: > "$tmp/escapes.conf"
	for try in killparent killgroup fork exec thread peek open create socket connect memory fds sigio shadow procmem; do
		for at in call init; do
			cp "$TEST_PLUGINS/escape.so" "$tmp/escapes/$try-$at.so"
			printf 'channel %s-%s {\n\thelpers 1\n\toption try=%s\n\toption at=%s\n}\n' \
			    "$try" "$at" "$try" "$at" >> "$tmp/escapes.conf"
		done
	done
	"$ROUTE_HOST" serve -f -c "$tmp/escapes.conf" -d "$tmp/escapes" \
	    -s "$sock" >>"$tmp/log" 2>&1 &
	pid=$!
	i=0
	while [ $i -lt 100 ] && [ "$(rh status -s "$sock" --json 2>/dev/null |
	    grep -c '"active": "')" -lt "$(ls "$tmp/escapes" | wc -l)" ]; do
		sleep 0.1; i=$((i + 1))
	done
	two='{"consumers": [{"id": "a", "max_in_flight": 1}, {"id": "b", "max_in_flight": 1}]}'
	escaped=""
	for f in "$tmp"/escapes/*.so; do
		c=$(basename "$f" .so)
		got=$(echo "$two" | rh route -s "$sock" -c "$c" 2>&1)
		case "$got" in
		*'"decision": "a"'*|*'"error": "crashed"'*) ;;
		*) escaped="$escaped $c: $got" ;;
		esac
	done
	expect "daemon: every escape fails or is ended by the sandbox" "" \
	    "$escaped"
	check "... and the daemon serves on" 'kill -0 "$pid"'
	helpers=$(helpers_of "$pid")
	stop_daemon
	check "... and stops cleanly" '[ $rc -eq 0 ]'
	i=0; while [ "$(alive $helpers)" != 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
	# shellcheck disable=SC2086
	check "... leaving no process behind" '[ "$(alive $helpers)" = 0 ]'
	expect "... nor a file" "" "$(ls /tmp/route-host-escaped 2>/dev/null)"
fi

# --- a plugin cannot forge the daemon's log lines: what it says (its init
# error, its name, its standard error) reaches the log, the status and a
# call's detail escaped by the daemon, on one line, without a raw control
# character
mkdir -m 755 "$tmp/forge"
cp "$TEST_PLUGINS/forge.so" "$tmp/forge/forged.so"
cp "$TEST_PLUGINS/forge.so" "$tmp/forge/misnamed.so"
cp "$TEST_PLUGINS/forge.so" "$tmp/forge/loud.so"
printf 'channel forged {\n\toption try=init\n}\nchannel misnamed {\n\toption try=name\n}\nchannel loud {\n\toption try=stderr\n}\n' \
    > "$tmp/forge.conf"
# shellcheck disable=SC2086
$ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -c "$tmp/forge.conf" \
    -d "$tmp/forge" -s "$sock" >"$tmp/forge.log" 2>&1 &
pid=$!
i=0
while [ $i -lt 100 ] && [ "$(rh status -s "$sock" --json 2>/dev/null |
    grep -c '"error": ".*not deployed')" -lt 2 ]; do
	sleep 0.1; i=$((i + 1))
done
one='{"consumers": [{"id": "a", "max_in_flight": 1}]}'
contains "a plugin writing to its standard error is served" \
    '"decision": "a"' "$(echo "$one" | rh route -s "$sock" -c loud)"
i=0
while [ $i -lt 100 ] && ! grep -q 'stderr: nul' "$tmp/forge.log"; do
	sleep 0.1; i=$((i + 1))
done
esc=$(printf '\033')
contains "... and what it writes is logged escaped, a line at a time" \
    ': stderr: route-host[1]: info: channel payments: deployed 0123456789ab (plugin \"forged\")\033[31m red\001\177' \
    "$(grep '^route-host\[[0-9]*\]: info: loud [0-9a-f]\{12\}: helper [0-9]*: stderr: ' "$tmp/forge.log")"
expect "a plugin's forged log line starts no line of the log" "0" \
    "$(grep -c '^route-host\[1\]' "$tmp/forge.log")"
expect "... and no raw escape reaches the log" "0" \
    "$(grep -c "$esc" "$tmp/forge.log")"
contains "its init error is logged escaped, on its own line" \
    'init failed: bad config\nroute-host[1]: info: channel payments: deployed 0123456789ab (plugin \"forged\")\033[31m red' \
    "$(grep 'channel forged:' "$tmp/forge.log")"
got=$(rh status -s "$sock" --json)
contains "... and shown escaped by status" \
    'bad config\\nroute-host[1]: info: channel payments' "$got"
check "... with no raw control character in the status" \
    '! echo "$got" | grep -q "$esc"'
contains "a name holding a newline is refused by the daemon" \
    'channel misnamed: ' "$(grep 'bad descriptor: plugin name' "$tmp/forge.log")"
contains "... and shown escaped" \
    'plugin name "forge\nroute-host[1]: info: fake"' \
    "$(grep 'channel misnamed:' "$tmp/forge.log")"
two='{"consumers": [{"id": "a", "max_in_flight": 1}]}'
contains "a call to a channel that never deployed is no_such_channel" \
    '"error": "no_such_channel"' \
    "$(echo "$two" | rh route -s "$sock" -c misnamed)"
stop_daemon
check "... and the daemon stops cleanly" '[ $rc -eq 0 ]'
[ $rc -eq 0 ] || sed 's/^/#   /' "$tmp/forge.log" | head -20

# --- the socket: what is at its path, its mode, owner and group from the
# first instant, and who may connect
mkdir -m 755 "$tmp/one" "$tmp/sk"
cp "$SHIPPED_PLUGINS/first-available.so" "$tmp/one/orders.so"
me=$(id -u)
mygroup=$(id -gn)
# serve_sock SOCKET [ARGS...]: serve the one channel in the background,
# with a watcher that records the socket's first mode, uid and gid
# in $tmp/first; wait until it answers status.
serve_sock() {
	s=$1
	shift
	rm -f "$tmp/first" "$tmp/watching"
	python3 -c '
import os, sys, time
open(sys.argv[2], "w").close()
end = time.monotonic() + 30
while time.monotonic() < end:
    try:
        st = os.lstat(sys.argv[1])
    except FileNotFoundError:
        continue
    print("%o %d %d" % (st.st_mode & 0o7777, st.st_uid, st.st_gid))
    break
' "$s" "$tmp/watching" >"$tmp/first" &
	wpid=$!
	i=0
	while [ ! -e "$tmp/watching" ] && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	# shellcheck disable=SC2086
	$ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -d "$tmp/one" -s "$s" \
	    "$@" >>"$tmp/log" 2>&1 &
	pid=$!
	wait $wpid
	i=0
	while [ $i -lt 100 ] && ! rh status -s "$s" >/dev/null 2>&1; do
		sleep 0.1; i=$((i + 1))
	done
}

echo "not a socket" > "$tmp/sk/file.sock"
got=$(timeout 60 $ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -d "$tmp/one" -s "$tmp/sk/file.sock" 2>&1; echo "rc=$?")
contains "a regular file at the socket path: serve refuses, naming it" \
    "$tmp/sk/file.sock: exists and is a regular file, not a socket" "$got"
contains "... and exits 1" "rc=1" "$got"
expect "... and the file is left as it was" "not a socket" \
    "$(cat "$tmp/sk/file.sock" 2>&1)"
# The zygote program is the installed one or ROUTE_HOST_ZYGOTE, never
# anything else: missing, serve does not start.
got=$(ROUTE_HOST_ZYGOTE="$tmp/none/route-host-zygote" timeout 60 \
    $ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -d "$tmp/one" \
    -s "$tmp/sk/nozygote.sock" 2>&1; echo "rc=$?")
contains "no zygote program: serve refuses to start, naming it" \
    "serve: starting the zygote: cannot run $tmp/none/route-host-zygote: No such file or directory" \
    "$got"
contains "... and exits 1" "rc=1" "$got"
check "... with no socket made" '[ ! -e "$tmp/sk/nozygote.sock" ]'
got=$(ROUTE_HOST_ZYGOTE=host/route-host-zygote timeout 60 \
    $ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -d "$tmp/one" \
    -s "$tmp/sk/nozygote.sock" 2>&1; echo "rc=$?")
contains "ROUTE_HOST_ZYGOTE must be an absolute path" \
    "serve: ROUTE_HOST_ZYGOTE=host/route-host-zygote: not an absolute path" \
    "$got"
contains "... or serve exits 1" "rc=1" "$got"
got=$("$ROUTE_HOST_ZYGOTE" 2>&1; echo "rc=$?")
contains "route-host-zygote run by hand says it is not, exit 2" \
    "it is not run by hand
rc=2" "$got"

mkdir "$tmp/sk/dir.sock"
got=$(timeout 60 $ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -d "$tmp/one" -s "$tmp/sk/dir.sock" 2>&1; echo "rc=$?")
contains "a directory at the socket path: refused, naming it" \
    "$tmp/sk/dir.sock: exists and is a directory, not a socket" "$got"
check "... and left there" '[ -d "$tmp/sk/dir.sock" ]'

# The default: 0660, the daemon's user and group, from the first instant.
serve_sock "$tmp/sk/rh.sock"
expect "default socket: mode 0660, the daemon's uid and gid, from the first instant" \
    "660 $me $(id -g)" "$(cat "$tmp/first")"
sock="$tmp/sk/rh.sock"
py peers
got=$(timeout 60 $ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -d "$tmp/one" -s "$sock" 2>&1; echo "rc=$?")
contains "a live socket: a second serve refuses, exit 1" \
    "another route-host is listening" "$got"
kill -9 "$pid"; wait "$pid" 2>/dev/null
pid=""
check "kill -9 leaves a stale socket" '[ -S "$sock" ]'
serve_sock "$sock"
check "a stale socket is replaced" 'rh status -s "$sock" >/dev/null'
stop_daemon

# socket-mode, and socket-group a group the runner is in.
printf 'socket-mode 0600\nsocket-group %s\n' "$mygroup" > "$tmp/sk.conf"
serve_sock "$tmp/sk/rh.sock" -c "$tmp/sk.conf"
expect "socket-mode 0600, socket-group $mygroup: from the first instant" \
    "600 $me $(id -g)" "$(cat "$tmp/first")"
stop_daemon
check "socket-mode: exit 0" '[ $rc -eq 0 ]'

if [ "$me" -eq 0 ] && getent group nogroup >/dev/null &&
    getent passwd nobody >/dev/null; then
	printf 'socket-owner nobody\nsocket-group nogroup\nsocket-mode 0640\n' \
	    > "$tmp/sk.conf"
	serve_sock "$tmp/sk/rh.sock" -c "$tmp/sk.conf"
	expect "as root, socket-owner nobody, socket-group nogroup, mode 0640: from the first instant" \
	    "640 $(id -u nobody) $(getent group nogroup | cut -d: -f3)" \
	    "$(cat "$tmp/first")"
	stop_daemon
	# allow-uid 0 on a socket anyone may connect to: nobody is refused.
	printf 'socket-mode 0666\nallow-uid 0\n' > "$tmp/sk.conf"
	serve_sock "$tmp/sk/rh.sock" -c "$tmp/sk.conf"
	# (A PATH of its own: root's python3 may be somewhere nobody
	# cannot reach.)  The ERROR comes at once, before any HELLO.
	got=$(setpriv --reuid=nobody --regid=nogroup --init-groups \
	    env PATH=/usr/local/bin:/usr/bin:/bin python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
buf = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    buf += b
print("type %#x: %s" % (buf[4], buf[7:].decode()) if len(buf) > 7 else "closed")
' "$tmp/sk/rh.sock" 2>&1)
	contains "allow-uid 0: nobody is refused with an ERROR" \
	    "type 0xff: not allowed: uid $(id -u nobody)" "$got"
	check "... and root is served" 'rh status -s "$tmp/sk/rh.sock" >/dev/null'
	stop_daemon
	# allow-gid names a supplementary group of the peer's, not its
	# primary one: allowed (SO_PEERGROUPS).
	printf 'socket-mode 0666\nallow-uid 0\nallow-gid 4000002\n' \
	    > "$tmp/sk.conf"
	serve_sock "$tmp/sk/rh.sock" -c "$tmp/sk.conf"
	hello='
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(struct.pack("<IBHH", 5, 1, 1, 1))
except OSError:
    pass    # refused and closed already: the ERROR waits
b = s.recv(4096)
print("type %#x" % b[4] if len(b) > 4 else "closed")
'
	got=$(setpriv --reuid=nobody --regid=nogroup --groups=4000002 \
	    env PATH=/usr/local/bin:/usr/bin:/bin python3 -c "$hello" \
	    "$tmp/sk/rh.sock" 2>&1)
	expect "allow-gid: a peer whose supplementary group it names is served" \
	    "type 0x81" "$got"
	got=$(setpriv --reuid=nobody --regid=nogroup --groups=4000003 \
	    env PATH=/usr/local/bin:/usr/bin:/bin python3 -c "$hello" \
	    "$tmp/sk/rh.sock" 2>&1)
	expect "... and one in none of its groups is refused" "type 0xff" "$got"
	stop_daemon
else
	echo "# skipped: socket-owner nobody, socket-group nogroup and a peer" \
	    "connecting as nobody need root (running as $(id -un))"
	printf 'socket-owner root\n' > "$tmp/sk.conf"
	got=$(timeout 60 $ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -c "$tmp/sk.conf" \
	    -d "$tmp/one" -s "$tmp/sk/rh.sock" 2>&1; echo "rc=$?")
	contains "not root, socket-owner root: refuses to start, naming the socket" \
	    "$tmp/sk/rh.sock: socket-owner root: Operation not permitted" "$got"
	check "... and leaves no socket behind" '[ ! -e "$tmp/sk/rh.sock" ]'
fi

# allow-uid without the runner: refused, logged at info; with it, served.
printf 'allow-uid 4000000\nallow-gid 4000001\n' > "$tmp/sk.conf"
: >"$tmp/log"
serve_sock "$tmp/sk/rh.sock" -c "$tmp/sk.conf" -v
py refused
contains "a refused peer is logged at info, with its credentials" \
    "info: refused a client: pid " "$(cat "$tmp/log")"
printf 'allow-uid 4000000 %s\n' "$me" > "$tmp/sk.conf"
kill -HUP "$pid"
i=0
while [ $i -lt 50 ] && ! rh status -s "$sock" >/dev/null 2>&1; do
	sleep 0.1; i=$((i + 1))
done
check "allow-uid with the runner's uid, after a reload: served" \
    'rh status -s "$sock" >/dev/null'
contains "serve -v logs each client's credentials when it connects" \
    "debug: client fd" "$(grep "uid $me gid" "$tmp/log")"
stop_daemon
check "allow-uid: exit 0" '[ $rc -eq 0 ]'

# --- configuration errors refuse to start
# serve -n: every error of a file, with its line; then the plugins
printf 'timeout 5\nhelpers many\nchannel orders {\n\tbogus 1\n}\n' \
    > "$tmp/two.conf"
got=$(rh serve -n -c "$tmp/two.conf" -d "$tmp/one" 2>&1; echo "rc=$?")
contains "serve -n names every error: the first" \
    "two.conf:2: 'many' is invalid" "$got"
contains "... and the second" "two.conf:4: unknown channel setting 'bogus'" \
    "$got"
contains "... counts them and exits 1" "two.conf: 2 errors" "$got"
contains "... exit 1" "rc=1" "$got"
printf 'timeout 500\n' > "$tmp/good.conf"
got=$(rh serve -n -c "$tmp/good.conf" -d "$tmp/one" -s "$tmp/never.sock" \
    2>&1; echo "rc=$?")
contains "serve -n: a good file and a plugin that loads: ok, exit 0" \
    "channel orders: ok: " "$got"
contains "... exit 0" "rc=0" "$got"
check "... and no socket made" '[ ! -e "$tmp/never.sock" ]'
mkdir -m 755 "$tmp/nbad"
cp "$SHIPPED_PLUGINS/sticky.so" "$tmp/nbad/users.so"
printf 'channel users {\n\toption feild=user\n}\n' > "$tmp/opt.conf"
got=$(rh serve -n -c "$tmp/opt.conf" -d "$tmp/nbad" 2>&1; echo "rc=$?")
contains "serve -n loads each plugin: init's error is reported" \
    "channel users: not deployed:" "$got"
contains "... exit 1" "rc=1" "$got"
printf 'timeout 5\nchannel orders {\n\tbogus 1\n}\n' > "$tmp/bad.conf"
got=$(rh serve -f -c "$tmp/bad.conf" -d "$tmp/plugins" -s "$sock" 2>&1; echo "rc=$?")
contains "bad config: refuses to start, names line and reason" \
    "bad.conf:3: unknown channel setting 'bogus'" "$got"
contains "bad config: exit 1" "rc=1" "$got"
got=$(rh serve -f -c "$tmp/missing.conf" -d "$tmp/plugins" -s "$sock" 2>&1; echo "rc=$?")
contains "missing -c file: refuses to start" "missing.conf: No such file" "$got"
got=$(rh serve -f -d "$tmp/nowhere" -s "$sock" 2>&1; echo "rc=$?")
contains "missing plugins directory: refuses to start" "rc=1" "$got"
printf 'helper-user no-such-user-here\n' > "$tmp/bad.conf"
got=$(rh serve -f -c "$tmp/bad.conf" -d "$tmp/plugins" -s "$sock" 2>&1; echo "rc=$?")
contains "helper-user of no user: refuses to start, names line and user" \
    "bad.conf:1: helper-user no-such-user-here: no such user" "$got"

for bad in 'socket-mode 999' 'socket-mode 01777' 'socket-mode rw' \
    'socket-owner no-such-user-here' 'socket-group no-such-group-here' \
    'allow-uid 0 no-such-user-here' 'allow-gid' ; do
	printf '%s\n' "$bad" > "$tmp/bad.conf"
	got=$(timeout 60 $ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -c "$tmp/bad.conf" \
	    -d "$tmp/plugins" -s "$sock" 2>&1; echo "rc=$?")
	case "$got" in
	*"bad.conf:1: "*"rc=1") ok "'$bad': refuses to start, naming the line: ${got%%
*}" ;;
	*) not_ok "'$bad': refuses to start, naming the line"
	   printf '#   %s\n' "$got" ;;
	esac
done
contains "socket-mode's error names the value" \
    "socket-mode '999'" "$(printf 'socket-mode 999\n' > "$tmp/bad.conf";
    timeout 60 $ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -c "$tmp/bad.conf" -d "$tmp/plugins" \
    -s "$sock" 2>&1)"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
