"""Turn the plugins' contributions into a :class:`Registry`, detecting every conflict.

Nothing here depends on load order: claims are grouped by key and a key with more than one
provider is a conflict whose entries are all quarantined.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tasker_host.models import (
    Conflict,
    ConflictKind,
    Namespace,
    PluginFailure,
    Provenance,
    TaskTemplate,
    TemplateProblem,
)
from tasker_host.plugins import Contribution
from tasker_host.registry import (
    HandlerEntry,
    NamespaceEntry,
    QuarantinedItem,
    Registry,
    sorted_versions,
)


@dataclass
class _Build:
    owners: dict[str, NamespaceEntry] = field(default_factory=dict)
    claimed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # dist -> ns
    contested: set[str] = field(default_factory=set)
    handlers: dict[tuple[str, str], HandlerEntry] = field(default_factory=dict)
    templates: dict[tuple[str, str], list[TaskTemplate]] = field(default_factory=lambda: defaultdict(list))
    conflicts: list[Conflict] = field(default_factory=list)
    quarantined: list[QuarantinedItem] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)

    def quarantine(self, kind: str, subject: str, prov: Provenance, reason: str) -> None:
        self.quarantined.append(QuarantinedItem(kind, subject, prov, reason))

    def owner_of(self, namespace: str) -> list[Provenance]:
        entry = self.owners.get(namespace)
        return [entry.provenance] if entry else []


def build_registry(contributions: Sequence[Contribution], loader: Any) -> Registry:
    """Collect namespaces, handlers and templates (loaded with ``loader``) into a registry."""
    b = _Build()
    _collect_namespaces(b, contributions)
    _collect_handlers(b, contributions)
    _collect_templates(b, contributions, loader)
    templates = _check_handlers(b)
    return Registry(
        namespaces=dict(sorted(b.owners.items())),
        templates={k: sorted_versions(v) for k, v in sorted(templates.items())},
        handlers=dict(sorted(b.handlers.items())),
        conflicts=tuple(b.conflicts),
        quarantined=tuple(b.quarantined),
        failures=tuple(b.failures),
    )


def _unique_by_dist(provs: Iterable[Provenance]) -> tuple[Provenance, ...]:
    seen: dict[str, Provenance] = {}
    for p in provs:
        seen.setdefault(p.distribution, p)
    return tuple(seen[d] for d in sorted(seen))


def _collect_namespaces(b: _Build, contributions: Sequence[Contribution]) -> None:
    claims: dict[str, list[tuple[Namespace, Provenance]]] = defaultdict(list)
    for c in contributions:
        for ns in c.namespaces:
            claims[ns.name].append((ns, c.plugin.provenance))
            b.claimed[c.plugin.provenance.distribution].add(ns.name)
    for name, claim in sorted(claims.items()):
        providers = _unique_by_dist(p for _, p in claim)
        if len(providers) == 1:
            b.owners[name] = NamespaceEntry(claim[0][0], claim[0][1])
            continue
        b.contested.add(name)
        b.conflicts.append(Conflict(
            ConflictKind.NAMESPACE_OWNERSHIP, f"namespace {name}", providers,
            "a namespace is owned by exactly one distribution",
        ))
        for p in providers:
            b.quarantine("namespace", name, p, "namespace claimed by more than one distribution")


def _targets(b: _Build, dist: str, key: Any) -> tuple[list[str], str]:
    if isinstance(key, tuple):
        return [key[0]], key[1]
    return sorted(b.claimed.get(dist, ())), key


def _collect_handlers(b: _Build, contributions: Sequence[Contribution]) -> None:
    claims: dict[tuple[str, str], list[HandlerEntry]] = defaultdict(list)
    foreign: dict[tuple[str, str], list[str]] = defaultdict(list)
    for c in contributions:
        prov = c.plugin.provenance
        for key, cls in c.handlers.items():
            namespaces, name = _targets(b, prov.distribution, key)
            if not namespaces:
                foreign[(prov.distribution, "<no namespace>")].append(name)
            for ns in namespaces:
                if ns in b.contested:
                    b.quarantine("handler", f"{ns}/{name}", prov, f"namespace {ns} is contested")
                elif ns not in b.claimed.get(prov.distribution, ()):
                    foreign[(prov.distribution, ns)].append(name)
                else:
                    claims[(ns, name)].append(HandlerEntry(ns, name, cls, prov))
    _report_foreign(b, foreign, contributions, "handler")
    for (ns, name), entries in sorted(claims.items()):
        distinct = {(e.provenance.distribution, e.cls) for e in entries}
        if len(distinct) == 1:
            b.handlers[(ns, name)] = entries[0]
            continue
        providers = tuple(e.provenance for e in entries)
        b.conflicts.append(Conflict(ConflictKind.DUPLICATE_HANDLER, f"handler {name} in namespace {ns}",
                                    providers, "two classes for one handler name"))
        for p in providers:
            b.quarantine("handler", f"{ns}/{name}", p, "handler provided more than once")


def _report_foreign(b: _Build, foreign: dict[tuple[str, str], list[str]],
                    contributions: Sequence[Contribution], kind: str) -> None:
    by_dist = {c.plugin.provenance.distribution: c.plugin.provenance for c in contributions}
    for (dist, ns), names in sorted(foreign.items()):
        prov = by_dist[dist]
        owner = b.owner_of(ns)
        whose = f"owned by {owner[0].provider}" if owner else "which it does not own"
        if ns == "<no namespace>":
            whose, ns_text = "but owns no namespace", "no namespace"
        else:
            ns_text = f"namespace {ns}"
        b.conflicts.append(Conflict(
            ConflictKind.FOREIGN_NAMESPACE, ns_text, (prov, *owner),
            f"{prov.provider} contributes {kind}(s) {', '.join(sorted(names))} to {ns_text} {whose}",
        ))
        for name in names:
            b.quarantine(kind, f"{ns}/{name}", prov, f"contributed to {ns_text} {whose}")


def import_roots() -> list[Path]:
    """The import path's directories, deepest first (a ``src`` layout's before the project's)."""
    roots = {Path(p).resolve() for p in sys.path if p and Path(p).is_dir()}
    return sorted(roots, key=lambda r: len(r.parts), reverse=True)


