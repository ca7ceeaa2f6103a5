#!/bin/sh
# SPDX-License-Identifier: ISC
# The command line as a user meets it: hash against b2sum, check, route's
# JSON lines and exit statuses, and the demo.  Every route-host run goes
# through $ROUTE_HOST_WRAPPER (valgrind, under make check-valgrind).
set -u

: "${ROUTE_HOST:=host/route-host}"
: "${TEST_PLUGINS:=tests/plugins/.libs}"
: "${SHIPPED_PLUGINS:=plugins/.libs}"
: "${ROUTE_HOST_WRAPPER:=}"

abs() {
	(cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")")
}
ROUTE_HOST=$(abs "$ROUTE_HOST")
TEST_PLUGINS=$(cd "$TEST_PLUGINS" && pwd)
SHIPPED_PLUGINS=$(cd "$SHIPPED_PLUGINS" && pwd)

tmp=$(mktemp -d /tmp/route-host-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

rh() {
	# shellcheck disable=SC2086
	$ROUTE_HOST_WRAPPER "$ROUTE_HOST" "$@"
}

ok() {
	pass=$((pass + 1))
	echo "ok - $1"
}

not_ok() {
	fail=$((fail + 1))
	echo "not ok - $1"
}

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

first="$SHIPPED_PLUGINS/first-available.so"
crashy="$SHIPPED_PLUGINS/demo-crashy.so"
sleepy="$SHIPPED_PLUGINS/demo-sleepy.so"
mis="$TEST_PLUGINS/misbehave.so"

# --- every escape, through route --plugin: the attempt fails inside the
# plugin (decision a) or the sandbox ends its call (crashed); it never
# works (decision b, or init failing "escaped").  Valgrind runs helpers
# without the filters: not checked there.
if [ -z "$ROUTE_HOST_WRAPPER" ]; then
	two='{"consumers": [{"id": "a", "max_in_flight": 1}, {"id": "b", "max_in_flight": 1}]}'
	escaped=""
	for try in killparent killgroup fork exec thread peek open create socket connect memory fds sigio shadow procmem; do
		for at in call init; do
			got=$(echo "$two" | rh route --plugin "$TEST_PLUGINS/escape.so" \
			    --option "try=$try" --option "at=$at" 2>&1)
			case "$got" in
			*'"decision": "a"'*|*'"error": "crashed"'*) ;;
			*) escaped="$escaped $try/$at: $got" ;;
			esac
		done
	done
	expect "route --plugin: every escape fails or is ended by the sandbox" \
	    "" "$escaped"
	expect "... and leaves no file behind" "" \
	    "$(ls /tmp/route-host-escaped 2>/dev/null)"
fi

# --- what a plugin writes to its standard output and error reaches route
# --plugin's standard error, a line at a time, escaped by the engine, and
# never its results
one='{"consumers": [{"id": "a", "max_in_flight": 1}]}'
got=$(echo "$one" | rh route --plugin "$TEST_PLUGINS/forge.so" \
    --option try=stderr 2>"$tmp/err")
expect "route --plugin: a plugin's stderr is not in its results" \
    '{"decision": "a", "version": "'"$(rh hash "$TEST_PLUGINS/forge.so" |
    cut -c1-64)"'"}' "$got"
contains "... it is on route's, escaped and attributed" \
    ': stderr: route-host[1]: info: channel payments: deployed 0123456789ab (plugin \"forged\")\033[31m red\001\177' \
    "$(grep '^route-host: forge [0-9a-f]\{12\}: helper [0-9]*: stderr: ' "$tmp/err")"
expect "... with no raw control character" "0" \
    "$(tr -d '\n' <"$tmp/err" | tr -d '[:print:]' | wc -c)"
expect "... one log line for each of its lines, the last too" "6" \
    "$(grep -c ': stderr: ' "$tmp/err")"

# --- hash: byte-identical to b2sum -l 256
printf 'x' > "$tmp/back\\slash"
printf 'y' > "$tmp/new
line"
: > "$tmp/empty"
cp "$first" "$tmp/with space.so"
want=$(cd "$tmp" && b2sum -l 256 * "$first"; echo "rc=$?")
got=$(cd "$tmp" && rh hash * "$first"; echo "rc=$?")
expect "hash matches b2sum -l 256, odd names included" "$want" "$got"
want=$(b2sum -l 256 < "$first")
got=$(rh hash < "$first")
expect "hash of standard input matches b2sum" "$want" "$got"
got=$(rh hash /nonexistent "$first" 2>"$tmp/err"; echo "rc=$?")
contains "hash of a missing file exits 1" "rc=1" "$got"
contains "hash still hashes the other files" "$(b2sum -l 256 "$first")" "$got"
contains "hash names the missing file" "/nonexistent" "$(cat "$tmp/err")"

