#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Hostile and busy clients for the daemon (stdlib only).

usage: serve_client.py SOCKET TEST
Each TEST prints 'ok - ...' lines or fails with an exception.
"""
import collections
import os
import random
import select
import socket
import struct
import sys
import time

HELLO, ROUTE, STATUS = 0x01, 0x02, 0x03
WELCOME, RESULT, STATUS_REPLY, ERROR = 0x81, 0x82, 0x83, 0xFF


def frame(ftype, payload=b""):
    return struct.pack("<IB", len(payload) + 1, ftype) + payload


def body(fields, consumers):
    out = struct.pack("<II", len(fields), len(consumers))
    for name, kind, value in sorted(fields):
        out += struct.pack("<B", len(name)) + name.encode() + bytes([kind])
        if kind == 2:
            out += struct.pack("<q", value)
        elif kind == 4:
            out += struct.pack("<I", len(value.encode())) + value.encode()
        elif kind == 1:
            out += bytes([1 if value else 0])
    for cid, inflight, maxi, tags in consumers:
        out += struct.pack("<B", len(cid)) + cid.encode()
        out += struct.pack("<IIIB", inflight, maxi, 0, len(tags))
        for t in tags:
            out += struct.pack("<B", len(t)) + t.encode()
    return out


CONSUMERS = [("a", 0, 1, []), ("b", 0, 4, ["fast"])]


def route(rid, channel, fields=(), consumers=CONSUMERS, timeout=0):
    return frame(ROUTE, struct.pack("<QIB", rid, timeout, len(channel)) +
                 channel.encode() + body(list(fields), consumers))


class Conn:
    def __init__(self, path, hello=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(path)
        self.buf = b""
        if hello:
            self.s.sendall(frame(HELLO, struct.pack("<HH", 1, 1)))
            t, p = self.read()
            assert t == WELCOME, t
            self.window = struct.unpack_from("<I", p, 6)[0]

    def read(self):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from("<I", self.buf)
                if len(self.buf) >= 4 + n:
                    t, p = self.buf[4], self.buf[5:4 + n]
                    self.buf = self.buf[4 + n:]
                    return t, p
            chunk = self.s.recv(65536)
            if not chunk:
                return None, None
            self.buf += chunk

    def result(self):
        t, p = self.read()
        assert t == RESULT, (t, p)
        rid, status, decision = struct.unpack_from("<QBi", p)
        (dlen,) = struct.unpack_from("<H", p, 45)
        return rid, status, decision, p[13:45].hex(), p[47:47 + dlen].decode()


def closed_with_error(c, what):
    t, p = c.read()
    if t == ERROR:
        (n,) = struct.unpack_from("<H", p)
        reason = p[2:2 + n].decode()
        t2, _ = c.read()
        assert t2 is None, "connection stays open after ERROR"
        print(f"ok - {what}: closed with ERROR '{reason}'")
        return
    assert t is None, (t, p)
    print(f"ok - {what}: closed")


def t_pipeline(path):
    conns = [Conn(path) for _ in range(4)]
    chans = ["orders", "fast"]
    for k, c in enumerate(conns):
        c.s.sendall(b"".join(route(i, chans[(i + k) % 2]) for i in range(500)))
    for c in conns:
        seen = set()
        for _ in range(500):
            rid, status, decision, _, detail = c.result()
            assert status == 0, detail
            seen.add(rid)
        assert seen == set(range(500))
    print("ok - 2000 pipelined calls over 4 connections and 2 channels")


def t_hang(path):
    slow = Conn(path)
    slow.s.sendall(route(1, "slow", [("sleep_ms", 2, -1)], timeout=3000))
    fast = Conn(path)
    t0 = time.monotonic()
    fast.s.sendall(b"".join(route(i, "orders") for i in range(100)))
    for _ in range(100):
        assert fast.result()[1] == 0
    took = time.monotonic() - t0
    assert took < 2.5, f"other channel waited {took:.2f}s"
    rid, status, _, _, detail = slow.result()
    assert status == 2, (status, detail)
    print("ok - a hung plugin times out while another channel keeps answering")


def t_garbage(path):
    c = Conn(path, hello=False)
    c.s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    closed_with_error(c, "garbage instead of HELLO")
    c = Conn(path)
    c.s.sendall(frame(0x7E, b"x"))
    closed_with_error(c, "unknown frame type")
    c = Conn(path)
    c.s.sendall(frame(ROUTE, b"\x01\x02"))
    closed_with_error(c, "ROUTE shorter than its header")
    c = Conn(path)
    c.s.sendall(struct.pack("<IB", 1 << 30, ROUTE))
    closed_with_error(c, "oversized frame")
    c = Conn(path)
    c.s.sendall(route(9, "orders")[:-3])
    c.s.close()
    print("ok - truncated frame then hang-up")
    c = Conn(path, hello=False)
    c.s.sendall(frame(HELLO, struct.pack("<HH", 7, 9)))
    closed_with_error(c, "unsupported protocol version")
    c = Conn(path)
    c.s.sendall(route(3, "orders", consumers=[("a", 0, 1, []), ("a", 0, 1, [])]))
    rid, status, _, _, detail = c.result()
    assert rid == 3 and status == 5 and "more than once" in detail, detail
    c.s.sendall(route(4, "orders"))
    assert c.result()[1] == 0
    print("ok - a bad body is a bad_request result; the connection lives on")
    c.s.sendall(route(5, "nope"))
    assert c.result()[1] == 7
    print("ok - unknown channel is no_such_channel")


def route_raw(rid, name):
    """A ROUTE frame whose channel name is the bytes name, as they are."""
    return frame(ROUTE, struct.pack("<QIB", rid, 0, len(name)) + name +
                 body([], CONSUMERS))


def t_badname(path):
    c = Conn(path)
    for rid, name, want in ((1, b"orders\0/../x", "NUL byte at 7"),
                            (2, b"\0orders", "NUL byte at 1"),
                            (3, b"ord/ers", "byte 0x2f at 4"),
                            (4, b"orders\xff", "byte 0xff at 7"),
                            (5, b".orders", "byte 0x2e at 1")):
        c.s.sendall(route_raw(rid, name))
        got, status, _, _, detail = c.result()
        assert got == rid and status == 5, (name, status, detail)
        assert want in detail, (name, detail)
        print(f"ok - channel name {name!r} is bad_request: {detail}")
    c.s.sendall(route(6, "orders"))
    assert c.result()[1] == 0
    print("ok - the connection lives on after bad channel names")


def status(c, rid=1):
    """The daemon's status, as a dict, over connection c."""
    import json
    c.s.sendall(frame(STATUS, struct.pack("<Q", rid)))
    t, p = c.read()
    assert t == STATUS_REPLY, (t, p)
    (n,) = struct.unpack_from("<I", p, 8)
    return json.loads(p[12:12 + n])


