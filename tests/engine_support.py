"""A small harness for engine tests: scripted handlers, a fake clock, the memory store."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import anyio

from tasker_host import PermanentError, RetryableError, StepHandler
from tasker_host.engine.clock import FakeClock
from tasker_host.engine.retry import RetryPolicy
from tasker_host.host import Host, build_host
from tasker_host.settings import HostSettings
from tasker_host.testing import FakeEntryPoint, make_plugin, template_doc


class Script:
    """What each step does per attempt, read from the task context:
    ``{"script": {"step": ["ok" | "retry" | "retry_after:7" | "permanent" | "crash" | "hang"]}}``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []  # (task_id, step, attempt)
        self.started: dict[str, anyio.Event] = defaultdict(anyio.Event)
        self.release: dict[str, anyio.Event] = defaultdict(anyio.Event)
        self.fixed: set[str] = set()  # steps whose outside cause was fixed: they succeed now


def scripted_handler(script: Script) -> type[StepHandler]:
    class Scripted(StepHandler):
        async def process(self, ctx: Any) -> Any:
            script.calls.append((ctx.task.id, ctx.step_name, ctx.attempt))
            plan = ctx.task.context.get("script", {}).get(ctx.step_name, [])
            action = plan[ctx.attempt - 1] if ctx.attempt <= len(plan) else "ok"
            if ctx.step_name in script.fixed:
                action = "ok"
            script.started[ctx.step_name].set()
            if action == "retry":
                raise RetryableError("service unavailable")
            if action.startswith("retry_after:"):
                raise RetryableError("rate limited", retry_after=float(action.split(":")[1]))
            if action == "permanent":
                raise PermanentError("card declined")
            if action == "crash":
                raise ZeroDivisionError("bug in handler")
            if action == "hang":
                await anyio.Event().wait()
            if action == "wait":
                await script.release[ctx.step_name].wait()
            return {"step": ctx.step_name, "inputs": sorted(ctx.results)}

    return Scripted


class SyncHandler(StepHandler):
    def process(self, ctx: Any) -> Any:
        import threading

        return {"thread": threading.current_thread().name}


def chain(names: list[str], **step_extra: Any) -> list[dict[str, Any]]:
    steps = []
    for i, name in enumerate(names):
        step = {"name": name, "handler_class": "Scripted", "default_retry_limit": 3, **step_extra}
        if i:
            step["depends_on_step"] = names[i - 1]
        steps.append(step)
    return steps


def fan(width: int) -> list[dict[str, Any]]:
    branches = [f"branch_{i}" for i in range(width)]
    return ([{"name": "start", "handler_class": "Scripted"}]
            + [{"name": b, "handler_class": "Scripted", "depends_on_step": "start"} for b in branches]
            + [{"name": "finish", "handler_class": "Scripted", "depends_on_steps": branches}])


def make_host(script: Script, templates: list[dict[str, Any]], *, extra_plugins=(), store=None,
              observers: Any = None, handlers: dict | None = None, tracer_provider: Any = None,
              **settings: Any) -> Host:
    handlers = {"Scripted": scripted_handler(script), "Sync": SyncHandler, **(handlers or {})}
    namespaces = sorted({t["namespace_name"] for t in templates})
    eps = [FakeEntryPoint.of(ns, make_plugin([ns], [t for t in templates if t["namespace_name"] == ns], handlers),
                             dist=f"tasker-{ns}") for ns in namespaces]
    if observers is not None:
        eps.append(FakeEntryPoint.of("observer", observers, dist="tasker-observer"))
    return build_host(HostSettings(database_url="memory", **settings), entry_points=eps, store=store,
                      clock=FakeClock(), policy=RetryPolicy(base_seconds=1.0, jitter=0.0),
                      extra_plugins=extra_plugins, tracer_provider=tracer_provider)


def doc(name: str = "flow", steps: list[dict[str, Any]] | None = None, namespace: str = "team",
        version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return template_doc(namespace, name, version, steps or chain(["a", "b", "c", "d"]), **extra)
