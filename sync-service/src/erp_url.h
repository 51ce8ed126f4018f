/* A tenant's ERP base URL is attacker-influenced input (OWASP API7, server-side request forgery):
 * whoever can write it could make sync-service call the cloud metadata endpoint, a database or
 * an admin port on the private network, with the tenant's key attached. So:
 *
 *  - on create and PATCH (erp_url_check): http or https only; no user info, query or fragment;
 *    the host's addresses — the literal, or every address the name resolves to — must all be
 *    public: loopback, private, shared (CGNAT), link-local (169.254.0.0/16, fe80::/10, so the
 *    metadata address 169.254.169.254), unique-local (fc00::/7, so fd00::/8 and fd00:ec2::254),
 *    multicast, reserved, documentation and unspecified addresses are refused, IPv4-mapped and
 *    NAT64 IPv6 forms by their IPv4 address; the local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215,
 *    which a site's translator may map onto any IPv4 address, private ones included) entirely. A host that does not resolve is refused too.
 *    getaddrinfo's numeric forms count as what they mean: "167772161" and "0x0a.1" are 10.0.0.1.
 *  - at connect time (erp_url_connect_ok, called by the HTTP client for every address it is about
 *    to connect to): the same rule on the address actually used, so a name that resolved to a
 *    public address when the tenant was saved and to a private one now (DNS rebinding) is still
 *    refused. Redirects are never followed (httpc), so a 3xx cannot lead anywhere else.
 *  - an operator may allow hosts by configuration (ERP_ALLOWED_HOSTS: comma-separated `host` or
 *    `host:port`, case-insensitive, compared with the URL's host as written): an allowed host is
 *    exempt from the address rule (the local stack allows 127.0.0.1 and localhost so its
 *    simulator works).
 *
 * Pure functions except erp_url_check's name resolution, which goes through an injectable
 * resolver (getaddrinfo by default) so tests can make a name resolve to anything.
 * struct erp_allow is plain data, read-only after erp_allow_parse (shared by all threads). */
#ifndef ERP_URL_H
#define ERP_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define ERP_URL_MAX 2048
#define ERP_HOST_MAX 253
#define ERP_ALLOW_MAX 32

struct erp_allow {
    int n;
    struct { char host[ERP_HOST_MAX + 1]; int port; } e[ERP_ALLOW_MAX];   /* port 0: any */
};

/* Parses ERP_ALLOWED_HOSTS (NULL or "" = none). 0, or -1 with a reason. */
int erp_allow_parse(const char *csv, struct erp_allow *out, const char **why);
bool erp_allow_has(const struct erp_allow *a, const char *host, int port);

struct erp_url {
    bool https;
    char host[ERP_HOST_MAX + 1];   /* lower-cased; an IPv6 literal without its brackets */
    int port;                      /* the explicit port, or 80/443 */
    bool ip_literal;
};

/* Syntax only (scheme, authority, path). 0, or -1 with a reason. */
int erp_url_parse(const char *url, struct erp_url *out, const char **why);

/* True when an address may not be called (see above). */
bool erp_addr_refused(const struct sockaddr *sa);

/* Resolves host into up to max addresses; returns how many, or -1. */
typedef int (*erp_resolver)(void *arg, const char *host, struct sockaddr_storage *out, int max);
int erp_resolve_system(void *arg, const char *host, struct sockaddr_storage *out, int max);

/* The check of create and PATCH. Returns 0 (accepted) or -1 with a reason for the 422
 * erp_url_refused answer (a static string, safe to show the admin). resolver NULL: the system's. */
int erp_url_check(const char *url, const struct erp_allow *allow, erp_resolver resolver, void *arg, const char **why);

/* The connect-time check for one URL's calls: host as parsed from the URL. */
struct erp_connect_guard {
    const struct erp_allow *allow;
    bool host_allowed;      /* filled by erp_connect_guard_init */
    bool refused;           /* set when an address was refused */
};
void erp_connect_guard_init(struct erp_connect_guard *g, const struct erp_allow *allow, const struct erp_url *u);
/* httpc's allow_address callback; arg is the struct erp_connect_guard. */
bool erp_url_connect_ok(void *arg, const struct sockaddr *addr, socklen_t len);

#endif
