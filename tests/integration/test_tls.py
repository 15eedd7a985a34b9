#!/usr/bin/python3
"""Switchboard over TLS: https:// and wss:// on --tls-listen, beside or instead of the plain
listener; what the listener refuses (TLS 1.1, weak cipher suites, a foreign ALPN protocol, plain
HTTP), session resumption, the certificate reloaded on SIGHUP, `switchboard healthcheck` of a
TLS-only node, and a cluster on a Redis that speaks only TLS (rediss://), whose certificate the
nodes verify. Certificates are made at test time with the openssl command, in a temporary
directory. Clients are Python's ssl module and Debian's python3-websockets. Usage: test_tls.py
PATH-TO-SWITCHBOARD"""

import asyncio
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import redis_cluster as rc  # noqa: E402
from client import Peer, close_all  # noqa: E402

import websockets  # noqa: E402

TLS_RE = re.compile(r"(\S+):(\d+) \(TLS\)")
REDIS_SERVER = "/usr/bin/redis-server"
OPENSSL = "/usr/bin/openssl"


# ---------------------------------------------------------------------------------------------
# Certificates


def openssl(*args, cwd):
    r = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise h.Failure(f"openssl {' '.join(args)}: {r.stderr.decode(errors='replace')}")
    return r.stdout


class CA:
    """A root CA and an intermediate under it, in a directory of their own; leaf() issues server
    certificates whose file holds the chain (leaf, then the intermediate)."""

    serial = 1000

    def __init__(self, base, name):
        self.dir = os.path.join(base, name)
        os.makedirs(self.dir)
        d = self.dir
        ca_ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        with open(os.path.join(d, "ca.ext"), "w") as f:
            f.write(ca_ext)
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "root.key", "-out", "root.pem", "-days", "30",
                "-subj", f"/CN={name} root", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "int.key", "-out", "int.csr", "-subj", f"/CN={name} intermediate",
                cwd=d)
        openssl("x509", "-req", "-in", "int.csr", "-CA", "root.pem", "-CAkey", "root.key",
                "-set_serial", str(self.next_serial()), "-days", "30", "-out", "int.pem",
                "-extfile", "ca.ext", cwd=d)
        self.root = os.path.join(d, "root.pem")

    @classmethod
    def next_serial(cls):
        cls.serial += 1
        return cls.serial

    def leaf(self, name, cn, sans, days=20, eku="serverAuth"):
        """Issues an RSA certificate; returns (chain file, key file, serial)."""
        d = self.dir
        serial = self.next_serial()
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    f"extendedKeyUsage={eku}\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "int.pem", "-CAkey", "int.key",
                "-set_serial", str(serial), "-days", str(days), "-out", f"{name}.crt",
                "-extfile", f"{name}.ext", cwd=d)
        chain = os.path.join(d, f"{name}.pem")
        with open(chain, "w") as out:
            for part in (f"{name}.crt", "int.pem"):
                with open(os.path.join(d, part)) as f:
                    out.write(f.read())
        return chain, os.path.join(d, f"{name}.key"), serial


WORK = tempfile.mkdtemp(prefix="switchboard-tls-")
_ca = None
_other_ca = None


def ca():
    global _ca
    if _ca is None:
        _ca = CA(WORK, "test-ca")
        _ca.server = _ca.leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1")
    return _ca


def other_ca():
    global _other_ca
    if _other_ca is None:
        _other_ca = CA(WORK, "other-ca")
    return _other_ca


def own_copy(name):
    """A copy of the server's certificate and key that a test may overwrite."""
    d = os.path.join(WORK, name)
    os.makedirs(d)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    shutil.copy(ca().server[0], cert)
    shutil.copy(ca().server[1], key)
    return cert, key


def replace_file(path, src=None, text=None):
    """Replaces path at once (rename), as certificate managers do."""
    tmp = path + ".new"
    if src is not None:
        shutil.copy(src, tmp)
    else:
        with open(tmp, "w") as f:
            f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Clients


