"""``tasker-host contracts diff OLD NEW``: classify the contract changes between two versions of a
template, or two releases of a plugin (directories or wheels). The comparison itself is
:mod:`tasker_host.contracts.diff`; this module reads the inputs."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import click
import yaml

from tasker_host.cli.output import emit, fail, json_option
from tasker_host.contracts.diff import LABELS, ChangeKind, diff_templates, summary
from tasker_host.errors import ConfigurationError, TemplateError
from tasker_host.models import TaskTemplate, TemplateProblem
from tasker_host.templates import TemplateLoader

EXIT_OK, EXIT_BREAKING, EXIT_USAGE = 0, 1, 2
_YAML = (".yaml", ".yml")


@click.group()
def contracts() -> None:
    """Contracts between teams: compare template versions (docs/contracts.md)."""


@contracts.command("diff")
@click.argument("old", type=click.Path(exists=True, path_type=Path))
@click.argument("new", type=click.Path(exists=True, path_type=Path))
@json_option
def diff(old: Path, new: Path, as_json: bool) -> None:
    """Classify every contract change from OLD to NEW, each a template YAML file, a directory
    (a plugin project: the templates under its src/; or any folder: every template under it)
    or a wheel (.whl).

    \b
    BREAKING (callers)       a caller that worked with OLD may fail with NEW (input accepts
                             less, result guarantees less, a version removed, made private)
    BREAKING (stored tasks)  tasks already stored may fail after the upgrade (a handler
                             OLD's steps use is gone from NEW, a version changed in place)
    cannot decide            the checker cannot compare (e.g. $ref, anyOf, a differing pattern)
    compatible               added templates or versions; contracts that accept or give more

    \b
    Exit status: 0 no breaking change, 1 breaking changes (listed), 2 unreadable input.

    \b
    Examples:
      tasker-host contracts diff process_refund-2.1.3.yaml process_refund-2.2.0.yaml
      tasker-host contracts diff plugins/payments ../payments-next --json
      tasker-host contracts diff old/tasker_payments-1.4.0-py3-none-any.whl \
                                 new/tasker_payments-1.5.0-py3-none-any.whl
    """
    try:
        before, after = read_templates(old), read_templates(new)
    except (ConfigurationError, TemplateError) as exc:
        fail(exc, as_json=as_json, code=EXIT_USAGE)
        return
    changes = diff_templates(before, after)
    breaking = [c for c in changes if c.breaking]
    doc = {"ok": not breaking, "old": str(old), "new": str(new),
           "old_templates": [t.full_name for t in before], "new_templates": [t.full_name for t in after],
           "changes": [c.as_dict() for c in changes], "summary": summary(changes)}
    emit(doc, as_json, _render)
    if breaking:
        raise SystemExit(EXIT_BREAKING)


def _render(doc: dict[str, Any]) -> str:
    lines = [c["description"] for c in doc["changes"]] or ["no contract changes"]
    counts = doc["summary"]
    lines.append(f"{counts[ChangeKind.BREAKING_CALLERS]} breaking for callers, "
                 f"{counts[ChangeKind.BREAKING_STORED]} breaking for stored tasks, "
                 f"{counts[ChangeKind.CANNOT_DECIDE]} {LABELS[ChangeKind.CANNOT_DECIDE]}, "
                 f"{counts[ChangeKind.COMPATIBLE]} compatible")
    return "\n".join(lines)


def read_templates(path: Path) -> list[TaskTemplate]:
    """The templates of a YAML file, a directory or a wheel; ``TemplateError`` listing every
    problem of a broken one (files that are not task templates are skipped)."""
    loader = TemplateLoader()
    if path.is_file() and path.suffix == ".whl":
        return _from_texts(loader, _wheel_texts(path))
    if path.is_file():
        return _from_texts(loader, [(str(path), path.read_text(encoding="utf-8"))], every=True)
    if (path / "pyproject.toml").is_file() and (path / "src").is_dir():
        path = path / "src"  # a plugin project: its package, not its tests' fixtures
    files = sorted(p for p in path.rglob("*") if p.suffix in _YAML and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    return _from_texts(loader, [(str(p), p.read_text(encoding="utf-8")) for p in files])


def _wheel_texts(path: Path) -> list[tuple[str, str]]:
    try:
        with zipfile.ZipFile(path) as wheel:
            return [(f"{path.name}!{name}", wheel.read(name).decode("utf-8"))
                    for name in sorted(wheel.namelist()) if name.endswith(_YAML)]
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read wheel {path}: {exc}") from None


def _from_texts(loader: TemplateLoader, texts: list[tuple[str, str]], every: bool = False) -> list[TaskTemplate]:
    templates: list[TaskTemplate] = []
    problems: list[TemplateProblem] = []
    for source, text in texts:
        if not every and not _looks_like_template(text):
            continue
        template, found = loader.load_text(text, source)
        problems += found
        if template is not None:
            templates.append(template)
    if problems:
        raise TemplateError(problems)
    return templates


def _looks_like_template(text: str) -> bool:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return True  # let the strict loader report it
    return isinstance(data, dict) and "step_templates" in data and "namespace_name" in data


COMMANDS = (contracts,)
