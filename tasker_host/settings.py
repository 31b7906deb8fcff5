"""Host settings: one frozen value, built from the CLI, the environment or tests."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tasker_host.errors import ConfigurationError
from tasker_host.registry import ConflictPolicy

ENV_PREFIX = "TASKER_"


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Everything the composition root needs to build a host.

    ``strict_plugins``: any plugin load failure or broken template stops the host.
    ``on_conflict``: refuse to start on a conflict (default) or quarantine the conflicting entries.
    ``database_url``: SQLAlchemy URL; ``None`` means the embedded SQLite default.
    ``allow_invocations`` / ``deny_invocations``: cross-namespace call rules
    (``TASKER_ALLOW_INVOCATIONS="inventory->payments.process_refund,..."``; see engine/policy.py).
    """

    strict_plugins: bool = False
    on_conflict: ConflictPolicy = ConflictPolicy.REFUSE
    database_url: str | None = None
    allow_invocations: tuple[str, ...] = ()  # "caller->namespace[.name]": may invoke private templates
    deny_invocations: tuple[str, ...] = ()  # "caller->namespace[.name]": may not invoke, whatever else says

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> HostSettings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if (strict := env.get(f"{ENV_PREFIX}STRICT_PLUGINS")) is not None:
            values["strict_plugins"] = _flag(strict, "TASKER_STRICT_PLUGINS")
        if policy := env.get(f"{ENV_PREFIX}ON_CONFLICT"):
            values["on_conflict"] = _policy(policy)
        if url := env.get(f"{ENV_PREFIX}DATABASE_URL"):
            values["database_url"] = url
        for key in ("allow_invocations", "deny_invocations"):
            if rules := env.get(f"{ENV_PREFIX}{key.upper()}"):
                values[key] = tuple(r.strip() for r in rules.split(",") if r.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _flag(text: str, name: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigurationError(f"{name} must be true or false, not {text!r}")


def _policy(text: str) -> ConflictPolicy:
    try:
        return ConflictPolicy(text.strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in ConflictPolicy)
        raise ConfigurationError(f"TASKER_ON_CONFLICT must be one of {choices}, not {text!r}") from None
