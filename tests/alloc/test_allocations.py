#!/usr/bin/python3
"""Heap allocations per relayed message, counted: two nodes (the Release build) on one real
redis-server, each with tests/alloc's counting allocator preloaded; one peer on each relays
10,000 messages to the other after a warm-up, and the allocations both nodes made meanwhile are
divided by the messages. Every message must be acked and delivered. The figure is printed, and
must stay at most ALLOWED. Nothing on the path allocates per message (pools, and the streams'
buffers: base/stream.c); ALLOWED leaves room only for the nodes' upkeep meanwhile (a liveness
script every second or so), not for one allocation per message anywhere.
Usage: test_allocations.py PATH-TO-SWITCHBOARD PATH-TO-alloc_count.so"""

import asyncio
import json
import os
import re
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402

from test_cluster import cluster_node, open_peer, start_redis  # noqa: E402

WARMUP = 1000
MESSAGES = 10000
WINDOW = 8
ALLOWED = 0.05  # allocations per message, both nodes together: upkeep, a few per second
COUNT_RE = re.compile(r"alloc-count (\d+)")
PRELOAD = None  # the counting allocator, from the command line


def counts(nodes):
    """Asks each node for its count (SIGUSR2) and waits for the new line in its log."""
    out = []
    for n in nodes:
        seen = len(COUNT_RE.findall(n.log()))
        n.signal(signal.SIGUSR2)
        out.append(int(h.eventually(lambda: _newer(n, seen), 5)))
    return out


def _newer(n, seen):
    found = COUNT_RE.findall(n.log())
    h.check(len(found) > seen, "no new alloc-count line yet")
    return found[-1]


async def relay(a, b, count, tag):
    """a sends b count candidates, WINDOW at a time; each is acked to a and delivered to b."""
    payload = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",
               "sdpMid": "0"}
    acked = delivered = 0

    async def receive_acks():
        nonlocal acked
        while acked < count:
            msg = json.loads(await asyncio.wait_for(a.ws.recv(), 10))
            h.eq(msg.get("type"), "ack", f"{tag}: answer to the sender")
            acked += 1
            window.release()

    async def receive_messages():
        nonlocal delivered
        while delivered < count:
            msg = json.loads(await asyncio.wait_for(b.ws.recv(), 10))
            h.eq((msg.get("type"), msg.get("from")), ("candidate", a.id), f"{tag}: delivered")
            delivered += 1

    window = asyncio.Semaphore(WINDOW)
    tasks = [asyncio.create_task(receive_acks()), asyncio.create_task(receive_messages())]
    for i in range(count):
        await window.acquire()
        await a.send({"type": "candidate", "to": b.id, "payload": payload, "mid": f"{tag}{i}"})
    await asyncio.gather(*tasks)
    h.eq((acked, delivered), (count, count), f"{tag}: acked and delivered")


def test_allocations_per_message(t):
    redis = start_redis(t)
    env = {"LD_PRELOAD": PRELOAD}
    n1 = t.node("--redis", redis.url(), "--node-id", "n1", "--ice-servers", "[]", env=env,
                echo=False)
    n2 = t.node("--redis", redis.url(), "--node-id", "n2", "--ice-servers", "[]", env=env,
                echo=False)
    for n in (n1, n2):
        h.wait_status(n.port, "/readyz", 200, 5)

    async def run():
        a = await open_peer(n1.port, id="alloc-a")
        b = await open_peer(n2.port, id="alloc-b")
        await relay(a, b, WARMUP, "w")
        before = counts((n1, n2))
        await relay(a, b, MESSAGES, "m")
        after = counts((n1, n2))
        per = [(y - x) / MESSAGES for x, y in zip(before, after)]
        total = sum(per)
        print(f"  allocations per message: {total:.2f} (n1, the sender's node, {per[0]:.2f}; "
              f"n2, the recipient's, {per[1]:.2f})", flush=True)
        h.check(total <= ALLOWED, f"{total:.2f} allocations per message, more than {ALLOWED}")
        await a.close()
        await b.close()

    h.arun(run(), timeout=120)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    PRELOAD = os.path.abspath(sys.argv.pop(2))
    h.main([test_allocations_per_message], test_timeout=150.0, echo=False)
