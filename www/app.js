// The demo page's logic: rooms through Switchboard, one WebRTC call at a time with chat and optional video.
//
// Every signaling payload carries the call's ID ({call, description | candidate | reason}), so
// messages from an earlier call are ignored. Negotiation is "perfect negotiation": either side may
// renegotiate (the callee adds its camera after answering), and when both offer at once the polite
// peer (the one with the greater ID) rolls back. When both click Call at the same time, the
// impolite peer's call wins and the polite peer adopts its ID.
import { Switchboard } from './switchboard.js';

const $ = (sel) => document.querySelector(sel);
const ui = {
    myId: $('#my-id'),
    node: $('#node'),
    conn: $('#conn-state'),
    roomForm: $('#room-form'),
    room: $('#room'),
    roomName: $('#room-name'),
    peers: $('#peers'),
    peersEmpty: $('#peers-empty'),
    callPeer: $('#call-peer'),
    callState: $('#call-state'),
    hangup: $('#hangup'),
    pcState: $('#pc-state'),
    iceState: $('#ice-state'),
    dcState: $('#dc-state'),
    callHint: $('#call-hint'),
    mediaNote: $('#media-note'),
    remoteVideo: $('#remote-video'),
    localVideo: $('#local-video'),
    unmute: $('#unmute'),
    chatLog: $('#chat-log'),
    chatForm: $('#chat-form'),
    chatInput: $('#chat-input'),
    chatSend: $('#chat-send'),
    log: $('#log'),
};

// Everything a test (or a curious person in the console) may want to read.
const demo = {
    id: null,
    node: null,
    conn: 'connecting',
    iceServers: null,
    room: null, // the room asked for
    joined: false, // whether the node confirmed it
    peers: [],
    state: 'idle', // idle | connecting | connected | ended
    peer: null,
    callId: null,
    pcState: null,
    iceState: null,
    channelState: null,
    media: null, // null | asking | camera | none
    endReason: null, // hangup | remote-bye | busy | peer-unavailable | failed | channel-closed
    lastBye: null, // {from, call, reason} of the last bye received, whatever call it was for
    chat: [], // {who: 'me' | 'them', text}
};
window.switchboardDemo = demo;

// On a node with token authentication, open the demo as /?token=<switchboard token ...>.
const token = new URLSearchParams(location.search).get('token') || undefined;
const sb = new Switchboard(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`, { token });
let call = null; // the current call, see newCall()
const endedCalls = new Set();

// --- signaling connection and rooms ---

sb.addEventListener('welcome', ({ detail }) => {
    demo.id = detail.id;
    demo.node = detail.node;
    demo.iceServers = detail.iceServers;
    demo.conn = 'connected';
    note(`connected to node ${detail.node} as ${detail.id}`);
    render();
});
sb.addEventListener('close', ({ detail }) => {
    demo.conn = detail.willReconnect ? 'reconnecting' : 'closed';
    note(`signaling closed (${detail.code}${detail.reason ? ` ${detail.reason}` : ''})`);
    render();
});
sb.addEventListener('reconnecting', ({ detail }) => {
    note(`reconnecting in ${(detail.delay / 1000).toFixed(1)} s (attempt ${detail.attempt})`);
});
sb.addEventListener('error', ({ detail }) => note(`node says ${detail.code}: ${detail.message}`));
sb.addEventListener('joined', ({ detail }) => {
    if (detail.room !== demo.room) return;
    demo.peers = [...detail.peers];
    render();
});
sb.addEventListener('peer-joined', ({ detail }) => {
    if (detail.room !== demo.room || demo.peers.includes(detail.peer)) return;
    demo.peers.push(detail.peer);
    note(`${detail.peer} joined`);
    render();
});
sb.addEventListener('peer-left', ({ detail }) => {
    if (detail.room !== demo.room) return;
    demo.peers = demo.peers.filter((p) => p !== detail.peer);
    note(`${detail.peer} left`);
    render();
});
sb.addEventListener('message', ({ detail }) => onSignal(detail));

async function joinRoom(room) {
    const previous = demo.room;
    if (previous === room) return;
    demo.room = room;
    demo.joined = false;
    demo.peers = [];
    history.replaceState(null, '', `#${room}`);
    render();
    try {
        if (previous) await sb.leave(previous).catch(() => {}); // not in it any more is fine too
        await sb.join(room); // the 'joined' event fills the peer list
        if (demo.room === room) demo.joined = true;
        note(`joined room ${room}`);
    } catch (err) {
        note(`cannot join ${room}: ${err.code ?? ''} ${err.message}`);
        if (demo.room === room) demo.room = null;
        render();
    }
}

ui.roomForm.addEventListener('submit', (e) => {
    e.preventDefault();
    joinRoom(ui.room.value.trim());
});
ui.peers.addEventListener('click', (e) => {
    const peer = e.target.closest('button[data-peer]')?.dataset.peer;
    if (peer) startCall(peer);
});

// --- calls ---

