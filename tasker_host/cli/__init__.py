"""The ``tasker-host`` command line."""

from tasker_host.cli.main import main

__all__ = ["main"]
