"""The CLI's output for people and scripts: tables, paging, short ids, `tasks show`, messages,
exit codes, hints, colour only on a terminal, bare `tasker-host`, shell completion."""

from __future__ import annotations

import io
import json
import uuid
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from rich.console import Console

from tasker_host.cli.main import build_cli
from tasker_host.cli.progress import ProgressView
from tasker_host.cli.state import CliState
from tasker_host.engine import service as service_module
from tasker_host.engine.events import EventKind, LifecycleEvent

PAYMENTS = {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
            "partial_refund": False}
CS = {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999, "refund_reason": "defective",
      "agent_notes": "expedite", "requires_approval": True}


@pytest.fixture
def cli(tmp_path):
    url = f"sqlite:///{tmp_path / 'tasker.db'}"

    def invoke(*args: str, env: dict[str, str] | None = None, prog_name: str | None = None):
        return CliRunner().invoke(build_cli(), ["--database-url", url, *args], obj=CliState(), env=env,
                                  prog_name=prog_name)

    return invoke


def run_json(cli, reference: str, context: dict) -> dict:
    result = cli("run", reference, "--context", json.dumps(context), "--json", "-q")
    return json.loads(result.stdout)


def test_tasks_list_is_newest_first_with_a_header_and_pages_by_cursor(cli):
    ids = [run_json(cli, "payments.process_refund@2.1.3", PAYMENTS)["id"] for _ in range(3)]
    newest_first = ids[::-1]
    page = cli("tasks", "list", "--limit", "2")
    assert page.exit_code == 0
    lines = page.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "WORKFLOW", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == [i[:8] for i in newest_first[:2]]
    assert f"--cursor {newest_first[1][:8]}" in page.stderr  # the next page's cursor
    rest = json.loads(cli("tasks", "list", "--limit", "2", "--cursor", newest_first[1][:8], "--json").stdout)
    assert [d["id"] for d in rest] == newest_first[2:]
    everything = cli("tasks", "list", "--limit", "1", "--all", "--json")
    assert [d["id"] for d in json.loads(everything.stdout)] == newest_first and "--cursor" not in everything.stderr


def test_tasks_list_fits_long_names_to_the_terminal_width(cli):
    run_json(cli, "customer_success.process_refund@1.3.3", CS)
    listed = cli("tasks", "list", env={"COLUMNS": "50"})
    assert listed.exit_code == 0 and all(len(line) <= 50 for line in listed.stdout.splitlines())
    assert "…" in listed.stdout