def t_peers(path):
    c = Conn(path)
    c2 = Conn(path)
    peers = status(c)["peers"]
    me = [p for p in peers if p["pid"] == os.getpid()]
    assert len(me) == 2, peers
    for p in me:
        assert p["uid"] == os.geteuid() and p["gid"] == os.getegid(), p
        assert p["in_flight"] == 0, p
    print(f"ok - status shows each peer's pid, uid and gid: {me[0]}")
    c2.s.close()


def t_refused(path):
    """A peer outside allow-uid / allow-gid: an ERROR at once, closed."""
    c = Conn(path, hello=False)
    t, p = c.read()
    assert t == ERROR, (t, p)
    (n,) = struct.unpack_from("<H", p)
    reason = p[2:2 + n].decode()
    assert "not allowed" in reason, reason
    assert c.read()[0] is None, "connection stays open"
    print(f"ok - a peer not allowed is refused: '{reason}'")


def t_noread(path):
    lazy = Conn(path)
    lazy.s.settimeout(0.5)
    sent = 0
    try:
        for i in range(200000):
            lazy.s.sendall(route(i, "orders"))
            sent += 1
    except (socket.timeout, BlockingIOError):
        pass
    other = Conn(path)
    other.s.sendall(route(1, "orders"))
    assert other.result()[1] == 0
    print(f"ok - a client that never reads ({sent} sent) does not stop others")
    lazy.s.close()


def t_many(path):
    conns = [Conn(path) for _ in range(200)]
    for i, c in enumerate(conns):
        c.s.sendall(route(i, "fast" if i % 2 else "orders"))
    for i, c in enumerate(conns):
        rid, status, _, _, detail = c.result()
        assert rid == i and status == 0, detail
    for c in conns:
        c.s.close()
    print("ok - 200 concurrent connections")


