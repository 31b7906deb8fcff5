"""The validation fast paths (tasker_host.schema_checks) agree with the full jsonschema checks;
the loader and ``load_catalog`` use them (and pause the cyclic GC while loading)."""

from __future__ import annotations

import copy
import functools
import gc
import random
from collections.abc import Callable
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tasker_host.host import load_catalog
from tasker_host.schema_checks import quick_check
from tasker_host.settings import HostSettings
from tasker_host.templates import TemplateLoader
from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin, template_doc


@pytest.fixture(scope="module")
def loader() -> TemplateLoader:
    return TemplateLoader()


# --- fast paths agree with the full validators --------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {}, {"name": "Bad"}, {"name": 3}, {"visibility": "x"}, {"deprecated": 1},
        {"deprecated": False}, {"x-any": {"k": 1}}, {"extra": 1}, {"step_templates": []},
        {"schema": []}, {"version": ""}, {"step": {"default_retry_limit": 1.0}},
        {"step": {"default_retry_limit": 1.5}}, {"step": {"default_retry_limit": True}},
        {"step": {"handler_config": {"timeout_seconds": True}}},
        {"step": {"handler_config": {"timeout_seconds": 0.001}}}, {"step": {"x-y": 1}},
        {"step": {"depends_on_steps": ["a", ""]}}, {"step": {"skippable": "no"}},
        {"step": {"name": ""}}, {"step": {"handler_class": None}},
    ],
)  # fmt: skip
def test_quick_document_check_agrees_with_jsonschema(loader: TemplateLoader, change: dict) -> None:
    doc = {"name": "a", "namespace_name": "b", "version": "1", "step_templates": [
        {"name": "s", "handler_class": "H", "handler_config": {"timeout_seconds": 5}}]}
    doc["step_templates"][0].update(change.pop("step", {}))
    doc.update(change)
    assert loader._quick(doc) == loader._validator.is_valid(doc)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "strin"}}, "required": "a"},
        {"properties": {"a": {"minimum": "x", "pattern": "("}}, "$defs": {"d": {"enum": 1}}},
        {"allOf": [{"$ref": "#/$defs/x"}], "$defs": {"x": {"type": ["string", "nope"]}}},
        {"dependencies": {"a": ["b", 1]}, "items": {"minItems": -1}, "$id": "not a uri"},
        {"if": {"const": 1}, "then": False, "unevaluatedProperties": {"format": 3}},
    ],
)
def test_flattened_meta_schema_agrees_with_the_official_one(loader: TemplateLoader, schema) -> None:
    official = Draft202012Validator(
        Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    fast = loader._meta_validators[Draft202012Validator]
    assert fast.schema is not Draft202012Validator.META_SCHEMA  # the flattening was used

    def found(validator) -> set:
        return {(tuple(e.absolute_path), e.message) for e in validator.iter_errors(schema)}

    assert found(fast) == found(official) != set()


# --- the compiled meta-schema predicate never says "valid" where jsonschema finds an error -------
DIALECT = "https://json-schema.org/draft/2020-12/schema"
NAMES = ("a", "b", "x-y", "$id", "type", "a/b", "~0", "%25", "")
TYPES = ("string", "number", "integer", "object", "array", "boolean", "null")
JUNK = (3, -1, 0, 1.5, 1.0, 1e300, "x", "(", "", None, True, False, [], {}, [1, 1], ["a", "a"],
        ["a", 1], {"a": 3}, {1: {}}, "x#frag", "1bad", float("inf"))  # fmt: skip
SUBSCHEMA = ("items", "contains", "additionalProperties", "propertyNames", "if", "then", "else",
             "not", "unevaluatedItems", "unevaluatedProperties", "contentSchema")  # fmt: skip
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
          "minContains", "maxContains")  # fmt: skip
NUMBERS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
OTHER = ("type", "required", "pattern", "enum", "const", "format", "$ref", "$dynamicRef", "$id",
         "$schema", "$anchor", "$dynamicAnchor", "$vocabulary", "$comment", "title",
         "dependentRequired", "dependencies", "uniqueItems", "deprecated", "examples", "default",
         "contentEncoding", "$recursiveRef", "$recursiveAnchor", "x-custom")  # fmt: skip
