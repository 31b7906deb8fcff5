"""Cross-namespace calls (``ctx.invoke``): routed through the ``tasker_route_invocation`` hook,
authorised by policy, delivered in process by the built-in route unless a plugin routes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from tasker_host.context import InvocationResult, TaskInfo
from tasker_host.engine.policy import InvocationPolicy
from tasker_host.engine.service import Parent, TaskService
from tasker_host.errors import (
    InvalidValueError,
    InvocationDeniedError,
    PermanentError,
    RegistryError,
    RequestError,
)
from tasker_host.markers import hookimpl
from tasker_host.models import TaskState
from tasker_host.store.base import TaskRecord
from tasker_host.values import require_storable

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.engine.runner import Engine
    from tasker_host.engine.step_context import RunningStep


@dataclass(frozen=True, slots=True)
class InvocationRequest:
    caller: TaskInfo
    caller_step: str
    namespace: str
    name: str
    version: str | None
    context: Mapping[str, Any]
    wait: bool
    invocation_key: str
    correlation_id: str
    traceparent: str | None = None  # the calling attempt's span (W3C): the child task's trace parent


class InvocationRoute(Protocol):
    """What ``tasker_route_invocation`` returns: delivers a call and answers with its outcome
    (raising :class:`tasker_host.PermanentError` / :class:`tasker_host.RetryableError` to fail
    the calling step)."""

    async def deliver(self, request: InvocationRequest) -> InvocationResult: ...


class Invoker:
    """Turns ``ctx.invoke(...)`` into a routed, authorised delivery."""

    def __init__(self, manager: pluggy.PluginManager):
        self.manager = manager

    async def __call__(self, ctx: RunningStep, namespace: str, name: str, version: str | None,
                       context: Mapping[str, Any] | None, wait: bool, key: str) -> InvocationResult:
        payload = dict(context or {})
        try:  # before any route sees it: a local child, a remote host, a plugin's route
            require_storable(payload, "context", "context")
        except InvalidValueError as exc:
            raise PermanentError(f"cannot invoke {namespace}.{name}: {exc}") from None
        request = InvocationRequest(ctx.task, ctx.step_name, namespace, name, version, payload,
                                    wait, key, ctx.task.correlation_id or ctx.task.id, ctx.traceparent)
        route = self.manager.hook.tasker_route_invocation(request=request)
        if route is None:
            raise PermanentError(f"no route delivers calls to namespace {namespace!r}")
        result: InvocationResult = await route.deliver(request)
        return result


class LocalRoute:
    """Creates the child task in this host's database and (optionally) waits for it."""

    def __init__(self, service: TaskService, engine: Engine, manager: pluggy.PluginManager,
                 policy: InvocationPolicy):
        self.service, self.engine, self.manager, self.policy = service, engine, manager, policy

    async def deliver(self, request: InvocationRequest) -> InvocationResult:
        child = await self.engine.db(self.service.store.find_child, request.caller.id, request.invocation_key)
        if child is None:
            child = await self.engine.db(self._create, request, Parent(
                request.caller.id, request.caller_step, request.invocation_key, request.correlation_id,
                request.caller.namespace))
        if request.wait and child.status is not TaskState.COMPLETE:
            child.status = await self.engine.wait_for_task(child.id)
        return await self._result(child, request.wait)

    def _create(self, request: InvocationRequest, parent: Parent) -> TaskRecord:
        try:
            template = self.service.resolve(request.namespace, request.name, request.version)
            if not self.policy.permits(self.manager, request.caller.namespace, template.namespace,
                                       template.name, template.visibility):
                raise InvocationDeniedError(
                    f"namespace {request.caller.namespace!r} may not invoke {template.full_name} "
                    f"(visibility {template.visibility.value})")
            return self.service.create_task(request.namespace, request.name, request.version,
                                            request.context, parent=parent,
                                            traceparent=request.traceparent).task
        except (RequestError, RegistryError) as exc:
            raise PermanentError(f"cannot invoke {request.namespace}.{request.name}: {exc}") from exc

    async def _result(self, child: TaskRecord, waited: bool) -> InvocationResult:
        if waited and child.status is not TaskState.COMPLETE:
            final = await self.engine.db(self.service.store.get_task, child.id, with_steps=False)
            error = ((final.error if final else None) or {}).get("message", "")
            raise PermanentError(f"child task {child.id} ({child.full_name}) ended {child.status.value}"
                                 + (f": {error}" if error else ""))
        results = await self.engine.db(self.service.store.step_results, child.id) if waited else {}
        return InvocationResult(child.id, child.namespace, child.name, child.version, child.status.value,
                                child.correlation_id or child.id, results)


class LocalRoutePlugin:
    """The host's built-in route: in process, for every namespace this host's registry has —
    and the quarantined ones, so that a call into one fails saying it is quarantined and why."""

    def __init__(self, route: LocalRoute):
        self.route = route

    @hookimpl(trylast=True)
    def tasker_route_invocation(self, request: InvocationRequest) -> LocalRoute | None:
        registry = self.route.service.registry
        local = request.namespace in registry.namespaces or registry.namespace_claims(request.namespace)
        return self.route if local else None
