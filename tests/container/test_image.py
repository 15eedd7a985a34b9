#!/usr/bin/python3
"""container.image: the node image (the Dockerfile, built by `make image`'s script through the
fixture container.images) run for real with podman.

- what the image declares: a numeric non-root user, port 8080, the HEALTHCHECK, its size;
- one node, hardened as a cluster would run it (read-only root filesystem with no tmpfs, every
  capability dropped, no-new-privileges): /healthz, /readyz, the demo page, the HEALTHCHECK both
  through podman and run by hand, its user and capabilities read from /proc inside, that even
  root cannot write its filesystem, and a clean exit 0 on SIGTERM;
- a cluster: Redis (with a password) and two nodes in containers on a podman network this test
  creates, the nodes published on 127.0.0.1 only, on free ports; two peers on different nodes
  relay both ways, and a node stopped with SIGTERM closes its client with 1001 and exits 0.

Run: /usr/bin/python3 tests/container/test_image.py (as root; ctest runs it).
"""
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import Failure, check, eq, podman  # noqa: E402

SUITE = "ct"
HARDENED = ["--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL",
            "--security-opt=no-new-privileges"]


def test_image_metadata(scope):
    info = json.loads(lib.podman("image", "inspect", lib.IMAGE).stdout)[0]
    cfg, size = info["Config"], info["Size"]
    user = cfg.get("User", "")
    uid, _, gid = user.partition(":")
    check(uid.isdigit() and int(uid) != 0, f"image user {user!r}: not a numeric non-root uid "
          "(Kubernetes' runAsNonRoot needs a number)")
    check(gid.isdigit() and int(gid) != 0, f"image group {user!r}: not a numeric non-root gid")
    check("8080/tcp" in (cfg.get("ExposedPorts") or {}), f"ExposedPorts {cfg.get('ExposedPorts')}")
    hc = info.get("Healthcheck") or cfg.get("Healthcheck") or {}
    eq(hc.get("Test"), ["CMD", "/usr/local/bin/switchboard", "healthcheck"], "HEALTHCHECK")
    eq(cfg.get("Entrypoint"), ["/usr/local/bin/switchboard"], "ENTRYPOINT")
    check("SWITCHBOARD_LISTEN=0.0.0.0:8080" in (cfg.get("Env") or []), f"Env {cfg.get('Env')}")
    mb = int(size) / 1e6
    print(f"  image {lib.IMAGE}: {mb:.0f} MB, user {user}", flush=True)
    check(mb < 150, f"image is {mb:.0f} MB: the runtime stage should be bookworm-slim plus the "
          "node's libraries (about 90 MB)")


def proc_status(container, user=None):
    args = ["exec"] + (["--user", user] if user else []) + [container, "cat", "/proc/1/status"]
    out = podman(*args).stdout
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_hardened_node(scope):
    port = lib.h.free_port()
    c = scope.run("single", HARDENED + ["-p", f"127.0.0.1:{port}:8080"])
    lib.wait_http("127.0.0.1", port, "/healthz", 200, 30, c)
    status, _, body = lib.http_get("127.0.0.1", port, "/healthz")
    eq((status, body), (200, b"ok\n"), "GET /healthz")
    # Alone (no Redis) the node is ready at once.
    lib.wait_http("127.0.0.1", port, "/readyz", 200, 10, c)
    status, headers, body = lib.http_get("127.0.0.1", port, "/")
    eq(status, 200, "GET / (the demo)")
    check(headers.get("content-type", "").startswith("text/html"), f"GET /: {headers}")
    check(b"<html" in body.lower(), f"GET /: not the demo page: {body[:200]!r}")
    status, headers, _ = lib.http_get("127.0.0.1", port, "/switchboard.js")
    eq(status, 200, "GET /switchboard.js")

    # The image's HEALTHCHECK, as podman runs it, and by hand.
    p = podman("healthcheck", "run", c, check_rc=False)
    eq(p.returncode, 0, f"podman healthcheck run: {lib.noise_free(p.stdout + p.stderr)}")
    eq(podman("inspect", "--format", "{{.State.Health.Status}}", c).stdout.strip(), "healthy",
       "health status after a check")
    eq(podman("exec", c, "switchboard", "healthcheck", check_rc=False).returncode, 0,
       "switchboard healthcheck in the container")
    eq(podman("exec", c, "switchboard", "healthcheck", "--listen", "127.0.0.1:1",
              check_rc=False).returncode, 1, "switchboard healthcheck of a port nobody serves")

    # Who it runs as, and with what.
    st = proc_status(c)
    eq(st["Uid"].split(), ["10001"] * 4, "the node's uids (real, effective, saved, fs)")
    eq(st["Gid"].split(), ["10001"] * 4, "the node's gids")
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        eq(st[cap].strip(), "0000000000000000", f"the node's {cap}")
    eq(st["NoNewPrivs"].strip(), "1", "NoNewPrivs")
    # Read-only: not even root in the container can write anywhere (no tmpfs either).
    for path in ("/probe", "/tmp/probe", "/run/probe", "/var/tmp/probe"):
        p = podman("exec", "--user", "0", c, "touch", path, check_rc=False)
        check(p.returncode != 0 and "Read-only file system" in p.stderr,
              f"root could write {path} (exit {p.returncode}: {p.stderr.strip()})")
    check(podman("inspect", "--format", "{{.State.Running}}", c).stdout.strip() == "true",
          "node stopped running")

    # SIGTERM: a clean drain (no clients: the drain delay alone) and exit status 0.
    t0 = time.monotonic()
    podman("stop", "-t", "30", c, timeout=60)
    took = time.monotonic() - t0
    eq(podman("inspect", "--format", "{{.State.ExitCode}}", c).stdout.strip(), "0",
       "exit status after SIGTERM")
    check(took < 25, f"node took {took:.1f} s to stop (podman killed it?)")


