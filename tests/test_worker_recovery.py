"""A single-process host on SQLite, SIGKILLed mid-step and started again (real processes): the new
process takes the step over as it starts — its predecessor's pid is gone from this host — not
after the 60 s lease; the task then completes and a clean stop leaves no registration behind."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent / "tasker-host"
STEP = "validate_payment_eligibility"


def cli(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), "--database-url", f"sqlite:///{db}", *args], capture_output=True, text=True,
                          env=os.environ, timeout=60)


def start_worker(db: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as err:
        return subprocess.Popen([str(BIN), "--database-url", f"sqlite:///{db}", "worker"], stderr=err,
                                stdout=subprocess.DEVNULL)


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` (a database read) until it returns something truthy, for at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.02)
    return value


def step_row(db: Path, task_id: str) -> tuple[Any, ...] | None:
    rows = query(db, "SELECT state, attempts, started_at, lease_owner, last_error FROM steps "
                     "WHERE task_id = ? AND name = ?", task_id, STEP)
    return rows[0] if rows else None


@pytest.mark.skipif(not BIN.exists(), reason="tasker-host is not installed in this environment")
def test_a_restarted_host_takes_its_killed_predecessors_step_over_at_once(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    context = {"payment_id": "pay_123", "refund_amount": 4999, "simulate": {STEP: ["slow:12"]}}
    created = cli(db, "run", "payments.process_refund@2.1.3", "--context", json.dumps(context), "--detach", "--json")
    assert created.returncode == 0, created.stderr
    task_id = json.loads(created.stdout)["id"]
    first = start_worker(db, tmp_path / "first.log")
    second = None
    try:
        wait_for(lambda: (row := step_row(db, task_id)) and row[0] == "in_progress", 30, "the step to start")
        [(dead_owner,)] = query(db, "SELECT id FROM workers")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        restarted_at = time.time()
        second = start_worker(db, tmp_path / "second.log")
        _, _, started_at, _, error = wait_for(
            lambda: (row := step_row(db, task_id)) and row[1] == 2 and row, 30, "the step to be taken over")
        assert started_at - restarted_at < 10, "taken over only after the process started plus 10 s"
        assert json.loads(error) == {"type": "WorkerLost", "kind": "lost", "message": (
            f"attempt 1 lost with worker {dead_owner} (process {first.pid} on {dead_owner.split(':')[0]} is gone)")}
        [(owner,)] = query(db, "SELECT id FROM workers")  # the new process (its predecessor reaped)
        reclaim = query(db, "SELECT reason FROM transitions WHERE task_id = ? AND step = ? AND from_state = "
                            "'in_progress' AND to_state = 'in_progress'", task_id, STEP)
        assert reclaim == [(f"lease of {dead_owner} (lost) expired; claimed by {owner}",)]
        wait_for(lambda: query(db, "SELECT status FROM tasks WHERE id = ?", task_id) == [("complete",)], 60,
                 "the task to complete")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, (tmp_path / "second.log").read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert query(db, "SELECT id FROM workers") == []  # the clean stop deregistered
