"""customers-service end-to-end tests: the users resource, its cache, and the internal API.

- Authorisation: admins see and change everyone; a user sees and changes only themself, and every
  other user looks exactly like a user that does not exist (404 user_not_found, no BOLA oracle).
- Privilege: role/permissions in a non-admin's update are refused as a whole (403
  forbidden_fields) and nothing changes — checked by reading back and by a fresh login's claims.
- Soft delete: sessions revoked, login refused, reads 404, user_name/e-mail stay reserved.
- Cache: reads by id / by-name go through Redis; /metrics of the instance (direct, never through
  Nginx) counts hits, and an update through one instance is visible at once through the other.
- Internal bulk upsert (the legacy import's sink): only on the instances, only with a service
  token; idempotent, last-writer-wins by updated_at, newest duplicate in a batch wins, soft-deletes,
  per-row errors, a 5000-row cap, and it never touches a local user's password or role.
"""

import datetime
import json
import os
import re
import time
import urllib.parse

from lib import assert_envelope, new_cid, parse_prometheus
import openapi_check as oc
from test_customers_auth import (admin_session, assert_revoked, call, jwt_parts, login, new_session, register, uniq)
from test_customers_tokens import service_token


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _get(ctx, token, uid, status=200, code=None, **kw):
    return call(ctx, "GET", "/api/users/{id}", status, code, path="/api/users/" + uid, token=token, **kw)


def _by_name(ctx, token, user_name, status=200, code=None, **kw):
    return call(ctx, "GET", "/api/users/by-name/{user_name}", status, code,
                path="/api/users/by-name/" + urllib.parse.quote(user_name, safe=""), token=token, **kw)


def _put(ctx, token, uid, body, status=200, code=None, **kw):
    return call(ctx, "PUT", "/api/users/{id}", status, code, path="/api/users/" + uid, token=token, body=body, **kw)


def _delete(ctx, token, uid, status=204, code=None):
    return call(ctx, "DELETE", "/api/users/{id}", status, code, path="/api/users/" + uid, token=token)


def _list(ctx, token, query, status=200, code=None):
    return call(ctx, "GET", "/api/users", status, code, path="/api/users?" + urllib.parse.urlencode(query), token=token)


def _db_user(ctx, uid):
    """The stored row (superuser psql), bypassing the service and its cache: name, role,
    permissions, deleted, source and a digest of the password hash (never the hash itself)."""
    assert UUID_RE.match(uid), uid
    out = ctx.psql("SELECT json_build_object('name', name, 'role', role, 'permissions', permissions, "
                   "'deleted', deleted, 'source', source, 'pw', md5(coalesce(password_hash, ''))) "
                   "FROM customers.users WHERE id = '%s'" % uid).out
    return json.loads(out) if out else None


def _comparable(resp):
    j = dict(resp.json["error"])
    j.pop("correlation_id", None)
    return j


# ------------------------------------------------------------------------------------ list
def test_admin_lists_users_with_pagination_search_and_deleted(ctx):
    admin = admin_session(ctx)["access"]
    tag = os.urandom(4).hex()
    users = [register(ctx, user_name="e2e_ls%s_%d" % (tag, i)) for i in range(2)]
    users.append(register(ctx, name="Person Nm%s" % tag))          # found by name only
    users.append(register(ctx, user_name="e2e_ls%s_x" % tag, name="Person Nm%s" % tag))
    # search on user_name/email (case-insensitive), pages in creation order
    query = {"search": "LS" + tag.upper(), "limit": 2, "page": 1}
    p1 = _list(ctx, admin, query).json
    assert (p1["page"], p1["limit"], p1["total"]) == (1, 2, 3), p1
    ids = [u["id"] for u in p1["data"]]
    query["page"] = 2
    p2 = _list(ctx, admin, query).json
    assert (p2["page"], p2["total"]) == (2, 3) and len(p2["data"]) == 1, p2
    ids += [u["id"] for u in p2["data"]]
    assert ids == [users[0]["id"], users[1]["id"], users[3]["id"]], "order is not creation order: %s" % ids
    query["page"] = 3
    p3 = _list(ctx, admin, query).json
    assert p3["data"] == [] and p3["total"] == 3, p3
    # search on name
    r = _list(ctx, admin, {"search": "nm" + tag}).json
    assert sorted(u["id"] for u in r["data"]) == sorted([users[2]["id"], users[3]["id"]]) and r["total"] == 2, r
    assert r["page"] == 1 and r["limit"] == 20, "defaults page=1, limit=20: %r" % {k: r[k] for k in ("page", "limit")}
    # limits
    for bad in ("0", "101", "-1", "abc"):
        call(ctx, "GET", "/api/users", 400, "validation_failed", path="/api/users?limit=" + bad, token=admin)
    assert _list(ctx, admin, {"search": tag, "limit": 100}).json["limit"] == 100
    # deleted users only with include_deleted=true
    _delete(ctx, admin, users[1]["id"])
    r = _list(ctx, admin, {"search": "ls" + tag}).json
    assert r["total"] == 2 and users[1]["id"] not in [u["id"] for u in r["data"]], r
    r = _list(ctx, admin, {"search": "ls" + tag, "include_deleted": "true"}).json
    assert r["total"] == 3, r
    gone = [u for u in r["data"] if u["id"] == users[1]["id"]]
    assert gone and gone[0]["deleted"] is True and gone[0]["deleted_at"], r
    assert all(u["deleted"] is False for u in r["data"] if u["id"] != users[1]["id"]), r


