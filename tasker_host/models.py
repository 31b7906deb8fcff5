"""Enums and frozen values shared by every layer. No I/O here."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any

from packaging.version import Version


class Visibility(enum.StrEnum):
    """Who may invoke a template from another namespace."""

    PUBLIC = "public"
    PRIVATE = "private"


class ConflictKind(enum.StrEnum):
    NAMESPACE_OWNERSHIP = "namespace_ownership"  # two distributions claim one namespace
    DUPLICATE_TEMPLATE = "duplicate_template"  # two providers of one (namespace, name, version)
    DUPLICATE_HANDLER = "duplicate_handler"  # two providers of one (namespace, handler name)
    FOREIGN_NAMESPACE = "foreign_namespace"  # contribution to a namespace the plugin does not own


class TaskState(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"
    RESOLVED_MANUALLY = "resolved_manually"


class StepState(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    WAITING_RETRY = "waiting_retry"
    WAITING = "waiting"  # for an event or a timer (ctx.wait_for / ctx.sleep_until): holds no worker
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"
    RESOLVED_MANUALLY = "resolved_manually"


@dataclass(frozen=True, slots=True)
class Namespace:
    """A namespace a plugin owns (SDK value returned by ``tasker_namespaces``)."""

    name: str
    description: str = ""
    owner: str = ""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a registered item came from."""

    entry_point: str
    distribution: str
    distribution_version: str
    file: str | None = None

    @property
    def provider(self) -> str:
        return f"{self.distribution} {self.distribution_version}"

    def describe(self) -> str:
        where = f" ({self.file})" if self.file else ""
        return f"{self.provider} [entry point {self.entry_point}]{where}"

    def with_file(self, file: str | None) -> Provenance:
        return Provenance(self.entry_point, self.distribution, self.distribution_version, file)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry_point": self.entry_point,
            "distribution": self.distribution,
            "distribution_version": self.distribution_version,
            "file": self.file,
        }


def frozen_mapping(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(data or {}))


def plain_json(value: Any) -> Any:
    """Frozen mappings (and what they hold) as plain JSON values: dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class DeclaredCall:
    """A cross-namespace call a step declares (``calls:`` in its template): what it sends to
    ``namespace.name`` at ``version`` and what it reads of the result (docs/contracts.md)."""

    namespace: str
    name: str
    version: str | None = None
    sends: Mapping[str, Any] | bool | None = None  # JSON Schema; None: not declared
    reads: Mapping[str, Any] | bool | None = None  # JSON Schema (field paths become one)

    @property
    def target(self) -> str:
        return f"{self.namespace}.{self.name}"

    def describe(self) -> str:
        return self.target + (f" {self.version}" if self.version else "")


@dataclass(frozen=True, slots=True)
class StepTemplate:
    name: str
    handler_class: str
    description: str = ""
    depends_on: tuple[str, ...] = ()
    retryable: bool = True
    retry_limit: int = 3
    handler_config: Mapping[str, Any] = field(default_factory=frozen_mapping)
    skippable: bool = False
    calls: tuple[DeclaredCall, ...] = ()  # declared cross-namespace calls (contracts)

    @property
    def timeout_seconds(self) -> float | None:
        value = self.handler_config.get("timeout_seconds")
        return float(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class TaskTemplate:
    """A validated task template: ``namespace.name@version``, a DAG of steps."""

    namespace: str
    name: str
    version: Version
    steps: tuple[StepTemplate, ...]
    description: str = ""
    task_handler_class: str | None = None
    default_dependent_system: str | None = None
    context_schema: Mapping[str, Any] | None = None
    result_schema: Mapping[str, Any] | None = None  # of the result ctx.invoke returns (contracts)
    visibility: Visibility = Visibility.PUBLIC
    deprecated: str | None = None
    replaced_by: str | None = None  # lifecycle: a version request of this template (``~=3.0``)
    sunset: date | None = None  # lifecycle: from this day (UTC) the version refuses new tasks
    source: str | None = None  # file the template was loaded from, if any
    document: Mapping[str, Any] = field(default_factory=frozen_mapping, compare=False)
    # key path (as in TemplateProblem.key) -> line number in ``source``, for later error reports
    locations: Mapping[str, int] = field(default_factory=frozen_mapping, compare=False)
    provenance: Provenance | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, str, Version]:
        return (self.namespace, self.name, self.version)

    @property
    def full_name(self) -> str:
        return f"{self.namespace}.{self.name}@{self.version}"

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def line_of(self, key: str) -> int | None:
        return self.locations.get(key)

    @property
    def is_deprecated(self) -> bool:
        """Declaring a replacement or a sunset deprecates a version as much as ``deprecated`` does."""
        return self.deprecated is not None or self.replaced_by is not None or self.sunset is not None

    def sunset_reached(self, today: date) -> bool:
        """True from the sunset day on: the version refuses new tasks (its running ones finish)."""
        return self.sunset is not None and today >= self.sunset

    def step(self, name: str) -> StepTemplate:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """One problem in one template document."""

    message: str
    file: str | None = None
    line: int | None = None
    key: str = ""  # dotted key path, e.g. ``step_templates[1].depends_on_step``

    def describe(self) -> str:
        where = self.file or "<template>"
        if self.line is not None:
            where += f":{self.line}"
        key = f" [{self.key}]" if self.key else ""
        return f"{where}{key}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "key": self.key, "message": self.message}


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A plugin that could not be loaded or whose hook raised."""

    entry_point: str
    distribution: str
    distribution_version: str
    stage: str  # "import", "register", "hook:<name>", "validate"
    error: str

    def describe(self) -> str:
        return (
            f"{self.distribution} {self.distribution_version} [entry point {self.entry_point}] "
            f"failed at {self.stage}: {self.error}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry_point": self.entry_point,
            "distribution": self.distribution,
            "distribution_version": self.distribution_version,
            "stage": self.stage,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two or more providers disagree; every one of them is named."""

    kind: ConflictKind
    subject: str  # e.g. "namespace payments" or "payments.process_refund@2.1.3"
    providers: tuple[Provenance, ...]
    detail: str = ""

    def describe(self) -> str:
        who = "; ".join(p.describe() for p in self.providers)
        detail = f" — {self.detail}" if self.detail else ""
        return f"{self.kind.value}: {self.subject} claimed by {who}{detail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "subject": self.subject,
            "detail": self.detail,
            "providers": [p.as_dict() for p in self.providers],
        }
