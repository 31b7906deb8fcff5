"""The live stream rides out a database outage: a look that meets an unavailable database
announces nothing and keeps the stream open; the first look after it announces the change."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tasker_host.console.live import _stream, task_fingerprint
from tasker_host.engine.events import EventBus
from tasker_host.errors import StoreUnavailableError
from tasker_host.models import StepState, TaskState

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def task(state: StepState) -> Any:
    return SimpleNamespace(status=TaskState.IN_PROGRESS, steps=[SimpleNamespace(state=state, attempts=1)])


async def test_a_look_during_an_outage_keeps_the_stream_and_the_next_announces_the_change():
    shown = task(StepState.IN_PROGRESS)
    answers: list[Any] = [shown, StoreUnavailableError("AdminShutdown"), StoreUnavailableError("AdminShutdown"),
                          task(StepState.COMPLETE)]
    looks: list[str] = []

    def get_task(task_id: str) -> Any:
        looks.append(task_id)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def call(fn: Any, *args: Any) -> Any:
        return fn(*args)

    api = SimpleNamespace(host=SimpleNamespace(events=EventBus(), store=SimpleNamespace(get_task=get_task)),
                          call=call)
    stream = _stream(api, None, "t1", task_fingerprint(shown), poll=0.001, lifetime=30)  # type: ignore[arg-type]
    assert await stream.__anext__() == "retry: 1000\n\n"
    assert await stream.__anext__() == "event: changed\ndata: {}\n\n"  # after the outage, not during it
    assert looks == ["t1"] * 4 and answers == []
    await stream.aclose()