def test_non_admin_cannot_list_users(ctx):
    s = new_session(ctx)
    _list(ctx, s["access"], {"limit": 5}, 403, "forbidden")
    call(ctx, "GET", "/api/users", 401, "missing_token")


# ------------------------------------------------------------------------------------ read
def test_users_read_themselves_but_others_look_nonexistent(ctx):
    a, b = new_session(ctx), new_session(ctx)
    admin = admin_session(ctx)["access"]
    me = _get(ctx, a["access"], a["id"]).json
    for k in ("id", "user_name", "email", "name", "role", "created_at"):
        assert me[k] == a["user"][k], "GET self: %s %r, registered %r" % (k, me[k], a["user"][k])
    assert _by_name(ctx, a["access"], a["user_name"]).json["id"] == a["id"]
    other = _get(ctx, a["access"], b["id"], 404, "user_not_found")
    nobody = _get(ctx, a["access"], "3f1c7a1e-6f55-4c09-9b7e-" + os.urandom(6).hex(), 404, "user_not_found")
    assert _comparable(other) == _comparable(nobody), "another user's 404 differs from a missing user's"
    _by_name(ctx, a["access"], b["user_name"], 404, "user_not_found")
    assert b["user_name"] not in other.body.decode() and b["email"] not in other.body.decode()
    # admins read anyone
    assert _get(ctx, admin, b["id"]).json["user_name"] == b["user_name"]
    assert _by_name(ctx, admin, b["user_name"]).json["id"] == b["id"]
    for bad in ("not-a-uuid", "1", "%27%20OR%201%3D1--"):
        _get(ctx, admin, bad, 404)
    _get(ctx, None, a["id"], 401, "missing_token")


# ------------------------------------------------------------------------------------ update
def test_user_updates_own_name_and_email(ctx):
    s = new_session(ctx)
    new_email = "moved-%s@example.test" % os.urandom(5).hex()
    u = _put(ctx, s["access"], s["id"], {"name": "Grace Hopper", "email": new_email}).json
    assert u["name"] == "Grace Hopper" and u["email"].lower() == new_email, u
    assert u["updated_at"] >= u["created_at"] and u["updated_at"] != s["user"]["updated_at"], u
    assert _get(ctx, s["access"], s["id"]).json["name"] == "Grace Hopper"
    assert call(ctx, "GET", "/api/auth/me", 200, token=s["access"]).json["email"].lower() == new_email
    login(ctx, new_email, s["password"])
    r = _put(ctx, s["access"], s["id"], {"email": "nope"}, 400, "validation_failed")
    assert "email" in r.json["error"]["details"]["fields"], r.json
    r = _put(ctx, s["access"], s["id"], {"nickname": "x"}, 400, "validation_failed")
    assert "nickname" in r.json["error"]["details"]["fields"], r.json
    assert _get(ctx, s["access"], s["id"]).json["email"].lower() == new_email


