"""The OpenAPI parts of the version lifecycle (:mod:`tasker_host.api.versions`): the drain status
documents and the ``/versions`` paths, merged into :func:`tasker_host.api.openapi.openapi_document`."""

from __future__ import annotations

from typing import Any

from tasker_host.drain import DEFAULT_DAYS, MAX_DAYS

_STR = {"type": "string"}
_NULL_STR = {"oneOf": [_STR, {"type": "null"}]}
_COUNT = {"type": "integer", "minimum": 0}


def _obj(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


def warning_schema() -> dict[str, Any]:
    """One entry of a task's ``warnings``."""
    return _obj({"code": {"type": "string", "enum": ["deprecated_version"]}, "message": _STR,
                 "replaced_by": _NULL_STR, "replacement": _NULL_STR, "sunset": _NULL_STR})


def version_schemas() -> dict[str, Any]:
    tasks = _obj({k: _COUNT for k in ("pending", "in_progress", "waiting_on_children", "error", "complete",
                                      "cancelled", "resolved_manually")})
    status = _obj({
        "namespace": _STR, "name": _STR, "version": _STR, "full_name": _STR, "installed": {"type": "boolean"},
        "deprecated": _NULL_STR, "replaced_by": _NULL_STR, "replacement": _NULL_STR, "sunset": _NULL_STR,
        "sunset_reached": {"type": "boolean"}, "tasks": tasks, "drained": {"type": "boolean"},
        "last_started_at": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
        "started_by": {"type": "object", "additionalProperties": _COUNT,
                       "description": "caller namespace (direct: API / CLI) -> tasks started in the last days"},
    })
    return {"VersionStatus": status, "TaskWarning": warning_schema(),
            "Versions": _obj({"days": {"type": "integer"}, "since": {"type": "string", "format": "date-time"},
                              "versions": {"type": "array", "items": {"$ref": "#/components/schemas/VersionStatus"}}})}


def version_paths(p: str, errors: Any) -> dict[str, Any]:
    days = {"name": "days", "in": "query", "required": False, "description": "who started each version in the "
            "last N days", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS, "default": DEFAULT_DAYS}}
    namespace = {"name": "namespace", "in": "path", "required": True, "schema": _STR}
    name = {"name": "name", "in": "path", "required": True, "schema": _STR}
    answer = {"description": "Lifecycle and exact drain status per version",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Versions"}}}}

    def get(op: str, summary: str, params: list[dict[str, Any]], *codes: int) -> dict[str, Any]:
        return {"get": {"operationId": op, "summary": summary, "parameters": params,
                        "responses": {"200": answer, **errors(*codes)}}}

    return {
        f"{p}/versions": get("listVersions", "Every viewable version's lifecycle and drain status", [days],
                             401, 422),
        f"{p}/versions/{{namespace}}": get("namespaceVersions", "A namespace's versions", [namespace, days],
                                           401, 404, 422),
        f"{p}/versions/{{namespace}}/{{name}}": get("templateVersions", "A template's versions",
                                                    [namespace, name, days], 401, 404, 422),
    }
