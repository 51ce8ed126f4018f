#!/usr/bin/python3
"""End-to-end test runner: python3 tests/e2e/run.py [-x] [-l] [FILTER ...]

Discovers tests/e2e/test_*.py and runs every top-level function named test_* in file order
(file order matters: tests that restart parts of the stack are written last in their file).
A FILTER keeps tests whose "<module>.<function>" contains it (module = file name without the
test_ prefix), e.g. `run.py foundation` or `run.py cors redis`. -x stops at the first failure,
-l lists the selected tests without running them.

Each test gets a lib.Ctx built from the environment (RUN_DIR, PORT_BASE, NGINX_PORT,
TEST_BASE_URL, TEST_PG_CONNINFO; see README.md). A test fails on any exception; each one also
has a watchdog (SIGALRM; default TEST_TIMEOUT_S=90, or the function's `timeout` attribute) so one
hung request cannot hang the run. Output is one line per test and, last, exactly
"e2e: N passed, M failed"; the exit status is 1 when anything failed (or nothing matched).

Runs under Debian's /usr/bin/python3 when the interpreter on PATH lacks Debian's python3-*
modules (pyenv builds do), since some test files use python3-jwt / python3-cryptography.
"""

import importlib.util
import inspect
import os
import signal
import sys
import time
import traceback


def _reexec_with_debian_python():
    debian = "/usr/bin/python3"
    if os.environ.get("E2E_NO_REEXEC") or os.path.realpath(sys.executable) == os.path.realpath(debian):
        return
    try:
        import jwt  # noqa: F401  (python3-jwt)
        return
    except ImportError:
        pass
    if os.access(debian, os.X_OK):
        os.environ["E2E_NO_REEXEC"] = "1"
        os.execv(debian, [debian] + sys.argv)


HERE = os.path.dirname(os.path.abspath(__file__))


class TestTimeout(Exception):
    pass


def discover(directory=HERE):
    """[(display_name, function)] for every test_* function of every test_*.py, in file order."""
    sys.path.insert(0, directory)
    tests = []
    for fname in sorted(os.listdir(directory)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        modname = fname[:-3]
        spec = importlib.util.spec_from_file_location(modname, os.path.join(directory, fname))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod
        spec.loader.exec_module(mod)
        funcs = [f for name, f in vars(mod).items()
                 if name.startswith("test_") and inspect.isfunction(f) and f.__module__ == modname]
        funcs.sort(key=lambda f: f.__code__.co_firstlineno)
        short = modname[len("test_"):]
        tests.extend(("%s.%s" % (short, f.__name__), f) for f in funcs)
    return tests


def select(tests, filters):
    if not filters:
        return list(tests)
    return [(n, f) for n, f in tests if any(flt in n for flt in filters)]


def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


def run_one(name, fn, ctx, default_timeout, out=sys.stdout):
    """Runs one test; prints its line; returns True when it passed."""
    limit = int(getattr(fn, "timeout", default_timeout))
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(limit)
    t0 = time.monotonic()
    try:
        fn(ctx)
        ok, err = True, None
    except BaseException as exc:  # noqa: B902 - a test may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        ok, err = False, exc
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    ms = (time.monotonic() - t0) * 1000
    if ok:
        print("ok   %s (%d ms)" % (name, ms), file=out, flush=True)
        return True
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if not isinstance(err, AssertionError):
        reason = "%s: %s" % (type(err).__name__, reason)
    print("FAIL %s: %s (%d ms)" % (name, reason, ms), file=out)
    tb = traceback.format_exception(type(err), err, err.__traceback__)
    lines = [l for l in "".join(tb).rstrip().splitlines() if l.strip(" ^~")]
    for line in lines[-6:]:
        print("     " + line, file=out)
    out.flush()
    return False


def main(argv):
    _reexec_with_debian_python()
    sys.path.insert(0, HERE)
    import lib

    flags = [a for a in argv if a.startswith("-")]
    filters = [a for a in argv if not a.startswith("-")]
    unknown = [f for f in flags if f not in ("-x", "-l")]
    if unknown:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    selected = select(discover(), filters)
    if "-l" in flags:
        for name, _ in selected:
            print(name)
        return 0
    ctx = lib.Ctx()
    if not selected:
        print("no test matches %s" % " ".join(filters))
        print("e2e: 0 passed, 0 failed")
        return 1
    probe = None
    try:
        probe = ctx.http("GET", "/health", timeout=2).status
    except OSError as exc:
        probe = exc
    print("e2e: %d tests against %s (RUN_DIR=%s, PORT_BASE=%d); GET /health -> %s" % (
        len(selected), ctx.base, ctx.run_dir, ctx.port_base, probe), flush=True)
    default_timeout = int(os.environ.get("TEST_TIMEOUT_S", "90"))
    passed = failed = 0
    for name, fn in selected:
        if run_one(name, fn, ctx, default_timeout):
            passed += 1
        else:
            failed += 1
            if "-x" in flags:
                break
    print("e2e: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
