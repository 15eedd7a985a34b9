#!/usr/bin/python3
"""Switchboard as operators run it: /metrics read by a real Prometheus parser (Debian's
python3-prometheus-client) and seen to move, JSON logs that parse line by line, client
misbehaviour rate-limited in the log but counted in full, `switchboard healthcheck`, and the
graceful drain on SIGTERM (readiness drops at once, clients closed with 1001 spread over the
window, their rooms left at once, exit 0), with HAProxy in front sending a reconnecting client
to another node. Usage: test_ops.py PATH-TO-SWITCHBOARD"""

import asyncio
import json
import types
import re
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import same_json, strict_loads  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from client import ConnectionClosed, close_all, connect  # noqa: E402
from test_cluster import (  # noqa: E402
    HAPROXY_CONFIG,
    Inbox,
    cluster_node,
    note,
    off_loop,
    open_peer,
    relay_ok,
    start_redis,
)

NODE_ARGS = ["--ice-servers", "[]", "--log-level", "info"]


def scrape(node):
    """GET /metrics, parsed by prometheus_client: {(name, frozenset(labels)): value}."""
    status, body = h.get_status(node.port, "/metrics")
    h.eq(status, 200, "GET /metrics")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    h.check(key in samples, f"no sample {name}{labels} in /metrics")
    return samples[key]


def delta(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_exist_and_move(t):
    """Two nodes on one Redis: every metric family is there and well formed; a relay across
    the nodes, a bad request, a protocol error and an HTTP error each move what they should."""
    redis = start_redis(t)
    n1 = cluster_node(t, redis.url(), "n1")
    n2 = cluster_node(t, redis.url(), "n2")
    for n in (n1, n2):
        h.wait_status(n.port, "/readyz", 200, 5)
    before1, before2 = scrape(n1), scrape(n2)
    for conn in ("pub", "sub", "dir", "upkeep"):
        h.eq(value(before1, "switchboard_redis_connected", connection=conn), 1.0,
             f"n1's {conn} connection")
    h.eq(value(before1, "switchboard_ready"), 1.0, "switchboard_ready")
    h.eq(value(before1, "switchboard_info", node="n1", version=value_version(before1)), 1.0,
         "switchboard_info")
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "process_max_fds", "process_start_time_seconds"):
        h.check(value(before1, name) > 0, f"{name} is {value(before1, name)}")
    h.check(abs(value(before1, "process_start_time_seconds") - time.time()) < 60,
            "process_start_time_seconds is not now")
    count = 10

    async def run():
        a = await open_peer(n1.port, name="a", node="n1")
        b = await open_peer(n2.port, name="b", node="n2")
        for i in range(count):
            await relay_ok(a, b, f"metrics {i}", mid=f"m{i}")
        await a.send("{not json")
        await a.expect_error("bad-request", "bad JSON")
        await close_all(a, b)

    h.arun(run())
    # A protocol error (an unmasked frame) and an HTTP error (404).
    with h.handshake(n1.port) as c:
        c.send(h.frame(h.OP_TEXT, b"x", masked=False))
        h.expect_close(c, 1002)
    h.eq(h.get_status(n1.port, "/nope")[0], 404, "GET /nope")

    def moved():
        after1, after2 = scrape(n1), scrape(n2)
        h.eq(delta(before1, after1, "switchboard_relays_total", type="offer", outcome="delivered"),
             count, "n1: offers delivered")
        h.eq(delta(before2, after2, "switchboard_relay_latency_seconds_count", path="cluster"),
             count, "n2: cross-node latencies observed")
        h.check(delta(before2, after2, "switchboard_relay_latency_seconds_bucket", path="cluster",
                      le="+Inf") == count, "n2: the +Inf bucket holds every observation")
        h.check(value(after2, "switchboard_relay_latency_seconds_sum", path="cluster") > 0,
                "n2: latency sum")
        h.eq(delta(before1, after1, "switchboard_bad_requests_total"), 1, "n1: bad requests")
        h.eq(delta(before1, after1, "switchboard_protocol_errors_total", code="1002"), 1,
             "n1: protocol errors 1002")
        h.eq(delta(before1, after1, "switchboard_http_errors_total", status="404"), 1,
             "n1: 404s")
        h.check(delta(before1, after1, "switchboard_messages_received_total") >= count + 1,
                "n1: messages received")
        h.check(delta(before2, after2, "switchboard_sent_bytes_total") > 0, "n2: bytes sent")
        h.eq(delta(before1, after1, "switchboard_websockets_closed_total", reason="normal"), 1,
             "n1: closed normally (a)")
        h.eq(delta(before1, after1, "switchboard_websockets_closed_total",
                   reason="protocol_error"), 1, "n1: closed for a protocol error")
        h.eq(value(after1, "switchboard_websockets"), 0, "n1: open WebSockets")
        h.eq(value(after1, "switchboard_peers"), 0, "n1: peers")
        h.check(value(after1, "switchboard_redis_selfcheck_seconds") >= 0, "self-check timed")
        h.check(value(after1, "switchboard_sweeps_total") > 0, "sweeps run")
        return after1

    after1 = h.eventually(moved, 5.0)
    note(f"n1 after the test: {int(value(after1, 'switchboard_messages_received_total'))} "
         f"messages in, relay latency across nodes: "
         f"{value(scrape(n2), 'switchboard_relay_latency_seconds_sum', path='cluster') / count * 1e6:.0f} us "
         f"on average")


