#!/usr/bin/python3
"""PeerJS's PeerServer protocol on Switchboard (proto/PEERJS.md), checked against the real
PeerServer: the `peer` package from npm (installed by tests/browser/setup.sh), run by each test
on a free port. The same scripted sequences of frames go to both servers, and what each client
receives (frames, parsed as JSON, and how its connection closed) is compared whole, per client:
only timings and generated IDs may differ. Switchboard runs one node, or two nodes on a real
Redis with the script's clients spread over them, where PeerServer has its one process.

Usage: test_peerjs.py PATH-TO-SWITCHBOARD"""

import asyncio
import http.client
import json
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

from test_cluster import NODE_ARGS, start_nodes, start_redis  # noqa: E402
import websockets  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_BIN = os.path.join(HERE, "..", "browser", "node_modules", "peer", "dist", "bin", "peerjs.js")
PATH = "/myapp/"
ALIVE_MS = 60000  # both servers' alive timeout (PeerServer's command line default)
EXPIRE_MS = 4000  # both servers' expire timeout: how long a message waits for its recipient
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class PeerServer(h.Service):
    """The real PeerServer (npm `peer` 1.0.2, its own command line) on 127.0.0.1."""

    name = "peerserver"

    def start(self, alive_ms=ALIVE_MS, args=()):
        h.check(os.path.exists(PEER_BIN), f"no {PEER_BIN}: run tests/browser/setup.sh")
        self.port = h.free_port()
        self.spawn(["node", PEER_BIN, "--host", "127.0.0.1", "--port", str(self.port),
                    "--path", PATH, "--alive_timeout", str(alive_ms), "--expire_timeout",
                    str(EXPIRE_MS), *args])

        def listening():
            h.check(self.alive(), "PeerServer exited")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError as e:
                raise h.Failure(f"PeerServer not listening on {self.port}: {e}")
        h.eventually(listening, 10.0, interval=0.05)
        return self


def switchboard(t, alive_ms=ALIVE_MS, args=()):
    return t.node(*peerjs_args(alive_ms), *NODE_ARGS, *args, echo=False)


def peerjs_args(alive_ms):
    return ("--peerjs-path", PATH, "--peerjs-alive-ms", str(alive_ms), "--peerjs-expire-ms",
            str(EXPIRE_MS))


