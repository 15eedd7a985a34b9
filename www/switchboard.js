// Switchboard's browser client: one WebSocket to a node, acks and errors as promises, rooms, reconnect.
//
// Speaks protocol v1 (proto/PROTOCOL.md); the API is documented in www/README.md.
//
// Sessions: each welcome carries a resume token. When a connection ends without the client closing
// it, the client reconnects with ?id=<its id>&resume=<token> and the node gives the session back
// (welcome.resumed): the same ID, its rooms (a `joined` snapshot of each follows the welcome) and
// the messages held for it meanwhile. send() resolves with 'ack' (handed to the recipient's
// connection) or 'queued' (held for a recipient that is between connections). A message that a
// node sends again because it may have been lost arrives with its mid: the copy is dropped here.

const SUBPROTOCOL = 'switchboard.v1';
// A token travels as a second subprotocol entry: browsers cannot set headers on a WebSocket.
const TOKEN_PREFIX = 'switchboard.token.';
const RELAY_TYPES = new Set(['offer', 'answer', 'candidate', 'bye']);
// Relayed messages remembered per sender to drop a copy a node sends again, and senders remembered.
const SEEN_PER_SENDER = 1024;
const SEEN_SENDERS = 1024;
// Close codes after which retrying cannot help, and the error code each stands for.
const CLOSE_NO_RETRY = new Map([
    [4001, 'id-taken'],
    [4002, 'bad-id'],
    [4004, 'replaced'], // another connection resumed this session
]);
// The node's answers that settle a relay successfully: the value send() resolves with.
const RELAY_ANSWERS = new Set(['ack', 'queued']);

/**
 * An error from the node (code as in PROTOCOL.md: peer-unavailable, mailbox-full, replaced, ...)
 * or from here (timeout, disconnected, closed, too-large).
 */
export class SwitchboardError extends Error {
    constructor(code, message, details = {}) {
        super(message || code);
        this.name = 'SwitchboardError';
        this.code = code;
        this.details = details;
    }
}

export class Switchboard extends EventTarget {
    #url; // as given, with the id option's ?id=
    #opts;
    #ws = null;
    #state = 'connecting'; // connecting | open | closed
    #closing = false; // close() was called or a close code forbids retrying
    #attempt = 0; // failed connections since the last welcome
    #retryTimer = null;
    #welcome = null;
    #session = null; // {id, token}: what the next connection resumes, from the last welcome
    #fatal = null; // the error that ended the connection for good
    #lastError = null; // the reason for a coming close: bad-id, id-taken (before welcome), replaced
    #midTag = randomTag(); // mids are `${tag}-${n}`: unique to this client, never reused
    #nextMid = 1;
    #seen = new Map(); // sender id -> Set of its last SEEN_PER_SENDER mids, oldest first
    #pending = new Map(); // mid -> {resolve, reject, timer, frame, sent, onAnswer}
    #rooms = new Set(); // the rooms we are in, as far as the node has told us
    #waiters = []; // connected() callers: {resolve, reject}

    /**
     * url: ws(s)://host/ws, or a path like "/ws" resolved against the page's location.
     * opts: id, reconnect (true), minDelay (500 ms), maxDelay (10000 ms), timeout (10000 ms),
     * maxMessage (65536 bytes; 0: no check), token (a string, or a function returning one or a
     * promise of one, called before every connection).
     */
    constructor(url, opts = {}) {
        super();
        this.#opts = { reconnect: true, minDelay: 500, maxDelay: 10000, timeout: 10000, maxMessage: 65536, ...opts };
        this.#url = buildUrl(url, this.#opts.id);
        this.#connect();
    }

    /**
     * Our peer ID from the last welcome (null before). A resumed session keeps it; without the id
     * option, a reconnect that cannot resume (the session ended) brings a new one.
     */
    get id() {
        return this.#welcome?.id ?? null;
    }

    get node() {
        return this.#welcome?.node ?? null;
    }

    get iceServers() {
        return this.#welcome?.iceServers ?? [];
    }

