// Switchboard's browser client: one WebSocket to a node, acks and errors as promises, rooms, reconnect.
//
// Speaks protocol v1 (proto/PROTOCOL.md); the API is documented in www/README.md.

const SUBPROTOCOL = 'switchboard.v1';
// A token travels as a second subprotocol entry: browsers cannot set headers on a WebSocket.
const TOKEN_PREFIX = 'switchboard.token.';
const RELAY_TYPES = new Set(['offer', 'answer', 'candidate', 'bye']);
// Close codes after which retrying cannot help, and the error code each stands for.
const CLOSE_NO_RETRY = new Map([
    [4001, 'id-taken'],
    [4002, 'bad-id'],
]);

/** An error from the node (code as in PROTOCOL.md) or from here (timeout, disconnected, closed, too-large). */
export class SwitchboardError extends Error {
    constructor(code, message, details = {}) {
        super(message || code);
        this.name = 'SwitchboardError';
        this.code = code;
        this.details = details;
    }
}

export class Switchboard extends EventTarget {
    #url;
    #opts;
    #ws = null;
    #state = 'connecting'; // connecting | open | closed
    #closing = false; // close() was called or a close code forbids retrying
    #attempt = 0; // failed connections since the last welcome
    #retryTimer = null;
    #welcome = null;
    #fatal = null; // the error that ended the connection for good
    #lastError = null; // an error received before welcome (bad-id, id-taken)
    #nextMid = 1;
    #pending = new Map(); // mid -> {resolve, reject, timer, frame, sent, onAnswer}
    #rooms = new Set();
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

    /** Our peer ID from the last welcome (null before). Without the id option, each reconnect brings a new one. */
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

    /** The rooms joined (and re-joined after each reconnect). */
    get rooms() {
        return [...this.#rooms];
    }

    /** Resolves with the welcome {id, node, iceServers}; rejects if the client closes for good first. */
    connected() {
        if (this.#state === 'open') return Promise.resolve(this.#welcome);
        if (this.#state === 'closed') return Promise.reject(this.#fatal);
        return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
    }

    /**
     * Relays offer/answer/candidate/bye to peer `to`. Resolves on the node's ack; rejects with a
     * SwitchboardError (.code peer-unavailable, bad-request, timeout, disconnected, closed, too-large).
     * While reconnecting, the message waits for the next welcome (within the timeout).
     */
    send(type, to, payload) {
        if (!RELAY_TYPES.has(type)) {
            return Promise.reject(new TypeError(`cannot send type ${JSON.stringify(type)}`));
        }
        const msg = { type, to };
        if (payload !== undefined) msg.payload = payload;
        return this.#request(msg);
    }

    /** Joins a room; resolves with the other members' IDs. Re-joined automatically after a reconnect. */
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
        return this.#request({ type: 'leave', room }, (answer) => answer.type === 'left' && undefined);
    }

    /** Closes for good: no reconnect; pending promises reject with code "closed". */
    close(code = 1000, reason = '') {
        if (this.#state === 'closed') return;
        this.#closing = true;
        this.#finish(new SwitchboardError('closed', 'closed by the application'));
        clearTimeout(this.#retryTimer);
        if (this.#ws) this.#ws.close(code, reason);
        else this.#emit('close', { code, reason, willReconnect: false });
    }

    // Sends msg with a fresh mid and settles when the answer carrying that mid arrives.
    // onAnswer(answer) returns the value to resolve with, or false if the answer is not the right kind.
    #request(msg, onAnswer = (answer) => answer.type === 'ack' && undefined) {
        if (this.#state === 'closed') return Promise.reject(this.#fatal);
        const mid = String(this.#nextMid++);
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
        const ws = new WebSocket(this.#url, protocols);
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
                const detail = { type: m.type, from: m.from, payload: m.payload, mid: m.mid };
                this.#emit('message', detail);
                this.#emit(m.type, detail);
                break;
            }
            case 'ack':
            case 'joined':
            case 'left':
                if (m.type === 'joined') this.#emit('joined', { room: m.room, peers: m.peers });
                if (m.mid !== undefined) this.#settle(String(m.mid), m);
                break;
            case 'peer-joined':
            case 'peer-left':
                this.#emit(m.type, { room: m.room, peer: m.peer });
                break;
            case 'error':
                if (m.mid !== undefined && this.#settle(String(m.mid), m)) break;
                if (this.#state !== 'open') this.#lastError = m;
                this.#emit('error', { code: m.code, message: m.message, error: m });
                break;
            default: // a newer node may add types: ignore them
        }
    }

    #welcomed(m) {
        const iceServers = Array.isArray(m.iceServers) ? m.iceServers : [];
        this.#welcome = { id: m.id, node: m.node, iceServers };
        this.#state = 'open';
        this.#attempt = 0;
        this.#emit('welcome', this.#welcome);
        for (const w of this.#waiters.splice(0)) w.resolve(this.#welcome);
        // Re-join first, then send what waited for the connection, in order.
        for (const room of this.#rooms) {
            this.join(room).catch((err) => {
                if (err.code === 'disconnected' || err.code === 'closed') return; // the next welcome retries, or never
                this.#rooms.delete(room);
                const message = `re-joining ${room}: ${err.message}`;
                this.#emit('error', { code: err.code, message, error: err.details });
            });
        }
        for (const p of this.#pending.values()) if (!p.sent) this.#transmit(p);
    }

    #closed(code, reason) {
        this.#ws = null;
        const err = this.#lastError ?? (CLOSE_NO_RETRY.has(code) ? { code: CLOSE_NO_RETRY.get(code) } : null);
        if (CLOSE_NO_RETRY.has(code) || !this.#opts.reconnect) this.#closing = true;
        // Requests already on the wire may or may not have been handled: fail them.
        const lost = new SwitchboardError('disconnected', `connection closed (${code}) before the answer`);
        for (const [mid, p] of this.#pending) if (p.sent) this.#settle(mid, lost);
        if (this.#closing) {
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

// Resolves a relative URL against the page (http -> ws) and adds ?id=.
function buildUrl(url, id) {
    const base = globalThis.location?.href;
    const u = base ? new URL(url, base) : new URL(url);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    if (id !== undefined && id !== null) u.searchParams.set('id', id);
    return u.href;
}
