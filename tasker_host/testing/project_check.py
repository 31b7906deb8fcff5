"""``tasker-host check``: the one CI gate of a plugin project.

A project is named by a directory holding its ``pyproject.toml`` (its *source* is checked: the
source root goes first on ``sys.path`` while checking, and the entry points are the ones
``pyproject.toml`` declares) or by an installed distribution's name (its installed entry points).
:func:`run_gate` then checks it

1. on its own, as a strict host loads it: :func:`~tasker_host.testing.plugin_checks.plugin_problems`
   (hooks, namespaces, strict template loading, handlers, packaged templates directory);
2. against the other installed plugins: the registry built from all of them together
   (:mod:`tasker_host.collect`), keeping the conflicts the project takes part in (namespace
   ownership, duplicate templates or handlers, contributions to a namespace it does not own),
   and the declared calls it takes part in (:mod:`tasker_host.contracts.calls`): its own calls
   against the other teams' templates, and the other teams' calls into its namespaces against
   its templates (broken: a problem; not checkable or not decidable: a note);
3. PATH only: that an installed copy of the distribution declares the same entry points as
   ``pyproject.toml`` (else it is stale: ``pip install -e`` again).

Every problem is collected; :attr:`GateReport.ok` is true when there is none.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import invalidate_caches, metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from packaging.utils import canonicalize_name

from tasker_host.errors import ConfigurationError
from tasker_host.markers import ENTRY_POINT_GROUP
from tasker_host.plugins import EntryPointLike, discover, installed_entry_points, provenance_of


class ProblemKind(StrEnum):
    PROJECT = "project"      # pyproject.toml, the installed copy
    LOAD = "load"            # an entry point that does not import, or whose hooks fail
    CONTRACT = "contract"    # the plugin contract (check_plugin)
    COLLISION = "collision"  # with another installed plugin
    CALLS = "calls"          # a declared call broken by a callee's contract (either side)


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "message": self.message}


@dataclass(frozen=True)
class ProjectDistribution:
    """Quacks like ``importlib.metadata.Distribution`` for discovery's provenance."""

    name: str
    version: str


@dataclass(frozen=True)
class SourceEntryPoint:
    """An entry point declared in a project's ``pyproject.toml``, loaded from its source."""

    name: str
    value: str
    dist: ProjectDistribution

    def load(self) -> Any:
        return metadata.EntryPoint(self.name, self.value, ENTRY_POINT_GROUP).load()


@dataclass(frozen=True)
class PluginProject:
    """A plugin distribution to check: from a project directory (``path``) or installed."""

    distribution: str
    version: str
    entry_points: tuple[EntryPointLike, ...]
    path: Path | None = None
    source_root: Path | None = None
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}" + (f" ({self.path})" if self.path else "")


@dataclass
class GateReport:
    project: PluginProject
    namespaces: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        p = self.project
        return {"ok": self.ok, "distribution": p.distribution, "version": p.version,
                "path": str(p.path) if p.path else None,
                "entry_points": [f"{ep.name} = {ep.value}" for ep in p.entry_points],
                "namespaces": self.namespaces, "templates": self.templates,
                "problems": [x.as_dict() for x in self.problems], "notes": self.notes}


# --- finding the project -------------------------------------------------------------------------
def locate(target: str | None, cwd: Path) -> PluginProject:
    """The project ``target`` names (default: ``cwd``); ``ConfigurationError`` when there is
    nothing to check (no such directory or installed distribution, no ``pyproject.toml``)."""
    path = cwd / (target or ".")
    if path.exists():
        directory = path.parent if path.is_file() and path.name == "pyproject.toml" else path
        if not (directory / "pyproject.toml").is_file():
            raise ConfigurationError(f"{directory} has no pyproject.toml: name a plugin project's "
                                     f"directory or an installed distribution")
        return from_directory(directory.resolve())
    if target is not None:
        try:
            return from_distribution(metadata.distribution(target))
        except metadata.PackageNotFoundError:
            pass
    raise ConfigurationError(f"no such directory or installed distribution: {target}")


def from_distribution(dist: metadata.Distribution) -> PluginProject:
    name = dist.metadata["Name"]
    eps = tuple(ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP)
    problems = () if eps else (_no_entry_point(name),)
    return PluginProject(name, dist.version, eps, problems=problems)


def from_directory(directory: Path) -> PluginProject:
    try:
        data = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return PluginProject("<unknown>", "?", (), directory, problems=(
            Problem(ProblemKind.PROJECT, f"pyproject.toml cannot be read: {exc}"),))
    table = data.get("project")
    project = table if isinstance(table, dict) else {}
    name = project.get("name")
    if not isinstance(name, str) or not name:
        return PluginProject("<unknown>", "?", (), directory, problems=(
            Problem(ProblemKind.PROJECT, "pyproject.toml has no [project] name"),))
    installed = _installed(name)
    version = project.get("version") or (installed.version if installed else "0+unknown")
    declared = (project.get("entry-points") or {}).get(ENTRY_POINT_GROUP) or {}
    dist = ProjectDistribution(name, str(version))
    eps = tuple(SourceEntryPoint(k, str(v), dist) for k, v in sorted(declared.items()))
    problems = [] if eps else [_no_entry_point(name)]
    notes: list[str] = []
    if installed is None:
        notes.append(f"{name} is not installed: checked from source; pip install -e {directory} "
                     f"so that the host finds it")
    else:
        _compare_installed(directory, eps, installed, problems, notes)
    return PluginProject(name, str(version), eps, directory, _source_root(directory, data),
                         tuple(problems), tuple(notes))


def _no_entry_point(name: str) -> Problem:
    return Problem(ProblemKind.PROJECT, f"{name} declares no entry point in the group "
                                        f"{ENTRY_POINT_GROUP!r}: the host will never find it")


