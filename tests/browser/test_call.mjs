// Browser end-to-end test of the demo page and www/switchboard.js: two Chromium pages call each other through one node.
//
// The node serves www/ (--www) and hands out no ICE servers (--ice-servers '[]'), so the browsers
// use host candidates on loopback and never contact a STUN server. Set SB_SCREENSHOT=/tmp/demo.png
// to keep a screenshot of the caller's page during the call.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Suite, assertEqual } from './lib.mjs';

const WWW = fileURLToPath(new URL('../../www', import.meta.url));
const NODE_ARGS = ['--www', WWW, '--ice-servers', '[]'];
const CONNECT_MS = 20_000; // both RTCPeerConnections connected, chat channel open
const STEP_MS = 5_000;
const CLIENT_EVENTS = [
    ...['open', 'welcome', 'close', 'reconnecting', 'error'],
    ...['joined', 'peer-joined', 'peer-left', 'message', 'offer'],
];

const suite = new Suite('browser.call');

function randomName(prefix) {
    return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

function assertDeepEqual(got, want, what) {
    assertEqual(JSON.stringify(got), JSON.stringify(want), what);
}

// --- the demo page ---

// Opens the demo in a fresh context of `browser`, joins `room` through the form and returns
// {page, id, requests} once the node has confirmed the join.
async function openDemo(t, browser, node, room) {
    const context = await t.context(browser);
    const requests = [];
    context.on('request', (r) => requests.push(r.url()));
    const page = await context.newPage();
    await page.addInitScript(() => {
        window.__cspViolations = [];
        document.addEventListener('securitypolicyviolation', (e) =>
            window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
        );
    });
    const response = await page.goto(node.httpUrl('/'));
    assertEqual(response.status(), 200, 'GET / status');
    const csp = response.headers()['content-security-policy'] ?? '';
    if (!csp.includes("default-src 'self'")) throw new Error(`GET / has no strict CSP: ${JSON.stringify(csp)}`);

    await page.fill('#room', room);
    await page.click('#join');
    await page.waitForFunction(
        (room) => window.switchboardDemo?.id && window.switchboardDemo.room === room && window.switchboardDemo.joined,
        room,
        { polling: 50, timeout: STEP_MS },
    );
    const id = await page.evaluate(() => window.switchboardDemo.id);
    return { page, id, requests };
}

function demoState(page) {
    return page.evaluate(() => ({ ...window.switchboardDemo, chat: undefined }));
}

async function waitCallState(page, state, ms, who) {
    try {
        const opts = { polling: 50, timeout: ms };
        await page.waitForFunction((state) => document.body.dataset.state === state, state, opts);
    } catch {
        throw new Error(`${who}: call state not "${state}" within ${ms} ms: ${JSON.stringify(await demoState(page))}`);
    }
}

async function chat(from, to, text) {
    await from.page.fill('#chat-input', text);
    await from.page.click('#chat-send');
    await to.page.locator('#chat-log li.them', { hasText: text }).waitFor({ timeout: STEP_MS });
    await from.page.locator('#chat-log li.me', { hasText: text }).waitFor({ timeout: STEP_MS });
}

// A calls B through the demo's UI; A's page is served by nodeA, B's by nodeB.
async function demoCall(t, browser, nodeA, nodeB) {
    const room = randomName('e2e');
    const [a, b] = await Promise.all([openDemo(t, browser, nodeA, room), openDemo(t, browser, nodeB, room)]);
    assertDeepEqual(await a.page.evaluate(() => window.switchboardDemo.iceServers), [], "A's iceServers");

    // B's arrival shows up in A's list as a Call button; A clicks it.
    await a.page.locator(`#peers button[data-peer="${b.id}"]`).click({ timeout: STEP_MS });
    await Promise.all([
        waitCallState(a.page, 'connected', CONNECT_MS, 'A'),
        waitCallState(b.page, 'connected', CONNECT_MS, 'B'),
    ]);
    for (const [who, side, other] of [['A', a, b], ['B', b, a]]) {
        const s = await demoState(side.page);
        assertEqual(s.peer, other.id, `${who}'s call peer`);
        assertEqual(s.pcState, 'connected', `${who}'s RTCPeerConnection connectionState`);
        assertEqual(await side.page.textContent('#call-state'), 'connected', `${who}'s #call-state`);
    }

    await chat(a, b, `hello from A ${Math.random()}`);
    await chat(b, a, 'héllo from B 🦊');

    // The fake camera reaches both sides (the callee's by renegotiation after it answered).
    for (const [who, side] of [['A', a], ['B', b]]) {
        const opts = { polling: 100, timeout: STEP_MS };
        await side.page
            .waitForFunction(() => document.querySelector('#remote-video').videoWidth > 0, null, opts)
            .catch(async () => {
                throw new Error(`${who}: no remote video: ${JSON.stringify(await demoState(side.page))}`);
            });
    }
    if (process.env.SB_SCREENSHOT) await a.page.screenshot({ path: process.env.SB_SCREENSHOT, fullPage: true });

    await a.page.click('#hangup');
    await waitCallState(a.page, 'ended', STEP_MS, 'A');
    await waitCallState(b.page, 'ended', STEP_MS, 'B');
    const sa = await demoState(a.page);
    const sb = await demoState(b.page);
    assertEqual(sa.endReason, 'hangup', "A's end reason");
    assertEqual(sb.endReason, 'remote-bye', "B's end reason");
    assertEqual(sb.lastBye?.from, a.id, "sender of the bye B saw");

    for (const [who, side, node] of [['A', a, nodeA], ['B', b, nodeB]]) {
        assertDeepEqual(await side.page.evaluate(() => window.__cspViolations), [], `${who}'s CSP violations`);
        const outside = side.requests.filter((u) => !u.startsWith(node.httpUrl('/')) && !u.startsWith('data:'));
        assertDeepEqual(outside, [], `${who}'s requests outside the node`);
    }
    return [a, b];
}

suite.test('demo: A calls B by click, both connect, chat both ways, hang up reaches B', async (t) => {
    const [node, browser] = await Promise.all([t.node(NODE_ARGS), t.browser()]);
    await demoCall(t, browser, node, node);
});

suite.test('demo across two nodes on one Redis: the same call, A and B on different nodes', async (t) => {
    const [redis, browser] = await Promise.all([t.redis(), t.browser()]);
    const cluster = ['--redis', redis.url, ...NODE_ARGS];
    const [n1, n2] = await Promise.all([
        t.node(['--node-id', 'n1', ...cluster]),
        t.node(['--node-id', 'n2', ...cluster]),
    ]);
    const [a, b] = await demoCall(t, browser, n1, n2);
    assertEqual(await a.page.evaluate(() => window.switchboardDemo.node), 'n1', "A's node");
    assertEqual(await b.page.evaluate(() => window.switchboardDemo.node), 'n2', "B's node");
});

suite.test('demo through HAProxy in front of two nodes: the call works wherever the pages land', async (t) => {
    const [redis, browser] = await Promise.all([t.redis(), t.browser()]);
    const cluster = ['--redis', redis.url, ...NODE_ARGS];
    const nodes = await Promise.all([
        t.node(['--node-id', 'n1', ...cluster]),
        t.node(['--node-id', 'n2', ...cluster]),
    ]);
    const front = await t.haproxy(nodes);
    const [a, b] = await demoCall(t, browser, front, front);
    const landed = await Promise.all([a, b].map((side) => side.page.evaluate(() => window.switchboardDemo.node)));
    for (const node of landed) if (!['n1', 'n2'].includes(node)) throw new Error(`a page landed on ${node}`);
    console.log(`    pages landed on ${landed.join(' and ')}`);
});

// --- switchboard.js on its own ---

// Runs in the page: imports the library and keeps named clients with every event they emit.
async function installClient(page, name, url, opts = {}) {
    return page.evaluate(
        async ([name, url, opts, types]) => {
            const { Switchboard } = await import('/switchboard.js');
            window.clients ??= {};
            const events = [];
            const sb = new Switchboard(url, opts);
            for (const type of types) sb.addEventListener(type, (e) => events.push({ type, detail: e.detail }));
            window.clients[name] = { sb, events };
            // Waits for the n-th event of `type` whose detail has the fields of `match`.
            window.waitEvent ??= (name, type, match, n, ms) =>
                new Promise((resolve, reject) => {
                    const t0 = Date.now();
                    const poll = () => {
                        const same = (e, [k, v]) => JSON.stringify(e.detail?.[k]) === JSON.stringify(v);
                        const hits = window.clients[name].events.filter(
                            (e) => e.type === type && Object.entries(match).every((kv) => same(e, kv)),
                        );
                        if (hits.length >= n) return resolve(hits[n - 1].detail);
                        if (Date.now() - t0 > ms) {
                            return reject(new Error(`${name}: no ${type} ${JSON.stringify(match)} #${n} in ${ms} ms`));
                        }
                        setTimeout(poll, 20);
                    };
                    poll();
                });
            // Runs sb.METHOD(...args): {ok, value} or {ok: false, code, message}.
            window.call ??= (name, method, ...args) =>
                window.clients[name].sb[method](...args).then(
                    (value) => ({ ok: true, value: value ?? null }),
                    (err) => ({ ok: false, code: err.code ?? err.name, message: err.message }),
                );
        },
        [name, url, opts, CLIENT_EVENTS],
    );
}

function clientCall(page, name, method, ...args) {
    return page.evaluate(([name, method, args]) => window.call(name, method, ...args), [name, method, args]);
}

function waitEvent(page, name, type, match = {}, n = 1, ms = STEP_MS) {
    const args = [name, type, match, n, ms];
    return page.evaluate((args) => window.waitEvent(...args), args);
}

function expectOk(result, what) {
    if (!result.ok) throw new Error(`${what}: rejected with ${result.code}: ${result.message}`);
    return result.value;
}

function expectCode(result, code, what) {
    if (result.ok) throw new Error(`${what}: resolved with ${JSON.stringify(result.value)}, want rejection ${code}`);
    assertEqual(result.code, code, `${what}: rejection code`);
}

// N pages of the node's origin, each in its own context (a plain-text page: the demo is not running).
async function plainPages(t, node, n) {
    const browser = await t.browser();
    const open = async () => {
        const page = await (await t.context(browser)).newPage();
        await page.goto(node.httpUrl('/healthz'));
        return page;
    };
    return Promise.all(Array.from({ length: n }, open));
}

suite.test('switchboard.js: peer-unavailable, join/leave, peer events, relay, bad-id, id-taken', async (t) => {
    const node = await t.node(NODE_ARGS);
    const [p1, p2] = await plainPages(t, node, 2);
    await installClient(p1, 'one', node.wsUrl('/ws'));
    await installClient(p2, 'two', node.wsUrl('/ws'));
    const w1 = expectOk(await clientCall(p1, 'one', 'connected'), 'one connected()');
    const w2 = expectOk(await clientCall(p2, 'two', 'connected'), 'two connected()');
    for (const w of [w1, w2]) {
        if (!/^[A-Za-z0-9_-]{16}$/.test(w.id)) throw new Error(`assigned id ${JSON.stringify(w.id)}: not 16 base64url`);
        assertDeepEqual(w.iceServers, [], 'welcome iceServers');
    }

    const toNobody = await clientCall(p1, 'one', 'send', 'offer', randomName('nobody'), { sdp: 'x' });
    expectCode(toNobody, 'peer-unavailable', 'offer to an unknown peer');

    const room = randomName('lib');
    assertDeepEqual(expectOk(await clientCall(p1, 'one', 'join', room), 'one joins'), [], 'peers of an empty room');
    assertDeepEqual(expectOk(await clientCall(p2, 'two', 'join', room), 'two joins'), [w1.id], 'peers when two joins');
    await waitEvent(p1, 'one', 'peer-joined', { room, peer: w2.id });

    const payload = { type: 'offer', sdp: 'v=0\r\n', list: [1, 2.5, null, true, 'ü'] };
    expectOk(await clientCall(p2, 'two', 'send', 'offer', w1.id, payload), 'relay two -> one');
    const got = await waitEvent(p1, 'one', 'offer', { from: w2.id });
    assertDeepEqual(got.payload, payload, 'relayed payload');

    assertEqual(expectOk(await clientCall(p1, 'one', 'leave', room), 'one leaves'), null, 'leave() value');
    await waitEvent(p2, 'two', 'peer-left', { room, peer: w1.id });
    expectCode(await clientCall(p1, 'one', 'leave', room), 'not-joined', 'leaving again');

    await installClient(p1, 'bad', node.wsUrl('/ws'), { id: 'no spaces!' });
    expectCode(await clientCall(p1, 'bad', 'connected'), 'bad-id', 'connected() with a malformed id');
    await waitEvent(p1, 'bad', 'close', { code: 4002, willReconnect: false });

    await installClient(p1, 'named', node.wsUrl('/ws'), { id: 'e2e.named_1' });
    const named = expectOk(await clientCall(p1, 'named', 'connected'), 'named connected()');
    assertEqual(named.id, 'e2e.named_1', 'requested id');
    await installClient(p2, 'dup', node.wsUrl('/ws'), { id: 'e2e.named_1' });
    expectCode(await clientCall(p2, 'dup', 'connected'), 'id-taken', 'connected() with a taken id');
    await waitEvent(p2, 'dup', 'close', { code: 4001, willReconnect: false });
    const state = await p2.evaluate(() => window.clients.dup.sb.state);
    assertEqual(state, 'closed', 'state after id-taken');
});

suite.test('switchboard.js with token auth: a token string, a token function, and none', async (t) => {
    const secret = 'browser-test-secret-0123456789-abcdefghij';
    const node = await t.node([...NODE_ARGS, '--auth-secret', secret]);
    const token = (sub) => execFileSync(t.binary, ['token', '--secret', secret, '--sub', sub, '--ttl', '5m']).toString().trim();
    const [p1, p2] = await plainPages(t, node, 2);
    await installClient(p1, 'alice', node.wsUrl('/ws'), { token: token('alice') });
    const bobToken = token('bob');
    await p2.evaluate((tok) => (window.bobToken = tok), bobToken);
    // A function: called before each connection (a page would fetch a fresh token from its backend).
    await p2.evaluate(async () => {
        const { Switchboard } = await import('/switchboard.js');
        window.calls = 0;
        window.bob = new Switchboard('/ws', { token: async () => (window.calls++, window.bobToken) });
    });
    const a = expectOk(await clientCall(p1, 'alice', 'connected'), 'alice connected()');
    assertEqual(a.id, 'alice', "the ID is the token's sub");
    const b = await p2.evaluate(() => window.bob.connected().then((w) => ({ id: w.id, calls: window.calls })));
    assertDeepEqual(b, { id: 'bob', calls: 1 }, 'bob, with a token function');
    expectOk(await clientCall(p1, 'alice', 'send', 'offer', 'bob', { sdp: 'x' }), 'alice -> bob');
    // Without a token the handshake is refused: the client sees closes and keeps retrying.
    await installClient(p1, 'anon', node.wsUrl('/ws'), { minDelay: 50 });
    await waitEvent(p1, 'anon', 'close', { willReconnect: true }, 2);
    assertEqual(await p1.evaluate(() => window.clients.anon.sb.state), 'connecting', 'state without a token');
    await p1.evaluate(() => window.clients.anon.sb.close());
    await p2.evaluate(() => window.bob.close());
});

// lib.mjs always starts a node on port 0; a second --listen (the last flag wins) brings a new
// node up on the old one's port, so the clients' URL stays valid.
suite.test('switchboard.js: reconnects after the node restarts and re-joins its rooms', async (t) => {
    const first = await t.node(NODE_ARGS);
    const [page] = await plainPages(t, first, 1);
    const opts = { minDelay: 100, maxDelay: 1000 };
    await installClient(page, 'one', first.wsUrl('/ws'), opts);
    const w1 = expectOk(await clientCall(page, 'one', 'connected'), 'one connected()');
    const room = randomName('re');
    expectOk(await clientCall(page, 'one', 'join', room), 'one joins');

    await first.stop();
    await waitEvent(page, 'one', 'close', { code: 1001, willReconnect: true });
    await waitEvent(page, 'one', 'reconnecting', { attempt: 1 });
    const second = await t.node(['--listen', `${first.host}:${first.port}`, ...NODE_ARGS]);
    assertEqual(second.port, first.port, 'restarted node port');

    const w1again = await waitEvent(page, 'one', 'welcome', {}, 2);
    // The client asks for its session back; a node restarted on the embedded bus has none to
    // give, so it gets the same ID as a new session, and re-joins its rooms itself.
    assertEqual(w1again.id, w1.id, 'the ID asked back after reconnecting');
    assertEqual(w1again.resumed, false, 'resumed, from a node that restarted');
    await waitEvent(page, 'one', 'joined', { room }, 2); // the automatic re-join
    await installClient(page, 'two', second.wsUrl('/ws'), opts);
    const peers = expectOk(await clientCall(page, 'two', 'join', room), 'two joins');
    assertDeepEqual(peers, [w1again.id], 'peers after the re-join');
});

await suite.run();
