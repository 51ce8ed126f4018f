"""Running one simulator (tools/legacy-api, tools/erp-api) as a child process for a test.

The simulator tests start their own simulator on a free port (the stack is not needed), with the
environment of the test run minus the simulator's own knob variables (so a knob set in the shell
does not leak into a test), then the test's settings; it must answer GET /health within 10 s.
Leaving the `with` block stops it with SIGTERM (SIGKILL after 10 s). Standard library only.
"""

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time


def binary(ctx, name, env_var):
    """<build>/<name>, or $env_var when set; it must exist."""
    path = os.environ.get(env_var) or os.path.join(ctx.build_dir, name)
    assert os.access(path, os.X_OK), "simulator binary missing: %s (run make)" % path
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        c.request("GET", "/health")
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


@contextlib.contextmanager
def simulator(path, make_sim, knob_prefix, cwd=None, **env):
    """Yields make_sim(proc, port) once the simulator at path is healthy. Variables starting with
    knob_prefix are dropped from the inherited environment; env (values str()-ed) is added, after
    PORT and LOG_LEVEL=warn."""
    port = free_port()
    e = {k: v for k, v in os.environ.items() if not k.startswith(knob_prefix)}
    e.update(PORT=str(port), LOG_LEVEL="warn")
    e.update({k: str(v) for k, v in env.items()})
    proc = subprocess.Popen([path], env=e, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, "simulator exited: %s" % proc.stderr.read().decode(errors="replace")
            try:
                if _health(port) == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "simulator not healthy within 10 s"
            time.sleep(0.05)
        yield make_sim(proc, port)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stderr.close()
