// Offline checks of Kubernetes manifests (kubernetes.schema): node validate.mjs [--partial] FILE...
//
// Each FILE holds YAML documents (`kubectl kustomize` output). Every object is checked:
// - against the Kubernetes 1.32 OpenAPI schema of its kind, as compiled by the npm package
//   kubernetes-models (types, required fields, enums; the ServiceMonitor with
//   @kubernetes-models/prometheus-operator);
// - for unknown field names, which that schema lets through (`httpGett`): every field must be one
//   the schema's validator reads (the object is wrapped in a Proxy that records which properties
//   it looks at; maps such as labels are read key by key, fixed objects only by known names);
// - for an apiVersion that a current cluster serves (no removed beta versions);
// - names (DNS labels and subdomains), label keys and values, port names (IANA service names),
//   port numbers, env variable names, ConfigMap keys, quantities with requests <= limits;
// - the Pod Security Standard "restricted" on every pod template (deploy/kubernetes's namespace
//   enforces it: a pod breaking it would be refused at apply time, which only a cluster tells),
//   host namespaces allowed only where the pod's namespace enforces "privileged";
// - references within the set: ConfigMaps, Secrets and their keys, the ServiceAccount, selectors
//   that select something (Services, PDB, NetworkPolicy, ServiceMonitor), the HPA's target, named
//   ports that exist, an Ingress backend that exists;
// - Switchboard's own consistency: the container ports are the ones SWITCHBOARD_LISTEN and
//   SWITCHBOARD_ADMIN_LISTEN name, the scrape annotations name the one serving /metrics, no
//   LoadBalancer Service exposes the admin port, and terminationGracePeriodSeconds covers the drain.
// --partial: the files are sources, not a whole rendered set (no kubectl to render them):
// references to objects outside the files are not errors.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const SCHEMAS = {
  'v1/Namespace': 'kubernetes-models/_schemas/IoK8sApiCoreV1Namespace',
  'v1/ServiceAccount': 'kubernetes-models/_schemas/IoK8sApiCoreV1ServiceAccount',
  'v1/ConfigMap': 'kubernetes-models/_schemas/IoK8sApiCoreV1ConfigMap',
  'v1/Secret': 'kubernetes-models/_schemas/IoK8sApiCoreV1Secret',
  'v1/Service': 'kubernetes-models/_schemas/IoK8sApiCoreV1Service',
  'apps/v1/Deployment': 'kubernetes-models/_schemas/IoK8sApiAppsV1Deployment',
  'apps/v1/StatefulSet': 'kubernetes-models/_schemas/IoK8sApiAppsV1StatefulSet',
  'autoscaling/v2/HorizontalPodAutoscaler': 'kubernetes-models/_schemas/IoK8sApiAutoscalingV2HorizontalPodAutoscaler',
  'policy/v1/PodDisruptionBudget': 'kubernetes-models/_schemas/IoK8sApiPolicyV1PodDisruptionBudget',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes-models/_schemas/IoK8sApiNetworkingV1NetworkPolicy',
  'networking.k8s.io/v1/Ingress': 'kubernetes-models/_schemas/IoK8sApiNetworkingV1Ingress',
  'monitoring.coreos.com/v1/ServiceMonitor':
    // Not among the package's exports: imported by its file.
    new URL('./node_modules/@kubernetes-models/prometheus-operator/_schemas/ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1ServiceMonitor.js',
      import.meta.url).href,
};
// API versions that Kubernetes has stopped serving (1.16 to 1.29), named so the error says so.
const REMOVED = new Set(['extensions/v1beta1', 'apps/v1beta1', 'apps/v1beta2', 'policy/v1beta1',
  'autoscaling/v2beta1', 'autoscaling/v2beta2', 'networking.k8s.io/v1beta1', 'batch/v1beta1',
  'rbac.authorization.k8s.io/v1beta1', 'flowcontrol.apiserver.k8s.io/v1beta2']);