def test_own_password_change_needs_the_current_password(ctx):
    s = new_session(ctx)
    new_pw = "New-pass-" + os.urandom(6).hex()
    _put(ctx, s["access"], s["id"], {"password": new_pw}, 400, "validation_failed")
    _put(ctx, s["access"], s["id"], {"password": new_pw, "current_password": "Wrong-" + os.urandom(6).hex()},
         403, "current_password_invalid")
    r = _put(ctx, s["access"], s["id"], {"password": "short", "current_password": s["password"]}, 400, "validation_failed")
    assert "password" in r.json["error"]["details"]["fields"], r.json
    # refused attempts changed nothing
    login(ctx, s["user_name"], s["password"])
    _put(ctx, s["access"], s["id"], {"password": new_pw, "current_password": s["password"]}, 200, secrets=[new_pw])
    login(ctx, s["user_name"], new_pw)
    call(ctx, "POST", "/api/auth/login", 401, "invalid_credentials", body={"login": s["user_name"], "password": s["password"]})


def test_non_admin_cannot_change_role_or_permissions(ctx):
    s = new_session(ctx)
    for body in ({"role": "admin"}, {"permissions": ["users:write"]}, {"name": "Sneaky", "role": "admin"},
                 {"name": "Sneaky", "permissions": []}, {"role": "user"}):
        _put(ctx, s["access"], s["id"], body, 403, "forbidden_fields")
    u = _get(ctx, s["access"], s["id"]).json
    assert (u["role"], u["permissions"], u["name"]) == ("user", [], s["name"]), "a refused update changed %r" % u
    db = _db_user(ctx, s["id"])
    assert (db["role"], db["permissions"], db["name"]) == ("user", [], s["name"]), "a refused update changed the row %r" % db
    claims = jwt_parts(login(ctx, s["user_name"], s["password"])["access_token"])[1]
    assert claims["role"] == "user" and claims["permissions"] == [], claims
    _list(ctx, s["access"], {"limit": 1}, 403, "forbidden")


def test_admin_changes_role_and_permissions(ctx):
    s = new_session(ctx)
    admin = admin_session(ctx)["access"]
    u = _put(ctx, admin, s["id"], {"role": "admin", "permissions": ["reports:read"]}).json
    assert u["role"] == "admin" and u["permissions"] == ["reports:read"], u
    assert _get(ctx, admin, s["id"]).json["role"] == "admin"
    t = login(ctx, s["user_name"], s["password"])["access_token"]
    claims = jwt_parts(t)[1]
    assert claims["role"] == "admin" and claims["permissions"] == ["reports:read"], claims
    _list(ctx, t, {"limit": 1})
    r = _put(ctx, admin, s["id"], {"role": "superuser"}, 400, "validation_failed")
    assert "role" in r.json["error"]["details"]["fields"], r.json
    assert _put(ctx, admin, s["id"], {"role": "user", "permissions": []}).json["role"] == "user"
    t = login(ctx, s["user_name"], s["password"])["access_token"]
    _list(ctx, t, {"limit": 1}, 403, "forbidden")


def test_users_cannot_update_or_delete_each_other(ctx):
    a, b = new_session(ctx), new_session(ctx)
    _put(ctx, a["access"], b["id"], {"name": "Hijacked"}, 404, "user_not_found")
    _put(ctx, a["access"], b["id"], {"password": "Hijacked-123", "current_password": a["password"]}, 404, "user_not_found")
    _delete(ctx, a["access"], b["id"], 404, "user_not_found")
    u = call(ctx, "GET", "/api/auth/me", 200, token=b["access"]).json
    assert u["name"] == b["name"] and u["deleted"] is False, u


# ------------------------------------------------------------------------------------ delete
def test_deleting_oneself_revokes_everything_and_reserves_the_names(ctx):
    s = new_session(ctx)
    admin = admin_session(ctx)["access"]
    for inst in ctx.instances_of("customers"):
        call(ctx, "GET", "/api/auth/me", 200, token=s["access"], instance=inst)
    since = time.monotonic()
    _delete(ctx, s["access"], s["id"])
    assert_revoked(ctx, s["access"], since)
    call(ctx, "POST", "/api/auth/login", 401, "invalid_credentials", body={"login": s["user_name"], "password": s["password"]})
    _get(ctx, admin, s["id"], 404, "user_not_found")
    _by_name(ctx, admin, s["user_name"], 404, "user_not_found")
    call(ctx, "POST", "/api/auth/register", 409, "user_name_taken",
         body={"user_name": s["user_name"], "email": "x-%s@example.test" % os.urandom(4).hex(), "name": "Again",
               "password": "Again-pass-123"})
    call(ctx, "POST", "/api/auth/register", 409, "email_taken",
         body={"user_name": uniq("again"), "email": s["email"], "name": "Again", "password": "Again-pass-123"})
    _delete(ctx, admin, s["id"], 404, "user_not_found")
    r = _list(ctx, admin, {"search": s["user_name"], "include_deleted": "true"}).json
    assert [u["deleted"] for u in r["data"]] == [True], r


