"""Task commands: run a workflow with live progress, and list/show/cancel/retry/resolve tasks."""

from __future__ import annotations

import gc
import json
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click

from tasker_host.cli.backend import backend_for, call
from tasker_host.cli.engine_options import engine_options, with_engine_options
from tasker_host.cli.output import emit, fail, json_option
from tasker_host.cli.state import CliState, pass_state
from tasker_host.cli.watch import Screen, watch
from tasker_host.engine.outage import Backoff
from tasker_host.engine.supervise import run_supervised
from tasker_host.errors import ConfigurationError, StoreUnavailableError, TaskerError
from tasker_host.host import Host, build_host
from tasker_host.models import TaskState
from tasker_host.versions import split_reference
from tasker_host.views import task_doc

if TYPE_CHECKING:
    from tasker_host.cli.backend import Backend



def parse_context(text: str | None) -> dict[str, Any]:
    """``--context`` value: inline JSON, ``@file.json``, or ``-`` for standard input."""
    if not text:
        return {}
    source = "standard input" if text == "-" else (text[1:] if text.startswith("@") else "--context")
    try:
        raw = sys.stdin.read() if text == "-" else Path(text[1:]).read_text() if text.startswith("@") else text
        value = json.loads(raw)
    except OSError as exc:
        raise ConfigurationError(f"cannot read context file {source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"context from {source} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"context from {source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"context from {source} must be a JSON object, not {type(value).__name__}")
    return value


def tune_gc() -> None:
    """For a long-running process, once its host is built: keep what lives as long as the process
    (plugins, registry, templates) out of the cyclic collector's passes (as `serve` does)."""
    gc.collect()
    gc.freeze()


def open_host(state: CliState, as_json: bool) -> Host:
    try:
        return build_host(state.settings, entry_points=state.entry_points)
    except TaskerError as exc:
        fail(exc, as_json=as_json)
        raise


def open_host_patiently(state: CliState) -> Host:
    """``worker``: a database that cannot be reached yet is waited for (one line when the wait
    starts), so a fleet of workers can start before, or ride out, its database."""
    backoff, failures = Backoff(first=0.5, cap=10.0), 0
    while True:
        try:
            return build_host(state.settings, entry_points=state.entry_points)
        except StoreUnavailableError as exc:
            failures += 1
            if failures == 1:
                click.echo(f"database unavailable ({exc}); waiting for it", err=True)
            time.sleep(backoff.delay(failures))
        except TaskerError as exc:
            fail(exc, as_json=False)
            raise


async def drive(host: Host, task_id: str) -> Any:
    """Run the engine until ``task_id`` is final; returns the final record."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run)
        await host.engine.wait_for_task(task_id)
        tg.cancel_scope.cancel()
    return host.service.get_task(task_id)


def finish(doc: dict[str, Any], as_json: bool) -> None:
    emit(doc, as_json, render_task)
    if doc["status"] != TaskState.COMPLETE.value:
        raise SystemExit(1)


def render_task(doc: dict[str, Any]) -> str:
    lines = [f"{doc['full_name']}  task {doc['id']}  {doc['status'].upper()}"]
    if doc["error"]:
        lines.append(f"  error in step {doc['error'].get('step')}: {doc['error'].get('message')}")
    lines.append(f"  {'STEP':<34}{'STATE':<18}ATTEMPTS")
    for s in doc["steps"]:
        lines.append(f"  {s['name']:<34}{s['state']:<18}{s['attempts']}/{s['retry_limit']}")
    return "\n".join(lines)


CREATE_TRIES = 5


def create_surely(host: Host, namespace: str, name: str, spec: str | None, context: Any,
                  idempotency_key: str | None) -> Any:
    """Create the task, repeating the creation while the database is unavailable. Always with an
    idempotency key (``cli-<uuid>`` when none is given): a creation whose connection died may have
    been committed, and only the key makes repeating it safe."""
    key = idempotency_key or f"cli-{uuid.uuid4().hex}"
    backoff = Backoff(first=0.5, cap=4.0)
    for attempt in range(1, CREATE_TRIES + 1):
        try:
            return host.service.create_task(namespace, name, spec, context, idempotency_key=key)
        except StoreUnavailableError as exc:
            if attempt == CREATE_TRIES:
                raise
            click.echo(f"database unavailable ({exc}); trying again (key {key})", err=True)
            time.sleep(backoff.delay(attempt))
    raise AssertionError("unreachable")


@click.command()
@click.argument("reference", metavar="NAMESPACE.NAME[@SPEC]")
@click.option("--context", "context_arg", metavar="JSON|@FILE|-", help="Task context: JSON, @file.json, or - (stdin).")
@click.option("--idempotency-key", help="Create the task at most once for this key (in its namespace); "
                                        "default: a fresh cli-<uuid> key, so a creation repeated after a "
                                        "database hiccup is still made once.")
@click.option("--quiet", "-q", is_flag=True, help="No live progress lines.")
@click.option("--detach", is_flag=True, help="Only create the task (a worker or server runs it); print it.")
@json_option
@pass_state
def run(state: CliState, reference: str, context_arg: str | None, idempotency_key: str | None,
        quiet: bool, detach: bool, as_json: bool) -> None:
    """Run a workflow to completion, showing each step's state and attempts as it happens.

    \b
    Examples:
      tasker-host run payments.process_refund@2.1.3 \\
          --context '{"payment_id": "pay_123", "refund_amount": 4999}'
      tasker-host run customer_success.process_refund --context @refund.json --json

    Exit status: 0 when the task completes, 1 when it ends in error or is cancelled.
    """
    backend = backend_for(state, as_json)
    try:
        namespace, name, spec = split_reference(reference)
        task = backend.create(namespace, name, spec, parse_context(context_arg), idempotency_key)
    except TaskerError as exc:
        fail(exc, as_json=as_json)
    if detach:
        return emit(task, as_json, render_task)
    if not quiet:
        click.echo(f"▶ {task['full_name']}  task {task['id']}", err=True)
    finish(call(lambda: backend.wait(task["id"], progress=not quiet), as_json), as_json)


@click.group()
def tasks() -> None:
    """Inspect and manage tasks in the database (list, show, cancel, retry, resolve-step)."""


@tasks.command("list")
@click.option("--namespace", multiple=True, help="Only these namespaces (repeatable).")
@click.option("--name", help="Only this workflow name.")
@click.option("--status", type=click.Choice([s.value for s in TaskState]))
@click.option("--limit", default=50, show_default=True)
@json_option
@pass_state
def list_tasks(state: CliState, namespace: tuple[str, ...], name: str | None, status: str | None,
               limit: int, as_json: bool) -> None:
    """List tasks, oldest first."""
    backend = backend_for(state, as_json)
    docs = call(lambda: backend.list_tasks(list(namespace) or None, name, status, limit), as_json)
    emit(docs, as_json, lambda ds: "\n".join(
        f"{d['id']}  {d['status']:<18}{d['full_name']}  {d['created_at']}" for d in ds) or "no tasks")


def _action(state: CliState, as_json: bool, act: Callable[[Backend], dict[str, Any]], wait: bool = False) -> None:
    backend = backend_for(state, as_json)
    task = call(lambda: act(backend), as_json)
    if wait:
        task = call(lambda: backend.wait(task["id"]), as_json)
    emit(task, as_json, render_task)


wait_option = click.option("--wait", is_flag=True, help="Run the engine here until the task is final.")


@tasks.command()
@click.argument("task_id")
@json_option
@pass_state
def show(state: CliState, task_id: str, as_json: bool) -> None:
    """Show a task with its steps (state, attempts, results, last error)."""
    _action(state, as_json, lambda backend: backend.get_task(task_id))


@tasks.command()
@click.argument("task_id")
@json_option
@pass_state
def cancel(state: CliState, task_id: str, as_json: bool) -> None:
    """Cancel a task: pending steps never start."""
    _action(state, as_json, lambda backend: backend.cancel(task_id))


@tasks.command()
@click.argument("task_id")
@wait_option
@json_option
@pass_state
def retry(state: CliState, task_id: str, wait: bool, as_json: bool) -> None:
    """Retry a task that ended in error (its failed steps get fresh attempts)."""
    _action(state, as_json, lambda backend: backend.retry(task_id), wait=wait)


@tasks.command("resolve-step")
@click.argument("task_id")
@click.argument("step")
@click.option("--results", "results_arg", metavar="JSON", help="Results dependents will see.")
@wait_option
@json_option
@pass_state
def resolve_step(state: CliState, task_id: str, step: str, results_arg: str | None, wait: bool,
                 as_json: bool) -> None:
    """Mark a failed step as resolved by hand so its dependents can run."""
    try:
        results = parse_context(results_arg) if results_arg else None
    except TaskerError as exc:
        fail(exc, as_json=as_json)
    _action(state, as_json, lambda backend: backend.resolve_step(task_id, step, results), wait=wait)


@tasks.command("watch")
@click.argument("task_id")
@click.option("--interval", default=0.5, show_default=True, type=click.FloatRange(0.05),
              help="Seconds between looks at the database.")
@json_option
@pass_state
def watch_task(state: CliState, task_id: str, interval: float, as_json: bool) -> None:
    """Follow a task run by any process: its steps (and child tasks) as a tree, updated in place
    on a terminal (a line per change otherwise; on standard error with --json, which prints the
    final task document). Exit status: 0 when it completes, 1 when it ends otherwise."""
    source = backend_for(state, as_json).watch_source()
    stream = sys.stderr if as_json else sys.stdout
    task = call(lambda: watch(source, task_id, Screen(stream, stream.isatty()), interval), as_json)
    if task is None:
        return fail(f"no task {task_id!r}", as_json=as_json)
    finish(task_doc(task), as_json)


@click.command()
@click.option("--until-idle", is_flag=True,
              help="Exit once nothing is runnable (steps waiting for a retry backoff stay for later).")
@click.option("--grace-seconds", default=30.0, show_default=True, type=click.FloatRange(0),
              help="On SIGTERM / Ctrl-C: how long running steps may take to finish before they are "
                   "released to other workers.")
@engine_options
@pass_state
def worker(state: CliState, until_idle: bool, grace_seconds: float, concurrency: int | None,
           lease_seconds: float | None, heartbeat_seconds: float | None, poll_seconds: float | None,
           namespace_limits: tuple[str, ...]) -> None:
    """Run the engine only: claim and run ready steps until stopped.

    Start any number of workers (on any machines) against one PostgreSQL database: each claims
    batches of ready steps with SKIP LOCKED, fairly across namespaces, and wakes within
    milliseconds when work appears (LISTEN/NOTIFY). Steps run at least once: a worker that dies
    stops beating, and within seconds the others run its steps again (see docs/deployment.md).

    SIGTERM or Ctrl-C stops claiming, lets running steps finish for up to --grace-seconds,
    releases the rest (another worker runs them) and commits everything before exiting.

    \b
    Examples:
      TASKER_DATABASE_URL=postgresql://tasker@db/tasker tasker-host worker --concurrency 32
      tasker-host worker --namespace-limit payments=8 --lease-seconds 30
    """
    state.settings = with_engine_options(state.settings, concurrency, lease_seconds, poll_seconds,
                                         namespace_limits, heartbeat_seconds)
    host = open_host_patiently(state)
    tune_gc()
    click.echo(f"worker {host.engine.config.owner} running "
               f"({len(host.registry.namespaces)} namespaces, {host.registry.template_count} templates)", err=True)
    anyio.run(_work, host, until_idle, grace_seconds)
    click.echo("worker stopped", err=True)


async def _work(host: Host, until_idle: bool, grace_seconds: float) -> None:
    stop = anyio.Event()

    async def on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for received in signals:
                click.echo(f"{signal.Signals(received).name}: finishing running steps "
                           f"(up to {grace_seconds:g}s), claiming nothing new", err=True)
                stop.set()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(on_signal)
        await run_supervised(host.engine, stop, grace_seconds=grace_seconds, until_idle=until_idle)
        tg.cancel_scope.cancel()
    host.close()


COMMANDS = (run, tasks, worker)