def client_context(verify=True, alpn=("http/1.1",), minimum=None, maximum=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(ca().root)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def tls_connect(port, ctx=None, session=None, host="localhost", timeout=5.0):
    raw = socket.create_connection((h.HOST, port), timeout=timeout)
    try:
        # An end without close_notify raises SSLEOFError instead of reading as b"".
        return (ctx or client_context()).wrap_socket(raw, server_hostname=host, session=session,
                                                     suppress_ragged_eofs=False)
    except BaseException:
        raw.close()
        raise


def https_get(port, path, ctx=None, session=None, timeout=5.0):
    """GET path over TLS; returns (status, body, the TLS socket's facts). The node must end the
    connection cleanly: close_notify before the TCP end."""
    s = tls_connect(port, ctx, session, timeout=timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
                  .encode())
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ssl.SSLEOFError:
                raise h.Failure(f"GET {path}: the connection ended without close_notify")
            if not chunk:  # close_notify
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else None
        facts = {"alpn": s.selected_alpn_protocol(), "version": s.version(),
                 "session": s.session, "reused": s.session_reused, "cert": s.getpeercert()}
        return status, body, facts
    finally:
        s.close()


def refused_handshake(port, ctx, what):
    """The handshake must fail; returns OpenSSL's message."""
    try:
        s = tls_connect(port, ctx)
    except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError) as e:
        return str(e)
    s.close()
    raise h.Failure(f"{what}: the handshake succeeded ({s.version()}, {s.cipher()})")


def tls_port(node):
    m = TLS_RE.search(node.log())
    h.check(m is not None, f"no 'HOST:PORT (TLS)' in the log\n{node.log_tail()}")
    return int(m.group(2))


