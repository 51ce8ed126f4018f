"""Helpers for the end-to-end tests: one `Ctx` object handed to every test function.

The tests talk to a real stack (scripts/stack up) through Nginx and, where a test needs it,
directly to one service instance. Everything about where that stack lives comes from the same
environment variables scripts/stack reads (RUN_DIR, PORT_BASE, NGINX_PORT) plus a few TEST_*
overrides, so a test can restart a piece of the stack exactly as the stack script would.

Decisions worth knowing:
- HTTP goes through http.client, never urllib: urllib raises on 4xx/5xx and hides raw headers
  (duplicates matter: a header set both by Nginx and by a service is a bug the tests look for).
- A server may answer (413) and close before the client has finished sending a large body; the
  send error is then swallowed and the response that was already sent is read.
- Only the Python standard library is used here (python3-jwt etc. are for later test files).
"""

import collections
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Instance name -> offset from PORT_BASE (docs: runtime contract).
INSTANCE_OFFSETS = collections.OrderedDict([
    ("customers-1", 101), ("customers-2", 102),
    ("transactions-1", 201), ("transactions-2", 202),
    ("sync-1", 301), ("sync-2", 302),
])
SERVICES = ("customers", "transactions", "sync")

Response = collections.namedtuple("Response", "status headers body json")
PsqlResult = collections.namedtuple("PsqlResult", "rc out err")

UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)


