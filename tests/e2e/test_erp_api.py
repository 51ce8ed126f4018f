"""Black-box tests of the ERP simulator (tools/erp-api, binary <build>/erp-api).

Each test starts its own simulator on a free port (the stack is not needed) and stops it in a
`finally`, so these tests also run alone: python3 tests/e2e/run.py erp_api.
Checked: the ERP contract (pages, ids, types, has_more, inclusive updated_since, per_page limit,
API keys), advances for incremental syncs, every fault knob, the per-tenant concurrency maximum
and the request/start counters that the ERP sync tests rely on.
"""

import concurrent.futures
import http.client
import json
import os
import signal
import subprocess
import time

import simproc

T0 = "2025-01-01T00:00:00Z"


class Sim:
    def __init__(self, proc, port):
        self.proc, self.port = proc, port

    def call(self, method, path, body=None, headers=None, timeout=30):
        """(status, headers, body bytes, json or None)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data, headers=headers or {})
            r = c.getresponse()
            raw = r.read()
            try:
                j = json.loads(raw) if raw else None
            except ValueError:
                j = None
            return r.status, r, raw, j
        finally:
            c.close()

    def tenant(self, name, key="key-" + "x" * 8, **cfg):
        cfg.setdefault("customers", 10)
        cfg.setdefault("products", 5)
        st, _, raw, j = self.call("PUT", "/_sim/tenants/" + name, dict(cfg, api_key=key))
        assert st in (200, 201), raw
        return j

    def page(self, tenant, kind, key, query=""):
        st, _, raw, j = self.call("GET", "/tenants/%s/%s%s" % (tenant, kind, query), headers={"X-Api-Key": key})
        return st, j, raw

    def all_records(self, tenant, kind, key, per_page=100, since=None):
        out, page = [], 1
        while True:
            q = "?page=%d&per_page=%d" % (page, per_page) + ("&updated_since=" + since if since else "")
            st, j, raw = self.page(tenant, kind, key, q)
            assert st == 200, raw
            assert j["page"] == page and j["per_page"] == per_page
            out.extend(j["data"])
            if not j["has_more"]:
                return out
            page += 1

    def stats(self):
        return self.call("GET", "/stats")[3]


def _binary(ctx):
    return simproc.binary(ctx, "erp-api", "ERP_API_BIN")


def simulator(ctx, **env):
    return simproc.simulator(_binary(ctx), Sim, "ERP_SIM_", **env)


# ------------------------------------------------------------------ the contract

def test_erp_sim_health_and_unknown_routes(ctx):
    with simulator(ctx) as sim:
        assert sim.call("GET", "/health")[3] == {"status": "up"}
        st, _, _, j = sim.call("GET", "/nope")
        assert st == 404 and j["error"]["code"] == "not_found"
        st, r, _, _ = sim.call("POST", "/tenants/a/customers")
        assert st == 405 and "GET" in r.getheader("Allow")
        st, _, _, j = sim.call("GET", "/tenants/ghost/customers", headers={"X-Api-Key": "x"})
        assert st == 404 and j["error"]["code"] == "tenant_not_found"


def test_erp_sim_pages_follow_the_contract(ctx):
    with simulator(ctx) as sim:
        sim.tenant("acme", key="k-acme", customers=1234, products=321)
        customers = sim.all_records("acme", "customers", "k-acme", per_page=500)
        assert len(customers) == 1234
        assert len({c["id"] for c in customers}) == 1234
        for c in customers:
            assert set(c) == {"id", "name", "email", "document", "updated_at", "deleted"}, c
            assert isinstance(c["id"], str) and isinstance(c["deleted"], bool)
            time.strptime(c["updated_at"], "%Y-%m-%dT%H:%M:%SZ")
        products = sim.all_records("acme", "products", "k-acme", per_page=100)
        assert len(products) == 321
        for p in products:
            assert set(p) == {"id", "sku", "name", "price", "stock", "updated_at", "deleted"}, p
            whole, cents = p["price"].split(".")
            assert whole.isdigit() and len(cents) == 2 and isinstance(p["stock"], int)
        # Same request, same bytes (deterministic per tenant and seed).
        a = sim.page("acme", "customers", "k-acme", "?page=2&per_page=50")[2]
        b = sim.page("acme", "customers", "k-acme", "?page=2&per_page=50")[2]
        assert a == b
        # A page past the end is empty; the defaults are page 1 and 100 per page.
        st, j, _ = sim.page("acme", "products", "k-acme", "?page=99&per_page=100")
        assert st == 200 and j["data"] == [] and j["has_more"] is False
        st, j, _ = sim.page("acme", "customers", "k-acme")
        assert j["page"] == 1 and j["per_page"] == 100 and len(j["data"]) == 100 and j["has_more"] is True
        for q in ("?per_page=501", "?per_page=0", "?page=0", "?page=x", "?updated_since=yesterday"):
            st, j, _ = sim.page("acme", "customers", "k-acme", q)
            assert st == 400 and j["error"]["code"] == "invalid_parameter", q


def test_erp_sim_each_tenant_needs_its_own_key(ctx):
    with simulator(ctx) as sim:
        sim.tenant("t1", key="key-one")
        sim.tenant("t2", key="key-two")
        assert sim.page("t1", "customers", "key-one")[0] == 200
        st, j, _ = sim.page("t1", "customers", "key-two")
        assert st == 401 and j["error"]["code"] == "unauthorized"
        st, _, _, _ = sim.call("GET", "/tenants/t1/customers")
        assert st == 401
        s = sim.stats()["tenants"]["t1"]
        assert s["status"] == {"200": 1, "401": 2}, s


def test_erp_sim_advance_makes_the_next_sync_incremental(ctx):
    with simulator(ctx) as sim:
        sim.tenant("inc", key="k", customers=2000, products=0)
        before = {c["id"]: c for c in sim.all_records("inc", "customers", "k", per_page=500)}
        watermark = max(c["updated_at"] for c in before.values())
        st, _, _, d = sim.call("POST", "/_sim/tenants/inc/advance", {"share": 0.2, "delete_share": 0.25})
        assert st == 200 and d["advances"] == 1
        listed = sim.all_records("inc", "customers", "k", per_page=500, since=watermark)
        # Inclusive: the record at the watermark itself (unless it moved), then only the ~20 % that
        # moved, every one newer than the watermark.
        changed = [c for c in listed if c["updated_at"] > watermark]
        assert len(listed) - len(changed) <= 1 and all(c["updated_at"] == watermark for c in listed if c not in changed)
        assert 300 < len(changed) < 500, len(changed)
        assert any(c["deleted"] for c in changed) and not all(c["deleted"] for c in changed)
        st, _, _, d = sim.call("GET", "/_sim/tenants/inc?since=" + T0)
        assert d["customers_summary"]["matching"] == len(changed)   # since T0: only moved records
        # updated_since is inclusive: asking from one record's own timestamp lists it.
        ts = changed[0]["updated_at"]
        again = sim.all_records("inc", "customers", "k", per_page=500, since=ts)
        assert changed[0]["id"] in {c["id"] for c in again}
        # Unchanged records are the same as before.
        now = {c["id"]: c for c in sim.all_records("inc", "customers", "k", per_page=500)}
        ids = {c["id"] for c in changed}
        assert all(now[i] == before[i] for i in before if i not in ids)


def test_erp_sim_control_api_validates(ctx):
    with simulator(ctx) as sim:
        for body in ({"customers": 1}, {"api_key": "", "customers": 1}, {"api_key": "k", "customers": 100001},
                     {"api_key": "k", "error_rate": 2}, {"api_key": "k", "colour": "red"}):
            st, _, _, j = sim.call("PUT", "/_sim/tenants/bad", body)
            assert st == 400 and j["error"]["code"] == "invalid_body", body
        assert sim.call("PUT", "/_sim/tenants/has%20space", {"api_key": "k"})[0] == 400
        st, _, _, j = sim.call("PUT", "/_sim/tenants/ok", {"api_key": "k", "customers": 3})
        assert st == 201 and j["customers"] == 3
        st, _, _, j = sim.call("PUT", "/_sim/tenants/ok", {"api_key": "k", "customers": 4})
        assert st == 200 and j["customers"] == 4
        st, _, _, j = sim.call("PATCH", "/_sim/tenants/ok", {"latency_ms": 5})
        assert st == 200 and j["knobs"] == {"latency_ms": 5}
        st, _, _, j = sim.call("PATCH", "/_sim/tenants/ok", {"latency_ms": None})
        assert st == 200 and j["knobs"] == {}
        assert sim.call("DELETE", "/_sim/tenants/ok")[0] == 204
        assert sim.call("GET", "/_sim/tenants/ok")[0] == 404
        assert sim.call("PATCH", "/_sim/tenants/ok", {"latency_ms": 1})[0] == 404


# ------------------------------------------------------------------ faults

def test_erp_sim_fault_knobs(ctx):
    with simulator(ctx) as sim:
        sim.tenant("f", key="k", fail=True)
        assert sim.page("f", "customers", "k")[0] == 500
        sim.call("PATCH", "/_sim/tenants/f", {"fail_status": 503})
        assert sim.page("f", "customers", "k")[0] == 503
        # A wrong key is still 401 on a failing tenant.
        assert sim.page("f", "customers", "nope")[0] == 401

        sim.tenant("thr", key="k", throttle_rate=1, retry_after_s=7)
        st, r, _, j = sim.call("GET", "/tenants/thr/products", headers={"X-Api-Key": "k"})
        assert st == 429 and r.getheader("Retry-After") == "7"

        sim.tenant("err", key="k", error_rate=1)
        codes = {sim.page("err", "customers", "k")[0] for _ in range(30)}
        assert codes <= {500, 502, 503} and len(codes) >= 2, codes

        sim.tenant("bad", key="k", malformed_rate=1)
        for _ in range(10):
            st, j, raw = sim.page("bad", "customers", "k")
            assert st == 200
            assert j is None or not isinstance(j.get("data"), list) or "has_more" not in j, raw[:100]

        sim.tenant("slow", key="k", latency_ms=300)
        t = time.monotonic()
        assert sim.page("slow", "customers", "k")[0] == 200
        assert time.monotonic() - t >= 0.3

        sim.tenant("hang", key="k", timeout_rate=1, hang_ms=400)
        t = time.monotonic()
        try:
            sim.page("hang", "customers", "k")
            raise AssertionError("a hanging call answered")
        except (http.client.RemoteDisconnected, ConnectionResetError):
            pass
        assert time.monotonic() - t >= 0.4
        assert sim.stats()["tenants"]["hang"]["hangs"] == 1


def test_erp_sim_global_defaults_from_env_and_patch(ctx):
    with simulator(ctx, ERP_SIM_ERROR_RATE="1") as sim:
        sim.tenant("a", key="k")
        assert sim.page("a", "customers", "k")[0] >= 500
        sim.call("PATCH", "/_sim/tenants/a", {"error_rate": 0})   # a tenant override wins
        assert sim.page("a", "customers", "k")[0] == 200
        sim.tenant("b", key="k")
        st, _, _, j = sim.call("PATCH", "/_sim/defaults", {"error_rate": 0, "latency_ms": 1})
        assert st == 200 and j["error_rate"] == 0 and j["latency_ms"] == 1
        assert sim.page("b", "customers", "k")[0] == 200
        assert sim.call("PATCH", "/_sim/defaults", {"nope": 1})[0] == 400
    p = subprocess.run([_binary(ctx)], env=dict(os.environ, PORT=str(simproc.free_port()), ERP_SIM_ERROR_RATE="lots"),
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1 and "ERP_SIM_ERROR_RATE" in p.stderr


# ------------------------------------------------------------------ counters

def test_erp_sim_counts_concurrency_per_tenant(ctx):
    with simulator(ctx) as sim:
        sim.tenant("par", key="k", latency_ms=400)
        sim.tenant("seq", key="k", latency_ms=50)
        with concurrent.futures.ThreadPoolExecutor(3) as ex:
            codes = list(ex.map(lambda _: sim.page("par", "customers", "k")[0], range(3)))
        assert codes == [200, 200, 200]
        for _ in range(3):
            sim.page("seq", "products", "k")
        t = sim.stats()["tenants"]
        assert t["par"]["max_concurrent"] == 3, t["par"]
        assert t["seq"]["max_concurrent"] == 1, t["seq"]
        assert t["par"]["concurrent"] == 0 and t["seq"]["concurrent"] == 0


def test_erp_sim_counts_requests_and_job_starts(ctx):
    with simulator(ctx) as sim:
        sim.tenant("s1", key="k", customers=250)
        sim.tenant("s2", key="k", products=250)
        t0 = int(time.time() * 1000)
        sim.all_records("s1", "customers", "k", per_page=100)     # 3 requests, 1 start
        sim.all_records("s2", "products", "k", per_page=100)      # 3 requests, 1 start
        sim.page("s1", "customers", "k", "?page=2")                # not a start
        s = sim.stats()
        assert s["total"] == 7 and s["starts"] == 2
        assert s["tenants"]["s1"]["requests"] == 4 and s["tenants"]["s1"]["starts"] == 1
        assert sum(x[1] for x in s["seconds"]) == 7 and sum(x[2] for x in s["seconds"]) == 2
        starts = sim.call("GET", "/stats/starts?since_ms=%d" % t0)[3]["starts"]
        assert [(x["tenant"], x["kind"]) for x in starts] == [("s1", "customers"), ("s2", "products")]
        assert all(t0 <= x["at_ms"] <= int(time.time() * 1000) for x in starts)
        assert sim.call("GET", "/stats/starts?since_ms=%d" % (starts[-1]["at_ms"] + 1))[3]["starts"] == []
        assert sim.call("DELETE", "/stats")[0] == 204
        s = sim.stats()
        assert s["total"] == 0 and s["starts"] == 0 and s["tenants"]["s1"]["requests"] == 0
        assert sim.call("GET", "/stats/starts")[3]["starts"] == []


def test_erp_sim_sigterm_ends_a_hanging_call_and_exits_0(ctx):
    with simulator(ctx) as sim:
        sim.tenant("h", key="k", timeout_rate=1, hang_ms=60000)
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(lambda: sim.page("h", "customers", "k"))
            time.sleep(0.3)
            t = time.monotonic()
            sim.proc.send_signal(signal.SIGTERM)
            assert sim.proc.wait(10) == 0
            assert time.monotonic() - t < 5
            try:
                fut.result(10)
            except (http.client.HTTPException, OSError):
                pass
