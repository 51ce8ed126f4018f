"""Checks HTTP responses seen by the end-to-end tests against docs/openapi.yaml.

    import openapi_check
    openapi_check.check(resp, "POST", "/api/auth/register")   # uses resp.status
    openapi_check.check_schema(value, "#/components/schemas/Error")

`check` finds the operation (path template exactly as written under `paths`, method), the response
object for the status (exact code, else `4XX`-style range, else `default`, else the document's
`x-common-responses` that every operation may answer; following `$ref` into components/responses),
and then:
- a response documented without `content` (204) must have an empty body;
- otherwise the response's Content-Type must be one of the documented media types and, for JSON
  media types (application/json, */*+json), the body must parse and validate against its schema;
- response headers the document marks `required: true` must be present.
Any mismatch raises AssertionError naming the operation, the status and the JSON path that failed,
so a test fails the same way whether the service or the document is wrong.

Decisions:
- OpenAPI 3.1 schemas are JSON Schema 2020-12, so Debian's python3-jsonschema validates them with
  Draft202012Validator. `$ref`s like '#/components/schemas/User' are resolved within the whole
  document (a RefResolver whose referrer is the document); OpenAPI-only keywords (example,
  discriminator, xml) are unknown to JSON Schema and therefore ignored, as the spec intends.
- Formats are asserted, not just annotated: date-time (RFC 3339), uuid, email and uri get small
  checkers of our own, so no optional jsonschema format dependency is needed and a timestamp in the
  wrong shape fails the test.
- The document is parsed once per process (the tests run in one process) and never modified.
"""

import json
import os
import re

import jsonschema
import yaml

SPEC_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "docs", "openapi.yaml")

_cache = {}

_DATE_TIME_RE = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?"
    r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$")

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time")
def _is_date_time(value):
    return not isinstance(value, str) or bool(_DATE_TIME_RE.match(value))


@_FORMATS.checks("uuid")
def _is_uuid(value):
    return not isinstance(value, str) or bool(_UUID_RE.match(value))


@_FORMATS.checks("email")
def _is_email(value):
    return not isinstance(value, str) or bool(_EMAIL_RE.match(value))


@_FORMATS.checks("uri")
def _is_uri(value):
    return not isinstance(value, str) or bool(_URI_RE.match(value))


def spec():
    """The parsed document (cached; do not modify)."""
    doc = _cache.get("doc")
    if doc is None:
        with open(SPEC_PATH, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1"):
            raise AssertionError("%s is not an OpenAPI 3.1 document" % SPEC_PATH)
        _cache["doc"] = doc
        _cache["resolver"] = jsonschema.RefResolver(base_uri="", referrer=doc)
    return doc


def _resolver():
    spec()
    return _cache["resolver"]


def resolve(node):
    """Follow a chain of {"$ref": "#/..."} objects (components/responses etc.) within the document."""
    doc = spec()
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise AssertionError("unsupported or circular $ref %r in %s" % (ref, SPEC_PATH))
        seen.add(ref)
        node = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise AssertionError("$ref %r does not resolve in %s" % (ref, SPEC_PATH))
            node = node[part]
    return node


def _validate(value, schema, what):
    validator = jsonschema.Draft202012Validator(schema, resolver=_resolver(), format_checker=_FORMATS)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "$" + "".join("[%r]" % p for p in e.absolute_path)
        raise AssertionError("%s: %s at %s (%d schema error(s)); value %s" % (
            what, e.message[:300], where, len(errors), json.dumps(value)[:400]))


def is_valid(value, schema):
    """True when value satisfies schema (a schema of the document, or one with $refs into it)."""
    validator = jsonschema.Draft202012Validator(schema, resolver=_resolver(), format_checker=_FORMATS)
    return next(validator.iter_errors(value), None) is None


def check_schema(value, schema_ref, what=None):
    """Validate a JSON value against a schema of the document, given as '#/components/schemas/X'
    (or any JSON pointer into the document)."""
    _validate(value, {"$ref": schema_ref}, what or schema_ref)
    return value


def operation(method, template):
    doc = spec()
    paths = doc.get("paths") or {}
    if template not in paths:
        raise AssertionError("path %s is not documented in docs/openapi.yaml" % template)
    op = resolve(paths[template]).get(method.lower())
    if not isinstance(op, dict):
        raise AssertionError("%s %s is not documented in docs/openapi.yaml" % (method.upper(), template))
    return op


def response_spec(method, template, status):
    """The (resolved) response object documented for this status, or AssertionError."""
    responses = operation(method, template).get("responses") or {}
    for key in (str(status), "%dXX" % (status // 100), "%dxx" % (status // 100), "default"):
        if key in responses:
            return resolve(responses[key])
    common = spec().get("x-common-responses") or {}
    if str(status) in common:
        return resolve(common[str(status)])
    raise AssertionError("%s %s: status %d is not documented (documented: %s)" % (
        method.upper(), template, status, ", ".join(sorted(map(str, responses)))))


def _media_matches(documented, actual):
    if documented == actual:
        return True
    dtype, _, dsub = documented.partition("/")
    atype, _, asub = actual.partition("/")
    return (dtype == "*" or dtype == atype) and (dsub == "*" or dsub == asub)


def _is_json_media(mt):
    return mt == "application/json" or mt.endswith("+json")


def check(resp, method, template, status=None):
    """Validate resp (lib.Response) against the document for (method, template, status).
    status defaults to resp.status; when given, resp.status must equal it. Returns resp.json."""
    what = "%s %s -> %d" % (method.upper(), template, resp.status)
    if status is not None:
        assert resp.status == status, "%s, want %d; body %r" % (what, status, resp.body[:300])
    rspec = response_spec(method, template, resp.status)
    for name, hdr in (rspec.get("headers") or {}).items():
        hdr = resolve(hdr)
        if hdr.get("required") and resp.headers.get(name) is None:
            raise AssertionError("%s: required response header %s missing" % (what, name))
    content = rspec.get("content")
    if not content:
        assert not resp.body, "%s: documented without content but the body is %r" % (what, resp.body[:200])
        return None
    ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    matches = [mt for mt in content if _media_matches(mt.lower(), ctype)]
    assert matches, "%s: Content-Type %r is not documented (documented: %s)" % (what, ctype, ", ".join(content))
    media = content[matches[0]] or {}
    if not _is_json_media(ctype):
        return None
    try:
        value = json.loads(resp.body)
    except ValueError:
        raise AssertionError("%s: body is not JSON: %r" % (what, resp.body[:200]))
    schema = media.get("schema")
    if schema is not None:
        _validate(value, schema, what)
    return value
