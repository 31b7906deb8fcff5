"""ctx.log: what handlers write is kept per attempt, bounded, and stored with the outcome."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tasker_host import RetryableError, StepHandler
from tasker_host.context import TaskInfo
from tasker_host.engine.step_log import StepLog, StepLogBuffer
from tasker_host.models import TaskState
from tasker_host.store.sql import SqlStore
from tasker_host.store.step_logs import MAX_LINES
from tasker_host.testing import FakeStepContext
from tests.engine_support import Script, doc, make_host

pytestmark = pytest.mark.anyio


class Chatty(StepHandler):
    """Logs on every attempt; fails the first one; logs far too much on the second."""

    async def process(self, ctx: Any) -> Any:
        ctx.log.info("attempt %d of %s", ctx.attempt, ctx.step_name)
        if ctx.attempt == 1:
            ctx.log.warning("bad\x00byte")
            raise RetryableError("try again")
        for i in range(MAX_LINES + 50):
            ctx.log.debug("line %d", i)
        return {"ok": True}


class SyncChatty(StepHandler):
    def process(self, ctx: Any) -> Any:
        ctx.log.error("from a thread: %s", ctx.task.context.get("who", "?"))
        return {}


def chatty_host(**kw: Any) -> Any:
    steps = [{"name": "talk", "handler_class": "Chatty", "default_retry_limit": 3},
             {"name": "sync", "handler_class": "SyncChatty", "depends_on_step": "talk"}]
    return make_host(Script(), [doc(steps=steps)], handlers={"Chatty": Chatty, "SyncChatty": SyncChatty}, **kw)


async def run_chatty(host: Any) -> str:
    task = host.service.create_task("team", "flow", context={"who": "me"}).task
    await host.engine.run_until_idle()
    host.clock.advance(10)
    await host.engine.run_until_idle()
    assert host.service.get_task(task.id).status is TaskState.COMPLETE
    return str(task.id)


def check_lines(store: Any, task_id: str) -> None:
    logs = store.step_logs(task_id)
    first = [e for e in logs if e.step == "talk" and e.attempt == 1]
    assert [(e.level, e.message) for e in first] == [("info", "attempt 1 of talk"), ("warning", "bad\ufffdbyte")]
    second = [e for e in logs if e.step == "talk" and e.attempt == 2]
    assert len(second) == MAX_LINES + 1 and [e.seq for e in second] == list(range(MAX_LINES + 1))
    assert second[0].message == "attempt 2 of talk" and second[1].level == "debug"
    assert second[-1].level == "warning" and second[-1].message.startswith("51 more log lines dropped")
    assert [(e.step, e.level, e.message) for e in store.step_logs(task_id, "sync")] == [
        ("sync", "error", "from a thread: me")]


async def test_lines_are_kept_per_attempt_bounded_and_cleaned(caplog: Any) -> None:
    host = chatty_host()
    with caplog.at_level(logging.INFO, logger="tasker_host.step"):
        task_id = await run_chatty(host)
    check_lines(host.store, task_id)
    assert "attempt 1 of talk" in caplog.text  # still goes to Python logging too
    [record] = [r for r in caplog.records if r.getMessage() == "attempt 1 of talk"]
    assert record.task_id == task_id and record.step == "talk"  # type: ignore[attr-defined]


async def test_lines_are_stored_with_the_outcome_in_sqlite(tmp_path: Any) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        host = chatty_host(store=store)
        check_lines(store, await run_chatty(host))
    finally:
        store.close()


def test_the_buffer_bounds_bytes_and_survives_bad_formats() -> None:
    buffer = StepLogBuffer(lambda: 5.0, max_lines=10, max_bytes=40)
    log = StepLog({}, buffer)
    log.info("%d apples", "not a number")  # a bad format is kept as text, never raised
    log.info("12345")
    log.info("this one does not fit")
    log.info("ok")  # dropped too: kept lines stay a prefix
    kept = buffer.lines()
    assert [line.message for line in kept[:2]] == ["%d apples 'not a number'", "12345"] and len(kept) == 3
    assert kept[-1].message == "2 more log lines dropped (at most 10 lines and 0 KiB are kept per attempt)"
    assert all(line.at == 5.0 for line in kept)


def test_the_fake_context_keeps_lines_like_the_engine() -> None:
    ctx = FakeStepContext(TaskInfo("t1", "ns", "flow", "1.0.0", {}), "s")
    ctx.log.info("charging %s", 5)
    assert ctx.log_lines == ["charging 5"]
