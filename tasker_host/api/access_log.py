"""One structured log line per request, and the formatter the ``serve`` command installs.

Routes add what they learn (principal, task id, namespace, correlation id) with :func:`note`;
:class:`AccessLogMiddleware` logs ``method, path, status, duration_ms`` plus those fields on the
``tasker_host.api.access`` logger, counts the request in the app's metrics and echoes the
correlation id in an ``X-Correlation-Id`` response header. Nothing is configured at import:
:func:`configure_logging` is called by ``tasker-host serve``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import get_current_span
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.api.metrics import Metrics

ACCESS_LOGGER = "tasker_host.api.access"
_SCOPE_KEY = "tasker.access"
_CORRELATION = re.compile(r"[\w.:/@+=-]{1,200}")


@dataclass
class RequestFields:
    principal: str | None = None
    task_id: str | None = None
    namespace: str | None = None
    correlation_id: str | None = None


def note(request: Request, **fields: Any) -> None:
    """Record fields for this request's access-log line (unknown names are ignored)."""
    current: RequestFields | None = request.scope.get(_SCOPE_KEY)
    if current is None:
        return
    for key, value in fields.items():
        if hasattr(current, key) and value is not None and (key != "correlation_id" or not current.correlation_id):
            setattr(current, key, value)


def note_task(request: Request, task: Any) -> None:
    note(request, task_id=task.id, namespace=task.namespace, correlation_id=task.correlation_id)


def correlation_header(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-correlation-id":
            text = value.decode("latin-1").strip()
            return text if _CORRELATION.fullmatch(text) else None
    return None


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics | None = None):
        self.app, self.metrics = app, metrics
        self.log = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fields = scope[_SCOPE_KEY] = RequestFields(correlation_id=correlation_header(scope))
        started, status = time.perf_counter(), 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if fields.correlation_id:
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"],
                                          (b"x-correlation-id", fields.correlation_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self._finish(scope, fields, status, time.perf_counter() - started)

    def _finish(self, scope: Scope, fields: RequestFields, status: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_request(scope["method"], status, seconds)
        line = {"method": scope["method"], "path": scope["path"], "status": status,
                "duration_ms": round(seconds * 1000, 3),
                **{k: v for k, v in asdict(fields).items() if v is not None}}
        if (sc := get_current_span().get_span_context()).is_valid:  # the request's trace (api/tracing.py)
            line["trace_id"] = f"{sc.trace_id:032x}"
        self.log.info("%s %s %s", scope["method"], scope["path"], status, extra={"fields": line})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's ``fields``, and the
    exception text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        doc.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class KeyValueFormatter(logging.Formatter):
    """``time=... level=info logger=... msg="..." method=GET status=200 ...`` (for people)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {"time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
                  "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
                  **(getattr(record, "fields", None) or {})}
        text = " ".join(f"{k}={_kv(v)}" for k, v in fields.items())
        return text + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


def _kv(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=') else text


def configure_logging(level: str = "info", fmt: str = "json") -> logging.Handler:
    """Send every log record (ours and uvicorn's) to stderr, one structured line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    if root.level > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # its start-up chatter is for debugging
    return handler


@contextmanager
def configured_logging(level: str = "info", fmt: str = "json") -> Iterator[logging.Handler]:
    """:func:`configure_logging` for the length of a command, then the root logger as it was
    (a command run in process, e.g. by a test, leaves the logging configuration alone)."""
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    handler = configure_logging(level, fmt)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for existing in handlers:
            root.addHandler(existing)
        root.setLevel(root_level)