def value_version(samples):
    """The version label of switchboard_info."""
    for (name, labels), _ in samples.items():
        if name == "switchboard_info":
            return dict(labels)["version"]
    raise h.Failure("no switchboard_info")


def test_bus_messages_that_are_not_envelopes_are_dropped_and_counted(t):
    """Something published by hand on a peer's channel (old rendered JSON, garbage, an envelope
    for another peer) never reaches the client: it is dropped, warned about and counted; a real
    relay still arrives."""
    redis = start_redis(t)
    n = cluster_node(t, redis.url(), "n1")
    h.wait_status(n.port, "/readyz", 200, 5)
    before = scrape(n)

    async def run():
        a = await open_peer(n.port, id="target", name="target", node="n1")
        b = await open_peer(n.port, id="sender", name="sender", node="n1")
        channel = "sb:peer:target"
        for junk in ('{"type":"offer","from":"mallory","payload":1}', "garbage",
                     "sb2 offer 1 x target  0 ", "sb1 offer 1 mallory someone-else  0 1"):
            got = await off_loop(redis.command, "PUBLISH", channel, junk)
            h.eq(got, 1, f"receivers of {junk!r}")
        await a.silence("nothing from the junk")
        await relay_ok(b, a, "a real relay after the junk")
        await close_all(a, b)

    h.arun(run())
    after = scrape(n)
    # Three are not envelopes this node reads; the fourth is one, for another peer: not shown.
    h.eq(delta(before, after, "switchboard_bus_dropped_total"), 3, "bus messages dropped")
    h.check(n.log().count("dropped a bus message") == 3, "each drop is logged\n" + n.log_tail())


def test_readyz_and_metrics_during_a_redis_outage(t):
    """Redis stopped: /readyz 503 and switchboard_ready 0 with the connections down, /healthz
    200 throughout; Redis back: ready again."""
    redis = start_redis(t)
    n = cluster_node(t, redis.url(), "n1")
    h.wait_status(n.port, "/readyz", 200, 5)
    port = redis.port
    redis.shutdown()
    h.wait_status(n.port, "/readyz", 503, 5)
    h.eq(h.get_status(n.port, "/healthz"), (200, b"ok\n"), "/healthz during the outage")

    def all_down():  # each connection notices the loss on its own
        m = scrape(n)
        h.eq(value(m, "switchboard_ready"), 0.0, "switchboard_ready during the outage")
        for conn in ("pub", "sub", "dir", "upkeep"):
            h.eq(value(m, "switchboard_redis_connected", connection=conn), 0.0,
                 f"{conn} connected during the outage")

    h.eventually(all_down, 5.0)
    t.service(h.RedisServer(port=port)).start()
    h.wait_status(n.port, "/readyz", 200, 10)
    h.check(value(scrape(n), "switchboard_redis_reconnects_total", connection="pub") >= 1,
            "reconnects counted")


