/* ERP URL checks against server-side request forgery (see erp_url.h). */
#include "erp_url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the address rule ---- */

struct v4net { uint32_t net; int bits; };

/* IANA special-purpose IPv4 blocks that are not globally reachable, plus multicast and reserved. */
static const struct v4net V4_REFUSED[] = {
    {0x00000000, 8},  /* 0.0.0.0/8 "this network" */
    {0x0A000000, 8},  /* 10.0.0.0/8 private */
    {0x64400000, 10}, /* 100.64.0.0/10 shared address space (CGNAT) */
    {0x7F000000, 8},  /* 127.0.0.0/8 loopback */
    {0xA9FE0000, 16}, /* 169.254.0.0/16 link-local, incl. 169.254.169.254 (cloud metadata) */
    {0xAC100000, 12}, /* 172.16.0.0/12 private */
    {0xC0000000, 24}, /* 192.0.0.0/24 IETF protocol assignments */
    {0xC0000200, 24}, /* 192.0.2.0/24 documentation */
    {0xC0586300, 24}, /* 192.88.99.0/24 6to4 relay anycast (deprecated) */
    {0xC0A80000, 16}, /* 192.168.0.0/16 private */
    {0xC6120000, 15}, /* 198.18.0.0/15 benchmarking */
    {0xC6336400, 24}, /* 198.51.100.0/24 documentation */
    {0xCB007100, 24}, /* 203.0.113.0/24 documentation */
    {0xE0000000, 4},  /* 224.0.0.0/4 multicast */
    {0xF0000000, 4},  /* 240.0.0.0/4 reserved, incl. 255.255.255.255 */
};

static bool v4_refused(uint32_t a) {
    for (size_t i = 0; i < sizeof V4_REFUSED / sizeof V4_REFUSED[0]; i++) {
        uint32_t mask = V4_REFUSED[i].bits == 0 ? 0 : 0xFFFFFFFFu << (32 - V4_REFUSED[i].bits);
        if ((a & mask) == V4_REFUSED[i].net) return true;
    }
    return false;
}

static bool v6_refused(const unsigned char *b) {
    static const unsigned char zero[16];
    if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1)) return true;   /* :: and ::1 */
    /* ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible, deprecated), 64:ff9b::a.b.c.d (NAT64):
     * judged by the IPv4 address they carry. */
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, zero, 12) == 0 || memcmp(b, nat64, 12) == 0)
        return v4_refused((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
    static const unsigned char nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 0x01};
    if (memcmp(b, nat64_local, 6) == 0) return true;   /* 64:ff9b:1::/48 local-use NAT64 (RFC 8215) */
    if ((b[0] & 0xfe) == 0xfc) return true;                  /* fc00::/7 unique local (fd00::/8) */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true;  /* fe80::/10 link-local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return true;  /* fec0::/10 site-local (deprecated) */
    if (b[0] == 0xff) return true;                           /* ff00::/8 multicast */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return true;  /* 2001:db8::/32 */
    if (b[0] == 0x01 && memcmp(b + 1, zero, 7) == 0) return true;                   /* 100::/64 discard */
    if (b[0] == 0x20 && b[1] == 0x02) return true;   /* 2002::/16 6to4: embeds an IPv4 address anywhere */
    return false;
}

bool erp_addr_refused(const struct sockaddr *sa) {
    if (!sa) return true;
    if (sa->sa_family == AF_INET) return v4_refused(ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6) return v6_refused(((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr);
    return true;   /* anything else (unix sockets, …) */
}

/* ---- the allow list ---- */

static void lower(char *s) {
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

static bool host_chars_ok(const char *h) {
    if (!*h) return false;
    for (; *h; h++) {
        unsigned char c = (unsigned char)*h;
        if (!isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':') return false;
    }
    return true;
}

/* "host", "host:port", "[v6]", "[v6]:port" → host (no brackets), port (0 when absent). */
static int split_host_port(const char *s, size_t n, char *host, int *port) {
    const char *h = s, *end = s + n, *colon = NULL;
    size_t hl;
    if (n && *s == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb) return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1 < end ? rb + 1 : NULL;
        if (colon && *colon != ':') return -1;
    } else {
        colon = memchr(s, ':', n);
        if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1))) return -1;   /* bare IPv6 */
        hl = colon ? (size_t)(colon - s) : n;
    }
    if (hl == 0 || hl > ERP_HOST_MAX) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = 0;
    if (colon) {
        const char *p = colon + 1;
        if (p >= end || end - p > 5) return -1;
        long v = 0;
        for (; p < end; p++) {
            if (!isdigit((unsigned char)*p)) return -1;
            v = v * 10 + (*p - '0');
        }
        if (v < 1 || v > 65535) return -1;
        *port = (int)v;
    }
    lower(host);
    return host_chars_ok(host) ? 0 : -1;
}

