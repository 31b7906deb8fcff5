"""Reading JSON request bodies: media type (415), size (413, counted while reading — a missing or
lying ``Content-Length`` does not help), syntax (400). Nothing here touches the store."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from tasker_host.api.errors import ApiError

_NO_BODY = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def is_json_media_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        raise ApiError(400, "bad_request", "Content-Length is not a number") from None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body larger than {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) as soon as more than ``limit`` bytes are declared or read."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "request body is not UTF-8 text") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "request body is nested too deeply") from None
    except ValueError as exc:
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None


async def read_json(request: Request, limit: int, *, optional: bool = False) -> Any:
    """The parsed JSON body. ``optional``: an empty body (no bytes at all) gives ``None``."""
    declared = _declared_length(request)
    if optional and declared == 0:
        return None
    if not is_json_media_type(request.headers.get("content-type")):
        if optional and declared is None and not request.headers.get("transfer-encoding"):
            return None
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as application/json (got {request.headers.get('content-type') or 'none'})")
    raw = await read_body(request, limit)
    if optional and not raw:
        return None
    return parse_json(raw)


def require_object(value: Any, where: str = "request body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(422, "invalid_request", f"{where} must be a JSON object, not {json_type(value)}",
                       problems=[{"path": "", "message": f"expected an object, got {json_type(value)}"}])
    return value


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)