def test_cluster_relay(scope):
    net = scope.network("net")
    password = "container-test-password"
    redis = scope.run("redis", HARDENED + ["--network", net],
                      image=lib.REDIS_IMAGE,
                      command=["redis-server", "--save", "", "--appendonly", "no",
                               "--requirepass", password])
    url = f"redis://:{password}@{redis}:6379"
    ports = {}
    for name in ("node-a", "node-b"):
        ports[name] = lib.h.free_port()
        # Redis by its container name, through the DNS podman gives (its network's server and
        # the host's, in that order): resolved as every program here resolves it.
        scope.run(name, HARDENED + [
            "--network", net, "-p", f"127.0.0.1:{ports[name]}:8080",
            "-e", f"SWITCHBOARD_REDIS_URL={url}", "-e", f"SWITCHBOARD_NODE_ID={name}",
            # A short drain, so that the SIGTERM check below takes a second, not twenty.
            "-e", "SWITCHBOARD_DRAIN_DELAY=0.2", "-e", "SWITCHBOARD_DRAIN_SECONDS=0.5"])
    for name, port in ports.items():
        took = lib.wait_http("127.0.0.1", port, "/readyz", 200, 60, f"{name} (through Redis)")
        print(f"  {name} ready through Redis after {took:.1f} s more", flush=True)

    async def calls():
        a, wa = await lib.connect("127.0.0.1", ports["node-a"], "alice")
        b, wb = await lib.connect("127.0.0.1", ports["node-b"], "bob")
        try:
            eq((wa["node"], wb["node"]), ("node-a", "node-b"), "the nodes the peers landed on")
            await lib.relay(a, "alice", b, "bob", {"sdp": "v=0 offer"}, "m1")
            await lib.relay(b, "bob", a, "alice", {"sdp": "v=0 answer"}, "m2")
            # SIGTERM to node-a while alice is connected: she is closed with 1001 (go away,
            # reconnect), the node exits 0.
            stop = asyncio.get_running_loop().run_in_executor(
                None, lambda: podman("stop", "-t", "30", "sbtest-ct-node-a", timeout=60))
            try:
                await asyncio.wait_for(a.wait_closed(), 20)
            except asyncio.TimeoutError:
                raise Failure("alice's connection still open 20 s after node-a's SIGTERM")
            eq(a.close_code, 1001, "alice's close code when her node stops")
            await stop
        finally:
            await asyncio.gather(a.close(), b.close(), return_exceptions=True)

    lib.arun(calls(), timeout=60)
    eq(podman("inspect", "--format", "{{.State.ExitCode}}", "sbtest-ct-node-a").stdout.strip(),
       "0", "node-a's exit status after SIGTERM")


if __name__ == "__main__":
    lib.main(SUITE, [test_image_metadata, test_hardened_node, test_cluster_relay],
             setup=lib.require_podman)