KEYWORDS = SUBSCHEMA + SCHEMA_MAPS + SCHEMA_LISTS + COUNTS + NUMBERS + OTHER


def random_schema(rng: random.Random, depth: int) -> Any:
    """A random draft 2020-12 schema: mostly well-formed, often with a mistake somewhere."""
    if depth <= 0 or rng.random() < 0.2:
        return rng.choice([True, False, {}, {"type": "string"}])
    keys = rng.sample(KEYWORDS, rng.randint(1, 4))
    return {k: rng.choice(JUNK) if rng.random() < 0.08 else keyword_value(rng, k, depth) for k in keys}


def keyword_value(rng: random.Random, key: str, depth: int) -> Any:
    pick, sub = rng.choice, lambda: random_schema(rng, depth - 1)
    names = lambda: [pick(NAMES) for _ in range(rng.randint(0, 3))]  # noqa: E731  (dups too)
    if key in SUBSCHEMA:
        return sub()
    if key in SCHEMA_MAPS:
        keys = ("^x-", "(", r"\w+", "[a-", 1) if key == "patternProperties" else (*NAMES, 1)
        return {pick(keys): sub() for _ in range(rng.randint(0, 3))}
    if key in SCHEMA_LISTS:
        return [sub() for _ in range(rng.randint(0, 3))]
    if key in COUNTS:
        return pick([0, 1, 5, 1.0, 2.5, -1, True])
    if key in NUMBERS:
        return pick([0, 1, -3, 0.5, 1e300, "1"])
    choices = {
        "type": lambda: pick([pick(TYPES), rng.sample(TYPES, rng.randint(1, 3)), ["string", "string"],
                              "strin", [], ["string", 1]]),
        "required": names, "dependentRequired": lambda: {pick(NAMES): names()},
        "dependencies": lambda: {pick(NAMES): pick([sub(), names(), ["a", 1]])},
        "pattern": lambda: pick(["^a", r"\d+", "(", "[a-", "a{2}", 3]),
        "enum": lambda: [pick(JUNK) for _ in range(rng.randint(0, 3))], "const": lambda: pick(JUNK),
        "format": lambda: pick(["email", "uri", "date", "regex", "nope", 3]),
        "$id": lambda: pick(["https://x.example/s", "x#frag", "#", "s.json#", ""]),
        "$schema": lambda: pick([DIALECT, "http://json-schema.org/draft-07/schema#", "no uri"]),
        "$vocabulary": lambda: {pick(["https://x.example/v", "rel", 1]): pick([True, False, 1])},
        "uniqueItems": lambda: pick([True, False, "yes"]), "deprecated": lambda: pick([True, "x"]),
        "examples": lambda: pick([[1, "a"], "x"]),
    }  # fmt: skip
    if key in choices:
        return choices[key]()
    if key in ("$ref", "$dynamicRef", "$recursiveRef"):
        return pick(["#", "#/$defs/a", "other.json#", "#anchor", "http://x.example/y#/z"])
    if key in ("$anchor", "$dynamicAnchor", "$recursiveAnchor"):
        return pick(["a_1", "1bad", "a-b.c", ""])
    return pick(["text", *JUNK])  # $comment, title, contentEncoding, default, x-custom


