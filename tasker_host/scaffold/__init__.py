"""``tasker-host new-plugin``: a complete plugin distribution, rendered from the template tree
shipped with the host (``plugin-template/``, package data) with :class:`string.Template`.

In the tree, ``_package_`` and ``_workflow_`` in a path are replaced by the package and workflow
names, a ``dot-`` prefix becomes ``.`` (hidden files are not package data) and ``.tmpl`` is
dropped; ``$$`` in a file is a literal ``$``. An unknown ``${placeholder}`` raises ``KeyError``,
so a typo in the tree fails the scaffold's tests rather than a team's first build.

:func:`refusals` lists every reason not to create a plugin (invalid names, a namespace or
distribution already installed, an existing directory) before anything is written; :func:`create`
renders into a hidden sibling directory and renames it into place, so a plugin directory is
either complete or absent.
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from packaging.utils import canonicalize_name
from packaging.version import Version

TEMPLATE_TREE = "plugin-template"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
NAMESPACE_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")  # the template schema's namespace_name
MAX_NAME_LENGTH = 40
WORKFLOW_VERSION = "1.0.0"
SAMPLE_CONTEXT = '{"request_id": "req-1"}'
_OWNER_FORBIDDEN = re.compile(r'["\\$\x00-\x1f\x7f]')  # rendered inside TOML, YAML and Python strings


@dataclass(frozen=True)
class PluginSpec:
    """What to create: plugin ``name`` (``shipping`` → distribution ``tasker-shipping``, package
    ``tasker_shipping``, first workflow ``shipping``), the namespace it owns, its owner and the
    project directory."""

    name: str
    namespace: str
    directory: Path
    owner: str | None = None
    host_requirement: str = "tasker-host"

    @property
    def distribution(self) -> str:
        return "tasker-" + self.name.replace("_", "-")

    @property
    def package(self) -> str:
        return f"tasker_{self.name}"

    @property
    def workflow(self) -> str:
        return self.name

    @property
    def title(self) -> str:
        return " ".join(w.capitalize() for w in self.namespace.split("_") if w) or self.namespace

    @property
    def team(self) -> str:
        return self.owner if self.owner is not None else f"{self.title} team"

    @property
    def prefix(self) -> str:
        """The handler names' prefix (``customer_success`` → ``CustomerSuccess``)."""
        return self.title.replace(" ", "")

    @property
    def entry_point(self) -> str:
        return f"{self.namespace} = {self.package}.plugin"

    @property
    def reference(self) -> str:
        return f"{self.namespace}.{self.workflow}@{WORKFLOW_VERSION}"

    def variables(self) -> dict[str, str]:
        return {"name": self.name, "namespace": self.namespace, "owner": self.team,
                "distribution": self.distribution, "package": self.package,
                "workflow": self.workflow, "title": self.title, "prefix": self.prefix,
                "host_requirement": self.host_requirement}


@dataclass(frozen=True)
class Installed:
    """What the environment has already: ``owners`` maps each namespace an installed plugin
    claims to its provider (``tasker-payments 1.4.0``); ``distributions`` holds canonical names;
    ``module_exists(name)`` says whether a top-level module of that name is importable."""

    owners: Mapping[str, str]
    distributions: frozenset[str]
    module_exists: Callable[[str], bool]


def refusals(spec: PluginSpec, installed: Installed) -> list[str]:
    """Every reason not to create ``spec`` (empty: go ahead)."""
    problems = []
    if not NAME_PATTERN.match(spec.name) or len(spec.name) > MAX_NAME_LENGTH:
        problems.append(f"invalid plugin name {spec.name!r}: use lower-case letters, digits and "
                        f"underscores, starting with a letter, at most {MAX_NAME_LENGTH} characters "
                        f"(e.g. shipping, customer_success)")
    if not NAMESPACE_PATTERN.match(spec.namespace) or len(spec.namespace) > MAX_NAME_LENGTH:
        problems.append(f"invalid namespace {spec.namespace!r}: use lower-case letters, digits and "
                        f"underscores, not starting with a digit, at most {MAX_NAME_LENGTH} characters")
    if spec.owner is not None and (not spec.owner.strip() or _OWNER_FORBIDDEN.search(spec.owner)):
        problems.append(f"invalid owner {spec.owner!r}: a team name without quotes, backslashes, "
                        f"'$' or control characters")
    if spec.namespace in installed.owners:
        problems.append(f"namespace {spec.namespace!r} is already owned by "
                        f"{installed.owners[spec.namespace]}: a namespace belongs to exactly one "
                        f"distribution (tasker-host plugins lists who owns what)")
    problems += _name_taken(spec, installed)
    if spec.directory.exists() or spec.directory.is_symlink():
        problems.append(f"{spec.directory} already exists: choose another --directory (nothing "
                        f"is overwritten)")
    return problems


def _name_taken(spec: PluginSpec, installed: Installed) -> list[str]:
    if not NAME_PATTERN.match(spec.name):
        return []
    problems = []
    if canonicalize_name(spec.distribution) in installed.distributions:
        problems.append(f"distribution {spec.distribution!r} is installed already: choose another "
                        f"plugin name (or work on that distribution's own project)")
    if installed.module_exists(spec.package):
        problems.append(f"a module named {spec.package!r} is importable already: the plugin's "
                        f"package would shadow it or be shadowed; choose another plugin name")
    return problems


def create(spec: PluginSpec) -> list[str]:
    """Render the plugin project into ``spec.directory`` (which must not exist); returns the
    created files' paths relative to it, sorted."""
    target = spec.directory
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.new-plugin-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        written = _render_tree(files(__package__) / TEMPLATE_TREE, staging, Path(), spec.variables())
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(p.as_posix() for p in written)


def _render_tree(source: Traversable, dest_root: Path, relative: Path,
                 variables: Mapping[str, str]) -> list[Path]:
    written = []
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            if entry.name != "__pycache__":
                written += _render_tree(entry, dest_root, relative / _target_name(entry.name, variables),
                                        variables)
            continue
        if not entry.name.endswith(".tmpl"):
            continue
        path = relative / _target_name(entry.name.removesuffix(".tmpl"), variables)
        out = dest_root / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(Template(entry.read_text(encoding="utf-8")).substitute(variables),
                       encoding="utf-8", newline="\n")
        if out.suffix == ".sh":
            out.chmod(out.stat().st_mode | 0o111)
        written.append(path)
    return written


def _target_name(name: str, variables: Mapping[str, str]) -> str:
    name = name.replace("_package_", variables["package"]).replace("_workflow_", variables["workflow"])
    return "." + name.removeprefix("dot-") if name.startswith("dot-") else name


def host_requirement() -> str:
    """The dependency on the running host's release series (``tasker-host>=0.1,<0.2``)."""
    try:
        version = Version(metadata.version("tasker-host"))
    except metadata.PackageNotFoundError:
        return "tasker-host"
    if version.major == 0:
        return f"tasker-host>=0.{version.minor},<0.{version.minor + 1}"
    return f"tasker-host>={version.major}.{version.minor},<{version.major + 1}"


__all__ = ["Installed", "PluginSpec", "create", "host_requirement", "refusals"]
