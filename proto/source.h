/* Where a client comes from and how fast it may go: IP addresses, CIDR blocks, the client an
 * X-Forwarded-For header names, and token buckets. No I/O, no clock: callers pass the time. */
#ifndef SB_SOURCE_H
#define SB_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

/* An IPv4 or IPv6 address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is stored as the IPv4
 * address it maps, so that a dual-stack socket and a proxy's header name a client alike. */
typedef struct {
    uint8_t v6; /* 0: IPv4 in b[0..3] (the rest zero); 1: IPv6 in b[0..15] */
    uint8_t b[16];
} sb_ip_t;

/* Room for an address as text, with its NUL (INET6_ADDRSTRLEN). */
#define SB_IP_TEXT 46

/* An address block: ip with all but its first bits zero. */
typedef struct {
    sb_ip_t ip;
    unsigned bits; /* prefix length: at most 32 for IPv4, 128 for IPv6 */
} sb_cidr_t;

/* Parses an address written as text, exactly [s, s+len): dotted-quad IPv4 or RFC 4291 IPv6 (no
 * zone, no brackets, no port). Returns 0, or -1 when it is not one. */
int sb_ip_parse(const char *s, size_t len, sb_ip_t *out);

/* The address from its bytes as a socket holds them (4 bytes for IPv4, 16 for IPv6). */
sb_ip_t sb_ip_from_bytes(int v6, const void *bytes);

/* Writes the address as text (RFC 5952 for IPv6) into out, NUL-terminated; cap must be at
 * least SB_IP_TEXT. Returns the text's length. */
size_t sb_ip_format(const sb_ip_t *ip, char *out, size_t cap);

int sb_ip_eq(const sb_ip_t *a, const sb_ip_t *b);

/* Room for a source as text, with its NUL: an IPv6 address and "/64". */
#define SB_SOURCE_TEXT (SB_IP_TEXT + 3)

/* The source a client address counts as for per-source limits, as text into out (cap at least
 * SB_SOURCE_TEXT): an IPv4 address itself ("192.0.2.7"), an IPv6 address its /64 prefix
 * ("2001:db8:1:2::/64"), the usual allocation of one subscriber, whose host may use any of its
 * addresses. Returns the text's length (0 when cap is too small). */
size_t sb_source_format(const sb_ip_t *ip, char *out, size_t cap);

/* Parses "ADDRESS" (a block of one) or "ADDRESS/BITS". Host bits past the prefix are cleared
 * (10.1.2.3/8 is 10.0.0.0/8). Returns 0, or -1 with *err set. */
int sb_cidr_parse(const char *s, size_t len, sb_cidr_t *out, const char **err);

/* Returns 1 when ip lies in the block (an IPv4 address never lies in an IPv6 block). */
int sb_cidr_match(const sb_cidr_t *c, const sb_ip_t *ip);

/* Parses a comma-separated list of blocks (white space around each allowed; "" is an empty
 * list) into out, at most cap of them. Returns how many, or -1 with *err set when one is
 * malformed or there are more than cap. */
int sb_cidr_list_parse(const char *list, sb_cidr_t *out, size_t cap, const char **err);

/* Returns 1 when ip lies in one of the n blocks. */
int sb_cidr_list_match(const sb_cidr_t *list, size_t n, const sb_ip_t *ip);

/* The client that X-Forwarded-For names, for a request that came from a trusted proxy.
 *
 * values are the values of every X-Forwarded-For field of the request, in order (together one
 * comma-separated list, each proxy having appended the address it got the request from).
 * *client holds the socket's address on entry. The list is read from its right end: each
 * address replaces *client, and the walk stops at the first one that is not in trusted (that is
 * the client; everything left of it was written by parties nobody vouches for). An element that
 * is not an address ("unknown", garbage) also stops the walk, leaving *client at the last
 * trusted hop. Elements may carry a port ("192.0.2.1:4711", "[2001:db8::1]:4711") or brackets.
 * Returns how many addresses were taken from the list (0: *client unchanged). */
size_t sb_xff_client(const sb_str_t *values, size_t nvalues, const sb_cidr_t *trusted,
                     size_t ntrusted, sb_ip_t *client);

/* A token bucket: holds up to burst tokens and gains rate a second; now is any clock in seconds
 * that never goes back (a step back is taken as no time passing). */
typedef struct {
    double tokens, rate, burst, last;
} sb_bucket_t;

/* A full bucket at time now. */
void sb_bucket_init(sb_bucket_t *b, double rate, double burst, double now);

/* Adds what time has brought since the last call, up to burst. */
void sb_bucket_refill(sb_bucket_t *b, double now);

/* Refills, then takes n tokens when there are that many. Returns 1 when taken, 0 when not (and
 * nothing is taken). */
int sb_bucket_take(sb_bucket_t *b, double n, double now);

/* Seconds from now until n tokens will be there (0 when they are); -1 when n is over burst. */
double sb_bucket_wait(sb_bucket_t *b, double n, double now);

/* Returns 1 when the bucket is full again at now: as if it had never been used. */
int sb_bucket_full(sb_bucket_t *b, double now);

#endif