function newCall(peer, id) {
    const pc = new RTCPeerConnection({ iceServers: sb.iceServers });
    const c = { peer, id, pc, polite: sb.id > peer, makingOffer: false, ignoreOffer: false };
    Object.assign(c, { chain: Promise.resolve(), channel: null, stream: null, remote: new MediaStream() });
    Object.assign(c, { ended: false, wasConnected: false });

    pc.onnegotiationneeded = async () => {
        try {
            c.makingOffer = true;
            await pc.setLocalDescription();
            signal(c, pc.localDescription.type, { description: pc.localDescription });
        } catch (err) {
            note(`negotiation: ${err.message}`);
        } finally {
            c.makingOffer = false;
        }
    };
    pc.onicecandidate = ({ candidate }) => {
        if (candidate) signal(c, 'candidate', { candidate });
    };
    pc.onconnectionstatechange = () => {
        if (pc.connectionState === 'connected') c.wasConnected = true;
        if (pc.connectionState === 'failed') end(c, 'failed');
        render();
    };
    pc.oniceconnectionstatechange = render;
    pc.ontrack = ({ track }) => {
        c.remote.addTrack(track);
        if (ui.remoteVideo.srcObject !== c.remote) {
            ui.remoteVideo.srcObject = c.remote;
            playRemote();
        }
    };
    demo.endReason = null;
    demo.chat = [];
    ui.chatLog.replaceChildren();
    return c;
}

function startCall(peer) {
    if (call || !sb.id) return;
    call = newCall(peer, randomId());
    note(`calling ${peer}`);
    openChannel(call);
    addMedia(call);
    render();
}

// Sends a signaling message for call c; a lost peer before the call is up ends it.
function signal(c, type, body) {
    sb.send(type, c.peer, { call: c.id, ...body }).catch((err) => {
        if (c.ended) return;
        if (err.code === 'peer-unavailable' && !c.wasConnected) end(c, 'peer-unavailable');
        else note(`${type} to ${c.peer} not delivered: ${err.code}`);
    });
}

function onSignal({ type, from, payload: p }) {
    if (!p || typeof p !== 'object' || typeof p.call !== 'string') return;
    if (type === 'bye') {
        demo.lastBye = { from, call: p.call, reason: p.reason ?? null };
        if (call && call.peer === from && call.id === p.call) {
            note(p.reason === 'busy' ? `${from} is busy` : `${from} hung up`);
            end(call, p.reason === 'busy' ? 'busy' : 'remote-bye');
        }
        return;
    }
    const fresh = type === 'offer' && !endedCalls.has(p.call);
    if (!call) {
        if (!fresh) return;
        call = newCall(from, p.call);
        note(`incoming call from ${from}`);
    } else if (call.peer !== from) {
        if (fresh) sb.send('bye', from, { call: p.call, reason: 'busy' }).catch(() => {});
        return;
    } else if (call.id !== p.call) {
        // Both called each other at once: the impolite peer's call wins.
        if (!fresh || !call.polite || call.wasConnected) return;
        call.id = p.call;
    }
    const c = call;
    c.chain = c.chain.then(() => handle(c, p)).catch((err) => note(`signaling: ${err.message}`));
    render();
}

// Perfect negotiation (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example).
async function handle(c, p) {
    if (c.ended) return;
    if (p.description) {
        const offer = p.description.type === 'offer';
        const collision = offer && (c.makingOffer || c.pc.signalingState !== 'stable');
        c.ignoreOffer = !c.polite && collision;
        if (c.ignoreOffer) return;
        await c.pc.setRemoteDescription(p.description);
        if (offer) {
            await c.pc.setLocalDescription();
            signal(c, 'answer', { description: c.pc.localDescription });
        }
        if (!c.channel) {
            // The callee: answered first, so chat works at once; the camera may follow.
            openChannel(c);
            addMedia(c);
        }
    } else if (p.candidate) {
        try {
            await c.pc.addIceCandidate(p.candidate);
        } catch (err) {
            if (!c.ignoreOffer) throw err;
        }
    }
}

// Both sides create the same pre-negotiated channel, so there is no race over who opens it.
function openChannel(c) {
    const ch = c.pc.createDataChannel('chat', { negotiated: true, id: 0 });
    c.channel = ch;
    ch.onopen = () => {
        note('chat channel open');
        render();
    };
    ch.onmessage = (e) => addChat('them', String(e.data));
    ch.onclose = () => {
        render();
        // A bye usually follows (or beat us here); if none comes, the peer just went away.
        setTimeout(() => end(c, 'channel-closed'), 2000);
    };
}

async function addMedia(c) {
    demo.media = 'asking';
    setMediaNote('Asking for camera and microphone…');
    render();
    let stream = null;
    let why = 'this page has no camera access (it needs https or localhost)';
    if (navigator.mediaDevices?.getUserMedia) {
        // Fall back to one device when the other is missing; stop at a refusal.
        for (const want of [{ video: true, audio: true }, { video: true }, { audio: true }]) {
            try {
                stream = await navigator.mediaDevices.getUserMedia(want);
                break;
            } catch (err) {
                why = `${err.name}: ${err.message}`;
                if (err.name === 'NotAllowedError' || err.name === 'SecurityError') break;
            }
        }
    }
    if (c.ended) {
        stream?.getTracks().forEach((t) => t.stop());
        return;
    }
    if (!stream) {
        demo.media = 'none';
        setMediaNote(`No camera or microphone (${why}): this call is chat only.`);
        note('no camera or microphone: chat only');
        render();
        return;
    }
    c.stream = stream;
    for (const track of stream.getTracks()) c.pc.addTrack(track, stream);
    ui.localVideo.srcObject = stream;
    demo.media = 'camera';
    setMediaNote(null);
    render();
}

