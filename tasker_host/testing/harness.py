"""Running a plugin's step handlers without an engine: :class:`HandlerHarness`.

::

    harness = HandlerHarness(plugin)                       # the plugin's only namespace
    results = await harness.run_happy_path("process_refund", {"payment_id": "pay_1", ...})
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tasker_host import dag
from tasker_host.context import TaskInfo
from tasker_host.handler import StepHandler
from tasker_host.models import StepTemplate, TaskTemplate
from tasker_host.testing.awaitables import must_be_awaited
from tasker_host.testing.fakes import UNDER_TEST_DISTRIBUTION, FakeEntryPoint, FakeStepContext
from tasker_host.values import value_problems
from tasker_host.waiting import Wait, WakeInfo, WakeReason, payload_problems


class HandlerHarness:
    """Runs a plugin's step handlers as the engine would, but in-process and one after another.

    The plugin is loaded as a strict host loads it (its templates by the host's own loader, so a
    template the host refuses fails here too). ``namespace``: the one whose templates and handlers
    are used (default: the plugin's only namespace). ``defaults``: fields of every
    :class:`FakeStepContext` (e.g. ``child``) unless given. Without a version, the newest version
    of a workflow is used. ``async def process`` is awaited; a plain ``def process`` is called
    (and what it returns awaited if it is awaitable), as the engine does.

    ``events``: ``{event name: payload}`` answering steps that wait (``ctx.wait_for``): such a step
    runs again at once as if that event had been sent (a step waiting for an event missing from
    it is an ``AssertionError``); a step that sleeps (``ctx.sleep_until``) runs again as if its
    time had come. ``run_step`` returns the :class:`~tasker_host.waiting.Wait` itself.
    """

    def __init__(self, plugin: Any, namespace: str | None = None, *, events: Mapping[str, Any] | None = None,
                 **defaults: Any):
        from tasker_host.host import open_catalog  # loads the engine and the store: only when used
        from tasker_host.settings import HostSettings

        catalog = open_catalog(HostSettings(strict_plugins=True), entry_points=[
            FakeEntryPoint.of("plugin-under-test", plugin, dist=UNDER_TEST_DISTRIBUTION)])
        namespaces = sorted(catalog.registry.namespaces)
        if namespace is None:
            if len(namespaces) != 1:
                raise ValueError(f"the plugin owns namespaces {namespaces}: name one (namespace=...)")
            namespace = namespaces[0]
        if namespace not in namespaces:
            raise ValueError(f"the plugin owns namespaces {namespaces}, not {namespace!r}")
        self.namespace = namespace
        self.defaults = defaults
        self.events = dict(events or {})
        self.registry = catalog.registry

    # --- the plugin's templates -------------------------------------------------------------------
    @property
    def templates(self) -> list[TaskTemplate]:
        """Every registered template of :attr:`namespace`, versions ascending."""
        return list(self.registry.templates_in(self.namespace))

    @property
    def catalogue(self) -> list[tuple[str, str]]:
        """``[(name, version)]`` of :attr:`templates`, sorted."""
        return sorted((t.name, str(t.version)) for t in self.templates)

    def template(self, name: str, version: str | None = None) -> TaskTemplate:
        """The template ``name``: ``version`` exactly (or a PEP 440 range), else the newest."""
        return self.registry.resolve(self.namespace, name, version)

    def newest(self) -> dict[str, TaskTemplate]:
        """``{workflow name: its newest template}``, by name."""
        return {name: self.template(name) for name in sorted({t.name for t in self.templates})}

    def steps(self) -> list[tuple[str, str]]:
        """``(workflow name, step name)`` of every step of :meth:`newest`, for parametrizing."""
        return [(name, s.name) for name, t in self.newest().items() for s in t.steps]

    def step(self, name: str, step: str, version: str | None = None) -> StepTemplate:
        return next(s for s in self.template(name, version).steps if s.name == step)

    def order(self, name: str, version: str | None = None) -> list[str]:
        """The template's step names in the order :meth:`run` runs them (dependencies first)."""
        template = self.template(name, version)
        return dag.topological_order({s.name: s.depends_on for s in template.steps})

    # --- running handlers -------------------------------------------------------------------------
    def ctx(self, name: str, step: str, context: Mapping[str, Any], results: Mapping[str, Any] | None = None,
            attempt: int = 1, *, version: str | None = None, **fields: Any) -> FakeStepContext:
        """A :class:`FakeStepContext` for ``step`` of task ``task-1`` of ``name`` (``version``)."""
        template = self.template(name, version)
        task = TaskInfo("task-1", self.namespace, name, str(template.version), context)
        config = dict(self.step(name, step, str(template.version)).handler_config)
        return FakeStepContext(task, step, config, dict(results or {}), attempt, **{**self.defaults, **fields})

    def handler(self, ctx: FakeStepContext) -> StepHandler:
        handler_class = self.step(ctx.task.name, ctx.step_name, ctx.task.version).handler_class
        return self.registry.handler_class(self.namespace, handler_class)()

    @must_be_awaited
    async def run_step(self, ctx: FakeStepContext) -> Any:
        """``process`` then ``process_results``, as one attempt of the step."""
        return await self._run_step(ctx)

    async def _run_step(self, ctx: FakeStepContext) -> Any:
        handler = self.handler(ctx)
        output = handler.process(ctx)
        if inspect.isawaitable(output):
            output = await output
        if isinstance(output, Wait):
            return output  # as the engine: shaped when the step runs again
        shaped = handler.process_results(ctx, output)
        if inspect.isawaitable(shaped):
            shaped = await shaped
        return shaped

    @must_be_awaited
    async def run(self, name: str, context: Mapping[str, Any], trace: list[str] | None = None, *,
                  version: str | None = None, events: Mapping[str, Any] | None = None,
                  **fields: Any) -> dict[str, Any]:
        """Run every step, dependencies first, feeding results forward.

        Each step's name is appended to ``trace`` before it runs; ``fields`` go to every
        :class:`FakeStepContext` (by default one ``calls`` list for all steps).
        """
        return await self._run(name, context, trace, version=version, events=events, **fields)

    async def _run(self, name: str, context: Mapping[str, Any], trace: list[str] | None = None, *,
                   version: str | None = None, events: Mapping[str, Any] | None = None,
                   **fields: Any) -> dict[str, Any]:
        fields.setdefault("calls", [])
        events = self.events if events is None else events
        results: dict[str, Any] = {}
        for step in self.order(name, version):
            if trace is not None:
                trace.append(step)
            ctx = self.ctx(name, step, context, results, version=version, **fields)
            output = await self._run_step(ctx)
            if isinstance(output, Wait):
                output = await self._run_step(_woken(ctx, output, events))
            results[step] = output
        return results

    @must_be_awaited
    async def fail_step(self, name: str, step: str, outcome: str, context: Mapping[str, Any], *,
                        version: str | None = None, **fields: Any) -> Exception:
        """:meth:`run` with a ``simulate`` plan (:mod:`tasker_host.testing.simulation`) making
        ``step`` answer ``outcome`` (``"timeout"``, ``"declined"``, ...) on its first attempt;
        ``AssertionError`` unless the run stops at ``step`` with an exception, which is returned
        for the test to classify."""
        trace: list[str] = []
        try:
            await self._run(name, {**context, "simulate": {step: [outcome]}}, trace,
                            version=version, **fields)
        except Exception as exc:
            if trace[-1] != step:
                raise AssertionError(f"{outcome!r} was planned for {step!r}, but {trace[-1]!r} "
                                     f"failed: {exc!r}") from exc
            return exc
        raise AssertionError(f"{name} ran to completion although {step!r} was planned to answer "
                             f"{outcome!r}")

    @must_be_awaited
    async def run_happy_path(self, name: str, context: Mapping[str, Any], *,
                             version: str | None = None, events: Mapping[str, Any] | None = None,
                             **fields: Any) -> dict[str, Any]:
        """:meth:`run`, then ``AssertionError`` unless every step ran, in order, and returned a
        ``dict`` the engine stores (:mod:`tasker_host.values`) and that survives a JSON round
        trip (what the store keeps)."""
        results = await self._run(name, context, version=version, events=events, **fields)
        expected = self.order(name, version)
        if list(results) != expected:
            raise AssertionError(f"{name}: steps run {list(results)}, expected {expected}")
        not_dicts = {step: type(r).__name__ for step, r in results.items() if type(r) is not dict}
        if not_dicts:
            raise AssertionError(f"{name}: step results that are not dicts: {not_dicts}")
        if problems := value_problems(results, "results"):
            raise AssertionError(f"{name}: step results the engine would refuse: "
                                 + "; ".join(p.describe() for p in problems))
        if json.loads(json.dumps(results)) != results:
            raise AssertionError(f"{name}: step results change in a JSON round trip: {results!r}")
        return results


def _woken(ctx: FakeStepContext, wait: Wait, events: Mapping[str, Any]) -> FakeStepContext:
    """``ctx`` as the step sees it when it runs again after ``wait``."""
    if wait.event is None:
        return replace(ctx, wake=WakeInfo(WakeReason.TIMER, None, None))
    if wait.event not in events:
        raise AssertionError(f"step {ctx.step_name!r} waits for event {wait.event!r}: give its payload "
                             f"(events={{{wait.event!r}: ...}})")
    payload = events[wait.event]
    if wait.schema is not None and (problems := payload_problems(wait.schema, payload)):
        raise AssertionError(f"the {wait.event!r} payload for step {ctx.step_name!r} violates its schema: "
                             + "; ".join(f"{p['path']}: {p['message']}" for p in problems))
    return ctx.woken_by(wait.event, payload)


__all__ = ["HandlerHarness"]
