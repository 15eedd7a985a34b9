#!/usr/bin/python3
"""Switchboard under a client's burst: one client's flood of requests, on a node of a cluster
on a real Redis, must not stall the node's event loop or its liveness in the cluster, so the
other nodes never take it for dead and nobody can claim its peers' IDs. The flooders are raw
sockets that write as fast as the node takes their bytes while a thread counts the answers;
the victims are Debian's python3-websockets. Usage: test_overload.py PATH-TO-SWITCHBOARD"""

import asyncio
import os
import select
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check_error, same_json, strict_loads  # noqa: E402

from client import close_all  # noqa: E402
from test_cluster import (  # noqa: E402
    Inbox,
    inbox_relay_ok,
    note,
    off_loop,
    open_peer,
    start_nodes,
    start_redis,
    try_claim,
)

# Ten times the 50,000 re-joins (about 2 MiB) that froze a node for 16-19 s before.
BURST = 500_000
# How long the flood runs at most: longer than the liveness key lives (--node-ttl, 3 s), so a
# node whose refresh stalls is swept meanwhile.
FLOOD_SECS = 12.0
ROOM = "flood-room-0001"


class Flooder:
    """A raw WebSocket client that writes burst (whole frames) as fast as the node reads it, for
    at most secs seconds, while a thread reads the node's answers and counts them by type."""

    def __init__(self, port, name):
        self.name = name
        self.conn = h.handshake(port)
        op, raw = h.read_message(self.conn)
        welcome = strict_loads(raw, f"{name}: welcome")
        h.eq(welcome.get("type"), "welcome", f"{name}: first message")
        self.id = welcome["id"]
        self.sent = 0          # bytes written
        self.counts = {}       # answer type (error code for errors) -> count
        self.closed = None     # why the reader stopped, when the node closed the connection
        self.reader_error = None
        self._stop = threading.Event()

    def start(self, burst, secs):
        self._writer = threading.Thread(target=self._write, args=(burst, secs), daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._writer.start()
        self._reader.start()

    def _write(self, burst, secs):
        sock = self.conn.sock
        view = memoryview(burst)
        deadline = time.monotonic() + secs
        while self.sent < len(view) and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            _, writable, _ = select.select([], [sock], [], min(left, 0.2))
            if not writable:
                continue
            try:
                self.sent += sock.send(view[self.sent:self.sent + (1 << 20)], socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return

    # The answers a flood gets by the thousand, known by how the node starts them: reading
    # them must cost the test less than writing them costs the node, or the node drops the
    # test as a slow reader. Every 1000th of them, and anything else, is parsed in full.
    PREFIXES = {b'{"type":"joined",': "joined",
                b'{"type":"error","code":"peer-unavailable",': "peer-unavailable"}

    def _classify(self, payload):
        self._seen = getattr(self, "_seen", 0) + 1
        for prefix, key in self.PREFIXES.items():
            if payload.startswith(prefix) and self._seen % 1000:
                return key
        msg = strict_loads(payload, f"{self.name}: answer")
        return msg.get("code") if msg.get("type") == "error" else msg.get("type")

    def _read(self):
        """Counts the server's frames by message type; unmasked frames of at most 64 KiB."""
        sock, buf = self.conn.sock, bytearray()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([sock], [], [], 0.2)
                if not readable:
                    continue
                data = sock.recv(1 << 20)
                if not data:
                    self.closed = "EOF"
                    return
                buf += data
                pos = 0
                while len(buf) - pos >= 2:
                    op, n, hlen = buf[pos] & 0xF, buf[pos + 1] & 0x7F, 2
                    if n == 126:
                        if len(buf) - pos < 4:
                            break
                        n, hlen = struct.unpack_from("!H", buf, pos + 2)[0], 4
                    elif n == 127:
                        raise h.Failure(f"{self.name}: a 64-bit frame length from the node")
                    if len(buf) - pos < hlen + n:
                        break
                    payload = bytes(buf[pos + hlen:pos + hlen + n])
                    pos += hlen + n
                    if op == h.OP_CLOSE:
                        self.closed = f"close {struct.unpack('!H', payload[:2])[0]}"
                        return
                    if op != h.OP_TEXT:
                        continue
                    key = self._classify(payload)
                    self.counts[key] = self.counts.get(key, 0) + 1
                del buf[:pos]
        except OSError as e:
            self.closed = f"socket error {e}"
        except Exception as e:  # a Failure from strict_loads
            self.reader_error = e

    def stop(self):
        self._stop.set()
        self._writer.join(5)
        self._reader.join(5)
        self.conn.close()
        if self.reader_error is not None:
            raise self.reader_error


def repeat(message, count):
    """count copies of one masked client text frame."""
    return h.frame(h.OP_TEXT, message, mask=b"\x11\x22\x33\x44") * count


def test_burst_of_rejoins_and_relays_cannot_stall_the_node(t):
    """A peer that re-joins its room 500,000 times in one burst (20 MiB), and another that
    floods relays to an absent peer, while the test watches, every 100 ms, that the node
    answers /healthz within a second, that its liveness key never expires, and that its
    peers' IDs stay its own; afterwards nobody on the other node heard a false peer-left."""
    redis = start_redis(t)
    # The flooders read every answer, but a loaded test machine may read slower than the node
    # writes: the slow-reader cut-off (tested in the relay suite) must not end the flood here.
    n1, n2 = start_nodes(t, redis, count=2, args=("--max-output", "64m"))
    rejoins = repeat(f'{{"type":"join","room":"{ROOM}"}}', BURST)
    relays = repeat('{"type":"candidate","to":"nobody-here","payload":{"candidate":""}}', BURST)
    h.check(len(rejoins) >= 20 << 20, f"the re-join burst is only {len(rejoins)} bytes")

    async def run():
        victim = await open_peer(n1.port, id="victim", name="victim", node="n1")
        member = await open_peer(n2.port, id="member", name="member", node="n2")
        await victim.send({"type": "join", "room": ROOM})
        await victim.expect({"type": "joined", "room": ROOM, "peers": []}, "victim joins")
        await member.send({"type": "join", "room": ROOM})
        await member.expect({"type": "joined", "room": ROOM, "peers": ["victim"]},
                            "member joins")
        await victim.expect({"type": "peer-joined", "room": ROOM, "peer": "member"},
                            "victim hears member")

        joiner = await off_loop(Flooder, n1.port, "joiner")
        relayer = await off_loop(Flooder, n1.port, "relayer")
        joiner.conn.send(h.frame(h.OP_TEXT, f'{{"type":"join","room":"{ROOM}","mid":1}}'))
        vin, min_ = Inbox(victim), Inbox(member)
        await min_.wait(lambda: len(min_.events) == 1, 3, "peer-joined for the joiner")
        same_json(min_.events[0], {"type": "peer-joined", "room": ROOM, "peer": joiner.id},
                  "member hears the joiner")

        def probe():
            t0 = time.monotonic()
            status, _ = h.get_status(n1.port, "/healthz", timeout=1.0)
            took = time.monotonic() - t0
            pttl = redis.command("PTTL", "sb:alive:n1")
            owner = redis.command("GET", "sb:id:victim")
            return status, took, pttl, owner

        joiner.start(rejoins, FLOOD_SECS)
        relayer.start(relays, FLOOD_SECS)
        worst_health, lowest_pttl, probes = 0.0, None, 0
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < FLOOD_SECS and (joiner.sent < len(rejoins) or
                                                         relayer.sent < len(relays)):
                status, took, pttl, owner = await off_loop(probe)
                probes += 1
                at = f"{time.monotonic() - t0:.1f} s into the flood"
                h.eq(status, 200, f"/healthz of the flooded node {at}")
                h.eq(owner, b"n1", f"the owner of victim's ID {at}")
                h.check(pttl > 0, f"the flooded node's liveness key expired {at} (PTTL {pttl})")
                worst_health = max(worst_health, took)
                lowest_pttl = pttl if lowest_pttl is None else min(lowest_pttl, pttl)
                await asyncio.sleep(0.1)
            # The victim and the member still reach each other across the nodes, mid-flood.
            await inbox_relay_ok(vin, min_, "victim to member during the flood")
            await inbox_relay_ok(min_, vin, "member to victim during the flood")
        finally:
            flood_secs = time.monotonic() - t0
            await off_loop(joiner.stop)
            await off_loop(relayer.stop)

        h.check(probes >= 20, f"only {probes} probes during the flood")
        h.check(worst_health < 1.0, f"/healthz took {worst_health:.2f} s")
        for f in (joiner, relayer):
            h.check(f.closed is None, f"{f.name}: the node closed it ({f.closed})")
        joined = joiner.counts.get("joined", 0)
        unavailable = relayer.counts.get("peer-unavailable", 0)
        h.check(joined > 100, f"only {joined} re-joins answered: {joiner.counts}")
        h.eq(set(joiner.counts), {"joined"}, "the joiner's answers")
        h.check(unavailable > 100, f"only {unavailable} relays answered: {relayer.counts}")
        h.eq(set(relayer.counts), {"peer-unavailable"}, "the relayer's answers")
        note(f"flood of {flood_secs:.1f} s: {joiner.sent >> 20} MiB of re-joins and "
             f"{relayer.sent >> 20} MiB of relays written; {joined} re-joins "
             f"({joined / flood_secs:.0f}/s) and {unavailable} relays "
             f"({unavailable / flood_secs:.0f}/s) answered; /healthz within "
             f"{worst_health * 1000:.0f} ms, liveness key PTTL at least {lowest_pttl} ms "
             f"(--node-ttl 3 s) over {probes} probes")

        # The joiner's disconnect is the only departure the member hears of.
        await min_.wait(lambda: len(min_.events) == 2, 3, "peer-left for the joiner")
        same_json(min_.events[1], {"type": "peer-left", "room": ROOM, "peer": joiner.id},
                  "member hears the joiner leave")
        await vin.stop()
        await min_.stop()
        await member.silence("no other room event")
        h.eq(await try_claim(n2.port, "victim", "a thief on n2"), None, "victim's ID on n2")
        await close_all(victim, member)

    h.arun(run(), timeout=60)
    for n in (n1, n2):
        h.check("stopped refreshing its liveness" not in n.log(),
                f"{n.name} swept a live node\n" + n.log_tail())


TESTS = [
    test_burst_of_rejoins_and_relays_cannot_stall_the_node,
]

if __name__ == "__main__":
    h.main(TESTS, test_timeout=90.0, echo=False)
