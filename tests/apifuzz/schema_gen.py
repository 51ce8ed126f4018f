"""Hypothesis strategies from the JSON Schemas of docs/openapi.yaml (OpenAPI 3.1 = JSON Schema
2020-12), for the subset the document uses: $ref, allOf, oneOf/anyOf, enum, const, type (one or
a list), string length/pattern/format (uuid, email, date-time), integer/number bounds, arrays
with item bounds, objects with required/properties/additionalProperties and if/then.

    valid(schema, overrides)    values meant to satisfy the schema
    invalid(schema, overrides)  values meant to break it (wrong type, out of range, bad pattern or
                                format, a missing required or an unknown property, a bad item...)
    any_json()                  arbitrary JSON values

"Meant to": a generator cannot always know (a random string may happen to match a pattern), so the
fuzzer never trusts these labels; it asks jsonschema whether a request is valid (is_valid) and
checks properties on that verdict.

`overrides` maps a property name of the top-level object to a strategy used instead of the one
derived from the schema (the fuzzer uses it to put ids of real users in `to_user_id`, a fresh
user name in `user_name`, ...). Collections are kept small (at most MAX_ITEMS items) so a request
stays far below the body limit; the body-size limits are fuzzed separately.
"""

import datetime
import uuid

from hypothesis import strategies as st

import openapi_check as oc

MAX_ITEMS = 6
MAX_STRING = 300          # cap for strings whose schema has no (or a larger) maxLength


def weighted(*pairs):
    """One of the values, with the given integer weights: [(value, weight), ...]. Drawn through an
    integer so that a value stays as likely after it was tried (sampled_from over a short list
    runs out of novel choices and hypothesis then favours the other branches)."""
    table = [v for v, w in pairs for _ in range(w)]
    return st.integers(0, len(table) - 1).map(table.__getitem__)


def chance(n):
    """True about one time in n. Hypothesis draws the ends of a range more often than the middle,
    so True sits in the middle of the table."""
    table = [False] * (n // 2) + [True] + [False] * (n - 1 - n // 2)
    return st.integers(0, n - 1).map(table.__getitem__)


def mix(*pairs):
    """One of the strategies, with the given integer weights: [(strategy, weight), ...]."""
    return weighted(*[(i, w) for i, (_, w) in enumerate(pairs)]).flatmap(lambda i: pairs[i][0])


def resolve(schema):
    return oc.resolve(schema) if isinstance(schema, dict) else {}


def merged(schema):
    """The schema with its $ref and allOf folded into one dict (the document uses allOf only to
    add keywords to a $ref, e.g. a default or a description)."""
    s = dict(resolve(schema))
    for sub in s.pop("allOf", []) or []:
        for k, v in merged(sub).items():
            s.setdefault(k, v)
    return s


def is_valid(value, schema):
    """jsonschema's verdict (formats asserted as in openapi_check)."""
    return oc.is_valid(value, schema)


# ------------------------------------------------------------------ leaves
def uuids():
    return st.uuids().map(str)


def emails():
    local = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}", fullmatch=True)
    domain = st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}(\.[a-z0-9][a-z0-9-]{0,10}){0,2}\.[a-z]{2,6}", fullmatch=True)
    return st.builds(lambda l, d: "%s@%s" % (l, d), local, domain)


def date_times():
    dt = st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(2100, 12, 31))
    styles = st.sampled_from(["ms", "s", "us", "offset"])

    def fmt(d, style):
        if style == "s":
            return d.strftime("%Y-%m-%dT%H:%M:%SZ")
        if style == "us":
            return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if style == "offset":
            return d.strftime("%Y-%m-%dT%H:%M:%S+02:00")
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)
    return st.builds(fmt, dt, styles)


def texts(min_size=0, max_size=MAX_STRING):
    """Mostly printable ASCII (what clients send), sometimes any Unicode: control characters,
    C1 controls, NUL, combining marks and astral characters included."""
    max_size = min(max_size, MAX_STRING)
    return st.one_of(
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=min_size, max_size=max_size),
        st.text(min_size=min_size, max_size=max_size),
    )


