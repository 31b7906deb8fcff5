"""Is every instance one JSON Schema accepts also accepted by another? A small, conservative,
pure checker (draft 2020-12 keyword semantics).

``compare(sub, sup)`` lists :class:`Finding` s; none means *compatible*: every instance valid
under ``sub`` is valid under ``sup``. A ``BREAKING`` finding names an instance shape ``sub``
allows and ``sup`` refuses; a ``CANNOT_DECIDE`` finding names a JSON path where the schemas use
something the checker does not reason about (``$ref``, ``anyOf`` / ``oneOf`` / ``allOf`` /
``not``, ``if``, ``patternProperties``, a differing ``pattern`` or ``format``, ...). It never
guesses: when it cannot tell, it says so, with the path.

What it reasons about: ``type`` (``integer`` inside ``number``), ``enum`` / ``const`` (values are
checked exactly against the other schema), ``minimum`` / ``maximum`` / ``exclusive*`` /
``multipleOf``, ``minLength`` / ``maxLength`` / identical ``pattern`` / ``format``, objects
(``properties``, ``required``, ``additionalProperties`` — closed objects — and
``min/maxProperties``) and arrays (``items``, ``minItems`` / ``maxItems``, ``uniqueItems``),
nested to any depth. Unknown keywords are annotations, as for a validator.

Why not a library: ``jsonsubschema`` (IBM) decides draft 4 only (``exclusiveMinimum`` as a
boolean), answers yes/no without saying where, and has open false-positive reports; the
contract checks need draft 2020-12, JSON paths and an explicit "cannot decide".
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from jsonschema import Draft202012Validator

JSON_TYPES = ("null", "boolean", "object", "array", "number", "string")  # "integer" is in "number"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Keywords the checker does not reason about: a schema node using one is "cannot decide".
UNDECIDABLE = frozenset({
    "$ref", "$dynamicRef", "$recursiveRef", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
    "patternProperties", "propertyNames", "dependentRequired", "dependentSchemas", "dependencies",
    "unevaluatedProperties", "unevaluatedItems", "prefixItems", "contains", "minContains",
    "maxContains", "contentSchema",
})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Verdict(enum.StrEnum):
    BREAKING = "breaking"  # an instance the first schema accepts is refused by the second
    CANNOT_DECIDE = "cannot_decide"


@dataclass(frozen=True, slots=True)
class Finding:
    verdict: Verdict
    path: str  # JSON path of the instance: $, $.refund_amount, $.items[*], $.*
    message: str
    code: str = ""  # what kind of difference: "required", "closed", "type", "value", "bound" ...

    def as_dict(self) -> dict[str, str]:
        return {"verdict": self.verdict.value, "path": self.path, "message": self.message}


def compare(sub: Any, sup: Any, path: str = "$") -> list[Finding]:
    """Findings against "every instance ``sub`` accepts, ``sup`` accepts"; empty: compatible."""
    for side in (sub, sup):
        dialect = side.get("$schema") if isinstance(side, Mapping) else None
        if dialect is not None and str(dialect).rstrip("#") != DIALECT:
            return [_undecided(path, f"$schema {dialect!r} (only draft 2020-12 is compared)")]
    return _Compare().node(sub, sup, path)


def field_path(path: str, name: str) -> str:
    return f"{path}.{name}" if _NAME.match(name) else f"{path}[{name!r}]"


def _undecided(path: str, what: str) -> Finding:
    return Finding(Verdict.CANNOT_DECIDE, path, f"cannot decide: {what}")


def _breaking(path: str, message: str, code: str = "") -> Finding:
    return Finding(Verdict.BREAKING, path, message, code)


def _accepts_all(schema: Any) -> bool:
    if schema is True:
        return True
    return isinstance(schema, Mapping) and not any(k in _ASSERTIONS or k in UNDECIDABLE for k in schema)


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    if kind is None:
        return set(JSON_TYPES)
    return set(kind if isinstance(kind, list) else [kind])


def _accepted(kind: str, sup_types: set[str]) -> bool:
    return kind in sup_types or (kind == "integer" and "number" in sup_types)


def _has_ref(schema: Any) -> bool:
    if isinstance(schema, Mapping):
        return any(k in ("$ref", "$dynamicRef") or _has_ref(v) for k, v in schema.items())
    if isinstance(schema, list):
        return any(_has_ref(v) for v in schema)
    return False


def _valid(schema: Any, value: Any) -> bool:
    return Draft202012Validator(schema).is_valid(value)  # format as an annotation, as the host


class _Compare:
    def node(self, sub: Any, sup: Any, path: str) -> list[Finding]:
        if sub is False or _accepts_all(sup):
            return []
        if sup is False:
            return [_breaking(path, "no value is accepted")]
        sub = {} if sub is True else sub
        if "enum" in sub or "const" in sub:
            return self.values(sub, sup, path)
        for side, schema in (("receiving", sup), ("sending", sub)):
            used = sorted(k for k in schema if k in UNDECIDABLE)
            if used:
                return [_undecided(path, f"{', '.join(used)} in the {side} schema")]
        return self.by_type(sub, sup, path)

    def values(self, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str) -> list[Finding]:
        """``sub`` allows finitely many values: check each one against ``sup`` exactly."""
        if _has_ref(sub) or _has_ref(sup) or any(k in UNDECIDABLE for k in sub):
            return [_undecided(path, "$ref or a combinator next to enum/const")]
        values = [sub["const"]] if "const" in sub else list(sub["enum"])
        values = [v for v in values if _valid(sub, v)]
        refused = [v for v in values if not _valid(sup, v)]
        return [_breaking(path, f"value {_show(refused)} is not accepted")] if refused else []

    def by_type(self, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str) -> list[Finding]:
        sub_types, sup_types = _types(sub), _types(sup)
        refused = sorted(k for k in sub_types if not _accepted(k, sup_types))
        found = []
        if refused:
            found.append(_breaking(path, f"type {' or '.join(refused)} is not accepted "
                                         f"(accepts {' or '.join(sorted(sup_types))})"))
        kept = sub_types - set(refused)
        if not kept:
            return found
        if "enum" in sup or "const" in sup:
            return found + self.finite(sub, sup, kept, path)
        if kept & {"number", "integer"}:
            found += _numbers(sub, sup, kept, path)
        if "string" in kept:
            found += _strings(sub, sup, path)
        if "array" in kept:
            found += self.arrays(sub, sup, path)
        if "object" in kept:
            found += self.objects(sub, sup, path)
        return found

    def finite(self, sub: Mapping[str, Any], sup: Mapping[str, Any], kinds: set[str], path: str) -> list[Finding]:
        """``sup`` accepts listed values only, ``sub`` a whole type."""
        if kinds <= {"null", "boolean"}:
            domain = [None] * ("null" in kinds) + [True, False] * ("boolean" in kinds)
            return self.values({"enum": domain}, sup, path)
        allowed = [sup["const"]] if "const" in sup else sup["enum"]
        if kinds & {"string", "number", "integer"}:
            return [_breaking(path, f"only {_show(allowed)} accepted")]
        return [_undecided(path, "enum/const of objects or arrays in the receiving schema")]

    def arrays(self, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str) -> list[Finding]:
        found = _range(sub, sup, "minItems", "maxItems", "items", path)
        if sup.get("uniqueItems") is True and sub.get("uniqueItems") is not True and sub.get("maxItems", 2) > 1:
            found.append(_breaking(path, "items must be unique"))
        if sub.get("maxItems") != 0:
            found += self.node(sub.get("items", True), sup.get("items", True), f"{path}[*]")
        return found

    def objects(self, sub: Mapping[str, Any], sup: Mapping[str, Any], path: str) -> list[Finding]:
        found = []
        sub_props, sup_props = sub.get("properties", {}), sup.get("properties", {})
        sub_extra, sup_extra = sub.get("additionalProperties", True), sup.get("additionalProperties", True)
        sub_required = set(sub.get("required", ()))
        newly_required = [name for name in sup.get("required", ()) if name not in sub_required]
        for name in newly_required:
            found.append(_breaking(field_path(path, name), f'field "{name}" is now required', "required"))
        for name in dict.fromkeys([*sub_props, *sup_props]):
            mine, theirs = sub_props.get(name, sub_extra), sup_props.get(name, sup_extra)
            if mine is False:
                continue
            if theirs is False:
                found.append(_breaking(field_path(path, name), f'field "{name}" is not accepted (closed object)'))
            elif name in sub_props or not _accepts_all(mine):
                found += self.node(mine, theirs, field_path(path, name))
            elif name not in newly_required and self.node(mine, theirs, field_path(path, name)):
                found.append(_breaking(field_path(path, name), f'field "{name}" is constrained here but not '
                                       f"declared by the other side's open object (any value)", "undeclared"))
        if sub_extra is not False and sup_extra is False:
            listed = ", ".join(f'"{n}"' for n in sup_props) or "none"
            found.append(_breaking(f"{path}.*", f"closed object: fields other than {listed} are not accepted"))
        elif sub_extra is not False:
            found += self.node(sub_extra, sup_extra, f"{path}.*")
        return found + _property_counts(sub, sup, sub_required, sub_extra, path)


def _property_counts(sub: Mapping[str, Any], sup: Mapping[str, Any], required: set[str], extra: Any,
                     path: str) -> list[Finding]:
    found = []
    least = sup.get("minProperties", 0)
    if least and max(sub.get("minProperties", 0), len(required)) < least:
        found.append(_undecided(path, f"minProperties {least}"))
    most = sup.get("maxProperties")
    if most is not None:
        bound = sub.get("maxProperties", len(sub.get("properties", {})) if extra is False else math.inf)
        if bound > most:
            found.append(_undecided(path, f"maxProperties {most}"))
    return found


def _range(sub: Mapping[str, Any], sup: Mapping[str, Any], low: str, high: str, what: str,
           path: str) -> list[Finding]:
    """``minLength``/``maxLength`` or ``minItems``/``maxItems`` of ``sub`` inside ``sup``'s."""
    found = []
    if sub.get(low, 0) < sup.get(low, 0):
        found.append(_breaking(path, f"{low} {sup[low]} is stricter than {sub.get(low, 0)}"))
    if sub.get(high, math.inf) > sup.get(high, math.inf):
        found.append(_breaking(path, f"{high} {sup[high]} is stricter than {sub.get(high, 'none')}"))
    return found


