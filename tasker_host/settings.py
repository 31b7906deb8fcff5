"""Host settings: one frozen value, built from the CLI, the environment or tests."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tasker_host.engine.config import ENGINE_ENV, EngineConfig
from tasker_host.errors import ConfigurationError
from tasker_host.registry import ConflictPolicy

ENV_PREFIX = "TASKER_"
REMOTE_HOSTS_ENV = f"{ENV_PREFIX}REMOTE_HOSTS"
REMOTE_HOST_KEYS = ("url", "token", "token_env")


@dataclass(frozen=True, slots=True)
class RemoteHost:
    """A namespace another tasker-host serves: its API base URL and the bearer token to call it."""

    namespace: str
    base_url: str  # e.g. "http://127.0.0.1:8081/tasker" (no trailing slash)
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Everything the composition root needs to build a host.

    ``strict_plugins``: any plugin load failure or broken template stops the host.
    ``on_conflict``: refuse to start on a conflict (default) or quarantine the conflicting entries.
    ``database_url``: SQLAlchemy URL; ``None`` means the embedded SQLite default.
    ``allow_invocations`` / ``deny_invocations``: cross-namespace call rules
    (``TASKER_ALLOW_INVOCATIONS="inventory->payments.process_refund,..."``; see engine/policy.py).
    ``remote_hosts``: namespaces whose ``ctx.invoke`` calls go to another host's REST API
    (``TASKER_REMOTE_HOSTS``, see :func:`parse_remote_hosts` and docs/remote.md).
    ``engine``: the runner's tuning (``TASKER_CONCURRENCY``, ``TASKER_NAMESPACE_LIMITS`` ...);
    ``None``: the defaults.
    """

    strict_plugins: bool = False
    on_conflict: ConflictPolicy = ConflictPolicy.REFUSE
    database_url: str | None = None
    allow_invocations: tuple[str, ...] = ()  # "caller->namespace[.name]": may invoke private templates
    deny_invocations: tuple[str, ...] = ()  # "caller->namespace[.name]": may not invoke, whatever else says
    remote_hosts: tuple[RemoteHost, ...] = ()  # namespaces served by other hosts (calls go over HTTP)
    engine: EngineConfig | None = None
    durable_steps: bool = False  # PostgreSQL: step outcomes wait for the WAL flush too (TASKER_DURABLE_STEPS)

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
        if remote := env.get(REMOTE_HOSTS_ENV):
            values["remote_hosts"] = parse_remote_hosts(remote, env)
        if (durable := env.get(f"{ENV_PREFIX}DURABLE_STEPS")) is not None:
            values["durable_steps"] = _flag(durable, "TASKER_DURABLE_STEPS")
        if any(env.get(var, "").strip() for var in ENGINE_ENV):
            values["engine"] = EngineConfig.from_env(env)
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


def parse_remote_hosts(text: str, environ: Mapping[str, str] | None = None) -> tuple[RemoteHost, ...]:
    """``TASKER_REMOTE_HOSTS``: a JSON object (or ``@/path/file.json``) mapping each namespace to
    ``{"url": ..., "token": ...}`` or ``{"url": ..., "token_env": "VAR"}`` (token read from ``VAR``)."""
    env = os.environ if environ is None else environ
    source, raw = _remote_source(text)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"{source} must be a JSON object mapping namespaces to "
                                 f'{{"url": ..., "token" | "token_env": ...}}, not {type(value).__name__}')
    return tuple(_remote_host(source, ns, entry, env) for ns, entry in sorted(value.items()))


def _remote_source(text: str) -> tuple[str, str]:
    if not text.strip().startswith("@"):
        return REMOTE_HOSTS_ENV, text
    path = Path(text.strip()[1:]).expanduser()
    try:
        return f"{REMOTE_HOSTS_ENV} file {path}", path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {REMOTE_HOSTS_ENV} file {path}: {exc.strerror}") from None


def _remote_host(source: str, namespace: str, entry: Any, env: Mapping[str, str]) -> RemoteHost:
    def bad(key: str, problem: str) -> ConfigurationError:
        return ConfigurationError(f"{source}: {namespace}{'.' + key if key else ''} {problem}")

    if not namespace.strip():
        raise ConfigurationError(f"{source}: namespace names must not be empty")
    if not isinstance(entry, dict):
        raise bad("", 'must be an object {"url": ..., "token" | "token_env": ...}')
    if unknown := sorted(set(entry) - set(REMOTE_HOST_KEYS)):
        raise bad(unknown[0], f"is not a known key (expected {', '.join(REMOTE_HOST_KEYS)})")
    url = entry.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if not isinstance(url, str) or parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad("url", f"must be an http(s) URL such as http://host:8081/tasker, not {url!r}")
    return RemoteHost(namespace, url.rstrip("/"), _remote_token(entry, env, bad))


def _remote_token(entry: dict[str, Any], env: Mapping[str, str],
                  bad: Callable[[str, str], ConfigurationError]) -> str:
    if ("token" in entry) == ("token_env" in entry):
        raise bad("token", "is required: give exactly one of token or token_env")
    if "token" in entry:
        if not isinstance(entry["token"], str) or not entry["token"].strip():
            raise bad("token", "must be a non-empty string")
        return entry["token"].strip()
    var = entry["token_env"]
    if not isinstance(var, str) or not var.strip():
        raise bad("token_env", "must name an environment variable")
    if not (token := env.get(var.strip(), "").strip()):
        raise bad("token_env", f"names ${var.strip()}, which is not set or empty")
    return token
