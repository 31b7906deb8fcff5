"""``tasker-host audit``: the audit trail, newest first, from the database (local) or through
``GET /audit`` (remote mode: admins see every row, a namespace's managers its rows)."""

from __future__ import annotations

import re
import time
from typing import Any

import click

from tasker_host.cli.backend import backend_for, call
from tasker_host.cli.output import emit, json_option
from tasker_host.cli.state import CliState, pass_state

_AGO = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> float:
    """``30m`` / ``12h`` / ``7d`` ago, ISO-8601 (``2026-12-01T09:00:00Z``) or epoch seconds."""
    from tasker_host.api.requests import parse_timestamp

    if match := _AGO.fullmatch(text.strip()):
        return time.time() - int(match.group(1)) * _UNIT[match.group(2)]
    try:
        return parse_timestamp(text)
    except (ValueError, OverflowError, OSError):
        raise click.BadParameter("a duration ago (30m, 12h, 7d), an ISO-8601 time or epoch seconds") from None


class Since(click.ParamType):
    name = "WHEN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        return value if isinstance(value, float) else parse_since(str(value))


@click.command()
@click.option("--namespace", "namespaces", multiple=True, metavar="NS",
              help="Only this namespace's rows (repeatable). Without it: every row you may read.")
@click.option("--since", type=Since(), help="Only rows at or after: 30m, 12h, 7d (ago), ISO-8601 or epoch seconds.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Rows at most.")
@json_option
@pass_state
def audit(state: CliState, namespaces: tuple[str, ...], since: float | None, limit: int, as_json: bool) -> None:
    """Who created, cancelled, retried or resolved tasks, created or revoked tokens, or signed in
    to the console: newest first.

    Each row names the principal and its token (API, console) or "cli" and the operating-system
    user (this command line), the action, the namespace, the target (a task id, a token name) and
    the request's correlation id.

    \b
    Examples:
      tasker-host audit
      tasker-host audit --namespace payments --since 24h
      tasker-host audit --since 2026-12-01T00:00:00Z --json | jq '.[] | select(.action=="task.cancel")'
      tasker-host --server https://tasker.example.com/tasker audit --namespace payments
    """
    backend = backend_for(state, as_json)
    docs = call(lambda: backend.audit(list(namespaces) or None, since, limit), as_json)
    emit(docs, as_json, render_audit)


def who(doc: dict[str, Any]) -> str:
    if doc["actor_kind"] == "cli":
        return f"cli ({doc['os_user'] or '?'})"
    token = doc.get("token_name")
    return doc["principal"] if token in (None, doc["principal"]) else f"{doc['principal']} (token {token})"


def render_audit(docs: list[dict[str, Any]]) -> str:
    if not docs:
        return "no audit rows (yet)"
    rows = [(d["at"], who(d), d["actor_kind"], d["action"], d["namespace"] or "-", d["target"] or "-",
             d["correlation_id"] or "-") for d in docs]
    head = ("AT", "WHO", "VIA", "ACTION", "NAMESPACE", "TARGET", "CORRELATION")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                     for r in [head, *rows])


COMMANDS = (audit,)
