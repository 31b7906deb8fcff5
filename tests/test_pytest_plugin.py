"""tasker-host's pytest plugin, seen from a plugin project: pytester runs generated projects
whose only link to it is the ``pytest11`` entry point ``tasker_host`` (written as an installed
distribution's metadata, as ``pip install tasker-host`` does)."""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

import pytest

from tasker_host.testing import PluginUnderTest, start_plugin_host

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

SHOP_PLUGIN = '''
from tasker_host import Namespace, RetryableError, StepContext, StepHandler, hookimpl

SCHEMA = {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}
CHECKOUT = {"name": "checkout", "namespace_name": "shop", "version": "1.0.0",
            "description": "Reserve, then charge", "schema": SCHEMA, "step_templates": [
                {"name": "reserve", "handler_class": "Reserve", "default_retry_limit": 3},
                {"name": "charge", "handler_class": "Charge", "depends_on_step": "reserve"}]}
RETURN = {"name": "return_order", "namespace_name": "shop", "version": "1.0.0",
          "description": "Refund through payments", "schema": SCHEMA, "step_templates": [
              {"name": "refund", "handler_class": "Refund"}]}


class Reserve(StepHandler):
    def process(self, ctx: StepContext) -> dict:  # a plain def: the engine runs it in a thread
        if ctx.attempt == 1:
            raise RetryableError("warehouse busy", retry_after=600)  # no test waits 600 s
        return {"reserved": ctx.task.context["order_id"]}


class Charge(StepHandler):
    async def process(self, ctx: StepContext) -> dict:
        return {"charged": ctx.results["reserve"]["reserved"]}


class Refund(StepHandler):
    async def process(self, ctx: StepContext) -> dict:
        child = await ctx.invoke("payments", "process_refund", version="~=2.1",
                                 context={"order_id": ctx.task.context["order_id"]})
        return {"child": child.task_id, "refund_id": child.results["gateway"]["refund_id"]}


@hookimpl
def tasker_namespaces():
    return [Namespace("shop", "Orders and checkout", "Shop team")]


@hookimpl
def tasker_templates():
    return [CHECKOUT, RETURN]


@hookimpl
def tasker_step_handlers():
    return {"Reserve": Reserve, "Charge": Charge, "Refund": Refund}
'''

CONFTEST = '''
import pytest
from tasker_host.testing import PluginUnderTest
import shop_plugin


@pytest.fixture(scope="session")
def tasker_plugin():
    return PluginUnderTest(shop_plugin, namespace="shop",
                           contexts={"checkout": {"order_id": "o-1"}, "return_order": {"order_id": "o-1"}})
'''

PROJECT_TESTS = '''
import pytest
from tasker_host import PermanentError


def test_a_sync_test_runs_a_task_through_its_retry(run_task):
    run = run_task("checkout", {"order_id": "o-7"}).assert_complete()
    assert run.attempts == {"reserve": 2, "charge": 1}
    assert run.errors["reserve"]["message"] == "warehouse busy"
    assert run.results == {"reserve": {"reserved": "o-7"}, "charge": {"charged": "o-7"}}


@pytest.mark.anyio
async def test_an_async_test_awaits_arun_task(arun_task, anyio_backend):
    run = await arun_task("checkout", {"order_id": "o-8"})
    assert (run.status, anyio_backend) == ("complete", "asyncio")


def test_stand_ins_answer_for_other_namespaces_on_sqlite(tasker_host_factory):
    host = tasker_host_factory(database="sqlite",
                               stand_ins={"payments.process_refund": {"gateway": {"refund_id": "re_1"}}})
    run = host.run_task("return_order", {"order_id": "o-9"}).assert_complete()
    assert run.results["refund"] == {"child": "stand-in-1", "refund_id": "re_1"}
    assert [(c.namespace, c.name, c.version) for c in run.invocations] == [
        ("payments", "process_refund", "~=2.1")]
    failing = tasker_host_factory(stand_ins={"payments": PermanentError("payments is down")})
    run = failing.run_task("return_order", {"order_id": "o-9"})
    assert run.status == "error" and run.errors["refund"]["message"] == "payments is down"


def test_the_plugin_report(plugin_report):
    assert plugin_report.catalogue == {("checkout", "1.0.0"), ("return_order", "1.0.0")}


@pytest.mark.anyio
async def test_the_handler_harness_runs_sync_and_async_handlers(handler_harness):
    results = await handler_harness.run_happy_path("checkout", {"order_id": "o-1"}, attempt=2)
    assert results == {"reserve": {"reserved": "o-1"}, "charge": {"charged": "o-1"}}
'''

MISUSE_TESTS = '''
import pytest


def test_arun_task_from_a_sync_test(arun_task):
    arun_task("checkout", {"order_id": "o-1"})


def test_a_harness_coroutine_from_a_sync_test(handler_harness):
    handler_harness.run_happy_path("checkout", {"order_id": "o-1"}, attempt=2)


def test_a_harness_coroutine_kept_but_never_awaited(handler_harness):
    pending = handler_harness.run("checkout", {"order_id": "o-1"})
    assert pending is not None


@pytest.mark.anyio
async def test_run_task_from_an_async_test(run_task):
    run_task("checkout", {"order_id": "o-1"})
'''


