"""Black-box tests of the legacy-API simulator (tools/legacy-api, binary <build>/legacy-api).

Each test starts its own simulator on a free port (it does not need the stack) and stops it in a
`finally`, so these tests also run alone: python3 tests/e2e/run.py legacy_api.
The validity rules and the array-splitting rule checked here are the ones tools/legacy-api/README.md
documents for importers. Only the Python standard library is used.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import time

import simproc

FIELDS = ("id", "userName", "email", "name", "createdAt", "updatedAt", "deleted")
USER_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{3,64}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


# ------------------------------------------------------------------ helpers

class Sim:
    def __init__(self, proc, port):
        self.proc, self.port = proc, port

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path, headers=None, timeout=30):
        """(status, headers, body bytes) of a request that must complete."""
        c = self.conn(timeout)
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            return r.status, r, r.read()
        finally:
            c.close()

    def expected(self, query):
        status, _, body = self.get("/users/expected?" + query)
        assert status == 200, body
        return json.loads(body)


def _binary(ctx):
    return simproc.binary(ctx, "legacy-api", "LEGACY_API_BIN")


def simulator(ctx, **env):
    return simproc.simulator(_binary(ctx), Sim, "LEGACY_", cwd=ctx.repo if hasattr(ctx, "repo") else None, **env)


def valid_record(obj):
    """The README's validity rules for one decoded record."""
    if not isinstance(obj, dict) or set(obj) != set(FIELDS):
        return False
    i, un, em, nm = obj["id"], obj["userName"], obj["email"], obj["name"]
    if not (isinstance(i, int) and not isinstance(i, bool) and i >= 1):
        return False
    if not (isinstance(un, str) and USER_NAME_RE.match(un)):
        return False
    if not (isinstance(em, str) and EMAIL_RE.match(em)):
        return False
    if not (isinstance(nm, str) and nm):
        return False
    for f in ("createdAt", "updatedAt"):
        v = obj[f]
        if not (isinstance(v, str) and TS_RE.match(v)):
            return False
        try:
            time.strptime(v, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return False
    return isinstance(obj["deleted"], bool)


def split_array(text):
    """Incremental-style splitter over a JSON array: yields each element's raw text, tracking
    strings (with escapes) and brace/bracket depth, never parsing the element itself."""
    pos = text.index("[") + 1
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n:
            raise ValueError("array not terminated")
        if text[pos] == "]":
            return
        start, depth, in_str = pos, 0, False
        while pos < n:
            ch = text[pos]
            if in_str:
                if ch == "\\":
                    pos += 1
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    pos += 1
                    break
            pos += 1
        else:
            raise ValueError("element not terminated")
        yield text[start:pos]


def import_summary(raw_records):
    """What a correct import ends with: newest updatedAt per userName wins, invalid ones skipped."""
    valid = corrupt = dups = 0
    latest = {}
    for raw in raw_records:
        try:
            obj = json.loads(raw)
        except ValueError:
            corrupt += 1
            continue
        if not valid_record(obj):
            corrupt += 1
            continue
        valid += 1
        prev = latest.get(obj["userName"])
        if prev is not None:
            dups += 1
        if prev is None or obj["updatedAt"] > prev["updatedAt"]:
            latest[obj["userName"]] = obj
    return {"count": valid + corrupt, "valid": valid, "corrupt": corrupt,
            "distinct_user_names": len(latest), "duplicates": dups,
            "deleted_final": sum(1 for o in latest.values() if o["deleted"])}


# ------------------------------------------------------------------ tests

def test_legacy_health_routes_and_methods(ctx):
    with simulator(ctx) as sim:
        status, r, body = sim.get("/health")
        assert status == 200 and json.loads(body) == {"status": "up"}
        status, r, body = sim.get("/nope")
        assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
        c = sim.conn()
        try:
            c.request("POST", "/users", body=b"{}", headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            assert r.status == 405 and "GET" in r.getheader("Allow", "")
        finally:
            c.close()


def test_legacy_json_array_parses_with_json_loads(ctx):
    with simulator(ctx) as sim:
        status, r, body = sim.get("/users?count=500&seed=3&dup_rate=0.2&delete_rate=0.1")
        assert status == 200
        assert r.getheader("Content-Type") == "application/json"
        assert r.getheader("Transfer-Encoding") == "chunked"
        records = json.loads(body.decode("utf-8"))
        assert len(records) == 500
        assert all(valid_record(o) for o in records)
        assert any(any(ord(ch) > 127 for ch in o["name"]) for o in records), "no non-ASCII names"
        status, _, body = sim.get("/users?count=0")
        assert status == 200 and json.loads(body) == []


def test_legacy_ndjson_by_accept_header_and_by_query(ctx):
    with simulator(ctx) as sim:
        for path, headers in (("/users?count=777", {"Accept": "application/x-ndjson"}),
                              ("/users?count=777&format=ndjson", {})):
            status, r, body = sim.get(path, headers=headers)
            assert status == 200
            assert r.getheader("Content-Type") == "application/x-ndjson"
            lines = body.decode("utf-8").split("\n")
            assert lines[-1] == "", "ndjson must end with a newline"
            assert len(lines) - 1 == 777
            assert all(valid_record(json.loads(l)) for l in lines[:-1])


def test_legacy_same_seed_same_stream_other_seed_differs(ctx):
    with simulator(ctx) as sim:
        q = "count=2000&corrupt_rate=0.1&dup_rate=0.2&delete_rate=0.1"
        a = sim.get("/users?seed=9&" + q)[2]
        b = sim.get("/users?seed=9&" + q)[2]
        c = sim.get("/users?seed=10&" + q)[2]
        assert a == b
        assert a != c


def test_legacy_expected_summary_matches_client_side_import(ctx):
    q = "count=6000&seed=17&corrupt_rate=0.1&dup_rate=0.25&delete_rate=0.2"
    with simulator(ctx) as sim:
        expected = sim.expected(q)
        _, _, nd = sim.get("/users?format=ndjson&" + q)
        lines = nd.decode("utf-8").split("\n")[:-1]
        assert len(lines) == 6000
        got = import_summary(lines)
        for key, value in got.items():
            assert expected[key] == value, "%s: expected %s, client import %s" % (key, expected[key], value)
        assert expected["duplicates"] == expected["valid"] - expected["distinct_user_names"]
        assert sum(expected["corrupt_by_kind"].values()) == expected["corrupt"]
        assert all(v > 0 for v in expected["corrupt_by_kind"].values()), expected["corrupt_by_kind"]
        # The array form carries the same records, and a splitter can step over every broken one.
        _, _, arr = sim.get("/users?" + q)
        elements = list(split_array(arr.decode("utf-8")))
        assert elements == lines
        assert import_summary(elements) == got


def test_legacy_fail_rate_one_answers_500_or_503(ctx):
    with simulator(ctx) as sim:
        seen = set()
        for _ in range(12):
            status, r, body = sim.get("/users?count=10&fail_rate=1")
            assert status in (500, 503), status
            assert "error" in json.loads(body)
            seen.add(status)
        assert seen == {500, 503}, "both failure statuses should occur in 12 tries: %s" % seen


def test_legacy_drop_rate_one_cuts_the_stream(ctx):
    with simulator(ctx) as sim:
        for fmt in ("json", "ndjson"):
            c = sim.conn()
            got = b""
            try:
                c.request("GET", "/users?count=20000&drop_rate=1&format=" + fmt)
                r = c.getresponse()
                assert r.status == 200
                try:
                    got = r.read()
                    raise AssertionError("a dropped stream must not end cleanly (%d bytes read)" % len(got))
                except http.client.IncompleteRead as exc:
                    got = exc.partial
            finally:
                c.close()
            text = got.decode("utf-8", errors="replace")
            if fmt == "json":
                assert text.startswith("[") and not text.rstrip().endswith("]")
            else:
                assert text.count("\n") < 20000


def test_legacy_rate_limits_throughput(ctx):
    with simulator(ctx) as sim:
        t0 = time.monotonic()
        status, _, body = sim.get("/users?count=1000&rate=2000&format=ndjson")
        took = time.monotonic() - t0
        assert status == 200 and body.count(b"\n") == 1000
        assert took >= 0.45, "1000 records at 2000/s took only %.3f s" % took
        assert took < 3.0, "rate-limited stream far too slow: %.3f s" % took


def test_legacy_first_byte_delay(ctx):
    with simulator(ctx) as sim:
        c = sim.conn()
        try:
            t0 = time.monotonic()
            c.request("GET", "/users?count=5&first_byte_delay_ms=600")
            r = c.getresponse()
            first = time.monotonic() - t0
            r.read()
        finally:
            c.close()
        assert r.status == 200
        assert first >= 0.55, "status line after %.3f s" % first


def test_legacy_bad_knob_is_400(ctx):
    with simulator(ctx) as sim:
        for q in ("count=-1", "fail_rate=2", "seed=abc", "format=xml", "rate=fast"):
            status, _, body = sim.get("/users?" + q)
            assert status == 400, q
            assert json.loads(body)["error"]["code"] == "invalid_parameter"
            status, _, _ = sim.get("/users/expected?" + q)
            assert status == 400, q


def test_legacy_env_defaults_and_query_overrides(ctx):
    with simulator(ctx, LEGACY_COUNT=7, LEGACY_SEED=5, LEGACY_DUP_RATE=0.5) as sim:
        records = json.loads(sim.get("/users")[2])
        assert len(records) == 7
        assert sim.expected("")["knobs"] == {"count": 7, "seed": "5", "corrupt_rate": 0,
                                             "dup_rate": 0.5, "delete_rate": 0}
        assert len(json.loads(sim.get("/users?count=3")[2])) == 3
        assert json.loads(sim.get("/users?seed=5&count=7&dup_rate=0.5")[2]) == records


def test_legacy_memory_stays_flat_on_a_million_records(ctx):
    with simulator(ctx) as sim:
        c = sim.conn(timeout=60)
        total = 0
        try:
            c.request("GET", "/users?count=1000000&format=ndjson")
            r = c.getresponse()
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                total += chunk.count(b"\n")
        finally:
            c.close()
        assert total == 1000000
        with open("/proc/%d/status" % sim.proc.pid) as f:
            hwm_kb = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
        assert hwm_kb < 64 * 1024, "peak RSS %d kB after a 1M-record stream" % hwm_kb


test_legacy_memory_stays_flat_on_a_million_records.timeout = 120


def test_legacy_missing_port_exits_1(ctx):
    e = {k: v for k, v in os.environ.items() if k != "PORT"}
    p = subprocess.run([_binary(ctx)], env=e, capture_output=True, timeout=10)
    assert p.returncode == 1
    assert b"PORT" in p.stderr and p.stderr.count(b"\n") == 1


def test_legacy_sigterm_cuts_streams_after_grace_and_exits_0(ctx):
    with simulator(ctx, SHUTDOWN_GRACE_MS=300) as sim:
        c = sim.conn()
        try:
            c.request("GET", "/users?count=100000&rate=1000&format=ndjson")
            r = c.getresponse()
            assert r.status == 200
            r.read(100)
            t0 = time.monotonic()
            sim.proc.send_signal(signal.SIGTERM)
            try:
                r.read()
                raise AssertionError("stream cut by shutdown must not end cleanly")
            except (http.client.IncompleteRead, ConnectionError):
                pass
            assert sim.proc.wait(timeout=10) == 0
            assert time.monotonic() - t0 < 5
        finally:
            c.close()


if __name__ == "__main__":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import lib

    ctx = lib.Ctx()
    names = sys.argv[1:]
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn) and (not names or any(n in name for n in names)):
            try:
                fn(ctx)
                print("ok  ", name)
            except Exception as exc:  # noqa: BLE001 - report and continue
                failed += 1
                print("FAIL", name, repr(exc))
    sys.exit(1 if failed else 0)
