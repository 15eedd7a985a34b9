#!/usr/bin/python3
"""deploy/kubernetes, checked offline:

  test_manifests.py render   kubernetes.render: `kubectl kustomize` renders the base, each optional
                             component on it, all of them together, and the test overlay of
                             kubernetes.play; the base holds what README.md says it does.
  test_manifests.py schema   kubernetes.schema: every rendered object passes validate.mjs
                             (Kubernetes schemas from kubernetes-models, unknown fields, names,
                             ports, references, Pod Security "restricted", drain timing), and
                             validate.mjs does catch each kind of mistake it is for (broken
                             copies of the base must fail, each with its own error).

kubectl is on our machine image (/usr/bin/kubectl) but in no package archive we reach: without
it, `render` skips (exit 77) and `schema` checks the source files as they are (--partial: no
overlays, no generated ConfigMap).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BASE = os.path.join(ROOT, "deploy", "kubernetes")
COMPONENTS = ["ingress", "servicemonitor", "managed-redis", "coturn"]
PLAY_OVERLAY = os.path.join(HERE, "podman")
SKIP = 77

passed = failed = 0


def report(name, err=None):
    global passed, failed
    if err is None:
        passed += 1
        print(f"PASS {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL {name}: {err}", flush=True)


def finish():
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


def kubectl():
    """kubectl's path, or None. SB_KUBECTL overrides (empty: behave as without kubectl)."""
    if "SB_KUBECTL" in os.environ:
        return os.environ["SB_KUBECTL"] or None
    path = shutil.which("kubectl")
    if path is None and os.access("/usr/bin/kubectl", os.X_OK):
        path = "/usr/bin/kubectl"
    return path


