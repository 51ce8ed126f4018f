#!/usr/bin/python3
"""End-to-end test runner: python3 tests/e2e/run.py [-x] [-l] [FILTER ...] [pytest options]

Runs the suite under pytest (Debian's python3-pytest; conftest.py holds the fixtures, the per-test
watchdog and the closing line). Tests run in file name order, each file's tests in the order they
are written. A FILTER keeps tests whose "<module>.<function>" contains it (module = file name
without the test_ prefix), e.g. `run.py foundation` or `run.py cors redis`; -x stops at the first
failure; -l lists the selected tests without running them. Any other option goes to pytest as it
is, e.g. `-k "sync and not killed"`.

The stack comes from the environment (RUN_DIR, PORT_BASE, NGINX_PORT, TEST_BASE_URL,
TEST_PG_CONNINFO; see README.md). A JUnit XML report is written to $RUN_DIR/e2e-junit.xml
(E2E_JUNIT_XML overrides the path). The last line is exactly "e2e: N passed, M failed"; the exit
status is 1 when anything failed (or nothing matched).

Re-executes itself under Debian's /usr/bin/python3 when the interpreter on PATH cannot import
pytest or python3-jwt (pyenv builds cannot).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _reexec_with_debian_python():
    debian = "/usr/bin/python3"
    if os.environ.get("E2E_NO_REEXEC") or os.path.realpath(sys.executable) == os.path.realpath(debian):
        return
    try:
        import jwt  # noqa: F401  (python3-jwt)
        import pytest  # noqa: F401  (python3-pytest)
        return
    except ImportError:
        pass
    if os.access(debian, os.X_OK):
        os.environ["E2E_NO_REEXEC"] = "1"
        os.execv(debian, [debian] + sys.argv)


class _Lister:
    """-l: prints "<module>.<function>" of every selected test, as the old runner did."""

    def pytest_collection_finish(self, session):
        for item in session.items:
            module = item.module.__name__
            print("%s.%s" % (module[len("test_"):] if module.startswith("test_") else module, item.name))


def main(argv):
    _reexec_with_debian_python()
    import pytest

    run_dir = os.environ.get("RUN_DIR") or os.environ.get("TEST_RUN_DIR") or ".run/test"
    if not os.path.isabs(run_dir):
        run_dir = os.path.join(REPO, run_dir)
    args = [HERE, "-v", "-s", "--tb=short", "-rfE"]
    listing = False
    words = []
    it = iter(argv)
    for a in it:
        if a == "-l":
            listing = True
        elif a == "-x":
            args.append("-x")
        elif a.startswith("-"):
            args.append(a)
            if a in ("-k", "-m", "-p", "-o", "--junitxml") and "=" not in a:
                args.append(next(it, ""))
        else:
            words.append(a)
    for w in words:
        args += ["--e2e-filter", w]
    if listing:
        quiet = [a for a in args if a not in ("-v", "-s", "--tb=short", "-rfE")]
        return 0 if pytest.main(quiet + ["--collect-only", "-p", "no:terminal"], plugins=[_Lister()]) in (0, 5) else 1
    junit = os.environ.get("E2E_JUNIT_XML") or os.path.join(run_dir, "e2e-junit.xml")
    if os.path.isdir(os.path.dirname(junit)):
        args.append("--junitxml=" + junit)
    rc = pytest.main(args)
    if rc == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("no test matches %s" % " ".join(words))
        print("e2e: 0 passed, 0 failed")
        return 1
    return 0 if rc == pytest.ExitCode.OK else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
