"""Shared pieces of Switchboard's integration tests: the node under test, raw HTTP and WebSocket
I/O over plain sockets, and a tiny test runner.

Everything here waits with a deadline: sockets carry timeouts, loops are bounded, and every test
runs under an alarm, so a server that hangs makes a test fail instead of the suite stalling.
"""

import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HOST = "127.0.0.1"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBPROTOCOL = "switchboard.v1"
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
# Text a sanitizer or the UBSan runtime writes when it finds something.
SANITIZER_MARKERS = (
    "AddressSanitizer",
    "LeakSanitizer",
    "UndefinedBehaviorSanitizer",
    "ThreadSanitizer",
    "MemorySanitizer",
    "runtime error:",
)

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# Options Node sets to their largest value (1g) when a test does not give them (see command()).
LIMIT_OPTIONS = ("--rate-messages", "--rate-bytes", "--source-connections", "--source-handshakes")
LIFT_LIMITS = True
# Sessions (--resume-seconds) and holding relays through bus outages (--bus-hold-ms) change what
# a dropped connection and a Redis outage look like to the other peers. The suites written for a
# connection's end being final run their nodes with both off (a configuration users may choose
# too), unless a test sets them; test_resume turns this off and checks the defaults.
CONTINUITY_OFF = True


class Failure(AssertionError):
    """A test's expectation was not met."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def eq(got, want, what):
    if got != want:
        raise Failure(f"{what}: expected {want!r}, got {got!r}")


# ---------------------------------------------------------------------------------------------
# The node


def _die_with_parent():
    """In the child before exec: SIGKILL it if the test process dies (e.g. killed by a ctest
    timeout), so that no node outlives its test."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class LogFile:
    """A process whose output goes to self.log_path; self.name says whose it is."""

    name = "node"
    log_path = None

    def log(self):
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        text = self.log().splitlines()
        head = (f"--- {self.name} log ({self.log_path}), "
                f"last {min(lines, len(text))} of {len(text)} lines ---")
        return "\n".join([head] + text[-lines:] + [f"--- end of {self.name} log ---"])


class Node(LogFile):
    """One switchboard process listening on 127.0.0.1 with a kernel-chosen port.

    stdout and stderr go to a log file; start() waits (at most 10 s) for the `listening on` line
    and parses the port from it. stop() sends SIGTERM and checks a clean exit: status 0 within
    the time allowed and no sanitizer report in the log.
    """

    def __init__(self, binary, args=(), env=None, listen=True, echo=True):
        self.binary = binary
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.listen = listen
        self.echo = echo
        self.proc = None
        self.port = None
        self.log_path = None
        self.stopped = False

    def command(self):
        cmd = [self.binary]
        if self.listen:
            cmd += ["--listen", f"{HOST}:0"]
        if self.echo:
            cmd.append("--echo")
        # SIGTERM drains for --drain-delay + --drain-seconds (2 + 20 s by default): a test that
        # does not set them gets the node stopped at once, closing every client with 1001.
        for option in ("--drain-delay", "--drain-seconds"):
            if option not in self.args:
                cmd += [option, "0"]
        # The per-source and per-connection limits would take every test's connections for one
        # client's (all come from 127.0.0.1) and refuse the bursts suites send on purpose: a test
        # that does not set one gets it out of the way, unless LIFT_LIMITS is off (test_limits).
        if LIFT_LIMITS:
            for option in LIMIT_OPTIONS:
                if option not in self.args:
                    cmd += [option, "1g"]
        if CONTINUITY_OFF and not self.echo:
            for option in ("--resume-seconds", "--bus-hold-ms"):
                if option not in self.args:
                    cmd += [option, "0"]
        return cmd + self.args

    def start(self, timeout=10.0):
        fd, self.log_path = tempfile.mkstemp(prefix="switchboard-test-", suffix=".log")
        # Options must come only from this test, never from the caller's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update(self.extra_env)
        with os.fdopen(fd, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.log())
            if m:
                self.port = int(m.group(2))
                return self
            if self.proc.poll() is not None:
                raise Failure(
                    f"node exited with status {self.proc.returncode} before listening\n"
                    + self.log_tail()
                )
            time.sleep(0.02)
        self.kill()
        raise Failure(f"no 'listening on HOST:PORT' line within {timeout} s\n" + self.log_tail())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Waits for the process to end; returns its status, or None if it is still running."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def check_log(self):
        text = self.log()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                raise Failure(f"node log contains {marker!r}\n" + self.log_tail(120))

    def stop(self, sig=None, timeout=5.0):
        """Sends sig (SIGTERM by default) and checks that the node exits with status 0 within
        timeout seconds and wrote no sanitizer report. Returns the seconds it took to exit."""
        sig = sig or signal.SIGTERM
        if self.stopped:
            return 0.0
        self.stopped = True
        if self.proc.poll() is not None:
            self.check_log()
            raise Failure(
                f"node had already exited with status {self.proc.returncode}\n" + self.log_tail()
            )
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        status = self.wait_exit(timeout)
        elapsed = time.monotonic() - t0
        if status is None:
            self.kill()
            raise Failure(f"node still running {timeout} s after {sig.name}\n" + self.log_tail())
        self.check_log()
        if status != 0:
            raise Failure(f"node exited with status {status} after {sig.name}\n" + self.log_tail())
        return elapsed

    def kill(self):
        """Ends the process without checking anything (cleanup after a failure)."""
        self.stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def remove_log(self):
        if self.log_path:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# Raw sockets


