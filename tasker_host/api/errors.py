"""Every error the API reports, and the ONE table that turns exceptions into responses.

Every 4xx/5xx body has the same shape::

    {"error": "<code>", "message": "<what went wrong>", "problems": [{"path": ..., "message": ...}]}

plus ``"available"`` (what does exist) for unknown namespaces, templates and versions.

Status codes (see ``ERROR_TABLE``; :class:`ApiError` carries its own):

====  ==========================  =====================================================================
400   ``malformed_json``          the body is not JSON (or not UTF-8, or uses NaN/Infinity)
400   ``bad_request``             e.g. a Content-Length that is not a number
401   ``unauthorized``            no / unknown / revoked bearer token
403   ``forbidden``               the principal may see the namespace but not act in it
404   ``not_found``               no such task or step — or one in a namespace the principal cannot view
404   ``unknown_namespace``       (also: a namespace the principal cannot view), with ``available``
404   ``unknown_template``        with ``available`` template names
404   ``no_matching_version``     with ``available`` versions
405   ``method_not_allowed``
409   ``invalid_state``           e.g. retrying a task that is not in error
409   ``task_ended``              an event sent to a task that is complete, cancelled or resolved
409   ``idempotency_conflict``    an ``Idempotency-Key`` reused for a different request
410   ``version_sunset``          the only version the request matches reached its sunset day: it refuses
                                  new tasks; ``sunset`` names the version, its day, ``replaced_by`` and the
                                  installed ``replacement`` (``available``: its version)
413   ``payload_too_large``
415   ``unsupported_media_type``  a body that is not ``application/json``
422   ``invalid_request``         wrong field types, unknown fields or query parameters, bad version spec,
                                  bad Idempotency-Key, values that cannot be stored (NUL, lone surrogates,
                                  1e400, nesting deeper than 64: see tasker_host.values)
422   ``invalid_context``         the context violates the template's schema (every violation listed)
422   ``invalid_event``           an event's payload violates the schema declared for it (every violation)
500   ``internal_error``          a bug: logged with its traceback; the body says nothing more
503   ``namespace_quarantined``   (``--on-conflict quarantine``) plugins conflict over the namespace, so it
                                  is not served; ``problems`` names every claimant (only to principals
                                  that may view the namespace; others get ``unknown_namespace``)
503   ``database_unavailable``    the database cannot be reached now (connection lost, server restarting,
                                  locked beyond its timeout); ``Retry-After`` says when to try again. A
                                  create may or may not have been written: repeat it with the same
                                  ``Idempotency-Key`` (200 with the task if it was)
====  ==========================  =====================================================================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from tasker_host.api.responses import JSONResponse
from tasker_host.api.state import api_of
from tasker_host.errors import (
    ConfigurationError,
    InvalidContextError,
    InvalidEventError,
    InvalidStateError,
    InvalidValueError,
    InvocationDeniedError,
    NoMatchingVersionError,
    QuarantinedNamespaceError,
    RequestError,
    ResolutionError,
    StoreUnavailableError,
    TaskEndedError,
    TaskerError,
    TaskNotFoundError,
    UnknownNamespaceError,
    UnknownTemplateError,
    VersionSunsetError,
)

log = logging.getLogger("tasker_host.api")


class ApiError(Exception):
    """A request the API refuses, with its status, code, message and problems."""

    def __init__(self, status: int, code: str, message: str, *, problems: Sequence[dict[str, Any]] = (),
                 available: Sequence[str] | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.extra = extra  # more members of the body (e.g. ``sunset``)
        self.problems = list(problems)
        self.available = None if available is None else list(available)
        self.headers = headers


def problem(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="tasker"'})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def invalid_request(message: str, problems: Sequence[dict[str, Any]]) -> ApiError:
    return ApiError(422, "invalid_request", message, problems=problems)


#: The exception → (status, code) table. First match in order (subclasses before their bases).
ERROR_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (InvalidContextError, 422, "invalid_context"),
    (InvalidEventError, 422, "invalid_event"),
    (TaskEndedError, 409, "task_ended"),
    (InvalidValueError, 422, "invalid_request"),
    (TaskNotFoundError, 404, "not_found"),
    (InvalidStateError, 409, "invalid_state"),
    (InvocationDeniedError, 403, "forbidden"),
    (UnknownNamespaceError, 404, "unknown_namespace"),
    (QuarantinedNamespaceError, 503, "namespace_quarantined"),
    (StoreUnavailableError, 503, "database_unavailable"),  # the deployment's fault, not the client's
    (UnknownTemplateError, 404, "unknown_template"),
    (VersionSunsetError, 410, "version_sunset"),
    (NoMatchingVersionError, 404, "no_matching_version"),
    (ConfigurationError, 422, "invalid_request"),
    (RequestError, 400, "bad_request"),
)

RETRY_AFTER_SECONDS = 1  # what a 503 database_unavailable asks clients to wait
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type"}


def as_api_error(exc: BaseException) -> ApiError:
    """The :class:`ApiError` an exception stands for (``internal_error`` when nothing matches)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None)
    if isinstance(exc, StoreUnavailableError):
        return ApiError(503, "database_unavailable", f"the database is unavailable, try again: {exc}",
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    for cls, status, code in ERROR_TABLE:
        if isinstance(exc, cls):
            return ApiError(status, code, str(exc), problems=_problems_of(exc), available=_available_of(exc),
                            extra={"sunset": exc.as_dict()} if isinstance(exc, VersionSunsetError) else None)
    return ApiError(500, "internal_error", "internal server error (logged)")


def _problems_of(exc: BaseException) -> list[dict[str, Any]]:
    if isinstance(exc, (InvalidContextError, InvalidEventError)):
        return [dict(v) for v in exc.violations]
    if isinstance(exc, InvalidValueError):
        return [p.as_dict() for p in exc.problems]
    if isinstance(exc, QuarantinedNamespaceError):
        return [problem("namespace", f"claimed by {p}") for p in exc.providers]
    return []


def _available_of(exc: BaseException) -> list[str] | None:
    if isinstance(exc, QuarantinedNamespaceError):
        return None
    return list(exc.available) if isinstance(exc, ResolutionError) else None


def error_body(error: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error.code, "message": error.message, "problems": error.problems}
    if error.available is not None:
        body["available"] = error.available
    body.update(error.extra or {})
    return body


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status, headers=error.headers)


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """The one exception handler (registered for every class in the table, and for 500s)."""
    error = as_api_error(exc)
    if error.code == "database_unavailable":
        api_of(request).outage.failed(exc, time.time())  # logs once per outage
    elif error.status >= 500:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(error)


async def handle_disconnect(request: Request, exc: Exception) -> Response:
    """The client went away mid-request (nothing was written): not a server error."""
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=499)


def exception_handlers() -> dict[Any, Any]:
    """Starlette's ``exception_handlers``: every class of the table, HTTP errors and the rest."""
    handlers: dict[Any, Any] = {cls: handle_error for cls, _, _ in ERROR_TABLE}
    handlers[ClientDisconnect] = handle_disconnect
    handlers.update({ApiError: handle_error, HTTPException: handle_error, TaskerError: handle_error,
                     Exception: handle_error})
    return handlers
