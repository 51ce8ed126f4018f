"""customers-service end-to-end tests: access tokens, refresh rotation, logout, service tokens.

Forged tokens are built here by hand (python3-cryptography for RSA, hmac for HS256) and signed
with the stack's REAL private key (customers-1's JWT_PRIVATE_KEY_FILE), so each forgery is wrong
in exactly one respect and must be refused with that respect's error code. A positive control
(the genuine claims re-signed with the same machinery are accepted) proves the forgeries fail for
the intended reason and not because the test signs badly.

Tokens are also verified independently with PyJWT against the published JWKS, as a third-party
client would.

Cross-service revocation: a session revoked at customers-service must be refused by the other
services within 1 s. The test probes the token-protected transactions routes it knows about; when
none exists yet (Nginx-routed 404 "not_found" without a token), only customers-service is asserted,
and a route that exists and accepts the revoked token fails the test.
"""

import hashlib
import hmac
import json
import os
import time

import openapi_check as oc
from test_customers_auth import (REVOCATION_BOUND_S, REVOCATION_SLACK_S, assert_revoked, b64u, b64u_decode, call,
                                 err_code, jwt_compact, jwt_expectations, jwt_parts, jwt_private_key, login,
                                 new_session, rs256_signer)

# Token-protected GET routes of transactions-service (through Nginx) used for cross-service checks.
TRANSACTIONS_PROTECTED = ("/api/accounts/me/balance", "/api/transactions")


def _jwks(ctx):
    keys = call(ctx, "GET", "/.well-known/jwks.json", 200).json["keys"]
    assert isinstance(keys, list) and keys, keys
    return keys


def _public_key(jwk):
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
    n = int.from_bytes(b64u_decode(jwk["n"]), "big")
    e = int.from_bytes(b64u_decode(jwk["e"]), "big")
    return RSAPublicNumbers(e, n).public_key()


def _thumbprint(jwk):
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return b64u(hashlib.sha256(canonical.encode()).digest())


def _me(ctx, token, status=200, code=None, **kw):
    return call(ctx, "GET", "/api/auth/me", status, code, token=token, **kw)


# ------------------------------------------------------------------------------------ JWKS
def test_access_token_verifies_independently_with_the_jwks(ctx):
    import jwt
    s = new_session(ctx)
    keys = _jwks(ctx)
    header = jwt.get_unverified_header(s["access"])
    assert header.get("alg") == "RS256" and header.get("kid"), header
    match = [k for k in keys if k.get("kid") == header["kid"]]
    assert len(match) == 1, "token kid %r not (once) in the JWKS %r" % (header["kid"], [k.get("kid") for k in keys])
    jwk = match[0]
    assert (jwk["kty"], jwk["use"], jwk["alg"]) == ("RSA", "sig", "RS256"), jwk
    private_parts = {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    assert not private_parts, "the JWKS publishes private key parts %s" % private_parts
    assert jwk["kid"] == _thumbprint(jwk), "kid is not the RFC 7638 thumbprint of the key"
    pub = _public_key(jwk)
    assert pub.key_size >= 2048, pub.key_size
    iss, aud = jwt_expectations(ctx)
    claims = jwt.decode(s["access"], pub, algorithms=["RS256"], audience=aud, issuer=iss,
                        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]})
    now = time.time()
    assert claims["sub"] == s["id"], claims
    assert claims["exp"] - claims["iat"] == 900, claims
    assert abs(claims["iat"] - now) < 60 and claims["nbf"] <= claims["iat"] + 1, claims
    assert claims["role"] == "user" and claims["permissions"] == [], claims
    assert isinstance(claims["sid"], str) and claims["sid"] and isinstance(claims["jti"], str) and claims["jti"], claims
    # The independent verifier does check: another audience / issuer / algorithm fails.
    for kwargs in ({"audience": aud + "-other", "issuer": iss}, {"audience": aud, "issuer": iss + "-other"}):
        try:
            jwt.decode(s["access"], pub, algorithms=["RS256"], **kwargs)
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            pass
        else:
            raise AssertionError("PyJWT accepted the token with %r" % kwargs)
    # Both customers instances publish the same keys (one signing key for the whole service).
    for inst in ctx.instances_of("customers"):
        r = call(ctx, "GET", "/.well-known/jwks.json", 200, instance=inst)
        assert sorted(k["kid"] for k in r.json["keys"]) == sorted(k["kid"] for k in keys), (inst, r.json)


