// Shared helpers for Switchboard's browser tests: Debian's Chromium, the node under test, a tiny runner.
//
// A test file does:
//     const suite = new Suite('ws');
//     suite.test('name', async (t) => { const node = await t.node(['--echo']); ... });
//     await suite.run();
// where t.node() starts the binary named in argv[2] and t.browser() launches Chromium. Both are
// torn down when the test ends, passed or failed: the node gets SIGTERM and must exit 0 with no
// sanitizer report, which is part of every test's verdict.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

// The browser is Debian's Chromium, never one Playwright downloads. No sandbox (tests run as root),
// nothing that phones home, a fake camera and microphone for the WebRTC stages, ICE host candidates
// as plain IP addresses instead of mDNS names, and no Local Network Access prompt for loopback.
// (Playwright passes a --disable-features of its own before these; Chromium takes the last one.)
export const CHROMIUM_ARGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks',
    // In the test's own network namespace loopback is the only interface: let ICE use it.
    '--allow-loopback-in-peer-connection',
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
];

// Safety nets, not measurements (tests wait for conditions): a test of several nodes, HAProxy
// and pages took 26 s of its 30 while another Chromium suite ran beside it, so they are generous;
// the whole file stays under ctest's 200 s.
export const TEST_TIMEOUT_MS = 60_000;
export const FILE_TIMEOUT_MS = 180_000;
const NODE_READY_MS = 10_000;
const NODE_STOP_MS = 10_000;
const BROWSER_LAUNCH_MS = 15_000;
const BROWSER_CLOSE_MS = 10_000;
const SANITIZER_MARKS = ['AddressSanitizer', 'runtime error', 'LeakSanitizer'];

// Nodes, redis-servers and HAProxies still running, so the file-level timeout can kill them.
const liveNodes = new Set();
const liveServices = new Set();

// However this process ends, no node outlives it (child.kill is synchronous, so this works in an
// exit handler); Playwright does the same for the browsers it launched.
process.on('exit', () => {
    for (const n of liveNodes) n.kill();
    for (const r of liveServices) r.kill();
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
        console.log(`FAIL interrupted by ${sig}`);
        process.exit(1);
    });
}

export function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

// Resolves or rejects like `promise`, or rejects with "WHAT: timed out after MS ms".
export function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// The binary under test: argv[2], as run.sh and CMake pass it.
export function binaryFromArgv() {
    const binary = process.argv[2];
    if (!binary) {
        console.error(`usage: node ${process.argv[1]} SWITCHBOARD_BINARY`);
        process.exit(2);
    }
    return binary;
}

// A running switchboard node. Create with startNode(); stop() sends SIGTERM once and checks the
// exit; kill() is the last resort for cleanup.
export class Node {
    constructor(binary, args, child) {
        this.binary = binary;
        this.args = args;
        this.child = child;
        this.host = null;
        this.port = null;
        this.stderr = '';
        this.stdout = '';
        this.exit = new Promise((resolve) => {
            child.on('exit', (code, signal) => {
                liveNodes.delete(this);
                resolve({ code, signal });
            });
        });
        this.stopped = null;
    }

    // ws://127.0.0.1:PORT + path
    wsUrl(path = '/ws') {
        return `ws://${this.host}:${this.port}${path}`;
    }

    httpUrl(path = '/') {
        return `http://${this.host}:${this.port}${path}`;
    }

    running() {
        return this.child.exitCode === null && this.child.signalCode === null;
    }

    // Sends SIGTERM (once; later calls return the same result) and waits up to 10 s for the exit.
    // Throws unless the node exited with code 0 and its stderr has no sanitizer report.
    stop() {
        if (!this.stopped) this.stopped = this.#stop();
        return this.stopped;
    }

    async #stop() {
        if (this.running()) this.child.kill('SIGTERM');
        let status;
        try {
            status = await withTimeout(this.exit, NODE_STOP_MS, 'node exit after SIGTERM');
        } catch (err) {
            this.kill();
            throw err;
        }
        // Let the last stderr bytes (a sanitizer report comes at exit) reach us.
        await Promise.all([streamEnd(this.child.stderr), streamEnd(this.child.stdout)]);
        const mark = SANITIZER_MARKS.find((m) => this.stderr.includes(m));
        if (mark) throw new Error(`node stderr has "${mark}"`);
        if (status.signal) throw new Error(`node died of ${status.signal} after SIGTERM`);
        if (status.code !== 0) throw new Error(`node exited with code ${status.code} after SIGTERM`);
        return status;
    }

    kill() {
        if (this.running()) this.child.kill('SIGKILL');
    }
}

