"""Load-time checks of a template's contract keys (``result_schema``, steps' ``calls``) and
their frozen values. Pure: the loader passes the parsed document and reports each problem with
its key path (the loader adds file and line)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tasker_host.errors import ConfigurationError
from tasker_host.models import DeclaredCall, frozen_mapping
from tasker_host.versions import VersionRequest
from tasker_host.yaml_nodes import Document

#: Top-level keywords a ``result_schema`` may use. The result is checked step by step as each
#: step completes (``properties.<step>`` against that step's results), so a top-level keyword
#: that relates several steps (``allOf``, ``minProperties`` ...) could never be checked.
RESULT_TOP_LEVEL = frozenset({"type", "properties", "required", "additionalProperties", "title",
                              "description", "$schema", "$defs", "$comment", "examples", "default"})

SchemaCheck = Callable[[Document, Any, str], None]


def check_result_schema(doc: Document, data: Mapping[str, Any], check_schema: SchemaCheck) -> None:
    """``result_schema`` is a valid JSON Schema whose top level names the template's steps."""
    schema = data.get("result_schema")
    if not isinstance(schema, dict):
        return  # absent, or reported by the document schema
    check_schema(doc, schema, "result_schema")
    steps = _step_names(data)
    for key in schema:
        if key not in RESULT_TOP_LEVEL:
            doc.add(f"top-level keyword {key!r} is not supported in result_schema: each step's "
                    f"results are checked when the step completes; put constraints under "
                    f"properties.<step>", f"result_schema.{key}")
    if schema.get("type", "object") != "object":
        doc.add("result_schema must describe an object (step name -> step results)", "result_schema.type")
    for name in schema.get("properties") or {} if isinstance(schema.get("properties"), dict) else {}:
        if name not in steps:
            doc.add(f"result_schema names no step {name!r} (steps: {', '.join(steps)})",
                    f"result_schema.properties.{name}")
    required = schema.get("required")
    for i, name in enumerate(required if isinstance(required, list) else []):
        if isinstance(name, str) and name not in steps:
            doc.add(f"result_schema requires no step {name!r} (steps: {', '.join(steps)})",
                    f"result_schema.required[{i}]")


def check_calls(doc: Document, steps: Any, check_schema: SchemaCheck) -> None:
    """Each declared call: a parseable version spec, valid ``sends`` / ``reads`` schemas."""
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        calls = step.get("calls") if isinstance(step, dict) else None
        for k, call in enumerate(calls if isinstance(calls, list) else []):
            if not isinstance(call, dict):
                continue
            path = f"step_templates[{i}].calls[{k}]"
            version = call.get("version")
            if isinstance(version, str):
                try:
                    VersionRequest.parse(version)
                except ConfigurationError as exc:
                    doc.add(str(exc), f"{path}.version")
            for key in ("sends", "reads"):
                if isinstance(call.get(key), dict):
                    check_schema(doc, call[key], f"{path}.{key}")


def declared_calls(step: Mapping[str, Any]) -> tuple[DeclaredCall, ...]:
    """The frozen calls of a valid step document."""
    found = []
    for call in step.get("calls") or ():
        namespace, _, name = call["target"].partition(".")
        found.append(DeclaredCall(namespace, name, call.get("version"), _frozen(call.get("sends")),
                                  _frozen(reads_schema(call.get("reads")))))
    return tuple(found)


def reads_schema(reads: Any) -> Any:
    """``reads`` as a JSON Schema: a list of field paths (``step.field.sub``) becomes the schema
    of a result that has every one of them (any value); a schema stays as it is."""
    if not isinstance(reads, list):
        return reads
    tree: dict[str, Any] = {}
    for path in reads:
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    return _tree_schema(tree)


def _tree_schema(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(tree),
            "properties": {k: (_tree_schema(v) if v else {}) for k, v in tree.items()}}


def _frozen(value: Any) -> Any:
    return frozen_mapping(value) if isinstance(value, Mapping) else value


def _step_names(data: Mapping[str, Any]) -> list[str]:
    steps = data.get("step_templates")
    return [s["name"] for s in steps if isinstance(s, dict) and isinstance(s.get("name"), str)] \
        if isinstance(steps, list) else []
