#!/usr/bin/python3
"""Switchboard's WebSocket framing over raw sockets: every malformed frame gets its exact close
code, odd but valid deliveries are echoed, and the node copes with slow, silent and vanishing
clients. Usage: test_ws_raw.py PATH-TO-SWITCHBOARD"""

import fcntl
import os
import signal
import socket
import struct
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, frame  # noqa: E402

# The shared node: a short close timeout so that a server waiting for a close we never send
# costs little; debug logs so that a failure comes with context.
SHARED = ["--close-timeout", "0.5", "--log-level", "debug"]
MAX = 65536  # the default --max-message


def expect_code(t, data, code, what, reply=True):
    """Opens a WebSocket, sends data, and expects a close frame with code then the end of TCP."""
    with h.handshake(t.port) as c:
        c.send(data)
        try:
            h.expect_close(c, code, reply=reply)
        except h.Failure as e:
            raise h.Failure(f"{what}: {e}")


def health(port):
    resp, conn = h.http(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.close()
    h.eq((resp.status, resp.body), (200, b"ok\n"), "healthz")


# --- valid traffic --------------------------------------------------------------------------


def test_echo_basic(t):
    with h.handshake(t.port) as c:
        for msg in ["hello", "", "x" * 125, "é€😀 mixed", "a\x00b"]:
            h.echo(c, msg)


def test_lengths_at_encoding_boundaries(t):
    # 7-bit, 16-bit and 64-bit lengths; 65536 is exactly --max-message, which must be accepted.
    with h.handshake(t.port) as c:
        for n in (0, 1, 125, 126, 127, 65535, 65536):
            h.echo(c, bytes((97 + i % 26) for i in range(n)))


def test_byte_by_byte(t):
    with h.handshake(t.port) as c:
        payload = b"one byte per send(), split everywhere"
        c.send_slowly(frame(OP_TEXT, payload), chunk=1, delay=0.001)
        op, got = h.read_message(c)
        h.eq((op, got), (OP_TEXT, payload), "7-bit frame sent byte by byte")
        p = b"m" * 300
        c.send_slowly(frame(OP_TEXT, p), chunk=1, delay=0.001)
        h.eq(h.read_message(c), (OP_TEXT, p), "16-bit frame sent byte by byte")
        c.send_slowly(frame(OP_PING, b"pp"), chunk=1, delay=0.001)
        f = h.read_frame(c)
        h.eq((f.opcode, f.payload), (OP_PONG, b"pp"), "pong for a ping sent byte by byte")
        # A 64-bit length header (14 bytes with the mask) one byte at a time, then the payload.
        big = os.urandom(MAX // 2).hex().encode()
        data = frame(OP_TEXT, big)
        c.send_slowly(data[:14], chunk=1, delay=0.001)
        c.send_slowly(data[14:], chunk=7000)
        op, got = h.read_message(c)
        h.check(op == OP_TEXT and got == big, "64-bit frame with header byte by byte not echoed")


def test_many_frames_in_one_send(t):
    with h.handshake(t.port) as c:
        msgs = [f"message {i}".encode() for i in range(50)]
        blob = b"".join(frame(OP_TEXT, m) for m in msgs) + frame(OP_PING, b"last")
        c.send(blob)
        for m in msgs:
            h.eq(h.read_message(c, on_control=lambda f: None), (OP_TEXT, m), "coalesced echo")
        f = h.read_frame(c)
        h.eq((f.opcode, f.payload), (OP_PONG, b"last"), "pong after coalesced frames")


def test_fragmented_with_interleaved_control(t):
    with h.handshake(t.port) as c:
        c.send(frame(OP_TEXT, b"Hel", fin=False))
        c.send(frame(OP_PING, b"p1"))
        c.send(frame(OP_CONT, b"lo ", fin=False))
        c.send(frame(OP_PONG, b"unsolicited"))
        c.send(frame(OP_CONT, b"", fin=False))
        c.send(frame(OP_PING, b""))
        c.send(frame(OP_CONT, b"world", fin=True))
        f = h.read_frame(c)
        h.eq((f.opcode, f.payload), (OP_PONG, b"p1"), "first pong")
        f = h.read_frame(c)
        h.eq((f.opcode, f.payload), (OP_PONG, b""), "second pong")
        h.eq(h.read_message(c), (OP_TEXT, b"Hello world"), "reassembled message")
        h.echo(c, "still fine")


def test_fragments_summing_to_the_limit(t):
    with h.handshake(t.port) as c:
        parts = [b"a" * 30000, b"b" * 30000, b"c" * (MAX - 60000)]
        c.send(frame(OP_TEXT, parts[0], fin=False))
        c.send(frame(OP_CONT, parts[1], fin=False))
        c.send(frame(OP_CONT, parts[2], fin=True))
        op, got = h.read_message(c)
        h.check(op == OP_TEXT and got == b"".join(parts), "65536 bytes in 3 fragments not echoed")


def test_utf8_split_across_fragments(t):
    with h.handshake(t.port) as c:
        text = "a€b😀c".encode()  # 61 | e2 82 ac | 62 | f0 9f 98 80 | 63
        # one byte per fragment: every multi-byte sequence is split inside a code point
        for i, byte in enumerate(text):
            op = OP_TEXT if i == 0 else OP_CONT
            c.send(frame(op, bytes([byte]), fin=(i == len(text) - 1)))
        h.eq(h.read_message(c), (OP_TEXT, text), "message split in every code point")
        # split after the first byte of the euro sign and inside the emoji
        c.send(frame(OP_TEXT, text[:2], fin=False))
        c.send(frame(OP_CONT, text[2:7], fin=False))
        c.send(frame(OP_CONT, text[7:], fin=True))
        h.eq(h.read_message(c), (OP_TEXT, text), "message split in 3")


def test_utf8_edge_code_points(t):
    with h.handshake(t.port) as c:
        for s in (b"\x00", b"\x7f", b"\xc2\x80", b"\xdf\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf",
                  b"\xee\x80\x80", b"\xef\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf"):
            h.echo(c, s)


def test_ping_pong(t):
    with h.handshake(t.port) as c:
        for p in (b"", b"abc", os.urandom(125)):
            c.send(frame(OP_PING, p))
            f = h.read_frame(c)
            h.eq((f.opcode, f.payload), (OP_PONG, p), "pong")
        c.send(frame(OP_PONG, b"nobody asked"))
        h.echo(c, "after an unsolicited pong")


# --- protocol errors: 1002 ------------------------------------------------------------------


def test_unmasked_frame(t):
    expect_code(t, frame(OP_TEXT, b"hello", masked=False), 1002, "unmasked text")
    expect_code(t, frame(OP_PING, b"hi", masked=False), 1002, "unmasked ping")


def test_rsv_bits(t):
    for rsv in (4, 2, 1, 7):
        expect_code(t, frame(OP_TEXT, b"hello", rsv=rsv), 1002, f"RSV={rsv:03b}")
    expect_code(t, frame(OP_PING, b"x", rsv=4), 1002, "RSV1 on a ping")


def test_reserved_opcodes(t):
    for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
        expect_code(t, frame(op, b"abc"), 1002, f"opcode {op:#x}")


def test_fragmented_control_frames(t):
    expect_code(t, frame(OP_PING, b"x", fin=False), 1002, "ping with FIN=0")
    expect_code(t, frame(OP_PONG, b"x", fin=False), 1002, "pong with FIN=0")
    expect_code(t, frame(OP_CLOSE, h.close_payload(1000), fin=False), 1002, "close with FIN=0")


def test_control_frame_over_125(t):
    expect_code(t, frame(OP_PING, b"p" * 126), 1002, "126-byte ping")
    expect_code(t, frame(OP_PONG, b"p" * 126), 1002, "126-byte pong")
    # A 16-bit length that announces 125 bytes is also a non-minimal encoding.
    expect_code(t, frame(OP_PING, b"p" * 125, length_size=2), 1002, "ping with 16-bit length")


def test_non_minimal_lengths(t):
    expect_code(t, frame(OP_TEXT, b"hello", length_size=2), 1002, "16-bit length for 5 bytes")
    expect_code(t, frame(OP_TEXT, b"x" * 125, length_size=2), 1002, "16-bit length for 125 bytes")
    expect_code(t, frame(OP_TEXT, b"x" * 200, length_size=8), 1002, "64-bit length for 200 bytes")
    expect_code(t, frame(OP_TEXT, b"x" * 65535, length_size=8), 1002, "64-bit length for 65535")
    expect_code(t, frame(OP_TEXT, b"hi", length_size=8), 1002, "64-bit length for 2 bytes")


def test_64bit_length_with_top_bit(t):
    # RFC 6455 5.2: the most significant bit of a 64-bit length must be 0.
    data = frame(OP_TEXT, b"", length=(1 << 63) | 5)[:14] + b"abcde"
    expect_code(t, data, 1002, "64-bit length with MSB set")


def test_continuation_without_start(t):
    expect_code(t, frame(OP_CONT, b"x", fin=True), 1002, "lone final continuation")
    expect_code(t, frame(OP_CONT, b"x", fin=False), 1002, "lone continuation")
    # a continuation after a completed message is also one without a start
    with h.handshake(t.port) as c:
        h.echo(c, "done")
        c.send(frame(OP_CONT, b"more"))
        h.expect_close(c, 1002)


def test_new_message_inside_fragmented(t):
    expect_code(t, frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), 1002, "text during text")
    expect_code(t, frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b", fin=False), 1002,
                "unfinished text during text")


def test_close_one_byte_payload(t):
    expect_code(t, frame(OP_CLOSE, b"\x03"), 1002, "1-byte close")


def test_close_invalid_codes(t):
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535):
        expect_code(t, h.close_frame(code), 1002, f"close code {code}", reply=False)


