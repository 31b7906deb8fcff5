"""What the ``tasker-host`` group hands to its commands (its own module so that command modules
need not import :mod:`tasker_host.cli.main`, which imports them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from tasker_host.settings import HostSettings


@dataclass
class CliState:
    """What the group hands to its commands (tests may pre-fill ``entry_points``)."""

    settings: HostSettings = field(default_factory=HostSettings)
    entry_points: Any = None


pass_state = click.make_pass_decorator(CliState, ensure=True)
