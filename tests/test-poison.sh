#!/bin/sh
# SPDX-License-Identifier: ISC
# Poison messages and crash loops, through the daemon: the three mixes
# (10 %, 50 % and 100 % of calls crash their helper), the transition into
# and out of crash_loop (a version fixed by hot deploy, a plugin that
# crashes only for its first calls and recovers on a probe), the poison
# memo (a hit, its TTL, a new version starts empty, poison-memo off and a
# plugin that declares itself non-deterministic), and the crash budget
# under a storm on several channels at once, and a plugin built with the
# descriptor from before its flags field.  It asserts what each call
# was answered, never how fast: "no call waits for its deadline" is "no
# call ended timed_out".
set -u

: "${ROUTE_HOST:=host/route-host}"
: "${SHIPPED_PLUGINS:=plugins/.libs}"
: "${TEST_PLUGINS:=tests/plugins/.libs}"
: "${ROUTE_HOST_WRAPPER:=}"
ROUTE_HOST=$(cd "$(dirname "$ROUTE_HOST")" && pwd)/$(basename "$ROUTE_HOST")
SHIPPED_PLUGINS=$(cd "$SHIPPED_PLUGINS" && pwd)
TEST_PLUGINS=$(cd "$TEST_PLUGINS" && pwd)

tmp=$(mktemp -d /tmp/route-host-poison-XXXXXX)
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
# active CHANNEL: its active version, or nothing.
active() {
	rh status -s "$sock" --json 2>/dev/null | python3 -c '
import json, sys
for ch in json.load(sys.stdin)["channels"]:
    if ch["channel"] == sys.argv[1] and ch["active"]:
        print(ch["active"])' "$1"
}
# version_field CHANNEL FIELD: FIELD of the channel's active version.
version_field() {
	rh status -s "$sock" --json 2>/dev/null | python3 -c '
import json, sys
for ch in json.load(sys.stdin)["channels"]:
    if ch["channel"] != sys.argv[1]:
        continue
    for v in ch["versions"]:
        if v["version"] == ch["active"]:
            print(v.get(sys.argv[2]))' "$1" "$2"
}
# channel_field CHANNEL FIELD
channel_field() {
	rh status -s "$sock" --json 2>/dev/null | python3 -c '
import json, sys
for ch in json.load(sys.stdin)["channels"]:
    if ch["channel"] == sys.argv[1]:
        print(ch.get(sys.argv[2]))' "$1" "$2"
}
# start_daemon: serve in the foreground, wait for every channel.
start_daemon() {
	# shellcheck disable=SC2086
	$ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -c "$tmp/route-host.conf" \
	    -d "$tmp/plugins" -s "$sock" >>"$tmp/log" 2>&1 &
	pid=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	i=0
	while [ $i -lt 100 ] && [ "$(rh status -s "$sock" --json 2>/dev/null |
	    grep -c '"active": "')" -lt "$(ls "$tmp/plugins" | grep -c '\.so$')" ]
	do
		sleep 0.1; i=$((i + 1))
	done
}
# wait_active CHANNEL OLD: until the channel's active version is not OLD.
wait_active() {
	i=0
	while [ $i -lt 100 ] && [ "$(active "$1")" = "$2" ]; do
		sleep 0.1; i=$((i + 1))
	done
}
# body [crash] [N]: one request line; N makes bodies distinct.
body() {
	printf '{"message": {"crash": %s, "n": %d}, "consumers": [{"id": "a", "max_in_flight": 1}]}\n' \
	    "$1" "$2"
}
# mix COUNT PCT: COUNT distinct lines, about PCT % of them poison, in a
# fixed pseudo-random order (a strict alternation would hand one of two
# helpers nothing but poison).
mix() {
	awk -v n="$1" -v pct="$2" 'BEGIN {
		x = 1
		for (i = 1; i <= n; i++) {
			x = (x * 1103515245 + 12345) % 2147483648
			c = "false"
			if (pct >= 100 || int(x / 65536) % 100 < pct)
				c = "true"
			printf "{\"message\": {\"crash\": %s, \"n\": %d}, " \
			    "\"consumers\": [{\"id\": \"a\", " \
			    "\"max_in_flight\": 1}]}\n", c, i
		}
	}'
}
# poisoned FILE: how many of its lines are poison.
poisoned() {
	grep -c '"crash": true' "$1"
}
# same COUNT: the same poison line COUNT times.
same() {
	n=0
	while [ $n -lt "$1" ]; do body true 0; n=$((n + 1)); done
}
# route CHANNEL < lines > results, through the daemon, pipelined.
route() {
	rh route -s "$sock" -c "$1"
}
# kinds FILE: how the results ended, as ok=N crashed=N ...
kinds() {
	python3 -c '
import json, sys
k = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    e = r.get("error", "ok")
    k[e] = k.get(e, 0) + 1
print(" ".join("%s=%d" % (e, k[e]) for e in sorted(k)))' "$1"
}
# count FILE WORD: result lines whose detail contains WORD.
count() {
	grep -c "$2" "$1"
}

