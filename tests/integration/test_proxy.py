#!/usr/bin/python3
"""The PROXY protocol (--proxy-protocol): connections from a --trust-proxy address begin with a
v1 or v2 header naming the client, who is then the source for the per-source limits (an IPv6
client's /64) and the address in the logs; the proxy's own connections (UNKNOWN, LOCAL) count as
the proxy's. Raw sockets send every kind of header, valid and not, whole, split and with the
request or the TLS ClientHello in the same write; an untrusted socket's PROXY-looking bytes are
plain bad HTTP; a missing, malformed or late header is closed without an answer and counted. A
real HAProxy in TCP mode with send-proxy and send-proxy-v2, to the plain listener and to the TLS
one, tells clients on 127.0.0.2 and 127.0.0.3 apart and relays over ws:// and wss://. Usage:
test_proxy.py PATH-TO-SWITCHBOARD"""

import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import test_tls as tls  # noqa: E402  (its certificates and TLS clients)
from client import close_all  # noqa: E402
from test_limits import close_ws  # noqa: E402

import websockets  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

# These tests set the per-source limits themselves.
h.LIFT_LIMITS = False
LIFTED = ("--source-handshakes", "1g", "--rate-messages", "1g", "--rate-bytes", "1g")
# The proxy is 127.0.0.1; a scrape of /metrics comes from an address that is not a proxy.
PROXY_ARGS = ("--trust-proxy", "127.0.0.1", "--proxy-protocol")
SCRAPER = "127.0.0.9"
ERRORS = "switchboard_proxy_protocol_errors_total"

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst=None, sport=40000, dport=443, family=None):
    """A version 1 line naming src."""
    six = ":" in src
    family = family or ("TCP6" if six else "TCP4")
    dst = dst or ("2001:db8::1" if six else "10.0.0.1")
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src=None, sport=40000, dport=443, tlvs=b""):
    """A version 2 header naming src (TCP over IPv4 or IPv6), or LOCAL when src is None."""
    if src is None:
        return V2_SIG + b"\x20\x00" + struct.pack("!H", len(tlvs)) + tlvs
    if ":" in src:
        fam, addrs = 0x21, socket.inet_pton(socket.AF_INET6, src) + bytes(15) + b"\x01"
    else:
        fam, addrs = 0x11, socket.inet_pton(socket.AF_INET, src) + bytes([10, 0, 0, 1])
    body = addrs + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


class BoundConn(h.Conn):
    """A harness Conn from a source address of 127.0.0.0/8; with ctx, header is sent first,
    then the connection goes over TLS."""

    def __init__(self, port, source=None, ctx=None, header=b"", timeout=5.0):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source:
            s.bind((source, 0))
        s.settimeout(timeout)
        s.connect((h.HOST, port))
        if ctx is not None:
            try:
                s.sendall(header)
                s = ctx.wrap_socket(s, server_hostname="localhost")
            except BaseException:
                s.close()
                raise
        self.sock, self.buf, self.timeout = s, bytearray(), timeout


def upgrade(port, header=b"", headers=(), source=None, ctx=None, timeout=5.0):
    """Sends header and a WebSocket upgrade (in one write, or over TLS after the header when ctx
    is given); returns (response, conn), the body of an answer other than 101 read."""
    conn = BoundConn(port, source, ctx, header, timeout)
    key = h.new_key()
    conn.send((b"" if ctx else header) + h.upgrade_request(path="/ws", key=key,
                                                            headers=list(headers)))
    resp = h.read_response(conn, timeout=timeout, body=False)
    if resp.status == 101:
        h.check_101(resp, key)
    else:
        cl = resp.header("Content-Length")
        resp.body = conn.recv_exact(int(cl), timeout=timeout) if cl and int(cl) else b""
    return resp, conn


def open_ws(port, header=b"", headers=(), what="client"):
    resp, conn = upgrade(port, header, headers)
    h.eq(resp.status, 101, f"{what}: handshake status ({resp.raw_head!r} {resp.body!r})")
    return conn