def test_short_ids_are_accepted_and_an_ambiguous_one_lists_the_candidates(cli, monkeypatch):
    made = iter(["9ef7a482-0000-4000-8000-000000000001", "9ef7b000-0000-4000-8000-000000000002"])
    monkeypatch.setattr(service_module, "uuid", SimpleNamespace(uuid4=lambda: uuid.UUID(next(made))))
    first = run_json(cli, "payments.process_refund@2.1.3", PAYMENTS)
    second = run_json(cli, "payments.process_refund@2.1.3", PAYMENTS)
    shown = cli("tasks", "show", "9ef7a", "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["id"] == first["id"]
    ambiguous = cli("tasks", "show", "9ef7")
    assert ambiguous.exit_code == 1
    assert "ambiguous" in ambiguous.stderr and first["id"] in ambiguous.stderr and second["id"] in ambiguous.stderr
    assert cli("tasks", "cancel", "9ef7b").exit_code == 1  # found, but already complete: not "no task"
    assert "only unfinished tasks" in cli("tasks", "cancel", "9ef7b").stderr


def test_tasks_show_json_is_the_api_document_with_children_and_the_text_shows_everything(cli):
    parent = run_json(cli, "customer_success.process_refund@1.3.3", CS)
    shown = json.loads(cli("tasks", "show", parent["id"], "--json").stdout)
    assert set(shown) == set(parent) | {"children"}  # the shape of GET /tasks/{id}
    [child_id] = shown["children"]
    child = json.loads(cli("tasks", "show", child_id[:8], "--json").stdout)
    assert child["parent_task_id"] == parent["id"] and child["children"] == []
    text = cli("tasks", "show", parent["id"][:8], env={"COLUMNS": "200"}).stdout
    for expected in ("COMPLETE", "context", '"ticket_id":"cs_456"', "STEP", "STATE", "ATTEMPTS", "TOOK",
                     "OUTCOME", '{"request_validated":true', f"child tasks: {child_id[:8]}"):
        assert expected in text, expected


def test_a_step_waiting_for_its_retry_shows_the_next_retry_and_last_error():
    from tasker_host.cli.tables import task_detail

    doc = {"id": "t1", "full_name": "ns.flow@1.0.0", "status": "in_progress", "error": None, "context": {},
           "created_at": "2026-01-01T00:00:00.000Z", "completed_at": None, "parent_task_id": None,
           "correlation_id": None, "children": [],
           "steps": [{"name": "charge", "state": "waiting_retry", "attempts": 1, "retry_limit": 3,
                      "results": None, "started_at": "2026-01-01T00:00:00.000Z", "completed_at": None,
                      "last_error": {"type": "RetryableError", "message": "gateway timeout"},
                      "retry_at": "2026-01-01T00:00:05.000Z"}]}
    out = Console(file=io.StringIO(), width=160)
    with out.capture() as captured:
        out.print(task_detail(doc))
    assert "retry at 2026-01-01T00:00:05.000Z after RetryableError: gateway timeout" in captured.get()


def test_colour_only_on_a_terminal_and_never_with_no_color_or_json(cli):
    run_json(cli, "payments.process_refund@2.1.3", PAYMENTS)
    assert "\x1b[" not in cli("tasks", "list").stdout  # not a terminal
    coloured = cli("tasks", "list", env={"FORCE_COLOR": "1"}).stdout  # as rich treats a terminal
    assert "\x1b[32m" in coloured  # complete, in green
    assert "\x1b[32m" not in cli("tasks", "list", env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout
    as_json = cli("tasks", "list", "--json", env={"FORCE_COLOR": "1"}).stdout
    assert "\x1b" not in as_json and json.loads(as_json)[0]["status"] == "complete"


def test_a_failed_step_with_no_attempts_left_never_says_it_will_retry():
    view = ProgressView("t1")
    started = LifecycleEvent(EventKind.STEP_STARTED, "t1", "ns", "flow", "1", 10.0, step="charge", attempt=3)
    error = {"type": "RetryableError", "message": "charge: unknown service status 'unknown'"}
    failed = LifecycleEvent(EventKind.STEP_FAILED, "t1", "ns", "flow", "1", 10.5, step="charge", attempt=3,
                            detail={"error": error})
    view.render(started)
    line = view.render(failed) or ""
    assert "no more attempts" in line and "retry" not in line.replace("RetryableError", "")


def test_resolve_step_wait_exits_like_run_and_hints_at_results(cli):
    context = PAYMENTS | {"simulate": {"process_gateway_refund": ["declined"]}}
    failed = run_json(cli, "payments.process_refund@2.1.3", context)
    resolved = cli("tasks", "resolve-step", failed["id"][:8], "process_gateway_refund", "--wait")
    assert resolved.exit_code == 1  # update_payment_records then fails on the missing results
    assert "ERROR" in resolved.stdout
    assert "hint: update_payment_records depend(s) on process_gateway_refund" in resolved.stderr
    assert "--results" in resolved.stderr


def test_retry_says_attempts_restart_at_1(cli):
    outage = {"TASKER_SIMULATE": json.dumps({"payments.notify_customer": "auth"})}
    failed = json.loads(cli("run", "payments.process_refund", "--context", json.dumps(PAYMENTS), "--json", "-q",
                            env=outage).stdout)
    retried = cli("tasks", "retry", failed["id"][:8], "--wait")
    assert retried.exit_code == 0 and "COMPLETE" in retried.stdout
    assert "attempts counted from 1" in retried.stderr


def test_bare_tasker_host_shows_help_and_exits_0():
    result = CliRunner().invoke(build_cli(), [], obj=CliState())
    assert result.exit_code == 0 and "Usage:" in result.stdout and "Commands:" in result.stdout
    assert "_TASKER_HOST_COMPLETE=bash_source" in result.stdout


@pytest.mark.parametrize(("words", "expected", "absent"), [
    ("tasker-host handlers pay", "payments", "customer_success"),
    ("tasker-host handlers payments process_", "process_refund", "payments"),
    ("tasker-host run customer_success.", "customer_success.process_refund", "payments.process_refund"),
    ("tasker-host resolve payments.process_refund@2", "payments.process_refund@2.1.3", "customer_success"),
    ("tasker-host tas", "tasks", "run"),
])
def test_shell_completion_of_commands_namespaces_and_workflows(words, expected, absent):
    env = {"_TASKER_HOST_COMPLETE": "bash_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - 1), "TASKER_DATABASE_URL": "sqlite:////nonexistent/db"}
    result = CliRunner().invoke(build_cli(), [], obj=CliState(), env=env, prog_name="tasker-host")
    values = [line.split(",", 1)[1] for line in result.stdout.splitlines()]
    assert expected in values and absent not in values, result.stdout


def test_api_documents_show_plugin_files_relative_to_their_distribution(cli):
    doc = json.loads(cli("handlers", "payments", "process_refund", "--json").stdout)
    files = [t["provider"]["file"] for ns in doc["namespaces"] for t in ns["handlers"]]
    assert files and all(f.startswith("tasker_payments/templates/process_refund-") for f in files), files



def run_in_pty(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """The CLI as a person runs it: standard output and error on a pseudo-terminal."""
    import os
    import pty
    import subprocess
    import sys

    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")} | env
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", "from tasker_host.cli import main; main()", *args],
                            stdin=follower, stdout=follower, stderr=follower, env=full_env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode()


def test_run_on_a_terminal_redraws_the_step_tree_in_place_in_colour(tmp_path):
    env = {"TASKER_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}", "COLUMNS": "120", "TERM": "xterm"}
    code, out = run_in_pty(["run", "payments.process_refund@2.1.3", "--context", json.dumps(PAYMENTS)], env)
    assert code == 0, out
    assert "\x1b[" in out and "F\x1b[J" in out  # cursor up over the previous tree, then clear below
    assert "└─ ✓ notify_customer" in out  # the tree, last drawn with every step complete
    assert " attempt 1" not in out  # no appended progress lines
    assert "\x1b[32mcomplete" in out  # the final table in colour


def test_run_not_on_a_terminal_appends_plain_lines(cli):
    result = cli("run", "payments.process_refund@2.1.3", "--context", json.dumps(PAYMENTS))
    assert result.exit_code == 0 and "\x1b" not in result.output + result.stderr
    assert "✓ notify_customer" in result.stderr and "attempt 1" in result.stderr