function streamEnd(stream) {
    if (!stream || stream.readableEnded || stream.destroyed) return Promise.resolve();
    return withTimeout(
        new Promise((resolve) => stream.once('close', resolve)),
        2000,
        'node output close',
    ).catch(() => {});
}

// Starts BINARY --listen 127.0.0.1:0 ARGS... and waits (at most 10 s) for its
// "listening on HOST:PORT" line on stderr.
export async function startNode(binary, args = []) {
    // SIGTERM drains for --drain-delay + --drain-seconds (2 + 20 s by default): these tests stop
    // their nodes at once.
    const argv = ['--listen', '127.0.0.1:0', '--drain-delay', '0', '--drain-seconds', '0', ...args];
    const env = {
        ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0',
        UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
        ...process.env,
    };
    const child = spawn(binary, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const node = new Node(binary, argv, child);
    liveNodes.add(node);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => (node.stdout += d));

    const ready = new Promise((resolve, reject) => {
        child.on('error', (err) => reject(new Error(`cannot run ${binary}: ${err.message}`)));
        child.stderr.on('data', (d) => {
            node.stderr += d;
            const m = /listening on (\S+):(\d+)/.exec(node.stderr);
            if (m) resolve(m);
        });
        node.exit.then(({ code, signal }) =>
            reject(new Error(`node exited (${signal ?? `code ${code}`}) before listening`)),
        );
    });
    try {
        const m = await withTimeout(ready, NODE_READY_MS, `"listening on" from ${binary}`);
        node.host = m[1];
        node.port = Number(m[2]);
    } catch (err) {
        node.kill();
        throw err;
    }
    return node;
}

