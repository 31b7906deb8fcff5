"""Version lifecycle commands: ``versions`` (drain status per ``namespace.name@version``, local or
remote) and ``drain-check`` (may a distribution be uninstalled now? local only: it asks the
installed plugins what the distribution provides). Documents from :mod:`tasker_host.drain`."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tasker_host.cli.backend import backend_for, call
from tasker_host.cli.completion import complete_namespace
from tasker_host.cli.output import emit, json_option
from tasker_host.cli.state import CliState, pass_state
from tasker_host.cli.tables import SHORT_ID, _cell, status_text
from tasker_host.drain import DEFAULT_DAYS, MAX_DAYS


def split_scope(scope: str | None) -> tuple[str | None, str | None]:
    """``NAMESPACE[.NAME]`` → (namespace, name)."""
    if not scope:
        return None, None
    namespace, _, name = scope.partition(".")
    if not namespace or (_ and not name) or "@" in scope:
        raise click.BadParameter(f"{scope!r}: expected NAMESPACE or NAMESPACE.NAME", param_hint="SCOPE")
    return namespace, name or None


@click.command()
@click.argument("scope", metavar="[NAMESPACE[.NAME]]", required=False, shell_complete=complete_namespace)
@click.option("--days", type=click.IntRange(1, MAX_DAYS), default=DEFAULT_DAYS, show_default=True,
              help="Who started each version in the last N days.")
@json_option
@pass_state
def versions(state: CliState, scope: str | None, days: int, as_json: bool) -> None:
    """Lifecycle and drain status of every version: deprecated / replaced by / sunset, and the
    tasks still pending, running, waiting on a child task or failed awaiting action (exact counts
    from the database), the last start and who started it in the last N days.

    \b
    Examples:
      tasker-host versions
      tasker-host versions payments
      tasker-host versions payments.process_refund --days 7 --json
    """
    namespace, name = split_scope(scope)
    doc = call(lambda: backend_for(state, as_json).versions(namespace, name, days), as_json)
    emit(doc, as_json, render_versions)


@click.command("drain-check")
@click.argument("distribution")
@json_option
@pass_state
def drain_check(state: CliState, distribution: str, as_json: bool) -> None:
    """Exit 0 when no unfinished task needs DISTRIBUTION (a template it provides, or a step
    handler of it), so `pip uninstall DISTRIBUTION` is safe; else list those tasks and exit 1.

    \b
    Examples:
      tasker-host drain-check tasker-payments
      tasker-host drain-check tasker-payments --json
    """
    from tasker_host.cli.tasks import open_host
    from tasker_host.drain import drain_check as check

    host = open_host(state, as_json)
    try:
        doc = call(lambda: check(host.registry, host.store, distribution), as_json)
    finally:
        host.store.close()
    emit(doc, as_json, render_drain_check)
    sys.exit(0 if doc["safe_to_uninstall"] else 1)


# --- renderings -----------------------------------------------------------------------------------
def render_versions(doc: dict[str, Any]) -> RenderableType:
    rows = doc["versions"]
    if not rows:
        return Text("no versions")
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    table.add_column("VERSION", no_wrap=True)
    table.add_column("DEPRECATED", ratio=1)  # shrinks first; cells cut with …
    table.add_column("REPLACED BY", no_wrap=True)
    table.add_column("SUNSET", no_wrap=True)
    for title in ("PENDING", "RUNNING", "WAITING", "ERROR"):
        table.add_column(title, no_wrap=True, justify="right")
    table.add_column("DRAINED", no_wrap=True)
    table.add_column("LAST START", no_wrap=True)
    table.add_column(f"STARTED BY ({doc['days']}D)", ratio=1)
    for r in rows:
        t = r["tasks"]
        table.add_row(r["full_name"], _deprecated(r), _cell(r["replacement"] or r["replaced_by"] or ""),
                      _sunset(r), str(t["pending"]), str(t["in_progress"]), str(t["waiting_on_children"]),
                      Text(str(t["error"]), style="bold red" if t["error"] else ""),
                      Text("yes", style="green") if r["drained"] else Text("no", style="bold"),
                      r["last_started_at"] or "never",
                      _cell(", ".join(f"{k} ({n})" for k, n in r["started_by"].items()) or "-"))
    return table


def _deprecated(r: dict[str, Any]) -> Text:
    if not r["installed"]:
        return _cell("(no longer installed)", "yellow")
    if r["deprecated"]:
        return _cell(r["deprecated"], "yellow")
    return _cell("yes" if r["replaced_by"] or r["sunset"] else "")


def _sunset(r: dict[str, Any]) -> Text:
    if r["sunset_reached"]:
        return Text(f"{r['sunset']} (passed: refuses new tasks)", style="bold red")
    return Text(r["sunset"] or "", style="yellow")


def render_drain_check(doc: dict[str, Any]) -> RenderableType:
    dist = doc["distribution"]
    if doc["safe_to_uninstall"]:
        where = "" if doc["installed"] else " (it provides nothing to this host)"
        return Text(f"{dist}: no unfinished task needs it{where}; `pip uninstall {dist}` is safe", style="green")
    head = Text(f"{dist} is still needed by {len(doc['tasks'])} unfinished task(s); finish, resolve or cancel "
                "them before `pip uninstall`:", style="bold red")
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=SHORT_ID)
    table.add_column("WORKFLOW", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("NEEDS", ratio=1)
    for t in doc["tasks"]:
        table.add_row(t["id"], t["full_name"], status_text(t["status"]), _cell("; ".join(t["needs"])))
    return Group(head, table)


COMMANDS = (versions, drain_check)
