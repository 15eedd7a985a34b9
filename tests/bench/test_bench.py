#!/usr/bin/python3
"""A smoke run of each mode of switchboard-bench against real nodes on a real redis-server: relay
across two nodes (closed loop with the webrtc mix, and open loop at a target rate), conns, the
bare-Redis baseline, usage errors, and nodes that keep their default limits. Asserts correctness
only (every message answered, every ack delivered, the JSON well formed, CPU figures present),
never speed. Usage: test_bench.py PATH-TO-SWITCHBOARD-BENCH PATH-TO-SWITCHBOARD"""

import json
import os
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402
from harness import Failure, check, eq  # noqa: E402

NODE_ARGS = ["--ice-servers", "[]", "--log-level", "info"]
# Short runs: enough messages to exercise every path, quick enough for the suite.
LOAD = ["--warmup", "0.5", "--duration", "2", "--drain", "5"]

BENCH = None
SWITCHBOARD = None


def run_bench(*args, expect=0, timeout=60):
    """Runs the bench with --json; returns (parsed object or None, stderr). The exit status must
    be expect (None: 0 or 1, checked against the JSON's "ok")."""
    cmd = [BENCH] + [str(a) for a in args]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    for marker in h.SANITIZER_MARKERS:
        check(marker not in err, f"bench stderr has {marker!r}:\n{err}")
    if p.returncode != expect and not (expect is None and p.returncode in (0, 1)):
        raise Failure(f"{' '.join(cmd)}: exit status {p.returncode}, expected {expect}\n"
                      f"stdout: {out}\nstderr: {err}")
    if "--json" not in cmd:
        return None, err
    # exactly one JSON object on stdout, and nothing else
    obj = h.strict_loads(out, "bench --json")
    eq(out.count("\n"), 1, "lines on stdout")
    eq(obj.get("ok"), p.returncode == 0, "'ok' against the exit status")
    return obj, err


def number(v, what):
    check(isinstance(v, (int, float)) and not isinstance(v, bool), f"{what}: not a number: {v!r}")
    check(v >= 0, f"{what}: negative: {v!r}")
    return v


def check_latency(hist, what, count):
    eq(hist["count"], count, f"{what}.count")
    keys = ("min", "p50", "p90", "p99", "p999", "max")
    vals = [number(hist[k], f"{what}.{k}") for k in keys]
    check(vals == sorted(vals), f"{what}: percentiles out of order: {hist!r}")
    number(hist["mean"], f"{what}.mean")


def check_load(obj, what, nodes=None, redis=True):
    """The figures of one load run: every message answered, every ack delivered, CPU present."""
    m = obj["messages"]
    for k in ("sent", "acked", "delivered", "refused", "never_answered", "acked_not_delivered",
              "unexpected", "unsent_behind_schedule", "sent_with_warmup"):
        number(m[k], f"{what}.messages.{k}")
    check(m["sent"] > 0, f"{what}: nothing was sent: {m!r}")
    eq(m["acked"] + m["refused"], m["sent"], f"{what}: acked + refused vs sent")
    eq(m["delivered"], m["acked"], f"{what}: delivered vs acked")
    eq(sum(m["refused_by_code"].values()), m["refused"], f"{what}: refused by code")
    eq(m["never_answered"], 0, f"{what}: never answered")
    eq(m["acked_not_delivered"], 0, f"{what}: acked, not delivered")
    eq(m["unexpected"], 0, f"{what}: unexpected")
    t = obj["throughput"]
    check(number(t["interval_s"], f"{what}.interval_s") > 0, f"{what}: empty interval")
    check(number(t["delivered_per_s"], f"{what}.delivered_per_s") > 0, f"{what}: no throughput")
    check_latency(obj["latency_us"], f"{what}.latency_us", m["delivered"])
    check_latency(obj["ack_latency_us"], f"{what}.ack_latency_us", m["acked"])
    cpu = obj["cpu"]
    number(cpu["interval_s"], f"{what}.cpu.interval_s")
    eq(cpu["process_lost"], False, f"{what}: a watched process vanished")
    parts = ["bench"] + (["nodes"] if nodes else []) + (["redis"] if redis else [])
    for part in parts:
        check(isinstance(cpu[part], dict), f"{what}: no CPU figures for {part}: {cpu!r}")
        number(cpu[part]["seconds"], f"{what}.cpu.{part}.seconds")
        number(cpu[part]["us_per_msg"], f"{what}.cpu.{part}.us_per_msg")
    if nodes:
        eq(sorted(cpu["node_pids"]), sorted(n.proc.pid for n in nodes), f"{what}: node pids")
    if nodes and redis and cpu["node_over_redis"] is not None:
        number(cpu["node_over_redis"], f"{what}.cpu.node_over_redis")


