#!/bin/sh
# SPDX-License-Identifier: ISC
# Ordinary plugins work unchanged inside the sandbox, through
# route --plugin and through the daemon: a C++ plugin (static constructor,
# exceptions, thread_local, the standard library, <cmath>, snprintf,
# clocks, getrandom; tests/plugins/cxx.cc), a C plugin whose init reads a
# file (tests/plugins/from-file.c), and each shipped strategy with its
# options.  Every assertion is a decision or a message, never a time.
# Every route-host run goes through $ROUTE_HOST_WRAPPER (valgrind, under
# make check-valgrind, where helpers run without their seccomp filters).
#
# Helpers may run as another user than this script (nobody, when the
# daemon runs as root): what they read is world-readable, in world-
# searchable directories under /tmp.
set -u

: "${ROUTE_HOST:=host/route-host}"
: "${SHIPPED_PLUGINS:=plugins/.libs}"
: "${TEST_PLUGINS:=tests/plugins/.libs}"
: "${ROUTE_HOST_WRAPPER:=}"
ROUTE_HOST=$(cd "$(dirname "$ROUTE_HOST")" && pwd)/$(basename "$ROUTE_HOST")
SHIPPED_PLUGINS=$(cd "$SHIPPED_PLUGINS" && pwd)
TEST_PLUGINS=$(cd "$TEST_PLUGINS" && pwd)

