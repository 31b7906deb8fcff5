"""Catalogue commands: plugins, handlers, resolve, validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tasker_host.cli.backend import backend_for, call
from tasker_host.cli.completion import complete_name, complete_namespace, complete_reference
from tasker_host.cli.output import emit, fail, json_option
from tasker_host.cli.render import render_catalogue, render_plugins, render_resolved, render_validation
from tasker_host.cli.state import CliState, pass_state
from tasker_host.collect import missing_handlers
from tasker_host.contracts.calls import Severity, check_templates, registry_versions
from tasker_host.errors import TaskerError
from tasker_host.host import Catalog, load_catalog
from tasker_host.templates import TemplateLoader
from tasker_host.versions import VersionRequest, split_reference
from tasker_host.views import catalogue_doc, namespace_doc, plugins_doc, template_doc


def _catalog(state: CliState, as_json: bool) -> Catalog:
    try:
        return load_catalog(state.settings, entry_points=state.entry_points)
    except TaskerError as exc:
        fail(exc, as_json=as_json)
        raise  # unreachable: fail() exits


@click.command()
@json_option
@pass_state
def plugins(state: CliState, as_json: bool) -> None:
    """List installed team plugins: distributions, versions, entry points, namespaces,
    template and handler counts, load failures, conflicts (with every provider) and
    quarantined entries.

    Exits 1 when a plugin failed to load (or has a broken template), or when there are
    conflicts the host would refuse to start with ("ok": false in the --json document).
    """
    catalog = _catalog(state, as_json)
    doc = plugins_doc(catalog.discovery, catalog.registry, state.settings.on_conflict, catalog.contracts)
    emit(doc, as_json, render_plugins)
    if not doc["ok"]:
        raise SystemExit(1)


@click.command()
@click.argument("namespace", required=False, shell_complete=complete_namespace)
@click.argument("name", required=False, shell_complete=complete_name)
@click.option("--version", "spec", metavar="SPEC", help="Only versions matching SPEC (exact or PEP 440 range).")
@json_option
@pass_state
def handlers(state: CliState, namespace: str | None, name: str | None, spec: str | None, as_json: bool) -> None:
    """Show the workflow catalogue: per namespace, every version of every template with its
    steps and their dependencies.

    \b
    Examples:
      tasker-host handlers
      tasker-host handlers payments
      tasker-host handlers payments process_refund --version '~=2.1'
    """
    doc = call(lambda: backend_for(state, as_json).catalogue(namespace, name, spec), as_json)
    emit(doc, as_json, render_catalogue)


def resolved_doc(registry: Any, reference: str) -> dict:
    """``resolve``'s document (local mode)."""
    namespace, name, spec = split_reference(reference)
    template = registry.resolve(namespace, name, spec)
    return {"request": reference, **template_doc(template, registry, detail=False),
            "provider": template.provenance.as_dict() if template.provenance else None}


def _catalogue(registry: Any, namespace: str | None, name: str | None, spec: str | None) -> dict:
    if namespace is None:
        return catalogue_doc(registry)
    if name is None:
        registry.namespace(namespace)
        return {"namespaces": [namespace_doc(registry, namespace)]}
    chosen = registry.resolve(namespace, name, spec)  # raises the precise resolution error
    versions = [t for t in registry.versions_of(namespace, name)
                if spec is None or t.version == chosen.version or _matches(t, spec)]
    ns = namespace_doc(registry, namespace)
    ns["handlers"] = [template_doc(t, registry) for t in versions]
    return {"namespaces": [ns]}


def _matches(template: Any, spec: str) -> bool:
    request = VersionRequest.parse(spec)
    return request.select([template.version]) is not None


@click.command()
@click.argument("reference", metavar="NAMESPACE.NAME[@SPEC]", shell_complete=complete_reference)
@json_option
@pass_state
def resolve(state: CliState, reference: str, as_json: bool) -> None:
    """Say which version of a workflow a request would run, and which distribution provides it.

    SPEC is an exact version (2.1.3), a PEP 440 range (~=2.1, '>=2,<3') or omitted (newest
    stable). Exits 1 and lists the available versions when nothing satisfies SPEC.
    """
    doc = call(lambda: backend_for(state, as_json).resolve(reference), as_json)
    emit(doc, as_json, render_resolved)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@json_option
@pass_state
def validate(state: CliState, paths: tuple[Path, ...], as_json: bool) -> None:
    """Validate the installed plugins, or template files and directories given as PATHs.

    With PATHs (a team's own CI), every YAML file is checked strictly (duplicate keys, quoted
    versions, the template schema, dependencies, cycles, the context schema) and, for namespaces
    an installed plugin provides, that every handler_class exists; their declared calls are
    checked against the installed callees (docs/contracts.md). Exits 1 listing every problem.
    """
    catalog = _catalog(state, as_json)
    doc = _validate_paths(catalog, paths) if paths else _validate_installed(catalog)
    emit(doc, as_json, render_validation)
    if not doc["ok"]:
        raise SystemExit(1)


def _validate_installed(catalog: Catalog) -> dict:
    reg = catalog.registry
    problems = [f.describe() for f in catalog.failures] + [c.describe() for c in reg.conflicts]
    templates = [t.full_name for ts in reg.templates.values() for t in ts]
    return {"ok": not problems, "checked": "installed plugins", "templates": templates, "problems": problems}


def _validate_paths(catalog: Catalog, paths: tuple[Path, ...]) -> dict:
    loader, problems, templates = TemplateLoader(), [], []
    handlers = catalog.registry.handlers
    for path in paths:
        found, errors = loader.load_path(path)
        problems += [p.describe() for p in errors]
        for t in found:
            templates.append(t.full_name)
            if t.namespace in catalog.registry.namespaces:
                problems += [p.describe() for p in missing_handlers(t, handlers)]
        # their declared calls against the installed callees (docs/contracts.md)
        problems += [f.describe() for f in check_templates(found, registry_versions(catalog.registry))
                     if f.severity is Severity.BROKEN]
    return {"ok": not problems, "checked": [str(p) for p in paths], "templates": templates,
            "problems": problems}


COMMANDS = (plugins, handlers, resolve, validate)
