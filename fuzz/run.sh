#!/bin/sh
# SPDX-License-Identifier: ISC
# run.sh: run libFuzzer targets for a fixed time each, on a scratch copy of
# their seed corpora (the source tree is never written), and fail on any
# finding: a crash, an assertion, an ASan or UBSan report, a leak, a
# timeout or running out of memory.  Prints one line per target, PASS or
# FAIL, with libFuzzer's final figures: execs, exec/s, cov and ft.
#
#	FUZZ_SECONDS=20 sh run.sh CORPUS_DIR TARGET_DIR NAME...
#
# CORPUS_DIR/NAME holds the seeds of TARGET_DIR/NAME.  A finding's input
# and libFuzzer's log are kept under a scratch directory, named in the
# FAIL line; nothing is kept otherwise.
set -u

[ $# -ge 3 ] || { echo "usage: run.sh CORPUS_DIR TARGET_DIR NAME..." >&2; exit 2; }
corpus=$1
bin=$2
shift 2
secs=${FUZZ_SECONDS:-20}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/route-host-fuzz-run-XXXXXX") || exit 1
# Every sanitizer finding is fatal, and leaks are looked for.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS UBSAN_OPTIONS

failed=0
for name in "$@"; do
	work=$scratch/$name
	mkdir -p "$work/corpus" "$work/found"
	[ ! -d "$corpus/$name" ] || cp "$corpus/$name"/* "$work/corpus/" 2>/dev/null
	# A configuration line can be longer than libFuzzer's default 4096.
	case $name in
	fuzz-conf)	maxlen=-max_len=16384 ;;
	*)		maxlen= ;;
	esac
	# What a target makes in TMPDIR (fuzz-server's socket) goes with it.
	TMPDIR=$work "$bin/$name" -max_total_time="$secs" -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$work/found/" $maxlen "$work/corpus" \
	    >"$work/log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
	last=$(grep -E '^#[0-9]+' "$work/log" | tail -1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	figures="${secs} s, execs ${execs:-?}, exec/s ${rate:-?}, cov ${cov:-?}, ft ${ft:-?}"
	found=$(ls "$work/found" 2>/dev/null)
	if [ $rc -eq 0 ] && [ -z "$found" ]; then
		echo "PASS: $name ($figures)"
		rm -rf "$work"
	else
		echo "FAIL: $name ($figures): exit $rc; input and log in $work"
		grep -E 'ERROR|SUMMARY|Assertion|runtime error|liveness' \
		    "$work/log" | head -5 | sed 's/^/    /'
		failed=$((failed + 1))
	fi
done
rmdir "$scratch" 2>/dev/null
[ $failed -eq 0 ]