const POD_KINDS = new Set(['Deployment', 'StatefulSet']);

const partial = process.argv.includes('--partial');
const files = process.argv.slice(2).filter((a) => a !== '--partial');
const errors = [];
let checks = 0;
const fail = (where, msg) => errors.push(`${where}: ${msg}`);
const ok = (cond, where, msg) => { checks++; if (!cond) fail(where, msg); return cond; };

// ---------------------------------------------------------------------------------------------
// Names and values (the API server's rules: k8s.io/apimachinery/pkg/util/validation)
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const isLabel = (s) => typeof s === 'string' && s.length <= 63 && DNS_LABEL.test(s);
const isSubdomain = (s) => typeof s === 'string' && s.length <= 253 && s.split('.').every((p) => DNS_LABEL.test(p));
const QUALIFIED = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
function isQualifiedKey(k) {
  const parts = k.split('/');
  if (parts.length > 2) return false;
  const name = parts[parts.length - 1];
  if (parts.length === 2 && (!parts[0] || !isSubdomain(parts[0]))) return false;
  return name.length > 0 && name.length <= 63 && QUALIFIED.test(name);
}
const isLabelValue = (v) => typeof v === 'string' && (v === '' || (v.length <= 63 && QUALIFIED.test(v)));
// IANA_SVC_NAME: at most 15 of [a-z0-9-], a letter among them, no '-' at either end or twice.
const isPortName = (s) => typeof s === 'string' && s.length >= 1 && s.length <= 15 &&
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s) && /[a-z]/.test(s) && !s.includes('--');
const isPort = (n) => Number.isInteger(n) && n >= 1 && n <= 65535;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;

function quantity(q) {
  // A Kubernetes quantity as a number (bytes, cores); NaN if malformed.
  const m = /^([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(String(q));
  if (!m) return NaN;
  const mult = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20,
    Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 }[m[2]] ?? 1;
  return Number(m[1]) * mult;
}

// ---------------------------------------------------------------------------------------------
// Unknown fields: which properties does the schema's validator read?
function recorder() {
  const read = new WeakMap(); // target object -> Set of keys read
  const proxies = new WeakMap();
  function wrap(o) {
    if (o === null || typeof o !== 'object') return o;
    if (proxies.has(o)) return proxies.get(o);
    const p = new Proxy(o, {
      get(t, k, r) {
        if (typeof k === 'string') {
          if (!read.has(t)) read.set(t, new Set());
          read.get(t).add(k);
        }
        return wrap(Reflect.get(t, k, r));
      },
    });
    proxies.set(o, p);
    return p;
  }
  return { wrap, read };
}

function unknownFields(obj, read, path, out) {
  if (Array.isArray(obj)) {
    obj.forEach((v, i) => unknownFields(v, read, `${path}[${i}]`, out));
    return;
  }
  if (obj === null || typeof obj !== 'object') return;
  const seen = read.get(obj) ?? new Set();
  for (const [k, v] of Object.entries(obj)) {
    if (!seen.has(k)) out.push(`${path}.${k}`);
    else unknownFields(v, read, `${path}.${k}`, out);
  }
}

// ---------------------------------------------------------------------------------------------
// Load
const objects = [];
for (const file of files) {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { uniqueKeys: true, prettyErrors: true });
  for (const doc of docs) {
    for (const e of [...doc.errors, ...doc.warnings]) fail(file, `YAML: ${e.message}`);
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    const where = `${file}: ${obj.kind ?? '?'}/${obj.metadata?.name ?? '?'}`;
    objects.push({ obj, where });
  }
}
ok(objects.length > 0, files.join(' '), 'no objects');

const byKind = (kind) => objects.filter(({ obj }) => obj.kind === kind).map(({ obj }) => obj);
const ns = (o) => o.metadata?.namespace ?? 'default';
const find = (kind, name, namespace) =>
  objects.find(({ obj }) => obj.kind === kind && obj.metadata?.name === name && ns(obj) === namespace)?.obj;