def dumps(obj):
    """Canonical JSON, as PeerServer writes what it passes on."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Client:
    """One WebSocket of a script: every frame it receives, parsed, and how it closed."""

    def __init__(self, ws):
        self.ws = ws
        self.garbled = False
        self.events = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                self.events.append(("frame", json.loads(raw)))
        except websockets.ConnectionClosed:
            pass
        self.events.append(("closed", self.ws.close_code))


async def run_script(ports, script):
    """Plays script against a server (ports: the port of each node a client may use; a single
    server is given once per node) and returns {client: [events]}. Steps:
      ("open", name, node, query)    connects (the query after ?)
      ("send", name, obj or str)     a frame (an object as canonical JSON)
      ("expect", name, n)            waits until name has n events (at most 10 s)
      ("close", name)                closes name's connection (a close frame, code 1000)
      ("garbage", name, text)        a frame that is not a JSON object; nothing more on it
      ("quiet", secs)                lets secs pass, for what must not come"""
    clients = {}
    for step in script:
        kind = step[0]
        if kind == "open":
            _, name, node, query = step
            ws = await websockets.connect(f"ws://127.0.0.1:{ports[node]}{PATH}peerjs?{query}")
            clients[name] = Client(ws)
        elif kind == "send":
            _, name, frame = step
            await clients[name].ws.send(frame if isinstance(frame, str) else dumps(frame))
        elif kind == "expect":
            _, name, n = step
            for _ in range(1000):
                if len(clients[name].events) >= n:
                    break
                await asyncio.sleep(0.01)
            else:
                raise h.Failure(f"{name}: {len(clients[name].events)} events after 10 s, "
                                f"expected {n}: {clients[name].events}")
        elif kind == "garbage":
            # PeerServer's command line stops reading a socket that sent what JSON.parse
            # refuses (proto/PEERJS.md): only the frames before it are compared, not its close.
            _, name, raw = step
            clients[name].garbled = True
            clients[name].ws.close_timeout = 1
            await clients[name].ws.send(raw)
        elif kind == "close":
            await clients[step[1]].ws.close()
            await clients[step[1]].task
        elif kind == "quiet":
            await asyncio.sleep(step[1])
    await asyncio.sleep(0.3)  # anything more than expected
    for c in clients.values():
        await c.ws.close()
        await c.task
    return {name: [e for e in c.events if not (c.garbled and e[0] == "closed")]
            for name, c in clients.items()}


def compare(t, script, nodes=1, alive_ms=ALIVE_MS, theirs_args=(), our_args=()):
    """Runs script on PeerServer and on Switchboard (nodes: 1, or 2 on a Redis) and checks that
    each client received the same."""
    ps = t.service(PeerServer()).start(alive_ms, theirs_args)
    if nodes == 1:
        n = switchboard(t, alive_ms, our_args)
        ports = [n.port, n.port]
    else:
        redis = start_redis(t)
        ours = start_nodes(t, redis, count=2, args=peerjs_args(alive_ms))
        ports = [x.port for x in ours]
    theirs = h.arun(run_script([ps.port, ps.port], script), timeout=40)
    mine = h.arun(run_script(ports, script), timeout=40)
    for name in theirs:
        h.eq(mine[name], theirs[name], f"{name}: what Switchboard sent (right: PeerServer)")
    return mine


Q = "key=peerjs&id={}&token={}"

OFFER = {"sdp": {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"},
         "type": "data", "connectionId": "dc_abc123", "label": "dc_abc123",
         "reliable": False, "serialization": "binary"}
ANSWER = {"sdp": {"type": "answer", "sdp": "v=0\r\n"}, "type": "data",
          "connectionId": "dc_abc123"}
CANDIDATE = {"candidate": {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",
                           "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "ufrag"},
             "type": "data", "connectionId": "dc_abc123"}

RELAY = [
    ("open", "alice", 0, Q.format("alice", "ta")),
    ("expect", "alice", 1),
    ("open", "bob", 1, Q.format("bob", "tb")),
    ("expect", "bob", 1),
    ("send", "alice", {"type": "OFFER", "payload": OFFER, "dst": "bob"}),
    ("expect", "bob", 2),
    ("send", "bob", {"type": "ANSWER", "payload": ANSWER, "dst": "alice"}),
    ("expect", "alice", 2),
    ("send", "alice", {"type": "CANDIDATE", "payload": CANDIDATE, "dst": "bob"}),
    ("send", "alice", {"type": "CANDIDATE", "payload": CANDIDATE, "dst": "bob",
                       "src": "mallory", "extra": [1, 2]}),
    ("expect", "bob", 4),
    ("send", "bob", {"type": "OFFER", "dst": "alice"}),  # no payload
    ("send", "bob", {"type": "OFFER", "dst": "alice", "payload": None}),
    ("expect", "alice", 4),
    ("send", "alice", {"type": "HEARTBEAT"}),
    ("send", "alice", {"type": "NONSENSE", "dst": "bob", "payload": 1}),
    ("send", "alice", {"type": "offer", "dst": "bob", "payload": 1}),
    ("send", "alice", {"type": "OFFER", "payload": 1}),  # no dst
    ("send", "alice", {"type": "LEAVE", "dst": "bob"}),
    ("expect", "bob", 5),
]


def test_relay_as_peerserver(t):
    """OPEN, then OFFER, ANSWER and CANDIDATE both ways with src set by the server (a client's
    src and extra members dropped), a frame without payload or with null, HEARTBEAT answered
    by nothing, unknown types and a message without dst ignored, LEAVE passed on."""
    got = compare(t, RELAY)
    h.eq(got["bob"][1], ("frame", {"type": "OFFER", "src": "alice", "dst": "bob",
                                   "payload": OFFER}), "bob's first relayed frame")


def test_relay_across_two_nodes(t):
    """The same script with alice on one node and bob on another, through Redis: the same
    frames as PeerServer's one process sends."""
    compare(t, RELAY, nodes=2)


