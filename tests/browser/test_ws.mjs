// Browser test of the WebSocket stage: Chromium's own WebSocket against the node in --echo mode.
import { PageSocket, Suite, assertClose, assertEqual, assertMessages } from './lib.mjs';

const PROTOCOL = 'switchboard.v1';

// 60000 printable ASCII characters in a pattern, so a shifted or truncated echo shows.
const LONG = Array.from({ length: 60000 }, (_, i) => String.fromCharCode(0x21 + (i % 94))).join('');

const suite = new Suite('browser.ws');

suite.test('echo: subprotocol, text round trip, clean close 1000', async (t) => {
    const node = await t.node(['--echo']);
    const page = await t.page();
    await page.goto('about:blank');
    const ws = await PageSocket.open(page, node.wsUrl('/ws'), [PROTOCOL]);
    assertEqual(ws.protocol, PROTOCOL, 'negotiated subprotocol');

    const messages = [
        'hello',
        'ASCII: The quick brown fox jumps over the lazy dog 0123456789 !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~',
        'UTF-8: héllo wörld, Ελληνικά, 日本語, 🦊🎉👩‍💻 and a 4-byte 𝄞',
        LONG,
        'last',
    ];
    await ws.send(messages);
    assertMessages(await ws.receive(messages.length), messages, 'echoes');

    await ws.close(1000, 'done');
    assertClose(await ws.closed(), 1000, true);
});

suite.test('echo: two tabs at once each get only their own echoes', async (t) => {
    const node = await t.node(['--echo']);
    const browser = await t.browser();
    const context = await t.context(browser);
    const tabs = [await context.newPage(), await context.newPage()];
    const sockets = [];
    for (const tab of tabs) {
        await tab.goto('about:blank');
        sockets.push(await PageSocket.open(tab, node.wsUrl('/ws'), [PROTOCOL]));
    }
    for (const ws of sockets) assertEqual(ws.protocol, PROTOCOL, 'negotiated subprotocol');

    // Both connections are open; send from both concurrently.
    const sent = sockets.map((_, i) =>
        Array.from({ length: 20 }, (_, k) => `tab ${i} message ${k} ${'·'.repeat(k * 37)}`),
    );
    await Promise.all(sockets.map((ws, i) => ws.send(sent[i])));
    const got = await Promise.all(sockets.map((ws, i) => ws.receive(sent[i].length)));
    got.forEach((g, i) => assertMessages(g, sent[i], `tab ${i} echoes`));

    // Nothing else arrives on either (no cross-talk, no duplicates).
    const extra = await Promise.all(sockets.map((ws) => ws.drain(300)));
    extra.forEach((e, i) => assertMessages(e, [], `tab ${i} after its echoes`));

    for (const ws of sockets) await ws.close(1000, 'done');
    for (const [i, ws] of sockets.entries()) {
        assertClose(await ws.closed(), 1000, true, `tab ${i} close event`);
    }
});

suite.test('echo: SIGTERM closes open pages with 1001', async (t) => {
    const node = await t.node(['--echo']);
    const page = await t.page();
    await page.goto('about:blank');
    const ws = await PageSocket.open(page, node.wsUrl('/ws'), [PROTOCOL]);
    await ws.send(['before shutdown']);
    assertMessages(await ws.receive(1), ['before shutdown'], 'echo');

    await node.stop(); // SIGTERM; throws unless exit code 0 with a clean stderr
    assertClose(await ws.closed(), 1001, true);
});

await suite.run();
