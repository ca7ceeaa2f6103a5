#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Client for route-host-protocol(7), version 1, written from the man page only.

usage: proto_client.py SOCKET CHANNEL

Connects, does HELLO/WELCOME, pipelines three ROUTE calls (ids 10, 11, 12)
and one STATUS (id 13) in a single write, decodes the four answers, prints
them sorted by id, then sends a frame of an unknown type and checks that the
daemon answers with ERROR and closes the connection.
"""

import json
import select
import socket
import struct
import sys
import time

# Frame types (route-host-protocol(7), "Frames").
HELLO, ROUTE, STATUS = 0x01, 0x02, 0x03
WELCOME, RESULT, STATUS_REPLY, ERROR = 0x81, 0x82, 0x83, 0xFF
DAEMON_TYPES = {WELCOME: "WELCOME", RESULT: "RESULT",
                STATUS_REPLY: "STATUS_REPLY", ERROR: "ERROR"}

PROTO_FRAME_MAX = 1049088          # 1 MiB + 512
TIMEOUT_MAX = 3600000
# Status codes (section RESULT).
STATUS_NAMES = ["ok", "crashed", "timed_out", "spawn_failed", "bad_decision",
                "bad_request", "shutting_down", "no_such_channel", "overloaded"]
# Statuses whose version is always 32 zero bytes (section RESULT, "version").
NO_VERSION_STATUSES = {7, 8}

# Field value types (section "Call bodies").
T_NULL, T_BOOL, T_INT, T_FLOAT, T_TEXT = 0, 1, 2, 3, 4

# Upper bound on any single frame we accept from the daemon.  STATUS_REPLY may
# exceed max_frame (CAVEATS), so this is only a sanity guard.
RECV_SANITY_MAX = 64 * 1024 * 1024
IO_TIMEOUT = 30.0   # seconds to wait for answers


class ProtoError(Exception):
    pass


# ---------------------------------------------------------------- encoding

def frame(ftype, payload):
    n = len(payload) + 1
    if n > PROTO_FRAME_MAX:
        raise ProtoError("frame of %d bytes exceeds %d" % (n, PROTO_FRAME_MAX))
    return struct.pack("<IB", n, ftype) + payload


def str8(value):
    b = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(b) > 255:
        raise ProtoError("str8 too long: %r" % (value,))
    return struct.pack("<B", len(b)) + b


def check_utf8_name(kind, b, lo, hi):
    if not lo <= len(b) <= hi:
        raise ProtoError("%s %r must be %d to %d bytes" % (kind, b, lo, hi))
    if b"\0" in b:
        raise ProtoError("%s %r contains NUL" % (kind, b))


def encode_field(name, value):
    """value is a (type, python value) pair."""
    nb = name.encode("utf-8")
    check_utf8_name("field name", nb, 1, 255)
    ftype, v = value
    out = str8(nb) + struct.pack("<B", ftype)
    if ftype == T_NULL:
        pass
    elif ftype == T_BOOL:
        out += struct.pack("<B", 1 if v else 0)
    elif ftype == T_INT:
        out += struct.pack("<q", v)
    elif ftype == T_FLOAT:
        # f64: the IEEE 754 bits, sent as a u64.
        bits, = struct.unpack("<Q", struct.pack("<d", v))
        out += struct.pack("<Q", bits)
    elif ftype == T_TEXT:
        tb = v.encode("utf-8")
        if b"\0" in tb:
            raise ProtoError("text value of %r contains NUL" % name)
        out += struct.pack("<I", len(tb)) + tb
    else:
        raise ProtoError("unknown field type %r" % ftype)
    return out


def encode_consumer(c):
    ib = c["id"].encode("utf-8")
    check_utf8_name("consumer id", ib, 1, 255)
    tags = c.get("tags", [])
    if len(tags) > 64:
        raise ProtoError("consumer %r has more than 64 tags" % c["id"])
    out = str8(ib) + struct.pack("<IIIB", c.get("in_flight", 0),
                                 c.get("max_in_flight", 0),
                                 c.get("buffer_depth", 0), len(tags))
    for t in tags:
        tb = t.encode("utf-8")
        check_utf8_name("tag", tb, 0, 255)
        out += str8(tb)
    return out


def encode_body(fields, consumers, sort_fields=True):
    """fields: dict name -> (type, value); consumers: list of dicts.

    Fields are sent sorted by name in bytewise order, as the page requires.
    Consumer ids are NOT checked for uniqueness here, so a caller can send a
    deliberately malformed body.
    """
    items = list(fields.items())
    if sort_fields:
        items.sort(key=lambda kv: kv[0].encode("utf-8"))
    if len(items) > 1024 or len(consumers) > 4096:
        raise ProtoError("too many fields or consumers")
    body = struct.pack("<II", len(items), len(consumers))
    for name, value in items:
        body += encode_field(name, value)
    for c in consumers:
        body += encode_consumer(c)
    return body


def route_frame(call_id, channel, body, timeout_ms=0):
    cb = channel.encode("utf-8")
    if not 1 <= len(cb) <= 63:
        raise ProtoError("channel name must be 1 to 63 bytes")
    if not (timeout_ms == 0 or 1 <= timeout_ms <= TIMEOUT_MAX):
        raise ProtoError("timeout_ms out of range")
    return frame(ROUTE, struct.pack("<QI", call_id, timeout_ms) + str8(cb) + body)


def status_frame(call_id):
    return frame(STATUS, struct.pack("<Q", call_id))


# ---------------------------------------------------------------- transport

class Conn:
    """A non-blocking connection that reads while it writes (section
    "Pipelining and flow control": a client must keep reading while it
    writes)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.setblocking(False)
        self.rbuf = bytearray()
        self.eof = False
        self.frames = []       # decoded (type, payload), in arrival order

    def _read_some(self):
        try:
            chunk = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return
        self.rbuf += chunk
        self._split()

    def _split(self):
        while len(self.rbuf) >= 4:
            n, = struct.unpack_from("<I", self.rbuf, 0)
            if n < 1:
                raise ProtoError("daemon sent a frame of length 0")
            if n > RECV_SANITY_MAX:
                raise ProtoError("daemon sent a frame of length %d" % n)
            if len(self.rbuf) < 4 + n:
                return
            ftype = self.rbuf[4]
            payload = bytes(self.rbuf[5:4 + n])
            del self.rbuf[:4 + n]
            self.frames.append((ftype, payload))

    def send(self, data, deadline):
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtoError("timed out writing to the daemon")
            r, w, _ = select.select([self.sock], [self.sock], [], left)
            if r:
                self._read_some()
            if w:
                try:
                    sent = self.sock.send(view)
                except (BlockingIOError, InterruptedError):
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    raise ProtoError("connection closed while writing")
                view = view[sent:]

    def next_frame(self, deadline):
        """Return the next frame, or None on a clean EOF between frames."""
        while not self.frames:
            if self.eof:
                if self.rbuf:
                    raise ProtoError("connection closed inside a frame "
                                     "(%d stray bytes)" % len(self.rbuf))
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtoError("timed out waiting for the daemon")
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                self._read_some()
        return self.frames.pop(0)

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------- decoding