def test_refused_connections(t):
    """A missing id, token or key, a wrong key, and an ID held with another token: PeerServer's
    ERROR or ID-TAKEN, then a close without a status code; the holder is not disturbed."""
    compare(t, [
        ("open", "holder", 0, Q.format("taken", "t1")),
        ("expect", "holder", 1),
        ("open", "no-id", 0, "key=peerjs&token=x"),
        ("expect", "no-id", 2),
        ("open", "no-token", 0, "key=peerjs&id=nt"),
        ("expect", "no-token", 2),
        ("open", "no-key", 0, "id=nk&token=x"),
        ("expect", "no-key", 2),
        ("open", "empty-id", 0, "key=peerjs&id=&token=x"),
        ("expect", "empty-id", 2),
        ("open", "bad-key", 0, "key=nope&id=bk&token=x"),
        ("expect", "bad-key", 2),
        ("open", "thief", 0, Q.format("taken", "t2")),
        ("expect", "thief", 2),
        ("send", "holder", {"type": "HEARTBEAT"}),
    ])


def test_absent_peer_expires(t):
    """A message to a peer that never connects: EXPIRE naming it once the expire timeout has
    passed, and the sender's connection goes on."""
    compare(t, [
        ("open", "alice", 0, Q.format("alice", "ta")),
        ("expect", "alice", 1),
        ("send", "alice", {"type": "OFFER", "payload": OFFER, "dst": "nobody"}),
        ("expect", "alice", 2),
        ("open", "bob", 0, Q.format("bob", "tb")),
        ("expect", "bob", 1),
        ("send", "alice", {"type": "CANDIDATE", "payload": CANDIDATE, "dst": "bob"}),
        ("expect", "bob", 2),
    ])


def test_silent_connection_dropped(t):
    """A client that sends no HEARTBEAT for the alive timeout is closed without a status code
    (and nobody else is told); one that does, stays."""
    alive_ms = 2000
    compare(t, [
        ("open", "quiet", 0, Q.format("quiet", "tq")),
        ("open", "beating", 0, Q.format("beating", "tb")),
        ("expect", "quiet", 1),
        ("expect", "beating", 1),
        *[step for _ in range(6) for step in (("send", "beating", {"type": "HEARTBEAT"}),
                                               ("quiet", alive_ms / 1000 / 3))],
        ("expect", "quiet", 2),
        ("send", "beating", {"type": "OFFER", "payload": 1, "dst": "beating"}),
        ("expect", "beating", 2),
    ], alive_ms=alive_ms)


def test_reconnect_with_its_token(t):
    """A client that closes and connects again with its ID and token (PeerJS's reconnect) gets
    OPEN and the messages sent to it from then on; another token for that ID gets ID-TAKEN."""
    compare(t, [
        ("open", "first", 0, Q.format("comeback", "tc")),
        ("expect", "first", 1),
        ("open", "peer", 1, Q.format("peer", "tp")),
        ("expect", "peer", 1),
        ("close", "first"),
        ("open", "second", 0, Q.format("comeback", "tc")),
        ("expect", "second", 1),
        ("send", "peer", {"type": "OFFER", "payload": OFFER, "dst": "comeback"}),
        ("expect", "second", 2),
        ("open", "thief", 1, Q.format("comeback", "other")),
        ("expect", "thief", 2),
    ])


def test_frames_that_are_not_json(t):
    """Frames that are not JSON, or not objects: no answer, and the other peers are not
    disturbed."""
    compare(t, [
        ("open", "alice", 0, Q.format("alice", "ta")),
        ("expect", "alice", 1),
        ("open", "bob", 1, Q.format("bob", "tb")),
        ("expect", "bob", 1),
        ("open", "g1", 0, Q.format("g1", "t1")),
        ("open", "g2", 0, Q.format("g2", "t2")),
        ("open", "g3", 0, Q.format("g3", "t3")),
        ("expect", "g1", 1),
        ("expect", "g2", 1),
        ("expect", "g3", 1),
        ("garbage", "g1", "not json"),
        ("garbage", "g2", "[\"OFFER\"]"),
        ("garbage", "g3", '{"type":"OFFER","dst":"bob",'),
        ("send", "alice", {"type": "OFFER", "payload": OFFER, "dst": "bob"}),
        ("expect", "bob", 2),
    ])