# --- invalid data: 1007 ---------------------------------------------------------------------

BAD_UTF8 = [
    (b"\x80", "lone continuation byte"),
    (b"\xc0\x80", "overlong NUL"),
    (b"\xc1\xbf", "overlong 2-byte"),
    (b"\xe0\x80\xaf", "overlong 3-byte"),
    (b"\xf0\x80\x80\xaf", "overlong 4-byte"),
    (b"\xed\xa0\x80", "UTF-16 surrogate"),
    (b"\xf4\x90\x80\x80", "above U+10FFFF"),
    (b"\xf5\x80\x80\x80", "F5 lead byte"),
    (b"\xff", "FF byte"),
    (b"ok\xe2\x82", "truncated at the end of the message"),
    (b"\xf0\x9f\x98", "truncated 4-byte at the end"),
    (b"\xe2\x28\xa1", "bad continuation"),
]


def test_invalid_utf8_text(t):
    for data, what in BAD_UTF8:
        expect_code(t, frame(OP_TEXT, data), 1007, what)


def test_invalid_utf8_truncated_in_last_fragment(t):
    data = frame(OP_TEXT, b"abc\xe2", fin=False) + frame(OP_CONT, b"\x82", fin=True)
    expect_code(t, data, 1007, "code point cut by the end of the message")


