"""The plugin author's kit: ``new-plugin`` (scaffold a plugin distribution) and ``check`` (the
CI gate of a plugin project)."""

from __future__ import annotations

import shlex
from dataclasses import replace
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import click
from packaging.utils import canonicalize_name

from tasker_host.cli.output import emit, fail, json_option
from tasker_host.cli.state import CliState, pass_state
from tasker_host.errors import ConfigurationError, TaskerError
from tasker_host.plugins import provenance_of

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


@click.command("new-plugin")
@click.argument("name")
@click.option("--namespace", "-n", required=True, metavar="NS",
              help="The namespace the plugin owns (lower-case, digits, underscores).")
@click.option("--owner", metavar="TEAM", help='Who owns the namespace (default: "<Namespace> team").')
@click.option("--directory", "-d", type=click.Path(path_type=Path), metavar="DIR",
              help="The project directory to create (default: ./NAME). It must not exist.")
@json_option
@pass_state
def new_plugin(state: CliState, name: str, namespace: str, owner: str | None,
               directory: Path | None, as_json: bool) -> None:
    """Create a complete plugin distribution for a team, ready to install, test and run.

    NAME makes the distribution tasker-NAME, the package tasker_NAME and the first workflow
    NS.NAME@1.0.0. The project has a src layout, a pyproject.toml with the entry point in the
    group tasker_host.plugins and the templates as package data, plugin.py with the hooks, one
    YAML template, one async and one sync handler, tests using tasker_host.testing, a README
    and a CI gate (ci.sh, .github/workflows/plugin.yml).

    Refuses (exit 1, every problem listed, nothing written) an invalid name or namespace, a
    namespace an installed distribution owns, a distribution or module of that name already
    installed, and an existing directory.

    \b
    Examples:
      tasker-host new-plugin shipping --namespace shipping --owner "Shipping team"
      pip install -e './shipping[test]'     # into the environment that has tasker-host
      pytest shipping                       # the generated tests pass as they are
      tasker-host check shipping            # the CI gate
      tasker-host run shipping.shipping@1.0.0 --context '{"request_id": "req-1"}'
    \b
      tasker-host new-plugin returns --namespace returns -d plugins/returns --json
    """
    from tasker_host.scaffold import PluginSpec, create, host_requirement, refusals

    spec = PluginSpec(name, namespace, directory if directory is not None else Path(name), owner,
                      host_requirement())
    problems = refusals(spec, _installed(state, as_json))
    if problems:
        _refuse(name, problems, as_json)
    try:
        created = create(spec)
    except OSError as exc:
        fail(ConfigurationError(f"cannot create {spec.directory}: {exc}"), as_json=as_json)
    emit(_created_doc(spec, created), as_json, _render_created)


def _installed(state: CliState, as_json: bool) -> Any:
    from tasker_host.host import load_catalog
    from tasker_host.scaffold import Installed

    try:
        catalog = load_catalog(replace(state.settings, strict_plugins=False),
                               entry_points=state.entry_points)
    except TaskerError as exc:
        fail(exc, as_json=as_json)
    owners = {ns.name: c.plugin.provenance.provider
              for c in catalog.discovery.contributions for ns in c.namespaces}
    dists = {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions() if d.metadata["Name"]}
    if state.entry_points is not None:
        dists |= {canonicalize_name(provenance_of(ep).distribution) for ep in state.entry_points}
    return Installed(owners, frozenset(dists), lambda module: find_spec(module) is not None)


def _refuse(name: str, problems: list[str], as_json: bool) -> None:
    if as_json:
        emit({"ok": False, "problems": problems}, True, str)
    else:
        click.echo(f"error: cannot create plugin {name!r} ({len(problems)} problem(s)):", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
    raise SystemExit(EXIT_PROBLEMS)


def _created_doc(spec: Any, created: list[str]) -> dict[str, Any]:
    shown = str(spec.directory)
    if not spec.directory.is_absolute() and not shown.startswith("."):
        shown = f"./{shown}"  # pip takes "name[test]" for a requirement, "./name[test]" for a path
    where, extras = shlex.quote(shown), shlex.quote(f"{shown}[test]")
    return {"ok": True, "directory": str(spec.directory.resolve()), "distribution": spec.distribution,
            "package": spec.package, "namespace": spec.namespace, "owner": spec.team,
            "entry_point": spec.entry_point, "workflow": spec.reference, "files": created,
            "next_steps": [f"pip install -e {extras}", f"pytest {where}", f"tasker-host check {where}",
                           f"tasker-host run {spec.reference} --context "
                           f"'{{\"request_id\": \"req-1\"}}'"]}


def _render_created(doc: dict[str, Any]) -> str:
    lines = [f"Created {doc['distribution']} in {doc['directory']}",
             f"  namespace {doc['namespace']} ({doc['owner']}), entry point {doc['entry_point']}, "
             f"workflow {doc['workflow']}", ""]
    lines += [f"  {f}" for f in doc["files"]]
    lines += ["", "Next, in the environment that has tasker-host (source .venv/bin/activate):"]
    lines += [f"  {step}" for step in doc["next_steps"]]
    return "\n".join(lines)


@click.command()
@click.argument("target", required=False, metavar="[PATH|DIST]")
@json_option
@pass_state
def check(state: CliState, target: str | None, as_json: bool) -> None:
    """The CI gate of a plugin project: everything the host would refuse, before it ships.

    PATH is a plugin project's directory (its pyproject.toml; the source is checked, installed
    or not), DIST an installed distribution's name; default: the current directory. Checks the
    plugin alone as a strict host loads it (hooks, namespaces, every template strictly, handlers,
    the plugin contract of tasker_host.testing.check_plugin), then with the other installed
    plugins (namespace ownership, duplicate templates and handlers, foreign namespaces, and the
    declared calls between them and the project: docs/contracts.md), and,
    for a PATH, that an installed copy is not stale. Lists every problem.

    \b
    Exit status:
      0  no problems
      1  problems found (every one listed; "ok": false in the --json document)
      2  nothing to check: no such directory or installed distribution, no pyproject.toml

    \b
    Examples:
      tasker-host check                     # the project in the current directory
      tasker-host check plugins/payments --json
      tasker-host check tasker-payments     # an installed distribution
    """
    from tasker_host.testing.project_check import locate, run_gate

    try:
        project = locate(target, Path.cwd())
    except ConfigurationError as exc:
        fail(exc, as_json=as_json, code=EXIT_USAGE)
    report = run_gate(project, state.entry_points)
    emit(report.as_dict(), as_json, _render_gate)
    if not report.ok:
        raise SystemExit(EXIT_PROBLEMS)


def _render_gate(doc: dict[str, Any]) -> str:
    where = f" ({doc['path']})" if doc["path"] else ""
    lines = [f"{doc['distribution']} {doc['version']}{where}",
             f"  entry points {', '.join(doc['entry_points']) or '-'}",
             f"  namespaces   {', '.join(doc['namespaces']) or '-'}",
             f"  templates    {', '.join(doc['templates']) or '-'}"]
    lines += [f"  note: {n}" for n in doc["notes"]]
    if doc["ok"]:
        return "\n".join([*lines, "ok: no problems"])
    lines.append(f"{len(doc['problems'])} problem(s):")
    lines += [f"  ✗ [{p['kind']}] {p['message']}" for p in doc["problems"]]
    return "\n".join(lines)


COMMANDS = (new_plugin, check)
