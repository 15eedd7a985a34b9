// Browser test over TLS: Chromium loads the demo from https:// on --tls-listen and two pages call each other through wss://.
//
// The certificate is made at test time with the openssl command; Chromium trusts it by its public
// key (--ignore-certificate-errors-spki-list, the base64 SHA-256 of its SubjectPublicKeyInfo), so
// nothing is installed anywhere. The node hands out no ICE servers: host candidates on loopback.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH, Suite, assertEqual, withTimeout } from './lib.mjs';

const WWW = fileURLToPath(new URL('../../www', import.meta.url));
const STEP_MS = 5_000;
const CONNECT_MS = 20_000;

const suite = new Suite('browser.tls');

// A self-signed certificate for localhost and 127.0.0.1 in a new directory, and its SPKI pin.
function makeCertificate() {
    const dir = mkdtempSync(join(tmpdir(), 'sb-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    const openssl = (args, input) =>
        execFileSync('openssl', args, { cwd: dir, input, timeout: 30_000, stdio: ['pipe', 'pipe', 'pipe'] });
    openssl([
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ]);
    const spki = openssl(['x509', '-in', cert, '-pubkey', '-noout']);
    const der = openssl(['pkey', '-pubin', '-outform', 'der'], spki);
    const pin = openssl(['dgst', '-sha256', '-binary'], der).toString('base64');
    return { dir, cert, key, pin };
}

// The node's TLS address, from its "... on HOST:PORT (TLS)" line.
function tlsPort(node) {
    const m = /(\S+):(\d+) \(TLS\)/.exec(node.stderr);
    if (!m) throw new Error(`no "HOST:PORT (TLS)" in the node's log: ${node.stderr.slice(-500)}`);
    return Number(m[2]);
}

async function openDemo(t, browser, url, room) {
    const context = await t.context(browser);
    const sockets = [];
    const page = await context.newPage();
    page.on('websocket', (ws) => sockets.push(ws.url()));
    const response = await page.goto(url);
    assertEqual(response.status(), 200, 'GET / status');
    const security = await response.securityDetails();
    assertEqual(security?.protocol, 'TLS 1.3', 'TLS version of the page');
    await page.fill('#room', room);
    await page.click('#join');
    await page.waitForFunction(
        (room) => window.switchboardDemo?.id && window.switchboardDemo.room === room && window.switchboardDemo.joined,
        room,
        { polling: 50, timeout: STEP_MS },
    );
    const id = await page.evaluate(() => window.switchboardDemo.id);
    return { page, id, sockets };
}

async function waitCallState(page, state, who) {
    try {
        await page.waitForFunction((state) => document.body.dataset.state === state, state, {
            polling: 50,
            timeout: CONNECT_MS,
        });
    } catch {
        const s = await page.evaluate(() => ({ ...window.switchboardDemo, chat: undefined }));
        throw new Error(`${who}: call state not "${state}": ${JSON.stringify(s)}`);
    }
}

async function chat(from, to, text) {
    await from.page.fill('#chat-input', text);
    await from.page.click('#chat-send');
    await to.page.locator('#chat-log li.them', { hasText: text }).waitFor({ timeout: STEP_MS });
}

suite.test('demo over https and wss: two pages join, call and chat', async (t) => {
    const tls = makeCertificate();
    try {
        const node = await t.node([
            '--www', WWW, '--ice-servers', '[]',
            '--tls-listen', '127.0.0.1:0', '--tls-cert', tls.cert, '--tls-key', tls.key,
        ]);
        const port = tlsPort(node);
        const browser = await withTimeout(
            chromium.launch({
                executablePath: CHROMIUM_PATH,
                headless: true,
                args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${tls.pin}`],
            }),
            16_000,
            'chromium launch',
        );
        t.browsers.push(browser);
        const url = `https://localhost:${port}/`;
        const room = `tls-${Math.random().toString(36).slice(2, 10)}`;
        const [a, b] = await Promise.all([openDemo(t, browser, url, room), openDemo(t, browser, url, room)]);
        for (const [who, side] of [['A', a], ['B', b]]) {
            assertEqual(JSON.stringify(side.sockets), JSON.stringify([`wss://localhost:${port}/ws`]), `${who}'s WebSockets`);
        }

        await a.page.locator(`#peers button[data-peer="${b.id}"]`).click({ timeout: STEP_MS });
        await Promise.all([waitCallState(a.page, 'connected', 'A'), waitCallState(b.page, 'connected', 'B')]);
        await chat(a, b, `hello over wss ${Math.random()}`);
        await chat(b, a, 'héllo back 🔒');
    } finally {
        rmSync(tls.dir, { recursive: true, force: true });
    }
});

await suite.run();
