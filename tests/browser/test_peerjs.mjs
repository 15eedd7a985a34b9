// An app written for PeerServer, unchanged but for the server address: the real peerjs client
// (npm peerjs 1.5.5, its browser bundle) in two Chromium pages opens a data connection and a
// media call (Chromium's fake camera) through Switchboard: on one node, across two nodes on one
// Redis, and through HAProxy in front of three; then a page disconnects and reconnects with
// PeerJS's own reconnect (its ID and token) and a data connection and a call are set up again.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Suite, assertEqual, withTimeout } from './lib.mjs';

const suite = new Suite('peerjs');
const HERE = dirname(fileURLToPath(import.meta.url));
const PEERJS = join(HERE, 'node_modules', 'peerjs', 'dist', 'peerjs.min.js');
const PATH = '/myapp';
const NODE_ARGS = ['--peerjs-path', PATH, '--ice-servers', '[]'];
const STEP_MS = 15_000;

// A page at `server` (a node or HAProxy) with the peerjs bundle loaded and a Peer named `id`
// open on it, configured the way an app would be: host, port, path, key.
async function openPeer(t, browser, server, id) {
    const page = await (await t.context(browser)).newPage();
    await page.goto(server.httpUrl('/healthz')); // an http:// origin on the server
    await page.addScriptTag({ path: PEERJS });
    const opened = page.evaluate(
        ({ id, host, port, path }) =>
            new Promise((resolve, reject) => {
                const peer = new window.peerjs.Peer(id, {
                    host,
                    port,
                    path,
                    key: 'peerjs',
                    secure: false,
                    config: { iceServers: [] },
                });
                window.peer = peer;
                window.received = [];
                window.calls = [];
                peer.on('open', (got) => resolve(got));
                peer.on('error', (err) => reject(new Error(`${err.type}: ${err.message}`)));
                // Answer every data connection by echoing, and every call with our own camera.
                peer.on('connection', (conn) => {
                    conn.on('data', (d) => {
                        window.received.push(d);
                        conn.send(`echo:${d}`);
                    });
                });
                peer.on('call', async (call) => {
                    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
                    call.answer(stream);
                    call.on('stream', (remote) => window.calls.push(remote.getTracks().length));
                });
            }),
        { id, host: server.host, port: server.port, path: PATH },
    );
    assertEqual(await withTimeout(opened, STEP_MS, `${id}: open`), id, `${id}: the ID OPEN gave`);
    return page;
}

// From `page`, a data connection to `to`: sends text and resolves with the echo.
function dataRoundTrip(page, to, text) {
    return withTimeout(
        page.evaluate(
            ({ to, text }) =>
                new Promise((resolve, reject) => {
                    const conn = window.peer.connect(to, { reliable: true });
                    conn.on('open', () => conn.send(text));
                    conn.on('data', (d) => resolve(d));
                    conn.on('error', (err) => reject(new Error(`data connection: ${err.message}`)));
                }),
            { to, text },
        ),
        STEP_MS,
        `data connection to ${to}`,
    );
}

// From `page`, a media call to `to` with the fake camera: resolves with the number of remote
// tracks once the call's connection is connected.
function mediaCall(page, to) {
    return withTimeout(
        page.evaluate(
            (to) =>
                new Promise(async (resolve, reject) => {
                    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
                    const call = window.peer.call(to, stream);
                    call.on('error', (err) => reject(new Error(`call: ${err.message}`)));
                    call.on('stream', (remote) => {
                        const pc = call.peerConnection;
                        const done = () => pc.connectionState === 'connected' && resolve(remote.getTracks().length);
                        pc.addEventListener('connectionstatechange', done);
                        done();
                    });
                }),
            to,
        ),
        STEP_MS,
        `media call to ${to}`,
    );
}

async function callBothWays(a, b) {
    assertEqual(await dataRoundTrip(a, 'bob', 'hello bob'), 'echo:hello bob', "alice's data echo");
    assertEqual(await dataRoundTrip(b, 'alice', 'hello alice'), 'echo:hello alice', "bob's data echo");
    assertEqual(await mediaCall(a, 'bob'), 2, 'remote tracks of the call (video and audio)');
    const answered = await withTimeout(
        b.evaluate(() => new Promise((resolve) => {
            const check = () => (window.calls.length > 0 ? resolve(window.calls[0]) : setTimeout(check, 20));
            check();
        })),
        STEP_MS,
        "bob's side of the call",
    );
    assertEqual(answered, 2, "tracks bob received");
}

suite.test('peerjs on one node: a data connection both ways and a media call', async (t) => {
    const [node, browser] = await Promise.all([t.node(NODE_ARGS), t.browser()]);
    const a = await openPeer(t, browser, node, 'alice');
    const b = await openPeer(t, browser, node, 'bob');
    await callBothWays(a, b);
});

suite.test('peerjs across two nodes on one Redis: alice on one, bob on the other', async (t) => {
    const [redis, browser] = await Promise.all([t.redis(), t.browser()]);
    const cluster = ['--redis', redis.url, ...NODE_ARGS];
    const [n1, n2] = await Promise.all([
        t.node(['--node-id', 'n1', ...cluster]),
        t.node(['--node-id', 'n2', ...cluster]),
    ]);
    const a = await openPeer(t, browser, n1, 'alice');
    const b = await openPeer(t, browser, n2, 'bob');
    await callBothWays(a, b);
});

suite.test('peerjs through HAProxy in front of three nodes, then a reconnect with its token', async (t) => {
    const [redis, browser] = await Promise.all([t.redis(), t.browser()]);
    const cluster = ['--redis', redis.url, ...NODE_ARGS];
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((n) => t.node(['--node-id', n, ...cluster])));
    const front = await t.haproxy(nodes);
    const a = await openPeer(t, browser, front, 'alice');
    const b = await openPeer(t, browser, front, 'bob');
    await callBothWays(a, b);

    // PeerJS's reconnect: the same ID and token, on whichever node HAProxy picks now.
    const again = a.evaluate(
        () =>
            new Promise((resolve, reject) => {
                const peer = window.peer;
                peer.once('disconnected', () => {
                    peer.once('open', (id) => resolve(id));
                    peer.reconnect();
                });
                peer.on('error', (err) => reject(new Error(`${err.type}: ${err.message}`)));
                peer.disconnect();
            }),
    );
    assertEqual(await withTimeout(again, STEP_MS, 'alice: reconnect'), 'alice', 'the ID after reconnect');
    assertEqual(await dataRoundTrip(a, 'bob', 'after reconnect'), 'echo:after reconnect', 'data after reconnect');
    assertEqual(await dataRoundTrip(b, 'alice', 'to the reconnected'), 'echo:to the reconnected', 'data to alice');
    assertEqual(await mediaCall(b, 'alice'), 2, 'a call to the reconnected alice (its tracks)');
});

await suite.run();