def test_invalid_utf8_fails_fast(t):
    # The header announces 1000 bytes; only 10 arrive, the 4th and 5th an invalid sequence.
    # The close must come without the other 990 bytes.
    with h.handshake(t.port) as c:
        c.send(frame(OP_TEXT, b"abc\xc0\xafdefgh", length=1000))
        h.expect_close(c, 1007, timeout=3, reply=False)
    # The same inside the first fragment of a message whose end never arrives.
    with h.handshake(t.port) as c:
        c.send(frame(OP_TEXT, b"fine so far \xed\xa0\x80", fin=False))
        h.expect_close(c, 1007, timeout=3, reply=False)


def test_close_reason_invalid_utf8(t):
    expect_code(t, h.close_frame(1000, b"bye \xff"), 1007, "close reason with FF")
    expect_code(t, h.close_frame(1000, b"\xe2\x82"), 1007, "close reason truncated")


# --- binary and size: 1003, 1009 ------------------------------------------------------------


def test_binary_message(t):
    expect_code(t, frame(OP_BINARY, b"\x00\x01\x02"), 1003, "binary")
    expect_code(t, frame(OP_BINARY, b"", fin=True), 1003, "empty binary")
    expect_code(t, frame(OP_BINARY, b"\x00", fin=False), 1003, "first binary fragment")


