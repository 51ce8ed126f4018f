/* A tenant's ERP base URL and the addresses it leads to (sync-service/src/erp_url.c, the guard
 * against server-side request forgery). No DNS here: the harness's resolver answers numeric host
 * forms as getaddrinfo does (AI_NUMERICHOST: "127.1", "0x7f.1", "2130706433", "::ffff:7f00:1")
 * and any name with the addresses carried by the input (what a hostile DNS server could answer).
 *
 * Input: the URL, a NUL, ERP_ALLOWED_HOSTS, a NUL, then raw bytes read as addresses: per address
 * one selector byte (bits 0-1: 0 IPv4 + 4 bytes, 1 IPv6 + 16 bytes, 2 AF_UNIX, 3 another family)
 * and the address bytes. The first address also goes to erp_addr_refused and the connect guard.
 * Properties, against checks written here independently of erp_url.c:
 *  - an accepted URL is at most 2048 printable ASCII bytes, http:// or https:// (any case), with
 *    no user info, query or fragment; the parsed host is the authority's host lower-cased (an IPv6
 *    literal only in brackets, without them) and the port the explicit one (1-65535) or 80/443;
 *    a plain URL (scheme, name of [a-z0-9.-], port, path of [A-Za-z0-9/._~-]) is always accepted;
 *  - erp_addr_refused holds exactly for the addresses classified here as not public (loopback,
 *    private, CGNAT, link-local incl. metadata, unique/site-local, multicast, reserved,
 *    documentation, benchmarking, discard, 6to4, unspecified; IPv4-mapped, -compatible and
 *    NAT64 forms by their IPv4 address; families other than IPv4/IPv6);
 *  - erp_url_check accepts exactly when the URL parses and its host is on the allow list (as
 *    written, case-insensitive, port matching) or resolves to at least one address, all public —
 *    so a loopback or private literal is refused in every spelling;
 *  - the connect guard lets an address through exactly when the host is allowed or the address
 *    is public, and records a refusal;
 *  - an accepted allow list holds at most 32 lower-case hosts, each found again in upper case. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "erp_url.h"

struct answer {
    struct sockaddr_storage a[16];
    int n;
};

/* ---- the address rule, independently ---- */

static bool v4_private(const unsigned char *q) {
    unsigned a = q[0], b = q[1], c = q[2];
    return a == 0 || a == 10 || a == 127 || a >= 224 ||                      /* this net, private, loopback, multicast+reserved */
           (a == 100 && b >= 64 && b <= 127) ||                              /* CGNAT */
           (a == 169 && b == 254) || (a == 172 && b >= 16 && b <= 31) ||     /* link-local, private */
           (a == 192 && b == 168) || (a == 192 && b == 0 && (c == 0 || c == 2)) || (a == 192 && b == 88 && c == 99) ||
           (a == 198 && (b == 18 || b == 19)) || (a == 198 && b == 51 && c == 100) || (a == 203 && b == 0 && c == 113);
}

static bool v6_private(const unsigned char *q) {
    bool first10_zero = true;
    for (int i = 0; i < 10; i++) first10_zero = first10_zero && q[i] == 0;
    if (first10_zero && q[10] == 0xff && q[11] == 0xff) return v4_private(q + 12);   /* ::ffff:a.b.c.d */
    if (first10_zero && q[10] == 0 && q[11] == 0) return v4_private(q + 12);         /* ::a.b.c.d, ::, ::1 */
    if (q[0] == 0 && q[1] == 0x64 && q[2] == 0xff && q[3] == 0x9b) {
        bool wk = true;   /* 64:ff9b::/96 well-known NAT64 */
        for (int i = 4; i < 12; i++) wk = wk && q[i] == 0;
        if (wk) return v4_private(q + 12);
        if (q[4] == 0 && q[5] == 1) return true;   /* 64:ff9b:1::/48 local-use NAT64 (RFC 8215) */
    }
    if (q[0] >= 0xfc && q[0] <= 0xfd) return true;                  /* unique local */
    if (q[0] == 0xfe && q[1] >= 0x80) return true;                  /* fe80::/10 link-local, fec0::/10 site-local */
    if (q[0] == 0xff) return true;                                  /* multicast */
    if (q[0] == 0x20 && q[1] == 0x01 && q[2] == 0x0d && q[3] == 0xb8) return true;   /* documentation */
    if (q[0] == 0x20 && q[1] == 0x02) return true;                  /* 6to4 */
    if (q[0] == 0x01 && q[1] == 0 && q[2] == 0 && q[3] == 0 && q[4] == 0 && q[5] == 0 && q[6] == 0 && q[7] == 0)
        return true;                                                /* 100::/64 discard */
    return false;
}

