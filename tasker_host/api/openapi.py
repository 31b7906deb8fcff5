"""The OpenAPI 3.1 document of the API, built in code (``GET {prefix}/openapi.json``).

Paths carry the full prefix (``/tasker/tasks``), so the document works as is for clients and
fuzzers whatever server URL they are given.
"""

from __future__ import annotations

from typing import Any

from tasker_host.api.openapi_versions import version_paths, version_schemas
from tasker_host.api.requests import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT, MAX_NAME
from tasker_host.models import StepState, TaskState

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or list(properties), **extra}


TIME = {"type": "string", "format": "date-time"}
STRINGS = {"type": "array", "items": {"type": "string"}}
IDENT = {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": r"\S"}
ANY_OBJECT = {"type": "object"}


def _task_fields() -> dict[str, Any]:
    return {
        "id": {"type": "string"}, "name": {"type": "string"}, "namespace": {"type": "string"},
        "version": {"type": "string", "description": "the resolved version"},
        "full_name": {"type": "string", "examples": ["payments.process_refund@2.1.3"]},
        "status": {"type": "string", "enum": [s.value for s in TaskState]},
        "context": ANY_OBJECT, "correlation_id": nullable({"type": "string"}),
        "parent_task_id": nullable({"type": "string"}), "parent_step": nullable({"type": "string"}),
        "error": nullable(ANY_OBJECT), "provider": nullable(ANY_OBJECT),
        "created_at": TIME, "updated_at": TIME, "completed_at": nullable(TIME),
        "caller_namespace": nullable({"type": "string", "description": "the invoking task's namespace"}),
        "warnings": {"type": "array", "items": ref("TaskWarning"), "description": "e.g. a deprecated version"},
    }


def schemas() -> dict[str, Any]:
    task = _task_fields()
    ready = {"status": {"type": "string", "enum": ["ready", "not_ready"]},
             "failing": {"type": "array", "items": {"type": "string",
                                                    "enum": ["database", "plugins", "conflicts", "worker"]}}}
    fields = {"name": IDENT, "namespace": IDENT,
              "version": nullable({"type": "string", "description": "exact (2.1.3), a PEP 440 range "
                                   "(~=2.1, >=2,<3) or omitted for the newest stable version"}),
              "context": nullable(ANY_OBJECT)}
    summary = {"id": {"type": "string"}, "namespace": {"type": "string"}, "version": {"type": "string"},
               "full_name": {"type": "string"}, "description": {"type": "string"},
               "step_count": {"type": "integer"}, "step_names": STRINGS, "available_versions": STRINGS}
    step_def = obj({"name": {"type": "string"}, "description": {"type": "string"},
                    "handler_class": {"type": "string"}, "depends_on": STRINGS, "retryable": {"type": "boolean"},
                    "retry_limit": {"type": "integer"}, "timeout_seconds": nullable({"type": "number"}),
                    "skippable": {"type": "boolean"}})
    detail = {**summary, "visibility": {"type": "string", "enum": ["public", "private"]},
              "deprecated": nullable({"type": "string"}), "replaced_by": nullable({"type": "string"}),
              "sunset": nullable({"type": "string", "format": "date"}),
              "steps": {"type": "array", "items": ref("StepDefinition")},
              "schema": nullable(ANY_OBJECT), "provider": nullable(ANY_OBJECT),
              "result_schema": nullable(ANY_OBJECT),  # the contract (docs/contracts.md)
              "calls": {"type": "array", "items": ref("DeclaredCall")}}
    ns_fields = {"namespace": {"type": "string"}, "description": {"type": "string"}, "owner": {"type": "string"},
                 "provider": ANY_OBJECT}
    return {
        "Problem": obj({"path": {"type": "string"}, "message": {"type": "string"}}),
        "Error": obj({"error": {"type": "string"}, "message": {"type": "string"},
                      "problems": {"type": "array", "items": ref("Problem")}, "available": STRINGS},
                     ["error", "message", "problems"]),
        "Step": obj({"name": {"type": "string"}, "state": {"type": "string", "enum": [s.value for s in StepState]},
                     "attempts": {"type": "integer"}, "retry_limit": {"type": "integer"}, "depends_on": STRINGS,
                     "results": {}, "last_error": nullable(ANY_OBJECT), "started_at": nullable(TIME),
                     "completed_at": nullable(TIME), "retry_at": nullable(TIME),
                     "waiting_for": nullable(ANY_OBJECT)}),
        "TaskSummary": obj(task),
        "Task": obj({**task, "steps": {"type": "array", "items": ref("Step")},
                     "children": {**STRINGS, "description": "ids of child tasks (cross-namespace calls)"}},
                    [*task, "steps"]),
        "StepLogs": obj({"task_id": {"type": "string"}, "step": {"type": "string"},
                         "lines": {"type": "array", "items": obj({
                             "attempt": {"type": "integer"}, "seq": {"type": "integer"}, "at": TIME,
                             "level": {"type": "string"}, "message": {"type": "string"}})}}),
        "TaskList": obj({"tasks": {"type": "array", "items": ref("TaskSummary")},
                         "next_cursor": nullable({"type": "string"})}),
        "TaskFields": obj(fields, ["name", "namespace"], additionalProperties=False),
        "CreateTaskRequest": {"oneOf": [ref("TaskFields"), obj({"task": ref("TaskFields")},
                                                                additionalProperties=False)]},
        "ResolveRequest": obj({"results": {"description": "what dependent steps will read"}}, [],
                              additionalProperties=False),
        "StepDefinition": step_def,
        "DeclaredCall": obj({"step": {"type": "string"}, "target": {"type": "string"},
                             "version": nullable({"type": "string"}), "sends": {}, "reads": {}}),
        **_event_schemas(),
        "HandlerSummary": obj(summary),
        "Handler": obj(detail),
        "NamespaceSummary": obj({**ns_fields, "handlers": {"type": "array", "items": ref("HandlerSummary")}}),
        "Namespace": obj({**ns_fields, "handlers": {"type": "array", "items": ref("Handler")}}),
        "Catalogue": obj({"namespaces": {"type": "array", "items": ref("NamespaceSummary")}}),
        "Live": obj({"status": {"type": "string"}}),
        # without a token only the first fields; reasons, warnings and the rest need a valid one
        "Ready": obj({**ready, "reasons": STRINGS, "warnings": STRINGS}, required=list(ready)),
        "Status": obj({"status": {"type": "string", "enum": ["up"]}, "ready": {"type": "boolean"},
                       "failing": ready["failing"], "reasons": STRINGS, "warnings": STRINGS,
                       "versions": ANY_OBJECT, "uptime_seconds": {"type": "number"}, "database": ANY_OBJECT,
                       "plugins": ANY_OBJECT, "counts": ANY_OBJECT, "worker": ANY_OBJECT},
                      required=["status", "ready", "failing"]),
        **version_schemas(),
    }


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def ok(description: str, schema_name: str, **headers: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"description": description, "content": _content(ref(schema_name))}
    if headers:
        doc["headers"] = headers
    return doc


def errors(*statuses: int) -> dict[str, Any]:
    text = {400: "Malformed JSON", 401: "Missing, unknown or revoked bearer token",
            403: "Not allowed in this namespace", 404: "Not found (or not viewable)", 409: "Conflict with the "
            "current state (or a reused Idempotency-Key)", 410: "The version reached its sunset (names the "
            "replacement)", 413: "Body too large", 415: "Body is not JSON",
            422: "Invalid request (every problem listed)",
            503: "The namespace is quarantined (plugins conflict over it; every claimant named)"}
    return {str(s): {"description": text[s], "content": _content(ref("Error"))} for s in statuses}


def param(name: str, where: str, schema: dict[str, Any], description: str = "", *, required: bool = False,
          **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description, **extra}


def _list_parameters() -> list[dict[str, Any]]:
    when = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            "description": "ISO-8601 / RFC 3339 time or epoch seconds"}
    return [
        param("namespace", "query", {"type": "array", "items": {"type": "string", "minLength": 1}},
              "only these namespaces (repeatable); always limited to viewable ones", style="form", explode=True),
        param("name", "query", {"type": "string"}, "only this template name"),
        param("version", "query", {"type": "string"}, "only this (resolved) version"),
        param("status", "query", {"type": "string", "enum": [s.value for s in TaskState]}),
        param("created_after", "query", when, "created at or after (inclusive)"),
        param("created_before", "query", when, "created before (exclusive)"),
        param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
        param("cursor", "query", {"type": "string", "pattern": f"^{CURSOR_PATTERN.pattern}$"},
              "next_cursor of the previous page (opaque)"),
        param("order", "query", {"type": "string", "enum": ["oldest", "newest"], "default": "oldest"},
              "by creation time"),
        param("id_prefix", "query", {"type": "string"}, "only tasks whose id starts with this"),
    ]


