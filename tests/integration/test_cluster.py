#!/usr/bin/python3
"""Switchboard as a cluster (protocol v1, proto/PROTOCOL.md): several nodes on one real Redis
(Debian's redis-server, started by each test on a free port and stopped after it), checked from
the clients' side. Relaying and rooms across nodes, peer IDs held cluster-wide, HAProxy in front,
Redis restarted under traffic, subscribers killed, a node killed outright, an ID raced during an
outage, what an idle cluster of 3000 peers costs Redis, and start-up errors. Clients are Debian's
python3-websockets 10.4 (legacy asyncio API) and raw sockets. Usage: test_cluster.py
PATH-TO-SWITCHBOARD"""

import asyncio
import json
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check_error, same_json, strict_loads  # noqa: E402

import redis_cluster as rc  # noqa: E402
from client import (  # noqa: E402
    QUIET,
    ConnectionClosed,
    Peer,
    close_all,
    connect,
    dumps,
    expect_refused,
    requests_in_one_write,
    rst,
)

# The suites run on one Redis, or, with SB_REDIS=cluster, on a Redis Cluster of three masters with
# a replica each (redis_cluster.py), where the directory's keys carry hash tags
# (node/cluster/dir_rcluster.c).
CLUSTER = os.environ.get("SB_REDIS") == "cluster"

NODE_ARGS = ["--ice-servers", "[]", "--log-level", "info"]
RELAY_TYPES = ("offer", "answer", "candidate", "bye")
NODE_TTL = 3.0  # the node's default --node-ttl


def sorted_peers(msg):
    """A joined message with its peers list sorted (the order of members is not specified)."""
    h.check(isinstance(msg.get("peers"), list), f"joined without a peers list: {msg}")
    return dict(msg, peers=sorted(msg["peers"]))


async def off_loop(fn, *args):
    """Runs a blocking call (Redis, HTTP) in a thread so the clients' readers keep reading."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


# ---------------------------------------------------------------------------------------------
# Clients


async def open_peer(port, id=None, name="", node=None):
    """Connects (asking for id when given), checks the welcome (and that it comes from node,
    when given) and returns a Peer."""
    ws = await connect(port, f"?id={id}" if id is not None else "")
    what = name or id or "peer"
    try:
        raw = await asyncio.wait_for(ws.recv(), 3)
    except asyncio.TimeoutError:
        await ws.close()
        raise h.Failure(f"{what}: no welcome within 3 s")
    except ConnectionClosed as e:
        raise h.Failure(f"{what}: closed before the welcome ({e})")
    msg = strict_loads(raw, f"{what}: welcome")
    h.check(msg.get("type") == "welcome", f"{what}: expected a welcome, got {raw}")
    same_json(msg, {"type": "welcome", "id": id if id is not None else msg.get("id"),
                    "node": node if node is not None else msg.get("node"), "iceServers": []},
              f"{what}: welcome")
    return Peer(ws, msg, name)


async def try_claim(port, name, what):
    """Asks for name once. Returns a Peer when granted, or None when refused with id-taken
    (then checks close 4001)."""
    ws = await connect(port, f"?id={name}")
    try:
        raw = await asyncio.wait_for(ws.recv(), 3)
    except (asyncio.TimeoutError, ConnectionClosed) as e:
        await ws.close()
        raise h.Failure(f"{what}: no answer to ?id={name} ({type(e).__name__}: {e})")
    msg = strict_loads(raw, what)
    if msg.get("type") == "welcome":
        h.eq(msg["id"], name, f"{what}: welcome id")
        return Peer(ws, msg, name)
    check_error(msg, "id-taken", f"{what}: while {name} is held")
    try:
        await asyncio.wait_for(ws.recv(), 3)
        raise h.Failure(f"{what}: a message after id-taken")
    except ConnectionClosed as e:
        h.check(e.rcvd is not None and e.rcvd.code == 4001, f"{what}: close after id-taken: {e}")
    return None


async def reclaim(port, name, what, secs=2.0):
    """Asks for name until it is granted; fails after secs seconds."""
    t0 = time.monotonic()
    while True:
        p = await try_claim(port, name, what)
        if p is not None:
            return p, time.monotonic() - t0
        if time.monotonic() - t0 > secs:
            raise h.Failure(f"{what}: {name} still taken {secs} s later")
        await asyncio.sleep(0.05)


async def relay_ok(a, b, what, mid=None):
    """a sends b an offer with a mid; b gets it exactly, a gets exactly its ack."""
    mid = mid if mid is not None else f"ok-{os.urandom(3).hex()}"
    await a.send({"type": "offer", "to": b.id, "payload": {"check": what}, "mid": mid})
    await b.expect({"type": "offer", "from": a.id, "payload": {"check": what}, "mid": mid},
                   f"relay ({what})")
    await a.expect({"type": "ack", "mid": mid}, f"ack ({what})")


async def all_pairs_relay(peers, what):
    for x in peers:
        for y in peers:
            if x is not y:
                await relay_ok(x, y, f"{what}: {x.name} to {y.name}")


class Inbox:
    """Reads a peer's messages in a background task and files them as they arrive: answers to
    its own messages (anything carrying a mid that is not a relayed message) by mid, relayed
    messages in order of arrival, room events, and the close."""

    def __init__(self, peer):
        self.peer = peer
        self.answers = {}   # mid -> [message, ...]
        self.relayed = []   # relayed messages (with "from"), in order
        self.events = []    # peer-joined / peer-left
        self.other = []
        self.closed = None  # the ConnectionClosed that ended the reader
        self.error = None
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        try:
            while True:
                raw = await self.peer.ws.recv()
                msg = strict_loads(raw, f"{self.peer.name}: message")
                typ = msg.get("type")
                if typ in RELAY_TYPES and "from" in msg:
                    self.relayed.append(msg)
                elif typ in ("peer-joined", "peer-left"):
                    self.events.append(msg)
                elif "mid" in msg:
                    self.answers.setdefault(dumps(msg["mid"]), []).append(msg)
                else:
                    self.other.append(msg)
        except ConnectionClosed as e:
            self.closed = e
        except Exception as e:  # a Failure from strict_loads
            self.error = e

    def answer(self, mid):
        got = self.answers.get(dumps(mid))
        return got[0] if got else None

    def received(self, mid):
        return [m for m in self.relayed if m.get("mid") == mid]

    async def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                raise h.Failure(f"{self.peer.name}: {what} not within {timeout} s")
            await asyncio.sleep(0.01)

    async def wait_answer(self, mid, timeout=3.0):
        await self.wait(lambda: self.answer(mid) is not None, timeout, f"an answer to mid {mid!r}")
        return self.answer(mid)

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, Exception):
            pass
        if self.error is not None:
            raise self.error


async def inbox_relay_ok(src, dst, what):
    """Like relay_ok, for peers whose messages an Inbox is reading."""
    mid = f"ok-{os.urandom(3).hex()}"
    await src.peer.send({"type": "offer", "to": dst.peer.id, "payload": {"check": what},
                         "mid": mid})
    await dst.wait(lambda: dst.received(mid), 3, f"relayed {mid} ({what})")
    same_json(dst.received(mid), [{"type": "offer", "from": src.peer.id,
                                   "payload": {"check": what}, "mid": mid}], f"relay ({what})")
    same_json(await src.wait_answer(mid), {"type": "ack", "mid": mid}, f"ack ({what})")


# ---------------------------------------------------------------------------------------------
# The cluster


def key(kind, name=""):
    """The directory's key (or a peer's channel) of kind for name, as the mode names it."""
    if CLUSTER:
        return {"id": f"sb:{{{name}}}:owner", "resume": f"sb:{{{name}}}:resume",
                "rooms": f"sb:{{{name}}}:rooms", "mbox": f"sb:{{{name}}}:mbox",
                "channel": f"sb:{{{name}}}:ch", "members": f"sb:{{r:{name}}}:members",
                "alive": f"sb:{{n:{name}}}:alive", "ids": f"sb:{{n:{name}}}:ids",
                "nodes": "sb:{sb}:nodes"}[kind]
    return {"id": f"sb:id:{name}", "resume": f"sb:resume:{name}", "rooms": f"sb:rooms:{name}",
            "mbox": f"sb:mbox:{name}", "channel": f"sb:peer:{name}",
            "members": f"sb:members:{name}", "alive": f"sb:alive:{name}",
            "ids": f"sb:node:{name}:ids", "nodes": "sb:nodes"}[kind]


class ClusterRedis(rc.RedisCluster):
    """The Redis Cluster a suite runs on with SB_REDIS=cluster, answering command() as one Redis
    would for what the tests ask: a key's command goes to its slot's master, PUBSUB NUMSUB and
    CHANNELS ask the masters of shard channels, INFO, KEYS and CLIENT KILL or LIST go to every
    master (their answers joined)."""

    def url(self, user=None, password=None):
        cred = f"{user or ''}:{password}@" if password is not None else ""
        return "redis+cluster://" + cred + ",".join(f"{h.HOST}:{m.port}" for m in self.masters())

    def command(self, *args, timeout=5.0):
        verb = args[0].upper()
        sub = args[1].upper() if len(args) > 1 else ""
        if verb == "PUBSUB" and sub == "NUMSUB":
            return self.key_owner(args[2]).command("PUBSUB", "SHARDNUMSUB", args[2])
        if verb == "PUBSUB" and sub == "CHANNELS":
            return [c for m in self.masters() for c in m.command("PUBSUB", "SHARDCHANNELS", args[2])]
        if verb == "KEYS":
            return [k for m in self.masters() for k in m.command(*args, timeout=timeout)]
        if verb == "CLIENT" and sub == "KILL":
            return sum(m.command(*args, timeout=timeout) for m in self.masters())
        if verb == "INFO" or (verb == "CLIENT" and sub == "LIST"):
            return b"\n".join(m.command(*args, timeout=timeout) for m in self.masters())
        if verb in ("CLIENT", "ACL"):  # to every node, replicas too; the first answer
            return [n.command(*args, timeout=timeout) for n in self.nodes if n.alive()][0]
        return self.key_owner(args[1]).command(*args, timeout=timeout)


def start_redis(t, *args, password=None, user=None):
    """One Redis, or (SB_REDIS=cluster) a Redis Cluster whose slots stay served while another
    shard fails over (cluster-require-full-coverage no, as README advises)."""
    if CLUSTER:
        return t.service(ClusterRedis(
            password=password, keep_logs=True,
            args=("--repl-diskless-sync-delay", "0", "--cluster-require-full-coverage", "no")
            + args)).start()
    return t.service(h.RedisServer(args, password=password, user=user)).start()


def cluster_node(t, url, name, *args):
    """A node of this test on the Redis at url, named name (also its .name)."""
    n = t.node("--redis", url, "--node-id", name, *NODE_ARGS, *args, echo=False)
    n.name = name
    return n


def start_nodes(t, redis, count=3, args=(), url=None, ready_within=5.0):
    """count nodes named n1, n2, ... on redis; waits until each answers GET /readyz 200."""
    nodes = [cluster_node(t, url or redis.url(), f"n{i}", *args) for i in range(1, count + 1)]
    for n in nodes:
        h.wait_status(n.port, "/readyz", 200, ready_within)
    return nodes


def readyz(node):
    return h.get_status(node.port, "/readyz")


def hgetall(redis, key):
    flat = redis.command("HGETALL", key)
    return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}


def smembers(redis, key):
    return {m.decode() for m in redis.command("SMEMBERS", key)}


def check_directory(redis, nodes, peers, rooms, what):
    """Redis holds exactly what the cluster should know: peers {id: node name} (every peer ID
    the nodes hold) and rooms {room: {peer: node name}}; every node registered and alive."""
    names = [n.name for n in nodes]
    h.eq(smembers(redis, key("nodes")), set(names), f"{what}: {key('nodes')}")
    for name in names:
        h.eq(redis.command("EXISTS", key("alive", name)), 1, f"{what}: {key('alive', name)}")
        h.eq(smembers(redis, key("ids", name)), {p for p, n in peers.items() if n == name},
             f"{what}: {key('ids', name)}")
    for peer, name in peers.items():
        h.eq(redis.command("GET", key("id", peer)), name.encode(), f"{what}: {key('id', peer)}")
        h.eq(smembers(redis, key("rooms", peer)),
             {r for r, members in rooms.items() if peer in members},
             f"{what}: {key('rooms', peer)}")
    for room, members in rooms.items():
        h.eq(hgetall(redis, key("members", room)), members, f"{what}: {key('members', room)}")


async def wait_gone(redis, key, what, secs=2.0):
    """Waits until key no longer exists in Redis."""
    deadline = time.monotonic() + secs
    while await off_loop(redis.command, "EXISTS", key):
        h.check(time.monotonic() < deadline, f"{what}: {key} still exists {secs} s later")
        await asyncio.sleep(0.02)


async def eventually(fn, timeout, interval=0.02):
    """h.eventually inside a coroutine: retries fn (blocking: it talks to Redis) on a thread
    until it raises no Failure, while the clients' readers keep reading. For what Redis holds
    after a node has already told the clients (a local peer-left, a left answer, an
    unsubscribe): the node writes Redis in the same instant, not before."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await off_loop(fn)
        except h.Failure:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(interval)