static bool sa_private(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET) return v4_private((const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr);
    if (ss->ss_family == AF_INET6) return v6_private(((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr);
    return true;
}

/* Reads the addresses of the input's tail. */
static void read_answer(const uint8_t *p, size_t n, struct answer *ans) {
    ans->n = 0;
    size_t i = 0;
    while (i < n && ans->n < 16) {
        unsigned sel = p[i++] & 3;
        struct sockaddr_storage *ss = &ans->a[ans->n];
        memset(ss, 0, sizeof *ss);
        if (sel == 0) {
            if (n - i < 4) break;
            struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
            v4->sin_family = AF_INET;
            memcpy(&v4->sin_addr, p + i, 4);
            i += 4;
        } else if (sel == 1) {
            if (n - i < 16) break;
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
            v6->sin6_family = AF_INET6;
            memcpy(v6->sin6_addr.s6_addr, p + i, 16);
            i += 16;
        } else {
            ss->ss_family = sel == 2 ? AF_UNIX : AF_APPLETALK;
        }
        ans->n++;
    }
}

/* The harness's resolver: numeric forms as getaddrinfo reads them, names from the input. */
static int resolve(void *arg, const char *host, struct sockaddr_storage *out, int max) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) == 0 && res) {
        int n = 0;
        for (struct addrinfo *a = res; a && n < max; a = a->ai_next) {
            memset(&out[n], 0, sizeof out[n]);
            memcpy(&out[n], a->ai_addr, a->ai_addrlen);
            n++;
        }
        freeaddrinfo(res);
        return n;
    }
    const struct answer *ans = arg;
    if (ans->n == 0) return -1;
    int n = ans->n < max ? ans->n : max;
    memcpy(out, ans->a, (size_t)n * sizeof *out);
    return n;
}

/* ---- the URL, independently ---- */

struct want {
    bool https;
    char host[2100];
    long port;
    bool bracketed;
};

/* What the authority of an accepted URL must be. false when the URL cannot be accepted. */
static bool expected(const char *url, struct want *w) {
    size_t len = strlen(url);
    if (len == 0 || len > 2048) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] < 0x21 || (unsigned char)url[i] > 0x7e || url[i] == '?' || url[i] == '#') return false;
    const char *a;
    if (!strncasecmp(url, "http://", 7)) a = url + 7, w->https = false;
    else if (!strncasecmp(url, "https://", 8)) a = url + 8, w->https = true;
    else return false;
    const char *slash = strchr(a, '/');
    size_t alen = slash ? (size_t)(slash - a) : strlen(a);
    if (memchr(a, '@', alen)) return false;
    const char *hs = a, *he, *after;
    w->bracketed = alen && a[0] == '[';
    if (w->bracketed) {
        const char *rb = memchr(a, ']', alen);
        if (!rb) return false;
        hs = a + 1, he = rb, after = rb + 1;
    } else {
        const char *colon = memchr(a, ':', alen);
        he = colon ? colon : a + alen;
        after = he;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl > 253) return false;
    for (size_t i = 0; i < hl; i++) w->host[i] = (char)tolower((unsigned char)hs[i]);
    w->host[hl] = '\0';
    w->port = w->https ? 443 : 80;
    if (after < a + alen) {
        if (*after != ':') return false;
        size_t pl = (size_t)(a + alen - after - 1);
        if (pl < 1 || pl > 5) return false;
        long v = 0;
        for (size_t i = 1; i <= pl; i++) {
            if (!isdigit((unsigned char)after[i])) return false;
            v = v * 10 + after[i] - '0';
        }
        if (v < 1 || v > 65535) return false;
        w->port = v;
    }
    return true;
}

/* scheme://name[:port][/path] with name [a-z0-9.-]+ (any case), path [A-Za-z0-9/._~-]. */
static bool plain(const char *url) {
    const char *p;
    if (!strncasecmp(url, "http://", 7)) p = url + 7;
    else if (!strncasecmp(url, "https://", 8)) p = url + 8;
    else return false;
    const char *h = p;
    while (isalnum((unsigned char)*p) || *p == '.' || *p == '-') p++;
    if (p == h || p - h > 253) return false;
    if (*p == ':') {
        const char *d = ++p;
        long v = 0;
        while (isdigit((unsigned char)*p) && p - d < 6) v = v * 10 + (*p++ - '0');
        if (p == d || p - d > 5 || v < 1 || v > 65535) return false;
    }
    if (*p && *p != '/') return false;
    for (; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("/._~-", *p)) return false;
    return strlen(url) <= 2048;
}

