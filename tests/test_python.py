#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""The Python module route_host against a daemon (run by test-python.sh).

usage: test_python.py SOCKET            the checks below, on channels
                                        orders (first-available) and
                                        crashy (misbehave, mode=segv)
       test_python.py SOCKET --late READY
                                        make a Client, create READY, and
                                        route once the daemon starts

Prints 'ok - ...' and 'not ok - ...' lines; exits 1 if any failed.
"""
import errno
import os
import re
import sys

import route_host

failed = 0


# One check: its line, and the count of failures.
def check(name, cond, got=None):
    global failed
    if cond:
        print("ok - %s" % name)
    else:
        failed += 1
        print("not ok - %s" % name)
        if got is not None:
            print("#   got: %r" % (got,))


# route() with every field type: first-available picks the first consumer
# with room, the second here.
def test_fields(c):
    msg = {"none": None, "yes": True, "no": False, "n": -5,
           "big": 2 ** 63 - 1, "f": 1.5, "s": "\u00e9t\u00e9",
           "empty": ""}
    r = c.route("orders", msg,
                [route_host.Consumer("w1", 4, 4),
                 {"id": "w2", "max_in_flight": 4, "tags": ["eu"]}],
                timeout_ms=5000)
    check("route: ok with every field type", r.ok and r.status == "ok", r)
    check("route: decision 1 is consumer w2",
          r.decision == 1 and r.consumer == "w2", r)
    check("route: version is 64 hexadecimal digits",
          r.version is not None and re.fullmatch("[0-9a-f]{64}", r.version),
          r)
    check("route: no detail when ok", r.detail == "" and r.tries >= 1, r)
    r = c.route("orders", {}, [route_host.Consumer("full", 1, 1)])
    check("route: no consumer with room: ok, decision None",
          r.ok and r.decision is None and r.consumer is None, r)


# Misuse: exceptions, not results.
def test_errors(c):
    for bad in ([1], {"a": 1}, object(), 1 + 2j, b"raw"):
        try:
            c.route("orders", {"field_x": bad}, [])
            check("a %s field raises TypeError" % type(bad).__name__, False)
        except TypeError as e:
            check("a %s field raises TypeError naming it" %
                  type(bad).__name__, "field_x" in str(e), str(e))
    try:
        c.route("orders", {}, [42])
        check("a consumer of the wrong type raises TypeError", False)
    except TypeError as e:
        check("a consumer of the wrong type raises TypeError",
              "consumers[0]" in str(e), str(e))
    try:
        c.route("orders", {"n": 2 ** 64}, [])
        check("an int over 64 bits raises ValueError", False)
    except ValueError as e:
        check("an int over 64 bits raises ValueError", "n" in str(e))
    try:
        c.route("", {}, [])
        check("an empty channel name raises Error", False)
    except route_host.Error as e:
        check("an empty channel name raises Error (EINVAL)",
              e.errno == errno.EINVAL, e)
    try:
        c.route("orders", {}, [route_host.Consumer("", 0, 1)])
        check("an empty consumer id raises Error", False)
    except route_host.Error as e:
        check("an empty consumer id raises Error with the library's text",
              e.errno == errno.EINVAL and "id" in e.strerror, e)
    r = c.route("orders", {"after": "errors"},
                [route_host.Consumer("w", 0, 1)])
    check("the Client routes after those", r.ok and r.consumer == "w", r)


# Outcomes of calls are results.
def test_statuses(c):
    r = c.route("no-such", {}, [route_host.Consumer("w", 0, 1)])
    check("an unknown channel: status no_such_channel",
          r.status == "no_such_channel" and not r.ok and r.detail != "", r)
    r = c.route("crashy", {"x": 1}, [route_host.Consumer("w", 0, 1)])
    check("a plugin that crashes: status crashed",
          r.status == "crashed" and r.decision is None and
          r.version is not None, r)


# route_many: 1000 calls pipelined, their results in the order given
# (message i's consumer c<i> after i % 3 full ones is decision i % 3).
def test_many(c):
    calls = []
    for i in range(1000):
        full = [route_host.Consumer("full%d" % k, 2, 2) for k in range(i % 3)]
        calls.append(({"i": i}, full + [route_host.Consumer("c%d" % i, 0, 1)]))
    rs = c.route_many("orders", calls)
    check("route_many: 1000 results", len(rs) == 1000, len(rs))
    bad = [(i, r) for i, r in enumerate(rs)
           if not (r.ok and r.decision == i % 3 and r.consumer == "c%d" % i)]
    check("route_many: every result ok, in the order of its call",
          not bad, bad[:3])
    rs = c.route_many("orders", (({"i": i}, [{"id": "w", "max_in_flight": 1}])
                                 for i in range(10)), timeout_ms=1000)
    check("route_many: from a generator", len(rs) == 10 and
          all(r.ok for r in rs), rs[:2])
    check("route_many: nothing left pending", c.pending == 0, c.pending)
    rs = c.route_many("no-such", [({}, [])] * 3)
    check("route_many: statuses are results", [r.status for r in rs] ==
          ["no_such_channel"] * 3, rs)


# status(): the daemon's status as a dict.
def test_status(c):
    st = c.status()
    check("status: a dict with channels", isinstance(st, dict) and
          "channels" in st, st if not isinstance(st, dict) else list(st))
    check("status: both channels listed", "orders" in json_text(st) and
          "crashy" in json_text(st), st)
    check("window: the daemon's, once connected", c.window > 0, c.window)


# The JSON of a status, for a search.
def json_text(st):
    import json
    return json.dumps(st)


# A daemon not there, and a closed Client.
def test_absent(sock):
    path = os.path.join(os.path.dirname(sock), "absent.sock")
    with route_host.Client(path, wait_ms=100) as c:
        try:
            c.status()
            check("status without a daemon raises Error", False)
        except route_host.Error as e:
            check("status without a daemon raises Error (ECONNREFUSED)",
                  e.errno == errno.ECONNREFUSED and "absent.sock" in str(e),
                  e)
        r = c.route("orders", {}, [route_host.Consumer("w", 0, 1)])
        check("route without a daemon: status connection_lost",
              r.status == "connection_lost", r)
    try:
        c.route("orders", {}, [])
        check("a closed Client raises Error", False)
    except route_host.Error as e:
        check("a closed Client raises Error (EBADF)", e.errno == errno.EBADF)


# The checks on a running daemon.
def main_checks(sock):
    with route_host.Client(sock) as c:
        test_fields(c)
        test_errors(c)
        test_statuses(c)
        test_many(c)
        test_status(c)
    test_absent(sock)


# A Client before the daemon: READY tells test-python.sh to start it.
def main_late(sock, ready):
    with route_host.Client(sock, wait_ms=120000) as c:
        open(ready, "w").close()
        r = c.route("orders", {"late": True},
                    [route_host.Consumer("w", 0, 1)])
        check("a Client made before its daemon routes once it starts",
              r.ok and r.consumer == "w", r)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--late":
        main_late(sys.argv[1], sys.argv[3])
    elif len(sys.argv) == 2:
        main_checks(sys.argv[1])
    else:
        sys.exit(__doc__)
    sys.exit(1 if failed else 0)
