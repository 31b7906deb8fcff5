"""Token commands: create, list and revoke the API's bearer tokens (in the host's database)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from tasker_host.auth import TokenStore
from tasker_host.cli.output import emit, fail, json_option
from tasker_host.cli.state import CliState, pass_state
from tasker_host.errors import ConfigurationError, TaskerError


@contextmanager
def _token_store(state: CliState, as_json: bool) -> Iterator[TokenStore]:
    """The token store of the configured database (SQLite is upgraded on open; PostgreSQL must be
    at the current schema revision: ``tasker-host db upgrade``)."""
    from tasker_host.host import open_store
    from tasker_host.store.tokens import token_store_for

    try:
        store = open_store(state.settings)
    except TaskerError as exc:
        fail(exc, as_json=as_json)
        raise
    try:
        yield token_store_for(store)
    finally:
        store.close()


def _now() -> float:
    from tasker_host.engine.clock import RealClock

    return RealClock().now()


def _access(doc: dict[str, Any]) -> str:
    if doc["admin"]:
        return "admin (every action in every namespace)"
    return ", ".join(f"{g.partition(':')[0]} ({g.partition(':')[2]})" for g in doc["grants"])


def _run(as_json: bool, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except TaskerError as exc:
        fail(exc, as_json=as_json)


@click.group()
def tokens() -> None:
    """Create, list and revoke API tokens (bearer tokens for the REST API).

    A token is an admin (every action in every namespace) or a set of namespace grants: "manage"
    (create, cancel, retry, resolve; view too) or "view" (show, list). Everyone may view the
    "shared" namespace. Only the token's SHA-256 digest is stored: the token itself is printed
    once, by "create", and cannot be shown again (revoke it and create a new one if lost).

    \b
    Examples:
      tasker-host tokens create --name ci-payments --namespace payments
      tasker-host tokens create --name dashboards --namespace payments:view --namespace inventory:view
      tasker-host tokens create --name ops --admin
      tasker-host tokens list
      tasker-host tokens revoke ci-payments
    """


@tokens.command()
@click.option("--name", required=True, help="Unique name: who or what uses the token (e.g. ci-payments).")
@click.option("--admin", is_flag=True, help="May do everything in every namespace (no --namespace then).")
@click.option("--namespace", "namespaces", multiple=True, metavar="NS[:manage|:view]",
              help="Grant access to a namespace (repeatable); without a level it means manage.")
@json_option
@pass_state
def create(state: CliState, name: str, admin: bool, namespaces: tuple[str, ...], as_json: bool) -> None:
    """Create a token and print it (once: only its digest is stored).

    Give exactly one of --admin or one or more --namespace. "NS" alone or "NS:manage" may
    create, cancel, retry and resolve tasks in NS (and view them); "NS:view" may only view.

    The token is printed alone on the last line (with --json: the "token" field), so scripts
    can capture it.

    \b
    Examples:
      tasker-host tokens create --name ci-payments --namespace payments
      tasker-host tokens create --name dashboards --namespace payments:view --namespace inventory:view
      tasker-host tokens create --name ops --admin
      TOKEN=$(tasker-host tokens create --name ci-payments --namespace payments | tail -n 1)
      tasker-host tokens create --name ci-payments --namespace payments --json | jq -r .token
    """
    from tasker_host.audit import Actor
    from tasker_host.tokens import check_token_request, issue_token, token_doc

    if admin and namespaces:
        fail(ConfigurationError("give either --admin or --namespace, not both (an admin may do everything)"),
             as_json=as_json)
    if not admin and not namespaces:
        fail(ConfigurationError("give --admin or at least one --namespace NS[:manage|:view] "
                                "(e.g. --namespace payments)"), as_json=as_json)
    _run(as_json, lambda: check_token_request(name, admin=admin, grants=namespaces))  # before opening the database
    with _token_store(state, as_json) as store:
        issued = _run(as_json, lambda: issue_token(store, name, admin=admin, grants=namespaces, now=_now(),
                                                   actor=Actor.cli()))
    doc = {**token_doc(issued.record), "token": issued.token}
    emit(doc, as_json, lambda d: "\n".join([
        f"Created token {d['name']!r} (id {d['id']})",
        f"  access: {_access(d)}",
        "  Copy it now: it is shown only this once (only its SHA-256 digest is stored).",
        d["token"],
    ]))


@tokens.command("list")
@json_option
@pass_state
def list_tokens(state: CliState, as_json: bool) -> None:
    """List every token (revoked ones too), oldest first; never the tokens themselves.

    \b
    Examples:
      tasker-host tokens list
      tasker-host tokens list --json | jq -r '.[] | select(.revoked | not) | .name'
    """
    from tasker_host.tokens import token_doc

    with _token_store(state, as_json) as store:
        docs = [token_doc(r) for r in _run(as_json, store.list_tokens)]
    emit(docs, as_json, _render_list)


def _render_list(docs: list[dict[str, Any]]) -> str:
    if not docs:
        return "no tokens (create one: tasker-host tokens create --name NAME --namespace NS)"
    width = max(4, *(len(d["name"]) for d in docs))
    lines = [f"{'ID':<32}  {'NAME':<{width}}  {'STATUS':<8}  {'CREATED':<24}  ACCESS"]
    lines += [f"{d['id']:<32}  {d['name']:<{width}}  {'revoked' if d['revoked'] else 'active':<8}  "
              f"{d['created_at']:<24}  {_access(d)}" for d in docs]
    return "\n".join(lines)


@tokens.command()
@click.argument("id_or_name", metavar="ID_OR_NAME")
@json_option
@pass_state
def revoke(state: CliState, id_or_name: str, as_json: bool) -> None:
    """Revoke a token (by id or name). Revoking twice is harmless.

    New checks refuse it at once. Running servers remember accepted tokens for their
    --token-cache-seconds (default 5): on PostgreSQL they are notified and forget it at once;
    on SQLite a server may accept it until that time has passed.

    \b
    Examples:
      tasker-host tokens revoke ci-payments
      tasker-host tokens revoke 3f2b9c0d4e5a46f7a8b9c0d1e2f3a4b5 --json
    """
    from tasker_host.audit import Actor
    from tasker_host.tokens import revoke_token, token_doc

    now = _now()
    with _token_store(state, as_json) as store:
        record = _run(as_json, lambda: revoke_token(store, id_or_name, now=now, actor=Actor.cli()))
        pushed = store.revocations_pushed
    if record is None:
        fail(ConfigurationError(f"no token with id or name {id_or_name!r} (tasker-host tokens list shows them)"),
             as_json=as_json)
    doc = {**token_doc(record), "servers_notified": pushed}
    already = record.revoked_at != now
    emit(doc, as_json, lambda d: f"token {d['name']!r} (id {d['id']}) "
         + (f"was already revoked at {d['revoked_at']}" if already else f"revoked: {_takes_effect(pushed)}"))


def _takes_effect(pushed: bool) -> str:
    if pushed:
        return "running servers are notified and stop accepting it at once"
    return ("new checks refuse it; running servers stop accepting it within their --token-cache-seconds "
            "(default 5 s)")


COMMANDS = (tokens,)
