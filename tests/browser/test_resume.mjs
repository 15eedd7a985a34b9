// Browser test of session resume (proto/PROTOCOL.md, "Resuming a session") with www/switchboard.js.
//
// A cluster of two nodes on one Redis. The call: two demo pages behind HAProxy, the caller's node
// is killed (SIGKILL) in the middle of the negotiation; the caller's page reconnects through
// HAProxy to the other node, takes its session back, and the call connects without the callee
// noticing. The gap: a client whose connection is cut (by a TCP relay in this file, as a network
// drop would) resumes on its node and then on the other one, and receives what was sent to it
// meanwhile, in order. The replacement: a second connection resuming a live session ends the
// first with 4004, after which the library stays closed.
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { PageSocket, Suite, assertEqual, withTimeout } from './lib.mjs';

const WWW = fileURLToPath(new URL('../../www', import.meta.url));
// Sessions wait 5 s for their client instead of 30, so that a session nobody resumes ends (and its
// rooms hear peer-left) within a test's 30 s.
const RESUME_SECONDS = 5;
const NODE_ARGS = ['--www', WWW, '--ice-servers', '[]', '--resume-seconds', String(RESUME_SECONDS)];
const STEP_MS = 5_000;
const CONNECT_MS = 15_000; // both RTCPeerConnections connected, chat channel open
const RESUME_MS = 10_000; // from a drop to the resumed welcome, retries through HAProxy included
// A killed node's sessions end --node-ttl (3 s) + about 1 s (the sweep) + RESUME_SECONDS after it died.
const SESSION_END_MS = (3 + 2 + RESUME_SECONDS + 5) * 1000;
const LANDING_TRIES = 8; // page loads until HAProxy's round robin puts a page on the wanted node
const GAP_MESSAGES = 6; // messages sent to a client while it is away, per gap
const CLIENT_EVENTS = [
    ...['open', 'welcome', 'close', 'reconnecting', 'error'],
    ...['joined', 'peer-joined', 'peer-left', 'message'],
];

const suite = new Suite('browser.resume');

