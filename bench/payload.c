/* The messages the bench relays: a WebRTC call's mix of offers, answers and candidates, or one
 * fixed payload size; each step of a pair's script says what to send and which way. */
#include "payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CANDIDATE_FORMAT                                                                           \
    "{\"candidate\":\"candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr "     \
    "192.168.1.7 rport 54321 generation 0 ufrag EsAw network-cost 999\",\"sdpMid\":\"0\","         \
    "\"sdpMLineIndex\":0,\"usernameFragment\":\"EsAw\"}"

/* A JSON object {"k":"xxx..."} of exactly size bytes (a bare string when size is small). */
static char *filled(size_t size, const char *key)
{
    if (size < 2)
        size = 2;
    char *s = malloc(size + 1);
    if (!s)
        return NULL;
    size_t head = strlen(key) + 6; /* {"key":"  and  "} */
    if (size >= head + 1) {
        int n = snprintf(s, size + 1, "{\"%s\":\"", key);
        memset(s + n, 'x', size - head);
        memcpy(s + size - 2, "\"}", 2);
    } else {
        s[0] = '"';
        memset(s + 1, 'x', size - 2);
        s[size - 1] = '"';
    }
    s[size] = '\0';
    return s;
}

/* A session description of about size bytes: {"type":"offer","sdp":"v=0\r\n..."}. */
static char *sdp(const char *type, size_t size, unsigned variant)
{
    char *s = malloc(size + 512);
    if (!s)
        return NULL;
    size_t n =
        (size_t)snprintf(s, 512,
                         "{\"type\":\"%s\",\"sdp\":\"v=0\\r\\no=- %llu 2 IN IP4 127.0.0.1\\r\\n"
                         "s=-\\r\\nt=0 0\\r\\na=group:BUNDLE 0 1 2\\r\\n",
                         type, 4611731400ull + variant);
    static const char *const lines[] = {
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\\r\\n",
        "c=IN IP4 0.0.0.0\\r\\na=rtcp:9 IN IP4 0.0.0.0\\r\\n",
        "a=ice-ufrag:EsAw\\r\\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\\r\\n",
        "a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:"
        "FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\\r\\n",
        "a=setup:actpass\\r\\na=mid:0\\r\\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level"
        "\\r\\n",
        "a=sendrecv\\r\\na=msid:- 7c1d8f3e-9b1a-4c7e-8f0a-2b3c4d5e6f70\\r\\na=rtcp-mux\\r\\n",
        "a=rtpmap:111 opus/48000/2\\r\\na=rtcp-fb:111 transport-cc\\r\\n"
        "a=fmtp:111 minptime=10;useinbandfec=1\\r\\n",
        "a=ssrc:1001 cname:4TOk42mSjXCkVIa6\\r\\n",
    };
    const size_t nlines = sizeof(lines) / sizeof(lines[0]);
    /* whole lines while they fit; bounded by size */
    for (size_t i = 0; i < size; i++) {
        const char *l = lines[i % nlines];
        size_t ll = strlen(l);
        if (n + ll + 2 > size)
            break;
        memcpy(s + n, l, ll);
        n += ll;
    }
    memcpy(s + n, "\"}", 3);
    return s;
}

int sb_payloads_init(sb_payloads_t *p, size_t fixed_size)
{
    memset(p, 0, sizeof(*p));
    p->fixed_size = fixed_size;
    if (fixed_size > 0) {
        p->candidate = filled(fixed_size, "candidate");
    } else {
        p->candidate = strdup(CANDIDATE_FORMAT);
        for (unsigned i = 0; i < SB_PAYLOAD_VARIANTS; i++) {
            /* sizes spread evenly over 2-6 KB; the answer to a large offer is small, and back */
            size_t step = 4096 / (SB_PAYLOAD_VARIANTS - 1);
            p->offer[i] = sdp("offer", 2048 + i * step, i);
            p->answer[i] = sdp("answer", 2048 + (SB_PAYLOAD_VARIANTS - 1 - i) * step, i + 100);
            if (!p->offer[i] || !p->answer[i])
                goto fail;
            p->offer_len[i] = strlen(p->offer[i]);
            p->answer_len[i] = strlen(p->answer[i]);
        }
    }
    if (!p->candidate)
        goto fail;
    p->candidate_len = strlen(p->candidate);
    return 0;
fail:
    sb_payloads_free(p);
    return -1;
}

void sb_payloads_free(sb_payloads_t *p)
{
    free(p->candidate);
    for (unsigned i = 0; i < SB_PAYLOAD_VARIANTS; i++) {
        free(p->offer[i]);
        free(p->answer[i]);
    }
    memset(p, 0, sizeof(*p));
}

void sb_payloads_step(const sb_payloads_t *p, size_t pair, uint64_t n, sb_step_t *out)
{
    if (p->fixed_size > 0) {
        out->type = "candidate";
        out->payload = (sb_str_t){p->candidate, p->candidate_len};
        out->dir = (int)(n & 1);
        return;
    }
    uint64_t step = n % SB_PAYLOAD_CALL_STEPS;
    unsigned v = (unsigned)((n / SB_PAYLOAD_CALL_STEPS + pair) % SB_PAYLOAD_VARIANTS);
    if (step == 0) {
        *out = (sb_step_t){"offer", {p->offer[v], p->offer_len[v]}, 0};
    } else if (step == 1) {
        *out = (sb_step_t){"answer", {p->answer[v], p->answer_len[v]}, 1};
    } else {
        *out = (sb_step_t){"candidate", {p->candidate, p->candidate_len}, (int)(step & 1)};
    }
}

double sb_payloads_mean_size(const sb_payloads_t *p)
{
    if (p->fixed_size > 0)
        return (double)p->candidate_len;
    double sum = 0;
    for (unsigned i = 0; i < SB_PAYLOAD_VARIANTS; i++)
        sum += (double)(p->offer_len[i] + p->answer_len[i]);
    return (sum / SB_PAYLOAD_VARIANTS + (SB_PAYLOAD_CALL_STEPS - 2) * (double)p->candidate_len) /
           SB_PAYLOAD_CALL_STEPS;
}
