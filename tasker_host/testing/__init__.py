"""Helpers for plugin authors' and the host's own tests: fake entry points and plugins, a fake
step context and a harness that runs a plugin's handlers without an engine.

::

    from tasker_host.testing import FakeEntryPoint, make_plugin
    ep = FakeEntryPoint.of("payments", make_plugin(namespaces=["payments"], ...), dist="tasker-payments")
    host = build_host(entry_points=[ep])

    from tasker_host.testing import HandlerHarness, record_simulated_sleeps
    harness = HandlerHarness(plugin, "tasker_payments", "payments")
    results = await harness.run("process_refund", {"payment_id": "pay_123", "refund_amount": 4999})

    from tasker_host.testing import check_plugin
    report = check_plugin(plugin, namespace="payments", distribution="tasker-payments")
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.resources import files
from types import SimpleNamespace
from typing import Any

import anyio
import yaml
from packaging.version import Version

from tasker_host import simulation
from tasker_host.context import InvocationResult, TaskInfo
from tasker_host.handler import StepHandler
from tasker_host.markers import hookimpl
from tasker_host.models import Namespace
from tasker_host.testing.plugin_checks import PluginReport, check_plugin
from tasker_host.values import value_problems


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

    async def process(self, ctx: Any) -> dict[str, Any]:
        return {}


# --- running a plugin's handlers without an engine ------------------------------------------------
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
    log: logging.LoggerAdapter = field(
        default_factory=lambda: logging.LoggerAdapter(logging.getLogger("tasker_host.testing"), {}))
    calls: list[dict[str, Any]] = field(default_factory=list)
    child: Any = None

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
        return replace(child, correlation_id=context.get("correlation_id"))

    return answer


def record_simulated_sleeps(monkeypatch: Any) -> list[float]:
    """Make :mod:`tasker_host.simulation` record its delays instead of sleeping, and ignore any
    ``TASKER_SIMULATE`` of the environment; returns the list of recorded delays (seconds).

    ``monkeypatch`` is pytest's fixture, so everything is undone after the test.
    """
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(simulation, "sleep", fake_sleep)
    monkeypatch.delenv(simulation.ENV_VAR, raising=False)
    return recorded


def simulation_fixtures() -> tuple[Any, Any]:
    """Two pytest fixtures for a test module that runs handlers: ``anyio_backend`` (asyncio, for
    ``@pytest.mark.anyio``) and ``sleeps`` (:func:`record_simulated_sleeps`)::

        anyio_backend, sleeps = simulation_fixtures()
    """
    import pytest  # only the tests need it

    @pytest.fixture(name="anyio_backend")
    def anyio_backend() -> str:
        return "asyncio"

    @pytest.fixture(name="sleeps")
    def sleeps(monkeypatch: Any) -> list[float]:
        """Simulated sleeps, recorded instead of slept."""
        return record_simulated_sleeps(monkeypatch)

    return anyio_backend, sleeps


class HandlerHarness:
    """Runs a plugin's step handlers as the engine would, but in-process and one after another.

    ``documents`` holds the package's templates (``<package>/templates/*.yaml``) by
    ``(name, version)``; without a version, the newest version of a workflow is used.
    ``defaults``: fields of every :class:`FakeStepContext` (e.g. ``child``) unless given.
    """

    def __init__(self, plugin: Any, package: str, namespace: str, **defaults: Any):
        self.namespace = namespace
        self.defaults = defaults
        self.handlers = dict(plugin.tasker_step_handlers())
        self.documents = {(d["name"], d["version"]): d for d in template_documents(package).values()}

    def template(self, name: str, version: str | None = None) -> Mapping[str, Any]:
        if version is None:
            version = max((v for n, v in self.documents if n == name), key=Version)
        return self.documents[(name, version)]

    def newest(self) -> dict[str, Mapping[str, Any]]:
        """``{workflow name: document of its newest version}``, by name."""
        return {name: self.template(name) for name in sorted({n for n, _ in self.documents})}

    def steps(self) -> list[tuple[str, str]]:
        """``(workflow name, step name)`` of every step of :meth:`newest`, for parametrizing."""
        return [(name, s["name"]) for name, doc in self.newest().items() for s in doc["step_templates"]]

    def step(self, name: str, step: str, version: str | None = None) -> Mapping[str, Any]:
        return next(s for s in self.template(name, version)["step_templates"] if s["name"] == step)

    def ctx(self, name: str, step: str, context: Mapping[str, Any], results: Mapping[str, Any] = (),
            attempt: int = 1, *, version: str | None = None, **fields: Any) -> FakeStepContext:
        """A :class:`FakeStepContext` for ``step`` of task ``task-1`` of ``name`` (``version``)."""
        doc = self.template(name, version)
        task = TaskInfo("task-1", self.namespace, name, doc["version"], context)
        config = self.step(name, step, doc["version"]).get("handler_config", {})
        return FakeStepContext(task, step, config, dict(results), attempt, **{**self.defaults, **fields})

    def handler(self, ctx: FakeStepContext) -> StepHandler:
        handler_class = self.step(ctx.task.name, ctx.step_name, ctx.task.version)["handler_class"]
        cls = self.handlers.get((self.namespace, handler_class)) or self.handlers[handler_class]
        return cls()

    async def run_step(self, ctx: FakeStepContext) -> Any:
        """``process`` then ``process_results``, as one attempt of the step; as the engine does,
        an ``async def process`` runs on the loop and a plain ``def`` one in a worker thread."""
        handler = self.handler(ctx)
        if inspect.iscoroutinefunction(handler.process):
            output = await handler.process(ctx)
        else:
            output = await anyio.to_thread.run_sync(handler.process, ctx)
        shaped = handler.process_results(ctx, output)
        return await shaped if inspect.isawaitable(shaped) else shaped

    async def run(self, name: str, context: Mapping[str, Any], trace: list[str] | None = None, *,
                  version: str | None = None, **fields: Any) -> dict[str, Any]:
        """Run every step in template order (a topological order), feeding results forward.

        Each step's name is appended to ``trace`` before it runs; ``fields`` go to every
        :class:`FakeStepContext` (by default one ``calls`` list for all steps).
        """
        fields.setdefault("calls", [])
        results: dict[str, Any] = {}
        for step in self.template(name, version)["step_templates"]:
            if trace is not None:
                trace.append(step["name"])
            ctx = self.ctx(name, step["name"], context, results, version=version, **fields)
            results[step["name"]] = await self.run_step(ctx)
        return results

    async def fail_step(self, name: str, step: str, outcome: str, context: Mapping[str, Any], *,
                        version: str | None = None, **fields: Any) -> Exception:
        """:meth:`run` with a ``simulate`` plan making ``step`` answer ``outcome`` (``"timeout"``,
        ``"declined"``, ...) on its first attempt; ``AssertionError`` unless the run stops at
        ``step`` with an exception, which is returned for the test to classify."""
        trace: list[str] = []
        try:
            await self.run(name, {**context, "simulate": {step: [outcome]}}, trace, version=version,
                           **fields)
        except Exception as exc:
            if trace[-1] != step:
                raise AssertionError(f"{outcome!r} was planned for {step!r}, but {trace[-1]!r} "
                                     f"failed: {exc!r}") from exc
            return exc
        raise AssertionError(f"{name} ran to completion although {step!r} was planned to answer "
                             f"{outcome!r}")

    async def run_happy_path(self, name: str, context: Mapping[str, Any], *,
                             version: str | None = None, **fields: Any) -> dict[str, Any]:
        """:meth:`run`, then ``AssertionError`` unless every step ran, in template order, and
        returned a ``dict`` the engine stores (:mod:`tasker_host.values`) and that survives a JSON
        round trip (what the store keeps)."""
        results = await self.run(name, context, version=version, **fields)
        expected = [s["name"] for s in self.template(name, version)["step_templates"]]
        if list(results) != expected:
            raise AssertionError(f"{name}: steps run {list(results)}, template order {expected}")
        not_dicts = {step: type(r).__name__ for step, r in results.items() if type(r) is not dict}
        if not_dicts:
            raise AssertionError(f"{name}: step results that are not dicts: {not_dicts}")
        if problems := value_problems(results, "results"):
            raise AssertionError(f"{name}: step results the engine would refuse: "
                                 + "; ".join(p.describe() for p in problems))
        if json.loads(json.dumps(results)) != results:
            raise AssertionError(f"{name}: step results change in a JSON round trip: {results!r}")
        return results


# --- checking a plugin's packaged templates -------------------------------------------------------
class StrictYamlLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that also rejects duplicate keys, as the host's loader does."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
    if duplicates:
        raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {duplicates}",
                                                node.start_mark)
    return loader.construct_mapping(node, deep)


StrictYamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _mapping_without_duplicates)


def template_files(package: str) -> list[Any]:
    """The ``*.yaml`` / ``*.yml`` files of ``<package>/templates``, sorted by name (works from a wheel)."""
    directory = files(package) / "templates"
    return sorted((e for e in directory.iterdir() if e.name.endswith((".yaml", ".yml"))),
                  key=lambda e: e.name)


def template_documents(package: str) -> dict[str, Any]:
    """``{file name: document}`` of :func:`template_files`, parsed with :class:`StrictYamlLoader`."""
    return {e.name: yaml.load(e.read_text(encoding="utf-8"), Loader=StrictYamlLoader)
            for e in template_files(package)}


def depends_on(step: Mapping[str, Any]) -> list[str]:
    """A step template's dependencies (``depends_on_steps`` and ``depends_on_step``)."""
    single = step.get("depends_on_step")
    return [*step.get("depends_on_steps", []), *([single] if single else [])]


def topological_order(steps: Iterable[Mapping[str, Any]]) -> list[str]:
    """Step names in an order that runs dependencies first; ``AssertionError`` on a cycle."""
    deps = {s["name"]: depends_on(s) for s in steps}
    order: list[str] = []
    while len(order) < len(deps):
        ready = [n for n, d in deps.items() if n not in order and all(x in order for x in d)]
        if not ready:
            raise AssertionError(f"dependency cycle among {sorted(set(deps) - set(order))}")
        order.extend(ready)
    return order


__all__ = [
    "FakeDistribution",
    "FakeEntryPoint",
    "FakeStepContext",
    "HandlerHarness",
    "NoopHandler",
    "PluginReport",
    "StrictYamlLoader",
    "answer_with",
    "check_plugin",
    "depends_on",
    "make_plugin",
    "record_simulated_sleeps",
    "simulation_fixtures",
    "template_doc",
    "template_documents",
    "template_files",
    "topological_order",
]
