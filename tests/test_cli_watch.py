"""`tasker-host tasks watch ID`: follows a task another host runs (polling the store), a tree of
steps and child tasks; plain lines when not a terminal; exit status as `run`; --json."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

from tasker_host.cli import watch as watch_module
from tasker_host.cli.main import CliState, build_cli
from tasker_host.cli.watch import Screen, load, watch
from tasker_host.errors import StoreUnavailableError
from tasker_host.host import Host, build_host
from tasker_host.settings import HostSettings

PAYMENTS = {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
            "partial_refund": False}
SUPPORT = {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
           "refund_reason": "Product defective", "agent_notes": "expedite", "requires_approval": True}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tasker.db'}"


def other_host(url: str) -> Host:
    return build_host(HostSettings(database_url=url))


def watch_cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(build_cli(), ["--database-url", url, "tasks", "watch", *args], obj=CliState())


def run_elsewhere(host: Host) -> Callable[[float], None]:
    """The watcher's pause: the other host works until idle meanwhile (no real waiting)."""
    def pause(_seconds: float) -> None:
        anyio.run(host.engine.run_until_idle)
    return pause


def test_watch_follows_a_task_another_host_runs_with_its_child_task(url: str, monkeypatch: Any) -> None:
    host = other_host(url)
    task = host.service.create_task("customer_success", "process_refund", "1.3.3", SUPPORT).task  # (1.4.0 waits)
    pauses: list[float] = []
    work = run_elsewhere(host)
    monkeypatch.setattr(watch_module, "pause", lambda s: (pauses.append(s), work(s)))
    result = watch_cli(url, task.id, "--interval", "0.2")
    assert result.exit_code == 0, result.output + result.stderr
    out = result.stdout
    assert out.startswith(f"customer_success.process_refund@1.3.3  task {task.id}  PENDING")
    assert "task: pending → in_progress" in out or "task: pending → complete" in out
    assert "task: in_progress → complete" in out or "task: pending → complete" in out
    assert "→ complete (attempt 1)" in out
    assert pauses and set(pauses) == {0.2}
    [child] = host.service.list_tasks(watch_module.TaskFilter(parent_task_id=task.id))
    assert f"[{child.id[:8]}] task: new → complete" in out  # the child task appeared, already done
    assert "\x1b[" not in out  # no ANSI when not a terminal
    final = host.service.get_task(task.id)
    node = load(host.store, task.id)
    assert node is not None and [c.task.id for cs in node.children.values() for c in cs] == [child.id]
    assert final.status.value == "complete"
    host.close()


def test_watch_json_prints_the_final_document_and_exits_1_on_error(url: str) -> None:
    host = other_host(url)
    context = PAYMENTS | {"simulate": {"process_gateway_refund": ["declined"]}}
    task = host.service.create_task("payments", "process_refund", None, context).task
    anyio.run(host.engine.run_until_idle)  # done by another host before anyone watches
    result = watch_cli(url, task.id, "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert (doc["id"], doc["status"]) == (task.id, "error")
    assert "process_gateway_refund" in result.stderr and "ERROR" in result.stderr  # the view, on stderr
    missing = watch_cli(url, "no-such-task")
    assert missing.exit_code == 1 and "no task 'no-such-task'" in missing.stderr
    host.close()


def test_on_a_terminal_the_tree_is_redrawn_in_place(url: str) -> None:
    host = other_host(url)
    task = host.service.create_task("payments", "process_refund", None, PAYMENTS).task
    lines: list[str] = []

    class Stream:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    final = watch(host.store, task.id, Screen(Stream(), tty=True), 0.1,  # type: ignore[arg-type]
                  sleep=run_elsewhere(host))
    assert final is not None and final.status.value == "complete"
    text = "".join(lines)
    height = 1 + len(final.steps)
    assert text.count(f"\x1b[{height}F\x1b[J") == 1  # drawn twice: the second time over the first
    assert "├─ ✓ validate_payment_eligibility" in text and "└─ ✓ notify_customer" in text
    host.close()


def test_watch_rides_out_a_database_outage(url: str, caplog: pytest.LogCaptureFixture) -> None:
    host = other_host(url)
    task = host.service.create_task("payments", "process_refund", None, PAYMENTS).task
    failures = [2]  # the next two looks meet an unavailable database

    class Flaky:
        def __getattr__(self, name: str) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                if failures[0]:
                    failures[0] -= 1
                    raise StoreUnavailableError("AdminShutdown: terminating connection")
                return getattr(host.store, name)(*args, **kwargs)
            return call

    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        anyio.run(host.engine.run_until_idle)

    final = watch(Flaky(), task.id, Screen(io.StringIO(), tty=False), 0.1, sleep=pause)  # type: ignore[arg-type]
    assert final is not None and final.status.value == "complete" and failures == [0]
    said = [r.getMessage() for r in caplog.records if r.name == "tasker_host.engine"]
    assert said[0] == ("database unavailable (StoreUnavailableError: AdminShutdown: terminating connection); "
                       "still watching")
    assert said[1].startswith("database available again after") and said[1].endswith("(2 failed calls)")
    assert len(said) == 2
    assert len(pauses) >= 2 and all(p >= 0.1 for p in pauses)
    host.close()
