"""The compatibility checker (tasker_host.contracts.subschema): each keyword it reasons about,
"cannot decide" for what it does not, and the property that makes it safe: when it says
compatible, no instance the first schema accepts is refused by the second."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tasker_host.contracts.subschema import Verdict, compare


def messages(sub: Any, sup: Any) -> list[tuple[str, str, str]]:
    return [(f.verdict.value, f.path, f.message) for f in compare(sub, sup)]


REFUND = {"type": "object", "required": ["payment_id", "refund_amount"],
          "properties": {"payment_id": {"type": "string"}, "refund_amount": {"type": "number", "minimum": 0}}}


def test_a_new_required_field_is_breaking_with_its_path():
    new = {**REFUND, "required": [*REFUND["required"], "reason_code"],
           "properties": {**REFUND["properties"], "reason_code": {"type": "string"}}}
    assert messages(REFUND, new) == [("breaking", "$.reason_code", 'field "reason_code" is now required')]
    assert compare(new, REFUND) == []  # the other way round: sends more than is required


def test_closed_objects_refuse_what_an_open_one_may_send():
    closed = {**REFUND, "additionalProperties": False}
    assert messages(REFUND, closed) == [
        ("breaking", "$.*", 'closed object: fields other than "payment_id", "refund_amount" are not accepted')]
    assert compare(closed, REFUND) == []
    extra = {**closed, "properties": {**closed["properties"], "note": {"type": "string"}}}
    assert messages(extra, closed) == [("breaking", "$.note", 'field "note" is not accepted (closed object)')]


@pytest.mark.parametrize(("sub", "sup", "ok"), [
    ({"type": "integer"}, {"type": "number"}, True),
    ({"type": "number"}, {"type": "integer"}, False),
    ({"type": ["string", "null"]}, {"type": "string"}, False),
    ({"type": "integer", "exclusiveMinimum": 0}, {"type": "integer", "minimum": 1}, True),
    ({"type": "number", "exclusiveMinimum": 0}, {"type": "number", "minimum": 1}, False),
    ({"type": "number", "minimum": 0}, {"type": "number", "exclusiveMinimum": 0}, False),
    ({"type": "number", "maximum": 5}, {"type": "number", "maximum": 10}, True),
    ({"type": "number"}, {"type": "number", "maximum": 10}, False),
    ({"type": "integer", "multipleOf": 4}, {"type": "integer", "multipleOf": 2}, True),
    ({"type": "string", "minLength": 2, "maxLength": 4}, {"type": "string", "minLength": 1}, True),
    ({"type": "string"}, {"type": "string", "maxLength": 4}, False),
    ({"enum": ["a", "b"]}, {"type": "string", "pattern": "^[ab]$"}, True),
    ({"enum": ["a", "c"]}, {"enum": ["a", "b"]}, False),
    ({"const": 3}, {"type": "integer", "maximum": 3}, True),
    ({"type": "boolean"}, {"enum": [True, False]}, True),
    ({"type": "string"}, {"enum": ["a"]}, False),
    ({"type": "array", "items": {"type": "integer"}, "maxItems": 2},
     {"type": "array", "items": {"type": "number"}, "maxItems": 3}, True),
    ({"type": "array", "items": {"type": "number"}}, {"type": "array", "items": {"type": "integer"}}, False),
    ({"type": "array"}, {"type": "array", "uniqueItems": True}, False),
    ({"type": "array", "minItems": 0}, {"type": "array", "minItems": 1}, False),
    ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}}},
     {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "number"}}}}}, True),
    (False, {"type": "string"}, True),
    (True, {}, True),
    ({"type": "string"}, False, False),
])
def test_keywords(sub: Any, sup: Any, ok: bool):
    found = compare(sub, sup)
    assert (found == []) is ok, found
    assert all(f.verdict is Verdict.BREAKING for f in found)


def test_nested_paths_name_the_field():
    sub = {"type": "object", "properties": {"lines": {"type": "array", "items": {
        "type": "object", "properties": {"qty": {"type": "number"}}}}}}
    sup = {"type": "object", "properties": {"lines": {"type": "array", "items": {
        "type": "object", "properties": {"qty": {"type": "integer"}}}}}}
    assert messages(sub, sup) == [("breaking", "$.lines[*].qty", "type number is not accepted (accepts integer)")]


@pytest.mark.parametrize("keyword", [
    {"$ref": "#/$defs/x"}, {"anyOf": [{"type": "string"}]}, {"oneOf": [{"type": "string"}]},
    {"allOf": [{"type": "string"}]}, {"not": {"type": "string"}}, {"if": {"type": "string"}},
    {"patternProperties": {"^x": {}}}, {"prefixItems": [{}]},
])
def test_what_it_cannot_decide_it_says_with_the_path(keyword: dict[str, Any]):
    for sub, sup in ((keyword, {"type": "string"}), ({"type": "string"}, keyword)):
        wrapped = compare({"type": "object", "properties": {"a": sub}}, {"type": "object", "properties": {"a": sup}})
        assert [(f.verdict, f.path) for f in wrapped] == [(Verdict.CANNOT_DECIDE, "$.a")]


def test_differing_patterns_formats_and_dialects_cannot_be_decided():
    assert messages({"type": "string", "pattern": "^a"}, {"type": "string", "pattern": "^a"}) == []
    assert [f.verdict for f in compare({"type": "string"}, {"type": "string", "pattern": "^a"})] == [
        Verdict.CANNOT_DECIDE]
    assert [f.verdict for f in compare({"type": "string"}, {"type": "string", "format": "date"})] == [
        Verdict.CANNOT_DECIDE]
    old = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "string"}
    assert [f.verdict for f in compare(old, {"type": "string"})] == [Verdict.CANNOT_DECIDE]


# --- the property ---------------------------------------------------------------------------------
NAMES = st.sampled_from(["a", "b", "c"])
SMALL = st.integers(-3, 3)


@st.composite
def numbers(draw: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": draw(st.sampled_from(["integer", "number"]))}
    for key in draw(st.sets(st.sampled_from(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]))):
        schema[key] = draw(st.one_of(SMALL, st.sampled_from([-0.5, 0.5, 1.5])))
    if draw(st.booleans()) and schema["type"] == "integer":
        schema["multipleOf"] = draw(st.sampled_from([1, 2, 3]))
    return schema


@st.composite
def strings(draw: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for key in draw(st.sets(st.sampled_from(["minLength", "maxLength"]))):
        schema[key] = draw(st.integers(0, 3))
    return schema


LEAVES = st.one_of(
    numbers(), strings(), st.just({"type": "boolean"}), st.just({"type": "null"}), st.just({}),
    st.lists(st.one_of(SMALL, st.sampled_from(["a", "b", True, None])), min_size=1, max_size=3,
             unique_by=lambda v: (type(v), v)).map(lambda vs: {"enum": vs}),
    st.lists(st.sampled_from(["string", "integer", "number", "null"]), min_size=1, max_size=2,
             unique=True).map(lambda ts: {"type": ts}),
)


def containers(inner: Any) -> Any:
    objects = st.fixed_dictionaries({
        "type": st.just("object"),
        "properties": st.dictionaries(NAMES, inner, max_size=3),
    }, optional={"required": st.lists(NAMES, unique=True, max_size=3),
                 "additionalProperties": st.one_of(st.booleans(), inner)})
    arrays = st.fixed_dictionaries({"type": st.just("array")}, optional={
        "items": inner, "minItems": st.integers(0, 2), "maxItems": st.integers(0, 3),
        "uniqueItems": st.booleans()})
    return st.one_of(objects, arrays)


SCHEMAS = st.recursive(LEAVES, containers, max_leaves=6)


@st.composite
def related(draw: Any, schema: Any) -> Any:
    """``schema`` changed a little (so that many pairs are compatible and many are not)."""
    if not isinstance(schema, dict) or draw(st.integers(0, 4)) == 0:
        return draw(SCHEMAS) if draw(st.booleans()) else schema
    changed = dict(schema)
    for key in list(changed):
        value = changed[key]
        if key == "properties":
            changed[key] = {k: draw(related(v)) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            changed[key] = draw(related(value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and draw(st.booleans()):
            changed[key] = value + draw(st.sampled_from([-1, 1]))
        elif draw(st.integers(0, 5)) == 0:
            del changed[key]
    return changed


ANY_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), SMALL, st.sampled_from([-0.5, 0.5, 2.5]), st.text("ab", max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abcd"), inner, max_size=3)),
    max_leaves=5)


def instances(schema: Any) -> Any:
    """Values shaped by ``schema`` (mostly valid; the test keeps the valid ones). hypothesis-jsonschema
    would do this, but its 0.23 release fails on object schemas with current Hypothesis."""
    if not isinstance(schema, dict) or not schema:
        return ANY_JSON
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema.get("type", ["null", "boolean", "integer", "number", "string", "object", "array"])
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return st.one_of([_of_type(kind, schema) for kind in kinds])


def _of_type(kind: str, schema: dict[str, Any]) -> Any:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 4)
    simple = {"null": st.none(), "boolean": st.booleans(), "integer": st.integers(-5, 5),
              "number": st.one_of(st.integers(-5, 5), st.sampled_from([-1.5, -0.5, 0.5, 1.5, 2.5])),
              "string": st.text("ab", min_size=low, max_size=max(low, high))}
    if kind in simple:
        return simple[kind]
    if kind == "array":
        return st.lists(instances(schema.get("items", {})), min_size=schema.get("minItems", 0),
                        max_size=max(schema.get("minItems", 0), schema.get("maxItems", 3)))
    props, extra = schema.get("properties", {}), schema.get("additionalProperties", {})
    names = [*props, *(["d"] if extra is not False else [])]
    return st.fixed_dictionaries({}, optional={
        n: instances(props.get(n, extra if extra is not True else {})) for n in names})


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(st.data())
def test_compatible_means_every_instance_of_the_first_is_accepted_by_the_second(data: Any):
    sub = data.draw(SCHEMAS, label="sub")
    sup = data.draw(related(sub), label="sup")
    if compare(sub, sup):
        return
    checker = Draft202012Validator(sup)
    for _ in range(3):
        instance = data.draw(instances(sub).filter(Draft202012Validator(sub).is_valid), label="instance")
        assert checker.is_valid(instance), (sub, sup, instance)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCHEMAS)
def test_a_schema_is_compatible_with_itself(schema: Any):
    assert [f for f in compare(schema, schema) if f.verdict is Verdict.BREAKING] == []