# --- check
got=$(rh check "$first" "$crashy"; echo "rc=$?")
contains "check reports the plugin name" 'ok: plugin "first-available", ABI 1' "$got"
contains "check reports the version" "$(b2sum -l 256 "$first" | cut -c1-64)" "$got"
contains "check of good plugins exits 0" "rc=0" "$got"
echo "not a plugin" > "$tmp/text.so"
got=$(rh check "$tmp/text.so" "$first" "$TEST_PLUGINS/wrong-abi.so" \
    "$TEST_PLUGINS/no-descriptor.so" /nonexistent.so; echo "rc=$?")
contains "check says a text file is not ELF" "text.so: cannot load: not a plugin: not an ELF" "$got"
contains "check says wrong ABI" "ABI mismatch: plugin ABI 999, host speaks ABI 1" "$got"
contains "check says missing descriptor" "missing descriptor" "$got"
contains "check says missing file" "/nonexistent.so: No such file" "$got"
contains "check with a failure exits 1" "rc=1" "$got"
got=$(rh check --option mode=fail "$mis"; echo "rc=$?")
contains "check shows init's own message" "init failed: refusing to start: mode=fail" "$got"
got=$(rh check 2>&1; echo "rc=$?")
contains "check without files is a usage error" "rc=2" "$got"

# --- route
hex=$(rh hash "$first" | cut -c1-64)
got=$(printf '%s\n' \
    '{"message": {"amount": 5000, "vip": true}, "consumers": [{"id": "a", "in_flight": 4, "max_in_flight": 4}, {"id": "b", "max_in_flight": 2, "tags": ["fast"]}]}' \
    '{"consumers": [], "id": "r2"}' |
    rh route --plugin "$first"; echo "rc=$?")
