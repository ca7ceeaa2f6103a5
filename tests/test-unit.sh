#!/bin/sh
# SPDX-License-Identifier: ISC
# route-host.service, offline (no systemd need run): systemd-analyze verify
# accepts it, systemd-analyze security rates its exposure 2.5 or less, and
# its SystemCallFilter= allows every system call the daemon and its helpers
# make.  Skipped (77) without a systemd-analyze that has --offline.
set -u

: "${ROUTE_HOST:=host/route-host}"
srcdir=$(cd "$(dirname "$0")/.." && pwd)
max=2.5

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: no systemd-analyze"
	exit 77
fi
if ! systemd-analyze --help 2>/dev/null | grep -q -- '--offline'; then
	echo "SKIP: systemd-analyze has no --offline"
	exit 77
fi
tmp=$(mktemp -d /tmp/route-host-unit-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }

# The units as make install writes them, but starting this build's
# route-host: verify wants ExecStart='s program to exist.
bindir=$(cd "$(dirname "$ROUTE_HOST")" && pwd)
unit="$tmp/route-host.service"
socket="$tmp/route-host.socket"
sed -e "s|@bindir@|$bindir|g" -e "s|@runstatedir@|$RUNSTATEDIR|g" \
    "$srcdir/etc/route-host.service.in" >"$unit"
sed "s|@runstatedir@|$RUNSTATEDIR|g" "$srcdir/etc/route-host.socket.in" \
    >"$socket"

# verify exits 0 on an unknown or bad setting, and only warns: any line
# about the units fails too.
if systemd-analyze verify --man=no "$unit" "$socket" >"$tmp/verify" 2>&1 &&
    ! grep -q 'route-host\.s' "$tmp/verify"; then
	ok "systemd-analyze verify, the service and its socket"
else
	not_ok "systemd-analyze verify, the service and its socket"
	sed 's/^/#   /' "$tmp/verify"
fi

# The socket systemd makes is where route-host looks by default.
listen=$(sed -n 's/^ListenStream=//p' "$socket")
case "$("$ROUTE_HOST" status 2>&1)" in
*"$listen:"*) ok "route-host.socket listens where route-host looks: $listen" ;;
*) not_ok "route-host.socket listens on $listen, route-host looks elsewhere"
   "$ROUTE_HOST" status 2>&1 | sed 's/^/#   /' ;;
esac

systemd-analyze security --offline=yes "$unit" >"$tmp/security" 2>&1
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' \
    "$tmp/security")
if [ -n "$score" ] && awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }'
then
	ok "systemd-analyze security: exposure $score, at most $max"
else
	not_ok "systemd-analyze security: exposure '$score', at most $max"
	grep -e '✗' -e 'Overall' "$tmp/security" | sed 's/^/#   /'
fi

# The system calls the unit's filter must allow: the daemon's (execve:
# it runs route-host-zygote), those of helpers (forked, so under the
# same filter) before and under their own filters, and, for helpers run
# as another user (planned), the setuid family and pidfd_*.
needed="execve read write readv writev pread64 close openat newfstatat access
fcntl dup2 close_range getdents64 chmod unlink ftruncate mmap mprotect
munmap mremap madvise brk memfd_create epoll_create1 epoll_ctl epoll_wait
signalfd4 timerfd_create timerfd_settime inotify_init1 inotify_add_watch
socket socketpair bind listen accept4 connect getsockname sendto recvfrom sendmsg
recvmsg clone clone3 wait4 kill tgkill prctl seccomp setsid prlimit64
getrandom futex rseq set_robust_list membarrier rt_sigaction
rt_sigprocmask rt_sigtimedwait rt_sigreturn sigaltstack clock_gettime
clock_nanosleep nanosleep getpid getppid exit exit_group setresuid
setresgid setgroups pidfd_open pidfd_send_signal"
systemd-analyze syscall-filter >"$tmp/groups" 2>/dev/null
sed -n 's/^SystemCallFilter=//p' "$unit" >"$tmp/filters"
# Apply the unit's SystemCallFilter= lines in order, as systemd does: the
# first line makes an allow list (or, with ~, a deny list); later lines
# add to it or, with ~ before the line, take from it.  Groups (@name)
# expand recursively.
denied=$(echo "$needed" | tr ' ' '\n' | awk '
	FILENAME == ARGV[1] {
		if ($0 ~ /^@/) { g = $1; next }
		if ($0 ~ /^[ \t]*(#|$)/) next
		if (g != "") members[g] = members[g] " " $1
		next
	}
	FILENAME == ARGV[2] {
		neg = sub(/^~/, "")
		if (mode == "") mode = neg ? "deny" : "allow"
		for (i = 1; i <= NF; i++)
			expand($i, (mode == "allow") != neg)
		next
	}
	$1 != "" && (mode == "allow") != ($1 in set) { print $1 }
	function expand(w, add,    n, m, k) {
		if (w !~ /^@/) {
			if (add) set[w] = 1; else delete set[w]
			return
		}
		n = split(members[w], m, " ")
		for (k = 1; k <= n; k++)
			expand(m[k], add)
	}
' "$tmp/groups" "$tmp/filters" -)
if [ ! -s "$tmp/filters" ]; then
	not_ok "SystemCallFilter=: the unit has none"
elif [ ! -s "$tmp/groups" ]; then
	not_ok "SystemCallFilter=: systemd-analyze syscall-filter printed nothing"
elif [ -n "$denied" ]; then
	not_ok "SystemCallFilter= allows what route-host calls"
	printf '#   denied: %s\n' "$(echo "$denied" | tr '\n' ' ')"
else
	ok "SystemCallFilter= allows what route-host calls"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
