"""The task and catalogue commands in BOTH modes against the same expectations: local (a SQLite
file, the engine in the CLI's process) and remote (``--server``: a real server on loopback, its
engine running the tasks, the CLI polling the REST API). Then what only remote mode has: tokens
that may not do something, profiles and their precedence."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tasker_host.cli.main import build_cli
from tasker_host.cli.state import CliState

PAYMENTS = {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
            "partial_refund": False}
Invoke = Callable[..., Result]


def invoker(head: list[str], config: Path) -> Invoke:
    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(build_cli(), [*head, *args], obj=CliState(),
                                  env={"XDG_CONFIG_HOME": str(config), **(env or {})})
    return invoke


@pytest.fixture(params=["local", "remote"])
def cli(request: pytest.FixtureRequest, tmp_path: Path, serve: Callable[..., Any]) -> Invoke:
    if request.param == "local":
        return invoker(["--database-url", f"sqlite:///{tmp_path / 'tasker.db'}"], tmp_path)
    live = serve()  # a fresh server (and database) for each test
    return invoker(["--server", live.base, "--token", live.tokens["admin"]], tmp_path)


def run(cli: Invoke, context: dict[str, Any], *flags: str) -> Result:
    return cli("run", "payments.process_refund@2.1.3", "--context", json.dumps(context), *flags)


def test_run_completes_and_prints_the_task_document(cli: Invoke) -> None:
    result = run(cli, PAYMENTS, "--json")
    assert result.exit_code == 0, result.output + result.stderr
    doc = json.loads(result.stdout)
    assert (doc["full_name"], doc["status"]) == ("payments.process_refund@2.1.3", "complete")
    assert [(s["name"], s["state"], s["attempts"]) for s in doc["steps"]] == [
        ("validate_payment_eligibility", "complete", 1), ("process_gateway_refund", "complete", 1),
        ("update_payment_records", "complete", 1), ("notify_customer", "complete", 1)]
    assert doc["steps"][1]["results"]["refund_amount"] == 4999
    assert f"▶ payments.process_refund@2.1.3  task {doc['id']}" in result.stderr
    assert "notify_customer" in result.stderr  # progress


def test_run_exits_1_on_a_permanent_failure_with_the_table(cli: Invoke) -> None:
    result = run(cli, PAYMENTS | {"simulate": {"process_gateway_refund": ["declined"]}})
    assert result.exit_code == 1
    assert "ERROR" in result.stdout and "error in step process_gateway_refund" in result.stdout


def test_run_with_an_invalid_context_lists_every_violation_and_writes_nothing(cli: Invoke) -> None:
    result = cli("run", "payments.process_refund@2.1.3", "--context", '{"refund_amount": -1}', "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["error"] == "InvalidContextError"
    assert "'payment_id' is a required property" in doc["message"]
    assert "-1 is less than the minimum of 0" in doc["message"]
    assert json.loads(cli("tasks", "list", "--json").stdout) == []


def test_show_list_resolve_step_and_retry(cli: Invoke) -> None:
    failed = json.loads(run(cli, PAYMENTS | {"simulate": {"update_payment_records": ["not_found"]}}, "--json").stdout)
    task_id = failed["id"]
    assert failed["status"] == "error"
    shown = json.loads(cli("tasks", "show", task_id, "--json").stdout)
    assert shown["id"] == task_id and shown["steps"][2]["last_error"]["kind"] == "permanent"
    listed = cli("tasks", "list", "--status", "error", "--json")
    assert [t["id"] for t in json.loads(listed.stdout)] == [task_id]
    assert task_id[:8] in cli("tasks", "list").stdout  # the short id; any unique prefix is accepted back
    resolved = cli("tasks", "resolve-step", task_id, "update_payment_records", "--results",
                   '{"records_updated": true}', "--wait", "--json")
    doc = json.loads(resolved.stdout)
    assert doc["status"] == "complete" and doc["steps"][2]["state"] == "resolved_manually"
    again = cli("tasks", "retry", task_id)
    assert again.exit_code == 1 and "only tasks in error can be retried" in again.stderr


def test_retry_wait_runs_the_failed_step_again_and_exits_like_run(cli: Invoke) -> None:
    failed = json.loads(run(cli, PAYMENTS | {"simulate": {"update_payment_records": ["not_found"]}}, "--json").stdout)
    retried = cli("tasks", "retry", failed["id"], "--wait", "--json")
    doc = json.loads(retried.stdout)
    assert doc["id"] == failed["id"]
    assert [(s["state"], s["attempts"]) for s in doc["steps"]] == [  # the plan fails attempt 1 again
        ("complete", 1), ("complete", 1), ("error", 1), ("pending", 0)]


@pytest.fixture(params=["local", "remote"])
def idle_cli(request: pytest.FixtureRequest, tmp_path: Path, serve: Callable[..., Any]) -> Invoke:
    """As ``cli``, but nothing runs the tasks (local: no --wait; remote: a server without its engine)."""
    if request.param == "local":
        return invoker(["--database-url", f"sqlite:///{tmp_path / 'tasker.db'}"], tmp_path)
    live = serve(run_worker=False)
    return invoker(["--server", live.base, "--token", live.tokens["admin"]], tmp_path)


def test_detached_task_can_be_cancelled_and_an_unknown_one_is_a_clear_error(idle_cli: Invoke) -> None:
    created = json.loads(run(idle_cli, PAYMENTS, "--detach", "--json").stdout)
    assert (created["full_name"], created["status"]) == ("payments.process_refund@2.1.3", "pending")
    assert len(created["steps"]) == 4
    cancelled = idle_cli("tasks", "cancel", created["id"], "--json")
    doc = json.loads(cancelled.stdout)
    assert cancelled.exit_code == 0 and doc["status"] == "cancelled"
    assert {s["state"] for s in doc["steps"]} == {"cancelled"}
    again = idle_cli("tasks", "cancel", created["id"])
    assert again.exit_code == 1 and "only unfinished tasks can be cancelled" in again.stderr
    missing = idle_cli("tasks", "show", "nope")
    assert missing.exit_code == 1 and "no task 'nope'" in missing.stderr
    as_json = json.loads(idle_cli("tasks", "show", "nope", "--json").stdout)
    assert as_json["error"] == "TaskNotFoundError"


def test_watch_shows_the_tree_and_exits_like_run(cli: Invoke) -> None:
    done = json.loads(run(cli, PAYMENTS, "--json", "-q").stdout)
    watched = cli("tasks", "watch", done["id"])
    assert watched.exit_code == 0
    assert f"task {done['id']}  COMPLETE" in watched.stdout and "✓ notify_customer" in watched.stdout
    failed = json.loads(run(cli, PAYMENTS | {"simulate": {"process_gateway_refund": ["declined"]}}, "--json").stdout)
    as_json = cli("tasks", "watch", failed["id"], "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["status"] == "error"
    missing = cli("tasks", "watch", "nope")
    assert missing.exit_code == 1 and "no task 'nope'" in missing.stderr


def test_handlers_and_resolve(cli: Invoke) -> None:
    handlers = cli("handlers", "payments", "process_refund", "--version", "~=2.1", "--json")
    assert handlers.exit_code == 0, handlers.output
    [ns] = json.loads(handlers.stdout)["namespaces"]
    assert ns["namespace"] == "payments" and {h["version"] for h in ns["handlers"]} >= {"2.1.3"}
    assert all(h["version"].startswith("2.") for h in ns["handlers"])
    resolved = json.loads(cli("resolve", "payments.process_refund@~=2.1", "--json").stdout)
    assert (resolved["request"], resolved["version"]) == ("payments.process_refund@~=2.1", "2.1.3")
    assert resolved["provider"]["distribution"] == "tasker-payments"
    missing = cli("resolve", "payments.process_refund@9", "--json")
    doc = json.loads(missing.stdout)
    assert missing.exit_code == 1 and doc["error"] == "NoMatchingVersionError" and "2.1.3" in doc["available"]
    assert "process_refund" in cli("handlers").stdout


def test_both_modes_print_the_same_catalogue_documents(tmp_path: Path, serve: Callable[..., Any]) -> None:
    live = serve()
    local = invoker(["--database-url", f"sqlite:///{tmp_path / 'tasker.db'}"], tmp_path)
    remote = invoker(["--server", live.base, "--token", live.tokens["payments"]], tmp_path)
    for args in (["handlers", "payments", "--json"], ["resolve", "payments.process_refund@~=2.1", "--json"],
                 ["handlers", "payments", "process_refund", "--json"]):
        assert json.loads(local(*args).stdout) == json.loads(remote(*args).stdout), args


# -- remote mode only ------------------------------------------------------------------------


@pytest.fixture
def live(serve: Callable[..., Any]) -> Any:
    return serve()


def test_an_error_says_which_namespace_the_token_lacks(live: Any, tmp_path: Path) -> None:
    admin = invoker(["--server", live.base, "--token", live.tokens["admin"]], tmp_path)
    task_id = json.loads(run(admin, PAYMENTS, "--detach", "--json").stdout)["id"]
    viewer = invoker(["--server", live.base, "--token", live.tokens["payments_viewer"]], tmp_path)
    assert json.loads(viewer("tasks", "show", task_id, "--json").stdout)["id"] == task_id
    cancelled = viewer("tasks", "cancel", task_id)
    assert cancelled.exit_code == 1
    assert "may not cancel tasks in namespace 'payments'" in cancelled.stderr and "403" in cancelled.stderr
    cs = invoker(["--server", live.base, "--token", live.tokens["cs"]], tmp_path)
    created = run(cs, PAYMENTS)
    assert created.exit_code == 1
    assert "unknown namespace 'payments'" in created.stderr and "may view: customer_success" in created.stderr


def test_login_stores_the_token_readable_only_by_the_user_and_logout_forgets_it(live: Any, tmp_path: Path) -> None:
    cli = invoker([], tmp_path)
    assert cli("login", live.base, "--token", live.tokens["admin"], "--profile", "ops").exit_code == 0
    path = tmp_path / "tasker-host" / "profiles.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["profiles"]["ops"] == {"server": live.base, "token": live.tokens["admin"]}
    listed = cli("--profile", "ops", "tasks", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    assert cli("logout", "--profile", "ops").exit_code == 0
    assert "ops" not in json.loads(path.read_text())["profiles"]
    gone = cli("--profile", "ops", "tasks", "list")
    assert gone.exit_code == 1 and "no profile 'ops'" in gone.stderr


def test_token_precedence_flag_then_environment_then_profile(live: Any, tmp_path: Path) -> None:
    good, bad = live.tokens["admin"], live.tokens["revoked"]
    cli = invoker([], tmp_path)
    assert cli("login", live.base, "--token", bad).exit_code == 0  # the default profile for that server
    from_profile = cli("--server", live.base, "tasks", "list")
    assert from_profile.exit_code == 1 and "401" in from_profile.stderr and "tasker-host login" in from_profile.stderr
    assert cli("--server", live.base, "tasks", "list", env={"TASKER_TOKEN": good}).exit_code == 0
    flag = cli("--server", live.base, "--token", bad, "tasks", "list", env={"TASKER_TOKEN": good})
    assert flag.exit_code == 1 and "401" in flag.stderr
    assert cli("--server", live.base, "--token", good, "tasks", "list", env={"TASKER_TOKEN": bad}).exit_code == 0


def test_short_ids_newest_first_and_paging_in_both_modes(cli: Invoke) -> None:
    ids = [json.loads(run(cli, PAYMENTS, "--json").stdout)["id"] for _ in range(3)]
    shown = json.loads(cli("tasks", "show", ids[0][:8], "--json").stdout)  # a unique prefix
    assert shown["id"] == ids[0] and shown["children"] == []
    first = cli("tasks", "list", "--limit", "2", "--json")
    assert [t["id"] for t in json.loads(first.stdout)] == [ids[2], ids[1]]  # newest first
    assert f"--cursor {ids[1][:8]}" in first.stderr
    rest = cli("tasks", "list", "--limit", "2", "--cursor", ids[1][:8], "--json")
    assert [t["id"] for t in json.loads(rest.stdout)] == [ids[0]]
    assert [t["id"] for t in json.loads(cli("tasks", "list", "--all", "--json").stdout)] == ids[::-1]
    missing = cli("tasks", "show", "ffffffff", "--json")
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"] == "TaskNotFoundError"
