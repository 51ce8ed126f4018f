"""The tenants admin API (/api/tenants) through Nginx: create, read, list by cursor, PATCH,
DELETE; validation; admins only; the API key write-only and sealed at rest (AES-256-GCM: the
database row never holds it, no response or log line carries it); and the SSRF guard on create
and PATCH (422 erp_url_refused for loopback, link-local/metadata, private and unique-local
addresses, for getaddrinfo's numeric spellings of them, and for anything but http(s)).

Every response is checked against docs/openapi.yaml (test_customers_auth.call).
"""

import os
import re
import time

from lib import assert_envelope
from test_customers_auth import admin_session, call, new_session

_admin = {}


def admin(ctx):
    if "t" not in _admin or _admin["exp"] < time.time():
        _admin["t"] = admin_session(ctx)["access"]
        _admin["exp"] = time.time() + 600
    return _admin["t"]


def erp_port(ctx):
    return ctx.port_base + 402


def sim_url(ctx, tenant):
    return "http://127.0.0.1:%d/tenants/%s" % (erp_port(ctx), tenant)


def tenants(ctx, method, path, status=None, code=None, body=None, token=None, secrets=()):
    template = "/api/tenants/{id}" if re.match(r"^/api/tenants/[^/]+$", path.split("?")[0]) else path.split("?")[0]
    return call(ctx, method, template, status, code, path=path, body=body, token=token or admin(ctx),
                secrets=secrets)


def create(ctx, name="Store", key=None, url=None, **extra):
    key = key or "sk-" + os.urandom(12).hex()
    body = dict(name=name, erpBaseUrl=url or sim_url(ctx, "t-" + os.urandom(4).hex()), apiKey=key, **extra)
    r = tenants(ctx, "POST", "/api/tenants", 201, body=body, secrets=(key,))
    return r.json, key


def test_tenants_need_an_admin(ctx):
    tenants(ctx, "GET", "/api/tenants", 401, token="not-a-token")
    user = new_session(ctx)
    tenants(ctx, "GET", "/api/tenants", 403, "forbidden", token=user["access"])
    tenants(ctx, "POST", "/api/tenants", 403, "forbidden", token=user["access"],
            body={"name": "x", "erpBaseUrl": sim_url(ctx, "x"), "apiKey": "k"})


def test_tenant_lifecycle_and_the_key_is_write_only(ctx):
    t, key = create(ctx, name="Loja Açaí", url=sim_url(ctx, "acme") + "/")
    assert set(t) == {"id", "name", "erpBaseUrl", "isActive", "createdAt", "updatedAt"}, t
    assert t["name"] == "Loja Açaí" and t["isActive"] is True
    assert t["erpBaseUrl"] == sim_url(ctx, "acme"), "the trailing slash is dropped"
    path = "/api/tenants/" + t["id"]
    got = tenants(ctx, "GET", path, 200, secrets=(key,)).json
    assert got == t
    # PATCH one field at a time; the others stay.
    p = tenants(ctx, "PATCH", path, 200, body={"isActive": False}, secrets=(key,)).json
    assert p["isActive"] is False and p["name"] == t["name"] and p["updatedAt"] >= t["updatedAt"]
    new_key = "sk-rotated-" + os.urandom(8).hex()
    p = tenants(ctx, "PATCH", path, 200, body={"apiKey": new_key, "name": "Renamed"}, secrets=(key, new_key)).json
    assert p["name"] == "Renamed" and p["isActive"] is False
    # Sealed at rest: neither key is in the row; the stored value is the new key sealed (33 bytes
    # of format, key id, nonce and tag around a ciphertext as long as the key).
    row = ctx.psql("SELECT encode(api_key_sealed, 'hex'), length(api_key_sealed) FROM sync.tenants WHERE id = '%s'"
                   % t["id"]).out.split("|")
    assert key.encode().hex() not in row[0] and new_key.encode().hex() not in row[0]
    assert int(row[1]) == len(new_key) + 33, row
    # And never in a log line of any instance.
    for name in ctx.instances_of("sync"):
        text = ctx.logs(name)
        assert key not in text and new_key not in text, "API key in %s's log" % name
    tenants(ctx, "DELETE", path, 204)
    tenants(ctx, "GET", path, 404, "tenant_not_found")
    tenants(ctx, "PATCH", path, 404, "tenant_not_found", body={"name": "x"})
    tenants(ctx, "DELETE", path, 404, "tenant_not_found")
    tenants(ctx, "GET", "/api/tenants/not-a-uuid", 404, "tenant_not_found")


