"""A template's result_schema is enforced: each step's results are checked as the step completes;
a violation fails the step for good (ResultContractViolation naming the JSON paths) and the task
ends in error. On the memory store, SQLite and PostgreSQL (the schema travels in the task's
template snapshot)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tasker_host.models import StepState, TaskState
from tasker_host.store.sql import SqlStore
from tests.engine_support import Script, doc, make_host

pytestmark = pytest.mark.anyio

RESULT_SCHEMA = {
    "type": "object",
    "required": ["a", "b"],
    "properties": {
        "a": {"type": "object", "required": ["step"], "properties": {"step": {"const": "a"}}},
        "b": {"type": "object", "required": ["step", "refund_id"],
              "properties": {"refund_id": {"type": "string"}}},
    },
}


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: Any, tmp_path: Any) -> Iterator[Any]:
    if request.param == "memory":
        yield None
        return
    url = (f"sqlite:///{tmp_path / 'tasker.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    sql = SqlStore(url, auto_upgrade=True)
    try:
        yield sql
    finally:
        sql.close()


def refund_doc(schema: dict[str, Any]) -> dict[str, Any]:
    steps = [{"name": "a", "handler_class": "Scripted"},
             {"name": "b", "handler_class": "Refund", "depends_on_step": "a"}]
    return doc("refund", steps, result_schema=schema)


def refund_handler(results: dict[str, Any]) -> Any:
    from tasker_host import StepHandler

    class Refund(StepHandler):
        def process(self, ctx: Any) -> Any:
            return results

    return Refund


async def test_results_that_keep_the_contract_complete_the_task(store: Any) -> None:
    host = make_host(Script(), [refund_doc(RESULT_SCHEMA)], store=store,
                     handlers={"Refund": refund_handler({"step": "b", "refund_id": "rf_1"})})
    task = host.service.create_task("team", "refund").task
    await host.engine.run_until_idle()
    assert host.service.get_task(task.id).status is TaskState.COMPLETE


async def test_a_violation_fails_the_step_for_good_naming_every_json_path(store: Any) -> None:
    host = make_host(Script(), [refund_doc(RESULT_SCHEMA)], store=store,
                     handlers={"Refund": refund_handler({"step": "b", "refund_id": 42})})
    task = host.service.create_task("team", "refund").task
    await host.engine.run_until_idle()
    done = host.service.get_task(task.id)
    assert done.status is TaskState.ERROR
    a, b = done.steps
    assert a.state is StepState.COMPLETE
    assert (b.state, b.attempts) == (StepState.ERROR, 1)  # permanent: not retried
    assert b.last_error is not None and b.last_error["type"] == "ResultContractViolation"
    assert ("results of step 'b' violate the result_schema of team.refund@1.0.0 (1 problem(s)):\n"
            "  - $.b.refund_id: 42 is not of type 'string'") in b.last_error["message"]


async def test_a_missing_field_is_named_at_the_object_that_lacks_it(store: Any) -> None:
    host = make_host(Script(), [refund_doc(RESULT_SCHEMA)], store=store,
                     handlers={"Refund": refund_handler({"step": "b"})})
    task = host.service.create_task("team", "refund").task
    await host.engine.run_until_idle()
    b = host.service.get_task(task.id).steps[1]
    assert b.last_error is not None and "$.b: 'refund_id' is a required property" in b.last_error["message"]


async def test_tasks_run_on_the_schema_frozen_when_they_were_created(store: Any) -> None:
    """A task created from a version without result_schema is not checked later, and the snapshot
    a checked task runs on carries the schema."""
    bad = refund_handler({"step": "b", "refund_id": 42})
    plain = make_host(Script(), [doc("refund", refund_doc(RESULT_SCHEMA)["step_templates"])], store=store,
                      handlers={"Refund": bad})
    task = plain.service.create_task("team", "refund").task
    assert "result_schema" not in task.template
    await plain.engine.run_until_idle()
    assert plain.service.get_task(task.id).status is TaskState.COMPLETE
    checked = make_host(Script(), [refund_doc(RESULT_SCHEMA)], handlers={"Refund": bad})
    assert checked.service.create_task("team", "refund").task.template["result_schema"] == RESULT_SCHEMA


async def test_a_caller_waiting_on_a_violating_child_gets_a_permanent_error_naming_it() -> None:
    from tasker_host import StepHandler

    class Caller(StepHandler):
        async def process(self, ctx: Any) -> Any:
            child = await ctx.invoke("team", "refund", context={})
            return {"child": child.task_id}

    caller = doc("caller", [{"name": "call", "handler_class": "Caller"}], namespace="other")
    host = make_host(Script(), [refund_doc(RESULT_SCHEMA), caller],
                     handlers={"Refund": refund_handler({"step": "b"}), "Caller": Caller})
    task = host.service.create_task("other", "caller").task
    await host.engine.run_until_idle()
    [step] = host.service.get_task(task.id).steps
    assert step.state is StepState.ERROR and step.last_error is not None
    assert step.last_error["type"] == "PermanentError"
    assert step.last_error["message"].endswith(
        "(team.refund@1.0.0) ended error: results of step 'b' violate the result_schema of team.refund@1.0.0 "
        "(1 problem(s)):\n  - $.b: 'refund_id' is a required property")


async def test_each_task_is_checked_against_the_schema_it_was_created_with(store: Any) -> None:
    """One version released twice with different result_schemas (a change in place): a task of
    the first release, run by a host of the second, is still checked against the first."""
    def schema(kind: str) -> dict[str, Any]:
        return {"type": "object", "properties": {"b": {"type": "object", "properties": {"refund_id": {"type": kind}}}}}

    strings, numbers = schema("string"), schema("integer")
    handler = {"Refund": refund_handler({"step": "b", "refund_id": 42})}
    first = make_host(Script(), [refund_doc(strings)], store=store, handlers=handler)
    old = first.service.create_task("team", "refund").task
    second = make_host(Script(), [refund_doc(numbers)], store=first.store, handlers=handler)
    new = second.service.create_task("team", "refund").task
    await second.engine.run_until_idle()
    assert second.service.get_task(new.id).status is TaskState.COMPLETE
    assert second.service.get_task(old.id).status is TaskState.ERROR