def kustomize(directory):
    """Renders a kustomization; returns (ok, output or error)."""
    p = subprocess.run([kubectl(), "kustomize", directory], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        return False, p.stderr.strip() or f"exit {p.returncode}"
    return True, p.stdout


def overlay(tmp, name, components):
    """A kustomization in tmp/name: the base plus components, as a user's overlay would be
    (outside deploy/kubernetes: kustomize refuses an overlay inside its base's folder)."""
    d = os.path.join(tmp, name)
    os.makedirs(d)
    lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization",
             "resources:", f"  - {os.path.relpath(BASE, d)}"]
    if components:
        lines.append("components:")
        lines += [f"  - {os.path.relpath(os.path.join(BASE, 'optional', c), d)}"
                  for c in components]
    with open(os.path.join(d, "kustomization.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return d


def objects_of(text):
    """(kind, name) of each document in kubectl's canonical output: top-level `kind:` and the
    `name:` directly under the top-level `metadata:`."""
    out = []
    for doc in text.split("\n---\n"):
        kind = name = None
        in_meta = False
        for line in doc.splitlines():
            if line.startswith("kind: "):
                kind = line[6:].strip()
            if line and not line.startswith(" "):
                in_meta = line.startswith("metadata:")
            elif in_meta and line.startswith("  name: "):
                name = line[8:].strip()
        if kind:
            out.append((kind, name))
    return out


def cmd_render():
    if kubectl() is None:
        print("SKIP kubernetes.render: kubectl not found (it is on the project's machine image "
              "at /usr/bin/kubectl, but not in Debian's archive)", flush=True)
        sys.exit(SKIP)
    ok, out = kustomize(BASE)
    if not ok:
        report("base", out)
        finish()
    got = sorted(objects_of(out))
    want_fixed = sorted([
        ("Namespace", "switchboard"), ("ServiceAccount", "switchboard"),
        ("Secret", "switchboard-redis"), ("Deployment", "switchboard"),
        ("Service", "switchboard"), ("HorizontalPodAutoscaler", "switchboard"),
        ("PodDisruptionBudget", "switchboard"), ("Deployment", "redis"), ("Service", "redis"),
        ("NetworkPolicy", "redis")])
    config = [o for o in got if o[0] == "ConfigMap"]
    rest = [o for o in got if o[0] != "ConfigMap"]
    err = None
    if rest != want_fixed:
        err = f"objects {rest}, expected {want_fixed}"
    elif len(config) != 1 or not config[0][1].startswith("switchboard-config-"):
        err = f"expected one generated ConfigMap switchboard-config-<hash>, got {config}"
    elif f"name: {config[0][1]}" not in out.split("kind: Deployment", 1)[1]:
        err = "the Deployment does not refer to the generated ConfigMap by its name"
    elif "image: switchboard:dev" not in out or "imagePullPolicy: IfNotPresent" not in out:
        err = "the node image is not switchboard:dev with imagePullPolicy IfNotPresent"
    report(f"base ({len(got)} objects)", err)

    with tempfile.TemporaryDirectory(prefix="switchboard-k8s-") as tmp:
        for c in COMPONENTS:
            ok, out = kustomize(overlay(tmp, c, [c]))
            kinds = [k for k, _ in objects_of(out)] if ok else []
            err = None if ok else out
            if ok and c == "ingress" and ("Ingress" not in kinds or "type: LoadBalancer" in out):
                err = "no Ingress, or the Service is still a LoadBalancer"
            if ok and c == "servicemonitor" and "ServiceMonitor" not in kinds:
                err = "no ServiceMonitor"
            if ok and c == "managed-redis" and ("Deployment", "redis") in objects_of(out):
                err = "the in-cluster Redis is still there"
            if ok and c == "coturn" and (("Deployment", "coturn") not in objects_of(out) or
                                         "SWITCHBOARD_TURN_URIS: turn:" not in out or
                                         "name: SWITCHBOARD_TURN_SECRET" not in out):
                err = "no coturn, or the nodes lack SWITCHBOARD_TURN_URIS or _TURN_SECRET"
            report(f"base + optional/{c}", err)
        ok, out = kustomize(overlay(tmp, "all", COMPONENTS))
        report("base + every optional component", None if ok else out)
    ok, out = kustomize(PLAY_OVERLAY)
    err = None if ok else out
    if ok and ("Secret", "switchboard-redis") in objects_of(out):
        err = "the test overlay still has the Secret podman cannot read"
    report("tests/kubernetes/podman (kubernetes.play's overlay)", err)
    finish()


def validate(files, partial=False):
    args = ["node", os.path.join(HERE, "validate.mjs")] + (["--partial"] if partial else []) + files
    p = subprocess.run(args, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, cwd=HERE)
    return p.returncode, (p.stdout + p.stderr).strip()


# Broken copies of the rendered base: each edit must make validate.mjs fail with the text given.
MUTATIONS = [
    ("unknown field", ("httpGet:", "httpGett:"), "unknown field"),
    ("wrong type", ("replicas: 3", "replicas: three"), "schema: /spec/replicas type"),
    ("port out of range", ("containerPort: 8080", "containerPort: 80800"), "out of range"),
    ("bad port name", ("- name: http\n", "- name: http_api\n"), "bad port name"),
    ("missing ConfigMap", ("name: switchboard-config-", "name: switchboard-konfig-"),
     "does not exist"),
    ("missing Secret key", ("key: url", "key: uri"), "has no key uri"),
    ("removed API version", ("apiVersion: policy/v1\n", "apiVersion: policy/v1beta1\n"),
     "no longer served"),
    ("not restricted", ("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"),
     "allowPrivilegeEscalation"),
    ("host network in a restricted namespace",
     ("      serviceAccountName: switchboard\n",
      "      serviceAccountName: switchboard\n      hostNetwork: true\n"), "host network"),
    ("admin port on the LoadBalancer", ("targetPort: http", "targetPort: admin"),
     "exposes the admin port"),
    ("grace shorter than the drain", ("terminationGracePeriodSeconds: 30",
                                      "terminationGracePeriodSeconds: 10"), "drain"),
    ("selector selects nothing", ("    app.kubernetes.io/name: redis\n  type: ClusterIP",
                                  "    app.kubernetes.io/name: rediss\n  type: ClusterIP"),
     "selects no pods"),
]


def cmd_schema():
    if not os.path.isfile(os.path.join(HERE, "node_modules", "kubernetes-models", "package.json")):
        print(f"FAIL schema: {HERE}/node_modules is missing: the fixture kubernetes.setup "
              "(tests/kubernetes/setup.sh) installs it", flush=True)
        sys.exit(1)
    if kubectl() is None:
        print("note: kubectl not found (it is on the project's machine image at "
              "/usr/bin/kubectl, but not in Debian's archive): checking the source files as they "
              "are, without overlays and references to generated objects", flush=True)
        files = []
        for d in [BASE] + [os.path.join(BASE, "optional", c) for c in COMPONENTS]:
            files += [os.path.join(d, f) for f in sorted(os.listdir(d))
                      if f.endswith(".yaml") and f != "kustomization.yaml"]
        rc, out = validate(files, partial=True)
        print(out, flush=True)
        report("source files", None if rc == 0 else "validate.mjs found errors")
        finish()

    with tempfile.TemporaryDirectory(prefix="switchboard-k8s-") as tmp:
        rendered = {}
        for name, d in [("base", BASE), ("base + every optional component",
                                          overlay(tmp, "all", COMPONENTS))]:
            ok, out = kustomize(d)
            if not ok:
                report(name, f"does not render: {out}")
                continue
            path = os.path.join(tmp, name.split()[0] + ".yaml")
            with open(path, "w") as f:
                f.write(out)
            rendered[name] = out
            rc, text = validate([path])
            print("  " + text.replace("\n", "\n  "), flush=True)
            report(name, None if rc == 0 else "validate.mjs found errors")

        base = rendered.get("base")
        if base is None:
            finish()
        for what, (old, new), expect in MUTATIONS:
            if old not in base:
                report(f"catches: {what}", f"the rendered base has no {old!r} to break")
                continue
            path = os.path.join(tmp, "broken.yaml")
            with open(path, "w") as f:
                f.write(base.replace(old, new, 1))
            rc, text = validate([path])
            err = None
            if rc == 0:
                err = "validate.mjs accepted it"
            elif expect not in text:
                err = f"validate.mjs failed, but not with {expect!r}: {text[-400:]}"
            report(f"catches: {what}", err)
    finish()


if __name__ == "__main__":
    cmds = {"render": cmd_render, "schema": cmd_schema}
    if len(sys.argv) != 2 or sys.argv[1] not in cmds:
        print(f"usage: {sys.argv[0]} render|schema", file=sys.stderr)
        sys.exit(2)
    cmds[sys.argv[1]]()