def _installed(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _compare_installed(directory: Path, eps: Sequence[SourceEntryPoint], installed: Any,
                       problems: list[Problem], notes: list[str]) -> None:
    label = f"the installed {installed.metadata['Name']} {installed.version}"
    declared = sorted(f"{ep.name} = {ep.value}" for ep in eps)
    found = sorted(f"{ep.name} = {ep.value}" for ep in installed.entry_points
                   if ep.group == ENTRY_POINT_GROUP)
    if declared != found:
        problems.append(Problem(ProblemKind.PROJECT, f"{label} declares the entry points {found} "
                                f"but pyproject.toml declares {declared}: it is stale; "
                                f"pip install -e {directory}"))
    origin = _installed_from(installed)
    if origin is not None and origin != directory:
        notes.append(f"{label} is installed from {origin}, not from this directory: the host "
                     f"runs that copy")


def _installed_from(dist: Any) -> Path | None:
    """The directory a distribution was pip-installed from (``direct_url.json``), if any."""
    try:
        url = json.loads(dist.read_text("direct_url.json") or "null") or {}
    except ValueError:
        return None
    parsed = urlparse(url.get("url", ""))
    if parsed.scheme != "file" or "dir_info" not in url:
        return None
    return Path(unquote(parsed.path)).resolve()


def _source_root(directory: Path, data: dict[str, Any]) -> Path:
    packages = data.get("tool", {}).get("setuptools", {}).get("packages", {})
    where = packages.get("find", {}).get("where") if isinstance(packages, dict) else None
    if isinstance(where, list) and where and isinstance(where[0], str):
        return (directory / where[0]).resolve()
    return directory / "src" if (directory / "src").is_dir() else directory


# --- the checks ----------------------------------------------------------------------------------
def run_gate(project: PluginProject, installed: Iterable[EntryPointLike] | None = None) -> GateReport:
    """Check ``project`` alone, then with the other plugins of ``installed`` (default: the
    environment's entry points)."""
    report = GateReport(project, problems=list(project.problems), notes=list(project.notes))
    if not project.entry_points:
        return report
    eps = installed_entry_points() if installed is None else list(installed)
    mine = canonicalize_name(project.distribution)
    others = [ep for ep in eps if canonicalize_name(provenance_of(ep).distribution) != mine]
    with _source_first(project.source_root) if project.source_root else nullcontext():
        for ep in project.entry_points:
            _check_alone(project, ep, report)
        _check_collisions(project, others, report)
    report.notes.append(f"checked against {len({provenance_of(ep).distribution for ep in others})} "
                        f"other installed plugin distribution(s)")
    return report


def _check_alone(project: PluginProject, ep: EntryPointLike, report: GateReport) -> None:
    from tasker_host.testing.plugin_checks import plugin_problems

    found = discover([ep])
    report.problems += [Problem(ProblemKind.LOAD, f.describe()) for f in found.failures]
    for contribution in found.contributions:
        names = [ns.name for ns in contribution.namespaces]
        if not names:
            report.problems.append(Problem(ProblemKind.CONTRACT, f"entry point {ep.name} = "
                                           f"{ep.value}: tasker_namespaces() claims no namespace"))
            continue
        report.namespaces += names
        plugin = contribution.plugin.obj
        if project.source_root is not None:
            report.problems += _shadowed(ep, project.source_root)
            result, problems = plugin_problems(plugin, namespace=names, entry_point=ep)
        else:
            result, problems = plugin_problems(plugin, namespace=names, distribution=project.distribution)
        report.problems += [Problem(ProblemKind.CONTRACT, p) for p in problems]
        if result is not None:
            report.templates += [t.full_name for t in result.templates]


def _check_collisions(project: PluginProject, others: Sequence[EntryPointLike], report: GateReport) -> None:
    from tasker_host.host import load_catalog
    from tasker_host.settings import HostSettings

    catalog = load_catalog(HostSettings(), entry_points=[*project.entry_points, *others])
    mine = canonicalize_name(project.distribution)
    for conflict in catalog.registry.conflicts:
        if any(canonicalize_name(p.distribution) == mine for p in conflict.providers):
            report.problems.append(Problem(ProblemKind.COLLISION, conflict.describe()))
    owned = {ns for ns, e in catalog.registry.namespaces.items()
             if canonicalize_name(e.provenance.distribution) == mine}
    for finding in catalog.contracts:
        caller = finding.provenance
        if not (caller and canonicalize_name(caller.distribution) == mine) and finding.call.namespace not in owned:
            continue
        if finding.severity.value == "broken":
            report.problems.append(Problem(ProblemKind.CALLS, finding.describe()))
        else:
            report.notes.append(f"contract warning: {finding.describe()}")


def _shadowed(ep: EntryPointLike, root: Path) -> list[Problem]:
    module = sys.modules.get(ep.value.partition(":")[0].strip())
    file = getattr(module, "__file__", None)
    if file is None or Path(file).resolve().is_relative_to(root.resolve()):
        return []
    return [Problem(ProblemKind.PROJECT, f"entry point {ep.name} = {ep.value} imports {file}, not the "
                                         f"project's source under {root}")]


@contextmanager
def _source_first(root: Path) -> Iterator[None]:
    """``root`` first on ``sys.path``; afterwards, forget the modules imported from it."""
    entry = str(root)
    sys.path.insert(0, entry)
    invalidate_caches()
    before = set(sys.modules)
    try:
        yield
    finally:
        sys.path.remove(entry)
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None)
            if file and Path(file).resolve().is_relative_to(root.resolve()):
                del sys.modules[name]


__all__ = ["GateReport", "PluginProject", "Problem", "ProblemKind", "locate", "run_gate"]
