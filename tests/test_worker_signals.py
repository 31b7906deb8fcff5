"""`tasker-host worker` as a real process: SIGTERM lets the running step finish, claims nothing
new, commits, and exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
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
    watchdog = threading.Timer(60, worker.kill)  # a worker that never logs the start cannot hang the test
    watchdog.start()
    try:
        seen: list[str] = []
        for line in worker.stderr:  # the worker logs each transition: wait for the slow step's start
            seen.append(line)
            if "step validate_payment_eligibility of" in line and " started " in line:
                break
        else:
            raise AssertionError("the worker never started the slow step:\n" + "".join(seen))
        worker.send_signal(signal.SIGTERM)  # (at once: polling with CLI processes could miss the step)
        rest = "".join(seen) + worker.stderr.read()
        assert worker.wait(timeout=60) == 0, rest
    finally:
        watchdog.cancel()
        worker.kill()
    assert "SIGTERM: finishing running steps" in rest and "worker stopped" in rest
    steps = {s["name"]: s for s in json.loads(cli(db, "tasks", "show", task_id, "--json").stdout)["steps"]}
    assert steps["validate_payment_eligibility"]["state"] == "complete"  # finished within the grace
    assert steps["process_gateway_refund"]["state"] == "pending"  # nothing new was claimed
