"""Output helpers shared by every command: JSON for scripts, readable text for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from tasker_host.errors import TaskerError
from tasker_host.values import printable


def emit(doc: Any, as_json: bool, render: Callable[[Any], Any]) -> None:
    """``--json``: the document, undecorated. Else ``render(doc)``: text, or a rich renderable
    printed to a console fitted to the terminal (colour on a terminal only)."""
    if as_json:
        click.echo(to_json(doc))
        return
    shown = render(doc)
    if isinstance(shown, str):
        click.echo(shown)
    else:
        from tasker_host.cli.tables import console

        console().print(shown)


def hint(text: str) -> None:
    """A suggestion for the obvious next step, on standard error (never in ``--json`` output)."""
    click.echo(f"hint: {text}", err=True)


def to_json(doc: Any) -> str:
    """Strict JSON; values of rows written before the value rule (SQLite kept ``Infinity``)
    through :func:`~tasker_host.values.printable` (``null``)."""
    try:
        return json.dumps(doc, indent=2, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(printable(doc), indent=2, default=str)


def fail(error: TaskerError | str, *, as_json: bool = False, code: int = 1) -> None:
    """Report an error (JSON on stdout with ``--json``, text on stderr) and exit."""
    message = str(error)
    if as_json:
        doc: dict[str, Any] = {"ok": False, "error": type(error).__name__ if not isinstance(error, str) else "Error",
                               "message": message}
        for attr in ("conflicts", "failures", "problems"):
            items = getattr(error, attr, None)
            if items:
                doc[attr] = [i.as_dict() for i in items]
        for attr in ("available", "providers"):
            if values := getattr(error, attr, None):
                doc[attr] = list(values)
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
