"""Where the task and catalogue commands get their data: :class:`LocalBackend` opens the database
and runs the engine in this process (``host.service``); :class:`RemoteBackend` calls a running
host's REST API (``--server``). Both answer the same documents (:mod:`tasker_host.views`, which
the API serves), so a command renders and exits alike in both modes. :func:`local_only` makes the
commands that need the database refuse remote mode."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import click
from packaging.version import Version

from tasker_host.audit import Actor
from tasker_host.cli.remote import RemoteStoreView, RemoteTasks
from tasker_host.cli.state import CliState
from tasker_host.cli.watch import Screen, load
from tasker_host.errors import TaskerError
from tasker_host.store.base import TaskFilter
from tasker_host.versions import VersionRequest, split_reference
from tasker_host.views import task_doc

MAX_CHILDREN = 500  # as many child ids as GET /tasks/{id} lists


class Backend(Protocol):
    def create(self, namespace: str, name: str, spec: str | None, context: Any,
               idempotency_key: str | None) -> dict[str, Any]: ...
    def expand_id(self, ref: str) -> str: ...
    def get_task(self, task_id: str) -> dict[str, Any]: ...
    def list_tasks(self, namespaces: list[str] | None, name: str | None, status: str | None,
                   limit: int, after_id: str | None = None) -> list[dict[str, Any]]: ...
    def cancel(self, task_id: str) -> dict[str, Any]: ...
    def retry(self, task_id: str) -> dict[str, Any]: ...
    def resolve_step(self, task_id: str, step: str, results: Any) -> dict[str, Any]: ...
    def send_event(self, task_id: str, name: str, payload: Any, idempotency_key: str | None) -> dict[str, Any]: ...
    def wait(self, task_id: str, progress: bool = False) -> dict[str, Any]: ...
    def watch_source(self) -> Any: ...
    def catalogue(self, namespace: str | None, name: str | None, spec: str | None) -> dict[str, Any]: ...
    def resolve(self, reference: str) -> dict[str, Any]: ...
    def versions(self, namespace: str | None, name: str | None, days: int) -> dict[str, Any]: ...
    def audit(self, namespaces: list[str] | None, since: float | None, limit: int) -> list[dict[str, Any]]: ...


class LocalBackend:
    """This process: the database, the installed plugins and (for waits) the engine."""

    def __init__(self, state: CliState, as_json: bool):
        from tasker_host.cli import tasks  # noqa: PLC0415 (tasks imports this module)

        self._tasks, self.state, self.as_json = tasks, state, as_json
        self._host: Any = None

    @property
    def host(self) -> Any:
        if self._host is None:
            self._host = self._tasks.open_host(self.state, self.as_json)
        return self._host

    def create(self, namespace: str, name: str, spec: str | None, context: Any,
               idempotency_key: str | None) -> dict[str, Any]:
        created = self._tasks.create_surely(self.host, namespace, name, spec, context, idempotency_key)
        return task_doc(created.task)

    def expand_id(self, ref: str) -> str:
        return str(self.host.service.expand_task_id(ref))

    def get_task(self, task_id: str) -> dict[str, Any]:
        """As ``GET /tasks/{id}``: the task with its steps and its child tasks' ids."""
        service = self.host.service
        task = service.get_task(task_id)
        return task_doc(task) | {"children": [c.id for c in service.children(task.id, MAX_CHILDREN)]}

    def list_tasks(self, namespaces: list[str] | None, name: str | None, status: str | None,
                   limit: int, after_id: str | None = None) -> list[dict[str, Any]]:
        """Newest first; the page after ``after_id``."""
        from tasker_host.models import TaskState

        query = TaskFilter(namespaces=namespaces, name=name, status=TaskState(status) if status else None,
                           limit=limit, newest_first=True, after_id=after_id)
        return [task_doc(t, with_steps=False) for t in self.host.service.list_tasks(query)]

    def cancel(self, task_id: str) -> dict[str, Any]:
        return task_doc(self.host.service.cancel_task(task_id, actor=Actor.cli()))

    def retry(self, task_id: str) -> dict[str, Any]:
        return task_doc(self.host.service.retry_task(task_id, actor=Actor.cli()))

    def resolve_step(self, task_id: str, step: str, results: Any) -> dict[str, Any]:
        return task_doc(self.host.service.resolve_step(task_id, step, results, actor=Actor.cli()))

    def send_event(self, task_id: str, name: str, payload: Any, idempotency_key: str | None) -> dict[str, Any]:
        """As ``POST /tasks/{id}/events/{name}`` (the local user may do anything, as elsewhere)."""
        from tasker_host.store.waits import SendStatus

        result = self.host.service.send_event(task_id, name, payload, idempotency_key=idempotency_key,
                                              sender="cli", actor=Actor.cli())
        return {**result.event.as_dict(), "woke": result.woke, "duplicate": result.status is SendStatus.DUPLICATE}

    def wait(self, task_id: str, progress: bool = False) -> dict[str, Any]:
        """Run the engine here until the task is final (with the live progress lines)."""
        if progress:  # on a terminal the step tree redrawn in place; else a line per change
            from tasker_host.cli.progress import ProgressView
            from tasker_host.cli.watch import LiveTree

            live = sys.stderr.isatty()
            self.host.events.subscribe(LiveTree(self.host.store, task_id, Screen(sys.stderr, True)) if live
                                       else ProgressView(task_id))
        return task_doc(anyio.run(self._tasks.drive, self.host, task_id))

    def watch_source(self) -> Any:
        return self.host.store

    def audit(self, namespaces: list[str] | None, since: float | None, limit: int) -> list[dict[str, Any]]:
        """The audit trail, newest first (the database's every row: local access is the operator's)."""
        from tasker_host.audit import AuditFilter, audit_doc

        query = AuditFilter(namespaces=namespaces, since=since, limit=limit)
        return [audit_doc(r) for r in self.host.service.list_audit(query)]

    def catalogue(self, namespace: str | None, name: str | None, spec: str | None) -> dict[str, Any]:
        from tasker_host.cli.catalog import _catalogue

        return _catalogue(self._registry(), namespace, name, spec)

    def resolve(self, reference: str) -> dict[str, Any]:
        from tasker_host.cli.catalog import resolved_doc

        return resolved_doc(self._registry(), reference)

    def versions(self, namespace: str | None, name: str | None, days: int) -> dict[str, Any]:
        """As ``GET /versions[/{namespace}[/{name}]]`` (every namespace: this process is an admin)."""
        from tasker_host.drain import versions_doc

        host = self.host
        stats = host.service.version_stats([namespace] if namespace else None, days)
        scope = [namespace] if namespace else sorted(set(host.registry.namespaces) | {k[0] for k in stats.versions()})
        doc = versions_doc(host.registry, stats, days=days, now=host.clock.now(), namespaces=scope, name=name)
        if namespace is not None and not doc["versions"]:  # nothing installed, no tasks
            host.registry.namespace(namespace)  # the precise error (unknown, quarantined)
            host.registry.resolve(namespace, name or "")  # ... listing the namespace's templates
        return doc

    def _registry(self) -> Any:
        from tasker_host.host import open_catalog

        return open_catalog(self.state.settings, entry_points=self.state.entry_points).registry


