#!/usr/bin/python3
"""kubernetes.play: deploy/kubernetes run for real by `podman kube play`, through the test overlay
tests/kubernetes/podman (what podman cannot do, and what stands in for it, is written there), with
the image that `make image` builds (the fixture container.images).

On a podman network this test creates: Redis (redis-pod-0) and two node pods
(switchboard-pod-0 and -1) from the rendered Deployments and ConfigMap. Checked: each node's
options come from the ConfigMap through envFrom (all of the base's keys, and a value this test
merges in, which the welcome then carries), its node ID is its pod's name (fieldRef), its
security context and memory limit are in force, both become ready through Redis (reached by its
pod's name, with the password from the stand-in for the Secret), two peers on different pods
relay both ways, and a pod stopped with SIGTERM drains: its client is closed with 1001 and the
node exits 0. Then `podman kube down` removes it all.

Besides the committed overlay, the test renders a small one of its own in a temp dir, for what
depends on this run: a label that lets a later run sweep leftovers, and the merged ConfigMap
value. The pods resolve each other's names through the DNS podman gives them (lib.py).
"""
import asyncio
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "container"))
import lib  # noqa: E402
from lib import Failure, check, eq, podman  # noqa: E402

SUITE = "kubernetes"
OVERLAY = os.path.join(HERE, "podman")
ICE = [{"urls": "stun:stun.kubernetes-play.test:3478"}]  # a value the base does not have
NODES = ["switchboard-pod-0", "switchboard-pod-1"]


def kubectl():
    return shutil.which("kubectl") or ("/usr/bin/kubectl"
                                       if os.access("/usr/bin/kubectl", os.X_OK) else None)


def setup():
    if kubectl() is None:
        raise lib.Skip("kubectl not found (it is on the project's machine image at "
                       "/usr/bin/kubectl, but not in Debian's archive): nothing to render")
    if not os.path.isfile(os.path.join(HERE, "node_modules", "yaml", "package.json")):
        raise Failure(f"{HERE}/node_modules is missing: the fixture kubernetes.setup installs it")
    lib.require_podman()


