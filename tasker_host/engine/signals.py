"""Sending events to tasks: the checks every edge shares (API, CLI, console, ``ctx.send``) and
who may send them.

A send is checked fully before anything is written: the task exists (404), the event name is
well formed and the payload storable (422, every problem), the payload satisfies every schema
declared for that event on the task — the waiting steps' ``ctx.wait_for(schema=...)`` and the
template's ``handler_config.events.<name>.schema`` (422 ``invalid_event``, every violation) —
then the store writes it (or answers a duplicate, or refuses a task that has ended: 409
``task_ended``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

from tasker_host.auth import Action, Grant, Principal, default_decision
from tasker_host.engine.policy import InvocationPolicy
from tasker_host.errors import (
    InvalidEventError,
    InvalidValueError,
    PermanentError,
    RequestError,
    TaskEndedError,
    TaskNotFoundError,
)
from tasker_host.models import StepState
from tasker_host.store.base import Store, TaskRecord
from tasker_host.store.waits import NewEvent, SendResult, SendStatus
from tasker_host.values import ValueProblem, require_storable, value_problems
from tasker_host.waiting import declared_schema, event_name_problems, payload_problems

MAX_KEY = 200  # the task_events.idempotency_key column

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.engine.clock import Clock
    from tasker_host.engine.runner import Engine
    from tasker_host.engine.step_context import RunningStep


def event_schemas(task: TaskRecord, name: str) -> list[Mapping[str, Any]]:
    """The schemas declared for event ``name`` on ``task``: its waiting steps' and its template's."""
    found: list[Mapping[str, Any]] = []
    for step in task.steps:
        wait = step.wait or {}
        if step.state is StepState.WAITING and wait.get("event") == name and wait.get("schema") is not None:
            found.append(wait["schema"])
    for step_doc in (task.template or {}).get("steps", ()):
        schema = declared_schema(step_doc.get("handler_config") or {}, name)
        if schema is not None and schema not in found:
            found.append(schema)
    return found


def check_event(task: TaskRecord, name: str, payload: Any) -> None:
    """Raise (writing nothing) when event ``name`` with ``payload`` cannot be sent to ``task``."""
    if problems := event_name_problems(name):
        raise InvalidValueError("the event name", [ValueProblem("name", problems[0])])
    require_storable(payload, "payload", "the event payload")
    violations: list[dict[str, str]] = []
    for schema in event_schemas(task, name):
        violations += [v for v in payload_problems(schema, payload) if v not in violations]
    if violations:
        raise InvalidEventError(name, violations)


def send_event(store: Store, clock: Clock, task: TaskRecord, name: str, payload: Any, *,
               idempotency_key: str | None = None, sender: str | None = None) -> SendResult:
    """Check and send an event to ``task`` (its record with steps, as the caller loaded it; see
    the module docstring); the result says whether it was new."""
    if idempotency_key is not None and (not 0 < len(idempotency_key) <= MAX_KEY or value_problems(idempotency_key)):
        raise InvalidValueError("the idempotency key", [ValueProblem("idempotency_key", f"must be 1 to {MAX_KEY} "
                                                                     "storable characters")])
    task_id = task.id
    check_event(task, name, payload)
    result = store.send_event(NewEvent(task_id, name, payload, idempotency_key, sender), clock.now())
    if result.status is SendStatus.NO_TASK:
        raise TaskNotFoundError(f"no task {task_id!r}")
    if result.status is SendStatus.ENDED:
        raise TaskEndedError(f"task {task_id} is {result.task_status}: it takes no more events")
    return result


def namespace_principal(namespace: str) -> Principal:
    """The principal a task's handler acts as (``ctx.send``): a manager of its own namespace."""
    return Principal(f"namespace:{namespace}", grants=(Grant(namespace),))


def may_signal(manager: pluggy.PluginManager, policy: InvocationPolicy, caller: str, target: TaskRecord) -> bool:
    """Whether a handler in namespace ``caller`` may send events to ``target``: host ``deny``
    invocation rules first, then ``tasker_authorize(action="signal")`` for the caller's namespace
    principal, then host ``allow`` rules; by default only within its own namespace."""
    if any(r.matches(caller, target.namespace, target.name) for r in policy.deny):
        return False
    principal = namespace_principal(caller)
    opinion = manager.hook.tasker_authorize(principal=principal, action=Action.SIGNAL.value,
                                            namespace=target.namespace)
    if opinion is not None:
        return bool(opinion)
    if any(r.matches(caller, target.namespace, target.name) for r in policy.allow):
        return True
    return default_decision(principal, Action.SIGNAL, target.namespace)


class Signaller:
    """``ctx.send``: checked, authorised and written like an API send, on the engine's store calls."""

    def __init__(self, engine: Engine, manager: pluggy.PluginManager, policy: InvocationPolicy):
        self.engine, self.manager, self.policy = engine, manager, policy

    async def __call__(self, ctx: RunningStep, task_id: str, name: str, payload: Any,
                       key: str, namespace: str | None = None) -> Mapping[str, Any]:
        store, caller = self.engine.store, ctx.task.namespace
        target = await self.engine.db(store.get_task, task_id)
        if target is None and namespace is not None and (route := self._remote(namespace)) is not None:
            return await self._send_remote(route, ctx, task_id, name, payload, key, namespace)
        if target is None:
            raise PermanentError(f"cannot send event {name!r}: no task {task_id!r}")
        if not may_signal(self.manager, self.policy, caller, target):
            raise PermanentError(f"namespace {caller!r} may not send events to tasks of namespace "
                                 f"{target.namespace!r} (grant action 'signal')")
        try:
            result = await self.engine.db(send_event, store, self.engine.clock, target, name, payload,
                                          idempotency_key=key, sender=f"task:{ctx.task.id}")
        except RequestError as exc:
            raise PermanentError(f"cannot send event {name!r} to task {task_id}: {exc}") from None
        self.engine.nudge()  # a step of this host may have been woken
        assert result.event is not None
        return {**result.event.as_dict(), "duplicate": result.status is SendStatus.DUPLICATE}

    def _remote(self, namespace: str) -> Any:
        """The remote route of ``namespace`` (``TASKER_REMOTE_HOSTS``), if another host serves it."""
        from tasker_host.host import REMOTE_ROUTE_PLUGIN  # (the composition root imports this module)

        plugin = self.manager.get_plugin(REMOTE_ROUTE_PLUGIN)
        return plugin.routes.get(namespace) if plugin is not None else None

    async def _send_remote(self, route: Any, ctx: RunningStep, task_id: str, name: str, payload: Any, key: str,
                           namespace: str) -> Mapping[str, Any]:
        """To a task of another host: this host's ``deny`` rules, then that host's grants (its
        token needs ``signal`` there) decide; the payload is checked there."""
        from tasker_host.engine.invocation import InvocationRequest

        caller = ctx.task.namespace
        # (the remote task's name is not known here: a deny rule naming a template covers them all)
        if any(r.matches(caller, namespace, r.name or "") for r in self.policy.deny):
            raise PermanentError(f"namespace {caller!r} may not send events to namespace {namespace!r}")
        try:
            require_storable(payload, "payload", "the event payload")
        except InvalidValueError as exc:
            raise PermanentError(f"cannot send event {name!r}: {exc}") from None
        request = InvocationRequest(ctx.task, ctx.step_name, namespace, f"event {name}", None, {}, False, key,
                                    ctx.task.correlation_id or ctx.task.id)
        doc: Mapping[str, Any] = await route.send_event(request, task_id, name, payload)
        return doc
