"""Group commit for ``POST /tasks``: tasks whose requests arrive while a batch is being written
are written together in the next batch, in one transaction (one commit for many creations).

There is no background task: the first request to arrive becomes the writer; when its batch is
written, the writer's role passes to the oldest waiting request, which writes everything that
queued up meanwhile. A request always gets its own task's result (or error).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from tasker_host.store.base import CreateResult, NewTask

Submit = Callable[[Sequence[NewTask]], Awaitable[list[CreateResult]]]


class _Slot:
    __slots__ = ("task", "wake", "result", "error", "finished", "writer")

    def __init__(self, task: NewTask):
        self.task = task
        self.wake = anyio.Event()
        self.result: CreateResult | None = None
        self.error: BaseException | None = None
        self.finished = False
        self.writer = False  # handed a writer's role: must write a batch and pass the role on


class CreateBatcher:
    """``writers``: batches written at once (1 for SQLite, whose writes are serial anyway; more
    for PostgreSQL, so one batch's round trips overlap the next one's)."""

    def __init__(self, submit: Submit, *, max_batch: int = 256, writers: int = 1):
        self._submit, self._max, self._writers = submit, max_batch, writers
        self._pending: list[_Slot] = []
        self._writing = 0

    async def create(self, task: NewTask) -> CreateResult:
        slot = _Slot(task)
        self._pending.append(slot)
        if self._writing < self._writers:
            self._writing += 1
            await self._write_batch()
        while True:
            if slot.writer:  # a role handed over must be used, even once our own task is done
                slot.writer = False
                await self._write_batch()
            elif slot.finished:
                break
            else:
                await slot.wake.wait()
                slot.wake = anyio.Event()
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    async def _write_batch(self) -> None:
        """Write what is pending (one batch), then pass the writer's role on (never lost)."""
        batch: list[_Slot] = []
        try:
            await anyio.lowlevel.checkpoint()  # requests already parsed join this batch
            batch, self._pending = self._pending[:self._max], self._pending[self._max:]
            if batch:
                results = await self._submit([s.task for s in batch])
                for slot, result in zip(batch, results, strict=True):
                    slot.result = result
        except BaseException as exc:  # the whole batch shares the failure (nothing was written)
            for slot in batch:
                slot.error = exc
            raise
        finally:
            for slot in batch:
                slot.finished = True
                slot.wake.set()
            self._hand_over()

    def _hand_over(self) -> None:
        waiting = next((s for s in self._pending if not s.writer), None)
        if waiting is not None:
            waiting.writer = True
            waiting.wake.set()
        else:
            self._writing -= 1


def batcher_for(call: Callable[..., Awaitable[Any]], submit: Callable[[Sequence[NewTask]], list[CreateResult]],
                max_batch: int = 256, writers: int = 1) -> CreateBatcher:
    """A batcher that runs the service's synchronous ``submit`` through ``call`` (inline or in a
    worker thread, like every store call of the API)."""
    return CreateBatcher(lambda tasks: call(submit, tasks), max_batch=max_batch, writers=writers)