def render(tmp):
    d = os.path.join(tmp, "run")
    os.makedirs(d)
    with open(os.path.join(d, "kustomization.yaml"), "w") as f:
        f.write(f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: switchboard
resources:
  - {os.path.relpath(OVERLAY, d)}
labels:
  - pairs:
      {lib.LABEL}: {SUITE}
    includeTemplates: true
configMapGenerator:
  - name: switchboard-config
    behavior: merge
    literals:
      - SWITCHBOARD_ICE_SERVERS={json.dumps(ICE, separators=(",", ":"))}
      - SWITCHBOARD_DRAIN_SECONDS=1
""")
    p = subprocess.run([kubectl(), "kustomize", d], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    check(p.returncode == 0, f"kubectl kustomize {d}: {p.stderr}")
    path = os.path.join(tmp, "play.yaml")
    with open(path, "w") as f:
        f.write(p.stdout)
    p = subprocess.run(["node", os.path.join(HERE, "tojson.mjs"), path], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    check(p.returncode == 0, f"tojson.mjs: {p.stderr}")
    return path, json.loads(p.stdout)


def test_kube_play(scope):
    net = scope.network("net")
    path, objects = render(scope.tmpdir())
    kinds = sorted({o["kind"] for o in objects})
    print(f"  rendered: {', '.join(kinds)}", flush=True)
    base_cm = next(o for o in objects if o["kind"] == "ConfigMap"
                   and o["metadata"]["name"].startswith("switchboard-config-"))["data"]
    deployment = next(o for o in objects if o["kind"] == "Deployment"
                      and o["metadata"]["name"] == "switchboard")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    eq(deployment["spec"]["replicas"], 2, "replicas in the test overlay")

    scope.containers += [f"{n}-switchboard" for n in NODES] + ["redis-pod-0-redis"]  # logs
    scope.kube_play(path, net)
    pods = podman("pod", "ps", "--filter", f"label={lib.LABEL}={SUITE}",
                  "--format", "{{.Name}} {{.Status}}").stdout.split("\n")
    got = sorted(line.split()[0] for line in pods if line.strip())
    eq(got, sorted(NODES + ["redis-pod-0"]), "pods that podman kube play started")

    ips = {n: lib.container_ip(f"{n}-switchboard", net) for n in NODES}
    for n, ip in ips.items():
        took = lib.wait_http(ip, 8080, "/readyz", 200, 60, f"{n} (through Redis)")
        print(f"  {n} at {ip}: ready after {took:.1f} s", flush=True)
        # /metrics on the admin port (SWITCHBOARD_ADMIN_LISTEN), not on the clients' port.
        lib.wait_http(ip, 9090, "/metrics", 200, 5, f"{n}: /metrics on the admin port")
        lib.wait_http(ip, 8080, "/metrics", 404, 5, f"{n}: /metrics off the clients' port")

    for n in NODES:
        c = f"{n}-switchboard"
        environ = podman("exec", c, "cat", "/proc/1/environ").stdout.split("\0")
        env = dict(e.split("=", 1) for e in environ if "=" in e)
        for k, v in base_cm.items():
            eq(env.get(k), v, f"{n}: {k} from the ConfigMap (envFrom)")
        eq(env.get("SWITCHBOARD_NODE_ID"), n, f"{n}: SWITCHBOARD_NODE_ID (fieldRef metadata.name)")
        check(env.get("SWITCHBOARD_REDIS_URL", "").endswith("@redis-pod-0:6379"),
              f"{n}: SWITCHBOARD_REDIS_URL {env.get('SWITCHBOARD_REDIS_URL')!r}")
        # The security context and the limits, as podman enforces them.
        st = dict(line.split(":\t", 1) for line in
                  podman("exec", c, "cat", "/proc/1/status").stdout.splitlines() if ":\t" in line)
        eq(st["Uid"].split()[0], str(deployment["spec"]["template"]["spec"]["securityContext"]
                                     ["runAsUser"]), f"{n}: uid")
        eq(st["CapEff"].strip(), "0000000000000000", f"{n}: effective capabilities")
        eq(st["NoNewPrivs"].strip(), "1", f"{n}: no new privileges")
        p = podman("exec", "--user", "0", c, "touch", "/probe", check_rc=False)
        check(p.returncode != 0 and "Read-only file system" in p.stderr,
              f"{n}: root could write / ({p.stderr.strip()})")
        limit = container["resources"]["limits"]["memory"]
        check(limit.endswith("Mi"), f"memory limit {limit}")
        mem = podman("inspect", "--format", "{{.HostConfig.Memory}}", c).stdout.strip()
        eq(mem, str(int(limit[:-2]) << 20), f"{n}: memory limit (resources.limits.memory {limit})")

    async def calls():
        a, wa = await lib.connect(ips[NODES[0]], 8080, "alice")
        b, wb = await lib.connect(ips[NODES[1]], 8080, "bob")
        try:
            eq((wa["node"], wb["node"]), tuple(NODES), "the pods the peers landed on (node IDs)")
            eq(wa["iceServers"], ICE, "iceServers in welcome (SWITCHBOARD_ICE_SERVERS from the "
               "ConfigMap)")
            await lib.relay(a, "alice", b, "bob", {"sdp": "offer from pod 0"}, "k1")
            await lib.relay(b, "bob", a, "alice", {"sdp": "answer from pod 1"}, "k2")
            # The node stopped as Kubernetes stops a pod: SIGTERM to the container while the
            # pod's network stays (`podman pod stop` would stop the pod's infra container, and
            # with it the network, at the same moment), then its drain (here 2 s + 1 s).
            stop = asyncio.get_running_loop().run_in_executor(
                None, lambda: podman("stop", "-t", "30", f"{NODES[1]}-switchboard", timeout=60))
            try:
                await asyncio.wait_for(b.wait_closed(), 20)
            except asyncio.TimeoutError:
                raise Failure(f"bob still connected 20 s after {NODES[1]} got SIGTERM")
            eq(b.close_code, 1001, "bob's close code when his pod stops")
            await stop
        finally:
            await asyncio.gather(a.close(), b.close(), return_exceptions=True)

    lib.arun(calls(), timeout=60)
    eq(podman("inspect", "--format", "{{.State.ExitCode}}", f"{NODES[1]}-switchboard")
       .stdout.strip(), "0", f"{NODES[1]}: exit status after SIGTERM")


if __name__ == "__main__":
    lib.main(SUITE, [test_kube_play], setup=setup, test_timeout=240)