expect "route answers each line" "{\"decision\": \"b\", \"version\": \"$hex\"}
{\"id\": \"r2\", \"decision\": null, \"version\": \"$hex\"}
rc=0" "$got"

got=$(printf '%s\n' 'not json' '' '{"message": {"x": [1]}, "consumers": []}' \
    '{"consumers": [{"id": "a", "max_in_flight": 1}]}' |
    rh route --plugin "$first"; echo "rc=$?")
contains "route: bad JSON is a bad request naming the line" '"error": "bad_request", "version": "'"$hex"'", "detail": "line 1: invalid JSON' "$got"
contains "route: nested value names the field" "line 3: message field 'x' is an array" "$got"
contains "route: the next line is still served" '{"decision": "a", "version": "'"$hex"'"}' "$got"
contains "route: an error line makes exit 1" "rc=1" "$got"

got=$(printf '%s\n' '{"message": {"poison": true}, "consumers": [{"id": "a", "max_in_flight": 1}]}' \
    '{"message": {"wild": true}, "consumers": [{"id": "a", "max_in_flight": 1}]}' \
    '{"consumers": [{"id": "a", "max_in_flight": 1}]}' |
    rh route --plugin "$crashy")
contains "route: a crash is contained" '"error": "crashed"' "$got"
contains "route: the crash cause is the signal, the address and where" \
    '"detail": "SIGSEGV: address 0x0, in the plugin at offset 0x' "$got"
# The offset is the plugin file's: addr2line names the function and line.
off=$(echo "$got" | sed -n 's/.*in the plugin at offset \(0x[0-9a-f]*\).*/\1/p')
if command -v addr2line >/dev/null 2>&1; then
	contains "route: addr2line -f names the crashing function at that offset" \
	    "crashy" "$(addr2line -f -e "$crashy" "$off" 2>&1 | head -1)"
else
	echo "# no addr2line: the offset not resolved"
fi
contains "route: an out-of-range index is a bad decision" '"error": "bad_decision"' "$got"
contains "route: the call after a crash is served" '{"decision": "a"' "$got"

# --- check --fuzz: a plugin that reads a field without checking it is
# there passes check's sample, and fails the fuzz with the smallest
# request that crashes it, which route --plugin crashes the same way.
region="$TEST_PLUGINS/region.so"
got=$(rh check "$region" 2>/dev/null; echo "rc=$?")
contains "check: the NULL-dereferencing plugin passes the default sample" "rc=0" "$got"
got=$(rh check --fuzz 300 --seed 1 "$region" 2>/dev/null; echo "rc=$?")
contains "check --fuzz: prints its seed" "fuzz: 300 requests (seed 1):" "$got"
contains "check --fuzz: finds the crash, and where" \
    "fuzz: crashed: SIGSEGV: address 0x8, in the plugin at offset 0x" "$got"
contains "check --fuzz: the smallest request that crashes it" \
    '{"message":{},"consumers":[]}' "$got"
contains "check --fuzz: exit 1" "rc=1" "$got"
contains "check --fuzz: the reproduction line crashes route --plugin the same way" \
    '"detail": "SIGSEGV: address 0x8, in the plugin at offset 0x' \
    "$(echo '{"message":{},"consumers":[]}' | rh route --plugin "$region" 2>/dev/null)"
got=$(rh check --fuzz 300 --seed 1 "$region" 2>/dev/null)
again=$(rh check --fuzz 300 --seed 1 "$region" 2>/dev/null)
expect "check --fuzz: the same seed, the same report" "$got" "$again"
# The shipped plugins pass (fewer requests under valgrind).
n=10000
[ -n "$ROUTE_HOST_WRAPPER" ] && n=200
for p in first-available least-loaded round-robin power-of-two; do
	got=$(rh check --fuzz $n --seed 1 "$SHIPPED_PLUGINS/$p.so" 2>&1; echo "rc=$?")
	contains "check --fuzz $n: $p passes" "fuzz: $n requests (seed 1): $n answered
rc=0" "$got"
done
for p in affinity sticky; do
	got=$(rh check --fuzz $n --seed 1 -o field=region "$SHIPPED_PLUGINS/$p.so" 2>&1; echo "rc=$?")
	contains "check --fuzz $n: $p passes" "fuzz: $n requests (seed 1): $n answered
rc=0" "$got"
done
got=$(rh check --fuzz $n --seed 1 -o field=amount -o value=100 -o tag=eu \
    "$SHIPPED_PLUGINS/threshold.so" 2>&1; echo "rc=$?")
contains "check --fuzz $n: threshold passes" "fuzz: $n requests (seed 1): $n answered
rc=0" "$got"
got=$(rh check --fuzz 0 "$region" 2>&1; echo "rc=$?")
contains "check --fuzz 0 is a usage error naming the flag" "check: --fuzz 0: too small" "$got"

# --- route --inline: the plugin in this process, for tools; the engine's
# checks all the same.  valgrind names the plugin's function and line.
got=$(printf '%s\n' '{"message": {"wild": true}, "consumers": [{"id": "a", "max_in_flight": 1}]}' \
    '{"consumers": [{"id": "a", "max_in_flight": 1}]}' 'nope' |
    rh route --plugin "$crashy" --inline 2>&1; echo "rc=$?")
contains "route --inline: says loudly that nothing is contained" \
    "runs in this process, NOT CONTAINED" "$got"
contains "route --inline: an out-of-range index is a bad decision" \
    '{"error": "bad_decision", "detail": "plugin returned 42 for 1 consumer"}' "$got"
contains "route --inline: a decision" '{"decision": "a"}' "$got"
contains "route --inline: a bad line is a bad request" \
    '"detail": "line 3: invalid JSON' "$got"
contains "route --inline: exit 1 for the errors" "rc=1" "$got"
contains "route --inline: a plugin named without a directory is the file here" \
    '{"decision": "a"}' "$(cd "$SHIPPED_PLUGINS" &&
    echo '{"consumers": [{"id": "a", "max_in_flight": 1}]}' |
    rh route --plugin demo-crashy.so --inline 2>/dev/null)"
if command -v valgrind >/dev/null 2>&1 &&
    ! ldd "$ROUTE_HOST" 2>/dev/null | grep -q libasan; then
	got=$(echo '{"message": {"poison": true}, "consumers": [{"id": "a", "max_in_flight": 1}]}' |
	    valgrind -q "$ROUTE_HOST" route --plugin "$crashy" --inline 2>&1)
	contains "route --inline under valgrind: it names the plugin's function and line" \
	    "crashy (demo-crashy.c:" "$got"
else
	echo "# valgrind absent, or a sanitizer build: --inline not run under it"
