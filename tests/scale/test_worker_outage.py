"""A real ``tasker-host worker`` on PostgreSQL whose connections are terminated again and again
(``pg_terminate_backend``) in each of 3 rounds of 50 refunds: it never exits, finishes every
task, logs each outage with one line when it starts and one when it is over, and still stops
cleanly (exit 0) on SIGTERM. (Before: it exited 1 with an exception-group traceback.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasker_host.store.base import TaskFilter
from tests.api.conftest import SEED_PAYMENTS, make_host
from tests.fault_support import Terminator, with_application_name

pytestmark = pytest.mark.postgres
BIN = Path(sys.executable).parent / "tasker-host"
ROUNDS, PER_ROUND = 3, 50
GIVE_UP = 120.0


def unfinished(host) -> int:
    return sum(t.status.value != "complete" for t in host.store.list_tasks(TaskFilter(limit=10_000)))


def listener_back(log: Path) -> bool:
    text = log.read_text()
    return text.count("wake-up listener lost its connection") == text.count("wake-up listener listening again")


def wait_for(check, what: str, worker: subprocess.Popen, log: Path) -> None:
    """Poll (bounded) for something the worker process does; fail at once if it exited."""
    deadline = time.monotonic() + GIVE_UP
    while not check():
        assert worker.poll() is None, f"the worker exited; log:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}; log:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_a_worker_rides_out_repeated_connection_terminations(postgres_url, postgres_server_url, tmp_path):
    url, name = with_application_name(postgres_url)
    creator_url, _ = with_application_name(postgres_url)  # the creating side is not terminated
    host = make_host(creator_url)
    terminate = Terminator(postgres_server_url, name)
    log = tmp_path / "worker.log"
    with open(log, "w") as err:
        worker = subprocess.Popen([str(BIN), "worker", "--poll-seconds", "0.2"], stderr=err,
                                  stdout=subprocess.DEVNULL, env={**os.environ, "TASKER_DATABASE_URL": url})
    try:
        wait_for(lambda: terminate.listeners() == 1, "the worker to listen", worker, log)
        for round_ in range(ROUNDS):
            for i in range(PER_ROUND):
                context = {**SEED_PAYMENTS["context"], "payment_id": f"pay_{round_}_{i}"}
                host.service.create_task("payments", "process_refund", "2.1.3", context)
            terminate()  # while the worker takes the round's tasks: its pool and its listener
            wait_for(lambda: not unfinished(host), f"round {round_}'s tasks", worker, log)
            wait_for(lambda: listener_back(log), "the listener to say it listens again", worker, log)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
        terminate.close()
        host.close()
    text = log.read_text()
    assert terminate.killed >= ROUNDS, "the worker's connections were terminated while it worked"
    outages = text.count("database unavailable (")
    assert outages >= 1 and text.count("database available again after") == outages, text[-3000:]
    assert text.count("wake-up listener lost its connection") >= 1 and listener_back(log)
    assert "Traceback" not in text, text[-3000:]