def test_json_logs_parse(t):
    """--log-format json: every line is one JSON object with time, level, node and msg, and
    lines about a connection carry conn and remote; text mode writes no JSON."""
    n = t.node("--log-format", "json", "--node-id", "json-node", "--log-level", "debug",
               echo=False)
    with h.handshake(n.port) as c:
        c.send(h.frame(h.OP_TEXT, b"x", masked=False))
        h.expect_close(c, 1002)
    h.get_status(n.port, "/healthz")
    n.stop()
    lines = [line for line in n.log().splitlines() if line.strip()]
    h.check(len(lines) >= 4, f"only {len(lines)} log lines")
    conn_lines = 0
    for line in lines:
        obj = strict_loads(line, "a log line")
        h.check(isinstance(obj, dict), f"a log line is not an object: {line}")
        for field in ("time", "level", "msg", "node"):
            h.check(isinstance(obj.get(field), str), f"{field} missing in {line}")
        h.eq(obj["node"], "json-node", "node field")
        h.check(obj["level"] in ("debug", "info", "warn", "error"), f"level in {line}")
        h.check(obj["time"].endswith("Z") and "T" in obj["time"], f"time in {line}")
        if "conn" in obj:
            conn_lines += 1
            h.check(isinstance(obj["conn"], int) and obj.get("remote") == h.HOST,
                    f"conn and remote in {line}")
    h.check(conn_lines >= 2, f"{conn_lines} lines with a conn field")
    h.check(any("closing with 1002" in json.loads(line)["msg"] for line in lines),
            "the protocol error is logged")
    text = t.node("--log-format", "text", echo=False)
    text.stop()
    h.check(all(not line.startswith("{") for line in text.log().splitlines()),
            "text mode wrote JSON\n" + text.log_tail())


def test_client_misbehaviour_is_rate_limited_in_the_log(t):
    """200 connections that break the protocol: the log says so a burst of times and then a
    few a second, with how many lines it left out; the metric counts all 200."""
    n = t.node("--log-format", "json", echo=False)
    total = 200
    t0 = time.monotonic()
    for _ in range(total):
        with h.handshake(n.port) as c:
            c.send(h.frame(h.OP_TEXT, b"x", masked=False))
            h.expect_close(c, 1002)
    secs = time.monotonic() - t0
    h.eq(value(scrape(n), "switchboard_protocol_errors_total", code="1002"), total,
         "protocol errors counted")
    n.stop()
    lines = [json.loads(line) for line in n.log().splitlines()]
    logged = [obj for obj in lines if "closing with 1002" in obj["msg"]]
    suppressed = sum(obj.get("suppressed", 0) for obj in lines)
    allowed = 20 + 10 * (secs + 1)  # SB_LOG_CLIENT_BURST and _RATE, with a second of slack
    h.check(len(logged) <= allowed, f"{len(logged)} lines for {total} violations in {secs:.1f} s")
    h.check(len(logged) < total, "nothing was left out of the log")
    h.check(len(logged) + suppressed == total,
            f"{len(logged)} lines written, {suppressed} said to be left out, of {total}")
    note(f"{total} protocol errors in {secs:.1f} s: {len(logged)} log lines, {suppressed} "
         f"reported as left out")


def test_admin_listener(t):
    """--admin-listen: /metrics, /healthz and /readyz alone there, and /metrics gone from the
    public listener; through a drain the admin listener stays open and says so."""
    n = t.node(*NODE_ARGS, "--admin-listen", f"{h.HOST}:0", "--drain-delay", "0.5",
               "--drain-seconds", "4", echo=False)
    m = re.search(r"and on (\S+):(\d+) \(admin\)", n.log())
    h.check(m is not None, "the start line names the admin listener")
    admin = int(m.group(2))
    h.eq(h.get_status(n.port, "/metrics")[0], 404, "/metrics on the public listener")
    h.eq(h.get_status(n.port, "/healthz")[0], 200, "/healthz on the public listener")
    samples = scrape(types.SimpleNamespace(port=admin))
    h.eq(value(samples, "switchboard_ready"), 1, "switchboard_ready on the admin listener")
    for path, want in (("/healthz", 200), ("/readyz", 200), ("/", 404), ("/ws", 404),
                       ("/switchboard.js", 404)):
        h.eq(h.get_status(admin, path)[0], want, f"{path} on the admin listener")
    # A WebSocket upgrade is no route there either.
    conn = h.Conn(admin)
    conn.send(h.upgrade_request())
    h.eq(h.read_response(conn).status, 404, "an upgrade on the admin listener")
    conn.close()

    async def run():
        # Three clients: the drain closes them 0, 1.3 and 2.7 s after the listener.
        peers = [await open_peer(n.port, name=f"p{i}") for i in range(3)]
        n.signal(signal.SIGTERM)
        await off_loop(h.wait_status, admin, "/readyz", 503, 2)
        # The public listener closes after the delay; the admin one answers on.
        await off_loop(h.eventually, lambda: h.check(not can_connect(n.port), "still open"), 3)
        h.eq(h.get_status(admin, "/metrics")[0], 200, "/metrics during the drain")
        await close_all(*peers)

    h.arun(run(), timeout=15)
    h.eq(n.wait_exit(5), 0, "exit status after the drain")
    n.stopped = True


