"""Live updates: ``GET /ui/live?task=ID`` (one task) or ``GET /ui/live`` (the viewer's
namespaces) is a server-sent event stream; each ``changed`` event makes the page re-fetch the
parts marked live (``console.js``). Fed by the engine's lifecycle events in this process (at once)
and, for work done by other processes (workers, other API nodes), by a cheap poll every
``poll_seconds``: the task's step states, or the status counts. A stream ends after
``stream_seconds`` (the browser reconnects), so servers never wait on it when they stop."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tasker_host.api.state import Api, api_of
from tasker_host.console.access import Viewer, console_of, viewer, visible_task
from tasker_host.engine.events import LifecycleEvent
from tasker_host.errors import StoreUnavailableError
from tasker_host.store.base import StateCounts, TaskRecord

MIN_GAP = 0.25  # seconds between two events of one stream (a busy namespace does not flood a page)


def _wake_on_events(api: Api, wanted: Callable[[LifecycleEvent], bool], wake: asyncio.Event) -> Callable[[], None]:
    loop = asyncio.get_running_loop()

    def on_event(event: LifecycleEvent) -> None:
        if wanted(event):
            loop.call_soon_threadsafe(wake.set)  # events come from the loop or a worker thread

    return api.host.events.subscribe(on_event)


def task_fingerprint(task: TaskRecord | None) -> str:
    """What a task page shows that changes (the page passes it as ``seen``)."""
    return _digest(None if task is None else (task.status.value, [(s.state.value, s.attempts) for s in task.steps]))


def counts_fingerprint(counts: StateCounts, who: Viewer) -> str:
    return _digest(sorted((k, n) for k, n in counts.tasks.items() if who.sees(k[0])))


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


async def _fingerprint(api: Api, who: Viewer, task_id: str | None, last: str | None = None) -> str | None:
    """What the page shows, summed up; ``last`` while the database is unavailable (nothing new
    can be announced: the stream stays open and looks again at the next poll)."""
    try:
        if task_id is not None:
            return task_fingerprint(await api.call(api.host.store.get_task, task_id))
        return counts_fingerprint(await api.call(api.host.store.count_by_state), who)
    except StoreUnavailableError:
        return last


async def _stream(api: Api, who: Viewer, task_id: str | None, seen: str | None, poll: float,
                  lifetime: float) -> AsyncIterator[str]:
    """``seen``: the fingerprint of what the page shows; a change made between the page's
    rendering and this stream's start is announced at once."""
    wake = asyncio.Event()
    if task_id is not None:
        def wanted(e: LifecycleEvent) -> bool:
            return e.task_id == task_id
    else:
        def wanted(e: LifecycleEvent) -> bool:
            return who.sees(e.namespace)
    unsubscribe = _wake_on_events(api, wanted, wake)
    try:
        yield "retry: 1000\n\n"
        last, end = await _fingerprint(api, who, task_id), time.monotonic() + lifetime
        if seen is not None and last is not None and seen != last:
            yield "event: changed\ndata: {}\n\n"
        while time.monotonic() < end:
            try:
                await asyncio.wait_for(wake.wait(), timeout=poll)
            except TimeoutError:
                pass
            wake.clear()
            now = await _fingerprint(api, who, task_id, last)
            if now != last:
                last = now
                yield "event: changed\ndata: {}\n\n"
                await asyncio.sleep(MIN_GAP)  # events coalesce meanwhile; the last change is always sent
    finally:
        unsubscribe()


async def live(request: Request) -> Response:
    api, who, console = api_of(request), await viewer(request), console_of(request)
    task_id = request.query_params.get("task")
    if task_id is not None:
        task_id = (await visible_task(api, who, task_id, with_steps=False)).id
    seen = request.query_params.get("seen")
    return StreamingResponse(_stream(api, who, task_id, seen, console.poll_seconds, console.stream_seconds),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
