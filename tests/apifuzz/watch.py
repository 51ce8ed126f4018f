"""Side channels the fuzzer watches around every request, to see what a response cannot show:

- PgWatch: did the request commit a write to PostgreSQL? A persistent psql session (one round
  trip ~1 ms) reads the next transaction id before and after the request; transaction ids handed
  out in between that COMMITTED and left rows (xmin) in a platform table are writes (tables only
  background consumers write, BACKGROUND_TABLES, are not looked at). Rolled-back
  transactions (a refused posting that locked balance rows) and autovacuum's own transactions
  leave no such rows, so they do not count.
- RedisWatch: which Redis commands ran meanwhile? A MONITOR connection streams every command
  (commands run by Lua scripts included); the fuzzer brackets a request between two ECHO markers
  sent on a second connection, so the commands in between are exactly those Redis executed
  during the request (plus the sync workers' polling, which writes no key the checks look at).
- LogWatch: new lines in Nginx's error log about upstreams (an instance that closed a connection
  without answering, a timeout, an instance marked down: Nginx retries idempotent requests on
  the other instance, so the client may never see it) and service log lines at level error or
  from libmicrohttpd's internal-error path.
- dead_processes: instances (and Nginx) whose pid is gone.

All of this is test machinery: it needs the stack's superuser socket and an unauthenticated local
Redis, which the test stack provides (scripts/stack).
"""

import collections
import os
import re
import socket
import subprocess
import threading

import lib

PLATFORM_SCHEMAS = ("customers", "transactions", "sync")
# Written in the background, not by the request being watched: event ingestion's consumers store
# accepted events (and their daily partitions) up to EVENTS_FLUSH_MS after the 202, while later
# requests run. What a request itself may not do there — queue an event when refused — shows in
# Redis instead (oracle._protected: an XADD to the events stream).
BACKGROUND_TABLES = re.compile(r"^sync\.events(_p[0-9]{8})?$")


