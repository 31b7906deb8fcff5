"""`tasker-host run` and `tasker-host tasks ...` with the installed team plugins on a SQLite file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tasker_host.cli.main import build_cli
from tasker_host.cli.state import CliState

PAYMENTS = json.dumps({"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
                       "partial_refund": False})


@pytest.fixture
def cli(tmp_path):
    url = f"sqlite:///{tmp_path / 'tasker.db'}"

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
        return CliRunner().invoke(build_cli(), ["--database-url", url, *args], obj=CliState(), input=input,
                                  env=env)

    return invoke


def test_run_completes_the_seed_refund_and_prints_the_task_document(cli):
    result = cli("run", "payments.process_refund@2.1.3", "--context", PAYMENTS, "--json")
    assert result.exit_code == 0, result.output + result.stderr
    doc = json.loads(result.stdout)
    assert (doc["full_name"], doc["status"]) == ("payments.process_refund@2.1.3", "complete")
    assert [(s["name"], s["state"], s["attempts"]) for s in doc["steps"]] == [
        ("validate_payment_eligibility", "complete", 1), ("process_gateway_refund", "complete", 1),
        ("update_payment_records", "complete", 1), ("notify_customer", "complete", 1)]
    assert doc["steps"][1]["results"]["refund_amount"] == 4999
    assert "✓ validate_payment_eligibility" in result.stderr  # the live progress view


def test_run_shows_retries_and_exits_1_on_a_permanent_failure(cli):
    context = json.loads(PAYMENTS) | {"simulate": {"process_gateway_refund": ["declined"]}}
    result = cli("run", "payments.process_refund", "--context", json.dumps(context))
    assert result.exit_code == 1
    assert "ERROR" in result.stdout and "process_gateway_refund" in result.stdout
    assert "✗ process_gateway_refund" in result.stderr and "no more attempts" in result.stderr


def test_run_with_an_invalid_context_lists_every_violation_and_writes_nothing(cli):
    result = cli("run", "payments.process_refund@2.1.3", "--context", '{"refund_amount": -1}', "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["error"] == "InvalidContextError"
    assert "'payment_id' is a required property" in doc["message"]
    assert "-1 is less than the minimum of 0" in doc["message"]
    listed = cli("tasks", "list", "--json")
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize(("context", "message"), [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("@/nonexistent/ctx.json", "cannot read context file"),
])
def test_run_rejects_a_bad_context_argument(cli, context, message):
    result = cli("run", "payments.process_refund", "--context", context)
    assert result.exit_code == 1 and message in result.stderr


def test_run_reads_the_context_from_a_file_and_stdin(cli, tmp_path):
    path = tmp_path / "ctx.json"
    path.write_text(PAYMENTS)
    assert cli("run", "payments.process_refund", "--context", f"@{path}", "-q").exit_code == 0
    assert cli("run", "payments.process_refund", "--context", "-", "-q", input=PAYMENTS).exit_code == 0


def test_tasks_show_list_retry_and_resolve(cli):
    context = json.loads(PAYMENTS) | {"simulate": {"update_payment_records": ["not_found"]}}
    failed = json.loads(cli("run", "payments.process_refund", "--context", json.dumps(context), "--json").stdout)
    task_id = failed["id"]
    assert failed["status"] == "error"
    shown = json.loads(cli("tasks", "show", task_id, "--json").stdout)
    assert shown["id"] == task_id and shown["steps"][2]["last_error"]["kind"] == "permanent"
    listed = json.loads(cli("tasks", "list", "--status", "error", "--json").stdout)
    assert [t["id"] for t in listed] == [task_id]
    resolved = cli("tasks", "resolve-step", task_id, "update_payment_records", "--results",
                   '{"records_updated": true}', "--wait", "--json")
    doc = json.loads(resolved.stdout)
    assert doc["status"] == "complete" and doc["steps"][2]["state"] == "resolved_manually"
    again = cli("tasks", "retry", task_id)
    assert again.exit_code == 1 and "only tasks in error can be retried" in again.stderr


def test_tasks_retry_runs_the_failed_steps_again(cli):
    outage = {"TASKER_SIMULATE": json.dumps({"payments.notify_customer": "auth"})}  # an outage, then fixed
    failed = json.loads(cli("run", "payments.process_refund", "--context", PAYMENTS, "--json", env=outage).stdout)
    assert failed["status"] == "error" and failed["steps"][3]["last_error"]["kind"] == "permanent"
    retried = cli("tasks", "retry", failed["id"], "--wait", "--json")
    doc = json.loads(retried.stdout)
    assert doc["status"] == "complete" and doc["steps"][3]["attempts"] == 1  # fresh attempts
    assert [s["attempts"] for s in doc["steps"][:3]] == [1, 1, 1]  # completed steps did not rerun


def test_detached_task_can_be_cancelled(cli):
    created = json.loads(cli("run", "payments.process_refund", "--context", PAYMENTS, "--detach", "--json").stdout)
    assert created["status"] == "pending"
    cancelled = json.loads(cli("tasks", "cancel", created["id"], "--json").stdout)
    assert cancelled["status"] == "cancelled"
    assert {s["state"] for s in cancelled["steps"]} == {"cancelled"}
    missing = cli("tasks", "show", "nope")
    assert missing.exit_code == 1 and "no task 'nope'" in missing.stderr


@pytest.mark.parametrize("context", [
    r'{"payment_id": "\ud800", "refund_amount": 1e400, "notes": ["ok", "a\u0000"]}',
    '{"payment_id": "\udcff", "refund_amount": Infinity, "notes": ["ok", "a\\u0000"]}',  # as argv gives it
])
def test_run_refuses_a_context_that_cannot_be_stored_naming_every_path(cli, context):
    result = cli("run", "payments.process_refund", "--context", context)
    assert result.exit_code == 1
    assert "context cannot be stored (3 problem(s))" in result.stderr
    for path in ("context.payment_id: string contains a lone surrogate", "context.refund_amount: Infinity",
                 "context.notes[1]: string contains a NUL"):
        assert path in result.stderr
    as_json = cli("run", "payments.process_refund", "--context", context, "--json")
    doc = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and doc["error"] == "InvalidValueError"
    assert [p["path"] for p in doc["problems"]] == ["context.payment_id", "context.refund_amount", "context.notes[1]"]
    assert json.loads(cli("tasks", "list", "--json").stdout) == []


def test_resolve_step_refuses_results_that_cannot_be_stored(cli):
    context = json.loads(PAYMENTS) | {"simulate": {"update_payment_records": ["not_found"]}}
    task_id = json.loads(cli("run", "payments.process_refund", "--context", json.dumps(context), "--json").stdout)["id"]
    result = cli("tasks", "resolve-step", task_id, "update_payment_records", "--results", '{"n": NaN}')
    assert result.exit_code == 1 and "results.n: NaN" in result.stderr
    shown = json.loads(cli("tasks", "show", task_id, "--json").stdout)
    assert shown["status"] == "error" and shown["steps"][2]["state"] == "error"


def test_a_context_file_that_is_not_utf8_is_a_clear_error(cli, tmp_path):
    path = tmp_path / "ctx.json"
    path.write_bytes(b'{"payment_id": "\xff"}')
    result = cli("run", "payments.process_refund", "--context", f"@{path}")
    assert result.exit_code == 1 and "is not UTF-8 text" in result.stderr