function randomName(prefix) {
    return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

function assertDeepEqual(got, want, what) {
    assertEqual(JSON.stringify(got), JSON.stringify(want), what);
}

// --- in the pages ---

// Runs in a page before its scripts: records every WebSocket the page opens (its URL), every JSON
// message it sends or receives (with the time) and every close, in window.__signaling. Nothing
// is changed.
function recordSignaling() {
    const Native = window.WebSocket;
    const rec = { conns: [], frames: [], closes: [] };
    window.__signaling = rec;
    window.WebSocket = class extends Native {
        constructor(url, protocols) {
            super(url, protocols);
            const conn = rec.conns.push(String(url)); // 1, 2, ...
            this.recordedConn = conn;
            this.addEventListener('message', (e) => {
                if (typeof e.data !== 'string') return;
                let msg;
                try {
                    msg = JSON.parse(e.data);
                } catch {
                    msg = { type: '(not JSON)', text: e.data.slice(0, 60) };
                }
                rec.frames.push({ conn, dir: 'in', msg, at: Date.now() });
            });
            this.addEventListener('close', (e) => rec.closes.push({ conn, code: e.code, wasClean: e.wasClean }));
        }

        send(data) {
            try {
                rec.frames.push({ conn: this.recordedConn, dir: 'out', msg: JSON.parse(data), at: Date.now() });
            } catch {
                // not JSON
            }
            return super.send(data);
        }
    };
}

// Runs in the callee's page before the demo: holds the first remote description it is given (the
// caller's offer) until the test calls window.__gate.release(), so that the callee's answer and
// candidates go out only then. window.__gate.held counts the descriptions that came.
function gateRemoteDescription() {
    const native = RTCPeerConnection.prototype.setRemoteDescription;
    let release;
    const released = new Promise((resolve) => (release = resolve));
    window.__gate = { held: 0, release: () => release() };
    RTCPeerConnection.prototype.setRemoteDescription = async function (...args) {
        window.__gate.held++;
        await released;
        return native.apply(this, args);
    };
}

// Runs in a page: each relay it sent to `to` with the answer it got ({type, mid, outcome}:
// 'ack', 'queued' or an error code), once every one has its answer (false until then).
function answeredRelays(to) {
    const frames = window.__signaling.frames;
    const answers = ['ack', 'queued', 'error'];
    const relays = frames
        .filter((f) => f.dir === 'out' && f.msg.to === to && f.msg.mid !== undefined)
        .map((f) => {
            const a = frames.find(
                (g) => g.dir === 'in' && g.conn === f.conn && g.msg.mid === f.msg.mid && answers.includes(g.msg.type),
            );
            const outcome = a && (a.msg.type === 'error' ? a.msg.code : a.msg.type);
            return { type: f.msg.type, mid: f.msg.mid, outcome };
        });
    return relays.every((r) => r.outcome) && relays;
}

// The recorded signaling of a page, in short: "2<welcome(resumed) 2<joined 2>answer#7 ...".
async function signalingSummary(page, last = 40) {
    const rec = await page.evaluate(() => window.__signaling);
    const show = ({ conn, dir, msg }) => {
        let s = `${conn}${dir === 'in' ? '<' : '>'}${msg.type}`;
        if (msg.type === 'welcome') s += `(${msg.id}@${msg.node}${msg.resumed ? ',resumed' : ''})`;
        if (msg.type === 'error') s += `(${msg.code})`;
        if (msg.type === '(not JSON)') s += JSON.stringify(msg.text);
        if (msg.type === 'peer-left' || msg.type === 'peer-joined') s += `(${msg.peer})`;
        if (msg.mid !== undefined) s += `#${msg.mid}`;
        return s;
    };
    const closes = rec.closes.map((c) => `${c.conn}:${c.code}`).join(' ');
    return `${rec.frames.slice(-last).map(show).join(' ')} | closes ${closes || 'none'}`;
}

// Waits (polling the page) until pred(arg) holds in the page; on timeout, the error says what
// did not happen and, from explain(), what the page saw.
async function waitFor(page, pred, arg, ms, what, explain) {
    try {
        await page.waitForFunction(pred, arg, { polling: 50, timeout: ms });
    } catch (err) {
        const seen = explain ? await explain().catch((e) => `(cannot tell: ${e.message})`) : err.message;
        throw new Error(`${what}: not within ${ms} ms; ${seen}`);
    }
}

// The frames of a page's signaling, as recorded.
function framesOf(page) {
    return page.evaluate(() => window.__signaling.frames);
}

// --- nodes ---

// Redis, two nodes on it (n1, n2) and a browser.
async function cluster(t) {
    const [redis, browser] = await Promise.all([t.redis(), t.browser()]);
    const args = ['--redis', redis.url, ...NODE_ARGS];
    const nodes = await Promise.all([t.node(['--node-id', 'n1', ...args]), t.node(['--node-id', 'n2', ...args])]);
    return { browser, nodes, byId: { n1: nodes[0], n2: nodes[1] } };
}

// SIGKILL, on purpose: the test's cleanup takes the kill for the node's stop.
async function killNode(node) {
    node.stopped = node.exit;
    node.kill();
    await withTimeout(node.exit, STEP_MS, 'node exit after SIGKILL');
}

// A TCP relay between pages and a node that the test can cut, as a network drop does: both ends
// see their connection end without a WebSocket close. While `refusing`, it drops each new
// connection at once; `target` is the node the next connections go to.
class Relay {
    constructor(target) {
        this.target = target;
        this.refusing = false;
        this.pairs = new Set();
        this.server = createServer((client) => this.#accept(client));
        this.port = 0;
    }

    async start() {
        await new Promise((resolve, reject) => {
            this.server.once('error', reject);
            this.server.listen(0, '127.0.0.1', resolve);
        });
        this.port = this.server.address().port;
        return this;
    }

    wsUrl(path = '/ws') {
        return `ws://127.0.0.1:${this.port}${path}`;
    }

    #accept(client) {
        if (this.refusing) {
            client.resetAndDestroy();
            return;
        }
        const upstream = connect(this.target.port, this.target.host);
        const pair = { client, upstream };
        this.pairs.add(pair);
        client.pipe(upstream);
        upstream.pipe(client);
        const end = () => {
            this.pairs.delete(pair);
            client.destroy();
            upstream.destroy();
        };
        client.on('error', end);
        client.on('close', end);
        // The node closed (or reset) its end: what it sent last (a close frame) still reaches
        // the page, instead of being dropped with the socket, so that a failure shows the
        // node's close code. A network drop is cut(), which resets both ends.
        const upstreamEnded = () => {
            this.pairs.delete(pair);
            client.end();
        };
        upstream.on('error', upstreamEnded);
        upstream.on('close', upstreamEnded);
    }

    // Resets every connection, both ways.
    cut() {
        for (const { client, upstream } of this.pairs) {
            client.resetAndDestroy();
            upstream.resetAndDestroy();
        }
        this.pairs.clear();
    }

    async stop() {
        this.refusing = true;
        this.cut();
        await new Promise((resolve) => this.server.close(resolve));
    }
}

async function startRelay(t, target) {
    const relay = await new Relay(target).start();
    t.services.push(relay); // stopped after the nodes
    return relay;
}

// --- the demo page ---

// Opens the demo through HAProxy in a fresh context, reloading it (and shifting HAProxy's round
// robin) until its signaling lands on a node other than avoidNode. Returns {page, id, node}.
async function openDemo(t, browser, front, { avoidNode = null, gate = false } = {}) {
    const page = await (await t.context(browser)).newPage();
    await page.addInitScript(recordSignaling);
    if (gate) await page.addInitScript(gateRemoteDescription);
    for (let attempt = 1; ; attempt++) {
        if (attempt === 1) await page.goto(front.httpUrl('/'));
        else await page.reload();
        await waitFor(page, () => window.switchboardDemo?.node, null, STEP_MS, 'demo welcome');
        const { id, node } = await page.evaluate(() => window.switchboardDemo);
        if (node !== avoidNode) return { page, id, node };
        if (attempt === LANDING_TRIES) throw new Error(`the page landed on ${node} ${attempt} times in a row`);
        await (await fetch(front.httpUrl('/healthz'))).text(); // one more request for the round robin
    }
}

async function joinRoom(side, room) {
    await side.page.fill('#room', room);
    await side.page.click('#join');
    await waitFor(
        side.page,
        (room) => window.switchboardDemo.room === room && window.switchboardDemo.joined,
        room,
        STEP_MS,
        `${side.name} joins ${room}`,
    );
}

function demoState(page) {
    return page.evaluate(() => ({ ...window.switchboardDemo, chat: undefined, iceServers: undefined }));
}

async function waitCallState(side, state, ms) {
    await waitFor(
        side.page,
        (state) => document.body.dataset.state === state,
        state,
        ms,
        `${side.name}: call state "${state}"`,
        async () => `${JSON.stringify(await demoState(side.page))}; signaling ${await signalingSummary(side.page)}`,
    );
}

async function chat(from, to, text) {
    await from.page.fill('#chat-input', text);
    await from.page.click('#chat-send');
    await to.page.locator('#chat-log li.them', { hasText: text }).waitFor({ timeout: STEP_MS });
}

// --- switchboard.js in a plain page ---

// A page of `node`'s origin (its /healthz: no demo running) recording its signaling.
async function plainPage(t, browser, node) {
    const page = await (await t.context(browser)).newPage();
    await page.addInitScript(recordSignaling);
    await page.goto(node.httpUrl('/healthz'));
    return page;
}

// Runs in the page: imports the library and keeps a named client with every event it emits.
async function installClient(page, name, url, opts = {}) {
    await page.evaluate(
        async ([name, url, opts, types]) => {
            const { Switchboard } = await import('/switchboard.js');
            window.clients ??= {};
            window.started ??= {};
            const events = [];
            const sb = new Switchboard(url, opts);
            for (const type of types) sb.addEventListener(type, (e) => events.push({ type, detail: e.detail }));
            window.clients[name] = { sb, events };
            // The events of `name` of `type` whose detail has the fields of `match`.
            const same = (e, [k, v]) => JSON.stringify(e.detail?.[k]) === JSON.stringify(v);
            window.eventsOf ??= (name, type, match) =>
                window.clients[name].events
                    .filter((e) => e.type === type && Object.entries(match).every((kv) => same(e, kv)))
                    .map((e) => e.detail);
            // Runs sb.METHOD(...args): {ok, value} or {ok: false, code, message}.
            window.call ??= (name, method, ...args) =>
                Promise.resolve()
                    .then(() => window.clients[name].sb[method](...args))
                    .then(
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

// Starts a call without waiting for it; result(page, key) waits for its outcome.
function startCall(page, key, name, method, ...args) {
    return page.evaluate(
        ([key, name, method, args]) => void (window.started[key] = window.call(name, method, ...args)),
        [key, name, method, args],
    );
}

function result(page, key) {
    return page.evaluate((key) => window.started[key], key);
}

// Waits for the n-th event of `type` matching `match` and returns its detail.
async function waitEvent(page, name, type, match = {}, n = 1, ms = STEP_MS) {
    await waitFor(
        page,
        ([name, type, match, n]) => window.eventsOf(name, type, match).length >= n,
        [name, type, match, n],
        ms,
        `${name}: ${type} ${JSON.stringify(match)} #${n}`,
        async () => {
            const types = await page.evaluate((name) => window.clients[name].events.map((e) => e.type), name);
            return `events ${JSON.stringify(types)}; signaling ${await signalingSummary(page)}`;
        },
    );
    return page.evaluate(([name, type, match, n]) => window.eventsOf(name, type, match)[n - 1], [name, type, match, n]);
}

function expectOk(res, what) {
    if (!res.ok) throw new Error(`${what}: rejected with ${res.code}: ${res.message}`);
    return res.value;
}

function expectCode(res, code, what) {
    if (res.ok) throw new Error(`${what}: resolved with ${JSON.stringify(res.value)}, want rejection ${code}`);
    assertEqual(res.code, code, `${what}: rejection code`);
}

// --- the tests ---

suite.test('demo via HAProxy: the caller\'s node dies mid-negotiation, it resumes elsewhere, the call connects', async (t) => {
    const { browser, byId, nodes } = await cluster(t);
    const front = await t.haproxy(nodes);

    // The callee lands on some node, B; the caller is reloaded until it lands on the other, A.
    const callee = { name: 'callee', ...(await openDemo(t, browser, front, { gate: true })) };
    const caller = { name: 'caller', ...(await openDemo(t, browser, front, { avoidNode: callee.node })) };
    const nodeA = byId[caller.node];
    console.log(`    caller ${caller.id} on ${caller.node}, callee ${callee.id} on ${callee.node}`);

    // A witness on A that will not come back: its session's end, announced as peer-left, marks
    // the moment by which the caller's would have ended too had it not been resumed.
    const room = randomName('resume');
    const witnessPage = await (await t.context(browser)).newPage();
    await witnessPage.goto('about:blank');
    const witness = await PageSocket.open(witnessPage, nodeA.wsUrl('/ws'), ['switchboard.v1']);
    const witnessId = JSON.parse((await witness.receive(1))[0]).id;
    await witness.send([JSON.stringify({ type: 'join', room, mid: 'w' })]);
    assertEqual(JSON.parse((await witness.receive(1))[0]).type, 'joined', "the witness's answer to join");

    await joinRoom(callee, room);
    await joinRoom(caller, room);

    // The caller calls; its offer reaches the callee, whose answer waits at the gate.
    await caller.page.locator(`#peers button[data-peer="${callee.id}"]`).click({ timeout: STEP_MS });
    await waitFor(callee.page, () => window.__gate.held > 0, null, STEP_MS, "the caller's offer at the callee");
    await killNode(nodeA);
    const killedAt = Date.now();
    await callee.page.evaluate(() => window.__gate.release());
    await waitFor(caller.page, () => window.__signaling.closes.length > 0, null, STEP_MS, "the caller's drop");

    // The caller is back, through HAProxy on B, with its session.
    await waitFor(
        caller.page,
        () =>
            window.__signaling.frames.filter((f) => f.msg.type === 'welcome').length >= 2 ||
            window.switchboardDemo.conn === 'closed',
        null,
        RESUME_MS,
        "the caller's second welcome",
        () => signalingSummary(caller.page),
    );
    const callerFrames = await framesOf(caller.page);
    const welcome = callerFrames.filter((f) => f.msg.type === 'welcome').at(-1);
    if (!welcome || welcome.conn === 1) {
        throw new Error(`the caller closed for good: ${await signalingSummary(caller.page)}`);
    }
    assertEqual(welcome.msg.resumed, true, "the caller's welcome after the drop: resumed");
    assertEqual(welcome.msg.id, caller.id, "the caller's ID after the drop");
    assertEqual(welcome.msg.node, callee.node, "the caller's node after the drop");
    const firstToken = callerFrames.find((f) => f.msg.type === 'welcome').msg.resume;
    if (typeof welcome.msg.resume !== 'string' || welcome.msg.resume === firstToken) {
        throw new Error(`the resumed welcome's resume token is ${JSON.stringify(welcome.msg.resume)}: want a new one`);
    }
    const after = callerFrames.filter((f) => f.conn === welcome.conn);
    const snapshot = after.find((f) => f.dir === 'in' && f.msg.type === 'joined' && f.msg.room === room);
    if (!snapshot) {
        throw new Error(`no joined snapshot of ${room} after resuming: ${await signalingSummary(caller.page)}`);
    }
    if (snapshot.msg.mid !== undefined) throw new Error(`the snapshot carries mid ${JSON.stringify(snapshot.msg.mid)}`);
    if (!snapshot.msg.peers.includes(callee.id) || snapshot.msg.peers.includes(caller.id)) {
        const peers = JSON.stringify(snapshot.msg.peers);
        throw new Error(`snapshot peers ${peers}: want the callee ${callee.id}, not the caller`);
    }
    const rejoins = after.filter((f) => f.dir === 'out' && f.msg.type === 'join');
    assertEqual(rejoins.length, 0, 'joins the library sent on the resumed connection');

    // The call finishes its negotiation across the gap and connects.
    await Promise.all([caller, callee].map((side) => waitCallState(side, 'connected', CONNECT_MS)));
    for (const side of [caller, callee]) {
        const s = await demoState(side.page);
        assertEqual(s.pcState, 'connected', `${side.name}'s RTCPeerConnection`);
        assertEqual(s.peer, side === caller ? callee.id : caller.id, `${side.name}'s call peer`);
    }
    await chat(caller, callee, `after the resume ${Math.random()}`);
    await chat(callee, caller, 'and back 🦊');

    // Every relay of the callee to the caller was answered ack or queued (none refused), however
    // the gap fell.
    let relays;
    try {
        const opts = { polling: 50, timeout: STEP_MS };
        relays = await (await callee.page.waitForFunction(answeredRelays, caller.id, opts)).jsonValue();
    } catch {
        throw new Error(`the callee's relays to the caller, unanswered: ${await signalingSummary(callee.page)}`);
    }
    const outcomes = {};
    for (const { type, mid, outcome } of relays) {
        if (outcome !== 'ack' && outcome !== 'queued') throw new Error(`the callee's ${type} #${mid}: ${outcome}`);
        outcomes[`${type} ${outcome}`] = (outcomes[`${type} ${outcome}`] ?? 0) + 1;
    }
    const calleeFrames = await framesOf(callee.page);
    const answerAt = calleeFrames.find((f) => f.dir === 'out' && f.msg.type === 'answer')?.at;
    console.log(
        `    after the kill: callee's answer sent at ${answerAt - killedAt} ms, caller resumed at ` +
            `${welcome.at - killedAt} ms; callee's relays to the caller: ${JSON.stringify(outcomes)}`,
    );

    // The witness's session ends (peer-left at the callee); the caller's did not.
    await waitFor(
        callee.page,
        (w) => window.__signaling.frames.some((f) => f.msg.type === 'peer-left' && f.msg.peer === w),
        witnessId,
        SESSION_END_MS,
        "peer-left for the witness (whose session nobody resumed) at the callee",
        () => signalingSummary(callee.page),
    );
    const calleeLater = await framesOf(callee.page);
    const left = calleeLater.filter((f) => f.msg.type === 'peer-left' && f.msg.peer === caller.id);
    assertEqual(left.length, 0, 'peer-left for the caller at the callee');
    const calleeState = await demoState(callee.page);
    if (!calleeState.peers.includes(caller.id)) {
        throw new Error(`the callee's room list lost the caller: ${calleeState.peers}`);
    }
    assertEqual(calleeState.state, 'connected', "the callee's call after the witness left");
});

suite.test('switchboard.js: a cut connection resumes (its node, then the other), gets the gap in order', async (t) => {
    const { browser, byId } = await cluster(t);
    const relay = await startRelay(t, byId.n1);
    const [pa, ps] = await Promise.all([plainPage(t, browser, byId.n1), plainPage(t, browser, byId.n2)]);
    await installClient(pa, 'away', relay.wsUrl(), { minDelay: 50, maxDelay: 250 });
    await installClient(ps, 'sender', byId.n2.wsUrl());
    const wa = expectOk(await clientCall(pa, 'away', 'connected'), 'away connected()');
    const ws = expectOk(await clientCall(ps, 'sender', 'connected'), 'sender connected()');
    assertEqual(wa.resumed, false, "a first welcome's resumed");
    const room = randomName('gap');
    expectOk(await clientCall(pa, 'away', 'join', room), 'away joins');
    assertDeepEqual(expectOk(await clientCall(ps, 'sender', 'join', room), 'sender joins'), [wa.id], 'room members');
    await waitEvent(pa, 'away', 'peer-joined', { room, peer: ws.id });

    const expected = []; // every payload sent to `away`, in order
    for (const [round, target] of [[1, byId.n1], [2, byId.n2]]) {
        // The closes so far: one per cut, and one per reconnect the relay refused, so the count
        // differs from round to round.
        const closes = await pa.evaluate(() => window.eventsOf('away', 'close', {}).length);
        relay.refusing = true;
        relay.cut();
        await waitEvent(pa, 'away', 'close', { willReconnect: true }, closes + 1);

        // Meanwhile: the sender's messages are held for `away`, and `away`'s own waits for its welcome.
        await startCall(pa, `gap${round}`, 'away', 'send', 'offer', ws.id, { round, from: 'away' });
        const payloads = Array.from({ length: GAP_MESSAGES }, (_, seq) => ({ round, seq }));
        const answers = await ps.evaluate(
            ([to, payloads]) => Promise.all(payloads.map((p) => window.call('sender', 'send', 'candidate', to, p))),
            [wa.id, payloads],
        );
        for (const [i, a] of answers.entries()) {
            if (a.ok && (a.value === 'queued' || a.value === 'ack')) continue;
            const what = a.ok ? `resolved ${a.value}` : `rejected with ${a.code}: ${a.message}`;
            throw new Error(`round ${round}: message ${i} to away ${what}; sender: ${await signalingSummary(ps)}`);
        }
        console.log(`    round ${round}: the gap's messages resolved ${answers.map((a) => a.value).join(' ')}`);
        expected.push(...payloads);

        // Back, on `target`: the same session, its room kept, the held messages first.
        relay.target = target;
        relay.refusing = false;
        const w = await waitEvent(pa, 'away', 'welcome', {}, round + 1, RESUME_MS);
        assertEqual(w.resumed, true, `round ${round}: resumed`);
        assertEqual(w.id, wa.id, `round ${round}: ID`);
        assertEqual(w.node, round === 1 ? 'n1' : 'n2', `round ${round}: node`);
        const snap = await waitEvent(pa, 'away', 'joined', { room }, round + 1);
        assertDeepEqual(snap.peers, [ws.id], `round ${round}: the room's snapshot`);
        assertDeepEqual(await pa.evaluate(() => window.clients.away.sb.rooms), [room], `round ${round}: rooms`);
        const ownResult = await result(pa, `gap${round}`);
        if (!ownResult.ok) {
            // Rare, and not shown yet: say what the page's client and its sockets went through.
            const events = await pa.evaluate(() =>
                window.clients.away.events.map((e) => e.type + (e.detail?.code !== undefined ? `(${e.detail.code})` : '')),
            );
            throw new Error(
                `round ${round}: away's message sent while away: rejected with ${ownResult.code}: ` +
                    `${ownResult.message}; away's events ${JSON.stringify(events.slice(-30))}; ` +
                    `signaling ${await signalingSummary(pa, 60)}`,
            );
        }
        const own = ownResult.value;
        assertEqual(own, 'ack', `round ${round}: the answer to away's message sent while away`);
        await waitEvent(ps, 'sender', 'message', { from: wa.id, payload: { round, from: 'away' } });

        const later = { round, seq: 'after' };
        const answer = expectOk(await clientCall(ps, 'sender', 'send', 'candidate', wa.id, later), 'after the resume');
        assertEqual(answer, 'ack', `round ${round}: the answer to a message after the resume`);
        expected.push(later);
        await waitEvent(pa, 'away', 'message', { from: ws.id }, expected.length);
        const got = (await pa.evaluate(() => window.eventsOf('away', 'message', {}))).filter((m) => m.from === ws.id);
        assertDeepEqual(got.map((m) => m.payload), expected, `round ${round}: what away received, in order`);
    }
    const joins = (await framesOf(pa)).filter((f) => f.dir === 'out' && f.msg.type === 'join');
    assertEqual(joins.length, 1, 'join messages the library sent (none for a resumed session)');
    const peerLeft = await ps.evaluate(() => window.eventsOf('sender', 'peer-left', {}));
    assertDeepEqual(peerLeft, [], "the sender's peer-left events");
    assertEqual(await pa.evaluate(() => window.clients.away.sb.id), wa.id, "away's ID at the end");
});

suite.test('switchboard.js: another connection resuming the session ends this one with 4004, for good', async (t) => {
    const node = await t.node(NODE_ARGS);
    const page = await plainPage(t, await t.browser(), node);
    await installClient(page, 'one', node.wsUrl('/ws'));
    const w = expectOk(await clientCall(page, 'one', 'connected'), 'one connected()');
    const room = randomName('rep');
    expectOk(await clientCall(page, 'one', 'join', room), 'one joins');
    const token = (await framesOf(page)).find((f) => f.msg.type === 'welcome').msg.resume;
    if (!/^[A-Za-z0-9_-]{43}$/.test(token ?? '')) {
        throw new Error(`welcome's resume token ${JSON.stringify(token)}: not 43 base64url`);
    }

    const other = await PageSocket.open(page, node.wsUrl(`/ws?id=${w.id}&resume=${token}`), ['switchboard.v1']);
    const [welcome, joined] = (await other.receive(2)).map((s) => JSON.parse(s));
    assertEqual(welcome.type, 'welcome', "the other connection's first message");
    assertEqual(welcome.resumed, true, "the other connection's welcome: resumed");
    assertEqual(welcome.id, w.id, "the other connection's ID");
    if (welcome.resume === token) throw new Error('the resumed welcome repeats the used token');
    const snapshot = [joined.type, joined.room, joined.peers];
    assertDeepEqual(snapshot, ['joined', room, []], "the other connection's room snapshot");

    const close = await waitEvent(page, 'one', 'close', { code: 4004 });
    assertEqual(close.willReconnect, false, 'willReconnect after 4004');
    const err = await waitEvent(page, 'one', 'error', { code: 'replaced' });
    if (!err.message) throw new Error('the replaced error has no message');
    assertEqual(await page.evaluate(() => window.clients.one.sb.state), 'closed', 'state after 4004');
    expectCode(await clientCall(page, 'one', 'connected'), 'replaced', 'connected() after 4004');
    expectCode(await clientCall(page, 'one', 'send', 'offer', w.id, null), 'replaced', 'send() after 4004');
    const conns = await page.evaluate(() => window.__signaling.conns.length);
    assertEqual(conns, 2, "connections opened in the page (the library's one, the other)");
});

await suite.run();