def check_429(port, header, source_text, what, headers=(), ctx=None):
    resp, conn = upgrade(port, header, headers, ctx=ctx)
    try:
        h.eq(resp.status, 429, f"{what}: status ({resp.raw_head!r} {resp.body!r})")
        want = f"too many connections from {source_text} ".encode()
        h.check(want in resp.body, f"{what}: body {resp.body!r} lacks {want!r}")
        h.check_error_response(resp, conn, 429)
    finally:
        conn.close()


def get_metrics(port):
    conn = BoundConn(port, SCRAPER)
    try:
        conn.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        resp = h.read_response(conn)
    finally:
        conn.close()
    h.eq(resp.status, 200, "GET /metrics")
    return resp


def scrape(port):
    """/metrics, asked from an address that is not a proxy (until the scrape is let in, under
    a low --source-connections): {(name, labels): value}."""
    resp = h.eventually(lambda: get_metrics(port), 5)
    out = {}
    for family in text_string_to_metric_families(resp.body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def metric(port, name, **labels):
    samples = scrape(port)
    key = (name, frozenset(labels.items()))
    h.check(key in samples, f"no sample {name}{labels} in /metrics")
    return samples[key]


def log_lines(node):
    """The node's JSON log lines, parsed."""
    out = []
    for line in node.log().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def logged(node, remote, text):
    return any(rec.get("remote") == remote and text in rec.get("msg", "")
               for rec in log_lines(node))


def proxy_node(t, *args, echo=True):
    return t.node(*PROXY_ARGS, *LIFTED, "--log-format", "json", *args, echo=echo)


# ---------------------------------------------------------------------------------------------
# Raw sockets


def test_clients_named_by_v1_and_v2(t):
    """--source-connections 2: the client a header names is the source, in either version:
    two connections named 203.0.113.7 are let in, a third (v1 or v2) gets 429; another named
    client is let in; an X-Forwarded-For behind a header is not read; UNKNOWN and LOCAL are the
    proxy's own (a source of its own); the logs name each client."""
    n = proxy_node(t, "--source-connections", "2", "--log-level", "debug")
    held = [open_ws(n.port, v1("203.0.113.7"), what="v1 203.0.113.7"),
            open_ws(n.port, v2("203.0.113.7", sport=5), what="v2 203.0.113.7")]
    try:
        check_429(n.port, v1("203.0.113.7", sport=1), "203.0.113.7", "3rd, v1")
        check_429(n.port, v2("203.0.113.7"), "203.0.113.7", "3rd, v2")
        held.append(open_ws(n.port, v2("203.0.113.8"), what="another client"))
        # X-Forwarded-For is not looked at: the header's client is the source.
        check_429(n.port, v1("203.0.113.7"), "203.0.113.7", "with X-Forwarded-For",
                  headers=[("X-Forwarded-For", "198.51.100.1")])
        held.append(open_ws(n.port, v1("203.0.113.9"), what="203.0.113.9 #1",
                            headers=[("X-Forwarded-For", "203.0.113.7")]))
        # The proxy's own connections: its address, a source like any other.
        held.append(open_ws(n.port, b"PROXY UNKNOWN\r\n", what="UNKNOWN"))
        held.append(open_ws(n.port, v2(None), what="LOCAL"))
        check_429(n.port, v2(None), "127.0.0.1", "3rd LOCAL")
        check_429(n.port, b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", "127.0.0.1", "3rd UNKNOWN")
        # Plain HTTP behind a header.
        for header in (v1("192.0.2.50"), v2("192.0.2.51")):
            with BoundConn(n.port) as c:
                c.send(header + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                resp = h.read_response(c)
                h.eq((resp.status, resp.body), (200, b"ok\n"), f"healthz after {header!r}")
        s = scrape(n.port)
        h.eq(s[("switchboard_source_refused_total", frozenset({"limit": "connections"}.items()))],
             5.0, "refused for connections")
        h.eq(s[(ERRORS, frozenset())], 0.0, "PROXY protocol errors")
    finally:
        for c in held:
            close_ws(c)
    h.check(logged(n, "203.0.113.7", "refused 429: too many connections from 203.0.113.7"),
            "the 429 is not logged with the client\n" + n.log_tail())
    h.check(logged(n, "203.0.113.8", "websocket open"), "no log line names 203.0.113.8")
    h.check(logged(n, "203.0.113.7", "PROXY v2 header from 127.0.0.1: client 203.0.113.7 "
                                     "port 5"), "the header is not logged")
    h.check(logged(n, "127.0.0.1", "PROXY v2 header naming no client"), "LOCAL is not logged")


def test_ipv6_clients_counted_per_64(t):
    """IPv6 clients count by their /64: two addresses of 2001:db8:0:1::/64 fill its
    --source-connections 2, a third address of it gets 429 naming the prefix; an address of
    another /64 is let in; the logs keep each full address; an IPv4-mapped client is its IPv4
    address."""
    n = proxy_node(t, "--source-connections", "2", "--log-level", "debug")
    held = [open_ws(n.port, v1("2001:db8:0:1::7"), what="2001:db8:0:1::7"),
            open_ws(n.port, v2("2001:db8:0:1:ffff:ffff:ffff:ffff"), what="same /64")]
    try:
        check_429(n.port, v1("2001:db8:0:1:1234::1"), "2001:db8:0:1::/64", "3rd of the /64")
        check_429(n.port, v2("2001:db8:0:1::7"), "2001:db8:0:1::/64", "3rd, v2")
        held.append(open_ws(n.port, v1("2001:db8:0:2::7"), what="another /64"))
        held.append(open_ws(n.port, v2("2001:db8:0:0:ffff::1"), what="a third /64"))
        # IPv4-mapped: the IPv4 address, per address
        held.append(open_ws(n.port, v1("::ffff:198.51.100.1", family="TCP6"), what="mapped #1"))
        held.append(open_ws(n.port, v2("::ffff:198.51.100.1"), what="mapped #2"))
        check_429(n.port, v1("198.51.100.1"), "198.51.100.1", "3rd of the IPv4 client")
        held.append(open_ws(n.port, v1("198.51.100.2"), what="the next IPv4 address"))
    finally:
        for c in held:
            close_ws(c)
    h.check(logged(n, "2001:db8:0:1:1234::1", "refused 429: too many connections from "
                                              "2001:db8:0:1::/64"),
            "the 429 is not logged with the full address\n" + n.log_tail())
    h.check(logged(n, "2001:db8:0:1:ffff:ffff:ffff:ffff", "websocket open"),
            "the full IPv6 address is not in the log")


def test_untrusted_sockets_are_not_parsed(t):
    """From an address that is not a proxy, PROXY-looking bytes are the start of a bad HTTP
    request (400), never a header: a client cannot name itself someone else."""
    n = t.node("--trust-proxy", "10.0.0.0/8", "--proxy-protocol", *LIFTED,
               "--source-connections", "1")
    held = open_ws(n.port, what="127.0.0.1")
    try:
        # 127.0.0.1 is at its limit: a header naming another client changes nothing.
        check_429(n.port, v1("203.0.113.7"), "127.0.0.1", "a forged v1 header")
        check_429(n.port, v2("203.0.113.7"), "127.0.0.1", "a forged v2 header")
    finally:
        close_ws(held)

    def answered(data, status):
        """Once 127.0.0.1's last connection is released: data answered with status."""
        resp, conn = h.http(n.port, data)
        if resp.status == 429:
            conn.close()
            raise h.Failure("127.0.0.1 still at its limit")
        h.check_error_response(resp, conn, status) if status != 200 else conn.close()
        return resp

    for header in (v1("203.0.113.7"), v2("203.0.113.7"), b"PROXY UNKNOWN\r\n"):
        h.eventually(lambda: answered(header + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                                      400), 5)
    resp = h.eventually(lambda: answered(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200), 5)
    h.eq(resp.body, b"ok\n", "plain HTTP from 127.0.0.1")
    h.eq(metric(n.port, ERRORS), 0.0, "PROXY protocol errors")
    h.eq(metric(n.port, "switchboard_http_errors_total", status="400"), 3.0, "400s")


BAD = [
    ("no header", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("a TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32)),
    ("v1 with a bare LF", b"PROXY TCP4 203.0.113.7 10.0.0.1 1 2\nGET / HTTP/1.1\r\n\r\n"),
    ("v1 with two spaces", b"PROXY TCP4  203.0.113.7 10.0.0.1 1 2\r\n"),
    ("v1 TCP4 naming IPv6", b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n"),
    ("v1 with a leading zero", b"PROXY TCP4 203.0.113.07 10.0.0.1 1 2\r\n"),
    ("v1 port over 65535", b"PROXY TCP4 203.0.113.7 10.0.0.1 65536 2\r\n"),
    ("v1 lowercase", b"proxy TCP4 203.0.113.7 10.0.0.1 1 2\r\n"),
    ("v1 without CRLF in 107 bytes", b"PROXY UNKNOWN " + b"x" * 120),
    ("v2 version 1", V2_SIG + b"\x11\x11\x00\x0c" + bytes(12)),
    ("v2 command 2", V2_SIG + b"\x22\x11\x00\x0c" + bytes(12)),
    ("v2 family 4", V2_SIG + b"\x21\x41\x00\x0c" + bytes(12)),
    ("v2 too short for IPv6", V2_SIG + b"\x21\x21\x00\x0c" + bytes(12)),
    ("v2 over 1024 bytes", V2_SIG + b"\x21\x11\x04\x00" + bytes(1024)),
    ("a broken v2 signature", b"\r\n\r\n\x00\r\nQUIZ\n\x21\x11\x00\x0c" + bytes(12)),
]


def test_bad_headers_closed_without_an_answer(t):
    """From a proxy, a connection without a valid header is closed at once, not a byte
    answered, and counted and logged: no header at all, a TLS ClientHello, each malformed shape
    of v1 and v2, a header not complete within --handshake-timeout, one cut off by the end of
    the connection. A connection that sends nothing and goes is a probe, not counted."""
    n = proxy_node(t, "--handshake-timeout", "1", "--source-connections", "1g")
    for what, data in BAD:
        with BoundConn(n.port) as c:
            c.send(data)
            how, secs, extra = c.wait_closed(3)
            h.eq(extra, 0, f"{what}: bytes answered")
            h.check(secs < 0.9, f"{what}: closed only after {secs:.2f} s")
    count = len(BAD)
    h.eq(metric(n.port, ERRORS), float(count), "errors after the malformed headers")
    # Late: half a header, then nothing; and nothing at all, held open.
    for what, data in (("half a header", b"PROXY TCP4 203.0.11"), ("silence", b"")):
        with BoundConn(n.port) as c:
            if data:
                c.send(data)
            t0 = time.monotonic()
            how, secs, extra = c.wait_closed(5)
            h.eq(extra, 0, f"{what}: bytes answered")
            h.check(0.8 < time.monotonic() - t0, f"{what}: closed before the timeout")
    count += 2
    # Cut off: part of a header, then the client's end.
    with BoundConn(n.port) as c:
        c.send(v2("203.0.113.7")[:20])
        c.sock.shutdown(socket.SHUT_WR)
        c.wait_closed(3)
    count += 1
    # A probe: connects and leaves without a byte. Once it is gone (the scrape is the one
    # connection left), nothing more was counted.
    BoundConn(n.port).close()
    h.eventually(lambda: h.eq(metric(n.port, "switchboard_connections"), 1.0, "connections"), 5)
    h.eq(metric(n.port, ERRORS), float(count), "errors")
    h.eq(metric(n.port, "switchboard_http_errors_total", status="400"), 0.0, "400s")
    h.eq(metric(n.port, "switchboard_http_errors_total", status="408"), 0.0, "408s")
    recs = [r for r in log_lines(n) if "no valid PROXY header" in r.get("msg", "")]
    h.check(len(recs) == count and all(r.get("remote") == "127.0.0.1" for r in recs),
            f"{len(recs)} log lines about bad headers, {count} wanted\n" + n.log_tail())
    for reason in ("not a PROXY protocol header", "a LF without CR", "no CRLF within 107 bytes",
                   "the version is not 2", "longer than 1024 bytes", "handshake timeout",
                   "ended before its PROXY header was complete"):
        h.check(any(reason in r["msg"] for r in recs), f"no bad header logged with {reason!r}")
    # The node serves on.
    with BoundConn(n.port) as c:
        c.send(v1("203.0.113.7") + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        h.eq(h.read_response(c).status, 200, "healthz after the bad headers")


def test_header_split_and_joined(t):
    """A header split across writes (byte by byte, and at every place of a v2 header), then
    the request; and header, request and a WebSocket frame all in one write: the frame is
    echoed."""
    n = proxy_node(t, "--source-connections", "1g")
    for header in (v1("203.0.113.7"), v1("2001:db8::7"), v2("203.0.113.7", tlvs=b"\x04\x00\x01x"),
                   v2("2001:db8::7"), v2(None), b"PROXY UNKNOWN\r\n"):
        with BoundConn(n.port) as c:
            c.send_slowly(header, chunk=1, delay=0.002)
            c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            resp = h.read_response(c)
            h.eq((resp.status, resp.body), (200, b"ok\n"), f"split header {header!r}")
    header = v2("198.51.100.4")
    for cut in range(1, len(header)):
        with BoundConn(n.port) as c:
            c.send(header[:cut])
            time.sleep(0.005)
            c.send(header[cut:] + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            h.eq(h.read_response(c).status, 200, f"v2 header cut after {cut} bytes")
    # Header, upgrade and a frame in one write.
    key = h.new_key()
    with BoundConn(n.port) as c:
        c.send(v1("203.0.113.7") + h.upgrade_request(key=key) + h.frame(h.OP_TEXT, "behind"))
        h.check_101(h.read_response(c, body=False), key)
        h.eq(h.read_message(c), (h.OP_TEXT, b"behind"), "the frame behind the header")
        close_ws(c)
    h.eq(metric(n.port, ERRORS), 0.0, "PROXY protocol errors")


class MemoryTLS:
    """A TLS client over a raw socket through memory BIOs, so that its first bytes can go out
    in the same write as what comes before them (a PROXY header)."""

    def __init__(self, sock, ctx):
        self.sock = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")

    def handshake(self, prefix):
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.sock.sendall(prefix + self.out.read())  # the header and the ClientHello at once
        for _ in range(100):
            try:
                self.obj.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                self.feed()
        raise h.Failure("TLS handshake did not finish")

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def feed(self):
        data = self.sock.recv(65536)
        if not data:
            raise h.Closed("EOF during TLS")
        self.inc.write(data)

    def request(self, raw):
        self.obj.write(raw)
        self.flush()
        got = b""
        for _ in range(100):
            try:
                chunk = self.obj.read(65536)
                if not chunk:
                    return got
                got += chunk
                if b"\r\n\r\n" in got and got.endswith(b"ok\n"):
                    return got
            except ssl.SSLWantReadError:
                self.feed()
            except ssl.SSLZeroReturnError:
                return got
        return got


def test_tls_after_the_header(t):
    """On the TLS listener the header comes before the ClientHello: sent in one write with it,
    and in a write of its own, the handshake completes and the named client is the source."""
    n = proxy_node(t, *tls.tls_args(), "--source-connections", "1")
    port = tls.tls_port(n)
    ctx = tls.client_context()
    with socket.create_connection((h.HOST, port), timeout=5) as raw:
        m = MemoryTLS(raw, ctx)
        m.handshake(v1("203.0.113.7"))
        got = m.request(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        h.check(got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"\r\n\r\nok\n"),
                f"healthz over TLS behind a header in the same write: {got!r}")
    with socket.create_connection((h.HOST, port), timeout=5) as raw:
        m = MemoryTLS(raw, ctx)
        m.handshake(v2("203.0.113.8"))
        got = m.request(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        h.check(got.startswith(b"HTTP/1.1 200 "), f"v2 and the ClientHello at once: {got!r}")
    # A header in a write of its own, then TLS: the limits count the named client over wss too.
    resp, held = upgrade(port, v2("203.0.113.9"), ctx=ctx)
    try:
        h.eq(resp.status, 101, f"upgrade over TLS behind a header ({resp.raw_head!r})")
        check_429(port, v1("203.0.113.9"), "203.0.113.9", "2nd from 203.0.113.9 over TLS",
                  ctx=ctx)
    finally:
        held.close()
    # A header missing before the ClientHello: closed, counted; no TLS failure is counted.
    with socket.create_connection((h.HOST, port), timeout=5) as raw:
        try:
            ctx.wrap_socket(raw, server_hostname="localhost").close()
            raise h.Failure("TLS handshake succeeded without a PROXY header")
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass
    h.eventually(lambda: h.eq(metric(n.port, ERRORS), 1.0, "PROXY protocol errors"), 5)
    h.eq(metric(n.port, "switchboard_tls_handshake_failures_total"), 0.0, "TLS failures")


def test_config(t):
    """--proxy-protocol without --trust-proxy is refused with a clear message; the variable
    sets it too; `switchboard healthcheck` with the node's options sends a LOCAL header when it
    connects from a proxy's address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    for args, extra in ((["--proxy-protocol"], {}), ([], {"SWITCHBOARD_PROXY_PROTOCOL": "1"})):
        r = subprocess.run([t.binary, "--listen", f"{h.HOST}:0", *args], capture_output=True,
                           timeout=10, env=dict(env, **extra), stdin=subprocess.DEVNULL)
        h.eq(r.returncode, 2, f"exit status of {args or extra}")
        h.check(b"--proxy-protocol needs --trust-proxy" in r.stderr, f"stderr {r.stderr!r}")
    n = t.node(*PROXY_ARGS)
    listen = ["--listen", f"{h.HOST}:{n.port}"]
    ok = subprocess.run([t.binary, "healthcheck", *listen, *PROXY_ARGS], capture_output=True,
                        timeout=10, env=env)
    h.eq(ok.returncode, 0, f"healthcheck with --proxy-protocol ({ok.stderr!r})")
    bad = subprocess.run([t.binary, "healthcheck", *listen], capture_output=True, timeout=10,
                         env=env)
    h.eq(bad.returncode, 1, "healthcheck without the header")
    env_on = dict(env, SWITCHBOARD_TRUST_PROXY="127.0.0.1", SWITCHBOARD_PROXY_PROTOCOL="yes")
    ok = subprocess.run([t.binary, "healthcheck", *listen], capture_output=True, timeout=10,
                        env=env_on)
    h.eq(ok.returncode, 0, f"healthcheck through the environment ({ok.stderr!r})")


# ---------------------------------------------------------------------------------------------
# A real HAProxy in TCP mode

HAPROXY_TCP = """\
global
    stats socket {{stats}} mode 600 level admin
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend switchboard
    bind {host}:{port}
    default_backend nodes
backend nodes
    default-server inter 200ms fall 2 rise 2
    server n1 {host}:{node_port} check {send}
"""


def haproxy(t, node_port, send):
    port = h.free_port()
    lb = t.service(h.HAProxy(HAPROXY_TCP.format(host=h.HOST, port=port, node_port=node_port,
                                                send=send), port)).start()
    lb.wait_states("nodes", {"n1": "UP"}, 5)
    return lb


async def open_peer(url, id, source, ctx=None):
    ws = await websockets.connect(f"{url}/ws?id={id}", subprotocols=[h.SUBPROTOCOL],
                                  open_timeout=5, close_timeout=3, ping_interval=None,
                                  local_addr=(source, 0), ssl=ctx)
    return await tls.welcome(ws, id)


async def refused_429(url, source, ctx=None):
    try:
        ws = await websockets.connect(f"{url}/ws", subprotocols=[h.SUBPROTOCOL], open_timeout=5,
                                      local_addr=(source, 0), ssl=ctx)
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code
    await ws.close()
    return 101


def through_haproxy(t, send, use_tls):
    """--source-connections 2 behind HAProxy (TCP mode, `send`): two clients of 127.0.0.2, a
    third of it refused 429, one of 127.0.0.3 let in; they relay to each other; HAProxy's
    health checks pass (they carry headers too) and nothing is counted as a bad header."""
    args = (*PROXY_ARGS, *LIFTED, "--source-connections", "2", "--log-level", "debug",
            "--ice-servers", "[]", "--log-format", "json")
    if use_tls:
        n = t.node(*args, *tls.tls_args(), echo=False)
        node_port, ctx, scheme = tls.tls_port(n), tls.client_context(), "wss"
    else:
        n = t.node(*args, echo=False)
        node_port, ctx, scheme = n.port, None, "ws"
    lb = haproxy(t, node_port, send)
    url = f"{scheme}://{h.HOST}:{lb.port}"  # the certificate names 127.0.0.1 too

    async def run():
        a = await open_peer(url, "a", "127.0.0.2", ctx)
        b = await open_peer(url, "b", "127.0.0.2", ctx)
        try:
            h.eq(await refused_429(url, "127.0.0.2", ctx), 429, "3rd from 127.0.0.2")
            c = await open_peer(url, "c", "127.0.0.3", ctx)
            try:
                await tls.relay(a, c, "m1")
                await tls.relay(c, b, "m2")
                await tls.relay(b, a, "m3", {"sdp": "x" * 30000})
            finally:
                await close_all(c)
        finally:
            await close_all(a, b)

    h.arun(run())
    h.eq(lb.server_states("nodes"), {"n1": "UP"}, "HAProxy's health checks")
    s = scrape(n.port)
    h.eq(s[("switchboard_source_refused_total", frozenset({"limit": "connections"}.items()))],
         1.0, "refused through HAProxy")
    h.eq(s[(ERRORS, frozenset())], 0.0, "PROXY protocol errors")
    h.check(logged(n, "127.0.0.3", "websocket open"), "127.0.0.3 not named in the log")
    h.check(logged(n, "127.0.0.2", "refused 429: too many connections from 127.0.0.2"),
            "the 429 is not logged with 127.0.0.2\n" + n.log_tail())


def test_haproxy_send_proxy_plain(t):
    through_haproxy(t, "send-proxy", use_tls=False)


def test_haproxy_send_proxy_v2_plain(t):
    through_haproxy(t, "send-proxy-v2", use_tls=False)


def test_haproxy_send_proxy_tls(t):
    through_haproxy(t, "send-proxy", use_tls=True)


def test_haproxy_send_proxy_v2_tls(t):
    through_haproxy(t, "send-proxy-v2", use_tls=True)


if __name__ == "__main__":
    try:
        h.main([
            test_clients_named_by_v1_and_v2,
            test_ipv6_clients_counted_per_64,
            test_untrusted_sockets_are_not_parsed,
            test_bad_headers_closed_without_an_answer,
            test_header_split_and_joined,
            test_tls_after_the_header,
            test_config,
            test_haproxy_send_proxy_plain,
            test_haproxy_send_proxy_v2_plain,
            test_haproxy_send_proxy_tls,
            test_haproxy_send_proxy_v2_tls,
        ], test_timeout=60.0)
    finally:
        shutil.rmtree(tls.WORK, ignore_errors=True)
