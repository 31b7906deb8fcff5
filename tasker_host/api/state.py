"""What every route needs: the host, the authenticator, the limits, the metrics, the worker's
state — one :class:`Api` per application (``app.state.api``), nothing in module globals."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from starlette.requests import Request

from tasker_host.api.batching import CreateBatcher, batcher_for
from tasker_host.auth import Principal
from tasker_host.engine.outage import Outage

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.api.metrics import Metrics
from tasker_host.host import Host

R = TypeVar("R")
Authenticate = Callable[[str], "Principal | None"]


@dataclass
class WorkerState:
    """Whether the engine runs in this process, and how it is doing."""

    enabled: bool
    running: bool = False
    error: str | None = None
    grace_seconds: float = 0.0  # at shutdown: how long running steps may take to finish


@dataclass
class Api:
    host: Host
    authenticate: Authenticate
    prefix: str
    max_body_bytes: int
    metrics: Metrics
    worker: WorkerState
    started_at: float = field(default_factory=time.time)
    #: the database as this process's requests find it: one log line per outage, not per 503
    outage: Outage = field(default_factory=lambda: Outage(meanwhile="answering 503 until it is back"))
    creates: CreateBatcher = field(init=False)  # group commit of POST /tasks

    def __post_init__(self) -> None:
        writers = 1 if self.inline else 2  # PostgreSQL: one batch in flight while the next forms
        self.creates = batcher_for(self.call, self.host.service.submit, writers=writers)

    @property
    def inline(self) -> bool:
        """SQLite and memory stores answer in well under a millisecond: call them on the loop."""
        return bool(getattr(self.host.store, "inline", False))

    async def call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Call a synchronous store / service function: inline, or in a worker thread."""
        if self.inline:
            result = fn(*args, **kwargs)
        else:
            result = await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
        self.outage.recovered()
        return result


def api_of(request: Request) -> Api:
    return request.app.state.api