def can_connect(port):
    try:
        socket.create_connection((h.HOST, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_healthcheck_command(t):
    """`switchboard healthcheck` exits 0 for a live node (found through the same options) and
    1, saying why, when nothing answers."""
    n = t.node(echo=False)
    ok = subprocess.run([t.binary, "healthcheck", "--listen", f"0.0.0.0:{n.port}"],
                        capture_output=True, timeout=10)
    h.eq(ok.returncode, 0, f"healthcheck of a live node ({ok.stderr!r})")
    env = dict(os.environ, SWITCHBOARD_LISTEN=f"{h.HOST}:{n.port}")
    ok = subprocess.run([t.binary, "healthcheck"], capture_output=True, timeout=10, env=env)
    h.eq(ok.returncode, 0, f"healthcheck through SWITCHBOARD_LISTEN ({ok.stderr!r})")
    bad = subprocess.run([t.binary, "healthcheck", "--listen", f"{h.HOST}:{h.free_port()}"],
                         capture_output=True, timeout=10)
    h.eq(bad.returncode, 1, "healthcheck of nothing")
    h.check(b"cannot connect" in bad.stderr, f"healthcheck's reason: {bad.stderr!r}")


def test_config_errors_name_the_option(t):
    """A bad value for each new option is refused at start, naming the option."""
    for args, name in ((["--drain-delay", "-1"], "--drain-delay"),
                       (["--drain-seconds", "soon"], "--drain-seconds"),
                       (["--log-format", "xml"], "--log-format")):
        p = subprocess.run([t.binary] + args, capture_output=True, timeout=10)
        h.eq(p.returncode, 2, f"exit status for {args}")
        h.check(name.encode() in p.stderr, f"{args}: the error does not name {name}: {p.stderr!r}")
    # A Redis Cluster URL whose seeds do not answer stops the start, saying so, without its
    # password in the message.
    p = subprocess.run([t.binary, "--listen", f"{h.HOST}:0", "--log-format", "text", "--redis",
                        "redis+cluster://:s3cret@127.0.0.1:1,127.0.0.1:2"], capture_output=True,
                       timeout=20)
    h.eq(p.returncode, 1, "exit status for a Redis Cluster URL of dead seeds")
    h.check(b"no seed of the Redis Cluster answers (2 tried)" in p.stderr
            and b"127.0.0.1:2" in p.stderr and b"s3cret" not in p.stderr,
            f"the refusal of a Redis Cluster URL of dead seeds: {p.stderr!r}")


DRAIN_DELAY, DRAIN_SECONDS, CLIENTS = 1.0, 3.0, 50


def test_sigterm_drains(t):
    """SIGTERM to n1 with 50 clients, each in a room with a member on n2: /readyz 503 at once,
    every client closed with 1001, the closes spread over --drain-seconds (not one burst), n2's
    member told peer-left for each as it goes (not by the dead-node sweep, which could only
    start --node-ttl after n1 stopped refreshing), n1 exits 0 within the window; HAProxy sends
    a client that reconnects to n2, where it is reachable."""
    redis = start_redis(t)
    n1 = cluster_node(t, redis.url(), "n1", "--drain-delay", str(DRAIN_DELAY), "--drain-seconds",
                      str(DRAIN_SECONDS))
    n2 = cluster_node(t, redis.url(), "n2")
    for n in (n1, n2):
        h.wait_status(n.port, "/readyz", 200, 5)
    port = h.free_port()
    servers = "\n".join(f"    server {n.name} {h.HOST}:{n.port} check" for n in (n1, n2))
    lb = t.service(h.HAProxy(HAPROXY_CONFIG.format(host=h.HOST, port=port, servers=servers),
                             port)).start()
    lb.wait_states("nodes", {"n1": "UP", "n2": "UP"}, 5)

    async def run():
        member = await open_peer(n2.port, id="member", name="member", node="n2")
        await member.send({"type": "join", "room": "drain"})
        await member.expect({"type": "joined", "room": "drain", "peers": []}, "member joins")
        clients = []
        for i in range(CLIENTS):
            p = await open_peer(n1.port, id=f"c{i}", name=f"c{i}", node="n1")
            await p.send({"type": "join", "room": "drain"})
            got = await p.recv(what="joined")
            h.eq((got["type"], got["room"]), ("joined", "drain"), f"c{i} joins")
            clients.append(p)
        inbox = Inbox(member)
        await inbox.wait(lambda: len(inbox.events) == CLIENTS, 5, "peer-joined of every client")
        joined_at = len(inbox.events)

        t0 = time.monotonic()
        n1.signal(signal.SIGTERM)
        # At once: as soon as the node has taken the signal, long before the delay is over.
        took = await off_loop(h.wait_status, n1.port, "/readyz", 503, DRAIN_DELAY / 2, 0.01)
        status = await off_loop(h.get_status, n1.port, "/readyz")
        h.check(b"draining" in status[1], f"n1's /readyz says why: {status[1]!r}")
        note(f"/readyz 503 {took * 1000:.0f} ms after SIGTERM")
        h.eq((await off_loop(h.get_status, n1.port, "/healthz"))[0], 200, "n1's /healthz")

        closed = {}

        async def wait_close(p):
            try:
                while True:
                    msg = strict_loads(await asyncio.wait_for(p.ws.recv(), DRAIN_DELAY +
                                                              DRAIN_SECONDS + 5), p.name)
                    h.check(msg.get("type") in ("peer-joined", "peer-left"),
                            f"{p.name}: a message before its close: {msg}")
            except ConnectionClosed as e:
                h.check(e.rcvd is not None, f"{p.name}: dropped without a close frame")
                h.eq(e.rcvd.code, 1001, f"{p.name}: close code")
                closed[p.name] = time.monotonic() - t0

        await asyncio.gather(*(wait_close(p) for p in clients))
        # Each departure reaches n2's member as peer-left well before a sweep could send it.
        await inbox.wait(lambda: len(inbox.events) == joined_at + CLIENTS, 3,
                         "peer-left of every drained client")
        heard = time.monotonic() - t0
        left = {e["peer"] for e in inbox.events[joined_at:] if e["type"] == "peer-left"}
        h.eq(left, {p.name for p in clients}, "peer-left for each client")
        times = sorted(closed.values())
        note(f"closes from {times[0]:.2f} s to {times[-1]:.2f} s after SIGTERM "
             f"(--drain-delay {DRAIN_DELAY}, --drain-seconds {DRAIN_SECONDS}); all peer-left "
             f"heard on n2 by {heard:.2f} s")
        h.check(times[0] >= DRAIN_DELAY - 0.1, f"a client closed before the delay: {times[0]:.2f}")
        h.check(times[-1] - times[0] >= DRAIN_SECONDS * 0.6,
                f"closes spread over {times[-1] - times[0]:.2f} s, not {DRAIN_SECONDS} s")
        h.check(heard < DRAIN_DELAY + DRAIN_SECONDS + 2,
                f"peer-left heard only {heard:.2f} s after SIGTERM")
        # Never one burst: at most half of them within any half second (as the test sees them;
        # a stall of the test process itself can bunch up what the node spread).
        for i, start in enumerate(times):
            burst = sum(1 for x in times[i:] if x - start < 0.5)
            h.check(burst <= CLIENTS // 2, f"{burst} closes within 0.5 s from {start:.2f} s")
        exit_status = await off_loop(n1.wait_exit, DRAIN_DELAY + DRAIN_SECONDS + 5)
        h.eq(exit_status, 0, "n1's exit status")
        n1.stopped = True
        await off_loop(lb.wait_states, "nodes", {"n1": "DOWN", "n2": "UP"}, 5)

        # A drained client comes back through HAProxy: it lands on n2 and is reachable.
        back = await open_peer(port, id="c0", name="c0 again")
        h.eq(back.node, "n2", "the node a reconnecting client lands on")
        await inbox.stop()
        await relay_ok(member, back, "to the reconnected client")
        await close_all(member, back, *clients)

    h.arun(run(), timeout=40)


TESTS = [
    test_metrics_exist_and_move,
    test_bus_messages_that_are_not_envelopes_are_dropped_and_counted,
    test_readyz_and_metrics_during_a_redis_outage,
    test_json_logs_parse,
    test_client_misbehaviour_is_rate_limited_in_the_log,
    test_admin_listener,
    test_healthcheck_command,
    test_config_errors_name_the_option,
    test_sigterm_drains,
]

if __name__ == "__main__":
    h.main(TESTS, test_timeout=60.0, echo=False)
