#!/usr/bin/python3
"""Switchboard's signaling relay (protocol v1, proto/PROTOCOL.md) checked to the letter from the
clients' side: welcome and peer IDs, relaying with acks and errors, rooms, bad input, and a node
under stress. Clients are Debian's python3-websockets 10.4 (legacy asyncio API); every JSON the
server sends is parsed strictly and compared whole. Usage: test_relay.py PATH-TO-SWITCHBOARD"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check_error, same_json, strict_loads  # noqa: E402

from client import (  # noqa: E402
    ConnectionClosed,
    Peer,
    close_all,
    connect,
    dumps,
    expect_refused,
    requests_in_one_write,
    rst,
)

NODE_ID = "relay-test.node_1"
SHARED = ["--ice-servers", "[]", "--node-id", NODE_ID, "--log-level", "debug"]
RELAY_TYPES = ("offer", "answer", "candidate", "bye")
RANDOM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16}$")
PEER_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DEFAULT_ICE = [{"urls": "stun:stun.l.google.com:19302"}]


def uniq(prefix):
    """A name no other test uses (IDs and rooms on the shared node must not collide)."""
    return f"{prefix}-{os.urandom(4).hex()}"


def canon(obj):
    """A canonical text of a JSON value, to compare messages whose order is not promised."""
    return json.dumps(obj, sort_keys=True)


# ---------------------------------------------------------------------------------------------
# Clients


async def open_peer(port, id=None, name="", query=None, **kw):
    """Connects (asking for id when given), checks the welcome and returns a Peer."""
    q = query if query is not None else (f"?id={id}" if id is not None else "")
    ws = await connect(port, q, **kw)
    try:
        raw = await asyncio.wait_for(ws.recv(), 3)
    except asyncio.TimeoutError:
        await ws.close()
        raise h.Failure(f"{name or id}: no welcome within 3 s")
    except ConnectionClosed as e:
        raise h.Failure(f"{name or id}: closed before the welcome ({e})")
    msg = strict_loads(raw, "welcome")
    h.eq(sorted(msg), ["iceServers", "id", "node", "type"], f"welcome keys ({raw})")
    h.eq(msg["type"], "welcome", "welcome type")
    h.check(isinstance(msg["id"], str) and PEER_ID_RE.match(msg["id"]), f"welcome id {msg['id']!r}")
    if id is not None:
        h.eq(msg["id"], id, "welcome id when asked for")
    return Peer(ws, msg, name)


async def open_peers(port, n, prefix="p"):
    return list(await asyncio.gather(*(open_peer(port, name=f"{prefix}{i}") for i in range(n))))


async def relay_ok(a, b, what, mid=None):
    """a sends b an offer with a mid; b gets it exactly, a gets exactly its ack: the connections
    still work."""
    mid = mid if mid is not None else uniq("ok")
    await a.send({"type": "offer", "to": b.id, "payload": {"check": what}, "mid": mid})
    await b.expect({"type": "offer", "from": a.id, "payload": {"check": what}, "mid": mid},
                   f"relay after {what}")
    await a.expect({"type": "ack", "mid": mid}, f"ack after {what}")


def relay_node(t, *args):
    """A relay-mode node for one test alone (stopped and checked when the test ends)."""
    return t.node("--ice-servers", "[]", *args, echo=False)


# ---------------------------------------------------------------------------------------------
# welcome and peer IDs


def test_welcome_reflects_node_options(t):
    ice = [{"urls": ["stun:stun.example.org:3478", "turn:turn.example.org?transport=tcp"],
            "username": "user", "credential": "s3cr\u00e9t \"quoted\""},
           {"urls": "stun:[::1]:3478"}]
    n = relay_node(t, "--node-id", "Node-42_x.y", "--ice-servers", dumps(ice))
    n2 = t.node("--node-id", "n2", echo=False)  # no --ice-servers: the default

    async def run():
        p = await open_peer(n.port)
        same_json(p.welcome,
                  {"type": "welcome", "id": p.id, "node": "Node-42_x.y", "iceServers": ice},
                  "welcome with --node-id and --ice-servers")
        q = await open_peer(t.port)
        same_json(q.welcome, {"type": "welcome", "id": q.id, "node": NODE_ID, "iceServers": []},
                  "welcome with --ice-servers []")
        r = await open_peer(n2.port)
        same_json(r.welcome,
                  {"type": "welcome", "id": r.id, "node": "n2", "iceServers": DEFAULT_ICE},
                  "welcome with the default ICE servers")
        await close_all(p, q, r)
    h.arun(run())


def test_welcome_turn_credentials(t):
    """With --turn-uris and --turn-secret, welcome adds the TURN servers with a credential by the
    TURN REST convention coturn implements: username "<expiry>:<peer id>", credential
    base64(HMAC-SHA1(secret, username)), valid for --turn-ttl; recomputed here."""
    import base64
    import hashlib
    import hmac

    secret, ttl = "shared s3cret", 600
    uris = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"]
    ice = [{"urls": "stun:stun.example.org:3478"}]
    n = t.node("--ice-servers", dumps(ice), "--turn-uris", ",".join(uris), "--turn-ttl", str(ttl),
               env={"SWITCHBOARD_TURN_SECRET": secret}, echo=False)
    n2 = relay_node(t, "--ice-servers", "[]", "--turn-uris", uris[0], "--turn-secret", secret)

    async def run():
        for node, base in ((n, ice), (n2, [])):
            p = await open_peer(node.port, id="turn-user_1")
            got = p.welcome["iceServers"]
            h.eq(got[:-1], base, "the configured ICE servers come first")
            turn = got[-1]
            h.eq(sorted(turn), ["credential", "urls", "username"], f"the TURN entry: {turn}")
            h.eq(turn["urls"], uris if node is n else uris[:1], "TURN URIs")
            expiry, _, peer = turn["username"].partition(":")
            h.eq(peer, "turn-user_1", "username's peer ID")
            h.check(abs(int(expiry) - (time.time() + ttl)) < 5 if node is n else
                    abs(int(expiry) - (time.time() + 3600)) < 5, f"expiry {expiry}")
            want = base64.b64encode(hmac.new(secret.encode(), turn["username"].encode(),
                                             hashlib.sha1).digest()).decode()
            h.eq(turn["credential"], want, "credential = base64(HMAC-SHA1(secret, username))")
            await p.close()
    h.arun(run())
    h.check(secret not in n.log() and secret not in n2.log(), "the secret is in a log")
    for args, says in ((["--turn-uris", uris[0]], "--turn-uris and --turn-secret go together"),
                       (["--turn-secret", "x"], "--turn-uris and --turn-secret go together"),
                       (["--turn-uris", "http://x", "--turn-secret", "x"], "--turn-uris:"),
                       (["--turn-uris", "turn:a,,turn:b", "--turn-secret", "x"], "--turn-uris:"),
                       (["--turn-uris", 'turn:"a"', "--turn-secret", "x"], "--turn-uris:")):
        p = subprocess.run([t.binary] + args, capture_output=True, timeout=10)
        h.eq(p.returncode, 2, f"exit status for {args}")
        h.check(says.encode() in p.stderr, f"{args}: {p.stderr!r}")


def test_welcome_default_node_id(t):
    n = t.node(echo=False)

    async def run():
        p = await open_peer(n.port)
        node = p.welcome["node"]
        h.check(isinstance(node, str) and PEER_ID_RE.match(node),
                f"default node id {node!r} is not 1-64 of [A-Za-z0-9_.-]")
        q = await open_peer(n.port)
        h.eq(q.welcome["node"], node, "node id of a second connection")
        same_json(p.welcome["iceServers"], DEFAULT_ICE, "default iceServers")
        await close_all(p, q)
    h.arun(run())


def test_welcome_is_first_with_or_without_subprotocol(t):
    async def run():
        p = await open_peer(t.port)
        h.eq(p.ws.subprotocol, h.SUBPROTOCOL, "subprotocol when offered")
        q = await open_peer(t.port, subprotocols=())
        h.eq(q.ws.subprotocol, None, "subprotocol when none offered")
        await relay_ok(q, p, "no subprotocol offered")
        await relay_ok(p, q, "subprotocol offered")
        await close_all(p, q)
    h.arun(run())


def test_random_ids(t):
    async def run():
        peers = await open_peers(t.port, 20)
        ids = [p.id for p in peers]
        for i in ids:
            h.check(RANDOM_ID_RE.match(i), f"random id {i!r} is not 16 characters of base64url")
        h.eq(len(set(ids)), len(ids), f"distinct random ids ({ids})")
        await relay_ok(peers[0], peers[19], "random ids")
        await close_all(*peers)
        # New connections after those closed get new IDs too.
        more = await open_peers(t.port, 3)
        for p in more:
            h.check(p.id not in ids, f"random id {p.id} handed out twice")
        await close_all(*more)
    h.arun(run())


def test_requested_id_honoured(t):
    async def run():
        name = uniq("Alice_1.2")
        a = await open_peer(t.port, id=name)
        same_json(a.welcome, {"type": "welcome", "id": name, "node": NODE_ID, "iceServers": []},
                  "welcome for ?id=")
        long_name = ("L-" + os.urandom(4).hex() + "_." + "x" * 64)[:64]
        b = await open_peer(t.port, id=long_name)
        h.eq(len(b.id), 64, "a 64-character id")
        for one in ("a", "Z", "0", "_", ".", "-"):  # 1-character ids of each kind
            p = await open_peer(t.port, id=one)
            await p.close()
        await relay_ok(b, a, "requested ids")
        await relay_ok(a, b, "requested ids (back)")
        await close_all(a, b)
    h.arun(run())


def test_bad_ids_refused_with_4002(t):
    cases = [
        ("id=" + "a" * 65, "65 characters"),
        ("id=" + "b" * 200, "200 characters"),
        ("id=a%20b", "url-encoded space"),
        ("id=%", "a lone %"),
        ("id=", "empty"),
        ("id=a+b", "a plus sign"),
        ("id=a:b", "a colon (allowed in rooms, not in ids)"),
        ("id=a/b", "a slash"),
        ("id=caf%C3%A9", "url-encoded non-ASCII"),
        ("id=a*b", "an asterisk"),
    ]

    async def run():
        for query, what in cases:
            await expect_refused(t.port, "?" + query, "bad-id", 4002, f"?{query} ({what})")
    h.arun(run())


def test_id_taken_refused_with_4001(t):
    async def run():
        name = uniq("holder")
        a = await open_peer(t.port, id=name)
        for attempt in range(2):
            await expect_refused(t.port, f"?id={name}", "id-taken", 4001,
                                 f"second ?id={name} #{attempt}")
        # The holder is unaffected: it heard nothing, and messages to its ID still reach it.
        c = await open_peer(t.port)
        await c.send({"type": "offer", "to": name, "payload": "still yours?", "mid": 1})
        await a.expect({"type": "offer", "from": c.id, "payload": "still yours?", "mid": 1},
                       "first message to the holder after the refused attempts")
        await c.expect({"type": "ack", "mid": 1}, "ack for the holder")
        await relay_ok(a, c, "id-taken")
        await close_all(a, c)
    h.arun(run())


async def reclaim(port, name, what, secs=2.0):
    """Asks for name until it is granted (the old holder is released on a later loop turn)."""
    deadline = time.monotonic() + secs
    while True:
        ws = await connect(port, f"?id={name}")
        msg = strict_loads(await asyncio.wait_for(ws.recv(), 3), what)
        if msg.get("type") == "welcome":
            h.eq(msg["id"], name, f"{what}: id")
            return Peer(ws, msg, name)
        check_error(msg, "id-taken", f"{what}: while waiting")
        await ws.close()
        if time.monotonic() > deadline:
            raise h.Failure(f"{what}: {name} still taken {secs} s after its holder left")
        await asyncio.sleep(0.02)


def test_id_free_after_holder_leaves(t):
    async def run():
        name = uniq("reuse")
        a = await open_peer(t.port, id=name)
        await a.close()  # clean close
        b = await reclaim(t.port, name, "after a clean close")
        rst(b.ws)  # then an abrupt one
        c = await reclaim(t.port, name, "after a TCP reset")
        d = await open_peer(t.port)
        await relay_ok(d, c, "reclaimed id")
        await close_all(c, d)
    h.arun(run())


# ---------------------------------------------------------------------------------------------
# Relaying


def test_relay_each_type(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        payloads = {
            "offer": {"type": "offer",
                      "sdp": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"},
            "answer": {"type": "answer", "sdp": "v=0\r\n"},
            "candidate": {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",
                          "sdpMid": "0", "sdpMLineIndex": 0},
            "bye": None,
        }
        for typ in RELAY_TYPES:
            mid = f"m-{typ}"
            await a.send({"type": typ, "to": b.id, "payload": payloads[typ], "mid": mid})
            await b.expect({"type": typ, "from": a.id, "payload": payloads[typ], "mid": mid}, typ)
            await a.expect({"type": "ack", "mid": mid}, f"ack for {typ}")
            # And back, without payload or mid.
            await b.send({"type": typ, "to": a.id})
            await a.expect({"type": typ, "from": b.id}, f"{typ} without payload or mid")
        await a.silence("no ack when no mid")
        await close_all(a, b)
    h.arun(run())


def test_from_cannot_be_spoofed(t):
    async def run():
        a, b, m = await open_peers(t.port, 3)
        for i, text in enumerate([
            f'{{"type":"offer","from":"mallory","to":"{b.id}","payload":1,"mid":"s0"}}',
            f'{{"type":"answer","to":"{b.id}","from":"{m.id}","payload":1,"mid":"s1"}}',
            f'{{"type":"candidate","to":"{b.id}","from":"{b.id}","payload":1,"mid":"s2"}}',
            f'{{"type":"bye","to":"{b.id}","from":{{"id":"mallory"}},"payload":1,"mid":"s3"}}',
        ]):
            typ = json.loads(text)["type"]
            await a.send(text)
            await b.expect({"type": typ, "from": a.id, "payload": 1, "mid": f"s{i}"},
                           f"relayed message with a client 'from' ({text})")
            await a.expect({"type": "ack", "mid": f"s{i}"}, "ack")
        await m.silence("the spoofed 'from' peer hears nothing")
        await close_all(a, b, m)
    h.arun(run())


def test_payload_forwarded_byte_exact(t):
    nested = "[" * 20 + '{"deep" : true}' + "]" * 20
    payloads = [
        '{ "sdp" :  "v=0\\r\\n" ,\t"n":1.0e5 ,"big":12345678901234567890, "neg":-0.0,'
        ' "e":"\\u00e9\\u00E9\\/\\"\\\\", "arr":[ [1, [2 , [3]]] , [], {} ],'
        ' "t":true,"f":false,"z":null }',
        '"caf\u00e9 \U0001F600 \\ud83d\\ude00 \\t tab"',
        "1.0e5",
        "-12345678901234567890.125E-3",
        "12345678901234567890",
        "0",
        "[1 , 2.50 ,\n 1E+2, \"x\"]",
        "true",
        "false",
        "null",
        "{}",
        "[]",
        '""',
        nested,
        '{"a":{"b":{"c":{"d":[{"e":"\\u0000\\u001f"}]}}}}',
    ]

    async def run():
        a, b = await open_peers(t.port, 2)
        for i, payload in enumerate(payloads):
            for spaced in (False, True):
                mid = f"bx{i}{'s' if spaced else ''}"
                if spaced:  # whitespace around the value is not part of it
                    text = (f'  {{ "type" : "offer" , "to" : "{b.id}" , "payload" :\n {payload}'
                            f' \r\n, "mid" : "{mid}" }}\n')
                else:
                    text = f'{{"type":"offer","to":"{b.id}","payload":{payload},"mid":"{mid}"}}'
                await a.send(text)
                raw = await b.recv_raw(what=f"payload {payload[:30]!r}")
                h.check(re.search(r'"payload"\s*:\s*' + re.escape(payload) + r'\s*[,}]', raw),
                        f"payload bytes not forwarded verbatim:\n sent {payload!r}\n got  {raw!r}")
                got = strict_loads(raw, "relayed")
                want = {"type": "offer", "from": a.id, "payload": json.loads(payload), "mid": mid}
                same_json(got, want, f"relayed message for payload {payload[:40]!r}")
                await a.expect({"type": "ack", "mid": mid}, "ack")
        # A large payload, close to the 64 KiB message limit, also goes through unchanged.
        blob = '{"sdp":"' + "a=candidate:\\u00e9 " * 3000 + '"}'
        text = f'{{"type":"offer","to":"{b.id}","payload":{blob},"mid":"big"}}'
        h.check(len(text.encode()) <= 65536, "big message fits the limit")
        await a.send(text)
        raw = await b.recv_raw(what="big payload")
        h.check(blob in raw, f"big payload changed ({len(raw)} bytes received)")
        await a.expect({"type": "ack", "mid": "big"}, "ack for the big payload")
        await close_all(a, b)
    h.arun(run())


def test_payload_absent_or_null(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        await a.send({"type": "offer", "to": b.id, "mid": "none"})
        got = await b.expect({"type": "offer", "from": a.id, "mid": "none"}, "no payload")
        h.check("payload" not in got, "payload present though none was sent")
        await a.expect({"type": "ack", "mid": "none"}, "ack")
        await a.send(f'{{"type":"offer","to":"{b.id}","payload":null,"mid":"null"}}')
        raw = await b.recv_raw()
        h.check(re.search(r'"payload"\s*:\s*null\s*[,}]', raw),
                f"payload null not forwarded: {raw!r}")
        same_json(strict_loads(raw, "null payload"),
                  {"type": "offer", "from": a.id, "payload": None, "mid": "null"}, "null payload")
        await a.expect({"type": "ack", "mid": "null"}, "ack")
        await b.send({"type": "bye", "to": a.id})
        await a.expect({"type": "bye", "from": b.id}, "bye with neither payload nor mid")
        await b.silence("no ack without mid")
        await close_all(a, b)
    h.arun(run())


def test_mid_echoed_as_sent(t):
    mids = ["abc", "", "x" * 64, "\u00e9" * 32, "\U0001F600" * 16, 'q"\\/\n\t\u0001', "1",
            42, 0, -7, 3.25, -0.5, 1e3, 12345678901234567890]
    raw_mids = ['"\\u0041\\u00e9"', "1.0e5", "-0", "2E-3", "1.50"]

    async def run():
        a, b = await open_peers(t.port, 2)
        for mid in mids:
            await a.send({"type": "candidate", "to": b.id, "payload": {}, "mid": mid})
            await b.expect({"type": "candidate", "from": a.id, "payload": {}, "mid": mid},
                           f"relayed with mid {mid!r}")
            await a.expect({"type": "ack", "mid": mid}, f"ack for mid {mid!r}")
        # Mids as the sender wrote them: the same JSON value back.
        for mid in raw_mids:
            await a.send(f'{{"type":"candidate","to":"{b.id}","mid":{mid}}}')
            want = json.loads(mid)
            await b.expect({"type": "candidate", "from": a.id, "mid": want},
                           f"relayed with mid {mid}")
            await a.expect({"type": "ack", "mid": want}, f"ack for mid {mid}")
        await close_all(a, b)
    h.arun(run())


def test_mid_length_limits(t):
    # PROTOCOL.md: a string of at most 64 bytes once decoded, or a number written in at most 64
    # characters.
    async def run():
        a, b = await open_peers(t.port, 2)
        ok = [("64-digit number", "1" + "0" * 63, int("1" + "0" * 63)),
              ("64-character negative number", "-" + "9" * 63, -int("9" * 63)),
              ("64-character number with fraction and exponent", "1." + "5" * 58 + "e-10",
               float("1." + "5" * 58 + "e-10")),
              ("64 bytes as 32 escaped 2-byte characters",
               '"' + "\\u00e9" * 32 + '"', "\u00e9" * 32),
              ("64 bytes as 64 escaped control characters",
               '"' + "\\u0001" * 64 + '"', "\u0001" * 64),
              ("64 bytes as 16 escaped surrogate pairs",
               '"' + "\\ud83d\\ude00" * 16 + '"', "\U0001F600" * 16)]
        for what, raw_mid, want in ok:
            await a.send(f'{{"type":"offer","to":"{b.id}","mid":{raw_mid}}}')
            await a.expect({"type": "ack", "mid": want}, f"ack for a mid of {what}")
            await b.expect({"type": "offer", "from": a.id, "mid": want},
                           f"relayed with a mid of {what}")
        T = f'"to":"{b.id}"'
        await check_bad(a, b, [
            ("65-digit number mid", f'{{"type":"offer",{T},"mid":{"1" + "0" * 64}}}', None),
            ("65-character negative number mid",
             f'{{"type":"offer",{T},"mid":{"-" + "9" * 64}}}', None),
            ("65 bytes as escaped characters",
             '{"type":"offer",' + T + ',"mid":"' + "\\u00e9" * 32 + 'x"}', None),
        ])
        await close_all(a, b)
    h.arun(run())


def test_no_mid_no_ack(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        await a.send({"type": "offer", "to": b.id, "payload": "silent"})
        await b.expect({"type": "offer", "from": a.id, "payload": "silent"}, "relayed without mid")
        await a.silence("success without a mid is silent")
        await a.send({"type": "answer", "to": b.id, "payload": "loud", "mid": "loud"})
        await a.expect({"type": "ack", "mid": "loud"}, "the next thing the sender hears is its ack")
        await b.expect({"type": "answer", "from": a.id, "payload": "loud", "mid": "loud"},
                       "relayed")
        await close_all(a, b)
    h.arun(run())


def test_peer_unavailable(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        nobody = uniq("nobody")
        await a.send({"type": "offer", "to": nobody, "payload": {"sdp": "x"}, "mid": "u1"})
        await a.expect_error("peer-unavailable", "to an unknown id with a string mid", to=nobody,
                             mid="u1")
        await a.send({"type": "candidate", "to": nobody, "mid": 5})
        await a.expect_error("peer-unavailable", "with a number mid", to=nobody, mid=5)
        await a.send({"type": "bye", "to": nobody})
        got = await a.expect_error("peer-unavailable", "without mid", to=nobody)
        h.check("mid" not in got, f"mid in an error for a message without one: {got}")
        far = "z" * 64  # a valid, unused 64-character id: unavailable, not a bad request
        await a.send({"type": "answer", "to": far, "mid": "far"})
        await a.expect_error("peer-unavailable", "to a 64-character id", to=far, mid="far")
        # A peer that has closed is unavailable as soon as its close is done.
        gone = b.id
        await b.close()
        await a.send({"type": "offer", "to": gone, "payload": 1, "mid": "gone"})
        await a.expect_error("peer-unavailable", "to a peer that closed", to=gone, mid="gone")
        await a.close()
    h.arun(run())


def test_order_of_500_candidates(t):
    count = 500

    async def run():
        a, b = await open_peers(t.port, 2)

        def cand(i):
            return {"candidate": f"candidate:{i} 1 udp {2122260223 - i} 192.0.2.{i % 250} "
                                 f"{40000 + i} typ host",
                    "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": None}

        async def sender():
            for i in range(count):
                await a.send({"type": "candidate", "to": b.id, "payload": cand(i), "mid": i})

        async def receiver():
            for i in range(count):
                got = await b.recv(what=f"candidate {i}")
                same_json(got, {"type": "candidate", "from": a.id, "payload": cand(i), "mid": i},
                          f"candidate {i} (in order)")

        async def acks():
            seen = []
            for i in range(count):
                got = await a.recv(what=f"ack {i}")
                h.check(got.get("type") == "ack" and sorted(got) == ["mid", "type"],
                        f"expected an ack, got {got}")
                seen.append(got["mid"])
            h.eq(sorted(seen), list(range(count)), "acks received, one per candidate")

        await asyncio.gather(sender(), receiver(), acks())
        await a.silence("nothing after the acks")
        await b.silence("nothing after the candidates")
        await close_all(a, b)
    h.arun(run())


def test_relay_to_oneself(t):
    async def run():
        (a,) = await open_peers(t.port, 1)
        await a.send({"type": "offer", "to": a.id, "payload": {"loop": True}, "mid": "self"})
        got = [await a.recv(), await a.recv()]
        want = [{"type": "offer", "from": a.id, "payload": {"loop": True}, "mid": "self"},
                {"type": "ack", "mid": "self"}]
        h.check(sorted(map(canon, got)) == sorted(map(canon, want)),
                f"relay to oneself: expected {want} in any order, got {got}")
        await a.send({"type": "bye", "to": a.id})
        await a.expect({"type": "bye", "from": a.id}, "bye to oneself, no mid")
        await a.silence("no ack without mid")
        await a.close()
    h.arun(run())


# ---------------------------------------------------------------------------------------------
# Rooms


def test_join_and_peer_joined(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        room = uniq("room:lobby_1.x")
        await a.send({"type": "join", "room": room, "mid": "j1"})
        await a.expect({"type": "joined", "room": room, "peers": [], "mid": "j1"}, "first to join")
        await b.send({"type": "join", "room": room})
        got = await b.expect({"type": "joined", "room": room, "peers": [a.id]},
                             "second to join (no mid)")
        h.check("mid" not in got, "mid in joined though none was sent")
        await a.expect({"type": "peer-joined", "room": room, "peer": b.id}, "peer-joined")
        await b.silence("the joiner is not told of itself")
        await a.silence("one peer-joined only")
        # Rooms are for discovery; relaying works as before.
        await relay_ok(b, a, "join")
        await close_all(a, b)
    h.arun(run())


def test_join_twice_tells_nobody(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        room = uniq("twice")
        await a.send({"type": "join", "room": room})
        await a.expect({"type": "joined", "room": room, "peers": []}, "join")
        await b.send({"type": "join", "room": room})
        await b.expect({"type": "joined", "room": room, "peers": [a.id]}, "join")
        await a.expect({"type": "peer-joined", "room": room, "peer": b.id}, "peer-joined")
        await b.send({"type": "join", "room": room, "mid": 2})
        await b.expect({"type": "joined", "room": room, "peers": [a.id], "mid": 2}, "joining again")
        await a.send({"type": "join", "room": room, "mid": "again"})
        await a.expect({"type": "joined", "room": room, "peers": [b.id], "mid": "again"},
                       "joining again")
        await a.silence("nobody is told of a repeated join")
        await b.silence("nobody is told of a repeated join")
        # Still one membership each: one leave is enough.
        await b.send({"type": "leave", "room": room})
        await b.expect({"type": "left", "room": room}, "leave")
        await a.expect({"type": "peer-left", "room": room, "peer": b.id}, "peer-left")
        await b.send({"type": "leave", "room": room, "mid": "x"})
        await b.expect_error("not-joined", "second leave", room=room, mid="x")
        await close_all(a, b)
    h.arun(run())


def test_leave_and_peer_left(t):
    async def run():
        a, b, c = await open_peers(t.port, 3)
        room = uniq("leave")
        for i, p in enumerate((a, b)):
            await p.send({"type": "join", "room": room})
            await p.expect({"type": "joined", "room": room, "peers": [a.id] if i else []}, "join")
        await a.expect({"type": "peer-joined", "room": room, "peer": b.id}, "peer-joined")
        await b.send({"type": "leave", "room": room, "mid": "l"})
        await b.expect({"type": "left", "room": room, "mid": "l"}, "left with mid")
        await a.expect({"type": "peer-left", "room": room, "peer": b.id}, "peer-left")
        await b.silence("the leaver is not told of itself")
        await a.send({"type": "leave", "room": room})
        got = await a.expect({"type": "left", "room": room}, "left without mid")
        h.check("mid" not in got, "mid in left though none was sent")
        await b.silence("peer-left goes only to members")
        # The room is gone; joining it again starts afresh.
        await c.send({"type": "join", "room": room, "mid": 0})
        await c.expect({"type": "joined", "room": room, "peers": [], "mid": 0},
                       "join of an emptied room")
        await close_all(a, b, c)
    h.arun(run())


def test_requests_take_effect_in_order(t):
    """join, leave, join and leave again in one write: each answered in order, and the room
    ends empty; then join, leave, join: the peer ends in the room."""
    room, first, second = uniq("order"), uniq("first"), uniq("second")
    ask = [{"type": "join", "room": room, "mid": 1}, {"type": "leave", "room": room, "mid": 2},
           {"type": "join", "room": room, "mid": 3}, {"type": "leave", "room": room, "mid": 4}]
    conn, got = requests_in_one_write(t.port, first, ask)
    same_json(got, [{"type": "joined", "room": room, "peers": [], "mid": 1},
                    {"type": "left", "room": room, "mid": 2},
                    {"type": "joined", "room": room, "peers": [], "mid": 3},
                    {"type": "left", "room": room, "mid": 4}], f"{first}: answers in order")
    conn2, got = requests_in_one_write(t.port, second, ask[:3])
    same_json(got[2], {"type": "joined", "room": room, "peers": [], "mid": 3},
              f"{second}: the room was empty")

    async def run():
        third = await open_peer(t.port, name="third")
        await third.send({"type": "join", "room": room})
        await third.expect({"type": "joined", "room": room, "peers": [second]},
                           f"{second} is in the room")
        await third.close()

    try:
        h.arun(run())
    finally:
        conn.close()
        conn2.close()


def test_leave_when_not_in(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        room = uniq("others")
        await b.send({"type": "join", "room": room})
        await b.expect({"type": "joined", "room": room, "peers": []}, "join")
        await a.send({"type": "leave", "room": room, "mid": "nj"})
        await a.expect_error("not-joined", "leave of a room with others in it", room=room, mid="nj")
        missing = uniq("nowhere")
        await a.send({"type": "leave", "room": missing, "mid": 17})
        await a.expect_error("not-joined", "leave of a room that does not exist", room=missing,
                             mid=17)
        await a.send({"type": "leave", "room": missing})
        got = await a.expect_error("not-joined", "without mid", room=missing)
        h.check("mid" not in got, f"mid in not-joined though none was sent: {got}")
        await b.silence("members hear nothing of a failed leave")
        await relay_ok(a, b, "not-joined")
        await close_all(a, b)
    h.arun(run())


def test_disconnect_leaves_every_room(t):
    async def run():
        a, b, c = await open_peers(t.port, 3)
        r1, r2, r3 = uniq("d1"), uniq("d2"), uniq("d3")
        for p, rooms in ((a, (r1, r2)), (b, (r2,)), (c, (r1, r2, r3))):
            for r in rooms:
                await p.send({"type": "join", "room": r})
                got = await p.recv()
                h.eq((got.get("type"), got.get("room")), ("joined", r), f"{p.name} joins {r}")
        # Drain the peer-joined events: a hears b (r2), c (r1), c (r2); b hears c (r2).
        got_a = sorted([canon(await a.recv()) for _ in range(3)])
        want_a = sorted(canon({"type": "peer-joined", "room": r, "peer": p})
                        for r, p in ((r2, b.id), (r1, c.id), (r2, c.id)))
        h.eq(got_a, want_a, "a's peer-joined events")
        await b.expect({"type": "peer-joined", "room": r2, "peer": c.id}, "b's peer-joined")
        await c.close()
        got_a = sorted([canon(await a.recv(what=f"peer-left {i}")) for i in range(2)])
        want_a = sorted(canon({"type": "peer-left", "room": r, "peer": c.id}) for r in (r1, r2))
        h.eq(got_a, want_a, "peer-left for each room of a peer that disconnected")
        await b.expect({"type": "peer-left", "room": r2, "peer": c.id},
                       "peer-left in the shared room")
        await a.silence("one peer-left per room")
        await b.silence("one peer-left per room")
        # r3 emptied with c gone: a new joiner finds it empty.
        await b.send({"type": "join", "room": r3})
        await b.expect({"type": "joined", "room": r3, "peers": []},
                       "join of a room its last member left")
        await close_all(a, b)
    h.arun(run())


def test_three_peers_see_each_other(t):
    async def run():
        a, b, c = await open_peers(t.port, 3)
        room = uniq("trio")
        await a.send({"type": "join", "room": room})
        await a.expect({"type": "joined", "room": room, "peers": []}, "a joins")
        await b.send({"type": "join", "room": room})
        await b.expect({"type": "joined", "room": room, "peers": [a.id]}, "b joins")
        await c.send({"type": "join", "room": room, "mid": "c"})
        got = await c.recv()
        h.check(isinstance(got.get("peers"), list), f"joined without a peers list: {got}")
        same_json(dict(got, peers=sorted(got["peers"])),
                  {"type": "joined", "room": room, "peers": sorted([a.id, b.id]), "mid": "c"},
                  "c joins")
        await a.expect({"type": "peer-joined", "room": room, "peer": b.id}, "a hears b")
        await a.expect({"type": "peer-joined", "room": room, "peer": c.id}, "a hears c")
        await b.expect({"type": "peer-joined", "room": room, "peer": c.id}, "b hears c")
        for p in (a, b, c):
            await p.silence("nothing more")
        # Everyone can reach everyone it discovered.
        for x in (a, b, c):
            for y in (a, b, c):
                if x is not y:
                    await relay_ok(x, y, f"{x.name} to {y.name}")
        await close_all(a, b, c)
    h.arun(run())


def test_rooms_per_peer_limit(t):
    n = relay_node(t, "--max-rooms-per-peer", "2")

    async def run():
        a, b, c = await open_peers(n.port, 3)
        await b.send({"type": "join", "room": "r3"})
        await b.expect({"type": "joined", "room": "r3", "peers": []}, "b joins r3")
        for r in ("r1", "r2"):
            await a.send({"type": "join", "room": r})
            await a.expect({"type": "joined", "room": r, "peers": []}, f"a joins {r}")
        await a.send({"type": "join", "room": "r3", "mid": "third"})
        await a.expect_error("too-many-rooms", "third room", room="r3", mid="third")
        await a.send({"type": "join", "room": "r4"})
        got = await a.expect_error("too-many-rooms", "fourth room, no mid", room="r4")
        h.check("mid" not in got, f"mid in an error for a join without one: {got}")
        await b.silence("nothing changes in r3")
        # Nothing changed: r3 has b only, r4 does not exist.
        await c.send({"type": "join", "room": "r3"})
        await c.expect({"type": "joined", "room": "r3", "peers": [b.id]},
                       "c joins r3 (a is not in it)")
        await b.expect({"type": "peer-joined", "room": "r3", "peer": c.id}, "b hears c")
        # At the limit, joining a room one is already in still answers joined.
        await a.send({"type": "join", "room": "r1", "mid": 1})
        await a.expect({"type": "joined", "room": "r1", "peers": [], "mid": 1},
                       "rejoin at the limit")
        # After a leave, a join works again.
        await a.send({"type": "leave", "room": "r1"})
        await a.expect({"type": "left", "room": "r1"}, "leave r1")
        await a.send({"type": "join", "room": "r3", "mid": "now"})
        got = await a.recv()
        h.check(isinstance(got.get("peers"), list), f"joined without a peers list: {got}")
        same_json(dict(got, peers=sorted(got["peers"])),
                  {"type": "joined", "room": "r3", "peers": sorted([b.id, c.id]), "mid": "now"},
                  "join after a leave")
        await b.expect({"type": "peer-joined", "room": "r3", "peer": a.id}, "b hears a")
        await c.expect({"type": "peer-joined", "room": "r3", "peer": a.id}, "c hears a")
        await a.send({"type": "join", "room": "r1"})
        await a.expect_error("too-many-rooms", "at the limit again", room="r1")
        await close_all(a, b, c)
    h.arun(run())


def test_room_peers_limit(t):
    n = relay_node(t, "--max-room-peers", "2")

    async def run():
        a, b, c, d = await open_peers(n.port, 4)
        await a.send({"type": "join", "room": "full"})
        await a.expect({"type": "joined", "room": "full", "peers": []}, "a joins")
        await b.send({"type": "join", "room": "full"})
        await b.expect({"type": "joined", "room": "full", "peers": [a.id]}, "b joins")
        await a.expect({"type": "peer-joined", "room": "full", "peer": b.id}, "a hears b")
        await c.send({"type": "join", "room": "full", "mid": 3})
        await c.expect_error("room-full", "third peer", room="full", mid=3)
        await d.send({"type": "join", "room": "full"})
        got = await d.expect_error("room-full", "fourth peer, no mid", room="full")
        h.check("mid" not in got, f"mid in an error for a join without one: {got}")
        await a.silence("members hear nothing of a refused join")
        await b.silence("members hear nothing of a refused join")
        # A member rejoining a full room is answered joined.
        await b.send({"type": "join", "room": "full", "mid": "re"})
        await b.expect({"type": "joined", "room": "full", "peers": [a.id], "mid": "re"},
                       "rejoin of a full room")
        # The refused peer is in no room: its other joins and its leave say so.
        await c.send({"type": "leave", "room": "full", "mid": "l"})
        await c.expect_error("not-joined", "the refused peer is not a member", room="full", mid="l")
        await c.send({"type": "join", "room": "other"})
        await c.expect({"type": "joined", "room": "other", "peers": []}, "c joins another room")
        # After a leave, there is room again.
        await b.send({"type": "leave", "room": "full"})
        await b.expect({"type": "left", "room": "full"}, "b leaves")
        await a.expect({"type": "peer-left", "room": "full", "peer": b.id}, "a hears b leave")
        await c.send({"type": "join", "room": "full"})
        await c.expect({"type": "joined", "room": "full", "peers": [a.id]}, "c joins after a leave")
        await a.expect({"type": "peer-joined", "room": "full", "peer": c.id}, "a hears c")
        await b.send({"type": "join", "room": "full"})
        await b.expect_error("room-full", "full again", room="full")
        await close_all(a, b, c, d)
    h.arun(run())


# ---------------------------------------------------------------------------------------------
# Bad input


def bad_requests(to, other):
    """(what, text, mid expected in the error or None). `to` is a connected peer, so each text
    would be relayed if the server wrongly accepted it."""
    long_id = "a" * 65
    E_ACUTE = "\\u00e9"  # JSON escape of a 2-byte character
    T = f'"to":"{to}"'
    return [
        # invalid JSON
        ("truncated object", f'{{"type":"offer",{T}', None),
        ("truncated after a key", f'{{"type":"offer",{T},"payload"', None),
        ("unquoted string", f'{{"type":"offer","to":{to}}}', None),
        ("single quotes", f"{{'type':'offer','to':'{to}'}}", None),
        ("trailing comma", f'{{"type":"offer",{T},}}', None),
        ("missing colon", f'{{"type" "offer",{T}}}', None),
        ("missing comma", f'{{"type":"offer" {T}}}', None),
        ("empty message", "", None),
        ("only whitespace", " \n\t ", None),
        ("NaN", f'{{"type":"offer",{T},"payload":NaN}}', None),
        ("Infinity", f'{{"type":"offer",{T},"payload":-Infinity}}', None),
        ("leading zero", f'{{"type":"offer",{T},"payload":012}}', None),
        ("plus sign", f'{{"type":"offer",{T},"payload":+1}}', None),
        ("bare decimal point", f'{{"type":"offer",{T},"payload":1.}}', None),
        ("exponent without digits", f'{{"type":"offer",{T},"payload":1e}}', None),
        ("hex number", f'{{"type":"offer",{T},"payload":0x10}}', None),
        ("raw tab in a string", f'{{"type":"offer",{T},"payload":"a\tb"}}', None),
        ("raw newline in a string", f'{{"type":"offer",{T},"payload":"a\nb"}}', None),
        ("unterminated string", f'{{"type":"offer",{T},"payload":"abc}}', None),
        ("truncated literal", f'{{"type":"offer",{T},"payload":tru}}', None),
        ("capitalised literal", f'{{"type":"offer",{T},"payload":True}}', None),
        ("unclosed array in payload", f'{{"type":"offer",{T},"payload":[1,2}}', None),
        ("object key not a string", f'{{"type":"offer",{T},"payload":{{1:2}}}}', None),
        ("comment", f'{{"type":"offer",{T} /* hi */}}', None),
        # invalid escapes
        ("invalid escape \\x", f'{{"type":"offer",{T},"payload":"\\x41"}}', None),
        ("invalid escape \\u12G4", f'{{"type":"offer",{T},"payload":"\\u12G4"}}', None),
        ("short \\u escape", f'{{"type":"offer",{T},"payload":"\\u12"}}', None),
        ("invalid escape \\' ", f'{{"type":"offer",{T},"payload":"\\\'"}}', None),
        ("invalid escape in to", f'{{"type":"offer","to":"{to}\\q"}}', None),
        ("invalid escape in type", '{"type":"off\\er","to":"x"}', None),
        ("invalid escape in a key", f'{{"ty\\pe":"offer",{T}}}', None),
        # trailing garbage
        ("garbage after the object", f'{{"type":"offer",{T}}} x', None),
        ("a second object", f'{{"type":"offer",{T}}}{{}}', None),
        ("an extra brace", f'{{"type":"offer",{T}}}}}', None),
        ("a trailing comma after the object", f'{{"type":"offer",{T}}},', None),
        ("a line comment after the object", f'{{"type":"offer",{T}}} // hi', None),
        # not an object
        ("empty array", "[]", None),
        ("array of a message", f'[{{"type":"offer",{T}}}]', None),
        ("string", '"offer"', None),
        ("number", "42", None),
        ("negative number", "-1.5", None),
        ("null", "null", None),
        ("true", "true", None),
        # type
        ("empty object", "{}", None),
        ("missing type", f'{{{T},"payload":1}}', None),
        ("type a number", f'{{"type":1,{T}}}', None),
        ("type null", f'{{"type":null,{T}}}', None),
        ("type an array", f'{{"type":["offer"],{T}}}', None),
        ("type an object", f'{{"type":{{"name":"offer"}},{T}}}', None),
        ("type a boolean", f'{{"type":true,{T}}}', None),
        ("unknown type", f'{{"type":"hello",{T}}}', None),
        ("type in capitals", f'{{"type":"OFFER",{T}}}', None),
        ("type with a space", f'{{"type":"offer ",{T}}}', None),
        ("empty type", f'{{"type":"",{T}}}', None),
        ("a server type: ack", f'{{"type":"ack",{T},"mid":"x"}}', "x"),
        ("a server type: welcome", f'{{"type":"welcome",{T}}}', None),
        ("a server type: error", f'{{"type":"error",{T}}}', None),
        ("a server type: joined", '{"type":"joined","room":"r"}', None),
        ("a key in capitals", f'{{"Type":"offer",{T}}}', None),
        # to
        ("missing to", '{"type":"offer"}', None),
        ("missing to, payload has one", f'{{"type":"bye","payload":{{{T}}}}}', None),
        ("To in capitals", f'{{"type":"answer","To":"{to}"}}', None),
        ("to a number", '{"type":"offer","to":5}', None),
        ("to null", '{"type":"offer","to":null}', None),
        ("to an array", f'{{"type":"offer","to":["{to}"]}}', None),
        ("to an object", f'{{"type":"offer","to":{{"id":"{to}"}}}}', None),
        ("to a boolean", '{"type":"offer","to":true}', None),
        ("to 65 characters", f'{{"type":"offer","to":"{long_id}"}}', None),
        ("to empty", '{"type":"offer","to":""}', None),
        ("to with a space", '{"type":"offer","to":"a b"}', None),
        ("to with a slash", '{"type":"offer","to":"a/b"}', None),
        ("to with a colon", '{"type":"offer","to":"a:b"}', None),
        ("to non-ASCII", '{"type":"offer","to":"caf\u00e9"}', None),
        ("to non-ASCII escaped", '{"type":"offer","to":"caf\\u00e9"}', None),
        ("to with an escaped NUL", f'{{"type":"offer","to":"{to}\\u0000"}}', None),
        ("to with a newline", f'{{"type":"offer","to":"{to}\\n"}}', None),
        # rooms
        ("join without room", '{"type":"join"}', None),
        ("leave without room", '{"type":"leave"}', None),
        ("join with to instead of room", f'{{"type":"join",{T}}}', None),
        ("room with a space", '{"type":"join","room":"a b"}', None),
        ("room 65 characters", '{"type":"join","room":"' + "r" * 65 + '"}', None),
        ("room empty", '{"type":"join","room":""}', None),
        ("room a number", '{"type":"join","room":5}', None),
        ("room null", '{"type":"join","room":null}', None),
        ("room an array", '{"type":"join","room":["r"]}', None),
        ("room with a slash", '{"type":"join","room":"a/b"}', None),
        ("room non-ASCII", '{"type":"join","room":"caf\u00e9"}', None),
        ("leave room with a space", '{"type":"leave","room":"a b"}', None),
        ("leave room 65 characters", '{"type":"leave","room":"' + "r" * 65 + '"}', None),
        # duplicate keys
        ("duplicate type", f'{{"type":"offer","type":"offer",{T}}}', None),
        ("duplicate type, different values", f'{{"type":"offer","type":"answer",{T}}}', None),
        ("duplicate to", f'{{"type":"offer",{T},"to":"{other}"}}', None),
        ("duplicate to, same value", f'{{"type":"offer",{T},{T}}}', None),
        ("duplicate payload", f'{{"type":"offer",{T},"payload":1,"payload":2}}', None),
        ("duplicate room", '{"type":"join","room":"a","room":"b"}', None),
        # mid of the wrong kind
        ("mid an object", f'{{"type":"offer",{T},"mid":{{"id":1}}}}', None),
        ("mid an array", f'{{"type":"offer",{T},"mid":[1]}}', None),
        ("mid true", f'{{"type":"offer",{T},"mid":true}}', None),
        ("mid false", f'{{"type":"offer",{T},"mid":false}}', None),
        ("mid null", f'{{"type":"offer",{T},"mid":null}}', None),
        ("mid 65 bytes", f'{{"type":"offer",{T},"mid":"{"m" * 65}"}}', None),
        ("mid 66 bytes in 33 characters", f'{{"type":"offer",{T},"mid":"{"é" * 33}"}}', None),
        ("mid 65 bytes, escaped", f'{{"type":"offer",{T},"mid":"{E_ACUTE * 32}x"}}', None),
        ("mid too long on join", '{"type":"join","room":"r","mid":"' + "m" * 65 + '"}', None),
        ("mid a bool on leave", '{"type":"leave","room":"r","mid":true}', None),
        ("mid an invalid escape", f'{{"type":"offer",{T},"mid":"\\z"}}', None),
    ]


def mid_in_error_cases(to):
    """A valid mid, something else wrong: the error carries the mid."""
    T = f'"to":"{to}"'
    return [
        ("unknown type", '{"type":"nope","mid":"m1"}', "m1"),
        ("missing type", f'{{"mid":7,{T}}}', 7),
        ("type a number", '{"type":5,"mid":"m7"}', "m7"),
        ("missing to", '{"type":"offer","mid":"m3"}', "m3"),
        ("to a number", '{"type":"answer","to":1,"mid":-2.5}', -2.5),
        ("to with a space", '{"type":"offer","to":"a b","mid":-2}', -2),
        ("to too long", '{"type":"candidate","to":"' + "t" * 65 + '","mid":""}', ""),
        ("mid before type, bad room", '{"mid":"m5","type":"join","room":"a b"}', "m5"),
        ("join without room", '{"type":"join","mid":"m6"}', "m6"),
        ("leave, room too long", '{"type":"leave","room":"' + "r" * 65 + '","mid":0}', 0),
        ("64-byte mid", '{"type":"nope","mid":"' + "m" * 64 + '"}', "m" * 64),
        ("duplicate to, mid first", f'{{"mid":"m8","type":"offer",{T},{T}}}', "m8"),
    ]


async def check_bad(a, b, cases):
    """Sends each bad text from a; a gets exactly one bad-request (with the mid expected), b
    gets nothing, and a relay right after works."""
    for i, (what, text, mid) in enumerate(cases):
        await a.send(text)
        got = await a.recv(what=f"answer to {what}")
        try:
            check_error(got, "bad-request", what, mid=mid)
        except h.Failure as e:
            raise h.Failure(f"{e}\n  sent {text!r}")
        if mid is None:
            h.check("mid" not in got, f"{what}: unexpected mid in {got} (sent {text!r})")
        await relay_ok(a, b, what, mid=f"after-{i}")


def test_bad_requests(t):
    async def run():
        a, b, c = await open_peers(t.port, 3)
        await check_bad(a, b, bad_requests(b.id, c.id))
        await c.silence("nothing relayed to the other 'to' of a duplicate")
        await close_all(a, b, c)
    h.arun(run(), timeout=20)


def test_mid_in_bad_request_errors(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        await check_bad(a, b, mid_in_error_cases(b.id))
        await close_all(a, b)
    h.arun(run())


def test_deep_nesting(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        ok = "[" * 20 + "{}" + "]" * 20
        await a.send(f'{{"type":"offer","to":"{b.id}","payload":{ok},"mid":"d20"}}')
        raw = await b.recv_raw(what="20-level payload")
        h.check(ok in raw, f"20-level payload changed: {raw!r}")
        await a.expect({"type": "ack", "mid": "d20"}, "ack for 20 levels")
        deep = [("arrays", "[" * 100 + "]" * 100),
                ("objects", '{"a":' * 100 + "1" + "}" * 100),
                ("mixed", '[{"a":' * 50 + "null" + "}]" * 50),
                ("unbalanced", "[" * 100)]
        await check_bad(a, b, [(f"100 levels of {w} in payload",
                                f'{{"type":"offer","to":"{b.id}","payload":{p}}}', None)
                               for w, p in deep])
        # Deep nesting in a field the server does not know is still JSON it must check.
        deep_x = "[" * 100 + "]" * 100
        await check_bad(a, b, [("100 levels in an unknown field",
                                f'{{"type":"offer","to":"{b.id}","x":{deep_x}}}', None)])
        await close_all(a, b)
    h.arun(run())


def test_unknown_fields_ignored(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        await a.send(f'{{"type":"offer","to":"{b.id}","v":2,"extra":{{"x":[1,2]}},'
                     '"payload":7,"mid":"u"}')
        await b.expect({"type": "offer", "from": a.id, "payload": 7, "mid": "u"},
                       "unknown fields are dropped")
        await a.expect({"type": "ack", "mid": "u"}, "ack")
        await close_all(a, b)
    h.arun(run())


def test_binary_message_closes_1003(t):
    async def run():
        a, b = await open_peers(t.port, 2)
        room = uniq("bin")
        for i, p in enumerate((a, b)):
            await p.send({"type": "join", "room": room})
            await p.expect({"type": "joined", "room": room, "peers": [a.id] if i else []}, "join")
        await a.expect({"type": "peer-joined", "room": room, "peer": b.id}, "peer-joined")
        await b.ws.send(dumps({"type": "offer", "to": a.id}).encode())
        try:
            got = await asyncio.wait_for(b.ws.recv(), 3)
            raise h.Failure(f"binary message answered with {got!r} instead of close 1003")
        except ConnectionClosed as e:
            h.check(e.rcvd is not None, f"no close frame ({e})")
            h.eq(e.rcvd.code, 1003, "close code for a binary message")
        await a.expect({"type": "peer-left", "room": room, "peer": b.id},
                       "peer-left after the close")
        await a.silence("the binary message was not relayed")
        await a.close()
    h.arun(run())


def test_message_size_limit(t):
    n = relay_node(t, "--max-message", "4096")

    async def run():
        for port, limit in ((t.port, 65536), (n.port, 4096)):
            a, b = await open_peers(port, 2)
            head = f'{{"type":"offer","to":"{b.id}","mid":"lim","payload":"'
            pad = limit - len(head) - 2
            text = head + "p" * pad + '"}'
            h.eq(len(text.encode()), limit, "message length")
            await a.send(text)
            raw = await b.recv_raw(what=f"a {limit}-byte message")
            h.check('"payload":"' + "p" * pad + '"' in raw, "payload at the limit changed")
            await a.expect({"type": "ack", "mid": "lim"}, f"ack at the {limit}-byte limit")
            await a.send(text[:-2] + 'p"}')
            try:
                got = await asyncio.wait_for(a.ws.recv(), 3)
                raise h.Failure(f"{limit + 1}-byte message answered with {got[:60]!r} "
                                "instead of 1009")
            except ConnectionClosed as e:
                h.check(e.rcvd is not None, f"no close frame ({e})")
                h.eq(e.rcvd.code, 1009, f"close code for {limit + 1} bytes with a {limit} limit")
            await b.silence("nothing relayed from the oversized message")
            await b.close()
    h.arun(run())


# ---------------------------------------------------------------------------------------------
# Robustness


def test_100_peers_one_vanishes(t):
    count, victim = 100, 57
    n = relay_node(t, "--max-room-peers", str(count))  # the default is 64

    async def run():
        peers = await open_peers(n.port, count)
        room = uniq("crowd")
        ids = [p.id for p in peers]
        for i, p in enumerate(peers):
            await p.send({"type": "join", "room": room, "mid": i})
            got = await p.recv(what=f"joined {i}")
            h.check(isinstance(got.get("peers"), list), f"joined without a peers list: {got}")
            same_json(dict(got, peers=sorted(got["peers"])),
                      {"type": "joined", "room": room, "peers": sorted(ids[:i]), "mid": i},
                      f"peer {i} joins")

        async def hears_joins(i):
            for j in range(i + 1, count):
                await peers[i].expect({"type": "peer-joined", "room": room, "peer": ids[j]},
                                      f"peer {i} hears peer {j} join", timeout=5)

        await asyncio.gather(*(hears_joins(i) for i in range(count)))
        rst(peers[victim].ws)

        async def hears_left(i):
            await peers[i].expect({"type": "peer-left", "room": room, "peer": ids[victim]},
                                  f"peer {i} hears the vanished peer leave", timeout=5)

        others = [i for i in range(count) if i != victim]
        await asyncio.gather(*(hears_left(i) for i in others))
        await peers[0].send({"type": "offer", "to": ids[victim], "mid": "v"})
        await peers[0].expect_error("peer-unavailable", "to the vanished peer", to=ids[victim],
                                    mid="v")
        await relay_ok(peers[1], peers[-1], "100 peers")
        await close_all(*(peers[i] for i in others))
    h.arun(run(), timeout=20)


def test_slow_reader_dropped_sender_told(t):
    n = relay_node(t, "--max-output", "65536")
    slow = h.handshake(n.port, rcvbuf=4096)
    try:
        op, raw = h.read_message(slow, timeout=3)
        h.eq(op, h.OP_TEXT, "opcode of the welcome")
        welcome = strict_loads(raw.decode(), "slow reader's welcome")
        slow_id = welcome["id"]
        # From here on the slow reader reads nothing.

        async def run():
            (a,) = await open_peers(n.port, 1)
            payload = {"sdp": "x" * 16000}
            sent = acked = 0
            first_error = None
            t0 = time.monotonic()
            while first_error is None:
                h.check(sent < 4000 and time.monotonic() - t0 < 15,
                        f"slow reader still served after {sent} messages ({acked} acked)")
                batch = range(sent, sent + 10)
                for i in batch:
                    await a.send({"type": "offer", "to": slow_id, "payload": payload, "mid": i})
                sent += len(batch)
                # One answer per message; taken in the order of the messages they answer.
                answers = {}
                for _ in batch:
                    got = await a.recv(what=f"answer to a message of {batch}")
                    h.check(got.get("mid") in batch and got["mid"] not in answers,
                            f"answer {got} does not match one message of {batch}")
                    answers[got["mid"]] = got
                for i in batch:
                    got = answers[i]
                    if got.get("type") == "ack" and first_error is None:
                        same_json(got, {"type": "ack", "mid": i}, f"ack {i}")
                        acked += 1
                    else:
                        check_error(got, "peer-unavailable",
                                    f"answer to message {i} ({acked} acked)", to=slow_id, mid=i)
                        first_error = i if first_error is None else first_error
            h.check(acked > 0, "no message was acked before the drop")
            # From then on, every message is answered peer-unavailable: never silence.
            for i in range(sent, sent + 5):
                await a.send({"type": "offer", "to": slow_id, "payload": 1, "mid": i})
                await a.expect_error("peer-unavailable", f"message {i} after the drop", to=slow_id,
                                     mid=i)
            await a.send({"type": "bye", "to": slow_id})
            await a.expect_error("peer-unavailable", "without mid after the drop", to=slow_id)
            # Its ID is free again once it is gone.
            c = await reclaim(n.port, slow_id, "the dropped reader's id")
            await relay_ok(a, c, "slow reader dropped")
            await close_all(a, c)
            return sent, acked

        sent, acked = h.arun(run(), timeout=20)
        if os.environ.get("SB_TEST_VERBOSE"):
            print(f"  slow reader dropped after {acked} of {sent} messages were acked", flush=True)
        slow.wait_closed(5.0)  # the server has closed the slow reader's connection
    finally:
        slow.close()
    h.check_healthz(n.port)


def test_sigterm_closes_every_client_with_1001(t):
    n = relay_node(t)

    async def run():
        peers = await open_peers(n.port, 4)
        named = await open_peer(n.port, id="named")
        peers.append(named)
        for i, p in enumerate(peers[:3]):
            await p.send({"type": "join", "room": "lobby"})
            await p.expect({"type": "joined", "room": "lobby", "peers": [q.id for q in peers[:i]]},
                           "join")
            for q in peers[:i]:
                await q.expect({"type": "peer-joined", "room": "lobby", "peer": p.id},
                               "peer-joined")
        n.signal(signal.SIGTERM)
        for p in peers:
            try:
                while True:
                    got = await asyncio.wait_for(p.ws.recv(), 3)
                    msg = strict_loads(got, "before the close")
                    # Leaving peers may be announced while the node shuts down; nothing else.
                    h.eq(msg.get("type"), "peer-left",
                         f"{p.name}: message before close 1001: {got}")
            except ConnectionClosed as e:
                h.check(e.rcvd is not None, f"{p.name}: no close frame ({e})")
                h.eq(e.rcvd.code, 1001, f"{p.name}: close code on SIGTERM")
            except asyncio.TimeoutError:
                raise h.Failure(f"{p.name}: no close within 3 s of SIGTERM")
        for p in peers:
            await p.ws.wait_closed()

    h.arun(run(), timeout=10)
    status = n.wait_exit(3.0)
    h.check(status is not None, "node still running 3 s after SIGTERM")
    h.eq(status, 0, "exit status after SIGTERM")
    n.stopped = True
    n.check_log()


def test_still_healthy_at_the_end(t):
    h.check_healthz(t.port)

    async def run():
        a, b = await open_peers(t.port, 2)
        await relay_ok(a, b, "the end")
        await close_all(a, b)
    h.arun(run())


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)]

if __name__ == "__main__":
    h.main(TESTS, shared_args=SHARED, echo=False)
