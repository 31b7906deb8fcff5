"""`tasker-host worker` as a real process: SIGTERM lets the running step finish, claims nothing
new, commits, and exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "tasker-host"


def cli(db: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), "--database-url", f"sqlite:///{db}", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=60)


@pytest.mark.skipif(not BIN.exists(), reason="tasker-host is not installed in this environment")
def test_sigterm_lets_the_running_step_finish_and_claims_nothing_new(tmp_path):
    db = tmp_path / "t.db"
    context = {"payment_id": "pay_123", "refund_amount": 4999,
               "simulate": {"validate_payment_eligibility": ["slow:1.5"]}}
    created = cli(db, "run", "payments.process_refund@2.1.3", "--context", json.dumps(context), "--detach", "--json")
    assert created.returncode == 0, created.stderr
    task_id = json.loads(created.stdout)["id"]
    worker = subprocess.Popen([str(BIN), "--database-url", f"sqlite:///{db}", "worker", "--grace-seconds", "30"],
                              stderr=subprocess.PIPE, text=True)
    try:
        for line in worker.stderr:  # the worker says it runs; then the slow step starts
            if "running" in line:
                break
        shown = None
        for _ in range(200):  # poll the database until the first step is claimed (bounded)
            shown = json.loads(cli(db, "tasks", "show", task_id, "--json").stdout)
            if shown["steps"][0]["state"] == "in_progress":
                break
        assert shown and shown["steps"][0]["state"] == "in_progress"
        worker.send_signal(signal.SIGTERM)
        rest = worker.stderr.read()
        assert worker.wait(timeout=60) == 0, rest
    finally:
        worker.kill()
    assert "SIGTERM: finishing running steps" in rest and "worker stopped" in rest
    steps = {s["name"]: s for s in json.loads(cli(db, "tasks", "show", task_id, "--json").stdout)["steps"]}
    assert steps["validate_payment_eligibility"]["state"] == "complete"  # finished within the grace
    assert steps["process_gateway_refund"]["state"] == "pending"  # nothing new was claimed