@pytest.fixture(scope="module", autouse=True)
def _host_modules_imported_here(tmp_path_factory: pytest.TempPathFactory) -> None:
    """pytester runs each project in this process, then forgets the modules the run imported;
    compiled extensions (PyYAML's parser, SQLAlchemy's) would go on using the forgotten modules'
    classes. A task run here on SQLite imports what the projects' runs use, so it stays."""
    from tasker_payments import plugin

    host = start_plugin_host(PluginUnderTest(plugin, namespace="payments"), database="sqlite",
                             directory=tmp_path_factory.mktemp("warm"))
    try:
        host.run_task("process_refund", {"payment_id": "pay_1", "refund_amount": 1}).assert_complete()
    finally:
        host.close()


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A plugin project: the shop plugin, its conftest, and tasker-host's pytest plugin
    registered only through an entry point in the group ``pytest11``."""
    site = pytester.mkdir("site")
    info = site / "tasker_host_under_test-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tasker-host-under-test\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\ntasker_host = tasker_host.testing.pytest_plugin\n")
    pytester.syspathinsert(site)
    pytester.syspathinsert()
    pytester.makepyfile(shop_plugin=SHOP_PLUGIN)
    pytester.makeconftest(CONFTEST)
    return pytester


def test_a_plugin_project_uses_the_fixtures(project):
    project.makepyfile(test_shop=PROJECT_TESTS)
    result = project.runpytest("-p", "no:cacheprovider", "-W", "error::RuntimeWarning")
    result.assert_outcomes(passed=5)


def test_calling_the_async_api_from_a_sync_test_fails_loudly(project):
    project.makepyfile(test_misuse=MISUSE_TESTS)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines([
        "PluginHost.arun_task(...) was never awaited: the test called an async function*",
        "HandlerHarness.run_happy_path(...) was never awaited*",
        "HandlerHarness.run(...) was never awaited*",
        "E       RuntimeError: run_task() runs its own event loop and cannot be called from an async "
        "test: use `await arun_task(...)`",
    ])
    assert "RuntimeWarning" not in result.stdout.str()  # the coroutines were closed, not left to warn


def test_the_plugin_is_disabled_with_p_no_tasker_host(project):
    project.makepyfile(test_shop=PROJECT_TESTS)
    result = project.runpytest("-p", "no:cacheprovider", "-p", "no:tasker_host", "-k", "sync_test_runs")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'run_task' not found*"])


def test_its_anyio_backend_overrides_anyios(project):
    project.makepyfile(test_backend=textwrap.dedent("""\
        import pytest

        @pytest.mark.anyio
        async def test_once(anyio_backend):
            assert anyio_backend == "asyncio"
        """))
    result = project.runpytest("-p", "no:cacheprovider", "--fixtures-per-test")
    result.stdout.fnmatch_lines(["anyio_backend -- *tasker_host/testing/fixtures.py:*"])
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_without_a_plugin_under_test_the_fixtures_say_how_to_name_it(pytester, pytestconfig):
    pytester.makepyfile(test_nothing="def test_it(run_task):\n    run_task('checkout')\n")
    pytester.syspathinsert()
    # where tasker-host is installed with its pytest11 entry point, the inner run loads the plugin
    # by itself (naming it with -p as well would register the module twice)
    installed = pytestconfig.pluginmanager.has_plugin("tasker_host")
    result = pytester.runpytest("-p", "no:cacheprovider",
                                *(() if installed else ("-p", "tasker_host.testing.pytest_plugin")))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no plugin under test: define the fixture `tasker_plugin`*"])


def test_a_broken_plugin_fails_its_report_listing_the_problems(project):
    project.makeconftest(CONFTEST.replace('namespace="shop"', 'namespace="orders"'))
    project.makepyfile(test_shop=PROJECT_TESTS)
    result = project.runpytest("-p", "no:cacheprovider", "-k", "plugin_report")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["plugin shop_plugin (namespace orders) fails the plugin contract*",
                                 "  - tasker_namespaces() claims [[]'shop'[]], expected [[]'orders'[]]"])
    assert "During handling" not in result.stdout.str()


def test_the_entry_point_is_declared_in_the_distribution():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == {"tasker_host": "tasker_host.testing.pytest_plugin"}


def test_the_docs_name_every_fixture():
    from tasker_host.testing import fixtures

    names = sorted(n for n, f in vars(fixtures).items() if hasattr(f, "_fixture_function_marker")
                   or type(f).__name__ == "FixtureFunctionDefinition")
    docs = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    assert len(names) == 9
    assert [n for n in names if f"`{n}`" not in docs] == []
    assert textwrap.dedent("pytest -p no:tasker_host") in docs


def test_the_examples_of_the_testing_docs_run(project):
    docs = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    files = dict(re.findall(r"```python\n# (\w+\.py)\n(.*?)```", docs, re.S))
    assert sorted(files) == ["conftest.py", "test_delegation.py", "test_handlers.py", "test_refunds.py"]
    for name, text in files.items():
        (project.path / name).write_text(text, encoding="utf-8")
    result = project.runpytest("-p", "no:cacheprovider", "-W", "error::RuntimeWarning")
    tests = sum(text.count("\ndef test_") + text.count("\nasync def test_") for text in files.values())
    result.assert_outcomes(passed=tests)