def test_admin_deletes_a_user(ctx):
    s = new_session(ctx)
    admin = admin_session(ctx)["access"]
    since = time.monotonic()
    _delete(ctx, admin, s["id"])
    assert_revoked(ctx, s["access"], since)
    _get(ctx, admin, s["id"], 404, "user_not_found")


# ------------------------------------------------------------------------------------ create
def test_admin_creates_users_and_others_cannot(ctx):
    admin = admin_session(ctx)["access"]
    s = new_session(ctx)
    name = uniq("made")
    pw = "Made-pass-" + os.urandom(5).hex()
    body = {"user_name": name, "email": name.replace("_", "-") + "@example.test", "name": "Made By Admin",
            "password": pw, "role": "user", "permissions": ["reports:read"]}
    u = call(ctx, "POST", "/api/users", 201, body=body, token=admin).json
    assert (u["user_name"], u["role"], u["permissions"], u["source"]) == (name, "user", ["reports:read"], "local"), u
    claims = jwt_parts(login(ctx, name, pw)["access_token"])[1]
    assert claims["sub"] == u["id"] and claims["permissions"] == ["reports:read"], claims
    call(ctx, "POST", "/api/users", 409, "user_name_taken", body=dict(body, email="o-%s@example.test" % os.urandom(4).hex()),
         token=admin)
    other = dict(body, user_name=uniq("made"))
    call(ctx, "POST", "/api/users", 403, "forbidden", body=other, token=s["access"])
    call(ctx, "POST", "/api/users", 401, "missing_token", body=other)
    call(ctx, "POST", "/api/users", 400, "validation_failed", body=dict(other, user_name="no spaces"), token=admin)
    # the refused creations left the name free
    call(ctx, "POST", "/api/users", 201, body=dict(other, email="o-%s@example.test" % os.urandom(4).hex()), token=admin)


# ------------------------------------------------------------------------------------ cache
def _cache_counts(ctx, inst):
    r = call(ctx, "GET", "/metrics", 200, instance=inst)
    samples, _ = parse_prometheus(r.body.decode())
    out = {"hit": 0.0, "miss": 0.0}
    for name, labels, value in samples:
        if name == "cache_requests_total" and labels.get("cache") == "user" and labels.get("result") in out:
            out[labels["result"]] += value
    return out


def test_user_reads_are_cached_and_updates_invalidate(ctx):
    s = new_session(ctx)
    inst, other_inst = ctx.instances_of("customers")[:2]
    _get(ctx, s["access"], s["id"], instance=inst)
    before = _cache_counts(ctx, inst)
    _get(ctx, s["access"], s["id"], instance=inst)
    after = _cache_counts(ctx, inst)
    assert after["hit"] >= before["hit"] + 1, "second read by id was not a cache hit: %r -> %r" % (before, after)
    _by_name(ctx, s["access"], s["user_name"], instance=inst)
    before = _cache_counts(ctx, inst)
    _by_name(ctx, s["access"], s["user_name"], instance=inst)
    after = _cache_counts(ctx, inst)
    assert after["hit"] >= before["hit"] + 1, "second read by name was not a cache hit: %r -> %r" % (before, after)
    # an update through the other instance is visible at once through this one, by id and by name
    for i in range(3):
        new_name = "Renamed %d %s" % (i, os.urandom(3).hex())
        _put(ctx, s["access"], s["id"], {"name": new_name}, instance=other_inst)
        assert _get(ctx, s["access"], s["id"], instance=inst).json["name"] == new_name, "stale cached read by id"
        assert _by_name(ctx, s["access"], s["user_name"], instance=inst).json["name"] == new_name, "stale read by name"
    # a deletion too
    _delete(ctx, s["access"], s["id"])
    admin = admin_session(ctx)["access"]
    for i in ctx.instances_of("customers"):
        _get(ctx, admin, s["id"], 404, "user_not_found", instance=i)
        _by_name(ctx, admin, s["user_name"], 404, "user_not_found", instance=i)


