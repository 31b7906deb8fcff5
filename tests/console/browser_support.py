"""Playwright driving Debian's chromium (``/usr/bin/chromium``, no browser download) against a
real console on loopback. Without chromium or the playwright package the browser tests skip,
except under ``CI=true`` where that is a failure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = os.environ.get("TASKER_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("TASKER_CONSOLE_SCREENSHOTS")  # a directory: save each page's picture there


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def launch_browser() -> Iterator[Any]:
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        problem = f"the playwright package is not installed ({exc})"
    if problem is None and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        problem = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if problem is not None:
        if _under_ci():
            pytest.fail(f"{problem} (CI=true: the browser tests must run)")
        pytest.skip(problem)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A page in a fresh browser context, collecting console errors and uncaught exceptions."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def sign_in(self, token: str) -> None:
        self.goto("/ui/sign-in")
        self.page.fill("#token", token)
        self.page.click("button:has-text('Sign in')")
        self.page.wait_for_url(self.base + "/ui/")

    def shot(self, name: str, backend: str) -> None:
        if SCREENSHOTS and backend == "sqlite":
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def open_tab(browser: Any, base: str) -> Tab:
    context = browser.new_context(viewport={"width": 1366, "height": 800})
    page = context.new_page()
    tab = Tab(page, base)
    page.on("console", lambda m: tab.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(f"page error: {e}"))
    page.on("response", lambda r: tab.errors.append(f"{r.status} for {r.url}") if r.status >= 400 else None)
    page.set_default_timeout(15_000)
    return tab


def create(base: str, token: str, namespace: str, name: str, context: dict[str, Any]) -> str:
    response = httpx.post(f"{base}/tasker/tasks", json={"namespace": namespace, "name": name, "context": context},
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]