def _strings(sub: Mapping[str, Any], sup: Mapping[str, Any], path: str) -> list[Finding]:
    found = _range(sub, sup, "minLength", "maxLength", "characters", path)
    for key in ("pattern", "format", "contentEncoding", "contentMediaType"):
        if key in sup and sub.get(key) != sup[key]:
            found.append(_undecided(path, f"{key} {sup[key]!r} (the other side: {sub.get(key, 'none')!r})"))
    return found


def _numbers(sub: Mapping[str, Any], sup: Mapping[str, Any], kinds: set[str], path: str) -> list[Finding]:
    integers = "number" not in kinds
    found = []
    for side, sign in (("minimum", 1), ("maximum", -1)):
        theirs = _bound(sup, side, sign, False)
        mine = _bound(sub, side, sign, integers)
        if theirs is None:
            continue
        if mine is None or _looser(mine, theirs, sign):
            word = "lower" if sign > 0 else "upper"
            found.append(_breaking(path, f"{word} bound {_show_bound(theirs, sign)} is stricter than "
                                         f"{_show_bound(mine, sign) if mine else 'none'}"))
    step = sup.get("multipleOf")
    if step is not None and not _multiple(sub.get("multipleOf"), step, integers):
        found.append(_undecided(path, f"multipleOf {step}"))
    return found


