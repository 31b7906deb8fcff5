"""A host that loads only the plugin under test and runs its tasks to the end, without sleeping.

::

    host = start_plugin_host(PluginUnderTest(plugin, namespace="payments"))
    run = host.run_task("process_refund", {"payment_id": "pay_1", "refund_amount": 100})
    run.assert_complete()
    host.close()

The pytest plugin's ``tasker_host_factory``, ``plugin_host``, ``run_task`` and ``arun_task``
fixtures are this (``docs/testing.md``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points as installed_entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from packaging.utils import canonicalize_name

from tasker_host.engine.clock import FakeClock
from tasker_host.engine.retry import RetryPolicy
from tasker_host.markers import ENTRY_POINT_GROUP
from tasker_host.testing.awaitables import must_be_awaited
from tasker_host.testing.fakes import UNDER_TEST_DISTRIBUTION, FakeEntryPoint
from tasker_host.testing.stand_ins import Answer, StandInRoutes
from tasker_host.testing.task_run import TaskRun

if TYPE_CHECKING:  # tasker_host.host loads the engine and the store: imported when a host is made
    from tasker_host.engine.invocation import InvocationRequest
    from tasker_host.host import Host

MAX_ROUNDS = 1000  # run-until-idle rounds (each after a backoff) before a run is called stuck


@dataclass(frozen=True)
class PluginUnderTest:
    """The plugin a project's tests are about (what its ``tasker_plugin`` fixture returns).

    ``plugin``: the module or object the entry point names (``None`` when ``distribution`` or
    ``entry_point`` names it); ``namespace``: the namespace(s) it must claim; ``distribution``:
    its installed distribution (checked by ``plugin_report``); ``entry_point``: its entry point's
    name in the group ``tasker_host.plugins``; ``contexts``: sample contexts by template name;
    ``simulated``: its services are :mod:`tasker_host.testing.simulation` ones, so each sample
    must also pass with a ``simulate`` plan.
    """

    plugin: Any
    namespace: str | Sequence[str]
    distribution: str | None = None
    entry_point: str | None = None
    contexts: Mapping[str, Mapping[str, Any]] | None = None
    simulated: bool = False

    def __post_init__(self) -> None:
        if self.plugin is None and not (self.distribution or self.entry_point):
            raise ValueError("PluginUnderTest: give the plugin object, its distribution or its "
                             "entry point name")

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace,) if isinstance(self.namespace, str) else tuple(self.namespace)


class PluginHost:
    """A real host (registry, service, engine, store) with a fake clock and the plugin alone.

    ``host``: the :class:`tasker_host.host.Host`; ``clock``: its
    :class:`~tasker_host.engine.clock.FakeClock`; ``calls``: every call answered by a stand-in.
    """

    def __init__(self, host: Host, stand_ins: StandInRoutes):
        self.host, self._stand_ins = host, stand_ins
        self.clock: FakeClock = host.clock  # type: ignore[assignment]

    @property
    def calls(self) -> list[InvocationRequest]:
        return self._stand_ins.calls

    @property
    def namespaces(self) -> list[str]:
        return sorted(self.host.registry.namespaces)

    def start_task(self, name: str, context: Mapping[str, Any] | None = None, *,
                   version: str | None = None, namespace: str | None = None) -> str:
        """Create a task of the plugin (validated, as the API and CLI do); returns its id."""
        created = self.host.service.create_task(self._namespace(namespace), name, version, context)
        return created.task.id

    def task_run(self, task_id: str) -> TaskRun:
        """The task as it stands, with the stand-in calls its steps made."""
        calls = tuple(c for c in self.calls if c.caller.id == task_id)
        return TaskRun(self.host.service.get_task(task_id), calls)

    def run_task(self, name: str, context: Mapping[str, Any] | None = None, *,
                 version: str | None = None, namespace: str | None = None) -> TaskRun:
        """Create the task and run it (and anything else waiting) to the end; for sync tests."""
        refuse_inside_event_loop("run_task", "await arun_task(...)")
        task_id = self.start_task(name, context, version=version, namespace=namespace)
        anyio.run(self._drain)
        return self.task_run(task_id)

    @must_be_awaited
    async def arun_task(self, name: str, context: Mapping[str, Any] | None = None, *,
                        version: str | None = None, namespace: str | None = None) -> TaskRun:
        """:meth:`run_task` for async tests."""
        task_id = self.start_task(name, context, version=version, namespace=namespace)
        await self._drain()
        return self.task_run(task_id)

    def drain(self, max_rounds: int = MAX_ROUNDS) -> None:
        """Run every created task as far as it goes (for sync tests)."""
        refuse_inside_event_loop("drain", "await adrain()")
        anyio.run(functools.partial(self._drain, max_rounds))

    @must_be_awaited
    async def adrain(self, max_rounds: int = MAX_ROUNDS) -> None:
        """:meth:`drain` for async tests."""
        await self._drain(max_rounds)

    async def _drain(self, max_rounds: int = MAX_ROUNDS) -> None:
        """Run until idle; while work waits for a backoff, jump the fake clock to it, and again.
        The clock never jumps to the timer of a step that waits (``ctx.wait_for`` /
        ``ctx.sleep_until``): send its event (:meth:`send_event`) or ``clock.advance`` past it."""
        for _ in range(max_rounds):
            await self.host.engine.run_until_idle()
            ready_at = self.host.store.next_ready_at()
            if ready_at is None or self._a_wait_is_due_at(ready_at):
                return
            self.clock.advance(max(0.0, ready_at - self.clock.now()))
        raise AssertionError(f"work still waiting after {max_rounds} rounds of retries")

    def _a_wait_is_due_at(self, at: float) -> bool:
        from tasker_host.models import StepState, TaskState
        from tasker_host.store.base import TaskFilter

        live = self.host.store.list_tasks(TaskFilter(status=TaskState.IN_PROGRESS, limit=100_000))
        found = self.host.store.get_tasks([t.id for t in live])
        return any(s.state is StepState.WAITING and s.ready_at == at for t in found.values() for s in t.steps)

    def send_event(self, task_id: str, name: str, payload: Any = None, *,
                   idempotency_key: str | None = None) -> TaskRun:
        """Send an event to a task (checked as the API checks it) and run everything as far as it
        goes; the task as it then stands (for sync tests)."""
        refuse_inside_event_loop("send_event", "await asend_event(...)")
        self.host.service.send_event(task_id, name, payload, idempotency_key=idempotency_key, sender="test")
        anyio.run(self._drain)
        return self.task_run(task_id)

    @must_be_awaited
    async def asend_event(self, task_id: str, name: str, payload: Any = None, *,
                          idempotency_key: str | None = None) -> TaskRun:
        """:meth:`send_event` for async tests."""
        self.host.service.send_event(task_id, name, payload, idempotency_key=idempotency_key, sender="test")
        await self._drain()
        return self.task_run(task_id)

    def close(self) -> None:
        self.host.close()

    def _namespace(self, namespace: str | None) -> str:
        if namespace is not None:
            return namespace
        if len(self.namespaces) != 1:
            raise ValueError(f"the host serves namespaces {self.namespaces}: name one (namespace=...)")
        return self.namespaces[0]


def start_plugin_host(plugin: Any = None, *, distribution: str | None = None,
                      entry_point: str | None = None, database: str = "memory",
                      directory: Path | None = None, stand_ins: Mapping[str, Answer] | None = None,
                      **settings: Any) -> PluginHost:
    """A :class:`PluginHost` loading one plugin: ``plugin`` (a :class:`PluginUnderTest` or the
    plugin object), else the installed ``distribution``'s or ``entry_point``'s.

    ``database``: ``"memory"``, ``"sqlite"`` (a file in ``directory``) or a database URL;
    ``stand_ins``: answers for ``ctx.invoke`` calls to other namespaces
    (:mod:`tasker_host.testing.stand_ins`); ``settings``: :class:`~tasker_host.settings.HostSettings`
    fields. The host is strict: a plugin it would refuse raises ``PluginLoadFailures``.
    """
    from tasker_host.host import build_host  # the engine and the store: only when a host is made
    from tasker_host.settings import HostSettings

    eps = plugin_entry_points(plugin, distribution=distribution, entry_point=entry_point)
    routes = StandInRoutes(stand_ins or {})
    url = database_url(database, directory)
    host = build_host(HostSettings(**{"strict_plugins": True, **settings, "database_url": url}),
                      entry_points=eps, extra_plugins=[("tasker_host.testing.stand_ins", routes)],
                      clock=FakeClock(), policy=RetryPolicy(jitter=0.0))
    return PluginHost(host, routes)


def plugin_entry_points(plugin: Any = None, *, distribution: str | None = None,
                        entry_point: str | None = None) -> list[Any]:
    """The entry points to discover the plugin through (see :func:`start_plugin_host`)."""
    if isinstance(plugin, PluginUnderTest):
        if plugin.plugin is not None:
            name = plugin.entry_point or plugin.namespaces[0]
            return [FakeEntryPoint.of(name, plugin.plugin, dist=UNDER_TEST_DISTRIBUTION)]
        return plugin_entry_points(distribution=plugin.distribution, entry_point=plugin.entry_point)
    if plugin is not None:
        return [FakeEntryPoint.of("plugin-under-test", plugin, dist=UNDER_TEST_DISTRIBUTION)]
    group = list(installed_entry_points(group=ENTRY_POINT_GROUP))
    if distribution is not None:
        wanted = canonicalize_name(distribution)
        found = [ep for ep in group if ep.dist is not None and canonicalize_name(ep.dist.name) == wanted]
        what = f"distribution {distribution!r}"
    elif entry_point is not None:
        found = [ep for ep in group if ep.name == entry_point]
        what = f"entry point {entry_point!r}"
    else:
        raise ValueError("name the plugin: a plugin object, distribution=... or entry_point=...")
    if not found:
        raise LookupError(f"no installed {what} in the group {ENTRY_POINT_GROUP!r} "
                          "(pip install -e the plugin's project first)")
    return found


def database_url(database: str, directory: Path | None) -> str:
    if database != "sqlite":
        return database
    if directory is None:
        raise ValueError('database="sqlite" needs a directory for the file (directory=...)')
    return f"sqlite:///{Path(directory) / 'tasker.db'}"


def refuse_inside_event_loop(name: str, instead: str) -> None:
    """``RuntimeError`` when called on a running event loop: ``name`` runs a loop of its own."""
    try:
        anyio.lowlevel.current_token()
    except RuntimeError:  # no event loop runs here: a sync test
        return
    raise RuntimeError(f"{name}() runs its own event loop and cannot be called from an async "
                       f"test: use `{instead}`")


__all__ = ["PluginHost", "PluginUnderTest", "start_plugin_host"]
