"""The validation fast paths (tasker_host.schema_checks) agree with the full jsonschema checks."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from tasker_host.templates import TemplateLoader


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
