"""How a runner runs: its concurrency, batch size, lease, heartbeat, poll interval, per-namespace
limits and its name; from the environment (``TASKER_CONCURRENCY`` ...) or the command line."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from tasker_host.errors import ConfigurationError

#: environment variable -> EngineConfig field
ENGINE_ENV = {"TASKER_CONCURRENCY": "concurrency", "TASKER_CLAIM_BATCH": "claim_batch",
              "TASKER_LEASE_SECONDS": "lease_seconds", "TASKER_HEARTBEAT_SECONDS": "heartbeat_seconds",
              "TASKER_POLL_SECONDS": "poll_seconds",
              "TASKER_NAMESPACE_LIMITS": "namespace_limits", "TASKER_WORKER_NAME": "owner"}

#: heartbeats a runner may miss (counting the one under way) before it is presumed dead: 4 beats of
#: 1.5 s = 6 s by default, so a dead runner's steps run again within ~7.5 s (6 s + one beat of
#: the runner that notices), while a live one must stall for 4.5 s to be mistaken for dead
DEAD_AFTER_BEATS = 4
MAX_OWNER = 190  # (leases of a reaped worker are marked "<owner> (lost)" in a 200-character column)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class EngineConfig:
    concurrency: int = 256  # steps running at once in this runner (async handlers mostly wait on I/O)
    claim_batch: int = 256
    lease_seconds: float = 60.0  # a dead runner's steps run again elsewhere after this at the latest
    #: the runner beats this often; silent for DEAD_AFTER_BEATS beats, it is presumed dead and its
    #: steps are taken over (see engine/heartbeat.py)
    heartbeat_seconds: float = 1.5
    poll_seconds: float = 1.0  # fallback wake-up when no nudge or notification arrives
    owner: str = field(default_factory=default_owner)
    #: namespace -> most steps of it in progress at once, across every runner of the database
    namespace_limits: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        problems = [f"{name} must be positive, not {getattr(self, name)}"
                    for name in ("concurrency", "claim_batch", "lease_seconds", "heartbeat_seconds",
                                 "poll_seconds")
                    if not getattr(self, name) > 0]
        problems += [f"namespace limit {ns}={n} must be positive" for ns, n in self.namespace_limits.items()
                     if n <= 0]
        if not 0 < len(self.owner) <= MAX_OWNER:
            problems.append(f"the worker name must have 1 to {MAX_OWNER} characters, not {len(self.owner)}")
        if problems:
            raise ConfigurationError("; ".join(problems))
        object.__setattr__(self, "namespace_limits", MappingProxyType(dict(self.namespace_limits)))

    @property
    def dead_after_seconds(self) -> float:
        """How long this runner may stay silent before other runners presume it dead."""
        return DEAD_AFTER_BEATS * self.heartbeat_seconds

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> EngineConfig:
        """Defaults, then ``TASKER_*`` variables, then ``overrides`` (those not None)."""
        env = os.environ if environ is None else environ
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for var, name in ENGINE_ENV.items():
            if (text := env.get(var)) is not None and text.strip():
                values[name] = _parse(var, name, types[name], text.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def parse_namespace_limits(items: str | tuple[str, ...] | list[str], source: str = "namespace limit"
                           ) -> dict[str, int]:
    """``"payments=4,inventory=2"`` (or several such items) -> {"payments": 4, "inventory": 2}."""
    parts = items.split(",") if isinstance(items, str) else [p for item in items for p in item.split(",")]
    limits: dict[str, int] = {}
    for part in (p.strip() for p in parts if p.strip()):
        namespace, sep, number = part.partition("=")
        if not sep or not namespace.strip() or not number.strip().isdigit() or int(number) <= 0:
            raise ConfigurationError(f"{source}: expected NAMESPACE=N with N a positive integer, not {part!r}")
        limits[namespace.strip()] = int(number)
    return limits


def _parse(var: str, name: str, kind: object, text: str) -> object:
    if name == "namespace_limits":
        return parse_namespace_limits(text, var)
    if name == "owner":
        return text
    try:
        return int(text) if kind in (int, "int") else float(text)
    except ValueError:
        raise ConfigurationError(f"{var} must be a number, not {text!r}") from None