for ch in p10 p50 all fixme memo memottl nomemo flaky s1 s2 s3 s4; do
	cp "$TEST_PLUGINS/poison.so" "$tmp/plugins/$ch.so"
done
cp "$TEST_PLUGINS/poison-nondet.so" "$tmp/plugins/nondet.so"
cp "$SHIPPED_PLUGINS/first-available.so" "$tmp/plugins/calm.so"
cp "$TEST_PLUGINS/old-descriptor.so" "$tmp/plugins/old.so"
# Every channel its own version (an option of its own): channels with the
# same bytes and options would share one, and its crash loop and memo.
cat > "$tmp/route-host.conf" <<CONF
helpers 2
# Each distinct poison body costs a helper: under valgrind, a hundred of
# them take longer than the default deadline, which this is not about.
channel p10 {
	timeout 120000
	option tag=p10
}
channel p50 {
	timeout 120000
	option tag=p50
}
channel all {
	option mode=all
	option tag=all
}
channel fixme {
	option mode=all
	option tag=fixme
}
channel memo {
	helpers 1
	option tag=memo
}
channel memottl {
	helpers 1
	poison-memo 64 300
	option tag=memottl
}
channel nomemo {
	helpers 1
	poison-memo off
	option tag=nomemo
}
channel nondet {
	helpers 1
}
channel flaky {
	helpers 1
	sandbox no
	crash-budget 3
	crash-backoff 5 50
	poison-memo off
	option mode=first
	option crashes=6
	option state=$tmp/flaky.count
}
channel s1 {
	option mode=all
	option tag=s1
}
channel s2 {
	option mode=all
	option tag=s2
}
channel s3 {
	option mode=all
	option tag=s3
}
channel s4 {
	option mode=all
	option tag=s4
}
CONF
start_daemon
check "the daemon runs with crash-budget, crash-backoff and poison-memo" \
    'kill -0 $pid 2>/dev/null'

# --- The three mixes: every healthy call answered, every poison one
# crashed, none by its deadline.
calls=200
[ -n "$ROUTE_HOST_WRAPPER" ] && calls=60
mix $calls 10 > "$tmp/in"
n=$(poisoned "$tmp/in")
route p10 < "$tmp/in" > "$tmp/out"
expect "10 % poison: healthy ones answered, poison ones crashed" \
    "crashed=$n ok=$((calls - n))" "$(kinds "$tmp/out")"
mix $calls 50 > "$tmp/in"
n=$(poisoned "$tmp/in")
route p50 < "$tmp/in" > "$tmp/out"
expect "50 % poison: healthy ones answered, poison ones crashed" \
    "crashed=$n ok=$((calls - n))" "$(kinds "$tmp/out")"