const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => (labels ?? {})[k] === v);
const podTemplates = () => objects.filter(({ obj }) => POD_KINDS.has(obj.kind));
const selects = (sel, namespace) => podTemplates().filter(({ obj }) =>
  ns(obj) === namespace && matches(sel, obj.spec?.template?.metadata?.labels));

// ---------------------------------------------------------------------------------------------
// Each object
for (const { obj, where } of objects) {
  const key = `${obj.apiVersion}/${obj.kind}`;
  if (REMOVED.has(obj.apiVersion)) {
    fail(where, `apiVersion ${obj.apiVersion} is no longer served by Kubernetes`);
    continue;
  }
  if (!ok(key in SCHEMAS, where, `${key} is not a kind these checks know (add its schema)`)) continue;

  const { validate } = await import(SCHEMAS[key]);
  const rec = recorder();
  checks++;
  if (!validate(rec.wrap(obj))) {
    for (const e of validate.errors ?? []) {
      fail(where, `schema: ${e.instancePath || '/'} ${e.keyword} ${JSON.stringify(e.params)}`);
    }
  }
  const unknown = [];
  unknownFields(obj, rec.read, '', unknown);
  for (const f of unknown) fail(where, `unknown field ${f}`);

  const md = obj.metadata ?? {};
  const nameOk = obj.kind === 'Service' ? (s) => typeof s === 'string' && s.length <= 63 && DNS1035_LABEL.test(s)
    : obj.kind === 'Namespace' ? isLabel : isSubdomain;
  ok(nameOk(md.name), where, `bad name ${JSON.stringify(md.name)}`);
  if (md.namespace !== undefined) ok(isLabel(md.namespace), where, `bad namespace ${md.namespace}`);
  for (const [k, v] of Object.entries(md.labels ?? {})) {
    ok(isQualifiedKey(k), where, `bad label key ${k}`);
    ok(isLabelValue(v), where, `bad value of label ${k}: ${JSON.stringify(v)}`);
  }
  for (const k of Object.keys(md.annotations ?? {})) ok(isQualifiedKey(k), where, `bad annotation key ${k}`);
  if (obj.kind === 'ConfigMap' || obj.kind === 'Secret') {
    for (const k of Object.keys({ ...obj.data, ...obj.stringData })) {
      ok(CONFIG_KEY.test(k) && k.length <= 253, where, `bad key ${k}`);
    }
  }

  if (POD_KINDS.has(obj.kind)) checkPodTemplate(obj, where);
  if (obj.kind === 'Service') checkService(obj, where);
  if (obj.kind === 'HorizontalPodAutoscaler') {
    const t = obj.spec.scaleTargetRef;
    refOk(find(t.kind, t.name, ns(obj)), where, `scaleTargetRef ${t.kind}/${t.name}`);
    ok(obj.spec.minReplicas <= obj.spec.maxReplicas, where, 'minReplicas > maxReplicas');
  }
  if (obj.kind === 'PodDisruptionBudget') {
    ok(selects(obj.spec.selector?.matchLabels, ns(obj)).length > 0 || partial, where, 'selector selects no pods');
  }
  if (obj.kind === 'NetworkPolicy') checkNetworkPolicy(obj, where);
  if (obj.kind === 'Ingress') checkIngress(obj, where);
  if (obj.kind === 'ServiceMonitor') {
    const services = byKind('Service').filter((s) => ns(s) === ns(obj) &&
      matches(obj.spec.selector?.matchLabels, s.metadata?.labels));
    if (ok(services.length > 0 || partial, where, 'selector selects no Service')) {
      for (const ep of obj.spec.endpoints ?? []) {
        for (const s of services) {
          ok((s.spec.ports ?? []).some((p) => p.name === ep.port), where,
            `endpoint port ${ep.port} is not a port name of Service ${s.metadata.name}`);
        }
      }
    }
  }
}

function refOk(found, where, what) {
  return ok(found !== undefined || partial, where, `${what} does not exist in the rendered set`);
}