class Cluster:
    """redis-server and two nodes on it, limits lifted (harness.Node does that by default)."""

    def __init__(self, limits=None):
        self.redis = h.RedisServer().start()
        self.nodes = []
        args = NODE_ARGS + ["--redis", self.redis.url()] + list(limits or [])
        try:
            for _ in range(2):
                self.nodes.append(h.Node(SWITCHBOARD, args, echo=False).start())
        except Exception:
            self.stop()
            raise

    def urls(self):
        return [f"ws://127.0.0.1:{n.port}/ws" for n in self.nodes]

    def stop(self, check_nodes=True):
        err = None
        for n in self.nodes:
            try:
                if check_nodes:
                    n.stop()
            except Exception as e:
                err = err or e
            finally:
                n.kill()
        self.redis.stop()
        if err:
            raise err

    def logs(self):
        return "\n".join(n.log_tail(30) for n in self.nodes) + "\n" + self.redis.log_tail(20)


def test_relay_split_webrtc(c):
    obj, _ = run_bench("relay", "--pairs", 5, "--place", "split", "--mix", "webrtc", "--window",
                       4, *LOAD, "--redis", c.redis.url(), "--json", *c.urls())
    eq(obj["mode"], "relay", "mode")
    eq(obj["ok"], True, "ok")
    eq(obj["place"], "split", "place")
    eq(obj["pairs"], 5, "pairs")
    eq(obj["mix"], "webrtc", "mix")
    check(600 < obj["mean_payload_bytes"] < 700, f"mean payload {obj['mean_payload_bytes']}")
    eq(obj["messages"]["refused"], 0, "refused")
    check_load(obj, "relay", nodes=c.nodes, redis=True)


def test_relay_open_loop(c):
    obj, _ = run_bench("relay", "--pairs", 5, "--rate", 400, "--size", 200, *LOAD,
                       "--node-port", c.nodes[0].port, "--node-port", c.nodes[1].port,
                       "--redis-port", c.redis.port, "--json", *c.urls())
    eq(obj["loop"], "open", "loop")
    eq(obj["rate"], 400, "rate")
    eq(obj["size"], 200, "size")
    check_load(obj, "relay --rate", nodes=c.nodes, redis=True)
    # at 400 msg/s for 2 s, about 800 messages were due in the interval: each one sent or not
    m = obj["messages"]
    check(700 <= m["sent"] + m["unsent_behind_schedule"] <= 900,
          f"open loop sent {m['sent']} + unsent {m['unsent_behind_schedule']}, expected ~800")


def test_relay_same_node_by_pid(c):
    obj, _ = run_bench("relay", "--pairs", 3, "--place", "same", "--size", 2048, "--window", 2,
                       *LOAD, "--node-pid", c.nodes[0].proc.pid, "--json", c.urls()[0])
    eq(obj["place"], "same", "place")
    check_load(obj, "relay same", nodes=c.nodes[:1], redis=False)
    eq(obj["cpu"]["redis"], None, "no Redis watched")


def test_conns(c):
    obj, _ = run_bench("conns", "--connections", 200, "--sources", 4, "--concurrency", 32,
                       "--relay-pairs", 2, *LOAD, "--json", c.urls()[0])
    eq(obj["mode"], "conns", "mode")
    eq(obj["ok"], True, "ok")
    eq(obj["ready"], 200, "ready")
    eq(obj["failed"], 0, "failed")
    eq(obj["lost"], 0, "lost")
    eq(obj["node_pid"], c.nodes[0].proc.pid, "node pid")
    for k in ("setup_s", "setup_per_s", "node_rss_kb_before", "node_rss_kb_after",
              "node_cpu_setup_s"):
        number(obj[k], f"conns.{k}")
    check(obj["node_rss_kb_before"] > 0, "node RSS read")
    for phase in ("relay_before", "relay_during"):
        eq(obj[phase]["ok"], True, f"{phase}.ok")
        check_load(obj[phase], phase, nodes=c.nodes[:1], redis=False)