static void check_allow(const char *csv, struct erp_allow *allow) {
    const char *why = NULL;
    if (erp_allow_parse(csv, allow, &why) != 0) {
        FUZZ_CHECK(why && *why, "an allow list refused without a reason");
        memset(allow, 0, sizeof *allow);
        return;
    }
    FUZZ_CHECK(allow->n >= 0 && allow->n <= ERP_ALLOW_MAX, "%d entries", allow->n);
    for (int i = 0; i < allow->n; i++) {
        char up[ERP_HOST_MAX + 1];
        size_t hl = strlen(allow->e[i].host);
        FUZZ_CHECK(hl > 0 && hl <= ERP_HOST_MAX, "entry %d: host of %zu bytes", i, hl);
        for (size_t k = 0; k <= hl; k++) {
            char c = allow->e[i].host[k];
            FUZZ_CHECK(!isupper((unsigned char)c), "entry %d not lower-cased: %s", i, allow->e[i].host);
            up[k] = (char)toupper((unsigned char)c);
        }
        FUZZ_CHECK(allow->e[i].port >= 0 && allow->e[i].port <= 65535, "entry %d: port %d", i, allow->e[i].port);
        FUZZ_CHECK(erp_allow_has(allow, up, allow->e[i].port ? allow->e[i].port : 8443), "entry %d not found", i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul1 = memchr(data, 0, size);
    char *url = fuzz_strndup(data, nul1 ? (size_t)(nul1 - data) : size);
    char *csv = NULL;
    struct answer ans = {.n = 0};
    if (nul1) {
        const uint8_t *rest = nul1 + 1, *end = data + size;
        const uint8_t *nul2 = memchr(rest, 0, (size_t)(end - rest));
        csv = fuzz_strndup(rest, nul2 ? (size_t)(nul2 - rest) : (size_t)(end - rest));
        if (nul2) read_answer(nul2 + 1, (size_t)(end - nul2 - 1), &ans);
    }

    struct erp_allow allow;
    check_allow(csv, &allow);

    /* erp_addr_refused on the first address */
    if (ans.n > 0) {
        bool got = erp_addr_refused((const struct sockaddr *)&ans.a[0]);
        char text[INET6_ADDRSTRLEN] = "?";
        if (ans.a[0].ss_family == AF_INET) inet_ntop(AF_INET, &((struct sockaddr_in *)&ans.a[0])->sin_addr, text, sizeof text);
        if (ans.a[0].ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ans.a[0])->sin6_addr, text, sizeof text);
        FUZZ_CHECK(got == sa_private(&ans.a[0]), "%s (family %d): erp_addr_refused says %d", text,
                   ans.a[0].ss_family, got);
    }

    /* the URL's syntax */
    struct erp_url u;
    const char *why = NULL;
    int prc = erp_url_parse(url, &u, &why);
    struct want w;
    if (prc == 0) {
        FUZZ_CHECK(expected(url, &w), "accepted \"%s\"", url);
        FUZZ_CHECK(u.https == w.https, "\"%s\": https %d", url, u.https);
        FUZZ_CHECK(!strcmp(u.host, w.host), "\"%s\": host \"%s\", expected \"%s\"", url, u.host, w.host);
        FUZZ_CHECK(u.port == w.port, "\"%s\": port %d, expected %ld", url, u.port, w.port);
        FUZZ_CHECK(!strchr(u.host, ':') || (w.bracketed && u.ip_literal), "\"%s\": a colon in the host", url);
        FUZZ_CHECK(!w.bracketed || strchr(u.host, ':'), "\"%s\": brackets around a non-IPv6 host", url);
        for (const char *c = u.host; *c; c++)
            FUZZ_CHECK(islower((unsigned char)*c) || isdigit((unsigned char)*c) || strchr(".-_:", *c),
                       "\"%s\": host character 0x%02x", url, (unsigned char)*c);
    } else {
        FUZZ_CHECK(prc == -1 && why && *why, "refused without a reason");
        FUZZ_CHECK(!plain(url), "refused the plain URL \"%s\" (%s)", url, why);
    }

    /* the check of create and PATCH */
    why = NULL;
    int crc = erp_url_check(url, &allow, resolve, &ans, &why);
    bool want_ok = false;
    if (prc == 0) {
        bool allowed = false;
        for (int i = 0; i < allow.n; i++)
            allowed = allowed || (!strcmp(allow.e[i].host, u.host) && (allow.e[i].port == 0 || allow.e[i].port == u.port));
        if (allowed) {
            want_ok = true;
        } else {
            struct sockaddr_storage addrs[16];
            int n = resolve(&ans, u.host, addrs, 16);
            want_ok = n > 0;
            for (int i = 0; i < n; i++) want_ok = want_ok && !sa_private(&addrs[i]);
        }
    }
    FUZZ_CHECK((crc == 0) == want_ok, "\"%s\" (allow \"%s\", %d answers): erp_url_check %s (%s)", url,
               csv ? csv : "", ans.n, crc == 0 ? "accepted" : "refused", why ? why : "");
    if (crc != 0) FUZZ_CHECK(why && *why, "refused without a reason");

    /* the connect-time guard on the first address */
    if (prc == 0 && ans.n > 0) {
        struct erp_connect_guard g;
        erp_connect_guard_init(&g, &allow, &u);
        bool ok = erp_url_connect_ok(&g, (const struct sockaddr *)&ans.a[0], sizeof ans.a[0]);
        FUZZ_CHECK(ok == (g.host_allowed || !sa_private(&ans.a[0])), "connect guard said %d", ok);
        FUZZ_CHECK(g.refused == !ok, "connect guard's refusal not recorded");
    }
    free(url);
    free(csv);
    return 0;
}
