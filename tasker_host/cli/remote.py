"""The CLI's REST client for remote mode (``--server``): the task and catalogue calls of the API
(docs/api.md) with httpx, answering the API's JSON documents. An error answer becomes the
:class:`~tasker_host.errors.TaskerError` local mode raises for the same case (same ``--json``
``error`` name), or :class:`~tasker_host.errors.RemoteRequestError` (401/403, unreachable server)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from tasker_host.api.requests import encode_cursor
from tasker_host.engine.outage import CREATE_TRIES, Backoff, creation_backoff
from tasker_host.errors import (
    AmbiguousTaskIdError,
    InvalidContextError,
    InvalidStateError,
    NoMatchingVersionError,
    QuarantinedNamespaceError,
    RemoteRequestError,
    RequestError,
    StoreUnavailableError,
    TaskEndedError,
    TaskerError,
    TaskNotFoundError,
    UnknownNamespaceError,
    UnknownTemplateError,
    VersionSunsetError,
)
from tasker_host.models import StepState, TaskState
from tasker_host.remote import retry_after
from tasker_host.store.base import StepRecord, TaskRecord

PAGE = 200  # the API's largest page
FULL_ID = 36  # a task id (a UUID); anything shorter is a prefix
ENDED = frozenset({"complete", "error", "cancelled", "resolved_manually"})
_RESOLUTION = {"unknown_namespace": UnknownNamespaceError, "unknown_template": UnknownTemplateError,
               "no_matching_version": NoMatchingVersionError}
_PLAIN: dict[str, type[TaskerError]] = {"not_found": TaskNotFoundError, "invalid_state": InvalidStateError,
                                        "database_unavailable": StoreUnavailableError,
                                        "invalid_request": RequestError, "idempotency_conflict": RequestError,
                                        "task_ended": TaskEndedError, "invalid_event": RequestError}


class RemoteTasks:
    """One server, one token. ``transport`` and ``sleep`` are for tests."""

    def __init__(self, server: str, token: str, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 30.0):
        self.server, self.sleep = server.rstrip("/"), sleep
        self.client = httpx.Client(base_url=self.server, headers={"Authorization": f"Bearer {token}"},
                                   timeout=timeout, transport=transport)

    def close(self) -> None:
        self.client.close()

    # -- tasks ------------------------------------------------------------------------------------

    def create(self, namespace: str, name: str, spec: str | None, context: Any,
               idempotency_key: str | None = None, on_retry: Callable[[str], None] | None = None) -> dict[str, Any]:
        """``POST /tasks`` with an ``Idempotency-Key`` (``cli-<uuid>`` unless given), repeated with the
        same key on 503 or a lost connection (``Retry-After`` honoured, else backoff)."""
        key = idempotency_key or f"cli-{uuid.uuid4().hex}"
        body: dict[str, Any] = {"namespace": namespace, "name": name, "context": context}
        if spec is not None:
            body["version"] = spec
        backoff = creation_backoff()
        for attempt in range(1, CREATE_TRIES + 1):
            try:
                response = self.client.post("/tasks", json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError as exc:
                if attempt == CREATE_TRIES:
                    raise self._unreachable(exc) from None
                wait, why = backoff.delay(attempt), f"cannot reach {self.server} ({exc})"
            else:
                if response.status_code != 503 or attempt == CREATE_TRIES:
                    return self._document(response)
                wait = retry_after(response.headers.get("Retry-After"), time.time()) or backoff.delay(attempt)
                why = f"server unavailable ({_message(response)})"
            if on_retry is not None:
                on_retry(f"{why}; trying again in {wait:.1f}s (key {key})")
            self.sleep(wait)
        raise AssertionError("unreachable")

    def get_task(self, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"/tasks/{task_id}")

    def expand_id(self, ref: str) -> str:
        """The full id a unique prefix names (``GET /tasks?id_prefix=``); a full id as it is."""
        if len(ref) >= FULL_ID:
            return ref
        found = [t["id"] for t in self._call("GET", "/tasks", params={"id_prefix": ref, "limit": 6})["tasks"]]
        if len(found) > 1:
            raise AmbiguousTaskIdError(ref, found)
        if not found:
            raise TaskNotFoundError(f"no task {ref!r}")
        return str(found[0])

    def list_tasks(self, namespaces: list[str] | None, name: str | None, status: str | None,
                   limit: int, after_id: str | None = None) -> list[dict[str, Any]]:
        """Newest first, the page after ``after_id``, through the API's cursor."""
        params: list[tuple[str, str | int | float]] = [("namespace", ns) for ns in namespaces or []]
        params += [(k, v) for k, v in (("name", name), ("status", status)) if v]
        params.append(("order", "newest"))
        return self._pages("/tasks", "tasks", params, limit, encode_cursor(after_id) if after_id else None)

    def audit(self, namespaces: list[str] | None, since: float | None, limit: int) -> list[dict[str, Any]]:
        """``GET /audit``, newest first, following the cursor until ``limit`` rows."""
        params: list[tuple[str, str | int | float]] = [("namespace", ns) for ns in namespaces or []]
        if since is not None:
            params.append(("since", since))
        return self._pages("/audit", "entries", params, limit)

    def _pages(self, path: str, key: str, params: list[tuple[str, str | int | float]], limit: int,
               cursor: str | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` documents of a cursor-paged list (``{key: [...], "next_cursor"}``)."""
        docs: list[dict[str, Any]] = []
        while len(docs) < limit:
            page = self._call("GET", path, params=[*params, *([("cursor", cursor)] if cursor else []),
                                                   ("limit", min(PAGE, limit - len(docs)))])
            docs += page[key]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return docs

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/tasks/{task_id}")

    def retry(self, task_id: str) -> dict[str, Any]:
        return self._call("POST", f"/tasks/{task_id}/retry")

    def resolve_step(self, task_id: str, step: str, results: Any) -> dict[str, Any]:
        body = {} if results is None else {"results": results}
        return self._call("POST", f"/tasks/{task_id}/steps/{step}/resolve", json=body)

    def send_event(self, task_id: str, name: str, payload: Any, idempotency_key: str | None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", f"/tasks/{task_id}/events/{name}", json=payload, headers=headers)

    def wait(self, task_id: str, on_poll: Callable[[dict[str, Any]], None] | None = None,
             first: float = 0.1, cap: float = 2.0) -> dict[str, Any]:
        """Poll ``GET /tasks/{id}`` (backoff from ``first`` to ``cap`` seconds) until the task ends; a
        503 (the server's database away for a moment) is waited out like a task still running."""
        backoff = Backoff(first=first, cap=cap)
        for polls in range(1, 1 << 62):
            try:
                doc = self.get_task(task_id)
            except StoreUnavailableError:
                self.sleep(backoff.delay(polls))
                continue
            if on_poll is not None:
                on_poll(doc)
            if doc["status"] in ENDED:
                return doc
            self.sleep(backoff.delay(polls))
        raise AssertionError("unreachable")

    # -- catalogue -----------------------------------------------------------------------------

    def catalogue(self) -> dict[str, Any]:
        return self._call("GET", "/handlers")

    def namespace(self, namespace: str) -> dict[str, Any]:
        return self._call("GET", f"/handlers/{namespace}")

    def template(self, namespace: str, name: str, spec: str | None) -> dict[str, Any]:
        return self._call("GET", f"/handlers/{namespace}/{name}", params={"version": spec} if spec else None)

    def versions(self, namespace: str | None, name: str | None, days: int) -> dict[str, Any]:
        path = "/versions" + "".join(f"/{part}" for part in (namespace, name) if part)
        return self._call("GET", path, params={"days": str(days)})

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            response = self.client.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        return self._document(response)

    def _document(self, response: httpx.Response) -> Any:
        if response.is_success:
            return response.json()
        raise error_of(response, self.server)

    def _unreachable(self, exc: Exception) -> RemoteRequestError:
        return RemoteRequestError(f"cannot reach {self.server}: {exc}")


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(response: httpx.Response) -> str:
    return str(_body(response).get("message") or response.text.strip()[:200] or response.reason_phrase)


def error_of(response: httpx.Response, server: str) -> TaskerError:
    """The error an API error answer stands for (docs/api.md, Errors)."""
    body, status = _body(response), response.status_code
    code, message = str(body.get("error", "http_error")), _message(response)
    available = [str(a) for a in body.get("available") or []]
    if code in _RESOLUTION:
        hint = f" (this token may view: {', '.join(available) or 'none'})" if code == "unknown_namespace" else ""
        return _RESOLUTION[code](message + hint, available=available)
    if code == "version_sunset" and isinstance(body.get("sunset"), dict):
        gone = body["sunset"]
        return VersionSunsetError(str(gone.get("version")), sunset=str(gone.get("sunset")),
                                  replaced_by=gone.get("replaced_by"), replacement=gone.get("replacement"),
                                  replacement_version=available[0] if available else None)
    if code == "namespace_quarantined":
        return QuarantinedNamespaceError(message, providers=[p.get("message", "") for p in body.get("problems", [])])
    if code == "invalid_context":
        error = InvalidContextError.__new__(InvalidContextError)
        TaskerError.__init__(error, message)
        error.violations = tuple(body.get("problems") or ())
        return error
    if code in _PLAIN:
        return _PLAIN[code](message)
    if status == 401:
        message += f"; log in again: tasker-host login {server} (or pass --token)"
    return RemoteRequestError(f"{server} answered {status} {code}: {message}", status=status, code=code)


# -- documents back to records (for the watch view, which draws records) -------------------------

def _ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def record_of(doc: dict[str, Any]) -> TaskRecord:
    """A :class:`TaskRecord` with what a task document holds (no template, no leases)."""
    steps = [StepRecord(task_id=doc["id"], name=s["name"], state=StepState(s["state"]), attempts=s["attempts"],
                        retry_limit=s["retry_limit"], retryable=True, depends_on=tuple(s["depends_on"]),
                        dependents=(), pending_deps=0, ready_at=_ts(s.get("retry_at")), results=s.get("results"),
                        last_error=s.get("last_error"), started_at=_ts(s.get("started_at")),
                        completed_at=_ts(s.get("completed_at")), wait=s.get("waiting_for"))
             for s in doc.get("steps", [])]
    return TaskRecord(id=doc["id"], namespace=doc["namespace"], name=doc["name"], version=doc["version"],
                      status=TaskState(doc["status"]), context=doc["context"], template={},
                      created_at=_ts(doc["created_at"]) or 0.0, updated_at=_ts(doc["updated_at"]) or 0.0,
                      provenance=doc.get("provider"), correlation_id=doc.get("correlation_id"),
                      parent_task_id=doc.get("parent_task_id"), parent_step=doc.get("parent_step"),
                      error=doc.get("error"), completed_at=_ts(doc.get("completed_at")), steps=steps)


class RemoteStoreView:
    """What :func:`tasker_host.cli.watch.load` reads from a store (``get_task``, child tasks by
    ``parent_task_id``), answered by the API."""

    def __init__(self, remote: RemoteTasks):
        self.remote = remote
        self._children: dict[str, list[str]] = {}

    def get_task(self, task_id: str) -> TaskRecord | None:
        try:
            doc = self.remote.get_task(task_id)
        except TaskNotFoundError:
            return None
        self._children[doc["id"]] = list(doc.get("children") or [])
        return record_of(doc)

    def list_tasks(self, query: Any) -> list[TaskRecord]:
        ids = self._children.get(query.parent_task_id or "", [])[: query.limit]
        return [r for r in (self.get_task(i) for i in ids) if r is not None]
