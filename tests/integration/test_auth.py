#!/usr/bin/python3
"""Token authentication and origin checks, end to end: tokens made by `switchboard token` and,
independently, by Python's hmac and the openssl command (HS256, RS256, ES256, EdDSA); every way
a token can be wrong answered 401 with one terse body, its reason in the log and the metrics;
the peer ID bound to the token's sub across two nodes; the rooms claim; the token carried in
Sec-WebSocket-Protocol and never echoed; allowed, denied and absent Origins.
Usage: test_auth.py PATH-TO-SWITCHBOARD"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check_error, strict_loads  # noqa: E402

from client import ConnectionClosed, Peer, close_all, connect  # noqa: E402
from test_cluster import relay_ok, start_redis  # noqa: E402
from test_ops import scrape, value  # noqa: E402

SECRET = "a-test-secret-of-at-least-32-bytes-0123456789"
NODE_ARGS = ["--ice-servers", "[]", "--log-level", "info"]
TOKEN_PREFIX = "switchboard.token."


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_input(claims, header):
    return (b64u(json.dumps(header, separators=(",", ":")).encode()) + "."
            + b64u(json.dumps(claims, separators=(",", ":")).encode()))


def hs256(claims, secret=SECRET, header=None):
    """A token made here, independently of the node's code."""
    head = signing_input(claims, header or {"alg": "HS256", "typ": "JWT"})
    key = secret if isinstance(secret, bytes) else secret.encode()
    return head + "." + b64u(hmac.new(key, head.encode(), hashlib.sha256).digest())


def claims(sub="alice", ttl=600, **extra):
    now = int(time.time())
    c = {"sub": sub, "iat": now, "exp": now + ttl}
    c.update(extra)
    return c


