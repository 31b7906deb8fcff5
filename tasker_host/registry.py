"""The registry: who provides which namespace, template and handler; conflicts; resolution.

Built once at start-up from the plugins' contributions into an immutable snapshot. Conflicting
entries are never resolved by load order: every provider is named in a :class:`Conflict` and the
entries are quarantined (kept out of the registry). Whether the host may start with quarantined
entries is the caller's policy (:class:`ConflictPolicy`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from packaging.version import Version

from tasker_host import lifecycle
from tasker_host.errors import (
    ConfigurationError,
    ConflictError,
    NoMatchingVersionError,
    QuarantinedNamespaceError,
    RegistryError,
    UnknownNamespaceError,
    UnknownTemplateError,
)
from tasker_host.handler import StepHandler
from tasker_host.models import Conflict, Namespace, PluginFailure, Provenance, TaskTemplate
from tasker_host.versions import VersionRequest


class ConflictPolicy(enum.StrEnum):
    REFUSE = "refuse"  # a conflict stops the host (the default)
    QUARANTINE = "quarantine"  # conflicting entries are left out, the rest is served


@dataclass(frozen=True, slots=True)
class NamespaceEntry:
    namespace: Namespace
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class HandlerEntry:
    namespace: str
    name: str
    cls: type[StepHandler]
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class QuarantinedItem:
    """An entry left out because of a conflict or an unusable template."""

    kind: str  # "namespace", "template", "handler"
    subject: str
    provenance: Provenance
    reason: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "subject": self.subject, "reason": self.reason,
                "provider": self.provenance.as_dict()}


@dataclass(frozen=True)
class Registry:
    namespaces: Mapping[str, NamespaceEntry]
    templates: Mapping[tuple[str, str], tuple[TaskTemplate, ...]]  # versions ascending
    handlers: Mapping[tuple[str, str], HandlerEntry]
    conflicts: tuple[Conflict, ...] = ()
    quarantined: tuple[QuarantinedItem, ...] = ()
    failures: tuple[PluginFailure, ...] = ()  # template problems, as failures of their plugin

    # -- policy ------------------------------------------------------------------------------
    def check(self, policy: ConflictPolicy) -> None:
        """Raise :class:`ConflictError` when there are conflicts and the policy refuses them."""
        if self.conflicts and policy is ConflictPolicy.REFUSE:
            raise ConflictError(self.conflicts)

    # -- lookup ------------------------------------------------------------------------------
    def namespace(self, name: str) -> NamespaceEntry:
        """The namespace entry; :class:`QuarantinedNamespaceError` naming its claimants when it is
        quarantined, else :class:`UnknownNamespaceError` listing the known ones."""
        try:
            return self.namespaces[name]
        except KeyError:
            known = sorted(self.namespaces)
            if claims := self.namespace_claims(name):
                providers = [q.provenance.describe() for q in claims]
                raise QuarantinedNamespaceError(
                    f"namespace {name!r} is quarantined: {claims[0].reason} ({'; '.join(providers)}); "
                    "none of them is served until all but one are uninstalled",
                    providers=providers,
                ) from None
            raise UnknownNamespaceError(
                f"unknown namespace {name!r}; known namespaces: {', '.join(known) or 'none'}",
                available=known,
            ) from None

    def namespace_claims(self, name: str) -> tuple[QuarantinedItem, ...]:
        """The quarantined claims of namespace ``name`` (one per distribution; empty: not quarantined)."""
        return tuple(q for q in self.quarantined if q.kind == "namespace" and q.subject == name)

    def templates_in(self, namespace: str) -> list[TaskTemplate]:
        return [t for (ns, _), ts in sorted(self.templates.items()) if ns == namespace for t in ts]

    def versions_of(self, namespace: str, name: str) -> tuple[TaskTemplate, ...]:
        return self.templates.get((namespace, name), ())

    def resolve(self, namespace: str, name: str, spec: str | None = None, *,
                today: date | None = None) -> TaskTemplate:
        """The template that a request for ``namespace.name@spec`` runs: an omitted version
        prefers non-deprecated versions; with ``today`` (a new task), versions past their sunset
        are never chosen (:class:`VersionSunsetError` when only they match; see
        :mod:`tasker_host.lifecycle`)."""
        request = VersionRequest.parse(spec)
        self.namespace(namespace)
        versions = self.versions_of(namespace, name)
        if not versions:
            names = sorted({n for (ns, n) in self.templates if ns == namespace})
            raise UnknownTemplateError(
                f"namespace {namespace!r} has no template {name!r}; "
                f"its templates: {', '.join(names) or 'none'}",
                available=names,
            )
        chosen = lifecycle.choose(request, versions, today)
        if chosen is None and today is not None:
            gone = lifecycle.sunset_error(request, versions, today,
                                          lambda spec: self.replacement(namespace, name, spec, today))
            if gone is not None:
                raise gone
        if chosen is None:
            available = [str(t.version) for t in versions]
            raise NoMatchingVersionError(
                f"no version of {namespace}.{name} satisfies {request.describe()}; "
                f"available: {', '.join(available)}",
                available=available,
            )
        return chosen

    def replacement(self, namespace: str, name: str, spec: str | None, today: date | None) -> TaskTemplate | None:
        """The version ``replaced_by`` = ``spec`` resolves to for a new task, or None."""
        if not spec:
            return None
        try:
            return self.resolve(namespace, name, spec, today=today)
        except (RegistryError, ConfigurationError):
            return None

    def get(self, namespace: str, name: str, version: Version | str) -> TaskTemplate:
        return self.resolve(namespace, name, str(version) if isinstance(version, Version) else version)

    def handler_class(self, namespace: str, handler_name: str) -> type[StepHandler]:
        return self.handlers[(namespace, handler_name)].cls

    @property
    def template_count(self) -> int:
        return sum(len(v) for v in self.templates.values())


def sorted_versions(templates: Sequence[TaskTemplate]) -> tuple[TaskTemplate, ...]:
    return tuple(sorted(templates, key=lambda t: t.version))
