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
    __slots__ = ("task", "wake", "result", "error", "finished")

    def __init__(self, task: NewTask):
        self.task = task
        self.wake = anyio.Event()
        self.result: CreateResult | None = None
        self.error: BaseException | None = None
        self.finished = False


class CreateBatcher:
    def __init__(self, submit: Submit, *, max_batch: int = 256):
        self._submit, self._max = submit, max_batch
        self._pending: list[_Slot] = []
        self._writing = False

    async def create(self, task: NewTask) -> CreateResult:
        slot = _Slot(task)
        self._pending.append(slot)
        if not self._writing:
            self._writing = True
            await self._write_batch()
        while not slot.finished:
            await slot.wake.wait()
            slot.wake = anyio.Event()
            if not slot.finished:  # handed the writer's role
                await self._write_batch()
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    async def _write_batch(self) -> None:
        batch: list[_Slot] = []
        try:
            await anyio.lowlevel.checkpoint()  # requests already parsed join this batch
            batch, self._pending = self._pending[:self._max], self._pending[self._max:]
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
        if self._pending:
            self._pending[0].wake.set()
        else:
            self._writing = False


def batcher_for(call: Callable[..., Awaitable[Any]], submit: Callable[[Sequence[NewTask]], list[CreateResult]],
                max_batch: int = 256) -> CreateBatcher:
    """A batcher that runs the service's synchronous ``submit`` through ``call`` (inline or in a
    worker thread, like every store call of the API)."""
    return CreateBatcher(lambda tasks: call(submit, tasks), max_batch=max_batch)
