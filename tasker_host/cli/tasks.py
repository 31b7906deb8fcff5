"""Task commands: run a workflow with live progress, and list/show/cancel/retry/resolve tasks."""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click

from tasker_host.audit import Actor
from tasker_host.cli.backend import backend_for, call
from tasker_host.cli.completion import complete_reference
from tasker_host.cli.engine_options import engine_options, with_engine_options
from tasker_host.cli.output import emit, fail, hint, json_option
from tasker_host.cli.serve import LOG_LEVELS
from tasker_host.cli.state import CliState, pass_state
from tasker_host.cli.tables import SHORT_ID, task_detail, task_list
from tasker_host.cli.watch import Screen, watch
from tasker_host.engine.outage import CREATE_TRIES, Backoff, creation_backoff
from tasker_host.engine.supervise import run_supervised
from tasker_host.errors import ConfigurationError, StoreUnavailableError, TaskerError
from tasker_host.host import Host, build_host
from tasker_host.models import TaskState
from tasker_host.versions import split_reference
from tasker_host.views import task_doc

worker_log = logging.getLogger("tasker_host.worker")  # start, signals, stop: lines in the --log-format

if TYPE_CHECKING:
    from tasker_host.cli.backend import Backend



def read_json_option(text: str, what: str) -> Any:
    """A JSON option's value (``--context``, ``--payload``...): inline JSON, ``@file.json``, or
    ``-`` for standard input; errors name ``what`` and where it came from."""
    source = "standard input" if text == "-" else (text[1:] if text.startswith("@") else f"--{what}")
    try:
        raw = sys.stdin.read() if text == "-" else Path(text[1:]).read_text() if text.startswith("@") else text
        return json.loads(raw)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} file {source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{what} from {source} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{what} from {source} is not valid JSON: {exc}") from None


def parse_context(text: str | None) -> dict[str, Any]:
    """``--context`` value: inline JSON, ``@file.json``, or ``-`` for standard input."""
    if not text:
        return {}
    value = read_json_option(text, "context")
    source = "standard input" if text == "-" else (text[1:] if text.startswith("@") else "--context")
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


def open_host_patiently(state: CliState, tracer_provider: Any = None) -> Host:
    """``worker``: a database that cannot be reached yet is waited for (one line when the wait
    starts), so a fleet of workers can start before, or ride out, its database."""
    backoff, failures = Backoff(first=0.5, cap=10.0), 0
    while True:
        try:
            return build_host(state.settings, entry_points=state.entry_points, tracer_provider=tracer_provider)
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
    """Print the final task; exit 1 unless it completed (``run``, ``watch``, ``--wait``)."""
    emit(doc, as_json, render_task)
    if doc["status"] != TaskState.COMPLETE.value:
        raise SystemExit(1)


render_task = task_detail


def create_surely(host: Host, namespace: str, name: str, spec: str | None, context: Any,
                  idempotency_key: str | None) -> Any:
    """Create the task, repeating the creation while the database is unavailable. Always with an
    idempotency key (``cli-<uuid>`` when none is given): a creation whose connection died may have
    been committed, and only the key makes repeating it safe."""
    key = idempotency_key or f"cli-{uuid.uuid4().hex}"
    backoff = creation_backoff()
    for attempt in range(1, CREATE_TRIES + 1):
        try:
            return host.service.create_task(namespace, name, spec, context, idempotency_key=key, actor=Actor.cli())
        except StoreUnavailableError as exc:
            if attempt == CREATE_TRIES:
                raise
            click.echo(f"database unavailable ({exc}); trying again (key {key})", err=True)
            time.sleep(backoff.delay(attempt))
    raise AssertionError("unreachable")


@click.command()
@click.argument("reference", metavar="NAMESPACE.NAME[@SPEC]", shell_complete=complete_reference)
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
    """Run a workflow to completion, showing each step's state and attempts as it happens
    (on a terminal, a step tree redrawn in place; otherwise a line per change, on standard error).

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
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1), help="Tasks per page.")
@click.option("--cursor", metavar="ID", help="The page after this task (printed under each full page).")
@click.option("--all", "everything", is_flag=True, help="Every matching task, no paging.")
@json_option
@pass_state
def list_tasks(state: CliState, namespace: tuple[str, ...], name: str | None, status: str | None,
               limit: int, cursor: str | None, everything: bool, as_json: bool) -> None:
    """List tasks, newest first, a page at a time (the next page's --cursor is printed on
    standard error; --json prints the page's documents only)."""
    backend = backend_for(state, as_json)

    def fetch() -> list[dict[str, Any]]:
        after = backend.expand_id(cursor) if cursor is not None else None
        if not everything:
            return backend.list_tasks(list(namespace) or None, name, status, limit + 1, after)
        found: list[dict[str, Any]] = []
        while page := backend.list_tasks(list(namespace) or None, name, status, 200, after):
            found, after = found + page, page[-1]["id"]
        return found

    found = call(fetch, as_json)
    page = found if everything else found[:limit]
    emit(page, as_json, task_list)
    if len(found) > len(page):
        click.echo(f"more: tasker-host tasks list --cursor {page[-1]['id'][:SHORT_ID]} (or --all)", err=True)


def _action(state: CliState, as_json: bool, task_ref: str, act: Callable[[Backend, str], dict[str, Any]],
            wait: bool = False) -> None:
    """``act(backend, full_id)`` on the task ``task_ref`` names (its id or a unique prefix of it);
    print the task (with ``wait``: once final, exiting like ``run``)."""
    backend = backend_for(state, as_json)
    task = call(lambda: act(backend, backend.expand_id(task_ref)), as_json)
    if wait:
        finish(call(lambda: backend.wait(task["id"]), as_json), as_json)
    else:
        emit(task, as_json, render_task)


wait_option = click.option("--wait", is_flag=True,
                           help="Wait until the task is final (locally: run the engine here); exit like `run`.")


@tasks.command()
@click.argument("task_id")
@json_option
@pass_state
def show(state: CliState, task_id: str, as_json: bool) -> None:
    """Show a task: context, timings, each step's state, attempts, duration, results, last error
    and next retry, and its child tasks. TASK_ID may be any unique prefix of the id."""
    _action(state, as_json, task_id, lambda backend, full_id: backend.get_task(full_id))


@tasks.command()
@click.argument("task_id")
@json_option
@pass_state
def cancel(state: CliState, task_id: str, as_json: bool) -> None:
    """Cancel a task: pending steps never start."""
    _action(state, as_json, task_id, lambda backend, full_id: backend.cancel(full_id))


@tasks.command()
@click.argument("task_id")
@wait_option
@json_option
@pass_state
def retry(state: CliState, task_id: str, wait: bool, as_json: bool) -> None:
    """Retry a task that ended in error: its failed steps start again with fresh attempts
    (counted from 1). With --wait, exits like `run` (1 unless the task completes)."""
    def act(backend: Backend, full_id: str) -> dict[str, Any]:
        task = backend.retry(full_id)
        hint("the failed steps start again with attempts counted from 1 (earlier errors stay in the "
             "task's history)")
        return task

    _action(state, as_json, task_id, act, wait=wait)


@tasks.command("resolve-step")
@click.argument("task_id")
@click.argument("step")
@click.option("--results", "results_arg", metavar="JSON", help="Results dependents will see.")
@wait_option
@json_option
@pass_state
def resolve_step(state: CliState, task_id: str, step: str, results_arg: str | None, wait: bool,
                 as_json: bool) -> None:
    """Mark a failed step as resolved by hand so its dependents can run (they see --results as
    the step's results). With --wait, exits like `run` (1 unless the task completes)."""
    try:
        results = parse_context(results_arg) if results_arg else None
    except TaskerError as exc:
        fail(exc, as_json=as_json)

    def act(backend: Backend, full_id: str) -> dict[str, Any]:
        task = backend.resolve_step(full_id, step, results)
        if results is None:
            _hint_results(task, step)
        return task

    _action(state, as_json, task_id, act, wait=wait)


def _hint_results(task: dict[str, Any], step: str) -> None:
    dependents = [s["name"] for s in task.get("steps", []) if step in s.get("depends_on", [])]
    if dependents:
        hint(f"{', '.join(dependents)} depend(s) on {step} and will see no results from it; if they read "
             f"them, resolve with --results '{{...}}' (the JSON {step} would have returned)")


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
    backend = backend_for(state, as_json)
    full_id = call(lambda: backend.expand_id(task_id), as_json)
    source = backend.watch_source()
    stream = sys.stderr if as_json else sys.stdout
    task = call(lambda: watch(source, full_id, Screen(stream, stream.isatty()), interval), as_json)
    if task is None:
        return fail(f"no task {task_id!r}", as_json=as_json)
    finish(task_doc(task), as_json)


@click.command()
@click.option("--until-idle", is_flag=True,
              help="Exit once nothing is runnable (steps waiting for a retry backoff, an event or a timer "
                   "stay for later).")
@click.option("--grace-seconds", default=30.0, show_default=True, type=click.FloatRange(0),
              help="On SIGTERM / Ctrl-C: how long running steps may take to finish before they are "
                   "released to other workers.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True,
              help="info: a line per task and step transition; warning: failures and retries only.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="key=value lines for people, or one JSON object per line (docs/observability.md).")
@engine_options
@pass_state
def worker(state: CliState, until_idle: bool, grace_seconds: float, log_level: str, log_format: str,
           concurrency: int | None, lease_seconds: float | None, heartbeat_seconds: float | None,
           poll_seconds: float | None, namespace_limits: tuple[str, ...]) -> None:
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
    from tasker_host.api.access_log import configured_logging

    state.settings = with_engine_options(state.settings, concurrency, lease_seconds, poll_seconds,
                                         namespace_limits, heartbeat_seconds)
    with configured_logging(log_level, log_format):
        _worker(state, until_idle, grace_seconds)


def _worker(state: CliState, until_idle: bool, grace_seconds: float) -> None:
    from tasker_host.engine.transition_log import TransitionLog
    from tasker_host.trace_setup import shutdown, tracer_provider_from_env

    try:
        provider = tracer_provider_from_env()  # the [otel] extra, when OTEL_* variables ask for traces
    except ConfigurationError as exc:
        fail(exc)
        return
    host = open_host_patiently(state, provider)
    transitions = TransitionLog()
    transitions.attach(host.events)  # a line per task and step transition
    tune_gc()
    worker_log.info("worker %s running (%d namespaces, %d templates)", host.engine.config.owner,
                    len(host.registry.namespaces), host.registry.template_count)
    anyio.run(_work, host, until_idle, grace_seconds)
    shutdown(provider)
    worker_log.info("worker stopped: %s", transitions.tally())


async def _work(host: Host, until_idle: bool, grace_seconds: float) -> None:
    stop = anyio.Event()

    async def on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for received in signals:
                worker_log.info("%s: finishing running steps (up to %gs), claiming nothing new",
                                signal.Signals(received).name, grace_seconds)
                stop.set()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(on_signal)
        await run_supervised(host.engine, stop, grace_seconds=grace_seconds, until_idle=until_idle)
        tg.cancel_scope.cancel()
    host.close()


COMMANDS = (run, tasks, worker)