# The log names at most one crash a second per version, and says how
# many others there were: a second after the storm, every crash is in it.
sleep 1.5
logged=$(awk '/p50 [0-9a-f]*: helper [0-9]* crashed in a call/ { n++ }
    /p50 [0-9a-f]*: [0-9]* more helper/ {
	for (i = 1; i <= NF; i++) if ($i == "more") { n += $(i - 1); break } }
    END { print n + 0 }' "$tmp/log")
expect "... and the log accounts for every crash, a line a second at most" \
    "$(version_field p50 helper_crashes)" "$logged"
mix 300 100 > "$tmp/in"
route all < "$tmp/in" > "$tmp/out"
k=$(kinds "$tmp/out")
check "100 % poison: every call crashed or crash_loop, none timed out ($k)" \
    'python3 -c "
import sys
k = dict(x.split(\"=\") for x in sys.argv[1].split())
sys.exit(not (set(k) <= {\"crashed\", \"crash_loop\"} and
    int(k.get(\"crash_loop\", 0)) > 0 and
    sum(map(int, k.values())) == 300))" "$k"'
line=$(grep -m1 '"crash_loop"' "$tmp/out")
contains "crash_loop says since when" "crash loop since" "$line"
contains "crash_loop says how many crashes" "crashes" "$line"
contains "crash_loop says when the next probe runs" "next probe" "$line"
expect "entering the crash loop is logged once" 1 \
    "$(grep -c 'all [0-9a-f]*: entered a crash loop' "$tmp/log")"
check "status counts crash_loop answers on the version" \
    '[ "$(version_field all crash_loop)" -gt 0 ]'
check "status says since when the version is in a crash loop" \
    '[ "$(version_field all crash_loop_since)" != None ]'
rh status -s "$sock" > "$tmp/status"
contains "status (text) shows the crash loop" "crash loop" "$(cat "$tmp/status")"

# --- A version fixed by hot deploy recovers at once.
mix 50 100 > "$tmp/in"
route fixme < "$tmp/in" > "$tmp/out"
contains "a crashing version ends in crash_loop" "crash_loop" \
    "$(kinds "$tmp/out")"
old=$(active fixme)
cp "$SHIPPED_PLUGINS/first-available.so" "$tmp/plugins/.fixme.so.new"
mv "$tmp/plugins/.fixme.so.new" "$tmp/plugins/fixme.so"
wait_active fixme "$old"
mix 20 0 > "$tmp/in"
route fixme < "$tmp/in" > "$tmp/out"
expect "the fixed version answers at once, no crash_loop" "ok=20" \
    "$(kinds "$tmp/out")"

# --- A plugin that crashes for its first 6 calls (crash-budget 3)
# recovers on a probe.  Two calls at a time: while a probe runs, the
# other is answered crash_loop.
: > "$tmp/flaky.all"
i=0
while [ $i -lt 100 ]; do
	mix 2 0 | route flaky > "$tmp/out"
	cat "$tmp/out" >> "$tmp/flaky.all"
	grep -q '"decision"' "$tmp/out" && ! grep -q '"error"' "$tmp/out" &&
	    break
	sleep 0.02
	i=$((i + 1))
done
contains "a plugin crashing for its first calls enters a crash loop" \
    "crash_loop" "$(kinds "$tmp/flaky.all")"
expect "... where it crashed exactly as often as it had to" 6 \
    "$(grep -c '"crashed"' "$tmp/flaky.all")"
mix 20 0 > "$tmp/in"
route flaky < "$tmp/in" > "$tmp/out"
expect "... and the first successful probe ends the throttle" "ok=20" \
    "$(kinds "$tmp/out")"
expect "entering the crash loop is logged once" 1 \
    "$(grep -c 'flaky [0-9a-f]*: entered a crash loop' "$tmp/log")"
expect "leaving it is logged once" 1 \
    "$(grep -c 'flaky [0-9a-f]*: left the crash loop' "$tmp/log")"
expect "status: no longer in a crash loop" None \
    "$(version_field flaky crash_loop_since)"

# --- The poison memo.
same 50 > "$tmp/in"
route memo < "$tmp/in" > "$tmp/out"
expect "the same poison body 50 times: all crashed" "crashed=50" \
    "$(kinds "$tmp/out")"
expect "... 49 of them answered from the memo" 49 \
    "$(count "$tmp/out" remembered)"
expect "... at the cost of one crash" 1 "$(version_field memo helper_crashes)"
expect "... counted in status" 49 "$(version_field memo poison_memo_hits)"
mix 10 0 > "$tmp/in"
route memo < "$tmp/in" > "$tmp/out"
expect "healthy bodies still run" "ok=10" "$(kinds "$tmp/out")"
same 1 | route memo > "$tmp/out"
expect "the poison body again, later: remembered" 1 \
    "$(count "$tmp/out" remembered)"
old=$(active memo)
cp "$TEST_PLUGINS/poison-v2.so" "$tmp/plugins/.memo.so.new"
mv "$tmp/plugins/.memo.so.new" "$tmp/plugins/memo.so"
wait_active memo "$old"
same 1 | route memo > "$tmp/out"
expect "a new version starts with an empty memo: it runs and crashes" \
    "crashed=1" "$(kinds "$tmp/out")"
expect "... not from the memo" 0 "$(count "$tmp/out" remembered)"

# Twice at once: the second is answered as the first crashes, well
# within the TTL, however slow the machine (under valgrind, say).
same 2 | route memottl > "$tmp/out"
expect "poison-memo 64 300: the first crash runs, the second is remembered" \
    1 "$(count "$tmp/out" remembered)"
sleep 1
same 1 | route memottl > "$tmp/out"
expect "... and past its TTL the body runs again" 0 \
    "$(count "$tmp/out" remembered)"
expect "... and crashes again" 2 "$(version_field memottl helper_crashes)"

same 3 > "$tmp/in"
route nomemo < "$tmp/in" > "$tmp/out"
expect "poison-memo off: nothing remembered" 0 "$(count "$tmp/out" remembered)"
expect "... every call ran" 3 "$(version_field nomemo helper_crashes)"
same 3 > "$tmp/in"
route nondet < "$tmp/in" > "$tmp/out"
expect "a plugin declaring itself non-deterministic: nothing remembered" 0 \
    "$(count "$tmp/out" remembered)"
expect "... every call ran" 3 "$(version_field nondet helper_crashes)"

mix 3 0 | route old > "$tmp/out"
expect "a plugin built with the descriptor before flags still loads" \
    "ok=3" "$(kinds "$tmp/out")"

# --- A storm on four channels at once: every call answered crashed or
# crash_loop, none timed out, forks within the budget, and a healthy
# channel keeps answering.
storm=""
for ch in s1 s2 s3 s4; do
	mix 300 100 | route $ch > "$tmp/storm.$ch" &
	storm="$storm $!"
done
mix 20 0 | route calm > "$tmp/calm"
# shellcheck disable=SC2086
wait $storm
cat "$tmp/storm.s1" "$tmp/storm.s2" "$tmp/storm.s3" "$tmp/storm.s4" \
    > "$tmp/storm"
k=$(kinds "$tmp/storm")
check "a storm on four channels: all answered crashed or crash_loop ($k)" \
    'python3 -c "
import sys
k = dict(x.split(\"=\") for x in sys.argv[1].split())
sys.exit(not (set(k) <= {\"crashed\", \"crash_loop\"} and
    sum(map(int, k.values())) == 1200))" "$k"'
expect "a healthy channel beside the storm answers" "ok=20" \
    "$(kinds "$tmp/calm")"
for ch in s1 s2 s3 s4; do
	n=$(version_field $ch helper_crashes)
	check "$ch: crashes within the budget and its probes ($n)" \
	    '[ "$n" -ge 16 ] && [ "$n" -le 40 ]'
done

kill -TERM "$pid"
wait "$pid"
expect "the daemon exits 0" 0 $?
pid=""
if [ $fail -gt 0 ]; then
	sed 's/^/# log: /' "$tmp/log" | tail -40
fi
echo "# $pass passed, $fail failed"
[ $fail -eq 0 ]