function checkPodTemplate(obj, where) {
  const spec = obj.spec.template?.spec ?? {};
  const labels = obj.spec.template?.metadata?.labels ?? {};
  const namespace = ns(obj);
  ok(matches(obj.spec.selector?.matchLabels, labels), where, 'selector does not match the template labels');
  if (spec.serviceAccountName) {
    refOk(find('ServiceAccount', spec.serviceAccountName, namespace), where, `ServiceAccount ${spec.serviceAccountName}`);
  }
  // Pod Security Standard "restricted" (unless the pod's namespace, in the set, enforces
  // "privileged": coturn's, for the host network), and our own rules (read-only root filesystem).
  const level = objects.find(({ obj: o }) => o.kind === 'Namespace' && o.metadata?.name === namespace)
    ?.obj.metadata?.labels?.['pod-security.kubernetes.io/enforce'] ?? 'restricted';
  const restricted = level !== 'privileged';
  const psc = spec.securityContext ?? {};
  ok(!restricted || !(spec.hostNetwork || spec.hostPID || spec.hostIPC), where,
    'restricted: no host network, PID or IPC namespace');
  ok(psc.seccompProfile?.type === 'RuntimeDefault' || psc.seccompProfile?.type === 'Localhost', where,
    'restricted: pod seccompProfile must be RuntimeDefault');
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    const cw = `${where} container ${c.name}`;
    const sc = c.securityContext ?? {};
    ok(isLabel(c.name), cw, 'bad container name');
    ok((sc.runAsNonRoot ?? psc.runAsNonRoot) === true, cw, 'restricted: runAsNonRoot must be true');
    ok((sc.runAsUser ?? psc.runAsUser) !== 0, cw, 'restricted: runAsUser must not be 0');
    ok(sc.allowPrivilegeEscalation === false, cw, 'restricted: allowPrivilegeEscalation must be false');
    ok((sc.capabilities?.drop ?? []).includes('ALL'), cw, 'restricted: capabilities must drop ALL');
    ok((sc.capabilities?.add ?? []).every((a) => a === 'NET_BIND_SERVICE'), cw, 'restricted: only NET_BIND_SERVICE may be added');
    ok(sc.privileged !== true, cw, 'restricted: privileged');
    ok(sc.readOnlyRootFilesystem === true, cw, 'readOnlyRootFilesystem must be true');
    ok(c.imagePullPolicy !== 'Always', cw, 'imagePullPolicy Always');

    const portNames = new Set();
    for (const p of c.ports ?? []) {
      ok(isPort(p.containerPort), cw, `containerPort ${p.containerPort} out of range`);
      if (p.hostPort !== undefined) ok(isPort(p.hostPort), cw, `hostPort ${p.hostPort} out of range`);
      if (p.name !== undefined) {
        ok(isPortName(p.name), cw, `bad port name ${p.name}`);
        ok(!portNames.has(p.name), cw, `port name ${p.name} twice`);
        portNames.add(p.name);
      }
    }
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const pr = c[probe];
      const port = pr?.httpGet?.port ?? pr?.tcpSocket?.port ?? pr?.grpc?.port;
      if (port === undefined) continue;
      if (typeof port === 'number') ok(isPort(port), cw, `${probe} port ${port} out of range`);
      else ok(portNames.has(port), cw, `${probe} port ${port} is not a named port of the container`);
    }
    for (const e of c.env ?? []) {
      ok(ENV_NAME.test(e.name), cw, `bad env name ${e.name}`);
      const cm = e.valueFrom?.configMapKeyRef;
      const sec = e.valueFrom?.secretKeyRef;
      for (const [kind, ref] of [['ConfigMap', cm], ['Secret', sec]]) {
        if (!ref || ref.optional) continue;
        const target = find(kind, ref.name, namespace);
        if (refOk(target, cw, `${kind} ${ref.name} (env ${e.name})`) && target) {
          ok(ref.key in { ...target.data, ...target.stringData }, cw, `${kind} ${ref.name} has no key ${ref.key} (env ${e.name})`);
        }
      }
    }
    for (const ef of c.envFrom ?? []) {
      for (const [kind, ref] of [['ConfigMap', ef.configMapRef], ['Secret', ef.secretRef]]) {
        if (!ref || ref.optional) continue;
        const target = find(kind, ref.name, namespace);
        if (refOk(target, cw, `${kind} ${ref.name} (envFrom)`) && target) {
          // The kubelet skips keys that are not valid variable names, silently.
          for (const k of Object.keys({ ...target.data, ...target.stringData })) {
            ok(ENV_NAME.test(k), cw, `${kind} ${ref.name} key ${k} is not a valid env name (envFrom would skip it)`);
          }
        }
      }
    }
    for (const kind of ['requests', 'limits']) {
      for (const [r, q] of Object.entries(c.resources?.[kind] ?? {})) {
        ok(!Number.isNaN(quantity(q)), cw, `bad quantity ${kind}.${r} ${q}`);
      }
    }
    for (const [r, q] of Object.entries(c.resources?.requests ?? {})) {
      const lim = c.resources?.limits?.[r];
      if (lim !== undefined) ok(quantity(q) <= quantity(lim), cw, `requests.${r} ${q} above limits.${r} ${lim}`);
    }
    if (c.image?.startsWith('switchboard') || c.name === 'switchboard') checkSwitchboard(obj, c, cw);
  }
  for (const v of spec.volumes ?? []) ok(isLabel(v.name), where, `bad volume name ${v.name}`);
}

