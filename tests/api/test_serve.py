"""``tasker-host serve`` as a real process, and the app's graceful shutdown with a step running."""

from __future__ import annotations

import copy
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tasker_host.api import create_app
from tasker_host.engine.events import EventKind
from tasker_host.models import StepState, TaskState
from tasker_host.store import open_store
from tasker_host.store.tokens import token_store_for
from tasker_host.tokens import issue_token

from .conftest import PREFIX, SEED_PAYMENTS, ServerThread, make_host

CLI = "from tasker_host.cli import main; main()"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """A bounded wait for the server process to answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early: {process.communicate()[1]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("serve did not come up")


def test_serve_command_serves_logs_json_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    store = open_store(url)
    token = issue_token(token_store_for(store), "ci-payments", grants=["payments"], now=time.time()).token
    admin = issue_token(token_store_for(store), "ops", admin=True, now=time.time()).token
    store.close()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", CLI, "--database-url", url, "serve", "--port", str(port),
                                "--prefix", "/api", "--no-worker", "--log-level", "info"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api"
        wait_until_up(f"{base}/health/live", process)
        status = httpx.get(f"{base}/health/status", headers={"Authorization": f"Bearer {admin}"}).json()
        assert status["worker"]["enabled"] is False
        listed = httpx.get(f"{base}/handlers", headers={"Authorization": f"Bearer {token}"})
        assert [ns["namespace"] for ns in listed.json()["namespaces"]] == ["payments"]
        assert httpx.get(f"{base}/tasks").status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    # uvicorn re-raises the signal it handled once shutdown is complete: "killed by SIGTERM"
    assert process.returncode in (0, -signal.SIGTERM), stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [e for e in lines if e["logger"] == "tasker_host.api.access"]
    handlers = next(e for e in access if e["path"] == "/api/handlers")
    assert (handlers["status"], handlers["principal"], handlers["method"]) == (200, "ci-payments", "GET")
    assert any(e["path"] == "/api/tasks" and e["status"] == 401 for e in access)
    assert any("stopped" in e["message"] for e in lines if e["logger"] == "tasker_host.api")


def test_shutdown_releases_running_steps_and_closes_the_store(tmp_path: Path) -> None:
    host = make_host(tmp_path / "t.db")
    admin = issue_token(host.tokens, "admin", admin=True, now=time.time()).token
    started = threading.Event()
    host.events.subscribe(lambda e: started.set() if e.kind is EventKind.STEP_STARTED else None)
    server = ServerThread(create_app(host, prefix=PREFIX))
    server.start()
    try:
        body = copy.deepcopy(SEED_PAYMENTS)
        body["context"]["simulate"] = {"validate_payment_eligibility": "slow:60"}
        response = httpx.post(f"http://127.0.0.1:{server.port}{PREFIX}/tasks", json=body,
                              headers={"Authorization": f"Bearer {admin}"})
        assert response.status_code == 201
        assert started.wait(10), "the step never started"
    finally:
        began = time.monotonic()
        server.stop()
    assert not server.thread.is_alive() and time.monotonic() - began < 10
    store = open_store(f"sqlite:///{tmp_path / 't.db'}")
    try:
        task = store.get_task(response.json()["id"])
    finally:
        store.close()
    assert task is not None and task.status is TaskState.IN_PROGRESS
    step = task.steps[0]
    assert (step.state, step.lease_owner) == (StepState.WAITING_RETRY, None)  # released for another worker
