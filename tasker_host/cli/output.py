"""Output helpers shared by every command: JSON for scripts, readable text for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from tasker_host.errors import TaskerError


def emit(doc: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        click.echo(render(doc))


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
