"""Fakes for tests: entry points and plugins built in memory, a minimal template document, a
step context for calling handlers directly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from tasker_host import waiting
from tasker_host.context import InvocationResult, StepContext, TaskInfo
from tasker_host.engine.step_log import StepLog, StepLogBuffer
from tasker_host.handler import StepHandler
from tasker_host.markers import hookimpl
from tasker_host.models import Namespace
from tasker_host.waiting import Wait, WakeInfo, WakeReason

UNDER_TEST_DISTRIBUTION = "tasker-plugin-under-test"  # the distribution a plugin object is loaded as


@dataclass(frozen=True)
class FakeDistribution:
    name: str
    version: str = "1.0.0"


@dataclass
class FakeEntryPoint:
    """Quacks like ``importlib.metadata.EntryPoint`` for discovery."""

    name: str
    value: str
    dist: FakeDistribution | None
    loader: Callable[[], Any] = field(repr=False)

    def load(self) -> Any:
        return self.loader()

    @classmethod
    def of(cls, name: str, plugin: Any, *, dist: str = "tasker-fake", version: str = "1.0.0") -> FakeEntryPoint:
        return cls(name, f"fake_{name}:plugin", FakeDistribution(dist, version), lambda: plugin)

    @classmethod
    def failing(cls, name: str, error: BaseException, *, dist: str = "tasker-broken",
                version: str = "0.0.1") -> FakeEntryPoint:
        def boom() -> Any:
            raise error

        return cls(name, f"fake_{name}:plugin", FakeDistribution(dist, version), boom)


def make_plugin(
    namespaces: Iterable[str | Namespace] = (),
    templates: Iterable[Any] = (),
    handlers: Mapping[Any, type[StepHandler]] | None = None,
    **extra_hooks: Callable[..., Any],
) -> Any:
    """Build a plugin object implementing the registration hooks with fixed return values."""
    ns = [n if isinstance(n, Namespace) else Namespace(n) for n in namespaces]
    items, mapping = list(templates), dict(handlers or {})

    @hookimpl
    def tasker_namespaces() -> list[Namespace]:
        return ns

    @hookimpl
    def tasker_templates() -> list[Any]:
        return items

    @hookimpl
    def tasker_step_handlers() -> dict[Any, type[StepHandler]]:
        return mapping

    hooks = {"tasker_namespaces": tasker_namespaces, "tasker_templates": tasker_templates,
             "tasker_step_handlers": tasker_step_handlers}
    hooks.update({k: hookimpl(v) for k, v in extra_hooks.items()})
    return SimpleNamespace(**hooks)


def template_doc(namespace: str, name: str, version: str, steps: Iterable[Mapping[str, Any]] | None = None,
                 **extra: Any) -> dict[str, Any]:
    """A minimal valid template document (a one-step template unless ``steps`` is given)."""
    doc = {
        "name": name,
        "namespace_name": namespace,
        "version": version,
        "description": f"{namespace}.{name} {version}",
        "step_templates": list(steps or [{"name": "only_step", "handler_class": "Noop"}]),
    }
    doc.update(extra)
    return doc


class NoopHandler(StepHandler):
    """Returns an empty result; handy for catalogue tests."""

    async def process(self, ctx: StepContext) -> dict[str, Any]:
        return {}


@dataclass
class FakeStepContext:
    """A step context (:class:`tasker_host.context.StepContext`) for calling handlers directly.

    ``invoke`` records each call in ``calls`` and answers with ``child``: an
    :class:`~tasker_host.context.InvocationResult`, an exception to raise, or a callable
    ``(namespace, name, version, context)`` returning either; ``None`` answers a completed child.
    """

    task: TaskInfo
    step_name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    results: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    log: StepLog = field(default_factory=lambda: StepLog({}, StepLogBuffer(time.time)))
    calls: list[dict[str, Any]] = field(default_factory=list)
    child: Any = None
    wake: WakeInfo | None = None  # set with :meth:`woken_by` / :meth:`timed_out` to test a re-run
    sent: list[dict[str, Any]] = field(default_factory=list)  # what ``send`` was asked to send

    def wait_for(self, name: str, *, schema: Mapping[str, Any] | None = None,
                 timeout: timedelta | float | None = None) -> Wait:
        return waiting.wait_for(name, schema, timeout, self.config)

    def sleep_until(self, when: datetime) -> Wait:
        return waiting.sleep_until(when)

    def event(self, name: str) -> Any:
        return waiting.event_payload(self.wake, name)

    def woken_by(self, name: str, payload: Any) -> FakeStepContext:
        """This context as the step sees it once event ``name`` arrived with ``payload``."""
        return replace(self, wake=WakeInfo(WakeReason.EVENT, name, None, {name: (payload,)}))

    def timed_out(self, name: str) -> FakeStepContext:
        """This context as the step sees it once its wait for ``name`` timed out."""
        return replace(self, wake=WakeInfo(WakeReason.TIMEOUT, name, None))

    async def send(self, task_id: str, name: str, payload: Any = None, *, idempotency_key: str | None = None,
                   namespace: str | None = None) -> Mapping[str, Any]:
        self.sent.append({"task_id": task_id, "name": name, "payload": payload, "idempotency_key": idempotency_key,
                          "namespace": namespace})
        return {"id": len(self.sent), "task_id": task_id, "name": name, "payload": payload, "duplicate": False}

    @property
    def log_lines(self) -> list[str]:
        """The messages ``log`` kept, in order (with the engine's bounds and marker line)."""
        return [line.message for line in self.log.buffer.lines()] if self.log.buffer is not None else []

    async def invoke(self, namespace: str, name: str, *, version: str | None = None,
                     context: Mapping[str, Any] | None = None, wait: bool = True) -> InvocationResult:
        context = dict(context or {})
        self.calls.append({"namespace": namespace, "name": name, "version": version,
                           "context": context, "wait": wait})
        child = self.child
        if callable(child) and not isinstance(child, BaseException):
            child = child(namespace, name, version, context)
        if child is None:
            child = InvocationResult(f"child-{len(self.calls)}", namespace, name, "1.0.0", "complete",
                                     context.get("correlation_id") or "corr-1")
        if isinstance(child, BaseException):
            raise child
        return child


def answer_with(child: InvocationResult) -> Callable[..., InvocationResult]:
    """A :class:`FakeStepContext` ``child`` answering every ``invoke`` with ``child``, but
    carrying the caller's ``correlation_id`` (from the invoke's context), as the engine does."""

    def answer(namespace: str, name: str, version: str | None,
               context: Mapping[str, Any]) -> InvocationResult:
        return replace(child, correlation_id=str(context.get("correlation_id", child.correlation_id)))

    return answer


__all__ = ["FakeDistribution", "FakeEntryPoint", "FakeStepContext", "NoopHandler", "answer_with",
           "make_plugin", "template_doc"]
