"""Shared helpers for the template-loading tests (tasker_host.templates)."""

from __future__ import annotations

from tasker_host.models import TemplateProblem
from tasker_host.templates import TemplateLoader

MINIMAL = """\
name: refund
namespace_name: payments
version: "1.0.0"
step_templates:
  - name: first
    handler_class: First
  - name: second
    handler_class: Second
    depends_on_step: first
"""


def problems_of(loader: TemplateLoader, text: str, source: str = "t.yaml") -> list[TemplateProblem]:
    template, problems = loader.load_text(text, source)
    assert template is None and problems
    return problems


def only(problems: list[TemplateProblem]) -> TemplateProblem:
    assert len(problems) == 1, [p.describe() for p in problems]
    return problems[0]


def assert_problem(p: TemplateProblem, line: int, key: str, *words: str) -> None:
    """The problem names the file, the line and the key path, and says what is wrong."""
    assert (p.file, p.line, p.key) == ("t.yaml", line, key), p.describe()
    assert p.describe().startswith(f"t.yaml:{line} [{key}]: " if key else f"t.yaml:{line}: ")
    for word in words:
        assert word in p.message, p.message
