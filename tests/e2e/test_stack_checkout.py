"""The local stack starts wherever a user keeps the checkout (scripts/stack, docs/operations.md).

Root's home on Debian is 0700, so user postgres (which PostgreSQL runs as when the stack runs as
root) cannot reach a checkout under it: `make up` used to stop with "every parent directory must be
world-traversable". Now PostgreSQL's directory moves to a private directory of user postgres,
keyed by RUN_DIR, with $RUN_DIR/pg a symlink to it; nothing of the user's is chmod'ed.

The test starts a second, whole stack with its RUN_DIR inside a fresh 0700 directory (PORT_BASE of
the test stack + 500, so it meets neither the test stack nor another checkout's), uses it through
its Nginx, stops and starts it again (the data is kept), and finally `scripts/stack clean` deletes
its state, the private directory included. Run by a non-root user, PostgreSQL runs as that user
and the directory stays in the tree; the stack must start all the same.
"""

import os
import pwd
import shutil
import stat
import subprocess
import tempfile


def _stack(ctx, env, *args, timeout=240):
    p = subprocess.run([os.path.join(ctx.repo, "scripts", "stack")] + list(args), cwd=ctx.repo, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, "scripts/stack %s (RUN_DIR=%s) exited %d:\n%s" % (
        " ".join(args), env["RUN_DIR"], p.returncode, "\n".join((p.stderr or p.stdout).splitlines()[-25:]))
    return p


def _psql(socket_dir, port, sql):
    p = subprocess.run(["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", socket_dir, "-p", str(port),
                        "-U", "postgres", "-d", "platform", "-c", sql],
                       capture_output=True, text=True, timeout=30, env=dict(os.environ, PGCONNECT_TIMEOUT="5"))
    assert p.returncode == 0, "psql %r: %s" % (sql, p.stderr.strip())
    return p.stdout.strip()


def _register_and_login(ctx, base):
    name = "e2e_home_" + os.urandom(5).hex()
    password = "pw-" + os.urandom(9).hex()
    r = ctx.http("POST", base + "/api/auth/register",
                 body={"user_name": name, "email": name.replace("_", "-") + "@example.test", "name": "Home",
                       "password": password}, timeout=15)
    assert r.status == 201, "register through the second stack -> %d %r" % (r.status, r.body[:300])
    r = ctx.http("POST", base + "/api/auth/login", body={"login": name, "password": password}, timeout=15)
    assert r.status == 200 and r.json.get("access_token"), "login -> %d %r" % (r.status, r.body[:300])


def test_the_stack_starts_from_a_checkout_under_a_0700_directory(ctx):
    os.makedirs(os.path.join(ctx.repo, ".run"), exist_ok=True)
    home = tempfile.mkdtemp(prefix="home-0700-", dir=os.path.join(ctx.repo, ".run"))   # mode 0700
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    run_dir = os.path.join(home, "run")
    port_base = ctx.port_base + 500
    env = dict(ctx.stack_env, RUN_DIR=run_dir, PORT_BASE=str(port_base), NGINX_PORT=str(port_base + 80),
               BUILD_DIR=ctx.build_dir)
    base = "http://127.0.0.1:%d" % (port_base + 80)
    as_root = os.geteuid() == 0
    private_root = os.path.join(pwd.getpwnam("postgres").pw_dir, "platform-stack") if as_root else None
    link = os.path.join(run_dir, "pg")
    target = None
    try:
        _stack(ctx, env, "up")
        assert stat.S_IMODE(os.stat(home).st_mode) == 0o700, "the stack changed the mode of the user's directory"
        if as_root:
            assert os.path.islink(link), "%s is not a symlink to a directory user postgres can reach" % link
            target = os.readlink(link)
            assert target.startswith(private_root + "/"), target
            st = os.stat(target)
            assert pwd.getpwuid(st.st_uid).pw_name == "postgres" and stat.S_IMODE(st.st_mode) == 0o700, \
                "%s: owner %s, mode %o" % (target, pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode))
            with open(os.path.join(target, "checkout")) as f:
                assert f.read().strip() == run_dir
        # the whole stack works: Nginx, the services, PostgreSQL and Redis behind them
        r = ctx.http("GET", base + "/health/customers", timeout=10)
        assert r.status == 200, "/health/customers of the second stack -> %d %r" % (r.status, r.body[:300])
        _register_and_login(ctx, base)
        # the server's log stays in the tree, although the server cannot reach it
        with open(os.path.join(run_dir, "logs", "postgres.log"), errors="replace") as f:
            assert "database system is ready to accept connections" in f.read()
        vars_ = dict(line.split("=", 1) for line in _stack(ctx, env, "vars").stdout.splitlines() if "=" in line)
        sock = vars_["PG_SOCKET_DIR"]
        _psql(sock, port_base + 10, "CREATE TABLE kept_across_restarts (x int); INSERT INTO kept_across_restarts VALUES (7)")
        # down keeps the data; up finds the same directory again through the symlink
        _stack(ctx, env, "down")
        _stack(ctx, env, "up")
        assert _psql(os.path.join(link, "sock") if as_root else sock, port_base + 10,
                     "SELECT x FROM kept_across_restarts") == "7"
        _register_and_login(ctx, base)
    finally:
        cleaned = subprocess.run([os.path.join(ctx.repo, "scripts", "stack"), "clean"], cwd=ctx.repo, env=env,
                                 capture_output=True, text=True, timeout=240)
        shutil.rmtree(home, ignore_errors=True)
    assert cleaned.returncode == 0, "scripts/stack clean exited %d: %s" % (cleaned.returncode, cleaned.stderr[-2000:])
    assert not os.path.exists(run_dir)
    if target:
        assert not os.path.exists(target), "scripts/stack clean left %s behind" % target


test_the_stack_starts_from_a_checkout_under_a_0700_directory.timeout = 400
