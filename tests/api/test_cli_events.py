"""``tasker-host tasks send`` in both modes (local: the database and the engine in the CLI's
process; remote: a real server's API) with customer_success.process_refund@1.4.0, whose approval
step waits for an ``approval`` event."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_cli_modes import Invoke, invoker

REFUND = {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
          "refund_reason": "Product defective", "requires_approval": True}
APPROVAL = {"approved": True, "approver": "mgr_maria", "note": "ok"}


@pytest.fixture(params=["local", "remote"])
def cli(request: pytest.FixtureRequest, tmp_path: Path, serve: Callable[..., Any]) -> Invoke:
    if request.param == "local":
        return invoker(["--database-url", f"sqlite:///{tmp_path / 'tasker.db'}"], tmp_path)
    live = serve()
    return invoker(["--server", live.base, "--token", live.tokens["admin"]], tmp_path)


def test_send_the_approval_and_wait_for_the_refund(cli: Invoke) -> None:
    created = cli("run", "customer_success.process_refund@1.4.0", "--context", json.dumps(REFUND), "--detach",
                  "--json")
    assert created.exit_code == 0, created.output + created.stderr
    task_id = json.loads(created.stdout)["id"]
    bad = cli("tasks", "send", task_id[:8], "approval", "--payload", '{"approved": "yes"}', "--json")
    assert bad.exit_code == 1 and "approver" in bad.output + bad.stderr and "'yes' is not of type" in (
        bad.output + bad.stderr)
    sent = cli("tasks", "send", task_id[:8], "approval", "--payload", json.dumps(APPROVAL),
               "--idempotency-key", "approval-1", "--wait", "--json")
    assert sent.exit_code == 0, sent.output + sent.stderr
    doc = json.loads(sent.stdout)
    assert doc["status"] == "complete" and doc["steps"][2]["results"]["manager_id"] == "mgr_maria"
    again = cli("tasks", "send", task_id, "approval", "--payload", json.dumps(APPROVAL),
                "--idempotency-key", "approval-1")
    assert again.exit_code == 0 and "already sent with this idempotency key" in again.stdout
    ended = cli("tasks", "send", task_id, "approval", "--payload", json.dumps(APPROVAL))
    assert ended.exit_code == 1 and "takes no more events" in ended.output + ended.stderr


def test_a_payload_that_is_not_json_is_a_clear_error(cli: Invoke) -> None:
    result = cli("tasks", "send", "whatever", "approval", "--payload", "{nope")
    assert result.exit_code == 1 and "payload from --payload is not valid JSON" in result.output + result.stderr