    /** 'connecting' (also while waiting to reconnect), 'open' (welcomed) or 'closed' (for good). */
    get state() {
        return this.#state;
    }

    /**
     * The rooms joined: kept by a resumed session (following the node's `joined` snapshots),
     * re-joined after a reconnect that could not resume.
     */
    get rooms() {
        return [...this.#rooms];
    }

    /**
     * Resolves with the welcome {id, node, iceServers, resumed}; rejects if the client closes for
     * good first. `resumed` is true when the connection took the previous session back.
     */
    connected() {
        if (this.#state === 'open') return Promise.resolve(this.#welcome);
        if (this.#state === 'closed') return Promise.reject(this.#fatal);
        return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
    }

    /**
     * Relays offer/answer/candidate/bye to peer `to`. Resolves with 'ack' (handed to the
     * recipient's connection) or 'queued' (the recipient is between connections: the node holds
     * the message and delivers it if the recipient resumes in time); rejects with a
     * SwitchboardError (.code peer-unavailable, mailbox-full, unavailable, bad-request, timeout,
     * disconnected, closed, too-large). While reconnecting, the message waits for the next welcome
     * (within the timeout).
     */
    send(type, to, payload) {
        if (!RELAY_TYPES.has(type)) {
            return Promise.reject(new TypeError(`cannot send type ${JSON.stringify(type)}`));
        }
        const msg = { type, to };
        if (payload !== undefined) msg.payload = payload;
        return this.#request(msg, (answer) => RELAY_ANSWERS.has(answer.type) && answer.type);
    }

    /** Joins a room; resolves with the other members' IDs. Kept or re-joined after a reconnect. */
    join(room) {
        return this.#request({ type: 'join', room }, (answer) => {
            if (answer.type !== 'joined') return false;
            this.#rooms.add(room);
            return answer.peers;
        });
    }

    /** Leaves a room; resolves once the node confirms. The room is no longer re-joined from now on. */
    leave(room) {
        this.#rooms.delete(room);
        return this.#request({ type: 'leave', room }, (answer) => {
            if (answer.type !== 'left') return false;
            this.#rooms.delete(room); // a resumed session's snapshot may have listed it meanwhile
            return undefined;
        });
    }

    /** Closes for good, ending the session at the node: no reconnect; pending promises reject with code "closed". */
    close(code = 1000, reason = '') {
        if (this.#state === 'closed') return;
        this.#closing = true;
        this.#session = null;
        this.#finish(new SwitchboardError('closed', 'closed by the application'));
        clearTimeout(this.#retryTimer);
        if (this.#ws) this.#ws.close(code, reason);
        else this.#emit('close', { code, reason, willReconnect: false });
    }

    // Sends msg with a fresh mid and settles when the answer carrying that mid arrives.
    // onAnswer(answer) returns the value to resolve with, or false if the answer is not the right kind.
    #request(msg, onAnswer) {
        if (this.#state === 'closed') return Promise.reject(this.#fatal);
        const mid = `${this.#midTag}-${this.#nextMid++}`;
        const frame = JSON.stringify({ ...msg, mid });
        const max = this.#opts.maxMessage;
        if (max && frame.length > max / 3 && new TextEncoder().encode(frame).length > max) {
            return Promise.reject(new SwitchboardError('too-large', `message over ${max} bytes`));
        }
        return new Promise((resolve, reject) => {
            const p = { resolve, reject, frame, sent: false, onAnswer };
            const late = new SwitchboardError('timeout', `no answer to ${msg.type} in ${this.#opts.timeout} ms`);
            p.timer = setTimeout(() => this.#settle(mid, late), this.#opts.timeout);
            this.#pending.set(mid, p);
            if (this.#state === 'open') this.#transmit(p);
        });
    }

    #transmit(p) {
        p.sent = true;
        this.#ws.send(p.frame);
    }

    // Settles the request `mid` with an Error (reject) or an answer message (resolve or reject).
    #settle(mid, answer) {
        const p = this.#pending.get(mid);
        if (!p) return false;
        this.#pending.delete(mid);
        clearTimeout(p.timer);
        if (answer instanceof Error) {
            p.reject(answer);
        } else if (answer.type === 'error') {
            p.reject(new SwitchboardError(answer.code, answer.message, answer));
        } else {
            const value = p.onAnswer(answer);
            if (value === false) p.reject(new SwitchboardError('bad-request', `unexpected ${answer.type}`, answer));
            else p.resolve(value);
        }
        return true;
    }

    #connect() {
        this.#state = 'connecting';
        this.#lastError = null;
        const token = this.#opts.token;
        if (typeof token !== 'function') {
            this.#open(token);
            return;
        }
        // A fresh token for each connection; a failure to get one counts as a failed connection.
        const marker = {
            // close() while waiting for the token: nothing to close but the wait.
            close: (code, reason) => {
                this.#ws = null;
                this.#emit('close', { code, reason, willReconnect: false });
            },
        };
        this.#ws = marker;
        Promise.resolve()
            .then(() => token())
            .then(
                (t) => this.#ws === marker && this.#open(t),
                () => this.#ws === marker && this.#closed(1006, 'no token'),
            );
    }

    #open(token) {
        const protocols = token ? [SUBPROTOCOL, TOKEN_PREFIX + token] : SUBPROTOCOL;
        const ws = new WebSocket(this.#connectUrl(), protocols);
        this.#ws = ws;
        const ended = (code, reason) => this.#ws === ws && this.#closed(code, reason);
        ws.onopen = () => this.#emit('open', {});
        ws.onmessage = (e) => this.#receive(e.data);
        ws.onclose = (e) => ended(e.code, e.reason);
        // Browsers fire close right after error; Node 20's WebSocket never does, so end it here.
        ws.onerror = () =>
            setTimeout(() => {
                if (this.#ws !== ws) return;
                ws.close();
                ended(1006, '');
            }, 0);
    }

    // The URL of the next connection: the session to resume, if there is one.
    #connectUrl() {
        if (!this.#session) return this.#url;
        const u = new URL(this.#url);
        u.searchParams.set('id', this.#session.id);
        u.searchParams.set('resume', this.#session.token);
        return u.href;
    }

    #receive(data) {
        if (typeof data !== 'string') return;
        let m;
        try {
            m = JSON.parse(data);
        } catch {
            return;
        }
        if (m === null || typeof m !== 'object') return;
        switch (m.type) {
            case 'welcome':
                this.#welcomed(m);
                break;
            case 'offer':
            case 'answer':
            case 'candidate':
            case 'bye': {
                if (this.#seenBefore(m.from, m.mid)) break;
                const detail = { type: m.type, from: m.from, payload: m.payload, mid: m.mid };
                this.#emit('message', detail);
                this.#emit(m.type, detail);
                break;
            }
            case 'joined':
                // Without a mid: a resumed session's snapshot of a room it is in.
                if (m.mid === undefined) this.#rooms.add(m.room);
                this.#emit('joined', { room: m.room, peers: m.peers });
                if (m.mid !== undefined) this.#settle(String(m.mid), m);
                break;
            case 'ack':
            case 'queued':
            case 'left':
                if (m.mid !== undefined) this.#settle(String(m.mid), m);
                break;
            case 'peer-joined':
            case 'peer-left':
                this.#emit(m.type, { room: m.room, peer: m.peer });
                break;
            case 'error':
                if (m.mid !== undefined && this.#settle(String(m.mid), m)) break;
                // Before welcome (bad-id, id-taken) or before a close (replaced): the reason for it.
                if (this.#state !== 'open' || m.code === 'replaced') this.#lastError = m;
                this.#emit('error', { code: m.code, message: m.message, error: m });
                break;
            default: // a newer node may add types: ignore them
        }
    }

    // Whether a relayed message is a copy of one already received: a node sends an acked message
    // again when it may have been lost (its recipient's node or Redis failed), with the same mid.
    #seenBefore(from, mid) {
        if (mid === undefined || typeof from !== 'string') return false;
        const key = JSON.stringify(mid);
        let mids = this.#seen.get(from);
        if (mids === undefined) {
            if (this.#seen.size >= SEEN_SENDERS) this.#seen.delete(this.#seen.keys().next().value);
            mids = new Set();
        } else if (mids.has(key)) {
            return true;
        }
        this.#seen.delete(from); // most recently heard last
        this.#seen.set(from, mids);
        mids.add(key);
        if (mids.size > SEEN_PER_SENDER) mids.delete(mids.values().next().value);
        return false;
    }

    #welcomed(m) {
        const iceServers = Array.isArray(m.iceServers) ? m.iceServers : [];
        const resumed = m.resumed === true;
        this.#welcome = { id: m.id, node: m.node, iceServers, resumed };
        // Each token works once: the next connection resumes with this one (none when sessions are off).
        this.#session = typeof m.resume === 'string' && m.resume ? { id: m.id, token: m.resume } : null;
        this.#state = 'open';
        this.#attempt = 0;
        this.#emit('welcome', this.#welcome);
        for (const w of this.#waiters.splice(0)) w.resolve(this.#welcome);
        // A resumed session kept its rooms (their snapshots follow); a new one re-joins them. Then
        // send what waited for the connection, in order.
        if (!resumed) this.#rejoin();
        for (const p of this.#pending.values()) if (!p.sent) this.#transmit(p);
    }

    #rejoin() {
        for (const room of this.#rooms) {
            this.join(room).catch((err) => {
                if (err.code === 'disconnected' || err.code === 'closed') return; // the next welcome retries, or never
                this.#rooms.delete(room);
                const message = `re-joining ${room}: ${err.message}`;
                this.#emit('error', { code: err.code, message, error: err.details });
            });
        }
    }

    #closed(code, reason) {
        this.#ws = null;
        const err = this.#lastError ?? (CLOSE_NO_RETRY.has(code) ? { code: CLOSE_NO_RETRY.get(code) } : null);
        if (CLOSE_NO_RETRY.has(code) || !this.#opts.reconnect) this.#closing = true;
        // Requests already on the wire may or may not have been handled: fail them.
        const lost = new SwitchboardError('disconnected', `connection closed (${code}) before the answer`);
        for (const [mid, p] of this.#pending) if (p.sent) this.#settle(mid, lost);
        if (this.#closing) {
            this.#session = null;
            const why = err
                ? new SwitchboardError(err.code, err.message, err)
                : new SwitchboardError('closed', `connection closed (${code} ${reason})`);
            this.#finish(this.#fatal ?? why);
            this.#emit('close', { code, reason, willReconnect: false });
            return;
        }
        this.#state = 'connecting';
        this.#emit('close', { code, reason, willReconnect: true });
        // Full jitter: a random delay up to the exponentially growing cap.
        this.#attempt++;
        const cap = Math.min(this.#opts.maxDelay, this.#opts.minDelay * 2 ** (this.#attempt - 1));
        const delay = Math.round(Math.random() * cap);
        this.#emit('reconnecting', { attempt: this.#attempt, delay });
        this.#retryTimer = setTimeout(() => {
            if (!this.#closing) this.#connect();
        }, delay);
    }

    // Ends for good: rejects everything waiting with err.
    #finish(err) {
        this.#state = 'closed';
        this.#fatal = err;
        for (const mid of [...this.#pending.keys()]) this.#settle(mid, err);
        for (const w of this.#waiters.splice(0)) w.reject(err);
    }

    #emit(type, detail) {
        this.dispatchEvent(new CustomEvent(type, { detail }));
    }
}

// Eight random base64url characters.
function randomTag() {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    return Array.from(bytes, (b) => alphabet[b & 63]).join('');
}

// Resolves a relative URL against the page (http -> ws) and adds ?id=.
function buildUrl(url, id) {
    const base = globalThis.location?.href;
    const u = base ? new URL(url, base) : new URL(url);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    if (id !== undefined && id !== null) u.searchParams.set('id', id);
    return u.href;
}