function end(c, reason) {
    if (c.ended) return;
    c.ended = true;
    endedCalls.add(c.id);
    c.channel?.close();
    c.pc.close();
    c.stream?.getTracks().forEach((t) => t.stop());
    if (call === c) {
        call = null;
        demo.endReason = reason;
        ui.localVideo.srcObject = null;
        ui.remoteVideo.srcObject = null;
        ui.unmute.hidden = true;
        if (demo.media === 'asking') setMediaNote(null);
        note(`call with ${c.peer} ended (${reason})`);
    }
    render();
}

function hangup() {
    if (!call) return;
    signal(call, 'bye', { reason: 'hangup' });
    end(call, 'hangup');
}
ui.hangup.addEventListener('click', hangup);
window.addEventListener('pagehide', hangup); // closing the tab hangs up too

// Browsers may refuse to autoplay sound without a click on this page: then play muted.
function playRemote() {
    ui.remoteVideo.play().catch((err) => {
        if (err.name !== 'NotAllowedError') return;
        ui.remoteVideo.muted = true;
        ui.unmute.hidden = false;
        ui.remoteVideo.play().catch(() => {});
    });
}
ui.unmute.addEventListener('click', () => {
    ui.remoteVideo.muted = false;
    ui.unmute.hidden = true;
});

// --- chat ---

ui.chatForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = ui.chatInput.value;
    if (!text || call?.channel?.readyState !== 'open') return;
    call.channel.send(text);
    addChat('me', text);
    ui.chatInput.value = '';
    ui.chatInput.focus();
});

function addChat(who, text) {
    demo.chat.push({ who, text });
    const li = document.createElement('li');
    li.className = who;
    li.textContent = text;
    ui.chatLog.append(li);
    ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
}

// --- rendering ---

function callState() {
    if (!call) return demo.endReason ? 'ended' : 'idle';
    const up = call.pc.connectionState === 'connected' && call.channel?.readyState === 'open';
    return up ? 'connected' : 'connecting';
}

function render() {
    demo.state = callState();
    demo.peer = call?.peer ?? null;
    demo.callId = call?.id ?? null;
    demo.pcState = call?.pc.connectionState ?? null;
    demo.iceState = call?.pc.iceConnectionState ?? null;
    demo.channelState = call?.channel?.readyState ?? null;
    document.body.dataset.state = demo.state;

    ui.myId.textContent = demo.id ?? '…';
    ui.node.textContent = demo.node ?? '…';
    setValue(ui.conn, demo.conn);
    ui.roomName.textContent = demo.room ?? 'no room yet';
    ui.peers.replaceChildren(...demo.peers.map(peerItem));
    ui.peersEmpty.hidden = demo.peers.length > 0 || !demo.room;

    ui.callPeer.textContent = demo.peer ? `with ${demo.peer}` : '';
    setValue(ui.callState, demo.state === 'ended' ? `ended: ${demo.endReason}` : demo.state, demo.state);
    ui.hangup.disabled = !call;
    ui.callHint.hidden = demo.state !== 'idle';
    ui.pcState.textContent = demo.pcState ?? '–';
    ui.iceState.textContent = demo.iceState ?? '–';
    ui.dcState.textContent = demo.channelState ?? '–';
    const canChat = demo.channelState === 'open';
    ui.chatInput.disabled = !canChat;
    ui.chatSend.disabled = !canChat;
}

function peerItem(peer) {
    const li = document.createElement('li');
    const name = document.createElement('code');
    name.textContent = peer;
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.peer = peer;
    button.textContent = call?.peer === peer ? 'In call' : 'Call';
    button.disabled = Boolean(call) || !demo.id;
    li.append(name, button);
    return li;
}

function setValue(el, text, value = text) {
    el.textContent = text;
    el.dataset.value = value;
}

function setMediaNote(text) {
    ui.mediaNote.textContent = text ?? '';
    ui.mediaNote.hidden = !text;
}

function note(text) {
    const li = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = new Date().toLocaleTimeString();
    li.append(time, ` ${text}`);
    ui.log.prepend(li);
    while (ui.log.children.length > 100) ui.log.lastElementChild.remove();
}

function randomId() {
    const bytes = crypto.getRandomValues(new Uint8Array(9));
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
}

// --- start ---

const fromHash = decodeURIComponent(location.hash.slice(1));
ui.room.value = fromHash || 'lobby';
if (fromHash) joinRoom(fromHash);
window.addEventListener('hashchange', () => {
    const room = decodeURIComponent(location.hash.slice(1));
    if (!room) return;
    ui.room.value = room;
    joinRoom(room);
});
render();