CONTEXT_SCHEMA = {
    "$schema": DIALECT, "type": "object", "required": ["payment_id", "refund_amount"],
    "properties": {
        "payment_id": {"type": "string", "description": "Payment gateway transaction ID"},
        "refund_amount": {"type": "number", "minimum": 0},
        "refund_reason": {"type": "string", "enum": ["customer_request", "fraud"]},
        "partial_refund": {"type": "boolean", "default": False},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}  # fmt: skip


def mutated(rng: random.Random) -> Any:
    """The context schema the template generator writes, with one or two random mistakes."""
    schema = copy.deepcopy(CONTEXT_SCHEMA)
    for _ in range(rng.randint(1, 2)):
        node = schema
        while isinstance(node, dict) and node and rng.random() < 0.6:
            child = node[rng.choice(list(node))]
            if not isinstance(child, dict):
                break
            node = child
        key = rng.choice([*KEYWORDS, *node]) if node else rng.choice(KEYWORDS)
        node[key] = rng.choice(JUNK) if rng.random() < 0.4 else keyword_value(rng, key, 2)
    return schema


@pytest.fixture(scope="module")
def meta_checks(loader: TemplateLoader) -> tuple[Callable[[Any], bool], Callable[[Any], bool]]:
    """(fast predicate, jsonschema's verdict) for the 2020-12 meta-schema the loader uses."""
    full = loader._meta_validators[Draft202012Validator]
    return loader._meta_quick, lambda schema: next(iter(full.iter_errors(schema)), None) is None


def test_meta_predicate_never_says_valid_when_jsonschema_finds_errors(meta_checks) -> None:
    fast, full = meta_checks
    rng = random.Random(20261127)
    schemas = [random_schema(rng, 4) for _ in range(2500)] + [mutated(rng) for _ in range(2500)]
    valid_count = 0
    for schema in schemas:
        quick, valid = fast(schema), full(schema)
        assert valid or not quick, f"fast path says valid, jsonschema does not: {schema!r}"
        assert quick == valid, f"fast path unsure of a valid schema: {schema!r}"  # a real fast path
        valid_count += valid
    assert 1000 < valid_count < 4000  # both verdicts are well represented


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "strin"}, {"type": ["string", "string"]}, {"type": []}, {"type": ["string", 1]},
        {"properties": {"a": {"minimum": "x"}}}, {"properties": {"a": {"type": 3}}},
        {"properties": {1: {"type": "x"}}}, {"properties": {"a": True, "b": False}},
        {"required": "a"}, {"required": ["a", "a"]}, {"required": []}, {"pattern": "("},
        {"patternProperties": {"(": {}}}, {"patternProperties": {"^a": {"type": "nope"}}},
        {"patternProperties": {1: {}}}, {"propertyNames": {"pattern": "("}},
        {"minLength": -1}, {"minLength": 1.5}, {"minLength": 1.0}, {"minLength": True},
        {"maxItems": float("inf")}, {"multipleOf": 0}, {"multipleOf": 0.5}, {"enum": []},
        {"enum": [1, True, 1.0]}, {"items": {"type": "nope"}}, {"items": [{}]}, {"prefixItems": []},
        {"$defs": {"x": {"type": "bad"}}}, {"$defs": {"a": {"$ref": "#/$defs/a"}}}, {"$ref": "#"},
        {"additionalProperties": {"type": "x"}}, {"uniqueItems": "yes"}, {"uniqueItems": False},
        {"dependentRequired": {"a": [1]}}, {"dependentRequired": {"a": ["b", "b"]}},
        {"dependencies": {"a": ["b", 1]}}, {"dependencies": {"a": {"type": "x"}}},
        {"allOf": []}, {"anyOf": [True, {"type": "x"}]}, {"not": {"type": "x"}}, {"if": {"type": "x"}},
        {"contentSchema": {"type": "x"}}, {"unevaluatedProperties": 3}, {"const": None},
        {"const": {"type": "x"}}, {"default": {"type": "nope"}}, {"examples": "x"},
        {"$id": "x#frag"}, {"$id": "x#"}, {"$id": 3}, {"$schema": "not a uri"}, {"$anchor": "1bad"},
        {"$dynamicAnchor": "ok_name"}, {"$vocabulary": {"https://x.example": 1}}, {"$comment": 1},
        {"format": 3}, {"deprecated": "yes"}, {"x-custom": {"type": "x"}},
        {"properties": {"a": {"format": "regex", "pattern": "[a-"}}},
        functools.reduce(lambda inner, _: {"items": inner}, range(60), {"type": "x"}),
        functools.reduce(lambda inner, _: {"items": inner}, range(60), {"type": "string"}),
        True, False, 3, "x", None, [],
    ],
)  # fmt: skip
def test_meta_predicate_edge_cases_agree_with_jsonschema(meta_checks, schema: Any) -> None:
    fast, full = meta_checks
    assert fast(schema) == full(schema)


