"""Shared pieces of the container and Kubernetes suites (tests/container, tests/kubernetes): podman
through deploy/container/podman.sh (the build tree's own store and configuration), resources that
are always removed, waiting on conditions with deadlines, a protocol v1 client, and a small runner.

Every container, pod and network a suite makes carries the label switchboard-test=SUITE and a
name starting with sbtest-: the suite removes them when it ends, pass or fail, and removes any that
an earlier run left (killed by a timeout) before it starts; `lib.py sweep` removes all of them
(ctest's cleanup fixture runs it).
"""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness as h  # noqa: E402  (read-only use: Failure, check, eq, wait_status, free_port)
from harness import Failure, check, eq  # noqa: E402,F401

PODMAN = os.path.join(ROOT, "deploy", "container", "podman.sh")
IMAGE = os.environ.get("SB_TEST_IMAGE", "switchboard:dev")
REDIS_IMAGE = "localhost/switchboard-test-redis:7.0"
LABEL = "switchboard-test"
SKIP = 77  # ctest's SKIP_RETURN_CODE for these suites


class Skip(Exception):
    """The suite cannot run on this machine (said why); exit code SKIP."""


def podman(*args, check_rc=True, timeout=120, input=None):
    """Runs deploy/container/podman.sh ARGS; returns the CompletedProcess (text). A non-zero exit
    raises Failure with its output unless check_rc is False."""
    try:
        p = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failure(f"podman {' '.join(args)}: still running after {timeout} s")
    if check_rc and p.returncode != 0:
        raise Failure(f"podman {' '.join(args)}: exit {p.returncode}\n{noise_free(p.stderr)}"
                      f"{noise_free(p.stdout)}")
    return p


def noise_free(text):
    """podman's output without its complaints about systemd (there is none here to schedule
    health checks; `podman healthcheck run` runs them on demand)."""
    return "".join(line + "\n" for line in text.splitlines()
                   if "systemd" not in line and "syslog" not in line)


def require_podman():
    """Skips where containers cannot run at all; deploy/deps.sh installs podman, so a missing
    podman is a failure, not a skip."""
    if os.geteuid() != 0:
        raise Skip("these tests run podman as root (its store is the build tree's, built with "
                   "debootstrap); run them as root, as CI does")
    if subprocess.run(["sh", "-c", "command -v podman"], capture_output=True).returncode != 0:
        raise Failure("podman is not installed: `bash deploy/deps.sh test` installs it")
    for image in (IMAGE, REDIS_IMAGE):
        if podman("image", "exists", image, check_rc=False).returncode != 0:
            raise Failure(f"image {image} is missing: the fixture test container.images builds "
                          "it (tests/container/build_images.sh)")


class Scope:
    """The containers, pods and networks of one suite run, removed by close() (and by sweep())."""

    def __init__(self, suite):
        self.suite = suite
        self.containers = []
        self.networks = []
        self.kube_files = []
        self.tmpdirs = []

    def label(self):
        return ["--label", f"{LABEL}={self.suite}"]

    def network(self, name):
        name = f"sbtest-{self.suite}-{name}"
        podman("network", "create", *self.label(), name)
        self.networks.append(name)
        return name

    def run(self, name, args, image=IMAGE, command=()):
        """Starts a detached container with podman run options args; returns its name."""
        name = f"sbtest-{self.suite}-{name}"
        self.containers.append(name)
        podman("run", "-d", "--name", name, *self.label(), *args, image, *command)
        return name

    def tmpdir(self):
        """A temporary directory, removed last."""
        import tempfile
        d = tempfile.mkdtemp(prefix=f"switchboard-{self.suite}-")
        self.tmpdirs.append(d)
        return d

    def kube_play(self, path, network):
        self.kube_files.append(path)
        return podman("kube", "play", "--network", network, path, timeout=180)

    def close(self):
        """Removes everything; returns a list of what could not be removed."""
        errors = []
        for path in reversed(self.kube_files):
            p = podman("kube", "down", path, check_rc=False, timeout=120)
            if p.returncode != 0 and "no such pod" not in p.stderr:
                errors.append(f"kube down {path}: {noise_free(p.stderr).strip()}")
        if self.containers:
            p = podman("rm", "-f", "-t", "0", "--ignore", *self.containers, check_rc=False)
            if p.returncode != 0:
                errors.append(f"rm: {noise_free(p.stderr).strip()}")
        for net in reversed(self.networks):
            p = podman("network", "rm", "-f", net, check_rc=False)
            if p.returncode != 0 and "network not found" not in p.stderr:
                errors.append(f"network rm {net}: {noise_free(p.stderr).strip()}")
        import shutil
        for d in self.tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
        return errors


