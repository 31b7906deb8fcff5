"""Checking declared calls against the contracts of the templates they call (pure).

For a step's declared call (``calls:`` in its template) and every callee version its version
spec can resolve to:

* **input** — what the caller sends must be accepted: ``sends`` ⊆ the callee's ``schema``;
* **result** — what the callee returns must provide what the caller reads: the callee's
  ``result_schema`` (a completed task has a result for every step) ⊆ ``reads``.

A ``BREAKING`` difference makes the call *broken* (a plugin problem: listed by ``tasker-host
plugins``, fatal under ``--strict``, a ``tasker-host check`` failure); a "cannot decide", or a
call whose callee is not installed here, is a *warning*.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from tasker_host.contracts.subschema import Finding, Verdict, compare
from tasker_host.models import DeclaredCall, PluginFailure, Provenance, TaskTemplate
from tasker_host.versions import VersionRequest


class Severity(enum.StrEnum):
    BROKEN = "broken"  # the call will fail (or read what is not there) at run time
    WARNING = "warning"  # cannot be checked or decided here


@dataclass(frozen=True, slots=True)
class CalleeContract:
    """What a caller is checked against: one version of the called template (local or remote)."""

    full_name: str
    version: Version
    input_schema: Mapping[str, Any] | None
    result_schema: Mapping[str, Any] | None
    steps: tuple[str, ...] = ()
    deprecated: bool = False  # an omitted version resolves to it only when every version is

    @classmethod
    def of(cls, t: TaskTemplate) -> CalleeContract:
        return cls(t.full_name, t.version, t.context_schema, t.result_schema, tuple(t.step_names),
                   t.is_deprecated)

    def completed_result(self) -> Any:
        """The result_schema of a completed task: every step has a result."""
        if self.result_schema is None:
            return None
        return {**self.result_schema, "required": list(dict.fromkeys(
            [*self.result_schema.get("required", ()), *self.steps]))}


@dataclass(frozen=True, slots=True)
class CallFinding:
    severity: Severity
    caller: str  # namespace.name@version of the calling template
    step: str
    call: DeclaredCall
    message: str
    callee: str | None = None  # the callee version compared, if any
    part: str = ""  # "input", "result" or "" (the target itself)
    path: str | None = None
    provenance: Provenance | None = None  # the calling template's

    def describe(self) -> str:
        where = f"{self.callee} {self.part}".strip() if self.callee else self.call.target
        path = f" (at {self.path})" if self.path and self.path != "$" else ""
        return (f"{self.caller} step {self.step!r} calls {self.call.describe()}: "
                f"{where}: {self.message}{path}")

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity.value, "caller": self.caller, "step": self.step,
                "target": self.call.target, "version": self.call.version, "callee": self.callee,
                "part": self.part, "path": self.path, "message": self.message,
                "description": self.describe()}


def candidates(versions: Iterable[CalleeContract], spec: str | None) -> list[CalleeContract]:
    """The versions ``spec`` can resolve to: every matching one for a range, the one for an exact
    version, and the newest stable one when there is no spec (a non-deprecated one while there is
    one, as :meth:`Registry.resolve` picks)."""
    versions = list(versions)
    request = VersionRequest.parse(spec)
    if request.specifier is None:
        pool = [v for v in versions if not v.deprecated] or versions
        chosen = request.select(v.version for v in pool)
        return [v for v in versions if v.version == chosen]
    allow = request.allows_prereleases
    return [v for v in versions if (allow or not v.version.is_prerelease)
            and request.specifier.contains(v.version, prereleases=allow)]


def check_call(caller: TaskTemplate, step: str, call: DeclaredCall,
               versions: Sequence[CalleeContract] | None) -> list[CallFinding]:
    """Findings of one declared call; ``versions``: every installed version of the target, or
    None when the target's namespace is not known here."""
    def finding(severity: Severity, message: str, **kw: Any) -> CallFinding:
        return CallFinding(severity, caller.full_name, step, call, message, provenance=caller.provenance, **kw)

    if versions is None:
        return [finding(Severity.WARNING, f"cannot check: namespace {call.namespace!r} is not installed here")]
    if not versions:
        return [finding(Severity.BROKEN, f"no template {call.target} is installed")]
    matching = candidates(versions, call.version)
    if not matching:
        shown = ", ".join(str(v.version) for v in versions)
        return [finding(Severity.BROKEN, f"no version satisfies {call.version!r} (available: {shown})")]
    found: list[CallFinding] = []
    for callee in matching:
        if call.sends is not None:
            found += [_of(finding, f, callee.full_name, "input")
                      for f in compare(call.sends, callee.input_schema or True)]
        if call.reads is not None:
            if callee.result_schema is None:
                found.append(finding(Severity.WARNING, "cannot decide: it declares no result_schema",
                                     callee=callee.full_name, part="result"))
            else:
                found += [_of(finding, f, callee.full_name, "result", reading=True)
                          for f in compare(callee.completed_result(), call.reads)]
    return found


def _of(finding: Any, f: Finding, callee: str, part: str, reading: bool = False) -> CallFinding:
    severity = Severity.BROKEN if f.verdict is Verdict.BREAKING else Severity.WARNING
    message = f.message
    if reading and f.code == "required":
        message = message.replace("is now required", "is read by the caller but not guaranteed")
    return finding(severity, message, callee=callee, part=part, path=f.path)


def check_templates(callers: Iterable[TaskTemplate], versions_of: Any, skip: Iterable[str] = ()) -> list[CallFinding]:
    """Every declared call of ``callers``; ``versions_of(namespace, name)`` gives the target's
    :class:`CalleeContract` s (or None: namespace unknown). Targets in namespaces of ``skip``
    (served by remote hosts) are left to the remote check."""
    skipped = set(skip)
    found: list[CallFinding] = []
    for t in callers:
        for s in t.steps:
            for call in s.calls:
                if call.namespace not in skipped:
                    found += check_call(t, s.name, call, versions_of(call.namespace, call.name))
    return found


def registry_versions(registry: Any) -> Any:
    """``versions_of`` over a :class:`~tasker_host.registry.Registry`."""
    def versions_of(namespace: str, name: str) -> list[CalleeContract] | None:
        if namespace not in registry.namespaces:
            return None
        return [CalleeContract.of(t) for t in registry.versions_of(namespace, name)]
    return versions_of


def broken_calls(findings: Iterable[CallFinding]) -> list[PluginFailure]:
    """Broken declared calls as failures (stage ``contract``) of the calling template's plugin."""
    return [PluginFailure(p.entry_point, p.distribution, p.distribution_version, "contract", f.describe())
            for f in findings if f.severity is Severity.BROKEN and (p := f.provenance) is not None]