def t_window(path):
    """Print the window a new connection is told."""
    print(Conn(path).window)


def t_inflight(path):
    """Calls that take 300 ms, left in flight for the caller to SIGTERM.
    Their deadline is long: under valgrind, forking their helpers alone
    can take the channel's 1000 ms."""
    c = Conn(path)
    n = 6
    c.s.sendall(b"".join(route(i, "slow", [("sleep_ms", 2, 300)],
                               timeout=20000)
                         for i in range(n)))
    print("sent", flush=True)
    statuses = [c.result()[1] for _ in range(n)]
    # Answered (0) or, past the bound, shutting_down (6): never lost.
    assert all(s in (0, 6) for s in statuses), statuses
    t, _ = c.read()
    assert t is None
    print(f"ok - SIGTERM with {n} calls in flight: all answered {statuses}")


def answers(c, nstatus, nroute, what):
    """Read nstatus STATUS_REPLY and nroute RESULT frames, each id once."""
    statuses, results = set(), set()
    try:
        while len(statuses) < nstatus or len(results) < nroute:
            t, p = c.read()
            assert t is not None, "connection closed"
            rid = struct.unpack_from("<Q", p)[0]
            if t == STATUS_REPLY:
                assert rid not in statuses, f"second STATUS_REPLY {rid}"
                statuses.add(rid)
            else:
                assert t == RESULT, (t, p)
                assert rid not in results, f"second RESULT {rid}"
                assert p[8] == 0, f"call {rid}: status {p[8]}"
                results.add(rid)
    except socket.timeout:
        raise AssertionError(f"{what}: {len(statuses)} of {nstatus} "
                             f"STATUS_REPLY and {len(results)} of {nroute} "
                             "RESULT before the timeout") from None


def t_resume_window(path):
    """window + 1 calls in one write: the last one waits in the daemon's
    buffer, and must be handled when a call ends, with nothing more to
    read."""
    c = Conn(path)
    c.s.settimeout(10)
    n = c.window + 1
    c.s.sendall(b"".join(route(i, "orders") for i in range(n)))
    answers(c, 0, n, f"{n} calls in one write, window {c.window}")
    print(f"ok - {n} calls in one write with window {c.window}: "
          "all answered")