class Reader:
    def __init__(self, payload, what):
        self.p = payload
        self.i = 0
        self.what = what

    def take(self, n):
        if self.i + n > len(self.p):
            raise ProtoError("%s payload too short (%d bytes)" % (self.what, len(self.p)))
        b = self.p[self.i:self.i + n]
        self.i += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def str8(self):
        n, = self.unpack("<B")
        return self.take(n)

    def str16(self):
        n, = self.unpack("<H")
        return self.take(n)

    def end(self):
        if self.i != len(self.p):
            raise ProtoError("%s payload has %d trailing bytes"
                             % (self.what, len(self.p) - self.i))


def decode_error(payload):
    r = Reader(payload, "ERROR")
    reason = r.str16()
    r.end()
    return reason.decode("utf-8", errors="replace")


def decode_welcome(payload):
    r = Reader(payload, "WELCOME")
    version, max_frame, window = r.unpack("<HII")
    server = r.str8()
    r.end()
    return version, max_frame, window, server.decode("utf-8", errors="replace")


def decode_result(payload):
    r = Reader(payload, "RESULT")
    rid, status, decision = r.unpack("<QBi")
    version = r.take(32)
    detail = r.str16()
    r.end()
    # CAVEATS: the detail may quote unchecked bytes; decode leniently.
    return rid, status, decision, version, detail


