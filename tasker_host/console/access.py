"""Who is signed in, and what they may see: the REST API's policy (``api/auth.py``) applied to
the console. A task or namespace the principal may not view is a 404 as if it did not exist; an
action it may not take where it may view is a 403."""

from __future__ import annotations

import time
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from tasker_host.api.auth import may, visible_namespaces
from tasker_host.api.state import Api, api_of
from tasker_host.auth import Action, Principal
from tasker_host.console.session import SESSION_COOKIE, Session, Signer
from tasker_host.store.base import TaskRecord
from tasker_host.values import value_problems


class PageError(Exception):
    """Answered as an HTML page with ``status`` (404, 403, 400, 409)."""

    def __init__(self, status: int, title: str, message: str = ""):
        super().__init__(message or title)
        self.status, self.title, self.message = status, title, message


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, live streams answer 401."""


@dataclass
class Console:
    """One per application (``app.state.console``)."""

    signer: Signer
    templates: Jinja2Templates
    poll_seconds: float = 1.0  # live pages: how often to look for changes made by other processes
    stream_seconds: float = 30.0  # a live stream ends after this (the browser reconnects)


def make_console(secret: str | None = None, poll_seconds: float = 1.0) -> Console:
    env = Environment(loader=PackageLoader("tasker_host.console"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    return Console(Signer(secret), Jinja2Templates(env=env), poll_seconds=poll_seconds)


def console_of(request: Request) -> Console:
    return request.app.state.console


@dataclass(frozen=True)
class Viewer:
    principal: Principal
    session: Session
    visible: list[str] | None  # None: every namespace (admin)
    csrf: str

    def sees(self, namespace: str) -> bool:
        return self.visible is None or namespace in self.visible


async def viewer(request: Request) -> Viewer:
    """The signed-in principal (its token still active), or :class:`SignInRequired`."""
    api, console = api_of(request), console_of(request)
    session = console.signer.open(request.cookies.get(SESSION_COOKIE), time.time())
    if session is None:
        raise SignInRequired()
    record = await api.call(api.host.tokens.token_by_digest, session.digest)
    if record is None or not record.active:
        raise SignInRequired()
    principal = record.principal
    return Viewer(principal, session, visible_namespaces(api, principal),
                  console.signer.csrf("session", session.nonce))


def viewable_namespaces(api: Api, who: Viewer) -> list[str]:
    """The registry's namespaces the viewer may see, sorted."""
    return sorted(ns for ns in api.host.registry.namespaces if who.sees(ns))


async def visible_task(api: Api, who: Viewer, task_id: str, *, with_steps: bool = True) -> TaskRecord:
    task = None if value_problems(task_id) else await api.call(api.host.store.get_task, task_id, with_steps=with_steps)
    if task is None or not may(api, who.principal, Action.SHOW, task.namespace):
        raise PageError(404, "Not found", f"There is no task {task_id!r}.")
    return task


def require(api: Api, who: Viewer, action: Action, task: TaskRecord) -> None:
    if not may(api, who.principal, action, task.namespace):
        raise PageError(403, "Not allowed",
                        f"{who.principal.name} may not {action.value} tasks in namespace {task.namespace!r}.")


def may_do(api: Api, who: Viewer, action: Action, namespace: str) -> bool:
    return may(api, who.principal, action, namespace)
