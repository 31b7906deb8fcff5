"""Readable text renderings of the catalogue documents (the ``--json`` forms are in views.py)."""

from __future__ import annotations

from typing import Any


def render_plugins(doc: dict[str, Any]) -> str:
    out = [f"{len(doc['distributions'])} plugin distribution(s), {len(doc['failures'])} failure(s), "
           f"{len(doc['conflicts'])} conflict(s)"]
    for d in doc["distributions"]:
        out.append(f"\n  {d['distribution']} {d['version']}")
        for ep in d["entry_points"]:
            out.append(f"    entry point  {ep}")
        out.append(f"    namespaces   {', '.join(d['namespaces']) or '-'}")
        out.append(f"    templates    {d['templates']}    handlers {d['handlers']}")
    loading = [f for f in doc["failures"] if f["stage"] != "contract"]
    broken = [f for f in doc["failures"] if f["stage"] == "contract"]  # declared calls (docs/contracts.md)
    if loading:
        out.append("\nLoad failures:")
        out += [f"  ✗ {f['distribution']} {f['distribution_version']} [{f['entry_point']}] "
                f"at {f['stage']}: {f['error']}" for f in loading]
    if broken:
        out.append("\nBroken declared calls (served, but they fail at run time; --strict refuses to start):")
        out += [f"  ✗ {f['distribution']} {f['distribution_version']}: {f['error']}" for f in broken]
    if doc["conflicts"]:
        out.append("\nConflicts:")
        for c in doc["conflicts"]:
            out.append(f"  ✗ {c['kind']}: {c['subject']}" + (f" — {c['detail']}" if c["detail"] else ""))
            out += [f"      provided by {p['distribution']} {p['distribution_version']} "
                    f"[{p['entry_point']}]" + (f" {p['file']}" if p["file"] else "") for p in c["providers"]]
    if doc["quarantined"]:
        out.append("\nQuarantined (not served):")
        out += [f"  - {q['kind']} {q['subject']} from {q['provider']['distribution']} "
                f"{q['provider']['distribution_version']}: {q['reason']}" for q in doc["quarantined"]]
    if doc.get("contract_warnings"):
        out.append("\nContract warnings (declared calls not checked or not decided):")
        out += [f"  ! {w['description']}" for w in doc["contract_warnings"]]
    if doc["conflicts"] and doc["on_conflict"] == "refuse":
        out.append("\nThe host refuses to start with these conflicts "
                   "(--on-conflict quarantine serves everything else).")
    if loading:
        out.append("\nThe host starts without what failed to load (--strict refuses to start).")
    return "\n".join(out)


def render_catalogue(doc: dict[str, Any]) -> str:
    out: list[str] = []
    for ns in doc["namespaces"]:
        prov = ns["provider"]
        owner = f" — {ns['owner']}" if ns["owner"] else ""
        out.append(f"{ns['namespace']}{owner}  ({prov['distribution']} {prov['distribution_version']})")
        for t in ns["handlers"]:
            out.append(f"  {t['id']}@{t['version']}  {t['description']}")
            for s in t.get("steps", []):
                deps = f"  ← {', '.join(s['depends_on'])}" if s["depends_on"] else ""
                out.append(f"      {s['name']}{deps}")
        out.append("")
    return "\n".join(out).rstrip() or "no workflows installed"


def render_resolved(doc: dict[str, Any]) -> str:
    prov = doc.get("provider") or {}
    lines = [doc["full_name"],
             f"  requested   {doc['request']}",
             f"  provided by {prov.get('distribution')} {prov.get('distribution_version')}"]
    if prov.get("file"):
        lines.append(f"  file        {prov['file']}")
    lines.append(f"  available   {', '.join(doc['available_versions'])}")
    return "\n".join(lines)


def render_validation(doc: dict[str, Any]) -> str:
    checked = doc["checked"] if isinstance(doc["checked"], str) else ", ".join(doc["checked"])
    head = f"{len(doc['templates'])} template(s) checked in {checked}: "
    if doc["ok"]:
        return head + "no problems"
    return head + f"{len(doc['problems'])} problem(s)\n" + "\n".join(f"  ✗ {p}" for p in doc["problems"])
