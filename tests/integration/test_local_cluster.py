#!/usr/bin/python3
"""`make cluster`'s script (deploy/local/cluster.sh) run for real, on one redis-server
(REDIS=single) and on a Redis Cluster of 3 masters and 3 replicas (REDIS=cluster): it must come up
with two nodes behind HAProxy, relay between clients that HAProxy put on different nodes, and
stop everything on SIGINT, exiting 0 with its temp dir removed. Clients are Debian's
python3-websockets. Usage: test_local_cluster.py PATH-TO-SWITCHBOARD"""

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check, strict_loads  # noqa: E402

from client import ConnectionClosed, Peer, close_all, connect  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SCRIPT = os.path.join(ROOT, "deploy", "local", "cluster.sh")
READY_TIMEOUT = 60  # the script's own bound on starting everything
STOP_TIMEOUT = 20.0


def _term_with_parent():
    """In the script before exec: SIGTERM it if this test dies (a ctest timeout, say), so that it
    stops what it started (its processes are in sessions of their own) and removes its dir."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _alive(pid):
    """Whether pid runs (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Script:
    """deploy/local/cluster.sh in its own session, its stdout and stderr collected by threads."""

    def __init__(self, binary, redis):
        self.redis = redis
        self.port = h.free_port()
        env = dict(os.environ, N="2", PORT=str(self.port), BIND="127.0.0.1", STATS="0",
                   LOGS="0", SWITCHBOARD=binary, READY_TIMEOUT=str(READY_TIMEOUT), REDIS=redis)
        self.out = []
        self.err = []
        self.dir = None
        self.env = {}
        self.proc = subprocess.Popen(["bash", SCRIPT], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     preexec_fn=_term_with_parent)
        self._readers = [threading.Thread(target=self._read, args=(s, to), daemon=True)
                         for s, to in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream, to):
        for line in iter(stream.readline, b""):
            to.append(line.decode("utf-8", "replace").rstrip("\n"))

    def output(self):
        return ("--- stdout ---\n" + "\n".join(self.out) + "\n--- stderr ---\n"
                + "\n".join(self.err) + "\n--- end ---")

    def wait_line(self, prefix, timeout):
        """Waits for a line of stdout that starts with prefix."""
        deadline = time.monotonic() + timeout
        while not any(line.startswith(prefix) for line in self.out):
            if self.proc.poll() is not None:
                for t in self._readers:
                    t.join(2)
                raise h.Failure(f"REDIS={self.redis}: the script exited with status "
                                f"{self.proc.returncode} before printing {prefix!r}\n"
                                + self.output())
            if time.monotonic() > deadline:
                raise h.Failure(f"REDIS={self.redis}: no {prefix!r} line within {timeout} s\n"
                                + self.output())
            time.sleep(0.05)

    def wait_ready(self, timeout):
        """Waits for the "cluster: ready:" line, then the banner's end; reads the temp dir and
        cluster.env."""
        self.wait_line("cluster: ready:", timeout)
        self.wait_line("cluster: Ctrl-C stops everything", 5)
        for line in self.out:
            m = re.match(r"cluster: state in (\S+)$", line)
            if m:
                self.dir = m.group(1)
        check(self.dir is not None, "no 'cluster: state in DIR' line\n" + self.output())
        with open(os.path.join(self.dir, "cluster.env")) as f:
            for line in f.read().splitlines():
                k, sep, v = line.partition("=")
                check(sep and k, f"cluster.env: not NAME=value: {line!r}")
                self.env[k] = v

    def logs_tail(self, lines=30):
        """The last lines of the logs in the temp dir (while it is there)."""
        if not self.dir or not os.path.isdir(self.dir):
            return ""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith((".log", ".err")):
                continue
            with open(os.path.join(self.dir, name), "rb") as f:
                text = f.read().decode("utf-8", "replace").splitlines()
            out.append(f"--- {name}, last {min(lines, len(text))} of {len(text)} lines ---")
            out += text[-lines:]
        return "\n".join(out)

    def interrupt(self, timeout):
        """SIGINT to the script (as Ctrl-C); returns its status and the seconds it took, or None
        if it is still running after timeout seconds."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - t0
        for t in self._readers:
            t.join(5)
        return rc, time.monotonic() - t0

    def kill(self):
        """After a failure: the script and everything cluster.env names, SIGKILLed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for k, v in self.env.items():
            if k.endswith("_PID") and v.isdigit() and _alive(int(v)):
                try:
                    os.kill(int(v), signal.SIGKILL)
                except OSError:
                    pass
        if self.dir and os.path.isdir(self.dir):
            subprocess.run(["rm", "-rf", "--", self.dir], check=False)


async def open_peer(port, what):
    """A client through HAProxy; checks its welcome, which names its node."""
    ws = await connect(port)
    try:
        raw = await asyncio.wait_for(ws.recv(), 5)
    except asyncio.TimeoutError:
        await ws.close()
        raise h.Failure(f"{what}: no welcome within 5 s")
    except ConnectionClosed as e:
        raise h.Failure(f"{what}: closed before the welcome ({e})")
    msg = strict_loads(raw, f"{what}: welcome")
    check(msg.get("type") == "welcome" and isinstance(msg.get("id"), str)
          and isinstance(msg.get("node"), str), f"{what}: expected a welcome, got {raw}")
    return Peer(ws, msg, what)


async def relay_across(port, nodes):
    """Connects clients through HAProxy until two are on different nodes (round robin: the
    second already should be), then relays an offer with a mid each way."""
    peers = []
    try:
        for i in range(2 * nodes + 2):
            p = await open_peer(port, f"client{i + 1}")
            peers.append(p)
            a = next((x for x in peers if x.node != p.node), None)
            if a is not None:
                b = p
                break
        else:
            raise h.Failure(f"{len(peers)} clients through HAProxy all landed on "
                            f"{peers[0].node}")
        names = [f"node{i}" for i in range(1, nodes + 1)]
        check(a.node in names and b.node in names,
              f"welcomes name nodes {a.node} and {b.node}, not among {names}")
        for x, y in ((a, b), (b, a)):
            mid = f"m-{os.urandom(3).hex()}"
            what = f"{x.name} on {x.node} to {y.name} on {y.node}"
            await x.send({"type": "offer", "to": y.id, "payload": {"check": what}, "mid": mid})
            await y.expect({"type": "offer", "from": x.id, "payload": {"check": what},
                            "mid": mid}, f"relay ({what})", timeout=5)
            await x.expect({"type": "ack", "mid": mid}, f"ack ({what})", timeout=5)
        return a.node, b.node
    finally:
        await close_all(*peers)


def run_mode(binary, redis):
    t0 = time.monotonic()
    s = Script(binary, redis)
    try:
        s.wait_ready(READY_TIMEOUT + 30)
        t_ready = time.monotonic() - t0
        url = s.env.get("REDIS_URL", "")
        h.eq(s.env.get("CLUSTER_DIR"), s.dir, "CLUSTER_DIR in cluster.env")
        if redis == "cluster":
            m = re.fullmatch(r"redis\+cluster://((?:127\.0\.0\.1:\d+,){2}127\.0\.0\.1:\d+)", url)
            check(m is not None, f"REDIS_URL {url!r}: not redis+cluster:// with three seeds")
            roles = {}
            for i in range(1, 7):
                for k in ("PORT", "PID", "ROLE"):
                    check(s.env.get(f"REDIS{i}_{k}"), f"no REDIS{i}_{k} in cluster.env")
                check(_alive(int(s.env[f"REDIS{i}_PID"])), f"redis{i} is not running")
                roles[s.env[f"REDIS{i}_PORT"]] = s.env[f"REDIS{i}_ROLE"]
            h.eq(sorted(roles.values()), ["master"] * 3 + ["replica"] * 3, "roles")
            seeds = [a.split(":")[1] for a in m.group(1).split(",")]
            h.eq(sorted(roles[p] for p in seeds), ["master"] * 3, "the seeds' roles")
            check(sum(line.startswith("cluster:   redis") and " master " in line
                      for line in s.out) == 3, "the banner lists 3 masters\n" + s.output())
            check(any("failover: kill -9 a master's pid" in line for line in s.out),
                  "no Redis failover hint in the banner\n" + s.output())
        else:
            check(re.fullmatch(r"redis://127\.0\.0\.1:\d+", url) is not None,
                  f"REDIS_URL {url!r}: not redis://")
            check(s.env.get("REDIS_PID", "").isdigit(), "no REDIS_PID in cluster.env")
        t1 = time.monotonic()
        nodes = h.arun(relay_across(s.port, 2), timeout=30)
        t_relay = time.monotonic() - t1

        rc, t_stop = s.interrupt(STOP_TIMEOUT)
        check(rc is not None, f"still running {STOP_TIMEOUT} s after SIGINT\n" + s.output())
        h.eq(rc, 0, "the script's status after SIGINT\n" + s.output())
        check(any(line.endswith("nothing left running") for line in s.out),
              "no 'nothing left running' line\n" + s.output())
        check(not os.path.exists(s.dir), f"{s.dir} still there after the script exited")
        left = [f"{k}={v}" for k, v in s.env.items()
                if k.endswith("_PID") and v.isdigit() and _alive(int(v))]
        check(not left, f"still running after the script exited: {left}")
    except BaseException as e:
        # The logs first: SIGINT makes the script remove them.
        logs = s.logs_tail()
        if s.proc.poll() is None:
            s.interrupt(STOP_TIMEOUT)
        s.kill()
        if logs:
            print(logs, flush=True)
        if "--- stdout ---" not in str(e):
            print(s.output(), flush=True)
        raise
    print(f"  REDIS={redis}: ready in {t_ready:.1f} s, relayed between {nodes[0]} and "
          f"{nodes[1]} in {t_relay:.2f} s, stopped in {t_stop:.1f} s", flush=True)


def test_single(ctx):
    run_mode(ctx.binary, "single")


def test_cluster(ctx):
    run_mode(ctx.binary, "cluster")


if __name__ == "__main__":
    h.main([test_single, test_cluster], test_timeout=140.0)