def strings(s):
    lo = int(s.get("minLength", 0))
    hi = int(s.get("maxLength", MAX_STRING))
    fmt = s.get("format")
    if fmt == "uuid":
        return uuids()
    if fmt == "email":
        return emails().filter(lambda v: lo <= len(v) <= hi)
    if fmt == "date-time":
        return date_times()
    if s.get("pattern"):
        return st.from_regex(s["pattern"], fullmatch=True).filter(lambda v: lo <= len(v) <= hi)
    return texts(lo, max(lo, hi))


def numbers(s, integer):
    lo, hi = s.get("minimum"), s.get("maximum")
    if integer:
        return st.integers(min_value=lo, max_value=hi)
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


# ------------------------------------------------------------------ valid values
def valid(schema, overrides=None, depth=0):
    s = merged(schema)
    if "const" in s:
        return st.just(s["const"])
    if "enum" in s:
        return st.sampled_from(list(s["enum"]))
    for key in ("oneOf", "anyOf"):
        if key in s:
            return mix(*[(valid(sub, overrides, depth + 1), 1) for sub in s[key]])
    types = s.get("type")
    if isinstance(types, list):
        return mix(*[(valid(dict(s, type=t), overrides, depth), 1) for t in types])
    if types == "string":
        return strings(s)
    if types in ("integer", "number"):
        return numbers(s, types == "integer")
    if types == "boolean":
        return st.booleans()
    if types == "null":
        return st.none()
    if types == "array":
        lo = int(s.get("minItems", 0))
        hi = min(int(s.get("maxItems", MAX_ITEMS)), max(lo, MAX_ITEMS))
        return st.lists(valid(s.get("items") or {}, None, depth + 1), min_size=lo, max_size=hi)
    if types == "object" or "properties" in s:
        return objects(s, overrides, depth)
    return any_json()


def _prop_strategy(s, name, overrides, depth):
    if overrides and name in overrides:
        return overrides[name]
    return valid((s.get("properties") or {}).get(name) or {}, None, depth + 1)


def objects(s, overrides, depth):
    props = s.get("properties") or {}
    required = list(s.get("required") or [])
    optional = [p for p in props if p not in required]

    @st.composite
    def build(draw):
        out = {}
        for name in required:
            out[name] = draw(_prop_strategy(s, name, overrides, depth))
        for name in optional:
            if draw(st.booleans()):
                out[name] = draw(_prop_strategy(s, name, overrides, depth))
        extra = s.get("additionalProperties")
        if isinstance(extra, dict) and draw(chance(4)):
            for k in draw(st.lists(st.text(min_size=1, max_size=12), max_size=2)):
                if k not in props:
                    out[k] = draw(valid(extra, None, depth + 1))
        cond = s.get("if")
        then = s.get("then") or {}
        if cond and then and is_valid(out, cond):        # e.g. a transfer needs to_user_id
            for name in then.get("required") or []:
                if name not in out:
                    out[name] = draw(_prop_strategy(s, name, overrides, depth))
        return out
    return build()


# ------------------------------------------------------------------ invalid values
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         texts(0, 40))


def any_json(max_leaves=12):
    return st.recursive(JSON_SCALARS,
                        lambda kids: st.one_of(st.lists(kids, max_size=4),
                                               st.dictionaries(st.text(max_size=10), kids, max_size=4)),
                        max_leaves=max_leaves)


