"""The docs list what the code has: every hook spec in docs/plugins.md, every API error code in
docs/api.md with the status the API answers it with (found by reading the source, so a new
``ApiError(...)`` or ``ERROR_TABLE`` row without its line in the docs fails here)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from tasker_host import hookspecs
from tasker_host.api import errors as api_errors
from tasker_host.markers import PROJECT_NAME

ROOT = Path(__file__).resolve().parents[1]
API_SOURCES = sorted((ROOT / "tasker_host" / "api").rglob("*.py"))
ERROR_ROW = re.compile(r"^\| (\d{3}) \| `([a-z_]+)` \|", re.MULTILINE)


def hook_specs() -> list[str]:
    marker = f"{PROJECT_NAME}_spec"  # what pluggy's HookspecMarker sets on a spec
    return sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
                  if getattr(fn, marker, None) is not None)


def raised_codes(source: str) -> set[tuple[int, str]]:
    """(status, code) of every ``ApiError(<int>, "<code>", ...)`` in ``source``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "ApiError"
                and len(node.args) >= 2 and all(isinstance(a, ast.Constant) for a in node.args[:2])):
            status, code = node.args[0].value, node.args[1].value
            assert isinstance(status, int) and isinstance(code, str), ast.unparse(node)
            found.add((status, code))
    return found


def api_codes() -> set[tuple[int, str]]:
    codes = {(status, code) for _, status, code in api_errors.ERROR_TABLE}
    codes |= {(status, code) for status, code in api_errors._HTTP_CODES.items()}
    for path in API_SOURCES:
        codes |= raised_codes(path.read_text(encoding="utf-8"))
    return codes


def documented_codes() -> set[tuple[int, str]]:
    return {(int(status), code) for status, code in ERROR_ROW.findall((ROOT / "docs" / "api.md").read_text())}


def test_the_hook_specs_are_found() -> None:
    assert {"tasker_namespaces", "tasker_templates", "tasker_step_handlers", "tasker_authorize"} <= set(hook_specs())


@pytest.mark.parametrize("hook", hook_specs())
def test_every_hook_spec_is_documented_in_plugins_md(hook: str) -> None:
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert f"`{hook}(" in text, f"docs/plugins.md does not document the hook {hook}()"


def test_the_source_scan_finds_raised_codes() -> None:
    assert raised_codes('raise ApiError(409, "idempotency_conflict", msg)\nApiError(status, code, msg)') == {
        (409, "idempotency_conflict")}
    assert {(401, "unauthorized"), (415, "unsupported_media_type"), (500, "internal_error"),
            (422, "invalid_request"), (404, "not_found")} <= api_codes()


def test_every_api_error_code_is_in_api_md_with_its_status() -> None:
    missing = sorted(api_codes() - documented_codes())
    assert not missing, f"docs/api.md's error table lacks (status, code): {missing}"


def test_api_md_lists_no_code_the_api_does_not_answer() -> None:
    stale = sorted(documented_codes() - api_codes())
    assert not stale, f"docs/api.md lists (status, code) the API never answers: {stale}"