def run_to_exit(binary, args, timeout=10.0):
    """Runs the node until it exits by itself; returns (status, output, seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    t0 = time.monotonic()
    try:
        p = subprocess.run([binary] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, env=env, timeout=timeout,
                           preexec_fn=h._die_with_parent)
    except subprocess.TimeoutExpired as e:
        out = ((e.stdout or b"") + (e.stderr or b"")).decode("utf-8", "replace")
        raise h.Failure(f"node still running {timeout} s after start; output:\n{out}")
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    for marker in h.SANITIZER_MARKERS:
        h.check(marker not in out, f"sanitizer report ({marker}) at start-up:\n{out}")
    return p.returncode, out, time.monotonic() - t0


def note(text):
    print(f"  {text}", flush=True)


# ---------------------------------------------------------------------------------------------
# Three nodes on one Redis


def test_relay_across_nodes(t):
    redis = start_redis(t)
    n1, n2, n3 = start_nodes(t, redis)

    async def run():
        a = await open_peer(n1.port, name="a", node="n1")
        b = await open_peer(n2.port, name="b", node="n2")
        c = await open_peer(n3.port, name="c", node="n3")
        # A welcome means the peer's channel is subscribed: Redis says so already.
        for p in (a, b, c):
            numsub = await off_loop(redis.command, "PUBSUB", "NUMSUB", key("channel", p.id))
            h.eq(numsub[1], 1, f"{p.name}: subscribers of its channel when welcomed")
        payloads = {
            "offer": {"type": "offer", "sdp": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"},
            "answer": {"type": "answer", "sdp": "v=0\r\n"},
            "candidate": {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",
                          "sdpMid": "0", "sdpMLineIndex": 0},
            "bye": None,
        }
        for x, y in ((a, b), (b, c), (c, a)):
            for typ in RELAY_TYPES:
                mid = f"{x.name}{y.name}-{typ}"
                await x.send({"type": typ, "to": y.id, "payload": payloads[typ], "mid": mid})
                await y.expect({"type": typ, "from": x.id, "payload": payloads[typ], "mid": mid},
                               f"{typ} from {x.name} ({x.node}) to {y.name} ({y.node})")
                await x.expect({"type": "ack", "mid": mid}, f"ack for {typ} across nodes")
                await y.send({"type": typ, "to": x.id})  # back, without payload or mid
                await x.expect({"type": typ, "from": y.id}, f"{typ} back without payload or mid")
            await x.silence("no ack for a message without a mid")
            await y.silence("no ack for a message without a mid")

        # The payload's bytes as the sender wrote them; numbers and strings as mids; from is
        # the server's.
        payload = '{ "sdp" : "v=0\\r\\n" ,"n":1.0e5, "e":"\\u00e9", "arr":[ 1 ,[] ,{} ] }'
        await a.send(f'{{"type":"offer","from":"mallory","to":"{c.id}","payload":{payload},'
                     f'"mid":12.5}}')
        raw = await c.recv_raw(what="byte-exact payload")
        h.check(re.search(r'"payload"\s*:\s*' + re.escape(payload) + r'\s*[,}]', raw),
                f"payload not forwarded verbatim across nodes:\n sent {payload!r}\n got  {raw!r}")
        same_json(strict_loads(raw, "relayed"), {"type": "offer", "from": a.id,
                                                 "payload": json.loads(payload), "mid": 12.5},
                  "relayed message with a client 'from'")
        await a.expect({"type": "ack", "mid": 12.5}, "ack with a number mid")

        # Order from one sender to one recipient on another node, one ack each.
        count = 200

        async def sender():
            for i in range(count):
                await a.send({"type": "candidate", "to": b.id, "payload": {"i": i}, "mid": i})

        async def receiver():
            for i in range(count):
                await b.expect({"type": "candidate", "from": a.id, "payload": {"i": i}, "mid": i},
                               f"candidate {i} in order")

        async def acks():
            got = [await a.recv(what=f"ack {i}") for i in range(count)]
            h.eq(sorted((m.get("type"), m.get("mid")) for m in got),
                 [("ack", i) for i in range(count)], "one ack per candidate")

        await asyncio.gather(sender(), receiver(), acks())

        # peer-unavailable across the cluster: an ID nobody holds, and a peer that has closed.
        nobody = "nobody-" + os.urandom(4).hex()
        await a.send({"type": "offer", "to": nobody, "payload": 1, "mid": "u1"})
        await a.expect_error("peer-unavailable", "to an ID nobody holds", to=nobody, mid="u1")
        await a.send({"type": "bye", "to": nobody})
        got = await a.expect_error("peer-unavailable", "without mid", to=nobody)
        h.check("mid" not in got, f"mid in an error for a message without one: {got}")
        gone = b.id
        await b.close()
        # Its node lets the cluster know on its next loop turn: a message in that instant may
        # be acked (PROTOCOL.md allows it), or refused unavailable while the channel is gone
        # but the ID not yet released (they travel on different Redis connections); soon
        # every message is refused peer-unavailable.
        for i in range(100):
            await c.send({"type": "offer", "to": gone, "payload": 1, "mid": f"gone{i}"})
            got = await c.recv(what="answer to a message to a peer that closed")
            if got.get("code") == "unavailable":
                check_error(got, "unavailable", "in the instant of the close", to=gone,
                            mid=f"gone{i}")
            elif got.get("type") != "ack" or i == 99:
                break
            else:
                same_json(got, {"type": "ack", "mid": f"gone{i}"}, "ack right after the close")
            await asyncio.sleep(0.01)
        check_error(got, "peer-unavailable", "to a peer on another node that closed",
                    to=gone, mid=f"gone{i}")
        await a.send({"type": "answer", "to": gone, "mid": "gone2"})
        await a.expect_error("peer-unavailable", "to it from a third node", to=gone, mid="gone2")
        await relay_ok(c, a, "after the peer-unavailable errors")
        await close_all(a, c)

    h.arun(run(), timeout=20)


def test_ids_across_nodes(t):
    redis = start_redis(t)
    n1, n2, n3 = start_nodes(t, redis)

    async def run():
        name = "shared-id_1.x"
        holder = await open_peer(n1.port, id=name, node="n1")
        h.eq(redis.command("GET", key("id", name)), b"n1", "the ID's holder after a claim")
        for n in (n2, n3, n2):
            await expect_refused(n.port, f"?id={name}", "id-taken", 4001,
                                 f"?id={name} on {n.name} while n1 holds it")
        # The holder heard nothing and still gets its messages, from any node.
        c = await open_peer(n3.port, name="c")
        await holder.silence("the holder is not told of the refused attempts")
        await relay_ok(c, holder, "to the holder after the refused attempts")
        await relay_ok(holder, c, "from the holder")
        h.eq(redis.command("GET", key("id", name)), b"n1", "its holder after the refused attempts")

        # Once the holder has gone, the ID can be had on another node.
        await holder.close()
        p2, secs = await reclaim(n2.port, name, "the ID on n2 after a clean close on n1")
        await relay_ok(c, p2, "to the ID's new holder on n2")
        await expect_refused(n1.port, f"?id={name}", "id-taken", 4001,
                             f"?id={name} back on n1 while n2 holds it")
        rst(p2.ws)
        p3, secs2 = await reclaim(n3.port, name, "the ID on n3 after a TCP reset on n2")
        await relay_ok(p3, c, "the ID's holder on the sender's node")
        h.eq(redis.command("GET", key("id", name)), b"n3", "its holder after the moves")
        await close_all(c, p3)
        return secs, secs2

    secs, secs2 = h.arun(run(), timeout=20)
    if os.environ.get("SB_TEST_VERBOSE"):
        note(f"ID free on another node after {secs:.2f} s (close) and {secs2:.2f} s (reset)")


def test_rooms_across_nodes(t):
    redis = start_redis(t)
    n1, n2, n3 = start_nodes(t, redis)
    room = "lobby:cluster_1.x"

    async def run():
        a = await open_peer(n1.port, name="a", node="n1")
        b = await open_peer(n2.port, name="b", node="n2")
        c = await open_peer(n3.port, name="c", node="n3")
        d = await open_peer(n1.port, name="d", node="n1")  # a second member on n1
        await a.send({"type": "join", "room": room})
        await a.expect({"type": "joined", "room": room, "peers": []}, "a joins first")
        await b.send({"type": "join", "room": room})
        await b.expect({"type": "joined", "room": room, "peers": [a.id]}, "b joins")
        await a.expect({"type": "peer-joined", "room": room, "peer": b.id}, "a hears b")
        await c.send({"type": "join", "room": room, "mid": "c"})
        same_json(sorted_peers(await c.recv(what="joined")),
                  {"type": "joined", "room": room, "peers": sorted([a.id, b.id]), "mid": "c"},
                  "c joins: the members on two other nodes")
        await a.expect({"type": "peer-joined", "room": room, "peer": c.id}, "a hears c")
        await b.expect({"type": "peer-joined", "room": room, "peer": c.id}, "b hears c")
        await d.send({"type": "join", "room": room, "mid": 4})
        same_json(sorted_peers(await d.recv(what="joined")),
                  {"type": "joined", "room": room, "peers": sorted([a.id, b.id, c.id]), "mid": 4},
                  "d joins: members on its own node and on two others")
        for p in (a, b, c):
            await p.expect({"type": "peer-joined", "room": room, "peer": d.id},
                           f"{p.name} hears d")
        for p in (a, b, c, d):
            await p.silence("one peer-joined per newcomer, none to itself")
        check_directory(redis, (n1, n2, n3),
                        {a.id: "n1", b.id: "n2", c.id: "n3", d.id: "n1"},
                        {room: {a.id: "n1", b.id: "n2", c.id: "n3", d.id: "n1"}}, "four members")
        await all_pairs_relay([a, b, c, d], "room members")

        # Joining again answers joined and tells nobody, on any node.
        await b.send({"type": "join", "room": room, "mid": "again"})
        same_json(sorted_peers(await b.recv(what="joined again")),
                  {"type": "joined", "room": room, "peers": sorted([a.id, c.id, d.id]),
                   "mid": "again"}, "b joins again")
        for p in (a, b, c, d):
            await p.silence("nobody is told of a repeated join")

        # leave: peer-left on every node; then not-joined.
        await b.send({"type": "leave", "room": room, "mid": "l"})
        await b.expect({"type": "left", "room": room, "mid": "l"}, "b leaves")
        for p in (a, c, d):
            await p.expect({"type": "peer-left", "room": room, "peer": b.id},
                           f"{p.name} hears b leave")
        await b.silence("the leaver is not told of itself")
        await b.send({"type": "leave", "room": room, "mid": "l2"})
        await b.expect_error("not-joined", "leaving again", room=room, mid="l2")

        # A clean disconnect (c, alone on n3) and an abrupt one (d, beside a on n1).
        await c.close()
        await a.expect({"type": "peer-left", "room": room, "peer": c.id}, "a hears c disconnect")
        await d.expect({"type": "peer-left", "room": room, "peer": c.id}, "d hears c disconnect")
        rst(d.ws)
        await a.expect({"type": "peer-left", "room": room, "peer": d.id}, "a hears d vanish")
        await a.silence("one peer-left each")
        await b.silence("b left: no more events")
        # a heard d leave from n1 itself, which tells Redis in the same instant, not before.
        await eventually(lambda: check_directory(redis, (n1, n2, n3), {a.id: "n1", b.id: "n2"},
                                                 {room: {a.id: "n1"}},
                                                 "after the leave and the disconnects"), 5.0)

        # A newcomer on n3 finds exactly who is left.
        e = await open_peer(n3.port, name="e")
        await e.send({"type": "join", "room": room})
        await e.expect({"type": "joined", "room": room, "peers": [a.id]}, "e joins")
        await a.expect({"type": "peer-joined", "room": room, "peer": e.id}, "a hears e")
        await b.silence("b is not in the room")
        await relay_ok(e, a, "newcomer to member")
        # The last members go: the room is gone everywhere. (Waiting for Redis to agree first:
        # a join racing the disconnects is test_join_racing_a_disconnect_converges.)
        await close_all(a, e)
        await wait_gone(redis, key("members", room), "the room of members that disconnected")
        await b.send({"type": "join", "room": room})
        await b.expect({"type": "joined", "room": room, "peers": []}, "join of an emptied room")
        await b.close()

    h.arun(run(), timeout=20)


def test_join_racing_a_disconnect_converges(t):
    """A peer joins a room on n2 just as its only member disconnects from n1. Whichever the
    cluster orders first, the joiner's view must end right: the leaver is either not in its
    joined list, or listed and then announced as peer-left. Repeated to meet the race."""
    redis = start_redis(t)
    n1, n2, n3 = start_nodes(t, redis)
    rounds = 40

    async def one(i):
        room = f"race-{i}"
        x = await open_peer(n1.port, id=f"x{i}", name=f"x{i}")
        y = await open_peer(n2.port, id=f"y{i}", name=f"y{i}")
        await x.send({"type": "join", "room": room})
        await x.expect({"type": "joined", "room": room, "peers": []}, "x joins")
        leave = rst if i % 2 else None
        if leave:
            leave(x.ws)
        await asyncio.gather(x.close() if not leave else asyncio.sleep(0),
                             y.send({"type": "join", "room": room}))
        got = await y.recv(what="joined")
        h.check(got.get("type") == "joined" and got.get("peers") in ([], [x.id]),
                f"round {i}: y's answer to its join: {got}")
        view = set(got["peers"])
        # First the cluster settles: x's ID is released, after its leave (one script that
        # also publishes peer-left to the members it leaves behind), so if y was listed, its
        # peer-left is on its way by then. Then y's view must come right: no fixed time from
        # the join (pub/sub may deliver later than the joined answer came).
        await wait_gone(redis, key("id", f"x{i}"), f"round {i}")
        h.eq(hgetall(redis, key("members", room)), {y.id: "n2"}, f"round {i}: members in Redis")
        deadline = time.monotonic() + 3.0
        while view and time.monotonic() < deadline:
            try:
                ev = strict_loads(await asyncio.wait_for(y.ws.recv(), 0.1), "y")
            except asyncio.TimeoutError:
                continue
            same_json(ev, {"type": "peer-left", "room": room, "peer": x.id},
                      f"round {i}: y's next message")
            view.discard(ev["peer"])
        h.eq(view, set(), f"round {i}: y's view of {room} 3 s after Redis settled ({x.id} left "
                          f"as y joined; y was answered {got})")
        await y.close()
        return bool(got["peers"])

    async def run():
        listed = [await one(i) for i in range(rounds)]
        return sum(listed)

    listed = h.arun(run(), timeout=40)
    note(f"join racing a disconnect: the leaver was still listed in {listed} of {rounds} rounds "
         "(then announced as peer-left)")


def test_claim_in_progress_does_not_hide_a_connected_peer(t):
    """A connection on n2 asking for the ID of a peer connected to n1 is refused id-taken; while
    its claim is still in Redis, relays from n2 to that peer must still be delivered, not
    answered peer-unavailable. Redis is paused (CLIENT PAUSE) so that the claim stays in
    progress while the relay is sent."""
    redis = start_redis(t)
    n1, n2 = start_nodes(t, redis, count=2)

    async def run():
        victim = await open_peer(n1.port, id="victim", name="victim", node="n1")
        sender = await open_peer(n2.port, name="sender", node="n2")
        for i in range(3):
            await off_loop(redis.command, "CLIENT", "PAUSE", "400", "ALL")
            thief = await connect(n2.port, "?id=victim")  # its claim now waits in Redis
            mid = f"during-claim-{i}"
            await sender.send({"type": "offer", "to": "victim", "payload": {"n": i}, "mid": mid})
            await victim.expect({"type": "offer", "from": sender.id, "payload": {"n": i},
                                 "mid": mid}, f"offer {i} while a claim for victim is pending")
            await sender.expect({"type": "ack", "mid": mid}, f"ack {i}")
            check_error(strict_loads(await asyncio.wait_for(thief.recv(), 3), "thief"),
                        "id-taken", f"thief {i}")
            try:
                await asyncio.wait_for(thief.recv(), 3)
                raise h.Failure(f"thief {i}: a message after id-taken")
            except ConnectionClosed as e:
                h.eq(e.rcvd.code if e.rcvd else None, 4001, f"thief {i}: close code")
        await close_all(victim, sender)

    h.arun(run())


def test_leave_right_after_join_takes_effect_in_order(t):
    """join and leave in one write are answered joined, then left, and the peer is not a member
    anywhere afterwards; join, leave, join leaves it a member. Requests take effect in the
    order they were sent, whatever the bus."""
    redis = start_redis(t)
    n1, n2 = start_nodes(t, redis, count=2)
    join = lambda mid: {"type": "join", "room": "order", "mid": mid}  # noqa: E731
    leave = lambda mid: {"type": "leave", "room": "order", "mid": mid}  # noqa: E731

    conn, got = requests_in_one_write(n1.port, "quick", [join(1), leave(2)])
    same_json(got, [{"type": "joined", "room": "order", "peers": [], "mid": 1},
                    {"type": "left", "room": "order", "mid": 2}], "join then leave")
    # left is answered as the leave goes to Redis, not after: Redis agrees soon after.
    h.eventually(lambda: h.eq(hgetall(redis, key("members", "order")), {},
                              "members after join, leave"), 5.0)
    conn2, got = requests_in_one_write(n1.port, "back", [join(1), leave(2), join(3)])
    same_json(got, [{"type": "joined", "room": "order", "peers": [], "mid": 1},
                    {"type": "left", "room": "order", "mid": 2},
                    {"type": "joined", "room": "order", "peers": [], "mid": 3}],
              "join, leave, join")
    h.eq(hgetall(redis, key("members", "order")), {"back": "n1"}, "members after join, leave, join")

    async def run():
        other = await open_peer(n2.port, name="other", node="n2")
        await other.send(join(9))
        await other.expect({"type": "joined", "room": "order", "peers": ["back"], "mid": 9},
                           "other sees only back")
        await other.close()

    try:
        h.arun(run())
    finally:
        conn.close()
        conn2.close()


def test_redis_by_host_name(t):
    """A Redis URL with a host name (resolved on the node's loop, from /etc/hosts here) works
    like one with an address."""
    redis = start_redis(t)
    url = redis.url()
    h.check("127.0.0.1" in url, f"unexpected Redis URL {url}")
    n1 = cluster_node(t, url.replace("127.0.0.1", "localhost"), "n1")
    n2 = cluster_node(t, url, "n2")
    for n in (n1, n2):
        h.wait_status(n.port, "/readyz", 200, 5)

    async def run():
        a = await open_peer(n1.port, name="a", node="n1")
        b = await open_peer(n2.port, name="b", node="n2")
        await all_pairs_relay([a, b], "by host name")
        await close_all(a, b)

    h.arun(run())
    h.check("connected to localhost:" in n1.log(), "n1 did not connect by name\n" + n1.log_tail())


def test_room_limit_across_nodes(t):
    redis = start_redis(t)
    n1, n2, n3 = start_nodes(t, redis, args=("--max-room-peers", "2"))

    async def run():
        a = await open_peer(n1.port, name="a")
        b = await open_peer(n2.port, name="b")
        c = await open_peer(n3.port, name="c")
        d = await open_peer(n1.port, name="d")  # on a's node
        await a.send({"type": "join", "room": "full"})
        await a.expect({"type": "joined", "room": "full", "peers": []}, "a joins")
        await b.send({"type": "join", "room": "full"})
        await b.expect({"type": "joined", "room": "full", "peers": [a.id]}, "b joins")
        await a.expect({"type": "peer-joined", "room": "full", "peer": b.id}, "a hears b")
        await c.send({"type": "join", "room": "full", "mid": 3})
        await c.expect_error("room-full", "a third peer on a third node", room="full", mid=3)
        await d.send({"type": "join", "room": "full"})
        got = await d.expect_error("room-full", "a third peer on the first member's node",
                                   room="full")
        h.check("mid" not in got, f"mid in an error for a join without one: {got}")
        await a.silence("members hear nothing of a refused join")
        await b.silence("members hear nothing of a refused join")
        h.eq(hgetall(redis, key("members", "full")), {a.id: "n1", b.id: "n2"}, "members of a full room")
        await b.send({"type": "join", "room": "full", "mid": "re"})
        await b.expect({"type": "joined", "room": "full", "peers": [a.id], "mid": "re"},
                       "a member rejoining a full room")
        await c.send({"type": "leave", "room": "full", "mid": "l"})
        await c.expect_error("not-joined", "the refused peer is not a member", room="full",
                             mid="l")
        await b.send({"type": "leave", "room": "full"})
        await b.expect({"type": "left", "room": "full"}, "b leaves")
        await a.expect({"type": "peer-left", "room": "full", "peer": b.id}, "a hears b leave")
        await c.send({"type": "join", "room": "full"})
        await c.expect({"type": "joined", "room": "full", "peers": [a.id]}, "c joins after a leave")
        await a.expect({"type": "peer-joined", "room": "full", "peer": c.id}, "a hears c")
        for p in (b, d):
            await p.send({"type": "join", "room": "full"})
            await p.expect_error("room-full", f"{p.name}: full again", room="full")
        await a.silence("nothing more")
        await c.silence("nothing more")
        h.eq(hgetall(redis, key("members", "full")), {a.id: "n1", c.id: "n3"}, "members at the end")
        await close_all(a, b, c, d)

    h.arun(run(), timeout=20)


# ---------------------------------------------------------------------------------------------
# Behind a load balancer

HAPROXY_CONFIG = """\
global
    stats socket {{stats}} mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 5s
    timeout tunnel 1h
frontend switchboard
    bind {host}:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
{servers}
"""


def test_haproxy_spreads_clients_over_nodes(t):
    redis = start_redis(t)
    nodes = start_nodes(t, redis)
    port = h.free_port()
    servers = "\n".join(f"    server {n.name} {h.HOST}:{n.port} check" for n in nodes)
    lb = t.service(h.HAProxy(HAPROXY_CONFIG.format(host=h.HOST, port=port, servers=servers),
                             port)).start()
    lb.wait_states("nodes", {n.name: "UP" for n in nodes}, 5)
    h.eq(h.get_status(port, "/readyz"), (200, b"ready\n"), "GET /readyz through HAProxy")

    async def run():
        peers = [await open_peer(port, name=f"lb{i}") for i in range(6)]
        spread = {}
        for p in peers:
            spread.setdefault(p.node, []).append(p.name)
        h.eq(sorted(spread), ["n1", "n2", "n3"], f"nodes the 6 clients landed on ({spread})")
        await all_pairs_relay(peers, "through HAProxy")
        room = "lb-room"
        for i, p in enumerate(peers):
            await p.send({"type": "join", "room": room})
            same_json(sorted_peers(await p.recv(what="joined")),
                      {"type": "joined", "room": room, "peers": sorted(q.id for q in peers[:i])},
                      f"{p.name} joins")
        for i, p in enumerate(peers):
            await p.expect_set([{"type": "peer-joined", "room": room, "peer": q.id}
                                for q in peers[i + 1:]], "peer-joined of later joiners")

        # n3 shuts down: its clients are told 1001, the others hear them leave, HAProxy stops
        # sending new clients there.
        n3 = nodes[2]
        on_n3 = [p for p in peers if p.node == "n3"]
        rest = [p for p in peers if p.node != "n3"]
        n3.signal(signal.SIGTERM)
        for p in on_n3:
            try:
                while True:
                    msg = strict_loads(await asyncio.wait_for(p.ws.recv(), 3), "before 1001")
                    h.eq(msg.get("type"), "peer-left", f"{p.name}: message before close 1001")
            except ConnectionClosed as e:
                h.check(e.rcvd is not None and e.rcvd.code == 1001,
                        f"{p.name}: close through HAProxy when its node stops: {e}")
        for p in rest:
            await p.expect_set([{"type": "peer-left", "room": room, "peer": q.id} for q in on_n3],
                               "peer-left of n3's clients")
        status = await off_loop(n3.wait_exit, 5.0)
        h.eq(status, 0, "n3's exit status after SIGTERM")
        n3.stopped = True
        n3.check_log()
        await off_loop(lb.wait_states, "nodes", {"n1": "UP", "n2": "UP", "n3": "DOWN"}, 5)
        more = [await open_peer(port, name=f"late{i}") for i in range(4)]
        h.check(all(p.node in ("n1", "n2") for p in more),
                f"clients after n3 went down landed on {[p.node for p in more]}")
        await all_pairs_relay(more[:2] + rest[:2], "after n3 went down")
        await close_all(*rest, *more)
        return spread

    spread = h.arun(run(), timeout=20)
    note("6 clients through HAProxy: " + ", ".join(f"{k}: {len(v)}" for k, v in sorted(spread.items())))


# ---------------------------------------------------------------------------------------------
# Faults


def test_redis_restart_during_traffic(t):
    redis = start_redis(t)
    nodes = start_nodes(t, redis)
    n1, n2, n3 = nodes
    room = "stays"
    timings = {}

    async def run():
        a1 = Inbox(await open_peer(n1.port, id="a1", name="a1"))
        a2 = Inbox(await open_peer(n1.port, id="a2", name="a2"))
        b1 = Inbox(await open_peer(n2.port, id="b1", name="b1"))
        c1 = Inbox(await open_peer(n3.port, id="c1", name="c1"))
        everyone = (a1, a2, b1, c1)
        for i, x in enumerate((a1, b1, c1)):
            await x.peer.send({"type": "join", "room": room, "mid": f"j{i}"})
            got = await x.wait_answer(f"j{i}")
            h.eq((got.get("type"), len(got.get("peers", []))), ("joined", i), f"{x.peer.name} joins")
        await a1.wait(lambda: len(a1.events) == 2, 3, "peer-joined of b1 and c1")
        await b1.wait(lambda: len(b1.events) == 1, 3, "peer-joined of c1")
        a1.events.clear()
        b1.events.clear()

        # Three streams of candidates, one message every 30 ms each, through the whole outage.
        streams = [("ab", a1, b1), ("aa", a1, a2), ("ca", c1, a1)]
        sent = {name: [] for name, _, _ in streams}
        phase = ["before"]
        stop = asyncio.Event()

        async def traffic():
            i = 0
            while not stop.is_set():
                for name, src, dst in streams:
                    mid = f"{name}-{i}"
                    # The phase as the message leaves (recorded first: a send may yield).
                    sent[name].append((i, mid, phase[0]))
                    await src.peer.send({"type": "candidate", "to": dst.peer.id,
                                         "payload": {"seq": i}, "mid": mid})
                i += 1
                await asyncio.sleep(0.03)

        traffic_task = asyncio.ensure_future(traffic())
        await asyncio.sleep(0.5)

        phase[0] = "down"  # from here on, a message may meet the outage
        # Every message sent before must have been answered before Redis goes away (they are
        # required to be acked): wait for their answers, not for a fixed time.
        await asyncio.gather(*(src.wait(
            lambda src=src, name=name: all(src.answer(m) is not None
                                           for _, m, when in sent[name] if when == "before"),
            5, f"answers to the {name} messages sent before the outage")
            for name, src, _ in streams))
        t_down = time.monotonic()
        await off_loop(redis.shutdown)
        for n in nodes:
            await off_loop(h.wait_status, n.port, "/readyz", 503, 3.0)
        status, body = await off_loop(readyz, n1)
        h.check(status == 503 and len(body.strip()) > 0, f"/readyz while Redis is down: {status} {body!r}")
        timings["503 after"] = time.monotonic() - t_down

        # While Redis is away: across nodes unavailable, on one node delivered, newcomers
        # refused with 4003, joins refused, and nobody is disconnected.
        await a1.peer.send({"type": "offer", "to": "b1", "payload": "down", "mid": "down-ab"})
        check_error(await a1.wait_answer("down-ab"), "unavailable", "a relay across nodes while "
                    "Redis is down", to="b1", mid="down-ab")
        await a1.peer.send({"type": "offer", "to": "a2", "payload": "down", "mid": "down-aa"})
        same_json(await a1.wait_answer("down-aa"), {"type": "ack", "mid": "down-aa"},
                  "a relay on one node while Redis is down")
        await a2.wait(lambda: a2.received("down-aa"), 3, "the relay on one node")
        await b1.peer.send({"type": "bye", "to": "c1"})  # no mid: the error says so
        await b1.wait(lambda: b1.other, 3, "an error for a relay without mid")
        check_error(b1.other.pop(0), "unavailable", "a relay without mid while Redis is down",
                    to="c1")
        await a1.peer.send({"type": "join", "room": "new-room", "mid": "down-join"})
        check_error(await a1.wait_answer("down-join"), "unavailable", "a join while Redis is down",
                    room="new-room", mid="down-join")
        await expect_refused(n2.port, "", "unavailable", 4003, "a new connection while Redis is down")
        await expect_refused(n3.port, "?id=newcomer", "unavailable", 4003,
                             "a new connection asking for an ID while Redis is down")
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t_down)))

        phase[0] = "restarting"
        t_up = time.monotonic()
        timings["outage"] = t_up - t_down
        redis.start()  # on this thread: a child dies with the thread that started it
        for n in nodes:
            await off_loop(h.wait_status, n.port, "/readyz", 200, 8.0)
        timings["ready after restart"] = time.monotonic() - t_up
        phase[0] = "after"
        await asyncio.sleep(0.5)
        stop.set()
        await traffic_task

        # Every message was answered, exactly once; every acked one is delivered (the ack may
        # come before the delivery, which goes over the recipient node's pub/sub path).
        for name, src, dst in streams:
            await src.wait(lambda: all(src.answer(m) is not None for _, m, _ in sent[name]), 5,
                           f"answers to every {name} message")
            acked = [m for _, m, _ in sent[name] if src.answer(m).get("type") == "ack"]
            arrive = time.monotonic() + 5.0  # then the checks below say which one is missing
            while not all(dst.received(m) for m in acked) and time.monotonic() < arrive:
                await asyncio.sleep(0.01)
        counts = {}
        for name, src, dst in streams:
            received = [m for m in dst.relayed if str(m.get("mid", "")).startswith(name + "-")]
            seqs = [m["payload"]["seq"] for m in received]
            h.eq(seqs, sorted(set(seqs)), f"{name}: received in order, each once")
            for seq, mid, when in sent[name]:
                answers = src.answers[dumps(mid)]
                h.eq(len(answers), 1, f"{name}: answers to {mid} (sent {when}): {answers}")
                got = answers[0]
                got_it = seq in seqs
                if got.get("type") == "ack":
                    same_json(got, {"type": "ack", "mid": mid}, f"ack for {mid}")
                    h.check(got_it, f"{name}: {mid} (sent {when}) acked but never received")
                    kind = "ack"
                else:
                    h.check(got.get("code") in ("unavailable", "peer-unavailable"),
                            f"{name}: answer to {mid} (sent {when}): {got}")
                    check_error(got, got["code"], f"error for {mid}", to=dst.peer.id, mid=mid)
                    h.check(not got_it, f"{name}: {mid} (sent {when}) was answered "
                                        f"{got['code']} but delivered")
                    kind = f"{got['code']} ({when})"
                    h.check(name != "aa", f"a relay on one node answered {got}")
                    h.check(when not in ("before", "after"), f"{mid} sent {when}: {got}")
                counts.setdefault(name, {}).setdefault(kind, 0)
                counts[name][kind] += 1
            for m in received:
                same_json(m, {"type": "candidate", "from": src.peer.id,
                              "payload": {"seq": m["payload"]["seq"]}, "mid": m["mid"]},
                          f"{name}: relayed message")
        for name in ("ab", "ca"):
            h.check(any(k.startswith("unavailable") for k in counts[name]),
                    f"no relay across nodes was refused during the outage: {counts}")
        timings["answers"] = counts

        # The connections stayed open; Redis knows every peer and member again; room events
        # were at most re-announcements of known members.
        for x in everyone:
            h.check(x.closed is None and x.peer.ws.open, f"{x.peer.name}: connection closed: {x.closed}")
            h.eq(x.other, [], f"{x.peer.name}: unexpected messages")
        check_directory(redis, nodes, {"a1": "n1", "a2": "n1", "b1": "n2", "c1": "n3"},
                        {room: {"a1": "n1", "b1": "n2", "c1": "n3"}}, "after the restart")
        for x in (a1, b1, c1):
            for ev in x.events:
                h.check(ev.get("type") == "peer-joined" and ev.get("room") == room
                        and ev.get("peer") in ("a1", "b1", "c1") and ev.get("peer") != x.peer.id,
                        f"{x.peer.name}: room event after the restart: {ev}")
        for x in (a1, a2, b1, c1):
            for y in (a1, a2, b1, c1):
                if x is not y:
                    await inbox_relay_ok(x, y, f"{x.peer.name} to {y.peer.name} after the restart")
        for x in everyone:
            await x.stop()
        # The room works across nodes: a newcomer sees the three members, they all hear it.
        d = await open_peer(n2.port, id="d", name="d")
        await d.send({"type": "join", "room": room})
        same_json(sorted_peers(await d.recv(what="joined")),
                  {"type": "joined", "room": room, "peers": ["a1", "b1", "c1"]},
                  "a newcomer's join after the restart")
        for x in (a1, b1, c1):
            while True:  # skip re-announcements that may still be queued
                got = await x.peer.recv(what="peer-joined of the newcomer")
                if got.get("peer") != "d":
                    continue
                same_json(got, {"type": "peer-joined", "room": room, "peer": "d"},
                          f"{x.peer.name} hears the newcomer")
                break
        await close_all(d, *(x.peer for x in everyone))

    h.arun(run(), timeout=30)
    note(f"Redis restart: 503 {timings['503 after']:.2f} s after the shutdown, outage "
         f"{timings['outage']:.2f} s, all nodes ready {timings['ready after restart']:.2f} s "
         f"after the restart; answers {timings['answers']}")
    h.check(timings["ready after restart"] < 5.0,
            f"nodes ready only {timings['ready after restart']:.2f} s after Redis restarted")


def test_room_changes_during_outage_reach_other_nodes(t):
    """A member that leaves or disconnects while Redis is down must still be seen leaving by
    the members on other nodes once Redis is back (PROTOCOL.md: peer-left "for each of its
    rooms" on disconnect)."""
    redis = start_redis(t)
    nodes = start_nodes(t, redis)
    n1, n2, n3 = nodes
    room = "outage-room"

    async def run():
        a = await open_peer(n1.port, id="a", name="a")
        c = await open_peer(n1.port, id="c", name="c")
        b = await open_peer(n2.port, id="b", name="b")
        for i, p in enumerate((a, c, b)):
            await p.send({"type": "join", "room": room})
            await p.recv(what="joined")
        await a.expect_set([{"type": "peer-joined", "room": room, "peer": x} for x in "cb"],
                           "peer-joined")
        await c.expect({"type": "peer-joined", "room": room, "peer": "b"}, "peer-joined")
        await off_loop(redis.shutdown)
        for n in nodes:
            await off_loop(h.wait_status, n.port, "/readyz", 503, 3.0)
        await c.close()
        await a.expect({"type": "peer-left", "room": room, "peer": "c"},
                       "a (same node) hears c disconnect during the outage")
        await a.send({"type": "leave", "room": room, "mid": "l"})
        got = await a.recv(what="answer to a leave during the outage")
        h.check(got in ({"type": "left", "room": room, "mid": "l"},) or
                (got.get("type") == "error" and got.get("code") == "unavailable"),
                f"answer to a leave during the outage: {got}")
        left = got.get("type") == "left"
        await asyncio.sleep(0.5)
        redis.start()  # on this thread: a child dies with the thread that started it
        for n in nodes:
            await off_loop(h.wait_status, n.port, "/readyz", 200, 8.0)
        want = [{"type": "peer-left", "room": room, "peer": "c"}]
        if left:
            want.append({"type": "peer-left", "room": room, "peer": "a"})
        seen = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not all(w in seen for w in want):
            try:
                seen.append(strict_loads(await asyncio.wait_for(b.ws.recv(), 0.2), "b"))
            except asyncio.TimeoutError:
                pass
        want_members = {"b": "n2"} if left else {"a": "n1", "b": "n2"}
        h.eq(hgetall(redis, key("members", room)), want_members, "members in Redis")
        h.check(all(w in seen for w in want),
                f"b (on n2) after Redis came back: expected {want} (its room view), got {seen}")
        await close_all(a, b)

    h.arun(run(), timeout=25)


def test_pubsub_connections_killed(t):
    redis = start_redis(t)
    nodes = start_nodes(t, redis)
    n1, n2, n3 = nodes
    room = "pubsub-room"

    async def run():
        a = await open_peer(n1.port, name="a")
        b = await open_peer(n2.port, name="b")
        c = await open_peer(n3.port, name="c")
        for i, p in enumerate((a, b, c)):
            await p.send({"type": "join", "room": room})
            await p.recv(what="joined")
        await a.expect_set([{"type": "peer-joined", "room": room, "peer": x.id} for x in (b, c)],
                           "peer-joined")
        await b.expect({"type": "peer-joined", "room": room, "peer": c.id}, "peer-joined")
        await relay_ok(a, b, "before the kill")
        killed = await off_loop(redis.command, "CLIENT", "KILL", "TYPE", "pubsub")
        per_node = 3 if CLUSTER else 1  # a subscriber per master
        h.eq(killed, 3 * per_node, f"subscriber connections killed ({per_node} per node)")
        t0 = time.monotonic()
        # Every relay is answered meanwhile; once the nodes have subscribed again, they work.
        i, refusals = 0, {}
        while True:
            mid = f"k{i}"
            await a.send({"type": "offer", "to": b.id, "payload": i, "mid": mid})
            got = await a.recv(what=f"answer to {mid}")
            if got.get("type") == "ack":
                same_json(got, {"type": "ack", "mid": mid}, "ack")
                await b.expect({"type": "offer", "from": a.id, "payload": i, "mid": mid},
                               "the first message acked after the kill")
                break
            h.check(got.get("type") == "error" and got.get("code") in
                    ("unavailable", "peer-unavailable"), f"answer to {mid} after the kill: {got}")
            check_error(got, got["code"], f"error for {mid}", to=b.id, mid=mid)
            refusals[got["code"]] = refusals.get(got["code"], 0) + 1
            h.check(time.monotonic() - t0 < 5.0, "relays across nodes still failing 5 s after "
                                                 "the subscribers were killed")
            i += 1
            await asyncio.sleep(0.05)
        relayed_after = time.monotonic() - t0
        for n in nodes:
            await off_loop(h.wait_status, n.port, "/readyz", 200, 5.0)
        ready_after = time.monotonic() - t0
        names = sorted(re.findall(r"name=(\S+)", await off_loop(
            lambda: redis.command("CLIENT", "LIST", "TYPE", "pubsub").decode())))
        h.eq(names, sorted([f"switchboard-{n}-sub" for n in ("n1", "n2", "n3")] * per_node),
             "subscribers again")
        await all_pairs_relay([a, b, c], "after the subscribers came back")
        # Room channels were subscribed again too.
        d = await open_peer(n3.port, name="d")
        await d.send({"type": "join", "room": room})
        same_json(sorted_peers(await d.recv(what="joined")),
                  {"type": "joined", "room": room, "peers": sorted([a.id, b.id, c.id])}, "d joins")
        for p in (a, b, c):
            await p.expect({"type": "peer-joined", "room": room, "peer": d.id},
                           f"{p.name} hears d after the subscribers came back")
        await c.close()
        for p in (a, b, d):
            await p.expect({"type": "peer-left", "room": room, "peer": c.id},
                           f"{p.name} hears c leave")
        await close_all(a, b, d)
        return relayed_after, ready_after, refusals

    relayed_after, ready_after, refusals = h.arun(run(), timeout=20)
    note(f"subscribers killed: relaying across nodes again after {relayed_after:.2f} s "
         f"(refused meanwhile: {refusals}), all /readyz 200 after {ready_after:.2f} s")


def test_node_killed(t):
    redis = start_redis(t)
    nodes = start_nodes(t, redis)
    n1, n2, n3 = nodes

    async def run():
        a = await open_peer(n1.port, id="a", name="a")
        b = await open_peer(n2.port, id="b", name="b")
        k1 = await open_peer(n3.port, id="k1", name="k1")
        k2 = await open_peer(n3.port, id="k2", name="k2")
        k3 = await open_peer(n3.port, id="k3", name="k3")
        joins = ((a, ("r", "r2")), (b, ("r",)), (k1, ("r",)), (k2, ("r", "r2")))
        for p, rooms in joins:
            for r in rooms:
                await p.send({"type": "join", "room": r, "mid": r})
                got = await p.recv(what=f"joined {r}")
                h.eq((got.get("type"), got.get("room")), ("joined", r), f"{p.name} joins {r}")
        # Read the peer-joined events of the later joiners: they come over the pub/sub path,
        # which may be slower than the joined answers.
        for i, (p, rooms) in enumerate(joins):
            await p.expect_set([{"type": "peer-joined", "room": r, "peer": q.id}
                                for q, theirs in joins[i + 1:] for r in theirs if r in rooms],
                               "peer-joined of the later joiners")
        await relay_ok(a, k3, "before the kill")

        n3.proc.kill()
        t0 = time.monotonic()

        async def hears(p, wants):
            await p.expect_set(wants, "peer-left of the dead node's peers", timeout=NODE_TTL + 3)
            return time.monotonic() - t0

        async def claim_k3():
            p, _ = await reclaim(n1.port, "k3", "k3 on n1 after n3 died", secs=NODE_TTL + 3)
            return p, time.monotonic() - t0

        left = lambda r, x: {"type": "peer-left", "room": r, "peer": x}
        ta, tb, (k3new, tclaim) = await asyncio.gather(
            hears(a, [left("r", "k1"), left("r", "k2"), left("r2", "k2")]),
            hears(b, [left("r", "k1"), left("r", "k2")]),
            claim_k3())
        status = await off_loop(n3.wait_exit, 2.0)
        h.eq(status, -signal.SIGKILL, "n3 was killed")
        n3.stopped = True
        await a.silence("one peer-left per room of each dead peer")
        await b.silence("one peer-left per room of each dead peer")
        h.check(max(ta, tb, tclaim) <= NODE_TTL + 2.0,
                f"the dead node's peers left after {ta:.2f}/{tb:.2f} s and its ID was free after "
                f"{tclaim:.2f} s: more than --node-ttl {NODE_TTL} + 2 s")
        # Redis no longer knows the dead node, its peers or its members.
        check_directory(redis, (n1, n2), {"a": "n1", "b": "n2", "k3": "n1"},
                        {"r": {"a": "n1", "b": "n2"}, "r2": {"a": "n1"}}, "after the sweep")
        for k in (key("alive", "n3"), key("ids", "n3"), key("rooms", "k1"), key("id", "k1"),
                  key("id", "k2")):
            h.eq(redis.command("EXISTS", k), 0, f"{k} exists after the sweep")
        await a.send({"type": "offer", "to": "k1", "mid": "dead"})
        await a.expect_error("peer-unavailable", "to a peer of the dead node", to="k1", mid="dead")
        await relay_ok(b, k3new, "to the dead node's ID, now on n1")
        k1new, _ = await reclaim(n2.port, "k1", "k1 on n2")
        e = await open_peer(n2.port, name="e")
        await e.send({"type": "join", "room": "r"})
        same_json(sorted_peers(await e.recv(what="joined")),
                  {"type": "joined", "room": "r", "peers": ["a", "b"]}, "a newcomer's join of r")
        await close_all(a, b, k3new, k1new, e)
        return ta, tb, tclaim

    ta, tb, tclaim = h.arun(run(), timeout=20)
    n3.check_log()
    note(f"node SIGKILLed: peer-left after {max(ta, tb):.2f} s, its ID free on another node "
         f"after {tclaim:.2f} s (--node-ttl {NODE_TTL:g})")


class Watch:
    """Reads a connection's messages in a background task until it closes."""

    def __init__(self, peer):
        self.peer = peer
        self.msgs = []
        self.code = None  # the close code received, once closed
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        try:
            while True:
                self.msgs.append(strict_loads(await self.peer.ws.recv(), self.peer.name))
        except ConnectionClosed as e:
            self.code = e.rcvd.code if e.rcvd else None

    @property
    def open(self):
        return not self.task.done()

    def check_taken(self, what):
        """It was closed the id-taken way: exactly that error, then close 4001."""
        h.check(len(self.msgs) == 1 and self.code == 4001,
                f"{what}: closed with {self.msgs} and code {self.code}, not id-taken and 4001")
        check_error(self.msgs[0], "id-taken", what)


def test_id_takeover_race_after_outage(t):
    """Peers x0..x3 are on n1 when Redis stops. Redis restarts empty, and new connections for
    the same IDs hammer n2 from that instant. Whoever wins each ID, in the end exactly one
    connection holds it (the loser is refused or closed with id-taken), and a message to it
    reaches exactly that one."""
    redis = start_redis(t)
    nodes = start_nodes(t, redis)
    n1, n2, n3 = nodes
    ids = [f"x{i}" for i in range(4)]
    outcome = {}

    async def race(name, deadline):
        """Asks n2 for name until it is granted or refused as taken; 4003 means try again.
        Returns (Peer or None, tries)."""
        tries = 0
        while time.monotonic() < deadline:
            tries += 1
            ws = await connect(n2.port, f"?id={name}")
            msg = strict_loads(await asyncio.wait_for(ws.recv(), 3), f"racer for {name}")
            if msg.get("type") == "welcome":
                return Peer(ws, msg, f"{name}@n2"), tries
            code = msg.get("code")
            h.check(code in ("id-taken", "unavailable"), f"racer for {name}: refused with {msg}")
            check_error(msg, code, f"racer for {name}")
            try:
                got = await asyncio.wait_for(ws.recv(), 3)
                raise h.Failure(f"racer for {name}: a message after {msg}: {got}")
            except ConnectionClosed as e:
                h.eq(e.rcvd.code if e.rcvd else None, 4001 if code == "id-taken" else 4003,
                     f"racer for {name}: close code after {code}")
            if code == "id-taken":
                return None, tries
            await asyncio.sleep(0.005)
        raise h.Failure(f"racer for {name}: neither granted nor refused as taken in time")

    async def run():
        olds = [Watch(await open_peer(n1.port, id=x, name=f"{x}@n1")) for x in ids]
        s = await open_peer(n3.port, name="s")
        await off_loop(redis.shutdown)
        await off_loop(h.wait_status, n1.port, "/readyz", 503, 3.0)
        await off_loop(h.wait_status, n2.port, "/readyz", 503, 3.0)
        await asyncio.sleep(1.0)
        redis.start()  # on this thread: a child dies with the thread that started it
        deadline = time.monotonic() + 8
        results = await asyncio.gather(*(race(x, deadline) for x in ids))
        news = [Watch(p) if p is not None else None for p, _ in results]
        for n in nodes:
            await off_loop(h.wait_status, n.port, "/readyz", 200, 8.0)
        # Ready, each node has recorded its IDs again and closed any connection of its own
        # that lost its ID meanwhile; wait until no ID has two connections open, i.e. those
        # closes have reached the clients (checked below: exactly one holder each).
        settle = time.monotonic() + 5.0
        while (any(old.open and new is not None and new.open for old, new in zip(olds, news))
               and time.monotonic() < settle):
            await asyncio.sleep(0.02)
        for x, old, new, (_, tries) in zip(ids, olds, news, results):
            holders = [w for w in (old, new) if w is not None and w.open]
            h.eq(len(holders), 1, f"{x}: connections holding it in the end (old on n1 open: "
                                  f"{old.open}; new on n2: "
                                  f"{'refused' if new is None else 'open' if new.open else 'closed'})")
            holder = holders[0]
            for w in (old, new):
                if w is not None and w is not holder:
                    w.check_taken(f"{x}: the losing connection {w.peer.name}")
            outcome[x] = (f"{holder.peer.name} kept it" + (
                "; n2 refused the racer" if new is None else
                "; n2 had granted it, then closed it with id-taken" if holder is old else
                "; n1 closed the old holder with id-taken") + f" ({tries} tries)")
            h.eq(redis.command("GET", key("id", x)), (b"n1" if holder is old else b"n2"),
                 f"{x}: its holder")
            mid = f"to-{x}"
            await s.send({"type": "offer", "to": x, "payload": "who?", "mid": mid})
            await s.expect({"type": "ack", "mid": mid}, f"ack for the message to {x}")
            # The ack comes from s's node once Redis took the message; the holder's node
            # delivers it over pub/sub, possibly later.
            arrive = time.monotonic() + 5.0
            while not holder.msgs and holder.open and time.monotonic() < arrive:
                await asyncio.sleep(0.01)
        await asyncio.sleep(QUIET)  # and nothing more arrives (a copy to the loser, a duplicate)
        for x, old, new in zip(ids, olds, news):
            want = [{"type": "offer", "from": s.id, "payload": "who?", "mid": f"to-{x}"}]
            for w in (old, new):
                if w is not None and w.open:
                    same_json(w.msgs, want, f"{x}: what its holder {w.peer.name} received")
                    await w.peer.close()
                elif w is not None:
                    h.eq(len(w.msgs), 1, f"{x}: messages of the closed {w.peer.name}: {w.msgs}")
        await s.silence("nothing more")
        await s.close()

    h.arun(run(), timeout=30)
    note("ID race after an outage: " + "; ".join(f"{x}: {w}" for x, w in outcome.items()))


# ---------------------------------------------------------------------------------------------
# An idle cluster costs Redis nothing per peer


async def raw_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


async def raw_message(reader, what):
    op, payload = await raw_frame(reader)
    h.eq(op, h.OP_TEXT, f"{what}: opcode")
    return strict_loads(payload.decode(), what)


class RawPeer:
    """A WebSocket client on asyncio streams: cheap enough to hold thousands."""

    async def open(self, port):
        self.reader, self.writer = await asyncio.open_connection(h.HOST, port)
        key = h.new_key()
        self.writer.write(h.upgrade_request(key=key, subprotocol=h.SUBPROTOCOL))
        head = await self.reader.readuntil(b"\r\n\r\n")
        h.check(head.startswith(b"HTTP/1.1 101 "), f"handshake answered {head[:40]!r}")
        self.welcome = await raw_message(self.reader, "welcome")
        h.eq(self.welcome.get("type"), "welcome", "first message")
        self.id = self.welcome["id"]
        return self

    def send(self, msg):
        self.writer.write(h.frame(h.OP_TEXT, dumps(msg)))

    async def next_of(self, typ, what):
        """Reads messages until one of type typ (room events of others are skipped)."""
        while True:
            msg = await raw_message(self.reader, what)
            if msg.get("type") == typ:
                return msg
            h.check(msg.get("type") == "peer-joined", f"{what}: unexpected {msg}")


def commandstats(redis):
    """{command: calls} of INFO commandstats (added up over the masters of a cluster)."""
    text = redis.command("INFO", "commandstats").decode()
    out = {}
    for m in re.finditer(r"cmdstat_(\S+?):calls=(\d+)", text):
        out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


# What nodes send themselves; every other command counted is run inside their Lua scripts.
CLIENT_COMMANDS = ("eval", "evalsha", "publish", "subscribe", "unsubscribe", "ping", "auth",
                   "select", "client|setname")


def fit_open_files(n):
    """Raises this process's open-file limit to hold n more sockets, as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        h.check(new >= want, f"the open-file limit (hard {hard}) cannot hold {n} sockets")


def test_quiet_cluster_3000_peers(t):
    total, rooms = 3000, 100
    fit_open_files(total)
    redis = start_redis(t)
    nodes = start_nodes(t, redis)
    timings = {}

    async def run():
        sem = asyncio.Semaphore(64)

        async def one(i):
            async with sem:
                return await RawPeer().open(nodes[i % 3].port)

        t0 = time.monotonic()
        peers = await asyncio.gather(*(one(i) for i in range(total)))
        timings["open"] = time.monotonic() - t0
        h.eq(len({p.id for p in peers}), total, "distinct peer IDs")
        # Peers i, i+rooms and i+2*rooms (three nodes) share a room.
        for i in range(3 * rooms):
            peers[i].send({"type": "join", "room": f"quiet-{i % rooms}", "mid": i})

        async def joined(i):
            got = await peers[i].next_of("joined", f"peer {i}: joined")
            h.eq((got.get("room"), got.get("mid")), (f"quiet-{i % rooms}", i), f"peer {i}: joined")

        await asyncio.gather(*(joined(i) for i in range(3 * rooms)))
        for n in nodes:
            h.eq(redis.command("SCARD", key("ids", n.name)), total // 3,
                 f"peer IDs {n.name} holds in Redis")
        for r in (0, rooms - 1):
            h.eq(redis.command("HLEN", key("members", f"quiet-{r}")), 3, f"members of quiet-{r}")

        await asyncio.sleep(1.0)
        before, t1 = commandstats(redis), time.monotonic()
        await asyncio.sleep(5.0)
        after, t2 = commandstats(redis), time.monotonic()
        secs = t2 - t1
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        delta["info"] = delta.get("info", 0) - 1  # our own INFO
        delta = {k: v for k, v in delta.items() if v > 0}
        timings["stats"] = (secs, delta)

        # Still a working cluster: a message across nodes, one room's members leave.
        p0, p1 = peers[0], peers[1]
        p0.send({"type": "offer", "to": p1.id, "payload": "still there?", "mid": "q"})
        got = await p1.next_of("offer", "offer across nodes after the quiet spell")
        same_json(got, {"type": "offer", "from": p0.id, "payload": "still there?", "mid": "q"},
                  "offer after the quiet spell")
        same_json(await p0.next_of("ack", "ack"), {"type": "ack", "mid": "q"}, "ack")
        for p in peers:
            p.writer.close()
        t3 = time.monotonic()
        while True:
            left = sum(redis.command("SCARD", key("ids", n.name)) for n in nodes)
            if left == 0 and redis.command("EXISTS", key("members", "quiet-0")) == 0:
                break
            h.check(time.monotonic() - t3 < 10, f"{left} peer IDs still held 10 s after "
                                                 "their clients closed")
            await asyncio.sleep(0.1)
        timings["release"] = time.monotonic() - t3

    h.arun(run(), timeout=60)
    secs, delta = timings["stats"]
    all_rate = sum(delta.values()) / secs
    own = {k: v for k, v in delta.items() if k in CLIENT_COMMANDS}
    own_rate = sum(own.values()) / secs
    note(f"{total} peers opened in {timings['open']:.1f} s, released in {timings['release']:.1f} s")
    note(f"idle Redis load over {secs:.1f} s: {own_rate:.1f} commands/s from the nodes "
         f"({', '.join(f'{k} {v}' for k, v in sorted(own.items()))}), {all_rate:.1f}/s counting "
         f"those run by their scripts ({', '.join(f'{k} {v}' for k, v in sorted(delta.items()))})")
    h.check(own_rate < 30, f"{own_rate:.1f} commands/s from 3 idle nodes with {total} peers: {own}")
    h.check(all_rate < 60, f"{all_rate:.1f} commands/s (script calls included) from 3 idle nodes "
                           f"with {total} peers: {delta}")


def peer_channels(redis):
    """The peer channels some node is subscribed to, as Redis sees them."""
    return {c.decode() for c in redis.command("PUBSUB", "CHANNELS", key("channel", "*"))}


def test_subscription_churn(t):
    """Thousands of connects and disconnects spread over the nodes (each a SUBSCRIBE and an
    UNSUBSCRIBE on its node's subscriber connection), some abrupt, while stable peers keep
    relaying across nodes. Afterwards Redis must hold exactly the stable peers' channels: a lost
    or leaked subscription would show here, or as a relay that fails."""
    waves, per_wave = 10, 300
    fit_open_files(per_wave + 16)
    redis = start_redis(t)
    nodes = start_nodes(t, redis)

    async def run():
        stable = [await RawPeer().open(nodes[i].port) for i in range(3)]
        sem = asyncio.Semaphore(64)

        async def churn_one(i):
            async with sem:
                p = await RawPeer().open(nodes[i % 3].port)
            if i % 4 == 0:
                p.writer.transport.abort()  # gone without a close frame
            else:
                p.writer.write(h.frame(h.OP_CLOSE, struct.pack("!H", 1000)))
                p.writer.close()
            return p.id

        seen = set()
        for wave in range(waves):
            ids = await asyncio.gather(*(churn_one(wave * per_wave + i) for i in range(per_wave)))
            seen.update(ids)
            # Between waves, the stable peers still reach each other across nodes.
            for k, (a, b) in enumerate(((0, 1), (1, 2), (2, 0))):
                mid = f"w{wave}-{k}"
                stable[a].send({"type": "candidate", "to": stable[b].id, "payload": wave, "mid": mid})
                got = await stable[b].next_of("candidate", f"wave {wave}: relay {a}->{b}")
                same_json(got, {"type": "candidate", "from": stable[a].id, "payload": wave,
                                "mid": mid}, f"wave {wave}: relay {a}->{b}")
                same_json(await stable[a].next_of("ack", f"wave {wave}: ack"),
                          {"type": "ack", "mid": mid}, f"wave {wave}: ack {a}->{b}")
        h.eq(len(seen), waves * per_wave, "distinct churned peer IDs")
        # New peers after the churn are subscribed, and reachable from another node.
        fresh = [await RawPeer().open(nodes[i % 3].port) for i in range(30)]
        want = {key("channel", p.id) for p in stable + fresh}
        deadline = time.monotonic() + 10
        while not want <= peer_channels(redis) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        h.check(want <= peer_channels(redis), "fresh peers' channels subscribed after the churn")
        for i, p in enumerate(fresh):
            sender = stable[(i + 1) % 3]  # always on another node than p
            sender.send({"type": "offer", "to": p.id, "payload": i, "mid": f"f{i}"})
            same_json(await p.next_of("offer", f"fresh peer {i}"),
                      {"type": "offer", "from": sender.id, "payload": i, "mid": f"f{i}"},
                      f"offer to fresh peer {i}")
            same_json(await sender.next_of("ack", "ack"), {"type": "ack", "mid": f"f{i}"}, "ack")
        for p in fresh:
            p.writer.close()
        want = {key("channel", p.id) for p in stable}

        def settled():  # unsubscribes and ID releases travel on different connections
            h.eq(peer_channels(redis), want, "peer channels subscribed after the churn")
            h.eq(sum(redis.command("SCARD", key("ids", n.name)) for n in nodes), 3,
                 "peer IDs held after the churn")

        await eventually(settled, 10.0, interval=0.1)
        for p in stable:
            p.writer.close()

    h.arun(run(), timeout=60)


# ---------------------------------------------------------------------------------------------
# Start-up


def start_args(url, node_id="starter"):
    return ["--listen", f"{h.HOST}:0", "--redis", url, "--node-id", node_id] + NODE_ARGS


def test_replica_is_not_used(t):
    """A node whose address leads to a replica (a failover under way behind a name that follows
    the master, or the wrong server) does not use it: it says why and stays unready, and is
    ready once that server is promoted. When the server is demoted under running nodes (their
    writes answered READONLY) they are unready until it is a master again, and then relay
    across nodes as before, their records made again on the emptied server."""
    master = start_redis(t)
    server = start_redis(t, "--replicaof", h.HOST, str(master.port))
    n1 = cluster_node(t, server.url(), "n1")

    def said_why():
        h.check("not a master" in n1.log(), "n1 says why it does not use the replica")
    h.eventually(said_why, 5.0)
    h.check(readyz(n1) != 200, "n1 ready on a replica")
    h.eq(server.command("REPLICAOF", "NO", "ONE"), "OK", "REPLICAOF NO ONE")
    h.wait_status(n1.port, "/readyz", 200, 10.0)
    n2 = cluster_node(t, server.url(), "n2")
    h.wait_status(n2.port, "/readyz", 200, 5.0)

    async def run():
        a = await open_peer(n1.port, id="rep-a", name="a", node="n1")
        b = await open_peer(n2.port, id="rep-b", name="b", node="n2")
        await relay_ok(a, b, "before the demotion")

        await off_loop(server.command, "REPLICAOF", h.HOST, str(master.port))
        for n in (n1, n2):
            await off_loop(h.eventually, lambda: h.check(readyz(n) != 200, f"{n.name} ready "
                                                         "on a demoted server"), 5.0)
        await off_loop(server.command, "REPLICAOF", "NO", "ONE")
        for n in (n1, n2):
            await off_loop(h.wait_status, n.port, "/readyz", 200, 10.0)
        # The server is empty now (it copied its empty master): the nodes record their peers
        # again, as after a restart, and relay as before.
        await off_loop(h.eventually, lambda: h.eq(
            {k.decode() for k in server.command("KEYS", "sb:id:*")}, {"sb:id:rep-a", "sb:id:rep-b"},
            "the peers' IDs recorded again"), 10.0)
        await relay_ok(a, b, "after the promotion")
        await relay_ok(b, a, "after the promotion, back")
        await close_all(a, b)

    h.arun(run(), timeout=60)


def test_unreachable_redis_is_fatal(t):
    port = h.free_port()
    scheme = "redis+cluster" if CLUSTER else "redis"
    status, out, secs = run_to_exit(t.binary, start_args(f"{scheme}://{h.HOST}:{port}"))
    h.check(status not in (0, None), f"exit status {status} with nothing listening at the Redis "
                                     f"address; output:\n{out}")
    h.check(f"{h.HOST}:{port}" in out, f"the error does not name {h.HOST}:{port}:\n{out}")
    h.check("listening on" not in out, f"the node listened before giving up:\n{out}")
    h.check(secs < 5, f"took {secs:.1f} s to give up")


def test_redis_auth(t):
    password, user, user_pw = "s3cret-Pw", "sbuser", "us3r-Pw"
    redis = start_redis(t, "--requirepass", password, password=password)
    h.eq(redis.command("ACL", "SETUSER", user, "on", f">{user_pw}", "~sb:*", "&sb:*", "+@all"),
         "OK", "ACL SETUSER")
    base = f"{h.HOST}:{redis.masters()[0].port if CLUSTER else redis.port}"
    wrong = "n0t-the-Pw"
    scheme = "redis+cluster" if CLUSTER else "redis"
    refused = [
        (f"{scheme}://{base}", "no password"),
        (f"{scheme}://:{wrong}@{base}", "a wrong password"),
        (f"{scheme}://{user}:{wrong}@{base}", "an ACL user with a wrong password"),
        (f"{scheme}://nobody:{user_pw}@{base}", "an unknown ACL user"),
    ]
    for url, what in refused:
        status, out, secs = run_to_exit(t.binary, start_args(url))
        h.check(status not in (0, None), f"{what}: exit status {status}; output:\n{out}")
        h.check(base in out and re.search(r"auth|password|WRONGPASS|NOAUTH", out, re.I),
                f"{what}: the error names neither the address nor the authentication:\n{out}")
        h.check("listening on" not in out, f"{what}: the node listened:\n{out}")
        for secret in (wrong, user_pw):
            h.check(secret not in out, f"{what}: the password is in the output:\n{out}")
    # The right password (default user) and the ACL user both join the cluster.
    n1 = cluster_node(t, redis.url(password=password), "n1")
    n2 = cluster_node(t, redis.url(user=user, password=user_pw), "n2")
    for n in (n1, n2):
        h.wait_status(n.port, "/readyz", 200, 5)

    async def run():
        a = await open_peer(n1.port, name="a", node="n1")
        b = await open_peer(n2.port, name="b", node="n2")
        await all_pairs_relay([a, b], "with AUTH")
        await a.send({"type": "join", "room": "auth"})
        await a.expect({"type": "joined", "room": "auth", "peers": []}, "a joins")
        await b.send({"type": "join", "room": "auth"})
        await b.expect({"type": "joined", "room": "auth", "peers": [a.id]}, "b joins")
        await a.expect({"type": "peer-joined", "room": "auth", "peer": b.id}, "a hears b")
        await close_all(a, b)

    h.arun(run())
    clients = redis.command("CLIENT", "LIST").decode()
    # Its four connections, pub, sub, dir and upkeep (to each master of a cluster, with the two
    # that read the slot map, to a seed).
    h.eq(sorted(re.findall(r"name=switchboard-n2-\S+ .*?user=(\S+)", clients)),
         [user] * (4 * 3 + 2 if CLUSTER else 4), f"the ACL user's node connects as {user}")
    for n in (n1, n2):
        h.check(password not in n.log() and user_pw not in n.log(),
                f"{n.name}: a password in the node log\n" + n.log_tail())


TESTS = [
    test_replica_is_not_used,
    test_unreachable_redis_is_fatal,
    test_redis_auth,
    test_relay_across_nodes,
    test_ids_across_nodes,
    test_rooms_across_nodes,
    test_join_racing_a_disconnect_converges,
    test_claim_in_progress_does_not_hide_a_connected_peer,
    test_leave_right_after_join_takes_effect_in_order,
    test_redis_by_host_name,
    test_room_limit_across_nodes,
    test_haproxy_spreads_clients_over_nodes,
    test_redis_restart_during_traffic,
    test_room_changes_during_outage_reach_other_nodes,
    test_pubsub_connections_killed,
    test_node_killed,
    test_id_takeover_race_after_outage,
    test_quiet_cluster_3000_peers,
    test_subscription_churn,
]

# ---------------------------------------------------------------------------------------------
# Redis Cluster only


def spread_ids(redis, prefix, count):
    """count peer IDs (prefix and a number) whose keys fall on the masters of the cluster in
    turn, so that each master holds as many."""
    masters = [m.port for m in redis.masters()]
    picked, by_master, i = [], {p: 0 for p in masters}, 0
    while len(picked) < count:
        name = f"{prefix}{i}"
        i += 1
        owner = redis.key_owner(key("channel", name)).port
        if by_master[owner] < (count + len(masters) - 1) // len(masters):
            by_master[owner] += 1
            picked.append(name)
    return picked


def test_shards_share_the_traffic(t):
    """Redis Cluster: 30 peers on three nodes, their IDs spread over the three shards, each send
    the next 10 messages across nodes. Each peer's channel is subscribed once, at the master of
    its slot (PUBSUB SHARDNUMSUB); every master carries its share of the SPUBLISH traffic, and no
    node uses plain PUBLISH, which a cluster would broadcast to every master."""
    redis = start_redis(t)
    nodes = start_nodes(t, redis)
    ids = spread_ids(redis, "sp", 30)
    rounds = 10

    async def run():
        peers = [await open_peer(nodes[k % 3].port, id=name, name=name)
                 for k, name in enumerate(ids)]
        for p in peers:
            owner = redis.key_owner(key("channel", p.id))
            numsub = await off_loop(owner.command, "PUBSUB", "SHARDNUMSUB", key("channel", p.id))
            h.eq(numsub[1], 1, f"{p.name}: subscribers of its channel at its slot's master")
        before = {m.port: await off_loop(commandstats, m) for m in redis.masters()}
        for r in range(rounds):
            for k, p in enumerate(peers):
                q = peers[(k + 1) % len(peers)]
                await p.send({"type": "candidate", "to": q.id, "payload": r, "mid": f"{r}"})
            for k, p in enumerate(peers):
                q = peers[(k - 1) % len(peers)]
                await p.expect_set([{"type": "candidate", "from": q.id, "payload": r,
                                     "mid": f"{r}"}, {"type": "ack", "mid": f"{r}"}],
                                   f"round {r}: from {q.name}, and its own ack")
        per_master = {}
        for m in redis.masters():
            after = await off_loop(commandstats, m)
            per_master[m.port] = {c: after.get(c, 0) - before[m.port].get(c, 0)
                                  for c in ("spublish", "publish")}
        await close_all(*peers)
        return per_master

    per_master = h.arun(run(), timeout=40)
    total = rounds * len(ids)
    for port, calls in per_master.items():
        h.eq(calls["publish"], 0, f"plain PUBLISH calls on the master at {port}")
        # A third of the messages is on each master's channels (self-checks come on top).
        h.check(calls["spublish"] >= total // 3, f"SPUBLISH calls on the master at {port}: "
                                                 f"{calls['spublish']} for {total} messages")
    note(f"SPUBLISH calls per master for {total} messages: "
         f"{ {p: c['spublish'] for p, c in per_master.items()} }")


# What only one Redis has: a replica behind its URL, and an outage of all of it (on a cluster, a
# master failing over is the counterpart, in CLUSTER_TESTS).
SINGLE_ONLY = (test_replica_is_not_used, test_redis_restart_during_traffic,
               test_room_changes_during_outage_reach_other_nodes,
               test_id_takeover_race_after_outage)
CLUSTER_TESTS = [test_shards_share_the_traffic]

if __name__ == "__main__":
    if CLUSTER:
        TESTS = [t for t in TESTS if t not in SINGLE_ONLY] + CLUSTER_TESTS
    h.main(TESTS, test_timeout=70.0, echo=False)
