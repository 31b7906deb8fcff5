"""This repository's own tests use tasker-host's pytest plugin like any plugin project. It comes
through the ``pytest11`` entry point; an editable install made before that entry point existed
has metadata without it, so then it is registered here (a fresh ``pip install -e .`` makes this
a no-op). ``-p no:tasker_host`` still disables it."""

from __future__ import annotations

import pytest

PLUGIN = "tasker_host"


def pytest_configure(config: pytest.Config) -> None:
    manager = config.pluginmanager
    if manager.has_plugin(PLUGIN) or manager.is_blocked(PLUGIN):
        return
    from tasker_host.testing import pytest_plugin

    manager.register(pytest_plugin, PLUGIN)
