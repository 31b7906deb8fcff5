"""Stand-ins for the namespaces a plugin under test calls with ``ctx.invoke``.

:class:`StandInRoutes` is a host plugin implementing ``tasker_route_invocation``: a call to a
workflow it stands in for is answered at once, without a child task; every other call goes on
to the host's routes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tasker_host.context import InvocationResult
from tasker_host.engine.invocation import InvocationRequest
from tasker_host.markers import hookimpl

#: how a stand-in answers: the child's results by step (a completed child), an
#: :class:`InvocationResult` as it is, an exception ``ctx.invoke`` raises, or a callable of the
#: request returning one of those
Answer = Mapping[str, Any] | InvocationResult | BaseException | Callable[[InvocationRequest], Any]
STAND_IN_VERSION = "0.0.0+stand-in"


class StandInRoutes:
    """Answers ``ctx.invoke`` calls to ``"namespace.name"`` or ``"namespace"`` keys of ``answers``
    (the more specific key wins) and records them in ``calls``."""

    def __init__(self, answers: Mapping[str, Answer]):
        bad = sorted(k for k in answers if not isinstance(k, str) or not k or k.count(".") > 1)
        if bad:
            raise ValueError(f"stand-in keys are 'namespace' or 'namespace.name', got {bad}")
        self.answers = dict(answers)
        self.calls: list[InvocationRequest] = []

    def answer_for(self, request: InvocationRequest) -> Answer | None:
        key = f"{request.namespace}.{request.name}"
        return self.answers.get(key, self.answers.get(request.namespace))

    @hookimpl
    def tasker_route_invocation(self, request: InvocationRequest) -> StandInRoutes | None:
        return self if self.answer_for(request) is not None else None

    async def deliver(self, request: InvocationRequest) -> InvocationResult:
        self.calls.append(request)
        answer = self.answer_for(request)
        if callable(answer) and not isinstance(answer, (BaseException, InvocationResult, Mapping)):
            answer = answer(request)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, InvocationResult):
            return answer
        if isinstance(answer, Mapping):
            waited = request.wait
            return InvocationResult(
                f"stand-in-{len(self.calls)}", request.namespace, request.name, STAND_IN_VERSION,
                "complete" if waited else "pending", request.correlation_id,
                dict(answer) if waited else {})
        raise TypeError(f"the stand-in for {request.namespace}.{request.name} answered {answer!r}: "
                        "expected a mapping of results, an InvocationResult or an exception")


__all__ = ["Answer", "STAND_IN_VERSION", "StandInRoutes"]