class RemoteBackend:
    """A running host's REST API; waits poll ``GET /tasks/{id}`` (its engine runs the task)."""

    SUMMARY = ("id", "namespace", "version", "full_name", "description", "step_count", "step_names",
               "available_versions")

    def __init__(self, remote: RemoteTasks):
        self.remote = remote

    def create(self, namespace: str, name: str, spec: str | None, context: Any,
               idempotency_key: str | None) -> dict[str, Any]:
        created = self.remote.create(namespace, name, spec, context, idempotency_key,
                                     on_retry=lambda line: click.echo(line, err=True))
        return self.remote.get_task(created["id"])  # the creation answers without steps

    def expand_id(self, ref: str) -> str:
        return self.remote.expand_id(ref)

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self.remote.get_task(task_id)

    def list_tasks(self, namespaces: list[str] | None, name: str | None, status: str | None,
                   limit: int, after_id: str | None = None) -> list[dict[str, Any]]:
        return self.remote.list_tasks(namespaces, name, status, limit, after_id)

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self.remote.cancel(task_id)

    def retry(self, task_id: str) -> dict[str, Any]:
        return self.remote.retry(task_id)

    def resolve_step(self, task_id: str, step: str, results: Any) -> dict[str, Any]:
        return self.remote.resolve_step(task_id, step, results)

    def send_event(self, task_id: str, name: str, payload: Any, idempotency_key: str | None) -> dict[str, Any]:
        return self.remote.send_event(task_id, name, payload, idempotency_key)

    def wait(self, task_id: str, progress: bool = False) -> dict[str, Any]:
        """Poll until the task is final; with ``progress``, a line per step change on stderr."""
        if not progress:
            return self.remote.wait(task_id)
        view, screen = RemoteStoreView(self.remote), Screen(sys.stderr, False)

        def show(doc: dict[str, Any]) -> None:
            if (node := load(view, doc["id"])) is not None:  # type: ignore[arg-type]  # a store view
                screen.show(node)

        return self.remote.wait(task_id, on_poll=show)

    def watch_source(self) -> Any:
        return RemoteStoreView(self.remote)

    def audit(self, namespaces: list[str] | None, since: float | None, limit: int) -> list[dict[str, Any]]:
        return self.remote.audit(namespaces, since, limit)

    def catalogue(self, namespace: str | None, name: str | None, spec: str | None) -> dict[str, Any]:
        if namespace is None:
            names = [ns["namespace"] for ns in self.remote.catalogue()["namespaces"]]
            return {"namespaces": [self.remote.namespace(ns) for ns in names]}
        if name is None:
            return {"namespaces": [self.remote.namespace(namespace)]}
        chosen = self.remote.template(namespace, name, spec)  # the precise resolution error
        ns = self.remote.namespace(namespace)
        ns["handlers"] = [t for t in ns["handlers"] if t["id"] == name and (
            spec is None or t["version"] == chosen["version"] or _matches(t["version"], spec))]
        return {"namespaces": [ns]}

    def versions(self, namespace: str | None, name: str | None, days: int) -> dict[str, Any]:
        return self.remote.versions(namespace, name, days)

    def resolve(self, reference: str) -> dict[str, Any]:
        namespace, name, spec = split_reference(reference)
        doc = self.remote.template(namespace, name, spec)
        return {"request": reference, **{k: doc[k] for k in self.SUMMARY}, "provider": doc.get("provider")}


