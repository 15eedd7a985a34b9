#!/usr/bin/python3
"""Switchboard's HTTP side over raw sockets: /healthz, error statuses and their headers, Host, the
WebSocket opening handshake, handshake timeouts and oversized heads, the command line, and that
the node survives all of it. Usage: test_http.py PATH-TO-SWITCHBOARD"""

import base64
import os
import select
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import OP_TEXT, frame  # noqa: E402

SHARED = ["--log-level", "debug"]
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
OPTIONS = ["--listen", "--echo", "--max-message", "--max-output", "--ping-interval",
           "--pong-timeout", "--handshake-timeout", "--close-timeout", "--log-level", "--help"]


def expect_status(port, request, status, what, timeout=5.0):
    """Sends a request on a new connection and checks an error response with status."""
    try:
        resp, conn = h.http(port, request, timeout=timeout)
    except (h.Closed, OSError) as e:
        raise h.Failure(f"{what}: no response ({type(e).__name__}: {e})")
    with conn:
        try:
            h.check_error_response(resp, conn, status)
        except h.Failure as e:
            raise h.Failure(f"{what}: {e} (response {resp.raw_head!r})")
    return resp


def upgrade(port, request, key, subprotocol=None):
    """Sends an upgrade request, checks the 101 and that the WebSocket echoes."""
    conn = h.Conn(port)
    with conn:
        conn.send(request)
        resp = h.read_response(conn, body=False)
        h.check_101(resp, key, subprotocol)
        h.echo(conn, "after the upgrade")
        conn.send(h.close_frame(1000))
        h.expect_close(conn, 1000, reply=False)
    return resp


def head_of_size(size, path="/healthz"):
    """A complete GET request head of exactly size bytes (the final CRLF CRLF included)."""
    start = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ".encode()
    pad = size - len(start) - 4
    return start + b"p" * pad + b"\r\n\r\n"


# --- /healthz and plain errors ----------------------------------------------------------------


def test_healthz(t):
    resp, conn = h.http(t.port, HEALTHZ)
    with conn:
        h.eq(resp.status, 200, "status")
        h.eq(resp.body, b"ok\n", "body")
        h.eq(resp.header("Content-Length"), "3", "Content-Length")
        h.check((resp.header("Connection") or "").lower() == "close", f"Connection: {resp.raw_head!r}")
        how, secs, extra = conn.wait_closed(3.0)
        h.eq(extra, 0, "bytes after the body")


