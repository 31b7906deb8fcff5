"""Readable renderings of task documents (the ``views.task_doc`` JSON the API returns), with rich:
tables with headers, fitted to the terminal's width, colour on a terminal only (``NO_COLOR``
honoured). The input is always the document, so local and remote commands render alike."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

STATUS_STYLES = {
    "complete": "green", "resolved_manually": "green", "error": "bold red", "cancelled": "yellow",
    "in_progress": "cyan", "waiting_retry": "magenta", "waiting": "yellow", "pending": "dim", "skipped": "dim",
}
SHORT_ID = 8  # as in progress lines; any unique prefix is accepted back


PIPE_WIDTH = 1000  # piped output (no terminal, no COLUMNS): values are not cut to 80 columns


def console() -> Console:
    """A console on standard output, made per call (CliRunner swaps ``sys.stdout``): rich detects
    the terminal (no colour and no control codes when piped) and honours ``NO_COLOR``. Fitted to
    the terminal's width, or ``COLUMNS``; piped without either, nothing is cut."""
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, width=PIPE_WIDTH if piped else None)


def status_text(status: str, *, upper: bool = False) -> Text:
    return Text(status.upper() if upper else status, style=STATUS_STYLES.get(status, ""))


def compact(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def duration(started: str | None, ended: str | None) -> str:
    begin, end = _moment(started), _moment(ended)
    if begin is None or end is None:
        return ""
    seconds = (end - begin).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def task_list(docs: list[dict[str, Any]]) -> RenderableType:
    if not docs:
        return Text("no tasks")
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=SHORT_ID)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("WORKFLOW", ratio=1)
    table.add_column("CREATED", no_wrap=True)
    for d in docs:
        table.add_row(d["id"][:SHORT_ID], status_text(d["status"]), _cell(d["full_name"]), d["created_at"] or "")
    return table


def task_detail(doc: dict[str, Any]) -> RenderableType:
    head = Text.assemble((doc["full_name"], "bold"), f"  task {doc['id']}  ", status_text(doc["status"], upper=True))
    parts: list[RenderableType] = [head, _facts(doc)]
    if doc.get("error"):
        error = doc["error"]
        parts.append(Text(f"  error in step {error.get('step')}: {error.get('message')}", style="red"))
    for warning in doc.get("warnings") or ():
        parts.append(Text(f"  warning: {warning.get('message')}", style="yellow"))
    parts.append(_steps(doc["steps"]))
    if doc.get("children"):
        parts.append(Text(f"  child tasks: {', '.join(c[:SHORT_ID] for c in doc['children'])}"))
    return Group(*parts)


def _facts(doc: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(ratio=1)
    rows = [("created", doc["created_at"]), ("completed", doc["completed_at"]),
            ("took", duration(doc["created_at"], doc["completed_at"])),
            ("parent", f"{doc['parent_task_id']} step {doc['parent_step']}" if doc["parent_task_id"] else None),
            ("correlation", doc["correlation_id"]), ("context", compact(doc["context"]) if doc["context"] else None)]
    for label, value in rows:
        if value:
            table.add_row(f"  {label}", _cell(value))
    return table


def _steps(steps: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    table.add_column("  STEP", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("ATTEMPTS", no_wrap=True, justify="right")
    table.add_column("TOOK", no_wrap=True, justify="right")
    table.add_column("OUTCOME", ratio=1)  # shrinks first; cells cut with …
    for s in steps:
        table.add_row(f"  {s['name']}", status_text(s["state"]), f"{s['attempts']}/{s['retry_limit']}",
                      duration(s["started_at"], s["completed_at"]), _outcome(s))
    return table


def waiting_text(waiting: dict[str, Any]) -> str:
    """What a waiting step waits for: ``event approval (timeout 2026-...)`` / ``timer until ...``."""
    if waiting.get("event"):
        text = f"waits for event {waiting['event']}"
        if waiting.get("delivered"):
            return text + " (delivered: runs next)"
        return text + (f" (timeout {waiting['timeout_at']})" if waiting.get("timeout_at") else "")
    return f"sleeps until {waiting.get('until') or waiting.get('wakes_at')}"


def _outcome(step: dict[str, Any]) -> Text:
    if step.get("waiting_for"):
        return _cell(waiting_text(step["waiting_for"]), "yellow")
    if step.get("retry_at"):
        error = step.get("last_error") or {}
        return _cell(f"retry at {step['retry_at']} after {error.get('type', '')}: {error.get('message', '')}",
                     "magenta")
    if step.get("last_error") and step["state"] not in ("complete", "resolved_manually"):
        error = step["last_error"]
        return _cell(f"{error.get('type', '')}: {error.get('message', '')}", "red")
    return _cell(compact(step.get("results")))


def _cell(text: str, style: str = "") -> Text:
    """One line, cut with … at the column's width (the column itself may shrink)."""
    return Text(" ".join(text.split()), style=style, no_wrap=True, overflow="ellipsis")
