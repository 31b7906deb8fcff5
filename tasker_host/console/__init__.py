"""The web console: server-rendered pages under ``/ui`` (``/`` redirects there) for the same
tokens and namespace policy as the REST API. See docs/console.md.

``routes()`` are mounted by ``api.app.create_app`` next to the API; ``exception_handlers()``
render the console's errors as pages; ``make_console()`` is the per-app state."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from tasker_host.console import actions, live, pages
from tasker_host.console.access import PageError, SignInRequired, make_console, viewer

__all__ = ["exception_handlers", "make_console", "routes"]


async def _home(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=303)


def routes() -> list[BaseRoute]:
    return [
        Route("/", _home, methods=["GET"]),
        Route("/ui", _home, methods=["GET"]),
        Route("/ui/", pages.overview, methods=["GET"]),
        Route("/ui/sign-in", actions.signin_form, methods=["GET"]),
        Route("/ui/sign-in", actions.signin, methods=["POST"]),
        Route("/ui/sign-out", actions.signout, methods=["POST"]),
        Route("/ui/tasks", pages.task_list, methods=["GET"]),
        Route("/ui/tasks/bulk", actions.bulk, methods=["POST"]),
        Route("/ui/tasks/{task_id}", pages.task_page, methods=["GET"]),
        Route("/ui/tasks/{task_id}/cancel", actions.cancel, methods=["POST"]),
        Route("/ui/tasks/{task_id}/retry", actions.retry, methods=["POST"]),
        Route("/ui/tasks/{task_id}/steps/{step}/resolve", actions.resolve, methods=["POST"]),
        Route("/ui/tasks/{task_id}/events/{name}", actions.send_event, methods=["POST"]),
        Route("/ui/plugins", pages.plugins_page, methods=["GET"]),
        Route("/ui/versions", pages.versions_page, methods=["GET"]),
        Route("/ui/live", live.live, methods=["GET"]),
        Mount("/ui/static", app=StaticFiles(directory=Path(__file__).parent / "static"), name="console-static"),
    ]


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    who = None
    try:
        who = await viewer(request)
    except SignInRequired:
        pass
    return pages.render(request, who, "error.html", status_code=exc.status, error=exc)


async def _sign_in(request: Request, exc: Exception) -> Response:
    if request.url.path == "/ui/live" or request.headers.get("hx-request"):
        return PlainTextResponse("sign in first", status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/sign-in?next={quote(target)}", status_code=303)


def exception_handlers() -> dict[Any, Any]:  # (Starlette types handlers per exception loosely)
    return {PageError: _page_error, SignInRequired: _sign_in}
