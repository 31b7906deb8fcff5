"""No token value ever reaches the logs, in either format: tokens created with the CLI, a real
server on loopback, requests with valid, wrong and revoked tokens, a console sign-in, a task run
to completion (its transitions logged); every record of every logger captured at DEBUG."""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tasker_host.api import create_app
from tasker_host.api.access_log import JsonFormatter, KeyValueFormatter
from tasker_host.cli.main import build_cli
from tasker_host.cli.state import CliState
from tasker_host.engine.events import EventKind

from .conftest import PREFIX, SEED_PAYMENTS, ServerThread, TaskWaiter, make_host


@pytest.fixture
def captured() -> Iterator[dict[str, io.StringIO]]:
    """Every record, formatted by both of the host's formatters."""
    outputs = {"json": io.StringIO(), "text": io.StringIO()}
    handlers = []
    for name, formatter in (("json", JsonFormatter()), ("text", KeyValueFormatter())):
        handler = logging.StreamHandler(outputs[name])
        handler.setFormatter(formatter)
        handlers.append(handler)
    root = logging.getLogger()
    level = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield outputs
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)


def cli(db: Path, *args: str) -> dict:
    result = CliRunner().invoke(build_cli(), ["--database-url", f"sqlite:///{db}", *args, "--json"], obj=CliState())
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def sign_in(http: httpx.Client, base: str, token: str) -> int:
    form = http.get(f"{base}/ui/sign-in")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, form.text[:500]
    return http.post(f"{base}/ui/sign-in", data={"token": token, "csrf_token": csrf.group(1)}).status_code


def test_no_token_value_appears_in_the_logs_of_either_format(tmp_path: Path, captured) -> None:
    db = tmp_path / "t.db"
    host = make_host(db)
    admin = cli(db, "tokens", "create", "--name", "ops", "--admin")["token"]
    payments = cli(db, "tokens", "create", "--name", "ci-payments", "--namespace", "payments")["token"]
    revoked = cli(db, "tokens", "create", "--name", "old", "--admin")["token"]
    cli(db, "tokens", "revoke", "old")
    wrong = "tsk_" + secrets.token_urlsafe(24)
    waiter = TaskWaiter(host)
    server = ServerThread(create_app(host, prefix=PREFIX, console_secret="s" * 32))
    server.start()
    root = f"http://127.0.0.1:{server.port}"
    try:
        with httpx.Client(base_url=root + PREFIX, timeout=10) as http:
            created = http.post("/tasks", json=SEED_PAYMENTS, headers={"Authorization": f"Bearer {payments}"})
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]
            assert waiter.wait(task_id) is EventKind.TASK_COMPLETED
            assert http.get(f"/tasks/{task_id}", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
            assert http.get("/tasks", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
            assert http.get("/tasks", headers={"Authorization": f"Bearer {revoked}"}).status_code == 401
            assert http.post("/tasks", json={**SEED_PAYMENTS, "context": {}},
                             headers={"Authorization": f"Bearer {payments}"}).status_code == 422
        with httpx.Client(timeout=10, follow_redirects=False) as browser:
            assert sign_in(browser, root, admin) == 303
            assert sign_in(browser, root, wrong) == 401
    finally:
        server.stop()
        waiter.unsubscribe()
    for fmt, output in captured.items():
        text = output.getvalue()
        assert f"task_id={task_id}" in text or f'"task_id": "{task_id}"' in text, fmt  # the logs were captured
        assert "step.completed" in text and "/tasks" in text, fmt  # transitions and access lines among them
        for token in (admin, payments, revoked, wrong):
            assert token not in text, f"a token value is in the {fmt} log"
            assert token[4:] not in text  # nor its secret part alone