# ------------------------------------------------------------------------------------ tampering
def test_tampered_and_invalid_tokens_are_refused_with_their_code(ctx):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    s = new_session(ctx)
    header, claims = jwt_parts(s["access"])
    real = rs256_signer(jwt_private_key(ctx))
    now = int(time.time())

    # Positive control: the genuine claims, re-signed by this test with the real key, are accepted.
    assert _me(ctx, jwt_compact(header, claims, real)).json["id"] == s["id"]

    def with_claims(**kw):
        c = dict(claims)
        c.update(kw)
        return c

    jwk = [k for k in _jwks(ctx) if k["kid"] == header["kid"]][0]
    pem = _public_key(jwk).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    h, p, sig = s["access"].split(".")
    sig_bytes = bytearray(b64u_decode(sig))
    sig_bytes[len(sig_bytes) // 2] ^= 0x01
    admin_payload = b64u(json.dumps(with_claims(role="admin", permissions=["*"]), separators=(",", ":")))
    cases = [
        ("alg none", jwt_compact(dict(header, alg="none"), claims), "token_alg_not_allowed"),
        ("alg none, no kid", jwt_compact({"alg": "none", "typ": "JWT"}, claims), "token_alg_not_allowed"),
        ("HS256 keyed with the public PEM",
         jwt_compact(dict(header, alg="HS256"), claims, lambda d: hmac.new(pem, d, hashlib.sha256).digest()),
         "token_alg_not_allowed"),
        ("payload changed to admin", "%s.%s.%s" % (h, admin_payload, sig), "token_bad_signature"),
        ("signature bit flipped", "%s.%s.%s" % (h, p, b64u(bytes(sig_bytes))), "token_bad_signature"),
        ("signed by another key under our kid", jwt_compact(header, claims, rs256_signer(other_key)),
         "token_bad_signature"),
        ("unknown kid", jwt_compact(dict(header, kid=b64u(os.urandom(32))), claims, rs256_signer(other_key)),
         "token_unknown_kid"),
        ("wrong iss", jwt_compact(header, with_claims(iss="evil-issuer"), real), "token_bad_issuer"),
        ("wrong aud", jwt_compact(header, with_claims(aud="someone-else"), real), "token_bad_audience"),
        ("expired", jwt_compact(header, with_claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600), real),
         "token_expired"),
        ("nbf in the future", jwt_compact(header, with_claims(nbf=now + 600), real), "token_not_yet_valid"),
        ("garbage", "garbage", "token_malformed"),
        ("two parts", "%s.%s" % (h, p), "token_malformed"),
    ]
    for what, token, code in cases:
        r = _me(ctx, token, 401)
        assert err_code(r) == code, "%s: code %r, want %r (%r)" % (what, err_code(r), code, r.json)
    # No token at all, an empty bearer, and a non-Bearer scheme.
    call(ctx, "GET", "/api/auth/me", 401, "missing_token")
    r = call(ctx, "GET", "/api/auth/me", 401, headers={"Authorization": "Basic " + b64u(b"admin:admin")})
    assert err_code(r) in ("missing_token", "token_malformed"), r.json
    # The genuine token was not affected by any of this.
    assert _me(ctx, s["access"]).json["id"] == s["id"]


# ------------------------------------------------------------------------------------ refresh
def _refresh(ctx, refresh_token, status=200, code=None):
    return call(ctx, "POST", "/api/auth/refresh", status, code, body={"refresh_token": refresh_token})


