"""The test kit, for plugin authors' and the host's own tests (``docs/testing.md``).

::

    from tasker_host.testing import FakeEntryPoint, make_plugin       # plugins built in memory
    host = build_host(entry_points=[FakeEntryPoint.of("payments", make_plugin(...), dist="tasker-payments")])

    from tasker_host.testing import PluginUnderTest, start_plugin_host  # a task run to the end
    run = start_plugin_host(PluginUnderTest(plugin, namespace="payments")).run_task("process_refund", {...})

    from tasker_host.testing import HandlerHarness                     # handlers without an engine
    results = await HandlerHarness(plugin).run_happy_path("process_refund", {...})

    from tasker_host.testing import check_plugin                       # the plugin contract
    report = check_plugin(plugin, namespace="payments", distribution="tasker-payments")

The pytest plugin (:mod:`tasker_host.testing.pytest_plugin`) offers all of it as fixtures;
:mod:`tasker_host.testing.simulation` holds the simulated services the demo plugins use. Names
are imported on first use, so importing one submodule does not load the others (the host).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.testing.fakes import (
        FakeDistribution,
        FakeEntryPoint,
        FakeStepContext,
        NoopHandler,
        answer_with,
        make_plugin,
        template_doc,
    )
    from tasker_host.testing.harness import HandlerHarness
    from tasker_host.testing.plugin_checks import PluginReport, check_plugin
    from tasker_host.testing.plugin_host import PluginHost, PluginUnderTest, start_plugin_host
    from tasker_host.testing.simulation import record_simulated_sleeps
    from tasker_host.testing.task_run import TaskRun

_SOURCES = {  # exported name -> the submodule defining it
    "FakeDistribution": "fakes", "FakeEntryPoint": "fakes", "FakeStepContext": "fakes",
    "NoopHandler": "fakes", "answer_with": "fakes", "make_plugin": "fakes", "template_doc": "fakes",
    "HandlerHarness": "harness",
    "PluginReport": "plugin_checks", "check_plugin": "plugin_checks",
    "PluginHost": "plugin_host", "PluginUnderTest": "plugin_host", "start_plugin_host": "plugin_host",
    "record_simulated_sleeps": "simulation",
    "TaskRun": "task_run",
}

__all__ = [
    "FakeDistribution", "FakeEntryPoint", "FakeStepContext", "HandlerHarness", "NoopHandler", "PluginHost",
    "PluginReport", "PluginUnderTest", "TaskRun", "answer_with", "check_plugin", "make_plugin",
    "record_simulated_sleeps", "start_plugin_host", "template_doc",
]
assert sorted(__all__) == sorted(_SOURCES)  # one name list for type checkers, one map for lazy imports


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{source}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