Bound = tuple[Fraction, bool]  # (value, exclusive)


def _bound(schema: Mapping[str, Any], side: str, sign: int, integers: bool) -> Bound | None:
    """The tighter of ``minimum``/``exclusiveMinimum`` (or the maxima); for integers made
    inclusive (x > 0.5 is x >= 1)."""
    candidates = []
    if side in schema:
        candidates.append((Fraction(schema[side]), False))
    exclusive = "exclusiveMinimum" if side == "minimum" else "exclusiveMaximum"
    if exclusive in schema:
        candidates.append((Fraction(schema[exclusive]), True))
    if not candidates:
        return None
    value, strict = max(candidates, key=lambda b: (sign * b[0], b[1]))
    if integers:  # the nearest integer inside the bound, inclusive
        if sign > 0:
            value = Fraction(math.floor(value) + 1) if strict else Fraction(math.ceil(value))
        else:
            value = Fraction(math.ceil(value) - 1) if strict else Fraction(math.floor(value))
        strict = False
    return value, strict


def _looser(mine: Bound, theirs: Bound, sign: int) -> bool:
    """Whether ``mine`` lets through a value ``theirs`` refuses."""
    (a, a_strict), (b, b_strict) = mine, theirs
    if sign * a != sign * b:
        return sign * a < sign * b
    return b_strict and not a_strict


def _multiple(mine: Any, step: Any, integers: bool) -> bool:
    ratio_of = Fraction(mine) / Fraction(step) if mine is not None else None
    if ratio_of is not None and ratio_of.denominator == 1:
        return True
    return integers and (Fraction(1) / Fraction(step)).denominator == 1


def _show_bound(bound: Bound, sign: int) -> str:
    value, strict = bound
    shown = str(value.numerator) if value.denominator == 1 else str(float(value))
    return f"{'>' if sign > 0 else '<'}{'' if strict else '='} {shown}"


def _show(values: list[Any]) -> str:
    return ", ".join(repr(v) for v in values[:10]) + (" ..." if len(values) > 10 else "")


_ASSERTIONS = frozenset({
    "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minLength", "maxLength", "pattern", "format", "properties", "required",
    "additionalProperties", "items", "minItems", "maxItems", "uniqueItems", "minProperties",
    "maxProperties", "contentEncoding", "contentMediaType",
})