def _task_paths(p: str) -> dict[str, Any]:
    task_id = param("task_id", "path", {"type": "string"})
    task_ok = ok("The task, with its steps and child task ids", "Task")
    created_headers = {"Location": {"schema": {"type": "string"}}}
    return {
        f"{p}/tasks": {
            "post": {
                "operationId": "createTask", "summary": "Create a task (runs asynchronously)",
                "parameters": [param("Idempotency-Key", "header", {"type": "string", "minLength": 1,
                                                                   "maxLength": MAX_NAME, "pattern": r"\S"},
                                     "create at most once per key and namespace")],
                "requestBody": {"required": True, "content": _content(ref("CreateTaskRequest"))},
                "responses": {"201": ok("Created", "Task", **created_headers),
                              "200": ok("Replay of an Idempotency-Key: the existing task, nothing written", "Task"),
                              **errors(400, 401, 403, 404, 409, 410, 413, 415, 422, 503)},
            },
            "get": {
                "operationId": "listTasks", "summary": "List tasks (oldest or newest first), cursor-paginated",
                "parameters": _list_parameters(),
                "responses": {"200": ok("A page of tasks", "TaskList"), **errors(401, 422)},
            },
        },
        f"{p}/tasks/{{task_id}}": {
            "parameters": [task_id],
            "get": {"operationId": "showTask", "summary": "A task with its steps",
                    "responses": {"200": task_ok, **errors(401, 404)}},
            "delete": {"operationId": "cancelTask", "summary": "Cancel a task",
                       "responses": {"200": task_ok, **errors(401, 403, 404, 409)}},
        },
        f"{p}/tasks/{{task_id}}/retry": {
            "parameters": [task_id],
            "post": {"operationId": "retryTask", "summary": "Retry a task in error (failed steps run again)",
                     "responses": {"200": task_ok, **errors(401, 403, 404, 409)}},
        },
        f"{p}/tasks/{{task_id}}/steps/{{step}}/resolve": {
            "parameters": [task_id, param("step", "path", {"type": "string"})],
            "post": {"operationId": "resolveStep", "summary": "Resolve a failed step by hand",
                     "requestBody": {"required": False, "content": _content(ref("ResolveRequest"))},
                     "responses": {"200": task_ok, **errors(400, 401, 403, 404, 409, 413, 415, 422)}},
        },
        f"{p}/tasks/{{task_id}}/steps/{{step}}/logs": {
            "parameters": [task_id, param("step", "path", {"type": "string"})],
            "get": {"operationId": "showStepLogs", "summary": "What the step's attempts wrote through ctx.log",
                    "responses": {"200": ok("The lines, oldest first", "StepLogs"), **errors(401, 404)}},
        },
    }