def test_meta_predicate_is_conservative_where_it_does_not_judge(meta_checks) -> None:
    fast, full = meta_checks
    schema = {"multipleOf": float("nan")}  # jsonschema: "nan <= 0" is false, so it is valid
    assert full(schema) and not fast(schema)


# --- the compiler itself, on schemas in the subset it implements ----------------------------------
def subset_schema(rng: random.Random, depth: int, refs: tuple[str, ...]) -> Any:
    """A random well-formed schema using only keywords ``quick_check`` implements.

    ``$ref`` only to ``refs``: ``"#"`` is added where the instance is descended into (so
    validation terminates); ``$defs`` targets get no references at all.
    """
    if depth <= 0 or rng.random() < 0.15:
        return rng.choice([True, False, {}])
    pick = rng.choice
    keys = rng.sample([k for k in SUBSET if refs or k != "$ref"], rng.randint(1, 3))
    inner = lambda: subset_schema(rng, depth - 1, (*refs, "#") if refs else ())  # noqa: E731
    values = {
        "type": lambda: pick([pick(TYPES), rng.sample(TYPES, rng.randint(1, 3))]),
        "properties": lambda: {pick(NAMES): inner() for _ in range(rng.randint(1, 3))},
        "patternProperties": lambda: {pick(["^x-", "a", "^$", "[0-9]"]): inner()},
        "additionalProperties": inner, "propertyNames": inner, "items": inner,
        "required": lambda: rng.sample(NAMES, rng.randint(0, 2)),
        "anyOf": lambda: [subset_schema(rng, depth - 1, refs) for _ in range(2)],
        "minItems": lambda: pick([0, 1, 2]), "minLength": lambda: pick([0, 1, 2.0]),
        "minimum": lambda: pick([0, 1, -1.5]), "exclusiveMinimum": lambda: pick([0, 1, 0.5]),
        "pattern": lambda: pick(["^a", "b$", "-"]), "enum": lambda: rng.sample(NAMES, 2),
        "format": lambda: pick(["email", "date", "regex", "ipv4", "uri"]),
        "uniqueItems": lambda: pick([True, False]), "$ref": lambda: pick(refs),
    }  # fmt: skip
    return {key: values[key]() for key in keys}


SUBSET = ("type", "properties", "patternProperties", "additionalProperties", "propertyNames",
          "items", "required", "anyOf", "minItems", "minLength", "minimum", "exclusiveMinimum",
          "pattern", "enum", "format", "uniqueItems", "$ref")  # fmt: skip
STRINGS = ("a", "b", "x-y", "ab-", "", "2024-01-31", "2024-13-01", "a@b.example", "(", "10.0.0.1")


