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
  per-row errors, a 5000-row cap, and it never touches a local user's password or role. The same
  batch as text/tab-separated-values (what sync-service sends): COPY text escapes and null fields,
  per-line reasons by line number, the same cap and answers; other media types get 415.
"""

import datetime
import json
import os
import re
import time
import urllib.parse

from lib import REPO, assert_envelope, new_cid, parse_prometheus
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
    # search: a prefix of user_name/email (case-insensitive); the deprecated page= in creation order
    query = {"search": "E2E_LS" + tag.upper(), "limit": 2, "page": 1}
    p1 = _list(ctx, admin, query).json
    assert (p1["page"], p1["limit"], p1["total"], p1["has_more"]) == (1, 2, 3, True), p1
    ids = [u["id"] for u in p1["data"]]
    query["page"] = 2
    p2 = _list(ctx, admin, query).json
    assert (p2["page"], p2["total"]) == (2, 3) and len(p2["data"]) == 1, p2
    ids += [u["id"] for u in p2["data"]]
    assert ids == [users[0]["id"], users[1]["id"], users[3]["id"]], "order is not creation order: %s" % ids
    query["page"] = 3
    p3 = _list(ctx, admin, query).json
    assert p3["data"] == [] and p3["total"] == 3, p3
    # the same search by cursor: newest first, pages of 2, no total unless asked for
    c1 = _list(ctx, admin, {"search": "E2E_LS" + tag.upper(), "limit": 2}).json
    assert c1["has_more"] is True and c1["next_cursor"] and "total" not in c1 and "page" not in c1, c1
    c2 = _list(ctx, admin, {"search": "E2E_LS" + tag.upper(), "limit": 2, "cursor": c1["next_cursor"],
                            "include_total": "true"}).json
    assert c2["has_more"] is False and c2["next_cursor"] is None and c2["total"] == 3, c2
    newest_first = [u["id"] for u in c1["data"] + c2["data"]]
    assert newest_first == [users[3]["id"], users[1]["id"], users[0]["id"]], "not newest first: %s" % newest_first
    # the name is not searched (no index on it: see db/customers/006_search_without_name.sql)
    r = _list(ctx, admin, {"search": "person nm" + tag, "include_total": "true"}).json
    assert r["data"] == [] and r["total"] == 0, r
    r = _list(ctx, admin, {"search": users[2]["user_name"]}).json
    assert [u["id"] for u in r["data"]] == [users[2]["id"]], r
    assert r["limit"] == 20 and r["has_more"] is False, "default limit=20: %r" % r
    # limits
    for bad in ("0", "101", "-1", "abc", "+2", ""):
        call(ctx, "GET", "/api/users", 400, "validation_failed", path="/api/users?limit=" + bad, token=admin)
    assert _list(ctx, admin, {"search": tag, "limit": 100}).json["limit"] == 100
    # deleted users only with include_deleted=true
    _delete(ctx, admin, users[1]["id"])
    r = _list(ctx, admin, {"search": "e2e_ls" + tag, "include_total": "true"}).json
    assert r["total"] == 2 and users[1]["id"] not in [u["id"] for u in r["data"]], r
    r = _list(ctx, admin, {"search": "e2e_ls" + tag, "include_deleted": "true", "include_total": "true"}).json
    assert r["total"] == 3, r
    gone = [u for u in r["data"] if u["id"] == users[1]["id"]]
    assert gone and gone[0]["deleted"] is True and gone[0]["deleted_at"], r
    assert all(u["deleted"] is False for u in r["data"] if u["id"] != users[1]["id"]), r
    call(ctx, "GET", "/api/users", 400, "validation_failed", path="/api/users?include_deleted=yes", token=admin)


def test_a_search_is_a_literal_prefix_of_user_name_or_email(ctx):
    """A search is a case-insensitive prefix of the user name or the e-mail (LIKE's % and _ are
    plain characters; the name is not searched); 1 to 100 bytes without control characters."""
    admin = admin_session(ctx)["access"]
    tag = os.urandom(4).hex()
    u = register(ctx, user_name="e2e_sr%s" % tag, email="Mail.%s@example.test" % tag, name="Zoë Srch%s" % tag)
    for bad in ("ab\ncd" + tag, "ab\x85cd", "x" * 101):
        r = _list(ctx, admin, {"search": bad}, 400, "validation_failed")
        assert "search" in r.json["error"]["details"]["fields"], r.json
    for good in ("E2E_SR" + tag, "e2e_sr" + tag[:3], "mail." + tag, "MAIL.%s@EXAMPLE.TEST" % tag):
        ids = [x["id"] for x in _list(ctx, admin, {"search": good, "limit": 100}).json["data"]]
        assert u["id"] in ids, (good, ids)
    # not a prefix: the middle of a value, % and _ as wildcards
    for miss in ("sr" + tag, tag + "@example", "zoë srch" + tag, "e2e%sr" + tag, "e2e_s_" + tag, "%" + tag):
        assert _list(ctx, admin, {"search": miss}).json["data"] == [], miss
    # an empty search is no filter; one character is a search
    assert _list(ctx, admin, {"search": "", "limit": 1}).json["data"]
    assert _list(ctx, admin, {"search": "e", "limit": 1}).json["data"]


def test_the_search_is_answered_from_the_lower_indexes(ctx):
    """users_repo.c's USERS_SEARCH_MATCH must use the expressions of the lower() indexes on user
    name and e-mail, or a search reads the whole table. Checked with PostgreSQL's planner: with
    sequential and plain index scans off, the filter is a bitmap over the two indexes."""
    src = open(os.path.join(REPO, "customers-service", "src", "users_repo.c")).read()
    m = re.search(r'#define USERS_SEARCH_MATCH\s*"((?:[^"\\]|\\.)*)"', src)
    assert m, "USERS_SEARCH_MATCH not found in users_repo.c"
    cond = m.group(1).encode().decode("unicode_escape").replace("lower($3)", "'abc%'")
    plan = ctx.psql("SET enable_seqscan = off; SET enable_indexscan = off; "
                    "EXPLAIN SELECT u.id FROM customers.users u WHERE %s" % cond).out
    for index in ("users_user_name_lower_key", "users_email_lower_key"):
        assert index in plan, plan
    assert "Seq Scan" not in plan, plan


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


def test_wrong_current_passwords_lock_the_account_like_failed_logins(ctx):
    """A stolen access token must not become a password oracle: wrong current_password guesses
    count with failed logins (one counter per account), so after 5 of them the change is refused
    with 429 and Retry-After even with the right current password, and so is a login."""
    s = new_session(ctx)
    before = _db_user(ctx, s["id"])["pw"]
    new_pw = "New-pass-" + os.urandom(6).hex()
    for i in range(5):
        _put(ctx, s["access"], s["id"], {"password": new_pw, "current_password": "Wrong-%d-%s" % (i, os.urandom(4).hex())},
             403, "current_password_invalid")
    for current, kind in ((s["password"], "right"), ("Wrong-again-" + os.urandom(4).hex(), "wrong")):
        r = call(ctx, "PUT", "/api/users/{id}", path="/api/users/" + s["id"], token=s["access"],
                 body={"password": new_pw, "current_password": current})
        assert r.status == 429 and r.json["error"]["code"] == "too_many_attempts", \
            "after 5 wrong current passwords, the %s one -> %d %r" % (kind, r.status, r.body[:160])
        ra = r.headers.get("Retry-After", "")
        assert ra.isdigit() and 1 <= int(ra) <= 15 * 60, "Retry-After %r" % ra
        assert r.json["error"]["details"]["retry_after"] == int(ra), r.json
    assert _db_user(ctx, s["id"])["pw"] == before, "a password change went through during the lockout"
    # the same counter locks the login (any identifier of the account)
    r = call(ctx, "POST", "/api/auth/login", 429, "too_many_attempts", body={"login": s["email"], "password": s["password"]})
    assert r.headers.get("Retry-After", "").isdigit(), r.headers
    # other fields of the same user still change: only password guessing is throttled
    _put(ctx, s["access"], s["id"], {"name": "Still Editable"})
    # another account is unaffected
    o = new_session(ctx)
    _put(ctx, o["access"], o["id"], {"password": new_pw, "current_password": o["password"]}, 200, secrets=[new_pw])
    login(ctx, o["user_name"], new_pw)


def test_a_right_current_password_resets_the_failure_count(ctx):
    """Like a successful login: 4 wrong guesses, then the right one, leave a fresh count."""
    s = new_session(ctx)
    pw, access = s["password"], s["access"]
    for round_ in range(2):
        for i in range(4):
            _put(ctx, access, s["id"], {"password": "Next-%d-%s" % (i, os.urandom(4).hex()),
                                             "current_password": "Wrong-%d-%s" % (i, os.urandom(4).hex())},
                 403, "current_password_invalid")
        new_pw = "Round-%d-%s" % (round_, os.urandom(6).hex())
        _put(ctx, access, s["id"], {"password": new_pw, "current_password": pw}, 200, secrets=[new_pw])
        pw = new_pw
        access = login(ctx, s["user_name"], pw)["access_token"]    # the change revoked the sessions


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


# ------------------------------------------------------------------------------------ internal: TSV form
TSV = "text/tab-separated-values"


def _tsv_field(v):
    """One field in PostgreSQL COPY text form: None -> \\N; backslash, TAB, LF and CR escaped."""
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _tsv_line(row):
    """A _row() as one TSV line (bytes, without its LF)."""
    return "\t".join(_tsv_field(row[k]) for k in ("user_name", "email", "name", "legacy_id", "deleted",
                                                   "updated_at")).encode()


def _tsv(rows, final_lf=True):
    """Rows (dicts, or bytes taken as a ready-made line) -> TSV body."""
    body = b"\n".join(r if isinstance(r, bytes) else _tsv_line(r) for r in rows)
    return body + b"\n" if final_lf and rows else body


def _bulk_tsv(ctx, token, raw, status=200, code=None, instance="customers-1", content_type=TSV):
    return call(ctx, "POST", "/internal/users/bulk-upsert", status, code, raw=raw, token=token, instance=instance,
                headers={"Content-Type": content_type})


def _db_legacy(ctx, user_name):
    """The stored import fields of a user by user_name (superuser psql, JSON so TABs/newlines in the
    name survive), or None."""
    assert re.match(r"^[a-z0-9_]+$", user_name), user_name
    out = ctx.psql("SELECT json_build_object('email', email, 'name', name, 'legacy_id', legacy_id, 'deleted', deleted, "
                   "'source', source, 'role', role, 'updated_ms', (extract(epoch FROM source_updated_at) * 1000)::bigint) "
                   "FROM customers.users WHERE lower(user_name) = '%s'" % user_name).out
    return json.loads(out) if out else None


def _ms(ts):
    return int(datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)


def test_bulk_upsert_tsv_imports_escaped_text_idempotently(ctx):
    tok = service_token(ctx)
    admin = admin_session(ctx)["access"]
    tag = os.urandom(3).hex()
    rows = [
        _row("e2e_tu%s_0" % tag, _legacy_id(), _ts(10), name="Ada\tLovelace\nsecond line \\ back\\slash\r end"),
        _row("e2e_tu%s_1" % tag, _legacy_id(), _ts(10), email=None, name="Zoë Ünïcode ✓ 𝄞"),
        _row("e2e_tu%s_2" % tag, 9223372036854775807, _ts(10), name="N"),
    ]
    body = _tsv(rows)
    assert b"\\t" in body and b"\\n" in body and b"\\\\" in body and b"\\r" in body and b"\\N" in body, body
    assert body.count(b"\t") == 5 * len(rows) and body.count(b"\n") == len(rows), body
    r = _bulk_tsv(ctx, tok, body)
    assert _counts(r) == {"inserted": 3, "updated": 0, "deleted": 0, "unchanged": 0} and r.json["invalid"] == [], r.json
    ids = []
    for row in rows:
        u = _by_name(ctx, admin, row["user_name"]).json
        ids.append(u["id"])
        assert (u["name"], u["email"], u["legacy_id"], u["source"], u["role"], u["deleted"]) == \
            (row["name"], row["email"], row["legacy_id"], "legacy", "user", False), (row, u)
        db = _db_legacy(ctx, row["user_name"])
        assert db == {"email": row["email"], "name": row["name"], "legacy_id": row["legacy_id"], "deleted": False,
                      "source": "legacy", "role": "user", "updated_ms": _ms(row["updated_at"])}, (row, db)
    # re-sent (through the other instance, and without the optional final LF): nothing changes
    r = _bulk_tsv(ctx, tok, _tsv(rows, final_lf=False), instance="customers-2")
    assert _counts(r) == {"inserted": 0, "updated": 0, "deleted": 0, "unchanged": 3} and r.json["invalid"] == [], r.json
    # an older version does not overwrite, a newer one does (an email appears, the name changes)
    r = _bulk_tsv(ctx, tok, _tsv([dict(rows[1], name="Stale", email="stale-%s@legacy.test" % tag, updated_at=_ts(11))]))
    assert _counts(r) == {"inserted": 0, "updated": 0, "deleted": 0, "unchanged": 1}, r.json
    assert _db_legacy(ctx, rows[1]["user_name"])["name"] == rows[1]["name"], "an older TSV row overwrote a newer one"
    fresh = dict(rows[1], name="Fresh\\name\t2", email="fresh-%s@legacy.test" % tag, updated_at=_ts(9))
    r = _bulk_tsv(ctx, tok, _tsv([fresh]))
    assert _counts(r) == {"inserted": 0, "updated": 1, "deleted": 0, "unchanged": 0}, r.json
    u = _get(ctx, admin, ids[1]).json
    assert (u["name"], u["email"]) == (fresh["name"], fresh["email"]), u
    db = _db_legacy(ctx, rows[1]["user_name"])
    assert (db["name"], db["email"], db["updated_ms"]) == (fresh["name"], fresh["email"], _ms(fresh["updated_at"])), db
    # deleted t soft-deletes
    r = _bulk_tsv(ctx, tok, _tsv([dict(rows[0], deleted=True, updated_at=_ts(8))]))
    assert _counts(r) == {"inserted": 0, "updated": 0, "deleted": 1, "unchanged": 0}, r.json
    assert _internal_user(ctx, tok, ids[0]).json["deleted"] is True
    _get(ctx, admin, ids[0], 404, "user_not_found")
    assert _db_user(ctx, ids[0])["deleted"] is True
    assert _db_legacy(ctx, rows[2]["user_name"])["deleted"] is False, "a row not in the batch was deleted"


def test_bulk_upsert_tsv_reports_bad_lines_and_applies_the_good_ones(ctx):
    tok = service_token(ctx)
    admin = admin_session(ctx)["access"]
    tag = os.urandom(3).hex()

    def line(i, legacy_id=None, updated_at=None, **kw):
        return _tsv_line(_row("e2e_tw%s_%d" % (tag, i), _legacy_id() if legacy_id is None else legacy_id,
                              updated_at or _ts(3), **kw))

    good = [_row("e2e_tv%s_%d" % (tag, i), _legacy_id(), _ts(3)) for i in range(2)]
    lines = [
        (_tsv_line(good[0]), None),
        (line(1).rsplit(b"\t", 1)[0], "malformed_line"),                                    # 5 fields
        (line(2) + b"\tsurplus", "malformed_line"),                                         # 7 fields
        (b"", "malformed_line"),                                                            # empty line
        (line(4).replace(b"Legacy ", b"Legacy \\x41 "), "invalid_name"),                   # unknown escape
        (line(5).replace(b"Legacy ", b"Legacy \xff\xfe "), "invalid_name"),                # not UTF-8
        (line(6).replace(b"Legacy ", b"Legacy \xc3\xa9 \xe2\x82 "), "invalid_name"),       # truncated sequence
        (line(7).replace(b"Legacy ", b"Legacy \x00 "), "invalid_name"),                    # NUL byte
        (b"\\N" + line(8)[line(8).index(b"\t"):], "invalid_user_name"),                     # null user_name
        (line(9, name=None), "invalid_name"),                                               # null name
        (line(10, email="no-at-sign"), "invalid_email"),
        (line(11, email="x\\y@legacy.test").replace(b"x\\\\y", b"x\\qy"), "invalid_email"), # escape in email
        (line(12, legacy_id="12a45"), "invalid_legacy_id"),
        (line(13, legacy_id="12345678901234567890"), "invalid_legacy_id"),                  # 20 digits
        (line(14, legacy_id="9223372036854775808"), "invalid_legacy_id"),                   # 2^63
        (line(15, legacy_id="-5"), "invalid_legacy_id"),
        (line(16, legacy_id=""), "invalid_legacy_id"),
        (line(17).replace(b"\tf\t", b"\ttrue\t"), "invalid_deleted"),
        (line(18).replace(b"\tf\t", b"\t\\N\t"), "invalid_deleted"),
        (line(19, updated_at="yesterday"), "invalid_updated_at"),
        (line(20, updated_at="2026-02-30T10:00:00Z"), "invalid_updated_at"),
        (_tsv_line(good[1]), None),
    ]
    assert lines[1][0].count(b"\t") == 4 and lines[2][0].count(b"\t") == 6, lines[:3]
    r = _bulk_tsv(ctx, tok, b"\n".join(l for l, _ in lines) + b"\n")
    want = [{"index": i, "reason": reason} for i, (_, reason) in enumerate(lines) if reason]
    assert r.json["invalid"] == want, "invalid %r,\n want %r" % (r.json["invalid"], want)
    assert _counts(r) == {"inserted": 2, "updated": 0, "deleted": 0, "unchanged": 0}, r.json
    for g in good:
        u = _by_name(ctx, admin, g["user_name"]).json
        assert (u["name"], u["legacy_id"], u["source"]) == (g["name"], g["legacy_id"], "legacy"), u
    for i in range(1, len(lines) - 1):
        assert _db_legacy(ctx, "e2e_tw%s_%d" % (tag, i)) is None, "bad line %d was imported" % i


def test_bulk_upsert_tsv_caps_the_batch_and_takes_an_empty_body(ctx):
    tok = service_token(ctx)
    tag = os.urandom(3).hex()
    rows = [_row("e2e_tb%s_%d" % (tag, i), _legacy_id(), _ts(3)) for i in range(5001)]
    for final_lf in (True, False):
        r = _bulk_tsv(ctx, tok, _tsv(rows, final_lf=final_lf), 400, "validation_failed")
        assert r.json["error"]["details"]["fields"] == {"body": "at most 5000 records per request"}, r.json
    assert _db_legacy(ctx, rows[0]["user_name"]) is None and _db_legacy(ctx, rows[-1]["user_name"]) is None
    # 5000 lines are within the cap (empty lines here: every one reported, nothing written)
    r = _bulk_tsv(ctx, tok, b"\n" * 5000)
    assert _counts(r) == {"inserted": 0, "updated": 0, "deleted": 0, "unchanged": 0}, r.json
    assert r.json["invalid"] == [{"index": i, "reason": "malformed_line"} for i in range(5000)], r.json["invalid"][:3]
    _bulk_tsv(ctx, tok, b"\n" * 5001, 400, "validation_failed")
    # an empty body holds no records
    r = _bulk_tsv(ctx, tok, b"")
    assert r.json == {"inserted": 0, "updated": 0, "deleted": 0, "unchanged": 0, "invalid": []}, r.json


def test_bulk_upsert_tsv_needs_its_media_type_and_a_service_token(ctx):
    tok = service_token(ctx)
    s = new_session(ctx)
    admin = admin_session(ctx)["access"]
    row = _row(uniq("tm"), _legacy_id(), _ts(4))
    body = _tsv([row])
    for ctype in ("text/plain", "text/csv", "text/tab-separated-values-x", "application/octet-stream"):
        r = _bulk_tsv(ctx, tok, body, 415, "unsupported_media_type", content_type=ctype)
        assert r.json["error"]["message"] == "Content-Type must be application/json or text/tab-separated-values", r.json
    call(ctx, "POST", "/internal/users/bulk-upsert", 415, "unsupported_media_type", raw=body, token=tok,
         instance="customers-1")                                          # no Content-Type at all
    # TSV is not JSON: declared as application/json it is a bad body, not a batch
    _bulk_tsv(ctx, tok, body, 400, content_type="application/json")
    # not public, and only for services
    cid = new_cid("h8")
    r = ctx.http("POST", "/internal/users/bulk-upsert", raw=body,
                 headers={"Content-Type": TSV, "X-Correlation-ID": cid, "Authorization": "Bearer " + tok})
    assert_envelope(r, 404, cid)
    _bulk_tsv(ctx, None, body, 401, "missing_token")
    _bulk_tsv(ctx, s["access"], body, 403)
    _bulk_tsv(ctx, admin, body, 403, instance="customers-2")
    _by_name(ctx, admin, row["user_name"], 404, "user_not_found")
    assert _db_legacy(ctx, row["user_name"]) is None, "a refused TSV call imported the user"
    # media type parameters are ignored, and the service token is accepted
    r = _bulk_tsv(ctx, tok, body, content_type="Text/Tab-Separated-Values; charset=utf-8")
    assert r.json["inserted"] == 1 and r.json["invalid"] == [], r.json
    assert _db_legacy(ctx, row["user_name"])["name"] == row["name"]


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
