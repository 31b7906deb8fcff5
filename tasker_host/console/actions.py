"""The console's forms: sign-in / sign-out, and cancel, retry, resolve-step, send-event and bulk actions
through the same service calls as the REST API. Every POST checks its CSRF token first; an action
answers 303 to the page it came from with a notice (so the browser's back button and a reload
never repeat it)."""

from __future__ import annotations

import json
import secrets
from functools import partial
from urllib.parse import parse_qsl, quote

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tasker_host.api.access_log import correlation_header
from tasker_host.api.state import Api, api_of
from tasker_host.audit import Actor, ActorKind
from tasker_host.auth import Action, token_digest
from tasker_host.console.access import PageError, Viewer, console_of, require, viewer, visible_task
from tasker_host.console.event_form import form_of, payload_of
from tasker_host.console.pages import render
from tasker_host.console.session import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    SIGNIN_COOKIE,
    clear_cookie,
    new_session,
    set_cookie,
)
from tasker_host.errors import TaskerError
from tasker_host.values import value_problems

MAX_BULK = 200
MAX_FORM_BYTES = 1_048_576


def _see_other(url: str, notice: str | None = None) -> RedirectResponse:
    if notice:
        url += ("&" if "?" in url else "?") + "notice=" + quote(notice)
    return RedirectResponse(url, status_code=303)


