"""The protocol v1 test client shared by the relay and cluster suites: a Peer over Debian's
python3-websockets, with strict checks of every message it reads."""
import asyncio
import json
import socket
import struct

import harness as h
from harness import check_error, same_json, strict_loads
import websockets
from websockets.exceptions import ConnectionClosed

QUIET = 0.3  # seconds of silence that count as "nothing arrives"


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def connect(port, query="", subprotocols=(h.SUBPROTOCOL,), **kw):
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 3)
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_queue", 4096)
    sub = list(subprotocols) if subprotocols else None
    return websockets.connect(f"ws://{h.HOST}:{port}/ws{query}", subprotocols=sub, **kw)


class Peer:
    """A connected client that has had its welcome."""

    def __init__(self, ws, welcome, name=""):
        self.ws = ws
        self.welcome = welcome
        self.id = welcome["id"]
        self.node = welcome["node"]
        self.name = name or self.id

    async def send(self, msg):
        """Sends a dict as compact JSON, or a str exactly as given."""
        await self.ws.send(msg if isinstance(msg, str) else dumps(msg))

    async def recv_raw(self, timeout=3.0, what="message"):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise h.Failure(f"{self.name}: no {what} within {timeout} s")
        except ConnectionClosed as e:
            raise h.Failure(f"{self.name}: connection closed while waiting for {what} ({e})")
        h.check(isinstance(raw, str), f"{self.name}: binary message from the server: {raw[:40]!r}")
        return raw

    async def recv(self, timeout=3.0, what="message"):
        return strict_loads(await self.recv_raw(timeout, what), f"{self.name}: {what}")

    async def expect(self, want, what, timeout=3.0):
        got = await self.recv(timeout, what)
        same_json(got, want, f"{self.name}: {what}")
        return got

    async def expect_error(self, code, what, timeout=3.0, **context):
        got = await self.recv(timeout, what)
        check_error(got, code, f"{self.name}: {what}", **context)
        return got

    async def expect_set(self, wants, what, timeout=5.0):
        """Receives len(wants) messages and checks they are wants in any order."""
        got = [await self.recv(timeout, f"{what} ({i + 1} of {len(wants)})")
               for i in range(len(wants))]
        h.eq(sorted(map(dumps, got)), sorted(map(dumps, wants)), f"{self.name}: {what}")

    async def silence(self, what, secs=QUIET):
        try:
            got = await asyncio.wait_for(self.ws.recv(), secs)
        except asyncio.TimeoutError:
            return
        except ConnectionClosed as e:
            raise h.Failure(f"{self.name}: connection closed; expected silence ({what}) ({e})")
        raise h.Failure(f"{self.name}: expected nothing ({what}), got {got!r}")

    async def close(self):
        await self.ws.close()


async def close_all(*peers):
    await asyncio.gather(*(p.ws.close() for p in peers), return_exceptions=True)


def rst(ws):
    """Drops a websockets connection abruptly: TCP RST, no close frame."""
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def expect_refused(port, query, code, close_code, what):
    """Connects with query; the server must send exactly one error with code, then close."""
    ws = await connect(port, query)
    try:
        try:
            raw = await asyncio.wait_for(ws.recv(), 3)
        except ConnectionClosed as e:
            raise h.Failure(f"{what}: closed ({e}) without an error message first")
        msg = strict_loads(raw, what)
        check_error(msg, code, what)
        try:
            got = await asyncio.wait_for(ws.recv(), 3)
            raise h.Failure(f"{what}: expected close {close_code}, got a message {got!r}")
        except ConnectionClosed as e:
            h.check(e.rcvd is not None, f"{what}: dropped without a close frame ({e})")
            h.eq(e.rcvd.code, close_code, f"{what}: close code")
        except asyncio.TimeoutError:
            raise h.Failure(f"{what}: no close within 3 s after the {code} error")
    finally:
        await ws.close()


def requests_in_one_write(port, id, requests, timeout=5.0):
    """Opens a raw WebSocket as id, waits for its welcome, then writes every request (dicts) in a
    single send(), so that the node reads them together, and returns the first len(requests)
    messages it answers with. Returns (conn, answers); the caller closes conn."""
    conn = h.Conn(port, timeout=timeout)
    key = h.new_key()
    conn.send(h.upgrade_request(path=f"/ws?id={id}", key=key))
    h.check_101(h.read_response(conn, timeout=timeout, body=False), key)
    op, raw = h.read_message(conn, timeout=timeout)
    welcome = strict_loads(raw, f"{id}: welcome")
    h.eq((welcome.get("type"), welcome.get("id")), ("welcome", id), f"{id}: welcome")
    conn.send(b"".join(h.frame(h.OP_TEXT, dumps(r)) for r in requests))
    answers = []
    for i in range(len(requests)):
        op, raw = h.read_message(conn, timeout=timeout)
        answers.append(strict_loads(raw, f"{id}: answer {i + 1}"))
    return conn, answers