// A port nothing listens on right now (the kernel's pick for port 0, released at once).
function freePort() {
    return new Promise((resolve, reject) => {
        const srv = createServer();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

// Starts Debian's redis-server on a free loopback port, with no persistence, in a temporary
// directory; resolves once it accepts connections. stop() shuts it down and removes the directory.
export async function startRedis() {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    const child = spawn('/usr/bin/redis-server', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => (log += d));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const redis = {
        port,
        url: `redis://127.0.0.1:${port}`,
        kill: () => child.kill('SIGKILL'),
        async stop() {
            liveServices.delete(redis);
            child.kill('SIGTERM');
            await withTimeout(exited, 5_000, 'redis-server to exit').catch(() => child.kill('SIGKILL'));
            rmSync(dir, { recursive: true, force: true });
        },
    };
    liveServices.add(redis);
    const ready = new Promise((resolve, reject) => {
        child.on('error', (err) => reject(new Error(`cannot run redis-server: ${err.message}`)));
        child.stdout.on('data', () => /Ready to accept connections/.test(log) && resolve());
        exited.then((code) => reject(new Error(`redis-server exited (${code}): ${log.slice(-500)}`)));
    });
    try {
        await withTimeout(ready, 10_000, 'redis-server to accept connections');
    } catch (err) {
        await redis.stop();
        throw err;
    }
    return redis;
}

// Starts Debian's HAProxy in front of nodes, on a free loopback port, with the configuration
// `make cluster` uses (deploy/local/haproxy.cfg.in: round-robin, health checks on /readyz,
// WebSocket timeouts). Resolves once every node is UP behind it; the result has httpUrl() like a
// node's. stop() ends HAProxy and removes its directory.
export async function startHAProxy(nodes) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'sb-haproxy-'));
    const here = dirname(fileURLToPath(import.meta.url));
    const servers = nodes.map((n, i) => `    server node${i + 1} ${n.host}:${n.port}`).join('\n');
    const admin = join(dir, 'admin.sock');
    const cfg = readFileSync(join(here, '../../deploy/local/haproxy.cfg.in'), 'utf8')
        .replace(/^#@STATS_BEGIN@$[\s\S]*^#@STATS_END@$/m, '')
        .replace('@BIND@', '127.0.0.1')
        .replace('@PORT@', String(port))
        .replace('@SERVERS@', servers)
        .replace('global\n', `global\n    stats socket ${admin} level admin\n`);
    writeFileSync(join(dir, 'haproxy.cfg'), cfg);
    const child = spawn('/usr/sbin/haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    for (const s of [child.stdout, child.stderr]) {
        s.setEncoding('utf8');
        s.on('data', (d) => (log += d));
    }
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const front = {
        host: '127.0.0.1',
        port,
        httpUrl: (path = '/') => `http://127.0.0.1:${port}${path}`,
        log: () => log,
        kill: () => child.kill('SIGKILL'),
        async stop() {
            liveServices.delete(front);
            child.kill('SIGTERM');
            await withTimeout(exited, 5_000, 'haproxy to exit').catch(() => child.kill('SIGKILL'));
            rmSync(dir, { recursive: true, force: true });
        },
    };
    liveServices.add(front);
    // Every server UP: ask the admin socket ("show stat" is CSV; field 18 is the status).
    const allUp = async () => {
        const csv = await new Promise((resolve) => {
            const sock = createConnection(admin);
            let out = '';
            sock.on('connect', () => sock.write('show stat\n'));
            sock.on('data', (d) => (out += d));
            sock.on('close', () => resolve(out));
            sock.on('error', () => resolve(''));
        });
        const rows = csv.split('\n').filter((l) => l.startsWith('nodes,node'));
        return rows.length === nodes.length && rows.every((l) => l.split(',')[17] === 'UP');
    };
    try {
        const deadline = Date.now() + 10_000;
        while (!(await allUp())) {
            if (child.exitCode !== null) throw new Error(`haproxy exited: ${log.slice(-500)}`);
            if (Date.now() > deadline) throw new Error(`haproxy: nodes not UP in 10 s: ${log.slice(-500)}`);
            await new Promise((r) => setTimeout(r, 100));
        }
    } catch (err) {
        await front.stop();
        throw err;
    }
    return front;
}

// Launches headless Chromium with CHROMIUM_ARGS. Playwright gives every launch a fresh temporary
// --user-data-dir and deletes it on close (or on exit of this process).
export async function launchBrowser() {
    return withTimeout(
        chromium.launch({
            executablePath: CHROMIUM_PATH,
            headless: true,
            args: CHROMIUM_ARGS,
            timeout: BROWSER_LAUNCH_MS,
        }),
        BROWSER_LAUNCH_MS + 1000,
        'chromium launch',
    );
}

export async function closeBrowser(browser) {
    await withTimeout(browser.close(), BROWSER_CLOSE_MS, 'chromium close');
}

// A WebSocket living in a page, driven from here. Messages and the close event are recorded in
// the page as they arrive, so nothing is missed between two evaluate() calls.
export class PageSocket {
    static #nextId = 1;

    constructor(page, id, opened) {
        this.page = page;
        this.id = id;
        this.protocol = opened.protocol;
        this.extensions = opened.extensions;
    }

    // Opens `new WebSocket(url, protocols)` in the page; resolves once it is open.
    static async open(page, url, protocols = [], ms = 5000) {
        await page.evaluate(installPageSockets);
        const id = PageSocket.#nextId++;
        const opened = await page.evaluate(
            ([id, url, protocols, ms]) => window.__sb.open(id, url, protocols, ms),
            [id, url, protocols, ms],
        );
        return new PageSocket(page, id, opened);
    }

    async send(messages) {
        await this.page.evaluate(([id, msgs]) => window.__sb.send(id, msgs), [this.id, messages]);
    }

    // Waits until n messages have arrived since the last receive() and returns them (strings for
    // text; {binary: byteLength} for binary).
    async receive(n, ms = 5000) {
        return this.page.evaluate(([id, n, ms]) => window.__sb.receive(id, n, ms), [this.id, n, ms]);
    }

    // Waits ms and returns whatever arrived meanwhile (for "nothing else came" checks).
    async drain(ms) {
        return this.page.evaluate(([id, ms]) => window.__sb.drain(id, ms), [this.id, ms]);
    }

    async close(code, reason) {
        await this.page.evaluate(([id, code, reason]) => window.__sb.close(id, code, reason), [
            this.id,
            code,
            reason,
        ]);
    }

    // Waits for the close event: {code, reason, wasClean, errored}.
    async closed(ms = 5000) {
        return this.page.evaluate(([id, ms]) => window.__sb.closed(id, ms), [this.id, ms]);
    }
}

// Runs in the page: window.__sb, a registry of recorded WebSockets.
function installPageSockets() {
    if (window.__sb) return;
    const sockets = new Map();

    // Resolves when pred() holds, re-checking on every event of the socket, or rejects after ms.
    function until(s, pred, ms, what) {
        return new Promise((resolve, reject) => {
            const check = () => {
                let v;
                try {
                    v = pred();
                } catch (err) {
                    v = err;
                }
                if (v === undefined) return false;
                clearTimeout(timer);
                s.waiters.delete(check);
                if (v instanceof Error) reject(v);
                else resolve(v);
                return true;
            };
            const timer = setTimeout(() => {
                s.waiters.delete(check);
                reject(new Error(`${what}: timed out after ${ms} ms`));
            }, ms);
            if (!check()) s.waiters.add(check);
        });
    }

    function get(id) {
        const s = sockets.get(id);
        if (!s) throw new Error(`no socket ${id}`);
        return s;
    }

    function wake(s) {
        for (const w of [...s.waiters]) w();
    }

    window.__sb = {
        open(id, url, protocols, ms) {
            const ws = new WebSocket(url, protocols);
            ws.binaryType = 'arraybuffer';
            const s = { ws, queue: [], waiters: new Set(), opened: false, closeEvent: null, errored: false };
            sockets.set(id, s);
            ws.onopen = () => {
                s.opened = true;
                wake(s);
            };
            ws.onmessage = (e) => {
                s.queue.push(typeof e.data === 'string' ? e.data : { binary: e.data.byteLength });
                wake(s);
            };
            ws.onerror = () => {
                s.errored = true;
            };
            ws.onclose = (e) => {
                s.closeEvent = { code: e.code, reason: e.reason, wasClean: e.wasClean, errored: s.errored };
                wake(s);
            };
            return until(
                s,
                () => {
                    if (s.opened) return { protocol: ws.protocol, extensions: ws.extensions };
                    if (s.closeEvent) throw new Error(`closed before open: ${JSON.stringify(s.closeEvent)}`);
                },
                ms,
                `open ${url}`,
            );
        },
        send(id, msgs) {
            const s = get(id);
            for (const m of msgs) s.ws.send(m);
        },
        receive(id, n, ms) {
            const s = get(id);
            return until(
                s,
                () => {
                    if (s.queue.length >= n) return s.queue.splice(0, n);
                    if (s.closeEvent) {
                        throw new Error(
                            `closed after ${s.queue.length} of ${n} messages: ${JSON.stringify(s.closeEvent)}`,
                        );
                    }
                },
                ms,
                `receive ${n} messages (have ${s.queue.length})`,
            );
        },
        async drain(id, ms) {
            const s = get(id);
            await new Promise((r) => setTimeout(r, ms));
            return s.queue.splice(0);
        },
        close(id, code, reason) {
            get(id).ws.close(code, reason);
        },
        closed(id, ms) {
            const s = get(id);
            return until(s, () => s.closeEvent ?? undefined, ms, 'close event');
        },
    };
}

// Describes a mismatch between two lists of messages without dumping 60 kB strings.
export function diffMessages(got, want) {
    const show = (m) => {
        if (typeof m !== 'string') return JSON.stringify(m);
        const s = JSON.stringify(m.length > 60 ? m.slice(0, 60) : m);
        return m.length > 60 ? `${s}... (${m.length} chars)` : s;
    };
    for (let i = 0; i < Math.max(got.length, want.length); i++) {
        if (i >= got.length) return `message ${i} missing (got ${got.length}, want ${want.length})`;
        if (i >= want.length) return `extra message ${i}: ${show(got[i])}`;
        const g = got[i];
        const w = want[i];
        if (g === w) continue;
        if (typeof g !== 'string' || typeof w !== 'string') return `message ${i}: got ${show(g)}, want ${show(w)}`;
        let at = 0;
        while (at < g.length && at < w.length && g[at] === w[at]) at++;
        return (
            `message ${i} differs at char ${at} (got ${g.length} chars, want ${w.length}): ` +
            `got ${show(g.slice(at))}, want ${show(w.slice(at))}`
        );
    }
    return null;
}

export function assertMessages(got, want, what = 'messages') {
    const d = diffMessages(got, want);
    if (d) throw new Error(`${what}: ${d}`);
}

export function assertEqual(got, want, what) {
    if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

// Checks a close event ({code, reason, wasClean}) against the expected code and wasClean.
export function assertClose(ev, code, wasClean, what = 'close event') {
    if (ev.code !== code || ev.wasClean !== wasClean) {
        throw new Error(`${what}: got ${JSON.stringify(ev)}, want code ${code} wasClean ${wasClean}`);
    }
}

// What one test gets: resources that are cleaned up when it ends, whatever happened.
class TestContext {
    constructor() {
        this.nodes = [];
        this.services = [];
        this.browsers = [];
        this.contexts = 0;
        this.pages = 0;
        this.pageLog = [];
        this.binary = binaryFromArgv();
    }

    // Starts the binary under test with --listen 127.0.0.1:0 plus args.
    async node(args = []) {
        const node = await startNode(this.binary, args);
        this.nodes.push(node);
        return node;
    }

    // Starts HAProxy in front of nodes for this test (stopped after the nodes).
    async haproxy(nodes) {
        const front = await startHAProxy(nodes);
        this.services.push(front);
        return front;
    }

    // Starts a redis-server for this test (stopped after the nodes).
    async redis() {
        const redis = await startRedis();
        this.services.push(redis);
        return redis;
    }

    async browser() {
        const browser = await launchBrowser();
        this.browsers.push(browser);
        return browser;
    }

    // A fresh context (a separate cookie jar) in `browser`, or in a fresh browser. The console
    // errors and uncaught exceptions of its pages are kept and shown if the test fails.
    async context(browser) {
        const context = await (browser ?? (await this.browser())).newContext();
        const tag = `context ${++this.contexts}`;
        context.on('page', (page) => this.watch(page, tag));
        return context;
    }

    // A new tab in a fresh context of a fresh browser.
    async page() {
        return (await this.context()).newPage();
    }

    watch(page, tag) {
        const id = `${tag} page ${++this.pages}`;
        page.on('console', (msg) => {
            if (msg.type() === 'error' || msg.type() === 'warning') {
                this.pageLog.push(`${id} console.${msg.type()}: ${msg.text()}`);
            }
        });
        page.on('pageerror', (err) => this.pageLog.push(`${id} uncaught: ${err.message}`));
        page.on('crash', () => this.pageLog.push(`${id} crashed`));
    }

    // Closes browsers, then stops nodes (SIGTERM, exit 0, clean stderr). Returns the errors.
    async cleanup() {
        const errors = [];
        for (const b of this.browsers) {
            try {
                await closeBrowser(b);
            } catch (err) {
                errors.push(err);
            }
        }
        for (const n of this.nodes) {
            try {
                await n.stop();
            } catch (err) {
                errors.push(err); // stop() memoizes: the test may have seen this one already
            }
        }
        for (const r of this.services) await r.stop();
        return errors;
    }
}

// A list of tests run one after another; each is bounded by TEST_TIMEOUT_MS and the whole file by
// FILE_TIMEOUT_MS. Prints PASS/FAIL lines and "N passed, M failed"; exits 1 on any failure.
export class Suite {
    constructor(name) {
        this.name = name;
        this.tests = [];
        this.passed = 0;
        this.failed = 0;
    }

    test(name, fn) {
        this.tests.push({ name, fn });
    }

    async run() {
        const filter = process.env.SB_TEST_FILTER; // run only the tests whose name contains it
        const started = Date.now();
        let current = null;
        const fileTimer = setTimeout(() => {
            for (const n of liveNodes) n.kill();
            const left = this.tests.length - this.passed - this.failed;
            console.log(`FAIL ${current ?? this.name}: whole file exceeded ${FILE_TIMEOUT_MS} ms`);
            console.log(`${this.passed} passed, ${this.failed + Math.max(left, 1)} failed`);
            // Playwright kills the browsers it launched when this process exits.
            process.exit(1);
        }, FILE_TIMEOUT_MS);

        for (const { name, fn } of this.tests) {
            if (filter && !name.includes(filter)) continue;
            current = name;
            const t0 = Date.now();
            const t = new TestContext();
            const errors = [];
            try {
                await withTimeout(fn(t), TEST_TIMEOUT_MS, 'test');
            } catch (err) {
                errors.push(err);
            }
            for (const err of await t.cleanup()) if (!errors.includes(err)) errors.push(err);
            const ms = Date.now() - t0;
            if (errors.length === 0) {
                this.passed++;
                console.log(`PASS ${name} (${ms} ms)`);
            } else {
                this.failed++;
                console.log(`FAIL ${name}: ${oneLine(errors[0])} (${ms} ms)`);
                for (const err of errors.slice(1)) console.log(`    also: ${oneLine(err)}`);
            }
            if (errors.length > 0 || process.env.SB_TEST_VERBOSE) {
                for (const line of t.pageLog.slice(-20)) console.log(`    ${line}`);
                for (const n of t.nodes) {
                    const tail = n.stderr.trimEnd().split('\n').slice(-30);
                    console.log(`    node stderr (${n.args.join(' ')}), last ${tail.length} lines:`);
                    for (const line of tail) console.log(`    | ${line}`);
                }
            }
        }
        clearTimeout(fileTimer);
        console.log(`# ${this.name}: ${Date.now() - started} ms`);
        console.log(`${this.passed} passed, ${this.failed} failed`);
        // Exit now rather than wait for every handle to drain (stdout to a pipe is synchronous).
        process.exit(this.failed > 0 || this.passed === 0 ? 1 : 0);
    }
}

function oneLine(err) {
    const msg = err instanceof Error ? err.message : String(err);
    const lines = msg.split('\n').filter((l) => l.trim() !== '');
    const first = lines[0] ?? '(no message)';
    return lines.length > 1 ? `${first} [+${lines.length - 1} lines]` : first;
}
