#!/usr/bin/python3
"""Switchboard's echo node driven by an independent, strict WebSocket client (Debian's
python3-websockets 10.4, legacy asyncio API). Usage: test_ws_client.py PATH-TO-SWITCHBOARD"""

import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

import websockets  # noqa: E402
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK  # noqa: E402

SHARED = ["--log-level", "debug"]
MAX = 65536


def connect(port, **kw):
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 3)
    kw.setdefault("ping_interval", None)  # the tests send their own pings
    return websockets.connect(f"ws://{h.HOST}:{port}/ws", **kw)


async def expect_closed_by_server(ws, code, timeout=5.0):
    """Waits for the server to close the connection with code (received close frame)."""
    try:
        got = await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as e:
        h.check(e.rcvd is not None, f"connection dropped without a close frame ({e})")
        h.eq(e.rcvd.code, code, f"close code received ({e})")
        h.eq(ws.close_code, code, "ws.close_code")
        return e
    except asyncio.TimeoutError:
        raise h.Failure(f"no close within {timeout} s")
    raise h.Failure(f"expected close {code}, got a message {got[:40]!r}")


async def echo(ws, msg):
    await ws.send(msg)
    got = await asyncio.wait_for(ws.recv(), 5)
    h.check(type(got) is type(msg), f"echo of a {type(msg).__name__} came back as {type(got).__name__}")
    h.check(got == msg, f"echo differs: sent {len(msg)} {msg[:30]!r}, got {len(got)} {got[:30]!r}")


def test_subprotocol(t):
    async def run():
        async with connect(t.port, subprotocols=[h.SUBPROTOCOL]) as ws:
            h.eq(ws.subprotocol, h.SUBPROTOCOL, "subprotocol when offered")
            await echo(ws, "with subprotocol")
        async with connect(t.port, subprotocols=["chat", h.SUBPROTOCOL]) as ws:
            h.eq(ws.subprotocol, h.SUBPROTOCOL, "subprotocol when offered second")
        async with connect(t.port) as ws:
            h.eq(ws.subprotocol, None, "subprotocol when none offered")
            await echo(ws, "without subprotocol")
        async with connect(t.port, subprotocols=["chat"]) as ws:
            h.eq(ws.subprotocol, None, "subprotocol when another one is offered")
    h.arun(run())


def test_no_extension_negotiated(t):
    async def run():
        async with connect(t.port) as ws:  # offers permessage-deflate by default
            h.eq(ws.extensions, [], "negotiated extensions")
            await echo(ws, "uncompressed " * 100)
    h.arun(run())


def test_echo_text(t):
    async def run():
        async with connect(t.port) as ws:
            for msg in ["hello", "", "Grüße, ça va? Ελληνικά русский 日本語",
                        "emoji 😀🎉👩‍👩‍👧 and 𝄞", "\x00\x7f\u07ff\u0800\uffff\U00010000\U0010ffff"]:
                await echo(ws, msg)
    h.arun(run())


def test_echo_at_the_limit(t):
    async def run():
        async with connect(t.port) as ws:
            await echo(ws, "a" * MAX)
            await echo(ws, "😀" * (MAX // 4))  # 65536 bytes of 4-byte sequences
            await echo(ws, "é" * (MAX // 2))
    h.arun(run())


def test_fragmented_send(t):
    async def run():
        async with connect(t.port) as ws:
            parts = ["frag", "ment", "ed 😀", ""]
            await ws.send(parts)  # sent as a text frame and continuation frames
            got = await asyncio.wait_for(ws.recv(), 5)
            h.eq(got, "".join(parts), "reassembled message")
    h.arun(run())


def test_order_of_100_messages(t):
    async def run():
        async with connect(t.port) as ws:
            msgs = [f"message {i} " + "x" * (i * 37) for i in range(100)]
            for m in msgs:
                await ws.send(m)
            for i, m in enumerate(msgs):
                got = await asyncio.wait_for(ws.recv(), 5)
                h.check(got == m, f"message {i} out of order or changed: {got[:20]!r}")
    h.arun(run())


def test_ping(t):
    async def run():
        async with connect(t.port) as ws:
            for payload in (b"", b"hello", os.urandom(125)):
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, 3)
            await echo(ws, "after pings")
    h.arun(run())


def test_too_big_1009(t):
    async def run():
        async with connect(t.port) as ws:
            await ws.send("b" * (MAX + 1))
            e = await expect_closed_by_server(ws, 1009)
            h.check(isinstance(e, ConnectionClosedError), f"{type(e).__name__} for 1009")
    h.arun(run())


def test_binary_1003(t):
    async def run():
        async with connect(t.port) as ws:
            await ws.send(b"\x00\x01binary")
            await expect_closed_by_server(ws, 1003)
    h.arun(run())


def test_clean_close(t):
    # websockets waits for the server to close TCP (or its close_timeout). Both timeouts are
    # long (10 s) so that a prompt close and one at a timeout stay far apart however loaded the
    # machine is: the bound is half of them.
    n = t.node("--close-timeout", "10")

    async def run():
        for code, reason in ((1000, ""), (4000, "custom code"), (1000, "done 👋")):
            async with connect(n.port, close_timeout=10) as ws:
                await echo(ws, "before close")
                t0 = time.monotonic()
                await ws.close(code, reason)
                took = time.monotonic() - t0
                h.eq(ws.close_code, code, "close code echoed by the server")
                h.check(took < 5.0, f"closing took {took:.2f} s (expected at once, not at a "
                                    "10 s close timeout)")
                h.check(ws.closed, "closed")
    h.arun(run())


def test_50_concurrent_clients(t):
    async def client(i):
        async with connect(t.port) as ws:
            for j in range(10):
                await echo(ws, f"client {i} message {j} " + "z" * (i * 13 + j))
        return ws.close_code

    async def run():
        codes = await asyncio.gather(*(client(i) for i in range(50)))
        h.check(all(c == 1000 for c in codes), f"close codes {set(codes)}")
    h.arun(run(), timeout=20)


def test_sigterm_closes_clients_with_1001(t):
    n = t.node()

    async def run():
        clients = [await connect(n.port) for _ in range(5)]
        for i, ws in enumerate(clients):
            await echo(ws, f"client {i}")
        t0 = time.monotonic()
        n.signal(signal.SIGTERM)
        for i, ws in enumerate(clients):
            try:
                got = await asyncio.wait_for(ws.recv(), 3)
                raise h.Failure(f"client {i} got a message {got!r} instead of a close")
            except ConnectionClosed as e:
                h.check(e.rcvd is not None, f"client {i}: no close frame ({e})")
                h.eq(e.rcvd.code, 1001, f"client {i} close code")
                h.check(isinstance(e, ConnectionClosedOK), f"client {i}: {type(e).__name__}")
        for ws in clients:
            await ws.wait_closed()
        return time.monotonic() - t0

    h.arun(run(), timeout=10)
    status = n.wait_exit(3.0)
    h.check(status is not None, "node still running 3 s after SIGTERM")
    h.eq(status, 0, "exit status after SIGTERM")
    n.stopped = True
    n.check_log()


def test_still_healthy_at_the_end(t):
    async def run():
        async with connect(t.port, subprotocols=[h.SUBPROTOCOL]) as ws:
            await echo(ws, "the end")
    h.arun(run())


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)]

if __name__ == "__main__":
    h.main(TESTS, shared_args=SHARED)