def test_message_over_limit(t):
    # The header alone says the message is too big: the close must not wait for the payload.
    with h.handshake(t.port) as c:
        c.send(frame(OP_TEXT, b"x" * 10, length=MAX + 1))
        h.expect_close(c, 1009, timeout=3, reply=False)
    with h.handshake(t.port) as c:
        c.send(frame(OP_TEXT, b"", length=1 << 40)[:14])
        h.expect_close(c, 1009, timeout=3, reply=False)


def test_fragments_over_limit(t):
    with h.handshake(t.port) as c:
        c.send(frame(OP_TEXT, b"a" * 40000, fin=False))
        c.send(frame(OP_CONT, b"b" * 20000, fin=False))
        c.send(frame(OP_CONT, b"c" * (MAX - 60000 + 1), fin=True))
        h.expect_close(c, 1009, timeout=3)
    # Many small fragments that never finish.
    with h.handshake(t.port) as c:
        c.send(frame(OP_TEXT, b"z" * 1000, fin=False))
        for _ in range(MAX // 1000):
            try:
                c.send(frame(OP_CONT, b"z" * 1000, fin=False))
            except OSError:
                break
        h.expect_close(c, 1009, timeout=3, reply=False)


def test_max_message_option(t):
    n = t.node("--max-message", "1000", "--close-timeout", "0.5")
    with h.handshake(n.port) as c:
        h.echo(c, "m" * 1000)
        c.send(frame(OP_TEXT, b"m" * 1001))
        h.expect_close(c, 1009)
    with h.handshake(n.port) as c:
        c.send(frame(OP_TEXT, b"m" * 600, fin=False) + frame(OP_CONT, b"m" * 401))
        h.expect_close(c, 1009)


# --- the close handshake --------------------------------------------------------------------


def test_client_close_echoed(t):
    for code in (1000, 1001, 1002, 1011, 3000, 4000, 4999):
        with h.handshake(t.port) as c:
            c.send(h.close_frame(code, b"see you"))
            h.expect_close(c, code, reply=False)


def test_empty_close(t):
    with h.handshake(t.port) as c:
        c.send(frame(OP_CLOSE, b""))
        h.expect_close(c, None, reply=False)


def test_close_with_utf8_reason(t):
    with h.handshake(t.port) as c:
        c.send(h.close_frame(1000, "bye 👋 ".encode() * 10))  # 2 + 120 bytes
        h.expect_close(c, 1000, reply=False)


def test_client_close_then_prompt_tcp_close(t):
    # Once both close frames have crossed, the server closes TCP at once instead of waiting for
    # the close timeout. The timeout is long (10 s) so that "at once" and "at the timeout" stay
    # far apart however loaded the machine is: the bound is half of it.
    n = t.node("--close-timeout", "10")
    with h.handshake(n.port) as c:
        h.echo(c, "hi")
        c.send(h.close_frame(1000))
        t0 = time.monotonic()
        f = h.read_close(c)
        h.eq(f.close_code(), 1000, "echoed code")
        how, _, extra = c.wait_closed(12.0)
        secs = time.monotonic() - t0
        h.check(secs < 5.0, f"TCP closed {secs:.2f} s after the close handshake with "
                            "--close-timeout 10 (expected at once)")
        h.eq(extra, 0, "bytes after the close frame")


def test_nothing_after_close(t):
    # Data frames after the client's close are not answered.
    with h.handshake(t.port) as c:
        c.send(h.close_frame(1000) + frame(OP_TEXT, b"late") + frame(OP_PING, b"late"))
        f = h.read_close(c)
        h.eq(f.close_code(), 1000, "echoed code")
        how, secs, extra = c.wait_closed(3.0)
        h.eq(extra, 0, "bytes sent by the server after its close frame")


def test_server_close_timeout(t):
    # After an error close the server waits at most --close-timeout for our close.
    n = t.node("--close-timeout", "1")
    with h.handshake(n.port) as c:
        c.send(frame(OP_TEXT, b"x", rsv=4))
        f = h.read_close(c)
        h.eq(f.close_code(), 1002, "close code")
        how, secs, extra = c.wait_closed(3.0)
        h.check(secs < 2.5, f"TCP closed {secs:.2f} s after the close frame with --close-timeout 1")


def test_sigterm_closes_with_1001(t):
    n = t.node()
    conns = [h.handshake(n.port) for _ in range(3)]
    try:
        for c in conns:
            h.echo(c, "before shutdown")
        n.signal(signal.SIGTERM)
        for c in conns:
            f = h.read_close(c, timeout=3)
            h.eq(f.close_code(), 1001, "close code on SIGTERM")
            c.send(h.close_frame(1001))
        for c in conns:
            c.wait_closed(2.0)
        status = n.wait_exit(3.0)
        h.check(status is not None, "node still running 3 s after SIGTERM with clients closed")
        h.eq(status, 0, "exit status")
        n.stopped = True
        n.check_log()
    finally:
        for c in conns:
            c.close()


def test_sigint_with_silent_client(t):
    # The client never answers the 1001: the node still exits 0 within a couple of seconds.
    n = t.node("--close-timeout", "0.5")
    with h.handshake(n.port) as c:
        h.echo(c, "hello")
        elapsed = n.stop(sig=signal.SIGINT, timeout=3.0)
        f = h.read_close(c, timeout=1)
        h.eq(f.close_code(), 1001, "close code on SIGINT")
        h.check(elapsed < 3.0, f"exit took {elapsed:.2f} s")


def unread(conn):
    """Bytes that have arrived on conn's socket and not been read (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(conn.sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def test_sigterm_with_stuck_clients(t):
    # Default settings (close timeout 2 s): a client still sending its request head, one that
    # does not read while its output is queued, and one that never answers the close must not
    # keep the node from exiting within a couple of seconds.
    n = t.node()
    half = h.Conn(n.port)
    half.send(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
    stuck = h.handshake(n.port, rcvbuf=4096)
    silent = h.handshake(n.port)
    try:
        for _ in range(10):
            stuck.send(frame(OP_TEXT, b"q" * 50000))
        h.echo(silent, "hello")
        # Wait until the node is echoing to the stuck client: its first echo (50000 bytes) can
        # never fit the 4 KiB it reads into, so from then on output is queued for it.
        deadline = time.monotonic() + 5.0
        while unread(stuck) == 0:
            h.check(time.monotonic() < deadline, "the node echoed nothing to the stuck client "
                                                 "within 5 s")
            time.sleep(0.01)
        elapsed = n.stop(timeout=4.0)
        h.check(elapsed < 4.0, f"exit took {elapsed:.2f} s")
        f = h.read_close(silent, timeout=1)
        h.eq(f.close_code(), 1001, "close code on SIGTERM")
    finally:
        for c in (half, stuck, silent):
            c.close()


# --- slow, silent and vanishing clients -----------------------------------------------------


def test_backpressure_disconnects_slow_reader(t):
    n = t.node("--max-output", "65536")
    c = h.handshake(n.port, rcvbuf=4096)
    try:
        h.echo(c, "before")
        msg = frame(OP_TEXT, b"x" * 60000, mask=b"\x11\x22\x33\x44")
        sock = c.sock
        sock.settimeout(0.2)
        t0 = time.monotonic()
        sent, off, blocked, ended = 0, 0, 0.0, None
        # Send echo requests without reading until the server drops us, our sends stay blocked
        # for 1.5 s, 64 MiB have gone, or 10 s have passed.
        while ended is None and sent < (64 << 20) and blocked < 1.5 and time.monotonic() - t0 < 10:
            try:
                k = sock.send(memoryview(msg)[off:])
            except socket.timeout:
                blocked += 0.2
                continue
            except (BrokenPipeError, ConnectionResetError) as e:
                ended = f"send failed: {e}"
                break
            blocked = 0.0
            sent += k
            off = (off + k) % len(msg)
        # Then watch the socket's TCP state without reading anything.
        deadline = time.monotonic() + 5.0
        while ended is None and time.monotonic() < deadline:
            state = c.tcp_state()
            if state in (h.TCP_CLOSE_WAIT, h.TCP_CLOSE):
                ended = f"tcp state {state}"
                break
            time.sleep(0.05)
        h.check(ended is not None,
                f"connection still open after sending {sent} bytes without reading "
                f"(tcp state {c.tcp_state()})")
    finally:
        c.close()
    health(n.port)
    with h.handshake(n.port) as c2:
        h.echo(c2, "after the slow reader")
        h.echo(c2, b"y" * 60000)


def test_idle_ping_then_drop(t):
    n = t.node("--ping-interval", "0.5", "--pong-timeout", "0.5", "--close-timeout", "0.5")
    with h.handshake(n.port) as c:
        t0 = time.monotonic()
        f = h.read_frame(c, timeout=3.0)
        waited = time.monotonic() - t0
        h.eq(f.opcode, OP_PING, "first frame on an idle connection")
        h.check(waited > 0.3, f"ping after only {waited:.2f} s with --ping-interval 0.5")
        how, secs, extra = c.wait_closed(3.0)
        h.check(secs <= 2.0, f"connection dropped {secs:.2f} s after an unanswered ping")


def test_idle_ping_answered_stays_open(t):
    n = t.node("--ping-interval", "0.5", "--pong-timeout", "0.5")
    with h.handshake(n.port) as c:
        pings = 0
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            try:
                f = h.read_frame(c, timeout=end - time.monotonic())
            except socket.timeout:
                break
            except h.Closed as e:
                raise h.Failure(f"connection closed ({e}) although every ping got a pong")
            h.eq(f.opcode, OP_PING, "frame on an idle connection")
            pings += 1
            c.send(frame(OP_PONG, f.payload))
        h.check(pings >= 2, f"only {pings} pings in 3 s with --ping-interval 0.5")
        h.echo(c, "still here")


def test_any_data_answers_a_ping(t):
    # --pong-timeout counts data of any kind: a client that answers each ping with a text
    # message instead of a pong is alive too.
    n = t.node("--ping-interval", "0.5", "--pong-timeout", "0.5")
    with h.handshake(n.port) as c:
        pings = sent = echoed = 0
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            try:
                f = h.read_frame(c, timeout=end - time.monotonic())
            except socket.timeout:
                break
            except h.Closed as e:
                raise h.Failure(f"connection closed ({e}) although each ping got a message")
            if f.opcode == OP_PING:
                pings += 1
                c.send(frame(OP_TEXT, b"alive"))
                sent += 1
            else:
                h.eq((f.opcode, f.payload), (OP_TEXT, b"alive"), "echo")
                echoed += 1
        h.check(pings >= 2, f"only {pings} pings in 2.5 s with --ping-interval 0.5")
        # The echoes of the last "alive" may still be on their way: read them first.
        while echoed < sent:
            f = h.read_frame(c, timeout=3)
            if f.opcode == OP_PING:
                c.send(frame(OP_PONG, f.payload))
                continue
            h.eq((f.opcode, f.payload), (OP_TEXT, b"alive"), "a late echo")
            echoed += 1
        h.echo(c, "still here")


def test_abrupt_disconnects(t):
    # Clients that vanish mid-handshake, mid-frame or with a reset must not hurt the node.
    port = t.port
    for i in range(20):
        c = h.Conn(port)
        c.send(h.upgrade_request()[: 10 + i])
        c.close()
    for i in range(20):
        c = h.handshake(port)
        c.send(frame(OP_TEXT, b"x" * 1000)[: 3 + i * 40])
        if i % 2:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    for i in range(10):
        c = h.handshake(port)
        c.send(frame(OP_TEXT, b"y" * 50000))  # its echo is in flight when we go
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    # The node lets every one of those connections go (it noticed each client leave).
    h.wait_released(t.shared, 5.0)
    health(port)
    with h.handshake(port) as c:
        h.echo(c, "survivor")


def test_many_connections(t):
    conns = []
    try:
        for _ in range(200):
            conns.append(h.handshake(t.port))
        for i, c in enumerate(conns):
            c.send(frame(OP_TEXT, f"client {i}".encode()))
        for i, c in enumerate(conns):
            h.eq(h.read_message(c), (OP_TEXT, f"client {i}".encode()), "echo")
    finally:
        for c in conns:
            c.close()
    health(t.port)


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)]

if __name__ == "__main__":
    h.main(TESTS, shared_args=SHARED)
