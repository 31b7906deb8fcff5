"""A real ``tasker-host worker`` on PostgreSQL whose connections are terminated again and again
(``pg_terminate_backend``) while it works through 150 refunds: it never exits, finishes every
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
TASKS = 150
FAULT_EVERY = 0.25  # seconds between terminations while tasks are left
GIVE_UP = 120.0


def unfinished(host) -> int:
    return sum(t.status.value != "complete" for t in host.store.list_tasks(TaskFilter(limit=10_000)))


def test_a_worker_rides_out_repeated_connection_terminations(postgres_url, postgres_server_url, tmp_path):
    url, name = with_application_name(postgres_url)
    creator_url, _ = with_application_name(postgres_url)  # the creating side is not terminated
    host = make_host(creator_url)
    for i in range(TASKS):
        context = {**SEED_PAYMENTS["context"], "payment_id": f"pay_{i}"}
        host.service.create_task("payments", "process_refund", "2.1.3", context)
    terminate = Terminator(postgres_server_url, name)
    log = tmp_path / "worker.log"
    with open(log, "w") as err:
        worker = subprocess.Popen([str(BIN), "worker", "--poll-seconds", "0.2"], stderr=err,
                                  stdout=subprocess.DEVNULL, env={**os.environ, "TASKER_DATABASE_URL": url})
    try:
        deadline = time.monotonic() + GIVE_UP
        while unfinished(host):
            assert worker.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{unfinished(host)} tasks left; log:\n{log.read_text()[-3000:]}"
            terminate()
            time.sleep(FAULT_EVERY)  # the fault injector's cadence, not a wait for work
        assert worker.poll() is None
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
        terminate.close()
        host.close()
    text = log.read_text()
    assert terminate.killed >= 3, "the worker's connections were terminated while it worked"
    outages = text.count("database unavailable (")
    assert outages >= 1 and text.count("database available again after") == outages, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