class Closed(Exception):
    """The peer closed the TCP connection (EOF or reset) while more bytes were expected."""


class Conn:
    """A client TCP connection with a read buffer and deadline-bounded reads."""

    def __init__(self, port, timeout=5.0, rcvbuf=None, nodelay=True):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout)
        s.connect((HOST, port))
        self.sock = s
        self.buf = bytearray()
        self.timeout = timeout

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_slowly(self, data, chunk=1, delay=0.0):
        """Sends data a few bytes per send() call (TCP_NODELAY is on, so segments stay small)."""
        for i in range(0, len(data), chunk):
            self.sock.sendall(data[i : i + chunk])
            if delay:
                time.sleep(delay)

    def _fill(self, deadline):
        """Reads whatever arrives next into the buffer. Raises Closed on EOF or reset and
        socket.timeout when nothing arrives before the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError) as e:
            raise Closed(f"connection reset ({e})")
        if not data:
            raise Closed("EOF")
        self.buf += data

    def recv_exact(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_until(self, marker, limit=1 << 20, timeout=None):
        """Returns the bytes up to and including marker."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out = bytes(self.buf[: i + len(marker)])
                del self.buf[: i + len(marker)]
                return out
            if len(self.buf) > limit:
                raise Failure(f"no {marker!r} within {limit} bytes")
            self._fill(deadline)

    def recv_some(self, timeout=None):
        """Returns the buffered bytes, or the next bytes to arrive."""
        if not self.buf:
            self._fill(time.monotonic() + (self.timeout if timeout is None else timeout))
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def wait_closed(self, timeout):
        """Waits until the peer closes the connection (EOF or reset), discarding any bytes that
        arrive first (at most 16 MiB). Returns (how, seconds, discarded bytes); raises Failure
        if the connection is still open after timeout seconds."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        discarded = len(self.buf)
        self.buf.clear()
        while discarded < (16 << 20):
            try:
                self._fill(deadline)
            except Closed as e:
                return str(e), time.monotonic() - t0, discarded
            except socket.timeout:
                break
            discarded += len(self.buf)
            self.buf.clear()
        raise Failure(
            f"connection still open {timeout} s later (received {discarded} more bytes meanwhile)"
        )

    def tcp_state(self):
        """Linux TCP state of this socket (tcp_info.tcpi_state), read without touching the data."""
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        return info[0]


TCP_ESTABLISHED = 1
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8


def _kernel_sockets():
    """{inode: TCP state or None} of every socket in the kernel's tables (/proc/net). A TCP
    socket that was reset or fully closed is not in them, even while a process holds it."""
    out = {}
    for table in ("tcp", "tcp6", "udp", "udp6", "unix", "netlink"):
        try:
            with open(f"/proc/net/{table}") as f:
                next(f, None)
                for line in f:
                    p = line.split()
                    if table == "unix":
                        if len(p) >= 7:
                            out[p[6]] = None
                    elif len(p) >= 10:
                        out[p[9]] = int(p[3], 16) if table.startswith("tcp") else None
        except OSError:
            pass
    return out


def dead_connections(node):
    """How many connections node (a running Node) still holds although their client has gone:
    sockets reset by the client (held by the node but no longer in the kernel's tables) and
    sockets whose client has closed its side (CLOSE_WAIT). Read from /proc, without touching
    the node."""
    held = []
    fd_dir = f"/proc/{node.proc.pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            held.append(target[8:-1])
    kernel = _kernel_sockets()
    return sum(1 for inode in held if inode not in kernel or kernel[inode] == TCP_CLOSE_WAIT)


def wait_released(node, timeout):
    """Polls until node holds no connection whose client has gone (dead_connections), i.e. it
    has noticed every client that vanished and let its connection go; returns the seconds it
    took. Raises Failure after timeout seconds."""
    t0 = time.monotonic()
    while True:
        dead = dead_connections(node)
        if dead == 0:
            return time.monotonic() - t0
        if not node.alive():
            raise Failure(f"node exited (status {node.proc.returncode}) with {dead} dead "
                          "connections")
        if time.monotonic() - t0 > timeout:
            raise Failure(f"node still holds {dead} connection(s) of vanished clients "
                          f"{timeout} s later")
        time.sleep(0.02)


def eventually(fn, timeout, interval=0.02):
    """Calls fn() until it returns without raising Failure, and returns its value; once timeout
    seconds have passed, the last Failure is raised. For state that another process reaches
    soon but not in the same instant as what the test saw (e.g. Redis, written by a node after
    it answered the client): wait for the condition, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Failure:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in order received
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        """The first value of a header (case-insensitive name), or None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return f"<{self.status} {self.reason} {self.headers} body={self.body[:80]!r}>"


def read_response(conn, timeout=5.0, body=True):
    """Reads one HTTP/1.1 response head and, if body and Content-Length is present, its body."""
    raw = conn.recv_until(b"\r\n\r\n", limit=65536, timeout=timeout)
    lines = raw[:-4].decode("latin-1").split("\r\n")
    m = re.match(r"^(HTTP/1\.[01]) (\d{3}) ?(.*)$", lines[0])
    check(m is not None, f"bad status line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        check(":" in line, f"bad header line {line!r}")
        k, v = line.split(":", 1)
        check(k == k.strip() and k, f"bad header name in {line!r}")
        headers.append((k, v.strip()))
    resp = Response(m.group(1), int(m.group(2)), m.group(3), headers, b"", raw)
    if body:
        cl = resp.header("Content-Length")
        if cl is not None:
            check(cl.isdigit(), f"bad Content-Length {cl!r}")
            resp.body = conn.recv_exact(int(cl), timeout=timeout) if int(cl) else b""
    return resp


def http(port, request, timeout=5.0):
    """Sends raw request bytes on a new connection; returns (response, conn) with the response
    read (head and Content-Length body)."""
    conn = Conn(port, timeout=timeout)
    conn.send(request)
    return read_response(conn, timeout=timeout), conn


def check_error_response(resp, conn, status, close_timeout=3.0):
    """An error response: the status, a Content-Length that matches the body, Connection: close,
    and the server then closes the connection."""
    eq(resp.status, status, "status")
    cl = resp.header("Content-Length")
    check(cl is not None, f"{status} response without Content-Length: {resp.raw_head!r}")
    conn_hdr = resp.header("Connection")
    check(
        conn_hdr is not None and "close" in [t.strip().lower() for t in conn_hdr.split(",")],
        f"{status} response without 'Connection: close': {resp.raw_head!r}",
    )
    how, secs, extra = conn.wait_closed(close_timeout)
    check(extra == 0, f"{extra} bytes after the {status} response's Content-Length body")


def check_healthz(port, timeout=5.0):
    """GET /healthz answers 200 with the body "ok\\n"."""
    resp, conn = http(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeout=timeout)
    conn.close()
    eq((resp.status, resp.body), (200, b"ok\n"), "GET /healthz")


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_request(path="/ws", key=None, subprotocol=None, headers=None, version="HTTP/1.1",
                    method="GET", omit=()):
    """A WebSocket upgrade request; headers (a list of (name, value)) are appended, and headers
    whose lower-case names are in omit are left out."""
    key = key if key is not None else new_key()
    base = [
        ("Host", f"{HOST}"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if subprotocol is not None:
        base.append(("Sec-WebSocket-Protocol", subprotocol))
    lines = [f"{method} {path} {version}"]
    lines += [f"{k}: {v}" for k, v in base if k.lower() not in omit]
    lines += [f"{k}: {v}" for k, v in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def handshake(port, subprotocol=None, timeout=5.0, rcvbuf=None, extra=b""):
    """Opens a WebSocket with raw sockets; checks the 101 response and returns the Conn.
    extra is sent in the same send() right after the request head."""
    conn = Conn(port, timeout=timeout, rcvbuf=rcvbuf)
    key = new_key()
    conn.send(upgrade_request(key=key, subprotocol=subprotocol) + extra)
    resp = read_response(conn, timeout=timeout, body=False)
    check_101(resp, key)
    return conn


def check_101(resp, key, subprotocol=None):
    eq(resp.status, 101, f"handshake status (response {resp.raw_head!r})")
    check((resp.header("Upgrade") or "").lower() == "websocket", f"Upgrade header: {resp.raw_head!r}")
    conn_tokens = [t.strip().lower() for t in (resp.header("Connection") or "").split(",")]
    check("upgrade" in conn_tokens, f"Connection header: {resp.raw_head!r}")
    eq(resp.header("Sec-WebSocket-Accept"), accept_key(key), "Sec-WebSocket-Accept")
    eq(resp.header("Sec-WebSocket-Protocol"), subprotocol, "Sec-WebSocket-Protocol")


# ---------------------------------------------------------------------------------------------
# WebSocket frames


def mask_bytes(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(opcode, payload=b"", fin=True, rsv=0, masked=True, mask=None, length_size=None,
          length=None):
    """Encodes a client frame.

    rsv: the three RSV bits as a number 0..7 (4 = RSV1). length_size forces the length encoding:
    0 (7-bit), 2 (16-bit) or 8 (64-bit), None for the minimal one. length overrides the length
    announced in the header (for frames whose payload is sent in part or not at all)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    if length_size is None:
        length_size = 0 if n < 126 else 2 if n < 65536 else 8
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if masked else 0
    if length_size == 0:
        check(n < 126, "7-bit length too large")
        head = bytes([b0, mbit | n])
    elif length_size == 2:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = mask if mask is not None else os.urandom(4)
    return head + key + mask_bytes(payload, key)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


def close_frame(code=None, reason=b""):
    return frame(OP_CLOSE, close_payload(code, reason))


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return f"<frame op={self.opcode:#x} fin={int(self.fin)} rsv={self.rsv} len={len(self.payload)} {p!r}>"


def read_frame(conn, timeout=5.0):
    """Reads one server frame and checks what RFC 6455 requires of it: unmasked, RSV 0, minimal
    length encoding, a known opcode, control frames unfragmented and at most 125 bytes."""
    deadline = time.monotonic() + timeout
    left = lambda: max(0.001, deadline - time.monotonic())
    b0, b1 = conn.recv_exact(2, timeout=left())
    fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF
    check(not (b1 & 0x80), f"server frame is masked (bytes {b0:#x} {b1:#x})")
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", conn.recv_exact(2, timeout=left()))[0]
        check(n >= 126, f"server used a 16-bit length for {n} bytes")
    elif n == 127:
        n = struct.unpack("!Q", conn.recv_exact(8, timeout=left()))[0]
        check(n >= 65536 and n < (1 << 63), f"server used a 64-bit length for {n} bytes")
    check(rsv == 0, f"server frame has RSV bits {rsv}")
    check(opcode in (0, 1, 2, 8, 9, 10), f"server frame has reserved opcode {opcode:#x}")
    if opcode >= 8:
        check(fin and n <= 125, f"server control frame fin={fin} len={n}")
    payload = conn.recv_exact(n, timeout=left()) if n else b""
    return Frame(fin, rsv, opcode, payload)


def read_message(conn, timeout=5.0, on_control=None):
    """Reads one data message (reassembling fragments). Pings are answered with pongs unless
    on_control is given (then each control frame is passed to it). A close frame raises
    Failure. Returns (opcode, payload)."""
    deadline = time.monotonic() + timeout
    opcode, parts = None, []
    for _ in range(100000):
        f = read_frame(conn, timeout=max(0.001, deadline - time.monotonic()))
        if f.opcode >= 8:
            if on_control is not None:
                on_control(f)
                continue
            if f.opcode == OP_PING:
                conn.send(frame(OP_PONG, f.payload))
                continue
            if f.opcode == OP_PONG:
                continue
            raise Failure(f"expected a message, got close code {f.close_code()} {f.payload[2:]!r}")
        if opcode is None:
            check(f.opcode != OP_CONT, "server sent a continuation frame with no message started")
            opcode = f.opcode
        else:
            eq(f.opcode, OP_CONT, "opcode of a server continuation frame")
        parts.append(f.payload)
        if f.fin:
            return opcode, b"".join(parts)
    raise Failure("message with too many fragments")


def echo(conn, payload, timeout=5.0):
    """Sends a text message and checks it comes back identical."""
    if isinstance(payload, str):
        payload = payload.encode()
    conn.send(frame(OP_TEXT, payload))
    op, got = read_message(conn, timeout=timeout)
    eq(op, OP_TEXT, "echo opcode")
    check(got == payload, f"echo differs: sent {len(payload)} bytes {payload[:40]!r}, got {len(got)} bytes {got[:40]!r}")


def read_close(conn, timeout=5.0):
    """Reads frames until a close frame; returns it (data frames and pongs before it are
    skipped, pings are not answered)."""
    deadline = time.monotonic() + timeout
    seen = []
    for _ in range(100000):
        try:
            f = read_frame(conn, timeout=max(0.001, deadline - time.monotonic()))
        except Closed as e:
            raise Failure(f"connection closed ({e}) without a close frame; frames before: {seen[-5:]}")
        except socket.timeout:
            raise Failure(f"no close frame within {timeout} s; frames before: {seen[-5:]}")
        if f.opcode == OP_CLOSE:
            return f
        seen.append(f)
    raise Failure("too many frames before close")


def expect_close(conn, code, timeout=5.0, reply=True, closed_within=3.0):
    """Expects a close frame with code (None: an empty close), a valid UTF-8 reason, then the
    TCP connection to end within closed_within seconds (after our own close when reply)."""
    f = read_close(conn, timeout=timeout)
    check(len(f.payload) != 1, "server close frame has a 1-byte payload")
    got = f.close_code()
    if code is None:
        check(got in (None, 1000), f"expected an empty close or 1000, got {got}")
    else:
        eq(got, code, f"close code (reason {f.payload[2:]!r})")
    try:
        f.payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise Failure(f"server close reason is not UTF-8: {f.payload[2:]!r}")
    if reply:
        try:
            conn.send(close_frame(got, b""))
        except OSError:
            pass  # the server may already have dropped the connection
    conn.wait_closed(closed_within)
    return f


# ---------------------------------------------------------------------------------------------
# Services a cluster test runs beside its nodes: redis-server and haproxy (Debian's)

REDIS_SERVER = "/usr/bin/redis-server"
HAPROXY = "/usr/sbin/haproxy"


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on right now (the kernel's pick)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def get_status(port, path, timeout=2.0):
    """GET path on a new connection; returns (status, body). Connection failures raise."""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    resp, conn = http(port, request, timeout=timeout)
    conn.close()
    return resp.status, resp.body


def wait_status(port, path, want, timeout, interval=0.05):
    """Polls GET path until it answers status want; returns the seconds it took. Raises Failure
    with the last answer after timeout seconds."""
    t0 = time.monotonic()
    last = None
    while True:
        try:
            last = get_status(port, path)
            if last[0] == want:
                return time.monotonic() - t0
        except (OSError, Closed, Failure) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() - t0 > timeout:
            raise Failure(f"GET {path} on port {port}: not {want} within {timeout} s "
                          f"(last answer {last!r})")
        time.sleep(interval)


class RedisError(Exception):
    """An error reply from Redis."""


class RedisClient:
    """One RESP2 connection to Redis. command(*args) sends a command and returns its reply:
    bytes, int, list, None, or "OK"-style status strings as str; an error reply raises
    RedisError. read_reply() reads one more reply (pub/sub pushes)."""

    def __init__(self, port, password=None, user=None, timeout=5.0):
        self.conn = Conn(port, timeout=timeout)
        self.timeout = timeout
        if password is not None:
            self.command(*(["AUTH"] + ([user] if user else []) + [password]))

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
        self.conn.send(b"".join(out))

    def read_reply(self, timeout=None):
        t = self.timeout if timeout is None else timeout
        line = self.conn.recv_until(b"\r\n", timeout=t)[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.conn.recv_exact(n + 2, timeout=t)[:-2]
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            out = []
            for _ in range(n):
                try:
                    out.append(self.read_reply(timeout))
                except RedisError as e:  # an error inside an array (EXEC, scripts)
                    out.append(e)
            return out
        raise Failure(f"bad RESP line from Redis: {line!r}")

    def command(self, *args, timeout=None):
        self.send(*args)
        return self.read_reply(timeout)


class Service(LogFile):
    """A helper process (not the node under test) whose stdout and stderr go to a log file,
    with a temporary directory as its working directory."""

    name = "service"

    def __init__(self):
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix=f"switchboard-{self.name}-")
        self.log_path = os.path.join(self.dir, f"{self.name}.log")

    def spawn(self, cmd):
        # PR_SET_PDEATHSIG fires when the *thread* that started the child ends: a service
        # started from a worker thread (run_in_executor) would be killed with that thread.
        check(threading.current_thread() is threading.main_thread(),
              f"start {self.name} from the main thread")
        with open(self.log_path, "ab") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, preexec_fn=_die_with_parent)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """Ends the process: SIGTERM, then SIGKILL if it is still there 5 s later."""
        if self.alive():
            self.proc.terminate()
            if self.wait_exit(5.0) is None:
                self.kill()

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.wait_exit(5.0)

    def remove_log(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer(Service):
    """Debian's redis-server on 127.0.0.1 with nothing persisted, on a port of its own (kept
    across restarts). password and user are the credentials command() uses; args are passed to
    redis-server (e.g. "--requirepass", "pw")."""

    name = "redis"

    def __init__(self, args=(), password=None, user=None, port=None):
        super().__init__()
        self.args = list(args)
        self.password = password
        self.user = user
        self.port = port or free_port()

    def url(self, user=None, password=None):
        cred = ""
        if password is not None:
            cred = f"{user or ''}:{password}@"
        return f"redis://{cred}{HOST}:{self.port}"

    def start(self, timeout=5.0):
        """Starts redis-server and waits (at most timeout seconds) until it answers PING."""
        self.spawn([REDIS_SERVER, "--port", str(self.port), "--bind", HOST, "--save", "",
                    "--appendonly", "no", "--dir", self.dir] + self.args)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise Failure(f"redis-server exited with status {self.proc.returncode}\n"
                              + self.log_tail())
            try:
                if self.command("PING", timeout=1.0) == "PONG":
                    return self
            except (OSError, Closed, RedisError) as e:
                last = e
            time.sleep(0.02)
        self.kill()
        raise Failure(f"redis-server not answering PING within {timeout} s ({last})\n"
                      + self.log_tail())

    def client(self, timeout=5.0):
        return RedisClient(self.port, self.password, self.user, timeout=timeout)

    def command(self, *args, timeout=5.0):
        """Runs one command on a new connection and returns its reply."""
        with self.client(timeout=timeout) as c:
            return c.command(*args)

    def shutdown(self, timeout=5.0):
        """SHUTDOWN NOSAVE: Redis closes every connection and exits (with no data kept)."""
        if not self.alive():
            return
        try:
            with self.client() as c:
                c.send("SHUTDOWN", "NOSAVE")
                try:
                    c.read_reply(timeout=timeout)
                except (Closed, OSError):
                    pass  # no reply: the connection just ends
        except (OSError, Closed):
            pass
        if self.wait_exit(timeout) is None:
            self.kill()
            raise Failure(f"redis-server still running {timeout} s after SHUTDOWN NOSAVE")

    def stop(self):
        if self.alive():
            try:
                self.shutdown()
            except Exception:
                self.kill()


class HAProxy(Service):
    """Debian's haproxy in the foreground (-db) with a given configuration; the configuration
    may use {stats} for the path of an admin socket (see stat())."""

    name = "haproxy"

    def __init__(self, config, port):
        super().__init__()
        self.port = port
        self.stats_path = os.path.join(self.dir, "stats.sock")
        self.config_path = os.path.join(self.dir, "haproxy.cfg")
        with open(self.config_path, "w") as f:
            f.write(config.replace("{stats}", self.stats_path))

    def start(self, timeout=5.0):
        """Checks the configuration (haproxy -c), starts haproxy and waits until it accepts
        connections on its port and its admin socket (which every config here has) exists."""
        check_run = subprocess.run([HAPROXY, "-c", "-f", self.config_path], cwd=self.dir,
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        if check_run.returncode != 0:
            raise Failure("haproxy -c refused the configuration:\n"
                          + (check_run.stdout + check_run.stderr).decode("utf-8", "replace"))
        self.spawn([HAPROXY, "-db", "-f", self.config_path])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise Failure(f"haproxy exited with status {self.proc.returncode}\n"
                              + self.log_tail())
            try:
                socket.create_connection((HOST, self.port), timeout=1.0).close()
                # Its admin socket may come a moment after the port: wait for both.
                if os.path.exists(self.stats_path):
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        self.kill()
        raise Failure(f"haproxy not accepting connections (and on {self.stats_path}) within "
                      f"{timeout} s\n" + self.log_tail())

    def admin(self, command, timeout=2.0):
        """Sends one command to the admin socket; returns its text answer."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.stats_path)
            s.sendall(command.encode() + b"\n")
            out = bytearray()
            while True:
                data = s.recv(65536)
                if not data:
                    return out.decode("utf-8", "replace")
                out += data
        finally:
            s.close()

    def server_states(self, backend):
        """{server name: status} of a backend's servers ("UP", "DOWN", "UP 1/2", ...)."""
        lines = self.admin("show stat").splitlines()
        check(lines and lines[0].startswith("# "), f"haproxy show stat: {lines[:2]}")
        cols = lines[0][2:].split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(cols, line.split(",")))
            if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
                out[row["svname"]] = row.get("status")
        return out

    def wait_states(self, backend, want, timeout):
        """Polls until server_states(backend) equals want; returns the seconds it took."""
        t0 = time.monotonic()
        while True:
            got = self.server_states(backend)
            if got == want:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise Failure(f"haproxy servers of {backend}: expected {want} within {timeout} s, "
                              f"got {got}")
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# Runner


class Timeout(Exception):
    pass


class Context:
    """What a test function receives: the binary, a node shared by the tests of a script that
    need no special options, and node() to start one with its own options (stopped and checked
    when the test ends)."""

    def __init__(self, binary, shared_args, echo=True):
        self.binary = binary
        self.shared_args = shared_args
        self.echo = echo  # whether the shared node runs with --echo
        self._shared = None
        self.own = []
        self.all_nodes = []
        self.services = []  # this test's helper processes (see service())

    @property
    def shared(self):
        if self._shared is None or not self._shared.alive():
            self._shared = Node(self.binary, self.shared_args, echo=self.echo).start()
            self.all_nodes.append(self._shared)
        return self._shared

    @property
    def port(self):
        return self.shared.port

    def node(self, *args, env=None, listen=True, echo=True):
        n = Node(self.binary, args, env=env, listen=listen, echo=echo)
        self.own.append(n)
        self.all_nodes.append(n)
        return n.start()

    def service(self, svc):
        """Adopts a helper process (a Service: Redis, HAProxy) for this test: it is stopped
        after the test's nodes, and its log is printed if the test fails. Returns svc."""
        self.services.append(svc)
        self.all_nodes.append(svc)
        return svc


def _alarm(signum, frame_):
    raise Timeout("test took too long (alarm)")


def arun(coro, timeout=20.0):
    """Runs an asyncio coroutine with an overall time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def main(tests, shared_args=(), test_timeout=25.0, echo=True):
    """Runs each test function (named test_*), prints PASS/FAIL lines and a summary, and exits
    with status 1 if any failed. The binary to test is sys.argv[1]. echo=False runs the shared
    node in relay mode (without --echo)."""
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} PATH-TO-SWITCHBOARD", file=sys.stderr)
        sys.exit(2)
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        print(f"not an executable: {binary}", file=sys.stderr)
        sys.exit(2)
    ctx = Context(binary, list(shared_args), echo=echo)
    signal.signal(signal.SIGALRM, _alarm)
    passed = failed = 0
    t_start = time.monotonic()

    def report(name, err, nodes):
        nonlocal passed, failed
        if err is None:
            passed += 1
            print(f"PASS {name}", flush=True)
            return
        failed += 1
        print(f"FAIL {name}: {err}", flush=True)
        for n in nodes:
            if n.log_path and n.log_path not in err:  # not already in the message
                print(n.log_tail(40), flush=True)

    for test in tests:
        name = test.__name__[5:] if test.__name__.startswith("test_") else test.__name__
        ctx.own = []
        ctx.services = []
        shared_before = ctx._shared
        err = None
        t0 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, test_timeout)
        try:
            test(ctx)
        except Exception as e:  # Failure, timeouts, socket errors, bugs in the test itself
            tb = traceback.extract_tb(e.__traceback__)
            where = next(
                (f"{os.path.basename(fr.filename)}:{fr.lineno}" for fr in reversed(tb)
                 if os.path.basename(fr.filename).startswith("test_")),
                "",
            )
            err = f"{type(e).__name__}: {e}" + (f" [{where}]" if where else "")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        # Nodes the test started itself must stop cleanly.
        for n in ctx.own:
            try:
                n.stop()
            except Exception as e:
                if err is None:
                    err = f"{type(e).__name__}: {e}"
            finally:
                n.kill()
        # Helper processes go after the nodes that used them.
        for svc in reversed(ctx.services):
            try:
                svc.stop()
            except Exception as e:
                if err is None:
                    err = f"{type(e).__name__}: {e}"
            finally:
                svc.kill()
        # The shared node must have survived the test.
        if ctx._shared is not None and not ctx._shared.alive():
            if err is None:
                err = f"shared node died (status {ctx._shared.proc.returncode})"
            try:
                ctx._shared.check_log()
            except Failure as e:
                err += f"; {e}"
        if err is not None and os.environ.get("SB_TEST_VERBOSE"):
            traceback.print_exc()
        involved = list(ctx.own) + list(ctx.services)
        for n in (shared_before, ctx._shared):
            if n is not None and n not in involved:
                involved.append(n)
        dt = time.monotonic() - t0
        if dt > 5:
            print(f"  ({name} took {dt:.1f} s)", flush=True)
        report(name, err, involved if err else [])

    # The shared node, which served most of the tests, must also exit cleanly.
    if ctx._shared is not None:
        err = None
        try:
            if ctx._shared.alive():
                ctx._shared.stop()
            else:
                ctx._shared.check_log()
        except Exception as e:
            err = f"{type(e).__name__}: {e}"
        finally:
            ctx._shared.kill()
        report("shared_node_exits_cleanly", err, [])

    for n in ctx.all_nodes:
        n.kill()
        if failed == 0:
            n.remove_log()
    print(f"  (total {time.monotonic() - t_start:.1f} s)", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


# ---------------------------------------------------------------------------------------------
# Server JSON, checked strictly


def strict_loads(raw, what):
    """Parses server JSON strictly: RFC 8259 only (no NaN/Infinity), no duplicate keys, an
    object at the top."""
    def pairs(items):
        keys = [k for k, _ in items]
        check(len(keys) == len(set(keys)), f"{what}: duplicate key in {raw!r}")
        return dict(items)

    def constant(name):
        raise Failure(f"{what}: non-JSON constant {name} in {raw!r}")

    try:
        msg = json.loads(raw, object_pairs_hook=pairs, parse_constant=constant)
    except ValueError as e:
        raise Failure(f"{what}: invalid JSON from the server ({e}): {raw!r}")
    check(isinstance(msg, dict), f"{what}: server message is not an object: {raw!r}")
    return msg


def same_json(got, want, what):
    """Equal as JSON values, numbers included by kind (1 and 1.0 and True differ)."""
    def norm(v):
        if isinstance(v, list):
            return ("list", [norm(x) for x in v])
        if isinstance(v, dict):
            return ("dict", {k: norm(x) for k, x in v.items()})
        return (type(v).__name__, v)
    if norm(got) != norm(want):
        raise Failure(f"{what}: expected {want!r}, got {got!r}")


def check_error(msg, code, what, **context):
    """An error message: exactly type, code, a non-empty message and the context fields given
    (a context value of None means that field must be absent)."""
    check(isinstance(msg.get("message"), str) and msg["message"] != "",
            f"{what}: error without a 'message' string: {msg!r}")
    want = {"type": "error", "code": code, "message": msg["message"]}
    want.update({k: v for k, v in context.items() if v is not None})
    same_json(msg, want, what)