def t_resume_output(path):
    """A client that pipelines without reading until more than 1 MiB of
    answers wait for it, then reads: every answer arrives, those to the
    frames the daemon held back while paused too."""
    c = Conn(path)
    c.s.settimeout(10)
    c.s.sendall(frame(STATUS, struct.pack("<Q", 1 << 40)))
    t, p = c.read()
    assert t == STATUS_REPLY, t
    # About 2 MiB of answers, from one write of under 64 KiB (one read).
    nstatus = min(4000, (2 << 20) // (len(p) + 5) + 1)
    out, nroute = [], 0
    for i in range(nstatus):
        out.append(frame(STATUS, struct.pack("<Q", 100000 + i)))
        if i % 50 == 49:
            out.append(route(nroute, "orders"))
            nroute += 1
    data = b"".join(out)
    assert len(data) < 65536, len(data)
    c.s.sendall(data)
    time.sleep(0.5)
    answers(c, nstatus, nroute, "reading after 0.5 s")
    print(f"ok - {nstatus} STATUS and {nroute} ROUTE without reading "
          f"({nstatus * (len(p) + 5) >> 10} KiB of answers), then read: "
          "all answered")


def t_paused_stop(path):
    """Window 1, a call that does not end, and about 78 KB of STATUS
    frames behind it that the daemon does not read: the caller then
    sends SIGTERM."""
    c = Conn(path)
    c.s.settimeout(30)
    assert c.window == 1, c.window
    c.s.sendall(route(1, "sleep") + b"".join(
        frame(STATUS, struct.pack("<Q", 100 + i)) for i in range(6000)))
    print("sent", flush=True)
    rid, status, _, _, detail = c.result()
    assert rid == 1 and status == 6, (rid, status, detail)
    try:
        t, _ = c.read()
    except ConnectionResetError:
        t = None
    assert t is None, f"after its last call a frame of type {t:#x}"
    print("ok - SIGTERM with a paused connection: its call ends "
          "shutting_down, the frames held back are not read")


def t_storm(path, ncalls="2000", nconns="4"):
    """Connections each keeping up to a window of calls in flight on the
    crashy channel, half of the calls crashing their helper: every call
    is answered once, the crashed ones crashed, the healthy ones ok."""
    ncalls, nconns = int(ncalls), int(nconns)
    t0 = time.monotonic()
    conns = [Conn(path) for _ in range(nconns)]
    healthy = route(0, "crashy")
    poisoned = route(0, "crashy", [("poison", 1, True)])
    for k, c in enumerate(conns):
        c.poison = [True] * (ncalls // 2) + [False] * (ncalls - ncalls // 2)
        random.Random(k).shuffle(c.poison)
        c.s.setblocking(False)
        c.buf = bytearray()
        c.out = bytearray()
        c.unsent = collections.deque()  # [id, bytes not yet written]
        c.next = 0
        c.sent = {}                     # id -> when written in full
        c.done = 0
    lat, bad, wrong, crashed, answered = [], [], [], 0, 0
    total = ncalls * nconns
    last = time.monotonic()
    while answered < total:
        for c in conns:
            while c.next < ncalls and len(c.sent) < c.window:
                f = poisoned if c.poison[c.next] else healthy
                c.out += f[:5] + struct.pack("<Q", c.next) + f[13:]
                c.unsent.append([c.next, len(f)])
                c.sent[c.next] = None
                c.next += 1
        r, w, _ = select.select([c.s for c in conns if c.done < ncalls],
                                [c.s for c in conns if c.out], [], 1.0)
        now = time.monotonic()
        assert now - last < 20, (f"no answer for 20 s: {answered} of "
                                 f"{total} answered")
        for c in conns:
            if c.s in w:
                try:
                    n = c.s.send(c.out)
                except BlockingIOError:
                    n = 0
                del c.out[:n]
                while n > 0:
                    if c.unsent[0][1] > n:
                        c.unsent[0][1] -= n
                        break
                    rid, left = c.unsent.popleft()
                    c.sent[rid] = now
                    n -= left
            if c.s not in r:
                continue
            chunk = c.s.recv(1 << 20)
            assert chunk, "the daemon closed a connection"
            c.buf += chunk
            off = 0
            while len(c.buf) - off >= 4:
                (n,) = struct.unpack_from("<I", c.buf, off)
                if len(c.buf) - off < 4 + n:
                    break
                t = c.buf[off + 4]
                assert t == RESULT, (t, bytes(c.buf[off:off + 4 + n]))
                rid, status = struct.unpack_from("<QB", c.buf, off + 5)
                off += 4 + n
                assert rid in c.sent, f"an answer to {rid}, not in flight"
                at = c.sent.pop(rid)
                c.done += 1
                answered += 1
                last = now
                if c.poison[rid]:
                    if status == 1:
                        crashed += 1
                    else:
                        wrong.append(status)
                elif status == 0:
                    lat.append(now - (at if at is not None else now))
                else:
                    bad.append(status)
            del c.buf[:off]
    took = time.monotonic() - t0
    lat.sort()
    p50 = lat[len(lat) // 2] * 1000 if lat else 0
    p99 = lat[min(len(lat) - 1, len(lat) * 99 // 100)] * 1000 if lat else 0
    print(f"# storm: {nconns} connections x {ncalls} calls, window "
          f"{conns[0].window}, in {took:.1f} s: {crashed} crashed, "
          f"{len(lat)} healthy ok, {len(bad)} healthy failed; healthy "
          f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    assert not bad, (f"{len(bad)} healthy calls failed, statuses "
                     f"{dict(collections.Counter(bad))}")
    assert not wrong, (f"{len(wrong)} poisoned calls not crashed, "
                       f"statuses {dict(collections.Counter(wrong))}")
    c = Conn(path)
    c.s.sendall(route(1, "crashy"))
    assert c.result()[1] == 0, "no answer after the storm"
    print(f"ok - crash storm: {total} calls each answered once, "
          f"{crashed} crashed, every healthy one ok, still serving")


def cpu_seconds(pid):
    """User plus system CPU time of process pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    """Resident set size of process pid, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def t_fdflood(path, pid, nconns="100", seconds="2"):
    """More connections than the daemon has descriptors for: it stops
    accepting for a while instead of spinning, keeps serving the client
    it has, and accepts again once connections close."""
    nconns, seconds = int(nconns), float(seconds)
    first = Conn(path)
    flood, pending = [], 0
    for _ in range(nconns):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
            s.send(frame(HELLO, struct.pack("<HH", 1, 1)))
        except (BlockingIOError, InterruptedError):
            pending += 1
        flood.append(s)
    time.sleep(0.3)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    served = 0
    while time.monotonic() - t0 < seconds:
        first.s.sendall(route(served, "orders"))
        rid, status, _, _, detail = first.result()
        assert rid == served and status == 0, (rid, status, detail)
        served += 1
        time.sleep(0.05)
    cpu = cpu_seconds(pid) - cpu0
    took = time.monotonic() - t0
    print(f"# {nconns} connections beyond the fd limit ({pending} not "
          f"even queued): daemon CPU {cpu:.2f} s in {took:.1f} s; "
          f"{served} calls of the first client answered")
    assert cpu < 0.25 * took, f"the daemon spins: {cpu:.2f} s of CPU"
    print(f"ok - at its fd limit the daemon does not spin ({cpu:.2f} s "
          f"CPU in {took:.1f} s)")
    print(f"ok - ... and its connected client is answered ({served} calls)")
    for s in flood:
        s.close()
    t0 = time.monotonic()
    while True:
        try:
            c = Conn(path)
            c.s.sendall(route(1, "orders"))
            assert c.result()[1] == 0
            break
        except (socket.timeout, AssertionError, OSError):
            assert time.monotonic() - t0 < 10, "never accepts again"
            time.sleep(0.1)
    print("ok - once connections close, new ones are accepted again")


def t_maxconn(path, limit):
    """limit + 10 connections: limit get WELCOME, the others an ERROR
    naming max-connections; the first keep being served."""
    limit = int(limit)
    conns, refused = [], []
    for _ in range(limit + 10):
        c = Conn(path, hello=False)
        try:
            c.s.sendall(frame(HELLO, struct.pack("<HH", 1, 1)))
        except (BrokenPipeError, ConnectionResetError):
            pass    # refused already: its ERROR waits to be read
        conns.append(c)
    welcomed = []
    for c in conns:
        t, p = c.read()
        if t == WELCOME:
            welcomed.append(c)
        else:
            assert t == ERROR, (t, p)
            (n,) = struct.unpack_from("<H", p)
            refused.append(p[2:2 + n].decode())
            try:
                assert c.read()[0] is None, "refused connection left open"
            except ConnectionResetError:
                pass    # closed with our HELLO unread
    assert len(welcomed) == limit, (len(welcomed), refused[:1])
    assert all("max-connections" in r for r in refused), refused[:1]
    print(f"ok - max-connections {limit}: {limit} welcomed, "
          f"{len(refused)} refused with '{refused[0]}'")
    for i, c in enumerate(welcomed):
        c.s.sendall(route(i, "orders"))
        assert c.result()[1] == 0
    print(f"ok - ... and the {limit} connected are served")
    welcomed[0].s.close()
    time.sleep(0.2)
    c = Conn(path)
    c.s.sendall(route(1, "orders"))
    assert c.result()[1] == 0
    print("ok - a connection closed makes room for a new one")


def t_pin(path, pid, nconns, window_bytes, max_bytes, slack_mib):
    """Clients pinning as many bytes as they can: each sends calls with
    512 KiB bodies to the channel "hold" (one helper, blocked) without
    reading.  The daemon holds at most window-bytes of bodies for a
    connection and max-in-flight-bytes in all (calls past that are
    answered overloaded), and its RSS stays under the budget plus a
    constant."""
    nconns, window_bytes = int(nconns), int(window_bytes)
    max_bytes, slack = int(max_bytes), int(slack_mib) << 10
    import json
    rss0 = rss_kib(pid)
    big = "x" * (512 << 10)
    ncalls = 4 * window_bytes // len(big)
    blocker = Conn(path)
    blocker.s.sendall(route(0, "hold", [("dir", 4, "/nonexistent")]))
    time.sleep(0.2)
    conns = [Conn(path) for _ in range(nconns)]
    for c in conns:
        c.s.setblocking(False)
        c.data = b"".join(route(i, "hold", [("pad", 4, big)],
                                timeout=1500) for i in range(ncalls))
        c.off = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3:
        progress = False
        for c in conns:
            try:
                n = c.s.send(c.data[c.off:c.off + (1 << 20)])
                c.off += n
                progress = progress or n > 0
            except BlockingIOError:
                pass
        if not progress:
            time.sleep(0.05)
    time.sleep(0.5)
    st = status(Conn(path))
    held = st["bytes_in_flight"]
    rss = rss_kib(pid)
    sent = sum(c.off for c in conns)
    print(f"# {nconns} clients sent {sent >> 20} MiB of calls without "
          f"reading: {held >> 10} KiB of bodies held; daemon RSS "
          f"{rss0 >> 10} -> {rss >> 10} MiB")
    assert held <= max_bytes, f"{held} bytes held, max {max_bytes}"
    print(f"ok - bodies held ({held >> 10} KiB) stay within "
          f"max-in-flight-bytes ({max_bytes >> 10} KiB)")
    for p in st["peers"]:
        assert p["bytes_in_flight"] <= window_bytes + len(big) + 4096, p
    print(f"ok - ... and each connection's within window-bytes "
          f"({window_bytes >> 10} KiB)")
    assert rss - rss0 < (max_bytes >> 10) + slack, (rss0, rss)
    print(f"ok - daemon RSS grew {(rss - rss0) >> 10} MiB, under the "
          f"budget plus {slack >> 10} MiB")
    kinds = collections.Counter()
    for c in conns:
        c.s.setblocking(True)
        c.s.settimeout(30)
        c.s.sendall(c.data[c.off:])
        for _ in range(ncalls):
            kinds[c.result()[1]] += 1
    assert kinds[8] > 0, f"none overloaded: {dict(kinds)}"
    assert sum(kinds.values()) == nconns * ncalls, dict(kinds)
    print(f"ok - every call answered ({dict(kinds)}: 8 is overloaded)")
    st = status(Conn(path))
    assert st["bytes_in_flight"] == 0, st["bytes_in_flight"]
    print("ok - once answered, no bytes are held")


def t_hostile(path, pid, nconns="1000", seconds="5"):
    """Worst case for the daemon's memory with its default limits:
    nconns clients (at most max-connections) each asking for statuses it
    never reads, and sending most of a 1 MiB call it never finishes,
    plus calls with 1 MiB bodies on a blocked channel ("hold") that they
    never read the answers of.  Prints the daemon's peak RSS."""
    nconns, seconds = int(nconns), float(seconds)
    rss0 = rss_kib(pid)
    big = "x" * ((1 << 20) - 200)
    held = route(0, "hold", [("pad", 4, big)], timeout=60000)
    partial = route(0, "hold", [("pad", 4, big)])[:-100]
    statuses = b"".join(frame(STATUS, struct.pack("<Q", i))
                        for i in range(2000))
    blocker = Conn(path)
    blocker.s.sendall(route(0, "hold", [("dir", 4, "/nonexistent")],
                            timeout=60000))
    watcher = Conn(path)
    conns, refused = [], 0
    for i in range(nconns):
        try:
            c = Conn(path)
        except (AssertionError, OSError):
            refused += 1        # past max-connections
            continue
        c.s.setblocking(False)
        c.data = held * 4 + statuses + partial
        c.off = 0
        conns.append(c)
    peak, t0 = rss0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        for c in conns:
            try:
                c.off += c.s.send(c.data[c.off:c.off + (1 << 20)])
            except BlockingIOError:
                pass
        peak = max(peak, rss_kib(pid))
        time.sleep(0.01)
    st = status(watcher)
    sent = sum(c.off for c in conns) >> 20
    print(f"# hostile: {nconns} clients sent {sent} MiB (statuses never "
          f"read, 1 MiB calls never answered, 1 MiB frames never "
          f"finished): daemon RSS {rss0 >> 10} -> peak {peak >> 10} MiB; "
          f"{st['bytes_in_flight'] >> 20} MiB of calls held, "
          f"{st['bytes_buffered'] >> 20} MiB buffered, "
          f"{st['connections_refused']} connections refused "
          f"({refused} seen)")
    for c in conns:
        c.s.close()


if __name__ == "__main__":
    globals()["t_" + sys.argv[2]](sys.argv[1], *sys.argv[3:])
