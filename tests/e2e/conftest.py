"""pytest configuration of the end-to-end suite (Debian's python3-pytest).

A test is a top-level `def test_<what>(ctx)` in tests/e2e/test_<topic>.py, as before: `ctx` is the
lib.Ctx of the stack under test (one per session, built from RUN_DIR, PORT_BASE, NGINX_PORT,
TEST_BASE_URL, TEST_PG_CONNINFO). Further fixtures for new tests:
  stack          the same Ctx, after checking that Nginx answers /health (skips nothing: a dead
                 stack fails the test that asked for it)
  user           a fresh registered, logged-in user: {"id", "user_name", "email", "password",
                 "access", "refresh", "user"} (test_customers_auth.new_session)
  admin          the configured first admin, logged in once per session (same keys)
  token          the access token of `user`
  openapi        the openapi_check module (responses validated with python3-jsonschema against
                 docs/openapi.yaml: openapi.check(resp, "GET", "/api/users/{id}"))

What run.py did is kept: files run in name order and tests in the order they are written (a test
that restarts part of the stack is written last in its file); each test has a watchdog
(SIGALRM) of TEST_TIMEOUT_S seconds (90) or the function's `timeout` attribute
(`test_x.timeout = 300`), so one hung request cannot hang the run; `--e2e-filter WORD` keeps
tests whose "<module>.<function>" (module without test_) contains a word, as run.py's FILTER
arguments did; a test function imported from another test file is not run twice. The last line
of the output is exactly "e2e: N passed, M failed" (scripts/test-all adds it to the total).
"""
import os
import signal
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import lib  # noqa: E402
import openapi_check  # noqa: E402

_passed, _failed = set(), set()   # node ids


class TestTimeout(Exception):
    """A test ran longer than its watchdog allowed."""


def pytest_addoption(parser):
    parser.addoption("--e2e-filter", action="append", default=[], metavar="WORD",
                     help='keep tests whose "<module>.<function>" contains WORD (repeatable; any word matches)')


def _short_name(item):
    module = item.module.__name__
    return "%s.%s" % (module[len("test_"):] if module.startswith("test_") else module, item.name)


def pytest_collection_modifyitems(session, config, items):
    words = config.getoption("--e2e-filter")
    keep, drop = [], []
    for item in items:
        fn = getattr(item, "function", None)
        foreign = fn is not None and fn.__module__ != item.module.__name__
        if foreign or (words and not any(w in _short_name(item) for w in words)):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config):
    c = lib.Ctx()
    try:
        probe = c.http("GET", "/health", timeout=2).status
    except OSError as exc:
        probe = exc
    return "e2e: stack at %s (RUN_DIR=%s, PORT_BASE=%d); GET /health -> %s" % (c.base, c.run_dir, c.port_base, probe)


def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    limit = int(getattr(getattr(item, "function", None), "timeout", 0) or os.environ.get("TEST_TIMEOUT_S", "90"))
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def pytest_runtest_logreport(report):
    # A test counts once: failed if its setup, call or teardown failed, else passed after its call.
    if report.failed:
        _failed.add(report.nodeid)
    elif report.when == "call" and report.passed:
        _passed.add(report.nodeid)


def pytest_unconfigure(config):
    # After pytest's own summary, so this is the last line of the output.
    if not config.option.collectonly and not getattr(config.option, "help", False):
        print("e2e: %d passed, %d failed" % (len(_passed - _failed), len(_failed)), flush=True)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def ctx():
    return lib.Ctx()


@pytest.fixture(scope="session")
def stack(ctx):
    r = ctx.http("GET", "/health", timeout=5)
    assert r.status == 200, "the stack under test does not answer: GET /health -> %d" % r.status
    return ctx


@pytest.fixture
def user(stack):
    from test_customers_auth import new_session
    return new_session(stack)


@pytest.fixture(scope="session")
def admin(stack):
    from test_customers_auth import admin_session
    return admin_session(stack)


@pytest.fixture
def token(user):
    return user["access"]


@pytest.fixture(scope="session")
def openapi():
    openapi_check.spec()
    return openapi_check
