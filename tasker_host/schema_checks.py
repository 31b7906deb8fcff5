"""Validation speed-ups for template loading; both agree with the full jsonschema checks.

* :func:`quick_check` compiles the JSON Schema subset used by the template document schema and
  by the flattened draft 2020-12 meta-schema into a plain predicate: when it says "valid" the
  full validator is skipped, otherwise the full validator decides and reports.
* :func:`fast_2020_12_checker` builds a draft 2020-12 meta-schema validator with the vocabulary
  documents merged into one, for checking each template's task-context ``schema``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urljoin

from jsonschema import Draft202012Validator
from jsonschema_specifications import REGISTRY as SPECIFICATIONS

Predicate = Callable[[Any], bool]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Keywords that never make an instance invalid. ``$defs`` only holds ``$ref`` targets;
# ``$anchor``/``$dynamicAnchor`` only matter to references the compiler refuses anyway.
_ANNOTATIONS = frozenset({
    "$schema", "$id", "$comment", "$defs", "$anchor", "$dynamicAnchor", "title", "description",
    "default", "deprecated", "examples", "readOnly", "writeOnly",
})  # fmt: skip
_JSON_TYPES: Mapping[str, type] = MappingProxyType(
    {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
)
_TYPE_NAMES = frozenset({*_JSON_TYPES, "number", "integer"})


def _true(value: Any) -> bool:
    return True


def _false(value: Any) -> bool:
    return False


# --- fast predicates ----------------------------------------------------------------------------
def quick_check(schema: Any, format_checker: Any = None) -> Predicate:
    """A fast ``is_valid`` for the draft 2020-12 ``schema``, or one that always says "not sure".

    Only a fast path: when it says "valid" (``True``) the full validator is skipped, otherwise
    ``iter_errors`` does the reporting, so it must never say "valid" where jsonschema finds an
    error; saying ``False`` for a valid instance only costs time. ``format`` is asserted through
    ``format_checker.conforms`` (pass the validator's ``format_checker``; ``None``: annotation).
    A keyword or ``$ref`` it does not implement makes it always ``False`` (always the full check).
    """
    try:
        predicate = _Compiler(schema, format_checker).compile(schema)
    except (ValueError, TypeError, AttributeError, LookupError, re.error, RecursionError):
        return _false  # e.g. the schema grew a keyword the fast path does not know

    def guarded(value: Any) -> bool:
        try:
            return predicate(value)
        except Exception:  # e.g. too deep, or a non-string key under patternProperties: the
            return False  # full validator decides (and fails) the same way it always did

    return guarded


class _Compiler:
    """One compilation: the root (target of local ``$ref``s), the format checker, and the
    predicates built so far (a ``$ref`` back into a schema still being built binds late)."""

    def __init__(self, root: Any, format_checker: Any) -> None:
        dialect = root.get("$schema", _DIALECT) if isinstance(root, dict) else _DIALECT
        if not isinstance(dialect, str) or dialect.rstrip("#") != _DIALECT:
            raise ValueError("only draft 2020-12 keyword semantics are implemented")
        self.root = root
        self.formats = format_checker
        self._done: dict[int, Predicate] = {}
        self._building: dict[int, list[Predicate]] = {}

    def compile(self, schema: Any) -> Predicate:
        """The predicate of ``schema`` (``True``/``False`` or an object of known keywords)."""
        if schema is True or schema is False:
            return _true if schema else _false
        if not isinstance(schema, dict):
            raise ValueError(f"not a schema: {schema!r}")
        key = id(schema)
        if key in self._done:
            return self._done[key]
        if key in self._building:  # recursive reference (e.g. "#"): look the predicate up late
            slot = self._building[key]
            return lambda value: slot[0](value)
        if schema is not self.root and ("$id" in schema or "$schema" in schema):
            raise ValueError("embedded schema resources change what references mean")
        slot = self._building[key] = []
        predicate = _all([_keyword(self, k, arg, schema) for k, arg in schema.items()])
        slot.append(predicate)
        del self._building[key]
        self._done[key] = predicate
        return predicate

    def resolve(self, ref: Any) -> Any:
        """The target of a local reference: ``#`` or a JSON pointer ``#/a/b`` through objects."""
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            raise ValueError(f"no quick check for $ref {ref!r}")
        node = self.root
        for token in unquote(ref[1:]).split("/")[1:]:  # unquoted before splitting, as jsonschema
            token = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or token not in node:
                raise ValueError(f"no quick check for $ref {ref!r}")
            node = node[token]
            if isinstance(node, dict) and isinstance(node.get("$id"), str):
                raise ValueError(f"$ref {ref!r} enters an embedded schema resource")
        return node


def _all(checks: list[Predicate]) -> Predicate:
    checks = [check for check in checks if check is not _true]
    if not checks:
        return _true
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda value: first(value) and second(value)
    return lambda value: all(check(value) for check in checks)


def _keyword(c: _Compiler, key: str, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    """One keyword of a schema; raises ``ValueError`` on a keyword it does not implement."""
    if key in _ANNOTATIONS:
        return _true
    build = _KEYWORDS.get(key)
    if build is None:
        raise ValueError(f"no quick check for JSON Schema keyword {key!r}")
    return build(c, arg, schema)


def _is_type(value: Any, kind: str) -> bool:
    """JSON Schema ``type`` semantics (booleans are not numbers; 1.0 is an integer)."""
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return kind == "number" or isinstance(value, int) or value.is_integer()
    return isinstance(value, _JSON_TYPES[kind])


def _number(arg: Any) -> Any:
    if isinstance(arg, bool) or not isinstance(arg, (int, float)):
        raise ValueError(f"not a number: {arg!r}")
    return arg


# --- keywords -----------------------------------------------------------------------------------
def _ref(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    return c.compile(c.resolve(arg))


def _type(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    kinds = arg if isinstance(arg, list) else [arg]
    if not kinds or not all(isinstance(kind, str) and kind in _TYPE_NAMES for kind in kinds):
        raise ValueError(f"no quick check for type {arg!r}")
    if all(kind in _JSON_TYPES for kind in kinds):
        classes = tuple(_JSON_TYPES[kind] for kind in kinds)
        return lambda v: isinstance(v, classes)
    return lambda v: any(_is_type(v, kind) for kind in kinds)


def _properties(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    lookup = {name: c.compile(sub) for name, sub in arg.items()}.get

    def properties(v: Any) -> bool:  # the instance's own keys, not every known property
        if not isinstance(v, dict):
            return True
        for name, value in v.items():
            check = lookup(name)
            if check is not None and not check(value):
                return False
        return True

    return properties


def _pattern_properties(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    subs = [(re.compile(p), c.compile(sub)) for p, sub in arg.items()]
    return lambda v: not isinstance(v, dict) or all(
        f(v[k]) for k in v for p, f in subs if p.search(k)
    )


def _additional_properties(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    sub, known = c.compile(arg), frozenset(schema.get("properties", ()))
    if not schema.get("patternProperties"):
        return lambda v: not isinstance(v, dict) or all(
            sub(value) for name, value in v.items() if name not in known
        )
    joined = re.compile("|".join(schema["patternProperties"]))  # as jsonschema matches them
    return lambda v: not isinstance(v, dict) or all(
        sub(value) for name, value in v.items() if name not in known and not joined.search(name)
    )


def _property_names(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    sub = c.compile(arg)
    return lambda v: not isinstance(v, dict) or all(sub(name) for name in v)


def _required(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    if not isinstance(arg, list) or not all(isinstance(name, str) for name in arg):
        raise ValueError(f"no quick check for required {arg!r}")
    return lambda v: not isinstance(v, dict) or all(name in v for name in arg)


def _items(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    sub = c.compile(arg)  # draft 2020-12: one schema; prefixItems is not implemented
    return lambda v: not isinstance(v, list) or all(sub(item) for item in v)


def _any_of(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    if not isinstance(arg, list) or not arg:
        raise ValueError(f"no quick check for anyOf {arg!r}")
    subs = [c.compile(sub) for sub in arg]
    return lambda v: any(sub(v) for sub in subs)


def _min_items(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    limit = _number(arg)
    return lambda v: not isinstance(v, list) or len(v) >= limit


def _min_length(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    limit = _number(arg)
    return lambda v: not isinstance(v, str) or len(v) >= limit


def _minimum(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    limit = _number(arg)
    return lambda v: not _is_type(v, "number") or v >= limit


def _exclusive_minimum(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    limit = _number(arg)
    return lambda v: not _is_type(v, "number") or v > limit


def _pattern(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    regex = re.compile(arg)
    return lambda v: not isinstance(v, str) or regex.search(v) is not None


def _enum(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    if not isinstance(arg, list) or not all(isinstance(choice, str) for choice in arg):
        raise ValueError(f"no quick check for enum {arg!r}")  # JSON equality of 1/1.0/true
    choices = frozenset(arg)
    return lambda v: isinstance(v, str) and v in choices


def _format(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    if c.formats is None:  # no format checker: an annotation, as for jsonschema
        return _true
    conforms = c.formats.conforms
    return lambda v: conforms(v, arg)


def _unique_items(c: _Compiler, arg: Any, schema: Mapping[str, Any]) -> Predicate:
    if arg is False:
        return _true
    if arg is not True:
        raise ValueError(f"no quick check for uniqueItems {arg!r}")
    # Conservative: only arrays of strings are judged (JSON equality of 1, 1.0 and true, or of
    # nested arrays and objects, is left to the full validator).
    return lambda v: not isinstance(v, list) or (
        all(isinstance(item, str) for item in v) and len(set(v)) == len(v)
    )


_Builder = Callable[[_Compiler, Any, Mapping[str, Any]], Predicate]
_KEYWORDS: Mapping[str, _Builder] = MappingProxyType(
    {"$ref": _ref, "type": _type, "properties": _properties,
     "patternProperties": _pattern_properties, "additionalProperties": _additional_properties,
     "propertyNames": _property_names, "required": _required, "items": _items, "anyOf": _any_of,
     "minItems": _min_items, "minLength": _min_length, "minimum": _minimum,
     "exclusiveMinimum": _exclusive_minimum, "pattern": _pattern, "enum": _enum,
     "format": _format, "uniqueItems": _unique_items}
)  # fmt: skip


# --- flattened draft 2020-12 meta-schema --------------------------------------------------------
def fast_2020_12_checker() -> Any:
    """A draft 2020-12 meta-schema validator, flattened for speed.

    The official meta-schema spreads keywords over seven vocabulary documents joined with
    ``$dynamicRef``, which costs ~1 ms per template schema. Their keyword and ``$defs`` names are
    disjoint, so they merge into one document with plain local ``$ref``s that checks exactly the
    same rules ~5x faster. Anything unexpected falls back to the official meta-schema.
    """
    meta = Draft202012Validator.META_SCHEMA
    merged = _merged_vocabularies(meta)
    if merged is None:
        return Draft202012Validator(meta, format_checker=Draft202012Validator.FORMAT_CHECKER)
    refs: set[str] = set()
    flat = _local_refs(merged, refs)
    if not refs <= {"#"} | {f"#/$defs/{name}" for name in merged["$defs"]}:
        flat = meta
    return Draft202012Validator(flat, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _merged_vocabularies(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The meta-schema and its vocabularies as one schema, or ``None`` if any names collide."""
    parts = [SPECIFICATIONS.contents(urljoin(meta["$id"], ref["$ref"])) for ref in meta["allOf"]]
    properties: dict[str, Any] = dict(meta["properties"])
    defs: dict[str, Any] = {}
    for part in parts:
        if properties.keys() & part.get("properties", {}) or defs.keys() & part.get("$defs", {}):
            return None
        properties.update(part.get("properties", {}))
        defs.update(part.get("$defs", {}))
    return {"type": ["object", "boolean"], "properties": properties, "$defs": defs}


def _local_refs(node: Any, refs: set[str]) -> Any:
    """Copy ``node`` with every reference made local; collect the targets in ``refs``."""
    if isinstance(node, list):
        return [_local_refs(item, refs) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$ref", "$dynamicRef") and isinstance(value, str):
            key, value = "$ref", _local_target(key, value)
            refs.add(value)
        else:
            value = _local_refs(value, refs)
        out[key] = value
    return out


def _local_target(key: str, value: str) -> str:
    """``$dynamicRef: "#meta"`` -> ``#``; ``meta/x#/$defs/y`` -> ``#/$defs/y``; else unusable."""
    if key == "$dynamicRef":
        return "#" if value == "#meta" else "?" + value
    if "#/$defs/" in value:
        return "#/$defs/" + value.rpartition("#/$defs/")[2]
    return "?" + value