def _event_schemas() -> dict[str, Any]:
    event = {"id": {"type": "integer"}, "task_id": {"type": "string"}, "name": {"type": "string"}, "payload": {},
             "idempotency_key": nullable({"type": "string"}), "sender": nullable({"type": "string"}),
             "created_at": {"type": "number"}, "step": nullable({"type": "string"}),
             "delivered_at": nullable({"type": "number"})}
    return {"Event": obj(event),
            "SentEvent": obj({**event, "woke": nullable({"type": "string"}), "duplicate": {"type": "boolean"}}),
            "EventList": obj({"events": {"type": "array", "items": ref("Event")}})}


def _event_paths(p: str) -> dict[str, Any]:
    task_id = param("task_id", "path", {"type": "string"})
    key = param("Idempotency-Key", "header", {"type": "string", "minLength": 1, "maxLength": MAX_NAME,
                                              "pattern": r"\S"}, "send at most once per key, task and event name")
    return {
        f"{p}/tasks/{{task_id}}/events/{{name}}": {
            "parameters": [task_id, param("name", "path", {"type": "string"})],
            "post": {"operationId": "sendEvent", "summary": "Send an event to a task (a step may wait for it)",
                     "parameters": [key],
                     "requestBody": {"required": False, "content": _content({"description": "the payload"})},
                     "responses": {"201": ok("Stored (and delivered, if a step waited for it)", "SentEvent"),
                                   "200": ok("Replay of an Idempotency-Key: the original event", "SentEvent"),
                                   **errors(400, 401, 403, 404, 409, 413, 415, 422)}},
        },
        f"{p}/tasks/{{task_id}}/events": {
            "parameters": [task_id],
            "get": {"operationId": "listEvents", "summary": "The events sent to a task, oldest first",
                    "responses": {"200": ok("The events", "EventList"), **errors(401, 404)}},
        },
    }