def decode_status_reply(payload):
    r = Reader(payload, "STATUS_REPLY")
    rid, n = r.unpack("<QI")
    data = r.take(n)
    r.end()
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtoError("STATUS_REPLY JSON does not decode: %s" % e)
    return rid, obj


# ---------------------------------------------------------------- main

def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: proto_client.py SOCKET CHANNEL\n")
        return 2
    sock_path, channel = argv[1], argv[2]
    problems = []

    try:
        conn = Conn(sock_path)
    except OSError as e:
        print("cannot connect to %s: %s" % (sock_path, e))
        return 1

    try:
        deadline = time.monotonic() + IO_TIMEOUT

        # ---- HELLO / WELCOME: version 1 only, wait for WELCOME.
        conn.send(frame(HELLO, struct.pack("<HH", 1, 1)), deadline)
        f = conn.next_frame(deadline)
        if f is None:
            raise ProtoError("connection closed before WELCOME")
        ftype, payload = f
        if ftype == ERROR:
            raise ProtoError("daemon refused HELLO: %s" % decode_error(payload))
        if ftype != WELCOME:
            raise ProtoError("expected WELCOME (0x81), got type 0x%02x" % ftype)
        version, max_frame, window, server = decode_welcome(payload)
        if version != 1:
            raise ProtoError("WELCOME chose version %d, outside 1-1" % version)
        if max_frame != PROTO_FRAME_MAX:
            problems.append("WELCOME max_frame is %d, page says %d"
                            % (max_frame, PROTO_FRAME_MAX))
        if window < 3:
            raise ProtoError("window is %d, too small to pipeline 3 calls" % window)

        # ---- the three ROUTE calls and one STATUS, in one write.
        consumers10 = [
            {"id": "a", "in_flight": 4, "max_in_flight": 4, "buffer_depth": 0,
             "tags": ["eu"]},
            {"id": "b", "in_flight": 0, "max_in_flight": 2, "buffer_depth": 3,
             "tags": []},
        ]
        fields10 = {
            "amount": (T_INT, 5000),
            "region": (T_TEXT, "eu"),
            "vip": (T_BOOL, True),
            "ratio": (T_FLOAT, 0.5),
            "note": (T_NULL, None),
        }
        consumers12 = [dict(c, id="a") for c in consumers10]
        calls = {
            10: encode_body(fields10, consumers10),
            11: encode_body({}, []),
            12: encode_body(fields10, consumers12),
        }
        nconsumers = {10: 2, 11: 0, 12: 2}
        out = b"".join(route_frame(i, channel, calls[i]) for i in (10, 11, 12))
        out += status_frame(13)
        conn.send(out, deadline)

        # ---- read the four answers, in any order.
        results = {}
        status_obj = None
        while len(results) < 3 or status_obj is None:
            f = conn.next_frame(deadline)
            if f is None:
                raise ProtoError("connection closed with answers outstanding "
                                 "(have ids %s)" % sorted(list(results) +
                                                          ([13] if status_obj is not None else [])))
            ftype, payload = f
            if ftype == RESULT:
                rid, st, dec, ver, detail = decode_result(payload)
                if rid not in calls:
                    raise ProtoError("RESULT for unknown id %d" % rid)
                if rid in results:
                    raise ProtoError("second RESULT for id %d" % rid)
                results[rid] = (st, dec, ver, detail)
            elif ftype == STATUS_REPLY:
                rid, obj = decode_status_reply(payload)
                if rid != 13:
                    raise ProtoError("STATUS_REPLY for id %d, expected 13" % rid)
                if status_obj is not None:
                    raise ProtoError("second STATUS_REPLY")
                status_obj = obj
            elif ftype == ERROR:
                raise ProtoError("daemon sent ERROR: %s" % decode_error(payload))
            else:
                raise ProtoError("unexpected frame type 0x%02x" % ftype)

        # ---- check each result against the page, and print it.
        zero = bytes(32)
        lines = []
        for rid in sorted(results):
            st, dec, ver, raw_detail = results[rid]
            detail = raw_detail.decode("utf-8", errors="replace")
            if st >= len(STATUS_NAMES):
                problems.append("id %d: unknown status %d" % (rid, st))
                sname = "status_%d" % st
            else:
                sname = STATUS_NAMES[st]
            if st == 0:
                if not (dec == -1 or 0 <= dec < nconsumers[rid]):
                    problems.append("id %d: ok with decision %d, not -1 or "
                                    "an index below %d" % (rid, dec, nconsumers[rid]))
                if detail != "":
                    problems.append("id %d: ok but detail is %r, page says "
                                    "empty" % (rid, detail))
            elif dec != -1:
                problems.append("id %d: status %s with decision %d, page says -1"
                                % (rid, sname, dec))
            if len(raw_detail) > 255:
                problems.append("id %d: detail longer than 255 bytes" % rid)
            if st in NO_VERSION_STATUSES and ver != zero:
                problems.append("id %d: %s but version is not all zero"
                                % (rid, sname))
            if st == 0 and ver == zero:
                problems.append("id %d: ok but version is all zero" % rid)
            if st == 5 and ver == zero:
                # Only a daemon-decided bad_request (timeout_ms, body size)
                # has no version; a malformed body is decided by the helper.
                problems.append("id %d: bad_request for a malformed body "
                                "but version is all zero (page: decided by the "
                                "helper, with the version)" % rid)
            vhex = "-" if ver == zero else ver.hex()
            if dec == -1 and st == 0:
                dtext = "none"
            else:
                dtext = str(dec)
            lines.append(("%d %s %s %s %s" % (rid, sname, dtext, vhex, detail)).rstrip())

        # The brief's expectations.
        s10, s11, s12 = (results[i][0] for i in (10, 11, 12))
        if s10 != 0:
            problems.append("id 10: expected ok, got %s" % lines[0])
        if s11 != 0 or results[11][1] != -1:
            problems.append("id 11: expected ok with decision none, got %s"
                            % lines[1])
        if s12 != 5:
            problems.append("id 12: expected bad_request (duplicate consumer "
                            "id), got %s" % lines[2])
        versions = {results[i][2] for i in (10, 11, 12) if results[i][2] != zero}
        if len(versions) > 1:
            problems.append("ids 10-12 were answered by different versions")

        # ---- the STATUS reply.
        if not isinstance(status_obj, dict):
            raise ProtoError("STATUS_REPLY JSON is not an object")
        for key in ("server", "pid", "plugins", "socket", "clients",
                    "in_flight", "versions_loaded", "helpers", "channels"):
            if key not in status_obj:
                problems.append("status JSON lacks key %r" % key)
        chans = status_obj.get("channels")
        names = []
        if not isinstance(chans, list):
            problems.append("status JSON 'channels' is not an array")
        else:
            for c in chans:
                if not isinstance(c, dict) or not isinstance(c.get("channel"), str):
                    problems.append("status JSON channel entry without a "
                                    "'channel' string: %r" % (c,))
                    continue
                names.append(c["channel"])
                if c["channel"] == channel and versions:
                    act = c.get("active")
                    v = next(iter(versions)).hex()
                    if not isinstance(act, str) or act.lower() != v:
                        problems.append("status: channel %r active %r differs "
                                        "from the version in RESULTs %s"
                                        % (channel, act, v))
            if channel not in names:
                problems.append("status JSON has no channel %r" % channel)
        if status_obj.get("server") != server:
            problems.append("status 'server' %r differs from WELCOME's %r"
                            % (status_obj.get("server"), server))
        lines.append("13 status %s" % ",".join(sorted(names)))
        for line in lines:
            print(line)

        # ---- a frame of unknown type: expect ERROR with a reason, then close.
        deadline = time.monotonic() + IO_TIMEOUT
        conn.send(frame(0x04, b""), deadline)
        f = conn.next_frame(deadline)
        if f is None:
            problems.append("connection closed without an ERROR frame")
            print("closed: (no ERROR frame)")
        else:
            ftype, payload = f
            if ftype != ERROR:
                raise ProtoError("after an unknown frame type expected ERROR, "
                                 "got type 0x%02x" % ftype)
            reason = decode_error(payload)
            if not reason:
                problems.append("ERROR frame has an empty reason")
            print("closed: %s" % reason)
            f = conn.next_frame(deadline)
            if f is not None:
                problems.append("after ERROR the daemon sent type 0x%02x "
                                "instead of closing" % f[0])
    except ProtoError as e:
        problems.append(str(e))
    finally:
        conn.close()

    if problems:
        for p in problems:
            print("PROBLEM: %s" % p)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
