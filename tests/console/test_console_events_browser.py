"""In a real browser (Playwright + Debian's chromium), on SQLite: a waiting step's page shows what
it waits for and the form built from the event's schema; filling it in and sending it wakes the
step, and the page follows the task to its end live; never a console error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasker_host.api import create_app
from tasker_host.host import build_host
from tasker_host.settings import HostSettings
from tasker_host.testing import FakeEntryPoint, make_plugin, template_doc
from tests.api.conftest import ServerThread
from tests.console.browser_support import Tab, create, launch_browser, open_tab
from tests.console.support import issue
from tests.console.test_console_events import Approval


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    plugin = make_plugin(["payments"], [template_doc("payments", "approve", "1.0.0", [
        {"name": "approve", "handler_class": "Approval"}])], {"Approval": Approval})
    host = build_host(HostSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}"),
                      entry_points=[FakeEntryPoint.of("payments", plugin, dist="tasker-payments-test")])
    tokens = issue(host)
    server = ServerThread(create_app(host, prefix="/tasker", console_poll_seconds=0.5))
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", tokens
    finally:
        server.stop()


def test_a_manager_approves_from_the_form(browser: Any, served: tuple[str, dict[str, str]]) -> None:
    from playwright.sync_api import expect

    base, tokens = served
    task = create(base, tokens["payments"], "payments", "approve", {})
    tab: Tab = open_tab(browser, base)
    try:
        tab.sign_in(tokens["payments"])
        tab.goto(f"/ui/tasks/{task}")
        expect(tab.page.locator("#step-approve")).to_have_attribute("data-state", "waiting", timeout=15_000)
        expect(tab.page.locator("#step-approve .waits")).to_contain_text("event approval")
        tab.page.check("#ev-approve-approved")
        tab.page.fill("#ev-approve-approver", "maria")
        tab.page.select_option("#ev-approve-channel", "chat")
        tab.shot("task-waiting", "sqlite")  # docs/console.md: the form built from the event's schema
        tab.page.click("button:has-text('Send approval')")
        expect(tab.page.locator(".notice")).to_contain_text("Event approval sent")
        expect(tab.page.locator("#task-status")).to_have_text("complete", timeout=15_000)
        expect(tab.page.locator("#step-approve details pre").first).to_contain_text('"approver": "maria"')
    finally:
        tab.page.context.close()
    assert tab.errors == []