def test_tenant_bodies_are_validated(ctx):
    r = tenants(ctx, "POST", "/api/tenants", 400, "validation_failed",
                body={"name": "", "erpBaseUrl": 12, "apiKey": "has space", "isActive": "yes", "extra": 1})
    fields = r.json["error"]["details"]["fields"]
    assert set(fields) == {"name", "erpBaseUrl", "apiKey", "isActive", "extra"}, fields
    r = tenants(ctx, "POST", "/api/tenants", 400, "validation_failed", body={})
    assert set(r.json["error"]["details"]["fields"]) == {"name", "erpBaseUrl", "apiKey"}
    tenants(ctx, "POST", "/api/tenants", 400, "validation_failed",
            body={"name": "x" * 201, "erpBaseUrl": sim_url(ctx, "a"), "apiKey": "k"})
    tenants(ctx, "POST", "/api/tenants", 400, "validation_failed",
            body={"name": "x", "erpBaseUrl": sim_url(ctx, "a"), "apiKey": "k" * 513})
    t, key = create(ctx)
    tenants(ctx, "PATCH", "/api/tenants/" + t["id"], 400, "validation_failed", body={"isActive": 1})
    tenants(ctx, "DELETE", "/api/tenants/" + t["id"], 204)


def test_tenants_list_pages_by_cursor_newest_first(ctx):
    made = [create(ctx, name="Paged %d" % i)[0]["id"] for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        q = "/api/tenants?limit=2" + ("&cursor=" + cursor if cursor else "")
        page = tenants(ctx, "GET", q, 200).json
        assert len(page["data"]) <= 2 and page["limit"] == 2
        seen += [t["id"] for t in page["data"]]
        pages += 1
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)), "a tenant listed twice"
    pos = [seen.index(i) for i in made]
    assert pos == sorted(pos, reverse=True), "newest first"
    total = tenants(ctx, "GET", "/api/tenants?limit=1&include_total=true", 200).json
    assert total["total"] == len(seen)
    r = tenants(ctx, "GET", "/api/tenants?cursor=bogus", 400, "validation_failed")
    assert "cursor" in r.json["error"]["details"]["fields"]
    tenants(ctx, "GET", "/api/tenants?limit=0", 400, "validation_failed")
    for i in made:
        tenants(ctx, "DELETE", "/api/tenants/" + i, 204)


def ssrf_allowed_hosts(ctx):
    return [h.strip().lower() for h in ctx.env_of("sync-1").get("ERP_ALLOWED_HOSTS", "").split(",") if h.strip()]


def test_ssrf_urls_are_refused_on_create_and_patch(ctx):
    allowed = ssrf_allowed_hosts(ctx)
    # Loopback on a port the stack does not allow (the simulator's host:port is allowed).
    refused = ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://[fd00::1]/",
               "http://10.0.0.5/erp", "http://192.168.1.10/", "http://172.16.0.1/", "http://[::ffff:169.254.169.254]/",
               "http://167772161/erp",       # getaddrinfo reads it as 10.0.0.1
               "http://0x0a000001/erp",      # ... and this one too
               "ftp://example.com/", "file:///etc/passwd", "http://user:pw@example.com/"]
    if "127.0.0.1" not in allowed:
        refused.append("http://127.0.0.1:%d/" % (ctx.port_base + 10))   # the stack's PostgreSQL
    if "localhost" not in allowed:
        refused.append("http://localhost:%d/" % (ctx.port_base + 20))  # its Redis
    for url in refused:
        r = tenants(ctx, "POST", "/api/tenants", 422, "erp_url_refused",
                    body={"name": "evil", "erpBaseUrl": url, "apiKey": "k"})
        assert r.json["error"]["details"]["field"] == "erpBaseUrl", r.json
    assert ctx.psql("SELECT count(*) FROM sync.tenants WHERE name = 'evil'").out == "0"
    t, key = create(ctx)
    for url in refused[:3]:
        tenants(ctx, "PATCH", "/api/tenants/" + t["id"], 422, "erp_url_refused", body={"erpBaseUrl": url})
    assert tenants(ctx, "GET", "/api/tenants/" + t["id"], 200).json["erpBaseUrl"] == t["erpBaseUrl"]
    tenants(ctx, "DELETE", "/api/tenants/" + t["id"], 204)