def sweep(suite=None):
    """Removes the pods, containers and networks labelled switchboard-test (=suite if given)."""
    flt = f"label={LABEL}" + (f"={suite}" if suite else "")
    pods = podman("pod", "ps", "-q", "--filter", flt, check_rc=False).stdout.split()
    if pods:
        podman("pod", "rm", "-f", "-t", "0", *pods, check_rc=False)
    ids = podman("ps", "-aq", "--filter", flt, check_rc=False).stdout.split()
    if ids:
        podman("rm", "-f", "-t", "0", "--ignore", *ids, check_rc=False)
    nets = podman("network", "ls", "-q", "--filter", flt, check_rc=False).stdout.split()
    for net in nets:
        podman("network", "rm", "-f", net, check_rc=False)
    return len(pods) + len(ids) + len(nets)


# podman writes both its network's DNS server and the host's into a container's resolv.conf. The
# node resolves Redis's host name with getaddrinfo (base/resolve.c), which asks them in order as
# every program does; these tests give the containers that DNS as it comes, so that they would
# catch a resolver that took the host's "no such name" for a container name as final.


def container_ip(name, network):
    """The address of a container (or a pod's infra container) on a network."""
    out = podman("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout
    nets = json.loads(out)
    check(network in nets and nets[network].get("IPAddress"),
          f"{name} has no address on {network}: {nets}")
    return nets[network]["IPAddress"]


def logs(name, lines=40):
    p = podman("logs", "--tail", str(lines), name, check_rc=False)
    text = noise_free(p.stdout + p.stderr).rstrip()
    return f"--- {name} log (last {lines} lines) ---\n{text}\n--- end of {name} log ---"


def http_get(host, port, path, timeout=2.0):
    """GET path from host:port; returns (status, headers dict in lower case, body bytes)."""
    import http.client
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def wait_http(host, port, path, want, timeout, what=""):
    """Polls GET path until it answers want; returns the seconds it took."""
    t0 = time.monotonic()
    last = None
    while True:
        try:
            status, _, body = http_get(host, port, path)
            last = (status, body[:120])
            if status == want:
                return time.monotonic() - t0
        except OSError as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() - t0 > timeout:
            raise Failure(f"{what or host}: GET {path} on {host}:{port} not {want} within "
                          f"{timeout} s (last answer {last!r})")
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# A protocol v1 client (Debian's python3-websockets)

async def connect(host, port, peer_id, timeout=10.0):
    """Connects as peer_id; returns (websocket, welcome)."""
    import websockets
    ws = await websockets.connect(f"ws://{host}:{port}/ws?id={peer_id}",
                                  subprotocols=["switchboard.v1"], open_timeout=timeout,
                                  close_timeout=3, ping_interval=None)
    welcome = await recv(ws, f"{peer_id}: welcome", timeout)
    eq(welcome.get("type"), "welcome", f"{peer_id}: first message {welcome!r}")
    eq(welcome.get("id"), peer_id, f"{peer_id}: welcome id")
    return ws, welcome


async def recv(ws, what, timeout=5.0):
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise Failure(f"no {what} within {timeout} s")
    check(isinstance(raw, str), f"{what}: binary message {raw[:40]!r}")
    msg = json.loads(raw)
    check(isinstance(msg, dict), f"{what}: not an object: {raw!r}")
    return msg


async def relay(a, a_id, b, b_id, payload, mid):
    """a sends an offer to b: b gets it with from = a_id, a gets the ack."""
    await a.send(json.dumps({"type": "offer", "to": b_id, "payload": payload, "mid": mid}))
    got = await recv(b, f"{b_id}: offer from {a_id}")
    eq(got, {"type": "offer", "from": a_id, "payload": payload, "mid": mid},
       f"{b_id}: relayed offer")
    ack = await recv(a, f"{a_id}: ack of {mid}")
    eq(ack, {"type": "ack", "mid": mid}, f"{a_id}: ack")


def arun(coro, timeout=60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---------------------------------------------------------------------------------------------
# Runner


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout("test took too long (alarm)")


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def main(suite, tests, setup=None, test_timeout=120):
    """Runs setup() (may raise Skip), then each test with a fresh Scope, printing PASS/FAIL and a
    summary; removes everything each test made, and any leftovers of this suite first. Exits 0,
    1 on any failure, or SKIP."""
    signal.signal(signal.SIGALRM, _alarm)
    # ctest ends a test that runs out of time with SIGTERM or SIGKILL: on SIGTERM, clean up.
    signal.signal(signal.SIGTERM, _interrupt)
    t_start = time.monotonic()
    try:
        if setup:
            setup()
    except Skip as e:
        print(f"SKIP {suite}: {e}", flush=True)
        sys.exit(SKIP)
    except Failure as e:
        print(f"FAIL {suite} setup: {e}", flush=True)
        print("0 passed, 1 failed", flush=True)
        sys.exit(1)
    left = sweep(suite)
    if left:
        print(f"  (removed {left} leftovers of an earlier run)", flush=True)
    passed = failed = 0
    for test in tests:
        name = test.__name__[5:] if test.__name__.startswith("test_") else test.__name__
        scope = Scope(suite)
        err = None
        t0 = time.monotonic()
        signal.alarm(test_timeout)
        try:
            test(scope)
        except Skip as e:
            signal.alarm(0)
            print(f"SKIP {name}: {e}", flush=True)
            scope.close()
            sys.exit(SKIP)
        except BaseException as e:  # Failure, timeouts, interrupts, bugs in the test itself
            tb = traceback.extract_tb(e.__traceback__)
            where = next((f"{os.path.basename(fr.filename)}:{fr.lineno}" for fr in reversed(tb)
                          if os.path.basename(fr.filename).startswith("test_")), "")
            err = f"{type(e).__name__}: {e}" + (f" [{where}]" if where else "")
            if isinstance(e, KeyboardInterrupt):
                err = "interrupted (SIGTERM or Ctrl-C)"
        finally:
            signal.alarm(0)
        if err is not None:
            for c in scope.containers:
                print(logs(c), flush=True)
        leftovers = scope.close()
        if leftovers and err is None:
            err = "cleanup failed: " + "; ".join(leftovers)
        dt = time.monotonic() - t0
        if err is None:
            passed += 1
            print(f"PASS {name} ({dt:.1f} s)", flush=True)
        else:
            failed += 1
            print(f"FAIL {name} ({dt:.1f} s): {err}", flush=True)
            if isinstance(err, str) and err.startswith("interrupted"):
                break
    print(f"  (total {time.monotonic() - t_start:.1f} s)", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["sweep"]:
        # Nothing to do where these suites cannot have run.
        if os.geteuid() != 0 or subprocess.run(["sh", "-c", "command -v podman"],
                                               capture_output=True).returncode != 0:
            sys.exit(0)
        n = sweep(sys.argv[2] if len(sys.argv) > 2 else None)
        print(f"removed {n} test container(s), pod(s) and network(s)")
        sys.exit(0)
    print(f"usage: {sys.argv[0]} sweep [SUITE]", file=sys.stderr)
    sys.exit(2)