def parse_env_file(path):
    """KEY=VALUE lines as scripts/stack writes them for `env -i` (value verbatim, no quoting;
    blank lines and # comments skipped) -> dict."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if sep and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                env[key] = value
    return env


def pid_alive(pid):
    """True when a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Ctx:
    def __init__(self, environ=None):
        e = dict(os.environ if environ is None else environ)
        self.repo = REPO
        self.port_base = int(e.get("PORT_BASE", "28000"))
        self.nginx_port = int(e.get("NGINX_PORT", str(self.port_base + 80)))
        run_dir = e.get("RUN_DIR") or e.get("TEST_RUN_DIR") or ".run/test"
        self.run_dir = run_dir if os.path.isabs(run_dir) else os.path.join(REPO, run_dir)
        self.base = (e.get("TEST_BASE_URL") or e.get("TEST_NGINX_URL") or
                     "http://127.0.0.1:%d" % self.nginx_port).rstrip("/")
        self.build_dir = os.path.join(REPO, e.get("TEST_BUILD_DIR", e.get("BUILD_DIR", "build")))
        self.pg_port = self.port_base + 10
        self.redis_port = self.port_base + 20
        self.pg_conninfo = e.get("TEST_PG_CONNINFO", "")
        self.instances = collections.OrderedDict(
            (name, "http://127.0.0.1:%d" % (self.port_base + off)) for name, off in INSTANCE_OFFSETS.items())
        self.stack_env = dict(os.environ if environ is None else environ)
        self.stack_env.update(RUN_DIR=self.run_dir, PORT_BASE=str(self.port_base),
                              NGINX_PORT=str(self.nginx_port))
        self.default_timeout = float(e.get("TEST_HTTP_TIMEOUT_S", "10"))

    # ---------------------------------------------------------------- URLs
    def url(self, path):
        """A path through Nginx."""
        return self.base + path

    def direct(self, instance, path=""):
        """A path on one service instance, bypassing Nginx."""
        return self.instances[instance] + path

    def instances_of(self, service):
        return [n for n in self.instances if n.startswith(service + "-")]

    # ---------------------------------------------------------------- HTTP
    def http(self, method, url, body=None, headers=None, raw=None, timeout=None, chunked=False):
        """One request on a fresh connection. url is absolute or a path (through Nginx).

        body: a JSON value (sent with Content-Type: application/json unless headers set one);
        raw: bytes/str sent as is; chunked: send raw with Transfer-Encoding: chunked.
        Returns Response(status, headers, body_bytes, json_or_None); never raises on HTTP errors.
        headers is an http.client.HTTPMessage: case-insensitive get() and get_all()."""
        if not url.startswith("http"):
            url = self.url(url)
        u = urllib.parse.urlsplit(url)
        hdrs = dict(headers or {})
        lower = {k.lower() for k in hdrs}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            if "content-type" not in lower:
                hdrs["Content-Type"] = "application/json"
        elif raw is not None:
            data = raw.encode() if isinstance(raw, str) else bytes(raw)
        conn = http.client.HTTPConnection(u.hostname, u.port or 80,
                                          timeout=self.default_timeout if timeout is None else timeout)
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        try:
            send_error = None
            try:
                if chunked and data is not None:
                    hdrs["Transfer-Encoding"] = "chunked"
                    step = 65536
                    pieces = (data[i:i + step] for i in range(0, len(data), step))
                    conn.request(method, path, body=pieces, headers=hdrs, encode_chunked=True)
                else:
                    conn.request(method, path, body=data, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError) as exc:
                send_error = exc   # the server may have answered early (413) and closed
            try:
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.HTTPException, OSError):
                if send_error is not None:
                    raise send_error
                raise
            return Response(resp.status, resp.headers, payload, _try_json(payload))
        finally:
            conn.close()

    # ---------------------------------------------------------------- stack
    def stack(self, cmd, *args, check=True, timeout=120, env=None):
        """Run scripts/stack <cmd> <args> with the test's RUN_DIR/PORT_BASE/NGINX_PORT."""
        full_env = dict(self.stack_env)
        full_env.update(env or {})
        p = subprocess.run([os.path.join(self.repo, "scripts", "stack"), cmd] + [str(a) for a in args],
                           cwd=self.repo, env=full_env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("scripts/stack %s %s exited %d: %s" % (
                cmd, " ".join(map(str, args)), p.returncode, _tail(p.stderr or p.stdout)))
        return p

    def env_of(self, name):
        """The environment the stack started an instance with ($RUN_DIR/env/<name>.env)."""
        return parse_env_file(os.path.join(self.run_dir, "env", name + ".env"))

    def restart(self, service, timeout=30):
        """Stop and start every instance of a service, then wait until each is ready."""
        for name in self.instances_of(service):
            self.stack("stop-one", name)
            self.stack("start-one", name)
        for name in self.instances_of(service):
            self.wait_healthy(name, timeout=timeout)

    def override_env(self, service, settings, base=None):
        """Restart a service's instances with settings (name -> value) in place of the same names
        in their environment files ($RUN_DIR/env/<instance>.env), written over base (instance ->
        file text; default: the files as they are). Returns the texts it started from, which
        restore_env puts back."""
        if base is None:
            base = {}
            for name in self.instances_of(service):
                with open(os.path.join(self.run_dir, "env", name + ".env"), encoding="utf-8") as f:
                    base[name] = f.read()
        for name, text in base.items():
            lines = [l for l in text.splitlines() if l.split("=", 1)[0] not in settings]
            lines += ["%s=%s" % kv for kv in settings.items()]
            with open(os.path.join(self.run_dir, "env", name + ".env"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        self.restart(service)
        return base

    def restore_env(self, service, saved):
        """Put back the environment files override_env returned, and restart the instances."""
        for name, text in saved.items():
            with open(os.path.join(self.run_dir, "env", name + ".env"), "w", encoding="utf-8") as f:
                f.write(text)
        self.restart(service)

    def pid_of(self, name):
        """pid from $RUN_DIR/pids/<name>.pid, or None."""
        try:
            with open(os.path.join(self.run_dir, "pids", name + ".pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def wait_healthy(self, instance, timeout=15):
        """Wait until an instance answers 200 on /health/ready directly."""
        return self.wait_until(lambda: self.http("GET", self.direct(instance, "/health/ready"), timeout=2).status == 200,
                               timeout, what="%s /health/ready 200" % instance)

    # ---------------------------------------------------------------- waiting
    def wait_until(self, fn, timeout=5.0, interval=0.05, what=None):
        """Call fn until it returns a truthy value (returned) or timeout (AssertionError).
        Exceptions from fn count as "not yet" and the last one is reported."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                v = fn()
                if v:
                    return v
                last = "returned %r" % (v,)
            except (AssertionError, OSError, http.client.HTTPException, ValueError) as exc:
                last = "%s: %s" % (type(exc).__name__, exc)
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %.1fs waiting for %s (last: %s)" % (
                    timeout, what or getattr(fn, "__name__", "condition"), last))
            time.sleep(interval)

    # ---------------------------------------------------------------- logs
    def log_path(self, name):
        return os.path.join(self.run_dir, "logs", name + ".log")

    def logs(self, name):
        """Whole text of $RUN_DIR/logs/<name>.log ('' when absent)."""
        try:
            with open(self.log_path(name), encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_names(self):
        d = os.path.join(self.run_dir, "logs")
        try:
            return sorted(f[:-4] for f in os.listdir(d) if f.endswith(".log"))
        except FileNotFoundError:
            return []

    def nginx_access_logs(self):
        """Names of Nginx access log files under $RUN_DIR/logs (whatever the config calls them)."""
        names = [n for n in self.log_names() if "nginx" in n and "error" not in n]
        return [n for n in names if "access" in n] or names

    # ---------------------------------------------------------------- data stores
    def psql(self, sql, user=None, password=None, dbname="platform", check=True, timeout=30,
             host="127.0.0.1", port=None):
        """Run SQL with the psql binary. user=None: superuser (TEST_PG_CONNINFO, else postgres over
        the stack's unix socket $RUN_DIR/pg/sock, which trusts local connections).
        Otherwise log in as that role over TCP with the given password. Returns PsqlResult with
        unaligned, tuples-only output; raises AssertionError on failure when check."""
        env = dict(os.environ)
        env.pop("PGPASSWORD", None)
        if user is None:
            conninfo = self.pg_conninfo or "host=%s port=%d dbname=%s user=postgres" % (
                os.path.join(self.run_dir, "pg", "sock"), self.pg_port, dbname)
        else:
            conninfo = "host=%s port=%d dbname=%s user=%s" % (host, port or self.pg_port, dbname, user)
            if password is not None:
                env["PGPASSWORD"] = password
        p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
                           env=env, capture_output=True, text=True, timeout=timeout)
        r = PsqlResult(p.returncode, p.stdout.strip(), p.stderr.strip())
        if check and r.rc != 0:
            raise AssertionError("psql as %s failed (%d): %s" % (user or "superuser", r.rc, _tail(r.err)))
        return r

    def redis_password(self):
        """Redis password the services use (from customers-1's env), or None."""
        try:
            env = self.env_of("customers-1")
        except OSError:
            return None
        if env.get("REDIS_PASSWORD_FILE"):
            path = env["REDIS_PASSWORD_FILE"]
            path = path if os.path.isabs(path) else os.path.join(self.repo, path)
            with open(path) as f:
                return f.read().rstrip("\n")
        return env.get("REDIS_PASSWORD") or None

    def redis_cli(self, *args, check=True, timeout=10):
        """redis-cli against the stack's Redis; returns stdout stripped."""
        cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis_port)]
        env = dict(os.environ)
        pw = self.redis_password()
        if pw:
            env["REDISCLI_AUTH"] = pw
        p = subprocess.run(cmd + [str(a) for a in args], env=env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("redis-cli %s exited %d: %s" % (" ".join(map(str, args)), p.returncode,
                                                                 _tail(p.stderr or p.stdout)))
        return p.stdout.strip()

    # ---------------------------------------------------------------- processes
    def port_open(self, port, host="127.0.0.1"):
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def signal_pid(self, pid, sig=signal.SIGTERM):
        os.kill(pid, sig)


def _try_json(payload):
    if not payload:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _tail(text, n=5):
    lines = [l for l in (text or "").strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"


# ---------------------------------------------------------------- assertions shared by test files
def assert_envelope(resp, status, cid=None):
    """resp is a JSON error envelope with this status: {"error":{"code","message","details",
    "correlation_id"}} served as application/json. When cid is given the envelope and the
    X-Correlation-ID header must both carry it."""
    ctype = resp.headers.get("Content-Type", "")
    assert resp.status == status, "status %d, want %d; body %r" % (resp.status, status, resp.body[:300])
    assert ctype.split(";")[0].strip().lower() == "application/json", "content-type %r; body %r" % (ctype, resp.body[:200])
    j = resp.json
    assert isinstance(j, dict) and isinstance(j.get("error"), dict), "not an error envelope: %r" % resp.body[:300]
    err = j["error"]
    for key in ("code", "message", "details", "correlation_id"):
        assert key in err, "envelope lacks error.%s: %r" % (key, j)
    assert isinstance(err["code"], str) and err["code"], "error.code must be a non-empty string: %r" % j
    assert isinstance(err["message"], str) and err["message"], "error.message must be a non-empty string: %r" % j
    assert isinstance(err["correlation_id"], str) and err["correlation_id"], "error.correlation_id empty: %r" % j
    if cid is not None:
        assert err["correlation_id"] == cid, "error.correlation_id %r, want %r" % (err["correlation_id"], cid)
        assert resp.headers.get("X-Correlation-ID") == cid, "X-Correlation-ID %r, want %r" % (
            resp.headers.get("X-Correlation-ID"), cid)
    return err


def new_cid(tag="e2e"):
    return "%s-%s" % (tag, os.urandom(8).hex())


def parse_prometheus(text):
    """Prometheus text format -> (samples, types): samples is a list of (name, labels_dict, value),
    types maps metric family name -> type."""
    samples, types = [], {}
    label_re = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 4:
                types[parts[2]] = parts[3]
            continue
        if line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$", line)
        if not m:
            raise ValueError("malformed metrics line: %r" % line)
        labels = dict((k, v.replace('\\"', '"').replace("\\\\", "\\")) for k, v in label_re.findall(m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples, types