function checkSwitchboard(obj, c, where) {
  // The options the container gets from its ConfigMaps (envFrom) and env values.
  const env = {};
  for (const ef of c.envFrom ?? []) {
    const cm = ef.configMapRef && find('ConfigMap', ef.configMapRef.name, ns(obj));
    Object.assign(env, cm?.data ?? {});
  }
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  if (partial && Object.keys(env).length === 0) return;
  const portOf = (listen) => Number(listen.slice(listen.lastIndexOf(':') + 1));
  const listen = env.SWITCHBOARD_LISTEN ?? '0.0.0.0:8080';
  const port = portOf(listen);
  if (c.ports) {
    ok((c.ports ?? []).some((p) => p.containerPort === port), where,
      `no containerPort ${port}, the port of SWITCHBOARD_LISTEN=${listen}`);
  }
  // With an admin listener, /metrics is served there alone.
  const admin = env.SWITCHBOARD_ADMIN_LISTEN;
  const metricsPort = admin ? portOf(admin) : port;
  if (admin && c.ports) {
    ok(c.ports.some((p) => p.containerPort === metricsPort), where,
      `no containerPort ${metricsPort}, the port of SWITCHBOARD_ADMIN_LISTEN=${admin}`);
  }
  const ann = obj.spec.template.metadata?.annotations ?? {};
  if ('prometheus.io/port' in ann) {
    ok(Number(ann['prometheus.io/port']) === metricsPort, where,
      `prometheus.io/port ${ann['prometheus.io/port']} is not ${metricsPort}, where /metrics is served`);
  }
  // The public Service must not carry the admin port (it would put /metrics on the internet).
  if (admin) {
    const named = (c.ports ?? []).find((p) => p.containerPort === metricsPort)?.name;
    for (const svc of byKind('Service').filter((s) => ns(s) === ns(obj) && s.spec.type === 'LoadBalancer')) {
      ok(!(svc.spec.ports ?? []).some((p) => p.targetPort === metricsPort || (named && p.targetPort === named)),
        where, `the LoadBalancer Service ${svc.metadata.name} exposes the admin port ${metricsPort}`);
    }
  }
  const drain = Number(env.SWITCHBOARD_DRAIN_DELAY ?? 2) + Number(env.SWITCHBOARD_DRAIN_SECONDS ?? 20) +
    Number(env.SWITCHBOARD_CLOSE_TIMEOUT ?? 2);
  const grace = obj.spec.template.spec.terminationGracePeriodSeconds ?? 30;
  ok(grace > drain, where, `terminationGracePeriodSeconds ${grace} does not cover the drain (${drain} s)`);
}

