"""Database commands: schema migrations (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import click

from tasker_host.cli.output import emit, fail, json_option
from tasker_host.cli.state import CliState, pass_state
from tasker_host.errors import TaskerError


def _url(state: CliState) -> str:
    from tasker_host.store.urls import default_sqlite_url, normalize_url

    return normalize_url(state.settings.database_url or default_sqlite_url())


def _shown(url: str) -> str:
    from tasker_host.store.urls import redact

    return redact(url)


@click.group()
def db() -> None:
    """Manage the database schema (--database-url / TASKER_DATABASE_URL; default embedded SQLite)."""


@db.command()
@json_option
@pass_state
def upgrade(state: CliState, as_json: bool) -> None:
    """Apply every pending migration (safe to run repeatedly)."""
    from tasker_host.store.sql import engine as sql

    url = _url(state)
    try:
        before = sql.current_revision(url)
        sql.upgrade(url)
        after = sql.current_revision(url)
    except TaskerError as exc:
        fail(exc, as_json=as_json)
    doc = {"database": _shown(url), "from": before, "to": after}
    emit(doc, as_json, lambda d: f"{d['database']}: schema at {d['to']}"
         + (f" (upgraded from {d['from'] or 'empty'})" if d["from"] != d["to"] else " (already current)"))


@db.command()
@json_option
@pass_state
def current(state: CliState, as_json: bool) -> None:
    """Print the schema revision the database is at."""
    from tasker_host.store.sql import engine as sql

    url = _url(state)
    try:
        doc = {"database": _shown(url), "revision": sql.current_revision(url)}
    except TaskerError as exc:
        fail(exc, as_json=as_json)
    emit(doc, as_json, lambda d: f"{d['database']}: {d['revision'] or 'empty (run tasker-host db upgrade)'}")


COMMANDS = (db,)