def random_instance(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth <= 0 or roll < 0.5:
        return rng.choice([*STRINGS, 0, 1, 1.0, 2.5, -2, True, False, None])
    if roll < 0.75:
        return [random_instance(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(NAMES): random_instance(rng, depth - 1) for _ in range(rng.randint(0, 3))}


def test_quick_check_never_says_valid_when_jsonschema_finds_errors() -> None:
    rng, undecided = random.Random(4242), 0
    for _ in range(1500):
        defs = {name: subset_schema(rng, 2, ()) for name in ("d0", "d1")}
        root = subset_schema(rng, 3, ("#/$defs/d0", "#/$defs/d1"))
        schema = {**(root if isinstance(root, dict) else {"anyOf": [root]}), "$defs": defs}
        full = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        fast = quick_check(schema, full.format_checker)
        for instance in [random_instance(rng, 3) for _ in range(8)]:
            valid, quick = full.is_valid(instance), fast(instance)
            assert valid or not quick, f"fast path says valid, jsonschema does not: {schema!r} {instance!r}"
            # the only thing left undecided: uniqueItems on arrays that are not all strings
            assert quick == valid or not strings_only(instance), f"{schema!r} on {instance!r}"
            undecided += quick != valid
    assert undecided < 200  # of 12,000


def strings_only(instance: Any) -> bool:
    """Whether every array inside ``instance`` holds only strings."""
    if isinstance(instance, list):
        return all(isinstance(item, str) for item in instance)
    if isinstance(instance, dict):
        return all(strings_only(value) for value in instance.values())
    return True


def test_quick_check_local_references() -> None:
    tree = {"type": "object", "properties": {"child": {"$ref": "#"}, "n": {"$ref": "#/$defs/a~1b"}},
            "$defs": {"a/b": {"$ref": "#/$defs/%25"}, "%": {"type": "integer"}}}  # fmt: skip
    fast = quick_check(tree)
    assert fast({"child": {"child": {"n": 1}}, "n": 2.0})
    assert not fast({"child": {"child": {"n": "1"}}}) and not fast({"child": 3})
    escaped = {"$ref": "#/$defs/a%2Fb", "$defs": {"a/b": {"type": "string"}, "a": {"b": False}}}
    assert not Draft202012Validator(escaped).is_valid("x") and not quick_check(escaped)("x")


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "other.json"}, {"$ref": "#anchor"}, {"$ref": "#/$defs/missing"}, {"$ref": 3},
        {"$dynamicRef": "#meta"}, {"not": {}}, {"prefixItems": [True]}, {"enum": [1, "a"]},
        {"items": {"$id": "inner", "type": "string"}}, {"$schema": "http://json-schema.org/draft-07/schema#"},
        {"$ref": "#/$defs/x/y", "$defs": {"x": {"$id": "x", "y": {}}}}, {"type": "strin"},
        {"uniqueItems": 1}, {"minimum": "0"}, {"pattern": "("}, {"anyOf": []}, 3,
    ],
)  # fmt: skip
def test_quick_check_falls_back_on_what_it_does_not_implement(schema: Any) -> None:
    fast = quick_check(schema)
    assert not any(fast(value) for value in ([], {}, "", 0, None, {"a": 1}, ["a"]))


def test_quick_check_booleans_formats_and_failures_inside_the_predicate() -> None:
    assert quick_check({"items": False})([]) and not quick_check({"items": False})([1])
    assert quick_check({"format": "email"})("not an email")  # no format checker: annotation
    checked = quick_check({"format": "email"}, Draft202012Validator.FORMAT_CHECKER)
    assert checked("a@b.example") and not checked("not an email")
    keys = quick_check({"patternProperties": {"^a": {"type": "string"}}})
    assert not keys({1: "x"})  # re.search on an int key raises: "not sure", the full check decides


# --- wiring: the loader and load_catalog ----------------------------------------------------------
def test_valid_context_schemas_skip_jsonschema() -> None:
    loader = TemplateLoader()

    class Unused:
        def iter_errors(self, schema: Any) -> Any:
            raise AssertionError(f"jsonschema used for a valid schema: {schema!r}")

    loader._meta_validators[Draft202012Validator] = Unused()
    doc = template_doc("payments", "refund", "1.0.0", schema=copy.deepcopy(CONTEXT_SCHEMA))
    template, problems = loader.load_mapping(doc)
    assert problems == [] and template is not None


@pytest.mark.parametrize("enabled", [True, False])
def test_load_catalog_pauses_the_cyclic_gc(enabled: bool) -> None:
    seen = []

    def tasker_templates() -> list[Any]:
        seen.append(gc.isenabled())
        return [template_doc("payments", "refund", "1.0.0")]

    plugin = make_plugin(["payments"], handlers={"Noop": NoopHandler}, tasker_templates=tasker_templates)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        catalog = load_catalog(HostSettings(), entry_points=[
            FakeEntryPoint.of("payments", plugin, dist="tasker-payments", version="1.0.0")])
        assert seen == [False] and gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    assert catalog.registry.template_count == 1 and not catalog.failures