# ------------------------------------------------------------------------------------ internal
def _ts(days_ago, seconds=0):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def _legacy_id():
    return int.from_bytes(os.urandom(4), "big") % 2000000000 + 100000000


def _row(user_name, legacy_id, updated_at, **kw):
    r = {"user_name": user_name, "email": user_name.replace("_", "-") + "@legacy.test", "name": "Legacy " + user_name,
         "legacy_id": legacy_id, "deleted": False, "updated_at": updated_at}
    r.update(kw)
    return r


def _bulk(ctx, token, rows, status=200, code=None, instance="customers-1"):
    return call(ctx, "POST", "/internal/users/bulk-upsert", status, code, body={"users": rows}, token=token,
                instance=instance)


def _counts(resp):
    j = resp.json
    return {k: j[k] for k in ("inserted", "updated", "deleted", "unchanged")}


def _internal_user(ctx, token, uid, status=200, instance="customers-1"):
    return call(ctx, "GET", "/internal/users/{id}", status, path="/internal/users/" + uid, token=token, instance=instance)


def test_internal_api_is_not_public_and_needs_a_service_token(ctx):
    s = new_session(ctx)
    tok = service_token(ctx)
    row = _row(uniq("lg"), _legacy_id(), _ts(5))
    for path in ("/internal/users/bulk-upsert", "/internal/users/" + s["id"]):
        cid = new_cid("h8")
        r = ctx.http("POST" if path.endswith("upsert") else "GET", path, body={"users": [row]} if path.endswith("upsert") else None,
                     headers={"X-Correlation-ID": cid, "Authorization": "Bearer " + tok})
        assert_envelope(r, 404, cid)
        oc.check_schema(r.json, "#/components/schemas/Error")
    _bulk(ctx, None, [row], 401, "missing_token")
    _bulk(ctx, s["access"], [row], 403)
    _internal_user(ctx, s["access"], s["id"], 403)
    admin = admin_session(ctx)["access"]
    _bulk(ctx, admin, [row], 403)            # an admin is still a user, not a service
    # nothing was imported by the refused calls
    _by_name(ctx, admin, row["user_name"], 404, "user_not_found")
    j = _internal_user(ctx, tok, s["id"]).json
    assert j == {"id": s["id"], "deleted": False, "role": "user"}, j
    _internal_user(ctx, tok, "3f1c7a1e-6f55-4c09-9b7e-" + os.urandom(6).hex(), 404)


def test_bulk_upsert_is_idempotent_and_last_writer_wins(ctx):
    tok = service_token(ctx)
    admin = admin_session(ctx)["access"]
    tag = os.urandom(3).hex()
    rows = [_row("e2e_bu%s_%d" % (tag, i), _legacy_id(), _ts(10)) for i in range(3)]
    r = _bulk(ctx, tok, rows)
    assert _counts(r) == {"inserted": 3, "updated": 0, "deleted": 0, "unchanged": 0} and r.json["invalid"] == [], r.json
    r = _bulk(ctx, tok, rows, instance="customers-2")
    assert _counts(r) == {"inserted": 0, "updated": 0, "deleted": 0, "unchanged": 3} and r.json["invalid"] == [], r.json
    u0 = _by_name(ctx, admin, rows[0]["user_name"]).json
    assert (u0["source"], u0["legacy_id"], u0["name"], u0["role"]) == ("legacy", rows[0]["legacy_id"], rows[0]["name"], "user"), u0
    # an older version does not overwrite
    r = _bulk(ctx, tok, [dict(rows[0], name="Stale name", updated_at=_ts(11))])
    assert r.json["updated"] == 0 and r.json["inserted"] == 0, r.json
    assert _get(ctx, admin, u0["id"]).json["name"] == rows[0]["name"], "an older row overwrote a newer one"
    assert _db_user(ctx, u0["id"])["name"] == rows[0]["name"], "an older row overwrote a newer one in the database"
    # a newer version does
    r = _bulk(ctx, tok, [dict(rows[0], name="Fresh name", updated_at=_ts(9))])
    assert _counts(r) == {"inserted": 0, "updated": 1, "deleted": 0, "unchanged": 0}, r.json
    assert _get(ctx, admin, u0["id"]).json["name"] == "Fresh name"
    assert _db_user(ctx, u0["id"])["name"] == "Fresh name"
    # duplicates within one batch: the newest wins wherever it sits
    dup = _row("e2e_bd%s" % tag, _legacy_id(), _ts(8))
    r = _bulk(ctx, tok, [dict(dup, name="Newest", updated_at=_ts(7)), dup, dict(dup, name="Oldest", updated_at=_ts(12))])
    assert r.json["inserted"] == 1 and r.json["updated"] == 0, r.json
    ud = _by_name(ctx, admin, dup["user_name"]).json
    assert ud["name"] == "Newest" and _db_user(ctx, ud["id"])["name"] == "Newest", ud
    # deleted: true soft-deletes
    r = _bulk(ctx, tok, [dict(rows[1], deleted=True, updated_at=_ts(6))])
    assert _counts(r) == {"inserted": 0, "updated": 0, "deleted": 1, "unchanged": 0}, r.json
    u1 = _list(ctx, admin, {"search": rows[1]["user_name"], "include_deleted": "true"}).json["data"]
    assert len(u1) == 1 and u1[0]["deleted"] is True, u1
    assert _internal_user(ctx, tok, u1[0]["id"]).json["deleted"] is True
    _get(ctx, admin, u1[0]["id"], 404, "user_not_found")
    assert _db_user(ctx, u1[0]["id"])["deleted"] is True