def _catalogue_paths(p: str) -> dict[str, Any]:
    namespace = param("namespace", "path", {"type": "string"})
    return {
        f"{p}/handlers": {"get": {"operationId": "listHandlers", "summary": "Namespaces and their templates",
                                  "responses": {"200": ok("The catalogue", "Catalogue"), **errors(401)}}},
        f"{p}/handlers/{{namespace}}": {
            "get": {"operationId": "namespaceHandlers", "summary": "A namespace's templates in detail",
                    "parameters": [namespace],
                    "responses": {"200": ok("The namespace", "Namespace"), **errors(401, 404, 503)}}},
        f"{p}/handlers/{{namespace}}/{{name}}": {
            "get": {"operationId": "showHandler", "summary": "The template a version request resolves to",
                    "parameters": [namespace, param("name", "path", {"type": "string"}),
                                   param("version", "query", {"type": "string"}, "exact, range, or omitted")],
                    "responses": {"200": ok("The template", "Handler"), **errors(401, 404, 422, 503)}}},
    }


def _open_paths(p: str) -> dict[str, Any]:
    def get(op: str, summary: str, responses: dict[str, Any], *, token_optional: bool = False) -> dict[str, Any]:
        security: list[dict[str, Any]] = [{}, {"bearer": []}] if token_optional else []
        return {"get": {"operationId": op, "summary": summary, "security": security, "responses": responses}}

    text = {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        f"{p}/health/live": get("live", "Liveness", {"200": ok("Serving", "Live")}),
        f"{p}/health/ready": get("ready", "Readiness", {"200": ok("Ready", "Ready"),
                                                        "503": ok("Not ready, with reasons", "Ready"),
                                                        "401": errors(401)["401"]}, token_optional=True),
        f"{p}/health/status": get("status", "Up, ready; with a token also versions, plugins, counts, worker",
                                  {"200": ok("Status", "Status"), "401": errors(401)["401"]}, token_optional=True),
        f"{p}/openapi.json": get("openapi", "This document", {"200": {"description": "OpenAPI 3.1",
                                                                      "content": _content(ANY_OBJECT)}}),
        f"{p}/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics",
                                 "responses": {"200": text, **errors(401)}}},
    }


def openapi_document(prefix: str, *, version: str = "0") -> dict[str, Any]:
    from tasker_host.api import audit  # (it uses this module's helpers)

    return {
        "openapi": "3.1.0",
        "info": {"title": "tasker-host", "version": version,
                 "description": "Create and manage workflow tasks of every team's namespace; browse the "
                                "catalogue. Errors: {error, message, problems[, available]}."},
        "security": [{"bearer": []}],
        "paths": {**_task_paths(prefix), **_event_paths(prefix), **_catalogue_paths(prefix), **_open_paths(prefix),
                  **version_paths(prefix, errors), **audit.openapi_paths(prefix)},
        "components": {"schemas": schemas(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "tokens from `tasker-host tokens`"}}},
    }