tmp=$(mktemp -d /tmp/route-host-ordinary-XXXXXX)
chmod 755 "$tmp"
mkdir -m 755 "$tmp/plugins" "$tmp/data"
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
# contains NAME NEEDLE HAYSTACK
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
# decisions: route's JSON lines on stdin, one word each on one line: the
# consumer chosen, none, or error:KIND (with the detail when there is one).
decisions() {
	sed -e 's/.*"decision": "\([^"]*\)".*/\1/' \
	    -e 's/.*"decision": null.*/none/' \
	    -e 's/.*"error": "\([^"]*\)".*"detail": "\([^"]*\)".*/error:\1(\2)/' \
	    -e 's/.*"error": "\([^"]*\)".*/error:\1/' | tr '\n' ' ' |
	    sed 's/ $//'
}
# via_cli PLUGIN [OPTION...]: route stdin's lines with route --plugin.
via_cli() {
	p=$1
	shift
	for o in "$@"; do set -- "$@" --option "$o"; shift; done
	rh route --plugin "$p" --timeout 30000 "$@" | decisions
}
# via_daemon CHANNEL: route stdin's lines through the daemon.
via_daemon() {
	rh route -s "$sock" -c "$1" | decisions
}
# msg FIELDS CONSUMERS: one request line; FIELDS is the inside of the
# message object, CONSUMERS a list of ID[:IN_FLIGHT/MAX[:TAG,...]] (MAX
# 9 and no tags by default).
msg() {
	cs=""
	for c in $2; do
		id=${c%%:*}
		rest=${c#"$id"}
		rest=${rest#:}
		load=${rest%%:*}
		tags=""
		case "$rest" in *:*) tags=${rest#*:} ;; esac
		inf=0
		max=9
		if [ -n "$load" ]; then inf=${load%/*}; max=${load#*/}; fi
		t=""
		if [ -n "$tags" ]; then
			t=', "tags": ["'$(echo "$tags" | sed 's/,/", "/g')'"]'
		fi
		cs="$cs${cs:+, }{\"id\": \"$id\", \"in_flight\": $inf, \"max_in_flight\": $max$t}"
	done
	echo "{\"message\": {$1}, \"consumers\": [$cs]}"
}
# repeat N LINE: LINE N times.
repeat() {
	i=0
	while [ "$i" -lt "$1" ]; do echo "$2"; i=$((i + 1)); done
}
# count WORD LIST: how many times WORD is in LIST.
count() {
	n=0
	for w in $2; do [ "$w" = "$1" ] && n=$((n + 1)); done
	echo $n
}

cxx="$TEST_PLUGINS/cxx.so"
fromfile="$TEST_PLUGINS/from-file.so"

# The file from-file reads: world-readable, whoever its owner.
regions="$tmp/data/regions"
cat > "$regions" <<EOF
# region consumer
eu node-eu
us node-us

* node-any
EOF
chmod 644 "$regions"
printf 'eu node-eu extra\n' > "$tmp/data/bad"
: > "$tmp/data/empty"
chmod 644 "$tmp/data/bad" "$tmp/data/empty"

three="a b c"
# The x field of cxx: consumer floor(sqrt(x)) + offset, mod 3.
cxx_lines() {
	i=0
	while [ "$i" -lt "$1" ]; do
		msg "\"x\": $i" "$three"
		i=$((i + 1))
	done
}
cxx_want() {
	awk -v n="$1" -v off="$2" 'BEGIN {
	    for (i = 0; i < n; i++)
		printf "%s%s", substr("abc", (int(sqrt(i)) + off) % 3 + 1, 1),
		    i < n - 1 ? " " : ""
	}'
}

# --- route --plugin: a C++ plugin
# It needs libstdc++ (the helper's loader finds it in the system paths,
# inside the sandbox), not a copy linked in.
if command -v readelf >/dev/null; then
	contains "C++: the plugin needs the shared libstdc++" \
	    "[libstdc++.so" "$(readelf -d "$cxx")"
fi
got=$( (msg '"target": "c"' "$three"
	msg '"x": 4' "$three"
	msg '"x": 9.5' "$three"
	msg '"x": "16"' "$three"
	msg '"x": "sixteen"' "$three"
	msg '"x": -1' "$three"
	msg '"target": "zz"' "$three"
	msg '' "$three") | via_cli "$cxx")
expect "C++: map lookup, <cmath>, std::stod and a caught exception decide" \
    "c c a b none none none none" "$got"
got=$(cxx_lines 40 | via_cli "$cxx")
expect "C++: 40 calls in a row, every feature checked at each call" \
    "$(cxx_want 40 0)" "$got"
got=$(cxx_lines 10 | via_cli "$cxx" offset=1)
expect "C++: an option parsed by std::stoul reaches init" \
    "$(cxx_want 10 1)" "$got"
got=$(rh check --option offset=many "$cxx" 2>&1)
contains "C++: an exception caught in init fails it with its message" \
    "init failed: cxx: option offset=many: not a number" "$got"
got=$(rh check --option colour=red "$cxx" 2>&1)
contains "C++: an unknown option fails init, named" \
    "init failed: cxx: unknown option colour" "$got"

# --- route --plugin: a C plugin that reads a file in init
ff="node-eu node-us node-any"
got=$( (msg '"region": "eu"' "$ff"
	msg '"region": "us"' "$ff"
	msg '"region": "ap"' "$ff"
	msg '"region": 7' "$ff"
	msg '"region": "eu"' "node-us node-any") |
    via_cli "$fromfile" "path=$regions")
expect "file read in init: each region to the consumer the file names" \
    "node-eu node-us node-any node-any none" "$got"
got=$(rh check --option "path=$tmp/data/missing" "$fromfile" 2>&1)
contains "file read in init: a missing file fails init, naming it" \
    "init failed: from-file: cannot open $tmp/data/missing: No such file or directory" \
    "$got"
got=$(rh check --option "path=$tmp/data" "$fromfile" 2>&1)
contains "file read in init: a directory cannot be read" \
    "init failed: from-file: cannot read $tmp/data: Is a directory" "$got"
got=$(rh check --option "path=$tmp/data/bad" "$fromfile" 2>&1)
contains "file read in init: a bad line is named" \
    "init failed: from-file: $tmp/data/bad:1: expected VALUE CONSUMER" "$got"
got=$(rh check --option "path=$tmp/data/empty" "$fromfile" 2>&1)
contains "file read in init: an empty file names no consumer" \
    "init failed: from-file: $tmp/data/empty names no consumer" "$got"
got=$(rh check "$fromfile" 2>&1)
contains "file read in init: path= is required" \
    "init failed: from-file: option path=FILE is required" "$got"

# --- the daemon: every channel sandboxed (the default)
for p in first-available least-loaded round-robin power-of-two affinity \
    sticky threshold; do
	cp "$SHIPPED_PLUGINS/$p.so" "$tmp/plugins/$p.so"
done
cp "$SHIPPED_PLUGINS/affinity.so" "$tmp/plugins/affinity-none.so"
cp "$TEST_PLUGINS/cxx.so" "$tmp/plugins/cxx.so"
cp "$TEST_PLUGINS/cxx.so" "$tmp/plugins/cxx-bad.so"
cp "$TEST_PLUGINS/from-file.so" "$tmp/plugins/regions.so"
cp "$TEST_PLUGINS/from-file.so" "$tmp/plugins/regions-gone.so"
chmod 644 "$tmp/plugins/"*.so
good=10		# channels that deploy; cxx-bad and regions-gone do not
# Deadlines generous enough for valgrind: this is about decisions.
cat > "$tmp/route-host.conf" <<CONF
timeout 30000
# One helper each: the rotation and the seeded draws are per helper.
channel round-robin {
	helpers 1
}
channel power-of-two {
	helpers 1
	option seed=7
}
channel affinity {
	option field=region
}
channel affinity-none {
	option field=region
	option fallback=none
}
channel sticky {
	option field=user
}
channel threshold {
	option field=amount
	option op=ge
	option value=1000
	option tag=vip
	option fallback=first-available
}
channel cxx {
	option offset=1
}
channel cxx-bad {
	option offset=many
}
channel regions {
	option path=$regions
}
channel regions-gone {
	option path=$tmp/data/gone
}
CONF
# Not through rh: $! must be the daemon itself, not a subshell.
# shellcheck disable=SC2086
$ROUTE_HOST_WRAPPER "$ROUTE_HOST" serve -f -c "$tmp/route-host.conf" \
    -d "$tmp/plugins" -s "$sock" >>"$tmp/log" 2>&1 &
pid=$!
i=0
while [ $i -lt 600 ] && [ "$(rh status -s "$sock" --json 2>/dev/null |
    grep -o '"active": "' | wc -l)" -lt $good ]; do
	sleep 0.1; i=$((i + 1))
done
status=$(rh status -s "$sock" --json 2>&1)
check "every good channel deploys" \
    '[ "$(echo "$status" | grep -o "\"active\": \"" | wc -l)" -eq $good ]'
[ "$(echo "$status" | grep -o '"active": "' | wc -l)" -eq $good ] ||
    sed 's/^/#   /' "$tmp/log"

# first-available: the first with capacity, in the order given.
got=$( (msg '' "a:4/4 b:0/2 c:0/9"; msg '' "a:1/1 b:2/2") |
    via_daemon first-available)
expect "daemon, first-available: the first consumer with capacity" \
    "b none" "$got"

# least-loaded: the most capacity, then the smaller buffer depth.
got=$( (echo '{"consumers": [{"id": "a", "max_in_flight": 2}, {"id": "b", "in_flight": 1, "max_in_flight": 9, "buffer_depth": 5}, {"id": "c", "in_flight": 1, "max_in_flight": 9, "buffer_depth": 2}]}'
	msg '' "a:0/9 b:0/3") | via_daemon least-loaded)
expect "daemon, least-loaded: most capacity, ties to the shallower buffer" \
    "c a" "$got"

# round-robin: one helper rotates over the consumers with capacity.
got=$(repeat 4 "$(msg '' "a b c")" | via_daemon round-robin)
expect "daemon, round-robin: rotates" "a b c a" "$got"
got=$(repeat 3 "$(msg '' "a b:9/9 c")" | via_daemon round-robin)
expect "daemon, round-robin: skips a full consumer, keeps its cursor" \
    "c a c" "$got"

# power-of-two: of two draws, the one with more capacity; even otherwise.
got=$(repeat 10 "$(msg '' "a:3/4 b:0/4")" | via_daemon power-of-two)
expect "daemon, power-of-two: two candidates, the less loaded every time" \
    "b b b b b b b b b b" "$got"
got=$(repeat 60 "$(msg '' "a:9/9 b c")" | via_daemon power-of-two)
check "daemon, power-of-two: never a full consumer, both others drawn" \
    '[ "$(count a "$got")" = 0 ] && [ "$(count b "$got")" -ge 10 ] &&
     [ "$(count c "$got")" -ge 10 ] &&
     [ $(($(count b "$got") + $(count c "$got"))) = 60 ]'
got=$(repeat 90 "$(msg '' "a b c")" | via_daemon power-of-two)
check "daemon, power-of-two (seed=7): three equal consumers all chosen" \
    '[ "$(count a "$got")" -ge 10 ] && [ "$(count b "$got")" -ge 10 ] &&
     [ "$(count c "$got")" -ge 10 ]'

# affinity: the least loaded consumer with the message's tag, else the
# fallback.
af="a:0/4:eu b:0/4:us c:1/9:eu d:0/20"
got=$( (msg '"region": "eu"' "$af"
	msg '"region": "us"' "$af"
	msg '"region": "ap"' "$af"
	msg '' "$af"
	msg '"region": "eu"' "a:0/4:eu b:0/4:us c:9/9:eu d:0/20") |
    via_daemon affinity)
expect "daemon, affinity (field=region): tagged first, least-loaded fallback" \
    "c b d d a" "$got"
got=$( (msg '"region": "eu"' "$af"; msg '"region": "ap"' "$af") |
    via_daemon affinity-none)
expect "daemon, affinity (fallback=none): no tagged consumer, none" \
    "c none" "$got"

# sticky: a key stays on its consumer, whatever the order; when one
# consumer leaves, only its keys move.
keys() {
	i=0
	while [ $i -lt 20 ]; do
		msg "\"user\": \"user-$i\"" "$1"
		i=$((i + 1))
	done
}
d1=$(keys "a b c" | via_daemon sticky)
d2=$(keys "c a b" | via_daemon sticky)
d3=$(keys "a c" | via_daemon sticky)
expect "daemon, sticky (field=user): the same keys, the same consumers" \
    "$d1" "$d2"
check "daemon, sticky: keys spread over the consumers" \
    '[ "$(count a "$d1")" -gt 0 ] && [ "$(count b "$d1")" -gt 0 ] &&
     [ "$(count c "$d1")" -gt 0 ]'
moved=$(echo "$d1" "|" "$d3" | awk '{
	n = (NF - 1) / 2; bad = 0
	for (i = 1; i <= n; i++) {
		before = $i; after = $(n + 1 + i)
		if (before != "b" && after != before) bad++
		if (before == "b" && after != "a" && after != "c") bad++
	}
	print bad
}')
expect "daemon, sticky: b leaves, only its keys move" "0" "$moved"
got=$( (msg '"user": 42' "a b c"; msg '"user": "42"' "a b c"; msg '' "a b c") |
    via_daemon sticky)
k_int=$(echo "$got" | cut -d' ' -f1)
k_text=$(echo "$got" | cut -d' ' -f2)
k_none=$(echo "$got" | cut -d' ' -f3)
check "daemon, sticky: an integer key is its decimal text; no key, none" \
    '[ "$k_int" = "$k_text" ] && [ "$k_int" != none ] && [ "$k_none" = none ]'

# threshold: field >= 1000 goes to the least loaded vip, else first
# available.
th="a:0/1 b:0/2:vip c:0/5:vip"
got=$( (msg '"amount": 1000' "$th"
	msg '"amount": 999.5' "$th"
	msg '"amount": "1000"' "$th"
	msg '' "$th"
	msg '"amount": 5000' "a:0/1 b:0/2:vip c:5/5:vip"
	msg '"amount": 5000' "a:0/1 b:2/2:vip c:5/5:vip") |
    via_daemon threshold)
expect "daemon, threshold (op=ge, value=1000, tag=vip): matches and fallback" \
    "c a a a b a" "$got"

# A C++ plugin and a file read in init, through the daemon.
got=$( (msg '"target": "b"' "$three"; msg '"x": "nope"' "$three"; cxx_lines 30) |
    via_daemon cxx)
expect "daemon, C++: every feature checked at each call, decisions right" \
    "b none $(cxx_want 30 1)" "$got"
got=$( (msg '"region": "us"' "$ff"; msg '"region": "xx"' "$ff") |
    via_daemon regions)
expect "daemon, file read in init: routes by the file's content" \
    "node-us node-any" "$got"
status=$(rh status -s "$sock")
contains "daemon, C++: init's caught exception fails the deploy, said" \
    "cxx: option offset=many: not a number" "$status"
contains "daemon, file read in init: a missing file fails the deploy, said" \
    "from-file: cannot open $tmp/data/gone: No such file or directory" \
    "$status"

# The helpers that answered ran under both filters.  (Under valgrind the
# filters are left out.)
if [ -z "$ROUTE_HOST_WRAPPER" ]; then
	# The daemon's child is its zygote; the helpers are the zygote's.
	zygote=$(ps -o pid= --ppid "$pid" | tr -d ' ')
	helpers=$(ps -o pid=,args= --ppid "$zygote" | awk '/helper cxx / { print $1 }')
	bad=""
	[ -n "$helpers" ] || bad="none found"
	for h in $helpers; do
		st=$(cat "/proc/$h/status" 2>/dev/null)
		case "$st" in
		*"Seccomp:	2"*) ;;
		*) bad="$bad $h" ;;
		esac
		# Seccomp_filters: since Linux 5.9.
		case "$st" in
		*"Seccomp_filters:	1"*) bad="$bad $h" ;;
		esac
		case "$st" in
		*"NoNewPrivs:	1"*) ;;
		*) bad="$bad $h" ;;
		esac
	done
	check "daemon, C++: its helpers run filtered (seccomp, no_new_privs)" \
	    '[ -n "$helpers" ] && [ -z "$bad" ]'
fi
check "no blocked system call in the log" \
    '! grep -q "blocked system call" "$tmp/log"'

kill -TERM "$pid"
wait "$pid"; rc=$?
pid=""
check "the daemon exits 0" '[ $rc -eq 0 ]'
[ $rc -eq 0 ] || sed 's/^/#   /' "$tmp/log"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