def test_bulk_upsert_reports_invalid_rows_and_caps_the_batch(ctx):
    tok = service_token(ctx)
    admin = admin_session(ctx)["access"]
    tag = os.urandom(3).hex()
    good = [_row("e2e_bv%s_%d" % (tag, i), _legacy_id(), _ts(3)) for i in range(2)]
    bad_rows = [
        _row("bad name %s" % tag, _legacy_id(), _ts(3)),
        {k: v for k, v in _row("e2e_bw%s_1" % tag, _legacy_id(), _ts(3)).items() if k != "updated_at"},
        _row("e2e_bw%s_2" % tag, "not-a-number", _ts(3)),
        _row("e2e_bw%s_3" % tag, _legacy_id(), "yesterday"),
        "not an object",
    ]
    batch = [good[0]] + bad_rows + [good[1]]
    r = _bulk(ctx, tok, batch)
    assert r.json["inserted"] == 2, r.json
    invalid = r.json["invalid"]
    assert sorted(e["index"] for e in invalid) == [1, 2, 3, 4, 5], invalid
    assert all(isinstance(e["reason"], str) and e["reason"] for e in invalid), invalid
    for g in good:
        _by_name(ctx, admin, g["user_name"])
    for name in ("e2e_bw%s_1" % tag, "e2e_bw%s_2" % tag, "e2e_bw%s_3" % tag):
        _by_name(ctx, admin, name, 404, "user_not_found")
    # more than 5000 rows is refused as a whole
    big = [_row("e2e_bb%s_%d" % (tag, i), _legacy_id(), _ts(3)) for i in range(5001)]
    r = _bulk(ctx, tok, big, status=None)
    assert r.status in (400, 413), "5001 rows -> %d %r" % (r.status, r.body[:300])
    _by_name(ctx, admin, big[0]["user_name"], 404, "user_not_found")
    # exactly 5000 is accepted
    r = _bulk(ctx, tok, big[:5000])
    assert r.json["inserted"] == 5000, r.json


def test_bulk_upsert_never_touches_a_local_users_password_or_role(ctx):
    tok = service_token(ctx)
    admin = admin_session(ctx)["access"]
    s = new_session(ctx)
    _put(ctx, admin, s["id"], {"role": "admin"})
    before = _db_user(ctx, s["id"])
    for user_name in (s["user_name"], s["user_name"].upper()):
        # updated_at is taken now, after the local user's last update: newer than the local row
        r = _bulk(ctx, tok, [_row(user_name, _legacy_id(), _ts(0), name="Imported Over", deleted=False)])
        assert r.json["inserted"] == 0, "a second user with the same (case-insensitive) user_name was created: %r" % r.json
    j = _internal_user(ctx, tok, s["id"]).json
    assert j["role"] == "admin" and j["deleted"] is False, j
    after = _db_user(ctx, s["id"])
    assert (after["pw"], after["role"], after["deleted"]) == (before["pw"], "admin", False), \
        "the import touched the local user's password hash, role or deletion"
    t = login(ctx, s["user_name"], s["password"])        # the local password still works
    assert jwt_parts(t["access_token"])[1]["role"] == "admin"
    u = _get(ctx, admin, s["id"]).json
    assert u["source"] == "local" and u["role"] == "admin", u
