"""What the deployment manifests rely on (deploy/k8s): the migrations Job's MIGRATE_ONLY mode."""
import json
import os
import socket
import subprocess



def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_migrate_only_applies_migrations_and_exits_without_serving(ctx):
    for name in ("customers-1", "transactions-1", "sync-1"):
        env = ctx.env_of(name)
        port = _free_port()
        env.update(HTTP_PORT=str(port), MIGRATE_ONLY="true", SERVICE_INSTANCE=name + "-migrate")
        binary = os.path.join(ctx.build_dir, name.split("-")[0] + "-service")
        p = subprocess.run([binary], env=env, cwd=ctx.repo, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, "%s with MIGRATE_ONLY exited %d: %s" % (name, p.returncode, p.stdout[-500:] + p.stderr[-500:])
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        msgs = [l["msg"] for l in lines]
        assert "migrations applied" in msgs, msgs
        assert any("MIGRATE_ONLY" in m for m in msgs), msgs
        assert "listening" not in msgs, "%s listened although MIGRATE_ONLY was set: %s" % (name, msgs)
        assert not ctx.port_open(port)
        applied = [l for l in lines if l["msg"] == "migrations applied"][0]
        assert applied["fields"]["applied"] == 0, "the stack had applied everything already: %r" % applied
