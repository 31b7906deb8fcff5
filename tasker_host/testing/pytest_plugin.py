"""tasker-host's pytest plugin, registered through the ``pytest11`` entry point ``tasker_host``:
every project with tasker-host installed gets its fixtures (:mod:`tasker_host.testing.fixtures`,
``docs/testing.md``). Disable it with ``pytest -p no:tasker_host``.

Besides the fixtures, it fails a test that leaves a coroutine of the test kit never awaited
(:mod:`tasker_host.testing.awaitables`): calling ``arun_task`` or a ``HandlerHarness`` coroutine
from a sync test would otherwise pass, having run nothing.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tasker_host.testing import fixtures
from tasker_host.testing.awaitables import CREATED, Pending, never_awaited

FIXTURES_PLUGIN = "tasker_host.fixtures"


def pytest_configure(config: pytest.Config) -> None:
    # Registered now, after every entry-point plugin: of two plugins defining a fixture, the one
    # registered last wins, so anyio's anyio_backend (all backends) gives way to ours (asyncio).
    if config.pluginmanager.get_plugin(FIXTURES_PLUGIN) is None:
        config.pluginmanager.register(fixtures, FIXTURES_PLUGIN)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    created: list[Pending[Any]] = []
    token = CREATED.set(created)
    try:
        result = yield
    finally:
        CREATED.reset(token)
    if message := never_awaited(created):
        pytest.fail(message, pytrace=False)
    return result
