"""Strict template loading (tasker_host.templates): loading, defaults, schema and semantic errors.

YAML-level strictness is in test_template_yaml.py, the validation fast paths in
test_template_schema_checks.py.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from types import MappingProxyType

import pytest
from jsonschema import Draft202012Validator
from packaging.version import Version

from tasker_host.models import Visibility
from tasker_host.templates import TemplateLoader
from tests.template_support import MINIMAL, assert_problem, only, problems_of

FIXTURES = Path(__file__).parent / "fixtures" / "templates"
PAYMENTS = FIXTURES / "payments_process_refund.yaml"
CUSTOMER_SUCCESS = FIXTURES / "customer_success_process_refund.yaml"
SEED = Path("/work/shared/seed/team-scaling-namespaces.md")


@pytest.fixture(scope="module")
def loader() -> TemplateLoader:
    return TemplateLoader()


# --- the seed's Tasker documents --------------------------------------------------------------
def test_fixtures_are_the_seed_documents_verbatim() -> None:
    if not SEED.exists():
        pytest.skip("seed document not available")
    blocks = re.findall(r"```yaml\n(.*?)```", SEED.read_text(encoding="utf-8"), re.S)
    refund_blocks = [b for b in blocks if "step_templates:\n  - name: validate_" in b]
    assert refund_blocks == [PAYMENTS.read_text("utf-8"), CUSTOMER_SUCCESS.read_text("utf-8")]


def test_seed_payments_template_loads(loader: TemplateLoader) -> None:
    (template,), problems = loader.load_path(PAYMENTS)
    assert problems == []
    assert template.full_name == "payments.process_refund@2.1.3"
    assert template.version == Version("2.1.3") and template.source == str(PAYMENTS)
    assert template.task_handler_class == "Payments::ProcessRefundHandler"
    assert template.default_dependent_system == "payment_gateway"
    assert template.context_schema["required"] == ["payment_id", "refund_amount"]
    assert template.visibility is Visibility.PUBLIC and template.deprecated is None
    assert template.step_names == [
        "validate_payment_eligibility", "process_gateway_refund", "update_payment_records",
        "notify_customer",
    ]  # fmt: skip
    assert [s.depends_on for s in template.steps] == [
        (), ("validate_payment_eligibility",), ("process_gateway_refund",),
        ("update_payment_records",),
    ]  # fmt: skip
    assert [s.retry_limit for s in template.steps] == [3, 2, 3, 5]
    assert [s.timeout_seconds for s in template.steps] == [15.0, 30.0, 20.0, 10.0]
    assert all(s.retryable and not s.skippable for s in template.steps)
    step = template.step("process_gateway_refund")
    assert step.handler_class == "Payments::StepHandlers::ProcessGatewayRefundHandler"


def test_seed_customer_success_template_loads(loader: TemplateLoader) -> None:
    (template,), problems = loader.load_path(str(CUSTOMER_SUCCESS))
    assert problems == []
    assert template.key == ("customer_success", "process_refund", Version("1.3.3"))
    assert len(template.steps) == 5
    assert template.step("update_ticket_status").depends_on == ("execute_refund_workflow",)
    assert [s.retry_limit for s in template.steps] == [3, 2, 1, 3, 3]
    assert [s.timeout_seconds for s in template.steps] == [15.0, 10.0, 300.0, None, 15.0]
    config = template.step("execute_refund_workflow").handler_config
    assert config["target_namespace"] == "payments" and config["jitter_factor"] == 0.1
    with pytest.raises(TypeError):
        config["url"] = "elsewhere"  # type: ignore[index]


def test_locations_and_document_are_recorded(loader: TemplateLoader) -> None:
    (template,), _ = loader.load_path(PAYMENTS)
    assert template.line_of("name") == 2 and template.line_of("namespace_name") == 3
    assert template.line_of("version") == 4
    assert template.line_of("step_templates[0].handler_class") == 30
    assert template.line_of("step_templates[3].handler_class") == 56
    assert type(template.document) is dict
    assert template.document["step_templates"][1]["handler_config"] == {"timeout_seconds": 30}


def test_context_schema_is_usable_by_jsonschema(loader: TemplateLoader) -> None:
    (template,), _ = loader.load_path(PAYMENTS)
    validator = Draft202012Validator(template.context_schema)
    assert validator.is_valid({"payment_id": "p1", "refund_amount": 10})
    assert not validator.is_valid({"payment_id": "p1"})


# --- defaults and values ----------------------------------------------------------------------
def test_defaults(loader: TemplateLoader) -> None:
    template, problems = loader.load_text(MINIMAL, "min.yaml")
    assert problems == [] and template is not None
    first = template.steps[0]
    assert (first.retryable, first.retry_limit, first.skippable) == (True, 3, False)
    assert isinstance(first.handler_config, MappingProxyType) and dict(first.handler_config) == {}
    assert first.timeout_seconds is None and first.description == ""
    assert template.visibility is Visibility.PUBLIC and template.context_schema is None
    assert template.description == "" and template.deprecated is None


def test_optional_fields(loader: TemplateLoader) -> None:
    text = MINIMAL.replace("name: refund\n", "name: refund\nvisibility: private\n"
                           "deprecated: use process_refund 2.x\nx-owner: payments-team\n")
    text += "    skippable: true\n    default_retryable: false\n    x-note: extension\n"
    template, problems = loader.load_text(text)
    assert problems == [] and template is not None
    assert template.visibility is Visibility.PRIVATE
    assert template.deprecated == "use process_refund 2.x"
    assert template.steps[1].skippable and not template.steps[1].retryable
    flagged, _ = loader.load_text(MINIMAL + "deprecated: true\n")
    assert flagged is not None and flagged.deprecated == "deprecated"


def test_retry_limit_written_as_a_whole_float_is_an_int(loader: TemplateLoader) -> None:
    template, problems = loader.load_text(MINIMAL + "    default_retry_limit: 4.0\n")
    assert problems == [] and template is not None
    assert template.steps[1].retry_limit == 4 and type(template.steps[1].retry_limit) is int


def test_versions_compare_as_packaging_versions(loader: TemplateLoader) -> None:
    loaded = [loader.load_text(MINIMAL.replace('"1.0.0"', f'"{v}"'))[0] for v in
              ("2.10.0", "2.9.0", "1.0")]  # fmt: skip
    assert all(t is not None for t in loaded)
    newest = max(loaded, key=lambda t: t.version)
    assert newest.version == Version("2.10.0") > Version("2.9.0")
    assert [str(t.version) for t in sorted(loaded, key=lambda t: t.version)] == [
        "1.0", "2.9.0", "2.10.0"
    ]  # fmt: skip
    assert loaded[2].version == Version("1.0.0") and loaded[2].full_name.endswith("@1.0")


def test_both_dependency_keys_merge_in_order_without_duplicates(loader: TemplateLoader) -> None:
    text = MINIMAL + (
        "  - name: third\n    handler_class: Third\n"
        "  - name: fourth\n    handler_class: Fourth\n    depends_on_step: third\n"
        "    depends_on_steps: [first, third, second, first]\n"
    )
    template, problems = loader.load_text(text)
    assert problems == [] and template is not None
    assert template.step("fourth").depends_on == ("third", "first", "second")


# --- document schema --------------------------------------------------------------------------
def test_unknown_key_is_caught_with_a_suggestion(loader: TemplateLoader) -> None:
    p = only(problems_of(loader, MINIMAL.replace("depends_on_step:", "depends_on_stpe:")))
    assert_problem(p, 9, "step_templates[1].depends_on_stpe", "unknown key", "'depends_on_step'")


def test_missing_required_key_points_at_the_parent_mapping(loader: TemplateLoader) -> None:
    p = only(problems_of(loader, MINIMAL.replace("    handler_class: Second\n", "")))
    assert_problem(p, 7, "step_templates[1].handler_class", "missing required key")
    p = only(problems_of(loader, MINIMAL.replace("namespace_name: payments\n", "")))
    assert_problem(p, 1, "namespace_name", "missing required key")


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("    default_retry_limit: 0\n", "step_templates[1].default_retry_limit", ("minimum",)),
        ("    default_retry_limit: two\n", "step_templates[1].default_retry_limit", ("integer",)),
        ("    default_retryable: maybe\n", "step_templates[1].default_retryable", ("boolean",)),
        ("    handler_config: {timeout_seconds: 0}\n",
         "step_templates[1].handler_config.timeout_seconds", ("0",)),
        ("    handler_config: {timeout_seconds: '10'}\n",
         "step_templates[1].handler_config.timeout_seconds", ("number",)),
        ("    depends_on_steps: first\n", "step_templates[1].depends_on_steps", ("array",)),
    ],
)  # fmt: skip
def test_step_field_types(loader: TemplateLoader, extra: str, key: str, words: tuple[str]) -> None:
    assert_problem(only(problems_of(loader, MINIMAL + extra)), 10, key, *words)


def test_top_level_field_rules(loader: TemplateLoader) -> None:
    p = only(problems_of(loader, MINIMAL.replace("name: refund", "name: Refund-Flow")))
    assert_problem(p, 1, "name", "does not match")
    p = only(problems_of(loader, MINIMAL + "visibility: internal\n"))
    assert_problem(p, 10, "visibility", "'public'", "'private'", "'internal'")
    p = only(problems_of(loader, MINIMAL.split("step_templates:")[0] + "step_templates: []\n"))
    assert_problem(p, 4, "step_templates", "non-empty")


# --- semantic checks --------------------------------------------------------------------------
def test_unknown_dependency(loader: TemplateLoader) -> None:
    p = only(problems_of(loader, MINIMAL.replace("on_step: first", "on_step: frist")))
    assert_problem(p, 9, "step_templates[1].depends_on_step", "unknown step 'frist'", "'first'")


def test_self_dependency(loader: TemplateLoader) -> None:
    p = only(problems_of(loader, MINIMAL + "    depends_on_steps: [second]\n"))
    assert_problem(p, 10, "step_templates[1].depends_on_steps[0]", "depends on itself")


def test_dependency_cycle_shows_the_path(loader: TemplateLoader) -> None:
    text = MINIMAL.replace("    handler_class: First\n", "    handler_class: First\n"
                           "    depends_on_step: second\n")  # fmt: skip
    p = only(problems_of(loader, text))
    assert_problem(p, 7, "step_templates[0].depends_on_step", "first -> second -> first")


def test_duplicate_step_names(loader: TemplateLoader) -> None:
    duplicate, self_dependency = problems_of(loader, MINIMAL.replace("name: second", "name: first"))
    assert_problem(duplicate, 7, "step_templates[1].name", "duplicate step name 'first'", "line 5")
    assert_problem(self_dependency, 9, "step_templates[1].depends_on_step", "itself")


def test_context_schema_must_be_a_valid_json_schema(loader: TemplateLoader) -> None:
    text = MINIMAL + "schema:\n  type: object\n  properties:\n    amount:\n      type: numbr\n"
    p = only(problems_of(loader, text))
    assert_problem(p, 14, "schema.properties.amount.type", "not a valid JSON Schema")
    text = MINIMAL + "schema:\n  properties:\n    code: {pattern: '('}\n"
    assert_problem(only(problems_of(loader, text)), 12, "schema.properties.code.pattern", "regex")


def test_context_schema_dialects(loader: TemplateLoader) -> None:
    draft7 = MINIMAL + "schema:\n  $schema: http://json-schema.org/draft-07/schema#\n"
    assert loader.load_text(draft7)[0] is not None
    unknown = MINIMAL + "schema:\n  $schema: https://example.com/my-dialect\n"
    assert_problem(only(problems_of(loader, unknown)), 11, "schema.$schema", "unknown $schema")


def test_every_problem_is_reported_at_once(loader: TemplateLoader) -> None:
    text = (
        MINIMAL.replace('"1.0.0"', "1.10")
        .replace("depends_on_step: first", "depends_on_step: nowhere")
        .replace("    handler_class: First\n", "    handler_class: First\n    retries: 3\n")
    )
    problems = problems_of(loader, text)
    assert [(p.line, p.key) for p in problems] == [
        (3, "version"),
        (7, "step_templates[0].retries"),
        (10, "step_templates[1].depends_on_step"),
    ]


# --- sources ----------------------------------------------------------------------------------
def test_load_mapping(loader: TemplateLoader) -> None:
    data = {
        "name": "refund", "namespace_name": "payments", "version": "2.0",
        "step_templates": ({"name": "a", "handler_class": "A", "handler_config": {"k": [1]}},),
    }  # fmt: skip
    template, problems = loader.load_mapping(data, source="payments:refund")
    assert problems == [] and template is not None and template.source == "payments:refund"
    data["name"] = "changed"
    assert template.name == "refund" and template.document["name"] == "refund"
    assert template.line_of("name") is None


def test_load_mapping_problems_have_keys_but_no_lines(loader: TemplateLoader) -> None:
    data = {"name": "refund", "namespace_name": "payments", "version": 1.1, 7: "x",
            "step_templates": [{"name": "a", "handler_class": "A", "depends_on_step": "b"}]}
    template, problems = loader.load_mapping(data, source="mapping")
    assert template is None
    assert {(p.key, p.file, p.line) for p in problems} == {
        ("", "mapping", None), ("version", "mapping", None),
        ("step_templates[0].depends_on_step", "mapping", None),
    }  # fmt: skip
    assert any('write version: "1.1"' in p.message for p in problems)
    _, problems = loader.load_mapping(["not", "a", "mapping"])  # type: ignore[arg-type]
    assert only(problems).message.endswith("found a list")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_load_directory_sorted_recursive_yaml_only(loader: TemplateLoader, tmp_path: Path) -> None:
    files = [("b.yaml", "b_top"), ("a/z.yml", "a_z"), ("a/c.yaml", "a_c"), ("0.yaml", "zero")]
    for rel, name in files:
        write(tmp_path / rel, MINIMAL.replace("name: refund", f"name: {name}"))
    write(tmp_path / "README.md", "not yaml")
    write(tmp_path / "a" / "notes.txt", "name: [")
    write(tmp_path / ".hidden" / "x.yaml", "name: [")
    templates, problems = loader.load_path(tmp_path)
    assert problems == []
    assert [t.name for t in templates] == ["zero", "a_c", "a_z", "b_top"]
    assert templates[1].source == str(tmp_path / "a" / "c.yaml")


def test_load_directory_keeps_good_templates_and_reports_bad_files(
    loader: TemplateLoader, tmp_path: Path
) -> None:
    write(tmp_path / "good.yaml", MINIMAL)
    bad = write(tmp_path / "sub" / "bad.yaml", MINIMAL.replace('"1.0.0"', "2"))
    write(tmp_path / "sub" / "binary.yml", "").write_bytes(b"name: \xff\n")
    templates, problems = loader.load_path(str(tmp_path))
    assert [t.name for t in templates] == ["refund"]
    binary = str(tmp_path / "sub" / "binary.yml")
    assert [(p.file, p.line) for p in problems] == [(str(bad), 3), (binary, None)]
    assert "cannot read" in problems[1].message


def test_load_path_accepts_a_traversable(loader: TemplateLoader, tmp_path: Path) -> None:
    archive = tmp_path / "plugin.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(PAYMENTS, "templates/payments/refund.yaml")
        zf.writestr("templates/payments/readme.txt", "ignored")
    templates, problems = loader.load_path(zipfile.Path(archive, "templates/"))
    assert problems == [] and [t.full_name for t in templates] == ["payments.process_refund@2.1.3"]


def test_load_path_missing_or_unsupported(loader: TemplateLoader, tmp_path: Path) -> None:
    p = only(loader.load_path(tmp_path / "missing")[1])
    assert p.file == str(tmp_path / "missing") and "no such" in p.message
    assert "unsupported template source" in only(loader.load_path(42)[1]).message


def test_load_item_dispatches(loader: TemplateLoader) -> None:
    from_mapping, _ = loader.load_item({"name": "x", "namespace_name": "y", "version": "1",
                                        "step_templates": [{"name": "a", "handler_class": "A"}]})
    from_dir, _ = loader.load_item(FIXTURES)
    assert [t.full_name for t in from_mapping] == ["y.x@1"]
    assert sorted(t.namespace for t in from_dir) == ["customer_success", "payments"]
