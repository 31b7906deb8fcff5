"""What the ``tasker-host`` group hands to its commands (its own module so that command modules
need not import :mod:`tasker_host.cli.main`, which imports them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from tasker_host.settings import HostSettings

if TYPE_CHECKING:
    from tasker_host.cli.profiles import RemoteTarget


@dataclass
class CliState:
    """What the group hands to its commands (tests may pre-fill ``entry_points``)."""

    settings: HostSettings = field(default_factory=HostSettings)
    entry_points: Any = None
    remote: RemoteTarget | None = None  # remote mode (--server / --profile): cli/backend.py


pass_state = click.make_pass_decorator(CliState, ensure=True)