int erp_allow_parse(const char *csv, struct erp_allow *out, const char **why) {
    memset(out, 0, sizeof *out);
    if (!csv) return 0;
    const char *p = csv;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *start = p;
        while (*p && *p != ',') p++;
        size_t n = (size_t)(p - start);
        while (n && start[n - 1] == ' ') n--;
        if (out->n == ERP_ALLOW_MAX) {
            *why = "at most 32 entries";
            return -1;
        }
        if (split_host_port(start, n, out->e[out->n].host, &out->e[out->n].port) != 0) {
            *why = "entries are host or host:port, comma-separated";
            return -1;
        }
        out->n++;
    }
    return 0;
}

bool erp_allow_has(const struct erp_allow *a, const char *host, int port) {
    for (int i = 0; a && i < a->n; i++)
        if (strcasecmp(a->e[i].host, host) == 0 && (a->e[i].port == 0 || a->e[i].port == port)) return true;
    return false;
}

/* ---- URLs ---- */

int erp_url_parse(const char *url, struct erp_url *out, const char **why) {
    memset(out, 0, sizeof *out);
    size_t len = strlen(url);
    if (len == 0 || len > ERP_URL_MAX) return *why = "must be an http or https URL of at most 2048 characters", -1;
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return *why = "must not contain spaces, control or non-ASCII characters", -1;
    const char *rest;
    if (strncasecmp(url, "http://", 7) == 0) rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0) {
        rest = url + 8;
        out->https = true;
    } else {
        return *why = "only http and https URLs are allowed", -1;
    }
    size_t alen = strcspn(rest, "/?#");
    if (rest[alen] == '?' || rest[alen] == '#' || strpbrk(rest + alen, "?#"))
        return *why = "a base URL has no query or fragment", -1;
    if (memchr(rest, '@', alen)) return *why = "user information in the URL is not allowed", -1;
    int port = 0;
    if (split_host_port(rest, alen, out->host, &port) != 0) return *why = "the host (and port) are malformed", -1;
    out->port = port ? port : out->https ? 443 : 80;
    unsigned char buf[16];
    out->ip_literal = inet_pton(AF_INET, out->host, buf) == 1 || inet_pton(AF_INET6, out->host, buf) == 1;
    if (!out->ip_literal && strchr(out->host, ':')) return *why = "the host (and port) are malformed", -1;
    /* brackets hold an IPv6 literal only (RFC 3986 IP-literal): "[127.0.0.1]" or "[host]" would
     * be read differently by whatever else parses the stored URL */
    if (rest[0] == '[' && inet_pton(AF_INET6, out->host, buf) != 1) return *why = "the host (and port) are malformed", -1;
    return 0;
}

int erp_resolve_system(void *arg, const char *host, struct sockaddr_storage *out, int max) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) return -1;
    int n = 0;
    for (struct addrinfo *a = res; a && n < max; a = a->ai_next) {
        if (a->ai_addrlen > sizeof *out) continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n], a->ai_addr, a->ai_addrlen);
        n++;
    }
    freeaddrinfo(res);
    return n;
}

int erp_url_check(const char *url, const struct erp_allow *allow, erp_resolver resolver, void *arg, const char **why) {
    struct erp_url u;
    if (erp_url_parse(url, &u, why) != 0) return -1;
    if (erp_allow_has(allow, u.host, u.port)) return 0;
    struct sockaddr_storage addrs[16];
    int n = u.ip_literal ? erp_resolve_system(NULL, u.host, addrs, 16)   /* a literal: no lookup */
                         : (resolver ? resolver : erp_resolve_system)(arg, u.host, addrs, 16);
    if (n <= 0) return *why = "the host does not resolve", -1;
    for (int i = 0; i < n; i++)
        if (erp_addr_refused((const struct sockaddr *)&addrs[i]))
            return *why = "the host is or resolves to a loopback, private, link-local or otherwise non-public address", -1;
    return 0;
}

void erp_connect_guard_init(struct erp_connect_guard *g, const struct erp_allow *allow, const struct erp_url *u) {
    g->allow = allow;
    g->host_allowed = erp_allow_has(allow, u->host, u->port);
    g->refused = false;
}

bool erp_url_connect_ok(void *arg, const struct sockaddr *addr, socklen_t len) {
    struct erp_connect_guard *g = arg;
    if (g->host_allowed) return true;
    if (erp_addr_refused(addr)) {
        g->refused = true;
        return false;
    }
    return true;
}
