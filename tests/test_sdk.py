"""The public SDK of ``tasker_host``: exactly these names, typed handler and hook contracts, and
no test double on the production surface."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import get_type_hints

import pytest

import tasker_host
from tasker_host import StepContext, StepHandler, hookspecs
from tasker_host.context import InvocationResult, TaskInfo
from tasker_host.engine.step_context import RunningStep
from tasker_host.testing import FakeStepContext

PACKAGE = Path(tasker_host.__file__).parent
PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
SDK = [
    "EventTimeoutError", "FourPhaseHandler", "InvocationResult", "Namespace", "PermanentError", "RetryableError",
    "ServiceError", "ServiceRejected", "ServiceUnavailable", "StepContext", "StepHandler",
    "TaskInfo", "TaskerError", "Visibility", "Wait", "WakeInfo", "WakeReason", "amount", "hookimpl", "require",
    "step_results",
]


def test_the_sdk_is_exactly_these_names():
    assert tasker_host.__all__ == SDK
    public = {n for n, v in vars(tasker_host).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert public == set(SDK)
    assert all(getattr(tasker_host, name) is not None for name in SDK)


def test_handlers_are_typed_with_the_step_context():
    assert get_type_hints(StepHandler.process)["ctx"] is StepContext
    assert get_type_hints(StepHandler.process_results)["ctx"] is StepContext
    assert (tasker_host.TaskInfo, tasker_host.InvocationResult) == (TaskInfo, InvocationResult)


def test_the_engines_step_and_the_fake_one_are_step_contexts():
    task = TaskInfo("t-1", "shop", "checkout", "1.0.0", {})
    running = RunningStep(task, "charge", {}, {}, 1, _invoke=None)  # type: ignore[arg-type]
    assert isinstance(running, StepContext) and isinstance(FakeStepContext(task, "charge"), StepContext)
    assert not isinstance(object(), StepContext)


@pytest.mark.parametrize("name", [n for n, f in vars(hookspecs).items()
                                  if n.startswith("tasker_") and inspect.isfunction(f)])
def test_hook_specs_name_real_types_not_any(name):
    annotations = inspect.get_annotations(getattr(hookspecs, name))
    assert "return" in annotations
    untyped = {k: v for k, v in annotations.items() if re.search(r"\bAny\b", v)}
    assert untyped == {}


def _python_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.py") if "testing" not in p.relative_to(root).parts]


# `tasker-host check`, the CI gate of plugin projects, runs the test kit's contract checks: the one
# production module allowed to import the test kit, and only inside the command, so that no other
# command (serve, worker, ...) ever loads it.
TEST_KIT_USERS = {"cli/kit.py": {"tasker_host.testing.project_check"}}


def _test_kit_imports(nodes: list[ast.AST]) -> set[str]:
    imported = {n.module for n in nodes if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
    return {m for m in imported if m and m.startswith("tasker_host.testing")}


def test_production_code_neither_reads_fault_plans_nor_imports_the_test_kit():
    for path in _python_files(PACKAGE):
        text = path.read_text(encoding="utf-8")
        assert "TASKER_SIMULATE" not in text, path
        tree = ast.parse(text)
        assert _test_kit_imports(list(ast.walk(tree))) <= TEST_KIT_USERS.get(
            path.relative_to(PACKAGE).as_posix(), set()), path
        assert not _test_kit_imports(tree.body), f"{path} imports the test kit at module level"


def test_the_team_plugins_type_their_handlers_context():
    sources = sorted(PLUGINS.glob("*/src/*/*.py"))
    assert len(sources) >= 15
    untyped = [f"{p.name}:{i}" for p in sources
               for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
               if re.search(r"\bctx: Any\b", line)]
    assert untyped == []
