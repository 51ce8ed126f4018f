"""The README's "First steps" block, run as written against the test stack, so it stays true.

The block (after the `first-steps` marker in README.md) is run by bash with three substitutions:
the dev stack's address and run directory become the test stack's, and the user names alice/bob
get a unique suffix (the stack may hold them from an earlier run). The legacy simulator is
pointed at a 3,000-user export for the import (the dev stack's is 1,000,000). What a newcomer
would see is then checked: the registered user, the deposit and the transfer, a balance of
74.50, the import's progress lines ending COMPLETED with every record inserted.
"""
import json
import os
import re
import subprocess

import test_sync

COUNT = 3000


def readme_block(repo):
    text = open(os.path.join(repo, "README.md"), encoding="utf-8").read()
    m = re.search(r"<!-- first-steps:[^>]*-->\s*```sh\n(.*?)```", text, re.S)
    assert m, "README.md has no first-steps block"
    return m.group(1)


def json_docs(text):
    """Every JSON document in text, in order (jq prints them pretty, one after the other)."""
    dec, docs, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return docs
        doc, i = dec.raw_decode(text, i)
        docs.append(doc)


def test_readme_first_steps_work_as_written(ctx):
    block = readme_block(ctx.repo)
    assert "http://localhost:8080" in block and ".run/dev/" in block
    tag = os.urandom(4).hex()
    script = (block.replace("http://localhost:8080", ctx.base)
              .replace(".run/dev/", ctx.run_dir.rstrip("/") + "/")
              .replace("alice", "alice_" + tag).replace("bob", "bob_" + tag))
    test_sync.reset_sync_state(ctx)
    restore = test_sync.configure_sync(ctx, test_sync.legacy_base(ctx) + "/users?count=%d&seed=5" % COUNT)
    try:
        p = subprocess.run(["bash", "-eu", "-c", script], cwd=ctx.repo, capture_output=True, text=True, timeout=150)
    finally:
        restore()
    assert p.returncode == 0, "the block exited %d: %s" % (p.returncode, (p.stderr or p.stdout)[-800:])
    docs = json_docs(p.stdout)
    assert len(docs) == 5, "expected 5 JSON answers on stdout, got %d: %s" % (len(docs), p.stdout[-800:])
    alice, deposit, transfer, balance, run = docs
    assert alice.get("user_name") == "alice_" + tag and "password_hash" not in alice, alice
    assert deposit.get("type") == "deposit" and deposit.get("amount") == "100.00", deposit
    assert transfer.get("type") == "transfer" and transfer.get("amount") == "25.50", transfer
    assert balance.get("balances") == [{"currency": "BRL", "balance": "74.50"}], balance
    assert run.get("status") in ("PENDING", "RUNNING") and run.get("id"), run
    progress = [json.loads(l) for l in p.stderr.splitlines() if l.startswith("{")]
    assert progress, "no progress lines on stderr: %r" % p.stderr[-500:]
    last = progress[-1]
    assert last["status"] == "COMPLETED", progress[-3:]
    assert last["received"] == COUNT and last["inserted"] == COUNT, last


test_readme_first_steps_work_as_written.timeout = 240
