"""Helpers for plugin authors' and the host's own tests: fake entry points and plugins.

::

    from tasker_host.testing import FakeEntryPoint, make_plugin
    ep = FakeEntryPoint.of("payments", make_plugin(namespaces=["payments"], ...), dist="tasker-payments")
    host = build_host(entry_points=[ep])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from tasker_host.handler import StepHandler
from tasker_host.markers import hookimpl
from tasker_host.models import Namespace


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