function checkService(obj, where) {
  const pods = selects(obj.spec.selector, ns(obj));
  ok(pods.length > 0 || partial, where, 'selector selects no pods');
  ok(obj.spec.sessionAffinity !== 'ClientIP' || obj.metadata.name !== 'switchboard', where,
    'session affinity: the nodes share one space of IDs, any node serves any client');
  const names = new Set();
  for (const p of obj.spec.ports ?? []) {
    ok(isPort(p.port), where, `port ${p.port} out of range`);
    if (p.nodePort !== undefined) ok(p.nodePort >= 30000 && p.nodePort <= 32767, where, `nodePort ${p.nodePort}`);
    if (p.name !== undefined) {
      ok(isPortName(p.name), where, `bad port name ${p.name}`);
      ok(!names.has(p.name), where, `port name ${p.name} twice`);
      names.add(p.name);
    }
    const t = p.targetPort ?? p.port;
    if (typeof t === 'number') ok(isPort(t), where, `targetPort ${t} out of range`);
    else {
      for (const { obj: d } of pods) {
        const cs = d.spec.template.spec.containers ?? [];
        ok(cs.some((c) => (c.ports ?? []).some((cp) => cp.name === t)), where,
          `targetPort ${t} is not a named port of ${d.kind} ${d.metadata.name}`);
      }
    }
  }
}

function checkNetworkPolicy(obj, where) {
  const targets = selects(obj.spec.podSelector?.matchLabels, ns(obj));
  ok(targets.length > 0 || partial, where, 'podSelector selects no pods');
  for (const rule of obj.spec.ingress ?? []) {
    for (const from of rule.from ?? []) {
      if (from.podSelector && !from.namespaceSelector) {
        ok(selects(from.podSelector.matchLabels, ns(obj)).length > 0 || partial, where, 'a from.podSelector selects no pods');
      }
    }
    for (const p of rule.ports ?? []) {
      if (typeof p.port === 'number') ok(isPort(p.port), where, `port ${p.port} out of range`);
      else if (p.port !== undefined) {
        for (const { obj: d } of targets) {
          ok((d.spec.template.spec.containers ?? []).some((c) => (c.ports ?? []).some((cp) => cp.name === p.port)),
            where, `port ${p.port} is not a named port of ${d.metadata.name}`);
        }
      }
    }
  }
}

function checkIngress(obj, where) {
  for (const rule of obj.spec.rules ?? []) {
    if (rule.host !== undefined) ok(isSubdomain(rule.host.replace(/^\*\./, '')), where, `bad host ${rule.host}`);
    for (const path of rule.http?.paths ?? []) {
      const b = path.backend?.service;
      if (!b) continue;
      const svc = find('Service', b.name, ns(obj));
      if (refOk(svc, where, `backend Service ${b.name}`) && svc) {
        if (b.port?.name !== undefined) {
          ok((svc.spec.ports ?? []).some((p) => p.name === b.port.name), where, `Service ${b.name} has no port ${b.port.name}`);
        } else {
          ok((svc.spec.ports ?? []).some((p) => p.port === b.port?.number), where, `Service ${b.name} has no port ${b.port?.number}`);
        }
      }
    }
  }
  for (const t of obj.spec.tls ?? []) {
    for (const host of t.hosts ?? []) {
      ok((obj.spec.rules ?? []).some((r) => r.host === host), where, `TLS host ${host} has no rule`);
    }
  }
}

for (const e of errors) console.log(`ERROR ${e}`);
console.log(`${objects.length} objects in ${files.length} file(s), ${checks} checks: ` +
  (errors.length ? `${errors.length} error(s)` : 'all valid'));
process.exit(errors.length ? 1 : 0);
