"""Validating request documents and query strings into plain values, collecting EVERY problem
before anything is looked up or written (one 422 lists them all)."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import Headers, QueryParams

from tasker_host.api.body import json_type, require_object
from tasker_host.api.errors import invalid_request, problem
from tasker_host.errors import ConfigurationError
from tasker_host.models import TaskState
from tasker_host.values import key_path, value_problems
from tasker_host.versions import VersionRequest

MAX_NAME = 200  # column width of namespace / name / idempotency key
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
CREATE_FIELDS = ("name", "namespace", "version", "context")
LIST_PARAMS = ("namespace", "name", "version", "status", "created_after", "created_before", "limit", "cursor",
               "order", "id_prefix")
ORDERS = ("oldest", "newest")
_CURSOR_PREFIX = "t1:"
#: base64url of "t1:" + the id, unpadded: every string of this shape decodes
CURSOR_PATTERN = re.compile(r"dDE6(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?")


@dataclass(frozen=True, slots=True)
class CreateRequest:
    namespace: str
    name: str
    version: str | None  # as requested: exact, a range, or None (newest stable)
    context: dict[str, Any]


def parse_create(body: Any) -> CreateRequest:
    """``{"name", "namespace", "version"?, "context"?}`` or the Tasker-style ``{"task": {...}}``."""
    doc, root = require_object(body), ""
    if set(doc) == {"task"}:
        doc, root = require_object(doc["task"], "'task'"), "task"
    prefix = root + "." if root else ""
    problems = [problem(key_path(root, k), "unknown field (expected name, namespace, version, context)")
                for k in doc if k not in CREATE_FIELDS]
    namespace = _identifier(doc, "namespace", prefix, problems)
    name = _identifier(doc, "name", prefix, problems)
    version = _version(doc.get("version"), prefix + "version", problems)
    context = doc.get("context")
    if context is None:
        context = {}
    elif not isinstance(context, dict):
        problems.append(problem(prefix + "context", f"must be an object, not {json_type(context)}"))
    problems += storable_problems(doc, root, CREATE_FIELDS)
    if problems:
        raise invalid_request(f"invalid task request ({len(problems)} problem(s))", problems)
    return CreateRequest(namespace, name, version, context)  # type: ignore[arg-type]


def _identifier(doc: Mapping[str, Any], key: str, prefix: str, problems: list[dict[str, str]]) -> str | None:
    value = doc.get(key)
    if value is None:
        problems.append(problem(prefix + key, "required"))
    elif not isinstance(value, str):
        problems.append(problem(prefix + key, f"must be a string, not {json_type(value)}"))
    elif not value.strip() or len(value) > MAX_NAME:
        problems.append(problem(prefix + key, f"must be a non-empty string of at most {MAX_NAME} characters"))
    else:
        return value
    return None


def _version(value: Any, path: str, problems: list[dict[str, str]]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(problem(path, f"must be a string (exact version or range), not {json_type(value)}"))
        return None
    try:
        VersionRequest.parse(value)
    except ConfigurationError as exc:
        problems.append(problem(path, str(exc)))
    return value.strip() or None


def unknown_params(params: QueryParams, allowed: tuple[str, ...]) -> list[dict[str, str]]:
    """A problem per query parameter the endpoint does not take (a typo must not widen a query)."""
    return [problem(k, f"unknown query parameter (expected {', '.join(allowed)})")
            for k in dict.fromkeys(params.keys()) if k not in allowed]


def parse_version_param(params: QueryParams) -> str | None:
    problems = unknown_params(params, ("version",))
    spec = _version(params.get("version"), "version", problems)
    if problems:
        raise invalid_request(f"invalid query ({len(problems)} problem(s))", problems)
    return spec


def parse_resolve(body: Any) -> Any:
    """Optional ``{"results": <any JSON>}``: what the step's dependents will read."""
    if body is None:
        return None
    doc = require_object(body)
    problems = [problem(key_path("", k), "unknown field (expected results)") for k in doc if k != "results"]
    problems += storable_problems(doc, "", ("results",))
    if problems:
        raise invalid_request(f"invalid resolve request ({len(problems)} problem(s))", problems)
    return doc.get("results")


def storable_problems(doc: Mapping[str, Any], root: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """The value rule (:mod:`tasker_host.values`) for each known field of a request document:
    NUL, lone surrogates, 1e400 (parsed as Infinity), too deep — each with its path."""
    return [p.as_dict() for k in fields if k in doc for p in value_problems(doc[k], key_path(root, k))]


def idempotency_key(headers: Headers) -> str | None:
    key = headers.get("idempotency-key")
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_NAME:
        raise invalid_request("invalid Idempotency-Key header", [
            problem("Idempotency-Key", f"must be 1 to {MAX_NAME} characters")])
    return key


# -- listing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListQuery:
    namespaces: list[str] | None
    name: str | None
    version: str | None
    status: TaskState | None
    created_after: float | None
    created_before: float | None
    after_id: str | None
    limit: int
    newest_first: bool = False
    id_prefix: str | None = None


def parse_list_query(params: QueryParams) -> ListQuery:
    problems = unknown_params(params, LIST_PARAMS)
    problems += [p.as_dict() for k, v in params.multi_items() for p in value_problems(v, k)]  # NUL: no row has it
    namespaces = list(params.getlist("namespace"))
    if any(not ns for ns in namespaces):
        problems.append(problem("namespace", "must not be empty"))
    status = _status(params.get("status"), problems)
    after = _timestamp(params.get("created_after"), "created_after", problems)
    before = _timestamp(params.get("created_before"), "created_before", problems)
    limit = _limit(params.get("limit"), problems)
    cursor = _cursor(params.get("cursor"), problems)
    order = params.get("order", "oldest")
    if order not in ORDERS:
        problems.append(problem("order", f"must be one of {', '.join(ORDERS)}"))
    if problems:
        raise invalid_request(f"invalid query ({len(problems)} problem(s))", problems)
    return ListQuery(namespaces or None, params.get("name") or None, params.get("version") or None, status,
                     after, before, cursor, limit, order == "newest", params.get("id_prefix") or None)


def _status(value: str | None, problems: list[dict[str, str]]) -> TaskState | None:
    if value is None:
        return None
    try:
        return TaskState(value)
    except ValueError:
        problems.append(problem("status", f"must be one of {', '.join(s.value for s in TaskState)}"))
        return None


def parse_timestamp(text: str) -> float:
    """Epoch seconds (``1700000000.5``) or ISO-8601 (``2024-01-15T10:30:00Z``; naive means UTC)."""
    try:
        value = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.strip().upper())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _timestamp(value: str | None, key: str, problems: list[dict[str, str]]) -> float | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError, OSError):
        problems.append(problem(key, "must be an ISO-8601 time (2024-01-15T10:30:00Z) or epoch seconds"))
        return None


def _limit(value: str | None, problems: list[dict[str, str]]) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        problems.append(problem("limit", f"must be an integer from 1 to {MAX_LIMIT}"))
    return limit


def encode_cursor(task_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + task_id).encode()).decode().rstrip("=")


def _cursor(value: str | None, problems: list[dict[str, str]]) -> str | None:
    """The task id inside a cursor. A well-formed cursor this API never issued names no task, and
    so gives an empty page (the store's rule for unknown cursors); a malformed one is a problem."""
    if value is None:
        return None
    if not CURSOR_PATTERN.fullmatch(value):
        problems.append(problem("cursor", "not a cursor this API returned (use next_cursor as is)"))
        return None
    text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8", errors="replace")
    return text[len(_CURSOR_PREFIX):]