def test_oversized_message(t):
    """A PeerJS frame over --max-message closes its connection with 1009 (PeerServer's limit is
    ws's 100 MiB: Switchboard's is the node's), and the ID is free again."""
    n = switchboard(t, args=("--max-message", "4096"))

    async def run():
        url = f"ws://127.0.0.1:{n.port}{PATH}peerjs?"
        big = await websockets.connect(url + Q.format("big", "tb"), max_size=None)
        h.eq(json.loads(await big.recv()), {"type": "OPEN"}, "OPEN")
        await big.send(dumps({"type": "OFFER", "dst": "x", "payload": "a" * 5000}))
        await big.wait_closed()
        h.eq(big.close_code, 1009, "close code for a frame over --max-message")

        def released():  # the node has handled the close (on a later turn than the socket's)
            status, body = h.get_status(n.port, "/metrics")
            h.check(re.search(rb"^switchboard_peerjs_connections 0$", body, re.M) is not None,
                    "the closed connection still counted")
        await asyncio.get_running_loop().run_in_executor(None, h.eventually, released, 5.0)
        again = await websockets.connect(url + Q.format("big", "other"))
        h.eq(json.loads(await again.recv()), {"type": "OPEN"}, "the ID, free again")
        await again.close()

    h.arun(run(), timeout=15)


def test_root_path(t):
    """--peerjs-path / (PeerJS's default path): the WebSocket at /peerjs and the API at
    /peerjs/id, while / stays the node's own page."""
    n = t.node("--peerjs-path", "/", *NODE_ARGS, echo=False)
    status, ctype, _, body = http_get(n.port, "/")
    h.eq((status, ctype), (200, "text/html; charset=utf-8"), "GET / (the demo page)")
    status, _, _, body = http_get(n.port, "/peerjs/id")
    h.check(status == 200 and UUID.match(body.decode()), f"GET /peerjs/id: {status} {body!r}")

    async def run():
        ws = await websockets.connect(f"ws://127.0.0.1:{n.port}/peerjs?" + Q.format("r", "t"))
        h.eq(json.loads(await ws.recv()), {"type": "OPEN"}, "OPEN at /peerjs")
        await ws.close()

    h.arun(run(), timeout=10)


def test_concurrent_limit(t):
    """PeerServer's --concurrent_limit and Switchboard's --peerjs-concurrent-limit: past it, a
    new connection gets PeerServer's ERROR and a close; once one leaves, a new one is welcome."""
    compare(t, [
        ("open", "one", 0, Q.format("one", "t1")),
        ("expect", "one", 1),
        ("open", "two", 0, Q.format("two", "t2")),
        ("expect", "two", 1),
        ("open", "three", 0, Q.format("three", "t3")),
        ("expect", "three", 2),
        ("close", "one"),
        ("quiet", 0.5),
        ("open", "four", 0, Q.format("four", "t4")),
        ("expect", "four", 1),
    ], theirs_args=("--concurrent_limit", "2"), our_args=("--peerjs-concurrent-limit", "2"))


def test_dialects_share_ids(t):
    """One namespace of IDs for both protocols, and messages between them: a protocol-v1 peer
    and a PeerJS peer cannot take each other's ID, and each receives the other's messages in
    its own protocol (two nodes on one Redis)."""
    redis = start_redis(t)
    n1, n2 = start_nodes(t, redis, count=2, args=peerjs_args(ALIVE_MS))

    async def run():
        v1 = await websockets.connect(f"ws://127.0.0.1:{n1.port}/ws?id=v1peer",
                                      subprotocols=[h.SUBPROTOCOL])
        h.eq(json.loads(await v1.recv())["type"], "welcome", "the v1 peer's welcome")
        pj = await websockets.connect(f"ws://127.0.0.1:{n2.port}{PATH}peerjs?"
                                      + Q.format("pjpeer", "tp"))
        h.eq(json.loads(await pj.recv()), {"type": "OPEN"}, "the PeerJS peer's OPEN")
        status, body = await asyncio.get_running_loop().run_in_executor(
            None, h.get_status, n2.port, "/metrics")
        h.check(re.search(rb"^switchboard_peerjs_connections 1$", body, re.M) is not None,
                "n2's /metrics counts its PeerJS connection")

        await v1.send(dumps({"type": "offer", "to": "pjpeer", "payload": OFFER, "mid": "m1"}))
        h.eq(json.loads(await v1.recv()), {"type": "ack", "mid": "m1"}, "ack of v1 to PeerJS")
        h.eq(json.loads(await pj.recv()),
             {"type": "OFFER", "src": "v1peer", "dst": "pjpeer", "payload": OFFER},
             "a v1 offer, as PeerJS frames it")
        await pj.send(dumps({"type": "ANSWER", "payload": ANSWER, "dst": "v1peer"}))
        h.eq(json.loads(await v1.recv()), {"type": "answer", "from": "pjpeer", "payload": ANSWER},
             "a PeerJS answer, as protocol v1 frames it")
        await pj.send(dumps({"type": "LEAVE", "dst": "v1peer"}))
        h.eq(json.loads(await v1.recv()), {"type": "bye", "from": "pjpeer"}, "LEAVE as bye")

        thief = await websockets.connect(f"ws://127.0.0.1:{n1.port}/ws?id=pjpeer",
                                         subprotocols=[h.SUBPROTOCOL])
        got = json.loads(await thief.recv())
        h.eq((got["type"], got["code"]), ("error", "id-taken"), "a v1 client asking pjpeer")
        await thief.wait_closed()
        h.eq(thief.close_code, 4001, "its close")
        thief = await websockets.connect(f"ws://127.0.0.1:{n2.port}{PATH}peerjs?"
                                         + Q.format("v1peer", "tx"))
        h.eq(json.loads(await thief.recv()),
             {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}, "a PeerJS client asking v1peer")
        await thief.wait_closed()
        await v1.close()
        await pj.close()

    h.arun(run(), timeout=20)


