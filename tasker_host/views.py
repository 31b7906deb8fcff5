"""Plain-dict documents of the catalogue, shared by the CLI's ``--json`` and the REST API."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tasker_host.contracts.calls import broken_calls
from tasker_host.models import TaskTemplate, plain_json
from tasker_host.plugins import Discovery
from tasker_host.registry import ConflictPolicy, Registry
from tasker_host.store.base import StepRecord, TaskRecord


def step_doc(t: TaskTemplate) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "description": s.description,
            "handler_class": s.handler_class,
            "depends_on": list(s.depends_on),
            "retryable": s.retryable,
            "retry_limit": s.retry_limit,
            "timeout_seconds": s.timeout_seconds,
            "skippable": s.skippable,
        }
        for s in t.steps
    ]


def template_doc(t: TaskTemplate, registry: Registry, *, detail: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": t.name,
        "namespace": t.namespace,
        "version": str(t.version),
        "full_name": t.full_name,
        "description": t.description,
        "step_count": len(t.steps),
        "step_names": t.step_names,
        "available_versions": [str(v.version) for v in registry.versions_of(t.namespace, t.name)],
    }
    if detail:
        doc.update(
            visibility=t.visibility.value,
            deprecated=t.deprecated,
            replaced_by=t.replaced_by,
            sunset=t.sunset.isoformat() if t.sunset else None,
            steps=step_doc(t),
            schema=dict(t.context_schema) if t.context_schema is not None else None,
            provider=t.provenance.as_dict() if t.provenance else None,
        )
        doc.update(contract_doc(t))
    return doc


def contract_doc(t: TaskTemplate) -> dict[str, Any]:
    """The template's contract as other hosts read it (``GET /handlers/{ns}/{name}``): its
    ``result_schema`` and the calls its steps declare (docs/contracts.md)."""
    return {
        "result_schema": plain_json(t.result_schema),
        "calls": [{"step": s.name, "target": c.target, "version": c.version, "sends": plain_json(c.sends),
                   "reads": plain_json(c.reads)} for s in t.steps for c in s.calls],
    }


def namespace_doc(registry: Registry, namespace: str, *, detail: bool = True) -> dict[str, Any]:
    entry = registry.namespaces[namespace]
    return {
        "namespace": namespace,
        "description": entry.namespace.description,
        "owner": entry.namespace.owner,
        "provider": entry.provenance.as_dict(),
        "handlers": [template_doc(t, registry, detail=detail) for t in registry.templates_in(namespace)],
    }


def catalogue_doc(registry: Registry, *, detail: bool = True) -> dict[str, Any]:
    return {"namespaces": [namespace_doc(registry, ns, detail=detail) for ns in registry.namespaces]}


def plugins_doc(discovery: Discovery, registry: Registry, policy: ConflictPolicy,
                contracts: Sequence[Any] = ()) -> dict[str, Any]:
    """``contracts``: the catalogue's declared-call findings (broken ones count as failures of the
    calling plugin, the others are listed as ``contract_warnings``)."""
    dists: dict[tuple[str, str], dict[str, Any]] = {}

    def dist(name: str, version: str) -> dict[str, Any]:
        return dists.setdefault((name, version), {
            "distribution": name, "version": version, "entry_points": [], "namespaces": [],
            "templates": 0, "handlers": 0,
        })

    for c in discovery.contributions:
        d = dist(c.plugin.provenance.distribution, c.plugin.provenance.distribution_version)
        d["entry_points"].append(c.plugin.provenance.entry_point)
        d["namespaces"] += [ns.name for ns in c.namespaces if ns.name not in d["namespaces"]]
    counts: dict[str, int] = defaultdict(int)
    for versions in registry.templates.values():
        for t in versions:
            if t.provenance is not None:  # every template a plugin provided has one
                counts[t.provenance.distribution] += 1
    for h in registry.handlers.values():
        dist(h.provenance.distribution, h.provenance.distribution_version)["handlers"] += 1
    for d in dists.values():
        d["templates"] = counts[d["distribution"]]
    failures = [*discovery.failures, *registry.failures, *broken_calls(contracts)]
    return {
        "distributions": [dists[k] for k in sorted(dists)],
        "failures": [f.as_dict() for f in failures],
        "conflicts": [c.as_dict() for c in registry.conflicts],
        "quarantined": [q.as_dict() for q in registry.quarantined],
        "contract_warnings": [f.as_dict() for f in contracts if f.severity.value == "warning"],
        "on_conflict": policy.value,
        # false when any plugin failed to load (or has a broken template), and when the host
        # would refuse to start with the conflicts
        "ok": not failures and (not registry.conflicts or policy is ConflictPolicy.QUARANTINE),
    }


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        moment = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, ValueError, OSError):  # e.g. a retry a handler asked for in 1e300 seconds
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_doc(task: TaskRecord, *, with_steps: bool = True) -> dict[str, Any]:
    """The task document of the CLI's ``--json`` and the REST API."""
    doc: dict[str, Any] = {
        "id": task.id,
        "name": task.name,
        "namespace": task.namespace,
        "version": task.version,
        "full_name": task.full_name,
        "status": task.status.value,
        "context": dict(task.context),
        "correlation_id": task.correlation_id,
        "parent_task_id": task.parent_task_id,
        "parent_step": task.parent_step,
        "error": dict(task.error) if task.error else None,
        "provider": dict(task.provenance) if task.provenance else None,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "completed_at": iso(task.completed_at),
        "caller_namespace": task.caller_namespace,
        "warnings": [dict(w) for w in task.warnings],
    }
    if with_steps:
        doc["steps"] = [step_state_doc(s) for s in task.steps]
    return doc


def step_state_doc(s: StepRecord) -> dict[str, Any]:
    return {
        "name": s.name,
        "state": s.state.value,
        "attempts": s.attempts,
        "retry_limit": s.retry_limit,
        "depends_on": list(s.depends_on),
        "results": s.results,
        "last_error": dict(s.last_error) if s.last_error else None,
        "started_at": iso(s.started_at),
        "completed_at": iso(s.completed_at),
        "retry_at": iso(s.ready_at) if s.state.value == "waiting_retry" else None,
        "waiting_for": waiting_doc(s),
    }


def waiting_doc(s: StepRecord) -> dict[str, Any] | None:
    """What a ``waiting`` step waits for: its event (and the payload schema) and/or its timer."""
    if s.state.value != "waiting" or not s.wait:
        return None
    wait = s.wait
    return {"event": wait.get("event"), "schema": wait.get("schema"), "timeout_at": iso(wait.get("timeout_at")),
            "until": iso(wait.get("until")), "since": iso(wait.get("since")),
            "wakes_at": iso(s.ready_at), "delivered": wait.get("delivered") is not None}