def shown_path(source: str | None, roots: Sequence[Path]) -> str | None:
    """A plugin file as its distribution has it (``tasker_payments/templates/x.yaml``): relative
    to the import path entry it was found under, so documents (the API's ``provider.file``) do not
    show where this machine installed it; just the file's name when it is under none."""
    if not source or not Path(source).is_absolute():
        return source
    path = Path(source).resolve()
    for root in roots:
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return path.name


def _collect_templates(b: _Build, contributions: Sequence[Contribution], loader: Any) -> None:
    foreign: dict[tuple[str, str], list[str]] = defaultdict(list)
    roots = import_roots()
    for c in contributions:
        prov = c.plugin.provenance
        for item in c.template_items:
            templates, problems = loader.load_item(item)
            _record_problems(b, prov, problems)
            for t in templates:
                t = replace(t, provenance=prov.with_file(shown_path(t.source, roots)))
                if t.namespace in b.contested:
                    b.quarantine("template", t.full_name, t.provenance, f"namespace {t.namespace} is contested")
                elif t.namespace not in b.claimed.get(prov.distribution, ()):
                    foreign[(prov.distribution, t.namespace)].append(t.full_name)
                else:
                    b.templates[(t.namespace, t.name)].append(t)
    _report_foreign(b, foreign, contributions, "template")
    for key, group in list(b.templates.items()):
        b.templates[key] = _drop_duplicates(b, group)


def _drop_duplicates(b: _Build, group: list[TaskTemplate]) -> list[TaskTemplate]:
    by_version: dict[Any, list[TaskTemplate]] = defaultdict(list)
    for t in group:
        by_version[t.version].append(t)
    kept = []
    for _version, same in sorted(by_version.items()):
        if len(same) == 1:
            kept.append(same[0])
            continue
        providers = tuple(_provenance(t) for t in same)
        b.conflicts.append(Conflict(ConflictKind.DUPLICATE_TEMPLATE, same[0].full_name, providers,
                                    "one (namespace, name, version) has more than one provider"))
        for t in same:
            b.quarantine("template", t.full_name, _provenance(t), "provided more than once")
    return kept


def _provenance(t: TaskTemplate) -> Provenance:
    assert t.provenance is not None, f"{t.full_name} was collected without its provenance"  # loaded from a plugin
    return t.provenance


def _record_problems(b: _Build, prov: Provenance, problems: Iterable[TemplateProblem]) -> None:
    for p in problems:
        b.failures.append(PluginFailure(prov.entry_point, prov.distribution,
                                        prov.distribution_version, "template", p.describe()))


def _check_handlers(b: _Build) -> dict[tuple[str, str], list[TaskTemplate]]:
    """Keep only templates whose every step's handler is provided in its own namespace."""
    usable: dict[tuple[str, str], list[TaskTemplate]] = {}
    for key, group in b.templates.items():
        ok = []
        for t in group:
            problems = missing_handlers(t, b.handlers)
            if problems:
                _record_problems(b, _provenance(t), problems)
                b.quarantine("template", t.full_name, _provenance(t), problems[0].message)
            else:
                ok.append(t)
        if ok:
            usable[key] = ok
    return usable


def missing_handlers(t: TaskTemplate, handlers: Any) -> list[TemplateProblem]:
    problems = []
    for i, step in enumerate(t.steps):
        if (t.namespace, step.handler_class) not in handlers:
            key = f"step_templates[{i}].handler_class"
            problems.append(TemplateProblem(
                f"handler {step.handler_class!r} of step {step.name!r} is not provided in "
                f"namespace {t.namespace!r}", t.source, t.line_of(key), key))
    return problems