def metric(port, name, tls=False):
    """A sample's value from /metrics (of the plain listener, or of the TLS one); None if it is
    not there."""
    if tls:
        status, body, _ = https_get(port, "/metrics")
    else:
        status, body = h.get_status(port, "/metrics")
    h.eq(status, 200, "GET /metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_log(node, pattern, timeout=5.0, start=0):
    """Waits for a log line matching pattern after offset start; returns the match."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = rx.search(node.log(), start)
        if m:
            return m
        if not node.alive():
            raise h.Failure(f"node exited while waiting for /{pattern}/\n{node.log_tail()}")
        time.sleep(0.02)
    raise h.Failure(f"no log line /{pattern}/ within {timeout} s\n{node.log_tail()}")


def tls_args(cert=None, key=None, listen=f"{h.HOST}:0"):
    cert = cert or ca().server[0]
    key = key or ca().server[1]
    return ["--tls-listen", listen, "--tls-cert", cert, "--tls-key", key]


async def open_wss(port, id, ctx=None, host="localhost"):
    ws = await websockets.connect(f"wss://{host}:{port}/ws?id={id}", ssl=ctx or client_context(),
                                  subprotocols=[h.SUBPROTOCOL], open_timeout=5, close_timeout=3,
                                  ping_interval=None)
    return await welcome(ws, id)


async def open_ws(port, id):
    ws = await websockets.connect(f"ws://{h.HOST}:{port}/ws?id={id}",
                                  subprotocols=[h.SUBPROTOCOL], open_timeout=5, close_timeout=3,
                                  ping_interval=None)
    return await welcome(ws, id)


async def welcome(ws, id):
    raw = await asyncio.wait_for(ws.recv(), 5)
    msg = h.strict_loads(raw, f"{id}: welcome")
    h.eq((msg.get("type"), msg.get("id")), ("welcome", id), f"{id}: welcome")
    return Peer(ws, msg, id)


async def relay(src, dst, mid, payload=None):
    """src sends an offer to dst: dst gets it from src, src gets its ack."""
    payload = payload or {"type": "offer", "sdp": f"v=0 {mid}"}
    await src.send({"type": "offer", "to": dst.id, "payload": payload, "mid": mid})
    await dst.expect({"type": "offer", "from": src.id, "payload": payload, "mid": mid},
                     f"offer {mid} from {src.name} to {dst.name}", timeout=5)
    await src.expect({"type": "ack", "mid": mid}, f"ack of {mid}", timeout=5)


def relay_node(t, *args, listen=True):
    return t.node("--ice-servers", "[]", "--log-level", "debug", *args, listen=listen,
                  echo=False)


# ---------------------------------------------------------------------------------------------
# The listener


def test_https_and_wss_beside_plain(t):
    """Plain and TLS listeners side by side serve the same routes; a wss:// peer and a ws:// peer
    relay to each other; ALPN picks http/1.1; TLS 1.3 by default; the certificate's expiry is a
    metric."""
    n = relay_node(t, *tls_args())
    port = tls_port(n)
    h.check(port != n.port, "the TLS listener has a port of its own")
    status, body, facts = https_get(port, "/healthz")
    h.eq((status, body), (200, b"ok\n"), "GET /healthz over TLS")
    h.eq(facts["alpn"], "http/1.1", "ALPN protocol")
    h.eq(facts["version"], "TLSv1.3", "TLS version chosen")
    h.eq(h.get_status(n.port, "/healthz"), (200, b"ok\n"), "GET /healthz on the plain listener")
    status, body, _ = https_get(port, "/readyz")
    h.eq((status, body.strip()), (200, b"ready"), "GET /readyz over TLS")
    # A client that offers no ALPN at all is served too.
    status, _, facts = https_get(port, "/healthz", ctx=client_context(alpn=()))
    h.eq((status, facts["alpn"]), (200, None), "GET /healthz without ALPN")
    # The certificate the client saw, and its expiry as the gauge says.
    not_after = ssl.cert_time_to_seconds(facts["cert"]["notAfter"])
    h.eq(metric(n.port, "switchboard_tls_certificate_expiry_seconds"), float(not_after),
         "switchboard_tls_certificate_expiry_seconds")

    async def run():
        a = await open_wss(port, "alice")
        b = await open_wss(port, "bob")
        c = await open_ws(n.port, "carol")
        try:
            await relay(a, b, "m1")
            await relay(b, a, "m2")
            await relay(a, c, "m3")  # TLS to plain, on one node
            await relay(c, b, "m4")
            big = {"type": "offer", "sdp": "x" * 60000}  # many TLS records
            await relay(c, a, "m5", big)
            await relay(a, b, "m6", big)
        finally:
            await close_all(a, b, c)

    h.arun(run())


def test_refused_handshakes_are_counted(t):
    """TLS 1.1, TLS 1.2 with only weak suites (no ECDHE, or CBC), a foreign ALPN protocol and
    plain HTTP are all refused, each counted in switchboard_tls_handshake_failures_total and
    logged at debug; the node keeps serving."""
    n = relay_node(t, *tls_args())
    port = tls_port(n)
    name = "switchboard_tls_handshake_failures_total"
    h.eq(metric(n.port, name), 0.0, f"{name} at start")

    # @SECLEVEL=0 lets this client offer what the node must refuse by itself.
    old = client_context(minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1,
                         ciphers="DEFAULT:@SECLEVEL=0")
    err = refused_handshake(port, old, "a TLS 1.1 client")
    h.check("protocol version" in err.lower(), f"TLS 1.1: {err}")
    for suite in ("AES128-SHA", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA"):
        weak = client_context(minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2,
                              ciphers=f"{suite}:@SECLEVEL=0")
        err = refused_handshake(port, weak, f"a TLS 1.2 client with only {suite}")
        h.check("handshake failure" in err.lower(), f"{suite}: {err}")
    err = refused_handshake(port, client_context(alpn=("h2", "spdy/3")), "ALPN without http/1.1")
    h.check("no application protocol" in err.lower(), f"ALPN h2: {err}")
    # Plain HTTP on the TLS port: no answer a browser could read, just the end.
    with socket.create_connection((h.HOST, port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        for _ in range(100):
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:  # closed with the request unread
                break
            if not chunk:
                break
            got += chunk
        h.check(b"200" not in got, f"plain HTTP on the TLS port answered: {got!r}")
    # A connection that sends nothing and leaves is not a handshake failure.
    socket.create_connection((h.HOST, port), timeout=5).close()
    # ECDHE with GCM over TLS 1.2 is served.
    good = client_context(minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2,
                          ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    h.eq(https_get(port, "/healthz", ctx=good)[:2], (200, b"ok\n"), "TLS 1.2 with ECDHE-AES-GCM")
    good = client_context(minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2,
                          ciphers="ECDHE-RSA-CHACHA20-POLY1305")
    h.eq(https_get(port, "/healthz", ctx=good)[:2], (200, b"ok\n"), "TLS 1.2 with ChaCha20")

    h.eventually(lambda: h.eq(metric(n.port, name), 6.0, name), 5)
    log = n.log()
    h.eq(len(re.findall(r"TLS handshake with 127\.0\.0\.1 failed", log)), 6,
         "debug lines about failed handshakes")
    for reason in ("protocol version", "no shared cipher", "no application protocol",
                   "ended before the handshake completed"):
        h.check(reason in log, f"no failed handshake logged with {reason!r}\n{n.log_tail()}")
    h.eq(https_get(port, "/healthz")[:2], (200, b"ok\n"), "GET /healthz after the failures")


def test_session_resumption(t):
    """A second connection resumes the first one's session: TLS 1.3 (tickets) and TLS 1.2."""
    n = relay_node(t, *tls_args())
    port = tls_port(n)
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        ctx = client_context(minimum=version, maximum=version)
        status, _, first = https_get(port, "/healthz", ctx=ctx)
        h.eq((status, first["reused"]), (200, False), f"{version.name}: first connection")
        h.check(first["session"] is not None, f"{version.name}: no session to resume")
        status, _, second = https_get(port, "/healthz", ctx=ctx, session=first["session"])
        h.eq((status, second["reused"]), (200, True), f"{version.name}: session reused")
        h.eq(second["version"], version.name.replace("v1_", "v1."), "version of the resumption")


def test_tls_only_and_healthcheck(t):
    """--listen "" leaves only the TLS listener: its port is the one in "listening on", and
    `switchboard healthcheck` given the same options asks it over TLS."""
    cert, key = ca().server[:2]
    n = relay_node(t, "--listen", "", *tls_args(), listen=False)
    h.check(n.port == tls_port(n), f"listening on the TLS port only\n{n.log_tail()}")
    h.check(re.search(r"listening on 127\.0\.0\.1:\d+ \(TLS\)", n.log()),
            f"the listening line of a TLS-only node\n{n.log_tail()}")
    status, body, facts = https_get(n.port, "/healthz")
    h.eq((status, body, facts["alpn"]), (200, b"ok\n", "http/1.1"), "GET /healthz")
    with socket.socket() as s:  # nothing plain anywhere: the port answers TLS only
        s.settimeout(5)
        s.connect((h.HOST, n.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = s.recv(4096)
        except ConnectionResetError:
            got = b""
        h.check(b"200" not in got, "plain HTTP answered by the TLS listener")

    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    args = ["--listen", "", "--tls-listen", f"0.0.0.0:{n.port}", "--tls-cert", cert,
            "--tls-key", key]
    ok = subprocess.run([t.binary, "healthcheck", *args], capture_output=True, timeout=10,
                        env=env)
    h.eq(ok.returncode, 0, f"healthcheck of a TLS-only node ({ok.stderr!r})")
    env_only = dict(env, SWITCHBOARD_LISTEN="", SWITCHBOARD_TLS_LISTEN=f"{h.HOST}:{n.port}",
                    SWITCHBOARD_TLS_CERT=cert, SWITCHBOARD_TLS_KEY=key)
    ok = subprocess.run([t.binary, "healthcheck"], capture_output=True, timeout=10, env=env_only)
    h.eq(ok.returncode, 0, f"healthcheck through the environment ({ok.stderr!r})")
    args[3] = f"{h.HOST}:{h.free_port()}"
    bad = subprocess.run([t.binary, "healthcheck", *args], capture_output=True, timeout=10,
                         env=env)
    h.eq(bad.returncode, 1, "healthcheck of nothing")
    h.check(b"cannot connect" in bad.stderr, f"healthcheck's reason: {bad.stderr!r}")

    async def run():
        a = await open_wss(n.port, "a")
        b = await open_wss(n.port, "b", host=h.HOST)  # by address: the certificate has it too
        try:
            await relay(a, b, "only-tls")
        finally:
            await close_all(a, b)

    h.arun(run())


def test_max_connections_on_the_tls_listener(t):
    """Over --max-connections a TLS client is closed (it could not read a plain 503) and the
    refusal counted."""
    n = relay_node(t, *tls_args(), "--max-connections", "1")
    port = tls_port(n)
    held = tls_connect(port)
    try:
        err = None
        try:
            s = tls_connect(port)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.recv(4096)
            s.close()
            err = f"served over the limit: {got!r}" if got else None
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass
        h.check(err is None, err or "")
    finally:
        held.close()
    h.eventually(lambda: h.eq(metric(n.port, "switchboard_connections_refused_total"), 1.0,
                              "connections refused"), 5)


def test_sighup_reloads_the_certificate(t):
    """SIGHUP loads the files again: new clients get the new certificate while a connection
    opened before keeps relaying; a broken key, a key of another certificate or a missing file
    is logged and the last good certificate stays."""
    cert, key = own_copy("reload")
    n = relay_node(t, *tls_args(cert, key))
    port = tls_port(n)
    before = https_get(port, "/healthz")[2]["cert"]
    h.eq(dict(x[0] for x in before["subject"])["commonName"], "localhost", "first certificate")
    new_cert, new_key, new_serial = ca().leaf("renewed", "renewed.localhost",
                                              "DNS:localhost,IP:127.0.0.1", days=25)

    async def run():
        old = await open_wss(port, "old")  # on the first certificate
        replace_file(cert, new_cert)
        replace_file(key, new_key)
        mark = len(n.log())
        n.signal(signal.SIGHUP)
        m = await asyncio.get_running_loop().run_in_executor(
            None, wait_log, n, r"TLS certificate reloaded from \S+: subject (\S+), expires (\S+)",
            5.0, mark)
        h.eq(m.group(1).rstrip(","), "CN=renewed.localhost", "subject in the reload line")
        status, _, facts = https_get(port, "/healthz")
        h.eq(status, 200, "GET /healthz after the reload")
        h.eq(dict(x[0] for x in facts["cert"]["subject"])["commonName"], "renewed.localhost",
             "certificate of a new connection")
        h.eq(int(facts["cert"]["serialNumber"], 16), new_serial, "serial of the new certificate")
        h.eq(metric(n.port, "switchboard_tls_certificate_expiry_seconds"),
             float(ssl.cert_time_to_seconds(facts["cert"]["notAfter"])), "expiry gauge")
        new = await open_wss(port, "new")
        try:
            await relay(old, new, "across-reload")
            await relay(new, old, "back")
        finally:
            await close_all(old, new)

    h.arun(run())

    def refused(what, why):
        mark = len(n.log())
        n.signal(signal.SIGHUP)
        m = wait_log(n, r"TLS reload failed, keeping the current certificate: ([^\"\n]*)", 5.0, mark)
        h.check(why in m.group(1), f"{what}: reason {m.group(1)!r} should say {why!r}")
        status, _, facts = https_get(port, "/healthz")
        h.eq(status, 200, f"GET /healthz after {what}")
        h.eq(int(facts["cert"]["serialNumber"], 16), new_serial, f"certificate after {what}")

    with open(new_key) as f:
        good_key = f.read()
    replace_file(key, text=good_key[:200] + "garbage\n" + good_key[-200:])
    refused("a broken key file", "cannot load the TLS private key")
    replace_file(key, ca().server[1])  # the first certificate's key: not this one's
    refused("a key of another certificate", "does not match")
    os.unlink(key)
    refused("a missing key file", "cannot load the TLS private key")
    replace_file(key, text=good_key)
    replace_file(cert, text="-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n")
    refused("a broken certificate file", "cannot load the TLS certificate")
    h.check(n.alive(), "node alive after the refused reloads")


def test_sighup_without_tls(t):
    n = relay_node(t)
    n.signal(signal.SIGHUP)
    wait_log(n, r"received SIGHUP: no TLS listener, nothing to reload")
    h.eq(h.get_status(n.port, "/healthz"), (200, b"ok\n"), "GET /healthz after SIGHUP")


# ---------------------------------------------------------------------------------------------
# rediss://


class TLSRedis(h.Service):
    """Debian's redis-server listening only on a TLS port of 127.0.0.1 (no plain port)."""

    name = "redis"

    def __init__(self, cert, key, ca_file):
        super().__init__()
        self.port = h.free_port()
        self.cert, self.key, self.ca_file = cert, key, ca_file

    def start(self, timeout=5.0):
        self.spawn([REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", h.HOST,
                    "--tls-cert-file", self.cert, "--tls-key-file", self.key,
                    "--tls-ca-cert-file", self.ca_file, "--tls-auth-clients", "no",
                    "--save", "", "--appendonly", "no", "--dir", self.dir])
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise h.Failure(f"redis-server exited with status {self.proc.returncode}\n"
                                + self.log_tail())
            try:
                if self.command("PING") == b"+PONG\r\n":
                    return self
            except (OSError, ssl.SSLError) as e:
                last = e
            time.sleep(0.05)
        self.kill()
        raise h.Failure(f"redis-server (TLS) not answering within {timeout} s ({last})\n"
                        + self.log_tail())

    def command(self, *args):
        """Sends one command over TLS; returns the raw first reply line."""
        ctx = client_context(alpn=())
        ctx.check_hostname = False  # whatever name it has: this only waits for it to answer
        with socket.create_connection((h.HOST, self.port), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                out = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
                s.sendall(out.encode())
                data = b""
                while not data.endswith(b"\r\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data

    def stop(self):
        if self.alive():
            self.proc.terminate()
            if self.wait_exit(5.0) is None:
                self.kill()


def redis_for(t):
    """A TLS-only Redis whose certificate names localhost only (no IP address)."""
    c = ca()
    if not hasattr(c, "redis"):
        c.redis = c.leaf("redis", "localhost", "DNS:localhost")
    return t.service(TLSRedis(c.redis[0], c.redis[1], c.root)).start()


def test_rediss_cluster(t):
    """Two nodes on a Redis that speaks only TLS, verifying its certificate against --redis-ca,
    relay to each other; every Redis connection is up."""
    redis = redis_for(t)
    url = f"rediss://localhost:{redis.port}"
    nodes = [relay_node(t, "--redis", url, "--redis-ca", ca().root, "--node-id", name)
             for name in ("t1", "t2")]
    for n in nodes:
        h.wait_status(n.port, "/readyz", 200, 10)
        for conn in ("pub", "sub", "dir", "upkeep"):
            status, body = h.get_status(n.port, "/metrics")
            h.check(f'switchboard_redis_connected{{connection="{conn}"}} 1' in body.decode(),
                    f"redis connection {conn} not up")

    async def run():
        a = await open_ws(nodes[0].port, "a")
        b = await open_ws(nodes[1].port, "b")
        h.eq((a.node, b.node), ("t1", "t2"), "nodes of the peers")
        try:
            await relay(a, b, "x1")
            await relay(b, a, "x2")
        finally:
            await close_all(a, b)

    h.arun(run())


def tls_redis_cluster(t):
    """A Redis Cluster of three masters (no replicas) whose cluster bus and clients speak TLS,
    each master also on a plain port that the test uses to set it up; the certificate names
    localhost and 127.0.0.1, the address the slot map gives, and serves as the client
    certificate of the masters' bus between them too."""
    c = ca()
    if not hasattr(c, "cluster"):
        c.cluster = c.leaf("cluster", "localhost", "DNS:localhost,IP:127.0.0.1",
                           eku="serverAuth,clientAuth")
    cluster = rc.RedisCluster(masters=3, replicas_per_master=0, keep_logs=True, args=(
        "--tls-cluster", "yes", "--tls-replication", "yes", "--tls-cert-file", c.cluster[0],
        "--tls-key-file", c.cluster[1], "--tls-ca-cert-file", c.root, "--tls-auth-clients", "no",
        "--repl-diskless-sync-delay", "0"))
    for n in cluster.nodes:
        n.tls_port = h.free_port()
        n.args += ["--tls-port", str(n.tls_port)]
    return t.service(cluster).start()


def test_rediss_redis_cluster(t):
    """Two nodes on a Redis Cluster over TLS (rediss+cluster://, one seed): they find the masters'
    TLS ports in the slot map, verify each master's certificate, and relay to each other; a node
    that does not trust the cluster's CA does not start."""
    cluster = tls_redis_cluster(t)
    seed = cluster.nodes[0].tls_port
    url = f"rediss+cluster://127.0.0.1:{seed}"
    out = start_fails(t, ["--redis", url, "--redis-ca", other_ca().root], "an untrusted CA")
    h.check("certificate verify failed" in out, f"untrusted CA: {out}")
    nodes = [relay_node(t, "--redis", url, "--redis-ca", ca().root, "--node-id", name)
             for name in ("c1", "c2")]
    for n in nodes:
        h.wait_status(n.port, "/readyz", 200, 10)
        log = n.log()
        for m in cluster.nodes:
            h.check(f"redis pub: connected to 127.0.0.1:{m.tls_port}" in log,
                    f"{n.name}: not connected to the TLS port of {m.port}\n" + n.log_tail())
            h.check(f"connected to 127.0.0.1:{m.port}" not in log,
                    f"{n.name}: connected to the plain port {m.port}\n" + n.log_tail())

    async def run():
        a = await open_ws(nodes[0].port, "a")
        b = await open_ws(nodes[1].port, "b")
        try:
            await relay(a, b, "c1")
            await relay(b, a, "c2")
        finally:
            await close_all(a, b)

    h.arun(run())


def start_fails(t, args, what):
    """Runs a node that must refuse to start; returns its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    r = subprocess.run([t.binary, "--listen", f"{h.HOST}:0", "--log-format", "text", *args],
                       capture_output=True, timeout=20, env=env)
    out = (r.stdout + r.stderr).decode(errors="replace")
    h.check(r.returncode != 0, f"{what}: the node started (status {r.returncode})\n{out}")
    h.check("listening on" not in out, f"{what}: the node listened\n{out}")
    for marker in h.SANITIZER_MARKERS:
        h.check(marker not in out, f"{what}: {marker} in the output\n{out}")
    return out


def test_rediss_verification_failures_stop_the_start(t):
    """A Redis certificate from a CA the node does not trust, or one that does not name the
    URL's host, stops the node at start with the verification failure named."""
    redis = redis_for(t)
    out = start_fails(t, ["--redis", f"rediss://localhost:{redis.port}",
                          "--redis-ca", other_ca().root], "a CA that did not sign it")
    h.check("certificate verify failed" in out and "unable to get local issuer certificate" in out,
            f"wrong CA: {out}")
    out = start_fails(t, ["--redis", f"rediss://127.0.0.1:{redis.port}",
                          "--redis-ca", ca().root], "a certificate for localhost only")
    h.check("certificate verify failed" in out and "IP address mismatch" in out,
            f"host mismatch: {out}")
    out = start_fails(t, ["--redis", f"rediss://localhost:{redis.port}",
                          "--redis-ca", os.path.join(WORK, "missing.pem")], "a missing CA file")
    h.check("missing.pem" in out, f"missing CA file: {out}")
    # redis:// to a TLS port: no PING answer, a clear error all the same.
    out = start_fails(t, ["--redis", f"redis://localhost:{redis.port}"], "plain to a TLS port")
    h.check("Redis" in out, f"plain to TLS: {out}")


def test_rediss_node_retries_until_the_certificate_is_right(t):
    """Past the start, a verification failure is logged with OpenSSL's reason and the node
    retries with its backoff: Redis restarted with a certificate for another name makes the
    node unready, and back with the right one, ready again."""
    c = ca()
    wrong = c.leaf("redis-wrong", "elsewhere", "DNS:elsewhere.example")
    redis = redis_for(t)
    n = relay_node(t, "--redis", f"rediss://localhost:{redis.port}", "--redis-ca", c.root,
                   "--node-id", "r1")
    h.wait_status(n.port, "/readyz", 200, 10)
    redis.stop()
    h.wait_status(n.port, "/readyz", 503, 10)
    bad = t.service(TLSRedis(wrong[0], wrong[1], c.root))
    bad.port = redis.port
    mark = len(n.log())
    bad.start()
    wait_log(n, r"certificate verify failed: hostname mismatch", 10, mark)
    h.eq(h.get_status(n.port, "/readyz")[0], 503, "readyz with a wrong certificate")
    bad.stop()
    good = t.service(TLSRedis(c.redis[0], c.redis[1], c.root))
    good.port = redis.port
    good.start()
    h.wait_status(n.port, "/readyz", 200, 10)


if __name__ == "__main__":
    try:
        h.main([
            test_https_and_wss_beside_plain,
            test_refused_handshakes_are_counted,
            test_session_resumption,
            test_tls_only_and_healthcheck,
            test_max_connections_on_the_tls_listener,
            test_sighup_reloads_the_certificate,
            test_sighup_without_tls,
            test_rediss_cluster,
            test_rediss_verification_failures_stop_the_start,
            test_rediss_node_retries_until_the_certificate_is_right,
            test_rediss_redis_cluster,
        ], test_timeout=40.0, echo=False)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
