#!/usr/bin/env python3
"""Hostile and busy clients for the daemon (stdlib only).

usage: serve_client.py SOCKET TEST
Each TEST prints 'ok - ...' lines or fails with an exception.
"""
import os
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
    """Calls that take 300 ms, left in flight for the caller to SIGTERM."""
    c = Conn(path)
    n = 6
    c.s.sendall(b"".join(route(i, "slow", [("sleep_ms", 2, 300)])
                         for i in range(n)))
    print("sent", flush=True)
    statuses = [c.result()[1] for _ in range(n)]
    # Answered (0) or, past the bound, shutting_down (6): never lost.
    assert all(s in (0, 6) for s in statuses), statuses
    t, _ = c.read()
    assert t is None
    print(f"ok - SIGTERM with {n} calls in flight: all answered {statuses}")


if __name__ == "__main__":
    globals()["t_" + sys.argv[2]](sys.argv[1])