def test_refresh_rotates_and_reuse_revokes_the_session(ctx):
    s = new_session(ctx)
    r = _refresh(ctx, s["refresh"]).json
    assert r["token_type"] == "Bearer" and r["expires_in"] == 900, r
    assert r["refresh_token"] != s["refresh"] and r["access_token"] != s["access"], "refresh did not rotate"
    assert jwt_parts(r["access_token"])[1]["sid"] == jwt_parts(s["access"])[1]["sid"], "rotation changed the session"
    _me(ctx, r["access_token"])
    # A second rotation works with the newest token.
    r2 = _refresh(ctx, r["refresh_token"]).json
    _me(ctx, r2["access_token"])
    # Replaying an already-rotated refresh token: reuse detected, whole session revoked.
    since = time.monotonic()
    _refresh(ctx, s["refresh"], 401, "refresh_token_reused")
    resp = _refresh(ctx, r2["refresh_token"], 401)
    assert err_code(resp) in ("refresh_token_reused", "invalid_refresh_token", "session_revoked"), resp.json
    for token in (r2["access_token"], r["access_token"], s["access"]):
        assert_revoked(ctx, token, since)
    # Garbage and unknown refresh tokens.
    _refresh(ctx, "garbage", 401, "invalid_refresh_token")
    _refresh(ctx, b64u(os.urandom(32)), 401, "invalid_refresh_token")
    # Other sessions of the same user are untouched.
    t = login(ctx, s["user_name"], s["password"])
    _me(ctx, t["access_token"])
    _refresh(ctx, t["refresh_token"])


# ------------------------------------------------------------------------------------ logout
def _transactions_protected_routes(ctx):
    """Transactions routes (through Nginx) that exist and refuse a request without a token."""
    found = []
    for path in TRANSACTIONS_PROTECTED:
        r = _transactions_call(ctx, path, None)
        code = ((r.json or {}).get("error") or {}).get("code")
        if r.status == 404 and code == "not_found":
            continue                               # route not implemented (yet)
        assert r.status == 401, "GET %s without a token -> %d %r (a protected route must say 401)" % (
            path, r.status, r.body[:200])
        found.append(path)
    return found