def test_baseline(c):
    obj, _ = run_bench("baseline", "--pairs", 5, "--mix", "webrtc", *LOAD, "--redis",
                       c.redis.url(), "--json")
    eq(obj["mode"], "baseline", "mode")
    eq(obj["ok"], True, "ok")
    eq(obj["messages"]["refused"], 0, "refused")
    check_load(obj, "baseline", nodes=None, redis=True)


def test_usage(c):
    run_bench("relay", expect=2)  # no URL
    run_bench("bogus", "ws://127.0.0.1:1/", expect=2)
    run_bench("relay", "--window", "0", *c.urls(), expect=2)
    run_bench("relay", "--place", "split", c.urls()[0], expect=2)
    run_bench("relay", "http://127.0.0.1:1/", expect=2)
    run_bench("baseline", expect=2)  # no --redis
    p = subprocess.run([BENCH, "--help"], capture_output=True, timeout=10)
    eq(p.returncode, 0, "--help status")
    text = p.stdout.decode()
    for opt in ("--pairs", "--place", "--window", "--rate", "--mix", "--size", "--duration",
                "--warmup", "--drain", "--connections", "--sources", "--concurrency",
                "--relay-pairs", "--node-pid", "--node-port", "--redis-pid", "--redis-port",
                "--redis", "--json", "--quiet", "--id-prefix", "--timeout"):
        check(opt in text, f"--help does not document {opt}")


def test_node_limits_hint():
    """Nodes with their default per-connection limits refuse the flood: refusals are counted
    by code, and the bench says how to start benchmark nodes. (A node that then closes the
    connection leaves messages unanswered: exit 1, with "ok" false.)"""
    c = Cluster(limits=["--rate-messages", "100", "--rate-bytes", "256k"])
    try:
        obj, err = run_bench("relay", "--pairs", 1, "--size", 200, "--warmup", "0",
                             "--duration", "2", "--drain", "1", "--json", *c.urls(), expect=None)
        check(obj["messages"]["refused_by_code"].get("rate-limited", 0) > 0,
              f"no rate-limited refusals: {obj['messages']!r}")
        check("--rate-messages 1g" in err, f"no hint about the limits:\n{err}")
    finally:
        c.stop()


def main():
    global BENCH, SWITCHBOARD
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} PATH-TO-SWITCHBOARD-BENCH PATH-TO-SWITCHBOARD",
              file=sys.stderr)
        sys.exit(2)
    BENCH, SWITCHBOARD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])

    def alarm(signum, frame_):
        raise h.Timeout("test took too long (alarm)")

    signal.signal(signal.SIGALRM, alarm)
    passed = failed = 0
    t_start = time.monotonic()
    shared = [test_relay_split_webrtc, test_relay_open_loop, test_relay_same_node_by_pid,
              test_conns, test_baseline, test_usage]
    cluster = None
    try:
        cluster = Cluster()
        for test in shared + [test_node_limits_hint]:
            name = test.__name__[5:]
            t0 = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 40)
            try:
                if test in shared:
                    check(all(n.alive() for n in cluster.nodes), "a node died")
                    test(cluster)
                else:
                    test()
                print(f"PASS {name} ({time.monotonic() - t0:.1f} s)", flush=True)
                passed += 1
            except Exception as e:
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
                if os.environ.get("SB_TEST_VERBOSE"):
                    traceback.print_exc()
                print(cluster.logs(), flush=True)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        cluster.stop()
        print("PASS nodes_exit_cleanly", flush=True)
        passed += 1
    except Exception as e:
        failed += 1
        print(f"FAIL cluster: {type(e).__name__}: {e}", flush=True)
        if cluster:
            print(cluster.logs(), flush=True)
            cluster.stop(check_nodes=False)
    print(f"  (total {time.monotonic() - t_start:.1f} s)", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
