"""YAML-level strictness of template loading: version quoting, duplicate keys, syntax errors,
document shape, tags, merge keys and aliases."""

from __future__ import annotations

import pytest

from tasker_host.templates import TemplateLoader
from tests.template_support import MINIMAL, assert_problem, only, problems_of


@pytest.fixture(scope="module")
def loader() -> TemplateLoader:
    return TemplateLoader()


# --- YAML-level strictness --------------------------------------------------------------------
def test_version_must_be_a_yaml_string(loader: TemplateLoader) -> None:
    p = only(problems_of(loader, MINIMAL.replace('"1.0.0"', "1.10")))
    assert_problem(p, 3, "version")
    assert p.message == (
        'version must be a string: write version: "1.10" '
        "(unquoted, YAML reads it as the number 1.1)"
    )
    p = only(problems_of(loader, MINIMAL.replace('"1.0.0"', "2")))
    assert_problem(p, 3, "version", 'write version: "2"', "the number 2")


def test_version_must_be_a_valid_version(loader: TemplateLoader) -> None:
    p = only(problems_of(loader, MINIMAL.replace('"1.0.0"', '"one point oh"')))
    assert_problem(p, 3, "version", "'one point oh'", "not a valid version")


def test_duplicate_keys_name_both_lines(loader: TemplateLoader) -> None:
    text = MINIMAL.replace("    handler_class: Second\n", "    handler_class: Second\n" * 2)
    p = only(problems_of(loader, text))
    assert_problem(p, 9, "step_templates[1].handler_class", "duplicate key", "line 8", "line 9")


def test_yaml_syntax_error_reports_the_line(loader: TemplateLoader) -> None:
    p = only(problems_of(loader, MINIMAL + "  - name: [unclosed\n    handler_class: X\n"))
    assert p.file == "t.yaml" and p.line in (10, 11) and "YAML syntax error" in p.message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("- a\n- b\n", 1, ("must be a mapping", "a list")),
        ("# nothing\n", 1, ("must be a mapping", "empty")),
        (MINIMAL + "---\nname: other\n", 10, ("exactly one YAML document",)),
    ],
)
def test_document_shape(loader: TemplateLoader, text: str, line: int, words: tuple[str]) -> None:
    assert_problem(only(problems_of(loader, text)), line, "", *words)


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("yes: 1\n", "yes", ("read by YAML as a boolean", "quote")),
        ("<<: {description: x}\n", "", ("merge keys",)),
        ("description: !!binary aGk=\n", "description", ("unsupported YAML tag",)),
        ("x-loop: &a [*a]\n", "x-loop[0]", ("recursive YAML alias",)),
    ],
)
def test_yaml_features_outside_plain_json_data(
    loader: TemplateLoader, extra: str, key: str, words: tuple[str]
) -> None:
    assert_problem(only(problems_of(loader, MINIMAL + extra)), 10, key, *words)


def test_alias_bombs_are_cut_short(loader: TemplateLoader) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcde", "bcdef", strict=True)
    )
    problems = problems_of(loader, MINIMAL + bomb)
    assert any("document too large" in p.message for p in problems)


def test_aliases_are_expanded(loader: TemplateLoader) -> None:
    text = MINIMAL.replace("handler_class: First", "handler_class: &h Shared").replace(
        "handler_class: Second", "handler_class: *h"
    )
    template, problems = loader.load_text(text)
    assert problems == [] and template is not None
    assert [s.handler_class for s in template.steps] == ["Shared", "Shared"]