def _transactions_call(ctx, path, token):
    """GET path through Nginx (with the token unless None), checked against docs/openapi.yaml when
    the route is documented, else against the error envelope schema."""
    r = ctx.http("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
    try:
        oc.operation("GET", path)
        oc.check(r, "GET", path)
    except AssertionError as exc:
        if "not documented" not in str(exc):
            raise
        if r.status >= 400:
            oc.check_schema(r.json, "#/components/schemas/Error", "GET %s -> %d" % (path, r.status))
    return r


def test_logout_revokes_the_session_everywhere_within_a_second(ctx):
    s = new_session(ctx)
    other = login(ctx, s["user_name"], s["password"])        # a second session of the same user
    protected = _transactions_protected_routes(ctx)
    if not protected:
        # Reported, not hidden: the run's output says the cross-service half was not exercised.
        print("     note: no token-protected transactions route (%s) yet: logout revocation asserted "
              "at customers-service only" % ", ".join(TRANSACTIONS_PROTECTED), flush=True)
    for path in protected:
        r = _transactions_call(ctx, path, s["access"])
        assert r.status != 401, "transactions %s refuses a valid token: %d %r" % (path, r.status, r.body[:200])
    # warm every instance's session cache with this token, the worst case for revocation
    for inst in ctx.instances_of("customers"):
        _me(ctx, s["access"], instance=inst)
    since = time.monotonic()
    call(ctx, "POST", "/api/auth/logout", 204, token=s["access"])
    assert_revoked(ctx, s["access"], since)
    deadline = since + REVOCATION_BOUND_S + REVOCATION_SLACK_S
    for path in protected:
        ctx.wait_until(lambda: err_code(_transactions_call(ctx, path, s["access"])) == "session_revoked",
                       max(deadline - time.monotonic(), 0.01), what="transactions %s refuses the token" % path)
        for _ in range(2):
            r = _transactions_call(ctx, path, s["access"])
            assert r.status == 401 and err_code(r) == "session_revoked", "transactions %s: %d %r" % (
                path, r.status, r.body[:200])
    # The refresh token of the session is dead, a second logout is refused, the other session lives.
    resp = _refresh(ctx, s["refresh"], 401)
    assert err_code(resp) in ("invalid_refresh_token", "refresh_token_reused", "session_revoked"), resp.json
    call(ctx, "POST", "/api/auth/logout", 401, "session_revoked", token=s["access"])
    _me(ctx, other["access_token"])
    call(ctx, "POST", "/api/auth/logout", 401, "missing_token")


# ------------------------------------------------------------------------------------ me
def test_me_returns_the_caller(ctx):
    s = new_session(ctx)
    me = _me(ctx, s["access"]).json
    for k in ("id", "user_name", "name", "role", "permissions", "source", "created_at"):
        assert me[k] == s["user"][k], "me.%s %r, registered %r" % (k, me[k], s["user"][k])
    call(ctx, "GET", "/api/auth/me", 401, "missing_token")


# ------------------------------------------------------------------------------------ service tokens
def service_client(ctx, service):
    """(client_id, client_secret) the stack gives `service` for POST /api/auth/token, read from the
    instance's environment (…CLIENT_ID and …CLIENT_SECRET or …CLIENT_SECRET_FILE)."""
    env = ctx.env_of(service + "-1")
    cid = [v for k, v in env.items() if k.endswith("CLIENT_ID")]
    assert len(cid) == 1, "%s-1: no single *CLIENT_ID variable in %s" % (service, sorted(env))
    secret = [v for k, v in env.items() if k.endswith("CLIENT_SECRET")]
    if not secret:
        files = [v for k, v in env.items() if k.endswith("CLIENT_SECRET_FILE")]
        assert len(files) == 1, "%s-1: no *CLIENT_SECRET(_FILE) variable in %s" % (service, sorted(env))
        path = files[0] if os.path.isabs(files[0]) else os.path.join(ctx.repo, files[0])
        with open(path, encoding="utf-8") as f:
            secret = [f.read().rstrip("\n")]
    return cid[0], secret[0]


def service_token(ctx, service="sync"):
    client_id, secret = service_client(ctx, service)
    r = call(ctx, "POST", "/api/auth/token", 200, body={"client_id": client_id, "client_secret": secret})
    return r.json["access_token"]


def test_service_token_with_client_credentials(ctx):
    import jwt
    iss, aud = jwt_expectations(ctx)
    keys = {k["kid"]: _public_key(k) for k in _jwks(ctx)}
    for service in ("transactions", "sync"):
        client_id, secret = service_client(ctx, service)
        r = call(ctx, "POST", "/api/auth/token", 200, body={"client_id": client_id, "client_secret": secret})
        t = r.json
        assert t["token_type"] == "Bearer" and isinstance(t["expires_in"], int) and 0 < t["expires_in"] <= 3600, t
        assert "refresh_token" not in t, "a client-credentials token must not come with a refresh token"
        kid = jwt.get_unverified_header(t["access_token"])["kid"]
        claims = jwt.decode(t["access_token"], keys[kid], algorithms=["RS256"], audience=aud, issuer=iss)
        assert claims["role"] == "service", claims
        assert claims["exp"] - claims["iat"] == t["expires_in"], (claims, t)
        call(ctx, "POST", "/api/auth/token", 401, "invalid_client",
             body={"client_id": client_id, "client_secret": secret[:-1] + ("0" if secret[-1] != "0" else "1")})
    call(ctx, "POST", "/api/auth/token", 401, "invalid_client",
         body={"client_id": "nope-" + os.urandom(4).hex(), "client_secret": os.urandom(24).hex()})
