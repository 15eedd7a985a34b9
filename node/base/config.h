/* The node's configuration: defaults, then SWITCHBOARD_* environment variables, then flags. */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <stddef.h>

typedef struct {
    char *listen;       /* HOST:PORT or [HOST]:PORT; port 0 picks a free port; "" for none */
    char *tls_listen;   /* the same for https:// and wss://, "" for none */
    char *admin_listen; /* HOST:PORT serving /metrics, /healthz and /readyz only, "" for none */
    char *tls_cert;     /* PEM certificate chain for tls_listen (reloaded on SIGHUP) */
    char *tls_key;      /* PEM private key for tls_listen (reloaded on SIGHUP) */
    int echo;           /* echo each text message back instead of relaying it */
    char *www;          /* directory served at /, "" for none; made absolute at start */
    char *node_id;      /* this node's name in welcome messages; generated when "" */
    char *ice_servers;  /* JSON array given to clients for RTCPeerConnection */
    char *turn_uris;    /* comma-separated turn:/turns: URIs of TURN servers sharing turn_secret */
    char *turn_secret;  /* the TURN REST secret (coturn's static-auth-secret), "" for none */
    double turn_ttl;    /* seconds a TURN credential in welcome stays valid */
    char *turn_urls;    /* turn_uris as a JSON array (made by sb_config_load), NULL when none */
    char *redis;        /* redis:// or rediss:// URL of the cluster bus, "" for the embedded bus */
    char *redis_ca;     /* PEM CA bundle verifying a rediss:// server, "" for the system's */
    char *auth_secret;  /* HS256 secret of peer tokens, "" for none */
    char *auth_public_key; /* PEM file of the RS256/ES256/EdDSA key of peer tokens, "" for none */
    char *auth_issuer;     /* iss a token must carry, "" for any */
    char *auth_audience;   /* aud a token must carry, "" for any */
    double auth_leeway;    /* seconds of clock skew allowed on exp and nbf */
    char *allow_origin;    /* comma-separated allowed Origins (a * for one label), "" for all */
    char *trust_proxy;     /* comma-separated addresses or CIDRs of proxies naming the client */
    int proxy_protocol;    /* connections from trust_proxy begin with a PROXY protocol header */
    size_t rate_messages;  /* messages per second one connection may send (bursts of 2 s) */
    size_t rate_bytes;     /* message bytes per second one connection may send (bursts of 2 s) */
    size_t source_connections; /* connections open at once from one source address */
    size_t source_handshakes;  /* connections per second from one source address (bursts of 2 s) */
    double node_ttl;           /* seconds after which a silent node counts as dead */
    double resume_seconds;     /* a dropped connection's session waits this long for a resume */
    size_t mailbox_messages;   /* messages held for a peer between connections */
    size_t mailbox_bytes;      /* bytes of messages held for a peer between connections */
    double bus_hold_ms;        /* relays, joins and claims wait this long for Redis to be back */
    size_t bus_hold_bytes;     /* bytes of relays a node holds while they wait */
    double resend_seconds;     /* acked relays are kept this long, to be sent again if lost */
    char *peerjs_path;         /* PeerServer's path, "/" or "/app/" (made to end with '/'): its
                                  WebSocket at <path>peerjs and its HTTP API; "" for none */
    char *peerjs_key;          /* the key PeerJS clients must give */
    double peerjs_alive_ms;    /* a PeerJS connection without a HEARTBEAT this long is closed */
    double peerjs_expire_ms;   /* a PeerJS message waits this long for its recipient to connect */
    size_t peerjs_limit; /* PeerJS connections one node serves at once; 0: no limit of its own */
    size_t max_rooms_per_peer;
    size_t max_room_peers;
    size_t max_message;       /* largest WebSocket message accepted, bytes */
    size_t max_output;        /* outgoing bytes queued per connection before it is dropped */
    size_t max_connections;   /* connections served at once; more get 503 */
    double ping_interval;     /* idle seconds before the node pings a client */
    double pong_timeout;      /* seconds a pinged client has to send anything back */
    double handshake_timeout; /* seconds a client has to send its whole request head */
    double close_timeout;     /* seconds to wait for the peer's close frame, or a clean close */
    int log_level;            /* SB_LOG_DEBUG ... SB_LOG_ERROR */
    int log_format;           /* SB_LOG_AUTO, SB_LOG_TEXT or SB_LOG_JSON */
    double drain_delay;       /* after SIGTERM: seconds the listener stays open, not ready */
    double drain_seconds;     /* then: seconds over which clients are closed, spread evenly */
} sb_config_t;

/* Fills cfg from defaults, the environment and argv, then finishes it: www made an absolute
 * path ("auto" finds the installed or source www/), ice_servers checked and compacted, node_id
 * checked or generated (host name and a random suffix). Returns 0 to run, 1 when --help or
 * --version was printed (exit 0), -1 on a bad value or option (err says which). Strings in
 * cfg are owned by cfg: release them with sb_config_free. */
int sb_config_load(sb_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

void sb_config_free(sb_config_t *cfg);

#endif
