"""``tasker-host contracts diff OLD NEW``: what a release changes in its templates' contracts,
each change classified (pure: the CLI loads the templates).

* ``BREAKING (callers)`` — a caller that worked with OLD may fail with NEW: the input schema
  accepts less (a new required field, a narrower type, a tighter bound, a closed object), the
  result guarantees less, a version or template is gone, or it turned private;
* ``BREAKING (stored tasks)`` — tasks already in the database may fail after the upgrade: a
  handler that OLD's steps use is used by no template of NEW (a stored task waiting at that step
  needs it), or a version was changed *in place* (same version, different steps or a stricter
  input: stored tasks were started under the old terms);
* ``cannot decide`` — the checker cannot compare (``$ref``, ``anyOf``, a differing ``pattern`` ...);
* ``compatible`` — added templates or versions, contracts that accept more or guarantee more.

Pairing: two single templates of one ``namespace.name`` are compared directly (whatever their
versions). For whole plugins, a version present in both is compared in place, a new version with
the highest older one it follows (the release), and a version that disappeared is a removal.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tasker_host.contracts.calls import CalleeContract
from tasker_host.contracts.subschema import Verdict, compare
from tasker_host.models import TaskTemplate, Visibility


class ChangeKind(enum.StrEnum):
    BREAKING_CALLERS = "breaking_callers"
    BREAKING_STORED = "breaking_stored_tasks"
    CANNOT_DECIDE = "cannot_decide"
    COMPATIBLE = "compatible"


LABELS = {ChangeKind.BREAKING_CALLERS: "BREAKING (callers)", ChangeKind.BREAKING_STORED: "BREAKING (stored tasks)",
          ChangeKind.CANNOT_DECIDE: "cannot decide", ChangeKind.COMPATIBLE: "compatible"}


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    subject: str  # namespace.name@version (or namespace.name)
    message: str
    part: str = ""  # "input", "result", "steps", "handlers", "" (the template itself)
    path: str | None = None

    def describe(self) -> str:
        part = f" {self.part}" if self.part else ""
        path = f" (at {self.path})" if self.path and self.path != "$" else ""
        return f"{LABELS[self.kind]}: {self.subject}{part}: {self.message}{path}"

    @property
    def breaking(self) -> bool:
        return self.kind in (ChangeKind.BREAKING_CALLERS, ChangeKind.BREAKING_STORED)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "subject": self.subject, "part": self.part, "path": self.path,
                "message": self.message, "description": self.describe()}


def diff_templates(old: Sequence[TaskTemplate], new: Sequence[TaskTemplate]) -> list[Change]:
    """Every contract change from ``old`` to ``new`` (see the module docstring)."""
    changes: list[Change] = []
    olds, news = _by_name(old), _by_name(new)
    if len(old) == 1 and len(new) == 1 and olds.keys() == news.keys():
        changes += compare_versions(old[0], new[0], in_place=old[0].version == new[0].version)
    else:
        for key in sorted(olds.keys() | news.keys()):
            changes += _diff_name(olds.get(key, []), news.get(key, []))
    return changes + _removed_handlers(old, new)


def compare_versions(old: TaskTemplate, new: TaskTemplate, *, in_place: bool) -> list[Change]:
    """The contract changes from ``old`` to ``new`` (two versions of one template, or one
    version changed in place)."""
    changes = _input_changes(old, new, in_place) + _result_changes(old, new)
    if old.visibility is Visibility.PUBLIC and new.visibility is Visibility.PRIVATE:
        changes.append(Change(ChangeKind.BREAKING_CALLERS, new.full_name,
                              "is now private: other namespaces may no longer invoke it"))
    if in_place and _dag(old) != _dag(new):
        changes.append(Change(ChangeKind.BREAKING_STORED, new.full_name,
                              "changed in place: its steps differ from the released version; tasks "
                              "stored on it run the old steps with the new handlers (publish a new version)",
                              part="steps"))
    return changes


def _diff_name(old: list[TaskTemplate], new: list[TaskTemplate]) -> list[Change]:
    if not new:
        shown = ", ".join(str(t.version) for t in old)
        return [Change(ChangeKind.BREAKING_CALLERS, f"{old[0].namespace}.{old[0].name}",
                       f"removed (versions {shown}): calls to it no longer resolve")]
    changes: list[Change] = []
    old_versions = {t.version: t for t in old}
    new_versions = {t.version for t in new}
    for t in new:
        if t.version in old_versions:
            changes += compare_versions(old_versions[t.version], t, in_place=True)
            continue
        before = [o for o in old if o.version < t.version]
        if before:
            changes += compare_versions(before[-1], t, in_place=False)
        else:
            changes.append(Change(ChangeKind.COMPATIBLE, t.full_name, "added"))
    for t in old:
        if t.version not in new_versions:
            changes.append(Change(ChangeKind.BREAKING_CALLERS, t.full_name,
                                  "removed: calls pinned to it, or whose range matches only it, no longer resolve"))
    return changes


def _input_changes(old: TaskTemplate, new: TaskTemplate, in_place: bool) -> list[Change]:
    changes = []
    for f in compare(old.context_schema or True, new.context_schema or True):
        kind = ChangeKind.BREAKING_CALLERS if f.verdict is Verdict.BREAKING else ChangeKind.CANNOT_DECIDE
        changes.append(Change(kind, new.full_name, f.message, "input", f.path))
        if in_place and kind is ChangeKind.BREAKING_CALLERS:
            changes.append(Change(ChangeKind.BREAKING_STORED, new.full_name,
                                  f"{f.message}: stored tasks were started without it", "input", f.path))
    return changes


def _result_changes(old: TaskTemplate, new: TaskTemplate) -> list[Change]:
    before, after = CalleeContract.of(old).completed_result(), CalleeContract.of(new).completed_result()
    if before is None:
        return [] if after is None else [Change(ChangeKind.COMPATIBLE, new.full_name, "result_schema added", "result")]
    if after is None:
        return [Change(ChangeKind.BREAKING_CALLERS, new.full_name,
                       "result_schema removed: callers can no longer rely on what it returns", "result")]
    changes = []
    for f in compare(after, before):
        kind = ChangeKind.BREAKING_CALLERS if f.verdict is Verdict.BREAKING else ChangeKind.CANNOT_DECIDE
        message = f.message.replace("is now required", "is no longer guaranteed") if f.code == "required" else f.message
        changes.append(Change(kind, new.full_name, message, "result", f.path))
    return changes


def _removed_handlers(old: Sequence[TaskTemplate], new: Sequence[TaskTemplate]) -> list[Change]:
    """Handlers OLD's steps use that no template of NEW uses: the release likely stops providing
    them, and a stored task waiting at such a step would fail."""
    kept = {(t.namespace, s.handler_class) for t in new for s in t.steps}
    users: dict[tuple[str, str], list[str]] = defaultdict(list)
    for t in old:
        for s in t.steps:
            if (t.namespace, s.handler_class) not in kept:
                users[(t.namespace, s.handler_class)].append(f"{t.full_name} step {s.name!r}")
    return [Change(ChangeKind.BREAKING_STORED, namespace,
                   f"handler {handler!r} is used by no template of NEW, but stored tasks of "
                   f"{', '.join(where)} need it until they finish", "handlers")
            for (namespace, handler), where in sorted(users.items())]


def _by_name(templates: Iterable[TaskTemplate]) -> dict[tuple[str, str], list[TaskTemplate]]:
    grouped: dict[tuple[str, str], list[TaskTemplate]] = defaultdict(list)
    for t in sorted(templates, key=lambda t: (t.namespace, t.name, t.version)):
        grouped[(t.namespace, t.name)].append(t)
    return grouped


def _dag(t: TaskTemplate) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(s.name, s.handler_class, s.depends_on) for s in t.steps]


def summary(changes: Sequence[Change]) -> dict[str, int]:
    return {kind.value: sum(1 for c in changes if c.kind is kind) for kind in ChangeKind}