def http_get(port, path, headers=None, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.getheader("Content-Type"), resp.getheader(
        "Access-Control-Allow-Origin"), body


def test_http_api(t):
    """The info JSON at the path, a UUID at <key>/id, 401 for the peer list (discovery off), a
    CORS preflight, and the request's Origin echoed: as PeerServer answers."""
    ps = t.service(PeerServer()).start()
    n = switchboard(t)
    origin = {"Origin": "https://app.example"}
    for path in (PATH, PATH.rstrip("/"), f"{PATH}peers-key/peers", f"{PATH}peerjs/peers"):
        theirs, mine = http_get(ps.port, path, origin), http_get(n.port, path, origin)
        h.eq(mine, theirs, f"GET {path}")
    for path in (f"{PATH}peerjs/id", f"{PATH}anykey/id"):
        theirs, mine = http_get(ps.port, path, origin), http_get(n.port, path, origin)
        h.eq(mine[:3], theirs[:3], f"GET {path}: status, type, CORS")
        h.check(UUID.match(mine[3].decode()) is not None, f"GET {path}: {mine[3]!r} not a UUID")
        h.check(UUID.match(theirs[3].decode()) is not None, f"PeerServer's {path}: {theirs[3]!r}")
    pre = {**origin, "Access-Control-Request-Method": "GET",
           "Access-Control-Request-Headers": "x-one"}
    theirs = http_get(ps.port, f"{PATH}peerjs/id", pre, method="OPTIONS")
    mine = http_get(n.port, f"{PATH}peerjs/id", pre, method="OPTIONS")
    h.eq((mine[0], mine[2], mine[3]), (theirs[0], theirs[2], theirs[3]), "a CORS preflight")


LATE = [
    ("open", "alice", 0, Q.format("alice", "ta")),
    ("expect", "alice", 1),
    ("send", "alice", {"type": "OFFER", "payload": OFFER, "dst": "late"}),
    ("send", "alice", {"type": "CANDIDATE", "payload": CANDIDATE, "dst": "late"}),
    ("quiet", 0.3),
    ("open", "late", 1, Q.format("late", "tl")),
    ("expect", "late", 3),
    ("send", "late", {"type": "ANSWER", "payload": ANSWER, "dst": "alice"}),
    ("expect", "alice", 2),
]


def test_peer_that_connects_late(t):
    """Messages to a peer that connects within the expire timeout wait for it and follow its
    OPEN, in order; the sender hears no EXPIRE."""
    compare(t, LATE)


def test_peer_that_connects_late_on_another_node(t):
    """The same with the late peer connecting to the other node: the messages wait in the
    cluster, not in one process."""
    compare(t, LATE, nodes=2)


TESTS = [
    test_relay_as_peerserver,
    test_relay_across_two_nodes,
    test_refused_connections,
    test_absent_peer_expires,
    test_peer_that_connects_late,
    test_peer_that_connects_late_on_another_node,
    test_silent_connection_dropped,
    test_reconnect_with_its_token,
    test_frames_that_are_not_json,
    test_oversized_message,
    test_root_path,
    test_concurrent_limit,
    test_dialects_share_ids,
    test_http_api,
]

if __name__ == "__main__":
    h.main(TESTS, test_timeout=90.0, echo=False)