class Keys:
    """Key pairs made with the openssl command, and tokens it signs."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="switchboard-auth-")
        self.paths = {}
        specs = {"RS256": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                 "ES256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                 "EdDSA": ["-algorithm", "ED25519"]}
        for alg, spec in specs.items():
            private = os.path.join(self.dir.name, f"{alg}.key")
            public = os.path.join(self.dir.name, f"{alg}.pub")
            subprocess.run(["openssl", "genpkey", *spec, "-out", private], check=True,
                           capture_output=True)
            subprocess.run(["openssl", "pkey", "-in", private, "-pubout", "-out", public],
                           check=True, capture_output=True)
            self.paths[alg] = (private, public)

    def private(self, alg):
        return self.paths[alg][0]

    def public(self, alg):
        return self.paths[alg][1]

    def sign(self, alg, claims_):
        head = signing_input(claims_, {"alg": alg, "typ": "JWT"})
        data = os.path.join(self.dir.name, "input")
        with open(data, "wb") as f:
            f.write(head.encode())
        if alg == "EdDSA":
            cmd = ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", self.private(alg), "-in",
                   data]
        else:
            cmd = ["openssl", "dgst", "-sha256", "-sign", self.private(alg), data]
        sig = subprocess.run(cmd, check=True, capture_output=True).stdout
        if alg == "ES256":
            sig = der_to_raw(sig)
        return head + "." + b64u(sig)

    def close(self):
        self.dir.cleanup()


def der_to_raw(der):
    """An ECDSA signature from DER (SEQUENCE of two INTEGERs) to JWS's r || s, 32 bytes each."""
    h.eq(der[0], 0x30, "DER sequence")
    pos = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        h.eq(der[pos], 0x02, "DER integer")
        n = der[pos + 1]
        out += der[pos + 2:pos + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        pos += 2 + n
    return out


def token_cmd(t, *args, env=None):
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    run_env.update(env or {})
    proc = subprocess.run([t.binary, "token", *args], capture_output=True, text=True, timeout=10,
                          env=run_env)
    return proc.returncode, proc.stdout.strip(), proc.stderr


def node(t, *args):
    return t.node(*NODE_ARGS, *args, echo=False)


def upgrade(port, path="/ws", headers=(), subprotocol=h.SUBPROTOCOL):
    """A raw upgrade request; returns the response (the connection is closed)."""
    conn = h.Conn(port)
    try:
        conn.send(h.upgrade_request(path=path, subprotocol=subprotocol, headers=list(headers)))
        return h.read_response(conn, body=True)
    finally:
        conn.close()


def refused_401(port, path, what, headers=()):
    resp = upgrade(port, path, headers)
    h.eq(resp.status, 401, f"{what}: status")
    h.eq(resp.header("WWW-Authenticate"), 'Bearer realm="switchboard"', f"{what}: challenge")
    return resp.body


async def welcome(port, query, subprotocols=(h.SUBPROTOCOL,), what="peer"):
    ws = await connect(port, query, subprotocols=subprotocols)
    try:
        raw = await asyncio.wait_for(ws.recv(), 3)
    except (asyncio.TimeoutError, ConnectionClosed) as e:
        await ws.close()
        raise h.Failure(f"{what}: no welcome ({type(e).__name__}: {e})")
    msg = strict_loads(raw, f"{what}: welcome")
    h.eq(msg.get("type"), "welcome", f"{what}: first message")
    return Peer(ws, msg, what)


def test_helper_tokens_open_a_session_as_their_sub(t):
    """`switchboard token` signs with --secret or SWITCHBOARD_AUTH_SECRET; a client with the
    token is welcomed as its sub, and cannot choose another ID."""
    n = node(t, "--auth-secret", SECRET)
    rc, token, err = token_cmd(t, "--secret", SECRET, "--sub", "alice", "--ttl", "10m")
    h.eq(rc, 0, f"token helper exit status ({err})")
    rc, token2, err = token_cmd(t, "--sub", "bob", env={"SWITCHBOARD_AUTH_SECRET": SECRET})
    h.eq(rc, 0, f"token helper with the secret from the environment ({err})")
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    h.check(590 <= payload["exp"] - time.time() <= 601, f"exp of a 10m token: {payload}")

    async def run():
        a = await welcome(n.port, f"?token={token}", what="alice")
        h.eq(a.id, "alice", "the ID is the token's sub")
        b = await welcome(n.port, f"?id=bob&token={token2}", what="bob")
        h.eq(b.id, "bob", "?id= equal to the sub")
        await relay_ok(a, b, "between token holders")
        await close_all(a, b)

    h.arun(run())
    for args, what in ((["--sub", "alice"], "no key"),
                       (["--secret", SECRET, "--sub", "bad id"], "a bad sub"),
                       (["--secret", SECRET, "--sub", "a", "--ttl", "soon"], "a bad ttl"),
                       (["--secret", SECRET, "--sub", "a", "--rooms", "ok,no room"], "bad room")):
        rc, out, err = token_cmd(t, *args)
        h.eq(rc, 2, f"token helper with {what}: exit status")
        h.check(out == "" and "switchboard token:" in err, f"token helper with {what}: {err!r}")


def test_every_bad_token_gets_the_same_401(t):
    """Each way a token can be wrong: 401, the same body, a challenge, the reason counted."""
    n = node(t, "--auth-secret", SECRET, "--auth-issuer", "https://issuer.example",
             "--auth-audience", "switchboard", "--auth-leeway", "30")
    ok = dict(iss="https://issuer.example", aud="switchboard")
    good = hs256(claims(**ok))
    parts = good.split(".")
    tampered_payload = b64u(json.dumps(claims(sub="mallory", **ok)).encode())
    cases = [
        ("missing", "", "no token"),
        ("expired", hs256(claims(ttl=-31, **ok)), "expired beyond the leeway"),
        ("not-yet-valid", hs256(claims(nbf=int(time.time()) + 60, **ok)), "nbf in a minute"),
        ("signature", hs256(claims(**ok), secret="another-secret-entirely-0123456789"),
         "signed with another secret"),
        ("signature", ".".join([parts[0], tampered_payload, parts[2]]), "payload tampered"),
        ("algorithm", signing_input(claims(**ok), {"alg": "none"}) + ".", "alg none"),
        ("algorithm", hs256(claims(**ok), header={"alg": "HS512"}), "alg HS512"),
        ("algorithm", hs256(claims(**ok), header={"alg": "RS256"}), "alg RS256, no key"),
        ("issuer", hs256(claims(iss="https://evil.example", aud="switchboard")), "wrong iss"),
        ("audience", hs256(claims(iss="https://issuer.example", aud="other")), "wrong aud"),
        ("audience", hs256(claims(iss="https://issuer.example", aud=["a", "b"])), "aud list"),
        ("subject", hs256(claims(sub="no spaces allowed", **ok)), "a sub that is no peer ID"),
        ("malformed", hs256({"sub": "alice", **ok}), "no exp"),
        ("malformed", "abc.def", "two parts"),
        ("malformed", parts[0] + "." + parts[1] + "=." + parts[2], "padding"),
        ("malformed", parts[0] + ".!!." + parts[2], "not base64url"),
        ("too-large", hs256(claims(pad="x" * 4000, **ok)), "over 4096 bytes"),
    ]
    bodies = set()
    before = scrape(n)
    for reason, token, what in cases:
        path = f"/ws?token={token}" if token else "/ws"
        bodies.add(refused_401(n.port, path, what))
        h.check(f"{reason}: " in n.log(), f"{what}: the log names the reason {reason}")
    after = scrape(n)
    for reason in {c[0] for c in cases}:
        got = (value(after, "switchboard_auth_refused_total", reason=reason)
               - value(before, "switchboard_auth_refused_total", reason=reason))
        h.eq(got, sum(1 for c in cases if c[0] == reason), f"refusals counted as {reason}")
    h.eq(len(bodies), 1, "one body for every reason")
    h.check(b"token" in next(iter(bodies)), f"the body says a token is needed: {bodies}")
    h.eq(value(after, "switchboard_http_errors_total", status="401")
         - value(before, "switchboard_http_errors_total", status="401"), len(cases), "401s")

    async def run():
        # Within the leeway, and aud in a list: accepted.
        for c, what in ((claims(ttl=-20, **ok), "expired 20 s ago, leeway 30 s"),
                        (claims(nbf=int(time.time()) + 20, **ok), "nbf in 20 s, leeway 30 s"),
                        (claims(iss="https://issuer.example", aud=["x", "switchboard"]),
                         "aud a list holding the audience")):
            p = await welcome(n.port, f"?token={hs256(c)}", what=what)
            await p.close()
        # ?id= other than the sub.
        refused_401(n.port, f"/ws?id=bob&token={good}", "?id= not the sub")
        h.check("id-mismatch" in n.log(), "the log names the id mismatch")

    h.arun(run())


def test_public_key_algorithms(t):
    """RS256, ES256 and EdDSA keys, tokens signed by the openssl command and by the helper; a
    token tampered with, one of another algorithm, and one HMAC-signed with the public key (the
    classic confusion) are refused."""
    keys = Keys()
    try:
        for alg in ("RS256", "ES256", "EdDSA"):
            n = node(t, "--auth-public-key", keys.public(alg))
            h.check(f"token auth on: {alg}" in n.log(), f"{alg}: the log says token auth is on")
            independent = keys.sign(alg, claims(sub=f"ind-{alg}"))
            rc, own, err = token_cmd(t, "--key", keys.private(alg), "--sub", f"own-{alg}")
            h.eq(rc, 0, f"{alg}: token helper ({err})")
            h.check(json.loads(base64.urlsafe_b64decode(own.split(".")[0] + "=="))["alg"] == alg,
                    f"{alg}: the helper's header")

            async def run():
                a = await welcome(n.port, f"?token={independent}", what=f"{alg} (openssl)")
                b = await welcome(n.port, f"?token={own}", what=f"{alg} (helper)")
                h.eq((a.id, b.id), (f"ind-{alg}", f"own-{alg}"), f"{alg}: IDs")
                await relay_ok(a, b, alg)
                await close_all(a, b)

            h.arun(run())
            head, body, sig = independent.split(".")
            other = b64u(json.dumps(claims(sub="mallory")).encode())
            with open(keys.public(alg), "rb") as f:
                pem = f.read()
            for token, what, reason in (
                    (f"{head}.{other}.{sig}", "tampered payload", "signature"),
                    (hs256(claims(sub="mallory"), secret=pem), "HS256 keyed with the public key",
                     "algorithm"),
                    (hs256(claims(sub="mallory")), "HS256, no secret configured", "algorithm")):
                before = value(scrape(n), "switchboard_auth_refused_total", reason=reason)
                refused_401(n.port, f"/ws?token={token}", f"{alg}: {what}")
                h.eq(value(scrape(n), "switchboard_auth_refused_total", reason=reason),
                     before + 1, f"{alg}: {what} counted as {reason}")
            n.stop()
        # An RS256 token against an EC key; then a node with a secret and a key takes both.
        n = node(t, "--auth-public-key", keys.public("ES256"), "--auth-secret", SECRET)
        refused_401(n.port, f"/ws?token={keys.sign('RS256', claims())}", "RS256 token, EC key")

        async def both():
            a = await welcome(n.port, f"?token={keys.sign('ES256', claims(sub='k'))}", what="k")
            b = await welcome(n.port, f"?token={hs256(claims(sub='s'))}", what="s")
            await close_all(a, b)

        h.arun(both())
    finally:
        keys.close()
    # A key the node cannot use is a clear error at start.
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
        f.write("not a key\n")
        f.flush()
        proc = subprocess.run([t.binary, "--listen", "127.0.0.1:0", "--auth-public-key", f.name],
                              capture_output=True, text=True, timeout=10)
        h.check(proc.returncode != 0 and "--auth-public-key" in proc.stderr,
                f"a bad public key at start: {proc.returncode} {proc.stderr!r}")


def test_sub_binding_across_nodes(t):
    """Two nodes on one Redis with one secret: a token's sub is held cluster-wide; a second
    connection with a token for the same sub gets id-taken on the other node; a client without
    a token is refused on both."""
    redis = start_redis(t)
    n1 = t.node("--redis", redis.url(), "--node-id", "n1", "--auth-secret", SECRET, *NODE_ARGS,
                echo=False)
    n2 = t.node("--redis", redis.url(), "--node-id", "n2", "--auth-secret", SECRET, *NODE_ARGS,
                echo=False)
    for n in (n1, n2):
        h.wait_status(n.port, "/readyz", 200, 5)

    async def run():
        alice = await welcome(n1.port, f"?token={hs256(claims(sub='alice'))}", what="alice")
        bob = await welcome(n2.port, f"?token={hs256(claims(sub='bob'))}", what="bob")
        await relay_ok(bob, alice, "across nodes")
        ws = await connect(n2.port, f"?token={hs256(claims(sub='alice'))}")
        check_error(strict_loads(await asyncio.wait_for(ws.recv(), 3), "thief"), "id-taken",
                    "a second alice on n2")
        try:
            await asyncio.wait_for(ws.recv(), 3)
            raise h.Failure("a message after id-taken")
        except ConnectionClosed as e:
            h.eq(e.rcvd.code if e.rcvd else None, 4001, "close after id-taken")
        for n in (n1, n2):
            refused_401(n.port, "/ws?id=alice", "no token")
        await relay_ok(alice, bob, "still alice's")
        await close_all(alice, bob)

    h.arun(run())


def test_resume_needs_a_token_for_its_sub(t):
    """With tokens and sessions on, resuming a session takes its resume token and a valid token
    whose sub is the session's ID: the resume token with another sub's token, or with none, is
    refused 401 and the session stays; with a token for the same sub it resumes (the old
    connection is replaced)."""
    n = node(t, "--auth-secret", SECRET, "--resume-seconds", "30")

    async def run():
        alice = await welcome(n.port, f"?token={hs256(claims(sub='alice'))}", what="alice")
        bob = await welcome(n.port, f"?token={hs256(claims(sub='bob'))}", what="bob")
        resume = alice.welcome["resume"]
        h.check(isinstance(resume, str) and len(resume) == 43, f"resume token: {alice.welcome}")
        refused_401(n.port, f"/ws?id=alice&resume={resume}&token={hs256(claims(sub='bob'))}",
                    "alice's resume token with bob's token")
        refused_401(n.port, f"/ws?id=alice&resume={resume}", "alice's resume token alone")
        await relay_ok(bob, alice, "alice's session untouched")
        again = await welcome(n.port, f"?id=alice&resume={resume}"
                                      f"&token={hs256(claims(sub='alice'))}", what="alice again")
        h.eq((again.id, again.welcome.get("resumed")), ("alice", True), "alice resumed")
        check_error(strict_loads(await asyncio.wait_for(alice.ws.recv(), 3), "old alice"),
                    "replaced", "the old connection")
        await relay_ok(bob, again, "to the resumed session")
        await close_all(again, bob)

    h.arun(run())


def test_rooms_claim(t):
    """A rooms claim limits joins: exact names and prefixes ending in '*'."""
    n = node(t, "--auth-secret", SECRET)
    rc, token, err = token_cmd(t, "--secret", SECRET, "--sub", "carol", "--rooms",
                               "lobby,team-*")
    h.eq(rc, 0, f"token helper ({err})")

    async def run():
        p = await welcome(n.port, f"?token={token}", what="carol")
        for room in ("lobby", "team-red", "team-"):
            await p.send({"type": "join", "room": room, "mid": room})
            got = await p.recv(what=f"answer to joining {room}")
            h.eq((got.get("type"), got.get("room")), ("joined", room), f"joining {room}")
        before = value(scrape(n), "switchboard_room_requests_total", type="join",
                       outcome="forbidden")
        for room in ("lobby2", "team", "other"):
            await p.send({"type": "join", "room": room, "mid": f"m-{room}"})
            await p.expect_error("forbidden", f"joining {room}", room=room, mid=f"m-{room}")
        h.eq(value(scrape(n), "switchboard_room_requests_total", type="join",
                   outcome="forbidden"), before + 3, "forbidden joins counted")
        # Without a rooms claim, any room.
        q = await welcome(n.port, f"?token={hs256(claims(sub='dave'))}", what="dave")
        await q.send({"type": "join", "room": "anything", "mid": "x"})
        h.eq((await q.recv())["type"], "joined", "a token without rooms joins any room")
        await close_all(p, q)

    h.arun(run())


def test_token_in_the_subprotocol_list(t):
    """Browsers cannot set headers on a WebSocket: the token may come as a
    Sec-WebSocket-Protocol entry, and the node echoes switchboard.v1 alone, never the token."""
    n = node(t, "--auth-secret", SECRET)
    token = hs256(claims(sub="erin"))
    resp = upgrade(n.port, subprotocol=f"{h.SUBPROTOCOL}, {TOKEN_PREFIX}{token}")
    h.eq(resp.status, 101, "upgrade with the token in the subprotocol list")
    h.eq(resp.header_all("Sec-WebSocket-Protocol"), [h.SUBPROTOCOL], "the protocol echoed")
    h.check(token.encode() not in resp.raw_head, "the token is not in the response")
    # Two different tokens (query and list), or two entries: refused.
    other = hs256(claims(sub="erin"), secret=SECRET + "x")
    refused_401(n.port, f"/ws?token={other}", "a query token and another in the list",
                headers=[("Sec-WebSocket-Protocol", f"{TOKEN_PREFIX}{token}")])
    refused_401(n.port, "/ws", "two token entries",
                headers=[("Sec-WebSocket-Protocol", f"{TOKEN_PREFIX}{token}, {TOKEN_PREFIX}{token}")])

    async def run():
        p = await welcome(n.port, "", subprotocols=(h.SUBPROTOCOL, TOKEN_PREFIX + token),
                          what="erin (websockets)")
        h.eq((p.id, p.ws.subprotocol), ("erin", h.SUBPROTOCOL), "ID and negotiated protocol")
        await p.close()

    h.arun(run())


def test_origins(t):
    """--allow-origin: listed and wildcard origins pass, others get 403 (counted), and a request
    with no Origin (not a browser) passes."""
    n = node(t, "--allow-origin", "https://app.example.com", "--allow-origin",
             "https://*.example.org")
    for origin, status in (("https://app.example.com", 101), ("https://a.b.example.org", 101),
                           (None, 101), ("https://evil.example.com", 403),
                           ("https://example.org", 403), ("http://app.example.com", 403),
                           ("null", 403)):
        before = value(scrape(n), "switchboard_auth_refused_total", reason="origin")
        resp = upgrade(n.port, headers=[("Origin", origin)] if origin else [])
        h.eq(resp.status, status, f"Origin {origin}")
        h.eq(value(scrape(n), "switchboard_auth_refused_total", reason="origin"),
             before + (status == 403), f"Origin {origin} counted")
    # Static files are not WebSockets: any origin may load them.
    h.eq(h.get_status(n.port, "/healthz")[0], 200, "healthz")
    h.check("every Origin may open" not in n.log(), "no warning with --allow-origin")
    # A bad pattern is a clear error at start; no option on a public address is a warning.
    proc = subprocess.run([t.binary, "--listen", "127.0.0.1:0", "--allow-origin", "https://x/"],
                          capture_output=True, text=True, timeout=10)
    h.check(proc.returncode != 0 and "--allow-origin 'https://x/'" in proc.stderr,
            f"a bad origin pattern: {proc.returncode} {proc.stderr!r}")
    loop = node(t)
    h.check("every Origin may open" not in loop.log(), "no warning on loopback")
    public = t.node(*NODE_ARGS, "--listen", "0.0.0.0:0", listen=False, echo=False)
    h.check("every Origin may open" in public.log(), "a warning on a public address")


TESTS = [
    test_helper_tokens_open_a_session_as_their_sub,
    test_every_bad_token_gets_the_same_401,
    test_public_key_algorithms,
    test_sub_binding_across_nodes,
    test_resume_needs_a_token_for_its_sub,
    test_rooms_claim,
    test_token_in_the_subprotocol_list,
    test_origins,
]

if __name__ == "__main__":
    h.main(TESTS, test_timeout=60.0, echo=False)