fi

# --- ROUTE_HOST_DEBUG: a helper stops before loading its plugin and says
# how to attach; its handshake waits, and it serves once continued.
echo '{"consumers": [{"id": "a", "max_in_flight": 1}]}' |
    ROUTE_HOST_DEBUG=1 "$ROUTE_HOST" route --plugin "$crashy" --timeout 60000 \
    >"$tmp/debug.out" 2>"$tmp/debug.err" &
dpid=$!
i=0
while ! grep -q "kill -CONT" "$tmp/debug.err" && [ $i -lt 100 ]; do
	sleep 0.1; i=$((i + 1))
done
hpid=$(sed -n 's/.*kill -CONT \([0-9]*\).*/\1/p' "$tmp/debug.err" | head -1)
contains "ROUTE_HOST_DEBUG: the helper says how to attach" \
    "stopped before loading its plugin: attach with gdb -p $hpid" \
    "$(cat "$tmp/debug.err")"
sleep 0.3
contains "ROUTE_HOST_DEBUG: the helper is stopped, and no deadline ended it" \
    "T" "$(ps -o stat= -p "${hpid:-0}" 2>&1)"
kill -CONT "${hpid:-0}" 2>/dev/null
wait $dpid
contains "ROUTE_HOST_DEBUG: continued, it answers" '{"decision": "a"' \
    "$(cat "$tmp/debug.out")"

got=$(echo '{"message": {"sleep_ms": -1}, "consumers": [{"id": "a", "max_in_flight": 1}]}' |
    rh route --plugin "$sleepy" --timeout 100)
contains "route: a call that never returns times out" '"error": "timed_out"' "$got"
got=$(echo '{"message": {"sleep_ms": -1}, "consumers": [], "timeout_ms": 30}' |
    rh route --plugin "$sleepy")
contains "route: timeout_ms per line" 'within 30 ms' "$got"

got=$(echo '{"consumers": []}' | rh route --plugin "$tmp/text.so"; echo "rc=$?")
contains "route: a non-plugin is spawn_failed" '"error": "spawn_failed"' "$got"
contains "route: spawn_failed exits 1" "rc=1" "$got"
got=$(echo '{"consumers": []}' | rh route --plugin /nonexistent.so 2>&1; echo "rc=$?")
contains "route: unreadable plugin exits 2" "rc=2" "$got"
got=$(rh route 2>&1 </dev/null; echo "rc=$?")
contains "route: no --plugin is a usage error" "rc=2" "$got"
got=$(rh route --plugin "$first" --timeout 0 2>&1 </dev/null; echo "rc=$?")
contains "route: --timeout 0 is refused" "rc=2" "$got"
got=$(rh route --plugin "$first" --option novalue 2>&1 </dev/null; echo "rc=$?")
contains "route: --option needs KEY=VALUE" "expected KEY=VALUE" "$got"
got=$(echo '{"consumers": [{"id": "a", "max_in_flight": 1}]}' |
    rh route --plugin "$mis" --option mode=decision --option value=0; echo "rc=$?")
contains "route: --option reaches init" '"decision": "a"' "$got"

# --- usage
got=$(rh frobnicate 2>&1; echo "rc=$?")
contains "unknown command exits 2" "rc=2" "$got"
contains "unknown command is named" "unknown command 'frobnicate'" "$got"

# --- demo
if [ -z "$ROUTE_HOST_WRAPPER" ]; then
	got=$(rh demo -d "$SHIPPED_PLUGINS" 2>&1; echo "rc=$?")
	contains "demo runs to its summary" "summary:" "$got"
	contains "demo shows a contained crash" "SIGSEGV" "$got"
	contains "demo shows a killed timeout" "timed out" "$got"
	contains "demo exits 0" "rc=0" "$got"
	got=$(rh demo -d /nonexistent 2>&1; echo "rc=$?")
	contains "demo without plugins says where it looked" "/nonexistent" "$got"
fi

# --- no helper outlives its route-host
sleep 0.1
# A helper outliving its route-host would be an orphan (parent 1); other
# suites may run helpers of their own meanwhile, so only orphans count.
left=$(ps -eo stat,pid,ppid,args | awk '$3 == 1 && (/route-host: helper/ || ($1 ~ /^Z/ && /route-host/))')
[ -n "$left" ] && ps -eo stat,pid,ppid,args >&2
expect "no helper or zombie left behind" "" "$left"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
