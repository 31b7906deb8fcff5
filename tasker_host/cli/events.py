"""``tasker-host tasks send ID NAME --payload JSON``: send an event to a task (a manager's
approval ...), locally (the database) or through a server's API (``--server``), like
``POST /tasks/{id}/events/{name}``."""

from __future__ import annotations

from typing import Any

import click

from tasker_host.cli.backend import backend_for, call
from tasker_host.cli.output import emit, fail, json_option
from tasker_host.cli.state import CliState, pass_state
from tasker_host.cli.tasks import read_json_option
from tasker_host.errors import TaskerError


def parse_payload(text: str | None) -> Any:
    """``--payload`` value: inline JSON, ``@file.json``, or ``-`` for standard input (None: null)."""
    return None if text is None else read_json_option(text, "payload")


def render_sent(doc: dict[str, Any]) -> str:
    head = f"event {doc['name']} (#{doc['id']}) to task {doc['task_id']}"
    if doc.get("duplicate"):
        return f"{head}: already sent with this idempotency key (nothing new written)"
    if doc.get("woke"):
        return f"{head}: sent; step {doc['woke']} wakes up"
    return f"{head}: stored; it is delivered when a step waits for it"


@click.command("send")
@click.argument("task_id")
@click.argument("name")
@click.option("--payload", "payload_arg", metavar="JSON",
              help="The event's payload: inline JSON, @file.json or - (standard input). Default: null.")
@click.option("--idempotency-key", metavar="KEY", help="Send at most once per key (safe to repeat).")
@click.option("--wait", is_flag=True,
              help="Then wait until the task is final (locally: run the engine here); exit like `run`.")
@json_option
@pass_state
def send(state: CliState, task_id: str, name: str, payload_arg: str | None, idempotency_key: str | None,
         wait: bool, as_json: bool) -> None:
    """Send event NAME to a task: a step waiting for it (ctx.wait_for) runs again with the payload.
    The payload is checked against the schema the step declared (every problem listed); an event
    sent before the step waits is kept for it; a task that has ended refuses events."""
    try:
        payload = parse_payload(payload_arg)
    except TaskerError as exc:
        fail(exc, as_json=as_json)
    backend = backend_for(state, as_json)
    sent = call(lambda: backend.send_event(backend.expand_id(task_id), name, payload, idempotency_key), as_json)
    if not wait:
        emit(sent, as_json, render_sent)
        return
    from tasker_host.cli.tasks import finish

    click.echo(render_sent(sent), err=True)
    finish(call(lambda: backend.wait(sent["task_id"]), as_json), as_json)


def attach(tasks: click.Group) -> None:
    tasks.add_command(send)
