"""Coroutines of the test kit that a test cannot forget to await.

Calling an ``async def`` from a plain test returns a coroutine that nobody runs: the test passes
and Python only warns ("coroutine ... was never awaited"). The test kit's async entry points
(``HandlerHarness.run``, ``PluginHost.arun_task``, ...) are wrapped with :func:`must_be_awaited`:
they return a :class:`Pending` coroutine that registers itself with the test being run, and the
pytest plugin fails a test that ends leaving one of them never awaited. Without the pytest
plugin, Python's own warning still applies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Generator
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: the :class:`Pending` coroutines created during the current test (set by the pytest plugin)
CREATED: ContextVar[list[Pending[Any]] | None] = ContextVar("tasker_host_pending_coroutines",
                                                             default=None)


class Pending(Coroutine[Any, Any, T]):
    """A coroutine that remembers whether it was ever run (awaited, sent to, or closed)."""

    __slots__ = ("_coro", "what", "started")

    def __init__(self, coro: Coroutine[Any, Any, T], what: str):
        self._coro, self.what, self.started = coro, what, False
        created = CREATED.get()
        if created is not None:
            created.append(self)

    def __await__(self) -> Generator[Any, None, T]:
        self.started = True
        return self._coro.__await__()

    def send(self, value: Any) -> Any:
        self.started = True
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        self.started = True
        return self._coro.throw(*args)

    def close(self) -> None:
        self.started = True
        self._coro.close()

    def discard(self) -> None:
        """Close the coroutine without running it (no "never awaited" warning follows)."""
        self._coro.close()

    def __repr__(self) -> str:
        return f"<Pending {self.what}{' (started)' if self.started else ''}>"


def must_be_awaited(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Pending[T]]:
    """Wrap an ``async def`` so that its coroutines are :class:`Pending` ones."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Pending[T]:
        return Pending(fn(*args, **kwargs), f"{fn.__qualname__}(...)")

    return wrapper


def never_awaited(created: list[Pending[Any]]) -> str | None:
    """The failure message for the coroutines of ``created`` that never ran (closing them), or
    ``None`` when every one ran."""
    left = [p for p in created if not p.started]
    for pending in left:
        pending.discard()
    if not left:
        return None
    names = ", ".join(sorted({p.what for p in left}))
    return (f"{names} was never awaited: the test called an async function of tasker_host.testing "
            "without `await`. Make the test `async def` (with @pytest.mark.anyio) and await it, or "
            "use the sync entry point (run_task instead of arun_task).")
