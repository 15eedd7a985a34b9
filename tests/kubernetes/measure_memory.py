#!/usr/bin/python3
"""Measures what deploy/kubernetes/deployment.yaml's memory requests and limits rest on: the
resident memory (VmRSS, and VmHWM, its peak) of one node of a cluster, and of its Redis, and the
node's CPU time, idle and then holding N WebSocket clients that each joined a room and relayed messages.

    /usr/bin/python3 tests/kubernetes/measure_memory.py [BINARY] [N]

BINARY defaults to build/switchboard (the Release build, as in the image), N to 5000. Everything
runs on 127.0.0.1: a redis-server the script starts on a free port, the node, and the clients
(Debian's python3-websockets, in this process). Not part of `make test`: a tool to re-measure when
the node changes.
"""
import asyncio
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as h  # noqa: E402
import websockets  # noqa: E402


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) // 1024  # MiB
    return out


async def load(port, n, rooms):
    clients = []
    sem = asyncio.Semaphore(200)

    async def one(i):
        async with sem:
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws?id=m{i}",
                                          subprotocols=["switchboard.v1"], ping_interval=None,
                                          open_timeout=30, max_queue=None)
            json.loads(await ws.recv())  # welcome
            await ws.send(json.dumps({"type": "join", "room": f"r{i % rooms}", "mid": "j"}))
            while json.loads(await ws.recv()).get("type") != "joined":
                pass
            clients.append(ws)

    await asyncio.gather(*(one(i) for i in range(n)))
    # Every client sends one offer to the next one; every message is acked.
    for i, ws in enumerate(clients):
        await ws.send(json.dumps({"type": "offer", "to": f"m{(i + 1) % n}", "payload": "x" * 200,
                                  "mid": f"o{i}"}))
    await asyncio.sleep(2)  # let the node's queues drain before reading its memory
    return clients


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "switchboard")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    redis = h.RedisServer().start()
    node = h.Node(binary, ["--redis", redis.url(), "--node-id", "measure"], echo=False).start()
    try:
        h.wait_status(node.port, "/readyz", 200, 10)
        time.sleep(1)
        c0 = cpu_seconds(node.proc.pid)
        time.sleep(5)
        idle, ridle = status(node.proc.pid), status(redis.proc.pid)
        print(f"idle: node {idle} MiB, redis {ridle} MiB, node CPU "
              f"{(cpu_seconds(node.proc.pid) - c0) / 5 * 1000:.0f} millicores", flush=True)
        c0 = cpu_seconds(node.proc.pid)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        t0 = time.monotonic()
        clients = loop.run_until_complete(load(node.port, n, rooms=max(1, n // 4)))
        busy, rbusy = status(node.proc.pid), status(redis.proc.pid)
        print(f"{n} clients in {n // 4} rooms of 4, one relay each ({time.monotonic() - t0:.1f} s): "
              f"node {busy} MiB, redis {rbusy} MiB", flush=True)
        print(f"node CPU for all that: {cpu_seconds(node.proc.pid) - c0:.2f} s", flush=True)
        per = (busy["VmRSS"] - idle["VmRSS"]) * 1024 / n
        print(f"about {per:.1f} KiB per connection", flush=True)
        loop.run_until_complete(asyncio.gather(*(c.close() for c in clients),
                                               return_exceptions=True))
        loop.close()
    finally:
        node.kill()
        redis.stop()
        node.remove_log()
        redis.remove_log()


if __name__ == "__main__":
    main()