def wrong_type(s):
    """A JSON value whose type the schema does not allow."""
    types = s.get("type")
    allowed = set(types if isinstance(types, list) else [types] if types else [])
    if "integer" in allowed:
        allowed.add("number-int")
    pool = []
    if "string" not in allowed:
        pool.append(texts(0, 20))
    if "integer" not in allowed and "number" not in allowed:
        pool.append(st.integers(-10 ** 20, 10 ** 20))
    if "number" not in allowed:
        pool.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)))
    if "boolean" not in allowed:
        pool.append(st.booleans())
    if "null" not in allowed:
        pool.append(st.none())
    if "array" not in allowed:
        pool.append(st.lists(JSON_SCALARS, max_size=3))
    if "object" not in allowed:
        pool.append(st.dictionaries(st.text(max_size=6), JSON_SCALARS, max_size=3))
    return st.one_of(pool) if pool else st.nothing()


def _bad_strings(s):
    lo = int(s.get("minLength", 0))
    hi = s.get("maxLength")
    out = [st.just(""), texts(0, 40), st.text(min_size=1, max_size=8)]
    if hi is not None and int(hi) < 2000:
        out.append(st.integers(int(hi) + 1, int(hi) + 40).map(lambda n: "x" * n))
    if lo > 1:
        out.append(st.from_regex(r"[a-z]", fullmatch=True).map(lambda c: c * (lo - 1)))
    if s.get("format") in ("uuid", "email", "date-time"):
        out.append(st.sampled_from(["not-a-uuid", "00000000-0000-0000-0000-00000000000g", "a@", "@b.c",
                                    "2026-13-40T25:61:61Z", "2026-02-30T00:00:00Z", "yesterday",
                                    "75FF92E5-F9DD-4EC1-AC79-A6C558F905A7",
                                    "{75ff92e5-f9dd-4ec1-ac79-a6c558f905a7}", "\x00", "%s\n" % uuid.uuid4()]))
    if "enum" in s:
        out.append(st.sampled_from([str(e).upper() for e in s["enum"]] + [" %s" % e for e in s["enum"]]))
    return st.one_of(out)


def _bad_numbers(s):
    out = [st.just(10 ** 30), st.just(-(10 ** 30)), st.just(2 ** 63), st.just(-1), st.just(0), st.just(1.5),
           st.just(1e308)]
    if "minimum" in s:
        out.append(st.just(s["minimum"] - 1))
    if "maximum" in s:
        out.append(st.just(s["maximum"] + 1))
    return st.one_of(out)


def invalid(schema, overrides=None, depth=0):
    s = merged(schema)
    types = s.get("type")
    tl = types if isinstance(types, list) else [types]
    choices = [wrong_type(s)]
    if "string" in tl or "enum" in s or "const" in s:
        choices.append(_bad_strings(s))
    if "integer" in tl or "number" in tl:
        choices.append(_bad_numbers(s))
    if "array" in tl and s.get("items") and depth < 3:
        item = s["items"]
        choices.append(st.builds(lambda good, bad, i: good[:i] + [bad] + good[i:],
                                 st.lists(valid(item, None, depth + 1), max_size=3),
                                 invalid(item, None, depth + 1), st.integers(0, 3)))
    if ("object" in tl or "properties" in s) and depth < 3:
        choices.append(_bad_objects(s, overrides, depth))
    return st.one_of(choices)


def _bad_objects(s, overrides, depth):
    props = list((s.get("properties") or {}).keys())
    required = list(s.get("required") or [])
    good = objects(s, overrides, depth)

    @st.composite
    def build(draw):
        out = dict(draw(good))
        kinds = ["unknown"]
        if required:
            kinds.append("missing")
        if props:
            kinds += ["bad-value", "bad-value"]
        kind = draw(st.sampled_from(kinds))
        if kind == "missing":
            out.pop(draw(st.sampled_from(required)), None)
        elif kind == "unknown":
            key = draw(st.one_of(st.sampled_from(["id", "role", "admin", "balance", "__proto__", "user_id",
                                                  "created_at", "deleted", "AMOUNT", "amount "]),
                                 st.text(min_size=1, max_size=10)))
            if key not in props:
                out[key] = draw(JSON_SCALARS)
        else:
            name = draw(st.sampled_from(props))
            out[name] = draw(invalid((s.get("properties") or {})[name], None, depth + 1))
        return out
    return build()
