"""The fixtures of tasker-host's pytest plugin (``docs/testing.md``).

Registered by :mod:`tasker_host.testing.pytest_plugin` once every installed pytest plugin is
loaded, so that its ``anyio_backend`` wins over anyio's own. Imports of the host happen inside
the fixtures: a project that has tasker-host installed pays nothing for tests that do not use
them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.testing.harness import HandlerHarness
    from tasker_host.testing.plugin_checks import PluginReport
    from tasker_host.testing.plugin_host import PluginHost, PluginUnderTest
    from tasker_host.testing.task_run import TaskRun

NO_PLUGIN = """no plugin under test: define the fixture `tasker_plugin` in your conftest.py, e.g.

    @pytest.fixture(scope="session")
    def tasker_plugin():
        return PluginUnderTest(plugin, namespace="payments", distribution="tasker-payments")

(from tasker_host.testing import PluginUnderTest; see docs/testing.md)"""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """``@pytest.mark.anyio`` tests run on asyncio (override this fixture to run them on trio too)."""
    return "asyncio"


@pytest.fixture(scope="session")
def tasker_plugin() -> PluginUnderTest:
    """The plugin under test: override it in conftest.py to return a ``PluginUnderTest``."""
    pytest.fail(NO_PLUGIN, pytrace=False)


@pytest.fixture
def plugin_report(tasker_plugin: PluginUnderTest) -> PluginReport:
    """``check_plugin`` of the plugin under test: its ``PluginReport``; the test fails listing
    every broken rule of the plugin contract."""
    from tasker_host.testing.plugin_checks import check_plugin

    try:
        return check_plugin(_plugin_object(tasker_plugin), namespace=list(tasker_plugin.namespaces),
                            distribution=tasker_plugin.distribution, contexts=tasker_plugin.contexts,
                            simulated=tasker_plugin.simulated)
    except AssertionError as exc:
        problems = str(exc)
    pytest.fail(problems, pytrace=False)


@pytest.fixture
def tasker_host_factory(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PluginHost]]:
    """``make(plugin=None, *, distribution=None, entry_point=None, database="memory",
    stand_ins=None, **settings) -> PluginHost``: a host loading one plugin (default: the plugin
    under test), closed after the test. ``database``: ``"memory"``, ``"sqlite"`` (a file in a
    temporary directory) or a URL; ``stand_ins``: ``{"namespace[.name]": answer}`` for
    ``ctx.invoke`` calls to other namespaces."""
    from tasker_host.testing.plugin_host import start_plugin_host

    hosts: list[PluginHost] = []

    def make(plugin: Any = None, *, distribution: str | None = None, entry_point: str | None = None,
             database: str = "memory", stand_ins: Mapping[str, Any] | None = None,
             **settings: Any) -> PluginHost:
        if plugin is None and distribution is None and entry_point is None:
            plugin = request.getfixturevalue("tasker_plugin")
        directory = tmp_path_factory.mktemp("tasker") if database == "sqlite" else None
        host = start_plugin_host(plugin, distribution=distribution, entry_point=entry_point,
                                 database=database, directory=directory, stand_ins=stand_ins,
                                 **settings)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.close()


@pytest.fixture
def plugin_host(tasker_host_factory: Callable[..., PluginHost]) -> PluginHost:
    """A ``PluginHost`` with the plugin under test alone, on the memory store, fake clock."""
    return tasker_host_factory()


@pytest.fixture
def run_task(plugin_host: PluginHost) -> Callable[..., TaskRun]:
    """``run_task(name, context=None, *, version=None, namespace=None) -> TaskRun``: create a
    task of the plugin under test and run it to the end (backoffs skipped); for sync tests."""
    return plugin_host.run_task


@pytest.fixture
def arun_task(plugin_host: PluginHost) -> Callable[..., Any]:
    """``await arun_task(name, context=None, *, version=None, namespace=None) -> TaskRun``:
    ``run_task`` for async tests (a call that is never awaited fails the test)."""
    return plugin_host.arun_task


@pytest.fixture
def handler_harness(tasker_plugin: PluginUnderTest) -> HandlerHarness:
    """``HandlerHarness`` of the plugin under test (its first namespace): handlers without an engine."""
    from tasker_host.testing.harness import HandlerHarness

    return HandlerHarness(_plugin_object(tasker_plugin), tasker_plugin.namespaces[0])


@pytest.fixture
def simulated_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays ``tasker_host.testing.simulation`` would have slept (``slow:<s>``, ``timeout``),
    recorded instead of slept; ``TASKER_SIMULATE`` is cleared for the test."""
    from tasker_host.testing.simulation import record_simulated_sleeps

    return record_simulated_sleeps(monkeypatch)


def _plugin_object(under_test: PluginUnderTest) -> Any:
    """The plugin object itself, loading it through its entry point when only that is named."""
    from tasker_host.testing.plugin_host import plugin_entry_points

    if under_test.plugin is not None:
        return under_test.plugin
    loaded = {id(obj): obj for obj in (ep.load() for ep in plugin_entry_points(
        distribution=under_test.distribution, entry_point=under_test.entry_point))}
    if len(loaded) != 1:
        pytest.fail(f"{under_test} names {len(loaded)} plugin objects: give the plugin itself",
                    pytrace=False)
    return next(iter(loaded.values()))