class PgWatch:
    def __init__(self, ctx):
        conninfo = ctx.pg_conninfo or "host=%s port=%d dbname=platform user=postgres" % (
            os.path.join(ctx.run_dir, "pg", "sock"), ctx.pg_port)
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0", "-d", conninfo],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        tables = self.query("SELECT string_agg(format('%I.%I', table_schema, table_name), ' ') FROM "
                            "information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema IN "
                            "('customers', 'transactions', 'sync') AND table_name <> 'schema_migrations';")
        self.tables = [t for t in tables.split() if not BACKGROUND_TABLES.match(t)]

    def query(self, sql):
        """One single-line, single-value query on the persistent session."""
        self.proc.stdin.write(sql.rstrip(";") + ";\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the watching psql session ended")
        return line.strip()

    def mark(self):
        return int(self.query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"))

    def writes_since(self, x0):
        """[(table, rows)] written by transactions that began after mark x0 and committed."""
        x1 = self.mark()
        if x1 == x0:
            return []
        committed = self.query("SELECT coalesce(string_agg(x::text, ','), '') FROM generate_series(%d, %d) x "
                               "WHERE pg_xact_status(x::text::xid8) = 'committed'" % (x0, x1 - 1))
        if not committed:
            return []
        xids = ",".join(str(int(x) & 0xFFFFFFFF) for x in committed.split(","))
        out = []
        for t in self.tables:
            n = int(self.query("SELECT count(*) FROM %s WHERE xmin::text::bigint IN (%s)" % (t, xids)))
            if n:
                out.append((t, n))
        return out

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def _resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


_ARG_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
MonitorLine = collections.namedtuple("MonitorLine", "client args")


class RedisWatch:
    def __init__(self, ctx):
        self.addr = ("127.0.0.1", ctx.redis_port)
        self.password = ctx.redis_password()
        self.lines = []
        self.cond = threading.Condition()
        self.seq = 0
        self.mon = self._connect()
        self.mon.sendall(_resp_command("MONITOR"))
        self.reader = self.mon.makefile("rb")
        if not self.reader.readline().startswith(b"+OK"):
            raise AssertionError("redis MONITOR refused")
        self.ctl = self._connect()
        self.ctl_reader = self.ctl.makefile("rb")
        self.thread = threading.Thread(target=self._read, name="redis-monitor", daemon=True)
        self.thread.start()

    def _connect(self):
        s = socket.create_connection(self.addr, timeout=10)
        if self.password:
            s.sendall(_resp_command("AUTH", self.password))
            if not s.makefile("rb").readline().startswith(b"+OK"):
                raise AssertionError("redis AUTH failed")
        return s

    def _read(self):
        self.mon.settimeout(None)
        for raw in self.reader:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not text.startswith("+"):
                continue
            head, sep, rest = text.partition("] ")
            if not sep:
                continue
            client = head.rsplit(" ", 1)[-1]
            args = [a.replace('\\"', '"') for a in _ARG_RE.findall(rest)]
            with self.cond:
                self.lines.append(MonitorLine(client, args))
                self.cond.notify_all()

    def mark(self):
        """Index in self.lines just after a fresh marker (all earlier commands are before it)."""
        self.seq += 1
        token = "apifuzz-mark-%d" % self.seq
        self.ctl.sendall(_resp_command("ECHO", token))
        self.ctl_reader.readline()
        self.ctl_reader.readline()
        with self.cond:
            ok = self.cond.wait_for(lambda: any(l.args[:2] == ["ECHO", token] for l in self.lines[-200:]), timeout=5)
            if not ok:
                raise AssertionError("redis MONITOR did not show the marker within 5 s")
            for i in range(len(self.lines) - 1, -1, -1):
                if self.lines[i].args[:2] == ["ECHO", token]:
                    return i + 1
        return len(self.lines)

    def since(self, start, end):
        with self.cond:
            out = self.lines[start:end - 1]
            if end > 10000:                 # keep memory bounded across a long run
                del self.lines[:end - 1]
        return out

    def close(self):
        for s in (self.mon, self.ctl):
            try:
                s.close()
            except OSError:
                pass


WRITE_COMMANDS = {"SET", "SETEX", "PSETEX", "SETNX", "GETSET", "GETDEL", "GETEX", "DEL", "UNLINK", "EXPIRE",
                  "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "HSET", "HSETNX", "HMSET", "HDEL", "HINCRBY",
                  "INCR", "INCRBY", "DECR", "DECRBY", "SADD", "SREM", "SPOP", "SMOVE", "ZADD", "ZREM", "ZINCRBY",
                  "XADD", "XDEL", "XTRIM", "LPUSH", "RPUSH", "LPOP", "RPOP", "LREM", "RENAME", "APPEND", "COPY",
                  "MSET", "HINCRBYFLOAT", "INCRBYFLOAT", "SINTERSTORE", "SUNIONSTORE", "ZUNIONSTORE"}


def redis_writes(lines):
    """[(command, key)] of the write commands among MONITOR lines."""
    out = []
    for l in lines:
        if l.args and l.args[0].upper() in WRITE_COMMANDS:
            out.append((l.args[0].upper(), l.args[1] if len(l.args) > 1 else ""))
    return out


class LogWatch:
    UPSTREAM_RE = re.compile(r"\[(error|crit|alert|emerg)\].*upstream")
    SERVICE_RE = re.compile(r'"level":"error"|internal error|Not enough memory|AddressSanitizer|runtime error')

    def __init__(self, ctx):
        self.ctx = ctx
        self.offsets = {}
        for name in self._names():
            self.offsets[name] = self._size(name)

    def _names(self):
        return [n for n in self.ctx.log_names() if n.startswith(("nginx-error", "customers-", "transactions-", "sync-"))]

    def _size(self, name):
        try:
            return os.path.getsize(self.ctx.log_path(name))
        except OSError:
            return 0

    def new_problems(self):
        """Lines written since the last call that report a problem."""
        out = []
        for name in self._names():
            start, size = self.offsets.get(name, 0), self._size(name)
            if size <= start:
                self.offsets[name] = size
                continue
            with open(self.ctx.log_path(name), "rb") as f:
                f.seek(start)
                chunk = f.read(size - start)
            cut = chunk.rfind(b"\n") + 1          # only whole lines; the rest next time
            self.offsets[name] = start + cut
            rx = self.UPSTREAM_RE if name.startswith("nginx") else self.SERVICE_RE
            for line in chunk[:cut].decode("utf-8", "replace").splitlines():
                if rx.search(line):
                    out.append("%s: %s" % (name, line[:300]))
        return out


def _nginx_pid(ctx):
    try:
        with open(os.path.join(ctx.run_dir, "nginx", "nginx.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def dead_processes(ctx):
    pids = [(n, ctx.pid_of(n)) for n in ctx.instances] + [("nginx", _nginx_pid(ctx))]
    return [n for n, pid in pids if not (pid and lib.pid_alive(pid))]