def _matches(version: str, spec: str) -> bool:
    return VersionRequest.parse(spec).select([Version(version)]) is not None


def backend_for(state: CliState, as_json: bool) -> Backend:
    """The remote backend with ``--server`` / ``--profile``, else the local one."""
    if state.remote is None:
        return LocalBackend(state, as_json)
    return RemoteBackend(RemoteTasks(state.remote.server, state.remote.token))


def local_only(command: click.Command, name: str) -> click.Command:
    """Make ``command`` (a sub-command of a group too) refuse remote mode with a clear error."""
    if isinstance(command, click.Group):
        for sub_name, sub in command.commands.items():
            local_only(sub, f"{name} {sub_name}")
        return command
    callback = command.callback
    assert callback is not None
    if getattr(callback, "local_only", False):  # build_cli() runs once per CLI built (tests: many)
        return command

    @functools.wraps(callback)
    def refusing(*args: Any, **kwargs: Any) -> Any:
        state = click.get_current_context().find_object(CliState)
        if state is not None and state.remote is not None:
            raise click.UsageError(f"`{name}` talks to the database directly; it cannot run with --server "
                                   f"(or a profile): run it where the database is reachable")
        return callback(*args, **kwargs)

    refusing.local_only = True  # type: ignore[attr-defined]
    command.callback = refusing
    return command


def call(fn: Callable[[], Any], as_json: bool) -> Any:
    """``fn()``, a :class:`TaskerError` reported as local mode reports it (exit 1)."""
    from tasker_host.cli.output import fail

    try:
        return fn()
    except TaskerError as exc:
        fail(exc, as_json=as_json)
