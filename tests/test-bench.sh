#!/bin/sh
# SPDX-License-Identifier: ISC
# The benchmark still runs: a quick run (-q) prints every figure, as a
# table and as JSON, and leaves nothing running.  Nothing here asserts a
# speed: route-bench prints figures, it does not judge them.
set -u

: "${TOP_BUILDDIR:=.}"
bench="$TOP_BUILDDIR/bench/route-bench"
args="-d $TOP_BUILDDIR/plugins/.libs -t $TOP_BUILDDIR/tests/plugins/.libs
-r $TOP_BUILDDIR/host/route-host"
tmp=$(mktemp -d /tmp/route-host-bench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() {
	pass=$((pass + 1))
	echo "ok - $1"
}

not_ok() {
	fail=$((fail + 1))
	echo "not ok - $1"
}

# check NAME COMMAND...: ok when the command succeeds.
check() {
	name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name"; fi
}

# What was there before, so that only this run's leftovers count.
leftovers() {
	{ ls -d /tmp/route-bench-* 2>/dev/null
	  pgrep -f 'route-bench-(serve|mem|poison)' 2>/dev/null; } | sort
}
leftovers >"$tmp/before"

# shellcheck disable=SC2086
"$bench" -q $args >"$tmp/table" 2>"$tmp/err"
check "table run exits 0" [ $? -eq 0 ]
for row in "machine: " "floor A: direct" "floor B: socketpair" \
    "engine: one call in flight" "cold start" "crash recovery: crash now" \
    "crashes back to back" "floor D: timer wake-up late, 10 ms" \
    "timeout overshoot, 100 ms" "hot deploy" "drain" \
    "daemon: one call in flight" "floor C: raw pipelined" \
    "daemon: 8 connections" "daemon RSS, 100 channels" "USS" \
    "50 % poison, distinct: healthy" "healthy p99 / no-poison p99" \
    "100 % poison, distinct:" "slowest answer" "one poison body, redelivered:" \
    "helpers it crashed" "another channel, during the storm"; do
	check "table has '$row'" grep -q "$row" "$tmp/table"
done
check "table ratios name their floor" grep -q "x floor C" "$tmp/table"

# shellcheck disable=SC2086
"$bench" -q --json -s latency,daemon $args >"$tmp/json" 2>"$tmp/err"
check "json run exits 0" [ $? -eq 0 ]
check "json has every figure of the sections run" python3 - "$tmp/json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
want = ["floor_a", "floor_b", "engine_one_in_flight", "daemon_floor_b",
        "daemon_one_in_flight", "floor_c", "daemon_pipelined_1",
        "daemon_pipelined_8"]
assert d["machine"]["cores"] >= 1, d["machine"]
for k in want:
    v = d[k]
    assert v.get("median_us", v.get("value", -1)) >= 0, (k, v)
assert d["engine_one_in_flight"]["ratio"]["to"] == "floor B"
assert d["daemon_pipelined_8"]["ratio"]["to"] == "floor C"
assert "cold_start" not in d, "a section not asked for ran"
PY

"$bench" -s nonsense >/dev/null 2>"$tmp/err"
check "an unknown section exits 2" [ $? -eq 2 ]
check "and says which" grep -q "unknown section 'nonsense'" "$tmp/err"

# Nothing left behind: no daemon (nor its helpers), no temporary directory.
leftovers >"$tmp/after"
check "no daemon or temporary directory left" cmp -s "$tmp/before" \
    "$tmp/after"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
