"""The runner's tuning options, shared by ``worker`` and ``serve`` (which runs a runner too)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click

from tasker_host.engine.config import EngineConfig, parse_namespace_limits
from tasker_host.errors import TaskerError
from tasker_host.settings import HostSettings

_OPTIONS = (
    click.option("--concurrency", type=click.IntRange(1), default=None,
                 help="Steps run at once by this process [env TASKER_CONCURRENCY; default 256]."),
    click.option("--lease-seconds", type=click.FloatRange(0.1), default=None,
                 help="Lease on each claimed step, renewed while it runs; if this process dies its steps "
                      "run again elsewhere after it at the latest [env TASKER_LEASE_SECONDS; default 60]."),
    click.option("--heartbeat-seconds", type=click.FloatRange(0.1), default=None,
                 help="How often this process says it is alive; silent for 4 beats it is presumed dead and "
                      "other workers take its steps over [env TASKER_HEARTBEAT_SECONDS; default 1.5]."),
    click.option("--poll-seconds", type=click.FloatRange(0.01), default=None,
                 help="Fallback check for work when no wake-up arrives [env TASKER_POLL_SECONDS; default 1]."),
    click.option("--namespace-limit", "namespace_limits", multiple=True, metavar="NAMESPACE=N",
                 help="At most N steps of NAMESPACE in progress at once across all workers of the database; "
                      "repeatable [env TASKER_NAMESPACE_LIMITS=payments=8,inventory=4]."),
)


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def with_engine_options(settings: HostSettings, concurrency: int | None, lease_seconds: float | None,
                        poll_seconds: float | None, namespace_limits: tuple[str, ...],
                        heartbeat_seconds: float | None = None) -> HostSettings:
    """``settings`` with the runner tuned by the environment, then these options."""
    try:
        limits = parse_namespace_limits(namespace_limits, "--namespace-limit") if namespace_limits else None
        base = settings.engine or EngineConfig.from_env()
        overrides: dict[str, Any] = {"concurrency": concurrency, "lease_seconds": lease_seconds,
                                     "poll_seconds": poll_seconds, "namespace_limits": limits,
                                     "heartbeat_seconds": heartbeat_seconds}
        engine = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    except TaskerError as exc:
        raise click.UsageError(str(exc)) from None
    return replace(settings, engine=engine)
