"""The console in a real browser (Playwright + Debian's chromium) on SQLite and PostgreSQL:
sign in, filter the list, watch a running task change live, retry a failed task, resolve a step,
bulk-cancel, a payments token sees nothing of customer_success, sign out; never a console error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tasker_host.api import create_app
from tests.api.conftest import ServerThread
from tests.console.browser_support import Tab, create, launch_browser, open_tab
from tests.console.support import Plan, issue, make_host

expect: Any = None  # playwright's expect, imported with the browser


@dataclass
class Console:
    base: str
    tokens: dict[str, str]
    plan: Plan
    backend: str


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    global expect  # noqa: PLW0603 - a late import: skip cleanly when playwright is absent
    for b in launch_browser():
        from playwright.sync_api import expect as pw_expect
        expect = pw_expect
        expect.set_options(timeout=15_000)
        yield b


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def console(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            browser: Any) -> Iterator[Console]:
    plan = Plan()
    db: Path | str = (tmp_path_factory.mktemp("console") / "c.db" if request.param == "sqlite"
                      else request.getfixturevalue("postgres_module_url"))
    host = make_host(db, plan)
    tokens = issue(host)
    server = ServerThread(create_app(host, prefix="/tasker", console_poll_seconds=0.5))
    server.start()
    try:
        yield Console(f"http://127.0.0.1:{server.port}", tokens, plan, request.param)
    finally:
        plan.open_all()
        server.stop()


@pytest.fixture
def tab(browser: Any, console: Console) -> Iterator[Tab]:
    tab = open_tab(browser, console.base)
    yield tab
    tab.page.context.close()
    assert tab.errors == []


def test_sign_in_filter_and_sign_out(tab: Tab, console: Console) -> None:
    failed = create(console.base, console.tokens["admin"], "payments", "refund", {"plan": {"validate": "fail"}})
    tab.sign_in(console.tokens["payments"])
    expect(tab.page.locator("h2#ns-payments")).to_be_visible()
    tab.shot("namespaces", console.backend)
    tab.page.click("nav >> text=Tasks")
    tab.page.select_option("select[name=status]", "error")
    tab.page.click("button:has-text('Filter')")
    tab.page.wait_for_url(re.compile(r".*status=error.*"))
    expect(tab.page.locator(f"input[name=task][value='{failed}']")).to_be_visible()
    statuses = tab.page.locator("table.tasks tbody .badge").all_inner_texts()
    assert statuses and set(statuses) == {"error"}
    tab.shot("tasks", console.backend)
    tab.page.click("button:has-text('Sign out')")
    tab.page.wait_for_url(re.compile(r".*/ui/sign-in.*"))
    tab.goto("/ui/tasks")
    expect(tab.page.locator("#token")).to_be_visible()  # signed out: back to the sign-in form
    tab.shot("sign-in", console.backend)


def test_running_task_changes_state_live(tab: Tab, console: Console) -> None:
    task = create(console.base, console.tokens["payments"], "payments", "refund", {"plan": {"charge": "gate"}})
    tab.sign_in(console.tokens["payments"])
    tab.goto(f"/ui/tasks/{task}")
    expect(tab.page.locator("#step-charge")).to_have_attribute("data-state", "in_progress")
    tab.page.evaluate("window.stillTheSamePage = true")
    tab.shot("task-running", console.backend)
    console.plan.gates["charge"].set()
    expect(tab.page.locator("#step-charge")).to_have_attribute("data-state", "complete")
    expect(tab.page.locator("#task-status")).to_have_text("complete")
    expect(tab.page.locator("svg.dag g.st-complete")).to_have_count(4)
    assert tab.page.evaluate("window.stillTheSamePage") is True  # updated in place, not reloaded


def test_retry_a_failed_task_from_the_page(tab: Tab, console: Console) -> None:
    task = create(console.base, console.tokens["payments"], "payments", "refund", {"plan": {"notify": "fail"}})
    tab.sign_in(console.tokens["payments"])
    tab.goto(f"/ui/tasks/{task}")
    expect(tab.page.locator("#task-status")).to_have_text("error")
    expect(tab.page.locator("#step-notify details.log pre")).to_contain_text("declining the card in notify (attempt 1)")
    tab.shot("task-failed", console.backend)
    console.plan.fixed.add("notify")
    tab.page.click("button:has-text('Retry task')")
    expect(tab.page.locator(".notice")).to_have_text("Retrying.")
    expect(tab.page.locator("#task-status")).to_have_text("complete")


def test_resolve_a_step_with_results(tab: Tab, console: Console) -> None:
    task = create(console.base, console.tokens["payments"], "payments", "refund", {"plan": {"charge": "fail"}})
    tab.sign_in(console.tokens["payments"])
    tab.goto(f"/ui/tasks/{task}")
    expect(tab.page.locator("#step-charge")).to_have_attribute("data-state", "error")
    tab.page.click("#step-charge summary:has-text('Resolve manually')")
    tab.page.fill("#results-charge", '{"charged": "by hand"}')
    tab.page.click("button:has-text('Resolve charge')")
    expect(tab.page.locator(".notice")).to_have_text("Step resolved.")
    expect(tab.page.locator("#step-charge")).to_have_attribute("data-state", "resolved_manually")
    expect(tab.page.locator("#task-status")).to_have_text("complete")


def test_bulk_cancel(tab: Tab, console: Console) -> None:
    ids = [create(console.base, console.tokens["payments"], "payments", "refund",
                  {"plan": {"validate": "gate"}, "batch": "bulk-cancel"}) for _ in range(3)]
    tab.sign_in(console.tokens["payments"])
    tab.goto("/ui/tasks?q=bulk-cancel")
    for task in ids:
        tab.page.check(f"input[name=task][value='{task}']")
    tab.page.click("button:has-text('Cancel selected')")
    expect(tab.page.locator(".notice")).to_have_text("3 cancelled.")
    expect(tab.page.locator("table.tasks tbody .badge")).to_have_text(["cancelled"] * 3)
    console.plan.gates["validate"].set()


def test_payments_token_sees_no_trace_of_customer_success(tab: Tab, console: Console) -> None:
    cs = create(console.base, console.tokens["cs"], "customer_success", "escalate_ticket", {"ticket": "cs-secret-42"})
    tab.sign_in(console.tokens["payments"])
    for path in ("/ui/", "/ui/tasks", "/ui/plugins", "/ui/versions"):
        tab.goto(path)
        text = tab.page.content()
        for trace in ("customer_success", "escalate_ticket", "cs-secret-42", cs, "tasker-cs-test"):
            assert trace not in text, (path, trace)
    tab.shot("versions", console.backend)
    tab.goto("/ui/plugins")
    tab.shot("plugins", console.backend)
    response = tab.goto(f"/ui/tasks/{cs}")
    assert response.status == 404
    assert "escalate_ticket" not in tab.page.content()
    tab.errors[:] = [e for e in tab.errors if "404" not in e]  # the browser reports the 404 itself