async def _form(request: Request) -> FormData:
    """The urlencoded form (the console posts nothing else); bounded, read without a multipart
    parser."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PageError(413, "Too large", "The form is larger than the console accepts.")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and kind != "application/x-www-form-urlencoded":
        raise PageError(415, "Unsupported form", "The console accepts application/x-www-form-urlencoded forms.")
    try:
        fields: list[tuple[str, str | UploadFile]] = list(parse_qsl(body.decode(), keep_blank_values=True))
        return FormData(fields)
    except UnicodeDecodeError:
        raise PageError(400, "Invalid form", "The form is not UTF-8.") from None


async def signin_form(request: Request, problem: str | None = None, status_code: int = 200) -> Response:
    nonce = secrets.token_urlsafe(16)
    response = render(request, None, "signin.html", status_code=status_code, problem=problem,
                      csrf=console_of(request).signer.csrf("signin", nonce), next=_next(request))
    set_cookie(request, response, SIGNIN_COOKIE, nonce, 600)
    return response


def _next(request: Request) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    target = request.query_params.get("next", "/ui/")
    return target if target.startswith("/ui/") and not target.startswith("/ui//") else "/ui/"


async def signin(request: Request) -> Response:
    api, console = api_of(request), console_of(request)
    form = await _form(request)
    if not console.signer.csrf_ok("signin", request.cookies.get(SIGNIN_COOKIE), str(form.get("csrf_token") or "")):
        return await signin_form(request, "The form expired; please sign in again.", 403)
    token = str(form.get("token") or "").strip()
    record = None
    if token and not value_problems(token):
        record = await api.call(api.host.tokens.token_by_digest, token_digest(token))
    if record is None or not record.active:
        return await signin_form(request, "Unknown or revoked token.", 401)
    await api.call(api.host.service.record_sign_in, _actor(request, record.name))
    response = _see_other(_next(request))
    set_cookie(request, response, SESSION_COOKIE, console.signer.seal(new_session(record.digest)), SESSION_SECONDS)
    clear_cookie(request, response, SIGNIN_COOKIE)
    return response


def _actor(request: Request, principal: str) -> Actor:
    """Who the audit trail records for a console request."""
    return Actor.of_token(principal, ActorKind.CONSOLE, correlation_header(request.scope))


async def _checked(request: Request) -> tuple[Api, Viewer, FormData]:
    api, who = api_of(request), await viewer(request)
    form = await _form(request)
    sent = str(form.get("csrf_token") or request.headers.get("x-csrf-token") or "")
    if not console_of(request).signer.csrf_ok("session", who.session.nonce, sent):
        raise PageError(403, "Form expired", "The form's CSRF token is missing or wrong; reload the page and retry.")
    return api, who, form


async def signout(request: Request) -> Response:
    await _checked(request)
    response = _see_other("/ui/sign-in", "Signed out.")
    clear_cookie(request, response, SESSION_COOKIE)
    return response


async def _act(api: Api, who: Viewer, task_id: str, action: Action, *args: object) -> str:
    """Do ``action`` on one task; the notice to show (the service's refusal, e.g. a wrong state)."""
    task = await visible_task(api, who, task_id, with_steps=False)
    require(api, who, action, task)
    method = {Action.CANCEL: "cancel_task", Action.RETRY: "retry_task", Action.RESOLVE: "resolve_step"}[action]
    actor = Actor.of_token(who.principal.name, ActorKind.CONSOLE)
    try:
        await api.call(partial(getattr(api.host.service, method), actor=actor), task.id, *args)
    except TaskerError as exc:
        return str(exc)
    if action is Action.CANCEL:
        api.host.engine.cancel_running(task.id)  # steps running here stop now (as the API does)
    return {Action.CANCEL: "Cancelled.", Action.RETRY: "Retrying.", Action.RESOLVE: "Step resolved."}[action]


async def cancel(request: Request) -> Response:
    api, who, _ = await _checked(request)
    task_id = request.path_params["task_id"]
    return _see_other(f"/ui/tasks/{quote(task_id)}", await _act(api, who, task_id, Action.CANCEL))


async def retry(request: Request) -> Response:
    api, who, _ = await _checked(request)
    task_id = request.path_params["task_id"]
    return _see_other(f"/ui/tasks/{quote(task_id)}", await _act(api, who, task_id, Action.RETRY))


async def resolve(request: Request) -> Response:
    api, who, form = await _checked(request)
    task_id, step = request.path_params["task_id"], request.path_params["step"]
    text = str(form.get("results") or "").strip()
    try:
        results = json.loads(text) if text else None
    except ValueError as exc:
        raise PageError(400, "Invalid results", f"The results are not JSON: {exc}") from None
    notice = await _act(api, who, task_id, Action.RESOLVE, step, results)
    return _see_other(f"/ui/tasks/{quote(task_id)}", notice)


async def send_event(request: Request) -> Response:
    """Send the event a waiting step waits for, from the form built from its schema."""
    api, who, form = await _checked(request)
    task_id, name = request.path_params["task_id"], request.path_params["name"]
    back = f"/ui/tasks/{quote(task_id)}"
    task = await visible_task(api, who, task_id)
    require(api, who, Action.SIGNAL, task)
    step = next((s for s in task.steps if (f := form_of(s)) is not None and f.event == name), None)
    event_form = form_of(step) if step is not None else None
    if event_form is None:
        return _see_other(back, f"No step waits for event {name} any more.")
    payload, problems = payload_of(event_form, form)
    if problems:
        return _see_other(back, "Not sent: " + "; ".join(problems))
    try:
        sent = await api.call(partial(api.host.service.send_event, actor=_actor(request, who.principal.name)),
                              task.id, name, payload, sender=who.principal.name)
    except TaskerError as exc:
        return _see_other(back, "Not sent: " + " ".join(str(exc).split()))
    return _see_other(back, f"Event {name} sent" + (f": step {sent.woke} runs again." if sent.woke else "."))


async def bulk(request: Request) -> Response:
    """Retry or cancel the selected tasks; each is authorized and acted on as alone."""
    api, who, form = await _checked(request)
    action = {"retry": Action.RETRY, "cancel": Action.CANCEL}.get(str(form.get("action")))
    ids = [str(i) for i in form.getlist("task")]
    if action is None or not ids or len(ids) > MAX_BULK:
        raise PageError(400, "Invalid selection", f"Choose retry or cancel and 1 to {MAX_BULK} tasks.")
    done = refused = 0
    for task_id in ids:
        try:
            ok = await _act(api, who, task_id, action) in ("Cancelled.", "Retrying.")
        except PageError:
            ok = False
        done, refused = done + ok, refused + (not ok)
    back = str(form.get("back") or "/ui/tasks")
    back = back if back.startswith("/ui/tasks") else "/ui/tasks"
    verb = "cancelled" if action is Action.CANCEL else "retried"
    refusals = f", {refused} not (not allowed or wrong state)" if refused else ""
    return _see_other(back, f"{done} {verb}{refusals}.")