def test_healthz_bare_lf(t):
    resp, conn = h.http(t.port, b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n")
    conn.close()
    h.eq((resp.status, resp.body), (200, b"ok\n"), "healthz with bare LF line ends")


def test_unknown_path_404(t):
    for path in ("/nope", "/healthzz", "/wsx", "/ws/more", "/%00"):
        expect_status(t.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 404, path)
    # with upgrade headers on a path that is not /ws
    expect_status(t.port, h.upgrade_request(path="/chat"), 404, "upgrade on /chat")


def test_ws_wrong_method_405(t):
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        resp = expect_status(
            t.port,
            f"{method} /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode(),
            405, method)
        h.eq(resp.header("Allow"), "GET", f"Allow header for {method}")
    resp = expect_status(t.port, b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                         405, "POST with a body")
    h.eq(resp.header("Allow"), "GET", "Allow header for POST with a body")
    resp = expect_status(t.port, h.upgrade_request(method="POST"), 405, "POST with upgrade")
    h.eq(resp.header("Allow"), "GET", "Allow header")


def test_host_checked_on_every_path(t):
    # RFC 9112 section 3.2: HTTP/1.1 needs exactly one Host, and a valid one, whatever the path;
    # nginx answers 400 too. HTTP/1.0 may leave it out.
    with tempfile.TemporaryDirectory() as www:
        with open(os.path.join(www, "hello.txt"), "wb") as f:
            f.write(b"hello\n")
        n = t.node("--www", www)
        resp, conn = h.http(n.port, b"GET /hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        conn.close()
        h.eq((resp.status, resp.body), (200, b"hello\n"), "a static file with a valid Host")
        cases = [
            ((), "no Host"),
            (("127.0.0.1", "127.0.0.1"), "two Host fields"),
            (("a", "b"), "two different Host fields"),
            (("exa mple.com",), "Host with a space"),
            (("user@127.0.0.1",), "Host with userinfo"),
            (("a/b",), "Host with a path"),
            (("[::1",), "unclosed IP literal"),
            (("127.0.0.1:80x",), "port that is not a number"),
            (("caf\xe9",), "non-ASCII Host"),
        ]
        for path in ("/healthz", "/readyz", "/hello.txt", "/nope", "/ws"):
            for hosts, what in cases:
                fields = [("Host", v) for v in hosts]
                if path == "/ws":
                    req = h.upgrade_request(omit={"host"}, headers=fields)
                else:
                    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields]
                    req = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                resp = expect_status(n.port, req, 400, f"{path} with {what}")
                h.check(resp.body.startswith(b"400 Bad Request: ") and b"Host" in resp.body,
                        f"{path} with {what}: body {resp.body!r}")
        resp, conn = h.http(n.port, b"GET /healthz HTTP/1.0\r\n\r\n")
        conn.close()
        h.eq((resp.status, resp.body), (200, b"ok\n"), "HTTP/1.0 /healthz without Host")


def test_garbage_400(t):
    tls_hello = bytes.fromhex("16030100c4010000c00303") + os.urandom(32) + b"\x00\x00\x02\x13\x01"
    cases = [
        (tls_hello, "TLS ClientHello"),
        (b"HELLO WORLD\r\n\r\n", "not a request line"),
        (b"\x00\x01\x02\x03\r\n\r\n", "binary"),
        (b"GET /healthz\r\n\r\n", "no version"),
        (b"GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n", "header without colon"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n", "obsolete line folding"),
        (b"\r\n\r\n", "empty request line"),
        (b"GET /healthz FTP/1.1\r\n\r\n", "not HTTP"),
    ]
    for data, what in cases:
        t0 = time.monotonic()
        expect_status(t.port, data, 400, what, timeout=3.0)
        took = time.monotonic() - t0
        h.check(took < 2.0, f"{what}: 400 took {took:.2f} s")


def test_head_too_large_431(t):
    # A complete head of 10000 bytes.
    expect_status(t.port, head_of_size(10000), 431, "10000-byte head")
    # A head that never ends: the 431 must come once 8192 bytes are in, not at the timeout.
    t0 = time.monotonic()
    expect_status(t.port, b"GET /ws HTTP/1.1\r\nX-Long: " + b"a" * 9000, 431, "unfinished head",
                  timeout=3.0)
    h.check(time.monotonic() - t0 < 2.0, "431 for an unfinished head was late")


def test_head_too_large_many_lines_431(t):
    # Over 8192 bytes made of many short header lines: still a head that is too large.
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 1200 + b"\r\n"
    expect_status(t.port, many, 431, f"{len(many)}-byte head of 1200 header lines")


def test_head_size_boundary(t):
    resp, conn = h.http(t.port, head_of_size(8192))
    conn.close()
    h.eq(resp.status, 200, "status for a head of exactly 8192 bytes")
    expect_status(t.port, head_of_size(8193), 431, "head of 8193 bytes")


# --- the WebSocket opening handshake --------------------------------------------------------


def test_upgrade_valid(t):
    key = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3
    resp = upgrade(t.port, h.upgrade_request(key=key), key)
    h.eq(resp.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "RFC sample accept")
    h.eq(resp.header("Sec-WebSocket-Extensions"), None, "Sec-WebSocket-Extensions")


def test_upgrade_header_variants(t):
    variants = [
        ("Connection: keep-alive, Upgrade", [("Connection", "keep-alive, Upgrade")]),
        ("lower-case upgrade token", [("Connection", "upgrade")]),
        ("upper-case values", [("Connection", "UPGRADE"), ("Upgrade", "WebSocket")]),
        ("token list with spaces", [("Connection", "keep-alive ,  upgrade ")]),
    ]
    for what, headers in variants:
        key = h.new_key()
        names = {k.lower() for k, _ in headers}
        req = h.upgrade_request(key=key, headers=headers, omit=names)
        try:
            upgrade(t.port, req, key)
        except h.Failure as e:
            raise h.Failure(f"{what}: {e}")
    # lower-case header names, extensions offered, extra headers a browser sends
    key = h.new_key()
    req = (f"GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
           f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
           f"Origin: http://127.0.0.1\r\nUser-Agent: test\r\n"
           f"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").encode()
    resp = upgrade(t.port, req, key)
    h.eq(resp.header("Sec-WebSocket-Extensions"), None, "extensions must not be accepted")


def test_upgrade_subprotocol(t):
    for offered, want in ((h.SUBPROTOCOL, h.SUBPROTOCOL),
                          (f"chat, {h.SUBPROTOCOL}", h.SUBPROTOCOL),
                          ("chat", None),
                          (None, None)):
        key = h.new_key()
        try:
            upgrade(t.port, h.upgrade_request(key=key, subprotocol=offered), key, want)
        except h.Failure as e:
            raise h.Failure(f"offered {offered!r}: {e}")


def test_upgrade_rejected_400(t):
    b64 = lambda n: base64.b64encode(b"k" * n).decode()
    cases = [
        (h.upgrade_request(omit={"host"}), "no Host"),
        (h.upgrade_request(omit={"upgrade"}), "no Upgrade"),
        (h.upgrade_request(omit={"upgrade"}, headers=[("Upgrade", "h2c")]), "Upgrade: h2c"),
        (h.upgrade_request(omit={"connection"}), "no Connection"),
        (h.upgrade_request(omit={"connection"}, headers=[("Connection", "keep-alive")]),
         "Connection without upgrade"),
        (h.upgrade_request(omit={"connection"}, headers=[("Connection", "upgraded")]),
         "Connection: upgraded"),
        (h.upgrade_request(omit={"sec-websocket-key"}), "no key"),
        (h.upgrade_request(key="abc"), "short key"),
        (h.upgrade_request(key=b64(15)), "key of 15 bytes"),
        (h.upgrade_request(key=b64(17)), "key of 17 bytes"),
        (h.upgrade_request(key="!!!!!!!!!!!!!!!!!!!!!!=="), "key not base64"),
        (h.upgrade_request(key=""), "empty key"),
        (h.upgrade_request(version="HTTP/1.0"), "HTTP/1.0"),
    ]
    for req, what in cases:
        expect_status(t.port, req, 400, what)


def test_upgrade_wrong_version_426(t):
    for v in ("8", "12", "14", "abc"):
        req = h.upgrade_request(omit={"sec-websocket-version"}, headers=[("Sec-WebSocket-Version", v)])
        resp = expect_status(t.port, req, 426, f"version {v}")
        h.eq(resp.header("Sec-WebSocket-Version"), "13", f"Sec-WebSocket-Version in 426 for {v}")
    # No version at all is a malformed request or an unsupported version: 400 or 426.
    resp, conn = h.http(t.port, h.upgrade_request(omit={"sec-websocket-version"}))
    with conn:
        h.check(resp.status in (400, 426), f"no version: status {resp.status}")
        h.check_error_response(resp, conn, resp.status)


# --- timeouts and slow clients ----------------------------------------------------------------


def test_handshake_timeout_408(t):
    n = t.node("--handshake-timeout", "0.5")
    cases = [
        (b"", "nothing sent"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", "head without its blank line"),
        (b"GET /ws HTT", "half a request line"),
    ]
    for data, what in cases:
        with h.Conn(n.port) as c:
            t0 = time.monotonic()
            if data:
                c.send(data)
            resp = h.read_response(c, timeout=3.0)
            took = time.monotonic() - t0
            try:
                h.check_error_response(resp, c, 408)
            except h.Failure as e:
                raise h.Failure(f"{what}: {e}")
            h.check(0.35 < took < 2.0, f"{what}: 408 after {took:.2f} s with a 0.5 s timeout")


def test_handshake_timeout_counts_the_whole_head(t):
    # A byte every 0.1 s keeps the connection busy but the head still has to be complete
    # within the timeout: the 408 comes at ~0.5 s, not after the last byte.
    n = t.node("--handshake-timeout", "0.5")
    req = HEALTHZ
    with h.Conn(n.port) as c:
        t0 = time.monotonic()
        for i in range(len(req)):
            try:
                c.send(req[i : i + 1])
            except OSError:
                break
            readable, _, _ = select.select([c.sock], [], [], 0.1)
            if readable or time.monotonic() - t0 > 2.5:
                break
        resp = h.read_response(c, timeout=1.0)
        took = time.monotonic() - t0
        h.eq(resp.status, 408, "status for a head dripped over 4 s")
        h.check(took < 2.5, f"408 only after {took:.2f} s")


def test_byte_at_a_time_within_timeout(t):
    n = t.node("--handshake-timeout", "0.5")
    with h.Conn(n.port) as c:
        c.send_slowly(HEALTHZ, chunk=1, delay=0.002)
        resp = h.read_response(c)
        h.eq((resp.status, resp.body), (200, b"ok\n"), "healthz sent one byte at a time")
    # An upgrade one byte at a time (on the shared node, 10 s timeout) then an echo.
    key = h.new_key()
    with h.Conn(t.port) as c:
        c.send_slowly(h.upgrade_request(key=key), chunk=1, delay=0.001)
        resp = h.read_response(c, body=False)
        h.check_101(resp, key)
        h.echo(c, "slow handshake done")


def test_handshake_timeout_does_not_apply_after_upgrade(t):
    n = t.node("--handshake-timeout", "0.5")
    with h.handshake(n.port) as c:
        time.sleep(1.0)
        h.echo(c, "still open after the handshake timeout")


# --- pipelining ---------------------------------------------------------------------------------


def test_pipelined_junk_after_healthz(t):
    for junk in (b"GARBAGE\x00\xff" * 100, HEALTHZ, b"GET /nope HTTP/1.1\r\n"):
        resp, conn = h.http(t.port, HEALTHZ + junk)
        with conn:
            h.eq((resp.status, resp.body), (200, b"ok\n"), f"healthz followed by {junk[:20]!r}")
            conn.wait_closed(3.0)


def test_pipelined_junk_after_error(t):
    expect_status(t.port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" + b"\xff" * 5000, 404,
                  "404 followed by junk")


def test_frame_in_same_packet_as_upgrade(t):
    # Bytes after the head are the first WebSocket frames.
    msgs = [b"first", b"second"]
    with h.handshake(t.port, extra=b"".join(frame(OP_TEXT, m) for m in msgs)) as c:
        for m in msgs:
            h.eq(h.read_message(c), (OP_TEXT, m), "frame pipelined with the upgrade")


def test_junk_in_same_packet_as_upgrade(t):
    # 'G' = 0x47: FIN 0, RSV1 set, opcode 7: a protocol error once upgraded.
    with h.handshake(t.port, extra=HEALTHZ) as c:
        h.expect_close(c, 1002, reply=False)


# --- robustness and the command line -----------------------------------------------------------


def test_connect_and_vanish(t):
    for i in range(50):
        c = h.Conn(t.port)
        if i % 3 == 1:
            c.send(HEALTHZ[: i % len(HEALTHZ)])
        c.close()
    # The node lets every one of them go: it does not keep a connection whose client has left
    # until its handshake timeout (10 s).
    h.wait_released(t.shared, 5.0)
    resp, conn = h.http(t.port, HEALTHZ)
    conn.close()
    h.eq(resp.status, 200, "healthz after 50 vanishing clients")


def test_help(t):
    p = subprocess.run([t.binary, "--help"], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=5)
    h.eq(p.returncode, 0, "--help exit status")
    text = (p.stdout + p.stderr).decode("utf-8", "replace")
    missing = [o for o in OPTIONS if o not in text]
    h.check(not missing, f"--help does not mention {missing}")
    for marker in h.SANITIZER_MARKERS:
        h.check(marker not in text, f"--help output contains {marker!r}")


def test_unknown_option_rejected(t):
    p = subprocess.run([t.binary, "--listen", "127.0.0.1:0", "--no-such-option"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
    h.check(p.returncode != 0, "an unknown option was accepted")
    p = subprocess.run([t.binary, "--listen", "127.0.0.1:0", "--max-message", "lots"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
    h.check(p.returncode != 0, "--max-message lots was accepted")


def test_env_vars(t):
    n = t.node(listen=False, env={"SWITCHBOARD_LISTEN": "127.0.0.1:0",
                                  "SWITCHBOARD_HANDSHAKE_TIMEOUT": "0.5"})
    resp, conn = h.http(n.port, HEALTHZ)
    conn.close()
    h.eq(resp.status, 200, "healthz on a node configured by SWITCHBOARD_LISTEN")
    with h.Conn(n.port) as c:
        t0 = time.monotonic()
        resp = h.read_response(c, timeout=3.0)
        h.eq(resp.status, 408, "status with SWITCHBOARD_HANDSHAKE_TIMEOUT=0.5")
        h.check(time.monotonic() - t0 < 2.0, "SWITCHBOARD_HANDSHAKE_TIMEOUT=0.5 ignored")


def test_still_healthy_at_the_end(t):
    resp, conn = h.http(t.port, HEALTHZ)
    conn.close()
    h.eq((resp.status, resp.body), (200, b"ok\n"), "healthz")
    with h.handshake(t.port) as c:
        h.echo(c, "the end")


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)]

if __name__ == "__main__":
    h.main(TESTS, shared_args=SHARED)
