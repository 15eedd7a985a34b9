/* The PROXY protocol header (HAProxy's, versions 1 and 2) that a load balancer sends first. */
#ifndef SB_PROXY_H
#define SB_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "source.h"

/* The longest version 1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses). */
#define SB_PROXY_V1_MAX 107

/* The longest header accepted, of either version: a version 2 header is 16 bytes and at most
 * this less 16 of addresses and TLVs (the spec lets it be 64 KiB; proxies send a few hundred
 * bytes at most, TLVs included). */
#define SB_PROXY_MAX_HEADER 1024

/* What went wrong (negative results of sb_proxy_parse). */
#define SB_PROXY_ENOTPROXY (-1) /* the bytes start with neither version's signature */
#define SB_PROXY_EBAD (-2)      /* a signature, then something the spec does not allow */
#define SB_PROXY_ETOOLARGE (-3) /* longer than SB_PROXY_V1_MAX or SB_PROXY_MAX_HEADER */

/* What a header says about the connection. */
typedef struct {
    int version; /* 1 or 2 */
    /* 1: the header names no client (v1 UNKNOWN; v2 LOCAL, as health checks send; a family
     * other than TCP over IPv4 or IPv6): the connection's own address is its source. */
    int local;
    sb_ip_t src;       /* the client's address, when !local (IPv4-mapped IPv6 stored as IPv4) */
    uint16_t src_port; /* and its port */
} sb_proxy_header_t;

/* Parses the header at the start of [buf, buf + len), version 1 or 2 by its signature. Returns
 * the header's length (> 0, the bytes after it are the connection's own) with *out filled; 0
 * when every byte so far may start a header and more are needed; or a negative SB_PROXY_E*
 * code with *err (when err is not NULL) set to a static reason. Version 1 is read strictly
 * (single spaces, canonical addresses and ports, CRLF within SB_PROXY_V1_MAX bytes); version 2
 * must have version 2 and command LOCAL or PROXY, known family and protocol nibbles and room
 * for the addresses its family needs; its TLVs are skipped unread. No allocation, no I/O. */
int sb_proxy_parse(const void *buf, size_t len, sb_proxy_header_t *out, const char **err);

#endif
