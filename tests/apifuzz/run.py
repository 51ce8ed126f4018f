#!/usr/bin/python3
"""API fuzzer generated from docs/openapi.yaml:

    python3 tests/apifuzz/run.py [-n MAX_EXAMPLES] [--seed SEED] [--no-shrink] [-x] [-l] [FILTER ...]

Every operation of the document gets random valid and invalid requests (reqgen.py) sent to the
running stack (through Nginx, or to an instance for the instance-only operations), and every
answer is judged by the properties in oracle.py: never a 5xx or a dropped connection, always the
JSON error envelope, the documented status and schema, nothing the document refuses accepted,
nothing written by a refused request.

One test per operation (hypothesis, MAX_EXAMPLES requests each, then shrinking to the smallest
failing request). FILTER keeps operations whose operationId or path contains it. The seed is
random unless given and is printed first: `--seed SEED` generates the same requests again (the
stack's data differ between runs, so answers may too). Output: `ok   <operationId> (...)` or
`FAIL <operationId>: <properties broken>` with the request and the answer; the last line is
exactly `apifuzz: N passed, M failed`; exit status 1 when anything failed.

Environment: the e2e suite's (RUN_DIR, PORT_BASE, NGINX_PORT, TEST_PG_CONNINFO; tests/e2e/README.md),
APIFUZZ_MAX_EXAMPLES (default 20), APIFUZZ_SEED, APIFUZZ_SHRINK_REQUESTS (requests shrinking a
failure may send, default 100). Runs under /usr/bin/python3 (Debian's python3-hypothesis,
python3-jsonschema, python3-yaml).
"""

import collections
import os
import random
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(os.path.dirname(HERE), "e2e")


def _reexec_with_debian_python():
    debian = "/usr/bin/python3"
    if os.environ.get("APIFUZZ_NO_REEXEC") or os.path.realpath(sys.executable) == os.path.realpath(debian):
        return
    try:
        import hypothesis  # noqa: F401
        import jsonschema  # noqa: F401
        return
    except ImportError:
        pass
    if os.access(debian, os.X_OK):
        os.environ["APIFUZZ_NO_REEXEC"] = "1"
        os.execv(debian, [debian] + sys.argv)


def parse_args(argv):
    opts = {"n": int(os.environ.get("APIFUZZ_MAX_EXAMPLES", "20")), "seed": os.environ.get("APIFUZZ_SEED"),
            "shrink_requests": int(os.environ.get("APIFUZZ_SHRINK_REQUESTS", "100")),
            "shrink": True, "x": False, "l": False, "filters": []}
    it = iter(argv)
    for a in it:
        if a in ("-n", "--max-examples"):
            opts["n"] = int(next(it))
        elif a == "--seed":
            opts["seed"] = next(it)
        elif a == "--no-shrink":
            opts["shrink"] = False
        elif a in ("-x", "-l"):
            opts[a[1]] = True
        elif a.startswith("-"):
            raise SystemExit(__doc__.strip().splitlines()[2].strip())
        else:
            opts["filters"].append(a)
    opts["seed"] = int(opts["seed"]) if opts["seed"] not in (None, "") else random.randrange(2 ** 32)
    return opts


def _outcome(resp):
    """"201", "400/validation_failed", "none" (no answer): what the statistics count."""
    if not hasattr(resp, "status"):
        return "none"
    code = ((resp.json or {}).get("error") or {}).get("code") if isinstance(resp.json, dict) else None
    return "%d/%s" % (resp.status, code) if resp.status >= 400 and code else str(resp.status)


