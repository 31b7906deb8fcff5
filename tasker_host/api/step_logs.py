"""``GET /tasks/{task_id}/steps/{step}/logs``: the lines a step's attempts wrote through ``ctx.log``
(same authorization as the task: 404 when the task is not viewable or has no such step)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from tasker_host.api.auth import require_principal
from tasker_host.api.errors import ApiError
from tasker_host.api.responses import JSONResponse
from tasker_host.api.state import api_of
from tasker_host.api.tasks import visible_task
from tasker_host.store.step_logs import StepLogEntry
from tasker_host.views import iso


def line_doc(entry: StepLogEntry) -> dict[str, Any]:
    return {"attempt": entry.attempt, "seq": entry.seq, "at": iso(entry.at), "level": entry.level,
            "message": entry.message}


async def show_step_logs(request: Request) -> JSONResponse:
    api = api_of(request)
    principal = await require_principal(request)
    task = await visible_task(request, api, principal)
    step = request.path_params["step"]
    if step not in {s.name for s in task.steps}:
        raise ApiError(404, "not_found", f"task {task.id} has no step {step!r}")
    entries = await api.call(api.host.store.step_logs, task.id, step)
    return JSONResponse({"task_id": task.id, "step": step, "lines": [line_doc(e) for e in entries]})


def routes() -> list[Route]:
    return [Route("/tasks/{task_id}/steps/{step}/logs", show_step_logs, methods=["GET"])]