def fuzz_operation(op, opts, ctx, world, oracle):
    """Runs one operation's property test; returns (requests sent, exception or None)."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    import oracle as orc
    import reqgen

    statuses = collections.Counter()
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if opts["shrink"] else [])
    # Shrinking sends a request per attempt: after the first failure at most SHRINK_REQUESTS more
    # go out; then only requests already seen failing are sent again (hypothesis replays its
    # smallest failure at the end), every other attempt passes without a request.
    shrink = {"left": None, "failed": set()}

    @seed(opts["seed"])
    @settings(max_examples=opts["n"], deadline=None, database=None, phases=phases, print_blob=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(reqgen.request(op))
    def prop(req):
        key = repr(req)
        if shrink["left"] is not None:
            if shrink["left"] <= 0 and key not in shrink["failed"]:
                return
            shrink["left"] -= 1
        sent = orc.materialize(ctx, world, req)
        resp, marks = oracle.exchange(sent)
        statuses[_outcome(resp)] += 1
        if op.op_id == "triggerSync" and getattr(resp, "status", None) == 202:
            world.wait_run(resp.json["id"])
        if op.template.startswith("/admin/dashboard/api/queues") and op.method == "POST" and \
                getattr(resp, "status", None) == 200:
            world.wait_queues_idle()
        if op.op_id in ERP_SYNC_OPS and getattr(resp, "status", None) == 202:
            world.wait_queues_idle()                  # the ERP jobs write their records and job runs
        err = oracle.judge(sent, resp, marks)
        if err is not None:
            shrink["failed"].add(key)
            if shrink["left"] is None:
                shrink["left"] = opts["shrink_requests"]
            raise err
    try:
        prop()
        return statuses, None
    except Exception as exc:  # noqa: B902 - any failure of the property is reported
        return statuses, exc


ERP_SYNC_OPS = ("syncTenant", "syncAllTenants")


def _both(first, second):
    def restore():
        try:
            second()
        finally:
            first()
    return restore


def main(argv):
    _reexec_with_debian_python()
    sys.path[:0] = [HERE, E2E]
    # hypothesis keeps a cache (and, unused here, an example database) in ./.hypothesis: under the
    # stack's run folder instead of the checkout
    run_dir = os.environ.get("RUN_DIR") or os.environ.get("TEST_RUN_DIR") or "/tmp"
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(run_dir, "hypothesis"))
    opts = parse_args(argv)
    import lib
    import spec_ops
    import world as world_mod
    from oracle import Oracle

    ops = [op for op in spec_ops.load()
           if not opts["filters"] or any(f in op.op_id or f in op.template for f in opts["filters"])]
    if opts["l"]:
        for op in ops:
            print("%-32s %-6s %s" % (op.op_id, op.method, op.template))
        return 0
    if not ops:
        print("no operation matches %s" % " ".join(opts["filters"]))
        print("apifuzz: 0 passed, 1 failed")
        return 1
    ctx = lib.Ctx()
    print("apifuzz: %d operations, %d examples each, seed %d, against %s (RUN_DIR=%s)" % (
        len(ops), opts["n"], opts["seed"], ctx.base, ctx.run_dir), flush=True)
    passed = failed = 0
    restore = oracle = None
    try:
        restore = world_mod.small_legacy_source(ctx)
        if any(op.op_id in ERP_SYNC_OPS for op in ops):
            restore = _both(restore, world_mod.quick_erp_sync(ctx))
        world = world_mod.World(ctx)
        world.ensure_sync_run()
        oracle = Oracle(ctx)
    except Exception as exc:  # noqa: B902
        print("FAIL setup: %s: %s" % (type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""))
        traceback.print_exc(limit=4, file=sys.stdout)
        print("apifuzz: 0 passed, 1 failed")
        if restore:
            restore()
        return 1
    total_requests = 0
    t_all = time.monotonic()
    try:
        for op in ops:
            t0 = time.monotonic()
            statuses, err = fuzz_operation(op, opts, ctx, world, oracle)
            n = sum(statuses.values())
            total_requests += n
            ms = (time.monotonic() - t0) * 1000
            seen = " ".join("%s:%d" % kv for kv in sorted(statuses.items(), key=lambda kv: str(kv[0])))
            lost = world.heal()
            if lost and err is None:
                err = AssertionError("the fixture sessions of %s ended during this operation" % ", ".join(lost))
            if err is None:
                passed += 1
                print("ok   %s (%d requests, %d ms; %s)" % (op.op_id, n, ms, seen), flush=True)
                continue
            failed += 1
            text = str(err).strip() or type(err).__name__
            if not isinstance(err, AssertionError):
                text = "%s: %s" % (type(err).__name__, text)
                text += "\n" + "".join(traceback.format_exception(type(err), err, err.__traceback__)[-4:])
            lines = text.splitlines()
            print("FAIL %s: %s (%d requests, %d ms)" % (op.op_id, lines[0], n, ms))
            for line in lines[1:]:
                print("     " + line)
            print("     reproduce: tests/apifuzz/run.py --seed %d -n %d %s" % (opts["seed"], opts["n"], op.op_id),
                  flush=True)
            if opts["x"]:
                break
    finally:
        oracle.close()
        restore()
    print("apifuzz: %d requests in %.1f s (seed %d)" % (total_requests, time.monotonic() - t_all, opts["seed"]))
    print("apifuzz: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
